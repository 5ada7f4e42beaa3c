"""Compile a run's later kernels in a second process while the run starts (a fresh numba cache).

On a fresh cache (a new clone, an install, an edited kernel file) a run compiles every numba
kernel it calls the first time it calls it, on one thread: the detectors' at the burn-in, the
alerts', indices' and store's at the first scored day. The run's first minute (simulation, the
core's compilation and replay) leaves the second core mostly idle. :func:`start` spawns a
**warmer**: a separate Python process (spawned, not forked: numba's OpenMP runtime and ``fork``
do not mix) that builds the run's catalog, city, detectors, alert manager and index plan and runs
each stage on a few cycles of synthetic values of the run's exact shapes and dtypes, so numba
compiles the same specialisations into the same cache. The run then waits, before each stage,
until the warmer has done that stage (:meth:`Warmer.wait`) and loads the kernels from the cache
instead of compiling them (a stage the warmer failed or has not reached when it exits is
compiled by the run as before: the warmer can only save time, never change a result).

**The cache shared by two processes.** numba writes a function's index (``.nbi``) and data
(``.nbc``) files each atomically (a temporary file, then ``os.replace``), but a save is a read
of the index, an update and two writes: two processes saving different signatures of one
function at once could lose an index entry or, worse, give two signatures the same data file.
While a warmer runs, both processes take one file lock around every cache save and load
(:func:`cache_lock`), so saves and loads are whole.

**A warm cache pays nothing but a probe** (:func:`needs_warming`): after a complete warm-up the
warmer records the kernels it compiled or loaded (module and name); a later run checks that
each of their cache indexes is still there and fresh for its source file (numba's own stamp:
the file's mtime and size), a few milliseconds. A missing record, a cleared cache or an edited
kernel file starts a warmer again.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import json
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import numpy as np

#: the stages a warmer compiles, in the order a run needs them
STAGES = ("learn", "detect", "alerts", "indices", "store")

#: the warmer processes: their tag, stages and the kernels each leaves to the other (replaced by a
#: no-op in that process only). The detectors' learning compiles two large kernels one after the
#: other (``run_kernel`` ~65-70 s and the scan's ``_advance`` / ``_monte_carlo`` ~33 s of one thread,
#: docs/report.md and docs/detect.md, seventh session): one process each, the second going on with
#: the alerts', indices' and store's kernels (~25 s).
PLAN = (
    {"tag": "a", "stages": ("learn",), "skip": ("engine.detect.detectors:scan_run_kernel",)},
    {"tag": "b", "stages": STAGES, "skip": ("engine.detect.detectors:run_kernel",)},
)

#: the package prefixes whose kernels the record lists (what a run's later stages compile)
_PREFIXES = ("engine.",)

_RECORD = "warm-record.json"

# ---------------------------------------------------------------------------------------------
# the record of a complete warm-up, and the probe


def _dispatchers(prefixes=_PREFIXES):
    """``(module name, attribute, dispatcher)`` of every cached numba function in the imported modules."""
    from numba.core.dispatcher import Dispatcher

    found = []
    for name, mod in list(sys.modules.items()):
        if mod is None or not name.startswith(prefixes):
            continue
        for attr, obj in list(vars(mod).items()):
            if isinstance(obj, Dispatcher) and getattr(obj, "_cache", None) is not None \
                    and type(obj._cache).__name__ != "NullCache" and obj.__module__ == name:
                found.append((name, attr, obj))
    return found


def _index_fresh(dispatcher) -> bool:
    """Whether ``dispatcher``'s cache index exists, is of this numba and fresh for its source file."""
    return bool(dispatcher._cache._cache_file._load_index())


def _record_path() -> Path | None:
    """Where the record lives: beside the cache of this module's own kernel (numba picks the place:
    ``NUMBA_CACHE_DIR``, the source's ``__pycache__`` or the user's cache directory), or
    ``CITYVITALS_WARM_RECORD``."""
    if os.environ.get("CITYVITALS_WARM_RECORD"):
        return Path(os.environ["CITYVITALS_WARM_RECORD"])
    try:
        return Path(_probe_kernel._cache._cache_path) / _RECORD
    except Exception:   # a numba without these internals: no record, no warmer
        return None


