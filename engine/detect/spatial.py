"""Detector 5: spatial outlier -- a neighbourhood's residual against its neighbours'.

At one cycle, with ``z`` the standardised residuals of one indicator in every region
(clipped at :data:`Z_CLIP`), the contrast of region ``r`` with its ``m`` neighbours that
have data is ``d = (z_r - mean(z_nb)) / sqrt(1 + 1/m)`` (unit variance when residuals are
independent), scored with the same t(4) tail as the seasonal detector. A shock common to
the whole area (rain, a holiday) raises every ``z`` and leaves ``d`` small; a region that
departs from its neighbours stands out. Needs ``spatial_min_neighbours`` neighbours.

**The score as computed** (since docs/detect.md, "Spatial pass ..., 2026-11-30 (fifteenth session)"):
with ``s`` the float64 sum of the ``m`` neighbours' clipped float32 residuals in CSR order (exact for
a few terms of like magnitude) and ``e = m z - s`` in float64 (one rounding; ``d = e / sqrt(m (m +
1))``, its sign and its zero exact), the tail is computed in float32 from ``e``: ``w = |e| / sqrt(4 m
(m + 1) + e^2)`` (``= |d| / sqrt(4 + d^2)``), ``tail = (1 - w)^2 (1 + w / 2) / 2``, each operation
rounded to float32 (:func:`_score32`). It is the float64 definition above within ~2e-7 (the clip
bounds the cancellation in ``1 - w``: ``w <= 0.9864``), below the float32 it is stored as by a few
steps. Every path (:func:`spatial_pass`, :func:`spatial_sparse`, the kernels' batch
:func:`spatial_score8`) computes the same operations in the same order: the same bits.

>>> import numpy as np
>>> z = np.array([0.0, 0.2, -0.1, 8.0])
>>> indptr = np.array([0, 3, 5, 7, 10]); indices = np.array([1, 2, 3, 0, 3, 0, 3, 0, 1, 2])
>>> s = np.zeros(4); d = np.zeros(4, dtype=np.int8)
>>> spatial_pass(z, indptr, indices, 1, 2, s, d, 5)
>>> d.tolist(), round(float(s[3]), 3)
([0, 0, 0, 5], 0.997)
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir as llvm_ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from engine.config import njit

__all__ = ["LANES", "Z_CLIP", "spatial_clip", "spatial_contrast", "spatial_lanes_in", "spatial_lanes_in64",
           "spatial_lanes_out", "spatial_lanes_raise", "spatial_pass", "spatial_raise", "spatial_score8", "spatial_score8w", "spatial_sparse"]

#: standardised residuals are clipped at this before the contrast
Z_CLIP = 6.0
#: residual vectors scored together by :func:`spatial_score8` (one AVX2 load of float32 a neighbour)
LANES = 8


@njit
def _clip(z):
    return Z_CLIP if z > Z_CLIP else (-Z_CLIP if z < -Z_CLIP else z)


@njit
def spatial_contrast(z, indptr, indices, r, min_nb):
    """Contrast ``d`` of region ``r`` (NaN if ``z[r]`` is NaN or too few neighbours have data)."""
    zr = z[r]
    if math.isnan(zr):
        return math.nan
    acc = 0.0
    m = 0
    for j in range(indptr[r], indptr[r + 1]):
        zj = z[indices[j]]
        if not math.isnan(zj):
            acc += _clip(zj)
            m += 1
    if m < min_nb:
        return math.nan
    return (_clip(zr) - acc / m) / math.sqrt(1.0 + 1.0 / m)


def _direction_masks(context, builder, dt, d_a):
    """The :data:`LANES` lanes' directions ``dirv`` (array type ``dt``, float or integer; its data
    ``d_a``) loaded as one vector and compared: ``(is_up, is_dn)``, i1 vectors, lanes equal to 1 and to -1
    (any other value two-sided). One copy for :func:`_score_lanes8` and :func:`_score_all8`."""
    vd = llvm_ir.VectorType(context.get_value_type(dt.dtype), LANES)
    dv = builder.load(builder.bitcast(d_a.data, vd.as_pointer()), align=dt.dtype.bitwidth // 8)
    if isinstance(dt.dtype, types.Float):
        return (builder.fcmp_ordered("==", dv, llvm_ir.Constant(vd, [1.0] * LANES)),
                builder.fcmp_ordered("==", dv, llvm_ir.Constant(vd, [-1.0] * LANES)))
    return (builder.icmp_signed("==", dv, llvm_ir.Constant(vd, [1] * LANES)),
            builder.icmp_signed("==", dv, llvm_ir.Constant(vd, [-1] * LANES)))


@intrinsic
def _score_lanes8(typingctx, zc8, indices, j0, j1, dirv, lo, out8, q):
    """``out8[q:q + LANES]`` = the spatial scores (:func:`_score32`) of the lanes ``zc8[q:q + LANES]``
    (float32, clipped, NaN where missing) against the lanes ``zc8[k:k + LANES]`` (``k = LANES *
    indices[j]``) of the neighbours ``j`` in ``[j0, j1)``; lane ``u``'s direction ``dirv[u]`` (1, -1,
    else two-sided), NaN where there is no score (the lane missing, or fewer than ``lo`` (float32, >= 1)
    neighbours with data). One vector of eight lanes throughout: the neighbour sums are float64 LLVM
    vectors kept in registers (``zc8``'s lanes widened first: exact; a missing lane adds +0.0: each lane
    adds the same terms in the same order as :func:`_sparse_rows`' scalar loop, so the same bits), then
    :func:`_score32`'s operations in its order, lane by lane (IEEE operations: the same bits as the
    scalar code; the square root and the division in float32, eight lanes an instruction). No bounds check: the
    callers index whole lane groups of arrays of ``LANES * n`` elements with valid CSR indices."""
    def codegen(context, builder, signature, args):
        zt, it, _, _, dt, _, ot, _ = signature.args
        zc_v, idx_v, lo_j, hi_j, dir_v, lo_v, out_v, qq = args
        z_a = context.make_array(zt)(context, builder, zc_v)
        i_a = context.make_array(it)(context, builder, idx_v)
        d_a = context.make_array(dt)(context, builder, dir_v)
        o_a = context.make_array(ot)(context, builder, out_v)
        f32 = llvm_ir.FloatType()
        vf = llvm_ir.VectorType(f32, LANES)
        mod = builder.module

        def splat(x):
            return llvm_ir.Constant(vf, [x] * LANES)
        zero, one, half, two, four = splat(0.0), splat(1.0), splat(0.5), splat(2.0), splat(4.0)
        vd64 = llvm_ir.VectorType(llvm_ir.DoubleType(), LANES)
        zero64 = llvm_ir.Constant(vd64, [0.0] * LANES)
        sa = cgutils.alloca_once_value(builder, zero64)
        sc = cgutils.alloca_once_value(builder, zero)
        with cgutils.for_range_slice(builder, lo_j, hi_j, llvm_ir.Constant(lo_j.type, 1)) as (j, _):
            ix = builder.load(builder.gep(i_a.data, [j]))
            if ix.type.width < lo_j.type.width:
                ix = builder.sext(ix, lo_j.type)
            k = builder.mul(ix, llvm_ir.Constant(lo_j.type, LANES))
            vz = builder.load(builder.bitcast(builder.gep(z_a.data, [k]), vf.as_pointer()), align=4)
            ok = builder.fcmp_ordered("ord", vz, vz)
            builder.store(builder.fadd(builder.load(sa), builder.fpext(builder.select(ok, vz, zero), vd64)), sa)
            builder.store(builder.fadd(builder.load(sc), builder.select(ok, one, zero)), sc)
        acc = builder.load(sa)
        cnt = builder.load(sc)
        zr = builder.load(builder.bitcast(builder.gep(z_a.data, [qq]), vf.as_pointer()), align=4)
        m = builder.select(builder.fcmp_ordered(">=", cnt, one), cnt, one)
        e64 = builder.fsub(builder.fmul(builder.fpext(zr, vd64), builder.fpext(m, vd64)), acc)
        e = builder.fptrunc(e64, vf)
        fnt = llvm_ir.FunctionType(vf, [vf])
        sqrt = cgutils.get_or_insert_function(mod, fnt, f"llvm.sqrt.v{LANES}f32")
        fabs = cgutils.get_or_insert_function(mod, fnt, f"llvm.fabs.v{LANES}f32")
        den = builder.call(sqrt, [builder.fadd(builder.fmul(builder.fmul(four, m), builder.fadd(m, one)),
                                               builder.fmul(e, e))])
        w = builder.fdiv(builder.call(fabs, [e]), den)
        omw = builder.fsub(one, w)
        tail = builder.fmul(builder.fmul(builder.fmul(half, omw), omw), builder.fadd(one, builder.fmul(half, w)))
        s1 = builder.fsub(one, tail)
        up = builder.select(builder.fcmp_ordered(">", e64, zero64), s1, zero)
        dn = builder.select(builder.fcmp_ordered("<", e64, zero64), s1, zero)
        both = builder.fsub(one, builder.fmul(two, tail))
        is_up, is_dn = _direction_masks(context, builder, dt, d_a)
        sv = builder.select(is_up, up, builder.select(is_dn, dn, both))
        lov = builder.insert_element(llvm_ir.Constant(vf, None), lo_v, llvm_ir.Constant(llvm_ir.IntType(32), 0))
        lov = builder.shuffle_vector(lov, lov, llvm_ir.Constant(llvm_ir.VectorType(llvm_ir.IntType(32), LANES), [0] * LANES))
        valid = builder.and_(builder.fcmp_ordered("ord", zr, zr), builder.fcmp_ordered(">=", cnt, lov))
        sv = builder.select(valid, sv, splat(float("nan")))
        builder.store(sv, builder.bitcast(builder.gep(o_a.data, [qq]), vf.as_pointer()), align=4)
        return context.get_dummy_value()
    if not (all(isinstance(x, types.Array) and x.ndim == 1 and x.layout == "C" and x.dtype == types.float32
                for x in (zc8, out8)) and isinstance(indices, types.Array) and indices.ndim == 1
            and indices.layout == "C" and isinstance(indices.dtype, types.Integer) and indices.dtype.bitwidth <= 64
            and isinstance(dirv, types.Array) and dirv.ndim == 1 and dirv.layout == "C"
            and isinstance(dirv.dtype, (types.Float, types.Integer)) and lo == types.float32):
        return None
    return types.void(zc8, indices, types.intp, types.intp, dirv, types.float32, out8, types.intp), codegen


_F0, _F05, _F1, _F2, _F4 = np.float32(0.0), np.float32(0.5), np.float32(1.0), np.float32(2.0), np.float32(4.0)


@njit(inline="always")
def _score32(zr, a, mf, direction):  # pragma: no cover - compiled (inlined)
    """The spatial score of a region (the definition, module docstring): ``zr`` its clipped residual
    (float32), ``a`` the float64 sum of its ``mf`` (float32, >= 1) neighbours' in CSR order.
    ``e = m z - sum`` in float64 (one rounding: the product is exact, and so is the sum of a few float32
    terms of like magnitude: a region level with its neighbours has ``e = 0`` exactly), then the tail in
    float32. The same operations in the same order as :func:`_score_lanes8`'s vector code: the same bits."""
    e64 = np.float64(zr) * np.float64(mf) - a
    e = np.float32(e64)
    w = abs(e) / np.sqrt(_F4 * mf * (mf + _F1) + e * e)
    omw = _F1 - w
    tail = _F05 * omw * omw * (_F1 + _F05 * w)
    if direction == 1:
        return _F1 - tail if e64 > 0.0 else _F0
    if direction == -1:
        return _F1 - tail if e64 < 0.0 else _F0
    return _F1 - _F2 * tail


