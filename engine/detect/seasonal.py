"""Detector 1: seasonal baseline with a robust scale.

Model of a series ``(i, r)`` (indicator ``i``, region ``r``) at a cycle of phase ``h``::

    expected = L[i, r] + D[i, r] * shape[i, h]
    sigma    = max(1.2533 * S[i, r], floor_spread * D[i, r] + floor_level * |L[i, r]|)

``L`` is the deseasonalised level, ``D`` the spread (mean absolute deviation from the
level, seasonal swing included), ``S`` the mean absolute residual, and ``shape`` the
seasonal profile *shared by all regions of the indicator* (hour-of-day or hour-of-week
bins, in units of each region's own ``D``): 5 floats per series plus one small profile
per indicator, instead of a profile per series.

The score is the tail probability of the standardised residual ``z = (x - expected) /
sigma`` under a Student t with 4 degrees of freedom (heavier tails than the normal: real
residuals have them, and the scale is itself estimated): ``1 - P(T >= z)`` when up is bad
(0 when ``z <= 0``), mirrored for down, ``1 - 2 P(T >= |z|)`` for both.

Learning is robust: residuals are clipped at ``huber`` sigmas before they move ``L`` and
``S``; a shape bin moves by at most ``shape_rate * shape_clip`` per visit, so a holiday
does not poison the profile for the weeks after it.

>>> round(t_score(3.747, 1), 4)
0.99
>>> t_score(-3.0, 1), round(t_score(-3.747, -1), 4)
(0.0, 0.99)
>>> import numpy as np
>>> phase_bins(np.array(["2024-01-01T00:30", "2024-01-02T13:10"], dtype="datetime64[m]"), 60)
(array([ 0, 13]), array([ 0, 37]))
"""

from __future__ import annotations

import numpy as np

from engine.config import njit
from engine.detect.special import t4_sf

__all__ = ["SEASON_CODES", "SIGMA_PER_MAD", "phase_bins", "season_bins", "t_score"]

#: standard deviation per mean absolute deviation for normal residuals, sqrt(pi / 2)
SIGMA_PER_MAD = 1.2533141373155003
#: seasonality names of the catalog and their codes in the kernels
SEASON_CODES = {"none": 0, "daily": 1, "weekly": 2}


@njit
def t_score(z, direction):
    """Score of a standardised residual under t(4), for ``direction`` 1 / -1 / 0."""
    if direction == 1:
        return 1.0 - t4_sf(z) if z > 0.0 else 0.0
    if direction == -1:
        return 1.0 - t4_sf(-z) if z < 0.0 else 0.0
    return 1.0 - 2.0 * t4_sf(abs(z))


def season_bins(phase_minutes: int) -> tuple[int, int]:
    """Bins per day and per week for profiles of ``phase_minutes`` (must divide a day)."""
    if isinstance(phase_minutes, bool) or not isinstance(phase_minutes, (int, np.integer)) \
            or phase_minutes <= 0 or 1440 % phase_minutes:
        raise ValueError(f"phase_minutes must be a whole number of minutes dividing a day (1440), got {phase_minutes!r}")
    per_day = 1440 // int(phase_minutes)
    return per_day, 7 * per_day


def phase_bins(times, phase_minutes: int) -> tuple[np.ndarray, np.ndarray]:
    """Hour-of-day and hour-of-week bins (of ``phase_minutes``) of local times.

    Parameters
    ----------
    times : array of datetime64 (naive local time) or anything ``numpy.asarray`` turns into one
    phase_minutes : int

    Returns
    -------
    (day_bin, week_bin) : int64 arrays; the week starts on Monday 00:00.
    """
    per_day, _ = season_bins(phase_minutes)
    t = np.asarray(times).astype("datetime64[m]").astype(np.int64)
    minute = np.mod(t, 1440)
    day = np.floor_divide(t, 1440)
    weekday = np.mod(day + 3, 7)            # 1970-01-01 was a Thursday
    dbin = minute // int(phase_minutes)
    return dbin, weekday * per_day + dbin
