"""The conventions every benchmark group follows, and the ratios derived from them.

A *group* is one hot path at one size (``"cycle-refresh-300"``, ``"detectors"``...). In it:

* the **engine** benchmark times the engine and declares the bytes it must touch
  (:func:`engine_bench`); after the run it gets a floor time and a floor ratio;
* the **peer** benchmark times a straightforward pandas/numpy implementation of the same
  computation (:func:`peer_bench`), possibly on a reduced input, with ``scale`` saying by
  how much its time must be multiplied to stand for the full size; the peer test also
  checks that the engine's result equals the peer's (:func:`assert_same`);
* a **floor** benchmark is a machine measurement (the memory-bandwidth copy): shown and
  tracked, never counted as an engine regression.

What gets stored in each benchmark's ``extra_info``:

====================  =======================================================  ==============
key                   meaning                                                  set by
====================  =======================================================  ==============
``role``              ``"engine"``, ``"peer"`` or ``"floor"``                  the test
``group``             the group (also ``benchmark.group``)                     the test
``size``              free text describing the problem size                    the test
``bytes``             bytes the computation must read + write                  the test
``scale``             peer only: time multiplier to full size (default 1)      the test
``peer_of``           peer only: name of the engine benchmark it pairs with    the test
``floor_Bps``         session's memory bandwidth (bytes/s)                     conftest
``floor_s``           ``bytes / floor_Bps``                                    conftest
``floor_ratio``       ``median / floor_s`` (>= 1; lower is better)             conftest
``peer``              name of the paired peer benchmark                        conftest
``peer_median_s``     peer median x scale                                      conftest
``peer_ratio``        engine median / (peer median x scale); < 1 is faster     conftest
``speedup``           1 / peer_ratio                                           conftest
====================  =======================================================  ==============

>>> class FakeBenchmark:            # stands in for pytest-benchmark's fixture
...     group = None
...     def __init__(self): self.extra_info = {}
>>> b = engine_bench(FakeBenchmark(), "detectors", bytes_touched=8_000_000, size="6000 regions")
>>> b.group, b.extra_info["role"], b.extra_info["bytes"]
('detectors', 'engine', 8000000)
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

ROLES = ("engine", "peer", "floor")


def _check_group(group) -> str:
    if not isinstance(group, str) or not group.strip() or group != group.strip():
        raise ValueError(f"group must be a non-empty string without surrounding spaces, got {group!r}")
    return group


def record_floor(benchmark, bytes_touched) -> None:
    """Record the bytes a benchmark must touch (read + written) in its ``extra_info``.

    ``benchmarks/conftest.py`` turns them into ``floor_s`` (the time the memory-bandwidth
    floor implies) and ``floor_ratio`` (median / floor_s) once the benchmark has run.

    Parameters
    ----------
    benchmark : pytest-benchmark fixture
    bytes_touched : int
        Bytes read plus bytes written by one call of the benchmarked function
        (count each input array once, each output array once).

    Examples
    --------
    >>> class B: extra_info = {}
    >>> record_floor(B, 2 * 8 * 1_000_000); B.extra_info
    {'bytes': 16000000}
    """
    if isinstance(bytes_touched, bool) or not isinstance(bytes_touched, (int, np.integer)) or bytes_touched <= 0:
        raise ValueError(f"bytes_touched must be a positive integer (bytes read + written), got {bytes_touched!r}")
    benchmark.extra_info["bytes"] = int(bytes_touched)


def declare_benchmark(benchmark, *, role: str, group: str, bytes_touched: int | None = None,
                      scale: float = 1.0, peer_of: str | None = None, size: str | None = None):
    """Declare a benchmark's role and group before calling ``benchmark(...)``.

    Prefer :func:`engine_bench` and :func:`peer_bench`; this is the general form (the
    floor group uses ``role="floor"``).

    Parameters
    ----------
    benchmark : pytest-benchmark fixture
    role : {"engine", "peer", "floor"}
    group : str
        The group; engine and peer of one computation share it.
    bytes_touched : int, optional
        Required for ``engine`` and ``floor``; see :func:`record_floor`.
    scale : float
        Peer only: factor by which the peer's time is multiplied to stand for the
        engine's size (e.g. 20 when the peer runs 300 of 6,000 regions and scales
        linearly). Must be > 0.
    peer_of : str, optional
        Peer only: the engine benchmark's test name, needed only when a group has
        several peers.
    size : str, optional
        Free text describing the size ("6000 regions x 2600 indicators").

    Returns
    -------
    The same ``benchmark`` fixture, for chaining.

    Examples
    --------
    >>> class B:
    ...     group = None
    ...     def __init__(self): self.extra_info = {}
    >>> declare_benchmark(B(), role="peer", group="indices", scale=20.0).extra_info
    {'role': 'peer', 'group': 'indices', 'scale': 20.0}
    >>> declare_benchmark(B(), role="boss", group="indices")
    Traceback (most recent call last):
    ...
    ValueError: role must be one of ('engine', 'peer', 'floor'), got 'boss'
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    _check_group(group)
    existing = getattr(benchmark, "group", None)
    if existing is not None and existing != group:
        raise ValueError(f"benchmark already has group {existing!r} (from a marker?), declared {group!r}")
    info = benchmark.extra_info
    if "role" in info and info["role"] != role:
        raise ValueError(f"benchmark already declared with role {info['role']!r}, now {role!r}")
    benchmark.group = group
    info["role"] = role
    info["group"] = group
    if size is not None:
        if not isinstance(size, str):
            raise ValueError(f"size must be a string describing the problem size, got {size!r}")
        info["size"] = size
    if role == "peer":
        if bytes_touched is not None:
            record_floor(benchmark, bytes_touched)
        if isinstance(scale, bool) or not isinstance(scale, (int, float, np.integer, np.floating)) \
                or not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"scale must be a finite number > 0, got {scale!r}")
        info["scale"] = float(scale)
        if peer_of is not None:
            if not isinstance(peer_of, str) or not peer_of:
                raise ValueError(f"peer_of must be the engine benchmark's test name, got {peer_of!r}")
            info["peer_of"] = peer_of
    else:
        if bytes_touched is None:
            raise ValueError(f"role {role!r} needs bytes_touched (bytes read + written), got None")
        if scale != 1.0 or peer_of is not None:
            raise ValueError(f"scale and peer_of are for peers only, not role {role!r}")
        record_floor(benchmark, bytes_touched)
    return benchmark


