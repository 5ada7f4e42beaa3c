"""``cityvitals city``: describe a city (synthetic or a saved folder) and save synthetic ones.

The engine is imported inside the handlers so that ``cityvitals --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers) -> None:
    """Add the ``city`` command group to the top-level ``subparsers``."""
    p = subparsers.add_parser(
        "city",
        help="describe or save a city model (synthetic district or a city folder)",
        description="Inspect the city model: regions, streets, population, sites, enterprises, sensors.",
    )
    sub = p.add_subparsers(dest="city_command", metavar="SUBCOMMAND", title="subcommands")
    p.set_defaults(handler=lambda args: _usage(p))

    d = sub.add_parser(
        "describe",
        help="print counts and the fingerprint of a synthetic city or a city folder",
        description="Describe a synthetic city (--seed/--neighbourhoods/--population) or one saved in --path.",
    )
    _synthetic_options(d)
    d.add_argument("--path", metavar="DIR", help="city folder to load instead of generating one")
    d.add_argument("--json", action="store_true", help="print JSON instead of text")
    d.set_defaults(handler=_describe)

    s = sub.add_parser(
        "save",
        help="generate a synthetic city and write it as a folder of plain files",
        description="Write a synthetic city to DIR (city.json, regions.geojson, sites.csv, ...).",
    )
    _synthetic_options(s)
    s.add_argument("--out", metavar="DIR", required=True, help="folder to write (created if missing)")
    s.add_argument("--regions-format", choices=["geojson", "csv"], default="geojson",
                   help="regions as GeoJSON polygons (default) or CSV with a WKT column")
    s.set_defaults(handler=_save)


def _synthetic_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=None, metavar="N", help="generator seed (default 0)")
    p.add_argument("--neighbourhoods", type=int, default=None, metavar="N", help="number of neighbourhoods (default 300)")
    p.add_argument("--streets", type=int, default=None, metavar="N", help="number of streets (default 13)")
    p.add_argument("--population", type=int, default=None, metavar="N", help="total residents (default 1100000)")


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help()
    return 2


def _synthetic(args):
    from engine.city import City

    return City.synthetic(
        seed=0 if args.seed is None else args.seed,
        neighbourhoods=300 if args.neighbourhoods is None else args.neighbourhoods,
        streets=13 if args.streets is None else args.streets,
        population=1_100_000 if args.population is None else args.population,
    )


def _fail(message: str) -> int:
    print(f"cityvitals city: error: {message}", file=sys.stderr)
    return 2


def _describe(args) -> int:
    from engine.city import SECTORS, SENSOR_KINDS, SITE_KINDS, City, CityFileError

    try:
        if args.path is not None:
            given = [f"--{k}" for k in ("seed", "neighbourhoods", "streets", "population") if getattr(args, k) is not None]
            if given:
                return _fail(f"--path loads a saved city; it cannot be combined with {', '.join(given)}")
            city = City.load(args.path)
        else:
            city = _synthetic(args)
    except (ValueError, TypeError) as exc:  # CityFileError is a ValueError
        kind = "bad city file" if isinstance(exc, CityFileError) else "bad option"
        return _fail(f"{kind}: {exc}")
    d = city.describe()
    if args.json:
        print(json.dumps(d, ensure_ascii=False, indent=2))
        return 0
    lines = [
        f"{d['name']} ({d['kind']}): {d['neighbourhoods']} {city.levels[0]}s in {d['streets']} streets"
        + (f" / {d['blocks']} blocks" if "blocks" in d else ""),
        f"population {d['population']:,}, area {d['area_km2']:.2f} km2",
        "sites: " + ", ".join(f"{SITE_KINDS[k].zh} {k} {v}" if k in SITE_KINDS else f"{k} {v}" for k, v in d["sites"].items()),
        "enterprises: " + ", ".join(f"{s.code} {d['enterprises'].get(s.code, 0)}" for s in SECTORS)
        + f" (total {sum(d['enterprises'].values()):,}, {int(city.enterprises['employees'].sum()):,} employees)",
        "sensors: " + ", ".join(f"{SENSOR_KINDS[k].zh} {k} {v}" if k in SENSOR_KINDS else f"{k} {v}" for k, v in d["sensors"].items()),
        f"fingerprint {d['fingerprint']}",
    ]
    print("\n".join(lines))
    return 0


def _save(args) -> int:
    from pathlib import Path

    try:
        city = _synthetic(args)
        out = Path(args.out)
        city.save(out, regions_format=args.regions_format)
    except (ValueError, TypeError, OSError) as exc:
        return _fail(str(exc))
    print(f"saved {city.n_regions} regions of {city.name!r} to {out} (fingerprint {city.fingerprint()})")
    return 0
