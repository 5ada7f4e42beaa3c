"""``compute_indices``: health and risk indices per region and level from a run's Dataset.

The input is the compute core's layout: variable ``value`` over (``indicator``, ``region``) for
one cycle or (``time``, ``indicator``, ``region``) for a replay, optionally ``expected`` and
``scale`` (the detectors' baseline) with the same dims. See docs/indices.md for the rules.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from engine.config import n_threads
from engine.indices import kernels as K
from engine.indices.aggregate import compose, finish, group_imputed, q_group_sums
from engine.indices.config import IndicesConfig, grade_codes, resolve_config
from engine.indices.hierarchy import Hierarchy
from engine.indices.spec import IndexSpec

_EMPTY2 = np.zeros((0, 0))


def _dims_ok(da: xr.DataArray, name: str) -> xr.DataArray:
    want = ("time", "indicator", "region") if "time" in da.dims else ("indicator", "region")
    if set(da.dims) != set(want):
        raise ValueError(f"variable {name!r} must have dims {want} (or without time), got {da.dims}")
    return da.transpose(*want)


def select_time(ds: xr.Dataset, at=None) -> int | None:
    """Position of the cycle ``at`` along ``time`` (None -> the last cycle).

    ``at`` may be a timestamp (str, datetime64, Timestamp): the cycle at or just before it is
    used. A Dataset without a ``time`` dim has one cycle; ``at`` must then be None or equal its
    scalar ``time`` coordinate when it has one.

    Raises
    ------
    ValueError
        ``at`` outside the run (the message gives the run's first and last cycle).

    Examples
    --------
    >>> ds = xr.Dataset(coords={"time": pd.date_range("2020-02-01", periods=3, freq="15min")})
    >>> select_time(ds), select_time(ds, "2020-02-01 00:20")
    (2, 1)
    """
    if "time" not in ds.dims:
        if at is not None and "time" in ds.coords:
            t0 = pd.Timestamp(ds["time"].values.item()) if ds["time"].size == 1 else None
            if t0 is not None and pd.Timestamp(at) != t0:
                raise ValueError(f"time {at} is not in the run: it holds one cycle, {t0}")
        return None
    times = pd.DatetimeIndex(ds["time"].values)
    if len(times) == 0:
        raise ValueError("the run has no cycles (empty time axis)")
    if at is None:
        return len(times) - 1
    try:
        ts = pd.Timestamp(at)
    except (ValueError, TypeError):
        raise ValueError(f"time {at!r} is not a timestamp; expected e.g. {times[-1].isoformat()}") from None
    if ts.tzinfo is not None and times.tz is None:
        ts = ts.tz_convert(None)
    step = times[-1] - times[-2] if len(times) > 1 else pd.Timedelta(0)
    if ts < times[0] or ts > times[-1] + step:
        raise ValueError(f"time {ts.isoformat()} is outside the run: cycles run from {times[0].isoformat()} "
                         f"to {times[-1].isoformat()} ({len(times)} cycles)")
    return int(times.searchsorted(ts, side="right") - 1)


class Prepared:
    """A Dataset made ready for the kernels: spec, hierarchy, blocks, array accessors."""

    def __init__(self, ds: xr.Dataset, catalog, city=None, config=None):
        if "value" not in ds:
            raise ValueError(f"the Dataset has no 'value' variable (it has: {', '.join(map(str, ds.data_vars)) or 'none'})")
        self.cfg: IndicesConfig = resolve_config(config)
        if catalog is None:
            from engine.catalog import Catalog

            catalog = Catalog.load()
        self.ds = ds
        self.value = _dims_ok(ds["value"], "value")
        self.has_time = "time" in self.value.dims
        self.expected = _dims_ok(ds["expected"], "expected") if "expected" in ds else None
        self.scale = _dims_ok(ds["scale"], "scale") if "scale" in ds else None
        if (self.expected is None) != (self.scale is None):
            raise ValueError("the Dataset has only one of 'expected' and 'scale'; a baseline needs both")
        self.spec = IndexSpec.build(list(map(str, self.value["indicator"].values)), catalog, self.cfg)
        self.hier = Hierarchy.build(list(map(str, self.value["region"].values)), city, self.cfg.level_weight)
        nr = len(self.hier.base.ids)
        target = max(32, nr // max(1, 4 * n_threads()))
        self.order, self.bstart, self.bstop = self.hier.blocks(target)
        self.group_of, self.group_w = self.spec.group_arrays()
        self.totals = self.spec.group_totals()
        self.geometric = self.cfg.method == "geometric"

    def _at(self, da, t):
        x = da.isel(time=t) if self.has_time else da
        return np.ascontiguousarray(x.values, dtype=np.float64)

    def cycle(self, t: int | None, want_deficit: bool = False, geometric: bool | None = None) -> dict:
        """Run the indicator pass for cycle ``t`` (position; None without time).

        Returns a dict with ``num, den, pnum, pden`` and, when ``want_deficit``, ``deficit``,
        ``method``, plus the baselines used (``e1, s1, e2, s2, peer_e, peer_s``) and ``v``.
        """
        cfg = self.cfg
        geometric = self.geometric if geometric is None else geometric
        v = self._at(self.value, t)
        ni, nr = v.shape
        has1 = self.expected is not None
        e1 = self._at(self.expected, t) if has1 else _EMPTY2
        s1 = self._at(self.scale, t) if has1 else _EMPTY2
        has2 = False
        e2 = s2 = _EMPTY2
        if self.has_time and t is not None and t > 0 and (not has1 or not (np.isfinite(e1).all() and np.isfinite(s1).all())):
            lo = max(0, t - cfg.history_window)
            hist = np.ascontiguousarray(self.value.isel(time=slice(lo, t)).values, dtype=np.float64)
            e2, s2, _ = K.history_baseline(hist, cfg.history_min, cfg.scale_floor_rel, cfg.scale_floor_abs)
            has2 = True
        peer_e = np.full(ni, np.nan)
        peer_s = np.full(ni, np.nan)
        parent = self.hier.base.parent
        n_par = len(self.hier.levels[1].ids) if parent is not None else 0
        parent = parent if parent is not None else np.zeros(0, dtype=np.int64)
        d_out = np.empty((ni, nr)) if want_deficit else _EMPTY2
        m_out = np.empty((ni, nr), dtype=np.int8) if want_deficit else np.zeros((0, 0), dtype=np.int8)

        def run():
            return K.normalise_accumulate(
                v, e1, s1, has1, e2, s2, has2, self.spec.direction, self.spec.cfg_ref, self.spec.thr_ref,
                peer_e, peer_s, cfg.tolerance, cfg.cap, cfg.scale_floor_rel, cfg.scale_floor_abs,
                self.group_of, self.group_w, self.spec.n_groups, geometric, cfg.geometric_floor,
                self.order, self.bstart, self.bstop, parent, self.hier.weight, n_par,
                want_deficit, d_out, m_out)

        num, den, pnum, pden, unresolved = run()
        rows = unresolved.sum(axis=0) > 0
        if rows.any():
            pe, ps = K.peer_baseline(v, rows, cfg.peers_min, cfg.scale_floor_rel, cfg.scale_floor_abs)
            if np.isfinite(pe).any():
                peer_e[:], peer_s[:] = pe, ps
                num, den, pnum, pden, unresolved = run()
        out = dict(num=num, den=den, pnum=pnum, pden=pden, unresolved=int(unresolved.sum()))
        if want_deficit:
            out.update(deficit=d_out, method=m_out, v=v, e1=e1, s1=s1, e2=e2, s2=s2, peer_e=peer_e, peer_s=peer_s,
                       has1=has1, has2=has2)
        return out

    def parent_tables(self, pnum: np.ndarray, pden: np.ndarray) -> list[np.ndarray]:
        """Normalised-score tables (n_indicator, n_regions_at_level) for every level above the base."""
        tables = []
        for k in range(1, len(self.hier.levels)):
            with np.errstate(invalid="ignore", divide="ignore"):
                tables.append(np.where(pden > 0, pnum / pden, np.nan))
            up = self.hier.levels[k].parent
            if up is None:
                break
            m = np.zeros((pnum.shape[1], len(self.hier.levels[k + 1].ids)))
            m[np.arange(pnum.shape[1]), up] = 1.0
            pnum, pden = pnum @ m, pden @ m
        return tables

    def indices(self, t: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``health, imputed, angles`` of cycle ``t`` for every region of every level."""
        cfg = self.cfg
        c = self.cycle(t)
        gs = finish(c["num"], c["den"], self.geometric)
        parts = [compose(gs, group_imputed(c["den"], self.totals), self.spec, self.geometric, cfg.geometric_floor)]
        if self.hier.base.parent is not None:
            for q in self.parent_tables(c["pnum"], c["pden"]):
                num, den = q_group_sums(q, self.spec, self.geometric, cfg.geometric_floor)
                parts.append(compose(finish(num, den, self.geometric), group_imputed(den, self.totals), self.spec,
                                     self.geometric, cfg.geometric_floor))
        return tuple(np.concatenate([p[k] for p in parts], axis=1) for k in range(3))


def compute_indices(ds: xr.Dataset, catalog=None, city=None, config=None, *, at=None) -> xr.Dataset:
    """Composite health and risk indices (0..100, 100 = everything normal) per region and level.

    Each value is normalised against its series' baseline (``expected``/``scale``, else the
    Dataset's own history, else the catalog's thresholds, else the other regions; a configured
    reference range or target first), direction-aware and winsorised, then aggregated with the
    catalog's weights (arithmetic or geometric, from the config) indicator -> dimension ->
    domain -> overall, plus the safety index (8 angles) and the three epidemic risks.
    Neighbourhood normalised scores are averaged (population-weighted) to streets and the
    district, and aggregated there the same way.

    Parameters
    ----------
    ds : xarray.Dataset
        ``value`` over (``indicator``, ``region``) or (``time``, ``indicator``, ``region``);
        optional ``expected`` and ``scale`` with the same dims.
    catalog : Catalog or list of dict, optional
        Indicator metadata (direction, dimension, domain, weight, thresholds); default: the
        bundled catalog.
    city : City, optional
        For street / district roll-ups (and the region names); without it, only the Dataset's
        own regions.
    config : IndicesConfig, path or None
        Default: ``indicators/indices.toml``.
    at : timestamp-like, optional
        Compute only this cycle (see :func:`select_time`; the earlier cycles still serve as
        history); the result keeps a time axis of length 1.

    Returns
    -------
    xarray.Dataset
        ``health`` (float64) and ``grade`` (int8, 0 = best grade, -1 = no data) and
        ``imputed`` (share of weight imputed) over ([``time``,] ``index``, ``region``);
        ``safety_angle`` over ([``time``,] ``angle``, ``region``). Coordinates: ``index_kind``,
        ``index_zh``, ``index_en`` on ``index``; ``level``, ``parent``, ``region_name`` on
        ``region`` (neighbourhoods, then streets, then the district).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ids = ["safety.public_order.police_violent.count_24h", "safety.public_safety.fire_all.count_24h"]
    >>> ds = xr.Dataset({"value": (("indicator", "region"), [[0.0, 9.0], [1.0, 1.0]]),
    ...                  "expected": (("indicator", "region"), [[1.0, 1.0], [1.0, 1.0]]),
    ...                  "scale": (("indicator", "region"), [[1.0, 1.0], [1.0, 1.0]])},
    ...                 coords={"indicator": ids, "region": ["A", "B"]})
    >>> out = compute_indices(ds)
    >>> out["health"].sel(index="public_order").values.tolist()
    [100.0, 0.0]
    >>> out["health"].sel(index="safety_index").values.tolist()
    [100.0, 50.0]
    >>> out["grade"].sel(index="safety_index").values.tolist()
    [0, 3]
    """
    prep = Prepared(ds, catalog, city, config)
    if not prep.has_time:
        select_time(ds, at)  # checks ``at`` against a scalar time coordinate
        cycles = [None]
    elif at is not None:
        cycles = [select_time(ds, at)]
    else:
        cycles = list(range(prep.value.sizes["time"]))
    return _assemble(prep, cycles, [prep.indices(t) for t in cycles])


def _assemble(prep: Prepared, cycles: list, results: list) -> xr.Dataset:
    spec, cfg = prep.spec, prep.cfg
    labels = spec.index_labels
    kind, zh, en = spec.index_meta()
    rid, rname, rlevel, rparent = prep.hier.all_regions()
    health = np.stack([r[0] for r in results])
    imputed = np.stack([r[1] for r in results])
    angles = np.stack([r[2] for r in results])
    grade = grade_codes(health, cfg.grade_mins)
    dims3 = ("time", "index", "region")
    adims = ("time", "angle", "region")
    if not prep.has_time:
        health, imputed, angles, grade = health[0], imputed[0], angles[0], grade[0]
        dims3, adims = dims3[1:], adims[1:]
    coords = {
        "index": labels, "index_kind": ("index", kind), "index_zh": ("index", zh), "index_en": ("index", en),
        "region": rid, "level": ("region", rlevel), "parent": ("region", rparent), "region_name": ("region", rname),
        "angle": [a.key for a in cfg.angles], "angle_zh": ("angle", [a.zh for a in cfg.angles]),
        "angle_en": ("angle", [a.en for a in cfg.angles]),
    }
    if prep.has_time:
        coords["time"] = prep.value["time"].values[cycles]
    elif "time" in prep.ds.coords and prep.ds["time"].size == 1:
        coords["time"] = prep.ds["time"].values
    out = xr.Dataset(
        {
            "health": (dims3, health, {"long_name": "health score", "units": "0-100 (100 = everything normal)"}),
            "grade": (dims3, grade, {"long_name": "grade code", "codes": ", ".join(f"{g.code}={g.key}" for g in cfg.grades),
                                     "missing": -1}),
            "imputed": (dims3, imputed, {"long_name": "share of the index's weight that was imputed"}),
            "safety_angle": (adims, angles, {"long_name": "safety-index angle score", "units": "0-100"}),
        },
        coords=coords,
        attrs={"aggregation": cfg.method, "config": cfg.source,
               "grade_min": [g.min for g in cfg.grades], "grade_key": [g.key for g in cfg.grades]},
    )
    return out
