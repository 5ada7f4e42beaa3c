"""Detector parameters: one dataclass, passed to the kernels as a float64 vector.

>>> p = DetectorParams()
>>> v = p.vector()
>>> bool(v[P_CUSUM_K] == p.cusum_k)
True
>>> DetectorParams(level_rate=2.0)
Traceback (most recent call last):
...
ValueError: level_rate must be in (0, 1], got 2.0
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

__all__ = ["DetectorParams", "LikelihoodParams"]


@dataclass(frozen=True)
class DetectorParams:
    """Tuning of the streaming detectors (one set for the whole catalog).

    Rates are per observed cycle; during warm-up each state uses the running mean
    (rate ``1 / n``) until that is smaller than its rate, so it is learned quickly.

    Attributes
    ----------
    level_rate : float
        EWMA rate of the deseasonalised level of each series.
    spread_rate : float
        EWMA rate of the spread ``D`` (mean absolute deviation of the value from its level,
        seasonal swing included); the shared seasonal shape is in units of ``D``. Once a
        seasonal series is warm and its phase bin is set, ``D`` is the region's own
        seasonal amplitude (see ``amplitude_rate``).
    amplitude_rate : float
        Once a seasonal series is warm and its phase bin is set, ``D`` is the region's own
        seasonal amplitude: it moves by ``amplitude_rate`` times the (Huber-clipped)
        residual regressed on the shape, ``res * shape / max(shape**2, 1)`` (robust LMS),
        so it cannot drift against the shared shape. 0 keeps the mean-absolute-deviation
        rule (``score_series`` does: one series has no shape to share).
    scale_rate : float
        EWMA rate of the robust residual scale ``S`` (mean absolute residual; the
        standard deviation is taken as ``1.2533 * S``, exact for normal residuals).
    shape_rate : float
        Rate at which a phase bin of the shared seasonal shape follows the regions' mean
        deviation (first visits of a bin use the running mean).
    shape_clip : float
        Largest change one region can push a shape bin per visit, in residual standard
        deviations once the series is warm (``D`` units before): one holiday moves a bin
        by at most ``shape_rate * shape_clip`` sigmas (not applied to a bin's first two
        visits, which set it: the second visit overwrites the first, learned while the
        level was still settling).
    huber : float
        Residuals are clipped at ``huber`` standard deviations before they update the
        level and the scale (robust learning: an outlier cannot drag the baseline).
    cusum_k : float
        CUSUM reference value (allowance) in standard deviations.
    cusum_clip : float
        Standardised residuals are clipped at this before entering the CUSUM, so a
        single spike is the seasonal detector's business, not a "shift".
    cusum_cap : float
        The CUSUM sums are capped at this (default 5.5: just above the ``WARN`` level of
        a two-sided CUSUM, ``ln 200 = 5.3``), so a long anomaly (a holiday, an outage)
        does not leave the CUSUM alarming for days after it ended; a sustained shift
        still holds the score at or above ``WARN``.
    floor_spread, floor_level : float
        The standard deviation is at least ``floor_spread * D + floor_level * |level|``
        (a flat or perfectly periodic series does not get an infinitely small scale).
    count_mu_floor : float
        Smallest expected count per cycle used by every test of a count row (the count tail,
        the z of the CUSUM and of the spatial pass): an event in a series that has been all
        zeros is surprising, not infinitely so. It also floors a count's spread ``D`` (the
        unit of its profile) at the Poisson spread ``sqrt(max(level, count_mu_floor))``; a
        count's level is kept ``>= 0``.
    overdispersion : float
        A count series whose variance exceeds ``overdispersion * mean`` is tested with
        a negative binomial of that variance; otherwise with a Poisson.
    spatial_min_neighbours : int
        Neighbours with data needed before the spatial detector has an opinion.
    warmup : int
        Observed cycles before a series scores (seasonal indicators: at least
        ``warmup_seasons`` full seasons, see below).
    warmup_seasons : int
        Full seasons (days for hour-of-day, weeks for hour-of-week profiles) a seasonal
        series observes before it scores: the larger of ``warmup`` and this times the
        season's length in cycles. Default 2: a profile bin is set by its first two visits
        (the second overwrites the first, learned while the level was still settling), so
        one season leaves every bin judged on a single, unsettled visit.
    weekly_fallback : bool
        With the city rules (:class:`engine.detect.Detectors`), a weekly (hour-of-week) series
        is judged against a daily (weekday / weekend) profile learned alongside until its
        hour-of-week bin has been visited in ``warmup_seasons`` weeks, and is warm after
        ``warmup_seasons`` days instead of weeks (a seventh of its warm-up): an incident in
        the first weeks is still scored. False (default): a weekly series waits for its weekly
        warm-up. Off by default: on the demo's data it scores many more series early and their
        extreme tails with them (docs/detect.md, "Kernels, 2026-11-29"); on the 17-day demo it
        adds 10 false alerts (36 -> 46, precision 0.854 -> 0.821) and finds no incident more:
        market_crowd's occupancy scores p ~ 5.5e-5 with it, far above the family level
        (docs/sim.md, "market_crowd and recall, 2026-11-29 (fourth session)").
    scan_replicas : int
        Monte Carlo replicas of the space-time scan (p-values in steps of 1/(R+1)).
    scan_max_zone : int
        Largest group of adjacent neighbourhoods the scan considers.
    scan_windows : int
        History the scan looks back over, in counts of the scanned indicators' window (hours
        for ``count_1h``): its windows are the last 1, 2, 3, 4, 6, 8, 12, 16, 24 ... counts up
        to ``scan_windows``, each count ``stride`` cycles apart (``stride``: the indicators'
        window in cycles, 4 for a ``count_1h`` at 15-minute cycles), so no event is counted
        twice (:mod:`engine.detect.scan`). 24: a day, enough for a cluster of a few cases a day
        (docs/detect.md, "Scan, 2026-11-29 (second session)": ~25 ms a cycle for 68 indicators
        x 300 regions against ~108 ms for 64 hours).
    scan_condition : bool
        Condition the scan on each count's city total (Kulldorff's Poisson model): every
        cycle the scanned indicator's expectations are scaled so that they sum to the observed
        total over the regions (at least 1), so a city-wide rise or a learned level lagging a
        trend is not a "cluster"; only where the counts gather is.
    scan_tail : bool
        Clusters no Monte Carlo replica reached get the union-bound tail p-value (below
        ``1 / (scan_replicas + 1)``; :func:`engine.detect.scan.scan_indicator`): without it a
        scan p-value can never pass a family-wise level across a whole city's tests.
    scan_alpha : float
        Clusters with a Monte Carlo p-value at or below this are reported. 0.001 (= 1 / (999 +
        1)): only a cluster no replica reaches can pass the alert family's level (its tail
        p-value, ``scan_tail``), and the replicas of every other cluster stop at the first
        that exceeds it (Besag-Clifford), so the scan's cost does not grow with the near-misses.
    seed : int
        Seed of the scan's Monte Carlo (with the indicator and cycle number, so every
        cycle's replicas are reproducible and independent of threading).
    """

    level_rate: float = 0.005
    spread_rate: float = 0.005
    amplitude_rate: float = 0.005
    scale_rate: float = 0.02
    shape_rate: float = 0.1
    shape_clip: float = 0.5
    huber: float = 3.0
    cusum_k: float = 0.5
    cusum_clip: float = 4.0
    cusum_cap: float = 5.5
    floor_spread: float = 0.02
    floor_level: float = 1e-3
    count_mu_floor: float = 0.1
    overdispersion: float = 1.5
    spatial_min_neighbours: int = 2
    warmup: int = 16
    warmup_seasons: int = 2
    weekly_fallback: bool = False
    scan_replicas: int = 999
    scan_max_zone: int = 6
    scan_windows: int = 24
    scan_condition: bool = True
    scan_tail: bool = True
    scan_alpha: float = 0.001
    seed: int = 20200123

    def __post_init__(self):
        for name in ("level_rate", "spread_rate", "scale_rate", "shape_rate"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0.0 < v <= 1.0):
                raise ValueError(f"{name} must be in (0, 1], got {v!r}")
        for name in ("shape_clip", "huber", "cusum_clip", "cusum_cap", "count_mu_floor", "overdispersion"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
        if not (isinstance(self.amplitude_rate, (int, float)) and 0.0 <= self.amplitude_rate <= 1.0):
            raise ValueError(f"amplitude_rate must be in [0, 1], got {self.amplitude_rate!r}")
        for name in ("cusum_k", "floor_spread", "floor_level"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        for name, lo in (("spatial_min_neighbours", 1), ("warmup", 1), ("warmup_seasons", 1), ("scan_replicas", 1),
                         ("scan_max_zone", 1), ("scan_windows", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
        if not isinstance(self.weekly_fallback, (bool, np.bool_)):
            raise ValueError(f"weekly_fallback must be True or False, got {self.weekly_fallback!r}")
        for name in ("scan_tail", "scan_condition"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if not (0.0 < self.scan_alpha <= 1.0):
            raise ValueError(f"scan_alpha must be in (0, 1], got {self.scan_alpha!r}")

    def vector(self) -> np.ndarray:
        """The float parameters as the float64 vector the kernels read (see ``P_*``)."""
        return np.array([float(getattr(self, f)) for f in _VECTOR], dtype=np.float64)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


_VECTOR = ["level_rate", "spread_rate", "scale_rate", "shape_rate", "shape_clip", "huber",
           "cusum_k", "cusum_clip", "floor_spread", "floor_level", "count_mu_floor",
           "overdispersion", "spatial_min_neighbours", "cusum_cap", "amplitude_rate", "weekly_fallback"]
(P_LEVEL_RATE, P_SPREAD_RATE, P_SCALE_RATE, P_SHAPE_RATE, P_SHAPE_CLIP, P_HUBER, P_CUSUM_K,
 P_CUSUM_CLIP, P_FLOOR_SPREAD, P_FLOOR_LEVEL, P_MU_FLOOR, P_OVERDISP, P_SPATIAL_MIN, P_CUSUM_CAP,
 P_AMP_RATE, P_FALLBACK) = range(len(_VECTOR))


@dataclass(frozen=True)
class LikelihoodParams:
    """Tuning of the anomaly-likelihood layer (:mod:`engine.detect.likelihood`).

    The layer turns each series' detector score into a surprise ``u = -ln(1 - score)``,
    keeps a short-term average of it and the long-run mean and variance of that average,
    and scores how far the short-term average lies above its long-run distribution
    (upper tail ``p`` of the predictive Student t of the learned mean and variance, see
    ``effective``; after Numenta's anomaly likelihood, Ahmad et al. 2017, whose tail is Gaussian).

    Attributes
    ----------
    short_rate : float
        EWMA rate of the short-term average of the surprise (0.18 = ``2 / (10 + 1)``, the
        EWMA counterpart of a 10-point moving average).
    history : float
        Horizon, in observed cycles, of the long-run mean and variance of the short-term
        average (EWMA rate ``max(1 / n, 1 / history)``; 8,640 = 30 days of 5-minute cycles).
    learn : int
        Observed cycles the layer learns before it has an opinion (NaN before). The
        catalog default; ``score_series`` uses the second half of NAB's probationary period.
    alert : float
        Tail probability ``p`` at which the layer's score reaches ``engine.levels.WARN``:
        ``score = 1 - p ** c`` with ``c = ln(1 - WARN) / ln(alert)`` (1/3 for 1e-6: ``CLEAR``
        at ``p = 1.25e-4``, ``CRITICAL`` at ``p = 1e-9``); 0 when the short-term average is at
        or below its long-run mean.
    surprise_cap : float
        The surprise is capped here (16 ~ the float32 resolution of a score near 1).
    min_sd : float
        Floor of the long-run standard deviation of the short-term average (a series whose
        detector score never moves does not get an infinitely small scale).
    effective : float or None
        Independent observations per observed cycle behind the learned mean and variance
        (None: ``short_rate / (2 - short_rate)``, 0.099 at the default rate: the short-term
        average is an AR(1) with ``rho = 1 - short_rate``). The tail ``p`` is then the
        **predictive** one of a sample of ``n_eff = effective * min(n, history)``
        observations: Student t with ``n_eff - 1`` degrees of freedom (at least 1) of
        ``z / sqrt(1 + 1 / n_eff)``, not the Gaussian, so a layer that has learned from few
        effective observations (right after the NAB probation: ~37 of 375 cycles) does not
        take its noisy variance at its word; it tends to the Gaussian as ``n_eff`` grows.
        0: the Gaussian tail (no small-sample correction).

    >>> LikelihoodParams().exponent() == math.log(0.01) / math.log(1e-6)
    True
    """

    short_rate: float = 0.18
    history: float = 8640.0
    learn: int = 288
    alert: float = 1e-6
    surprise_cap: float = 16.0
    min_sd: float = 0.02
    effective: float | None = None

    def __post_init__(self):
        if not (isinstance(self.short_rate, (int, float)) and 0.0 < self.short_rate <= 1.0):
            raise ValueError(f"short_rate must be in (0, 1], got {self.short_rate!r}")
        if not (isinstance(self.history, (int, float)) and math.isfinite(self.history) and self.history >= 1):
            raise ValueError(f"history must be a finite number >= 1, got {self.history!r}")
        if isinstance(self.learn, bool) or not isinstance(self.learn, (int, np.integer)) or self.learn < 1:
            raise ValueError(f"learn must be an integer >= 1, got {self.learn!r}")
        if not (isinstance(self.alert, (int, float)) and 0.0 < self.alert < 0.01):
            raise ValueError(f"alert must be in (0, 0.01), got {self.alert!r}")
        if self.effective is not None and (isinstance(self.effective, bool) or not (
                isinstance(self.effective, (int, float)) and 0.0 <= self.effective <= 1.0)):
            raise ValueError(f"effective must be None or in [0, 1], got {self.effective!r}")
        for name in ("surprise_cap", "min_sd"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {v!r}")

    def exponent(self) -> float:
        """``c`` of ``score = 1 - p ** c`` (``p = alert`` scores ``WARN``)."""
        from engine.levels import WARN

        return math.log(1.0 - WARN) / math.log(self.alert)

    def vector(self) -> np.ndarray:
        """``short_rate, 1 / history, surprise_cap, min_sd, exponent, effective`` as the kernel reads them."""
        return np.array([self.short_rate, 1.0 / self.history, self.surprise_cap, self.min_sd, self.exponent(),
                         self.effective_fraction()], dtype=np.float64)

    def effective_fraction(self) -> float:
        """``effective``, or when None ``short_rate / (2 - short_rate)`` (the short-term average's
        lag-1 autocorrelation is ``rho = 1 - short_rate``; ``(1 - rho) / (1 + rho)`` independent
        observations per observed cycle).

        >>> round(LikelihoodParams().effective_fraction(), 4), LikelihoodParams(effective=0.0).effective_fraction()
        (0.0989, 0.0)
        """
        return self.short_rate / (2.0 - self.short_rate) if self.effective is None else float(self.effective)
