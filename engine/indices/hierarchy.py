"""The region hierarchy the indices roll up through: neighbourhood (or grid cell) -> street (or
block -> street) -> district, built from a :class:`~engine.city.City` and a Dataset's regions.

Normalised indicator scores are averaged upwards with region weights (population by default,
area when nobody lives there, equal when there is no area either); see docs/indices.md.

>>> from engine.city import City
>>> city = City.synthetic(seed=1, neighbourhoods=12, streets=3, population=30_000)
>>> h = Hierarchy.build(list(city.regions.index), city)
>>> [lv.name for lv in h.levels], [len(lv.ids) for lv in h.levels]
(['neighbourhood', 'street', 'district'], [12, 3, 1])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Level:
    """One level: region ids and names, and each region's parent position in the next level."""

    name: str
    ids: list
    names: list
    parent: np.ndarray | None  # int64 positions into the next level; None for the top


@dataclass
class Hierarchy:
    """Levels bottom-up; ``weight`` is each base region's weight within its parent."""

    levels: list
    weight: np.ndarray

    @property
    def base(self) -> Level:
        return self.levels[0]

    @classmethod
    def build(cls, region_ids, city=None, weight: str = "population") -> "Hierarchy":
        """Hierarchy for the Dataset's ``region_ids`` (any order, a subset of the city's).

        Without a city there is a single level, ``neighbourhood``, with equal weights.

        Raises
        ------
        ValueError
            When region ids are not in the city (the message lists a few).
        """
        ids = [str(r) for r in region_ids]
        if city is None:
            return cls([Level("neighbourhood", ids, ids, None)], np.ones(len(ids)))
        pos = city.regions.index.get_indexer(ids)
        if (pos < 0).any():
            bad = [ids[k] for k in np.flatnonzero(pos < 0)[:3]]
            raise ValueError(f"regions not in city {city.name!r}: {', '.join(bad)} "
                             f"(the city has {city.n_regions} regions, e.g. {city.regions.index[0]}); "
                             "pass the city the run was computed for")
        reg = city.regions.iloc[pos]
        w = _region_weight(reg, weight)
        base_name = city.levels[0]
        levels = []
        streets = city.streets
        street_of = city.street_of[pos]
        if city.blocks is not None and city.block_of is not None:
            blocks = city.blocks
            block_of = city.block_of[pos]
            levels.append(Level(base_name, ids, reg["name"].tolist(), block_of.astype(np.int64)))
            bstreet = streets.index.get_indexer(blocks["street"]).astype(np.int64)
            levels.append(Level("block", blocks.index.tolist(), blocks["name"].tolist(), bstreet))
        else:
            levels.append(Level(base_name, ids, reg["name"].tolist(), street_of.astype(np.int64)))
        levels.append(Level("street", streets.index.tolist(), streets["name"].tolist(), np.zeros(len(streets), dtype=np.int64)))
        levels.append(Level("district", [city.name], [city.name], None))
        return cls(levels, w)

    def all_regions(self) -> tuple[list, list, list, list]:
        """Ids, names, level names and parent ids of every region at every level, bottom-up."""
        ids, names, lv, parents = [], [], [], []
        for k, level in enumerate(self.levels):
            ids += level.ids
            names += level.names
            lv += [level.name] * len(level.ids)
            if level.parent is None:
                parents += [""] * len(level.ids)
            else:
                up = self.levels[k + 1].ids
                parents += [up[p] for p in level.parent]
        return ids, names, lv, parents

    def blocks(self, target: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Visiting order of the base regions and thread blocks of whole parents.

        Returns ``order`` (base positions sorted by parent, stable), ``start`` and ``stop``
        (positions into ``order``); each block holds one or more complete parents and about
        ``target`` regions.
        """
        n = len(self.base.ids)
        if self.base.parent is None:
            order = np.arange(n, dtype=np.int64)
            cuts = list(range(0, n, target)) + [n]
        else:
            order = np.argsort(self.base.parent, kind="stable").astype(np.int64)
            sorted_parent = self.base.parent[order]
            bounds = np.flatnonzero(np.diff(sorted_parent)) + 1
            cuts = [0]
            for b in bounds:
                if b - cuts[-1] >= target:
                    cuts.append(int(b))
            cuts.append(n)
        cuts = sorted(set(cuts))
        if len(cuts) == 1:
            cuts = [0, 0]
        return order, np.asarray(cuts[:-1], dtype=np.int64), np.asarray(cuts[1:], dtype=np.int64)


def _region_weight(reg, kind: str) -> np.ndarray:
    n = len(reg)
    if kind == "population":
        w = reg["population"].to_numpy(np.float64)
        if w.sum() > 0:
            return w
        kind = "area"
    if kind == "area":
        w = reg["area_km2"].to_numpy(np.float64)
        if np.isfinite(w).all() and w.sum() > 0:
            return w
    return np.ones(n)
