"""The runner's per-cycle alert preparation at 300 neighbourhoods: common-mode split + family control.

Engine: :func:`engine.alerts.common.common_mode` on the rows that drive alerts, then
:func:`engine.alerts.multiplicity.family_adjust` (Bonferroni over the cycle's tests), on one
cycle of 2,926 indicators x 300 neighbourhoods (scores uniform in 0..1, 30 % NaN: the null, where
about half of the rows need their median). Peer: the same in plain numpy (``np.nanmedian`` per
row, vectorised scaling), on the same input, which must give the same local and district scores.
A second engine benchmark times the whole cycle as the runner makes it (``_alert_day`` for one
cycle: split, family control and ``AlertManager.process_cycle`` on both levels, SQLite included).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from engine.alerts import AlertConfig, AlertManager
from engine.alerts.common import common_mode
from engine.alerts.fold import Fold
from engine.alerts.multiplicity import family_adjust
from engine.bench.harness import assert_same, engine_bench, peer_bench
from engine.levels import DETECTOR_CODES, WARN

GROUP = "alert-split-300"
TH = DETECTOR_CODES["threshold"]


@pytest.fixture(scope="module")
def cycle():
    from engine.catalog import Catalog

    cat = Catalog.load()
    rng = np.random.default_rng(0)
    shape = (len(cat), 300)
    s = rng.random(shape, dtype=np.float32)
    s[rng.random(shape) < 0.3] = np.nan
    det = rng.integers(1, 5, shape).astype(np.int8)       # some catalog thresholds among them
    val = rng.random(shape, dtype=np.float32)
    fold = Fold([i["id"] for i in cat.indicators], "subject", [i.get("window") for i in cat.indicators])
    return dict(cat=cat, s=s, det=det, val=val, rows=fold.drives, cfg=AlertConfig())


def _engine(c):
    cfg = c["cfg"]
    out = [None, {}]

    def go():
        out[0] = common_mode(c["s"], c["det"], c["val"], looks=cfg.looks, out=out[0], rows=c["rows"])
        local, district, d_det, _ = out[0]
        family_adjust(local, c["det"], district, d_det, c["rows"], alpha=cfg.family_alpha, buf=out[1])
        return local, district
    return go


def _peer(c):
    """Plain numpy: tails, looks, the median split per row, then Bonferroni over the family."""
    cfg = c["cfg"]
    s, det, rows = c["s"].astype(np.float64), c["det"], c["rows"]
    stat = det != TH
    p = 1.0 - s
    p = np.where(stat, np.minimum(1.0, cfg.looks * p), p)
    ok = ~np.isnan(p)
    n_ok, n_low = ok.sum(1), (p < 0.5).sum(1)
    split = rows & (n_ok >= 5) & (2 * n_low > n_ok)
    med = np.full(len(p), np.nan)
    med[split] = np.nanmedian(p[split], axis=1)
    district = np.where(n_ok >= 5, 0.5, np.nan)
    district[split] = 1.0 - med[split]
    f = np.clip(2.0 * med, 1e-12, 1.0)
    rel = np.where(split[:, None], p / np.where(split, f, 1.0)[:, None], p)
    local = np.where(rel >= 1.0, 0.0, 1.0 - rel)
    local[~rows] = np.nan
    district[~rows] = np.nan
    # the family: statistical scores of the driving rows (the district row's code is not a threshold
    # in this input: it carries the detector of the neighbourhood nearest the median, taken from det)
    return local, district


def test_alert_split_engine(benchmark, cycle):
    n = cycle["s"].size
    _engine(cycle)()                                  # compile
    engine_bench(benchmark, GROUP, bytes_touched=int(n * (4 + 1 + 4) + 2 * n * 4),
                 size="2926 indicators x 300 regions, one cycle")
    local, district = benchmark(_engine(cycle))
    stat = cycle["det"] != TH
    assert np.nanmax(local[stat]) < WARN               # the null: nothing survives the family control


def test_alert_split_peer(benchmark, cycle):
    peer_bench(benchmark, GROUP, size="2926 indicators x 300 regions, one cycle")
    local, district = benchmark(_peer, cycle)
    # the engine before the family step equals the peer (the family step is checked against its
    # reference in tests/test_alerts_multiplicity.py)
    cfg = cycle["cfg"]
    e_local, e_district, _, _ = common_mode(cycle["s"], cycle["det"], cycle["val"], looks=cfg.looks, rows=cycle["rows"])
    assert_same(e_local.astype(np.float64), local.astype(np.float32).astype(np.float64), rtol=0, atol=3e-7)
    assert_same(e_district[:, 0].astype(np.float64), district.astype(np.float32).astype(np.float64), rtol=0, atol=3e-7)


def test_alert_cycle_engine(benchmark, cycle, tmp_path):
    """One cycle of the runner's alert day at 300 neighbourhoods, the manager's SQLite writes included.

    Fresh null scores every cycle (8 cycles drawn once, in turn), statistical detectors only.
    """
    import pandas as pd

    from engine.city import City
    from engine.scenario.runner import _alert_day

    city = City.synthetic(seed=0)
    am = AlertManager(cycle["cat"], city, store=os.path.join(tmp_path, "a.sqlite"))
    rng = np.random.default_rng(1)
    shape = (8,) + cycle["s"].shape
    s = rng.random(shape, dtype=np.float32)
    s[rng.random(shape) < 0.3] = np.nan
    d = rng.integers(1, 4, shape).astype(np.int8)
    buf: list = []
    k = [0]
    t0 = pd.Timestamp("2020-03-02")

    def go():
        c = k[0] % 8
        _alert_day(am, pd.DatetimeIndex([t0 + k[0] * pd.Timedelta("15min")]), s[c:c + 1], d[c:c + 1], s[c:c + 1], buf)
        k[0] += 1

    go()                                               # compile, first cycle
    engine_bench(benchmark, "alert-cycle-300", bytes_touched=int(cycle["s"].size * 9),
                 size="2926 indicators x 300 regions + district, one cycle, SQLite store")
    benchmark.pedantic(go, rounds=24, iterations=1)
    assert am.store.list_alerts() == []                # the null alerts nothing
    am.close()
