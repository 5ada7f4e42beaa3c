"""The six detectors combined: :class:`Detectors` scores every (indicator, region) each cycle.

Each cycle, each series gets a score in [0, 1] with the shared meaning of
:mod:`engine.levels` -- ``1 - p``, ``p`` the probability under the series' learned normal
behaviour of a value at least this far in the bad direction -- as the maximum over the
detectors that have an opinion, and the code of the detector that drove it
(:data:`engine.levels.DETECTORS`; ties go to the lower code; 0 when the score is 0 or NaN).
NaN means no opinion: warm-up without catalog levels, or no data.

>>> import numpy as np
>>> det = Detectors.from_spec(direction=["up_bad", "down_bad"], seasonality=["none", "none"],
...                           count=[False, False], n_reg=3, cycle="1h", warmup=5)
>>> rng = np.random.default_rng(0)
>>> t0 = np.datetime64("2024-01-01T00:00")
>>> for t in range(50):
...     score, code, extra = det.update(10 + rng.normal(size=(2, 3)), t0 + np.timedelta64(t, "h"))
>>> x = 10 + rng.normal(size=(2, 3)); x[0, 1] = 30.0; x[1, 2] = -10.0
>>> score, code, extra = det.update(x, t0 + np.timedelta64(50, "h"))
>>> bool(score[0, 1] > 0.999), int(code[0, 1]), bool(score[1, 2] > 0.999), int(code[1, 2])
(True, 1, True, 1)
"""

from __future__ import annotations

import math
from pathlib import Path

import numba
import numpy as np
import pandas as pd

from engine.detect.kernels import run_kernel, update_kernel
from engine.detect.params import DetectorParams
from engine.detect.scan import FOUND_FIELDS, MAX_CLUSTERS, build_zones, clogc_table, scan_run_kernel, scan_update_kernel
from engine.detect.seasonal import SEASON_CODES, phase_bins, season_bins
from engine.detect.state import DetectorState

__all__ = ["Detectors"]

DIRECTION_CODES = {"up_bad": 1, "down_bad": -1, "both": 0}


def _timedelta(cycle) -> np.timedelta64:
    try:
        td = pd.Timedelta(cycle)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"cycle must be a duration such as '15min' or '1h', got {cycle!r}") from exc
    if td <= pd.Timedelta(0):
        raise ValueError(f"cycle must be a positive duration, got {cycle!r}")
    return np.timedelta64(int(td.value), "ns")


#: the scan's prior: pseudo-events per region (at the city's mean share) that the regional split of
#: a scanned count starts from before the row model's expectations are counted (``condition_on_totals``)
SCAN_PRIOR_EVENTS = 5.0


def condition_on_totals(obs, mu, prior=None, hours: float = 0.0, events: float = 0.0):
    """Scale the scan's expectations ``mu`` in place so each count's total over the regions is
    its observed total (at least 1): Kulldorff's Poisson model, conditioned on the total.

    ``obs``, ``mu``: (..., n_scan, n_reg); regions where either is NaN take no part.

    With ``prior`` (n_reg weights, e.g. the regions' populations) and ``events`` > 0, each region's
    share of the total is the posterior mean of a Dirichlet prior centred at the prior's shares,
    worth ``events`` pseudo-events a taking region, updated by the row model's expectations counted as
    ``hours`` counts of data (the memory of the learned level: ``1 / (level_rate * stride)``):
    ``share_r = (hours mu_r + kappa w_r) / (hours sum(mu) + kappa)``, ``kappa = events * n``, ``w`` the
    prior's shares over the ``n`` taking regions. A sparse count's learned expectations are mostly
    noise (a region of 600 residents sees ~1 ticket in the level's 50-hour memory, and the shared
    hour-of-week profile, in units of a spread floored at the Poisson spread of 0.1, drives its
    night and Sunday expectations to the 1e-3 floor), so one ticket there looked like a cluster;
    then the prior carries the split. A dense count's expectations carry it (docs/detect.md, "Scan
    precision, 2026-11-29 (third session)").

    >>> mu = np.array([[0.5, 0.5, np.nan]]); condition_on_totals(np.array([[3.0, 1.0, 7.0]]), mu); mu
    array([[ 2.,  2., nan]])
    >>> mu = np.array([[1e-3, 0.2]]); condition_on_totals(np.array([[1.0, 1.0]]), mu, np.array([1.0, 1.0]), 50.0, 1.0); mu.round(3)
    array([[0.174, 1.826]])

    Computed by :func:`engine.detect.scan.condition_kernel` (one pass, bit for bit the numpy form
    :func:`condition_on_totals_numpy`) where ``obs`` is float32 / float64 and ``mu`` a writeable
    C-contiguous float64 array of the same shape; by the numpy form otherwise.
    """
    from engine.detect.scan import condition_kernel

    o = np.asarray(obs)
    if (isinstance(mu, np.ndarray) and mu.dtype == np.float64 and mu.flags.c_contiguous and mu.flags.writeable
            and o.shape == mu.shape and o.dtype in (np.float32, np.float64) and mu.ndim >= 1 and mu.size > 0
            and np.ndim(hours) == 0 and np.ndim(events) == 0):
        n_reg = mu.shape[-1]
        with_prior = prior is not None and events > 0
        w = np.asarray(prior, dtype=np.float64) if with_prior else np.zeros(n_reg)
        if w.shape == (n_reg,):
            o2 = np.ascontiguousarray(o).reshape(-1, n_reg)
            condition_kernel(o2, mu.reshape(-1, n_reg), np.ascontiguousarray(w), float(hours),
                             float(events) if with_prior else 0.0, bool(with_prior), np.empty(n_reg, o2.dtype),
                             np.empty(n_reg), np.empty(n_reg))
            return
    condition_on_totals_numpy(obs, mu, prior, hours, events)


