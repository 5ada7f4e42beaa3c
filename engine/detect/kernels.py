"""The per-cycle detector kernels: one indicator row at a time, parallel over indicators.

:func:`step_indicator` scores and learns one indicator over all its regions at one cycle
(detectors 1-5; the cluster scan is :mod:`engine.detect.scan`). :func:`update_kernel`
runs it for every indicator of one cycle (``prange`` over indicators: each thread owns
whole rows of the state and of the outputs), :func:`run_kernel` for every indicator over
many cycles (``prange`` over indicators, time inside), calling the same function with the
same arguments in the same order, so a batch replay equals successive updates bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from engine.config import njit
from engine.detect.counts import count_score
from engine.detect.cusum import cusum_score, cusum_update
from engine.detect.params import (
    P_CUSUM_CLIP, P_CUSUM_K, P_FLOOR_LEVEL, P_FLOOR_SPREAD, P_HUBER, P_LEVEL_RATE, P_MU_FLOOR,
    P_OVERDISP, P_SCALE_RATE, P_SHAPE_CLIP, P_SHAPE_RATE, P_SPATIAL_MIN, P_SPREAD_RATE,
)
from engine.detect.seasonal import SIGMA_PER_MAD, t_score
from engine.detect.spatial import spatial_pass
from engine.detect.thresholds import threshold_score

__all__ = ["run_kernel", "step_indicator", "update_kernel"]

NOBS_MAX = 32767
VISITS_MAX = 2**31 - 1
CODE_SEASONAL, CODE_COUNT, CODE_CUSUM, CODE_THRESHOLD, CODE_SPATIAL = 1, 2, 3, 4, 5


@njit
def _rate(rate, n):
    # running mean while 1/(n+1) is larger than the EWMA rate
    r = 1.0 / (n + 1.0)
    return r if r > rate else rate


@njit
def step_indicator(x, phase, season, direction, is_count, warn, alarm, warmup, par,
                   L, D, S, CP, CN, N, shape, visits, adj_ptr, adj_idx, spatial,
                   z, score, det, expected, scale, want_baseline, scan_mu, scan_on):  # pragma: no cover
    """Score and learn one indicator at one cycle.

    ``x`` (n_reg) are the values (NaN: no data); ``L, D, S, CP, CN, N`` the indicator's rows
    of the state (updated in place); ``shape, visits`` its profile rows; ``z`` scratch of
    n_reg float64; ``score`` (float32), ``det`` (int8) and, when ``want_baseline``,
    ``expected`` / ``scale`` (float32) its output rows.
    """
    n_reg = x.shape[0]
    a_level = par[P_LEVEL_RATE]
    a_spread = par[P_SPREAD_RATE]
    a_scale = par[P_SCALE_RATE]
    huber = par[P_HUBER]
    k = par[P_CUSUM_K]
    cclip = par[P_CUSUM_CLIP]
    f_spread = par[P_FLOOR_SPREAD]
    f_level = par[P_FLOOR_LEVEL]
    mu_floor = par[P_MU_FLOOR]
    overdisp = par[P_OVERDISP]
    sh = shape[phase] if season > 0 else 0.0
    has_thr = not math.isnan(warn)
    acc = 0.0
    cnt = 0
    v_ph = visits[phase]
    sclip = par[P_SHAPE_CLIP] if v_ph >= 2 else 1e300   # clip once the bin has been seen twice
    for r in range(n_reg):
        xv = x[r]
        n = N[r]
        best = math.nan
        code = 0
        if has_thr:
            best = threshold_score(xv, warn, alarm)
            code = CODE_THRESHOLD
        l = np.float64(L[r])
        d = np.float64(D[r])
        s = np.float64(S[r])
        sigma = SIGMA_PER_MAD * s
        fl = f_spread * d + f_level * abs(l) + 1e-12
        if sigma < fl:
            sigma = fl
        e = l + d * sh
        if is_count:
            mu = e if e > mu_floor else mu_floor
            var = sigma * sigma
            sd = math.sqrt(var if var > mu else mu)
        else:
            mu = e
            var = sigma * sigma
            sd = sigma
        if want_baseline:
            expected[r] = mu if n > 0 else math.nan
            scale[r] = sd if n > 0 else math.nan
        if math.isnan(xv):
            z[r] = math.nan
            if scan_on:
                scan_mu[r] = math.nan
            score[r] = best
            det[r] = code if best > 0.0 else 0
            continue
        if n == 0:
            L[r] = xv
            D[r] = 0.0
            S[r] = 0.0
            N[r] = 1
            z[r] = math.nan
            if scan_on:
                scan_mu[r] = math.nan
            score[r] = best
            det[r] = code if best > 0.0 else 0
            continue
        warm = n >= warmup
        zr = (xv - mu) / sd
        if scan_on:
            scan_mu[r] = mu if warm else math.nan
        if warm:
            if is_count:
                sc = count_score(xv, mu, var, direction, overdisp)
                c2 = CODE_COUNT
            else:
                sc = t_score(zr, direction)
                c2 = CODE_SEASONAL
            if math.isnan(best) or sc > best:
                best = sc
                code = c2
            cp, cn = cusum_update(CP[r], CN[r], zr, k, cclip)
            CP[r] = cp
            CN[r] = cn
            sc = cusum_score(cp, cn, direction, k)
            if sc > best:
                best = sc
                code = CODE_CUSUM
            z[r] = zr
        else:
            z[r] = math.nan
        score[r] = best
        det[r] = code if best > 0.0 else 0
        # --- robust learning
        res = xv - e
        dev = abs(xv - l)
        if warm:
            hub = huber * sigma
            if res > hub:
                res = hub
            elif res < -hub:
                res = -hub
            cap = d + hub
            if dev > cap:
                dev = cap
        L[r] = l + _rate(a_level, n) * res
        S[r] = s + _rate(a_scale, n) * (abs(res) - s)
        D[r] = d + _rate(a_spread, n) * (dev - d)
        N[r] = n + 1 if n < NOBS_MAX else NOBS_MAX
        if season > 0 and d > 0.0:
            delta = (xv - l) / d - sh
            if delta > sclip:
                delta = sclip
            elif delta < -sclip:
                delta = -sclip
            acc += delta
            cnt += 1
    if cnt > 0:
        v = visits[phase]
        shape[phase] = sh + _rate(par[P_SHAPE_RATE], v) * (acc / cnt)
        visits[phase] = v + 1 if v < VISITS_MAX else VISITS_MAX
    if spatial and n_reg > 1:
        spatial_pass(z, adj_ptr, adj_idx, direction, int(par[P_SPATIAL_MIN]), score, det, CODE_SPATIAL)


@njit(parallel=True)
def update_kernel(V, phase_d, phase_w, season, direction, is_count, warn, alarm, warmup, par,
                  L, D, S, CP, CN, N, shape, visits, adj_ptr, adj_idx, spatial,
                  score, det, expected, scale, want_baseline, scan_slot, scan_mu):  # pragma: no cover
    """One cycle for every indicator: ``V`` (n_ind, n_reg) -> ``score``, ``det`` (and baseline)."""
    n_ind, n_reg = V.shape
    for i in prange(n_ind):
        z = np.empty(n_reg, dtype=np.float64)
        ph = phase_w if season[i] == 2 else phase_d
        slot = scan_slot[i]
        step_indicator(V[i], ph, season[i], direction[i], is_count[i], warn[i], alarm[i], warmup[i], par,
                       L[i], D[i], S[i], CP[i], CN[i], N[i], shape[i], visits[i], adj_ptr, adj_idx,
                       spatial, z, score[i], det[i], expected[i], scale[i], want_baseline,
                       scan_mu[slot if slot >= 0 else 0], slot >= 0)


@njit(parallel=True)
def run_kernel(V, phase_d, phase_w, season, direction, is_count, warn, alarm, warmup, par,
               L, D, S, CP, CN, N, shape, visits, adj_ptr, adj_idx, spatial,
               score, det, expected, scale, want_baseline, scan_slot, scan_mu):  # pragma: no cover
    """Many cycles: ``V`` (n_t, n_ind, n_reg), phases (n_t) -> ``score``, ``det`` (n_t, n_ind, n_reg)."""
    n_t, n_ind, n_reg = V.shape
    for i in prange(n_ind):
        z = np.empty(n_reg, dtype=np.float64)
        slot = scan_slot[i]
        for t in range(n_t):
            ph = phase_w[t] if season[i] == 2 else phase_d[t]
            step_indicator(V[t, i], ph, season[i], direction[i], is_count[i], warn[i], alarm[i], warmup[i],
                           par, L[i], D[i], S[i], CP[i], CN[i], N[i], shape[i], visits[i], adj_ptr,
                           adj_idx, spatial, z, score[t, i], det[t, i], expected[t, i], scale[t, i],
                           want_baseline, scan_mu[t, slot if slot >= 0 else 0], slot >= 0)
