"""The epidemic model against SEIR theory on one homogeneous population (no interventions)."""

import numpy as np
import pytest

from engine.sim import ContactMatrices, EpiParams, MiniCity, Scenario, simulate

SHARE = np.full(16, 1 / 16)
CONTACTS = ContactMatrices.homogeneous(10.0, SHARE)
FINAL_SIZE = {1.5: 0.583, 2.0: 0.797, 3.0: 0.940}


def _final_size(r0):
    z = 0.5
    for _ in range(200):
        z = 1 - np.exp(-r0 * z)
    return z


def _run(params, population, days, initial, mode="mean_field", seed=0, substeps=4):
    city = MiniCity.uniform(1, population, age_share=SHARE)
    sc = Scenario("2020-01-01", days, params=params, contacts=CONTACTS, initial_infections=initial,
                  mode=mode, substeps=substeps)
    return simulate(city, sc, seed=seed).totals()


@pytest.mark.parametrize("r0", [1.5, 2.0, 3.0])
@pytest.mark.parametrize("kind", ["seir", "full"])
def test_final_size_mean_field(r0, kind):
    params = EpiParams.seir(r0, 3.0, 5.0) if kind == "seir" else EpiParams(R0=r0)
    tot = _run(params, 1_000_000, 500 if r0 == 1.5 else 300, 10)
    z = tot["cumulative_infections"].iloc[-1] / 1_000_000
    assert abs(_final_size(r0) - FINAL_SIZE[r0]) < 5e-4
    assert abs(z - _final_size(r0)) < 0.01
    assert tot["infectious"].iloc[-1] < 1.0          # the epidemic is over


def test_final_size_stochastic_mean_over_seeds():
    """Stated tolerance: the mean attack rate over 8 seeds is within 0.01 of z (R0 = 2)."""
    z = np.mean([_run(EpiParams.seir(2.0, 3.0, 5.0), 100_000, 250, 50, mode="stochastic", seed=s)
                 ["cumulative_infections"].iloc[-1] / 100_000 for s in range(8)])
    assert abs(z - FINAL_SIZE[2.0]) < 0.01


def test_early_growth_rate_matches_seir_formula():
    """r = (-(s+g) + sqrt((s-g)^2 + 4 s g R0)) / 2 within 5 %; 8 sub-steps per day (dt = 3 h).

    The exponential-rate transitions converge to the continuous model as dt -> 0; with the
    default 4 sub-steps r is 4.3 % low for these durations, with 8 it is 2.2 % low."""
    r0, d_e, d_i = 2.0, 3.0, 5.0
    s, g = 1 / d_e, 1 / d_i
    r = (-(s + g) + np.sqrt((s - g) ** 2 + 4 * s * g * r0)) / 2
    tot = _run(EpiParams.seir(r0, d_e, d_i), 10 ** 9, 70, 10, substeps=8)
    y = np.log((tot["E"] + tot["infectious"]).to_numpy())
    measured = (y[60] - y[40]) / 20
    assert abs(measured / r - 1) < 0.05


@pytest.mark.parametrize("r0", [1.5, 2.0, 3.0])
def test_exposed_plus_infectious_peak_at_herd_immunity(r0):
    tot = _run(EpiParams.seir(r0, 3.0, 5.0), 1_000_000, 400, 10)
    ei = (tot["E"] + tot["infectious"]).to_numpy()
    s = tot["S"].to_numpy() / 1_000_000
    crossing = int(np.argmax(s < 1 / r0))
    assert abs(int(np.argmax(ei)) - crossing) <= 1
