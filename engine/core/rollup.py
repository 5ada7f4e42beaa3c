"""Roll-ups from neighbourhoods (or grid cells) to streets, blocks and the district.

Each indicator follows its ``rollup`` rule, exactly:

* ``sum``      sum of the regions' values (NaN skipped; all NaN gives NaN);
* ``ratio``    ``mult * sum(num) / sum(den)`` over regions with a defined numerator (counts per
               10k residents: summed counts over summed residents; means: summed sums over summed
               counts; shares: summed matches over summed totals) - never a mean of ratios;
* ``pop_mean`` population-weighted mean over regions with a value;
* ``max`` / ``min``  extreme over regions with a value;
* ``formula``  the derived formula re-evaluated on the rolled-up inputs.
"""

from __future__ import annotations

import numpy as np

from engine.core.plan import R_MAX, R_MIN, R_POPMEAN, R_RATIO, R_SUM


def level_groups(city, level: str) -> tuple[np.ndarray, list[str], np.ndarray]:
    """``(group of each region, group labels, population per group)`` for a level.

    ``level`` is one of ``city.levels`` (``"neighbourhood"``, ``"street"``, ``"district"``; or
    ``"cell"``, ``"block"``, ``"street"``, ``"district"`` for grids).

    Examples
    --------
    >>> from engine import City
    >>> g, labels, pop = level_groups(City.synthetic(seed=1, neighbourhoods=12, streets=3, population=9000), "street")
    >>> len(labels), int(pop.sum())
    (3, 9000)
    """
    levels = list(city.levels)
    if level not in levels:
        raise ValueError(f"unknown level {level!r}; expected one of {levels}")
    pop = city.regions["population"].to_numpy(np.float64)
    n = city.n_regions
    if level == levels[0]:
        return np.arange(n, dtype=np.int64), [str(x) for x in city.regions.index], pop
    if level == "street":
        g, labels = city.street_of, [str(x) for x in city.streets.index]
    elif level == "block":
        g, labels = city.block_of, [str(x) for x in city.blocks.index]
    else:
        g, labels = np.zeros(n, dtype=np.int64), [str(city.name)]
    g = np.asarray(g, dtype=np.int64)
    return g, labels, np.bincount(g, weights=pop, minlength=len(labels))


def _group_sum(x: np.ndarray, g: np.ndarray, ng: int) -> np.ndarray:
    """Sum over the last axis by group (x: rows x regions)."""
    out = np.zeros(x.shape[:-1] + (ng,), dtype=np.float64)
    order = np.argsort(g, kind="stable")
    gs = g[order]
    starts = np.flatnonzero(np.r_[True, gs[1:] != gs[:-1]])
    red = np.add.reduceat(x[..., order], starts, axis=-1)
    out[..., gs[starts]] = red
    return out


def _group_reduce(x: np.ndarray, g: np.ndarray, ng: int, ufunc, fill: float) -> np.ndarray:
    out = np.full(x.shape[:-1] + (ng,), fill, dtype=np.float64)
    order = np.argsort(g, kind="stable")
    gs = g[order]
    starts = np.flatnonzero(np.r_[True, gs[1:] != gs[:-1]])
    out[..., gs[starts]] = ufunc.reduceat(x[..., order], starts, axis=-1)
    return out


def rollup(V, num, den, codes, mult, g, ng, pop, derived=None) -> np.ndarray:
    """Roll a neighbourhood matrix up to ``ng`` groups.

    Parameters
    ----------
    V, num, den : ndarray (indicators x regions)
        Values and, for ``ratio`` rows, numerators and denominators (value = mult * num / den).
    codes : ndarray of int8
        Roll-up code per row (:data:`engine.core.plan.ROLLUP_CODES`).
    mult : ndarray
        Multiplier per row (100 for shares).
    g : ndarray of int64
        Group of each region; ``ng`` groups.
    pop : ndarray
        Population per region (for ``pop_mean``).
    derived : engine.core.derived.DerivedPlan, optional
        Re-evaluates ``formula`` rows on the rolled-up matrix.

    Examples
    --------
    >>> V = np.array([[1.0, 3.0], [10.0, 30.0]]); num = np.array([[1.0, 3.0], [1.0, 3.0]])
    >>> den = np.array([[1.0, 1.0], [0.1, 0.1]])
    >>> rollup(V, num, den, np.array([0, 1], np.int8), np.ones(2), np.array([0, 0]), 1, np.ones(2))
    array([[ 4.],
           [20.]])
    """
    out = np.full((V.shape[0], ng), np.nan, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        rows = np.flatnonzero(codes == R_SUM)
        if len(rows):
            x = V[rows]
            ok = ~np.isnan(x)
            s = _group_sum(np.where(ok, x, 0.0), g, ng)
            c = _group_sum(ok.astype(np.float64), g, ng)
            out[rows] = np.where(c > 0, s, np.nan)
        rows = np.flatnonzero(codes == R_RATIO)
        if len(rows):
            a, d = num[rows], den[rows]
            ok = ~np.isnan(a)
            sa = _group_sum(np.where(ok, a, 0.0), g, ng)
            sd = _group_sum(np.where(ok, d, 0.0), g, ng)
            m = mult[rows][:, None]
            out[rows] = np.where(sd != 0, m * (sa / np.where(sd != 0, sd, 1.0)), np.nan)
        rows = np.flatnonzero(codes == R_POPMEAN)
        if len(rows):
            x = V[rows]
            ok = ~np.isnan(x)
            w = np.broadcast_to(pop, x.shape)
            s = _group_sum(np.where(ok, x * w, 0.0), g, ng)
            sw = _group_sum(np.where(ok, w, 0.0), g, ng)
            out[rows] = np.where(sw > 0, s / np.where(sw > 0, sw, 1.0), np.nan)
        for code, uf, fill in ((R_MAX, np.fmax, np.nan), (R_MIN, np.fmin, np.nan)):
            rows = np.flatnonzero(codes == code)
            if len(rows):
                r = _group_reduce(V[rows], g, ng, uf, fill)
                out[rows] = r
    if derived is not None:
        derived.evaluate(out)
    return out
