"""The runner's alert cycle in one kernel: common-mode split, family control and fold to subjects.

A scenario run hands the alert manager each cycle's neighbourhood scores. Before the state
machine they go through three steps, each of which was a pass over the 1,065 alert-driving rows
x 300 neighbourhoods (and the district column):

1. :func:`engine.alerts.common.common_mode`: tails (``looks``), the median split per row, local
   scores and the district column;
2. :func:`engine.alerts.multiplicity.family_adjust`: the cycle's family (Bonferroni, with the
   space-time scans' share of ``alpha``);
3. :meth:`engine.alerts.fold.Fold.apply`: one row per subject, the highest score of its driving
   indicators, with the lead's detector code and value.

:func:`cycle_kernel` does the same arithmetic in two passes: a row pass reads the scores and
codes of each driving row once (counts, the family size, the median of the rows a shared shift
splits, the district column), then the fold computes each member's local and adjusted score as
it reads it. No local score array is written or read back. The results are bit for bit those of
the three steps (the same float32 roundings in the same places; tested in
``tests/test_alerts_cycle.py``).

:func:`alert_part` is the runner's ``_alert_day`` on this kernel: the cycles of a part of a day,
each one kernel call and one :meth:`~engine.alerts.manager.AlertManager.process_folded`. It falls
back to the three steps where the kernel does not apply (``multiplicity="bh"``, or
``alert_per="indicator"``).
"""

from __future__ import annotations

import numpy as np

from engine.alerts.common import MIN_REGIONS
from engine.alerts.multiplicity import SCAN_SHARE
from engine.config import njit
from engine.order_stats import median_inplace

__all__ = ["alert_part", "cycle_kernel", "fold_cycle", "median_inplace"]

INF_BITS = np.int32(0x7F800000)   # the float32 bits of +inf: above it, NaNs


@njit(inline="always")
def _tail32(x, c, looks, th):  # pragma: no cover - compiled
    """``common_mode``'s tail of one score, rounded to float32 as it stores it."""
    p = 1.0 - np.float64(x)
    lp = looks * p
    if lp > 1.0:
        lp = 1.0
    q = p if c == th else lp
    return np.float32(q)


@njit(inline="always")
def _adjusted(y, c, th, cl, scan, stat_on, f_stat, f_scan):  # pragma: no cover - compiled
    """``family_adjust``'s Bonferroni on one local score ``y`` (float32) of code ``c``."""
    one = np.float32(1.0)
    zero = np.float32(0.0)
    if c == th:
        return y
    if scan and c == cl:
        q = f_scan * (one - y)
    elif stat_on:
        q = f_stat * (one - y)
    else:
        return y
    return zero if q >= one else one - q


def _low_cut(looks: float) -> np.float32:
    """The largest float32 score ``x`` whose tail ``min(1, looks (1 - x))`` (float64, as
    ``common_mode`` computes it) is not below 0.5: a score counts as low-tailed (``q < 0.5``)
    exactly when it is above this. The tail does not increase with ``x``, so a bisection over the
    float32 numbers from 0.5 (tail >= 0.5, ``looks >= 1``) to +inf (tail -inf).

    >>> float(_low_cut(1.0)), float(_low_cut(2.0))
    (0.5, 0.75)
    """
    def low(b):
        x = float(np.array(b, np.int32).view(np.float32))
        return min(1.0, looks * (1.0 - x)) < 0.5

    lo, hi = int(np.array(0.5, np.float32).view(np.int32)), int(INF_BITS)
    if low(lo) or not low(hi):
        raise ValueError(f"looks must be >= 1, got {looks!r}")
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if low(mid) else (mid, hi)
    return np.array(lo, np.int32).view(np.float32)[()]


