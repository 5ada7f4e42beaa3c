"""Metapopulation mobility: commuting from home to work neighbourhoods, and visits to venues.

:func:`compile_city` turns a city (``engine.City`` or :class:`~engine.sim.minicity.MiniCity`) into
the arrays the epidemic kernels read (:class:`CityArrays`). :func:`daily_mobility` turns one day's
levers into per-link weights.

Commuting. Each enterprise's employees live in neighbourhoods chosen by a gravity model
(working-age residents times ``exp(-distance / commute_km)``); headcounts are scaled down where a
neighbourhood would supply more than ``employment_rate`` of its working-age residents. This gives
``workers[link, sector]`` for every (home, work) link. On a day with sector reopening shares
``phi``, ``active[link] = workers[link] @ phi`` commute. A resident of home ``r`` has work contacts
``C_work`` scaled by ``active[r -> k] / workforce[r]`` with the people present at ``k`` (so a
single neighbourhood with all sectors at share ``phi`` gives Prem et al.'s ``phi * C_work``).

Venues. Residents visit venues in their own neighbourhood (weight 1) and adjacent ones (weight
``neighbour_visit_weight``), in proportion to capacity. A venue's baseline peak load (share of
capacity) is proportional to its visitors per unit of capacity, scaled so that the median venue
runs at ``median_load``. On a day with "other" multiplier ``m``, crowd factor ``d`` (incidents) and
occupancy cap ``c``: demand ``load * m * d``, admitted share ``a = min(1, c / demand)``, occupancy
``demand * a``. Transmission per visitor grows with density (Chang et al. 2021): the exposure weight
of a visit is ``m * d * a * kappa`` with ``kappa = load * d * a / mean_load``. Without caps this is
linear in ``m`` (Prem et al.'s multiplier); a cap cuts infections by ``a**2`` but visits only by
``a``, and crowded venues weigh more than quiet ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from engine.sim.contacts import N_AGE
from engine.sim.params import MobilityParams
from engine.sim.policy import SECTORS, VENUE_KINDS

WORKING_BANDS = slice(4, 13)
"""Age bands 20-24 .. 60-64: the working-age residents."""


@dataclass
class CityArrays:
    """Everything the kernels need about the city, as arrays (see module docstring)."""

    region_ids: pd.Index
    n: np.ndarray                 # (R, 16) residents
    # commuting links, CSR by home region
    work_indptr: np.ndarray
    work_indices: np.ndarray      # work region of each link
    work_sector: np.ndarray       # (links, 20) workers per sector at full reopening
    workforce: np.ndarray         # (R,) workers living in each region at full reopening
    # venue visit links, CSR by home region
    venue_ids: pd.Index
    venue_region: np.ndarray      # (V,) region position
    venue_kind: np.ndarray        # (V,) index into VENUE_KINDS
    venue_capacity: np.ndarray    # (V,)
    venue_load: np.ndarray        # (V,) baseline peak load, share of capacity
    mean_load: float              # visit-weighted mean baseline load
    visit_indptr: np.ndarray
    visit_indices: np.ndarray     # venue of each link
    visit_share: np.ndarray       # share of the home region's visits going to that venue
    venue_share: np.ndarray       # (R,) share of "other" contacts made at venues
    visits_per_day: float

    @property
    def n_regions(self) -> int:
        return self.n.shape[0]

    @property
    def n_venues(self) -> int:
        return self.venue_region.shape[0]

    def region_pos(self, regions) -> np.ndarray:
        """Positions of region ids; ``ValueError`` naming the unknown ones."""
        regions = list(regions)
        pos = self.region_ids.get_indexer(regions)
        if (pos < 0).any():
            bad = [r for r, p in zip(regions, pos) if p < 0]
            raise ValueError(f"unknown region(s) {bad[:5]}: expected ids from city.regions.index")
        return pos.astype(np.int64)


def _positions(index: pd.Index, values, what: str) -> np.ndarray:
    values = pd.Index(values)
    pos = index.get_indexer(values)
    if (pos < 0).any():
        # a city may store positions instead of labels
        if np.issubdtype(values.dtype, np.integer) and values.min() >= 0 and values.max() < len(index):
            return values.to_numpy().astype(np.int64)
        bad = values[pos < 0][:5].tolist()
        raise ValueError(f"{what} refers to unknown region(s) {bad}")
    return pos.astype(np.int64)


def _csr(rows: np.ndarray, cols: np.ndarray, n_rows: int):
    order = np.lexsort((cols, rows))
    counts = np.bincount(rows, minlength=n_rows)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return indptr, order


def compile_city(city, mobility: MobilityParams | None = None) -> CityArrays:
    """Arrays for the kernels from a city object (see module docstring for the models).

    Examples
    --------
    >>> from engine.sim.minicity import MiniCity
    >>> arr = compile_city(MiniCity.uniform(n_regions=2, residents=1000))
    >>> arr.n.shape, arr.work_sector.shape[1], arr.n_venues
    ((2, 16), 20, 8)
    """
    mp = mobility or MobilityParams()
    regions = city.regions
    n = np.asarray(city.age, dtype=np.float64)
    R = len(regions)
    if n.shape != (R, N_AGE):
        raise ValueError(f"city.age must have shape ({R}, {N_AGE}), got {n.shape}")
    if (n < 0).any():
        raise ValueError("city.age has negative counts")
    if {"x_m", "y_m"} <= set(regions.columns):
        xy = regions[["x_m", "y_m"]].to_numpy(dtype=np.float64)
    else:
        xy = np.zeros((R, 2))

    # ---- commuting
    ent = city.enterprises
    working = n[:, WORKING_BANDS].sum(axis=1)
    if len(ent):
        k_pos = _positions(regions.index, ent["region"], "enterprises.region")
        sec = pd.Index(SECTORS).get_indexer(ent["sector"].astype(str))
        if (sec < 0).any():
            raise ValueError(f"enterprises.sector has unknown codes {sorted(set(ent['sector'][sec < 0]))[:5]}")
        emp = np.zeros((R, len(SECTORS)))
        np.add.at(emp, (k_pos, sec), ent["employees"].to_numpy(dtype=np.float64))
        work_regions = np.flatnonzero(emp.sum(axis=1) > 0)
        d = np.hypot(xy[:, None, 0] - xy[None, work_regions, 0], xy[:, None, 1] - xy[None, work_regions, 1])
        g = working[:, None] * np.exp(-d / (mp.commute_km * 1000.0))       # (R_home, K)
        colsum = g.sum(axis=0)
        g = np.divide(g, colsum, out=np.zeros_like(g), where=colsum > 0)
        flows = g[:, :, None] * emp[work_regions][None, :, :]               # (R, K, 20)
        supply = flows.sum(axis=(1, 2))
        limit = mp.employment_rate * working
        scale = np.divide(limit, supply, out=np.ones_like(supply), where=supply > limit)
        flows *= np.minimum(scale, 1.0)[:, None, None]
        tot = flows.sum(axis=2)
        rr, kk = np.nonzero(tot >= 0.5)
        w_indptr, order = _csr(rr, kk, R)
        w_indices = work_regions[kk[order]].astype(np.int64)
        w_sector = flows[rr[order], kk[order], :]
    else:
        w_indptr = np.zeros(R + 1, dtype=np.int64)
        w_indices = np.zeros(0, dtype=np.int64)
        w_sector = np.zeros((0, len(SECTORS)))
    workforce = np.zeros(R)
    np.add.at(workforce, np.repeat(np.arange(R), np.diff(w_indptr)), w_sector.sum(axis=1))

    # ---- venues
    sites = city.sites
    is_venue = sites["kind"].isin(mp.venue_kinds).to_numpy() & sites["kind"].isin(VENUE_KINDS).to_numpy()
    vs = sites[is_venue]
    v_region = _positions(regions.index, vs["region"], "sites.region")
    v_kind = pd.Index(VENUE_KINDS).get_indexer(vs["kind"]).astype(np.int64)
    cap = vs["capacity"].to_numpy(dtype=np.float64)
    if (cap <= 0).any():
        raise ValueError(f"venue capacities must be positive, got {cap[cap <= 0][:5].tolist()}")
    by_region = [[] for _ in range(R)]
    for v, r in enumerate(v_region):
        by_region[r].append(v)
    adj_ptr = np.asarray(city.adj_indptr, dtype=np.int64)
    adj_idx = np.asarray(city.adj_indices, dtype=np.int64)
    rows, cols, wts = [], [], []
    for r in range(R):
        cand = [(v, 1.0) for v in by_region[r]]
        for q in adj_idx[adj_ptr[r]:adj_ptr[r + 1]]:
            cand += [(v, mp.neighbour_visit_weight) for v in by_region[q]]
        if not cand:
            continue
        vv = np.array([c[0] for c in cand], dtype=np.int64)
        ww = np.array([c[1] for c in cand]) * cap[vv]
        rows.append(np.full(vv.size, r)), cols.append(vv), wts.append(ww / ww.sum())
    if rows:
        rows, cols, wts = np.concatenate(rows), np.concatenate(cols), np.concatenate(wts)
    else:
        rows = cols = np.zeros(0, dtype=np.int64)
        wts = np.zeros(0)
    v_indptr, order = _csr(rows.astype(np.int64), cols, R)
    v_indices, v_share = cols[order].astype(np.int64), wts[order]
    visitors = np.zeros(len(vs))
    np.add.at(visitors, v_indices, np.repeat(n.sum(axis=1), np.diff(v_indptr)) * mp.visits_per_day * v_share)
    ratio = visitors / cap if len(vs) else visitors
    pos_ratio = ratio[ratio > 0]
    load = mp.median_load * ratio / np.median(pos_ratio) if pos_ratio.size else ratio
    mean_load = float((visitors * load).sum() / visitors.sum()) if visitors.sum() > 0 else 1.0
    has_venue = np.diff(v_indptr) > 0
    return CityArrays(
        region_ids=regions.index, n=n,
        work_indptr=w_indptr, work_indices=w_indices, work_sector=w_sector, workforce=workforce,
        venue_ids=vs.index, venue_region=v_region, venue_kind=v_kind, venue_capacity=cap,
        venue_load=load, mean_load=mean_load, visit_indptr=v_indptr, visit_indices=v_indices,
        visit_share=v_share, venue_share=np.where(has_venue, mp.venue_share, 0.0),
        visits_per_day=mp.visits_per_day)


@dataclass
class DayMobility:
    """One day's link weights and mobility quantities."""

    work_m: np.ndarray            # (work links,) active commuters on the link
    work_e: np.ndarray            # (work links,) exposure weight: active / workforce of home
    visit_m: np.ndarray           # (visit links,) visitors on the link
    visit_e: np.ndarray           # (visit links,) exposure weight of the link
    workers_home: np.ndarray      # (R,) active commuters living in each region
    workers_at: np.ndarray        # (R,) active workers present in each region
    venue_visitors: np.ndarray    # (V,) visitors per day
    venue_occupancy: np.ndarray   # (V,) peak occupancy, share of capacity
    venue_admitted: np.ndarray    # (V,) share of demand admitted under the cap


