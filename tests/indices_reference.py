"""Slow, obvious references for engine.indices: plain Python loops over every value.

Each function restates a rule of docs/indices.md directly, without the kernels' fusion, blocks
or matrix tricks, so that tests can compare the two on random inputs.
"""

from __future__ import annotations

import math

import numpy as np

MAD = 1.482602218505602


def robust(values, floor_rel, floor_abs):
    """Median and floored 1.4826 x MAD of a list of finite values."""
    x = np.array(values, dtype=float)
    med = float(np.median(x))
    s = MAD * float(np.median(np.abs(x - med)))
    return med, max(s, floor_rel * abs(med), floor_abs)


def history_ref(hist, min_n, floor_rel, floor_abs):
    """Per-series median / MAD over the previous cycles ``hist`` (H, n_ind, n_reg)."""
    H, ni, nr = hist.shape
    e = np.full((ni, nr), np.nan)
    s = np.full((ni, nr), np.nan)
    for i in range(ni):
        for r in range(nr):
            vals = [hist[h, i, r] for h in range(H) if math.isfinite(hist[h, i, r])]
            if len(vals) >= min_n and vals:
                e[i, r], s[i, r] = robust(vals, floor_rel, floor_abs)
    return e, s


def z_def(x, e, s, direction, cfg):
    s = max(s, cfg.scale_floor_rel * abs(e), cfg.scale_floor_abs)
    z = (x - e) / s
    zd = {0: max(z, 0.0), 1: max(-z, 0.0), 2: abs(z)}[direction]
    if zd <= cfg.tolerance:
        return 0.0
    return min(1.0, (zd - cfg.tolerance) / (cfg.cap - cfg.tolerance))


def range_def(x, b):
    b0, b1, b2, b3 = b
    d = 0.0
    if not math.isnan(b2):
        d = 1.0 if x >= b3 else (x - b2) / (b3 - b2) if x > b2 else 0.0
    if not math.isnan(b1):
        d = max(d, 1.0 if x <= b0 else (b1 - x) / (b1 - b0) if x < b1 else 0.0)
    return d


def deficit_ref(x, base1, base2, direction, cfg_ref, thr_ref, peer, cfg):
    """(deficit, method) of one value; ``base1``/``base2``/``peer`` are (e, s) or None."""
    if not math.isfinite(x):
        return math.nan, 0
    if not (math.isnan(cfg_ref[1]) and math.isnan(cfg_ref[2])):
        return range_def(x, cfg_ref), 1
    if base1 is not None and math.isfinite(base1[0]) and math.isfinite(base1[1]) and base1[1] >= 0:
        return z_def(x, base1[0], base1[1], direction, cfg), 2
    if base2 is not None and math.isfinite(base2[0]) and math.isfinite(base2[1]):
        return z_def(x, base2[0], base2[1], direction, cfg), 3
    if not (math.isnan(thr_ref[1]) and math.isnan(thr_ref[2])):
        return range_def(x, thr_ref), 4
    if peer is not None and math.isfinite(peer[0]):
        return z_def(x, peer[0], peer[1], direction, cfg), 5
    return math.nan, 0


def deficits_ref(v, e1, s1, e2, s2, spec, cfg):
    """Deficit and method tables for one cycle, peers computed where some value needs them."""
    ni, nr = v.shape
    d = np.full((ni, nr), np.nan)
    m = np.zeros((ni, nr), dtype=np.int8)

    def one(i, r, peer):
        b1 = (e1[i, r], s1[i, r]) if e1 is not None else None
        b2 = (e2[i, r], s2[i, r]) if e2 is not None else None
        return deficit_ref(v[i, r], b1, b2, int(spec.direction[i]), spec.cfg_ref[i], spec.thr_ref[i], peer, cfg)

    for i in range(ni):
        row = [one(i, r, None) for r in range(nr)]
        peer = None
        if any(mm == 0 and math.isfinite(v[i, r]) for r, (_, mm) in enumerate(row)):
            vals = [v[i, r] for r in range(nr) if math.isfinite(v[i, r])]
            if len(vals) >= cfg.peers_min:
                peer = robust(vals, cfg.scale_floor_rel, cfg.scale_floor_abs)
                row = [one(i, r, peer) for r in range(nr)]
        for r, (dd, mm) in enumerate(row):
            d[i, r], m[i, r] = dd, mm
    return d, m


def wmean(pairs, geometric, floor):
    """Weighted mean of (score, weight) pairs with a finite score; NaN when none."""
    pairs = [(s, w) for s, w in pairs if math.isfinite(s)]
    tot = sum(w for _, w in pairs)
    if not pairs or tot <= 0:
        return math.nan
    if geometric:
        return math.exp(sum(w * math.log(max(s, floor)) for s, w in pairs) / tot)
    return sum(w * s for s, w in pairs) / tot


def indices_from_q(q, spec, cfg, geometric):
    """{index label: score 0..100} for one column of normalised scores ``q`` (n_ind,)."""
    fl = cfg.geometric_floor
    out = {}
    dim_score = {}
    for k, dk in enumerate(spec.dims):
        dim_score[dk] = wmean([(q[i], spec.weight[i]) for i in range(len(q)) if spec.dim_of[i] == k], geometric, fl)
    dom_score = {}
    for d, dom in enumerate(spec.domains):
        dom_score[dom] = wmean([(dim_score[dk], spec.dim_weight[k]) for k, dk in enumerate(spec.dims)
                                if spec.dom_of_dim[k] == d], geometric, fl)
    out["overall"] = wmean([(dom_score[dom], spec.dom_weight[d]) for d, dom in enumerate(spec.domains)], geometric, fl)
    out.update(dom_score)
    out.update(dim_score)
    angles = [wmean([(q[i], spec.weight[i]) for i in range(len(q)) if spec.angle_of[i] == a], geometric, fl)
              for a in range(len(spec.config.angles))]
    out["safety_index"] = wmean(list(zip(angles, spec.angle_weight)), geometric, fl)
    for k, key in enumerate(spec.risk_keys):
        out[key] = wmean([(q[i], spec.weight[i]) for i in range(len(q)) if spec.risk_of[i] == k], geometric, fl)
    return {k: 100.0 * v for k, v in out.items()}


