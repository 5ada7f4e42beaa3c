"""The planner's Scenario: readable to write, checked before anything runs."""

import pytest

from engine import Scenario


def make(**kw):
    return Scenario("t", "2020-03-01", days=20, city=dict(neighbourhoods=20, population=50_000), **kw)


def test_levers_stages_and_incidents_are_recorded():
    sc = make(seeds=(3, 4))
    sc.at("2020-03-01", sector_share={"C": 0.2}, schools=False).stages([("2020-03-05", "2020-03-10", {"sector_share": 0.5})])
    sc.incident("power_outage", "2020-03-02 19:00", "2020-03-02 22:00", regions=["N0004"])
    assert sc.seeds == (3, 4) and sc.cycle_minutes == 15
    daily = sc.sim.timeline.daily()
    assert float(daily.sector_share[daily.day("2020-03-07"), 0]) == 0.5
    assert len(sc.sim.incidents) == 1
    q = sc.quick(3)
    assert q.days == 3 and q.seeds == (3,) and sc.days == 20


@pytest.mark.parametrize("call, fragment", [
    (lambda sc: sc.at("2020-05-01", masks=0.5), "outside the scenario period"),
    (lambda sc: sc.at("2020-03-02", sector_share={"Z": 0.5}), "'Z'"),
    (lambda sc: sc.at("2020-03-02", sector_share=1.5), "1.5"),
    (lambda sc: sc.stages([("2020-03-02", "2020-03-08", {"masks": 0.5}), ("2020-03-05", "2020-03-09", {"masks": 0.6})]),
     "overlap"),
    (lambda sc: sc.incident("meteor", "2020-03-02", "2020-03-03", regions=["N0001"]), "unknown incident kind 'meteor'"),
])
def test_planner_errors_name_the_value(call, fragment):
    with pytest.raises(ValueError, match=fragment):
        call(make())


@pytest.mark.parametrize("kw, fragment", [
    (dict(seeds=()), "seeds"),
    (dict(seeds=(-1,)), "seeds"),
    (dict(cycle="7min"), "cycle='7min'"),
])
def test_bad_settings(kw, fragment):
    with pytest.raises(ValueError, match=fragment):
        make(**kw)


def test_bad_name():
    with pytest.raises(ValueError, match="scenario name"):
        Scenario("a/b", "2020-03-01", days=3)


def test_city_from_keywords():
    city = make().build_city()
    assert len(city.regions) == 20 and int(city.regions["population"].sum()) == 50_000


def test_history_runs_the_first_days_levers_before_the_period():
    sc = make(history_days=5)
    sc.at("2020-03-01", schools=False).at("2020-03-08", schools=True)
    sc.stages([("2020-03-01", "2020-03-04", {"masks": 0.9}), ("2020-03-10", "2020-03-12", {"masks": 0.5})])
    sc.incident("power_outage", "2020-03-02 19:00", "2020-03-02 22:00", regions=["N0004"])
    sim = sc.with_history()
    assert str(sim.start) == "2020-02-25" and sim.days == 25 and len(sim.incidents) == 1
    d = sim.timeline.daily()
    assert float(d.schools[0]) == 0.0 and float(d.masks[0]) == 0.9          # the first day's levers
    assert float(d.masks[d.day("2020-03-05")]) != 0.9 and float(d.schools[d.day("2020-03-08")]) == 1.0
    assert float(d.masks[d.day("2020-03-11")]) == 0.5
    assert sc.sim.days == 20 and str(sc.sim.start) == "2020-03-01"          # the scenario itself is unchanged
    assert make(history_days=0).with_history() is not None
    with pytest.raises(ValueError, match="history_days=-1"):
        make(history_days=-1)


def test_demo_options(capsys, tmp_path):
    from engine.cli import main
    from engine.cli.scenario import DEMO_STORE_EVERY

    assert main(["demo", "--days", "0", "--out", str(tmp_path / "d")]) == 2
    assert "--days must be >= 1, got 0" in capsys.readouterr().err
    assert main(["demo", "--store-every", "7min", "--out", str(tmp_path / "d")]) == 2
    assert "store_every='7min'" in capsys.readouterr().err and not (tmp_path / "d").exists()
    assert DEMO_STORE_EVERY == "1h"


def test_bundled_incidents_resolve_on_both_cities():
    """Every incident of the bundled scripts finds its site on the demo's and the quick city (the sim
    checks it when the run starts: a 60-day run used to stop on the venue cluster)."""
    import sys
    from pathlib import Path

    from engine.city import City
    from engine.scenario.script import QUICK_CITY
    from engine.sim.mobility import VENUE_KINDS

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from scenarios.staged_reopening import build

    sc = build(seed=0)
    venue = [i for i in sc.sim.incidents if i.kind == "venue_cluster"]
    assert venue
    for kw in ({}, QUICK_CITY):
        sites = City.synthetic(**kw).sites
        regions = set(sites.loc[sites["kind"].isin(VENUE_KINDS), "region"])
        for inc in venue:
            assert inc.site is not None or inc.regions[0] in regions, (kw, inc.regions)
