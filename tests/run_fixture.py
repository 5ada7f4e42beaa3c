"""A small but complete run folder, written exactly to the run-folder contract (docs/report.md).

``write_run(out)`` builds what ``engine.Scenario.run(out=DIR)`` writes, without running the
engine: 20 neighbourhoods of ``City.synthetic(seed=0, neighbourhoods=20, streets=3,
population=60_000)``, hourly cycles, six real catalog indicators, an ensemble of seeds, two
injected incidents with the alerts they raise, and a ``summary.json`` computed from the files.
``severity`` scales the epidemic and the health dips so that two runs differ in known ways.
``evil=True`` plants ``<script>alert(1)</script>`` in an indicator name, a region name and the
alert texts.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

EVIL = "<script>alert(1)</script>"
START = "2020-03-01"
DOMAINS = {
    "safety": ("public_order", "public_safety", "epidemic"),
    "construction": ("lifelines", "sites_buildings", "appearance_traffic"),
    "market": ("enterprise", "commerce", "supervision"),
    "livelihood": ("citizen_demands", "essential_supplies", "community"),
}
INDEX_LABELS = ["overall", *DOMAINS, *(d for ds in DOMAINS.values() for d in ds),
                "safety_index", "imported_risk", "mobility_risk", "gathering_risk"]
#: one indicator of each of these dimensions (the first catalog id under the prefix)
PREFIXES = ("safety.epidemic.fever", "safety.public_order.police", "construction.lifelines.water_pressure",
            "market.enterprise.reopened", "market.commerce.entries", "livelihood.citizen_demands.tickets")


@lru_cache(maxsize=1)
def fixture_city():
    """The fixture's city (cached: building it compiles numba kernels once)."""
    from engine.city import City

    return City.synthetic(seed=0, neighbourhoods=20, streets=3, population=60_000)


@lru_cache(maxsize=1)
def _indicators() -> pd.DataFrame:
    from engine.catalog import Catalog

    table = Catalog.load().table()
    ids = [next(i for i in table.index if i.startswith(p)) for p in PREFIXES]
    return table.loc[ids, ["name_zh", "name_en", "unit", "domain", "dimension", "owner", "direction"]]


def _obj(values) -> np.ndarray:
    return np.array(list(values), dtype=object)


