"""Noise-aware step detection on a benchmark's history (in the manner of asv).

A single slow run on a shared machine is not a regression; a level that moved and stayed
moved, by more than the runs' own noise, is. The history of medians is fitted, on a log
scale, by a piecewise-constant function (an exact L1 "Potts" fit: the sum of absolute
deviations from each segment's median plus a penalty ``gamma`` per segment, solved by
dynamic programming), then each step between neighbouring segments is tested:

* its size must be at least ``threshold`` (default 10 %), and
* at least ``z`` (default 3) times the noise of the two segments, where a segment's noise
  is the largest of: the scatter of its run medians (1.4826 x MAD), the typical noise
  *inside* its runs (each run's ``log(q3/q1)/1.349``), and ``min_sigma``.

Steps failing either test are merged away, least significant first, until every step
left is significant. An upward step is a regression (slower), a downward one an
improvement.

>>> import numpy as np
>>> rng = np.random.default_rng(1)
>>> medians = 0.050 * (1 + 0.03 * rng.uniform(-1, 1, 12))     # 3 % wobble
>>> detect_steps(medians, spreads=np.full(12, 0.01)).steps
[]
>>> medians[-1] *= 1.30                                       # planted 30 % slowdown
>>> [(s.index, s.kind) for s in detect_steps(medians, spreads=np.full(12, 0.01)).steps]
[(11, 'regression')]
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np

#: Consistency constant turning a median absolute deviation into a standard deviation.
MAD_TO_SIGMA = 1.4826


def _as_1d(values, what: str, *, positive: bool = False) -> np.ndarray:
    a = np.asarray(values, dtype=float)
    if a.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional, got shape {a.shape}")
    bad = ~np.isfinite(a) | ((a <= 0) if positive else (a < 0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        need = "> 0" if positive else ">= 0"
        raise ValueError(f"{what} must be finite and {need}; {what}[{i}] = {float(a[i])!r}")
    return a


def segment_cost(y) -> float:
    """L1 cost of one segment: ``sum |y - median(y)|`` (0 for an empty segment).

    >>> segment_cost([1.0, 2.0, 10.0])
    9.0
    """
    y = np.asarray(y, dtype=float)
    return float(np.abs(y - np.median(y)).sum()) if y.size else 0.0


def cost_table(y) -> np.ndarray:
    """Segment costs for every ``y[i:j]``: ``C[i, j]`` (``j > i``; NaN elsewhere).

    Computed in O(n^2 log n) with two heaps and running sums, rather than one median per
    segment.

    Parameters
    ----------
    y : array_like, shape (n,)

    Returns
    -------
    numpy.ndarray, shape (n, n + 1)

    Examples
    --------
    >>> C = cost_table([1.0, 2.0, 10.0])
    >>> C[0, 3].item(), C[1, 3].item(), C[0, 1].item()
    (9.0, 8.0, 0.0)
    """
    y = np.asarray(y, dtype=float)
    if y.ndim != 1:
        raise ValueError(f"y must be one-dimensional, got shape {y.shape}")
    n = y.size
    C = np.full((n, n + 1), np.nan)
    for i in range(n):
        lo: list[float] = []  # max-heap (negated): the lower half, holds the median
        hi: list[float] = []  # min-heap: the upper half
        s_lo = s_hi = 0.0
        for j in range(i, n):
            v = float(y[j])
            if not lo or v <= -lo[0]:
                heapq.heappush(lo, -v)
                s_lo += v
            else:
                heapq.heappush(hi, v)
                s_hi += v
            if len(lo) > len(hi) + 1:
                x = -heapq.heappop(lo)
                s_lo -= x
                heapq.heappush(hi, x)
                s_hi += x
            elif len(hi) > len(lo):
                x = heapq.heappop(hi)
                s_hi -= x
                heapq.heappush(lo, -x)
                s_lo += x
            med = -lo[0]
            C[i, j + 1] = max(0.0, (med * len(lo) - s_lo) + (s_hi - med * len(hi)))
    return C


def optimal_partition(y, gamma: float) -> list[int]:
    """Exact minimiser of ``sum of segment L1 costs + gamma x number of segments``.

    Parameters
    ----------
    y : array_like, shape (n,)
    gamma : float
        Penalty per segment (>= 0); larger means fewer steps.

    Returns
    -------
    list of int
        Segment boundaries ``[0, b1, ..., n]``: segment ``k`` is ``y[b[k]:b[k+1]]``.

    Examples
    --------
    >>> optimal_partition([0, 0, 0, 1, 1, 1], gamma=0.5)
    [0, 3, 6]
    >>> optimal_partition([0, 0, 0, 1, 1, 1], gamma=5.0)
    [0, 6]
    """
    y = np.asarray(y, dtype=float)
    if not (isinstance(gamma, (int, float, np.floating)) and math.isfinite(gamma) and gamma >= 0):
        raise ValueError(f"gamma must be a finite number >= 0, got {gamma!r}")
    n = y.size
    if n == 0:
        return [0]
    C = cost_table(y)
    F = np.zeros(n + 1)
    back = np.zeros(n + 1, dtype=np.int64)
    for j in range(1, n + 1):
        cand = F[:j] + C[:j, j] + gamma
        i = int(np.argmin(cand))
        F[j], back[j] = cand[i], i
    bounds = [n]
    while bounds[-1] > 0:
        bounds.append(int(back[bounds[-1]]))
    return bounds[::-1]


def partition_objective(y, bounds, gamma: float) -> float:
    """The objective :func:`optimal_partition` minimises, for given ``bounds``.

    >>> partition_objective([0, 0, 1, 1], [0, 2, 4], 0.25)
    0.5
    """
    y = np.asarray(y, dtype=float)
    return float(sum(segment_cost(y[a:b]) for a, b in zip(bounds[:-1], bounds[1:])) + gamma * (len(bounds) - 1))


def robust_sigma(x) -> float:
    """``1.4826 x median(|x - median(x)|)``: a standard deviation robust to outliers.

    0 for fewer than two values.

    >>> robust_sigma([1.0, 2.0, 3.0, 100.0])
    1.4826
    """
    x = np.asarray(x, dtype=float)
    if x.size < 2:
        return 0.0
    return float(MAD_TO_SIGMA * np.median(np.abs(x - np.median(x))))


def noise_sigma(y, spreads=None, *, min_sigma: float = 0.005) -> float:
    """Noise of a whole history on the log scale: sets the default penalty ``gamma``.

    The largest of: the scatter of successive differences (``1.4826 x median|diff(y)| /
    sqrt 2``, from 4 points on, so that the median of the differences is not moved by
    one step), the median of the runs' own spreads, and ``min_sigma``.

    >>> round(noise_sigma([0.0, 0.1, 0.0, 0.1], spreads=[0.01] * 4), 4)
    0.1048
    """
    y = np.asarray(y, dtype=float)
    parts = [float(min_sigma)]
    if y.size >= 4:
        parts.append(MAD_TO_SIGMA * float(np.median(np.abs(np.diff(y)))) / math.sqrt(2.0))
    if spreads is not None and len(spreads):
        parts.append(float(np.median(np.asarray(spreads, dtype=float))))
    return max(parts)


@dataclass(frozen=True)
class Segment:
    """Points ``start:stop`` of a history at one level (log of the median time).

    Attributes
    ----------
    start, stop : int
    level : float
        Median of the log-medians in the segment.
    sigma : float
        The segment's noise (see module docstring).

    Examples
    --------
    >>> Segment(0, 4, math.log(0.02), 0.01).time
    0.02
    """

    start: int
    stop: int
    level: float
    sigma: float

    @property
    def time(self) -> float:
        """The level as a time in seconds."""
        return float(round(math.exp(self.level), 15))


@dataclass(frozen=True)
class Step:
    """A significant change of level, starting at point ``index``.

    Attributes
    ----------
    index : int
        First point of the new level.
    before, after : Segment
    ratio : float
        ``after.time / before.time`` (1.3 = 30 % slower).
    z : float
        Size of the step over the combined noise of the two segments.
    kind : {"regression", "improvement"}

    Examples
    --------
    >>> s = Step(5, Segment(0, 5, 0.0, 0.01), Segment(5, 8, math.log(1.3), 0.01), 1.3, 18.5, "regression")
    >>> s.percent
    30.0
    """

    index: int
    before: Segment
    after: Segment
    ratio: float
    z: float
    kind: str

    @property
    def percent(self) -> float:
        """Change in per cent (+30.0 = 30 % slower)."""
        return round((self.ratio - 1.0) * 100.0, 6)


@dataclass(frozen=True)
class Trend:
    """Segments and significant steps of one history."""

    segments: list[Segment]
    steps: list[Step]
    gamma: float

    @property
    def latest_step(self) -> Step | None:
        """The step into the newest segment, or ``None`` when the newest level is the first.

        >>> detect_steps([1.0, 1.0, 1.0, 2.0, 2.0]).latest_step.index
        3
        """
        if self.steps and self.steps[-1].after == self.segments[-1]:
            return self.steps[-1]
        return None

    def levels(self) -> np.ndarray:
        """The fitted level (seconds) at every point.

        >>> detect_steps([1.0, 1.0, 2.0, 2.0]).levels().tolist()
        [1.0, 1.0, 2.0, 2.0]
        """
        out = np.empty(self.segments[-1].stop if self.segments else 0)
        for s in self.segments:
            out[s.start:s.stop] = s.time
        return out


def _segment(y, spreads, a, b, min_sigma) -> Segment:
    part = y[a:b]
    sig = max(robust_sigma(part), float(np.median(spreads[a:b])), min_sigma)
    return Segment(a, b, float(np.median(part)), sig)


def step_test(before: Segment, after: Segment, *, threshold: float, z: float) -> tuple[bool, float, float]:
    """Whether a step between two segments is significant, with its z-score and score.

    ``score`` < 1 means insignificant; it is the smaller of ``|delta| / log(1+threshold)``
    and ``|delta| / (z x noise)``, so the least significant step has the lowest score.

    >>> a, b = Segment(0, 5, 0.0, 0.01), Segment(5, 6, math.log(1.3), 0.01)
    >>> ok, zscore, score = step_test(a, b, threshold=0.10, z=3.0)
    >>> ok, round(zscore, 1)
    (True, 18.6)
    """
    delta = abs(after.level - before.level)
    noise = math.hypot(before.sigma, after.sigma)
    zscore = delta / noise if noise > 0 else math.inf
    score = min(delta / math.log1p(threshold), zscore / z)
    return score >= 1.0, zscore, score


def detect_steps(medians, spreads=None, *, threshold: float = 0.10, z: float = 3.0,
                 gamma: float | None = None, min_sigma: float = 0.005) -> Trend:
    """Find the significant changes of level in a history of median times.

    Parameters
    ----------
    medians : array_like, shape (n,)
        Median time of each run, oldest first (> 0).
    spreads : array_like, shape (n,), optional
        Each run's own noise on the log scale (``log(q3/q1)/1.349``); default 0.
    threshold : float
        Smallest relative change reported (0.10 = 10 %).
    z : float
        How many times the noise a step must exceed.
    gamma : float, optional
        Penalty per segment of the fit; default ``2 x noise_sigma``.
    min_sigma : float
        Noise never assumed below this (0.5 % by default).

    Returns
    -------
    Trend

    Examples
    --------
    >>> t = detect_steps([1.0, 1.01, 0.99, 1.0, 0.7, 0.71, 0.69], spreads=[0.01] * 7)
    >>> [(s.index, s.kind, round(s.percent)) for s in t.steps]
    [(4, 'improvement', -30)]
    """
    y = np.log(_as_1d(medians, "medians", positive=True))
    n = y.size
    sp = np.zeros(n) if spreads is None else _as_1d(spreads, "spreads")
    if sp.size != n:
        raise ValueError(f"spreads must have one value per median ({n}), got {sp.size}")
    for name, v in (("threshold", threshold), ("z", z), ("min_sigma", min_sigma)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
    if n == 0:
        return Trend([], [], 0.0)
    if gamma is None:
        gamma = 2.0 * noise_sigma(y, sp, min_sigma=min_sigma)
    bounds = optimal_partition(y, gamma)
    while True:
        segs = [_segment(y, sp, a, b, min_sigma) for a, b in zip(bounds[:-1], bounds[1:])]
        tests = [step_test(a, b, threshold=threshold, z=z) for a, b in zip(segs[:-1], segs[1:])]
        weak = [(score, k) for k, (ok, _, score) in enumerate(tests) if not ok]
        if not weak:
            break
        _, k = min(weak)
        del bounds[k + 1]
    steps = []
    for (a, b), (_, zscore, _) in zip(zip(segs[:-1], segs[1:]), tests):
        ratio = math.exp(b.level - a.level)
        steps.append(Step(b.start, a, b, ratio, zscore, "regression" if ratio > 1 else "improvement"))
    return Trend(segs, steps, float(gamma))
