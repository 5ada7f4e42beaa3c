"""Silence matching and expiry."""

import pytest

from engine.alerts.silences import Silence, parse_expiry


def sil(**kw):
    return Silence(id=1, author="ops", comment="works", created_at=100, expires_at=200, **kw)


def test_active_window_and_removal():
    s = sil(region="S01")
    assert s.active(0) and s.active(199) and not s.active(200)
    assert not sil(region="S01", starts_at=150).active(120)
    s.removed_at = 150
    assert not s.active(160)


def test_each_matcher_and_all_must_match():
    fields = dict(indicator="safety.epidemic.cases.count_24h", dimension="epidemic", department="cdc",
                  region_ids=("N0001", "S01", "district"))
    assert sil(indicator="safety.epidemic.*").matches_fields(**fields)
    assert sil(indicator="safety.epidemic.cases.count_24h").matches_fields(**fields)
    assert not sil(indicator="safety.public_order.*").matches_fields(**fields)
    assert sil(region="S01").matches_fields(**fields) and sil(region="district").matches_fields(**fields)
    assert not sil(region="S02").matches_fields(**fields)
    assert sil(dimension="epidemic", department="cdc").matches_fields(**fields)
    assert not sil(dimension="epidemic", department="health_commission").matches_fields(**fields)


def test_validation_and_expiry_parsing():
    with pytest.raises(ValueError, match="at least one matcher"):
        sil()
    with pytest.raises(ValueError, match="non-empty comment"):
        Silence(id=1, author="a", comment=" ", created_at=0, expires_at=9, region="x")
    with pytest.raises(ValueError, match="must expire after it starts"):
        Silence(id=1, author="a", comment="c", created_at=10, expires_at=5, region="x")
    assert parse_expiry("30m", 0) == 1800 and parse_expiry(500, 0) == 500
    with pytest.raises(ValueError, match="got 'later'"):
        parse_expiry("later", 0)
