"""Catalog problems: every one names the file, the entry, the field and the reason."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a catalog.

    >>> str(Problem("market.toml", "staple_prices", "window", "bad window '3x'"))
    "market.toml: staple_prices: window: bad window '3x'"
    """

    file: str
    entry: str
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.entry}: {self.field}: {self.reason}"

    def to_dict(self) -> dict:
        return {"file": self.file, "entry": self.entry, "field": self.field, "reason": self.reason}


class CatalogError(ValueError):
    """Raised by :meth:`engine.Catalog.load` when the catalog is invalid; holds every problem."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems[:50])
        more = f"\n  ... and {len(self.problems) - 50} more" if len(self.problems) > 50 else ""
        super().__init__(f"invalid catalog: {len(self.problems)} problem(s)\n{lines}{more}")