def _probe_kernel_py(x):  # pragma: no cover - compiled
    return x + 1


def _make_probe():
    from engine.config import njit

    return njit(_probe_kernel_py)


_probe_kernel = _make_probe()


def write_record(compiled: list[tuple[str, str]]) -> Path | None:
    """Record the kernels a complete warm-up compiled or loaded (``(module, attribute)`` pairs)."""
    path = _record_path()
    if path is None:
        return None
    import numba

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"numba": numba.__version__, "kernels": sorted(map(list, compiled))}))
    os.replace(tmp, path)
    return path


def needs_warming() -> bool:
    """Whether a run on this cache would compile the kernels a warmer compiles: no record of a complete
    warm-up, or one of the recorded kernels' cache index missing, of another numba or stale."""
    path = _record_path()
    if path is None:
        return False
    try:
        import numba

        rec = json.loads(path.read_text())
        if rec.get("numba") != numba.__version__ or not rec.get("kernels"):
            return True
        for mod, attr in rec["kernels"]:
            d = getattr(importlib.import_module(mod), attr, None)
            if d is None or not _index_fresh(d):
                return True
    except FileNotFoundError:
        return True
    except Exception:   # an unreadable record or a kernel gone: warm once more
        return True
    return False


# ---------------------------------------------------------------------------------------------
# whole cache saves and loads while two processes share the cache


_lock_state = {"depth": 0, "saved": None, "path": None, "local": threading.RLock()}


@contextlib.contextmanager
def cache_lock(lock_path):
    """While in the block, every numba cache save and load of this process holds an exclusive
    ``flock`` on ``lock_path`` (and a process-wide lock between threads), so another process doing
    the same never sees nor makes half a save. Re-entrant; numba restored after."""
    from numba.core import caching

    st = _lock_state
    if st["depth"] == 0:
        path = str(lock_path)
        Path(path).touch()
        orig = (caching.IndexDataCacheFile.save, caching.IndexDataCacheFile.load)

        def locked(fn):
            def wrapper(self, *a, **k):
                with st["local"]:
                    with open(path, "a") as fh:
                        fcntl.flock(fh, fcntl.LOCK_EX)
                        try:
                            return fn(self, *a, **k)
                        finally:
                            fcntl.flock(fh, fcntl.LOCK_UN)
            wrapper.__wrapped__ = fn
            return wrapper

        caching.IndexDataCacheFile.save = locked(orig[0])
        caching.IndexDataCacheFile.load = locked(orig[1])
        st["saved"], st["path"] = orig, path
    st["depth"] += 1
    try:
        yield
    finally:
        st["depth"] -= 1
        if st["depth"] == 0:
            caching.IndexDataCacheFile.save, caching.IndexDataCacheFile.load = st["saved"]
            st["saved"] = st["path"] = None


# ---------------------------------------------------------------------------------------------
# the run's side


