"""The per-cycle detector kernels: one indicator row at a time, parallel over indicators.

:func:`step_indicator` scores and learns one indicator over all its regions at one cycle
(detectors 1-5; the cluster scan is :mod:`engine.detect.scan`). :func:`update_kernel`
runs it for every indicator of one cycle (``prange`` over indicators in chunks, see
:data:`CHUNK`: each thread owns whole rows of the state and of the outputs),
:func:`run_kernel` for every indicator over many cycles (time inside), calling the same
function with the same arguments in the same order, so a batch replay equals successive
updates bit for bit.

Speed (docs/detect.md): the row is scored in one branch-free pass over the regions
(:func:`_row_pass`: every case -- missing value, first observation, warm-up, warm -- is
computed and selected, so LLVM vectorises the loop; the t(4) tail is algebraic and the
CUSUM's ``exp`` is the polynomial :func:`exp_neg`, exact to ~1e-12 on the capped CUSUM's
range). The count tail runs in a second vectorised pass over count rows
(:func:`_count_vec_pass`: the first 16 probability masses summed in float32); only counts
or expectations beyond its range, on the bad side, go to the exact scalar tail
(:func:`engine.detect.counts.count_score`, :func:`_count_fallback`).
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir as llvm_ir
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from engine.config import njit
from engine.detect.counts import count_score
from engine.detect.params import (
    P_AMP_RATE, P_CUSUM_CAP, P_CUSUM_CLIP, P_CUSUM_K, P_FALLBACK, P_FLOOR_LEVEL, P_FLOOR_SPREAD, P_HUBER, P_LEVEL_RATE,
    P_MU_FLOOR, P_OVERDISP, P_SCALE_RATE, P_SHAPE_CLIP, P_SHAPE_RATE, P_SPATIAL_MIN, P_SPREAD_RATE,
)
from engine.detect.seasonal import SIGMA_PER_MAD
from engine.detect.spatial import (
    LANES, spatial_clip, spatial_lanes_in64, spatial_lanes_out, spatial_lanes_raise, spatial_pass, spatial_raise,
    spatial_score8w, spatial_sparse,
)
from engine.levels import CRITICAL, WARN
from engine.llvm_attrs import _wide, host_has_avx512

__all__ = ["CHUNK", "exp_neg", "exp_neg32", "log32", "run_kernel", "step_indicator", "update_kernel", "value_tag"]

NOBS_MAX = 32767
VISITS_MAX = 2**31 - 1
CODE_SEASONAL, CODE_COUNT, CODE_CUSUM, CODE_THRESHOLD, CODE_SPATIAL = 1, 2, 3, 4, 5
_WARN = float(WARN)  # a threshold score at or above it is a crossed catalog level
_CRITICAL = float(CRITICAL)
#: rows in a chunk of :func:`update_kernel` and :func:`run_kernel`: each kernel deals its chunks to
#: ``n_workers`` workers in turn (worker ``w`` takes chunks ``w, w + n_workers, ...``), because numba
#: splits a ``prange`` statically into one contiguous block per thread (``set_parallel_chunksize`` does
#: not change that under the omp layer) and the catalog's costly rows sit in runs: contiguous halves
#: were 8-21 % apart on the demo's parts, dealt chunks 0.4-1.8 % (docs/detect.md, "Single-cycle update
#: ... (tenth session)" and "Detectors stage ... (eleventh session)")
CHUNK = 8
#: the row pass may reassociate sums (the shape accumulator) and fuse multiply-adds;
#: it keeps IEEE NaN semantics (no ``nnan``), which the missing-data logic relies on
_FAST = {"reassoc", "contract"}
# float32 constants of the row pass (a Python float would promote its arithmetic to float64)
_0, _05, _1, _2, _4 = np.float32(0.0), np.float32(0.5), np.float32(1.0), np.float32(2.0), np.float32(4.0)
_NAN = np.float32(np.nan)
_NOBS_MAX = np.float32(NOBS_MAX)
_C_NONE, _C_SEASONAL, _C_COUNT, _C_CUSUM = np.int8(0), np.int8(CODE_SEASONAL), np.int8(CODE_COUNT), np.int8(CODE_CUSUM)
_C_THRESHOLD = np.int8(CODE_THRESHOLD)
_TINY = np.float32(1e-12)
_SIG = np.float32(SIGMA_PER_MAD)
#: floor of the expected counts handed to the scan (keeps a Poisson mean > 0; far below real rates)
SCAN_MU_FLOOR = 1e-3
_BIG = np.float32(1e30)          # no shape clip (times a spread: stays finite, 0 for a zero spread)
#: city rules: the largest push of one region on a profile bin while the bin is being set (in its
#: spreads ``D``; a profile peaking once a day in 15-minute bins reaches ~50): a region whose spread
#: is still ~0 (a sparse count of zeros, then a 1) pushed ~1e12 before, and the shared bin with it
SHAPE_PUSH_MAX = 64.0
_PMAX = np.float32(SHAPE_PUSH_MAX)
_AMAX = np.float32(1e6)          # |z| cap in the t(4) tail (its tail there is ~1e-24: score 1)


@njit(fastmath=_FAST, inline="always")
def exp_neg(y):
    """``exp(y)`` for ``y <= 0`` by a polynomial (no libm call: vectorises).

    ``y`` is clamped at -40 (``exp(-40) = 4e-18``; below it ``1 - exp`` is 1 in float64);
    ``exp(y) = (exp(y / 32)) ** 32`` with a degree-13 Taylor polynomial on ``[-1.25, 0]``:
    relative error below 1e-9 over the whole range, below 1e-12 above -12.

    >>> import math
    >>> max(abs(exp_neg(-t) / math.exp(-t) - 1) for t in (0.0, 0.3, 2.0, 5.5, 11.0)) < 1e-12
    True
    """
    if y < -40.0:
        y = -40.0
    t = y * 0.03125
    p = 1.0 / 6227020800.0
    p = p * t + 1.0 / 479001600.0
    p = p * t + 1.0 / 39916800.0
    p = p * t + 1.0 / 3628800.0
    p = p * t + 1.0 / 362880.0
    p = p * t + 1.0 / 40320.0
    p = p * t + 1.0 / 5040.0
    p = p * t + 1.0 / 720.0
    p = p * t + 1.0 / 120.0
    p = p * t + 1.0 / 24.0
    p = p * t + 1.0 / 6.0
    p = p * t + 0.5
    p = p * t + 1.0
    p = p * t + 1.0
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    return p * p


@intrinsic
def _bits_f32(typingctx, i):
    """The float32 whose bits are the int32 ``i`` (vectorises: an LLVM bitcast)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvm_ir.FloatType())
    return types.float32(types.int32), codegen


@intrinsic
def _f32_bits(typingctx, f):
    """The int32 whose bits are the float32 ``f`` (vectorises: an LLVM bitcast)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvm_ir.IntType(32))
    return types.int32(types.float32), codegen


@intrinsic
def _fence(typingctx, f):
    """``f`` unchanged, behind ``llvm.arithmetic.fence``: fast-math may not reassociate across it.

    For a loop-invariant factor of :func:`_row_pass` computed as a quotient (``2 k / span``, the
    amplitude rate over ``max(shape^2, 1)``): with ``reassoc`` LLVM rewrote ``(a / b) * x`` as
    ``(a * x) / b``, a division in every lane of the loop (and, under a run-time flag, a branch
    splitting the loop body) instead of one before it (docs/detect.md, "Plain row pass ... (twelfth
    session)"). Scalar only: a fence inside the loop would keep it from vectorising."""
    def codegen(context, builder, signature, args):
        fnty = llvm_ir.FunctionType(llvm_ir.FloatType(), [llvm_ir.FloatType()])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.arithmetic.fence.f32")
        return builder.call(fn, args)
    return types.float32(types.float32), codegen


@intrinsic
def _borrow(typingctx, a):
    """``a`` as an array that is not reference counted: the same data, shape and strides, with a
    null meminfo (and parent), so each increment or decrement numba makes of it, or of a view of it,
    is a test of a null pointer instead of an atomic update of the parent's count.

    For :func:`run_kernel` and :func:`update_kernel`, whose row-cycles hand ~30 arrays and views to
    functions numba does not prune the counts of (every callee may fail): 67 atomic increments (and as
    many decrements) a computed row-cycle, on the meminfos that all rows of one parent array share
    (at two threads their cache lines go back and forth between the cores; docs/detect.md, "Reference
    counts ... (thirteenth session)"). Where the null is seen (the kernel's own loop) LLVM removes
    the calls altogether; in a callee each is a call that tests a null pointer.
    **Only for an array that outlives every use of the result**: the kernels' arguments (held by
    the caller) and scratch kept alive by :func:`_keep`; a borrowed array is never returned or
    stored. The values are the same memory: no output changes."""
    def codegen(context, builder, signature, args):
        at = signature.args[0]
        src = context.make_array(at)(context, builder, args[0])
        dst = context.make_array(at)(context, builder)
        for f in ("nitems", "itemsize", "data", "shape", "strides"):
            setattr(dst, f, getattr(src, f))
        dst.meminfo = cgutils.get_null_value(dst.meminfo.type)
        dst.parent = cgutils.get_null_value(dst.parent.type)
        return dst._getvalue()
    if not isinstance(a, types.Array):
        return None
    return a(a), codegen


@intrinsic
def _keep(typingctx, t):
    """Nothing, but a use of ``t`` (a tuple of arrays): numba keeps each array alive (its reference
    held) until this call, so arrays :func:`_borrow`-ed before it stay valid up to it."""
    def codegen(context, builder, signature, args):
        return context.get_dummy_value()
    if not (isinstance(t, types.BaseTuple) and all(isinstance(x, types.Array) for x in t)):
        return None
    return types.void(t), codegen


_LOG2E = np.float32(1.4426950408889634)
_LN2_HI = np.float32(0.693359375)
_LN2_LO = np.float32(-2.12194440e-4)
_EXP_P = (np.float32(1.9875691500e-4), np.float32(1.3981999507e-3), np.float32(8.3334519073e-3),
          np.float32(4.1665795894e-2), np.float32(1.6666665459e-1), np.float32(5.0000001201e-1))
_M40 = np.float32(-40.0)


@njit(fastmath=_FAST, inline="always")
def exp_neg32(y):
    """``exp(y)`` for float32 ``y <= 0`` (clamped at -40), float32, relative error ~2e-7.

    Cephes ``expf``: ``y = n ln2 + r`` (``|r| <= ln2 / 2``), a degree-5 minimax polynomial
    for ``exp(r)``, and ``2**n`` built from its exponent bits; no libm call, vectorises
    (8 float32 lanes).

    >>> import math, numpy as np
    >>> max(abs(exp_neg32(np.float32(-t)) / math.exp(-t) - 1) for t in (0.0, 0.3, 2.0, 5.5, 11.0, 39.0)) < 5e-7
    True
    """
    y = y if y > _M40 else _M40
    n = np.floor(y * _LOG2E + _05)
    r = y - n * _LN2_HI
    r = r - n * _LN2_LO
    c5, c4, c3, c2, c1, c0 = _EXP_P
    p = c5 * r + c4
    p = p * r + c3
    p = p * r + c2
    p = p * r + c1
    p = p * r + c0
    p = p * (r * r) + r + _1
    return p * _bits_f32((np.int32(n) + np.int32(127)) << np.int32(23))


#: the CUSUM tail's ``2**f`` on ``|f| <= 1/2``: ``1 + f (c1 + f (c2 + f (c3 + f c4)))``, minimax in relative
#: error with ``p(0) = 1`` exactly (a CUSUM at 0 scores exactly 0), error <= 2.84e-6 (float32 coefficients)
_EXP2_C4 = (np.float32(0.6931241154670715), np.float32(0.24024106562137604), np.float32(0.05590682849287987),
            np.float32(0.009582576341927052))
_M58 = np.float32(-58.0)


@njit(fastmath=_FAST, inline="always")
def _exp2_split(t):
    """``t <= 0`` clamped at -58 as ``n + f`` (``n = floor(t + 1/2)``, ``|f| <= 1/2``): ``(f, 2**n)``, ``2**n``
    from its exponent bits; shared by :func:`exp2_cusum32` and :func:`exp2_count32`."""
    t = t if t > _M58 else _M58
    n = np.floor(t + _05)
    return t - n, _bits_f32((np.int32(n) + np.int32(127)) << np.int32(23))


@njit(fastmath=_FAST, inline="always")
def exp2_cusum32(t):
    """``2**t`` for float32 ``t <= 0`` (clamped at -58), float32, relative error <= 2.9e-6: the
    CUSUM score's tail (its definition; ``tests/detect_reference.cusum_score``).

    ``t = n + f`` (``n = floor(t + 1/2)``, ``|f| <= 1/2``), a degree-4 polynomial for ``2**f``
    (:data:`_EXP2_C4`, exactly 1 at ``f = 0``) and ``2**n`` from its exponent bits. The caller
    folds ``log2(e)`` into its factor: one product, no two-step ``ln 2`` reduction (the rounding
    of ``t`` in float32, <= 6e-8 |t|, is below the polynomial's error where ``2**t`` is not tiny). Four
    multiply-adds where :func:`exp_neg32` has two for the reduction and eight operations for its
    degree-5 polynomial (docs/detect.md, "CUSUM tail ... (nineteenth session)").

    >>> import math, numpy as np
    >>> max(abs(exp2_cusum32(np.float32(-t)) / 2.0 ** -t - 1) for t in (0.0, 0.3, 0.5, 2.0, 5.5, 11.2, 57.0)) < 2.9e-6
    True
    >>> float(exp2_cusum32(np.float32(0.0)))
    1.0
    """
    f, scale = _exp2_split(t)
    c1, c2, c3, c4 = _EXP2_C4
    p = c4 * f + c3
    p = p * f + c2
    p = p * f + c1
    p = p * f + _1
    return p * scale


@njit(inline="always")
def value_tag(x):
    """8-bit tag of a float32 value: its four bytes XOR-folded (equal values, equal tags;
    two values differing in one byte always differ; others collide with probability 1/256,
    which only costs that cycle's learning).

    >>> import numpy as np
    >>> value_tag(np.float32(0.56)) == value_tag(np.float32(0.56)), value_tag(np.float32(0.56)) == value_tag(np.float32(0.57))
    (True, False)
    """
    b = _f32_bits(x)
    return (b ^ (b >> np.int32(8)) ^ (b >> np.int32(16)) ^ (b >> np.int32(24))) & np.int32(0xFF)


