"""Which indicators a scheduled policy lever moves, and on which days the levers change.

A scenario knows its policy timeline. On the day a lever changes (a stage reopens sectors, a
venue cap is lifted, arrivals resume), the series the lever drives step to a new level at once,
and detectors that learned the old level alarm on every one of them until their slow level
catches up. The runner re-learns those series' baselines on that day instead
(:func:`engine.detect.rebaseline.rebaseline`): an operations centre that schedules a reopening
does the same with its monitors (a planned change, not an incident).

:data:`LEVER_MOVES` says which indicators each lever drives directly, read from the simulator's
generators (``engine/sim/generators.py``: a lever enters there through ``commute`` / ``work_in``
-- the reopened share of each sector's jobs --, ``other``, ``schools``, the venue caps and the
arrival rates). Levers that act only through the epidemic (``masks``, ``testing``, the
prevalence of arrivals) move nothing on their day and re-learn nothing. Indicators that a
lever moves only a little (hotline ticket rates scaled by activity) are left to the detectors'
own slow learning: a reset costs their warm-up (no statistical score: two days for a daily
profile, two weeks for a weekly one; catalog thresholds still apply).

Per-sector enterprise subjects (``reopened_c``, ``workers_back_c_large``...) are re-learned only
when their sector's share changes; the all-sector ones (``_all``, ``_large``...) whenever any does.
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase

import numpy as np

__all__ = ["LEVER_MOVES", "lever_changes", "moved_indicators", "rebaseline_plan"]

_FLOWS = ("safety.epidemic.population_inflow.*", "safety.epidemic.population_outflow.*",
          "livelihood.community.population_nonresidents.*", "livelihood.community.population_present_residents.*")
_TRAFFIC = ("construction.appearance_traffic.road_*",)
_ARRIVALS = ("safety.epidemic.arrivals_*", "safety.epidemic.quarantine_*", "safety.epidemic.population_home_quarantine.*",
             "safety.epidemic.hotel_rooms_*", "livelihood.community.community_nonresident_registered.*")

#: lever -> indicator id patterns (shell style) of what it moves on the day it changes
LEVER_MOVES: dict[str, tuple[str, ...]] = {
    # jobs reopened: enterprise status, commuting flows and the workers returning to the city that
    # day (the simulator's returning_worker arrivals are a pulse on the day commuting rises), traffic,
    # the office buildings and metro stations the commuters fill
    "sector_share": ("market.enterprise.*", *_FLOWS, "safety.epidemic.arrivals_returning_worker.*", *_TRAFFIC,
                     "market.commerce.*_office_building.*", "market.commerce.*_metro_station.*"),
    # shops, transport, leisure: every commerce feed (entries, occupancy, queues, spending, open shops)
    "other": ("market.commerce.*", *_FLOWS, *_TRAFFIC),
    "schools": ("livelihood.community.school_*", "livelihood.community.schools_open.*",
                "safety.epidemic.arrivals_returning_student.*"),
    "venue_cap": ("market.commerce.entries_*", "market.commerce.occupancy_*", "market.commerce.queue_*"),
    "arrivals": _ARRIVALS,
    "key_area_share": _ARRIVALS,
    "arrival_testing": _ARRIVALS,
    "arrival_quarantine": _ARRIVALS,
    "quarantine_compliance": _ARRIVALS,
    "masks": (), "testing": (), "test_sensitivity": (), "key_area_prevalence": (), "other_prevalence": (),
}

_SECTOR_SUBJECT = re.compile(r"_([a-t])(?:_(?:large|medium|small|micro))?$")


def lever_changes(timeline, since=None) -> list[tuple[np.datetime64, dict]]:
    """Days on which some lever takes a new value, from the day after the timeline's start.

    Returns ``[(day, {lever: detail}), ...]``: ``detail`` is the set of sector codes for
    ``sector_share``, of venue kinds for ``venue_cap``, ``None`` for the other levers. ``since``:
    only days on or after it.

    >>> from engine.sim.policy import Timeline
    >>> tl = Timeline("2020-03-01", "2020-03-31").at("2020-03-01", sector_share=0.2, masks=0.6)
    >>> _ = tl.stages([("2020-03-10", "2020-03-19", {"sector_share": {"C": 0.5}})]).at("2020-03-25", masks=0.5)
    >>> [(str(d), sorted(v), sorted(v.get("sector_share") or ())) for d, v in lever_changes(tl)]
    [('2020-03-10', ['sector_share'], ['C']), ('2020-03-20', ['sector_share'], ['C']), ('2020-03-25', ['masks'], [])]
    """
    frame = timeline.daily().to_frame()
    import pandas as pd

    since = None if since is None else np.datetime64(pd.Timestamp(str(since)).date(), "D")
    values = frame.to_numpy(dtype=float)
    out = []
    for t in range(1, len(frame)):
        day = np.datetime64(frame.index[t].date(), "D")
        if since is not None and day < since:
            continue
        a, b = values[t - 1], values[t]
        moved = ~((a == b) | (np.isnan(a) & np.isnan(b)))
        if not moved.any():
            continue
        levers: dict = {}
        for col in frame.columns[moved]:
            if col.startswith("sector_"):
                levers.setdefault("sector_share", set()).add(col[len("sector_"):])
            elif col.startswith("cap_"):
                levers.setdefault("venue_cap", set()).add(col[len("cap_"):])
            else:
                levers[col] = None
        out.append((day, levers))
    return out


def moved_indicators(ids, levers: dict) -> np.ndarray:
    """Positions in ``ids`` of the indicators the changed ``levers`` move (:data:`LEVER_MOVES`).

    >>> ids = ["market.enterprise.reopened_c.share_now", "market.enterprise.reopened_g_small.share_now",
    ...        "market.enterprise.reopened_all.share_now", "safety.epidemic.population_inflow.vs_7d",
    ...        "safety.epidemic.fever_clinic_visits.count_1h"]
    >>> moved_indicators(ids, {"sector_share": {"C"}}).tolist()
    [0, 2, 3]
    >>> moved_indicators(ids, {"masks": None}).tolist()
    []
    """
    unknown = [k for k in levers if k not in LEVER_MOVES]
    if unknown:
        raise ValueError(f"lever {unknown[0]!r} has no entry in LEVER_MOVES: expected one of {sorted(LEVER_MOVES)}")
    rows = []
    for k, iid in enumerate(ids):
        for lever, detail in levers.items():
            if not any(fnmatchcase(iid, p) for p in LEVER_MOVES[lever]):
                continue
            if lever == "sector_share" and iid.startswith("market.enterprise.") and detail:
                m = _SECTOR_SUBJECT.search(iid.split(".")[2])
                if m and m.group(1).upper() not in {s.upper() for s in detail}:
                    continue
            rows.append(k)
            break
    return np.asarray(rows, dtype=np.int64)


def rebaseline_plan(timeline, ids, since=None) -> dict:
    """``{day: (levers, rows)}``: for each day a lever changes (on or after ``since``), the changed
    levers and the rows of ``ids`` to re-learn that day (days whose levers move nothing left out)."""
    plan = {}
    for day, levers in lever_changes(timeline, since=since):
        rows = moved_indicators(ids, levers)
        if len(rows):
            plan[day] = (levers, rows)
    return plan
