"""The SQLite alert store: current alerts, transition history, silences, acks, notifications, outbox.

One database file holds everything the operations centre and the CLI read, and the outbox from
which notification sinks deliver. Tables:

``alerts``
    One row per alert that fired (an episode of one series; its id is given when the series turns
    pending, and the pending time is ``started_at``): ids, names, level, region, dimension, owner
    department, state (``firing``, ``resolved``), severity,
    latest value / score / detector, times, ``flapping``, ``muted`` (why it is not notified),
    escalation time and the open acknowledgement (cleared when the alert resolves).
``transitions``
    Every state change of every series: time, level, indicator, region, alert id, events, series
    state, alert state, severity, value, score, detector. A re-run of a cycle replaces that cycle's
    rows, so it adds nothing.
``cycles``
    One row per processed level and cycle: series, events, pending starts, cancellations, fired,
    resolved, notifications and seconds taken.
``silences``, ``acks``
    Written by operators (``cityvitals alerts silence`` / ``ack``) and read by each cycle.
``notifications``
    Every notification sent (id, time, kind, department, contact, group, payload JSON).
``outbox``
    One row per (notification, sink): ``pending`` until delivered, with attempts, next try and
    the last error; ``rejected`` when the receiver refused it (HTTP 4xx), ``dead`` after
    ``webhook_max_attempts``.

Text from elsewhere (names, comments, payloads) is always bound as SQL parameters, never
formatted into SQL. The database runs in WAL mode so the CLI and the webhook thread can read
while a cycle writes; each thread opens its own :class:`AlertStore`.

>>> import tempfile, os
>>> db = AlertStore(os.path.join(tempfile.mkdtemp(), "a.sqlite"))
>>> db.count("alerts"), db.max_alert_id()
(0, 0)
"""

from __future__ import annotations

import json
import sqlite3
import time as _time
from pathlib import Path

from engine.alerts.config import iso
from engine.alerts.silences import MATCHERS, Silence

__all__ = ["ALERT_COLUMNS", "AlertStore"]

SCHEMA_VERSION = 1

ALERT_COLUMNS = ("id", "level", "indicator", "indicator_name_zh", "indicator_name_en", "unit", "region",
                 "region_name", "dimension", "department", "state", "severity", "value", "score", "detector",
                 "started_at", "fired_at", "resolved_at", "updated_at", "t_updated", "flapping", "muted",
                 "escalated_at")
_ACK_COLUMNS = ("acked_by", "acked_at", "ack_comment")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY, level TEXT NOT NULL, indicator TEXT NOT NULL, indicator_name_zh TEXT,
    indicator_name_en TEXT, unit TEXT, region TEXT NOT NULL, region_name TEXT, dimension TEXT,
    department TEXT, state TEXT NOT NULL, severity TEXT, value REAL, score REAL, detector TEXT,
    started_at TEXT, fired_at TEXT, resolved_at TEXT, updated_at TEXT, t_updated INTEGER,
    flapping INTEGER NOT NULL DEFAULT 0, muted TEXT NOT NULL DEFAULT '', escalated_at TEXT,
    acked_by TEXT, acked_at TEXT, ack_comment TEXT);
CREATE INDEX IF NOT EXISTS alerts_state ON alerts(state);
CREATE TABLE IF NOT EXISTS transitions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, t INTEGER NOT NULL, time TEXT NOT NULL, level TEXT NOT NULL,
    indicator TEXT NOT NULL, region TEXT NOT NULL, alert_id INTEGER, events TEXT NOT NULL,
    state TEXT NOT NULL, alert_state TEXT, severity TEXT, value REAL, score REAL, detector TEXT,
    cycle INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS transitions_alert ON transitions(alert_id);
CREATE INDEX IF NOT EXISTS transitions_cycle ON transitions(cycle, level);
CREATE TABLE IF NOT EXISTS cycles (
    t INTEGER NOT NULL, time TEXT NOT NULL, level TEXT NOT NULL, series INTEGER, events INTEGER,
    pending INTEGER, cancelled INTEGER, fired INTEGER, resolved INTEGER, notifications INTEGER, seconds REAL,
    PRIMARY KEY (t, level));
