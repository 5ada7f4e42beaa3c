"""Run a scenario end to end and write its run folder, streaming day by day.

The run folder (the contract ``engine.report`` and ``cityvitals compare`` read; see
``docs/report.md``):

- ``values.zarr``   ``value`` and ``score`` over (time, indicator, region), float32, chunked and
                    compressed as they come (``store_every`` keeps time-means over that period);
- ``indices.zarr``  ``health`` and ``grade`` over (time, index, region), regions = neighbourhoods,
                    streets and the district;
- ``alerts.parquet`` every alert transition; ``alerts.sqlite`` the alert history itself;
- ``epidemic.parquet`` daily city curves for every seed; ``economy.parquet`` daily recovery curves;
- ``truth.json``    the injected incidents; ``summary.json`` headline figures and detection quality;
- ``report.html`` and ``figures/*.png`` (when :mod:`engine.report` is present).

Memory stays bounded: one day of values and half a day of scores, baselines and indices are in
flight at a time (``PART_CYCLES``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import threading
import time as _time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from engine.core.engine import small_pages  # numpy huge-page advice off during a run (docs/report.md)
from engine.scenario.store import DayWriter

ECONOMY_INDICATORS = {
    "enterprise_operation": "market.enterprise.reopened_all.share_now",
    "power_use": "construction.lifelines.power_energy.sum_24h",
}
FOOTFALL_PREFIX = "market.commerce.entries_"
FOOTFALL_SUFFIX = ".sum_24h"


class Stages:
    """Seconds spent in each stage of a run: wall (``summary.json``'s ``stages_s``) and CPU
    (``stages_cpu_s``; on a shared machine the wall time also counts waiting). A stage timed in
    the thread that made the ``Stages`` counts the CPU of all the process's threads (the numba
    kernels' threads included, and whatever other threads ran meanwhile); one timed in another
    thread (the run's side thread) counts that thread's own CPU. A stage timed with ``own``
    (thread name prefixes) also counts its own CPU (``stages_own_cpu_s``): the calling thread's
    and that of the threads named so (its workers: the core's ``cityvitals-core`` pool), not the
    other threads running meanwhile (:func:`_threads_cpu`). Thread-safe."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.own: dict[str, float] = {}
        self._owner = threading.get_ident()
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def __call__(self, name: str, own: tuple = ()):
        clock = _time.process_time if threading.get_ident() == self._owner else _time.thread_time
        o0 = _threads_cpu(own) if own else None
        t0, c0, s0 = _time.perf_counter(), clock(), _time.thread_time()
        try:
            yield
        finally:
            wall, cpu, self_cpu = _time.perf_counter() - t0, clock() - c0, _time.thread_time() - s0
            if own:
                o1 = _threads_cpu(own)
                # a worker started during the stage counts from its start; one gone is not counted
                self_cpu += sum(c - o0.get(t, 0.0) for t, c in o1.items())
            with self._lock:
                self.seconds[name] = self.seconds.get(name, 0.0) + wall
                self.cpu[name] = self.cpu.get(name, 0.0) + cpu
                if own:
                    self.own[name] = self.own.get(name, 0.0) + self_cpu

    def timed_iter(self, name: str, it):
        """``it``'s items, the time spent producing each counted to ``name``."""
        it = iter(it)
        while True:
            with self(name):
                try:
                    item = next(it)
                except StopIteration:
                    return
            yield item

    def rounded(self, cpu: bool = False, own: bool = False) -> dict:
        return {k: round(v, 2) for k, v in (self.own if own else self.cpu if cpu else self.seconds).items()}


def _threads_cpu(prefixes: tuple) -> dict:
    """CPU seconds so far of each live thread whose name starts with one of ``prefixes``, by
    thread ident (``time.pthread_getcpuclockid``; {} where the platform has no per-thread clock)."""
    if not hasattr(_time, "pthread_getcpuclockid"):
        return {}
    out = {}
    for t in threading.enumerate():
        if t.ident is not None and t.name.startswith(prefixes) and t.is_alive():
            try:
                out[t.ident] = _time.clock_gettime(_time.pthread_getcpuclockid(t.ident))
            except (OSError, OverflowError):
                pass
    return out


#: the threads of the core's replay (engine.core.engine's pool): counted in its own CPU
CORE_THREADS = ("cityvitals-core",)


#: cycles a run keeps in flight after the core (detectors, alerts, indices, storage): half a day of
#: 15-minute cycles; rounded to whole stored periods
PART_CYCLES = 48


def _parts(n_t: int, factor: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of the parts of a day's ``n_t`` cycles: whole stored periods of ``factor`` cycles."""
    step = factor * max(1, round(PART_CYCLES / factor))
    return [(a, min(a + step, n_t)) for a in range(0, n_t, step)]


class _PartBuffers:
    """The detector outputs of a run's parts (scores, codes; expected and scale of the stored
    cycles), allocated once and reused part after part: fresh arrays cost their first-touch page
    faults every part (~4.4 MB of scores and codes a cycle at 2,926 x 300), and the detectors
    write straight into them (:meth:`engine.detect.Detectors.run`'s ``out``). Nothing may keep
    a view of them past its part (the core's value buffer has the same rule)."""

    def __init__(self):
        self.arrays: dict = {}

    def get(self, name: str, shape: tuple, dtype) -> np.ndarray:
        """A C-contiguous ``shape`` view of buffer ``name`` (grown when too small)."""
        a = self.arrays.get(name)
        if a is None or a.dtype != dtype or a.shape[1:] != shape[1:] or a.shape[0] < shape[0]:
            a = self.arrays[name] = np.empty(shape, dtype=dtype)
        return a[:shape[0]]


def _detect_part(detectors, values, times, factor: int, buf: _PartBuffers | None = None, scores=None):
    """Scores and detector codes of every cycle, and the baselines (expected, scale) of the stored
    cycles only (each period's last, ``baseline_every``): the indices need no others, and the
    detectors' baseline output of every cycle cost ~30 % of their time. One call for the part
    (the state of each indicator stays in cache over its cycles); the outputs are views of
    ``buf``'s arrays (fresh ones without it), the scores ``scores`` where given (a C-contiguous
    float32 array of ``values``' shape: at ``store_every`` of one cycle the day's stored scores).
    """
    buf = _PartBuffers() if buf is None else buf
    shape = values.shape
    n_b = shape[0] // factor
    out = (buf.get("scores", shape, np.float32) if scores is None else scores, buf.get("dets", shape, np.int8),
           buf.get("expected", (n_b,) + shape[1:], np.float32), buf.get("scale", (n_b,) + shape[1:], np.float32))
    detectors.run(values, times, baseline=True, baseline_every=factor, out=out)
    return out


def store_factor(store_every: str | None, cycle: pd.Timedelta) -> int:
    """Cycles per stored step: 1 without ``store_every``; checked (a multiple of the cycle that divides a day)."""
    if not store_every:
        return 1
    try:
        period = pd.Timedelta(store_every)
    except ValueError:
        raise ValueError(f"store_every={store_every!r}: expected a period such as '1h' or '30min'") from None
    factor = period / cycle
    if factor < 1 or factor != int(factor) or (pd.Timedelta("1D") / cycle) % factor:
        raise ValueError(f"store_every={store_every!r}: expected a multiple of the cycle {cycle} that divides a day")
    return int(factor)


def _store_part(part, scores, factor: int, out: tuple) -> None:
    """A part's stored steps of ``value`` and ``score`` into ``out`` (slices of the day's buffers):
    every cycle, or per period of ``factor`` cycles the mean value and the highest score (the
    period's worst moment, which a mean would dilute) (:func:`engine.scenario.store.period_mean_max`:
    NaN skipped, a period with no data stays NaN). The steps are labelled by the end of their period."""
    from engine.scenario.store import period_mean_max

    if factor == 1:
        np.copyto(out[0], part)           # a copy: the value buffer is reused
        np.copyto(out[1], scores)
        return
    period_mean_max(part, scores, factor, out=out)


class _Done:
    """What :meth:`_Side.submit` returns without a thread: the result of a call already made."""

    def __init__(self, value=None):
        self.value = value

    def result(self):
        return self.value


def _side_threads() -> int:
    """The side thread's numba threads: 1, or ``CITYVITALS_SIDE_THREADS`` (to measure others; the
    results are the same, docs/report.md "Run pipeline ... (seventh session)"), at most numba's
    thread count. Read on the run's thread, so a bad value stops the run before it starts."""
    import os

    import numba

    raw = os.environ.get("CITYVITALS_SIDE_THREADS", "").strip() or "1"
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"CITYVITALS_SIDE_THREADS={raw!r}: expected a whole number of threads >= 1")
    return min(n, numba.config.NUMBA_NUM_THREADS)


def _set_numba_threads(n: int) -> None:
    import numba

    numba.set_num_threads(n)


class _Side:
    """The run's side thread: the calls submitted run in order on one worker thread (its numba
    kernels on one thread: ``numba.set_num_threads`` is per calling thread), while the run's
    thread goes on; without ``threaded``, each runs at once in the calling thread. A call's
    error is raised by its future's ``result()``, by the next :meth:`submit` or by :meth:`drain`."""

    def __init__(self, threaded: bool = True):
        self.threaded = bool(threaded)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="run-side",
                                        initializer=_set_numba_threads,
                                        initargs=(_side_threads(),)) if self.threaded else None
        self._futures: list = []

    def submit(self, fn, *args):
        """Run ``fn(*args)`` after the calls submitted before; a future (``result()``)."""
        if self._pool is None:
            return _Done(fn(*args))
        self._raise_failed()
        f = self._pool.submit(fn, *args)
        self._futures.append(f)
        return f

    def call(self, fn, *args):
        """``fn(*args)`` on the side thread, after the calls before it; its result."""
        return self.submit(fn, *args).result()

    def _raise_failed(self) -> None:
        keep = []
        for f in self._futures:
            if f.done():
                f.result()
            else:
                keep.append(f)
        self._futures = keep

    def drain(self) -> None:
        """Wait for every call submitted (raising the first error)."""
        try:
            for f in self._futures:
                f.result()
        finally:
            self._futures = []

    def close(self) -> None:
        """Stop the thread: the calls not started are dropped, the running one finishes."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def _day_begin(stage: Stages, writer, out: Path, ctx: dict, factor: int) -> None:
    """A scored day's store buffers (:meth:`DayWriter.buffers`) into ``ctx["day_buf"]`` (with
    ``store_every`` of more than one cycle; at one cycle the run sets ``ctx["day_buf"]`` itself:
    the core's day buffer and the day's scores are stored as they are)."""
    with stage("zarr"):
        # the day's stored steps are written into one of two reused day buffers (no first-touch
        # faults of fresh arrays, no concatenation); the writer stores the day from its thread
        values = ctx["values"]
        day_shape = (len(ctx["times"]) // factor,) + values.shape[1:]
        ctx["day_buf"] = writer.buffers(out / "values.zarr", {"value": (day_shape, np.float32),
                                                              "score": (day_shape, np.float32)})


def _part_later(stage: Stages, warmer, manager, split: list, scan_tests: int, index_plan, ctx: dict,
                a: int, b: int, factor: int, res: tuple) -> None:
    """A part's stages after the detectors: its alerts, and on a scored day its indices (at the
    stored steps only: the last cycle of each stored period, the period-end state) and stored
    steps. ``res``: the detectors' ``(scores, dets)``, or ``(scores, dets, expected, scale)`` on
    a scored day."""
    from engine.scenario.warm import wait

    times, values = ctx["times"], ctx["values"]
    with stage("alerts"):
        wait(warmer, "alerts")
        _alert_day(manager, times[a:b], res[0], res[1], values[a:b], split, scan_tests)
    if len(res) == 2:
        return
    scores, _, expected, scale = res
    stored = _stored_steps(ctx["ds"], a, b, factor, expected, scale)
    with stage("indices"):
        wait(warmer, "indices")
        idx = index_plan.compute(stored)
    del stored
    with stage("zarr"):
        wait(warmer, "store")
        if factor > 1:    # (at one cycle the day's values and scores are already the stored arrays)
            day_buf = ctx["day_buf"]
            j = slice(a // factor, b // factor)
            _store_part(values[a:b], scores, factor, (day_buf["value"][j], day_buf["score"][j]))
        ctx["index_parts"].append(idx)    # the day's end takes its health and grade (_day_end)


def _stored_steps(ds, a: int, b: int, factor: int, expected, scale):
    """What the indices of cycles ``a:b`` of the day ``ds`` read: the stored steps' values (each
    period's last cycle) with the detectors' baselines of those steps (``expected``, ``scale``),
    the day's coordinates and attributes. One Dataset built from the day's selection (each
    assignment to a Dataset merges and aligns every coordinate again: ~3 ms a part at the demo's
    ten indicator coordinates)."""
    import xarray as xr

    dims = ("time", "indicator", "region")
    sel = ds.isel(time=slice(a + factor - 1, b, factor))
    return xr.Dataset({"value": sel["value"].variable, "expected": xr.Variable(dims, expected),
                       "scale": xr.Variable(dims, scale)}, coords=sel.coords, attrs=sel.attrs)


def _health_grade(idx):
    """The stored part of a part's indices (:meth:`engine.indices.IndexPlan.compute`): ``health``
    (as float32) and ``grade`` with their coordinates: what ``indices.zarr`` is created from."""
    hidx = idx[["health", "grade"]]
    hidx["health"] = hidx["health"].astype("float32")
    return hidx


def _day_end(stage: Stages, writer, out: Path, ctx: dict, factor: int):
    """A scored day's indices and stored steps to the stores (one append per day and store: an
    append's fixed cost is about that of compressing an hourly day of values). The indices go
    first (the writer stores in order): at the run's end the summary reads ``indices.zarr``
    while the last day's values are still compressed. Returns the values' write
    (:meth:`DayWriter.write`: its future, or None when written): the arrays of
    ``ctx["day_buf"]`` are in use until it is done."""
    import xarray as xr

    with stage("zarr"):
        ds, day_buf, index_parts = ctx["ds"], ctx["day_buf"], ctx["index_parts"]
        stored_times = ctx["times"].values[factor - 1::factor]
        health = np.concatenate([p["health"].values for p in index_parts]).astype(np.float32)
        grade = np.concatenate([p["grade"].values for p in index_parts])
        idx_times = np.concatenate([p["time"].values for p in index_parts])
        writer.write(out / "indices.zarr", lambda: xr.concat([_health_grade(p) for p in index_parts], dim="time"),
                     {"health": health, "grade": grade}, idx_times, index_parts[0].attrs)
        written = writer.write(out / "values.zarr", lambda: _day_dataset(ds, day_buf, stored_times), day_buf,
                               stored_times, ds.attrs)
        ctx.clear()   # the day's values and buffers are no longer needed here
    return written


def _day_dataset(ds, data: dict, times):
    """The day's stored steps as a Dataset (``ds``'s coordinates without time and its attributes):
    what the first day's store is created from."""
    import xarray as xr

    dims = ds["value"].dims
    coords = {k: v for k, v in ds.coords.items() if "time" not in v.dims}
    coords["time"] = times
    return xr.Dataset({k: (dims, v) for k, v in data.items()}, coords=coords, attrs=ds.attrs)


