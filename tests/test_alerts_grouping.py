"""Group timing: group_wait, group_interval, repeat_interval, resolved."""

from engine.alerts.config import AlertConfig
from engine.alerts.grouping import Group


def test_group_wait_interval_repeat_and_resolved():
    cfg = AlertConfig(group_wait=300, group_interval=1800, repeat_interval=3600)
    g = Group(key=("d", "neighbourhood", 0, "epidemic"), first_seen=0)
    assert g.due(0, {1: 1}, cfg) is None and g.due(300, {1: 1}, cfg) == "new"
    g.sent_now(300, {1: 1})
    assert g.due(900, {1: 2}, cfg) is None and g.due(2100, {1: 2}, cfg) == "update"
    g.sent_now(2100, {1: 2})
    assert g.due(2100 + 3599, {1: 2}, cfg) is None and g.due(2100 + 3600, {1: 2}, cfg) == "repeat"
    g.sent_now(5700, {1: 2})
    assert g.due(7500, {}, cfg) == "resolved"
    g.sent_now(7500, {})
    assert g.finished
    assert Group.from_dict(g.to_dict()) == g


def test_a_group_that_empties_before_its_first_notification_sends_nothing():
    cfg = AlertConfig(group_wait=900)
    g = Group(key=("d", "street", 1, "lifelines"), first_seen=0)
    assert g.due(900, {}, cfg) is None and g.finished