@njit(error_model="numpy")
def cycle_kernel(score, det, value, rows, ptr, members, min_regions, looks, th, cl, scan, stat_on, per_warn,
                 f_scan, row_f, med_buf, row, d_score, d_det, d_val, out_s, out_d, out_v, out_lead,
                 dist_s, dist_d, dist_v, dist_lead, lazy, bound, hot, fire, bits,
                 row_mx, row_mx_f, x_lo, exact):  # pragma: no cover - compiled
    """One cycle: split, family control and fold of both levels; returns the family size ``m``.

    ``lazy``: the neighbourhood level's score only (``out_d``, ``out_v``, ``out_lead`` are not
    written); :func:`fold_cells` gives them at the cells that are read. With ``bound`` as well
    (``hot``: uint8, one per subject row; ``bits``: ``score.view(np.int32)``; ``row_mx``:
    scratch, one int32 per indicator, ``row_mx_f`` its float32 view), the
    score is exact only on the subject rows that are ``hot`` or where a member's cell may reach
    ``fire``; on the other rows it is NaN where the exact score is NaN (every member's score NaN)
    and ``-inf`` elsewhere (below ``fire``, as the exact score is).

    The bound: with family factors ``f_stat`` (when ``on``) and ``f_scan`` (when ``scan``) >= 1
    and ``fire > 0.5``, a member cell's adjusted score is at most ``max(0.5, y(x))``, ``y(x) =
    float32(1 - float32(1 - x))`` (a threshold code's score) of the member row's largest score
    ``x`` <= 1: every step is monotone in ``x``; ``looks >= 1`` and ``min(1, .)`` only raise the
    tail of ``x`` in [0, 1], the split divisor (<= 1) only raises it, and ``1 - f (1 - y)`` with
    ``f >= 1`` is at most ``y`` for ``y >= 0.5`` (``1 - y`` exact in float32) and at most 0.5 below.
    A row whose largest score is above 1 is always exact.
    ``x_lo``: :func:`_low_cut` of ``looks`` (float32). ``exact`` (uint8, one per subject row):
    written, 1 where the row's neighbourhood scores are exact, 0 where not (``bound`` only).
    ``row_f``: scratch (indicators,), the split divisor of each row (0: not split).
    ``med_buf``: scratch (regions,) float64 for the medians; ``row``: scratch (regions,) float32.
    ``d_score`` / ``d_det`` / ``d_val``: the district column (indicators x 1), as ``common_mode`` returns it (before the family
    control). ``out_*``: the folded neighbourhood level (subjects x regions; lead int32);
    ``dist_*``: the folded district level (subjects x 1). ``stat_on``: Bonferroni on the
    statistical scores (``per_warn = (1 - warn) / alpha`` of the family without the scans);
    ``scan``: the cells of code ``cl`` get ``f_scan`` instead.
    """
    n_ind, n_reg = score.shape
    fam = 0
    no_scan = not scan
    bound = lazy and bound
    ninf = np.float32(-np.inf)
    half = np.float32(0.5)
    # pass 1: per driving row, counts (branch-free), the family's tests, the split rows' medians
    for i in range(n_ind):
        row_f[i] = 0.0
        d_score[i, 0] = np.nan
        d_det[i, 0] = 0
        d_val[i, 0] = np.nan
        if not rows[i]:
            continue
        # in float32 and int32 only (they vectorise): ``q`` is NaN exactly where the score is, and
        # ``q < 0.5`` exactly where the score is above ``0.5`` (threshold code) or above ``x_lo``
        # (any other; :func:`_low_cut`). The scores first: most rows are NaN throughout (no
        # opinion), and their codes need not be read.
        m = np.int32(0)
        mx = np.int32(-1)
        for r in range(n_reg):
            x = score[i, r]
            m += np.int32(x == x)
            # the row's largest score >= 0 as its float32 bits (ordered as the numbers; NaN and
            # negative scores left out): an integer max, which vectorises (a float one does not)
            xb = bits[i, r]
            mx = max(mx, xb if xb <= INF_BITS else np.int32(-1))
        low = np.int32(0)
        k = np.int32(0)
        if m > 0:
            for r in range(n_reg):
                x = score[i, r]
                c = det[i, r]
                is_th = c == th
                cut = half if is_th else x_lo
                low += np.int32(x > cut)
                k += np.int32((x == x) & (not is_th) & ((c != cl) | no_scan))
        fam += k
        row_mx[i] = mx
        if m == 0:                           # every score NaN: never split; the fold skips it (below)
            row_f[i] = -1.0
        if m < min_regions:
            continue
        if 2 * low <= m:
            d_score[i, 0] = 0.5
        else:
            n = np.int64(0)     # not the literal 0: one compile of median_inplace, not two
            for r in range(n_reg):
                x = score[i, r]
                if x == x:
                    p = 1.0 - x
                    if det[i, r] != th:
                        p = min(1.0, looks * p)
                    med_buf[n] = p
                    n += 1
            med = median_inplace(med_buf, n)
            d_score[i, 0] = 1.0 - med
            best = np.inf
            code = 0
            val = np.nan
            for r in range(n_reg):
                x = _tail32(score[i, r], det[i, r], looks, th)
                if x == x and abs(x - med) < best:
                    best = abs(x - med)
                    code = det[i, r]
                    val = value[i, r]
            d_det[i, 0] = code
            d_val[i, 0] = val
            f = 2.0 * med
            if f > 1.0:
                f = 1.0
            if f < 1e-12:
                f = 1e-12
            row_f[i] = f
        y = d_score[i, 0]
        c = d_det[i, 0]
        fam += (y == y) & (c != th) & ((c != cl) | no_scan)
    on = stat_on and fam > 0
    f_stat = np.float32(fam * per_warn)
    # the bound (see the docstring) holds when the family factors do not raise a score
    bound = bound and fire > 0.5 and (f_stat >= 1.0 or not on) and (f_scan >= 1.0 or no_scan)
    # pass 2: the fold, each member's local and adjusted score computed as it is read: a member
    # row's scores go to ``row`` first (a branch-free loop: it vectorises), then the max
    one = np.float32(1.0)
    zero = np.float32(0.0)
    n_rows = ptr.shape[0] - 1
    for g in range(n_rows):
        a, b = ptr[g], ptr[g + 1]
        cold = bound and hot[g] == 0
        if cold:
            for j in range(a, b):
                i = members[j]
                x = row_mx_f[i]     # row_mx[i] as a float32; -1 (no score >= 0): NaN
                if row_f[i] >= 0.0 and row_mx[i] >= 0 and (
                        x > 1.0 or np.float32(1.0 - _tail32(x, th, looks, th)) >= fire):
                    cold = False
                    break
        exact[g] = not cold
        if cold:
            # no cell of the row can reach the fire level and no series of it is hot: its NaNs
            # (a cell is NaN only where every member's score is) and -inf elsewhere
            for j in range(a, b):
                i = members[j]
                if j == a:
                    for r in range(n_reg):
                        x = score[i, r]
                        out_s[g, r] = x if x != x else ninf
                elif row_f[i] >= 0.0:
                    for r in range(n_reg):
                        x = score[i, r]
                        out_s[g, r] = ninf if x == x else out_s[g, r]
        for j in range(b if cold else a, b):
            i = members[j]
            f = row_f[i]
            if f < 0.0:                      # a driving row without a score: NaN everywhere, so it
                if j != a:                   # replaces nothing; as the first member it is written
                    continue
                f = 0.0
            # the first member's scores straight into the output, the others' into ``row``
            dst = out_s[g] if j == a else row
            if f == 0.0:                 # not split (most rows): no division
                for r in range(n_reg):
                    c = det[i, r]
                    y = np.float32(1.0 - _tail32(score[i, r], c, looks, th))
                    q = (f_scan if (c == cl) & scan else f_stat) * (one - y)
                    y2 = zero if q >= one else one - q
                    dst[r] = y if (c == th) | (((c != cl) | no_scan) & (not on)) else y2
            else:
                for r in range(n_reg):
                    c = det[i, r]
                    z = _tail32(score[i, r], c, looks, th) / f
                    y = np.float32(0.0 if z >= 1.0 else 1.0 - z)
                    q = (f_scan if (c == cl) & scan else f_stat) * (one - y)
                    y2 = zero if q >= one else one - q
                    dst[r] = y if (c == th) | (((c != cl) | no_scan) & (not on)) else y2
            if j == a:
                if not lazy:
                    for r in range(n_reg):
                        out_lead[g, r] = i
                        out_d[g, r] = det[i, r]
                        out_v[g, r] = value[i, r]
            elif lazy:
                for r in range(n_reg):
                    y = row[r]
                    best = out_s[g, r]
                    out_s[g, r] = y if (y == y) & (not (best >= y)) else best
            else:
                # the lead's code and value follow its score (streamed with the row, no gather after)
                for r in range(n_reg):
                    y = row[r]
                    best = out_s[g, r]
                    # replace when y is a number and the best so far is not >= it (Fold.apply's rule)
                    take = (y == y) & (not (best >= y))
                    out_s[g, r] = y if take else best
                    out_lead[g, r] = i if take else out_lead[g, r]
                    out_d[g, r] = det[i, r] if take else out_d[g, r]
                    out_v[g, r] = value[i, r] if take else out_v[g, r]
        for j in range(a, b):
            i = members[j]
            y = _adjusted(d_score[i, 0], d_det[i, 0], th, cl, scan, on, f_stat, f_scan)
            if j == a or (y == y and not (dist_s[g, 0] >= y)):
                dist_s[g, 0] = y
                dist_lead[g, 0] = i
        ld = dist_lead[g, 0]
        dist_d[g, 0] = d_det[ld, 0]
        dist_v[g, 0] = d_val[ld, 0]
    return fam


