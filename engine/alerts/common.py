"""Common-mode split of one cycle's neighbourhood scores: a district part and a local part.

Many series move together: a weekday morning after a weekend, a policy change, the epidemic's
own dynamics shift every neighbourhood of a subject at once. Judged one by one, such a shift
raises an alert in most of the 30 (or 6,000) neighbourhoods. Per indicator and cycle, with
``p = 1 - score`` the tail probability of each neighbourhood (:mod:`engine.levels`) and ``m``
the median of the ``p`` of the neighbourhoods with a score:

- the **district score** is ``1 - m`` (0.5 when ``m >= 0.5``), the typical neighbourhood's score: it reaches
  :data:`engine.levels.WARN` only when more than half of the neighbourhoods are abnormal at the
  same cycle (then one district alert, which inhibits the neighbourhood ones, stands for them);
- the **local score** of a neighbourhood is ``1 - min(1, p / min(1, 2 m))``: its tail probability
  relative to the typical one. With nothing shared, ``m`` is about 0.5 and the score is
  unchanged; when the whole district moves (``m`` small) a neighbourhood scores high only if it
  is much further out than the rest -- the same idea as the spatial detector
  (:mod:`engine.detect.spatial`), on the score scale so it holds for every detector.

Rows with fewer than ``min_regions`` scores are left as they are (district NaN).

>>> import numpy as np
>>> s = np.array([[0.5, 0.6, 0.4, 0.3, 0.9995],          # one outlier: kept
...               [0.995, 0.996, 0.999, 0.9995, 0.997]], np.float32)  # the whole district moves
>>> loc, dist, _, _ = common_mode(s, min_regions=5)
>>> round(float(loc[0, 4]), 4), bool(loc[1].max() < 0.99), round(float(dist[1, 0]), 3)
(0.9995, True, 0.997)
"""

from __future__ import annotations

import numpy as np

from engine.config import njit

__all__ = ["MIN_REGIONS", "common_mode"]

#: fewest neighbourhoods with a score for a row to be split (a median of fewer says little)
MIN_REGIONS = 5


@njit
def _common_kernel(score, det, value, rows, min_regions, looks, threshold_code,
                   out_local, out_district, out_det, out_value):  # pragma: no cover - compiled
    """One thread (no ``prange``): ~0.9 ms a cycle at 2,926 x 300, while the parallel version cost
    twice the compilation (9.6 against 4.5 s CPU on a fresh cache, load 14) for a loop that ran in
    the runner's alert stage at CPU = wall anyway (docs/report.md, fifth session)."""
    n_ind, n_reg = score.shape
    for i in range(n_ind):
        if not rows[i]:
            # a row that drives no alert: not judged (its scores are read by no one downstream)
            out_district[i, 0] = np.nan
            out_det[i, 0] = 0
            out_value[i, 0] = np.nan
            for r in range(n_reg):
                out_local[i, r] = np.nan
            continue
        # tail probabilities, Bonferroni over the looks behind a statistical score; branch-free
        # (NaN stays NaN and counts nowhere), so the loop vectorises whatever the NaN pattern
        m = 0
        low = 0
        for r in range(n_reg):
            p = 1.0 - np.float64(score[i, r])
            lp = looks * p
            if lp > 1.0:
                lp = 1.0
            q = p if det[i, r] == threshold_code else lp
            out_local[i, r] = q
            m += q == q
            low += q < 0.5
        if m < min_regions or 2 * low <= m:
            # too few scores, or the median tail is >= 0.5 (nothing shared): scores stay as they are
            if m < min_regions:
                out_district[i, 0] = np.nan
                out_det[i, 0] = 0
                out_value[i, 0] = np.nan
            else:
                out_district[i, 0] = 0.5  # at most 0.5: far below CLEAR, its exact value is not needed
                out_det[i, 0] = 0
                out_value[i, 0] = np.nan
            for r in range(n_reg):
                x = out_local[i, r]
                if x == x:
                    out_local[i, r] = 1.0 - x
            continue
        # a split row (a shared shift: rare): its tails again in float64, for the median
        buf = np.empty(m, np.float64)
        k = 0
        for r in range(n_reg):
            x = score[i, r]
            if x == x:
                p = 1.0 - x
                if det[i, r] != threshold_code:
                    p = min(1.0, looks * p)
                buf[k] = p
                k += 1
        med = np.median(buf)
        out_district[i, 0] = 1.0 - med
        best = np.inf
        code = 0
        val = np.nan
        for r in range(n_reg):
            x = out_local[i, r]
            if x == x and abs(x - med) < best:
                best = abs(x - med)
                code = det[i, r]
                val = value[i, r]
        out_det[i, 0] = code
        out_value[i, 0] = val
        f = 2.0 * med
        if f > 1.0:
            f = 1.0
        if f < 1e-12:
            f = 1e-12
        for r in range(n_reg):
            x = out_local[i, r]
            if x == x:
                x = x / f
                out_local[i, r] = 0.0 if x >= 1.0 else 1.0 - x


