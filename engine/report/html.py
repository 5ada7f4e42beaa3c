"""HTML building blocks for self-contained reports: escaping, tables, embedded images, the page.

Every text that comes from a run (names, alert texts, scenario titles) goes through
:func:`esc`; only fragments this package writes itself are wrapped in :class:`Raw`. Images are
embedded as ``data:`` URIs, so a report is one file. A Content-Security-Policy forbids scripts
and every external resource, a second line of defence behind the escaping.

>>> table(["name"], [["<b>x</b>"]])
Raw('<table><thead><tr><th>name</th></tr></thead><tbody><tr><td>&lt;b&gt;x&lt;/b&gt;</td></tr></tbody></table>')
"""

from __future__ import annotations

import base64
import html
import math
import tomllib
from functools import lru_cache

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
FONT_STACK = ('"Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Noto Sans CJK", "PingFang SC", '
              '"Microsoft YaHei", "WenQuanYi Micro Hei", "DejaVu Sans", sans-serif')

CSS = """
*{box-sizing:border-box}
body{margin:0;font:13px/1.35 %(font)s;background:#eef1f5;color:#1d2733}
header{display:flex;align-items:center;gap:18px;padding:7px 14px;background:#12355b;color:#fff}
header h1{font-size:18px;margin:0;font-weight:600;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;max-width:44%%}
header .sub{font-size:12px;opacity:.85}
.kpis{display:flex;gap:8px;margin-left:auto}
.kpi{background:rgba(255,255,255,.13);padding:3px 10px;border-radius:4px;text-align:center;line-height:1.15}
.kpi b{display:block;font-size:16px}
.kpi span{font-size:11px;opacity:.85}
main{display:grid;gap:8px;padding:8px}
main.report{grid-template-columns:33fr 37fr 30fr}
.col{display:flex;flex-direction:column;gap:8px;min-width:0}
.card{background:#fff;border-radius:6px;box-shadow:0 1px 2px rgba(0,0,0,.1);padding:6px 8px;min-width:0}
.card h2{font-size:13px;margin:0 0 4px;color:#12355b}
img{width:100%%;height:auto;display:block}
table{border-collapse:collapse;width:100%%;font-size:12px}
th,td{padding:2px 5px;border-bottom:1px solid #e3e7ec;text-align:left;vertical-align:top}
th{background:#f5f7fa;font-weight:600;color:#3a4a5c}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.kv th{width:34%%;background:none}
.en{color:#6b7886;font-size:11px}
.sev-critical{color:#b3261e;font-weight:600}
.sev-warn{color:#a15c00}
.chip{display:inline-block;min-width:22px;padding:0 5px;margin-right:3px;border-radius:3px;color:#111;text-align:center}
.muted{color:#6b7886}
.nowrap{white-space:nowrap}
td.clip{max-width:0;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
#alerts-table td:nth-child(2){width:22%%}
#alerts-table td:nth-child(3){width:42%%}
#alerts-table td:nth-child(6){width:16%%}
.maps{display:grid;gap:8px;grid-template-columns:repeat(auto-fill,minmax(420px,1fr))}
footer{padding:4px 14px 10px;color:#6b7886;font-size:11px}
"""


class Raw(str):
    """An HTML fragment written by this package (not escaped again)."""

    def __repr__(self) -> str:
        return f"Raw({str.__repr__(self)})"


def esc(value) -> Raw:
    """Escape any value for HTML text or attribute use (``Raw`` passes through).

    >>> esc('<script>alert(1)</script>')
    Raw('&lt;script&gt;alert(1)&lt;/script&gt;')
    >>> esc(Raw("<b>ok</b>"))
    Raw('<b>ok</b>')
    """
    if isinstance(value, Raw):
        return value
    return Raw(html.escape("" if value is None else str(value), quote=True))


def bi(zh, en) -> Raw:
    """A bilingual label: Chinese, then English in grey (both escaped).

    >>> bi("优", "Excellent")
    Raw('优 <span class="en">Excellent</span>')
    """
    if not zh:
        return esc(en)
    return Raw(f'{esc(zh)} <span class="en">{esc(en)}</span>') if en else esc(zh)


def fmt(x, digits: int = 1, pct: bool = False) -> str:
    """Format a number for a table ("–" for missing).

    >>> fmt(1234.567), fmt(0.25, 1, pct=True), fmt(None), fmt(float("nan"))
    ('1,234.6', '25.0 %', '–', '–')
    """
    if x is None:
        return "–"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not math.isfinite(v):
        return "–"
    if pct:
        return f"{100 * v:,.{digits}f} %"
    if v == int(v) and abs(v) >= 1000:
        return f"{int(v):,}"
    return f"{v:,.{digits}f}"


