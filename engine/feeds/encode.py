"""Validation, quarantine and integer encoding of feed records for the numba kernels.

:func:`encode` turns a :class:`~engine.feeds.Feeds` into an :class:`Encoded` (contiguous numpy
arrays: times in ns, feed / category / channel / metric / field codes, emitter and region
positions, values) and a :class:`~engine.feeds.Quarantine` of every row it set aside.
Everything is vectorised: string columns are factorised once and their few distinct values
looked up in the catalog and the city (``pd.factorize`` + ``Index.get_indexer``); per-row work is
numpy indexing. Python loops run over distinct values, feeds and rejected rows only.

Checks run in the order of :data:`~engine.feeds.schema.REASONS`; a row gets the first reason
that applies, so a quarantined row has exactly one reason and
``accepted + quarantined == rows in``, always.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from engine.catalog.vocab import window_minutes
from engine.feeds.frames import Feeds
from engine.feeds.quarantine import Quarantine, original_rows
from engine.feeds.schema import (
    EMITTER_COLUMN, HIDDEN_DETAIL, HIDDEN_REASON, ITEM_COLUMN, ITEM_KEY, KINDS, REASON_CODE, REASONS,
    shorten,
)

__all__ = ["Encoded", "Encoder", "encode", "parse_times", "as_keys"]

NAT = np.iinfo(np.int64).min
EMITTERS = ("region", "sensor", "site", "enterprise")
_NS_PER_MIN = 60 * 10**9


# ============================================================================ column helpers


def _norm_key(v):
    """A key value as text: str kept, integral numbers without '.0', missing / '' -> None."""
    if v is None:
        return None
    if isinstance(v, str):
        return v if v != "" else None
    if isinstance(v, (float, np.floating)):
        if v != v:
            return None
        if float(v).is_integer():
            return str(int(v))
        return repr(float(v))
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if v is pd.NA or v is pd.NaT:
        return None
    return str(v)


#: id(categories) -> (categories, key codes, keys) of categorical columns seen (the categories
#: object held, so an id is never reused while its entry lives; immutable pandas Indexes)
_CATEGORY_KEYS: dict = {}


def as_keys(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Factorise an id-like column into ``(codes, keys)``: int64 codes (-1 = missing) into an
    object array of distinct text keys.

    Values are compared as text: ``7``, ``7.0`` and ``"7"`` are one key; ``""`` is missing.

    Examples
    --------
    >>> codes, keys = as_keys(pd.Series(["a", 7, "7", None, "", "a"], dtype=object))
    >>> codes.tolist(), keys.tolist()
    ([0, 1, 1, -1, -1, 0], ['a', '7'])
    """
    if isinstance(col.dtype, pd.CategoricalDtype):
        # a categorical's own codes: only its (distinct) categories are looked at, not every row;
        # the simulator's days share one categories object per column, keyed once
        cats = col.cat.categories
        got = _CATEGORY_KEYS.get(id(cats))
        if got is None or got[0] is not cats:
            got = (cats, *as_keys(pd.Series(cats)))
            if len(_CATEGORY_KEYS) >= 64:
                _CATEGORY_KEYS.clear()
            _CATEGORY_KEYS[id(cats)] = got
        _, cc, keys = got
        codes = np.asarray(col.cat.codes, dtype=np.intp)
        if len(cc) == len(keys) and bool((cc == np.arange(len(cc))).all()):
            return codes, keys  # categories already distinct keys, in order: the codes are the key codes
        return np.append(cc, -1).take(codes), keys  # (code -1, missing, takes the appended -1)
    codes, uniq = pd.factorize(col, use_na_sentinel=True)
    codes = np.asarray(codes, dtype=np.int64)
    if isinstance(uniq, pd.Index) and pd.api.types.is_integer_dtype(uniq.dtype):
        return codes, np.asarray(uniq.astype(str), dtype=object)
    keys = np.asarray(uniq, dtype=object)
    if pd.api.types.infer_dtype(keys, skipna=False) == "string" and not (keys == "").any():
        return codes, keys
    norm = [_norm_key(v) for v in keys]
    c2, u2 = pd.factorize(pd.Series(norm, dtype=object), use_na_sentinel=True)
    c2 = np.append(np.asarray(c2, dtype=np.int64), -1)  # index -1 (missing) stays missing
    return c2[codes], np.asarray(u2, dtype=object)