def run_scenario(scenario, out, *, store_every: str | None = None, progress: bool | None = None, city=None,
                 store_thread: bool = True, warm: bool | None = False, pipeline: bool = True) -> dict:
    """Simulate ``scenario``, replay every cycle through the engine, write the run folder.

    ``warm``: compile the detectors', alerts', indices' and store's kernels in a second process
    while this one simulates and replays the first day (:mod:`engine.scenario.warm`): ``None``
    when the numba cache needs it (a fresh cache; what ``cityvitals demo`` and ``replay`` do),
    ``True`` always, ``False`` (default) never.
    The results are the same either way.

    ``pipeline`` (default): each part's alerts, indices and stored steps run on a side thread
    while this one runs the next part's detectors and the next day's core replay (two core output
    buffers and two sets of detector outputs used in turn; the same results, in the same order);
    ``False`` runs them here, one after the other.

    ``store_thread=False`` writes the Zarr stores in the calling thread (the same stores; the
    ``zarr`` stage's time is then all of their cost: with the thread, compression overlaps the
    next day's stages and its CPU time is counted in them). The run allocates with small pages
    (:func:`small_pages`). Returns the summary (also written to ``summary.json``).
    """
    with small_pages():
        return _run_scenario(scenario, out, store_every=store_every, progress=progress, city=city,
                             store_thread=store_thread, warm=warm, pipeline=pipeline)


