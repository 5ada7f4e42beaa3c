"""``cityvitals simulate SCENARIO --out DIR``."""

from __future__ import annotations

import argparse
import json

import pandas as pd
import pytest

from engine.cli import simulate as cli

SCRIPT = '''
from engine import City
from engine.sim import Scenario

city = City.synthetic(seed=2, neighbourhoods=12, streets=2, population=40_000)
seed = 4


def build():
    sc = Scenario("2020-02-01", 6, initial_infections=20, name="demo")
    sc.at("2020-02-01", sector_share=0.3, other=0.5, masks=0.7, testing=0.5)
    sc.incident("water_main_burst", "2020-02-02 09:00", "2020-02-02 15:00", regions=[city.regions.index[2]])
    sc.incident("fraud_wave", "2020-02-05", "2020-02-06", regions=[city.regions.index[3]])
    return sc
'''


def _run(*argv) -> int:
    p = argparse.ArgumentParser()
    cli.register(p.add_subparsers(dest="command"))
    args = p.parse_args(["simulate", *map(str, argv)])
    return args.handler(args)


def test_simulate_writes_feeds_truth_and_curves(tmp_path, capsys):
    script = tmp_path / "demo.py"
    script.write_text(SCRIPT)
    out = tmp_path / "out"
    assert _run(script, "--out", out, "--days", "4") == 0
    assert "simulated 4 days of 'demo' (seed 4)" in capsys.readouterr().out
    names = {p.name for p in out.iterdir()}
    assert {"events.parquet", "readings.parquet", "snapshots.parquet", "truth.json", "curves",
            "summary.json"} <= names
    truth = json.loads((out / "truth.json").read_text())
    assert truth["days"] == 4 and truth["seed"] == 4
    assert [i["kind"] for i in truth["incidents"]] == ["water_main_burst"]      # the fraud wave is after day 4
    assert ["utility_outages", "pipe_burst"] in truth["incidents"][0]["effects"]
    curves = pd.read_parquet(out / "curves" / "epidemic.parquet")
    assert len(curves) == 4 and {"S", "new_infections", "sector_A"} <= set(curves.columns)
    from engine.feeds import Feeds

    feeds = Feeds.read(out)                                   # the curves sit in a sub-folder
    assert not feeds.errors and ("curves", "a folder (folders are not read recursively)") in feeds.skipped
    summary = json.loads((out / "summary.json").read_text())
    assert sum(feeds.n_rows.values()) == summary["total_rows"]
    assert len(summary["rows"]) >= 35          # (a rare event feed may have no event in 4 small days)
    ev = pd.read_parquet(out / "events.parquet")
    assert ev.time.min() >= pd.Timestamp("2020-02-01") and ev.time.max() < pd.Timestamp("2020-02-05")


def test_simulate_seed_option_and_errors(tmp_path, capsys):
    script = tmp_path / "s.py"
    script.write_text("from engine.sim import Scenario\nfrom engine.sim import MiniCity\n"
                      "city = MiniCity.uniform(2, 5000)\nscenario = Scenario('2020-02-01', 2, mode='mean_field')\n")
    assert _run(script, "--out", tmp_path / "o", "--seed", "9", "--cycle", "60") == 0
    assert json.loads((tmp_path / "o" / "truth.json").read_text())["seed"] == 9
    bad = tmp_path / "bad.py"
    bad.write_text("x = 1\n")
    assert _run(bad, "--out", tmp_path / "b") == 2
    assert "defines no `scenario`" in capsys.readouterr().err
    assert _run(tmp_path / "missing.py", "--out", tmp_path / "b") == 2
    assert _run(script, "--out", tmp_path / "c", "--cycle", "7") == 2
    with pytest.raises(SystemExit):
        _run("--out", tmp_path / "x")
