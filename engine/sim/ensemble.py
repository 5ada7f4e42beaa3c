"""Ensembles of seeds on dask: epidemic curves with quantile bands, as an ``xarray.Dataset``.

Each seed runs :func:`engine.sim.simulate` on a dask worker and sends back only the city-level
daily curves. The city is compiled once (:func:`engine.sim.mobility.compile_city`) and scattered to
the workers. Without a client a ``LocalCluster`` of processes is started for the call and closed
after it; dask starts its worker processes with ``spawn`` (never ``fork``), which is what numba's
OpenMP/TBB parallel regions need, and each worker gets ``NUMBA_NUM_THREADS=1`` (and one BLAS /
OpenMP thread) so that ``n`` workers use ``n`` cores. An existing ``distributed.Client`` (a real cluster by address, or an
in-process one) is used as given.
"""

from __future__ import annotations

import os

import numpy as np

CURVES = ("new_infections", "new_onsets", "new_detected", "infectious", "cumulative_infections", "imported")
"""City-level daily curves returned per seed."""

DEFAULT_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
WORKER_ENV = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
"""Environment of the worker processes of the default LocalCluster (one thread of each kind)."""


def run_curves(arrays, scenario, seed, mode=None) -> np.ndarray:
    """City totals per day for one seed: ``(len(CURVES), days)`` (the task run on a worker)."""
    from engine.sim.run import simulate

    res = simulate(None, scenario, seed=int(seed), mode=mode, arrays=arrays)
    tot = res.totals()
    return np.stack([tot[c].to_numpy() for c in CURVES])


def curves_dataset(curves: np.ndarray, seeds, dates, quantiles=DEFAULT_QUANTILES, attrs=None):
    """Dataset from stacked per-seed curves ``(seeds, len(CURVES), days)``: one ``(seed, date)``
    variable per curve and a ``<curve>_band`` ``(quantile, date)`` variable of quantiles over seeds."""
    import pandas as pd
    import xarray as xr

    data = {}
    q = np.asarray(quantiles, dtype=np.float64)
    for k, name in enumerate(CURVES):
        data[name] = (("seed", "date"), curves[:, k, :])
        data[f"{name}_band"] = (("quantile", "date"), np.quantile(curves[:, k, :], q, axis=0))
    return xr.Dataset(data, coords={"seed": np.asarray(seeds), "date": pd.DatetimeIndex(dates), "quantile": q},
                      attrs=attrs or {})


def ensemble(city, scenario, seeds, client=None, *, quantiles=DEFAULT_QUANTILES, mode=None, n_workers=None):
    """Run ``scenario`` once per seed in parallel on dask.

    Parameters
    ----------
    city : engine.City or MiniCity
    scenario : Scenario
    seeds : sequence of int
    client : distributed.Client, optional
        Used as given; by default a ``LocalCluster`` of processes (``n_workers`` of them, default
        ``min(len(seeds), cpu count)``, one thread each) lives for the call.
    quantiles : sequence of float
        Quantile levels of the bands.
    mode : {"stochastic", "mean_field"}, optional
        Overrides ``scenario.mode``.

    Returns
    -------
    xarray.Dataset
        Per curve in :data:`CURVES`: ``<curve>`` over ``(seed, date)`` and ``<curve>_band`` over
        ``(quantile, date)``.

    Examples
    --------
    >>> from distributed import Client
    >>> from engine.sim import MiniCity, Scenario
    >>> with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None) as c:
    ...     ds = ensemble(MiniCity.uniform(2, 20_000), Scenario("2020-02-01", 20), [1, 2, 3], client=c)
    >>> ds["new_infections_band"].dims, ds.sizes["seed"]
    (('quantile', 'date'), 3)
    """
    from engine.sim.mobility import compile_city

    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds is empty: expected at least one seed")
    if len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ValueError(f"seeds must be distinct integers >= 0, got {seeds}")
    q = np.asarray(quantiles, dtype=np.float64)
    if q.ndim != 1 or ((q < 0) | (q > 1)).any():
        raise ValueError(f"quantiles must lie in 0..1, got {list(quantiles)}")
    arrays = compile_city(city, scenario.mobility)

    def _run(c):
        arr_f = c.scatter(arrays, broadcast=True)
        sc_f = c.scatter(scenario, broadcast=True)
        futs = c.map(run_curves, [arr_f] * len(seeds), [sc_f] * len(seeds), seeds, [mode] * len(seeds),
                     pure=False)
        return np.stack(c.gather(futs))

    if client is not None:
        curves = _run(client)
    else:
        from distributed import Client, LocalCluster

        n = n_workers or min(len(seeds), os.cpu_count() or 1)
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                          env=WORKER_ENV) as cluster, Client(cluster) as c:
            curves = _run(c)
    dates = scenario.timeline.daily().dates
    return curves_dataset(curves, seeds, dates, q, attrs={"scenario": scenario.name,
                                                          "mode": mode or scenario.mode})
