"""The risk-zoning map (风险分区地图): a matplotlib choropleth of graded health scores.

Regions are filled with their grade's colour (``indicators/indices.toml``), street boundaries
and the district outline drawn over them, the worst neighbourhoods named, and a legend with one
entry per grade (plus "no data" when some region has none). Output is deterministic: fixed size
and dpi, PNG metadata stripped, SVG ``hashsalt`` fixed and text drawn as paths.

Chinese labels need a CJK font (Debian: ``fonts-noto-cjk``). Without one the map falls back to
English labels and region ids instead of names, so no glyph is missing.

>>> import numpy as np, xarray as xr
>>> from engine.city import City
>>> city = City.synthetic(seed=1, neighbourhoods=12, streets=3, population=30_000)
>>> h = xr.Dataset({"health": (("index", "region"), np.linspace(50, 100, 12)[None])},
...                coords={"index": ["overall"], "region": list(city.regions.index)})
>>> fig = risk_map(h, city)
>>> len(fig.axes[0].get_legend().get_texts())
4
"""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path

import numpy as np

DPI = 100
FIGSIZE = (10.0, 8.0)
_CJK_FILES = re.compile(r"(NotoSansCJK|NotoSerifCJK|NotoSansSC|SourceHanSans|SourceHanSerif|wqy|WenQuanYi|"
                        r"DroidSansFallback|simhei|simsun|msyh|PingFang|Hiragino Sans GB|uming|ukai)", re.I)
_CJK_NAMES = re.compile(r"(CJK|Source Han|WenQuanYi|Droid Sans Fallback|SimHei|SimSun|Microsoft YaHei|PingFang|"
                        r"Hiragino Sans GB|AR PL)", re.I)
_font_cache: dict = {}


def cjk_font() -> str | None:
    """Family name of an installed CJK-capable font, or None.

    Looks in matplotlib's font list first; when its cache predates the font's installation, the
    system font folders are scanned for well-known CJK files and those are registered.
    """
    if "name" in _font_cache:
        return _font_cache["name"]
    from matplotlib import font_manager as fm

    def known():
        names = sorted({f.name for f in fm.fontManager.ttflist if _CJK_NAMES.search(f.name)})
        prefer = [n for n in names if "Sans CJK SC" in n] + [n for n in names if "Sans" in n] + names
        return prefer[0] if prefer else None

    name = known()
    if name is None:
        try:
            files = [f for f in fm.findSystemFonts() if _CJK_FILES.search(Path(f).name)]
        except Exception:  # pragma: no cover - unusual font folders
            files = []
        for f in sorted(files):
            try:
                fm.fontManager.addfont(f)
            except Exception:  # pragma: no cover - unreadable font file
                continue
        name = known()
    _font_cache["name"] = name
    return name


def _grade_table(config):
    from engine.indices.config import resolve_config

    cfg = resolve_config(config)
    return cfg, [g.colour for g in cfg.grades], cfg.no_data["colour"]


def _select(health_ds, index: str, time, level_regions):
    from engine.indices.compute import select_time

    if "health" not in health_ds:
        raise ValueError("the map needs a Dataset with a 'health' variable (engine.indices.compute_indices)")
    labels = [str(x) for x in health_ds["index"].values]
    if index not in labels:
        raise ValueError(f"unknown index {index!r}; expected one of {', '.join(labels)}")
    h = health_ds["health"].sel(index=index)
    t = select_time(health_ds, time)
    if t is not None:
        h = h.isel(time=t)
    vals = dict(zip(map(str, h["region"].values), np.asarray(h.values, dtype=float)))
    return np.array([vals.get(r, np.nan) for r in level_regions]), t


