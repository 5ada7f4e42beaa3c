"""Conventions every benchmark group plugs into (see docs/benchmarks.md).

* The memory-bandwidth floor is measured once per session, before the first benchmark
  (``bandwidth_floor`` fixture; a parallel copy with all cores beside a one-thread numpy
  copy, best of 5 each, bytes read + written per second, the faster counts;
  ``CITYVITALS_FLOOR_MIB`` sets the array size, default 256 MiB).
* Every test that uses ``benchmark`` must declare its role first with
  ``engine.bench.harness.engine_bench`` / ``peer_bench`` / ``declare_benchmark``; a test
  that does not is reported as an error at teardown.
* After a benchmark ran, its ``extra_info`` gets ``floor_s`` and ``floor_ratio``; when
  the run is saved, engine/peer ratios are computed and the floor, the machine (CPU
  model, cores, memory) and the commit message are stored with it.
* ``@pytest.mark.heavy`` sizes are skipped unless ``--heavy`` or
  ``CITYVITALS_BENCH_HEAVY=1``.
* Under ``--benchmark-disable`` each benchmark runs once, as a plain test; a module may then run
  it at a smaller *CI size* (the ``ci_size`` fixture is True): every assertion it makes still
  runs and every branch it exercised is still exercised (each module says why). Timed runs
  (``--benchmark-only``, a plain ``pytest benchmarks``) always use the sizes the issues name.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

if importlib.util.find_spec("engine") is None:  # a checkout run without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.bench.floor import Floor, measure_floor  # noqa: E402
from engine.bench.harness import apply_floor, apply_peer_ratios  # noqa: E402
from engine.bench.machine import machine_record  # noqa: E402

HEAVY_ENV = "CITYVITALS_BENCH_HEAVY"
_HERE = Path(__file__).resolve().parent
_FLOOR = pytest.StashKey[Floor]()


def pytest_addoption(parser):
    group = parser.getgroup("cityvitals", "cityvitals benchmarks")
    group.addoption("--heavy", action="store_true", default=False,
                    help=f"also run benchmark sizes marked heavy (or set {HEAVY_ENV}=1)")


def pytest_configure(config):
    config.addinivalue_line("markers", "heavy: benchmark sizes skipped in a quick run (run with --heavy)")


def heavy_enabled(config) -> bool:
    """True when heavy sizes run: ``--heavy`` or ``CITYVITALS_BENCH_HEAVY`` in 1/true/yes."""
    env = os.environ.get(HEAVY_ENV, "").strip().lower()
    return bool(config.getoption("heavy", default=False)) or env in ("1", "true", "yes", "on")


def benchmarks_enabled(config) -> bool:
    """False under ``--benchmark-disable``/``--benchmark-skip`` (benchmarks run once, untimed)."""
    bs = getattr(config, "_benchmarksession", None)
    if bs is None:
        return False
    return not (bs.disabled or bs.skip)


def ci_size_enabled(config) -> bool:
    """True when a benchmark runs once, untimed (``--benchmark-disable``, the CI mode): it may use
    its smaller CI size. False whenever benchmarks are timed."""
    return not benchmarks_enabled(config)


@pytest.fixture(scope="session")
def ci_size(request) -> bool:
    """True under ``--benchmark-disable``: run at the module's CI size (see the module docstring)."""
    return ci_size_enabled(request.config)


def session_floor(config) -> Floor:
    """The session's memory-bandwidth floor, measured on first use."""
    if _FLOOR not in config.stash:
        config.stash[_FLOOR] = measure_floor()
    return config.stash[_FLOOR]


def _under_here(item) -> bool:
    try:
        Path(str(item.path)).resolve().relative_to(_HERE)
    except ValueError:
        return False
    return True


def pytest_collection_modifyitems(config, items):
    if heavy_enabled(config):
        return
    skip = pytest.mark.skip(reason=f"heavy size: run with --heavy or {HEAVY_ENV}=1")
    for item in items:
        if _under_here(item) and item.get_closest_marker("heavy") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def bandwidth_floor(request) -> Floor:
    """The memory-bandwidth floor of this session (:class:`engine.bench.floor.Floor`)."""
    return session_floor(request.config)


@pytest.fixture(scope="session", autouse=True)
def _measure_floor_before_benchmarks(request):
    """Measure the floor first, on a quiet machine, when benchmarks are timed."""
    config = request.config
    if benchmarks_enabled(config) and any(
            "benchmark" in getattr(item, "fixturenames", ()) and item.get_closest_marker("skip") is None
            for item in request.session.items):
        session_floor(config)
    yield


@pytest.fixture(autouse=True)
def _benchmark_conventions(request):
    """Check the role declaration; after the run, fill the floor fields of ``extra_info``."""
    if "benchmark" not in request.fixturenames:
        yield
        return
    bm = request.getfixturevalue("benchmark")
    yield
    if getattr(bm, "_mode", None) is None:  # the test did not call benchmark(...)
        return
    info = bm.extra_info
    if info.get("role") is None:
        pytest.fail(f"{request.node.nodeid}: declare the benchmark's role before calling it, with "
                    "engine.bench.harness.engine_bench(benchmark, group, bytes_touched=...) or "
                    "peer_bench(benchmark, group, scale=...) (docs/benchmarks.md)", pytrace=False)
    stats = getattr(bm, "stats", None)
    if stats is not None and stats.stats and "bytes" in info:
        apply_floor(info, stats.stats.median, session_floor(request.config).bandwidth_Bps)


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["cityvitals"] = machine_record()


def pytest_benchmark_update_commit_info(config, commit_info):
    if commit_info.get("id") in (None, "unknown", "unversioned"):
        return
    try:
        msg = subprocess.run(["git", "log", "-1", "--format=%s", str(commit_info["id"])],
                             cwd=str(config.rootpath), capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return
    if msg.returncode == 0:
        commit_info["message"] = msg.stdout.strip()


def pytest_benchmark_update_json(config, benchmarks, output_json):
    floor = session_floor(config)
    for bench in output_json.get("benchmarks", []):
        info = bench.setdefault("extra_info", {})
        apply_floor(info, (bench.get("stats") or {}).get("median"), floor.bandwidth_Bps)
    apply_peer_ratios(output_json.get("benchmarks", []))
    output_json["cityvitals"] = {"schema": 1, "floor": floor.as_dict(), "heavy": heavy_enabled(config)}
