"""The synthetic district generator behind :meth:`City.synthetic`.

A convex outline tiled by Lloyd-relaxed Voronoi cells, streets grown from k-means centres,
lognormal population with a Wuhan-like age structure, and sites, enterprises and sensors placed
inside the polygons, all from one seed.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import pandas as pd

from engine import geometry as geo
from engine.city.checks import _check_int
from engine.city.model import City
from engine.city.naming import _SUFFIXES, _ids, _names
from engine.city.population import _apportion, _apportion_rows, _base_age_proportions
from engine.city.projection import _DEFAULT_ORIGIN, _scales
from engine.city.vocab import CAMERA_SITE_KINDS, SECTOR_CODES, SENSOR_KINDS, SITE_KINDS, SIZES


# Share of enterprises by section in an inner-city district (few A/B/T, many F/H/L/I).
_SECTOR_SHARE = dict(
    A=0.002, B=0.0005, C=0.035, D=0.003, E=0.05, F=0.30, G=0.04, H=0.12, I=0.08, J=0.025,
    K=0.04, L=0.12, M=0.045, N=0.008, O=0.065, P=0.025, Q=0.015, R=0.02, S=0.0065, T=0.0005,
)
# Sections whose firms run larger (plants, utilities, banks, schools, hospitals, government).
_BIG_SECTORS = set("BCDGJPQS")
# Sections that cluster in the central business area.
_CENTRAL_SECTORS = set("IJKLM")

_SIZE_P_DEFAULT = np.array([0.67, 0.285, 0.04, 0.005])
_SIZE_P_BIG = np.array([0.42, 0.40, 0.155, 0.025])
_LARGE_MAX = 12_000

_REF_POPULATION = 1_100_000
_REF_ENTERPRISES = 12_000
_REF_AREA_KM2 = 80.0  # for 300 neighbourhoods


def synthetic_district(seed, neighbourhoods, streets, population, *, area_km2, name) -> City:
    """Check the arguments of :meth:`City.synthetic` and generate the district."""
    seed = _check_int("seed", seed, lo=0)
    n = _check_int("neighbourhoods", neighbourhoods, lo=1, hi=1_000_000)
    k = _check_int("streets", streets, lo=1)
    if k > n:
        raise ValueError(f"streets must be <= neighbourhoods ({n}), got {k}")
    population = _check_int("population", population, lo=0)
    if area_km2 is None:
        area_km2 = _REF_AREA_KM2 * n / 300.0
    if not (isinstance(area_km2, numbers.Real) and math.isfinite(area_km2) and area_km2 > 0):
        raise ValueError(f"area_km2 must be a positive number, got {area_km2!r}")
    return _synthesize(seed, n, k, population, float(area_km2), str(name))


def _district_outline(rng: np.random.Generator, area_m2: float) -> np.ndarray:
    """A convex, slightly irregular outline of the given area (metres, centred at 0, CCW)."""
    m = 24
    ang = np.sort(rng.uniform(0, 2 * np.pi, m) * 0.15 + np.linspace(0, 2 * np.pi, m, endpoint=False))
    aspect = rng.uniform(1.1, 1.5)
    rad = 1.0 + 0.08 * rng.standard_normal(m)
    pts = np.column_stack([aspect * rad * np.cos(ang), rad * np.sin(ang) / aspect])
    rot = rng.uniform(0, np.pi)
    c, s = math.cos(rot), math.sin(rot)
    pts = pts @ np.array([[c, s], [-s, c]])
    hull = geo.convex_hull(pts)
    a = geo.polygon_areas(hull, np.array([0, len(hull)]))[0]
    hull = hull * math.sqrt(area_m2 / a)
    cen = geo.polygon_centroids(hull, np.array([0, len(hull)]))[0]
    return hull - cen


def _uniform_in(rng: np.random.Generator, poly: np.ndarray, n: int) -> np.ndarray:
    lo, hi = poly.min(0), poly.max(0)
    out = np.zeros((0, 2))
    while len(out) < n:
        cand = lo + rng.random((max(2 * (n - len(out)), 16), 2)) * (hi - lo)
        out = np.concatenate([out, cand[geo.points_in_convex(cand, poly)]])
    return out[:n]


def _reorder_polygons(xy, offsets, nbr, perm):
    """Polygons in the order ``perm`` (new position -> old), neighbour labels renumbered."""
    inv = np.empty_like(perm)
    inv[perm] = np.arange(len(perm))
    deg = np.diff(offsets)[perm]
    new_off = np.concatenate([[0], np.cumsum(deg)]).astype(np.int64)
    src = np.repeat(offsets[:-1][perm], deg) + (np.arange(int(deg.sum())) - np.repeat(new_off[:-1], deg))
    lab = nbr[src]
    lab = np.where(lab >= 0, inv[np.maximum(lab, 0)], -1)
    return xy[src], new_off, lab


def _weights(kind: str, pop, area, central, elderly) -> np.ndarray:
    if kind == "population":
        w = pop.astype(np.float64)
    elif kind == "centre":
        w = area * central
    elif kind == "mixed":
        w = pop * (0.3 + central)
    elif kind == "elderly":
        w = elderly.astype(np.float64)
    else:  # area
        w = area.astype(np.float64)
    if not w.sum() > 0:
        w = area.astype(np.float64)
    return w / w.sum()


def _synthesize(seed: int, n: int, k: int, population: int, area_km2: float, name: str) -> City:
    ss = np.random.SeedSequence([seed, 20200123])
    (r_outline, r_seeds, r_streets, r_pop, r_age, r_names, r_sites, r_ent, r_sens) = (
        np.random.default_rng(s) for s in ss.spawn(9)
    )
    lon0, lat0 = _DEFAULT_ORIGIN
    kx, ky = _scales(lat0)

    # geometry: outline, relaxed seeds, Voronoi cells; canonical lon/lat, x/y derived from them
    outline = _district_outline(r_outline, area_km2 * 1e6)
    seeds = _uniform_in(r_seeds, outline, n)
    for _ in range(2):  # Lloyd relaxation
        xy, off, nbr = geo.voronoi_cells(seeds, outline)
        seeds = geo.polygon_centroids(xy, off)
    xy, off, nbr = geo.voronoi_cells(seeds, outline)
    cent = geo.polygon_centroids(xy, off)

    # streets: k-means centres, contiguous groups grown over the adjacency graph
    indptr, indices = geo.adjacency_from_edges(nbr, off)
    centres = geo.kmeans(cent, k, r_streets)
    order_ang = np.argsort(np.arctan2(centres[:, 0], centres[:, 1]) % (2 * np.pi), kind="stable")
    centres = centres[order_ang]  # clockwise from north
    group = geo.grow_regions(cent, indptr, indices, centres)
    # neighbourhood order: by street, then north to south, west to east
    perm = np.lexsort((cent[:, 0], -cent[:, 1], group))
    xy, off, nbr = _reorder_polygons(xy, off, nbr, perm)
    group = group[perm]

    def to_ll(p):
        return np.column_stack([p[:, 0] / kx + lon0, p[:, 1] / ky + lat0])

    poly_ll = to_ll(xy)
    boundary_ll = to_ll(outline)
    poly_xy = np.column_stack([(poly_ll[:, 0] - lon0) * kx, (poly_ll[:, 1] - lat0) * ky])
    areas = geo.polygon_areas(poly_xy, off)
    cxy = geo.polygon_centroids(poly_xy, off)
    cll = to_ll(cxy)

    # population: lognormal, more in larger cells, denser toward the centre
    mean_area = areas.mean()
    d_centre = np.hypot(cxy[:, 0], cxy[:, 1])
    radius = math.sqrt(area_km2 * 1e6 / math.pi)
    w = np.exp(0.55 * r_pop.standard_normal(n)) * (areas / mean_area) ** 0.6 * (1.25 - 0.5 * np.minimum(d_centre / radius, 1.0))
    pop = _apportion(population, w)

    # age: Wuhan proportions tilted older or younger per neighbourhood, Dirichlet noise
    base = _base_age_proportions()
    z = (np.arange(16) - 7.5) / 4.6
    tilt = r_age.normal(0.0, 0.22, n)
    p = base[None, :] * np.exp(tilt[:, None] * z[None, :])
    p /= p.sum(1, keepdims=True)
    g = r_age.gamma(400.0 * p)  # Dirichlet(400 p) row by row
    p = g / g.sum(1, keepdims=True)
    age = _apportion_rows(pop, p)

    region_ids = _ids("N", n, 4)
    street_ids = _ids("S", k, 2)
    names = _names(r_names, n, _SUFFIXES, "社区")
    street_names = _names(r_names, k, None, "街道")
    regions = pd.DataFrame(
        {
            "name": names,
            "street": [street_ids[s] for s in group.tolist()],
            "population": pop,
            "area_km2": areas / 1e6,
            "lon": cll[:, 0],
            "lat": cll[:, 1],
        },
        index=pd.Index(region_ids, name="region"),
    )
    streets_t = pd.DataFrame({"name": street_names}, index=pd.Index(street_ids, name="street"))

    # centrality for offices, malls, hotels: distance to a central business point
    cbd = cxy[np.argmin(np.hypot(cxy[:, 0] - 0.15 * radius * r_sites.standard_normal(),
                                 cxy[:, 1] - 0.15 * radius * r_sites.standard_normal()))]
    central = np.exp(-((np.hypot(cxy[:, 0] - cbd[0], cxy[:, 1] - cbd[1]) / (0.45 * radius)) ** 2))
    elderly = age[:, 13:].sum(1)
    scale = population / _REF_POPULATION

    # sites
    parts = []
    for kind in SITE_KINDS.values():
        c = max(1, int(round(kind.per_1m1 * scale)))
        where = np.sort(r_sites.choice(n, size=c, p=_weights(kind.placement, pop, areas, central, elderly)))
        pts = geo.sample_in_polygons(r_sites, poly_xy, off, where)
        if kind.id == "compound_gate":
            per_region = np.bincount(where, minlength=n)
            cap = np.maximum(1, np.round(pop[where] / per_region[where])).astype(np.int64)
        else:
            cap = np.clip(np.round(kind.capacity * np.exp(0.35 * r_sites.standard_normal(c))),
                          max(1, kind.capacity // 5), kind.capacity * 5).astype(np.int64)
        fever = np.zeros(c, dtype=bool)
        if kind.id == "hospital":
            fever[np.argsort(-cap, kind="stable")[: (c + 1) // 2]] = True
        ll = to_ll(pts)
        rank = pd.Series(where).groupby(where).cumcount().to_numpy() + 1
        many = np.bincount(where, minlength=n)[where] > 1
        site_names = [
            f"{names[r][:-2]}{kind.zh}" + (f"{j}号" if m else "")
            for r, j, m in zip(where.tolist(), rank.tolist(), many.tolist())
        ]
        parts.append(pd.DataFrame(
            {"kind": kind.id, "name": site_names, "region": [region_ids[r] for r in where.tolist()],
             "lon": ll[:, 0], "lat": ll[:, 1], "capacity": cap, "fever_clinic": fever},
            index=_ids(f"{kind.id}-", c, 4),
        ))
    sites = pd.concat(parts)
    sites.index.name = "site"

    # enterprises
    ne = int(round(_REF_ENTERPRISES * scale))
    ne = max(ne, 1) if population > 0 else 0
    shares = np.array([_SECTOR_SHARE[c] for c in SECTOR_CODES])
    sector = r_ent.choice(20, size=ne, p=shares / shares.sum())
    big = np.isin(sector, [SECTOR_CODES.index(c) for c in _BIG_SECTORS])
    u = r_ent.random(ne)
    size = np.where(big, np.searchsorted(np.cumsum(_SIZE_P_BIG), u, side="right"),
                    np.searchsorted(np.cumsum(_SIZE_P_DEFAULT), u, side="right"))
    size = np.minimum(size, 3)
    lo = np.array([1, 10, 100, 1000])[size].astype(np.float64)
    hi = np.array([9, 99, 999, _LARGE_MAX])[size].astype(np.float64)
    v = r_ent.random(ne)  # truncated 1/x^2 law within each size class
    emp = np.floor(1.0 / (1.0 / lo - v * (1.0 / lo - 1.0 / (hi + 1)))).astype(np.int64)
    emp = np.clip(emp, lo.astype(np.int64), hi.astype(np.int64))
    is_central = np.isin(sector, [SECTOR_CODES.index(c) for c in _CENTRAL_SECTORS])
    w_res = _weights("mixed", pop, areas, central, elderly)
    w_cen = _weights("centre", pop, areas, central, elderly)
    ereg = np.where(is_central, r_ent.choice(n, size=ne, p=w_cen), r_ent.choice(n, size=ne, p=w_res))
    eorder = np.lexsort((np.arange(ne), ereg))
    size_names = np.array(list(SIZES))
    enterprises = pd.DataFrame(
        {
            "sector": np.array(SECTOR_CODES, dtype=object)[sector[eorder]],
            "size": size_names[size[eorder]].astype(object),
            "employees": emp[eorder],
            "region": np.array(region_ids, dtype=object)[ereg[eorder]],
        },
        index=pd.Index(_ids("E", ne, 6), name="enterprise"),
    )

    # sensors
    sparts = []
    for kind in SENSOR_KINDS.values():
        if kind.per_1m1 is None:
            cams = sites[sites["kind"].isin(CAMERA_SITE_KINDS)]
            sparts.append(pd.DataFrame(
                {"kind": kind.id, "region": cams["region"].to_numpy(), "site": cams.index.to_numpy(),
                 "lon": cams["lon"].to_numpy(), "lat": cams["lat"].to_numpy()},
                index=_ids(f"{kind.id}-", len(cams), 4),
            ))
            continue
        c = max(1, int(round(kind.per_1m1 * scale)))
        where = np.sort(r_sens.choice(n, size=c, p=_weights(kind.placement, pop, areas, central, elderly)))
        ll = to_ll(geo.sample_in_polygons(r_sens, poly_xy, off, where))
        sparts.append(pd.DataFrame(
            {"kind": kind.id, "region": [region_ids[r] for r in where.tolist()], "site": "",
             "lon": ll[:, 0], "lat": ll[:, 1]},
            index=_ids(f"{kind.id}-", c, 4),
        ))
    sensors = pd.concat(sparts)
    sensors.index.name = "sensor"

    return City(
        name=name, kind="districts", origin=(lon0, lat0), regions=regions, streets=streets_t, age=age,
        poly_lonlat=poly_ll, poly_offsets=off, boundary_lonlat=boundary_ll, sites=sites,
        enterprises=enterprises, sensors=sensors, adjacency=geo.adjacency_from_edges(nbr, off), edge_nbr=nbr,
    )
