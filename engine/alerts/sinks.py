"""Notification sinks: a JSONL file and a webhook, both fed from the SQLite outbox.

A cycle never talks to a receiver directly. It writes each new notification, and one ``pending``
outbox row per sink, in the same transaction as the alert history; then

* :class:`JsonlSink` appends the pending rows to its file right away (one JSON object per line)
  and marks them delivered;
* :class:`WebhookSink` is woken and a background thread POSTs them as JSON, in order, retrying a
  failed one with exponential backoff (the next ones wait behind it, so order is kept). HTTP 2xx
  is delivered, 4xx other than 408/429 is ``rejected`` (kept with the error; retrying cannot
  help), anything else is retried. Nothing is lost: undelivered rows stay in the outbox, and a
  new :class:`~engine.alerts.manager.AlertManager` on the same database delivers them.

Delivery is at least once: a crash between a POST and its outbox update repeats that POST. Each
request carries the notification id in the ``X-Cityvitals-Notification`` header for de-duplication.

>>> import tempfile, os, json
>>> from engine.alerts.store import AlertStore
>>> folder = tempfile.mkdtemp()
>>> store = AlertStore(os.path.join(folder, "a.sqlite"))
>>> sink = JsonlSink(os.path.join(folder, "alerts.jsonl"))
>>> store.write_cycle(notifications=[dict(id="n1", t=0, kind="group", payload={"summary": "x"}, sinks=["jsonl"])])
['n1']
>>> sink.drain(store)
1
>>> [json.loads(line)["summary"] for line in open(sink.path, encoding="utf-8")]
['x']
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time as _time
import urllib.error
import urllib.request
from pathlib import Path

from engine.alerts.store import AlertStore

__all__ = ["JsonlSink", "Sink", "WebhookSink"]

log = logging.getLogger(__name__)


class Sink:
    """Base of the notification sinks.

    Attributes
    ----------
    name : str
        Outbox key of the sink (unique among a manager's sinks).
    departments : set of str or None
        Only notifications for these departments go to this sink (``None``: all).
    asynchronous : bool
        Delivered by a background thread (True) or within the cycle, after its commit (False).
    """

    asynchronous = False

    def __init__(self, name: str, departments=None):
        if not isinstance(name, str) or not name:
            raise ValueError(f"a sink needs a non-empty name, got {name!r}")
        self.name = name
        self.departments = None if departments is None else set(departments)

    def wants(self, department: str | None) -> bool:
        """Whether a notification for ``department`` goes to this sink."""
        return self.departments is None or department in self.departments

    def attach(self, store_path: str, config) -> None:
        """Called by the manager before the first cycle."""

    def wake(self) -> None:
        """New rows are in the outbox."""

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until this sink's outbox is empty; ``True`` when it is."""
        return True

    def close(self) -> None:
        """Stop background work."""


class JsonlSink(Sink):
    """Append every notification as one JSON line to a file (UTF-8, keys sorted).

    Parameters
    ----------
    path : str or Path
        The file (created with its folder; appended to).
    name : str
        Outbox key (default ``"jsonl"``).
    departments : iterable of str, optional
        Restrict to these departments.

    Examples
    --------
    >>> sink = JsonlSink("alerts.jsonl")
    >>> sink.name, sink.asynchronous
    ('jsonl', False)
    """

    def __init__(self, path, name: str = "jsonl", departments=None):
        super().__init__(name, departments)
        self.path = Path(path)

    def drain(self, store: AlertStore) -> int:
        """Append every pending row of this sink to the file (one write, one fsync); returns how many."""
        rows = store.outbox_due(self.name)
        if not rows:
            return 0
        text = "".join(json.dumps(r["payload"], ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:  # stays pending; the next cycle tries again
            log.error("alert sink %s: cannot write %s: %s", self.name, self.path, exc)
            store.outbox_retry(rows[0]["seq"], 0.0, f"{type(exc).__name__}: {exc}")
            return 0
        store.outbox_done_many([r["seq"] for r in rows])
        return len(rows)


class WebhookSink(Sink):
    """POST each notification as JSON to a URL from a background thread, with retries.

    Parameters
    ----------
    url : str
        ``http://`` or ``https://`` endpoint.
    name : str
        Outbox key (default ``"webhook"``).
    departments : iterable of str, optional
        Restrict to these departments.
    timeout, backoff, backoff_max : float, optional
        Per-request timeout, first retry delay and its cap (seconds); default from the manager's
        :class:`~engine.alerts.config.AlertConfig` (``webhook_*``).
    max_attempts : int, optional
        Attempts before a row is parked as ``dead`` (0: never); default from the config.
    headers : dict, optional
        Extra HTTP headers (e.g. an authorisation token).

    Examples
    --------
    >>> WebhookSink("ftp://x")
    Traceback (most recent call last):
    ...
    ValueError: webhook url must start with http:// or https://, got 'ftp://x'
    """

    asynchronous = True

    def __init__(self, url: str, name: str = "webhook", departments=None, timeout: float | None = None,
                 backoff: float | None = None, backoff_max: float | None = None, max_attempts: int | None = None,
                 headers: dict | None = None):
        super().__init__(name, departments)
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook url must start with http:// or https://, got {url!r}")
        self.url = url
        self.timeout, self.backoff, self.backoff_max, self.max_attempts = timeout, backoff, backoff_max, max_attempts
        self.headers = dict(headers or {})
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._store_path: str | None = None
        self.delivered = 0
        self.failures = 0

    def attach(self, store_path: str, config) -> None:
        if self._thread is not None:
            return
        self.timeout = config.webhook_timeout if self.timeout is None else float(self.timeout)
        self.backoff = config.webhook_backoff if self.backoff is None else float(self.backoff)
        self.backoff_max = config.webhook_backoff_max if self.backoff_max is None else float(self.backoff_max)
        self.max_attempts = config.webhook_max_attempts if self.max_attempts is None else int(self.max_attempts)
        self._store_path = store_path
        self._thread = threading.Thread(target=self._run, name=f"cityvitals-webhook-{self.name}", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def _post(self, row: dict) -> tuple[str, str | None]:
        body = json.dumps(row["payload"], ensure_ascii=False, sort_keys=True).encode("utf-8")
        req = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json; charset=utf-8", "User-Agent": "cityvitals-alerts",
            "X-Cityvitals-Notification": row["notification_id"], **self.headers})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                resp.read()
                return "delivered", None
        except urllib.error.HTTPError as exc:
            error = f"HTTP {exc.code} {exc.reason}"
            if 400 <= exc.code < 500 and exc.code not in (408, 429):
                return "rejected", error
            return "retry", error
        except (OSError, ValueError) as exc:  # connection refused, timeout, DNS, bad response
            return "retry", f"{type(exc).__name__}: {exc}"

    def _run(self) -> None:
        store = AlertStore(self._store_path)
        try:
            while not self._stop.is_set():
                try:
                    row, wait_until = store.outbox_next(self.name, _time.time())
                except Exception as exc:  # database busy or gone: try again shortly
                    log.warning("webhook %s: outbox read failed: %s", self.name, exc)
                    self._wake.wait(0.5)
                    self._wake.clear()
                    continue
                if row is None:
                    delay = None if wait_until is None else max(0.0, wait_until - _time.time())
                    self._wake.wait(1.0 if delay is None else min(delay, 1.0))
                    self._wake.clear()
                    continue
                outcome, error = self._post(row)
                if outcome == "delivered":
                    store.outbox_done(row["seq"])
                    self.delivered += 1
                elif outcome == "rejected":
                    log.error("webhook %s rejected notification %s: %s", self.name, row["notification_id"], error)
                    store.outbox_done(row["seq"], "rejected", error)
                else:
                    self.failures += 1
                    attempts = int(row["attempts"]) + 1
                    if self.max_attempts and attempts >= self.max_attempts:
                        store.outbox_done(row["seq"], "dead", error)
                    else:
                        delay = min(self.backoff * 2 ** (attempts - 1), self.backoff_max)
                        store.outbox_retry(row["seq"], _time.time() + delay, error)
        finally:
            store.close()

    def pending(self) -> int:
        """Rows of this sink still waiting in the outbox."""
        store = AlertStore(self._store_path)
        try:
            return store.count("outbox", "WHERE sink = ? AND status = 'pending'", (self.name,))
        finally:
            store.close()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait up to ``timeout`` seconds for the outbox of this sink to empty."""
        if self._store_path is None:
            return True
        deadline = _time.monotonic() + timeout
        while True:
            if self.pending() == 0:
                return True
            if _time.monotonic() >= deadline:
                return False
            self._wake.set()
            _time.sleep(0.02)

    def close(self) -> None:
        """Stop the delivery thread (undelivered rows stay in the outbox)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + 5 if self.timeout else 10)
            self._thread = None