def _floats(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """``(values, not_a_number)``: float64 values (NaN when missing or unparseable) and a mask
    of cells that hold something that is not a number."""
    if pd.api.types.is_bool_dtype(col.dtype) or pd.api.types.is_numeric_dtype(col.dtype):
        v = col.to_numpy(dtype=np.float64, na_value=np.nan)
        return v, np.zeros(len(v), dtype=bool)
    present = col.notna().to_numpy()
    if pd.api.types.is_object_dtype(col.dtype) or pd.api.types.is_string_dtype(col.dtype):
        s = col.astype(object) if isinstance(col.dtype, pd.CategoricalDtype) else col
        try:
            present = present & (s != "").to_numpy(dtype=bool, na_value=False)
        except TypeError:
            pass
    num = pd.to_numeric(col.astype(object) if isinstance(col.dtype, pd.CategoricalDtype) else col, errors="coerce")
    v = pd.Series(num).to_numpy(dtype=np.float64, na_value=np.nan)
    return v, present & np.isnan(v)


def _datetime_ns(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int64 ns since epoch and an ok mask from a datetime64 array of any unit."""
    unit, count = np.datetime_data(a.dtype)
    nat = np.isnat(a)
    iv = a.view(np.int64)
    factor = int(np.timedelta64(count, unit) / np.timedelta64(1, "ns")) if unit != "generic" else 1
    if factor == 1:
        ok = ~nat
        return np.where(ok, iv, NAT), ok
    lim = np.iinfo(np.int64).max // factor
    ok = ~nat & (iv <= lim) & (iv >= -lim)
    return np.where(ok, iv * factor, NAT), ok


def parse_times(col: pd.Series, fmt: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Parse a time column into ``(ns, ok)``: int64 ns since epoch (tz-naive local) and a mask.

    Accepted: datetime64 columns (tz-aware ones keep their own wall-clock time), and text in
    ISO 8601 (or ``fmt``, a ``strftime`` format). Numbers, unparseable text, missing cells and
    times outside 1677-2262 are not ok.

    Examples
    --------
    >>> ns, ok = parse_times(pd.Series(["2020-02-01 08:00", "soon", None, "2020-02-01T08:00:00.5"]))
    >>> ok.tolist()
    [True, False, False, True]
    >>> int(ns[3] - ns[0])
    500000000
    """
    dtype = col.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        col = col.dt.tz_localize(None)
        dtype = col.dtype
    if pd.api.types.is_datetime64_dtype(dtype):
        return _datetime_ns(col.to_numpy())
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
        n = len(col)
        return np.full(n, NAT, dtype=np.int64), np.zeros(n, dtype=bool)
    codes, uniq = pd.factorize(col, use_na_sentinel=True)
    codes = np.asarray(codes, dtype=np.int64)
    u = pd.Series(np.asarray(uniq, dtype=object), dtype=object)
    is_num = u.map(lambda v: isinstance(v, (int, float, np.integer, np.floating, bool))).to_numpy(dtype=bool)
    try:
        parsed = pd.to_datetime(u.where(~is_num, None), format=fmt or "ISO8601", errors="coerce")
        if isinstance(parsed.dtype, pd.DatetimeTZDtype):
            parsed = parsed.dt.tz_localize(None)
        uns, uok = _datetime_ns(parsed.to_numpy())
    except (ValueError, TypeError, OverflowError):  # mixed time zones and the like: one by one
        uns = np.full(len(u), NAT, dtype=np.int64)
        for i, v in enumerate(u.tolist()):
            if is_num[i]:
                continue
            try:
                ts = pd.to_datetime(v, format=fmt or "ISO8601")
                if ts is pd.NaT:
                    continue
                if ts.tzinfo is not None:
                    ts = ts.tz_localize(None)
                uns[i] = ts.as_unit("ns").value
            except (ValueError, TypeError, OverflowError):
                continue
        uok = uns != NAT
    uns = np.append(uns, NAT)
    uok = np.append(uok, False)
    return uns[codes], uok[codes]


def _timestamp_ns(value, name: str) -> int:
    ts = pd.Timestamp(value)
    if ts is pd.NaT:
        raise ValueError(f"{name} must be a timestamp, got {value!r}")
    if ts.tzinfo is not None:
        raise ValueError(f"{name} must be tz-naive local time (like the feeds), got {value!r}")
    return int(ts.as_unit("ns").value)


def _show_time(ns: int) -> str:
    return str(pd.Timestamp(int(ns)))


def _show_times(ns: np.ndarray) -> list[str]:
    """Times (int64 ns) as ``YYYY-MM-DD HH:MM:SS[.fff]`` text (integer arithmetic, no Timestamp per row)."""
    ns = np.asarray(ns, dtype=np.int64)
    sec = ns // 10**9
    msec = (ns % 10**9) // 10**6
    day = sec // 86_400
    sod = sec % 86_400
    days = {int(d): str(np.datetime64(int(d), "D")) for d in np.unique(day).tolist()}
    return [f"{days[d]} {q // 3600:02d}:{q % 3600 // 60:02d}:{q % 60:02d}" + (f".{m:03d}" if m else "")
            for d, q, m in zip(day.tolist(), sod.tolist(), msec.tolist())]


def _num(x: float) -> str:
    """A bound as text: whole numbers without exponent or '.0'."""
    return str(int(x)) if np.isfinite(x) and float(x).is_integer() and abs(x) < 1e18 else f"{x:g}"


def _a(word: str) -> str:
    return ("an " if word[:1] in "aeiou" else "a ") + word


def _memo(make):
    """Cache a detail maker by its arguments (details repeat across rows)."""
    cache: dict = {}

    def get(*key):
        if key not in cache:
            cache[key] = make(*key)
        return cache[key]

    return get


# ============================================================================ lookups


def _present(fc: np.ndarray, nf: int) -> tuple[np.ndarray, np.ndarray]:
    """``(feeds, row)``: the catalog positions present in ``fc`` (ascending), and the row of
    each position ``f`` in a per-call table at ``row[f + 1]`` (row 0: an unknown feed, -1)."""
    seen = np.zeros(nf + 1, dtype=bool)
    seen[fc + 1] = True
    feeds = np.flatnonzero(seen[1:])
    row = np.zeros(nf + 1, dtype=np.int64)
    row[feeds + 1] = np.arange(1, len(feeds) + 1)
    return feeds, row


def _pairs(frow: np.ndarray, kc: np.ndarray, nk: int) -> np.ndarray:
    """Flat index of each row's (feed row, key) cell in a ``(feeds + 1, nk + 1)`` table whose
    row 0 / column 0 stand for an unknown feed / a missing key (``frow``: per-row table rows)."""
    ix = frow * (nk + 1)
    ix += kc
    ix += 1
    return ix


class _CatalogCodes:
    """The catalog's feeds as arrays: kind, emitter, lateness, per-feed item lists and bounds."""

    def __init__(self, catalog):
        feeds = catalog.feeds
        self.feed_ids = list(feeds)
        self.feed_index = pd.Index(self.feed_ids, dtype=object)
        self.specs = [feeds[f] for f in self.feed_ids]
        n = len(self.feed_ids)
        self.kind = np.array([KINDS.index(s["kind"]) for s in self.specs], dtype=np.int64)
        self.emitter = np.array([EMITTERS.index(s.get("emitter", "region")) for s in self.specs], dtype=np.int64)
        self.lateness_ns = np.array([window_minutes(s.get("lateness", "1h")) * _NS_PER_MIN for s in self.specs],
                                    dtype=np.int64)
        self.items = [list(s.get(ITEM_KEY[s["kind"]], {})) for s in self.specs]
        self.channels = [list(s.get("channels", {})) for s in self.specs]
        self.emitter_kinds = [list(s.get("emitter_kinds", [])) for s in self.specs]
        width = max([len(i) for i in self.items] + [1])
        self.lo = np.full((n, width), -np.inf)
        self.hi = np.full((n, width), np.inf)
        for f, s in enumerate(self.specs):
            table = s.get(ITEM_KEY[s["kind"]], {})
            for j, item in enumerate(self.items[f]):
                spec = table[item] if isinstance(table, dict) else {}
                if spec.get("min") is not None:
                    self.lo[f, j] = float(spec["min"])
                if spec.get("max") is not None:
                    self.hi[f, j] = float(spec["max"])
        self._kind_maps: dict[int, np.ndarray] = {}
        self.lo_flat, self.hi_flat = self.lo.ravel(), self.hi.ravel()
        self.has_value = np.array([s["kind"] == "events" and "value_unit" in s for s in self.specs], dtype=bool)
        self.value_max = np.array([float(s.get("value_max", np.inf)) if "value_unit" in s else np.inf
                                   for s in self.specs])

    def feed_codes(self, col: pd.Series, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(code, key_codes, keys)``: catalog position of each row's feed (-1 unknown or of
        another kind)."""
        kc, keys = as_keys(col)
        pos = self.feed_index.get_indexer(keys) if len(keys) else np.zeros(0, dtype=np.int64)
        ok = (pos >= 0) & (self.kind[np.maximum(pos, 0)] == KINDS.index(kind))
        ucode = np.append(np.where(ok, pos, -1), -1).astype(np.intp)
        return ucode.take(kc), kc, keys

    def lut(self, lists: list[list[str]], keys: np.ndarray, feeds: np.ndarray) -> np.ndarray:
        """(len(feeds) + 1, keys + 1) table: index of each key in each listed feed's list (-1
        absent); row 0 and column 0 stand for an unknown feed and a missing key (rows in the
        order of ``feeds``, the catalog positions present; see :func:`_pairs`)."""
        out = np.full((len(feeds) + 1, len(keys) + 1), -1, dtype=np.int32)
        if not len(feeds):
            return out
        where = {k: i for i, k in enumerate(keys.tolist())}
        for r, f in enumerate(feeds.tolist(), start=1):
            for j, item in enumerate(lists[f]):
                i = where.get(item)
                if i is not None:
                    out[r, i + 1] = j
        return out

    def kind_map(self, f: int, names: list[str]) -> np.ndarray:
        """Index of each of the city's emitter kinds ``names`` in feed ``f``'s ``emitter_kinds``
        (-1: not taken); built once per feed."""
        got = self._kind_maps.get(f)
        if got is None:
            got = self._kind_maps[f] = pd.Index(self.emitter_kinds[f]).get_indexer(names)
        return got

    def expected(self, f: int, lists: list[list[str]], limit: int = 8) -> str:
        items = lists[f]
        shown = ", ".join(items[:limit]) + (f", ... ({len(items)} in all)" if len(items) > limit else "")
        return shown or "none"


class _CityCodes:
    """The city's emitters as arrays: positions, kind codes and region positions."""

    def __init__(self, city):
        from engine.city import SENSOR_KINDS, SITE_KINDS

        self.city = city
        regions = city.regions.index
        self.index = {
            "region": pd.Index(regions.astype(object), dtype=object),
            "sensor": pd.Index(city.sensors.index.astype(object), dtype=object),
            "site": pd.Index(city.sites.index.astype(object), dtype=object),
            "enterprise": pd.Index(city.enterprises.index.astype(object), dtype=object),
        }
        self.kind_names = {"sensor": list(SENSOR_KINDS), "site": list(SITE_KINDS)}
        self.kind_code = {
            "sensor": pd.Index(self.kind_names["sensor"]).get_indexer(city.sensors["kind"].astype(object)),
            "site": pd.Index(self.kind_names["site"]).get_indexer(city.sites["kind"].astype(object)),
        }
        self.region_of = {
            "region": np.arange(len(regions), dtype=np.int64),
            "sensor": regions.get_indexer(city.sensors["region"].astype(object)).astype(np.int64),
            "site": regions.get_indexer(city.sites["region"].astype(object)).astype(np.int64),
            "enterprise": regions.get_indexer(city.enterprises["region"].astype(object)).astype(np.int64),
        }
        self._lookups: dict[str, tuple] = {}

    def lookup(self, name: str, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``(position, region, kind code)`` of each key among the city's ``name`` emitters:
        position -1 and region -1 where the key is not one; kind code (into ``kind_names[name]``,
        read where the position is found) ``None`` for emitters without kinds. The last keys
        looked up for each emitter type are remembered (a categorical column's categories
        repeat from call to call)."""
        last = self._lookups.get(name)
        if last is not None and (last[0] is keys or (len(last[0]) == len(keys) and np.array_equal(last[0], keys))):
            return last[1]
        up = self.index[name].get_indexer(keys) if len(keys) else np.zeros(0, dtype=np.int64)
        ok = up >= 0
        safe = np.maximum(up, 0)
        table = self.region_of[name]
        reg = np.where(ok, table[safe], -1) if len(table) else np.full(len(keys), -1, dtype=np.int64)
        kind = None
        if name in self.kind_code:
            codes = self.kind_code[name]
            kind = codes[safe] if len(codes) else np.zeros(len(keys), dtype=np.int64)
        got = (up, reg, kind)
        self._lookups[name] = (keys, got)
        return got


# ============================================================================ a batch of rows


class _Batch:
    """The rows of one kind being checked: reason codes, detail makers, and the frame."""

    def __init__(self, kind: str, df: pd.DataFrame, src: np.ndarray, rows: np.ndarray, names: list[str]):
        self.kind, self.df, self.src, self.rows, self.names = kind, df, src, rows, names
        self.n = len(df)
        self.reason = np.full(self.n, -1, dtype=np.int16)
        self.makers: dict[int, object] = {}

    @property
    def ok(self) -> np.ndarray:
        return self.reason < 0

    def flag(self, mask: np.ndarray, reason: str, maker) -> None:
        """Give ``reason`` to the rows of ``mask`` that have none yet; ``maker(idx)`` returns
        their detail texts."""
        if not mask.any():
            return
        m = mask & (self.reason < 0)
        if m.any():
            code = REASON_CODE[reason]
            self.reason[m] = code
            self.makers[code] = maker

    def raw(self, column: str, idx: np.ndarray) -> list:
        if column not in self.df.columns:
            return [None] * len(idx)
        return self.df[column].iloc[idx].tolist()

    def quarantine(self) -> Quarantine:
        bad = np.flatnonzero(self.reason >= 0)
        if not len(bad):
            return Quarantine()
        codes = self.reason[bad]
        details = np.empty(len(bad), dtype=object)
        reasons = np.empty(len(bad), dtype=object)
        for code in np.unique(codes):
            sel = codes == code
            idx = bad[sel]
            texts = list(self.makers[int(code)](idx))
            details[sel] = texts
            reasons[sel] = REASONS[int(code)]
        meta = pd.DataFrame({
            "kind": np.full(len(bad), self.kind, dtype=object),
            "source": np.asarray(self.names, dtype=object)[self.src[bad]],
            "reason": reasons,
            "detail": details,
        }, dtype=object)
        meta.insert(2, "row", self.rows[bad].astype(np.int64))
        orig = original_rows(self.df, bad)
        return Quarantine(pd.concat([meta, orig], axis=1) if len(orig.columns) else meta)


def _stack(parts: list[tuple[str, pd.DataFrame]]):
    names = [s for s, _ in parts]
    if not parts:
        return pd.DataFrame(), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), names
    if len(parts) == 1:
        df = parts[0][1].reset_index(drop=True)
        n = len(df)
        return df, np.zeros(n, dtype=np.int64), np.arange(n, dtype=np.int64), names
    frames = [f.reset_index(drop=True) for _, f in parts]
    lens = [len(f) for f in frames]
    df = pd.concat(frames, ignore_index=True, sort=False)
    src = np.repeat(np.arange(len(frames), dtype=np.int64), lens)
    rows = np.concatenate([np.arange(k, dtype=np.int64) for k in lens])
    return df, src, rows, names


# ============================================================================ shared checks


class _Checker:
    def __init__(self, codes: tuple, now, watermark, seen_ids):
        self.cat, self.city = codes
        self.now_ns = _timestamp_ns(pd.Timestamp.now() if now is None else now, "now")
        self.wm_ns = None if watermark is None else _timestamp_ns(watermark, "watermark")
        self.seen_by_feed: dict[str, list[str]] = {}
        for pair in seen_ids or ():
            f, i = pair
            key = _norm_key(i)
            if key is not None:
                self.seen_by_feed.setdefault(str(f), []).append(key)

    # ------------------------------------------------------------------ common front
    def front(self, b: _Batch) -> tuple[np.ndarray, np.ndarray]:
        """Time, adapter problems, feed, future, lateness. Returns (time ns, feed code)."""
        df, cat = b.df, self.cat
        t, tok = parse_times(df["time"])
        hidden_r = df[HIDDEN_REASON] if HIDDEN_REASON in df.columns else None

        def bad_time(idx):
            raw = b.raw("time", idx)
            if hidden_r is not None:
                hr = hidden_r.iloc[idx].tolist()
                hd = df[HIDDEN_DETAIL].iloc[idx].tolist()
            else:
                hr = hd = [None] * len(idx)
            return [d if r == "bad_timestamp" else
                    (f"time is missing; expected a timestamp" if v is None or (isinstance(v, float) and v != v)
                     or v is pd.NaT or v == "" else
                     f"time {shorten(v)} is not a timestamp; expected ISO 8601 text (2020-02-01 08:15:00) "
                     f"or a datetime between 1677 and 2262")
                    for v, r, d in zip(raw, hr, hd)]

        b.flag(~tok, "bad_timestamp", bad_time)
        if hidden_r is not None:
            hr = hidden_r.astype(object).to_numpy()
            present = pd.notna(hr)
            for reason in pd.unique(hr[present]):
                if reason == "bad_timestamp":
                    continue
                if reason not in REASON_CODE:
                    raise ValueError(f"adapter reason {reason!r} is not one of {REASONS}")
                b.flag(present & (hr == reason), reason,
                       lambda idx: df[HIDDEN_DETAIL].iloc[idx].astype(object).tolist())

        fc, fkc, fkeys = cat.feed_codes(df["feed"], b.kind)
        b.feeds, frow = _present(fc, len(cat.feed_ids))
        b.frow = frow.take(fc + 1)

        def feed_text(k):
            if k < 0:
                return "feed is missing; expected a feed id of the catalog"
            key = fkeys[k]
            pos = cat.feed_index.get_indexer([key])[0]
            if pos >= 0:
                return f"feed {shorten(key)} is {_a(KINDS[cat.kind[pos]])} feed; expected {_a(b.kind[:-1])} feed"
            known = [f for f, s in zip(cat.feed_ids, cat.specs) if s["kind"] == b.kind]
            return (f"feed {shorten(key)} is not in the catalog; expected one of "
                    f"{', '.join(known[:6])}, ... ({len(known)} {b.kind} feeds)")

        feed_text = _memo(feed_text)
        b.flag(fc < 0, "unknown_feed", lambda idx: [feed_text(k) for k in fkc[idx].tolist()])
        now = self.now_ns
        now_txt = _show_time(now)
        b.flag(t > now, "future_timestamp",
               lambda idx: [f"time {v} is after the cycle end {now_txt}" for v in _show_times(t[idx])])
        if self.wm_ns is not None:
            wm = self.wm_ns
            late = cat.lateness_ns[np.maximum(fc, 0)]
            wm_txt = _show_time(wm)
            tail = _memo(lambda f: f"is before the watermark {wm_txt} minus the lateness "
                                   f"{cat.specs[f].get('lateness', '1h')} of feed {cat.feed_ids[f]!r} "
                                   f"(earliest {_show_time(wm - cat.lateness_ns[f])})")
            b.flag((fc >= 0) & (t < wm - late), "too_late",
                   lambda idx: [f"time {v} {tail(f)}" for v, f in zip(_show_times(t[idx]), fc[idx].tolist())])
        return t, fc

    # ------------------------------------------------------------------ items and values
    def items(self, b: _Batch, fc: np.ndarray, column: str, lists, reason: str, what: str,
              required: bool = True) -> np.ndarray:
        """Index of each row's ``column`` value in its feed's list (-1: missing / unknown)."""
        cat = self.cat
        kc, keys = as_keys(b.df[column])
        code = cat.lut(lists, keys, b.feeds).ravel().take(_pairs(b.frow, kc, len(keys)))

        def text(k, f):
            exp = cat.expected(f, lists)
            if k < 0:
                return f"{column} is missing; expected one of {exp}"
            if not lists[f]:
                return f"{column} {shorten(keys[k])} given, but feed {cat.feed_ids[f]!r} has no {what}s"
            return (f"{column} {shorten(keys[k])} is not {_a(what)} of feed {cat.feed_ids[f]!r}; "
                    f"expected one of {exp}")

        text = _memo(text)

        def detail(idx):
            return [text(k, f) for k, f in zip(kc[idx].tolist(), fc[idx].tolist())]

        bad = (code < 0) if required else ((kc >= 0) & (code < 0))
        b.flag(bad, reason, detail)
        return code

    def values(self, b: _Batch, fc: np.ndarray, item: np.ndarray, lo: np.ndarray, hi: np.ndarray,
               what: str, required: bool = True, applies: np.ndarray | None = None) -> np.ndarray:
        """The ``value`` column as float64, flagging bad and impossible values."""
        v, nan_text = _floats(b.df["value"])
        applies = np.ones(b.n, dtype=bool) if applies is None else applies
        missing = np.isnan(v)
        bad = applies & (nan_text | (missing if required else np.zeros(b.n, dtype=bool)))

        def bad_detail(idx):
            return [f"value {shorten(r)} is not a number" if t else
                    f"value is missing or NaN; {_a(what)} needs a number"
                    for r, t in zip(b.raw("value", idx), nan_text[idx].tolist())]

        b.flag(bad, "bad_value", bad_detail)
        with np.errstate(invalid="ignore"):
            out_of = applies & ~missing & ~((v >= lo) & (v <= hi) & np.isfinite(v))
        cat = self.cat
        items = cat.items

        def bounds(f, j, a, z):
            spec = cat.specs[f]
            if spec["kind"] == "events":
                name, unit = "value", spec.get("value_unit", "")
            else:
                name = items[f][j]
                unit = spec[ITEM_KEY[spec["kind"]]][name].get("unit", "")
            return f"is outside {name} {_num(a)}..{_num(z)}{' ' + unit if unit else ''} of feed {cat.feed_ids[f]!r}"

        bounds = _memo(bounds)

        def range_detail(idx):
            return [f"value {val!r} {bounds(f, j, a, z)}" for val, f, j, a, z in
                    zip(v[idx].tolist(), fc[idx].tolist(), item[idx].tolist(), lo[idx].tolist(), hi[idx].tolist())]

        b.flag(out_of, "impossible_value", range_detail)
        return np.where(applies, v, np.nan)

    # ------------------------------------------------------------------ emitters
    def emitters(self, b: _Batch, fc: np.ndarray, column: str, reason: str):
        """Emitter position (by the feed's emitter type), emitter-kind index, region position."""
        cat, cc = self.cat, self.city
        kc, keys = as_keys(b.df[column])
        nk = len(keys)
        # (present feed + 1, key + 1) tables, flat: row 0 / column 0 stand for an unknown feed /
        # a missing key (see _pairs)
        shape = (len(b.feeds) + 1, nk + 1)
        lut_pos = np.full(shape, -1, dtype=np.int32)
        lut_kind = np.full(shape, -1, dtype=np.int32)
        lut_region = np.full(shape, -1, dtype=np.int32)
        lut_bad = np.ones(shape, dtype=bool)
        for r, f in enumerate(b.feeds.tolist(), start=1):
            name = EMITTERS[cat.emitter[f]]
            up, reg, kind_of = self.city.lookup(name, keys)
            lut_pos[r, 1:] = up
            lut_region[r, 1:] = reg
            if kind_of is not None:
                k = np.where(up >= 0, cat.kind_map(f, cc.kind_names[name])[kind_of], -1)  # city kind -> feed kind
                lut_kind[r, 1:] = k
                lut_bad[r, 1:] = k < 0
            else:
                lut_bad[r, 1:] = up < 0
        ix = _pairs(b.frow, kc, nk)
        pos = lut_pos.ravel().take(ix)
        kind = lut_kind.ravel().take(ix)
        region = lut_region.ravel().take(ix)
        bad = lut_bad.ravel().take(ix)

        def text(k, f, p):
            ename = EMITTERS[cat.emitter[f]]
            if k < 0:
                return f"{column} is missing; expected {_a(ename)} id of the city"
            if p < 0:
                return (f"{column} {shorten(keys[k])} is not {_a(ename)} id of the city "
                        f"(feed {cat.feed_ids[f]!r} is emitted by {ename}s)")
            have = cc.kind_names[ename][cc.kind_code[ename][p]]
            return (f"{column} {shorten(keys[k])} is {_a(have)}; feed {cat.feed_ids[f]!r} takes "
                    f"{', '.join(cat.emitter_kinds[f])}")

        text = _memo(text)

        def detail(idx):
            return [text(k, f, p) for k, f, p in zip(kc[idx].tolist(), fc[idx].tolist(), pos[idx].tolist())]

        b.flag(bad, reason, detail)
        return pos, kind, region

    # ------------------------------------------------------------------ duplicates
    def dedupe(self, b: _Batch, fc: np.ndarray) -> set:
        """Flag repeated (feed, id) among otherwise good rows; returns the accepted pairs."""
        if "id" not in b.df.columns:
            return set()
        cat = self.cat
        kc, keys = as_keys(b.df["id"])
        cand = np.flatnonzero(b.ok & (kc >= 0))
        if not len(cand):
            return set()
        key = fc[cand].astype(np.int64) * (len(keys) + 1) + kc[cand]
        dup_in = pd.Index(key).duplicated(keep="first")
        seen = np.zeros(len(cand), dtype=bool)
        if self.seen_by_feed:
            for f in np.unique(fc[cand]).tolist():
                ids = self.seen_by_feed.get(cat.feed_ids[f])
                if not ids:
                    continue
                known = np.append(pd.Index(ids, dtype=object).get_indexer(keys) >= 0, False)
                sel = fc[cand] == f
                seen[sel] = known[kc[cand][sel]]
        first_of = {}
        if dup_in.any():
            firsts = cand[~dup_in]
            where = pd.Index(key[~dup_in]).get_indexer(key[dup_in])
            first_of = dict(zip(cand[dup_in].tolist(), firsts[where].tolist()))
        names = np.asarray(b.names, dtype=object)
        is_dup = np.zeros(b.n, dtype=bool)
        is_dup[cand[dup_in | seen]] = True
        seen_rows = set(cand[seen].tolist())

        def detail(idx):
            out = []
            for i in idx.tolist():
                f, k = cat.feed_ids[fc[i]], shorten(keys[kc[i]])
                if i in seen_rows:
                    out.append(f"id {k} of feed {f!r} was accepted in an earlier cycle")
                else:
                    j = first_of[i]
                    out.append(f"id {k} of feed {f!r} repeats row {b.rows[j]} of {names[b.src[j]]}")
            return out

        b.flag(is_dup, "duplicate_id", detail)
        good = np.flatnonzero(b.ok & (kc >= 0))
        feed_names = np.asarray(cat.feed_ids, dtype=object)
        return set(zip(feed_names[fc[good]].tolist(), keys[kc[good]].tolist()))


# ============================================================================ per kind


def _accepted(arrays: dict, ok: np.ndarray) -> dict:
    """The accepted rows of ``arrays`` in stable time order, in their final dtypes (``time``
    int64, ``value`` float64, codes int32), as new arrays: one gather per column."""
    t = arrays["time"]
    sel = None if ok.all() else np.flatnonzero(ok)
    o = _order(t if sel is None else t.take(sel))
    if not isinstance(o, slice):
        sel = o if sel is None else sel.take(o)
    out = {}
    for name, a in arrays.items():
        dt = np.int64 if name == "time" else np.float64 if name == "value" else np.int32
        if sel is None:
            out[name] = np.array(a, dtype=dt)  # a copy: the value column may be the frame's own memory
        else:
            out[name] = a.take(sel).astype(dt, copy=False)
    return out



def _events(ch: _Checker, b: _Batch) -> tuple[dict, set]:
    df, cat = b.df, ch.cat
    t, fc = ch.front(b)
    category = ch.items(b, fc, "category", cat.items, "unknown_category", "category")
    if "channel" in df.columns:
        channel = ch.items(b, fc, "channel", cat.channels, "unknown_channel", "channel", required=False)
    else:
        channel = np.full(b.n, -1, dtype=np.int32)
    region = np.full(b.n, -1, dtype=np.int64)
    need_point = np.ones(b.n, dtype=bool)
    if "region" in df.columns:
        rk, rkeys = as_keys(df["region"])
        up = np.append(ch.city.index["region"].get_indexer(rkeys) if len(rkeys) else np.zeros(0, np.int64), -1)
        region = up[rk]
        need_point = rk < 0
        b.flag((rk >= 0) & (region < 0), "unknown_region",
               lambda idx: [f"region {shorten(rkeys[k])} is not a region id of the city (e.g. "
                            f"{', '.join(map(str, ch.city.index['region'][:3]))})" for k in rk[idx].tolist()])
    if "lon" in df.columns and "lat" in df.columns:
        lon, lon_text = _floats(df["lon"])
        lat, lat_text = _floats(df["lat"])
        no_loc = need_point & (np.isnan(lon) | np.isnan(lat))

        def no_loc_detail(idx):
            out = []
            for a, z in zip(b.raw("lon", idx), b.raw("lat", idx)):
                out.append(f"no region and no usable point: lon={shorten(a)}, lat={shorten(z)}; expected a region "
                           f"id or two numbers")
            return out

        b.flag(no_loc, "no_location", no_loc_detail)
        todo = np.flatnonzero(need_point & b.ok)
        if len(todo):
            region[todo] = ch.city.city.locate(lon[todo], lat[todo])
        b.flag(need_point & (region < 0), "outside_city",
               lambda idx: [f"point ({x!r}, {y!r}) lies in no region of city {ch.city.city.name!r}"
                            for x, y in zip(lon[idx].tolist(), lat[idx].tolist())])
    else:
        b.flag(need_point, "no_location",
               lambda idx: ["region is missing and the records have no lon/lat columns; "
                            "expected a region id"] * len(idx))
    value = np.full(b.n, np.nan)
    if "value" in df.columns and cat.has_value.any():
        applies = (fc >= 0) & cat.has_value[np.maximum(fc, 0)]
        zero = np.zeros(b.n)
        value = ch.values(b, fc, category, zero, cat.value_max[np.maximum(fc, 0)], "value", required=False,
                          applies=applies)
    ids = ch.dedupe(b, fc)
    arrays = {"time": t, "feed": fc, "category": category, "channel": channel, "region": region, "value": value}
    return _accepted(arrays, b.ok), ids


def _readings_or_snapshots(ch: _Checker, b: _Batch) -> tuple[dict, set]:
    cat = ch.cat
    t, fc = ch.front(b)
    col = EMITTER_COLUMN[b.kind]
    emitter, ekind, region = ch.emitters(b, fc, col, f"unknown_{col}")
    icol = ITEM_COLUMN[b.kind]
    item = ch.items(b, fc, icol, cat.items, f"unknown_{icol}", icol)
    at = np.maximum(fc, 0) * cat.lo.shape[1]
    at += np.maximum(item, 0)
    value = ch.values(b, fc, item, cat.lo_flat.take(at), cat.hi_flat.take(at), f"{b.kind[:-1]}")
    ids = ch.dedupe(b, fc)
    arrays = {"time": t, "feed": fc, "item": item, "emitter": emitter, "kind": ekind, "region": region,
              "value": value}
    return _accepted(arrays, b.ok), ids


# ============================================================================ public


def _i32(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.int32)


def _i64(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.int64)


def _f64(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64)


@dataclass
class Encoded:
    """Accepted records as contiguous numpy arrays, sorted by time within each kind.

    ``feed_ids`` is ``list(catalog.feeds)``: every ``*_feed`` code indexes it. Item codes
    index the feed's own list: ``ev_category`` into ``list(feeds[f]["categories"])``,
    ``ev_channel`` into ``list(feeds[f]["channels"])`` (-1 when absent), ``rd_metric`` into
    its ``metrics``, ``sn_field`` into its ``fields``. Emitter positions index the city's
    tables by the feed's emitter: ``rd_emitter`` / ``sn_entity`` are positions in
    ``city.sensors``, ``city.sites``, ``city.enterprises`` or ``city.regions``;
    ``rd_kind`` / ``sn_kind`` index the feed's ``emitter_kinds`` (-1 for region and
    enterprise emitters). ``*_region`` are positions in ``city.regions``. Times are int64 ns
    since the epoch, tz-naive local time.

    Attributes
    ----------
    accepted_ids : set of (str, str)
        (feed, id) pairs accepted by this call (pass them, with earlier ones, as
        ``seen_ids`` next cycle).
    n_rows : dict
        Accepted rows by kind.
    """

    feed_ids: list[str]
    ev_time: np.ndarray
    ev_feed: np.ndarray
    ev_category: np.ndarray
    ev_channel: np.ndarray
    ev_region: np.ndarray
    ev_value: np.ndarray
    rd_time: np.ndarray
    rd_feed: np.ndarray
    rd_metric: np.ndarray
    rd_emitter: np.ndarray
    rd_kind: np.ndarray
    rd_region: np.ndarray
    rd_value: np.ndarray
    sn_time: np.ndarray
    sn_feed: np.ndarray
    sn_field: np.ndarray
    sn_entity: np.ndarray
    sn_kind: np.ndarray
    sn_region: np.ndarray
    sn_value: np.ndarray
    accepted_ids: set = field(default_factory=set)
    n_rows: dict = field(default_factory=dict)

    @classmethod
    def empty(cls, feed_ids: list[str]) -> "Encoded":
        """An :class:`Encoded` with no rows.

        Examples
        --------
        >>> Encoded.empty(["a"]).n_rows
        {'events': 0, 'readings': 0, 'snapshots': 0}
        """
        e = {"time": np.zeros(0, np.int64), **{k: np.zeros(0, np.int32) for k in
                                                ("feed", "category", "channel", "region", "item", "emitter", "kind")},
             "value": np.zeros(0)}
        return _assemble(list(feed_ids), e, e, e, set())

    def __repr__(self) -> str:
        return f"Encoded({self.n_rows}, feeds={len(self.feed_ids)}, accepted_ids={len(self.accepted_ids)})"


def _order(t: np.ndarray):
    """Stable time order (a slice when the rows are already in order)."""
    if len(t) < 2 or bool(np.all(t[1:] >= t[:-1])):
        return slice(None)
    return np.argsort(t, kind="stable")


def _assemble(feed_ids, ev, rd, sn, ids) -> Encoded:
    oe, orr, osn = _order(ev["time"]), _order(rd["time"]), _order(sn["time"])
    return Encoded(
        feed_ids=feed_ids,
        ev_time=_i64(ev["time"][oe]), ev_feed=_i32(ev["feed"][oe]), ev_category=_i32(ev["category"][oe]),
        ev_channel=_i32(ev["channel"][oe]), ev_region=_i32(ev["region"][oe]), ev_value=_f64(ev["value"][oe]),
        rd_time=_i64(rd["time"][orr]), rd_feed=_i32(rd["feed"][orr]), rd_metric=_i32(rd["item"][orr]),
        rd_emitter=_i32(rd["emitter"][orr]), rd_kind=_i32(rd["kind"][orr]), rd_region=_i32(rd["region"][orr]),
        rd_value=_f64(rd["value"][orr]),
        sn_time=_i64(sn["time"][osn]), sn_feed=_i32(sn["feed"][osn]), sn_field=_i32(sn["item"][osn]),
        sn_entity=_i32(sn["emitter"][osn]), sn_kind=_i32(sn["kind"][osn]), sn_region=_i32(sn["region"][osn]),
        sn_value=_f64(sn["value"][osn]),
        accepted_ids=ids,
        n_rows={"events": len(ev["time"]), "readings": len(rd["time"]), "snapshots": len(sn["time"])},
    )


def encode(feeds: Feeds, city, catalog, *, now=None, watermark=None, seen_ids=None) -> tuple[Encoded, Quarantine]:
    """Validate and encode feed records for the kernels; set bad rows aside.

    Parameters
    ----------
    feeds : Feeds
        The records (see :mod:`engine.feeds.schema` for the columns).
    city : engine.City
        Regions (points are located with ``city.locate``), sensors, sites, enterprises.
    catalog : engine.Catalog
        ``catalog.feeds`` says each feed's kind, emitter, items, bounds and lateness.
    now : timestamp, optional
        The cycle end (tz-naive local time); rows after it are ``future_timestamp``.
        Default: the wall clock.
    watermark : timestamp, optional
        Rows earlier than ``watermark - lateness(feed)`` are ``too_late``. Default: no
        lateness check.
    seen_ids : set of (feed, id), optional
        Ids accepted in earlier cycles; repeats are ``duplicate_id`` (so are repeats within
        this batch: the first is kept).

    Returns
    -------
    (Encoded, Quarantine)
        Accepted rows as arrays, and every other row with its reason. For every kind,
        accepted + quarantined == rows in.

    Examples
    --------
    >>> from engine import City, Catalog
    >>> city = City.synthetic(seed=1, neighbourhoods=20, streets=2, population=50_000)
    >>> ev = pd.DataFrame({"time": ["2020-02-01 08:00", "2020-02-01 08:05", "later"],
    ...                    "feed": ["fire_alarms", "fire_alarms", "fire_alarms"],
    ...                    "category": ["kitchen_fire", "alien_fire", "kitchen_fire"],
    ...                    "region": ["N0003", "N0003", "N0003"]})
    >>> enc, q = encode(Feeds(events=ev), city, Catalog.load(), now="2020-02-01 09:00")
    >>> enc.n_rows["events"], enc.ev_region.tolist(), q.counts()
    (1, [2], {'bad_timestamp': 1, 'unknown_category': 1})
    >>> q.frame.loc[q.frame.reason == "unknown_category", "detail"].iloc[0].split(";")[0]
    "category 'alien_fire' is not a category of feed 'fire_alarms'"
    """
    return Encoder(city, catalog)(feeds, now=now, watermark=watermark, seen_ids=seen_ids)


class Encoder:
    """:func:`encode` for one city and catalog, with the lookups built once: the catalog's feeds
    as arrays, the city's emitter tables, and the emitter ids of the last categorical column seen
    (their positions are reused while the categories stay the same). Calls from several threads
    at once are safe (a lookup two threads build at once is built twice, with equal results).

    Parameters
    ----------
    city : engine.City
    catalog : engine.Catalog

    Examples
    --------
    >>> from engine import City, Catalog
    >>> city = City.synthetic(seed=1, neighbourhoods=20, streets=2, population=50_000)
    >>> enc = Encoder(city, Catalog.load())
    >>> ev = pd.DataFrame({"time": ["2020-02-01 08:00"], "feed": ["fire_alarms"], "category": ["kitchen_fire"],
    ...                    "region": ["N0003"]})
    >>> e, q = enc(Feeds(events=ev), now="2020-02-01 09:00")
    >>> e.ev_region.tolist(), len(q)
    ([2], 0)
    """

    def __init__(self, city, catalog):
        self.city, self.catalog = city, catalog
        self._codes = (_CatalogCodes(catalog), _CityCodes(city))

    def __call__(self, feeds: Feeds, *, now=None, watermark=None, seen_ids=None) -> tuple[Encoded, Quarantine]:
        """:func:`encode` ``feeds`` (same arguments but the city and catalog, same result)."""
        if not isinstance(feeds, Feeds):
            raise TypeError(f"feeds must be an engine.feeds.Feeds, got {type(feeds).__name__}")
        ch = _Checker(self._codes, now, watermark, seen_ids)
        empty = {"time": np.zeros(0, np.int64), "value": np.zeros(0),
                 **{k: np.zeros(0, np.int32) for k in ("feed", "category", "channel", "region", "item", "emitter",
                                                       "kind")}}
        out = {k: empty for k in KINDS}
        quarantines = []
        ids: set = set()
        for kind in KINDS:
            df, src, rows, names = _stack(feeds.parts(kind))
            if not len(df):
                continue
            b = _Batch(kind, df, src, rows, names)
            arrays, new_ids = (_events if kind == "events" else _readings_or_snapshots)(ch, b)
            out[kind] = arrays
            ids |= new_ids
            nbad = int(np.count_nonzero(b.reason >= 0))
            if nbad:
                quarantines.append(b.quarantine())
            if len(arrays["time"]) + nbad != b.n:  # the invariant, checked every time
                raise RuntimeError(f"{kind}: {len(arrays['time'])} accepted + {nbad} quarantined != {b.n} rows in")
        return _assemble(list(ch.cat.feed_ids), out["events"], out["readings"], out["snapshots"], ids), \
            Quarantine.concat(quarantines)