@njit(error_model="numpy")
def fold_cells(ks, score, det, value, ptr, members, looks, th, cl, scan, on, f_stat, f_scan, row_f,
               out_s, out_d, out_v, out_lead):  # pragma: no cover - compiled
    """The neighbourhood fold's lead, code and value at the flat cells ``ks`` (subject row x
    regions + region) after a ``lazy`` :func:`cycle_kernel`: each member's adjusted score computed
    as the kernel computes it, merged by the same rule in the same order. Returns how many cells
    had a score other than the kernel's (0: a check)."""
    n_reg = score.shape[1]
    one = np.float32(1.0)
    zero = np.float32(0.0)
    no_scan = not scan
    bad = 0
    for t in range(ks.shape[0]):
        g = ks[t] // n_reg
        r = ks[t] - g * n_reg
        a, b = ptr[g], ptr[g + 1]
        best = np.float32(np.nan)
        lead = members[a]
        for j in range(a, b):
            i = members[j]
            f = row_f[i]
            if f < 0.0:
                if j != a:
                    continue
                f = 0.0
            c = det[i, r]
            if f == 0.0:
                y = np.float32(1.0 - _tail32(score[i, r], c, looks, th))
            else:
                z = _tail32(score[i, r], c, looks, th) / f
                y = np.float32(0.0 if z >= 1.0 else 1.0 - z)
            q = (f_scan if (c == cl) & scan else f_stat) * (one - y)
            y2 = zero if q >= one else one - q
            y = y if (c == th) | (((c != cl) | no_scan) & (not on)) else y2
            if j == a or ((y == y) & (not (best >= y))):
                best = y
                lead = i
        x = out_s[g, r]
        bad += not ((x == best) | ((x != x) & (best != best)))
        out_lead[g, r] = lead
        out_d[g, r] = det[lead, r]
        out_v[g, r] = value[lead, r]
    return bad


