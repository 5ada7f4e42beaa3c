"""``cityvitals bench``: benchmark trends and the README performance table.

Examples
--------
>>> import argparse
>>> p = argparse.ArgumentParser(); sub = p.add_subparsers()
>>> register(sub)
>>> p.parse_args(["bench", "trend", "--out", "out/bench"]).fail_on is None
True
"""

from __future__ import annotations

import argparse
import sys

DEFAULT_STORAGE = ".benchmarks"


def _fraction(text: str) -> float:
    try:
        v = float(text.rstrip("%")) / (100.0 if text.endswith("%") else 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction such as 0.10 or 10%, got {text!r}") from None
    if not 0.0 < v < 10.0:
        raise argparse.ArgumentTypeError(f"threshold must be > 0 (0.10 = 10 %), got {text!r}")
    return v


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return v


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return v


def cmd_trend(args) -> int:
    """Write the trend report; exit 1 on a current regression with ``--fail-on regression``."""
    from engine.bench.report import build_report, format_findings
    from engine.bench.storage import StorageError

    try:
        report = build_report(args.storage, args.out, threshold=args.threshold, z=args.z, recent=args.recent,
                              plots=not args.no_plots)
    except (StorageError, ValueError) as exc:
        print(f"cityvitals bench trend: error: {exc}", file=sys.stderr)
        return 2
    for path, why in report.storage.skipped:
        print(f"warning: skipped {path}: {why}", file=sys.stderr)
    machines = len(report.storage.by_machine())
    print(f"{len(report.storage.runs)} runs on {machines} machine(s), {len(report.series)} benchmark histories.")
    print(format_findings(report.findings))
    print(f"report: {report.index_path}")
    if args.fail_on == "regression" and report.failing:
        print(f"FAIL: {len(report.failing)} significant regression(s) in the newest run:", file=sys.stderr)
        for f in report.failing:
            print("  " + f.text(), file=sys.stderr)
        return 1
    return 0


def cmd_table(args) -> int:
    """Print the Markdown performance table of the newest run."""
    from engine.bench.storage import StorageError
    from engine.bench.table import performance_table

    try:
        sys.stdout.write(performance_table(args.storage))
    except StorageError as exc:
        print(f"cityvitals bench table: error: {exc}", file=sys.stderr)
        return 2
    return 0


def register(subparsers) -> None:
    """Add ``bench trend`` and ``bench table`` to the ``cityvitals`` parser."""
    bench = subparsers.add_parser("bench", help="benchmark trends and the README performance table",
                                  description="Read pytest-benchmark runs saved with "
                                              "`pytest benchmarks/ --benchmark-autosave`.")
    sub = bench.add_subparsers(dest="bench_command", metavar="SUBCOMMAND", title="subcommands")
    bench.set_defaults(handler=lambda args: (bench.print_help(), 2)[1])

    trend = sub.add_parser("trend", help="history per benchmark with step detection, as PNGs and an HTML index",
                           description="Write index.html, changes.txt and one PNG per benchmark and machine "
                                       "into --out; print the regressions and improvements.")
    trend.add_argument("--storage", default=DEFAULT_STORAGE, metavar="DIR",
                       help="pytest-benchmark storage folder (default: %(default)s)")
    trend.add_argument("--out", required=True, metavar="DIR", help="folder for the report (created)")
    trend.add_argument("--fail-on", choices=["regression"], default=None,
                       help="exit 1 when the newest commit's runs are a significant regression")
    trend.add_argument("--threshold", type=_fraction, default=0.10, metavar="FRACTION",
                       help="smallest change reported, e.g. 0.10 or 10%% (default: 0.10)")
    trend.add_argument("--z", type=_positive_float, default=3.0,
                       help="how many times the runs' noise a step must exceed (default: %(default)s)")
    trend.add_argument("--recent", type=_positive_int, default=1, metavar="N",
                       help="a step begun in the machine's N newest commits counts as new (default: %(default)s)")
    trend.add_argument("--no-plots", action="store_true", help="skip the PNG figures (faster)")
    trend.set_defaults(handler=cmd_trend)

    table = sub.add_parser("table", help="print the README performance table from the newest run",
                           description="Markdown: benchmark | median | peer | speed-up | floor ratio.")
    table.add_argument("--storage", default=DEFAULT_STORAGE, metavar="DIR",
                       help="pytest-benchmark storage folder (default: %(default)s)")
    table.set_defaults(handler=cmd_table)