@njit(inline="always")
def _sparse_rows(zc, w, indptr, indices, direction, min_nb, score, det, code):  # pragma: no cover
    """:func:`spatial_pass` on a sparse row: region by region, skipping the missing ones. ``zc``
    the clipped residuals (NaN where missing: ``w`` None; or 0 where missing beside the 0 / 1
    weights ``w``)."""
    n = score.shape[0]
    for r in range(n):
        if (zc[r] != zc[r]) if w is None else (w[r] == 0.0):
            continue
        a = 0.0
        m = 0
        for j in range(indptr[r], indptr[r + 1]):
            k = indices[j]
            if (zc[k] == zc[k]) if w is None else (w[k] != 0.0):
                a += np.float64(np.float32(zc[k]))
                m += 1
        if m < min_nb or m == 0:
            continue
        sc = _score32(np.float32(zc[r]), a, np.float32(m), direction)
        old = score[r]
        if old != old or sc > old:
            score[r] = sc
            det[r] = code


@njit(error_model="numpy")
def spatial_pass(z, indptr, indices, direction, min_nb, score, det, code, zc=None, w=None, acc=None, cnt=None):
    """Raise ``score[r]`` to the spatial score where it is higher (``det[r] = code`` there).

    The score of the module docstring (:func:`_score32`: ``e`` in float64, the tail in float32), in
    four loops over the regions: the residuals clipped once into ``zc`` (0 where missing) beside a
    0 / 1 weight ``w``; then, for a row with at least a third of its regions scored, the neighbour
    sums ``acc`` (float64) and counts ``cnt`` as branch-free gathers; every region's score; then the
    update (a sparser row goes region by region, skipping the missing ones: :func:`_sparse_rows`).
    A missing neighbour adds +0.0 (which changes no sum that starts at +0.0): the same operations in
    the same order as the sparse rows and the kernels' batch (:func:`spatial_score8`), so the same
    bits (``tests/test_detect_spatial.py`` checks against the plain reference).
    ``zc``, ``w``: scratch of ``z``'s length and dtype; ``acc``, ``cnt``: float64 scratch of
    that length (each allocated when None).
    """
    n = z.shape[0]
    if zc is None:
        zc = np.empty_like(z)
    if w is None:
        w = np.empty_like(z)
    if acc is None:
        acc = np.empty(n, dtype=np.float64)
    if cnt is None:
        cnt = np.empty(n, dtype=np.float64)
    nv = 0.0
    for r in range(n):
        zr = z[r]
        ok = zr == zr
        c = Z_CLIP if zr > Z_CLIP else (-Z_CLIP if zr < -Z_CLIP else zr)
        zc[r] = c if ok else 0.0
        w[r] = 1.0 if ok else 0.0
        nv += 1.0 if ok else 0.0
    if nv == 0.0:                          # a row not scored this cycle (cold, unjudged, no data)
        return
    if 3.0 * nv < n:
        # a sparse row (a third of the demo's rows have < 1/3 of their regions scored): region
        # by region, skipping the missing ones, is cheaper than every region's vector pass
        _sparse_rows(zc, w, indptr, indices, direction, min_nb, score, det, code)
        return
    for r in range(n):
        a = 0.0
        mf = _F0
        for j in range(indptr[r], indptr[r + 1]):
            k = indices[j]
            a += np.float64(np.float32(zc[k]))
            mf += np.float32(w[k])
        acc[r] = a
        cnt[r] = mf
    for r in range(n):                     # the contrast's score (float32, vectorised)
        mf = np.float32(cnt[r])
        m = mf if mf >= _F1 else _F1
        acc[r] = _score32(np.float32(zc[r]), acc[r], m, direction)
    lo = np.float64(min_nb if min_nb > 1 else 1)
    for r in range(n):
        old = score[r]
        sc = acc[r]
        if w[r] > 0.0 and cnt[r] >= lo and (old != old or sc > old):
            score[r] = sc
            det[r] = code




