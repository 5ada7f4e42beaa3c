"""Detection quality against injected incidents, by hand."""

import pandas as pd
import pytest

from engine.scenario.quality import detection_quality

CYCLE = pd.Timedelta("15min")
INC = [
    {"kind": "a", "start": "2020-03-01 08:00", "end": "2020-03-01 12:00", "regions": ["N1"], "indicators": ["x.a.b.c"]},
    {"kind": "b", "start": "2020-03-02 08:00", "end": "2020-03-02 09:00", "regions": ["N2", "N3"], "indicators": ["y.a.b.c"]},
]


def fired(rows):
    return pd.DataFrame(rows, columns=["time", "indicator", "region"]).assign(time=lambda d: pd.to_datetime(d["time"]))


def test_all_detected_and_all_matching():
    q = detection_quality(fired([("2020-03-01 08:45", "x.a.b.c", "N1"), ("2020-03-02 08:15", "y.a.b.c", "N3")]), INC, CYCLE)
    assert q["recall"] == 1.0 and q["precision"] == 1.0
    assert [i["detect_cycles"] for i in q["incidents"]] == [3.0, 1.0]
    assert q["median_detect_cycles"] == 2.0


def test_wrong_region_time_or_indicator_do_not_match():
    q = detection_quality(fired([
        ("2020-03-01 08:45", "x.a.b.c", "N9"),      # wrong region
        ("2020-03-01 14:30", "x.a.b.c", "N1"),      # after the end and its 2 h of reports
        ("2020-03-01 09:00", "y.a.b.c", "N1"),      # wrong indicator
        ("2020-03-02 08:30", "y.a.b.c", "N2"),      # the one match
    ]), INC, CYCLE)
    assert q["recall"] == 0.5 and q["precision"] == 0.25 and q["median_detect_cycles"] == 2.0


def test_street_alert_over_an_affected_neighbourhood_matches():
    q = detection_quality(fired([("2020-03-01 08:15", "x.a.b.c", "S1")]), INC[:1], CYCLE, parents={"N1": "S1"})
    assert q["recall"] == 1.0 and q["precision"] == 1.0


def test_no_alerts():
    q = detection_quality(fired([]), INC, CYCLE)
    assert q["recall"] == 0.0 and q["precision"] is None and q["median_detect_cycles"] is None
    with pytest.raises(KeyError):
        detection_quality(fired([]), [{"start": "2020-03-01"}], CYCLE)


def test_subject_match_counts_an_alert_on_another_window_of_the_same_subject():
    rows = [("2020-03-01 08:45", "x.a.b.d", "N1"),      # same subject x.a.b, another indicator
            ("2020-03-01 09:00", "x.a.z.c", "N1")]      # another subject
    strict = detection_quality(fired(rows), INC[:1], CYCLE)
    subject = detection_quality(fired(rows), INC[:1], CYCLE, match="subject")
    assert strict["recall"] == 0.0 and subject["recall"] == 1.0 and subject["precision"] == 0.5
    with pytest.raises(ValueError, match="'both'"):
        detection_quality(fired(rows), INC, CYCLE, match="both")


def test_an_alert_on_a_routine_event_is_true_but_recall_counts_injected_incidents_only():
    gas = {"kind": "routine", "feed": "gas_alarms", "item": "leak", "start": "2020-03-03 10:05",
           "end": "2020-03-03 12:05", "regions": ["N5"], "indicators": ["s.p.gas_leak.count_1h"]}
    rows = [("2020-03-01 08:45", "x.a.b.c", "N1"),        # incident a
            ("2020-03-03 10:50", "s.p.gas_leak.count_1h", "N5"),   # the gas leak
            ("2020-03-03 10:50", "s.p.gas_leak.count_1h", "S1"),   # its street
            ("2020-03-03 10:50", "s.p.gas_leak.count_1h", "N6"),   # another neighbourhood: false
            ("2020-03-03 12:30", "s.p.gas_leak.count_1h", "N5"),   # after the event's span: false
            ("2020-03-03 10:50", "s.p.gas_other.count_1h", "N5")]  # another subject: false
    q = detection_quality(fired(rows), INC + [gas], CYCLE, parents={"N5": "S1"})
    assert q["recall"] == 0.5 and len(q["incidents"]) == 2 and q["median_detect_cycles"] == 3.0
    assert q["routine_alerts"] == 2 and q["precision"] == 0.5
    # an alert that matches an incident is not counted again as routine
    both = detection_quality(fired(rows[:1]), INC + [dict(gas, start="2020-03-01 08:00", regions=["N1"],
                                                           indicators=["x.a.b.c"])], CYCLE)
    assert both["routine_alerts"] == 0 and both["precision"] == 1.0
    # only routine events: no recall to measure
    assert detection_quality(fired(rows), [gas], CYCLE)["recall"] is None


def test_an_alert_just_after_the_end_is_the_incidents_for_precision_not_for_recall():
    rows = [("2020-03-01 13:15", "x.a.b.c", "N1"), ("2020-03-02 08:30", "y.a.b.c", "N2")]
    q = detection_quality(fired(rows), INC, CYCLE)
    assert q["recall"] == 0.5 and q["precision"] == 1.0 and q["after_end_alerts"] == 1
    assert detection_quality(fired(rows), INC, CYCLE, grace=None)["precision"] == 0.5
