"""A realistic, seeded load of encoded records for benchmarks and examples (no feeds package needed).

Per cycle: events at ``events_per_10k_day`` per 10,000 residents per day spread over the event
feeds; one reading per (emitter, metric) of every readings feed; ``snapshot_share`` of the
entities of every snapshot feed report one field.
"""

from __future__ import annotations

import numpy as np

from engine.core.records import Records


def _emitters(city, fd):
    em = fd.get("emitter")
    if em == "region":
        return np.arange(city.n_regions), np.full(city.n_regions, -1), np.arange(city.n_regions)
    t = {"sensor": city.sensors, "site": city.sites, "enterprise": city.enterprises}[em]
    pos = city.regions.index.get_indexer(t["region"])
    kinds = list(fd.get("emitter_kinds") or [])
    if kinds and "kind" in t:
        k = t["kind"].to_numpy().astype(str)
        m = np.isin(k, kinds)
        idx = np.flatnonzero(m)
        return idx, np.array([kinds.index(x) for x in k[m]], dtype=np.int64), pos[m]
    return np.arange(len(t)), np.full(len(t), -1), pos


def synthetic_records(city, catalog, k0: int, n_cycles: int, cycle_ns: int = 900 * 10**9, seed: int = 0,
                      events_per_10k_day: float = 20.0, snapshot_share: float = 0.02,
                      readings: bool = True) -> Records:
    """Records for cycles ``k0 .. k0 + n_cycles - 1`` (event times inside each cycle).

    Examples
    --------
    >>> from engine import City, Catalog
    >>> rec = synthetic_records(City.synthetic(seed=1, neighbourhoods=10, streets=2, population=30_000),
    ...                         Catalog.load(), 1_755_000, 2)
    >>> rec.n > 0
    True
    """
    rng = np.random.default_rng(seed)
    feeds = list(catalog.feeds)
    pop = city.regions["population"].to_numpy(np.float64)
    evf = [i for i, f in enumerate(feeds) if catalog.feeds[f]["kind"] == "events"]
    rate = pop / 10_000 * events_per_10k_day / (86400e9 / cycle_ns)
    ev, rd, sn = [], [], []
    rd_em = {i: _emitters(city, catalog.feeds[f]) for i, f in enumerate(feeds) if catalog.feeds[f]["kind"] == "readings"}
    sn_em = {i: _emitters(city, catalog.feeds[f]) for i, f in enumerate(feeds) if catalog.feeds[f]["kind"] == "snapshots"}
    for c in range(n_cycles):
        k = k0 + c
        n_r = rng.poisson(rate)
        reg = np.repeat(np.arange(city.n_regions), n_r)
        n = len(reg)
        f = rng.choice(evf, n)
        ncat = np.array([len(catalog.feeds[feeds[x]]["categories"]) for x in evf])[np.searchsorted(evf, f)]
        nch = np.array([len(catalog.feeds[feeds[x]]["channels"]) for x in evf])[np.searchsorted(evf, f)]
        ev.append(dict(ev_time=k * cycle_ns - rng.integers(0, cycle_ns, n), ev_feed=f,
                       ev_category=(rng.random(n) * ncat).astype(np.int64),
                       ev_channel=np.where(nch > 0, (rng.random(n) * np.maximum(nch, 1)).astype(np.int64), -1),
                       ev_region=reg, ev_value=np.where(rng.random(n) < 0.1, rng.integers(100, 10000, n), np.nan)))
        if readings:
            for fi, (ent, kind, pos) in rd_em.items():
                nm = len(catalog.feeds[feeds[fi]]["metrics"])
                m = len(ent)
                rd.append(dict(rd_time=np.full(m * nm, k * cycle_ns - 1), rd_feed=np.full(m * nm, fi),
                               rd_metric=np.repeat(np.arange(nm), m), rd_emitter=np.tile(ent, nm),
                               rd_kind=np.tile(kind, nm), rd_region=np.tile(pos, nm),
                               rd_value=rng.gamma(4.0, 25.0, m * nm).round(2)))
        for fi, (ent, kind, pos) in sn_em.items():
            nf = len(catalog.feeds[feeds[fi]]["fields"])
            pick = np.flatnonzero(rng.random(len(ent)) < (1.0 if c == 0 else snapshot_share))
            fld = rng.integers(0, nf, len(pick))
            if c == 0:  # everyone reports every field once at the start
                pick, fld = np.repeat(pick, nf), np.tile(np.arange(nf), len(pick))
            m = len(pick)
            sn.append(dict(sn_time=np.full(m, k * cycle_ns - 2), sn_feed=np.full(m, fi), sn_field=fld,
                           sn_entity=ent[pick], sn_kind=kind[pick], sn_region=pos[pick],
                           sn_value=np.where(rng.random(m) < 0.5, (rng.random(m) < 0.7).astype(float),
                                             rng.integers(0, 500, m).astype(float))))

    def cat(parts, names):
        if not parts:
            return None
        return {n: np.concatenate([p[n] for p in parts]) for n in names}

    return Records.build(
        feeds,
        events=cat(ev, ("ev_time", "ev_feed", "ev_category", "ev_channel", "ev_region", "ev_value")),
        readings=cat(rd, ("rd_time", "rd_feed", "rd_metric", "rd_emitter", "rd_kind", "rd_region", "rd_value")),
        snapshots=cat(sn, ("sn_time", "sn_feed", "sn_field", "sn_entity", "sn_kind", "sn_region", "sn_value")),
    )
