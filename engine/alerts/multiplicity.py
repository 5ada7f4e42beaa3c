"""Multiplicity across the series judged in one cycle: family-wise (Bonferroni) or FDR (Benjamini-Hochberg).

A cycle judges every (indicator, region) series of the city at once: at 1,065 alert-driving
indicators x 30 neighbourhoods (plus the district row) about 33,000 tests, 330,000 at 300
neighbourhoods. A per-series WARN at a tail of 0.01 then raises hundreds of null crossings a
cycle. Here the cycle's statistical tests are one *family*; with ``p = 1 - score`` the tail of a
test and ``m`` the number of tests made this cycle (finite scores of statistical detectors in the
rows that drive alerts, both levels):

- ``"bonferroni"`` (family-wise error): the adjusted tail is ``q = min(1, m p)``;
- ``"bh"`` (false discovery rate, Benjamini-Hochberg step-up): ``q_(k) = min_{j >= k} m p_(j) / j``
  over the tails in increasing order;
- ``"none"``: ``q = p``.

The score handed to the lifecycle is ``1 - min(1, q (1 - WARN) / alpha)``: a series reaches
:data:`engine.levels.WARN` exactly when it is declared at level ``alpha`` across the family
(family-wise error, or FDR, ``alpha``), CRITICAL at ``alpha / 10``; a firing alert stays up
while ``q < 5 alpha`` (CLEAR). The lifecycle, its levels and the alert history are unchanged:
they see one more transform of the score.

Catalog ``threshold`` scores are the operators' own rules, not tail probabilities: they are
neither counted in ``m`` nor adjusted. Rows that drive no alert (``rows`` False: longer windows
of a subject, :mod:`engine.alerts.fold`) are neither counted nor changed.

For ``"bh"`` only tails ``p <= 10 alpha`` are sorted (the rest cannot reach CLEAR: ``q >= p``):
their adjusted tails are exact while below ``10 alpha``; above it, the score is only known to be
below CLEAR (``1 - p (1 - WARN) / alpha``, a bound). Scores are float32: tails below about 6e-8
read as 0.

>>> import numpy as np
>>> s = np.full((3, 4), 0.5, np.float32); s[0, 1] = 1 - 1e-6; s[1, 2] = 0.995
>>> d = np.ones((3, 4), np.int8); d[2, 3] = 4          # one catalog threshold crossing
>>> s[2, 3] = 0.99
>>> dist = np.full((3, 1), 0.5, np.float32)
>>> m = family_adjust(s, d, dist, np.ones((3, 1), np.int8), alpha=0.05)
>>> m, bool(s[0, 1] >= 0.99), bool(s[1, 2] >= 0.99), float(s[2, 3])
(14, True, False, 0.9900000095367432)
"""

from __future__ import annotations

import numpy as np

from engine.config import njit

__all__ = ["METHODS", "SCAN_SHARE", "family_adjust"]

#: share of the family's error given to the cycle's space-time scans (``family_adjust``)
SCAN_SHARE = 0.1

#: multiplicity methods of :class:`engine.alerts.config.AlertConfig` (``multiplicity``)
METHODS = ("bonferroni", "bh", "none")
_CODE = {"none": 0, "bonferroni": 1, "bh": 2}


@njit
def _count(score, det, rows, threshold_code):  # pragma: no cover - compiled
    # branch-free inner loops (NaN and threshold codes are scattered): LLVM vectorises them
    m = 0
    n_ind, n_reg = score.shape
    for i in range(n_ind):
        if rows[i]:
            k = 0
            for r in range(n_reg):
                x = score[i, r]
                k += (x == x) & (det[i, r] != threshold_code)
            m += k
    return m


@njit
def _scale(score, det, rows, threshold_code, factor):  # pragma: no cover - compiled
    """Bonferroni / none: ``score = 1 - min(1, factor (1 - score))`` in place (NaN stays NaN)."""
    n_ind, n_reg = score.shape
    f = np.float32(factor)
    one = np.float32(1.0)
    zero = np.float32(0.0)
    for i in range(n_ind):
        if rows[i]:
            for r in range(n_reg):
                x = score[i, r]
                q = f * (one - x)
                y = zero if q >= one else one - q
                score[i, r] = x if det[i, r] == threshold_code else y


