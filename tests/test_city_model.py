"""Tests for engine.city.model: projection, describe, locate."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.city import SECTORS, SITE_KINDS

from test_city_helpers import city, reference_locate, small  # noqa: F401  (fixtures)


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



def test_describe_keys(small):
    d = small.describe()
    assert set(d) == {"name", "kind", "neighbourhoods", "streets", "population", "area_km2", "sites", "enterprises",
                      "sensors", "fingerprint"}
    assert d["neighbourhoods"] == 40 and d["streets"] == 4 and d["population"] == 150_000
    assert list(d["enterprises"]) == [s.code for s in SECTORS] and list(d["sites"]) == list(SITE_KINDS)
    assert d["fingerprint"] == small.fingerprint() and len(d["fingerprint"]) == 64
    json.dumps(d)



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
