"""Tests for engine.city: the synthetic district, grid cities, locate, files, fingerprint, CLI."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import geometry as geo
from engine.city import (
    AGE_BANDS,
    AGE_COLUMNS,
    CAMERA_SITE_KINDS,
    SECTORS,
    SENSOR_KINDS,
    SITE_KINDS,
    City,
    CityFileError,
)
from engine.cli import main as cli_main


def reference_locate(px: float, py: float, xy: np.ndarray, offsets: np.ndarray) -> int:
    """Slow, obvious ray casting: the first polygon (by id) whose ring holds the point."""
    for p in range(len(offsets) - 1):
        ring = xy[offsets[p] : offsets[p + 1]].tolist()
        inside = False
        j = len(ring) - 1
        for i in range(len(ring)):
            xi, yi = ring[i]
            xj, yj = ring[j]
            if (yi > py) != (yj > py):
                if px < (xj - xi) * (py - yi) / (yj - yi) + xi:
                    inside = not inside
            j = i
        if inside:
            return p
    return -1


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


@pytest.fixture(scope="module")
def city() -> City:
    return City.synthetic()


@pytest.fixture(scope="module")
def small() -> City:
    return City.synthetic(seed=5, neighbourhoods=40, streets=4, population=150_000)


@pytest.fixture(scope="module")
def gridcity() -> City:
    return City.grid((114.25, 30.55, 114.31, 30.60), cell_m=500, block_cells=3, street_blocks=2, population=10_007)


# ----------------------------------------------------------------------------- vocabulary


def test_vocabulary_constants():
    assert AGE_BANDS[:3] == ["0-4", "5-9", "10-14"] and AGE_BANDS[-2:] == ["70-74", "75+"] and len(AGE_BANDS) == 16
    assert AGE_COLUMNS[0] == "age_0_4" and AGE_COLUMNS[-1] == "age_75_plus" and len(AGE_COLUMNS) == 16
    assert [s.code for s in SECTORS] == list("ABCDEFGHIJKLMNOPQRST")
    code, zh, en = SECTORS[2]
    assert (code, zh, en) == ("C", "制造业", "manufacturing")
    assert SECTORS[-1].zh == "国际组织"
    assert list(SITE_KINDS) == [
        "pharmacy", "compound_gate", "mall", "wet_market", "supermarket", "restaurant", "street_shop",
        "office_building", "construction_site", "metro_station", "school", "hospital", "elderly_care", "hotel",
    ]
    assert SITE_KINDS["compound_gate"].zh == "小区门岗" and SITE_KINDS["street_shop"].per_1m1 == 1500
    assert list(SENSOR_KINDS) == [
        "road_segment", "water_meter", "power_meter", "gas_meter", "drainage_gauge", "lift_monitor",
        "air_monitor", "noise_monitor", "camera",
    ]
    assert SENSOR_KINDS["camera"].zh == "视频监控点"


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


def test_projection_round_trip_and_scale(city):
    x, y = city.to_xy(city.lon0, city.lat0)
    assert float(x) == 0.0 and float(y) == 0.0
    _, y1 = city.to_xy(city.lon0, city.lat0 + 1.0)
    assert abs(float(y1) - 111_195) < 10
    lon = np.linspace(114.2, 114.4, 12).reshape(3, 4)
    lat = np.linspace(30.5, 30.7, 12).reshape(3, 4)
    back = city.to_lonlat(*city.to_xy(lon, lat))
    assert back[0].shape == (3, 4)
    np.testing.assert_allclose(back[0], lon, atol=1e-12)
    np.testing.assert_allclose(back[1], lat, atol=1e-12)
    xm, ym = city.to_xy(city.regions["lon"], city.regions["lat"])
    assert np.array_equal(xm, city.regions["x_m"].to_numpy()) and np.array_equal(ym, city.regions["y_m"].to_numpy())


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


def test_describe_keys(small):
    d = small.describe()
    assert set(d) == {"name", "kind", "neighbourhoods", "streets", "population", "area_km2", "sites", "enterprises",
                      "sensors", "fingerprint"}
    assert d["neighbourhoods"] == 40 and d["streets"] == 4 and d["population"] == 150_000
    assert list(d["enterprises"]) == [s.code for s in SECTORS] and list(d["sites"]) == list(SITE_KINDS)
    assert d["fingerprint"] == small.fingerprint() and len(d["fingerprint"]) == 64
    json.dumps(d)


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


# ----------------------------------------------------------------------------- locate


def test_locate_agrees_with_reference_on_random_points(city):
    rng = np.random.default_rng(9)
    b = city.boundary_xy
    x = rng.uniform(b[:, 0].min() - 300, b[:, 0].max() + 300, 250)
    y = rng.uniform(b[:, 1].min() - 300, b[:, 1].max() + 300, 250)
    lon, lat = city.to_lonlat(x, y)
    got = city.locate(lon, lat)
    assert got.dtype == np.int64
    xx, yy = city.to_xy(lon, lat)
    want = [reference_locate(a, c, city.poly_xy, city.poly_offsets) for a, c in zip(xx.tolist(), yy.tolist())]
    assert got.tolist() == want
    assert (got == -1).any() and (got >= 0).any()


@settings(max_examples=40, deadline=None)
@given(points=st.lists(st.tuples(st.floats(114.27, 114.33), st.floats(30.575, 30.625)), min_size=1, max_size=30))
def test_locate_matches_reference_hypothesis(small, points):
    c = small
    lon = np.array([p[0] for p in points])
    lat = np.array([p[1] for p in points])
    x, y = c.to_xy(lon, lat)
    want = [reference_locate(a, b, c.poly_xy, c.poly_offsets) for a, b in zip(x.tolist(), y.tolist())]
    assert c.locate(lon, lat).tolist() == want


def test_locate_centroids_nan_and_shapes(small):
    got = small.locate(small.regions["lon"], small.regions["lat"])
    assert got.tolist() == list(range(small.n_regions))
    out = small.locate(np.array([[np.nan, small.regions["lon"].iloc[3]]]), np.array([[30.6, small.regions["lat"].iloc[3]]]))
    assert out.tolist() == [[-1, 3]]
    assert small.locate(114.30, 0.0).tolist() == -1
    with pytest.raises(ValueError, match="lon and lat must have the same shape"):
        small.locate([114.3, 114.3], [30.6])


# ----------------------------------------------------------------------------- grid cities


def test_grid_city_hierarchy(gridcity):
    g = gridcity
    spec = g.grid_spec
    assert g.kind == "grid" and g.levels == ["cell", "block", "street", "district"]
    assert g.n_regions == spec.nx * spec.ny and (spec.nx, spec.ny) == (12, 12)
    assert g.region_index[0] == "G000001" and g.region_index[-1] == f"G{spec.nx * spec.ny:06d}"
    pos = np.arange(g.n_regions)
    row, col = pos // spec.nx, pos % spec.nx
    block = (row // 3) * 4 + col // 3
    assert (g.regions["block"].to_numpy() == g.blocks.index[block].to_numpy()).all()
    street = (row // 6) * 2 + col // 6
    assert (g.street_of == street).all()
    assert len(g.blocks) == 16 and len(g.streets) == 4
    assert (g.blocks["street"].to_numpy() == g.streets.index[(np.arange(16) // 8) * 2 + (np.arange(16) % 4) // 2]).all()
    assert g.blocks["n_cells"].tolist() == [9] * 16 and g.streets["n_neighbourhoods"].tolist() == [36] * 4
    pop = g.regions["population"].to_numpy()
    assert pop.sum() == 10_007 and pop.max() - pop.min() <= 1
    assert np.array_equal(g.age.sum(1), pop)
    np.testing.assert_allclose(g.regions["area_km2"], 0.25)
    assert g.blocks["population"].sum() == 10_007 and g.streets["population"].sum() == 10_007
    assert g.neighbours("G000001") == ["G000002", "G000013"]
    assert g.neighbours(13) == ["G000002", "G000013", "G000015", "G000026"]
    none = City.grid((114.25, 30.55, 114.31, 30.60), cell_m=500)
    assert none.regions["population"].sum() == 0 and len(none.sites) == 0 and none.describe()["blocks"] == 4


def test_grid_city_locate_and_tiling(gridcity):
    g = gridcity
    areas = geo.polygon_areas(g.poly_xy, g.poly_offsets)
    np.testing.assert_allclose(areas, 250_000.0)
    assert abs(areas.sum() - geo.polygon_areas(g.boundary_xy, np.array([0, 4]))[0]) < 1e-3
    rng = np.random.default_rng(4)
    b = g.boundary_xy
    x = rng.uniform(b[:, 0].min() - 200, b[:, 0].max() + 200, 400)
    y = rng.uniform(b[:, 1].min() - 200, b[:, 1].max() + 200, 400)
    lon, lat = g.to_lonlat(x, y)
    got = g.locate(lon, lat)
    xx, yy = g.to_xy(lon, lat)
    want = [reference_locate(a, c, g.poly_xy, g.poly_offsets) for a, c in zip(xx.tolist(), yy.tolist())]
    assert got.tolist() == want
    assert g.locate([114.2501], [30.5501]).tolist() == [0]
    # the bbox is covered
    assert (g.locate(np.array([114.2501, 114.3099]), np.array([30.5999, 30.5501])) >= 0).all()


def test_grid_over_a_city_extent_at_1km():
    t = time.perf_counter()
    g = City.grid((113.70, 29.97, 115.08, 31.36), cell_m=1000, population=11_000_000)
    assert time.perf_counter() - t < 5
    assert 19_000 < g.n_regions < 22_000
    assert g.regions["population"].sum() == 11_000_000
    rng = np.random.default_rng(0)
    lon, lat = rng.uniform(113.7, 115.08, 1000), rng.uniform(29.97, 31.36, 1000)
    cell = g.locate(lon, lat)
    assert (cell >= 0).all()
    x, y = g.to_xy(lon, lat)
    assert (np.abs(x - g.regions["x_m"].to_numpy()[cell]) <= 500 + 1e-6).all()
    assert (np.abs(y - g.regions["y_m"].to_numpy()[cell]) <= 500 + 1e-6).all()


@pytest.mark.parametrize(
    "args,kwargs,message",
    [
        (((114.3, 30.5, 114.2, 30.6),), {}, "lon_min < lon_max"),
        (((114.2, 30.5, 114.3),), {}, "bbox must be (lon_min, lat_min, lon_max, lat_max)"),
        (((114.2, 30.5, 114.3, 30.6),), dict(cell_m=0), "cell_m must be a positive number of metres, got 0"),
        (((114.2, 30.5, 114.3, 30.6),), dict(block_cells=0), "block_cells must be >= 1, got 0"),
        (((114.2, 30.5, 114.3, 30.6),), dict(population=-5), "population must be >= 0, got -5"),
        (((100.0, 20.0, 120.0, 40.0),), dict(cell_m=10), "more than 4,000,000"),
    ],
)
def test_grid_rejects_bad_arguments(args, kwargs, message):
    with pytest.raises(ValueError) as info:
        City.grid(*args, **kwargs)
    assert message in str(info.value)


# ----------------------------------------------------------------------------- files


def assert_same_city(a: City, b: City) -> None:
    assert a.fingerprint() == b.fingerprint()
    for name in ("poly_xy", "poly_offsets", "poly_edge_nbr", "adj_indptr", "adj_indices", "age", "boundary_xy", "street_of"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    for name in ("regions", "streets", "sites", "enterprises", "sensors"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), check_dtype=False, check_index_type=False)
    assert (a.name, a.kind, a.lon0, a.lat0, a.levels) == (b.name, b.kind, b.lon0, b.lat0, b.levels)


@pytest.mark.parametrize("fmt", ["geojson", "csv"])
def test_save_load_round_trip_synthetic(city, tmp_path, fmt):
    city.save(tmp_path, regions_format=fmt)
    assert (tmp_path / f"regions.{fmt}").exists()
    assert {p.name for p in tmp_path.iterdir()} >= {"city.json", "streets.csv", "sites.csv", "enterprises.csv", "sensors.csv"}
    loaded = City.load(tmp_path)
    assert_same_city(city, loaded)
    # saving again over the same folder switches format cleanly and stays identical
    loaded.save(tmp_path, regions_format="csv" if fmt == "geojson" else "geojson")
    assert_same_city(city, City.load(tmp_path))


def test_save_load_round_trip_grid(gridcity, tmp_path):
    gridcity.save(tmp_path)
    assert (tmp_path / "blocks.csv").exists()
    loaded = City.load(tmp_path)
    assert_same_city(gridcity, loaded)
    pd.testing.assert_frame_equal(gridcity.blocks, loaded.blocks, check_dtype=False)
    assert loaded.grid_spec == gridcity.grid_spec
    assert loaded.locate([114.2501], [30.5501]).tolist() == [0]


def test_load_user_csv_without_polygons(tmp_path):
    (tmp_path / "regions.csv").write_text(
        "id,name,street,population,lon,lat,area_km2\n"
        "A1,甲社区,S1,1200,114.30,30.60,0.5\n"
        "A2,乙社区,S1,800,114.31,30.60,0.4\n"
        "B1,丙社区,S2,0,114.32,30.61,0.3\n",
        encoding="utf-8",
    )
    c = City.load(tmp_path)
    assert c.region_index.tolist() == ["A1", "A2", "B1"] and c.streets.index.tolist() == ["S1", "S2"]
    assert c.regions["population"].tolist() == [1200, 800, 0]
    assert np.array_equal(c.age.sum(1), [1200, 800, 0])
    assert not c.has_polygons and c.neighbours("A1") == []
    assert c.name == tmp_path.name and c.kind == "districts"
    with pytest.raises(ValueError, match="has no region polygons"):
        c.locate([114.3], [30.6])
    out = tmp_path / "again"
    c.save(out)
    assert (out / "regions.csv").exists() and not (out / "regions.geojson").exists()
    assert_same_city(c, City.load(out))


def test_load_user_geojson_minimal(tmp_path):
    # two unit-ish squares sharing an edge; the second ring is clockwise and closed
    a = [[114.30, 30.60], [114.31, 30.60], [114.31, 30.61], [114.30, 30.61], [114.30, 30.60]]
    b = [[114.31, 30.60], [114.31, 30.61], [114.32, 30.61], [114.32, 30.60], [114.31, 30.60]]
    feats = [
        {"type": "Feature", "properties": {"id": "X", "street": "S", "population": 10}, "geometry": {"type": "Polygon", "coordinates": [a]}},
        {"type": "Feature", "properties": {"id": "Y", "street": "S", "population": 20}, "geometry": {"type": "Polygon", "coordinates": [b]}},
    ]
    for f in feats:  # ids at feature level (RFC 7946) are read too
        f["id"] = f["properties"].pop("id")
    (tmp_path / "regions.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    (tmp_path / "sites.csv").write_text("id,kind,lon,lat\np1,pharmacy,114.315,30.605\n")
    c = City.load(tmp_path)
    assert c.neighbours("X") == ["Y"] and c.neighbours("Y") == ["X"]
    assert (geo.polygon_areas(c.poly_xy, c.poly_offsets) > 0).all()  # the clockwise ring was turned
    assert c.locate([114.305, 114.315, 114.4], [30.605, 30.605, 30.605]).tolist() == [0, 1, -1]
    assert c.sites.loc["p1", "region"] == "Y" and c.sites.loc["p1", "capacity"] == 0
    np.testing.assert_allclose(c.regions["area_km2"].sum(), 2 * 0.01 * 111.195 * 0.01 * 111.195 * np.cos(np.radians(30.605)), rtol=1e-3)
    assert c.regions.loc["X", "name"] == "X"


# ----------------------------------------------------------------------------- file errors


@pytest.fixture(scope="module")
def saved_csv(tmp_path_factory, small) -> Path:
    d = tmp_path_factory.mktemp("city_csv")
    small.save(d, regions_format="csv")
    return d


@pytest.fixture(scope="module")
def saved_geojson(tmp_path_factory, small) -> Path:
    d = tmp_path_factory.mktemp("city_geojson")
    small.save(d)
    return d


def edit_csv(folder: Path, name: str, fn) -> None:
    p = folder / name
    df = pd.read_csv(p, dtype=str, keep_default_na=False)
    df = fn(df)
    df.to_csv(p, index=False)


def set_cell(row: int, col: str, value: str):
    def fn(df):
        df.loc[row - 1, col] = value
        return df

    return fn


def edit_geojson(folder: Path, fn) -> None:
    p = folder / "regions.geojson"
    data = json.loads(p.read_text(encoding="utf-8"))
    fn(data)
    p.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def bowtie_wkt(df):
    df.loc[3, "wkt"] = "POLYGON ((114.30 30.60, 114.31 30.61, 114.31 30.60, 114.30 30.605, 114.30 30.60))"
    return df


def feature_prop(i, key, value):
    def fn(data):
        data["features"][i]["properties"][key] = value

    return fn


def feature_geom(i, geom):
    def fn(data):
        data["features"][i]["geometry"] = geom

    return fn


CSV_CASES = [
    ("regions.csv", set_cell(7, "population", "abc"), "regions.csv row 7 column 'population': expected a non-negative integer, got 'abc'"),
    ("regions.csv", set_cell(3, "id", "N0001"), "regions.csv row 3 column 'id': expected a unique id, got duplicate 'N0001' (first in row 1)"),
    ("regions.csv", lambda df: df.drop(columns=["street"]), "regions.csv column 'street': missing required column"),
    ("regions.csv", set_cell(5, "street", "S99"), "regions.csv row 5 column 'street': expected a street id listed in streets.csv, got 'S99'"),
    ("regions.csv", bowtie_wkt, "regions.csv row 4 column 'wkt': expected a valid simple polygon, got self-intersecting ring"),
    ("regions.csv", set_cell(2, "wkt", "POINT (114.3 30.6)"), "regions.csv row 2 column 'wkt': expected a WKT 'POLYGON ((lon lat, lon lat, ...))'"),
    ("regions.csv", set_cell(2, "wkt", "POLYGON ((114.3 30.6, 114.3 30.7))"), "regions.csv row 2 column 'wkt': expected a valid simple polygon, got fewer than 3 distinct vertices"),
    ("regions.csv", set_cell(2, "lon", "514.3"), "regions.csv row 2 column 'lon': expected a longitude in [-180, 180], got '514.3'"),
    ("regions.csv", set_cell(6, "age_75_plus", "0"), "regions.csv row 6 column 'population': expected the age columns to add up to the population"),
    ("regions.csv", set_cell(6, "age_5_9", "-2"), "regions.csv row 6 column 'age_5_9': expected a non-negative integer, got '-2'"),
    ("regions.csv", set_cell(4, "neighbours", "N0002;N9999"), "regions.csv row 4 column 'neighbours': expected ids of other regions in this file, got 'N9999'"),
    ("streets.csv", set_cell(2, "id", "S01"), "streets.csv row 2 column 'id': expected a unique id, got duplicate 'S01'"),
    ("sites.csv", set_cell(5, "region", "N0999"), "sites.csv row 5 column 'region': expected a region id from the regions file, got 'N0999'"),
    ("sites.csv", set_cell(1, "kind", "casino"), "sites.csv row 1 column 'kind': expected one of pharmacy, compound_gate"),
    ("sites.csv", set_cell(2, "fever_clinic", "maybe"), "sites.csv row 2 column 'fever_clinic': expected true or false, got 'maybe'"),
    ("sites.csv", set_cell(3, "capacity", "-3"), "sites.csv row 3 column 'capacity': expected a non-negative integer, got '-3'"),
    ("sites.csv", set_cell(4, "lat", "north"), "sites.csv row 4 column 'lat': expected a latitude in [-90, 90], got 'north'"),
    ("sites.csv", lambda df: df.drop(columns=["lon"]), "sites.csv column 'lon': missing required column"),
    ("enterprises.csv", set_cell(1, "sector", "Z"), "enterprises.csv row 1 column 'sector': expected one of A, B, C"),
    ("enterprises.csv", set_cell(8, "employees", "1.5"), "enterprises.csv row 8 column 'employees': expected a non-negative integer, got '1.5'"),
    ("enterprises.csv", set_cell(2, "size", "huge"), "enterprises.csv row 2 column 'size': expected one of micro, small, medium, large, got 'huge'"),
    ("enterprises.csv", set_cell(9, "region", ""), "enterprises.csv row 9 column 'region': expected a region id from the regions file, got ''"),
    ("sensors.csv", set_cell(10, "site", "pharmacy-9999"), "sensors.csv row 10 column 'site': expected a site id listed in sites.csv (or empty), got 'pharmacy-9999'"),
    ("sensors.csv", set_cell(3, "kind", "radar"), "sensors.csv row 3 column 'kind': expected one of road_segment"),
    ("sensors.csv", set_cell(2, "id", "road_segment-0001"), "sensors.csv row 2 column 'id': expected a unique id, got duplicate 'road_segment-0001' (first in row 1)"),
]


@pytest.mark.parametrize("fname,edit,message", CSV_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CSV_CASES)])
def test_csv_file_errors_name_file_row_column(saved_csv, tmp_path, fname, edit, message):
    folder = tmp_path / "c"
    shutil.copytree(saved_csv, folder)
    edit_csv(folder, fname, edit)
    with pytest.raises(CityFileError) as info:
        City.load(folder)
    assert str(info.value).startswith(message), str(info.value)
    assert isinstance(info.value, ValueError) and info.value.file == fname


GEOJSON_CASES = [
    (feature_prop(1, "population", -5), "regions.geojson row 2 column 'population': expected a non-negative integer, got -5"),
    (feature_prop(2, "population", 12.5), "regions.geojson row 3 column 'population': expected a non-negative integer, got 12.5"),
    (feature_prop(0, "street", None), "regions.geojson row 1 column 'street': expected a non-empty value, got ''"),
    (feature_geom(4, {"type": "Point", "coordinates": [114.3, 30.6]}), "regions.geojson row 5 column 'geometry': expected a Polygon geometry, got 'Point'"),
    (feature_geom(1, {"type": "Polygon", "coordinates": [[[114.3, 30.6], [114.31, 30.6], [114.31, 30.61], [114.3, 30.6]],
                                                          [[114.301, 30.601], [114.302, 30.601], [114.302, 30.602], [114.301, 30.601]]]}),
     "regions.geojson row 2 column 'geometry': expected a Polygon with exactly one ring (no holes)"),
    (feature_geom(6, {"type": "Polygon", "coordinates": [[[114.3, 30.6], [114.31, 30.61], [114.31, 30.6], [114.3, 30.605], [114.3, 30.6]]]}),
     "regions.geojson row 7 column 'geometry': expected a valid simple polygon, got self-intersecting ring"),
    (feature_geom(3, {"type": "Polygon", "coordinates": [[[114.3, 30.6], ["a", 30.6], [114.31, 30.61]]]}),
     "regions.geojson row 4 column 'geometry': expected a ring of [lon, lat] positions"),
    (feature_geom(3, {"type": "Polygon", "coordinates": [[[114.3, 30.6], [214.3, 30.6], [114.31, 30.61]]]}),
     "regions.geojson row 4 column 'geometry': expected lon in [-180, 180]"),
    (feature_prop(5, "neighbours", ["N0001", 7]), "regions.geojson row 6 column 'neighbours': expected region ids separated by ';'"),
]


@pytest.mark.parametrize("edit,message", GEOJSON_CASES, ids=[f"geojson-{i}" for i in range(len(GEOJSON_CASES))])
def test_geojson_file_errors_name_feature_and_column(saved_geojson, tmp_path, edit, message):
    folder = tmp_path / "g"
    shutil.copytree(saved_geojson, folder)
    edit_geojson(folder, edit)
    with pytest.raises(CityFileError) as info:
        City.load(folder)
    assert str(info.value).startswith(message), str(info.value)


def test_folder_level_file_errors(saved_geojson, saved_csv, tmp_path):
    with pytest.raises(CityFileError, match="expected a folder"):
        City.load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CityFileError, match=r"regions.csv: missing: expected regions.geojson or regions.csv"):
        City.load(tmp_path / "empty")
    both = tmp_path / "both"
    shutil.copytree(saved_geojson, both)
    shutil.copy(saved_csv / "regions.csv", both / "regions.csv")
    with pytest.raises(CityFileError, match="found both regions.geojson and regions.csv"):
        City.load(both)
    bad_json = tmp_path / "badjson"
    shutil.copytree(saved_geojson, bad_json)
    (bad_json / "regions.geojson").write_text('{"type": "FeatureCollection", "features": [', encoding="utf-8")
    with pytest.raises(CityFileError, match=r"^regions.geojson: expected valid JSON \(.* at line 1"):
        City.load(bad_json)
    kind = tmp_path / "kind"
    shutil.copytree(saved_geojson, kind)
    meta = json.loads((kind / "city.json").read_text(encoding="utf-8"))
    meta["kind"] = "village"
    (kind / "city.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(CityFileError, match=r"^city.json: key 'kind': expected 'districts' or 'grid', got 'village'"):
        City.load(kind)
    none = tmp_path / "none"
    none.mkdir()
    (none / "regions.csv").write_text("id,name,street,population,lon,lat,area_km2\n")
    with pytest.raises(CityFileError, match=r"^regions.csv: expected at least one region, got none"):
        City.load(none)
    latin = tmp_path / "latin"
    shutil.copytree(saved_csv, latin)
    (latin / "sites.csv").write_bytes("id,kind,name\n1,pharmacy,药店\n".encode("gb18030"))
    with pytest.raises(CityFileError, match=r"^sites.csv: expected UTF-8 text"):
        City.load(latin)


def test_grid_file_must_match_city_json(gridcity, tmp_path):
    gridcity.save(tmp_path)
    edit_geojson(tmp_path, feature_geom(3, {"type": "Polygon", "coordinates": [[[114.3, 30.6], [114.31, 30.6], [114.31, 30.61], [114.3, 30.61]]]}))
    with pytest.raises(CityFileError, match=r"^regions.geojson row 4 column 'geometry': expected the square of this cell"):
        City.load(tmp_path)


# ----------------------------------------------------------------------------- CLI


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = cli_main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_describe_json_is_stable(capsys):
    args = ["city", "describe", "--json", "--seed", "4", "--neighbourhoods", "30", "--streets", "3", "--population", "80000"]
    code, out1, _ = run_cli(capsys, *args)
    assert code == 0
    d1 = json.loads(out1)
    assert {"neighbourhoods", "streets", "population", "area_km2", "sites", "enterprises", "sensors", "fingerprint", "name", "kind"} <= set(d1)
    assert d1["neighbourhoods"] == 30 and d1["population"] == 80_000
    code, out2, _ = run_cli(capsys, *args)
    assert json.loads(out2)["fingerprint"] == d1["fingerprint"]
    assert d1["fingerprint"] == City.synthetic(seed=4, neighbourhoods=30, streets=3, population=80_000).fingerprint()


def test_cli_save_then_describe_path(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "city", "save", "--seed", "3", "--neighbourhoods", "25", "--streets", "2",
                           "--population", "60000", "--out", str(tmp_path / "c"))
    assert code == 0 and "fingerprint" in out
    fp = City.synthetic(seed=3, neighbourhoods=25, streets=2, population=60_000).fingerprint()
    code, text, _ = run_cli(capsys, "city", "describe", "--path", str(tmp_path / "c"))
    assert code == 0
    assert f"fingerprint {fp}" in text and "25 neighbourhoods in 2 streets" in text and "population 60,000" in text
    code, out, _ = run_cli(capsys, "city", "describe", "--json", "--path", str(tmp_path / "c"))
    assert json.loads(out)["fingerprint"] == fp


def test_cli_errors_exit_2(capsys, tmp_path):
    code, _, err = run_cli(capsys, "city", "describe", "--neighbourhoods", "0")
    assert code == 2 and "neighbourhoods must be >= 1, got 0" in err
    code, _, err = run_cli(capsys, "city", "describe", "--path", str(tmp_path / "nope"))
    assert code == 2 and "bad city file" in err
    code, _, err = run_cli(capsys, "city", "describe", "--path", str(tmp_path), "--seed", "1")
    assert code == 2 and "cannot be combined with --seed" in err
    with pytest.raises(SystemExit):
        cli_main(["--help"])
    help_text = capsys.readouterr().out
    assert "city" in help_text and "describe or save a city model" in help_text


# ----------------------------------------------------------------------------- scale


@pytest.mark.slow
def test_large_district_generates_quickly():
    t = time.perf_counter()
    c = City.synthetic(seed=0, neighbourhoods=6000, streets=120, population=20_000_000)
    elapsed = time.perf_counter() - t
    assert elapsed < 30, f"generation took {elapsed:.1f} s"
    assert c.n_regions == 6000 and c.region_index[-1] == "N6000"
    assert int(c.regions["population"].sum()) == 20_000_000
    assert np.array_equal(c.age.sum(1), c.regions["population"].to_numpy())
    areas = geo.polygon_areas(c.poly_xy, c.poly_offsets)
    bnd = geo.polygon_areas(c.boundary_xy, np.array([0, len(c.boundary_xy)]))[0]
    assert abs(areas.sum() - bnd) / bnd < 1e-6 and (areas > 0).all()
    x, y = in_boundary_points(c, 20_000, seed=1)
    assert (c.locate_xy(x, y) >= 0).all()
    assert c.describe()["sites"]["street_shop"] == round(1500 * 20_000_000 / 1_100_000)
