"""LLVM function attributes for numba kernels, set from inside the kernel (shared by the core and the
detectors; no import of either).

:func:`_wide`: the function that calls it is vectorised for 512-bit registers. LLVM attributes are per
LLVM function: a kernel numba inlines (``inline="always"``) puts it on its caller; a callee LLVM inlines
into a caller takes the caller's attributes. (The core's stage kernels stay separate LLVM functions
inside :func:`engine.core.kernels.run_cycles`' module, each with its own attributes: checked in the
assembly, docs/core.md, twentieth session.)
"""

from __future__ import annotations

from numba import types
from numba.extending import intrinsic

#: the attribute's text (llvmlite knows no key-value attribute: it goes into the set as its text)
WIDE_ATTR = '"prefer-vector-width"="512"'


@intrinsic
def _wide(typingctx):
    """Nothing, but the function that calls it is vectorised for 512-bit registers: LLVM's function
    attribute ``"prefer-vector-width"="512"`` (llvmlite knows no key-value attribute: added to the set
    as its text). The X86 tuning of AVX-512 hosts (``prefer-256-bit``) otherwise caps the vectoriser
    at 256 bits; the attribute overrides it for this function only. On a host without AVX-512 it
    changes nothing (the widest vector is what the CPU has). For the detectors' row pass and count pass, bound by
    its instruction count (docs/detect.md, "Row pass at 512 bits ... (twentieth session)"). The core's
    kernels do not call it: no gain measured (docs/core.md, "The core's kernels at 512 bits (issue 3)
    ... (twentieth session)")."""
    def codegen(context, builder, signature, args):
        set.add(builder.function.attributes, WIDE_ATTR)
        return context.get_dummy_value()
    return types.void(), codegen


def host_has_avx512() -> bool:
    """Whether numba compiles for a CPU with AVX-512F (``NUMBA_CPU_FEATURES`` when set, else the host's):
    where :func:`_wide`'s 512-bit loops exist at all.

    Examples
    --------
    >>> isinstance(host_has_avx512(), bool)
    True
    """
    import llvmlite.binding as llvm
    from numba.core import config

    feats = config.CPU_FEATURES if config.CPU_FEATURES is not None else llvm.get_host_cpu_features().flatten()
    return "+avx512f" in feats.split(",")