def _run_scenario(scenario, out, *, store_every, progress, city, store_thread, warm=None, pipeline=True) -> dict:
    t_start = _time.perf_counter()
    stage = Stages()
    cycle = pd.Timedelta(minutes=scenario.cycle_minutes)
    factor = store_factor(store_every, cycle)   # checked before anything runs
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    (out / "figures").mkdir(parents=True)
    return _run_warm(scenario, out, store_every, progress, city, store_thread, t_start, stage, cycle, factor,
                     warm, pipeline)


def _run_warm(scenario, out, store_every, progress, city, store_thread, t_start, stage, cycle, factor, warm,
              pipeline) -> dict:
    from engine.indices import load_config
    from engine.scenario.warm import start as warm_start

    city = city if city is not None else scenario.build_city()
    # The detectors supply each series' baseline (expected, scale); where they have none yet (warm-up)
    # the indices fall back to the other regions at the same cycle rather than re-deriving a
    # baseline from the day's history every cycle (quadratic in the cycles of a day).
    index_config = dataclasses.replace(load_config(), history_window=0)
    warmer = None if warm is False else warm_start(city, scenario.cycle, factor, index_config, force=bool(warm))
    if warmer is None:
        return _run_body(scenario, out, store_every, progress, city, store_thread, t_start, stage, cycle, factor,
                         index_config, warmer, pipeline)
    try:
        summary = _run_body(scenario, out, store_every, progress, city, store_thread, t_start, stage, cycle,
                            factor, index_config, warmer, pipeline)
    except BaseException:
        warmer.close(timeout=0)   # the run failed: stop the warmer now
        raise
    warmer.close()
    return summary


