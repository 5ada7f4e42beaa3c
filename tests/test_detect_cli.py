"""``cityvitals nab``: result files, one row per input row, threshold.json."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd

from engine.cli import nab


def test_nab_command_writes_results(tmp_path):
    data = tmp_path / "data" / "cat"
    data.mkdir(parents=True)
    rng = np.random.default_rng(0)
    t = pd.date_range("2024-01-01", periods=800, freq="5min")
    v = 10 + rng.normal(size=800)
    v[700] = 40
    pd.DataFrame({"timestamp": t.strftime("%Y-%m-%d %H:%M:%S"), "value": v}).to_csv(data / "s.csv", index=False)
    ap = argparse.ArgumentParser()
    nab.register(ap.add_subparsers())
    args = ap.parse_args(["nab", str(tmp_path / "data"), "--out", str(tmp_path / "res"), "--quiet"])
    assert args.handler(args) == 0
    out = pd.read_csv(tmp_path / "res" / "cat" / "s.csv")
    assert list(out.columns) == ["timestamp", "value", "anomaly_score"] and len(out) == 800
    assert out.anomaly_score[700] >= 0.99 and (out.anomaly_score[:120] == 0).all()
    assert json.loads((tmp_path / "res" / "threshold.json").read_text()) == {"threshold": 0.99}
    bad = ap.parse_args(["nab", str(tmp_path / "nothing"), "--out", str(tmp_path / "r2")])
    assert bad.handler(bad) == 2


def test_nab_command_without_likelihood(tmp_path):
    data = tmp_path / "data" / "cat"
    data.mkdir(parents=True)
    rng = np.random.default_rng(1)
    t = pd.date_range("2024-01-01", periods=800, freq="5min")
    v = 10 + rng.normal(size=800)
    v[700] = 40
    pd.DataFrame({"timestamp": t.strftime("%Y-%m-%d %H:%M:%S"), "value": v}).to_csv(data / "s.csv", index=False)
    ap = argparse.ArgumentParser()
    nab.register(ap.add_subparsers())
    for flags in (["--no-likelihood"], ["--raw"]):
        out_dir = tmp_path / ("res" + flags[0])
        args = ap.parse_args(["nab", str(tmp_path / "data"), "--out", str(out_dir), "--quiet", *flags])
        assert args.handler(args) == 0
        out = pd.read_csv(out_dir / "cat" / "s.csv")
        assert len(out) == 800 and out.anomaly_score[700] >= 0.99 and (out.anomaly_score[:120] == 0).all()


def test_nab_command_pending(tmp_path):
    """``--pending N``: an alert opens only after N cycles in a row at or above WARN, so never
    earlier than with 1; a bad count is refused."""
    data = tmp_path / "data" / "cat"
    data.mkdir(parents=True)
    rng = np.random.default_rng(2)
    t = pd.date_range("2024-01-01", periods=800, freq="5min")
    v = 10 + rng.normal(size=800)
    v[700:730] = 30                     # a sustained shift: the score stays high for several cycles
    pd.DataFrame({"timestamp": t.strftime("%Y-%m-%d %H:%M:%S"), "value": v}).to_csv(data / "s.csv", index=False)
    ap = argparse.ArgumentParser()
    nab.register(ap.add_subparsers())
    first = {}
    for n in (1, 3):
        out_dir = tmp_path / f"res{n}"
        args = ap.parse_args(["nab", str(tmp_path / "data"), "--out", str(out_dir), "--quiet", "--pending", str(n)])
        assert args.handler(args) == 0
        sc = pd.read_csv(out_dir / "cat" / "s.csv").anomaly_score.to_numpy()
        hits = np.flatnonzero((sc >= 0.99) & (np.arange(800) >= 700))
        assert len(hits)
        first[n] = hits[0]
    assert first[1] == 700 and first[3] == first[1] + 2
    bad = ap.parse_args(["nab", str(tmp_path / "data"), "--out", str(tmp_path / "r0"), "--pending", "0"])
    assert bad.handler(bad) == 2
