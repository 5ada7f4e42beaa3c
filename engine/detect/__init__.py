"""Streaming anomaly detectors: every cycle, every (indicator, region) series gets a score.

Six detectors (codes of :data:`engine.levels.DETECTORS`): 1 seasonal baseline with a robust
scale, 2 count surprise (Poisson / negative binomial), 3 CUSUM shift, 4 catalog thresholds,
5 spatial outlier, 6 space-time cluster scan. :class:`Detectors` runs them over a catalog
and a city; :func:`score_series` runs the same kernels on one series (NAB).
See docs/detect.md.
"""

from engine.detect.detectors import Detectors
from engine.detect.params import DetectorParams
from engine.detect.series import alert_onsets, score_series
from engine.detect.state import DetectorState

__all__ = ["DetectorParams", "DetectorState", "Detectors", "alert_onsets", "score_series"]
