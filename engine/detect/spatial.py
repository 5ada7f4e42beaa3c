"""Detector 5: spatial outlier -- a neighbourhood's residual against its neighbours'.

At one cycle, with ``z`` the standardised residuals of one indicator in every region
(clipped at :data:`Z_CLIP`), the contrast of region ``r`` with its ``m`` neighbours that
have data is ``d = (z_r - mean(z_nb)) / sqrt(1 + 1/m)`` (unit variance when residuals are
independent), scored with the same t(4) tail as the seasonal detector. A shock common to
the whole area (rain, a holiday) raises every ``z`` and leaves ``d`` small; a region that
departs from its neighbours stands out. Needs ``spatial_min_neighbours`` neighbours.

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
from engine.detect.special import t4_sf

__all__ = ["LANES", "Z_CLIP", "spatial_clip", "spatial_contrast", "spatial_lanes_in", "spatial_lanes_out",
           "spatial_pass", "spatial_raise", "spatial_score8", "spatial_sparse"]

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


@intrinsic
def _sum_lanes(typingctx, zc8, indices, j0, j1, acc8, cnt8, q):
    """``acc8[q:q + LANES]`` = the sums over ``j`` in ``[j0, j1)`` of the lanes ``zc8[k:k + LANES]``
    (``k = LANES * indices[j]``) with a missing (NaN) lane adding +0.0, each from +0.0, in that order;
    ``cnt8[q:q + LANES]`` the counts of the lanes not missing. The running sums are LLVM vectors
    (``zc8``'s lanes widened to ``acc8``'s float type first: exact), so each lane adds the same terms
    in the same order as :func:`spatial_pass`'s scalar loop ``a = 0.0; a += zc[k]`` (IEEE additions
    lane by lane: the same bits), kept in registers across the neighbours. LLVM does not pack those
    scalar adds itself: numba's per-index address arithmetic (a wrap-around test per index) hides
    that the lanes are consecutive. No bounds check: the callers index whole lane groups of arrays of
    ``LANES * n`` elements with valid CSR indices."""
    def codegen(context, builder, signature, args):
        zt, it, _, _, at, ct, _ = signature.args
        zc_v, idx_v, lo, hi, acc_v, cnt_v, qq = args
        z_a = context.make_array(zt)(context, builder, zc_v)
        i_a = context.make_array(it)(context, builder, idx_v)
        a_a = context.make_array(at)(context, builder, acc_v)
        c_a = context.make_array(ct)(context, builder, cnt_v)
        va_t = llvm_ir.VectorType(context.get_value_type(at.dtype), LANES)
        vz_t = llvm_ir.VectorType(context.get_value_type(zt.dtype), LANES)
        vc_t = llvm_ir.VectorType(context.get_value_type(ct.dtype), LANES)
        al_a, al_z, al_c = (x.dtype.bitwidth // 8 for x in (at, zt, ct))
        zero_z = llvm_ir.Constant(vz_t, None)
        zero_c = llvm_ir.Constant(vc_t, None)
        one_c = llvm_ir.Constant(vc_t, [1.0] * LANES)
        sa = cgutils.alloca_once_value(builder, llvm_ir.Constant(va_t, None))   # +0.0 in every lane
        sc = cgutils.alloca_once_value(builder, zero_c)
        with cgutils.for_range_slice(builder, lo, hi, llvm_ir.Constant(lo.type, 1)) as (j, _):
            ix = builder.load(builder.gep(i_a.data, [j]))
            if ix.type.width < lo.type.width:
                ix = builder.sext(ix, lo.type)
            k = builder.mul(ix, llvm_ir.Constant(lo.type, LANES))
            vz = builder.load(builder.bitcast(builder.gep(z_a.data, [k]), vz_t.as_pointer()), align=al_z)
            ok = builder.fcmp_ordered("ord", vz, vz)
            vz = builder.select(ok, vz, zero_z)
            if zt.dtype != at.dtype:
                vz = builder.fpext(vz, va_t)
            builder.store(builder.fadd(builder.load(sa), vz), sa)
            builder.store(builder.fadd(builder.load(sc), builder.select(ok, one_c, zero_c)), sc)
        builder.store(builder.load(sa), builder.bitcast(builder.gep(a_a.data, [qq]), va_t.as_pointer()), align=al_a)
        builder.store(builder.load(sc), builder.bitcast(builder.gep(c_a.data, [qq]), vc_t.as_pointer()), align=al_c)
        return context.get_dummy_value()
    arrs = (zc8, acc8, cnt8)
    if not (all(isinstance(x, types.Array) and x.ndim == 1 and x.layout == "C" and isinstance(x.dtype, types.Float)
                for x in arrs) and isinstance(indices, types.Array) and indices.ndim == 1 and indices.layout == "C"
            and isinstance(indices.dtype, types.Integer) and indices.dtype.bitwidth <= 64
            and zc8.dtype.bitwidth <= acc8.dtype.bitwidth):
        return None
    return types.void(zc8, indices, types.intp, types.intp, acc8, cnt8, types.intp), codegen


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
                a += zc[k]
                m += 1
        if m < min_nb or m == 0:
            continue
        d = (np.float64(zc[r]) - a / m) / math.sqrt(1.0 + 1.0 / m)
        old = score[r]
        if direction == 1:
            sc = 1.0 - t4_sf(d) if d > 0.0 else 0.0
        elif direction == -1:
            sc = 1.0 - t4_sf(-d) if d < 0.0 else 0.0
        else:
            sc = 1.0 - 2.0 * t4_sf(abs(d))
        if old != old or sc > old:
            score[r] = sc
            det[r] = code


@njit(error_model="numpy")
def spatial_pass(z, indptr, indices, direction, min_nb, score, det, code, zc=None, w=None, acc=None, cnt=None):
    """Raise ``score[r]`` to the spatial score where it is higher (``det[r] = code`` there).

    The arithmetic of :func:`spatial_contrast` and :func:`engine.detect.seasonal.t_score`
    (the closed-form t(4) tail of :func:`engine.detect.special.t4_sf`), in four loops over the
    regions: the residuals clipped once into ``zc`` (0 where missing) beside a 0 / 1 weight
    ``w``; then, for a row with at least a third of its regions scored, the neighbour sums
    ``acc`` and counts ``cnt`` as branch-free gathers; every region's
    contrast score (``error_model="numpy"`` and no stores but one: the loop vectorises, 4
    float64 lanes of square roots and divisions; no division here can be by zero); then the
    update (a sparser row goes region by region, skipping the missing ones). One region at a
    time with a NaN test per neighbour and a scalar tail cost ~1.6x as much on a full row (docs/detect.md, "Detector speed in a run, 2026-11-29 (third session)"). The same
    operations in the same order, so the same scores bit for bit: a missing neighbour adds
    +0.0 (which changes no sum that starts at +0.0), and the tail of each direction is the one
    of ``|d|`` (``tests/test_detect_spatial.py`` checks against the plain reference).
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
        mf = 0.0
        for j in range(indptr[r], indptr[r + 1]):
            k = indices[j]
            a += zc[k]
            mf += w[k]
        acc[r] = a
        cnt[r] = mf
    for r in range(n):                     # the contrast's score, vectorised (float64, 4 lanes)
        mf = cnt[r]
        m = mf if mf >= 1.0 else 1.0
        d = (np.float64(zc[r]) - acc[r] / m) / math.sqrt(1.0 + 1.0 / m)
        # t4_sf(|d|), as :func:`engine.detect.special.t4_sf` computes it for t >= 0
        a = abs(d)
        q = math.sqrt(4.0 + a * a)
        omw = 4.0 / (q * (q + a))
        tail = 0.5 * omw * omw * (1.0 + 0.5 * a / q)
        if direction == 1:
            sc = 1.0 - tail if d > 0.0 else 0.0
        elif direction == -1:
            sc = 1.0 - tail if d < 0.0 else 0.0
        else:
            sc = 1.0 - 2.0 * tail
        acc[r] = sc
    lo = np.float64(min_nb if min_nb > 1 else 1)
    for r in range(n):
        old = score[r]
        sc = acc[r]
        if w[r] > 0.0 and cnt[r] >= lo and (old != old or sc > old):
            score[r] = sc
            det[r] = code




