"""The epidemic kernels: force of infection by location and stochastic / mean-field transitions.

State is a float64 array ``(n_regions, 16, 6)`` over the compartments S, E, P, C, A, R (see
:data:`engine.sim.params.COMPARTMENTS`); in stochastic mode it holds whole numbers.

One day is ``substeps`` sub-steps of ``dt = 1 / substeps`` days. In each sub-step, from the state
at its start:

* prevalence ``x[r, j] = (f_P P + C + f_A A) / N`` at home and ``x_out`` with the tested share
  ``tau`` of clinical cases isolated (absent outside home);
* place prevalences at work regions and venues from the visitors' home prevalences
  (:mod:`engine.sim.mobility`), gathered back per home region (``y_work``, ``y_venue``);
* force of infection ``lam[r, i] = beta * (H x + masks * (school * Sc x_out + W y_work +
  other * (1 - vs_r) * O x_out + vs_r * O y_venue))[i]``;
* transitions with exponential rates: infection with probability ``1 - exp(-lam dt)``, and leaving
  E, P, C/A with ``1 - exp(-dt / duration)``; binomial draws (stochastic) or their expectations
  (mean-field). P splits into C (clinical fraction by age) and A.

With ``presymptomatic_days = 0`` E feeds C and A directly.
"""

from __future__ import annotations

import numpy as np

from engine.config import njit
from engine.sim.contacts import spectral_radius
from engine.sim.params import EpiParams


def calibrate_beta(params: EpiParams, total_contacts: np.ndarray, dt: float) -> float:
    """Transmission rate giving ``params.R0`` for the baseline mixing ``total_contacts``.

    ``beta = R0 / rho(C diag(D))`` with ``D`` from :meth:`EpiParams.infectious_time`.

    >>> from engine.sim.contacts import ContactMatrices
    >>> c = ContactMatrices.homogeneous(10.0, np.full(16, 1 / 16)).total()
    >>> p = EpiParams.seir(2.0, 3.0, 5.0)
    >>> round(calibrate_beta(p, c, 0.25) * 10 * float(p.infectious_time(0.25)[0]), 12)
    2.0
    """
    d = params.infectious_time(dt)
    rho = spectral_radius(np.asarray(total_contacts) * d[None, :])
    if rho <= 0:
        raise ValueError("the baseline contact matrix has spectral radius 0: no transmission possible")
    return params.R0 / rho


@njit
def seed_rng(seed):
    """Seed numba's (thread-local) random generator used by the stochastic kernels."""
    np.random.seed(seed)


@njit
def _scatter(indptr, indices, m, x, num, den):
    """Visitor-weighted mean prevalence by place: ``num[k] = sum_r m x[r] / sum_r m``."""
    num[:, :] = 0.0
    den[:] = 0.0
    n_age = x.shape[1]
    for r in range(indptr.shape[0] - 1):
        xr = x[r]
        for q in range(indptr[r], indptr[r + 1]):
            k = indices[q]
            w = m[q]
            den[k] += w
            nk = num[k]
            for a in range(n_age):
                nk[a] += w * xr[a]
    for k in range(num.shape[0]):
        if den[k] > 0:
            for a in range(n_age):
                num[k, a] /= den[k]


@njit
def _gather(indptr, indices, e, num, y):
    """``y[r] = sum over r's links q of e[q] num[indices[q]]`` (in link order)."""
    n_age = y.shape[1]
    acc = np.zeros(n_age)
    for r in range(indptr.shape[0] - 1):
        acc[:] = 0.0
        for q in range(indptr[r], indptr[r + 1]):
            w = e[q]
            nk = num[indices[q]]
            for a in range(n_age):
                acc[a] += w * nk[a]
        for a in range(n_age):
            y[r, a] = acc[a]


