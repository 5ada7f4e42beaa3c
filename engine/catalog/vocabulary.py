"""Loading the catalog's vocabulary files: domains, departments, taxonomy, feeds, statistic sets.

Each loader returns plain dicts and appends a :class:`Problem` for anything malformed, so that
validation can report every problem at once.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from engine.catalog.problems import Problem
from engine.catalog.vocab import EMITTERS, FEED_KINDS, window_minutes

VOCABULARY_FILES = ("domains.toml", "departments.toml", "taxonomy.toml", "feeds.toml", "statistics.toml")
# Configuration files that live beside the catalog but define no indicators.
CONFIG_FILES = ("indices.toml",)
ENTERPRISE_SIZES = (
    ("micro", "微型", "Micro"),
    ("small", "小型", "Small"),
    ("medium", "中型", "Medium"),
    ("large", "大型", "Large"),
)


def read_toml(path: Path, problems: list[Problem]) -> dict | None:
    """Parse one TOML file; a syntax error becomes a problem naming the file."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        problems.append(Problem(path.name, "-", "-", f"not valid TOML: {exc}"))
    except OSError as exc:
        problems.append(Problem(path.name, "-", "-", f"cannot be read: {exc}"))
    return None


def _need(entry: dict, keys, file: str, name: str, problems: list[Problem]) -> bool:
    ok = True
    for key in keys:
        value = entry.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            problems.append(Problem(file, name, key, "missing or empty"))
            ok = False
    return ok


def load_domains(data: dict, problems: list[Problem]) -> dict:
    """``{domain_id: {name_zh, name_en, dimensions: {dim_id: {name_zh, name_en}}}}``."""
    file, out = "domains.toml", {}
    for i, dom in enumerate(data.get("domain", [])):
        name = dom.get("id") or f"domain[{i}]"
        if not _need(dom, ("id", "name_zh", "name_en"), file, name, problems):
            continue
        if name in out:
            problems.append(Problem(file, name, "id", "duplicate domain id"))
            continue
        dims = {}
        for j, dim in enumerate(dom.get("dimensions", [])):
            dname = dim.get("id") or f"{name}.dimensions[{j}]"
            if _need(dim, ("id", "name_zh", "name_en"), file, dname, problems):
                if dname in dims:
                    problems.append(Problem(file, dname, "id", f"duplicate dimension id in domain {name!r}"))
                dims[dname] = {"name_zh": dim["name_zh"], "name_en": dim["name_en"]}
        out[name] = {"name_zh": dom["name_zh"], "name_en": dom["name_en"], "dimensions": dims}
    all_dims = [d for dom in out.values() for d in dom["dimensions"]]
    for d in {d for d in all_dims if all_dims.count(d) > 1}:
        problems.append(Problem(file, d, "id", "dimension id used in more than one domain"))
    return out


def load_departments(data: dict, problems: list[Problem]) -> dict:
    file, out = "departments.toml", {}
    for i, dep in enumerate(data.get("department", [])):
        name = dep.get("id") or f"department[{i}]"
        if not _need(dep, ("id", "name_zh", "name_en", "contact"), file, name, problems):
            continue
        if name in out:
            problems.append(Problem(file, name, "id", "duplicate department id"))
        out[name] = {k: dep.get(k, "") for k in ("name_zh", "name_en", "contact", "escalation")}
    return out


def load_taxonomy(data: dict, departments: dict, problems: list[Problem]) -> dict:
    """``{class_id: {name_zh, name_en, owner, subs: {sub_id: {name_zh, name_en}}}}``."""
    file, out, seen_subs = "taxonomy.toml", {}, set()
    for i, cls in enumerate(data.get("class", [])):
        name = cls.get("id") or f"class[{i}]"
        if not _need(cls, ("id", "name_zh", "name_en", "owner"), file, name, problems):
            continue
        if cls["owner"] not in departments:
            problems.append(Problem(file, name, "owner", f"unknown department {cls['owner']!r}"))
        subs = {}
        for j, sub in enumerate(cls.get("sub", [])):
            sname = sub.get("id") or f"{name}.sub[{j}]"
            if not _need(sub, ("id", "name_zh", "name_en"), file, sname, problems):
                continue
            if sname in seen_subs:
                problems.append(Problem(file, sname, "id", "duplicate sub-class id"))
            seen_subs.add(sname)
            subs[sname] = {"name_zh": sub["name_zh"], "name_en": sub["name_en"]}
        if not subs:
            problems.append(Problem(file, name, "sub", "a class needs at least one sub-class"))
        out[name] = {"name_zh": cls["name_zh"], "name_en": cls["name_en"], "owner": cls["owner"], "subs": subs}
    return out


