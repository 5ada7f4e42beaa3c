"""Tests for engine.city.grid: grid cities ("万米网格") over a bounding box."""

from __future__ import annotations


import numpy as np
import pytest

from engine import geometry as geo
from engine.city import City

from test_city_helpers import gridcity, reference_locate  # noqa: F401  (fixture)


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
    g = City.grid((113.70, 29.97, 115.08, 31.36), cell_m=1000, population=11_000_000)
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
