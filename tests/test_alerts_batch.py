"""AlertManager.batch: cycles processed together give what the same cycles give one by one.

A batch (``engine.alerts.cycle.alert_part`` opens one per part of a day) writes its cycles' rows
in one transaction at its end, reads acknowledgements and silences once (it holds the write lock,
so no one else can change them) and delivers to the sinks after the commit. Every table (but its
wall-clock columns), the JSONL file and the notifications must be those of the cycles one by one.
"""

from __future__ import annotations

import functools
import sqlite3
from types import SimpleNamespace

import numpy as np
import pytest

from engine.alerts import AlertConfig, AlertManager, JsonlSink
from engine.alerts.store import AlertStore
from engine.catalog import Catalog
from engine.city import City

T0 = 1_580_515_200
CYCLE = 900


@functools.lru_cache(maxsize=1)
def small():
    cat = Catalog.load()
    pick = [i for i in cat.indicators if i["dimension"] in ("epidemic", "lifelines", "public_order")][:8]
    sub = SimpleNamespace(indicators=pick, departments=cat.departments, dimensions=cat.dimensions)
    return sub, City.synthetic(seed=1, neighbourhoods=12, streets=3, population=40_000)


def _make(path, name):
    cat, city = small()
    cfg = AlertConfig(pending_cycles=2, group_interval=1800, repeat_interval=3600, escalation_after=1800,
                      alert_per="indicator", flap_threshold=3)
    return AlertManager(cat, city, store=path / f"{name}.sqlite", sinks=[JsonlSink(path / f"{name}.jsonl")],
                        config=cfg)


def _tables(path):
    con = sqlite3.connect(path)
    out = {}
    for table, cols in (("transitions", "*"), ("alerts", "*"), ("notifications", "*"), ("acks", "*"),
                        ("silences", "*"), ("sqlite_sequence", "*"),
                        ("cycles", "t, time, level, series, events, pending, cancelled, fired, resolved, notifications"),
                        ("outbox", "seq, notification_id, sink, status, attempts")):
        out[table] = con.execute(f"SELECT {cols} FROM {table} ORDER BY rowid").fetchall()
    con.close()
    return out


def _scores(n_cycles, shape, seed=3):
    """Null scores with incidents that fire, flap, turn critical and resolve; NaN runs."""
    rng = np.random.default_rng(seed)
    s = rng.uniform(0.0, 0.97, (n_cycles,) + shape).astype(np.float32)
    s[rng.random(s.shape) < 0.2] = np.nan
    s[3:20, 0, 2] = 0.9999                     # critical, escalates unless acknowledged
    s[5:30, 1, 4] = 0.995                      # acknowledged between batches, resolves inside one
    s[30:, 1, 4] = 0.5
    s[8:40:2, 2, 6] = 0.996                    # flaps
    s[10:25, 3, :] = 0.995                     # a whole level: many alerts of one group
    s[12:16, 4, 1] = 0.995                     # silenced
    return s


@pytest.mark.parametrize("size", [1, 4, 7])
def test_batches_give_what_the_cycles_give_one_by_one(tmp_path, size):
    n = 48
    ack_at = 8 if 8 % size == 0 else 14      # a batch boundary
    runs = {}
    for name, batch in (("alone", 0), ("batch", size)):
        am = _make(tmp_path, name)
        level = am.levels[0]
        s = _scores(n, (am.n_indicators, am.hierarchy.size(level)))
        am.silence(author="ops", comment="works", created=T0, expires="3h", indicator=am.router.ids[4])
        notes = []
        c = 0
        while c < n:
            k = max(batch, 1)
            if batch:
                with am.batch():
                    for j in range(c, min(c + k, n)):
                        notes.append(am.process(T0 + CYCLE * j, s[j], level=level).notifications)
            else:
                notes.append(am.process(T0 + CYCLE * c, s[c], level=level).notifications)
            c += k
            if c == ack_at:                     # an operator acknowledges between two cycles
                aid = [a["id"] for a in am.store.list_alerts(state="firing") if a["indicator"] == am.router.ids[1]]
                am.acknowledge(aid[0], "crew on site", by="duty", time=T0 + CYCLE * c)
        am.close()
        runs[name] = (notes, _tables(tmp_path / f"{name}.sqlite"), (tmp_path / f"{name}.jsonl").read_bytes())
    assert runs["batch"][0] == runs["alone"][0]
    for table, rows in runs["alone"][1].items():
        assert runs["batch"][1][table] == rows, table
    assert runs["batch"][2] == runs["alone"][2]
    tables = runs["alone"][1]
    kinds = {r[3] for r in tables["notifications"]}
    assert kinds == {"group", "escalation"} and tables["acks"][0][6] is not None      # the ack was cleared
    assert any("flap" in r[7] for r in tables["transitions"]) and len(tables["transitions"]) > 40
    assert runs["batch"][2].count(b"\n") == len(tables["notifications"])


def test_a_cycle_that_raises_in_a_batch_leaves_the_cycles_before_it_written(tmp_path):
    am = _make(tmp_path, "a")
    level = am.levels[0]
    s = np.full((am.n_indicators, am.hierarchy.size(level)), 0.5, np.float32)
    s[0, 0] = 0.999
    with pytest.raises(ValueError, match="is not after the last cycle"):
        with am.batch():
            for c in (0, 1, 2, 1):
                am.process(T0 + CYCLE * c, s, level=level)
    assert am.store.count("cycles") == 6 and am.store.count("notifications") == 1
    assert (tmp_path / "a.jsonl").read_text().count("\n") == 1
    assert am.process(T0 + CYCLE * 3, s, level=level).transitions == []      # the store is usable
    am.close()


def test_store_batch_reads_acks_once_and_its_own_writes_again(tmp_path):
    db = AlertStore(tmp_path / "a.sqlite")
    db.write_cycle(alerts=[(7, "district", "x", "", "", "", "D", "", "epidemic", "cdc", "firing", "warn", 1.0, 0.999,
                            "seasonal", None, None, None, None, 0, 0, "", None)], t=0)
    db.begin_batch()
    assert db.open_acks() == {}
    other = sqlite3.connect(tmp_path / "a.sqlite", timeout=0.05)
    with pytest.raises(sqlite3.OperationalError, match="locked"):      # the batch holds the write lock
        other.execute("INSERT INTO acks (alert_id, t, time, by, comment) VALUES (7, 0, 'x', 'b', 'c')")
    db.ack(7, "seen", "duty", t=60)                                    # this connection: a savepoint
    assert db.open_acks()[7]["comment"] == "seen"
    db.write_cycle(resolved=[7], t=120)
    assert db.open_acks() == {}
    with pytest.raises(ValueError, match="already open"):
        db.begin_batch()
    db.end_batch()
    assert db.acks(7)[0]["cleared_at"] == "1970-01-01T00:02:00Z"
    with pytest.raises(ValueError, match="no batch"):
        db.end_batch()
    other.close()
    db.close()