def fold_cycle(fold, score, det, value, *, looks: float = 1.0, method: str = "bonferroni", alpha: float = 0.05,
               warn: float | None = None, scan_tests: int = 0, scan_share: float = SCAN_SHARE,
               min_regions: int = MIN_REGIONS, buf: dict | None = None, lazy: bool = False, hot=None):
    """Split, family control and fold of one cycle (what ``common_mode`` + ``family_adjust`` + ``Fold.apply`` give).

    Parameters
    ----------
    fold : engine.alerts.fold.Fold
        The manager's fold (``alert_per="subject"``); its ``drives`` are the rows split and counted.
    score, det, value : arrays (indicators x regions)
        One cycle's scores (float32), detector codes (int8) and values (float32).
    looks, method, alpha, warn, scan_tests, scan_share, min_regions
        As :func:`engine.alerts.common.common_mode` and :func:`engine.alerts.multiplicity.family_adjust`
        (``method`` ``"bonferroni"`` or ``"none"``; ``"bh"`` needs every tail sorted: use the two
        functions).
    buf : dict, optional
        Output and scratch arrays kept between calls (the results of the previous call are overwritten).
    lazy : bool
        Fold the neighbourhood level's scores only: its detector codes, values and leads are left
        as they were, to be completed at the cells that are read by ``buf["fill"](ks)`` (flat
        cells, subject row x regions + region; :func:`fold_cells`). The manager reads them only
        at the series with events and at its firing alerts (``process_folded``'s ``fill``).
    hot : array of uint8 (one per subject row), optional
        With ``lazy``: the subject rows whose neighbourhood scores must be exact (the rows with a
        series that is not inactive or whose flap register still counts:
        :func:`engine.alerts.lifecycle.hot_rows`). On any other row where no member's cell can
        reach ``warn`` (the fire level; a bound from each member row's largest score of each code
        class) the score is only NaN where the exact one is and ``-inf`` elsewhere: what the state
        machine reads of an inactive, quiet series (NaN or not, at the fire level or not).

    Returns
    -------
    dict
        ``"neighbourhood"``: (score, detector, value, lead) folded, subjects x regions;
        ``"district"``: the same, subjects x 1; ``"district_value"``: the unfolded district
        values (indicators x 1); ``"m"``: the family size (``family_adjust``'s return);
        ``"exact"``: uint8 per subject row, 1 where the neighbourhood scores are exact (all 1
        without ``hot``); a row of 0 holds only inactive, quiet series below the fire level.

    Examples
    --------
    >>> from engine.alerts.fold import Fold
    >>> f = Fold(["a.b.x.count_1h", "a.b.y.count_1h"])
    >>> s = np.full((2, 6), 0.5, np.float32); s[1, 2] = 1 - 1e-7
    >>> out = fold_cycle(f, s, np.ones((2, 6), np.int8), np.zeros((2, 6), np.float32), alpha=0.05)
    >>> out["m"], bool(out["neighbourhood"][0][1, 2] > 0.99), out["neighbourhood"][0].shape
    (14, True, (2, 6))
    """
    from engine.levels import DETECTOR_CODES, WARN

    if method not in ("bonferroni", "none"):
        raise ValueError(f"fold_cycle does the 'bonferroni' and 'none' families, got {method!r} "
                         "(use common_mode + family_adjust + Fold.apply)")
    if not (0.0 < alpha < 1.0):
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if not looks >= 1.0:
        raise ValueError(f"looks must be >= 1, got {looks!r}")
    if isinstance(scan_tests, bool) or not isinstance(scan_tests, (int, np.integer)) or scan_tests < 0:
        raise ValueError(f"scan_tests must be an integer >= 0, got {scan_tests!r}")
    if scan_tests and not (0.0 < scan_share < 1.0):
        raise ValueError(f"scan_share must be in (0, 1), got {scan_share!r}")
    s = np.ascontiguousarray(score, dtype=np.float32)
    if s.ndim != 2 or s.shape[0] != len(fold.drives):
        raise ValueError(f"score must be {len(fold.drives)} indicators x regions, got shape {s.shape}")
    d = np.ascontiguousarray(det, dtype=np.int8)
    v = np.ascontiguousarray(value, dtype=np.float32)
    if d.shape != s.shape or v.shape != s.shape:
        raise ValueError(f"det / value have shapes {d.shape} / {v.shape}, expected {s.shape}")
    warn = WARN if warn is None else float(warn)
    n_ind, n_reg = s.shape
    if buf is None:
        buf = {}
    if buf.get("shape") != s.shape:
        rows = (fold.n_rows, n_reg)
        buf.clear()
        buf["shape"] = s.shape
        buf["scratch"] = (np.empty(n_ind, np.float64), np.empty(n_reg, np.float64), np.empty(n_reg, np.float32))
        buf["district_in"] = (np.empty((n_ind, 1), np.float32), np.empty((n_ind, 1), np.int8),
                              np.empty((n_ind, 1), np.float32))
        buf["neighbourhood"] = (np.empty(rows, np.float32), np.empty(rows, np.int8), np.empty(rows, np.float32),
                                np.empty(rows, np.int32))
        buf["district"] = (np.empty((fold.n_rows, 1), np.float32), np.empty((fold.n_rows, 1), np.int8),
                           np.empty((fold.n_rows, 1), np.float32), np.empty((fold.n_rows, 1), np.int32))
        buf["row_mx"] = np.empty(n_ind, np.int32)
        buf["hot1"] = np.ones(fold.n_rows, np.uint8)     # every row hot: the exact scores (no bound)
        buf["exact"] = np.empty(fold.n_rows, np.uint8)
    # the family without the scans' cells gets alpha (1 - scan_share); a cluster cell q = p scan_tests / scan_share
    a_fam = alpha * (1.0 - scan_share) if scan_tests else alpha
    per_warn = (1.0 - warn) / a_fam
    f_scan = np.float32(scan_tests / scan_share * (1.0 - warn) / alpha) if scan_tests else np.float32(0.0)
    th, cl = DETECTOR_CODES["threshold"], DETECTOR_CODES["cluster"]
    if buf.get("looks") != looks:
        buf["looks"] = looks
        buf["x_lo"] = _low_cut(float(looks))
    x_lo = buf["x_lo"]
    if hot is not None:
        if not lazy:
            raise ValueError("hot needs lazy=True (the exact fold writes every row)")
        hot = np.asarray(hot)
        if hot.shape != (fold.n_rows,) or hot.dtype != np.uint8:
            raise ValueError(f"hot must be {fold.n_rows} uint8 (one per subject row), got shape {hot.shape}, "
                             f"dtype {hot.dtype}")
    m = cycle_kernel(s, d, v, np.ascontiguousarray(fold.drives, dtype=np.bool_), fold.ptr, fold.members,
                     int(min_regions), float(looks), np.int8(th), np.int8(cl), bool(scan_tests),
                     method == "bonferroni", float(per_warn), f_scan, *buf["scratch"], *buf["district_in"],
                     *buf["neighbourhood"], *buf["district"], bool(lazy), hot is not None,
                     buf["hot1"] if hot is None else hot, float(warn), s.view(np.int32),
                     buf["row_mx"], buf["row_mx"].view(np.float32), x_lo,
                     buf["exact"])
    buf["m"] = int(m) + int(scan_tests)
    buf["district_value"] = buf["district_in"][2]
    if lazy:
        # the kernel's own f_stat and switch (the same float32 rounding of the same product)
        on = method == "bonferroni" and m > 0
        f_stat = np.float32(int(m) * per_warn)
        args = (s, d, v, fold.ptr, fold.members, float(looks), np.int8(DETECTOR_CODES["threshold"]),
                np.int8(DETECTOR_CODES["cluster"]), bool(scan_tests), on, f_stat, f_scan, buf["scratch"][0],
                *buf["neighbourhood"])

        def fill(ks):
            if fold_cells(np.ascontiguousarray(ks, dtype=np.int64), *args):
                raise AssertionError("fold_cells: a score differs from the cycle kernel's")

        buf["fill"] = fill
    else:
        buf["fill"] = None
    return buf


