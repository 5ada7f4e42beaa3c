"""Prem et al. (2020, Lancet Public Health) Wuhan model, vectorised over R0 draws (one numba kernel).

Deterministic discrete-time SEIR, 16 age bands, daily step, Wuhan closed, 1 Nov 2019 onwards::

    lambda_i = beta * sum_j C_ij(t) I_j / N_j
    S -= lambda S;  E += lambda S - kappa E;  I += kappa E - gamma I
    kappa = 1 - exp(-1 / 6.4),  gamma = 1 - exp(-1 / d_I)

with ``C(t) = sum_loc diag(m_loc(t)) C_loc`` (unsymmetrised China matrices) and, as in the
authors' code, ``beta = R0 * gamma / rho(S_all)`` where ``S_all`` is their symmetrised ``all``
matrix (:func:`engine.sim.contacts.symmetrise`); ``beta_from="raw"`` uses the raw matrix instead.
Initial state: ``p_infected * N / 16`` infectious people in every age band (their default 0.0002).

Interventions (:func:`prem_multipliers`): school winter break from 15 Jan 2020 (school 0, other 0.5
for ages under 20); lockdown from 23 Jan (work 0.1, school 0, other 0.1); relaxation from the
chosen date (work 0.25, 0.5, 0.9 for two weeks each, school 0 and other 0.1 throughout); then
everything back to 1. "No intervention" keeps every multiplier at 1. A change dated ``D`` applies
to the step from ``D`` to ``D + 1``.

>>> out = prem_seir(np.array([2.2]), relax="2020-04-01", days=200)
>>> out["S"].shape
(201, 1)
"""

from __future__ import annotations

from importlib import resources

import numpy as np
from numba import prange

from engine.config import njit
from engine.sim.contacts import ContactMatrices, china_all, spectral_radius, symmetrise, wuhan_population

PREM_START = np.datetime64("2019-11-01")
PREM_DAYS = 427
"""Steps simulated: states from 2019-11-01 to 2021-01-01 (428 states, as in the authors' code)."""
LATENT_DAYS = 6.4


def prem_multipliers(relax=None, start=PREM_START, days: int = PREM_DAYS,
                     school_break="2020-01-15", lockdown="2020-01-23", work_steps=(0.25, 0.5, 0.9),
                     step_days: int = 14) -> np.ndarray:
    """Contact multipliers per step, location and respondent age band: ``(days, 4, 16)``.

    ``relax=None`` is the no-intervention scenario (all ones).

    >>> m = prem_multipliers("2020-03-01")
    >>> day = lambda s: int((np.datetime64(s) - PREM_START).astype(int))
    >>> m[day("2020-02-01"), :, 0].tolist(), float(m[day("2020-03-20"), 1, 5])
    ([1.0, 0.1, 0.0, 0.1], 0.5)
    """
    m = np.ones((days, 4, 16))
    if relax is None:
        return m
    day = lambda s: int((np.datetime64(s, "D") - np.datetime64(start, "D")).astype(int))
    sb, lk, rl = day(school_break), day(lockdown), day(relax)
    if not (0 <= sb <= lk <= rl):
        raise ValueError(f"expected start <= school break <= lockdown <= relax, got {school_break}, {lockdown}, {relax}")
    t = np.arange(days)
    brk = (t >= sb) & (t < lk)
    m[brk, 2, :] = 0.0
    m[brk, 3, :4] = 0.5
    works = [0.1, *work_steps]
    ends = [rl + step_days * k for k in range(len(work_steps) + 1)]
    for k, w in enumerate(works):
        sel = (t >= (lk if k == 0 else ends[k - 1])) & (t < ends[k])
        m[sel, 1, :] = w
        m[sel, 2, :] = 0.0
        m[sel, 3, :] = 0.1
    return m


