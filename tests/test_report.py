"""engine.report: figures are valid PNGs, the page is self-contained, escapes run text, is deterministic."""

from __future__ import annotations

import shutil
from html.parser import HTMLParser

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from engine.report import RunFolderError, load_run, render_report
from engine.report import figures as F
from engine.report.run import district_series, resolve_city
from run_fixture import EVIL, fixture_city, write_run

PNG = b"\x89PNG\r\n\x1a\n"


class _Page(HTMLParser):
    """Tags, URL attributes and text of a page."""

    def __init__(self):
        super().__init__()
        self.tags, self.urls, self.text, self.ids = [], [], [], {}

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for k, v in attrs:
            if k in ("src", "href", "srcset", "action", "data", "poster") and v is not None:
                self.urls.append(v)
            if k == "id":
                self.ids[v] = tag
            if k.startswith("on"):
                self.urls.append(f"event handler {k}")

    def handle_data(self, data):
        self.text.append(data)


def _parse(html: str) -> _Page:
    p = _Page()
    p.feed(html)
    return p


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    run = write_run(tmp_path_factory.mktemp("run") / "evil", evil=True)
    path = render_report(run, fixture_city())
    return run, path, path.read_bytes()


def test_figures_are_valid_non_blank_pngs(rendered):
    run, _, _ = rendered
    names = sorted(p.name for p in (run / "figures").iterdir())
    assert names == ["domains.png", "epidemic.png", "map.png", "recovery.png"]
    for name in names:
        data = (run / "figures" / name).read_bytes()
        assert data[:8] == PNG
        img = mpimg.imread(run / "figures" / name)
        assert img.ndim == 3 and img.shape[0] > 150 and img.shape[1] > 300
        assert float(img[..., :3].std()) > 0.05, f"{name} looks blank"
        assert b"Software" not in data and b"tIME" not in data


def test_html_is_self_contained(rendered):
    _, _, data = rendered
    page = _parse(data.decode("utf-8"))
    assert page.urls, "expected embedded images"
    assert all(u.startswith("data:image/png;base64,") for u in page.urls), [u[:60] for u in page.urls]
    assert "script" not in page.tags and "link" not in page.tags and "iframe" not in page.tags
    assert page.ids.get("risk-map") == "img" and page.ids.get("summary-table") == "table"
    assert {"domains", "epidemic", "recovery", "alerts-table"} <= set(page.ids)


def test_planted_script_is_escaped_everywhere(rendered):
    run, _, data = rendered
    html = data.decode("utf-8")
    assert EVIL not in html and "<script" not in html.lower()
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    page = _parse(html)
    text = "".join(page.text)
    # the region name (alerts table, map tooltip-free text), the indicator name and the title
    region = load_run(run).alerts.query("region == 'N0004'")["region_name"].iloc[0]
    assert region.endswith(EVIL) and region in text
    names = load_run(run).alerts["name_zh"]
    assert any(n.endswith(EVIL) for n in names) and any(n in text for n in names if n.endswith(EVIL))
    assert html.count(escaped) >= 3
    # the alert owner text sits in a title attribute: escaped there too
    assert f'title="{escaped}"' in html or f"{escaped}</span>" in html


def test_rendering_twice_gives_identical_bytes(rendered, tmp_path):
    run, path, first = rendered
    pngs = {p.name: p.read_bytes() for p in (run / "figures").iterdir()}
    copy = shutil.copytree(run, tmp_path / "again")
    second = render_report(copy, fixture_city())
    assert second.read_bytes() == first
    assert {p.name: p.read_bytes() for p in (copy / "figures").iterdir()} == pngs
    assert render_report(run, fixture_city()).read_bytes() == first


def test_without_a_city_the_map_is_a_tile_map(tmp_path):
    run = write_run(tmp_path / "r")
    path = render_report(run)
    assert path.exists()
    fig = F.map_figure(load_run(run), None)
    assert len(fig.axes[0].patches) == 20
    assert "no geometry" in fig._suptitle.get_text()