def risk_map(health_ds, city, *, index: str = "overall", time=None, config=None, lang: str = "auto",
             worst: int = 5, title: str | None = None):
    """Draw the risk-zoning map of one index for one cycle.

    Parameters
    ----------
    health_ds : xarray.Dataset
        Output of :func:`engine.indices.compute_indices` (``health`` over index and region,
        optionally time). Regions of the city's base level are drawn.
    city : City
        Synthetic, loaded or grid city; polygons are used when present, else centroid markers.
    index : str
        ``overall``, a domain, a dimension, ``safety_index`` or an epidemic risk.
    time : timestamp-like, optional
        Cycle to draw (default the last).
    config : IndicesConfig or path, optional
        Grades and colours (default ``indicators/indices.toml``).
    lang : {"auto", "zh", "en"}
        ``auto``: Chinese when a CJK font is installed, else English.
    worst : int
        How many of the worst neighbourhoods to name on the map.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        Not attached to pyplot; save it with :func:`save_map`.
    """
    from matplotlib.collections import LineCollection, PolyCollection
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    cfg, colours, nodata = _grade_table(config)
    font = cjk_font() if lang in ("auto", "zh") else None
    zh = font is not None and lang != "en"
    regions = [str(r) for r in city.regions.index]
    score, t = _select(health_ds, index, time, regions)
    from engine.indices.config import grade_codes

    codes = grade_codes(score, cfg.grade_mins)
    face = np.array([colours[c] if c >= 0 else nodata for c in codes], dtype=object)

    rc = {"font.family": [font, "DejaVu Sans"] if zh else ["DejaVu Sans"], "svg.hashsalt": "cityvitals",
          "svg.fonttype": "path", "path.simplify": False, "axes.unicode_minus": False}
    import matplotlib

    with matplotlib.rc_context(rc):
        fig = Figure(figsize=FIGSIZE, dpi=DPI)
        ax = fig.add_axes((0.01, 0.02, 0.74, 0.88))
        ax.set_axis_off()
        ax.set_aspect("equal")
        off = city.poly_offsets
        if city.has_polygons:
            polys = [city.poly_xy[off[k]:off[k + 1]] for k in range(city.n_regions)]
            ax.add_collection(PolyCollection(polys, facecolors=list(face), edgecolors="white", linewidths=0.3,
                                             antialiased=False))
            segs = _street_edges(city)
            if len(segs):
                ax.add_collection(LineCollection(segs, colors="#303030", linewidths=1.5))
        else:
            ax.scatter(city.regions["x_m"], city.regions["y_m"], c=list(face), s=60, edgecolors="#404040",
                       linewidths=0.4)
        b = city.boundary_xy
        if len(b):
            ring = np.vstack([b, b[:1]])
            ax.plot(ring[:, 0], ring[:, 1], color="black", linewidth=2.0)
        xy = np.vstack([city.poly_xy, b]) if city.has_polygons else np.column_stack([city.regions["x_m"], city.regions["y_m"]])
        if len(xy):
            pad = 0.03 * max(np.ptp(xy[:, 0]), np.ptp(xy[:, 1]), 1.0)
            ax.set_xlim(xy[:, 0].min() - pad, xy[:, 0].max() + pad)
            ax.set_ylim(xy[:, 1].min() - pad, xy[:, 1].max() + pad)
        # names of the worst regions (lowest score first; ties by id)
        ok = np.flatnonzero(np.isfinite(score))
        order = ok[np.lexsort((np.array(regions, dtype=object)[ok].astype(str), score[ok]))][:max(0, worst)]
        names = city.regions["name"].to_numpy()
        for k in order:
            label = f"{names[k] if zh else regions[k]} {score[k]:.0f}"
            ax.annotate(label, (city.regions["x_m"].iat[k], city.regions["y_m"].iat[k]), ha="center", va="center",
                        fontsize=8, color="black",
                        bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="none", alpha=0.8))
        handles = []
        for g in cfg.grades:
            upper = next((p.min for p in cfg.grades if p.code == g.code - 1), None)
            rng = f">= {g.min:g}" if upper is None else (f"< {upper:g}" if g.min == 0 else f"{g.min:g}-{upper:g}")
            handles.append(Patch(facecolor=g.colour, edgecolor="#404040", label=f"{g.zh} {g.en} {rng}" if zh else f"{g.en} {rng}"))
        if np.isnan(score).any():
            handles.append(Patch(facecolor=nodata, edgecolor="#404040",
                                 label=f"{cfg.no_data['zh']} {cfg.no_data['en']}" if zh else cfg.no_data["en"]))
        ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(1.0, 0.0), fontsize=9, frameon=False,
                  title="等级 Grade" if zh else "Grade")
        if title is None:
            idx = health_ds["index"].values.tolist().index(index)
            name = index
            for coord in (("index_zh", "index_en") if zh else ("index_en",)):
                if coord in health_ds.coords:
                    name = str(health_ds[coord].values[idx])
                    break
            when = ""
            if t is not None:
                import pandas as pd

                when = " " + pd.Timestamp(health_ds["time"].values[t]).strftime("%Y-%m-%d %H:%M")
            city_name = city.name if zh or city.name.isascii() else ""
            title = (f"{city_name} 风险分区 {name}{when}" if zh else f"{city_name} risk zoning: {name}{when}").strip()
        fig.suptitle(title, fontsize=13, y=0.96)
    fig._cityvitals_rc = rc
    return fig


