"""The run's tail (docs/report.md, twelfth and fifteenth sessions): the figures a run draws before
its stores are complete (their bytes are the report's own), the report reading ``indices.zarr``
once, and the writer's wait for one store."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from engine.report import load_run, render_report
from engine.report import run as run_mod
from engine.report.render import EARLY_FIGURES, FIGURES, early_figures
from engine.scenario.store import DayWriter
from run_fixture import fixture_city, write_run


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_run(tmp_path_factory.mktemp("tail") / "run")


@pytest.fixture(scope="module")
def plain(folder, tmp_path_factory):
    """The report drawn the usual way, and its figures' bytes."""
    path = render_report(shutil.copytree(folder, tmp_path_factory.mktemp("plain") / "r"), fixture_city())
    return path.read_bytes(), {n: (path.parent / "figures" / f"{n}.png").read_bytes() for n in FIGURES}


def test_early_figures_are_the_report_s_own_bytes(folder, plain, tmp_path):
    given = shutil.copytree(folder, tmp_path / "given")
    early = early_figures(given)           # made from the two tables only: no summary.json needed
    assert sorted(early) == sorted(EARLY_FIGURES)
    (given / "summary.json").unlink()
    assert early_figures(given) == early
    shutil.copy(folder / "summary.json", given / "summary.json")
    path = render_report(given, fixture_city(), pngs=early)
    assert path.read_bytes() == plain[0]
    for name in ("map", "domains", *EARLY_FIGURES):
        assert (given / "figures" / f"{name}.png").read_bytes() == plain[1][name]


def test_a_map_given_needs_the_last_cycle(folder, tmp_path):
    with pytest.raises(ValueError, match="at=None"):
        render_report(shutil.copytree(folder, tmp_path / "r"), fixture_city(), at="2020-03-02", pngs={"map": b""})


def test_only_the_report_s_figures_can_be_given(folder, tmp_path):
    with pytest.raises(ValueError, match="'nope'"):
        render_report(shutil.copytree(folder, tmp_path / "r"), pngs={"nope": b""})


def test_indices_read_into_memory_equal_the_store_and_large_ones_stay_lazy(folder, monkeypatch):
    mem = load_run(folder).indices
    assert all(v.chunks is not None for v in mem.data_vars.values())    # persisted: chunks kept, in memory
    monkeypatch.setattr(run_mod, "PERSIST_BYTES", 0)
    lazy = load_run(folder).indices
    for v in ("health", "grade"):
        a, b = np.asarray(mem[v].values), np.asarray(lazy[v].values)
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    assert len(dict(lazy["health"].__dask_graph__())) > len(dict(mem["health"].__dask_graph__()))


def test_writer_wait_waits_for_one_store_and_raises_its_error(tmp_path, monkeypatch):
    import engine.scenario.store as store

    written = []

    def append_day(path, data, times, attrs=None):
        if str(path).endswith("b"):
            raise RuntimeError("disk full on b")
        written.append(str(path)[-1])

    monkeypatch.setattr(store, "append_day", append_day)
    monkeypatch.setattr(store, "create_store", lambda ds, path: None)
    w = DayWriter()
    for p in ("a", "b", "a", "b"):           # the first day of each store creates it, the second appends
        w.write(tmp_path / p, lambda: None, {}, [])
    w.wait(tmp_path / "a")                   # b's failed write is not a's
    assert written == ["a"]
    with pytest.raises(RuntimeError, match="disk full on b"):
        w.wait(tmp_path / "b")
    with pytest.raises(RuntimeError, match="disk full on b"):
        w.close()
