"""The suite's conventions: floor measurement, role helpers, result equality, peer pairing,
and benchmarks/conftest.py in a real pytest run (heavy marker, --benchmark-disable,
undeclared roles)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.bench.floor import Floor, floor_nbytes, measure_floor, parallel_copy
from engine.bench.harness import (
    apply_floor,
    apply_peer_ratios,
    assert_same,
    declare_benchmark,
    engine_bench,
    pair_peers,
    peer_bench,
    record_floor,
)
from engine.bench.machine import Machine, machine_record, this_machine

REPO = Path(__file__).resolve().parent.parent


class FakeBenchmark:
    def __init__(self, group=None):
        self.group = group
        self.extra_info = {}


# ----------------------------------------------------------------------------- floor

def test_parallel_copy_equals_numpy_copy_on_random_data():
    rng = np.random.default_rng(0)
    for n in (0, 1, 7, 100_003):
        src = rng.normal(size=n)
        src[::5] = np.nan
        dst = np.full(n, -1.0)
        parallel_copy(src, dst)
        np.testing.assert_array_equal(dst, src.copy())


def test_measure_floor_reports_read_plus_written_bytes():
    f = measure_floor(nbytes=2 * 2**20 + 3, repeats=2)
    assert f.nbytes == 2 * 2**20 and f.repeats == 2 and f.threads >= 1
    assert 1e8 < f.parallel_Bps < 1e13 and 1e8 < f.numpy_Bps < 1e13
    assert f.bandwidth_Bps == max(f.parallel_Bps, f.numpy_Bps)  # a plain copy never beats the floor
    assert f.seconds(2 * f.nbytes) == pytest.approx(2 * f.nbytes / f.bandwidth_Bps)
    assert Floor.from_dict(f.as_dict()) == f


@pytest.mark.parametrize("kwargs, message", [
    (dict(nbytes=1000), "nbytes must be an integer >= 1048576 .1 MiB., got 1000"),
    (dict(nbytes=2**21, repeats=0), "repeats must be an integer >= 1, got 0"),
])
def test_measure_floor_names_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        measure_floor(**kwargs)


def test_floor_size_from_environment(monkeypatch):
    monkeypatch.setenv("CITYVITALS_FLOOR_MIB", "8")
    assert floor_nbytes() == 8 * 2**20
    monkeypatch.setenv("CITYVITALS_FLOOR_MIB", "lots")
    with pytest.raises(ValueError, match="CITYVITALS_FLOOR_MIB must be a whole number of MiB, got 'lots'"):
        floor_nbytes()
    with pytest.raises(ValueError, match="bytes_touched must be a finite number >= 0, got -1"):
        Floor(1e9, 1e9, 2**20, 1, 1).seconds(-1)
    with pytest.raises(ValueError, match="bandwidth_Bps must be a finite number > 0, got 0"):
        Floor(0, 1e9, 2**20, 1, 1)
    old_record = {"bandwidth_Bps": 3e10, "numpy_Bps": 1e10, "nbytes": 2**28, "repeats": 5, "threads": 2}
    assert Floor.from_dict(old_record).parallel_Bps == 3e10  # runs saved before parallel_Bps existed


def test_machine_identity_ignores_host_and_small_memory_noise():
    me = this_machine()
    rec = machine_record()
    assert rec["key"] == me.key and rec["cores"] == os.cpu_count()
    info = {"node": "a", "cityvitals": {"cpu_model": me.cpu_model, "cores": me.cores, "memory_bytes": me.memory_bytes}}
    other_host = dict(info, node="b")
    assert Machine.from_machine_info(info) == Machine.from_machine_info(other_host) == me
    assert Machine("X", 2, 8 * 2**30) != Machine("X", 4, 8 * 2**30) != Machine("Y", 4, 8 * 2**30)
    assert Machine("X", 2, 8 * 2**30) != Machine("X", 2, None)
    with pytest.raises(ValueError, match="cores must be a positive integer or None, got 0"):
        Machine("X", 0, None)


# ----------------------------------------------------------------------------- roles

def test_role_helpers_fill_extra_info_and_group():
    e = engine_bench(FakeBenchmark(), "detectors", bytes_touched=np.int64(800), size="300 regions")
    assert e.group == "detectors"
    assert e.extra_info == {"role": "engine", "group": "detectors", "size": "300 regions", "bytes": 800}
    p = peer_bench(FakeBenchmark(), "detectors", scale=20, peer_of="test_detectors_engine")
    assert p.extra_info == {"role": "peer", "group": "detectors", "scale": 20.0, "peer_of": "test_detectors_engine"}


@pytest.mark.parametrize("call, message", [
    (lambda b: engine_bench(b, "g", bytes_touched=0), "bytes_touched must be a positive integer .* got 0"),
    (lambda b: engine_bench(b, "g", bytes_touched=1.5), "got 1.5"),
    (lambda b: declare_benchmark(b, role="engine", group="g"), "role 'engine' needs bytes_touched"),
    (lambda b: peer_bench(b, "g", scale=0), "scale must be a finite number > 0, got 0"),
    (lambda b: peer_bench(b, "g", scale=float("inf")), "got inf"),
    (lambda b: peer_bench(b, " g"), "group must be a non-empty string"),
    (lambda b: declare_benchmark(b, role="floor", group="g", bytes_touched=8, scale=2.0), "peers only"),
    (lambda b: record_floor(b, True), "got True"),
])
def test_role_helpers_name_bad_values(call, message):
    with pytest.raises(ValueError, match=message):
        call(FakeBenchmark())


def test_group_conflict_with_marker_and_role_change_are_errors():
    with pytest.raises(ValueError, match="already has group 'other'"):
        engine_bench(FakeBenchmark(group="other"), "g", bytes_touched=8)
    b = engine_bench(FakeBenchmark(), "g", bytes_touched=8)
    with pytest.raises(ValueError, match="already declared with role 'engine', now 'peer'"):
        peer_bench(b, "g")


# ----------------------------------------------------------------------------- assert_same

def test_assert_same_accepts_equal_results_of_every_kind():
    a = np.array([1.0, np.nan, 3.0])
    assert_same({"x": a, "n": [1, (2, "s")], "f": 0.1 + 0.2},
                {"x": a.copy(), "n": [1, (2, "s")], "f": 0.3})
    df = pd.DataFrame({"a": [1.0, 2.0]}, index=["r1", "r2"])
    assert_same(df, df.copy())
    assert_same(pd.Series([1, 2]), pd.Series([1, 2]))


@pytest.mark.parametrize("engine, peer, message", [
    (np.array([1.0, 2.0]), np.array([1.0, 2.1]), r"result\[1\]: engine .*2\.0.* != peer .*2\.1.* \(1 of 2 differ"),
    (np.zeros(2), np.zeros(3), r"shape engine \(2,\) != peer \(3,\)"),
    ({"a": 1}, {"b": 1}, r"keys differ: engine only \['a'\], peer only \['b'\]"),
    (pd.DataFrame({"a": [1]}), pd.DataFrame({"b": [1]}), r"result.columns: engine \['a'\] != peer \['b'\]"),
    (np.array([1, 2]), np.array([1, 3]), r"result\[1\]"),
    (1.0, float("nan"), r"engine 1.0 != peer nan"),
    ({"x": [1, {"y": 2.0}]}, {"x": [1, {"y": 2.5}]}, r"result\['x'\]\[1\]\['y'\]"),
])
def test_assert_same_names_the_first_difference(engine, peer, message):
    with pytest.raises(AssertionError, match=message):
        assert_same(engine, peer)


# ----------------------------------------------------------------------------- pairing and ratios

def _rec(name, group, role, median, **info):
    return {"name": name, "fullname": f"f.py::{name}", "group": group,
            "extra_info": {"role": role, "group": group, **info}, "stats": {"median": median}}


def test_peer_pairing_by_group_and_by_peer_of():
    recs = [
        _rec("e300", "cycle", "engine", 0.01), _rec("e6000", "cycle", "engine", 0.2),
        _rec("p300", "cycle", "peer", 0.5, peer_of="e300"), _rec("p6000", "cycle", "peer", 1.0, scale=20.0,
                                                                  peer_of="e6000"),
        _rec("e", "scan", "engine", 0.1), _rec("p", "scan", "peer", 0.4),
        _rec("lonely", "idx", "engine", 0.1),
        _rec("e2", "amb", "engine", 0.1), _rec("pa", "amb", "peer", 1.0), _rec("pb", "amb", "peer", 1.0),
    ]
    pairs = {k.split("::")[1]: v["name"] for k, v in pair_peers(recs).items()}
    assert pairs == {"e300": "p300", "e6000": "p6000", "e": "p"}  # lonely: none; amb: ambiguous
    apply_peer_ratios(recs)
    info = {r["name"]: r["extra_info"] for r in recs}
    assert info["e6000"]["peer_median_s"] == pytest.approx(20.0)
    assert info["e6000"]["peer_ratio"] == pytest.approx(0.2 / 20.0)
    assert info["e6000"]["speedup"] == pytest.approx(100.0)
    assert info["e"]["speedup"] == pytest.approx(4.0)
    assert "peer_ratio" not in info["lonely"] and "peer_ratio" not in info["e2"]


def test_apply_floor():
    info = {"bytes": 10**9}
    apply_floor(info, 0.2, 1e10)
    assert info == {"bytes": 10**9, "floor_Bps": 1e10, "floor_s": 0.1, "floor_ratio": pytest.approx(2.0)}
    untouched = {}
    apply_floor(untouched, 0.2, 1e10)
    assert untouched == {}
    with pytest.raises(ValueError, match="bandwidth_Bps must be a finite number > 0, got 0"):
        apply_floor({"bytes": 1}, 0.1, 0)


# ----------------------------------------------------------------------------- conftest in a real run

SUITE = {
    "test_ok.py": '''
import numpy as np
import pytest
from engine.bench.harness import assert_same, engine_bench, peer_bench

X = np.arange(1000.0)

def test_sum_engine(benchmark):
    engine_bench(benchmark, "sum", bytes_touched=X.nbytes)
    assert benchmark(np.sum, X) == X.sum()

def test_sum_peer(benchmark):
    peer_bench(benchmark, "sum")
    assert_same(float(np.sum(X)), benchmark(lambda x: float(sum(x)), X))

@pytest.mark.heavy
def test_sum_engine_heavy(benchmark):
    engine_bench(benchmark, "sum-heavy", bytes_touched=8)
    benchmark(np.sum, X)
''',
    "test_bad.py": '''
import numpy as np
from engine.bench.harness import assert_same, peer_bench

def test_wrong_peer(benchmark):
    peer_bench(benchmark, "wrong")
    assert_same(np.array([1.0, 2.0]), benchmark(lambda: np.array([1.0, 2.5])))

def test_undeclared(benchmark):
    benchmark(lambda: 1)
''',
}


def run_suite(tmp_path: Path, *args: str, heavy_env: str | None = None) -> dict[str, str]:
    folder = tmp_path / "suite"
    if not folder.exists():
        folder.mkdir()
        shutil.copy(REPO / "benchmarks" / "conftest.py", folder / "conftest.py")
        (folder / "pytest.ini").write_text("[pytest]\n")
        for name, text in SUITE.items():
            (folder / name).write_text(text)
    env = dict(os.environ, PYTHONPATH=str(REPO), CITYVITALS_FLOOR_MIB="4")
    env.pop("CITYVITALS_BENCH_HEAVY", None)
    if heavy_env is not None:
        env["CITYVITALS_BENCH_HEAVY"] = heavy_env
    xml = tmp_path / f"junit-{len(list(tmp_path.glob('junit-*')))}.xml"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}",
                           *args], cwd=folder, env=env, capture_output=True, text=True, timeout=120)
    outcomes: dict[str, str] = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        kids = [c.tag for c in case]
        name = case.get("name")
        outcome = "passed"
        for tag in ("failure", "error", "skipped"):
            if tag in kids:
                outcome = tag
        if outcome == "passed" or name not in outcomes:  # a teardown error adds a second entry
            outcomes.setdefault(name, outcome)
        if "error" in kids:
            outcomes[name] = "error"
    outcomes["_output"] = proc.stdout + proc.stderr
    return outcomes


def test_disabled_run_checks_results_roles_and_skips_heavy(tmp_path):
    out = run_suite(tmp_path, "--benchmark-disable", "-rs")
    text = out.pop("_output")
    assert out == {"test_sum_engine": "passed", "test_sum_peer": "passed", "test_sum_engine_heavy": "skipped",
                   "test_wrong_peer": "failure", "test_undeclared": "error"}, text
    assert "result[1]: engine" in text and "2.5" in text
    assert "declare the benchmark's role" in text
    assert "heavy size: run with --heavy or CITYVITALS_BENCH_HEAVY=1" in text


@pytest.mark.parametrize("how", ["option", "env"])
def test_heavy_sizes_run_on_request(tmp_path, how):
    args = ["--benchmark-disable", "test_ok.py"]
    out = run_suite(tmp_path, *args, "--heavy") if how == "option" else run_suite(tmp_path, *args, heavy_env="1")
    out.pop("_output")
    assert out["test_sum_engine_heavy"] == "passed"


def test_series_update_matches_numpy_and_checks_its_arguments():
    """The issue-3 reference kernel updates every word of every series as numpy does, in place."""
    from engine.bench.floor import measure_series_update, series_update

    rng = np.random.default_rng(3)
    s = rng.normal(size=(1001, 10)).astype(np.float32)
    want = np.float32(0.5) * s + np.float32(0.5)
    series_update(s, np.float32(0.5), np.float32(0.5))
    assert np.array_equal(s, want)
    assert measure_series_update(5000, 40, repeats=2) > 0
    for bad in (dict(n_series=0), dict(n_series=10, series_bytes=6), dict(n_series=10, repeats=0)):
        with pytest.raises(ValueError, match=str(list(bad.values())[-1])):
            measure_series_update(**bad)