@njit(inline="always")
def _push(dx, sh, cl, cl_max, d):  # pragma: no cover - compiled
    """A region's push on profile bin ``sh``: ``dx - sh`` clipped at +-min(``cl``, ``cl_max``),
    0 without a spread ``d``."""
    cl = cl if cl < cl_max else cl_max
    delta = dx - sh
    delta = delta if delta < cl else cl
    delta = delta if delta > -cl else -cl
    return delta if d > _0 else _0


@njit(error_model="numpy")
def _mul_nofuse(a, b):  # pragma: no cover - compiled
    """``a * b`` without fast-math flags: LLVM inlines it and cannot fuse the product into an FMA.

    :func:`_row_pass`'s floor ``f_spread * d + f_level * abs(l)`` (``contract``): the x86 backend fuses
    the first product of a sum into an FMA, and which is first is decided by LLVM's reassociation
    ranks, which numba's second optimisation of the callee inside each caller's module swapped in
    three of its five compiled cases: the kernels compiled in the process and the same kernels
    loaded from numba's cache rounded the floor differently (docs/testing.md, "Fresh compile vs
    cached load ... (thirteenth session)"). With ``f_level * abs(l)`` plain, ``f_spread * d`` is
    the one product to fuse in every copy (as the process-compiled code did)."""
    return a * b


@njit(fastmath=_FAST, error_model="numpy")
def _row_pass(x, sh, sh2, fallback, seasonal, direction, is_count, warmup, span, clip_on, clip2, judge, hold_mode,
              par, L, D, S, CP, CN, N, steady, nsat, T, z, mu_s, var_s, c3_s, score, det):  # pragma: no cover - compiled
    """Detectors 1 and 3 and the learning of one row; returns the sums of the shape deltas
    and of the clipped pushes ``shape + delta`` (for the judging bin, then for ``sh2``'s), their
    count, and the smallest observation count of the row after this cycle.

    ``sh`` is the profile bin the row is judged and learned against (float32; ignored unless
    ``seasonal``: a non-seasonal row's push is not counted). ``sh2`` is None, or (a weekly row
    judged by its daily fallback profile, :func:`_step`) the row's weekly bin: it learns
    alongside (its own delta, clipped once ``clip2``) so it is ready when it takes over; its sums are the second pair returned (0 without). Against
    the fallback the CUSUM is held and not scored: a daily profile cannot know a weekday's
    level (a Friday 15 % above the weekday mean is a day-long "shift": 17 % of a clean weekly
    series' cycles >= WARN in its first two weeks with it, none without), so only the value's
    own tail judges it.

    ``T`` (uint8 tags of each series' last value, :func:`value_tag`, kept up to date) or
    None; with tags and ``hold_mode`` 1 (2), a non-count series whose non-zero (any) value
    repeats its last one exactly has not been updated (a
    feed that posts daily, held between posts): the repeat is scored against the model but
    not learned from (level, spread, scale, CUSUM, count, shape unchanged), so the model is
    learned at the feed's cadence and its scale is that of the changes between posts.
    ``judge`` False: the row is not scored this cycle (NaN, CUSUM held) and, once warm, only
    its profile bin learns (it has never been visited: without it a residual means nothing, and would
    inflate the scale).
    ``CN`` is None for a one-sided row, ``N`` None for a steady row (every series observed at
    least ``nsat`` cycles: warm, learning at its fixed rates, so its count is neither read
    nor written and is taken as ``nsat``; the caller guarantees ``nsat >= warmup > 0``, so the
    warm tests are compiled out: :func:`_step_cat` runs any other steady row in the general case);
    ``sh2`` None without the fallback. Without ``CN`` (one-sided) ``direction`` is +-1 and its
    two-sided branches are compiled out too. All three are
    resolved at compile time (numba prunes ``is None`` branches of arguments). :func:`_step`
    compiles five of the eight cases (docs/detect.md, "Row pass compile and speed ... (sixth
    session)"): the four one-sided ones (``CN`` None; ``N`` None or not; ``sh2`` None or not),
    each vectorised and touching no memory it does not need, and one **general** case for the
    two-sided rows (3 % of the catalog), where ``CN``, ``N`` and ``sh2`` are all given and the
    run-time flags ``steady`` (``n`` taken as ``nsat``; ``N`` is then scratch, written and not
    read) and ``fallback`` (``sh2`` learns, the CUSUM is held) select. In the lean cases
    ``fallback`` / ``steady`` are the constants matching ``sh2`` / ``N``. A load under a run-time
    branch keeps LLVM from vectorising, so ``N[r]`` is read unconditionally. The general case
    vectorises too but its shape sums (``reassoc``) are ordered differently by LLVM: a two-sided
    row's profile bin can differ from the eight-case kernel's by a few float32 ulps.
    ``seasonal`` is a run-time flag and the loop is branch-free in it (a non-seasonal row
    computes the push and does not count it). Each compiled case costs ~3 s CPU, and again in
    every caller (numba re-optimises the linked callees: :func:`run_kernel` compiled in 21.9 s
    CPU over the eight cases, 13.6 s over the five, exclusive).

    All float32 (8 SIMD lanes on AVX2; the state is float32; values are read at float32
    precision; the observation count is carried as a float32, exact below 2**24): no 64-bit
    type in the loop, so LLVM vectorises it at full float32 width. On an AVX-512 host the
    loop is compiled for 512-bit vectors (:func:`_wide`: 16 lanes; LLVM's default tuning for
    these CPUs caps its vectoriser at 256 bits): the same arithmetic a lane, in half the
    instructions (issue 4's update -15 %, docs/detect.md, "Row pass at 512 bits ... (twentieth
    session)"); only the order of the shape sums' (``reassoc``) partial sums follows the width,
    so a profile bin can differ by float32 ulps from a 256-bit build. The threshold detector
    is combined afterwards (:func:`_thr_pass`, rows with levels only). Count rows get their
    CUSUM resolution here (count score taken as 0) and leave ``mu_s`` / ``var_s`` / ``c3_s``
    for :func:`_count_vec_pass`.

    **Count rows** learn on the count's own terms: the level (the expected count off the
    profile) is kept ``>= 0``, and the spread ``D`` -- the unit of the shared profile -- at least
    the Poisson spread ``sqrt(max(level, count_mu_floor))``. Every test of the row (count tail,
    z of the CUSUM and the spatial pass) sees the expectation floored at ``count_mu_floor`` and a
    variance at least that expectation. Without the floors a sparse count's ``D`` is ~0 (a run of
    zeros), its first event pushes the shared bin by ``(x - L) / D`` spreads, and the level
    follows the bin below zero (docs/detect.md, "Count rows, 2026-11-29").
    """
    _wide()
    n_reg = x.shape[0]
    a_level = np.float32(par[P_LEVEL_RATE])
    a_spread = np.float32(par[P_SPREAD_RATE])
    a_amp = np.float32(par[P_AMP_RATE])
    a_scale = np.float32(par[P_SCALE_RATE])
    huber = np.float32(par[P_HUBER])
    k = np.float32(par[P_CUSUM_K])
    cclip = np.float32(par[P_CUSUM_CLIP])
    cap = np.float32(par[P_CUSUM_CAP])
    f_spread = np.float32(par[P_FLOOR_SPREAD])
    f_level = np.float32(par[P_FLOOR_LEVEL])
    mu_floor = np.float32(par[P_MU_FLOOR])
    shclip = np.float32(par[P_SHAPE_CLIP])
    lms = seasonal and clip_on           # D is the region's amplitude (regression on the shape)
    big = _PMAX if hold_mode > 0 else _BIG      # city rules: a bin being set takes bounded pushes
    sclip_d = shclip if clip_on else big
    sclip2 = shclip if clip2 else big
    sh32 = np.float32(sh) if seasonal else _0
    fb_on = sh2 is not None and fallback   # the general case's run-time flag; False in the lean case
    sh2_32 = _0 if sh2 is None else np.float32(sh2)
    shsq = sh32 * sh32
    lms_div = shsq if shsq > _1 else _1
    amp_k = _fence(a_amp * sh32 / lms_div)   # one division, before the loop (:func:`_fence`)
    dirf = np.float32(direction)
    if CN is None:
        two = False        # one-sided (every caller without a C- row): compiled out of the body
    else:
        two = direction == 0
    # the sign of the residual that moves CP, fenced: LLVM otherwise sees a select of +-1 and turns the
    # product into a branch a trip around a sign flip; a product by +-1 is exact (the same bits)
    side = _fence(_1 if direction >= 0 else -_1)
    # A rolling-window indicator's residuals overlap ``span`` cycles, so the long-run variance of
    # their sum is ``span`` times what the CUSUM assumes: its stationary tail exp(-2kC) is really
    # exp(-2kC / span).
    # (times -log2(e): the tail is 2**(t cx), :func:`exp2_cusum32`)
    two_k = _2 * k / np.float32(span)
    t_k = _fence(-two_k * _LOG2E)
    warm_f = np.float32(warmup)
    c1 = _C_COUNT if is_count else _C_SEASONAL
    no_cnt = hold_mode > 0 and not is_count
    any_val = hold_mode == 2                 # zero repeats held too (not a rate of rare events)
    unj = not judge
    # city rules: while a bin is settling (seen once), a warm series keeps its spread, which
    # scales the bin: a weekday's level carried in its first visit's bin stays where it was put
    keep_d = hold_mode > 0 and seasonal and not clip_on
    amp_on = lms and a_amp > _0     # a scalar flag, not a short-circuit in the loop: LLVM unswitches on it
    nsat_f = np.float32(nsat)
    nmin = np.int32(NOBS_MAX)      # an integer min: a float one would not vectorise without nnan
    acc = _0
    acc_u = _0
    acc2 = _0
    acc2_u = _0
    cnt = _0
    for r in range(n_reg):
        xv = np.float32(x[r])
        if N is None:
            n = nsat_f
            first = False       # a steady row: nsat > 0 (the caller's guarantee, :func:`_step_cat`)
        else:
            nr = np.float32(N[r])                       # read unconditionally: a load under a branch
            n = nsat_f if steady else nr                # would keep LLVM from vectorising the loop
            first = n == _0
        l = L[r]
        d = D[r]
        s = S[r]
        ok = xv == xv                                   # not missing
        if T is not None:
            t0 = T[r]
            tg = value_tag(xv)
            rep = ok & (first == False) & ((xv != _0) | any_val) & (np.int32(t0) == tg) & no_cnt
            T[r] = np.uint8(tg) if ok else t0
        else:
            rep = False
        if N is None:
            # a steady row: every series warm (the caller's guarantee, ``nsat >= warmup > 0``), so
            # the warm tests are compiled out rather than a run-time branch on an invariant a trip
            warm = ok
            warm_s = ok
        else:
            warm = ok & (n >= warm_f) & (n != _0)          # bitwise: no branch (the loop vectorises)
            # scored from the observation that completes the warm-up (a fresh value is scored before
            # it is learned; a held repeat only once the warm-up is learned), so a daily series is
            # first scored at a report's own cycle, not at the held repeat a cycle later
            warm_s = ok & ((n >= warm_f) | ((rep == False) & (n + _1 >= warm_f))) & (n != _0)  # noqa: E712
        sc_ok = warm_s & judge                          # scored (warm, and its bin has been seen)
        hold = rep | (xv != xv) | (unj & warm)          # nothing to learn (but the profile bin)
        # baseline
        sigma = _SIG * s
        fl = f_spread * d + _mul_nofuse(f_level, abs(l)) + _TINY   # one FMA in every copy (:func:`_mul_nofuse`)
        sigma = sigma if sigma > fl else fl
        e = l + d * sh32
        var = sigma * sigma
        if is_count:
            mu = e if e > mu_floor else mu_floor
            vv = var if var > mu else mu
            sd = math.sqrt(vv)
        else:
            mu = e
            sd = sigma
        zr = (xv - mu) / sd
        # detector 1: t(4) tail, closed form with one division:
        # g = 1 / (q^2 (q + a)), 1 - w = 4 q g, w = a / q = a q (q + a) g
        a = abs(zr)
        a = _AMAX if a > _AMAX else a                   # no float32 overflow; NaN kept
        q2 = _4 + a * a
        q = math.sqrt(q2)
        g = _1 / (q2 * (q + a))
        omw = _4 * q * g
        if CN is None:
            # one-sided: ``1 - tail`` is tail's one use, and ``contract`` would fuse its last product
            # into an FMA (other bits than the general case, where tail has two uses): kept apart
            tail = _mul_nofuse(_05 * omw * omw, _1 + _05 * a * q * (q + a) * g)
        else:
            tail = _05 * omw * omw * (_1 + _05 * a * q * (q + a) * g)
        if two:
            sc1 = _1 - _2 * tail
        else:
            sc1 = _1 - tail if dirf * zr > _0 else _0
        # detector 3: CUSUM (capped); CP is the bad side's sum (C- of a down_bad row: on -z),
        # CN the C- of a two-sided row
        zc = zr if zr < cclip else cclip
        zc = zc if zc > -cclip else -cclip
        cp0 = CP[r]
        cp = cp0 + side * zc - k
        cp = cp if cp > _0 else _0
        cp = cp if cp < cap else cap
        cn0 = _0
        cn = _0
        if CN is not None:
            cn0 = CN[r]
            cn = cn0 - zc - k
            cn = cn if cn > _0 else _0
            cn = cn if cn < cap else cap
        cp = cp0 if rep else cp
        cn = cn0 if rep else cn
        cx = cp if (cp > cn or not two) else cn
        ex = exp2_cusum32(t_k * cx)
        sc3 = _1 - (_2 * ex if two else ex)
        sc3 = sc3 if sc3 > _0 else _0
        sc3 = _0 if fb_on else sc3   # the daily fallback of a weekly row: no CUSUM (see the docstring)
        # combine: detector 1 (or the count detector, 0 here), then CUSUM (ties: lower code)
        s1 = _0 if is_count else sc1
        best = s1 if sc_ok else _NAN
        code = c1
        if sc3 > best:
            best = sc3
            code = _C_CUSUM
        score[r] = best
        det[r] = code if best > _0 else _C_NONE
        z[r] = zr if sc_ok else _NAN
        mu_s[r] = mu if sc_ok else _NAN
        var_s[r] = var
        c3_s[r] = sc3
        # robust learning
        res = xv - e
        dev = abs(xv - l)
        hub = huber * sigma
        if warm:
            res = res if res < hub else hub
            res = res if res > -hub else -hub
            dev = dev if dev < d + hub else d + hub
            dev = dev if dev > d - hub else d - hub
        inv = _1 / (n + _1)
        rl = inv if inv > a_level else a_level
        rs = inv if inv > a_scale else a_scale
        rd = inv if inv > a_spread else a_spread
        nl = l + rl * res
        ns = s + rs * (abs(res) - s)
        if amp_on & warm:
            nd = d + amp_k * res
            nd = nd if nd > _0 else _0
        else:
            nd = d + rd * (dev - d)
        nn = n + _1 if n < _NOBS_MAX else _NOBS_MAX
        if first:
            nl = xv
            nd = _0
            ns = _0
            nn = _1
        nd = d if (keep_d & warm) else nd
        if is_count:
            # a count's level (its expected count off the profile) is >= 0, and its spread -- the
            # unit of the shared shape -- at least the Poisson spread sqrt(max(level, mu_floor)):
            # a series of zeros has D ~ 0, and a push (x - L) / D of its first event would be ~1e12
            nl = nl if nl > _0 else _0
            pf = nl if nl > mu_floor else mu_floor
            pf = math.sqrt(pf)
            nd = nd if nd > pf else pf
        if hold:
            nl = l
            nd = d
            ns = s
            nn = n
        keep_c = (sc_ok == False) | fb_on  # noqa: E712 (bitwise: vectorises)
        cp = cp0 if keep_c else cp
        cn = cn0 if keep_c else cn
        L[r] = nl
        D[r] = nd
        S[r] = ns
        if N is not None:
            ni = np.int16(nn)
            N[r] = ni
            nmin = min(nmin, np.int32(ni))
        CP[r] = cp
        if CN is not None:
            CN[r] = cn
        # shape: this region's push on the phase bin, (x - e) / d clipped (in sigmas once warm)
        # computed as (x - L) / D - shape (= (x - e) / D without e's rounding, amplified by a
        # small D), clipped at cl / D. Branch-free: computed for every row, counted only for a
        # seasonal one (``use``); the weekly bin's push only under the fallback (compiled out)
        inv_d = _1 / d
        dx = (xv - l) * inv_d
        delta = _push(dx, sh32, shclip * sigma * inv_d if (warm and clip_on) else sclip_d, sclip_d, d)
        use = seasonal & ok & (first == False) & (d > _0) & (rep == False)  # noqa: E712 (bitwise: vectorises)
        acc += delta if use else _0
        acc_u += delta + sh32 if use else _0            # for the overwrite: no cancellation with sh
        cnt += _1 if use else _0
        if sh2 is not None:
            delta2 = _push(dx, sh2_32, shclip * sigma * inv_d if (warm and clip2) else sclip2, sclip2, d)
            use2 = use & fb_on
            acc2 += delta2 if use2 else _0
            acc2_u += delta2 + sh2_32 if use2 else _0
    return np.float64(acc), np.float64(acc_u), np.float64(acc2), np.float64(acc2_u), int(cnt), int(nmin)