@njit
def spatial_score8(zc8, dirv, indptr, indices, min_nb, out8):
    """The spatial scores of :data:`LANES` residual rows at once: ``zc8`` (float32, flat, ``LANES * n``,
    region-major: region ``r``'s lanes at ``LANES * r``; :func:`spatial_lanes_in`), clipped at
    :data:`Z_CLIP` (:func:`spatial_clip`), NaN where missing; ``dirv`` the lanes' directions
    (``LANES``, float or integer).

    Every row shares the adjacency, so one neighbour index serves eight lanes (one 32-byte load of
    float32) instead of one, and each region's eight scores are one vector computation
    (:func:`_score_lanes8`: the neighbour sums, the count, :func:`_score32`'s score): the same bits as
    :func:`spatial_pass` and :func:`spatial_sparse` give each row. ``out8`` (float32, ``LANES * n``)
    receives each region's scores (region-major, as the table), NaN where there is none (region
    missing, too few neighbours). Back into rows with :func:`spatial_lanes_out`, then
    :func:`spatial_raise` each.
    """
    n = indptr.shape[0] - 1
    lo = np.float32(min_nb if min_nb > 1 else 1)
    for r in range(n):
        _score_lanes8(zc8, indices, indptr[r], indptr[r + 1], dirv, lo, out8, LANES * r)


