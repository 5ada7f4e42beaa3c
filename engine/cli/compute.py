"""``cityvitals compute FEEDS --start T0 --end T1 --out RUN.zarr``: every indicator over a period."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "compute", help="batch-compute every indicator over a period and write it to Zarr",
        description="Replay FEEDS (a CSV/Parquet file or folder) cycle by cycle from --start to --end and write "
                    "value(time, indicator, region) to a Zarr store readable with xarray.open_zarr.")
    p.add_argument("feeds", metavar="FEEDS", help="feed file or folder (CSV / Parquet)")
    p.add_argument("--start", required=True, help="first cycle end (e.g. 2020-02-01T00:15)")
    p.add_argument("--end", required=True, help="last cycle end (inclusive)")
    p.add_argument("--out", required=True, help="output Zarr store (RUN.zarr); replaced if it exists")
    p.add_argument("--city", default="synthetic", help="'synthetic' (default) or a city folder saved by City.save")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic city")
    p.add_argument("--grid-km", type=float, default=None,
                   help="lay a grid of K-km cells over the feeds' lon/lat extent as the city")
    p.add_argument("--adapter", default=None, help="adapter name (nyc311, la311) or TOML path for the feeds")
    p.add_argument("--cycle", default="15min", help="cycle length (default 15min)")
    p.add_argument("--level", default=None, help="street / district / block (default: finest level)")
    p.add_argument("--chunk", type=int, default=96, help="cycles computed and written per chunk (default 96)")
    p.set_defaults(handler=_compute)


def _city(args, feeds):
    import numpy as np

    from engine.city import City

    if args.grid_km is not None:
        lon, lat = [], []
        for kind in ("events",):
            f = feeds.frame(kind)
            if "lon" in f and "lat" in f:
                lon.append(np.asarray(f["lon"], float))
                lat.append(np.asarray(f["lat"], float))
        lon = np.concatenate(lon) if lon else np.zeros(0)
        lat = np.concatenate(lat) if lat else np.zeros(0)
        ok = np.isfinite(lon) & np.isfinite(lat) & (np.abs(lon) <= 180) & (np.abs(lat) <= 85) & ((lon != 0) | (lat != 0))
        if not ok.any():
            raise SystemExit("cityvitals compute: --grid-km needs events with lon/lat; none found")
        bbox = (lon[ok].min(), lat[ok].min(), lon[ok].max() + 1e-6, lat[ok].max() + 1e-6)
        return City.grid(bbox, cell_m=args.grid_km * 1000.0, block_cells=5, street_blocks=4, name="grid")
    if args.city == "synthetic":
        return City.synthetic(seed=args.seed)
    return City.load(args.city)


def _compute(args) -> int:
    import numpy as np
    import pandas as pd
    import xarray as xr

    from engine.catalog import Catalog
    from engine.core import Engine
    from engine.core.engine import to_ns
    from engine.feeds import Feeds, encode
    from engine.progress import Progress

    try:
        feeds = Feeds.read(args.feeds, adapter=args.adapter)
    except Exception as exc:  # unreadable file, bad adapter: one clear line
        print(f"cityvitals compute: cannot read {args.feeds!r}: {exc}", file=sys.stderr)
        return 1
    catalog = Catalog.load()
    city = _city(args, feeds)
    eng = Engine(city, catalog, cycle=args.cycle)
    C = eng.plan.cycle_ns
    try:
        k0, k1 = to_ns(args.start), to_ns(args.end)
    except ValueError as exc:
        print(f"cityvitals compute: {exc}", file=sys.stderr)
        return 2
    k0, k1 = -(-k0 // C), -(-k1 // C)  # round up to cycle ends
    if k1 < k0:
        print(f"cityvitals compute: --end {args.end} is before --start {args.start}", file=sys.stderr)
        return 2
    enc, quarantine = encode(feeds, city, catalog, now=pd.Timestamp(k1 * C))
    counts = quarantine.counts() if quarantine is not None else {}
    total = k1 - k0 + 1
    chunk = max(1, int(args.chunk))
    bar = Progress(total, "compute")
    first = True
    # where explain/map find the city again
    city_source = ({"synthetic": {"seed": args.seed}} if args.city == "synthetic" and args.grid_km is None
                   else {"path": str(Path(args.city).resolve())} if args.grid_km is None else None)
    attrs_total: dict = {}
    for a in range(k0, k1 + 1, chunk):
        b = min(a + chunk - 1, k1)
        ds = eng.replay(enc, a * C, b * C, level=args.level)
        for key, v in ds.attrs.items():
            if key.startswith("core."):
                attrs_total[key] = attrs_total.get(key, 0) + int(v)
        ds.attrs = {"level": ds.attrs["level"], "cycle": args.cycle}
        if first:
            ds.attrs.update({"start": str(pd.Timestamp(k0 * C)), "end": str(pd.Timestamp(k1 * C)),
                             "quarantine": json.dumps(counts, ensure_ascii=False)})
            if city_source:
                ds.attrs["city"] = json.dumps(city_source)
            ds.to_zarr(args.out, mode="w", encoding={"value": {"chunks": (min(chunk, total), 256, 256)}},
                       zarr_format=2, consolidated=True)
            first = False
        else:
            ds.to_zarr(args.out, append_dim="time", zarr_format=2, consolidated=True)
        bar.advance(b - a + 1)
    nq = sum(counts.values())
    print(f"wrote {args.out}: {total} cycles x {len(catalog)} indicators x {len(ds.region)} regions")
    if nq or any(attrs_total.values()):
        detail = ", ".join(f"{k}: {v}" for k, v in {**counts, **attrs_total}.items() if v)
        print(f"quarantined {nq} rows ({detail})")
    else:
        print("quarantined 0 rows")
    return 0
