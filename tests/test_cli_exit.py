"""``engine.cli.run``: the process entry point's quick exit loses nothing a normal exit keeps.

Each case runs a real interpreter (``python -m engine`` or ``run`` from ``-c``) and checks what a
normal exit guarantees: every byte written to a pipe, ``main``'s exit code, the ``atexit``
handlers, the non-daemon threads finished, a thread pool left open not hanging the exit.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from engine.cli import main


def _python(*args, **kw):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120, **kw)


def test_every_byte_of_a_large_output_reaches_the_pipe(capsys):
    """``catalog list`` (~380 kB of text) through a pipe: the same bytes as ``main`` in process."""
    assert main(["catalog", "list"]) == 0
    want = capsys.readouterr().out
    got = _python("-m", "engine", "catalog", "list")
    assert got.returncode == 0
    assert len(want) > 100_000 and got.stdout == want


def test_exit_code_is_mains(tmp_path):
    """A command's non-zero return is the process's exit code; argparse's usage error stays 2."""
    code = textwrap.dedent(f"""
        import engine.cli as cli
        cli.main = lambda argv=None: 3
        cli.run()
    """)
    assert _python("-c", code).returncode == 3
    bad = _python("-m", "engine", "no-such-command")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_exit_handlers_and_threads_finish_before_the_process_ends(tmp_path):
    """A non-daemon thread still writing, an ``atexit`` handler and an open thread pool: the
    thread's file and the handler's file are written, in that order, and the exit does not hang."""
    done, handler = tmp_path / "thread.txt", tmp_path / "handler.txt"
    code = textwrap.dedent(f"""
        import atexit, pathlib, threading, time
        from concurrent.futures import ThreadPoolExecutor
        import engine.cli as cli

        def late():
            time.sleep(0.5)
            pathlib.Path({str(done)!r}).write_text("thread")

        def at_exit():
            seen = pathlib.Path({str(done)!r}).exists()
            pathlib.Path({str(handler)!r}).write_text("handler after thread" if seen else "handler first")

        atexit.register(at_exit)
        pool = ThreadPoolExecutor(2)
        pool.submit(time.sleep, 0.1)           # never shut down: the interpreter's hooks stop it
        threading.Thread(target=late).start()
        cli.main = lambda argv=None: 0
        cli.run()
        raise SystemExit("not reached: run() ends the process")
    """)
    res = _python("-c", code)
    assert res.returncode == 0, res.stderr
    assert done.read_text() == "thread"
    assert handler.read_text() == "handler after thread"
