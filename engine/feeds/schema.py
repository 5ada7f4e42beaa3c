"""The record kinds, their columns, the quarantine reasons and the feed errors.

Three record kinds reach the engine (see ``indicators/feeds.toml``):

==========  ==================================================  ==============================
kind        required columns                                    optional columns
==========  ==================================================  ==============================
events      ``time, feed, category`` and ``region`` or           ``id, channel, text, value``
            ``lon`` + ``lat``
readings    ``time, feed, sensor, metric, value``               ``id``
snapshots   ``time, feed, entity, field, value``                ``id``
==========  ==================================================  ==============================

Any other column is kept (it travels to the quarantine table with a rejected row) but not
required. A missing required column is a :class:`FeedError`; a bad *row* never raises: it is
set aside with one of :data:`REASONS`.
"""

from __future__ import annotations

KINDS: tuple[str, ...] = ("events", "readings", "snapshots")

#: Columns every record of a kind must have (events also need ``region`` or ``lon`` + ``lat``).
REQUIRED: dict[str, tuple[str, ...]] = {
    "events": ("time", "feed", "category"),
    "readings": ("time", "feed", "sensor", "metric", "value"),
    "snapshots": ("time", "feed", "entity", "field", "value"),
}
#: Columns the engine reads when present.
OPTIONAL: dict[str, tuple[str, ...]] = {
    "events": ("region", "lon", "lat", "id", "channel", "text", "value"),
    "readings": ("id",),
    "snapshots": ("id",),
}
#: The column that names a record's category-like item, per kind.
ITEM_COLUMN = {"events": "category", "readings": "metric", "snapshots": "field"}
#: The catalog key listing those items, per kind.
ITEM_KEY = {"events": "categories", "readings": "metrics", "snapshots": "fields"}
#: The column naming who emitted a reading / snapshot.
EMITTER_COLUMN = {"readings": "sensor", "snapshots": "entity"}

#: Targets an adapter may fill with a value map; an unmapped source value is quarantined
#: with reason ``unmapped_<target>``.
MAPPABLE: tuple[str, ...] = ("feed", "category", "channel", "region", "sensor", "metric", "entity", "field")

#: Quarantine reasons, in the order the checks run: a row gets the first reason that applies.
REASONS: tuple[str, ...] = (
    "bad_timestamp",
    *(f"unmapped_{t}" for t in MAPPABLE),
    "unknown_feed",
    "future_timestamp",
    "too_late",
    "unknown_category",
    "unknown_channel",
    "unknown_region",
    "no_location",
    "outside_city",
    "unknown_sensor",
    "unknown_metric",
    "unknown_entity",
    "unknown_field",
    "bad_value",
    "impossible_value",
    "duplicate_id",
)
REASON_CODE: dict[str, int] = {r: i for i, r in enumerate(REASONS)}

#: One line per reason, for documentation and reports.
REASON_TEXT: dict[str, str] = {
    "bad_timestamp": "time missing, not a timestamp, or outside 1677-2262",
    **{f"unmapped_{t}": f"the adapter's {t} map has no entry for the source value" for t in MAPPABLE},
    "unknown_feed": "feed missing, not in the catalog, or a feed of another record kind",
    "future_timestamp": "time later than the cycle end (`now`)",
    "too_late": "time earlier than the watermark minus the feed's lateness",
    "unknown_category": "category missing or not a category of the feed",
    "unknown_channel": "channel given but not a channel of the feed",
    "unknown_region": "region given but not a region id of the city",
    "no_location": "neither a region nor both coordinates (lon, lat are missing or not numbers)",
    "outside_city": "the point (lon, lat) lies in no region of the city",
    "unknown_sensor": "sensor is not an emitter of the feed (unknown id, or a sensor/site of another kind)",
    "unknown_metric": "metric missing or not a metric of the feed",
    "unknown_entity": "entity is not an emitter of the feed (unknown id, or a site of another kind)",
    "unknown_field": "field missing or not a field of the feed",
    "bad_value": "value missing, NaN or not a number",
    "impossible_value": "value outside the feed's min..max (events: 0..value_max), or infinite",
    "duplicate_id": "(feed, id) already accepted in this batch or an earlier cycle",
}

# Hidden columns an adapter adds: a problem it found while mapping a row (reason, detail).
HIDDEN_REASON = "_cv_reason"
HIDDEN_DETAIL = "_cv_detail"
HIDDEN = (HIDDEN_REASON, HIDDEN_DETAIL)

# The columns every quarantine table starts with.
QUARANTINE_COLUMNS: tuple[str, ...] = ("kind", "source", "row", "reason", "detail")


class FeedError(ValueError):
    """A feed file or frame that cannot be read as records: names the file and the column.

    Attributes ``file``, ``column`` (or ``None``) and ``kind`` (or ``None``) repeat what the
    message says. A bad *row* never raises; it goes to the quarantine.

    Examples
    --------
    >>> str(FeedError("events_0915.csv", "events records need this column", column="category"))
    "events_0915.csv column 'category': events records need this column"
    """

    def __init__(self, file: str, message: str, column: str | None = None, kind: str | None = None):
        self.file, self.column, self.kind = str(file), column, kind
        where = self.file + (f" column {column!r}" if column is not None else "")
        super().__init__(f"{where}: {message}")


def missing_columns(kind: str, columns) -> list[str]:
    """The required columns of ``kind`` absent from ``columns`` (events: ``region`` or ``lon``+``lat``).

    Examples
    --------
    >>> missing_columns("events", ["time", "feed", "category", "lon"])
    ['lat']
    >>> missing_columns("readings", ["time", "feed", "sensor", "value"])
    ['metric']
    """
    cols = set(columns)
    out = [c for c in REQUIRED[kind] if c not in cols]
    if kind == "events" and "region" not in cols:
        if "lon" in cols or "lat" in cols:
            out += [c for c in ("lon", "lat") if c not in cols]
        else:
            out.append("region")
    return out


def shorten(value, limit: int = 60) -> str:
    """``repr`` of a value, cut to ``limit`` characters (for quarantine details).

    Examples
    --------
    >>> shorten("x" * 100, 10)
    "'xxxxxx..."
    """
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