@intrinsic
def _score_all8(typingctx, t64, m32, indptr, indices, dirv, lo, out8, e8, mm8, lst):
    """:func:`spatial_score8w`'s loop over the regions, one vector of :data:`LANES` lanes a region: for each
    region ``r`` of the CSR adjacency (``indptr``, ``indices``), the float64 sums of its neighbours' lanes
    ``t64[k:k + LANES]`` (``k = LANES * indices[j]``, ``j`` in CSR order; NaN stored as +0.0) and their
    counts ``m32[k:k + LANES]`` (1.0 / 0.0: the lane has a residual), then :func:`_score32`'s operations in
    its order into ``out8[LANES * r:...]``, NaN where there is no score (``m32`` 0 for the region's own
    lane, or fewer than ``lo`` (float32, >= 1) neighbours with data). The lanes' direction masks
    (``dirv``, 1 / -1 / else two-sided, float or integer) and the constants are set once before the loop.
    The sign of ``e`` is taken from its float32 rounding: every residual is a float32, so ``m z`` and the
    sums (exact or rounded in float64) are multiples of 2^-149, a nonzero ``e64`` is at least 2^-149 in
    magnitude and rounds to a float32 of the same sign, never to zero (``|e64| <= 2 * 8 * 6``: no overflow).

    **Two passes.** A lane's tail (the square root, the division and the rest) matters only where the lane
    is valid and two-sided, or one-sided with ``e`` on its side; elsewhere the score is 0 (NaN where not
    valid). The first pass writes that (0 / NaN) for every region and keeps, branch-free, the regions with
    a lane needing the tail: their ``e`` and ``m`` (NaN where not valid) in slot ``ns`` of ``e8`` /
    ``mm8``, the region in ``lst[ns]``, ``ns`` raised by one where any lane needs it; the second pass
    computes the tail of those only (the one-sided rows of the demo: ~70 % of the regions have no lane on
    its side in the eight cycles of a flush). The same operations in the same order as
    :func:`_score_lanes8` on the float32 table: the same bits. No bounds check: ``t64``, ``m32``,
    ``out8``, ``e8``, ``mm8`` hold ``LANES * n`` elements, ``lst`` ``n`` (int32 or wider), the indices are
    valid."""
    def codegen(context, builder, signature, args):
        tt, mt, pt, it, dt, _, ot, et, mmt, lt_ = signature.args
        t_v, m_v, p_v, idx_v, dir_v, lo_v, out_v, e_v, mm_v, l_v = args
        e_a = context.make_array(et)(context, builder, e_v)
        mm_a = context.make_array(mmt)(context, builder, mm_v)
        l_a = context.make_array(lt_)(context, builder, l_v)
        lst_ty = context.get_value_type(lt_.dtype)
        t_a = context.make_array(tt)(context, builder, t_v)
        m_a = context.make_array(mt)(context, builder, m_v)
        p_a = context.make_array(pt)(context, builder, p_v)
        i_a = context.make_array(it)(context, builder, idx_v)
        d_a = context.make_array(dt)(context, builder, dir_v)
        o_a = context.make_array(ot)(context, builder, out_v)
        mod = builder.module
        intp = context.get_value_type(types.intp)
        vf = llvm_ir.VectorType(llvm_ir.FloatType(), LANES)
        vd64 = llvm_ir.VectorType(llvm_ir.DoubleType(), LANES)

        def splat(x):
            return llvm_ir.Constant(vf, [x] * LANES)
        zero, one, half, two, four, nan = splat(0.0), splat(1.0), splat(0.5), splat(2.0), splat(4.0), splat(float("nan"))
        zero64 = llvm_ir.Constant(vd64, [0.0] * LANES)
        is_up, is_dn = _direction_masks(context, builder, dt, d_a)
        vi = llvm_ir.VectorType(llvm_ir.IntType(32), LANES)
        x86 = "x86_64" in mod.triple

        def opaque(v):
            # an empty inline asm in a vector register: LLVM cannot see through it (below)
            return builder.asm(llvm_ir.FunctionType(v.type, [v.type]), "", "=x,0", [v], False) if x86 else v
        # the lanes' direction as bit masks (all ones / zero, int32 lanes), set once: opaque, so that the
        # loop selects with and / or instead of re-deriving the double compares a region (LLVM sinks them)
        m_up = opaque(builder.sext(is_up, vi))
        m_dn = opaque(builder.sext(is_dn, vi))
        m_bo = opaque(builder.sext(builder.not_(builder.or_(is_up, is_dn)), vi))
        lov = builder.insert_element(llvm_ir.Constant(vf, None), lo_v, llvm_ir.Constant(llvm_ir.IntType(32), 0))
        lov = builder.shuffle_vector(lov, lov, llvm_ir.Constant(llvm_ir.VectorType(llvm_ir.IntType(32), LANES), [0] * LANES))
        fnt = llvm_ir.FunctionType(vf, [vf])
        sqrt = cgutils.get_or_insert_function(mod, fnt, f"llvm.sqrt.v{LANES}f32")
        fabs = cgutils.get_or_insert_function(mod, fnt, f"llvm.fabs.v{LANES}f32")
        sa = cgutils.alloca_once_value(builder, zero64)
        sc = cgutils.alloca_once_value(builder, zero)
        nsp = cgutils.alloca_once_value(builder, llvm_ir.Constant(intp, 0))
        zeroi = llvm_ir.Constant(vi, [0] * LANES)
        i8 = llvm_ir.IntType(LANES)
        n = builder.sub(p_a.nitems, llvm_ir.Constant(intp, 1))
        eight = llvm_ir.Constant(intp, LANES)
        with cgutils.for_range(builder, n) as loop:
            r = loop.index
            j0 = builder.load(builder.gep(p_a.data, [r]))
            j1 = builder.load(builder.gep(p_a.data, [builder.add(r, llvm_ir.Constant(intp, 1))]))
            if j0.type.width < intp.width:
                j0, j1 = builder.sext(j0, intp), builder.sext(j1, intp)
            builder.store(zero64, sa)
            builder.store(zero, sc)
            with cgutils.for_range_slice(builder, j0, j1, llvm_ir.Constant(intp, 1)) as (j, _):
                ix = builder.load(builder.gep(i_a.data, [j]))
                if ix.type.width < intp.width:
                    ix = builder.sext(ix, intp)
                k = builder.mul(ix, eight)
                v = builder.load(builder.bitcast(builder.gep(t_a.data, [k]), vd64.as_pointer()), align=8)
                c = builder.load(builder.bitcast(builder.gep(m_a.data, [k]), vf.as_pointer()), align=4)
                builder.store(builder.fadd(builder.load(sa), v), sa)
                builder.store(builder.fadd(builder.load(sc), c), sc)
            acc = builder.load(sa)
            cnt = builder.load(sc)
            q = builder.mul(r, eight)
            zr64 = builder.load(builder.bitcast(builder.gep(t_a.data, [q]), vd64.as_pointer()), align=8)
            mr = builder.load(builder.bitcast(builder.gep(m_a.data, [q]), vf.as_pointer()), align=4)
            m = builder.select(builder.fcmp_ordered(">=", cnt, one), cnt, one)
            e64 = builder.fsub(builder.fmul(zr64, builder.fpext(m, vd64)), acc)
            e = builder.fptrunc(e64, vf)
            # the sign of e in float32 (made opaque: LLVM would fold the compare of a rounded double back
            # into two double compares and packs); a lane needs the tail where it is valid and either
            # two-sided or one-sided with e on its side (else its score is 0, or NaN where not valid)
            eo = opaque(e)
            gt = builder.sext(builder.fcmp_ordered(">", eo, zero), vi)
            lt = builder.sext(builder.fcmp_ordered("<", eo, zero), vi)
            pick = builder.or_(builder.and_(gt, m_up), builder.and_(lt, m_dn))
            valid = builder.and_(builder.fcmp_ordered("!=", mr, zero), builder.fcmp_ordered(">=", cnt, lov))
            need = builder.and_(builder.or_(pick, m_bo), builder.sext(valid, vi))
            anyneed = builder.icmp_unsigned("!=", builder.bitcast(builder.icmp_unsigned("!=", need, zeroi), i8),
                                            llvm_ir.Constant(i8, 0))
            builder.store(builder.select(valid, zero, nan), builder.bitcast(builder.gep(o_a.data, [q]), vf.as_pointer()),
                          align=4)
            # branch-free: e and m (NaN where not valid) go to slot ns, kept (ns + 1) where a lane needs the tail
            ns = builder.load(nsp)
            qs = builder.mul(ns, eight)
            builder.store(e, builder.bitcast(builder.gep(e_a.data, [qs]), vf.as_pointer()), align=4)
            builder.store(builder.select(valid, m, nan), builder.bitcast(builder.gep(mm_a.data, [qs]), vf.as_pointer()),
                          align=4)
            builder.store(builder.trunc(r, lst_ty) if lst_ty.width < intp.width else r, builder.gep(l_a.data, [ns]))
            builder.store(builder.add(ns, builder.zext(anyneed, intp)), nsp)
        # the tail of the regions that need it (:func:`_score32`'s operations in its order)
        with cgutils.for_range(builder, builder.load(nsp)) as loop2:
            s_ = loop2.index
            qs = builder.mul(s_, eight)
            e = builder.load(builder.bitcast(builder.gep(e_a.data, [qs]), vf.as_pointer()), align=4)
            mv = builder.load(builder.bitcast(builder.gep(mm_a.data, [qs]), vf.as_pointer()), align=4)
            r = builder.load(builder.gep(l_a.data, [s_]))
            if r.type.width < intp.width:
                r = builder.sext(r, intp)
            q = builder.mul(r, eight)
            valid = builder.fcmp_ordered("ord", mv, mv)
            den = builder.call(sqrt, [builder.fadd(builder.fmul(builder.fmul(four, mv), builder.fadd(mv, one)),
                                                   builder.fmul(e, e))])
            w = builder.fdiv(builder.call(fabs, [e]), den)
            omw = builder.fsub(one, w)
            tail = builder.fmul(builder.fmul(builder.fmul(half, omw), omw), builder.fadd(one, builder.fmul(half, w)))
            s1 = builder.fsub(one, tail)
            both = builder.fsub(one, builder.fmul(two, tail))
            eo = opaque(e)
            gt = builder.sext(builder.fcmp_ordered(">", eo, zero), vi)
            lt = builder.sext(builder.fcmp_ordered("<", eo, zero), vi)
            pick = builder.or_(builder.and_(gt, m_up), builder.and_(lt, m_dn))
            svi = builder.or_(builder.and_(builder.bitcast(s1, vi), pick), builder.and_(builder.bitcast(both, vi), m_bo))
            builder.store(builder.select(valid, builder.bitcast(svi, vf), nan),
                          builder.bitcast(builder.gep(o_a.data, [q]), vf.as_pointer()), align=4)
        return context.get_dummy_value()
    ok = (all(isinstance(x, types.Array) and x.ndim == 1 and x.layout == "C"
              for x in (t64, m32, indptr, indices, dirv, out8, e8, mm8, lst))
          and t64.dtype == types.float64 and all(x.dtype == types.float32 for x in (m32, out8, e8, mm8))
          and all(isinstance(x.dtype, types.Integer) and x.dtype.bitwidth <= 64 for x in (indptr, indices))
          and isinstance(lst.dtype, types.Integer) and lst.dtype.bitwidth >= 32
          and isinstance(dirv.dtype, (types.Float, types.Integer)) and lo == types.float32)
    if not ok:
        return None
    return types.void(t64, m32, indptr, indices, dirv, types.float32, out8, e8, mm8, lst), codegen


