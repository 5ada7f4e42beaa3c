"""Expanding templates into concrete indicators.

A ``[[template]]`` names a feed, an expansion (``each``) and a statistic set. ``each`` is one axis
or a list of axes; each axis yields items with placeholders for names and filters:

=====================  ===================================================  =====================
axis                   items                                                placeholders
=====================  ===================================================  =====================
``categories``         the feed's categories (hotline: taxonomy sub-classes)  ``{category...}``
``category_groups``    category ``group`` values with 2+ members              ``{group...}``
``metrics``            the feed's metrics                                     ``{metric...}``
``fields``             the feed's fields                                      ``{field...}``
``channels``           the feed's channels                                    ``{channel...}``
``classes``            taxonomy classes                                       ``{class...}``
``composite_classes``  taxonomy classes with 2+ sub-classes                   ``{class...}``
``sectors``            the 20 enterprise sectors                              ``{sector...}``
``sizes``              enterprise sizes                                       ``{size...}``
``site_kinds``         the feed's emitting site kinds                         ``{kind...}``
=====================  ===================================================  =====================

Each placeholder family has ``{x}`` (id), ``{x_key}`` (id in lower case, for indicator ids), ``{x_zh}``, ``{x_en}``, ``{x_members}`` (category ids it
covers, for filters), ``{x_owner}`` and ``{x_unit}``; with a single axis ``{item...}`` works too.
``only`` / ``exclude`` restrict items (a list for one axis, a table axis -> list for several);
``only_statistics`` restricts the statistic set. A template with ``formula`` instead of ``feed``
expands into one derived indicator per item (``statistic`` names its last id part).
A ``[[indicator]]`` entry is one indicator written out in full.
"""

from __future__ import annotations

import itertools
import string

from engine.catalog.problems import Problem
from engine.catalog.vocabulary import ENTERPRISE_SIZES

AXIS_KEYS = {
    "categories": "category",
    "category_groups": "group",
    "metrics": "metric",
    "fields": "field",
    "channels": "channel",
    "classes": "class",
    "composite_classes": "class",
    "sectors": "sector",
    "sizes": "size",
    "site_kinds": "kind",
}


class _Missing(dict):
    def __missing__(self, key):
        raise KeyError(key)


def _axis_items(axis: str, template: dict, feed: dict | None, taxonomy: dict) -> list[dict]:
    """Items of one axis as dicts with id, name_zh, name_en, members, owner, unit."""
    from engine.city import SECTORS, SITE_KINDS

    def item(id_, zh, en, members=None, owner="", unit=""):
        return {"id": id_, "name_zh": zh, "name_en": en, "members": members or [id_], "owner": owner, "unit": unit}

    if axis == "sectors":
        return [item(code, zh, en) for code, zh, en in SECTORS]
    if axis == "sizes":
        return [item(*s) for s in ENTERPRISE_SIZES]
    if axis in ("classes", "composite_classes"):
        return [
            item(cid, c["name_zh"], c["name_en"], list(c["subs"]), c["owner"])
            for cid, c in taxonomy.items()
            if axis == "classes" or len(c["subs"]) > 1
        ]
    if feed is None:
        raise ValueError(f"axis {axis!r} needs a feed")
    if axis == "categories":
        return [item(k, v["name_zh"], v["name_en"], owner=v.get("owner", "")) for k, v in feed.get("categories", {}).items()]
    if axis == "category_groups":
        names = template.get("group_names", {})
        groups: dict[str, list[str]] = {}
        for k, v in feed.get("categories", {}).items():
            if v.get("group"):
                groups.setdefault(v["group"], []).append(k)
        out = []
        for g, members in groups.items():
            if len(members) < 2:
                continue  # a one-member group would duplicate that category's indicators
            zh, en = names.get(g, [None, None])
            if zh is None:
                raise ValueError(f"group {g!r} has no entry in group_names")
            out.append(item(g, zh, en, members))
        return out
    if axis in ("metrics", "fields"):
        return [item(k, v["name_zh"], v["name_en"], unit=v.get("unit", "")) for k, v in feed.get(axis, {}).items()]
    if axis == "channels":
        return [item(k, v["name_zh"], v["name_en"]) for k, v in feed.get("channels", {}).items()]
    if axis == "site_kinds":
        out = []
        for k in feed.get("emitter_kinds", []):
            spec = SITE_KINDS[k]
            out.append(item(k, _name(spec, "zh"), _name(spec, "en")))
        return out
    raise ValueError(f"unknown axis {axis!r}; expected one of {sorted(AXIS_KEYS)}")