@njit(error_model="numpy")
def spatial_score8(zc8, dirv, indptr, indices, min_nb, acc8, cnt8, dirf):
    """The spatial scores of :data:`LANES` residual rows at once: ``zc8`` (flat, ``LANES * n``,
    region-major: region ``r``'s lanes at ``LANES * r``; :func:`spatial_lanes_in`), clipped at
    :data:`Z_CLIP` (:func:`spatial_clip`), NaN where missing.

    Every row shares the adjacency, so one neighbour index serves eight lanes (one 32-byte load of
    float32, :func:`_sum_lanes`) instead of one. Each lane adds the same float64 terms in the same
    CSR order as :func:`spatial_pass`'s dense path (a missing neighbour adds +0.0); its score is the
    tail of ``|d|`` in direction ``dirv[lane]`` (float), the same function in float64 written with one
    division and one square root instead of five and two (docs/detect.md, "Detectors stage ...
    (eleventh session)"): with ``e = m z - sum`` (one rounding: ``m z`` is exact, and so is the float64
    sum of a few float32 terms of like magnitude), ``d = e / sqrt(m (m + 1))`` and the t(4) tail's
    ``w = |d| / sqrt(4 + d^2) = |e| / sqrt(4 m (m + 1) + e^2)``, ``tail = (1 - w)^2 (1 + w / 2) / 2``.
    ``1 - w`` cancels at most ~6 bits (the clip bounds ``|e| <= 2 Z_CLIP m``, so ``w <= 0.9864``):
    the score differs from :func:`spatial_pass`'s by ~1e-15, far below the float32 score it is
    stored as (the scores are probabilities compared with the WARN / CRITICAL levels); the sign of
    ``d`` is taken from ``e`` (one rounding) where ``z - sum / m`` takes two. ``tests/test_detect_spatial.py``
    compares both and the plain reference. ``acc8`` (float64) receives each region's score per lane
    (region-major as the table), NaN where there is none (region missing, too few neighbours);
    ``cnt8`` float32 scratch of that length, ``dirf`` float64 scratch of that length (each lane's
    direction beside it: read with the lane's index, the score loop vectorises; a read of
    ``dirv[q % LANES]`` per element kept it scalar, 3.5x the time). Back into rows with
    :func:`spatial_lanes_out`, then :func:`spatial_raise` each.
    """
    n = indptr.shape[0] - 1
    for r in range(n):
        q = LANES * r
        _sum_lanes(zc8, indices, indptr[r], indptr[r + 1], acc8, cnt8, q)
        for u in range(LANES):
            dirf[q + u] = dirv[u]
    lo = np.float64(min_nb if min_nb > 1 else 1)
    for q in range(LANES * n):             # the contrast's score (float64, vectorised; one division, one root)
        mf = np.float64(cnt8[q])
        m = mf if mf >= 1.0 else 1.0
        zq = np.float64(zc8[q])
        e = zq * m - acc8[q]               # m * (z - mean): d = e / sqrt(m (m + 1))
        w = abs(e) / math.sqrt(4.0 * m * (m + 1.0) + e * e)    # |d| / sqrt(4 + d^2)
        omw = 1.0 - w                      # >= 0.0136: |z|, |mean| <= Z_CLIP
        tail = 0.5 * omw * omw * (1.0 + 0.5 * w)
        dr = dirf[q]
        up = 1.0 - tail if e > 0.0 else 0.0
        dn = 1.0 - tail if e < 0.0 else 0.0
        sc = up if dr == 1.0 else (dn if dr == -1.0 else 1.0 - 2.0 * tail)
        acc8[q] = sc if ((zq == zq) & (mf >= lo)) else math.nan



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


@njit
def spatial_raise(sc, score, det, code):
    """A lane's scores held as a row (:func:`spatial_lanes_out`) raised into it as :func:`spatial_pass`
    does: ``score`` raised to ``sc`` where higher or NaN (``det = code`` there), NaN in ``sc`` = no score. Branch-free
    (vectorises; the raise's outcome is data-dependent: a branch a region mispredicts)."""
    for r in range(score.shape[0]):
        s = sc[r]
        old = score[r]
        up = (s == s) & ((old != old) | (s > old))
        d0 = det[r]
        score[r] = np.float32(s) if up else old
        det[r] = code if up else d0


@njit(error_model="numpy")
def spatial_sparse(zc, indptr, indices, direction, min_nb, score, det, code):
    """:func:`spatial_pass` of a sparse row ``zc`` already clipped (:func:`spatial_clip`; NaN where
    missing): region by region, as :func:`spatial_pass` does a sparse row."""
    _sparse_rows(zc, None, indptr, indices, direction, min_nb, score, det, code)
