"""engine.llvm_attrs: LLVM function attributes set from inside a numba kernel (``_wide``: 512-bit vectors)."""

import numpy as np

from engine.llvm_attrs import host_has_avx512


def test_wide_compiles_the_caller_for_512_bit_vectors():
    # _wide: the calling function carries LLVM's "prefer-vector-width"="512" (and on an AVX-512 host its
    # loop is vectorised in zmm registers), the arithmetic unchanged
    import numba

    from engine.llvm_attrs import WIDE_ATTR, _wide

    def body(x, y):
        for i in range(x.shape[0]):
            y[i] = x[i] * np.float32(3.0) + np.float32(1.0)

    def wide(x, y):
        _wide()
        body_w(x, y)

    body_w = numba.njit(body, cache=False, inline="always")
    plain = numba.njit(body, cache=False)
    f = numba.njit(wide, cache=False)
    x = np.linspace(-5, 5, 301).astype(np.float32)
    y, y0 = np.empty_like(x), np.empty_like(x)
    f(x, y)
    plain(x, y0)
    np.testing.assert_array_equal(y, y0)
    sig = f.signatures[0]
    assert WIDE_ATTR == '"prefer-vector-width"="512"'
    assert WIDE_ATTR in f.inspect_llvm(sig)
    assert '"prefer-vector-width"' not in plain.inspect_llvm(plain.signatures[0])
    if host_has_avx512():
        assert "zmm" in f.inspect_asm(sig)
        import llvmlite.binding as llvm

        if not llvm.get_host_cpu_name().startswith("znver"):
            # Intel's AVX-512 tuning (prefer-256-bit) holds the plain loop to ymm; AMD's Zen 4 and later
            # tune for 512 bits already, where the attribute changes nothing
            assert "zmm" not in plain.inspect_asm(plain.signatures[0])


def test_detectors_reexport_the_same_intrinsic():
    from engine.detect import kernels
    from engine.llvm_attrs import _wide

    assert kernels._wide is _wide
