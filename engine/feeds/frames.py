"""``Feeds``: the records of one cycle (or one replay), as pandas frames by kind and source.

A :class:`Feeds` holds events, readings and snapshots, each as a list of ``(source, frame)``
parts: ``source`` is the file name a part came from (``"memory"`` for frames given in code),
so that a quarantined row can be traced back to its file and 0-based row.

Reading files (:meth:`Feeds.read`): CSV (``.csv``, ``.csv.gz``; UTF-8, comma-separated) and
Parquet (``.parquet``, ``.pq``), or a folder of them (not recursive, in name order). A file's
kind comes from, in this order: the ``kind=`` argument; the file-name prefix ``events*``,
``readings*`` or ``snapshots*``; its columns (``metric`` -> readings, ``field`` -> snapshots,
``category`` -> events, when exactly one of them is present). CSV cells are read as text (ids
such as ``00123`` keep their zeros) and parsed by :func:`engine.feeds.encode`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from engine.feeds.schema import KINDS, FeedError, missing_columns

__all__ = ["Feeds", "FEED_SUFFIXES"]

FEED_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")
_SIGNATURE = {"metric": "readings", "field": "snapshots", "category": "events"}


def _suffix(path: Path) -> str | None:
    name = path.name.lower()
    for s in FEED_SUFFIXES:
        if name.endswith(s):
            return s
    return None


def _as_frame(data, source: str, kind: str) -> pd.DataFrame:
    """A pandas DataFrame from a DataFrame, a pyarrow Table/RecordBatch or a list of records."""
    if isinstance(data, pd.DataFrame):
        return data
    if hasattr(data, "to_pandas") and hasattr(data, "schema"):  # pyarrow Table / RecordBatch
        return data.to_pandas()
    if isinstance(data, (list, tuple)) and all(isinstance(r, dict) for r in data):
        return pd.DataFrame(list(data))
    if isinstance(data, dict):
        return pd.DataFrame(data)
    raise TypeError(f"{source}: {kind} must be a pandas DataFrame, a pyarrow Table or a list of "
                    f"records (dicts), got {type(data).__name__}")


def read_table(path: Path, columns_only: bool = False) -> pd.DataFrame:
    """Read one CSV or Parquet file (CSV cells as text, empty cells as missing).

    With ``columns_only`` only the header is read (an empty frame with the file's columns).
    """
    suffix = _suffix(path)
    try:
        if suffix in (".parquet", ".pq"):
            if columns_only:
                import pyarrow.parquet as pq

                return pd.DataFrame(columns=pq.read_schema(path).names)
            return pd.read_parquet(path)
        if suffix in (".csv", ".csv.gz"):
            return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""],
                               nrows=0 if columns_only else None, encoding="utf-8-sig")
    except FeedError:
        raise
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise FeedError(path.name, f"cannot be read as {suffix[1:]}: {exc}") from exc
    raise FeedError(path.name, f"unsupported file type; expected one of {list(FEED_SUFFIXES)}")


def kind_of_file(path: Path, columns=None) -> str:
    """The record kind of a feed file: by name prefix, else by its columns.

    Examples
    --------
    >>> kind_of_file(Path("readings_2020-02-01.parquet"))
    'readings'
    >>> kind_of_file(Path("export.csv"), columns=["time", "feed", "entity", "field", "value"])
    'snapshots'
    """
    low = path.name.lower()
    for kind in KINDS:
        if low.startswith(kind):
            return kind
    if columns is None:
        columns = read_table(path, columns_only=True).columns
    found = sorted({_SIGNATURE[c] for c in columns if c in _SIGNATURE})
    if len(found) == 1:
        return found[0]
    why = ("none of the columns category, metric, field" if not found
           else f"columns of several kinds ({', '.join(found)})")
    raise FeedError(path.name, f"cannot tell the record kind: the name does not start with events, readings or "
                               f"snapshots, and the file has {why}")


class Feeds:
    """Records by kind (events, readings, snapshots), each a list of ``(source, frame)`` parts.

    Parameters
    ----------
    events, readings, snapshots : DataFrame, pyarrow Table or list of dicts, optional
        Records of that kind (see :mod:`engine.feeds.schema` for the columns). Any may be
        omitted.
    source : str
        Name recorded for these parts in the quarantine (default ``"memory"``).

    Raises
    ------
    FeedError
        A frame lacks a required column (the message names the source and the column).

    Attributes
    ----------
    errors : list of FeedError
        Files :meth:`read` set aside with ``on_error="collect"``.
    skipped : list of (str, str)
        Files of a folder that are not feed files (name, why), so none vanishes unseen.

    Examples
    --------
    >>> import pandas as pd
    >>> ev = pd.DataFrame({"time": ["2020-02-01 08:00"], "feed": ["fire_alarms"],
    ...                    "category": ["kitchen_fire"], "region": ["N0001"]})
    >>> f = Feeds(events=ev)
    >>> f.n_rows
    {'events': 1, 'readings': 0, 'snapshots': 0}
    >>> Feeds(events=ev.drop(columns="category"))
    Traceback (most recent call last):
    ...
    engine.feeds.schema.FeedError: memory column 'category': events records need this column (columns present: time, feed, region)
    """

    def __init__(self, events=None, readings=None, snapshots=None, *, source: str = "memory"):
        self._parts: dict[str, list[tuple[str, pd.DataFrame]]] = {k: [] for k in KINDS}
        self.errors: list[FeedError] = []
        self.skipped: list[tuple[str, str]] = []
        for kind, data in (("events", events), ("readings", readings), ("snapshots", snapshots)):
            if data is not None:
                self.add(kind, data, source=source)

    # ------------------------------------------------------------------ building
    def add(self, kind: str, data, source: str = "memory") -> "Feeds":
        """Append records of ``kind`` from ``source``; checks the required columns.

        Returns ``self``.

        Examples
        --------
        >>> import pandas as pd
        >>> f = Feeds().add("readings", pd.DataFrame({"time": [], "feed": [], "sensor": [], "metric": [], "value": []}))
        >>> f.n_rows["readings"]
        0
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {list(KINDS)}, got {kind!r}")
        frame = _as_frame(data, source, kind)
        missing = missing_columns(kind, frame.columns)
        if missing:
            raise FeedError(source, f"{kind} records need this column (columns present: "
                                    f"{', '.join(map(str, frame.columns)) or 'none'})", column=missing[0], kind=kind)
        self._parts[kind].append((str(source), frame))
        return self

    @classmethod
    def read(cls, path: str | os.PathLike, *, kind: str | None = None, adapter=None,
             on_error: str = "raise") -> "Feeds":
        """Read a CSV or Parquet file, or a folder of them.

        Parameters
        ----------
        path : str or path
            A file (``.csv``, ``.csv.gz``, ``.parquet``, ``.pq``) or a folder holding such
            files (read in name order; other files are listed in :attr:`skipped`).
        kind : {"events", "readings", "snapshots"}, optional
            Force the kind of every file (otherwise: name prefix, then columns).
        adapter : Adapter, str or path, optional
            Read every file through this column mapping (:class:`engine.feeds.Adapter`, a
            bundled adapter name such as ``"nyc311"`` or a TOML path); the kind is the
            adapter's.
        on_error : {"raise", "collect"}
            ``"collect"`` keeps reading when a file is unusable and lists its
            :class:`FeedError` in :attr:`errors`.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> with tempfile.TemporaryDirectory() as d:
        ...     p = pathlib.Path(d, "events_1.csv")
        ...     _ = p.write_text("time,feed,category,region\\n2020-02-01 08:00,fire_alarms,kitchen_fire,N0001\\n")
        ...     Feeds.read(d).n_rows["events"]
        1
        """
        if on_error not in ("raise", "collect"):
            raise ValueError(f"on_error must be 'raise' or 'collect', got {on_error!r}")
        if kind is not None and kind not in KINDS:
            raise ValueError(f"kind must be one of {list(KINDS)}, got {kind!r}")
        if adapter is not None:
            from engine.feeds.adapters import Adapter

            adapter = adapter if isinstance(adapter, Adapter) else Adapter.load(adapter)
        p = Path(path)
        out = cls()
        if p.is_dir():
            files = []
            for q in sorted(p.iterdir()):
                if q.name.startswith("."):
                    continue
                if q.is_dir():
                    out.skipped.append((q.name, "a folder (folders are not read recursively)"))
                elif _suffix(q) is None:
                    out.skipped.append((q.name, f"not a feed file (expected {', '.join(FEED_SUFFIXES)})"))
                else:
                    files.append(q)
        elif p.exists():
            files = [p]
        else:
            raise FileNotFoundError(f"feed path {str(p)!r} does not exist")
        for q in files:
            try:
                if adapter is not None:
                    out.add(adapter.kind, adapter.apply(read_table(q), source=q.name), source=q.name)
                else:
                    frame = read_table(q)
                    out.add(kind or kind_of_file(q, frame.columns), frame, source=q.name)
            except FeedError as exc:
                if on_error == "raise":
                    raise
                out.errors.append(exc)
        return out

    @classmethod
    def concat(cls, items) -> "Feeds":
        """One :class:`Feeds` holding the parts (and errors) of several, in order.

        Examples
        --------
        >>> import pandas as pd
        >>> ev = pd.DataFrame({"time": ["2020-02-01"], "feed": ["arrivals"], "category": ["from_abroad"],
        ...                    "region": ["N0002"]})
        >>> Feeds.concat([Feeds(events=ev), Feeds(events=ev)]).n_rows["events"]
        2
        """
        out = cls()
        for f in items:
            for kind in KINDS:
                out._parts[kind].extend(f._parts[kind])
            out.errors.extend(f.errors)
            out.skipped.extend(f.skipped)
        return out

    # ------------------------------------------------------------------ access
    def parts(self, kind: str) -> list[tuple[str, pd.DataFrame]]:
        """The ``(source, frame)`` parts of one kind (a new list; frames are not copied).

        Examples
        --------
        >>> import pandas as pd
        >>> rd = pd.DataFrame({"time": [], "feed": [], "sensor": [], "metric": [], "value": []})
        >>> [s for s, _ in Feeds(readings=rd, source="power.csv").parts("readings")]
        ['power.csv']
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {list(KINDS)}, got {kind!r}")
        return list(self._parts[kind])

    def frame(self, kind: str) -> pd.DataFrame:
        """All records of one kind as one frame (parts concatenated, index reset).

        Examples
        --------
        >>> Feeds().frame("events").empty
        True
        """
        parts = self.parts(kind)
        if not parts:
            return pd.DataFrame()
        if len(parts) == 1:
            return parts[0][1]
        return pd.concat([f for _, f in parts], ignore_index=True)

    @property
    def n_rows(self) -> dict[str, int]:
        """Rows by kind."""
        return {k: int(sum(len(f) for _, f in self._parts[k])) for k in KINDS}

    @property
    def sources(self) -> list[str]:
        """Distinct source names, in order of first appearance."""
        seen: dict[str, None] = {}
        for k in KINDS:
            for s, _ in self._parts[k]:
                seen.setdefault(s, None)
        return list(seen)

    def __len__(self) -> int:
        return sum(self.n_rows.values())

    def __repr__(self) -> str:
        n = self.n_rows
        extra = f", errors={len(self.errors)}" if self.errors else ""
        return (f"Feeds(events={n['events']}, readings={n['readings']}, snapshots={n['snapshots']}, "
                f"sources={len(self.sources)}{extra})")
