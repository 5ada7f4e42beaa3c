"""Trend report, storage and table on stored runs in pytest-benchmark's real JSON format.

One real run is saved once per module by running a tiny engine/peer benchmark through
``benchmarks/conftest.py`` with ``--benchmark-autosave``; synthetic histories are copies
of it with controlled times, commits, dates and machines.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from engine.bench.harness import apply_floor, apply_peer_ratios
from engine.bench.report import build_report
from engine.bench.storage import load_run, load_storage
from engine.bench.table import performance_table
from engine.cli import bench as bench_cli

REPO = Path(__file__).resolve().parent.parent
ENGINE_S, PEER_S, PEER_SCALE = 1e-3, 3e-3, 2.0
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=timezone.utc)
COMMIT_MESSAGE = "tiny: first <commit> & more"

TINY = '''
import numpy as np
from engine.bench.harness import assert_same, engine_bench, peer_bench

X = np.arange(20_000, dtype=np.float64)


def engine_cumsum(x):
    return np.cumsum(x)


def peer_cumsum(x):
    import pandas as pd
    return pd.Series(x).cumsum().to_numpy()


def test_tiny_engine(benchmark):
    engine_bench(benchmark, "tiny", bytes_touched=2 * X.nbytes, size="20000 float64")
    out = benchmark(engine_cumsum, X)
    assert out[-1] == X.sum()


def test_tiny_peer(benchmark):
    half = X[:10_000]
    peer_bench(benchmark, "tiny", scale=2.0, size="10000 float64")
    out = benchmark(peer_cumsum, half)
    assert_same(engine_cumsum(half), out)
'''


def run_pytest(folder: Path, *args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    import os

    env = dict(os.environ, PYTHONPATH=str(REPO), CITYVITALS_FLOOR_MIB="4")
    env.pop("CITYVITALS_BENCH_HEAVY", None)
    # Under pytest-xdist the worker's variables would make the inner run think it is a worker too
    # (pytest-benchmark then saves nothing).
    for key in [k for k in env if k.startswith("PYTEST_XDIST") or k == "PYTEST_CURRENT_TEST"]:
        env.pop(key)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("tiny-suite")
    shutil.copy(REPO / "benchmarks" / "conftest.py", folder / "conftest.py")
    (folder / "pytest.ini").write_text("[pytest]\n")
    (folder / "test_tiny.py").write_text(TINY)
    (folder / ".gitignore").write_text("store/\n__pycache__/\n")
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.org", "-c", "commit.gpgsign=false"]
    if shutil.which("git"):  # a throwaway repository, so the run records a real commit
        for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", COMMIT_MESSAGE]):
            subprocess.run(git + cmd, cwd=folder, check=True, capture_output=True, timeout=30)
    store = folder / "store"
    proc = run_pytest(folder, f"--benchmark-storage={store}", "--benchmark-autosave", "--benchmark-min-rounds=5",
                      "--benchmark-max-time=0.02", "--benchmark-warmup=off")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    saved = sorted(store.rglob("*.json"))
    assert len(saved) == 1 and saved[0].name.startswith("0001_")
    data = json.loads(saved[0].read_text())
    data["_path"] = str(saved[0])
    return data


def write_run(storage: Path, template: dict, number: int, *, engine: float = 1.0, peer: float = 1.0,
              machine: str | None = None, commit: str | None = None, commit_time: datetime | None = None,
              when: datetime | None = None, message: str = "work", branch: str = "main",
              spread: float = 0.01) -> Path:
    """A copy of the real run with controlled medians (x factor), IQR, commit, date and machine."""
    d = copy.deepcopy(template)
    d.pop("_path", None)
    when = when or T0 + timedelta(hours=number)
    for b in d["benchmarks"]:
        m = (ENGINE_S * engine) if b["extra_info"]["role"] == "engine" else (PEER_S * peer)
        st = b["stats"]
        st.update(median=m, mean=m, min=m * 0.97, max=m * 1.08, q1=m * (1 - spread), q3=m * (1 + spread),
                  iqr=2 * m * spread, ld15iqr=m * 0.97, hd15iqr=m * 1.05, stddev=m * spread, ops=1 / m,
                  total=m * st["rounds"])
        for k in ("floor_s", "floor_ratio", "floor_Bps", "peer", "peer_median_s", "peer_ratio", "speedup"):
            b["extra_info"].pop(k, None)
        apply_floor(b["extra_info"], m, d["cityvitals"]["floor"]["bandwidth_Bps"])
    apply_peer_ratios(d["benchmarks"])
    cid = commit or hashlib.sha1(str(number).encode()).hexdigest()
    d["commit_info"] = {"id": cid, "time": (commit_time or when).isoformat(), "author_time": None,
                        "dirty": False, "project": "main", "branch": branch, "message": message}
    d["datetime"] = when.isoformat()
    if machine is not None:
        d["machine_info"]["cityvitals"]["cpu_model"] = machine
    folder = storage / "Linux-CPython-3.11-64bit"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{number:04d}_{cid}_{when:%Y%m%d_%H%M%S}.json"
    path.write_text(json.dumps(d, indent=4))
    return path


def history(storage: Path, template: dict, engine_factors, **kw) -> Path:
    for i, f in enumerate(engine_factors, start=1):
        write_run(storage, template, i, engine=f, **kw)
    return storage


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="cityvitals")
    bench_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    return args.handler(args)


# ----------------------------------------------------------------------------- the real saved run

def test_real_saved_run_carries_machine_floor_roles_and_ratios(template):
    mi = template["machine_info"]["cityvitals"]
    assert mi["cpu_model"] and mi["cores"] >= 1 and mi["memory_bytes"] > 0
    floor = template["cityvitals"]["floor"]
    assert floor["bandwidth_Bps"] > 0 and floor["numpy_Bps"] > 0 and floor["nbytes"] == 4 * 2**20
    by_role = {b["extra_info"]["role"]: b for b in template["benchmarks"]}
    eng, peer = by_role["engine"], by_role["peer"]
    assert eng["group"] == peer["group"] == "tiny"
    info = eng["extra_info"]
    assert info["bytes"] == 2 * 20_000 * 8
    assert info["floor_s"] == pytest.approx(info["bytes"] / floor["bandwidth_Bps"])
    assert info["floor_ratio"] == pytest.approx(eng["stats"]["median"] / info["floor_s"])
    scaled = peer["stats"]["median"] * 2.0
    assert info["peer"] == "test_tiny_peer" and info["peer_median_s"] == pytest.approx(scaled)
    assert info["peer_ratio"] == pytest.approx(eng["stats"]["median"] / scaled)
    assert info["speedup"] == pytest.approx(1 / info["peer_ratio"])
    run = load_run(template["_path"])
    if not shutil.which("git"):
        assert run.commit.id is None and run.commit.label == "no commit"
        pytest.skip("git is not installed: commit recording not checked")
    assert template["commit_info"]["message"] == COMMIT_MESSAGE  # added by the conftest hook
    assert len(run.commit.id) == 40 and run.commit.time is not None and not run.commit.dirty
    assert run.commit.message == COMMIT_MESSAGE and run.commit.label == run.commit.id[:8]
    assert run.machine.cores == mi["cores"] and run.floor.bandwidth_Bps == floor["bandwidth_Bps"]


def test_run_without_commit_is_placed_by_its_own_time(tmp_path, template):
    store = tmp_path / "store"
    write_run(store, template, 1)
    path = write_run(store, template, 2, when=T0 + timedelta(days=2))
    data = json.loads(path.read_text())
    data["commit_info"] = {"id": "unknown", "time": None, "dirty": False, "error": "no commits yet"}
    path.write_text(json.dumps(data))
    runs = next(iter(load_storage(store).by_machine().values()))
    assert [r.commit.label for r in runs] == [runs[0].commit.id[:8], "no commit"]
    assert performance_table(store).startswith("Run #0002 of 2025-03-03 08:00 UTC, no commit, on ")


# ----------------------------------------------------------------------------- regressions

@pytest.mark.parametrize("factors", [[1.0, 1.01, 1.3], [1.0, 1.02, 0.99, 1.01, 0.98, 1.3]])
def test_planted_30_percent_slowdown_in_newest_run_is_a_regression(tmp_path, template, factors, capsys):
    store = history(tmp_path / "store", template, factors)
    report = build_report(store, None)
    assert [(f.series.role, f.kind, f.current, f.blocking) for f in report.findings] == \
        [("engine", "regression", True, True)]
    f = report.findings[0]
    assert f.step.index == len(factors) - 1 and f.step.percent == pytest.approx(30.0, abs=3.0)
    assert f.run.number == len(factors)
    assert cli("bench", "trend", "--storage", str(store), "--out", str(tmp_path / "out"), "--no-plots") == 0
    assert cli("bench", "trend", "--storage", str(store), "--out", str(tmp_path / "out"), "--no-plots",
               "--fail-on", "regression") == 1
    out, err = capsys.readouterr()
    assert "REGRESSION" in out and "tiny: test_tiny_engine" in out and "FAIL" in err
    assert "REGRESSION" in (tmp_path / "out" / "changes.txt").read_text()


def test_three_percent_wobble_is_not_a_regression(tmp_path, template, capsys):
    store = history(tmp_path / "store", template, [1.0, 1.03, 0.97, 1.03, 0.97, 1.03, 0.98, 1.03])
    assert build_report(store, None).findings == []
    assert cli("bench", "trend", "--storage", str(store), "--out", str(tmp_path / "out"), "--no-plots",
               "--fail-on", "regression") == 0
    assert "No significant regressions or improvements." in capsys.readouterr().out


def test_improvement_is_listed_and_does_not_fail(tmp_path, template):
    store = history(tmp_path / "store", template, [1.0, 1.01, 0.99, 0.7, 0.71, 0.69])
    report = build_report(store, None)
    assert [(f.kind, f.step.index, f.blocking) for f in report.findings] == [("improvement", 3, False)]
    assert report.improvements[0].step.percent == pytest.approx(-30.0, abs=2.0)
    assert cli("bench", "trend", "--storage", str(store), "--out", str(tmp_path / "o"), "--no-plots",
               "--fail-on", "regression") == 0


def test_older_regression_is_listed_but_fails_only_within_recent_commits(tmp_path, template):
    store = history(tmp_path / "store", template, [1.0, 1.0, 1.01, 1.3, 1.3, 1.31])
    report = build_report(store, None)
    assert [(f.kind, f.step.index, f.current) for f in report.findings] == [("regression", 3, False)]
    out = str(tmp_path / "o")
    assert cli("bench", "trend", "--storage", str(store), "--out", out, "--no-plots", "--fail-on", "regression") == 0
    assert cli("bench", "trend", "--storage", str(store), "--out", out, "--no-plots", "--fail-on", "regression",
               "--recent", "3") == 1


def test_slower_peer_is_listed_but_never_fails(tmp_path, template):
    store = tmp_path / "store"
    for i, p in enumerate([1.0, 1.01, 0.99, 1.35], start=1):
        write_run(store, template, i, peer=p)
    report = build_report(store, None)
    assert [(f.series.role, f.kind, f.current, f.blocking) for f in report.findings] == \
        [("peer", "regression", True, False)]
    assert report.failing == []


def test_runs_of_two_machines_are_never_compared(tmp_path, template):
    store = tmp_path / "store"
    for i in range(1, 9):  # interleaved: machine B is 50 % slower than machine A, both steady
        b = i % 2 == 0
        write_run(store, template, i, engine=1.5 if b else 1.0, peer=1.5 if b else 1.0,
                  machine="Other CPU 9000" if b else None)
    report = build_report(store, None)
    assert report.findings == []
    machines = load_storage(store).by_machine()
    assert len(machines) == 2 and all(len(runs) == 4 for runs in machines.values())
    assert sorted((s.machine.cpu_model, len(s.results)) for s in report.series)[-1] == ("Other CPU 9000", 4)
    # a slowdown on B only is found on B only
    write_run(store, template, 9, engine=1.5 * 1.3, peer=1.5, machine="Other CPU 9000")
    report = build_report(store, None)
    assert [(f.series.machine.cpu_model, f.kind, f.blocking) for f in report.findings] == \
        [("Other CPU 9000", "regression", True)]


def test_history_follows_commit_time_and_skips_unreadable_files(tmp_path, template, capsys):
    store = tmp_path / "store"
    write_run(store, template, 1, commit="a" * 40)
    write_run(store, template, 2, commit="c" * 40)
    # an older commit benchmarked last sorts before the others
    write_run(store, template, 3, commit="b" * 40, commit_time=T0 - timedelta(days=1))
    (store / "Linux-CPython-3.11-64bit" / "0004_broken.json").write_text("{not json")
    st = load_storage(store)
    assert [r.commit.id[0] for r in next(iter(st.by_machine().values()))] == ["b", "a", "c"]
    assert len(st.skipped) == 1 and "0004_broken.json" in str(st.skipped[0][0])
    assert "not valid JSON" in st.skipped[0][1]
    assert cli("bench", "trend", "--storage", str(store), "--out", str(tmp_path / "o"), "--no-plots") == 0
    assert "skipped" in capsys.readouterr().err


def test_missing_storage_and_bad_out_exit_2_naming_them(tmp_path, template, capsys):
    assert cli("bench", "trend", "--storage", str(tmp_path / "nope"), "--out", str(tmp_path / "o")) == 2
    assert str(tmp_path / "nope") in capsys.readouterr().err
    store = history(tmp_path / "store", template, [1.0, 1.0, 1.0])
    (tmp_path / "file").write_text("x")
    assert cli("bench", "trend", "--storage", str(store), "--out", str(tmp_path / "file")) == 2
    assert "is a file" in capsys.readouterr().err
    assert cli("bench", "table", "--storage", str(tmp_path / "nope")) == 2
    with pytest.raises(SystemExit):
        cli("bench", "trend", "--storage", str(store), "--out", "o", "--threshold", "lots")


# ----------------------------------------------------------------------------- HTML, figures, table

def test_html_escapes_text_and_links_rendered_pngs(tmp_path, template):
    store = tmp_path / "store"
    evil = "<script>alert('x')</script> & \"quotes\""
    for i, f in enumerate([1.0, 1.01, 0.99, 1.3], start=1):
        write_run(store, template, i, engine=f, message=evil, branch="<b>feature</b>")
    report = build_report(store, tmp_path / "out")
    page = report.index_path.read_text()
    assert "<script>alert" not in page and "<b>feature" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;quotes&quot;" in page
    assert "&lt;b&gt;feature&lt;/b&gt;" in page
    assert "+30" in page or "+29" in page or "+31" in page
    pngs = sorted((tmp_path / "out").rglob("*.png"))
    assert len(pngs) == 3  # engine, peer, floor-bandwidth
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
        assert f'src="{p.relative_to(tmp_path / "out").as_posix()}"' in page


def test_table_has_the_columns_and_ratios_of_the_newest_run(tmp_path, template, capsys):
    store = tmp_path / "store"
    write_run(store, template, 1, engine=2.0)
    write_run(store, template, 2, engine=1.0, machine="Other CPU 9000", message="newest")
    text = performance_table(store)
    head, blank, header, rule, *rows = text.strip().split("\n")
    assert head.startswith(f"Run #0002 of 2025-03-01 10:00 UTC, commit `{hashlib.sha1(b'2').hexdigest()[:10]}`")
    assert "Other CPU 9000" in head and "memory-bandwidth floor" in head and blank == ""
    assert header == "| benchmark | median | peer | speed-up | floor ratio |"
    assert rule == "|---|---:|---:|---:|---:|"
    run = load_storage(store).newest()
    eng = next(r for r in run.results.values() if r.role == "engine")
    assert rows == [f"| tiny: test_tiny_engine | 1 ms | 6 ms (peer x2) | 6.0x | {eng.floor_ratio:.1f} |"]
    assert cli("bench", "table", "--storage", str(store)) == 0
    assert capsys.readouterr().out == text


def test_cityvitals_entry_point_has_bench_commands(tmp_path, template, capsys):
    from engine.cli import main

    store = history(tmp_path / "store", template, [1.0, 1.0, 1.0])
    assert main(["bench", "table", "--storage", str(store)]) == 0
    assert "| benchmark | median |" in capsys.readouterr().out
