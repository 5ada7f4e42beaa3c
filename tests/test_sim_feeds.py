"""Feeds out of the simulator: coverage of the catalog, bounds, ids, determinism, incidents, responses."""

from __future__ import annotations

import doctest

import numpy as np
import pandas as pd
import pytest

from engine.city import City
from engine.sim import Scenario, simulate
from engine.sim import feeds as simfeeds
from engine.sim import generators, incidents, noise
from engine.sim.feeds import feed_specs
from sim_reference import (crowd_signal_ref, day_key_ref, event_offsets_ref, noisy_grid_ref, noisy_readings_ref,
                           power_signal_ref, road_signal_ref, water_signal_ref)

SPECS = feed_specs()
EVENT_FEEDS = [f for f, s in SPECS.items() if s["kind"] == "events"]
CITY = City.synthetic(seed=3, neighbourhoods=24, streets=3, population=90_000)
REG = list(CITY.regions.index)


def _sites(kind):
    s = CITY.sites
    return s[s.kind == kind]


def _region_with(kind, skip=()):
    return next(r for r in _sites(kind).region if r not in skip)


# regions chosen so that each incident has the sites it needs and they do not overlap
PHARM_REGIONS = sorted(set(_sites("pharmacy").region))[:3]
MARKET_REGION = _region_with("wet_market", PHARM_REGIONS)
PRICE_REGIONS = sorted(set(_sites("wet_market").region) - set(PHARM_REGIONS) - {MARKET_REGION})[:2]
USED = set(PHARM_REGIONS) | {MARKET_REGION} | set(PRICE_REGIONS)
FREE = [r for r in REG if r not in USED]
_SENS = CITY.sensors
WATER = next(r for r in FREE if ((_SENS.kind == "water_meter") & (_SENS.region == r)).any())
POWER = next(r for r in FREE if r != WATER and ((_SENS.kind == "power_meter") & (_SENS.region == r)).any())
CLUSTER = _region_with("mall", USED | {WATER, POWER})
FRAUD = [r for r in FREE if r not in (WATER, POWER, CLUSTER)][:6]
_K = REG.index(CLUSTER)
_ADJ = CITY.adj_indices[CITY.adj_indptr[_K]:CITY.adj_indptr[_K + 1]]
CLUSTER_REGIONS = [CLUSTER] + list(CITY.regions.index[_ADJ][:2])      # the cluster's three neighbourhoods
CLUSTER_WINDOW = ("2020-02-04 18:00", "2020-02-07 18:00")


def base_scenario(days=8, **at):
    sc = Scenario("2020-02-03", days, initial_infections=0, mode="mean_field")   # 2020-02-03 is a Monday
    levers = dict(sector_share=0.3, other=0.5, masks=0.7, testing=0.5, arrivals=300, key_area_share=0.2,
                  key_area_prevalence=0.01, arrival_quarantine=0.8, quarantine_compliance=0.9)
    levers.update(at)
    sc.at("2020-02-03", **levers)
    return sc


def with_incidents(sc):
    sc.incident("water_main_burst", "2020-02-05 09:00", "2020-02-05 15:00", regions=[WATER])
    sc.incident("power_outage", "2020-02-05 19:00", "2020-02-05 22:00", regions=[POWER])
    sc.incident("fraud_wave", "2020-02-05", "2020-02-08", regions=FRAUD, magnitude=10)
    sc.incident("mask_shortage", "2020-02-05", "2020-02-08", regions=PHARM_REGIONS)
    sc.incident("price_spike", "2020-02-05", "2020-02-07", regions=PRICE_REGIONS)
    sc.incident("market_crowd", "2020-02-06 07:00", "2020-02-06 11:00", regions=[MARKET_REGION], magnitude=2.5)
    sc.incident("venue_cluster", *CLUSTER_WINDOW, regions=CLUSTER_REGIONS, magnitude=60)
    return sc


@pytest.fixture(scope="module")
def runs():
    inc = simulate(CITY, with_incidents(base_scenario()), seed=11)
    twin = simulate(CITY, base_scenario(), seed=11)
    return inc, inc.feeds(), twin.feeds()


def _window(df, start, end):
    return df[(df.time >= pd.Timestamp(start)) & (df.time <= pd.Timestamp(end))]


