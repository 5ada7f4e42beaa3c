"""Shared meaning of the anomaly score, and the detector codes, used by detectors, alerts and indices.

The score of a series at a cycle is in [0, 1]: ``1 - p`` where ``p`` is the probability, under the
series' learned normal behaviour, of a value at least this far in the bad direction (the indicator's
``direction``; ``both`` takes the two-sided tail). A catalog threshold crossing maps onto the same
scale: reaching the ``warn`` level scores at least :data:`WARN`, the ``alarm`` level at least
:data:`CRITICAL`. NaN means "no opinion yet" (warm-up or no data), never "normal".

>>> WARN < CRITICAL and CLEAR < WARN
True
"""

from __future__ import annotations

#: score at or above which a series is abnormal enough for a warn-severity alert
WARN = 0.99
#: score at or above which an alert is critical
CRITICAL = 0.999
#: an alert resolves only when the score falls below this (hysteresis: CLEAR < WARN)
CLEAR = 0.95

#: detector codes stored in the ``detector`` variable (int8); 0 = none drove the score
DETECTORS = {
    0: "none",
    1: "seasonal",      # seasonal baseline with a robust scale
    2: "count",         # count surprise (Poisson / negative binomial tail)
    3: "cusum",         # two-sided CUSUM on standardised residuals
    4: "threshold",     # catalog warn / alarm levels
    5: "spatial",       # residual against the neighbours' at the same cycle
    6: "cluster",       # prospective space-time scan statistic
}
DETECTOR_CODES = {name: code for code, name in DETECTORS.items()}
