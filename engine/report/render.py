"""``render_report``: the one-screen ``report.html`` of a run folder, with ``figures/*.png``.

The page shows the risk map, the four domain scores, the top alerts, the epidemic and recovery
curves and a summary table. It is one self-contained file (images as data URIs), escapes every
text read from the run, and is byte-identical when rendered twice from the same folder.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from engine.report import figures as F
from engine.report.html import Raw, bi, card, esc, fmt, grade_chips, img, name_of, page, table, vocabulary
from engine.report.run import DOMAINS, Run, load_run, resolve_city

FIGURES = ("map", "domains", "epidemic", "recovery")
SEVERITY_ORDER = {"critical": 0, "warn": 1}


#: the figures that read only ``epidemic.parquet`` and ``economy.parquet`` (:func:`early_figures`)
EARLY_FIGURES = ("epidemic", "recovery")


def early_figures(run_dir) -> dict:
    """PNG bytes of the report's figures that need only ``epidemic.parquet`` and ``economy.parquet``
    (:data:`EARLY_FIGURES`): a run makes them while its last stores are still written, and hands
    them to :func:`render_report` (``pngs``). The same bytes :func:`render_report` makes from the
    finished folder (a figure of one run reads nothing else of it).

    Parameters
    ----------
    run_dir : str or Path
        A run folder being written: ``epidemic.parquet`` and ``economy.parquet`` must be there
        (``summary.json`` need not).

    Returns
    -------
    dict
        ``{"epidemic": bytes, "recovery": bytes}``.
    """
    run = Run(path=Path(run_dir), summary={}, truth={})
    return {"epidemic": F.save_png(F.epidemic_figure(run)), "recovery": F.save_png(F.recovery_figure(run))}


def render_report(run_dir, city=None, *, at=None, top_alerts: int = 12, pngs: dict | None = None) -> Path:
    """Write ``report.html`` and ``figures/{map,domains,epidemic,recovery}.png`` into a run folder.

    Parameters
    ----------
    run_dir : str or Path
        A run folder (see docs/report.md).
    city : City, optional
        For the map; default ``run_dir/city`` when saved there, else the synthetic city named in
        ``summary.json`` (``city.synthetic``), else a tile map without geometry.
    at : timestamp-like, optional
        Cycle of the risk map (the cycle at or just before it); default the last.
    top_alerts : int
        Rows of the alerts table.
    pngs : dict, optional
        Figures already made from this folder's files (:func:`early_figures`, or any of
        :data:`FIGURES` drawn from the same folder with the same ``city``), used as they are.

    Returns
    -------
    Path
        ``run_dir/report.html``.

    Raises
    ------
    RunFolderError
        Not a run folder, a missing or malformed file, ``at`` outside the run.
    ValueError
        ``pngs`` names a figure not in :data:`FIGURES`.

    Examples
    --------
    >>> import sys, tempfile; sys.path.insert(0, "tests")
    >>> from run_fixture import write_run
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = render_report(write_run(d))
    ...     sorted(p.name for p in (path.parent / "figures").iterdir()), path.name
    (['domains.png', 'epidemic.png', 'map.png', 'recovery.png'], 'report.html')
    """
    given = dict(pngs or {})
    if set(given) - set(FIGURES):
        raise ValueError(f"pngs: only {list(FIGURES)} can be given, got {sorted(given)}")
    if at is not None and "map" in given:
        raise ValueError("pngs: a map given is the last cycle's; give at=None with it")
    run = load_run(run_dir)
    run.time_index(at)
    run.alerts, run.epidemic, run.economy, run.values  # noqa: B018 - read and checked before writing
    city = resolve_city(run, city)
    pngs = {
        "map": given["map"] if "map" in given else F.save_png(F.map_figure(run, city, at), tight=True),
        "domains": given["domains"] if "domains" in given else F.save_png(F.domain_figure(run, [city])),
        "epidemic": given["epidemic"] if "epidemic" in given else F.save_png(F.epidemic_figure(run)),
        "recovery": given["recovery"] if "recovery" in given else F.save_png(F.recovery_figure(run)),
    }
    figdir = run.path / "figures"
    figdir.mkdir(exist_ok=True)
    for name, data in pngs.items():
        (figdir / f"{name}.png").write_bytes(data)
    out = run.path / "report.html"
    out.write_text(report_html(run, pngs, at=at, top_alerts=top_alerts), encoding="utf-8")
    return out


def report_html(run: Run, pngs: dict, *, at=None, top_alerts: int = 12) -> str:
    """The report page for ``run`` with the figure PNG bytes ``pngs`` (keys of :data:`FIGURES`)."""
    s = run.summary
    when = pd.Timestamp(run.times[run.time_index(at)]).strftime("%Y-%m-%d %H:%M")
    title = s.get("title") or run.label
    col1 = Raw(card(Raw(f"风险分区 Risk map · {esc(when)}"), img(pngs["map"], f"risk map {when}", "risk-map"))
               + card("概况 Summary", summary_table(run), "summary"))
    col2 = Raw(card("四大领域 Domain scores", img(pngs["domains"], "domain scores", "domains"))
               + card("疫情 Epidemic", img(pngs["epidemic"], "epidemic curves", "epidemic"))
               + card("复工复产 Recovery", img(pngs["recovery"], "economic recovery", "recovery")))
    col3 = Raw(card("重点告警 Top alerts", alerts_table(run, top_alerts), "alerts")
               + card("告警分布 Alerts by dimension", alerts_by_dimension(s.get("alerts", {})))
               + card("最差社区 Worst neighbourhoods", worst_table(s.get("worst_neighbourhoods", []))))
    body = Raw(f"<header><h1>{esc(title)}</h1><div class=\"sub\">{esc(_period(s))}</div>"
               f"<div class=\"kpis\">{kpis(s)}</div></header>"
               f'<main class="report"><div class="col">{col1}</div><div class="col">{col2}</div>'
               f'<div class="col">{col3}</div></main>'
               f"<footer>cityvitals · {esc(run.label)} · {esc(_city_line(s))}</footer>")
    return page(f"{title} · cityvitals", body)


def _period(s: dict) -> str:
    p = s.get("period") or {}
    start, end = str(p.get("start", ""))[:16].replace("T", " "), str(p.get("end", ""))[:16].replace("T", " ")
    cyc = p.get("cycle")
    return f"{start} – {end}" + (f" · {cyc}" if cyc else "")


def _city_line(s: dict) -> str:
    c = s.get("city") or {}
    return (f"{fmt(c.get('neighbourhoods'), 0)} neighbourhoods · population {fmt(c.get('population'), 0)} · "
            f"city {str(c.get('fingerprint', ''))[:12]}")


def kpis(s: dict) -> Raw:
    """The header figures: peak prevalence, infections, mean health, alerts, enterprises open."""
    e, h, a, eco = s.get("epidemic", {}), s.get("health", {}), s.get("alerts", {}), s.get("economy", {})
    items = [(fmt(e.get("peak_prevalence"), 2, pct=True), "峰值现患率 peak prevalence"),
             (fmt(e.get("cumulative_infections"), 0), "累计感染 infections"),
             (fmt(h.get("mean_overall"), 1), "平均健康分 mean health"),
             (fmt(a.get("total"), 0), "告警 alerts"),
             (fmt(eco.get("enterprise_operation_recovered"), 0) + " %", "企业开工 enterprises open")]
    return Raw("".join(f'<div class="kpi"><b>{esc(v)}</b><span>{esc(k)}</span></div>' for v, k in items))


def summary_table(run: Run) -> Raw:
    """Key-value table of the run's summary."""
    s = run.summary
    e, h, eco, det = s.get("epidemic", {}), s.get("health", {}), s.get("economy", {}), s.get("detection") or {}
    c = s.get("city") or {}
    dom = h.get("by_domain") or {}
    rows = [
        (bi("情景", "Scenario"), Raw(f"{esc(run.label)} <span class=\"en\">seeds {esc(', '.join(map(str, s.get('seeds', []))))}</span>")),
        (bi("城市", "City"), f"{fmt(c.get('neighbourhoods'), 0)} 社区 · {fmt(c.get('population'), 0)} 人"),
        (bi("峰值现患率", "Peak prevalence"), f"{fmt(e.get('peak_prevalence'), 2, pct=True)} · {e.get('peak_date', '–')}"),
        (bi("累计感染", "Cumulative infections"), fmt(e.get("cumulative_infections"), 0)),
        (bi("企业开工", "Enterprise operation"), f"{fmt(eco.get('enterprise_operation_recovered'), 1)} %"),
        (bi("客流", "Footfall"), f"{fmt(eco.get('footfall_recovered'), 1)} %"),
        (bi("用电", "Power use"), f"{fmt(eco.get('power_use_recovered'), 1)} %"),
        (bi("平均健康分", "Mean health"), Raw(f"<b>{esc(fmt(h.get('mean_overall'), 1))}</b> · "
                                         + " · ".join(f"{esc(vocabulary()['domain'].get(d, (d,))[0])} {esc(fmt(dom.get(d), 1))}"
                                                      for d in DOMAINS))),
        (bi("等级天数", "Days in grade"), grade_chips(h.get("days_in_grade") or {})),
        (bi("检测", "Detection"), f"recall {fmt(det.get('recall'), 2)} · precision {fmt(det.get('precision'), 2)} · "
                                  f"median {fmt(det.get('median_detect_cycles'), 1)} cycles"),
    ]
    if s.get("runtime_s") is not None:
        rows.append((bi("运行时间", "Runtime"), f"{fmt(s.get('runtime_s'), 1)} s"))
    return table([], rows, cls="kv", ident="summary-table")


