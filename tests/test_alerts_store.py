"""The SQLite store: schema, acks, silences, outbox order, re-run idempotence."""

import pytest

from engine.alerts.store import ALERT_COLUMNS, AlertStore


def alert_row(i, state="firing"):
    d = dict.fromkeys(ALERT_COLUMNS)
    d.update(id=i, level="neighbourhood", indicator="x.y", region="N1", state=state, t_updated=i, flapping=0, muted="")
    return tuple(d[k] for k in ALERT_COLUMNS)


def test_write_cycle_rerun_replaces_rows_and_dedupes_notifications(tmp_path):
    db = AlertStore(tmp_path / "a.sqlite")
    tr = [(10, "t", "neighbourhood", "x.y", "N1", 1, "fired", "firing", "firing", "warn", 1.0, 0.995, "none")]
    n = dict(id="n1", t=10, kind="group", payload={"a": 1}, sinks=["s"])
    for _ in range(2):   # the same cycle twice
        new = db.write_cycle(transitions=tr, alerts=[alert_row(1)], notifications=[n], levels=["neighbourhood"], t=10)
    assert new == [] and db.count("transitions") == 1 and db.count("notifications") == 1 and db.count("outbox") == 1
    assert db.max_alert_id() == 1


def test_outbox_head_of_line_order_and_backoff(tmp_path):
    db = AlertStore(tmp_path / "a.sqlite")
    db.write_cycle(notifications=[dict(id=f"n{k}", t=k, kind="group", payload={"k": k}, sinks=["w"]) for k in range(3)])
    row, _ = db.outbox_next("w", now=0)
    assert row["notification_id"] == "n0" and row["payload"] == {"k": 0}
    db.outbox_retry(row["seq"], next_try=100.0, error="HTTP 500")
    assert db.outbox_next("w", now=50) == (None, 100.0)          # the head waits; n1 waits behind it
    row, _ = db.outbox_next("w", now=100)
    assert row["notification_id"] == "n0" and row["attempts"] == 1
    db.outbox_done(row["seq"])
    assert db.outbox_next("w", now=100)[0]["notification_id"] == "n1"


def test_ack_rules(tmp_path):
    db = AlertStore(tmp_path / "a.sqlite")
    db.write_cycle(alerts=[alert_row(1), alert_row(2, "resolved")])
    db.ack(1, "first", "a", t=5)
    db.ack(1, "second", "b", t=6)
    assert [(a["comment"], a["cleared_at"] is None) for a in db.acks(1)] == [("first", False), ("second", True)]
    assert db.open_acks() == {1: {"by": "b", "comment": "second", "time": "1970-01-01T00:00:06Z"}}
    with pytest.raises(ValueError, match="alert 2 is resolved"):
        db.ack(2, "x", "a")
    db.write_cycle(resolved=[1], t=9)
    assert db.get_alert(1)["acked_by"] is None and db.open_acks() == {}
