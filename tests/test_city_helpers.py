"""Shared by the tests/test_city_*.py modules: a reference point locator and the city fixtures.

The fixtures are module-scoped; each test module imports the ones it uses.
"""

from __future__ import annotations

import pytest

from engine.city import City
from test_geometry_helpers import reference_locate  # noqa: F401  (the one slow locator)


@pytest.fixture(scope="module")
def city() -> City:
    return City.synthetic()


@pytest.fixture(scope="module")
def small() -> City:
    return City.synthetic(seed=5, neighbourhoods=40, streets=4, population=150_000)


@pytest.fixture(scope="module")
def gridcity() -> City:
    return City.grid((114.25, 30.55, 114.31, 30.60), cell_m=500, block_cells=3, street_blocks=2, population=10_007)
