"""A realistic, seeded load for every feed of the catalog, and a way to spoil some of it.

:func:`synthetic_feeds` is what the compute core's tests and benchmarks feed the engine with:

* **events**: per feed a daily volume for a 1.1-million-resident district (hotline tickets
  ~3,000 a day, police incidents ~600, fire alarms ~25 ...), scaled by the city's population
  and ``rate``, spread over the day by a diurnal profile, drawn as Poisson counts per cycle;
  each event falls in a region with probability proportional to its residents, gets a
  category (Zipf-like weights), a channel where the feed has channels, a loss value where the
  feed carries one (``value_unit``), and an id unique within the feed.
* **readings**: every sensor / site / region of the feed's emitting kinds reports every
  metric once per cycle (at a fixed offset within the cycle), around a typical level with a
  daily rhythm for activity-like metrics (traffic volume, flows, loads, entries ...) and a
  little noise, clipped to the metric's min..max.
* **snapshots**: every entity reports every field once a day (just after midnight, or at
  ``start``), plus an extra row whenever a value changes during the day (about 2 % of
  entity-fields a day); 0/1 states (open, guard on duty ...) persist and flip now and then.

Columns are categorical where they repeat (feed, category, channel, region, sensor, metric,
entity, field) and times are ``datetime64[ns]``, so :func:`engine.feeds.encode` reads them
fast. Each feed has its own random stream (seeded by ``seed`` and the feed id), so adding a
feed to the catalog does not change the others. Rows of readings are ordered by cycle, not
sorted within a cycle; events and snapshots are sorted by time.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from engine.feeds.frames import Feeds
from engine.feeds.schema import KINDS

__all__ = ["synthetic_feeds", "corrupt_feeds", "DAILY_EVENTS"]

_REF_POPULATION = 1_100_000
_NS_HOUR = 3_600 * 10**9
_NS_DAY = 24 * _NS_HOUR

#: Events a day in a district of 1.1 million residents (other feeds: 50 a day).
DAILY_EVENTS: dict[str, float] = {
    "hotline_tickets": 3000, "police_incidents": 600, "fraud_losses": 40, "fire_alarms": 25,
    "traffic_accidents": 120, "gas_alarms": 10, "crowd_alerts": 200, "fever_clinic_visits": 800,
    "epidemic_reports": 30, "confirmed_by_age": 10, "arrivals": 1500, "quarantine_events": 300,
    "construction_events": 60, "grid_patrol": 1200, "lift_faults": 40, "utility_outages": 15,
    "market_inspections": 80, "community_events": 400,
}

# Relative activity by hour of day (mean 1 after normalising).
_ACTIVITY = np.array([0.25, 0.18, 0.15, 0.15, 0.2, 0.35, 0.6, 0.9, 1.0, 0.95, 0.9, 0.95,
                      1.0, 0.95, 0.9, 0.9, 0.95, 1.0, 1.0, 0.9, 0.8, 0.65, 0.5, 0.35])
_ACTIVITY = _ACTIVITY / _ACTIVITY.mean()

# Typical reading of an average emitter (feed.metric or metric).
_TYPICAL_READING = {
    "road_traffic.speed": 35, "road_traffic.volume": 600, "road_traffic.occupancy": 25, "road_traffic.congestion": 3,
    "water_network.pressure": 0.35, "water_network.flow": 800, "water_network.turbidity": 0.5,
    "water_network.chlorine": 0.5, "power_grid.load": 400, "power_grid.voltage": 225, "power_grid.energy": 100,
    "gas_network.pressure": 200, "gas_network.flow": 300, "drainage.level": 1.2, "drainage.flow": 500,
    "air_quality.pm25": 45, "air_quality.pm10": 70, "air_quality.no2": 40, "air_quality.o3": 60, "air_quality.aqi": 70,
    "noise.leq": 58, "noise.lmax": 75, "site_monitors.pm10": 80, "site_monitors.noise": 65,
    "site_monitors.workers": 150, "crowd_counts.entries": 200, "crowd_counts.occupancy": 150, "crowd_counts.queue": 5,
    "consumer_spending.catering": 30, "consumer_spending.groceries": 20, "consumer_spending.retail": 40,
    "consumer_spending.entertainment": 10, "consumer_spending.services": 15, "consumer_spending.online_delivery": 12,
    "staple_prices.pork": 40, "staple_prices.beef": 80, "staple_prices.mutton": 75, "staple_prices.chicken": 24,
    "staple_prices.eggs": 11, "staple_prices.carp": 16, "staple_prices.grass_carp": 18, "staple_prices.rice": 5.5,
    "staple_prices.flour": 4.5, "staple_prices.cooking_oil": 14, "staple_prices.cabbage": 2.5,
    "staple_prices.bok_choy": 4, "staple_prices.potato": 3.5, "staple_prices.tomato": 6, "staple_prices.cucumber": 5,
    "staple_prices.radish": 2.5, "staple_prices.carrot": 3.5, "staple_prices.onion": 3.5, "staple_prices.garlic": 12,
    "staple_prices.ginger": 14, "staple_prices.lotus_root": 9, "staple_prices.tofu": 6, "staple_prices.milk": 12,
    "staple_prices.apple": 10, "protective_prices.surgical_mask": 1.5, "protective_prices.n95_mask": 8,
    "protective_prices.kn95_mask": 4, "protective_prices.hand_sanitizer": 20, "protective_prices.disinfectant": 12,
    "protective_prices.alcohol": 15, "protective_prices.thermometer": 25, "protective_prices.antipyretic": 18,
}
_ACTIVITY_METRICS = {"volume", "occupancy", "congestion", "flow", "load", "energy", "entries", "queue", "workers",
                     "catering", "groceries", "retail", "entertainment", "services", "online_delivery", "no2",
                     "leq", "lmax", "noise"}
_INVERSE_ACTIVITY = {"speed"}
_PRICE_FEEDS = {"staple_prices", "protective_prices"}

# Typical snapshot field of an average entity (feed.field); region fields are shares of residents.
_TYPICAL_FIELD = {
    "pharmacy_stock.surgical_mask": 3000, "pharmacy_stock.n95_mask": 300, "pharmacy_stock.hand_sanitizer": 60,
    "pharmacy_stock.disinfectant": 80, "pharmacy_stock.thermometer": 40, "pharmacy_stock.antipyretic": 120,
    "market_supply.vegetables": 15, "market_supply.meat": 4, "market_supply.eggs": 2, "market_supply.grain_oil": 6,
    "market_supply.stock_days": 7, "elderly_care_status.residents": 120, "elderly_care_status.staff_on_duty": 30,
    "elderly_care_status.fever_residents": 0.3, "quarantine_hotels.rooms_total": 150,
    "quarantine_hotels.rooms_occupied": 60, "school_status.attendance": 90, "school_status.absent_fever": 3,
    "hospital_status.fever_beds_total": 30, "hospital_status.fever_beds_occupied": 8,
    "hospital_status.icu_beds_total": 20, "hospital_status.icu_beds_occupied": 10, "hospital_status.staff_absent": 15,
    "enterprise_status.capacity_use": 70, "enterprise_status.power_index": 80,
}
_REGION_SHARE = {"present_residents": 0.95, "nonresidents": 0.15, "home_quarantine": 0.002, "outflow": 0.3,
                 "inflow": 0.25}
_P_ONE = {"open": 0.85, "closed_management": 0.6, "temperature_check": 0.9, "guard_on_duty": 0.9}
_UNSCALED_UNITS = {"%", "天", "0/1"}
_COUNT_UNITS = {"人", "只", "瓶", "支", "盒", "间", "张", "人次", "辆"}


def _rng(seed: int, feed: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(feed.encode("utf-8"))]))


def _pick(rng: np.random.Generator, weights: np.ndarray, n: int) -> np.ndarray:
    """``n`` draws of indices with probabilities ``weights`` (vectorised inverse CDF)."""
    w = np.asarray(weights, dtype=np.float64)
    c = np.cumsum(w / w.sum())
    c[-1] = 1.0
    return np.minimum(np.searchsorted(c, rng.random(n), side="right"), len(w) - 1)


def _emitters(city, spec: dict):
    """Positions of the feed's emitters in their table, their ids, and a size scale (mean 1)."""
    em = spec.get("emitter", "region")
    kinds = spec.get("emitter_kinds") or []
    if em == "sensor":
        t = city.sensors
        pos = np.flatnonzero(t["kind"].isin(kinds).to_numpy())
        scale = np.ones(len(pos))
    elif em == "site":
        t = city.sites
        pos = np.flatnonzero(t["kind"].isin(kinds).to_numpy())
        cap = t["capacity"].to_numpy(np.float64)[pos]
        scale = cap / cap.mean() if len(cap) and cap.mean() > 0 else np.ones(len(pos))
    elif em == "enterprise":
        t = city.enterprises
        pos = np.arange(len(t))
        emp = t["employees"].to_numpy(np.float64)
        scale = emp / emp.mean() if len(emp) and emp.mean() > 0 else np.ones(len(pos))
    else:
        t = city.regions
        pos = np.arange(len(t))
        p = t["population"].to_numpy(np.float64)
        scale = p / p.mean() if len(p) and p.mean() > 0 else np.ones(len(pos))
    ids = np.asarray(t.index.astype(object), dtype=object)[pos]
    return pos, ids, scale


