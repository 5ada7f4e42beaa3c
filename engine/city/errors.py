"""The error raised for a city file that cannot be used."""

from __future__ import annotations

__all__ = ["CityFileError"]


class CityFileError(ValueError):
    """A city file that cannot be used; the message names the file, row and column.

    Attributes ``file``, ``row`` (1-based data row or feature number, or ``None``) and
    ``column`` (or ``None``) repeat what the message says.

    >>> str(CityFileError("regions.csv", "expected a non-negative integer, got 'abc'", row=7, column="population"))
    "regions.csv row 7 column 'population': expected a non-negative integer, got 'abc'"
    """

    def __init__(self, file: str, message: str, row: int | None = None, column: str | None = None):
        self.file, self.row, self.column = file, row, column
        where = file
        if row is not None:
            where += f" row {row}"
        if column is not None:
            where += f" column '{column}'"
        super().__init__(f"{where}: {message}")
