"""Policy timeline: resolution of dated levers and stages, eager validation."""

import numpy as np
import pytest

from engine.sim.policy import SECTORS, VENUE_KINDS, Stage, Timeline


def tl():
    return Timeline("2020-02-01", "2020-04-30")


def test_at_changes_carry_over_and_stages_restore():
    t = tl().at("2020-02-10", sector_share={"C": 0.3}, schools=False, venue_cap={"mall": 0.5}, masks=0.7)
    t.at("2020-03-01", sector_share=0.6, testing=0.5)
    t.stages([Stage("2020-03-10", "2020-03-19", {"sector_share": 0.9}),
              {"start": "2020-03-25", "end": "2020-03-31", "schools": True}])
    d = t.daily()
    c = SECTORS.index("C")
    assert d.sector_share[d.day("2020-02-09"), c] == 1.0
    assert d.sector_share[d.day("2020-02-10"), c] == 0.3 and d.sector_share[d.day("2020-02-10"), 0] == 1.0
    assert d.sector_share[d.day("2020-03-05")].tolist() == [0.6] * 20
    assert d.sector_share[d.day("2020-03-15"), 5] == 0.9
    assert d.sector_share[d.day("2020-03-20"), 5] == 0.6            # back after the stage
    assert d.schools[d.day("2020-03-24")] == 0.0 and d.schools[d.day("2020-03-25")] == 1.0
    assert d.schools[d.day("2020-04-01")] == 0.0
    m = VENUE_KINDS.index("mall")
    assert d.venue_cap[d.day("2020-02-10"), m] == 0.5 and np.isinf(d.venue_cap[d.day("2020-02-10"), 0 if m else 1])
    assert d.masks[0] == 1.0 and d.masks[-1] == 0.7 and d.testing[-1] == 0.5
    frame = d.to_frame()
    assert len(frame) == 90 and "sector_C" in frame and "cap_mall" in frame


@pytest.mark.parametrize("call,message", [
    (lambda t: t.at("2020-05-01", masks=0.5), "2020-05-01 is outside the scenario period 2020-02-01..2020-04-30"),
    (lambda t: t.at("2020-01-31", masks=0.5), "outside the scenario period"),
    (lambda t: t.at("2020-03-01", sector_share={"U": 0.5}), "unknown sector 'U'.*A..T"),
    (lambda t: t.at("2020-03-01", sector_share={"C": 1.5}), r"sector_share\['C'\]=1.5 is outside 0..1"),
    (lambda t: t.at("2020-03-01", sector_share=-0.1), "sector_share=-0.1 is outside 0..1"),
    (lambda t: t.at("2020-03-01", venue_cap={"cinema": 0.5}), "unknown venue kind 'cinema'"),
    (lambda t: t.at("2020-03-01", masks="yes"), "masks='yes': expected a number in 0..1"),
    (lambda t: t.at("2020-03-01", curfew=True), "unknown lever 'curfew'"),
    (lambda t: t.at("2020-03-01", arrivals=-5), "arrivals=-5"),
    (lambda t: t.at("2020-03-01"), "names no lever"),
    (lambda t: t.at("not a date", masks=0.5), "not a date: 'not a date'"),
    (lambda t: t.stages([("2020-03-01", "2020-03-14", {"masks": 0.5}), ("2020-03-10", "2020-03-20", {"masks": 0.6})]),
     "stage 2020-03-10..2020-03-20 overlaps stage 2020-03-01..2020-03-14"),
    (lambda t: t.stages([("2020-03-14", "2020-03-01", {"masks": 0.5})]), "ends 2020-03-01 before it starts"),
    (lambda t: t.stages([("2020-04-20", "2020-05-10", {"masks": 0.5})]), "2020-05-10 is outside"),
])
def test_validation_errors_name_the_value(call, message):
    with pytest.raises(ValueError, match=message):
        call(tl())


def test_overlap_with_earlier_stages_is_caught():
    t = tl().stages([("2020-03-01", "2020-03-14", {"masks": 0.5})])
    with pytest.raises(ValueError, match="overlaps"):
        t.stages([("2020-03-14", "2020-03-20", {"masks": 0.6})])
    t.stages([("2020-03-15", "2020-03-20", {"masks": 0.6})])      # adjacent is fine


def test_sectors_match_city_when_available():
    city = pytest.importorskip("engine.city")
    codes = [s.code if hasattr(s, "code") else str(s) for s in city.SECTORS]
    assert tuple(codes) == SECTORS


def test_venue_kinds_and_age_bands_match_city_when_available():
    city = pytest.importorskip("engine.city")
    from engine.sim.contacts import AGE_BANDS

    assert set(VENUE_KINDS) <= set(city.SITE_KINDS)
    assert tuple(city.AGE_BANDS) == AGE_BANDS
