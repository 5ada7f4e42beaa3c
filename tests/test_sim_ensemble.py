"""Ensembles on dask: quantile bands over seeds."""

import numpy as np
import pytest

from engine.sim import MiniCity, Scenario, ensemble, simulate

CITY = MiniCity.uniform(2, 20_000)


def _scenario():
    return Scenario("2020-02-01", 25, initial_infections=30).at("2020-02-10", sector_share=0.5)


def test_ensemble_with_given_client_matches_single_runs():
    distributed = pytest.importorskip("distributed")
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None) as c:
        ds = ensemble(CITY, _scenario(), [3, 4, 5, 6], client=c)
    assert ds.sizes == {"seed": 4, "date": 25, "quantile": 5}
    band = ds["cumulative_infections_band"].values
    assert (np.diff(band, axis=0) >= 0).all()
    one = simulate(CITY, _scenario(), seed=4).totals()["cumulative_infections"].to_numpy()
    np.testing.assert_array_equal(ds["cumulative_infections"].sel(seed=4).values, one)


def test_ensemble_validation():
    with pytest.raises(ValueError, match="seeds is empty"):
        ensemble(CITY, _scenario(), [])
    with pytest.raises(ValueError, match="distinct"):
        ensemble(CITY, _scenario(), [1, 1])


@pytest.mark.slow
def test_ensemble_local_cluster_processes():
    ds = ensemble(CITY, _scenario(), [1, 2], n_workers=2)
    assert ds.sizes["seed"] == 2
    one = simulate(CITY, _scenario(), seed=2).totals()["new_infections"].to_numpy()
    np.testing.assert_array_equal(ds["new_infections"].sel(seed=2).values, one)
