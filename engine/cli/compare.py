"""``cityvitals compare RUN_DIR... --out DIR``: scenario runs side by side.

Writes ``DIR/compare.html`` (self-contained: the table and the plots), ``DIR/compare.csv`` (one
row per run) and ``DIR/figures/*.png``. Exit 0 on success, 2 on bad input (a folder that is not
a run, a missing or malformed file, a date outside a run), with a message that names it.
The engine is imported inside the handler so that ``cityvitals --help`` stays fast.
"""

from __future__ import annotations

import sys


def register(subparsers) -> None:
    """Add the ``compare`` command."""
    p = subparsers.add_parser(
        "compare",
        help="compare scenario runs side by side: table (HTML + CSV) and plots",
        description="Compare run folders written by a scenario (Scenario.run / cityvitals replay): peak "
                    "prevalence, infections, days in each grade, economic recovery, alerts by dimension, mean "
                    "health, worst neighbourhoods; epidemic curves, domain scores and risk maps.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders to compare")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder for compare.html and compare.csv")
    p.add_argument("--at", action="append", default=[], metavar="DATE",
                   help="date of the risk maps (repeatable; default the last cycle of each run)")
    p.add_argument("--city", metavar="DIR",
                   help="city folder (City.save) of the runs; default each run's city/ or summary.json")
    p.set_defaults(handler=_compare)


def _compare(args) -> int:
    from engine.report import RunFolderError, compare_runs

    city = None
    if args.city:
        from engine.city import City, CityFileError

        try:
            city = City.load(args.city)
        except (CityFileError, ValueError, OSError) as exc:
            print(f"cityvitals compare: error: --city {args.city}: {exc}", file=sys.stderr)
            return 2
    try:
        path = compare_runs(args.runs, args.out, at=args.at, city=city)
    except RunFolderError as exc:
        print(f"cityvitals compare: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path} and {path.with_name('compare.csv')}")
    return 0
