"""A terminal progress bar that stays quiet when stderr is not a terminal (cron, CI, pipes)."""

from __future__ import annotations

import sys
import time


class Progress:
    """Draw ``label [#####.....] k/n  eta`` on stderr, only on a terminal.

    >>> bar = Progress(3, "replay", enabled=False)
    >>> for _ in range(3): bar.advance()
    >>> bar.done
    3
    """

    def __init__(self, total: int, label: str = "", *, enabled: bool | None = None, stream=None):
        self.total, self.label, self.done = max(int(total), 1), label, 0
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else bool(enabled)
        self.t0 = time.perf_counter()

    def advance(self, n: int = 1, note: str = "") -> None:
        self.done += n
        if not self.enabled:
            return
        frac = min(self.done / self.total, 1.0)
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / frac - elapsed if frac > 0 else 0.0
        bar = "#" * int(30 * frac) + "." * (30 - int(30 * frac))
        self.stream.write(f"\r{self.label} [{bar}] {self.done}/{self.total} eta {eta:5.0f}s {note[:30]:<30}")
        if self.done >= self.total:
            self.stream.write("\n")
        self.stream.flush()