def alert_part(manager, times, scores, dets, values, buf: list, scan_tests: int = 0) -> None:
    """A part of a day's cycles to the alert manager, as the runner's ``_alert_day`` hands them.

    Each cycle: :func:`fold_cycle` (the district's common part and each neighbourhood's own part,
    the family control over both levels, the fold to subjects), then
    :meth:`~engine.alerts.manager.AlertManager.process_folded` on both levels together (a firing
    district alert inhibits the same subject's neighbourhood alerts in the same cycle). With
    ``multiplicity="bh"`` or ``alert_per="indicator"`` the cycle goes through ``common_mode``,
    ``family_adjust`` and ``process_cycle`` instead (the same results). ``buf``: a list kept
    by the caller between calls (output and scratch arrays).

    Parameters
    ----------
    manager : AlertManager
    times : sequence of cycle times
    scores, dets, values : arrays (cycles x indicators x neighbourhoods)
    buf : list
    scan_tests : int
        Space-time scans made each cycle (:func:`engine.alerts.multiplicity.family_adjust`).
    """
    cfg = manager.config
    if manager.fold.identity or cfg.multiplicity not in ("bonferroni", "none"):
        _alert_part_steps(manager, times, scores, dets, values, buf, scan_tests)
        return
    if not buf:
        buf.append({})
    elif not isinstance(buf[0], dict):
        buf[0] = {}
    fb = buf[0]
    fold = manager.fold
    epochs = _epochs(times)
    with manager.batch():   # the part's store writes in one transaction, its notifications delivered after
        for t in range(len(times)):
            # the neighbourhood scores exact on the rows the state machine reads them (hot_rows), and
            # where a cell may reach the fire level; elsewhere NaN or not is enough
            out = fold_cycle(fold, scores[t], dets[t], values[t], looks=cfg.looks, method=cfg.multiplicity,
                             alpha=cfg.family_alpha, warn=cfg.fire_level, scan_tests=scan_tests, buf=fb, lazy=True,
                             hot=manager.hot_rows("neighbourhood"))
            # the neighbourhoods' codes, values and leads only where the manager reads them
            manager.process_folded(epochs[t], {"district": out["district"] + (out["district_value"],),
                                              "neighbourhood": out["neighbourhood"] + (values[t],)},
                                   fill={"neighbourhood": out["fill"]}, rows={"neighbourhood": out["exact"]})


