"""Slow, obvious plain-numpy references for the simulator's numba kernels (engine/sim).

Each function has the signature of its kernel and writes into the same outputs, so tests and
benchmarks can swap one for the other.
"""

from __future__ import annotations

import numpy as np


def _prevalence(state, n, f_p, f_a, tau):
    base = f_p * state[..., 2] + f_a * state[..., 4]
    with np.errstate(invalid="ignore", divide="ignore"):
        x_h = np.where(n > 0, (base + state[..., 3]) / n, 0.0)
        x_o = np.where(n > 0, (base + (1 - tau) * state[..., 3]) / n, 0.0)
    return x_h, x_o


def _places(indptr, indices, m, e, x, n_places):
    home = np.repeat(np.arange(indptr.size - 1), np.diff(indptr))
    num = np.zeros((n_places, x.shape[1]))
    np.add.at(num, indices, m[:, None] * x[home])
    den = np.bincount(indices, weights=m, minlength=n_places)
    prev = np.divide(num, den[:, None], out=np.zeros_like(num), where=den[:, None] > 0)
    y = np.zeros_like(x)
    np.add.at(y, home, e[:, None] * prev[indices])
    return y


def force_of_infection_ref(state, n, cloc, beta, f_p, f_a, tau, school, other, masks, venue_share,
                           w_indptr, w_indices, w_m, w_e, v_indptr, v_indices, v_m, v_e, n_venues, lam):
    x_h, x_o = _prevalence(state, n, f_p, f_a, tau)
    y_w = _places(w_indptr, w_indices, w_m, w_e, x_o, n.shape[0])
    y_v = _places(v_indptr, v_indices, v_m, v_e, x_o, n_venues)
    vs = venue_share[:, None]
    lam[:] = beta * (x_h @ cloc[0].T + masks * (school * (x_o @ cloc[2].T) + y_w @ cloc[1].T
                                                + other * (1 - vs) * (x_o @ cloc[3].T) + vs * (y_v @ cloc[3].T)))


def transition_ref(state, lam, dt, p_e, p_p, p_i, has_pre, clinical, tau, stochastic,
                   new_inf, new_onset, new_det):
    s, e, p, c, a = (state[..., k].copy() for k in range(5))
    p_inf = -np.expm1(-lam * dt)
    if stochastic:
        draw = lambda k, q: np.random.binomial(k.astype(np.int64), q).astype(np.float64)
    else:
        draw = lambda k, q: k * q
    n_inf, n_e = draw(s, p_inf), draw(e, p_e)
    n_p = draw(p, p_p) if has_pre else np.zeros_like(p)
    n_c, n_a = draw(c, p_i), draw(a, p_i)
    n_sym = n_p if has_pre else n_e
    n_cl = draw(n_sym, np.broadcast_to(clinical, n_sym.shape))
    n_det = draw(n_cl, tau)
    state[..., 0] = s - n_inf
    state[..., 1] = e + n_inf - n_e
    if has_pre:
        state[..., 2] = p + n_e - n_p
    state[..., 3] = c + n_cl - n_c
    state[..., 4] = a + n_sym - n_cl - n_a
    state[..., 5] += n_c + n_a
    new_inf += n_inf
    new_onset += n_cl
    new_det += n_det


def epidemic_day_ref(state, n, cloc, beta, f_p, f_a, tau, school, other, masks, venue_share,
                     w_indptr, w_indices, w_m, w_e, v_indptr, v_indices, v_m, v_e, n_venues,
                     substeps, p_e, p_p, p_i, has_pre, clinical, stochastic, new_inf, new_onset, new_det):
    new_inf[:] = 0.0
    new_onset[:] = 0.0
    new_det[:] = 0.0
    lam = np.zeros(n.shape)
    for _ in range(substeps):
        force_of_infection_ref(state, n, cloc, beta, f_p, f_a, tau, school, other, masks, venue_share,
                               w_indptr, w_indices, w_m, w_e, v_indptr, v_indices, v_m, v_e, n_venues, lam)
        transition_ref(state, lam, 1.0 / substeps, p_e, p_p, p_i, has_pre, clinical, tau, stochastic,
                       new_inf, new_onset, new_det)


def prem_kernel_ref(beta, mult, cloc, n, i0, kappa, gamma, s_out, e_out, i_out, inc_out):
    D = beta.size
    s = np.tile(n - i0, (D, 1))
    e = np.zeros_like(s)
    i = np.tile(i0, (D, 1))
    s_out[0], e_out[0], i_out[0] = s.sum(1), 0.0, i.sum(1)
    for t in range(mult.shape[0]):
        c = np.einsum("la,laj->aj", mult[t], cloc)
        lam = beta[:, None] * ((i / n) @ c.T)
        new_e, new_i, new_r = lam * s, kappa * e, gamma * i
        s, e, i = s - new_e, e + new_e - new_i, i + new_i - new_r
        s_out[t + 1], e_out[t + 1], i_out[t + 1] = s.sum(1), e.sum(1), i.sum(1)
        inc_out[t] = new_i.sum(1)


# ---------------------------------------------------------------- feed noise (engine/sim/noise.py)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def bits_ref(key, i):
    """SplitMix64: the i-th 64-bit numbers of stream ``key`` (vectorised over ``i``)."""
    with np.errstate(over="ignore"):
        z = np.uint64(key) + (np.asarray(i, dtype=np.uint64) + np.uint64(1)) * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def uniform_ref(key, i):
    return (bits_ref(key, i) >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def irwin_hall_ref(key, i):
    h = bits_ref(key, i)
    low = np.uint64(0xFFFF)
    parts = [((h >> np.uint64(s)) & low).astype(np.float64) for s in (0, 16, 32, 48)]
    return ((sum(parts) + 2.0) / 65536.0 - 2.0) * np.sqrt(3.0)


def noisy_readings_ref(signal, sd, lo, hi, integer, key, out):
    M = len(sd)
    i = np.arange(signal.size)
    m = i % M
    v = np.where(sd[m] > 0, signal * (1.0 + sd[m] * irwin_hall_ref(key, i)), signal)
    v = np.where(integer[m], np.floor(v + 0.5), v)
    out[:] = np.clip(v, lo[m], hi[m])


def event_offsets_ref(counts, profile, cdf, cycle_ns, key, out):
    n = int(counts.sum())
    j = np.arange(n)
    cell = np.repeat(np.arange(counts.size), counts)
    u = uniform_ref(key, 2 * j)
    rows = cdf[profile[cell]]
    cyc = np.array([np.searchsorted(r, x, side="right") for r, x in zip(rows, u)], dtype=np.int64)
    out[:] = cyc * cycle_ns + (uniform_ref(key, 2 * j + 1) * cycle_ns).astype(np.int64)
