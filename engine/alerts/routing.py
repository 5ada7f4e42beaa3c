"""Routing: which department owns an indicator's alerts, and whom to tell.

Every indicator names its ``owner`` department; ``indicators/departments.toml`` gives each
department a first ``contact`` and an ``escalation`` contact (told when a critical alert stays
unacknowledged). A department without an escalation contact escalates to its first contact.

>>> from engine.catalog import Catalog
>>> r = Router(Catalog.load())
>>> ind = r.index("safety.epidemic.fever_clinic_visits.per10k_24h")
>>> d = r.department_of(ind)
>>> d["id"], r.contact(d["id"]) == d["contact"], r.contact(d["id"], escalate=True) == d["escalation"]
('health_commission', True, True)
"""

from __future__ import annotations

import numpy as np

__all__ = ["Router"]


class Router:
    """Indicator metadata and owner departments in arrays, for routing by indicator index.

    Parameters
    ----------
    catalog : engine.catalog.Catalog or similar
        Anything with ``indicators`` (dicts with ``id, name_zh, name_en, unit, domain,
        dimension, owner``) and ``departments`` (``{id: {name_zh, name_en, contact,
        escalation}}``). The order of ``indicators`` is the row order of the score arrays.

    Raises
    ------
    ValueError
        When an indicator's owner is not a known department (names both).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> cat = SimpleNamespace(departments={"d1": {"name_zh": "甲", "name_en": "A", "contact": "a@x", "escalation": ""}},
    ...     indicators=[dict(id="x.y.z", name_zh="某", name_en="Some", unit="", domain="x", dimension="y", owner="d1")])
    >>> r = Router(cat)
    >>> r.contact("d1", escalate=True), r.dimension_of(0)
    ('a@x', 'y')
    """

    def __init__(self, catalog):
        self.departments = {k: dict(v, id=k) for k, v in catalog.departments.items()}
        self.indicators = list(catalog.indicators)
        self.ids = [i["id"] for i in self.indicators]
        self._pos = {iid: k for k, iid in enumerate(self.ids)}
        for ind in self.indicators:
            if ind.get("owner") not in self.departments:
                raise ValueError(f"indicator {ind['id']!r} is owned by unknown department {ind.get('owner')!r}; "
                                 f"expected one of {sorted(self.departments)}")
        self.dimensions = sorted({i["dimension"] for i in self.indicators})
        self.dimension_index = np.array([self.dimensions.index(i["dimension"]) for i in self.indicators], np.int64)
        dims = getattr(catalog, "dimensions", None)
        self.dimension_names = dict(dims) if isinstance(dims, dict) else {}

    def __len__(self) -> int:
        return len(self.indicators)

    def __contains__(self, indicator_id: str) -> bool:
        return indicator_id in self._pos

    def index(self, indicator_id: str) -> int:
        """Row of an indicator id; a ``KeyError`` names an unknown id."""
        try:
            return self._pos[indicator_id]
        except KeyError:
            raise KeyError(f"unknown indicator {indicator_id!r}") from None

    def indicator(self, i: int) -> dict:
        return self.indicators[i]

    def dimension_of(self, i: int) -> str:
        return self.indicators[i]["dimension"]

    def department_of(self, i: int) -> dict:
        """The owner department of indicator row ``i`` (``id, name_zh, name_en, contact, escalation``)."""
        return self.departments[self.indicators[i]["owner"]]

    def contact(self, department: str, escalate: bool = False) -> str:
        """The department's first contact, or its escalation contact (falling back to the first)."""
        d = self.departments[department]
        if escalate and d.get("escalation"):
            return d["escalation"]
        return d.get("contact", "")
