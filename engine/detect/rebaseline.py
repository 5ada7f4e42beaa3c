"""Re-learn the baselines of chosen series: reset their detector state to warm-up.

When a scheduled change moves whole groups of series on a known day (a stage of a reopening
sends a sector back to work, a venue cap is lifted), the detectors' baselines describe a city
that no longer exists: each moved series would alarm, and keep alarming, until its slow level
caught up. An operations centre that knows its timeline re-learns those baselines on the day
the change acts instead. :func:`rebaseline` does that for a set of ``(indicator, region)``
series of a :class:`engine.detect.Detectors`: their per-series state goes back to the values
of a fresh state (nothing learned: warm-up, running means, CUSUM at zero), so they are not
scored until their warm-up has passed again (catalog thresholds still apply, as in any
warm-up), then judged against baselines learned after the change.

The state's layout belongs to the detectors (:class:`engine.detect.state.DetectorState`); this
module does not name its arrays. It iterates over ``state.arrays()`` and tells their role from
their shapes and from what the state module and the detectors expose:

* **per-series** arrays: the names listed in the state module's ``_SERIES`` (the arrays
  :meth:`DetectorState.load` checks as ``(n_ind, n_reg)``), or, without that list, every
  ``(n_ind, n_reg)`` array: rows x columns reset;
* **slot** arrays: a leading axis of *slots* and a last axis of regions (a second CUSUM kept
  only for two-sided indicators, the cluster scan's ring buffers): the slot of indicator ``i``
  comes from the one ``Detectors`` attribute ending in ``_slot`` (an int array over indicators,
  ``-1`` = none) whose number of slots matches the array's leading axis; the slots of the chosen
  indicators are reset for the chosen regions (``ValueError`` when no map, or more than one,
  fits: a layout change is then reported instead of guessed);
* **per-indicator flags**: 1-d arrays over indicators that are not ``int64`` counters (the
  ``steady`` flag that lets the kernel stop reading a row's observation counts once every
  series is warm): reset for every chosen indicator, so the kernel follows the reset series'
  counts again;
* **per-indicator profiles** (2-d, indicators x bins: the seasonal shape shared by the regions
  and its visit counts): kept by default (the rhythm of a day or a week outlives a change of
  level), reset with ``profiles=True``;
* everything else (the scalars: last cycle, ring position) is left alone.

Examples
--------
>>> import numpy as np
>>> from engine.detect import Detectors
>>> det = Detectors.from_spec(direction=["up_bad", "both"], seasonality=["none", "daily"],
...                           count=[False, False], n_reg=3, spatial=False)
>>> t = np.datetime64("2020-03-02T00:15") + np.arange(40) * np.timedelta64(15, "m")
>>> _ = det.run(np.random.default_rng(0).normal(10, 1, (40, 2, 3)), t)
>>> int(det.state.nobs[1, 2])
40
>>> rebaseline(det, [1], [2])["series"]
1
>>> int(det.state.nobs[1, 2]), int(det.state.nobs[1, 1]), int(det.state.nobs[0, 2])
(0, 40, 40)
"""

from __future__ import annotations

import numpy as np

__all__ = ["rebaseline", "state_roles"]


def _index(names, wanted, what: str, n: int) -> np.ndarray:
    """Positions of ``wanted`` (ids or integer positions; ``None``: all ``n``)."""
    if wanted is None:
        return np.arange(n, dtype=np.int64)
    wanted = list(wanted) if not isinstance(wanted, (str, int, np.integer)) else [wanted]
    pos = {name: k for k, name in enumerate(names)}
    out = []
    for w in wanted:
        if isinstance(w, (int, np.integer)) and not isinstance(w, bool):
            if not 0 <= int(w) < n:
                raise ValueError(f"{what} position {int(w)} is out of range 0..{n - 1}")
            out.append(int(w))
        elif w in pos:
            out.append(pos[w])
        else:
            raise ValueError(f"unknown {what} {w!r}: expected one of the detectors' {what} ids or a position")
    return np.unique(np.asarray(out, dtype=np.int64))


def _slot_maps(detectors) -> dict[str, np.ndarray]:
    """The detectors' ``*_slot`` maps: int arrays over indicators, ``-1`` where an indicator has no slot."""
    n_ind = detectors.n_ind
    maps = {}
    for name in dir(detectors):
        if not name.endswith("_slot") or name.startswith("__"):
            continue
        v = getattr(detectors, name, None)
        if isinstance(v, np.ndarray) and v.shape == (n_ind,) and v.dtype.kind == "i":
            maps[name] = v
    return maps


def _profile_like(arr, n_ind: int, maps) -> bool:
    """A 2-d array over indicators whose second axis only happens to equal the region count (a
    profile of as many bins as regions) unless some slot map covers every indicator."""
    return arr.ndim == 2 and arr.shape[0] == n_ind and not any(int((m >= 0).sum()) == n_ind for m in maps.values())