def _run_body(scenario, out, store_every, progress, city, store_thread, t_start, stage, cycle, factor,
              index_config, warmer, pipeline) -> dict:
    import xarray as xr

    from engine.alerts import AlertManager, JsonlSink
    from engine.catalog import Catalog
    from engine.core import Engine
    from engine.detect import Detectors
    from engine.detect.rebaseline import rebaseline
    from engine.indices import IndexPlan
    from engine.progress import Progress
    from engine.scenario.levers import rebaseline_plan
    from engine.scenario.windows import mask_partial_windows, window_fill_minutes
    from engine.scenario.quality import detection_quality
    from engine.sim import simulate
    from engine.scenario.warm import wait

    catalog = Catalog.load()

    # one continuous simulation: history_days of burn-in for the detectors, then the period
    sim = scenario.with_history()
    n_history = int(scenario.history_days)
    with stage("simulate"):
        results = [simulate(city, sim, seed=s) for s in scenario.seeds]
    population = float(city.regions["population"].sum())
    period_start = pd.Timestamp(str(scenario.sim.start))
    curves = pd.concat([r.curves().assign(seed=r.seed) for r in results]).reset_index()
    curves = curves[pd.to_datetime(curves["date"]) >= period_start].reset_index(drop=True)
    curves = curves.rename(columns={"S": "susceptible", "E": "exposed", "R": "recovered"})
    curves["prevalence"] = curves["infectious"] / population
    curves["detected_cases"] = curves["new_detected"]
    curves.to_parquet(out / "epidemic.parquet")
    main = results[0]
    truth = main.truth
    incidents = [i.to_dict() if hasattr(i, "to_dict") else dict(vars(i)) for i in getattr(truth, "incidents", truth)]
    (out / "truth.json").write_text(json.dumps({"incidents": incidents}, default=str, ensure_ascii=False, indent=1))

    index_plan = IndexPlan(catalog, city, index_config)   # catalog/city arrays built once per run
    engine = Engine(city, catalog, cycle=scenario.cycle)
    detectors = Detectors(catalog, city, cycle=scenario.cycle)
    # scheduled policy changes: on the day a lever changes, the series it moves re-learn their
    # baselines from a fresh start (engine.scenario.levers; docs/alerts.md)
    fresh_state = detectors.state.copy()
    relearn = rebaseline_plan(sim.timeline, detectors.ids, since=period_start) \
        if getattr(scenario, "rebaseline_levers", True) else {}
    rebaselined = []
    # rolling sums and counts over the replay's start are not complete windows: the detectors
    # do not learn them (engine.scenario.windows)
    fill = window_fill_minutes(catalog.indicators, catalog.feeds) if getattr(scenario, "full_windows", True) else None
    replay_start = None
    side = _Side(threaded=pipeline)
    encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cityvitals-encode")
    try:
        # the alert manager lives on the side thread (its SQLite connection is that thread's)
        manager = side.call(lambda: AlertManager(catalog, city, store=out / "alerts.sqlite",
                                                 sinks=[JsonlSink(out / "alerts.jsonl")]))
        split: list = []  # common_mode's output buffers, reused every cycle
        # the detectors' outputs of a part, reused part after part; with the side thread two sets
        # used in turn (the side reads one part's while the detectors write the next part's)
        part_bufs = [_PartBuffers() for _ in range(2 if side.threaded else 1)]
        part_busy: list = [None] * len(part_bufs)   # the side's task still reading each set
        n_part = 0
        ids = list(engine.plan.indicator_ids)
        pos = {iid: k for k, iid in enumerate(ids)}
        footfall_rows = [pos[i] for i in ids if i.startswith(FOOTFALL_PREFIX) and i.endswith(FOOTFALL_SUFFIX)]
        pop = city.regions["population"].to_numpy(float)
        economy = []
        bar = Progress(scenario.days + n_history, f"{scenario.name}", enabled=progress)
        quarantined: dict = {}
        # the core's output: one buffer for every day of the run (a fresh day's output, 337 MB at
        # the demo's size, costs more in first-touch page faults than the replay computes;
        # docs/core.md, round 4), two used in turn with the side thread (it reads day d's values
        # while the core replays day d + 1); a buffer is replayed into again only when the side
        # is done with its previous day
        day_bufs: list = [None] * (2 if side.threaded else 1)
        day_busy: list = [None] * len(day_bufs)
        # with store_every of one cycle the stored steps are the day's values and scores as they are:
        # the detectors write a scored day's scores straight into the day's score array of the
        # slot (no copy of either into a store buffer); the slot's arrays are in use until the
        # day's values are written (day_busy waits for that write too)
        score_days: list = [None] * len(day_bufs)
        writer = DayWriter(background=store_thread)   # values.zarr and indices.zarr, a day at a time, from a thread
        n_day = 0
        # each day's feeds are encoded for its replay one day ahead, on a thread of their own (the
        # encoding reads only the engine's plan): the replay then starts from the records
        days = _encoded_days(engine, main.feeds_by_day(cycle_minutes=scenario.cycle_minutes), encoder)
        learning = None   # the last history day's learning (on the side thread)
        for d, (day, feeds) in enumerate(stage.timed_iter("feeds", days), start=-n_history):
            day_start = pd.Timestamp(day.date)
            slot = _free_slot(day_busy, n_day, stage)
            n_day += 1
            with stage("core_replay", own=CORE_THREADS):
                day_end = day_start + pd.Timedelta("1D")
                if day_bufs[slot] is None:
                    day_bufs[slot] = engine.output_buffer(day_start + cycle, day_end)
                ds = engine.replay(feeds, day_start + cycle, day_end, out=day_bufs[slot])
            del feeds
            values = ds["value"].values
            times = pd.DatetimeIndex(ds["time"].values)
            if replay_start is None:
                replay_start = np.datetime64(day_start, "m")
            seen = values if fill is None else mask_partial_windows(values, times.values, replay_start, fill)
            if d < -1:
                # burn-in: the detectors learn baselines from the history (not scored or stored), as
                # an operations centre's detectors have the feeds' past; the alert manager runs on the
                # history's last day, so an alert already open when the period starts is not a new one.
                # With the side thread the day's learning runs there (it has nothing else to do in
                # the history), with all of numba's threads, while this thread replays the next day;
                # the day's buffer slot is busy until it is done
                learning = day_busy[slot] = side.submit(_learn_day, stage, warmer, detectors, seen, times)
                del ds, values, seen
                bar.advance()
                continue
            if learning is not None:
                # the detectors' state is the history's: every day's learning done (in order) first
                with stage("side_wait"):
                    learning.result()
                learning = None
            lever_day = np.datetime64(day_start.date(), "D")
            if d >= 0 and lever_day in relearn:
                levers, rows = relearn[lever_day]
                with stage("detectors"):
                    wait(warmer, "detect")
                    done = rebaseline(detectors, rows, None, fresh=fresh_state)
                rebaselined.append({"date": str(lever_day), "levers": sorted(levers), "indicators": done["indicators"],
                                    "series": done["series"]})
            for k, v in ds.attrs.items():
                if d >= 0 and k.startswith("quarantine.") and isinstance(v, (int, np.integer)):
                    quarantined[k[len("quarantine."):]] = quarantined.get(k[len("quarantine."):], 0) + int(v)
            # the day's cycles in parts: the detectors' outputs (scores, expected, scale) and the
            # indices' float64 copies of one part at a time bound the memory (same results: each
            # stage goes on from where the previous part left it). The detectors run here; each
            # part's alerts, indices and stored steps on the side thread, in order, while the
            # detectors go on with the next part (or here, after them, without the thread)
            day_ctx = {"ds": ds, "values": values, "times": times, "index_parts": []}
            if d >= 0 and factor == 1:
                if score_days[slot] is None or score_days[slot].shape != values.shape:
                    score_days[slot] = np.empty(values.shape, np.float32)
                day_ctx["day_buf"] = {"value": values, "score": score_days[slot]}
            elif d >= 0:
                side.submit(_day_begin, stage, writer, out, day_ctx, factor)
            for a, b in _parts(len(times), factor):
                i = _free_slot(part_busy, n_part, stage)
                n_part += 1
                with stage("detectors"):
                    wait(warmer, "detect")
                    if d < 0:
                        res = (part_bufs[i].get("scores", seen[a:b].shape, np.float32),
                               part_bufs[i].get("dets", seen[a:b].shape, np.int8))
                        detectors.run(seen[a:b], times[a:b], out=res)
                    else:
                        res = _detect_part(detectors, seen[a:b], times[a:b], factor, part_bufs[i],
                                           day_ctx["day_buf"]["score"][a:b] if factor == 1 else None)
                part_busy[i] = side.submit(_part_later, stage, warmer, manager, split, len(detectors.scan_ind),
                                           index_plan, day_ctx, a, b, factor, res)
                del res
            if d >= 0:
                day_busy[slot] = side.submit(_day_end, stage, writer, out, day_ctx, factor)
                last = values[-1]
                with np.errstate(invalid="ignore"):
                    economy.append({
                        "date": day_start,
                        "enterprise_operation": _district_ratio(last, pos.get(ECONOMY_INDICATORS["enterprise_operation"]), pop, mean=True),
                        "footfall_raw": float(np.nansum(last[footfall_rows])) if footfall_rows else np.nan,
                        "power_raw": _district_ratio(last, pos.get(ECONOMY_INDICATORS["power_use"]), pop, mean=False),
                    })
            else:
                day_busy[slot] = part_busy[(n_part - 1) % len(part_bufs)]
            del ds, values, seen, day_ctx
            bar.advance()
        # the run's end. The side thread finishes the last parts, hands the last day to the writer
        # (indices, then values) and closes the alert manager (its frame, read from the store); this
        # thread meanwhile writes what needs none of that and draws the figures of the epidemic
        # and the economy, then reads the indices as soon as they are stored: the last day's
        # values are compressed while the summary is made. The report waits for them.
        def finish():
            with stage("alerts"):
                manager.flush(10)
                frame = _alerts_frame(manager, catalog, city)
                manager.close()
                return frame

        alerts_done = side.submit(finish)
        eco = _economy_frame(economy)
        eco.to_parquet(out / "economy.parquet")
        # the simulator's background outages / gas alarms (drawn with the feeds above): true alerts, not incidents
        routine = truth.routine_events() if hasattr(truth, "routine_events") else []
        (out / "truth.json").write_text(json.dumps({"incidents": incidents, "routine": routine}, default=str,
                                                   ensure_ascii=False, indent=1))
        early = _early_figures(out, stage)
        with stage("side_wait"):
            side.drain()
        alerts = alerts_done.result()
        with stage("zarr"):
            writer.wait(out / "indices.zarr")
    finally:
        encoder.shutdown(wait=True, cancel_futures=True)
        side.close()
    with stage("alerts"):
        alerts.to_parquet(out / "alerts.parquet")

    parents = dict(zip(city.regions.index, city.regions["street"]))
    first = _first_firing(alerts)
    fired = first[first["time"] >= period_start] if len(first) else first
    quality = detection_quality(fired, incidents + routine, cycle, parents, match=manager.config.alert_per)
    # alerts that fired on the history's last day (the manager's warm-up): not counted above
    quality["fired_before_period"] = int(len(first) - len(fired))
    quality["rebaselined"] = rebaselined
    with stage("summary"):
        summary = _summary(scenario, city, curves, eco, out, fired, quality, quarantined, store_every)
    with stage("zarr"):
        writer.close()        # the last day's values
    if warmer is not None:
        summary["warm"] = warmer.report()
    summary["runtime_s"] = round(_time.perf_counter() - t_start, 2)
    summary["stages_s"] = stage.rounded()
    summary["stages_cpu_s"] = stage.rounded(cpu=True)
    summary["stages_own_cpu_s"] = stage.rounded(own=True)
    (out / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1, default=_json_default))
    try:
        from engine.report import render_report
    except ImportError:
        pass
    else:
        with stage("report"):
            render_report(out, city=city, pngs=early)
        # the report's time too (runtime_s is the run before it, as before)
        summary["stages_s"] = stage.rounded()
        summary["stages_cpu_s"] = stage.rounded(cpu=True)
        (out / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1, default=_json_default))
    return summary


