"""The local equirectangular projection: earth radius, default origin, metres per degree."""

from __future__ import annotations

import math


_EARTH_RADIUS_M = 6_371_008.8
_DEFAULT_ORIGIN = (114.30, 30.60)


def _scales(lat0: float) -> tuple[float, float]:
    """Metres per degree of longitude and latitude of the equirectangular projection at ``lat0``."""
    ky = _EARTH_RADIUS_M * math.pi / 180.0
    return ky * math.cos(math.radians(lat0)), ky
