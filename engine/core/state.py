"""The window state of the engine: plain numpy arrays, saved and loaded exactly (``.npz``).

==========  =========  ==========================================================
array       dtype      what
==========  =========  ==========================================================
ringS       float64    per-cycle sums, flat rings (layout in :class:`engine.core.plan.Plan`)
ringN       uint16     per-cycle counts (int32 once a bucket could pass 65,535, see below)
ringO       uint16     per-cycle snapshot "value == 1" counts (same dtype as ringN)
ringMin     float64    per-cycle minima (+inf when none)
ringMax     float64    per-cycle maxima (-inf when none)
wS          float64    running window sums of S per (block, series)
wN, wO      int32      running window sums of N, O
wP          int32      cycles with at least one snapshot entity, per window
mmRun       float64    running window minimum / maximum per (extreme block, series); +-inf when none
qv          float64    sorted per-cycle means of the buckets with data, W slots per (window, series)
qn          int32      how many of the W slots are used
cmax        int64      [1]: the largest count written into ringN so far (bounds every bucket)
st_value    float64    latest snapshot value per (feed, field, entity); NaN before the first
st_time     int64      its event time (ns); int64 min before the first
rowc        int32      records added per (base, ring slot): an empty bucket's rows are skipped
==========  =========  ==========================================================

Count rings are uint16 (half the memory of int32; they are most of the state): a bucket holds at
most ``cmax`` + the records of the cycle being added, so before each cycle the engine checks
``cmax + records <= 65,535`` (snapshot buckets: at most ``plan.max_members``) and otherwise widens
both count rings to int32 for good (values unchanged; :meth:`State.widen`).

plus ``last_cycle`` (the last cycle computed, -1 before the first) and the plan fingerprint, so a
state is never loaded into an engine compiled for another catalog, city, cycle or state layout.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ARRAYS = ("ringS", "ringN", "ringO", "ringMin", "ringMax", "wS", "wN", "wO", "wP", "mmRun", "qv", "qn", "cmax",
          "st_value", "st_time", "rowc")
_DTYPES = {"ringS": np.float64, "ringN": np.uint16, "ringO": np.uint16, "ringMin": np.float64,
           "ringMax": np.float64, "wS": np.float64, "wN": np.int32, "wO": np.int32, "wP": np.int32,
           "mmRun": np.float64, "qv": np.float64, "qn": np.int32, "cmax": np.int64,
           "st_value": np.float64, "st_time": np.int64, "rowc": np.int32}
_COUNT_DTYPES = (np.dtype(np.uint16), np.dtype(np.int32))  # ringN / ringO: narrow, or widened
NO_TIME = np.iinfo(np.int64).min


@dataclass
class State:
    """Window state of one engine (see the module docstring).

    Examples
    --------
    >>> import tempfile, os
    >>> from engine import City, Catalog
    >>> from engine.core.plan import compile_plan
    >>> plan = compile_plan(City.synthetic(seed=1, neighbourhoods=10, streets=2, population=20_000), Catalog.load())
    >>> st = State.empty(plan)
    >>> path = os.path.join(tempfile.mkdtemp(), "state.npz")
    >>> st.save(path)
    >>> State.load(path, plan).equals(st)
    True
    """

    ringS: np.ndarray
    ringN: np.ndarray
    ringO: np.ndarray
    ringMin: np.ndarray
    ringMax: np.ndarray
    wS: np.ndarray
    wN: np.ndarray
    wO: np.ndarray
    wP: np.ndarray
    mmRun: np.ndarray
    qv: np.ndarray
    qn: np.ndarray
    cmax: np.ndarray
    st_value: np.ndarray
    st_time: np.ndarray
    rowc: np.ndarray
    last_cycle: int
    fingerprint: str

    @classmethod
    def empty(cls, plan) -> "State":
        """A fresh state for ``plan``: empty rings and sums, no snapshot value yet."""
        r, w = plan.ring_sizes, plan.window_sizes
        from engine.core.plan import COUNT16_MAX

        cdt = np.uint16 if plan.max_members <= COUNT16_MAX else np.int32
        mm = np.empty(plan.mm_size, np.float64)
        for m in range(len(plan.mm_base)):
            n = plan.base_ser0[plan.mm_base[m] + 1] - plan.base_ser0[plan.mm_base[m]]
            mm[plan.mm_off[m]:plan.mm_off[m] + n] = np.inf if plan.mm_stat[m] == 0 else -np.inf
        return cls(
            ringS=np.zeros(r["S"], np.float64), ringN=np.zeros(r["N"], cdt), ringO=np.zeros(r["O"], cdt),
            ringMin=np.full(r["MIN"], np.inf), ringMax=np.full(r["MAX"], -np.inf),
            wS=np.zeros(w["S"], np.float64), wN=np.zeros(w["N"], np.int32), wO=np.zeros(w["O"], np.int32),
            wP=np.zeros(w["P"], np.int32), mmRun=mm, qv=np.zeros(plan.q_size, np.float64),
            qn=np.zeros(plan.q_nsize, np.int32), cmax=np.zeros(1, np.int64),
            st_value=np.full(plan.snap_size, np.nan), st_time=np.full(plan.snap_size, NO_TIME, np.int64),
            rowc=np.zeros(int(plan.base_R.sum()), np.int32), last_cycle=-1, fingerprint=plan.fingerprint,
        )

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays."""
        return int(sum(getattr(self, a).nbytes for a in ARRAYS))

    @property
    def count_wide(self) -> bool:
        """True once the count rings were widened to int32."""
        return self.ringN.dtype != np.uint16

    def widen(self) -> None:
        """Widen the count rings to int32 (values unchanged)."""
        self.ringN = self.ringN.astype(np.int32)
        self.ringO = self.ringO.astype(np.int32)

    def copy(self) -> "State":
        """A deep copy."""
        return State(**{a: getattr(self, a).copy() for a in ARRAYS}, last_cycle=self.last_cycle,
                     fingerprint=self.fingerprint)

    def equals(self, other: "State") -> bool:
        """Bit-for-bit equality (NaN equal to NaN)."""
        if self.last_cycle != other.last_cycle or self.fingerprint != other.fingerprint:
            return False
        return all(np.array_equal(getattr(self, a), getattr(other, a), equal_nan=getattr(self, a).dtype.kind == "f")
                   for a in ARRAYS)

    def save(self, path) -> None:
        """Write the state to ``path`` (``.npz``, uncompressed, exact); written to a temporary file
        first and renamed, so a crash never leaves half a state."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as fh:
            np.savez(fh, **{a: getattr(self, a) for a in ARRAYS},
                     last_cycle=np.int64(self.last_cycle), fingerprint=np.array(self.fingerprint))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path, plan=None) -> "State":
        """Read a state written by :meth:`save`; with ``plan``, check it belongs to that plan."""
        with np.load(Path(path), allow_pickle=False) as z:
            missing = [a for a in ARRAYS + ("last_cycle", "fingerprint") if a not in z.files]
            if missing:
                raise ValueError(f"{str(path)!r} is not an engine state: missing arrays {missing}")
            arrs = {}
            for a in ARRAYS:
                x = z[a]
                if a in ("ringN", "ringO") and x.dtype in _COUNT_DTYPES:
                    arrs[a] = np.ascontiguousarray(x)  # narrow or widened, as saved
                else:
                    arrs[a] = np.ascontiguousarray(x, dtype=_DTYPES[a])
            st = cls(**arrs, last_cycle=int(z["last_cycle"]), fingerprint=str(z["fingerprint"]))
            if st.ringN.dtype != st.ringO.dtype:
                st.widen()
        if plan is not None:
            if st.fingerprint != plan.fingerprint:
                raise ValueError(f"state {str(path)!r} was written for plan {st.fingerprint!r}, "
                                 f"not this engine's plan {plan.fingerprint!r} (other catalog, city or cycle)")
            expect = cls.empty(plan)
            for a in ARRAYS:
                if getattr(st, a).shape != getattr(expect, a).shape:
                    raise ValueError(f"state {str(path)!r}: array {a} has shape {getattr(st, a).shape}, "
                                     f"expected {getattr(expect, a).shape}")
        return st
