"""The ``cityvitals`` command line.

Each command group lives in its own module (``engine/cli/<group>.py``) exposing
``register(subparsers)``; this module only assembles them. A command handler returns
the process exit code.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import os
import sys
import threading

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


def run(argv: list[str] | None = None) -> None:
    """The process's entry point (the ``cityvitals`` script and ``python -m engine``): :func:`main`,
    then a quick exit.

    A command that returned has written and closed everything; what a normal interpreter exit
    adds after that is the teardown of every module and object -- ~1.3 s of one core after a
    demo, most of it numba's compiled code and the run's arrays freed one by one (docs/report.md,
    nineteenth session). So, once main returned: the other Python threads that a normal exit
    would wait for are joined (as the interpreter does it), the ``atexit`` handlers run (logging's
    flush, finalizers registered for exit: all a normal exit runs), the standard streams are
    flushed, and the process ends with ``main``'s code without the teardown. An exception or
    ``SystemExit`` (argparse's errors, ``--help``) leaves the normal way. ``main`` itself never
    ends the process: tests and callers in a process use it.
    """
    rc = main(argv)
    shutdown = getattr(threading, "_shutdown", None)   # what the interpreter's own exit calls first
    if shutdown is None:  # pragma: no cover - another Python: the normal exit
        sys.exit(rc)
    shutdown()            # threads' exit hooks (thread pools told to stop), then every non-daemon thread joined
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):   # closed, or a broken pipe: nothing more to write
            pass
    os._exit(rc)


if __name__ == "__main__":  # pragma: no cover
    run()
