"""AlertManager: lifecycle, grouping, inhibition, silences, acks, escalation, routing, JSONL/SQLite, checkpoints."""

from __future__ import annotations

import functools
import json
import sqlite3
from types import SimpleNamespace

import numpy as np
import pytest

from engine.alerts import AlertConfig, AlertManager, JsonlSink, iso
from engine.alerts.config import DAILY_PRICE_FEEDS
from engine.catalog import Catalog
from engine.city import City

T0 = 1_580_515_200  # 2020-02-01T00:00:00Z
CYCLE = 900


@functools.lru_cache(maxsize=1)
def full_catalog():
    return Catalog.load()


@functools.lru_cache(maxsize=1)
def small():
    """Six indicators: two epidemic ones with different owners, two of one owner, and others."""
    cat = full_catalog()
    pick, seen = [], set()
    for ind in cat.indicators:
        key = (ind["dimension"], ind["owner"])
        if ind["dimension"] in ("epidemic", "lifelines", "public_order") and key not in seen:
            seen.add(key)
            pick.append(ind)
    epi_cdc = [i for i in cat.indicators if i["owner"] == "cdc" and i["dimension"] == "epidemic"][:2]
    pick = [i for i in pick if i["owner"] != "cdc"][:6] + epi_cdc
    sub = SimpleNamespace(indicators=pick, departments=cat.departments, dimensions=cat.dimensions)
    city = City.synthetic(seed=1, neighbourhoods=12, streets=3, population=40_000)
    return sub, city


def make(tmp_path, **cfg):
    cat, city = small()
    config = AlertConfig(**{"pending_cycles": 1, "group_interval": 1800, "alert_per": "indicator", **cfg})
    return AlertManager(cat, city, store=tmp_path / "alerts.sqlite", sinks=[JsonlSink(tmp_path / "alerts.jsonl")],
                        config=config)


def quiet(am, level=None):
    level = level or am.levels[0]
    return np.full((am.n_indicators, am.hierarchy.size(level)), 0.5, np.float32)


def ind_of(am, dimension, owner=None, nth=0):
    return [k for k, i in enumerate(am.router.indicators)
            if i["dimension"] == dimension and (owner is None or i["owner"] == owner)][nth]


def cycle(c):
    return T0 + CYCLE * c


# ---------------------------------------------------------------- lifecycle through the manager
def test_pending_for_n_cycles_then_firing_then_resolved_below_clear(tmp_path):
    am = make(tmp_path, pending_cycles=3)
    i = ind_of(am, "epidemic")
    s = quiet(am)
    s[i, 4] = 0.995
    states = []
    for c, x in enumerate([0.995, 0.995, 0.995, 0.97, 0.96, 0.94]):
        s[i, 4] = x
        r = am.process(cycle(c), s, value=np.full_like(s, 3.5))
        states.append([a["state"] for a in am.store.list_alerts()])
    assert states[:2] == [[], []]                       # pending alerts are not in the alerts table
    assert states[2] == ["firing"] and states[3] == ["firing"] and states[4] == ["firing"]
    assert states[5] == ["resolved"]                    # only below CLEAR
    hist = am.store.transitions()
    assert [h["alert_state"] for h in hist] == ["pending", "firing", "resolved"]
    assert hist[0]["time"] == iso(cycle(0)) and hist[1]["time"] == iso(cycle(2))
    assert hist[0]["score"] == pytest.approx(0.995, abs=1e-6) and hist[0]["value"] == 3.5
    assert len({h["alert_id"] for h in hist}) == 1
    assert r.transitions[0]["alert_state"] == "resolved"
    cyc = [c for c in am.store.cycles() if c["level"] == "neighbourhood"]
    assert [c["pending"] for c in cyc] == [1, 0, 0, 0, 0, 0] and sum(c["fired"] for c in cyc) == 1
    am.close()


