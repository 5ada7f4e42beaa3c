"""Tests for ``cityvitals city`` (engine/cli/city.py): describe and save."""

from __future__ import annotations

import json

import pytest

from engine.city import City
from engine.cli import main as cli_main


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = cli_main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_describe_json_is_stable(capsys):
    args = ["city", "describe", "--json", "--seed", "4", "--neighbourhoods", "30", "--streets", "3", "--population", "80000"]
    code, out1, _ = run_cli(capsys, *args)
    assert code == 0
    d1 = json.loads(out1)
    assert {"neighbourhoods", "streets", "population", "area_km2", "sites", "enterprises", "sensors", "fingerprint", "name", "kind"} <= set(d1)
    assert d1["neighbourhoods"] == 30 and d1["population"] == 80_000
    code, out2, _ = run_cli(capsys, *args)
    assert json.loads(out2)["fingerprint"] == d1["fingerprint"]
    assert d1["fingerprint"] == City.synthetic(seed=4, neighbourhoods=30, streets=3, population=80_000).fingerprint()


def test_cli_save_then_describe_path(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "city", "save", "--seed", "3", "--neighbourhoods", "25", "--streets", "2",
                           "--population", "60000", "--out", str(tmp_path / "c"))
    assert code == 0 and "fingerprint" in out
    fp = City.synthetic(seed=3, neighbourhoods=25, streets=2, population=60_000).fingerprint()
    code, text, _ = run_cli(capsys, "city", "describe", "--path", str(tmp_path / "c"))
    assert code == 0
    assert f"fingerprint {fp}" in text and "25 neighbourhoods in 2 streets" in text and "population 60,000" in text
    code, out, _ = run_cli(capsys, "city", "describe", "--json", "--path", str(tmp_path / "c"))
    assert json.loads(out)["fingerprint"] == fp


def test_cli_errors_exit_2(capsys, tmp_path):
    code, _, err = run_cli(capsys, "city", "describe", "--neighbourhoods", "0")
    assert code == 2 and "neighbourhoods must be >= 1, got 0" in err
    code, _, err = run_cli(capsys, "city", "describe", "--path", str(tmp_path / "nope"))
    assert code == 2 and "bad city file" in err
    code, _, err = run_cli(capsys, "city", "describe", "--path", str(tmp_path), "--seed", "1")
    assert code == 2 and "cannot be combined with --seed" in err
    with pytest.raises(SystemExit):
        cli_main(["--help"])
    help_text = capsys.readouterr().out
    assert "city" in help_text and "describe or save a city model" in help_text
