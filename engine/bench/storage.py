"""Read pytest-benchmark's saved runs and group them by machine.

pytest-benchmark saves each ``--benchmark-autosave`` run as
``<storage>/<machine-id>/NNNN_<commit>_<date>[_uncommited-changes].json`` (default storage
``.benchmarks/``). Its ``<machine-id>`` folder names only the OS and Python, so runs are
grouped here by :class:`engine.bench.machine.Machine` (CPU model, cores, memory) read
from inside each file, and runs of different machines are never put in one history.

A run's place in history is its commit's time (so re-benchmarking an old commit lands
where that commit belongs), else the time of the run (no git, or no commit yet).

>>> import json, tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> (d / "m").mkdir()
>>> run = {"machine_info": {"cityvitals": {"cpu_model": "X", "cores": 2, "memory_bytes": 2**33}},
...        "commit_info": {"id": "unversioned", "time": None, "dirty": False},
...        "datetime": "2025-01-01T00:00:00+00:00", "version": "5.2.3",
...        "benchmarks": [{"group": "g", "name": "test_a", "fullname": "b.py::test_a",
...                        "extra_info": {}, "stats": {"min": 1.0, "max": 1.2, "median": 1.1,
...                        "q1": 1.05, "q3": 1.15, "rounds": 5}}]}
>>> _ = (d / "m" / "0001_unversioned_20250101_000000.json").write_text(json.dumps(run))
>>> store = load_storage(d)
>>> [r.number for r in store.runs], store.runs[0].results["b.py::test_a"].median
([1], 1.1)
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from engine.bench.floor import Floor
from engine.bench.machine import Machine

DEFAULT_STORAGE = ".benchmarks"
_NO_COMMIT = {None, "", "unknown", "unversioned"}
_NUMBER = re.compile(r"^(\d{4})_")


class StorageError(ValueError):
    """A storage folder or a saved run that cannot be read (the message names it)."""


@dataclass(frozen=True)
class Commit:
    """The commit a run measured.

    Attributes
    ----------
    id : str or None
        Full commit id; ``None`` when the run was not made in a git checkout with commits.
    time : datetime or None
        Commit time (timezone-aware).
    dirty : bool
        The working tree had uncommitted changes.
    branch, message : str or None

    Examples
    --------
    >>> Commit("0123456789abcdef", None, True, "main", "speed up scan").label
    '01234567+'
    >>> Commit(None, None, False, None, None).label
    'no commit'
    """

    id: str | None
    time: datetime | None
    dirty: bool
    branch: str | None
    message: str | None

    @property
    def label(self) -> str:
        """Short id, ``+`` when dirty; ``no commit`` without one."""
        if self.id is None:
            return "no commit"
        return self.id[:8] + ("+" if self.dirty else "")


@dataclass(frozen=True)
class Result:
    """One benchmark in one run (times in seconds, per call).

    Examples
    --------
    >>> r = Result("test_a", "f::test_a", "g", 1.0, 0.9, 1.5, 0.95, 1.1, 7, {"role": "engine"})
    >>> r.role, round(r.spread, 4)
    ('engine', 0.1087)
    """

    name: str
    fullname: str
    group: str | None
    median: float
    min: float
    max: float
    q1: float
    q3: float
    rounds: int
    extra_info: dict = field(hash=False, compare=False)

    @property
    def role(self) -> str | None:
        """``engine``, ``peer``, ``floor`` or ``None`` (undeclared)."""
        return self.extra_info.get("role")

    @property
    def spread(self) -> float:
        """The run's own noise on a log scale: ``log(q3 / q1) / 1.349``.

        That is the standard deviation of ``log(time)`` the rounds would have if normal;
        0 for a single round. Used by :mod:`engine.bench.trend` to judge significance.
        """
        if self.q1 > 0 and self.q3 >= self.q1:
            return math.log(self.q3 / self.q1) / 1.349
        return 0.0

    @property
    def peer_ratio(self) -> float | None:
        """Engine median / scaled peer median, when the run paired one."""
        v = self.extra_info.get("peer_ratio")
        return float(v) if isinstance(v, (int, float)) and v > 0 else None

    @property
    def floor_ratio(self) -> float | None:
        """Median / floor time, when the benchmark declared its bytes."""
        v = self.extra_info.get("floor_ratio")
        return float(v) if isinstance(v, (int, float)) and v > 0 else None


@dataclass
class Run:
    """One saved run: machine, commit, time and its results by ``fullname``."""

    path: Path
    number: int | None
    machine: Machine
    commit: Commit
    datetime: datetime
    results: dict[str, Result]
    floor: Floor | None = None
    version: str | None = None

    @property
    def order_key(self):
        """Where the run sits in history: commit time, else run time; then run time, number."""
        when = self.commit.time or self.datetime
        return (when, self.datetime, self.number or 0, str(self.path))

    @property
    def label(self) -> str:
        """``#0003 01234567`` style label for axes and lists."""
        num = f"#{self.number:04d}" if self.number is not None else self.path.stem
        return f"{num} {self.commit.label}"


