"""The run's side thread (engine.scenario.runner): its order and errors, the stage clocks, and a
pipelined run equal to a serial one."""

import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from engine.scenario.runner import Stages, _Side
from scenario_reference import assert_run_outputs_equal


def test_side_runs_calls_in_order_on_one_other_thread():
    side = _Side(threaded=True)
    seen = []
    try:
        futs = [side.submit(lambda k=k: (time.sleep(0.01 * (3 - k)), seen.append((k, threading.get_ident())))) for k in range(3)]
        side.drain()
        assert [k for k, _ in seen] == [0, 1, 2]
        assert len({t for _, t in seen}) == 1 and seen[0][1] != threading.get_ident()
        assert all(f.done() for f in futs)
        assert side.call(lambda: threading.get_ident()) == seen[0][1]
    finally:
        side.close()


def test_side_without_a_thread_runs_at_once():
    side = _Side(threaded=False)
    out = []
    f = side.submit(out.append, 5)
    assert out == [5] and f.result() is None
    assert side.call(lambda: threading.get_ident()) == threading.get_ident()
    side.drain()
    side.close()


def test_side_errors_reach_the_run():
    side = _Side(threaded=True)
    try:
        f = side.submit(lambda: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            f.result()                              # from its future
        with pytest.raises(ZeroDivisionError):
            side.submit(lambda: None)               # from the next submit
        with pytest.raises(ZeroDivisionError):
            side.drain()                            # and from the drain, which forgets it
        assert side.call(lambda: 7) == 7
        side.submit(lambda: (_ for _ in ()).throw(ValueError("bad part")))
        with pytest.raises(ValueError, match="bad part"):
            side.drain()
    finally:
        side.close()


def test_stages_count_a_side_threads_own_cpu():
    stage = Stages()
    burnt = []

    def side():
        with stage("side"):
            c0 = time.thread_time()
            sum(i * i for i in range(300_000))
            burnt.append(time.thread_time() - c0)
            time.sleep(0.1)

    t = threading.Thread(target=side)
    with stage("main"):                         # the owner's stage: the process's CPU
        t.start()
        t.join()
    assert burnt[0] > 0
    assert abs(stage.cpu["side"] - burnt[0]) < 0.01     # the side thread's own CPU (not its sleep)
    assert stage.cpu["main"] >= burnt[0] - 0.001         # the owner counts the side's CPU too
    assert stage.seconds["side"] >= 0.1


def test_stages_own_cpu_counts_the_calling_thread_and_its_named_workers_only():
    stage = Stages()
    burnt, done, stop = {}, threading.Barrier(3), threading.Event()

    def burn(key):
        c0 = time.thread_time()
        sum(i * i for i in range(400_000))
        burnt[key] = time.thread_time() - c0

    def thread(key):      # a pool's thread: it outlives the stage
        burn(key)
        done.wait()
        stop.wait()

    worker = threading.Thread(target=thread, args=("worker",), name="test-core_0")
    other = threading.Thread(target=thread, args=("other",), name="test-other_0")
    with stage("core", own=("test-core",)):
        worker.start(), other.start()
        burn("caller")
        done.wait()
    stop.set()
    worker.join(), other.join()
    with stage("plain"):
        pass
    assert min(burnt.values()) > 0
    want = burnt["caller"] + burnt["worker"]
    assert abs(stage.own["core"] - want) < 0.01 + 0.05 * want      # not the other thread's CPU
    assert stage.cpu["core"] >= want + burnt["other"] - 0.01          # the process's CPU counts it
    assert stage.rounded(own=True) == {"core": round(stage.own["core"], 2)}


@pytest.mark.slow
def test_a_pipelined_run_equals_a_serial_one(tmp_path):
    from engine.cli.scenario import load_build
    from engine.scenario.script import prepare

    script = Path(__file__).resolve().parents[1] / "scenarios" / "staged_reopening.py"
    sc = prepare(load_build(script), seed=0, quick=True).quick(3)
    sc.city = dict(neighbourhoods=12, streets=2, population=40_000)
    sc.sim.incidents.clear()     # they name regions of the quick city (30 neighbourhoods)
    from engine.scenario.runner import run_scenario

    runs = {}
    for name, pipeline in (("pipe", True), ("serial", False)):
        runs[name] = run_scenario(sc, tmp_path / name, store_every="1h", progress=False, pipeline=pipeline)
    a, b = runs["pipe"], runs["serial"]
    assert a["detection"] == b["detection"] and a["health"] == b["health"] and a["economy"] == b["economy"]
    assert a["quarantined"] == b["quarantined"]
    assert "side_wait" in a["stages_s"]
    assert len(pd.read_parquet(tmp_path / "pipe" / "alerts.parquet"))
    assert assert_run_outputs_equal(tmp_path / "pipe", tmp_path / "serial")
    for name in ("map", "domains", "epidemic", "recovery"):
        png = f"figures/{name}.png"
        assert (tmp_path / "pipe" / png).read_bytes() == (tmp_path / "serial" / png).read_bytes(), name
    assert a["stages_own_cpu_s"]["core_replay"] > 0


def test_side_thread_count_from_the_environment(monkeypatch):
    """``CITYVITALS_SIDE_THREADS``: the side thread's numba threads (default 1); a bad value names
    itself before the run starts."""
    import numba

    def side_threads():
        side = _Side(threaded=True)
        try:
            return side.call(numba.get_num_threads)
        finally:
            side.close()

    monkeypatch.delenv("CITYVITALS_SIDE_THREADS", raising=False)
    assert side_threads() == 1
    monkeypatch.setenv("CITYVITALS_SIDE_THREADS", "2")
    assert side_threads() == min(2, numba.config.NUMBA_NUM_THREADS)
    for bad in ("two", "0", "-1"):
        monkeypatch.setenv("CITYVITALS_SIDE_THREADS", bad)
        with pytest.raises(ValueError, match=f"CITYVITALS_SIDE_THREADS='{bad}'.*>= 1"):
            _Side(threaded=True)


def test_history_learning_on_the_side_thread_uses_every_numba_thread_and_learns_the_same(monkeypatch):
    """A history day's learning (:func:`engine.scenario.runner._learn_day`) submitted to the side
    thread: it runs there with numba's full thread count (the side's own kernels keep theirs), is
    timed as ``detectors_learn`` and leaves the same detector state as learning on this thread."""
    import numba
    import numpy as np

    from engine.detect import Detectors
    from engine.scenario.runner import _learn_day

    monkeypatch.delenv("CITYVITALS_SIDE_THREADS", raising=False)

    def make():
        return Detectors.from_spec(direction=["up_bad", "down_bad", "up_bad"], seasonality=["none"] * 3,
                                   count=[False, False, True], n_reg=4, cycle="1h")

    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 48, 3, 4))
    x[:, :, 2] = rng.poisson(3.0, size=(3, 48, 4))
    t = np.datetime64("2024-01-01") + np.arange(3 * 48).reshape(3, 48) * np.timedelta64(1, "h")
    here, there = make(), make()
    for day in range(3):
        here.learn(x[day], t[day])
    seen = []
    learn = there.learn

    def spy(values, times):
        seen.append((threading.current_thread().name, numba.get_num_threads()))
        learn(values, times)

    there.learn = spy
    stage, side = Stages(), _Side(threaded=True)
    try:
        futs = [side.submit(_learn_day, stage, None, there, x[day], t[day]) for day in range(3)]
        futs[-1].result()                                     # in order: the last one done, all done
        assert all(f.done() for f in futs)
        assert side.call(numba.get_num_threads) == 1          # the side's own count, restored
    finally:
        side.close()
    assert [n for n, _ in seen] and all(n.startswith("run-side") for n, _ in seen)
    assert all(k == numba.config.NUMBA_NUM_THREADS for _, k in seen)
    assert stage.seconds["detectors_learn"] > 0
    for name, a in here.state.arrays().items():
        assert np.array_equal(a, there.state.arrays()[name], equal_nan=True), name