@njit
def _gather(score, det, rows, threshold_code, cut, base, p_out, at_out, n):  # pragma: no cover - compiled
    """Append the tails ``p <= cut`` of statistical scores (and their flat positions + base)."""
    n_ind, n_reg = score.shape
    for i in range(n_ind):
        if rows[i]:
            for r in range(n_reg):
                x = score[i, r]
                if x == x and det[i, r] != threshold_code:
                    p = 1.0 - np.float64(x)
                    if p <= cut:
                        p_out[n] = p
                        at_out[n] = base + i * n_reg + r
                        n += 1
    return n


@njit
def _bh(local, district, p, at, n, m, factor, n_local):  # pragma: no cover - compiled
    """Step-up adjusted tails of the ``n`` gathered tails, written back as scores."""
    order = np.argsort(p[:n], kind="mergesort")
    best = np.inf
    n_reg = local.shape[1]
    for k in range(n - 1, -1, -1):
        j = order[k]
        q = p[j] * m / (k + 1)
        if q < best:
            best = q
        a = factor * best
        s = 0.0 if a >= 1.0 else 1.0 - a
        pos = at[j]
        if pos < n_local:
            local[pos // n_reg, pos % n_reg] = s
        else:
            district[pos - n_local, 0] = s


def family_adjust(local, det, district=None, district_det=None, rows=None, *, method: str = "bonferroni",
                  alpha: float = 0.05, warn: float | None = None, buf: dict | None = None,
                  scan_tests: int = 0, scan_share: float = SCAN_SHARE) -> int:
    """Adjust one cycle's scores for the family of tests made, in place; return ``m``.

    Parameters
    ----------
    local, det : arrays (indicators x regions)
        Scores (float32, changed in place) and detector codes of the finest level.
    district, district_det : arrays (indicators x 1), optional
        The district row (:func:`engine.alerts.common.common_mode`), adjusted in the same family.
    rows : bool array (indicators,), optional
        Rows that drive alerts (:attr:`engine.alerts.fold.Fold.drives`); default all.
    method : {"bonferroni", "bh", "none"}
    alpha : float
        Family-wise error (Bonferroni) or false discovery rate (BH) that maps to WARN.
    warn : float, optional
        The fire level (default :data:`engine.levels.WARN`).
    buf : dict, optional
        Scratch buffers reused between calls (``"bh"``).
    scan_tests : int
        Space-time scans made this cycle (one per scanned indicator). A scan's p-value is
        already corrected over its zones and windows: it is one test, however many regions
        its cluster covers. With ``scan_tests > 0`` the family's error is split (weighted
        Bonferroni): cells the scan drove (detector ``cluster``) get ``scan_share`` of
        ``alpha`` across ``scan_tests`` tests (``q = p scan_tests / scan_share``), every other
        test the rest (``alpha (1 - scan_share)`` with ``method``), so the whole family stays
        at ``alpha``. With 0 (default) cluster cells count as ordinary tests.
    scan_share : float
        Share of ``alpha`` given to the scans (default :data:`SCAN_SHARE`).

    Examples
    --------
    A three-region cluster at p = 1e-5 among 30,000 tests: as ordinary tests it needs
    p <= 0.05 / 30,000; as one of 68 scans, p <= 0.1 * 0.05 / 68.

    >>> from engine.levels import DETECTOR_CODES, WARN
    >>> s = np.full((1000, 30), 0.5, np.float32); d = np.full(s.shape, 1, np.int8)
    >>> s[7, :3] = np.float32(1 - 1e-5); d[7, :3] = DETECTOR_CODES["cluster"]
    >>> a, b = s.copy(), s.copy()
    >>> _ = family_adjust(a, d, alpha=0.05); _ = family_adjust(b, d, alpha=0.05, scan_tests=68)
    >>> bool((a[7, :3] >= WARN).any()), bool((b[7, :3] >= WARN).all())
    (False, True)
    """
    from engine.levels import DETECTOR_CODES, WARN

    if method not in METHODS:
        raise ValueError(f"multiplicity must be one of {METHODS}, got {method!r}")
    if not (0.0 < alpha < 1.0):
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    warn = WARN if warn is None else float(warn)
    if local.ndim != 2 or local.dtype != np.float32 or not local.flags.c_contiguous:
        raise ValueError(f"local must be a C-contiguous float32 indicators x regions array, got {local.dtype} {local.shape}")
    if det.shape != local.shape:
        raise ValueError(f"det has shape {det.shape}, expected {local.shape}")
    rows = np.ones(local.shape[0], np.bool_) if rows is None else np.ascontiguousarray(rows, dtype=np.bool_)
    if rows.shape != (local.shape[0],):
        raise ValueError(f"rows has shape {rows.shape}, expected ({local.shape[0]},)")
    if district is None:
        district = np.empty((local.shape[0], 0), np.float32)
        district_det = np.empty((local.shape[0], 0), np.int8)
    if district.shape not in ((local.shape[0], 1), (local.shape[0], 0)) or district_det.shape != district.shape:
        raise ValueError(f"district / district_det have shapes {district.shape} / {district_det.shape}, "
                         f"expected ({local.shape[0]}, 1)")
    th = DETECTOR_CODES["threshold"]
    if isinstance(scan_tests, bool) or not isinstance(scan_tests, (int, np.integer)) or scan_tests < 0:
        raise ValueError(f"scan_tests must be an integer >= 0, got {scan_tests!r}")
    if scan_tests:
        if not (0.0 < scan_share < 1.0):
            raise ValueError(f"scan_share must be in (0, 1), got {scan_share!r}")
        cl = DETECTOR_CODES["cluster"]
        hit, dhit = det == cl, district_det == cl
        n_hit = int(hit.sum()) + int(dhit.sum())
        # the rest of the family at alpha (1 - scan_share), the scans' cells left out of it
        if n_hit:
            det, district_det = np.where(hit, np.int8(th), det), np.where(dhit, np.int8(th), district_det)
            keep = local[hit], district[dhit]
        m = family_adjust(local, det, district, district_det, rows, method=method, alpha=alpha * (1.0 - scan_share),
                          warn=warn, buf=buf)
        if n_hit:
            f = np.float32(scan_tests / scan_share * (1.0 - warn) / alpha)
            for arr, mask, old_s in ((local, hit, keep[0]), (district, dhit, keep[1])):
                q = f * (np.float32(1.0) - old_s)
                new_s = np.where(q >= 1.0, np.float32(0.0), np.float32(1.0) - q).astype(np.float32)
                sel = mask & rows[:, None]
                arr[sel] = new_s[sel[mask]]
        return int(m) + int(scan_tests)
    m = _count(local, det, rows, th) + _count(district, district_det, rows, th)
    if method == "none" or m == 0:
        return int(m)
    per_warn = (1.0 - warn) / alpha          # adjusted tail alpha -> WARN
    if method == "bonferroni":
        f = m * per_warn
        _scale(local, det, rows, th, f)
        _scale(district, district_det, rows, th, f)
        return int(m)
    # BH: the tails that can reach CLEAR (p <= 10 alpha; q >= p), taken before any change
    size = local.size + district.size
    if buf is None:
        buf = {}
    if buf.get("p") is None or buf["p"].size < size:
        buf["p"], buf["at"] = np.empty(size, np.float64), np.empty(size, np.int64)
    cut = 10.0 * alpha
    n = _gather(local, det, rows, th, cut, 0, buf["p"], buf["at"], 0)
    n = _gather(district, district_det, rows, th, cut, local.size, buf["p"], buf["at"], n)
    # every score gets the bound q >= p, then the gathered ones their exact step-up value
    _scale(local, det, rows, th, per_warn)
    _scale(district, district_det, rows, th, per_warn)
    if n:
        _bh(local, district, buf["p"], buf["at"], n, float(m), per_warn, local.size)
    return int(m)
