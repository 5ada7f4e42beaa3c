"""Every bundled scenario script runs in --quick mode and writes a complete run folder."""

import json
from pathlib import Path

import pandas as pd
import pytest
import xarray as xr

from engine.cli.scenario import load_build
from engine.scenario.script import QUICK_DAYS, prepare

SCRIPTS = sorted(p for p in (Path(__file__).resolve().parents[1] / "scenarios").glob("*.py")
                 if not p.name.startswith("_") and p.name != "prem_wuhan.py")


def test_the_five_reopening_scripts_are_there():
    assert {p.stem for p in SCRIPTS} >= {"no_reopening", "staged_reopening", "rapid_reopening", "import_surge", "venue_caps"}


def test_scripts_define_60_day_scenarios_with_incidents():
    for script in SCRIPTS:
        sc = load_build(script)(seed=0)
        assert sc.days == 60 and len(sc.sim.incidents) == 7, script.name


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_quick_run_writes_the_run_folder(script, tmp_path):
    sc = prepare(load_build(script), seed=1, quick=True)
    out = tmp_path / sc.name
    summary = sc.run(out, progress=False)
    for name in ("values.zarr", "indices.zarr", "alerts.parquet", "truth.json", "summary.json",
                 "epidemic.parquet", "economy.parquet"):
        assert (out / name).exists(), name
    values = xr.open_zarr(out / "values.zarr")
    assert values["value"].dims == ("time", "indicator", "region")
    assert values.sizes["time"] == QUICK_DAYS * 96 and values.sizes["region"] == 30
    assert values.sizes["indicator"] >= 2600
    indices = xr.open_zarr(out / "indices.zarr")
    assert {"overall", "safety", "safety_index", "imported_risk"} <= set(indices["index"].values.tolist())
    saved = json.loads((out / "summary.json").read_text())
    assert saved["scenario"] == sc.name and saved["seeds"] == [1]
    assert 0 <= saved["health"]["mean_overall"] <= 100
    det = summary["detection"]
    assert len(det["incidents"]) == len(json.loads((out / "truth.json").read_text())["incidents"])
    assert saved["period"]["history_days"] == sc.history_days


@pytest.mark.slow
def test_store_every_keeps_hourly_means(tmp_path):
    script = next(p for p in SCRIPTS if p.stem == "staged_reopening")
    sc = prepare(load_build(script), seed=0, quick=True)
    sc = sc.quick(1)
    sc.city = dict(neighbourhoods=12, streets=2, population=40_000)
    sc.sim.incidents.clear()
    sc.run(tmp_path / "hourly", store_every="1h", progress=False)
    values = xr.open_zarr(tmp_path / "hourly" / "values.zarr")
    assert values.sizes["time"] == 24
    assert str(values["time"].values[0])[:16] == "2020-02-24T01:00"


def test_reused_replay_buffer_leaves_every_stored_value_as_a_fresh_replay_gives(tmp_path, monkeypatch):
    # the runner replays each day into one reused buffer: a view of an earlier day kept past its
    # day would be overwritten by the next one, so the run is compared with one where every day
    # is replayed into a fresh array (history and period both span several days)
    from engine.core.engine import Engine

    script = next(p for p in SCRIPTS if p.stem == "staged_reopening")
    sc = prepare(load_build(script), seed=0, quick=True).quick(2)
    sc.city = dict(neighbourhoods=12, streets=2, population=40_000)
    sc.sim.incidents.clear()  # they name regions of the quick city (30 neighbourhoods)
    sc.run(tmp_path / "reused", progress=False)
    replay = Engine.replay
    calls = []

    def fresh(self, feeds, start, end, level=None, out=None):
        calls.append(out is not None)
        return replay(self, feeds, start, end, level)

    monkeypatch.setattr(Engine, "replay", fresh)
    sc.run(tmp_path / "fresh", progress=False)
    assert len(calls) >= 4 and all(calls)  # the runner did pass a buffer, every day
    a = xr.open_zarr(tmp_path / "reused" / "values.zarr").load()
    b = xr.open_zarr(tmp_path / "fresh" / "values.zarr").load()
    assert a.sizes["time"] == 2 * 96
    xr.testing.assert_identical(a, b)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "reused" / "alerts.parquet"),
                                  pd.read_parquet(tmp_path / "fresh" / "alerts.parquet"))
