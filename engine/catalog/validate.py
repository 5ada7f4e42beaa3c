"""Validation of expanded indicators: every problem is collected, none stops the others."""

from __future__ import annotations

import math

from engine.catalog import expr
from engine.catalog.problems import Problem
from engine.catalog.vocab import (
    AGGREGATIONS, AGGREGATIONS_BY_KIND, DIRECTIONS, FIELDS, FILTER_KEYS, INDICATOR_ID,
    NORMALISATIONS, ROLLUPS, SEASONALITIES, window_minutes,
)
from engine.catalog.vocabulary import ENTERPRISE_SIZES

REQUIRED_TEXT = ("id", "name_zh", "name_en", "unit", "domain", "dimension", "aggregation", "window",
                 "direction", "rollup", "owner")


def _filter_values(value) -> list:
    return value if isinstance(value, list) else [value]


def check_filter(ind: dict, feed: dict, add) -> None:
    """Every filter key must be one the feed's records carry, every value one the feed declares."""
    from engine.city import SECTORS

    kind = feed["kind"]
    allowed = {
        "category": set(feed.get("categories", {})),
        "channel": set(feed.get("channels", {})),
        "metric": set(feed.get("metrics", {})),
        "field": set(feed.get("fields", {})),
        "kind": set(feed.get("emitter_kinds", [])),
        "sector": {s[0] for s in SECTORS} if feed.get("emitter") == "enterprise" else set(),
        "size": {s[0] for s in ENTERPRISE_SIZES} if feed.get("emitter") == "enterprise" else set(),
    }
    filt = ind.get("filter") or {}
    if not isinstance(filt, dict):
        add("filter", f"expected a table such as {{category = \"theft\"}}, got {filt!r}")
        return
    for key, value in filt.items():
        if key not in FILTER_KEYS[kind]:
            add("filter", f"key {key!r} does not apply to {kind} feed {ind['feed']!r}; expected one of {list(FILTER_KEYS[kind])}")
            continue
        for v in _filter_values(value):
            if v not in allowed[key]:
                add("filter", f"{key} {v!r} is not declared by feed {ind['feed']!r}; expected one of {sorted(allowed[key])}")
    need = {"readings": "metric", "snapshots": "field"}.get(kind)
    if need and need not in filt and ind.get("aggregation") != "derived":
        add("filter", f"a {kind} indicator must choose a {need}")