@dataclass
class Storage:
    """Every readable run of a storage folder, plus the files that were skipped."""

    root: Path
    runs: list[Run]
    skipped: list[tuple[Path, str]]

    def by_machine(self) -> dict[Machine, list[Run]]:
        """Runs grouped by machine, each list in history order.

        >>> Storage(Path("."), [], []).by_machine()
        {}
        """
        groups: dict[Machine, list[Run]] = defaultdict(list)
        for run in self.runs:
            groups[run.machine].append(run)
        return {m: sorted(runs, key=lambda r: r.order_key) for m, runs in
                sorted(groups.items(), key=lambda kv: kv[0].key)}

    def newest(self) -> Run:
        """The run saved last (by its own time), on whatever machine.

        >>> Storage(Path("nowhere"), [], []).newest()
        Traceback (most recent call last):
        ...
        engine.bench.storage.StorageError: no benchmark runs in 'nowhere'
        """
        if not self.runs:
            raise StorageError(f"no benchmark runs in {str(self.root)!r}")
        return max(self.runs, key=lambda r: (r.datetime, r.number or 0))


def _parse_time(value, what: str, path: Path) -> datetime | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise StorageError(f"{path}: {what} must be an ISO 8601 string, got {value!r}")
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise StorageError(f"{path}: {what} is not an ISO 8601 time: {value!r}") from None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _num(stats: dict, key: str, path: Path, name: str, default=None) -> float:
    v = stats.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise StorageError(f"{path}: benchmark {name!r}: stats.{key} must be a finite number >= 0, got {v!r}")
    return float(v)


def load_run(path) -> Run:
    """Read one saved run (pytest-benchmark JSON).

    Raises
    ------
    StorageError
        Naming the file and the field that is missing or wrong.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "0001_x.json"
    >>> _ = p.write_text('{"benchmarks": []}')
    >>> load_run(p)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    engine.bench.storage.StorageError: ...0001_x.json: missing 'machine_info' (not a pytest-benchmark run?)
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise StorageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StorageError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise StorageError(f"{path}: expected a JSON object, got {type(data).__name__}")
    for key in ("machine_info", "benchmarks", "datetime"):
        if key not in data:
            raise StorageError(f"{path}: missing {key!r} (not a pytest-benchmark run?)")
    try:
        machine = Machine.from_machine_info(data["machine_info"])
    except ValueError as exc:
        raise StorageError(f"{path}: bad machine_info: {exc}") from None
    ci = data.get("commit_info") or {}
    if not isinstance(ci, dict):
        raise StorageError(f"{path}: commit_info must be an object, got {ci!r}")
    cid = ci.get("id")
    commit = Commit(
        id=None if cid in _NO_COMMIT else str(cid),
        time=None if cid in _NO_COMMIT else _parse_time(ci.get("time"), "commit_info.time", path),
        dirty=bool(ci.get("dirty", False)),
        branch=ci.get("branch") if isinstance(ci.get("branch"), str) else None,
        message=ci.get("message") if isinstance(ci.get("message"), str) else None,
    )
    when = _parse_time(data["datetime"], "datetime", path)
    if when is None:
        raise StorageError(f"{path}: datetime is empty")
    if not isinstance(data["benchmarks"], list):
        raise StorageError(f"{path}: benchmarks must be a list, got {type(data['benchmarks']).__name__}")
    results: dict[str, Result] = {}
    for i, b in enumerate(data["benchmarks"]):
        if not isinstance(b, dict) or not isinstance(b.get("fullname"), str) or not isinstance(b.get("stats"), dict):
            raise StorageError(f"{path}: benchmarks[{i}] lacks a fullname or stats")
        name, st = b.get("name") or b["fullname"], b["stats"]
        median = _num(st, "median", path, name)
        lo, hi = _num(st, "min", path, name, median), _num(st, "max", path, name, median)
        q1, q3 = _num(st, "q1", path, name, median), _num(st, "q3", path, name, median)
        rounds = st.get("rounds", 1)
        extra = b.get("extra_info") if isinstance(b.get("extra_info"), dict) else {}
        results[b["fullname"]] = Result(str(name), b["fullname"], b.get("group"), median, lo, hi, q1, q3,
                                        int(rounds) if isinstance(rounds, int) else 1, dict(extra))
    floor = None
    ours = data.get("cityvitals")
    if isinstance(ours, dict) and isinstance(ours.get("floor"), dict):
        try:
            floor = Floor.from_dict(ours["floor"])
        except ValueError as exc:
            raise StorageError(f"{path}: bad cityvitals.floor: {exc}") from None
    m = _NUMBER.match(path.name)
    return Run(path=path, number=int(m.group(1)) if m else None, machine=machine, commit=commit,
               datetime=when, results=results, floor=floor, version=data.get("version"))


def load_storage(root=DEFAULT_STORAGE) -> Storage:
    """Read every saved run under ``root`` (any depth), skipping unreadable files.

    Parameters
    ----------
    root : str or Path
        pytest-benchmark's storage folder (``--benchmark-storage``; default ``.benchmarks``).

    Raises
    ------
    StorageError
        When ``root`` is not a folder.

    Examples
    --------
    >>> load_storage("/no/such/folder")
    Traceback (most recent call last):
    ...
    engine.bench.storage.StorageError: benchmark storage '/no/such/folder' is not a folder (run `pytest benchmarks/ --benchmark-autosave` first)
    """
    root = Path(root)
    if not root.is_dir():
        raise StorageError(f"benchmark storage {str(root)!r} is not a folder "
                           "(run `pytest benchmarks/ --benchmark-autosave` first)")
    runs, skipped = [], []
    for path in sorted(root.rglob("*.json")):
        try:
            runs.append(load_run(path))
        except StorageError as exc:
            skipped.append((path, str(exc)))
    return Storage(root=root, runs=runs, skipped=skipped)
