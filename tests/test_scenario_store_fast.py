"""The run's stores without copies (engine/scenario/store.py, engine/scenario/runner.py; docs/report.md
"Side thread and stores, 2026-11-29 (ninth session)"): the stored-period kernel against a slow
obvious loop bit for bit, appends that write every chunk, and a run at ``store_every`` of one cycle
(the core's day buffer and the detectors' scores stored as they are) equal to a serial run whose
stores are written in the calling thread, while the background writes are slowed down."""

import math
from pathlib import Path

import numpy as np
import pytest

from engine.scenario import store as st


def _slow_mean_max(value, score, factor):
    """Per period of ``factor`` cycles, one value at a time: the NaN-skipping mean (float64 sum
    in cycle order, then the division) and the highest score, rounded to float32."""
    n_out = value.shape[0] // factor
    vout = np.empty((n_out,) + value.shape[1:], np.float32)
    sout = np.empty_like(vout)
    for j in range(n_out):
        for i in range(value.shape[1]):
            for r in range(value.shape[2]):
                acc, cnt, best = 0.0, 0.0, -math.inf
                for k in range(j * factor, (j + 1) * factor):
                    x = float(value[k, i, r])
                    if x == x:
                        acc += x
                        cnt += 1.0
                    s = float(score[k, i, r])
                    if s > best:
                        best = s
                vout[j, i, r] = acc / cnt if cnt > 0.0 else math.nan
                sout[j, i, r] = best if best > -math.inf else math.nan
    return vout, sout


@pytest.mark.parametrize("factor", [1, 2, 3, 4, 5, 8, 12])
@pytest.mark.parametrize("seed", [0, 1])
def test_period_mean_max_equals_the_slow_loop_bit_for_bit(factor, seed):
    rng = np.random.default_rng(seed * 100 + factor)
    shape = (24, 7, 13)
    value = (rng.normal(size=shape) * 10.0 ** rng.integers(-3, 6, shape)).astype(np.float32)
    value[rng.random(shape) < 0.5] = np.nan
    value[rng.random(shape) < 0.03] = np.inf
    value[rng.random(shape) < 0.03] = -np.inf
    value[:, 0, :] = np.nan                          # a row without data
    score = rng.random(shape, dtype=np.float32)
    score[rng.random(shape) < 0.5] = np.nan
    score[rng.random(shape) < 0.1] = 0.0
    score[rng.random(shape) < 0.02] = -np.inf
    score[:, 1, :] = np.nan
    mean, top = st.period_mean_max(value, score, factor)
    want_mean, want_top = _slow_mean_max(value, score, factor)
    np.testing.assert_array_equal(mean.view(np.uint32), want_mean.view(np.uint32))
    np.testing.assert_array_equal(top.view(np.uint32), want_top.view(np.uint32))


def test_append_day_writes_every_chunk_and_reads_back_the_same(tmp_path):
    """All-NaN chunks (the fill value) are written too, and every array reads back bit for bit."""
    import xarray as xr

    rng = np.random.default_rng(3)
    n_t, n_i, n_r = 4, 300, 5                        # indicators in two chunks of 256 and 44
    times = np.arange("2020-01-01T01:00", "2020-01-01T09:00", np.timedelta64(1, "h"), dtype="datetime64[ns]")
    day = [rng.random((n_t, n_i, n_r), dtype=np.float32) for _ in range(2)]
    day[1][:, :256] = np.nan                         # the second day's first chunk: all fill value
    ds = xr.Dataset({"value": (("time", "indicator", "region"), day[0])},
                    coords={"time": times[:n_t], "indicator": np.arange(n_i), "region": np.arange(n_r)})
    path = tmp_path / "s.zarr"
    st.create_store(ds, path)
    st.append_day(path, {"value": day[1]}, times[n_t:])
    keys = {p.name for p in (path / "value").iterdir() if not p.name.startswith(".")}
    assert "1.0.0" in keys and "1.1.0" in keys       # the all-NaN chunk is on disk
    back = xr.open_zarr(path).load()["value"].values
    np.testing.assert_array_equal(back.view(np.uint32), np.concatenate(day).view(np.uint32))



