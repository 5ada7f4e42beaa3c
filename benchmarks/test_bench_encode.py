"""Encoding a day of feeds the size of the 60-day demo's (1.5 M rows: 1.47 M readings, 68 k
snapshots, 8 k events at 300 neighbourhoods; pandas categorical columns, as the simulator
writes them) into the kernels' arrays, with every row checked.

The engine: ``Engine.encode`` (``engine.feeds.Encoder`` with the lookups built once per engine,
plus each record's bucket and kernel key) as the demo's run calls it once a day. The peer: the
same validation of readings and snapshots written plainly in pandas (``merge`` of the rows onto
the catalog's feed / item tables and the city's emitter tables, boolean checks, a stable sort by
time), scaled to all rows of the day; it must give the same accepted arrays. The peer writes no
quarantine details and does not prepare buckets; the engine does both.

CI size (``--benchmark-disable``, one untimed run): the first 10 hours of the day (~610 k
readings) in the same city: still over ``2 * PREPARE_PARALLEL_MIN`` readings, so the records'
keys are still prepared on two threads (``engine.core.engine._record_keys``) as at the full
day; every assertion runs (every row accepted, the peer's arrays equal).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.bench.harness import engine_bench, peer_bench

GROUP = "encode-day-300"
DAY = pd.Timestamp("2020-02-03")
SPAN, SPAN_CI = pd.Timedelta("1D"), pd.Timedelta("10h")         # the feeds' span; CI: --benchmark-disable


@pytest.fixture(scope="module")
def data(ci_size):
    from engine import Catalog, City
    from engine.core import Engine
    from engine.feeds import synthetic_feeds

    cat = Catalog.load()
    city = City.synthetic(seed=0, neighbourhoods=300, streets=13, population=1_100_000)
    end = DAY + (SPAN_CI if ci_size else SPAN)
    feeds = synthetic_feeds(city, cat, DAY, end, seed=0)
    eng = Engine(city, cat)
    eng.encode(feeds, DAY + pd.Timedelta("15min"))  # untimed: builds the engine's lookups once
    return cat, city, feeds, eng, end


def _emitters(city) -> pd.DataFrame:
    """Every emitter of the city: (etype, emitter id, position, region position, kind name)."""
    regions = city.regions.index.astype(str)
    parts = []
    for etype, table in (("sensor", city.sensors), ("site", city.sites), ("enterprise", city.enterprises)):
        parts.append(pd.DataFrame({
            "etype": etype, "emitter": table.index.astype(str), "pos": np.arange(len(table)),
            "region": regions.get_indexer(table["region"].astype(str)),
            "kindname": table["kind"].astype(str) if "kind" in table.columns else None}))
    parts.append(pd.DataFrame({"etype": "region", "emitter": regions, "pos": np.arange(len(regions)),
                               "region": np.arange(len(regions)), "kindname": None}))
    return pd.concat(parts, ignore_index=True)


def pandas_encode(feeds, city, cat, now) -> dict:
    """Accepted readings and snapshots as arrays, validated with plain pandas merges."""
    feed_ids = list(cat.feeds)
    em = _emitters(city)
    out = {}
    for kind, col, icol, key in (("readings", "sensor", "metric", "metrics"), ("snapshots", "entity", "field", "fields")):
        df = feeds.frame(kind)
        d = pd.DataFrame({"time": df["time"].to_numpy(), "feed": df["feed"].astype(str).to_numpy(),
                          "emitter": df[col].astype(str).to_numpy(), "item": df[icol].astype(str).to_numpy(),
                          "value": df["value"].to_numpy(np.float64)})
        specs = [(f, feed_ids.index(f), s) for f, s in cat.feeds.items() if s["kind"] == kind]
        ft = pd.DataFrame([(f, i, s.get("emitter", "region")) for f, i, s in specs], columns=["feed", "fcode", "etype"])
        it = pd.DataFrame([(f, name, j, float(spec.get("min", -np.inf)), float(spec.get("max", np.inf)))
                           for f, _, s in specs for j, (name, spec) in enumerate(s.get(key, {}).items())],
                          columns=["feed", "item", "icode", "lo", "hi"])
        kt = pd.DataFrame([(f, k, j) for f, _, s in specs for j, k in enumerate(s.get("emitter_kinds", []))],
                          columns=["feed", "kindname", "kcode"])
        d = d.merge(ft, on="feed", how="left").merge(it, on=["feed", "item"], how="left")
        d = d.merge(em, on=["etype", "emitter"], how="left").merge(kt, on=["feed", "kindname"], how="left")
        has_kinds = d["etype"].isin(["sensor", "site"])
        v = d["value"]
        ok = (d["fcode"].notna() & (d["time"] <= now) & d["icode"].notna() & d["pos"].notna()
              & (d["kcode"].notna() | ~has_kinds) & v.notna() & np.isfinite(v) & (v >= d["lo"]) & (v <= d["hi"]))
        d = d[ok].sort_values("time", kind="stable")
        out[kind] = {"time": d["time"].to_numpy().view(np.int64), "feed": d["fcode"].to_numpy(np.int32),
                     "item": d["icode"].to_numpy(np.int32), "emitter": d["pos"].to_numpy(np.int32),
                     "kind": d["kcode"].fillna(-1).to_numpy(np.int32), "region": d["region"].to_numpy(np.int32),
                     "value": d["value"].to_numpy(np.float64)}
    return out


def test_encode_day_engine(benchmark, data):
    cat, city, feeds, eng, end = data
    # bytes: the frames read (categorical codes, times, values) and the arrays written (36 B a record)
    read = sum(int(df.memory_usage(index=False).sum()) for k in feeds.n_rows for _, df in feeds.parts(k))
    engine_bench(benchmark, GROUP, bytes_touched=read + 36 * sum(feeds.n_rows.values()),
                 size=f"{sum(feeds.n_rows.values()):,} rows (one day, 300 neighbourhoods)")
    enc = benchmark.pedantic(eng.encode, args=(feeds, end), rounds=3, iterations=1)
    assert enc.records.n == sum(feeds.n_rows.values()) and not enc.counts


def test_encode_day_pandas(benchmark, data):
    cat, city, feeds, eng, end = data
    n = feeds.n_rows
    peer_bench(benchmark, GROUP, scale=sum(n.values()) / (n["readings"] + n["snapshots"]),
               size=f"{n['readings'] + n['snapshots']:,} readings and snapshots (scaled to the day's rows)")
    got = benchmark.pedantic(pandas_encode, args=(feeds, city, cat, end), rounds=1, iterations=1)
    rec = eng.encode(feeds, end).records
    for kind, p, names in (("readings", "rd", ("time", "feed", "metric", "emitter", "kind", "region", "value")),
                           ("snapshots", "sn", ("time", "feed", "field", "entity", "kind", "region", "value"))):
        for mine, theirs in zip(names, ("time", "feed", "item", "emitter", "kind", "region", "value")):
            a, b = getattr(rec, f"{p}_{mine}"), got[kind][theirs]
            assert np.array_equal(a, b, equal_nan=True), (kind, mine)
