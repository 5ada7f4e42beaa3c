"""engine.maps: colours inside a chosen neighbourhood, one legend entry per grade, determinism."""

from __future__ import annotations

import warnings

import matplotlib.image as mpimg
import numpy as np
import pytest
import xarray as xr
from matplotlib.colors import to_rgb

from engine import maps
from engine.city import City
from engine.indices import load_config


@pytest.fixture(scope="module")
def city():
    return City.synthetic(seed=4, neighbourhoods=40, streets=4, population=200_000)


def _health(city, values=None):
    n = city.n_regions
    values = np.linspace(40, 100, n) if values is None else values
    return xr.Dataset({"health": (("index", "region"), np.asarray(values, float)[None])},
                      coords={"index": ["overall"], "region": list(city.regions.index),
                              "index_en": ("index", ["Overall health"]), "index_zh": ("index", ["综合健康指数"])})


def _interior_pixel(fig, city, k):
    """Pixel (row, col) of a point well inside region ``k`` (its polygon's vertex mean)."""
    ax = fig.axes[0]
    ring = city.polygon(city.regions.index[k])
    x, y = ring[:, 0].mean(), ring[:, 1].mean()
    fig.canvas.draw() if hasattr(fig, "canvas") and fig.canvas is not None else None
    px, py = ax.transData.transform((x, y))
    h = fig.get_figheight() * fig.dpi
    return int(round(h - py)), int(round(px))


def test_colour_inside_a_neighbourhood_and_one_legend_entry_per_grade(city, tmp_path):
    cfg = load_config()
    score = np.full(city.n_regions, 95.0)
    k = 7
    score[k] = 75.0                                    # stable: orange
    h = _health(city, score)
    fig = maps.risk_map(h, city, worst=0, lang="en")
    out = maps.save_map(fig, tmp_path / "m.png")
    img = mpimg.imread(out)[:, :, :3]
    row, col = _interior_pixel(fig, city, k)
    np.testing.assert_allclose(img[row, col], to_rgb(cfg.grades[2].colour), atol=2 / 255)
    other = 0 if k != 0 else 1
    row, col = _interior_pixel(fig, city, other)
    np.testing.assert_allclose(img[row, col], to_rgb(cfg.grades[0].colour), atol=2 / 255)
    legend = fig.axes[0].get_legend()
    texts = [t.get_text() for t in legend.get_texts()]
    assert len(texts) == len(cfg.grades) == 4
    assert [t.split()[0] for t in texts] == ["Excellent", "Good", "Stable", "Poor"]
    colours = [p.get_facecolor()[:3] for p in legend.legend_handles]
    np.testing.assert_allclose(colours, [to_rgb(g.colour) for g in cfg.grades])


def test_no_data_gets_its_own_entry(city):
    score = np.full(city.n_regions, 85.0)
    score[3] = np.nan
    fig = maps.risk_map(_health(city, score), city, lang="en")
    assert len(fig.axes[0].get_legend().get_texts()) == 5


def test_png_and_svg_are_deterministic(city, tmp_path):
    h = _health(city)
    for fmt in ("png", "svg"):
        a = maps.save_map(maps.risk_map(h, city), tmp_path / f"a.{fmt}").read_bytes()
        b = maps.save_map(maps.risk_map(h, city), tmp_path / f"b.{fmt}").read_bytes()
        assert a == b
    svg = (tmp_path / "a.svg").read_text()
    assert "<dc:date>" not in svg
    assert b"Software" not in (tmp_path / "a.png").read_bytes()[:400]


def test_falls_back_to_english_without_cjk_font(city, monkeypatch):
    monkeypatch.setitem(maps._font_cache, "name", None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")              # a missing glyph would warn
        fig = maps.risk_map(_health(city), city, worst=3)
        fig.savefig(__import__("io").BytesIO(), format="png")
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()] + [fig._suptitle.get_text()]
    texts += [t.get_text() for t in fig.axes[0].texts]
    assert all(t.isascii() for t in texts), texts


def test_grid_and_loaded_cities(tmp_path):
    grid = City.grid((114.25, 30.55, 114.28, 30.58), cell_m=500, block_cells=2, street_blocks=2, population=1000)
    fig = maps.risk_map(_health(grid), grid, lang="en")
    maps.save_map(fig, tmp_path / "grid.svg")
    small = City.synthetic(seed=3, neighbourhoods=8, streets=2, population=10_000)
    small.save(tmp_path / "c")
    loaded = City.load(tmp_path / "c")
    maps.save_map(maps.risk_map(_health(loaded), loaded, lang="en"), tmp_path / "loaded.png")
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "regions.csv").write_text("id,name,street,population,lon,lat,area_km2\n"
                                                "A,甲,S1,100,114.30,30.60,0.5\nB,乙,S1,100,114.31,30.61,0.5\n")
    nopoly = City.load(tmp_path / "p")
    maps.save_map(maps.risk_map(_health(nopoly, [50.0, 95.0]), nopoly, lang="en"), tmp_path / "nopoly.png")
    assert (tmp_path / "nopoly.png").stat().st_size > 1000


def test_bad_index_and_format(city, tmp_path):
    with pytest.raises(ValueError, match="unknown index 'nope'.*overall"):
        maps.risk_map(_health(city), city, index="nope")
    with pytest.raises(ValueError, match="png or svg"):
        maps.save_map(maps.risk_map(_health(city), city), tmp_path / "m.jpg")
