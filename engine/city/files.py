"""City folders of plain files: :meth:`City.save` and :meth:`City.load` (and :class:`CityFileError`).

The checked parsing of each file lives in :mod:`engine.city.readers`.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from engine import geometry as geo
from engine.city.errors import CityFileError
from engine.city.model import City
from engine.city.population import _apportion_rows, _base_age_proportions
from engine.city.projection import _DEFAULT_ORIGIN, _scales
from engine.city.readers import _check_grid, _check_rings, _Columns, _read_csv, _read_meta, _read_regions
from engine.city.vocab import AGE_COLUMNS, SECTOR_CODES, SENSOR_KINDS, SITE_KINDS, SIZES

__all__ = ["CityFileError"]


_FORMAT = "cityvitals-city/1"


def _r(v) -> str:
    """Shortest text that parses back to the same float."""
    return repr(float(v))


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _csv_text(columns: dict[str, list]) -> str:
    return pd.DataFrame(columns).to_csv(index=False, lineterminator="\n")


def _ring_wkt(ring: np.ndarray) -> str:
    pts = [f"{_r(x)} {_r(y)}" for x, y in ring.tolist()]
    return "POLYGON ((" + ", ".join(pts + pts[:1]) + "))"


def _save_city(city: City, path: Path, regions_format: str) -> Path:
    if regions_format not in ("geojson", "csv"):
        raise ValueError(f"regions_format must be 'geojson' or 'csv', got {regions_format!r}")
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path} exists and is not a folder")
    path.mkdir(parents=True, exist_ok=True)
    fmt = regions_format if city.has_polygons else "csv"
    meta = dict(
        format=_FORMAT, name=city.name, kind=city.kind, origin=[city.lon0, city.lat0], levels=city.levels,
        boundary=city.boundary_lonlat.tolist(),
    )
    if city.grid_spec is not None:
        meta["grid"] = city.grid_spec.to_json()
    _write_text(path / "city.json", json.dumps(meta, ensure_ascii=False, indent=1) + "\n")

    reg = city.regions
    ids = reg.index.tolist()
    street_name = city.streets["name"].reindex(reg["street"]).tolist()
    nbrs = [[ids[j] for j in city.adj_indices[city.adj_indptr[i] : city.adj_indptr[i + 1]].tolist()] for i in range(len(ids))]
    rings = [city.poly_lonlat[city.poly_offsets[i] : city.poly_offsets[i + 1]] for i in range(len(ids))]
    has_block = "block" in reg
    if fmt == "geojson":
        feats = []
        for i, rid in enumerate(ids):
            props = {"id": rid, "name": reg["name"].iat[i], "street": reg["street"].iat[i], "street_name": street_name[i]}
            if has_block:
                props["block"] = reg["block"].iat[i]
            props["population"] = int(reg["population"].iat[i])
            props.update({c: int(v) for c, v in zip(AGE_COLUMNS, city.age[i].tolist())})
            props.update(area_km2=float(reg["area_km2"].iat[i]), lon=float(reg["lon"].iat[i]), lat=float(reg["lat"].iat[i]))
            props["neighbours"] = nbrs[i]
            ring = rings[i].tolist()
            feats.append({"type": "Feature", "properties": props, "geometry": {"type": "Polygon", "coordinates": [ring + ring[:1]]}})
        text = json.dumps({"type": "FeatureCollection", "features": feats}, ensure_ascii=False, allow_nan=False)
        _write_text(path / "regions.geojson", text + "\n")
        stale = path / "regions.csv"
    else:
        cols: dict[str, list] = {"id": ids, "name": reg["name"].tolist(), "street": reg["street"].tolist(), "street_name": street_name}
        if has_block:
            cols["block"] = reg["block"].tolist()
        cols["population"] = reg["population"].tolist()
        cols.update(lon=[_r(v) for v in reg["lon"]], lat=[_r(v) for v in reg["lat"]], area_km2=[_r(v) for v in reg["area_km2"]])
        cols.update({c: city.age[:, b].tolist() for b, c in enumerate(AGE_COLUMNS)})
        if city.has_polygons:
            cols["wkt"] = [_ring_wkt(r) for r in rings]
        cols["neighbours"] = [";".join(nb) for nb in nbrs]
        _write_text(path / "regions.csv", _csv_text(cols))
        stale = path / "regions.geojson"
    if stale.exists():
        stale.unlink()

    _write_text(path / "streets.csv", _csv_text({"id": city.streets.index.tolist(), "name": city.streets["name"].tolist()}))
    if city.blocks is not None:
        b = city.blocks
        _write_text(path / "blocks.csv", _csv_text({"id": b.index.tolist(), "name": b["name"].tolist(), "street": b["street"].tolist()}))
    elif (path / "blocks.csv").exists():
        (path / "blocks.csv").unlink()
    s = city.sites
    _write_text(path / "sites.csv", _csv_text({
        "id": s.index.tolist(), "kind": s["kind"].tolist(), "name": s["name"].tolist(), "region": s["region"].tolist(),
        "lon": [_r(v) for v in s["lon"]], "lat": [_r(v) for v in s["lat"]], "capacity": s["capacity"].tolist(),
        "fever_clinic": ["true" if v else "false" for v in s["fever_clinic"]],
    }))
    e = city.enterprises
    _write_text(path / "enterprises.csv", _csv_text({
        "id": e.index.tolist(), "sector": e["sector"].tolist(), "size": e["size"].tolist(),
        "employees": e["employees"].tolist(), "region": e["region"].tolist(),
    }))
    z = city.sensors
    _write_text(path / "sensors.csv", _csv_text({
        "id": z.index.tolist(), "kind": z["kind"].tolist(), "region": z["region"].tolist(), "site": z["site"].tolist(),
        "lon": [_r(v) for v in z["lon"]], "lat": [_r(v) for v in z["lat"]],
    }))
    return path


def _load_city(path: Path) -> City:
    if not path.is_dir():
        raise CityFileError(str(path), "expected a folder holding city files (regions.geojson or regions.csv, ...)")
    meta = _read_meta(path)
    cols, rings, gcol = _read_regions(path)
    fname, n = cols.fname, cols.n
    if n == 0:
        raise CityFileError(fname, "expected at least one region, got none")
    ids = cols.ids("id")
    names = cols.text("name", required=False)
    names = [v or rid for v, rid in zip(names, ids)]
    street = cols.text("street", nonempty=True)
    pop = cols.integers("population")
    present = [c for c in AGE_COLUMNS if cols.has(c)]
    if present:
        missing = [c for c in AGE_COLUMNS if not cols.has(c)]
        if missing:
            cols.raw(missing[0])  # raises: missing required column
        age = np.column_stack([cols.integers(c) for c in AGE_COLUMNS]).astype(np.int64).reshape(n, 16)
        bad = np.flatnonzero(age.sum(1) != pop)
        if len(bad):
            i = int(bad[0])
            raise CityFileError(fname, f"expected the age columns to add up to the population {int(pop[i])}, got {int(age[i].sum())}",
                                row=i + 1, column="population")
    else:
        age = _apportion_rows(pop, np.tile(_base_age_proportions(), (n, 1)))

    # streets and blocks
    if (path / "streets.csv").exists():
        sc = _read_csv(path / "streets.csv")
        sids = sc.ids("id")
        snames = [v or s for v, s in zip(sc.text("name", required=False), sids)]
        cols.refs("street", set(sids), "a street id listed in streets.csv")
    else:
        sids = sorted(set(street))
        given = cols.text("street_name", required=False)
        first: dict[str, str] = {}
        for s, nm in zip(street, given):
            if nm and s not in first:
                first[s] = nm
        snames = [first.get(s, s) for s in sids]
    streets = pd.DataFrame({"name": snames}, index=pd.Index(sids, name="street"))
    street_of_id = dict(zip(ids, street))
    blocks = None
    block = cols.text("block", required=False) if cols.has("block") else None
    if block is not None:
        if (path / "blocks.csv").exists():
            bc = _read_csv(path / "blocks.csv")
            bids = bc.ids("id")
            bnames = [v or b for v, b in zip(bc.text("name", required=False), bids)]
            bstreet = bc.refs("street", set(sids), "a street id listed in the regions or streets.csv")
            cols.refs("block", set(bids), "a block id listed in blocks.csv")
            bmap = dict(zip(bids, bstreet))
        else:
            bids = sorted(set(block))
            bnames, bmap = list(bids), {}
            for b, s in zip(block, street):
                bmap.setdefault(b, s)
            bstreet = [bmap[b] for b in bids]
        for i, (b, s) in enumerate(zip(block, street)):
            if bmap[b] != s:
                raise CityFileError(fname, f"expected the street of block {b!r} ({bmap[b]!r}), got {s!r}", row=i + 1, column="street")
        blocks = pd.DataFrame({"name": bnames, "street": bstreet}, index=pd.Index(bids, name="block"))

    # geometry, origin, area and centroids
    grid = meta["grid"] if meta["kind"] == "grid" else None
    if rings is not None and grid is None:
        _check_rings(cols, gcol, rings)
    if meta["origin"] is not None:
        origin = meta["origin"]
    elif rings is not None and n:
        allv = np.concatenate(rings)
        origin = (float(allv[:, 0].mean()), float(allv[:, 1].mean()))
    else:
        lo = cols.floats("lon", -180, 180, "a longitude in [-180, 180]")
        la = cols.floats("lat", -90, 90, "a latitude in [-90, 90]")
        origin = (float(lo.mean()), float(la.mean())) if n else _DEFAULT_ORIGIN
    kx, ky = _scales(origin[1])
    if rings is not None:
        offsets = np.concatenate([[0], np.cumsum([len(r) for r in rings])]).astype(np.int64)
        poly_ll = np.concatenate(rings) if rings else np.zeros((0, 2))
        if grid is not None:
            poly_ll = _check_grid(cols, gcol, ids, rings, grid, origin)
        pxy = np.column_stack([(poly_ll[:, 0] - origin[0]) * kx, (poly_ll[:, 1] - origin[1]) * ky]).reshape(-1, 2)
        if grid is not None:
            pxy = grid.polygons()[0]
        c_xy = geo.polygon_centroids(pxy, offsets)
        area = cols.floats("area_km2", 0, math.inf, "a non-negative area in km2", required=False)
        lon = cols.floats("lon", -180, 180, "a longitude in [-180, 180]", required=False)
        lat = cols.floats("lat", -90, 90, "a latitude in [-90, 90]", required=False)
        area = geo.polygon_areas(pxy, offsets) / 1e6 if area is None else area
        lon = c_xy[:, 0] / kx + origin[0] if lon is None else lon
        lat = c_xy[:, 1] / ky + origin[1] if lat is None else lat
    else:
        offsets = np.zeros(n + 1, dtype=np.int64)
        poly_ll = None
        area = cols.floats("area_km2", 0, math.inf, "a non-negative area in km2")
        lon = cols.floats("lon", -180, 180, "a longitude in [-180, 180]")
        lat = cols.floats("lat", -90, 90, "a latitude in [-90, 90]")

    adjacency = None
    if cols.has("neighbours"):
        pos = {r: i for i, r in enumerate(ids)}
        a, b = [], []
        for i, v in enumerate(cols.raw("neighbours")):
            if v is None or v == "":
                items = []
            elif isinstance(v, str):
                items = [t.strip() for t in v.split(";") if t.strip()]
            elif isinstance(v, list) and all(isinstance(t, str) for t in v):
                items = v
            else:
                raise cols.fail(i, "neighbours", "region ids separated by ';' (or a list of ids)", v)
            for t in items:
                if t not in pos or t == ids[i]:
                    raise cols.fail(i, "neighbours", "ids of other regions in this file", t)
                a.append(i)
                b.append(pos[t])
        adjacency = geo.csr_from_pairs(np.array(a + b, dtype=np.int64), np.array(b + a, dtype=np.int64), n)

    if meta["boundary"] is not None and grid is None:
        boundary = meta["boundary"]
    elif rings is not None and n:
        hull = geo.convex_hull(np.column_stack([(poly_ll[:, 0] - origin[0]) * kx, (poly_ll[:, 1] - origin[1]) * ky]))
        boundary = np.column_stack([hull[:, 0] / kx + origin[0], hull[:, 1] / ky + origin[1]])
    else:
        boundary = np.zeros((0, 2))

    regions = pd.DataFrame(
        {"name": names, "street": street, **({"block": block} if block is not None else {}), "population": pop,
         "area_km2": np.asarray(area, dtype=np.float64), "lon": lon, "lat": lat},
        index=pd.Index(ids, name="region"),
    )
    proto = City(
        name=meta["name"], kind=meta["kind"], origin=origin, regions=regions, streets=streets, age=age,
        poly_lonlat=poly_ll, poly_offsets=offsets, boundary_lonlat=boundary, blocks=blocks, adjacency=adjacency, grid=grid,
    )
    region_set = set(ids)

    def region_col(tc: _Columns, lon_, lat_) -> list[str]:
        vals = tc.refs("region", region_set, "a region id from the regions file", required=False, allow_empty=True)
        need = [i for i, v in enumerate(vals) if v == ""]
        if need:
            if not proto.has_polygons and proto.grid_spec is None:
                raise tc.fail(need[0], "region", "a region id (the regions have no polygons to locate the point in)", "")
            where = proto.locate(lon_[need], lat_[need])
            for i, w in zip(need, where.tolist()):
                if w < 0:
                    raise CityFileError(tc.fname, f"expected a point inside a region (or a region id), got ({lon_[i]!r}, {lat_[i]!r})",
                                        row=i + 1, column="lon")
                vals[i] = ids[w]
        return vals

    sites = enterprises = sensors = None
    if (path / "sites.csv").exists():
        tc = _read_csv(path / "sites.csv")
        sid = tc.ids("id")
        kind = tc.choice("kind", list(SITE_KINDS))
        lo = tc.floats("lon", -180, 180, "a longitude in [-180, 180]")
        la = tc.floats("lat", -90, 90, "a latitude in [-90, 90]")
        sites = pd.DataFrame(
            {"kind": kind, "name": tc.text("name", required=False), "region": region_col(tc, lo, la), "lon": lo, "lat": la,
             "capacity": tc.integers("capacity", required=False), "fever_clinic": tc.booleans("fever_clinic")},
            index=pd.Index(sid, name="site"),
        )
    if (path / "enterprises.csv").exists():
        tc = _read_csv(path / "enterprises.csv")
        eid = tc.ids("id")
        enterprises = pd.DataFrame(
            {"sector": tc.choice("sector", SECTOR_CODES), "size": tc.choice("size", list(SIZES)),
             "employees": tc.integers("employees"), "region": tc.refs("region", region_set, "a region id from the regions file")},
            index=pd.Index(eid, name="enterprise"),
        )
    if (path / "sensors.csv").exists():
        tc = _read_csv(path / "sensors.csv")
        zid = tc.ids("id")
        kind = tc.choice("kind", list(SENSOR_KINDS))
        lo = tc.floats("lon", -180, 180, "a longitude in [-180, 180]")
        la = tc.floats("lat", -90, 90, "a latitude in [-90, 90]")
        known_sites = set(sites.index) if sites is not None else set()
        sensors = pd.DataFrame(
            {"kind": kind, "region": region_col(tc, lo, la),
             "site": tc.refs("site", known_sites, "a site id listed in sites.csv (or empty)", required=False, allow_empty=True),
             "lon": lo, "lat": la},
            index=pd.Index(zid, name="sensor"),
        )
    return City(
        name=meta["name"], kind=meta["kind"], origin=origin, regions=regions, streets=streets, age=age,
        poly_lonlat=poly_ll, poly_offsets=offsets, boundary_lonlat=boundary, blocks=blocks, adjacency=adjacency,
        edge_nbr=proto.poly_edge_nbr, grid=grid, sites=sites, enterprises=enterprises, sensors=sensors,
    )
