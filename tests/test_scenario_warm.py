"""The warmer (engine.scenario.warm): the cache probe and its record, the cache lock, a failing
warmer, the warm-up's stages, and a run with a warmer equal to one without."""

import importlib
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from engine.scenario import warm
from scenario_reference import assert_run_outputs_equal


def _module(tmp_path, name, body="return x * 2.0"):
    src = tmp_path / f"{name}.py"
    src.write_text(textwrap.dedent(f"""
        from engine.config import njit

        @njit
        def f(x):
            {body}
    """))
    if str(tmp_path) not in sys.path:
        sys.path.insert(0, str(tmp_path))
    sys.modules.pop(name, None)
    return importlib.import_module(name)


def test_needs_warming_follows_the_record_and_numbas_own_stamp(tmp_path, monkeypatch):
    record = tmp_path / "record.json"
    monkeypatch.setattr(warm, "_record_path", lambda: record)
    mod = _module(tmp_path, "warm_probe_mod")
    assert warm.needs_warming()                       # no record: a fresh cache
    mod.f(1.0)                                        # compiled and saved to the cache beside the file
    warm.write_record([("warm_probe_mod", "f")])
    assert not warm.needs_warming()                   # recorded and cached: nothing to do
    rec = json.loads(record.read_text())
    record.write_text(json.dumps(dict(rec, numba="0.0.0")))
    assert warm.needs_warming()                       # another numba's record
    record.write_text(json.dumps(dict(rec, kernels=[["warm_probe_mod", "gone"]])))
    assert warm.needs_warming()                       # a recorded kernel no longer there
    record.write_text(json.dumps(rec))
    assert not warm.needs_warming()
    # the kernel's file edited (numba's stamp: its mtime and size): its cache index is stale
    time.sleep(0.01)
    _module(tmp_path, "warm_probe_mod", body="return x * 3.0")
    assert warm.needs_warming()
    record.write_text("not json")
    assert warm.needs_warming()


def test_cache_lock_wraps_numbas_cache_io_and_restores_it(tmp_path):
    from numba.core import caching

    save, load = caching.IndexDataCacheFile.save, caching.IndexDataCacheFile.load
    lock = tmp_path / "cache.lock"
    with warm.cache_lock(lock):
        assert caching.IndexDataCacheFile.save.__wrapped__ is save
        with warm.cache_lock(lock):                   # re-entrant
            assert caching.IndexDataCacheFile.load.__wrapped__ is load
        assert caching.IndexDataCacheFile.save is not save
        mod = _module(tmp_path, "warm_lock_mod")
        assert mod.f(2.0) == 4.0                      # saves through the lock
    assert (caching.IndexDataCacheFile.save, caching.IndexDataCacheFile.load) == (save, load)
    mod = _module(tmp_path, "warm_lock_mod")
    assert mod.f(2.0) == 4.0 and len(mod.f.stats.cache_hits) == 1   # what was saved loads
    with pytest.raises(RuntimeError):
        with warm.cache_lock(lock):
            raise RuntimeError("boom")
    assert (caching.IndexDataCacheFile.save, caching.IndexDataCacheFile.load) == (save, load)


