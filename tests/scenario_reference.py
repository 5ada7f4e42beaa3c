"""Slow, obvious references of the scenario runner's kernels (engine/scenario/store.py)."""

from __future__ import annotations

import warnings

import numpy as np


def period_mean_max(value, score, factor):
    """Mean value and max score per period of ``factor`` cycles, NaN skipped (numpy's nan-reductions)."""
    n = value.shape[0] // factor * factor
    v = np.asarray(value[:n], dtype=np.float64).reshape(n // factor, factor, *value.shape[1:])
    s = np.asarray(score[:n], dtype=np.float64).reshape(n // factor, factor, *score.shape[1:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(v, axis=1).astype(np.float32), np.nanmax(s, axis=1).astype(np.float32)
