"""Where a scenario run's time goes: the demo's stages over a few days, extrapolated to the full run.

``python3 -m engine.scenario.profile --days 2 --history 2 --out DIR`` runs the staged reopening
(the demo's scenario) at full size for ``--days`` days after ``--history`` days of history, and
prints the wall seconds of each stage (``summary.json``'s ``stages_s``, the space-time scan's
Monte Carlo split out of the detectors), the seconds per cycle, an extrapolation to the demo
(60 days after 7 of history) and the peak RSS. Figures are wall time: state the machine's load.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path


def _timed_scan(seconds: dict):
    """Wrap the detectors' scan kernel so that its time is counted apart (``seconds['scan']``)."""
    import engine.detect.detectors as dd

    inner = dd.scan_run_kernel

    def scan_run_kernel(*args):
        t0 = time.perf_counter()
        try:
            return inner(*args)
        finally:
            key = "scan" if int(args[7]) > 0 else "scan_learn"   # replicas == 0: the burn-in's bookkeeping
            seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - t0

    dd.scan_run_kernel = scan_run_kernel


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
    args = ap.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from scenarios.staged_reopening import build

    scan_s: dict = {}
    _timed_scan(scan_s)
    sc = build(seed=0).quick(args.days)
    sc.history_days = args.history
    if args.neighbourhoods != 300:
        sc.city = dict(neighbourhoods=args.neighbourhoods)
    if args.no_scan:
        import engine.detect.detectors as dd

        inner = dd.scan_run_kernel
        dd.scan_run_kernel = lambda *a: inner(*a[:7], 0, *a[8:])
    t0 = time.perf_counter()
    summary = sc.run(args.out, store_every=args.store_every, progress=False)
    wall = time.perf_counter() - t0
    stages = dict(json.loads((args.out / "summary.json").read_text())["stages_s"])
    for k, v in scan_s.items():
        stages[k] = round(v, 2)
    if "scan" in stages:
        stages["detectors"] = round(stages["detectors"] - stages["scan"], 2)
    if "scan_learn" in stages:
        stages["detectors_learn"] = round(stages["detectors_learn"] - stages["scan_learn"], 2)
    cpd = 24 * 60 // sc.cycle_minutes
    per_cycle = {}
    n_cycles = {"feeds": args.days + args.history, "core_replay": args.days + args.history,
                "detectors_learn": max(args.history - 1, 0), "scan_learn": max(args.history - 1, 0),
                "detectors": args.days + min(args.history, 1), "scan": args.days + min(args.history, 1),
                "alerts": args.days + min(args.history, 1), "indices": args.days, "zarr": args.days}
    for k, v in stages.items():
        if n_cycles.get(k):
            per_cycle[k] = round(1000 * v / (n_cycles[k] * cpd), 1)
    full = extrapolate(stages, days=args.days, history=args.history, cycles_per_day=cpd)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps({"days": args.days, "history": args.history, "neighbourhoods": summary["city"]["neighbourhoods"],
                      "wall_s": round(wall, 1), "stages_s": stages, "ms_per_cycle": per_cycle,
                      "extrapolated_60d_s": full, "extrapolated_60d_total_s": round(sum(full.values()), 0),
                      "peak_rss_gb": round(rss, 2), "alerts": summary["alerts"]["total"],
                      "cpu_s": round(time.process_time(), 1)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
