"""``compute_indices``: health and risk indices per region and level from a run's Dataset.

The input is the compute core's layout: variable ``value`` over (``indicator``, ``region``) for
one cycle or (``time``, ``indicator``, ``region``) for a replay, optionally ``expected`` and
``scale`` (the detectors' baseline) with the same dims. See docs/indices.md for the rules.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from engine.config import n_threads
from engine.indices import kernels as K
from engine.indices.aggregate import compose, finish, group_imputed
from engine.indices.config import IndicesConfig, grade_codes, resolve_config
from engine.indices.hierarchy import Hierarchy
from engine.indices.spec import IndexSpec

_EMPTY2 = np.zeros((0, 0))
_EMPTY3 = np.zeros((0, 0, 0))
_EMPTY3_F32 = np.zeros((0, 0, 0), dtype=np.float32)
_NO_PARENT = np.zeros(0, dtype=np.int64)


def _one_thread() -> bool:
    """Whether numba runs this thread's parallel kernels on one thread (``numba.set_num_threads``
    is per thread: a run's side thread sets 1; ``NUMBA_NUM_THREADS=1``)."""
    import numba

    return numba.get_num_threads() == 1


def _dims_ok(da: xr.DataArray, name: str) -> xr.DataArray:
    want = ("time", "indicator", "region") if "time" in da.dims else ("indicator", "region")
    if set(da.dims) != set(want):
        raise ValueError(f"variable {name!r} must have dims {want} (or without time), got {da.dims}")
    # already in order (a run's part): as it is (xarray's transpose rebuilds every coordinate, ~1 ms)
    return da if da.dims == want else da.transpose(*want)


def select_time(ds: xr.Dataset, at=None) -> int | None:
    """Position of the cycle ``at`` along ``time`` (None -> the last cycle).

    ``at`` may be a timestamp (str, datetime64, Timestamp): the cycle at or just before it is
    used. A Dataset without a ``time`` dim has one cycle; ``at`` must then be None or equal its
    scalar ``time`` coordinate when it has one.

    Raises
    ------
    ValueError
        ``at`` outside the run (the message gives the run's first and last cycle).

    Examples
    --------
    >>> ds = xr.Dataset(coords={"time": pd.date_range("2020-02-01", periods=3, freq="15min")})
    >>> select_time(ds), select_time(ds, "2020-02-01 00:20")
    (2, 1)
    """
    if "time" not in ds.dims:
        if at is not None and "time" in ds.coords:
            t0 = pd.Timestamp(ds["time"].values.item()) if ds["time"].size == 1 else None
            if t0 is not None and pd.Timestamp(at) != t0:
                raise ValueError(f"time {at} is not in the run: it holds one cycle, {t0}")
        return None
    times = pd.DatetimeIndex(ds["time"].values)
    if len(times) == 0:
        raise ValueError("the run has no cycles (empty time axis)")
    if at is None:
        return len(times) - 1
    try:
        ts = pd.Timestamp(at)
    except (ValueError, TypeError):
        raise ValueError(f"time {at!r} is not a timestamp; expected e.g. {times[-1].isoformat()}") from None
    if ts.tzinfo is not None and times.tz is None:
        ts = ts.tz_convert(None)
    step = times[-1] - times[-2] if len(times) > 1 else pd.Timedelta(0)
    if ts < times[0] or ts > times[-1] + step:
        raise ValueError(f"time {ts.isoformat()} is outside the run: cycles run from {times[0].isoformat()} "
                         f"to {times[-1].isoformat()} ({len(times)} cycles)")
    return int(times.searchsorted(ts, side="right") - 1)


#: below this many values (cycles x indicators x regions) the pass runs on the calling thread:
#: starting the thread pool costs more than it saves, and a lot more on a busy machine
SERIAL_BELOW = 1 << 20
#: cycles are computed in chunks of about this many values (cycles x indicators x regions)
CHUNK_VALUES = 1 << 24


