"""The closed vocabularies of indicator fields, and window parsing.

Semantics of ``aggregation`` (what one indicator value is, per region, at a cycle):

- ``count``     events matching the filter within the window.
- ``sum``       events: sum of their ``value``; readings: sum of values; snapshots: sum over the
                region's entities of each entity's latest value (time-averaged over the window).
- ``mean``      readings: sum / count of values within the window; snapshots: mean over entities.
- ``max`` / ``min``  readings: extreme value within the window; snapshots: extreme over entities.
- ``quantile``  the ``q``-quantile over the window of the per-cycle mean (readings).
- ``share``     events: matching events as % of all events of the feed; snapshots: % of entities whose
                field is 1 (e.g. enterprises reopened).
- ``derived``   a formula over other indicators (``formula``), evaluated in dependency order.

``normalisation`` divides the aggregate by a static denominator of the region: residents / 10,000,
area in km2, emitting sites, or registered enterprises (matching the filter's sector/size).
``rollup`` says how street and district values come from neighbourhoods: ``sum``; ``ratio`` (ratio of
summed numerators and denominators, never a mean of ratios); ``pop_mean`` (population-weighted mean);
``max``; ``min``; ``formula`` (derived indicators: the formula re-evaluated on rolled-up inputs).
"""

from __future__ import annotations

import re

AGGREGATIONS = ("count", "sum", "mean", "max", "min", "quantile", "share", "derived")
NORMALISATIONS = ("none", "per_10k_residents", "per_km2", "per_site", "per_enterprise")
DIRECTIONS = ("up_bad", "down_bad", "both")
ROLLUPS = ("sum", "ratio", "pop_mean", "max", "min", "formula")
SEASONALITIES = ("none", "daily", "weekly")
FEED_KINDS = ("events", "readings", "snapshots")
EMITTERS = ("region", "sensor", "site", "enterprise")

# Which aggregations each record kind supports.
AGGREGATIONS_BY_KIND = {
    "events": ("count", "sum", "share"),
    "readings": ("sum", "mean", "max", "min", "quantile"),
    "snapshots": ("sum", "mean", "max", "min", "share"),
}

# Filter keys each record kind understands (beyond these, entity attributes from the city).
FILTER_KEYS = {
    "events": ("category", "channel"),
    "readings": ("metric", "kind"),
    "snapshots": ("field", "kind", "sector", "size"),
}

# The fields every expanded indicator carries, in output order.
FIELDS = (
    "id", "name_zh", "name_en", "unit", "domain", "dimension", "feed", "filter", "aggregation",
    "window", "normalisation", "direction", "rollup", "seasonality", "thresholds", "owner", "weight",
)
# Optional fields: formula (derived), q (quantile), cluster_scan (marked for space-time scanning).
OPTIONAL_FIELDS = ("formula", "q", "cluster_scan")

_WINDOW = re.compile(r"^([1-9][0-9]*)(min|h|d)$")
_UNIT_MINUTES = {"min": 1, "h": 60, "d": 1440}
ID_PART = re.compile(r"^[a-z][a-z0-9_]*$")
INDICATOR_ID = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9][a-z0-9_]*){3}$")


def window_minutes(window: str) -> int:
    """Length of a window such as ``"15min"``, ``"1h"``, ``"7d"`` in minutes.

    >>> window_minutes("24h")
    1440
    >>> window_minutes("15min")
    15
    """
    match = _WINDOW.match(str(window))
    if not match:
        raise ValueError(
            f"bad window {window!r}: expected a positive integer followed by min, h or d (e.g. 15min, 1h, 7d)"
        )
    return int(match.group(1)) * _UNIT_MINUTES[match.group(2)]
