"""Tests for engine.city.vocab: age bands, sectors, site and sensor kinds."""

from __future__ import annotations

from engine.city import AGE_BANDS, AGE_COLUMNS, SECTORS, SENSOR_KINDS, SITE_KINDS


def test_vocabulary_constants():
    assert AGE_BANDS[:3] == ["0-4", "5-9", "10-14"] and AGE_BANDS[-2:] == ["70-74", "75+"] and len(AGE_BANDS) == 16
    assert AGE_COLUMNS[0] == "age_0_4" and AGE_COLUMNS[-1] == "age_75_plus" and len(AGE_COLUMNS) == 16
    assert [s.code for s in SECTORS] == list("ABCDEFGHIJKLMNOPQRST")
    code, zh, en = SECTORS[2]
    assert (code, zh, en) == ("C", "制造业", "manufacturing")
    assert SECTORS[-1].zh == "国际组织"
    assert list(SITE_KINDS) == [
        "pharmacy", "compound_gate", "mall", "wet_market", "supermarket", "restaurant", "street_shop",
        "office_building", "construction_site", "metro_station", "school", "hospital", "elderly_care", "hotel",
    ]
    assert SITE_KINDS["compound_gate"].zh == "小区门岗" and SITE_KINDS["street_shop"].per_1m1 == 1500
    assert list(SENSOR_KINDS) == [
        "road_segment", "water_meter", "power_meter", "gas_meter", "drainage_gauge", "lift_monitor",
        "air_monitor", "noise_monitor", "camera",
    ]
    assert SENSOR_KINDS["camera"].zh == "视频监控点"
