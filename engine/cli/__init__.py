"""The ``cityvitals`` command line.

Each command group lives in its own module (``engine/cli/<group>.py``) exposing
``register(subparsers)``; this module only assembles them. A command handler returns
the process exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from engine import __version__

# Command modules in the order --help lists them; each registers its own parser(s).
GROUPS = [
    "engine.cli.city",
    "engine.cli.catalog",
    "engine.cli.compute",
    "engine.cli.simulate",
    "engine.cli.scenario",
    "engine.cli.compare",
    "engine.cli.alerts",
    "engine.cli.indices",
    "engine.cli.nab",
    "engine.cli.bench",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cityvitals",
        description="cityvitals: city vital-signs monitoring and reopening-scenario engine (城市体检).",
    )
    parser.add_argument("--version", action="version", version=f"cityvitals {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name in GROUPS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args.handler(args) or 0)
    except BrokenPipeError:  # e.g. `cityvitals catalog list | head`
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
