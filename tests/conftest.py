"""Scheduling of the suite over pytest-xdist workers (CI: ``-n 2 --dist loadfile``).

Compilation is about half the suite's CPU. Under ``--dist loadfile`` each test module is one
work unit; two modules that need the same numba specialisation and run at the same time in the
two workers both miss the (fresh) cache and both compile it. Measured on a clean clone
(2026-11-29, eighth session, docs/benchmarks.md "Suite time"): 130 s of the suite's 497 s of
compile CPU were such duplicates, nearly all between the modules grouped below.

* :data:`SHARED` -- modules that compile the same expensive kernels (the detectors' row pass,
  the core's replay kernels, the indices' accumulation) form one work unit, so one worker
  runs them one after the other and compiles each kernel once (later modules find it in
  memory). Still one worker per file: no test is split from its module.
* Work units are handed out largest first: the shared groups, then the other modules by
  number of tests (xdist's own order for loadfile), then :data:`LAST`.

Without xdist (a plain ``pytest`` run) nothing here applies: the tests run in collection
order in one process, where nothing compiles twice anyway.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# module file name -> shared work unit; the order of the groups is the order they start in
SHARED = {
    "test_detect_series.py": "detect", "test_detect_kernels.py": "detect", "test_detect_detectors.py": "detect",
    "test_detect_scan.py": "detect",
    "test_core_kernels.py": "core",
    "test_indices.py": "indices", "test_indices_batch.py": "indices",
}
_GROUP_RANK = {g: k for k, g in enumerate(dict.fromkeys(SHARED.values()))}
# handed out last: a scenario run needs most of the engine's kernels; after the other modules it
# loads them from the cache instead of compiling them at the same time as another worker
LAST = ("test_scenario_warm.py",)


def unit_of(nodeid: str) -> str:
    """The work unit of a test: its shared group's name, else its file (as ``--dist loadfile``)."""
    path = nodeid.split("::", 1)[0]
    return "shared:" + SHARED[Path(path).name] if Path(path).name in SHARED else path


def pytest_collection_modifyitems(config, items):
    # xdist hands out work units in the workers' collection order (see the scheduler below): the
    # shared groups first, then the other files by number of tests, largest first; each file's
    # tests stay together and in their order. Only in xdist workers.
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    counts: dict[str, int] = {}
    first: dict[str, int] = {}
    for k, item in enumerate(items):
        u = unit_of(item.nodeid)
        counts[u] = counts.get(u, 0) + 1
        first.setdefault(u, k)

    def key(pair):
        k, item = pair
        u = unit_of(item.nodeid)
        if u.startswith("shared:"):
            rank = _GROUP_RANK[u[len("shared:"):]]
        else:
            rank = len(_GROUP_RANK) + (Path(u).name in LAST)
        return (rank, -counts[u] if rank == len(_GROUP_RANK) else 0, first[u], k)

    items[:] = [item for _, item in sorted(enumerate(items), key=key)]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Under ``--dist loadfile``: file work units, but the :data:`SHARED` modules as one unit each,
    handed out in collection order (set above)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SharedCompileScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid)

    config.option.loadscopereorder = False   # the order is the collection's (modifyitems above)
    return SharedCompileScheduling(config, log)


# ----------------------------------------------------------------------------- scenario warmers
# A scenario run on a fresh numba cache spawns two warmer processes (engine.scenario.warm) that
# compile the run's kernels beside it, until one complete warm-up is recorded. In the suite that
# is whichever scenario test first runs on the clean clone (scheduling decides), and its warmers
# compile the detectors' and scan's kernels while the other worker may be compiling the same ones:
# two more processes on two cores, compiling what the workers compile. So the
# suite runs with CITYVITALS_WARM=0 (no warmer: each run compiles in its own process, as on any
# warm cache) but for the modules in WARMER_MODULES, which test the warmer itself and get the
# variable removed. A CITYVITALS_WARM set by the caller is left as it is.

WARMER_MODULES = ("test_scenario_warm.py",)
_WARM_OFF = {"set": False}
_WARM_OFF_ENV = "CITYVITALS_WARM_OFF_BY_TESTS"


@pytest.fixture(autouse=True)
def _scenario_warmer_where_tested(request):
    if _WARM_OFF["set"] and Path(str(request.node.path)).name in WARMER_MODULES:
        mp = pytest.MonkeyPatch()
        mp.delenv("CITYVITALS_WARM", raising=False)
        yield
        mp.undo()
    else:
        yield


# ----------------------------------------------------------------------------- compile log
# CITYVITALS_COMPILE_LOG=DIR: every numba compile of this process (function, signature, CPU of the
# compiling thread without its nested compiles, test) and every test's CPU, written to
# DIR/<worker>-<pid>.json at the session's end (the measurement behind SHARED; docs/benchmarks.md, docs/testing.md).

_LOG: dict = {}


def _log_compiles():
    import threading
    import time

    import numba.core.event as ev

    tls = threading.local()

    class Listener(ev.Listener):
        def on_start(self, event):
            stack = tls.__dict__.setdefault("stack", [])
            stack.append([time.thread_time(), 0.0])

        def on_end(self, event):
            stack = tls.stack
            c0, nested = stack.pop()
            cpu = time.thread_time() - c0
            if stack:
                stack[-1][1] += cpu
            py = event.data["dispatcher"].py_func
            _LOG["compiles"].append({"fn": f"{py.__module__}.{py.__qualname__}", "sig": str(event.data["args"]),
                                     "cpu": cpu, "excl": cpu - nested, "test": _LOG["test"]})

    ev.register("numba:compile", Listener())


def pytest_configure(config):
    if "CITYVITALS_WARM" not in os.environ or os.environ.get(_WARM_OFF_ENV) == "1":
        # scenario warmers off (see WARMER_MODULES); the mark tells the xdist workers it was us
        os.environ["CITYVITALS_WARM"], os.environ[_WARM_OFF_ENV] = "0", "1"
        _WARM_OFF["set"] = True
    if os.environ.get("CITYVITALS_COMPILE_LOG"):
        import time

        _LOG.update(compiles=[], tests=[], test="<collect>", cpu0=time.process_time())
        _log_compiles()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if not _LOG:
        yield
        return
    import time

    _LOG["test"] = item.nodeid
    c0 = time.process_time()
    yield
    _LOG["tests"].append({"nodeid": item.nodeid, "cpu": time.process_time() - c0})
    _LOG["test"] = "<between>"


def pytest_sessionfinish(session):
    # written here, not at unconfigure: an xdist worker is ended before its unconfigure runs
    if not _LOG:
        return
    import json
    import time

    folder = Path(os.environ["CITYVITALS_COMPILE_LOG"])
    folder.mkdir(parents=True, exist_ok=True)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    out = {k: _LOG[k] for k in ("compiles", "tests")}
    out["cpu"] = time.process_time() - _LOG["cpu0"]
    (folder / f"{worker}-{os.getpid()}.json").write_text(json.dumps(out))
