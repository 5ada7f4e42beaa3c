"""Shared by the tests/test_city_*.py modules: a reference point locator and the city fixtures.

The fixtures are module-scoped; each test module imports the ones it uses.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.city import City


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



@pytest.fixture(scope="module")
def city() -> City:
    return City.synthetic()


@pytest.fixture(scope="module")
def small() -> City:
    return City.synthetic(seed=5, neighbourhoods=40, streets=4, population=150_000)


@pytest.fixture(scope="module")
def gridcity() -> City:
    return City.grid((114.25, 30.55, 114.31, 30.60), cell_m=500, block_cells=3, street_blocks=2, population=10_007)
