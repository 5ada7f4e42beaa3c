"""Labelled results: ``xarray.Dataset`` with ``value`` over (``time``,) ``indicator``, ``region``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

META = ("domain", "dimension", "unit", "name_zh", "name_en", "aggregation", "window", "rollup")


def flatten_counts(counts) -> dict:
    """Quarantine counts (dict, Series or DataFrame) as flat ``{"quarantine.<key>": int}`` attrs.

    >>> flatten_counts({"bad_time": 2, "unknown_feed": 1})
    {'quarantine.bad_time': 2, 'quarantine.unknown_feed': 1}
    """
    out: dict = {}
    if counts is None:
        return out
    if isinstance(counts, pd.DataFrame):
        num = counts.select_dtypes("number")
        col = num.columns[-1] if len(num.columns) else None
        if col is None:
            return out
        for idx, v in num[col].items():
            key = ":".join(map(str, idx)) if isinstance(idx, tuple) else str(idx)
            out[f"quarantine.{key}"] = int(v)
        if len(counts.columns) > len(num.columns):  # label columns beside the count
            out = {}
            labels = [c for c in counts.columns if c not in num.columns]
            for _, row in counts.iterrows():
                key = ":".join(str(row[c]) for c in labels)
                out[f"quarantine.{key}"] = out.get(f"quarantine.{key}", 0) + int(row[col])
        return out
    items = counts.items() if hasattr(counts, "items") else dict(counts).items()
    for k, v in items:
        key = ":".join(map(str, k)) if isinstance(k, tuple) else str(k)
        if isinstance(v, dict):
            for k2, v2 in v.items():
                out[f"quarantine.{key}:{k2}"] = int(v2)
        else:
            out[f"quarantine.{key}"] = int(v)
    return out


def indicator_coords(indicators: list[dict]) -> dict:
    """The indicator coordinates (id and metadata) of a catalog, computed once per engine."""
    coords = {"indicator": np.array([i["id"] for i in indicators])}
    for m in META:
        coords[m] = ("indicator", np.array([str(i.get(m, "") or "") for i in indicators]))
    return coords


def make_dataset(values: np.ndarray, indicators, regions: list[str], level: str,
                 times=None, attrs: dict | None = None, index_cache: dict | None = None) -> xr.Dataset:
    """Wrap a value matrix (indicators x regions, or time x indicators x regions) with labels
    (``indicators``: the catalog's list of dicts, or :func:`indicator_coords` of it).

    ``index_cache``: a dict kept by the caller between calls; the indicator and region
    coordinates (and their pandas indexes, the costly part) are then built once per region list
    and reused (the value array is never copied).

    Examples
    --------
    >>> ds = make_dataset(np.zeros((1, 2)), [{"id": "a.b.c.d", "domain": "safety"}], ["N1", "N2"], "neighbourhood")
    >>> ds.value.dims, str(ds.domain.values[0])
    (('indicator', 'region'), 'safety')
    >>> cache = {}
    >>> a = make_dataset(np.zeros((1, 2)), [{"id": "a.b.c.d"}], ["N1", "N2"], "n", index_cache=cache)
    >>> b = make_dataset(np.ones((3, 1, 2)), [{"id": "a.b.c.d"}], ["N1", "N2"], "n", times=[0, 1, 2], index_cache=cache)
    >>> len(cache), b.value.dims, a.indexes["region"].equals(b.indexes["region"])
    (1, ('time', 'indicator', 'region'), True)
    """
    dims = ("indicator", "region") if times is None else ("time", "indicator", "region")
    key = None
    if index_cache is not None:
        key = (id(indicators), tuple(regions))
        base = index_cache.get(key)
    else:
        base = None
    if base is None:
        coords = dict(indicators) if isinstance(indicators, dict) else indicator_coords(indicators)
        coords["region"] = np.array(regions)
        base = xr.Coordinates(coords)
        if index_cache is not None:
            index_cache.clear()  # one region list at a time (levels alternate rarely)
            index_cache[key] = base
    if times is not None:
        base = base.assign(time=pd.DatetimeIndex(times))
    ds = xr.Dataset({"value": (dims, values)}, coords=base)
    ds.attrs.update({"level": level})
    if attrs:
        ds.attrs.update(attrs)
    return ds
