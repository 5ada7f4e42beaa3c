"""Adapters: a TOML column mapping that turns a city's own export into feed records.

An adapter names the record kind and the target feed, then says, for each target column,
where its values come from::

    [adapter]
    name = "nyc311"
    description = "NYC 311 service requests -> hotline work orders"
    kind = "events"
    feed = "hotline_tickets"            # every row goes to this feed (or give a [feed] table)

    [time]
    from = "Created Date"
    format = "%m/%d/%Y %I:%M:%S %p"     # strftime format; default ISO 8601

    [category]
    from = ["Complaint Type", "Descriptor"]
    [category.map]                      # source value -> catalog id
    "HEATING" = "property_service"
    "Noise :: Noise: Construction Before/After Hours (NM1)" = "construction_noise"

    [lon]
    from = "Longitude"
    [lat]
    from = "Latitude"
    [channel]
    value = "citizen_hotline"           # a constant
    [id]
    from = "Unique Key"
    [text]
    from = ["Descriptor", "Incident Address"]
    join = " | "

Rules
-----
* Each target table has ``from`` (a source column, or a list of them) or ``value`` (a constant).
* Targets by kind: events ``time, feed, category, channel, region, lon, lat, id, text, value``;
  readings ``time, feed, sensor, metric, value, id``; snapshots
  ``time, feed, entity, field, value, id``. ``time`` and ``feed`` (table or ``adapter.feed``)
  are required, and the kind's required columns (events: ``category`` and ``region`` or
  ``lon`` + ``lat``).
* ``map`` (for ``feed, category, channel, region, sensor, metric, entity, field``) translates
  source values; with several ``from`` columns its keys may join the values with ``" :: "``
  and the most specific key wins (``"Noise :: Noise: Alarms (NR3)"`` before ``"Noise"``). A
  value with no key goes to the quarantine as ``unmapped_<target>`` -- unless the table sets
  ``default`` (a documented catch-all). A missing source value stays missing.
* ``time.from`` may list columns (date and time): they are joined with a space.
  ``text.from`` lists are joined with ``join`` (default ``" | "``), missing parts skipped.
  ``id.from`` lists are joined with ``":"``.
* The source columns are all kept (renamed ``src_<name>`` when a name clashes with a target
  column), so a quarantined row shows the whole original record. Text stays data: it is
  copied, never interpreted.
"""

from __future__ import annotations

import importlib.resources
import os
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd

from engine.feeds.frames import Feeds, read_table
from engine.feeds.schema import (
    HIDDEN, HIDDEN_DETAIL, HIDDEN_REASON, ITEM_KEY, KINDS, MAPPABLE, FeedError, missing_columns, shorten,
)

__all__ = ["Adapter", "AdapterError", "bundled_adapters", "KEY_SEPARATOR"]

KEY_SEPARATOR = " :: "
TARGETS: dict[str, tuple[str, ...]] = {
    "events": ("time", "feed", "category", "channel", "region", "lon", "lat", "id", "text", "value"),
    "readings": ("time", "feed", "sensor", "metric", "value", "id"),
    "snapshots": ("time", "feed", "entity", "field", "value", "id"),
}
_TABLE_KEYS = {"from", "value", "map", "default", "format", "join"}


class AdapterError(ValueError):
    """An adapter file that cannot be used; names the file and the key.

    Examples
    --------
    >>> str(AdapterError("mine.toml", "expected a string", key="time.format"))
    "mine.toml key 'time.format': expected a string"
    """

    def __init__(self, file: str, message: str, key: str | None = None):
        self.file, self.key = str(file), key
        where = self.file + (f" key {key!r}" if key is not None else "")
        super().__init__(f"{where}: {message}")


def _adapters_folder() -> Path:
    return Path(str(importlib.resources.files("indicators"))) / "adapters"


def bundled_adapters() -> list[str]:
    """Names of the adapters shipped in ``indicators/adapters/``.

    Examples
    --------
    >>> {"nyc311", "la311"} <= set(bundled_adapters())
    True
    """
    folder = _adapters_folder()
    return sorted(p.stem for p in folder.glob("*.toml")) if folder.is_dir() else []


