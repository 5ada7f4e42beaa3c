"""One place for numba options, so every kernel compiles the same way.

``fastmath`` stays off: the kernels rely on NaN semantics (missing data) that fastmath
may break. ``cache`` keeps start-up short for the CLI and the tests.
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