def test_subjects_of_daily_feeds_fire_at_their_first_cycle(tmp_path):
    """With daily_feeds, a price (reported once a day) fires when it first scores >= WARN; a
    subject of other feeds waits its pending cycles; with no daily feeds every subject waits."""
    cat = full_catalog()
    price = next(i for i in cat.indicators if i["feed"] == "staple_prices" and i["id"].endswith(".change_pct"))
    other = next(i for i in cat.indicators if i["dimension"] == "epidemic")
    sub = SimpleNamespace(indicators=[price, other], departments=cat.departments, dimensions=cat.dimensions)
    city = small()[1]
    fired = {}
    assert AlertConfig().daily_feeds == DAILY_PRICE_FEEDS
    for daily in (DAILY_PRICE_FEEDS, ()):
        am = AlertManager(sub, city, store=tmp_path / f"a{len(daily)}.sqlite",
                          config=AlertConfig(pending_cycles=3, alert_per="indicator", daily_feeds=daily))
        assert am.row_pending.tolist() == ([1, 3] if daily else [3, 3])
        s = np.full((2, am.hierarchy.size(am.levels[0])), 0.5, np.float32)
        s[:, 2] = 0.995
        first = {}
        for c in range(4):
            am.process(cycle(c), s)
            for a in am.store.list_alerts():
                first.setdefault(a["indicator"], c)
        fired[daily] = first
        am.close()
    assert fired[DAILY_PRICE_FEEDS] == {price["id"]: 0, other["id"]: 2}
    assert fired[()] == {price["id"]: 2, other["id"]: 2}


def test_record_blips_writes_pending_that_never_fired(tmp_path):
    am = make(tmp_path, pending_cycles=3, record_blips=True)
    s = quiet(am)
    s[0, 0] = 0.995
    am.process(cycle(0), s)
    s[0, 0] = 0.5
    am.process(cycle(1), s)
    assert [(h["events"], h["alert_state"]) for h in am.store.transitions()] == [("pending", "pending"),
                                                                                ("cancelled", "cancelled")]
    assert am.store.count("alerts") == 0
    am.close()


def test_warn_and_critical_severity(tmp_path):
    am = make(tmp_path)
    s = quiet(am)
    s[0, 0], s[1, 1] = 0.995, 0.9995
    am.process(cycle(0), s)
    sev = {(a["indicator"], a["region"]): a["severity"] for a in am.store.list_alerts()}
    assert sev == {(am.router.ids[0], "N0001"): "warn", (am.router.ids[1], "N0002"): "critical"}
    s[0, 0] = 0.9999
    am.process(cycle(1), s)
    assert am.store.get_alert(1)["severity"] == "critical"
    am.close()


def test_flap_damping_keeps_one_alert_and_no_notification_churn(tmp_path):
    am = make(tmp_path, flap_window=10, flap_threshold=3, flap_clear=0, group_interval=0)
    s = quiet(am)
    sent = []
    for c in range(8):
        s[0, 0] = 0.995 if c % 2 == 0 else 0.5
        sent.append(len(am.process(cycle(c), s).notifications))
    alerts = am.store.list_alerts()
    # fired, resolved (not damped yet), fired again with damping: one alert holds through the flaps
    assert [(a["state"], a["flapping"]) for a in alerts] == [("firing", 1), ("resolved", 0)]
    assert sent[:3] == [1, 1, 1] and sum(sent[3:]) == 0       # then no notification per flap
    # once it is quiet long enough, damping ends and the alert resolves, notified once
    out = [am.process(cycle(c), s) for c in range(8, 22)]
    assert am.store.get_alert(alerts[0]["id"])["state"] == "resolved"
    assert sum(len(r.notifications) for r in out) == 1
    am.close()


# ---------------------------------------------------------------- grouping
def test_one_notification_per_region_and_dimension_update_on_change_and_repeat(tmp_path):
    am = make(tmp_path, group_interval=1800, repeat_interval=3600, escalation_after="1d")
    cdc = [k for k, i in enumerate(am.router.indicators) if i["owner"] == "cdc"]
    assert len(cdc) == 2
    s = quiet(am)
    s[cdc[0], 3] = 0.995
    s[cdc[1], 3] = 0.995
    r0 = am.process(cycle(0), s)
    assert len(r0.notifications) == 1                              # two alerts, one group
    n = r0.notifications[0]
    assert n["reason"] == "new" and n["counts"]["firing"] == 2 and n["group"]["region"] == "N0004"
    s[cdc[1], 3] = 0.9995                                          # severity change at +15 min
    assert am.process(cycle(1), s).notifications == []             # within group_interval
    r2 = am.process(cycle(2), s)                                   # +30 min: update
    assert [x["reason"] for x in r2.notifications] == ["update"] and r2.notifications[0]["counts"]["critical"] == 1
    assert am.process(cycle(3), s).notifications == []
    r6 = am.process(cycle(6), s)                                   # unchanged for repeat_interval
    assert [x["reason"] for x in r6.notifications] == ["repeat"]
    s[cdc[0], 3] = s[cdc[1], 3] = 0.5
    assert am.process(cycle(7), s).notifications == []             # resolved, but within group_interval
    r8 = am.process(cycle(8), s)
    assert [(x["reason"], x["status"], x["counts"]["resolved"]) for x in r8.notifications] == [("resolved", "resolved", 2)]
    assert am.groups == {}
    am.close()


