"""``cityvitals explain`` and ``cityvitals map`` on a Zarr run with the compute core's layout."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from engine.catalog import Catalog
from engine.cli import indices as cli

SYN = {"seed": 3, "neighbourhoods": 20, "streets": 3, "population": 80_000}


def run_cli(argv) -> int:
    p = argparse.ArgumentParser(prog="cityvitals")
    sub = p.add_subparsers(dest="command")
    cli.register(sub)
    args = p.parse_args(argv)
    return args.handler(args)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from engine.city import City

    city = City.synthetic(**SYN)
    ids = [i["id"] for i in Catalog.load().indicators][::41]
    rng = np.random.default_rng(0)
    T = 6
    v = rng.poisson(3.0, (T, len(ids), city.n_regions)).astype(float)
    v[-1, :, 0] += 25.0                                 # the first neighbourhood goes bad at the last cycle
    ds = xr.Dataset({"value": (("time", "indicator", "region"), v)},
                    coords={"time": pd.date_range("2020-02-10", periods=T, freq="15min"), "indicator": ids,
                            "region": list(city.regions.index)},
                    attrs={"city": json.dumps({"synthetic": SYN})})
    path = tmp_path_factory.mktemp("run") / "RUN.zarr"
    ds.to_zarr(path)
    return path, city


def test_explain_text_and_json(run, capsys):
    path, city = run
    region = city.regions.index[0]
    assert run_cli(["explain", str(path), "--region", region, "--json", "--top", "5"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["region"] == region and out["time"].startswith("2020-02-10T01:15")
    assert out["score"] < 100 and len(out["indicators"]) == 5
    assert out["contributions_sum"] == pytest.approx(out["gap"], abs=1e-4)
    assert {"value", "baseline", "owner", "contribution"} <= set(out["indicators"][0])
    assert run_cli(["explain", str(path), "--region", city.streets.index[0], "--at", "2020-02-10 00:30"]) == 0
    assert "overall:" in capsys.readouterr().out


def test_map_png_svg_and_all(run, tmp_path, capsys):
    path, _ = run
    assert run_cli(["map", str(path), "--at", "2020-02-10T01:15", "--out", str(tmp_path / "m.png")]) == 0
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"
    assert run_cli(["map", str(path), "--dimension", "safety_index", "--out", str(tmp_path / "s.svg")]) == 0
    assert (tmp_path / "s.svg").read_text().lstrip().startswith("<?xml")
    assert run_cli(["map", str(path), "--dimension", "all", "--out", str(tmp_path / "all.png"), "--lang", "en"]) == 0
    assert len(list(tmp_path.glob("all-*.png"))) == 1 + 4 + 12


@pytest.mark.parametrize("argv, message", [
    (["explain", "{run}", "--region", "NOPE"], "unknown region 'NOPE'"),
    (["explain", "{run}", "--region", "N0001", "--at", "2030-01-01"], "outside the run: cycles run from 2020-02-10"),
    (["explain", "{run}", "--region", "N0001", "--index", "zz"], "unknown index 'zz'; expected one of overall"),
    (["map", "{run}", "--dimension", "zz", "--out", "{tmp}/x.png"], "unknown dimension 'zz'; expected 'all' or one of overall"),
    (["map", "{run}", "--out", "{tmp}/x.jpg"], "must end in .png or .svg"),
    (["map", "{tmp}/missing.zarr", "--out", "{tmp}/x.png"], "does not exist"),
])
def test_bad_arguments_name_the_value(run, tmp_path, capsys, argv, message):
    path, _ = run
    argv = [a.format(run=path, tmp=tmp_path) for a in argv]
    assert run_cli(argv) == 2
    assert message in capsys.readouterr().err
