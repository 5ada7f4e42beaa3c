"""Tests for engine.city.synthetic: the seeded synthetic district (geometry, population, tables)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine import geometry as geo
from engine.city import CAMERA_SITE_KINDS, SENSOR_KINDS, SITE_KINDS, City

from test_city_helpers import city  # noqa: F401  (fixture)


def containing_counts(city: City, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """How many polygons hold each point (vectorised ray casting, polygon by polygon)."""
    count = np.zeros(len(x), dtype=np.int64)
    for i in range(city.n_regions):
        ring = city.polygon(i)
        inside = np.zeros(len(x), dtype=bool)
        xj, yj = ring[-1]
        for xi, yi in ring:
            cross = (yi > y) != (yj > y)
            with np.errstate(divide="ignore", invalid="ignore"):
                hit = cross & (x < (xj - xi) * (y - yi) / (yj - yi) + xi)
            inside ^= hit
            xj, yj = xi, yi
        count += inside
    return count


def in_boundary_points(city: City, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    b = city.boundary_xy
    rng = np.random.default_rng(seed)
    pts = rng.uniform(b.min(0), b.max(0), (4 * n, 2))
    pts = pts[geo.points_in_convex(pts, b)][:n]
    return pts[:, 0], pts[:, 1]


# ----------------------------------------------------------------------------- synthetic district


def test_same_seed_same_city_different_seed_different(city):
    again = City.synthetic()
    assert again.fingerprint() == city.fingerprint()
    assert np.array_equal(again.poly_xy, city.poly_xy)
    assert again.sites.equals(city.sites) and again.enterprises.equals(city.enterprises)
    other = City.synthetic(seed=1)
    assert other.fingerprint() != city.fingerprint()
    assert not np.array_equal(other.regions["population"].to_numpy(), city.regions["population"].to_numpy())


def test_district_shape_and_place(city):
    assert city.kind == "districts" and city.levels == ["neighbourhood", "street", "district"]
    assert city.n_regions == 300 and len(city.streets) == 13
    assert city.region_index.tolist()[:2] == ["N0001", "N0002"] and city.regions.index.name == "region"
    assert city.streets.index.tolist()[0] == "S01" and city.streets["name"].str.endswith("街道").all()
    assert city.regions["name"].str.endswith("社区").all() and city.regions["name"].is_unique
    assert abs(city.regions["lon"].mean() - 114.30) < 0.05 and abs(city.regions["lat"].mean() - 30.60) < 0.05
    assert abs(city.regions["area_km2"].sum() - 80.0) < 1e-6
    for col in ["name", "street", "population", "area_km2", "lon", "lat", "x_m", "y_m"]:
        assert col in city.regions
    assert city.regions["population"].dtype == np.int64
    assert city.street_of.dtype == np.int64
    assert (city.streets.index[city.street_of] == city.regions["street"].to_numpy()).all()
    assert city.streets["population"].sum() == 1_100_000
    assert city.streets["n_neighbourhoods"].sum() == 300


@pytest.mark.parametrize("n,k,pop", [(300, 13, 1_100_000), (37, 5, 123_457), (10, 3, 7), (5, 1, 0), (1, 1, 999)])
def test_population_and_age_sum_exactly(n, k, pop):
    c = City.synthetic(seed=2, neighbourhoods=n, streets=k, population=pop)
    assert int(c.regions["population"].sum()) == pop
    assert c.age.shape == (n, 16) and c.age.dtype == np.int64 and (c.age >= 0).all()
    assert np.array_equal(c.age.sum(1), c.regions["population"].to_numpy())


def test_population_is_skewed_and_age_close_to_wuhan(city):
    pop = city.regions["population"].to_numpy()
    assert pop.max() > 2.5 * np.median(pop) and pop.min() > 0
    base = pd.read_csv(Path(__file__).parents[1] / "engine" / "data" / "prem" / "wuhanpop.csv")["propage"].to_numpy()
    share = city.age.sum(0) / city.age.sum()
    np.testing.assert_allclose(share, base / base.sum(), atol=0.01)
    # neighbourhoods differ in age structure
    old = city.age[:, 13:].sum(1) / pop
    assert old.std() > 0.01



def test_polygons_tile_the_boundary(city):
    areas = geo.polygon_areas(city.poly_xy, city.poly_offsets)
    bnd = geo.polygon_areas(city.boundary_xy, np.array([0, len(city.boundary_xy)]))[0]
    assert abs(areas.sum() - bnd) / bnd < 1e-6
    np.testing.assert_allclose(city.regions["area_km2"].to_numpy(), areas / 1e6, rtol=1e-12)
    x, y = in_boundary_points(city, 3000, seed=11)
    assert len(x) == 3000
    assert (containing_counts(city, x, y) == 1).all()


def test_polygons_ccw_convex_non_degenerate(city):
    assert city.poly_offsets.dtype == np.int64 and len(city.poly_offsets) == city.n_regions + 1
    assert city.poly_xy.dtype == np.float64 and city.poly_xy.shape[1] == 2
    deg = np.diff(city.poly_offsets)
    assert deg.min() >= 3
    assert (geo.polygon_areas(city.poly_xy, city.poly_offsets) > 1e3).all()  # > 0.001 km2
    assert geo.convex_simple_mask(city.poly_xy, city.poly_offsets).all()
    nxt = geo._next_index(city.poly_offsets)
    assert np.hypot(*(city.poly_xy[nxt] - city.poly_xy).T).min() >= 1e-3
    np.testing.assert_array_equal(city.polygon("N0002"), city.poly_xy[city.poly_offsets[1] : city.poly_offsets[2]])
    np.testing.assert_array_equal(city.polygon(1), city.polygon("N0002"))
    with pytest.raises(KeyError, match="unknown region 'X9'"):
        city.polygon("X9")
    with pytest.raises(IndexError, match="got 300"):
        city.polygon(300)


def test_adjacency_symmetric_and_matches_shared_edges(city):
    indptr, indices = city.adj_indptr, city.adj_indices
    assert indptr.dtype == np.int64 and indices.dtype == np.int64 and len(indptr) == city.n_regions + 1
    n = city.n_regions
    owner = np.repeat(np.arange(n), np.diff(indptr))
    pairs = set(zip(owner.tolist(), indices.tolist()))
    assert all((j, i) in pairs for i, j in pairs) and all(i != j for i, j in pairs)
    for i in range(n):
        nb = indices[indptr[i] : indptr[i + 1]]
        assert (np.diff(nb) > 0).all()
    degree = np.diff(indptr)
    assert degree.min() >= 1 and 5.0 < degree.mean() < 6.5
    # every labelled edge is an adjacency, every adjacency has a labelled edge on both sides
    off, xy, lab = city.poly_offsets, city.poly_xy, city.poly_edge_nbr
    nxt = geo._next_index(off)
    edge_owner = np.repeat(np.arange(n), np.diff(off))
    labelled = set(zip(edge_owner[lab >= 0].tolist(), lab[lab >= 0].tolist()))
    assert labelled == pairs
    # shared edges coincide (reversed) in both polygons
    for i, j in list(pairs)[:400]:
        ei = np.flatnonzero((edge_owner == i) & (lab == j))
        ej = np.flatnonzero((edge_owner == j) & (lab == i))
        assert len(ei) == 1 and len(ej) == 1
        a, b = xy[ei[0]], xy[nxt[ei[0]]]
        c, d = xy[ej[0]], xy[nxt[ej[0]]]
        assert np.abs(a - d).max() < 1e-6 and np.abs(b - c).max() < 1e-6
    # unlabelled edges lie on the district outline
    bd = city.boundary_xy
    outer = xy[lab < 0]
    bn = np.roll(bd, -1, axis=0)
    u = (bn - bd) / np.hypot(*(bn - bd).T)[:, None]
    dist = np.abs(u[None, :, 0] * (outer[:, None, 1] - bd[None, :, 1]) - u[None, :, 1] * (outer[:, None, 0] - bd[None, :, 0]))
    assert dist.min(1).max() < 1e-6
    assert city.neighbours("N0001") == [city.region_index[j] for j in indices[indptr[0] : indptr[1]]]


def test_streets_are_contiguous(city):
    for s in range(len(city.streets)):
        members = set(np.flatnonzero(city.street_of == s).tolist())
        assert members
        start = min(members)
        seen, stack = {start}, [start]
        while stack:
            u = stack.pop()
            for v in city.adj_indices[city.adj_indptr[u] : city.adj_indptr[u + 1]].tolist():
                if v in members and v not in seen:
                    seen.add(v)
                    stack.append(v)
        assert seen == members, f"street {city.streets.index[s]} is not contiguous"
    sizes = city.streets["n_neighbourhoods"].to_numpy()
    assert sizes.min() >= 8 and sizes.max() <= 50


def test_sites_enterprises_sensors_are_plausible(city):
    d = city.describe()
    for kind, spec in SITE_KINDS.items():
        assert d["sites"][kind] == spec.per_1m1
    s = city.sites
    assert s.index.is_unique and s.index.name == "site"
    assert set(s.columns) >= {"kind", "name", "region", "lon", "lat", "x_m", "y_m", "capacity", "fever_clinic"}
    assert s["capacity"].dtype == np.int64 and (s["capacity"] > 0).all()
    assert s.loc[s.kind == "mall", "capacity"].median() > 20 * s.loc[s.kind == "pharmacy", "capacity"].median()
    hosp = s[s.kind == "hospital"]
    assert 0.4 <= hosp["fever_clinic"].mean() <= 0.6 and not s.loc[s.kind != "hospital", "fever_clinic"].any()
    # every site lies in the polygon of its region
    where = city.locate(s["lon"], s["lat"])
    assert (city.region_index[where] == s["region"].to_numpy()).all()
    # gates follow population, offices concentrate in fewer neighbourhoods
    gates = s[s.kind == "compound_gate"].groupby("region").size().reindex(city.region_index, fill_value=0)
    assert np.corrcoef(gates.to_numpy(), city.regions["population"].to_numpy())[0, 1] > 0.6
    e = city.enterprises
    assert 11_000 <= len(e) <= 13_000 and e.index.is_unique
    assert set(e.columns) >= {"sector", "size", "employees", "region"} and e["employees"].dtype == np.int64
    assert 450_000 <= e["employees"].sum() <= 650_000
    share = e["sector"].value_counts(normalize=True)
    assert share[["F", "H", "L", "I"]].min() > 0.05 and share.reindex(list("ABT"), fill_value=0).max() < 0.01
    assert e["size"].isin(["micro", "small"]).mean() > 0.9
    for size, (lo, hi) in {"micro": (1, 9), "small": (10, 99), "medium": (100, 999), "large": (1000, 10**6)}.items():
        emp = e.loc[e["size"] == size, "employees"]
        assert emp.between(lo, hi).all()
    assert e["region"].isin(city.region_index).all()
    z = city.sensors
    cams = z[z.kind == "camera"]
    assert len(cams) == s.kind.isin(CAMERA_SITE_KINDS).sum()
    assert cams["site"].isin(s.index).all() and (z.loc[z.kind != "camera", "site"] == "").all()
    assert (cams["lon"].to_numpy() == s.loc[cams["site"], "lon"].to_numpy()).all()
    for kind, spec in SENSOR_KINDS.items():
        if spec.per_1m1:
            assert d["sensors"][kind] == spec.per_1m1
    assert (city.region_index[city.locate(z["lon"], z["lat"])] == z["region"].to_numpy()).all()


def test_counts_scale_with_population():
    c = City.synthetic(seed=0, neighbourhoods=30, streets=3, population=55_000)
    d = c.describe()
    assert d["sites"]["compound_gate"] == 40 and d["sites"]["hospital"] == 1 and d["sites"]["mall"] == 1
    assert c.sites.loc[c.sites.kind == "hospital", "fever_clinic"].all()  # the only hospital has one
    assert 500 <= len(c.enterprises) <= 700
    empty = City.synthetic(seed=0, neighbourhoods=4, streets=2, population=0)
    assert len(empty.enterprises) == 0 and (empty.describe()["sites"]["pharmacy"]) == 1



@pytest.mark.parametrize(
    "kwargs,exc,message",
    [
        (dict(neighbourhoods=0), ValueError, "neighbourhoods must be >= 1, got 0"),
        (dict(neighbourhoods=5, streets=6), ValueError, "streets must be <= neighbourhoods (5), got 6"),
        (dict(streets=0), ValueError, "streets must be >= 1, got 0"),
        (dict(population=-1), ValueError, "population must be >= 0, got -1"),
        (dict(seed=-3), ValueError, "seed must be >= 0, got -3"),
        (dict(seed=True), TypeError, "seed must be an integer, got True"),
        (dict(population=1.5), TypeError, "population must be an integer, got 1.5"),
        (dict(area_km2=0.0), ValueError, "area_km2 must be a positive number, got 0.0"),
    ],
)
def test_synthetic_rejects_bad_arguments(kwargs, exc, message):
    with pytest.raises(exc) as info:
        City.synthetic(**kwargs)
    assert str(info.value) == message


# ----------------------------------------------------------------------------- scale


@pytest.mark.slow
def test_large_district_is_complete():
    c = City.synthetic(seed=0, neighbourhoods=6000, streets=120, population=20_000_000)
    assert c.n_regions == 6000 and c.region_index[-1] == "N6000"
    assert int(c.regions["population"].sum()) == 20_000_000
    assert np.array_equal(c.age.sum(1), c.regions["population"].to_numpy())
    areas = geo.polygon_areas(c.poly_xy, c.poly_offsets)
    bnd = geo.polygon_areas(c.boundary_xy, np.array([0, len(c.boundary_xy)]))[0]
    assert abs(areas.sum() - bnd) / bnd < 1e-6 and (areas > 0).all()
    x, y = in_boundary_points(c, 20_000, seed=1)
    assert (c.locate_xy(x, y) >= 0).all()
    assert c.describe()["sites"]["street_shop"] == round(1500 * 20_000_000 / 1_100_000)
