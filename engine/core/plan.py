"""Compile a catalog and a city into a plan of batched kernels.

Indicators share *bases*: one base per (feed, filter subject), e.g. "hotline tickets of categories
{a, b} via channel c" or "crowd-count entries at pharmacies". A base has one *series* per region that
can carry data (every region for events and region-emitted feeds; regions with at least one matching
sensor, site or enterprise otherwise) and keeps, per series, per-cycle buckets in ring buffers:

====  ==========  ================================================================
stat  dtype       per-cycle bucket
====  ==========  ================================================================
S     float64     sum of values (events with a value, readings, snapshot entities)
N     uint16      number of records (events, readings) or of entities with a value (int32 if widened)
O     uint16      snapshot entities whose value is exactly 1 (share)
MIN   float64     smallest value (readings, snapshot entities); +inf when none
MAX   float64     largest value; -inf when none
====  ==========  ================================================================

Counts are uint16 (exact; widened to int32 before any cell could pass 65,535, see
:mod:`engine.core.state`); value sums stay float64 because values are arbitrary reals. A ring holds as many cycles as the longest window any indicator of the base uses.

Each distinct window ``W`` (in cycles) of a base is a *block* of running window sums (``wS``, ``wN``,
``wO`` and ``wP`` = cycles with at least one entity, for snapshot time averages), updated each cycle
by subtracting the bucket that leaves and adding the one that enters. Min and max windows keep a
running extreme per (base, window, series), recomputed from the MIN/MAX ring (one slot longer
than the longest window) only when the bucket that leaves held it; quantile windows keep the
per-cycle means of the window sorted per series (one delete and one insert per cycle).

Every non-derived indicator becomes one row of small integer codes (aggregation code, block, base,
window, normalisation row, quantile) read by one value kernel; derived indicators are grouped by
formula shape (:mod:`engine.core.derived`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from engine.catalog.vocab import window_minutes

KIND_EVENTS, KIND_READINGS, KIND_SNAPSHOTS = 0, 1, 2
STATE_LAYOUT = 2  # part of the plan fingerprint: states of another layout are refused on load
#: share of the snapshot entities reporting one field a cycle that :meth:`Plan.cycle_bytes` assumes
#: when not told the load (``engine.core.synthetic.synthetic_records``' ``snapshot_share``)
SNAPSHOT_SHARE = 0.02
COUNT16_MAX = 65535  # count rings are uint16 while every bucket provably fits (engine.core.state)
KINDS = {"events": KIND_EVENTS, "readings": KIND_READINGS, "snapshots": KIND_SNAPSHOTS}

# value codes of the value kernel
C_COUNT, C_EVSUM, C_RDSUM, C_MEAN, C_EVSHARE, C_SNSHARE, C_SNSUM, C_MIN, C_MAX, C_QUANT = range(10)
CODE_NAMES = ("count", "event_sum", "reading_sum", "mean", "event_share", "snapshot_share",
              "snapshot_sum", "min", "max", "quantile")

# roll-up codes
R_SUM, R_RATIO, R_POPMEAN, R_MAX, R_MIN, R_FORMULA = range(6)
ROLLUP_CODES = {"sum": R_SUM, "ratio": R_RATIO, "pop_mean": R_POPMEAN, "max": R_MAX, "min": R_MIN,
                "formula": R_FORMULA}

NORMS = ("per_10k_residents", "per_km2", "per_site", "per_enterprise")


def _as_set(value) -> frozenset | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple, set, frozenset)):
        return frozenset(str(v) for v in value)
    return frozenset([str(value)])


def cycle_ns(cycle) -> int:
    """The length of a cycle such as ``"15min"`` in nanoseconds.

    >>> cycle_ns("15min")
    900000000000
    """
    return int(window_minutes(cycle)) * 60 * 1_000_000_000


@dataclass
class Plan:
    """Arrays describing bases, series, blocks and indicator rows (see the module docstring).

    Build with :func:`compile_plan`; every attribute is a plain numpy array or a small list.
    """

    cycle_ns: int
    n_regions: int
    feed_ids: list
    feed_kind: np.ndarray          # int8 per feed
    feed_lateness_cycles: np.ndarray  # int64 per feed
    indicator_ids: list
    # bases
    base_kind: np.ndarray
    base_feed: np.ndarray
    base_ser0: np.ndarray          # int64 [B + 1]: series of base b are ser0[b] .. ser0[b+1]
    ser_region: np.ndarray         # int32 [S]
    lookup: np.ndarray             # int32 [B, n_regions]: series index or -1
    base_R: np.ndarray             # ring length of S/N/O rings (>= 1)
    base_Rm: np.ndarray            # ring length of MIN/MAX rings (0: none)
    base_offS: np.ndarray          # offsets into the flat rings, -1 when absent
    base_offN: np.ndarray
    base_offO: np.ndarray
    base_offMin: np.ndarray
    base_offMax: np.ndarray
    base_offRow: np.ndarray        # offset of base b's R records-per-bucket counters (State.rowc)
    ring_sizes: dict               # {"S": n, "N": n, ...} flat ring lengths
    # blocks of running window sums
    base_blk_ptr: np.ndarray       # int64 [B + 1]
    blk_base: np.ndarray
    blk_W: np.ndarray
    blk_offS: np.ndarray
    blk_offN: np.ndarray
    blk_offO: np.ndarray
    blk_offP: np.ndarray
    window_sizes: dict
    # running extremes: one block per (base, window, min|max), one value per series
    base_mm_ptr: np.ndarray        # int64 [B + 1]
    mm_base: np.ndarray
    mm_W: np.ndarray
    mm_stat: np.ndarray            # int8: 0 min, 1 max
    mm_off: np.ndarray             # offset into State.mmRun
    mm_size: int
    # sorted windows of per-cycle means (quantiles): one block per (base, window)
    base_q_ptr: np.ndarray         # int64 [B + 1]
    q_base: np.ndarray
    q_W: np.ndarray
    q_off: np.ndarray              # offset into State.qv (W values per series)
    q_noff: np.ndarray             # offset into State.qn (one count per series)
    q_size: int
    q_nsize: int
    max_members: int               # most snapshot entities of one series
    # record -> bases (CSR) for events and readings
    key_off: np.ndarray            # int64 per feed: first key of the feed
    key_ncat: np.ndarray           # categories or metrics per feed
    key_nsub: np.ndarray           # channels + 1 or emitter kinds + 1 per feed
    map_ptr: np.ndarray
    map_base: np.ndarray
    # snapshots: latest value per (feed, field, entity)
    snap_off: np.ndarray           # int64 per feed: first state cell (-1 for non-snapshot feeds)
    snap_nent: np.ndarray          # entities per snapshot feed
    snap_size: int
    mem_ptr: np.ndarray            # int64 [B + 1] members of snapshot bases
    mem_cell: np.ndarray           # int64 state cell of each member
    mem_ser: np.ndarray            # int32 series of each member (members sorted by series)
    ser_mptr: np.ndarray           # int64 [n_series + 1]: members of series s (CSR)
    cell_mptr: np.ndarray          # int64 [snap_size + 1]: members of each snapshot cell (CSR) ...
    cell_mem: np.ndarray           # int64 ... as member positions
    # indicators (rows of the output; derived rows are filled by engine.core.derived)
    ind_row: np.ndarray            # output row of each non-derived indicator
    ind_code: np.ndarray
    ind_base: np.ndarray
    ind_blk: np.ndarray
    ind_blk2: np.ndarray           # share denominator block (events), -1 otherwise
    ind_W: np.ndarray
    ind_norm: np.ndarray           # row of `norm`, -1 for none
    ind_q: np.ndarray
    ind_mult: np.ndarray
    norm: np.ndarray               # float64 [n_norm, n_regions] static denominators
    rollup: np.ndarray             # roll-up code per output row
    derived_ids: list
    fingerprint: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def n_bases(self) -> int:
        return len(self.base_kind)

    @property
    def n_series(self) -> int:
        return len(self.ser_region)

    def state_bytes(self, count_bytes: int = 2) -> int:
        """Bytes of the window state (rings, running sums, extremes, sorted windows, snapshot values
        and times); ``count_bytes`` per count ring cell (2: uint16, 4 once widened)."""
        r = self.ring_sizes
        w = self.window_sizes
        return int(8 * r["S"] + count_bytes * (r["N"] + r["O"]) + 8 * r["MIN"] + 8 * r["MAX"]
                   + 8 * w["S"] + 4 * w["N"] + 4 * w["O"] + 4 * w["P"] + 8 * self.mm_size
                   + 8 * self.q_size + 4 * self.q_nsize + 16 * self.snap_size + 4 * int(self.base_R.sum()) + 8)

    def cycle_bytes(self, out_itemsize: int = 4, count_bytes: int = 2, records: float = 0,
                    snap_records: float | None = None) -> int:
        """Bytes one cycle must touch at least (read + written), for a load of ``records`` events
        and readings and ``snap_records`` snapshot records a cycle:

        - every block of running sums: the ring cells of the leaving and the entering bucket and
          the sums read and written back (N: ``2 cb + 2 * 4``; S: ``2 * 8 + 2 * 8``; O: ``2 cb +
          2 * 4``; P: ``2 * 4`` a series; ``cb`` = ``count_bytes``);
        - every base: its ring row of bucket k written (``8`` S, ``cb`` N, ``cb`` O, ``8`` min,
          ``8`` max a series); a snapshot base also reads the previous bucket's row (copied into
          bucket k) and one changed-series flag byte a series;
        - every running extreme: ``2 * 8 + 2 * 8`` a series; every sorted window: the leaving and
          entering bucket (S and N), one value deleted and one inserted and the quantile read,
          ``2 (8 + cb) + 2 * 8 + 8`` a series;
        - the snapshot members re-read: 16 B (value and cell index) for each member of a series
          one of whose members' cells changed this cycle (only those series are aggregated
          again). Expected from the load: each of the ``snap_size`` cells changes with
          probability ``q = snap_records / snap_size`` (each record a new value, cells alike,
          independently), so series ``s`` with ``m_s`` members is re-read with probability
          ``1 - (1 - q) ** m_s``: ``16 * sum_s m_s (1 - (1 - q) ** m_s)``. ``snap_records``
          ``None``: :data:`SNAPSHOT_SHARE` of the snapshot entities (each reporting one field),
          the synthetic load's stated share (``engine.core.synthetic``; its cycles carry fewer:
          ~312 at 300 regions where this gives 744, so the default is on the high side);
        - the records read: 24 B an event or reading (bucket 8, key 4, region 4, value 8; their
          ring cells are the rows above) and 52 B a snapshot record (time 8, cell 4, value 8, its
          cell's latest value and time read and written 32);
        - the output matrix written once (``out_itemsize``: 4 for float32 results).

        Left out as a floor: the values read the window sums back after the add (counted once),
        the derived rows' float64 inputs (a fused pass would not need them), the cycle's scratch.
        """
        nser = (self.base_ser0[1:] - self.base_ser0[:-1]).astype(np.int64)
        cb = count_bytes
        b = 0
        for bl in range(len(self.blk_base)):
            n = nser[self.blk_base[bl]]
            b += n * (2 * cb + 2 * 4)  # N: two ring cells, sum read + written
            if self.blk_offS[bl] >= 0:
                b += n * (2 * 8 + 2 * 8)
            if self.blk_offO[bl] >= 0:
                b += n * (2 * cb + 2 * 4)
            if self.blk_offP[bl] >= 0:
                b += n * (2 * 4)
        snap = (self.mem_ptr[1:] - self.mem_ptr[:-1]) > 0
        for base in range(self.n_bases):
            n = nser[base]
            row = n * (8 * (self.base_offS[base] >= 0) + cb * (self.base_offN[base] >= 0)
                       + cb * (self.base_offO[base] >= 0) + 8 * (self.base_offMin[base] >= 0)
                       + 8 * (self.base_offMax[base] >= 0))
            b += 2 * row + n if snap[base] else row  # (snapshot: previous row read, flags)
        for m in range(len(self.mm_base)):
            b += nser[self.mm_base[m]] * (2 * 8 + 2 * 8)
        for q in range(len(self.q_base)):
            b += nser[self.q_base[q]] * (2 * (8 + cb) + 2 * 8 + 8)
        if snap_records is None:
            snap_records = SNAPSHOT_SHARE * float(self.snap_nent.sum())
        b += 16 * self.members_reread(snap_records)
        b += 24 * records + 52 * snap_records
        b += out_itemsize * len(self.rollup) * self.n_regions
        return int(round(b))

    def members_reread(self, snap_records: float) -> float:
        """Expected snapshot members aggregated again in a cycle with ``snap_records`` snapshot
        records (:meth:`cycle_bytes`: ``sum_s m_s (1 - (1 - q) ** m_s)``, ``q = snap_records /
        snap_size``)."""
        if len(self.mem_ser) == 0 or self.snap_size == 0:
            return 0.0
        q = min(1.0, max(0.0, float(snap_records)) / float(self.snap_size))
        m = np.diff(self.ser_mptr).astype(np.float64)
        return float((m * -np.expm1(m * np.log1p(-q))).sum()) if q < 1.0 else float(m.sum())


def _emitters(city, feed: dict):
    """(kind string per emitter, region position per emitter, extra table) of a feed's emitter."""
    em = feed.get("emitter")
    regions = city.regions.index
    if em == "sensor":
        t = city.sensors
    elif em == "site":
        t = city.sites
    elif em == "enterprise":
        t = city.enterprises
    else:
        n = len(regions)
        return None, np.arange(n, dtype=np.int64), None
    pos = regions.get_indexer(t["region"]).astype(np.int64)
    kinds = t["kind"].to_numpy().astype(str) if "kind" in t else None
    return kinds, pos, t


def compile_plan(city, catalog, cycle: str = "15min") -> Plan:
    """Compile ``catalog`` for ``city`` at cycle length ``cycle``.

    Parameters
    ----------
    city : engine.City
    catalog : engine.Catalog
    cycle : str
        Cycle length (``"15min"``); every window must be a whole number of cycles.

    Returns
    -------
    Plan

    Examples
    --------
    >>> from engine import City, Catalog
    >>> plan = compile_plan(City.synthetic(seed=1, neighbourhoods=20, streets=2, population=50_000), Catalog.load())
    >>> len(plan.indicator_ids), plan.n_regions
    (2926, 20)
    """
    cns = cycle_ns(cycle)
    cmin = window_minutes(cycle)
    nreg = city.n_regions
    feed_ids = list(catalog.feeds)
    fpos = {f: i for i, f in enumerate(feed_ids)}
    inds = list(catalog.indicators)
    ids = [i["id"] for i in inds]
    row_of = {iid: r for r, iid in enumerate(ids)}

    def cycles_of(window, what):
        m = window_minutes(window)
        if m % cmin:
            raise ValueError(f"{what}: window {window!r} is not a whole number of {cycle} cycles")
        return m // cmin

    feed_kind = np.array([KINDS[catalog.feeds[f]["kind"]] for f in feed_ids], dtype=np.int8)
    late = []
    for f in feed_ids:
        lm = window_minutes(catalog.feeds[f].get("lateness", cycle))
        late.append(-(-lm // cmin))
    feed_lateness = np.array(late, dtype=np.int64)

    # ------------------------------------------------------------ subjects (bases)
    base_keys: dict = {}
    base_info: list[dict] = []

    def base_for(feed: str, flt: dict) -> int:
        fd = catalog.feeds[feed]
        kind = fd["kind"]
        if kind == "events":
            key = (feed, _as_set(flt.get("category")), _as_set(flt.get("channel")))
        elif kind == "readings":
            key = (feed, str(flt.get("metric")), _as_set(flt.get("kind")))
        else:
            key = (feed, str(flt.get("field")), _as_set(flt.get("kind")), _as_set(flt.get("sector")),
                   _as_set(flt.get("size")))
        if key not in base_keys:
            base_keys[key] = len(base_info)
            base_info.append(dict(key=key, feed=feed, kind=KINDS[kind], W=set(), Wm=set(), Wq=set(),
                                  mm=set(), S=False, O=False, MIN=False, MAX=False, P=False))
        return base_keys[key]

    rows = []  # (row, code, base, W, norm name, q, mult, share_all_base)
    for r, ind in enumerate(inds):
        agg = ind["aggregation"]
        if agg == "derived":
            continue
        feed = ind["feed"]
        kind = catalog.feeds[feed]["kind"]
        W = cycles_of(ind["window"], ind["id"])
        b = base_for(feed, ind["filter"] or {})
        info = base_info[b]
        allb = -1
        mult = 1.0
        if kind == "events":
            if agg == "count":
                code = C_COUNT
            elif agg == "sum":
                code, info["S"] = C_EVSUM, True
            elif agg == "share":
                code, mult = C_EVSHARE, 100.0
                allb = base_for(feed, {})
                base_info[allb]["W"].add(W)
            else:
                raise ValueError(f"{ind['id']}: aggregation {agg!r} is not defined for events")
            info["W"].add(W)
        elif kind == "readings":
            if agg in ("sum", "mean"):
                code = C_RDSUM if agg == "sum" else C_MEAN
                info["S"] = True
                info["W"].add(W)
            elif agg in ("min", "max"):
                code = C_MIN if agg == "min" else C_MAX
                info[agg.upper()] = True
                info["Wm"].add(W)
                info["mm"].add((W, int(agg == "max")))
            elif agg == "quantile":
                code = C_QUANT
                info["S"] = True
                info["Wq"].add(W)
            else:
                raise ValueError(f"{ind['id']}: aggregation {agg!r} is not defined for readings")
        else:
            if agg == "sum":
                code, info["S"], info["P"] = C_SNSUM, True, True
                info["W"].add(W)
            elif agg == "mean":
                code, info["S"] = C_MEAN, True
                info["W"].add(W)
            elif agg == "share":
                code, info["O"], mult = C_SNSHARE, True, 100.0
                info["W"].add(W)
            elif agg in ("min", "max"):
                code = C_MIN if agg == "min" else C_MAX
                info[agg.upper()] = True
                info["Wm"].add(W)
                info["mm"].add((W, int(agg == "max")))
            else:
                raise ValueError(f"{ind['id']}: aggregation {agg!r} is not defined for snapshots")
        q = float(ind.get("q") or 0.0)
        if code == C_QUANT and not (0.0 <= q <= 1.0):
            raise ValueError(f"{ind['id']}: quantile q must be in [0, 1], got {ind.get('q')!r}")
        rows.append((r, code, b, W, ind["normalisation"], q, mult, allb))

    # ------------------------------------------------------------ series per base
    B = len(base_info)
    lookup = np.full((B, nreg), -1, dtype=np.int32)
    ser0 = np.zeros(B + 1, dtype=np.int64)
    ser_region_parts = []
    emit_cache = {}
    base_members = []  # for snapshots: (state cell list, region list)
    for b, info in enumerate(base_info):
        feed = info["feed"]
        fd = catalog.feeds[feed]
        if feed not in emit_cache:
            emit_cache[feed] = _emitters(city, fd)
        ekinds, epos, table = emit_cache[feed]
        key = info["key"]
        if info["kind"] == KIND_EVENTS or fd.get("emitter") == "region":
            mask = np.ones(len(epos), dtype=bool)
        else:
            allowed = key[2] if key[2] is not None else frozenset(fd.get("emitter_kinds") or [])
            if ekinds is not None and allowed:
                mask = np.isin(ekinds, list(allowed))
            else:
                mask = np.ones(len(epos), dtype=bool)
            if info["kind"] == KIND_SNAPSHOTS and table is not None:
                if key[3] is not None and "sector" in table:
                    mask &= table["sector"].astype(str).isin(key[3]).to_numpy()
                if key[4] is not None and "size" in table:
                    mask &= table["size"].astype(str).isin(key[4]).to_numpy()
        mask &= epos >= 0
        if info["kind"] == KIND_EVENTS:
            regs = np.arange(nreg, dtype=np.int64)
        else:
            regs = np.unique(epos[mask])
        ser0[b + 1] = ser0[b] + len(regs)
        lookup[b, regs] = (ser0[b] + np.arange(len(regs))).astype(np.int32)
        ser_region_parts.append(regs.astype(np.int32))
        base_members.append(np.flatnonzero(mask))
    ser_region = np.concatenate(ser_region_parts) if ser_region_parts else np.zeros(0, np.int32)
    nser = (ser0[1:] - ser0[:-1]).astype(np.int64)

    # ------------------------------------------------------------ rings
    base_R = np.ones(B, dtype=np.int64)
    base_Rm = np.zeros(B, dtype=np.int64)
    offs = {k: np.full(B, -1, dtype=np.int64) for k in ("S", "N", "O", "MIN", "MAX")}
    sizes = {k: 0 for k in offs}
    for b, info in enumerate(base_info):
        base_R[b] = max(list(info["W"]) + list(info["Wq"]) + [1])
        if info["MIN"] or info["MAX"]:
            # one more than the longest window: the bucket leaving a window is still readable when
            # the running extremes are updated (see engine.core.kernels)
            base_Rm[b] = max(info["Wm"]) + 1
        need = {"S": info["S"], "N": True, "O": info["O"], "MIN": info["MIN"], "MAX": info["MAX"]}
        for st, on in need.items():
            if on:
                offs[st][b] = sizes[st]
                sizes[st] += int((base_Rm[b] if st in ("MIN", "MAX") else base_R[b]) * nser[b])

    # ------------------------------------------------------------ blocks
    blk_base, blk_W = [], []
    boffs = {k: [] for k in ("S", "N", "O", "P")}
    wsizes = {k: 0 for k in boffs}
    base_blk_ptr = np.zeros(B + 1, dtype=np.int64)
    blk_index = {}
    for b, info in enumerate(base_info):
        for W in sorted(info["W"]):
            blk_index[(b, W)] = len(blk_base)
            blk_base.append(b)
            blk_W.append(W)
            need = {"S": info["S"], "N": True, "O": info["O"], "P": info["P"]}
            for st, on in need.items():
                if on:
                    boffs[st].append(wsizes[st])
                    wsizes[st] += int(nser[b])
                else:
                    boffs[st].append(-1)
        base_blk_ptr[b + 1] = len(blk_base)

    # ------------------------------------------------------------ running extremes, sorted windows
    mm_base, mm_W, mm_stat, mm_off = [], [], [], []
    base_mm_ptr = np.zeros(B + 1, dtype=np.int64)
    mm_index = {}
    mm_size = 0
    q_base, q_W, q_off, q_noff = [], [], [], []
    base_q_ptr = np.zeros(B + 1, dtype=np.int64)
    q_index = {}
    q_size = q_nsize = 0
    for b, info in enumerate(base_info):
        for W, stat in sorted(info["mm"]):
            mm_index[(b, W, stat)] = len(mm_base)
            mm_base.append(b)
            mm_W.append(W)
            mm_stat.append(stat)
            mm_off.append(mm_size)
            mm_size += int(nser[b])
        base_mm_ptr[b + 1] = len(mm_base)
        for W in sorted(info["Wq"]):
            q_index[(b, W)] = len(q_base)
            q_base.append(b)
            q_W.append(W)
            q_off.append(q_size)
            q_noff.append(q_nsize)
            q_size += int(nser[b]) * W
            q_nsize += int(nser[b])
        base_q_ptr[b + 1] = len(q_base)

    # ------------------------------------------------------------ record -> bases maps
    nf = len(feed_ids)
    key_off = np.zeros(nf, dtype=np.int64)
    key_ncat = np.zeros(nf, dtype=np.int64)
    key_nsub = np.zeros(nf, dtype=np.int64)
    total = 0
    for f, fid in enumerate(feed_ids):
        fd = catalog.feeds[fid]
        if fd["kind"] == "events":
            ncat, nsub = len(fd.get("categories") or {}), len(fd.get("channels") or {}) + 1
        elif fd["kind"] == "readings":
            ncat, nsub = len(fd.get("metrics") or {}), len(fd.get("emitter_kinds") or []) + 1
        else:
            ncat, nsub = 0, 0
        key_off[f], key_ncat[f], key_nsub[f] = total, ncat, nsub
        total += ncat * nsub
    key_bases: list[list[int]] = [[] for _ in range(total)]
    for b, info in enumerate(base_info):
        fid = info["feed"]
        f = fpos[fid]
        fd = catalog.feeds[fid]
        key = info["key"]
        if info["kind"] == KIND_EVENTS:
            cats = list(fd.get("categories") or {})
            chans = list(fd.get("channels") or {})
            for c, cid in enumerate(cats):
                if key[1] is not None and cid not in key[1]:
                    continue
                for h in range(-1, len(chans)):
                    if key[2] is not None and (h < 0 or chans[h] not in key[2]):
                        continue
                    key_bases[key_off[f] + c * key_nsub[f] + h + 1].append(b)
        elif info["kind"] == KIND_READINGS:
            metrics = list(fd.get("metrics") or {})
            if key[1] not in metrics:
                raise ValueError(f"feed {fid!r} has no metric {key[1]!r}; expected one of {metrics}")
            m = metrics.index(key[1])
            kinds = list(fd.get("emitter_kinds") or [])
            for h in range(-1, len(kinds)):
                if key[2] is not None and (h < 0 or kinds[h] not in key[2]):
                    continue
                key_bases[key_off[f] + m * key_nsub[f] + h + 1].append(b)
    map_ptr = np.zeros(total + 1, dtype=np.int64)
    map_ptr[1:] = np.cumsum([len(k) for k in key_bases])
    map_base = np.array([b for k in key_bases for b in k], dtype=np.int32)

    # ------------------------------------------------------------ snapshot state and members
    snap_off = np.full(nf, -1, dtype=np.int64)
    snap_nent = np.zeros(nf, dtype=np.int64)
    ssize = 0
    for f, fid in enumerate(feed_ids):
        fd = catalog.feeds[fid]
        if fd["kind"] != "snapshots":
            continue
        ne = len(emit_cache[fid][1]) if fid in emit_cache else len(_emitters(city, fd)[1])
        snap_off[f], snap_nent[f] = ssize, ne
        ssize += len(fd.get("fields") or {}) * ne
    mem_ptr = np.zeros(B + 1, dtype=np.int64)
    cells, msers = [], []
    for b, info in enumerate(base_info):
        if info["kind"] == KIND_SNAPSHOTS:
            fid = info["feed"]
            f = fpos[fid]
            fields = list(catalog.feeds[fid].get("fields") or {})
            if info["key"][1] not in fields:
                raise ValueError(f"feed {fid!r} has no field {info['key'][1]!r}; expected one of {fields}")
            fi = fields.index(info["key"][1])
            ents = base_members[b]
            epos = emit_cache[fid][1]
            cells.append(snap_off[f] + fi * snap_nent[f] + ents)
            msers.append(lookup[b, epos[ents]].astype(np.int32))
            mem_ptr[b + 1] = mem_ptr[b] + len(ents)
        else:
            mem_ptr[b + 1] = mem_ptr[b]
    mem_cell = np.concatenate(cells).astype(np.int64) if cells else np.zeros(0, np.int64)
    mem_ser = np.concatenate(msers).astype(np.int32) if msers else np.zeros(0, np.int32)
    # most snapshot entities of one series: bounds a snapshot base's per-cycle count
    max_members = int(np.bincount(mem_ser).max()) if len(mem_ser) else 0
    # members grouped by series (series numbers grow with the base, so each base's members stay
    # in mem_ptr's range; the sort is stable, so each series adds its entities in the same order
    # as before and its sums are unchanged): series s aggregates members ser_mptr[s] ..
    # ser_mptr[s + 1] - 1, and the cells whose value changed re-aggregate only their series
    n_ser = int(ser0[-1]) if len(ser0) else 0
    if len(mem_ser) and int(mem_ser.min()) < 0:
        raise ValueError("a snapshot member without a series (internal: lookup of its region is -1)")
    o = np.argsort(mem_ser, kind="stable")
    mem_cell, mem_ser = mem_cell[o], mem_ser[o]
    ser_mptr = np.zeros(n_ser + 1, dtype=np.int64)
    ser_mptr[1:] = np.cumsum(np.bincount(mem_ser, minlength=n_ser))
    cell_mem = np.argsort(mem_cell, kind="stable").astype(np.int64)  # cell -> its members (CSR)
    cell_mptr = np.zeros(ssize + 1, dtype=np.int64)
    cell_mptr[1:] = np.cumsum(np.bincount(mem_cell, minlength=ssize)) if len(mem_cell) else 0

    # ------------------------------------------------------------ normalisation rows
    pop = city.regions["population"].to_numpy(np.float64)
    area = city.regions["area_km2"].to_numpy(np.float64)
    norm_rows: list[np.ndarray] = []
    norm_keys: dict = {}

    def norm_row(name, ind) -> int:
        if name == "none":
            return -1
        fd = catalog.feeds[ind["feed"]]
        flt = ind["filter"] or {}
        if name == "per_10k_residents":
            key = (name,)
        elif name == "per_km2":
            key = (name,)
        elif name == "per_site":
            kinds = _as_set(flt.get("kind"))
            em = fd.get("emitter")
            key = (name, em if em in ("sensor", "site") else "site",
                   kinds or (frozenset(fd.get("emitter_kinds") or []) if em in ("sensor", "site") else None))
        elif name == "per_enterprise":
            key = (name, _as_set(flt.get("sector")), _as_set(flt.get("size")))
        else:
            raise ValueError(f"{ind['id']}: unknown normalisation {name!r}; expected one of {('none',) + NORMS}")
        if key in norm_keys:
            return norm_keys[key]
        if name == "per_10k_residents":
            row = pop.copy()  # value = 1e4 * num / residents (the 1e4 is the indicator's mult)
        elif name == "per_km2":
            row = area.copy()
        elif name == "per_site":
            t = city.sensors if key[1] == "sensor" else city.sites
            m = np.ones(len(t), dtype=bool) if key[2] is None else t["kind"].astype(str).isin(key[2]).to_numpy()
            pos = city.regions.index.get_indexer(t["region"][m])
            row = np.bincount(pos[pos >= 0], minlength=nreg).astype(np.float64)
        else:
            t = city.enterprises
            m = np.ones(len(t), dtype=bool)
            if key[1] is not None:
                m &= t["sector"].astype(str).isin(key[1]).to_numpy()
            if key[2] is not None:
                m &= t["size"].astype(str).isin(key[2]).to_numpy()
            pos = city.regions.index.get_indexer(t["region"][m])
            row = np.bincount(pos[pos >= 0], minlength=nreg).astype(np.float64)
        norm_keys[key] = len(norm_rows)
        norm_rows.append(row)
        return norm_keys[key]

    n_nd = len(rows)
    ind_row = np.zeros(n_nd, np.int64)
    ind_code = np.zeros(n_nd, np.int8)
    ind_base = np.zeros(n_nd, np.int64)
    ind_blk = np.full(n_nd, -1, np.int64)
    ind_blk2 = np.full(n_nd, -1, np.int64)
    ind_W = np.zeros(n_nd, np.int64)
    ind_norm = np.full(n_nd, -1, np.int64)
    ind_q = np.zeros(n_nd, np.float64)
    ind_mult = np.ones(n_nd, np.float64)
    for j, (r, code, b, W, nname, q, mult, allb) in enumerate(rows):
        ind_row[j], ind_code[j], ind_base[j], ind_W[j], ind_q[j], ind_mult[j] = r, code, b, W, q, mult
        if code in (C_MIN, C_MAX):
            ind_blk[j] = mm_index[(b, W, int(code == C_MAX))]
        elif code == C_QUANT:
            ind_blk[j] = q_index[(b, W)]
        else:
            ind_blk[j] = blk_index[(b, W)]
        if allb >= 0:
            ind_blk2[j] = blk_index[(allb, W)]
        ind_norm[j] = norm_row(nname, inds[r])
        if nname == "per_10k_residents":
            ind_mult[j] = mult * 10_000.0
    norm = np.vstack(norm_rows) if norm_rows else np.zeros((0, nreg))

    rollup = np.array([ROLLUP_CODES[i["rollup"]] for i in inds], dtype=np.int8)
    derived_ids = [i["id"] for i in inds if i["aggregation"] == "derived"]

    h = hashlib.sha256()
    h.update(f"state-layout-{STATE_LAYOUT}".encode())
    h.update(str(cns).encode())
    h.update("\n".join(ids).encode())
    h.update(repr([b["key"] for b in base_info]).encode())
    h.update(str(nreg).encode())
    try:
        h.update(city.fingerprint().encode())
    except Exception:  # pragma: no cover - a city without a fingerprint
        pass

    return Plan(
        cycle_ns=cns, n_regions=nreg, feed_ids=feed_ids, feed_kind=feed_kind,
        feed_lateness_cycles=feed_lateness, indicator_ids=ids,
        base_kind=np.array([b["kind"] for b in base_info], np.int8),
        base_feed=np.array([fpos[b["feed"]] for b in base_info], np.int64),
        base_ser0=ser0, ser_region=ser_region, lookup=lookup, base_R=base_R, base_Rm=base_Rm,
        base_offS=offs["S"], base_offN=offs["N"], base_offO=offs["O"], base_offMin=offs["MIN"],
        base_offMax=offs["MAX"], ring_sizes=sizes,
        base_offRow=np.concatenate([[0], np.cumsum(base_R)[:-1]]).astype(np.int64) if B else np.zeros(0, np.int64),
        base_blk_ptr=base_blk_ptr, blk_base=np.array(blk_base, np.int64), blk_W=np.array(blk_W, np.int64),
        blk_offS=np.array(boffs["S"], np.int64), blk_offN=np.array(boffs["N"], np.int64),
        blk_offO=np.array(boffs["O"], np.int64), blk_offP=np.array(boffs["P"], np.int64),
        window_sizes=wsizes,
        base_mm_ptr=base_mm_ptr, mm_base=np.array(mm_base, np.int64), mm_W=np.array(mm_W, np.int64),
        mm_stat=np.array(mm_stat, np.int8), mm_off=np.array(mm_off, np.int64), mm_size=int(mm_size),
        base_q_ptr=base_q_ptr, q_base=np.array(q_base, np.int64), q_W=np.array(q_W, np.int64),
        q_off=np.array(q_off, np.int64), q_noff=np.array(q_noff, np.int64), q_size=int(q_size),
        q_nsize=int(q_nsize), max_members=max_members, key_off=key_off, key_ncat=key_ncat, key_nsub=key_nsub,
        map_ptr=map_ptr, map_base=map_base, snap_off=snap_off, snap_nent=snap_nent, snap_size=int(ssize),
        mem_ptr=mem_ptr, mem_cell=mem_cell, mem_ser=mem_ser, ser_mptr=ser_mptr, cell_mptr=cell_mptr,
        cell_mem=cell_mem,
        ind_row=ind_row, ind_code=ind_code, ind_base=ind_base, ind_blk=ind_blk, ind_blk2=ind_blk2,
        ind_W=ind_W, ind_norm=ind_norm, ind_q=ind_q, ind_mult=ind_mult, norm=norm, rollup=rollup,
        derived_ids=derived_ids, fingerprint=h.hexdigest()[:16],
        meta={"bases": [b["key"] for b in base_info]},
    )
