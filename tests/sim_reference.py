"""Slow, obvious plain-numpy references for the simulator's numba kernels (engine/sim).

Each function has the signature of its kernel and writes into the same outputs, so tests and
benchmarks can swap one for the other.
"""

from __future__ import annotations

import math

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


def day_key_ref(seed, day, name):
    """``day_key`` in numpy unsigned arithmetic (the first implementation)."""
    import zlib

    h = np.uint64(zlib.crc32(name.encode()))
    with np.errstate(over="ignore"):
        z = np.uint64(seed) * _M1 ^ np.uint64(day) * _M2 ^ h * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1                # SplitMix64's finaliser
        z = (z ^ (z >> np.uint64(27))) * _M2
        return np.uint64(z ^ (z >> np.uint64(31)))


def noisy_grid_ref(signal, sd, lo, hi, integer, key, emitters, items, times, em_out, it_out, t_out, out):
    C, E, M = signal.shape
    noisy_readings_ref(np.ascontiguousarray(signal).ravel(), sd, lo, hi, integer, key, out)
    em_out[:] = np.tile(np.repeat(emitters, M), C)
    it_out[:] = np.tile(items, C * E)
    t_out[:] = np.repeat(times, E * M)


# ---------------------------------------------------------------- signal kernels (engine/sim/feedkernels.py)
# the numpy formulas of engine.sim.generators.gen_network_readings / gen_crowds before fusion
def _pow(x, y):
    """``x ** y`` element by element with ``math.pow`` (libm's correctly rounded ``pow``)."""
    return np.array([math.pow(v, y) for v in np.asarray(x, dtype=float).ravel()]).reshape(np.shape(x))


def road_signal_ref(prof, base, act, k, capk, vfree, sig):
    vol = base[None, :] * prof[:, None] * act[None, :] * k
    ratio = vol / capk[None, :]
    speed = np.maximum(vfree[None, :] * (1.0 - 0.55 * np.minimum(ratio, 1.4) ** 2 / 1.96 * 1.6), 5.0)
    # the powers by libm's pow, value by value, as the kernel's ``**`` calls it: numpy's own array
    # power takes a SIMD path on AVX-512 hosts that can differ from it in the last bit
    occ = 100.0 * np.minimum(0.95, 0.85 * _pow(prof, 1.2)[:, None] * _pow(base * act * k / capk, 1.2)[None, :])
    cong = np.clip(4.0 * (vfree[None, :] / speed - 1.0), 0.0, 10.0)
    assert np.allclose(occ, 100.0 * np.minimum(0.95, 0.85 * ratio ** 1.2), rtol=1e-13, atol=0)   # separable power
    sig[:] = np.stack([speed, vol, occ, cong], axis=-1)


def water_signal_ref(res_prof, work_prof, a, h, b, burst, rain, sig):
    flow = a[None, :] * res_prof[:, None] * h[None, :] + b[None, :] * work_prof[:, None]
    pressure = (0.36 - 0.05 * (flow / (flow.mean(axis=0, keepdims=True) + 1e-9) - 1.0)) * \
        (1.0 - 0.6 * np.minimum(burst, 1.0))
    flow = flow * (1.0 + 0.8 * burst)
    turb = 0.35 + 15.0 * burst + 0.2 * rain
    chlor = 0.6 * (1.0 - 0.5 * np.minimum(burst, 1.0)) * np.ones_like(flow)
    sig[:] = np.stack([pressure, flow, turb, chlor], axis=-1)


def power_signal_ref(res_prof, work_q, a, b, outage, cycle_minutes, sig):
    load = a[None, :] * res_prof[:, None] + b[None, :] * work_q[:, None]
    load = load * (1.0 - 0.97 * outage)
    volt = (228.0 - 6.0 * load / (load.mean(axis=0, keepdims=True) + 1e-9) + 6.0) * (1.0 - outage)
    sig[:] = np.stack([load, volt, load * cycle_minutes / 60.0], axis=-1)


def crowd_signal_ref(kind, p_in, p_occ, a, b, cap, adm, boost, prof_in, prof_occ, cycle_minutes, check,
                     work_level, office_queue, hospital_queue, sig):
    C = sig.shape[0]
    pin, pocc = prof_in[p_in].T, prof_occ[p_occ].T                    # (C, E)
    ent = a[None, :] * pin / C
    zero = np.zeros_like(ent)
    occ_v = b[None, :] * pocc
    ent_p = ent * (1.0 + 1.0 * boost)
    occ_p = ent_p * 6.0 / cycle_minutes
    occ_m = ent * 4.0 / cycle_minutes
    ent_o = a[None, :] * 1.3 * pin / C
    occ_h = ent * 60.0 / cycle_minutes
    k = np.broadcast_to(kind[None, :], ent.shape)
    sig[..., 0] = np.select([k == 2, k == 4, k < 0], [ent_p, ent_o, zero], ent)
    sig[..., 1] = np.select(
        [k == 0, k == 1, k == 2, k == 3, k == 4, k == 5, k == 6],
        [occ_v, ent * 1.0 / cycle_minutes, occ_p, occ_m, a[None, :] * pocc * work_level, occ_h, a[None, :] * pocc],
        zero)
    sig[..., 2] = np.select(
        [k == 0, k == 1, k == 2, k == 3, k == 4, k == 5, k == 6],
        [0.15 * np.maximum(occ_v / np.maximum(adm, 1e-3)[None, :] - occ_v, 0.0) + 0.01 * occ_v,
         ent * 0.08 * check, np.maximum(occ_p - 0.5 * cap[None, :], 0.0) + 10.0 * boost * pocc,
         0.3 * np.maximum(occ_m - 0.3 * cap[None, :], 0.0), 0.01 * ent_o * office_queue,
         0.05 * occ_h * hospital_queue, 0.02 * ent],
        zero)
