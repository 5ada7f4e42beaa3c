"""simulate(): conservation, seeding, mobility, venue caps, imports, incidents, outputs."""

import numpy as np
import pytest

from engine.sim import (ContactMatrices, EpiParams, MiniCity, MobilityParams, Scenario, compile_city,
                        daily_mobility, simulate)
from engine.sim.seir import calibrate_beta, force_of_infection

CITY = MiniCity.uniform(n_regions=4, residents=20_000, seed=3)


def scenario(days=40, **kw):
    kw.setdefault("mode", "mean_field")
    kw.setdefault("initial_infections", 40)
    return Scenario("2020-02-01", days, **kw)


def test_conservation_shapes_and_totals():
    res = simulate(CITY, scenario())
    assert res.state.shape == (40, 4, 16, 6)
    np.testing.assert_allclose(res.state.sum(axis=3), np.broadcast_to(CITY.age, (40, 4, 16)))
    tot = res.totals()
    s_drop = res.initial[..., 0].sum() - tot["S"].iloc[-1]
    assert tot["new_infections"].sum() == pytest.approx(s_drop)
    assert (res.new_onsets <= res.new_infections.sum() + 1e-9).all()
    ds = res.to_xarray()
    assert dict(ds["state"].sizes) == {"date": 40, "region": 4, "age": 16, "compartment": 6}
    assert ds["venue_occupancy"].sizes["venue"] == 16


def test_stochastic_is_seeded_and_integral():
    sc = scenario(mode="stochastic")
    a, b, c = simulate(CITY, sc, seed=5), simulate(CITY, sc, seed=5), simulate(CITY, sc, seed=6)
    np.testing.assert_array_equal(a.state, b.state)
    assert not np.array_equal(a.state, c.state)
    assert np.array_equal(a.state, np.round(a.state)) and (a.state >= 0).all()
    np.testing.assert_array_equal(a.state.sum(axis=3), np.broadcast_to(CITY.age, a.state.shape[:3]))


def test_single_region_mobility_reduces_to_age_mixing():
    """One neighbourhood, everything open: work, venues and community mixing give beta * C_all x."""
    city = MiniCity.uniform(1, 50_000)
    arr = compile_city(city)
    mob = daily_mobility(arr, np.ones(20), 1.0, np.full(4, np.inf))
    rng = np.random.default_rng(0)
    state = np.zeros((1, 16, 6))
    state[..., 3] = rng.integers(0, 50, 16)
    state[..., 0] = arr.n - state[..., 3]
    lam = np.zeros((1, 16))
    cm = ContactMatrices.china()
    force_of_infection(state, arr.n, cm.by_location, 0.03, 1.0, 0.5, 0.0, 1.0, 1.0, 1.0, arr.venue_share,
                       arr.work_indptr, arr.work_indices, mob.work_m, mob.work_e, arr.visit_indptr,
                       arr.visit_indices, mob.visit_m, mob.visit_e, arr.n_venues, lam)
    np.testing.assert_allclose(lam[0], 0.03 * cm.total() @ (state[0, :, 3] / arr.n[0]), rtol=1e-10)


def test_levers_reduce_transmission():
    base = simulate(CITY, scenario()).totals()["cumulative_infections"].iloc[-1]
    for levers in (dict(sector_share=0.0), dict(schools=False), dict(masks=0.5), dict(testing=0.8),
                   dict(other=0.2), dict(venue_cap=0.3)):
        sc = scenario()
        sc.at("2020-02-01", **levers)
        assert simulate(CITY, sc).totals()["cumulative_infections"].iloc[-1] < base, levers


def test_sector_reopening_drives_commuting():
    sc = scenario(days=10).at("2020-02-05", sector_share={"C": 0.0}).at("2020-02-08", sector_share=0.0)
    res = simulate(CITY, sc)
    full = res.workers_home[0].sum()
    assert full > 0 and res.workers_home[4].sum() == pytest.approx(full * 19 / 20)
    assert res.workers_home[7].sum() == 0 and res.workers_at[7].sum() == 0
    np.testing.assert_allclose(res.workers_home.sum(axis=1), res.workers_at.sum(axis=1))


