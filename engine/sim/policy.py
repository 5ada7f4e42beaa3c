"""Dated policy levers: a small, eagerly validated timeline API.

A :class:`Timeline` covers a scenario period (inclusive dates). ``.at(date, **levers)`` changes the
named levers from that date on (levers not named keep their values); ``.stages([...])`` overrides
levers over closed date ranges, after which the ``.at`` values resume. Every call is validated at
once: a date outside the period, an unknown sector or lever, a value outside its range, or
overlapping stages raise ``ValueError`` naming the value and what was expected.

Levers (defaults in brackets)
-----------------------------
sector_share      reopened share of each GB/T 4754-2017 sector A..T; a number (all sectors) or a
                  ``{code: share}`` dict [1.0]
schools           schools open (True/False or a share 0..1) [1.0]
other             Prem-style multiplier on "other" contacts (shops, transport, leisure) [1.0]
venue_cap         peak occupancy cap as a share of capacity, for all venue kinds or a ``{kind: cap}``
                  dict; ``None`` = no cap [None]
masks             transmission multiplier of out-of-home contacts (1 = no masks) [1.0]
testing           share of symptomatic (clinical) cases tested and isolated at onset [0.0]
arrivals          arrivals per day into the city [0]
key_area_share    share of arrivals coming from key (high-risk) areas [0.0]
key_area_prevalence, other_prevalence
                  share of arrivals from key / other areas who are infected [0.0]
arrival_testing   share of key-area arrivals tested on arrival [0.0]
test_sensitivity  sensitivity of that test [0.8]
arrival_quarantine share of key-area arrivals (not caught by the test) sent to quarantine [0.0]
quarantine_compliance share of quarantined arrivals who comply [1.0]

Examples
--------
>>> tl = Timeline("2020-02-01", "2020-05-31")
>>> _ = tl.at("2020-02-01", sector_share=0.1, schools=False, other=0.3, masks=0.7)
>>> _ = tl.at("2020-03-01", sector_share={"C": 0.6, "G": 0.5}, venue_cap=0.5, testing=0.6)
>>> _ = tl.stages([("2020-04-01", "2020-04-14", {"sector_share": 0.5}),
...                ("2020-04-15", "2020-04-30", {"sector_share": 0.9})])
>>> d = tl.daily()
>>> float(d.sector_share[d.day("2020-03-10"), SECTORS.index("C")])
0.6
>>> float(d.sector_share[d.day("2020-04-20"), 0]), float(d.sector_share[d.day("2020-05-02"), 0])
(0.9, 0.1)
>>> tl.at("2020-06-01", masks=0.5)
Traceback (most recent call last):
...
ValueError: date 2020-06-01 is outside the scenario period 2020-02-01..2020-05-31
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field

import numpy as np

SECTORS = tuple("ABCDEFGHIJKLMNOPQRST")
"""The 20 sections of GB/T 4754-2017 (A agriculture ... T international organisations)."""

VENUE_KINDS = ("mall", "wet_market", "restaurant", "supermarket")
"""Site kinds treated as venues (visits, occupancy caps, crowding)."""

_UNIT_LEVERS = ("other", "masks", "testing", "key_area_share", "key_area_prevalence", "other_prevalence",
                "arrival_testing", "test_sensitivity", "arrival_quarantine", "quarantine_compliance")
LEVER_DEFAULTS = {
    "sector_share": 1.0, "schools": 1.0, "other": 1.0, "venue_cap": None, "masks": 1.0, "testing": 0.0,
    "arrivals": 0.0, "key_area_share": 0.0, "key_area_prevalence": 0.0, "other_prevalence": 0.0,
    "arrival_testing": 0.0, "test_sensitivity": 0.8, "arrival_quarantine": 0.0, "quarantine_compliance": 1.0,
}
"""Every lever and its value when nothing is set."""


def to_day(value) -> np.datetime64:
    """A date-like value (str, date, datetime, numpy or pandas) as ``numpy.datetime64[D]``.

    >>> str(to_day("2020-03-01"))
    '2020-03-01'
    """
    try:
        if isinstance(value, np.datetime64):
            return value.astype("datetime64[D]")
        if isinstance(value, (_dt.date, _dt.datetime)):
            return np.datetime64(value.isoformat()[:10], "D")
        if hasattr(value, "to_datetime64"):
            return value.to_datetime64().astype("datetime64[D]")
        return np.datetime64(str(value), "D")
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a date: {value!r} (expected e.g. '2020-03-01')") from exc


def _unit_value(name, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name}={value!r}: expected a number in 0..1")
    v = float(value)
    if not (0.0 <= v <= 1.0):
        raise ValueError(f"{name}={value!r} is outside 0..1")
    return v


def validate_levers(levers: dict) -> dict:
    """Check lever names and values; return them normalised (shares as floats, dicts copied).

    >>> validate_levers({"schools": False, "venue_cap": {"mall": 0.5}})
    {'schools': 0.0, 'venue_cap': {'mall': 0.5}}
    >>> validate_levers({"sector_share": {"Z": 0.5}})
    Traceback (most recent call last):
    ...
    ValueError: unknown sector 'Z' in sector_share: expected one of A..T (GB/T 4754-2017 sections)
    """
    out = {}
    for name, value in levers.items():
        if name not in LEVER_DEFAULTS:
            raise ValueError(f"unknown lever {name!r}: expected one of {', '.join(LEVER_DEFAULTS)}")
        if name == "sector_share":
            if isinstance(value, dict):
                if not value:
                    raise ValueError("sector_share={}: expected at least one sector")
                shares = {}
                for code, share in value.items():
                    if code not in SECTORS:
                        raise ValueError(f"unknown sector {code!r} in sector_share: expected one of A..T "
                                         "(GB/T 4754-2017 sections)")
                    shares[code] = _unit_value(f"sector_share[{code!r}]", share)
                out[name] = shares
            else:
                out[name] = _unit_value(name, value)
        elif name == "schools":
            out[name] = float(value) if isinstance(value, (bool, np.bool_)) else _unit_value(name, value)
        elif name == "venue_cap":
            if value is None:
                out[name] = None
            elif isinstance(value, dict):
                caps = {}
                for kind, cap in value.items():
                    if kind not in VENUE_KINDS:
                        raise ValueError(f"unknown venue kind {kind!r} in venue_cap: expected one of "
                                         f"{', '.join(VENUE_KINDS)}")
                    caps[kind] = None if cap is None else _unit_value(f"venue_cap[{kind!r}]", cap)
                out[name] = caps
            else:
                out[name] = _unit_value(name, value)
        elif name == "arrivals":
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                    or not np.isfinite(value) or value < 0:
                raise ValueError(f"arrivals={value!r}: expected a number of arrivals per day >= 0")
            out[name] = float(value)
        else:
            out[name] = _unit_value(name, value)
    return out


@dataclass(frozen=True)
class Stage:
    """Levers that hold from ``start`` to ``end`` (both inclusive)."""

    start: object
    end: object
    levers: dict = field(default_factory=dict)


@dataclass
class DailyLevers:
    """Lever values per day of the period (arrays with a leading day axis)."""

    dates: np.ndarray
    sector_share: np.ndarray          # (T, 20)
    venue_cap: np.ndarray             # (T, len(VENUE_KINDS)); inf = no cap
    scalars: dict                     # name -> (T,) float64

    def __getattr__(self, name):
        scalars = self.__dict__.get("scalars", {})
        if name in scalars:
            return scalars[name]
        raise AttributeError(name)

    def day(self, date) -> int:
        """Index of ``date`` in the period."""
        return int((to_day(date) - self.dates[0]).astype(int))

    def to_frame(self):
        """One row per day, one column per lever (sectors as ``sector_A`` ..., caps as ``cap_mall`` ...)."""
        import pandas as pd

        cols = {f"sector_{c}": self.sector_share[:, i] for i, c in enumerate(SECTORS)}
        cols.update({f"cap_{k}": self.venue_cap[:, i] for i, k in enumerate(VENUE_KINDS)})
        cols.update(self.scalars)
        return pd.DataFrame(cols, index=pd.DatetimeIndex(self.dates, name="date"))


class Timeline:
    """Dated policy levers over a scenario period ``start..end`` (inclusive).

    Parameters
    ----------
    start, end : date-like
        First and last day of the period.

    Examples
    --------
    >>> tl = Timeline("2020-01-01", "2020-01-31").at("2020-01-10", schools=False)
    >>> d = tl.daily()
    >>> float(d.schools[8]), float(d.schools[9])
    (1.0, 0.0)
    """

    def __init__(self, start, end):
        self.start, self.end = to_day(start), to_day(end)
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        self._changes: list[tuple[np.datetime64, dict]] = []
        self._stages: list[tuple[np.datetime64, np.datetime64, dict]] = []

    @property
    def days(self) -> int:
        return int((self.end - self.start).astype(int)) + 1

    def __repr__(self):
        return (f"Timeline({str(self.start)!r}, {str(self.end)!r}, {len(self._changes)} changes, "
                f"{len(self._stages)} stages)")

    def _check_date(self, date) -> np.datetime64:
        d = to_day(date)
        if d < self.start or d > self.end:
            raise ValueError(f"date {d} is outside the scenario period {self.start}..{self.end}")
        return d

    def at(self, date, **levers) -> "Timeline":
        """Set ``levers`` from ``date`` on; returns the timeline (calls chain)."""
        d = self._check_date(date)
        if not levers:
            raise ValueError(f"at({d}) names no lever: expected some of {', '.join(LEVER_DEFAULTS)}")
        self._changes.append((d, validate_levers(levers)))
        return self

    def stages(self, stages) -> "Timeline":
        """Add stages: :class:`Stage` objects, ``(start, end, {levers})`` tuples or dicts with
        ``start`` and ``end`` keys plus levers. Stages may not overlap each other."""
        new = []
        for st in stages:
            if isinstance(st, Stage):
                s, e, lv = st.start, st.end, dict(st.levers)
            elif isinstance(st, dict):
                lv = dict(st)
                try:
                    s, e = lv.pop("start"), lv.pop("end")
                except KeyError as exc:
                    raise ValueError(f"stage {st!r} lacks {exc.args[0]!r}: expected start and end") from None
            elif isinstance(st, (tuple, list)) and len(st) == 3 and isinstance(st[2], dict):
                s, e, lv = st[0], st[1], dict(st[2])
            else:
                raise ValueError(f"stage {st!r}: expected Stage, (start, end, {{levers}}) or a dict")
            s, e = self._check_date(s), self._check_date(e)
            if e < s:
                raise ValueError(f"stage ends {e} before it starts {s}")
            if not lv:
                raise ValueError(f"stage {s}..{e} names no lever")
            new.append((s, e, validate_levers(lv)))
        everything = sorted(self._stages + new, key=lambda x: x[0])
        for (s0, e0, _), (s1, e1, _) in zip(everything, everything[1:]):
            if s1 <= e0:
                raise ValueError(f"stage {s1}..{e1} overlaps stage {s0}..{e0}: stages must not overlap")
        self._stages = everything
        return self

    def head(self, end) -> "Timeline":
        """A copy ending at ``end`` (changes after it dropped, stages cut at it).

        >>> tl = Timeline("2020-01-01", "2020-01-31").at("2020-01-20", masks=0.5)
        >>> tl.head("2020-01-10")
        Timeline('2020-01-01', '2020-01-10', 0 changes, 0 stages)
        """
        end = self._check_date(end)
        out = Timeline(self.start, end)
        out._changes = [(d, lv) for d, lv in self._changes if d <= end]
        out._stages = [(s, min(e, end), lv) for s, e, lv in self._stages if s <= end]
        return out

    def daily(self) -> DailyLevers:
        """Resolve the timeline into one value per lever per day."""
        T = self.days
        dates = self.start + np.arange(T).astype("timedelta64[D]")
        sector = np.ones((T, len(SECTORS)))
        cap = np.full((T, len(VENUE_KINDS)), np.inf)
        scal = {k: np.full(T, float(v)) for k, v in LEVER_DEFAULTS.items() if k not in ("sector_share", "venue_cap")}

        def apply(levers, sl):
            for name, v in levers.items():
                if name == "sector_share":
                    if isinstance(v, dict):
                        for code, share in v.items():
                            sector[sl, SECTORS.index(code)] = share
                    else:
                        sector[sl, :] = v
                elif name == "venue_cap":
                    items = v.items() if isinstance(v, dict) else ((k, v) for k in VENUE_KINDS)
                    for kind, c in items:
                        cap[sl, VENUE_KINDS.index(kind)] = np.inf if c is None else c
                else:
                    scal[name][sl] = v

        order = sorted(range(len(self._changes)), key=lambda i: (self._changes[i][0], i))
        for i in order:
            d, levers = self._changes[i]
            apply(levers, slice(int((d - self.start).astype(int)), T))
        for s, e, levers in self._stages:
            apply(levers, slice(int((s - self.start).astype(int)), int((e - self.start).astype(int)) + 1))
        return DailyLevers(dates=dates, sector_share=sector, venue_cap=cap, scalars=scal)
