"""engine.core kernels against slow references: sorted windows, running extremes, window sums,
uint16 count rings (widening), replay chunks and the parallel drivers."""

from __future__ import annotations

import numpy as np
import pytest

from engine import Catalog, City
from engine.core import Engine, Records, State
from engine.core import engine as core_engine
from engine.core import kernels as K

from core_reference import base_shares_reference, random_steps, reference

C = 900 * 10**9
K0 = 1580515200000000000 // C


@pytest.fixture(scope="module")
def catalog():
    return Catalog.load()


@pytest.fixture(scope="module")
def city():
    return City.synthetic(seed=3, neighbourhoods=6, streets=2, population=30_000)


def test_sorted_window_helpers_equal_sorted_list():
    rng = np.random.default_rng(0)
    W = 24
    x = np.zeros(W + 3)
    o = 3  # window at offset 3 of a longer buffer (the kernels index from an offset)
    ref: list[float] = []
    n = 0
    for step in range(3000):
        if ref and (len(ref) == W or rng.random() < 0.45):
            v = ref[int(rng.integers(len(ref)))] if rng.random() < 0.9 else 1e9  # absent values: no-op
            n = K.sorted_delete(x, o, n, v)
            if v in ref:
                ref.remove(v)
        else:
            v = float(rng.integers(0, 12)) / 4 if rng.random() < 0.95 else np.nan
            n = K.sorted_insert(x, o, n, v)
            ref.append(v)
        want = np.sort(np.array(ref, dtype=float))  # numpy order: NaN last
        assert n == len(ref)
        assert np.array_equal(x[o:o + n], want, equal_nan=True)
        if n and not np.isnan(want).any():
            q = float(rng.random())
            assert K.quantile_sorted(x, o, n, q) == np.quantile(want, q)
    # a NaN is deleted as a NaN, other values never match NaN
    n = K.sorted_insert(x, 0, 0, np.nan)
    assert K.sorted_delete(x, 0, n, 1.0) == 1 and K.sorted_delete(x, 0, n, np.nan) == 0


def _brute_state(eng: Engine) -> dict:
    """Window sums, running extremes and sorted windows recomputed from the rings alone: each
    base's rings seen as (slots, series) matrices, each window the rows of its last ``W`` buckets
    (``k, k - 1, .. k - W + 1``, slots wrapped) summed, counted, or reduced with numpy."""
    p, s = eng.plan, eng.state
    k = s.last_cycle
    nser = np.diff(p.base_ser0)
    out = {"wN": np.zeros_like(s.wN), "wS": np.zeros_like(s.wS), "wO": np.zeros_like(s.wO),
           "wP": np.zeros_like(s.wP), "mmRun": np.zeros_like(s.mmRun), "qv": [], "rowc_zero_rows_are_zero": True}
    for b in range(p.n_bases):
        n, R = int(nser[b]), int(p.base_R[b])

        def ring(arr, off, slots):  # (slots, series) rows of a base's ring
            return arr[off:off + slots * n].reshape(slots, n)

        N = ring(s.ringN, p.base_offN[b], R).astype(np.int64)
        S = ring(s.ringS, p.base_offS[b], R) if p.base_offS[b] >= 0 else None
        rowc = s.rowc[p.base_offRow[b]:p.base_offRow[b] + R]
        if ((rowc == 0) & N.any(axis=1)).any():
            out["rowc_zero_rows_are_zero"] = False
        for bl in range(p.base_blk_ptr[b], p.base_blk_ptr[b + 1]):
            win = (k - np.arange(p.blk_W[bl])) % R  # the window's slots
            cols = np.arange(n)
            out["wN"][p.blk_offN[bl] + cols] = N[win].sum(axis=0)
            if p.blk_offS[bl] >= 0:
                out["wS"][p.blk_offS[bl] + cols] = S[win].sum(axis=0)
            if p.blk_offO[bl] >= 0:
                out["wO"][p.blk_offO[bl] + cols] = ring(s.ringO, p.base_offO[b], R)[win].astype(np.int64).sum(axis=0)
            if p.blk_offP[bl] >= 0:
                out["wP"][p.blk_offP[bl] + cols] = (N[win] > 0).sum(axis=0)
        for m in range(p.base_mm_ptr[b], p.base_mm_ptr[b + 1]):
            W, Rm = p.mm_W[m], p.base_Rm[b]
            arr, off = (s.ringMax, p.base_offMax[b]) if p.mm_stat[m] else (s.ringMin, p.base_offMin[b])
            rows = ring(arr, off, Rm)[(k - np.arange(W)) % Rm]
            out["mmRun"][p.mm_off[m] + np.arange(n)] = rows.max(0) if p.mm_stat[m] else rows.min(0)
        for qb in range(p.base_q_ptr[b], p.base_q_ptr[b + 1]):
            win = (k - np.arange(p.q_W[qb])) % R
            cnt, tot = N[win], S[win]
            for i in range(n):
                has = cnt[:, i] > 0  # the means of the buckets with data
                out["qv"].append((qb, i, np.sort(tot[has, i] / cnt[has, i])))
    return out


def _check_state(eng: Engine) -> None:
    p, s = eng.plan, eng.state
    ref = _brute_state(eng)
    assert ref["rowc_zero_rows_are_zero"]
    assert np.array_equal(s.wN, ref["wN"])
    assert np.array_equal(s.wO, ref["wO"])
    assert np.array_equal(s.wP, ref["wP"])
    assert np.allclose(s.wS, ref["wS"], rtol=1e-12, atol=1e-9)
    assert np.array_equal(s.mmRun, ref["mmRun"])
    for qb, i, want in ref["qv"]:
        W = p.q_W[qb]
        n = s.qn[p.q_noff[qb] + i]
        o = p.q_off[qb] + i * W
        assert np.array_equal(s.qv[o:o + n], want, equal_nan=True), (qb, i)


def test_incremental_state_equals_rings_over_sliding_windows(city, catalog):
    """Over 110 cycles (every window of 1 h and 24 h slides; late records, NaNs, empty cycles) the
    running sums, running extremes and sorted windows equal a recomputation from the rings."""
    eng = Engine(city, catalog, dtype="float64")
    steps = random_steps(city, catalog, K0, 110, seed=11, n_ev=8, n_rd=30, n_sn=6)
    for i, (k, rec) in enumerate(steps):
        if i % 7 == 3:
            rec = Records.build(rec.feed_ids)  # an empty cycle now and then
        eng.step(rec, at=k * C)
        if i in (5, 60, 97, 109):
            _check_state(eng)


