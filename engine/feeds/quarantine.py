"""The quarantine: rows set aside by validation, each with its source, row, reason and detail."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from engine.feeds.schema import HIDDEN, QUARANTINE_COLUMNS, REASONS

__all__ = ["Quarantine"]


def _text_column(col: pd.Series) -> np.ndarray:
    """A column as an object array of text, missing values as ``None`` (vectorised by dtype)."""
    missing = col.isna().to_numpy()
    dtype = col.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        cats = np.array([str(c) for c in dtype.categories] + [None], dtype=object)
        codes = col.cat.codes.to_numpy()
        return cats[np.where(codes >= 0, codes, len(cats) - 1)]
    if pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_object_dtype(dtype):
        out = np.array(col.to_numpy(dtype=object), dtype=object, copy=True)
    elif pd.api.types.is_datetime64_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype) \
            or pd.api.types.is_bool_dtype(dtype) or isinstance(dtype, pd.DatetimeTZDtype):
        out = np.array(col.astype(str).to_numpy(dtype=object), dtype=object, copy=True)
    else:
        out = np.array([str(v) for v in col.tolist()], dtype=object)
    out[missing] = None
    return out


def original_rows(frame: pd.DataFrame, idx: np.ndarray) -> pd.DataFrame:
    """Rows ``idx`` of ``frame`` with every column as text; columns whose name clashes with the
    quarantine's own columns get the prefix ``orig_``; adapter bookkeeping columns are left out."""
    sub = frame.iloc[idx]
    cols = {}
    for name in sub.columns:
        if name in HIDDEN:
            continue
        key = str(name)
        if key in QUARANTINE_COLUMNS:
            key = "orig_" + key
        cols[key] = _text_column(sub[name])
    return pd.DataFrame(cols, index=pd.RangeIndex(len(idx)), dtype=object)


class Quarantine:
    """Rows set aside by validation, with why.

    Wraps a DataFrame with the columns ``kind``, ``source`` (file name or ``"memory"``),
    ``row`` (0-based row in its source), ``reason`` (one of
    :data:`engine.feeds.schema.REASONS`), ``detail`` (the bad value and what was expected),
    then the original row's columns as text (object columns of ``str``, missing cells ``None``).

    Parameters
    ----------
    frame : DataFrame, optional
        A quarantine table (default: empty).

    Examples
    --------
    >>> q = Quarantine(pd.DataFrame({"kind": ["events"], "source": ["memory"], "row": [3],
    ...                              "reason": ["unknown_region"], "detail": ["region 'X9' ..."]}))
    >>> len(q), q.counts()
    (1, {'unknown_region': 1})
    >>> len(Quarantine.concat([q, q, Quarantine()]))
    2
    """

    def __init__(self, frame: pd.DataFrame | None = None):
        if frame is None:
            frame = self._empty()
        missing = [c for c in QUARANTINE_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"a quarantine table needs the columns {list(QUARANTINE_COLUMNS)}; missing {missing}")
        rest = [c for c in frame.columns if c not in QUARANTINE_COLUMNS]
        self.frame = frame[list(QUARANTINE_COLUMNS) + rest].reset_index(drop=True)

    @staticmethod
    def _empty() -> pd.DataFrame:
        return pd.DataFrame({"kind": pd.Series([], dtype=object), "source": pd.Series([], dtype=object),
                             "row": pd.Series([], dtype=np.int64), "reason": pd.Series([], dtype=object),
                             "detail": pd.Series([], dtype=object)})

    # ------------------------------------------------------------------ summaries
    def __len__(self) -> int:
        return len(self.frame)

    def __repr__(self) -> str:
        return f"Quarantine({len(self)} rows: {self.counts()})"

    def counts(self) -> dict[str, int]:
        """Rows by reason, in the order of :data:`REASONS` (reasons with no row left out).

        Examples
        --------
        >>> Quarantine().counts()
        {}
        """
        vc = self.frame["reason"].value_counts()
        known = {r: int(vc[r]) for r in REASONS if r in vc.index}
        known.update({str(r): int(v) for r, v in vc.items() if r not in known})
        return known

    def counts_by_kind(self) -> dict[str, dict[str, int]]:
        """``{kind: {reason: rows}}``.

        Examples
        --------
        >>> q = Quarantine(pd.DataFrame({"kind": ["events", "readings"], "source": ["a.csv", "b.csv"], "row": [0, 4],
        ...                              "reason": ["too_late", "bad_value"], "detail": ["...", "..."]}))
        >>> q.counts_by_kind()
        {'events': {'too_late': 1}, 'readings': {'bad_value': 1}}
        """
        return {str(k): Quarantine(g).counts() for k, g in self.frame.groupby("kind", sort=True)}

    def summary(self) -> dict:
        """JSON-ready: ``{"quarantined": n, "by_reason": {...}, "by_kind": {...}}``.

        Examples
        --------
        >>> Quarantine().summary()
        {'quarantined': 0, 'by_reason': {}, 'by_kind': {}}
        """
        return {"quarantined": len(self), "by_reason": self.counts(), "by_kind": self.counts_by_kind()}

    # ------------------------------------------------------------------ combining and files
    @classmethod
    def concat(cls, items) -> "Quarantine":
        """One quarantine from several (columns are the union; absent cells missing)."""
        frames = [q.frame for q in items if len(q)]
        if not frames:
            return cls()
        if len(frames) == 1:
            return cls(frames[0])
        out = pd.concat(frames, ignore_index=True, sort=False)
        for c in out.columns:
            if c != "row":
                out[c] = out[c].astype(object).where(out[c].notna(), None)
        return cls(out)

    def to_parquet(self, path: str | os.PathLike) -> Path:
        """Write the table to a Parquet file; returns the path.

        Examples
        --------
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     p = Quarantine().to_parquet(Path(d) / "q.parquet")
        ...     len(Quarantine.read_parquet(p))
        0
        """
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        self.frame.to_parquet(p, index=False)
        return p

    @classmethod
    def read_parquet(cls, path: str | os.PathLike) -> "Quarantine":
        """Read a table written by :meth:`to_parquet`."""
        return cls(pd.read_parquet(Path(path)))
