"""Detector 3: two-sided CUSUM on standardised residuals (sustained shifts and drifts).

``C+ <- max(0, C+ + z - k)`` and ``C- <- max(0, C- - z - k)`` with ``z`` the residual in
standard deviations, clipped at ``cusum_clip``. The score uses the classical bound on the
tail of a CUSUM under no change, ``P(C >= c) <= exp(-2 k c)`` (Wald / Siegmund, normal
residuals): ``score = 1 - exp(-2 k c)`` for the bad side (two-sided: twice the tail).
With ``k = 0.5``, ``C = ln(100) = 4.61`` reaches :data:`engine.levels.WARN`.

>>> cp, cn = cusum_update(0.0, 0.0, 3.0, 0.5, 4.0)
>>> cp, cn
(2.5, 0.0)
>>> round(cusum_score(4.61, 0.0, 1, 0.5), 3)
0.99
>>> cusum_score(4.6, 0.0, -1, 0.5)      # down is bad: an upward shift scores 0
0.0
"""

from __future__ import annotations

import math

from engine.config import njit

__all__ = ["cusum_score", "cusum_update"]


@njit
def cusum_update(cp, cn, z, k, clip):
    """One CUSUM step; returns the new ``(C+, C-)``."""
    if z > clip:
        z = clip
    elif z < -clip:
        z = -clip
    cp = cp + z - k
    cn = cn - z - k
    return (cp if cp > 0.0 else 0.0), (cn if cn > 0.0 else 0.0)


@njit
def cusum_score(cp, cn, direction, k):
    """Score of the CUSUM pair for ``direction`` (1 up is bad, -1 down is bad, 0 both)."""
    if direction == 1:
        return 1.0 - math.exp(-2.0 * k * cp)
    if direction == -1:
        return 1.0 - math.exp(-2.0 * k * cn)
    c = cp if cp > cn else cn
    p = 2.0 * math.exp(-2.0 * k * c)
    return 1.0 - p if p < 1.0 else 0.0
