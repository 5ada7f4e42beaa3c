"""The :class:`City` class: tables, arrays, projection, locate, polygons, neighbours, fingerprint.

Its constructors live beside it: :meth:`City.synthetic` in :mod:`engine.city.synthetic`,
:meth:`City.grid` in :mod:`engine.city.grid`, :meth:`City.save` and :meth:`City.load` in
:mod:`engine.city.files`.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import os
from pathlib import Path

import numpy as np
import pandas as pd

from engine import geometry as geo
from engine.city.gridspec import GridSpec
from engine.city.projection import _scales
from engine.city.tables import _column_bytes, _empty_enterprises, _empty_sensors, _empty_sites, _normalise
from engine.city.vocab import AGE_BANDS, SECTOR_CODES, SENSOR_KINDS, SITE_KINDS

__all__ = ["City"]


class City:
    """A city: region hierarchy, population, polygons, adjacency, sites, enterprises, sensors.

    Build one with :meth:`synthetic`, :meth:`grid` or :meth:`load`; the constructor is the
    low-level assembler they share and expects consistent inputs.

    Parameters
    ----------
    name, kind : str
        City name and ``"districts"`` or ``"grid"``.
    origin : (float, float)
        ``(lon0, lat0)`` of the local projection.
    regions : DataFrame
        Indexed by region id; columns ``name``, ``street``, ``population``, ``area_km2``,
        ``lon``, ``lat`` (and ``block`` for grids). ``x_m``/``y_m`` are added.
    streets : DataFrame
        Indexed by street id, column ``name``; totals are added.
    age : ndarray of int64, shape (n_regions, 16)
        Residents by age band; rows sum to ``population``.
    poly_lonlat, poly_offsets : ndarray
        Flat polygons in lon/lat (``poly_offsets`` all zero when there are none).
    boundary_lonlat : ndarray, shape (m, 2)
        District outline.
    sites, enterprises, sensors, blocks : DataFrame, optional
        Tables as described in the module docs (``x_m``/``y_m`` are added to sites, sensors).
    adjacency : (indptr, indices), optional
        Region adjacency; derived from the polygons' shared edges when omitted.
    edge_nbr : ndarray, optional
        Neighbour across each polygon edge; matched geometrically when omitted.
    grid : GridSpec, optional
        For grid cities: the polygons come from it exactly, and :meth:`locate` is arithmetic.
    """

    def __init__(
        self,
        *,
        name: str,
        kind: str,
        origin: tuple[float, float],
        regions: pd.DataFrame,
        streets: pd.DataFrame,
        age: np.ndarray,
        poly_lonlat: np.ndarray | None,
        poly_offsets: np.ndarray,
        boundary_lonlat: np.ndarray,
        sites: pd.DataFrame | None = None,
        enterprises: pd.DataFrame | None = None,
        sensors: pd.DataFrame | None = None,
        blocks: pd.DataFrame | None = None,
        adjacency: tuple[np.ndarray, np.ndarray] | None = None,
        edge_nbr: np.ndarray | None = None,
        grid: GridSpec | None = None,
    ):
        if kind not in ("districts", "grid"):
            raise ValueError(f"kind must be 'districts' or 'grid', got {kind!r}")
        self.name = str(name)
        self.kind = kind
        self.lon0, self.lat0 = float(origin[0]), float(origin[1])
        self._kx, self._ky = _scales(self.lat0)
        self.grid_spec = grid
        self.levels = ["cell", "block", "street", "district"] if kind == "grid" else ["neighbourhood", "street", "district"]
        self.age_bands = list(AGE_BANDS)
        n = len(regions)

        # polygons
        self.poly_offsets = np.asarray(poly_offsets, dtype=np.int64)
        if grid is not None:
            self.poly_xy, off, nbr = grid.polygons()
            self.poly_offsets = off
            edge_nbr = nbr if edge_nbr is None else edge_nbr
            self.poly_lonlat = np.column_stack(self.to_lonlat(self.poly_xy[:, 0], self.poly_xy[:, 1]))
        else:
            ll = np.zeros((0, 2)) if poly_lonlat is None else np.asarray(poly_lonlat, dtype=np.float64).reshape(-1, 2)
            self.poly_lonlat = ll
            self.poly_xy = np.column_stack(self.to_xy(ll[:, 0], ll[:, 1])).reshape(-1, 2)
        if len(self.poly_offsets) != n + 1:
            raise ValueError(f"poly_offsets must have n_regions + 1 = {n + 1} entries, got {len(self.poly_offsets)}")
        self.has_polygons = bool(self.poly_offsets[-1] > 0)
        if edge_nbr is None:
            edge_nbr = geo.match_shared_edges(self.poly_xy, self.poly_offsets)
        self.poly_edge_nbr = np.asarray(edge_nbr, dtype=np.int64)
        if adjacency is None:
            adjacency = geo.adjacency_from_edges(self.poly_edge_nbr, self.poly_offsets)
        self.adj_indptr = np.asarray(adjacency[0], dtype=np.int64)
        self.adj_indices = np.asarray(adjacency[1], dtype=np.int64)
        bl = np.asarray(boundary_lonlat, dtype=np.float64).reshape(-1, 2)
        self.boundary_lonlat = bl
        if grid is not None:
            w, h = grid.nx * grid.cell_m, grid.ny * grid.cell_m
            self.boundary_xy = np.array(
                [[grid.x0, grid.y0], [grid.x0 + w, grid.y0], [grid.x0 + w, grid.y0 + h], [grid.x0, grid.y0 + h]]
            )
            self.boundary_lonlat = np.column_stack(self.to_lonlat(self.boundary_xy[:, 0], self.boundary_xy[:, 1]))
        else:
            self.boundary_xy = np.column_stack(self.to_xy(bl[:, 0], bl[:, 1])).reshape(-1, 2)

        # regions
        regions = _normalise(regions, "region")
        x, y = self.to_xy(regions["lon"].to_numpy(np.float64), regions["lat"].to_numpy(np.float64))
        regions["x_m"], regions["y_m"] = x, y
        cols = ["name", "street"] + (["block"] if "block" in regions else []) + [
            "population", "area_km2", "lon", "lat", "x_m", "y_m"
        ]
        self.regions = regions[cols]
        self.region_index = self.regions.index
        self.age = np.ascontiguousarray(age, dtype=np.int64).reshape(n, 16)

        streets = _normalise(streets[["name"]], "street")
        self.street_of = streets.index.get_indexer(self.regions["street"]).astype(np.int64)
        if (self.street_of < 0).any():
            bad = self.regions.index[self.street_of < 0][0]
            raise ValueError(f"region {bad} refers to unknown street {self.regions.at[bad, 'street']!r}")
        k = len(streets)
        streets["population"] = np.bincount(self.street_of, weights=self.regions["population"], minlength=k).astype(np.int64)
        streets["area_km2"] = np.bincount(self.street_of, weights=self.regions["area_km2"], minlength=k)
        streets["n_neighbourhoods"] = np.bincount(self.street_of, minlength=k).astype(np.int64)
        self.streets = streets
        if blocks is not None:
            blocks = _normalise(blocks[["name", "street"]], "block")
            self.block_of = blocks.index.get_indexer(self.regions["block"]).astype(np.int64)
            nb = len(blocks)
            blocks["population"] = np.bincount(self.block_of, weights=self.regions["population"], minlength=nb).astype(np.int64)
            blocks["area_km2"] = np.bincount(self.block_of, weights=self.regions["area_km2"], minlength=nb)
            blocks["n_cells"] = np.bincount(self.block_of, minlength=nb).astype(np.int64)
            self.blocks = blocks
        else:
            self.block_of = None
            self.blocks = None

        self.sites = self._with_xy(sites if sites is not None else _empty_sites(), "site")
        self.enterprises = _normalise(enterprises if enterprises is not None else _empty_enterprises(), "enterprise")
        self.sensors = self._with_xy(sensors if sensors is not None else _empty_sensors(), "sensor")
        self._index: geo.BucketIndex | None = None
        self._pos: dict[str, int] | None = None

    def _with_xy(self, table: pd.DataFrame, index_name: str) -> pd.DataFrame:
        t = _normalise(table, index_name)
        x, y = self.to_xy(t["lon"].to_numpy(np.float64), t["lat"].to_numpy(np.float64))
        t["x_m"], t["y_m"] = x, y
        return t

    # ------------------------------------------------------------------ basics

    @property
    def n_regions(self) -> int:
        """Number of regions (neighbourhoods or cells)."""
        return len(self.regions)

    def __repr__(self) -> str:
        return (
            f"City({self.name!r}, kind={self.kind!r}, regions={self.n_regions}, streets={len(self.streets)}, "
            f"population={int(self.regions['population'].sum())})"
        )

    def to_xy(self, lon, lat) -> tuple[np.ndarray, np.ndarray]:
        """Project lon/lat (degrees) to local metric x/y (metres), vectorised.

        Equirectangular around ``(lon0, lat0)``: ``x = (lon - lon0) * R cos(lat0) pi/180``.

        Examples
        --------
        >>> city = City.grid((114.25, 30.55, 114.35, 30.65), cell_m=1000)
        >>> x, y = city.to_xy(city.lon0, city.lat0 + 0.01)
        >>> float(x), round(float(y), 1)
        (0.0, 1112.0)
        """
        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        return (lon - self.lon0) * self._kx, (lat - self.lat0) * self._ky

    def to_lonlat(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Inverse of :meth:`to_xy`.

        Examples
        --------
        >>> city = City.grid((114.25, 30.55, 114.35, 30.65), cell_m=1000)
        >>> lon, lat = city.to_lonlat(*city.to_xy(114.3, 30.6))
        >>> round(float(lon), 9), round(float(lat), 9)
        (114.3, 30.6)
        """
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        return x / self._kx + self.lon0, y / self._ky + self.lat0

    def _position(self, region) -> int:
        if isinstance(region, (numbers.Integral,)) and not isinstance(region, bool):
            i = int(region)
            if not 0 <= i < self.n_regions:
                raise IndexError(f"region position must be in [0, {self.n_regions}), got {i}")
            return i
        if self._pos is None:
            self._pos = {r: i for i, r in enumerate(self.region_index)}
        try:
            return self._pos[region]
        except KeyError:
            raise KeyError(f"unknown region {region!r}") from None

    def polygon(self, region) -> np.ndarray:
        """Vertices (metres, CCW, not closed) of a region, by position or id.

        Examples
        --------
        >>> city = City.grid((114.25, 30.55, 114.35, 30.65), cell_m=1000)
        >>> city.polygon(0).shape
        (4, 2)
        """
        i = self._position(region)
        return self.poly_xy[self.poly_offsets[i] : self.poly_offsets[i + 1]].copy()

    def neighbours(self, region) -> list[str]:
        """Ids of the regions sharing an edge with ``region`` (id or position).

        Examples
        --------
        >>> city = City.grid((114.25, 30.55, 114.35, 30.65), cell_m=1000)
        >>> city.neighbours("G000001")
        ['G000002', 'G000011']
        """
        i = self._position(region)
        nb = self.adj_indices[self.adj_indptr[i] : self.adj_indptr[i + 1]]
        return [self.region_index[j] for j in nb.tolist()]

    # ------------------------------------------------------------------ locate

    def locate(self, lon, lat) -> np.ndarray:
        """Region position (int64) of each lon/lat point, -1 outside every region.

        Vectorised point-in-polygon: a numba kernel scans only the polygons of a coarse bucket
        grid cell; grid cities use direct arithmetic (cells are half-open). A point claimed by
        two regions (on a shared edge) goes to the lower position.

        Parameters
        ----------
        lon, lat : array_like
            Same shape; NaN gives -1.

        Examples
        --------
        >>> city = City.grid((114.25, 30.55, 114.35, 30.65), cell_m=1000)
        >>> city.locate([114.2505, 114.0], [30.5505, 30.6]).tolist()
        [0, -1]
        """
        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        if lon.shape != lat.shape:
            raise ValueError(f"lon and lat must have the same shape, got {lon.shape} and {lat.shape}")
        x, y = self.to_xy(lon, lat)
        return self.locate_xy(x, y)

    def locate_xy(self, x, y) -> np.ndarray:
        """Like :meth:`locate` for metric x/y in the city's projection.

        Examples
        --------
        >>> city = City.grid((114.25, 30.55, 114.35, 30.65), cell_m=1000)
        >>> city.locate_xy(city.regions.x_m.iloc[[5]], city.regions.y_m.iloc[[5]]).tolist()
        [5]
        """
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if x.shape != y.shape:
            raise ValueError(f"x and y must have the same shape, got {x.shape} and {y.shape}")
        if self.grid_spec is not None:
            return self.grid_spec.locate_xy(x, y)
        if not self.has_polygons:
            raise ValueError(f"city {self.name!r} has no region polygons, so points cannot be located")
        if self._index is None:
            self._index = geo.BucketIndex.build(self.poly_xy, self.poly_offsets)
        return geo.locate_points(x, y, self.poly_xy, self.poly_offsets, self._index)

    # ------------------------------------------------------------------ summaries

    def fingerprint(self) -> str:
        """SHA-256 (hex) of the city's canonical arrays and tables.

        Equal cities (same seed, or saved and reloaded) have equal fingerprints.

        Examples
        --------
        >>> a = City.grid((114.25, 30.55, 114.35, 30.65), cell_m=1000, population=1000)
        >>> b = City.grid((114.25, 30.55, 114.35, 30.65), cell_m=1000, population=1000)
        >>> a.fingerprint() == b.fingerprint()
        True
        """
        h = hashlib.sha256()

        def put(tag: str, data: bytes) -> None:
            h.update(tag.encode())
            h.update(len(data).to_bytes(8, "little"))
            h.update(data)

        meta = dict(
            name=self.name, kind=self.kind, origin=[repr(self.lon0), repr(self.lat0)], levels=self.levels,
            grid=self.grid_spec.to_json() if self.grid_spec else None,
        )
        put("meta", json.dumps(meta, sort_keys=True, ensure_ascii=False).encode())
        for name in ("age", "poly_xy", "poly_offsets", "poly_edge_nbr", "adj_indptr", "adj_indices", "boundary_xy", "street_of"):
            a = np.ascontiguousarray(getattr(self, name))
            put(name, a.dtype.str.encode() + repr(a.shape).encode() + a.tobytes())
        tables = [("regions", self.regions), ("streets", self.streets), ("blocks", self.blocks), ("sites", self.sites),
                  ("enterprises", self.enterprises), ("sensors", self.sensors)]
        for tname, t in tables:
            if t is None:
                put(tname, b"none")
                continue
            put(tname + ".index", "\x1f".join(map(str, t.index)).encode())
            for col in t.columns:
                put(f"{tname}.{col}", _column_bytes(t[col]))
        return h.hexdigest()

    def describe(self) -> dict:
        """Summary counts and the fingerprint, JSON-ready.

        Keys: ``name``, ``kind``, ``neighbourhoods`` (regions), ``streets``, ``population``,
        ``area_km2``, ``sites`` (by kind), ``enterprises`` (by sector code), ``sensors`` (by
        kind), ``fingerprint`` (and ``blocks`` for grids).

        Examples
        --------
        >>> d = City.grid((114.25, 30.55, 114.35, 30.65), cell_m=1000).describe()
        >>> d["kind"], d["neighbourhoods"], d["streets"], d["blocks"]
        ('grid', 120, 1, 2)
        """

        def counts(series: pd.Series, keys: list[str]) -> dict:
            vc = series.value_counts()
            out = {k: int(vc.get(k, 0)) for k in keys}
            out.update({str(k): int(v) for k, v in vc.items() if k not in out})
            return out

        d = dict(
            name=self.name,
            kind=self.kind,
            neighbourhoods=self.n_regions,
            streets=len(self.streets),
            population=int(self.regions["population"].sum()),
            area_km2=round(float(self.regions["area_km2"].sum()), 6),
            sites=counts(self.sites["kind"], list(SITE_KINDS)),
            enterprises=counts(self.enterprises["sector"], SECTOR_CODES),
            sensors=counts(self.sensors["kind"], list(SENSOR_KINDS)),
            fingerprint=self.fingerprint(),
        )
        if self.blocks is not None:
            d["blocks"] = len(self.blocks)
        return d

    # ------------------------------------------------------------------ constructors

    @classmethod
    def synthetic(
        cls,
        seed: int = 0,
        neighbourhoods: int = 300,
        streets: int = 13,
        population: int = 1_100_000,
        *,
        area_km2: float | None = None,
        name: str = "江滨区",
    ) -> "City":
        """A deterministic synthetic inner-city district (around 114.30 E, 30.60 N).

        A convex district outline is tiled by a Voronoi tessellation of Lloyd-relaxed random
        seeds; streets are contiguous groups grown from k-means centres; population is
        lognormal across neighbourhoods (integers summing exactly to ``population``) with a
        16-band age structure perturbed from Wuhan's; sites, enterprises and sensors are
        placed inside the polygons with counts scaled to the population.

        Parameters
        ----------
        seed : int
            Same seed, same city (bit for bit).
        neighbourhoods : int
            Number of neighbourhoods (>= 1).
        streets : int
            Number of streets (1 .. neighbourhoods).
        population : int
            Total residents (>= 0).
        area_km2 : float, optional
            District area; default 80 km2 per 300 neighbourhoods.
        name : str
            District name.

        Returns
        -------
        City

        Examples
        --------
        >>> city = City.synthetic(seed=3, neighbourhoods=30, streets=3, population=100_000)
        >>> int(city.regions.population.sum()), len(city.streets)
        (100000, 3)
        >>> city.fingerprint() == City.synthetic(seed=3, neighbourhoods=30, streets=3, population=100_000).fingerprint()
        True
        """
        from engine.city.synthetic import synthetic_district

        return synthetic_district(seed, neighbourhoods, streets, population, area_km2=area_km2, name=name)

    @classmethod
    def grid(
        cls,
        bbox: tuple[float, float, float, float],
        cell_m: float = 100,
        block_cells: int = 10,
        street_blocks: int = 5,
        population: int | None = None,
        *,
        name: str = "网格城市",
    ) -> "City":
        """A regular metric grid ("万米网格") over a lon/lat bounding box.

        Cells of ``cell_m`` metres (ids ``G000001``... row-major from the south-west) group
        into square blocks of ``block_cells`` x ``block_cells`` cells, and blocks into streets
        of ``street_blocks`` x ``street_blocks`` blocks. The grid covers the box (the last row
        and column may reach past it).

        Parameters
        ----------
        bbox : (lon_min, lat_min, lon_max, lat_max)
        cell_m : float
            Cell side in metres (> 0).
        block_cells, street_blocks : int
            Cells per block side, blocks per street side (>= 1).
        population : int, optional
            ``None``: nobody; an int is spread evenly over the cells (exact total).
        name : str

        Examples
        --------
        >>> city = City.grid((114.25, 30.55, 114.35, 30.65), cell_m=1000, block_cells=5, street_blocks=2, population=1000)
        >>> city.n_regions, len(city.blocks), len(city.streets), int(city.regions.population.sum())
        (120, 6, 2, 1000)
        """
        from engine.city.grid import grid_over_bbox

        return grid_over_bbox(bbox, cell_m, block_cells, street_blocks, population, name=name)

    # ------------------------------------------------------------------ files

    def save(self, path: str | os.PathLike, *, regions_format: str = "geojson") -> Path:
        """Write the city as a folder of plain files; :meth:`load` reads it back exactly.

        Files: ``city.json``, ``regions.geojson`` (or ``regions.csv`` with a ``wkt`` column
        when ``regions_format="csv"``, or always when the city has no polygons),
        ``streets.csv``, ``blocks.csv`` (grids), ``sites.csv``, ``enterprises.csv``,
        ``sensors.csv``. Existing files of those names are replaced.

        Examples
        --------
        >>> import tempfile
        >>> city = City.synthetic(seed=2, neighbourhoods=20, streets=2, population=50_000)
        >>> with tempfile.TemporaryDirectory() as d:
        ...     _ = city.save(d)
        ...     City.load(d).fingerprint() == city.fingerprint()
        True
        """
        from engine.city.files import _save_city

        return _save_city(self, Path(path), regions_format)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "City":
        """Read a city folder (see :meth:`save`); raises :class:`CityFileError` on bad files.

        ``regions.geojson`` (Polygon features with properties ``id``, ``name``, ``street``,
        ``population``, ``age_0_4`` ... ``age_75_plus``, optional ``street_name``, ``block``,
        ``neighbours``) or ``regions.csv`` (``id``, ``name``, ``street``, ``population``,
        ``lon``, ``lat``, ``area_km2``, age columns, optional ``wkt``, ``neighbours`` as
        ``id;id``) is required; every other file is optional.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> with tempfile.TemporaryDirectory() as d:
        ...     _ = pathlib.Path(d, "regions.csv").write_text("id,name,street,population,lon,lat,area_km2\\nA,甲,S1,100,114.3,30.6,0.5\\n")
        ...     City.load(d).regions.population.tolist()
        [100]
        """
        from engine.city.files import _load_city

        return _load_city(Path(path))
