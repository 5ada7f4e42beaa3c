"""The numba kernels of one cycle; each writes into preallocated arrays and returns nothing.

One cycle ``k`` (absolute cycle number: the cycle ends at ``k * cycle_ns`` since the epoch) runs:

1. :func:`advance` - every window block subtracts the bucket that leaves it (``k - W``); then each
   base clears its ring row for ``k``;
2. :func:`bin_records` - events and readings add into their bucket's ring row (a late record into
   its own, older bucket, and straight into the running sums of the windows that still cover it);
3. :func:`snap_apply` + :func:`snap_aggregate` - snapshot records update the latest value per
   entity, then each snapshot base aggregates its entities into its bucket ``k``;
4. :func:`add_new` - every block adds bucket ``k``;
5. :func:`compute_values` - one output row per non-derived indicator.

Checks live in the Python callers (:mod:`engine.core.engine`); kernels trust their inputs.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from engine.config import njit

# value codes (see engine.core.plan)
_C_COUNT, _C_EVSUM, _C_RDSUM, _C_MEAN, _C_EVSHARE, _C_SNSHARE, _C_SNSUM, _C_MIN, _C_MAX, _C_QUANT = range(10)


@njit(parallel=True)
def advance(k, base_ser0, base_R, base_Rm, base_offS, base_offN, base_offO, base_offMin, base_offMax,
            base_blk_ptr, blk_W, blk_offS, blk_offN, blk_offO, blk_offP,
            ringS, ringN, ringO, ringMin, ringMax, wS, wN, wO, wP):
    """Subtract bucket ``k - W`` from every block, then clear each base's ring row of bucket ``k``."""
    nb = len(base_R)
    for b in prange(nb):
        n = base_ser0[b + 1] - base_ser0[b]
        R = base_R[b]
        for bl in range(base_blk_ptr[b], base_blk_ptr[b + 1]):
            slot = (k - blk_W[bl]) % R
            oN = base_offN[b] + slot * n
            wo = blk_offN[bl]
            for i in range(n):
                wN[wo + i] -= ringN[oN + i]
            if blk_offP[bl] >= 0:
                wo = blk_offP[bl]
                for i in range(n):
                    if ringN[oN + i] > 0:
                        wP[wo + i] -= 1
            if blk_offS[bl] >= 0:
                oS = base_offS[b] + slot * n
                wo = blk_offS[bl]
                for i in range(n):
                    wS[wo + i] -= ringS[oS + i]
            if blk_offO[bl] >= 0:
                oO = base_offO[b] + slot * n
                wo = blk_offO[bl]
                for i in range(n):
                    wO[wo + i] -= ringO[oO + i]
        slot = k % R
        o = base_offN[b] + slot * n
        ringN[o:o + n] = 0
        if base_offS[b] >= 0:
            o = base_offS[b] + slot * n
            ringS[o:o + n] = 0.0
        if base_offO[b] >= 0:
            o = base_offO[b] + slot * n
            ringO[o:o + n] = 0
        if base_Rm[b] > 0:
            slot = k % base_Rm[b]
            if base_offMin[b] >= 0:
                o = base_offMin[b] + slot * n
                ringMin[o:o + n] = np.inf
            if base_offMax[b] >= 0:
                o = base_offMax[b] + slot * n
                ringMax[o:o + n] = -np.inf


@njit
def bin_records(k, bucket, key, region, value, count_nan, map_ptr, map_base, lookup, base_ser0, base_R, base_Rm,
                base_offS, base_offN, base_offMin, base_offMax, base_blk_ptr, blk_W, blk_offS, blk_offN,
                ringS, ringN, ringMin, ringMax, wS, wN):
    """Add events or readings (``bucket <= k``) into their buckets and, when late, into the running
    sums of the windows that still cover their bucket. A NaN value adds nothing to sums and extremes;
    it still counts when ``count_nan`` (events: the event happened) and is skipped otherwise
    (readings). Records of a base whose ring no longer holds their bucket are ignored for that base
    (no window of it covers them)."""
    for r in range(len(bucket)):
        j = bucket[r]
        d = k - j
        kk = key[r]
        reg = region[r]
        v = value[r]
        has_v = not math.isnan(v)
        if not has_v and not count_nan:
            continue
        for m in range(map_ptr[kk], map_ptr[kk + 1]):
            b = map_base[m]
            s = lookup[b, reg]
            if s < 0:
                continue
            i = s - base_ser0[b]
            n = base_ser0[b + 1] - base_ser0[b]
            R = base_R[b]
            if d < R:
                slot = j % R
                ringN[base_offN[b] + slot * n + i] += 1
                if has_v and base_offS[b] >= 0:
                    ringS[base_offS[b] + slot * n + i] += v
                if d > 0:
                    for bl in range(base_blk_ptr[b], base_blk_ptr[b + 1]):
                        if blk_W[bl] > d:
                            wN[blk_offN[bl] + i] += 1
                            if has_v and blk_offS[bl] >= 0:
                                wS[blk_offS[bl] + i] += v
            Rm = base_Rm[b]
            if has_v and d < Rm:
                slot = j % Rm
                if base_offMin[b] >= 0:
                    o = base_offMin[b] + slot * n + i
                    if v < ringMin[o]:
                        ringMin[o] = v
                if base_offMax[b] >= 0:
                    o = base_offMax[b] + slot * n + i
                    if v > ringMax[o]:
                        ringMax[o] = v


