"""A slow, obvious reference for feed validation: plain Python, one row at a time.

It re-implements the rules of ``engine.feeds.encode`` from the documentation (docs/feeds.md)
without sharing its code: dict lookups instead of factorised codes, ``datetime.fromisoformat``
instead of pandas' parser, ray casting in pure Python instead of the numba point-in-polygon
kernel. Tests compare the engine with it on random frames; the ingest benchmark uses it as
the row-by-row peer (through ``DataFrame.apply``).
"""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import pandas as pd

from engine.catalog.vocab import window_minutes

_EMITTER_COL = {"readings": "sensor", "snapshots": "entity"}
_ITEM_COL = {"events": "category", "readings": "metric", "snapshots": "field"}
_ITEM_KEY = {"events": "categories", "readings": "metrics", "snapshots": "fields"}


def key(v):
    """A cell as an id: text kept, whole numbers without '.0', missing and '' -> None."""
    if v is None:
        return None
    if isinstance(v, str):
        return v or None
    if isinstance(v, float):
        if math.isnan(v):
            return None
        return str(int(v)) if v.is_integer() else repr(v)
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, np.floating):
        return key(float(v))
    if v is pd.NA or v is pd.NaT:
        return None
    return str(v)


def time_ns(v):
    """ns since epoch of a timestamp cell, or None when it is not a usable timestamp."""
    if v is None or v is pd.NaT or isinstance(v, (bool, int, float, np.integer, np.floating)):
        return None
    if isinstance(v, str):
        if not v:
            return None
        try:
            d = datetime.fromisoformat(v)
        except ValueError:
            return None
        if d.tzinfo is not None:
            d = d.replace(tzinfo=None)
        if not 1678 <= d.year <= 2261:
            return None
        return int(pd.Timestamp(d).as_unit("ns").value)
    if isinstance(v, np.datetime64):
        if np.isnat(v):
            return None
        v = pd.Timestamp(v)
    if isinstance(v, datetime):
        ts = pd.Timestamp(v)
        if ts.tzinfo is not None:
            ts = ts.tz_localize(None)
        return int(ts.as_unit("ns").value)
    return None


def number(v):
    """(float or None, is_text_that_is_not_a_number)."""
    if v is None or v is pd.NA:
        return None, False
    if isinstance(v, (bool, np.bool_)):
        return float(v), False
    if isinstance(v, (int, float, np.integer, np.floating)):
        f = float(v)
        return (None, False) if math.isnan(f) else (f, False)
    if isinstance(v, str):
        if v == "":
            return None, False
        try:
            f = float(v)
        except ValueError:
            return None, True
        return (None, True) if math.isnan(f) else (f, False)
    return None, True


def point_in_ring(x, y, ring) -> bool:
    """Even-odd ray casting."""
    inside = False
    n = len(ring)
    for i in range(n):
        x1, y1 = ring[i]
        x2, y2 = ring[(i + 1) % n]
        if (y1 > y) != (y2 > y):
            xc = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
            if x < xc:
                inside = not inside
    return inside