def _store_files(path: Path) -> dict:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("n_new", [4, 3])
def test_append_day_writes_the_files_zarr_writes(tmp_path, monkeypatch, n_new):
    """The chunks written directly (``_append_chunks``: whole time chunks) are the files zarr writes,
    byte for byte (edge chunks padded with the fill value, the compressor's bytes, ``.zarray``, the
    group's attributes, the consolidated metadata); a day that does not fill whole time chunks goes
    through zarr and reads back the same."""
    import xarray as xr

    rng = np.random.default_rng(5)
    n_t, n_i, n_r = 4, 300, 5                        # indicators in two chunks of 256 and 44 (padded)
    times = np.arange("2020-01-01T01:00", "2020-01-01T13:00", np.timedelta64(1, "h"), dtype="datetime64[ns]")
    first = rng.random((n_t, n_i, n_r), dtype=np.float32)
    ds = xr.Dataset({"value": (("time", "indicator", "region"), first)},
                    coords={"time": times[:n_t], "indicator": np.arange(n_i), "region": np.arange(n_r)})
    days = [rng.random((n_new, n_i, n_r), dtype=np.float32) for _ in range(2)]
    for d in days:
        d[rng.random(d.shape) < 0.5] = np.nan
    made = {}
    for name, direct in (("zarr", False), ("direct", True)):
        path = tmp_path / f"{name}.zarr"
        st.create_store(ds, path)
        calls = []
        real = st._append_chunks
        monkeypatch.setattr(st, "_append_chunks",
                            lambda *a: calls.append(real(*a)) or calls[-1] if direct else False)
        for k, d in enumerate(days):
            st.append_day(path, {"value": d}, times[n_t + k * n_new:n_t + (k + 1) * n_new], {"day": k})
        monkeypatch.undo()
        made[name] = path
        if direct:
            assert calls == ([True, True] if n_new == 4 else [False, False])
    assert _store_files(made["zarr"]) == _store_files(made["direct"])
    back = xr.open_zarr(made["direct"]).load()
    np.testing.assert_array_equal(back["value"].values.view(np.uint32),
                                  np.concatenate([first] + days).view(np.uint32))
    assert back.attrs["day"] == 1

@pytest.mark.slow
def test_a_run_storing_every_cycle_equals_a_serial_one_with_slow_writes(tmp_path, monkeypatch):
    """At ``store_every`` of one cycle the stores take the core's day buffer and the detectors'
    scores as they are; the buffers must wait for the day's write. With each background append
    slowed down (the core would replay into a buffer still being written if nothing waited), the
    pipelined run equals a serial run that writes in its own thread."""
    import time

    from engine.cli.scenario import load_build
    from engine.scenario import runner
    from engine.scenario.script import prepare
    from scenario_reference import assert_run_outputs_equal

    script = Path(__file__).resolve().parents[1] / "scenarios" / "staged_reopening.py"
    sc = prepare(load_build(script), seed=0, quick=True).quick(3)
    sc.city = dict(neighbourhoods=12, streets=2, population=40_000)
    sc.sim.incidents.clear()     # they name regions of the quick city (30 neighbourhoods)
    serial = runner.run_scenario(sc, tmp_path / "serial", store_every=None, progress=False, pipeline=False,
                                 store_thread=False)
    append = st.append_day

    def slow(*a, **k):
        time.sleep(1.0)
        return append(*a, **k)

    monkeypatch.setattr(st, "append_day", slow)
    pipe = runner.run_scenario(sc, tmp_path / "pipe", store_every=None, progress=False, pipeline=True)
    assert pipe["detection"] == serial["detection"] and pipe["health"] == serial["health"]
    assert assert_run_outputs_equal(tmp_path / "pipe", tmp_path / "serial")
    import xarray as xr

    v = xr.open_zarr(tmp_path / "pipe" / "values.zarr")
    assert v.sizes["time"] >= 2 * 96 and v.sizes["time"] % 96 == 0   # every cycle; days appended in the background
