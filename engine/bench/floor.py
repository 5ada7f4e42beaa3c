"""The memory-bandwidth floor: the fastest this machine can move bytes through memory.

A benchmark that must read and write ``B`` bytes cannot finish faster than
``B / bandwidth``; that time is its *floor*, and ``median / floor`` (the *floor ratio*)
says how far the engine is from the machine's limit. The bandwidth is measured as a
parallel copy of a large ``float64`` array with every core numba may use, counting the
bytes read plus the bytes written (write-allocate traffic is not counted), best of
several repetitions. A one-thread ``numpy.copyto`` is measured beside it. The floor is
the faster of the two: on a quiet multi-core machine that is the parallel copy, but on a
loaded one a straggling thread can make it lose to one thread, and a floor that a plain
copy beats would not be a floor.

>>> from engine.bench.floor import measure_floor
>>> floor = measure_floor(nbytes=4 * 2**20, repeats=2)
>>> floor.bandwidth_Bps == max(floor.parallel_Bps, floor.numpy_Bps) > 0
True
>>> round(floor.seconds(floor.bandwidth_Bps), 6)
1.0
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass

import numpy as np
from numba import prange

from engine.config import n_threads, njit

#: Size of each of the two arrays (source and destination) used for the floor.
DEFAULT_FLOOR_MIB = 256
#: Environment variable overriding :data:`DEFAULT_FLOOR_MIB` (e.g. for quick tests).
ENV_FLOOR_MIB = "CITYVITALS_FLOOR_MIB"
#: Smallest array the floor may be measured on: below it caches, not memory, are timed.
MIN_FLOOR_BYTES = 2**20


@njit(parallel=True)
def parallel_copy(src, dst):  # pragma: no cover - compiled by numba
    """Copy ``src`` into ``dst`` (1-D, same length) with ``prange`` over all threads.

    >>> import numpy as np
    >>> a = np.arange(5.0); b = np.zeros(5)
    >>> parallel_copy(a, b); b.tolist()
    [0.0, 1.0, 2.0, 3.0, 4.0]
    """
    for i in prange(src.shape[0]):
        dst[i] = src[i]


@dataclass(frozen=True)
class Floor:
    """The measured memory-bandwidth floor of one session.

    Attributes
    ----------
    bandwidth_Bps : float
        The floor: bytes read + written per second, the faster of the two copies.
    numpy_Bps : float
        The same for a one-thread ``numpy.copyto`` (best repetition).
    nbytes : int
        Size of the copied array in bytes (the copy touches ``2 * nbytes``).
    repeats : int
        Repetitions; the best one counts.
    threads : int
        Threads the parallel copy used.
    parallel_Bps : float
        The same for the parallel copy (best repetition); defaults to ``bandwidth_Bps``.

    Examples
    --------
    >>> f = Floor(bandwidth_Bps=2e10, numpy_Bps=1e10, nbytes=2**28, repeats=5, threads=2)
    >>> f.seconds(4e9), f.parallel_Bps
    (0.2, 20000000000.0)
    >>> Floor.from_dict(f.as_dict()) == f
    True
    """

    bandwidth_Bps: float
    numpy_Bps: float
    nbytes: int
    repeats: int
    threads: int
    parallel_Bps: float | None = None

    def __post_init__(self):
        for name in ("bandwidth_Bps", "numpy_Bps"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
        if self.parallel_Bps is None:
            object.__setattr__(self, "parallel_Bps", float(self.bandwidth_Bps))

    def seconds(self, bytes_touched: float) -> float:
        """Time the floor implies for ``bytes_touched`` bytes (read + written).

        >>> Floor(1e9, 5e8, 2**20, 1, 1).seconds(5e8)
        0.5
        """
        if not (isinstance(bytes_touched, (int, float, np.integer, np.floating))
                and math.isfinite(bytes_touched) and bytes_touched >= 0):
            raise ValueError(f"bytes_touched must be a finite number >= 0, got {bytes_touched!r}")
        return float(bytes_touched) / self.bandwidth_Bps

    def as_dict(self) -> dict:
        """The floor as a JSON-ready dict (also carries GB/s for people reading the JSON).

        >>> sorted(Floor(1e9, 5e8, 2**20, 1, 1).as_dict())[:2]
        ['bandwidth_Bps', 'bandwidth_GBps']
        """
        d = asdict(self)
        d["bandwidth_GBps"] = round(self.bandwidth_Bps / 1e9, 3)
        d["parallel_GBps"] = round(self.parallel_Bps / 1e9, 3)
        d["numpy_GBps"] = round(self.numpy_Bps / 1e9, 3)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Floor":
        """Rebuild a :class:`Floor` from :meth:`as_dict` output.

        >>> Floor.from_dict({"bandwidth_Bps": 1e9, "numpy_Bps": 5e8, "nbytes": 1,
        ...                  "repeats": 1, "threads": 1}).threads
        1
        """
        try:
            par = d.get("parallel_Bps")
            return cls(float(d["bandwidth_Bps"]), float(d["numpy_Bps"]), int(d["nbytes"]),
                       int(d["repeats"]), int(d["threads"]), None if par is None else float(par))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a floor record: {d!r} ({exc})") from None


def floor_nbytes(default_mib: int = DEFAULT_FLOOR_MIB) -> int:
    """Array size for the floor: ``$CITYVITALS_FLOOR_MIB`` MiB if set, else ``default_mib``.

    >>> import os; os.environ.pop("CITYVITALS_FLOOR_MIB", None) and None
    >>> floor_nbytes(64)
    67108864
    """
    raw = os.environ.get(ENV_FLOOR_MIB)
    if raw is None or raw.strip() == "":
        mib = default_mib
    else:
        try:
            mib = int(raw)
        except ValueError:
            raise ValueError(f"{ENV_FLOOR_MIB} must be a whole number of MiB, got {raw!r}") from None
    if mib * 2**20 < MIN_FLOOR_BYTES:
        raise ValueError(f"floor array must be at least 1 MiB, got {mib!r} MiB")
    return mib * 2**20


def _best_time(fn, repeats: int) -> float:
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure_floor(nbytes: int | None = None, repeats: int = 5) -> Floor:
    """Measure the memory-bandwidth floor on this machine.

    Parameters
    ----------
    nbytes : int, optional
        Size of the copied array in bytes (rounded down to whole ``float64``); default
        :func:`floor_nbytes`. It must be well above the last-level cache.
    repeats : int
        Timed repetitions of each copy; the best counts.

    Returns
    -------
    Floor

    Examples
    --------
    >>> f = measure_floor(nbytes=2**21, repeats=1)
    >>> f.nbytes, f.repeats
    (2097152, 1)
    """
    if nbytes is None:
        nbytes = floor_nbytes()
    if not isinstance(nbytes, (int, np.integer)) or nbytes < MIN_FLOOR_BYTES:
        raise ValueError(f"nbytes must be an integer >= {MIN_FLOOR_BYTES} (1 MiB), got {nbytes!r}")
    if not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise ValueError(f"repeats must be an integer >= 1, got {repeats!r}")
    n = int(nbytes) // 8
    src = np.full(n, 1.5)
    dst = np.empty_like(src)
    try:
        parallel_copy(src, dst)  # compile (cached) and fault in the destination pages
        par = _best_time(lambda: parallel_copy(src, dst), repeats)
        one = _best_time(lambda: np.copyto(dst, src), repeats)
    finally:
        del src, dst
    touched = 2.0 * n * 8
    return Floor(bandwidth_Bps=touched / min(par, one), numpy_Bps=touched / one, nbytes=n * 8,
                 repeats=int(repeats), threads=n_threads(), parallel_Bps=touched / par)


@njit(parallel=True)
def series_update(state, a, b):  # pragma: no cover - compiled by numba
    """Read and update every series' state in place: ``state[i, j] = a * state[i, j] + b``.

    ``state`` is (series, words) float32, C-contiguous: each series' state (``4 * words`` bytes)
    read and written once, in one flat ``prange`` loop (every thread its own contiguous part). This is the
    reference kernel of issue 3's floor ("a numba kernel that reads and updates 40 bytes of state
    per series": :func:`measure_series_update`).

    >>> import numpy as np
    >>> s = np.ones((3, 2), np.float32)
    >>> series_update(s, np.float32(0.5), np.float32(1.0)); s.tolist()
    [[1.5, 1.5], [1.5, 1.5], [1.5, 1.5]]
    """
    flat = state.reshape(-1)  # (one flat loop: a series' 10 words as an inner loop do not vectorise)
    for i in prange(flat.shape[0]):
        flat[i] = a * flat[i] + b


def measure_series_update(n_series: int, series_bytes: int = 40, repeats: int = 5) -> float:
    """Best wall seconds of :func:`series_update` over ``n_series`` series of ``series_bytes``
    of float32 state each (the pages faulted in and the kernel compiled before timing).

    Issue 3 states its floor as such a kernel's time ("reads and updates 40 bytes of state per
    series for 15.6 million series runs in about 25 ms on this machine"): timed in the same
    session as the step, it is the floor read directly, without choosing how a bandwidth figure
    counts reads and writes.

    >>> measure_series_update(1000, repeats=1) > 0
    True
    """
    if not isinstance(n_series, (int, np.integer)) or n_series < 1:
        raise ValueError(f"n_series must be an integer >= 1, got {n_series!r}")
    if not isinstance(series_bytes, (int, np.integer)) or series_bytes < 4 or series_bytes % 4:
        raise ValueError(f"series_bytes must be a positive multiple of 4 (float32 words), got {series_bytes!r}")
    if not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise ValueError(f"repeats must be an integer >= 1, got {repeats!r}")
    state = np.ones((int(n_series), int(series_bytes) // 4), np.float32)
    # a, b keep the values bounded (fixed point 1.0): no denormals or infinities slow a pass
    a, b = np.float32(0.5), np.float32(0.5)
    try:
        series_update(state, a, b)  # compile (cached) and touch every page
        return _best_time(lambda: series_update(state, a, b), repeats)
    finally:
        del state
