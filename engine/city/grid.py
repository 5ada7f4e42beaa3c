"""Grid cities ("万米网格") behind :meth:`City.grid`: cells, blocks and streets over a bounding box."""

from __future__ import annotations

import math
import numbers

import numpy as np
import pandas as pd

from engine.city.checks import _check_int
from engine.city.gridspec import GridSpec
from engine.city.model import City
from engine.city.naming import _ids, _names
from engine.city.population import _apportion, _apportion_rows, _base_age_proportions
from engine.city.projection import _scales


def grid_over_bbox(bbox, cell_m, block_cells, street_blocks, population, *, name) -> City:
    """Check the arguments of :meth:`City.grid` and build the grid city."""
    try:
        lon_min, lat_min, lon_max, lat_max = (float(v) for v in bbox)
    except (TypeError, ValueError):
        raise ValueError(f"bbox must be (lon_min, lat_min, lon_max, lat_max), got {bbox!r}") from None
    if not (-180 <= lon_min < lon_max <= 180):
        raise ValueError(f"bbox longitudes must satisfy -180 <= lon_min < lon_max <= 180, got {lon_min}, {lon_max}")
    if not (-85 <= lat_min < lat_max <= 85):
        raise ValueError(f"bbox latitudes must satisfy -85 <= lat_min < lat_max <= 85, got {lat_min}, {lat_max}")
    if not (isinstance(cell_m, numbers.Real) and not isinstance(cell_m, bool) and math.isfinite(cell_m) and cell_m > 0):
        raise ValueError(f"cell_m must be a positive number of metres, got {cell_m!r}")
    bc = _check_int("block_cells", block_cells, lo=1)
    sb = _check_int("street_blocks", street_blocks, lo=1)
    if population is not None:
        population = _check_int("population", population, lo=0)
    return _build_grid((lon_min, lat_min, lon_max, lat_max), float(cell_m), bc, sb, population, str(name))


def _build_grid(bbox, cell_m: float, bc: int, sb: int, population: int | None, name: str) -> City:
    lon_min, lat_min, lon_max, lat_max = bbox
    lon0, lat0 = 0.5 * (lon_min + lon_max), 0.5 * (lat_min + lat_max)
    kx, ky = _scales(lat0)
    x0, y0 = (lon_min - lon0) * kx, (lat_min - lat0) * ky
    w, h = (lon_max - lon0) * kx - x0, (lat_max - lat0) * ky - y0
    nx = max(1, int(math.ceil(w / cell_m - 1e-9)))
    ny = max(1, int(math.ceil(h / cell_m - 1e-9)))
    if nx * ny > 4_000_000:
        raise ValueError(f"the grid would have {nx} x {ny} = {nx * ny} cells (more than 4,000,000); use a larger cell_m than {cell_m}")
    spec = GridSpec(x0=float(x0), y0=float(y0), cell_m=cell_m, nx=nx, ny=ny, block_cells=bc, street_blocks=sb)
    return _grid_city(spec, (lon0, lat0), population, name)


def _grid_hierarchy(spec: GridSpec):
    n = spec.nx * spec.ny
    pos = np.arange(n, dtype=np.int64)
    row, col = pos // spec.nx, pos % spec.nx
    nbx = -(-spec.nx // spec.block_cells)
    nby = -(-spec.ny // spec.block_cells)
    brow, bcol = row // spec.block_cells, col // spec.block_cells
    block = brow * nbx + bcol
    nsx = -(-nbx // spec.street_blocks)
    nsy = -(-nby // spec.street_blocks)
    bpos = np.arange(nbx * nby)
    block_street = (bpos // nbx // spec.street_blocks) * nsx + (bpos % nbx) // spec.street_blocks
    return row, col, block, nbx * nby, block_street, nsx * nsy


def _grid_city(spec: GridSpec, origin, population: int | None, name: str) -> City:
    n = spec.nx * spec.ny
    row, col, block, nblocks, block_street, nstreets = _grid_hierarchy(spec)
    cell_ids = _ids("G", n, 6)
    block_ids = _ids("B", nblocks, 4)
    street_ids = _ids("S", nstreets, 2)
    kx, ky = _scales(origin[1])
    lon = (spec.x0 + (col + 0.5) * spec.cell_m) / kx + origin[0]
    lat = (spec.y0 + (row + 0.5) * spec.cell_m) / ky + origin[1]
    pop = _apportion(population or 0, np.ones(n))
    age = _apportion_rows(pop, np.tile(_base_age_proportions(), (n, 1)))
    street_names = _names(np.random.default_rng(0), nstreets, None, "街道")
    bid = np.array(block_ids, dtype=object)
    sid = np.array(street_ids, dtype=object)
    regions = pd.DataFrame(
        {
            "name": [f"网格{r + 1}-{c + 1}" for r, c in zip(row.tolist(), col.tolist())],
            "street": sid[block_street[block]],
            "block": bid[block],
            "population": pop,
            "area_km2": np.full(n, spec.cell_m * spec.cell_m / 1e6),
            "lon": lon,
            "lat": lat,
        },
        index=pd.Index(cell_ids, name="region"),
    )
    streets = pd.DataFrame({"name": street_names}, index=pd.Index(street_ids, name="street"))
    blocks = pd.DataFrame(
        {"name": [f"{street_names[s]}{b + 1}号片区" for b, s in enumerate(block_street.tolist())], "street": sid[block_street]},
        index=pd.Index(block_ids, name="block"),
    )
    return City(
        name=name, kind="grid", origin=origin, regions=regions, streets=streets, age=age, poly_lonlat=None,
        poly_offsets=np.arange(0, 4 * n + 1, 4), boundary_lonlat=np.zeros((0, 2)), blocks=blocks, grid=spec,
    )
