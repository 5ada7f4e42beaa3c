"""Per-series alert state held in plain numpy arrays, one set per region level.

Every (indicator, region) series of a level has a slot in each array, flattened row-major from
``(n_indicators, n_regions)``:

========== ======= ==============================================================
array      dtype   meaning
========== ======= ==============================================================
state      int8    :data:`INACTIVE`, :data:`PENDING` or :data:`FIRING`
count      int16   consecutive cycles at/above the fire level (pending) or below
                   the clear level (firing)
severity   int8    0 none, :data:`WARN` 1, :data:`CRITICAL` 2
nan_run    int16   consecutive cycles without a score (NaN)
since      int64   time (epoch seconds) of the last state change
started    int64   time the current episode started (turned pending, or fired at once)
flap_bits  uint64  one bit per past cycle: 1 where the series fired or resolved
flapping   int8    1 while flap damping holds the series
alert_id   int64   id of the open alert of the series (0: none)
p_score    float32 score when the current episode turned pending
p_value    float32 value then
p_detector int8    detector then
========== ======= ==============================================================

The state machine (:mod:`engine.alerts.lifecycle`) owns the fields up to ``flapping``; the
manager owns ``alert_id`` and the ``p_*`` fields.

The per-cycle events a series can have are bit flags (:data:`EV_PENDING` ...), so one
``uint8`` per series says everything that happened to it in a cycle.

>>> s = SeriesState.empty(3, 4)
>>> s.n, int(s.state.sum())
(12, 0)
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "CRITICAL", "EVENT_NAMES", "EV_CANCELLED", "EV_FIRED", "EV_FLAP_END", "EV_FLAP_START",
    "EV_PENDING", "EV_RESOLVED", "EV_SEV_DOWN", "EV_SEV_UP", "FIRING", "INACTIVE", "PENDING",
    "SEVERITY_NAMES", "STATE_NAMES", "SeriesState", "WARN", "event_names",
]

#: series states
INACTIVE, PENDING, FIRING = 0, 1, 2
STATE_NAMES = {INACTIVE: "inactive", PENDING: "pending", FIRING: "firing"}
#: severities
WARN, CRITICAL = 1, 2
SEVERITY_NAMES = {0: None, WARN: "warn", CRITICAL: "critical"}

#: event bit flags (several may happen to one series in one cycle, e.g. fired + flap start)
EV_PENDING = 1        # inactive -> pending
EV_FIRED = 2          # pending (or inactive when pending_cycles == 1) -> firing
EV_RESOLVED = 4       # firing -> inactive (score below clear level, or stale)
EV_CANCELLED = 8      # pending -> inactive (score fell back before firing, or stale)
EV_SEV_UP = 16        # firing warn -> critical
EV_SEV_DOWN = 32      # firing critical -> warn
EV_FLAP_START = 64    # flap damping starts
EV_FLAP_END = 128     # flap damping ends
EVENT_NAMES = {EV_PENDING: "pending", EV_FIRED: "fired", EV_RESOLVED: "resolved", EV_CANCELLED: "cancelled",
               EV_SEV_UP: "severity_up", EV_SEV_DOWN: "severity_down", EV_FLAP_START: "flap_start",
               EV_FLAP_END: "flap_end"}

_FIELDS = (("state", np.int8), ("count", np.int16), ("severity", np.int8), ("nan_run", np.int16),
           ("since", np.int64), ("started", np.int64), ("flap_bits", np.uint64), ("flapping", np.int8), ("alert_id", np.int64),
           ("p_score", np.float32), ("p_value", np.float32), ("p_detector", np.int8))


def event_names(mask: int) -> list[str]:
    """Names of the events in a bit mask, in bit order.

    >>> event_names(EV_FIRED | EV_FLAP_START)
    ['fired', 'flap_start']
    """
    return [name for bit, name in EVENT_NAMES.items() if mask & bit]


class SeriesState:
    """The state arrays of one level (all flat, length ``n_indicators * n_regions``).

    Parameters
    ----------
    shape : (int, int)
        ``(n_indicators, n_regions)`` of the level.
    arrays : dict of ndarray
        One array per field (see the module table).

    Examples
    --------
    >>> s = SeriesState.empty(2, 3)
    >>> s.state[4] = FIRING
    >>> t = SeriesState.from_arrays((2, 3), s.to_arrays())
    >>> int(t.state.reshape(2, 3)[1, 1])
    2
    """

    fields = tuple(name for name, _ in _FIELDS)

    def __init__(self, shape: tuple[int, int], arrays: dict):
        self.shape = (int(shape[0]), int(shape[1]))
        n = self.shape[0] * self.shape[1]
        for name, dtype in _FIELDS:
            a = np.ascontiguousarray(arrays[name], dtype=dtype).reshape(-1)
            if a.shape[0] != n:
                raise ValueError(f"state array {name!r} has {a.shape[0]} entries, expected {n} for shape {self.shape}")
            setattr(self, name, a)

    @property
    def n(self) -> int:
        """Number of series."""
        return self.shape[0] * self.shape[1]

    @classmethod
    def empty(cls, n_indicators: int, n_regions: int) -> "SeriesState":
        """All series inactive."""
        n = n_indicators * n_regions
        return cls((n_indicators, n_regions), {name: np.zeros(n, dtype) for name, dtype in _FIELDS})

    def to_arrays(self) -> dict:
        """The arrays by field name (copies), for checkpoints."""
        return {name: getattr(self, name).copy() for name in self.fields}

    @classmethod
    def from_arrays(cls, shape, arrays: dict) -> "SeriesState":
        """Rebuild from :meth:`to_arrays` output."""
        return cls(shape, arrays)

    def copy(self) -> "SeriesState":
        return SeriesState(self.shape, self.to_arrays())
