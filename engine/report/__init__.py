"""Reports on scenario runs: the one-screen ``report.html`` of a run and the comparison of runs.

A run folder (written by ``engine.Scenario.run(out=DIR)``; contract in docs/report.md) is read
by :func:`load_run`; :func:`render_report` writes its ``report.html`` and ``figures/*.png``;
:func:`compare_runs` writes ``compare.html`` and ``compare.csv`` for several runs side by side.

>>> from engine.report import render_report, compare_runs, load_run, RunFolderError
>>> issubclass(RunFolderError, ValueError)
True
"""

from __future__ import annotations

from engine.report.compare import compare_runs, compare_table
from engine.report.render import render_report
from engine.report.run import Run, RunFolderError, load_run

__all__ = ["render_report", "compare_runs", "compare_table", "load_run", "Run", "RunFolderError"]
