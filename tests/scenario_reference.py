"""Slow, obvious references of the scenario runner's kernels (engine/scenario/store.py)."""

from __future__ import annotations

import warnings

import numpy as np


def period_mean_max(value, score, factor):
    """Mean value and max score per period of ``factor`` cycles, NaN skipped (numpy's nan-reductions)."""
    n = value.shape[0] // factor * factor
    v = np.asarray(value[:n], dtype=np.float64).reshape(n // factor, factor, *value.shape[1:])
    s = np.asarray(score[:n], dtype=np.float64).reshape(n // factor, factor, *score.shape[1:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(v, axis=1).astype(np.float32), np.nanmax(s, axis=1).astype(np.float32)


def assert_run_outputs_equal(a, b) -> int:
    """Two run folders hold the same alerts (``alerts.parquet``, ``alerts.jsonl``, the SQLite
    history's transitions) and the same ``values.zarr`` and ``indices.zarr``. Returns the number of
    transitions."""
    import sqlite3
    from pathlib import Path

    import pandas as pd
    import xarray as xr

    a, b = Path(a), Path(b)
    pd.testing.assert_frame_equal(pd.read_parquet(a / "alerts.parquet"), pd.read_parquet(b / "alerts.parquet"))
    assert (a / "alerts.jsonl").read_text() == (b / "alerts.jsonl").read_text()
    for store in ("values.zarr", "indices.zarr"):
        xr.testing.assert_identical(xr.open_zarr(a / store).load(), xr.open_zarr(b / store).load())
    q = ("SELECT seq, t, time, level, indicator, region, alert_id, events, state, severity, value, score, detector "
         "FROM transitions ORDER BY seq")
    ta, tb = (sqlite3.connect(r / "alerts.sqlite").execute(q).fetchall() for r in (a, b))
    assert ta == tb
    return len(ta)
