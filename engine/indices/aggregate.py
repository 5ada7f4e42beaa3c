"""Aggregation above the indicator pass: group scores, composites (domains, overall, safety
index, risks), and the same on tables of normalised scores (streets, district).

All functions are vectorised over regions; the loops are over the handful of groups.

>>> import numpy as np
>>> finish(np.array([[1.5, 0.0]]), np.array([[2.0, 0.0]]), geometric=False)
array([[0.75,  nan]])
"""

from __future__ import annotations

import numpy as np

from engine.indices.spec import IndexSpec


def finish(num: np.ndarray, den: np.ndarray, geometric: bool) -> np.ndarray:
    """Group scores in [0, 1] from the weighted sums; NaN where no value was present."""
    with np.errstate(invalid="ignore", divide="ignore"):
        s = num / den
    s = np.where(den > 0, s, np.nan)
    return np.exp(s) if geometric else s


def _combine(child: np.ndarray, child_imp: np.ndarray, w: np.ndarray, parent: np.ndarray, n_parent: int,
             geometric: bool, gfloor: float) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean (arithmetic or geometric) of child scores per parent, over the children
    present; imputed share = weighted mean of the children's (a missing child counts 1).

    A loop over the (few) children rather than a matrix product: BLAS threads fight numba's
    for the cores and make a tiny product cost milliseconds on a busy machine.
    """
    ok = np.isfinite(child)
    if geometric:
        f = np.log(np.maximum(np.where(ok, child, 1.0), gfloor))
    else:
        f = child
    f = np.where(ok, f, 0.0)
    imp_c = np.where(ok, child_imp, 1.0)
    cols = child.shape[1:]
    num = np.zeros((n_parent,) + cols)
    den = np.zeros((n_parent,) + cols)
    imp = np.zeros((n_parent,) + cols)
    tot = np.zeros(n_parent)
    for c in range(child.shape[0]):
        p, wc = parent[c], w[c]
        num[p] += wc * f[c]
        den[p] += wc * ok[c]
        imp[p] += wc * imp_c[c]
        tot[p] += wc
    score = finish(num, den, geometric)
    tot = tot.reshape((n_parent,) + (1,) * len(cols))
    with np.errstate(invalid="ignore", divide="ignore"):
        imp = imp / tot
    imp = np.where(tot > 0, imp, 1.0)
    return score, imp


def compose(group_score: np.ndarray, group_imp: np.ndarray, spec: IndexSpec, geometric: bool,
            gfloor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every index from the group scores.

    Parameters
    ----------
    group_score, group_imp : (n_groups, n_regions)
        Dimension, safety-angle and risk scores in [0, 1] and their imputed weight shares.

    Returns
    -------
    health : (n_index, n_regions) in [0, 100], rows in :attr:`IndexSpec.index_labels` order
    imputed : (n_index, n_regions) share of the weight that was imputed
    angles : (n_angles, n_regions) safety-angle scores in [0, 100]
    """
    nd, na = len(spec.dims), len(spec.config.angles)
    dim_s, dim_i = group_score[:nd], group_imp[:nd]
    ang_s, ang_i = group_score[nd:nd + na], group_imp[nd:nd + na]
    risk_s, risk_i = group_score[nd + na:], group_imp[nd + na:]
    dom_s, dom_i = _combine(dim_s, dim_i, spec.dim_weight, spec.dom_of_dim, len(spec.domains), geometric, gfloor)
    all_s, all_i = _combine(dom_s, dom_i, spec.dom_weight, np.zeros(len(spec.domains), dtype=np.int64), 1,
                            geometric, gfloor)
    if na:
        saf_s, saf_i = _combine(ang_s, ang_i, spec.angle_weight, np.zeros(na, dtype=np.int64), 1, geometric, gfloor)
    else:
        saf_s = np.full((1, group_score.shape[1]), np.nan)
        saf_i = np.ones_like(saf_s)
    health = 100.0 * np.concatenate([all_s, dom_s, dim_s, saf_s, risk_s])
    imputed = np.concatenate([all_i, dom_i, dim_i, saf_i, risk_i])
    return health, imputed, 100.0 * ang_s


def group_imputed(den: np.ndarray, totals: np.ndarray) -> np.ndarray:
    """Share of each group's weight not present (1 for a group without indicators)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        imp = 1.0 - den / totals[:, None]
    return np.where(totals[:, None] > 0, np.clip(imp, 0.0, 1.0), 1.0)