def test_occupancy_caps_cut_infections_more_than_visits():
    """Chang et al. 2021: a cap removes the crowded visits, which carry most transmission."""
    mob = MobilityParams(venue_share=1.0)
    sc_base = scenario(days=60, mobility=mob)
    sc_cap = scenario(days=60, mobility=mob).at("2020-02-01", venue_cap=0.5)
    base, cap = simulate(CITY, sc_base), simulate(CITY, sc_cap)
    assert (cap.venue_occupancy <= 0.5 + 1e-12).all()
    visits_cut = 1 - cap.venue_visitors.sum() / base.venue_visitors.sum()
    arr = compile_city(CITY, mob)
    m0 = daily_mobility(arr, np.ones(20), 1.0, np.full(4, np.inf))
    m1 = daily_mobility(arr, np.ones(20), 1.0, np.full(4, 0.5))
    exposure_cut = 1 - m1.visit_e.sum() / m0.visit_e.sum()
    assert 0 < visits_cut < exposure_cut
    inf_cut = 1 - cap.totals()["new_infections"].iloc[:30].sum() / base.totals()["new_infections"].iloc[:30].sum()
    assert inf_cut > visits_cut


def test_imports_mean_field_expected_breaches():
    sc = scenario(days=10, initial_infections=0).at(
        "2020-02-01", arrivals=1000, key_area_share=0.5, key_area_prevalence=0.01, arrival_testing=1.0,
        test_sensitivity=0.8, arrival_quarantine=1.0, quarantine_compliance=0.9)
    res = simulate(CITY, sc)
    np.testing.assert_allclose(res.imported.sum(axis=1), 5 * 0.2 * 0.1)
    np.testing.assert_allclose(res.key_arrivals.sum(axis=1), 500)
    quiet = simulate(CITY, scenario(days=10, initial_infections=0))
    assert quiet.totals()["cumulative_infections"].iloc[-1] == 0


def test_imports_stochastic_seed_home_regions():
    sc = scenario(days=20, initial_infections=0, mode="stochastic").at(
        "2020-02-01", arrivals=2000, key_area_share=1.0, key_area_prevalence=0.01)
    res = simulate(CITY, sc, seed=1)
    assert res.imported.sum() > 0 and np.array_equal(res.imported, np.round(res.imported))
    assert res.arrivals.sum(axis=1).tolist() == [2000.0] * 20


def test_testing_detects_share_of_onsets():
    sc = scenario().at("2020-02-01", testing=0.4)
    res = simulate(CITY, sc)
    np.testing.assert_allclose(res.new_detected, 0.4 * res.new_onsets, rtol=1e-12, atol=1e-12)


def test_incidents_cluster_and_crowd_with_truth():
    sc = scenario(days=20, initial_infections=0).at("2020-02-01", testing=0.6)
    sc.incident("venue_cluster", "2020-02-05 18:00", "2020-02-07 06:00", regions=["R001", "R002"],
                indicators=["safety.epidemic.fever_clinic_visits.per10k_24h"], magnitude=30)
    sc.incident("market_crowd", "2020-02-10 07:00", "2020-02-10 11:00", regions=["R002"],
                indicators=["safety.public.crowding.max_1h"], magnitude=3.0)
    sc.incident("water_main_burst", "2020-02-12", "2020-02-13", regions=["R000"],
                indicators=["construction.lifelines.water_pressure.min_1h"])
    res = simulate(CITY, sc)
    # the cluster's 30 cases present in its window (18:00 on the 5th to 06:00 on the 7th: a
    # triangular curve, 2 (6/36)^2 = 1/18 on the 5th, 16/18 on the 6th, 1/18 on the 7th) in its
    # regions, by residents
    cl = res.cluster_cases
    np.testing.assert_allclose(cl.sum(axis=(1, 2)), 30 * np.eye(20)[4:7].T @ np.array([1, 16, 1]) / 18, atol=1e-9)
    n = res.arrays.n
    np.testing.assert_allclose(cl[5], 30 * 16 / 18 * n * (np.arange(len(n)) >= 1)[:, None]
                               * (np.arange(len(n)) <= 2)[:, None] / n[1:3].sum(), atol=1e-9)
    assert res.imported.sum() == 0
    # they are clinical cases of the epidemic: onsets of their day, tested at the day's rate
    assert res.new_onsets[:4].sum() == 0 and (res.new_onsets >= cl - 1e-12).all()
    assert res.new_onsets[4:7].sum() == pytest.approx(30, rel=0.05)     # (+ the first secondary onsets)
    np.testing.assert_allclose(res.new_detected, 0.6 * res.new_onsets, rtol=1e-12, atol=1e-12)   # testing 0.6
    assert res.totals()["cumulative_infections"].iloc[6] >= 30 - 1e-9
    np.testing.assert_allclose(res.state.sum(axis=3), np.broadcast_to(CITY.age, res.state.shape[:3]))
    st = simulate(CITY, sc, seed=4, mode="stochastic")
    assert st.cluster_cases.sum() == 30 and np.array_equal(st.cluster_cases, np.round(st.cluster_cases))
    assert st.cluster_cases[:, [0, 3]].sum() == 0 and st.cluster_cases[[*range(4), *range(7, 20)]].sum() == 0
    np.testing.assert_array_equal(st.cluster_cases, simulate(CITY, sc, seed=4, mode="stochastic").cluster_cases)
    truth = res.truth.to_frame()
    assert truth["kind"].tolist() == ["venue_cluster", "market_crowd", "water_main_burst"]
    site = truth["site"][0]
    assert site in set(CITY.sites.index[CITY.sites.region == "R001"])
    markets = np.flatnonzero((CITY.sites.kind == "wet_market").to_numpy() & (CITY.sites.region == "R002").to_numpy())
    v = res.venue_occupancy
    assert (v[9, markets] > v[8, markets]).all() and np.allclose(v[10, markets], v[8, markets])
    assert len(res.truth.active("2020-02-12 12:00")) == 1
    with pytest.raises(ValueError, match="outside the scenario period"):
        sc.incident("fraud_wave", "2020-03-01", "2020-03-02", regions=["R000"], indicators=["safety.order.fraud.count_24h"])
    with pytest.raises(ValueError, match="unknown region"):
        bad = scenario(days=5)
        bad.incident("venue_cluster", "2020-02-02", "2020-02-02", regions=["nowhere"], indicators=["a.b"])
        simulate(CITY, bad)