class Reference:
    """Row-by-row validator with the engine's rules; ``check(kind, frame)`` -> reasons, codes."""

    def __init__(self, city, catalog, now, watermark=None, seen_ids=None):
        self.city, self.catalog = city, catalog
        self.feed_ids = list(catalog.feeds)
        self.feeds = catalog.feeds
        self.now = int(pd.Timestamp(now).value)
        self.wm = None if watermark is None else int(pd.Timestamp(watermark).value)
        self.seen = {(str(f), key(i)) for f, i in (seen_ids or ())}
        self.region_pos = {str(r): i for i, r in enumerate(city.regions.index)}
        self.tables = {
            "region": ({str(r): i for i, r in enumerate(city.regions.index)}, None,
                       list(range(len(city.regions)))),
            "sensor": ({str(s): i for i, s in enumerate(city.sensors.index)}, city.sensors["kind"].tolist(),
                       [self.region_pos[r] for r in city.sensors["region"]]),
            "site": ({str(s): i for i, s in enumerate(city.sites.index)}, city.sites["kind"].tolist(),
                     [self.region_pos[r] for r in city.sites["region"]]),
            "enterprise": ({str(s): i for i, s in enumerate(city.enterprises.index)}, None,
                           [self.region_pos[r] for r in city.enterprises["region"]]),
        }
        rings = []
        off = city.poly_offsets
        for i in range(city.n_regions):
            rings.append([tuple(p) for p in city.poly_xy[off[i]:off[i + 1]].tolist()])
        self.rings = rings
        self.bboxes = [(min(p[0] for p in r), min(p[1] for p in r), max(p[0] for p in r), max(p[1] for p in r))
                       for r in rings]

    def locate(self, lon, lat) -> int:
        x, y = self.city.to_xy(lon, lat)
        x, y = float(x), float(y)
        g = self.city.grid_spec
        if g is not None:
            col = math.floor((x - g.x0) / g.cell_m)
            row = math.floor((y - g.y0) / g.cell_m)
            return row * g.nx + col if 0 <= col < g.nx and 0 <= row < g.ny else -1
        for i, (ring, (a, b, c, d)) in enumerate(zip(self.rings, self.bboxes)):
            if a <= x <= c and b <= y <= d and point_in_ring(x, y, ring):
                return i
        return -1

    # ------------------------------------------------------------------ one row
    def row(self, kind: str, r: dict):
        """(reason or None, encoded tuple or None) of one record (a dict of its cells)."""
        t = time_ns(r.get("time"))
        if t is None:
            return "bad_timestamp", None
        hidden = r.get("_cv_reason")
        if isinstance(hidden, str) and hidden:
            return hidden, None
        f = key(r.get("feed"))
        if f not in self.feeds or self.feeds[f]["kind"] != kind:
            return "unknown_feed", None
        spec = self.feeds[f]
        fi = self.feed_ids.index(f)
        if t > self.now:
            return "future_timestamp", None
        if self.wm is not None and t < self.wm - window_minutes(spec.get("lateness", "1h")) * 60 * 10**9:
            return "too_late", None
        if kind == "events":
            return self._event(r, t, f, fi, spec)
        return self._emitted(kind, r, t, f, fi, spec)

    def _event(self, r, t, f, fi, spec):
        cats = list(spec["categories"])
        c = key(r.get("category"))
        if c not in cats:
            return "unknown_category", None
        chans = list(spec.get("channels", {}))
        ch = key(r.get("channel"))
        if ch is not None and ch not in chans:
            return "unknown_channel", None
        reg = key(r.get("region"))
        if reg is not None:
            if reg not in self.region_pos:
                return "unknown_region", None
            where = self.region_pos[reg]
        else:
            if "lon" not in r or "lat" not in r:
                return "no_location", None
            lon, _ = number(r.get("lon"))
            lat, _ = number(r.get("lat"))
            if lon is None or lat is None:
                return "no_location", None
            where = self.locate(lon, lat)
            if where < 0:
                return "outside_city", None
        value = float("nan")
        if "value_unit" in spec and "value" in r:
            v, text = number(r.get("value"))
            if text:
                return "bad_value", None
            if v is not None:
                if not (math.isfinite(v) and 0 <= v <= float(spec.get("value_max", math.inf))):
                    return "impossible_value", None
                value = v
        return None, (t, fi, cats.index(c), chans.index(ch) if ch is not None else -1, where, value)

    def _emitted(self, kind, r, t, f, fi, spec):
        col = _EMITTER_COL[kind]
        emitter = spec.get("emitter", "region")
        ids, kinds, regions = self.tables[emitter]
        e = key(r.get(col))
        if e is None or e not in ids:
            return f"unknown_{col}", None
        pos = ids[e]
        ekind = -1
        if emitter in ("sensor", "site"):
            if kinds[pos] not in spec["emitter_kinds"]:
                return f"unknown_{col}", None
            ekind = spec["emitter_kinds"].index(kinds[pos])
        icol = _ITEM_COL[kind]
        items = spec[_ITEM_KEY[kind]]
        it = key(r.get(icol))
        if it not in items:
            return f"unknown_{icol}", None
        v, _ = number(r.get("value"))
        if v is None:
            return "bad_value", None
        lo, hi = items[it].get("min", -math.inf), items[it].get("max", math.inf)
        if not (math.isfinite(v) and lo <= v <= hi):
            return "impossible_value", None
        return None, (t, fi, list(items).index(it), pos, ekind, regions[pos], v)

    # ------------------------------------------------------------------ a frame
    def check(self, kind: str, frame: pd.DataFrame, *, use_apply: bool = False):
        """Reasons (None = accepted) per row and the accepted rows' tuples, in row order.

        ``use_apply`` runs the per-row check through ``DataFrame.apply(axis=1)`` (the
        benchmark's peer); otherwise a plain loop over ``to_dict('records')``.
        """
        if use_apply:
            res = frame.apply(lambda s: self.row(kind, s.to_dict()), axis=1, result_type="reduce").tolist()
        else:
            res = [self.row(kind, r) for r in frame.to_dict("records")]
        reasons = [a for a, _ in res]
        codes = [b for _, b in res]
        # duplicates last, among rows that passed every other check, first kept
        if "id" in frame.columns:
            seen = set(self.seen)
            for i, (rid, rf) in enumerate(zip(frame["id"].tolist(), frame["feed"].tolist())):
                k = key(rid)
                if reasons[i] is not None or k is None:
                    continue
                pair = (key(rf), k)
                if pair in seen:
                    reasons[i], codes[i] = "duplicate_id", None
                else:
                    seen.add(pair)
        return reasons, codes