def _economy_frame(economy: list) -> pd.DataFrame:
    """``economy.parquet``'s table: each day's district figures, footfall and power use as % of their peak."""
    eco = pd.DataFrame(economy)
    for raw, col in (("footfall_raw", "footfall"), ("power_raw", "power_use")):
        peak = eco[raw].max()
        eco[col] = 100 * eco[raw] / peak if peak and np.isfinite(peak) else np.nan
    return eco.drop(columns=["footfall_raw", "power_raw"])


def _early_figures(out: Path, stage) -> dict | None:
    """The report's figures that need only the epidemic and economy tables
    (:func:`engine.report.render.early_figures`); None without :mod:`engine.report`."""
    try:
        from engine.report.render import early_figures
    except ImportError:
        return None
    with stage("report"):
        return early_figures(out)


def _alert_day(manager, times, scores, dets, values, buf: list, scan_tests: int = 0) -> None:
    """A day's cycles to the alert manager: the district's common part and each neighbourhood's own part.

    :func:`engine.alerts.common.common_mode` splits the neighbourhood scores (with the manager's
    ``looks``, the tests inside one score); :func:`engine.alerts.multiplicity.family_adjust` then
    adjusts both levels for the family of tests judged this cycle (``multiplicity``,
    ``family_alpha``; the ``scan_tests`` space-time scans of a cycle, one test each, share it
    as :func:`~engine.alerts.multiplicity.family_adjust` says); both levels go through ``process_cycle`` together, so a firing district
    alert inhibits the same subject's neighbourhood alerts in the same cycle. ``buf`` keeps the
    output and scratch buffers from one call to the next.
    """
    from engine.alerts.cycle import alert_part

    # one kernel a cycle for the split, the family control and the fold of both levels (the same
    # results as common_mode, family_adjust and process_cycle one after the other)
    alert_part(manager, times, scores, dets, values, buf, scan_tests)


