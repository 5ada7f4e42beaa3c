"""``cityvitals alerts ...``: list, show, acknowledge and silence alerts in the SQLite alert history.

Every command reads or writes the database an :class:`~engine.alerts.AlertManager` keeps
(``--db``, default ``alerts.sqlite``); the next cycle picks up acknowledgements and silences.
Exit codes: 0 done, 1 not found / not possible (the message says why), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

DEFAULT_DB = "alerts.sqlite"
STATES = ("firing", "resolved")


def _alert_id(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = 0
    if v <= 0:
        raise argparse.ArgumentTypeError(f"an id must be a positive integer, got {text!r}")
    return v


def _nonempty(what: str):
    def check(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"{what} must not be empty, got {text!r}")
        return text
    return check


def register(sub) -> None:
    p = sub.add_parser("alerts", help="list, show, acknowledge and silence alerts (SQLite alert history)",
                       description="List, show, acknowledge and silence alerts in the SQLite alert history.")
    asub = p.add_subparsers(dest="alerts_command", metavar="ACTION", title="actions")
    p.set_defaults(handler=lambda args: (p.print_help(), 2)[1])

    def db(parser):
        parser.add_argument("--db", default=DEFAULT_DB, help=f"the alert database (default {DEFAULT_DB})")

    lst = asub.add_parser("list", help="list alerts, newest first")
    db(lst)
    lst.add_argument("--state", choices=STATES, help="only alerts in this state")
    lst.add_argument("--department", help="only alerts routed to this department id")
    lst.add_argument("--level", help="only alerts at this level (neighbourhood, street, district ...)")
    lst.add_argument("--limit", type=_alert_id, help="at most this many")
    lst.add_argument("--json", action="store_true", help="print JSON")
    lst.set_defaults(handler=_list)

    show = asub.add_parser("show", help="one alert with its transitions, acknowledgements and notifications")
    show.add_argument("id", type=_alert_id)
    db(show)
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=_show)

    ack = asub.add_parser("ack", help="acknowledge a firing alert (stops its escalation)")
    ack.add_argument("id", type=_alert_id)
    ack.add_argument("--comment", required=True, type=_nonempty("--comment"), help="what is being done")
    ack.add_argument("--by", default=None, type=_nonempty("--by"), help="who acknowledges (default: $USER)")
    db(ack)
    ack.set_defaults(handler=_ack)

    sil = asub.add_parser("silence", help="mute matching alerts until an expiry")
    sil.add_argument("--indicator", help="indicator id or pattern (e.g. 'safety.epidemic.*')")
    sil.add_argument("--region", help="region id (a street or 'district' covers the regions inside it)")
    sil.add_argument("--dimension", help="dimension id (e.g. epidemic)")
    sil.add_argument("--department", help="owner department id (e.g. water_authority)")
    sil.add_argument("--author", required=True, type=_nonempty("--author"), help="who silences")
    sil.add_argument("--comment", required=True, type=_nonempty("--comment"), help="why")
    sil.add_argument("--expires", required=True, help="a duration from now (2h, 30m, 1d) or an ISO time")
    sil.add_argument("--catalog", help="catalog folder to check indicator/dimension/department against "
                                      "(default: the bundled catalog)")
    db(sil)
    sil.set_defaults(handler=_silence)

    uns = asub.add_parser("unsilence", help="end a silence now")
    uns.add_argument("id", type=_alert_id)
    uns.add_argument("--by", default=None, help="who ends it (default: $USER)")
    db(uns)
    uns.set_defaults(handler=_unsilence)

    sls = asub.add_parser("silences", help="list silences (active ones unless --all)")
    sls.add_argument("--all", action="store_true", help="also expired and removed ones")
    sls.add_argument("--json", action="store_true", help="print JSON")
    db(sls)
    sls.set_defaults(handler=_silences)


def _err(msg: str, code: int = 1) -> int:
    print(f"cityvitals alerts: {msg}", file=sys.stderr)
    return code


def _open(args):
    from engine.alerts.store import AlertStore

    if not Path(args.db).is_file():
        raise SystemExit(_err(f"no alert database at {args.db!r} (give --db PATH)"))
    return AlertStore(args.db)


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:
        return "operator"


def _list(args) -> int:
    store = _open(args)
    rows = store.list_alerts(state=args.state, department=args.department, level=args.level, limit=args.limit)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
        return 0
    for r in rows:
        ack = f" ack:{r['acked_by']}" if r["acked_by"] else ""
        flags = (" flapping" if r["flapping"] else "") + (f" [{r['muted']}]" if r["muted"] else "")
        print(f"{r['id']:>6} {r['state']:<8} {r['severity'] or '-':<8} {r['level']:<13} {r['region']:<9} "
              f"{r['indicator']:<60} {r['department']:<22} {r['updated_at']}{ack}{flags}")
    print(f"({len(rows)} alerts)", file=sys.stderr)
    return 0


def _show(args) -> int:
    store = _open(args)
    a = store.get_alert(args.id)
    if a is None:
        return _err(f"no alert with id {args.id}")
    out = {"alert": a, "transitions": store.transitions(args.id), "acks": store.acks(args.id),
           "notifications": [{k: n[k] for k in ("id", "time", "kind", "status", "reason", "contact")}
                             for n in store.notifications() if args.id in n["alert_ids"]]}
    if args.json:
        print(json.dumps(out, ensure_ascii=False, indent=1))
        return 0
    for k, v in a.items():
        print(f"{k:<18} {'' if v is None else v}")
    print("\ntransitions:")
    for tr in out["transitions"]:
        print(f"  {tr['time']}  {tr['events']:<24} {tr['alert_state'] or '-':<9} {tr['severity'] or '-':<8} "
              f"value={tr['value']} score={tr['score']} detector={tr['detector']}")
    print("\nacknowledgements:")
    for ak in out["acks"]:
        cleared = f" (cleared {ak['cleared_at']})" if ak["cleared_at"] else ""
        print(f"  {ak['time']}  {ak['by']}: {ak['comment']}{cleared}")
    print("\nnotifications:")
    for n in out["notifications"]:
        print(f"  {n['time']}  {n['kind']:<10} {n['reason']:<14} -> {n['contact']}")
    return 0


def _ack(args) -> int:
    store = _open(args)
    try:
        ack_id = store.ack(args.id, args.comment, args.by or _user())
    except ValueError as exc:
        return _err(str(exc))
    print(f"acknowledged alert {args.id} (ack {ack_id})")
    return 0


def _check_matchers(args) -> str | None:
    """A message when a matcher names nothing in the catalog, else None."""
    import fnmatch

    if not (args.indicator or args.dimension or args.department):
        return None
    from engine.catalog import Catalog, CatalogError

    try:
        cat = Catalog.load(args.catalog)
    except (CatalogError, FileNotFoundError) as exc:
        return f"cannot load the catalog to check the matchers: {exc}"
    if args.indicator and args.indicator not in cat and not any(fnmatch.fnmatchcase(i, args.indicator) for i in cat.ids):
        return f"--indicator {args.indicator!r} matches no indicator of the catalog (give an id or a pattern like 'safety.epidemic.*')"
    if args.dimension and args.dimension not in cat.dimensions:
        return f"--dimension {args.dimension!r} is unknown; expected one of {sorted(cat.dimensions)}"
    if args.department and args.department not in cat.departments:
        return f"--department {args.department!r} is unknown; expected one of {sorted(cat.departments)}"
    return None


def _silence(args) -> int:
    from engine.alerts.silences import parse_expiry

    if not (args.indicator or args.region or args.dimension or args.department):
        return _err("give at least one of --indicator, --region, --dimension, --department", 2)
    now = int(time.time())
    try:
        expires = parse_expiry(args.expires, now)
    except ValueError as exc:
        return _err(f"--expires: {exc}", 2)
    if expires <= now:
        return _err(f"--expires {args.expires!r} is in the past", 2)
    problem = _check_matchers(args)
    if problem:
        return _err(problem, 2)
    store = _open(args)
    sid = store.add_silence(author=args.author, comment=args.comment, created_at=now, expires_at=expires,
                            indicator=args.indicator, region=args.region, dimension=args.dimension,
                            department=args.department)
    from engine.alerts.config import iso

    print(f"silence {sid} until {iso(expires)}")
    return 0


def _unsilence(args) -> int:
    store = _open(args)
    try:
        store.remove_silence(args.id, args.by or _user())
    except ValueError as exc:
        return _err(str(exc))
    print(f"silence {args.id} removed")
    return 0


def _silences(args) -> int:
    store = _open(args)
    rows = store.silences(None if args.all else int(time.time()))
    if args.json:
        print(json.dumps([s.to_dict() for s in rows], ensure_ascii=False, indent=1))
        return 0
    for s in rows:
        d = s.to_dict()
        m = " ".join(f"{k}={v}" for k, v in s.matchers().items())
        print(f"{s.id:>5} until {d['expires_at']}  {m}  by {s.author}: {s.comment}"
              + (f" (removed {d['removed_at']})" if s.removed_at else ""))
    return 0
