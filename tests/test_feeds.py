"""engine.feeds: Feeds, reading files, every quarantine reason, the encoded arrays."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.catalog import Catalog
from engine.city import City
from engine.feeds import (
    REASONS, Encoded, FeedError, Feeds, Quarantine, corrupt_feeds, encode, synthetic_feeds,
)
from engine.feeds.schema import MAPPABLE

NOW = pd.Timestamp("2020-02-01 09:00")


@pytest.fixture(scope="module")
def catalog():
    return Catalog.load()


@pytest.fixture(scope="module")
def city():
    return City.synthetic(seed=1, neighbourhoods=30, streets=3, population=100_000)


def first(table, kind):
    return str(table.index[table["kind"] == kind][0])


def event(**kw):
    row = {"time": "2020-02-01 08:00", "feed": "fire_alarms", "category": "kitchen_fire", "region": "N0001"}
    row.update(kw)
    return row


def reading(city, **kw):
    row = {"time": "2020-02-01 08:00", "feed": "road_traffic", "sensor": first(city.sensors, "road_segment"),
           "metric": "speed", "value": 30.0}
    row.update(kw)
    return row


def snapshot(city, **kw):
    row = {"time": "2020-02-01 08:00", "feed": "enterprise_status", "entity": str(city.enterprises.index[0]),
           "field": "open", "value": 1.0}
    row.update(kw)
    return row


def run(city, catalog, kind, rows, **kw):
    kw.setdefault("now", NOW)
    enc, q = encode(Feeds(**{kind: pd.DataFrame(rows)}), city, catalog, **kw)
    assert enc.n_rows[kind] + len(q) == len(rows)
    return enc, q


# ============================================================================ every reason


def _cases(city):
    water = first(city.sensors, "water_meter")
    return {
        "bad_timestamp": ("events", [event(time="Feb 30th, lunchtime")], {}, ["'Feb 30th, lunchtime'", "ISO 8601"]),
        "unknown_feed": ("events", [event(feed="fire_alarmz")], {}, ["'fire_alarmz'", "not in the catalog"]),
        "future_timestamp": ("events", [event(time="2020-02-02 08:00")], {}, ["2020-02-02 08:00:00", "2020-02-01 09:00:00"]),
        "too_late": ("events", [event(time="2020-01-31 08:00")], {"watermark": "2020-02-01 08:30"},
                     ["2020-01-31 08:00:00", "6h", "fire_alarms"]),
        "unknown_category": ("events", [event(category="alien_fire")], {}, ["'alien_fire'", "kitchen_fire"]),
        "unknown_channel": ("events", [event(feed="hotline_tickets", category="garbage", channel="fax")], {},
                            ["'fax'", "citizen_hotline"]),
        "unknown_region": ("events", [event(region="N9999")], {}, ["'N9999'"]),
        "no_location": ("events", [{**event(region=None), "lon": "east-ish", "lat": 30.6}], {}, ["lon='east-ish'"]),
        "outside_city": ("events", [{**event(region=None), "lon": 0.5, "lat": 0.25}], {}, ["(0.5, 0.25)"]),
        "unknown_sensor": ("readings", [reading(city, sensor=water)], {}, [repr(water), "water_meter", "road_segment"]),
        "unknown_metric": ("readings", [reading(city, metric="speeed")], {}, ["'speeed'", "speed"]),
        "unknown_entity": ("snapshots", [snapshot(city, entity="E999999")], {}, ["'E999999'", "enterprise"]),
        "unknown_field": ("snapshots", [snapshot(city, field="opened")], {}, ["'opened'", "open"]),
        "bad_value": ("readings", [reading(city, value="lots")], {}, ["'lots'", "not a number"]),
        "impossible_value": ("readings", [reading(city, value=250.0)], {}, ["250.0", "0..200", "km/h"]),
        "duplicate_id": ("events", [event(id="A1"), event(id="A1", time="2020-02-01 08:30")], {},
                         ["'A1'", "repeats row 0 of memory"]),
    }


UNMAPPED = {f"unmapped_{t}" for t in MAPPABLE}  # covered by tests/test_feeds_adapters.py


def test_every_reason_has_a_test(city):
    assert set(_cases(city)) | UNMAPPED == set(REASONS)


@pytest.mark.parametrize("reason", [r for r in REASONS if r not in UNMAPPED])
def test_each_reason_quarantines_the_row_with_the_bad_value_in_detail(city, catalog, reason):
    kind, rows, kw, needles = _cases(city)[reason]
    enc, q = run(city, catalog, kind, rows, **kw)
    bad = q.frame[q.frame.reason == reason]
    assert len(bad) == 1, q.frame[["reason", "detail"]]
    detail = bad["detail"].iloc[0]
    for needle in needles:
        assert needle in detail, detail
    assert bad["kind"].iloc[0] == kind and bad["source"].iloc[0] == "memory"
    assert q.counts() == {reason: 1}


def test_a_feed_of_another_kind_is_unknown_here(city, catalog):
    _, q = run(city, catalog, "events", [event(feed="noise")])
    assert q.counts() == {"unknown_feed": 1}
    assert "'noise' is a readings feed; expected an event feed" in q.frame.detail.iloc[0]


def test_the_first_failing_check_wins(city, catalog):
    # bad time and unknown region: the time check runs first
    _, q = run(city, catalog, "events", [event(time="", region="nowhere", category="x")])
    assert q.counts() == {"bad_timestamp": 1}
    assert q.frame.detail.iloc[0] == "time is missing; expected a timestamp"


def test_duplicate_ids_across_cycles_and_first_kept(city, catalog):
    rows = [event(id="T-1"), event(id="T-2"), event(id="T-1", time="2020-02-01 08:10")]
    enc, q = run(city, catalog, "events", rows)
    assert enc.accepted_ids == {("fire_alarms", "T-1"), ("fire_alarms", "T-2")}
    assert q.frame.row.tolist() == [2]
    enc2, q2 = run(city, catalog, "events", [event(id="T-1"), event(id="T-3")], seen_ids=enc.accepted_ids)
    assert q2.counts() == {"duplicate_id": 1} and "earlier cycle" in q2.frame.detail.iloc[0]
    assert enc2.accepted_ids == {("fire_alarms", "T-3")}
    # the same id in another feed is another record; an id on a bad row does not block a good one
    rows = [event(id="X", category="bad"), event(id="X"), event(id="X", feed="gas_alarms", category="leak")]
    enc3, q3 = run(city, catalog, "events", rows)
    assert q3.counts() == {"unknown_category": 1} and enc3.n_rows["events"] == 2


def test_numeric_ids_compare_as_text(city, catalog):
    rows = [event(id=7), event(id="7"), event(id=7.0)]
    frame = pd.DataFrame(rows).astype({"id": object})
    enc, q = encode(Feeds(events=frame), city, catalog, now=NOW)
    assert enc.accepted_ids == {("fire_alarms", "7")} and q.counts() == {"duplicate_id": 2}


def test_untrusted_text_is_kept_verbatim_and_never_interpreted(city, catalog):
    nasty = "<script>alert('x')</script> {feed} %s =cmd|' /C calc'!A0 \x00"
    rows = [event(text=nasty, category="nope"), event(text=nasty)]
    enc, q = run(city, catalog, "events", rows)
    assert q.frame.text.tolist() == [nasty]
    assert enc.n_rows["events"] == 1


def test_values_of_events_only_for_feeds_with_a_value_unit(city, catalog):
    rows = [event(feed="fraud_losses", category="telecom", value="12500.5"),
            event(feed="fraud_losses", category="telecom", value=None),
            event(feed="fraud_losses", category="telecom", value=-3),
            event(feed="fraud_losses", category="telecom", value=2e8),
            event(value=99.0)]
    enc, q = run(city, catalog, "events", rows)
    assert q.counts() == {"impossible_value": 2}
    assert "100000000" in q.frame.detail.iloc[1] and "元" in q.frame.detail.iloc[1]
    assert np.array_equal(enc.ev_value, [12500.5, np.nan, np.nan], equal_nan=True)


# ============================================================================ encoded arrays


def test_encoded_codes_positions_and_time_order(city, catalog):
    site = first(city.sites, "mall")
    ev = pd.DataFrame([event(time="2020-02-01 08:30", feed="hotline_tickets", category="garbage",
                             channel="online_clue", region="N0005"),
                       event(time="2020-02-01 08:10"),
                       {**event(time="2020-02-01 08:20", region=None),
                        "lon": city.regions.lon.iloc[7], "lat": city.regions.lat.iloc[7]}])
    rd = pd.DataFrame([reading(city, time="2020-02-01 08:05", feed="crowd_counts", sensor=site, metric="queue", value=12),
                       reading(city, time="2020-02-01 08:00", feed="consumer_spending", sensor="N0003",
                               metric="retail", value=5.5)])
    sn = pd.DataFrame([snapshot(city, time=pd.Timestamp("2020-02-01 07:00"), feed="shop_status",
                                entity=first(city.sites, "restaurant"), field="open", value=0)])
    enc, q = encode(Feeds(events=ev, readings=rd, snapshots=sn), city, catalog, now=NOW)
    assert len(q) == 0
    feeds = catalog.feeds
    assert enc.feed_ids == list(feeds)
    assert enc.ev_time.dtype == np.int64 and enc.ev_feed.dtype == np.int32 and enc.ev_value.dtype == np.float64
    assert np.all(np.diff(enc.ev_time) >= 0)
    fid = [enc.feed_ids[i] for i in enc.ev_feed]
    assert fid == ["fire_alarms", "fire_alarms", "hotline_tickets"]
    assert enc.ev_region.tolist() == [0, 7, 4]
    assert enc.ev_category[2] == list(feeds["hotline_tickets"]["categories"]).index("garbage")
    assert enc.ev_channel.tolist() == [-1, -1, list(feeds["hotline_tickets"]["channels"]).index("online_clue")]
    assert enc.ev_time[0] == pd.Timestamp("2020-02-01 08:10").value
    # readings: region feed first (earlier), then the site feed
    assert [enc.feed_ids[i] for i in enc.rd_feed] == ["consumer_spending", "crowd_counts"]
    assert enc.rd_emitter.tolist() == [2, city.sites.index.get_loc(site)]
    assert enc.rd_kind.tolist() == [-1, feeds["crowd_counts"]["emitter_kinds"].index("mall")]
    assert enc.rd_region.tolist() == [2, city.regions.index.get_loc(city.sites.loc[site, "region"])]
    assert enc.rd_metric.tolist() == [list(feeds["consumer_spending"]["metrics"]).index("retail"),
                                      list(feeds["crowd_counts"]["metrics"]).index("queue")]
    assert enc.rd_value.tolist() == [5.5, 12.0]
    assert enc.sn_kind.tolist() == [feeds["shop_status"]["emitter_kinds"].index("restaurant")]
    assert enc.sn_field.tolist() == [0] and enc.sn_value.tolist() == [0.0]
    for name in ("ev_time", "rd_value", "sn_entity"):
        assert getattr(enc, name).flags["C_CONTIGUOUS"]
    assert enc.n_rows == {"events": 3, "readings": 2, "snapshots": 1}


def test_time_forms_datetime_tzaware_and_text(city, catalog):
    times = pd.Series(pd.to_datetime(["2020-02-01 08:00", "2020-02-01 08:01"]).tz_localize("Asia/Shanghai"))
    ev = pd.DataFrame([event(), event()]).assign(time=times)
    enc, _ = encode(Feeds(events=ev), city, catalog, now=NOW)
    assert enc.ev_time.tolist() == [pd.Timestamp("2020-02-01 08:00").value, pd.Timestamp("2020-02-01 08:01").value]
    ev = pd.DataFrame([event(time=12345), event(time="2999-01-01"), event(time="2020-02-01T08:00:00.250")]) \
        .astype({"time": object})
    enc, q = encode(Feeds(events=ev), city, catalog, now=NOW)
    assert q.counts() == {"bad_timestamp": 2}
    assert enc.ev_time.tolist() == [pd.Timestamp("2020-02-01 08:00:00.250").value]
    with pytest.raises(ValueError, match="tz-naive"):
        encode(Feeds(events=ev), city, catalog, now=pd.Timestamp("2020-02-01", tz="UTC"))


def test_grid_city_points_map_directly():
    grid = City.grid((114.25, 30.55, 114.35, 30.65), cell_m=1000, population=10_000)
    cat = Catalog.load()
    x = grid.regions.lon.to_numpy()[[0, 5, 77]]
    y = grid.regions.lat.to_numpy()[[0, 5, 77]]
    ev = pd.DataFrame({"time": "2020-02-01 08:00", "feed": "gas_alarms", "category": "leak",
                       "lon": np.append(x, 120.0), "lat": np.append(y, 30.6)})
    enc, q = encode(Feeds(events=ev), grid, cat, now=NOW)
    assert enc.ev_region.tolist() == [0, 5, 77] and q.counts() == {"outside_city": 1}


# ============================================================================ Feeds and files


def test_missing_column_errors_name_file_and_column(city, tmp_path):
    with pytest.raises(FeedError, match=r"memory column 'metric'") as err:
        Feeds(readings=pd.DataFrame([reading(city)]).drop(columns="metric"))
    assert err.value.column == "metric" and err.value.file == "memory"
    with pytest.raises(FeedError, match=r"column 'region'"):
        Feeds(events=pd.DataFrame([event()]).drop(columns="region"))
    with pytest.raises(FeedError, match=r"column 'lat'"):
        Feeds(events=pd.DataFrame([{**event(), "lon": 1.0}]).drop(columns="region"))
    pd.DataFrame([snapshot(city)]).drop(columns="value").to_csv(tmp_path / "snapshots_0900.csv", index=False)
    with pytest.raises(FeedError, match=r"snapshots_0900.csv column 'value'") as err:
        Feeds.read(tmp_path / "snapshots_0900.csv")
    assert err.value.file == "snapshots_0900.csv"


def test_read_csv_parquet_and_a_folder(city, catalog, tmp_path):
    ev = pd.DataFrame([event(id="00042"), event(region="N0002", category="unknown_thing")])
    rd = pd.DataFrame([reading(city), reading(city, value=-1.0)])
    sn = pd.DataFrame([snapshot(city)])
    ev.to_csv(tmp_path / "events_0800.csv", index=False)
    rd.assign(time=pd.to_datetime(rd.time)).to_parquet(tmp_path / "readings_0800.parquet")
    sn.to_csv(tmp_path / "export_from_bureau.csv", index=False)        # kind from its columns
    (tmp_path / "notes.txt").write_text("not a feed")
    (tmp_path / ".hidden.csv").write_text("x")
    one = Feeds.read(tmp_path / "events_0800.csv")
    assert one.n_rows == {"events": 2, "readings": 0, "snapshots": 0}
    assert one.frame("events")["id"].iloc[0] == "00042"              # CSV cells read as text
    pq = Feeds.read(tmp_path / "readings_0800.parquet")
    assert pq.n_rows["readings"] == 2
    folder = Feeds.read(tmp_path)
    assert folder.n_rows == {"events": 2, "readings": 2, "snapshots": 1}
    assert folder.skipped == [("notes.txt", "not a feed file (expected .csv, .csv.gz, .parquet, .pq)")]
    enc, q = encode(folder, city, catalog, now=NOW)
    assert q.frame[["source", "row", "reason"]].values.tolist() == [
        ["events_0800.csv", 1, "unknown_category"], ["readings_0800.parquet", 1, "impossible_value"]]
    assert enc.accepted_ids == {("fire_alarms", "00042")}
    assert enc.n_rows == {"events": 1, "readings": 1, "snapshots": 1}


def test_read_folder_collects_bad_files_instead_of_stopping(city, tmp_path):
    pd.DataFrame([event()]).to_csv(tmp_path / "events_a.csv", index=False)
    pd.DataFrame([event()]).drop(columns="feed").to_csv(tmp_path / "events_b.csv", index=False)
    pd.DataFrame({"x": [1]}).to_csv(tmp_path / "mystery.csv", index=False)
    with pytest.raises(FeedError, match="events_b.csv column 'feed'"):
        Feeds.read(tmp_path)
    f = Feeds.read(tmp_path, on_error="collect")
    assert f.n_rows["events"] == 1
    assert [(e.file, e.column) for e in f.errors] == [("events_b.csv", "feed"), ("mystery.csv", None)]
    assert "cannot tell the record kind" in str(f.errors[1])


def test_in_memory_pyarrow_and_records(city, catalog):
    import pyarrow as pa

    table = pa.Table.from_pandas(pd.DataFrame([reading(city)]))
    f = Feeds(readings=table, events=[event()])
    enc, q = encode(f, city, catalog, now=NOW)
    assert enc.n_rows == {"events": 1, "readings": 1, "snapshots": 0} and len(q) == 0
    with pytest.raises(TypeError, match="pandas DataFrame"):
        Feeds(events=42)


def test_quarantine_roundtrip_concat_and_counts(city, catalog, tmp_path):
    _, q1 = run(city, catalog, "events", [event(category="x"), event(region="?")])
    _, q2 = run(city, catalog, "readings", [reading(city, value=None)])
    q = Quarantine.concat([q1, q2, Quarantine()])
    assert len(q) == 3
    assert q.counts() == {"unknown_category": 1, "unknown_region": 1, "bad_value": 1}
    assert q.summary()["by_kind"] == {"events": {"unknown_category": 1, "unknown_region": 1},
                                      "readings": {"bad_value": 1}}
    back = Quarantine.read_parquet(q.to_parquet(tmp_path / "q" / "quarantine.parquet"))

    def cells(frame):
        return frame.astype(object).where(frame.notna(), None).values.tolist()

    assert back.frame.columns.tolist() == q.frame.columns.tolist()
    assert back.frame.columns.tolist()[:5] == ["kind", "source", "row", "reason", "detail"]
    assert cells(back.frame) == cells(q.frame)
    assert cells(back.frame[["metric"]]) == [[None], [None], ["speed"]]


def test_original_columns_that_clash_are_prefixed(city, catalog):
    _, q = run(city, catalog, "events", [event(category="x", reason="mine", source="scanner 7")])
    assert q.frame[["reason", "orig_reason", "orig_source"]].iloc[0].tolist() == ["unknown_category", "mine", "scanner 7"]


# ============================================================================ synthetic load


def test_synthetic_feeds_cover_every_feed_and_encode_clean(city, catalog):
    f = synthetic_feeds(city, catalog, "2020-02-01", "2020-02-02", seed=3, rate=5)
    g = synthetic_feeds(city, catalog, "2020-02-01", "2020-02-02", seed=3, rate=5)
    for kind in ("events", "readings", "snapshots"):
        pd.testing.assert_frame_equal(f.frame(kind), g.frame(kind))
    enc, q = encode(f, city, catalog, now="2020-02-02", watermark="2020-02-01 00:00")
    assert len(q) == 0 and enc.n_rows == f.n_rows
    seen = {enc.feed_ids[i] for arr in (enc.ev_feed, enc.rd_feed, enc.sn_feed) for i in np.unique(arr)}
    assert seen == set(catalog.feeds)
    # readings: every emitter of every readings feed, every metric, every cycle
    for fid in ("road_traffic", "crowd_counts", "consumer_spending"):
        spec = catalog.feeds[fid]
        table = {"sensor": city.sensors, "site": city.sites, "region": city.regions}[spec["emitter"]]
        n_emit = len(table) if spec["emitter"] == "region" else int(table.kind.isin(spec["emitter_kinds"]).sum())
        assert int((enc.rd_feed == enc.feed_ids.index(fid)).sum()) == 96 * n_emit * len(spec["metrics"])
    # snapshots: every entity once a day at least
    fi = enc.feed_ids.index("enterprise_status")
    assert len(np.unique(enc.sn_entity[enc.sn_feed == fi])) == len(city.enterprises)
    # events: more where more people live
    pop = city.regions.population.to_numpy()
    per = np.bincount(enc.ev_region, minlength=city.n_regions)
    assert np.corrcoef(pop, per)[0, 1] > 0.5
    assert synthetic_feeds(city, catalog, "2020-02-01", "2020-02-02", seed=3, rate=10).n_rows["events"] > \
        1.6 * f.n_rows["events"]


def test_corrupted_load_is_split_exactly(city, catalog):
    f = synthetic_feeds(city, catalog, "2020-02-01 06:00", "2020-02-01 09:00", rate=20, seed=4)
    bad = corrupt_feeds(f, fraction=0.02, seed=5, now=NOW)
    enc, q = encode(bad, city, catalog, now=NOW, watermark="2020-02-01 06:00")
    for kind in ("events", "readings", "snapshots"):
        assert enc.n_rows[kind] + int((q.frame.kind == kind).sum()) == f.n_rows[kind]
    assert 0.015 * len(f) < len(q) < 0.025 * len(f)
    assert {"bad_timestamp", "future_timestamp", "too_late", "unknown_feed", "unknown_sensor", "bad_value",
            "impossible_value", "duplicate_id"} <= set(q.counts())


def test_encode_rejects_what_is_not_feeds(city, catalog):
    with pytest.raises(TypeError, match="engine.feeds.Feeds"):
        encode(pd.DataFrame(), city, catalog)
    empty, q = encode(Feeds(), city, catalog)
    assert len(q) == 0 and empty.n_rows == Encoded.empty(empty.feed_ids).n_rows