def _learn_day(stage: Stages, warmer, detectors, seen, times) -> None:
    """A history day's burn-in (:meth:`engine.detect.Detectors.learn`), with numba's full thread
    count even on the side thread (whose own kernels run on :func:`_side_threads`): what the run's
    thread would use (the detectors' results do not depend on it), while that thread replays the
    next day."""
    import numba

    from engine.scenario.warm import wait

    with stage("detectors_learn"):
        wait(warmer, "learn")
        n = numba.get_num_threads()
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        try:
            detectors.learn(seen, times)
        finally:
            numba.set_num_threads(n)


def _free_slot(busy: list, n: int, stage) -> int:
    """The buffer set for the ``n``-th use of those used in turn (``busy``: the side's task still
    reading each, or None), once that task is done (the wait timed as ``side_wait``) -- and, where
    the task returns a future (:func:`_day_end`: the day's write), once that is done too."""
    i = n % len(busy)
    if busy[i] is not None:
        with stage("side_wait"):
            done = busy[i].result()
            if done is not None:      # a day's end: its values' write (the set's arrays are in it)
                done.result()
        busy[i] = None
    return i


def _encoded_days(engine, days, pool):
    """``(day, encoded feeds)`` for each simulated day, the next day's encoding running on ``pool``
    while the caller replays this one (:meth:`engine.core.Engine.encode`, for the day's replay:
    its cycles end at the next midnight)."""
    def encode(day):
        return day, engine.encode(day.to_feeds(), pd.Timestamp(day.date) + pd.Timedelta("1D"))

    it = iter(days)
    first = next(it, None)
    if first is None:
        return
    pending = pool.submit(encode, first)
    for day in it:
        following = pool.submit(encode, day)
        yield pending.result()
        pending = following
    yield pending.result()


