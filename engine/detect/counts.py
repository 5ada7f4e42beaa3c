"""Detector 2: count surprise for low-count event series (EARS / Farrington spirit).

A count ``x`` is tested against its expected count ``mu`` (the seasonal baseline, floored
at ``count_mu_floor``): the score is ``1 - P(X >= x)`` when high counts are bad (and the
count is above ``mu``), ``1 - P(X <= x)`` when low counts are bad, twice the smaller tail
when both are. ``X`` is Poisson(``mu``), or negative binomial with the series' robust
variance when that exceeds ``overdispersion * mu`` (size ``r = mu^2 / (var - mu)``).
A count on the good side of its expectation scores 0 (no evidence of badness).

Tails of up to :data:`SUM_TERMS` terms are summed directly (exact, a few multiplications
per term); larger counts use the incomplete gamma / beta of :mod:`engine.detect.special`.

>>> round(count_score(3.0, 0.5, 0.5, 1, 1.5), 6)     # P(X >= 3) = 0.014388 under Poisson(0.5)
0.985612
>>> count_score(0.0, 0.5, 0.5, 1, 1.5)
0.0
>>> round(count_score(0.0, 6.0, 6.0, -1, 1.5), 6)     # no tickets where 6 were expected
0.997521
"""

from __future__ import annotations

import math

from engine.config import njit
from engine.detect.special import betainc, gammainc_q

__all__ = ["SUM_TERMS", "count_cdf", "count_score"]

#: counts up to this are summed term by term; above, the special functions are used
SUM_TERMS = 40


@njit
def count_cdf(k, mu, r):
    """``P(X <= k)``: Poisson(``mu``) when ``r <= 0``, else negative binomial (mean ``mu``, size ``r``).

    >>> round(count_cdf(1, 1.0, 0.0), 12) == round(2 * math.exp(-1.0), 12)
    True
    """
    if k < 0:
        return 0.0
    if r <= 0.0:
        if k <= SUM_TERMS:
            pmf = math.exp(-mu)
            total = pmf
            for j in range(1, int(k) + 1):
                pmf *= mu / j
                total += pmf
            return total if total < 1.0 else 1.0
        return gammainc_q(k + 1.0, mu)
    p = r / (r + mu)
    if k <= SUM_TERMS:
        q = 1.0 - p
        pmf = math.exp(r * math.log(p))
        total = pmf
        for j in range(1, int(k) + 1):
            pmf *= (j - 1.0 + r) / j * q
            total += pmf
        return total if total < 1.0 else 1.0
    return betainc(r, k + 1.0, p)


@njit
def count_score(x, mu, var, direction, overdispersion):
    """Count-surprise score of count ``x`` (rounded) given expected ``mu`` and variance ``var``."""
    k = math.floor(x + 0.5)
    if k < 0.0:
        k = 0.0
    r = 0.0
    if var > overdispersion * mu:
        r = mu * mu / (var - mu)
    if direction == 1:
        if k <= mu:
            return 0.0
        return count_cdf(k - 1.0, mu, r)            # 1 - P(X >= k)
    if direction == -1:
        if k >= mu:
            return 0.0
        return 1.0 - count_cdf(k, mu, r)            # 1 - P(X <= k)
    lo = count_cdf(k, mu, r)
    hi = 1.0 - count_cdf(k - 1.0, mu, r)
    p = 2.0 * (lo if lo < hi else hi)
    return 1.0 - p if p < 1.0 else 0.0