@njit(error_model="numpy")
def _thr_pass(x, warn, alarm, score, det):  # pragma: no cover - compiled
    """Detector 4 combined with the other detectors' score (runs last).

    A crossed level (``thr >= WARN``) drives the row even where a statistical detector scores
    higher: the operators' rule is neither counted nor adjusted by the alert family's
    multiplicity correction (:mod:`engine.alerts.multiplicity`), which would otherwise pull the
    statistical score -- and with it the crossing -- below the alert level. Otherwise the
    threshold wins ties (lowest code).

    :func:`engine.detect.thresholds.threshold_score` with its row-level cases resolved before the
    loop and a low-bad row's values negated (exact: ``(-x) - (-warn)`` is ``warn - x``), so the
    loop is branch-free and vectorises; the same float64 arithmetic, the same scores bit for bit.
    """
    flat = math.isnan(alarm) or alarm == warn
    sg = -1.0 if (not flat and alarm < warn) else 1.0
    w = sg * warn
    a = w if flat else sg * alarm
    span = a - w
    for r in range(x.shape[0]):
        xv = np.float64(x[r])
        u = sg * xv
        lin = _WARN + (_CRITICAL - _WARN) * (u - w) / span
        thr = _CRITICAL if u >= a else (lin if u >= w else 0.0)
        s = score[r]
        upd = (xv == xv) & ((s != s) | (thr >= s) | (thr >= _WARN))
        d_old = det[r]
        score[r] = np.float32(thr) if upd else s
        det[r] = (_C_THRESHOLD if thr > 0.0 else _C_NONE) if upd else d_old


_SQRTHF = np.float32(0.707106781186547524)
_LOG_P = (np.float32(7.0376836292e-2), np.float32(-1.1514610310e-1), np.float32(1.1676998740e-1),
          np.float32(-1.2420140846e-1), np.float32(1.4249322787e-1), np.float32(-1.6668057665e-1),
          np.float32(2.0000714765e-1), np.float32(-2.4999993993e-1), np.float32(3.3333331174e-1))


@njit(fastmath=_FAST, inline="always")
def _log_parts(x):
    """Cephes ``logf``'s reduction and polynomial, shared by :func:`log32` and :func:`log2_32`: ``x = m 2**e``
    (``m - 1`` in ``[sqrt(1/2) - 1, sqrt(2) - 1)``) and the polynomial part ``y`` of ``log(1 + m)``, with ``z = m**2``."""
    bits = _f32_bits(x)
    e = np.float32(((bits >> np.int32(23)) & np.int32(0xFF)) - np.int32(126))
    m = _bits_f32((bits & np.int32(-2139095041)) | np.int32(0x3F000000))     # 0x807FFFFF: m in [0.5, 1)
    low = m < _SQRTHF
    e = e - _1 if low else e
    m = (m + m - _1) if low else (m - _1)
    z = m * m
    c8, c7, c6, c5, c4, c3, c2, c1, c0 = _LOG_P
    y = c8 * m + c7
    y = y * m + c6
    y = y * m + c5
    y = y * m + c4
    y = y * m + c3
    y = y * m + c2
    y = y * m + c1
    y = y * m + c0
    y = y * m * z
    return m, y, z, e


@njit(fastmath=_FAST, inline="always")
def log32(x):
    """``log(x)`` for finite float32 ``x > 0`` (normal numbers), float32, relative error ~1e-7.

    Cephes ``logf``: ``x = m 2**e`` with ``m`` in ``[sqrt(1/2), sqrt(2))`` from the bits, a
    degree-8 polynomial for ``log(m)``; no libm call, vectorises.

    >>> import math, numpy as np
    >>> max(abs(log32(np.float32(t)) - math.log(np.float32(t))) for t in (1e-30, 0.01, 0.5, 0.9999, 1.0, 3.0, 1e30)) < 1e-6
    True
    """
    m, y, z, e = _log_parts(x)
    y = y + _LN2_LO * e
    y = y - _05 * z
    return m + y + _LN2_HI * e


@njit(fastmath=_FAST, inline="always")
def log2_32(x):
    """``log2(x)`` for finite float32 ``x > 0`` (normal numbers), float32: :func:`log32`'s reduction and
    polynomial for ``log(m)``, then ``log(m) log2(e) + e`` (no ``ln 2`` products: the exponent is added
    as it is), relative error ~2e-7 (the count tail's first mass, :func:`_count_first`).

    >>> import math, numpy as np
    >>> max(abs(log2_32(np.float32(t)) - math.log2(np.float32(t))) for t in (1e-30, 0.01, 0.5, 0.9999, 1.0, 3.0, 1e30)) < 2e-6
    True
    """
    m, y, z, e = _log_parts(x)
    y = y - _05 * z
    return (m + y) * _LOG2E + e


#: the count tail's first mass ``2**f`` on ``|f| <= 1/2``: ``1 + f (c1 + f (c2 + f (c3 + f (c4 + f c5))))``,
#: minimax in relative error with ``p(0) = 1`` exactly, error <= 1.63e-7 (float32 coefficients; <= 2.3e-7
#: evaluated in float32)
_EXP2_C5 = (np.float32(0.6931465864181519), np.float32(0.24022166430950165), np.float32(0.055510472506284714),
            np.float32(0.009674952365458012), np.float32(0.0013202981790527701))
#: ``log2 P(X = 0)`` below which the count tail goes to the exact pass: ``log P(X = 0) < -40``, in bits
_COUNT_UNDER = np.float32(-40.0 * 1.4426950408889634)


@njit(fastmath=_FAST, inline="always")
def exp2_count32(t):
    """``2**t`` for float32 ``t <= 0`` (clamped at -58), float32, relative error <= 2.3e-7: the count
    tail's first mass (:func:`_count_first`; its definition ``tests/detect_reference.count_first_mass``).

    ``t = n + f`` (``n = floor(t + 1/2)``, ``|f| <= 1/2``), a degree-5 polynomial for ``2**f``
    (:data:`_EXP2_C5`, exactly 1 at ``f = 0``) and ``2**n`` from its exponent bits: :func:`exp2_cusum32`
    one degree higher (the count tail's tests hold it to ~2e-6 of the exact tail).

    >>> import math, numpy as np
    >>> max(abs(exp2_count32(np.float32(-t)) / 2.0 ** -t - 1) for t in (0.0, 0.3, 0.5, 2.0, 5.5, 11.2, 57.0)) < 2.3e-7
    True
    >>> float(exp2_count32(np.float32(0.0)))
    1.0
    """
    f, scale = _exp2_split(t)
    c1, c2, c3, c4, c5 = _EXP2_C5
    p = c5 * f + c4
    p = p * f + c3
    p = p * f + c2
    p = p * f + c1
    p = p * f + _1
    return p * scale


#: terms of the vectorised count tail: counts up to COUNT_TERMS - 1, expectations up to COUNT_MU
COUNT_TERMS = 16
COUNT_MU = np.float32(12.0)
_INV_J = np.array([0.0] + [1.0 / j for j in range(1, COUNT_TERMS + 1)], dtype=np.float32)


@njit(fastmath=_FAST)
def _any_warm(mu_s):  # pragma: no cover - compiled
    """Whether any series of the row is warm (``mu_s`` not NaN): a cold count row skips its tail.
    By blocks of 64 (each a vectorised count), stopping at the first block with a warm series (a warm
    row's first)."""
    n = mu_s.shape[0]
    for b in range(0, n, 64):
        m = _0
        for r in range(b, min(b + 64, n)):
            m += _0 if mu_s[r] != mu_s[r] else _1
        if m > _0:
            return True
    return False


#: rows of the count pass's scratch ``cw`` (float32, (COUNT_SCRATCH, n_reg)): the compacted series'
#: expectation, variance (then ``log2 P(X = 0)``), count and their two partial sums
COUNT_SCRATCH = 5
#: a count row whose series with a tail are fewer than one in this many is compacted by a branch
_COUNT_SPARSE = np.float32(8.0)


#: the count pass's dense compaction by 16-lane compress stores (:func:`_compress16`): only where numba
#: compiles for AVX-512 (``vcompressps``); elsewhere LLVM would expand the intrinsic lane by lane
_COMPRESS = host_has_avx512()


def _flags16(builder, flag, r0):
    """``flag[r0:r0 + 16] != 0`` (float32, unordered: as Python's ``!=``) as an LLVM ``<16 x i1>``."""
    fv = _load16(builder, flag, r0, types.float32)
    return builder.fcmp_unordered("!=", fv, llvm_ir.Constant(fv.type, None))


def _compress_store(builder, vec, ptr, mask, m):
    """The lanes of ``vec`` under ``mask``, in order, to ``ptr[m:]``; returns ``m`` plus their number. A
    compress in registers (``llvm.experimental.vector.compress``: ``vcompressps zmm, zmm``) and one full
    16-lane store, so ``ptr[m:m + 16]`` must be writable (the lanes past the count are garbage). Not
    ``llvm.masked.compressstore``: its memory form is microcoded on AMD Zen 4 (``update_kernel`` +24 ms
    CPU a call there; docs/detect.md, "Compress in registers ... (twenty-second session)")."""
    vty = vec.type
    suffix = "v16f32" if isinstance(vty.element, llvm_ir.FloatType) else "v16i32"
    fnty = llvm_ir.FunctionType(vty, [vty, mask.type, vty])
    fn = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.experimental.vector.compress.{suffix}")
    packed = builder.call(fn, [vec, mask, llvm_ir.Constant(vty, llvm_ir.Undefined)])
    builder.store(packed, builder.bitcast(builder.gep(ptr, [m]), vty.as_pointer()), align=4)
    return _add_count(builder, m, mask)


def _add_count(builder, m, mask):
    """``m`` plus the number of set lanes of the ``<16 x i1>`` ``mask`` (``llvm.ctpop.i16``: ``popcnt``)."""
    i16 = llvm_ir.IntType(16)
    pop = cgutils.get_or_insert_function(builder.module, llvm_ir.FunctionType(i16, [i16]), "llvm.ctpop.i16")
    return builder.add(m, builder.zext(builder.call(pop, [builder.bitcast(mask, i16)]), m.type))


def _c_f32(a):
    return isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" and a.dtype == types.float32


def _c_float(a):
    """A float32 or float64 C-contiguous 1-D array (the one-series path, :mod:`engine.detect.series`, passes
    float64 scratch: the intrinsics below must type there, though its one series never fills a block)."""
    return isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" and a.dtype in (types.float32,
                                                                                          types.float64)


def _load16(builder, arr, r0, dtype):
    """``arr[r0:r0 + 16]`` (float32 or float64 elements) as an LLVM vector of that element type."""
    elt = llvm_ir.DoubleType() if dtype == types.float64 else llvm_ir.FloatType()
    vt = llvm_ir.VectorType(elt, 16)
    return builder.load(builder.bitcast(builder.gep(arr.data, [r0]), vt.as_pointer()),
                        align=8 if dtype == types.float64 else 4)


