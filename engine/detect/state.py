"""The detectors' state: plain numpy arrays, saved and loaded bit for bit.

Per series ``(indicator, region)`` (float32 unless said): ``level`` L, ``spread`` D,
``scale`` S, ``cusum`` (the CUSUM of the bad side: ``C+`` for ``up_bad`` and ``both``, ``C-``
for ``down_bad``; the other side never enters a one-sided score), ``nobs`` (int16, observed
cycles, saturating) and ``last_tag`` (uint8: an 8-bit tag of the last value, to tell a feed's
repeat from an update) -- 19 bytes a series, 334 MB for the full catalog over 6,000
neighbourhoods. Per two-sided (``both``) indicator: ``cusum_neg``, its ``C-`` (row
``Detectors.both_slot[i]``; at least one row, unused when no indicator is two-sided). Per indicator:
``steady`` (bool: every series of the row has been observed ``Detectors.nsat[i]`` cycles -- warm,
learning at its fixed rates -- so the kernel no longer reads or writes its ``nobs``, which stay
frozen at ``>= nsat``),
``shape`` (the shared seasonal profile, one float32 per hour-of-week bin, then -- for a
weekly row's daily fallback, :func:`engine.detect.kernels._step` -- ``2 per_day`` daily bins,
weekday then weekend: ``9 per_day`` floats, 216 for hourly bins) and ``visits`` (int32 per bin). For the indicators the catalog marks for cluster scanning: ring buffers
of the last ``scan_windows`` observed and expected counts per region. Scalars: ``cycle``
(number of the last cycle scored, -1 before the first) and ``ring`` (ring position).

>>> s = DetectorState.empty(n_ind=2, n_reg=3, n_bins=168, n_scan=1, windows=4, n_both=1)
>>> s.level.shape, s.level.dtype, s.nobs.dtype, s.scan_obs.shape, s.cusum_neg.shape
((2, 3), dtype('float32'), dtype('int16'), (1, 4, 3), (1, 3))
>>> s.nbytes_per_series()
19
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from engine.detect.scan import FOUND_FIELDS, MAX_CLUSTERS

__all__ = ["DetectorState"]

_SERIES = ("level", "spread", "scale", "cusum", "nobs", "last_tag")
# 2: one-sided ``cusum``, ``cusum_neg`` of the two-sided rows, ``steady``, ``last_tag``;
# 3: ``shape`` / ``visits`` widened by the daily fallback bins of weekly rows
_FORMAT = "cityvitals-detector-state-4"

#: arrays rebaseline leaves alone (held results, not learned state); see engine.detect.rebaseline
_HELD = ("scan_found",)


@dataclass
class DetectorState:
    """All the state of :class:`engine.detect.Detectors` (see the module docstring)."""

    level: np.ndarray
    spread: np.ndarray
    scale: np.ndarray
    cusum: np.ndarray
    cusum_neg: np.ndarray  # (max(n_both, 1), n_reg): C- of the two-sided indicators
    nobs: np.ndarray
    last_tag: np.ndarray   # uint8: tag of the last value (kernels.value_tag)
    steady: np.ndarray     # bool (n_ind): the row's nobs are frozen (all >= nsat)
    shape: np.ndarray
    visits: np.ndarray
    scan_obs: np.ndarray
    scan_exp: np.ndarray
    cycle: np.ndarray      # int64[1]: cycle number of the last update, -1 before the first
    ring: np.ndarray       # int64[2]: next ring slot, filled slots
    scan_found: np.ndarray  # float64 (max(n_scan, 1), MAX_CLUSTERS, fields): the last scan's clusters,
    #                         held on the cycles between scans (NaN: none); saved so a restart mid-hour holds them

    @classmethod
    def empty(cls, n_ind: int, n_reg: int, n_bins: int, n_scan: int = 0, windows: int = 1,
              n_both: int = 0) -> "DetectorState":
        """A fresh state (nothing learned yet); ``n_both`` two-sided indicators.

        ``n_bins`` hour-of-week bins (a multiple of 7: ``7 per_day``) get ``2 per_day`` daily
        fallback bins after them (``shape`` and ``visits`` of width ``9 per_day``); any other
        ``n_bins`` is taken as is (no fallback bins).

        >>> DetectorState.empty(1, 2, 168).shape.shape, DetectorState.empty(1, 2, 24).shape.shape
        ((1, 216), (1, 24))
        """
        n_bins = int(n_bins) + (2 * (int(n_bins) // 7) if int(n_bins) % 7 == 0 else 0)
        f32 = lambda *shape: np.zeros(shape, dtype=np.float32)  # noqa: E731
        return cls(level=f32(n_ind, n_reg), spread=f32(n_ind, n_reg), scale=f32(n_ind, n_reg),
                   cusum=f32(n_ind, n_reg), cusum_neg=f32(max(int(n_both), 1), n_reg),
                   nobs=np.zeros((n_ind, n_reg), dtype=np.int16), last_tag=np.zeros((n_ind, n_reg), dtype=np.uint8),
                   steady=np.zeros(n_ind, dtype=np.bool_),
                   shape=f32(n_ind, n_bins),
                   visits=np.zeros((n_ind, n_bins), dtype=np.int32),
                   scan_obs=f32(n_scan, windows, n_reg), scan_exp=f32(n_scan, windows, n_reg),
                   cycle=np.full(1, -1, dtype=np.int64), ring=np.zeros(2, dtype=np.int64),
                   scan_found=np.full((max(int(n_scan), 1), MAX_CLUSTERS, len(FOUND_FIELDS)), np.nan))

    @property
    def cusum_pos(self) -> np.ndarray:
        """``cusum`` under its older name (kept for :mod:`engine.detect.series`, whose 1 x 1
        detectors pass it to the kernel as the bad side's sum)."""
        return self.cusum

    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def copy(self) -> "DetectorState":
        return DetectorState(**{k: v.copy() for k, v in self.arrays().items()})

    def nbytes_per_series(self) -> int:
        """State bytes per (indicator, region) series (``cusum_neg`` of the two-sided rows not included)."""
        return int(sum(getattr(self, n).itemsize for n in _SERIES))

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in self.arrays().values()))

    def equals(self, other: "DetectorState") -> bool:
        """True when every array is identical (NaN equal to NaN)."""
        a, b = self.arrays(), other.arrays()
        return all(a[k].dtype == b[k].dtype and a[k].shape == b[k].shape
                   and np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind == "f") for k in a)

    def save(self, path) -> Path:
        """Write the state to ``path`` (a ``.npz``; written to a temporary name, then renamed).

        >>> import tempfile, os
        >>> s = DetectorState.empty(1, 2, 24)
        >>> s.level[0, 1] = 3.5
        >>> p = s.save(os.path.join(tempfile.mkdtemp(), "state.npz"))
        >>> DetectorState.load(p).equals(s)
        True
        """
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as fh:
            np.savez(fh, __format__=np.array(_FORMAT), **self.arrays())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path) -> "DetectorState":
        """Read a state written by :meth:`save` (checks the format tag and every array)."""
        with np.load(Path(path), allow_pickle=False) as z:
            tag = str(z["__format__"]) if "__format__" in z.files else None
            if tag != _FORMAT:
                raise ValueError(f"{str(path)!r} is not a detector state ({_FORMAT}); format tag {tag!r}")
            names = [f.name for f in fields(cls)]
            missing = [n for n in names if n not in z.files]
            if missing:
                raise ValueError(f"detector state {str(path)!r} lacks arrays {missing}")
            state = cls(**{n: z[n] for n in names})
        n_ind, n_reg = state.level.shape
        for n in _SERIES:
            if getattr(state, n).shape != (n_ind, n_reg):
                raise ValueError(f"detector state {str(path)!r}: {n} has shape {getattr(state, n).shape}, "
                                 f"expected {(n_ind, n_reg)}")
        if state.cusum_neg.ndim != 2 or state.cusum_neg.shape[1] != n_reg:
            raise ValueError(f"detector state {str(path)!r}: cusum_neg has shape {state.cusum_neg.shape}, "
                             f"expected (n_both, {n_reg})")
        return state

    def describe(self) -> str:
        return json.dumps({k: list(v.shape) for k, v in self.arrays().items()})
