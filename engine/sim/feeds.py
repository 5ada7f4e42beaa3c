"""Feeds out: the simulated day as records of the engine's three kinds, streamed day by day.

:func:`iter_days` runs the feed generators (:mod:`engine.sim.generators`, plus any registered
with :func:`register`) for each simulated day and yields one :class:`SimDay`: three pandas frames
in the schema of ``engine.feeds`` (``docs/feeds.md``):

* ``events``: ``time, feed, category, region, id, channel, text, value``;
* ``readings``: ``time, feed, sensor, metric, value``;
* ``snapshots``: ``time, feed, entity, field, value``.

String columns are categoricals whose categories are fixed for the run (every feed, item and
emitter id of the catalog and the city), so days concatenate without re-encoding and Parquet stays
small. ``id`` is an int64, unique per feed over the run (``days since 1970 * 10**7 + n``).
:meth:`SimDay.to_feeds` wraps a day in :class:`engine.feeds.Feeds`; :func:`concat_days` joins days;
:func:`write_parquet` streams days into ``events.parquet``, ``readings.parquet`` and
``snapshots.parquet`` (one row group per day), the file names :meth:`engine.feeds.Feeds.read`
recognises in a folder.

>>> from engine import City
>>> from engine.sim import Scenario, simulate
>>> city = City.synthetic(seed=1, neighbourhoods=12, streets=2, population=40_000)
>>> res = simulate(city, Scenario("2020-02-01", 2, mode="mean_field"), seed=1)
>>> day = next(res.feeds_by_day())
>>> str(day.date), sorted(day.frames)
('2020-02-01', ['events', 'readings', 'snapshots'])
>>> day.readings.columns.tolist()
['time', 'feed', 'sensor', 'metric', 'value']
>>> str(day.readings["metric"].dtype)
'category'
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import pandas as pd

from engine.config import njit

KINDS = ("events", "readings", "snapshots")
COLUMNS = {
    "events": ("time", "feed", "category", "region", "id", "channel", "text", "value"),
    "readings": ("time", "feed", "sensor", "metric", "value"),
    "snapshots": ("time", "feed", "entity", "field", "value"),
}
ITEM_KEY = {"events": "categories", "readings": "metrics", "snapshots": "fields"}
ITEM_COL = {"events": "category", "readings": "metric", "snapshots": "field"}
EMITTER_COL = {"readings": "sensor", "snapshots": "entity"}
ID_DAY_FACTOR = 10**7
"""Event ids are ``days since 1970 * ID_DAY_FACTOR + running number`` (unique per feed)."""

GENERATORS: dict[str, Callable] = {}
"""Extra generators registered with :func:`register` (``gen(result, day) -> {kind: DataFrame}``)."""


@functools.lru_cache(maxsize=4)
def feed_specs(folder: str | None = None) -> dict:
    """The data dictionary (``indicators/feeds.toml`` with the hotline taxonomy expanded):
    ``{feed: spec}``; ``ValueError`` if the files have problems."""
    from pathlib import Path

    from engine.catalog import bundled_path
    from engine.catalog.vocabulary import load_departments, load_feeds, load_taxonomy, read_toml

    p = Path(folder) if folder else bundled_path()
    problems: list = []
    deps = load_departments(read_toml(p / "departments.toml", problems) or {}, problems)
    tax = load_taxonomy(read_toml(p / "taxonomy.toml", problems) or {}, deps, problems)
    feeds = load_feeds(read_toml(p / "feeds.toml", problems) or {}, tax, problems)
    if problems:
        raise ValueError(f"feed dictionary has problems: {problems[:3]}")
    return feeds


def _table(city, name) -> pd.DataFrame:
    t = getattr(city, name, None)
    return t if isinstance(t, pd.DataFrame) else pd.DataFrame(columns=["kind", "region"])


class FeedVocab:
    """Categories of every string column for one city, and each feed's items with their bounds.

    Attributes
    ----------
    specs : dict
        ``{feed: spec}`` from the data dictionary.
    feeds : dict
        ``{kind: [feed ids]}``.
    dtypes : dict
        ``{(kind, column): CategoricalDtype}`` for the categorical columns.
    """

    def __init__(self, city, specs: dict | None = None):
        self.specs = specs or feed_specs()
        self.feeds = {k: [f for f, s in self.specs.items() if s["kind"] == k] for k in KINDS}
        self.items: dict[str, list] = {}
        self.bounds: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        item_union = {k: [] for k in KINDS}
        for f, s in self.specs.items():
            its = list(s[ITEM_KEY[s["kind"]]])
            self.items[f] = its
            if s["kind"] != "events":
                spec = s[ITEM_KEY[s["kind"]]]
                self.bounds[f] = (np.array([float(spec[i]["min"]) for i in its]),
                                  np.array([float(spec[i]["max"]) for i in its]))
            for i in its:
                if i not in item_union[s["kind"]]:
                    item_union[s["kind"]].append(i)
        self.item_index = {k: {i: n for n, i in enumerate(v)} for k, v in item_union.items()}
        self.item_code = {f: np.array([self.item_index[self.specs[f]["kind"]][i] for i in its], dtype=np.int32)
                          for f, its in self.items.items()}
        channels = []
        for s in self.specs.values():
            channels += [c for c in s.get("channels", {}) if c not in channels]
        self.channels = channels
        self.region_ids = [str(r) for r in city.regions.index]
        sensors, sites, ents = _table(city, "sensors"), _table(city, "sites"), _table(city, "enterprises")
        self.sensor_ids = [str(x) for x in sensors.index]
        self.site_ids = [str(x) for x in sites.index]
        self.enterprise_ids = [str(x) for x in ents.index]
        # emitter categories: readings' sensor = sensors + sites + regions;
        # snapshots' entity = sites + enterprises + regions
        n_se, n_si = len(self.sensor_ids), len(self.site_ids)
        self.emitter_offset = {
            "readings": {"sensor": 0, "site": n_se, "region": n_se + n_si},
            "snapshots": {"site": 0, "enterprise": len(self.site_ids),
                          "region": len(self.site_ids) + len(self.enterprise_ids)},
        }
        cat = pd.CategoricalDtype
        self.dtypes = {
            ("events", "category"): cat(item_union["events"]),
            ("readings", "metric"): cat(item_union["readings"]),
            ("snapshots", "field"): cat(item_union["snapshots"]),
            ("events", "region"): cat(self.region_ids),
            ("events", "channel"): cat(channels),
            ("readings", "sensor"): cat(self.sensor_ids + self.site_ids + self.region_ids),
            ("snapshots", "entity"): cat(self.site_ids + self.enterprise_ids + self.region_ids),
        }
        for k in KINDS:
            self.dtypes[(k, "feed")] = cat(self.feeds[k])
        self.feed_code = {f: self.feeds[s["kind"]].index(f) for f, s in self.specs.items()}

    def emitter_codes(self, kind: str, emitter: str, positions) -> np.ndarray:
        """Codes in the ``sensor`` / ``entity`` categories of emitters given by position in
        their own table (``emitter``: sensor, site, enterprise or region)."""
        return (np.asarray(positions, dtype=np.int64) + self.emitter_offset[kind][emitter]).astype(np.int32)


@njit
def count_codes(codes, counts):
    """``counts[k] += number of codes equal to k`` (codes outside ``0..len(counts)-1``, i.e.
    missing, are skipped). Counts runs of equal codes, as a day's records come in blocks by feed."""
    n = counts.shape[0]
    prev = -1
    run = 0
    for i in range(codes.shape[0]):
        k = codes[i]
        if k == prev:
            run += 1
        else:
            if 0 <= prev < n:
                counts[prev] += run
            prev = k
            run = 1
    if 0 <= prev < n:
        counts[prev] += run


