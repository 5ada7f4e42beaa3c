"""Settings of the alert lifecycle (:class:`AlertConfig`) and the time/duration parsers they use.

Times inside the alert engine are integer seconds since the Unix epoch (UTC); a cycle time may be
given as a number, a :class:`datetime.datetime` (naive means UTC), a ``numpy.datetime64``, a pandas
``Timestamp`` or an ISO 8601 string. Durations are seconds or strings such as ``"90s"``, ``"15m"``,
``"2h"``, ``"1d"``, ``"1h30m"``.

>>> parse_duration("1h30m")
5400
>>> to_epoch("2020-02-01T08:15:00Z"), iso(1580544900)
(1580544900, '2020-02-01T08:15:00Z')
>>> AlertConfig().pending_cycles
3
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import math
import numbers
import re

from engine import levels

__all__ = ["AlertConfig", "DAILY_PRICE_FEEDS", "iso", "parse_duration", "to_epoch"]

DAILY_PRICE_FEEDS = ("staple_prices", "protective_prices")
"""The catalog's feeds reported once a day (a price survey: one reading per site a day), for
:attr:`AlertConfig.daily_feeds`."""

_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(s|sec|min|m|h|d|w)", re.IGNORECASE)


def parse_duration(value, name: str = "duration") -> int:
    """Seconds in a duration: a non-negative number of seconds or a string like ``"2h"``, ``"1h30m"``.

    Raises
    ------
    ValueError
        Naming ``name``, the value and what was expected.

    Examples
    --------
    >>> parse_duration("2h"), parse_duration(90), parse_duration("15min")
    (7200, 90, 900)
    """
    if isinstance(value, bool):
        raise ValueError(f"{name} must be seconds or a duration like '15m', '2h', got {value!r}")
    if isinstance(value, numbers.Real):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a non-negative number of seconds, got {value!r}")
        return int(round(value))
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return int(round(float(text)))
        pos, total = 0, 0.0
        for m in _DURATION.finditer(text):
            if text[pos:m.start()].strip():
                break
            total += float(m.group(1)) * _UNITS[m.group(2).lower()]
            pos = m.end()
        else:
            if pos and not text[pos:].strip():
                return int(round(total))
    raise ValueError(f"{name} must be seconds or a duration like '90s', '15m', '2h', '1d', '1h30m', got {value!r}")


def to_epoch(time, name: str = "time") -> int:
    """Integer seconds since the epoch (UTC) of a cycle time.

    Accepts a number (seconds), ``datetime`` (naive = UTC), ``numpy.datetime64``, pandas
    ``Timestamp`` or an ISO 8601 string.

    Examples
    --------
    >>> import numpy as np, datetime as dt
    >>> to_epoch(np.datetime64("2020-02-01T00:00")), to_epoch(dt.datetime(2020, 2, 1))
    (1580515200, 1580515200)
    """
    import numpy as np

    if isinstance(time, bool):
        raise ValueError(f"{name} must be a time (seconds, datetime or ISO string), got {time!r}")
    if isinstance(time, numbers.Real):
        if not math.isfinite(time):
            raise ValueError(f"{name} must be a finite number of seconds, got {time!r}")
        return int(time)
    if isinstance(time, np.datetime64):
        if np.isnat(time):
            raise ValueError(f"{name} must be a time, got NaT")
        return int(time.astype("datetime64[s]").astype(np.int64))
    if isinstance(time, _dt.datetime):
        if time.tzinfo is None:
            time = time.replace(tzinfo=_dt.timezone.utc)
        return int(time.timestamp())
    if isinstance(time, str):
        text = time.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            return to_epoch(_dt.datetime.fromisoformat(text), name)
        except ValueError:
            pass
    raise ValueError(f"{name} must be seconds, a datetime or an ISO 8601 time like "
                     f"'2020-02-01T08:15:00Z', got {time!r}")


def iso(t: int | float | None) -> str | None:
    """ISO 8601 UTC text (``...Z``) of epoch seconds; ``None`` stays ``None``.

    >>> iso(0)
    '1970-01-01T00:00:00Z'
    """
    if t is None:
        return None
    return _iso(int(t))


@functools.lru_cache(maxsize=8192)
def _iso(t: int) -> str:
    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass(frozen=True)
class AlertConfig:
    """How alerts move between states, group, escalate and are delivered.

    The defaults suit a 15-minute cycle. Durations are seconds (strings like ``"30m"`` are
    accepted and converted); counts are cycles of the level being processed.

    Parameters
    ----------
    pending_cycles : int
        Consecutive cycles a score must stay at or above ``fire_level`` before the alert fires
        (1 fires at once). Default 3 (45 minutes).
    daily_feeds : tuple of str
        Feeds reported once a day, e.g. :data:`DAILY_PRICE_FEEDS` (the two price surveys: one
        reading per site a day). A subject whose indicators all come from them fires at its first
        cycle at or above ``fire_level``: its value should hold until the next day's report, so
        ``pending_cycles`` would confirm nothing and only delay the alert by
        ``pending_cycles - 1`` cycles. Default :data:`DAILY_PRICE_FEEDS`; ``()`` makes every
        subject wait its pending cycles. The value is held from the report's cycle
        (``tests/test_core.py``), and the detectors score a daily series from the report that
        completes their warm-up (not from its held repeat a cycle later), so the first scored
        cycle of a price is a report's own (``docs/sim.md``, "Daily price reports and time to
        detect").
    resolve_cycles : int
        Consecutive cycles below ``clear_level`` before a firing alert resolves. Default 1.
    fire_level, critical_level, clear_level : float
        Score levels from :mod:`engine.levels`: fire (warn severity) at ``WARN`` = 0.99,
        critical at ``CRITICAL`` = 0.999, resolve only below ``CLEAR`` = 0.95 (hysteresis).
        A critical alert steps back to warn when its score falls below ``fire_level``.
    stale_cycles : int
        Consecutive cycles without a score (NaN, "no opinion") after which a pending or firing
        alert is dropped or resolved; 0 keeps it forever. Default 8.
    flap_window : int
        Cycles over which fire/resolve changes are counted for flap damping (1..63). Default 16.
    flap_threshold : int
        Changes within the window that start damping (0 disables). Default 4.
    flap_clear : int
        Damping ends when the changes in the window fall to this many or fewer. Default 1.
        While damped, an alert that has fired stays firing (flagged ``flapping``) instead of
        resolving and re-firing, so its group does not get a notification per flap.
    group_wait : int
        Seconds a new group waits before its first notification. Default 0 (alerts of one cycle
        arrive together anyway).
    group_interval : int
        Least seconds between two notifications of one group when its content changes.
        Default 30 minutes.
    repeat_interval : int
        Seconds after which an unchanged group with firing alerts is notified again. Default 4 h.
    escalation_after : int
        Seconds a critical alert may stay unacknowledged before the department's escalation
        contact is notified. Default 30 minutes.
    inhibit_by : tuple of str
        Levels whose firing alerts mute the same indicator's alerts in the regions they contain
        (default ``("district",)``: a district alert mutes street and neighbourhood alerts).
    webhook_timeout : float
        Seconds one HTTP POST may take. Default 5.
    webhook_backoff, webhook_backoff_max : float
        First retry delay and its cap (seconds); the delay doubles after each failure.
        Defaults 0.5 and 60.
    webhook_max_attempts : int
        Attempts before a notification is parked as ``dead`` in the outbox; 0 (default) retries
        forever, so nothing is lost.
    record_blips : bool
        Also write to the history the transitions of pending episodes that never fire (about 1%
        of all series each cycle when nothing is wrong, i.e. ~17,000 rows per cycle at
        2,926 x 300, ~0.2 s of SQLite). Default False: they are counted per cycle in the
        ``cycles`` table, and every alert that fires gets its pending start written (with the
        score and value seen then) when it fires.
    alert_per : {"subject", "indicator"}
        ``"subject"`` (default): one alert per subject (``domain.dimension.subject``, the
        first three parts of an indicator id) and region. The catalog expands one subject into
        several correlated indicators (1 h / 24 h windows, per 10k, share...); their scores are
        folded to the highest one each cycle, and the alert names the indicator that drove it
        when it fired (:mod:`engine.alerts.fold`). ``"indicator"``: one alert per indicator.
    alert_windows : {"shortest", "all"}
        With ``alert_per="subject"``: ``"shortest"`` (default) lets only the indicators at the
        subject's shortest window drive its alert (the 24 h / 7 d windows of a subject that also
        has a 1 h one are its smoothed, lagging copies: they go to indices and reports);
        ``"all"`` lets every indicator of the subject drive it.
    looks : float
        Bonferroni factor inside one indicator's score, used where neighbourhood scores are split
        into a district and a local part (:func:`engine.alerts.common.common_mode`, as the
        scenario runner does): the tail probability ``1 - score`` of a statistical score (every
        detector but the catalog ``threshold``, whose levels are the operators' own rules) is
        multiplied by it. An indicator's score is the maximum of the detectors behind it
        (seasonal or count, CUSUM, spatial, scan): default 4. 1 turns it off.
    multiplicity : {"bonferroni", "bh", "none"}
        Control across the family of tests judged in one cycle (every driving indicator's
        statistical score in every region and the district, :mod:`engine.alerts.multiplicity`),
        applied after ``looks`` where the runner splits the scores: ``"bonferroni"`` (default)
        bounds the chance of any false WARN in a cycle by ``family_alpha``; ``"bh"``
        (Benjamini-Hochberg) the expected share of false ones among the cycle's WARNs.
    family_alpha : float
        The family-wise error rate (Bonferroni) or false discovery rate (BH) that maps to WARN
        (default 0.05); CRITICAL at a tenth of it, CLEAR at five times it.

    Examples
    --------
    >>> AlertConfig(group_interval="1h").group_interval
    3600
    >>> AlertConfig(pending_cycles=0)
    Traceback (most recent call last):
    ...
    ValueError: pending_cycles must be an integer in 1..10000, got 0
    """

    pending_cycles: int = 3
    daily_feeds: tuple = DAILY_PRICE_FEEDS
    resolve_cycles: int = 1
    fire_level: float = levels.WARN
    critical_level: float = levels.CRITICAL
    clear_level: float = levels.CLEAR
    stale_cycles: int = 8
    flap_window: int = 16
    flap_threshold: int = 4
    flap_clear: int = 1
    group_wait: int = 0
    group_interval: int = 1800
    repeat_interval: int = 4 * 3600
    escalation_after: int = 1800
    inhibit_by: tuple = ("district",)
    webhook_timeout: float = 5.0
    webhook_backoff: float = 0.5
    webhook_backoff_max: float = 60.0
    webhook_max_attempts: int = 0
    record_blips: bool = False
    alert_per: str = "subject"
    alert_windows: str = "shortest"
    looks: float = 4.0
    multiplicity: str = "bonferroni"
    family_alpha: float = 0.05

    def __post_init__(self):
        def integer(name, lo, hi=None):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < lo or (hi is not None and v > hi):
                rng = f">= {lo}" if hi is None else f"in {lo}..{hi}"
                raise ValueError(f"{name} must be an integer {rng}, got {v!r}")
            object.__setattr__(self, name, int(v))

        integer("pending_cycles", 1, 10_000)
        integer("resolve_cycles", 1, 10_000)
        integer("stale_cycles", 0, 10_000)
        integer("flap_window", 1, 63)
        integer("flap_threshold", 0, 63)
        integer("flap_clear", 0, 63)
        integer("webhook_max_attempts", 0)
        if self.flap_threshold and self.flap_clear >= self.flap_threshold:
            raise ValueError(f"flap_clear must be below flap_threshold ({self.flap_threshold}), got {self.flap_clear}")
        for name in ("fire_level", "critical_level", "clear_level"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not (0.0 < v <= 1.0):
                raise ValueError(f"{name} must be a score in (0, 1], got {v!r}")
            object.__setattr__(self, name, float(v))
        if not (self.clear_level < self.fire_level <= self.critical_level):
            raise ValueError("levels must satisfy clear_level < fire_level <= critical_level, got "
                             f"clear={self.clear_level}, fire={self.fire_level}, critical={self.critical_level}")
        for name in ("group_wait", "group_interval", "repeat_interval", "escalation_after"):
            object.__setattr__(self, name, parse_duration(getattr(self, name), name))
        for name in ("webhook_timeout", "webhook_backoff", "webhook_backoff_max"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not (v > 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be a positive number of seconds, got {v!r}")
            object.__setattr__(self, name, float(v))
        object.__setattr__(self, "record_blips", bool(self.record_blips))
        if self.alert_per not in ("subject", "indicator"):
            raise ValueError(f"alert_per must be 'subject' or 'indicator', got {self.alert_per!r}")
        if isinstance(self.looks, bool) or not isinstance(self.looks, numbers.Real) or not (1.0 <= self.looks < math.inf):
            raise ValueError(f"looks must be a number >= 1, got {self.looks!r}")
        object.__setattr__(self, "looks", float(self.looks))
        if self.multiplicity not in ("bonferroni", "bh", "none"):
            raise ValueError(f"multiplicity must be 'bonferroni', 'bh' or 'none', got {self.multiplicity!r}")
        a = self.family_alpha
        if isinstance(a, bool) or not isinstance(a, numbers.Real) or not (0.0 < a < 1.0):
            raise ValueError(f"family_alpha must be a number in (0, 1), got {a!r}")
        object.__setattr__(self, "family_alpha", float(a))
        if self.alert_windows not in ("shortest", "all"):
            raise ValueError(f"alert_windows must be 'shortest' or 'all', got {self.alert_windows!r}")
        inhibit = (self.inhibit_by,) if isinstance(self.inhibit_by, str) else tuple(self.inhibit_by)
        object.__setattr__(self, "inhibit_by", inhibit)
        daily = (self.daily_feeds,) if isinstance(self.daily_feeds, str) else tuple(self.daily_feeds or ())
        bad = [f for f in daily if not isinstance(f, str) or not f]
        if bad:
            raise ValueError(f"daily_feeds must be feed ids (strings), got {bad!r}")
        object.__setattr__(self, "daily_feeds", daily)

    def to_dict(self) -> dict:
        """The settings as a plain dict (JSON-ready)."""
        d = dataclasses.asdict(self)
        d["inhibit_by"] = list(self.inhibit_by)
        d["daily_feeds"] = list(self.daily_feeds)
        return d
