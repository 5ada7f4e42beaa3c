"""The simulator's background outages and gas alarms are listed in the truth as routine events."""

from __future__ import annotations

import pandas as pd

from engine.catalog import Catalog
from engine.city import City
from engine.sim import Scenario, simulate
from engine.sim.incidents import ROUTINE_FEEDS

CITY = City.synthetic(seed=3, neighbourhoods=12, streets=2, population=60_000)
FEEDS = list(ROUTINE_FEEDS)


def _run(incident: bool):
    sc = Scenario("2020-02-03", 3, initial_infections=0, mode="mean_field")
    sc.at("2020-02-03", sector_share=0.3, other=0.5)
    region = CITY.regions.index[0]
    if incident:
        sc.incident("power_outage", "2020-02-04 19:00", "2020-02-04 22:00", regions=[region], magnitude=3.0)
    res = simulate(CITY, sc, seed=5)
    return res, res.feeds(feeds=FEEDS).events


def _key(df):
    return sorted(zip(pd.to_datetime(df["time"]), df["region"].astype(str), df["category"].astype(str)))


def test_routine_events_are_the_background_events_and_not_the_incidents():
    twin, twin_events = _run(False)
    inc, inc_events = _run(True)
    routine = twin.truth.routine_events()
    assert routine, "3 days of 60,000 residents draw some outage / gas-alarm events"
    assert {r["feed"] for r in routine} <= set(FEEDS) and all(r["kind"] == "routine" for r in routine)
    # without incidents every event of those feeds is routine, with its catalog indicator
    assert _key(twin_events) == sorted((pd.Timestamp(r["start"]), r["regions"][0], r["item"]) for r in routine)
    known = set(Catalog.load().ids)
    assert all(r["indicators"][0] in known for r in routine)
    assert all(pd.Timestamp(r["end"]) - pd.Timestamp(r["start"]) == pd.Timedelta("2h") for r in routine)
    # the incident adds events (its reports), not routine ones: the background draw is the same
    assert inc.truth.routine_events() == routine
    assert len(inc_events) > len(twin_events)
    # a day generated twice is recorded once
    twin.feeds(feeds=FEEDS)
    assert twin.truth.routine_events() == routine
