"""The command line every planner's script shares: ``python scenarios/NAME.py --out DIR``.

A script defines ``build(seed=0) -> Scenario`` and ends with ``sys.exit(main(build))``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

#: the small city ``--quick`` runs on (scripts keep their incidents inside it: N0001..N0030)
QUICK_CITY = dict(neighbourhoods=30, streets=4, population=100_000)
QUICK_DAYS = 2
#: days of history a ``--quick`` run learns from (the full default is 7): enough for the alerting
#: indicators (each subject's shortest window: 15 min, 1 h) and two visits of every hour of the day
QUICK_HISTORY_DAYS = 2


def parser(description: str = "") -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--out", required=True, type=Path, help="the run folder to write (replaced if it exists)")
    ap.add_argument("--seed", type=int, default=0, help="simulation seed (default 0)")
    ap.add_argument("--quick", action="store_true",
                    help=f"a small, fast version for tests ({QUICK_DAYS} days after {QUICK_HISTORY_DAYS} of history, "
                         "30 neighbourhoods)")
    ap.add_argument("--store-every", default=None, metavar="PERIOD",
                    help="store per PERIOD (e.g. 1h) the mean value, the highest score and the indices at its end, instead of every cycle")
    ap.add_argument("--no-progress", action="store_true", help="never draw the progress bar")
    ap.add_argument("--no-warm", action="store_true",
                    help="on a fresh numba cache, compile every kernel in this process (by default a second "
                         "process compiles the later stages' kernels while this one starts)")
    return ap


def prepare(build, seed: int = 0, quick: bool = False):
    """Build a script's scenario, shrunk for ``--quick``."""
    if seed < 0:
        raise ValueError(f"--seed must be >= 0, got {seed}")
    sc = build(seed=seed)
    if quick:
        sc = sc.quick(QUICK_DAYS)
        sc.city = dict(QUICK_CITY)
        sc.history_days = min(sc.history_days, QUICK_HISTORY_DAYS)
    return sc


def run_args(build, args):
    """Prepare and run a script's scenario from parsed options (``parser()``'s); returns (scenario, summary).

    Raises ``ValueError`` (before anything runs) for a planner's error in the script or the options.
    """
    sc = prepare(build, args.seed, args.quick)
    # a fresh numba cache: the later stages' kernels compile in a second process (engine.scenario.warm)
    warm = False if getattr(args, "no_warm", False) else None
    return sc, sc.run(args.out, store_every=args.store_every, progress=False if args.no_progress else None,
                      warm=warm)


def main(build, argv=None) -> int:
    """Parse the common options, run the scenario, print where the run folder is."""
    doc = (sys.modules[build.__module__].__doc__ or "").strip().splitlines()
    args = parser(doc[0] if doc else "").parse_args(argv)
    try:
        sc, summary = run_args(build, args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    det = summary.get("detection", {})
    print(json.dumps({"run": str(args.out), "scenario": sc.name, "runtime_s": summary.get("runtime_s"),
                      "recall": det.get("recall"), "precision": det.get("precision"),
                      "median_detect_cycles": det.get("median_detect_cycles")}, ensure_ascii=False))
    report = args.out / "report.html"
    if report.exists():
        print(f"open {report.resolve()}")
    return 0
