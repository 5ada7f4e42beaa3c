"""Routing to owner departments and their contacts."""

from types import SimpleNamespace

import pytest

from engine.alerts.routing import Router
from engine.catalog import Catalog


def test_every_catalog_indicator_routes_to_a_department_with_a_contact():
    cat = Catalog.load()
    r = Router(cat)
    assert len(r) == len(cat)
    for i in range(0, len(cat), 97):
        d = r.department_of(i)
        assert d["id"] == cat.indicators[i]["owner"] and d["contact"] and r.contact(d["id"]) == d["contact"]
        assert r.contact(d["id"], escalate=True) == (d["escalation"] or d["contact"])


def test_unknown_owner_is_refused_by_name():
    cat = SimpleNamespace(departments={"a": {"name_zh": "甲", "name_en": "A", "contact": "a@x", "escalation": ""}},
                          indicators=[dict(id="x.y", name_zh="", name_en="", domain="x", dimension="y", owner="b")])
    with pytest.raises(ValueError, match="indicator 'x.y' is owned by unknown department 'b'"):
        Router(cat)