@njit
def spatial_score8w(t64, m32, dirv, indptr, indices, min_nb, out8, e8=None, mm8=None, lst=None):
    """:func:`spatial_score8` on the widened tables of :func:`spatial_lanes_in64`: ``t64`` (float64,
    ``LANES * n``, region-major) the clipped residuals widened once (+0.0 where missing) and ``m32``
    (float32) 1.0 where a lane has a residual, 0.0 where not. A neighbour is then two float64 vector
    adds and one float32 add (no compare, select or widening a neighbour: each region's lanes are read
    by ~5.6 neighbours), and the region loop is one intrinsic (:func:`_score_all8`) with the direction
    masks set once, the tail computed only for the regions with a lane that needs it (its second pass).
    The same sums in the same order as :func:`spatial_score8` (a missing lane adds +0.0 there too): the
    same bits. ``out8`` as :func:`spatial_score8`'s. ``e8``, ``mm8`` (float32, ``LANES * n``) and ``lst``
    (integer, ``n``): scratch, allocated when None."""
    lo = np.float32(min_nb if min_nb > 1 else 1)
    n = indptr.shape[0] - 1
    if e8 is None:
        e8 = np.empty(LANES * n, dtype=np.float32)
    if mm8 is None:
        mm8 = np.empty(LANES * n, dtype=np.float32)
    if lst is None:
        lst = np.empty(n, dtype=np.int64)
    if n > 0:
        _score_all8(t64, m32, indptr, indices, dirv, lo, out8, e8, mm8, lst)