def daily_mobility(arr: CityArrays, sector_share: np.ndarray, other: float, venue_cap: np.ndarray,
                   venue_demand: np.ndarray | None = None) -> DayMobility:
    """Link weights for one day from the levers (``venue_cap`` per venue kind, ``inf`` = no cap;
    ``venue_demand`` an optional per-venue crowd factor, 1 = normal).

    >>> from engine.sim.minicity import MiniCity
    >>> arr = compile_city(MiniCity.uniform(n_regions=1, residents=10_000))
    >>> full = daily_mobility(arr, np.ones(20), 1.0, np.full(4, np.inf))
    >>> half = daily_mobility(arr, np.full(20, 0.5), 1.0, np.full(4, np.inf))
    >>> bool(np.isclose(half.workers_home.sum(), full.workers_home.sum() / 2))
    True
    """
    R = arr.n_regions
    home_of_work = np.repeat(np.arange(R), np.diff(arr.work_indptr))
    # einsum, not BLAS: a multithreaded BLAS mat-vec here oversubscribes the cores of ensembles
    work_m = np.einsum("ls,s->l", arr.work_sector, np.asarray(sector_share, dtype=np.float64))
    wf = arr.workforce[home_of_work]
    work_e = np.divide(work_m, wf, out=np.zeros_like(work_m), where=wf > 0)
    workers_home = np.bincount(home_of_work, weights=work_m, minlength=R)
    workers_at = np.bincount(arr.work_indices, weights=work_m, minlength=R)

    d = np.ones(arr.n_venues) if venue_demand is None else np.asarray(venue_demand, dtype=np.float64)
    cap = np.asarray(venue_cap, dtype=np.float64)[arr.venue_kind]
    demand = arr.venue_load * other * d
    admitted = np.where(demand > cap, np.divide(cap, demand, out=np.zeros_like(demand), where=demand > 0), 1.0)
    occupancy = demand * admitted
    kappa = arr.venue_load * d * admitted / arr.mean_load
    home_of_visit = np.repeat(np.arange(R), np.diff(arr.visit_indptr))
    v = arr.visit_indices
    visit_m = arr.n.sum(axis=1)[home_of_visit] * arr.visits_per_day * arr.visit_share * other * d[v] * admitted[v]
    visit_e = arr.visit_share * other * d[v] * admitted[v] * kappa[v]
    venue_visitors = np.bincount(v, weights=visit_m, minlength=arr.n_venues)
    return DayMobility(work_m, work_e, visit_m, visit_e, workers_home, workers_at, venue_visitors,
                       occupancy, admitted)
