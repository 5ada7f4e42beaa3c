"""Report figures: epidemic curves, domain scores, economic recovery, the risk map.

Every function takes one run or a list of runs (:class:`engine.report.run.Run`) and returns a
matplotlib :class:`~matplotlib.figure.Figure` not attached to pyplot; :func:`save_png` writes it
deterministically (fixed dpi, no software tag or timestamp). Labels are bilingual when a CJK font
is installed (``fonts-noto-cjk``), English otherwise. Text read from a run (scenario names) is
drawn literally, never as mathtext.

>>> fig = empty_figure("no data")
>>> len(save_png(fig)) > 100
True
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd

from engine.report.run import DOMAINS, Run, base_regions, district_series

DPI = 110
DOMAIN_LABELS = {"safety": ("大平安", "Safety"), "construction": ("大建管", "Construction"),
                 "market": ("大市场", "Market"), "livelihood": ("大民生", "Livelihood")}
DOMAIN_COLOURS = {"safety": "#1f77b4", "construction": "#8c564b", "market": "#9467bd", "livelihood": "#17becf"}
ECONOMY = (("enterprise_operation", "企业开工", "Enterprise operation"), ("footfall", "客流", "Footfall"),
           ("power_use", "用电", "Power use"))
RUN_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def _font() -> str | None:
    try:
        from engine.maps import cjk_font
    except ImportError:  # pragma: no cover - maps not in this checkout
        return None
    return cjk_font()


def _rc() -> dict:
    font = _font()
    return {"font.family": [font, "DejaVu Sans"] if font else ["DejaVu Sans"], "font.size": 9,
            "axes.unicode_minus": False, "axes.spines.top": False, "axes.spines.right": False,
            "svg.hashsalt": "cityvitals", "path.simplify": False}


def _label(zh: str, en: str) -> str:
    return f"{zh} {en}" if _font() else en


def plain(text) -> str:
    """``text`` made safe for a matplotlib label: ``$`` escaped so it is never mathtext.

    >>> print(plain("a $x$ b"))
    a \\$x\\$ b
    """
    return str(text).replace("$", r"\$")


def _figure(w: float, h: float, ncols: int = 1):
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(_rc()):
        fig = Figure(figsize=(w, h), dpi=DPI, layout="constrained")
        axes = fig.subplots(1, ncols, squeeze=False)[0]
    fig._cityvitals_rc = _rc()
    return fig, list(axes)


def _runs(runs) -> list[Run]:
    return [runs] if isinstance(runs, Run) else list(runs)


def _labels(runs: list[Run]) -> list[str]:
    """Run labels made unique (the folder name is added to repeated scenario names)."""
    base = [r.label for r in runs]
    return [plain(b if base.count(b) == 1 else f"{b} ({r.path.name})") for b, r in zip(base, runs)]


def _date_axis(ax) -> None:
    import matplotlib.dates as mdates

    loc = mdates.AutoDateLocator(minticks=3, maxticks=7)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc, show_offset=False))
    ax.grid(True, color="#e6e6e6", linewidth=0.6)
    ax.set_axisbelow(True)


def empty_figure(message: str, w: float = 6.0, h: float = 2.5):
    """A placeholder figure that says what is missing.

    >>> empty_figure("no alerts").texts[0].get_text()
    'no alerts'
    """
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(_rc()):
        fig = Figure(figsize=(w, h), dpi=DPI)
        fig.text(0.5, 0.5, plain(message), ha="center", va="center", color="#666666")
    fig._cityvitals_rc = _rc()
    return fig


def epidemic_figure(runs, *, w: float = 6.4, h: float = 2.5):
    """Prevalence and new infections per day: the median over seeds and, with several seeds, the
    5-95 % band; one colour per run.

    Parameters
    ----------
    runs : Run or list of Run

    Returns
    -------
    matplotlib.figure.Figure
        Two axes: prevalence per 10,000 residents, and new infections per day.

    Examples
    --------
    >>> import sys, tempfile; sys.path.insert(0, "tests")
    >>> from run_fixture import write_run
    >>> from engine.report.run import load_run
    >>> with tempfile.TemporaryDirectory() as d:
    ...     fig = epidemic_figure(load_run(write_run(d)))
    >>> [ax.get_ylabel() for ax in fig.axes][1].endswith("New infections / day")
    True
    """
    import matplotlib

    runs = _runs(runs)
    fig, (a1, a2) = _figure(w, h, 2)
    with matplotlib.rc_context(_rc()):
        for k, (run, label) in enumerate(zip(runs, _labels(runs))):
            df = run.epidemic
            colour = RUN_COLOURS[k % len(RUN_COLOURS)]
            for ax, col, scale in ((a1, "prevalence", 1e4), (a2, "new_infections", 1.0)):
                wide = df.pivot_table(index="date", columns="seed", values=col, aggfunc="first").sort_index() * scale
                x = wide.index.to_numpy()
                ax.plot(x, wide.median(axis=1).to_numpy(), color=colour, linewidth=1.6,
                        label=label if len(runs) > 1 else _label("中位数", "median"))
                if wide.shape[1] > 1:
                    lo, hi = wide.quantile(0.05, axis=1).to_numpy(), wide.quantile(0.95, axis=1).to_numpy()
                    ax.fill_between(x, lo, hi, color=colour, alpha=0.18, linewidth=0,
                                    label=None if len(runs) > 1 else _label("5-95% 区间", "5-95 % band"))
        a1.set_ylabel(_label("现患率 (每万人)", "Prevalence / 10k"))
        a2.set_ylabel(_label("新增感染 (人/日)", "New infections / day"))
        for ax in (a1, a2):
            _date_axis(ax)
            ax.set_ylim(bottom=0)
        a1.legend(fontsize=8, frameon=False, loc="upper left")
        fig.suptitle(_label("疫情曲线", "Epidemic curves") + (f" ({_seeds_note(runs)})" if _seeds_note(runs) else ""),
                     fontsize=10)
    return fig


def _seeds_note(runs: list[Run]) -> str:
    n = sorted({int(r.epidemic["seed"].nunique()) for r in runs})
    if n == [1]:
        return ""
    return f"{'/'.join(map(str, n))} seeds, median and 5-95 % band"


def domain_figure(runs, cities=None, *, w: float = 6.4, h: float = 2.6):
    """Domain health scores (0-100) over time at district level, over the grade bands.

    One run: one axes with the four domains and the overall score (dashed). Several runs: one
    axes per domain with a line per run. District level is the ``district`` region when the
    run has one, else the population-weighted mean of the neighbourhoods (``cities`` give the
    populations; plain mean without).

    Examples
    --------
    >>> import sys, tempfile; sys.path.insert(0, "tests")
    >>> from run_fixture import write_run
    >>> from engine.report.run import load_run
    >>> with tempfile.TemporaryDirectory() as d:
    ...     fig = domain_figure(load_run(write_run(d)))
    >>> len(fig.axes[0].get_lines())
    5
    """
    import matplotlib

    runs = _runs(runs)
    cities = list(cities) if cities is not None else [None] * len(runs)
    single = len(runs) == 1
    fig, axes = _figure(w, h, 1 if single else len(DOMAINS))
    with matplotlib.rc_context(_rc()):
        lo = 100.0
        if single:
            run, city = runs[0], cities[0]
            for d in DOMAINS:
                s = district_series(run, d, city)
                lo = min(lo, float(np.nanmin(s.to_numpy())) if s.notna().any() else lo)
                axes[0].plot(s.index, s.to_numpy(), color=DOMAIN_COLOURS[d], linewidth=1.4, label=_label(*DOMAIN_LABELS[d]))
            s = district_series(run, "overall", city)
            axes[0].plot(s.index, s.to_numpy(), color="black", linewidth=1.2, linestyle="--",
                         label=_label("综合", "Overall"))
            axes[0].legend(fontsize=7.5, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
        else:
            labels = _labels(runs)
            for ax, d in zip(axes, DOMAINS):
                for k, (run, city) in enumerate(zip(runs, cities)):
                    s = district_series(run, d, city)
                    if s.notna().any():
                        lo = min(lo, float(np.nanmin(s.to_numpy())))
                    ax.plot(s.index, s.to_numpy(), color=RUN_COLOURS[k % len(RUN_COLOURS)], linewidth=1.3,
                            label=labels[k])
                ax.set_title(_label(*DOMAIN_LABELS[d]), fontsize=9)
            axes[0].legend(fontsize=7.5, frameon=False, loc="lower left")
        bottom = max(0.0, 10 * math.floor((lo - 5) / 10))
        for ax in axes:
            _grade_bands(ax, bottom)
            ax.set_ylim(bottom, 100)
            _date_axis(ax)
        axes[0].set_ylabel(_label("健康分", "Health score"))
        fig.suptitle(_label("四大领域体征 (全区)", "Domain scores, district"), fontsize=10)
    return fig


def _grade_bands(ax, bottom: float) -> None:
    from engine.indices import load_config

    grades = load_config().grades
    top = 100.0
    for g in grades:
        ax.axhspan(max(g.min, bottom), top, color=g.colour, alpha=0.10, linewidth=0, zorder=0)
        top = g.min


def recovery_figure(runs, *, w: float = 6.4, h: float = 2.5):
    """Economic activity as % of normal: enterprise operation, footfall and power use.

    One run: the three series on one axes. Several runs: one axes per series, a line per run.
    A ``seed`` column, when present, is reduced to the median.

    Examples
    --------
    >>> import sys, tempfile; sys.path.insert(0, "tests")
    >>> from run_fixture import write_run
    >>> from engine.report.run import load_run
    >>> with tempfile.TemporaryDirectory() as d:
    ...     fig = recovery_figure(load_run(write_run(d)))
    >>> len(fig.axes[0].get_lines())
    4
    """
    import matplotlib

    runs = _runs(runs)
    single = len(runs) == 1
    fig, axes = _figure(w, h, 1 if single else len(ECONOMY))
    colours = ("#2a9d8f", "#e76f51", "#264653")
    with matplotlib.rc_context(_rc()):
        labels = _labels(runs)
        for k, run in enumerate(runs):
            eco = run.economy.groupby("date")[[c for c, _, _ in ECONOMY]].median().sort_index()
            for j, (col, zh, en) in enumerate(ECONOMY):
                ax = axes[0] if single else axes[j]
                ax.plot(eco.index, eco[col].to_numpy(), linewidth=1.5,
                        color=colours[j] if single else RUN_COLOURS[k % len(RUN_COLOURS)],
                        label=_label(zh, en) if single else labels[k])
                if not single and k == 0:
                    ax.set_title(_label(zh, en), fontsize=9)
        for ax in axes:
            ax.axhline(100, color="#555555", linewidth=0.8, linestyle=":")
            ax.set_ylim(0, 110)
            _date_axis(ax)
        axes[0].set_ylabel(_label("占正常水平 %", "% of normal"))
        axes[0].legend(fontsize=7.5, frameon=False, loc="lower right")
        fig.suptitle(_label("复工复产复市", "Economic recovery"), fontsize=10)
    return fig


def map_figure(run: Run, city=None, at=None, *, index: str = "overall", title: str | None = None):
    """The risk-zoning map of ``index`` at cycle ``at`` (default the last).

    With a city, :func:`engine.maps.risk_map` draws the grade choropleth; without one, a tile
    map (one square per neighbourhood, grouped by street, coloured by grade) stands in.

    Raises
    ------
    RunFolderError
        ``at`` outside the run.

    Examples
    --------
    >>> import sys, tempfile; sys.path.insert(0, "tests")
    >>> from run_fixture import write_run
    >>> from engine.report.run import load_run
    >>> with tempfile.TemporaryDirectory() as d:
    ...     fig = map_figure(load_run(write_run(d)), None, "2020-03-02")
    >>> "2020-03-02 00:00" in fig._suptitle.get_text()
    True
    """
    t = run.time_index(at)
    when = pd.Timestamp(run.times[t])
    if city is not None:
        try:
            from engine.maps import risk_map
        except ImportError:  # pragma: no cover - maps not in this checkout
            risk_map = None
        if risk_map is not None:
            return risk_map(run.indices, city, index=index, time=when, title=title)
    return tile_map(run, t, index=index, title=title)


def tile_map(run: Run, t: int, *, index: str = "overall", title: str | None = None):
    """Grade tiles per neighbourhood at cycle position ``t`` (a map without geometry).

    Examples
    --------
    >>> import sys, tempfile; sys.path.insert(0, "tests")
    >>> from run_fixture import write_run
    >>> from engine.report.run import load_run
    >>> with tempfile.TemporaryDirectory() as d:
    ...     fig = tile_map(load_run(write_run(d)), 0)
    >>> len(fig.axes[0].patches)
    20
    """
    import matplotlib
    from matplotlib.patches import Patch, Rectangle

    from engine.indices import grade_codes, load_config

    cfg = load_config()
    regions = base_regions(run)
    ds = run.indices
    h = ds["health"].sel(index=index).isel(time=t)
    score = np.asarray(h.sel(region=regions).values, dtype=float)
    codes = grade_codes(score, np.array([g.min for g in cfg.grades]))
    streets = _streets(run, regions)
    order = sorted(range(len(regions)), key=lambda k: (streets[k], regions[k]))
    ncol = max(1, math.ceil(math.sqrt(len(regions) * 1.25)))
    nrow = max(1, math.ceil(len(regions) / ncol))
    with matplotlib.rc_context(_rc()):
        fig, (ax,) = _figure(8.0, 6.4)
        ax.set_axis_off()
        ax.set_aspect("equal")
        for pos, k in enumerate(order):
            c, r = pos % ncol, nrow - 1 - pos // ncol
            colour = cfg.grades[codes[k]].colour if codes[k] >= 0 else cfg.no_data["colour"]
            ax.add_patch(Rectangle((c, r), 0.94, 0.94, facecolor=colour, edgecolor="white"))
            ax.text(c + 0.47, r + 0.55, plain(regions[k]), ha="center", va="center", fontsize=7)
            if np.isfinite(score[k]):
                ax.text(c + 0.47, r + 0.3, f"{score[k]:.0f}", ha="center", va="center", fontsize=8, weight="bold")
        ax.set_xlim(-0.1, ncol + 0.1)
        ax.set_ylim(-0.1, nrow + 0.1)
        handles = [Patch(facecolor=g.colour, label=_label(g.zh, f"{g.en} (>= {g.min:g})")) for g in cfg.grades]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=8)
        when = pd.Timestamp(run.times[t]).strftime("%Y-%m-%d %H:%M")
        fig.suptitle(title or f"{_label('风险分区', 'Risk zoning')}: {plain(index)} {when} "
                              f"({_label('无地图', 'no geometry')})", fontsize=10)
    return fig


def _streets(run: Run, regions: list[str]) -> list[str]:
    vals = run.values
    if "street" in vals.coords:
        by = {str(r): str(s) for r, s in zip(vals["region"].values, vals["street"].values)}
        return [by.get(r, "") for r in regions]
    return [""] * len(regions)


def save_png(fig, path=None, *, tight: bool = False) -> bytes:
    """PNG bytes of ``fig`` (also written to ``path`` when given); same figure, same bytes.

    ``tight`` crops the white margins (used for maps).

    >>> save_png(empty_figure("x"))[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
    """
    import warnings

    import matplotlib

    buf = io.BytesIO()
    with matplotlib.rc_context(getattr(fig, "_cityvitals_rc", _rc())), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a glyph missing from a fallback font
        extra = {"bbox_inches": "tight", "pad_inches": 0.05} if tight else {}
        fig.savefig(buf, format="png", dpi=fig.dpi, metadata={"Software": None}, **extra)
    data = buf.getvalue()
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return data


__all__ = ["epidemic_figure", "domain_figure", "recovery_figure", "map_figure", "tile_map", "save_png",
           "empty_figure", "plain"]