def common_mode(score, detector=None, value=None, min_regions: int = MIN_REGIONS, looks: float = 1.0, out=None,
                rows=None):
    """Split ``score`` (indicators x neighbourhoods) into local scores and a district column.

    Parameters
    ----------
    score, detector, value : arrays (indicators x neighbourhoods)
        One cycle's scores, detector codes (:data:`engine.levels.DETECTORS`) and values.
    min_regions : int
        Fewest scores a row needs to be split (district NaN below it).
    looks : float
        Bonferroni factor on the tail probability of statistical scores (every code but the
        catalog ``threshold``): the number of tests whose maximum the score is (see
        :attr:`engine.alerts.config.AlertConfig.looks`). 1 leaves them as they are.
    out : tuple, optional
        The four output arrays of a previous call, reused.
    rows : bool array (indicators,), optional
        Rows to split (default all); the others come out NaN (no opinion). The runner passes the
        rows that drive alerts (:attr:`engine.alerts.fold.Fold.drives`): the longer windows of a
        subject (1,861 of the 2,926 indicators) are read by no alert, so they are not worked on.

    Returns
    -------
    local, district, district_detector, district_value
        float32 ``score.shape``; float32, int8 and float32 ``(n, 1)``: the district score, the
        detector code and value of the neighbourhood whose tail is nearest the median. When fewer
        than half of the neighbourhoods have a tail below 0.5 (nothing shared: most rows, most
        cycles) the median is not computed: local scores are the (Bonferroni-adjusted) scores,
        the district score is 0.5 (an upper bound of ``1 - m``, far below CLEAR), code 0, value NaN.
    """
    from engine.levels import DETECTOR_CODES

    s = np.ascontiguousarray(score, dtype=np.float32)
    if s.ndim != 2:
        raise ValueError(f"score must be indicators x regions, got shape {s.shape}")
    d = np.zeros(s.shape, np.int8) if detector is None else np.ascontiguousarray(detector, dtype=np.int8)
    v = np.full_like(s, np.nan) if value is None else np.ascontiguousarray(value, dtype=np.float32)
    if v.shape != s.shape or d.shape != s.shape:
        raise ValueError(f"detector / value have shapes {d.shape} / {v.shape}, expected {s.shape}")
    if not looks >= 1.0:
        raise ValueError(f"looks must be >= 1, got {looks!r}")
    n = s.shape[0]
    rows = np.ones(n, np.bool_) if rows is None else np.ascontiguousarray(rows, dtype=np.bool_)
    if rows.shape != (n,):
        raise ValueError(f"rows has shape {rows.shape}, expected ({n},)")
    if out is None:
        out = (np.empty_like(s), np.empty((n, 1), np.float32), np.empty((n, 1), np.int8), np.empty((n, 1), np.float32))
    _common_kernel(s, d, v, rows, int(min_regions), float(looks), DETECTOR_CODES["threshold"], *out)
    return out
