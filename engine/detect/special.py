"""Special functions for tail probabilities, compiled with numba (no scipy).

Everything here is a small, pure ``njit`` function on scalars (float64), usable from the
detector kernels and from Python:

* :func:`gammainc_p`, :func:`gammainc_q` -- regularised incomplete gamma ``P(a, x)`` and
  ``Q(a, x) = 1 - P(a, x)`` (series for ``x < a + 1``, Lentz continued fraction otherwise);
* :func:`betainc` -- regularised incomplete beta ``I_x(a, b)`` (continued fraction);
* :func:`poisson_cdf`, :func:`poisson_sf` -- ``P(X <= k)`` and ``P(X >= k)`` for
  ``X ~ Poisson(mu)``;
* :func:`nbinom_cdf`, :func:`nbinom_sf` -- the same for a negative binomial with mean
  ``mu`` and size (dispersion) ``r`` (variance ``mu + mu**2 / r``);
* :func:`t_sf`, :func:`t4_sf` -- upper tail of Student's t (any ``nu``; closed form for
  ``nu = 4``, the reference distribution of the detectors' standardised residuals);
* :func:`norm_sf` -- upper tail of the standard normal.

Accuracy: about 1e-12 relative on the bulk and 1e-10 absolute in the far tails
(checked against slow references in ``tests/detect_reference.py``).

>>> round(poisson_sf(3, 1.0), 6)       # P(X >= 3), X ~ Poisson(1)
0.080301
>>> round(poisson_cdf(2, 1.0) + poisson_sf(3, 1.0), 12)
1.0
>>> round(t4_sf(3.747), 4)             # 99th percentile of t(4)
0.01
>>> abs(t_sf(1.5, 4.0) - t4_sf(1.5)) < 1e-12
True
"""

from __future__ import annotations

import math

from engine.config import njit

__all__ = [
    "betainc", "gammainc_p", "gammainc_q", "nbinom_cdf", "nbinom_sf", "norm_sf",
    "poisson_cdf", "poisson_sf", "t4_sf", "t_sf",
]

_EPS = 1e-15
_TINY = 1e-300
_MAXIT = 500


@njit
def _gamma_series(a, x):  # pragma: no cover - compiled
    # P(a, x) by the power series, for x < a + 1
    ap = a
    term = 1.0 / a
    total = term
    for _ in range(_MAXIT):
        ap += 1.0
        term *= x / ap
        total += term
        if abs(term) < abs(total) * _EPS:
            break
    return total * math.exp(-x + a * math.log(x) - math.lgamma(a))


@njit
def _gamma_cf(a, x):  # pragma: no cover - compiled
    # Q(a, x) by the modified Lentz continued fraction, for x >= a + 1
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    h = d
    for i in range(1, _MAXIT):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        if abs(d) < _TINY:
            d = _TINY
        c = b + an / c
        if abs(c) < _TINY:
            c = _TINY
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return math.exp(-x + a * math.log(x) - math.lgamma(a)) * h


@njit
def gammainc_p(a, x):
    """Regularised lower incomplete gamma ``P(a, x)`` (``a > 0``, ``x >= 0``).

    >>> round(gammainc_p(1.0, 1.0), 12) == round(1 - math.exp(-1.0), 12)
    True
    """
    if x <= 0.0:
        return 0.0
    if x < a + 1.0:
        return _gamma_series(a, x)
    return 1.0 - _gamma_cf(a, x)


@njit
def gammainc_q(a, x):
    """Regularised upper incomplete gamma ``Q(a, x) = 1 - P(a, x)``.

    >>> round(gammainc_q(2.0, 0.0), 12)
    1.0
    """
    if x <= 0.0:
        return 1.0
    if x < a + 1.0:
        return 1.0 - _gamma_series(a, x)
    return _gamma_cf(a, x)


@njit
def _beta_cf(a, b, x):  # pragma: no cover - compiled
    qab = a + b
    qap = a + 1.0
    qam = a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    if abs(d) < _TINY:
        d = _TINY
    d = 1.0 / d
    h = d
    for m in range(1, _MAXIT):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        if abs(d) < _TINY:
            d = _TINY
        c = 1.0 + aa / c
        if abs(c) < _TINY:
            c = _TINY
        d = 1.0 / d
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        if abs(d) < _TINY:
            d = _TINY
        c = 1.0 + aa / c
        if abs(c) < _TINY:
            c = _TINY
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return h