def condition_on_totals_numpy(obs, mu, prior=None, hours: float = 0.0, events: float = 0.0):
    """:func:`condition_on_totals` in its numpy form (whole-array passes, numpy's pairwise sums): the
    fallback for other dtypes / layouts, and what :func:`engine.detect.scan.condition_kernel` equals
    bit for bit (``tests/test_detect_scan.py``; the plain per-row meaning is
    ``tests/scan_reference.py::condition_on_totals_reference``).

    >>> mu = np.array([[0.5, 0.5, np.nan]]); condition_on_totals_numpy(np.array([[3.0, 1.0, 7.0]]), mu); mu
    array([[ 2.,  2., nan]])
    """
    ok = np.isfinite(obs) & np.isfinite(mu)
    c = np.where(ok, obs, 0.0).sum(axis=-1, keepdims=True)
    mu_ok = np.where(ok, mu, 0.0)
    m = mu_ok.sum(axis=-1, keepdims=True)
    f = np.divide(np.maximum(c, 1.0), m, out=np.ones_like(m), where=m > 0)
    if prior is None or not events > 0:
        mu *= f
        return
    w = np.where(ok, np.asarray(prior, dtype=np.float64), 0.0)
    ws = w.sum(axis=-1, keepdims=True)
    kappa = events * ok.sum(axis=-1, keepdims=True)
    den = hours * m + kappa
    use = (ws > 0) & (m > 0)
    g = np.divide(np.maximum(c, 1.0), den, out=np.zeros_like(den), where=use)
    # shrunk = g * (hours * mu_ok + kappa * w / ws), the same operations in place (fewer temporaries of
    # the whole part: ~(n_t, n_scan, n_reg) float64 each)
    mu_ok *= hours
    share = np.divide(w, ws, out=np.zeros_like(w), where=ws > 0)
    share *= kappa
    share += mu_ok
    share *= g
    mu *= f
    np.copyto(mu, share, where=ok & use)


def _scan_prior(population, n_reg: int) -> np.ndarray:
    """The scan's prior weights from the regions' populations: ``n_reg`` finite numbers >= 0, not all 0.

    >>> _scan_prior([10, 0, 30], 3).tolist()
    [10.0, 0.0, 30.0]
    >>> _scan_prior([10, -1, 30], 3)
    Traceback (most recent call last):
    ...
    ValueError: population must be finite and >= 0 with a positive total (the scan's prior), got -1.0 at region 1
    """
    w = np.asarray(population, dtype=np.float64).ravel()
    if w.shape != (n_reg,):
        raise ValueError(f"population has {w.size} entries for {n_reg} regions")
    bad = np.flatnonzero(~np.isfinite(w) | (w < 0))
    if len(bad) or not w.sum() > 0:
        at = f"{float(w[bad[0]])!r} at region {int(bad[0])}" if len(bad) else f"a total of {float(w.sum())!r}"
        raise ValueError(f"population must be finite and >= 0 with a positive total (the scan's prior), got {at}")
    return w


def _steady_count(warmup, params) -> np.ndarray:
    """Observed cycles after which a series is steady: warm and learning at its fixed rates.

    The kernel's running-mean rate ``1 / (n + 1)`` (float32) yields to the level, spread and
    scale rates once it is at or below the smallest of them; from then on, and once past
    ``warmup``, the count changes nothing. A count that cannot be reached in the int16
    counter gives ``NOBS_MAX + 1`` (never steady).

    >>> from engine.detect.params import DetectorParams
    >>> _steady_count(np.array([4, 1344]), DetectorParams()).tolist()   # 1 / (n + 1) <= 0.005 from n = 199
    [199, 1344]
    """
    from engine.detect.kernels import NOBS_MAX

    rate = min(np.float32(params.level_rate), np.float32(params.spread_rate), np.float32(params.scale_rate))
    n = np.arange(NOBS_MAX + 1, dtype=np.float32)
    ok = np.flatnonzero(np.float32(1.0) / (n + np.float32(1.0)) <= rate)
    n_rate = int(ok[0]) if len(ok) else NOBS_MAX + 1
    return np.maximum(np.asarray(warmup, dtype=np.int64), n_rate).astype(np.int32)


def _as_time(t) -> np.datetime64:
    try:
        ts = pd.Timestamp(t)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"time must be a timestamp, got {t!r}") from exc
    if ts is pd.NaT:
        raise ValueError("time must be a timestamp, got NaT")
    if ts.tzinfo is not None:
        ts = ts.tz_localize(None)
    return np.datetime64(ts.value, "ns")


