"""The README performance table, from the newest saved run.

One row per engine (and floor) benchmark of the newest run: its median, its peer's
median (scaled to the engine's size), the speed-up over the peer (peer / engine) and the
floor ratio (median / the time the memory-bandwidth floor implies for its bytes). A line
above the table names the run, its date, commit and machine.

>>> from engine.bench.table import performance_table
>>> performance_table("/no/such/folder")
Traceback (most recent call last):
...
engine.bench.storage.StorageError: benchmark storage '/no/such/folder' is not a folder (run `pytest benchmarks/ --benchmark-autosave` first)
"""

from __future__ import annotations

from engine.bench.report import fmt_time
from engine.bench.storage import Run, Storage, load_storage

COLUMNS = ("benchmark", "median", "peer", "speed-up", "floor ratio")


def _md(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def table_rows(run: Run) -> list[tuple[str, str, str, str, str]]:
    """Rows of the table for one run (peers appear only in the peer column).

    Examples
    --------
    >>> from pathlib import Path
    >>> from datetime import datetime, timezone
    >>> from engine.bench.machine import Machine
    >>> from engine.bench.storage import Commit, Result
    >>> e = Result("test_e", "f::test_e", "g", 0.01, 0.009, 0.02, 0.0095, 0.011, 9,
    ...            {"role": "engine", "group": "g", "peer": "test_p", "peer_median_s": 0.2,
    ...             "speedup": 20.0, "floor_ratio": 3.1})
    >>> p = Result("test_p", "f::test_p", "g", 0.05, 0.05, 0.05, 0.05, 0.05, 3,
    ...            {"role": "peer", "group": "g", "scale": 4.0})
    >>> run = Run(Path("0001_x.json"), 1, Machine("X", 2, 2**33), Commit(None, None, False, None, None),
    ...           datetime(2025, 1, 1, tzinfo=timezone.utc), {"f::test_e": e, "f::test_p": p})
    >>> table_rows(run)
    [('g: test_e', '10 ms', '200 ms (peer x4)', '20.0x', '3.1')]
    """
    by_name = {r.name: r for r in run.results.values()}
    rows = []
    for r in sorted(run.results.values(), key=lambda r: (str(r.extra_info.get("group", r.group)), r.name)):
        if r.role == "peer":
            continue
        info = r.extra_info
        group = info.get("group", r.group)
        label = f"{group}: {r.name}" if group else r.name
        peer_s = info.get("peer_median_s")
        peer = "-"
        if isinstance(peer_s, (int, float)):
            peer = fmt_time(peer_s)
            p = by_name.get(info.get("peer"))
            scale = p.extra_info.get("scale", 1.0) if p is not None else 1.0
            if isinstance(scale, (int, float)) and scale != 1.0:
                peer += f" (peer x{scale:g})"
        speed = info.get("speedup")
        fr = r.floor_ratio
        rows.append((label, fmt_time(r.median),
                     peer, f"{speed:.1f}x" if isinstance(speed, (int, float)) else "-",
                     f"{fr:.1f}" if fr is not None else "-"))
    return rows


def performance_table(storage=".benchmarks") -> str:
    """The Markdown performance table of the newest run in ``storage``.

    Parameters
    ----------
    storage : str, Path or Storage
        pytest-benchmark storage folder (default ``.benchmarks``).

    Returns
    -------
    str
        A provenance line (run, date, commit, machine, floor bandwidth), a blank line,
        and the table with columns benchmark | median | peer | speed-up | floor ratio.
    """
    st = storage if isinstance(storage, Storage) else load_storage(storage)
    run = st.newest()
    commit = "no commit" if run.commit.id is None else f"commit `{run.commit.id[:10]}`" + \
        (" with uncommitted changes" if run.commit.dirty else "")
    floor = ""
    if run.floor is not None:
        floor = (f"; memory-bandwidth floor {run.floor.bandwidth_Bps / 1e9:.1f} GB/s read + written "
                 f"(parallel copy {run.floor.parallel_Bps / 1e9:.1f} GB/s with {run.floor.threads} threads, "
                 f"one-thread numpy copy {run.floor.numpy_Bps / 1e9:.1f} GB/s)")
    head = (f"Run {run.label.split()[0]} of {run.datetime:%Y-%m-%d %H:%M} UTC, {commit}, "
            f"on {run.machine.label}{floor}.")
    lines = [_md(head), "", "| " + " | ".join(COLUMNS) + " |", "|---|---:|---:|---:|---:|"]
    for row in table_rows(run):
        lines.append("| " + " | ".join(_md(c) for c in row) + " |")
    return "\n".join(lines) + "\n"
