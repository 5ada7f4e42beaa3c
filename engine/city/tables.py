"""Canonical table dtypes, the empty sites/enterprises/sensors tables, column bytes for fingerprints."""

from __future__ import annotations

import numpy as np
import pandas as pd


_TEXT_COLUMNS = {"name", "street", "block", "kind", "region", "site", "sector", "size"}
_INT_COLUMNS = {"population", "capacity", "employees"}
_FLOAT_COLUMNS = {"area_km2", "lon", "lat"}


def _normalise(table: pd.DataFrame, index_name: str) -> pd.DataFrame:
    """A copy with the canonical dtypes (text as ``str``, counts int64, measures float64)."""
    t = table.copy()
    t.index = t.index.astype(str)
    t.index.name = index_name
    for col in t.columns:
        if col in _TEXT_COLUMNS:
            t[col] = t[col].astype(str)
        elif col in _INT_COLUMNS:
            t[col] = t[col].astype(np.int64)
        elif col in _FLOAT_COLUMNS:
            t[col] = t[col].astype(np.float64)
        elif col == "fever_clinic":
            t[col] = t[col].astype(bool)
    return t


def _column_bytes(s: pd.Series) -> bytes:
    if s.dtype == bool:
        return b"?" + s.to_numpy(np.uint8).tobytes()
    if pd.api.types.is_integer_dtype(s.dtype) or pd.api.types.is_float_dtype(s.dtype):
        a = s.to_numpy()
        return a.dtype.str.encode() + a.tobytes()
    return b"U" + "\x1f".join(map(str, s.tolist())).encode()


def _empty_sites() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "kind": pd.Series([], dtype=object), "name": pd.Series([], dtype=object),
            "region": pd.Series([], dtype=object), "lon": pd.Series([], dtype=np.float64),
            "lat": pd.Series([], dtype=np.float64), "capacity": pd.Series([], dtype=np.int64),
            "fever_clinic": pd.Series([], dtype=bool),
        },
        index=pd.Index([], dtype=object, name="site"),
    )


def _empty_enterprises() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sector": pd.Series([], dtype=object), "size": pd.Series([], dtype=object),
            "employees": pd.Series([], dtype=np.int64), "region": pd.Series([], dtype=object),
        },
        index=pd.Index([], dtype=object, name="enterprise"),
    )


def _empty_sensors() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "kind": pd.Series([], dtype=object), "region": pd.Series([], dtype=object),
            "site": pd.Series([], dtype=object), "lon": pd.Series([], dtype=np.float64),
            "lat": pd.Series([], dtype=np.float64),
        },
        index=pd.Index([], dtype=object, name="sensor"),
    )