def _clip(v, lo, hi):
    return np.clip(v, -np.inf if lo is None else lo, np.inf if hi is None else hi)


def _categorical(codes: np.ndarray, categories) -> pd.Categorical:
    return pd.Categorical.from_codes(np.asarray(codes, dtype=np.int32), categories=pd.Index(categories, dtype=object))


def _frame(cols: dict, cats: dict) -> pd.DataFrame:
    out = {}
    for k, v in cols.items():
        out[k] = _categorical(v, cats[k]) if k in cats else v
    return pd.DataFrame(out)


def _events(city, catalog, feeds, t0, n_cycles, cycle_ns, seed, rate):
    pop = city.regions["population"].to_numpy(np.float64)
    w_region = pop if pop.sum() > 0 else np.ones(len(pop))
    size = pop.sum() / _REF_POPULATION if pop.sum() > 0 else 1.0 / _REF_POPULATION
    starts = t0 + np.arange(n_cycles, dtype=np.int64) * cycle_ns
    hour = (starts // _NS_HOUR) % 24
    feed_ids = [f for f in feeds if catalog.feeds[f]["kind"] == "events"]
    all_cats = list(dict.fromkeys(c for f in feed_ids for c in catalog.feeds[f]["categories"]))
    all_channels = list(dict.fromkeys(c for f in feed_ids for c in catalog.feeds[f].get("channels", {})))
    cat_pos = {c: i for i, c in enumerate(all_cats)}
    ch_pos = {c: i for i, c in enumerate(all_channels)}
    parts = []
    for fi, f in enumerate(feed_ids):
        spec = catalog.feeds[f]
        rng = _rng(seed, f)
        daily = DAILY_EVENTS.get(f, 50.0) * size * float(rate)
        lam = daily * (cycle_ns / _NS_DAY) * _ACTIVITY[hour]
        counts = rng.poisson(lam)
        n = int(counts.sum())
        if n == 0:
            continue
        time = np.repeat(starts, counts) + rng.integers(0, cycle_ns, n)
        region = _pick(rng, w_region, n)
        cats = list(spec["categories"])
        cw = 1.0 / (np.arange(len(cats)) + 1.0) ** 0.8
        rng.shuffle(cw)
        category = np.array([cat_pos[c] for c in cats], dtype=np.int32)[_pick(rng, cw, n)]
        chans = list(spec.get("channels", {}))
        if chans:
            chw = np.array([0.55] + [0.45 / max(len(chans) - 1, 1)] * (len(chans) - 1))
            channel = np.array([ch_pos[c] for c in chans], dtype=np.int32)[_pick(rng, chw, n)]
        else:
            channel = np.full(n, -1, dtype=np.int32)
        if "value_unit" in spec:
            vmax = float(spec.get("value_max", np.inf))
            value = np.round(np.clip(rng.lognormal(np.log(5000.0), 1.2, n), 0, vmax), 2)
        else:
            value = np.full(n, np.nan)
        ids = np.array([f"{f}-{i:08d}" for i in range(n)], dtype=object)
        parts.append(dict(time=time, feed=np.full(n, fi, dtype=np.int32), category=category, channel=channel,
                          region=region, value=value, id=ids))
    if not parts:
        return None
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    order = np.argsort(cols["time"], kind="stable")
    cols = {k: v[order] for k, v in cols.items()}
    cols["time"] = cols["time"].view("datetime64[ns]")
    return _frame(cols, {"feed": feed_ids, "category": all_cats, "channel": all_channels,
                         "region": list(city.regions.index.astype(object))})


def _readings(city, catalog, feeds, t0, n_cycles, cycle_ns, seed):
    starts = t0 + np.arange(n_cycles, dtype=np.int64) * cycle_ns
    hour = (starts // _NS_HOUR) % 24
    act = _ACTIVITY[hour]
    feed_ids = [f for f in feeds if catalog.feeds[f]["kind"] == "readings"]
    all_metrics = list(dict.fromkeys(m for f in feed_ids for m in catalog.feeds[f]["metrics"]))
    m_pos = {m: i for i, m in enumerate(all_metrics)}
    emitter_ids: dict[object, int] = {}
    parts = []
    for fi, f in enumerate(feed_ids):
        spec = catalog.feeds[f]
        rng = _rng(seed, f)
        pos, ids, scale = _emitters(city, spec)
        metrics = list(spec["metrics"])
        E, M, T = len(pos), len(metrics), n_cycles
        if E == 0 or M == 0 or T == 0:
            continue
        codes = np.array([emitter_ids.setdefault(i, len(emitter_ids)) for i in ids.tolist()], dtype=np.int32)
        lo = np.array([spec["metrics"][m].get("min", -np.inf) for m in metrics], dtype=np.float64)
        hi = np.array([spec["metrics"][m].get("max", np.inf) for m in metrics], dtype=np.float64)
        typ = np.array([_TYPICAL_READING.get(f"{f}.{m}", lo[j] + 0.05 * (hi[j] - lo[j])
                                             if np.isfinite(hi[j]) and np.isfinite(lo[j]) else 1.0)
                        for j, m in enumerate(metrics)])
        price = f in _PRICE_FEEDS
        level = rng.lognormal(0.0, 0.1 if price else 0.3, (E, M))
        if f in ("crowd_counts", "site_monitors", "consumer_spending"):
            level *= scale[:, None]
        shape = np.ones((T, M))
        for j, m in enumerate(metrics):
            if m in _ACTIVITY_METRICS and not price:
                shape[:, j] = act
            elif m in _INVERSE_ACTIVITY:
                shape[:, j] = 1.25 - 0.25 * act
        noise = np.exp(rng.standard_normal((T, E, M), dtype=np.float32) * np.float32(0.01 if price else 0.08))
        value = (typ[None, None, :] * level[None, :, :]) * shape[:, None, :] * noise
        value = np.clip(value, lo[None, None, :], hi[None, None, :])
        value = np.round(value, 2 if price else 3)
        offset = rng.integers(0, cycle_ns, E)
        parts.append(dict(
            time=np.broadcast_to(offset[:, None], (E, M)).reshape(1, E * M),
            feed=np.full((1, E * M), fi, dtype=np.int32),
            sensor=np.broadcast_to(codes[:, None], (E, M)).reshape(1, E * M),
            metric=np.broadcast_to(np.array([m_pos[m] for m in metrics], dtype=np.int32)[None, :],
                                   (E, M)).reshape(1, E * M),
            value=value.reshape(T, E * M),
        ))
    if not parts:
        return None
    # cycle-major across feeds: blocks of (cycles, rows per cycle) side by side, then ravelled
    T = n_cycles
    K = sum(p["value"].shape[1] for p in parts)
    cols = {
        "time": (starts[:, None] + np.concatenate([p["time"] for p in parts], axis=1)).ravel(),
        "feed": np.broadcast_to(np.concatenate([p["feed"] for p in parts], axis=1), (T, K)).ravel(),
        "sensor": np.broadcast_to(np.concatenate([p["sensor"] for p in parts], axis=1), (T, K)).ravel(),
        "metric": np.broadcast_to(np.concatenate([p["metric"] for p in parts], axis=1), (T, K)).ravel(),
        "value": np.concatenate([p["value"] for p in parts], axis=1).ravel(),
    }
    cols["time"] = cols["time"].view("datetime64[ns]")
    return _frame(cols, {"feed": feed_ids, "sensor": list(emitter_ids), "metric": all_metrics})


def _snapshot_values(f, spec, fields, scale, entity_pos, city, rng, shape):
    """Values (days, entities, fields) for one snapshot feed, plus the 0/1 mask of fields."""
    D, E, F = shape
    out = np.empty(shape)
    units = [spec["fields"][x].get("unit", "") for x in fields]
    if spec.get("emitter") == "region":
        pop = city.regions["population"].to_numpy(np.float64)[entity_pos]
    for j, x in enumerate(fields):
        lo = spec["fields"][x].get("min")
        hi = spec["fields"][x].get("max")
        if units[j] == "0/1":
            p = _P_ONE.get(x, 0.85)
            state = rng.random(E) < p
            days = np.empty((D, E), dtype=bool)
            for d in range(D):
                flip = rng.random(E) < 0.05
                state = np.where(flip, rng.random(E) < p, state)
                days[d] = state
            out[:, :, j] = days
            continue
        if spec.get("emitter") == "region" and x in _REGION_SHARE:
            base = _REGION_SHARE[x] * pop * rng.lognormal(0.0, 0.1, E)
        else:
            typ = _TYPICAL_FIELD.get(f"{f}.{x}")
            if typ is None:
                typ = (lo or 0) + 0.05 * ((hi if hi is not None else 20) - (lo or 0))
            base = typ * rng.lognormal(0.0, 0.25, E)
            if units[j] not in _UNSCALED_UNITS:
                base = base * scale
        v = base[None, :] * rng.lognormal(0.0, 0.05, (D, E))
        if units[j] in _COUNT_UNITS or spec.get("emitter") == "region":
            v = np.round(v)
        else:
            v = np.round(v, 2)
        out[:, :, j] = _clip(v, lo, hi)
    if f == "enterprise_status" and "employees" in city.enterprises.columns:
        emp = city.enterprises["employees"].to_numpy(np.float64)[entity_pos]
        names = list(fields)
        if "open" in names:
            is_open = out[:, :, names.index("open")]
            if "workers_registered" in names:
                out[:, :, names.index("workers_registered")] = emp[None, :]
            if "workers_back" in names:
                back = is_open * emp[None, :] * rng.uniform(0.5, 1.0, (D, E))
                out[:, :, names.index("workers_back")] = np.round(back)
            for x in ("capacity_use", "power_index"):
                if x in names:
                    out[:, :, names.index(x)] *= np.where(is_open > 0, 1.0, 0.2)
    return out


def _snapshots(city, catalog, feeds, t0, t1, cycle_ns, seed):
    feed_ids = [f for f in feeds if catalog.feeds[f]["kind"] == "snapshots"]
    all_fields = list(dict.fromkeys(x for f in feed_ids for x in catalog.feeds[f]["fields"]))
    x_pos = {x: i for i, x in enumerate(all_fields)}
    first_day = (t0 // _NS_DAY) * _NS_DAY if t0 >= 0 else -((-t0 + _NS_DAY - 1) // _NS_DAY) * _NS_DAY
    day_starts = np.arange(first_day, t1, _NS_DAY, dtype=np.int64)
    snap_at = np.maximum(day_starts, t0)
    entity_ids: dict[object, int] = {}
    parts = []
    for fi, f in enumerate(feed_ids):
        spec = catalog.feeds[f]
        rng = _rng(seed, f)
        pos, ids, scale = _emitters(city, spec)
        fields = list(spec["fields"])
        D, E, F = len(day_starts), len(pos), len(fields)
        if D == 0 or E == 0 or F == 0:
            continue
        codes = np.array([entity_ids.setdefault(i, len(entity_ids)) for i in ids.tolist()], dtype=np.int32)
        fcodes = np.array([x_pos[x] for x in fields], dtype=np.int32)
        vals = _snapshot_values(f, spec, fields, scale, pos, city, rng, (D, E, F))
        offset = rng.integers(0, min(cycle_ns, _NS_HOUR), E)
        time = np.broadcast_to(snap_at[:, None, None] + offset[None, :, None], (D, E, F)).ravel()
        ent = np.broadcast_to(codes[None, :, None], (D, E, F)).ravel()
        fld = np.broadcast_to(fcodes[None, None, :], (D, E, F)).ravel()
        val = vals.ravel()
        # changes during the day: a new value (0/1 flips) at a random later time that day
        change = rng.random((D, E, F)) < 0.02
        d_i, e_i, x_i = np.nonzero(change)
        if len(d_i):
            when = snap_at[d_i] + rng.integers(cycle_ns, _NS_DAY, len(d_i))
            keep = when < np.minimum(day_starts[d_i] + _NS_DAY, t1)
            d_i, e_i, x_i, when = d_i[keep], e_i[keep], x_i[keep], when[keep]
            old = vals[d_i, e_i, x_i]
            units = np.array([spec["fields"][x].get("unit", "") == "0/1" for x in fields])[x_i]
            hi = np.array([spec["fields"][x].get("max", np.inf) for x in fields])[x_i]
            lo = np.array([spec["fields"][x].get("min", -np.inf) for x in fields])[x_i]
            new = np.where(units, 1.0 - old, np.clip(np.round(old * rng.lognormal(0.0, 0.2, len(old))), lo, hi))
            time = np.concatenate([time, when])
            ent = np.concatenate([ent, codes[e_i]])
            fld = np.concatenate([fld, fcodes[x_i]])
            val = np.concatenate([val, new])
        parts.append(dict(time=time, feed=np.full(len(time), fi, dtype=np.int32), entity=ent, field=fld,
                          value=val))
    if not parts:
        return None
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    order = np.argsort(cols["time"], kind="stable")
    cols = {k: v[order] for k, v in cols.items()}
    cols["time"] = cols["time"].view("datetime64[ns]")
    return _frame(cols, {"feed": feed_ids, "entity": list(entity_ids), "field": all_fields})


def synthetic_feeds(city, catalog, start, end, cycle: str = "15min", seed: int = 0, rate: float = 1.0,
                    *, feeds: list[str] | None = None) -> Feeds:
    """A realistic-looking load for every feed of the catalog over ``[start, end)``.

    Parameters
    ----------
    city : engine.City
    catalog : engine.Catalog
    start, end : timestamp
        The period (tz-naive local time); ``end`` is excluded.
    cycle : str
        The cycle length (``"15min"``, ``"1h"`` ...): readings come once per cycle, events
        are drawn per cycle.
    seed : int
        Same seed, same records.
    rate : float
        Multiplies every events feed's volume (>= 0).
    feeds : list of str, optional
        Only these feeds (default: all of the catalog).

    Returns
    -------
    Feeds
        Source name ``"synthetic"``.

    Examples
    --------
    >>> from engine import City, Catalog
    >>> city = City.synthetic(seed=1, neighbourhoods=20, streets=2, population=50_000)
    >>> f = synthetic_feeds(city, Catalog.load(), "2020-02-01", "2020-02-02", feeds=["fire_alarms", "noise"], rate=50)
    >>> f.n_rows["readings"] == 96 * int((city.sensors.kind == "noise_monitor").sum()) * 2
    True
    >>> 20 < f.n_rows["events"] < 100, set(f.frame("events")["feed"])
    (True, {'fire_alarms'})
    """
    t0 = pd.Timestamp(start)
    t1 = pd.Timestamp(end)
    if t0.tzinfo is not None or t1.tzinfo is not None:
        raise ValueError(f"start and end must be tz-naive local times, got {start!r}, {end!r}")
    if not t1 > t0:
        raise ValueError(f"end must be after start, got start={t0}, end={t1}")
    cycle_ns = int(pd.Timedelta(cycle).value)
    if cycle_ns <= 0:
        raise ValueError(f"cycle must be a positive duration such as '15min', got {cycle!r}")
    if not (isinstance(rate, (int, float)) and rate >= 0 and np.isfinite(rate)):
        raise ValueError(f"rate must be a finite number >= 0, got {rate!r}")
    wanted = list(catalog.feeds) if feeds is None else list(feeds)
    unknown = [f for f in wanted if f not in catalog.feeds]
    if unknown:
        raise ValueError(f"unknown feed {unknown[0]!r}; expected ids of catalog.feeds")
    a, b = int(t0.as_unit("ns").value), int(t1.as_unit("ns").value)
    n_cycles = -(-(b - a) // cycle_ns)
    ev = _events(city, catalog, wanted, a, n_cycles, cycle_ns, seed, rate)
    rd = _readings(city, catalog, wanted, a, n_cycles, cycle_ns, seed)
    for name, frame in (("rd", rd), ("ev", ev)):
        if frame is not None:
            keep = frame["time"].to_numpy() < np.datetime64(b, "ns")
            if not keep.all():
                frame = frame[keep].reset_index(drop=True)
            if name == "rd":
                rd = frame
            else:
                ev = frame
    sn = _snapshots(city, catalog, wanted, a, b, cycle_ns, seed)
    return Feeds(events=ev, readings=rd, snapshots=sn, source="synthetic")


# ============================================================================ corruption


def _set(df: pd.DataFrame, col: str, idx: np.ndarray, value) -> None:
    if not len(idx):
        return
    s = df[col]
    if isinstance(s.dtype, pd.CategoricalDtype):
        if value not in s.cat.categories:
            s = s.cat.add_categories([value])
        s = s.copy()
        s.iloc[idx] = value
        df[col] = s
    else:
        if pd.api.types.is_datetime64_any_dtype(s.dtype) and isinstance(value, str):
            s = s.astype(object)
        elif pd.api.types.is_numeric_dtype(s.dtype) and isinstance(value, str):
            s = s.astype(object)
        else:
            s = s.copy()
        s.iloc[idx] = value
        df[col] = s


_CORRUPTIONS = {
    "events": ("bad_timestamp", "future_timestamp", "too_late", "unknown_feed", "unknown_category", "unknown_region",
               "duplicate_id", "unknown_channel"),
    "readings": ("bad_timestamp", "future_timestamp", "too_late", "unknown_feed", "unknown_sensor", "unknown_metric",
                 "bad_value", "impossible_value"),
    "snapshots": ("bad_timestamp", "future_timestamp", "too_late", "unknown_feed", "unknown_entity", "unknown_field",
                  "bad_value", "impossible_value"),
}


def corrupt_feeds(feeds: Feeds, fraction: float = 0.01, seed: int = 0, *, now=None) -> Feeds:
    """A copy of ``feeds`` with about ``fraction`` of each part's rows spoiled.

    Each chosen row gets one fault, dtype kept (categorical columns gain a category): time
    missing (NaT), a day after ``now`` (default: the latest time + 1 day) or 30 days before the
    earliest time (late only when :func:`encode` gets a watermark); an unknown feed,
    category, channel, region, sensor, metric, entity or field; a missing or impossible
    value; an event id repeated from the row before (with its feed and category). Rows can
    reach the quarantine for another reason than their fault (e.g. a repeated id of a row
    that is itself bad is not a duplicate), so the quarantine holds *about* the fraction.

    Examples
    --------
    >>> import pandas as pd
    >>> rd = pd.DataFrame({"time": pd.to_datetime(["2020-02-01"] * 200), "feed": "noise",
    ...                    "sensor": "noise_monitor-0001", "metric": "leq", "value": 50.0})
    >>> bad = corrupt_feeds(Feeds(readings=rd), fraction=0.05, seed=1).frame("readings")
    >>> int((bad != rd).any(axis=1).sum())
    10
    """
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be in [0, 1], got {fraction!r}")
    out = Feeds()
    out.errors, out.skipped = list(feeds.errors), list(feeds.skipped)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 404]))
    for kind in KINDS:
        for source, frame in feeds.parts(kind):
            df = frame.copy()
            n = len(df)
            k = int(round(fraction * n))
            if k:
                rows = np.sort(rng.choice(n, size=k, replace=False))
                faults = np.array(_CORRUPTIONS[kind])[rng.integers(0, len(_CORRUPTIONS[kind]), k)]
                times = pd.to_datetime(df["time"], errors="coerce", format="ISO8601")
                future = (pd.Timestamp(now) if now is not None else times.max()) + pd.Timedelta("1D")
                for fault in np.unique(faults):
                    idx = rows[faults == fault]
                    if fault == "bad_timestamp":
                        _set(df, "time", idx, pd.NaT if pd.api.types.is_datetime64_any_dtype(df["time"].dtype)
                             else "not a time")
                    elif fault == "future_timestamp":
                        _set(df, "time", idx, future if pd.api.types.is_datetime64_any_dtype(df["time"].dtype)
                             else str(future))
                    elif fault == "too_late":
                        past = times.min() - pd.Timedelta("30D")
                        _set(df, "time", idx, past if pd.api.types.is_datetime64_any_dtype(df["time"].dtype)
                             else str(past))
                    elif fault == "unknown_feed":
                        _set(df, "feed", idx, "no_such_feed")
                    elif fault in ("unknown_category", "unknown_metric", "unknown_field", "unknown_channel"):
                        col = fault.split("_", 1)[1]
                        if col in df.columns:
                            _set(df, col, idx, f"no_such_{col}")
                    elif fault in ("unknown_region", "unknown_sensor", "unknown_entity"):
                        col = fault.split("_", 1)[1]
                        if col in df.columns:
                            _set(df, col, idx, "NO-SUCH-ID")
                    elif fault == "bad_value":
                        _set(df, "value", idx, np.nan)
                    elif fault == "impossible_value":
                        _set(df, "value", idx, -1.0)
                    elif fault == "duplicate_id" and "id" in df.columns:
                        idx = idx[idx > 0]
                        for col in ("id", "feed", "category", "channel"):
                            if col in df.columns:
                                src = df[col].iloc[idx - 1].to_numpy()
                                s = df[col].copy()
                                s.iloc[idx] = src
                                df[col] = s
            out.add(kind, df, source=source)
    return out
