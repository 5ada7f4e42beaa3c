"""Slow, obvious references for engine.core: every indicator from the raw records, window by window.

No rings, no running sums, no plan: for each step (cycle ``k``) and each indicator, select the
admitted records of the feed matching the filter with bucket in ``(k - W, k]`` and aggregate them
per region with plain numpy / pandas, exactly as ``engine/catalog/vocab.py`` defines it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.catalog import expr
from engine.catalog.vocab import window_minutes
from engine.core.records import Records


def _set(v):
    if v is None:
        return None
    return set(v) if isinstance(v, (list, tuple)) else {v}


def emitter_table(city, feed):
    em = feed.get("emitter")
    t = {"sensor": city.sensors, "site": city.sites, "enterprise": city.enterprises}.get(em)
    if t is None:
        return None, np.arange(city.n_regions)
    return t, city.regions.index.get_indexer(t["region"])


def random_steps(city, catalog, k0, n_cycles, seed=0, n_ev=40, n_rd=60, n_sn=40, late_frac=0.2, nan_frac=0.1):
    """Random records for ``n_cycles`` steps starting at cycle ``k0``: a list of (k, Records) where
    some records of step k are late (event time in an earlier cycle, within the feed's lateness)."""
    rng = np.random.default_rng(seed)
    feeds = list(catalog.feeds)
    C = 15 * 60 * 10**9
    kinds = {f: catalog.feeds[f]["kind"] for f in feeds}
    evf = [i for i, f in enumerate(feeds) if kinds[f] == "events"]
    rdf = [i for i, f in enumerate(feeds) if kinds[f] == "readings"]
    snf = [i for i, f in enumerate(feeds) if kinds[f] == "snapshots"]
    out = []
    for s in range(n_cycles):
        k = k0 + s

        def times(n, f):
            late = rng.random(n) < late_frac
            lat = np.array([window_minutes(catalog.feeds[feeds[x]]["lateness"]) // 15 for x in f])
            back = np.where(late, rng.integers(0, np.maximum(lat, 1)), 0)
            return (k - back) * C - rng.integers(0, C, n)

        n = int(rng.integers(0, n_ev + 1))
        f = rng.choice(evf, n)
        ncat = np.array([len(catalog.feeds[feeds[x]]["categories"]) for x in f], dtype=np.int64)
        nch = np.array([len(catalog.feeds[feeds[x]]["channels"]) for x in f], dtype=np.int64)
        ev = dict(ev_time=times(n, f), ev_feed=f, ev_category=(rng.random(n) * ncat).astype(int),
                  ev_channel=np.where(nch > 0, (rng.random(n) * (nch + 1)).astype(int) - 1, -1),
                  ev_region=rng.integers(0, city.n_regions, n),
                  ev_value=np.where(rng.random(n) < 0.5, np.nan, rng.integers(1, 1000, n).astype(float)))
        # readings from real emitters of each feed's kinds
        rows = {k_: [] for k_ in ("rd_time", "rd_feed", "rd_metric", "rd_emitter", "rd_kind", "rd_region", "rd_value")}
        for _ in range(int(rng.integers(0, n_rd + 1))):
            fi = int(rng.choice(rdf))
            fd = catalog.feeds[feeds[fi]]
            t, pos = emitter_table(city, fd)
            ek = list(fd.get("emitter_kinds") or [])
            if t is None:
                e, kind = int(rng.integers(0, city.n_regions)), -1
                reg = e
            else:
                cand = np.flatnonzero(t["kind"].isin(ek).to_numpy())
                if not len(cand):
                    continue
                e = int(rng.choice(cand))
                kind, reg = ek.index(t["kind"].iloc[e]), int(pos[e])
            rows["rd_time"].append(int(times(1, [fi])[0]))
            rows["rd_feed"].append(fi)
            rows["rd_metric"].append(int(rng.integers(0, len(fd["metrics"]))))
            rows["rd_emitter"].append(e)
            rows["rd_kind"].append(kind)
            rows["rd_region"].append(reg)
            rows["rd_value"].append(np.nan if rng.random() < nan_frac else float(rng.integers(0, 50)) / 4)
        srows = {k_: [] for k_ in ("sn_time", "sn_feed", "sn_field", "sn_entity", "sn_kind", "sn_region", "sn_value")}
        for _ in range(int(rng.integers(0, n_sn + 1))):
            fi = int(rng.choice(snf))
            fd = catalog.feeds[feeds[fi]]
            t, pos = emitter_table(city, fd)
            if t is None:
                e = int(rng.integers(0, city.n_regions))
                kind, reg = -1, e
            else:
                if fd.get("emitter") == "site":
                    cand = np.flatnonzero(t["kind"].isin(fd["emitter_kinds"]).to_numpy())
                else:
                    cand = np.arange(len(t))
                if not len(cand):
                    continue
                e = int(rng.choice(cand))
                kind = list(fd.get("emitter_kinds") or []).index(t["kind"].iloc[e]) if "kind" in t else -1
                reg = int(pos[e])
            field = int(rng.integers(0, len(fd["fields"])))
            srows["sn_time"].append(int(k * C - rng.integers(0, C)))
            srows["sn_feed"].append(fi)
            srows["sn_field"].append(field)
            srows["sn_entity"].append(e)
            srows["sn_kind"].append(kind)
            srows["sn_region"].append(reg)
            srows["sn_value"].append(float(rng.integers(0, 2)) if rng.random() < 0.5 else float(rng.integers(0, 20)))
        out.append((k, Records.build(feeds, events=ev, readings=rows, snapshots=srows)))
    return out


def _admitted(steps, catalog, C):
    """All admitted records with their arrival cycle, as DataFrames per kind."""
    feeds = list(catalog.feeds)
    lat = {i: window_minutes(catalog.feeds[f]["lateness"]) * 60 * 10**9 for i, f in enumerate(feeds)}
    frames = {"ev": [], "rd": [], "sn": []}
    for k, rec in steps:
        for g in frames:
            cols = {c: getattr(rec, c) for c in rec.__dataclass_fields__ if c.startswith(g + "_")}
            df = pd.DataFrame({c[3:]: v for c, v in cols.items()})
            df["arrive"] = k
            df["bucket"] = -((-df["time"]) // C)
            lim = df["feed"].map(lat).fillna(0).astype(np.int64)
            df = df[(df["bucket"] <= k) & (df["time"] > k * C - lim)]
            frames[g].append(df)
    return {g: pd.concat(v, ignore_index=True) for g, v in frames.items()}


def reference(city, catalog, steps, cycle_minutes=15, rows=None):
    """Per step: (value, num, den) arrays [indicator, region] computed from the raw records
    (only the indicator ``rows`` given, with the inputs of derived ones; others stay NaN)."""
    C = cycle_minutes * 60 * 10**9
    feeds = list(catalog.feeds)
    fpos = {f: i for i, f in enumerate(feeds)}
    nreg = city.n_regions
    pop = city.regions["population"].to_numpy(float)
    area = city.regions["area_km2"].to_numpy(float)
    adm = _admitted(steps, catalog, C)
    inds = catalog.indicators
    results = []
    first = steps[0][0]
    for k, _ in steps:
        V = np.full((len(inds), nreg), np.nan)
        NUM = np.full_like(V, np.nan)
        DEN = np.zeros_like(V)
        # snapshot states as of each cycle c <= k (records arrived by step c)
        sn_cache = {}

        def snap_state(c):
            if c not in sn_cache:
                d = adm["sn"][adm["sn"]["arrive"] <= c]
                d = d.reset_index(drop=True)
                d["order"] = np.arange(len(d))
                d = d.sort_values(["time", "order"]).groupby(["feed", "field", "entity"]).tail(1)
                sn_cache[c] = d
            return sn_cache[c]

        for r, ind in enumerate(inds):
            agg = ind["aggregation"]
            if agg == "derived" or (rows is not None and r not in rows):
                continue
            fd = catalog.feeds[ind["feed"]]
            fi = fpos[ind["feed"]]
            flt = ind["filter"] or {}
            W = window_minutes(ind["window"]) // cycle_minutes
            kind = fd["kind"]
            num = np.full(nreg, np.nan)
            den = np.ones(nreg)
            if kind == "events":
                d = adm["ev"]
                d = d[(d["feed"] == fi) & (d["arrive"] <= k) & (d["bucket"] > k - W) & (d["bucket"] <= k)]
                cats, chans = list(fd["categories"]), list(fd["channels"])
                m = np.ones(len(d), bool)
                if "category" in flt:
                    m &= d["category"].map(lambda c: cats[c]).isin(_set(flt["category"])).to_numpy()
                if "channel" in flt:
                    m &= d["channel"].map(lambda c: chans[c] if c >= 0 else None).isin(_set(flt["channel"])).to_numpy()
                sel = d[m]
                if agg == "count":
                    num = np.bincount(sel["region"], minlength=nreg).astype(float)
                elif agg == "sum":
                    num = np.bincount(sel["region"], weights=sel["value"].fillna(0), minlength=nreg)
                else:
                    num = np.bincount(sel["region"], minlength=nreg).astype(float)
                    den = np.bincount(d["region"], minlength=nreg).astype(float)
            elif kind == "readings":
                d = adm["rd"]
                ek = list(fd.get("emitter_kinds") or [])
                d = d[(d["feed"] == fi) & (d["arrive"] <= k) & (d["bucket"] > k - W) & (d["bucket"] <= k) & d["value"].notna()
                      & (d["metric"] == list(fd["metrics"]).index(flt["metric"]))]
                if "kind" in flt:
                    d = d[d["kind"].map(lambda x: ek[x] if x >= 0 else None).isin(_set(flt["kind"]))]
                grp = d.groupby("region")["value"]
                if agg in ("sum", "mean"):
                    s, n = grp.sum(), grp.count()
                    num[s.index] = s.to_numpy()
                    if agg == "mean":
                        den = np.zeros(nreg)
                        den[n.index] = n.to_numpy()
                elif agg in ("min", "max"):
                    x = grp.min() if agg == "min" else grp.max()
                    num[x.index] = x.to_numpy()
                else:
                    per = d.groupby(["region", "bucket"])["value"].mean()
                    for reg, x in per.groupby(level=0):
                        num[reg] = np.quantile(x.to_numpy(), ind["q"])
            else:
                t, pos = emitter_table(city, fd)
                members = np.ones(len(pos), bool)
                if t is not None:
                    if "kind" in flt:
                        members &= t["kind"].isin(_set(flt["kind"])).to_numpy()
                    elif fd.get("emitter") == "site":
                        members &= t["kind"].isin(fd["emitter_kinds"]).to_numpy()
                    if "sector" in flt:
                        members &= t["sector"].isin(_set(flt["sector"])).to_numpy()
                    if "size" in flt:
                        members &= t["size"].isin(_set(flt["size"])).to_numpy()
                field = list(fd["fields"]).index(flt["field"])
                S, N, O, P = np.zeros(nreg), np.zeros(nreg), np.zeros(nreg), np.zeros(nreg)
                ext = np.full(nreg, np.nan)
                for c in range(max(k - W + 1, first), k + 1):
                    st = snap_state(c)
                    st = st[(st["feed"] == fi) & (st["field"] == field)]
                    st = st[members[st["entity"].to_numpy()] & st["value"].notna()]
                    regs = pos[st["entity"].to_numpy()]
                    v = st["value"].to_numpy()
                    S += np.bincount(regs, weights=v, minlength=nreg)
                    n = np.bincount(regs, minlength=nreg)
                    N += n
                    O += np.bincount(regs, weights=(v == 1.0).astype(float), minlength=nreg)
                    P += n > 0
                    if agg in ("min", "max") and len(v):
                        x = pd.Series(v).groupby(regs)
                        x = x.min() if agg == "min" else x.max()
                        f = np.fmin if agg == "min" else np.fmax
                        ext[x.index] = f(ext[x.index], x.to_numpy())
                with np.errstate(invalid="ignore", divide="ignore"):
                    if agg == "sum":
                        num = np.where(P > 0, S / np.where(P > 0, P, 1), np.nan)
                    elif agg == "mean":
                        num, den = S, N
                    elif agg == "share":
                        num, den = O, N
                    else:
                        num = ext
            nm = ind["normalisation"]
            if nm != "none":
                if nm == "per_10k_residents":
                    den = pop / 10_000.0
                elif nm == "per_km2":
                    den = area.copy()
                elif nm == "per_site":
                    em = fd.get("emitter")
                    tt = city.sensors if em == "sensor" else city.sites
                    kk = _set(flt.get("kind")) or (set(fd.get("emitter_kinds") or []) if em in ("sensor", "site") else None)
                    sel = tt if kk is None else tt[tt["kind"].isin(kk)]
                    den = np.bincount(city.regions.index.get_indexer(sel["region"]), minlength=nreg).astype(float)
                else:
                    sel = city.enterprises
                    if "sector" in flt:
                        sel = sel[sel["sector"].isin(_set(flt["sector"]))]
                    if "size" in flt:
                        sel = sel[sel["size"].isin(_set(flt["size"]))]
                    den = np.bincount(city.regions.index.get_indexer(sel["region"]), minlength=nreg).astype(float)
            mult = 100.0 if agg == "share" else 1.0
            with np.errstate(invalid="ignore", divide="ignore"):
                val = np.where(den == 0, np.nan, mult * (num / np.where(den == 0, 1.0, den)))
            V[r], NUM[r], DEN[r] = val, num, den
        ref_derived(V, inds)
        results.append((V, NUM, DEN))
    return results


def ref_derived(V, inds):
    """Evaluate every derived indicator one by one (formula over the rows it names)."""
    row = {i["id"]: r for r, i in enumerate(inds)}
    order = [i for i in inds if i["aggregation"] == "derived"]
    done = set()
    while len(done) < len(order):
        for i in order:
            if i["id"] in done:
                continue
            node = expr.parse(i["formula"])
            if any(inds[row[x]]["aggregation"] == "derived" and x not in done for x in expr.refs(node)):
                continue
            with np.errstate(all="ignore"):
                V[row[i["id"]]] = expr.evaluate(node, {x: V[row[x]] for x in expr.refs(node)})
            done.add(i["id"])


def ref_rollup(V, NUM, DEN, inds, groups, ng, pop):
    """Roll-up with pandas groupby, indicator by indicator, following each rollup rule."""
    out = np.full((len(inds), ng), np.nan)
    for r, ind in enumerate(inds):
        rule = ind["rollup"]
        df = pd.DataFrame({"g": groups, "v": V[r], "num": NUM[r], "den": DEN[r], "pop": pop})
        if rule == "sum":
            s = df.groupby("g")["v"].sum(min_count=1)
        elif rule == "ratio":
            d = df[df["num"].notna()].groupby("g")[["num", "den"]].sum()
            mult = 100.0 if ind["aggregation"] == "share" else 1.0
            s = (mult * d["num"] / d["den"]).where(d["den"] != 0)
        elif rule == "pop_mean":
            d = df[df["v"].notna()]
            d = d.assign(w=d["v"] * d["pop"]).groupby("g")[["w", "pop"]].sum()
            s = (d["w"] / d["pop"]).where(d["pop"] > 0)
        elif rule in ("max", "min"):
            s = df.groupby("g")["v"].max() if rule == "max" else df.groupby("g")["v"].min()
        else:
            continue
        out[r, s.index.to_numpy()] = s.to_numpy()
    ref_derived(out, inds)
    return out


def sample_rows(catalog, per_combo=2, seed=0):
    """Indicator rows covering every (kind, aggregation, window, normalisation, filter keys) combination
    (up to ``per_combo`` each), plus the inputs of the derived ones chosen."""
    rng = np.random.default_rng(seed)
    inds = catalog.indicators
    row = {i["id"]: r for r, i in enumerate(inds)}
    combos = {}
    for r, i in enumerate(inds):
        kind = catalog.feeds[i["feed"]]["kind"]
        key = (kind, i["aggregation"], i["window"], i["normalisation"], tuple(sorted(i["filter"] or {})))
        combos.setdefault(key, []).append(r)
    chosen = set()
    for key, rs in combos.items():
        chosen.update(rng.choice(rs, min(per_combo, len(rs)), replace=False).tolist())
    for r in list(chosen):
        if inds[r]["aggregation"] == "derived":
            chosen.update(row[x] for x in expr.refs(expr.parse(inds[r]["formula"])))
    return chosen


def base_shares_reference(eng, parts, recw=None):
    """``Engine._base_shares`` as the seventeenth session wrote it (NumPy scalars, a component's
    bases found by a comparison over every base): the slow obvious reference of the faster one."""
    from engine.core.engine import SHARE_RECORDS_WEIGHT

    p = eng.plan
    B = p.n_bases
    parent = np.arange(B)

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a, b):
        ra, rb = find(int(a)), find(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    two = p.ind_blk2 >= 0
    for b, b2 in zip(p.ind_base[two], p.blk_base[p.ind_blk2[two]]):
        union(b, b2)
    ops, arg, _, ptr, out_row, _ = eng._DP
    vrow = np.full(len(p.indicator_ids), -1, np.int64)
    vrow[p.ind_row] = np.arange(len(p.ind_row))
    crow = eng.derived.compact_rows
    reads: dict = {}
    first = np.full(len(out_row), -1, np.int64)
    for j in range(len(out_row)):
        bs: set = set()
        for pc in range(ptr[j], ptr[j + 1]):
            if ops[pc] == 0:
                r = int(crow[arg[pc]])
                bs |= {int(p.ind_base[vrow[r]])} if vrow[r] >= 0 else reads[r]
        reads[int(out_row[j])] = bs
        if bs:
            bs_l = sorted(bs)
            first[j] = bs_l[0]
            for b in bs_l[1:]:
                union(bs_l[0], b)
    comp = np.array([find(b) for b in range(B)])
    nser = np.diff(p.base_ser0).astype(np.float64)
    w_base = nser * (1 + np.diff(p.base_blk_ptr) + 2 * np.diff(p.base_mm_ptr) + 4 * np.diff(p.base_q_ptr)) \
        + np.diff(p.mem_ptr)
    w_rows = np.bincount(p.ind_base, weights=nser[p.ind_base] + p.n_regions, minlength=B)
    has = first >= 0
    w_rows += np.bincount(first[has], weights=np.diff(ptr)[has] * p.n_regions / 2.0, minlength=B)
    w = w_base / max(w_base.sum(), 1.0) + w_rows / max(w_rows.sum(), 1.0)
    if recw is not None:
        w = w + SHARE_RECORDS_WEIGHT * recw / max(recw.sum(), 1.0)
    wc = np.bincount(comp, weights=w, minlength=B)
    load = np.zeros(parts)
    owner = np.zeros(B, np.int64)
    for c in np.argsort(-wc, kind="stable"):
        if wc[c] <= 0 and not (comp == c).any():
            continue
        j = int(np.argmin(load))
        owner[comp == c] = j
        load[j] += wc[c]
    shares = []
    dj = np.where(has, owner[np.maximum(first, 0)], -1)
    for j in range(parts):
        bases = np.flatnonzero(owner == j).astype(np.int64)
        if len(bases) == 0:
            continue
        rows = np.flatnonzero(owner[p.ind_base] == j).astype(np.int64)
        mask = (owner == j).astype(np.uint8)
        mine = dj == j
        if not shares:
            mine |= dj < 0
        js = np.flatnonzero(mine)
        lens = ptr[js + 1] - ptr[js]
        idx = np.concatenate([np.arange(ptr[i], ptr[i + 1]) for i in js]).astype(np.int64) if len(js) \
            else np.zeros(0, np.int64)
        sub_ptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        dp = eng._DP
        shares.append((bases, rows, mask, (dp[0][idx], dp[1][idx], dp[2], sub_ptr, dp[4][js], dp[5][js])))
    return shares
