"""``cityvitals alerts list|show|ack|silence|unsilence|silences`` over the SQLite history."""

from __future__ import annotations

import argparse
import json
from types import SimpleNamespace

import numpy as np
import pytest

from engine.alerts import AlertConfig, AlertManager, AlertStore
from engine.catalog import Catalog
from engine.city import City
from engine.cli import alerts as cli

T0 = 1_580_515_200


def run(argv, capsys):
    p = argparse.ArgumentParser(prog="cityvitals")
    sub = p.add_subparsers(dest="command")
    cli.register(sub)
    try:
        args = p.parse_args(argv)
        code = args.handler(args)
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    cat = Catalog.load()
    sub = SimpleNamespace(indicators=cat.indicators[:4], departments=cat.departments, dimensions=cat.dimensions)
    city = City.synthetic(seed=1, neighbourhoods=6, streets=2, population=20_000)
    path = tmp_path_factory.mktemp("cli") / "alerts.sqlite"
    am = AlertManager(sub, city, store=path, config=AlertConfig(pending_cycles=1, alert_per="indicator"))
    s = np.full((4, 6), 0.5, np.float32)
    s[0, 0], s[1, 1] = 0.9995, 0.995
    am.process(T0, s)
    s[1, 1] = 0.5
    am.process(T0 + 900, s)           # alert 2 resolves
    am.close()
    return str(path)


def test_list_filters_and_json(db, capsys):
    code, out, err = run(["alerts", "list", "--db", db], capsys)
    assert code == 0 and "(2 alerts)" in err and "firing" in out and "resolved" in out
    code, out, _ = run(["alerts", "list", "--db", db, "--state", "firing", "--json"], capsys)
    rows = json.loads(out)
    assert code == 0 and [r["state"] for r in rows] == ["firing"] and rows[0]["severity"] == "critical"
    dep = rows[0]["department"]
    code, out, _ = run(["alerts", "list", "--db", db, "--department", dep, "--json"], capsys)
    assert all(r["department"] == dep for r in json.loads(out))
    code, _, err = run(["alerts", "list", "--db", db, "--state", "burning"], capsys)
    assert code == 2 and "invalid choice: 'burning'" in err


def test_show(db, capsys):
    code, out, _ = run(["alerts", "show", "1", "--db", db, "--json"], capsys)
    d = json.loads(out)
    assert code == 0 and d["alert"]["id"] == 1 and d["transitions"][0]["alert_state"] == "firing"
    assert d["notifications"] and d["notifications"][0]["kind"] == "group"
    code, out, _ = run(["alerts", "show", "1", "--db", db], capsys)
    assert code == 0 and "transitions:" in out
    code, _, err = run(["alerts", "show", "99", "--db", db], capsys)
    assert code == 1 and "no alert with id 99" in err
    code, _, err = run(["alerts", "show", "abc", "--db", db], capsys)
    assert code == 2 and "an id must be a positive integer, got 'abc'" in err


def test_ack(db, capsys):
    code, out, _ = run(["alerts", "ack", "1", "--comment", "crew on site", "--by", "Wang", "--db", db], capsys)
    assert code == 0 and "acknowledged alert 1" in out
    a = AlertStore(db).get_alert(1)
    assert (a["acked_by"], a["ack_comment"]) == ("Wang", "crew on site")
    code, _, err = run(["alerts", "ack", "2", "--comment", "x", "--db", db], capsys)
    assert code == 1 and "alert 2 is resolved" in err
    code, _, err = run(["alerts", "ack", "1", "--comment", "  ", "--db", db], capsys)
    assert code == 2 and "--comment must not be empty" in err
    code, _, err = run(["alerts", "ack", "1", "--db", db], capsys)
    assert code == 2 and "--comment" in err


def test_silence_unsilence_and_list(db, capsys):
    code, out, _ = run(["alerts", "silence", "--region", "S01", "--dimension", "lifelines", "--author", "ops",
                        "--comment", "main replacement", "--expires", "2h", "--db", db], capsys)
    assert code == 0 and out.startswith("silence ")
    sid = int(out.split()[1])
    s = AlertStore(db).silences()[-1]
    assert (s.id, s.region, s.dimension, s.author) == (sid, "S01", "lifelines", "ops")
    assert 7100 <= s.expires_at - s.created_at <= 7200
    code, out, _ = run(["alerts", "silences", "--db", db, "--json"], capsys)
    assert sid in [x["id"] for x in json.loads(out)]
    code, out, _ = run(["alerts", "unsilence", str(sid), "--db", db], capsys)
    assert code == 0 and f"silence {sid} removed" in out
    code, _, err = run(["alerts", "unsilence", str(sid), "--db", db], capsys)
    assert code == 1 and "already removed" in err
    code, out, _ = run(["alerts", "silences", "--db", db], capsys)
    assert f"{sid:>5} until" not in out


@pytest.mark.parametrize("argv, message", [
    (["--author", "a", "--comment", "c", "--expires", "2h"], "give at least one of --indicator"),
    (["--region", "S01", "--author", "a", "--comment", "c", "--expires", "soon"],
     "--expires: expires must be a duration like '2h'"),
    (["--region", "S01", "--author", "a", "--comment", "c", "--expires", "2001-01-01T00:00:00Z"], "is in the past"),
    (["--dimension", "weather", "--author", "a", "--comment", "c", "--expires", "1h"], "--dimension 'weather' is unknown"),
    (["--indicator", "nope.*", "--author", "a", "--comment", "c", "--expires", "1h"], "matches no indicator"),
    (["--department", "mayor", "--author", "a", "--comment", "c", "--expires", "1h"], "--department 'mayor' is unknown"),
])
def test_silence_bad_arguments_name_the_value(db, capsys, argv, message):
    code, _, err = run(["alerts", "silence", *argv, "--db", db], capsys)
    assert code == 2 and message in err


def test_missing_database(tmp_path, capsys):
    code, _, err = run(["alerts", "list", "--db", str(tmp_path / "none.sqlite")], capsys)
    assert code == 1 and "no alert database at" in err
    assert not (tmp_path / "none.sqlite").exists()
