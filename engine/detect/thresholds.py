"""Detector 4: the catalog's warn / alarm levels, direction-aware.

The direction comes from the levels themselves: ``alarm > warn`` means high values are
bad, ``alarm < warn`` low values. Reaching ``warn`` scores :data:`engine.levels.WARN`,
reaching ``alarm`` scores :data:`engine.levels.CRITICAL`, linearly in between; a value on
the good side of ``warn`` scores 0. Series without levels get NaN (no opinion).

>>> threshold_score(1.6, 1.5, 2.5)      # sewer level above warn
0.9909
>>> threshold_score(0.1, 0.2, 0.14)     # water pressure below alarm
0.999
>>> threshold_score(0.3, 0.2, 0.14)
0.0
"""

from __future__ import annotations

import math

from engine.config import njit
from engine.levels import CRITICAL, WARN

__all__ = ["threshold_score"]


@njit
def threshold_score(x, warn, alarm):
    """Score of value ``x`` against levels ``warn`` and ``alarm`` (NaN levels: NaN)."""
    if math.isnan(warn) or math.isnan(x):
        return math.nan
    if math.isnan(alarm) or alarm == warn:
        return CRITICAL if x >= warn else 0.0
    if alarm > warn:
        if x >= alarm:
            return CRITICAL
        if x >= warn:
            return WARN + (CRITICAL - WARN) * (x - warn) / (alarm - warn)
        return 0.0
    if x <= alarm:
        return CRITICAL
    if x <= warn:
        return WARN + (CRITICAL - WARN) * (warn - x) / (warn - alarm)
    return 0.0
