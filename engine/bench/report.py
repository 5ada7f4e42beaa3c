"""The benchmark trend report: PNG figures, one HTML index, a text list of changes.

For every machine (never mixing machines) and every benchmark, the history over runs in
commit order is drawn as the median with its min-max and interquartile bands and the
fitted levels of :func:`engine.bench.trend.detect_steps`; beneath it the engine/peer time
ratio and the floor ratio over time when the benchmark has them. Each significant step
is listed as a regression or an improvement. A regression is *current* when it starts
in one of the machine's ``recent`` newest commits (default: the newest) and its level is
still the newest; current regressions of engine benchmarks (not peers, not the floor)
are what ``cityvitals bench trend --fail-on regression`` fails on.

>>> from engine.bench.report import format_findings
>>> format_findings([])
'No significant regressions or improvements.'
"""

from __future__ import annotations

import hashlib
import html
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from engine.bench.machine import Machine
from engine.bench.storage import Result, Run, Storage, load_storage
from engine.bench.trend import Step, Trend, detect_steps

#: Only the newest this many points of a history go into step detection.
MAX_POINTS = 500


@dataclass
class Series:
    """One benchmark's history on one machine, oldest first, with its fitted trend."""

    machine: Machine
    fullname: str
    runs: list[Run]
    results: list[Result]
    trend: Trend
    offset: int = 0  # index of the first point the trend covers

    @property
    def latest(self) -> Result:
        return self.results[-1]

    @property
    def name(self) -> str:
        return self.latest.name

    @property
    def group(self) -> str | None:
        return self.latest.extra_info.get("group", self.latest.group)

    @property
    def role(self) -> str | None:
        return self.latest.role

    @property
    def title(self) -> str:
        g = self.group
        return f"{g}: {self.name}" if g else self.name


@dataclass
class Finding:
    """A significant step of one benchmark on one machine."""

    series: Series
    step: Step
    run: Run  # first run at the new level
    previous: Run  # last run at the old level
    current: bool  # the newest level, begun in the newest commit(s)

    @property
    def kind(self) -> str:
        return self.step.kind

    @property
    def blocking(self) -> bool:
        """Fails ``--fail-on regression``: a current regression of a non-peer, non-floor benchmark."""
        return self.current and self.kind == "regression" and self.series.role not in ("peer", "floor")

    def text(self) -> str:
        """One line for the text list.

        The line reads: kind, change, benchmark, the run where the new level starts, the
        z-score, the machine, and ``[newest]`` for a current step.
        """
        tag = " [newest]" if self.current else ""
        role = f" ({self.series.role})" if self.series.role in ("peer", "floor") else ""
        return (f"{self.kind.upper():<11} {self.step.percent:+7.1f}%  {self.series.title}{role}  "
                f"at {self.run.label} ({self.run.datetime:%Y-%m-%d %H:%M}) after {self.previous.label}  "
                f"z={self.step.z:.1f}  [{self.series.machine.key}]{tag}")


@dataclass
class Report:
    """What :func:`build_report` made."""

    storage: Storage
    series: list[Series]
    findings: list[Finding]
    out_dir: Path | None = None
    index_path: Path | None = None
    figures: dict = field(default_factory=dict)  # (machine key, fullname) -> Path

    @property
    def failing(self) -> list[Finding]:
        """Findings that make ``--fail-on regression`` exit 1."""
        return [f for f in self.findings if f.blocking]

    @property
    def regressions(self) -> list[Finding]:
        return [f for f in self.findings if f.kind == "regression"]

    @property
    def improvements(self) -> list[Finding]:
        return [f for f in self.findings if f.kind == "improvement"]


def _commit_key(run: Run) -> str:
    if run.commit.id is not None and not run.commit.dirty:
        return run.commit.id
    return str(run.path)


