"""AlertConfig defaults and validation; time and duration parsing."""

import datetime as dt

import numpy as np
import pytest

from engine import levels
from engine.alerts.config import AlertConfig, iso, parse_duration, to_epoch


def test_defaults_come_from_engine_levels():
    c = AlertConfig()
    assert (c.fire_level, c.critical_level, c.clear_level) == (levels.WARN, levels.CRITICAL, levels.CLEAR)
    assert c.pending_cycles == 3 and c.group_interval == 1800 and c.repeat_interval == 14400
    assert c.inhibit_by == ("district",) and c.webhook_max_attempts == 0
    assert AlertConfig(inhibit_by="street").inhibit_by == ("street",)


@pytest.mark.parametrize("kw, message", [
    (dict(pending_cycles=0), "pending_cycles must be an integer in 1..10000, got 0"),
    (dict(clear_level=0.995), "clear_level < fire_level"),
    (dict(flap_threshold=3, flap_clear=3), "flap_clear must be below flap_threshold"),
    (dict(group_interval="soon"), "group_interval must be seconds or a duration"),
    (dict(webhook_backoff=0), "webhook_backoff must be a positive number"),
    (dict(flap_window=64), "flap_window must be an integer in 1..63"),
])
def test_bad_settings_name_the_value(kw, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        AlertConfig(**kw)


def test_durations_and_times():
    assert [parse_duration(x) for x in ("90s", "15m", "2h", "1d", "1h30m", 60, "120")] == [90, 900, 7200, 86400, 5400, 60, 120]
    for bad in ("", "2x", "h", -1, True):
        with pytest.raises(ValueError):
            parse_duration(bad)
    t = 1_580_515_200
    assert to_epoch("2020-02-01T00:00:00Z") == to_epoch("2020-02-01T08:00:00+08:00") == t
    assert to_epoch(np.datetime64("2020-02-01")) == to_epoch(dt.datetime(2020, 2, 1)) == to_epoch(float(t)) == t
    assert iso(t) == "2020-02-01T00:00:00Z" and iso(None) is None
    with pytest.raises(ValueError, match="got 'yesterday'"):
        to_epoch("yesterday")