class Detectors:
    """Streaming detectors for a catalog over a city (state in :class:`DetectorState`).

    Parameters
    ----------
    catalog : engine.catalog.Catalog
        Indicators (their ``direction``, ``seasonality``, ``aggregation`` +
        ``normalisation`` (raw counts get the count detector), ``thresholds`` and
        ``cluster_scan``), in catalog order: row ``i`` of the value matrix is
        ``catalog.indicators[i]``.
    city : engine.city.City
        Regions (columns of the value matrix, in ``city.regions`` order), their adjacency
        (spatial detector, scan zones) and centroids (scan zones).
    cycle : str
        Length of a cycle (``"15min"``); times passed to :meth:`update` are binned to it.
    phase_minutes : int
        Width of the seasonal profile bins (60: hour-of-day / hour-of-week).
    spatial : bool
        Run the spatial-outlier detector.
    city_rules : bool
        The city feeds' rules (default on here, off in :meth:`from_spec`): daily profiles have
        separate weekday and weekend halves, a seasonal series is not scored on a profile bin
        it has never visited (a Monday after a weekend's history), and a non-count series that
        repeats its value exactly has not been updated (a feed that posts daily): the repeat is
        scored but not learned, so the model learns at the feed's cadence (zero repeats of
        rates -- counts normalised by population -- are learned: mostly zeros is their normal).
    **config
        Fields of :class:`DetectorParams` (``level_rate=0.01``, ``scan_replicas=999``...).

    Examples
    --------
    >>> from engine.catalog import Catalog
    >>> from engine.city import City
    >>> city = City.synthetic(seed=1, neighbourhoods=40, streets=4, population=150_000)
    >>> det = Detectors(Catalog.load(), city, cycle="15min", scan_replicas=99)
    >>> det.n_ind >= 2600, det.n_reg, len(det.scan_ind) >= 50
    (True, 40, True)
    """

    def __init__(self, catalog, city, cycle: str = "15min", *, phase_minutes: int = 60,
                 spatial: bool = True, city_rules: bool = True, **config):
        inds = list(catalog.indicators)
        if not inds:
            raise ValueError("catalog has no indicators")
        regions = city.regions
        xy = (regions["x_m"].to_numpy(), regions["y_m"].to_numpy()) if "x_m" in regions else None
        self._setup(
            ids=[i["id"] for i in inds],
            region_ids=[str(r) for r in regions.index],
            direction=[i.get("direction", "up_bad") for i in inds],
            seasonality=[i.get("seasonality", "none") for i in inds],
            count=[i.get("aggregation") == "count" and i.get("normalisation", "none") == "none" for i in inds],
            thresholds=[i.get("thresholds") for i in inds],
            cluster=[bool(i.get("cluster_scan")) for i in inds],
            adjacency=(city.adj_indptr, city.adj_indices), xy=xy, cycle=cycle,
            phase_minutes=phase_minutes, spatial=spatial, config=config,
            window=[i.get("window") for i in inds], city_rules=city_rules,
            rate=[i.get("aggregation") == "count" and i.get("normalisation", "none") != "none" for i in inds])
        if "population" in regions:
            self.scan_prior = _scan_prior(regions["population"].to_numpy(), self.n_reg)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_spec(cls, *, direction, seasonality, count, n_reg: int, thresholds=None, cluster=None,
                  adjacency=None, xy=None, ids=None, region_ids=None, cycle: str = "15min",
                  phase_minutes: int = 60, spatial: bool = True, warmup_cycles=None, window=None,
                  city_rules: bool = False, population=None, **config) -> "Detectors":
        """Detectors for indicators described by plain lists (tests, single series, other catalogs).

        ``direction``: "up_bad" / "down_bad" / "both" per indicator; ``seasonality``: "none" /
        "daily" / "weekly"; ``count``: True for raw counts; ``thresholds``: None or
        ``{"warn": w, "alarm": a}`` per indicator; ``cluster``: scan flags (need ``adjacency``
        = (indptr, indices) and optionally ``xy`` centroids); ``window``: None or each
        indicator's rolling window (``"24h"``: its CUSUM is judged on the window, see
        :func:`engine.detect.kernels._row_pass`); ``city_rules``: see the class (off by default
        here: the plain model, as :func:`engine.detect.score_series` runs it); ``population``: the
        regions' populations, the scan's prior regional split (default: equal).

        >>> d = Detectors.from_spec(direction=["both"], seasonality=["daily"], count=[False], n_reg=1)
        >>> d.n_ind, d.n_reg, int(d.warmup[0])
        (1, 1, 192)
        """
        self = cls.__new__(cls)
        n = len(direction)
        self._setup(ids=ids or [f"i{k}" for k in range(n)],
                    region_ids=region_ids or [f"r{k}" for k in range(n_reg)],
                    direction=direction, seasonality=seasonality, count=count,
                    thresholds=thresholds if thresholds is not None else [None] * n,
                    cluster=cluster if cluster is not None else [False] * n,
                    adjacency=adjacency, xy=xy, cycle=cycle, phase_minutes=phase_minutes,
                    spatial=spatial, config=config, warmup_cycles=warmup_cycles, window=window,
                    city_rules=city_rules)
        if population is not None:
            self.scan_prior = _scan_prior(population, self.n_reg)
        return self

    def _setup(self, *, ids, region_ids, direction, seasonality, count, thresholds, cluster, adjacency,
               xy, cycle, phase_minutes, spatial, config, warmup_cycles=None, window=None, city_rules=False,
               rate=None):
        self.params = DetectorParams(**config)
        self.city_rules = bool(city_rules)
        # held repeats (city rules): 2 any value, 1 non-zero only (rates of rare events, and
        # indicators described without a catalog: mostly zeros, a zero repeat is information)
        rate = [True] * len(ids) if rate is None else rate
        self.hold_mode = np.array([(1 if r else 2) if city_rules else 0 for r in rate], dtype=np.uint8)
        self.ids = list(ids)
        self.region_ids = list(region_ids)
        n_ind, n_reg = len(self.ids), len(self.region_ids)
        if n_reg < 1:
            raise ValueError("need at least one region")
        for name, seq in (("direction", direction), ("seasonality", seasonality), ("count", count),
                          ("thresholds", thresholds), ("cluster", cluster)):
            if len(seq) != n_ind:
                raise ValueError(f"{name} has {len(seq)} entries for {n_ind} indicators")
        bad = [d for d in direction if d not in DIRECTION_CODES]
        if bad:
            raise ValueError(f"direction must be one of {sorted(DIRECTION_CODES)}, got {bad[0]!r}")
        bad = [s for s in seasonality if s not in SEASON_CODES]
        if bad:
            raise ValueError(f"seasonality must be one of {sorted(SEASON_CODES)}, got {bad[0]!r}")
        self.cycle = _timedelta(cycle)
        self.phase_minutes = int(phase_minutes)
        per_day, per_week = season_bins(phase_minutes)
        self.direction = np.array([DIRECTION_CODES[d] for d in direction], dtype=np.int8)
        self.season = np.array([SEASON_CODES[s] for s in seasonality], dtype=np.int8)
        self.is_count = np.array([bool(c) for c in count], dtype=np.bool_)
        self.warn = np.full(n_ind, np.nan)
        self.alarm = np.full(n_ind, np.nan)
        for k, th in enumerate(thresholds):
            if th:
                self.warn[k] = float(th.get("warn", np.nan))
                self.alarm[k] = float(th.get("alarm", np.nan))
        cyc_min = self.cycle / np.timedelta64(1, "m")
        # cycles spanned by each indicator's rolling window (1: one cycle, no overlap)
        from engine.catalog.vocab import window_minutes

        # (the CUSUM of a windowed indicator is judged on the window's long-run variance, in the kernel)
        self.span = np.ones(n_ind, dtype=np.float32)
        for k, wdw in enumerate(window or ()):
            if wdw:
                self.span[k] = max(1.0, window_minutes(wdw) / cyc_min)
        day = max(1, int(round(1440 / cyc_min)))
        season_len = np.where(self.season == 2, 7 * day, np.where(self.season == 1, day, 0)) * self.params.warmup_seasons
        if warmup_cycles is not None:
            season_len = np.zeros(n_ind, dtype=np.int64) + int(warmup_cycles)
        self.warmup = np.maximum(season_len, self.params.warmup if warmup_cycles is None else 1).astype(np.int32)
        if (self.warmup > 32767).any():
            raise ValueError("a season longer than 32767 cycles does not fit the int16 observation counter; "
                             "use a longer cycle")
        if adjacency is None:
            adjacency = (np.zeros(n_reg + 1, dtype=np.int64), np.zeros(0, dtype=np.int64))
        self.adj_ptr = np.ascontiguousarray(adjacency[0], dtype=np.int64)
        self.adj_idx = np.ascontiguousarray(adjacency[1], dtype=np.int64)
        if self.adj_ptr.shape != (n_reg + 1,) or (self.adj_idx.size and (self.adj_idx.min() < 0 or self.adj_idx.max() >= n_reg)):
            raise ValueError(f"adjacency must be CSR (indptr of {n_reg + 1}, indices < {n_reg})")
        self.spatial = bool(spatial) and self.adj_idx.size > 0
        self.scan_ind = np.flatnonzero(np.asarray(cluster, dtype=bool)).astype(np.int64)
        self.scan_slot = np.full(n_ind, -1, dtype=np.int64)
        self.scan_slot[self.scan_ind] = np.arange(len(self.scan_ind))
        if len(self.scan_ind):
            if xy is None:
                xy = (np.zeros(n_reg), np.zeros(n_reg))
            self.zones = build_zones(self.adj_ptr, self.adj_idx, xy[0], xy[1], self.params.scan_max_zone)
        else:
            self.zones = np.zeros((n_reg, 1), dtype=np.int32)
        self._table = clogc_table()
        self._par = self.params.vector()
        # the two-sided indicators keep a second CUSUM (C-) row; the others only their bad side's
        both = np.flatnonzero(self.direction == 0)
        self.both_slot = np.full(n_ind, -1, dtype=np.int64)
        self.both_slot[both] = np.arange(len(both))
        self.nsat = _steady_count(self.warmup, self.params)
        # the scan's cells are disjoint counts: a rolling count spanning `stride` cycles is read every
        # `stride` cycles (one event counted once), so its ring holds scan_windows counts of them
        strides = {int(round(self.span[i])) for i in self.scan_ind}
        if len(strides) > 1:
            spans = {self.ids[i]: int(round(self.span[i])) for i in self.scan_ind}
            raise ValueError(f"the scanned indicators must share one window, got windows of {sorted(strides)} "
                             f"cycles: {spans}")
        self.scan_stride = strides.pop() if strides else 1
        # the scan's regional split: prior weights (the regions' populations with a city, else equal)
        # and the learned level's memory in counts (condition_on_totals)
        self.scan_prior = np.ones(n_reg)
        self.scan_hours = 1.0 / (float(self.params.level_rate) * self.scan_stride)
        self.state = DetectorState.empty(n_ind, n_reg, per_week, len(self.scan_ind),
                                         self.scan_stride * self.params.scan_windows, n_both=len(both))
        # the scan's cadence: once per `stride` cycles, at the cycles that close the disjoint counts'
        # grid (cycle numbers k % stride == 0: a count_1h at 15-minute cycles on the hour); the other
        # cycles hold the last scan's clusters (scan_held; docs/detect.md "Scan cadence")
        self.scan_every = self.scan_stride

    @property
    def scan_held(self) -> np.ndarray:
        """The last scan's clusters, held on the cycles between scans (``state.scan_found``: part
        of the saved state, so a checkpoint taken between scans restarts holding them)."""
        return self.state.scan_found

    @property
    def scan_every(self) -> int:
        """The scan's cadence in cycles: cycle number ``k`` is scanned where ``k % scan_every == 0``.

        Default: the scanned indicators' window in cycles (``scan_stride``: 4 for a ``count_1h``
        at 15-minute cycles), so each disjoint count is scanned once, at the cycle that closes it
        (the hour's, 08:00 for 07:00-08:00). Between scans the last scan's result is held
        (:attr:`scan_held`): its significant clusters raise their regions' scores (``1 - p``,
        detector code 6, where that beats the row's other detectors that cycle) and are reported
        in ``extra["clusters"]`` every cycle, window and p as at the scan. A cluster is thus seen
        up to ``scan_every - 1`` cycles later than with a scan every cycle, and one that ends
        between scans is still reported until the next. 1: a scan every cycle (the cells of
        consecutive cycles are then shifted disjoint-count grids). Setting it keeps the held result.
        """
        return self._scan_every

    @scan_every.setter
    def scan_every(self, every) -> None:
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            raise ValueError(f"scan_every must be a whole number >= 1, got {every!r}")
        self._scan_every = int(every)

    @property
    def n_ind(self) -> int:
        return len(self.ids)

    @property
    def n_reg(self) -> int:
        return len(self.region_ids)

    # ------------------------------------------------------------------ running
    def _check_values(self, values, ndim):
        v = np.asarray(values)
        want = (self.n_ind, self.n_reg)
        if v.ndim != ndim or v.shape[-2:] != want:
            raise ValueError(f"values must have shape {('n_t',) * (ndim - 2) + want}, got {v.shape}")
        if v.dtype.kind not in "iuf":
            raise ValueError(f"values must be numbers (float32/float64; NaN = no data), got dtype {v.dtype}")
        # judged in float32, the engine's value dtype and the precision of the detectors' state
        # (the held-value tag already reads float32 bits): one compiled specialisation of each
        # kernel instead of two, ~100 s of compile a cold process saves
        return np.ascontiguousarray(v, dtype=np.float32)

    def _cycles(self, times, fast: bool = True) -> np.ndarray:
        """``times`` as ``datetime64[ns]`` and their cycle numbers, checked: timestamps (no NaT), each
        at least a cycle after the one before and after the last cycle scored. A ``numpy.datetime64``
        or an array of them within ``datetime64[ns]``'s range (a cycle loop's usual times) is taken
        without pandas (~0.6-1.8 ms a call, more than a small update; ``fast=False`` goes through
        pandas, the same values and errors); anything else (Timestamps, strings, tz-aware times)
        through pandas.
        """
        t = None
        if fast and isinstance(times, (np.datetime64, np.ndarray)) and np.asarray(times).dtype.kind == "M":
            a = np.atleast_1d(times)
            if not np.isnat(a).any():
                t = a.astype("datetime64[ns]")
                if not (t.astype(a.dtype) == a).all():    # beyond datetime64[ns]'s range: pandas says so
                    t = None
        if t is None:
            idx = pd.DatetimeIndex(pd.to_datetime(np.atleast_1d(np.asarray(times)) if not isinstance(times, pd.DatetimeIndex) else times))
            if idx.tz is not None:
                idx = idx.tz_localize(None)
            if idx.isna().any():
                raise ValueError("times must be timestamps; got NaT")
            t = idx.values.astype("datetime64[ns]")
        cyc = (t.astype(np.int64) // self.cycle.astype(np.int64)).astype(np.int64)
        if len(cyc) > 1 and (np.diff(cyc) <= 0).any():
            k = int(np.flatnonzero(np.diff(cyc) <= 0)[0])
            raise ValueError(f"times must move forward by at least one cycle ({self.cycle}); "
                             f"{t[k]} is followed by {t[k + 1]}")
        if len(cyc) and cyc[0] <= self.state.cycle[0]:
            raise ValueError(f"time {t[0]} is not after the last cycle scored "
                             f"(cycle {int(self.state.cycle[0])}); detectors only move forward")
        return t, cyc

    def _phases(self, t):
        """Profile bins of times ``t``: with ``city_rules`` daily profiles have separate weekday
        and weekend halves (bin ``h`` Monday-Friday, ``per_day + h`` Saturday-Sunday: city life
        differs), weekly ones the hour of the week."""
        dbin, wbin = phase_bins(t, self.phase_minutes)
        if not self.city_rules:
            return dbin, wbin
        per_day = 1440 // self.phase_minutes
        return dbin + per_day * (wbin // per_day >= 5), wbin

    def _clusters(self, found, score_row_t=None):
        out = []
        for c, i in enumerate(self.scan_ind):
            for q in range(found.shape[1]):
                llr_, p, centre, size, window = found[c, q]
                if math.isnan(p) or p > self.params.scan_alpha:
                    continue
                members = self.zones[int(centre), :int(size)]
                out.append({"indicator": self.ids[i], "indicator_index": int(i),
                            "regions": [self.region_ids[r] for r in members],
                            "region_index": [int(r) for r in members], "window": int(window),
                            "llr": float(llr_), "p_value": float(p)})
        return out

    def update(self, values, time, *, baseline: bool = False, out=None):
        """Score one cycle and learn from it.

        Parameters
        ----------
        values : array (n_ind, n_reg) of numbers (judged in float32; NaN = no data)
            The cycle's value matrix ``V[indicator, region]``; NaN = no data.
        time : timestamp
            The cycle's (local) time; must be later than the last cycle scored.
        baseline : bool
            Also return each series' expected value and scale (before learning from this
            cycle) in ``extra["expected"]`` / ``extra["scale"]`` (float32, NaN before the
            first observation).
        out : (score, detector) arrays, optional
            Preallocated C-contiguous float32 / int8 arrays (n_ind, n_reg) to write the
            result into (and return): a cycle loop that reuses them avoids the page faults
            of fresh outputs every cycle.

        Returns
        -------
        score : float32 (n_ind, n_reg)
        detector : int8 (n_ind, n_reg)
            Detector codes of :data:`engine.levels.DETECTORS`.
        extra : dict
            ``clusters``: list of dicts (``indicator``, ``regions``, ``window`` in cycles,
            ``llr``, ``p_value``) for clusters with ``p <= scan_alpha``; ``cycle``: the
            cycle number; ``expected``/``scale`` when asked.
        """
        v = self._check_values(values, 2)
        t, cyc = self._cycles(time if isinstance(time, np.datetime64) else [time])
        dbin, wbin = self._phases(t)
        n_ind, n_reg = v.shape
        if out is None:
            score = np.empty((n_ind, n_reg), dtype=np.float32)
            det = np.empty((n_ind, n_reg), dtype=np.int8)
        else:
            score, det = out
            for a, dt in ((score, np.float32), (det, np.int8)):
                if not (isinstance(a, np.ndarray) and a.dtype == dt and a.shape == (n_ind, n_reg)
                        and a.flags.c_contiguous and a.flags.writeable):
                    raise ValueError(f"out must be writeable C-contiguous (float32, int8) arrays of shape "
                                     f"{(n_ind, n_reg)}")
        shape_b = (n_ind, n_reg) if baseline else (n_ind, 0)
        expected = np.empty(shape_b, dtype=np.float32)
        scale = np.empty(shape_b, dtype=np.float32)
        n_scan = len(self.scan_ind)
        scan_mu = np.empty((max(n_scan, 1), n_reg if n_scan else 0), dtype=np.float64)
        s = self.state
        update_kernel(v, int(dbin[0]), int(wbin[0]), self.season, self.direction, self.is_count, self.warn,
                      self.alarm, self.warmup, self.span, self._par, s.level, s.spread, s.scale, s.cusum,
                      s.cusum_neg, self.both_slot, s.nobs, self.nsat, s.steady, s.last_tag, s.shape, s.visits, self.adj_ptr, self.adj_idx, self.spatial,
                      score, det, expected, scale, baseline, self.scan_slot, scan_mu, not self.city_rules,
                      self.hold_mode, numba.get_num_threads())
        extra = {"cycle": int(cyc[0]), "clusters": []}
        if n_scan:
            if self.params.scan_condition:
                condition_on_totals(v[self.scan_ind], scan_mu, self.scan_prior, self.scan_hours,
                                    SCAN_PRIOR_EVENTS)
            found = np.empty((n_scan, MAX_CLUSTERS, len(FOUND_FIELDS)))
            scan_update_kernel(v, self.scan_ind, scan_mu, s.scan_obs, s.scan_exp, s.ring, self.zones,
                               self.params.scan_replicas, np.uint64(self.params.seed), np.int64(cyc[0]),
                               self.params.scan_alpha, score, det, found, self._table,
                               np.int64(self.scan_stride), np.bool_(self.params.scan_tail),
                               np.int64(self.scan_every), self.scan_held)
            extra["clusters"] = self._clusters(found)
        s.cycle[0] = cyc[0]
        if baseline:
            extra["expected"] = expected
            extra["scale"] = scale
        return score, det, extra

    def run(self, values, times, *, baseline: bool = False, extra: bool = False, out=None,
            baseline_every: int = 1):
        """Score many cycles at once; the same as calling :meth:`update` for each, in order.

        Parameters
        ----------
        values : array (n_t, n_ind, n_reg)
        times : sequence of n_t timestamps, each at least one cycle after the previous
        baseline : bool
            Also return expected values and scales (n_t, n_ind, n_reg).
        baseline_every : int
            With ``baseline``, the expected values and scales of every ``baseline_every``-th
            cycle only -- cycles ``k - 1, 2k - 1, ...`` (each period's last) -- shape
            (n_t // k, n_ind, n_reg): what a run storing one step a period needs, in one call
            (the same scores; docs/detect.md, "Detector speed in a run, 2026-11-29 (third
            session)").
        extra : bool
            Return a third element: a dict with ``clusters`` (one list per cycle, as in
            :meth:`update`) and, with ``baseline``, ``expected`` / ``scale``.
        out : tuple of arrays, optional
            ``(scores, detectors)``, and with ``baseline`` ``(scores, detectors, expected,
            scale)``: preallocated writeable C-contiguous float32 / int8 / float32 / float32
            arrays of shape (n_t, n_ind, n_reg) (expected and scale: (n_t // baseline_every,
            n_ind, n_reg)) to write the results into (and return). A
            caller that keeps them from one call to the next (views of a larger buffer
            included) saves the first-touch page faults of fresh outputs and a copy: ~15 ms a
            cycle of the demo's runner at 2,926 x 300 (docs/detect.md, "Detector speed in a
            run, 2026-11-29 (third session)").

        Returns
        -------
        scores : float32 (n_t, n_ind, n_reg)
        detectors : int8 (n_t, n_ind, n_reg)

        Examples
        --------
        >>> det = Detectors.from_spec(direction=["up_bad"], seasonality=["none"], count=[False], n_reg=2, cycle="1h")
        >>> x = np.ones((3, 1, 2), dtype=np.float32); t = np.datetime64("2024-01-01") + np.arange(3) * np.timedelta64(1, "h")
        >>> buf = (np.empty((4, 1, 2), np.float32), np.empty((4, 1, 2), np.int8))
        >>> s, d = det.run(x, t, out=(buf[0][:3], buf[1][:3]))
        >>> bool(np.shares_memory(s, buf[0])), s.shape
        (True, (3, 1, 2))
        """
        return self._run(values, times, baseline, extra, self.params.scan_replicas, out, baseline_every)

    def learn(self, values, times) -> None:
        """Learn from history (a burn-in) without scoring it: the state moves as with :meth:`run`.

        An operations centre starts its detectors on the feeds' history before it trusts them;
        a scenario run does the same with a simulated history before its period. The scan's
        Monte Carlo is skipped (its expectations and recent counts are still kept), so this is
        cheaper than :meth:`run`; the scores are discarded, and no scan result is held into the
        next cycles (:attr:`scan_every`).

        >>> import numpy as np
        >>> a = Detectors.from_spec(direction=["up_bad"], seasonality=["none"], count=[False], n_reg=2, cycle="1h")
        >>> b = Detectors.from_spec(direction=["up_bad"], seasonality=["none"], count=[False], n_reg=2, cycle="1h")
        >>> x = np.random.default_rng(1).normal(size=(30, 1, 2)); t = np.datetime64("2024-01-01") + np.arange(30) * np.timedelta64(1, "h")
        >>> a.learn(x[:20], t[:20]); _ = b.run(x[:20], t[:20])
        >>> bool((a.update(x[20], t[20])[0] == b.update(x[20], t[20])[0]).all())
        True
        """
        self._run(values, times, False, False, 0)

    @staticmethod
    def _check_out(out, shape, baseline, n_b):
        """The ``out`` arrays of :meth:`run`, checked: (scores, dets, expected, scale) or None."""
        want = (np.float32, np.int8, np.float32, np.float32)[:4 if baseline else 2]
        shapes = (shape, shape, (n_b,) + shape[1:], (n_b,) + shape[1:])
        if not isinstance(out, (tuple, list)) or len(out) != len(want):
            names = "(scores, detectors, expected, scale)" if baseline else "(scores, detectors)"
            raise ValueError(f"out must be {names} arrays, got {type(out).__name__} of "
                             f"{len(out) if isinstance(out, (tuple, list)) else 'no'} entries")
        for a, dt, sh in zip(out, want, shapes):
            if not (isinstance(a, np.ndarray) and a.dtype == dt and a.shape == sh and a.flags.c_contiguous
                    and a.flags.writeable):
                got = f"{a.dtype}{list(a.shape)}" if isinstance(a, np.ndarray) else type(a).__name__
                raise ValueError(f"out must be writeable C-contiguous arrays of shapes "
                                 f"{', '.join(str(x) for x in shapes[:len(want)])} "
                                 f"({', '.join(np.dtype(d).name for d in want)}), got {got}")
        return tuple(out) + ((None, None) if not baseline else ())

    def _run(self, values, times, baseline, extra, replicas, out=None, every=1):
        v = self._check_values(values, 3)
        n_t = v.shape[0]
        if len(times) != n_t:
            raise ValueError(f"times has {len(times)} entries for {n_t} cycles of values")
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            raise ValueError(f"baseline_every must be a whole number >= 1, got {every!r}")
        every = int(every)
        n_b = n_t // every if baseline else 0
        if out is None:
            scores = np.empty(v.shape, dtype=np.float32)
            dets = np.empty(v.shape, dtype=np.int8)
            expected = scale = None
        else:
            scores, dets, expected, scale = self._check_out(out, v.shape, baseline, n_b)
        if n_t == 0:
            return (scores, dets, {"clusters": []}) if extra else (scores, dets)
        t, cyc = self._cycles(times)
        dbin, wbin = self._phases(t)
        if expected is None:
            shape_b = (n_b, self.n_ind, self.n_reg) if baseline else (1, self.n_ind, 0)
            expected = np.empty(shape_b, dtype=np.float32)
            scale = np.empty(shape_b, dtype=np.float32)
        # the row of expected / scale each cycle writes (-1: none); the kernel indexes row 0 of
        # an empty array for none
        slot = np.full(n_t, -1, dtype=np.int64)
        if baseline:
            slot[every - 1:n_b * every:every] = np.arange(n_b)
        e_k, s_k = (expected, scale) if n_b else (np.empty((1, self.n_ind, 0), np.float32),) * 2
        n_scan = len(self.scan_ind)
        scan_mu = np.empty((n_t, max(n_scan, 1), self.n_reg if n_scan else 0), dtype=np.float64)
        s = self.state
        run_kernel(v, dbin.astype(np.int64), wbin.astype(np.int64), self.season, self.direction, self.is_count,
                   self.warn, self.alarm, self.warmup, self.span, self._par, s.level, s.spread, s.scale, s.cusum,
                   s.cusum_neg, self.both_slot, s.nobs, self.nsat, s.steady, s.last_tag, s.shape, s.visits, self.adj_ptr, self.adj_idx, self.spatial,
                   scores, dets, e_k, s_k, slot, self.scan_slot, scan_mu, not self.city_rules,
                   self.hold_mode, numba.get_num_threads())
        clusters = [[] for _ in range(n_t)]
        if n_scan:
            if self.params.scan_condition:
                condition_on_totals(v[:, self.scan_ind], scan_mu, self.scan_prior, self.scan_hours,
                                    SCAN_PRIOR_EVENTS)
            found = np.empty((n_t, n_scan, MAX_CLUSTERS, len(FOUND_FIELDS)))
            scan_run_kernel(v, self.scan_ind, scan_mu, s.scan_obs, s.scan_exp, s.ring, self.zones,
                            int(replicas), np.uint64(self.params.seed), cyc, self.params.scan_alpha,
                            scores, dets, found, self._table, np.int64(self.scan_stride),
                            np.bool_(self.params.scan_tail), np.int64(self.scan_every), self.scan_held)
            if replicas == 0:
                # learn(): p-values without replicas are no test; nothing is held into the scored cycles
                self.scan_held.fill(np.nan)
            if extra:
                clusters = [self._clusters(found[k]) for k in range(n_t)]
        s.cycle[0] = cyc[-1]
        if not extra:
            return scores, dets
        out = {"clusters": clusters}
        if baseline:
            out["expected"] = expected
            out["scale"] = scale
        return scores, dets, out

    # ------------------------------------------------------------------ state
    def save(self, path) -> Path:
        """Checkpoint the state (:meth:`DetectorState.save`)."""
        return self.state.save(path)

    def load(self, path) -> None:
        """Restore a state saved by :meth:`save` for the same catalog, city and parameters."""
        st = DetectorState.load(path)
        ref = self.state
        for name, arr in ref.arrays().items():
            got = getattr(st, name)
            if got.shape != arr.shape or got.dtype != arr.dtype:
                raise ValueError(f"state {str(path)!r}: {name} is {got.dtype}{list(got.shape)}, this detector "
                                 f"needs {arr.dtype}{list(arr.shape)} (another catalog, city or parameters?)")
        self.state = st

    def to_dataarrays(self, score, detector, time=None):
        """``score`` and ``detector`` as xarray DataArrays (dims indicator, region) for a cycle Dataset."""
        import xarray as xr

        from engine.levels import CLEAR, CRITICAL, DETECTORS, WARN

        coords = {"indicator": self.ids, "region": self.region_ids}
        attrs = {"meaning": "1 - tail probability in the bad direction under the learned normal behaviour; "
                            "NaN = no opinion", "warn": WARN, "critical": CRITICAL, "clear": CLEAR}
        s = xr.DataArray(score, dims=("indicator", "region"), coords=coords, name="score", attrs=attrs)
        d = xr.DataArray(detector, dims=("indicator", "region"), coords=coords, name="detector",
                         attrs={"codes": str(DETECTORS)})
        if time is not None:
            s = s.assign_coords(time=_as_time(time))
            d = d.assign_coords(time=_as_time(time))
        return s, d
