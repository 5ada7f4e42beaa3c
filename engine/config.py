"""One place for numba options, so every kernel compiles the same way.

``fastmath`` stays off: the kernels rely on NaN semantics (missing data) that fastmath
may break. ``cache`` keeps start-up short for the CLI and the tests.

**Fresh compile vs cached load.** numba links a copy of every non-inlined callee into each caller's
module and optimises it again there. A process that compiles a caller has compiled its callees
first, and the JIT binds the caller's calls to the callees' own code; a process that loads the
caller from the cache runs the caller's copies. Without fast-math flags the two are the same
arithmetic; with ``contract`` (the detectors' ``_FAST``) a sum of two products may be fused into an
FMA on a different product in each (docs/testing.md, "Fresh compile vs cached load ... (thirteenth
session)"): a fast-math function must leave LLVM one product to fuse per sum. Check:
``CITYVITALS_FRESH_CHECK=1 python3 -m pytest tests/test_fresh_vs_cached.py``.
"""

from __future__ import annotations

import os

# numba's OpenMP workers otherwise spin-wait between parallel regions; on 2 shared cores that
# spinning fights the other thread (measured: a 0.4 ms roll-up took 190 ms wall). Set before the
# first parallel kernel loads the OpenMP runtime; an explicit setting by the user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

NUMBA_OPTS = dict(cache=True, nogil=True, fastmath=False)
NUMBA_PARALLEL_OPTS = dict(NUMBA_OPTS, parallel=True)


def njit(*args, parallel: bool = False, **kwargs):
    """``numba.njit`` with the project's options (``parallel=True`` for prange kernels)."""
    import numba

    opts = dict(NUMBA_PARALLEL_OPTS if parallel else NUMBA_OPTS)
    opts.update(kwargs)
    if args and callable(args[0]):
        return numba.njit(**opts)(args[0])
    return numba.njit(*args, **opts)


def n_threads() -> int:
    """Threads numba uses (``NUMBA_NUM_THREADS`` or all cores)."""
    return int(os.environ.get("NUMBA_NUM_THREADS", os.cpu_count() or 1))