def state_roles(detectors) -> dict[str, str]:
    """The role :func:`rebaseline` gives each array of ``detectors.state``.

    Returns ``{array name: role}`` with roles ``"series"``, ``"slot:<map>"`` (the ``Detectors``
    attribute that maps indicators to the array's leading axis), ``"flag"``, ``"profile"``,
    ``"held"`` (the last scan's clusters, ``state._HELD``: cleared for the scanned indicators
    reset) and ``"scalar"`` (left alone). Raises ``ValueError`` for a region-wide array whose leading axis no
    single slot map explains.

    >>> from engine.detect import Detectors
    >>> det = Detectors.from_spec(direction=["both", "up_bad", "down_bad"], seasonality=["none"] * 3,
    ...                           count=[False] * 3, n_reg=4, spatial=False)
    >>> r = state_roles(det)
    >>> r["level"], r["cusum_neg"], r["steady"], r["shape"], r["cycle"]
    ('series', 'slot:both_slot', 'flag', 'profile', 'scalar')
    """
    from engine.detect import state as state_module

    st = detectors.state
    n_ind, n_reg = detectors.n_ind, detectors.n_reg
    listed = getattr(state_module, "_SERIES", None)
    maps = _slot_maps(detectors)
    roles = {}
    held = getattr(state_module, "_HELD", ())
    for name, arr in st.arrays().items():
        if name in held:
            roles[name] = "held"               # results held between scans, not learned state
            continue
        series = (name in listed) if listed is not None else (arr.shape == (n_ind, n_reg))
        if series:
            if arr.shape != (n_ind, n_reg):
                raise ValueError(f"state array {name!r} is listed per series but has shape {arr.shape}, "
                                 f"expected {(n_ind, n_reg)}")
            roles[name] = "series"
        elif arr.ndim >= 2 and arr.shape[-1] == n_reg and not _profile_like(arr, n_ind, maps):
            counts = {k: int((m >= 0).sum()) for k, m in maps.items()}
            # an array sized by a map's slots; a map without slots may keep one padding row
            fits = [k for k, c in counts.items() if c == arr.shape[0] or (c == 0 and arr.shape[0] == 1)]
            if fits and not any(counts[k] for k in fits):
                roles[name] = "slot:"          # no indicator has a slot here: nothing to reset
                continue
            fits = [k for k in fits if counts[k]]
            if len(fits) > 1:                  # tie: the map named like the array (scan_slot -> scan_obs)
                fits = [k for k in fits if name.startswith(k[:-len("_slot")])] or fits
            if len(fits) != 1:
                raise ValueError(f"state array {name!r} of shape {arr.shape} is kept per region, but "
                                 f"{'no' if not fits else 'more than one'} slot map of the detectors fits its "
                                 f"leading axis ({', '.join(f'{k}: {c} slots' for k, c in counts.items()) or 'none'})")
            roles[name] = f"slot:{fits[0]}"
        elif arr.ndim == 1 and arr.shape == (n_ind,) and arr.dtype != np.int64:
            roles[name] = "flag"
        elif arr.ndim >= 2 and arr.shape[0] == n_ind:
            roles[name] = "profile"
        else:
            roles[name] = "scalar"
    return roles


def rebaseline(detectors, indicators, regions=None, *, fresh=None, profiles: bool = False) -> dict:
    """Reset the state of series ``indicators`` x ``regions`` of ``detectors`` to a fresh start.

    Parameters
    ----------
    detectors : engine.detect.Detectors
        Changed in place (its ``state``).
    indicators : sequence of str or int
        Indicator ids (``detectors.ids``) or row positions.
    regions : sequence of str or int, optional
        Region ids (``detectors.region_ids``) or column positions; ``None``: every region.
    fresh : DetectorState, optional
        A state of the same layout holding the values a series starts from (e.g. a copy of
        ``detectors.state`` taken before anything was learned). Default: zeros of each array's
        dtype, which is what :meth:`DetectorState.empty` starts every per-series array and flag at.
    profiles : bool
        Also reset the chosen indicators' shared seasonal profiles (all their regions learn a new
        rhythm; only sensible when every region is reset).

    Returns
    -------
    dict
        ``{"series": n, "indicators": k, "regions": r, "arrays": {name: role}}``: the series reset
        and the role each state array was given (see :func:`state_roles`).
    """
    rows = _index(detectors.ids, indicators, "indicator", detectors.n_ind)
    cols = _index(detectors.region_ids, regions, "region", detectors.n_reg)
    roles = state_roles(detectors)
    arrays = detectors.state.arrays()
    if fresh is not None:
        ref = fresh.arrays() if hasattr(fresh, "arrays") else dict(fresh)
        for name, arr in arrays.items():
            if name not in ref or ref[name].shape != arr.shape or ref[name].dtype != arr.dtype:
                raise ValueError(f"fresh state does not match the detectors' layout at {name!r}: "
                                 f"{None if name not in ref else (ref[name].shape, str(ref[name].dtype))} "
                                 f"vs {(arr.shape, str(arr.dtype))}")
    else:
        ref = None
    maps = _slot_maps(detectors)
    if len(rows) and len(cols):
        grid = np.ix_(rows, cols)
        for name, arr in arrays.items():
            role = roles[name]
            src = ref[name] if ref is not None else None
            if role == "series":
                arr[grid] = src[grid] if src is not None else 0
            elif role.startswith("slot:") and role != "slot:":
                slots = maps[role[5:]][rows]
                slots = slots[slots >= 0]
                if len(slots):
                    # (slot, ..., region): index the first and last axes, keep any middle ones
                    view = np.moveaxis(arr, -1, 1)                 # a view: (slot, region, ...)
                    pick = np.ix_(slots, cols)
                    view[pick] = np.moveaxis(src, -1, 1)[pick] if src is not None else 0
            elif role == "flag":
                arr[rows] = src[rows] if src is not None else 0
            elif role == "held" and "scan_slot" in maps:
                # a reset indicator's held clusters belong to its old baseline: none until its next scan
                slots = maps["scan_slot"][rows]
                arr[slots[slots >= 0]] = np.nan
            elif role == "profile" and profiles:
                arr[rows] = src[rows] if src is not None else 0
    return {"series": int(len(rows) * len(cols)), "indicators": int(len(rows)), "regions": int(len(cols)),
            "arrays": roles}
