"""Rolling windows that are not full yet at the start of a replay.

A replay starts cold: at its first cycle a ``count_24h`` indicator counts 15 minutes of events,
at noon twelve hours, and only from the second day on a whole day. Such a value is not the
window's count; it is biased low by the share of the window the replay has not seen. Learned as
if it were, it teaches the detectors a first day that never happened: on a weekly profile the
hours of the replay's first day keep a wrong baseline for weeks (a synthetic weekday-only
``count_24h`` series learned from a partial first day raised ~53,000 alerts over 5 weeks at 300
regions when the replay started on a Wednesday, none when its first day was withheld; see
``docs/alerts.md``). An operations centre's detectors only see complete windows.

:func:`window_fill_minutes` gives, per indicator, how many minutes of replay its value needs
before it is a complete window: the window of an extensive aggregation (counts and sums of
events, sums of readings: they grow with the window; a snapshot feed's sum is a time average), the longest such window among the indicators a derived indicator's
formula reads, 0 for the others (a mean, a share, a maximum of a partial window is still an
estimate of the same quantity). :func:`mask_partial_windows` writes NaN (no data: the detectors
hold their state) over those rows while their windows are partial.
"""

from __future__ import annotations

import re

import numpy as np

__all__ = ["EXTENSIVE", "window_fill_minutes", "mask_partial_windows"]

#: (feed kind, aggregation) whose value grows with the part of the window seen (a partial window is
#: biased low): counts and sums of events, sums of readings. A snapshot feed's ``sum`` is the sum over
#: the region's entities of their latest values, time-averaged over the window: not extensive.
EXTENSIVE = (("events", "count"), ("events", "sum"), ("readings", "sum"))

_ID = re.compile(r"[a-z_][a-z0-9_]*(?:\.[a-z0-9_]+){3}")


def window_fill_minutes(indicators, feeds: dict) -> np.ndarray:
    """Minutes of replay each indicator's value needs to be a complete window (float64, per row).

    ``indicators``: the catalog's indicator dicts in row order (``id``, ``feed``, ``aggregation``,
    ``window``, ``formula``); ``feeds``: the catalog's feeds (``{feed: {"kind": ...}}``).

    >>> feeds = {"ev": {"kind": "events"}, "rd": {"kind": "readings"}, "sn": {"kind": "snapshots"}}
    >>> inds = [{"id": "a.b.c.count_24h", "feed": "ev", "aggregation": "count", "window": "24h"},
    ...         {"id": "a.b.c.mean_7d", "feed": "rd", "aggregation": "mean", "window": "7d"},
    ...         {"id": "a.b.c.sum_7d", "feed": "rd", "aggregation": "sum", "window": "7d"},
    ...         {"id": "a.b.c.vs_7d", "feed": "rd", "aggregation": "derived", "window": "1h",
    ...          "formula": "100 * a.b.c.count_24h / a.b.c.sum_7d"},
    ...         {"id": "a.b.c.ratio", "feed": "rd", "aggregation": "derived", "window": "1h", "formula": "a.b.c.vs_7d / 2"},
    ...         {"id": "a.b.d.sum_7d", "feed": "sn", "aggregation": "sum", "window": "7d"}]
    >>> window_fill_minutes(inds, feeds).tolist()
    [1440.0, 0.0, 10080.0, 10080.0, 10080.0, 0.0]
    """
    from engine.catalog.vocab import window_minutes

    inds = list(indicators)
    pos = {i["id"]: k for k, i in enumerate(inds)}
    out = np.full(len(inds), np.nan)

    def fill(k: int, seen: frozenset) -> float:
        if not np.isnan(out[k]):
            return out[k]
        ind = inds[k]
        agg = ind.get("aggregation")
        kind = (feeds.get(ind.get("feed")) or {}).get("kind")
        if (kind, agg) in EXTENSIVE and ind.get("window"):
            v = float(window_minutes(ind["window"]))
        elif agg == "derived" and ind.get("formula"):
            refs = [pos[r] for r in _ID.findall(str(ind["formula"])) if r in pos and pos[r] not in seen]
            v = max((fill(r, seen | {k}) for r in refs), default=0.0)
        else:
            v = 0.0
        out[k] = v
        return v

    for k in range(len(inds)):
        fill(k, frozenset({k}))
    return out


def mask_partial_windows(values: np.ndarray, times, replay_start, fill_minutes: np.ndarray) -> np.ndarray:
    """``values`` (time, indicator, region) with NaN where an indicator's window is not yet full.

    A cycle labelled ``t`` (its end) has seen ``t - replay_start`` of replay; a row whose
    ``fill_minutes`` exceed that is masked. Returns ``values`` itself when nothing is masked,
    else a masked copy (the caller's values, stored and shown, are not changed).

    >>> v = np.ones((3, 2, 1))
    >>> t = np.array(["2020-01-01T00:15", "2020-01-01T00:30", "2020-01-01T00:45"], dtype="datetime64[m]")
    >>> mask_partial_windows(v, t, np.datetime64("2020-01-01T00:00"), np.array([30.0, 0.0]))[:, :, 0].tolist()
    [[nan, 1.0], [1.0, 1.0], [1.0, 1.0]]
    """
    t = np.asarray(times).astype("datetime64[m]")
    seen = (t - np.datetime64(replay_start, "m")).astype(np.int64).astype(np.float64)
    partial = fill_minutes[None, :] > seen[:, None]              # (time, indicator)
    if not partial.any():
        return values
    out = values.copy()
    out[partial] = np.nan
    return out
