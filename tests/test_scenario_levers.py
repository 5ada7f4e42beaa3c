"""engine.scenario.levers (what a scheduled lever moves) and engine.scenario.windows (partial windows)."""

import sys
from fnmatch import fnmatchcase
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.catalog import Catalog
from engine.scenario.levers import LEVER_MOVES, lever_changes, moved_indicators, rebaseline_plan
from engine.scenario.windows import mask_partial_windows, window_fill_minutes
from engine.sim.policy import LEVER_DEFAULTS, Timeline

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@pytest.fixture(scope="module")
def ids():
    return [i["id"] for i in Catalog.load().indicators]


def test_every_lever_has_an_entry_and_every_pattern_matches_the_catalog(ids):
    assert set(LEVER_MOVES) == set(LEVER_DEFAULTS)
    for lever, patterns in LEVER_MOVES.items():
        for p in patterns:
            assert any(fnmatchcase(i, p) for i in ids), (lever, p)


def test_staged_reopening_relearns_on_its_three_stage_days(ids):
    from scenarios.staged_reopening import build

    sc = build(0)
    plan = rebaseline_plan(sc.with_history().timeline, ids, since=sc.sim.start)
    assert [str(d) for d in plan] == ["2020-03-09", "2020-03-23", "2020-04-06"]
    levers, rows = plan[np.datetime64("2020-03-09")]
    assert levers == {"sector_share": {"C", "D", "E", "G", "I"}}
    moved = {ids[k] for k in rows}
    assert "market.enterprise.workers_back_e.vs_7d" in moved and "market.enterprise.reopened_all.share_now" in moved
    assert "safety.epidemic.population_inflow.vs_7d" in moved
    assert not any(".reopened_a." in i or ".workers_back_q." in i for i in moved)     # sectors that did not change
    assert not any(i.startswith("safety.epidemic.fever") for i in moved)
    # the history runs under the first day's levers: no change before the period
    assert not rebaseline_plan(sc.with_history().timeline, ids, since=None).keys() - plan.keys()


def test_lever_changes_reports_stage_ends_caps_and_scalars():
    tl = Timeline("2020-03-01", "2020-03-20").at("2020-03-01", venue_cap=0.3, masks=0.6)
    tl.stages([("2020-03-05", "2020-03-09", {"venue_cap": {"mall": 0.5}})]).at("2020-03-12", schools=0.5)
    got = [(str(d), v) for d, v in lever_changes(tl)]
    assert got == [("2020-03-05", {"venue_cap": {"mall"}}), ("2020-03-10", {"venue_cap": {"mall"}}),
                   ("2020-03-12", {"schools": None})]
    assert [str(d) for d, _ in lever_changes(tl, since="2020-03-06")] == ["2020-03-10", "2020-03-12"]


def test_epidemic_only_levers_move_nothing_and_unknown_levers_are_refused(ids):
    assert len(moved_indicators(ids, {"masks": None, "testing": None})) == 0
    assert len(moved_indicators(ids, {"schools": None})) > 0
    with pytest.raises(ValueError, match="lever 'curfew' has no entry"):
        moved_indicators(ids, {"curfew": None})


def test_window_fill_of_the_catalog():
    cat = Catalog.load()
    fill = window_fill_minutes(cat.indicators, cat.feeds)
    by_id = dict(zip((i["id"] for i in cat.indicators), fill))
    assert by_id["livelihood.essential_supplies.service_elderly_visit.count_24h"] == 1440
    assert by_id["safety.public_safety.fire_all.count_1h"] == 60
    assert by_id["safety.epidemic.hospital_staff_absent.sum_7d"] == 0            # a snapshot sum: a time average
    assert by_id["construction.lifelines.water_pressure.mean_1h"] == 0          # a mean of a partial window is a mean
    assert by_id["construction.lifelines.water_pressure.vs_7d"] == 0
    for ind, f in zip(cat.indicators, fill):
        kind = cat.feeds[ind["feed"]]["kind"]
        assert (f > 0) == ((kind, ind["aggregation"]) in (("events", "count"), ("events", "sum"), ("readings", "sum"))) \
            or ind["aggregation"] == "derived", ind["id"]


