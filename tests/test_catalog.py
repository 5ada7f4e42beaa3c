"""The bundled catalog: size, structure, and the invariants every indicator must keep."""

import re

import pytest

from engine.catalog import Catalog, bundled_path
from engine.catalog.validate import definition_key
from engine.catalog.vocab import FIELDS


@pytest.fixture(scope="module")
def cat():
    return Catalog.load()


def test_bundled_catalog_is_valid():
    assert Catalog.check() == []


def test_size_domains_and_dimensions(cat):
    stats = cat.stats()
    assert stats["total"] >= 2600
    assert sorted(stats["by_domain"]) == ["construction", "livelihood", "market", "safety"]
    assert stats["dimensions_per_domain"] == {"safety": 3, "construction": 3, "market": 3, "livelihood": 3}
    assert len(stats["by_dimension"]) == 12
    # every dimension is populated, none trivially
    assert min(stats["by_dimension"].values()) >= 50
    assert sum(stats["by_feed"].values()) == stats["total"]


def test_every_indicator_has_names_unit_owner_and_declared_feed(cat):
    for ind in cat:
        assert set(FIELDS) <= set(ind), ind["id"]
        assert ind["name_zh"].strip() and ind["name_en"].strip(), ind["id"]
        assert re.search(r"[\u4e00-\u9fff]", ind["name_zh"]), ind["id"]
        assert ind["unit"].strip(), ind["id"]
        assert ind["owner"] in cat.departments, ind["id"]
        assert ind["feed"] in cat.feeds, ind["id"]
        assert "{" not in ind["name_zh"] + ind["name_en"] + ind["id"], ind["id"]


def test_ids_are_dotted_and_match_domain_dimension(cat):
    for ind in cat:
        parts = ind["id"].split(".")
        assert len(parts) == 4
        assert parts[:2] == [ind["domain"], ind["dimension"]]
    assert len(set(cat.ids)) == len(cat)


def test_no_two_indicators_share_a_definition(cat):
    keys = [definition_key(i) for i in cat]
    assert len(set(keys)) == len(keys)


def test_filters_name_things_the_feed_declares(cat):
    for ind in cat:
        feed = cat.feeds[ind["feed"]]
        for key, value in ind["filter"].items():
            values = value if isinstance(value, list) else [value]
            table = {"category": "categories", "metric": "metrics", "field": "fields", "channel": "channels"}.get(key)
            if table:
                assert set(values) <= set(feed[table]), ind["id"]
            if key == "kind":
                assert set(values) <= set(feed["emitter_kinds"]), ind["id"]


def test_hotline_taxonomy_is_20_classes_32_subclasses(cat):
    assert len(cat.taxonomy) == 20
    assert sum(len(c["subs"]) for c in cat.taxonomy.values()) == 32
    assert len(cat.feeds["hotline_tickets"]["categories"]) == 32


def test_derived_indicators_read_existing_ids_in_dependency_order(cat):
    order = cat.derived_order()
    derived = [i for i in cat if i["aggregation"] == "derived"]
    assert len(order) == len(derived) > 100
    pos = {iid: k for k, iid in enumerate(order)}
    from engine.catalog import expr

    for ind in derived:
        for ref in expr.refs(expr.parse(ind["formula"])):
            assert ref in cat
            if ref in pos:
                assert pos[ref] < pos[ind["id"]]


def test_cluster_scan_marks_enough_counts(cat):
    marked = [i for i in cat if i.get("cluster_scan")]
    assert len(marked) >= 50
    assert all(i["aggregation"] == "count" and i["normalisation"] == "none" for i in marked)
    dims = {i["dimension"] for i in marked}
    assert {"epidemic", "citizen_demands"} <= dims


def test_reopened_share_example(cat):
    ind = cat.get("market.enterprise.reopened_c.share_now")
    assert ind["filter"] == {"field": "open", "sector": "C"}
    assert ind["aggregation"] == "share" and ind["unit"] == "%" and ind["rollup"] == "ratio"
    rate = cat.get("market.enterprise.return_rate_c.now")
    assert rate["aggregation"] == "derived" and rate["rollup"] == "formula"
    assert "workers_back_c.sum_now" in rate["formula"]


def test_levers_have_no_thresholds_and_levels_are_abnormal_in_a_normal_city(cat):
    # the share of enterprises reopened is the planner's lever: a level on it judges the policy
    shares = [i for i in cat.indicators if ".reopened_" in i["id"] and i["aggregation"] == "share"]
    assert len(shares) > 20 and all(i["thresholds"] is None for i in shares)
    # GB/T 33171-2016: <= 15 km/h is severe congestion on an arterial, 15-20 an ordinary rush hour
    assert cat.get("construction.appearance_traffic.road_speed.mean_1h")["thresholds"] == {"warn": 15, "alarm": 10}
    # site noise has its own levels in dB(A) (GB 12523-2011: 70 by day), not the PM10 template's
    noise = cat.get("construction.sites_buildings.site_monitor_noise.mean_1h")
    assert noise["unit"] == "dB(A)" and 70 < noise["thresholds"]["warn"] < noise["thresholds"]["alarm"] <= 90
    # a level in tonnes depends on the market's size: only days of stock have levels
    supply = [i for i in cat.indicators if ".supply_" in i["id"] and i["thresholds"]]
    assert [i["id"] for i in supply] == ["livelihood.essential_supplies.supply_stock_days.min_now"]


def test_select_and_get_errors(cat):
    assert all(i["feed"] == "fire_alarms" for i in cat.select(feed="fire_alarms"))
    with pytest.raises(ValueError, match="unknown domain 'health'"):
        cat.select(domain="health")
    with pytest.raises(KeyError, match="unknown indicator 'no.such.thing.here'"):
        cat.get("no.such.thing.here")


def test_table_has_one_row_per_indicator(cat):
    table = cat.table()
    assert len(table) == len(cat)
    assert table.index.name == "id"


def test_bundled_path_holds_the_toml_files():
    names = {p.name for p in bundled_path().glob("*.toml")}
    assert {"domains.toml", "departments.toml", "taxonomy.toml", "feeds.toml", "statistics.toml"} <= names