def _code_dtype(n: int):
    """The integer dtype pandas uses for the codes of ``n`` categories."""
    return np.int8 if n < 127 else np.int16 if n < 32767 else np.int32


class _Arena:
    """Growable columns of one record kind (readings or snapshots) for one day."""

    def __init__(self, vocab, kind: str, capacity: int):
        self.kind, self.n = kind, 0
        ecol, icol = EMITTER_COL[kind], ITEM_COL[kind]
        self.dt = (_code_dtype(len(vocab.feeds[kind])), _code_dtype(len(vocab.dtypes[(kind, ecol)].categories)),
                   _code_dtype(len(vocab.dtypes[(kind, icol)].categories)))
        self._alloc(max(int(capacity), 1024))

    def _alloc(self, cap: int):
        old = getattr(self, "cols", None)
        self.cols = [np.empty(cap, dtype=self.dt[0]), np.empty(cap, dtype=self.dt[1]),
                     np.empty(cap, dtype=self.dt[2]), np.empty(cap, dtype=np.int64), np.empty(cap, dtype=np.float64)]
        if old is not None:
            for a, b in zip(self.cols, old):
                a[:self.n] = b[:self.n]

    def reserve(self, n: int) -> list:
        """Views of the next ``n`` rows of the five columns (feed, emitter, item, time, value)."""
        if self.n + n > self.cols[0].shape[0]:
            self._alloc(max(2 * self.cols[0].shape[0], self.n + n))
        sl = slice(self.n, self.n + n)
        self.n += n
        return [c[sl] for c in self.cols]

    def columns(self) -> list:
        return [c[:self.n] for c in self.cols]


