"""Drill-down: why is this region's score low? (``engine.explain``)

The gap ``100 - score`` of an index is split over the indicators that enter it. With arithmetic
aggregation an indicator's contribution is ``100 x effective weight x normalised deficit``, the
effective weight being the product of its normalised weights on the way up (indicator within
its group, group within the index; only values present count). With geometric aggregation the
gap is split in proportion to ``effective weight x -log(normalised score)`` (the exact log
decomposition). Either way the contributions add up to the gap.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from engine.indices.compute import Prepared, select_time
from engine.indices.kernels import METHOD_NAMES


@dataclass
class Explanation:
    """Result of :func:`explain`.

    Attributes
    ----------
    region, region_name, level : str
    time : str or None
        The cycle explained (ISO), None for a Dataset without time.
    index : str
        The index explained (``overall``, a domain, a dimension, ``safety_index`` or a risk).
    score, gap : float
        The index's score (0..100) and ``100 - score``; NaN when no value was present.
    grade : dict
        ``code``, ``key``, ``zh``, ``en`` of the grade (code -1 without data).
    aggregation : str
    groups : DataFrame
        One row per dimension (or safety angle): ``group``, ``name_zh``, ``name_en``,
        ``score`` (0..100), ``weight`` (share in the index), ``contribution``; worst first.
    indicators : DataFrame
        One row per indicator with a value: ``indicator``, ``name_zh``, ``name_en``,
        ``domain``, ``dimension``, ``group``, ``owner``, ``value``, ``baseline``, ``scale``,
        ``method``, ``deficit``, ``weight`` (effective), ``contribution``, ``worst_region``;
        largest contribution first.
    imputed : list of str
        Indicators of the index without a usable value (left out, their weight spread).
    """

    region: str
    region_name: str
    level: str
    time: str | None
    index: str
    score: float
    gap: float
    grade: dict
    aggregation: str
    groups: pd.DataFrame
    indicators: pd.DataFrame
    imputed: list = field(default_factory=list)

    def top(self, n: int = 10) -> pd.DataFrame:
        """The ``n`` indicators that pull the score down most (contribution > 0)."""
        d = self.indicators
        return d[d["contribution"] > 0].head(n)

    def to_dict(self, top: int | None = None) -> dict:
        """JSON-ready dict (NaN -> None); ``top`` limits the indicator rows."""

        def clean(x):
            if isinstance(x, (float, np.floating)):
                return None if not math.isfinite(float(x)) else round(float(x), 6)
            if isinstance(x, np.integer):
                return int(x)
            return x

        def records(df):
            return [{k: clean(v) for k, v in row.items()} for row in df.to_dict("records")]

        ind = self.indicators if top is None else self.indicators.head(top)
        return {
            "region": self.region, "region_name": self.region_name, "level": self.level, "time": self.time,
            "index": self.index, "score": clean(self.score), "gap": clean(self.gap), "grade": self.grade,
            "aggregation": self.aggregation, "groups": records(self.groups), "indicators": records(ind),
            "contributions_sum": clean(float(self.indicators["contribution"].sum())),
            "imputed": list(self.imputed),
        }

    def to_json(self, top: int | None = None) -> str:
        return json.dumps(self.to_dict(top), ensure_ascii=False, indent=2)

    def __str__(self) -> str:
        return self.render()

    def render(self, top: int = 10, lang: str = "zh") -> str:
        """Plain-text report: score, grade, worst groups, top indicators."""
        g = self.grade
        lines = [f"{self.region} {self.region_name} ({self.level})" + (f" at {self.time}" if self.time else ""),
                 f"{self.index}: {self.score:.1f} / 100  grade {g.get(lang, g.get('en'))}  gap {self.gap:.1f}"
                 f"  ({self.aggregation})"]
        gr = self.groups[self.groups["contribution"] > 0]
        if len(gr):
            lines.append("groups pulling the score down:")
            for row in gr.itertuples():
                name = row.name_zh if lang == "zh" else row.name_en
                lines.append(f"  {row.contribution:7.2f}  {row.group:<20} {name}  (score {row.score:.1f})")
        ind = self.top(top)
        if len(ind):
            lines.append(f"top {len(ind)} indicators:")
            for row in ind.itertuples():
                name = row.name_zh if lang == "zh" else row.name_en
                lines.append(f"  {row.contribution:7.2f}  {row.indicator}  {name}  value {_fmt(row.value)}"
                             f"  baseline {_fmt(row.baseline)} ({row.method})  owner {row.owner}")
        if self.imputed:
            lines.append(f"{len(self.imputed)} indicators imputed (no usable value)")
        return "\n".join(lines)


def _fmt(x) -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.4g}"


def _effective(spec, index: str, q: np.ndarray, geometric: bool) -> tuple[np.ndarray, np.ndarray, list, list]:
    """Group of each indicator for ``index`` (-1 = not in it), effective weights (present only),
    the group keys and each group's share of the index."""
    nd = len(spec.dims)
    ok = np.isfinite(q)
    if index == "safety_index":
        grp, keys, gw = spec.angle_of.copy(), [a.key for a in spec.config.angles], spec.angle_weight.copy()
    elif index in spec.risk_keys:
        k = spec.risk_keys.index(index)
        grp = np.where(spec.risk_of == k, 0, -1)
        keys, gw = [index], np.ones(1)
    else:
        grp, keys = spec.dim_of.copy(), list(spec.dims)
        if index == "overall":
            gw = spec.dim_weight.copy()
            dom_w = spec.dom_weight
        elif index in spec.domains:
            member = spec.dom_of_dim == spec.domains.index(index)
            gw = np.where(member, spec.dim_weight, 0.0)
            grp = np.where(member[grp], grp, -1)
        elif index in spec.dims:
            k = spec.dims.index(index)
            gw = np.where(np.arange(nd) == k, 1.0, 0.0)
            grp = np.where(grp == k, grp, -1)
        else:
            raise ValueError(f"unknown index {index!r}; expected one of {', '.join(spec.index_labels)}")
        if index == "overall":
            # share of a dimension = domain share x dimension share within its domain (present only)
            present = np.zeros(nd, bool)
            present[np.unique(grp[ok & (grp >= 0)])] = True
            share = np.zeros(nd)
            dom_present = np.array([present[spec.dom_of_dim == d].any() for d in range(len(spec.domains))])
            dom_tot = dom_w[dom_present].sum()
            for d in range(len(spec.domains)):
                sel = (spec.dom_of_dim == d) & present
                tot = gw[sel].sum()
                if dom_present[d] and tot > 0 and dom_tot > 0:
                    share[sel] = dom_w[d] / dom_tot * gw[sel] / tot
            return _within(grp, spec.weight, ok, share), grp, keys, share
    grp = np.where(grp >= 0, grp, -1)
    present = np.zeros(len(keys), bool)
    present[np.unique(grp[ok & (grp >= 0)])] = True
    tot = gw[present].sum()
    share = np.where(present, gw / tot if tot > 0 else 0.0, 0.0)
    return _within(grp, spec.weight, ok, share), grp, keys, share