def analyse(storage: Storage, *, threshold: float = 0.10, z: float = 3.0, recent: int = 1,
            max_points: int = MAX_POINTS) -> tuple[list[Series], list[Finding]]:
    """Histories, trends and findings of every benchmark on every machine.

    Parameters
    ----------
    storage : Storage
    threshold, z : float
        See :func:`engine.bench.trend.detect_steps`.
    recent : int
        A step is *current* when it begins in one of the machine's ``recent`` newest
        commits (a dirty or commit-less run counts as its own commit).
    max_points : int
        Newest points of each history used for step detection.

    Returns
    -------
    (list of Series, list of Finding)

    Examples
    --------
    >>> from pathlib import Path
    >>> analyse(Storage(Path("."), [], []))
    ([], [])
    """
    if not isinstance(recent, int) or recent < 1:
        raise ValueError(f"recent must be an integer >= 1, got {recent!r}")
    if not isinstance(max_points, int) or max_points < 2:
        raise ValueError(f"max_points must be an integer >= 2, got {max_points!r}")
    all_series: list[Series] = []
    findings: list[Finding] = []
    for machine, runs in storage.by_machine().items():
        keys: list[str] = []
        for r in runs:
            k = _commit_key(r)
            if k in keys:
                keys.remove(k)
            keys.append(k)
        newest_keys = set(keys[-recent:])
        names = sorted({n for r in runs for n in r.results})
        for fullname in names:
            pts = [(r, r.results[fullname]) for r in runs if fullname in r.results]
            pts = [(r, res) for r, res in pts if res.median > 0]
            if not pts:
                continue
            offset = max(0, len(pts) - max_points)
            med = np.array([res.median for _, res in pts[offset:]])
            spr = np.array([res.spread for _, res in pts[offset:]])
            trend = detect_steps(med, spr, threshold=threshold, z=z)
            s = Series(machine, fullname, [r for r, _ in pts], [res for _, res in pts], trend, offset)
            all_series.append(s)
            last = trend.latest_step
            for step in trend.steps:
                i = offset + step.index
                run = s.runs[i]
                current = step is last and _commit_key(run) in newest_keys
                findings.append(Finding(s, step, run, s.runs[i - 1], current))
    findings.sort(key=lambda f: (not f.blocking, f.kind != "regression", not f.current, -abs(math.log(f.step.ratio))))
    return all_series, findings


def format_findings(findings: list[Finding]) -> str:
    """The text list of regressions and improvements (regressions first).

    >>> format_findings([])
    'No significant regressions or improvements.'
    """
    if not findings:
        return "No significant regressions or improvements."
    return "\n".join(f.text() for f in findings)


# ----------------------------------------------------------------------------- figures

def _slug(text: str, n: int = 60) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")[:n] or "x"
    return f"{s}-{hashlib.sha1(text.encode('utf-8')).hexdigest()[:8]}"


def _time_unit(seconds: float) -> tuple[str, float]:
    for unit, scale in (("s", 1.0), ("ms", 1e3), ("µs", 1e6)):
        if seconds >= 1.0 / scale:
            return unit, scale
    return "ns", 1e9


def fmt_time(seconds: float | None) -> str:
    """A duration with a readable unit.

    >>> fmt_time(0.0123), fmt_time(2.5), fmt_time(None)
    ('12.3 ms', '2.5 s', '-')
    """
    if seconds is None or not math.isfinite(seconds):
        return "-"
    unit, scale = _time_unit(seconds)
    v = seconds * scale
    return f"{v:.3g} {unit}" if v < 100 else f"{v:.0f} {unit}"


def _ticks(ax, labels: list[str]) -> None:
    n = len(labels)
    step = max(1, math.ceil(n / 16))
    idx = list(range(0, n, step))
    if idx[-1] != n - 1:
        idx.append(n - 1)
    ax.set_xticks(idx)
    ax.set_xticklabels([labels[i] for i in idx], rotation=30, ha="right", fontsize=7)