def engine_bench(benchmark, group: str, *, bytes_touched: int, size: str | None = None):
    """Declare the engine benchmark of ``group`` (see :func:`declare_benchmark`).

    Examples
    --------
    >>> class B:
    ...     group = None
    ...     def __init__(self): self.extra_info = {}
    >>> engine_bench(B(), "scan", bytes_touched=10).extra_info["role"]
    'engine'
    """
    return declare_benchmark(benchmark, role="engine", group=group, bytes_touched=bytes_touched, size=size)


def peer_bench(benchmark, group: str, *, scale: float = 1.0, peer_of: str | None = None,
               size: str | None = None):
    """Declare the peer benchmark of ``group`` (see :func:`declare_benchmark`).

    Examples
    --------
    >>> class B:
    ...     group = None
    ...     def __init__(self): self.extra_info = {}
    >>> peer_bench(B(), "scan", scale=4).extra_info["scale"]
    4.0
    """
    return declare_benchmark(benchmark, role="peer", group=group, scale=scale, peer_of=peer_of, size=size)


def assert_same(engine, peer, *, rtol: float = 1e-9, atol: float = 0.0, path: str = "result") -> None:
    """Assert that the engine's result equals the peer's (arrays, frames, dicts, scalars).

    Floats compare with ``rtol``/``atol`` and NaN == NaN; integers, booleans and strings
    exactly; dicts by keys then values; sequences by length then items; pandas objects
    by labels then values. The error names the first differing element.

    Examples
    --------
    >>> import numpy as np
    >>> assert_same({"v": np.array([1.0, np.nan])}, {"v": np.array([1.0, np.nan])})
    >>> assert_same([1, 2], [1, 3])
    Traceback (most recent call last):
    ...
    AssertionError: result[1]: engine 2 != peer 3
    """
    if hasattr(engine, "to_numpy") and hasattr(peer, "to_numpy"):
        for attr in ("columns", "index"):
            a, b = getattr(engine, attr, None), getattr(peer, attr, None)
            if (a is None) != (b is None) or (a is not None and list(a) != list(b)):
                raise AssertionError(f"{path}.{attr}: engine {list(a) if a is not None else None} "
                                     f"!= peer {list(b) if b is not None else None}")
        assert_same(engine.to_numpy(), peer.to_numpy(), rtol=rtol, atol=atol, path=path)
        return
    if isinstance(engine, dict) or isinstance(peer, dict):
        if not (isinstance(engine, dict) and isinstance(peer, dict)):
            raise AssertionError(f"{path}: engine {type(engine).__name__} vs peer {type(peer).__name__}")
        if set(engine) != set(peer):
            raise AssertionError(f"{path}: keys differ: engine only {sorted(map(str, set(engine) - set(peer)))}, "
                                 f"peer only {sorted(map(str, set(peer) - set(engine)))}")
        for k in engine:
            assert_same(engine[k], peer[k], rtol=rtol, atol=atol, path=f"{path}[{k!r}]")
        return
    if isinstance(engine, np.ndarray) or isinstance(peer, np.ndarray):
        a, b = np.asarray(engine), np.asarray(peer)
        if a.shape != b.shape:
            raise AssertionError(f"{path}: shape engine {a.shape} != peer {b.shape}")
        if a.dtype.kind in "fc" or b.dtype.kind in "fc":
            ok = np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True)
        else:
            ok = a == b
        ok = np.asarray(ok)
        if not ok.all():
            idx = tuple(int(i) for i in np.argwhere(~ok)[0])
            raise AssertionError(f"{path}{list(idx)}: engine {a[idx]!r} != peer {b[idx]!r} "
                                 f"({int((~ok).sum())} of {ok.size} differ; rtol={rtol}, atol={atol})")
        return
    if isinstance(engine, (list, tuple)) and isinstance(peer, (list, tuple)):
        if len(engine) != len(peer):
            raise AssertionError(f"{path}: length engine {len(engine)} != peer {len(peer)}")
        for i, (x, y) in enumerate(zip(engine, peer)):
            assert_same(x, y, rtol=rtol, atol=atol, path=f"{path}[{i}]")
        return
    if isinstance(engine, (float, np.floating)) or isinstance(peer, (float, np.floating)):
        x, y = float(engine), float(peer)
        if (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=rtol, abs_tol=atol):
            return
        raise AssertionError(f"{path}: engine {x!r} != peer {y!r} (rtol={rtol}, atol={atol})")
    if engine != peer:
        raise AssertionError(f"{path}: engine {engine!r} != peer {peer!r}")