class DayBuffer:
    """Records of one day: events as blocks, readings and snapshots written in place into
    growable columns (:meth:`reserve`); :meth:`frames` assembles the frames."""

    def __init__(self, vocab: FeedVocab, day_start_ns: int, day_number: int, capacity: dict | None = None):
        self.vocab = vocab
        self.day_start_ns = int(day_start_ns)
        self.day_number = int(day_number)
        self.blocks = {"events": []}
        self.rows: dict = {}                    # rows per feed, as they are added
        cap = capacity or {}
        self.arenas = {k: _Arena(vocab, k, cap.get(k, 0)) for k in ("readings", "snapshots")}

    def events(self, feed: str, category, region, offset_ns, channel=None, text=None, value=None):
        """Events of ``feed``: local category index (into the feed's categories), region position,
        nanoseconds after midnight; optional channel code (into all channels), text, value."""
        n = len(offset_ns)
        if n == 0:
            return
        v = self.vocab
        self.rows[feed] = self.rows.get(feed, 0) + n
        cat = v.item_code[feed][np.asarray(category, dtype=np.int64)]
        ch = np.full(n, -1, dtype=np.int32) if channel is None else np.asarray(channel, dtype=np.int32)
        val = np.full(n, np.nan) if value is None else np.asarray(value, dtype=np.float64)
        txt = None if text is None else np.asarray(text, dtype=object)
        self.blocks["events"].append((v.feed_code[feed], cat, np.asarray(region, dtype=np.int32),
                                      np.asarray(offset_ns, dtype=np.int64) + self.day_start_ns, ch, txt, val))

    def reserve(self, kind: str, feed: str, n: int):
        """``(emitter, item, time, value)`` column views of ``n`` new rows of ``feed`` (the feed
        column is filled); the caller fills the rest (times absolute, in ns)."""
        feed_col, em, it, t, val = self.arenas[kind].reserve(n)
        feed_col[:] = self.vocab.feed_code[feed]
        if n:
            self.rows[feed] = self.rows.get(feed, 0) + n
        return em, it, t, val

    def records(self, kind: str, feed: str, emitter_codes, item_codes, time_ns, value):
        """Readings or snapshots from arrays: emitter codes (see :meth:`FeedVocab.emitter_codes`),
        global item codes, absolute times (ns) and values, all of one length."""
        n = len(value)
        if n:
            em, it, t, val = self.reserve(kind, feed, n)
            em[:], it[:], t[:], val[:] = emitter_codes, item_codes, time_ns, value

    @property
    def sizes(self) -> dict:
        return {k: a.n for k, a in self.arenas.items()}

    def frames(self) -> dict:
        """``{kind: DataFrame}`` in the schema above (events sorted by time, ids assigned)."""
        v = self.vocab
        out = {}
        ev = self.blocks["events"]
        n = sum(len(b[3]) for b in ev)
        if n:
            feed = np.concatenate([np.full(len(b[3]), b[0], dtype=np.int32) for b in ev])
            cat = np.concatenate([b[1] for b in ev])
            reg = np.concatenate([b[2] for b in ev])
            t = np.concatenate([b[3] for b in ev])
            ch = np.concatenate([b[4] for b in ev])
            txt = np.concatenate([b[5] if b[5] is not None else np.full(len(b[3]), None, dtype=object) for b in ev])
            val = np.concatenate([b[6] for b in ev])
            order = np.lexsort((feed, t))
            feed, cat, reg, t, ch, txt, val = (a[order] for a in (feed, cat, reg, t, ch, txt, val))
            # running number within each feed, in time order
            ofeed = np.argsort(feed, kind="stable")
            starts = np.searchsorted(feed[ofeed], feed[ofeed], side="left")
            run = np.empty(n, dtype=np.int64)
            run[ofeed] = np.arange(n) - starts
            ids = self.day_number * ID_DAY_FACTOR + run
        else:
            feed = cat = reg = ch = np.zeros(0, dtype=np.int32)
            t = ids = np.zeros(0, dtype=np.int64)
            txt = np.zeros(0, dtype=object)
            val = np.zeros(0)
        out["events"] = pd.DataFrame({
            "time": t.view("datetime64[ns]"),
            "feed": pd.Categorical.from_codes(feed, dtype=v.dtypes[("events", "feed")]),
            "category": pd.Categorical.from_codes(cat, dtype=v.dtypes[("events", "category")]),
            "region": pd.Categorical.from_codes(reg, dtype=v.dtypes[("events", "region")]),
            "id": ids, "channel": pd.Categorical.from_codes(ch, dtype=v.dtypes[("events", "channel")]),
            "text": _strings(txt), "value": val}, copy=False)
        for kind in ("readings", "snapshots"):
            feed, em, it, t, val = self.arenas[kind].columns()
            ecol, icol = EMITTER_COL[kind], ITEM_COL[kind]
            out[kind] = pd.DataFrame({
                "time": t.view("datetime64[ns]"),
                "feed": pd.Categorical.from_codes(feed, dtype=v.dtypes[(kind, "feed")], validate=False),
                ecol: pd.Categorical.from_codes(em, dtype=v.dtypes[(kind, ecol)], validate=False),
                icol: pd.Categorical.from_codes(it, dtype=v.dtypes[(kind, icol)], validate=False),
                "value": val}, copy=False)
        return out


