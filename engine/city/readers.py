"""Checked reading of city files: raw columns with parsers, CSV/JSON/city.json, region rings.

Every error is a :class:`~engine.city.errors.CityFileError` naming the file, row and column.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from engine import geometry as geo
from engine.city.errors import CityFileError
from engine.city.gridspec import GridSpec
from engine.city.naming import _ids
from engine.city.projection import _scales


_INT_RE = re.compile(r"\+?\d+")
_WKT_RE = re.compile(r"^\s*POLYGON\s*\(\s*\((.*)\)\s*\)\s*$", re.IGNORECASE | re.DOTALL)
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f", ""}


class _Columns:
    """Raw values of a table by column (CSV text or GeoJSON properties), with checked parsers.

    Every error names the file, the 1-based data row (feature number for GeoJSON) and column.
    """

    def __init__(self, fname: str, columns: dict[str, list], n: int):
        self.fname, self.columns, self.n = fname, columns, n

    def fail(self, i: int | None, col: str | None, what: str, got) -> CityFileError:
        return CityFileError(self.fname, f"expected {what}, got {got!r}", row=None if i is None else i + 1, column=col)

    def has(self, col: str) -> bool:
        return col in self.columns

    def raw(self, col: str, required: bool = True) -> list | None:
        if col in self.columns:
            return self.columns[col]
        if required:
            found = ", ".join(self.columns) or "none"
            raise CityFileError(self.fname, f"missing required column (found: {found})", column=col)
        return None

    def text(self, col: str, required: bool = True, default: str = "", nonempty: bool = False) -> list[str]:
        vals = self.raw(col, required)
        if vals is None:
            return [default] * self.n
        out = []
        for i, v in enumerate(vals):
            if v is None:
                v = ""
            if not isinstance(v, str):
                if isinstance(v, (bool, float)) or not isinstance(v, int):
                    raise self.fail(i, col, "text", v)
                v = str(v)
            v = v.strip()
            if nonempty and not v:
                raise self.fail(i, col, "a non-empty value", v)
            out.append(v if v else default)
        return out

    def ids(self, col: str = "id") -> list[str]:
        vals = self.text(col, nonempty=True)
        seen: dict[str, int] = {}
        for i, v in enumerate(vals):
            if v in seen:
                raise CityFileError(self.fname, f"expected a unique id, got duplicate {v!r} (first in row {seen[v] + 1})", row=i + 1, column=col)
            seen[v] = i
        return vals

    def integers(self, col: str, required: bool = True, default: int = 0) -> np.ndarray:
        vals = self.raw(col, required)
        if vals is None:
            return np.full(self.n, default, dtype=np.int64)
        out = np.empty(len(vals), dtype=np.int64)
        for i, v in enumerate(vals):
            if isinstance(v, str) and _INT_RE.fullmatch(v.strip()):
                x = int(v.strip())
            elif isinstance(v, int) and not isinstance(v, bool) and v >= 0:
                x = v
            elif isinstance(v, float) and math.isfinite(v) and v.is_integer() and v >= 0:
                x = int(v)
            else:
                raise self.fail(i, col, "a non-negative integer", v)
            if x >= 2**63:
                raise self.fail(i, col, "a non-negative integer below 2**63", v)
            out[i] = x
        return out

    def floats(self, col: str, lo: float = -math.inf, hi: float = math.inf, what: str = "a number",
               required: bool = True) -> np.ndarray | None:
        vals = self.raw(col, required)
        if vals is None:
            return None
        out = np.empty(len(vals), dtype=np.float64)
        for i, v in enumerate(vals):
            try:
                if isinstance(v, bool) or not isinstance(v, (str, int, float)):
                    raise ValueError
                x = float(v)
            except (ValueError, OverflowError):
                raise self.fail(i, col, what, v) from None
            if not (math.isfinite(x) and lo <= x <= hi):
                raise self.fail(i, col, what, v)
            out[i] = x
        return out

    def booleans(self, col: str) -> np.ndarray:
        vals = self.raw(col, required=False)
        if vals is None:
            return np.zeros(self.n, dtype=bool)
        out = np.empty(len(vals), dtype=bool)
        for i, v in enumerate(vals):
            if isinstance(v, bool):
                out[i] = v
            elif isinstance(v, str) and v.strip().lower() in _TRUE | _FALSE:
                out[i] = v.strip().lower() in _TRUE
            elif v is None:
                out[i] = False
            else:
                raise self.fail(i, col, "true or false", v)
        return out

    def choice(self, col: str, allowed, required: bool = True, default: str = "") -> list[str]:
        vals = self.text(col, required, default=default)
        ok = set(allowed)
        for i, v in enumerate(vals):
            if v not in ok:
                shown = ", ".join(allowed) if len(allowed) <= 24 else f"one of {len(allowed)} known values"
                raise self.fail(i, col, f"one of {shown}", v)
        return vals

    def refs(self, col: str, known, what: str, required: bool = True, allow_empty: bool = False) -> list[str]:
        vals = self.text(col, required)
        for i, v in enumerate(vals):
            if v == "" and allow_empty:
                continue
            if v not in known:
                raise self.fail(i, col, what, v)
        return vals


def _read_csv(path: Path) -> _Columns:
    fname = path.name
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CityFileError(fname, f"expected UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except pd.errors.EmptyDataError:
        raise CityFileError(fname, "expected a CSV table with a header row, got an empty file") from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise CityFileError(fname, f"expected a CSV table: {str(exc).strip()}") from None
    cols = {str(c).strip(): df[c].tolist() for c in df.columns}
    return _Columns(fname, cols, len(df))


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise CityFileError(path.name, f"expected UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise CityFileError(path.name, f"expected valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None


def _read_meta(path: Path) -> dict:
    p = path / "city.json"
    meta: dict = dict(name=path.resolve().name or "city", kind="districts", origin=None, boundary=None, grid=None)
    if not p.exists():
        return meta
    raw = _read_json(p)
    if not isinstance(raw, dict):
        raise CityFileError("city.json", f"expected a JSON object, got {type(raw).__name__}")

    def bad(key, what):
        return CityFileError("city.json", f"key '{key}': expected {what}, got {raw.get(key)!r}")

    if "name" in raw:
        if not isinstance(raw["name"], str) or not raw["name"].strip():
            raise bad("name", "a non-empty string")
        meta["name"] = raw["name"]
    if "kind" in raw:
        if raw["kind"] not in ("districts", "grid"):
            raise bad("kind", "'districts' or 'grid'")
        meta["kind"] = raw["kind"]
    if "origin" in raw:
        o = raw["origin"]
        if not (isinstance(o, list) and len(o) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in o)
                and -180 <= o[0] <= 180 and -85 <= o[1] <= 85):
            raise bad("origin", "[lon, lat] with -180 <= lon <= 180 and -85 <= lat <= 85")
        meta["origin"] = (float(o[0]), float(o[1]))
    if raw.get("boundary") is not None:
        b = raw["boundary"]
        try:
            arr = np.asarray(b, dtype=np.float64)
        except (TypeError, ValueError):
            raise bad("boundary", "a list of [lon, lat] pairs") from None
        if arr.size == 0:
            arr = np.zeros((0, 2))
        if arr.ndim != 2 or arr.shape[1] != 2 or not np.isfinite(arr).all():
            raise bad("boundary", "a list of [lon, lat] pairs")
        meta["boundary"] = arr.reshape(-1, 2)
    if raw.get("grid") is not None:
        g = raw["grid"]
        need = dict(x0=float, y0=float, cell_m=float, nx=int, ny=int, block_cells=int, street_blocks=int)
        if not isinstance(g, dict):
            raise bad("grid", "an object with " + ", ".join(need))
        vals = {}
        for key, typ in need.items():
            v = g.get(key)
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            if typ is int:
                ok = ok and isinstance(v, int) and v >= 1
            if key == "cell_m":
                ok = ok and v > 0
            if not ok:
                raise CityFileError("city.json", f"key 'grid.{key}': expected a {'positive integer' if typ is int else 'number'}, got {v!r}")
            vals[key] = typ(v)
        meta["grid"] = GridSpec(**vals)
    return meta


def _parse_ring(cols: _Columns, i: int, col: str, ring) -> np.ndarray:
    """A lon/lat ring as an (m, 2) array, closing vertex dropped, counter-clockwise."""
    try:
        arr = np.asarray([[float(p[0]), float(p[1])] for p in ring], dtype=np.float64) if len(ring) else np.zeros((0, 2))
        if any(isinstance(p[0], bool) or isinstance(p[1], bool) or isinstance(p[0], str) or isinstance(p[1], str) for p in ring):
            raise ValueError
    except (TypeError, ValueError, IndexError, KeyError):
        raise cols.fail(i, col, "a ring of [lon, lat] positions", ring if len(str(ring)) < 80 else str(ring)[:77] + "...") from None
    if len(arr) >= 2 and (arr[0] == arr[-1]).all():
        arr = arr[:-1]
    if len(arr) and not (np.isfinite(arr).all() and (np.abs(arr[:, 0]) <= 180).all() and (np.abs(arr[:, 1]) <= 90).all()):
        raise CityFileError(cols.fname, "expected lon in [-180, 180] and lat in [-90, 90] for every vertex", row=i + 1, column=col)
    keep = np.ones(len(arr), dtype=bool)  # drop exact repeats of the previous vertex
    if len(arr) > 1:
        keep[1:] = (arr[1:] != arr[:-1]).any(axis=1)
    arr = arr[keep]
    if len(arr) >= 2 and (arr[0] == arr[-1]).all():
        arr = arr[:-1]
    if len(arr) >= 3 and geo.polygon_areas(arr, np.array([0, len(arr)]))[0] < 0:
        arr = arr[::-1].copy()
    return arr


def _check_rings(cols: _Columns, col: str, rings: list[np.ndarray]) -> None:
    offsets = np.concatenate([[0], np.cumsum([len(r) for r in rings])]).astype(np.int64)
    xy = np.concatenate(rings) if rings else np.zeros((0, 2))
    easy = geo.convex_simple_mask(xy, offsets)
    for i in np.flatnonzero(~easy).tolist():
        problem = geo.polygon_problem(rings[i])
        if problem is not None:
            raise CityFileError(cols.fname, f"expected a valid simple polygon, got {problem}", row=i + 1, column=col)


def _read_regions(path: Path) -> tuple[_Columns, list[np.ndarray] | None, str]:
    gj, cv = path / "regions.geojson", path / "regions.csv"
    if gj.exists() and cv.exists():
        raise CityFileError("regions.geojson", "expected one regions file, found both regions.geojson and regions.csv")
    if gj.exists():
        raw = _read_json(gj)
        if not (isinstance(raw, dict) and raw.get("type") == "FeatureCollection" and isinstance(raw.get("features"), list)):
            raise CityFileError("regions.geojson", "expected a GeoJSON FeatureCollection with a 'features' list")
        feats = raw["features"]
        keys: dict[str, None] = {}
        for i, f in enumerate(feats):
            if not (isinstance(f, dict) and isinstance(f.get("properties"), dict)):
                raise CityFileError("regions.geojson", "expected a Feature with a 'properties' object", row=i + 1)
            keys.update(dict.fromkeys(f["properties"]))
        columns = {k: [f["properties"].get(k) for f in feats] for k in keys}
        if "id" not in columns and feats and all("id" in f for f in feats):  # RFC 7946 feature ids
            columns = {"id": [f["id"] for f in feats], **columns}
        cols = _Columns("regions.geojson", columns, len(feats))
        rings = []
        for i, f in enumerate(feats):
            g = f.get("geometry")
            if not (isinstance(g, dict) and g.get("type") == "Polygon" and isinstance(g.get("coordinates"), list)):
                got = g.get("type") if isinstance(g, dict) else g
                raise cols.fail(i, "geometry", "a Polygon geometry", got)
            if len(g["coordinates"]) != 1:
                raise cols.fail(i, "geometry", "a Polygon with exactly one ring (no holes)", f"{len(g['coordinates'])} rings")
            if not isinstance(g["coordinates"][0], list):
                raise cols.fail(i, "geometry", "a ring of [lon, lat] positions", g["coordinates"][0])
            rings.append(_parse_ring(cols, i, "geometry", g["coordinates"][0]))
        return cols, rings, "geometry"
    if cv.exists():
        cols = _read_csv(cv)
        if not cols.has("wkt"):
            return cols, None, "wkt"
        rings = []
        for i, w in enumerate(cols.text("wkt")):
            m = _WKT_RE.match(w)
            if not m or "(" in m.group(1) or ")" in m.group(1):
                raise cols.fail(i, "wkt", "a WKT 'POLYGON ((lon lat, lon lat, ...))' with one ring", w if len(w) < 80 else w[:77] + "...")
            try:
                pts = [[float(t) for t in p.split()] for p in m.group(1).split(",")]
                if any(len(p) < 2 for p in pts):
                    raise ValueError
            except ValueError:
                raise cols.fail(i, "wkt", "'lon lat' number pairs in the POLYGON ring", w if len(w) < 80 else w[:77] + "...") from None
            rings.append(_parse_ring(cols, i, "wkt", pts))
        return cols, rings, "wkt"
    raise CityFileError("regions.csv", f"missing: expected regions.geojson or regions.csv in {path}")


def _check_grid(cols: _Columns, gcol: str, ids: list[str], rings: list[np.ndarray], spec: GridSpec, origin) -> np.ndarray:
    """Check that the file's cells are the grid of ``city.json``; returns their lon/lat rings."""
    n = spec.nx * spec.ny
    if len(ids) != n:
        raise CityFileError(cols.fname, f"expected {n} grid cells ({spec.nx} x {spec.ny} from city.json), got {len(ids)} regions")
    want = _ids("G", n, 6)
    for i, (a, b) in enumerate(zip(ids, want)):
        if a != b:
            raise cols.fail(i, "id", f"{b!r} (grid cells in row-major order, as city.json describes)", a)
    kx, ky = _scales(origin[1])
    xy = spec.polygons()[0]
    ll = np.column_stack([xy[:, 0] / kx + origin[0], xy[:, 1] / ky + origin[1]]).reshape(n, 4, 2)
    shapes_ok = all(r.shape == (4, 2) for r in rings)
    worst = np.abs(np.stack(rings) - ll).max(axis=(1, 2)) if shapes_ok and n else None
    for i, r in enumerate(rings):
        if r.shape != (4, 2) or (worst is not None and worst[i] > 1e-7):
            raise cols.fail(i, gcol, "the square of this cell from the city.json grid", r.tolist())
    return ll.reshape(-1, 2)