@njit(parallel=True)
def prem_kernel(beta, mult, cloc, n, i0, kappa, gamma, s_out, e_out, i_out, inc_out):
    """Prem SEIR for every draw (prange over draws). Outputs ``(days + 1, draws)`` totals of S, E,
    I and ``(days, draws)`` incidence (E -> I per step)."""
    n_draws = beta.shape[0]
    days = mult.shape[0]
    n_age = n.shape[0]
    for d in prange(n_draws):
        s = n - i0
        e = np.zeros(n_age)
        i = i0.copy()
        lam = np.zeros(n_age)
        s_out[0, d] = s.sum()
        e_out[0, d] = 0.0
        i_out[0, d] = i.sum()
        for t in range(days):
            for a in range(n_age):
                acc = 0.0
                for j in range(n_age):
                    c = 0.0
                    for loc in range(4):
                        c += mult[t, loc, a] * cloc[loc, a, j]
                    acc += c * i[j] / n[j]
                lam[a] = beta[d] * acc
            inc = 0.0
            for a in range(n_age):
                new_e = lam[a] * s[a]
                new_i = kappa * e[a]
                new_r = gamma * i[a]
                s[a] -= new_e
                e[a] += new_e - new_i
                i[a] += new_i - new_r
                inc += new_i
            s_out[t + 1, d] = s.sum()
            e_out[t + 1, d] = e.sum()
            i_out[t + 1, d] = i.sum()
            inc_out[t, d] = inc


def prem_beta(r0, dur_inf: float = 7.0, beta_from: str = "symmetrised") -> np.ndarray:
    """``beta = R0 * gamma / rho`` with ``rho`` of the symmetrised (authors' code) or raw ``all``."""
    gamma = -np.expm1(-1.0 / dur_inf)
    if beta_from == "symmetrised":
        rho = spectral_radius(symmetrise(china_all(), wuhan_population()))
    elif beta_from == "raw":
        rho = spectral_radius(china_all())
    else:
        raise ValueError(f"beta_from={beta_from!r}: expected 'symmetrised' or 'raw'")
    return np.asarray(r0, dtype=np.float64) * gamma / rho


def prem_seir(r0, relax=None, dur_inf: float = 7.0, p_infected: float = 0.0002, days: int = PREM_DAYS,
              beta_from: str = "symmetrised") -> dict:
    """Run the Prem model for every R0 in ``r0``; returns totals ``S``, ``E``, ``I`` of shape
    ``(days + 1, draws)``, ``incidence`` ``(days, draws)`` and ``dates`` ``(days + 1,)``."""
    r0 = np.atleast_1d(np.asarray(r0, dtype=np.float64))
    if (r0 <= 0).any() or not np.all(np.isfinite(r0)):
        raise ValueError(f"R0 draws must be positive, got min {r0.min()}")
    if not (0 < p_infected < 1):
        raise ValueError(f"p_infected={p_infected!r}: expected a share in (0, 1)")
    n = wuhan_population()
    i0 = np.full(16, p_infected * n.sum() / 16)
    mult = prem_multipliers(relax, days=days)
    beta = prem_beta(r0, dur_inf, beta_from)
    D = r0.size
    out = {k: np.zeros((days + 1, D)) for k in ("S", "E", "I")}
    out["incidence"] = np.zeros((days, D))
    prem_kernel(beta, mult, np.ascontiguousarray(ContactMatrices.china().by_location), n, i0,
                -np.expm1(-1.0 / LATENT_DAYS), -np.expm1(-1.0 / dur_inf),
                out["S"], out["E"], out["I"], out["incidence"])
    out["dates"] = PREM_START + np.arange(days + 1).astype("timedelta64[D]")
    out["N"] = float(n.sum())
    return out


