"""Counter-based noise and event timing for the feed generators (numba kernels).

Every random number of a feed row is a hash of ``(key, counter)``: ``key`` mixes the run's seed,
the day and the feed (:func:`day_key`), ``counter`` is the row's position in the day's block.
So a day's feeds depend only on the seed, the day and the simulated state, never on how many
draws other days or other feeds used, and any day can be regenerated alone.

* :func:`mix64` is SplitMix64's finaliser; the ``i``-th number of stream ``key`` is
  ``mix64(key + (i + 1) * golden)`` (SplitMix64 itself); :func:`uniform` gives ``[0, 1)`` doubles.
* :func:`noisy_readings` (and :func:`noisy_grid`, which also writes the records' emitter, item and
  time columns) adds multiplicative noise ``1 + sd * z`` to a block of signals and clips
  each value into its metric's ``[lo, hi]``; ``z`` is an Irwin-Hall(4) variate (sum of four 16-bit
  uniforms from one hash, centred and scaled to unit variance): close to normal, bounded by
  +-3.46, so noise never produces absurd outliers.
* :func:`event_offsets` places ``counts[k]`` events of cell ``k`` in the day: a cycle drawn from
  the cell's rhythm (inverse CDF over the cycles), then a uniform instant inside the cycle.

The plain-numpy references are in ``tests/sim_reference.py``.

>>> import numpy as np
>>> out = np.empty(6)
>>> noisy_readings(np.full(6, 100.0), np.array([0.0, 0.1]), np.zeros(2), np.full(2, 1e9),
...                np.zeros(2, dtype=np.bool_), day_key(1, 0, "x"), out)
>>> out[0::2].tolist(), bool(np.all(np.abs(out[1::2] - 100) <= 35))
([100.0, 100.0, 100.0], True)
"""

from __future__ import annotations

import zlib

import numpy as np

from engine.config import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_S11, _S16, _S32, _S48 = np.uint64(11), np.uint64(16), np.uint64(32), np.uint64(48)
_LOW16 = np.uint64(0xFFFF)
_SQRT3 = np.sqrt(3.0)
_TWO53 = 2.0 ** -53
_GOLDEN_INT, _M1_INT, _M2_INT = int(_GOLDEN), int(_M1), int(_M2)


def day_key(seed: int, day: int, name: str) -> np.uint64:
    """The hash key of one (seed, day, feed-or-purpose) stream.

    >>> int(day_key(1, 2, "x")) == int(day_key(1, 2, "x")) != int(day_key(1, 3, "x"))
    True
    """
    mask = 0xFFFFFFFFFFFFFFFF                  # Python integers: as fast as a dict look-up
    h = zlib.crc32(name.encode())
    z = ((int(seed) * _M1_INT) & mask) ^ ((int(day) * _M2_INT) & mask) ^ ((h * _GOLDEN_INT) & mask)
    z = ((z ^ (z >> 30)) * _M1_INT) & mask
    z = ((z ^ (z >> 27)) * _M2_INT) & mask
    return np.uint64(z ^ (z >> 31))


@njit
def mix64(z):
    """SplitMix64's finaliser (uint64 in, uint64 out)."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit
def bits(key, i):
    """The ``i``-th 64-bit number of stream ``key``."""
    return mix64(key + (np.uint64(i) + np.uint64(1)) * _GOLDEN)


@njit
def uniform(key, i):
    """A double in ``[0, 1)``: the ``i``-th of stream ``key``."""
    return float(np.int64(bits(key, i) >> _S11)) * _TWO53          # < 2**53: exact as int64


@njit
def irwin_hall(key, i):
    """A zero-mean, unit-variance variate in [-3.46, 3.46]: the ``i``-th of stream ``key``."""
    h = bits(key, i)
    # the four 16-bit parts summed as integers (exact, so equal to summing them as doubles)
    k = np.int64((h & _LOW16) + ((h >> _S16) & _LOW16) + ((h >> _S32) & _LOW16) + (h >> _S48))
    return ((float(k) + 2.0) * (1.0 / 65536.0) - 2.0) * _SQRT3


@njit
def noisy_value(v, sd, lo, hi, integer, key, i):
    """One reading: ``clip(v * (1 + sd * irwin_hall(key, i)), lo, hi)``, rounded if ``integer``."""
    if sd > 0.0:
        v = v * (1.0 + sd * irwin_hall(key, i))
    if integer:
        v = np.floor(v + 0.5)
    if v < lo:
        v = lo
    elif v > hi:
        v = hi
    return v


@njit
def noisy_readings(signal, sd, lo, hi, integer, key, out):
    """``out[i] = clip(signal[i] * (1 + sd[m] * z_i), lo[m], hi[m])`` with ``m = i % len(sd)``
    and ``z_i = irwin_hall(key, i)``; rounded where ``integer[m]``. ``signal`` is a flat
    (times x emitters x metrics) block."""
    M = sd.shape[0]
    for b in range(signal.shape[0] // M):
        for m in range(M):
            i = b * M + m
            out[i] = noisy_value(signal[i], sd[m], lo[m], hi[m], integer[m], key, i)


@njit
def record_columns(emitters, items, times, em_out, it_out, t_out):
    """Emitter, item and time columns of a (times x emitters x items) block of records: row
    ``i = (c * E + e) * M + m`` gets ``emitters[e]``, ``items[m]`` and ``times[c]``."""
    E, M = emitters.shape[0], items.shape[0]
    i = 0
    for c in range(times.shape[0]):
        tc = times[c]
        for e in range(E):
            em = emitters[e]
            for m in range(M):
                em_out[i] = em
                it_out[i] = items[m]
                t_out[i] = tc
                i += 1


@njit
def noisy_grid(signal, sd, lo, hi, integer, key, emitters, items, times, em_out, it_out, t_out, out):
    """All columns of a (times x emitters x metrics) block of records: :func:`record_columns`, and
    ``out`` as :func:`noisy_readings` of ``signal.ravel()`` (``signal`` may be any 3-d view, e.g.
    broadcast). Values go one metric at a time, so each metric's noise, bounds and rounding are
    loop constants."""
    record_columns(emitters, items, times, em_out, it_out, t_out)
    Cn, E, M = signal.shape
    for m in range(M):
        s, lo_m, hi_m, int_m = sd[m], lo[m], hi[m], integer[m]
        for c in range(Cn):
            for e in range(E):
                i = (c * E + e) * M + m
                out[i] = noisy_value(signal[c, e, m], s, lo_m, hi_m, int_m, key, i)


@njit
def event_offsets(counts, profile, cdf, cycle_ns, key, out):
    """Nanoseconds after midnight of each event: ``counts[k]`` events of cell ``k`` follow the
    rhythm ``cdf[profile[k]]`` (cumulative share of the day by cycle, last entry 1)."""
    C = cdf.shape[1]
    j = 0
    for k in range(counts.shape[0]):
        row = cdf[profile[k]]
        for _ in range(counts[k]):
            u = uniform(key, 2 * j)
            lo, hi = 0, C - 1
            while lo < hi:                      # first cycle whose cumulative share exceeds u
                mid = (lo + hi) // 2
                if row[mid] > u:
                    hi = mid
                else:
                    lo = mid + 1
            out[j] = lo * cycle_ns + np.int64(uniform(key, 2 * j + 1) * cycle_ns)
            j += 1