def test_alerts_of_different_owners_go_to_different_groups(tmp_path):
    am = make(tmp_path)
    epi = [k for k, i in enumerate(am.router.indicators) if i["dimension"] == "epidemic"]
    owners = {am.router.indicators[k]["owner"] for k in epi}
    s = quiet(am)
    s[epi, 0] = 0.995
    r = am.process(cycle(0), s)
    assert sorted(n["department"]["id"] for n in r.notifications) == sorted(owners)
    assert all(n["to"] == am.router.departments[n["department"]["id"]]["contact"] for n in r.notifications)
    am.close()


# ---------------------------------------------------------------- inhibition
def test_district_alert_mutes_the_same_indicators_street_and_neighbourhood_alerts(tmp_path):
    am = make(tmp_path)
    levels = {}
    for lvl in am.levels:
        levels[lvl] = quiet(am, lvl)
    levels["neighbourhood"][0, 0] = levels["street"][0, 0] = levels["district"][0, 0] = 0.995
    levels["neighbourhood"][1, 0] = 0.995                   # another indicator: not inhibited
    r = am.process_cycle(cycle(0), {k: (v, None, None) for k, v in levels.items()})
    groups = sorted((n["group"]["level"], tuple(a["indicator"] for a in n["alerts"])) for n in r.notifications)
    assert groups == [("district", (am.router.ids[0],)), ("neighbourhood", (am.router.ids[1],))]
    muted = {(a["level"], a["indicator"]): a["muted"] for a in am.store.list_alerts()}
    assert muted[("neighbourhood", am.router.ids[0])].startswith("inhibited by alert")
    assert muted[("street", am.router.ids[0])].startswith("inhibited by alert")
    # the district alert resolves: the street and neighbourhood alerts are notified
    levels["district"][0, 0] = 0.5
    r = am.process_cycle(cycle(2), {k: (v, None, None) for k, v in levels.items()})
    got = sorted((n["group"]["level"], n["status"]) for n in r.notifications)
    assert ("street", "firing") in got and ("district", "resolved") in got
    assert any(n["group"]["level"] == "neighbourhood" and [a["indicator"] for a in n["alerts"]] == [am.router.ids[0]]
               for n in r.notifications)
    am.close()


# ---------------------------------------------------------------- silences
@pytest.mark.parametrize("matcher", ["indicator", "indicator_glob", "region", "street", "dimension", "department"])
def test_silence_each_matcher_and_expiry(tmp_path, matcher):
    am = make(tmp_path)
    i = 0
    ind = am.router.indicators[i]
    value = {"indicator": ("indicator", ind["id"]), "indicator_glob": ("indicator", ind["id"].rsplit(".", 1)[0] + ".*"),
             "region": ("region", "N0001"), "street": ("region", am.city.regions.street.iloc[0]),
             "dimension": ("dimension", ind["dimension"]), "department": ("department", ind["owner"])}[matcher]
    sid = am.silence(author="ops", comment="planned works", created=cycle(0), expires=cycle(2), **{value[0]: value[1]})
    s = quiet(am)
    s[i, 0] = 0.995
    assert am.process(cycle(0), s).notifications == []
    assert am.store.list_alerts()[0]["muted"] == f"silenced by {sid}"
    assert am.process(cycle(1), s).notifications == []
    r = am.process(cycle(2), s)                                   # expired
    assert len(r.notifications) == 1 and r.notifications[0]["reason"] == "new"
    am.close()


def test_silence_not_matching_and_unsilence(tmp_path):
    am = make(tmp_path)
    sid = am.silence(author="ops", comment="c", created=cycle(0), expires="1d", region="N0002")
    s = quiet(am)
    s[0, 0] = 0.995
    assert len(am.process(cycle(0), s).notifications) == 1        # N0001 is not silenced
    s[0, 1] = 0.995
    r = am.process(cycle(2), s)
    assert r.notifications == []                                   # N0002 silenced
    am.unsilence(sid, by="ops", time=cycle(3))
    assert len(am.process(cycle(3), s).notifications) == 1
    with pytest.raises(ValueError, match="already removed"):
        am.unsilence(sid)
    with pytest.raises(ValueError, match="at least one matcher"):
        am.silence(author="a", comment="c", expires="1h")
    with pytest.raises(ValueError, match=r"expires must be a duration like '2h'.*got 'soon'"):
        am.silence(author="a", comment="c", expires="soon", region="N0001")
    am.close()


