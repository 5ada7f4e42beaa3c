"""Side-by-side comparison of scenario runs: ``compare.html`` (self-contained) and ``compare.csv``.

The table has one row per run (CSV) and one column per run (HTML): peak prevalence,
cumulative infections, days in each grade, economic activity recovered (enterprise operation,
footfall, power use), mean health (overall and per domain), alerts in total and by dimension,
and the worst neighbourhoods. The plots overlay the runs: epidemic curves with ensemble bands,
domain scores over time, recovery curves, and risk maps at chosen dates.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from engine.report import figures as F
from engine.report.html import Raw, bi, card, esc, fmt, grade_chips, img, name_of, page, table, vocabulary
from engine.report.run import DOMAINS, RunFolderError, load_run, resolve_city

GRADES = ("excellent", "good", "stable", "poor")


def _num(run, section: str, key: str):
    sec = run.summary.get(section)
    if not isinstance(sec, dict) or key not in sec:
        raise RunFolderError(f"{run.path}: summary.json: missing {section}.{key}; expected a number")
    v = sec[key]
    try:
        return float(v)
    except (TypeError, ValueError):
        raise RunFolderError(f"{run.path}: summary.json: {section}.{key} = {v!r}; expected a number") from None


def _row(run, label: str) -> dict:
    s = run.summary
    h = s["health"] if isinstance(s.get("health"), dict) else {}
    days = h.get("days_in_grade")
    if not isinstance(days, dict):
        raise RunFolderError(f"{run.path}: summary.json: missing health.days_in_grade; expected "
                             f"{{{', '.join(GRADES)}}} day counts")
    dom = h.get("by_domain") if isinstance(h.get("by_domain"), dict) else {}
    alerts = s["alerts"] if isinstance(s.get("alerts"), dict) else {}
    by_dim = alerts.get("by_dimension") if isinstance(alerts.get("by_dimension"), dict) else {}
    row = {
        "run": label, "folder": run.path.name, "scenario": str(s.get("scenario", "")),
        "peak_prevalence": _num(run, "epidemic", "peak_prevalence"),
        "peak_date": str(s["epidemic"].get("peak_date", "")),
        "cumulative_infections": _num(run, "epidemic", "cumulative_infections"),
        **{f"days_{g}": int(days.get(g, 0)) for g in GRADES},
        "enterprise_operation_recovered": _num(run, "economy", "enterprise_operation_recovered"),
        "footfall_recovered": _num(run, "economy", "footfall_recovered"),
        "power_use_recovered": _num(run, "economy", "power_use_recovered"),
        "mean_health": _num(run, "health", "mean_overall"),
        **{f"health_{d}": float(dom.get(d, float("nan"))) for d in DOMAINS},
        "alerts_total": int(alerts.get("total", sum(int(v) for v in by_dim.values()))),
    }
    dims = list(vocabulary()["dimension"]) + sorted(str(k) for k in by_dim if str(k) not in vocabulary()["dimension"])
    row.update({f"alerts_{d}": int(by_dim.get(d, 0)) for d in dims})
    worst = [w for w in s.get("worst_neighbourhoods", []) if isinstance(w, dict)]
    row["worst_neighbourhoods"] = "; ".join(f"{w.get('name', '')} ({w.get('region', '')}) {fmt(w.get('health'), 1)}"
                                            for w in worst)
    return row


def compare_table(runs) -> pd.DataFrame:
    """One row per run with the compared figures (the columns of ``compare.csv``).

    Parameters
    ----------
    runs : list of Run or of paths

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    RunFolderError
        A folder that is not a run, or a summary without a compared figure.

    Examples
    --------
    >>> import sys, tempfile; sys.path.insert(0, "tests")
    >>> from run_fixture import write_run
    >>> with tempfile.TemporaryDirectory() as d:
    ...     t = compare_table([write_run(f"{d}/a", scenario="a"), write_run(f"{d}/b", scenario="b", severity=2)])
    >>> t["run"].tolist(), bool(t["cumulative_infections"].iloc[1] > t["cumulative_infections"].iloc[0])
    (['a', 'b'], True)
    """
    runs = [r if hasattr(r, "summary") else load_run(r) for r in runs]
    labels = _unique_labels(runs)
    rows = [_row(r, lab) for r, lab in zip(runs, labels)]
    cols = list(dict.fromkeys(k for r in rows for k in r))
    df = pd.DataFrame(rows)
    for c in cols:
        if c.startswith("alerts_"):
            df[c] = df[c].fillna(0).astype(int)
    return df[cols]


def _unique_labels(runs) -> list[str]:
    base = [r.label for r in runs]
    out = [b if base.count(b) == 1 else f"{b} ({r.path.name})" for b, r in zip(base, runs)]
    seen: dict[str, int] = {}
    for k, lab in enumerate(out):  # same scenario and folder name in different parents
        seen[lab] = seen.get(lab, 0) + 1
        if seen[lab] > 1:
            out[k] = f"{lab} #{seen[lab]}"
    return out


def compare_runs(run_dirs, out, *, at=(), city=None) -> Path:
    """Compare runs: write ``out/compare.html``, ``out/compare.csv`` and ``out/figures/*.png``.

    Parameters
    ----------
    run_dirs : list of str or Path
        Run folders (at least one).
    out : str or Path
        Output folder (created).
    at : sequence of timestamp-like
        Dates of the risk maps (one map per run and date); default the last cycle of each run.
        Each must lie inside every run.
    city : City, optional
        The city of every run; default per run (see :func:`engine.report.run.resolve_city`).

    Returns
    -------
    Path
        ``out/compare.html``.

    Raises
    ------
    RunFolderError
        Before anything is written: a folder that is not a run, a missing or malformed file,
        a date outside a run.

    Examples
    --------
    >>> import sys, tempfile; sys.path.insert(0, "tests")
    >>> from run_fixture import write_run
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = compare_runs([write_run(f"{d}/a", scenario="a"), write_run(f"{d}/b", scenario="b", severity=2)],
    ...                      f"{d}/cmp", at=["2020-03-02"])
    ...     sorted(x.name for x in p.parent.iterdir())
    ['compare.csv', 'compare.html', 'figures']
    """
    if not run_dirs:
        raise RunFolderError("no run folders given; expected at least one RUN_DIR")
    runs = [load_run(p) for p in run_dirs]
    dates = list(at) or [None]
    slots = [[r.time_index(d) for d in dates] for r in runs]  # validates every date against every run
    for r in runs:  # fail on a malformed file before writing anything
        r.epidemic, r.economy, r.values  # noqa: B018 - loads and checks
    cities = [resolve_city(r, city) for r in runs]
    tab = compare_table(runs)
    labels = tab["run"].tolist()
    figs = {"epidemic": F.save_png(F.epidemic_figure(runs, w=11, h=3.2)),
            "domains": F.save_png(F.domain_figure(runs, cities, w=13, h=3.0)),
            "recovery": F.save_png(F.recovery_figure(runs, w=11, h=3.0))}
    maps = []
    for k, (run, c) in enumerate(zip(runs, cities)):
        for j, t in enumerate(slots[k]):
            when = pd.Timestamp(run.times[t])
            title = f"{F.plain(labels[k])} · {when:%Y-%m-%d %H:%M}"
            maps.append((labels[k], when, f"map-{k + 1}-{j + 1}", F.save_png(F.map_figure(run, c, when, title=title), tight=True)))
    out = Path(out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    for name, data in figs.items():
        (out / "figures" / f"{name}.png").write_bytes(data)
    for _, _, name, data in maps:
        (out / "figures" / f"{name}.png").write_bytes(data)
    tab.to_csv(out / "compare.csv", index=False, float_format="%.6g")
    html_path = out / "compare.html"
    html_path.write_text(compare_html(runs, tab, figs, maps), encoding="utf-8")
    return html_path


def compare_html(runs, tab: pd.DataFrame, figs: dict, maps: list) -> str:
    """The comparison page (table with one column per run, then the plots)."""
    labels = tab["run"].tolist()
    rows = []

    def add(label, key, f=lambda v: fmt(v, 1)):
        rows.append([label, *[f(v) for v in tab[key]]])

    add(bi("峰值现患率", "Peak prevalence"), "peak_prevalence", lambda v: fmt(v, 2, pct=True))
    add(bi("峰值日期", "Peak date"), "peak_date", str)
    add(bi("累计感染", "Cumulative infections"), "cumulative_infections", lambda v: fmt(v, 0))
    for g in GRADES:
        zh, en, _ = vocabulary()["grade"].get(g, (g, g, ""))
        add(Raw(f"{bi('等级天数', 'Days')} {esc(zh)} <span class=\"en\">{esc(en)}</span>"), f"days_{g}", lambda v: fmt(v, 0))
    add(bi("企业开工 %", "Enterprise operation recovered"), "enterprise_operation_recovered")
    add(bi("客流 %", "Footfall recovered"), "footfall_recovered")
    add(bi("用电 %", "Power use recovered"), "power_use_recovered")
    add(bi("平均健康分", "Mean health"), "mean_health")
    for d in DOMAINS:
        add(Raw(f"&nbsp;&nbsp;{name_of('domain', d)}"), f"health_{d}")
    add(bi("告警合计", "Alerts, total"), "alerts_total", lambda v: fmt(v, 0))
    for c in tab.columns:
        if c.startswith("alerts_") and c != "alerts_total" and tab[c].any():
            add(Raw(f"&nbsp;&nbsp;{name_of('dimension', c[len('alerts_'):])}"), c, lambda v: fmt(v, 0))
    rows.append([bi("最差社区", "Worst neighbourhoods"),
                 *[Raw("<br>".join(str(esc(x)) for x in str(v).split("; ") if x)) for v in tab["worst_neighbourhoods"]]])
    chips = [grade_chips({g: r[f"days_{g}"] for g in GRADES}) for _, r in tab.iterrows()]
    rows.insert(3 + len(GRADES), [bi("等级", "Grades"), *chips])
    num = tuple(range(1, len(labels) + 1))
    main_table = table(["", *labels], rows, num=num, ident="compare-table")
    folders = table(["情景 Run", "目录 Folder", "时段 Period"],
                    [[lab, str(r.path), _span(r)] for lab, r in zip(labels, runs)])
    map_imgs = Raw("".join(
        f"<figure>{img(png, f'risk map {lab} {when:%Y-%m-%d %H:%M}', name)}</figure>" for lab, when, name, png in maps))
    body = Raw(
        f"<header><h1>情景对比 Scenario comparison</h1><div class=\"sub\">{esc(' · '.join(labels))}</div></header>"
        f'<main style="grid-template-columns:minmax(380px,2fr) 3fr">'
        f'<div class="col">{card("对比 Comparison", main_table, "comparison")}{card("运行 Runs", folders)}</div>'
        f'<div class="col">{card("疫情 Epidemic", img(figs["epidemic"], "epidemic curves", "epidemic"))}'
        f'{card("四大领域 Domain scores", img(figs["domains"], "domain scores", "domains"))}'
        f'{card("复工复产 Recovery", img(figs["recovery"], "economic recovery", "recovery"))}</div></main>'
        f'<main style="grid-template-columns:1fr">{card("风险分区 Risk maps", Raw(f"<div class=maps>{map_imgs}</div>"))}</main>'
        "<footer>cityvitals compare</footer>")
    return page("情景对比 Scenario comparison · cityvitals", body)


def _span(run) -> str:
    t = run.times
    return f"{t[0]:%Y-%m-%d %H:%M} – {t[-1]:%Y-%m-%d %H:%M}" if len(t) else "–"
