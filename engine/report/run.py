"""Reading a scenario run folder (the contract in docs/report.md) with clear errors.

A run folder holds ``values.zarr``, ``indices.zarr``, ``alerts.parquet``, ``truth.json``,
``epidemic.parquet``, ``economy.parquet`` and ``summary.json``; the report adds ``report.html``
and ``figures/``. :func:`load_run` checks that the files are there and have the columns and
variables the report reads; every problem raises :class:`RunFolderError` naming the folder, the
file and what was expected.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as d:
...     try:
...         load_run(d)
...     except RunFolderError as e:
...         "summary.json" in str(e) and "not a run folder" in str(e)
True
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

#: files every run folder has (the report's own outputs excepted)
RUN_FILES = ("summary.json", "values.zarr", "indices.zarr", "alerts.parquet", "truth.json",
             "epidemic.parquet", "economy.parquet")
DOMAINS = ("safety", "construction", "market", "livelihood")
EPIDEMIC_COLUMNS = ("date", "seed", "susceptible", "exposed", "infectious", "recovered", "new_infections",
                    "cumulative_infections", "prevalence", "detected_cases")
ECONOMY_COLUMNS = ("date", "enterprise_operation", "footfall", "power_use")
ALERT_COLUMNS = ("time", "indicator", "region", "level", "state", "severity", "value", "score", "detector",
                 "owner", "dimension", "domain", "name_zh", "name_en", "region_name")
#: ``indices.zarr`` up to this size (its data variables in memory) is read once when first used
PERSIST_BYTES = 256 * 2**20
SUMMARY_KEYS = ("scenario", "period", "epidemic", "economy", "health", "alerts", "worst_neighbourhoods")


class RunFolderError(ValueError):
    """A folder that is not a readable run: the message names the folder, file and expectation."""


@dataclass
class Run:
    """A run folder opened for reporting; the large parts are read on first use.

    Attributes
    ----------
    path : Path
    summary : dict
        ``summary.json``.
    truth : dict
        ``truth.json``.
    """

    path: Path
    summary: dict
    truth: dict
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def label(self) -> str:
        """Scenario name from the summary (the folder name when empty)."""
        return str(self.summary.get("scenario") or self.path.name)

    def _fail(self, file: str, what: str) -> RunFolderError:
        return RunFolderError(f"{self.path}: {file}: {what}")

    def _zarr(self, name: str, variables: tuple[str, ...]):
        import xarray as xr

        if name not in self._cache:
            p = self.path / name
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ds = xr.open_zarr(p, consolidated=None)
            except Exception as exc:
                raise self._fail(name, f"cannot be read as an xarray Zarr store ({exc})") from None
            for v in variables:
                if v not in ds:
                    raise self._fail(name, f"expected variable {v!r} (have {', '.join(map(str, ds.data_vars)) or 'none'})")
            self._cache[name] = ds
        return self._cache[name]

    @cached_property
    def values(self):
        """``values.zarr`` (variable ``value`` over time, indicator, region)."""
        ds = self._zarr("values.zarr", ("value",))
        _check_dims(self, "values.zarr", ds["value"], ("time", "indicator", "region"))
        return ds

    @cached_property
    def indices(self):
        """``indices.zarr`` (``health`` and ``grade`` over time, index, region): read lazily, or
        into memory at first use when its data take at most :data:`PERSIST_BYTES`."""
        ds = self._zarr("indices.zarr", ("health", "grade"))
        for v in ("health", "grade"):
            _check_dims(self, "indices.zarr", ds[v], ("time", "index", "region"))
        labels = [str(x) for x in ds["index"].values]
        missing = [x for x in ("overall", *DOMAINS) if x not in labels]
        if missing:
            raise self._fail("indices.zarr", f"index labels {missing} missing; expected overall and the 4 domains "
                                             f"({', '.join(DOMAINS)})")
        ds = ds.assign_coords(index=labels, region=[str(x) for x in ds["region"].values])
        if sum(v.nbytes for v in ds.data_vars.values()) <= PERSIST_BYTES:
            # read once into memory, chunk by chunk as stored: the report reads each index over
            # the whole run (district_series) and the map's cycle; each of those reads would
            # decompress every chunk again. The values are the stored ones either way
            ds = ds.persist()
        return ds

    @cached_property
    def times(self) -> pd.DatetimeIndex:
        """Cycle times of ``indices.zarr``."""
        return pd.DatetimeIndex(self.indices["time"].values)

    def _parquet(self, name: str, columns: tuple[str, ...]) -> pd.DataFrame:
        p = self.path / name
        try:
            df = pd.read_parquet(p)
        except Exception as exc:
            raise self._fail(name, f"cannot be read as Parquet ({type(exc).__name__}: {exc})") from None
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise self._fail(name, f"missing columns {missing}; expected {list(columns)}")
        return df

    @cached_property
    def alerts(self) -> pd.DataFrame:
        """``alerts.parquet``, one row per alert transition."""
        df = self._parquet("alerts.parquet", ALERT_COLUMNS)
        df["time"] = pd.to_datetime(df["time"])
        return df

    @cached_property
    def epidemic(self) -> pd.DataFrame:
        """``epidemic.parquet``, daily per seed."""
        df = self._parquet("epidemic.parquet", EPIDEMIC_COLUMNS)
        df["date"] = pd.to_datetime(df["date"])
        return df.sort_values(["seed", "date"], kind="stable").reset_index(drop=True)

    @cached_property
    def economy(self) -> pd.DataFrame:
        """``economy.parquet``, daily (per seed when it has a ``seed`` column)."""
        df = self._parquet("economy.parquet", ECONOMY_COLUMNS)
        df["date"] = pd.to_datetime(df["date"])
        return df.sort_values([c for c in ("seed", "date") if c in df.columns], kind="stable").reset_index(drop=True)

    def time_index(self, at) -> int:
        """Position of the cycle at or just before ``at`` (None: the last), checked against the run.

        Raises
        ------
        RunFolderError
            ``at`` is not a timestamp or lies outside the run (the message gives the run's span).
        """
        from engine.indices.compute import select_time

        try:
            return int(select_time(self.indices, at))
        except ValueError as exc:
            raise RunFolderError(f"{self.path}: date {at!r}: {exc}") from None


def _check_dims(run: Run, file: str, da, want: tuple[str, ...]) -> None:
    if set(da.dims) != set(want):
        raise run._fail(file, f"variable {da.name!r} has dims {tuple(da.dims)}; expected {want}")


def load_run(path) -> Run:
    """Open a run folder: checks its files and reads ``summary.json`` and ``truth.json``.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    Run

    Raises
    ------
    RunFolderError
        Not a folder, a missing file, bad JSON or a summary without the expected keys.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = pathlib.Path(d, "summary.json").write_text("{}")
    ...     try:
    ...         load_run(d)
    ...     except RunFolderError as e:
    ...         print(str(e).split(": ", 1)[1])
    missing values.zarr, indices.zarr, alerts.parquet, truth.json, epidemic.parquet, economy.parquet (a run folder holds summary.json, values.zarr, indices.zarr, alerts.parquet, truth.json, epidemic.parquet, economy.parquet)
    """
    p = Path(path)
    if not p.is_dir():
        raise RunFolderError(f"{p}: not a folder; expected a run folder written by Scenario.run(out=DIR)")
    missing = [f for f in RUN_FILES if not (p / f).exists()]
    if "summary.json" in missing:
        raise RunFolderError(f"{p}: not a run folder: summary.json is missing (a run folder holds {', '.join(RUN_FILES)})")
    if missing:
        raise RunFolderError(f"{p}: missing {', '.join(missing)} (a run folder holds {', '.join(RUN_FILES)})")
    summary = _read_json(p, "summary.json")
    absent = [k for k in SUMMARY_KEYS if k not in summary]
    if absent:
        raise RunFolderError(f"{p}: summary.json: missing keys {absent}; expected {list(SUMMARY_KEYS)}")
    truth = _read_json(p, "truth.json")
    return Run(path=p, summary=summary, truth=truth)


def _read_json(folder: Path, name: str) -> dict:
    try:
        data = json.loads((folder / name).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunFolderError(f"{folder}: {name}: not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise RunFolderError(f"{folder}: {name}: expected a JSON object, got {type(data).__name__}")
    return data


def resolve_city(run: Run, city=None):
    """The city to draw maps with: ``city``, else ``RUN/city/`` (``City.save``), else a synthetic
    city rebuilt from ``summary.json`` ``city.synthetic`` parameters, else None.

    A city whose fingerprint differs from ``summary.json`` ``city.fingerprint`` is refused.

    Examples
    --------
    >>> r = Run(path=Path("."), summary={"city": {}}, truth={})
    >>> resolve_city(r) is None
    True
    """
    from engine.city import City

    info = run.summary.get("city") or {}
    want = info.get("fingerprint")
    if city is None and (run.path / "city").is_dir():
        try:
            city = City.load(run.path / "city")
        except Exception as exc:
            raise RunFolderError(f"{run.path}: city/: not a readable city folder ({exc})") from None
    if city is None and isinstance(info.get("synthetic"), dict):
        try:
            city = City.synthetic(**info["synthetic"])
        except (TypeError, ValueError) as exc:
            raise RunFolderError(f"{run.path}: summary.json: city.synthetic {info['synthetic']!r}: {exc}") from None
    if city is not None and want and city.fingerprint() != want:
        raise RunFolderError(f"{run.path}: the city given (fingerprint {city.fingerprint()[:12]}...) is not the "
                             f"run's (summary.json city.fingerprint {str(want)[:12]}...)")
    return city


def region_weights(run: Run, city=None) -> dict[str, float]:
    """Population per neighbourhood id from the city (empty without one)."""
    if city is None:
        return {}
    pop = city.regions["population"]
    return {str(k): float(v) for k, v in pop.items()}


def district_series(run: Run, index: str, city=None) -> pd.Series:
    """District-level ``health`` of one index over time.

    The ``district`` region (``level`` coordinate == ``"district"``, or a region id
    ``district``) when present, else the population-weighted mean over the neighbourhoods
    (plain mean without a city).
    """
    ds = run.indices
    h = ds["health"].sel(index=index)
    regions = [str(r) for r in ds["region"].values]
    if "level" in ds.coords:
        levels = [str(x) for x in ds["level"].values]
        if "district" in levels:
            return pd.Series(np.asarray(h.isel(region=levels.index("district")).values, float), index=run.times)
        keep = [k for k, lv in enumerate(levels) if lv not in ("street", "district", "block")]
    elif "district" in regions:
        return pd.Series(np.asarray(h.sel(region="district").values, float), index=run.times)
    else:
        keep = list(range(len(regions)))
    vals = np.asarray(h.isel(region=keep).transpose("time", "region").values, float)
    w = region_weights(run, city)
    wt = np.array([w.get(regions[k], np.nan) for k in keep]) if w else np.ones(len(keep))
    wt = np.where(np.isfinite(wt), wt, 0.0) if np.isfinite(wt).any() else np.ones(len(keep))
    ok = np.isfinite(vals)
    num = np.where(ok, vals, 0.0) @ wt
    den = ok.astype(float) @ wt
    with np.errstate(invalid="ignore", divide="ignore"):
        return pd.Series(np.where(den > 0, num / np.where(den > 0, den, 1), np.nan), index=run.times)


def base_regions(run: Run) -> list[str]:
    """Neighbourhood ids of ``indices.zarr`` (street and district rows left out)."""
    ds = run.indices
    regions = [str(r) for r in ds["region"].values]
    if "level" in ds.coords:
        levels = [str(x) for x in ds["level"].values]
        return [r for r, lv in zip(regions, levels) if lv not in ("street", "district", "block")]
    return [r for r in regions if r != "district"]


def region_names(run: Run) -> dict[str, str]:
    """Region id -> name from ``values.zarr`` (``name`` coordinate) or ``indices.zarr`` (``region_name``)."""
    out: dict[str, str] = {}
    for ds, coord in ((run.indices, "region_name"), (run.values, "name")):
        if coord in ds.coords:
            for r, n in zip(ds["region"].values, ds[coord].values):
                out.setdefault(str(r), str(n))
    return out
