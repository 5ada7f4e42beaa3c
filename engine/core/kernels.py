"""The numba kernels of the engine; each writes into preallocated arrays and returns nothing.

One cycle ``k`` (absolute cycle number: the cycle ends at ``k * cycle_ns`` since the epoch) runs:

1. advance - every window block subtracts the bucket that leaves it (``k - W``), every sorted
   window (quantiles) notes that bucket's mean (``qlv``; before any late record changes it);
   then each base clears its ring row for ``k``;
2. bin - events and readings add into their bucket's ring row (a late record into its own, older
   bucket, and straight into the running sums, running extremes and sorted windows that still
   cover it);
3. snapshots - records update the latest value per entity; then (at the start of the add, for
   the bases of the call) each snapshot base aggregates its entities into its bucket ``k``
   (:func:`snap_aggregate`);
4. add - every block adds bucket ``k``; every sorted window replaces the leaving bucket's mean
   (noted in the advance) by bucket ``k``'s in one pass (the same sorted values as deleting it in
   the advance: a window holds a multiset, and equal means are the same bits); every running
   extreme takes it in, or is recomputed from the ring when the bucket that left held it;
5. values - one output row per non-derived indicator (plus a float64 copy of the rows the
   derived formulas read).

:func:`run_cycles` runs steps 1-5 for ``T`` consecutive cycles in one call (a step is ``T = 1``;
a replay chunk many), so a replay and successive steps execute the same operations in the same
order and agree bit for bit. The plan arrays travel as one tuple ``P`` and the state arrays as
one tuple ``S`` (orders: :data:`P_FIELDS`, :data:`S_FIELDS` + :data:`S_SCRATCH`). For big
cities the engine runs the same stage functions (:func:`advance_bases`, :func:`bin_snap`,
:func:`add_bases`, :func:`values_rows`, :func:`derived_rows`) cycle by cycle from Python, each
of stages 1, 3b + 4 and 5 split over threads by bases or rows (the kernels release the GIL);
each base and row is computed by one thread with the same operations, so the numbers are the
same bit for bit.

Compile time (numba compiles a whole specialisation per distinct argument type, callees
included): there is no ``prange`` kernel (it compiled its callees a second time, ~49 s CPU on
the development machine); the threaded driver calls the serial stage functions, which
``run_cycles`` compiles anyway; one value-row function serves every level, and constant flags
are passed as run-time values (a literal ``True`` / ``0`` argument makes numba compile one copy
of the callee per value). One specialisation serves every engine: the output goes through a
(float32, float64) pair of arrays, one of them empty or a sink, and the count rings through a
(uint16, int32) pair, one of them empty (:data:`S_WIDE`).

Checks live in the Python callers (:mod:`engine.core.engine`); kernels trust their inputs.
"""

from __future__ import annotations

import math

import numpy as np
from engine.config import njit

# value codes (see engine.core.plan)
_C_COUNT, _C_EVSUM, _C_RDSUM, _C_MEAN, _C_EVSHARE, _C_SNSHARE, _C_SNSUM, _C_MIN, _C_MAX, _C_QUANT = range(10)

P_FIELDS = ("map_ptr", "map_base", "lookup", "base_ser0", "base_R", "base_Rm", "base_offS", "base_offN", "base_offO",
            "base_offMin", "base_offMax", "base_blk_ptr", "blk_W", "blk_offS", "blk_offN", "blk_offO", "blk_offP",
            "base_mm_ptr", "mm_W", "mm_stat", "mm_off", "base_q_ptr", "q_W", "q_off", "q_noff",
            "snap_bases", "mem_ptr", "mem_cell", "mem_ser",
            "ind_row", "ind_code", "ind_base", "ind_blk", "ind_blk2", "ind_norm", "ind_q", "ind_mult", "ser_region",
            "norm", "ind_d", "base_offRow", "ser_mptr", "cell_mptr", "cell_mem")
S_FIELDS = ("ringS", "ringN", "ringO", "ringMin", "ringMax", "wS", "wN", "wO", "wP", "mmRun", "qv", "qn", "cmax",
            "st_value", "st_time", "rowc")
#: scratch after the state arrays in ``S`` (held by the engine, not saved: a fresh or loaded state
#: starts with ``snap_k`` = -1, which only means one full snapshot aggregation): the cycle each
#: snapshot base last aggregated, and a flag per series whose members' latest values changed since
S_SCRATCH = ("snap_k", "sdirty", "qlv", "qlf", "snap_q", "blk_fx")
# (``qlv`` / ``qlf``, one per sorted-window series: the mean of the bucket leaving the window and
# whether it had data, taken in the advance before any record of the cycle is binned and used by
# the add, which deletes it and inserts the new bucket's mean in one pass: :func:`sorted_replace`;
# ``snap_q``, per base: how many consecutive cycles up to the last one a snapshot base aggregated
# left its bucket equal to the previous bucket (no series aggregated again): 0 after a reset;
# ``blk_fx``, per block: the last time the add computed the block's float sums (a snapshot base)
# every one came out equal to what it was: :func:`add_bases` skips what would not change)
#: last in ``S``: the count rings widened to int32 (:meth:`engine.core.state.State.widen`), empty
#: while ``ringN`` / ``ringO`` are the uint16 ones (and those empty once widened). Both widths
#: travel side by side, so one compiled specialisation serves both: each ring access branches on
#: ``wide`` (the hot loops once per row, through a helper inlined for each width)
S_WIDE = ("ringN32", "ringO32")


# ---------------------------------------------------------------------------------------------
# 0. records: checks, buckets and kernel keys in one pass