def indices_ref(value, expected, scale, spec, cfg, hier, t=None):
    """{(level region id): {index: score}} for cycle ``t`` of value (T, ni, nr) or (ni, nr)."""
    if value.ndim == 3:
        v = value[t]
        e1 = expected[t] if expected is not None else None
        s1 = scale[t] if scale is not None else None
        e2 = s2 = None
        if t > 0 and (expected is None or not (np.isfinite(e1).all() and np.isfinite(s1).all())):
            lo = max(0, t - cfg.history_window)
            e2, s2 = history_ref(value[lo:t], cfg.history_min, cfg.scale_floor_rel, cfg.scale_floor_abs)
    else:
        v, e1, s1, e2, s2 = value, expected, scale, None, None
    d, _ = deficits_ref(v, e1, s1, e2, s2, spec, cfg)
    q = 1.0 - d
    geometric = cfg.method == "geometric"
    res = {}
    base = hier.levels[0]
    for r, rid in enumerate(base.ids):
        res[rid] = indices_from_q(q[:, r], spec, cfg, geometric)
    # upper levels: region-weighted mean of each indicator's q over the base regions below
    anc = np.arange(len(base.ids))
    for k in range(1, len(hier.levels)):
        anc = hier.levels[k - 1].parent[anc]
        for p, pid in enumerate(hier.levels[k].ids):
            members = [r for r in range(len(base.ids)) if anc[r] == p]
            qp = np.full(q.shape[0], np.nan)
            for i in range(q.shape[0]):
                pairs = [(q[i, r], hier.weight[r]) for r in members if math.isfinite(q[i, r])]
                tot = sum(w for _, w in pairs)
                if pairs and tot > 0:
                    qp[i] = sum(s * w for s, w in pairs) / tot
            res[pid] = indices_from_q(qp, spec, cfg, geometric)
    return res


def overall_draw_ref(q, spec, w_ind, w_dim, w_dom, geometric, floor):
    """Overall score of every region (column of q) for one Monte Carlo draw."""
    out = []
    for r in range(q.shape[1]):
        dims = []
        for k in range(len(spec.dims)):
            dims.append(wmean([(q[i, r], w_ind[i]) for i in range(q.shape[0]) if spec.dim_of[i] == k], geometric, floor))
        doms = []
        for d in range(len(spec.domains)):
            doms.append(wmean([(dims[k], w_dim[k]) for k in range(len(spec.dims)) if spec.dom_of_dim[k] == d],
                              geometric, floor))
        out.append(100.0 * wmean(list(zip(doms, w_dom)), geometric, floor))
    return np.array(out)


def group_sums_ref(q, spec, geometric, floor):
    """``num, den`` (n_groups, n_col) of a table of normalised scores ``q`` (n_ind, n_col), NaN =
    missing: per group (dimensions, then safety angles, then risks) the weighted sum of q (or of
    log(max(q, floor))) and of the weights, over the indicators with a finite q."""
    nd, na = len(spec.dims), len(spec.config.angles)
    num = np.zeros((spec.n_groups, q.shape[1]))
    den = np.zeros((spec.n_groups, q.shape[1]))
    for i in range(q.shape[0]):
        groups = [spec.dim_of[i]]
        if spec.angle_of[i] >= 0:
            groups.append(nd + spec.angle_of[i])
        if spec.risk_of[i] >= 0:
            groups.append(nd + na + spec.risk_of[i])
        for c in range(q.shape[1]):
            if math.isfinite(q[i, c]):
                f = math.log(max(q[i, c], floor)) if geometric else q[i, c]
                for g in groups:
                    num[g, c] += spec.weight[i] * f
                    den[g, c] += spec.weight[i]
    return num, den


def accumulate_sums_ref(deficit, method, geometric, floor, n_groups, group_of, group_w, order, parent_of, region_w,
                        n_parents):
    """The sums of ``normalise_accumulate`` from its deficits and methods (cycles, n_ind, n_region):
    ``num, den`` (cycles, n_groups, n_region) -- per group the weighted sum of q = 1 - deficit (or
    of log(max(q, floor))) and of the weights over the values normalised (method != 0), rows in
    order, the group sets in order -- and ``pnum, pden`` (cycles, n_ind, n_parents): per parent the
    region-weighted sum of q and of the weights, regions in visiting order ``order``. Plain loops,
    a value not normalised skipped."""
    k, ni, nr = deficit.shape
    num = np.zeros((k, n_groups, nr))
    den = np.zeros((k, n_groups, nr))
    pnum = np.zeros((k, ni, n_parents))
    pden = np.zeros((k, ni, n_parents))
    for t in range(k):
        for i in range(ni):
            for r in order:
                if method[t, i, r] == 0:
                    continue
                q = 1.0 - deficit[t, i, r]
                f = math.log(max(q, floor)) if geometric else q
                for s in range(group_of.shape[0]):
                    g = group_of[s, i]
                    if g >= 0:
                        num[t, g, r] += group_w[s, i] * f
                        den[t, g, r] += group_w[s, i]
                if n_parents:
                    pnum[t, i, parent_of[r]] += region_w[r] * q
                    pden[t, i, parent_of[r]] += region_w[r]
    return num, den, pnum, pden
