"""Ingest group: validate + encode 1 million mixed feed rows, against a row-by-row pandas peer.

The load: 600,000 readings, 300,000 events and 100,000 snapshots from
``engine.feeds.synthetic_feeds`` on the 300-neighbourhood synthetic district, with 1 % of the
rows spoiled by ``engine.feeds.corrupt_feeds`` (bad, future and late times, unknown feeds,
categories, channels, regions, sensors, metrics, entities and fields, missing and impossible
values, repeated ids).

* ``test_ingest_engine`` (role engine) times ``engine.feeds.encode`` on the whole load.
* ``test_ingest_peer`` (role peer) times the plain-Python reference validator of
  ``tests/feeds_reference.py`` run through ``DataFrame.apply(axis=1)`` on a 20,000-row slice
  (12,000 readings, 6,000 events, 2,000 snapshots) and is scaled by 50 to the full load; it
  asserts that the engine accepts and quarantines exactly the same rows of that slice, with
  the same reasons and the same encoded values.

Under ``--benchmark-disable`` both run once on a 10,000-row load (40 neighbourhoods) and a
1,000-row peer slice, as plain tests.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.bench.harness import assert_same, engine_bench, peer_bench
from engine.catalog import Catalog
from engine.city import City
from engine.feeds import Feeds, corrupt_feeds, encode, synthetic_feeds

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from feeds_reference import Reference  # noqa: E402

GROUP = "ingest"
START = pd.Timestamp("2020-02-01 00:00")
NOW = pd.Timestamp("2020-02-03 00:00")
WATERMARK = pd.Timestamp("2020-02-01 00:00")
FULL = {"readings": 600_000, "events": 300_000, "snapshots": 100_000}
QUICK = {"readings": 6_000, "events": 3_000, "snapshots": 1_000}
PEER_ROWS = {"full": 20_000, "quick": 1_000}  # rows of the load the peer validates


def _timed(config) -> bool:
    bs = getattr(config, "_benchmarksession", None)
    return bs is not None and not (bs.disabled or bs.skip)


def _load(city, catalog, sizes: dict) -> Feeds:
    kinds = {k: [f for f, s in catalog.feeds.items() if s["kind"] == k] for k in sizes}
    per_cycle = 0
    for f in kinds["readings"]:  # readings per 15-min cycle, to generate just enough
        spec = catalog.feeds[f]
        table = {"sensor": city.sensors, "site": city.sites}.get(spec["emitter"])
        n = len(city.regions) if table is None else int(table["kind"].isin(spec["emitter_kinds"]).sum())
        per_cycle += n * len(spec["metrics"])
    hours = (sizes["readings"] // per_cycle + 1) / 4 + 0.25
    rd = synthetic_feeds(city, catalog, START, START + pd.Timedelta(hours=hours), feeds=kinds["readings"], seed=1)
    pop = city.regions.population.sum() / 1_100_000
    rate = sizes["events"] / (8_400 * pop * 0.9)  # ~8,400 events a day at rate 1 for 1.1 million residents
    ev = synthetic_feeds(city, catalog, START, START + pd.Timedelta(days=1), feeds=kinds["events"], seed=2, rate=rate)
    sn = synthetic_feeds(city, catalog, START, NOW, feeds=kinds["snapshots"], seed=3)
    frames = {"readings": rd.frame("readings"), "events": ev.frame("events"), "snapshots": sn.frame("snapshots")}
    for k, n in sizes.items():
        assert len(frames[k]) >= n, (k, len(frames[k]), n)
    clean = Feeds(**{k: frames[k].iloc[:n].reset_index(drop=True) for k, n in sizes.items()}, source="bench")
    return corrupt_feeds(clean, fraction=0.01, seed=4, now=NOW)


@pytest.fixture(scope="module")
def setup(request):
    timed = _timed(request.config)
    catalog = Catalog.load()
    if timed:
        city = City.synthetic(seed=0)
        sizes = FULL
    else:
        city = City.synthetic(seed=0, neighbourhoods=40, streets=4, population=150_000)
        sizes = QUICK
    feeds = _load(city, catalog, sizes)
    return city, catalog, feeds, sizes, PEER_ROWS["full" if timed else "quick"]


def _size(sizes) -> str:
    return (f"{sum(sizes.values()):,} rows ({sizes['readings']:,} readings, {sizes['events']:,} events, "
            f"{sizes['snapshots']:,} snapshots), 1% corrupted")


def _bytes(feeds: Feeds, enc) -> int:
    read = sum(int(f.memory_usage(index=False, deep=True).sum()) for k in ("events", "readings", "snapshots")
               for _, f in feeds.parts(k))
    written = sum(v.nbytes for k, v in vars(enc).items() if isinstance(v, np.ndarray))
    return read + written


def test_ingest_engine(benchmark, setup):
    city, catalog, feeds, sizes, _ = setup
    enc, q = encode(feeds, city, catalog, now=NOW, watermark=WATERMARK)  # warm-up; sizes the bytes
    engine_bench(benchmark, GROUP, bytes_touched=_bytes(feeds, enc), size=_size(sizes))
    benchmark.extra_info["rows"] = sum(sizes.values())
    enc, q = benchmark.pedantic(encode, args=(feeds, city, catalog), kwargs=dict(now=NOW, watermark=WATERMARK),
                                rounds=3, iterations=1)
    for kind, n in sizes.items():
        assert enc.n_rows[kind] + int((q.frame.kind == kind).sum()) == n
    assert 0.007 * sum(sizes.values()) < len(q) < 0.013 * sum(sizes.values())
    benchmark.extra_info["quarantined"] = len(q)
    benchmark.extra_info["by_reason"] = q.counts()


def _slice(feeds: Feeds, sizes: dict, rows: int) -> tuple[Feeds, dict]:
    share = rows / sum(sizes.values())
    cut = {k: max(1, int(round(n * share))) for k, n in sizes.items()}
    return Feeds(**{k: feeds.frame(k).iloc[:n].reset_index(drop=True) for k, n in cut.items()}, source="bench"), cut


def _peer(ref: Reference, part: Feeds) -> dict:
    return {k: ref.check(k, part.frame(k), use_apply=True) for k in ("events", "readings", "snapshots")}


def test_ingest_peer(benchmark, setup):
    city, catalog, feeds, sizes, rows = setup
    part, cut = _slice(feeds, sizes, rows)
    scale = sum(sizes.values()) / sum(cut.values())
    peer_bench(benchmark, GROUP, scale=scale, size=_size(sizes))
    benchmark.extra_info["peer_rows"] = sum(cut.values())
    benchmark.extra_info["peer_method"] = ("plain-Python row validator (tests/feeds_reference.py) via "
                                           f"DataFrame.apply(axis=1) on a {sum(cut.values()):,}-row slice "
                                           f"({cut['readings']:,} readings, {cut['events']:,} events, "
                                           f"{cut['snapshots']:,} snapshots), time x {scale:g}")
    ref = Reference(city, catalog, NOW, WATERMARK)
    result = benchmark.pedantic(_peer, args=(ref, part), rounds=3, iterations=1)
    # the engine accepts and quarantines exactly the same rows of the slice, for the same reasons
    enc, q = encode(part, city, catalog, now=NOW, watermark=WATERMARK)
    for kind, (reasons, codes) in result.items():
        got = [None] * cut[kind]
        sub = q.frame[q.frame.kind == kind]
        for row, reason in zip(sub["row"].tolist(), sub["reason"].tolist()):
            got[row] = reason
        assert_same(got, reasons, path=f"{kind}.reason")
        prefix = {"events": "ev", "readings": "rd", "snapshots": "sn"}[kind]
        acc = sorted((c for c in codes if c is not None), key=lambda c: c[0])
        assert_same(getattr(enc, f"{prefix}_time"), np.array([c[0] for c in acc], dtype=np.int64), path=f"{kind}.time")
        assert_same(getattr(enc, f"{prefix}_value"), np.array([c[-1] for c in acc], dtype=np.float64),
                    path=f"{kind}.value")
    assert len(q) > 0