def test_scenario_and_simulate_validation():
    with pytest.raises(ValueError, match="mode='fast'"):
        scenario(mode="fast")
    with pytest.raises(ValueError, match="days=0"):
        Scenario("2020-01-01", 0)
    with pytest.raises(ValueError, match="seed=-1"):
        simulate(CITY, scenario(days=2), seed=-1)
    with pytest.raises(ValueError, match="initial_compartment='P'"):
        scenario(params=EpiParams.seir(2, 3, 5), initial_compartment="P")


def test_feeds_need_the_city_and_head_cuts_a_scenario():
    res = simulate(CITY, scenario(days=3))
    assert res.city is CITY and res.venue_admitted.shape == res.venue_occupancy.shape
    assert (res.venue_admitted <= 1).all()
    from engine.sim.ensemble import run_curves
    bare = simulate(None, scenario(days=2), arrays=compile_city(CITY))
    with pytest.raises(ValueError, match="no city"):
        next(bare.feeds_by_day())
    assert run_curves(compile_city(CITY), scenario(days=2), 0).shape[1] == 2
    sc = scenario(days=20).at("2020-02-15", masks=0.5)
    sc.incident("fraud_wave", "2020-02-03", "2020-02-04", regions=["R000"])
    sc.incident("fraud_wave", "2020-02-12", "2020-02-13", regions=["R000"])
    h = sc.head(10)
    assert h.days == 10 and len(h.incidents) == 1 and h.timeline.end == np.datetime64("2020-02-10")
    assert float(h.timeline.daily().masks[-1]) == 1.0 and sc.days == 20


def test_beta_calibration_matches_r0_of_china_matrices():
    p = EpiParams(R0=2.5)
    cm = ContactMatrices.china()
    beta = calibrate_beta(p, cm.total(), 0.25)
    k = beta * cm.total() * p.infectious_time(0.25)[None, :]
    assert np.max(np.abs(np.linalg.eigvals(k))) == pytest.approx(2.5)


def test_on_the_synthetic_city():
    city_mod = pytest.importorskip("engine.city")
    city = city_mod.City.synthetic(seed=0, neighbourhoods=40, streets=4, population=200_000)
    sc = Scenario("2020-02-01", 30, initial_infections=50, mode="stochastic")
    sc.at("2020-02-10", sector_share={"C": 0.5, "G": 0.3}, venue_cap={"mall": 0.5}, masks=0.8)
    res = simulate(city, sc, seed=2)
    assert res.state.shape == (30, 40, 16, 6)
    assert res.workers_home.sum() > 0 and res.venue_visitors.sum() > 0
    np.testing.assert_array_equal(res.state.sum(axis=3), np.broadcast_to(city.age, res.state.shape[:3]))
