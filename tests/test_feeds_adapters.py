"""Adapters: the NYC and LA 311 samples through the bundled TOML mappings, and the rules."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from engine.catalog import Catalog
from engine.city import City
from engine.feeds import Adapter, AdapterError, FeedError, Feeds, bundled_adapters, encode
from engine.feeds.adapters import _adapters_folder
from engine.feeds.schema import MAPPABLE

TICKETS = Path(__file__).resolve().parents[2] / "shared" / "data" / "tickets"
NYC = TICKETS / "nyc311_2013-12-25.csv"
LA = TICKETS / "la311_2017-12-27_31.csv"
needs_samples = pytest.mark.skipif(not (NYC.exists() and LA.exists()), reason=f"311 samples not found in {TICKETS}")


@pytest.fixture(scope="module")
def catalog():
    return Catalog.load()


def sample(tmp_path, path) -> Path:
    """A copy of a shared sample (the originals are never touched)."""
    dst = tmp_path / path.name
    shutil.copy(path, dst)
    return dst


def direct_counts(csv: Path, adapter_name: str, type_cols: list[str]) -> tuple[dict, int, int]:
    """Sub-class counts straight from pandas: the TOML map applied to the raw CSV columns."""
    spec = tomllib.loads((_adapters_folder() / f"{adapter_name}.toml").read_text(encoding="utf-8"))
    m = spec["category"]["map"]
    df = pd.read_csv(csv, dtype=str, keep_default_na=False, na_values=[""])
    sub = df[type_cols[0]].map(m)
    if len(type_cols) > 1:
        full = df[type_cols[0]].fillna("") + " :: " + df[type_cols[1]].fillna("")
        sub = full.map(m).fillna(sub)
    located = pd.to_numeric(df["Latitude"], errors="coerce").notna() & pd.to_numeric(df["Longitude"], errors="coerce").notna()
    counts = sub[located & sub.notna()].value_counts().to_dict()
    return {k: int(v) for k, v in counts.items()}, int(sub.isna().sum()), int((~located & sub.notna()).sum())


def by_subclass(enc, catalog) -> dict:
    names = list(catalog.feeds["hotline_tickets"]["categories"])
    vc = pd.Series([names[i] for i in enc.ev_category]).value_counts()
    return {k: int(v) for k, v in vc.items()}


# ============================================================================ the real samples


@needs_samples
def test_nyc311_sample_counts_by_subclass_equal_a_direct_pandas_count(tmp_path, catalog):
    csv = sample(tmp_path, NYC)
    feeds = Feeds.read(csv, adapter="nyc311")
    assert feeds.n_rows["events"] == 2386
    nyc = City.grid((-74.26, 40.49, -73.70, 40.92), cell_m=2000, name="New York")
    enc, q = encode(feeds, nyc, catalog, now="2013-12-26 00:00")
    want, unmapped, unlocated = direct_counts(csv, "nyc311", ["Complaint Type", "Descriptor"])
    assert by_subclass(enc, catalog) == want
    assert q.counts() == {"unmapped_category": unmapped, "no_location": unlocated}
    assert enc.n_rows["events"] + len(q) == 2386
    assert set(q.frame.source) == {csv.name}
    # examples of the choices documented in the adapter
    assert want["property_service"] >= 1201 and want["parking"] >= 155 and "construction_noise" in want
    heating = q.frame[q.frame.reason == "unmapped_category"].iloc[0]
    assert "is not in the category map of adapter 'nyc311'" in heating.detail
    assert heating["Complaint Type"] in heating.detail
    # all tickets came by the citizen hotline; ids kept as text
    assert set(enc.ev_channel.tolist()) == {list(catalog.feeds["hotline_tickets"]["channels"]).index("citizen_hotline")}
    assert ("hotline_tickets", "26984072") in enc.accepted_ids


@needs_samples
def test_la311_sample_counts_by_subclass_and_channel(tmp_path, catalog):
    csv = sample(tmp_path, LA)
    feeds = Adapter.load("la311", catalog=catalog).read(tmp_path)
    assert feeds.n_rows["events"] == 9999
    la = City.grid((-118.70, 33.70, -118.15, 34.35), cell_m=2000, name="Los Angeles")
    enc, q = encode(feeds, la, catalog, now="2018-01-01 00:00")
    want, unmapped, unlocated = direct_counts(csv, "la311", ["RequestType"])
    assert by_subclass(enc, catalog) == want
    assert q.counts() == {"unmapped_category": unmapped, "no_location": unlocated}
    # channels: the RequestSource map, counted straight from the CSV
    spec = tomllib.loads((_adapters_folder() / "la311.toml").read_text(encoding="utf-8"))
    df = pd.read_csv(csv, dtype=str, keep_default_na=False, na_values=[""])
    ok = df["RequestType"].map(spec["category"]["map"]).notna() & pd.to_numeric(df["Latitude"], errors="coerce").notna()
    want_ch = df.loc[ok, "RequestSource"].map(spec["channel"]["map"]).value_counts().to_dict()
    chans = list(catalog.feeds["hotline_tickets"]["channels"])
    got_ch = pd.Series([chans[i] for i in enc.ev_channel]).value_counts().to_dict()
    assert got_ch == want_ch
    assert set(got_ch) == {"citizen_hotline", "online_clue", "construction_hotline"}


@needs_samples
def test_nyc311_through_the_adapter_equals_the_reference_validator(tmp_path, catalog):
    from feeds_reference import Reference

    frame = Adapter.load("nyc311").read_frame(sample(tmp_path, NYC))
    nyc = City.grid((-74.26, 40.49, -73.70, 40.92), cell_m=2000)
    now = pd.Timestamp("2013-12-26")
    enc, q = encode(Feeds(events=frame), nyc, catalog, now=now, watermark="2013-12-25 12:00")
    want, codes = Reference(nyc, catalog, now, "2013-12-25 12:00").check("events", frame)
    got = [None] * len(frame)
    for row, reason in zip(q.frame.row.tolist(), q.frame.reason.tolist()):
        got[row] = reason
    assert got == want
    assert "too_late" not in set(want) - {None}          # lateness 24h: the whole day is in time
    acc = sorted((c for c in codes if c is not None), key=lambda c: c[0])
    assert enc.ev_region.tolist() == [c[4] for c in acc]


@needs_samples
def test_samples_read_as_a_folder_with_quarantine_written(tmp_path, catalog):
    sample(tmp_path, NYC)
    feeds = Feeds.read(tmp_path, adapter=Adapter.load("nyc311"))
    city = City.grid((-74.26, 40.49, -73.70, 40.92), cell_m=4000)
    enc, q = encode(feeds, city, catalog, now="2013-12-26")
    out = q.to_parquet(tmp_path / "out" / "quarantine.parquet")
    back = pd.read_parquet(out)
    assert len(back) == len(q) and "Incident Address" in back.columns and "text" in back.columns


# ============================================================================ rules and reasons


def tiny(**tables) -> Adapter:
    text = '[adapter]\nkind = "events"\nfeed = "hotline_tickets"\n[time]\nfrom = "when"\n[region]\nfrom = "where"\n'
    text += '[category]\nfrom = "what"\n[category.map]\n"Loud party" = "social_noise"\n"Rubbish" = "garbage"\n'
    for name, body in tables.items():
        text += f"[{name}]\n{body}\n"
    return Adapter.from_toml(text, source="tiny.toml")


def rows(**kw):
    d = {"when": ["2020-02-01 08:00", "2020-02-01 08:05"], "where": ["N0001", "N0002"], "what": ["Loud party", "Rubbish"]}
    d.update(kw)
    return pd.DataFrame(d)


@pytest.fixture(scope="module")
def city():
    return City.synthetic(seed=4, neighbourhoods=12, streets=2, population=30_000)


def test_unmapped_category_goes_to_quarantine_with_the_source_value(city, catalog):
    a = tiny()
    frame = a.apply(rows(what=["Loud party", "Alien abduction"]), source="calls.csv")
    enc, q = encode(Feeds(events=frame, source="calls.csv"), city, catalog, now="2020-02-01 09:00")
    assert q.counts() == {"unmapped_category": 1}
    row = q.frame.iloc[0]
    assert row.source == "calls.csv" and row.row == 1
    assert row.detail == "what 'Alien abduction' is not in the category map of adapter 'tiny' (no default)"
    assert row.what == "Alien abduction"               # the original column travels with the row
    assert "_cv_reason" not in q.frame.columns


def test_unmapped_channel_goes_to_quarantine(city, catalog):
    a = tiny(channel='from = "how"\n[channel.map]\n"Phone" = "citizen_hotline"')
    enc, q = encode(Feeds(events=a.apply(rows(how=["Phone", "Carrier pigeon"]))), city, catalog, now="2020-02-01 09:00")
    assert q.counts() == {"unmapped_channel": 1} and "'Carrier pigeon'" in q.frame.detail.iloc[0]
    assert enc.ev_channel.tolist() == [0]


@pytest.mark.parametrize("target", [t for t in MAPPABLE if t not in ("category", "channel")])
def test_every_other_mapped_target_quarantines_unmapped_values(city, catalog, target):
    """unmapped_feed, _region (events), _sensor, _metric (readings), _entity, _field (snapshots)."""
    sensor = str(city.sensors.index[city.sensors.kind == "noise_monitor"][0])
    ent = str(city.enterprises.index[0])
    if target in ("feed", "region"):
        kind, base = "events", {"t": ["2020-02-01 08:00"] * 2, "c": ["leak"] * 2,
                                "r": ["N0001", "N0002" if target == "region" else "N0001"],
                                "f": ["gas", "gaz" if target == "feed" else "gas"]}
        spec = {"time": 't', "category": 'c', "region": 'r', "feed": 'f'}
        maps = {"feed": {"gas": "gas_alarms"}, "region": {"N0001": "N0001"}}
    elif target in ("sensor", "metric"):
        kind, base = "readings", {"t": ["2020-02-01 08:00"] * 2, "s": [sensor, "B"], "m": ["leq", "dB"],
                                  "v": ["50", "51"], "f": ["noise", "noise"]}
        spec = {"time": 't', "sensor": 's', "metric": 'm', "value": 'v', "feed": 'f'}
        maps = {"sensor": {sensor: sensor}, "metric": {"leq": "leq"}}
    else:
        kind, base = "snapshots", {"t": ["2020-02-01 08:00"] * 2, "e": [ent, "X"], "x": ["open", "opened"],
                                   "v": ["1", "0"], "f": ["enterprise_status"] * 2}
        spec = {"time": 't', "entity": 'e', "field": 'x', "value": 'v', "feed": 'f'}
        maps = {"entity": {ent: ent}, "field": {"open": "open"}}
    text = f'[adapter]\nkind = "{kind}"\n'
    for name, col in spec.items():
        text += f'[{name}]\nfrom = "{col}"\n'
        if name == target or (kind == "events" and name == "feed"):
            text += f"[{name}.map]\n" + "".join(f'"{k}" = "{v}"\n' for k, v in maps[name].items())
    a = Adapter.from_toml(text, source="gen.toml")
    enc, q = encode(Feeds(**{kind: a.apply(pd.DataFrame(base))}), city, catalog, now="2020-02-01 09:00")
    assert q.counts() == {f"unmapped_{target}": 1}, q.frame[["reason", "detail"]]
    assert q.frame.row.tolist() == [1] and f"{target} map of adapter" in q.frame.detail.iloc[0]


def test_default_is_a_documented_catch_all(city, catalog):
    a = Adapter.from_toml('[adapter]\nkind = "events"\nfeed = "hotline_tickets"\n[time]\nfrom = "when"\n'
                          '[region]\nfrom = "where"\n[category]\nfrom = "what"\ndefault = "neighbour_dispute"\n'
                          '[category.map]\n"Rubbish" = "garbage"\n')
    enc, q = encode(Feeds(events=a.apply(rows(what=["Rubbish", "Something else"]))), city, catalog, now="2020-02-01 09:00")
    names = list(catalog.feeds["hotline_tickets"]["categories"])
    assert len(q) == 0 and [names[i] for i in enc.ev_category] == ["garbage", "neighbour_dispute"]


def test_time_format_mismatch_is_a_bad_timestamp(city, catalog):
    a = tiny()
    a.targets["time"]["format"] = "%d/%m/%Y %H:%M"
    frame = a.apply(rows(when=["01/02/2020 08:00", "2020-02-01 08:05"]))
    enc, q = encode(Feeds(events=frame), city, catalog, now="2020-02-01 09:00")
    assert q.counts() == {"bad_timestamp": 1}
    assert q.frame.detail.iloc[0] == "when '2020-02-01 08:05' does not match the adapter's time format '%d/%m/%Y %H:%M'"
    assert enc.ev_time.tolist() == [pd.Timestamp("2020-02-01 08:00").value]


def test_parquet_timestamps_skip_the_text_format(city, catalog, tmp_path):
    a = tiny()
    a.targets["time"]["format"] = "%m/%d/%Y %I:%M:%S %p"
    rows(when=pd.to_datetime(["2020-02-01 08:00", "2020-02-01 08:05"])).to_parquet(tmp_path / "calls.parquet")
    enc, q = encode(a.read(tmp_path / "calls.parquet"), city, catalog, now="2020-02-01 09:00")
    assert len(q) == 0 and enc.ev_time[1] - enc.ev_time[0] == 5 * 60 * 10**9


def test_text_join_ids_and_clashing_source_columns():
    a = tiny(text='from = ["what", "note"]\njoin = " / "', id='from = ["where", "n"]')
    out = a.apply(rows(note=["<b>loud</b>", None], n=[1, 2], feed=["theirs", "theirs"]))
    assert out["text"].tolist() == ["Loud party / <b>loud</b>", "Rubbish"]
    assert out["id"].tolist() == ["N0001:1", "N0002:2"]
    assert out["feed"].tolist() == ["hotline_tickets"] * 2 and out["src_feed"].tolist() == ["theirs"] * 2
    assert out.columns.tolist()[:6] == ["time", "feed", "category", "region", "id", "text"]


def test_missing_source_column_names_the_file_and_column(tmp_path):
    pd.DataFrame({"when": ["2020-02-01"], "what": ["Rubbish"]}).to_csv(tmp_path / "calls.csv", index=False)
    with pytest.raises(FeedError, match=r"calls.csv column 'where': adapter 'tiny' reads this column") as err:
        tiny().read(tmp_path / "calls.csv")
    assert (err.value.file, err.value.column) == ("calls.csv", "where")


@pytest.mark.parametrize("text, key, message", [
    ('[adapter]\nkind = "events"\nfeed = "x"\n[time]\nfrom = "t"\n[category]\nvalue = "a"\n', "region",
     "events records need this target"),
    ('[adapter]\nkind = "events"\n[time]\nfrom = "t"\n', "adapter.feed", "adapter.feed or a .feed. table"),
    ('[adapter]\nkind = "parcels"\n', "adapter.kind", "expected one of"),
    ('[adapter]\nkind = "readings"\nfeed = "noise"\n[time]\nfrom = "t"\n[category]\nfrom = "c"\n', "category",
     "not a target of readings records"),
    ('[adapter]\nkind = "events"\nfeed = "x"\n[time]\nfrom = "t"\nvalue = "now"\n', "time", "exactly one of"),
    ('[adapter]\nkind = "events"\nfeed = "x"\n[time]\nfrom = "t"\nfromat = "%Y"\n', "time.fromat", "unknown key"),
    ('[adapter]\nkind = "events"\nfeed = "x"\n[time]\nfrom = "t"\n[lon]\nfrom = "x"\n[lon.map]\na = "b"\n',
     "lon.map", "take a value map"),
])
def test_bad_adapter_files_name_the_key(text, key, message):
    with pytest.raises(AdapterError, match=message) as err:
        Adapter.from_toml(text, source="mine.toml")
    assert err.value.key == key and str(err.value).startswith(f"mine.toml key {key!r}")


def test_check_against_the_catalog(catalog, tmp_path):
    assert {"nyc311", "la311"} <= set(bundled_adapters())
    for name in bundled_adapters():
        assert Adapter.load(name).check(catalog) == []
    bad = tiny()
    bad.targets["category"]["map"]["Odd"] = "unicorns"
    assert bad.check(catalog) == ["category 'unicorns' is not a category of feed(s) 'hotline_tickets'"]
    p = tmp_path / "mine.toml"
    p.write_text('[adapter]\nkind = "events"\nfeed = "noise"\n[time]\nfrom = "t"\n[category]\nvalue = "x"\n'
                 '[region]\nfrom = "r"\n', encoding="utf-8")
    with pytest.raises(AdapterError, match="'noise' is a readings feed"):
        Adapter.load(p, catalog=catalog)
    with pytest.raises(FileNotFoundError, match="bundled"):
        Adapter.load("no_such_adapter")
    with pytest.raises(AdapterError, match="not valid TOML"):
        Adapter.from_toml("[adapter", source="broken.toml")