# ---------------------------------------------------------------- ack and escalation
def test_ack_with_comment_cleared_on_resolve(tmp_path):
    am = make(tmp_path)
    s = quiet(am)
    s[0, 0] = 0.995
    am.process(cycle(0), s)
    aid = am.store.list_alerts()[0]["id"]
    am.acknowledge(aid, "crew dispatched", by="Li Wei")
    a = am.store.get_alert(aid)
    assert (a["acked_by"], a["ack_comment"]) == ("Li Wei", "crew dispatched")
    r = am.process(cycle(2), s)
    assert r.notifications == []
    s[0, 0] = 0.5
    r = am.process(cycle(4), s)
    assert r.notifications[0]["alerts"][0]["acked_by"] == "Li Wei"
    a = am.store.get_alert(aid)
    assert a["state"] == "resolved" and a["acked_by"] is None and a["ack_comment"] is None
    acks = am.store.acks(aid)
    assert len(acks) == 1 and acks[0]["cleared_at"] == iso(cycle(4)) and acks[0]["comment"] == "crew dispatched"
    with pytest.raises(ValueError, match=f"alert {aid} is resolved"):
        am.acknowledge(aid, "late")
    with pytest.raises(ValueError, match="no alert with id 999"):
        am.acknowledge(999, "x")
    am.close()


def test_escalation_of_unacknowledged_critical_after_the_delay(tmp_path):
    am = make(tmp_path, escalation_after=1800)
    s = quiet(am)
    s[0, 0] = 0.9999          # critical, never acknowledged
    s[1, 0] = 0.9999          # critical, acknowledged
    s[2, 0] = 0.995           # warn: never escalates
    am.process(cycle(0), s)
    acked = [a["id"] for a in am.store.list_alerts() if a["indicator"] == am.router.ids[1]][0]
    am.acknowledge(acked, "on it", by="duty")
    assert am.process(cycle(1), s).notifications == []
    r = am.process(cycle(2), s)
    esc = [n for n in r.notifications if n["kind"] == "escalation"]
    assert len(esc) == 1
    e = esc[0]
    dep = am.router.departments[am.router.indicators[0]["owner"]]
    assert e["to"] == dep["escalation"] and e["alerts"][0]["indicator"] == am.router.ids[0]
    assert "unacknowledged for 30 min" in e["summary"]
    assert not [n for n in am.process(cycle(3), s).notifications if n["kind"] == "escalation"]   # once
    assert am.store.get_alert(e["alerts"][0]["alert_id"])["escalated_at"] == iso(cycle(2))
    am.close()


# ---------------------------------------------------------------- routing, payloads, sinks
def test_routing_to_the_owner_from_departments_toml(tmp_path):
    from engine.catalog.vocabulary import read_toml
    from engine.catalog import bundled_path

    toml = {d["id"]: d for d in read_toml(bundled_path() / "departments.toml", [])["department"]}
    am = make(tmp_path)
    s = quiet(am)
    s[:, 5] = 0.995
    r = am.process(cycle(0), s)
    assert r.notifications
    for n in r.notifications:
        for a in n["alerts"]:
            owner = full_catalog().get(a["indicator"])["owner"]
            assert n["department"]["id"] == owner
            assert n["to"] == toml[owner]["contact"] and n["department"]["escalation"] == toml[owner]["escalation"]
    am.close()


def test_jsonl_and_sqlite_contents(tmp_path):
    am = make(tmp_path)
    s = quiet(am)
    s[0, 2] = 0.9995
    det = np.zeros(s.shape, np.int8)
    det[0, 2] = 2
    val = np.full(s.shape, 1.0, np.float32)
    val[0, 2] = 42.5
    r = am.process(cycle(0), s, det, val)
    lines = [json.loads(x) for x in (tmp_path / "alerts.jsonl").read_text(encoding="utf-8").splitlines()]
    assert lines == [{k: v for k, v in n.items() if k != "type"} for n in r.notifications]
    a = lines[0]["alerts"][0]
    ind = am.router.indicators[0]
    assert (a["indicator"], a["indicator_name_zh"], a["indicator_name_en"]) == (ind["id"], ind["name_zh"], ind["name_en"])
    assert (a["region"], a["region_name"]) == ("N0003", am.city.regions.name.iloc[2])
    assert (a["value"], a["detector"], a["severity"]) == (42.5, "count", "critical")
    assert a["score"] == pytest.approx(0.9995, abs=1e-6)
    assert lines[0]["department"]["contact"] and "http" not in lines[0]["summary"]
    assert ind["name_zh"] in lines[0]["summary"] and "42.5" in lines[0]["summary"]
    con = sqlite3.connect(tmp_path / "alerts.sqlite")
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"alerts", "transitions", "silences", "acks", "outbox", "notifications", "cycles"} <= tables
    row = con.execute("SELECT time, indicator, region, value, score, detector, state, alert_state FROM transitions").fetchone()
    assert row[:4] == (iso(cycle(0)), ind["id"], "N0003", 42.5) and row[5:] == ("count", "firing", "firing")
    assert con.execute("SELECT sink, status FROM outbox").fetchall() == [("jsonl", "delivered")]
    con.close()
    am.close()