# ------------------------------------------------------------------------------ kernels vs references
def test_noise_kernels_equal_their_references():
    rng = np.random.default_rng(0)
    key = noise.day_key(5, 7, "road_traffic")
    for M in (1, 3, 5):
        sig = rng.random(M * 400) * 100
        sd, lo, hi = rng.random(M) * 0.3, np.full(M, 5.0), np.full(M, 90.0)
        sd[0] = 0.0
        integer = rng.random(M) < 0.5
        a, b = np.empty_like(sig), np.empty_like(sig)
        noise.noisy_readings(sig, sd, lo, hi, integer, key, a)
        noisy_readings_ref(sig, sd, lo, hi, integer, key, b)
        np.testing.assert_array_equal(a, b)
    counts = rng.poisson(3, 50)
    prof = rng.integers(0, 3, 50)
    cdf = np.cumsum(rng.random((3, 96)), axis=1)
    cdf /= cdf[:, -1:]
    a, b = np.empty(counts.sum(), np.int64), np.empty(counts.sum(), np.int64)
    noise.event_offsets(counts, prof, cdf, 15 * 60 * 10**9, key, a)
    event_offsets_ref(counts, prof, cdf, 15 * 60 * 10**9, key, b)
    np.testing.assert_array_equal(a, b)
    assert a.min() >= 0 and a.max() < 86400 * 10**9


def _record_args(rng, C, E, M, key, bounds=(0.0, 1e9)):
    """Random record arguments of a noisy_grid kernel and two sets of output columns."""
    sd = rng.random(M) * 0.2
    sd[0] = 0.0
    lo, hi = np.full(M, bounds[0]), np.full(M, bounds[1])
    integer = rng.random(M) < 0.5
    em = rng.integers(0, 30000, E).astype(np.int16)
    it = rng.integers(0, 100, M).astype(np.int8)
    times = np.sort(rng.integers(0, 86400, C)).astype(np.int64) * 10**9
    n = C * E * M

    def outs():
        return np.empty(n, np.int16), np.empty(n, np.int8), np.empty(n, np.int64), np.empty(n)
    return (sd, lo, hi, integer, key, em, it, times), outs(), outs()


def _assert_same_columns(a, b):
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_grid_and_signal_kernels_equal_their_references():
    from engine.sim import feedkernels as fk

    rng = np.random.default_rng(1)
    key = noise.day_key(3, 4, "power_grid")
    for a in [(0, 0, "x"), (11, 119, "road_traffic"), (2**40, 5, "crowd_alerts/background")]:
        assert noise.day_key(*a) == day_key_ref(*a)
    C, E = 24, 37
    for M, sig in ((3, rng.random((C, E, 3)) * 50), (2, np.broadcast_to(rng.random((1, E, 2)) * 9, (C, E, 2)))):
        rec, a, b = _record_args(rng, C, E, M, key, (1.0, 40.0))
        noise.noisy_grid(sig, *rec, *a)
        noisy_grid_ref(sig, *rec, *b)
        _assert_same_columns(a, b)
    prof = rng.random(C) * 2
    burst = np.where(rng.random((C, E)) < 0.2, rng.random((C, E)) * 1.5, 0.0)
    outage = np.where(rng.random((C, E)) < 0.2, rng.random((C, E)), 0.0)
    base = 250 + 450 * rng.random(E)
    cases = [
        (fk.road_signal, road_signal_ref, 4,
         (prof, base, rng.random(E) * 1.5, 1.0, base * 2.0, 35 + 25 * rng.random(E))),
        (fk.water_signal, water_signal_ref, 4,
         (prof, rng.random(C), rng.random(E) * 10, 0.85 + 0.3 * rng.random(E), rng.random(E), burst, 0.7)),
        (fk.power_signal, power_signal_ref, 3,
         (prof, 0.15 + rng.random(C), rng.random(E) * 300, rng.random(E) * 100, outage, 15)),
    ]
    for kernel, ref, M, args in cases:
        a, b = np.empty((C, E, M)), np.empty((C, E, M))
        kernel(*args, a)
        ref(*args, b)
        np.testing.assert_array_equal(a, b)
    # crowd signal: every site formula, with and without a pharmacy boost
    kind = np.tile(np.arange(-1, 7), 5)
    E = kind.size
    prof_in, prof_occ = rng.random((3, C)) * 2, rng.random((3, C))
    args = (kind, rng.integers(0, 3, E), rng.integers(0, 3, E), rng.random(E) * 1e3, rng.random(E) * 50,
            rng.random(E) * 100 + 1, rng.random(E), np.where(rng.random((C, E)) < 0.3, rng.random((C, E)) * 2, 0.0),
            prof_in, prof_occ, 15, 0.65, 0.3, 0.2, 1.4)
    a, b = np.empty((C, E, 3)), np.empty((C, E, 3))
    fk.crowd_signal(*args, a)
    crowd_signal_ref(*args, b)
    np.testing.assert_array_equal(a, b)
    assert not a[:, kind < 0].any() and (a[:, kind >= 0] >= 0).all()


