"""A small hand-made city with the same interface as :class:`engine.City` (for tests and examples).

The simulator reads only these attributes of a city: ``regions`` (DataFrame indexed by region id,
with ``population`` and optionally ``x_m``, ``y_m``), ``age`` (int64 ``(n_regions, 16)``),
``adj_indptr`` / ``adj_indices`` (CSR adjacency), ``sites`` (``kind``, ``region``, ``capacity``)
and ``enterprises`` (``sector``, ``employees``, ``region``). :class:`MiniCity` provides them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from engine.sim.contacts import wuhan_population
from engine.sim.policy import SECTORS, VENUE_KINDS


@dataclass
class MiniCity:
    """Regions, age structure, adjacency, sites and enterprises, as plain tables.

    Examples
    --------
    >>> city = MiniCity.uniform(n_regions=3, residents=10_000, seed=1)
    >>> city.age.shape, int(city.age.sum())
    ((3, 16), 30000)
    >>> sorted(set(city.sites.kind))[:2]
    ['mall', 'restaurant']
    """

    regions: pd.DataFrame
    age: np.ndarray
    adj_indptr: np.ndarray
    adj_indices: np.ndarray
    sites: pd.DataFrame
    enterprises: pd.DataFrame

    @property
    def n_regions(self) -> int:
        return len(self.regions)

    @classmethod
    def uniform(cls, n_regions: int = 1, residents: int = 100_000, age_share=None, spacing_m: float = 2000.0,
                venues_per_region: int = 4, employment: float = 0.6, seed: int = 0) -> "MiniCity":
        """``n_regions`` neighbourhoods on a line, each with the same population and age structure,
        linked to their neighbours; one enterprise per sector per neighbourhood (employing
        ``employment`` of the working-age residents in all) and ``venues_per_region`` venues.

        ``age_share`` defaults to Wuhan's age structure. Capacities are drawn with ``seed``.
        """
        if n_regions < 1 or residents < 1:
            raise ValueError(f"need n_regions >= 1 and residents >= 1, got {n_regions}, {residents}")
        share = wuhan_population() if age_share is None else np.asarray(age_share, dtype=np.float64)
        share = share / share.sum()
        base = np.floor(share * residents).astype(np.int64)
        base[np.argmax(share)] += residents - base.sum()
        age = np.tile(base, (n_regions, 1))
        ids = pd.Index([f"R{i:03d}" for i in range(n_regions)], name="region")
        regions = pd.DataFrame({"name": ids, "street": "S0", "population": age.sum(axis=1),
                                "area_km2": 1.0, "x_m": np.arange(n_regions) * spacing_m,
                                "y_m": 0.0}, index=ids)
        nbrs = [[j for j in (i - 1, i + 1) if 0 <= j < n_regions] for i in range(n_regions)]
        indptr = np.concatenate([[0], np.cumsum([len(n) for n in nbrs])]).astype(np.int64)
        indices = np.array([j for n in nbrs for j in n], dtype=np.int64)
        rng = np.random.default_rng(seed)
        rows = []
        for i in range(n_regions):
            for k in range(venues_per_region):
                rows.append({"kind": VENUE_KINDS[k % len(VENUE_KINDS)], "region": ids[i],
                             "capacity": int(rng.integers(100, 1000)), "fever_clinic": False})
        sites = pd.DataFrame(rows, columns=["kind", "region", "capacity", "fever_clinic"])
        sites.index = pd.Index([f"V{i:04d}" for i in range(len(sites))], name="site")
        working = base[4:13].sum()
        per_sector = employment * working / len(SECTORS)
        ent = pd.DataFrame([{"sector": s, "size": "medium", "employees": per_sector, "region": ids[i]}
                            for i in range(n_regions) for s in SECTORS])
        ent.index = pd.Index([f"E{i:05d}" for i in range(len(ent))], name="enterprise")
        return cls(regions, age, indptr, indices, sites, ent)