def check_indicator(ind: dict, vocab: dict, add) -> None:
    """Field-level checks of one indicator; ``add(field, reason)`` records a problem."""
    for key in REQUIRED_TEXT:
        value = ind.get(key)
        if not isinstance(value, str) or not value.strip():
            add(key, "missing or empty" if value in (None, "") else f"expected text, got {value!r}")
    iid = ind.get("id") or ""
    if iid and not INDICATOR_ID.match(iid):
        add("id", f"{iid!r} is not domain.dimension.subject.statistic in lower-case snake_case")
    domains = vocab["domains"]
    dom, dim = ind.get("domain"), ind.get("dimension")
    if dom and dom not in domains:
        add("domain", f"unknown domain {dom!r}; expected one of {sorted(domains)}")
    elif dom and dim and dim not in domains[dom]["dimensions"]:
        add("dimension", f"unknown dimension {dim!r} for domain {dom!r}; expected one of {sorted(domains[dom]['dimensions'])}")
    if iid and dom and dim and INDICATOR_ID.match(iid) and not iid.startswith(f"{dom}.{dim}."):
        add("id", f"{iid!r} must start with its domain and dimension {dom}.{dim}.")
    agg = ind.get("aggregation")
    if agg and agg not in AGGREGATIONS:
        add("aggregation", f"unknown aggregation {agg!r}; expected one of {list(AGGREGATIONS)}")
    if ind.get("window"):
        try:
            window_minutes(ind["window"])
        except ValueError as exc:
            add("window", str(exc))
    for key, allowed in (("normalisation", NORMALISATIONS), ("direction", DIRECTIONS), ("rollup", ROLLUPS),
                         ("seasonality", SEASONALITIES)):
        value = ind.get(key)
        if value and value not in allowed:
            add(key, f"unknown {key} {value!r}; expected one of {list(allowed)}")
    owner = ind.get("owner")
    if owner and owner not in vocab["departments"]:
        add("owner", f"unknown department {owner!r}; expected one of {sorted(vocab['departments'])}")
    weight = ind.get("weight")
    if not isinstance(weight, (int, float)) or isinstance(weight, bool) or not math.isfinite(weight) or weight <= 0:
        add("weight", f"expected a positive number, got {weight!r}")
    _check_thresholds(ind, add)
    if agg == "derived":
        if ind.get("rollup") not in (None, "formula"):
            add("rollup", "a derived indicator rolls up by re-evaluating its formula: use rollup = \"formula\"")
        if not ind.get("formula"):
            add("formula", "a derived indicator needs a formula")
        return
    if ind.get("rollup") == "formula":
        add("rollup", "rollup \"formula\" is only for derived indicators")
    if "formula" in ind:
        add("formula", f"only derived indicators have a formula (aggregation is {agg!r})")
    feed_id = ind.get("feed")
    feed = vocab["feeds"].get(feed_id)
    if feed is None:
        add("feed", f"unknown feed {feed_id!r}; expected one of {sorted(vocab['feeds'])}")
        return
    if agg in AGGREGATIONS and agg not in AGGREGATIONS_BY_KIND[feed["kind"]]:
        add("aggregation", f"{agg!r} does not apply to {feed['kind']} feed {feed_id!r}; expected one of {list(AGGREGATIONS_BY_KIND[feed['kind']])}")
    if agg == "quantile":
        q = ind.get("q")
        if not isinstance(q, (int, float)) or not 0 < q < 1:
            add("q", f"a quantile needs q strictly between 0 and 1, got {q!r}")
    elif "q" in ind:
        add("q", f"only quantile indicators have q (aggregation is {agg!r})")
    if agg == "sum" and feed["kind"] == "events" and "value_unit" not in feed:
        add("aggregation", f"events of feed {feed_id!r} carry no value to sum")
    if agg == "share" and feed["kind"] == "snapshots":
        field = (ind.get("filter") or {}).get("field")
        spec = feed.get("fields", {}).get(field, {})
        if spec and (spec.get("min"), spec.get("max")) != (0, 1):
            add("aggregation", f"share needs an on/off (0/1) field; {field!r} ranges {spec.get('min')}..{spec.get('max')}")
    if ind.get("normalisation") == "per_site" and feed.get("emitter") != "site":
        add("normalisation", f"per_site needs a feed emitted by sites; {feed_id!r} is emitted by {feed.get('emitter')!r}")
    check_filter(ind, feed, add)
    _check_levels_in_range(ind, feed, add)


# Aggregations whose value is in the unit of the metric or field itself (one reading, or a mean or
# extreme of readings), so a level outside the declared range can never be reached.
_SAME_UNIT = ("mean", "max", "min", "quantile")


def _check_levels_in_range(ind: dict, feed: dict, add) -> None:
    """A warn / alarm level of a level-type indicator must lie strictly inside the range its feed
    declares for the metric or field (a level at or beyond an end is met only by clipped readings:
    e.g. a dB(A) metric given a PM10 template's 150 / 250)."""
    thr = ind.get("thresholds")
    if not isinstance(thr, dict) or ind.get("aggregation") not in _SAME_UNIT or ind.get("normalisation", "none") != "none":
        return
    filt = ind.get("filter") or {}
    key, table = ("metric", "metrics") if feed.get("kind") == "readings" else ("field", "fields")
    name = filt.get(key) if isinstance(filt, dict) else None
    spec = feed.get(table, {}).get(name) if isinstance(name, str) else None
    if not spec or not isinstance(spec.get("min"), (int, float)) or not isinstance(spec.get("max"), (int, float)):
        return
    lo, hi = spec["min"], spec["max"]
    for level in ("warn", "alarm"):
        x = thr.get(level)
        if isinstance(x, (int, float)) and not isinstance(x, bool) and not lo < x < hi:
            add("thresholds", f"{level} level {x} is outside the range {lo}..{hi} ({spec.get('unit', '')}) that feed "
                              f"{ind.get('feed')!r} declares for {key} {name!r}: it can never be reached")