def _transpose8x8(builder, rows):
    """The eight columns of the 8 x 8 block whose rows are the LLVM vectors ``rows`` (24 shuffles in
    three rounds -- pairs within 128-bit halves, pairs of pairs, halves -- which LLVM's x86 backend
    lowers to ``vunpcklps`` / ``vshufps`` / ``vperm2f128`` for float32; any element type)."""
    i32v = llvm_ir.VectorType(llvm_ir.IntType(32), 8)

    def mix(a, b, mask):
        return builder.shuffle_vector(a, b, llvm_ir.Constant(i32v, mask))
    lo, hi = [0, 8, 1, 9, 4, 12, 5, 13], [2, 10, 3, 11, 6, 14, 7, 15]
    t = []
    for p in range(4):
        t += [mix(rows[2 * p], rows[2 * p + 1], lo), mix(rows[2 * p], rows[2 * p + 1], hi)]
    m0, m1 = [0, 1, 8, 9, 4, 5, 12, 13], [2, 3, 10, 11, 6, 7, 14, 15]
    s = [mix(t[0], t[2], m0), mix(t[0], t[2], m1), mix(t[1], t[3], m0), mix(t[1], t[3], m1),
         mix(t[4], t[6], m0), mix(t[4], t[6], m1), mix(t[5], t[7], m0), mix(t[5], t[7], m1)]
    f0, f1 = [0, 1, 2, 3, 8, 9, 10, 11], [4, 5, 6, 7, 12, 13, 14, 15]
    return [mix(s[c % 4], s[c % 4 + 4], f0 if c < 4 else f1) for c in range(8)]


@intrinsic
def _transpose8(typingctx, src, s0, s_step, dst, d0, d_step):
    """An 8 x 8 block transposed: ``dst[d0 + c * d_step + u] = src[s0 + u * s_step + c]`` for ``u``,
    ``c`` in ``0..7`` (flat indices into C-contiguous arrays of one float type): eight vector loads,
    :func:`_transpose8x8`, eight vector stores. A copy: the same bits. No bounds check."""
    def codegen(context, builder, signature, args):
        st, _, _, dt, _, _ = signature.args
        src_v, a0, a_step, dst_v, b0, b_step = args
        s_a = context.make_array(st)(context, builder, src_v)
        d_a = context.make_array(dt)(context, builder, dst_v)
        vt = llvm_ir.VectorType(context.get_value_type(st.dtype), LANES)
        al = st.dtype.bitwidth // 8
        rows = []
        for u in range(LANES):
            k = builder.add(a0, builder.mul(a_step, llvm_ir.Constant(a0.type, u)))
            rows.append(builder.load(builder.bitcast(builder.gep(s_a.data, [k]), vt.as_pointer()), align=al))
        for c, col in enumerate(_transpose8x8(builder, rows)):
            k = builder.add(b0, builder.mul(b_step, llvm_ir.Constant(b0.type, c)))
            builder.store(col, builder.bitcast(builder.gep(d_a.data, [k]), vt.as_pointer()), align=al)
        return context.get_dummy_value()
    if not (isinstance(src, types.Array) and isinstance(dst, types.Array) and src.layout == "C"
            and dst.layout == "C" and isinstance(src.dtype, types.Float) and src.dtype == dst.dtype):
        return None
    return types.void(src, types.intp, types.intp, dst, types.intp, types.intp), codegen


@njit
def spatial_clip(z):
    """Residual row ``z`` clipped at :data:`Z_CLIP` in place, as :func:`spatial_pass` clips it (NaN
    stays NaN); returns the number of regions with a residual. Branch-free and vectorised: the count is
    an integer (a float count, as :func:`spatial_pass` keeps, is a serial chain of additions LLVM may not
    reorder: the loop stayed scalar, ~1 ms a demo cycle in :func:`engine.detect.kernels.run_kernel`)."""
    nv = 0
    for r in range(z.shape[0]):
        zr = z[r]
        ok = zr == zr
        z[r] = Z_CLIP if zr > Z_CLIP else (-Z_CLIP if zr < -Z_CLIP else zr)
        nv += 1 if ok else 0
    return nv


@njit
def spatial_lanes_in(zb, zc8):
    """:func:`spatial_score8`'s table ``zc8`` from :data:`LANES` clipped rows at once: ``zb``
    (``LANES`` x n, C order, row ``u`` lane ``u``; :func:`spatial_clip`) transposed in 8 x 8 blocks
    (:func:`_transpose8`: vector loads, shuffles and stores instead of a strided scalar store a value)."""
    n = zb.shape[1]
    nb = n // LANES
    for b in range(nb):
        _transpose8(zb, LANES * b, n, zc8, LANES * LANES * b, LANES)
    for r in range(LANES * nb, n):
        for u in range(LANES):
            zc8[LANES * r + u] = zb[u, r]


