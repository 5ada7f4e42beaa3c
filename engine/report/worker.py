"""The report's figures drawn in a second process while a run goes on (:class:`FigureWorker`).

A run's last seconds were serial on one core: the epidemic and recovery figures, then the
summary, then the risk map and the domain figure (matplotlib holds the GIL: a thread cannot
draw them beside the run's own Python). With ``CITYVITALS_FIGURE_WORKER=1``
(:func:`engine.scenario.runner.run_scenario`; off by default: under load it cost CPU and won no
wall, docs/report.md fifteenth session) a run starts a **figure worker** at its start: a plain
Python process (``python3 -m engine.report.worker``: spawned, not forked, as numba's OpenMP
runtime and ``fork`` do not mix) that imports matplotlib and the report while the run's start
leaves the second core idle, then draws each figure as soon as the files it reads are written
(:data:`NEEDS`): the epidemic figure at the start, the recovery figure when ``economy.parquet``
is written, the map and the domain figure when ``indices.zarr`` is complete, while the run
makes its summary. :func:`engine.report.render_report` takes the PNG bytes (``pngs``). They are
the bytes the report draws itself (the same functions on the same files; a figure reads nothing
else of the run: ``tests/test_report_tail.py``). A worker that fails or has gone only costs the
time: :meth:`FigureWorker.result` returns what it has, and the report draws the rest.

Requests and answers are pickles on the worker's stdin and stdout, answered in order:
``(names, run_dir, city)`` -> ``({name: png bytes}, error text or None)``.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
from pathlib import Path

#: the files each figure reads (besides the city for the map and the domains)
NEEDS = {"epidemic": ("epidemic.parquet",), "recovery": ("economy.parquet",),
         "map": ("indices.zarr",), "domains": ("indices.zarr",)}


def draw(names, run_dir, city=None) -> dict:
    """PNG bytes of the report's figures ``names`` (keys of :data:`NEEDS`) of the run folder
    ``run_dir``, the files of :data:`NEEDS` written (``summary.json`` need not be): what
    :func:`engine.report.render_report` draws (``city`` the one it draws the map with).

    Raises
    ------
    ValueError
        A name not in :data:`NEEDS`.
    """
    from engine.report import figures as F
    from engine.report.run import Run

    bad = [n for n in names if n not in NEEDS]
    if bad:
        raise ValueError(f"figures {bad}: expected some of {list(NEEDS)}")
    run = Run(path=Path(run_dir), summary={}, truth={})
    make = {"epidemic": lambda: F.save_png(F.epidemic_figure(run)),
            "recovery": lambda: F.save_png(F.recovery_figure(run)),
            "map": lambda: F.save_png(F.map_figure(run, city, None), tight=True),
            "domains": lambda: F.save_png(F.domain_figure(run, [city]))}
    return {n: make[n]() for n in names}


class FigureWorker:
    """A running figure worker: :meth:`submit` figures to draw, :meth:`result` their bytes, :meth:`close`.

    :meth:`start` returns None where the process does not start; the run then draws its figures
    itself.
    """

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self._sent = 0                # requests sent
        self._got: dict = {}          # name -> bytes
        self._answered = 0
        self.failed: str | None = None
        self._cond = threading.Condition()
        # the answers are read as they come (a worker blocked writing an answer nobody reads
        # would never read the next request: both pipes full)
        self._reader = threading.Thread(target=self._read, name="figure-worker-read", daemon=True)
        self._reader.start()

    @classmethod
    def start(cls) -> FigureWorker | None:
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["MPLBACKEND"] = "Agg"
        try:
            proc = subprocess.Popen([sys.executable, "-m", "engine.report.worker"], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, env=env, cwd=root)
        except OSError:
            return None
        return cls(proc)

    def _read(self) -> None:
        while True:
            try:
                got, err = pickle.load(self.proc.stdout)
            except Exception as e:       # EOF: the worker ended (closed, or died)
                with self._cond:
                    if self.failed is None and self._answered < self._sent:
                        self.failed = f"worker gone: {type(e).__name__}: {e}"
                    self._cond.notify_all()
                return
            with self._cond:
                self._answered += 1
                if err is not None and self.failed is None:
                    self.failed = err
                self._got.update(got or {})
                self._cond.notify_all()

    def submit(self, names, run_dir, city=None) -> None:
        """Draw figures ``names`` of ``run_dir`` (their files of :data:`NEEDS` written) in the worker."""
        with self._cond:
            if self.failed is not None:
                return
            try:
                pickle.dump((tuple(names), str(run_dir), city), self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
                self.proc.stdin.flush()
            except (OSError, ValueError) as e:
                self.failed = f"worker gone: {type(e).__name__}: {e}"
                return
            self._sent += 1

    def result(self) -> dict:
        """The bytes of every figure submitted (waiting for them), by name; those the worker
        could not draw are missing (the reason in :attr:`failed`)."""
        with self._cond:
            while self._answered < self._sent and self.failed is None:
                self._cond.wait()
            return dict(self._got)

    def close(self, wait: bool = True) -> None:
        """End the worker: it finishes what it was given (``wait``), or is stopped at once (a run
        that failed need not wait for its figures)."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        if not wait:
            self.proc.kill()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=10)


def _prepare() -> None:
    """What the figures' first drawing would load, loaded while the run starts: matplotlib and the
    report, the map's modules, xarray's Zarr and dask machinery (its chunk managers' entry points,
    ~0.5 s the first time a store is opened)."""
    import contextlib

    from engine.report import figures  # noqa: F401
    from engine.report import run  # noqa: F401

    with contextlib.suppress(ImportError):
        import engine.indices.compute  # noqa: F401 - the map's time selection
        import engine.maps  # noqa: F401
    with contextlib.suppress(Exception):
        import dask.array  # noqa: F401
        import zarr  # noqa: F401
        from xarray.namedarray.parallelcompat import list_chunkmanagers

        list_chunkmanagers()


def main() -> int:
    """The worker's loop: requests from stdin, answers to stdout (stdout is the pipe only:
    anything printed goes to stderr)."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    inp = sys.stdin.buffer
    import traceback

    _prepare()

    while True:
        try:
            names, run_dir, city = pickle.load(inp)
        except EOFError:
            return 0
        try:
            got, err = draw(names, run_dir, city), None
        except Exception:
            got, err = {}, traceback.format_exc()[-2000:]
        pickle.dump((got, err), out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()


if __name__ == "__main__":  # pragma: no cover - the worker process
    sys.exit(main())
