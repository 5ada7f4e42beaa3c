"""`cityvitals compute` over the real NYC and LA 311 samples, through their adapters, on a grid city:
the Zarr store's ticket counts equal a direct pandas count of the same CSV."""

from __future__ import annotations

import pytest
import xarray as xr

from engine.cli import main
from test_feeds_adapters import LA, NYC, direct_counts, needs_samples, sample

CASES = [
    (NYC, "nyc311", ["Complaint Type", "Descriptor"], "2013-12-25T00:15", "2013-12-26T00:00"),
    (LA, "la311", ["RequestType"], "2017-12-27T00:15", "2018-01-01T00:00"),
]


@needs_samples
@pytest.mark.slow
@pytest.mark.parametrize("csv, adapter, type_cols, start, end", CASES, ids=["nyc", "la"])
def test_compute_311_counts_match_pandas(tmp_path, capsys, csv, adapter, type_cols, start, end):
    src = sample(tmp_path, csv)
    out = tmp_path / f"{adapter}.zarr"
    code = main(["compute", str(src), "--adapter", adapter, "--grid-km", "10",
                 "--start", start, "--end", end, "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr()
    assert "unmapped_category" in printed.out + printed.err  # the quarantine summary is shown
    ds = xr.open_zarr(out)
    assert ds["value"].dims == ("time", "indicator", "region")
    want, _, _ = direct_counts(src, adapter, type_cols)
    # every ticket of the sample lies within the last 7 days of the period: count_7d at the end
    last = ds["value"].isel(time=-1)
    for sub, n in want.items():
        got = float(last.sel(indicator=f"livelihood.citizen_demands.tickets_{sub}.count_7d").sum())
        assert got == n, sub
    total = float(last.sel(indicator="livelihood.citizen_demands.tickets_all.count_7d").sum())
    assert total == sum(want.values())