def plot_series(series: Series, path: Path) -> Path:
    """Draw one benchmark's history (median with bands, ratios) into ``path`` (PNG).

    Examples
    --------
    >>> import tempfile
    >>> from datetime import datetime, timezone
    >>> from engine.bench.storage import Commit
    >>> runs = [Run(Path(f"{i:04d}_x.json"), i, Machine("X", 2, 2**33), Commit(None, None, False, None, None),
    ...             datetime(2025, 1, i, tzinfo=timezone.utc), {}) for i in (1, 2, 3)]
    >>> results = [Result("test_a", "f::test_a", "g", m, m * 0.9, m * 1.2, m * 0.95, m * 1.05, 9,
    ...                   {"role": "engine", "floor_ratio": 2.0}) for m in (1e-3, 1e-3, 1.3e-3)]
    >>> s = Series(runs[0].machine, "f::test_a", runs, results, detect_steps([1e-3, 1e-3, 1.3e-3]))
    >>> plot_series(s, Path(tempfile.mkdtemp()) / "a.png").read_bytes()[:4]
    b'\x89PNG'
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    res = series.results
    x = np.arange(len(res))
    med = np.array([r.median for r in res])
    unit, scale = _time_unit(float(np.max(med)))
    peer = [r.peer_ratio for r in res]
    floor = [r.floor_ratio for r in res]
    panels = 1 + any(v is not None for v in peer) + any(v is not None for v in floor)
    fig, axes = plt.subplots(panels, 1, figsize=(9, 2.2 + 1.9 * panels), sharex=True, squeeze=False,
                             gridspec_kw={"height_ratios": [2] + [1] * (panels - 1)})
    axes = axes[:, 0]
    ax = axes[0]
    ax.fill_between(x, [r.min * scale for r in res], [r.max * scale for r in res], color="tab:blue",
                    alpha=0.15, label="min-max", step=None)
    ax.fill_between(x, [r.q1 * scale for r in res], [r.q3 * scale for r in res], color="tab:blue",
                    alpha=0.30, label="IQR")
    ax.plot(x, med * scale, "o-", color="tab:blue", ms=3.5, lw=1.2, label="median")
    for k, seg in enumerate(series.trend.segments):
        a, b = series.offset + seg.start, series.offset + seg.stop - 1
        ax.hlines(seg.time * scale, a - 0.3, b + 0.3, colors="black", linestyles="--", lw=1.2,
                  label="fitted level" if k == 0 else None)
    for step in series.trend.steps:
        i = series.offset + step.index
        colour, marker = ("tab:red", "^") if step.kind == "regression" else ("tab:green", "v")
        ax.plot([i], [med[i] * scale], marker=marker, color=colour, ms=10, ls="none")
        ax.annotate(f"{step.percent:+.0f}%", (i, med[i] * scale), textcoords="offset points",
                    xytext=(-8, 10), ha="right", color=colour, fontsize=8, fontweight="bold")
    ax.set_xlim(-0.5, len(res) - 0.5)
    ax.set_ylabel(f"time per call ({unit})")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", ncol=4)
    role = f" [{series.role}]" if series.role else ""
    ax.set_title(f"{series.title}{role}\n{series.machine.label}", fontsize=9)
    k = 1
    for values, label in ((peer, "engine / peer time\n(lower is better)"),
                          (floor, "time / floor time\n(1 = memory limit)")):
        if all(v is None for v in values):
            continue
        a = axes[k]
        k += 1
        a.plot(x, [np.nan if v is None else v for v in values], "o-", ms=3.5, lw=1.2, color="tab:purple")
        a.axhline(1.0, color="grey", lw=0.8, ls=":")
        a.set_ylabel(label, fontsize=8)
        a.set_ylim(bottom=0)
        a.grid(alpha=0.3)
    _ticks(axes[-1], [r.label for r in series.runs])
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_floor(machine: Machine, runs: list[Run], path: Path) -> Path | None:
    """The session's memory-bandwidth floor over runs (GB/s), or ``None`` without data.

    >>> plot_floor(Machine("X", 2, None), [], Path("unused.png")) is None
    True
    """
    pts = [(r, r.floor) for r in runs if r.floor is not None]
    if not pts:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.2))
    x = np.arange(len(pts))
    ax.plot(x, [f.bandwidth_Bps / 1e9 for _, f in pts], "-", lw=6, alpha=0.25, color="black",
            label="floor (the faster copy)")
    ax.plot(x, [f.parallel_Bps / 1e9 for _, f in pts], "o-", ms=3.5, label="parallel copy, all cores")
    ax.plot(x, [f.numpy_Bps / 1e9 for _, f in pts], "s--", ms=3.5, label="one-thread numpy copy")
    ax.set_ylabel("GB/s read + written")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"memory-bandwidth floor per session\n{machine.label}", fontsize=9)
    _ticks(ax, [r.label for r, _ in pts])
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- HTML

_CSS = """body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:left}
th{background:#f3f3f3}.regression{color:#b00020;font-weight:600}.improvement{color:#11772d;font-weight:600}
.num{text-align:right;font-variant-numeric:tabular-nums}img{max-width:100%;border:1px solid #ddd;margin:.3em 0}
code{background:#f5f5f5;padding:0 3px}.muted{color:#666}"""


def _e(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _ratio(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def render_html(report: Report, *, threshold: float, z: float, recent: int) -> str:
    """The HTML index of a report (every text escaped; figures linked by relative path).

    >>> page = render_html(Report(Storage(Path("<store>"), [], []), [], []), threshold=0.1, z=3.0, recent=1)
    >>> page.startswith("<!doctype html>"), "<code>&lt;store&gt;</code>" in page
    (True, True)
    """
    out_dir = report.out_dir or Path(".")
    esc = _e
    parts = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>cityvitals benchmark trends</title>", f"<style>{_CSS}</style></head><body>",
             "<h1>cityvitals benchmark trends</h1>",
             f'<p class="muted">Storage <code>{esc(report.storage.root)}</code>; {len(report.storage.runs)} runs; '
             f"generated {esc(datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC'))}. A step is reported when "
             f"it is at least {esc(f'{threshold:.0%}')} and {esc(z)} times the runs' noise; "
             f"<em>newest</em> = begun in the newest {esc(recent)} commit(s).</p>"]
    parts.append("<h2>Regressions and improvements</h2>")
    if report.findings:
        parts.append("<table><tr><th>change</th><th>benchmark</th><th>machine</th><th>from</th><th>to</th>"
                     "<th>z</th><th></th></tr>")
        for f in report.findings:
            anchor = _slug(f.series.machine.key + "::" + f.series.fullname)
            parts.append(
                f'<tr><td class="{esc(f.kind)} num">{esc(f"{f.step.percent:+.1f}%")} {esc(f.kind)}</td>'
                f'<td><a href="#{esc(anchor)}">{esc(f.series.title)}</a>'
                f'{esc(" (" + f.series.role + ")") if f.series.role in ("peer", "floor") else ""}</td>'
                f"<td>{esc(f.series.machine.key)}</td><td>{esc(f.previous.label)}</td><td>{esc(f.run.label)}</td>"
                f'<td class="num">{esc(f"{f.step.z:.1f}")}</td>'
                f"<td>{'<b>newest</b>' if f.current else ''}{' — fails the check' if f.blocking else ''}</td></tr>")
        parts.append("</table>")
    else:
        parts.append("<p>No significant regressions or improvements.</p>")
    if report.storage.skipped:
        parts.append("<h3>Files skipped</h3><ul>")
        parts.extend(f"<li><code>{esc(p)}</code>: {esc(why)}</li>" for p, why in report.storage.skipped)
        parts.append("</ul>")
    by_machine: dict[Machine, list[Series]] = {}
    for s in report.series:
        by_machine.setdefault(s.machine, []).append(s)
    for machine, runs in report.storage.by_machine().items():
        parts.append(f"<h2>Machine: {esc(machine.label)}</h2>")
        parts.append(f'<p class="muted">key <code>{esc(machine.key)}</code>; {len(runs)} runs from '
                     f"{esc(runs[0].datetime.strftime('%Y-%m-%d %H:%M'))} to "
                     f"{esc(runs[-1].datetime.strftime('%Y-%m-%d %H:%M'))} UTC, in commit order. "
                     "Runs of other machines are never mixed into these histories.</p>")
        floor_png = report.figures.get((machine.key, "__floor__"))
        if floor_png:
            parts.append(f'<img src="{esc(floor_png.relative_to(out_dir).as_posix())}" '
                         f'alt="{esc("memory-bandwidth floor on " + machine.label)}">')
        parts.append("<details><summary>Runs</summary><table><tr><th>run</th><th>date (UTC)</th><th>commit</th>"
                     "<th>branch</th><th>message</th><th>floor GB/s</th></tr>")
        for r in runs:
            parts.append(f"<tr><td>{esc(r.label)}</td><td>{esc(r.datetime.strftime('%Y-%m-%d %H:%M'))}</td>"
                         f"<td><code>{esc(r.commit.id or 'none')}</code>{' (dirty)' if r.commit.dirty else ''}</td>"
                         f"<td>{esc(r.commit.branch)}</td><td>{esc(r.commit.message)}</td>"
                         f'<td class="num">{esc(_ratio(r.floor.bandwidth_Bps / 1e9, 1) if r.floor else "-")}</td></tr>')
        parts.append("</table></details>")
        ss = by_machine.get(machine, [])
        parts.append("<table><tr><th>benchmark</th><th>role</th><th>runs</th><th>latest median</th>"
                     "<th>engine/peer</th><th>floor ratio</th><th>latest step</th></tr>")
        for s in ss:
            anchor = _slug(machine.key + "::" + s.fullname)
            step = s.trend.latest_step
            status = "-" if step is None else f'<span class="{esc(step.kind)}">{esc(f"{step.percent:+.1f}%")} ' \
                                               f"{esc(step.kind)} at {esc(s.runs[s.offset + step.index].label)}</span>"
            parts.append(f'<tr><td><a href="#{esc(anchor)}">{esc(s.title)}</a></td><td>{esc(s.role or "-")}</td>'
                         f'<td class="num">{len(s.results)}</td><td class="num">{esc(fmt_time(s.latest.median))}</td>'
                         f'<td class="num">{esc(_ratio(s.latest.peer_ratio))}</td>'
                         f'<td class="num">{esc(_ratio(s.latest.floor_ratio))}</td><td>{status}</td></tr>')
        parts.append("</table>")
        for s in ss:
            anchor = _slug(machine.key + "::" + s.fullname)
            parts.append(f'<h3 id="{esc(anchor)}">{esc(s.title)}</h3>'
                         f'<p class="muted"><code>{esc(s.fullname)}</code>'
                         f'{esc("; size " + s.latest.extra_info["size"]) if isinstance(s.latest.extra_info.get("size"), str) else ""}</p>')
            png = report.figures.get((machine.key, s.fullname))
            if png:
                parts.append(f'<img src="{esc(png.relative_to(out_dir).as_posix())}" alt="{esc("history of " + s.title)}">')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def build_report(storage, out_dir=None, *, threshold: float = 0.10, z: float = 3.0, recent: int = 1,
                 plots: bool = True) -> Report:
    """Analyse a storage folder and, with ``out_dir``, write the figures, HTML and text list.

    Parameters
    ----------
    storage : str, Path or Storage
        pytest-benchmark storage folder (or an already loaded :class:`Storage`).
    out_dir : str or Path, optional
        Where ``index.html``, ``changes.txt`` and the PNGs go (created); nothing is
        written when ``None``.
    threshold, z, recent
        See :func:`analyse`.
    plots : bool
        Draw the PNG figures (the HTML then links them).

    Returns
    -------
    Report

    Examples
    --------
    >>> import tempfile
    >>> rep = build_report(tempfile.mkdtemp(), None)
    >>> rep.findings, rep.failing
    ([], [])
    """
    st = storage if isinstance(storage, Storage) else load_storage(storage)
    series, findings = analyse(st, threshold=threshold, z=z, recent=recent)
    report = Report(storage=st, series=series, findings=findings)
    if out_dir is None:
        return report
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out must be a folder, but {str(out)!r} is a file")
    out.mkdir(parents=True, exist_ok=True)
    report.out_dir = out
    if plots:
        for machine, runs in st.by_machine().items():
            mdir = out / _slug(machine.key, 40)
            p = plot_floor(machine, runs, mdir / "memory-bandwidth-floor.png")
            if p is not None:
                report.figures[(machine.key, "__floor__")] = p
        for s in series:
            p = out / _slug(s.machine.key, 40) / f"{_slug(s.fullname)}.png"
            report.figures[(s.machine.key, s.fullname)] = plot_series(s, p)
    (out / "changes.txt").write_text(format_findings(findings) + "\n", encoding="utf-8")
    report.index_path = out / "index.html"
    report.index_path.write_text(render_html(report, threshold=threshold, z=z, recent=recent), encoding="utf-8")
    return report