@njit
def betainc(a, b, x):
    """Regularised incomplete beta ``I_x(a, b)`` (``a, b > 0``, ``0 <= x <= 1``).

    >>> round(betainc(1.0, 1.0, 0.3), 12)
    0.3
    >>> round(betainc(2.0, 3.0, 0.4) + betainc(3.0, 2.0, 0.6), 12)
    1.0
    """
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    bt = math.exp(lbt)
    if x < (a + 1.0) / (a + b + 2.0):
        return bt * _beta_cf(a, b, x) / a
    return 1.0 - bt * _beta_cf(b, a, 1.0 - x) / b


@njit
def poisson_cdf(k, mu):
    """``P(X <= k)`` for ``X ~ Poisson(mu)`` (``k`` a whole number, may be negative).

    >>> round(poisson_cdf(0, 2.0), 12) == round(math.exp(-2.0), 12)
    True
    """
    if k < 0:
        return 0.0
    if mu <= 0.0:
        return 1.0
    return gammainc_q(math.floor(k) + 1.0, mu)


@njit
def poisson_sf(k, mu):
    """``P(X >= k)`` for ``X ~ Poisson(mu)`` (note: *at least* ``k``, the surveillance tail).

    >>> poisson_sf(0, 3.0)
    1.0
    """
    if k <= 0:
        return 1.0
    if mu <= 0.0:
        return 0.0
    return gammainc_p(math.ceil(k), mu)


@njit
def nbinom_cdf(k, mu, r):
    """``P(X <= k)`` for a negative binomial with mean ``mu`` and size ``r`` (> 0).

    ``X`` counts failures before the ``r``-th success with success probability
    ``p = r / (r + mu)``; its variance is ``mu + mu**2 / r``.

    >>> abs(nbinom_cdf(3, 2.0, 1e6) - poisson_cdf(3, 2.0)) < 1e-5
    True
    """
    if k < 0:
        return 0.0
    if mu <= 0.0:
        return 1.0
    p = r / (r + mu)
    return betainc(r, math.floor(k) + 1.0, p)


@njit
def nbinom_sf(k, mu, r):
    """``P(X >= k)`` for a negative binomial with mean ``mu`` and size ``r``.

    >>> round(nbinom_sf(0, 2.0, 1.5), 12)
    1.0
    """
    if k <= 0:
        return 1.0
    if mu <= 0.0:
        return 0.0
    p = r / (r + mu)
    return betainc(math.ceil(k), r, 1.0 - p)


@njit
def t4_sf(t):
    """Upper tail ``P(T > t)`` of Student's t with 4 degrees of freedom (closed form).

    >>> t4_sf(0.0)
    0.5
    """
    # P(T > |t|) = I_x(2, 1/2) / 2 with x = 4 / (4 + t^2); I_x(2, 1/2) = (1 - w)^2 (1 + w / 2),
    # w = |t| / sqrt(4 + t^2), and 1 - w written without cancellation.
    a = abs(t)
    q = math.sqrt(4.0 + a * a)
    omw = 4.0 / (q * (q + a))
    tail = 0.5 * omw * omw * (1.0 + 0.5 * a / q)
    return tail if t >= 0.0 else 1.0 - tail


@njit
def t_sf(t, nu):
    """Upper tail ``P(T > t)`` of Student's t with ``nu`` degrees of freedom.

    >>> round(t_sf(1.0, 1.0), 12)   # Cauchy: 1/2 - atan(1)/pi
    0.25
    """
    x = nu / (nu + t * t)
    half = 0.5 * betainc(0.5 * nu, 0.5, x)
    return half if t >= 0.0 else 1.0 - half


@njit
def norm_sf(z):
    """Upper tail of the standard normal, ``P(Z > z)``.

    >>> round(norm_sf(0.0), 12)
    0.5
    """
    return 0.5 * math.erfc(z / math.sqrt(2.0))
