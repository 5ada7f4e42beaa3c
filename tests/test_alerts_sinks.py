"""Sinks: JSONL, and the webhook against a real HTTP server on 127.0.0.1 (outbox, retries, order, restart)."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from engine.alerts import AlertConfig, AlertManager, AlertStore, JsonlSink, WebhookSink
from engine.catalog import Catalog
from engine.city import City

T0 = 1_580_515_200


@pytest.fixture(scope="module")
def world():
    from engine.alerts.lifecycle import step
    from engine.alerts.state import SeriesState

    step(SeriesState.empty(1, 1), np.zeros((1, 1), np.float32), 0, AlertConfig())   # load the compiled kernel
    cat = Catalog.load()
    pick = [i for i in cat.indicators if i["dimension"] == "public_order"][:3] + \
           [i for i in cat.indicators if i["dimension"] == "lifelines"][:3]
    sub = SimpleNamespace(indicators=pick, departments=cat.departments, dimensions=cat.dimensions)
    return sub, City.synthetic(seed=2, neighbourhoods=10, streets=2, population=30_000)


class Receiver:
    """An HTTP server that answers ``status`` to the first ``fail`` POSTs, then 200; records bodies."""

    def __init__(self, fail: int = 0, status: int = 500, delay: float = 0.0, port: int = 0):
        self.fail, self.status, self.delay = fail, status, delay
        self.attempts, self.received, self.headers = 0, [], []
        rec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                rec.attempts += 1
                if rec.delay:
                    time.sleep(rec.delay)
                if rec.attempts <= rec.fail:
                    self.send_response(rec.status)
                    self.end_headers()
                    return
                rec.received.append(json.loads(body.decode("utf-8")))
                rec.headers.append(dict(self.headers))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


FAST = dict(alert_per="indicator", pending_cycles=1, group_interval=0, webhook_backoff=0.05, webhook_backoff_max=0.2, webhook_timeout=2.0)


def incident_cycles(am, n):
    """n cycles, each firing a new alert in its own region (one notification each)."""
    s = np.full((am.n_indicators, am.hierarchy.size("neighbourhood")), 0.5, np.float32)
    ids, took = [], []
    for c in range(n):
        s[c % am.n_indicators, c % s.shape[1]] = 0.995
        t0 = time.perf_counter()
        r = am.process(T0 + 900 * c, s)
        took.append(time.perf_counter() - t0)
        ids += [x["id"] for x in r.notifications]
    return ids, took


def test_webhook_failing_first_requests_loses_nothing_keeps_order_and_never_blocks(tmp_path, world):
    cat, city = world
    rec = Receiver(fail=4, status=503, delay=0.05)
    hook = WebhookSink(rec.url)
    am = AlertManager(cat, city, store=tmp_path / "a.sqlite", sinks=[hook], config=AlertConfig(**FAST))
    ids, took = incident_cycles(am, 6)
    assert len(ids) == 6
    assert max(took) < 0.5, took                       # the cycle only enqueues
    assert am.flush(timeout=20)
    assert [r["id"] for r in rec.received] == ids      # nothing lost, order kept
    assert rec.attempts >= 6 + 4
    assert all(h["Content-Type"].startswith("application/json") for h in rec.headers)
    assert [h["X-Cityvitals-Notification"] for h in rec.headers] == ids
    rows = am.store.outbox(sink="webhook")
    assert {r["status"] for r in rows} == {"delivered"} and rows[0]["attempts"] == 5
    assert rows[0]["last_error"] is None or "503" in rows[0]["last_error"]
    am.close()
    rec.close()


def test_process_stays_fast_while_the_webhook_hangs(tmp_path, world):
    cat, city = world
    rec = Receiver(delay=1.5)                          # every request takes 1.5 s
    am = AlertManager(cat, city, store=tmp_path / "a.sqlite", sinks=[WebhookSink(rec.url)],
                      config=AlertConfig(**FAST))
    ids, took = incident_cycles(am, 3)
    assert max(took) < 0.5, took
    assert am.flush(timeout=20)
    assert [r["id"] for r in rec.received] == ids
    am.close()
    rec.close()


def test_rejected_notification_is_kept_and_the_next_ones_flow(tmp_path, world):
    cat, city = world
    rec = Receiver(fail=1, status=400)
    am = AlertManager(cat, city, store=tmp_path / "a.sqlite", sinks=[WebhookSink(rec.url)], config=AlertConfig(**FAST))
    ids, _ = incident_cycles(am, 3)
    assert am.flush(timeout=20)
    assert [r["id"] for r in rec.received] == ids[1:]
    rows = am.store.outbox(sink="webhook")
    assert [r["status"] for r in rows] == ["rejected", "delivered", "delivered"] and "HTTP 400" in rows[0]["last_error"]
    am.close()
    rec.close()


def test_outbox_survives_a_restart(tmp_path, world):
    cat, city = world
    port = free_port()                                  # nothing listens yet: every POST fails
    am = AlertManager(cat, city, store=tmp_path / "a.sqlite", sinks=[WebhookSink(f"http://127.0.0.1:{port}/hook"),
                                                                    JsonlSink(tmp_path / "a.jsonl")],
                      config=AlertConfig(**FAST))
    ids, took = incident_cycles(am, 4)
    assert max(took) < 0.5
    assert not am.flush(timeout=0.3)
    am.close()
    pending = AlertStore(tmp_path / "a.sqlite").outbox(sink="webhook", status="pending")
    assert [r["notification_id"] for r in pending] == ids
    rec = Receiver(port=port)
    am2 = AlertManager(cat, city, store=tmp_path / "a.sqlite", sinks=[WebhookSink(rec.url)], config=AlertConfig(**FAST))
    assert am2.flush(timeout=20)
    assert [r["id"] for r in rec.received] == ids
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) == 4     # the JSONL sink wrote them at once
    am2.close()
    rec.close()


def test_sink_filters_by_department_and_max_attempts(tmp_path, world):
    cat, city = world
    rec = Receiver(fail=100)
    only = WebhookSink(rec.url, name="police", departments={"public_security"}, max_attempts=2)
    am = AlertManager(cat, city, store=tmp_path / "a.sqlite", sinks=[only], config=AlertConfig(**FAST))
    s = np.full((am.n_indicators, 10), 0.5, np.float32)
    s[:, 0] = 0.995
    r = am.process(T0, s)
    deps = {n["department"]["id"] for n in r.notifications}
    assert "public_security" in deps and len(deps) > 1
    am.flush(timeout=10)
    rows = am.store.outbox()
    assert len(rows) == 1 and rows[0]["sink"] == "police" and rows[0]["status"] == "dead" and rows[0]["attempts"] == 2
    am.close()
    rec.close()


def test_sink_argument_errors(tmp_path, world):
    cat, city = world
    with pytest.raises(ValueError, match="must start with http"):
        WebhookSink("file:///etc/passwd")
    with pytest.raises(ValueError, match="sink names must be unique"):
        AlertManager(cat, city, store=tmp_path / "a.sqlite", sinks=[JsonlSink(tmp_path / "a"), JsonlSink(tmp_path / "b")])