class Warmer:
    """Running warmer processes: :meth:`wait` for a stage before running it, :meth:`close` at the end.

    ``procs``: ``(tag, stages, Popen)`` of each process; a stage is done when every process that
    has it marked it (``<stage>.<tag>.done`` in ``folder``). ``start(...)`` returns ``None`` when no
    warmer is needed; :func:`wait` accepts ``None``.
    """

    def __init__(self, procs: list, folder: Path, lock: contextlib.ExitStack):
        self.procs, self.folder, self._lock = procs, folder, lock
        self.waited: dict[str, float] = {}
        self.failed: str | None = None
        #: None: the warmers still at their start priority; True: back at the run's (:meth:`promote`);
        #: a string: why that was refused
        self.promoted: bool | str | None = None

    def promote(self) -> None:
        """Give every thread of the running warmers the run's own nice value (they start at
        ``CITYVITALS_WARM_NICE``, 10, so that the run's own compilation keeps its core). Called when
        the run waits for them: from then on they are the run's path, and at nice 10 on a loaded
        machine they would get a small share of a core (a nice-10 thread weighs ~1/9 of a nice-0
        one). Linux sets nice per thread, hence every task of each process. Raising a priority
        needs ``CAP_SYS_NICE`` (or ``RLIMIT_NICE``): refused, the warmers keep theirs and the run
        goes on; the reason is in :meth:`report`."""
        own = os.getpriority(os.PRIO_PROCESS, 0)
        self.promoted = True
        for _, _, proc in self.procs:
            if proc.poll() is not None:
                continue
            try:
                tids = [int(t) for t in os.listdir(f"/proc/{proc.pid}/task")]
            except OSError:
                tids = [proc.pid]
            for tid in tids:
                try:
                    if os.getpriority(os.PRIO_PROCESS, tid) > own:
                        os.setpriority(os.PRIO_PROCESS, tid, own)
                except ProcessLookupError:
                    pass
                except OSError as e:
                    self.promoted = f"{type(e).__name__}: {e}"
                    return

    def _state(self, stage: str) -> bool | None:
        """True: every process with ``stage`` did it; False: one failed or ended without it; None: not yet."""
        done = True
        for tag, stages, proc in self.procs:
            if stage not in stages or (self.folder / f"{stage}.{tag}.done").exists():
                continue
            if (self.folder / f"failed.{tag}").exists() or proc.poll() is not None:
                if self.failed is None:
                    f = self.folder / f"failed.{tag}"
                    self.failed = (f.read_text()[-2000:] if f.exists()
                                   else f"warmer {tag} ended (rc {proc.poll()}) before {stage!r}")
                return False
            done = None
        return done

    def done(self, stage: str) -> bool:
        return self._state(stage) is True

    def wait(self, stage: str, poll: float = 0.02) -> bool:
        """Block until the warmers have done ``stage`` (True), or one failed or ended without it (False).

        The first time the run has to wait, the warmers are its path: their priority goes back to
        the run's own (:meth:`promote`)."""
        t0 = time.perf_counter()
        while (state := self._state(stage)) is None:
            if self.promoted is None:
                self.promote()
            time.sleep(poll)
        if stage not in self.waited:
            self.waited[stage] = time.perf_counter() - t0
        return state

    def close(self, timeout: float = 60.0) -> None:
        """Wait for the warmers to finish (a run closes them after its last stage), stop one that has
        not after ``timeout`` s, record the kernels of a complete warm-up (:func:`needs_warming`),
        release the cache lock and remove the folder."""
        try:
            for _, _, proc in self.procs:
                if proc.poll() is None:
                    try:
                        proc.wait(timeout)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
            recs = [self.folder / f"kernels.{tag}.json" for tag, _, _ in self.procs]
            if all(proc.returncode == 0 for _, _, proc in self.procs) and all(r.exists() for r in recs):
                kernels = {tuple(k) for r in recs for k in json.loads(r.read_text())}
                with contextlib.suppress(OSError):
                    write_record(sorted(kernels))
            for tag, _, _ in self.procs:
                t = self.folder / f"times.{tag}.json"
                if t.exists():
                    with contextlib.suppress(Exception):
                        self._times = {**getattr(self, "_times", {}), tag: json.loads(t.read_text())}
        finally:
            self._lock.close()
            import shutil

            shutil.rmtree(self.folder, ignore_errors=True)

    def report(self) -> dict:
        """What the run waited for, per stage (s), each warmer's seconds per stage, and a failure if any."""
        out = {"waited_s": {k: round(v, 2) for k, v in self.waited.items()}}
        times = dict(getattr(self, "_times", {}))
        for tag, _, _ in self.procs:
            t = self.folder / f"times.{tag}.json"
            if tag not in times and t.exists():
                with contextlib.suppress(Exception):
                    times[tag] = json.loads(t.read_text())
        if times:
            out["warmer_s"] = times
        if self.promoted is not None:
            out["promoted"] = self.promoted
        if self.failed:
            out["failed"] = self.failed
        return out


