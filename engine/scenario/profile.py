"""Where a scenario run's time goes: the demo's stages over a few days, extrapolated to the full run.

``python3 -m engine.scenario.profile --days 2 --history 2 --out DIR`` runs the staged reopening
(the demo's scenario) at full size for ``--days`` days after ``--history`` days of history, and
prints the wall seconds of each stage (``summary.json``'s ``stages_s``, the space-time scan's
Monte Carlo split out of the detectors), the seconds per cycle, an extrapolation to the demo
(60 days after 7 of history) and the peak RSS. Figures are wall time: state the machine's load.

``python3 -m engine.scenario.profile --dump-days 0,15,30,45,58 --out DIR`` instead saves the
detectors' state and 32 cycles of values at those days of the full demo (:func:`dump_days`, ~7 s
a day): the detector stage late in the run can then be timed on its own (docs/detect.md,
"Detectors in a run"): ``python3 -m engine.scenario.profile --time-days 45,58 --out DIR`` runs it
as the runner does and prints CPU ms a cycle by part (:func:`time_days`).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path


def _timed_scan(seconds: dict, dump: Path | None = None):
    """Wrap the detectors' scan kernel so that its time is counted apart (``seconds['scan']``); with
    ``dump``, save the scan's inputs of the first scored day there (``.npz``, the scanned rows only)."""
    import numpy as np

    import engine.detect.detectors as dd

    inner = dd.scan_run_kernel

    def scan_run_kernel(*args):
        if dump is not None and int(args[7]) > 0 and not dump.exists():
            V, ind = args[0], args[1]
            np.savez(dump, V=V[:, ind], mu=args[2], obs=args[3], exp=args[4], ring=args[5], zones=args[6],
                     replicas=args[7], seed=args[8], cycles=args[9], alpha=args[10])
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            return inner(*args)
        finally:
            key = "scan" if int(args[7]) > 0 else "scan_learn"   # replicas == 0: the burn-in's bookkeeping
            seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - t0
            seconds["cpu_" + key] = seconds.get("cpu_" + key, 0.0) + time.process_time() - c0

    dd.scan_run_kernel = scan_run_kernel


def dump_days(out: Path, days: list[int], *, history: int = 7, period: int = 60, start_cycle: int = 32,
              n_cycles: int = 32, seed: int = 0) -> list[Path]:
    """Save the detectors' inputs at chosen days of the demo, to time :meth:`Detectors.update` on them.

    Runs the demo's simulation and core replay (``period`` days after ``history``), the detectors
    learning every cycle (:meth:`Detectors.learn`: the state moves as in a run, without the scan's
    Monte Carlo, so the whole period costs minutes). For each period day ``d`` in ``days``
    (0-based), after learning its first ``start_cycle`` cycles, writes ``out/day{d:02d}.npz``: the
    next ``n_cycles`` cycles' values and times, and ``out/day{d:02d}.state.npz``: the
    state before them (:meth:`Detectors.save`). Returns the ``.npz`` paths of the values.
    """
    import numpy as np
    import pandas as pd

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from engine.catalog import Catalog
    from engine.core import Engine
    from engine.detect import Detectors
    from engine.sim import simulate
    from scenarios.staged_reopening import build

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sc = build(seed=seed).quick(period)
    sc.history_days = history
    city = sc.build_city()
    catalog = Catalog.load()
    cycle = pd.Timedelta(minutes=sc.cycle_minutes)
    result = simulate(city, sc.with_history(), seed=sc.seeds[0])
    engine = Engine(city, catalog, cycle=sc.cycle)
    detectors = Detectors(catalog, city, cycle=sc.cycle)
    want = sorted(set(int(d) for d in days))
    written = []
    for d, day in enumerate(result.feeds_by_day(cycle_minutes=sc.cycle_minutes), start=-history):
        if d > want[-1]:
            break
        day_start = pd.Timestamp(day.date)
        ds = engine.replay(day.to_feeds(), day_start + cycle, day_start + pd.Timedelta("1D"))
        values = ds["value"].values
        times = pd.DatetimeIndex(ds["time"].values)
        if d in want:
            a, b = start_cycle, start_cycle + n_cycles
            detectors.learn(values[:a], times[:a])
            path = out / f"day{d:02d}.npz"
            detectors.save(out / f"day{d:02d}.state.npz")
            np.savez(path, values=values[a:b], times=times[a:b].values.astype("datetime64[ns]"))
            written.append(path)
            detectors.learn(values[a:], times[a:])
        else:
            detectors.learn(values, times)
        print(f"day {d}: {day_start.date()}", file=sys.stderr, flush=True)
    return written