def _labels(index: pd.Index) -> list[str]:
    """Labels as a list of str (``tolist`` first: iterating an Arrow-backed index is slow)."""
    return [str(x) for x in index.tolist()]


def _cycle_list(cycles) -> list:
    return [None] if cycles is None else list(cycles)


class IndexPlan:
    """What ``compute_indices`` derives from the catalog, the city and the config, kept for reuse.

    Building the per-indicator arrays (patterns matched against 2,926 ids), the region hierarchy
    and the output coordinates costs tens of milliseconds; a caller that computes indices cycle
    after cycle (a scan, a scenario run) builds one plan and calls :meth:`compute`. The catalog,
    city and config are read once: treat them as read-only while the plan is in use.

    Parameters
    ----------
    catalog, city, config
        As for :func:`compute_indices`.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ids = ["safety.public_order.police_violent.count_24h", "safety.public_safety.fire_all.count_24h"]
    >>> ds = xr.Dataset({"value": (("indicator", "region"), [[0.0, 9.0], [1.0, 1.0]]),
    ...                  "expected": (("indicator", "region"), [[1.0, 1.0], [1.0, 1.0]]),
    ...                  "scale": (("indicator", "region"), [[1.0, 1.0], [1.0, 1.0]])},
    ...                 coords={"indicator": ids, "region": ["A", "B"]})
    >>> plan = IndexPlan()
    >>> plan.compute(ds)["health"].sel(index="public_order").values.tolist()
    [100.0, 0.0]
    >>> plan.compute(ds * 0.0)["health"].sel(index="public_order").values.tolist()   # spec reused
    [100.0, 100.0]
    """

    def __init__(self, catalog=None, city=None, config=None):
        self.cfg: IndicesConfig = resolve_config(config)
        if catalog is None:
            from engine.catalog import Catalog

            catalog = Catalog.load()
        self.catalog = catalog
        self.city = city
        self._spec = (None, None)
        self._hier = (None, None)
        self._coords = (None, None)
        self._groups = (None, None)
        self._scratch: dict[str, np.ndarray] = {}

    def scratch(self, name: str, shape: tuple, dtype=np.float64) -> np.ndarray:
        """A work array of ``shape`` (float64, or ``dtype``) kept from one call to the next (grown
        when too small).

        A run that computes indices day after day would otherwise map fresh pages for its
        copies of the values and baselines every call; first-touch page faults cost seconds per GB
        on some virtual machines. The array is overwritten by the next call that asks for ``name``.
        """
        n = int(np.prod(shape))
        key = (name, np.dtype(dtype).str)
        buf = self._scratch.get(key)
        if buf is None or buf.size < n:
            buf = self._scratch[key] = np.empty(n, dtype=dtype)
        return buf[:n].reshape(shape)

    @staticmethod
    def _same(cached, labels: pd.Index) -> bool:
        return cached is not None and (cached is labels or (len(cached) == len(labels) and cached.equals(labels)))

    def spec(self, ids) -> IndexSpec:
        """The :class:`IndexSpec` of these indicator ids (rebuilt only when the ids change)."""
        ids = pd.Index(ids)
        if not self._same(self._spec[0], ids):
            self._spec = (ids, IndexSpec.build(_labels(ids), self.catalog, self.cfg))
        return self._spec[1]

    def hierarchy(self, regions):
        """Hierarchy and region blocks of these base regions (rebuilt only when they change)."""
        regions = pd.Index(regions)
        if not self._same(self._hier[0], regions):
            key = regions
            hier = Hierarchy.build(_labels(regions), self.city, self.cfg.level_weight)
            nr = len(hier.base.ids)
            target = max(32, nr // max(1, 4 * n_threads()))
            self._hier = (key, (hier, hier.blocks(target)))
        return self._hier[1]

    def groups(self, spec: IndexSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``group_of, group_w`` and the group totals of ``spec`` (cached)."""
        if self._groups[0] is not spec:
            self._groups = (spec, (*spec.group_arrays(), spec.group_totals()))
        return self._groups[1]

    def coords(self, spec: IndexSpec, hier: Hierarchy) -> xr.Coordinates:
        """The ``index``, ``region`` and ``angle`` coordinates of the output (cached)."""
        key = self._coords[0]
        if key is None or key[0] is not spec or key[1] is not hier:
            cfg = self.cfg
            kind, zh, en = spec.index_meta()
            rid, rname, rlevel, rparent = hier.all_regions()
            self._coords = ((spec, hier), xr.Coordinates({
                "index": spec.index_labels, "index_kind": ("index", kind), "index_zh": ("index", zh),
                "index_en": ("index", en), "region": rid, "level": ("region", rlevel),
                "parent": ("region", rparent), "region_name": ("region", rname),
                "angle": [a.key for a in cfg.angles], "angle_zh": ("angle", [a.zh for a in cfg.angles]),
                "angle_en": ("angle", [a.en for a in cfg.angles]),
            }))
        return self._coords[1]

    def prepare(self, ds: xr.Dataset) -> "Prepared":
        """A :class:`Prepared` Dataset using this plan's cached arrays."""
        return Prepared(ds, self.catalog, self.city, self.cfg, plan=self)

    def compute(self, ds: xr.Dataset, *, at=None) -> xr.Dataset:
        """:func:`compute_indices` of ``ds`` with this plan's catalog, city and config.

        Every cycle of ``ds`` is computed in one pass (the kernel loops over time); the result
        equals :func:`compute_indices` (``at`` as there).
        """
        prep = self.prepare(ds)
        if not prep.has_time:
            select_time(ds, at)  # checks ``at`` against a scalar time coordinate
            cycles = None
        elif at is not None:
            cycles = [select_time(ds, at)]
        else:
            cycles = list(range(prep.value.sizes["time"]))
        return _assemble(prep, cycles, prep.indices_many(cycles))


class Prepared:
    """A Dataset made ready for the kernels: spec, hierarchy, blocks, array accessors."""

    def __init__(self, ds: xr.Dataset, catalog, city=None, config=None, *, plan: IndexPlan | None = None):
        if "value" not in ds:
            raise ValueError(f"the Dataset has no 'value' variable (it has: {', '.join(map(str, ds.data_vars)) or 'none'})")
        plan = plan if plan is not None else IndexPlan(catalog, city, config)
        self.plan = plan
        self.cfg: IndicesConfig = plan.cfg
        self.ds = ds
        self.value = _dims_ok(ds["value"], "value")
        self.has_time = "time" in self.value.dims
        self.expected = _dims_ok(ds["expected"], "expected") if "expected" in ds else None
        self.scale = _dims_ok(ds["scale"], "scale") if "scale" in ds else None
        if (self.expected is None) != (self.scale is None):
            raise ValueError("the Dataset has only one of 'expected' and 'scale'; a baseline needs both")
        self.spec = plan.spec(self.value.indexes["indicator"] if "indicator" in self.value.indexes
                              else self.value["indicator"].values)
        self.hier, (self.order, self.bstart, self.bstop) = plan.hierarchy(
            self.value.indexes["region"] if "region" in self.value.indexes else self.value["region"].values)
        self.group_of, self.group_w, self.totals = plan.groups(self.spec)
        self.geometric = self.cfg.method == "geometric"

    def _cycles(self, da, cycles: list, scratch: str | None = None, dtype=np.float64) -> np.ndarray:
        """(k, n_indicator, n_region) C-contiguous array of ``cycles`` in ``dtype`` (a view when
        possible; else a copy, into the plan's reused work array ``scratch`` when given)."""
        if not self.has_time:
            return np.ascontiguousarray(da.values, dtype=dtype)[None]
        c0 = cycles[0]
        if cycles == list(range(c0, c0 + len(cycles))):
            x = da.isel(time=slice(c0, c0 + len(cycles)))
        else:
            x = da.isel(time=cycles)
        x = x.values
        if scratch is None or (x.dtype == dtype and x.flags.c_contiguous):
            return np.ascontiguousarray(x, dtype=dtype)
        out = self.plan.scratch(scratch, x.shape, dtype)
        np.copyto(out, x)
        return out

    def _stored_value(self, cl: list, dt, e1: np.ndarray, s1: np.ndarray, hpos: np.ndarray,
                      rows: np.ndarray) -> np.ndarray | None:
        """The values of the consecutive cycles ``cl`` copied into the plan's work array ``value``
        with ``rows`` (k, n_indicator) the rows that need peers (:func:`~engine.indices.kernels.rows_needing_peers`),
        both in one read (:func:`~engine.indices.kernels.copy_rows_needing_peers`), where the values
        are a strided view of ``dt`` whose cycles are each C-contiguous (a run's stored steps: every
        ``factor``-th cycle of the day) and the baseline is the Dataset's only (no history). Else
        None (nothing written): :meth:`_cycles` and ``rows_needing_peers`` give the same."""
        if not self.has_time or len(cl) == 0 or (hpos >= 0).any():
            return None
        c0 = cl[0]
        if cl != list(range(c0, c0 + len(cl))):
            return None
        x = self.value.isel(time=slice(c0, c0 + len(cl))).values
        k, ni, nr = x.shape
        isz = x.itemsize
        row, cyc = nr * isz, ni * nr * isz
        if (x.dtype != dt or x.flags.c_contiguous or e1.shape != x.shape or s1.shape != x.shape or cyc == 0
                or x.strides[1:] != (row, isz) or x.strides[0] <= 0 or x.strides[0] % cyc):
            return None
        step = x.strides[0] // cyc
        # the same memory as one C-ordered array from the first cycle to the last (cycle t at t * step)
        src = np.lib.stride_tricks.as_strided(x, shape=((k - 1) * step + 1, ni, nr), strides=(cyc, row, isz),
                                              writeable=False)
        v = self.plan.scratch("value", x.shape, dt)
        K.copy_rows_needing_peers(src, np.int64(step), e1, s1, self.spec.cfg_ref, self.spec.thr_ref, v, rows)
        return v

    def _dtype(self, reuse: bool):
        """float32 when every input array is float32 and nothing of the copies outlives the call
        (``reuse``): the kernels then read the values as stored (each converted to float64 as it
        is read: exact, so the same results) and the run's float64 copies of value, expected and
        scale are not made. Else float64 (one compiled version of each kernel per dtype)."""
        arrays = [self.value] + ([self.expected, self.scale] if self.expected is not None else [])
        if reuse and all(a.dtype == np.float32 for a in arrays):
            return np.float32
        return np.float64

    def _history(self, cycles: list, e1: np.ndarray | None, s1: np.ndarray | None):
        """History baselines ``e2, s2`` (H, ni, nr) and ``hpos`` (k,) for the cycles that need one:
        a cycle after the first whose Dataset baseline is missing or incomplete. All of them in
        one streaming pass (:func:`~engine.indices.kernels.history_baseline_cycles`)."""
        cfg = self.cfg
        hpos = np.full(len(cycles), -1, dtype=np.int64)
        if not self.has_time or cfg.history_window <= 0:
            return _EMPTY3, _EMPTY3, hpos   # an empty window (history_window = 0) gives no baseline
        need = [(n, t) for n, t in enumerate(cycles)
                if t > 0 and (e1 is None or not (np.isfinite(e1[n]).all() and np.isfinite(s1[n]).all()))]
        if not need:
            return _EMPTY3, _EMPTY3, hpos
        ends = sorted({t for _, t in need})
        lo = max(0, ends[0] - cfg.history_window)
        hist = np.ascontiguousarray(self.value.isel(time=slice(lo, ends[-1])).values, dtype=np.float64)
        ni, nr = hist.shape[1:]
        e2 = np.empty((len(ends), ni, nr))
        s2 = np.empty((len(ends), ni, nr))
        K.history_baseline_cycles(hist, np.asarray(ends, dtype=np.int64) - lo, cfg.history_window, cfg.history_min,
                                  cfg.scale_floor_rel, cfg.scale_floor_abs, e2, s2)
        at = {t: k for k, t in enumerate(ends)}
        for n, t in need:
            hpos[n] = at[t]
        return e2, s2, hpos

    def run(self, cycles, want_deficit: bool = False, geometric: bool | None = None) -> dict:
        """Run the indicator pass for ``cycles`` (list of positions along time; None without time).

        Returns a dict of arrays with a leading cycle axis: ``num, den`` (k, n_groups, nr),
        ``pnum, pden`` (k, ni, n_parents), ``unresolved`` (k,) and, when ``want_deficit``,
        ``deficit``, ``method``, ``v``, ``e1, s1`` (the Dataset's baseline or 0-size),
        ``e2, s2, hpos`` (history baselines and which cycle uses which), ``peer_e, peer_s`` (k, ni).
        """
        cfg = self.cfg
        geometric = self.geometric if geometric is None else geometric
        cl = _cycle_list(cycles)
        # without the deficits nothing of these copies outlives the call: reuse the plan's work arrays
        reuse = not want_deficit
        dt = self._dtype(reuse)
        has1 = self.expected is not None
        empty = _EMPTY3 if dt == np.float64 else _EMPTY3_F32
        e1 = self._cycles(self.expected, cl, "expected" if reuse else None, dt) if has1 else empty
        s1 = self._cycles(self.scale, cl, "scale" if reuse else None, dt) if has1 else empty
        e2, s2, hpos = self._history(cl, e1 if has1 else None, s1 if has1 else None)
        # a run's stored steps: the values' copy and the rows that need peers in one read
        rows = np.empty(e1.shape[:2], dtype=np.bool_) if reuse and has1 else None
        v = self._stored_value(cl, dt, e1, s1, hpos, rows) if rows is not None else None
        fused = v is not None
        if not fused:
            v = self._cycles(self.value, cl, "value" if reuse else None, dt)
        k, ni, nr = v.shape
        peer_e = np.full((k, ni), np.nan)
        peer_s = np.full((k, ni), np.nan)
        parent = self.hier.base.parent
        n_par = len(self.hier.levels[1].ids) if parent is not None else 0
        parent = parent if parent is not None else np.zeros(0, dtype=np.int64)
        ng = self.spec.n_groups
        bstart, bstop = self.bstart, self.bstop
        if k >= 2 * n_threads() and len(bstart) > 1:
            # enough cycles to keep every thread busy: one block per cycle (longer row segments)
            bstart, bstop = np.zeros(1, dtype=np.int64), np.full(1, nr, dtype=np.int64)
        nb = len(bstart)
        num = np.zeros((k, ng, nr))
        den = np.zeros((k, ng, nr))
        pnum = np.zeros((k, ni, n_par))
        pden = np.zeros((k, ni, n_par))
        unresolved = np.zeros((k, nb, ni), dtype=np.int64)
        d_out = np.empty((k, ni, nr)) if want_deficit else _EMPTY3
        m_out = np.empty((k, ni, nr), dtype=np.int8) if want_deficit else np.zeros((0, 0, 0), dtype=np.int8)

        one = _one_thread()

        def run(todo):
            # the threaded pass on one thread (a run's side thread) is the serial one with a
            # thread pool's start-up: take the serial one (the same results; not compiled twice)
            serial = one or len(todo) * ni * nr < SERIAL_BELOW
            kern = K.normalise_accumulate_serial if serial else K.normalise_accumulate
            kern(todo, v, e1, s1, has1, e2, s2, hpos, self.spec.direction, self.spec.cfg_ref, self.spec.thr_ref,
                 peer_e, peer_s, cfg.tolerance, cfg.cap, cfg.scale_floor_rel, cfg.scale_floor_abs,
                 self.group_of, self.group_w, geometric, cfg.geometric_floor,
                 self.order, bstart, bstop, parent, self.hier.weight, n_par,
                 num, den, pnum, pden, unresolved, want_deficit, d_out, m_out)

        # the rows only peers can normalise, found before the pass (not by a first pass and a
        # second one for every cycle that found peers: the same results, one pass; in a run's
        # warm-up nearly every stored step has such rows)
        if not fused:
            rows = np.empty((k, ni), dtype=np.bool_)
            K.rows_needing_peers(v, e1, s1, has1, e2, s2, hpos, self.spec.cfg_ref, self.spec.thr_ref, rows)
        need = np.flatnonzero(rows.any(axis=1))
        if len(need):
            pe = np.empty((len(need), ni))
            ps = np.empty((len(need), ni))
            # the work is the rows asked for (a run's warm-up leaves a few rows without a baseline):
            # few values go through the serial kernel, so a run never compiles the threaded one
            if one or int(rows[need].sum()) * nr < SERIAL_BELOW:
                # consecutive cycles (a run's warm-up: usually all of them) are a view, not a copy
                # of the part's values (84 MB at 12 steps x 2,926 x 300)
                sel = slice(need[0], need[-1] + 1) if need[-1] - need[0] + 1 == len(need) else need
                K.peer_baseline_cycles(v[sel], rows[sel], cfg.peers_min, cfg.scale_floor_rel, cfg.scale_floor_abs,
                                       pe, ps)
            else:
                for n, t in enumerate(need):
                    pe[n], ps[n] = K.peer_baseline(v[t], rows[t], cfg.peers_min, cfg.scale_floor_rel, cfg.scale_floor_abs)
            found = np.isfinite(pe).any(axis=1)
            peer_e[need[found]], peer_s[need[found]] = pe[found], ps[found]
        run(np.arange(k, dtype=np.int64))
        out = dict(num=num, den=den, pnum=pnum, pden=pden, unresolved=unresolved.sum(axis=(1, 2)))
        if want_deficit:
            out.update(deficit=d_out, method=m_out, v=v, e1=e1, s1=s1, e2=e2, s2=s2, hpos=hpos,
                       peer_e=peer_e, peer_s=peer_s, has1=has1)
        return out

    def cycle(self, t: int | None, want_deficit: bool = False, geometric: bool | None = None) -> dict:
        """Run the indicator pass for cycle ``t`` (position; None without time).

        Returns a dict with ``num, den, pnum, pden`` and, when ``want_deficit``, ``deficit``,
        ``method``, plus the baselines used (``e1, s1, e2, s2, peer_e, peer_s``) and ``v``.
        """
        c = self.run(None if t is None else [t], want_deficit, geometric)
        out = dict(num=c["num"][0], den=c["den"][0], pnum=c["pnum"][0], pden=c["pden"][0],
                   unresolved=int(c["unresolved"][0]))
        if want_deficit:
            h = int(c["hpos"][0])
            out.update(deficit=c["deficit"][0], method=c["method"][0], v=c["v"][0],
                       e1=c["e1"][0] if c["has1"] else _EMPTY2, s1=c["s1"][0] if c["has1"] else _EMPTY2,
                       e2=c["e2"][h] if h >= 0 else _EMPTY2, s2=c["s2"][h] if h >= 0 else _EMPTY2,
                       peer_e=c["peer_e"][0], peer_s=c["peer_s"][0], has1=c["has1"], has2=h >= 0)
        return out

    def parent_tables(self, pnum: np.ndarray, pden: np.ndarray) -> list[np.ndarray]:
        """Normalised-score tables ([k,] n_indicator, n_regions_at_level) for every level above the base."""
        # one kernel a level (the ratio and the next level's sums; numpy's strided column adds over
        # the streets cost ~10 ms a run's part): the same divisions, the same sums in the same order
        lead = pnum.shape[:-1]
        pnum = np.ascontiguousarray(pnum, dtype=np.float64).reshape(-1, pnum.shape[-1])
        pden = np.ascontiguousarray(pden, dtype=np.float64).reshape(-1, pden.shape[-1])
        tables = []
        for lv in range(1, len(self.hier.levels)):
            q = np.empty(pnum.shape)
            up = self.hier.levels[lv].parent
            n_up = len(self.hier.levels[lv + 1].ids) if up is not None else 0
            sn = np.empty((pnum.shape[0], n_up))
            sd = np.empty_like(sn)
            K.parent_ratio_rollup(pnum, pden, _NO_PARENT if up is None else np.asarray(up, dtype=np.int64), q, sn, sd)
            tables.append(q.reshape(lead + q.shape[-1:]))
            if up is None:
                break
            pnum, pden = sn, sd
        return tables

    def _compose(self, num: np.ndarray, den: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cfg = self.cfg
        return compose(finish(num, den, self.geometric), group_imputed(den, self.totals), self.spec, self.geometric,
                       cfg.geometric_floor)

    def indices_many(self, cycles) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``health, imputed, angles`` (k, n, n_all_regions) of ``cycles`` (list; None without time).

        Long replays go through the kernels in chunks of about :data:`CHUNK_VALUES` values, so
        the temporary arrays stay small whatever the number of cycles.
        """
        if cycles is None:
            return self._indices_chunk(None)
        ni, nr = self.value.sizes["indicator"], self.value.sizes["region"]
        step = max(1, CHUNK_VALUES // max(1, ni * nr))
        parts = [self._indices_chunk(list(cycles[a:a + step])) for a in range(0, len(cycles), step)]
        if len(parts) == 1:
            return parts[0]
        return tuple(np.concatenate([p[n] for p in parts]) for n in range(3))

    def _indices_chunk(self, cycles) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cfg = self.cfg
        c = self.run(cycles)
        k, ng, nr = c["num"].shape

        def flat(a):                                  # (k, rows, cols) -> (rows, k * cols)
            return np.ascontiguousarray(a.transpose(1, 0, 2)).reshape(a.shape[1], -1)

        def unflat(a, cols):                          # (rows, k * cols) -> (k, rows, cols)
            return a.reshape(a.shape[0], k, cols).transpose(1, 0, 2)

        parts = [tuple(unflat(x, nr) for x in self._compose(flat(c["num"]), flat(c["den"])))]
        if self.hier.base.parent is not None:
            for q in self.parent_tables(c["pnum"], c["pden"]):
                cols = q.shape[-1]
                qf = flat(q)
                num = np.empty((ng, qf.shape[1]))
                den = np.empty_like(num)
                K.table_group_sums(qf, self.group_of, self.group_w, self.geometric, cfg.geometric_floor, num, den)
                parts.append(tuple(unflat(x, cols) for x in self._compose(num, den)))
        return tuple(np.concatenate([p[n] for p in parts], axis=2) for n in range(3))

    def indices(self, t: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``health, imputed, angles`` of cycle ``t`` for every region of every level."""
        return tuple(x[0] for x in self.indices_many(None if t is None else [t]))


def compute_indices(ds: xr.Dataset, catalog=None, city=None, config=None, *, at=None) -> xr.Dataset:
    """Composite health and risk indices (0..100, 100 = everything normal) per region and level.

    Each value is normalised against its series' baseline (``expected``/``scale``, else the
    Dataset's own history, else the catalog's thresholds, else the other regions; a configured
    reference range or target first), direction-aware and winsorised, then aggregated with the
    catalog's weights (arithmetic or geometric, from the config) indicator -> dimension ->
    domain -> overall, plus the safety index (8 angles) and the three epidemic risks.
    Neighbourhood normalised scores are averaged (population-weighted) to streets and the
    district, and aggregated there the same way.

    Parameters
    ----------
    ds : xarray.Dataset
        ``value`` over (``indicator``, ``region``) or (``time``, ``indicator``, ``region``);
        optional ``expected`` and ``scale`` with the same dims.
    catalog : Catalog or list of dict, optional
        Indicator metadata (direction, dimension, domain, weight, thresholds); default: the
        bundled catalog.
    city : City, optional
        For street / district roll-ups (and the region names); without it, only the Dataset's
        own regions.
    config : IndicesConfig, path or None
        Default: ``indicators/indices.toml``.
    at : timestamp-like, optional
        Compute only this cycle (see :func:`select_time`; the earlier cycles still serve as
        history); the result keeps a time axis of length 1.

    Returns
    -------
    xarray.Dataset
        ``health`` (float64) and ``grade`` (int8, 0 = best grade, -1 = no data) and
        ``imputed`` (share of weight imputed) over ([``time``,] ``index``, ``region``);
        ``safety_angle`` over ([``time``,] ``angle``, ``region``). Coordinates: ``index_kind``,
        ``index_zh``, ``index_en`` on ``index``; ``level``, ``parent``, ``region_name`` on
        ``region`` (neighbourhoods, then streets, then the district).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ids = ["safety.public_order.police_violent.count_24h", "safety.public_safety.fire_all.count_24h"]
    >>> ds = xr.Dataset({"value": (("indicator", "region"), [[0.0, 9.0], [1.0, 1.0]]),
    ...                  "expected": (("indicator", "region"), [[1.0, 1.0], [1.0, 1.0]]),
    ...                  "scale": (("indicator", "region"), [[1.0, 1.0], [1.0, 1.0]])},
    ...                 coords={"indicator": ids, "region": ["A", "B"]})
    >>> out = compute_indices(ds)
    >>> out["health"].sel(index="public_order").values.tolist()
    [100.0, 0.0]
    >>> out["health"].sel(index="safety_index").values.tolist()
    [100.0, 50.0]
    >>> out["grade"].sel(index="safety_index").values.tolist()
    [0, 3]
    """
    return IndexPlan(catalog, city, config).compute(ds, at=at)


def _assemble(prep: Prepared, cycles: list | None, results: tuple) -> xr.Dataset:
    cfg = prep.cfg
    health, imputed, angles = results
    grade = grade_codes(health, cfg.grade_mins)
    dims3 = ("time", "index", "region")
    adims = ("time", "angle", "region")
    if not prep.has_time:
        health, imputed, angles, grade = health[0], imputed[0], angles[0], grade[0]
        dims3, adims = dims3[1:], adims[1:]
    coords = prep.plan.coords(prep.spec, prep.hier)
    if prep.has_time:
        # the plan's coordinates and the cycles' times (``Coordinates.assign`` merges and aligns
        # them all again: twice the cost, the same coordinates)
        coords = xr.Coordinates({**coords.variables, "time": prep.value["time"].values[cycles]})
    elif "time" in prep.ds.coords and prep.ds["time"].size == 1:
        coords = coords.assign(time=prep.ds["time"].values)
    out = xr.Dataset(
        {
            "health": (dims3, health, {"long_name": "health score", "units": "0-100 (100 = everything normal)"}),
            "grade": (dims3, grade, {"long_name": "grade code", "codes": ", ".join(f"{g.code}={g.key}" for g in cfg.grades),
                                     "missing": -1}),
            "imputed": (dims3, imputed, {"long_name": "share of the index's weight that was imputed"}),
            "safety_angle": (adims, angles, {"long_name": "safety-index angle score", "units": "0-100"}),
        },
        coords=coords,
        attrs={"aggregation": cfg.method, "config": cfg.source,
               "grade_min": [g.min for g in cfg.grades], "grade_key": [g.key for g in cfg.grades]},
    )
    return out