def _city_source(scenario, city, out: Path) -> dict:
    """How a report finds the city again: synthetic parameters, or a saved copy in ``RUN/city``."""
    if scenario.city is None or isinstance(scenario.city, dict):
        import inspect

        from engine.city import City

        params = {k: v.default for k, v in inspect.signature(City.synthetic).parameters.items()
                  if v.default is not inspect.Parameter.empty and k in ("seed", "neighbourhoods", "streets", "population")}
        params.update(scenario.city or {})
        return {"synthetic": params}
    city.save(out / "city")
    return {"path": "city"}


def _json_default(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return None if not np.isfinite(v) else float(v)
    return str(v)


def _district_ratio(row, k, pop, mean: bool) -> float:
    if k is None:
        return float("nan")
    v = row[k]
    ok = np.isfinite(v)
    if not ok.any():
        return float("nan")
    return float(np.average(v[ok], weights=pop[ok])) if mean else float(v[ok].sum())


def _alerts_frame(manager, catalog, city) -> pd.DataFrame:
    rows = manager.store.transitions()
    cols = ["time", "alert_id", "indicator", "region", "level", "state", "severity", "value", "score", "detector"]
    if not rows:
        return pd.DataFrame(columns=cols + ["owner", "dimension", "domain", "name_zh", "name_en", "region_name"])
    df = pd.DataFrame(rows)
    # the alert store keeps UTC ISO times; the engine's clock is naive local time, read as UTC there
    df["time"] = pd.to_datetime(df["time"], utc=True).dt.tz_localize(None)
    df = df[[c for c in cols if c in df.columns]].copy()
    meta = catalog.table()[["owner", "dimension", "domain", "name_zh", "name_en"]]
    df = df.join(meta, on="indicator")
    names = dict(zip(city.regions.index, city.regions["name"]))
    df["region_name"] = df["region"].map(names).fillna(df["region"])
    return df.reset_index(drop=True)


def _first_firing(alerts: pd.DataFrame) -> pd.DataFrame:
    """The first firing row of each alert (the transitions are in time order)."""
    if not len(alerts):
        return alerts
    return alerts[alerts["state"] == "firing"].drop_duplicates("alert_id")


def _summary(scenario, city, curves, eco, out: Path, fired, quality, quarantined, store_every) -> dict:
    import dask
    import xarray as xr

    first = curves[curves["seed"] == scenario.seeds[0]].set_index("date")
    prevalence = first["prevalence"]
    # the store read once and every figure below in one computation, on this thread: the same
    # reductions of the same chunks as one computation each (the same numbers); each of them read
    # and decompressed the whole store again before, with a thread pool's hand-offs
    idx = xr.open_zarr(out / "indices.zarr").persist(scheduler="synchronous")
    health = idx["health"]
    level = idx["level"].values if "level" in idx.coords else np.array(["neighbourhood"] * health.sizes["region"])
    nb = health.isel(region=np.flatnonzero(level == "neighbourhood"))
    overall = nb.sel(index="overall")
    grade = idx["grade"].isel(region=np.flatnonzero(level == "neighbourhood")).sel(index="overall")
    domains = ("safety", "construction", "market", "livelihood")
    grade, mean_overall, mean_by_region, *by_domain = dask.compute(
        grade, overall.mean(), overall.mean("time"), *(nb.sel(index=d).mean() for d in domains),
        scheduler="synchronous")
    # days in each grade: neighbourhood-cycles in each grade, averaged over neighbourhoods, as days
    g = grade.values
    steps_per_day = max(1, int(round(g.shape[0] / scenario.days)))
    counts = {name: float(np.sum(g == code) / g.shape[1] / steps_per_day)
              for code, name in enumerate(("excellent", "good", "stable", "poor"))}
    worst = mean_by_region.to_pandas().nsmallest(5)
    names = dict(zip(city.regions.index, city.regions["name"]))
    final_week = eco.tail(7)
    return {
        "scenario": scenario.name,
        "title": scenario.title,
        "city": {"fingerprint": city.fingerprint(), "neighbourhoods": int(len(city.regions)),
                 "population": int(city.regions["population"].sum()), **_city_source(scenario, city, out)},
        "period": {"start": str(scenario.sim.start), "end": str(scenario.sim.end), "cycle": scenario.cycle,
                   "store_every": store_every or scenario.cycle, "history_days": scenario.history_days},
        "seeds": list(scenario.seeds),
        "epidemic": {"peak_prevalence": float(prevalence.max()), "peak_date": str(prevalence.idxmax().date()),
                     "cumulative_infections": float(first["cumulative_infections"].iloc[-1])},
        "economy": {"enterprise_operation_recovered": float(final_week["enterprise_operation"].mean()),
                    "footfall_recovered": float(final_week["footfall"].mean()),
                    "power_use_recovered": float(final_week["power_use"].mean())},
        "health": {"mean_overall": float(mean_overall),
                   "by_domain": {d: float(m) for d, m in zip(domains, by_domain)},
                   "days_in_grade": counts},
        "alerts": {"total": int(len(fired)),
                   "by_dimension": {k: int(v) for k, v in fired["dimension"].value_counts().items()} if len(fired) else {}},
        "worst_neighbourhoods": [{"region": r, "name": names.get(r, r), "health": float(h)} for r, h in worst.items()],
        "detection": quality,
        "quarantined": quarantined,
    }