def time_days(dump: Path, days: list[int], *, n_cycles: int = 32, store_every: int = 4, reps: int = 2,
              seed: int = 0) -> list[dict]:
    """CPU ms a cycle of the detector stage on days saved by :func:`dump_days`, split by part.

    For each day: the detectors restored from ``day{d:02d}.state.npz`` score its first
    ``n_cycles`` saved cycles as the runner does (``runner._detect_part``: one call, the
    baselines of every ``store_every``-th cycle, reused output buffers), timed with
    ``time.process_time`` (all threads: set ``NUMBA_NUM_THREADS=1`` for one-thread figures), best
    of ``reps``; ``rows`` is ``run_kernel`` (detectors 1-5), ``spatial`` its part by difference
    with the spatial detector off, ``scan`` ``scan_run_kernel``, ``condition`` the scan's
    conditioning on totals, ``python`` the rest.
    """
    import numpy as np
    import pandas as pd

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    import engine.detect.detectors as dd
    from engine.catalog import Catalog
    from engine.scenario.runner import _detect_part, _PartBuffers
    from scenarios.staged_reopening import build

    sc = build(seed=seed)
    city = sc.build_city()
    catalog = Catalog.load()
    acc: dict = {}
    inner = {k: getattr(dd, k) for k in ("run_kernel", "scan_run_kernel", "condition_on_totals")}

    def timed(name, f):
        def g(*a, **k):
            c0 = time.process_time()
            try:
                return f(*a, **k)
            finally:
                acc[name] = acc.get(name, 0.0) + time.process_time() - c0
        return g

    out = []
    try:
        for key, name in (("run_kernel", "rows"), ("scan_run_kernel", "scan"), ("condition_on_totals", "condition")):
            setattr(dd, key, timed(name, inner[key]))
        for d in days:
            z = np.load(Path(dump) / f"day{d:02d}.npz")
            values, times = z["values"][:n_cycles], pd.DatetimeIndex(z["times"][:n_cycles])
            best = {}
            for spatial in (True, False):
                det = dd.Detectors(catalog, city, cycle=sc.cycle, spatial=spatial)
                buf = _PartBuffers()
                for _ in range(reps):
                    det.load(Path(dump) / f"day{d:02d}.state.npz")
                    acc.clear()
                    c0 = time.process_time()
                    _detect_part(det, values, times, store_every, buf)
                    cur = dict(acc, total=time.process_time() - c0)
                    if spatial not in best or cur["total"] < best[spatial]["total"]:
                        best[spatial] = cur
            a, b = best[True], best[False]
            ms = lambda x: round(1000 * x / len(times), 2)  # noqa: E731
            out.append({"day": d, "cycles": len(times), "load": round(os.getloadavg()[0], 2), "total": ms(a["total"]),
                        "rows": ms(a["rows"]), "spatial": ms(a["rows"] - b["rows"]), "scan": ms(a.get("scan", 0.0)),
                        "condition": ms(a.get("condition", 0.0)),
                        "python": ms(a["total"] - a["rows"] - a.get("scan", 0.0) - a.get("condition", 0.0))})
            print(json.dumps(out[-1]), flush=True)
    finally:
        for key, f in inner.items():
            setattr(dd, key, f)
    return out


