"""What a run stores per period when it keeps ``store_every`` aggregates: one pass over a day's cycles.

A stored step of ``factor`` cycles holds the mean value (NaN skipped) and the highest score (NaN
skipped) of its cycles; a period without data stays NaN. numpy's ``nanmean`` / ``nanmax`` do the
same (``tests/scenario_reference.py``) but make several full-size temporaries per call, which
costs a second per simulated day at 2,926 indicators x 300 neighbourhoods.

>>> import numpy as np
>>> v = np.array([1.0, np.nan, 3.0, 5.0], np.float32).reshape(4, 1, 1)
>>> s = np.array([0.2, 0.9, np.nan, 0.1], np.float32).reshape(4, 1, 1)
>>> m, x = period_mean_max(v, s, 2)
>>> m.ravel().tolist(), [round(float(a), 2) for a in x.ravel()]
([1.0, 4.0], [0.9, 0.1])
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from numba import prange

from engine.config import njit


@njit(inline="always")
def _mean_max4(v0, v1, v2, v3, s0, s1, s2, s3, vo, so):  # pragma: no cover - compiled
    """One row of a period of four cycles: the four cycles' values and scores of the row summed
    and compared in registers, region by region (a straight loop over the regions: it vectorises),
    the same operations in the same order as the general loop of :func:`_mean_max_kernel`."""
    for r in range(vo.shape[0]):
        x = np.float64(v0[r])
        ok = x == x
        acc = 0.0 + (x if ok else 0.0)
        cnt = 0.0 + (1.0 if ok else 0.0)
        x = np.float64(v1[r])
        ok = x == x
        acc += x if ok else 0.0
        cnt += 1.0 if ok else 0.0
        x = np.float64(v2[r])
        ok = x == x
        acc += x if ok else 0.0
        cnt += 1.0 if ok else 0.0
        x = np.float64(v3[r])
        ok = x == x
        acc += x if ok else 0.0
        cnt += 1.0 if ok else 0.0
        best = -math.inf
        t = np.float64(s0[r])
        best = t if t > best else best
        t = np.float64(s1[r])
        best = t if t > best else best
        t = np.float64(s2[r])
        best = t if t > best else best
        t = np.float64(s3[r])
        best = t if t > best else best
        vo[r] = acc / cnt if cnt > 0.0 else math.nan
        so[r] = best if best > -math.inf else math.nan


@njit(parallel=True)
def _mean_max_kernel(value, score, factor, vout, sout):  # pragma: no cover - compiled
    n_out = vout.shape[0]
    n_ind = value.shape[1]
    n_reg = value.shape[2]
    for ji in prange(n_out * n_ind):          # rows of (stored step, indicator); regions innermost (contiguous)
        j = ji // n_ind
        i = ji - j * n_ind
        if factor == 4:                       # hourly steps of 15-minute cycles (the demo's): no scratch rows
            k = 4 * j
            _mean_max4(value[k, i], value[k + 1, i], value[k + 2, i], value[k + 3, i],
                       score[k, i], score[k + 1, i], score[k + 2, i], score[k + 3, i], vout[j, i], sout[j, i])
            continue
        acc = np.zeros(n_reg)
        cnt = np.zeros(n_reg)
        best = np.full(n_reg, -math.inf)
        for k in range(j * factor, (j + 1) * factor):
            for r in range(n_reg):
                x = np.float64(value[k, i, r])
                ok = x == x                   # not NaN
                acc[r] += x if ok else 0.0
                cnt[r] += 1.0 if ok else 0.0
                s = np.float64(score[k, i, r])
                best[r] = s if s > best[r] else best[r]   # NaN compares false: skipped
        for r in range(n_reg):
            vout[j, i, r] = acc[r] / cnt[r] if cnt[r] > 0.0 else math.nan
            sout[j, i, r] = best[r] if best[r] > -math.inf else math.nan


def period_mean_max(value: np.ndarray, score: np.ndarray, factor: int, out=None) -> tuple[np.ndarray, np.ndarray]:
    """Per period of ``factor`` cycles: the mean of ``value`` and the max of ``score``, NaN skipped.

    Parameters
    ----------
    value, score : arrays (n_t, n_indicator, n_region)
        A day's cycles; trailing cycles that do not fill a period are dropped.
    factor : int
        Cycles per stored step (>= 1).
    out : (mean, max) float32 arrays, optional
        C-contiguous arrays of the output shape to write into (e.g. a slice of a day's buffer);
        fresh ones without it.

    Returns
    -------
    mean, max : float32 arrays (n_t // factor, n_indicator, n_region)
    """
    value = np.asarray(value)
    score = np.asarray(score)
    if value.ndim != 3 or value.shape != score.shape:
        raise ValueError(f"value and score must be (time, indicator, region) arrays of one shape, "
                         f"got {value.shape} and {score.shape}")
    if int(factor) != factor or factor < 1:
        raise ValueError(f"factor must be a whole number >= 1, got {factor!r}")
    factor = int(factor)
    n_out = value.shape[0] // factor
    shape = (n_out,) + value.shape[1:]
    if out is None:
        vout = np.empty(shape, dtype=np.float32)
        sout = np.empty_like(vout)
    else:
        vout, sout = out
        for a in (vout, sout):
            if a.shape != shape or a.dtype != np.float32 or not a.flags.c_contiguous:
                raise ValueError(f"out arrays must be C-contiguous float32 of shape {shape}, "
                                 f"got {a.dtype} {a.shape} (contiguous: {a.flags.c_contiguous})")
    if n_out:
        _mean_max_kernel(np.ascontiguousarray(value), np.ascontiguousarray(score), factor, vout, sout)
    return vout, sout


def store_compressor():
    """The data variables' compressor: blosc-lz4 level 5 **without byte shuffle** (numcodecs).

    Lossless like any codec. On the demo's hourly days (45-68 % NaN, many values repeated from
    one stored step to the next) it takes ~20 % less CPU to compress than zarr's default, the
    same codec with byte shuffle (no shuffle pass, and lz4 finds whole repeated values as
    matches), and its chunks are ~13 % smaller (docs/report.md, fourteenth session). Any zarr
    reader (``xarray.open_zarr``) decodes it from the array's ``.zarray``.
    """
    from numcodecs import Blosc

    return Blosc(cname="lz4", clevel=5, shuffle=Blosc.NOSHUFFLE)


def create_store(ds, path) -> None:
    """Write ``ds`` (a run's first stored day) as a new Zarr store at ``path``: format 2, blosc-lz4
    without shuffle (:func:`store_compressor`), consolidated metadata, chunks of at most 96 steps
    x 256 indicators or indices x 512 regions (one chunk of time per day: a day has at most 96
    stored steps). The later days' appends (:func:`append_day`) use each array's own compressor."""
    import zarr  # noqa: F401  (the engine xarray writes through)

    encoding = {}
    for name, var in ds.data_vars.items():
        chunks = tuple(min(s, c) for s, c in zip(var.shape, (96, 256, 512)[-var.ndim:]))
        encoding[name] = {"chunks": chunks, "compressors": (store_compressor(),)}
    ds.to_zarr(path, mode="w", encoding=encoding, consolidated=True, zarr_format=2)


def _plain(v):
    """An attribute value as JSON takes it (numpy scalars to Python numbers)."""
    return v.item() if isinstance(v, np.generic) else v


def append_day(path, data: dict, times, attrs: dict | None = None) -> None:
    """Append one day to a store :func:`create_store` made: each time-dim array grows by the day
    and its chunks are written, the ``time`` coordinate is encoded with the store's own units and
    calendar, the group's attributes take ``attrs`` and the consolidated metadata is rewritten once.

    What the store holds afterwards equals ``xarray.Dataset.to_zarr(path, append_dim="time")`` of
    the day (``tests/test_scenario_store.py`` reads both back); it skips xarray's per-append
    checks and re-encoding, which cost more than compressing an hourly day. A plain local store
    (:func:`_append_plain`: the run's) is written file by file, the same bytes zarr writes
    (``tests/test_scenario_store_direct.py``); any other through zarr.

    Parameters
    ----------
    path : str or Path
        The store.
    data : dict of str -> array
        Every data variable of the store with a ``time`` dimension, time first, each of the day's
        ``len(times)`` steps and the store's other dimensions.
    times : array of datetime64
        The day's stored times, after the store's last one.
    attrs : dict, optional
        The group's attributes to set (xarray's append does the same).
    """
    if _append_plain(path, data, times, attrs):
        return
    _append_zarr(path, data, times, attrs)


def _day_checked(path, growing: list, shapes: dict, dtypes: dict, n0: int, data: dict, times, units: str,
                 calendar: str, tdtype, last_time):
    """The checks of :func:`append_day` (the same either way): the day's arrays (cast to the
    store's dtypes) and its times encoded (``tdtype`` numbers in ``units``). ``last_time()``: the
    store's last stored number (called when ``n0 > 0``)."""
    from xarray.coding.times import decode_cf_datetime, encode_cf_datetime

    n = len(times)
    if sorted(data) != growing:
        raise ValueError(f"{path}: the day must give every time-dim array of the store {growing}, got {sorted(data)}")
    times = np.asarray(times, dtype="datetime64[ns]")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")            # inexact times are refused below (decoded back in the store's units)
        num, _, _ = encode_cf_datetime(times, units, calendar, dtype=tdtype)
    num = np.asarray(num)
    back = np.asarray(decode_cf_datetime(num, units, calendar), dtype="datetime64[ns]")
    if num.dtype != tdtype or not np.array_equal(back, times):
        raise ValueError(f"{path}: times {times[0]} .. {times[-1]} are not exact in the store's units {units!r} "
                         f"({tdtype})")
    if n0 and times[0] <= np.asarray(decode_cf_datetime(last_time(), units, calendar), dtype="datetime64[ns]")[0]:
        raise ValueError(f"{path}: the day starts at {times[0]}, not after the store's last time")
    arrays = {}
    for k in growing:
        a = np.asarray(data[k])
        if shapes[k][0] != n0 or a.shape != (n,) + tuple(shapes[k][1:]):
            raise ValueError(f"{path}: {k} must be {(n,) + tuple(shapes[k][1:])} after {n0} stored steps; "
                             f"got {a.shape} (stored {tuple(shapes[k])})")
        arrays[k] = a.astype(dtypes[k], copy=False)
    return arrays, num


def _append_zarr(path, data: dict, times, attrs: dict | None) -> None:
    """:func:`append_day` through zarr."""
    import zarr

    g = zarr.open_group(str(path), mode="r+", zarr_format=2)
    tz = g["time"]
    n0 = tz.shape[0]
    growing = sorted(k for k in g.array_keys()
                     if k != "time" and (g[k].attrs.get("_ARRAY_DIMENSIONS") or [None])[0] == "time")
    units, calendar = tz.attrs["units"], tz.attrs.get("calendar", "proleptic_gregorian")
    zas = {k: g[k] for k in growing}
    arrays, num = _day_checked(path, growing, {k: za.shape for k, za in zas.items()},
                               {k: za.dtype for k, za in zas.items()}, n0, data, times, units, calendar,
                               tz.dtype, lambda: tz[n0 - 1:n0])
    n = len(num)
    for k, a in arrays.items():            # the data first, the time axis last
        # every chunk written as it is: zarr's default first compares each chunk with the fill value
        # (a full-size fill array and an ``array_equal`` with NaN tests a chunk, more CPU than
        # compressing it) to leave an all-fill chunk unwritten; one written reads back the same
        za = zas[k].with_config({"write_empty_chunks": True})
        za.resize((n0 + n,) + za.shape[1:])
        za[n0:n0 + n] = a
    tz.resize((n0 + n,))
    tz[n0:n0 + n] = num
    if attrs:
        g.update_attributes({k: _plain(v) for k, v in attrs.items()})   # one metadata write
    zarr.consolidate_metadata(str(path), zarr_format=2)


def _plain_array(meta: dict) -> bool:
    """Whether a format-2 array's chunks are what :func:`_encode_chunks` writes: C order, no
    filters, a compressor, chunk keys joined by "." (the stores :func:`create_store` makes)."""
    return (meta.get("zarr_format") == 2 and meta.get("order") == "C" and not meta.get("filters")
            and bool(meta.get("compressor")) and meta.get("dimension_separator", ".") == "."
            and np.dtype(meta["dtype"]).isnative and np.dtype(meta["dtype"]) != object)


def _append_plain(path, data: dict, times, attrs: dict | None) -> bool:
    """:func:`append_day` file by file, where the store is a local directory with consolidated
    metadata, its time-dim arrays plain (:func:`_plain_array`), each grown by whole chunks from a
    chunk boundary (the run's days: 24 or 96 steps in chunks of one day) or, where a chunk is
    partial, with a fill value. Each chunk is encoded with the array's compressor (numcodecs, as
    zarr does) and written to its file; each ``.zarray``, the group's ``.zattrs`` and
    ``.zmetadata`` are rewritten as zarr writes them (``json.dumps``, zarr's indent; the
    consolidated metadata without). The same bytes as :func:`_append_zarr`, without zarr's
    machinery (its event loop a chunk, a copy a chunk; the metadata read and written several
    times): ~-25 % of the CPU of an hourly day's append (docs/indices.md, eighteenth session).
    Returns False, having written nothing, where the store is not so: zarr writes it."""
    import json
    from pathlib import Path

    import numcodecs
    import zarr

    root = Path(path)
    try:
        zm = json.loads((root / ".zmetadata").read_text())
    except (OSError, ValueError):
        return False
    md = zm.get("metadata")
    if zm.get("zarr_consolidated_format") != 1 or not isinstance(md, dict) or "time/.zarray" not in md:
        return False
    names = [k[:-len("/.zarray")] for k in md if k.endswith("/.zarray") and k.count("/") == 1]
    growing = sorted(k for k in names if k != "time"
                     and ((md.get(f"{k}/.zattrs") or {}).get("_ARRAY_DIMENSIONS") or [None])[0] == "time")
    metas = {k: md[f"{k}/.zarray"] for k in growing + ["time"]}
    tattrs = md.get("time/.zattrs") or {}
    n = len(times)
    n0 = metas["time"]["shape"][0]
    for k, m in metas.items():
        if not _plain_array(m) or m["shape"][0] != n0 or n0 % m["chunks"][0]:
            return False
        if m.get("fill_value") is None and any(s % c for s, c in zip([n] + m["shape"][1:], m["chunks"])):
            return False
        try:
            if json.loads((root / k / ".zarray").read_text()) != m:      # the consolidated view is the store's
                return False
        except (OSError, ValueError):
            return False
    if "units" not in tattrs:
        return False
    try:
        if json.loads((root / ".zattrs").read_text()) != (md.get(".zattrs") or {}):
            return False
    except (OSError, ValueError):
        return False
    tm = metas["time"]
    tdtype = np.dtype(tm["dtype"])

    def last_time():
        c = tm["chunks"][0]
        key = root / "time" / str((n0 - 1) // c)
        raw = numcodecs.get_codec(tm["compressor"]).decode(key.read_bytes())
        return np.frombuffer(raw, dtype=tdtype)[(n0 - 1) % c:(n0 - 1) % c + 1]

    arrays, num = _day_checked(path, growing, {k: metas[k]["shape"] for k in growing},
                               {k: np.dtype(metas[k]["dtype"]) for k in growing}, n0, data, times,
                               tattrs["units"], tattrs.get("calendar", "proleptic_gregorian"), tdtype, last_time)
    indent = zarr.config.get("json_indent")
    arrays["time"] = num.astype(tdtype, copy=False)
    for k, a in arrays.items():            # the data first, the time axis last (as zarr)
        m = metas[k]
        _encode_chunks(root / k, m, n0, a)
        m["shape"] = [n0 + n] + m["shape"][1:]
        (root / k / ".zarray").write_bytes(json.dumps(m, indent=indent, allow_nan=True).encode())
    if attrs:
        ga = md.get(".zattrs") or {}
        ga.update({k: _plain(v) for k, v in attrs.items()})
        md[".zattrs"] = ga
        (root / ".zattrs").write_bytes(json.dumps(ga, indent=indent, allow_nan=True).encode())
    (root / ".zmetadata").write_bytes(json.dumps(zm, allow_nan=True).encode())
    return True


def _encode_chunks(d, meta: dict, n0: int, a: np.ndarray) -> None:
    """Write ``a`` as the steps ``n0 ..`` of the array in folder ``d`` (format 2, ``meta`` its
    ``.zarray``; ``n0`` on a chunk boundary): each chunk encoded with the array's compressor and
    written to its file, as zarr does it -- a partial chunk padded with the fill value, every chunk
    written, the fill value's too (``write_empty_chunks``)."""
    import numcodecs

    chunks = tuple(meta["chunks"])
    comp = numcodecs.get_codec(meta["compressor"])
    grid = [range(0, s, c) for s, c in zip(a.shape, chunks)]
    t_first = n0 // chunks[0]
    buf = np.empty(chunks, a.dtype)          # one chunk's copy, reused
    fill = meta.get("fill_value")
    for idx in np.ndindex(*(len(g) for g in grid)):
        block = a[tuple(slice(g[j], g[j] + c) for g, j, c in zip(grid, idx, chunks))]
        if block.shape != chunks:
            buf[...] = np.array(float(fill) if isinstance(fill, str) else fill, dtype=a.dtype)
            buf[tuple(slice(0, s) for s in block.shape)] = block
            block = buf
        elif not block.flags.c_contiguous:
            np.copyto(buf, block)
            block = buf
        (d / ".".join(str(j + (t_first if ax == 0 else 0)) for ax, j in enumerate(idx))).write_bytes(comp.encode(block))


class DayWriter:
    """A run's stores written one day at a time, the appends in a background thread.

    The first day of a store is written at once (:func:`create_store`); each later day goes to
    one worker thread (:func:`append_day`) while the run computes the next day: compression
    and the numba kernels both release the GIL. A store's days are written in order. The day
    buffers (:meth:`buffers`) come in two sets per store used in turn: a set is handed out again
    only when the write of its previous day is done, so a day's arrays are never changed while
    they are written. An error in the worker is raised by the next call (and by :meth:`close`).

    Parameters
    ----------
    background : bool
        False writes every day at once in the calling thread (same stores).
    """

    def __init__(self, background: bool = True):
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zarr-day") if background else None
        self._created: set = set()
        self._sets: dict = {}       # store -> [turn, [(buffers, future), (buffers, future)]]
        self._pending: list = []

    def buffers(self, path, shapes: dict) -> dict:
        """The next free set of day buffers of store ``path``: ``{name: array}`` for ``{name: (shape,
        dtype)}``; it waits until the day last written from this set is stored."""
        key = str(path)
        turn, sets = self._sets.setdefault(key, [0, [(None, None), (None, None)]])
        bufs, fut = sets[turn]
        if fut is not None:
            fut.result()
        if bufs is None or any(bufs[k].shape != tuple(s) or bufs[k].dtype != np.dtype(t) for k, (s, t) in shapes.items()) \
                or set(bufs) != set(shapes):
            bufs = {k: np.empty(s, dtype=t) for k, (s, t) in shapes.items()}
        sets[turn] = (bufs, None)
        return bufs

    def write(self, path, make_dataset, data: dict, times, attrs: dict | None = None):
        """Store a day: ``make_dataset()`` (an xarray Dataset of the day, called only for the
        store's first day) creates the store; later days append ``data`` (the time-dim arrays),
        ``times`` and ``attrs`` (:func:`append_day`), in the background when the writer has a thread.

        Returns the background write's future (``data``'s arrays must not change until it is
        done: those of :meth:`buffers` are guarded here, any others are the caller's to keep),
        or None when the day is written on return."""
        self._raise_failed()
        key = str(path)
        if key not in self._created:          # (nothing of a store is pending before it exists)
            create_store(make_dataset(), path)
            self._created.add(key)
            return None
        if self._pool is None:
            append_day(path, data, times, attrs)
            return None
        fut = self._pool.submit(append_day, path, data, np.array(times), dict(attrs or {}))
        self._pending.append((key, fut))
        entry = self._sets.get(key)
        if entry is not None:
            turn, sets = entry
            bufs, _ = sets[turn]
            if bufs is not None and any(any(np.shares_memory(b, a) for b in bufs.values()) for a in data.values()):
                sets[turn] = (bufs, fut)
                entry[0] = 1 - turn
        return fut

    def wait(self, path) -> None:
        """Wait until every day given so far to store ``path`` is written (raising a write's error);
        the other stores' writes go on (a reader of ``path`` need not wait for them)."""
        key = str(path)
        for k, f in list(self._pending):
            if k == key:
                f.result()

    def _raise_failed(self) -> None:
        keep = []
        for key, f in self._pending:
            if f.done():
                f.result()           # raises the worker's error here
            else:
                keep.append((key, f))
        self._pending = keep

    def close(self) -> None:
        """Wait for every day to be written (raising a write's error) and stop the thread."""
        try:
            for _, f in self._pending:
                f.result()
        finally:
            self._pending = []
            if self._pool is not None:
                self._pool.shutdown(wait=True)