def _within(grp, w, ok, share) -> np.ndarray:
    eff = np.zeros(len(grp))
    for g in np.unique(grp[grp >= 0]):
        sel = (grp == g) & ok
        tot = w[sel].sum()
        if tot > 0:
            eff[sel] = share[g] * w[sel] / tot
    return eff


def explain(ds, region, time=None, *, catalog=None, city=None, config=None, index: str = "overall") -> Explanation:
    """Which indicators and dimensions pull ``region``'s score down, and by how much.

    Parameters
    ----------
    ds : xarray.Dataset
        A run (``value`` and optionally ``expected``/``scale``), as for
        :func:`~engine.indices.compute_indices`.
    region : str
        A region id at any level the city gives (neighbourhood / cell, block, street, the
        district's name); without a city, a region of the Dataset.
    time : timestamp-like, optional
        The cycle (default: the last one); see :func:`~engine.indices.select_time`.
    catalog, city, config
        As for :func:`~engine.indices.compute_indices`.
    index : str
        ``overall`` (default), a domain, a dimension, ``safety_index`` or an epidemic risk.

    Returns
    -------
    Explanation
        ``score``, ``gap``, ``groups`` and ``indicators`` with contributions summing to the gap.

    Raises
    ------
    ValueError
        Unknown region (listing some known ones), time outside the run, unknown index.

    Examples
    --------
    >>> import xarray as xr
    >>> ids = ["safety.public_order.police_violent.count_24h", "safety.public_safety.fire_all.count_24h"]
    >>> ds = xr.Dataset({"value": (("indicator", "region"), [[9.0, 0.0], [3.5, 1.0]]),
    ...                  "expected": (("indicator", "region"), [[1.0, 1.0], [1.0, 1.0]]),
    ...                  "scale": (("indicator", "region"), [[1.0, 1.0], [1.0, 1.0]])},
    ...                 coords={"indicator": ids, "region": ["A", "B"]})
    >>> ex = explain(ds, "A")
    >>> round(ex.score, 2), round(ex.gap, 2)
    (41.67, 58.33)
    >>> ex.indicators[["indicator", "deficit", "contribution"]].round(2).values.tolist()
    [['safety.public_order.police_violent.count_24h', 1.0, 50.0], ['safety.public_safety.fire_all.count_24h', 0.17, 8.33]]
    >>> round(float(ex.indicators.contribution.sum()), 10) == round(ex.gap, 10)
    True
    """
    prep = Prepared(ds, catalog, city, config)
    spec, cfg, hier = prep.spec, prep.cfg, prep.hier
    region = str(region)
    level_k, col = None, None
    for k, lv in enumerate(hier.levels):
        if region in lv.ids:
            level_k, col = k, lv.ids.index(region)
            break
    if level_k is None:
        known = [lv.ids[0] for lv in hier.levels if lv.ids]
        raise ValueError(f"unknown region {region!r}; expected a region id of the run/city, e.g. {', '.join(known)} "
                         f"({len(hier.base.ids)} {hier.base.name}s)")
    if index not in spec.index_labels:
        raise ValueError(f"unknown index {index!r}; expected one of {', '.join(spec.index_labels)}")
    t = select_time(ds, time)
    c = prep.cycle(t, want_deficit=True)
    deficit = c["deficit"]
    if level_k == 0:
        q = 1.0 - deficit[:, col]
    else:
        q = prep.parent_tables(c["pnum"], c["pden"])[level_k - 1][:, col]
    geometric = prep.geometric
    eff, grp, keys, share = _effective(spec, index, q, geometric)
    ok = np.isfinite(q) & (grp >= 0)
    d = np.where(ok, 1.0 - q, 0.0)
    if geometric:
        lq = np.where(ok, -np.log(np.maximum(np.where(ok, q, 1.0), cfg.geometric_floor)), 0.0)
        L = eff * lq
        tot = L.sum()
        score = 100.0 * math.exp(-tot) if ok.any() else math.nan
        gap = 100.0 - score
        contrib = np.where(ok, gap * L / tot if tot > 0 else 0.0, 0.0)
    else:
        contrib = 100.0 * eff * d
        score = 100.0 - float(contrib.sum()) if ok.any() else math.nan
        gap = 100.0 - score

    # values and baselines (base level only)
    n = len(spec.ids)
    value = np.full(n, np.nan)
    base = np.full(n, np.nan)
    scl = np.full(n, np.nan)
    method = np.zeros(n, dtype=np.int8)
    worst = [""] * n
    members = _members(hier, level_k, col)
    if level_k == 0:
        method = c["method"][:, col]
        value = c["v"][:, col]
        for m, (ea, sa) in ((2, ("e1", "s1")), (3, ("e2", "s2"))):
            sel = method == m
            if sel.any():
                base[sel], scl[sel] = c[ea][sel, col], c[sa][sel, col]
        sel = method == 5
        base[sel], scl[sel] = c["peer_e"][sel], c["peer_s"][sel]
        for m, ref in ((1, spec.cfg_ref), (4, spec.thr_ref)):
            sel = method == m
            # the good bound on the bad side is the reference value shown as the baseline
            base[sel] = np.where(np.isfinite(ref[sel, 2]), ref[sel, 2], ref[sel, 1])
    else:
        sub = deficit[:, members]
        has = np.isfinite(sub).any(axis=1)
        arg = np.argmax(np.where(np.isfinite(sub), sub, -1.0), axis=1)
        worst = [hier.base.ids[members[a]] if h else "" for a, h in zip(arg, has)]
    in_index = grp >= 0
    rows = []
    for i in np.flatnonzero(in_index & np.isfinite(q)):
        r = spec.records[i]
        rows.append({
            "indicator": spec.ids[i], "name_zh": r.get("name_zh", spec.ids[i]), "name_en": r.get("name_en", spec.ids[i]),
            "domain": r.get("domain", ""), "dimension": r.get("dimension", ""), "group": keys[grp[i]],
            "owner": r.get("owner", "") or "", "value": float(value[i]), "baseline": float(base[i]), "scale": float(scl[i]),
            "method": METHOD_NAMES[method[i]] if level_k == 0 else f"{hier.levels[level_k].name} mean",
            "deficit": float(1.0 - q[i]), "weight": float(eff[i]), "contribution": float(contrib[i]),
            "worst_region": worst[i],
        })
    cols = ["indicator", "name_zh", "name_en", "domain", "dimension", "group", "owner", "value", "baseline", "scale",
            "method", "deficit", "weight", "contribution", "worst_region"]
    ind = pd.DataFrame(rows, columns=cols)
    ind = ind.sort_values(["contribution", "indicator"], ascending=[False, True], kind="stable").reset_index(drop=True)
    imputed = [spec.ids[i] for i in np.flatnonzero(in_index & ~np.isfinite(q))]

    gnames = _group_names(spec, index, keys)
    grows = []
    for g, key in enumerate(keys):
        sel = ok & (grp == g)
        if not (share[g] > 0 or sel.any()):
            continue
        w = spec.weight[sel]
        if not sel.any() or w.sum() <= 0:
            gscore = math.nan
        elif geometric:
            gscore = 100.0 * math.exp(float((w * np.log(np.maximum(q[sel], cfg.geometric_floor))).sum() / w.sum()))
        else:
            gscore = 100.0 * float((w * q[sel]).sum() / w.sum())
        grows.append({"group": key, "name_zh": gnames[g][0], "name_en": gnames[g][1], "score": gscore,
                      "weight": float(share[g]), "contribution": float(contrib[sel].sum())})
    groups = pd.DataFrame(grows, columns=["group", "name_zh", "name_en", "score", "weight", "contribution"])
    groups = groups.sort_values(["contribution", "group"], ascending=[False, True], kind="stable").reset_index(drop=True)

    code = cfg.grade_of(score)
    grade = {"code": code, "key": cfg.grades[code].key if code >= 0 else "no_data",
             "zh": cfg.grades[code].zh if code >= 0 else cfg.no_data["zh"],
             "en": cfg.grades[code].en if code >= 0 else cfg.no_data["en"]}
    tlabel = None
    if t is not None:
        tlabel = pd.Timestamp(prep.value["time"].values[t]).isoformat()
    elif "time" in ds.coords and ds["time"].size == 1:
        tlabel = pd.Timestamp(ds["time"].values.item()).isoformat()
    lv = hier.levels[level_k]
    return Explanation(region=region, region_name=str(lv.names[col]), level=lv.name, time=tlabel, index=index,
                       score=float(score), gap=float(gap), grade=grade, aggregation=cfg.method, groups=groups,
                       indicators=ind, imputed=imputed)


def _members(hier, level_k: int, col: int) -> np.ndarray:
    """Base-region positions under region ``col`` of level ``level_k``."""
    pos = np.arange(len(hier.base.ids))
    if level_k == 0:
        return np.array([col])
    anc = pos.copy()
    for k in range(level_k):
        anc = hier.levels[k].parent[anc]
    return pos[anc == col]


def _group_names(spec, index: str, keys: list) -> list:
    if index == "safety_index":
        return [(a.zh, a.en) for a in spec.config.angles]
    if index in spec.risk_keys:
        g = spec.config.epidemic[spec.risk_keys.index(index)]
        return [(g.zh, g.en)]
    return [spec.names.get(k, (k, k)) for k in keys]
