"""The indicator catalog: TOML templates under ``indicators/`` expanded into concrete indicators.

>>> from engine.catalog import Catalog
>>> cat = Catalog.load()
>>> len(cat) >= 2600
True
>>> cat.get("safety.epidemic.fever_clinic_visits.per10k_24h")["unit"]
'人次/万人'
"""

from __future__ import annotations

import importlib.resources
from collections import Counter
from pathlib import Path

from engine.catalog import expr
from engine.catalog.expand import expand_file
from engine.catalog.problems import CatalogError, Problem
from engine.catalog.validate import check_catalog
from engine.catalog.vocab import FIELDS, OPTIONAL_FIELDS
from engine.catalog.vocabulary import (
    CONFIG_FILES, VOCABULARY_FILES, load_departments, load_domains, load_feeds, load_statistics, load_taxonomy,
    read_toml,
)

__all__ = ["Catalog", "CatalogError", "Problem", "bundled_path"]


def bundled_path() -> Path:
    """The folder of the catalog shipped with the package (``indicators/``)."""
    return Path(str(importlib.resources.files("indicators")))


def _compile(path: Path | None) -> tuple[dict, list[dict], list[Problem]]:
    folder = Path(path) if path is not None else bundled_path()
    problems: list[Problem] = []
    if not folder.is_dir():
        raise FileNotFoundError(f"catalog folder {str(folder)!r} does not exist or is not a folder")
    raw = {}
    for name in VOCABULARY_FILES:
        # A user's folder may hold only indicator files; the vocabulary then comes from the bundle.
        source = folder / name if (folder / name).exists() else bundled_path() / name
        raw[name] = read_toml(source, problems) or {}
    vocab = {"domains": load_domains(raw["domains.toml"], problems),
             "departments": load_departments(raw["departments.toml"], problems)}
    vocab["taxonomy"] = load_taxonomy(raw["taxonomy.toml"], vocab["departments"], problems)
    vocab["feeds"] = load_feeds(raw["feeds.toml"], vocab["taxonomy"], problems)
    vocab["statistics"] = load_statistics(raw["statistics.toml"], problems)
    indicators: list[dict] = []
    files = sorted(p for p in folder.glob("*.toml") if p.name not in VOCABULARY_FILES + CONFIG_FILES)
    if not files:
        problems.append(Problem(folder.name or str(folder), "-", "-", "no indicator files (*.toml with templates) found"))
    for p in files:
        data = read_toml(p, problems)
        if data is not None:
            indicators.extend(expand_file(p.name, data, vocab, problems))
    _attach_derived_feeds(indicators)
    problems.extend(check_catalog(indicators, vocab))
    return vocab, indicators, problems


def _attach_derived_feeds(indicators: list[dict]) -> None:
    """A derived indicator reads the feed of the first base indicator its formula reaches."""
    by_id = {i.get("id"): i for i in indicators}

    def base_feed(iid: str, seen: frozenset) -> str | None:
        ind = by_id.get(iid)
        if ind is None or iid in seen:
            return None
        if ind.get("aggregation") != "derived":
            return ind.get("feed")
        try:
            names = sorted(expr.refs(expr.parse(ind.get("formula", ""))))
        except expr.FormulaError:
            return None
        for name in names:
            feed = base_feed(name, seen | {iid})
            if feed:
                return feed
        return None

    for ind in indicators:
        if ind.get("aggregation") == "derived" and not ind.get("feed"):
            ind["feed"] = base_feed(ind.get("id"), frozenset())


def _public(ind: dict) -> dict:
    out = {k: ind.get(k) for k in FIELDS}
    out["filter"] = dict(out["filter"] or {})
    for k in OPTIONAL_FIELDS:
        if k in ind:
            out[k] = ind[k]
    return out


