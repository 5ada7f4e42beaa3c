"""Silences: operator-made rules that mute matching alerts until they expire.

A silence has matchers on ``indicator`` (an id or a shell-style pattern such as
``safety.epidemic.*``), ``region`` (a region id; it also matches every region inside it, so a
street silences its neighbourhoods), ``dimension`` and ``department`` (ids); every matcher given
must match. It carries its author, a comment and an expiry; it is active from ``starts_at`` (or
its creation) until ``expires_at`` or until it is removed (``unsilence``). Expiry is compared with
the cycle time.

>>> s = Silence(id=1, author="ops", comment="planned works", created_at=0, expires_at=3600,
...             indicator="construction.lifelines.*")
>>> s.active(10), s.active(3600)
(True, False)
>>> s.matches_fields(indicator="construction.lifelines.water_pressure.mean_1h", dimension="lifelines",
...                  department="water_authority")
True
"""

from __future__ import annotations

import dataclasses
import fnmatch

from engine.alerts.config import iso, parse_duration, to_epoch

__all__ = ["MATCHERS", "Silence", "parse_expiry"]

#: the fields a silence can match on
MATCHERS = ("indicator", "region", "dimension", "department")


def parse_expiry(value, now: int) -> int:
    """Expiry time of a silence: a duration after ``now`` (``"2h"``, ``"1d"``, ``"90m"``) or a time
    (ISO 8601 text, ``datetime``, ``numpy.datetime64``, or epoch seconds as a number).

    Raises
    ------
    ValueError
        Naming the value and the two accepted forms.

    Examples
    --------
    >>> parse_expiry("2h", 1000), parse_expiry("2020-02-01T10:00:00Z", 0)
    (8200, 1580551200)
    """
    if isinstance(value, str):
        try:
            return int(now) + parse_duration(value, "expires")
        except ValueError:
            pass
    try:
        return to_epoch(value, "expires")
    except ValueError:
        raise ValueError(f"expires must be a duration like '2h', '30m', '1d' or a time like "
                         f"'2020-02-01T18:00:00Z', got {value!r}") from None


@dataclasses.dataclass
class Silence:
    """One silence (times are epoch seconds).

    Parameters
    ----------
    id : int
    author, comment : str
        Who made it and why (both required, kept as data).
    created_at, expires_at : int
    starts_at : int, optional
        Active from here; by default the silence covers every cycle time before its expiry.
    indicator, region, dimension, department : str, optional
        Matchers; at least one is required.
    removed_at : int, optional
        Set by ``unsilence``.
    """

    id: int
    author: str
    comment: str
    created_at: int
    expires_at: int
    starts_at: int | None = None
    indicator: str | None = None
    region: str | None = None
    dimension: str | None = None
    department: str | None = None
    removed_at: int | None = None
    removed_by: str | None = None

    def __post_init__(self):
        for name in ("author", "comment"):
            v = getattr(self, name)
            if not isinstance(v, str) or not v.strip():
                raise ValueError(f"a silence needs a non-empty {name}, got {v!r}")
        if not any(getattr(self, m) for m in MATCHERS):
            raise ValueError(f"a silence needs at least one matcher ({', '.join(MATCHERS)})")
        if self.expires_at <= (self.starts_at if self.starts_at is not None else self.created_at):
            raise ValueError(f"a silence must expire after it starts; expires {iso(self.expires_at)}, "
                             f"starts {iso(self.starts_at if self.starts_at is not None else self.created_at)}")

    def active(self, t: int) -> bool:
        """Whether the silence mutes alerts at cycle time ``t``."""
        if self.removed_at is not None:
            return False
        if self.starts_at is not None and t < self.starts_at:
            return False
        return t < self.expires_at

    def matches_fields(self, indicator: str | None = None, dimension: str | None = None,
                       department: str | None = None, region_ids: tuple = ()) -> bool:
        """Whether an alert with these fields matches every matcher of the silence.

        ``region_ids`` are the alert's region id and the ids of every region containing it.

        >>> Silence(id=1, author="a", comment="c", created_at=0, expires_at=9, region="S01").matches_fields(
        ...     region_ids=("N0001", "S01", "district"))
        True
        """
        if self.indicator and not (indicator == self.indicator or fnmatch.fnmatchcase(indicator or "", self.indicator)):
            return False
        if self.dimension and dimension != self.dimension:
            return False
        if self.department and department != self.department:
            return False
        if self.region and self.region not in region_ids:
            return False
        return True

    def matchers(self) -> dict:
        """The matchers that are set."""
        return {m: getattr(self, m) for m in MATCHERS if getattr(self, m)}

    def to_dict(self) -> dict:
        """JSON-ready view with ISO times."""
        d = dataclasses.asdict(self)
        for k in ("created_at", "expires_at", "starts_at", "removed_at"):
            d[k] = iso(d[k])
        return d