def apply_floor(extra_info: dict, median_s: float | None, bandwidth_Bps: float) -> None:
    """Fill ``floor_Bps``, ``floor_s`` and ``floor_ratio`` in ``extra_info`` (needs ``bytes``).

    Examples
    --------
    >>> info = {"bytes": 4_000_000_000}
    >>> apply_floor(info, 0.5, 2e10); info["floor_s"], info["floor_ratio"]
    (0.2, 2.5)
    """
    if "bytes" not in extra_info:
        return
    if not (bandwidth_Bps and math.isfinite(bandwidth_Bps) and bandwidth_Bps > 0):
        raise ValueError(f"bandwidth_Bps must be a finite number > 0, got {bandwidth_Bps!r}")
    floor_s = float(extra_info["bytes"]) / float(bandwidth_Bps)
    extra_info["floor_Bps"] = float(bandwidth_Bps)
    extra_info["floor_s"] = floor_s
    if median_s is not None and floor_s > 0:
        extra_info["floor_ratio"] = float(median_s) / floor_s


def _median(bench: dict):
    stats = bench.get("stats") or {}
    m = stats.get("median")
    return float(m) if isinstance(m, (int, float)) and m > 0 else None


def pair_peers(benchmarks: list[dict]) -> dict[str, dict]:
    """Pair every non-peer benchmark with its peer, in pytest-benchmark's JSON records.

    Rule: within a group, a peer with ``peer_of`` pairs with the benchmark of that
    ``name`` (or ``fullname``); a group's only peer without ``peer_of`` pairs with
    every engine/floor benchmark of the group that no ``peer_of`` claimed.

    Returns
    -------
    dict
        ``fullname`` of the engine/floor benchmark -> the peer's record.

    Examples
    --------
    >>> e = {"name": "test_e", "fullname": "f::test_e", "group": "g", "extra_info": {"role": "engine"}}
    >>> p = {"name": "test_p", "fullname": "f::test_p", "group": "g", "extra_info": {"role": "peer"}}
    >>> pair_peers([e, p])["f::test_e"]["name"]
    'test_p'
    """
    by_group: dict = defaultdict(list)
    for b in benchmarks:
        info = b.get("extra_info") or {}
        by_group[info.get("group", b.get("group"))].append(b)
    pairs: dict[str, dict] = {}
    for members in by_group.values():
        peers = [b for b in members if (b.get("extra_info") or {}).get("role") == "peer"]
        others = [b for b in members if (b.get("extra_info") or {}).get("role") != "peer"]
        free = [p for p in peers if not p["extra_info"].get("peer_of")]
        for b in others:
            named = [p for p in peers if p["extra_info"].get("peer_of") in (b.get("name"), b.get("fullname"))]
            if named:
                pairs[b["fullname"]] = named[0]
            elif len(free) == 1:
                pairs[b["fullname"]] = free[0]
    return pairs


def apply_peer_ratios(benchmarks: list[dict]) -> None:
    """Fill ``peer``, ``peer_median_s``, ``peer_ratio`` and ``speedup`` in place.

    ``peer_ratio = engine median / (peer median x scale)``; ``speedup`` is its inverse.

    Examples
    --------
    >>> e = {"name": "e", "fullname": "e", "group": "g", "extra_info": {"role": "engine"},
    ...      "stats": {"median": 0.5}}
    >>> p = {"name": "p", "fullname": "p", "group": "g", "extra_info": {"role": "peer", "scale": 4.0},
    ...      "stats": {"median": 1.0}}
    >>> apply_peer_ratios([e, p]); e["extra_info"]["peer_ratio"], e["extra_info"]["speedup"]
    (0.125, 8.0)
    """
    by_name = {b["fullname"]: b for b in benchmarks}
    for fullname, peer in pair_peers(benchmarks).items():
        b = by_name[fullname]
        mine, theirs = _median(b), _median(peer)
        if mine is None or theirs is None:
            continue
        scaled = theirs * float(peer["extra_info"].get("scale", 1.0))
        info = b.setdefault("extra_info", {})
        info["peer"] = peer.get("name")
        info["peer_median_s"] = scaled
        info["peer_ratio"] = mine / scaled
        info["speedup"] = scaled / mine