class Catalog:
    """The expanded, validated indicator catalog.

    Use :meth:`load` (the bundled catalog, or a folder of TOML files); :meth:`check` returns the
    problems of a folder without raising.

    Attributes
    ----------
    indicators : list of dict
        Every concrete indicator with the fields ``id, name_zh, name_en, unit, domain, dimension,
        feed, filter, aggregation, window, normalisation, direction, rollup, seasonality,
        thresholds, owner, weight`` (plus ``formula``, ``q``, ``cluster_scan`` where they apply).
    domains, departments, taxonomy, feeds, statistics : dict
        The vocabulary the indicators were checked against.

    Examples
    --------
    >>> cat = Catalog.load()
    >>> sorted(cat.domains)
    ['construction', 'livelihood', 'market', 'safety']
    >>> len(cat.select(domain="safety", dimension="epidemic")) > 100
    True
    """

    def __init__(self, vocab: dict, indicators: list[dict], source: Path | None = None):
        self.domains = vocab["domains"]
        self.departments = vocab["departments"]
        self.taxonomy = vocab["taxonomy"]
        self.feeds = vocab["feeds"]
        self.statistics = vocab["statistics"]
        self.indicators = [_public(i) for i in indicators]
        self.source = source
        self._by_id = {i["id"]: i for i in self.indicators}
        self._table = None

    # -------------------------------------------------------------- construction
    @classmethod
    def load(cls, path: str | Path | None = None) -> "Catalog":
        """Load and validate a catalog folder (default: the bundled ``indicators/``).

        Raises
        ------
        CatalogError
            With every problem found (file, entry, field, reason).
        """
        vocab, indicators, problems = _compile(Path(path) if path is not None else None)
        if problems:
            raise CatalogError(problems)
        return cls(vocab, indicators, Path(path) if path is not None else bundled_path())

    @staticmethod
    def check(path: str | Path | None = None) -> list[Problem]:
        """Every problem of a catalog folder (empty when valid).

        >>> Catalog.check()
        []
        """
        return _compile(Path(path) if path is not None else None)[2]

    # -------------------------------------------------------------- access
    def __len__(self) -> int:
        return len(self.indicators)

    def __iter__(self):
        return iter(self.indicators)

    def __contains__(self, iid: str) -> bool:
        return iid in self._by_id

    @property
    def ids(self) -> list[str]:
        return [i["id"] for i in self.indicators]

    def get(self, iid: str) -> dict:
        """One indicator by id; a ``KeyError`` names the id when it is unknown."""
        try:
            return self._by_id[iid]
        except KeyError:
            raise KeyError(f"unknown indicator {iid!r}") from None

    def select(self, domain: str | None = None, dimension: str | None = None, feed: str | None = None) -> list[dict]:
        """Indicators filtered by domain, dimension and/or feed; unknown names raise ``ValueError``."""
        for name, value, known in (("domain", domain, self.domains),
                                   ("dimension", dimension, self.dimensions),
                                   ("feed", feed, self.feeds)):
            if value is not None and value not in known:
                raise ValueError(f"unknown {name} {value!r}; expected one of {sorted(known)}")
        return [i for i in self.indicators
                if (domain is None or i["domain"] == domain)
                and (dimension is None or i["dimension"] == dimension)
                and (feed is None or i["feed"] == feed)]

    @property
    def dimensions(self) -> dict:
        """``{dimension_id: {name_zh, name_en, domain}}``."""
        return {d: {**names, "domain": dom} for dom, v in self.domains.items() for d, names in v["dimensions"].items()}

    def derived_order(self) -> list[str]:
        """Derived indicator ids in an order where each comes after the derived ids it reads."""
        deps = {i["id"]: expr.refs(expr.parse(i["formula"])) for i in self.indicators if i["aggregation"] == "derived"}
        return expr.topological_order(deps)[0]

    def table(self):
        """The catalog as a pandas DataFrame indexed by indicator id (a copy)."""
        import pandas as pd

        if self._table is None:
            self._table = pd.DataFrame(self.indicators).set_index("id")
        return self._table.copy()

    def stats(self) -> dict:
        """Counts: ``total``, ``by_domain``, ``by_dimension``, ``dimensions_per_domain``, ``by_feed``,
        ``by_owner``."""
        return {
            "total": len(self.indicators),
            "by_domain": dict(Counter(i["domain"] for i in self.indicators)),
            "by_dimension": dict(Counter(f"{i['domain']}.{i['dimension']}" for i in self.indicators)),
            "dimensions_per_domain": {d: len(v["dimensions"]) for d, v in self.domains.items()},
            "by_feed": dict(Counter(i["feed"] for i in self.indicators)),
            "by_owner": dict(Counter(i["owner"] for i in self.indicators)),
        }