CREATE TABLE IF NOT EXISTS silences (
    id INTEGER PRIMARY KEY AUTOINCREMENT, author TEXT NOT NULL, comment TEXT NOT NULL,
    created_at INTEGER NOT NULL, starts_at INTEGER, expires_at INTEGER NOT NULL,
    {", ".join(f"{m} TEXT" for m in MATCHERS)}, removed_at INTEGER, removed_by TEXT);
CREATE TABLE IF NOT EXISTS acks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, alert_id INTEGER NOT NULL, t INTEGER NOT NULL, time TEXT NOT NULL,
    by TEXT NOT NULL, comment TEXT NOT NULL, cleared_at TEXT);
CREATE INDEX IF NOT EXISTS acks_alert ON acks(alert_id);
CREATE TABLE IF NOT EXISTS notifications (
    id TEXT PRIMARY KEY, t INTEGER NOT NULL, time TEXT NOT NULL, kind TEXT NOT NULL, status TEXT,
    reason TEXT, department TEXT, contact TEXT, level TEXT, region TEXT, dimension TEXT,
    alert_ids TEXT, payload TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, notification_id TEXT NOT NULL, sink TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL DEFAULT 0, created_at TEXT, delivered_at TEXT, last_error TEXT,
    UNIQUE (notification_id, sink));
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(sink, status, seq);
"""


class AlertStore:
    """A connection to the alert database (creates the schema when missing).

    Parameters
    ----------
    path : str or Path
        The SQLite file (``":memory:"`` for a private in-memory store).
    timeout : float
        Seconds to wait for another writer's lock.

    Examples
    --------
    >>> import tempfile, os
    >>> db = AlertStore(os.path.join(tempfile.mkdtemp(), "a.sqlite"))
    >>> sid = db.add_silence(author="ops", comment="works", created_at=0, expires_at=60, region="S01")
    >>> [s.region for s in db.silences(active_at=30)], db.silences(active_at=60)
    (['S01'], [])
    """

    def __init__(self, path, timeout: float = 30.0):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self._batch = None
        if self.path != ":memory:":
            self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        self.conn.executescript(_SCHEMA)
        self.conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def close(self) -> None:
        self.conn.close()

    # ---------------------------------------------------------------- transactions
    class _Tx:
        def __init__(self, store):
            self.store = store

        def __enter__(self):
            st = self.store
            if st._batch is not None:       # inside a batch: a savepoint of its transaction
                st._batch["cache"].clear()  # (an ack or silence of this connection: read again)
                st.conn.execute("SAVEPOINT tx")
            else:
                st.conn.execute("BEGIN IMMEDIATE")
            return st.conn

        def __exit__(self, exc_type, exc, tb):
            if self.store._batch is not None:
                if exc_type is not None:
                    self.store.conn.execute("ROLLBACK TO tx")
                self.store.conn.execute("RELEASE tx")
            else:
                self.store.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
            return False

    def transaction(self):
        """``with store.transaction() as conn:`` one atomic write (a savepoint inside a batch)."""
        return AlertStore._Tx(self)

    # ---------------------------------------------------------------- batches of cycles
    def begin_batch(self) -> None:
        """Start a batch: the following :meth:`write_cycle` calls are kept and written together by
        :meth:`end_batch`, in one transaction that holds the write lock from now on.

        While the batch holds the lock no other connection can commit, so the acknowledgements
        and silences are read once (:meth:`open_acks`, :meth:`silences`) and kept: every cycle of
        the batch reads what it would have read alone. Used by
        :meth:`engine.alerts.manager.AlertManager.batch` for a run's part of a day.

        Examples
        --------
        >>> import tempfile, os
        >>> db = AlertStore(os.path.join(tempfile.mkdtemp(), "a.sqlite"))
        >>> db.begin_batch()
        >>> db.write_cycle(cycles=[(900, "1970-01-01T00:15:00Z", "district", 1, 0, 0, 0, 0, 0, None, 0.0)],
        ...                levels=["district"], t=900)
        []
        >>> db.count("cycles")
        0
        >>> db.end_batch()
        []
        >>> db.count("cycles")
        1
        """
        if self._batch is not None:
            raise ValueError("a batch is already open on this store")
        self.conn.execute("BEGIN IMMEDIATE")
        self._batch = {"del": [], "transitions": [], "cycles": [], "alerts": [], "resolved": [],
                       "notifications": [], "cache": {}}

    def end_batch(self) -> list[str]:
        """Write the batch's cycles (in the order :meth:`write_cycle` got them) and commit; returns
        the ids of the notifications that are new. A failing write rolls the batch back."""
        b = self._batch
        if b is None:
            raise ValueError("no batch is open on this store")
        self._batch = None
        try:
            new = self._write(self.conn, b["del"], b["transitions"], b["cycles"], b["alerts"], b["resolved"],
                              b["notifications"])
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")
        return new

    def count(self, table: str, where: str = "", params: tuple = ()) -> int:
        """Rows of a table (``where`` is trusted SQL text from this package; values go in ``params``)."""
        if table not in ("alerts", "transitions", "cycles", "silences", "acks", "notifications", "outbox"):
            raise ValueError(f"unknown table {table!r}")
        return int(self.conn.execute(f"SELECT COUNT(*) FROM {table} {where}", params).fetchone()[0])

    # ---------------------------------------------------------------- the cycle's write
    def write_cycle(self, *, transitions=(), alerts=(), resolved=(), notifications=(), levels=(),
                    cycles=(), t: int = 0) -> list[str]:
        """Write one cycle atomically; returns the ids of notifications that are new.

        Parameters
        ----------
        transitions : iterable of tuple
            ``(t, time, level, indicator, region, alert_id, events, state, alert_state, severity,
            value, score, detector)``.
        alerts : iterable of tuple
            Rows in :data:`ALERT_COLUMNS` order (inserted or updated; ack columns untouched).
        resolved : iterable of int
            Alert ids whose open acknowledgement is cleared (the alert resolved).
        notifications : iterable of dict
            With ``id, t, kind, status, reason, department, contact, level, region, dimension,
            alert_ids, payload`` (payload a dict) and ``sinks`` (outbox-backed sink names: each new
            notification gets one ``pending`` outbox row per sink).
        levels : iterable of str
            Levels processed in this cycle: the transitions this cycle wrote before are replaced
            (a re-run).
        cycles : iterable of tuple
            ``(t, time, level, series, events, pending, cancelled, fired, resolved, notifications,
            seconds)``.
        t : int
            The cycle time.
        """
        dels = [(int(t), lv) for lv in levels]
        trans = [tuple(r) + (int(t),) for r in transitions]
        resolved = [(int(i), iso(t)) for i in resolved]
        b = self._batch
        if b is not None:
            b["del"] += dels
            b["transitions"] += trans
            b["cycles"] += cycles
            b["alerts"] += alerts
            b["resolved"] += resolved
            b["notifications"] += notifications
            acks = b["cache"].get("acks")
            if acks is not None:    # a resolved alert's acknowledgement is cleared (when the batch is written)
                for i, _ in resolved:
                    acks.pop(i, None)
            return []
        with self.transaction() as c:
            return self._write(c, dels, trans, cycles, alerts, resolved, notifications)

    @staticmethod
    def _write(c, dels, transitions, cycles, alerts, resolved, notifications) -> list[str]:
        """One cycle's rows, or a batch's (each table's rows in the cycles' order: the same rows,
        row ids and sequence numbers as cycle by cycle)."""
        new = []
        c.executemany("DELETE FROM transitions WHERE cycle = ? AND level = ?", dels)
        c.executemany("INSERT INTO transitions (t, time, level, indicator, region, alert_id, events, "
                      "state, alert_state, severity, value, score, detector, cycle) "
                      "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", transitions)
        c.executemany("INSERT OR REPLACE INTO cycles VALUES (?,?,?,?,?,?,?,?,?,?,?)", cycles)
        cols = ", ".join(ALERT_COLUMNS)
        upd = ", ".join(f"{k}=excluded.{k}" for k in ALERT_COLUMNS[1:])
        c.executemany(f"INSERT INTO alerts ({cols}) VALUES ({', '.join('?' * len(ALERT_COLUMNS))}) "
                      f"ON CONFLICT(id) DO UPDATE SET {upd}", alerts)
        if resolved:
            c.executemany("UPDATE alerts SET acked_by=NULL, acked_at=NULL, ack_comment=NULL WHERE id = ?",
                          [(i,) for i, _ in resolved])
            c.executemany("UPDATE acks SET cleared_at = ? WHERE alert_id = ? AND cleared_at IS NULL",
                          [(stamp, i) for i, stamp in resolved])
        for n in notifications:
            cur = c.execute(
                "INSERT OR IGNORE INTO notifications (id, t, time, kind, status, reason, department, contact, "
                "level, region, dimension, alert_ids, payload) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (n["id"], int(n["t"]), iso(n["t"]), n["kind"], n.get("status"), n.get("reason"),
                 n.get("department"), n.get("contact"), n.get("level"), n.get("region"), n.get("dimension"),
                 json.dumps(n.get("alert_ids", [])),
                 json.dumps(n["payload"], ensure_ascii=False, sort_keys=True)))
            if cur.rowcount:
                new.append(n["id"])
                c.executemany("INSERT OR IGNORE INTO outbox (notification_id, sink, created_at) VALUES (?,?,?)",
                              [(n["id"], s, iso(_time.time())) for s in n.get("sinks", ())])
        return new

    # ---------------------------------------------------------------- alerts
    def max_alert_id(self) -> int:
        """The highest alert id ever written to the alerts or the transitions (0 when none)."""
        a = self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM alerts").fetchone()[0]
        b = self.conn.execute("SELECT COALESCE(MAX(alert_id), 0) FROM transitions").fetchone()[0]
        return int(max(a, b))

    def get_alert(self, alert_id: int) -> dict | None:
        """One alert row as a dict, or ``None``."""
        row = self.conn.execute("SELECT * FROM alerts WHERE id = ?", (int(alert_id),)).fetchone()
        return dict(row) if row else None

    def list_alerts(self, state: str | None = None, department: str | None = None, level: str | None = None,
                    limit: int | None = None) -> list[dict]:
        """Alerts, newest first, filtered by state, department and/or level."""
        sql, params = "SELECT * FROM alerts WHERE 1=1", []
        for col, v in (("state", state), ("department", department), ("level", level)):
            if v is not None:
                sql += f" AND {col} = ?"
                params.append(v)
        sql += " ORDER BY t_updated DESC, id DESC"
        if limit:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [dict(r) for r in self.conn.execute(sql, params)]

    def active_alerts(self) -> list[dict]:
        """Alerts that are firing."""
        return [dict(r) for r in self.conn.execute("SELECT * FROM alerts WHERE state = 'firing' ORDER BY id")]

    def cycles(self) -> list[dict]:
        """Per-cycle counts, oldest first."""
        return [dict(r) for r in self.conn.execute("SELECT * FROM cycles ORDER BY t, level")]

    def transitions(self, alert_id: int | None = None, limit: int | None = None) -> list[dict]:
        """Transition history (of one alert, or all), oldest first."""
        sql, params = "SELECT * FROM transitions", []
        if alert_id is not None:
            sql += " WHERE alert_id = ?"
            params.append(int(alert_id))
        sql += " ORDER BY t, seq"
        if limit:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [dict(r) for r in self.conn.execute(sql, params)]

    # ---------------------------------------------------------------- acks
    def ack(self, alert_id: int, comment: str, by: str, t: int | None = None) -> int:
        """Acknowledge a firing alert; returns the ack id.

        Raises
        ------
        ValueError
            Unknown alert id, an alert that is already resolved, or an empty comment / name.
        """
        if not isinstance(comment, str) or not comment.strip():
            raise ValueError(f"an acknowledgement needs a non-empty comment, got {comment!r}")
        if not isinstance(by, str) or not by.strip():
            raise ValueError(f"an acknowledgement needs who acknowledged (by), got {by!r}")
        t = int(_time.time()) if t is None else int(t)
        with self.transaction() as c:
            row = c.execute("SELECT state FROM alerts WHERE id = ?", (int(alert_id),)).fetchone()
            if row is None:
                raise ValueError(f"no alert with id {alert_id!r}")
            if row["state"] != "firing":
                raise ValueError(f"alert {alert_id} is {row['state']}; only firing alerts can be acknowledged")
            c.execute("UPDATE acks SET cleared_at = ? WHERE alert_id = ? AND cleared_at IS NULL", (iso(t), int(alert_id)))
            cur = c.execute("INSERT INTO acks (alert_id, t, time, by, comment) VALUES (?,?,?,?,?)",
                            (int(alert_id), t, iso(t), by, comment))
            c.execute("UPDATE alerts SET acked_by = ?, acked_at = ?, ack_comment = ? WHERE id = ?",
                      (by, iso(t), comment, int(alert_id)))
            return int(cur.lastrowid)

    def open_acks(self) -> dict:
        """``{alert_id: {"by", "comment", "time"}}`` of acknowledgements not yet cleared (in a batch:
        read once, see :meth:`begin_batch`)."""
        if self._batch is not None:
            cache = self._batch["cache"]
            if "acks" not in cache:
                cache["acks"] = self._open_acks()
            return cache["acks"]
        return self._open_acks()

    def _open_acks(self) -> dict:
        return {int(r["alert_id"]): {"by": r["by"], "comment": r["comment"], "time": r["time"]}
                for r in self.conn.execute("SELECT * FROM acks WHERE cleared_at IS NULL ORDER BY id")}

    def acks(self, alert_id: int) -> list[dict]:
        """Every acknowledgement of an alert, oldest first (cleared ones included)."""
        return [dict(r) for r in self.conn.execute("SELECT * FROM acks WHERE alert_id = ? ORDER BY id", (int(alert_id),))]

    # ---------------------------------------------------------------- silences
    def add_silence(self, *, author: str, comment: str, expires_at: int, created_at: int | None = None,
                    starts_at: int | None = None, **matchers) -> int:
        """Store a silence (validated by :class:`Silence`); returns its id."""
        unknown = set(matchers) - set(MATCHERS)
        if unknown:
            raise ValueError(f"unknown silence matcher(s) {sorted(unknown)}; expected {list(MATCHERS)}")
        created_at = int(_time.time()) if created_at is None else int(created_at)
        Silence(id=0, author=author, comment=comment, created_at=created_at, expires_at=int(expires_at),
                starts_at=starts_at, **matchers)
        with self.transaction() as c:
            cur = c.execute(
                f"INSERT INTO silences (author, comment, created_at, starts_at, expires_at, {', '.join(MATCHERS)}) "
                f"VALUES (?,?,?,?,?,{','.join('?' * len(MATCHERS))})",
                (author, comment, created_at, starts_at, int(expires_at), *(matchers.get(m) or None for m in MATCHERS)))
            return int(cur.lastrowid)

    def remove_silence(self, silence_id: int, by: str | None = None, t: int | None = None) -> None:
        """End a silence now (``unsilence``); a ``ValueError`` names an unknown or already removed id."""
        t = int(_time.time()) if t is None else int(t)
        with self.transaction() as c:
            row = c.execute("SELECT removed_at FROM silences WHERE id = ?", (int(silence_id),)).fetchone()
            if row is None:
                raise ValueError(f"no silence with id {silence_id!r}")
            if row["removed_at"] is not None:
                raise ValueError(f"silence {silence_id} was already removed at {iso(row['removed_at'])}")
            c.execute("UPDATE silences SET removed_at = ?, removed_by = ? WHERE id = ?", (t, by, int(silence_id)))

    def silences(self, active_at: int | None = None) -> list[Silence]:
        """All silences, or those active at a time (in a batch: read once, see :meth:`begin_batch`)."""
        if self._batch is not None:
            cache = self._batch["cache"]
            if "silences" not in cache:
                cache["silences"] = self._silences()
            every = cache["silences"]
        else:
            every = self._silences()
        return [s for s in every if active_at is None or s.active(active_at)]

    def _silences(self) -> list[Silence]:
        return [Silence(**{k: r[k] for k in r.keys()}) for r in self.conn.execute("SELECT * FROM silences ORDER BY id")]

    # ---------------------------------------------------------------- notifications and outbox
    def notifications(self, kind: str | None = None) -> list[dict]:
        """Notifications in the order they were made, payload decoded."""
        sql, params = "SELECT * FROM notifications", ()
        if kind:
            sql, params = sql + " WHERE kind = ?", (kind,)
        rows = [dict(r) for r in self.conn.execute(sql + " ORDER BY rowid", params)]
        for r in rows:
            r["payload"] = json.loads(r["payload"])
            r["alert_ids"] = json.loads(r["alert_ids"] or "[]")
        return rows

    def outbox_next(self, sink: str, now: float) -> tuple[dict | None, float | None]:
        """The oldest pending outbox row of a sink and when it may be tried.

        Returns ``(row, None)`` when it is due (``row`` has the decoded ``payload``), ``(None,
        next_try)`` when the head waits for its backoff, ``(None, None)`` when nothing is pending.
        Delivery is in order: later rows wait behind the head.
        """
        r = self.conn.execute(
            "SELECT o.seq, o.notification_id, o.attempts, o.next_try, n.payload FROM outbox o "
            "JOIN notifications n ON n.id = o.notification_id WHERE o.sink = ? AND o.status = 'pending' "
            "ORDER BY o.seq LIMIT 1", (sink,)).fetchone()
        if r is None:
            return None, None
        if r["next_try"] > now:
            return None, float(r["next_try"])
        row = dict(r)
        row["payload"] = json.loads(row["payload"])
        return row, None

    def outbox_due(self, sink: str) -> list[dict]:
        """Every pending outbox row of a sink, in order, with the decoded ``payload``."""
        rows = [dict(r) for r in self.conn.execute(
            "SELECT o.seq, o.notification_id, o.attempts, n.payload FROM outbox o JOIN notifications n "
            "ON n.id = o.notification_id WHERE o.sink = ? AND o.status = 'pending' ORDER BY o.seq", (sink,))]
        for r in rows:
            r["payload"] = json.loads(r["payload"])
        return rows

    def outbox_done_many(self, seqs) -> None:
        """Mark several outbox rows delivered."""
        stamp = iso(_time.time())
        with self.transaction() as c:
            c.executemany("UPDATE outbox SET status = 'delivered', delivered_at = ?, attempts = attempts + 1 "
                          "WHERE seq = ?", [(stamp, int(q)) for q in seqs])

    def outbox_done(self, seq: int, status: str = "delivered", error: str | None = None) -> None:
        """Mark an outbox row delivered (or ``rejected`` / ``dead`` with the error)."""
        self.conn.execute("UPDATE outbox SET status = ?, delivered_at = ?, last_error = ?, attempts = attempts + 1 "
                          "WHERE seq = ?", (status, iso(_time.time()), error, int(seq)))

    def outbox_retry(self, seq: int, next_try: float, error: str) -> None:
        """Record a failed attempt and when to try again."""
        self.conn.execute("UPDATE outbox SET attempts = attempts + 1, next_try = ?, last_error = ? WHERE seq = ?",
                          (float(next_try), error, int(seq)))

    def outbox(self, sink: str | None = None, status: str | None = None) -> list[dict]:
        """Outbox rows in order."""
        sql, params = "SELECT * FROM outbox WHERE 1=1", []
        for col, v in (("sink", sink), ("status", status)):
            if v is not None:
                sql += f" AND {col} = ?"
                params.append(v)
        return [dict(r) for r in self.conn.execute(sql + " ORDER BY seq", params)]