def test_min_max_quantile_equal_reference_after_windows_slide(city, catalog):
    """min / max / quantile indicators (ring-free now) vs the pandas reference after 100 cycles."""
    rows = {r for r, ind in enumerate(catalog.indicators) if ind["aggregation"] in ("min", "max", "quantile")}
    rng = np.random.default_rng(5)
    rows = set(rng.choice(sorted(rows), size=min(40, len(rows)), replace=False).tolist())
    steps = random_steps(city, catalog, K0, 100, seed=12, n_ev=0, n_rd=40, n_sn=6)
    ref = reference(city, catalog, steps, rows=rows)
    eng = Engine(city, catalog, dtype="float64")
    sel = np.array(sorted(rows))
    for t, ((k, rec), (V, _, _)) in enumerate(zip(steps, ref)):
        got = eng.step(rec, at=k * C).value.values
        if t in (3, 50, 96, 97, 98, 99):
            assert np.allclose(got[sel], V[sel], rtol=1e-12, atol=0, equal_nan=True), t


def test_count_rings_widen_before_they_could_overflow(city, catalog, tmp_path):
    """uint16 count rings: a cycle that could push a bucket past 65,535 widens them to int32 first;
    values equal an engine that never narrowed them; the widened state saves and loads exactly."""
    steps = random_steps(city, catalog, K0, 6, seed=13)
    a, b = Engine(city, catalog), Engine(city, catalog)
    assert a.state.ringN.dtype == np.uint16
    b.state.widen()
    for i, (k, rec) in enumerate(steps):
        if i == 3:
            a.state.cmax[0] = 65_530  # pretend a bucket is nearly full
        va = a.step(rec, at=k * C).value.values
        vb = b.step(rec, at=k * C).value.values
        assert np.array_equal(va, vb, equal_nan=True)
    assert a.state.ringN.dtype == np.int32 and a.state.ringO.dtype == np.int32
    a.save_state(tmp_path / "wide.npz")
    c = Engine(city, catalog)
    c.load_state(tmp_path / "wide.npz")
    assert c.state.ringN.dtype == np.int32 and c.state.equals(a.state)