def test_text_from_elsewhere_is_stored_as_data(tmp_path):
    am = make(tmp_path)
    s = quiet(am)
    s[0, 0] = 0.995
    am.process(cycle(0), s)
    aid = am.store.list_alerts()[0]["id"]
    evil = "'); DROP TABLE alerts; -- <script>"
    am.acknowledge(aid, evil, by=evil)
    am.silence(author=evil, comment=evil, created=cycle(0), expires="1h", region=evil)
    assert am.store.get_alert(aid)["ack_comment"] == evil and am.store.silences()[0].author == evil
    am.close()


def test_bad_inputs_name_the_value(tmp_path):
    am = make(tmp_path)
    with pytest.raises(ValueError, match=r"score at level 'neighbourhood' has shape \(2, 2\), expected"):
        am.process(cycle(0), np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="unknown level 'ward'"):
        am.process(cycle(0), quiet(am), level="ward")
    with pytest.raises(ValueError, match="detector must be an integer array"):
        am.process(cycle(0), quiet(am), detector=quiet(am))
    am.process(cycle(1), quiet(am))
    with pytest.raises(ValueError, match="is not after the last cycle"):
        am.process(cycle(1), quiet(am))
    am.close()


# ---------------------------------------------------------------- checkpoints and restarts
def scripted(c, s, i0):
    s[:] = 0.5
    if 2 <= c < 9:
        s[i0, 1] = 0.9995 if c > 4 else 0.995
    if c % 3 == 0:
        s[1, 2] = 0.995
    return s


def test_checkpoint_between_processes_gives_the_same_result(tmp_path):
    a = make(tmp_path / "a", pending_cycles=2)
    b = make(tmp_path / "b", pending_cycles=2)
    s = quiet(a)
    for c in range(6):
        ra = a.process(cycle(c), scripted(c, s, 0))
        b.process(cycle(c), s)
    b.save_state(tmp_path / "state.npz")
    b.close()
    cat, city = small()
    b = AlertManager(cat, city, store=tmp_path / "b" / "alerts.sqlite", sinks=[JsonlSink(tmp_path / "b" / "alerts.jsonl")],
                     config=a.config, checkpoint=tmp_path / "state.npz")
    for c in range(6, 14):
        ra = a.process(cycle(c), scripted(c, s, 0))
        rb = b.process(cycle(c), s)
        assert [n["id"] for n in ra.notifications] == [n["id"] for n in rb.notifications]
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seq"} for r in rows]   # noqa: E731
    assert strip(a.store.transitions()) == strip(b.store.transitions())
    assert a.store.list_alerts() == b.store.list_alerts()
    assert (tmp_path / "a" / "alerts.jsonl").read_text() == (tmp_path / "b" / "alerts.jsonl").read_text()
    a.close()
    b.close()


def test_checkpoint_for_another_catalog_is_refused(tmp_path):
    am = make(tmp_path)
    am.process(cycle(0), quiet(am))
    am.save_state(tmp_path / "s.npz")
    cat, city = small()
    other = SimpleNamespace(indicators=cat.indicators[:3], departments=cat.departments)
    with pytest.raises(ValueError, match="was made for"):
        AlertManager(other, city, store=tmp_path / "x.sqlite", checkpoint=tmp_path / "s.npz")
    am.close()


def test_restart_without_checkpoint_takes_up_firing_alerts(tmp_path):
    am = make(tmp_path)
    s = quiet(am)
    s[0, 0] = 0.995
    am.process(cycle(0), s)
    first = am.store.list_alerts()[0]["id"]
    am.close()
    am = make(tmp_path)
    assert list(am.alerts) == [first]
    assert am.process(cycle(1), s).notifications == []      # already notified: no "new" again
    s[0, 0] = 0.5
    r = am.process(cycle(2), s)
    assert [n["status"] for n in r.notifications] == ["resolved"]
    s[1, 1] = 0.995
    am.process(cycle(3), s)
    assert max(a["id"] for a in am.store.list_alerts()) > first
    am.close()
