"""``cityvitals explain`` and ``cityvitals map``: drill-down and the risk-zoning map of a run.

A run is a Zarr store (or NetCDF file) with the compute core's layout: ``value`` over
(``indicator``, ``region``) or (``time``, ``indicator``, ``region``), optionally ``expected`` /
``scale``. The city is taken from ``--city DIR`` or ``--synthetic SEED``, else from the run's
attributes: ``city_path`` (a city folder) or ``city`` (JSON ``{"path": ...}`` or
``{"synthetic": {"seed": .., "neighbourhoods": .., "streets": .., "population": ..}}``).
Without any, ``explain`` works on the run's own regions and ``map`` refuses (it needs polygons).

The engine is imported inside the handlers so that ``cityvitals --help`` stays fast.
"""

from __future__ import annotations

import json
import sys


def register(subparsers) -> None:
    """Add the top-level ``explain`` and ``map`` commands."""
    e = subparsers.add_parser(
        "explain",
        help="why is a region's score low: the indicators and dimensions pulling it down",
        description="Split a region's index gap (100 - score) into indicator and dimension contributions.",
    )
    e.add_argument("run", metavar="RUN", help="run store written by `cityvitals compute --out RUN.zarr`")
    e.add_argument("--region", required=True, metavar="R", help="region id (neighbourhood, street or district)")
    e.add_argument("--at", metavar="T", help="cycle time (default: the last cycle of the run)")
    e.add_argument("--index", default="overall", metavar="I",
                   help="overall (default), a domain, a dimension, safety_index or an epidemic risk")
    e.add_argument("--top", type=int, default=10, metavar="N", help="indicators to list (default 10)")
    e.add_argument("--json", action="store_true", help="print JSON")
    _common(e)
    e.set_defaults(handler=_explain)

    m = subparsers.add_parser(
        "map",
        help="draw the risk-zoning map (风险分区地图) of a run as PNG or SVG",
        description="Choropleth of graded health scores over the city's regions for one cycle.",
    )
    m.add_argument("run", metavar="RUN", help="run store written by `cityvitals compute --out RUN.zarr`")
    m.add_argument("--at", metavar="T", help="cycle time (default: the last cycle of the run)")
    m.add_argument("--dimension", default="overall", metavar="D",
                   help="index to draw: overall (default), a domain, a dimension, safety_index, a risk, "
                        "or 'all' for overall + every domain and dimension (one file each)")
    m.add_argument("--out", required=True, metavar="FILE", help="output file, .png or .svg")
    m.add_argument("--lang", choices=["auto", "zh", "en"], default="auto", help="label language (default auto)")
    _common(m)
    m.set_defaults(handler=_map)


def _common(p) -> None:
    p.add_argument("--city", metavar="DIR", help="city folder the run was computed for")
    p.add_argument("--synthetic", type=int, metavar="SEED", help="use City.synthetic(SEED, ...) as the city")
    p.add_argument("--neighbourhoods", type=int, default=300, metavar="N", help="with --synthetic (default 300)")
    p.add_argument("--streets", type=int, default=13, metavar="N", help="with --synthetic (default 13)")
    p.add_argument("--population", type=int, default=1_100_000, metavar="N", help="with --synthetic (default 1100000)")
    p.add_argument("--catalog", metavar="DIR", help="catalog folder (default: the bundled catalog)")
    p.add_argument("--indices-config", metavar="FILE", help="indices configuration (default indicators/indices.toml)")


def _fail(cmd: str, message: str) -> int:
    print(f"cityvitals {cmd}: error: {message}", file=sys.stderr)
    return 2


class _Bad(Exception):
    pass


def _open_run(path: str):
    import os

    import xarray as xr

    if not os.path.exists(path):
        raise _Bad(f"run {path!r} does not exist; expected a Zarr store from `cityvitals compute --out RUN.zarr`")
    try:
        if os.path.isdir(path):
            ds = xr.open_zarr(path)
        else:
            ds = xr.open_dataset(path)
    except Exception as exc:  # any reader error: say what was expected
        raise _Bad(f"cannot read run {path!r} ({type(exc).__name__}: {exc}); expected a Zarr store") from None
    if "value" not in ds:
        raise _Bad(f"run {path!r} has no 'value' variable (it has: {', '.join(map(str, ds.data_vars)) or 'none'})")
    return ds


def _city(args, ds, required: bool):
    from engine.city import City, CityFileError

    try:
        if args.city and args.synthetic is not None:
            raise _Bad("give either --city or --synthetic, not both")
        if args.city:
            return City.load(args.city)
        if args.synthetic is not None:
            return City.synthetic(seed=args.synthetic, neighbourhoods=args.neighbourhoods, streets=args.streets,
                                  population=args.population)
        spec = ds.attrs.get("city")
        if isinstance(spec, str):
            try:
                spec = json.loads(spec)
            except json.JSONDecodeError:
                spec = {"path": spec}
        path = ds.attrs.get("city_path") or (spec or {}).get("path")
        if path:
            return City.load(path)
        if isinstance(spec, dict) and isinstance(spec.get("synthetic"), dict):
            return City.synthetic(**spec["synthetic"])
    except (CityFileError, ValueError, TypeError, FileNotFoundError) as exc:
        raise _Bad(f"cannot build the city: {exc}") from None
    if required:
        raise _Bad("the map needs the city: pass --city DIR or --synthetic SEED (the run's attributes name none)")
    return None


def _catalog(args):
    from engine.catalog import Catalog, CatalogError

    try:
        return Catalog.load(args.catalog) if args.catalog else Catalog.load()
    except (CatalogError, FileNotFoundError) as exc:
        raise _Bad(f"cannot load the catalog: {exc}") from None


def _config(args):
    from engine.indices.config import IndicesConfigError, load_config

    try:
        return load_config(args.indices_config) if args.indices_config else load_config()
    except IndicesConfigError as exc:
        raise _Bad(str(exc)) from None


def _explain(args) -> int:
    from engine.indices import explain

    try:
        if args.top < 0:
            raise _Bad(f"--top must be >= 0, got {args.top}")
        ds = _open_run(args.run)
        city = _city(args, ds, required=False)
        ex = explain(ds, args.region, args.at, catalog=_catalog(args), city=city, config=_config(args), index=args.index)
    except (_Bad, ValueError) as exc:
        return _fail("explain", str(exc))
    if args.json:
        print(ex.to_json(top=args.top))
    else:
        print(ex.render(top=args.top))
    return 0


def _map(args) -> int:
    from pathlib import Path

    from engine.indices import compute_indices, select_time
    from engine.maps import risk_map, risk_maps, save_map

    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".svg"):
        return _fail("map", f"--out must end in .png or .svg, got {args.out!r}")
    try:
        ds = _open_run(args.run)
        select_time(ds, args.at)
        city = _city(args, ds, required=True)
        cfg = _config(args)
        h = compute_indices(ds, _catalog(args), city, cfg, at=args.at)
        labels = [str(x) for x in h["index"].values]
        if args.dimension == "all":
            paths = risk_maps(h, city, out, config=cfg, lang=args.lang)
        else:
            if args.dimension not in labels:
                raise _Bad(f"unknown dimension {args.dimension!r}; expected 'all' or one of {', '.join(labels)}")
            paths = [save_map(risk_map(h, city, index=args.dimension, config=cfg, lang=args.lang), out)]
    except (_Bad, ValueError) as exc:
        return _fail("map", str(exc))
    for p in paths:
        print(p)
    return 0
