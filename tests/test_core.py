"""engine.core: fast kernels == slow reference, replay == steps, state round trip, known answers."""

from __future__ import annotations

import numpy as np
import pytest

from engine import Catalog, City
from engine.core import Engine, Records, State
from engine.core.derived import DerivedPlan

from core_reference import random_steps, ref_rollup, reference, sample_rows

C = 900 * 10**9
K0 = 1580515200000000000 // C  # 2020-02-01 00:00 UTC


@pytest.fixture(scope="module")
def catalog():
    return Catalog.load()


@pytest.fixture(scope="module")
def city():
    return City.synthetic(seed=2, neighbourhoods=8, streets=3, population=40_000)


def _same(a, b, rtol=1e-9):
    bad = ~np.isclose(a, b, rtol=rtol, atol=1e-12, equal_nan=True)
    assert not bad.any(), f"{int(bad.sum())} differ; first at {np.argwhere(bad)[0]}: {a[bad][:3]} vs {b[bad][:3]}"


def _per_bucket(steps):
    """All records, re-split so the first step gets every record up to it and each later step the
    records of its own cycle (what replay does)."""
    allrec = Records.build(steps[0][1].feed_ids,
                           events={n: np.concatenate([getattr(r, n) for _, r in steps]) for n in
                                   ("ev_time", "ev_feed", "ev_category", "ev_channel", "ev_region", "ev_value")},
                           readings={n: np.concatenate([getattr(r, n) for _, r in steps]) for n in
                                     ("rd_time", "rd_feed", "rd_metric", "rd_emitter", "rd_kind", "rd_region", "rd_value")},
                           snapshots={n: np.concatenate([getattr(r, n) for _, r in steps]) for n in
                                      ("sn_time", "sn_feed", "sn_field", "sn_entity", "sn_kind", "sn_region", "sn_value")})
    out = []
    ks = [k for k, _ in steps]
    for i, k in enumerate(ks):
        def sel(t):
            b = -((-t) // C)
            return (b <= k) if i == 0 else (b == k)
        out.append((k, allrec.select(sel(allrec.ev_time), sel(allrec.rd_time), sel(allrec.sn_time))))
    return allrec, out


@pytest.mark.parametrize("seed", [1, 2])
def test_engine_equals_reference_with_late_records(city, catalog, seed):
    steps = random_steps(city, catalog, K0, 4, seed=seed)
    steps.insert(2, (K0 + 4, Records.build(list(catalog.feeds))))  # an empty cycle ...
    steps = [(K0 + i, r) for i, (_, r) in enumerate(steps)]         # ... inside the sequence
    rows = sample_rows(catalog, per_combo=1, seed=seed)
    ref = reference(city, catalog, steps, rows=rows)
    eng = Engine(city, catalog, dtype="float64")
    sel = np.array(sorted(rows))
    g = city.street_of
    for (k, rec), (V, NUM, DEN) in zip(steps, ref):
        got = eng.step(rec, at=k * C).value.values
        _same(got[sel], V[sel])
    # roll-ups of the last cycle: street and district follow each rule (ratios of sums, not means)
    street = Engine(city, catalog, dtype="float64")
    for k, rec in steps[:-1]:
        street.step(rec, at=k * C)
    ds = street.step(steps[-1][1], at=steps[-1][0] * C, level="street")
    V, NUM, DEN = ref[-1]
    pop = city.regions["population"].to_numpy(float)
    want = ref_rollup(V, NUM, DEN, catalog.indicators, g, len(city.streets), pop)
    _same(ds.value.values[sel], want[sel])


def test_single_region_and_windows_longer_than_history(catalog):
    one = City.synthetic(seed=4, neighbourhoods=1, streets=1, population=5_000)
    steps = random_steps(one, catalog, K0, 3, seed=3)
    rows = sample_rows(catalog, per_combo=1, seed=3)
    ref = reference(one, catalog, steps, rows=rows)
    eng = Engine(one, catalog, dtype="float64")
    sel = np.array(sorted(rows))
    for (k, rec), (V, _, _) in zip(steps, ref):
        ds = eng.step(rec, at=k * C)
        assert ds.value.shape == (len(catalog), 1)
        _same(ds.value.values[sel], V[sel])


def test_replay_equals_successive_steps_and_state_round_trip(city, catalog, tmp_path):
    steps = random_steps(city, catalog, K0, 8, seed=5)
    allrec, split = _per_bucket(steps)
    rep = Engine(city, catalog).replay(allrec, start=K0 * C, end=(K0 + 7) * C)
    assert rep.value.shape == (8, len(catalog), city.n_regions)
    a = Engine(city, catalog)
    stepped = np.stack([a.step(rec, at=k * C).value.values for k, rec in split])
    assert np.array_equal(rep.value.values, stepped, equal_nan=True)
    # save mid-stream, load into a fresh engine, continue == uninterrupted
    b = Engine(city, catalog)
    for k, rec in split[:4]:
        b.step(rec, at=k * C)
    b.save_state(tmp_path / "state.npz")
    c = Engine(city, catalog)
    c.load_state(tmp_path / "state.npz")
    assert c.state.equals(b.state)
    cont = np.stack([c.step(rec, at=k * C).value.values for k, rec in split[4:]])
    assert np.array_equal(cont, stepped[4:], equal_nan=True)
    # replay at street level == steps at street level
    rs = Engine(city, catalog).replay(allrec, start=K0 * C, end=(K0 + 7) * C, level="district")
    d = Engine(city, catalog)
    sd = np.stack([d.step(rec, at=k * C, level="district").value.values for k, rec in split])
    assert np.array_equal(rs.value.values, sd, equal_nan=True)


def test_known_answers_end_to_end(city, catalog):
    eng = Engine(city, catalog, dtype="float64")
    feeds = eng.plan.feed_ids
    at = (K0 + 8) * C
    pol = feeds.index("police_incidents")
    cats = list(catalog.feeds["police_incidents"]["categories"])
    r0, r1 = 0, 1  # two neighbourhoods of street 0
    assert city.street_of[r0] == city.street_of[r1]
    # 5 assaults in r0 within the last hour, 3 in r1, 2 thefts in r1
    ev_t = [at - 60 * 10**9 * m for m in (1, 10, 20, 30, 50)] + [at - 10**9] * 3 + [at - 5 * 10**9] * 2
    ev = dict(ev_time=ev_t, ev_feed=[pol] * 10, ev_category=[cats.index("assault")] * 8 + [cats.index("theft")] * 2,
              ev_channel=[-1] * 10, ev_region=[r0] * 5 + [r1] * 5, ev_value=[np.nan] * 10)
    # water pressure readings from r0's water meters
    sens = city.sensors
    wm = np.flatnonzero((sens["kind"] == "water_meter").to_numpy()
                        & (city.regions.index.get_indexer(sens["region"]) == r0))
    assert len(wm)
    wf = feeds.index("water_network")
    vals = [0.30, 0.34, 0.29]
    rd = dict(rd_time=[at - 10**9] * 3, rd_feed=[wf] * 3,
              rd_metric=[list(catalog.feeds["water_network"]["metrics"]).index("pressure")] * 3,
              rd_emitter=[wm[0]] * 3, rd_kind=[0] * 3, rd_region=[r0] * 3, rd_value=vals)
    # enterprises of r0: half reopened
    ent = np.flatnonzero(city.regions.index.get_indexer(city.enterprises["region"]) == r0)
    ef = feeds.index("enterprise_status")
    opn = (np.arange(len(ent)) % 2 == 0).astype(float)
    sn = dict(sn_time=[at - 10**9] * len(ent), sn_feed=[ef] * len(ent), sn_field=[0] * len(ent), sn_entity=ent,
              sn_kind=[-1] * len(ent), sn_region=[r0] * len(ent), sn_value=opn)
    rec = Records.build(feeds, events=ev, readings=rd, snapshots=sn)
    ds = eng.step(rec, at=at)
    v = ds.value
    reg = [str(x) for x in city.regions.index]
    cnt = "safety.public_order.police_assault.count_1h"
    assert v.sel(indicator=cnt, region=reg[r0]) == 5 and v.sel(indicator=cnt, region=reg[r1]) == 3
    assert v.sel(indicator="safety.public_order.police_assault.share_24h", region=reg[r1]) == 60.0
    pop = city.regions["population"].to_numpy(float)
    per10k = "safety.public_order.police_assault.per10k_24h"
    assert v.sel(indicator=per10k, region=reg[r0]) == 5 / pop[r0] * 1e4
    assert v.sel(indicator="construction.lifelines.water_pressure.mean_1h", region=reg[r0]) == pytest.approx(
        sum(vals) / 3, rel=1e-15)
    assert v.sel(indicator="construction.lifelines.water_pressure.max_1h", region=reg[r0]) == 0.34
    assert v.sel(indicator="market.enterprise.reopened_all.share_now", region=reg[r0]) == pytest.approx(
        100 * opn.sum() / len(opn), rel=1e-15)
    # a derived formula: today vs the 7-day daily mean = count_24h / (count_7d / 7) = 7 here
    trend = [i["id"] for i in catalog.indicators if i["id"].startswith("safety.public_order.police_assault.trend")]
    if trend:
        assert v.sel(indicator=trend[0], region=reg[r0]) == 7.0
    # street level: counts sum; per 10k is summed counts over summed residents
    st = Engine(city, catalog, dtype="float64").step(rec, at=at, level="street").value
    s = str(city.streets.index[city.street_of[r0]])
    assert st.sel(indicator=cnt, region=s) == 8
    spop = pop[city.street_of == city.street_of[r0]].sum()
    assert st.sel(indicator=per10k, region=s) == 8 / spop * 1e4
    assert st.sel(indicator="safety.public_order.police_assault.share_24h", region=s) == 80.0
    di = Engine(city, catalog, dtype="float64").step(rec, at=at, level="district").value
    assert di.sel(indicator=per10k).item() == 8 / pop.sum() * 1e4
    assert di.sel(indicator="construction.lifelines.water_pressure.mean_1h").item() == pytest.approx(sum(vals) / 3)
    assert ds.attrs["core.future"] == 0 and ds.attrs["level"] == "neighbourhood"


def test_late_event_lands_in_its_own_cycle(city, catalog):
    eng = Engine(city, catalog, dtype="float64")
    feeds = eng.plan.feed_ids
    pol = feeds.index("police_incidents")
    empty = Records.build(feeds)
    for k in range(K0, K0 + 8):
        eng.step(empty, at=k * C)
    # at cycle K0+8 an event of cycle K0+3 arrives (75 min late, lateness 6h): in the 24h window,
    # not in the 1h window (cycles K0+5..K0+8)
    late = Records.build(feeds, events=dict(ev_time=[(K0 + 3) * C - 1], ev_feed=[pol], ev_category=[0],
                                            ev_channel=[-1], ev_region=[2], ev_value=[np.nan]))
    v = eng.step(late, at=(K0 + 8) * C).value.isel(region=2)
    assert v.sel(indicator="safety.public_order.police_assault.count_1h") == 0
    assert v.sel(indicator="safety.public_order.police_assault.count_24h") == 1
    # too late (beyond 6h) is not counted and is reported
    old = Records.build(feeds, events=dict(ev_time=[(K0 + 9) * C - 7 * 3600 * 10**9], ev_feed=[pol], ev_category=[0],
                                           ev_channel=[-1], ev_region=[2], ev_value=[np.nan]))
    ds = eng.step(old, at=(K0 + 9) * C)
    assert ds.attrs["core.too_late"] == 1
    assert ds.value.isel(region=2).sel(indicator="safety.public_order.police_assault.count_24h") == 1
    # the 24h window lets it go when bucket K0+3 leaves (at cycle K0+3+96)
    for k in range(K0 + 10, K0 + 3 + 96):
        eng.step(empty, at=k * C)
    v = eng.step(empty, at=(K0 + 99) * C).value.isel(region=2)
    assert v.sel(indicator="safety.public_order.police_assault.count_24h") == 0
    assert v.sel(indicator="safety.public_order.police_assault.count_7d") == 1


def test_bad_inputs_name_the_bad_value(city, catalog):
    eng = Engine(city, catalog)
    feeds = eng.plan.feed_ids
    with pytest.raises(ValueError, match="cycle boundary"):
        eng.step(Records.build(feeds), at=K0 * C + 1)
    rec = Records.build(feeds, events=dict(ev_time=[K0 * C], ev_feed=[0], ev_category=[999], ev_channel=[-1],
                                           ev_region=[0], ev_value=[np.nan]))
    with pytest.raises(ValueError, match="ev_category 999"):
        eng.step(rec, at=K0 * C)
    eng.step(Records.build(feeds), at=K0 * C)
    with pytest.raises(ValueError, match="not after the last cycle"):
        eng.step(Records.build(feeds), at=K0 * C)
    with pytest.raises(ValueError, match="plan"):
        other = Engine(City.synthetic(seed=9, neighbourhoods=5, streets=1, population=1000), catalog)
        import tempfile, os
        p = os.path.join(tempfile.mkdtemp(), "s.npz")
        other.save_state(p)
        State.load(p, eng.plan)


def test_derived_groups_cover_catalog(catalog):
    dp = DerivedPlan(catalog.indicators)
    assert sum(len(rows) for _, rows, _ in dp.groups) == sum(i["aggregation"] == "derived" for i in catalog.indicators)
    assert len(dp.groups) <= 12


def test_daily_price_report_is_held_from_its_own_cycle(city, catalog):
    """A daily price survey (one reading per pharmacy, stamped 08:59:59 as the simulator does):
    ``mean_24h``, ``mean_7d`` and ``change_pct`` take the report at the cycle ending 09:00 and hold
    it unchanged, bit for bit, until the next report; ``change_pct`` is
    ``100 (mean_24h - mean_7d) / mean_7d`` over the readings of the last 24 h / 7 days."""
    eng = Engine(city, catalog, dtype="float64")
    feeds = eng.plan.feed_ids
    pf = feeds.index("protective_prices")
    metric = list(catalog.feeds["protective_prices"]["metrics"]).index("kn95_mask")
    days = 10
    ph = city.sites.loc[city.sites["kind"] == "pharmacy", "region"]
    assert len(ph)
    r0 = int(city.regions.index.get_loc(ph.iloc[0]))
    rng = np.random.default_rng(7)
    price = 6.0 * (1.0 + 0.1 * rng.random((days, 2))) * np.where(np.arange(days) >= 8, 1.2, 1.0)[:, None]
    report = K0 + np.arange(days) * 96 + 36          # the cycle ending 09:00 of each day
    t = np.repeat(report * C - 10**9, 2)
    rd = dict(rd_time=t, rd_feed=[pf] * t.size, rd_metric=[metric] * t.size, rd_emitter=np.tile([0, 1], days),
              rd_kind=[0] * t.size, rd_region=[r0] * t.size, rd_value=price.ravel())
    rec = Records.build(feeds, readings=rd)
    import pandas as pd
    start = pd.Timestamp(int((K0 + 1) * C), unit="ns")
    end = pd.Timestamp(int((K0 + days * 96) * C), unit="ns")
    v = eng.replay(rec, start, end).value.isel(region=r0)
    base = "market.supervision.price_kn95_mask"
    got = {s: v.sel(indicator=f"{base}.{s}").to_numpy() for s in ("mean_24h", "mean_7d", "change_pct")}
    cyc = np.arange(K0 + 1, K0 + days * 96 + 1)
    for i, k in enumerate(cyc):
        last = np.searchsorted(report, k, side="right") - 1
        if last < 0:
            assert np.isnan(got["mean_24h"][i]) and np.isnan(got["change_pct"][i])
            continue
        week = (report > k - 672) & (report <= k)
        m24, m7 = price[last].mean(), price[week].mean()
        assert got["mean_24h"][i] == pytest.approx(m24, rel=1e-12)
        assert got["mean_7d"][i] == pytest.approx(m7, rel=1e-12)
        assert got["change_pct"][i] == pytest.approx(100 * (m24 - m7) / m7, rel=1e-9, abs=1e-9)
    # held exactly: the report's cycle and the 95 cycles after it carry one value
    for d in range(days - 1):
        i = report[d] - K0 - 1
        seg = got["change_pct"][i:i + 96]
        assert (seg == seg[0]).all(), f"day {d}: change_pct moves after its report: {np.unique(seg)}"
    assert got["change_pct"][report[8] - K0 - 1] > 15       # the 20 % step crosses warn at its report


def test_encode_ahead_equals_feeds_in_replay_and_step(city, catalog):
    import pandas as pd

    from engine.core import EncodedFeeds
    from engine.feeds import Feeds, corrupt_feeds, synthetic_feeds

    t0 = pd.Timestamp(K0 * C)
    end = t0 + pd.Timedelta("2h")
    feeds = synthetic_feeds(city, catalog, t0 - pd.Timedelta("30min"), end + pd.Timedelta("30min"), rate=3, seed=4)
    feeds = corrupt_feeds(feeds, fraction=0.05, seed=4, now=end)  # bad rows, future ones and too old ones
    assert feeds.n_rows["readings"] > 100 and feeds.n_rows["snapshots"] > 10
    a, b = Engine(city, catalog), Engine(city, catalog)
    enc = b.encode(feeds, end)
    assert isinstance(enc, EncodedFeeds) and enc.counts and enc.counts == enc.quarantine.counts()
    ra = a.replay(feeds, t0, end)
    rb = b.replay(enc, t0, end)
    assert np.array_equal(ra.value.values, rb.value.values, equal_nan=True)
    assert ra.attrs == rb.attrs and ra.attrs["core.after_end"] == 0 and ra.attrs["quarantine.future_timestamp"] > 0
    assert a.state.equals(b.state)
    # continued by steps: an encoded cycle == its feeds; the same EncodedFeeds used twice gives the same
    nxt = end + pd.Timedelta("15min")
    step_feeds = corrupt_feeds(synthetic_feeds(city, catalog, end - pd.Timedelta("20min"), nxt, rate=3, seed=5),
                               fraction=0.05, seed=5, now=nxt)
    one = b.encode(step_feeds, nxt)
    sa, sb = a.step(step_feeds, nxt), b.step(one, nxt)
    assert np.array_equal(sa.value.values, sb.value.values, equal_nan=True) and sa.attrs == sb.attrs
    c = Engine(city, catalog)  # another engine (another plan object): the records are prepared again
    c.replay(enc, t0, end)
    sc = c.step(one, nxt)
    assert np.array_equal(sc.value.values, sa.value.values, equal_nan=True) and sc.attrs == sa.attrs
    with pytest.raises(ValueError, match="encoded for a call ending at"):
        Engine(city, catalog).replay(enc, t0, end - pd.Timedelta("15min"))
    # encoded records pass through (no quarantine)
    rec = Engine(city, catalog).encode(random_steps(city, catalog, K0, 1, seed=3)[0][1], K0 * C)
    assert rec.quarantine is None and rec.counts is None and rec.n > 0