def _name(spec, lang: str) -> str:
    """Site-kind names, whether the city keeps them as dicts, tuples or objects."""
    key = f"name_{lang}"
    if isinstance(spec, dict):
        return spec.get(key) or spec.get(lang)
    if isinstance(spec, (tuple, list)):
        return spec[0] if lang == "zh" else spec[1]
    return getattr(spec, key, None) or getattr(spec, lang)


def _fmt(value, ctx: dict):
    """Fill placeholders in a string, or in every string of a list/dict.

    A string that is exactly one ``{..._members}`` placeholder becomes that list.
    """
    if isinstance(value, str):
        fields = [f for _, f, _, _ in string.Formatter().parse(value) if f]
        if len(fields) == 1 and value == "{" + fields[0] + "}" and isinstance(ctx.get(fields[0]), list):
            members = ctx[fields[0]]
            return members[0] if len(members) == 1 else sorted(members)
        return value.format_map(_Missing(ctx))
    if isinstance(value, list):
        return [_fmt(v, ctx) for v in value]
    if isinstance(value, dict):
        return {k: _fmt(v, ctx) for k, v in value.items()}
    return value


def _unit_of(filt: dict, feed: dict) -> str:
    """The base unit of a subject: its metric's or field's unit, else the feed's (events)."""
    for key, table in (("metric", "metrics"), ("field", "fields")):
        value = filt.get(key)
        if isinstance(value, str) and value in feed.get(table, {}):
            return feed[table][value].get("unit", "")
    return feed.get("unit", "")


def _restrict(items: list[dict], axis: str, rule, single: bool, what: str, name: str, problems) -> list[dict]:
    if rule is None:
        return items
    ids = rule if single and isinstance(rule, list) else (rule.get(axis) if isinstance(rule, dict) else None)
    if ids is None:
        return items
    known = {i["id"] for i in items}
    for bad in [i for i in ids if i not in known]:
        problems.append((what, f"{bad!r} is not an item of axis {axis!r}; expected one of {sorted(known)}"))
    keep = set(ids)
    return [i for i in items if (i["id"] in keep) == (what == "only")]


def expand_file(file: str, data: dict, ctx: dict, problems: list[Problem]) -> list[dict]:
    """Expand every template and explicit indicator of one indicator file.

    ``ctx`` holds the loaded vocabulary (``feeds``, ``taxonomy``, ``statistics``). Returns raw
    indicator dicts (validated later), each with ``_file`` and ``_entry`` for error messages.
    """
    domain = data.get("domain")
    if not domain:
        problems.append(Problem(file, "-", "domain", "an indicator file needs a top-level domain"))
    out: list[dict] = []
    for t_i, tpl in enumerate(data.get("template", [])):
        entry = tpl.get("id") or f"template[{t_i}]"
        local: list[tuple[str, str]] = []
        try:
            out.extend(_expand_template(file, entry, domain, tpl, ctx, local))
        except KeyError as exc:
            local.append(("-", f"placeholder {{{exc.args[0]}}} is not defined for this template"))
        except ValueError as exc:
            local.append(("each", str(exc)))
        problems.extend(Problem(file, entry, f, r) for f, r in local)
    for i_i, ind in enumerate(data.get("indicator", [])):
        raw = dict(ind)
        raw.setdefault("domain", domain)
        raw.setdefault("normalisation", "none")
        raw.setdefault("filter", {})
        raw.setdefault("weight", 1.0)
        raw["_file"], raw["_entry"] = file, ind.get("id") or f"indicator[{i_i}]"
        out.append(raw)
    return out


