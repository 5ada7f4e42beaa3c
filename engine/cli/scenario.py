"""``cityvitals replay SCRIPT`` and ``cityvitals demo``: run planners' scenarios end to end."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


#: what the demo stores by default: hourly aggregates. Every cycle of 60 days x 2,926 indicators x 300
#: neighbourhoods is 20 GB of float32 per variable before compression (~6 GB of values and scores on
#: disk, and several seconds of compression per simulated day); hourly keeps a quarter of it and the
#: indices at each hour's end (docs/report.md, "What a run stores").
DEMO_STORE_EVERY = "1h"


def register(sub) -> None:
    from engine.scenario.script import QUICK_DAYS

    rp = sub.add_parser("replay", help="run a scenario script through the full engine and write its run folder",
                        description="Simulate a scenario script's city and policy, replay every cycle through the "
                                    "engine (values, scores, alerts, indices) and write the run folder.")
    rp.add_argument("script", type=Path, help="a scenario script defining build(seed=0) (e.g. scenarios/staged_reopening.py)")
    _common(rp, QUICK_DAYS)
    rp.set_defaults(handler=_replay)

    dm = sub.add_parser("demo", help="the main job: the staged reopening on the synthetic city, with its report",
                        description="Run the staged reopening (60 days at 15-minute cycles, full catalog, "
                                    "300 neighbourhoods) and write the run folder and report.html.")
    dm.add_argument("--out", type=Path, default=Path("runs/demo"), help="run folder (default runs/demo)")
    dm.add_argument("--seed", type=int, default=0, help="simulation seed (default 0)")
    dm.add_argument("--quick", action="store_true", help=f"a small, fast version ({QUICK_DAYS} days, 30 neighbourhoods)")
    dm.add_argument("--store-every", default=DEMO_STORE_EVERY, metavar="PERIOD",
                    help=f"store per PERIOD the mean value and the highest score (default {DEMO_STORE_EVERY}; "
                         "15min keeps every cycle: ~110 MB a day compressed at 300 neighbourhoods)")
    dm.add_argument("--days", type=int, default=None, metavar="N",
                    help="only the first N days of the period (full city and catalog; default: all 60)")
    dm.add_argument("--no-progress", action="store_true", help="never draw the progress bar")
    _warm_option(dm)
    dm.set_defaults(handler=_demo)


def _common(p, quick_days: int) -> None:
    p.add_argument("--out", required=True, type=Path, help="the run folder to write (replaced if it exists)")
    p.add_argument("--seed", type=int, default=0, help="simulation seed (default 0)")
    p.add_argument("--quick", action="store_true", help=f"a small, fast version ({quick_days} days, 30 neighbourhoods)")
    p.add_argument("--store-every", default=None, metavar="PERIOD", help="store per PERIOD (e.g. 1h) the mean value, the highest score and the indices at its end")
    p.add_argument("--no-progress", action="store_true", help="never draw the progress bar")
    _warm_option(p)


def _warm_option(p) -> None:
    p.add_argument("--no-warm", action="store_true",
                   help="on a fresh numba cache, compile every kernel in this process (by default a second "
                        "process compiles the later stages' kernels while this one starts)")


def load_build(script: Path):
    """The ``build`` function of a scenario script file."""
    if not script.is_file():
        raise ValueError(f"scenario script {str(script)!r} does not exist")
    root = str(script.resolve().parents[1])
    if root not in sys.path:  # scripts import their neighbours as ``scenarios.*``
        sys.path.insert(0, root)
    spec = importlib.util.spec_from_file_location(f"_scenario_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    build = getattr(module, "build", None)
    if not callable(build):
        raise ValueError(f"{script}: expected a function build(seed=0) returning an engine.Scenario")
    return build


def _run(build, args) -> int:
    from engine.scenario.script import run_args

    try:
        sc, summary = run_args(build, args)
    except ValueError as exc:
        print(f"cityvitals: {exc}", file=sys.stderr)
        return 2
    det = summary.get("detection", {})
    print(f"{sc.name}: {summary['runtime_s']} s; recall {det.get('recall')}, precision {det.get('precision')}, "
          f"median time to detect {det.get('median_detect_cycles')} cycles")
    report = args.out / "report.html"
    print(f"run folder: {args.out.resolve()}" + (f"\nopen {report.resolve()}" if report.exists() else ""))
    return 0


def _replay(args) -> int:
    try:
        build = load_build(args.script)
    except ValueError as exc:
        print(f"cityvitals: {exc}", file=sys.stderr)
        return 2
    return _run(build, args)


def _demo(args) -> int:
    from scenarios.staged_reopening import build

    days = args.days
    if days is not None:
        if days < 1:
            print(f"cityvitals: --days must be >= 1, got {days}", file=sys.stderr)
            return 2

        def build_days(seed=0, _build=build):
            sc = _build(seed=seed)
            return sc.quick(days) if days < sc.days else sc

        return _run(build_days, args)
    return _run(build, args)