def extrapolate(stages: dict, *, days: int, history: int, cycles_per_day: int, full_days: int = 60,
                full_history: int = 7) -> dict:
    """Seconds of each stage scaled to ``full_days`` after ``full_history`` days of history.

    Stages that run on every replayed day (feeds, core replay) scale with all days; the burn-in's
    detectors with the history days less one; detectors, scan, alerts with the period plus the
    history's last day (the alert manager's warm-up); indices and Zarr with the period; the rest
    (simulation, summary, report) is counted once (an underestimate for the report, which reads
    the whole run).
    """
    scale_all = (full_days + full_history) / (days + history)
    scale_learn = (full_history - 1) / max(history - 1, 1)
    scale_scored = (full_days + min(full_history, 1)) / (days + min(history, 1))
    scale_period = full_days / days
    rule = {"feeds": scale_all, "core_replay": scale_all, "detectors_learn": scale_learn, "scan_learn": scale_learn,
            "detectors": scale_scored, "scan": scale_scored, "alerts": scale_scored,
            "indices": scale_period, "zarr": scale_period}
    return {k: round(v * rule.get(k, 1.0), 1) for k, v in stages.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--days", type=int, default=2, help="days of the period to run (default 2)")
    ap.add_argument("--history", type=int, default=2, help="days of history before it (default 2; the demo has 7)")
    ap.add_argument("--neighbourhoods", type=int, default=300)
    ap.add_argument("--store-every", default=None)
    ap.add_argument("--no-scan", action="store_true", help="no scan Monte Carlo (replicas 0)")
    ap.add_argument("--cprofile", type=Path, default=None, help="write cProfile stats of the run there")
    ap.add_argument("--dump-scan", type=Path, default=None, help="save the first scored day's scan inputs (.npz)")
    ap.add_argument("--dump-days", default=None, metavar="D1,D2,...",
                    help="instead of profiling: save the detectors' state and 32 cycles of values at these "
                         "period days (0-based) of the full demo into --out (see dump_days)")
    ap.add_argument("--time-days", default=None, metavar="D1,D2,...",
                    help="instead of profiling: time the detector stage on days saved by --dump-days in --out "
                         "(see time_days; one thread with NUMBA_NUM_THREADS=1)")
    args = ap.parse_args(argv)
    if args.time_days:
        time_days(args.out, [int(x) for x in args.time_days.split(",")])
        return 0
    if args.dump_days:
        for path in dump_days(args.out, [int(x) for x in args.dump_days.split(",")]):
            print(path)
        return 0

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from scenarios.staged_reopening import build

    scan_s: dict = {}
    _timed_scan(scan_s, args.dump_scan)
    sc = build(seed=0).quick(args.days)
    sc.history_days = args.history
    if args.neighbourhoods != 300:
        sc.city = dict(neighbourhoods=args.neighbourhoods)
    if args.no_scan:
        import engine.detect.detectors as dd

        inner = dd.scan_run_kernel
        dd.scan_run_kernel = lambda *a: inner(*a[:7], 0, *a[8:])
    rss_by_day = []
    import engine.progress as progress_mod

    advance = progress_mod.Progress.advance

    def advance_and_note(self, *a, **k):          # peak RSS after each replayed day
        rss_by_day.append(round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2))
        return advance(self, *a, **k)

    progress_mod.Progress.advance = advance_and_note
    t0 = time.perf_counter()
    if args.cprofile:
        import cProfile

        prof = cProfile.Profile()
        summary = prof.runcall(sc.run, args.out, store_every=args.store_every, progress=False)
        prof.dump_stats(args.cprofile)
    else:
        summary = sc.run(args.out, store_every=args.store_every, progress=False)
    wall = time.perf_counter() - t0
    saved = json.loads((args.out / "summary.json").read_text())
    cpd = 24 * 60 // sc.cycle_minutes
    n_cycles = {"feeds": args.days + args.history, "core_replay": args.days + args.history,
                "detectors_learn": max(args.history - 1, 0), "scan_learn": max(args.history - 1, 0),
                "detectors": args.days + min(args.history, 1), "scan": args.days + min(args.history, 1),
                "alerts": args.days + min(args.history, 1), "indices": args.days, "zarr": args.days}
    report = {}
    for kind, key, prefix in (("wall", "stages_s", ""), ("cpu", "stages_cpu_s", "cpu_")):
        stages = dict(saved[key])
        for k in ("scan", "scan_learn"):
            if prefix + k in scan_s:
                stages[k] = round(scan_s[prefix + k], 2)
        if "scan" in stages:
            stages["detectors"] = round(stages["detectors"] - stages["scan"], 2)
        if "scan_learn" in stages:
            stages["detectors_learn"] = round(stages["detectors_learn"] - stages["scan_learn"], 2)
        per_cycle = {k: round(1000 * v / (n_cycles[k] * cpd), 1) for k, v in stages.items() if n_cycles.get(k)}
        full = extrapolate(stages, days=args.days, history=args.history, cycles_per_day=cpd)
        report[kind] = {"stages_s": stages, "ms_per_cycle": per_cycle, "extrapolated_60d_s": full,
                        "extrapolated_60d_total_s": round(sum(full.values()), 0)}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps({"days": args.days, "history": args.history, "neighbourhoods": summary["city"]["neighbourhoods"],
                      "store_every": args.store_every, "wall_s": round(wall, 1), "cpu_s": round(time.process_time(), 1),
                      **report, "peak_rss_gb": round(rss, 2), "peak_rss_gb_by_day": rss_by_day,
                      "alerts": summary["alerts"]["total"]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