@intrinsic
def _compress16(typingctx, dst, m, src, r0, flag):
    """``dst[m:]`` <- the values of ``src[r0:r0 + 16]`` whose ``flag`` (same positions) is not 0, in order;
    returns ``m`` plus their number (float32, C-contiguous 1-D arrays; ``r0 + 16 <= len(src)``, and
    ``m + 16 <= len(dst)``: all 16 lanes are stored, the count pass's ``m <= r0``; ``dst[m + count:m + 16]``
    is left garbage). One ``vcompressps`` in registers on AVX-512: the count pass's
    dense compaction and gather in one (docs/detect.md, "Count pass: the dense compaction by compress
    stores ... (twenty-first session)"). The values are moved, not computed: the same bits as a loop."""
    if not (_c_f32(dst) and _c_float(src) and _c_f32(flag) and isinstance(m, types.Integer)
            and isinstance(r0, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        d, mm, s_, rr, f = args
        da = context.make_array(signature.args[0])(context, builder, d)
        sa = context.make_array(signature.args[2])(context, builder, s_)
        fa = context.make_array(signature.args[4])(context, builder, f)
        mm = context.cast(builder, mm, signature.args[1], types.intp)
        rr = context.cast(builder, rr, signature.args[3], types.intp)
        mask = _flags16(builder, fa, rr)
        vec = _load16(builder, sa, rr, signature.args[2].dtype)
        if signature.args[2].dtype == types.float64:   # (rounded to float32 as the scalar store does)
            vec = builder.fptrunc(vec, llvm_ir.VectorType(llvm_ir.FloatType(), 16))
        return _compress_store(builder, vec, da.data, mask, mm)
    return types.intp(dst, m, src, r0, flag), codegen


@intrinsic
def _compress16_iota(typingctx, dst, m, r0, flag):
    """:func:`_compress16` of the positions ``r0, r0 + 1, ..., r0 + 15`` (int32) into ``dst`` (int32,
    C-contiguous 1-D): the regions of the compacted series."""
    if not (isinstance(dst, types.Array) and dst.ndim == 1 and dst.layout == "C" and dst.dtype == types.int32
            and _c_f32(flag) and isinstance(m, types.Integer) and isinstance(r0, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        d, mm, rr, f = args
        da = context.make_array(signature.args[0])(context, builder, d)
        fa = context.make_array(signature.args[3])(context, builder, f)
        mm = context.cast(builder, mm, signature.args[1], types.intp)
        rr = context.cast(builder, rr, signature.args[2], types.intp)
        mask = _flags16(builder, fa, rr)
        i32 = llvm_ir.IntType(32)
        v16 = llvm_ir.VectorType(i32, 16)
        base = builder.trunc(rr, i32)
        splat = builder.shuffle_vector(builder.insert_element(llvm_ir.Constant(v16, llvm_ir.Undefined), base,
                                                              llvm_ir.Constant(i32, 0)),
                                       llvm_ir.Constant(v16, llvm_ir.Undefined), llvm_ir.Constant(v16, [0] * 16))
        vec = builder.add(splat, llvm_ir.Constant(v16, list(range(16))))
        return _compress_store(builder, vec, da.data, mask, mm)
    return types.intp(dst, m, r0, flag), codegen


@intrinsic
def _put16(typingctx, score, det, c3_s, res, j, r0, flag):
    """The count pass's step 5 for 16 series ``r0 .. r0 + 15`` of a dense row: the flagged ones take the next
    compacted scores ``res[j:]`` in order (an ``expandload``, the inverse of :func:`_compress16`: LLVM
    emits ``vexpandps`` from memory, the instruction it also folds a full load and a register expand into;
    with it the kernel runs at its register-compress speed on Zen 4, docs/detect.md), each
    against its CUSUM's ``c3_s`` as the scalar scatter does (``c3 > sc`` wins as code 3, else code 2, code
    0 where the best is not > 0); the other series keep their ``score`` and ``det``. Returns ``j`` plus
    the number flagged. The same comparisons and selects a series as the scatter: the same bits."""
    if not (_c_f32(score) and _c_float(c3_s) and _c_f32(res) and _c_f32(flag) and isinstance(det, types.Array)
            and det.ndim == 1 and det.layout == "C" and det.dtype == types.int8
            and isinstance(j, types.Integer) and isinstance(r0, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        sa, da, ca, ra, fa = (context.make_array(signature.args[k])(context, builder, args[k]) for k in (0, 1, 2, 3, 6))
        jj = context.cast(builder, args[4], signature.args[4], types.intp)
        rr = context.cast(builder, args[5], signature.args[5], types.intp)
        f32, i8 = llvm_ir.FloatType(), llvm_ir.IntType(8)
        v16, b16 = llvm_ir.VectorType(f32, 16), llvm_ir.VectorType(i8, 16)
        mask = _flags16(builder, fa, rr)
        fnty = llvm_ir.FunctionType(v16, [f32.as_pointer(), mask.type, v16])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.masked.expandload.v16f32")
        sc = builder.call(fn, [builder.gep(ra.data, [jj]), mask, llvm_ir.Constant(v16, None)])
        ps = builder.bitcast(builder.gep(sa.data, [rr]), v16.as_pointer())
        pd = builder.bitcast(builder.gep(da.data, [rr]), b16.as_pointer())
        c3 = _load16(builder, ca, rr, signature.args[2].dtype)
        if signature.args[2].dtype == types.float64:   # (compared and chosen in float64, as the scalar code)
            sc = builder.fpext(sc, c3.type)
        cus = builder.fcmp_ordered(">", c3, sc)
        best = builder.select(cus, c3, sc)
        pos = builder.fcmp_ordered(">", best, llvm_ir.Constant(best.type, None))
        if signature.args[2].dtype == types.float64:
            best = builder.fptrunc(best, v16)
        code = builder.select(cus, llvm_ir.Constant(b16, [CODE_CUSUM] * 16), llvm_ir.Constant(b16, [CODE_COUNT] * 16))
        code = builder.select(pos, code, llvm_ir.Constant(b16, None))
        builder.store(builder.select(mask, best, builder.load(ps, align=4)), ps, align=4)
        builder.store(builder.select(mask, code, builder.load(pd, align=1)), pd, align=1)
        return _add_count(builder, jj, mask)
    return types.intp(score, det, c3_s, res, j, r0, flag), codegen


@njit(fastmath=_FAST, inline="always")
def _count_first(mu, var, od):  # pragma: no cover - compiled
    """A count's first mass and mass ratio (float32): ``log2 P(X = 0)``, ``P(X = 0)``, and ``ca``, ``cb``
    with ``P(X = j) = P(X = j - 1) (ca + cb j) / j``; negative binomial where ``var > od mu``
    (``p = mu / var``, size ``r = mu p / (1 - p)``), else Poisson. ``P(X = 0) = 2**(r log2 p)`` or
    ``2**(-mu log2 e)`` by :func:`log2_32` and :func:`exp2_count32` (docs/detect.md, "Count tail's first
    mass ... (twentieth session)")."""
    nb = var > od * mu
    vv = var if nb else _2 * mu
    p = mu / vv
    q = _1 - p
    rr = mu * p / q
    a0 = rr * log2_32(p) if nb else -mu * _LOG2E
    pmf = exp2_count32(a0)
    ca = q * (rr - _1) if nb else mu
    cb = q if nb else _0
    return a0, pmf, ca, cb


@njit(fastmath=_FAST, inline="always")
def _count_mark(x, up, down, mu_s):  # pragma: no cover - compiled
    """``mu_s`` kept where a warm series is on its bad side beyond the vectorised tail's range (the exact
    pass's series, :func:`_count_fallback`), NaN elsewhere."""
    for r in range(x.shape[0]):
        mu = mu_s[r]
        kk = np.floor(np.float32(x[r]) + _05)
        kk = kk if kk > _0 else _0
        bad = (kk > mu) if up else ((kk < mu) if down else (mu == mu))
        fb = bad & ((kk > np.float32(COUNT_TERMS - 1)) | (mu > COUNT_MU))
        mu_s[r] = mu if fb else _NAN


@njit(fastmath=_FAST, error_model="numpy")
def _count_vec_pass(x, direction, overdisp, mu_s, var_s, c3_s, score, det, cw, ci):  # pragma: no cover - compiled
    """Detector 2 over a count row, vectorised (float32), combined with the CUSUM; returns the
    number of series left to :func:`_count_fallback` (then marked by a non-NaN ``mu_s``, every
    other series NaN; with 0 returned ``mu_s`` is left as it was).

    The row pass has already scored every warm series as a zero count tail would (its CUSUM's
    score, code 3, or 0 with code 0: a one-sided row's good side scores exactly that); this pass
    rewrites only the series with a tail. The tail is the sum of the first :data:`COUNT_TERMS`
    probability masses, ``pmf_0 = exp(-mu)`` (Poisson) or ``p**r`` (negative binomial,
    ``p = mu / var``, ``r = mu p / (1 - p)``; :func:`_count_first`) and the ratio of successive
    masses: exact up to float32 rounding (~1e-6 absolute on a score) for a count below
    :data:`COUNT_TERMS` and an expectation up to :data:`COUNT_MU`; the other warm series on the
    bad side go to the float64 scalar pass. Runs before the threshold pass, as the row pass does
    for the seasonal detector (the threshold still wins ties).

    1. A vectorised pass counts the warm series on their bad side within the range and beyond
       it, and those whose top term is past 8 and past 12; a row with neither stops there (the
       demo's sparse counts: mostly 0 where more is bad).
    2. The series with a tail are compacted into ``cw`` (float32, (:data:`COUNT_SCRATCH`,
       n_reg)) with their regions in ``ci`` (int32, n_reg): by a branch where fewer than one in
       :data:`_COUNT_SPARSE` have one, else (AVX-512) by 16 series, each column in one compress store
       (:func:`_compress16`), or (other hosts) their regions branch-free (one store a series), then
       their inputs gathered (three stores a series with a tail, not four a series of the row).
    3. Where some are beyond the range, every series is marked for the exact pass.
    4. Their tails, vectorised over the compacted series: a one-sided row's one tail by Horner's
       rule from the row's top term (8, 12 or 16 terms; :func:`_count_tail1`: a select and a
       multiply-add a term, docs/detect.md, "Count tail ... (eleventh session)"; within ~5e-7 of the
       forward sum), a two-sided row's two tails by the forward sums (:func:`_count_tail2`).
    5. Their scores are scattered back, or a series goes to the exact pass where its first mass
       underflows (``log pmf_0 < -40``: ``log2 pmf_0 <`` :data:`_COUNT_UNDER`); a row compacted by
       compress stores with no underflow puts them back by 16 series (:func:`_put16`).
    """
    _wide()     # 16 lanes on AVX-512 (docs/detect.md, "Count pass at 512 bits ... (twentieth session)")
    n_reg = x.shape[0]
    od = np.float32(overdisp)
    up = direction == 1
    down = direction == -1
    # 1. the warm series on the bad side: those with a tail to sum within the vectorised range and
    # those beyond it (the exact pass's), and how many of the first have a top term past 8 and 12
    n_tail = _0     # float32: an int64 count next to float32 lanes keeps the loop from vectorising
    n_out = _0
    n_gt8 = _0
    n_gt12 = _0
    kt_add = _0 if up else _1
    for r in range(n_reg):
        mu = mu_s[r]
        kk = np.floor(np.float32(x[r]) + _05)
        kk = kk if kk > _0 else _0
        bad = (kk > mu) if up else ((kk < mu) if down else (mu == mu))
        inr = (kk <= np.float32(COUNT_TERMS - 1)) & (mu <= COUNT_MU)
        tl = bad & inr
        n_tail += _1 if tl else _0
        kt = kk + kt_add
        n_gt8 += _1 if (tl & (kt > np.float32(8.0))) else _0
        n_gt12 += _1 if (tl & (kt > np.float32(12.0))) else _0
        cw[3, r] = kk                   # for the compaction (cw rows 3, 4 are free until step 4)
        cw[4, r] = _1 if tl else _0
        n_out += _0 if (inr | (bad == False)) else _1  # noqa: E712 (bitwise: vectorises)
    if n_tail == _0 and n_out == _0:
        return 0
    # 2. ... compacted (none on most rows of sparse counts, mostly 0 where more is bad): by a branch
    # where they are few (a rarely taken branch costs less than four stores a series), else
    # branch-free
    m = 0
    dense16 = _COMPRESS and not (n_tail * _COUNT_SPARSE < np.float32(n_reg))   # the compress-store paths
    nb = n_reg - n_reg % 16
    if n_tail * _COUNT_SPARSE < np.float32(n_reg):
        m = _compact_from(cw, ci, mu_s, var_s, 0, 0, n_reg)
    elif n_tail > _0 and dense16:
        # by 16 series: their flags as a mask, each of the four columns in one compress store (the
        # dense loop's serial ``m`` and its scalar gather cost ~40 % of the pass, docs/detect.md,
        # "Count pass: the dense compaction by compress stores ... (twenty-first session)")
        mu_c, var_c, k_c, k_r, fl = cw[0], cw[1], cw[2], cw[3], cw[4]
        for r0 in range(0, nb, 16):
            _compress16(mu_c, m, mu_s, r0, fl)
            _compress16(var_c, m, var_s, r0, fl)
            _compress16(k_c, m, k_r, r0, fl)
            m = _compress16_iota(ci, m, r0, fl)
        m = _compact_from(cw, ci, mu_s, var_s, m, nb, n_reg)
    elif n_tail > _0:
        for r in range(n_reg):
            ci[m] = r
            m += 1 if cw[4, r] != _0 else 0
        for j in range(m):
            r = np.uint32(ci[j])
            cw[0, j] = mu_s[r]
            cw[1, j] = var_s[r]
            cw[2, j] = cw[3, r]
    # 3. the series beyond the range marked for the exact pass (``mu_s`` kept there, NaN elsewhere)
    if n_out > _0:
        _count_mark(x, up, down, mu_s)
    if m == 0:
        return int(n_out)
    # 4. their tails, vectorised over the compacted series (the count score into cw row 3, log2 P(X = 0)
    # into row 1): one-sided rows by Horner's rule from the row's top term (8, 12 or all 16: the
    # terms above every series' top are exact zeros)
    if up or down:
        if n_gt8 == _0:
            _count_tail1(cw, m, od, up, 8)
        elif n_gt12 == _0:
            _count_tail1(cw, m, od, up, 12)
        else:
            _count_tail1(cw, m, od, up, COUNT_TERMS)
    else:
        _count_tail2(cw, m, od)
    # 5. their scores (scattered back), or the exact pass where the first mass underflows (then the
    # other series are marked first, if step 3 did not)
    under = _0
    for j in range(m):
        under += _1 if cw[1, j] < _COUNT_UNDER else _0
    if under > _0 and n_out == _0:
        _count_mark(x, up, down, mu_s)
    if dense16 and under == _0:
        # a dense row with no underflow (the steady state's): the scores put back by 16 series of the row,
        # each block taking its flagged series' scores in order (no scalar scatter through ``ci``)
        res, fl = cw[3], cw[4]
        j = 0
        for r0 in range(0, nb, 16):
            j = _put16(score, det, c3_s, res, j, r0, fl)
        for r in range(nb, n_reg):
            if fl[r] != _0:
                _put1(score, det, r, res[j], c3_s[r])
                j += 1
        return int(n_out)
    nfb = 0
    for j in range(m):
        r = np.uint32(ci[j])    # (unsigned: no wraparound test)
        if cw[1, j] < _COUNT_UNDER:
            mu_s[r] = cw[0, j]
            nfb += 1
            continue
        _put1(score, det, r, cw[3, j], c3_s[r])
    return nfb + int(n_out)


@njit(inline="always")
def _compact_from(cw, ci, mu_s, var_s, m, r_lo, r_hi):  # pragma: no cover - compiled
    """The count pass's compaction by a branch: series ``r_lo .. r_hi - 1`` with a tail (``cw[4] != 0``)
    appended from ``m`` (region, expectation, variance, count); returns the new ``m``."""
    for r in range(r_lo, r_hi):
        if cw[4, r] != _0:
            ci[m] = r
            cw[0, m] = mu_s[r]
            cw[1, m] = var_s[r]
            cw[2, m] = cw[3, r]
            m += 1
    return m


@njit(inline="always")
def _put1(score, det, r, sc2, c3):  # pragma: no cover - compiled
    """Series ``r`` takes the higher of its count score ``sc2`` and CUSUM score ``c3`` (the CUSUM's
    code where it wins, none where the best is not > 0): :func:`_put16`'s scalar form."""
    cus = c3 > sc2
    best = c3 if cus else sc2
    score[r] = best
    det[r] = (_C_CUSUM if cus else _C_COUNT) if best > _0 else _C_NONE


@njit(fastmath=_FAST, inline="always")
def _count_tail1(cw, m, od, up, nt):  # pragma: no cover - compiled
    """Step 4 of :func:`_count_vec_pass` on a one-sided row: the count score of each of the ``m`` compacted
    series (``cw`` rows 0-2: expectation, variance, count) into ``cw`` row 3 and ``log2 P(X = 0)`` into row 1.
    The tail ``P(X <= kt - 1)`` (``kt`` = k up, k + 1 down) by Horner's rule from term ``nt - 1`` (``nt``
    a constant, every ``kt <= nt``): ``pmf_0 (1 + f_1 (1 + f_2 (1 + ...)))``, ``f_t = ca / t + cb``, zero
    from ``t = kt`` on (a select and one multiply-add on the chain a term). The terms from ``kt`` to
    :data:`COUNT_TERMS` - 1 leave ``h`` exactly 0, so any ``nt >= max kt`` gives the same bits; the chain
    of multiply-adds is the loop's latency (docs/detect.md, "Count pass ... (seventeenth session)")."""
    for j in range(m):
        kk = cw[2, j]
        a0, pmf, ca, cb = _count_first(cw[0, j], cw[1, j], od)
        kt = kk if up else kk + _1
        h = _0
        for t in range(nt - 1, 0, -1):
            f = ca * _INV_J[t] + cb
            f = f if np.float32(t) < kt else _0
            h = f * h + f
        sv = pmf * (_1 + h)
        sv = sv if kt > _0 else _0
        cw[1, j] = a0
        cw[3, j] = sv if up else _1 - sv


@njit(fastmath=_FAST, inline="always")
def _count_tail2(cw, m, od):  # pragma: no cover - compiled
    """Step 4 of :func:`_count_vec_pass` on a two-sided row: both tails by the masses summed forward,
    ``P(X <= k - 1)`` and ``P(X <= k)``, their two-sided score into ``cw`` row 3, ``log2 P(X = 0)`` into row 1."""
    for j in range(m):
        kk = cw[2, j]
        a0, pmf, ca, cb = _count_first(cw[0, j], cw[1, j], od)
        s_lo = _0
        s_k = _0
        for t in range(COUNT_TERMS):
            jf = np.float32(t)
            s_lo += pmf if jf < kk else _0
            s_k += pmf if jf <= kk else _0
            pmf = pmf * (ca + cb * np.float32(t + 1)) * _INV_J[t + 1]
        hi = _1 - s_lo
        pp = _2 * (s_k if s_k < hi else hi)
        cw[1, j] = a0
        cw[3, j] = _1 - pp if pp < _1 else _0


@njit
def _count_fallback(x, direction, overdisp, mu_s, var_s, c3_s, score, det):  # pragma: no cover - compiled
    """The exact count tail (float64) of the series :func:`_count_vec_pass` left (non-NaN ``mu_s``)."""
    for r in range(x.shape[0]):
        mu = np.float64(mu_s[r])
        if not (mu == mu):
            continue
        best = count_score(np.float64(x[r]), mu, np.float64(var_s[r]), direction, overdisp)
        code = CODE_COUNT
        sc3 = np.float64(c3_s[r])
        if sc3 > best:
            best = sc3
            code = CODE_CUSUM
        score[r] = best
        det[r] = code if best > 0.0 else 0


@njit
def _baseline_pass(x, sh, is_count, warmup, par, L, D, S, N, expected, scale, want_baseline,
                   scan_mu, scan_on):  # pragma: no cover - compiled
    """Expected value and scale before learning (``extra["expected"]``) and the scan's expectations."""
    f_spread = par[P_FLOOR_SPREAD]
    f_level = par[P_FLOOR_LEVEL]
    mu_floor = par[P_MU_FLOOR]
    for r in range(x.shape[0]):
        l = np.float64(L[r])
        d = np.float64(D[r])
        n = N[r]
        sigma = SIGMA_PER_MAD * np.float64(S[r])
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
            sd = sigma
        if want_baseline:
            expected[r] = mu if n > 0 else math.nan
            scale[r] = sd if n > 0 else math.nan
        if scan_on:
            # the scan needs the expected count itself (rare tickets: 0.005-0.03 an hour), not the
            # row tail's floor; SCAN_MU_FLOOR only keeps it > 0
            ms = (e if e > SCAN_MU_FLOOR else SCAN_MU_FLOOR) if is_count else mu
            scan_mu[r] = ms if (n >= warmup and n > 0 and not math.isnan(x[r])) else math.nan


@njit(inline="always")
def _row_bins(x, phase, phase_fb, season, is_count, warmup, par, L, D, S, N, shape, visits, expected, scale,
              want_baseline, scan_mu, scan_on, judge_unset):  # pragma: no cover - compiled
    """The start of a row's cycle for :func:`_step` and :func:`_step_cat`: the profile bins it is
    judged and learned by (the weekly fallback, see :func:`_step`), its baseline outputs
    (:func:`_baseline_pass`), and the row pass's switches. Returns ``(seasonal, p_use, p2, wu, sh,
    clip_on, judge, fb, sh2, clip2)``."""
    seasonal = season > 0
    p_use = phase
    p2 = -1
    wu = warmup
    if seasonal and phase_fb >= 0:
        width = shape.shape[0]
        base = width - 2 * (width // 9)          # hour-of-week bins; the daily fallback bins follow
        kw = (warmup + base - 1) // base
        wu = (warmup + 6) // 7
        if visits[phase] < kw:
            p_use = base + phase_fb
            p2 = phase
    sh = np.float64(shape[p_use]) if seasonal else 0.0
    v_ph = visits[p_use] if seasonal else 0
    if want_baseline or scan_on:
        _baseline_pass(x, sh, is_count, wu, par, L, D, S, N, expected, scale, want_baseline, scan_mu, scan_on)
    clip_on = v_ph >= 2
    judge = judge_unset or not (seasonal and v_ph == 0)
    fb = p2 >= 0
    sh2 = np.float32(shape[p2]) if fb else np.float32(0.0)
    clip2 = visits[p2] >= 2 if fb else False     # typed bool either way (one compile of the row pass)
    return seasonal, p_use, p2, wu, sh, clip_on, judge, fb, sh2, clip2


def _is_false(flag) -> bool:
    """Whether a numba argument type is the literal ``False`` (the NAB path's series kernel passes it)."""
    return isinstance(flag, types.BooleanLiteral) and not flag.literal_value


@njit(inline="always")
def _count_tail_run(is_count, x, direction, od, mu_s, var_s, c3_s, score, det, cw, ci):  # pragma: no cover
    """:func:`_count_tail`'s work on a runtime flag."""
    if is_count and _any_warm(mu_s):
        if _count_vec_pass(x, direction, od, mu_s, var_s, c3_s, score, det, cw, ci) > 0:
            _count_fallback(x, direction, od, mu_s, var_s, c3_s, score, det)


def _count_tail(is_count, x, direction, od, mu_s, var_s, c3_s, score, det, cw, ci):
    """Detector 2's tail of a count row (:func:`_count_vec_pass`, then :func:`_count_fallback` for the series
    it leaves) where ``is_count`` and a series is warm. In compiled code a literal ``False`` compiles to
    nothing (the overload below)."""
    _count_tail_run(is_count, x, direction, od, mu_s, var_s, c3_s, score, det, cw, ci)


@overload(_count_tail, inline="always", prefer_literal=True)
def _count_tail_impl(is_count, x, direction, od, mu_s, var_s, c3_s, score, det, cw, ci):
    # A literal False (``_series_kernel_plain``) compiles nothing of the count pass: numba types both arms of
    # a branch on a boolean argument, and the pass is most of the NAB path's cold compile (docs/detect.md,
    # "The NAB path's cold compile ... (twenty-second session)").
    if _is_false(is_count):
        return lambda is_count, x, direction, od, mu_s, var_s, c3_s, score, det, cw, ci: None
    return lambda is_count, x, direction, od, mu_s, var_s, c3_s, score, det, cw, ci: _count_tail_run(
        is_count, x, direction, od, mu_s, var_s, c3_s, score, det, cw, ci)


@njit(inline="always")
def _spatial_tail_run(spatial, n_reg, z, adj_ptr, adj_idx, direction, min_nb, score, det):  # pragma: no cover
    """:func:`_spatial_tail`'s work on a runtime flag."""
    if spatial and n_reg > 1:
        spatial_pass(z, adj_ptr, adj_idx, direction, min_nb, score, det, CODE_SPATIAL)


def _spatial_tail(spatial, n_reg, z, adj_ptr, adj_idx, direction, min_nb, score, det):
    """Detector 5 over a row (:func:`spatial_pass`) where ``spatial`` and the row has ``n_reg > 1`` regions. In
    compiled code a literal ``False`` compiles to nothing (as :func:`_count_tail`)."""
    _spatial_tail_run(spatial, n_reg, z, adj_ptr, adj_idx, direction, min_nb, score, det)


@overload(_spatial_tail, inline="always", prefer_literal=True)
def _spatial_tail_impl(spatial, n_reg, z, adj_ptr, adj_idx, direction, min_nb, score, det):
    if _is_false(spatial):   # (as _count_tail: the NAB path passes a literal False)
        return lambda spatial, n_reg, z, adj_ptr, adj_idx, direction, min_nb, score, det: None
    return lambda spatial, n_reg, z, adj_ptr, adj_idx, direction, min_nb, score, det: _spatial_tail_run(
        spatial, n_reg, z, adj_ptr, adj_idx, direction, min_nb, score, det)


@njit(inline="always")
def _row_finish(x, direction, is_count, warn, alarm, par, seasonal, p_use, p2, acc, acc_u, acc2, acc2_u, cnt,
                shape, visits, adj_ptr, adj_idx, spatial, z, mu_s, var_s, c3_s, cw, ci, score,
                det, defer):  # pragma: no cover - compiled
    """The end of a row's cycle for :func:`_step` and :func:`_step_cat`, after :func:`_row_pass`:
    the count tail, the profile bins' learning, the spatial pass, and the catalog levels last.
    ``defer``: the last two are left to the caller (:func:`_lane_keep`, then :func:`_lanes_out` or
    :func:`update_kernel`'s flush), which batches the spatial pass of eight rows; nothing else of
    the cycle reads the scores they raise."""
    n_reg = x.shape[0]
    has_thr = not math.isnan(warn)
    _count_tail(is_count, x, direction, par[P_OVERDISP], mu_s, var_s, c3_s, score, det, cw, ci)
    if seasonal and cnt > 0:
        _learn_bin(shape, visits, p_use, acc, acc_u, cnt, par[P_SHAPE_RATE])
        if p2 >= 0:
            _learn_bin(shape, visits, p2, acc2, acc2_u, cnt, par[P_SHAPE_RATE])
    if defer:
        return
    _spatial_tail(spatial, n_reg, z, adj_ptr, adj_idx, direction, int(par[P_SPATIAL_MIN]), score, det)
    if has_thr:  # last: a crossed catalog level drives its row whatever the statistical scores say
        _thr_pass(x, warn, alarm, score, det)


@njit
def _step(x, phase, phase_fb, season, direction, is_count, warn, alarm, warmup, span, par,
          L, D, S, CP, CN, N, NL, nsat, T, shape, visits, adj_ptr, adj_idx, spatial,
          z, mu_s, var_s, c3_s, cw, ci, score, det, expected, scale, want_baseline,
          scan_mu, scan_on, judge_unset, hold_mode):  # pragma: no cover - compiled
    """:func:`step_indicator` (and the NAB path's series kernel): ``CN`` and ``NL`` the rows to
    update, two cases of :func:`_row_pass` (with and without the fallback; the catalog kernels
    use :func:`_step_cat`). ``judge_unset`` False: a
    seasonal row whose phase bin has never been visited is not scored (no profile to judge it
    by: a weekday's hours after a weekend's history).

    **Weekly fallback** (``phase_fb >= 0``: a weekly row, its daily bin ``phase_fb``; the
    profile row then holds the ``per_week`` hour-of-week bins followed by ``2 per_day`` daily
    fallback bins, see :class:`engine.detect.state.DetectorState`): the row's series are warm
    after a seventh of the weekly warm-up (the daily profile's: ``warmup_seasons`` days),
    and until the weekly bin has had ``ceil(warmup / per_week)`` visits (``warmup_seasons``
    weeks of that bin's cycles) the row is judged and learned against its daily
    (weekday / weekend) fallback bin, by the seasonal detector alone (CUSUM held, see
    :func:`_row_pass`), while the weekly bin learns alongside; then the weekly bin takes over
    (the daily bins no longer learn).
    Returns the row's smallest observation count after this cycle."""
    seasonal, p_use, p2, wu, sh, clip_on, judge, fb, sh2, clip2 = _row_bins(
        x, phase, phase_fb, season, is_count, warmup, par, L, D, S, N, shape, visits, expected, scale,
        want_baseline, scan_mu, scan_on, judge_unset)
    if fb:
        acc, acc_u, acc2, acc2_u, cnt, nmin = _row_pass(
            x, np.float32(sh), sh2, True, seasonal, direction, is_count, wu, span, clip_on, clip2, judge,
            hold_mode, par, L, D, S, CP, CN, NL, False, nsat, T, z, mu_s, var_s, c3_s, score, det)
    else:
        acc, acc_u, acc2, acc2_u, cnt, nmin = _row_pass(
            x, np.float32(sh), None, False, seasonal, direction, is_count, wu, span, clip_on, False, judge,
            hold_mode, par, L, D, S, CP, CN, NL, False, nsat, T, z, mu_s, var_s, c3_s, score, det)
    _row_finish(x, direction, is_count, warn, alarm, par, seasonal, p_use, p2, acc, acc_u, acc2, acc2_u, cnt,
                shape, visits, adj_ptr, adj_idx, spatial, z, mu_s, var_s, c3_s, cw, ci, score, det, False)
    return nmin


@njit(inline="always")
def _lean_steady(x, sh, seasonal, direction, is_count, wu, span, clip_on, judge, hold_mode, par, L, D, S, CP,
                 nsat, T, z, mu_s, var_s, c3_s, score, det):  # pragma: no cover - compiled
    """:func:`_row_pass`'s lean steady one-sided case (no fallback, counts neither read nor kept: the
    catalog's operating state) for :func:`_step_cat`, compiled once for each value of ``is_count`` and
    ``seasonal``: numba types a literal ``True`` / ``False`` argument as its own literal type, so each
    call below is its own compile of the row pass in which the flag is a constant, and LLVM drops the
    branches and invariants it rules out from the vector body (a count row's square roots and floors,
    a non-seasonal row's push; docs/detect.md, "Lean row kinds ... (twenty-first session)")."""
    if is_count:
        if seasonal:
            return _row_pass(x, sh, None, False, True, direction, True, wu, span, clip_on, False, judge,
                             hold_mode, par, L, D, S, CP, None, None, True, nsat, T, z, mu_s, var_s, c3_s, score, det)
        return _row_pass(x, sh, None, False, False, direction, True, wu, span, clip_on, False, judge,
                         hold_mode, par, L, D, S, CP, None, None, True, nsat, T, z, mu_s, var_s, c3_s, score, det)
    if seasonal:
        return _row_pass(x, sh, None, False, True, direction, False, wu, span, clip_on, False, judge,
                         hold_mode, par, L, D, S, CP, None, None, True, nsat, T, z, mu_s, var_s, c3_s, score, det)
    return _row_pass(x, sh, None, False, False, direction, False, wu, span, clip_on, False, judge,
                     hold_mode, par, L, D, S, CP, None, None, True, nsat, T, z, mu_s, var_s, c3_s, score, det)


@njit
def _step_cat(x, phase, phase_fb, season, direction, is_count, warn, alarm, warmup, span, par,
              L, D, S, CP, CN, N, NL, nsat, T, shape, visits, adj_ptr, adj_idx, spatial,
              z, mu_s, var_s, c3_s, cw, ci, score, det, expected, scale, want_baseline,
              scan_mu, scan_on, judge_unset, hold_mode, steady, defer):  # pragma: no cover - compiled
    """:func:`_step` for the catalog kernels (:func:`run_kernel`, :func:`update_kernel`, which pass the
    row's state rows, :func:`_row_refs`): ``steady`` (bool) marks a steady row,
    whose ``NL`` is then scratch (neither read nor kept), as is ``CN`` of a one-sided row. One-sided
    rows run the four lean cases of :func:`_row_pass` (``CN`` None; ``NL`` None when ``steady``; with
    or without the fallback: the kernel's code as before, bit for bit), two-sided rows its general
    case (run-time ``steady`` / ``fallback``): five compiled cases instead of eight, one
    compile of this function instead of four (docs/detect.md, "Row pass compile and speed ...
    (sixth session)"). The steady one-sided case, 97 % of issue 4's rows, is itself compiled four times, by
    ``is_count`` and ``seasonal`` (:func:`_lean_steady`). The steady cases (``NL`` None) take every
    series as warm: a steady row with ``nsat`` below its warm-up (or 0; never one of
    :class:`engine.detect.detectors.Detectors`, whose ``nsat`` is at least ``warmup``) runs the general
    case. Returns the row's smallest observation count after this cycle."""
    seasonal, p_use, p2, wu, sh, clip_on, judge, fb, sh2, clip2 = _row_bins(
        x, phase, phase_fb, season, is_count, warmup, par, L, D, S, N, shape, visits, expected, scale,
        want_baseline, scan_mu, scan_on, judge_unset)
    # the lean steady cases (``N`` None) take every series as warm: only for rows where that holds
    # (``nsat >= warmup > 0``: every steady row of :class:`engine.detect.detectors.Detectors`, whose
    # ``nsat`` is at least ``warmup``); any other steady row runs the general case below
    warm_all = steady and nsat >= wu and nsat > 0
    if direction != 0 and not fb and warm_all:  # one-sided, no fallback, steady: counts neither read nor kept
        acc, acc_u, acc2, acc2_u, cnt, nmin = _lean_steady(
            x, np.float32(sh), seasonal, direction, is_count, wu, span, clip_on, judge, hold_mode, par, L, D, S, CP,
            nsat, T, z, mu_s, var_s, c3_s, score, det)
    elif direction != 0 and not fb and not steady:   # one-sided, no fallback, still counting
        acc, acc_u, acc2, acc2_u, cnt, nmin = _row_pass(
            x, np.float32(sh), None, False, seasonal, direction, is_count, wu, span, clip_on, False, judge,
            hold_mode, par, L, D, S, CP, None, NL, False, nsat, T, z, mu_s, var_s, c3_s, score, det)
    elif direction != 0 and fb and warm_all:     # one-sided, the weekly fallback, steady
        acc, acc_u, acc2, acc2_u, cnt, nmin = _row_pass(
            x, np.float32(sh), sh2, True, seasonal, direction, is_count, wu, span, clip_on, clip2, judge,
            hold_mode, par, L, D, S, CP, None, None, True, nsat, T, z, mu_s, var_s, c3_s, score, det)
    elif direction != 0 and fb and not steady:   # one-sided, the weekly fallback, still counting
        acc, acc_u, acc2, acc2_u, cnt, nmin = _row_pass(
            x, np.float32(sh), sh2, True, seasonal, direction, is_count, wu, span, clip_on, clip2, judge,
            hold_mode, par, L, D, S, CP, None, NL, False, nsat, T, z, mu_s, var_s, c3_s, score, det)
    else:                  # two-sided (3 % of the catalog), or steady and not all warm: the general case
        acc, acc_u, acc2, acc2_u, cnt, nmin = _row_pass(
            x, np.float32(sh), sh2, fb, seasonal, direction, is_count, wu, span, clip_on, clip2, judge,
            hold_mode, par, L, D, S, CP, CN, NL, steady, nsat, T, z, mu_s, var_s, c3_s, score, det)
    _row_finish(x, direction, is_count, warn, alarm, par, seasonal, p_use, p2, acc, acc_u, acc2, acc2_u, cnt,
                shape, visits, adj_ptr, adj_idx, spatial, z, mu_s, var_s, c3_s, cw, ci, score, det, defer)
    return nmin


@njit(inline="always")
def _learn_bin(shape, visits, p, acc, acc_u, cnt, shape_rate):  # pragma: no cover - compiled
    """Profile bin ``p`` follows the row's mean push (sums ``acc``, ``acc_u`` of ``cnt`` regions)."""
    sh = np.float64(shape[p])
    v = visits[p]
    r0 = 1.0 / (v + 1.0)
    rt = r0 if r0 > shape_rate else shape_rate
    if v == 1:                         # the second visit overwrites the first (rt = 1)
        shape[p] = acc_u / cnt         # = sh + acc / cnt, without float32 cancellation
    else:
        shape[p] = sh + rt * (acc / cnt)
    visits[p] = v + 1 if v < VISITS_MAX else VISITS_MAX


@njit
def step_indicator(x, phase, season, direction, is_count, warn, alarm, warmup, span, par,
                   L, D, S, CP, CN, N, shape, visits, adj_ptr, adj_idx, spatial,
                   z, mu_s, var_s, c3_s, score, det, expected, scale, want_baseline,
                   scan_mu, scan_on):  # pragma: no cover - compiled
    """Score and learn one indicator at one cycle.

    ``x`` (n_reg) are the values (NaN: no data); ``L, D, S, CP, N`` the indicator's rows
    of the state (updated in place; ``CP`` the bad side's CUSUM, C- for ``direction`` -1),
    ``CN`` the C- row of a two-sided (``direction`` 0) indicator (any row otherwise: its
    values then never reach a score); ``shape, visits`` its profile rows; ``z``, ``mu_s``,
    ``var_s``, ``c3_s`` scratch of n_reg; ``score`` (float32), ``det`` (int8) and,
    when ``want_baseline``, ``expected`` / ``scale`` (float32) its output rows. The
    observation counts are always read and written (the catalog kernels skip them for
    steady rows, :func:`update_kernel`) and repeats are learned (no value tags: the catalog
    kernels learn a non-count series at its feed's cadence, see :func:`_row_pass`).
    """
    n_c = x.shape[0] if is_count else 0
    cw = np.empty((COUNT_SCRATCH, n_c), dtype=np.float32)
    ci = np.empty(n_c, dtype=np.int32)
    _step(x, phase, -1, season, direction, is_count, warn, alarm, warmup, span, par, L, D, S, CP, CN, N, N,
          NOBS_MAX + 1, None, shape, visits, adj_ptr, adj_idx, spatial, z, mu_s, var_s, c3_s, cw, ci, score, det,
          expected, scale, want_baseline, scan_mu, scan_on, True, 0)


@njit(inline="always")
def _row_refs(i, season, par, L, D, S, CP, CN, both_slot, N, T, shape, visits, cw, scan_slot,
              judge_unset):  # pragma: no cover - compiled
    """Row ``i``'s state rows and switches for :func:`_step_cat` and :func:`_skip_row`, taken once a row
    by :func:`run_kernel` (for all the row's cycles) and :func:`update_kernel`: ``(L, D, S, CP, CN, N, T,
    shape, visits, fb_on, srow, son)``. ``CN`` is the row's C- row when two-sided, else count scratch
    row 3 (never read back: the row pass selects it away; one call, one compile). ``fb_on``: a weekly
    row under the city rules (``judge_unset`` False) with ``weekly_fallback`` on and a profile row laid
    out with its daily fallback bins (width ``9 per_day``) gets the fallback (:func:`_step`) on the
    cycle's daily bin. ``srow`` / ``son``: its row of the scan's expectations and whether it has one.

    **Why once a row** (docs/detect.md, "Reference counts in the row loops ... (twelfth session)"):
    each array a numba function takes or views costs an atomic increment and decrement of its parent's
    reference count, which numba does not prune in a function that calls another that may fail (every
    function here). The former per-cycle ``_step_row(i, ...)`` took 36 arrays and viewed their rows
    only to hand the rows to :func:`_step_cat`: 41 increments and as many decrements a computed
    row-cycle, now none (the kernels call :func:`_step_cat` themselves, with these rows)."""
    b = both_slot[i]
    slot = scan_slot[i]
    fb_on = season[i] == 2 and not judge_unset and par[P_FALLBACK] != 0.0 and shape.shape[1] % 9 == 0
    return (L[i], D[i], S[i], CP[i], CN[b] if b >= 0 else cw[3], N[i], T[i], shape[i], visits[i], fb_on,
            slot if slot >= 0 else 0, slot >= 0)


@njit(fastmath=_FAST)
def _quiet_row(x, N, sty, nsat, T, hold_mode, is_count):  # pragma: no cover - compiled
    """Whether cycle ``x`` leaves the row's state as it was: every value missing or a held repeat
    (:func:`_row_pass`'s ``rep``: ``hold_mode`` > 0, a non-count row, an observed series, a value
    non-zero (or ``hold_mode`` 2) whose tag is the series' last). Then nothing is learned (level,
    spread, scale, counts, CUSUM, tags unchanged; no profile bin learns: its push counts only fresh
    values), so a next cycle in the same bins with the same values scores exactly as this one
    (:func:`run_kernel`'s skip). ``N`` is the row's counts (read whatever ``sty``: a steady row's
    ``n`` is ``nsat``). Branch-free (vectorises): a float32 count of the fresh values. A row whose repeats
    are learned (``held`` False: count rows, ``hold_mode`` 0) is quiet only when every value is missing:
    it returns at its first value (the demo's count rows never have a cycle with none)."""
    n_reg = x.shape[0]
    held = hold_mode > 0 and not is_count
    if not held:
        for r in range(n_reg):
            if x[r] == x[r]:
                return False
        return True
    any_val = hold_mode == 2
    nz_sty = nsat != 0
    fresh = _0
    for r in range(n_reg):
        xv = np.float32(x[r])
        ok = xv == xv
        nr = N[r]                                   # read unconditionally (vectorises)
        nz = nz_sty if sty else nr != 0
        rep = nz & ((xv != _0) | any_val) & (np.int32(T[r]) == value_tag(xv)) & held
        fresh += _1 if (ok & (rep == False)) else _0  # noqa: E712 (bitwise: vectorises)
    return fresh == _0


@njit(fastmath=_FAST)
def _same_values(a, b):  # pragma: no cover - compiled
    """Whether rows ``a`` and ``b`` hold the same values bit for bit (both missing counts as the
    same: a missing value reaches no output but as the kernel's own NaN). Branch-free."""
    diff = _0
    for r in range(a.shape[0]):
        u = a[r]
        w = b[r]
        same = ((u == w) & (_f32_bits(np.float32(u)) == _f32_bits(np.float32(w)))) | ((u != u) & (w != w))
        diff += _0 if same else _1
    return diff == _0


@njit(inline="always")
def _copy_row(score0, det0, score, det):  # pragma: no cover - compiled
    """``score``, ``det`` = ``score0``, ``det0``."""
    for r in range(score.shape[0]):
        score[r] = score0[r]
        det[r] = det0[r]


@njit(inline="always")
def _lane_tables(n_reg, lanes_on):  # pragma: no cover - compiled
    """A thread's spatial batch tables (:func:`engine.detect.spatial.spatial_score8w`), ``LANES`` x
    ``n_reg`` each (empty without the spatial pass): ``zc8`` (float32, scratch: the scoring's ``e8``, then
    the scores back as rows), ``acc8`` (float32, the scores region-major), ``cnt8`` (float32, ``2 LANES + 2``
    x ``n_reg``: 1.0 where a lane has a residual, then the scoring's ``mm8`` and ``lst``, :func:`_score_lanes`)
    and ``dirf`` (float64, the residuals widened; :func:`engine.detect.spatial.spatial_lanes_in64`). The
    callers' argument lists stay as they were (``cnt8`` / ``dirf`` were once the float64 sums and directions)."""
    n8 = LANES * n_reg if lanes_on else 0
    nc = (2 * LANES + 2) * n_reg if lanes_on else 0
    return (np.empty(n8, dtype=np.float32), np.empty(n8, dtype=np.float32), np.empty(nc, dtype=np.float32),
            np.empty(n8, dtype=np.float64))


@njit
def _lane_keep(z, x, direction, warn, alarm, adj_ptr, adj_idx, min_nb, score, det):  # pragma: no cover - compiled
    """A row's cycle whose spatial pass and catalog levels were deferred (:func:`_row_finish`), for the
    spatial batch of :func:`run_kernel` and :func:`update_kernel`, whose lanes are the rows of ``zb``
    (``LANES`` x n_reg): the row pass wrote the cycle's residuals straight into its lane's row ``z``,
    clipped here in place
    (:func:`engine.detect.spatial.spatial_clip`). Returns whether the lane is taken (at least a third of
    the regions scored: the row waits for :func:`_lanes_out`); a sparser row is finished here (region
    by region, :func:`engine.detect.spatial.spatial_sparse`; nothing for a row with no residual), then
    its catalog levels."""
    nv = spatial_clip(z)
    if 3 * nv >= z.shape[0]:
        return True
    if nv > 0:
        spatial_sparse(z, adj_ptr, adj_idx, direction, min_nb, score, det, CODE_SPATIAL)
    if not math.isnan(warn):
        _thr_pass(x, warn, alarm, score, det)
    return False


@njit
def _skip_row(x, ph, fbp, sea, isc, wu, par, L, D, S, N, shape, visits, score0, det0, score, det, expected, scale,
              want_baseline, scan_mu, son, judge_unset, copy):  # pragma: no cover - compiled
    """A row's cycle as a copy of its previous one (:func:`run_kernel`'s skip): the scores and codes
    ``score0`` / ``det0`` (when ``copy``; else the caller copies them once they are final), and the baseline
    / the scan's expectations recomputed from the unchanged state (:func:`_baseline_pass`, as
    :func:`_step_cat` does: the previous cycle may not have wanted them). ``L`` ... ``visits``, ``scan_mu``
    and ``son`` are the row's (:func:`_row_refs`), ``fbp`` its fallback bin (-1: none), ``sea``, ``isc``,
    ``wu`` its season, count flag and warm-up."""
    if copy:
        _copy_row(score0, det0, score, det)
    if want_baseline or son:
        _row_bins(x, ph, fbp, sea, isc, wu, par, L, D, S, N, shape, visits, expected, scale, want_baseline,
                  scan_mu, son, judge_unset)


@njit(inline="always")
def _score_lanes(zb, zc8, dirv, adj_ptr, adj_idx, min_nb, acc8, cnt8, dirf):  # pragma: no cover - compiled
    """The spatial scores of the lanes held as the rows of ``zb`` (each with direction ``dirv[q]``):
    into the region-major tables ``dirf`` (the residuals widened to float64, +0.0 where missing) and
    ``cnt8`` (float32, 1.0 where present) by 8 x 8 transposes (:func:`engine.detect.spatial.spatial_lanes_in64`),
    scored into ``acc8`` (:func:`engine.detect.spatial.spatial_score8w`, float32: the same bits as
    :func:`engine.detect.spatial.spatial_score8` on the float32 table; its scratch ``zc8`` and the rest
    of ``cnt8``), and back into rows, returned (a view of ``zc8``: scratch, refilled by each scoring)."""
    n = zb.shape[1]
    n8 = LANES * n
    m32 = cnt8[:n8]
    spatial_lanes_in64(zb, dirf, m32)
    spatial_score8w(dirf, m32, dirv, adj_ptr, adj_idx, min_nb, acc8, zc8, cnt8[n8:2 * n8], cnt8[2 * n8:2 * n8 + 2 * n].view(np.int64))
    sb = zc8.reshape((LANES, n))
    spatial_lanes_out(acc8, sb)
    return sb


@njit
def _lanes_out(V, score, det, i, warn, alarm, zb, zc8, dirv, adj_ptr, adj_idx, min_nb, acc8, cnt8, dirf, cyc, nl, pend,
               npend):  # pragma: no cover - compiled
    """Row ``i``'s deferred cycles (:func:`run_kernel`): the spatial pass of the ``nl`` cycles ``cyc``
    in the lanes (the rows of ``zb``) at once (:func:`_score_lanes`' tables and scoring), the scores
    transposed straight into the cycles' score rows and raised there
    (:func:`engine.detect.spatial.spatial_lanes_raise`), then each cycle's catalog levels (the raise before
    the levels, as :func:`_row_finish`; each cycle's rows are its own, so the order across cycles does
    not matter), then the copies of the skipped cycles ``pend[:npend]`` in time order (each copies its
    previous cycle, final by then)."""
    n_ind, n = score.shape[1], score.shape[2]
    n8 = LANES * n
    m32 = cnt8[:n8]
    spatial_lanes_in64(zb, dirf, m32)
    spatial_score8w(dirf, m32, dirv, adj_ptr, adj_idx, min_nb, acc8, zc8, cnt8[n8:2 * n8],
                    cnt8[2 * n8:2 * n8 + 2 * n].view(np.int64))
    # the scores transposed straight into the cycles' rows and raised there (no row scratch between)
    spatial_lanes_raise(acc8, n, score.reshape(score.size), det.reshape(det.size), cyc, n_ind * n, i * n, nl,
                        CODE_SPATIAL)
    if not math.isnan(warn):
        for q in range(nl):
            t = cyc[q]
            _thr_pass(V[t, i], warn, alarm, score[t, i], det[t, i])
    for q in range(npend):
        t = pend[q]
        _copy_row(score[t - 1, i], det[t - 1, i], score[t, i], det[t, i])


def _prefetch_lines(rw):
    """An intrinsic ``f(a, k0, n)``: a prefetch (``llvm.prefetch``, ``rw`` 0 read / 1 write, all cache
    levels) of each 64-byte line of the flat elements ``[k0, k0 + n)`` of the C-contiguous array ``a``
    (:func:`run_kernel`: the next cycle's input and output rows, docs/detect.md "... (twelfth
    session)"). A hint: no value changes, no fault (a prefetch of an address past the array is
    dropped). No bounds check."""
    @intrinsic
    def prefetch(typingctx, a, k0, n):
        def codegen(context, builder, signature, args):
            at = signature.args[0]
            av, lo, cnt = args
            data = context.make_array(at)(context, builder, av).data
            i8p = llvm_ir.IntType(8).as_pointer()
            i32 = llvm_ir.IntType(32)
            fnty = llvm_ir.FunctionType(llvm_ir.VoidType(), [i8p, i32, i32, i32])
            fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
            nbytes = builder.mul(cnt, llvm_ir.Constant(cnt.type, at.dtype.bitwidth // 8))
            base = builder.bitcast(builder.gep(data, [lo]), i8p)
            with cgutils.for_range_slice(builder, llvm_ir.Constant(cnt.type, 0), nbytes,
                                         llvm_ir.Constant(cnt.type, 64)) as (off, _):
                builder.call(fn, [builder.gep(base, [off]), llvm_ir.Constant(i32, rw), llvm_ir.Constant(i32, 3),
                                  llvm_ir.Constant(i32, 1)])
            return context.get_dummy_value()
        if not (isinstance(a, types.Array) and a.layout == "C"):
            return None
        return types.void(a, types.intp, types.intp), codegen
    return prefetch


_prefetch_r = _prefetch_lines(0)
_prefetch_w = _prefetch_lines(1)


@njit(inline="always")
def _prefetch_cycle(V, score, det, expected, scale, t, i, bs):  # pragma: no cover - compiled
    """Prefetch row ``i`` of cycle ``t``: its values, its score and code rows, and where ``bs >= 0``
    its baseline rows (``expected`` / ``scale`` row ``bs``) (:func:`run_kernel`)."""
    n_ind = V.shape[1]
    n_reg = V.shape[2]
    k = (t * n_ind + i) * n_reg
    _prefetch_r(V, k, n_reg)
    _prefetch_w(score, k, n_reg)
    _prefetch_w(det, k, n_reg)
    if bs >= 0 and expected.shape[2] == n_reg:
        kb = (bs * n_ind + i) * n_reg
        _prefetch_w(expected, kb, n_reg)
        _prefetch_w(scale, kb, n_reg)


@njit(parallel=True)
def update_kernel(V, phase_d, phase_w, season, direction, is_count, warn, alarm, warmup, span, par,
                  L, D, S, CP, CN, both_slot, N, nsat, steady, T, shape, visits, adj_ptr, adj_idx, spatial,
                  score, det, expected, scale, want_baseline, scan_slot, scan_mu, judge_unset, held,
                  n_workers):  # pragma: no cover
    """One cycle for every indicator: ``V`` (n_ind, n_reg) -> ``score``, ``det`` (and baseline).

    ``CP`` is each series' bad-side CUSUM, ``CN`` the C- rows of the two-sided indicators (row
    ``both_slot[i]``, -1: one-sided); ``steady[i]`` marks a row whose every series has been
    observed ``nsat[i]`` cycles (warm, fixed learning rates): its counts ``N`` are frozen, no
    longer read or written (2 + 2 bytes a series less). ``judge_unset`` False: a seasonal row is
    not scored on a profile bin it has never visited; ``held[i]`` (uint8): 1 a non-count
    series' exact non-zero repeat is not learned, 2 any repeat, 0 every value learned (see :func:`_row_pass`).
    The spatial pass of a chunk's rows runs batched, each row in a lane with its direction
    (:func:`engine.detect.spatial.spatial_score8`), then each row's raise and catalog levels.

    **Dealt chunks** (docs/detect.md, "Single-cycle update ... (tenth session)"): the rows go in
    chunks of :data:`CHUNK`, dealt to ``n_workers`` workers (``numba.get_num_threads()`` from the
    caller: numba splits a ``prange`` statically, so each thread runs one worker): worker ``w`` runs
    chunks ``w, w + n_workers, ...``, with its scratch allocated once. The catalog's costly rows
    (count rows ~2x) sit in runs, so contiguous halves were 5-7 % apart in CPU; dealt, they
    balance. Each row's cycle is computed as before (the same chunks, lanes and order within a
    chunk): the outputs and state are the same bit for bit whatever ``n_workers``. As in :func:`run_kernel`,
    each worker hands on arrays that are not reference counted (:func:`_borrow`)."""
    n_ind, n_reg = V.shape
    n_chunks = (n_ind + CHUNK - 1) // CHUNK
    nw = min(max(n_workers, 1), max(n_chunks, 1))
    lanes_on = spatial and n_reg > 1     # the spatial pass batched over the chunk's rows (LANES at a time)
    min_nb = int(par[P_SPATIAL_MIN])
    for w in prange(nw):
        # the worker's scratch (held by ``own`` up to :func:`_keep` below) and the arrays it hands on, not
        # reference counted in its loops (:func:`_borrow`: no atomic update a call or a view)
        own = (np.zeros((LANES, n_reg), dtype=np.float32), np.empty(n_reg, dtype=np.float32),
               np.empty(n_reg, dtype=np.float32), np.empty(n_reg, dtype=np.float32),
               np.empty((COUNT_SCRATCH, n_reg), dtype=np.float32), np.empty(n_reg, dtype=np.int32),
               np.zeros(LANES, dtype=np.float64), np.empty(LANES, dtype=np.int64)) + _lane_tables(n_reg, lanes_on)
        zb = _borrow(own[0])        # the lanes: row q takes the residuals of row rows[q]
        mu_s, var_s, c3_s, cw, ci = _borrow(own[1]), _borrow(own[2]), _borrow(own[3]), _borrow(own[4]), _borrow(own[5])
        dirv, rows, zc8, acc8, cnt8, dirf = (_borrow(own[6]), _borrow(own[7]), _borrow(own[8]), _borrow(own[9]),
                                             _borrow(own[10]), _borrow(own[11]))
        V_b, score_b, det_b, expected_b, scale_b, scan_mu_b = (_borrow(V), _borrow(score), _borrow(det), _borrow(expected),
                                                               _borrow(scale), _borrow(scan_mu))
        L_b, D_b, S_b, CP_b, CN_b, N_b, T_b = _borrow(L), _borrow(D), _borrow(S), _borrow(CP), _borrow(CN), _borrow(N), _borrow(T)
        shape_b, visits_b, par_b, adj_ptr_b, adj_idx_b = _borrow(shape), _borrow(visits), _borrow(par), _borrow(adj_ptr), _borrow(adj_idx)
        season_b, both_slot_b, scan_slot_b = _borrow(season), _borrow(both_slot), _borrow(scan_slot)
        ci16 = ci.view(np.int16)    # a steady row's counts go here (scratch: neither read nor kept)
        for ch in range(w, n_chunks, nw):
            nl = 0
            for i in range(ch * CHUNK, min(n_ind, (ch + 1) * CHUNK)):
                ph = phase_w if season_b[i] == 2 else phase_d
                z = zb[nl]      # the row pass writes the residuals straight into the next free lane
                Li, Di, Si, CPi, CNi, Ni, Ti, shi, vii, fb_on, srow, son = _row_refs(
                    i, season_b, par_b, L_b, D_b, S_b, CP_b, CN_b, both_slot_b, N_b, T_b, shape_b, visits_b, cw, scan_slot_b, judge_unset)
                sty = steady[i]
                fbp = phase_d if fb_on else -1
                nl_i = ci16 if sty else Ni      # (not inside the call: numba's bytecode limit for long calls)
                x = V_b[i]
                sc = score_b[i]
                dc = det_b[i]
                nm = _step_cat(x, ph, fbp, season_b[i], direction[i], is_count[i], warn[i], alarm[i],
                               warmup[i], span[i], par_b, Li, Di, Si, CPi, CNi, Ni, nl_i, nsat[i], Ti, shi,
                               vii, adj_ptr_b, adj_idx_b, spatial, z, mu_s, var_s, c3_s, cw, ci, sc, dc, expected_b[i], scale_b[i],
                               want_baseline, scan_mu_b[srow], son, judge_unset, held[i], sty, lanes_on)
                if not sty and nm >= nsat[i]:   # every series observed nsat cycles: steady from the next cycle
                    steady[i] = True
                if lanes_on and _lane_keep(z, x, direction[i], warn[i], alarm[i], adj_ptr_b, adj_idx_b, min_nb, sc, dc):
                    rows[nl] = i
                    dirv[nl] = direction[i]
                    nl += 1
                if nl == LANES or (nl > 0 and i == min(n_ind, (ch + 1) * CHUNK) - 1):
                    sb = _score_lanes(zb, zc8, dirv, adj_ptr_b, adj_idx_b, min_nb, acc8, cnt8, dirf)
                    for q in range(nl):
                        j = rows[q]
                        spatial_raise(sb[q], score_b[j], det_b[j], CODE_SPATIAL)
                        if not math.isnan(warn[j]):
                            _thr_pass(V_b[j], warn[j], alarm[j], score_b[j], det_b[j])
                    nl = 0
        _keep(own)


@njit(parallel=True)
def run_kernel(V, phase_d, phase_w, season, direction, is_count, warn, alarm, warmup, span, par,
               L, D, S, CP, CN, both_slot, N, nsat, steady, T, shape, visits, adj_ptr, adj_idx, spatial,
               score, det, expected, scale, baseline_slot, scan_slot, scan_mu, judge_unset, held,
               n_workers):  # pragma: no cover
    """Many cycles: ``V`` (n_t, n_ind, n_reg), phases (n_t) -> ``score``, ``det`` (n_t, n_ind, n_reg).

    ``baseline_slot`` (int64, n_t): the row of ``expected`` / ``scale`` (n_b >= 1, n_ind, n_reg
    or 0) that takes cycle ``t``'s baseline, -1 for none: a run that needs the baselines of a
    few cycles only (a scenario run's stored cycles) gets them in the same call, each
    indicator's state staying in cache over all ``n_t`` cycles (one call per cycle or per few
    cycles streams the whole state through memory each time).

    **Skip** (docs/detect.md, "Row skip, 2026-11-29 (seventh session)"): a row's cycle ``t`` is a copy
    of its cycle ``t - 1`` (scores, codes; the baseline and the scan's expectations recomputed from the
    state, :func:`_skip_row`) when cycle ``t - 1`` left the row's state as it was (:func:`_quiet_row`:
    every value missing or a held repeat -- nothing learned, no profile bin moved), ran with the same
    steady flag, and cycle ``t`` has the same values bit for bit (:func:`_same_values`) and the same
    profile bins (daily bin; a weekly row's weekly and daily bins; none for a non-seasonal row): the
    cycle is then the same function of the same arguments. Whatever changes with time alone (CUSUM,
    counts, warm-up, steadiness, a bin's visits) changes only when something is learned, so nothing
    else needs a test. The first cycle of each call is computed (no ``score[t - 1]`` in the call).
    The same outputs and state as successive :func:`update_kernel` calls, bit for bit.

    **Spatial batch** (docs/detect.md, "Spatial pass batched ... (ninth session)" and "Spatial batch's
    transpositions ... (tenth session)"): a row's computed cycles wait in :data:`engine.detect.spatial.LANES`
    lanes -- the rows of ``zb``, into which the row pass writes the residuals -- for their spatial pass and
    catalog levels, scored together by :func:`_lanes_out` (one neighbour load serves eight cycles; the scores
    transposed straight into the cycles' score rows and raised there); a skipped cycle's
    copy of its predecessor waits with them while lanes are pending, and is made after them in time
    order.

    **Dealt rows** (docs/detect.md, "Detectors stage ... (eleventh session)"): the rows go in chunks of
    :data:`CHUNK`, dealt to ``n_workers`` workers (``numba.get_num_threads()`` from the caller; reading
    it here stops caching): worker ``w`` runs chunks ``w, w + n_workers, ...`` with its scratch
    allocated once. numba splits a ``prange`` statically into contiguous blocks, and the catalog's
    costly rows (count rows, rows with the spatial pass) sit in runs: the two threads' CPU on the
    demo's parts was 8-21 % apart with contiguous halves. Rows dealt one by one would be 6-10 % apart
    by the rows' measured costs (the even rows cost ~4-5 % more than the odd), chunks of 8 0.4-1.8 %.
    Each row's cycles are computed as before (a row's work and order do not depend on its worker):
    the outputs and state are the same bit for bit whatever ``n_workers``.

    **Prefetch** (docs/detect.md, "Detectors stage ... (twelfth session)"): each row-cycle first asks
    for the lines of the next one (:func:`_prefetch_cycle`: its values, score and code rows, and
    baseline rows when it stores them; a row's cycles lie ``n_ind n_reg`` elements apart -- 3.5 MB
    in the demo -- where no hardware prefetcher follows), so they arrive while this one computes. A
    hint only: the same outputs bit for bit; -4 to -7 % of the CPU of an instrumented copy on the
    demo's captured parts (whole calls: new lower in 73 % of paired calls, not resolved beyond that).

    **No reference counts** (docs/detect.md, "Reference counts ... (thirteenth session)"): each worker takes the arrays it
    hands on (the kernel's arguments, its scratch) through :func:`_borrow` once, so the views and calls
    of its row-cycles update no reference count (they were 67 atomic pairs a computed row-cycle, on
    counts shared by both threads). The same code on the same memory: the outputs bit for bit."""
    n_t, n_ind, n_reg = V.shape
    lanes_on = spatial and n_reg > 1     # the spatial pass batched over the row's cycles (LANES at a time)
    min_nb = int(par[P_SPATIAL_MIN])
    n_chunks = (n_ind + CHUNK - 1) // CHUNK
    nw = min(max(n_workers, 1), max(n_chunks, 1))
    for w in prange(nw):
        # the worker's scratch (held by ``own`` up to :func:`_keep` below) and the arrays it hands on, not
        # reference counted in its loops (:func:`_borrow`: no atomic update a call or a view)
        own = (np.zeros((LANES, n_reg), dtype=np.float32), np.empty(n_reg, dtype=np.float32),
               np.empty(n_reg, dtype=np.float32), np.empty(n_reg, dtype=np.float32),
               np.empty((COUNT_SCRATCH, n_reg), dtype=np.float32), np.empty(n_reg, dtype=np.int32),
               np.empty(LANES, dtype=np.float64), np.empty(LANES, dtype=np.int64),
               np.empty(n_t, dtype=np.int64)) + _lane_tables(n_reg, lanes_on)
        zb = _borrow(own[0])        # the lanes: row q takes the residuals of cycle cyc[q]
        mu_s, var_s, c3_s, cw, ci = _borrow(own[1]), _borrow(own[2]), _borrow(own[3]), _borrow(own[4]), _borrow(own[5])
        dirv = _borrow(own[6])
        cyc = _borrow(own[7])       # the cycles in the lanes
        pend = _borrow(own[8])      # skipped cycles whose copy waits for the lanes
        zc8, acc8, cnt8, dirf = _borrow(own[9]), _borrow(own[10]), _borrow(own[11]), _borrow(own[12])
        V_b, score_b, det_b, expected_b, scale_b, scan_mu_b = (_borrow(V), _borrow(score), _borrow(det), _borrow(expected),
                                                               _borrow(scale), _borrow(scan_mu))
        L_b, D_b, S_b, CP_b, CN_b, N_b, T_b = _borrow(L), _borrow(D), _borrow(S), _borrow(CP), _borrow(CN), _borrow(N), _borrow(T)
        shape_b, visits_b, par_b, adj_ptr_b, adj_idx_b = _borrow(shape), _borrow(visits), _borrow(par), _borrow(adj_ptr), _borrow(adj_idx)
        season_b, both_slot_b, scan_slot_b = _borrow(season), _borrow(both_slot), _borrow(scan_slot)
        ci16 = ci.view(np.int16)    # a steady row's counts go here (scratch: neither read nor kept)
        for ch in range(w, n_chunks, nw):            # chunks of rows dealt to the workers (docstring: "Dealt rows")
            for i in range(ch * CHUNK, min(n_ind, (ch + 1) * CHUNK)):
                for q in range(LANES):
                    dirv[q] = direction[i]
                nl = 0
                npend = 0
                wi = warn[i]
                ai = alarm[i]
                sea = season_b[i]
                dri = direction[i]
                isc = is_count[i]
                wu = warmup[i]
                spn = span[i]
                ns = nsat[i]
                hm = held[i]
                # the row's state rows, once for all its cycles: a view or an array argument a row-cycle
                # costs two atomic reference-count updates (:func:`_row_refs`)
                Li, Di, Si, CPi, CNi, Ni, Ti, shi, vii, fb_on, srow, son = _row_refs(
                    i, season_b, par_b, L_b, D_b, S_b, CP_b, CN_b, both_slot_b, N_b, T_b, shape_b, visits_b, cw, scan_slot_b, judge_unset)
                quiet = False       # the last computed cycle left the row's state as it was (:func:`_quiet_row`)
                sty0 = False        # ... and ran with this steady flag
                for t in range(n_t):
                    # the next row-cycle's lines are fetched while this one runs (a cycle's rows lie
                    # 3.5 MB apart: no hardware prefetcher follows; docs/detect.md "... (twelfth session)")
                    if t + 1 < n_t:
                        _prefetch_cycle(V_b, score_b, det_b, expected_b, scale_b, t + 1, i, baseline_slot[t + 1])
                    elif i + 1 < n_ind:
                        _prefetch_cycle(V_b, score_b, det_b, expected_b, scale_b, 0, i + 1, baseline_slot[0])
                    ph = phase_w[t] if sea == 2 else phase_d[t]
                    fbp = phase_d[t] if fb_on else -1
                    bs = baseline_slot[t]
                    want = bs >= 0
                    bt = bs if want else 0
                    sty = steady[i]
                    x = V_b[t, i]
                    if (t > 0 and quiet and sty == sty0
                            and (sea == 0 or (phase_d[t] == phase_d[t - 1]
                                              and (sea != 2 or phase_w[t] == phase_w[t - 1])))
                            and _same_values(x, V_b[t - 1, i])):
                        # cycle t - 1 learned nothing and t repeats it (values, bins, state): its outputs
                        _skip_row(x, ph, fbp, sea, isc, wu, par_b, Li, Di, Si, Ni, shi, vii, score_b[t - 1, i],
                                  det_b[t - 1, i], score_b[t, i], det_b[t, i], expected_b[bt, i], scale_b[bt, i], want,
                                  scan_mu_b[t, srow], son, judge_unset, nl == 0)
                        if nl > 0:      # cycle t - 1's scores wait for the lanes: so does the copy
                            pend[npend] = t
                            npend += 1
                        continue
                    # (the flag is read by the next cycle only: the last cycle's is not computed)
                    quiet = t + 1 < n_t and _quiet_row(x, Ni, sty, ns, Ti, hm, isc)
                    sty0 = sty
                    z = zb[nl]      # the row pass writes the residuals straight into the next free lane
                    sc = score_b[t, i]
                    dc = det_b[t, i]
                    nl_i = ci16 if sty else Ni  # (not inside the call: numba's bytecode limit for long calls)
                    nm = _step_cat(x, ph, fbp, sea, dri, isc, wi, ai, wu, spn, par_b, Li, Di, Si, CPi, CNi, Ni,
                                   nl_i, ns, Ti, shi, vii, adj_ptr_b, adj_idx_b, spatial, z, mu_s, var_s, c3_s,
                                   cw, ci, sc, dc, expected_b[bt, i], scale_b[bt, i], want, scan_mu_b[t, srow], son,
                                   judge_unset, hm, sty, lanes_on)
                    if not sty and nm >= ns:    # every series observed nsat cycles: steady from the next cycle
                        steady[i] = True
                    if lanes_on and _lane_keep(z, x, dri, wi, ai, adj_ptr_b, adj_idx_b, min_nb, sc, dc):
                        cyc[nl] = t
                        nl += 1
                        if nl == LANES:
                            # (np.int64: the same argument types in numba's typing before and after the parfor
                            # pass, so each callee compiles once; docs/detect.md "... (tenth session)")
                            _lanes_out(V_b, score_b, det_b, np.int64(i), wi, ai, zb, zc8, dirv, adj_ptr_b, adj_idx_b, min_nb,
                                       acc8, cnt8, dirf, cyc, np.int64(nl), pend, np.int64(npend))
                            nl = 0
                            npend = 0
                if nl > 0:
                    _lanes_out(V_b, score_b, det_b, np.int64(i), wi, ai, zb, zc8, dirv, adj_ptr_b, adj_idx_b, min_nb, acc8, cnt8,
                               dirf, cyc, np.int64(nl), pend, np.int64(npend))
        _keep(own)
