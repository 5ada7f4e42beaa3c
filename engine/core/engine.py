"""The indicator engine: feeds in, every indicator of the catalog out, one cycle at a time.

Cycles are absolute: cycle ``k`` covers event times ``((k - 1) * cycle, k * cycle]`` (nanoseconds
since the Unix epoch, UTC) and is computed at ``at = k * cycle``. An indicator with window ``W``
cycles reads buckets ``k - W + 1 .. k``. A record arriving in the step of cycle ``k`` with an event
time in an earlier cycle ``j`` (late, but within its feed's ``lateness``: ``time > at - lateness``)
lands in bucket ``j`` and in every window that still covers ``j``. Records later than that, or in the
future (``time > at``), are not counted; their numbers are in ``ds.attrs`` (``core.too_late``,
``core.future``).

Snapshots are state: each record sets the latest value of (entity, field) if it is at least as
recent as the one held; each cycle aggregates the latest values (a late snapshot takes effect from
the cycle it arrives in).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.core import kernels as K
from engine.core.dataset import flatten_counts, indicator_coords, make_dataset
from engine.core.derived import DerivedPlan
from engine.core.plan import KIND_EVENTS, KIND_READINGS, KIND_SNAPSHOTS, compile_plan
from engine.core.records import Records, as_records
from engine.core.rollup import level_groups, rollup
from engine.core.state import State


def to_ns(at) -> int:
    """A timestamp (str, datetime, numpy or pandas, or int ns) as int ns since the epoch (UTC).

    >>> to_ns("2020-02-01 00:15")
    1580516100000000000
    """
    if isinstance(at, (int, np.integer)) and not isinstance(at, bool):
        return int(at)
    ts = pd.Timestamp(at)
    if ts is pd.NaT:
        raise ValueError(f"not a timestamp: {at!r}")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return int(ts.as_unit("ns").value)


class Engine:
    """Every indicator of a catalog for every region of a city, cycle by cycle.

    Parameters
    ----------
    city : engine.City
    catalog : engine.Catalog, optional
        Default: the bundled catalog.
    cycle : str
        Cycle length (``"15min"``).
    dtype : str
        dtype of the returned values (``"float32"``, default, or ``"float64"``); everything is
        computed in float64 (counts exactly in int32) and rounded once at the end.

    Examples
    --------
    >>> import numpy as np
    >>> from engine import City, Catalog
    >>> from engine.core.records import Records
    >>> city = City.synthetic(seed=1, neighbourhoods=12, streets=3, population=30_000)
    >>> eng = Engine(city, Catalog.load())
    >>> f = eng.plan.feed_ids.index("police_incidents")
    >>> t = np.datetime64("2020-02-01T00:10", "ns").astype(np.int64)
    >>> rec = Records.build(eng.plan.feed_ids, events=dict(ev_time=[t] * 3, ev_feed=[f] * 3, ev_category=[0] * 3,
    ...                      ev_channel=[-1] * 3, ev_region=[4] * 3, ev_value=[np.nan] * 3))
    >>> ds = eng.step(rec, at="2020-02-01 00:15")
    >>> float(ds.value.sel(indicator="safety.public_order.police_assault.count_1h", region="N0005"))
    3.0
    >>> float(eng.step(Records.build(eng.plan.feed_ids), at="2020-02-01 00:30", level="district")
    ...       .value.sel(indicator="safety.public_order.police_assault.count_1h").item())
    3.0
    """

    def __init__(self, city, catalog=None, cycle: str = "15min", dtype: str = "float32"):
        if catalog is None:
            from engine.catalog import Catalog

            catalog = Catalog.load()
        self.city = city
        self.catalog = catalog
        self.cycle = cycle
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.dtype("float32"), np.dtype("float64")):
            raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
        self.plan = compile_plan(city, catalog, cycle)
        self.derived = DerivedPlan(catalog.indicators)
        self.state = State.empty(self.plan)
        p = self.plan
        self._snap_bases = np.flatnonzero(p.base_kind == KIND_SNAPSHOTS).astype(np.int64)
        self._row_mult = np.ones(len(p.indicator_ids))
        self._row_mult[p.ind_row] = p.ind_mult
        self._pop = city.regions["population"].to_numpy(np.float64)
        self._regions = [str(r) for r in city.regions.index]
        self._late_ns = p.feed_lateness_cycles * p.cycle_ns
        self.last_counts: dict = {}
        self._coords = indicator_coords(catalog.indicators)

    # ------------------------------------------------------------------ state
    def save_state(self, path) -> None:
        """Write the window state (``.npz``); :meth:`load_state` continues exactly from it."""
        self.state.save(path)

    def load_state(self, path) -> None:
        """Replace the window state with one saved by :meth:`save_state` for the same plan."""
        self.state = State.load(path, self.plan)

    @property
    def last_cycle(self):
        """The time of the last cycle computed (``None`` before the first)."""
        k = self.state.last_cycle
        return None if k < 0 else pd.Timestamp(k * self.plan.cycle_ns)

    # ------------------------------------------------------------------ inputs
    def _cycle_of(self, at) -> int:
        ns = to_ns(at)
        c = self.plan.cycle_ns
        if ns % c:
            raise ValueError(f"at={pd.Timestamp(ns)} is not on a {self.cycle} cycle boundary "
                             f"(e.g. {pd.Timestamp(ns - ns % c)})")
        return ns // c

    def _encode(self, feeds, now_ns: int):
        if hasattr(feeds, "ev_time"):
            return as_records(feeds), None
        from engine.feeds import encode  # the feeds package turns raw feeds into encoded arrays

        enc, quarantine = encode(feeds, self.city, self.catalog, now=pd.Timestamp(now_ns))
        counts = quarantine.counts() if quarantine is not None and hasattr(quarantine, "counts") else None
        return as_records(enc), counts

    def _check(self, rec: Records) -> None:
        p = self.plan
        if rec.feed_ids and list(rec.feed_ids) != list(p.feed_ids):
            raise ValueError("records were encoded for another feed list: "
                             f"{list(rec.feed_ids)[:5]}... vs the catalog's {p.feed_ids[:5]}...")
        nf = len(p.feed_ids)
        for name, kind in (("ev_feed", KIND_EVENTS), ("rd_feed", KIND_READINGS), ("sn_feed", KIND_SNAPSHOTS)):
            f = getattr(rec, name)
            if len(f) and (f.min() < 0 or f.max() >= nf):
                bad = f[(f < 0) | (f >= nf)][0]
                raise ValueError(f"{name} {bad} is not a feed position (0..{nf - 1})")
            if len(f):
                wrong = p.feed_kind[f] != kind
                if wrong.any():
                    bad = int(f[wrong][0])
                    raise ValueError(f"{name} {bad} ({p.feed_ids[bad]!r}) is not a {('events', 'readings', 'snapshots')[kind]} feed")
        nreg = p.n_regions
        for name in ("ev_region", "rd_region"):
            r = getattr(rec, name)
            if len(r) and (r.min() < 0 or r.max() >= nreg):
                bad = r[(r < 0) | (r >= nreg)][0]
                raise ValueError(f"{name} {bad} is not a region position (0..{nreg - 1})")
        if len(rec.ev_feed):
            f = rec.ev_feed
            for name, arr, lim, lo in (("ev_category", rec.ev_category, p.key_ncat[f], 0),
                                       ("ev_channel", rec.ev_channel, p.key_nsub[f] - 1, -1)):
                bad = (arr < lo) | (arr >= lim)
                if bad.any():
                    i = np.flatnonzero(bad)[0]
                    raise ValueError(f"{name} {arr[i]} out of range for feed {p.feed_ids[f[i]]!r} ({lo}..{lim[i] - 1})")
        if len(rec.rd_feed):
            f = rec.rd_feed
            for name, arr, lim, lo in (("rd_metric", rec.rd_metric, p.key_ncat[f], 0),
                                       ("rd_kind", rec.rd_kind, p.key_nsub[f] - 1, -1)):
                bad = (arr < lo) | (arr >= lim)
                if bad.any():
                    i = np.flatnonzero(bad)[0]
                    raise ValueError(f"{name} {arr[i]} out of range for feed {p.feed_ids[f[i]]!r} ({lo}..{lim[i] - 1})")
        if len(rec.sn_feed):
            f = rec.sn_feed
            nfield = np.array([len(self.catalog.feeds[x].get("fields") or {}) for x in p.feed_ids])[f]
            for name, arr, lim in (("sn_field", rec.sn_field, nfield), ("sn_entity", rec.sn_entity, p.snap_nent[f])):
                bad = (arr < 0) | (arr >= lim)
                if bad.any():
                    i = np.flatnonzero(bad)[0]
                    raise ValueError(f"{name} {arr[i]} out of range for feed {p.feed_ids[f[i]]!r} (0..{lim[i] - 1})")

    def _prepare(self, rec: Records) -> dict:
        """Buckets and kernel keys of every record, sorted by bucket (stable)."""
        p = self.plan
        c = p.cycle_ns
        out = {}
        ev_b = -((-rec.ev_time) // c)
        o = np.argsort(ev_b, kind="stable")
        f = rec.ev_feed[o]
        out["ev"] = dict(bucket=ev_b[o], time=rec.ev_time[o], feed=f,
                         key=(p.key_off[f] + rec.ev_category[o].astype(np.int64) * p.key_nsub[f]
                              + rec.ev_channel[o] + 1).astype(np.int64),
                         region=rec.ev_region[o].astype(np.int64), value=rec.ev_value[o])
        rd_b = -((-rec.rd_time) // c)
        o = np.argsort(rd_b, kind="stable")
        f = rec.rd_feed[o]
        out["rd"] = dict(bucket=rd_b[o], time=rec.rd_time[o], feed=f,
                         key=(p.key_off[f] + rec.rd_metric[o].astype(np.int64) * p.key_nsub[f]
                              + rec.rd_kind[o] + 1).astype(np.int64),
                         region=rec.rd_region[o].astype(np.int64), value=rec.rd_value[o])
        sn_b = -((-rec.sn_time) // c)
        o = np.argsort(sn_b, kind="stable")
        f = rec.sn_feed[o]
        out["sn"] = dict(bucket=sn_b[o], time=rec.sn_time[o], feed=f,
                         key=(p.snap_off[f] + rec.sn_field[o].astype(np.int64) * p.snap_nent[f]
                              + rec.sn_entity[o]).astype(np.int64),
                         region=rec.sn_region[o].astype(np.int64), value=rec.sn_value[o])
        return out

    @staticmethod
    def _take(group: dict, sel) -> dict:
        return {k: v[sel] for k, v in group.items()}

    def _admit(self, prep: dict, k: int, counts: dict) -> dict:
        """Records of ``prep`` admitted at cycle ``k``: not in the future, not later than lateness."""
        at = k * self.plan.cycle_ns
        out = {}
        for g, d in prep.items():
            fut = d["bucket"] > k
            late = d["time"] <= at - self._late_ns[d["feed"]]
            ok = ~(fut | late)
            counts["core.future"] = counts.get("core.future", 0) + int(fut.sum())
            counts["core.too_late"] = counts.get("core.too_late", 0) + int((late & ~fut).sum())
            out[g] = d if ok.all() else self._take(d, ok)
        return out

    # ------------------------------------------------------------------ kernels
    def _run_cycle(self, k: int, batch: dict | None) -> None:
        p, s = self.plan, self.state
        K.advance(k, p.base_ser0, p.base_R, p.base_Rm, p.base_offS, p.base_offN, p.base_offO, p.base_offMin,
                  p.base_offMax, p.base_blk_ptr, p.blk_W, p.blk_offS, p.blk_offN, p.blk_offO, p.blk_offP,
                  s.ringS, s.ringN, s.ringO, s.ringMin, s.ringMax, s.wS, s.wN, s.wO, s.wP)
        if batch is not None:
            for g in ("ev", "rd"):
                d = batch[g]
                if len(d["bucket"]):
                    K.bin_records(k, d["bucket"], d["key"], d["region"], d["value"], g == "ev", p.map_ptr, p.map_base,
                                  p.lookup, p.base_ser0, p.base_R, p.base_Rm, p.base_offS, p.base_offN,
                                  p.base_offMin, p.base_offMax, p.base_blk_ptr, p.blk_W, p.blk_offS, p.blk_offN,
                                  s.ringS, s.ringN, s.ringMin, s.ringMax, s.wS, s.wN)
            d = batch["sn"]
            if len(d["bucket"]):
                K.snap_apply(d["time"], d["key"], d["value"], s.st_value, s.st_time)
        if len(self._snap_bases):
            K.snap_aggregate(k, self._snap_bases, p.mem_ptr, p.mem_cell, p.mem_ser, s.st_value, p.base_ser0,
                             p.base_R, p.base_Rm, p.base_offS, p.base_offN, p.base_offO, p.base_offMin,
                             p.base_offMax, s.ringS, s.ringN, s.ringO, s.ringMin, s.ringMax)
        K.add_new(k, p.base_ser0, p.base_R, p.base_offS, p.base_offN, p.base_offO, p.base_blk_ptr, p.blk_offS,
                  p.blk_offN, p.blk_offO, p.blk_offP, s.ringS, s.ringN, s.ringO, s.wS, s.wN, s.wO, s.wP)
        s.last_cycle = k

    def _values(self, k: int, out: np.ndarray, parts: bool):
        p, s = self.plan, self.state
        if parts:
            num = np.empty_like(out)
            den = np.empty_like(out)
        else:
            num = den = np.empty((1, 1))
        K.compute_values(k, p.ind_row, p.ind_code, p.ind_base, p.ind_blk, p.ind_blk2, p.ind_W, p.ind_norm, p.ind_q,
                         p.ind_mult, p.base_ser0, p.base_R, p.base_Rm, p.base_offS, p.base_offN, p.base_offMin,
                         p.base_offMax, p.ser_region, p.blk_offS, p.blk_offN, p.blk_offO, p.blk_offP, s.ringS,
                         s.ringN, s.ringMin, s.ringMax, s.wS, s.wN, s.wO, s.wP, p.norm, out, num, den, parts)
        self.derived.evaluate(out)
        return num, den

    def _level(self, level):
        first = self.city.levels[0]
        level = first if level is None else level
        g, labels, _ = level_groups(self.city, level)
        return level, (None if level == first else g), labels

    def _output(self, k: int, g, nlabels: int) -> np.ndarray:
        V = np.empty((len(self.plan.indicator_ids), self.plan.n_regions), np.float64)
        num, den = self._values(k, V, g is not None)
        if g is not None:
            V = rollup(V, num, den, self.plan.rollup, self._row_mult, g, nlabels, self._pop, self.derived)
        return V

    def _advance_to(self, k: int) -> None:
        last = self.state.last_cycle
        if last >= 0 and k <= last:
            raise ValueError(f"cycle {pd.Timestamp(k * self.plan.cycle_ns)} is not after the last cycle computed "
                             f"({pd.Timestamp(last * self.plan.cycle_ns)})")
        if last >= 0:
            for kk in range(last + 1, k):  # cycles without a step: empty buckets, snapshots carried
                self._run_cycle(kk, None)

    # ------------------------------------------------------------------ public
    def step(self, feeds, at, level: str | None = None):
        """Compute one cycle ending at ``at`` and return every indicator.

        Parameters
        ----------
        feeds : engine.Feeds or encoded records
            The records that arrived for this cycle (late ones included).
        at : timestamp
            The cycle's end, on a cycle boundary; after the last cycle computed.
        level : str, optional
            ``"street"``, ``"district"`` (or ``"block"`` for grids); default the finest level.

        Returns
        -------
        xarray.Dataset
            ``value`` (indicator, region); indicator coordinates domain, dimension, unit, names;
            ``attrs``: ``time``, ``level``, quarantine counts (``quarantine.*``, ``core.*``).
        """
        k = self._cycle_of(at)
        level, g, labels = self._level(level)
        rec, qcounts = self._encode(feeds, k * self.plan.cycle_ns)
        self._check(rec)
        self._advance_to(k)
        counts: dict = {}
        batch = self._admit(self._prepare(rec), k, counts)
        self._run_cycle(k, batch)
        V = self._output(k, g, len(labels))
        attrs = {"time": str(pd.Timestamp(k * self.plan.cycle_ns)), "cycle": self.cycle, **flatten_counts(qcounts)}
        attrs.update(counts)
        self.last_counts = attrs
        return make_dataset(V.astype(self.dtype), self._coords, labels, level, attrs=attrs)

    def replay(self, feeds, start, end, level: str | None = None):
        """Compute every cycle from ``start`` to ``end`` (both cycle ends, inclusive).

        Equal, number for number, to successive :meth:`step` calls where the first step gets every
        record up to ``start`` and each later step the records of its own cycle. An engine that
        already computed cycles continues from them (records of those cycles are skipped), so a
        long period can be replayed in chunks with the same result.

        Returns
        -------
        xarray.Dataset
            ``value`` (time, indicator, region), attributes as in :meth:`step` summed over cycles.
        """
        k0, k1 = self._cycle_of(start), self._cycle_of(end)
        if k1 < k0:
            raise ValueError(f"end {end!r} is before start {start!r}")
        level, g, labels = self._level(level)
        rec, qcounts = self._encode(feeds, k1 * self.plan.cycle_ns)
        self._check(rec)
        last = self.state.last_cycle
        self._advance_to(k0)
        prep = self._prepare(rec)
        if last >= 0:  # a continued replay: records of cycles already computed were seen then
            lo = {gn: int(np.searchsorted(d["bucket"], last, side="right")) for gn, d in prep.items()}
            prep = {gn: self._take(d, slice(lo[gn], None)) for gn, d in prep.items()}
        T = k1 - k0 + 1
        out = np.empty((T, len(self.plan.indicator_ids), len(labels)), self.dtype)
        counts: dict = {}
        bounds = {gname: np.searchsorted(d["bucket"], np.arange(k0, k1 + 1), side="right") for gname, d in prep.items()}
        for t, k in enumerate(range(k0, k1 + 1)):
            if t == 0:
                batch = self._admit({gn: self._take(d, slice(0, bounds[gn][0])) for gn, d in prep.items()}, k, counts)
            else:
                batch = {gn: self._take(d, slice(bounds[gn][t - 1], bounds[gn][t])) for gn, d in prep.items()}
            self._run_cycle(k, batch)
            out[t] = self._output(k, g, len(labels))
        counts["core.after_end"] = int(sum(len(d["bucket"]) - bounds[gn][-1] for gn, d in prep.items()))
        times = pd.to_datetime(np.arange(k0, k1 + 1, dtype=np.int64) * self.plan.cycle_ns)
        attrs = {"start": str(times[0]), "end": str(times[-1]), "cycle": self.cycle, **flatten_counts(qcounts)}
        attrs.update(counts)
        self.last_counts = attrs
        return make_dataset(out, self._coords, labels, level, times=times, attrs=attrs)