@pytest.mark.parametrize("parallel", ["0", "1", "shares", "shares-records"])
def test_replay_in_small_chunks_and_parallel_drivers_equal_steps(city, catalog, monkeypatch, parallel):
    # shares-records: the shares balanced by the records of the first call that bins any
    # (Engine._record_weights; a call without records before it keeps the plan's shares)
    if parallel == "shares-records":
        parallel = "shares"
        monkeypatch.setattr(core_engine, "SHARE_RECORDS_MIN", 1)
    monkeypatch.setenv("CITYVITALS_CORE_PARALLEL", parallel)
    steps = random_steps(city, catalog, K0, 7, seed=14)
    allrec = Records.build(steps[0][1].feed_ids,
                           events={n: np.concatenate([getattr(r, n) for _, r in steps]) for n in
                                   ("ev_time", "ev_feed", "ev_category", "ev_channel", "ev_region", "ev_value")},
                           readings={n: np.concatenate([getattr(r, n) for _, r in steps]) for n in
                                     ("rd_time", "rd_feed", "rd_metric", "rd_emitter", "rd_kind", "rd_region",
                                      "rd_value")},
                           snapshots={n: np.concatenate([getattr(r, n) for _, r in steps]) for n in
                                      ("sn_time", "sn_feed", "sn_field", "sn_entity", "sn_kind", "sn_region",
                                       "sn_value")})
    split = []
    for i, (k, _) in enumerate(steps):
        def sel(t):
            bk = -((-t) // C)
            return (bk <= k) if i == 0 else (bk == k)
        split.append((k, allrec.select(sel(allrec.ev_time), sel(allrec.rd_time), sel(allrec.sn_time))))
    monkeypatch.setattr(core_engine, "REPLAY_CHUNK_BYTES", 1)  # one cycle per kernel call
    monkeypatch.setattr(core_engine, "REPLAY_CHUNK_CYCLES", 1)  # (the finest level's limit)
    e1 = Engine(city, catalog)
    r1 = e1.replay(allrec, K0 * C, (K0 + 3) * C).value.values  # two replays continuing each other
    r2 = e1.replay(allrec, (K0 + 4) * C, (K0 + 6) * C).value.values
    monkeypatch.setattr(core_engine, "REPLAY_CHUNK_BYTES", 2**30)  # all in one call
    monkeypatch.setattr(core_engine, "REPLAY_CHUNK_CYCLES", 100_000)
    r3 = Engine(city, catalog).replay(allrec, K0 * C, (K0 + 6) * C).value.values
    s = Engine(city, catalog)
    stepped = np.stack([s.step(rec, at=k * C).value.values for k, rec in split])
    assert np.array_equal(np.concatenate([r1, r2]), stepped, equal_nan=True)
    assert np.array_equal(r3, stepped, equal_nan=True)
    assert e1.state.equals(s.state)
    st = Engine(city, catalog).replay(allrec, K0 * C, (K0 + 6) * C, level="street").value.values
    s2 = Engine(city, catalog)
    ss = np.stack([s2.step(rec, at=k * C, level="street").value.values for k, rec in split])
    assert np.array_equal(st, ss, equal_nan=True)


@pytest.mark.parametrize("records", [False, True])
def test_base_shares_partition_bases_and_rows(city, catalog, records):
    """The shares driver's split: every base, indicator row and derived row in exactly one share,
    a row with its base and its share denominator's base, a derived row with every row it reads
    (its program the full program's instructions, in order), and two non-empty shares here (so
    the driver test above runs two threads' worth of shares); with the plan's weights, and with
    the records' (``Engine._record_weights``: on few records, each (record, base) pair counted
    once, equal to a count from the map)."""
    eng = Engine(city, catalog)
    p = eng.plan
    recw = None
    if records:
        steps = random_steps(city, catalog, K0, 3, seed=8)
        prep = [eng._prepare(r) for _, r in steps]
        grp = {g: {c: np.concatenate([d[g][c] for d in prep]) for c in ("bucket", "key", "region", "value")}
               for g in ("ev", "rd")}
        for g in grp.values():
            g["off"] = np.array([0, len(g["key"])], np.int64)
        tup = [(g["bucket"], g["key"], g["region"], g["value"], g["off"], True) for g in grp.values()]
        assert eng._record_weights(*tup) is None  # fewer than SHARE_RECORDS_MIN
        core_engine.SHARE_RECORDS_MIN, keep = 1, core_engine.SHARE_RECORDS_MIN
        try:
            recw = eng._record_weights(*tup)
        finally:
            core_engine.SHARE_RECORDS_MIN = keep
        want = np.zeros(p.n_bases)
        for g in grp.values():
            for kk in g["key"]:
                for m in range(p.map_ptr[kk], p.map_ptr[kk + 1]):
                    want[p.map_base[m]] += 1
        assert want.sum() > 0 and np.array_equal(recw, want)
    shares = eng._base_shares(2, recw)
    assert len(shares) == 2
    owner_b = np.full(p.n_bases, -1)
    owner_r = np.full(len(p.ind_row), -1)
    ops, arg, consts, ptr, out_row, d_pos = eng._DP
    owner_d = np.full(len(out_row), -1)
    for j, (bases, rows, mask, dp) in enumerate(shares):
        assert (owner_b[bases] == -1).all() and (owner_r[rows] == -1).all()
        owner_b[bases] = j
        owner_r[rows] = j
        assert np.array_equal(np.flatnonzero(mask), bases)
        # the share's derived program: whole rows of the full program, in its order
        where = np.flatnonzero(np.isin(out_row, dp[4]))
        assert (owner_d[where] == -1).all() and np.array_equal(out_row[where], dp[4])
        owner_d[where] = j
        assert np.array_equal(d_pos[where], dp[5]) and dp[2] is consts
        for i, w in enumerate(where):
            a, b = ptr[w], ptr[w + 1]
            assert np.array_equal(ops[a:b], dp[0][dp[3][i]:dp[3][i + 1]])
            assert np.array_equal(arg[a:b], dp[1][dp[3][i]:dp[3][i + 1]])
    assert (owner_b >= 0).all() and (owner_r >= 0).all() and (owner_d >= 0).all()
    assert np.array_equal(owner_r, owner_b[p.ind_base])
    two = p.ind_blk2 >= 0
    assert np.array_equal(owner_b[p.blk_base[p.ind_blk2[two]]], owner_r[two])
    # a derived row is in the share of every row its formula reads (derived ones: that row's share)
    vrow = np.full(len(p.indicator_ids), -1)
    vrow[p.ind_row] = np.arange(len(p.ind_row))
    share_of_out = {int(r): int(owner_d[w]) for w, r in enumerate(out_row)}
    crow = eng.derived.compact_rows
    for w in range(len(out_row)):
        for pc in range(ptr[w], ptr[w + 1]):
            if ops[pc] == 0:
                r = int(crow[arg[pc]])
                got = owner_r[vrow[r]] if vrow[r] >= 0 else share_of_out[r]
                assert got == owner_d[w]


def test_base_shares_equal_the_reference(city, catalog):
    """``Engine._base_shares`` (Python lists in its loops) equal to the slow reference's shares
    (``core_reference.base_shares_reference``): the same bases, rows, masks and derived programs,
    for 1 to 5 parts, with the plan's weights and with random record weights (zeros included)."""
    eng = Engine(city, catalog)
    rng = np.random.default_rng(3)
    for parts in (1, 2, 3, 5):
        for recw in (None, rng.random(eng.plan.n_bases) * (rng.random(eng.plan.n_bases) < 0.7)):
            eng._bshares_for = None
            got, want = eng._base_shares(parts, recw), base_shares_reference(eng, parts, recw)
            assert len(got) == len(want) >= 1
            for g, w in zip(got, want):
                for x, y in zip(g[:3] + g[3], w[:3] + w[3]):
                    assert x is y or (x.dtype == y.dtype and np.array_equal(x, y)), (parts, recw is None)
    assert eng._sub_program(np.zeros(0, np.int64))[3].tolist() == [0]


def test_pooled_record_buffers_give_the_same_replays(city, catalog, monkeypatch):
    """Replays whose buckets and keys are prepared into the process's pooled buffers
    (``engine._lend``, from any size here) equal those of fresh buffers, when the buffers come back
    holding another replay's records or garbage (larger than needed: views of them), and after an
    error; the pool keeps at most ``PREP_POOL_BYTES``."""
    steps = random_steps(city, catalog, K0, 5, seed=31)
    names = ("ev_time", "ev_feed", "ev_category", "ev_channel", "ev_region", "ev_value",
             "rd_time", "rd_feed", "rd_metric", "rd_emitter", "rd_kind", "rd_region", "rd_value",
             "sn_time", "sn_feed", "sn_field", "sn_entity", "sn_kind", "sn_region", "sn_value")
    cols = {n: np.concatenate([getattr(r, n) for _, r in steps]) for n in names}
    allrec = Records.build(steps[0][1].feed_ids, events=cols, readings=cols, snapshots=cols)
    half = allrec.select(*(np.arange(len(getattr(allrec, f)) // 2) for f in ("ev_time", "rd_time", "sn_time")))
    monkeypatch.setattr(core_engine, "_PREP_POOL", [])
    monkeypatch.setattr(core_engine, "PREP_POOL_MIN", 10**12)  # fresh buffers
    want = [Engine(city, catalog).replay(r, K0 * C, (K0 + 4) * C).value.values for r in (allrec, half)]
    e = Engine(city, catalog)
    want.append(np.concatenate([e.replay(allrec, K0 * C, (K0 + 1) * C).value.values,
                                e.replay(allrec, (K0 + 2) * C, (K0 + 4) * C).value.values]))
    assert core_engine._PREP_POOL == []
    monkeypatch.setattr(core_engine, "PREP_POOL_MIN", 0)
    for garbage in (False, True):
        got = []
        for r in (allrec, half):
            if garbage:
                for a in core_engine._PREP_POOL:
                    a[:] = np.iinfo(a.dtype).max if len(a) % 2 else -7
            got.append(Engine(city, catalog).replay(r, K0 * C, (K0 + 4) * C).value.values)
            assert len(core_engine._PREP_POOL) >= 2  # (given back: buckets and keys of each group)
        e = Engine(city, catalog)
        got.append(np.concatenate([e.replay(allrec, K0 * C, (K0 + 1) * C).value.values,
                                   e.replay(allrec, (K0 + 2) * C, (K0 + 4) * C).value.values]))
        for g, w in zip(got, want):
            assert np.array_equal(g, w, equal_nan=True)
    n = len(core_engine._PREP_POOL)
    bad = Records.build(allrec.feed_ids, events={**cols, "ev_category": np.full(len(cols["ev_category"]), 999)},
                        readings=cols, snapshots=cols)
    with pytest.raises(ValueError, match="ev_category 999"):
        Engine(city, catalog).replay(bad, K0 * C, (K0 + 4) * C)
    assert len(core_engine._PREP_POOL) == n  # (the error's buffers given back too)
    monkeypatch.setattr(core_engine, "PREP_POOL_BYTES", 1)
    Engine(city, catalog).replay(allrec, K0 * C, (K0 + 4) * C)
    assert core_engine._PREP_POOL == []


def test_records_prepared_in_parts_equal_one_part(city, catalog, monkeypatch):
    """The records' preparation split over threads (:func:`engine.core.engine._record_keys`): the
    same buckets, keys, regions and order as in one part, for records in random order, in bucket
    order, and in order within each part but not across the parts' boundary; a bad record in a
    later part is reported as in one part."""
    steps = random_steps(city, catalog, K0, 6, seed=21)
    cols = {n: np.concatenate([getattr(r, n) for _, r in steps]) for n in
            ("ev_time", "ev_feed", "ev_category", "ev_channel", "ev_region", "ev_value",
             "rd_time", "rd_feed", "rd_metric", "rd_emitter", "rd_kind", "rd_region", "rd_value",
             "sn_time", "sn_feed", "sn_field", "sn_entity", "sn_kind", "sn_region", "sn_value")}
    allrec = Records.build(steps[0][1].feed_ids, events=cols, readings=cols, snapshots=cols)
    eng = Engine(city, catalog)

    def order(t, how):
        o = np.argsort(-((-t) // C), kind="stable")
        if how == "sorted":
            return o
        if how == "halves":  # two sorted halves, the later buckets first
            return np.concatenate([o[len(o) // 2:], o[:len(o) // 2]])
        return np.random.default_rng(len(t)).permutation(len(t))

    for how in ("random", "sorted", "halves"):
        rec = allrec.select(order(allrec.ev_time, how), order(allrec.rd_time, how), order(allrec.sn_time, how))
        monkeypatch.setattr(core_engine, "PREPARE_PARALLEL_MIN", 10**9)
        one = eng._prepare(rec)
        monkeypatch.setattr(core_engine, "_n_threads", lambda: 2)
        for lo in (1, 3, 17):
            monkeypatch.setattr(core_engine, "PREPARE_PARALLEL_MIN", lo)
            got = eng._prepare(rec)
            for g in one:
                assert set(got[g]) == set(one[g])
                for c in one[g]:
                    assert np.array_equal(got[g][c], one[g][c], equal_nan=True), (how, lo, g, c)
    bad = Records.build(allrec.feed_ids, events={**cols, "ev_category": np.where(
        np.arange(len(cols["ev_category"])) == len(cols["ev_category"]) - 1, 999, cols["ev_category"])},
        readings=cols, snapshots=cols)
    with pytest.raises(ValueError, match="ev_category 999"):
        eng._prepare(bad)


def test_replay_bins_records_sorted_by_bucket(city, catalog, monkeypatch):
    """``Engine._few_per_cell`` takes the records a replay bins as sorted by bucket (no check):
    they are, for records given in random order, in a first replay and in a continued one (late
    records of computed cycles dropped); and the bound it gives is the one with the check."""
    steps = random_steps(city, catalog, K0, 6, seed=23)
    names = ("ev_time", "ev_feed", "ev_category", "ev_channel", "ev_region", "ev_value",
             "rd_time", "rd_feed", "rd_metric", "rd_emitter", "rd_kind", "rd_region", "rd_value",
             "sn_time", "sn_feed", "sn_field", "sn_entity", "sn_kind", "sn_region", "sn_value")
    cols = {n: np.concatenate([getattr(r, n) for _, r in steps]) for n in names}
    allrec = Records.build(steps[0][1].feed_ids, events=cols, readings=cols, snapshots=cols)
    rng = np.random.default_rng(5)
    rec = allrec.select(*(rng.permutation(len(getattr(allrec, f))) for f in ("ev_time", "rd_time", "sn_time")))
    orig = Engine._most_per_bucket
    seen = []

    def checked(g, known_sorted=False):
        lo, hi = int(g["off"][0]), int(g["off"][-1])
        assert (np.diff(g["bucket"][lo:hi]) >= 0).all()
        got = orig(g, known_sorted)
        assert got == orig(g, False)
        seen.append(known_sorted)
        return got

    monkeypatch.setattr(Engine, "_most_per_bucket", staticmethod(checked))
    eng = Engine(city, catalog)
    eng.replay(rec, K0 * C, (K0 + 2) * C)
    eng.replay(rec, (K0 + 3) * C, (K0 + 5) * C)
    assert seen.count(True) >= 4


def test_state_layout_and_sizes(city, catalog):
    eng = Engine(city, catalog)
    st = State.empty(eng.plan)
    assert st.ringN.dtype == np.uint16 and st.nbytes == eng.plan.state_bytes()
    assert eng.plan.cycle_bytes() > 4 * len(catalog) * city.n_regions  # at least the float32 output


def test_derived_kernel_equals_formula_evaluation():
    """kernels.derived_rows (stack programs over region vectors) == expr.evaluate of each formula
    in dependency order, bit for bit, on random values with NaN, zeros and negatives; every
    operator and function of the formula language; and on the bundled catalog's formulas."""
    from engine.catalog import expr
    from engine.core.derived import DerivedPlan

    rng = np.random.default_rng(5)
    base = [{"id": f"x{i}", "aggregation": "count"} for i in range(6)]
    forms = ["x0 / (x1 / 7)", "100 * (x0 - x1) / x2", "-x3 + abs(x4) * 2", "min(x0, x1, 3) - max(x2, x5)",
             "d0 / x1 + d2", "abs(-d1) / (d0 - d0)", "7", "-(2 * 3) * x5"]
    inds = base + [{"id": f"d{j}", "aggregation": "derived", "formula": f} for j, f in enumerate(forms)]
    cat_inds = Catalog.load().indicators
    for indicators in (inds, cat_inds):
        dp = DerivedPlan(indicators)
        nreg = 37
        V = rng.normal(0, 5, (len(indicators), nreg)).round(1)
        V[rng.random(V.shape) < 0.15] = np.nan
        V[rng.random(V.shape) < 0.15] = 0.0
        V[dp.rows] = np.nan
        ref = V.copy()
        ids = [i["id"] for i in indicators]
        parsed = {i["id"]: expr.parse(i["formula"]) for i in indicators if i.get("aggregation") == "derived"}
        order, _ = expr.topological_order({k: expr.refs(v) for k, v in parsed.items()})
        with np.errstate(all="ignore"):
            for iid in order:
                env = {r: ref[ids.index(r)] for r in expr.refs(parsed[iid])}
                ref[ids.index(iid)] = np.broadcast_to(expr.evaluate(parsed[iid], env), nreg)
        *DP, depth = dp.program()
        D = np.ascontiguousarray(V[dp.compact_rows][None])
        out = np.full((1, len(indicators), nreg), -1.0, np.float32)
        K.derived_rows(0, tuple(DP), (out, np.zeros((0, 1, 1))), D, np.empty((depth, nreg)))
        np.testing.assert_array_equal(D[0], ref[dp.compact_rows])
        np.testing.assert_array_equal(out[0, dp.rows], ref[dp.rows].astype(np.float32))
        out64 = np.full((1, len(indicators), nreg), -1.0)  # a float64 output (the same specialisation)
        K.derived_rows(0, tuple(DP), (out * 0, out64), D.copy(), np.empty((depth, nreg)))
        np.testing.assert_array_equal(out64[0, dp.rows], ref[dp.rows])


def test_derived_kernel_fused_shapes_equal_formula_evaluation():
    """The program shapes kernels.derived_rows runs in one pass (``_derived_fused``: ``a / (b / c)``,
    ``c * a / b``, ``c * (a - b) / d``, ``c * a / (b / e)``, ``a / b``), with zero, negative-zero,
    infinite and NaN operands and zero constants, == expr.evaluate bit for bit; their programs are
    the shapes the catalog's formulas compile to (so the fused path is the one tested)."""
    from engine.catalog import expr
    from engine.core.derived import DerivedPlan

    rng = np.random.default_rng(11)
    base = [{"id": f"x{i}", "aggregation": "count"} for i in range(5)]
    forms = ["x0 / (x1 / 7)", "x2 / (x3 / 0)", "100 * x0 / x1", "0 * x4 / x2", "100 * (x0 - x1) / x2",
             "3 * (x3 - x3) / x4", "1000 * x0 / (x1 / 4)", "2 * x2 / (x3 / 0)", "x0 / x1", "x3 / x3"]
    inds = base + [{"id": f"d{j}", "aggregation": "derived", "formula": f} for j, f in enumerate(forms)]
    dp = DerivedPlan(inds)
    ops, _, _, ptr, *_ = dp.program()[:-1]
    shapes = {tuple(ops[ptr[j]:ptr[j + 1]].tolist()) for j in range(len(ptr) - 1)}
    assert shapes == {(0, 0, 1, 5, 5), (1, 0, 4, 0, 5), (1, 0, 0, 3, 4, 0, 5), (1, 0, 4, 0, 1, 5, 5), (0, 0, 5)}
    nreg = 64
    V = rng.normal(0, 5, (len(inds), nreg)).round(1)
    edge = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-310, 1e308])
    for r in range(len(base)):
        V[r, rng.random(nreg) < 0.2] = 0.0
        V[r, :len(edge) * 5] = np.tile(np.roll(edge, r), 5)[:len(edge) * 5]
    V[dp.rows] = np.nan
    ref = V.copy()
    ids = [i["id"] for i in inds]
    with np.errstate(all="ignore"):
        for j, f in enumerate(forms):
            parsed = expr.parse(f)
            env = {r: ref[ids.index(r)] for r in expr.refs(parsed)}
            ref[ids.index(f"d{j}")] = np.broadcast_to(expr.evaluate(parsed, env), nreg)
    *DP, depth = dp.program()
    D = np.ascontiguousarray(V[dp.compact_rows][None])
    out = np.full((1, len(inds), nreg), -1.0, np.float32)
    K.derived_rows(0, tuple(DP), (out, np.zeros((0, 1, 1))), D, np.empty((depth, nreg)))
    np.testing.assert_array_equal(D[0], ref[dp.compact_rows])
    assert (np.signbit(D[0]) == np.signbit(ref[dp.compact_rows])).all()  # (-0.0 kept)
    np.testing.assert_array_equal(out[0, dp.rows], ref[dp.rows].astype(np.float32))


def _concat(steps) -> Records:
    """The records of all ``steps`` as one batch (for replays)."""
    r0 = steps[0][1]
    cols = {"events": ("ev_time", "ev_feed", "ev_category", "ev_channel", "ev_region", "ev_value"),
            "readings": ("rd_time", "rd_feed", "rd_metric", "rd_emitter", "rd_kind", "rd_region", "rd_value"),
            "snapshots": ("sn_time", "sn_feed", "sn_field", "sn_entity", "sn_kind", "sn_region", "sn_value")}
    return Records.build(r0.feed_ids, **{g: {n: np.concatenate([getattr(r, n) for _, r in steps]) for n in names}
                                         for g, names in cols.items()})


def test_float32_output_is_the_float64_values_rounded(city, catalog):
    """A float32 output holds the float64 engine's values rounded once, every row (replay and
    step): the count rows over every region that ``values_rows`` writes straight into a float32
    output (as they are, with and without a derived copy, and normalised, with zero denominators)
    give the numbers of the general value pass, which a float64 output takes; derived rows read
    those copies."""
    p = Engine(city, catalog).plan
    dense = np.diff(p.base_ser0)[p.ind_base] == p.n_regions
    count = (p.ind_code == K._C_COUNT) & dense
    dcopy = Engine(city, catalog)._P[39][p.ind_row] >= 0
    for sel in (count & (p.ind_norm < 0) & dcopy, count & (p.ind_norm < 0) & ~dcopy, count & (p.ind_norm >= 0)):
        assert sel.any()  # (the fast path's kinds of rows are in the test)
    def engine(dtype="float32"):  # a zero denominator in every fourth region (a normalised value: NaN)
        e = Engine(city, catalog, dtype=dtype)
        P = list(e._P)
        P[38] = P[38].copy()
        P[38][:, ::4] = 0.0
        e._P = tuple(P)
        return e

    steps = random_steps(city, catalog, K0, 6, seed=23)
    allrec = _concat(steps)
    got = engine().replay(allrec, K0 * C, (K0 + 5) * C).value.values
    want = engine("float64").replay(allrec, K0 * C, (K0 + 5) * C).value.values
    assert got.dtype == np.float32 and np.isfinite(want).any()
    assert np.isnan(want[:, p.ind_row[count & (p.ind_norm >= 0)], ::4]).all()
    np.testing.assert_array_equal(got, want.astype(np.float32))
    e32, e64 = engine(), engine("float64")
    for k, rec in steps[:3]:
        np.testing.assert_array_equal(e32.step(rec, at=k * C).value.values,
                                      e64.step(rec, at=k * C).value.values.astype(np.float32))


def test_replay_into_a_reused_buffer_equals_a_fresh_output(city, catalog):
    """``replay(out=...)``: the returned values are the buffer, equal to a replay into a fresh
    output, when one buffer is reused for consecutive periods (finest and street level); a wrong
    buffer is refused before anything runs."""
    allrec = _concat(random_steps(city, catalog, K0, 8, seed=21))
    for level in (None, "street"):
        fresh = Engine(city, catalog)
        want1 = fresh.replay(allrec, K0 * C, (K0 + 3) * C, level=level).value.values.copy()
        want2 = fresh.replay(allrec, (K0 + 4) * C, (K0 + 7) * C, level=level).value.values
        eng = Engine(city, catalog)
        buf = eng.output_buffer(K0 * C, (K0 + 3) * C, level=level)
        buf[:] = -7.0  # stale contents must all be overwritten
        got1 = eng.replay(allrec, K0 * C, (K0 + 3) * C, level=level, out=buf).value.values
        assert np.shares_memory(got1, buf) and np.array_equal(got1, want1, equal_nan=True)
        got2 = eng.replay(allrec, (K0 + 4) * C, (K0 + 7) * C, level=level, out=buf).value.values
        assert np.shares_memory(got2, buf) and np.array_equal(got2, want2, equal_nan=True)
        assert eng.state.equals(fresh.state)
    eng = Engine(city, catalog)
    buf = eng.output_buffer(K0 * C, (K0 + 3) * C)
    with pytest.raises(ValueError, match=r"shape \(3, "):
        eng.replay(allrec, K0 * C, (K0 + 3) * C, out=buf[:3])
    with pytest.raises(ValueError, match="dtype float64"):
        eng.replay(allrec, K0 * C, (K0 + 3) * C, out=buf.astype(np.float64))
    with pytest.raises(ValueError, match="C-contiguous"):
        eng.replay(allrec, K0 * C, (K0 + 3) * C, out=np.empty(buf.shape[::-1], buf.dtype).T)
    with pytest.raises(TypeError, match="list"):
        eng.replay(allrec, K0 * C, (K0 + 3) * C, out=buf.tolist())
    assert eng.state.last_cycle == -1  # nothing ran


def test_small_pages_turns_the_advice_off_and_back_once_the_last_block_ends(city, catalog):
    """``small_pages``: numpy's huge-page advice is off inside, also while blocks of two threads
    overlap in either order, and as before once the last one ends (on or off); a replay leaves it
    as it found it, an error inside a block too. ``_populate`` leaves an array's contents alone."""
    import threading

    setter = getattr(getattr(getattr(np, "_core", None), "multiarray", None), "_set_madvise_hugepage", None)
    if setter is None:
        pytest.skip("numpy has no huge-page switch")
    prev = setter(True)
    try:
        for before in (True, False):
            setter(before)
            a_in, b_in, a_out, b_out = (threading.Event() for _ in range(4))
            seen = []

            def block(enter_first, leave_after, leave_signal, enter_signal):
                with core_engine.small_pages():
                    enter_signal.set()
                    enter_first.wait(5)
                    seen.append(setter(False))  # (reads the advice: False inside)
                    leave_after.wait(5)
                leave_signal.set()

            # a enters, b enters, a leaves (b still inside: off), b leaves (back to ``before``)
            ta_leave = threading.Event()
            ta = threading.Thread(target=block, args=(b_in, ta_leave, a_out, a_in))
            tb_leave = threading.Event()
            tb = threading.Thread(target=block, args=(a_in, tb_leave, b_out, b_in))
            ta.start()
            tb.start()
            a_in.wait(5)
            b_in.wait(5)
            ta_leave.set()
            a_out.wait(5)
            assert setter(False) is False  # b is still inside
            tb_leave.set()
            ta.join(5)
            tb.join(5)
            assert seen == [False, False]
            assert setter(before) is before
            allrec = _concat(random_steps(city, catalog, K0, 2, seed=3))
            with pytest.raises(ZeroDivisionError):
                with core_engine.small_pages():
                    1 / 0
            Engine(city, catalog).replay(allrec, K0 * C, (K0 + 1) * C)
            assert setter(before) is before
    finally:
        setter(prev)
    a = np.arange(80 * 2**20 // 8, dtype=np.float64)
    th = core_engine._populate(a)
    if th is not None:
        th.join()
    assert np.array_equal(a, np.arange(len(a), dtype=np.float64))


def _snapshot_bucket_reference(eng: Engine) -> list:
    """(base, what, kernel row, reference row) for the last cycle's bucket of every snapshot base,
    aggregated from the latest values by a plain loop over the members in entity order (sum from
    +0.0, count, count of 1.0, minimum / maximum keeping the first of equal values)."""
    p, s = eng.plan, eng.state
    k = s.last_cycle
    nser = np.diff(p.base_ser0)
    res = []
    for b in range(p.n_bases):
        lo, hi = p.mem_ptr[b], p.mem_ptr[b + 1]
        if hi == lo:
            continue
        n, s0 = nser[b], p.base_ser0[b]
        N, S, O = np.zeros(n, np.int64), np.zeros(n), np.zeros(n, np.int64)
        MN, MX = np.full(n, np.inf), np.full(n, -np.inf)
        for m in range(lo, hi):
            v = float(s.st_value[p.mem_cell[m]])
            if np.isnan(v):
                continue
            i = p.mem_ser[m] - s0
            N[i] += 1
            S[i] = S[i] + v
            O[i] += v == 1.0
            if v < MN[i]:
                MN[i] = v
            if v > MX[i]:
                MX[i] = v
        slot = k % p.base_R[b]
        rows = [("N", s.ringN, p.base_offN[b], slot, N)]
        if p.base_offS[b] >= 0:
            rows.append(("S", s.ringS, p.base_offS[b], slot, S))
        if p.base_offO[b] >= 0:
            rows.append(("O", s.ringO, p.base_offO[b], slot, O))
        if p.base_Rm[b] > 0:
            sm = k % p.base_Rm[b]
            if p.base_offMin[b] >= 0:
                rows.append(("min", s.ringMin, p.base_offMin[b], sm, MN))
            if p.base_offMax[b] >= 0:
                rows.append(("max", s.ringMax, p.base_offMax[b], sm, MX))
        for what, ring, off, sl, want in rows:
            res.append((b, what, ring[off + sl * n: off + (sl + 1) * n], want))
        res.append((b, "rowc", s.rowc[p.base_offRow[b] + slot], N.sum()))
    return res


def test_snapshot_buckets_from_changed_series_equal_a_full_aggregation(city, catalog, tmp_path):
    """Snapshot buckets are the previous bucket with only the series whose members changed
    aggregated again: over 40 cycles of snapshot records (values flipping between numbers, 0.0,
    -0.0 and NaN; an empty cycle now and then; a save / load mid-way) every snapshot bucket equals
    a plain-loop aggregation of the latest values, bit for bit (sign of zero included), and the
    values and state equal an engine that aggregates every series every cycle."""
    steps = random_steps(city, catalog, K0, 40, seed=22, n_ev=3, n_rd=3, n_sn=30)
    rng = np.random.default_rng(23)
    for _, rec in steps:
        u = rng.random(len(rec.sn_value))
        rec.sn_value[:] = np.where(u < 0.15, np.nan, np.where(u < 0.3, -0.0, np.where(u < 0.4, 0.0, rec.sn_value)))
    inc, full = Engine(city, catalog, dtype="float64"), Engine(city, catalog, dtype="float64")
    for i, (k, rec) in enumerate(steps):
        if i % 9 == 4:
            rec = Records.build(rec.feed_ids)
        if i == 20:  # a loaded state: one full aggregation, same numbers
            inc.save_state(tmp_path / "mid.npz")
            inc.load_state(tmp_path / "mid.npz")
        full._scratch_for = None  # forget the previous buckets: every series aggregated again
        a = inc.step(rec, at=k * C).value.values
        b = full.step(rec, at=k * C).value.values
        assert np.array_equal(a, b, equal_nan=True), i
        for base, what, got, want in _snapshot_bucket_reference(inc):
            assert np.array_equal(got, want) and np.array_equal(np.signbit(got), np.signbit(want)), (i, base, what)
        assert inc.state.equals(full.state), i
    assert int(inc._snap_k.max()) == steps[-1][0]


def test_sorted_replace_equals_delete_then_insert():
    """``sorted_replace`` (the add's one-pass update of a sorted window) leaves the same values
    as ``sorted_delete`` then ``sorted_insert``: random windows with duplicates, NaN, the value
    replaced by itself, below / above everything, and values that are not there."""
    rng = np.random.default_rng(1)
    for trial in range(4000):
        W = int(rng.integers(1, 12))
        n = int(rng.integers(0, W + 1))
        vals = rng.integers(0, 6, n) / 2.0
        vals[rng.random(n) < 0.15] = np.nan
        x = np.full(W + 4, -7.0)
        x[2:2 + n] = np.sort(vals)
        pick = rng.random()
        if n and pick < 0.7:
            old = x[2 + int(rng.integers(n))]  # a value that is there (NaN included)
        else:
            old = [np.nan, 9.0, -1.0, 1.25][int(rng.integers(4))]  # maybe not there
        v = [np.nan, -1.0, 9.0, old][int(rng.integers(4))] if rng.random() < 0.3 else float(rng.integers(0, 6)) / 2.0
        want = x.copy()
        m = K.sorted_delete(want, 2, n, old)
        if m == n and m == W:  # not there and full: the caller never does this (no room)
            continue
        m = K.sorted_insert(want, 2, m, v)
        got = x.copy()
        assert K.sorted_replace(got, 2, n, old, v) == m, trial
        assert np.array_equal(got, want, equal_nan=True), (trial, x, old, v)


def test_running_extreme_slide_equals_a_scan_of_each_window():
    """``_mm_slide`` (the add's running extremes: the new bucket in, a series whose extreme left
    recomputed from the ring) leaves every series' extreme of its window
    ``k - W + 1 .. k`` as a scan of that window newest first with a strict comparison (the newest
    of equal extremes: the same bits, 0.0 / -0.0 included): random rings of few distinct values
    (ties, zeros of both signs, empty buckets), maxima and minima, every window length up to the
    ring's, several series leaving at once or none; the cells outside the base's run untouched."""
    rng = np.random.default_rng(7)
    pool = np.array([0.0, -0.0, 1.0, -1.0, 2.5, 3.0])
    for trial in range(3000):
        mx = bool(rng.integers(2))
        empty = -np.inf if mx else np.inf
        n = int(rng.integers(1, 9))
        W = int(rng.integers(1, 7))
        Rm = W + 1 + int(rng.integers(0, 3))
        k = int(rng.integers(W, 60))
        off = int(rng.integers(0, 4))
        ring = np.full(off + Rm * n + 3, 99.0)
        vals = pool[rng.integers(len(pool), size=Rm * n)]
        vals[rng.random(Rm * n) < 0.2] = empty
        ring[off:off + Rm * n] = vals

        def scan(last, i):
            acc = empty
            for c in range(W):
                v = ring[off + ((last - c) % Rm) * n + i]
                if (v > acc) if mx else (v < acc):
                    acc = v
            return acc

        o = int(rng.integers(0, 3))
        mm = np.full(o + n + 2, 42.0)
        for i in range(n):
            mm[o + i] = scan(k - 1, i)  # the window before the slide
        want = mm.copy()
        for i in range(n):
            want[o + i] = scan(k, i)
        K._mm_slide(ring, mm, o, off, k, W, Rm, n, mx)
        assert np.array_equal(mm.view(np.int64), want.view(np.int64)), (trial, mx, W, Rm, k, ring, mm, want)


def test_quiet_snapshot_bases_skip_only_what_stays(city, catalog, tmp_path, monkeypatch):
    """Snapshot bases whose buckets stop changing skip the window updates that would leave them
    as they are (``snap_q``, ``blk_fx``; the count-only one-bucket bases add each series' change
    as it is aggregated): over 130 cycles with two quiet stretches (5 and 106 cycles, the second
    longer than a day's window) and values with fractions, whole numbers, -0.0, NaN and inf,
    replays on the serial, stage and share drivers (the state saved and loaded after cycle 11)
    equal, values of every cycle and the end state bit for bit, an engine that steps and forgets
    its scratch every cycle (every series aggregated, every window computed)."""
    busy = {}  # records in cycles 0-4, 10-19 and 126-129 only
    for c0, n in ((0, 5), (10, 10), (126, 4)):
        busy.update(random_steps(city, catalog, K0 + c0, n, seed=31 + c0, n_ev=4, n_rd=6, n_sn=40, late_frac=0.0))
    rng = np.random.default_rng(32)
    feed_ids = next(iter(busy.values())).feed_ids
    steps = [(K0 + i, None) for i in range(130)]
    recs = []
    for k, _ in steps:
        rec = busy.get(k)
        if rec is None:
            recs.append(Records.build(feed_ids))
            continue
        u = rng.random(len(rec.sn_value))
        frac = rng.integers(0, 40, len(u)) / 10.0
        rec.sn_value[:] = np.where(u < 0.1, np.nan, np.where(u < 0.15, -0.0, np.where(u < 0.18, np.inf, np.where(
            u < 0.6, frac, rec.sn_value))))
        recs.append(rec)
    full, inc = Engine(city, catalog, dtype="float64"), Engine(city, catalog, dtype="float64")
    inc.save_state(tmp_path / "fresh.npz")
    want = []
    for (k, _), rec in zip(steps, recs):
        full._scratch_for = None  # every series aggregated again, every window computed
        want.append(full.step(rec, at=k * C).value.values)
    want = np.stack(want)
    allrec = _concat([(k, r) for (k, _), r in zip(steps, recs)])
    snap = np.flatnonzero(np.diff(full.plan.mem_ptr) > 0)
    for parallel in ("0", "1", "shares"):
        monkeypatch.setenv("CITYVITALS_CORE_PARALLEL", parallel)
        inc.load_state(tmp_path / "fresh.npz")
        a = inc.replay(allrec, K0 * C, (K0 + 11) * C).value.values.copy()
        inc.save_state(tmp_path / "mid.npz")  # a loaded state starts its quiet counts again
        inc.load_state(tmp_path / "mid.npz")
        b = inc.replay(allrec, (K0 + 12) * C, (K0 + 129) * C).value.values
        assert np.array_equal(np.concatenate([a, b]), want, equal_nan=True), parallel
        assert inc.state.equals(full.state), parallel
        assert int(inc._snap_q[snap].max()) >= 97 and inc._blk_fx.any(), parallel  # the day's windows skipped too


@pytest.mark.parametrize("parallel", ["0", "shares"])
def test_add_and_values_in_groups_equal_one_group(city, catalog, monkeypatch, parallel):
    """The add and the values group by group (:func:`kernels.run_cycles`, ``Engine._groups_of``):
    every base its own group (weight 1) gives the output and the state of one group (every add,
    then every row: the order before the groups), on the serial and the shares driver; each row
    comes after the group of each base it reads, every base and row exactly once."""
    monkeypatch.setenv("CITYVITALS_CORE_PARALLEL", parallel)
    steps = random_steps(city, catalog, K0, 6, seed=21)
    rec = _concat(steps)
    got = {}
    for w in (1, 1e18):
        monkeypatch.setattr(core_engine, "ADD_GROUP_WEIGHT", w)
        eng = Engine(city, catalog)
        got[w] = (eng.replay(rec, K0 * C, (K0 + 5) * C).value.values, eng)
        p = eng.plan
        for bases_in, rows_in in [(eng._all_bases, eng._all_rows)] + [(b, r) for b, r, _, _ in eng._base_shares(2)]:
            bases, rows, bptr, rptr = eng._groups_of(bases_in, rows_in)
            assert np.array_equal(bases, bases_in) and np.array_equal(np.sort(rows), np.sort(rows_in))
            assert len(bptr) == len(rptr) and bptr[-1] == len(bases) and rptr[-1] == len(rows)
            if w == 1:
                assert len(bptr) - 1 >= len(bases) // 2  # (a base without series here shares a group)
            grp_of = np.full(p.n_bases, -1)
            for g in range(len(bptr) - 1):
                grp_of[bases[bptr[g]:bptr[g + 1]]] = g
            for g in range(len(rptr) - 1):
                r = rows[rptr[g]:rptr[g + 1]]
                assert (grp_of[p.ind_base[r]] <= g).all() and (grp_of[p.ind_base[r]] >= 0).all()
                two = r[p.ind_blk2[r] >= 0]
                assert (grp_of[p.blk_base[p.ind_blk2[two]]] <= g).all()
    assert np.array_equal(got[1][0], got[1e18][0], equal_nan=True)
    assert got[1][1].state.equals(got[1e18][1].state)
