"""engine.report.compare and `cityvitals compare`: the table (CSV and HTML), the plots, the errors."""

from __future__ import annotations

import argparse
import json
import shutil

import pandas as pd
import pytest

from engine.cli import compare as cli
from engine.report import RunFolderError, compare_runs, compare_table
from engine.report.html import vocabulary
from run_fixture import EVIL, write_run

DIMENSIONS = list(vocabulary()["dimension"])
COLUMNS = (["run", "folder", "scenario", "peak_prevalence", "peak_date", "cumulative_infections",
            "days_excellent", "days_good", "days_stable", "days_poor", "enterprise_operation_recovered",
            "footfall_recovered", "power_use_recovered", "mean_health", "health_safety", "health_construction",
            "health_market", "health_livelihood", "alerts_total"]
           + [f"alerts_{d}" for d in DIMENSIONS] + ["worst_neighbourhoods"])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    a = write_run(base / "a", scenario="staged_reopening")
    b = write_run(base / "b", scenario="rapid_reopening", severity=2.0, save_city=True)
    return a, b


def _summary(run):
    return json.loads((run / "summary.json").read_text(encoding="utf-8"))


def _cli(argv):
    parser = argparse.ArgumentParser(prog="cityvitals")
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["compare", *map(str, argv)])
    return args.handler(args)


def test_csv_columns_and_values(runs, tmp_path):
    a, b = runs
    assert _cli([a, b, "--out", tmp_path / "out", "--at", "2020-03-02", "--at", "2020-03-03 12:00"]) == 0
    df = pd.read_csv(tmp_path / "out" / "compare.csv")
    assert df.columns.tolist() == COLUMNS
    assert df["run"].tolist() == ["staged_reopening", "rapid_reopening"]
    assert df["folder"].tolist() == ["a", "b"]
    for k, run in enumerate((a, b)):
        s = _summary(run)
        row = df.iloc[k]
        assert row["peak_prevalence"] == pytest.approx(s["epidemic"]["peak_prevalence"], rel=1e-5)
        assert row["cumulative_infections"] == pytest.approx(s["epidemic"]["cumulative_infections"], rel=1e-5)
        assert row["peak_date"] == s["epidemic"]["peak_date"]
        for g, n in s["health"]["days_in_grade"].items():
            assert row[f"days_{g}"] == n
        for key in ("enterprise_operation", "footfall", "power_use"):
            assert row[f"{key}_recovered"] == pytest.approx(s["economy"][f"{key}_recovered"], rel=1e-5)
        assert row["mean_health"] == pytest.approx(s["health"]["mean_overall"], rel=1e-5)
        assert row["alerts_total"] == s["alerts"]["total"]
        assert {d: row[f"alerts_{d}"] for d in DIMENSIONS} == {d: s["alerts"]["by_dimension"].get(d, 0) for d in DIMENSIONS}
        assert row["worst_neighbourhoods"].split("; ")[0].startswith(s["worst_neighbourhoods"][0]["name"])
    # the severe run is worse on every headline figure
    assert df.loc[1, "cumulative_infections"] > df.loc[0, "cumulative_infections"]
    assert df.loc[1, "peak_prevalence"] > df.loc[0, "peak_prevalence"]
    assert df.loc[1, "footfall_recovered"] < df.loc[0, "footfall_recovered"]
    assert df.loc[1, "mean_health"] < df.loc[0, "mean_health"]
    assert df.loc[1, "alerts_total"] > df.loc[0, "alerts_total"]


def test_html_holds_the_table_plots_and_one_map_per_run_and_date(runs, tmp_path):
    a, b = runs
    path = compare_runs([a, b], tmp_path / "out", at=["2020-03-02", "2020-03-03 12:00"])
    html = path.read_text(encoding="utf-8")
    assert 'id="compare-table"' in html and html.count('id="map-') == 4
    assert all(f'id="{k}"' in html for k in ("epidemic", "domains", "recovery"))
    srcs = [chunk.split('"', 1)[0] for chunk in html.split(' src="')[1:]]
    assert len(srcs) == 7 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "href=" not in html and "<script" not in html
    assert sorted(p.name for p in (tmp_path / "out" / "figures").iterdir()) == [
        "domains.png", "epidemic.png", "map-1-1.png", "map-1-2.png", "map-2-1.png", "map-2-2.png", "recovery.png"]
    # the table cells carry the summary's figures
    assert f"{_summary(b)['epidemic']['cumulative_infections']:,.0f}" in html


def test_run_text_is_escaped_and_labels_made_unique(tmp_path):
    a = write_run(tmp_path / "x" / "evil", scenario=f"s{EVIL}", evil=True)
    b = write_run(tmp_path / "y" / "evil", scenario=f"s{EVIL}")
    t = compare_table([a, b])
    assert t["run"].tolist() == [f"s{EVIL} (evil)", f"s{EVIL} (evil) #2"]
    html = compare_runs([a, b], tmp_path / "out").read_text(encoding="utf-8")
    assert EVIL not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_errors_name_the_folder_file_or_value(runs, tmp_path, capsys):
    a, b = runs
    assert _cli([a, tmp_path, "--out", tmp_path / "o1"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path}: not a run folder: summary.json is missing" in err

    broken = shutil.copytree(a, tmp_path / "broken")
    (broken / "epidemic.parquet").unlink()
    assert _cli([a, broken, "--out", tmp_path / "o2"]) == 2
    assert f"{broken}: missing epidemic.parquet" in capsys.readouterr().err

    assert _cli([a, b, "--out", tmp_path / "o3", "--at", "2020-03-09"]) == 2
    err = capsys.readouterr().err
    assert "date '2020-03-09'" in err and "outside the run" in err and str(a) in err
    assert not (tmp_path / "o3").exists()  # nothing written on bad input

    assert _cli([a, "--out", tmp_path / "o4", "--at", "someday"]) == 2
    assert "'someday'" in capsys.readouterr().err

    s = _summary(a)
    del s["economy"]["footfall_recovered"]
    partial = shutil.copytree(a, tmp_path / "partial")
    (partial / "summary.json").write_text(json.dumps(s), encoding="utf-8")
    with pytest.raises(RunFolderError, match=r"partial: summary.json: missing economy.footfall_recovered"):
        compare_table([partial])

    assert _cli([a, "--out", tmp_path / "o5", "--city", tmp_path / "nocity"]) == 2
    assert "--city" in capsys.readouterr().err


def test_register_gives_a_one_line_help():
    parser = argparse.ArgumentParser(prog="cityvitals")
    sub = parser.add_subparsers()
    cli.register(sub)
    help_text = [a.help for a in sub._choices_actions if a.dest == "compare"][0]
    assert help_text and "\n" not in help_text