def _expand_template(file, entry, domain, tpl, ctx, problems) -> list[dict]:
    feeds, stats = ctx["feeds"], ctx["statistics"]
    feed_id = tpl.get("feed")
    feed = feeds.get(feed_id) if feed_id else None
    if feed_id and feed is None:
        problems.append(("feed", f"unknown feed {feed_id!r}; expected one of {sorted(feeds)}"))
        return []
    if not tpl.get("dimension"):
        problems.append(("dimension", "missing or empty"))
    if not tpl.get("subject"):
        problems.append(("subject", "missing or empty"))
        return []
    axes = tpl.get("each")
    axes = [] if axes is None else [axes] if isinstance(axes, str) else list(axes)
    single = len(axes) == 1
    per_axis = []
    for axis in axes:
        if axis not in AXIS_KEYS:
            problems.append(("each", f"unknown axis {axis!r}; expected one of {sorted(AXIS_KEYS)}"))
            return []
        items = _axis_items(axis, tpl, feed, ctx["taxonomy"])
        items = _restrict(items, axis, tpl.get("only"), single, "only", entry, problems)
        items = _restrict(items, axis, tpl.get("exclude"), single, "exclude", entry, problems)
        per_axis.append((axis, items))

    out = []
    for combo in itertools.product(*[items for _, items in per_axis]) if per_axis else [()]:
        pctx: dict = {}
        for (axis, _), it in zip(per_axis, combo):
            keys = [AXIS_KEYS[axis]] + (["item"] if single else [])
            for key in keys:
                pctx[key] = it["id"]
                pctx[f"{key}_key"] = it["id"].lower()
                for attr in ("name_zh", "name_en"):
                    pctx[f"{key}_{attr[5:]}"] = it[attr]
                pctx[f"{key}_members"] = it["members"]
                pctx[f"{key}_owner"] = it["owner"]
                pctx[f"{key}_unit"] = it["unit"]
        subject = _fmt(tpl["subject"], pctx)
        base = f"{domain}.{tpl.get('dimension')}.{subject}"
        common = {
            "domain": domain,
            "dimension": tpl.get("dimension"),
            "direction": tpl.get("direction"),
            "seasonality": tpl.get("seasonality", "none"),
            "owner": _fmt(tpl.get("owner", ""), pctx),
            "weight": tpl.get("weight", 1.0),
            "_file": file,
            "_entry": entry,
        }
        if "formula" in tpl:  # one derived indicator per item
            stat = tpl.get("statistic", "value")
            thr = (tpl.get("thresholds") or {}).get(stat, tpl.get("thresholds") if "warn" in (tpl.get("thresholds") or {}) else None)
            out.append({
                **common,
                "id": f"{base}.{stat}",
                "name_zh": _fmt(tpl.get("name_zh", ""), pctx),
                "name_en": _fmt(tpl.get("name_en", ""), pctx),
                "unit": _fmt(tpl.get("unit", ""), pctx),
                "feed": None,
                "filter": {},
                "aggregation": "derived",
                "formula": _fmt(tpl["formula"], pctx),
                "window": tpl.get("window", "15min"),
                "normalisation": "none",
                "rollup": "formula",
                "thresholds": thr,
            })
            continue
        set_name = tpl.get("statistics")
        if set_name not in stats:
            problems.append(("statistics", f"unknown statistic set {set_name!r}; expected one of {sorted(stats)}"))
            return []
        variants = stats[set_name]
        only_stats = tpl.get("only_statistics")
        if only_stats is not None:
            for bad in [v for v in only_stats if v not in variants]:
                problems.append(("only_statistics", f"statistic set {set_name!r} has no variant {bad!r}"))
            variants = {k: v for k, v in variants.items() if k in only_stats}
        for key in ("subject_zh", "subject_en"):
            if not str(tpl.get(key, "")).strip():
                problems.append((key, "missing or empty (names are built from it)"))
                return out
        subject_zh = _fmt(tpl.get("subject_zh", ""), pctx)
        subject_en = _fmt(tpl.get("subject_en", ""), pctx)
        filt = _fmt(tpl.get("filter", {}), pctx)
        unit = _fmt(tpl.get("unit", ""), pctx) or _unit_of(filt, feed)
        thresholds = tpl.get("thresholds") or {}
        for bad in [k for k in thresholds if k not in variants]:
            problems.append(("thresholds", f"statistic {bad!r} is not in set {set_name!r}"))
        vctx = {"subject_zh": subject_zh, "subject_en": subject_en, "unit": unit, "base": base}
        for stat, var in variants.items():
            ind = {
                **common,
                "id": f"{base}.{stat}",
                "name_zh": _fmt(var.get("name_zh", ""), vctx),
                "name_en": _fmt(var.get("name_en", ""), vctx),
                "unit": _fmt(var.get("unit", "{unit}"), vctx),
                "feed": feed_id,
                "filter": filt,
                "aggregation": var.get("aggregation"),
                "window": var.get("window"),
                "normalisation": var.get("normalisation", "none"),
                "rollup": var.get("rollup"),
                "thresholds": thresholds.get(stat),
            }
            if "q" in var:
                ind["q"] = var["q"]
            if "formula" in var:
                ind["formula"] = _fmt(var["formula"], vctx)
                ind["filter"] = {}
            if tpl.get("cluster_scan") and var.get("scan"):
                ind["cluster_scan"] = True
            out.append(ind)
    return out
