"""The report's figures drawn in a second process (``engine.report.worker``, docs/report.md
fifteenth session): the worker's bytes are the report's own, and a worker that fails only
leaves the figures to the report."""

from __future__ import annotations

import shutil

import pytest

from engine.report import render_report
from engine.report.render import FIGURES
from engine.report.worker import NEEDS, FigureWorker, draw
from run_fixture import fixture_city, write_run


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_run(tmp_path_factory.mktemp("worker") / "run")


@pytest.fixture(scope="module")
def plain(folder, tmp_path_factory):
    """The report drawn the usual way, and its figures' bytes."""
    path = render_report(shutil.copytree(folder, tmp_path_factory.mktemp("plain") / "r"), fixture_city())
    return path.read_bytes(), {n: (path.parent / "figures" / f"{n}.png").read_bytes() for n in FIGURES}


def test_every_figure_has_its_files():
    assert sorted(NEEDS) == sorted(FIGURES)


def test_drawn_figures_give_the_report_s_own_bytes(folder, plain, tmp_path):
    given = shutil.copytree(folder, tmp_path / "given")
    (given / "summary.json").unlink()                # the figures need no summary
    pngs = draw(FIGURES, given, fixture_city())
    assert pngs == plain[1]
    shutil.copy(folder / "summary.json", given / "summary.json")
    path = render_report(given, fixture_city(), pngs=pngs)
    assert path.read_bytes() == plain[0]
    assert {n: (given / "figures" / f"{n}.png").read_bytes() for n in FIGURES} == plain[1]


def test_the_worker_process_draws_the_same_bytes_and_stops_at_a_failure(folder, plain):
    w = FigureWorker.start()                     # one process for the test (its imports cost ~3 s of CPU)
    try:
        w.submit(("epidemic",), folder)
        w.submit(("recovery",), folder)
        w.submit(("map", "domains"), folder, fixture_city())
        got = w.result()
        assert w.failed is None
        assert got == plain[1]
        w.submit(("nope",), folder)
        w.submit(("map",), folder, fixture_city())    # not sent: the worker is marked failed
        assert w.result() == got
        assert "nope" in w.failed
    finally:
        w.close()
    assert w.proc.returncode == 0


def test_a_map_given_needs_the_last_cycle(folder, tmp_path):
    with pytest.raises(ValueError, match="at=None"):
        render_report(shutil.copytree(folder, tmp_path / "r"), fixture_city(), at="2020-03-02", pngs={"map": b""})