def _street_edges(city) -> np.ndarray:
    """Segments (n, 2, 2) of polygon edges shared by regions of different streets (each once)."""
    xy, off, nbr = city.poly_xy, city.poly_offsets, city.poly_edge_nbr
    counts = np.diff(off)
    owner = np.repeat(np.arange(city.n_regions), counts)
    start = np.arange(off[-1])
    nxt = start + 1
    last = off[1:] - 1
    nxt[last[counts > 0]] = off[:-1][counts > 0]
    o = nbr[: off[-1]]
    street = city.street_of
    keep = (o > owner) & (street[np.maximum(o, 0)] != street[owner])
    return np.stack([xy[start[keep]], xy[nxt[keep]]], axis=1)


def save_map(fig, path, fmt: str | None = None) -> Path:
    """Write a map deterministically (PNG or SVG, from ``fmt`` or the file's suffix).

    Same figure, same bytes: fixed dpi, no timestamps or software tags, fixed SVG hash salt.
    """
    import matplotlib

    path = Path(path)
    fmt = (fmt or path.suffix.lstrip(".") or "png").lower()
    if fmt not in ("png", "svg"):
        raise ValueError(f"map format must be png or svg, got {fmt!r} (from {str(path)!r})")
    meta = {"Software": None} if fmt == "png" else {"Date": None, "Creator": None}
    rc = getattr(fig, "_cityvitals_rc", {"svg.hashsalt": "cityvitals", "svg.fonttype": "path"})
    buf = io.BytesIO()
    with matplotlib.rc_context(rc), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)   # e.g. a glyph missing from a fallback font
        fig.savefig(buf, format=fmt, dpi=DPI, metadata=meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return path


def risk_maps(health_ds, city, out, *, indices=None, time=None, config=None, lang: str = "auto") -> list[Path]:
    """One map per index (default: overall, every domain and every dimension) into ``out``
    (a file name pattern; ``-{index}`` is inserted before the suffix).

    Examples
    --------
    >>> import tempfile, numpy as np, xarray as xr
    >>> from engine.city import City
    >>> city = City.synthetic(seed=1, neighbourhoods=6, streets=2, population=9_000)
    >>> h = xr.Dataset({"health": (("index", "region"), np.full((2, 6), 95.0))},
    ...                coords={"index": ["overall", "safety"], "region": list(city.regions.index)})
    >>> with tempfile.TemporaryDirectory() as d:
    ...     [p.name for p in risk_maps(h, city, f"{d}/map.png")]
    ['map-overall.png', 'map-safety.png']
    """
    out = Path(out)
    if indices is None:
        kinds = health_ds["index_kind"].values if "index_kind" in health_ds.coords else None
        labels = [str(x) for x in health_ds["index"].values]
        indices = [lab for k, lab in enumerate(labels) if kinds is None or kinds[k] in ("overall", "domain", "dimension")]
    paths = []
    for idx in indices:
        fig = risk_map(health_ds, city, index=idx, time=time, config=config, lang=lang)
        paths.append(save_map(fig, out.with_name(f"{out.stem}-{idx}{out.suffix or '.png'}")))
    return paths
