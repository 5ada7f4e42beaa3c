"""``cityvitals catalog ...``: inspect, validate and document the indicator catalog."""

from __future__ import annotations

import json
import sys
from collections import Counter


def register(sub) -> None:
    p = sub.add_parser("catalog", help="inspect, validate and document the indicator catalog",
                       description="Inspect, validate and document the indicator catalog (indicators/*.toml).")
    csub = p.add_subparsers(dest="catalog_command", metavar="ACTION", title="actions")
    p.set_defaults(handler=lambda args: (p.print_help(), 2)[1])

    s = csub.add_parser("stats", help="counts of indicators by domain, dimension, feed and owner")
    s.add_argument("--path", help="a catalog folder (default: the bundled catalog)")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(handler=_stats)

    lst = csub.add_parser("list", help="list the expanded indicators, optionally filtered")
    lst.add_argument("--path", help="a catalog folder (default: the bundled catalog)")
    lst.add_argument("--domain")
    lst.add_argument("--dimension")
    lst.add_argument("--feed")
    lst.add_argument("--json", action="store_true", help="print the indicators as a JSON list with every field")
    lst.set_defaults(handler=_list)

    show = csub.add_parser("show", help="show every field of one indicator")
    show.add_argument("id")
    show.add_argument("--path", help="a catalog folder (default: the bundled catalog)")
    show.set_defaults(handler=_show)

    val = csub.add_parser("validate", help="validate a catalog folder; exit 1 with every problem when invalid")
    val.add_argument("path", nargs="?", help="a catalog folder (default: the bundled catalog)")
    val.add_argument("--json", action="store_true", help="print the problems as JSON")
    val.set_defaults(handler=_validate)

    docs = csub.add_parser("docs", help="write a bilingual Markdown reference of the catalog")
    docs.add_argument("--out", required=True, help="the Markdown file to write (e.g. docs/catalog.md)")
    docs.add_argument("--path", help="a catalog folder (default: the bundled catalog)")
    docs.set_defaults(handler=_docs)


def _load(args):
    from engine.catalog import Catalog, CatalogError

    try:
        return Catalog.load(getattr(args, "path", None))
    except (CatalogError, FileNotFoundError) as exc:
        print(f"cityvitals: {exc}", file=sys.stderr)
        raise SystemExit(1)


def _stats(args) -> int:
    stats = _load(args).stats()
    if args.json:
        print(json.dumps(stats, ensure_ascii=False, indent=2))
        return 0
    print(f"{stats['total']} indicators in {len(stats['by_domain'])} domains, {len(stats['by_dimension'])} dimensions")
    for key in ("by_domain", "by_dimension", "by_feed", "by_owner"):
        print(f"\n{key.replace('_', ' ')}:")
        for name, n in Counter(stats[key]).most_common():
            print(f"  {name:<45} {n:>5}")
    return 0


def _list(args) -> int:
    cat = _load(args)
    try:
        rows = cat.select(domain=args.domain, dimension=args.dimension, feed=args.feed)
    except ValueError as exc:
        print(f"cityvitals: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
        return 0
    for r in rows:
        print(f"{r['id']:<70} {r['unit']:<10} {r['name_zh']}")
    print(f"({len(rows)} indicators)", file=sys.stderr)
    return 0


def _show(args) -> int:
    cat = _load(args)
    try:
        ind = cat.get(args.id)
    except KeyError as exc:
        close = [i for i in cat.ids if args.id.split(".")[-1] in i][:5]
        hint = f"; similar: {', '.join(close)}" if close else ""
        print(f"cityvitals: {exc.args[0]}{hint}", file=sys.stderr)
        return 1
    width = max(len(k) for k in ind)
    for k, v in ind.items():
        print(f"{k:<{width}}  {json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) or v is None else v}")
    return 0


def _validate(args) -> int:
    from engine.catalog import Catalog

    try:
        problems = Catalog.check(args.path)
    except FileNotFoundError as exc:
        print(f"cityvitals: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([p.to_dict() for p in problems], ensure_ascii=False, indent=1))
    elif problems:
        print(f"invalid catalog: {len(problems)} problem(s)")
        for p in problems:
            print(f"  {p}")
    else:
        cat = Catalog.load(args.path)
        print(f"valid: {len(cat)} indicators in {len(cat.domains)} domains and {len(cat.dimensions)} dimensions")
    return 1 if problems else 0


def _docs(args) -> int:
    from pathlib import Path

    from engine.catalog.docs import catalog_markdown

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(catalog_markdown(_load(args)), encoding="utf-8")
    print(f"wrote {out}")
    return 0