@njit
def snap_apply(time, cell, value, st_value, st_time):
    """Keep the latest value per (feed, field, entity) cell; on equal times the later record wins."""
    for r in range(len(time)):
        c = cell[r]
        if time[r] >= st_time[c]:
            st_time[c] = time[r]
            st_value[c] = value[r]


@njit(parallel=True)
def snap_aggregate(k, snap_bases, mem_ptr, mem_cell, mem_ser, st_value, base_ser0, base_R, base_Rm,
                   base_offS, base_offN, base_offO, base_offMin, base_offMax, ringS, ringN, ringO, ringMin, ringMax):
    """Aggregate each snapshot base's entities (latest values) into its bucket ``k``."""
    for t in prange(len(snap_bases)):
        b = snap_bases[t]
        n = base_ser0[b + 1] - base_ser0[b]
        s0 = base_ser0[b]
        slot = k % base_R[b]
        oN = base_offN[b] + slot * n
        oS = base_offS[b] + slot * n if base_offS[b] >= 0 else -1
        oO = base_offO[b] + slot * n if base_offO[b] >= 0 else -1
        oMin = -1
        oMax = -1
        if base_Rm[b] > 0:
            sm = k % base_Rm[b]
            if base_offMin[b] >= 0:
                oMin = base_offMin[b] + sm * n
            if base_offMax[b] >= 0:
                oMax = base_offMax[b] + sm * n
        for m in range(mem_ptr[b], mem_ptr[b + 1]):
            v = st_value[mem_cell[m]]
            if math.isnan(v):
                continue
            i = mem_ser[m] - s0
            ringN[oN + i] += 1
            if oS >= 0:
                ringS[oS + i] += v
            if oO >= 0 and v == 1.0:
                ringO[oO + i] += 1
            if oMin >= 0 and v < ringMin[oMin + i]:
                ringMin[oMin + i] = v
            if oMax >= 0 and v > ringMax[oMax + i]:
                ringMax[oMax + i] = v


@njit(parallel=True)
def add_new(k, base_ser0, base_R, base_offS, base_offN, base_offO, base_blk_ptr, blk_offS, blk_offN,
            blk_offO, blk_offP, ringS, ringN, ringO, wS, wN, wO, wP):
    """Add bucket ``k`` to every block's running sums."""
    nb = len(base_R)
    for b in prange(nb):
        n = base_ser0[b + 1] - base_ser0[b]
        slot = k % base_R[b]
        oN = base_offN[b] + slot * n
        for bl in range(base_blk_ptr[b], base_blk_ptr[b + 1]):
            wo = blk_offN[bl]
            for i in range(n):
                wN[wo + i] += ringN[oN + i]
            if blk_offP[bl] >= 0:
                wo = blk_offP[bl]
                for i in range(n):
                    if ringN[oN + i] > 0:
                        wP[wo + i] += 1
            if blk_offS[bl] >= 0:
                oS = base_offS[b] + slot * n
                wo = blk_offS[bl]
                for i in range(n):
                    wS[wo + i] += ringS[oS + i]
            if blk_offO[bl] >= 0:
                oO = base_offO[b] + slot * n
                wo = blk_offO[bl]
                for i in range(n):
                    wO[wo + i] += ringO[oO + i]


@njit
def _insertion_sort(x, n):
    for a in range(1, n):
        v = x[a]
        c = a - 1
        while c >= 0 and x[c] > v:
            x[c + 1] = x[c]
            c -= 1
        x[c + 1] = v