def write_run(out, *, scenario: str = "staged_reopening", title: str | None = None, days: int = 3,
              seeds=(0, 1, 2), severity: float = 1.0, evil: bool = False, hierarchy: bool = False,
              save_city: bool = False) -> Path:
    """Write a complete run folder into ``out`` and return its path.

    Parameters
    ----------
    scenario, title : str
    days : int
        Hourly cycles for ``days`` days from 2020-03-01.
    seeds : sequence of int
        Ensemble members of ``epidemic.parquet``.
    severity : float
        Scales infections, health dips and alert counts (1.0 = the reference run).
    evil : bool
        Plant ``<script>alert(1)</script>`` in an indicator name, a region name and alert texts.
    hierarchy : bool
        Add street and ``district`` rows (``level`` coordinate) to ``indices.zarr``, as
        ``engine.indices.compute_indices`` writes them.
    save_city : bool
        Also write the city to ``out/city`` (``City.save``).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    city = fixture_city()
    rng = np.random.default_rng(int(1000 * severity) + days)
    times = pd.date_range(START, periods=days * 24, freq="h")
    nt = len(times)
    regions = [str(r) for r in city.regions.index]
    names = [str(n) for n in city.regions["name"]]
    streets = [str(s) for s in city.regions["street"]]
    if evil:
        names[3] = names[3] + EVIL
    nr = len(regions)
    ind = _indicators()
    ind_names_zh = list(ind["name_zh"])
    ind_names_en = list(ind["name_en"])
    if evil:
        ind_names_zh[0] += EVIL
        ind_names_en[0] += EVIL
    ni = len(ind)

    # incidents (ground truth): a fever cluster and a water main burst
    i0, i1 = int(nt * 0.35), int(nt * 0.55)
    incidents = [
        {"kind": "cluster", "start": times[i0].isoformat(), "end": times[min(i0 + 10, nt - 1)].isoformat(),
         "regions": [regions[3], regions[4]], "indicators": [ind.index[0]], "magnitude": round(3.0 * severity, 3)},
        {"kind": "water_main_burst", "start": times[i1].isoformat(), "end": times[min(i1 + 6, nt - 1)].isoformat(),
         "regions": [regions[11]], "indicators": [ind.index[2]], "magnitude": 2.5},
    ]

    # values and scores
    hour = times.hour.to_numpy()
    daily = 1.0 + 0.4 * np.sin((hour - 6) / 24 * 2 * np.pi)
    base = rng.uniform(5, 50, size=(ni, nr))
    value = base[None] * daily[:, None, None] * rng.lognormal(0, 0.08, size=(nt, ni, nr))
    score = np.clip(rng.beta(2, 8, size=(nt, ni, nr)), 0, 1)
    for inc in incidents:
        k = list(ind.index).index(inc["indicators"][0])
        t0, t1 = times.get_loc(pd.Timestamp(inc["start"])), times.get_loc(pd.Timestamp(inc["end"]))
        for r in inc["regions"]:
            j = regions.index(r)
            value[t0:t1 + 1, k, j] *= 1 + inc["magnitude"]
            score[t0:t1 + 1, k, j] = 0.9995
    values = xr.Dataset(
        {"value": (("time", "indicator", "region"), value.astype(np.float32)),
         "score": (("time", "indicator", "region"), score.astype(np.float32))},
        coords={"time": times.values, "indicator": _obj(ind.index), "region": _obj(regions),
                "domain": ("indicator", _obj(ind["domain"])), "dimension": ("indicator", _obj(ind["dimension"])),
                "unit": ("indicator", _obj(ind["unit"])), "name_zh": ("indicator", _obj(ind_names_zh)),
                "name_en": ("indicator", _obj(ind_names_en)), "name": ("region", _obj(names)),
                "street": ("region", _obj(streets))},
    )
    values.to_zarr(out / "values.zarr", mode="w", consolidated=False)

    # indices: a per-region level, a district-wide dip mid-run scaled by severity, incident dips
    nx = len(INDEX_LABELS)
    level = rng.uniform(84, 99, size=(1, nx, nr))
    dip = severity * 14 * np.exp(-0.5 * ((np.arange(nt) - nt * 0.6) / (nt * 0.18)) ** 2)
    domain_w = np.array([1.0 if lab in ("overall", "safety", "epidemic", "market", "enterprise") else 0.5
                         for lab in INDEX_LABELS])
    health = level - dip[:, None, None] * domain_w[None, :, None] + rng.normal(0, 1.2, size=(nt, nx, nr))
    for inc in incidents:
        t0, t1 = times.get_loc(pd.Timestamp(inc["start"])), times.get_loc(pd.Timestamp(inc["end"]))
        for r in inc["regions"]:
            health[t0:t1 + 1, :, regions.index(r)] -= 20 * severity
    health = np.clip(health, 0, 100)
    coords = {"time": times.values, "index": _obj(INDEX_LABELS), "region": _obj(regions)}
    if hierarchy:
        pop = city.regions["population"].to_numpy(float)
        sids = [str(s) for s in city.streets.index]
        rows = [np.average(health[:, :, [k for k, s in enumerate(streets) if s == sid]], axis=2,
                           weights=pop[[k for k, s in enumerate(streets) if s == sid]]) for sid in sids]
        rows.append(np.average(health, axis=2, weights=pop))
        health = np.concatenate([health, np.stack(rows, axis=2)], axis=2)
        coords["region"] = _obj(regions + sids + ["district"])
        coords["level"] = ("region", _obj(["neighbourhood"] * nr + ["street"] * len(sids) + ["district"]))
    grade = np.select([health >= 90, health >= 80, health >= 70], [0, 1, 2], 3).astype(np.int8)
    indices = xr.Dataset({"health": (("time", "index", "region"), health.astype(np.float32)),
                          "grade": (("time", "index", "region"), grade)}, coords=coords)
    indices.to_zarr(out / "indices.zarr", mode="w", consolidated=False)

    # alerts: pending -> firing -> resolved per incident series, plus false alarms
    rows = []

    def alert(t0, t1, k, j, severity_, detector):
        meta = ind.iloc[k]
        for t, state in ((t0, "pending"), (t0 + 1, "firing"), (t1 + 1, "resolved")):
            t = min(t, nt - 1)
            rows.append({"time": times[t], "indicator": ind.index[k], "region": regions[j], "level": "neighbourhood",
                         "state": state, "severity": severity_, "value": float(value[t, k, j]),
                         "score": float(score[t, k, j]), "detector": detector, "owner": str(meta["owner"]),
                         "dimension": str(meta["dimension"]), "domain": str(meta["domain"]),
                         "name_zh": ind_names_zh[k], "name_en": ind_names_en[k], "region_name": names[j]})

    for inc in incidents:
        k = list(ind.index).index(inc["indicators"][0])
        t0, t1 = times.get_loc(pd.Timestamp(inc["start"])), times.get_loc(pd.Timestamp(inc["end"]))
        for r in inc["regions"]:
            alert(t0 + 1, t1, k, regions.index(r), "critical", "count")
    n_false = int(round(4 * severity))
    for m in range(n_false):
        k, j, t0 = int(rng.integers(ni)), int(rng.integers(nr)), int(rng.integers(1, nt - 4))
        alert(t0, t0 + 2, k, j, "warn", "seasonal")
    if evil:
        rows[0]["owner"] = EVIL
    alerts = pd.DataFrame(rows).sort_values(["time", "indicator", "region"], kind="stable").reset_index(drop=True)
    alerts.to_parquet(out / "alerts.parquet", index=False)

    (out / "truth.json").write_text(json.dumps({"incidents": incidents}, ensure_ascii=False, indent=2), encoding="utf-8")

    # epidemic: a daily SEIR-like curve per seed
    dates = pd.date_range(START, periods=days, freq="D")
    pop = float(city.regions["population"].sum())
    epi = []
    for s in seeds:
        r = np.random.default_rng(100 + s)
        peak = 0.55 * days * r.uniform(0.9, 1.1)
        width = 0.22 * days * r.uniform(0.9, 1.1)
        t = np.arange(days)
        infectious = 5 + 60 * severity * r.uniform(0.85, 1.15) * np.exp(-0.5 * ((t - peak) / width) ** 2)
        new = np.maximum(0, infectious * 0.3 * r.uniform(0.8, 1.2, days)).round()
        cum = np.cumsum(new) + 20
        exposed = (new * 1.6).round()
        recovered = np.maximum(0, cum - infectious.round() - exposed)
        sus = pop - cum - exposed
        epi.append(pd.DataFrame({"date": dates, "seed": s, "susceptible": sus, "exposed": exposed,
                                 "infectious": infectious.round(), "recovered": recovered,
                                 "new_infections": new, "cumulative_infections": cum,
                                 "prevalence": infectious.round() / pop, "detected_cases": (new * 0.4).round()}))
    epidemic = pd.concat(epi, ignore_index=True)
    epidemic.to_parquet(out / "epidemic.parquet", index=False)

    # economy: recovering towards normal, slower with severity
    x = np.arange(days) / max(days - 1, 1)
    economy = pd.DataFrame({"date": dates,
                            "enterprise_operation": 40 + 50 * x / severity ** 0.5,
                            "footfall": 30 + 55 * x / severity,
                            "power_use": 55 + 38 * x / severity ** 0.5})
    economy.to_parquet(out / "economy.parquet", index=False)

    # summary, computed from what was written
    med = epidemic.groupby("date")[["prevalence", "cumulative_infections"]].median()
    district = np.average(health[:, :, :nr], axis=2, weights=city.regions["population"].to_numpy(float))
    day_overall = pd.Series(district[:, 0], index=times).resample("D").mean()
    gcode = np.select([day_overall >= 90, day_overall >= 80, day_overall >= 70], [0, 1, 2], 3)
    last_week = economy.tail(7)
    firing = alerts[alerts["state"] == "firing"]
    worst = np.argsort(health[-1, 0, :nr], kind="stable")[:5]
    summary = {
        "scenario": scenario,
        "title": title or (f"{scenario} {EVIL}" if evil else scenario.replace("_", " ").capitalize()),
        "city": {"fingerprint": city.fingerprint(), "neighbourhoods": nr, "population": int(pop)},
        "period": {"start": times[0].isoformat(), "end": times[-1].isoformat(), "cycle": "1h", "store_every": "1h"},
        "seeds": list(seeds),
        "epidemic": {"peak_prevalence": float(med["prevalence"].max()),
                     "peak_date": med["prevalence"].idxmax().date().isoformat(),
                     "cumulative_infections": float(med["cumulative_infections"].iloc[-1])},
        "economy": {"enterprise_operation_recovered": float(last_week["enterprise_operation"].mean()),
                    "footfall_recovered": float(last_week["footfall"].mean()),
                    "power_use_recovered": float(last_week["power_use"].mean())},
        "health": {"mean_overall": float(district[:, 0].mean()),
                   "by_domain": {d: float(district[:, INDEX_LABELS.index(d)].mean()) for d in DOMAINS},
                   "days_in_grade": {k: int((gcode == c).sum()) for c, k in enumerate(("excellent", "good", "stable", "poor"))}},
        "alerts": {"total": int(len(firing)),
                   "by_dimension": {str(k): int(v) for k, v in firing["dimension"].value_counts().sort_index().items()}},
        "worst_neighbourhoods": [{"region": regions[j], "name": names[j], "health": float(health[-1, 0, j])} for j in worst],
        "detection": {"recall": 1.0, "precision": round(len(incidents) / max(len(incidents) + n_false, 1), 3),
                      "median_detect_cycles": 1.0,
                      "incidents": [{"kind": i["kind"], "detected": True, "detect_cycles": 1} for i in incidents]},
        "runtime_s": 1.5,
    }
    (out / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")
    if save_city:
        city.save(out / "city")
    return out