def _epochs(times) -> list:
    """Epoch seconds of the cycle times: whole seconds of a naive (UTC) datetime64 index read
    directly, anything else through :func:`engine.alerts.config.to_epoch` (the same numbers)."""
    from engine.alerts.config import to_epoch

    a = np.asarray(times)
    if a.dtype == np.dtype("datetime64[ns]"):
        ns = a.view(np.int64)
        if len(ns) and (ns >= 0).all() and not (ns % 1_000_000_000).any():
            return (ns // 1_000_000_000).tolist()
    return [to_epoch(x) for x in times]


def _alert_part_steps(manager, times, scores, dets, values, buf: list, scan_tests: int) -> None:
    """The same as :func:`alert_part` in three steps (``common_mode``, ``family_adjust``, ``process_cycle``)."""
    from engine.alerts.common import common_mode
    from engine.alerts.multiplicity import family_adjust

    cfg = manager.config
    if buf and isinstance(buf[0], dict):
        buf.clear()
    with manager.batch():
        for t in range(len(times)):
            out = common_mode(scores[t], dets[t], values[t], looks=cfg.looks, out=buf[0] if buf else None,
                              rows=manager.fold.drives)
            if not buf:
                buf.extend([out, {}])
            local, district, d_det, d_val = out
            family_adjust(local, dets[t], district, d_det, manager.fold.drives, method=cfg.multiplicity,
                          alpha=cfg.family_alpha, warn=cfg.fire_level, buf=buf[1], scan_tests=scan_tests)
            manager.process_cycle(times[t], {"district": (district, d_det, d_val),
                                             "neighbourhood": (local, dets[t], values[t])})