@njit
def quantile_sorted(x, n, q):
    """Linear-interpolation quantile of the sorted ``x[:n]`` (numpy's default method)."""
    if n == 0:
        return np.nan
    pos = q * (n - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, n - 1)
    t = pos - lo
    a = x[lo]
    b = x[hi]
    d = b - a
    # numpy's _lerp: a + d * t, or b - d * (1 - t) for t >= 0.5
    if t >= 0.5:
        return b - d * (1.0 - t)
    return a + d * t


@njit(parallel=True)
def compute_values(k, ind_row, ind_code, ind_base, ind_blk, ind_blk2, ind_W, ind_norm, ind_q, ind_mult,
                   base_ser0, base_R, base_Rm, base_offS, base_offN, base_offMin, base_offMax, ser_region,
                   blk_offS, blk_offN, blk_offO, blk_offP, ringS, ringN, ringMin, ringMax, wS, wN, wO, wP,
                   norm, out, num, den, parts):
    """Fill ``out[row, region]`` for every non-derived indicator; with ``parts`` also the roll-up
    numerator ``num`` and denominator ``den`` (value = mult * num / den, or num when den is 1)."""
    nreg = out.shape[1]
    for t in prange(len(ind_row)):
        row = ind_row[t]
        code = ind_code[t]
        b = ind_base[t]
        s0 = base_ser0[b]
        n = base_ser0[b + 1] - s0
        nr = ind_norm[t]
        mult = ind_mult[t]
        for r in range(nreg):
            out[row, r] = np.nan
        if parts:
            for r in range(nreg):
                num[row, r] = np.nan
                den[row, r] = 0.0
        bl = ind_blk[t]
        if code == _C_MIN or code == _C_MAX:
            W = ind_W[t]
            Rm = base_Rm[b]
            off = base_offMin[b] if code == _C_MIN else base_offMax[b]
            for i in range(n):
                acc = np.inf if code == _C_MIN else -np.inf
                for c in range(W):
                    v = ringMin[off + ((k - c) % Rm) * n + i] if code == _C_MIN else ringMax[off + ((k - c) % Rm) * n + i]
                    if code == _C_MIN:
                        if v < acc:
                            acc = v
                    elif v > acc:
                        acc = v
                r = ser_region[s0 + i]
                val = acc if not math.isinf(acc) else np.nan
                out[row, r] = val
                if parts:
                    num[row, r] = val
                    den[row, r] = 1.0
            continue
        if code == _C_QUANT:
            W = ind_W[t]
            R = base_R[b]
            buf = np.empty(W, dtype=np.float64)
            q = ind_q[t]
            for i in range(n):
                m = 0
                for c in range(W):
                    slot = (k - c) % R
                    cnt = ringN[base_offN[b] + slot * n + i]
                    if cnt > 0:
                        buf[m] = ringS[base_offS[b] + slot * n + i] / cnt
                        m += 1
                if m > 32:
                    srt = np.sort(buf[:m])
                    val = quantile_sorted(srt, m, q)
                else:
                    _insertion_sort(buf, m)
                    val = quantile_sorted(buf, m, q)
                r = ser_region[s0 + i]
                out[row, r] = val
                if parts:
                    num[row, r] = val
                    den[row, r] = 1.0
            continue
        for i in range(n):
            r = ser_region[s0 + i]
            a = 0.0
            d = 1.0
            if code == _C_COUNT:
                a = float(wN[blk_offN[bl] + i])
            elif code == _C_EVSUM:
                a = wS[blk_offS[bl] + i]
            elif code == _C_RDSUM:
                a = wS[blk_offS[bl] + i] if wN[blk_offN[bl] + i] > 0 else np.nan
            elif code == _C_MEAN:
                a = wS[blk_offS[bl] + i]
                d = float(wN[blk_offN[bl] + i])
            elif code == _C_EVSHARE:
                a = float(wN[blk_offN[bl] + i])
                d = float(wN[blk_offN[ind_blk2[t]] + i])
            elif code == _C_SNSHARE:
                a = float(wO[blk_offO[bl] + i])
                d = float(wN[blk_offN[bl] + i])
            elif code == _C_SNSUM:
                p = wP[blk_offP[bl] + i]
                a = wS[blk_offS[bl] + i] / p if p > 0 else np.nan
            if nr >= 0:
                d = norm[nr, r]
            if d == 0.0 or math.isnan(a):
                val = np.nan
            elif d == 1.0:
                val = mult * a
            else:
                val = mult * (a / d)
            out[row, r] = val
            if parts:
                num[row, r] = a
                den[row, r] = d
