"""Anomaly likelihood: a layer over the detector scores that scores *unusual runs of surprise*.

After Numenta's anomaly likelihood (Ahmad, Lavin, Purdy, Agha 2017, "Unsupervised real-time
anomaly detection for streaming data"). Per series ``(indicator, region)``, each cycle:

1. surprise ``u = -ln(1 - score)`` of the detector score (capped at ``surprise_cap``; a
   score of 0.99 is ``u = 4.6``);
2. short-term average ``a`` of ``u`` (EWMA, rate ``short_rate`` ~ a 10-point average);
3. score against the long-run distribution of ``a`` learned so far (mean ``m``, variance
   ``v``, EWMA rate ``max(1 / n, 1 / history)``): ``z = (a - m) / max(sqrt(v), min_sd)``,
   upper tail ``p`` of Student's t with ``n_eff - 1`` degrees of freedom at
   ``z / sqrt(1 + 1 / n_eff)``: the predictive tail of a sample of ``n_eff = effective *
   min(n, history)`` independent observations (``effective`` ~ 0.1: ``a`` is strongly
   autocorrelated; it tends to the Gaussian as ``n_eff`` grows; ``effective`` 0: Gaussian);
   ``score = 1 - p ** c`` for ``z > 0`` (0 otherwise), with ``c`` such that ``p = alert``
   scores ``engine.levels.WARN`` (:class:`LikelihoodParams`);
4. learn ``m`` and ``v`` from ``a`` (after scoring: a cycle is judged by the past only).

NaN scores (no data, detector warm-up) leave the state alone and score NaN; the layer itself
scores NaN for its first ``learn`` observed cycles. A series whose detector is always
surprised (a misfit model) has a high ``m`` and is quiet; an isolated spike or a run of
moderately surprising cycles lifts ``a`` far above ``m`` and alerts once, near its start.

State: ``short``, ``mean``, ``var`` (float32) and ``nobs`` (int16, saturating): 14 bytes a
series. :func:`likelihood_kernel` runs over ``(n_t, n_ind, n_reg)`` score blocks, ``prange``
over indicators (each thread owns whole rows), time inside; :class:`Likelihood` keeps the
state, so the full-catalog path applies it to ``Detectors.update``'s score matrix each cycle
(``lik.update(score)``) and :func:`engine.detect.score_series` applies the same kernel to a
1 x 1 problem (``lik.run(scores)``). See docs/detect.md.

>>> rng = np.random.default_rng(0)
>>> s = 1 - rng.uniform(size=(1000, 1, 1)); s[800] = 1 - 1e-7     # uniform p-values, one spike
>>> lik = Likelihood(1, 1, learn=300)
>>> out = lik.run(s)
>>> bool(np.isnan(out[:300]).all()), bool(out[800, 0, 0] > 0.999), bool(np.nanmax(out[300:800]) < 0.99)
(True, True, True)
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from engine.config import njit
from engine.detect.params import LikelihoodParams
from engine.detect.special import t_sf

__all__ = ["Likelihood", "likelihood_kernel", "likelihood_kernel_serial"]

NOBS_MAX = 32767
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
(L_SHORT_RATE, L_INV_HISTORY, L_CAP, L_MIN_SD, L_EXPONENT, L_EFFECTIVE) = range(6)


@njit
def _row(score, learn, par, short, mean, var, nobs, out):  # pragma: no cover - compiled
    """One cycle of one indicator row: ``score`` (n_reg) -> ``out`` (n_reg); state updated in place."""
    rs = par[L_SHORT_RATE]
    inv_h = par[L_INV_HISTORY]
    lo = math.exp(-par[L_CAP])
    min_sd = par[L_MIN_SD]
    c = par[L_EXPONENT]
    eff = par[L_EFFECTIVE]
    hist = 1.0 / inv_h
    for r in range(score.shape[0]):
        s = np.float64(score[r])
        if not (s == s):
            out[r] = math.nan
            continue
        om = 1.0 - s
        om = om if om > lo else lo
        om = om if om < 1.0 else 1.0
        u = -math.log(om)
        k = np.int64(nobs[r])
        m = np.float64(mean[r])
        v = np.float64(var[r])
        a = u if k == 0 else np.float64(short[r]) + rs * (u - np.float64(short[r]))
        if k >= learn:
            sd = math.sqrt(v)
            sd = sd if sd > min_sd else min_sd
            z = (a - m) / sd
            if z > 0.0:
                n_eff = eff * (k if k < hist else hist)
                if n_eff > 0.0 and n_eff < 1e4:    # predictive t of the learned mean and variance
                    nu = n_eff - 1.0 if n_eff > 2.0 else 1.0
                    p = t_sf(z / math.sqrt(1.0 + 1.0 / n_eff), nu)
                else:                               # effective 0, or a sample large enough for the Gaussian
                    p = 0.5 * math.erfc(z * _INV_SQRT2)
                out[r] = 1.0 - p ** c
            else:
                out[r] = 0.0
        else:
            out[r] = math.nan
        rate = 1.0 / (k + 1.0)
        rate = rate if rate > inv_h else inv_h
        d = a - m
        short[r] = a
        mean[r] = m + rate * d
        var[r] = (1.0 - rate) * (v + rate * d * d)
        nobs[r] = k + 1 if k < NOBS_MAX else NOBS_MAX


@njit(parallel=True)
def likelihood_kernel(score, learn, par, short, mean, var, nobs, out):  # pragma: no cover - compiled
    """Cycles in order: ``score`` (n_t, n_ind, n_reg) -> ``out`` (same shape, float32).

    ``short, mean, var`` (float32) and ``nobs`` (int16) are the (n_ind, n_reg) state,
    updated in place; ``learn`` the observed cycles before a series scores; ``par`` the
    vector of :meth:`LikelihoodParams.vector`.
    """
    n_t, n_ind, n_reg = score.shape
    for i in prange(n_ind):
        for t in range(n_t):
            _row(score[t, i], learn, par, short[i], mean[i], var[i], nobs[i], out[t, i])


@njit
def likelihood_kernel_serial(score, learn, par, short, mean, var, nobs, out):  # pragma: no cover - compiled
    """:func:`likelihood_kernel` on one thread (the same rows in the same order: equal results),
    for a single indicator, where waking a thread pool costs more than the work."""
    n_t, n_ind, n_reg = score.shape
    for i in range(n_ind):
        for t in range(n_t):
            _row(score[t, i], learn, par, short[i], mean[i], var[i], nobs[i], out[t, i])


class Likelihood:
    """The anomaly-likelihood layer over ``n_ind x n_reg`` series (state in numpy arrays).

    Parameters
    ----------
    n_ind, n_reg : int
        Shape of the detector score matrix it follows.
    **params
        Fields of :class:`engine.detect.params.LikelihoodParams`.

    >>> lik = Likelihood(2, 3, learn=5)
    >>> lik.update(np.full((2, 3), 0.5, dtype=np.float32)).shape, lik.nbytes_per_series()
    ((2, 3), 14)
    """

    _STATE = ("short", "mean", "var", "nobs")

    def __init__(self, n_ind: int, n_reg: int, **params):
        self.params = LikelihoodParams(**params)
        if self.params.learn > NOBS_MAX:
            raise ValueError(f"learn must be at most {NOBS_MAX} (int16 counter), got {self.params.learn}")
        self.shape = (int(n_ind), int(n_reg))
        self.short = np.zeros(self.shape, dtype=np.float32)
        self.mean = np.zeros(self.shape, dtype=np.float32)
        self.var = np.zeros(self.shape, dtype=np.float32)
        self.nobs = np.zeros(self.shape, dtype=np.int16)
        self._par = self.params.vector()

    def nbytes_per_series(self) -> int:
        return int(sum(getattr(self, n).itemsize for n in self._STATE))

    def run(self, scores) -> np.ndarray:
        """Likelihood scores of many cycles, in order: ``scores`` (n_t, n_ind, n_reg) -> float32."""
        s = np.asarray(scores)
        if s.ndim != 3 or s.shape[1:] != self.shape:
            raise ValueError(f"scores must have shape (n_t, {self.shape[0]}, {self.shape[1]}), got {s.shape}")
        if s.dtype not in (np.float32, np.float64):
            s = s.astype(np.float64)
        s = np.ascontiguousarray(s)
        out = np.empty(s.shape, dtype=np.float32)
        if s.shape[0]:
            kernel = likelihood_kernel if self.shape[0] > 1 else likelihood_kernel_serial
            kernel(s, np.int64(self.params.learn), self._par, self.short, self.mean, self.var,
                              self.nobs, out)
        return out

    def update(self, score) -> np.ndarray:
        """Likelihood scores of one cycle: ``score`` (n_ind, n_reg) -> float32 (n_ind, n_reg)."""
        s = np.asarray(score)
        if s.shape != self.shape:
            raise ValueError(f"score must have shape {self.shape}, got {s.shape}")
        return self.run(s[None])[0]

    def arrays(self) -> dict:
        """The state arrays (for checkpoints next to :class:`engine.detect.DetectorState`)."""
        return {n: getattr(self, n) for n in self._STATE}

    def load_arrays(self, arrays: dict) -> None:
        """Restore state saved from :meth:`arrays` (same shape and dtypes)."""
        for n in self._STATE:
            a = np.asarray(arrays[n])
            ref = getattr(self, n)
            if a.shape != ref.shape or a.dtype != ref.dtype:
                raise ValueError(f"likelihood state {n} is {a.dtype}{list(a.shape)}, need {ref.dtype}{list(ref.shape)}")
            setattr(self, n, a.copy())
