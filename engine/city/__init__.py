"""The city model: regions, hierarchy, population, polygons, adjacency, sites, enterprises, sensors.

A :class:`City` is either a district of neighbourhoods (``kind="districts"``: district > street
> neighbourhood) or a regular metric grid (``kind="grid"``: district > street > block > cell, the
"万米网格"). It comes from a seeded synthetic generator (:meth:`City.synthetic`), a grid over a
bounding box (:meth:`City.grid`) or a folder of plain files (:meth:`City.load`), and is written
back with :meth:`City.save`.

Coordinates are kept both as lon/lat (WGS84 degrees, what files carry) and as metric x/y in an
equirectangular projection around the city's origin (``lon0``, ``lat0``). For districts the
lon/lat values are canonical and x/y are derived from them (so a saved and reloaded city is bit
for bit the same); for grids the metric cell corners are canonical.

The vocabularies (:data:`AGE_BANDS`, :data:`SECTORS`, :data:`SITE_KINDS`,
:data:`SENSOR_KINDS`) are package constants: feeds, the indicator catalog and the simulator use
these exact ids.

Where things live:

- :mod:`~engine.city.vocab`: age bands, sectors, sizes, site and sensor kinds;
- :mod:`~engine.city.model`: the :class:`City` class (tables, arrays, projection, locate,
  polygons, neighbours, fingerprint, describe);
- :mod:`~engine.city.synthetic`: the synthetic district generator (:meth:`City.synthetic`);
- :mod:`~engine.city.gridspec` and :mod:`~engine.city.grid`: :class:`GridSpec` and grid
  cities (:meth:`City.grid`);
- :mod:`~engine.city.files` and :mod:`~engine.city.readers`: :meth:`City.save`,
  :meth:`City.load` and the checked file parsers; :mod:`~engine.city.errors`:
  :class:`CityFileError`;
- small shared helpers: :mod:`~engine.city.tables` (canonical dtypes, empty tables),
  :mod:`~engine.city.population` (apportioning, reference age structure),
  :mod:`~engine.city.naming` (ids, place names), :mod:`~engine.city.projection`,
  :mod:`~engine.city.checks`.

>>> city = City.synthetic(seed=1, neighbourhoods=40, streets=4, population=150_000)
>>> d = city.describe()
>>> d["neighbourhoods"], d["streets"], d["population"]
(40, 4, 150000)
>>> int(city.locate(city.regions.lon.iloc[:3], city.regions.lat.iloc[:3]).tolist()[2])
2
"""

from __future__ import annotations

# When engine.city was one module its imports were reachable as attributes (engine.city.np, ...);
# they stay reachable for old callers.
import hashlib  # noqa: F401
import json  # noqa: F401
import math  # noqa: F401
import numbers  # noqa: F401
import os  # noqa: F401
import re  # noqa: F401
from dataclasses import dataclass  # noqa: F401
from pathlib import Path  # noqa: F401
from typing import NamedTuple  # noqa: F401

import numpy as np  # noqa: F401
import pandas as pd  # noqa: F401

from engine import geometry as geo  # noqa: F401

# Re-exports: every name ``engine.city`` offered when it was a single module still resolves here,
# private helpers included (tests and other modules import some of them).
from engine.city.checks import _check_int
from engine.city.errors import CityFileError
from engine.city.files import _FORMAT, _csv_text, _load_city, _r, _ring_wkt, _save_city, _write_text
from engine.city.grid import _build_grid, _grid_city, _grid_hierarchy
from engine.city.gridspec import GridSpec
from engine.city.model import City
from engine.city.naming import _SUFFIXES, _SYLLABLES, _ids, _names
from engine.city.population import _apportion, _apportion_rows, _base_age_proportions
from engine.city.projection import _DEFAULT_ORIGIN, _EARTH_RADIUS_M, _scales
from engine.city.readers import (
    _FALSE,
    _INT_RE,
    _TRUE,
    _WKT_RE,
    _check_grid,
    _check_rings,
    _Columns,
    _parse_ring,
    _read_csv,
    _read_json,
    _read_meta,
    _read_regions,
)
from engine.city.synthetic import (
    _BIG_SECTORS,
    _CENTRAL_SECTORS,
    _LARGE_MAX,
    _REF_AREA_KM2,
    _REF_ENTERPRISES,
    _REF_POPULATION,
    _SECTOR_SHARE,
    _SIZE_P_BIG,
    _SIZE_P_DEFAULT,
    _district_outline,
    _reorder_polygons,
    _synthesize,
    _uniform_in,
    _weights,
)
from engine.city.tables import (
    _FLOAT_COLUMNS,
    _INT_COLUMNS,
    _TEXT_COLUMNS,
    _column_bytes,
    _empty_enterprises,
    _empty_sensors,
    _empty_sites,
    _normalise,
)
from engine.city.vocab import (
    AGE_BANDS,
    AGE_COLUMNS,
    CAMERA_SITE_KINDS,
    SECTOR_CODES,
    SECTORS,
    SENSOR_KINDS,
    SITE_KINDS,
    SIZES,
    Sector,
    SensorKind,
    SiteKind,
)

__all__ = [
    "AGE_BANDS",
    "AGE_COLUMNS",
    "CAMERA_SITE_KINDS",
    "SECTORS",
    "SENSOR_KINDS",
    "SITE_KINDS",
    "SIZES",
    "City",
    "CityFileError",
    "GridSpec",
    "Sector",
    "SensorKind",
    "SiteKind",
]
