"""The indicator engine: feeds in, every indicator of the catalog out, one cycle at a time.

Cycles are absolute: cycle ``k`` covers event times ``((k - 1) * cycle, k * cycle]`` (nanoseconds
since the Unix epoch, UTC) and is computed at ``at = k * cycle``. An indicator with window ``W``
cycles reads buckets ``k - W + 1 .. k``. A record arriving in the step of cycle ``k`` with an event
time in an earlier cycle ``j`` (late, but within its feed's ``lateness``: ``time > at - lateness``)
lands in bucket ``j`` and in every window that still covers ``j``. Records later than that, or in the
future (``time > at``), are not counted; their numbers are in ``ds.attrs`` (``core.too_late``,
``core.future``).

Snapshots are state: each record sets the latest value of (entity, field) if it is at least as
recent as the one held; each cycle aggregates the latest values (a late snapshot takes effect from
the cycle it arrives in).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading

import numpy as np
import pandas as pd

from engine.core import kernels as K
from engine.core.dataset import flatten_counts, indicator_coords, make_dataset
from engine.core.derived import DerivedPlan
from engine.core.plan import KIND_EVENTS, KIND_READINGS, KIND_SNAPSHOTS, compile_plan
from engine.core.records import EncodedFeeds, Records, as_records
from engine.core.rollup import level_groups, rollup
from engine.core.state import State

#: values per cycle (indicators x regions) from which the cycle kernels use all numba threads
PARALLEL_MIN_VALUES = 4_000_000
#: float64 scratch of one replay kernel call at a coarser level (cycles per call = this / bytes of
#: one cycle's values, roll-up parts and derived inputs)
REPLAY_CHUNK_BYTES = 96 * 2**20
#: cycles of one replay kernel call at the finest level, which has no per-cycle scratch (the values
#: go straight into the output, the derived formulas' inputs are one cycle's: ``kernels.run_cycles``),
#: when the count rings cannot need widening within the call (:meth:`Engine._replay`)
REPLAY_CHUNK_CYCLES = 100_000
#: the weight of a group of bases whose add is followed right away by the values of their rows
#: (:func:`kernels.run_cycles`, :meth:`Engine._groups_of`): series weighted by their base's blocks,
#: running extremes (x2) and sorted windows (x4), plus snapshot members
ADD_GROUP_WEIGHT = 60_000
#: the threaded driver's steps keep this many of their last outputs to write again once the
#: caller dropped them (:meth:`Engine._step_spare`)
STEP_SPARES = 2
#: the shares driver's balance (:meth:`Engine._base_shares`): the binning's weight (records of
#: each base, from the first call that bins at least :data:`SHARE_RECORDS_MIN` of them) next to
#: the add's and the values' (1 each); the benchmark's cycle: binning ~0.9 ms, add ~2.9, values ~2.5
SHARE_RECORDS_WEIGHT = 0.35
SHARE_RECORDS_MIN = 100_000
#: events and readings of a cycle from which the threaded driver for big cities bins them on
#: every thread, each for its own bases (:meth:`Engine._bin_masks`); fewer: on the caller's thread
BIN_SPLIT_MIN = 20_000
#: cycles of the threaded driver for big cities whose add and values calls are timed (thread CPU)
#: before their shares are cut again by that measured cost (:meth:`Engine._thread_shares`): the estimate
#: misjudged a share by up to 3x at 6,000 regions, and one thread idled at each stage's end; the
#: first cycle is not used (its calls may compile or load the kernels) and a piece's least time of
#: the others is (the records change from cycle to cycle, and a thread can be held up)
SHARE_CALIBRATE_CYCLES = 4
SHARE_CALIBRATE_PIECES = 64
#: records of a group per thread from which their preparation (:func:`kernels.record_keys`) is
#: split over the numba thread count of threads (~0.9 ms of mapping a part at 8.5 ns a record, against
#: ~0.1 ms to hand one to the pool: a 6,000-region step's 281 k readings go on two threads)
PREPARE_PARALLEL_MIN = 100_000
#: bytes of prepared-record buffers (buckets, keys) a process keeps between replays for the next
#: one (:func:`_lend`): a replay of ~10 M records writes ~120 MB of them, and their first-touch
#: page faults cost ~25 % of :func:`kernels.record_keys` when fresh
PREP_POOL_BYTES = 256 * 2**20
PREP_POOL_MIN = 250_000
_PREP_POOL: list = []
_PREP_LOCK = threading.Lock()


def _lend(n: int, dtype, lease: list | None) -> np.ndarray:
    """An uninitialised array of ``n`` ``dtype`` values: a view of a pooled buffer when ``lease``
    is a list (the buffer is appended to it; :func:`_give_back` returns it to the pool), else a
    fresh array. Fewer than :data:`PREP_POOL_MIN` values: always fresh."""
    dtype = np.dtype(dtype)
    if lease is None or n < PREP_POOL_MIN:
        return np.empty(n, dtype)
    with _PREP_LOCK:
        fits = [i for i, a in enumerate(_PREP_POOL) if a.dtype == dtype and len(a) >= n]
        buf = _PREP_POOL.pop(min(fits, key=lambda i: len(_PREP_POOL[i]))) if fits else None
    if buf is None:
        buf = np.empty(n, dtype)
    lease.append(buf)
    return buf[:n]


def _give_back(lease: list) -> None:
    """Return the buffers of ``lease`` (:func:`_lend`; no longer read or written by anyone) to the
    pool, the largest kept within :data:`PREP_POOL_BYTES`."""
    with _PREP_LOCK:
        _PREP_POOL.extend(lease)
        _PREP_POOL.sort(key=lambda a: -a.nbytes)
        total = 0
        for i, a in enumerate(_PREP_POOL):
            total += a.nbytes
            if total > PREP_POOL_BYTES:
                del _PREP_POOL[i:]
                break
    lease.clear()


def _populate(arr: np.ndarray):
    """Start a thread that maps the pages of the fresh ``arr`` (``madvise(MADV_POPULATE_WRITE)``,
    Linux >= 5.14; contents unchanged, so it may race the kernel writing ``arr``) and return it
    (``join`` it), or ``None`` where that is not available. First-touch page faults of a large
    output then run on another core while the cycle kernel computes (on some VMs they cost
    seconds per GB)."""
    if arr.nbytes < 64 * 2**20 or not sys.platform.startswith("linux"):
        return None
    import ctypes
    import threading

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        madvise = libc.madvise
    except (OSError, AttributeError):
        return None
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    page = os.sysconf("SC_PAGE_SIZE")
    a = arr.ctypes.data
    lo = a - a % page
    hi = a + arr.nbytes
    hi -= hi % page  # whole pages inside the array (the partial ones fault as usual)

    def run(arr=arr):  # (holds ``arr``: its pages stay mapped while this runs)
        step = 64 * 2**20
        for o in range(lo, hi, step):  # in order, ahead of the kernel; stops quietly on error
            if madvise(o, min(step, hi - o), 23) != 0:  # 23 = MADV_POPULATE_WRITE
                return

    th = threading.Thread(target=run, name="cityvitals-populate", daemon=True)
    th.start()
    return th


_PAGES_LOCK = threading.Lock()
_PAGES = [0, None]  # blocks inside small_pages now, numpy's advice before the first of them


@contextlib.contextmanager
def small_pages():
    """numpy's transparent-huge-page advice off inside the block (restored when the last block
    open in any thread ends).

    numpy asks the kernel for 2 MB pages for every array of 4 MB or more. On the project's VM a
    first touch of such memory costs ~4-5x what 4 kB pages cost (an array of 2.4 GB written once:
    5.2-7.8 s of system time with the advice, 1.2-1.5 s without; docs/core.md, round 7), and a
    replay's fresh output is that size. Without numpy's
    private switch (``numpy._core.multiarray._set_madvise_hugepage``) nothing changes.

    >>> import numpy as np
    >>> with small_pages():
    ...     a = np.zeros(2**21)
    >>> a.shape
    (2097152,)
    """
    setter = getattr(getattr(getattr(np, "_core", None), "multiarray", None), "_set_madvise_hugepage", None)
    if setter is None:
        yield
        return
    with _PAGES_LOCK:
        if _PAGES[0] == 0:
            _PAGES[1] = setter(False)
        _PAGES[0] += 1
    try:
        yield
    finally:
        with _PAGES_LOCK:
            _PAGES[0] -= 1
            if _PAGES[0] == 0:
                setter(_PAGES[1])


_POOLS: dict = {}


def _thread_pool(n: int, name: str = "cityvitals-core"):
    """A process-wide pool of ``n`` threads named ``name`` (one per size and name: the threaded
    cycle drivers' and the records' preparation, which may run on another thread while an engine
    replays, each their own; a new one in a forked child, where the parent's pool threads do not
    exist)."""
    from concurrent.futures import ThreadPoolExecutor

    key = (n, name, os.getpid())
    pool = _POOLS.get(key)
    if pool is None:
        pool = _POOLS[key] = ThreadPoolExecutor(max_workers=n, thread_name_prefix=name)
    return pool


def _n_threads() -> int:
    import numba

    return numba.get_num_threads()


def _record_keys(cols: tuple, args: tuple, outs: tuple) -> tuple:
    """:func:`kernels.record_keys` of records ``cols`` (time, feed, a, b, region) into ``outs``
    (bucket, key, region; an empty region: not written), split over the numba thread count of Python threads (the kernel releases
    the GIL) from :data:`PREPARE_PARALLEL_MIN` records: each thread maps its own contiguous part,
    so the outputs are the same; (valid, sorted) of the whole."""
    n = len(cols[0])
    nt = min(_n_threads(), n // PREPARE_PARALLEL_MIN) if n >= 2 * PREPARE_PARALLEL_MIN else 1
    if nt <= 1:
        return K.record_keys(*cols, *args, *outs)
    cuts = [n * i // nt for i in range(nt + 1)]
    parts = [(K.record_keys, *(c[lo:hi] for c in cols), *args, *(o[lo:hi] for o in outs))
             for lo, hi in zip(cuts[:-1], cuts[1:])]
    # (this thread maps parts too; every part ended before returning or raising: they write ``outs``)
    res = _run_all(_thread_pool(nt, "cityvitals-prepare"), parts)
    ok = all(r[0] for r in res)
    bucket = outs[0]
    srt = ok and all(r[1] for r in res) and all(bucket[c - 1] <= bucket[c] for c in cuts[1:-1])
    return ok, srt


def _run_all(pool, calls) -> list:
    """Run ``calls`` (``(function, *args)`` each) on this thread and on ``pool``'s other threads
    (its size less one: with this thread, as many as ``pool`` has), each thread taking the next
    call not yet taken; their results in the calls' order. Every call has ended before the first
    error (in the calls' order) is raised, so no thread still writes the outputs when the caller
    sees it.

    The calling thread works instead of sleeping while the pool works: a dispatch wakes one thread
    fewer, starts its first call at once and resumes with the last call's end (on a loaded
    machine a woken pool thread waits for a core; docs/core.md, twenty-first session). Which thread
    runs a call does not change what it computes (each call has its own outputs and scratch)."""
    n = len(calls)
    helpers = min(getattr(pool, "_max_workers", 1), n) - 1
    out = [None] * n
    if helpers <= 0:
        errs = [None] * n
        _run_calls(calls, iter(range(n)).__next__, errs, out)
        _raise_first(errs)
        return out
    lock = threading.Lock()
    nxt = iter(range(n)).__next__

    def take():
        with lock:
            return nxt()

    errs = [None] * n
    futs = [pool.submit(_run_calls, calls, take, errs, out) for _ in range(helpers)]
    _run_calls(calls, take, errs, out)
    for f in futs:
        f.result()  # (``_run_calls`` keeps its calls' errors in ``errs``; this waits for the thread)
    _raise_first(errs)
    return out


def _raise_first(errs) -> None:
    for e in errs:
        if e is not None:
            raise e


def _run_calls(calls, take, errs, out) -> None:
    """Run ``calls[take()]`` until ``take`` raises StopIteration; a call's result into ``out``, its
    error into ``errs``."""
    while True:
        try:
            i = take()
        except StopIteration:
            return
        f, *args = calls[i]
        try:
            out[i] = f(*args)
        except BaseException as e:  # noqa: BLE001 (raised by _run_all once every call ended)
            errs[i] = e


def _timed(acc: np.ndarray, j: int, f, *args) -> None:
    """``f(*args)``, its thread CPU time added to ``acc[j]`` (the threaded driver's calibration)."""
    import time

    t0 = time.thread_time()
    f(*args)
    acc[j] += time.thread_time() - t0


def to_ns(at) -> int:
    """A timestamp (str, datetime, numpy or pandas, or int ns) as int ns since the epoch (UTC).

    >>> to_ns("2020-02-01 00:15")
    1580516100000000000
    """
    if isinstance(at, (int, np.integer)) and not isinstance(at, bool):
        return int(at)
    ts = pd.Timestamp(at)
    if ts is pd.NaT:
        raise ValueError(f"not a timestamp: {at!r}")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return int(ts.as_unit("ns").value)


class Engine:
    """Every indicator of a catalog for every region of a city, cycle by cycle.

    Parameters
    ----------
    city : engine.City
    catalog : engine.Catalog, optional
        Default: the bundled catalog.
    cycle : str
        Cycle length (``"15min"``).
    dtype : str
        dtype of the returned values (``"float32"``, default, or ``"float64"``); everything is
        computed in float64 (counts exactly in int32) and rounded once at the end.

    Examples
    --------
    >>> import numpy as np
    >>> from engine import City, Catalog
    >>> from engine.core.records import Records
    >>> city = City.synthetic(seed=1, neighbourhoods=12, streets=3, population=30_000)
    >>> eng = Engine(city, Catalog.load())
    >>> f = eng.plan.feed_ids.index("police_incidents")
    >>> t = np.datetime64("2020-02-01T00:10", "ns").astype(np.int64)
    >>> rec = Records.build(eng.plan.feed_ids, events=dict(ev_time=[t] * 3, ev_feed=[f] * 3, ev_category=[0] * 3,
    ...                      ev_channel=[-1] * 3, ev_region=[4] * 3, ev_value=[np.nan] * 3))
    >>> ds = eng.step(rec, at="2020-02-01 00:15")
    >>> float(ds.value.sel(indicator="safety.public_order.police_assault.count_1h", region="N0005"))
    3.0
    >>> float(eng.step(Records.build(eng.plan.feed_ids), at="2020-02-01 00:30", level="district")
    ...       .value.sel(indicator="safety.public_order.police_assault.count_1h").item())
    3.0
    """

    def __init__(self, city, catalog=None, cycle: str = "15min", dtype: str = "float32"):
        if catalog is None:
            from engine.catalog import Catalog

            catalog = Catalog.load()
        self.city = city
        self.catalog = catalog
        self.cycle = cycle
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.dtype("float32"), np.dtype("float64")):
            raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
        self.plan = compile_plan(city, catalog, cycle)
        self.derived = DerivedPlan(catalog.indicators)
        self.state = State.empty(self.plan)
        p = self.plan
        snap_bases = np.flatnonzero(p.base_kind == KIND_SNAPSHOTS).astype(np.int64)
        extra = {"snap_bases": snap_bases, "ind_d": self.derived.compact_pos}
        self._P = tuple(extra[f] if f in extra else getattr(p, f) for f in K.P_FIELDS)
        self._dummy3 = np.zeros((1, 1, 1), np.float64)
        # the kernels' output pair (float32, float64), one specialisation for both dtypes
        # (kernels.run_cycles): an empty float64 output, and a float32 sink row for float64 outputs
        self._no64 = np.zeros((0, 1, 1), np.float64)
        self._sink32 = np.zeros((1, 1, p.n_regions), np.float32)
        # the count rings' pair (uint16, int32), one of them empty (kernels.S_WIDE)
        self._no16 = np.zeros(0, np.uint16)
        self._no32 = np.zeros(0, np.int32)
        # kernel scratch after the state arrays (kernels.S_SCRATCH), reset whenever the state
        # object is replaced (a loaded state aggregates its snapshots in full once)
        self._snap_k = np.full(p.n_bases, -1, np.int64)
        self._sdirty = np.zeros(p.n_series, np.uint8)
        self._qlv = np.zeros(p.q_nsize, np.float64)  # the leaving buckets' means, advance -> add
        self._qlf = np.zeros(p.q_nsize, np.uint8)
        self._snap_q = np.zeros(p.n_bases, np.int64)  # quiet cycles of each snapshot base
        self._blk_fx = np.zeros(len(p.blk_W), np.uint8)  # a block's float sums at a fixed point
        self._scratch_for = None
        self._all_bases = np.arange(p.n_bases, dtype=np.int64)
        self._all_rows = np.arange(len(p.ind_row), dtype=np.int64)
        self._all_mask = np.ones(p.n_bases, np.uint8)
        # the prepared records' kernel keys (reading / event map keys, snapshot cells): int32 where
        # every key fits (less to write and to read back per record than int64; regions are int32)
        nkeys = max(len(p.map_ptr) - 1, int(p.snap_size))
        self._key_dtype = np.dtype(np.int32) if nkeys < 2**31 - 1 else np.dtype(np.int64)
        *dp, depth = self.derived.program()
        self._DP = tuple(dp)
        self._stack = np.empty((depth, p.n_regions), np.float64)
        self._index_cache: dict = {}
        self._row_mult = np.ones(len(p.indicator_ids))
        self._row_mult[p.ind_row] = p.ind_mult
        self._pop = city.regions["population"].to_numpy(np.float64)
        self._regions = [str(r) for r in city.regions.index]
        self._late_ns = p.feed_lateness_cycles * p.cycle_ns
        self.last_counts: dict = {}
        self._encoder = None  # engine.feeds.Encoder, built on the first raw feeds
        self._coords = indicator_coords(catalog.indicators)
        nfield = np.array([len(catalog.feeds[x].get("fields") or {}) for x in p.feed_ids], np.int64)
        # per group: (time, feed, a, b, region, value fields; kind, key offset, multiplier of a,
        # bound of a, lowest b, bound of b, added to the key, regions checked) for kernels.record_keys
        self._groups = {
            "ev": (("ev_time", "ev_feed", "ev_category", "ev_channel", "ev_region", "ev_value"), KIND_EVENTS,
                   p.key_off, p.key_nsub, p.key_ncat, -1, p.key_nsub - 1, 1, p.n_regions),
            "rd": (("rd_time", "rd_feed", "rd_metric", "rd_kind", "rd_region", "rd_value"), KIND_READINGS,
                   p.key_off, p.key_nsub, p.key_ncat, -1, p.key_nsub - 1, 1, p.n_regions),
            "sn": (("sn_time", "sn_feed", "sn_field", "sn_entity", "sn_region", "sn_value"), KIND_SNAPSHOTS,
                   p.snap_off, p.snap_nent, nfield, 0, p.snap_nent, 0, -1),
        }

    # ------------------------------------------------------------------ state
    def save_state(self, path) -> None:
        """Write the window state (``.npz``); :meth:`load_state` continues exactly from it."""
        self.state.save(path)

    def load_state(self, path) -> None:
        """Replace the window state with one saved by :meth:`save_state` for the same plan."""
        self.state = State.load(path, self.plan)

    @property
    def last_cycle(self):
        """The time of the last cycle computed (``None`` before the first)."""
        k = self.state.last_cycle
        return None if k < 0 else pd.Timestamp(k * self.plan.cycle_ns)

    # ------------------------------------------------------------------ inputs
    def _cycle_of(self, at) -> int:
        ns = to_ns(at)
        c = self.plan.cycle_ns
        if ns % c:
            raise ValueError(f"at={pd.Timestamp(ns)} is not on a {self.cycle} cycle boundary "
                             f"(e.g. {pd.Timestamp(ns - ns % c)})")
        return ns // c

    def encode(self, feeds, end) -> EncodedFeeds:
        """Encode and prepare ``feeds`` for the :meth:`replay` (or :meth:`step`) that ends at ``end``.

        What those calls do first, on their own thread, done ahead: validation and encoding
        (``engine.feeds.encode`` with ``now=end``, through lookups built once per engine), the
        quarantine counts, and each record's bucket and kernel key, sorted by bucket. Reads only
        the engine's plan, never its window state, so it may run on another thread while the
        engine replays an earlier period; ``replay(engine.encode(feeds, end), start, end)`` equals
        ``replay(feeds, start, end)``, attributes included.

        Parameters
        ----------
        feeds : engine.Feeds or encoded records
        end : timestamp
            The cycle end of the call the result is for.

        Returns
        -------
        EncodedFeeds
            ``records``, ``quarantine`` (``None`` for records that came encoded), ``counts``.

        Examples
        --------
        >>> from engine import City, Catalog
        >>> from engine.feeds import Feeds
        >>> eng = Engine(City.synthetic(seed=1, neighbourhoods=12, streets=3, population=30_000), Catalog.load())
        >>> ev = pd.DataFrame({"time": ["2020-02-01 00:20", "2020-02-01 09:00"], "feed": "fire_alarms",
        ...                    "category": "kitchen_fire", "region": "N0003"})
        >>> enc = eng.encode(Feeds(events=ev), "2020-02-01 00:30")
        >>> enc.records.n, enc.counts
        (1, {'future_timestamp': 1})
        >>> ds = eng.replay(enc, "2020-02-01 00:15", "2020-02-01 00:30")
        >>> ds.attrs["quarantine.future_timestamp"]
        1
        """
        k = self._cycle_of(end)
        now_ns = k * self.plan.cycle_ns
        rec, quarantine, counts = self._encode_feeds(feeds, now_ns)
        return EncodedFeeds(records=rec, quarantine=quarantine, counts=counts, end_ns=now_ns,
                            prepared=self._prepare(rec), plan=self.plan)

    def _encode_feeds(self, feeds, now_ns: int):
        if hasattr(feeds, "ev_time"):
            return as_records(feeds), None, None
        if self._encoder is None:
            from engine.feeds import Encoder  # the feeds package turns raw feeds into encoded arrays

            self._encoder = Encoder(self.city, self.catalog)
        enc, quarantine = self._encoder(feeds, now=pd.Timestamp(now_ns))
        counts = quarantine.counts() if quarantine is not None and hasattr(quarantine, "counts") else None
        return as_records(enc), quarantine, counts

    def _encode(self, feeds, now_ns: int, lease: list | None = None):
        """``(prepared records, quarantine counts)`` for a call ending at ``now_ns`` (``lease``:
        :meth:`_prepare`'s, for records prepared here)."""
        if isinstance(feeds, EncodedFeeds):
            if feeds.end_ns != now_ns:
                raise ValueError(f"feeds were encoded for a call ending at {pd.Timestamp(feeds.end_ns)}, "
                                 f"this one ends at {pd.Timestamp(now_ns)}")
            prep = feeds.prepared if feeds.plan is self.plan else self._prepare(feeds.records)
            return {g: dict(d) for g, d in prep.items()}, feeds.counts  # (callers add keys to the groups)
        rec, _, counts = self._encode_feeds(feeds, now_ns)
        return self._prepare(rec, lease), counts  # checks the records first

    def _check(self, rec: Records) -> None:
        p = self.plan
        if rec.feed_ids and list(rec.feed_ids) != list(p.feed_ids):
            raise ValueError("records were encoded for another feed list: "
                             f"{list(rec.feed_ids)[:5]}... vs the catalog's {p.feed_ids[:5]}...")
        nf = len(p.feed_ids)
        for name, kind in (("ev_feed", KIND_EVENTS), ("rd_feed", KIND_READINGS), ("sn_feed", KIND_SNAPSHOTS)):
            f = getattr(rec, name)
            if len(f) and (f.min() < 0 or f.max() >= nf):
                bad = f[(f < 0) | (f >= nf)][0]
                raise ValueError(f"{name} {bad} is not a feed position (0..{nf - 1})")
            if len(f):
                wrong = p.feed_kind[f] != kind
                if wrong.any():
                    bad = int(f[wrong][0])
                    raise ValueError(f"{name} {bad} ({p.feed_ids[bad]!r}) is not a {('events', 'readings', 'snapshots')[kind]} feed")
        nreg = p.n_regions
        for name in ("ev_region", "rd_region"):
            r = getattr(rec, name)
            if len(r) and (r.min() < 0 or r.max() >= nreg):
                bad = r[(r < 0) | (r >= nreg)][0]
                raise ValueError(f"{name} {bad} is not a region position (0..{nreg - 1})")
        if len(rec.ev_feed):
            f = rec.ev_feed
            for name, arr, lim, lo in (("ev_category", rec.ev_category, p.key_ncat[f], 0),
                                       ("ev_channel", rec.ev_channel, p.key_nsub[f] - 1, -1)):
                bad = (arr < lo) | (arr >= lim)
                if bad.any():
                    i = np.flatnonzero(bad)[0]
                    raise ValueError(f"{name} {arr[i]} out of range for feed {p.feed_ids[f[i]]!r} ({lo}..{lim[i] - 1})")
        if len(rec.rd_feed):
            f = rec.rd_feed
            for name, arr, lim, lo in (("rd_metric", rec.rd_metric, p.key_ncat[f], 0),
                                       ("rd_kind", rec.rd_kind, p.key_nsub[f] - 1, -1)):
                bad = (arr < lo) | (arr >= lim)
                if bad.any():
                    i = np.flatnonzero(bad)[0]
                    raise ValueError(f"{name} {arr[i]} out of range for feed {p.feed_ids[f[i]]!r} ({lo}..{lim[i] - 1})")
        if len(rec.sn_feed):
            f = rec.sn_feed
            nfield = np.array([len(self.catalog.feeds[x].get("fields") or {}) for x in p.feed_ids])[f]
            for name, arr, lim in (("sn_field", rec.sn_field, nfield), ("sn_entity", rec.sn_entity, p.snap_nent[f])):
                bad = (arr < 0) | (arr >= lim)
                if bad.any():
                    i = np.flatnonzero(bad)[0]
                    raise ValueError(f"{name} {arr[i]} out of range for feed {p.feed_ids[f[i]]!r} (0..{lim[i] - 1})")

    def _prepare(self, rec: Records, lease: list | None = None) -> dict:
        """Buckets and kernel keys of every record, sorted by bucket (stable); the records are
        checked in the same pass (:func:`kernels.record_keys`), and a bad one is reported by
        :meth:`_check` (the bad value named) before anything runs. ``lease``: a list to take the
        bucket and key buffers from the process's pool (:func:`_lend`; the caller gives them back
        when done with the result); ``None``: fresh arrays."""
        p = self.plan
        if rec.feed_ids and list(rec.feed_ids) != list(p.feed_ids):
            self._check(rec)
        fk = p.feed_kind.astype(np.int64)
        out = {}
        kt = self._key_dtype
        for g, (names, kind, off, mul, alim, blo, bhi, add, nreg) in self._groups.items():
            time, feed, a, b, region, value = (getattr(rec, n) for n in names)
            n = len(time)
            bucket, key = _lend(n, np.int64, lease), _lend(n, kt, lease)
            # the records' own region column when it is int32 (as :class:`Records` builds it): checked
            # by record_keys, not copied (``reg`` empty: not written)
            same = region.dtype == np.int32 and region.flags.c_contiguous
            reg = np.empty(0 if same else n, np.int32)
            ok, srt = _record_keys((time, feed, a, b, region), (p.cycle_ns, fk, kind, off, mul, alim, blo, bhi, add,
                                                                 nreg), (bucket, key, reg))
            if same:
                reg = region
            if not ok:
                self._check(rec)  # raises, naming the bad value
                raise ValueError(f"bad {g} records")  # (not reached: _check finds what record_keys did)
            d = dict(bucket=bucket, time=time, feed=feed, key=key, region=reg, value=value)
            if not srt:
                o = np.argsort(bucket, kind="stable")
                d = {c: v[o] for c, v in d.items()}
            out[g] = d
        return out

    @staticmethod
    def _take(group: dict, sel) -> dict:
        return {k: v[sel] for k, v in group.items()}

    def _admit(self, prep: dict, k: int, counts: dict) -> dict:
        """Records of ``prep`` admitted at cycle ``k``: not in the future, not later than lateness."""
        at = k * self.plan.cycle_ns
        out = {}
        for g, d in prep.items():
            # the counts in one pass (kernels.admit_count); the masks only when some are left out
            nfut, nlate, _ = K.admit_count(d["bucket"], d["time"], d["feed"], self._late_ns, k, at)
            counts["core.future"] = counts.get("core.future", 0) + nfut
            counts["core.too_late"] = counts.get("core.too_late", 0) + nlate
            if nfut or nlate:
                ok = ~((d["bucket"] > k) | (d["time"] <= at - self._late_ns[d["feed"]]))
                out[g] = self._take(d, ok)
            else:
                out[g] = d
        return out

    # ------------------------------------------------------------------ kernels
    def _parallel(self) -> str:
        """The cycle driver: ``"serial"`` (:func:`kernels.run_cycles`, one thread), ``"shares"``
        (:meth:`_run_shares`: each numba thread runs every cycle of the call for its own share of
        the bases and the derived rows that read only them) or ``"stages"`` (:meth:`_run_threads`:
        each stage of each cycle split over threads; big cities). Auto: serial with one numba
        thread, stages from :data:`PARALLEL_MIN_VALUES` values a cycle, else shares.
        ``CITYVITALS_CORE_PARALLEL`` = 0 (serial), 1 (stages) or ``shares`` forces one."""
        env = os.environ.get("CITYVITALS_CORE_PARALLEL", "auto").strip().lower()
        if env == "0":
            return "serial"
        if env == "1":
            return "stages"
        if env == "shares":
            return "shares"
        import numba

        if numba.get_num_threads() <= 1:
            return "serial"
        return "stages" if len(self.plan.rollup) * self.plan.n_regions >= PARALLEL_MIN_VALUES else "shares"

    def _state_tuple(self, most_per_bucket: int) -> tuple:
        s = self.state
        from engine.core.plan import COUNT16_MAX

        if not s.count_wide and int(s.cmax[0]) + most_per_bucket > COUNT16_MAX:
            s.widen()  # a bucket could pass 65,535: int32 counts from now on (values unchanged)
        if self._scratch_for is not s:
            self._snap_k[:] = -1
            self._sdirty[:] = 0
            self._snap_q[:] = 0
            self._blk_fx[:] = 0
            self._scratch_for = s
        arrs = {f: getattr(s, f) for f in K.S_FIELDS}
        if s.count_wide:  # int32 rings travel in the S_WIDE slots, the uint16 ones empty (one specialisation)
            wide = (arrs["ringN"], arrs["ringO"])
            arrs["ringN"] = arrs["ringO"] = self._no16
        else:
            wide = (self._no32, self._no32)
        return tuple(arrs[f] for f in K.S_FIELDS) + (self._snap_k, self._sdirty, self._qlv, self._qlf, self._snap_q,
                                                       self._blk_fx) + wide

    @staticmethod
    def _most_per_bucket(g: dict, known_sorted: bool = False):
        """The most records of ``g`` that this call bins (``off[0] .. off[-1] - 1``) sharing a
        bucket: a bound of :meth:`_most_per_cell` (a cell is a bucket and a region) from the
        buckets' runs, the records being sorted by bucket (:meth:`_prepare`; ``None`` if not;
        ``known_sorted``: the caller knows they are, the check is skipped)."""
        lo, hi = int(g["off"][0]), int(g["off"][-1])
        b = g["bucket"][lo:hi]
        if len(b) < 2:
            return len(b)
        if not known_sorted and (b[1:] < b[:-1]).any():
            return None
        b0, b1 = int(b[0]), int(b[-1])
        if b1 - b0 < 1_000_000:
            return int(np.diff(np.searchsorted(b, np.arange(b0, b1 + 2))).max())
        cuts = np.flatnonzero(b[1:] != b[:-1])
        return int(np.diff(np.concatenate([[-1], cuts, [len(b) - 1]])).max())

    def _cell_bound(self, ev: dict, rd: dict, per_bucket=None) -> int:
        """What :meth:`_state_tuple` adds to ``cmax`` to decide whether the count rings widen: the
        most records of ``ev`` or ``rd`` sharing a bucket and a region (:meth:`_most_per_cell`),
        or the cheaper :meth:`_most_per_bucket` (never less; ``per_bucket``: that of both, when
        the caller has it) when that one already says no; the same decision either way."""
        from engine.core.plan import COUNT16_MAX

        s = self.state
        if s.count_wide:
            return 0  # (not read)
        if per_bucket is None:
            a, b = self._most_per_bucket(ev), self._most_per_bucket(rd)
            per_bucket = None if a is None or b is None else max(a, b)
        if per_bucket is not None and int(s.cmax[0]) + per_bucket <= COUNT16_MAX:
            return per_bucket
        return max(self._most_per_cell(ev), self._most_per_cell(rd))

    def _most_per_cell(self, g: dict) -> int:
        """The most records sharing a bucket and a region: a count ring cell (base, series, bucket)
        grows by at most this much, since a series belongs to one region."""
        lo, hi = int(g["off"][0]), int(g["off"][-1])
        bucket, region = g["bucket"][lo:hi], g["region"][lo:hi]
        if len(bucket) == 0:
            return 0
        b0 = int(bucket.min())
        span = int(bucket.max()) - b0 + 1
        nreg = self.plan.n_regions
        if span == 1:  # (a step's usual case: one bucket, the cells are the regions; no key built)
            return int(np.bincount(region, minlength=1).max())
        if span * nreg <= 50_000_000:
            return int(np.bincount((bucket - b0) * nreg + region, minlength=1).max())
        return int(np.unique((bucket - b0) * nreg + region, return_counts=True)[1].max())

    def _run(self, k0: int, T: int, ncomp: int, groups: dict | None, out=None, D=None, num=None, den=None,
             per_bucket=None) -> None:
        """Run cycles ``k0 .. k0 + T - 1`` in one kernel call; values of the last ``ncomp`` cycles
        into ``out`` / ``D`` (and ``num`` / ``den`` when given: roll-up parts); ``per_bucket``:
        the most events or readings of the call sharing a bucket, when the caller has it."""
        if groups is None:
            groups = self._no_records(T)
        ev, rd, sn = groups["ev"], groups["rd"], groups["sn"]
        # events and readings feed different bases: the larger of the two bounds any ring cell;
        # only the records this call bins (``off[0] .. off[-1] - 1``) count
        S = self._state_tuple(self._cell_bound(ev, rd, per_bucket))
        parts = num is not None
        if out is None:
            O = (self._sink32, self._no64)
            D = self._dummy3
        elif out.dtype == np.float32:
            O = (out, self._no64)
        else:
            O = (self._sink32, out)
        if not parts:
            num = den = self._dummy3
        EV = (ev["bucket"], ev["key"], ev["region"], ev["value"], ev["off"], True)  # events: a NaN value counts
        RD = (rd["bucket"], rd["key"], rd["region"], rd["value"], rd["off"], False)  # readings: skipped
        SN = (sn["time"], sn["key"], sn["value"], sn["off"])
        mode = self._parallel()
        if mode == "stages":
            self._run_threads(k0, T, ncomp, EV, RD, SN, S, O, D, num, den, parts)
        elif mode == "shares":
            self._run_shares(k0, T, ncomp, EV, RD, SN, S, O, D, num, den, parts)
        else:
            bases, rows, bptr, rptr = self._groups_of(self._all_bases, self._all_rows)
            K.run_cycles(k0, T, ncomp, EV, RD, SN, self._P, S, O, D, num, den, parts, self._scratch(1)[0],
                         self._DP, self._stack, bases, rows, bptr, rptr, self._all_mask, True)
        self.state.last_cycle = k0 + T - 1

    def _share_weights(self) -> tuple:
        """(per base, per row) estimated work of the add and of the values: the series touched, weighted by
        the blocks, extremes and sorted windows of a base; a row's series (:meth:`_thread_shares`)."""
        p = self.plan
        nser = np.diff(p.base_ser0).astype(np.float64)
        w_base = nser * (1 + np.diff(p.base_blk_ptr) + np.diff(p.base_mm_ptr) + 4 * np.diff(p.base_q_ptr)) \
            + np.diff(p.mem_ptr)
        return w_base, nser[p.ind_base] + 1

    @staticmethod
    def _split(w, idx, parts: int) -> list:
        """``idx`` cut into ``parts`` contiguous pieces of about the same total ``w`` (empty dropped)."""
        cum = np.cumsum(w)
        cuts = np.searchsorted(cum, cum[-1] * np.arange(1, parts) / parts) if len(w) else []
        return [x for x in np.split(idx, cuts) if len(x)]

    def _thread_shares(self, nt: int) -> dict:
        """The threaded driver's pieces of the bases (advance, add) and of the rows (values) for
        ``nt`` threads: first :data:`SHARE_CALIBRATE_PIECES` pieces of the estimated work
        (:meth:`_share_weights`), whose add and values calls are timed (thread CPU) over
        :data:`SHARE_CALIBRATE_CYCLES` cycles; then (:meth:`_calibrate`) pieces cut by that
        measured cost (:meth:`_guided`). The estimate alone misjudged a share of 1/8 by up to 3x
        at 6,000 regions (one thread idle at each stage's end). Any partition gives the same
        numbers (each base and row computed by one thread as the serial kernel does)."""
        got = getattr(self, "_tshares", None)
        if got is not None and got["nt"] == nt:
            return got
        w_base, w_row = self._share_weights()
        m = SHARE_CALIBRATE_PIECES
        bases, rows = self._split(w_base, self._all_bases, m), self._split(w_row, self._all_rows, m)
        self._tshares = dict(nt=nt, bases=bases, rows=rows, w=(w_base, w_row),
                             t=(np.zeros((SHARE_CALIBRATE_CYCLES, len(bases))),
                                np.zeros((SHARE_CALIBRATE_CYCLES, len(rows)))), n=0)
        return self._tshares

    def _calibrate(self, ts: dict) -> None:
        """After :data:`SHARE_CALIBRATE_CYCLES` timed cycles, cut the bases and rows of ``ts``
        (:meth:`_thread_shares`) again by each element's estimate scaled by its piece's measured
        cost (least of the cycles after the first) over its piece's estimate (:meth:`_guided`);
        the timing stops."""
        if ts["t"] is None or ts["n"] < SHARE_CALIBRATE_CYCLES:
            return
        for name, w, t in zip(("bases", "rows"), ts["w"], ts["t"]):
            pieces = ts[name]
            t = t[1:].min(axis=0)
            cost = np.concatenate([w[s] * (tj / max(float(w[s].sum()), 1e-300)) for s, tj in zip(pieces, t)])
            if np.isfinite(cost).all() and cost.sum() > 0:
                ts[name] = self._guided(cost, np.concatenate(pieces), ts["nt"])
        ts["t"] = None

    @staticmethod
    def _guided(cost: np.ndarray, idx: np.ndarray, nt: int) -> list:
        """``idx`` (in its order) cut into contiguous pieces for ``nt`` threads taking the next
        piece as they finish (:func:`_run_all`): each piece about the remaining cost over
        ``2 nt``, none below the total over ``16 nt`` (smaller pieces toward the end, so a
        thread that finishes last waits less for the others); returned heaviest first."""
        cum = np.cumsum(cost)
        total = float(cum[-1])
        pieces, lo, done, n = [], 0, 0.0, len(idx)
        while lo < n:
            target = max((total - done) / (2 * nt), total / (16 * nt))
            hi = min(n, max(lo + 1, int(np.searchsorted(cum, done + target, side="right"))))
            if n - hi and cum[-1] - cum[hi - 1] < 0.5 * total / (16 * nt):
                hi = n  # (no sliver at the end)
            pieces.append((float(cum[hi - 1] - done), idx[lo:hi]))
            done, lo = float(cum[hi - 1]), hi
        order = sorted(range(len(pieces)), key=lambda i: -pieces[i][0])
        return [pieces[i][1] for i in order]

    def _derived_cuts(self, parts: int) -> list:
        """``parts`` column ranges ``(r0, r1)`` of the regions for :func:`kernels.derived_cols`, their
        bounds multiples of 16 (no cache line of the float32 output, ``D`` or the stack shared by
        two ranges)."""
        nreg = self.plan.n_regions
        cuts = sorted({min(nreg, (nreg * i // parts) // 16 * 16) for i in range(parts)} | {nreg})
        return [(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]

    def _run_threads(self, k0, T, ncomp, EV, RD, SN, S, O, D, num, den, parts) -> None:
        """:func:`kernels.run_cycles` with stages 1, 3b + 4, 5 and the derived rows of each cycle
        split over the numba thread count of Python threads (the kernels release the GIL): the
        advance and the add by bases and the values by rows, pieces cut by measured cost (:meth:`_thread_shares`),
        the derived rows by column ranges of the regions, two a thread (:meth:`_derived_cuts`,
        :func:`kernels.derived_cols`); stage 2 / 3a (binning, snapshot records) of a cycle with at
        least :data:`BIN_SPLIT_MIN` events and readings by bases, one share a thread
        (:meth:`_bin_masks`, :func:`kernels.bin_part`: each thread its own ``cmax``; the snapshot
        records on the first), else on this thread. Every base, row and value is computed by one
        thread with the serial kernel's operations: the same numbers bit for bit."""
        import numba

        nt = numba.get_num_threads()
        pool = _thread_pool(nt)
        ts = self._thread_shares(nt)
        bases, rows = ts["bases"], ts["rows"]
        scr = self._scratch(len(rows))
        cols = self._derived_cuts(2 * nt)
        P = self._P
        masks = self._bin_masks(nt, EV, RD) if nt > 1 else None
        if masks is not None:
            i_cmax = K.S_FIELDS.index("cmax")
            own = getattr(self, "_bin_cmax", None)
            if own is None or len(own) < len(masks) - 1:
                own = self._bin_cmax = [np.zeros(1, np.int64) for _ in range(len(masks) - 1)]
            tuples = [S]
            for cm in own[:len(masks) - 1]:
                cm[0] = S[i_cmax][0]
                s = list(S)
                s[i_cmax] = cm
                tuples.append(tuple(s))
            bins = [(K.bin_part, 0, 0, EV, RD, SN, P, tuples[j], m, j == 0) for j, m in enumerate(masks)]
            nrec = (EV[4][1:] - EV[4][:-1]) + (RD[4][1:] - RD[4][:-1])

        def run(calls):
            _run_all(pool, calls)

        cal = ts if ts["t"] is not None and nt > 1 else None
        for t in range(T):
            k = k0 + t
            tt = t - (T - ncomp)
            run([(K.advance_bases, k, b, P, S) for b in bases])
            if masks is not None and nrec[t] >= BIN_SPLIT_MIN:
                run([(f, k, t, *a) for f, _, _, *a in bins])
            else:
                K.bin_snap(k, t, EV, RD, SN, P, S, self._all_mask)
            # (the add and values of a cycle with outputs, until enough are timed: a replay's call
            # runs many)
            timed = cal is not None and tt >= 0 and cal["n"] < SHARE_CALIBRATE_CYCLES
            tb, tr = ((cal["t"][0][cal["n"]], cal["t"][1][cal["n"]]) if timed else (None, None))
            run([(_timed, tb, j, K.add_bases, k, b, P, S) if timed else (K.add_bases, k, b, P, S)
                 for j, b in enumerate(bases)])
            if tt >= 0:
                run([(_timed, tr, j, K.values_rows, tt, r, P, S, O, D, num, den, parts, scr[j]) if timed else
                     (K.values_rows, tt, r, P, S, O, D, num, den, parts, scr[j]) for j, r in enumerate(rows)])
                if len(self._DP[4]) > 0:
                    run([(K.derived_cols, tt, self._DP, O, D, self._stack, r0, r1) for r0, r1 in cols])
            if timed:
                cal["n"] += 1
        if masks is not None:
            S[i_cmax][0] = max(int(x[i_cmax][0]) for x in tuples)
        if cal is not None:
            self._calibrate(ts)  # (the next call's pieces)

    def _bin_masks(self, parts: int, EV: tuple, RD: tuple):
        """``parts`` disjoint uint8 masks of the bases (together every base) for the threaded
        driver's binning (:func:`kernels.bin_part`), each about the same records binned per cycle
        (:meth:`_record_weights`: bases dealt heaviest first to the lightest share); ``None`` (bin
        on one thread) until a call has had enough records to weigh the bases. Any partition gives
        the same numbers (each base's records are binned by one thread, in order)."""
        if getattr(self, "_bmasks_for", None) == parts:
            return self._bmasks
        recw = self._record_weights(EV, RD)
        if recw is None:
            return None
        load = [0.0] * parts
        owner = np.zeros(len(recw), np.int64)
        for b in np.argsort(-recw, kind="stable").tolist():
            j = min(range(parts), key=load.__getitem__)
            owner[b] = j
            load[j] += float(recw[b])
        self._bmasks = [(owner == j).astype(np.uint8) for j in range(parts)]
        self._bmasks_for = parts
        return self._bmasks

    def _record_weights(self, EV: tuple, RD: tuple):
        """Records binned per cycle of each base (float64, bases), estimated from the events and
        readings of this call (a strided sample of at most ~200,000 of each), for
        :meth:`_base_shares`; ``None`` while no call binned :data:`SHARE_RECORDS_MIN` records.
        Computed once (the first call with that many records) and kept, so the shares stay."""
        w = getattr(self, "_recw", None)
        if w is not None:
            return w
        p = self.plan
        nkeys = len(p.map_ptr) - 1
        cnt = np.zeros(nkeys)
        tot = 0
        for g in (EV, RD):
            key, off = g[1], g[4]
            lo, hi = int(off[0]), int(off[-1])
            tot += hi - lo
            if hi > lo:
                step = max(1, (hi - lo) // 200_000)
                cnt += np.bincount(key[lo:hi:step], minlength=nkeys)[:nkeys] * float(step)
        if tot < SHARE_RECORDS_MIN:
            return None
        per_entry = np.repeat(cnt, np.diff(p.map_ptr))  # (the map's entries: each key's bases)
        self._recw = np.bincount(p.map_base, weights=per_entry, minlength=p.n_bases)[:p.n_bases]
        return self._recw

    def _base_shares(self, parts: int, recw=None) -> list:
        """``parts`` disjoint shares of the bases for :meth:`_run_shares`, as (bases, indicator
        positions, uint8 base mask, derived program) each; empty shares dropped. An indicator row
        goes with its base, the bases a row reads (an event share's denominator base) stay in one
        share, and so do the bases every derived row reads (through the rows its formula refers
        to, derived ones included): each derived row is evaluated by the share holding its inputs,
        in the same cycle, right after that share's values (the share's part of the derived
        program, :meth:`_sub_program`, in the program's dependency order). Groups of bases are dealt
        out largest first to the lightest share, weighted by an estimate of their work per cycle
        (ring row and window-sum cells added, running extremes and sorted windows, snapshot
        members, output values written, derived instructions) and, when given, ``recw`` (records
        binned per base: :meth:`_record_weights`; :data:`SHARE_RECORDS_WEIGHT`). Any partition
        gives the same numbers (each base and row computed by one thread as the serial kernel
        does); the weights only balance the threads' work."""
        key = (parts, recw is not None)
        if getattr(self, "_bshares_for", None) == key:
            return self._bshares
        p = self.plan
        B = p.n_bases
        parent = list(range(B))  # (Python lists and ints here: ~0.3 k components, ~1 k derived rows)

        def find(x):
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        def union(a, b):
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)

        two = p.ind_blk2 >= 0
        for b, b2 in zip(p.ind_base[two].tolist(), p.blk_base[p.ind_blk2[two]].tolist()):
            union(b, b2)
        # the bases each derived row reads (its references' bases; a derived reference's own)
        ops, arg, _, ptr, out_row, _ = self._DP
        vrow = np.full(len(p.indicator_ids), -1, np.int64)
        vrow[p.ind_row] = np.arange(len(p.ind_row))
        crow = self.derived.compact_rows
        vbase = np.where(vrow >= 0, p.ind_base[np.maximum(vrow, 0)], -1).tolist()  # a row's base (-1: derived)
        refs = crow[arg[ops == 0]].tolist()  # each ref instruction's row, in program order
        nref = np.concatenate([[0], np.cumsum(ops == 0)]).astype(np.int64)[ptr].tolist()  # refs before each row
        reads: dict = {}
        first_l = [-1] * len(out_row)  # a base of each derived row (-1: none)
        for j, orow in enumerate(out_row.tolist()):
            bs: set = set()
            for r in refs[nref[j]:nref[j + 1]]:
                vb = vbase[r]
                if vb >= 0:
                    bs.add(vb)
                else:
                    bs |= reads[r]
            reads[orow] = bs
            if bs:
                bs_l = sorted(bs)
                first_l[j] = bs_l[0]
                for b in bs_l[1:]:
                    union(bs_l[0], b)
        first = np.array(first_l, np.int64)
        comp = np.array([find(b) for b in range(B)], np.int64)
        nser = np.diff(p.base_ser0).astype(np.float64)
        w_base = nser * (1 + np.diff(p.base_blk_ptr) + 2 * np.diff(p.base_mm_ptr) + 4 * np.diff(p.base_q_ptr)) \
            + np.diff(p.mem_ptr)
        w_rows = np.bincount(p.ind_base, weights=nser[p.ind_base] + p.n_regions, minlength=B)
        has = first >= 0
        w_rows += np.bincount(first[has], weights=np.diff(ptr)[has] * p.n_regions / 2.0, minlength=B)
        w = w_base / max(w_base.sum(), 1.0) + w_rows / max(w_rows.sum(), 1.0)  # add and values: similar costs
        if recw is not None:
            w = w + SHARE_RECORDS_WEIGHT * recw / max(recw.sum(), 1.0)
        wc = np.bincount(comp, weights=w, minlength=B)
        # each component (by its root, the least base) dealt to the lightest share, heaviest first
        members = np.bincount(comp, minlength=B).tolist()
        wcl = wc.tolist()
        load = [0.0] * parts
        cowner = [0] * B
        for c in np.argsort(-wc, kind="stable").tolist():
            if wcl[c] <= 0 and not members[c]:
                continue
            j = min(range(parts), key=load.__getitem__)  # (the first lightest, as np.argmin)
            cowner[c] = j
            load[j] += wcl[c]
        owner = np.array(cowner, np.int64)[comp]
        shares = []
        dj = np.where(has, owner[np.maximum(first, 0)], -1)
        for j in range(parts):
            bases = np.flatnonzero(owner == j).astype(np.int64)
            if len(bases) == 0:
                continue
            rows = np.flatnonzero(owner[p.ind_base] == j).astype(np.int64)
            mask = (owner == j).astype(np.uint8)
            mine = dj == j
            if not shares:  # derived rows reading no indicator (constants): the first share's
                mine |= dj < 0
            shares.append((bases, rows, mask, self._sub_program(np.flatnonzero(mine))))
        self._bshares, self._bshares_for = shares, key
        return shares

    def _groups_of(self, bases: np.ndarray, rows: np.ndarray) -> tuple:
        """(bases, rows, bptr, rptr) for :func:`kernels.run_cycles`: ``bases`` (in their order) cut
        into consecutive groups of about :data:`ADD_GROUP_WEIGHT` (series weighted by the blocks,
        running extremes and sorted windows of their base, plus snapshot members), and ``rows``
        reordered (stable) by the group that completes their bases: a row goes with the group of
        its base, or of its share denominator's base when that one comes later. Cached per
        ``bases`` / ``rows`` pair (by identity)."""
        cache = getattr(self, "_groups_cache", None)
        if cache is None:
            cache = self._groups_cache = {}
        key = (id(bases), id(rows))
        hit = cache.get(key)
        if hit is not None and hit[0] is bases and hit[1] is rows:
            return hit[2]
        p = self.plan
        nser = np.diff(p.base_ser0).astype(np.float64)
        w = (nser * (1 + np.diff(p.base_blk_ptr) + 2 * np.diff(p.base_mm_ptr) + 4 * np.diff(p.base_q_ptr))
             + np.diff(p.mem_ptr))[bases]
        grp = (np.floor(np.cumsum(w) / ADD_GROUP_WEIGHT).astype(np.int64) if len(bases)
               else np.zeros(0, np.int64))
        if len(grp):
            _, grp = np.unique(grp, return_inverse=True)  # (consecutive group numbers from 0)
            grp = grp.astype(np.int64).reshape(-1)
        ng = int(grp[-1]) + 1 if len(grp) else 0
        of = np.full(p.n_bases, -1, np.int64)
        of[bases] = grp
        rg = of[p.ind_base[rows]]
        two = p.ind_blk2[rows] >= 0
        rg[two] = np.maximum(rg[two], of[p.blk_base[p.ind_blk2[rows][two]]])
        if (rg < 0).any():
            raise AssertionError("a row whose base is not among the bases")
        order = np.argsort(rg, kind="stable")
        bptr = np.concatenate([[0], np.cumsum(np.bincount(grp, minlength=ng))]).astype(np.int64)
        rptr = np.concatenate([[0], np.cumsum(np.bincount(rg, minlength=ng))]).astype(np.int64)
        out = (np.ascontiguousarray(bases, np.int64), np.ascontiguousarray(rows[order], np.int64), bptr, rptr)
        cache[key] = (bases, rows, out)
        return out

    def _sub_program(self, js: np.ndarray) -> tuple:
        """The derived program (:meth:`DerivedPlan.program`) of derived rows ``js`` only (ascending:
        the program's order), for :func:`kernels.derived_rows`."""
        ops, arg, consts, ptr, out_row, d_pos = self._DP
        js = np.asarray(js, np.int64)
        lens = ptr[js + 1] - ptr[js]
        # the instructions of rows ``js`` in order: each row's first plus 0 .. its length - 1
        idx = (np.repeat(ptr[js] - (np.cumsum(lens) - lens), lens) + np.arange(int(lens.sum()))).astype(np.int64)
        sub_ptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        return (ops[idx], arg[idx], consts, sub_ptr, out_row[js], d_pos[js])

    def _run_shares(self, k0, T, ncomp, EV, RD, SN, S, O, D, num, den, parts) -> None:
        """:func:`kernels.run_cycles` on the numba thread count of Python threads, each running
        every cycle of the call for its own share of the bases (:meth:`_base_shares`; the kernels
        release the GIL), the derived rows whose inputs the share holds included (each cycle right
        after its values: no second pass over the cycles, no wait between). Each base and each
        output row is computed by one thread with the same operations in the same order as the
        serial kernel, so the numbers are the same bit for bit.
        Every thread applies all snapshot records to its own copy of the latest values (the
        first thread: the state's) and keeps its own ``cmax`` and changed-series flags."""
        import numba

        nt = max(2, numba.get_num_threads())  # (forced with one numba thread: still two shares)
        pool = _thread_pool(nt)
        shares = self._base_shares(nt, self._record_weights(EV, RD))
        m = len(shares)
        scr = self._scratch(m)
        P = self._P
        i_cmax, i_val, i_time, i_dirty = (K.S_FIELDS.index("cmax"), K.S_FIELDS.index("st_value"),
                                          K.S_FIELDS.index("st_time"), len(K.S_FIELDS) + K.S_SCRATCH.index("sdirty"))
        own = getattr(self, "_share_arrays", None)
        if own is None or len(own) < m - 1 or own[0][1].shape != S[i_val].shape:
            own = self._share_arrays = [(np.zeros(1, S[i_cmax].dtype), np.empty_like(S[i_val]),
                                         np.empty_like(S[i_time]), np.zeros_like(S[i_dirty])) for _ in range(m - 1)]
        tuples = [S]
        for cm, val, tim, dirty in own[:m - 1]:
            cm[:] = S[i_cmax]
            val[:] = S[i_val]
            tim[:] = S[i_time]
            s = list(S)
            s[i_cmax], s[i_val], s[i_time], s[i_dirty] = cm, val, tim, dirty
            tuples.append(tuple(s))
        stacks = getattr(self, "_stacks", None)
        if stacks is None or len(stacks) < m:
            stacks = self._stacks = [self._stack] + [np.empty_like(self._stack) for _ in range(m - 1)]
        # each share its own one-cycle derived inputs (it writes and reads only its rows; in one
        # array the shares' rows interleave, and lines at their borders bounce between the cores)
        Ds = getattr(self, "_dshares", None)
        if D.shape[0] != 1:
            Ds = [D] * m
        elif Ds is None or len(Ds) < m or Ds[0].shape != D.shape:
            Ds = self._dshares = [np.empty_like(D) for _ in range(m)]
        _run_all(pool, [(K.run_cycles, k0, T, ncomp, EV, RD, SN, P, tuples[j], O, Ds[j], num, den, parts, scr[j],
                         dp, stacks[j], *self._groups_of(bases, rows), mask, len(dp[4]) > 0)
                        for j, (bases, rows, mask, dp) in enumerate(shares)])
        S[i_cmax][0] = max(int(t[i_cmax][0]) for t in tuples)
        for t in tuples:  # every share consumed its own flags; those of the other shares' series are stale
            t[i_dirty][:] = 0

    def _scratch(self, m: int) -> np.ndarray:
        """Float64 scratch of the value kernel: (at least ``m``, 2, regions), one (2, regions)
        slice per concurrent call, kept between calls."""
        if getattr(self, "_scr", None) is None or self._scr.shape[0] < m:
            self._scr = np.empty((m, 2, self.plan.n_regions), np.float64)
        return self._scr

    def _no_records(self, T: int) -> dict:
        z = np.zeros(T + 1, np.int64)
        e = dict(bucket=np.zeros(0, np.int64), key=np.zeros(0, self._key_dtype), region=np.zeros(0, np.int32),
                 value=np.zeros(0, np.float64), time=np.zeros(0, np.int64), off=z)
        return {"ev": e, "rd": e, "sn": e}

    def _level(self, level):
        """``(level, region groups or None at the finest level, labels)``, kept per level: the labels
        of 6,000 regions cost ~4-7 ms to build (a str of each pandas index entry), every step. The
        entry is rebuilt when the city's region table is another object (held, compared by
        identity)."""
        first = self.city.levels[0]
        level = first if level is None else level
        cache = self.__dict__.setdefault("_levels", {})
        got = cache.get(level)
        if got is None or got[0] is not self.city.regions:
            g, labels, _ = level_groups(self.city, level)
            got = cache[level] = (self.city.regions, (None if level == first else g), labels)
        return level, got[1], got[2]

    def _dcycle(self) -> np.ndarray:
        """The derived formulas' inputs of one cycle, (1, compact rows, regions) float64, kept
        between calls (the kernels rewrite it every cycle: :func:`kernels.run_cycles`)."""
        D = getattr(self, "_D1", None)
        if D is None:
            D = self._D1 = np.empty((1, len(self.derived.compact_rows), self.plan.n_regions), np.float64)
        return D

    def _buffers(self, T: int, out_dtype, parts: bool, out=None):
        """(out, D, num, den) for ``T`` cycles at the finest level (``D``: one cycle's; ``out``: an
        array to write again, from :meth:`_step_spare`)."""
        p = self.plan
        nind, nreg = len(p.indicator_ids), p.n_regions
        if out is None:
            out = np.empty((T, nind, nreg), out_dtype)
        D = self._dcycle()
        if parts:
            return out, D, np.empty((T, nind, nreg), np.float64), np.empty((T, nind, nreg), np.float64)
        return out, D, None, None

    def _step_spare(self, fine: bool):
        """An earlier step's finest-level output (1, indicators, regions) that nothing but this
        engine holds any more, to be written again instead of a fresh one, when the threaded driver
        for big cities runs (:meth:`_parallel`: ``"stages"``); ``None``: a fresh one. The engine
        keeps the outputs of its last :data:`STEP_SPARES` steps (a caller's ``ds = eng.step(...)``
        still holds the previous one during the call); one is free when ``sys.getrefcount`` finds
        no other reference (the step's Dataset, every view of it and every buffer export hold
        one). Each step writes every row (values and derived rows), so the numbers do not depend
        on what the array held; at 6,000 regions a fresh 70 MB output costs its first-touch page
        faults (~8 ms CPU a step on the project's VM: docs/core.md, twentieth session)."""
        spares = getattr(self, "_step_outs", None)
        if spares is None:
            spares = self._step_outs = []
        if not fine or self._parallel() != "stages":
            spares.clear()
            return None
        shape = (1, len(self.plan.indicator_ids), self.plan.n_regions)
        for i in range(len(spares)):
            # references: the list's, ``buf`` and getrefcount's argument (no enumerate: its reused
            # result tuple would hold one more)
            buf = spares[i]
            if sys.getrefcount(buf) <= 3 and buf.dtype == self.dtype and buf.shape == shape:
                del spares[i]
                return buf
            del buf
        return None

    def _keep_spare(self, out) -> None:
        """Keep ``out`` (a step's finest-level output) among the :data:`STEP_SPARES` last ones."""
        spares = self._step_outs
        spares.append(out)
        del spares[:-STEP_SPARES]

    def _finish(self, out, D, num, den, g, nlabels: int, dst) -> None:
        """At a coarser level roll each cycle of ``out`` up into ``dst`` (the derived rows are in
        ``out`` and ``D`` already: the kernel evaluates them per cycle)."""
        # the derived rows are already in ``out`` and ``D`` (kernels.derived_rows, per cycle)
        if g is not None:
            for t in range(out.shape[0]):
                dst[t] = rollup(out[t], num[t], den[t], self.plan.rollup, self._row_mult, g, nlabels, self._pop,
                                self.derived)

    def _advance_to(self, k: int) -> None:
        last = self.state.last_cycle
        if last >= 0 and k <= last:
            raise ValueError(f"cycle {pd.Timestamp(k * self.plan.cycle_ns)} is not after the last cycle computed "
                             f"({pd.Timestamp(last * self.plan.cycle_ns)})")
        if last >= 0 and k > last + 1:  # cycles without a step: empty buckets, snapshots carried
            self._run(last + 1, k - last - 1, 0, None)

    # ------------------------------------------------------------------ public
    def step(self, feeds, at, level: str | None = None):
        """Compute one cycle ending at ``at`` and return every indicator.

        Parameters
        ----------
        feeds : engine.Feeds, encoded records or EncodedFeeds
            The records that arrived for this cycle (late ones included); an
            :meth:`encode` result for ``at``.
        at : timestamp
            The cycle's end, on a cycle boundary; after the last cycle computed.
        level : str, optional
            ``"street"``, ``"district"`` (or ``"block"`` for grids); default the finest level.

        Returns
        -------
        xarray.Dataset
            ``value`` (indicator, region); indicator coordinates domain, dimension, unit, names;
            ``attrs``: ``time``, ``level``, quarantine counts (``quarantine.*``, ``core.*``).
        """
        k = self._cycle_of(at)
        level, g, labels = self._level(level)
        prep, qcounts = self._encode(feeds, k * self.plan.cycle_ns)
        self._advance_to(k)
        counts: dict = {}
        batch = self._admit(prep, k, counts)
        for d in batch.values():
            d["off"] = np.array([0, len(d["bucket"])], np.int64)
        fine = g is None
        out, D, num, den = self._buffers(1, self.dtype if fine else np.float64, not fine, self._step_spare(fine))
        if fine and self._parallel() == "stages":
            self._keep_spare(out)  # (written again by a later step once nothing else holds it)
        self._run(k, 1, 1, batch, out, D, num, den)
        V = out[0] if fine else np.empty((1, len(out[0]), len(labels)), np.float64)
        self._finish(out, D, num, den, g, len(labels), None if fine else V)
        V = V if fine else V[0].astype(self.dtype)
        attrs = {"time": str(pd.Timestamp(k * self.plan.cycle_ns)), "cycle": self.cycle, **flatten_counts(qcounts)}
        attrs.update(counts)
        self.last_counts = attrs
        return make_dataset(V, self._coords, labels, level, attrs=attrs, index_cache=self._index_cache)

    def output_buffer(self, start, end, level: str | None = None) -> np.ndarray:
        """An uninitialised array for :meth:`replay`'s ``out``: (cycles from ``start`` to ``end``,
        indicators, regions of ``level``) in the engine's dtype.

        >>> from engine import City, Catalog
        >>> eng = Engine(City.synthetic(seed=1, neighbourhoods=12, streets=3, population=30_000), Catalog.load())
        >>> buf = eng.output_buffer("2020-02-01 00:15", "2020-02-01 01:00", level="street")
        >>> buf.shape[0], buf.shape[1] == len(eng.plan.indicator_ids), buf.shape[2], buf.dtype
        (4, True, 3, dtype('float32'))
        """
        k0, k1 = self._cycle_of(start), self._cycle_of(end)
        if k1 < k0:
            raise ValueError(f"end {end!r} is before start {start!r}")
        _, _, labels = self._level(level)
        with small_pages():  # (4 kB pages: on the project's VM their first touch is the cheaper)
            return np.empty((k1 - k0 + 1, len(self.plan.indicator_ids), len(labels)), self.dtype)

    def _check_out(self, out, shape: tuple) -> None:
        if not isinstance(out, np.ndarray):
            raise TypeError(f"out must be a numpy array, got {type(out).__name__}")
        if out.shape != shape:
            raise ValueError(f"out has shape {out.shape}, expected {shape} (cycles, indicators, regions)")
        if out.dtype != self.dtype:
            raise ValueError(f"out has dtype {out.dtype}, expected the engine's {self.dtype}")
        if not out.flags.c_contiguous or not out.flags.writeable:
            raise ValueError("out must be C-contiguous and writeable")

    def replay(self, feeds, start, end, level: str | None = None, out: np.ndarray | None = None):
        """Compute every cycle from ``start`` to ``end`` (both cycle ends, inclusive).

        Equal, number for number, to successive :meth:`step` calls where the first step gets every
        record up to ``start`` and each later step the records of its own cycle. An engine that
        already computed cycles continues from them (records of those cycles are skipped), so a
        long period can be replayed in chunks with the same result. At the finest level the whole
        period is one kernel call (up to :data:`REPLAY_CHUNK_CYCLES` cycles; in chunks of
        :data:`REPLAY_CHUNK_BYTES` where the count rings might widen within it); at a coarser level
        chunks of up to :data:`REPLAY_CHUNK_BYTES` of float64 scratch, one kernel call each.

        Parameters
        ----------
        feeds : engine.Feeds, encoded records or EncodedFeeds
            An :meth:`encode` result must be for ``end``.
        start, end : timestamp
            The first and last cycle end.
        level : str, optional
            As in :meth:`step`.
        out : numpy.ndarray, optional
            Where to write the values: (cycles, indicators, regions of ``level``) in the engine's
            dtype, C-contiguous (:meth:`output_buffer`, or the ``value`` of an earlier replay of as
            many cycles that is no longer needed). The returned ``value`` is this array, no copy.
            A caller replaying period by period (a day at a time) that reuses one buffer saves the
            first-touch page faults of a fresh output each period (on some VMs seconds per GB,
            system time); the values are the same.

        Returns
        -------
        xarray.Dataset
            ``value`` (time, indicator, region), attributes as in :meth:`step` summed over cycles.

        Notes
        -----
        A fresh output is allocated with 4 kB pages (:func:`small_pages`) and a thread maps its
        pages (:func:`_populate`) from before the records are prepared, so its first-touch faults
        overlap the serial preparation and the kernels. The records' temporaries keep numpy's
        default (4 kB pages for them cost the serial preparation ~0.15-0.2 s more per replay in a
        process that replays repeatedly; docs/core.md, round 7).
        """
        k0, k1 = self._cycle_of(start), self._cycle_of(end)
        if k1 < k0:
            raise ValueError(f"end {end!r} is before start {start!r}")
        level, g, labels = self._level(level)
        if out is not None:
            self._check_out(out, (k1 - k0 + 1, len(self.plan.indicator_ids), len(labels)))
        if out is None:
            with small_pages():
                out = np.empty((k1 - k0 + 1, len(self.plan.indicator_ids), len(labels)), self.dtype)
            populating = _populate(out)
        else:  # a reused buffer: its pages are mapped already
            populating = None
        return self._replay(feeds, k0, k1, level, g, labels, out, populating)

    def _few_per_cell(self, allrec: dict):
        """The most events or readings of ``allrec`` (off over the whole call) sharing a bucket
        when no chunking of a replay of them could widen the count rings: the state's ``cmax``
        plus twice that stays within uint16 (a ring cell's count in the call is at most ``cmax``
        plus its bucket's records, and a chunk adds at most that many again); ``None`` when it
        might; 0 when the rings are wide already. (``allrec`` is sorted by bucket: :meth:`_replay`
        builds it from :meth:`_prepare`'s sorted records, those up to the first cycle then each
        later bucket's; the ~10 M-record check costs ~10-30 ms on the benchmark.)"""
        from engine.core.plan import COUNT16_MAX

        s = self.state
        if s.count_wide:
            return 0
        most = [self._most_per_bucket(allrec[g], known_sorted=True) for g in ("ev", "rd")]
        if None in most or int(s.cmax[0]) + 2 * max(most) > COUNT16_MAX:
            return None
        return max(most)

    def _replay(self, feeds, k0: int, k1: int, level, g, labels, out_all, populating):
        """:meth:`replay` after its argument checks, into ``out_all`` (``populating``: the thread
        mapping a fresh ``out_all``'s pages, or ``None``)."""
        lease: list = []  # prepared here: the buckets and keys in pooled buffers, given back at the end
        try:
            return self._replay_prepared(feeds, k0, k1, level, g, labels, out_all, populating, lease)
        finally:
            # (on an error too: a kernel call returns only when done, and the shares driver waits
            # for every thread before raising; nothing else keeps the prepared records)
            _give_back(lease)

    def _replay_prepared(self, feeds, k0, k1, level, g, labels, out_all, populating, lease):
        prep, qcounts = self._encode(feeds, k1 * self.plan.cycle_ns, lease)
        last = self.state.last_cycle
        self._advance_to(k0)
        if last >= 0:  # a continued replay: records of cycles already computed were seen then
            lo = {gn: int(np.searchsorted(d["bucket"], last, side="right")) for gn, d in prep.items()}
            prep = {gn: self._take(d, slice(lo[gn], None)) for gn, d in prep.items()}
        T = k1 - k0 + 1
        p = self.plan
        nind, nreg = len(p.indicator_ids), p.n_regions
        fine = g is None
        counts: dict = {}
        # records of cycle k0 + t: the admitted records up to k0 first, then bucket by bucket
        bounds = {gn: np.searchsorted(d["bucket"], np.arange(k0, k1 + 1), side="right") for gn, d in prep.items()}
        first = self._admit({gn: self._take(d, slice(0, bounds[gn][0])) for gn, d in prep.items()}, k0, counts)
        allrec = {}
        for gn, d in prep.items():
            b = bounds[gn]
            n0 = len(first[gn]["bucket"])
            if n0 == b[0]:  # every record up to k0 admitted: one slice, no copy
                allrec[gn] = {c: d[c][:b[-1]] for c in d}
            else:
                allrec[gn] = {c: np.concatenate([first[gn][c], d[c][b[0]:b[-1]]]) for c in d}
            allrec[gn]["off"] = np.concatenate([[0], n0 + (b - b[0])]).astype(np.int64)
        per_cycle = nind * nreg * (8 * 3 if not fine else self.dtype.itemsize) + len(self.derived.compact_rows) * nreg * 8
        chunk = int(max(1, min(T, REPLAY_CHUNK_BYTES // max(per_cycle, 1))))
        per_bucket = None
        if fine and REPLAY_CHUNK_CYCLES > chunk:
            per_bucket = self._few_per_cell(allrec)
        if per_bucket is not None:
            # no scratch grows with the cycles: the whole replay in one call (one call per thread
            # of the shares driver, no wait between chunks), unless the count rings might widen
            # within it (then the chunks above, so they widen where they always did)
            chunk = int(min(T, REPLAY_CHUNK_CYCLES))
        bufs = None if fine else self._buffers(chunk, np.float64, True)
        for t0 in range(0, T, chunk):
            t1 = min(T, t0 + chunk)
            n = t1 - t0
            grp = {}
            for gn, d in allrec.items():
                o = d["off"]
                grp[gn] = {c: v for c, v in d.items() if c != "off"}
                grp[gn]["off"] = o[t0:t1 + 1]
            if fine:
                dst, D, num, den = out_all[t0:t1], self._dcycle(), None, None
            else:
                dst, D, num, den = (x[:n] for x in bufs)
            self._run(k0 + t0, n, n, grp, dst, D, num, den, per_bucket if n == T else None)
            self._finish(dst, D, num, den, g, len(labels), None if fine else out_all[t0:t1])
        if populating is not None:
            populating.join()
        counts["core.after_end"] = int(sum(len(d["bucket"]) - bounds[gn][-1] for gn, d in prep.items()))
        times = pd.to_datetime(np.arange(k0, k1 + 1, dtype=np.int64) * self.plan.cycle_ns)
        attrs = {"start": str(times[0]), "end": str(times[-1]), "cycle": self.cycle, **flatten_counts(qcounts)}
        attrs.update(counts)
        self.last_counts = attrs
        return make_dataset(out_all, self._coords, labels, level, times=times, attrs=attrs,
                            index_cache=self._index_cache)