def data_uri(png: bytes) -> str:
    """A ``data:image/png;base64,...`` URI.

    >>> data_uri(b"abc")
    'data:image/png;base64,YWJj'
    """
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def img(png: bytes, alt: str, ident: str | None = None) -> Raw:
    """An embedded ``<img>`` (``alt`` escaped).

    >>> img(b"abc", "map", "map")[:28]
    '<img id="map" alt="map" src='
    """
    i = f' id="{esc(ident)}"' if ident else ""
    return Raw(f'<img{i} alt="{esc(alt)}" src="{data_uri(png)}">')


def table(headers, rows, *, cls: str | None = None, num: tuple[int, ...] = (), clip: tuple[int, ...] = (),
          ident: str | None = None) -> Raw:
    """A ``<table>``; every cell escaped unless it is :class:`Raw`; ``num`` columns right-aligned,
    ``clip`` columns kept to one line (cut with an ellipsis).

    >>> table(["a", "b"], [[1, Raw("<i>2</i>")]], num=(0,))
    Raw('<table><thead><tr><th class="num">a</th><th>b</th></tr></thead><tbody><tr><td class="num">1</td><td><i>2</i></td></tr></tbody></table>')
    """
    def cell(tag, k, v):
        names = " ".join(n for n, cols in (("num", num), ("clip", clip)) if k in cols and (tag == "td" or n == "num"))
        c = f' class="{names}"' if names else ""
        return f"<{tag}{c}>{esc(v)}</{tag}>"

    head = "".join(cell("th", k, h) for k, h in enumerate(headers))
    body = "".join("<tr>" + "".join(cell("td", k, v) for k, v in enumerate(r)) + "</tr>" for r in rows)
    attrs = (f' class="{esc(cls)}"' if cls else "") + (f' id="{esc(ident)}"' if ident else "")
    thead = f"<thead><tr>{head}</tr></thead>" if headers else ""
    return Raw(f"<table{attrs}>{thead}<tbody>{body}</tbody></table>")


def card(title, content, ident: str | None = None) -> Raw:
    """A titled panel."""
    i = f' id="{esc(ident)}"' if ident else ""
    return Raw(f'<section class="card"{i}><h2>{esc(title)}</h2>{esc(content)}</section>')


def page(title: str, body, *, lang: str = "zh-CN") -> str:
    """The whole document: charset, CSP (no scripts, no external resources), styles, ``body``.

    >>> "<title>a &amp; b</title>" in page("a & b", Raw("<p>x</p>"))
    True
    """
    return ("<!DOCTYPE html>\n"
            f'<html lang="{esc(lang)}"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{CSS % {'font': FONT_STACK}}</style></head>"
            f"<body>{esc(body)}</body></html>\n")


@lru_cache(maxsize=1)
def vocabulary() -> dict:
    """Names of domains, dimensions, departments and grades from ``indicators/`` (zh, en)."""
    from engine.catalog import bundled_path
    from engine.indices import load_config

    base = bundled_path()
    doms = tomllib.loads((base / "domains.toml").read_text(encoding="utf-8"))
    deps = tomllib.loads((base / "departments.toml").read_text(encoding="utf-8"))
    out = {"domain": {}, "dimension": {}, "department": {}, "grade": {}}
    for d in doms.get("domain", []):
        out["domain"][d["id"]] = (d["name_zh"], d["name_en"])
        for dim in d.get("dimensions", []):
            out["dimension"][dim["id"]] = (dim["name_zh"], dim["name_en"])
    for d in deps.get("department", []):
        out["department"][d["id"]] = (d["name_zh"], d["name_en"])
    for g in load_config().grades:
        out["grade"][g.key] = (g.zh, g.en, g.colour)
    return out


def name_of(kind: str, key) -> Raw:
    """Bilingual name of a domain / dimension / department id (the id itself when unknown, escaped).

    >>> name_of("dimension", "epidemic")
    Raw('疫情防控 <span class="en">Epidemic control</span>')
    >>> name_of("dimension", "<x>")
    Raw('&lt;x&gt;')
    """
    v = vocabulary()[kind].get(str(key))
    return bi(v[0], v[1]) if v else esc(key)


def grade_chips(days: dict) -> Raw:
    """Days per grade as coloured chips (优 n 良 n 平稳 n 较差 n).

    >>> "优" in grade_chips({"excellent": 3})
    True
    """
    parts = []
    for key, (zh, en, colour) in vocabulary()["grade"].items():
        n = days.get(key, 0) if isinstance(days, dict) else 0
        parts.append(f'<span class="chip" style="background:{esc(colour)}" title="{esc(en)}">{esc(zh)} {esc(fmt(n, 0))}</span>')
    return Raw("".join(parts))
