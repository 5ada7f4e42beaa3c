"""Whole-number apportioning of people and the reference (Wuhan) age structure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def _apportion(total: int, weights: np.ndarray) -> np.ndarray:
    """Integers proportional to ``weights`` summing exactly to ``total`` (largest remainder)."""
    w = np.asarray(weights, dtype=np.float64)
    if total == 0 or len(w) == 0:
        return np.zeros(len(w), dtype=np.int64)
    s = w.sum()
    if not s > 0:
        w = np.ones(len(w))
        s = float(len(w))
    exact = w * (total / s)
    base = np.floor(exact).astype(np.int64)
    rest = int(total - base.sum())
    order = np.argsort(-(exact - base), kind="stable")
    base[order[:rest]] += 1
    return base


def _apportion_rows(totals: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Row-wise :func:`_apportion`: ``probs`` (n, k) rows summing to 1, integer totals (n,)."""
    totals = np.asarray(totals, dtype=np.int64)
    exact = totals[:, None] * probs
    base = np.floor(exact).astype(np.int64)
    rest = totals - base.sum(1)
    order = np.argsort(-(exact - base), axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(probs.shape[1])[None, :].repeat(len(totals), 0), axis=1)
    return base + (rank < rest[:, None])


def _base_age_proportions() -> np.ndarray:
    path = Path(__file__).parents[1] / "data" / "prem" / "wuhanpop.csv"
    p = pd.read_csv(path)["propage"].to_numpy(dtype=np.float64)
    if p.shape != (16,):
        raise RuntimeError(f"{path} must have 16 age bands, found {p.shape[0]}")
    return p / p.sum()