def top_alerts(run: Run, n: int = 12) -> pd.DataFrame:
    """The ``n`` most serious firing alerts: critical first, then by score (desc), time, ids.

    Examples
    --------
    >>> import sys, tempfile; sys.path.insert(0, "tests")
    >>> from run_fixture import write_run
    >>> from engine.report.run import load_run
    >>> with tempfile.TemporaryDirectory() as d:
    ...     df = top_alerts(load_run(write_run(d)), 3)
    >>> df["severity"].tolist()
    ['critical', 'critical', 'critical']
    """
    a = run.alerts
    a = a[a["state"].astype(str) == "firing"].copy()
    a["_sev"] = a["severity"].astype(str).map(SEVERITY_ORDER).fillna(9)
    a["_score"] = pd.to_numeric(a["score"], errors="coerce").fillna(-1.0)
    a = a.sort_values(["_sev", "_score", "time", "indicator", "region"], ascending=[True, False, True, True, True],
                      kind="stable")
    return a.head(n).drop(columns=["_sev", "_score"])


def alerts_table(run: Run, n: int = 12) -> Raw:
    """HTML table of :func:`top_alerts`."""
    a = top_alerts(run, n)
    if a.empty:
        return Raw('<p class="muted">无告警 No firing alerts</p>')
    rows = []
    for r in a.itertuples(index=False):
        sev = str(r.severity)
        owner = vocabulary()["department"].get(str(r.owner), (str(r.owner), ""))
        rows.append([
            Raw(f'<span class="nowrap">{esc(pd.Timestamp(r.time).strftime("%m-%d %H:%M"))}</span>'),
            _tip(r.region_name, r.region),
            _tip(r.name_zh or r.name_en, f"{r.name_en} · {r.indicator}"),
            Raw(f'<span class="sev-{esc(sev)}">{esc(sev)}</span>'),
            fmt(r.value, 1),
            _tip(owner[0], owner[1]),
        ])
    return table(["时间 Time", "社区 Area", "指标 Indicator", "级别", "值", "部门 Owner"], rows,
                 num=(4,), clip=(1, 2, 5), ident="alerts-table")


def _tip(text, tip) -> Raw:
    """``text`` with ``tip`` as its hover title (both escaped)."""
    return Raw(f'<span title="{esc(tip)}">{esc(text)}</span>')


def alerts_by_dimension(alerts: dict) -> Raw:
    """Alert counts by dimension (largest first) and the total."""
    by = alerts.get("by_dimension") or {}
    items = sorted(by.items(), key=lambda kv: (-int(kv[1] or 0), str(kv[0])))
    rows = [[name_of("dimension", k), fmt(v, 0)] for k, v in items]
    rows.append([Raw("<b>合计 Total</b>"), fmt(alerts.get("total"), 0)])
    return table(["维度 Dimension", "告警 Alerts"], rows, num=(1,))


def worst_table(worst: list) -> Raw:
    """The worst neighbourhoods by overall health."""
    rows = [[w.get("name", ""), w.get("region", ""), fmt(w.get("health"), 1)] for w in worst if isinstance(w, dict)]
    if not rows:
        return Raw('<p class="muted">–</p>')
    return table(["社区 Name", "编号 Id", "健康分 Health"], rows, num=(2,))