def _text(col: pd.Series) -> pd.Series:
    """Source values as text with missing kept missing (numbers without a trailing '.0')."""
    if pd.api.types.is_string_dtype(col.dtype) and not isinstance(col.dtype, pd.CategoricalDtype):
        return col.astype(object).where(col.notna(), None)
    from engine.feeds.encode import _norm_key

    codes, uniq = pd.factorize(col, use_na_sentinel=True)
    keys = np.append(np.array([_norm_key(v) for v in np.asarray(uniq, dtype=object)], dtype=object), None)
    return pd.Series(keys[np.asarray(codes)], index=col.index, dtype=object)


class Adapter:
    """A column mapping from a city's export onto feed records (see the module docs).

    Build one with :meth:`load` (a bundled name or a TOML path) or :meth:`from_toml`.

    Attributes
    ----------
    name, description, kind : str
    feed : str or None
        The constant target feed (``None`` when a ``[feed]`` table maps it).
    targets : dict
        ``{target: {"from": [...], "value": ..., "map": {...}, ...}}`` as written.
    source : str
        The file the adapter came from.

    Examples
    --------
    >>> a = Adapter.load("nyc311")
    >>> a.kind, a.feed, a.targets["category"]["from"]
    ('events', 'hotline_tickets', ['Complaint Type', 'Descriptor'])
    >>> a.lookup("category", ["Noise", "Noise: Alarms (NR3)"])
    'social_noise'
    """

    def __init__(self, spec: dict, source: str = "<memory>"):
        self.source = str(source)
        head = spec.get("adapter")
        if not isinstance(head, dict):
            raise AdapterError(self.source, "expected an [adapter] table with name, kind and feed", key="adapter")
        unknown = set(head) - {"name", "description", "kind", "feed"}
        if unknown:
            raise AdapterError(self.source, f"unknown key; expected name, description, kind, feed",
                               key=f"adapter.{sorted(unknown)[0]}")
        self.name = str(head.get("name") or Path(self.source).stem)
        self.description = str(head.get("description", ""))
        kind = head.get("kind")
        if kind not in KINDS:
            raise AdapterError(self.source, f"expected one of {list(KINDS)}, got {kind!r}", key="adapter.kind")
        self.kind = kind
        allowed = TARGETS[kind]
        self.targets: dict[str, dict] = {}
        for key, table in spec.items():
            if key == "adapter":
                continue
            if key not in allowed:
                raise AdapterError(self.source, f"not a target of {kind} records; expected one of {list(allowed)}",
                                   key=key)
            if not isinstance(table, dict):
                raise AdapterError(self.source, "expected a table with 'from' or 'value'", key=key)
            self.targets[key] = self._check_table(key, table)
        feed = head.get("feed")
        if feed is not None and "feed" in self.targets:
            raise AdapterError(self.source, "give the feed either as adapter.feed or as a [feed] table, not both",
                               key="adapter.feed")
        if feed is not None:
            if not isinstance(feed, str) or not feed:
                raise AdapterError(self.source, f"expected a feed id, got {feed!r}", key="adapter.feed")
            self.targets["feed"] = {"value": feed}
        self.feed = feed
        present = set(self.targets)
        if "time" not in present:
            raise AdapterError(self.source, "every adapter needs a [time] table", key="time")
        if "feed" not in present:
            raise AdapterError(self.source, "every adapter needs adapter.feed or a [feed] table", key="adapter.feed")
        missing = missing_columns(kind, present)
        if missing:
            raise AdapterError(self.source, f"{kind} records need this target", key=missing[0])

    def _check_table(self, key: str, t: dict) -> dict:
        bad = set(t) - _TABLE_KEYS
        if bad:
            raise AdapterError(self.source, f"unknown key; expected {sorted(_TABLE_KEYS)}",
                               key=f"{key}.{sorted(bad)[0]}")
        if ("from" in t) == ("value" in t):
            raise AdapterError(self.source, "expected exactly one of 'from' (source columns) or 'value' (a constant)",
                               key=key)
        out = dict(t)
        if "from" in t:
            cols = [t["from"]] if isinstance(t["from"], str) else t["from"]
            if not isinstance(cols, list) or not cols or not all(isinstance(c, str) and c for c in cols):
                raise AdapterError(self.source, f"expected a column name or a list of them, got {t['from']!r}",
                                   key=f"{key}.from")
            out["from"] = list(cols)
        if "map" in t:
            if key not in MAPPABLE:
                raise AdapterError(self.source, f"only {list(MAPPABLE)} take a value map", key=f"{key}.map")
            if not isinstance(t["map"], dict) or not all(isinstance(v, str) for v in t["map"].values()):
                raise AdapterError(self.source, "expected a table of source value = \"catalog id\"", key=f"{key}.map")
            out["map"] = {str(k): v for k, v in t["map"].items()}
        if "default" in t and ("map" not in t or not isinstance(t["default"], str)):
            raise AdapterError(self.source, "'default' is a catalog id used with a map", key=f"{key}.default")
        if "format" in t and (key != "time" or not isinstance(t["format"], str)):
            raise AdapterError(self.source, "'format' is a strftime format of the time table", key=f"{key}.format")
        if "join" in t and (key != "text" or not isinstance(t["join"], str)):
            raise AdapterError(self.source, "'join' is the separator of the text table", key=f"{key}.join")
        return out

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_toml(cls, text: str, source: str = "<string>") -> "Adapter":
        """An adapter from TOML text.

        Examples
        --------
        >>> a = Adapter.from_toml('''
        ... [adapter]
        ... kind = "events"
        ... feed = "fire_alarms"
        ... [time]
        ... from = "t"
        ... [category]
        ... value = "kitchen_fire"
        ... [region]
        ... from = "where"
        ... ''')
        >>> out = a.apply(pd.DataFrame({"t": ["2020-02-01 08:00"], "where": ["N0001"]}))
        >>> out[["feed", "category", "region"]].iloc[0].tolist()
        ['fire_alarms', 'kitchen_fire', 'N0001']
        """
        try:
            spec = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise AdapterError(source, f"not valid TOML: {exc}") from exc
        return cls(spec, source)

    @classmethod
    def load(cls, name_or_path: str | os.PathLike, catalog=None) -> "Adapter":
        """Load a bundled adapter by name (``"nyc311"``) or an adapter TOML file.

        With ``catalog``, the mapping is checked against it (:meth:`check`) and any problem
        raises :class:`AdapterError`.

        Examples
        --------
        >>> from engine import Catalog
        >>> a = Adapter.load("la311", catalog=Catalog.load())
        >>> a.lookup("channel", "Mobile App"), a.lookup("category", "Homeless Encampment")
        ('online_clue', None)
        """
        p = Path(name_or_path)
        if not p.exists():
            q = _adapters_folder() / f"{name_or_path}.toml"
            if isinstance(name_or_path, str) and q.exists():
                p = q
            else:
                raise FileNotFoundError(f"no adapter file {str(name_or_path)!r} and no bundled adapter of that "
                                        f"name; bundled: {bundled_adapters()}")
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise AdapterError(p.name, f"cannot be read: {exc}") from exc
        adapter = cls.from_toml(text, source=p.name)
        if catalog is not None:
            problems = adapter.check(catalog)
            if problems:
                raise AdapterError(p.name, "does not fit the catalog: " + "; ".join(problems))
        return adapter

    # ------------------------------------------------------------------ checks
    def _feeds(self, catalog) -> list[str]:
        t = self.targets["feed"]
        if "value" in t:
            return [t["value"]]
        return sorted(set(t.get("map", {}).values()) | ({t["default"]} if "default" in t else set()))

    def check(self, catalog) -> list[str]:
        """Problems of the mapping against a catalog (empty when it fits): target feeds exist
        and are of the adapter's kind; mapped or constant categories, channels, metrics and
        fields belong to them.

        Examples
        --------
        >>> from engine import Catalog
        >>> Adapter.load("la311").check(Catalog.load())
        []
        """
        problems = []
        feeds = []
        for f in self._feeds(catalog):
            spec = catalog.feeds.get(f)
            if spec is None:
                problems.append(f"feed {f!r} is not in the catalog")
            elif spec["kind"] != self.kind:
                problems.append(f"feed {f!r} is a {spec['kind']} feed, the adapter makes {self.kind} records")
            else:
                feeds.append(spec)
        lists = {"category": "categories", "metric": "metrics", "field": "fields", "channel": "channels"}
        for target, key in lists.items():
            t = self.targets.get(target)
            if t is None or not feeds:
                continue
            if target != "channel" and ITEM_KEY[self.kind] != key:
                continue
            known = set().union(*(set(s.get(key, {})) for s in feeds))
            wanted = set(t.get("map", {}).values()) | ({t["default"]} if "default" in t else set())
            if "value" in t:
                wanted.add(str(t["value"]))
            for v in sorted(wanted - known):
                problems.append(f"{target} {v!r} is not a {target} of feed(s) "
                                f"{', '.join(repr(f) for f in self._feeds(catalog))}")
        return problems

    # ------------------------------------------------------------------ mapping
    def lookup(self, target: str, values) -> str | None:
        """The mapped id for one source value (or list of values, most specific key first);
        ``None`` when unmapped and no default."""
        t = self.targets[target]
        parts = [values] if isinstance(values, str) else list(values)
        mp = t.get("map", {})
        for k in range(len(parts), 0, -1):
            key = KEY_SEPARATOR.join("" if p is None else str(p) for p in parts[:k])
            if key in mp:
                return mp[key]
        return t.get("default")

    def _column(self, frame: pd.DataFrame, source: str, col: str) -> pd.Series:
        if col not in frame.columns:
            shown = ", ".join(map(str, frame.columns[:12])) + (", ..." if len(frame.columns) > 12 else "")
            raise FeedError(source, f"adapter {self.name!r} reads this column (columns present: {shown})",
                            column=col, kind=self.kind)
        return _text(frame[col])

    def apply(self, frame: pd.DataFrame, source: str = "memory") -> pd.DataFrame:
        """Map a source frame onto feed records (target columns first, then the source's own).

        Rows are never dropped: a time that does not match the format, or a value with no
        map entry, is marked for the quarantine (reasons ``bad_timestamp`` and
        ``unmapped_<target>``) and :func:`engine.feeds.encode` sets the row aside.

        Raises
        ------
        FeedError
            A ``from`` column is absent (names the source and the column).
        """
        n = len(frame)
        out: dict[str, object] = {}
        reason = np.full(n, None, dtype=object)
        detail = np.full(n, None, dtype=object)
        for target in TARGETS[self.kind]:
            t = self.targets.get(target)
            if t is None:
                continue
            if "value" in t:
                out[target] = pd.Series([t["value"]] * n, dtype=object)
                continue
            if target == "time" and len(t["from"]) == 1 and t["from"][0] in frame.columns and (
                    pd.api.types.is_datetime64_any_dtype(frame[t["from"][0]].dtype)):
                out[target] = frame[t["from"][0]].reset_index(drop=True)  # already timestamps: no format
                continue
            cols = [self._column(frame, source, c) for c in t["from"]]
            if target == "time":
                out[target] = self._time(cols, t, reason, detail)
            elif target == "text":
                out[target] = self._join(cols, t.get("join", " | "))
            elif target == "id":
                out[target] = self._join(cols, ":") if len(cols) > 1 else cols[0]
            elif "map" in t:
                out[target] = self._mapped(target, cols, t, reason, detail)
            elif len(cols) == 1:
                out[target] = cols[0]
            else:
                out[target] = self._join(cols, KEY_SEPARATOR)
        result = pd.DataFrame({k: (v.to_numpy() if isinstance(v, pd.Series) else v) for k, v in out.items()})
        taken = set(result.columns) | set(HIDDEN)
        orig = frame.reset_index(drop=True)
        orig = orig.rename(columns={c: f"src_{c}" for c in orig.columns if c in taken})
        result = pd.concat([result, orig], axis=1)
        result[HIDDEN_REASON] = pd.Series(reason, dtype=object)
        result[HIDDEN_DETAIL] = pd.Series(detail, dtype=object)
        return result

    @staticmethod
    def _join(cols: list[pd.Series], sep: str) -> pd.Series:
        """Join text columns row by row with ``sep``, skipping missing parts (vectorised)."""
        acc = cols[0].astype(object).to_numpy(copy=True)
        for col in cols[1:]:
            c = col.astype(object).to_numpy()
            has_a, has_c = pd.notna(acc), pd.notna(c)
            both = has_a & has_c
            if both.any():
                acc[both] = acc[both] + sep + c[both]
            only_c = ~has_a & has_c
            acc[only_c] = c[only_c]
        return pd.Series(acc, dtype=object)

    @staticmethod
    def _keys(cols: list[pd.Series]) -> pd.Series:
        """Map keys: the values joined with :data:`KEY_SEPARATOR` (missing parts as '')."""
        acc = cols[0].astype(object).fillna("").to_numpy(copy=True)
        for col in cols[1:]:
            acc = acc + KEY_SEPARATOR + col.astype(object).fillna("").to_numpy()
        return pd.Series(acc, dtype=object)

    def _time(self, cols, t, reason, detail) -> np.ndarray:
        from engine.feeds.encode import parse_times

        raw = cols[0] if len(cols) == 1 else self._join(cols, " ")
        fmt = t.get("format")
        ns, ok = parse_times(raw.astype(object), fmt)
        bad = ~ok & raw.notna().to_numpy()
        names = " + ".join(t["from"])
        for i in np.flatnonzero(bad & pd.isna(reason)).tolist():
            reason[i] = "bad_timestamp"
            detail[i] = (f"{names} {shorten(raw.iloc[i])} does not match the adapter's time format "
                         f"{fmt or 'ISO 8601'!r}")
        out = np.where(ok, ns, np.iinfo(np.int64).min).view("datetime64[ns]")
        return out

    def _mapped(self, target, cols, t, reason, detail) -> np.ndarray:
        keys = cols[0] if len(cols) == 1 else self._keys(cols)
        present = cols[0].notna().to_numpy()
        codes, uniq = pd.factorize(keys.astype(object), use_na_sentinel=True)
        mapped = np.array([self.lookup(target, str(u).split(KEY_SEPARATOR) if len(cols) > 1 else str(u))
                           for u in uniq], dtype=object)
        mapped = np.append(mapped, None)
        out = mapped[np.asarray(codes)]
        unmapped = present & pd.isna(out)
        names = " + ".join(t["from"])
        for i in np.flatnonzero(unmapped & pd.isna(reason)).tolist():
            reason[i] = f"unmapped_{target}"
            detail[i] = (f"{names} {shorten(keys.iloc[i])} is not in the {target} map of adapter {self.name!r}"
                         + (" (no default)" if "default" not in t else ""))
        return out

    # ------------------------------------------------------------------ files
    def read(self, path: str | os.PathLike, on_error: str = "raise") -> Feeds:
        """Read a file or a folder through this adapter (same as ``Feeds.read(path, adapter=self)``).

        Examples
        --------
        >>> import tempfile, pathlib
        >>> with tempfile.TemporaryDirectory() as d:
        ...     _ = pathlib.Path(d, "calls.csv").write_text(
        ...         "SRNumber,CreatedDate,RequestType,RequestSource,Latitude,Longitude,Address\\n"
        ...         "1-1,12/27/2017 08:00:00 AM,Bulky Items,Call,34.05,-118.25,1 Main St\\n")
        ...     Adapter.load("la311").read(d).frame("events")[["category", "channel", "id"]].iloc[0].tolist()
        ['garbage', 'citizen_hotline', '1-1']
        """
        return Feeds.read(path, adapter=self, on_error=on_error)

    def read_frame(self, path: str | os.PathLike) -> pd.DataFrame:
        """One source file mapped to records (without the :class:`Feeds` wrapper)."""
        p = Path(path)
        return self.apply(read_table(p), source=p.name)

    def __repr__(self) -> str:
        return f"Adapter({self.name!r}, kind={self.kind!r}, feed={self.feed!r}, targets={sorted(self.targets)})"