def test_row_counts():
    rng = np.random.default_rng(2)
    codes = np.repeat(rng.integers(-1, 9, 40), rng.integers(0, 50, 40)).astype(np.int8)
    counts = np.zeros(8, np.int64)
    simfeeds.count_codes(codes, counts)
    np.testing.assert_array_equal(counts, np.bincount(codes[(codes >= 0) & (codes < 8)], minlength=8))
    res = simulate(CITY, base_scenario(days=2), seed=4)
    day = next(res.feeds_by_day(threads=1))
    counted = day.rows_per_feed()                       # the generators' own counts
    day._rows = None
    assert day.rows_per_feed() == counted               # the same from the frames
    assert sum(counted.values()) == sum(day.n_rows.values())
    day.frames["events"] = day.events.iloc[:0]          # a new frame: counted again
    assert not any(f in day.rows_per_feed() for f in EVENT_FEEDS)


def test_noise_is_unbiased_and_bounded():
    out = np.empty(200_000)
    noise.noisy_readings(np.ones(200_000), np.array([1.0]), np.array([-10.0]), np.array([10.0]),
                         np.zeros(1, np.bool_), noise.day_key(1, 2, "x"), out)
    z = out - 1.0
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1.0) < 0.01 and np.abs(z).max() <= 2 * np.sqrt(3) + 1e-12


def test_doctests_of_the_feed_modules():
    for mod in (noise, simfeeds, generators, incidents):
        res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
        assert res.failed == 0, mod.__name__


# ------------------------------------------------------------------------------ schema and coverage
def test_every_feed_is_produced_in_schema_with_valid_values(runs):
    _, day, _ = runs
    produced = set(day.rows_per_feed())
    assert produced == set(SPECS), set(SPECS) ^ produced
    assert list(day.events.columns) == list(simfeeds.COLUMNS["events"])
    assert list(day.readings.columns) == list(simfeeds.COLUMNS["readings"])
    assert list(day.snapshots.columns) == list(simfeeds.COLUMNS["snapshots"])
    for kind, col in (("readings", "sensor"), ("snapshots", "entity"), ("events", "region")):
        assert isinstance(day.frames[kind][col].dtype, pd.CategoricalDtype)
        assert isinstance(day.frames[kind]["feed"].dtype, pd.CategoricalDtype)
    for kind, item in (("readings", "metric"), ("snapshots", "field")):
        df = day.frames[kind]
        assert df["value"].notna().all()
        for feed, g in df.groupby("feed", observed=True):
            spec = SPECS[feed][simfeeds.ITEM_KEY[kind]]
            assert set(g[item].astype(str)) == set(spec), feed          # every item of the feed
            lo = g[item].astype(str).map({k: v["min"] for k, v in spec.items()}).to_numpy(float)
            hi = g[item].astype(str).map({k: v["max"] for k, v in spec.items()}).to_numpy(float)
            v = g["value"].to_numpy()
            assert ((v >= lo) & (v <= hi)).all(), feed
    ev = day.events
    for feed, g in ev.groupby("feed", observed=True):
        assert set(g.category.astype(str)) <= set(SPECS[feed]["categories"]), feed
    fl = ev[ev.feed == "fraud_losses"]
    assert fl.value.notna().all() and (fl.value > 0).all() and (fl.value <= 1e8).all()
    assert ev[ev.feed != "fraud_losses"].value.isna().all()
    hot = ev[ev.feed == "hotline_tickets"]
    assert hot.channel.notna().all() and hot.text.notna().all()
    assert ev[ev.feed != "hotline_tickets"].channel.isna().all()
    assert set(hot.channel.astype(str)) == set(SPECS["hotline_tickets"]["channels"])


