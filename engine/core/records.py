"""Encoded records as the core reads them: contiguous arrays, the shape of ``engine.feeds.Encoded``.

``Records`` carries exactly the field names of ``engine.feeds.Encoded`` (events ``ev_*``, readings
``rd_*``, snapshots ``sn_*``) so that the core can be built and tested without the feeds package;
:func:`as_records` accepts either.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

EV = ("ev_time", "ev_feed", "ev_category", "ev_channel", "ev_region", "ev_value")
RD = ("rd_time", "rd_feed", "rd_metric", "rd_emitter", "rd_kind", "rd_region", "rd_value")
SN = ("sn_time", "sn_feed", "sn_field", "sn_entity", "sn_kind", "sn_region", "sn_value")
_DT = {"time": np.int64, "value": np.float64}


def _dtype(name: str):
    return _DT.get(name.split("_", 1)[1], np.int32)


def _empty(names):
    return {n: np.zeros(0, _dtype(n)) for n in names}


@dataclass
class Records:
    """Events, readings and snapshots as parallel arrays (see ``engine.feeds.Encoded``).

    Examples
    --------
    >>> r = Records.build(feed_ids=["a"], events=dict(ev_time=[1, 2], ev_feed=[0, 0], ev_category=[0, 1],
    ...                   ev_channel=[-1, -1], ev_region=[3, 3], ev_value=[np.nan, 2.0]))
    >>> len(r.ev_time), r.rd_time.dtype
    (2, dtype('int64'))
    """

    feed_ids: list = field(default_factory=list)
    ev_time: np.ndarray = None
    ev_feed: np.ndarray = None
    ev_category: np.ndarray = None
    ev_channel: np.ndarray = None
    ev_region: np.ndarray = None
    ev_value: np.ndarray = None
    rd_time: np.ndarray = None
    rd_feed: np.ndarray = None
    rd_metric: np.ndarray = None
    rd_emitter: np.ndarray = None
    rd_kind: np.ndarray = None
    rd_region: np.ndarray = None
    rd_value: np.ndarray = None
    sn_time: np.ndarray = None
    sn_feed: np.ndarray = None
    sn_field: np.ndarray = None
    sn_entity: np.ndarray = None
    sn_kind: np.ndarray = None
    sn_region: np.ndarray = None
    sn_value: np.ndarray = None

    def __post_init__(self):
        for f in fields(self):
            if f.name == "feed_ids":
                continue
            v = getattr(self, f.name)
            v = np.zeros(0, _dtype(f.name)) if v is None else np.ascontiguousarray(v, dtype=_dtype(f.name))
            setattr(self, f.name, v)
        for group in (EV, RD, SN):
            n = {len(getattr(self, g)) for g in group}
            if len(n) > 1:
                raise ValueError(f"record arrays {group} have different lengths {[len(getattr(self, g)) for g in group]}")

    @classmethod
    def build(cls, feed_ids, events=None, readings=None, snapshots=None) -> "Records":
        """Records from dicts of columns (missing groups are empty)."""
        kw = {}
        for grp, names in ((events, EV), (readings, RD), (snapshots, SN)):
            kw.update(_empty(names) if grp is None else {n: grp[n] for n in names})
        return cls(feed_ids=list(feed_ids), **kw)

    def select(self, ev=None, rd=None, sn=None) -> "Records":
        """A subset by boolean masks or index arrays per group (None keeps the whole group)."""
        kw = {}
        for sel, names in ((ev, EV), (rd, RD), (sn, SN)):
            for n in names:
                a = getattr(self, n)
                kw[n] = a if sel is None else a[sel]
        return Records(feed_ids=self.feed_ids, **kw)

    @property
    def n(self) -> int:
        return len(self.ev_time) + len(self.rd_time) + len(self.sn_time)


def as_records(obj) -> Records:
    """``obj`` (an ``engine.feeds.Encoded`` or :class:`Records`) as :class:`Records` (no copy when
    the arrays already have the right dtype)."""
    if isinstance(obj, Records):
        return obj
    missing = [n for n in EV + RD + SN if not hasattr(obj, n)]
    if missing:
        raise TypeError(f"expected encoded records with fields {EV + RD + SN}; {type(obj).__name__} lacks {missing}")
    return Records(feed_ids=list(getattr(obj, "feed_ids", [])), **{n: getattr(obj, n) for n in EV + RD + SN})


@dataclass(frozen=True, eq=False, repr=False)
class EncodedFeeds:
    """A period's feeds encoded ahead by :meth:`engine.core.Engine.encode`, for the ``replay`` or
    ``step`` that ends at ``end_ns``: the records, the quarantine and its counts, and the records'
    buckets and kernel keys (prepared for the plan ``plan``).

    ``Engine.replay(encoded, start, end)`` equals ``Engine.replay(feeds, start, end)`` when
    ``end`` is the end it was encoded for (the quarantine's ``future_timestamp`` depends on it;
    another end is refused).
    """

    records: Records
    quarantine: object  # engine.feeds.Quarantine, or None for records that were already encoded
    counts: dict | None
    end_ns: int
    prepared: dict
    plan: object

    @property
    def n(self) -> int:
        """Records held (events + readings + snapshots)."""
        return self.records.n

    def __repr__(self) -> str:
        return f"EncodedFeeds({self.n} records, end_ns={self.end_ns}, quarantine counts={self.counts})"
