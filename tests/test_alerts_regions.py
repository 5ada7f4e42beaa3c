"""Levels, region ids and containment from the city."""

import numpy as np
import pytest

from engine.alerts.regions import DISTRICT_ID, Hierarchy
from engine.city import City


def test_hierarchy_of_a_districts_city():
    city = City.synthetic(seed=4, neighbourhoods=20, streets=4, population=50_000)
    h = Hierarchy(city)
    assert h.levels == ["neighbourhood", "street", "district"]
    assert h.size("neighbourhood") == 20 and h.size("street") == 4 and h.ids("district") == [DISTRICT_ID]
    assert h.names("district") == [city.name]
    up = h.parent_map("neighbourhood", "street")
    assert np.array_equal(up, city.street_of)
    assert np.array_equal(h.parent_map("street", "district"), np.zeros(4, np.int64))
    r = 7
    assert h.contains("street", int(city.street_of[r]), "neighbourhood", r)
    assert not h.contains("neighbourhood", r, "street", 0)
    assert h.find(city.streets.index[2]) == ("street", 2) and h.find("nowhere") is None
    assert sorted(h.members("street", 0, "neighbourhood").tolist()) == np.flatnonzero(city.street_of == 0).tolist()
    with pytest.raises(ValueError, match="unknown level 'ward'"):
        h.size("ward")
