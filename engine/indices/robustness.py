"""Uncertainty analysis of the overall health score (OECD/JRC Handbook, step 7).

Each Monte Carlo draw multiplies every indicator, dimension and domain weight by an independent
``U(1 - j, 1 + j)`` factor and picks the aggregation method uniformly from the configured ones;
the overall score is recomputed for every neighbourhood. From the draws: each region's rank
interval (quantiles of its rank, 1 = healthiest), the probability of each grade, and a flag where
the modal grade's probability is below ``stable_probability``. Same seed, same result.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from engine.indices.compute import Prepared, select_time
from engine.indices.config import METHODS, grade_codes


def draw_weights(spec, n: int, seed: int, jitter: float, methods) -> dict:
    """The random draws: weights ``ind`` (n, n_indicator), ``dim`` (n, n_dim), ``dom`` (n, n_domain)
    and ``geometric`` (n,) bool. Deterministic in ``seed``.

    Examples
    --------
    >>> from engine.catalog import Catalog
    >>> from engine.indices.config import load_config
    >>> from engine.indices.spec import IndexSpec
    >>> spec = IndexSpec.build(["safety.public_order.police_violent.count_24h"], Catalog.load(), load_config())
    >>> d = draw_weights(spec, 3, 7, 0.25, ["arithmetic", "geometric"])
    >>> d["ind"].shape, bool(((d["ind"] >= 0.75) & (d["ind"] <= 1.25)).all())
    ((3, 1), True)
    """
    rng = np.random.default_rng(seed)
    lo, hi = 1.0 - jitter, 1.0 + jitter
    ind = spec.weight[None, :] * rng.uniform(lo, hi, (n, len(spec.ids)))
    dim = spec.dim_weight[None, :] * rng.uniform(lo, hi, (n, len(spec.dims)))
    dom = spec.dom_weight[None, :] * rng.uniform(lo, hi, (n, len(spec.domains)))
    pick = rng.integers(0, len(methods), n)
    geometric = np.array([methods[k] == "geometric" for k in pick], dtype=bool)
    return {"ind": ind, "dim": dim, "dom": dom, "geometric": geometric}


def _mean(f: np.ndarray, ok: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per draw weighted sums over children: f, ok (n_child, R); w (S, n_child)."""
    return w @ np.where(ok, f, 0.0), w @ ok.astype(np.float64)


def overall_draws(q: np.ndarray, spec, draws: dict, gfloor: float) -> np.ndarray:
    """Overall score (0..100) of every region under every draw: (n_draws, n_regions).

    ``q`` is the normalised-score table (n_indicator, n_regions), NaN = imputed.
    """
    S, R = len(draws["geometric"]), q.shape[1]
    ok = np.isfinite(q)
    qa = np.where(ok, q, 0.0)
    lq = np.where(ok, np.log(np.maximum(np.where(ok, q, 1.0), gfloor)), 0.0)
    geo = draws["geometric"]
    nd, ndom = len(spec.dims), len(spec.domains)
    dim_s = np.full((S, nd, R), np.nan)
    for k in range(nd):
        sel = spec.dim_of == k
        if not sel.any():
            continue
        a = ok[sel].astype(np.float64)
        for mask, f, g in ((~geo, qa[sel], False), (geo, lq[sel], True)):
            if not mask.any():
                continue
            w = draws["ind"][mask][:, sel]
            num, den = w @ f, w @ a
            with np.errstate(invalid="ignore", divide="ignore"):
                m = num / den
            dim_s[mask, k] = np.where(den > 0, np.exp(m) if g else m, np.nan)

    def combine(child, w, parent_of, n_parent):
        okc = np.isfinite(child)
        f = np.where(geo[:, None, None], np.log(np.maximum(np.where(okc, child, 1.0), gfloor)), child)
        f = np.where(okc, f, 0.0)
        out = np.full((S, n_parent, R), np.nan)
        for p in range(n_parent):
            sel = parent_of == p
            ww = w[:, sel][:, :, None]
            num = (ww * f[:, sel]).sum(axis=1)
            den = (ww * okc[:, sel]).sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                m = num / den
            out[:, p] = np.where(den > 0, np.where(geo[:, None], np.exp(m), m), np.nan)
        return out

    dom_s = combine(dim_s, draws["dim"], spec.dom_of_dim, ndom)
    return 100.0 * combine(dom_s, draws["dom"], np.zeros(ndom, dtype=np.int64), 1)[:, 0]


def ranks(health: np.ndarray) -> np.ndarray:
    """Rank of each region per draw (1 = healthiest; ties by position; NaN scores -> NaN).

    Examples
    --------
    >>> ranks(np.array([[50.0, 90.0, np.nan, 70.0]])).tolist()
    [[3.0, 1.0, nan, 2.0]]
    """
    h = np.where(np.isfinite(health), health, -np.inf)
    order = np.argsort(-h, axis=1, kind="stable")
    r = np.empty_like(order)
    np.put_along_axis(r, order, np.arange(1, h.shape[1] + 1)[None, :].repeat(h.shape[0], 0), axis=1)
    return np.where(np.isfinite(health), r.astype(np.float64), np.nan)