@njit
def record_keys(time, feed, a, b, region, cycle_ns, feed_kind, kind, off, mul, alim, blo, bhi, add, nreg,
                bucket, key, reg):
    """Bucket ``ceil(time / cycle_ns)``, kernel key ``off[f] + a * mul[f] + b + add`` and the region
    as int64 of every record of one group (events, readings or snapshots of feed ``f``), into
    ``bucket``, ``key``, ``reg``. Returns (valid, sorted): ``valid`` is False when a record's feed
    is not a position of ``feed_kind`` or not of kind ``kind``, ``a`` is outside ``0 .. alim[f] - 1``,
    ``b`` outside ``blo .. bhi[f] - 1``, or (``nreg >= 0``) its region outside ``0 .. nreg - 1``
    (then the outputs are partly written and the caller reports the bad value); ``sorted``: the
    buckets are in ascending order. ``reg`` empty: the regions are not copied (the caller uses
    ``region`` itself; still checked); ``key`` may be int32 (the caller knows every key fits)."""
    nf = len(feed_kind)
    wreg = len(reg) > 0
    srt = True
    prev = np.iinfo(np.int64).min
    for r in range(len(time)):
        f = feed[r]
        if f < 0 or f >= nf or feed_kind[f] != kind:
            return False, srt
        x = a[r]
        y = b[r]
        g = region[r]
        if x < 0 or x >= alim[f] or y < blo or y >= bhi[f] or (nreg >= 0 and (g < 0 or g >= nreg)):
            return False, srt
        t = -((-time[r]) // cycle_ns)
        if t < prev:
            srt = False
        prev = t
        bucket[r] = t
        key[r] = off[f] + x * mul[f] + y + add
        if wreg:
            reg[r] = g
    return True, srt


@njit
def admit_count(bucket, time, feed, late_ns, k, at):
    """(future, too late, admitted) counts of prepared records at cycle ``k`` ending at ``at``: in
    the future when ``bucket > k``; too late, when not in the future, when ``time <= at -
    late_ns[feed]`` (the step's :meth:`engine.core.engine.Engine._admit`, one pass)."""
    nf = 0
    nl = 0
    for r in range(len(bucket)):
        if bucket[r] > k:
            nf += 1
        elif time[r] <= at - late_ns[feed[r]]:
            nl += 1
    return nf, nl, len(bucket) - nf - nl


# ---------------------------------------------------------------------------------------------
# sorted windows (quantiles)


@njit(inline="always")
def sorted_insert(x, o, n, v):
    """Insert ``v`` into the ascending ``x[o:o+n]`` (NaN last, like ``np.sort``); returns ``n + 1``.
    The caller guarantees room for one more value.

    (No views, here and in the other sorted-window helpers: numba takes a reference (an atomic
    increment and decrement) for every view it cannot prove short-lived, and in the kernels' loops
    it cannot. The shifts index ``x`` with uint64 offsets: no negative-index fix-up per element,
    so they still compile to vector copies.)"""
    if math.isnan(v):
        pos = n
    else:
        lo = 0
        hi = n
        while lo < hi:
            mid = (lo + hi) >> 1
            if x[o + mid] <= v:  # NaN compares False: v goes before it
                lo = mid + 1
            else:
                hi = mid
        pos = lo
    e = np.uint64(o + n)
    for c in range(np.uint64(n - pos)):
        x[e - c] = x[e - c - np.uint64(1)]
    x[o + pos] = v
    return n + 1


@njit(inline="always")
def _shift_down(x, a, m):
    """``x[a:a + m] = x[a + 1:a + m + 1]`` (ascending element copies, uint64 offsets)."""
    d = np.uint64(a)
    for c in range(np.uint64(m)):
        x[d + c] = x[d + c + np.uint64(1)]


@njit(inline="always")
def sorted_delete(x, o, n, v):
    """Delete one value equal to ``v`` (NaN: one NaN) from the ascending ``x[o:o+n]``; returns the
    new length (``n`` when ``v`` is not there)."""
    if math.isnan(v):
        if n == 0 or not math.isnan(x[o + n - 1]):
            return n
        return n - 1
    lo = 0
    hi = n
    while lo < hi:
        mid = (lo + hi) >> 1
        if x[o + mid] < v:
            lo = mid + 1
        else:
            hi = mid
    if lo >= n or x[o + lo] != v:
        return n
    _shift_down(x, o + lo, n - 1 - lo)
    return n - 1


@njit(inline="always")
def sorted_replace(x, o, n, old, v):
    """Delete one value equal to ``old`` from the ascending ``x[o:o+n]`` and insert ``v``; returns
    the new length. The array is the same as :func:`sorted_delete` then :func:`sorted_insert`
    (``n + 1`` and room for one more when ``old`` is not there), in one pass: both positions are
    counted (``x < old``, ``x <= v``: a few vector compares for a window of 96 means, where two
    binary searches mispredict a branch at most steps) and only the values between the two
    positions move by one. A NaN ``old`` or ``v`` (rare) goes through delete then insert."""
    if math.isnan(old) or math.isnan(v):
        return sorted_insert(x, o, sorted_delete(x, o, n, old), v)
    u = np.uint64(o)
    lt = 0
    le = 0
    for i in range(np.uint64(n)):
        e = x[u + i]
        lt += 1 if e < old else 0  # NaN compares False and sorts last: the searches' positions
        le += 1 if e <= v else 0
    if lt >= n or x[o + lt] != old:
        return sorted_insert(x, o, n, v)
    pd = lt  # old's position; v goes at le in x, at le - 1 in x without old when le > pd
    if le > pd:
        pi = le - 1
        _shift_down(x, o + pd, pi - pd)
    else:
        pi = le
        e = np.uint64(o + pd)
        for c in range(np.uint64(pd - pi)):
            x[e - c] = x[e - c - np.uint64(1)]
    x[o + pi] = v
    return n


@njit(inline="always")
def quantile_sorted(x, o, n, q):
    """Linear-interpolation quantile of the sorted ``x[o:o+n]`` (numpy's default method)."""
    if n == 0:
        return np.nan
    pos = q * (n - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, n - 1)
    t = pos - lo
    a = x[o + lo]
    b = x[o + hi]
    d = b - a
    # numpy's _lerp: a + d * t, or b - d * (1 - t) for t >= 0.5
    if t >= 0.5:
        return b - d * (1.0 - t)
    return a + d * t


# ---------------------------------------------------------------------------------------------
# count rings of either width (uint16, or int32 once widened: see S_WIDE)


@njit(inline="always")
def _cnt(a16, a32, wide, o):  # pragma: no cover - compiled
    """Count cell ``o`` of the ring pair (``a32`` when ``wide``, else ``a16``)."""
    if wide:
        return np.int64(a32[o])
    return np.int64(a16[o])


@njit(inline="always")
def _cnt_set(a16, a32, wide, o, v):  # pragma: no cover - compiled
    """Set count cell ``o`` of the ring pair to ``v``."""
    if wide:
        a32[o] = v
    else:
        a16[o] = v


@njit(inline="always")
def _fill(a, o, n, v):  # pragma: no cover - compiled
    """``a[o:o + n] = v`` as an element loop with a uint64 offset (no view: see :func:`sorted_insert`)."""
    u = np.uint64(o)
    for i in range(np.uint64(n)):
        a[u + i] = v


@njit(inline="always")
def _ring_out(w, ring, o, wo, n, pos):  # pragma: no cover - compiled
    """``w[wo:wo + n] -= ring[o:o + n]`` (``pos``: minus 1 where the ring cell is positive).
    (Element loops with uint64 offsets here and below, no views: LLVM vectorises them, and numba
    takes no reference per call; see :func:`sorted_insert`.)"""
    uw = np.uint64(wo)
    ur = np.uint64(o)
    if pos:
        for i in range(np.uint64(n)):
            if ring[ur + i] > 0:
                w[uw + i] -= 1
    else:
        for i in range(np.uint64(n)):
            w[uw + i] -= ring[ur + i]


@njit(inline="always")
def _ring_in(w, r, on, oo, wo, n, pos):  # pragma: no cover - compiled
    """``w[wo:wo + n] += r[on:on + n]`` minus ``r[oo:oo + n]`` when ``oo >= 0`` (``pos``: plus /
    minus 1 where the ring cell is positive)."""
    uw = np.uint64(wo)
    un = np.uint64(on)
    if oo >= 0:
        uo = np.uint64(oo)
        if pos:
            for i in range(np.uint64(n)):
                if r[un + i] > 0:
                    w[uw + i] += 1
                if r[uo + i] > 0:
                    w[uw + i] -= 1
        else:
            for i in range(np.uint64(n)):
                w[uw + i] += r[un + i]
                w[uw + i] -= r[uo + i]
    elif pos:
        for i in range(np.uint64(n)):
            if r[un + i] > 0:
                w[uw + i] += 1
    else:
        for i in range(np.uint64(n)):
            w[uw + i] += r[un + i]


# ---------------------------------------------------------------------------------------------
# 1. advance


@njit
def advance_bases(k, bases, P, S):
    """Stage 1 for the bases listed in ``bases`` (all of them, or one thread's share).

    The plan and state arrays are taken out of ``P`` and ``S`` once a call, before the loop over
    the bases (likewise :func:`add_bases`, :func:`values_rows`): a per-base function that took them
    out itself, inlined into the loop, made numba take a reference to each array it used (an
    atomic ``NRT_incref`` / ``NRT_decref`` pair each) for every base, ~30 pairs a base or row."""
    (map_ptr, map_base, lookup, base_ser0, base_R, base_Rm, base_offS, base_offN, base_offO,
     base_offMin, base_offMax, base_blk_ptr, blk_W, blk_offS, blk_offN, blk_offO, blk_offP,
     base_mm_ptr, mm_W, mm_stat, mm_off, base_q_ptr, q_W, q_off, q_noff,
     snap_bases, mem_ptr, mem_cell, mem_ser,
     ind_row, ind_code, ind_base, ind_blk, ind_blk2, ind_norm, ind_q, ind_mult, ser_region, norm, ind_d,
     base_offRow, ser_mptr, cell_mptr, cell_mem) = P
    (ringS, ringN, ringO, ringMin, ringMax, wS, wN, wO, wP, mmRun, qv, qn, cmax, st_value, st_time, rowc,
     snap_k, sdirty, qlv, qlf, snap_q, blk_fx, ringN32, ringO32) = S
    wide = len(ringN32) > 0  # widened count rings: ringN32 / ringO32 (ringN / ringO empty)
    for j in range(len(bases)):
        b = bases[j]
        n = base_ser0[b + 1] - base_ser0[b]
        R = base_R[b]
        ro = base_offRow[b]
        snap = mem_ptr[b + 1] > mem_ptr[b]
        for bl in range(base_blk_ptr[b], base_blk_ptr[b + 1]):
            if blk_W[bl] < R:  # the leaving bucket stays in the ring: subtracted in add, one pass with the new one
                continue
            if snap and R == 1 and base_offS[b] < 0:  # counts only: snap_aggregate adds each change
                continue
            slot = (k - blk_W[bl]) % R  # the slot of bucket k, cleared below
            if rowc[ro + slot] == 0:  # an empty bucket changes no sum
                continue
            oN = base_offN[b] + slot * n
            if wide:
                _ring_out(wN, ringN32, oN, blk_offN[bl], n, False)
            else:
                _ring_out(wN, ringN, oN, blk_offN[bl], n, False)
            if blk_offP[bl] >= 0:
                if wide:
                    _ring_out(wP, ringN32, oN, blk_offP[bl], n, True)
                else:
                    _ring_out(wP, ringN, oN, blk_offP[bl], n, True)
            if blk_offS[bl] >= 0:
                _ring_out(wS, ringS, base_offS[b] + slot * n, blk_offS[bl], n, False)
            if blk_offO[bl] >= 0:
                oO = base_offO[b] + slot * n
                if wide:
                    _ring_out(wO, ringO32, oO, blk_offO[bl], n, False)
                else:
                    _ring_out(wO, ringO, oO, blk_offO[bl], n, False)
        for qb in range(base_q_ptr[b], base_q_ptr[b + 1]):  # the leaving bucket's means, before binning
            # (the add deletes them: :func:`sorted_replace`)
            W = q_W[qb]
            slot = (k - W) % R
            q0 = q_noff[qb]
            if rowc[ro + slot] == 0:
                for i in range(n):
                    qlf[q0 + i] = 0
                continue
            oN = base_offN[b] + slot * n
            oS = base_offS[b] + slot * n
            for i in range(n):
                c = _cnt(ringN, ringN32, wide, oN + i)
                if c > 0:
                    qlv[q0 + i] = ringS[oS + i] / c
                    qlf[q0 + i] = 1
                else:
                    qlf[q0 + i] = 0
        slot = k % R
        # rows of empty buckets are zero already; a snapshot base writes its whole row when it
        # aggregates (from the previous bucket's row when it can, see snap_aggregate)
        if rowc[ro + slot] != 0 and mem_ptr[b + 1] == mem_ptr[b]:
            rowc[ro + slot] = 0
            o = base_offN[b] + slot * n
            if wide:
                _fill(ringN32, o, n, 0)
            else:
                _fill(ringN, o, n, 0)
            if base_offS[b] >= 0:
                _fill(ringS, base_offS[b] + slot * n, n, 0.0)
            if base_offO[b] >= 0:
                o = base_offO[b] + slot * n
                if wide:
                    _fill(ringO32, o, n, 0)
                else:
                    _fill(ringO, o, n, 0)
        if base_Rm[b] > 0 and not snap:  # (a snapshot base writes its whole extremes' row: snap_aggregate)
            slot = k % base_Rm[b]
            if base_offMin[b] >= 0:
                _fill(ringMin, base_offMin[b] + slot * n, n, np.inf)
            if base_offMax[b] >= 0:
                _fill(ringMax, base_offMax[b] + slot * n, n, -np.inf)


# ---------------------------------------------------------------------------------------------
# 2. bin


@njit
def bin_records(k, lo, hi, bucket, key, region, value, count_nan, P, S, bmask):
    """Add events or readings ``lo .. hi - 1`` (``bucket <= k``) into their buckets and, when late,
    into the running sums, extremes and sorted windows that still cover their bucket. A NaN value
    adds nothing to sums and extremes; it still counts when ``count_nan`` (events: the event
    happened) and is skipped otherwise (readings). Records of a base whose ring no longer holds
    their bucket are ignored for that base (no window of it covers them). Only bases with
    ``bmask[b] != 0`` are touched (all of them, or one thread's share: see :func:`run_cycles`)."""
    (map_ptr, map_base, lookup, base_ser0, base_R, base_Rm, base_offS, base_offN, base_offO,
     base_offMin, base_offMax, base_blk_ptr, blk_W, blk_offS, blk_offN, blk_offO, blk_offP,
     base_mm_ptr, mm_W, mm_stat, mm_off, base_q_ptr, q_W, q_off, q_noff,
     snap_bases, mem_ptr, mem_cell, mem_ser,
     ind_row, ind_code, ind_base, ind_blk, ind_blk2, ind_norm, ind_q, ind_mult, ser_region, norm, ind_d,
     base_offRow, ser_mptr, cell_mptr, cell_mem) = P
    (ringS, ringN, ringO, ringMin, ringMax, wS, wN, wO, wP, mmRun, qv, qn, cmax, st_value, st_time, rowc,
     snap_k, sdirty, qlv, qlf, snap_q, blk_fx, ringN32, ringO32) = S
    wide = len(ringN32) > 0  # widened count rings: ringN32 / ringO32 (ringN / ringO empty)
    cm = cmax[0]
    # slot of bucket k in each base's rings (bucket j = k - d: that slot minus d, wrapped), so that
    # no record pays an integer division
    nb = len(base_R)
    kR = np.empty(nb, np.int64)
    kRm = np.zeros(nb, np.int64)
    # bucket k's cells of each base less its first series (the cell of series s is this plus s),
    # for the records of bucket k (most of them): no slot arithmetic per record
    cN = np.empty(nb, np.int64)
    cS = np.empty(nb, np.int64)
    cMin = np.empty(nb, np.int64)
    cMax = np.empty(nb, np.int64)
    cR = np.empty(nb, np.int64)
    for b in range(nb):
        kR[b] = k % base_R[b]
        n = base_ser0[b + 1] - base_ser0[b]
        cN[b] = base_offN[b] + kR[b] * n - base_ser0[b]
        cS[b] = base_offS[b] + kR[b] * n - base_ser0[b]
        cR[b] = base_offRow[b] + kR[b]
        if base_Rm[b] > 0:
            kRm[b] = k % base_Rm[b]
        cMin[b] = base_offMin[b] + kRm[b] * n - base_ser0[b]
        cMax[b] = base_offMax[b] + kRm[b] * n - base_ser0[b]
    for r in range(lo, hi):
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
            if bmask[b] == 0:
                continue
            s = lookup[b, reg]
            if s < 0:
                continue
            if d == 0:  # bucket k: its cells only (no window holds bucket k before the add)
                oN = cN[b] + s
                c = _cnt(ringN, ringN32, wide, oN) + 1
                _cnt_set(ringN, ringN32, wide, oN, c)
                rowc[cR[b]] += 1
                if c > cm:
                    cm = c
                if has_v:
                    if base_offS[b] >= 0:
                        ringS[cS[b] + s] += v
                    if base_Rm[b] > 0:
                        if base_offMin[b] >= 0:
                            o = cMin[b] + s
                            if v < ringMin[o]:
                                ringMin[o] = v
                        if base_offMax[b] >= 0:
                            o = cMax[b] + s
                            if v > ringMax[o]:
                                ringMax[o] = v
                continue
            i = s - base_ser0[b]
            n = base_ser0[b + 1] - base_ser0[b]
            R = base_R[b]
            if d < R:
                slot = kR[b] - d  # == j % R
                if slot < 0:
                    slot += R
                oN = base_offN[b] + slot * n + i
                oS = base_offS[b] + slot * n + i if base_offS[b] >= 0 else -1
                c = _cnt(ringN, ringN32, wide, oN)
                if d > 0:  # sorted windows holding bucket j: take its old mean out
                    for qb in range(base_q_ptr[b], base_q_ptr[b + 1]):
                        if d < q_W[qb] and c > 0:
                            qc = q_noff[qb] + i
                            qn[qc] = sorted_delete(qv, q_off[qb] + i * q_W[qb], qn[qc], ringS[oS] / c)
                c += 1
                _cnt_set(ringN, ringN32, wide, oN, c)
                rowc[base_offRow[b] + slot] += 1
                if c > cm:
                    cm = c
                if has_v and oS >= 0:
                    ringS[oS] += v
                if d > 0:  # blocks covering bucket j, and those it leaves at this cycle's add (W == d < R:
                    # the add subtracts the whole leaving bucket, this record included)
                    for bl in range(base_blk_ptr[b], base_blk_ptr[b + 1]):
                        if blk_W[bl] >= d:
                            wN[blk_offN[bl] + i] += 1
                            if has_v and blk_offS[bl] >= 0:
                                wS[blk_offS[bl] + i] += v
                    for qb in range(base_q_ptr[b], base_q_ptr[b + 1]):
                        if d < q_W[qb]:  # ... and its new mean in
                            qc = q_noff[qb] + i
                            qn[qc] = sorted_insert(qv, q_off[qb] + i * q_W[qb], qn[qc], ringS[oS] / c)
            Rm = base_Rm[b]
            if has_v and d < Rm:
                slot = kRm[b] - d  # == j % Rm
                if slot < 0:
                    slot += Rm
                if base_offMin[b] >= 0:
                    o = base_offMin[b] + slot * n + i
                    if v < ringMin[o]:
                        ringMin[o] = v
                if base_offMax[b] >= 0:
                    o = base_offMax[b] + slot * n + i
                    if v > ringMax[o]:
                        ringMax[o] = v
                if d > 0:  # running extremes over buckets k - W .. k - 1 (bucket k is added later)
                    for mb in range(base_mm_ptr[b], base_mm_ptr[b + 1]):
                        if d <= mm_W[mb]:
                            o = mm_off[mb] + i
                            if mm_stat[mb] == 0:
                                if v < mmRun[o]:
                                    mmRun[o] = v
                            elif v > mmRun[o]:
                                mmRun[o] = v
    cmax[0] = cm


# ---------------------------------------------------------------------------------------------
# 3. snapshots


@njit
def snap_apply(lo, hi, time, cell, value, st_value, st_time, cell_mptr, cell_mem, mem_ser, sdirty):
    """Keep the latest value per (feed, field, entity) cell; on equal times the later record wins.
    A cell whose value changes (bit for bit: a NaN stays a NaN, 0.0 and -0.0 differ) flags every
    series it is a member of in ``sdirty`` (re-aggregated by :func:`snap_aggregate`)."""
    for r in range(lo, hi):
        c = cell[r]
        if time[r] >= st_time[c]:
            st_time[c] = time[r]
            old = st_value[c]
            v = value[r]
            st_value[c] = v
            if math.isnan(old) and math.isnan(v):
                continue
            if old == v and math.copysign(1.0, old) == math.copysign(1.0, v):
                continue
            for m in range(cell_mptr[c], cell_mptr[c + 1]):
                sdirty[mem_ser[cell_mem[m]]] = 1


@njit(inline="always")
def _snap_series(s, i, oN, oS, oO, oMin, oMax, mem_cell, ser_mptr, st_value, ringN, ringS, ringO, ringMin,
                 ringMax, ringN32, ringO32, wide):
    """Aggregate the latest values of the members of series ``s`` into cell ``i`` of the rows at
    ``oN`` (``oS``, ``oO``, ``oMin``, ``oMax``; -1: absent), which hold zeros / +-inf (the count
    cell is overwritten); returns the members with a value (the count). (The cells are read once
    and written once, the members accumulated in locals: the same operations in the same order.)"""
    c = 0
    hs, ho, hn, hx = oS >= 0, oO >= 0, oMin >= 0, oMax >= 0
    sm = ringS[oS + i] if hs else 0.0
    no = _cnt(ringO, ringO32, wide, oO + i) if ho else 0
    mn = ringMin[oMin + i] if hn else 0.0
    mx = ringMax[oMax + i] if hx else 0.0
    for m in range(ser_mptr[s], ser_mptr[s + 1]):
        v = st_value[mem_cell[m]]
        if math.isnan(v):
            continue
        c += 1
        sm += v
        if v == 1.0:
            no += 1
        if v < mn:
            mn = v
        if v > mx:
            mx = v
    if hs:
        ringS[oS + i] = sm
    if ho:
        _cnt_set(ringO, ringO32, wide, oO + i, no)
    if hn:
        ringMin[oMin + i] = mn
    if hx:
        ringMax[oMax + i] = mx
    _cnt_set(ringN, ringN32, wide, oN + i, c)
    return c


@njit
def snap_aggregate(k, bases, P, S):
    """Aggregate the entities of each snapshot base listed in ``bases`` (others are skipped) into
    its bucket ``k`` (latest values): stage 3b, which :func:`add_bases` runs first for its bases
    (each base's aggregation writes only that base's rows, flags and windows, so all of them
    before the adds give the numbers of each one right before its add).

    When a base aggregated bucket ``k - 1`` (``snap_k``), bucket ``k`` is that row copied, with
    only the series flagged in ``sdirty`` (a member's value changed) aggregated again; else every
    series is aggregated. Both give the same numbers bit for bit: each series adds its members'
    values in the same order (members sorted by series, stable). ``snap_q`` counts the cycles in
    a row that aggregated no series again (bucket equal to the previous one; the copy is skipped
    when the slot already holds such a bucket), which :func:`add_bases` uses to skip the window
    updates that would leave them as they are. (The arrays are taken out of ``P`` and ``S`` once
    a call: see :func:`advance_bases`.)"""
    (map_ptr, map_base, lookup, base_ser0, base_R, base_Rm, base_offS, base_offN, base_offO,
     base_offMin, base_offMax, base_blk_ptr, blk_W, blk_offS, blk_offN, blk_offO, blk_offP,
     base_mm_ptr, mm_W, mm_stat, mm_off, base_q_ptr, q_W, q_off, q_noff,
     snap_bases, mem_ptr, mem_cell, mem_ser,
     ind_row, ind_code, ind_base, ind_blk, ind_blk2, ind_norm, ind_q, ind_mult, ser_region, norm, ind_d,
     base_offRow, ser_mptr, cell_mptr, cell_mem) = P
    (ringS, ringN, ringO, ringMin, ringMax, wS, wN, wO, wP, mmRun, qv, qn, cmax, st_value, st_time, rowc,
     snap_k, sdirty, qlv, qlf, snap_q, blk_fx, ringN32, ringO32) = S
    wide = len(ringN32) > 0  # widened count rings: ringN32 / ringO32 (ringN / ringO empty)
    for j in range(len(bases)):
        b = bases[j]
        if mem_ptr[b + 1] == mem_ptr[b]:  # not a snapshot base
            continue
        n = base_ser0[b + 1] - base_ser0[b]
        s0 = base_ser0[b]
        R = base_R[b]
        slot = k % R
        ro = base_offRow[b]
        oN = base_offN[b] + slot * n
        oS = base_offS[b] + slot * n if base_offS[b] >= 0 else -1
        oO = base_offO[b] + slot * n if base_offO[b] >= 0 else -1
        Rm = base_Rm[b]
        oMin = -1
        oMax = -1
        if Rm > 0:
            sm = k % Rm
            if base_offMin[b] >= 0:
                oMin = base_offMin[b] + sm * n
            if base_offMax[b] >= 0:
                oMax = base_offMax[b] + sm * n
        inc = snap_k[b] == k - 1
        # quiet cycles before this one: buckets k - 1 - q .. k - 1 are equal (and a slot whose bucket
        # is one of them already holds the row the copy below would write: the advance leaves a
        # snapshot base's rows alone)
        q = snap_q[b] if inc else 0
        if inc:  # (element loops, not slice assignments: numba's array-to-array setitem costs
            # seconds of compile time per dtype)
            if R > 1 and q < R - 1:  # (R == 1: the row holds bucket k - 1 still, advance left it)
                ps = (k - 1) % R
                if wide:
                    _copy_run(ringN32, oN, base_offN[b] + ps * n, n)
                else:
                    _copy_run(ringN, oN, base_offN[b] + ps * n, n)
                if oS >= 0:
                    _copy_run(ringS, oS, base_offS[b] + ps * n, n)
                if oO >= 0:
                    if wide:
                        _copy_run(ringO32, oO, base_offO[b] + ps * n, n)
                    else:
                        _copy_run(ringO, oO, base_offO[b] + ps * n, n)
                rowc[ro + slot] = rowc[ro + ps]
            if Rm > 0 and q < Rm - 1:  # Rm = W + 1 >= 2: the previous bucket has its own slot
                pm = (k - 1) % Rm
                if oMin >= 0:
                    _copy_run(ringMin, oMin, base_offMin[b] + pm * n, n)
                if oMax >= 0:
                    _copy_run(ringMax, oMax, base_offMax[b] + pm * n, n)
        # a snapshot base's rowc of a slot is always the sum of that slot's counts (whatever the row
        # holds: bucket k - 1 copied, or an older bucket), so each series aggregated again swaps its
        # count in rowc
        one = R == 1 and oS < 0  # counts only, one bucket: its windows (W == 1) equal the row, and
        # each series aggregated again adds its change to them here (the advance and the add skip
        # them; integers, so the same numbers as the whole row out and in)
        again = 0
        for i in range(n):
            if sdirty[s0 + i] == 0:
                if inc:
                    continue
            else:
                sdirty[s0 + i] = 0
            again += 1
            c0 = _cnt(ringN, ringN32, wide, oN + i)
            o0 = _cnt(ringO, ringO32, wide, oO + i) if oO >= 0 else 0
            rowc[ro + slot] -= c0
            if oS >= 0:
                ringS[oS + i] = 0.0
            if oO >= 0:
                _cnt_set(ringO, ringO32, wide, oO + i, 0)
            if oMin >= 0:
                ringMin[oMin + i] = np.inf
            if oMax >= 0:
                ringMax[oMax + i] = -np.inf
            c1 = _snap_series(s0 + i, i, oN, oS, oO, oMin, oMax, mem_cell, ser_mptr, st_value,
                              ringN, ringS, ringO, ringMin, ringMax, ringN32, ringO32, wide)
            rowc[ro + slot] += c1
            if one:
                o1 = _cnt(ringO, ringO32, wide, oO + i) if oO >= 0 else 0
                for bl in range(base_blk_ptr[b], base_blk_ptr[b + 1]):
                    wN[blk_offN[bl] + i] += c1 - c0
                    if blk_offP[bl] >= 0:
                        wP[blk_offP[bl] + i] += (1 if c1 > 0 else 0) - (1 if c0 > 0 else 0)
                    if blk_offO[bl] >= 0:
                        wO[blk_offO[bl] + i] += o1 - o0
        snap_q[b] = q + 1 if inc and again == 0 else 0
        snap_k[b] = k


@njit(inline="always")
def _mm_slide(ring, mmRun, o, off, k, W, Rm, n, mx):  # pragma: no cover - compiled
    """Slide the running extremes ``mmRun[o:o + n]`` (maxima when ``mx``, else minima) of a base's
    extremes' ring at ``off`` (``Rm`` slots) to buckets ``k - W + 1 .. k``."""
    empty = -np.inf if mx else np.inf
    ol = off + ((k - W) % Rm) * n  # the bucket leaving (still in the ring: Rm > W)
    on = off + (k % Rm) * n
    for i in range(n):
        run = mmRun[o + i]
        vn = ring[on + i]
        if (vn >= run) if mx else (vn <= run):  # the new bucket holds the extreme (whatever left)
            mmRun[o + i] = vn
        elif run != empty and ring[ol + i] == run:  # the extreme left: recompute from the ring
            acc = empty
            sl = k % Rm  # buckets k, k - 1, .. k - W + 1 (slots counted down, wrapped)
            for c in range(W):
                v = ring[off + sl * n + i]
                sl = sl - 1 if sl > 0 else Rm - 1
                if mx:
                    if v > acc:
                        acc = v
                elif v < acc:
                    acc = v
            mmRun[o + i] = acc
        # else the extreme stays (the new bucket does not reach it, and it did not leave)


# ---------------------------------------------------------------------------------------------
# 4. add


@njit
def add_bases(k, bases, P, S):
    """Stages 3b and 4 for the bases listed in ``bases`` (all of them, or one thread's share); the
    arrays are taken out of ``P`` and ``S`` once a call (see :func:`advance_bases`)."""
    (map_ptr, map_base, lookup, base_ser0, base_R, base_Rm, base_offS, base_offN, base_offO,
     base_offMin, base_offMax, base_blk_ptr, blk_W, blk_offS, blk_offN, blk_offO, blk_offP,
     base_mm_ptr, mm_W, mm_stat, mm_off, base_q_ptr, q_W, q_off, q_noff,
     snap_bases, mem_ptr, mem_cell, mem_ser,
     ind_row, ind_code, ind_base, ind_blk, ind_blk2, ind_norm, ind_q, ind_mult, ser_region, norm, ind_d,
     base_offRow, ser_mptr, cell_mptr, cell_mem) = P
    (ringS, ringN, ringO, ringMin, ringMax, wS, wN, wO, wP, mmRun, qv, qn, cmax, st_value, st_time, rowc,
     snap_k, sdirty, qlv, qlf, snap_q, blk_fx, ringN32, ringO32) = S
    wide = len(ringN32) > 0  # widened count rings: ringN32 / ringO32 (ringN / ringO empty)
    snap_aggregate(k, bases, P, S)
    for j in range(len(bases)):
        b = bases[j]
        snap = mem_ptr[b + 1] > mem_ptr[b]
        # a snapshot base: its bucket k aggregated the latest values (snap_aggregate); buckets
        # k - q .. k are equal (q quiet cycles: snap_q), else q = -1
        q = snap_q[b] if snap else -1
        n = base_ser0[b + 1] - base_ser0[b]
        R = base_R[b]
        slot = k % R
        oN = base_offN[b] + slot * n
        ro = base_offRow[b]
        full = rowc[ro + slot] != 0  # an empty bucket adds nothing (its rows are zero)
        for bl in range(base_blk_ptr[b], base_blk_ptr[b + 1]):
            W = blk_W[bl]
            on = slot * n  # the new bucket k
            oo = ((k - W) % R) * n  # the leaving bucket k - W; W == R: subtracted in advance already
            fused = W < R and rowc[ro + (k - W) % R] != 0
            if not (full or fused):
                continue
            if not fused:
                oo = -1
            if snap and R == 1 and base_offS[b] < 0:  # counts only: snap_aggregate added each change
                continue
            # a snapshot base whose buckets k - W .. k are equal: the bucket leaving equals the one
            # coming, the counts stay (integers); the float sums stay when, besides, the last time
            # they were computed (with these same two buckets when q > W) none changed: blk_fx
            same = fused and q >= W
            if not same:  # (ring offsets, -1: no leaving bucket)
                bN = base_offN[b]
                rn = bN + on
                ro_ = bN + oo if oo >= 0 else -1
                if wide:
                    _ring_in(wN, ringN32, rn, ro_, blk_offN[bl], n, False)
                    if blk_offP[bl] >= 0:
                        _ring_in(wP, ringN32, rn, ro_, blk_offP[bl], n, True)
                else:
                    _ring_in(wN, ringN, rn, ro_, blk_offN[bl], n, False)
                    if blk_offP[bl] >= 0:
                        _ring_in(wP, ringN, rn, ro_, blk_offP[bl], n, True)
                if blk_offO[bl] >= 0:
                    bO = base_offO[b]
                    if wide:
                        _ring_in(wO, ringO32, bO + on, bO + oo if oo >= 0 else -1, blk_offO[bl], n, False)
                    else:
                        _ring_in(wO, ringO, bO + on, bO + oo if oo >= 0 else -1, blk_offO[bl], n, False)
            if blk_offS[bl] >= 0 and not (same and q > W and blk_fx[bl] != 0):
                uw = np.uint64(blk_offS[bl])  # (uint64 offsets, no views: see sorted_insert)
                un = np.uint64(base_offS[b] + on)
                if oo >= 0 and snap:  # (noting whether every sum stayed: blk_fx)
                    uo = np.uint64(base_offS[b] + oo)
                    eq = 0
                    for i in range(np.uint64(n)):
                        w = wS[uw + i]
                        x = (w - ringS[uo + i]) + ringS[un + i]
                        eq += 1 if x == w else 0  # (NaN: never equal)
                        wS[uw + i] = x
                    blk_fx[bl] = 1 if eq == n else 0
                elif oo >= 0:
                    uo = np.uint64(base_offS[b] + oo)
                    for i in range(np.uint64(n)):
                        wS[uw + i] = (wS[uw + i] - ringS[uo + i]) + ringS[un + i]
                else:
                    for i in range(np.uint64(n)):
                        wS[uw + i] += ringS[un + i]
                    if snap:
                        blk_fx[bl] = 0
        for qb in range(base_q_ptr[b], base_q_ptr[b + 1]):  # the leaving bucket's mean out, the new one in
            W = q_W[qb]
            oS = base_offS[b] + slot * n
            q0 = q_noff[qb]
            for i in range(n):
                c = _cnt(ringN, ringN32, wide, oN + i) if full else 0
                qc = q0 + i
                if qlf[qc] != 0:
                    if c > 0:
                        qn[qc] = sorted_replace(qv, q_off[qb] + i * W, qn[qc], qlv[qc], ringS[oS + i] / c)
                    else:
                        qn[qc] = sorted_delete(qv, q_off[qb] + i * W, qn[qc], qlv[qc])
                elif c > 0:
                    qn[qc] = sorted_insert(qv, q_off[qb] + i * W, qn[qc], ringS[oS + i] / c)
        Rm = base_Rm[b]
        for mb in range(base_mm_ptr[b], base_mm_ptr[b + 1]):
            W = mm_W[mb]
            if q > W:  # buckets k - 1 - W .. k equal: the running extreme of the previous window (those
                # of k - W .. k - 1) is that bucket's, which bucket k brings again
                continue
            if mm_stat[mb] == 1:  # (one ring or the other passed by name: no array bound by a select)
                _mm_slide(ringMax, mmRun, mm_off[mb], base_offMax[b], k, W, Rm, n, True)
            else:
                _mm_slide(ringMin, mmRun, mm_off[mb], base_offMin[b], k, W, Rm, n, False)


# ---------------------------------------------------------------------------------------------
# 5. values


@njit(inline="always")
def _copy_run(ring, dst, src, n):  # pragma: no cover - compiled
    """``ring[dst:dst + n] = ring[src:src + n]`` (the runs do not overlap) as an element loop
    (numba's array-to-array setitem costs seconds of compile time per dtype) with uint64 offsets
    (no views: see :func:`sorted_insert`)."""
    d = np.uint64(dst)
    s = np.uint64(src)
    for i in range(np.uint64(n)):
        ring[d + i] = ring[s + i]


@njit(inline="always")
def _put_parts(tt, row, n, nreg, s0, ser_region, va, vd, has_d, num, den):
    """Roll-up parts of one row: numerator ``va``, denominator ``vd`` (1 when not ``has_d``);
    regions without a series of the base: NaN over 0."""
    nrow = num[tt, row]
    drow = den[tt, row]
    if n < nreg:
        nrow[:] = np.nan
        drow[:] = 0.0
    for i in range(n):
        r = i if n == nreg else ser_region[s0 + i]
        nrow[r] = va[i]
        drow[r] = vd[i] if has_d else 1.0




@njit(inline="always")
def _ddiv(x, d):  # pragma: no cover - compiled
    """``x / d`` as the stack program's ``/`` (``x / 0`` is NaN): the divisor made nonzero first."""
    v = x / (d if d != 0.0 else 1.0)
    return v if d != 0.0 else np.nan


@njit(inline="always")
def _derived_fused(j, ops, arg, consts, ptr, D, stack, r0, r1):  # pragma: no cover - compiled
    """Derived row ``j`` into ``stack[0]`` in one pass over the regions when its program is one of
    the catalog's common shapes (``a / (b / c)``, ``c * a / b``, ``c * (a - b) / d``,
    ``c * a / (b / e)``, ``a / b``; ``a``, ``b``, ``d``: rows, ``c``, ``e``: constants), regions
    ``r0 .. r1 - 1``; returns False (nothing written) for any other program, which
    :func:`derived_cols` interprets. The same
    operations on the same operands in the same order as the interpreter's passes: the same bits."""
    p = ptr[j]
    m = ptr[j + 1] - p
    if m == 5 and ops[p] == 0 and ops[p + 1] == 0 and ops[p + 2] == 1 and ops[p + 3] == 5 and ops[p + 4] == 5:
        a, b, c = arg[p], arg[p + 1], consts[arg[p + 2]]
        for r in range(r0, r1):
            stack[0, r] = _ddiv(D[0, a, r], _ddiv(D[0, b, r], c))
        return True
    if m == 5 and ops[p] == 1 and ops[p + 1] == 0 and ops[p + 2] == 4 and ops[p + 3] == 0 and ops[p + 4] == 5:
        c, a, b = consts[arg[p]], arg[p + 1], arg[p + 3]
        for r in range(r0, r1):
            stack[0, r] = _ddiv(c * D[0, a, r], D[0, b, r])
        return True
    if (m == 7 and ops[p] == 1 and ops[p + 1] == 0 and ops[p + 2] == 0 and ops[p + 3] == 3 and ops[p + 4] == 4
            and ops[p + 5] == 0 and ops[p + 6] == 5):
        c, a, b, d = consts[arg[p]], arg[p + 1], arg[p + 2], arg[p + 5]
        for r in range(r0, r1):
            stack[0, r] = _ddiv(c * (D[0, a, r] - D[0, b, r]), D[0, d, r])
        return True
    if (m == 7 and ops[p] == 1 and ops[p + 1] == 0 and ops[p + 2] == 4 and ops[p + 3] == 0 and ops[p + 4] == 1
            and ops[p + 5] == 5 and ops[p + 6] == 5):
        c, a, b, e = consts[arg[p]], arg[p + 1], arg[p + 3], consts[arg[p + 4]]
        for r in range(r0, r1):
            stack[0, r] = _ddiv(c * D[0, a, r], _ddiv(D[0, b, r], e))
        return True
    if m == 3 and ops[p] == 0 and ops[p + 1] == 0 and ops[p + 2] == 5:
        a, b = arg[p], arg[p + 1]
        for r in range(r0, r1):
            stack[0, r] = _ddiv(D[0, a, r], D[0, b, r])
        return True
    return False


@njit
def derived_rows(tt, DP, O, D, stack):
    """Evaluate every derived row of cycle ``tt`` from the compact float64 matrix ``D[0]`` (the
    cycle's: one cycle, rewritten every cycle; rows in dependency order, each a stack program over
    whole region vectors; see :meth:`engine.core.derived.DerivedPlan.program`), into ``D[0]`` and
    the output ``O[0][tt]``
    (float32), or ``O[1][tt]`` (float64) when that one is not empty.
    ``stack``: (depth, regions) float64 scratch. Same operations per value as the numpy
    evaluation of :mod:`engine.catalog.expr` (``x / 0`` is NaN; min / max skip NaN)."""
    derived_cols(tt, DP, O, D, stack, 0, D.shape[2])


@njit
def values_rows(tt, rows, P, S, O, D, num, den, parts, scr):
    """Stage 5 into the output ``O`` (see :func:`run_cycles`) at ``tt`` (and ``D[0]``, ``num[tt]``, ``den[tt]``) for the indicators
    listed in ``rows`` (positions in ``ind_row``: all of them, or one thread's share); ``scr``
    (2, regions) float64 scratch of this call alone.

    Output row of indicator ``t``: per code one tight loop computes numerator ``a`` and
    denominator ``d`` into ``scr`` (2, regions), then ``val = mult * (a / d)`` (NaN where
    ``d == 0``; a NaN ``a`` stays NaN) is written into the output row (and its derived copy).
    ``O`` = (float32 output, float64 output): see :func:`run_cycles`.
    With ``parts`` (coarser levels) ``a`` and ``d`` also go into ``num`` / ``den`` (min, max,
    quantile: the value over 1; regions without a series: NaN over 0). (The arrays are taken out
    of ``P`` and ``S`` once a call: see :func:`advance_bases`; the row loops index them with
    uint64 offsets, no views: see :func:`sorted_insert`.)"""
    (map_ptr, map_base, lookup, base_ser0, base_R, base_Rm, base_offS, base_offN, base_offO,
     base_offMin, base_offMax, base_blk_ptr, blk_W, blk_offS, blk_offN, blk_offO, blk_offP,
     base_mm_ptr, mm_W, mm_stat, mm_off, base_q_ptr, q_W, q_off, q_noff,
     snap_bases, mem_ptr, mem_cell, mem_ser,
     ind_row, ind_code, ind_base, ind_blk, ind_blk2, ind_norm, ind_q, ind_mult, ser_region, norm, ind_d,
     base_offRow, ser_mptr, cell_mptr, cell_mem) = P
    (ringS, ringN, ringO, ringMin, ringMax, wS, wN, wO, wP, mmRun, qv, qn, cmax, st_value, st_time, rowc,
     snap_k, sdirty, qlv, qlf, snap_q, blk_fx, ringN32, ringO32) = S
    out, out64 = O
    wide = out64.shape[0] > 0
    nreg = scr.shape[1]
    unreg = np.uint64(nreg)
    for j in range(len(rows)):
        t = rows[j]
        row = ind_row[t]
        code = ind_code[t]
        b = ind_base[t]
        s0 = base_ser0[b]
        n = base_ser0[b + 1] - s0
        un = np.uint64(n)
        nr = ind_norm[t]
        mult = ind_mult[t]
        dd = ind_d[row]
        bl = ind_blk[t]
        if code == _C_COUNT and n == nreg and not wide and not parts and (
                (nr < 0 and mult == 1.0) or (nr >= 0 and dd < 0)):
            # the catalog's most common rows (counts over every region into a float32 output, as
            # they are, or normalised and read by no derived formula): the value pass below in one
            # loop straight into the output row (and its derived copy), the same operations (no
            # scratch row in between)
            oN = np.uint64(blk_offN[bl])
            if nr >= 0:
                for i in range(un):
                    d = norm[nr, i]
                    v = mult * (float(wN[oN + i]) / (d if d != 0.0 else 1.0))
                    out[tt, row, i] = v if d != 0.0 else np.nan
            elif dd >= 0:
                for i in range(un):
                    v = float(wN[oN + i])
                    out[tt, row, i] = v
                    D[0, dd, i] = v
            else:
                for i in range(un):
                    out[tt, row, i] = float(wN[oN + i])
            continue
        has_d = False  # a denominator in scr[1] (else 1)
        scale = True  # val = mult * (a / d); min, max and quantile values are taken as they are
        if code == _C_MIN or code == _C_MAX:
            scale = False
            o = np.uint64(mm_off[bl])
            for i in range(un):
                acc = mmRun[o + i]
                scr[0, i] = acc if not math.isinf(acc) else np.nan
        elif code == _C_QUANT:
            scale = False
            W = q_W[bl]
            q = ind_q[t]
            o0 = q_off[bl]
            n0 = q_noff[bl]
            for i in range(n):
                scr[0, i] = quantile_sorted(qv, o0 + i * W, qn[n0 + i], q)
        else:
            oN = np.uint64(blk_offN[bl])
            oS = np.uint64(max(blk_offS[bl], 0))  # (read only by the codes that have sums)
            if code == _C_COUNT:
                for i in range(un):
                    scr[0, i] = float(wN[oN + i])
            elif code == _C_EVSUM:
                for i in range(un):
                    scr[0, i] = wS[oS + i]
            elif code == _C_RDSUM:
                for i in range(un):
                    scr[0, i] = wS[oS + i] if wN[oN + i] > 0 else np.nan
            elif code == _C_MEAN:
                has_d = True
                for i in range(un):
                    scr[0, i] = wS[oS + i]
                    scr[1, i] = float(wN[oN + i])
            elif code == _C_EVSHARE:
                has_d = True
                oA = np.uint64(blk_offN[ind_blk2[t]])
                for i in range(un):
                    scr[0, i] = float(wN[oN + i])
                    scr[1, i] = float(wN[oA + i])
            elif code == _C_SNSHARE:
                has_d = True
                oO = np.uint64(blk_offO[bl])
                for i in range(un):
                    scr[0, i] = float(wO[oO + i])
                    scr[1, i] = float(wN[oN + i])
            else:  # _C_SNSUM
                oP = np.uint64(blk_offP[bl])
                for i in range(un):  # (divisors made nonzero first: see the value pass below)
                    p = wP[oP + i]
                    v = wS[oS + i] / (p if p > 0 else 1)
                    scr[0, i] = v if p > 0 else np.nan
            if nr >= 0:  # a normalised value divides by the region's denominator (whatever the code)
                has_d = True
                if parts:  # the parts need it in scr[1]; the value pass below reads the norm row itself
                    for i in range(n):
                        scr[1, i] = norm[nr, i if n == nreg else ser_region[s0 + i]]
        if parts:
            _put_parts(tt, row, n, nreg, s0, ser_region, scr[0], scr[1], has_d, num, den)
        # val = mult * (a / d) in place in scr[0] (float64), then copied into the output row (and the
        # derived copy); series i is region i when the base covers every region (series are sorted
        # by region), else the row is NaN where the base has no series. (Each division's divisor is
        # made nonzero first, ``a / (d if d != 0 else 1)``, and the result replaced by NaN where
        # ``d == 0``: the same numbers, but numba's zero-division check, which kept these loops
        # scalar, folds away and LLVM vectorises them.)
        dense = n == nreg
        if not scale or (not has_d and mult == 1.0):
            pass
        elif not has_d:
            for i in range(un):
                scr[0, i] = mult * scr[0, i]
        elif nr >= 0:
            if dense:
                for i in range(un):
                    d = norm[nr, i]
                    v = mult * (scr[0, i] / (d if d != 0.0 else 1.0))
                    scr[0, i] = v if d != 0.0 else np.nan
            else:
                for i in range(n):
                    d = norm[nr, ser_region[s0 + i]]
                    v = mult * (scr[0, i] / (d if d != 0.0 else 1.0))
                    scr[0, i] = v if d != 0.0 else np.nan
        else:
            for i in range(un):
                d = scr[1, i]
                v = mult * (scr[0, i] / (d if d != 0.0 else 1.0))
                scr[0, i] = v if d != 0.0 else np.nan
        # the output row (float64 when ``wide``: the float32 one is a sink) and its derived copy in
        # one pass (loops written out here, not a helper taking the arrays: numba kept a reference
        # count pair per array argument of an inlined helper in this loop)
        if not dense:  # NaN where the base has no series
            if wide:
                for r in range(unreg):
                    out64[tt, row, r] = np.nan
            else:
                for r in range(unreg):
                    out[tt, row, r] = np.nan
            if dd >= 0:
                for r in range(unreg):
                    D[0, dd, r] = np.nan
            for i in range(n):
                r = ser_region[s0 + i]
                v = scr[0, i]
                if wide:
                    out64[tt, row, r] = v
                else:
                    out[tt, row, r] = v
                if dd >= 0:
                    D[0, dd, r] = v
        elif wide:
            if dd >= 0:
                for i in range(un):
                    v = scr[0, i]
                    out64[tt, row, i] = v
                    D[0, dd, i] = v
            else:
                for i in range(un):
                    out64[tt, row, i] = scr[0, i]
        elif dd >= 0:
            for i in range(un):
                v = scr[0, i]
                out[tt, row, i] = v
                D[0, dd, i] = v
        else:
            for i in range(un):
                out[tt, row, i] = scr[0, i]


# ---------------------------------------------------------------------------------------------
# the cycle loop


@njit
def run_cycles(k0, T, ncomp, EV, RD, SN, P, S, O, D, num, den, parts, scr, DP, stack, bases, rows, bptr, rptr, bmask,
               derived):
    """Run cycles ``k0 .. k0 + T - 1``, one thread; compute the values of the last ``ncomp`` of
    them into the output at ``t - (T - ncomp)`` (and ``num``, ``den``). ``D`` (1, compact rows,
    regions) float64: the derived formulas' inputs of the cycle being computed, written by the
    values and read by the derived rows of the same cycle, so one cycle's worth serves a call of
    any length (and every share of the shares driver at once: each writes and reads only its own
    rows).

    ``O`` = (``out``, ``out64``): a float32 output and a float64 one, always both, so that one
    compiled specialisation serves either output dtype. When ``out64`` is empty (``shape[0] ==
    0``) the values go into ``out`` (rounded once from float64); else into ``out64`` and ``out``
    is a (1, 1, regions) sink the value loops write through.

    ``EV`` = (bucket, key, region, value, off, count_nan) of the events sorted by arrival cycle,
    those of cycle ``k0 + t`` being ``off[t] .. off[t + 1] - 1`` (``count_nan``: see
    :func:`bin_records`; a run-time bool, so events and readings share one compiled
    :func:`bin_records`); ``RD`` the same for readings; ``SN`` = (time, cell, value, off) for
    snapshots. ``scr`` is the value kernel's (2, regions) scratch, ``DP`` / ``stack`` the derived
    program and its stack (:func:`derived_rows`), evaluated right after each cycle's values;
    ``bases`` / ``rows``: every base / indicator position, in groups (``bptr`` / ``rptr``: see
    below), ``bmask`` (uint8 per base) 1 for every base, and ``derived`` True; or one thread's share of the whole call: the
    bases of the share (``bmask`` 1 for them, 0 for the others: records and snapshot values of
    other bases are skipped), the indicator rows whose bases (share denominators included) are in
    it, ``DP`` the share's part of the derived program (the derived rows that read only rows of
    the share, :meth:`engine.core.engine.Engine._base_shares`) and ``derived`` True when that part
    is not empty. Shares write disjoint state (by base), output and derived-copy rows; the arrays
    every share writes (``cmax``,
    ``st_value``, ``st_time``, ``sdirty``) are the thread's own copies in its ``S``.

    The add (stages 3b and 4) and the values (stage 5) run group by group: ``bases[bptr[g]:bptr[g +
    1]]`` are added, then the values of ``rows[rptr[g]:rptr[g + 1]]``, the rows whose bases
    (share denominators included) are in groups ``0 .. g`` (:meth:`engine.core.engine.Engine._groups_of`):
    a row's window sums, extremes and sorted windows are read while the add has just written them
    (in the cache), not after every other base's add. Each base's add writes only that base's
    state and a row reads only its bases', so the numbers are those of every add then every row.

    The threaded driver for big cities (:meth:`engine.core.engine.Engine._run_threads`) runs the
    same stage functions cycle by cycle from Python, each stage split over threads by bases or
    rows."""
    for t in range(T):
        k = k0 + t
        advance_bases(k, bases, P, S)
        bin_snap(k, t, EV, RD, SN, P, S, bmask)
        tt = t - (T - ncomp)
        for g in range(len(bptr) - 1):
            add_bases(k, bases[bptr[g]:bptr[g + 1]], P, S)
            if tt >= 0 and rptr[g + 1] > rptr[g]:
                values_rows(tt, rows[rptr[g]:rptr[g + 1]], P, S, O, D, num, den, parts, scr)
        if tt >= 0 and derived and len(DP[4]) > 0:
            derived_rows(tt, DP, O, D, stack)


@njit
def bin_snap(k, t, EV, RD, SN, P, S, bmask):
    """Stages 2 and 3a of cycle ``k`` (the ``t``-th of the call): bin events and readings of the
    bases with ``bmask[b] != 0``, apply snapshot records to the latest values."""
    bin_part(k, t, EV, RD, SN, P, S, bmask, True)


@njit
def bin_part(k, t, EV, RD, SN, P, S, bmask, snap):
    """One thread's part of :func:`bin_snap` (the threaded driver for big cities,
    :meth:`engine.core.engine.Engine._run_threads`): bin the events and readings of cycle ``k``
    into the bases with ``bmask[b] != 0`` only (every thread scans every record and skips the
    other threads' bases; a record's cells, window sums, extremes and sorted windows are its
    base's, so disjoint masks write disjoint state), and apply the snapshot records when ``snap``
    (one thread: the latest values and the changed-series flags are not split). ``S``'s ``cmax``
    is the thread's own (the caller takes the largest). Each base gets its records in the same
    order with the same operations as in :func:`bin_snap`: the same bits."""
    ev_b, ev_k, ev_r, ev_v, ev_o, ev_nan = EV
    rd_b, rd_k, rd_r, rd_v, rd_o, rd_nan = RD
    sn_t, sn_c, sn_v, sn_o = SN
    if ev_o[t + 1] > ev_o[t]:
        bin_records(k, ev_o[t], ev_o[t + 1], ev_b, ev_k, ev_r, ev_v, ev_nan, P, S, bmask)
    if rd_o[t + 1] > rd_o[t]:
        bin_records(k, rd_o[t], rd_o[t + 1], rd_b, rd_k, rd_r, rd_v, rd_nan, P, S, bmask)
    if snap and sn_o[t + 1] > sn_o[t]:
        snap_apply(sn_o[t], sn_o[t + 1], sn_t, sn_c, sn_v, S[13], S[14], P[42], P[43], P[28], S[17])


# ---------------------------------------------------------------------------------------------
# the threaded driver's derived rows split by columns (big cities)


@njit
def derived_cols(tt, DP, O, D, stack, r0, r1):
    """:func:`derived_rows` for regions ``r0 .. r1 - 1`` only (the same stack program; every
    instruction works region by region, so each value gets the same operations: the same bits), so
    that threads can evaluate disjoint column ranges of the derived rows at once, sharing ``D`` and
    ``stack``. (Tiles of 128-2,048 regions, each running the whole program, were not faster at
    6,000 regions: the cost is reading ``D``, not the stack; docs/core.md, twentieth session.)"""
    ops, arg, consts, ptr, out_row, d_pos = DP
    out, out64 = O
    wide = out64.shape[0] > 0
    u0 = np.uint64(r0)
    u1 = np.uint64(r1)
    # (element loops over uint64 region indices of the 2-d / 3-d arrays, no row views: numba takes
    # no reference per instruction; see sorted_insert)
    for j in range(len(out_row)):
        # row j's value in stack[0] in one pass (a common program shape), else interpreted
        p0 = ptr[j + 1] if _derived_fused(j, ops, arg, consts, ptr, D, stack, u0, u1) else ptr[j]
        h = 0
        for pc in range(p0, ptr[j + 1]):
            op = ops[pc]
            if op == 0:  # ref
                a = arg[pc]
                for r in range(u0, u1):
                    stack[h, r] = D[0, a, r]
                h += 1
            elif op == 1:  # num
                c = consts[arg[pc]]
                for r in range(u0, u1):
                    stack[h, r] = c
                h += 1
            elif op == 6 or op == 7:  # neg, abs
                x = h - 1
                if op == 6:
                    for r in range(u0, u1):
                        stack[x, r] = -stack[x, r]
                else:
                    for r in range(u0, u1):
                        stack[x, r] = abs(stack[x, r])
            else:
                h -= 1
                x = h - 1
                y = h
                if op == 2:
                    for r in range(u0, u1):
                        stack[x, r] = stack[x, r] + stack[y, r]
                elif op == 3:
                    for r in range(u0, u1):
                        stack[x, r] = stack[x, r] - stack[y, r]
                elif op == 4:
                    for r in range(u0, u1):
                        stack[x, r] = stack[x, r] * stack[y, r]
                elif op == 5:  # (the divisor made nonzero first: no zero-division check, a vector loop)
                    for r in range(u0, u1):
                        d = stack[y, r]
                        v = stack[x, r] / (d if d != 0.0 else 1.0)
                        stack[x, r] = v if d != 0.0 else np.nan
                elif op == 8:
                    for r in range(u0, u1):
                        if math.isnan(stack[x, r]) or stack[y, r] < stack[x, r]:
                            stack[x, r] = stack[y, r]
                else:
                    for r in range(u0, u1):
                        if math.isnan(stack[x, r]) or stack[y, r] > stack[x, r]:
                            stack[x, r] = stack[y, r]
        dp = d_pos[j]
        orow = out_row[j]
        if wide:
            for r in range(u0, u1):
                v = stack[0, r]
                D[0, dp, r] = v
                out64[tt, orow, r] = v
        else:
            for r in range(u0, u1):
                v = stack[0, r]
                D[0, dp, r] = v
                out[tt, orow, r] = v