@intrinsic
def _transpose8w(typingctx, src, s0, s_step, t64, m32, d0):
    """:func:`_transpose8` of an 8 x 8 float32 block into :func:`spatial_score8w`'s tables: column ``c``
    (region ``c`` of the block: ``src[s0 + u * s_step + c]``, ``u`` = the lane) goes to ``t64[d0 + LANES c
    + u]`` widened (+0.0 where NaN: exact) and ``m32[d0 + LANES c + u]`` = 1.0 where it is not NaN, else
    0.0. No bounds check."""
    def codegen(context, builder, signature, args):
        st, _, _, tt, mt, _ = signature.args
        src_v, a0, a_step, t_v, m_v, b0 = args
        s_a = context.make_array(st)(context, builder, src_v)
        t_a = context.make_array(tt)(context, builder, t_v)
        m_a = context.make_array(mt)(context, builder, m_v)
        vf = llvm_ir.VectorType(llvm_ir.FloatType(), LANES)
        vd64 = llvm_ir.VectorType(llvm_ir.DoubleType(), LANES)
        zero = llvm_ir.Constant(vf, [0.0] * LANES)
        one = llvm_ir.Constant(vf, [1.0] * LANES)
        rows = []
        for u in range(LANES):
            k = builder.add(a0, builder.mul(a_step, llvm_ir.Constant(a0.type, u)))
            rows.append(builder.load(builder.bitcast(builder.gep(s_a.data, [k]), vf.as_pointer()), align=4))
        for c, col in enumerate(_transpose8x8(builder, rows)):
            k = builder.add(b0, llvm_ir.Constant(b0.type, LANES * c))
            ok = builder.fcmp_ordered("ord", col, col)
            builder.store(builder.fpext(builder.select(ok, col, zero), vd64),
                          builder.bitcast(builder.gep(t_a.data, [k]), vd64.as_pointer()), align=8)
            builder.store(builder.select(ok, one, zero), builder.bitcast(builder.gep(m_a.data, [k]), vf.as_pointer()),
                          align=4)
        return context.get_dummy_value()
    if not (isinstance(src, types.Array) and src.layout == "C" and src.dtype == types.float32
            and isinstance(t64, types.Array) and t64.layout == "C" and t64.dtype == types.float64
            and isinstance(m32, types.Array) and m32.layout == "C" and m32.dtype == types.float32):
        return None
    return types.void(src, types.intp, types.intp, t64, m32, types.intp), codegen


@njit
def spatial_lanes_in64(zb, t64, m32):
    """:func:`spatial_score8w`'s tables from :data:`LANES` clipped rows ``zb`` (``LANES`` x n, C order,
    row ``u`` = lane ``u``): ``t64`` (float64, ``LANES * n``, region-major) the residuals widened, +0.0
    where NaN, and ``m32`` (float32) 1.0 where not NaN, 0.0 where NaN; 8 x 8 blocks transposed
    (:func:`_transpose8w`), then the last ``n % LANES`` regions one by one."""
    n = zb.shape[1]
    nb = n // LANES
    for b in range(nb):
        _transpose8w(zb, LANES * b, n, t64, m32, LANES * LANES * b)
    for r in range(LANES * nb, n):
        for u in range(LANES):
            z = zb[u, r]
            ok = z == z
            t64[LANES * r + u] = np.float64(z) if ok else 0.0
            m32[LANES * r + u] = _F1 if ok else _F0


@njit
def spatial_lanes_out(acc8, sb):
    """:func:`spatial_score8`'s scores ``acc8`` (region-major) back into rows: ``sb`` (``LANES`` x n,
    C order) row ``u`` = lane ``u``, transposed in 8 x 8 blocks (:func:`_transpose8`)."""
    n = sb.shape[1]
    nb = n // LANES
    for b in range(nb):
        _transpose8(acc8, LANES * LANES * b, LANES, sb, LANES * b, n)
    for r in range(LANES * nb, n):
        for u in range(LANES):
            sb[u, r] = acc8[LANES * r + u]


@intrinsic
def _raise8(typingctx, sc, score, det, code, k):
    """:func:`spatial_raise` on the :data:`LANES` entries ``[k, k + LANES)``: one vector load, compare,
    select and store each of ``sc``, ``score`` (float32) and ``det`` (int8). No bounds check."""
    def codegen(context, builder, signature, args):
        st, ot, dt, _, _ = signature.args
        s_v, o_v, d_v, c_v, kk = args
        s_a, o_a, d_a = (context.make_array(t)(context, builder, v) for t, v in ((st, s_v), (ot, o_v), (dt, d_v)))
        vf = llvm_ir.VectorType(llvm_ir.FloatType(), LANES)
        vb = llvm_ir.VectorType(llvm_ir.IntType(8), LANES)
        ps = builder.bitcast(builder.gep(s_a.data, [kk]), vf.as_pointer())
        po = builder.bitcast(builder.gep(o_a.data, [kk]), vf.as_pointer())
        pd = builder.bitcast(builder.gep(d_a.data, [kk]), vb.as_pointer())
        s = builder.load(ps, align=4)
        old = builder.load(po, align=4)
        d0 = builder.load(pd, align=1)
        up = builder.and_(builder.fcmp_ordered("ord", s, s), builder.fcmp_unordered(">", s, old))
        c8 = builder.trunc(c_v, llvm_ir.IntType(8))
        cv = builder.insert_element(llvm_ir.Constant(vb, None), c8, llvm_ir.Constant(llvm_ir.IntType(32), 0))
        cv = builder.shuffle_vector(cv, cv, llvm_ir.Constant(llvm_ir.VectorType(llvm_ir.IntType(32), LANES), [0] * LANES))
        new = builder.select(up, s, old)
        if "x86_64" in builder.module.triple:
            # the blend made opaque (an empty inline asm in a vector register): LLVM's x86 backend
            # otherwise turns ``store(select(up, s, load p), p)`` into a masked store (``vmaskmovps``,
            # microcoded on AMD: the raise stayed at ~1 ns an entry with it)
            new = builder.asm(llvm_ir.FunctionType(vf, [vf]), "", "=x,0", [new], False)
        builder.store(new, po, align=4)
        builder.store(builder.select(up, cv, d0), pd, align=1)
        return context.get_dummy_value()
    arrs = (sc, score)
    if not (all(isinstance(x, types.Array) and x.ndim == 1 and x.layout == "C" and x.dtype == types.float32 for x in arrs)
            and isinstance(det, types.Array) and det.ndim == 1 and det.layout == "C" and det.dtype == types.int8
            and isinstance(code, types.Integer)):
        return None
    return types.void(sc, score, det, code, types.intp), codegen


@njit(inline="always")
def _raise1(s, score, det, k, code):
    """One entry of the raise (:func:`spatial_raise`'s scalar rest, :func:`_raise8`'s comparisons): ``score[k]``
    raised to ``s`` where ``s`` is a score and ``score[k]`` is NaN or lower (``det[k] = code`` there)."""
    old = score[k]
    if (s == s) and ((old != old) or (s > old)):
        score[k] = s
        det[k] = code