def robustness(ds, catalog=None, city=None, config=None, *, time=None, draws: int | None = None,
               seed: int | None = None, jitter: float | None = None, methods=None) -> xr.Dataset:
    """Monte Carlo over weights and aggregation method for the overall score of one cycle.

    Parameters
    ----------
    ds, catalog, city, config
        As for :func:`~engine.indices.compute_indices` (neighbourhood level).
    time : timestamp-like, optional
        The cycle (default the last).
    draws, seed, jitter, methods
        Override the ``[robustness]`` config (200 draws, seed 0, +/-25 %, both methods).

    Returns
    -------
    xarray.Dataset over ``region`` (and ``grade_key``): ``health`` and ``grade`` (nominal),
    ``rank`` (nominal), ``rank_low``/``rank_median``/``rank_high``, ``grade_probability``
    (region, grade_key), ``modal_grade``, ``modal_probability``, ``stable`` (bool).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ids = ["safety.public_order.police_violent.count_24h", "market.commerce.entries_mall.sum_1h"]
    >>> v = np.array([[1.0, 4.14, 5.0], [1.0, 1.0, 4.2]])
    >>> ds = xr.Dataset({"value": (("indicator", "region"), v),
    ...                  "expected": (("indicator", "region"), np.ones((2, 3))),
    ...                  "scale": (("indicator", "region"), np.ones((2, 3)))},
    ...                 coords={"indicator": ids, "region": ["A", "B", "C"]})
    >>> rb = robustness(ds, draws=50, seed=1)
    >>> rb["health"].values.round(1).tolist(), rb["rank_low"].values.tolist()
    ([100.0, 81.0, 66.7], [1.0, 2.0, 3.0])
    >>> rb["grade_probability"].sel(region="B").values.round(2).tolist(), rb["stable"].values.tolist()
    ([0.0, 0.62, 0.38, 0.0], [True, False, True])
    """
    prep = Prepared(ds, catalog, city, config)
    cfg = prep.cfg
    n = cfg.draws if draws is None else int(draws)
    seed = cfg.seed if seed is None else int(seed)
    jitter = cfg.weight_jitter if jitter is None else float(jitter)
    methods = tuple(cfg.mc_methods if methods is None else methods)
    if n < 1 or not (0 <= jitter < 1) or not methods or any(m not in METHODS for m in methods):
        raise ValueError(f"need draws >= 1, 0 <= jitter < 1 and methods from {list(METHODS)}; "
                         f"got draws={n}, jitter={jitter}, methods={list(methods)}")
    t = select_time(ds, time)
    c = prep.cycle(t, want_deficit=True)
    q = 1.0 - c["deficit"]
    spec = prep.spec
    nominal = {"ind": spec.weight[None], "dim": spec.dim_weight[None], "dom": spec.dom_weight[None],
               "geometric": np.array([prep.geometric])}
    h0 = overall_draws(q, spec, nominal, cfg.geometric_floor)[0]
    d = draw_weights(spec, n, seed, jitter, methods)
    h = overall_draws(q, spec, d, cfg.geometric_floor)
    rk = ranks(h)
    lo, hi = cfg.rank_interval
    ok = np.isfinite(rk).all(axis=0)
    with np.errstate(invalid="ignore"):
        r_lo = np.where(ok, np.quantile(np.where(ok, rk, 0), lo, axis=0, method="lower"), np.nan)
        r_hi = np.where(ok, np.quantile(np.where(ok, rk, 0), hi, axis=0, method="higher"), np.nan)
        r_med = np.where(ok, np.median(np.where(ok, rk, 0), axis=0), np.nan)
    mins = cfg.grade_mins
    g = grade_codes(h, mins)
    prob = np.stack([(g == k).mean(axis=0) for k in range(len(mins))], axis=1)
    modal = np.where(prob.max(axis=1) > 0, prob.argmax(axis=1), -1).astype(np.int8)
    modal_p = prob.max(axis=1)
    stable = (modal_p >= cfg.stable_probability) & (modal >= 0)
    regions = prep.hier.base.ids
    return xr.Dataset(
        {
            "health": ("region", h0), "grade": ("region", grade_codes(h0, mins)),
            "rank": ("region", ranks(h0[None])[0]),
            "rank_low": ("region", r_lo), "rank_median": ("region", r_med), "rank_high": ("region", r_hi),
            "grade_probability": (("region", "grade_key"), prob),
            "modal_grade": ("region", modal), "modal_probability": ("region", modal_p), "stable": ("region", stable),
        },
        coords={"region": regions, "grade_key": [gr.key for gr in cfg.grades]},
        attrs={"draws": n, "seed": seed, "weight_jitter": jitter, "methods": list(methods),
               "rank_interval": list(cfg.rank_interval), "stable_probability": cfg.stable_probability},
    )