def test_mask_partial_windows_keeps_the_input_and_masks_by_row():
    rng = np.random.default_rng(1)
    v = rng.random((96, 3, 4))
    t = np.datetime64("2020-02-17T00:15") + np.arange(96) * np.timedelta64(15, "m")
    out = mask_partial_windows(v, t, np.datetime64("2020-02-17T00:00"), np.array([0.0, 60.0, 1440.0]))
    assert not np.isnan(v).any()
    assert not np.isnan(out[:, 0]).any()
    assert np.isnan(out[:3, 1]).all() and not np.isnan(out[3:, 1]).any()       # 60 min seen at 01:00
    assert np.isnan(out[:95, 2]).all() and not np.isnan(out[95, 2]).any()      # a day seen at 24:00
    later = mask_partial_windows(v, t + np.timedelta64(1, "D"), np.datetime64("2020-02-17T00:00"),
                                 np.array([0.0, 60.0, 1440.0]))
    assert later is v


def test_weekday_only_count_24h_from_a_partial_first_day_stays_quiet():
    """A weekday-only count_24h, the replay starting on a Wednesday: withheld partial windows, no
    alarm over four weeks. Unwithheld, the detectors' count floors (a count's level >= 0, its
    spread >= the Poisson spread) keep it quiet too; before them it gave ~3,500 alarms (the shared
    weekly shape learned in units of a ~0 spread, docs/alerts.md round three, docs/detect.md
    "Count rows")."""
    from engine.detect import Detectors

    rng = np.random.default_rng(0)
    n_reg = 40
    t = pd.date_range("2020-02-19 00:15", periods=96 * 28, freq="15min")
    work = (t.day_of_week < 5) & (t.hour >= 8) & (t.hour < 17)
    ev = rng.poisson(np.where(work, 0.5 / 36, 0.0)[:, None] * np.ones(n_reg))
    c = np.cumsum(ev, 0)
    c24 = (c - np.vstack([np.zeros((96, n_reg)), c[:-96]]))[:, None, :].astype(np.float64)

    def alarms(values):
        det = Detectors.from_spec(direction=["down_bad"], seasonality=["weekly"], count=[True], n_reg=n_reg,
                                  window=["24h"], city_rules=True, spatial=False)
        s, _ = det.run(values, t)
        return int((s >= 0.999).sum())

    masked = mask_partial_windows(c24, t.values, np.datetime64("2020-02-19T00:00"), np.array([1440.0]))
    assert np.isnan(masked[:95]).all() and not np.isnan(masked[95:]).any()  # the first day withheld
    assert alarms(masked) == 0
    assert alarms(c24) == 0


@pytest.mark.slow
def test_run_relearns_on_the_lever_day(tmp_path, monkeypatch):
    """A 2-day quick run with every sector reopening on its second day: the runner resets the moved
    indicators' series once, between the last cycle of the day before and the lever day's first,
    and lists the day in the summary."""
    from engine import Scenario
    from engine.detect import rebaseline as module
    from scenarios._common import lockdown

    calls = []
    real = module.rebaseline

    def spy(detectors, indicators, regions=None, **kw):
        last = int(detectors.state.cycle[0])
        out = real(detectors, indicators, regions, **kw)
        calls.append((last, np.asarray(indicators).copy(), regions, detectors.state.nobs[indicators].copy(), kw))
        return out

    monkeypatch.setattr(module, "rebaseline", spy)
    # a Wednesday: the two history days are weekdays
    sc = Scenario("lever_day", "2020-02-26", 2, city=dict(neighbourhoods=30, streets=4, population=100_000),
                  history_days=2)
    lockdown(sc)
    sc.at("2020-02-27", sector_share=1.0)
    summary = sc.run(tmp_path / "run", store_every="1h", progress=False)
    done = summary["detection"]["rebaselined"]
    assert [r["date"] for r in done] == ["2020-02-27"] and done[0]["levers"] == ["sector_share"]
    assert done[0]["series"] == done[0]["indicators"] * 30
    assert len(calls) == 1
    last, rows, regions, nobs, kw = calls[0]
    ids = [i["id"] for i in Catalog.load().indicators]
    plan = rebaseline_plan(sc.with_history().timeline, ids, since=sc.sim.start)
    assert np.array_equal(rows, plan[np.datetime64("2020-02-27")][1]) and regions is None
    cycle = np.timedelta64(15, "m").astype("timedelta64[ns]").astype(np.int64)
    assert last == np.datetime64("2020-02-27T00:00", "ns").astype(np.int64) // cycle   # the day before's last cycle
    assert (nobs == 0).all() and kw["fresh"] is not None
    off = Scenario("lever_day", "2020-02-26", 2, rebaseline_levers=False)
    off.at("2020-02-27", sector_share=1.0)
    assert off.rebaseline_levers is False
