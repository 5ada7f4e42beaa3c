"""The bundled scenarios' incidents are placed where the quick and the demo city have their data."""

from __future__ import annotations

import pandas as pd
import pytest

from engine.catalog import Catalog
from engine.city import City
from engine.scenario.script import QUICK_CITY
from engine.sim.feeds import feed_specs
from engine.sim.policy import VENUE_KINDS
from scenarios import staged_reopening

SPECS = feed_specs()
SC = staged_reopening.build()
INCIDENTS = list(SC.sim.incidents)
CITIES = {"quick": dict(QUICK_CITY), "demo": dict(seed=0)}   # the demo: Scenario.build_city's default


@pytest.fixture(scope="module", params=sorted(CITIES))
def city(request):
    return request.param, City.synthetic(**CITIES[request.param])


def test_every_kind_is_bundled_once_with_catalog_indicators():
    assert sorted(i.kind for i in INCIDENTS) == sorted({i.kind for i in INCIDENTS}) and len(INCIDENTS) == 7
    known = set(Catalog.load().ids)
    assert all(set(i.indicators) <= known for i in INCIDENTS)
    assert all(r in {f"N{k:04d}" for k in range(1, 31)} for i in INCIDENTS for r in i.regions)


def test_every_incident_has_the_emitters_of_its_feeds_in_both_cities(city):
    name, c = city
    for inc in INCIDENTS:
        for feed, item in inc.effects:
            spec = SPECS[feed]
            if spec["emitter"] not in ("sensor", "site"):
                continue          # region events: every neighbourhood has them
            table = c.sensors if spec["emitter"] == "sensor" else c.sites
            have = table[table.kind.isin(spec["emitter_kinds"]) & table.region.isin(inc.regions)]
            assert len(have), f"{name} city: {inc.kind} in {inc.regions} has no {spec['emitter_kinds']} for {feed}"
        if inc.kind == "venue_cluster":       # the simulator picks the largest venue of the first region
            s = c.sites
            assert ((s.region == inc.regions[0]) & s.kind.isin(list(VENUE_KINDS))).any(), name


def test_weekly_indicators_are_judged_after_their_warm_up():
    """A weekly series scores after two seasons (14 days of data, history included)."""
    cat = Catalog.load()
    first = pd.Timestamp(str(SC.sim.start)) + pd.Timedelta(days=14 - SC.history_days)
    for inc in INCIDENTS:
        if all(cat.get(i)["seasonality"] == "weekly" for i in inc.indicators):
            assert inc.start >= first, f"{inc.kind} at {inc.start}: its indicators are silent until {first}"