def test_city_from_the_run_folder_or_summary(tmp_path):
    run = load_run(write_run(tmp_path / "r", save_city=True))
    assert resolve_city(run).fingerprint() == fixture_city().fingerprint()
    other = load_run(write_run(tmp_path / "s"))
    other.summary["city"]["synthetic"] = {"seed": 0, "neighbourhoods": 20, "streets": 3, "population": 60_000}
    assert resolve_city(other).fingerprint() == fixture_city().fingerprint()
    other.summary["city"]["synthetic"]["seed"] = 1
    with pytest.raises(RunFolderError, match="fingerprint"):
        resolve_city(other)


def test_map_date_selects_the_cycle_and_rejects_outside_dates(tmp_path):
    run = write_run(tmp_path / "r")
    r = load_run(run)
    assert r.time_index("2020-03-02 05:30") == 29
    with pytest.raises(RunFolderError, match=r"2020-04-01.*outside the run.*2020-03-01T00:00:00"):
        render_report(run, at="2020-04-01")
    with pytest.raises(RunFolderError, match="not a timestamp"):
        r.time_index("soon")


def test_district_level_is_population_weighted_or_the_district_row(tmp_path):
    city = fixture_city()
    plain = load_run(write_run(tmp_path / "a"))
    nested = load_run(write_run(tmp_path / "b", hierarchy=True))
    weighted = district_series(plain, "market", city)
    h = plain.indices["health"].sel(index="market").values.astype(float)
    pop = city.regions["population"].to_numpy(float)
    np.testing.assert_allclose(weighted.to_numpy(), h @ pop / pop.sum(), rtol=1e-6)
    np.testing.assert_allclose(district_series(nested, "market").to_numpy(), weighted.to_numpy(), atol=1e-3)
    unweighted = district_series(plain, "market")
    np.testing.assert_allclose(unweighted.to_numpy(), h.mean(axis=1), rtol=1e-6)
    assert not np.allclose(unweighted.to_numpy(), weighted.to_numpy())


def test_ensemble_band_only_with_several_seeds(tmp_path):
    many = F.epidemic_figure(load_run(write_run(tmp_path / "a", seeds=(0, 1, 2))))
    one = F.epidemic_figure(load_run(write_run(tmp_path / "b", seeds=(7,))))
    assert len(many.axes[0].collections) == 1 and len(one.axes[0].collections) == 0
    r = load_run(tmp_path / "a")
    med = r.epidemic.groupby("date")["prevalence"].median().to_numpy() * 1e4
    np.testing.assert_allclose(many.axes[0].get_lines()[0].get_ydata(), med)


def test_labels_from_a_run_are_never_mathtext(tmp_path):
    run = write_run(tmp_path / "r", scenario="cost $x^2$ \\alpha")
    fig = F.recovery_figure([load_run(run), load_run(run)])
    F.save_png(fig)  # would raise on bad mathtext
    assert "$x^2$" in fig.axes[0].get_legend().get_texts()[0].get_text().replace("\\$", "$")


@pytest.mark.parametrize("damage, message", [
    ("remove:economy.parquet", r"missing economy\.parquet"),
    ("remove:summary.json", r"not a run folder: summary\.json is missing"),
    ("garble:summary.json", r"summary\.json: not readable JSON"),
    ("columns:alerts.parquet", r"alerts\.parquet: missing columns \['severity'\]"),
    ("variable:indices.zarr", r"indices\.zarr: expected variable 'grade'"),
])
def test_bad_run_folders_name_the_file(tmp_path, damage, message):
    run = write_run(tmp_path / "r")
    how, name = damage.split(":")
    target = run / name
    if how == "remove":
        target.unlink()
    elif how == "garble":
        target.write_text("{not json", encoding="utf-8")
    elif how == "columns":
        pd.read_parquet(target).drop(columns=["severity"]).to_parquet(target)
    elif how == "variable":
        import xarray as xr

        ds = xr.open_zarr(target, consolidated=False).load().drop_vars("grade")
        shutil.rmtree(target)
        ds.to_zarr(target, mode="w", consolidated=False)
    with pytest.raises(RunFolderError, match=message) as err:
        render_report(run)
    assert str(run) in str(err.value)
    assert not (run / "report.html").exists()


def test_not_a_folder(tmp_path):
    with pytest.raises(RunFolderError, match="not a folder"):
        render_report(tmp_path / "nothing")