def _strings(values: np.ndarray):
    """``pd.array(values, dtype="string")`` (object array, None for missing), built by pyarrow."""
    dt = pd.StringDtype()
    if dt.storage == "pyarrow":
        import pyarrow as pa

        return pd.arrays.ArrowStringArray(pa.array(values, type=pa.large_string(), from_pandas=True))
    return pd.array(values, dtype=dt)


@dataclass
class SimDay:
    """The feeds of one simulated day: ``frames = {"events": df, "readings": df, "snapshots": df}``."""

    date: np.datetime64
    frames: dict
    _rows: tuple | None = field(default=None, repr=False, compare=False)

    @property
    def events(self) -> pd.DataFrame:
        return self.frames["events"]

    @property
    def readings(self) -> pd.DataFrame:
        return self.frames["readings"]

    @property
    def snapshots(self) -> pd.DataFrame:
        return self.frames["snapshots"]

    def __getitem__(self, kind: str) -> pd.DataFrame:
        return self.frames[kind]

    @property
    def n_rows(self) -> dict:
        """Rows by kind."""
        return {k: len(f) for k, f in self.frames.items()}

    def rows_per_feed(self) -> dict:
        """``{feed: rows}`` over the three kinds (feeds without rows omitted). Remembered while
        ``frames`` holds the same frames with the same lengths (:func:`iter_days` counts on its
        worker threads)."""
        frames = tuple(self.frames.values())
        if self._rows is not None and len(self._rows[0]) == len(frames) and \
                all(a is b and len(b) == n for a, b, n in zip(self._rows[0], frames, self._rows[1])):
            return dict(self._rows[2])
        out = {}
        for f in self.frames.values():
            col = f["feed"]
            if isinstance(col.dtype, pd.CategoricalDtype):     # count the codes: no pandas grouping
                vc = np.zeros(len(col.cat.categories), dtype=np.int64)
                count_codes(col.array.codes, vc)
                out.update({str(k): int(n) for k, n in zip(col.cat.categories, vc) if n})
            else:
                out.update({str(k): int(n) for k, n in col.value_counts().items() if n})
        self._rows = (frames, tuple(len(f) for f in frames), out)
        return dict(out)

    def to_feeds(self, source: str | None = None):
        """This day as an :class:`engine.feeds.Feeds` (source ``sim-YYYY-MM-DD`` by default)."""
        from engine.feeds import Feeds

        return Feeds(**self.frames, source=source or f"sim-{self.date}")


def register(name: str, generator: Callable) -> Callable:
    """Register an extra generator ``gen(result, day) -> {kind: DataFrame}`` whose frames (in the
    schema above; string columns may be plain strings) are appended to every day."""
    if not callable(generator):
        raise ValueError(f"feed generator {name!r} is not callable")
    if name in GENERATORS and GENERATORS[name] is not generator:
        raise ValueError(f"feed generator {name!r} is already registered")
    GENERATORS[name] = generator
    return generator