def test_cache_lock_excludes_another_process(tmp_path):
    # a second process holding the lock file keeps this process's cache loads waiting
    import fcntl

    lock = tmp_path / "cache.lock"
    lock.touch()
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import fcntl, sys, time
        fh = open({str(lock)!r}, "a"); fcntl.flock(fh, fcntl.LOCK_EX)
        print("held", flush=True); time.sleep(0.6)
    """)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    mod = _module(tmp_path, "warm_excl_mod")
    with warm.cache_lock(lock):
        t0 = time.perf_counter()
        mod.f(1.0)                                    # its cache load waits for the lock
        waited = time.perf_counter() - t0
    holder.wait()
    with open(lock, "a") as fh:                       # released: free again
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert waited > 0.2


def test_wait_gives_up_when_a_warmer_fails(tmp_path):
    import contextlib

    folder = tmp_path / "w"
    folder.mkdir()
    ok = subprocess.Popen([sys.executable, "-c", "pass"])
    bad = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"])
    ok.wait()
    w = warm.Warmer([("a", ("learn",), ok), ("b", ("learn", "detect", "alerts"), bad)], folder,
                    contextlib.ExitStack())
    (folder / "learn.a.done").touch()
    assert not w.wait("learn")                        # b ended without it
    assert "rc 3" in w.failed and "learn" in w.failed and "warmer b" in w.failed
    (folder / "detect.b.done").touch()
    assert w.wait("detect")                           # done before it ended: still true
    (folder / "failed.b").write_text("Traceback: boom")
    (folder / "learn.b.done").touch()
    assert w.wait("learn")                            # every process that has it did it
    assert not w.wait("alerts")
    assert set(w.report()["waited_s"]) == {"learn", "detect", "alerts"}
    w.close()                                         # a failed warm-up records nothing
    assert not folder.exists()
    assert w.report()["failed"] == w.failed


def test_waiting_gives_the_warmers_the_runs_priority(tmp_path):
    import contextlib
    import os
    import threading

    # a "warmer" at nice 10 with a second thread (Linux sets nice per thread)
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import os, threading, time
        os.nice(10)
        threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
        print("ready", flush=True)
        time.sleep(30)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        own = os.getpriority(os.PRIO_PROCESS, 0)
        tids = [int(t) for t in os.listdir(f"/proc/{proc.pid}/task")]
        assert len(tids) >= 2 and all(os.getpriority(os.PRIO_PROCESS, t) == own + 10 for t in tids)
        w = warm.Warmer([("a", ("learn",), proc)], tmp_path, contextlib.ExitStack())
        (tmp_path / "learn.a.done").touch()
        assert w.wait("learn") and w.promoted is None     # done: no wait, no change
        threading.Timer(0.3, (tmp_path / "detect.a.done").touch).start()
        w.procs = [("a", ("learn", "detect"), proc)]
        assert w.wait("detect")
        if w.promoted is True:
            assert all(os.getpriority(os.PRIO_PROCESS, t) == own for t in tids)
            assert w.report()["promoted"] is True
        else:                                             # no CAP_SYS_NICE: refused, reported
            assert isinstance(w.promoted, str) and "promoted" in w.report()
    finally:
        proc.kill()
        proc.wait()


def test_a_stage_no_warmer_has_is_done(tmp_path):
    import contextlib

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        w = warm.Warmer([("a", ("learn",), proc)], tmp_path, contextlib.ExitStack())
        assert w.wait("store") and w.done("store")
        assert not w.done("learn")
    finally:
        proc.kill()
        proc.wait()


def test_wait_for_no_warmer_is_a_no_op():
    warm.wait(None, "learn")


def test_never_starts_with_the_switch_off(monkeypatch):
    monkeypatch.setenv("CITYVITALS_WARM", "0")
    assert warm.start(None, "15min", 4, None, force=True) is None


def test_synthetic_values_are_float32_with_missing_values():
    v = warm.synthetic_values(3, 4, 50)
    assert v.dtype == np.float32 and v.shape == (3, 4, 50) and v.flags.c_contiguous
    assert np.isnan(v).any() and (v[np.isfinite(v)] > 0).all()


def test_the_warmers_dataset_has_the_engines_indicators_and_regions():
    from engine.catalog import Catalog
    from engine.city import City
    from engine.core import Engine
    from engine.core.dataset import indicator_coords, make_dataset
    from engine.core.rollup import level_groups

    city = City.synthetic(seed=1, neighbourhoods=12, streets=3, population=30_000)
    catalog = Catalog.load()
    eng = Engine(city, catalog)
    _, labels, _ = level_groups(city, city.levels[0])
    ds = make_dataset(np.zeros((1, len(catalog.indicators), len(labels)), np.float32),
                      indicator_coords(catalog.indicators), labels, city.levels[0], times=[0])
    assert list(ds["indicator"].values) == list(eng.plan.indicator_ids)
    assert list(ds["region"].values) == list(city.regions.index)


@pytest.mark.slow
def test_warm_stages_runs_every_stage(tmp_path):
    import dataclasses

    from engine.city import City
    from engine.indices import load_config

    city = City.synthetic(seed=1, neighbourhoods=12, streets=3, population=30_000)
    cfg = dataclasses.replace(load_config(), history_window=0)
    for factor in (1, 4):
        folder = tmp_path / f"f{factor}"
        folder.mkdir()
        took = warm.warm_stages(city, "15min", factor, cfg, folder)
        assert set(took) == set(warm.STAGES)
        assert {p.name for p in folder.glob("*.done")} == {f"{s}.a.done" for s in warm.STAGES}


@pytest.mark.slow
def test_a_run_with_a_warmer_equals_one_without(tmp_path, monkeypatch):
    from engine.cli.scenario import load_build
    from engine.scenario.script import prepare

    script = Path(__file__).resolve().parents[1] / "scenarios" / "staged_reopening.py"
    sc = prepare(load_build(script), seed=0, quick=True).quick(1)
    sc.city = dict(neighbourhoods=12, streets=2, population=40_000)
    sc.sim.incidents.clear()
    record = tmp_path / "record.json"
    monkeypatch.setenv("CITYVITALS_WARM_RECORD", str(record))   # the warmer's too
    with_w = sc.run(tmp_path / "warm", store_every="1h", progress=False, warm=True)
    without = sc.run(tmp_path / "cold", store_every="1h", progress=False, warm=False)
    assert "failed" not in with_w["warm"], with_w["warm"]
    assert set(with_w["warm"]["waited_s"]) == set(warm.STAGES)
    assert "warm" not in without
    assert with_w["detection"] == without["detection"] and with_w["health"] == without["health"]
    assert_run_outputs_equal(tmp_path / "warm", tmp_path / "cold")
    # a complete warm-up recorded its kernels; the probe now finds them cached
    assert json.loads(record.read_text())["kernels"]
    assert not warm.needs_warming()