def r0_posterior_draws(n_draws: int = 200, seed: int = 123) -> np.ndarray:
    """``n_draws`` R0 values drawn without replacement from the pooled 2020-01-01..01-23 rows of
    the shipped posterior (``out_R0.csv``, 23 x 200 = 4,600 values), as Prem et al. did.

    >>> d = r0_posterior_draws(5, seed=1)
    >>> d.shape, bool((d > 0).all())
    ((5,), True)
    """
    base = resources.files("engine").joinpath("data", "prem")
    dates = np.array(base.joinpath("out_date.csv").read_text().split()[1:], dtype="datetime64[D]")
    rows = [line.split(",") for line in base.joinpath("out_R0.csv").read_text().strip().splitlines()[1:]]
    values = np.array(rows, dtype=np.float64)
    if values.shape[0] != dates.shape[0]:
        raise ValueError(f"out_R0.csv has {values.shape[0]} rows but out_date.csv {dates.shape[0]} dates")
    sel = (dates >= np.datetime64("2020-01-01")) & (dates <= np.datetime64("2020-01-23"))
    pool = values[sel].ravel()
    if not (1 <= n_draws <= pool.size):
        raise ValueError(f"n_draws={n_draws}: expected 1..{pool.size}")
    return np.random.default_rng(seed).choice(pool, size=n_draws, replace=False)


def _iqr(x):
    q = np.percentile(x, [25, 50, 75])
    return float(q[1]), [float(q[0]), float(q[2])]


def reproduce(n_draws: int = 200, seed: int = 123, dur_inf: float = 7.0, p_infected: float = 0.0002,
              beta_from: str = "symmetrised") -> tuple[dict, dict]:
    """The paper's comparison: no intervention, relaxation from 1 March and from 1 April.

    Returns ``(summary, runs)``: ``summary`` is JSON-ready (reductions in cumulative infections of
    April against no intervention at 2020-07-01 and 2020-12-31, median and IQR over draws; peak
    dates; cumulative infections at 1 July), ``runs`` maps scenario name to :func:`prem_seir`.
    """
    r0 = r0_posterior_draws(n_draws, seed)
    scen = {"no_intervention": None, "march": "2020-03-01", "april": "2020-04-01"}
    runs = {k: prem_seir(r0, v, dur_inf, p_infected, beta_from=beta_from) for k, v in scen.items()}
    dates = runs["april"]["dates"]
    N = runs["april"]["N"]
    idx = lambda s: int(np.flatnonzero(dates == np.datetime64(s))[0])
    cum = {k: N - v["S"] for k, v in runs.items()}
    summary = {"n_draws": int(n_draws), "seed": int(seed), "dur_inf": dur_inf, "p_infected": p_infected,
               "beta_from": beta_from, "r0_median": float(np.median(r0)),
               "paper": {"reduction_mid2020": 0.92, "reduction_mid2020_iqr": [0.66, 0.97],
                         "reduction_end2020": 0.24, "reduction_end2020_iqr": [0.13, 0.90]}}
    for key, day in (("mid2020", "2020-07-01"), ("end2020", "2020-12-31")):
        t = idx(day)
        red = 1.0 - cum["april"][t] / cum["no_intervention"][t]
        summary[f"reduction_{key}"], summary[f"reduction_{key}_iqr"] = _iqr(red)
        summary[f"reduction_{key}_vs_march"], summary[f"reduction_{key}_vs_march_iqr"] = \
            _iqr(1.0 - cum["april"][t] / cum["march"][t])
    t = idx("2020-07-01")
    summary["cumulative_infections_2020-07-01"] = {k: float(np.median(v[t])) for k, v in cum.items()}
    peaks = {}
    for k, v in runs.items():
        inc = v["incidence"]                           # step t -> t + 1, dated t + 1
        first = np.argmax(inc, axis=0)
        entry = {"peak": str(dates[int(np.median(first)) + 1]),
                 "peak_iqr": [str(dates[int(q) + 1]) for q in np.percentile(first, [25, 75])]}
        if scen[k] is not None:
            t0 = idx(scen[k])
            second = t0 + np.argmax(inc[t0:], axis=0)
            entry["second_peak"] = str(dates[int(np.median(second)) + 1])
            entry["second_peak_iqr"] = [str(dates[int(q) + 1]) for q in np.percentile(second, [25, 75])]
        peaks[k] = entry
    summary["peak_dates"] = peaks
    return summary, runs
