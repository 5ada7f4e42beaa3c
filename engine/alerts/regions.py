"""Region levels of a city as the alert engine sees them: ids, names and containment.

A districts city has the levels ``neighbourhood`` (the city's regions), ``street`` and
``district``; a grid city has ``cell``, ``block``, ``street`` and ``district``. The district level
has one region, id :data:`DISTRICT_ID`, named after the city.

>>> from engine.city import City
>>> h = Hierarchy(City.synthetic(seed=1, neighbourhoods=12, streets=3, population=30_000))
>>> h.levels, h.size("street"), h.ids("district")
(['neighbourhood', 'street', 'district'], 3, ['district'])
>>> h.contains("street", 0, "neighbourhood", 0)
True
"""

from __future__ import annotations

import numpy as np

__all__ = ["DISTRICT_ID", "Hierarchy"]

#: id of the single district-level region
DISTRICT_ID = "district"


class Hierarchy:
    """Levels, region ids and names, and which region contains which.

    Parameters
    ----------
    city : engine.city.City

    Examples
    --------
    >>> from engine.city import City
    >>> h = Hierarchy(City.synthetic(seed=1, neighbourhoods=12, streets=3, population=30_000))
    >>> h.find("S02")
    ('street', 1)
    >>> [h.ids("neighbourhood")[i] for i in h.members("street", 0, "neighbourhood")][:2]
    ['N0001', 'N0002']
    """

    def __init__(self, city):
        self.city = city
        self.levels = list(city.levels)
        base = self.levels[0]
        n = city.n_regions
        self._ids = {base: [str(x) for x in city.regions.index],
                     "street": [str(x) for x in city.streets.index],
                     "district": [DISTRICT_ID]}
        self._names = {base: [str(x) for x in city.regions["name"]],
                       "street": [str(x) for x in city.streets["name"]],
                       "district": [str(city.name)]}
        # parent index of each base region at each level
        self._up = {base: np.arange(n, dtype=np.int64),
                    "street": np.asarray(city.street_of, np.int64),
                    "district": np.zeros(n, np.int64)}
        if "block" in self.levels:
            self._ids["block"] = [str(x) for x in city.blocks.index]
            self._names["block"] = [str(x) for x in city.blocks["name"]]
            self._up["block"] = np.asarray(city.block_of, np.int64)
        self._pos = {lvl: {rid: i for i, rid in enumerate(ids)} for lvl, ids in self._ids.items()}
        self._maps: dict = {}

    def _check(self, level: str) -> str:
        if level not in self._ids:
            raise ValueError(f"unknown level {level!r}; expected one of {self.levels}")
        return level

    def rank(self, level: str) -> int:
        """0 for the finest level, increasing upwards."""
        return self.levels.index(self._check(level))

    def size(self, level: str) -> int:
        """Number of regions at a level."""
        return len(self._ids[self._check(level)])

    def ids(self, level: str) -> list[str]:
        return self._ids[self._check(level)]

    def names(self, level: str) -> list[str]:
        return self._names[self._check(level)]

    def index(self, level: str, region_id: str) -> int | None:
        """Index of a region id at a level, or ``None``."""
        return self._pos[self._check(level)].get(region_id)

    def find(self, region_id: str) -> tuple[str, int] | None:
        """``(level, index)`` of a region id (the finest level that has it), or ``None``."""
        for lvl in self.levels:
            i = self._pos[lvl].get(region_id)
            if i is not None:
                return lvl, i
        return None

    def parent_map(self, child: str, parent: str) -> np.ndarray:
        """For each region of ``child``, the index of the ``parent``-level region containing it."""
        if self.rank(parent) < self.rank(child):
            raise ValueError(f"{parent!r} is below {child!r}")
        key = (child, parent)
        if key not in self._maps:
            if child == self.levels[0]:
                out = self._up[parent].copy()
            else:  # through any member base region of each child region
                first = np.full(self.size(child), -1, np.int64)
                up = self._up[child]
                first[up[::-1]] = np.arange(len(up))[::-1]
                out = np.where(first >= 0, self._up[parent][np.maximum(first, 0)], -1)
            out.setflags(write=False)
            self._maps[key] = out
        return self._maps[key]

    def contains(self, outer_level: str, outer: int, inner_level: str, inner: int) -> bool:
        """Whether region ``outer`` (at ``outer_level``) contains or is region ``inner``."""
        if self.rank(outer_level) < self.rank(inner_level):
            return False
        if outer_level == inner_level:
            return outer == inner
        return int(self.parent_map(inner_level, outer_level)[inner]) == outer

    def members(self, level: str, index: int, inner_level: str) -> np.ndarray:
        """Indices of the ``inner_level`` regions inside region ``index`` of ``level``."""
        return np.flatnonzero(self.parent_map(inner_level, level) == index)