def start(city, cycle: str, factor: int, index_config, *, force: bool = False, plan=PLAN) -> Warmer | None:
    """Spawn the warmers (``plan``) for a run of ``city`` at ``cycle`` storing every ``factor``
    cycles with ``index_config``, when the cache needs them (:func:`needs_warming`; ``force``: always).

    ``CITYVITALS_WARM=0`` in the environment never starts them; ``=1`` always does.
    """
    env_flag = os.environ.get("CITYVITALS_WARM", "")
    if env_flag == "0":
        return None
    if not (force or env_flag == "1" or needs_warming()):
        return None
    folder = Path(tempfile.mkdtemp(prefix="cityvitals-warm-"))
    spec = {"city": city, "cycle": cycle, "factor": int(factor), "index_config": index_config}
    with open(folder / "spec.pkl", "wb") as fh:
        pickle.dump(spec, fh, protocol=pickle.HIGHEST_PROTOCOL)
    env = dict(os.environ)
    env["NUMBA_NUM_THREADS"] = "1"   # the warmers' own kernel runs: small, on the core the run leaves
    env.pop("CITYVITALS_WARM", None)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    lock = contextlib.ExitStack()
    lock.enter_context(cache_lock(folder / "cache.lock"))
    procs = []
    try:
        for p in plan:
            cmd = [sys.executable, "-m", "engine.scenario.warm", str(folder), p["tag"], ",".join(p["stages"]),
                   ",".join(p.get("skip", ()))]
            procs.append((p["tag"], tuple(p["stages"]),
                          subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                           stderr=open(folder / f"stderr.{p['tag']}.txt", "wb"))))
    except Exception:
        for _, _, proc in procs:
            proc.kill()
        lock.close()
        raise
    return Warmer(procs, folder, lock)


def wait(warmer: Warmer | None, stage: str) -> None:
    """:meth:`Warmer.wait` when there is a warmer."""
    if warmer is not None:
        warmer.wait(stage)


# ---------------------------------------------------------------------------------------------
# the warmer's side


def synthetic_values(n_t: int, n_ind: int, n_reg: int, seed: int = 0) -> np.ndarray:
    """float32 (n_t, n_ind, n_reg) positive values with ~5 % NaN: what the core's replay gives."""
    rng = np.random.default_rng(seed)
    v = rng.gamma(2.0, 5.0, size=(n_t, n_ind, n_reg)).astype(np.float32)
    v[rng.random(v.shape) < 0.05] = np.nan
    return v