@njit
def force_of_infection(state, n, cloc, beta, f_p, f_a, tau, school, other, masks, venue_share,
                       w_indptr, w_indices, w_m, w_e, v_indptr, v_indices, v_m, v_e, n_venues, lam):
    """Force of infection ``lam[r, i]`` (per susceptible per day) from ``state``; see module doc."""
    R, n_age = n.shape
    x_h = np.zeros((R, n_age))
    x_o = np.zeros((R, n_age))
    for r in range(R):
        for a in range(n_age):
            if n[r, a] > 0:
                base = f_p * state[r, a, 2] + f_a * state[r, a, 4]
                x_h[r, a] = (base + state[r, a, 3]) / n[r, a]
                x_o[r, a] = (base + (1.0 - tau) * state[r, a, 3]) / n[r, a]
    num_w = np.zeros((R, n_age))
    den_w = np.zeros(R)
    _scatter(w_indptr, w_indices, w_m, x_o, num_w, den_w)
    num_v = np.zeros((n_venues, n_age))
    den_v = np.zeros(n_venues)
    _scatter(v_indptr, v_indices, v_m, x_o, num_v, den_v)
    y_w = np.zeros((R, n_age))
    y_v = np.zeros((R, n_age))
    _gather(w_indptr, w_indices, w_e, num_w, y_w)
    _gather(v_indptr, v_indices, v_e, num_v, y_v)
    # contact sums over j for every i at once (i innermost: the same additions in the same order
    # as a dot product per i, but vectorisable); ct[l, j, i] = cloc[l, i, j]
    ct = np.empty((4, n_age, n_age))
    for l in range(4):
        for i in range(n_age):
            for j in range(n_age):
                ct[l, j, i] = cloc[l, i, j]
    h = np.empty(n_age)
    wk = np.empty(n_age)
    sc = np.empty(n_age)
    oc = np.empty(n_age)
    ov = np.empty(n_age)
    for r in range(R):
        vs = venue_share[r]
        h[:] = 0.0
        wk[:] = 0.0
        sc[:] = 0.0
        oc[:] = 0.0
        ov[:] = 0.0
        for j in range(n_age):
            xh, yw, xo, yv = x_h[r, j], y_w[r, j], x_o[r, j], y_v[r, j]
            for i in range(n_age):
                h[i] += ct[0, j, i] * xh
                wk[i] += ct[1, j, i] * yw
                sc[i] += ct[2, j, i] * xo
                oc[i] += ct[3, j, i] * xo
                ov[i] += ct[3, j, i] * yv
        for i in range(n_age):
            lam[r, i] = beta * (h[i] + masks * (school * sc[i] + wk[i] + other * (1.0 - vs) * oc[i] + vs * ov[i]))


@njit
def transition(state, lam, dt, p_e, p_p, p_i, has_pre, clinical, tau, stochastic,
               new_inf, new_onset, new_det):
    """One sub-step of transitions in place; adds the flows to ``new_inf``, ``new_onset`` (clinical
    onsets) and ``new_det`` (onsets tested, share ``tau``)."""
    R, n_age = lam.shape
    for r in range(R):
        for a in range(n_age):
            s = state[r, a, 0]
            e = state[r, a, 1]
            p = state[r, a, 2]
            c = state[r, a, 3]
            asym = state[r, a, 4]
            p_inf = -np.expm1(-lam[r, a] * dt)
            if stochastic:
                n_inf = float(np.random.binomial(int(s), p_inf)) if p_inf > 0 else 0.0
                n_e = float(np.random.binomial(int(e), p_e))
                n_p = float(np.random.binomial(int(p), p_p)) if has_pre else 0.0
                n_c = float(np.random.binomial(int(c), p_i))
                n_a = float(np.random.binomial(int(asym), p_i))
                n_sym = n_p if has_pre else n_e
                n_cl = float(np.random.binomial(int(n_sym), clinical[a]))
                n_det = float(np.random.binomial(int(n_cl), tau)) if tau > 0 else 0.0
            else:
                n_inf = s * p_inf
                n_e = e * p_e
                n_p = p * p_p if has_pre else 0.0
                n_c = c * p_i
                n_a = asym * p_i
                n_sym = n_p if has_pre else n_e
                n_cl = n_sym * clinical[a]
                n_det = n_cl * tau
            state[r, a, 0] = s - n_inf
            state[r, a, 1] = e + n_inf - n_e
            if has_pre:
                state[r, a, 2] = p + n_e - n_p
            state[r, a, 3] = c + n_cl - n_c
            state[r, a, 4] = asym + (n_sym - n_cl) - n_a
            state[r, a, 5] += n_c + n_a
            new_inf[r, a] += n_inf
            new_onset[r, a] += n_cl
            new_det[r, a] += n_det


@njit
def epidemic_day(state, n, cloc, beta, f_p, f_a, tau, school, other, masks, venue_share,
                 w_indptr, w_indices, w_m, w_e, v_indptr, v_indices, v_m, v_e, n_venues,
                 substeps, p_e, p_p, p_i, has_pre, clinical, stochastic, new_inf, new_onset, new_det):
    """One day (``substeps`` sub-steps) in place; zeroes then fills the day's flow arrays."""
    new_inf[:, :] = 0.0
    new_onset[:, :] = 0.0
    new_det[:, :] = 0.0
    lam = np.zeros(n.shape)
    dt = 1.0 / substeps
    for _ in range(substeps):
        force_of_infection(state, n, cloc, beta, f_p, f_a, tau, school, other, masks, venue_share,
                           w_indptr, w_indices, w_m, w_e, v_indptr, v_indices, v_m, v_e, n_venues, lam)
        transition(state, lam, dt, p_e, p_p, p_i, has_pre, clinical, tau, stochastic,
                   new_inf, new_onset, new_det)