def test_event_ids_unique_per_feed_and_times_inside_their_day(runs):
    _, day, _ = runs
    ev = day.events
    assert not ev.duplicated(["feed", "id"]).any()
    per_day = ev.time.dt.floor("D")
    assert ((ev.id // simfeeds.ID_DAY_FACTOR) == (per_day - pd.Timestamp("1970-01-01")).dt.days).all()
    for df in day.frames.values():
        assert df.time.min() >= pd.Timestamp("2020-02-03") and df.time.max() < pd.Timestamp("2020-02-11")


def test_duplicate_hotline_reports_share_text_across_channels(runs):
    _, day, _ = runs
    hot = day.events[day.events.feed == "hotline_tickets"]
    rep = hot[hot.duplicated("text", keep=False)]
    assert len(rep) > 0.05 * len(hot)
    assert (rep.groupby("text", observed=True).channel.nunique() > 1).mean() > 0.9


def _catalog_pairs():
    from engine.catalog import Catalog

    cat = Catalog.load()
    pairs = set()
    for ind in cat.indicators:
        f = ind["feed"]
        filt = tuple(sorted((k, tuple(v) if isinstance(v, list) else (v,)) for k, v in ind["filter"].items()))
        pairs.add((f, filt))
    return cat, pairs


def _covered(frames, pairs):
    """The (feed, filter) pairs with no record: filter keys are the item column, channel, or
    attributes of the emitter (site or sensor kind, enterprise sector and size)."""
    sites, sensors, ents = CITY_FULL.sites, CITY_FULL.sensors, CITY_FULL.enterprises
    attr = {"kind": pd.concat([sites.kind, sensors.kind]).astype(str).to_dict(),
            "sector": ents.sector.astype(str).to_dict(), "size": ents["size"].astype(str).to_dict()}
    by_feed = {f: g for df in frames.values() for f, g in df.groupby("feed", observed=True)}
    missing = []
    for feed, filt in sorted(pairs):
        k = SPECS[feed]["kind"]
        if any(key in ("sector", "size") for key, _ in filt):     # does the city have such enterprises?
            have = np.ones(len(ents), dtype=bool)
            for key, vals in filt:
                if key in ("sector", "size"):
                    have &= ents[key].astype(str).isin(list(map(str, vals))).to_numpy()
            if not have.any():
                continue
        df = by_feed.get(feed)
        if df is None:
            missing.append((feed, filt))
            continue
        mask = np.ones(len(df), dtype=bool)
        for key, vals in filt:
            col = df[key] if key in df.columns else df[simfeeds.EMITTER_COL[k]].map(attr[key])
            mask &= col.isin(list(map(str, vals))).to_numpy()
        if not mask.any():
            missing.append((feed, filt))
    return missing


CITY_FULL = City.synthetic(seed=0)


@pytest.mark.slow
def test_every_indicator_of_the_catalog_has_data():
    """Full city: event feeds over 30 days (rare categories), every feed over 2 days."""
    cat, pairs = _catalog_pairs()
    assert {p[0] for p in pairs} == set(SPECS)
    sc = Scenario("2020-02-01", 30, initial_infections=300, mode="mean_field")
    sc.at("2020-02-01", sector_share=0.2, schools=False, other=0.4, masks=0.7, testing=0.6, arrivals=2000,
          key_area_share=0.1, key_area_prevalence=0.005, arrival_quarantine=0.8, quarantine_compliance=0.9)
    sc.at("2020-02-15", sector_share=0.8, schools=True, other=0.8)
    r = CITY_FULL.regions.index
    sc.incident("water_main_burst", "2020-02-03 09:00", "2020-02-03 12:00", regions=[r[5]])
    sc.incident("power_outage", "2020-02-04 09:00", "2020-02-04 12:00", regions=[r[6]])
    res = simulate(CITY_FULL, sc, seed=1)
    ev = res.feeds(feeds=EVENT_FEEDS)
    two = simulate(CITY_FULL, sc.head(2), seed=1).feeds(feeds=[f for f in SPECS if f not in EVENT_FEEDS])
    frames = {"events": ev.events, "readings": two.readings, "snapshots": two.snapshots}
    missing = _covered(frames, pairs)
    assert not missing, missing[:10]
    for inc in res.truth:
        inc.check_indicators(cat.ids)
    for kind in incidents.INCIDENT_KINDS:
        incidents.Incident(kind, "2020-02-01", "2020-02-02", regions=[r[0]]).check_indicators(cat.ids)


def test_simulated_day_encodes_without_quarantine(runs):
    feeds_mod = pytest.importorskip("engine.feeds")
    from engine.catalog import Catalog

    res, day, _ = runs
    one = next(res.feeds_by_day())
    enc, q = feeds_mod.encode(one.to_feeds(), CITY, Catalog.load(), now=pd.Timestamp(one.date) + pd.Timedelta(days=1))
    assert len(q) == 0, q.counts()
    assert sum(enc.n_rows.values()) == sum(one.n_rows.values())


# ------------------------------------------------------------------------------ determinism
def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Frames equal column by column (categoricals by categories and codes: fast)."""
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    for c in a.columns:
        x, y = a[c], b[c]
        assert x.dtype == y.dtype, c
        if isinstance(x.dtype, pd.CategoricalDtype):
            np.testing.assert_array_equal(x.cat.codes.to_numpy(), y.cat.codes.to_numpy(), err_msg=c)
        else:
            assert x.equals(y), c


def test_deterministic_per_seed_and_per_day():
    from itertools import islice

    sc = with_incidents(base_scenario())
    a = simulate(CITY, sc, seed=5)
    days_a = list(islice(a.feeds_by_day(threads=1), 3))
    days_b = list(islice(simulate(CITY, sc, seed=5).feeds_by_day(threads=1), 3))
    for x, y in zip(days_a, days_b):
        for k in simfeeds.KINDS:
            _same(x.frames[k], y.frames[k])
    # a day does not depend on the days generated before it
    alone = generators.FeedModel(a).day(2)
    for k in simfeeds.KINDS:
        _same(alone[k], days_a[2].frames[k])
    threaded = list(islice(simulate(CITY, sc, seed=5).feeds_by_day(threads=3), 3))   # any thread count
    for x, y in zip(days_a, threaded):
        for k in simfeeds.KINDS:
            _same(x.frames[k], y.frames[k])
    other = next(simulate(CITY, sc, seed=6).feeds_by_day())
    assert not other.readings.value.equals(days_a[0].readings.value)


def test_options_and_errors():
    res = simulate(CITY, base_scenario(days=2), seed=1)
    hourly = next(res.feeds_by_day(cycle_minutes=60, feeds=["road_traffic", "hotline_tickets"]))
    assert set(hourly.rows_per_feed()) == {"road_traffic", "hotline_tickets"}
    n_roads = int((CITY.sensors.kind == "road_segment").sum())
    assert len(hourly.readings) == 24 * 4 * n_roads
    with pytest.raises(ValueError, match="cycle_minutes"):
        next(res.feeds_by_day(cycle_minutes=7))
    with pytest.raises(ValueError, match="unknown feed"):
        next(res.feeds_by_day(feeds=["tea_leaves"]))
    with pytest.raises(ValueError, match="price_spike"):
        incidents.Incident("fraud_wave", "2020-02-03", "2020-02-04", regions=[REG[0]], items=["pork"])


# ------------------------------------------------------------------------------ incidents vs twin
def _ev(day, feed, cat, regions, start, end):
    e = day.events
    e = e[(e.feed == feed) & (e.category == cat) & e.region.isin(regions)]
    return len(_window(e, start, end))


def _both(inc, twin, feed, cat, regions, w):
    """Event counts of the incident run and of its twin."""
    return _ev(inc, feed, cat, regions, *w), _ev(twin, feed, cat, regions, *w)


def _rd(day, kind, feed, item, emitters, start, end):
    df = day.frames[kind]
    col, icol = simfeeds.EMITTER_COL[kind], simfeeds.ITEM_COL[kind]
    df = df[(df.feed == feed) & (df[icol] == item) & df[col].isin(emitters)]
    return _window(df, start, end).value


def _sensors(kind, regions):
    s = CITY.sensors
    return s.index[(s.kind == kind) & s.region.isin(regions)]


def _sites_in(kind, regions):
    s = CITY.sites
    return s.index[(s.kind == kind) & s.region.isin(regions)]


def test_water_main_burst(runs):
    _, inc, twin = runs
    w = ("2020-02-05 09:00", "2020-02-05 15:00")
    assert _ev(inc, "utility_outages", "pipe_burst", [WATER], *w) >= 1
    a, b = _both(inc, twin, "utility_outages", "water_outage", [WATER], w)
    assert a >= b
    a, b = _both(inc, twin, "hotline_tickets", "water_outage", [WATER], w)
    assert a >= b + 8
    meters = _sensors("water_meter", [WATER])
    p_inc = _rd(inc, "readings", "water_network", "pressure", meters, "2020-02-05 10:00", "2020-02-05 14:00")
    p_twin = _rd(twin, "readings", "water_network", "pressure", meters, "2020-02-05 10:00", "2020-02-05 14:00")
    assert p_inc.mean() < 0.5 * p_twin.mean()
    t_inc = _rd(inc, "readings", "water_network", "turbidity", meters, "2020-02-05 10:00", "2020-02-05 14:00")
    assert t_inc.mean() > 10 * _rd(twin, "readings", "water_network", "turbidity", meters, *w).mean()
    # outside the window and the region nothing moved
    after = ("2020-02-05 16:00", "2020-02-05 23:00")
    np.testing.assert_allclose(_rd(inc, "readings", "water_network", "pressure", meters, *after),
                               _rd(twin, "readings", "water_network", "pressure", meters, *after))
    other = _sensors("water_meter", [POWER])
    np.testing.assert_allclose(_rd(inc, "readings", "water_network", "pressure", other, *w),
                               _rd(twin, "readings", "water_network", "pressure", other, *w))


def test_power_outage(runs):
    _, inc, twin = runs
    w = ("2020-02-05 19:00", "2020-02-05 22:00")
    meters = _sensors("power_meter", [POWER])
    load_inc = _rd(inc, "readings", "power_grid", "load", meters, "2020-02-05 19:15", "2020-02-05 21:59")
    load_twin = _rd(twin, "readings", "power_grid", "load", meters, "2020-02-05 19:15", "2020-02-05 21:59")
    assert load_inc.mean() < 0.1 * load_twin.mean()
    assert _rd(inc, "readings", "power_grid", "voltage", meters, "2020-02-05 19:15", "2020-02-05 21:59").max() < 1
    assert _ev(inc, "utility_outages", "power_outage", [POWER], *w) >= 1
    a, b = _both(inc, twin, "hotline_tickets", "power_outage", [POWER], w)
    assert a >= b + 8


def test_fraud_wave(runs):
    """``magnitude`` reports per region over the wave (10 x 6 regions = 60 expected), each also a
    filed loss, inside its window only."""
    _, inc, twin = runs
    w = ("2020-02-05", "2020-02-07 23:59")
    a, b = _both(inc, twin, "police_incidents", "telecom_fraud", FRAUD, w)
    assert 40 <= a - b <= 80, (a, b)
    e_inc = _window(inc.events[(inc.events.feed == "fraud_losses") & (inc.events.category == "telecom")
                               & inc.events.region.isin(FRAUD)], *w)
    e_twin = _window(twin.events[(twin.events.feed == "fraud_losses") & (twin.events.category == "telecom")
                                 & twin.events.region.isin(FRAUD)], *w)
    assert 40 <= len(e_inc) - len(e_twin) <= 80 and e_inc.value.sum() > e_twin.value.sum()
    after = ("2020-02-08 00:00", "2020-02-10 23:59")
    a, b = _both(inc, twin, "police_incidents", "telecom_fraud", FRAUD, after)
    assert abs(a - b) <= 3


def test_mask_shortage(runs):
    _, inc, twin = runs
    ph = _sites_in("pharmacy", PHARM_REGIONS)
    w = ("2020-02-05", "2020-02-07 23:59")      # the incident ends at midnight of the 8th
    s_inc = _rd(inc, "snapshots", "pharmacy_stock", "surgical_mask", ph, *w)
    s_twin = _rd(twin, "snapshots", "pharmacy_stock", "surgical_mask", ph, *w)
    assert s_inc.mean() < 0.2 * s_twin.mean()
    p_inc = _rd(inc, "readings", "protective_prices", "surgical_mask", ph, *w)
    assert p_inc.mean() > 1.7 * _rd(twin, "readings", "protective_prices", "surgical_mask", ph, *w).mean()
    q_inc = _rd(inc, "readings", "crowd_counts", "queue", ph, *w).sum()
    assert q_inc > 2 * _rd(twin, "readings", "crowd_counts", "queue", ph, *w).sum()
    assert _ev(inc, "hotline_tickets", "mask_shortage", PHARM_REGIONS, *w) > \
        2 * _ev(twin, "hotline_tickets", "mask_shortage", PHARM_REGIONS, *w)
    assert _ev(inc, "crowd_alerts", "pharmacy_queue", PHARM_REGIONS, *w) > \
        _ev(twin, "crowd_alerts", "pharmacy_queue", PHARM_REGIONS, *w)
    before = ("2020-02-03", "2020-02-03 23:59")     # (the cluster of the 4th moves the city's alarm)
    np.testing.assert_allclose(_rd(inc, "snapshots", "pharmacy_stock", "surgical_mask", ph, *before),
                               _rd(twin, "snapshots", "pharmacy_stock", "surgical_mask", ph, *before))


def test_price_spike(runs):
    res, inc, twin = runs
    sites = _sites_in("wet_market", PRICE_REGIONS).append(_sites_in("supermarket", PRICE_REGIONS))
    w = ("2020-02-05", "2020-02-06 23:59")      # daily prices: the days the incident overlaps
    for item in incidents.PRICE_SPIKE_ITEMS[:2]:
        a = _rd(inc, "readings", "staple_prices", item, sites, *w)
        b = _rd(twin, "readings", "staple_prices", item, sites, *w)
        assert a.mean() > 1.3 * b.mean()
    np.testing.assert_allclose(_rd(inc, "readings", "staple_prices", "rice", sites, *w),
                               _rd(twin, "readings", "staple_prices", "rice", sites, *w))
    truth = res.truth.to_frame()
    assert ("staple_prices", "pork") in truth.loc[truth.kind == "price_spike", "effects"].iloc[0]


def test_market_crowd(runs):
    _, inc, twin = runs
    mk = _sites_in("wet_market", [MARKET_REGION])
    w = ("2020-02-06 07:15", "2020-02-06 10:59")
    assert _rd(inc, "readings", "crowd_counts", "occupancy", mk, *w).sum() > \
        2 * _rd(twin, "readings", "crowd_counts", "occupancy", mk, *w).sum()
    assert _rd(inc, "readings", "crowd_counts", "entries", mk, *w).sum() > \
        2 * _rd(twin, "readings", "crowd_counts", "entries", mk, *w).sum()
    assert _ev(inc, "crowd_alerts", "market_crowding", [MARKET_REGION], *w) > \
        _ev(twin, "crowd_alerts", "market_crowding", [MARKET_REGION], *w)
    evening = ("2020-02-06 15:00", "2020-02-06 20:00")     # outside the window the crowd is back to normal
    a = _rd(inc, "readings", "crowd_counts", "entries", mk, *evening).sum()
    b = _rd(twin, "readings", "crowd_counts", "entries", mk, *evening).sum()
    assert abs(a - b) <= 0.15 * b + 5


def test_market_crowd_under_a_lockdown_cap_shows_at_the_gate():
    """With wet markets capped at 30 % of capacity, occupancy can never pass half the capacity;
    a crowd that brings more than the cap (here 1.5 times it at the peak) fills the market to its
    limit, and the people held at the gate raise the market's crowding alerts in the window,
    while the twin (no crowd) raises none."""
    def lockdown():
        return base_scenario(days=4, other=0.2, venue_cap=0.3)
    twin_res = simulate(CITY, lockdown(), seed=3)
    v = np.flatnonzero(np.isin(twin_res.venue_ids, _sites_in("wet_market", [MARKET_REGION])))
    usual = twin_res.venue_occupancy[2, v].max()                  # peak share of capacity on the day
    assert 0 < usual < 0.3
    sc = lockdown()
    sc.incident("market_crowd", "2020-02-05 07:00", "2020-02-05 10:00", regions=[MARKET_REGION],
                magnitude=1.5 * 0.3 / usual)
    inc, twin = simulate(CITY, sc, seed=3).feeds(), twin_res.feeds()
    mk = _sites_in("wet_market", [MARKET_REGION])
    cap = CITY.sites.loc[mk, "capacity"].to_numpy(float)
    occ = _rd(inc, "readings", "crowd_counts", "occupancy", mk, "2020-02-03", "2020-02-06 23:59")
    assert occ.max() <= 0.5 * cap.max()
    w = ("2020-02-05 07:00", "2020-02-05 10:00")
    assert _ev(inc, "crowd_alerts", "market_crowding", [MARKET_REGION], *w) >= 2
    assert _ev(twin, "crowd_alerts", "market_crowding", [MARKET_REGION], "2020-02-03", "2020-02-06 23:59") == 0
    assert _ev(inc, "crowd_alerts", "market_crowding", [MARKET_REGION], "2020-02-05 11:00", "2020-02-06 23:59") == 0


def test_market_crowding_camera_alarms_over_the_limit_in_force():
    """A wet market's crowding camera alarms over the occupancy limit in force, not over half the
    capacity: under a reopening stage's 75 % cap a crowd that brings 0.7 of the capacity at its
    peak raises no alarm, one that brings 1.1 (1.5 times the cap) raises alarms in its window, and
    the twin (no crowd) none; with no cap in force the camera keeps its half-capacity level (the
    0.7 crowd alarms). On the old rule (half the capacity or the cap, whichever is lower) the 0.7
    crowd alarmed under the 75 % cap too (the 60-day demo's 217 neighbourhood-days after 04-06)."""
    def stage(cap):
        return base_scenario(days=4, other=0.8, **({} if cap is None else {"venue_cap": cap}))
    mk = _sites_in("wet_market", [MARKET_REGION])
    w = ("2020-02-05 07:00", "2020-02-05 10:00")
    alarms = {}
    for cap in (0.75, None):
        twin_res = simulate(CITY, stage(cap), seed=3)
        v = np.flatnonzero(np.isin(twin_res.venue_ids, mk))
        usual = twin_res.venue_occupancy[2, v].max()              # peak share of capacity on the day
        assert 0 < usual < 0.5
        assert _ev(twin_res.feeds(), "crowd_alerts", "market_crowding", [MARKET_REGION], "2020-02-03",
                   "2020-02-06 23:59") == 0
        for share in (0.7, 1.1):
            sc = stage(cap)
            sc.incident("market_crowd", *w, regions=[MARKET_REGION], magnitude=share / usual)
            alarms[cap, share] = _ev(simulate(CITY, sc, seed=3).feeds(), "crowd_alerts", "market_crowding",
                                     [MARKET_REGION], *w)
    assert alarms[0.75, 0.7] == 0
    assert alarms[0.75, 1.1] >= 2
    assert alarms[None, 0.7] >= 2


def test_venue_cluster(runs):
    """The cluster's ``magnitude`` cases present at the fever clinics of its regions inside its window
    (a triangular curve over the 72 hours), a share of them call the hotline and get confirmed; the
    SEIR counts them as clinical onsets."""
    res, inc, twin = runs
    ages = ("child", "adult", "elderly")
    w = CLUSTER_WINDOW

    def visits(day, regions, start, end):
        return sum(_ev(day, "fever_clinic_visits", c, regions, start, end) for c in ages)

    # the simulation: 60 cases over the window's days, in its regions only, as onsets
    cl = res.cluster_cases
    assert cl.sum() == pytest.approx(60)
    outside = [REG.index(r) for r in REG if r not in CLUSTER_REGIONS]
    assert cl[:, outside].sum() == 0 and cl[[0, 5, 6, 7]].sum() == 0      # days 1-4 (4-7 Feb) only
    np.testing.assert_allclose(cl.sum(axis=(1, 2))[1:5], 60 * np.array([2, 48, 76, 18]) / 144)  # 6 h, 24, 24, 18
    assert (res.new_onsets >= cl - 1e-12).all()
    # the feeds' cluster component: timed inside the window only (weights per 15-minute cycle)
    model = generators.FeedModel.for_result(res)
    for t in range(res.dates.size):
        cases, when = model.cluster_presenting(t)
        cyc = pd.Timestamp(res.dates[t]) + pd.to_timedelta(np.arange(when.size) * 15, "min")
        assert (when[(cyc + pd.Timedelta("15min") <= pd.Timestamp(w[0])) | (cyc >= pd.Timestamp(w[1]))] == 0).all()
        np.testing.assert_allclose(cases, model.cluster[t])
    # the events: ~60 more fever clinic visits in its regions inside the window than the twin (the
    # cluster's Poisson(60), sd 7.7, plus what the news adds to the background: the city's alarm
    # rises with the cases found; tolerance -25 % / +50 %), and none before the window's first day
    a, b = visits(inc, CLUSTER_REGIONS, *w), visits(twin, CLUSTER_REGIONS, *w)
    assert 45 <= a - b <= 90, (a, b)
    day0 = ("2020-02-03", "2020-02-03 23:59")
    assert visits(inc, REG, *day0) == visits(twin, REG, *day0)
    # a share of them call the hotline (0.35 each, + the worried visitors) and are confirmed
    a, b = _both(inc, twin, "hotline_tickets", "fever_symptoms", CLUSTER_REGIONS, w)
    assert a > b + 10
    a, b = _both(inc, twin, "epidemic_reports", "confirmed", CLUSTER_REGIONS, ("2020-02-04", "2020-02-10 23:59"))
    assert a > b + 20                         # testing 0.5: (0.5 + 0.3 x 0.5) x 60 = 39 expected
    site = res.truth.to_frame().set_index("kind").loc["venue_cluster", "site"]
    assert site in set(CITY.sites.index[CITY.sites.region == CLUSTER])


# ------------------------------------------------------------------------------ responses to the state
def _count(day, feed, cat):
    e = day.events
    return int(((e.feed == feed) & (e.category == cat)).sum())


def test_tickets_respond_to_the_state():
    quiet = simulate(CITY, base_scenario(days=10), seed=2)
    sc = base_scenario(days=10)
    sc.initial_infections = 3000
    sick = simulate(CITY, sc, seed=2)
    f = ["hotline_tickets"]
    a, b = quiet.feeds(feeds=f), sick.feeds(feeds=f)
    assert _count(b, "hotline_tickets", "fever_symptoms") > 2 * _count(a, "hotline_tickets", "fever_symptoms")
    closed = simulate(CITY, base_scenario(days=10, sector_share=0.1), seed=2).feeds(feeds=f)
    sc = base_scenario(days=10, sector_share=0.1)
    sc.at("2020-02-05", sector_share=0.9)
    opened = simulate(CITY, sc, seed=2).feeds(feeds=f)
    early = [_count(d, "hotline_tickets", "early_reopening") for d in (opened, closed)]
    assert early[0] > 2 * early[1]
    assert _count(closed, "hotline_tickets", "wage_arrears") > _count(opened, "hotline_tickets", "wage_arrears")


def test_daily_and_weekly_rhythms(runs):
    _, day, _ = runs
    rd = day.readings
    vol = rd[(rd.feed == "road_traffic") & (rd.metric == "volume")]
    hour = vol.time.dt.hour
    assert vol.value[hour.isin([2, 3, 4])].mean() < 0.3 * vol.value[hour.isin([8, 17, 18])].mean()
    ent = rd[(rd.feed == "crowd_counts") & (rd.metric == "entries")]
    h = ent.time.dt.hour
    assert ent.value[h.isin([2, 3, 4])].sum() < 0.1 * ent.value[h.isin([10, 11, 12])].sum()
    load = rd[(rd.feed == "power_grid") & (rd.metric == "load")]
    assert load.value[load.time.dt.hour.isin([3, 4])].mean() < load.value[load.time.dt.hour.isin([20, 21])].mean()
    # the weekend (8-9 Feb 2020) has less commuting traffic than the weekdays
    wd = vol.time.dt.day_of_week
    assert vol.value[wd >= 5].mean() < 0.85 * vol.value[wd < 5].mean()
    ev = day.events
    calls = ev[ev.feed == "hotline_tickets"].time.dt.hour
    assert (calls.isin([2, 3, 4])).sum() < 0.3 * (calls.isin([9, 10, 11])).sum()


def test_write_parquet_streams_days(tmp_path):
    res = simulate(CITY, base_scenario(days=2), seed=1)
    rows = simfeeds.write_parquet(res.feeds_by_day(feeds=["hotline_tickets", "road_traffic", "gate_status"]), tmp_path)
    assert set(rows) == {"hotline_tickets", "road_traffic", "gate_status"}
    back = pd.read_parquet(tmp_path / "readings.parquet")
    assert len(back) == rows["road_traffic"] and isinstance(back.metric.dtype, pd.CategoricalDtype)
    import pyarrow.parquet as pq

    assert pq.ParquetFile(tmp_path / "events.parquet").num_row_groups == 2
