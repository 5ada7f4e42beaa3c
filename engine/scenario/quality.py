"""Detection quality measured on the ground truth of injected incidents.

- ``recall``: share of incidents with a firing alert on one of their indicators, in one of their
  regions (or the street / district containing them), between the incident's start and end.
  With ``match="subject"`` (alerts per subject and region, :mod:`engine.alerts.fold`) an alert
  is on an incident's indicator when it is on the same subject (``domain.dimension.subject``):
  the alert "water pressure in N0007" covers every water-pressure indicator there.
- ``precision``: share of firing alerts (first firing of each alert) that match some incident in
  that sense; alerts that match none count against it.
- ``median_detect_cycles``: cycles from an incident's start to its first matching alert (detected
  incidents only). An alert up to ``grace`` (2 h) after an incident's end on its indicators and
  regions counts as true for precision (the incident's last reports), not for recall.

Routine events (``kind == "routine"`` in ``incidents``: the simulator's background outages and gas
alarms, :data:`engine.sim.incidents.ROUTINE_FEEDS`) are real events of the city that a catalog rule
such as ``count_1h >= 1`` is right to alert on: an alert that matches one (same indicator or
subject, region as above, between its report and its ``end``) counts as true for ``precision``
(``routine_alerts`` says how many), while ``recall`` and the time to detect stay over the injected
incidents only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _region_match(alert_region: str, regions: set, parents: dict) -> bool:
    return alert_region in regions or alert_region in {parents.get(r) for r in regions} or alert_region == "district"


def detection_quality(fired: pd.DataFrame, incidents: list[dict], cycle: pd.Timedelta, parents: dict | None = None,
                      match: str = "indicator", grace="2h") -> dict:
    """Recall, precision and time to detect of ``fired`` alerts against ``incidents``.

    Parameters
    ----------
    fired : DataFrame
        One row per alert's first firing: ``time`` (Timestamp), ``indicator``, ``region``.
    incidents : list of dict
        ``start``, ``end`` (timestamps), ``regions``, ``indicators``.
    cycle : Timedelta
        The engine cycle.
    parents : dict, optional
        ``{neighbourhood: street}`` so that a street-level alert over an affected neighbourhood
        matches.
    match : {"indicator", "subject"}
        Compare indicator ids, or their subjects (for alerts per subject and region).
    grace : Timedelta-like
        For precision only: an alert that fires up to ``grace`` after an incident's end, on its
        indicators and regions, is the incident's (its last reports: a ``count_1h`` window plus the
        pending cycles); recall and the time to detect count alerts between start and end only.
        ``None`` or 0: none.

    Examples
    --------
    >>> fired = pd.DataFrame({"time": pd.to_datetime(["2020-03-01 08:30", "2020-03-02 01:00"]),
    ...                       "indicator": ["a.b.c.d", "x.y.z.w"], "region": ["N1", "N9"]})
    >>> inc = [{"start": "2020-03-01 08:00", "end": "2020-03-01 12:00", "regions": ["N1"], "indicators": ["a.b.c.d"]}]
    >>> q = detection_quality(fired, inc, pd.Timedelta("15min"))
    >>> q["recall"], q["precision"], q["median_detect_cycles"]
    (1.0, 0.5, 2.0)
    >>> gas = {"kind": "routine", "start": "2020-03-02 00:40", "end": "2020-03-02 02:40", "regions": ["N9"],
    ...        "indicators": ["x.y.z.w"]}
    >>> q = detection_quality(fired, inc + [gas], pd.Timedelta("15min"))
    >>> q["recall"], q["precision"], q["routine_alerts"], len(q["incidents"])
    (1.0, 1.0, 1, 1)
    """
    from engine.alerts.fold import subject_of

    if match not in ("indicator", "subject"):
        raise ValueError(f"match must be 'indicator' or 'subject', got {match!r}")
    key = subject_of if match == "subject" else str
    parents = parents or {}
    matched_alert = np.zeros(len(fired), dtype=bool)
    per_incident = []
    times = pd.to_datetime(fired["time"]).to_numpy() if len(fired) else np.array([], "datetime64[ns]")
    injected = [i for i in incidents if i.get("kind") != "routine"]
    routine = _routine_hits(fired, times, [i for i in incidents if i.get("kind") == "routine"], key, parents)
    tails = [dict(inc, start=str(inc["end"]), end=str(pd.Timestamp(inc["end"]) + pd.Timedelta(grace)))
             for inc in injected] if grace else []
    tail = _routine_hits(fired, times, tails, key, parents)
    for inc in injected:
        start, end = pd.Timestamp(inc["start"]), pd.Timestamp(inc["end"])
        regions, inds = set(inc["regions"]), {key(i) for i in inc["indicators"]}
        hit = np.array([
            key(ind) in inds and _region_match(reg, regions, parents) and start.to_datetime64() <= t <= end.to_datetime64()
            for t, ind, reg in zip(times, fired["indicator"], fired["region"])
        ], dtype=bool)
        matched_alert |= hit
        first = times[hit].min() if hit.any() else None
        cycles = float((pd.Timestamp(first) - start) / cycle) if first is not None else None
        per_incident.append({"kind": inc.get("kind", ""), "start": str(start), "end": str(end),
                             "detected": bool(hit.any()), "alerts": int(hit.sum()), "detect_cycles": cycles})
    detected = [p["detect_cycles"] for p in per_incident if p["detected"]]
    return {
        "incidents": per_incident,
        "recall": (sum(p["detected"] for p in per_incident) / len(per_incident)) if per_incident else None,
        "precision": float((matched_alert | routine | tail).mean()) if len(fired) else None,
        "routine_alerts": int((routine & ~matched_alert).sum()),
        "after_end_alerts": int((tail & ~matched_alert & ~routine).sum()),
        "median_detect_cycles": float(np.median(detected)) if detected else None,
        "firing_alerts": int(len(fired)),
    }


def _routine_hits(fired: pd.DataFrame, times: np.ndarray, events: list, key, parents: dict) -> np.ndarray:
    """Which ``fired`` alerts a routine event explains (same key, region as for incidents, in its span).

    Grouped by key so that thousands of events (60 days at 300 neighbourhoods) stay one numpy test
    per alert over its key's events.
    """
    hit = np.zeros(len(fired), dtype=bool)
    if not events or not len(fired):
        return hit
    by_key: dict = {}
    for ev in events:
        for ind in ev["indicators"]:
            for reg in ev["regions"]:
                by_key.setdefault(key(ind), []).append((reg, parents.get(reg), pd.Timestamp(ev["start"]).value,
                                                        pd.Timestamp(ev["end"]).value))
    arrays = {k: (np.array([r[0] for r in v], dtype=object), np.array([r[1] for r in v], dtype=object),
                  np.array([r[2] for r in v], dtype=np.int64), np.array([r[3] for r in v], dtype=np.int64))
              for k, v in by_key.items()}
    t_ns = times.astype("datetime64[ns]").astype(np.int64)
    for n, (t, ind, reg) in enumerate(zip(t_ns, fired["indicator"], fired["region"])):
        got = arrays.get(key(ind))
        if got is None:
            continue
        regs, streets, a, b = got
        where = np.ones(len(regs), dtype=bool) if reg == "district" else (regs == reg) | (streets == reg)
        hit[n] = bool(np.any(where & (a <= t) & (t <= b)))
    return hit
