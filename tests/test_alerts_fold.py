"""One alert per subject and region: the fold kernel against numpy, and the manager with it."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from engine.alerts import AlertConfig, AlertManager
from engine.alerts.fold import Fold, subject_of
from engine.catalog import Catalog
from engine.city import City


def test_fold_equals_a_numpy_reference_on_random_scores():
    rng = np.random.default_rng(3)
    ids = [f"d.m.s{k % 7}.v{k}" for k in range(40)]
    f = Fold(ids)
    assert f.n_rows == 7 and f.subjects == [f"d.m.s{k}" for k in range(7)]
    score = rng.random((40, 9)).astype(np.float32)
    score[rng.random((40, 9)) < 0.3] = np.nan
    score[np.arange(0, 40, 7), 4] = np.nan                      # subject s0 has no opinion in region 4
    det = rng.integers(0, 7, (40, 9)).astype(np.int8)
    val = rng.random((40, 9)).astype(np.float32)
    fs, fd, fv, lead = f.apply(score, det, val)
    for g in range(7):
        rows = [k for k in range(40) if k % 7 == g]
        for r in range(9):
            col = score[rows, r]
            if np.isnan(col).all():
                assert np.isnan(fs[g, r]) and lead[g, r] == rows[0]
                continue
            k = rows[int(np.nanargmax(col))]                     # first of the highest
            assert fs[g, r] == score[k, r] and lead[g, r] == k and fd[g, r] == det[k, r] and fv[g, r] == val[k, r]


def test_fold_per_indicator_is_the_identity_and_bad_setting_is_named():
    assert Fold(["a.b.c.d", "a.b.c.e"], per="indicator").identity
    assert subject_of("a.b") == "a.b"
    with pytest.raises(ValueError, match="alert_per.*'both'"):
        AlertConfig(alert_per="both")


def _manager(tmp_path, per, windows="all"):
    cat = Catalog.load()
    fever = [i for i in cat.indicators if subject_of(i["id"]) == "safety.epidemic.fever_clinic_visits"]
    other = [i for i in cat.indicators if subject_of(i["id"]) == "construction.lifelines.water_pressure"][:2]
    sub = SimpleNamespace(indicators=fever + other, departments=cat.departments, dimensions=cat.dimensions)
    city = City.synthetic(seed=1, neighbourhoods=6, streets=2, population=20_000)
    am = AlertManager(sub, city, store=tmp_path / f"{per}.sqlite", config=AlertConfig(pending_cycles=2, alert_per=per,
                                                                                      alert_windows=windows))
    return am, len(fever)


@pytest.mark.parametrize("per", ["subject", "indicator"])
def test_correlated_indicators_of_one_subject_raise_one_alert(tmp_path, per):
    am, n_fever = _manager(tmp_path, per)
    assert n_fever >= 3
    s = np.full((am.n_indicators, 6), 0.5, np.float32)
    for c in range(4):
        s[:n_fever, 2] = 0.995                                   # every fever indicator in N0003
        s[1, 2] = 0.9995 if c >= 1 else 0.995                   # the second one leads from cycle 1 on
        s[n_fever, 4] = 0.995                                    # one water-pressure indicator in N0005
        am.process(1_580_515_200 + 900 * c, s)
    alerts = am.store.list_alerts()
    fever = [a for a in alerts if a["region"] == "N0003"]
    water = [a for a in alerts if a["region"] == "N0005"]
    assert len(water) == 1 and all(a["state"] == "firing" for a in alerts)
    if per == "subject":
        assert len(fever) == 1
        assert fever[0]["indicator"] == am.router.ids[1] and fever[0]["severity"] == "critical"
    else:
        assert len(fever) == n_fever
    # the series resolves when every indicator of the subject is quiet again
    s[:] = 0.5
    am.process(1_580_515_200 + 900 * 4, s)
    assert all(a["state"] == "resolved" for a in am.store.list_alerts())
    am.close()


def test_subject_alerts_survive_a_checkpoint(tmp_path):
    am, n_fever = _manager(tmp_path, "subject")
    s = np.full((am.n_indicators, 6), 0.5, np.float32)
    s[:n_fever, 2] = 0.995
    for c in range(3):
        am.process(1_580_515_200 + 900 * c, s)
    am.save_state(tmp_path / "state.npz")
    am.close()
    cat, city = am.router, am.city
    sub = SimpleNamespace(indicators=cat.indicators, departments=Catalog.load().departments, dimensions={})
    again = AlertManager(sub, city, store=tmp_path / "subject.sqlite", config=AlertConfig(pending_cycles=2, alert_windows="all"),
                         checkpoint=tmp_path / "state.npz")
    s[:] = 0.5
    again.process(1_580_515_200 + 900 * 3, s)
    assert [a["state"] for a in again.store.list_alerts()] == ["resolved"]
    again.close()


def test_only_the_subjects_shortest_window_drives_its_alert(tmp_path):
    am, n_fever = _manager(tmp_path, "subject", windows="shortest")
    ids = am.router.ids
    short = [k for k in range(n_fever) if ids[k].endswith("_1h")]
    assert short and am.fold.drives[short].all() and not am.fold.drives[[k for k in range(n_fever) if k not in short]].any()
    s = np.full((am.n_indicators, 6), 0.5, np.float32)
    s[[k for k in range(n_fever) if k not in short], 2] = 0.9995      # only the 6 h / 24 h / 7 d windows are high
    for c in range(3):
        am.process(1_580_515_200 + 900 * c, s)
    assert am.store.list_alerts() == []
    s[short, 2] = 0.995
    for c in range(3, 6):
        am.process(1_580_515_200 + 900 * c, s)
    [alert] = am.store.list_alerts()
    assert alert["indicator"] == ids[short[0]] and alert["region"] == "N0003"
    am.close()
