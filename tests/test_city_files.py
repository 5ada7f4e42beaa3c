"""Tests for engine.city.files: save/load round trips and file errors naming file, row and column."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine import geometry as geo
from engine.city import City, CityFileError

from test_city_helpers import city, gridcity, small  # noqa: F401  (fixtures)


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