def _check_thresholds(ind: dict, add) -> None:
    thr = ind.get("thresholds")
    if thr is None:
        return
    if not isinstance(thr, dict) or not thr or set(thr) - {"warn", "alarm"}:
        add("thresholds", f"expected {{warn = x, alarm = y}}, got {thr!r}")
        return
    for k, v in thr.items():
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            add("thresholds", f"{k} must be a number, got {v!r}")
            return
    if "warn" in thr and "alarm" in thr:
        w, a, d = thr["warn"], thr["alarm"], ind.get("direction")
        if d == "up_bad" and not w < a:
            add("thresholds", f"for up_bad the warn level ({w}) must be below the alarm level ({a})")
        if d == "down_bad" and not w > a:
            add("thresholds", f"for down_bad the warn level ({w}) must be above the alarm level ({a})")


def definition_key(ind: dict) -> tuple:
    """Everything but id and names: two indicators with equal keys measure the same thing."""
    def canon(v):
        if isinstance(v, dict):
            return tuple(sorted((k, canon(x)) for k, x in v.items()))
        if isinstance(v, list):
            return tuple(sorted(canon(x) for x in v)) if len(v) != 1 else canon(v[0])
        return v
    skip = {"id", "name_zh", "name_en"}
    keys = [k for k in (*FIELDS, "formula", "q", "cluster_scan") if k not in skip]
    return tuple((k, canon(ind.get(k))) for k in keys)


def check_catalog(indicators: list[dict], vocab: dict) -> list[Problem]:
    """Every check on the expanded catalog; returns all problems."""
    problems: list[Problem] = []
    by_id: dict[str, dict] = {}
    for ind in indicators:
        def add(field, reason, ind=ind):
            problems.append(Problem(ind.get("_file", "?"), ind.get("id") or ind.get("_entry", "?"), field, reason))
        check_indicator(ind, vocab, add)
        iid = ind.get("id")
        if iid in by_id:
            other = by_id[iid]
            add("id", f"duplicate id (also defined in {other.get('_file')} entry {other.get('_entry')})")
        elif iid:
            by_id[iid] = ind
    # Formulas: parse, references, cycles.
    deps: dict[str, set[str]] = {}
    for ind in indicators:
        if ind.get("aggregation") != "derived" or not ind.get("formula"):
            continue
        where = (ind.get("_file", "?"), ind.get("id") or ind.get("_entry", "?"))
        try:
            tree = expr.parse(ind["formula"])
        except expr.FormulaError as exc:
            problems.append(Problem(*where, "formula", str(exc)))
            continue
        names = expr.refs(tree)
        for name in sorted(names - by_id.keys()):
            problems.append(Problem(*where, "formula", f"refers to unknown indicator {name!r}"))
        if not names:
            problems.append(Problem(*where, "formula", "a formula must read at least one indicator"))
        deps[ind["id"]] = names & by_id.keys()
    _, cycles = expr.topological_order(deps)
    for cycle in cycles:
        first = by_id[cycle[0]]
        problems.append(Problem(first.get("_file", "?"), cycle[0], "formula",
                                "formula cycle: " + " -> ".join(cycle + [cycle[0]])))
    # Same definition under two ids.
    seen: dict[tuple, str] = {}
    for ind in indicators:
        key = definition_key(ind)
        if key in seen and seen[key] != ind.get("id"):
            problems.append(Problem(ind.get("_file", "?"), ind.get("id", "?"), "-",
                                    f"same definition as {seen[key]!r} (all fields but id and names equal)"))
        else:
            seen.setdefault(key, ind.get("id"))
    return problems
