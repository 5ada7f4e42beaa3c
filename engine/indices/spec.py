"""The index structure for one Dataset: per-indicator arrays built from the catalog and config.

:class:`IndexSpec` holds, for the indicators of a Dataset (in its order), the direction codes,
weights, reference ranges and the group index arrays (indicator -> dimension -> domain, safety
angle, epidemic risk) that the kernels read. Nothing here loops over regions.

>>> from engine.catalog import Catalog
>>> from engine.indices.config import load_config
>>> ids = ["safety.public_order.police_violent.count_24h", "market.commerce.entries_mall.sum_1h"]
>>> spec = IndexSpec.build(ids, Catalog.load(), load_config())
>>> spec.index_labels[:6]
['overall', 'safety', 'construction', 'market', 'livelihood', 'public_order']
>>> [spec.dims[k] for k in spec.dim_of], spec.angle_of.tolist()
(['public_order', 'commerce'], [0, -1])
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

import numpy as np

from engine.indices.config import IndicesConfig
from engine.indices.kernels import DIRECTIONS

RISKS = ("imported_risk", "mobility_risk", "gathering_risk")


def _records(catalog) -> tuple[dict, dict | None]:
    """``{id: indicator dict}`` and the domain vocabulary (None for a plain list of dicts)."""
    if hasattr(catalog, "indicators") and hasattr(catalog, "domains"):
        return {i["id"]: i for i in catalog.indicators}, catalog.domains
    recs = list(catalog)
    return {i["id"]: i for i in recs}, None


def _matcher(patterns) -> re.Pattern:
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


def _assign(ids: list[str], pattern_lists) -> np.ndarray:
    """Group position of each id (the first pattern list that matches it), -1 when none.

    One regex of alternatives, one per list in order: the first alternative that matches an id
    is the first list that matches it, so each id is matched once.
    """
    out = np.full(len(ids), -1, dtype=np.int64)
    pattern_lists = [list(p) for p in pattern_lists]
    alts = [f"(?P<g{g}>{_matcher(p).pattern})" for g, p in enumerate(pattern_lists)]
    if not alts:
        return out
    rx = re.compile("|".join(alts))
    for n, iid in enumerate(ids):
        m = rx.match(iid)
        if m is not None:
            out[n] = int(m.lastgroup[1:])
    return out


def _threshold_range(thr, direction: str) -> tuple[float, float, float, float]:
    nan = float("nan")
    if not thr or "warn" not in thr or "alarm" not in thr:
        return (nan, nan, nan, nan)
    warn, alarm = float(thr["warn"]), float(thr["alarm"])
    upper = alarm > warn or (alarm == warn and direction != "down_bad")
    return (nan, nan, warn, alarm) if upper else (alarm, warn, nan, nan)


@dataclass
class IndexSpec:
    """Per-indicator arrays and index labels for one list of indicator ids.

    Attributes
    ----------
    ids : list of str
    direction : int8 (n,) 0 up_bad / 1 down_bad / 2 both
    weight : float64 (n,) catalog weights
    dim_of : int64 (n,) position in :attr:`dims`
    dims, domains : list of str; ``dom_of_dim`` int64 maps dims to domains
    dim_weight, dom_weight : float64 weights from the config (1 by default)
    angle_of, risk_of : int64 (n,) safety angle / epidemic risk, -1 none
    angle_weight : float64 (8,)
    cfg_ref, thr_ref : float64 (n, 4) reference ranges ``[bad_lo, good_lo, good_hi, bad_hi]``
    records : list of dict (catalog entries, for names and owners)
    """

    ids: list
    direction: np.ndarray
    weight: np.ndarray
    dim_of: np.ndarray
    dims: list
    domains: list
    dom_of_dim: np.ndarray
    dim_weight: np.ndarray
    dom_weight: np.ndarray
    angle_of: np.ndarray
    angle_weight: np.ndarray
    risk_of: np.ndarray
    cfg_ref: np.ndarray
    thr_ref: np.ndarray
    records: list
    names: dict
    config: IndicesConfig

    @classmethod
    def build(cls, ids, catalog, config: IndicesConfig) -> "IndexSpec":
        """Look every id up in ``catalog`` (a :class:`~engine.catalog.Catalog` or a list of dicts
        with ``id, domain, dimension, direction`` and optional ``weight, thresholds, owner,
        name_zh, name_en``) and assign it to its groups.

        Raises
        ------
        ValueError
            When ids are missing from the catalog or an entry has an unknown direction.
        """
        ids = [str(i) for i in ids]
        by_id, vocab = _records(catalog)
        missing = [i for i in ids if i not in by_id]
        if missing:
            more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
            raise ValueError(f"indicators not in the catalog: {', '.join(missing[:3])}{more}; "
                             "pass the catalog the run was computed with")
        recs = [by_id[i] for i in ids]
        names: dict = {}
        if vocab is not None:
            domains = list(vocab)
            dims, dom_of_dim = [], []
            for d_i, (dk, dv) in enumerate(vocab.items()):
                names[dk] = (dv.get("name_zh", dk), dv.get("name_en", dk))
                for kk, kv in dv.get("dimensions", {}).items():
                    dims.append(kk)
                    dom_of_dim.append(d_i)
                    names[kk] = (kv.get("name_zh", kk), kv.get("name_en", kk))
        else:
            domains, dims, dom_of_dim = [], [], []
            for r in recs:
                if r["domain"] not in domains:
                    domains.append(r["domain"])
                if r["dimension"] not in dims:
                    dims.append(r["dimension"])
                    dom_of_dim.append(domains.index(r["domain"]))
        if len(set(dims)) != len(dims) or set(dims) & set(domains):
            raise ValueError("dimension keys must be unique and differ from domain keys to label the indices")
        dim_pos = {k: n for n, k in enumerate(dims)}
        direction = np.empty(len(ids), dtype=np.int8)
        dim_of = np.empty(len(ids), dtype=np.int64)
        for n, r in enumerate(recs):
            if r.get("direction") not in DIRECTIONS:
                raise ValueError(f"indicator {r['id']}: direction must be one of {', '.join(DIRECTIONS)}, got {r.get('direction')!r}")
            direction[n] = DIRECTIONS[r["direction"]]
            if r.get("dimension") not in dim_pos:
                raise ValueError(f"indicator {r['id']}: dimension {r.get('dimension')!r} is not one of {', '.join(dims)}")
            dim_of[n] = dim_pos[r["dimension"]]
        weight = np.array([float(r.get("weight", 1.0) if r.get("weight") is not None else 1.0) for r in recs])
        if (weight < 0).any() or not np.isfinite(weight).all():
            raise ValueError("indicator weights must be finite and >= 0")
        dim_weight = np.array([config.dimension_weights.get(k, 1.0) for k in dims], dtype=np.float64)
        dom_weight = np.array([config.domain_weights.get(k, 1.0) for k in domains], dtype=np.float64)
        for table, known, what in ((config.dimension_weights, dims, "dimension"), (config.domain_weights, domains, "domain")):
            bad = sorted(set(table) - set(known))
            if bad:
                raise ValueError(f"{config.source}: weights for unknown {what}(s) {', '.join(bad)}; expected {', '.join(known)}")

        nan = float("nan")
        cfg_ref = np.full((len(ids), 4), nan)
        for ref in reversed(config.references):  # earlier entries win
            hit = _assign(ids, [ref.match]) >= 0
            cfg_ref[hit] = ref.bounds
        thr_ref = np.array([_threshold_range(r.get("thresholds"), r["direction"]) for r in recs], dtype=np.float64).reshape(-1, 4)
        angles = config.angles
        risks = config.epidemic
        return cls(
            ids=ids, direction=direction, weight=weight, dim_of=dim_of, dims=dims, domains=domains,
            dom_of_dim=np.asarray(dom_of_dim, dtype=np.int64), dim_weight=dim_weight, dom_weight=dom_weight,
            angle_of=_assign(ids, [a.match for a in angles]), angle_weight=np.array([a.weight for a in angles], dtype=np.float64),
            risk_of=_assign(ids, [g.match for g in risks]), cfg_ref=cfg_ref, thr_ref=thr_ref, records=recs, names=names, config=config,
        )

    # ------------------------------------------------------------------ labels
    @property
    def risk_keys(self) -> list[str]:
        return [g.key for g in self.config.epidemic]

    @property
    def index_labels(self) -> list[str]:
        """``overall``, the domains, the dimensions, ``safety_index``, the epidemic risks."""
        return ["overall", *self.domains, *self.dims, "safety_index", *self.risk_keys]

    def index_meta(self) -> tuple[list[str], list[str], list[str]]:
        """Kind, Chinese and English name of every index label."""
        kind, zh, en = ["overall"], ["综合健康指数"], ["Overall health"]
        for k in self.domains:
            kind.append("domain")
            zh.append(self.names.get(k, (k, k))[0])
            en.append(self.names.get(k, (k, k))[1])
        for k in self.dims:
            kind.append("dimension")
            zh.append(self.names.get(k, (k, k))[0])
            en.append(self.names.get(k, (k, k))[1])
        kind.append("safety")
        zh.append(self.config.safety["zh"])
        en.append(self.config.safety["en"])
        for g in self.config.epidemic:
            kind.append("epidemic")
            zh.append(g.zh)
            en.append(g.en)
        return kind, zh, en

    # ------------------------------------------------------------------ group arrays
    @property
    def n_groups(self) -> int:
        return len(self.dims) + len(self.config.angles) + len(self.config.epidemic)

    def group_arrays(self, weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``group_of`` (3, n) and ``group_w`` (3, n): dimension, safety-angle and risk sets,
        numbered globally (dims first, then angles, then risks)."""
        w = self.weight if weight is None else weight
        nd, na = len(self.dims), len(self.config.angles)
        g = np.stack([self.dim_of,
                      np.where(self.angle_of >= 0, self.angle_of + nd, -1),
                      np.where(self.risk_of >= 0, self.risk_of + nd + na, -1)]).astype(np.int64)
        gw = np.ascontiguousarray(np.broadcast_to(w, g.shape), dtype=np.float64)
        return np.ascontiguousarray(g), gw

    def group_totals(self, weight: np.ndarray | None = None) -> np.ndarray:
        """Total indicator weight of every group (for the imputed share)."""
        g, gw = self.group_arrays(weight)
        out = np.zeros(self.n_groups)
        for k in range(g.shape[0]):
            ok = g[k] >= 0
            np.add.at(out, g[k][ok], gw[k][ok])
        return out
