"""``cityvitals catalog ...`` end to end through the CLI entry point."""

import json

import pytest

from engine.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_stats_json(capsys):
    code, out, _ = run(capsys, "catalog", "stats", "--json")
    stats = json.loads(out)
    assert code == 0
    assert set(stats) == {"total", "by_domain", "by_dimension", "dimensions_per_domain", "by_feed", "by_owner"}
    assert stats["total"] >= 2600 and len(stats["by_dimension"]) == 12
    assert set(stats["dimensions_per_domain"].values()) == {3}


def test_list_json_filters_and_carries_every_field(capsys):
    code, out, _ = run(capsys, "catalog", "list", "--domain", "market", "--dimension", "supervision", "--json")
    rows = json.loads(out)
    assert code == 0 and rows
    assert all(r["domain"] == "market" and r["dimension"] == "supervision" for r in rows)
    for field in ("id", "name_zh", "name_en", "unit", "feed", "filter", "aggregation", "window", "normalisation",
                  "direction", "rollup", "seasonality", "thresholds", "owner", "weight"):
        assert field in rows[0]
    code, out, _ = run(capsys, "catalog", "list", "--feed", "gas_alarms")
    assert code == 0 and "safety.public_safety.gas_leak.count_1h" in out


def test_list_unknown_domain_is_an_error(capsys):
    code, _, err = run(capsys, "catalog", "list", "--domain", "weather")
    assert code == 2 and "unknown domain 'weather'" in err


def test_show(capsys):
    code, out, _ = run(capsys, "catalog", "show", "safety.epidemic.fever_clinic_visits.per10k_24h")
    assert code == 0 and "per_10k_residents" in out and "发热门诊就诊人次" in out
    code, _, err = run(capsys, "catalog", "show", "safety.epidemic.nothing.per10k_24h")
    assert code == 1 and "unknown indicator" in err


def test_validate_good_and_bad(capsys, tmp_path):
    code, out, _ = run(capsys, "catalog", "validate")
    assert code == 0 and out.startswith("valid:")
    (tmp_path / "bad.toml").write_text('domain = "safety"\n[[indicator]]\nid = "safety.epidemic.x.y"\n', encoding="utf-8")
    code, out, _ = run(capsys, "catalog", "validate", str(tmp_path))
    assert code == 1 and "invalid catalog" in out and "bad.toml: safety.epidemic.x.y: name_zh: missing or empty" in out
    code, out, _ = run(capsys, "catalog", "validate", str(tmp_path), "--json")
    assert code == 1 and {"file": "bad.toml", "entry": "safety.epidemic.x.y", "field": "owner",
                          "reason": "missing or empty"} in json.loads(out)


def test_docs(capsys, tmp_path):
    out_file = tmp_path / "sub" / "catalog.md"
    code, out, _ = run(capsys, "catalog", "docs", "--out", str(out_file))
    text = out_file.read_text(encoding="utf-8")
    assert code == 0 and "wrote" in out
    assert "## 大平安 Safety (`safety`)" in text and "### 疫情防控 Epidemic control (`epidemic`)" in text
    assert "`safety.epidemic.fever_clinic_visits.per10k_24h`" in text


def test_help_describes_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for cmd in ("city", "catalog", "compute", "simulate", "replay", "demo", "compare", "alerts", "explain", "map",
                "nab", "bench"):
        assert f"    {cmd} " in out, cmd


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and "cityvitals 0.1.0" in capsys.readouterr().out