def warm_stages(city, cycle: str, factor: int, index_config, folder: Path | None = None, stages=STAGES,
                tag: str = "a") -> dict:
    """Run each of ``stages`` on synthetic values of a run's shapes and dtypes (what the runner calls,
    as the runner calls it), writing ``folder/<stage>.<tag>.done`` after each. Returns the seconds
    of each. The alerts and indices get synthetic detector outputs (the same types: a warmer may
    have left the detectors' kernels to another)."""
    import pandas as pd

    from engine.alerts import AlertManager, JsonlSink
    from engine.catalog import Catalog
    from engine.core.dataset import indicator_coords, make_dataset
    from engine.detect import Detectors
    from engine.indices import IndexPlan
    from engine.scenario.runner import (_alert_day, _alerts_frame, _PartBuffers, _detect_part, _store_part, _parts,
                                         _stored_steps)
    from engine.scenario.windows import mask_partial_windows, window_fill_minutes

    times_s: dict = {}
    catalog = Catalog.load()
    detectors = Detectors(catalog, city, cycle=cycle)
    n_ind, n_reg = len(detectors.ids), detectors.n_reg
    step = pd.Timedelta(cycle)
    per_day = int(pd.Timedelta("1D") / step)
    # the first part of a day (whole stored periods), at most two hours: the scan runs on the hour
    n_t = min(_parts(per_day, factor)[0][1], max(factor, int(pd.Timedelta("2h") / step)) // factor * factor or factor)
    day0 = pd.Timestamp("2020-01-06")
    times = pd.DatetimeIndex([day0 + step * (k + 1) for k in range(n_t)])
    values = synthetic_values(n_t, n_ind, n_reg)
    tmp = Path(tempfile.mkdtemp(prefix="cityvitals-warm-run-"))

    def mark(stage, t0):
        times_s[stage] = round(time.perf_counter() - t0, 2)
        if folder is not None:
            (folder / f"{stage}.{tag}.done").touch()

    try:
        if "learn" in stages:
            t0 = time.perf_counter()
            fill = window_fill_minutes(catalog.indicators, catalog.feeds)
            seen = mask_partial_windows(values, times.values, np.datetime64(day0, "m"), fill)
            detectors.learn(seen, times)
            mark("learn", t0)
        part_buf = _PartBuffers()
        scores = dets = expected = scale = None
        if "detect" in stages or "alerts" in stages or "indices" in stages:
            t0 = time.perf_counter()
            later = times + pd.Timedelta("1D")
            s, d = detectors.run(values, later, out=(part_buf.get("scores", values.shape, np.float32),
                                                     part_buf.get("dets", values.shape, np.int8)))
            scores, dets, expected, scale = _detect_part(detectors, values, later + pd.Timedelta("1D"), factor,
                                                         part_buf)
            if "detect" in stages:
                mark("detect", t0)
            rng = np.random.default_rng(1)
            scores[:] = rng.random(scores.shape, dtype=np.float32)
            dets[:] = rng.integers(0, 4, size=dets.shape, dtype=np.int8)
            expected[:] = values[factor - 1::factor]
            scale[:] = 1.0
        if "alerts" in stages:
            t0 = time.perf_counter()
            manager = AlertManager(catalog, city, store=tmp / "alerts.sqlite", sinks=[JsonlSink(tmp / "alerts.jsonl")])
            split: list = []
            _alert_day(manager, times, scores, dets, values, split, len(detectors.scan_ind))
            manager.flush(10)
            _alerts_frame(manager, catalog, city)
            manager.close()
            mark("alerts", t0)
        if "indices" in stages:
            t0 = time.perf_counter()
            plan = IndexPlan(catalog, city, index_config)
            from engine.core.engine import level_groups

            _, labels, _ = level_groups(city, city.levels[0])
            ds = make_dataset(values, indicator_coords(catalog.indicators), labels, city.levels[0], times=times)
            e, sc = expected.copy(), scale.copy()
            # a few indicators without a baseline (a run's warm-up): their peers, few enough for the
            # serial peer kernel the run uses (IndexPlan: rows x regions < SERIAL_BELOW)
            e[:, ::100, :] = np.nan
            sc[:, ::100, :] = np.nan
            plan.compute(_stored_steps(ds, 0, n_t, factor, e, sc))   # the part's Dataset as the run makes it
            mark("indices", t0)
        if "store" in stages:
            t0 = time.perf_counter()
            n_s = n_t // factor
            out = (np.empty((n_s, n_ind, n_reg), np.float32), np.empty((n_s, n_ind, n_reg), np.float32))
            _store_part(values, scores, factor, out)
            mark("store", t0)
    finally:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return times_s


def _skip(names) -> None:
    """Replace each ``module:attribute`` by a no-op in this process (its kernel is another warmer's)."""
    for name in names:
        mod, attr = name.split(":")
        m = importlib.import_module(mod)
        if not hasattr(m, attr):
            raise AttributeError(f"{mod} has no {attr!r} to leave to another warmer")
        setattr(m, attr, lambda *a, **k: None)


def _main(folder: str, tag: str = "a", stages: str = ",".join(STAGES), skip: str = "") -> int:
    folder = Path(folder)
    with open(folder / "spec.pkl", "rb") as fh:
        spec = pickle.load(fh)
    # a lower priority: the run's own compilation (simulation, core) is on its path and needs its
    # core; the warmers use what is left, and both cores while the run waits for them (the run
    # then gives them its own priority back where it may: Warmer.promote)
    with contextlib.suppress(OSError, ValueError):
        os.nice(int(os.environ.get("CITYVITALS_WARM_NICE", "10")))
    try:
        with cache_lock(folder / "cache.lock"):
            _skip([x for x in skip.split(",") if x])
            times_s = warm_stages(spec["city"], spec["cycle"], spec["factor"], spec["index_config"], folder,
                                  stages=tuple(x for x in stages.split(",") if x), tag=tag)
            (folder / f"times.{tag}.json").write_text(json.dumps(times_s))
            (folder / f"kernels.{tag}.json").write_text(json.dumps(
                [(m, a) for m, a, d in _dispatchers() if d.signatures]))
    except BaseException:
        (folder / f"failed.{tag}").write_text(traceback.format_exc())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main(*sys.argv[1:]))