def _append_extra(frames: dict, extra: dict, name: str) -> None:
    if not isinstance(extra, dict):
        raise ValueError(f"feed generator {name!r} returned {type(extra).__name__}, expected a dict of DataFrames")
    for kind, df in extra.items():
        if kind not in KINDS:
            raise ValueError(f"feed generator {name!r} returned kind {kind!r}: expected one of {', '.join(KINDS)}")
        base = frames[kind]
        df = df.reindex(columns=base.columns)
        for c in base.columns:
            if isinstance(base[c].dtype, pd.CategoricalDtype):
                known = base[c].cat.categories
                bad = sorted(set(df[c].dropna().astype(str)) - set(known))
                if bad and c != "channel":
                    raise ValueError(f"feed generator {name!r}: {kind} column {c!r} has unknown values {bad[:5]}")
                df[c] = pd.Categorical(df[c].astype(object), dtype=base[c].dtype)
        frames[kind] = pd.concat([base, df.astype(base.dtypes.to_dict())], ignore_index=True)


def iter_days(result, *, cycle_minutes: int = 15, feeds=None, generators=None,
              threads: int | None = None) -> Iterator[SimDay]:
    """Yield one :class:`SimDay` per simulated day of ``result``.

    Parameters
    ----------
    result : SimResult
        From :func:`engine.sim.simulate` with a city (``result.city``).
    cycle_minutes : int
        Engine cycle: readings come every cycle (a divisor of 1440, at most 60).
    feeds : iterable of str, optional
        Generate only these feeds (default: every feed of the data dictionary).
    generators : dict, optional
        Extra ``{name: gen}`` run after the built-in ones (default: the registered ones).
    threads : int, optional
        Days generated at once on a thread pool (the kernels release the GIL; days are
        independent, so the output is the same for any value). Default: 2 when the machine has
        2 cores or more, else 1. At most ``threads + 1`` days are held in memory.
    """
    import os
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    from engine.sim.generators import FeedModel

    model = FeedModel.for_result(result, cycle_minutes=cycle_minutes, feeds=feeds)
    extra = dict(GENERATORS if generators is None else generators)
    T = result.dates.shape[0]
    n = threads if threads is not None else min(2, os.cpu_count() or 1)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"threads={threads!r}: expected a whole number >= 1")

    def one(t):
        rows: dict = {}
        frames = model.day(t, rows=rows)
        for name, gen in extra.items():
            _append_extra(frames, gen(result, t), name)
        day = SimDay(result.dates[t], frames)
        if extra:
            day.rows_per_feed()                 # counted here, on the worker thread; remembered
        else:                                   # the generators counted their rows
            day._rows = (tuple(frames.values()), tuple(len(f) for f in frames.values()), rows)
        return day

    if n == 1 or T == 1:
        for t in range(T):
            yield one(t)
        return
    with ThreadPoolExecutor(max_workers=n, thread_name_prefix="sim-feeds") as pool:
        pending: deque = deque()
        nxt = 0
        while nxt < T or pending:
            while nxt < T and len(pending) < n + 1:
                pending.append(pool.submit(one, nxt))
                nxt += 1
            yield pending.popleft().result()


def concat_days(days) -> SimDay:
    """One :class:`SimDay` holding several days (date: the first day's)."""
    days = list(days)
    if not days:
        raise ValueError("no days to concatenate")
    frames = {k: pd.concat([d.frames[k] for d in days], ignore_index=True) for k in KINDS}
    return SimDay(days[0].date, frames)


def _arrow_table(df: pd.DataFrame):
    import pyarrow as pa

    return pa.Table.from_pandas(df, preserve_index=False)


def write_parquet(days, out_dir, *, progress: Callable | None = None) -> dict:
    """Stream days into ``out_dir/{events,readings,snapshots}.parquet`` (one row group per day).

    Returns ``{feed: rows}`` written. ``progress(i)`` is called after each day.
    """
    import pathlib

    import pyarrow.parquet as pq

    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    writers: dict = {}
    rows: dict = {}
    try:
        for i, day in enumerate(days):
            for kind in KINDS:
                table = _arrow_table(day.frames[kind])
                if kind not in writers:
                    writers[kind] = pq.ParquetWriter(out / f"{kind}.parquet", table.schema, compression="zstd")
                writers[kind].write_table(table)
            for f, n in day.rows_per_feed().items():
                rows[f] = rows.get(f, 0) + n
            if progress is not None:
                progress(i)
    finally:
        for w in writers.values():
            w.close()
    return rows