def _items(entries, file: str, feed: str, key: str, problems: list[Problem], need_unit: bool) -> dict:
    out = {}
    for i, item in enumerate(entries or []):
        name = item.get("id") or f"{feed}.{key}[{i}]"
        required = ("id", "name_zh", "name_en") + (("unit",) if need_unit else ())
        if not _need(item, required, file, f"{feed}.{name}", problems):
            continue
        if name in out:
            problems.append(Problem(file, f"{feed}.{name}", "id", f"duplicate {key[:-1]} id"))
        lo, hi = item.get("min"), item.get("max")
        if lo is not None and hi is not None and not lo < hi:
            problems.append(Problem(file, f"{feed}.{name}", "max", f"max {hi} must exceed min {lo}"))
        out[name] = dict(item)
    return out


def load_feeds(data: dict, taxonomy: dict, problems: list[Problem]) -> dict:
    """``{feed_id: {kind, emitter, emitter_kinds, categories | metrics | fields, channels, ...}}``.

    ``categories = "taxonomy"`` expands to the taxonomy's sub-classes, each carrying its class and
    owner.
    """
    from engine.city import SENSOR_KINDS, SITE_KINDS

    file, out = "feeds.toml", {}
    for name, feed in (data.get("feed") or {}).items():
        if not _need(feed, ("name_zh", "name_en", "kind", "emitter"), file, name, problems):
            continue
        kind, emitter = feed["kind"], feed["emitter"]
        if kind not in FEED_KINDS:
            problems.append(Problem(file, name, "kind", f"unknown record kind {kind!r}; expected one of {list(FEED_KINDS)}"))
            continue
        if emitter not in EMITTERS:
            problems.append(Problem(file, name, "emitter", f"unknown emitter {emitter!r}; expected one of {list(EMITTERS)}"))
        known = {"site": SITE_KINDS, "sensor": SENSOR_KINDS}.get(emitter)
        kinds = list(feed.get("emitter_kinds", []))
        if known is not None:
            if not kinds:
                problems.append(Problem(file, name, "emitter_kinds", f"a {emitter} feed must list its {emitter} kinds"))
            for k in kinds:
                if k not in known:
                    problems.append(Problem(file, name, "emitter_kinds", f"unknown {emitter} kind {k!r}; expected one of {sorted(known)}"))
        try:
            window_minutes(feed.get("lateness", "1h"))
        except ValueError as exc:
            problems.append(Problem(file, name, "lateness", str(exc)))
        entry = {k: v for k, v in feed.items() if k not in ("categories", "metrics", "fields", "channels")}
        entry["emitter_kinds"] = kinds
        entry["channels"] = _items(feed.get("channels"), file, name, "channels", problems, need_unit=False)
        if kind == "events":
            _need(feed, ("unit",), file, name, problems)
            cats = feed.get("categories")
            if cats == "taxonomy":
                entry["categories"] = {
                    sub: {"id": sub, **names, "class": cls, "owner": c["owner"]}
                    for cls, c in taxonomy.items() for sub, names in c["subs"].items()
                }
                entry["taxonomy"] = True
            else:
                entry["categories"] = _items(cats, file, name, "categories", problems, need_unit=False)
            if not entry["categories"]:
                problems.append(Problem(file, name, "categories", "an events feed needs categories"))
        elif kind == "readings":
            entry["metrics"] = _items(feed.get("metrics"), file, name, "metrics", problems, need_unit=True)
            if not entry["metrics"]:
                problems.append(Problem(file, name, "metrics", "a readings feed needs metrics"))
        else:
            entry["fields"] = _items(feed.get("fields"), file, name, "fields", problems, need_unit=True)
            if not entry["fields"]:
                problems.append(Problem(file, name, "fields", "a snapshots feed needs fields"))
        out[name] = entry
    return out


def load_statistics(data: dict, problems: list[Problem]) -> dict:
    """Resolve statistic sets: ``_like`` copies another set, ``_only`` / ``_without`` pick variants.

    Returns ``{set_name: {variant_id: {aggregation, window, ...}}}`` (variant order kept).
    """
    file, out = "statistics.toml", {}

    def resolve(name: str, stack: tuple = ()) -> dict:
        if name in out:
            return out[name]
        raw = data.get(name)
        if not isinstance(raw, dict):
            problems.append(Problem(file, stack[-1] if stack else name, "_like", f"unknown statistic set {name!r}"))
            return {}
        if name in stack:
            problems.append(Problem(file, name, "_like", f"statistic sets copy each other in a cycle: {' -> '.join(stack + (name,))}"))
            return {}
        variants: dict = {}
        if "_like" in raw:
            base = resolve(raw["_like"], stack + (name,))
            keep = raw.get("_only")
            drop = set(raw.get("_without", []))
            for v in keep or []:
                if v not in base:
                    problems.append(Problem(file, name, "_only", f"set {raw['_like']!r} has no variant {v!r}"))
            for v in drop - set(base):
                problems.append(Problem(file, name, "_without", f"set {raw['_like']!r} has no variant {v!r}"))
            variants.update({k: v for k, v in base.items() if (keep is None or k in keep) and k not in drop})
        for key, value in raw.items():
            if isinstance(value, dict):
                variants[key] = dict(value)
        out[name] = variants
        return variants

    for name in data:
        resolve(name)
    return out