@njit
def spatial_raise(sc, score, det, code):
    """A lane's scores held as a row (:func:`spatial_lanes_out`) raised into it as :func:`spatial_pass`
    does: ``score`` raised to ``sc`` where higher or NaN (``det = code`` there), NaN in ``sc`` = no score.
    ``sc``, ``score`` float32 and ``det`` int8 (the kernels' rows, C-contiguous): :data:`LANES` entries a
    vector (:func:`_raise8`; a plain loop stayed mostly scalar, ~1 ns an entry), then the rest one by one."""
    n = score.shape[0]
    nb = n - n % LANES
    for k in range(0, nb, LANES):
        _raise8(sc, score, det, code, k)
    for r in range(nb, n):
        _raise1(sc[r], score, det, r, code)


@intrinsic
def _out_raise8(typingctx, acc8, b8, score, det, rows, stride, base, code):
    """:func:`spatial_lanes_out` and :func:`spatial_raise` of an 8 x 8 block in one: the scores of regions
    ``[b8, b8 + LANES)`` in ``acc8`` (region-major, ``acc8[LANES r + u]``) transposed (:func:`_transpose8x8`),
    lane ``u``'s eight raised (as :func:`_raise8`) into the flat entries ``[k, k + LANES)``, ``k = rows[u]
    stride + base + b8``, of ``score`` (float32) and ``det`` (int8), C-contiguous of any shape. No scratch
    row between the two; no bounds check."""
    def codegen(context, builder, signature, args):
        at, _, st, dt, rt, _, _, _ = signature.args
        a_v, bb, s_v, d_v, r_v, step, b0, c_v = args
        a_a = context.make_array(at)(context, builder, a_v)
        s_a = context.make_array(st)(context, builder, s_v)
        d_a = context.make_array(dt)(context, builder, d_v)
        r_a = context.make_array(rt)(context, builder, r_v)
        vf = llvm_ir.VectorType(llvm_ir.FloatType(), LANES)
        vb = llvm_ir.VectorType(llvm_ir.IntType(8), LANES)
        intp = bb.type
        blk = []
        for c in range(LANES):
            k = builder.mul(builder.add(bb, llvm_ir.Constant(intp, c)), llvm_ir.Constant(intp, LANES))
            blk.append(builder.load(builder.bitcast(builder.gep(a_a.data, [k]), vf.as_pointer()), align=4))
        c8 = builder.trunc(c_v, llvm_ir.IntType(8))
        cv = builder.insert_element(llvm_ir.Constant(vb, None), c8, llvm_ir.Constant(llvm_ir.IntType(32), 0))
        cv = builder.shuffle_vector(cv, cv, llvm_ir.Constant(llvm_ir.VectorType(llvm_ir.IntType(32), LANES), [0] * LANES))
        x86 = "x86_64" in builder.module.triple
        b1 = builder.add(b0, bb)
        for u, s in enumerate(_transpose8x8(builder, blk)):
            ru = builder.load(builder.gep(r_a.data, [llvm_ir.Constant(intp, u)]))
            if ru.type.width < intp.width:
                ru = builder.sext(ru, intp)
            kk = builder.add(builder.mul(ru, step), b1)
            po = builder.bitcast(builder.gep(s_a.data, [kk]), vf.as_pointer())
            pd = builder.bitcast(builder.gep(d_a.data, [kk]), vb.as_pointer())
            old = builder.load(po, align=4)
            d0 = builder.load(pd, align=1)
            up = builder.and_(builder.fcmp_ordered("ord", s, s), builder.fcmp_unordered(">", s, old))
            new = builder.select(up, s, old)
            if x86:     # the blend kept a blend (:func:`_raise8`: else a microcoded masked store)
                new = builder.asm(llvm_ir.FunctionType(vf, [vf]), "", "=x,0", [new], False)
            builder.store(new, po, align=4)
            builder.store(builder.select(up, cv, d0), pd, align=1)
        return context.get_dummy_value()
    if not (isinstance(acc8, types.Array) and acc8.layout == "C" and acc8.dtype == types.float32
            and isinstance(score, types.Array) and score.layout == "C" and score.dtype == types.float32
            and isinstance(det, types.Array) and det.layout == "C" and det.dtype == types.int8
            and isinstance(rows, types.Array) and rows.layout == "C" and isinstance(rows.dtype, types.Integer)
            and rows.dtype.bitwidth <= 64 and isinstance(code, types.Integer)):
        return None
    return types.void(acc8, types.intp, score, det, rows, types.intp, types.intp, code), codegen


@njit
def spatial_lanes_raise(acc8, n, score, det, rows, stride, base, nl, code):
    """:func:`spatial_lanes_out` then :func:`spatial_raise` of each lane, in one pass: lane ``u < nl``'s
    scores (``acc8[LANES r + u]``, ``n`` regions) raised into the flat entries ``rows[u] stride + base + r``
    of ``score`` / ``det`` (C-contiguous, flat: :func:`engine.detect.kernels.run_kernel`'s cycle rows of
    one indicator, ``rows`` the cycles). A flush of :data:`LANES` lanes goes in 8 x 8 blocks
    (:func:`_out_raise8`: the scores transposed in registers and raised, no scratch row), the last ``n %
    LANES`` regions and a flush of fewer lanes entry by entry. The same comparisons as
    :func:`spatial_raise` on the same values: the same bits (each lane's entries are its own)."""
    nb = n // LANES if nl == LANES else 0
    for b in range(nb):
        _out_raise8(acc8, LANES * b, score, det, rows, stride, base, code)
    for u in range(nl):
        o = rows[u] * stride + base
        for r in range(LANES * nb, n):
            _raise1(acc8[LANES * r + u], score, det, o + r, code)


@njit(error_model="numpy")
def spatial_sparse(zc, indptr, indices, direction, min_nb, score, det, code):
    """:func:`spatial_pass` of a sparse row ``zc`` already clipped (:func:`spatial_clip`; NaN where
    missing): region by region, as :func:`spatial_pass` does a sparse row."""
    _sparse_rows(zc, None, indptr, indices, direction, min_nb, score, det, code)
