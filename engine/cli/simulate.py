"""``cityvitals simulate SCENARIO --out DIR``: run a scenario script and write its feeds and truth.

SCENARIO is a Python file that defines ``scenario`` (an :class:`engine.sim.Scenario`) or a function
``build()`` returning one; it may also define ``city`` (an ``engine.City``; default
``City.synthetic()``, 300 neighbourhoods, 1.1 million residents) and ``seed``. The command writes:

* ``DIR/events.parquet``, ``DIR/readings.parquet``, ``DIR/snapshots.parquet``: every feed, one row
  group per day (the names ``engine.feeds.Feeds.read(DIR)`` recognises);
* ``DIR/truth.json``: the scenario, seed, days and the injected incidents with their windows,
  regions, magnitudes, the (feed, item) pairs they move and the indicator ids they should move;
* ``DIR/curves/epidemic.parquet``: daily city curves (in a sub-folder so that ``Feeds.read(DIR)``
  reads the feed files only) (compartments, new infections, onsets, cases found)
  and the levers;
* ``DIR/summary.json``: rows per feed and timings.

A progress bar goes to stderr when it is a terminal; otherwise the command is quiet apart from
its one-line summary. Exit codes: 0 done, 2 bad scenario file or options.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def register(subparsers) -> None:
    """Add the ``simulate`` command to the top-level ``subparsers``."""
    p = subparsers.add_parser(
        "simulate",
        help="run a scenario script and write its simulated feeds (Parquet), truth and curves",
        description="Run SCENARIO (a Python file defining `scenario` or `build()`) on the simulator and write "
                    "DIR/events.parquet, readings.parquet, snapshots.parquet, truth.json and curves/epidemic.parquet.",
    )
    p.add_argument("scenario", metavar="SCENARIO", help="Python file defining `scenario` or `build()`")
    p.add_argument("--out", metavar="DIR", required=True, help="output folder (created if missing)")
    p.add_argument("--seed", type=int, default=None, metavar="N",
                   help="random seed (default: the file's `seed`, else 0)")
    p.add_argument("--days", type=int, default=None, metavar="N",
                   help="simulate only the first N days of the scenario")
    p.add_argument("--cycle", type=int, default=15, metavar="MIN", help="engine cycle in minutes (default 15)")
    p.add_argument("--no-progress", action="store_true", help="never draw the progress bar")
    p.set_defaults(handler=run)


def load_scenario(path: str | Path):
    """``(scenario, namespace)`` from a scenario script (``scenario`` or ``build()``).

    Raises ``ValueError`` with the reason when the file has neither or is not a Python file.
    """
    import runpy

    from engine.sim import Scenario

    p = Path(path)
    if not p.is_file():
        raise ValueError(f"scenario file {str(p)!r} does not exist")
    try:
        ns = runpy.run_path(str(p), run_name="cityvitals_scenario")
    except SystemExit as exc:
        raise ValueError(f"{p.name} exited while loading (code {exc.code}); guard its main code with "
                         "`if __name__ == '__main__':`") from None
    sc = ns.get("scenario")
    if sc is None and callable(ns.get("build")):
        sc = ns["build"]()
    planner = getattr(sc, "sim", None)
    if isinstance(planner, Scenario):  # a planner's engine.Scenario: its simulation part and its city
        ns = {**ns, "city": ns.get("city") or sc.build_city()}
        sc = planner
    if not isinstance(sc, Scenario):
        raise ValueError(f"{p.name} defines no `scenario` (an engine.Scenario or engine.sim.Scenario) "
                         "and no `build()` returning one")
    return sc, ns


def run(args) -> int:
    """Handler of ``cityvitals simulate`` (returns the exit code)."""
    from engine.sim import simulate
    from engine.progress import Progress
    from engine.sim.feeds import write_parquet

    try:
        sc, ns = load_scenario(args.scenario)
        if args.days is not None:
            sc = sc.head(args.days)
    except ValueError as exc:
        print(f"cityvitals simulate: {exc}", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else int(ns.get("seed", 0))
    if seed < 0:
        print(f"cityvitals simulate: --seed must be >= 0, got {seed}", file=sys.stderr)
        return 2
    city = ns.get("city")
    if city is None:
        from engine.city import City

        city = City.synthetic()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        res = simulate(city, sc, seed=seed)
    except ValueError as exc:
        print(f"cityvitals simulate: {exc}", file=sys.stderr)
        return 2
    t1 = time.perf_counter()
    bar = Progress(sc.days, "feeds", enabled=False if args.no_progress else None)
    try:
        rows = write_parquet(res.feeds_by_day(cycle_minutes=args.cycle), out, progress=lambda _day: bar.advance())
    except ValueError as exc:
        print(f"cityvitals simulate: {exc}", file=sys.stderr)
        return 2
    t2 = time.perf_counter()
    (out / "curves").mkdir(exist_ok=True)
    res.curves().to_parquet(out / "curves" / "epidemic.parquet")
    truth = {"scenario": sc.name, "seed": seed, "mode": res.mode, "start": str(res.dates[0]),
             "days": int(sc.days), "cycle_minutes": args.cycle, "incidents": res.truth.to_json()}
    (out / "truth.json").write_text(json.dumps(truth, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    summary = {"rows": dict(sorted(rows.items())), "total_rows": int(sum(rows.values())),
               "epidemic_s": round(t1 - t0, 3), "feeds_s": round(t2 - t1, 3)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(f"simulated {sc.days} days of {sc.name!r} (seed {seed}): {summary['total_rows']:,} records in "
          f"{len(rows)} feeds, {len(res.truth)} incidents -> {out} ({t2 - t0:.1f}s)")
    return 0
