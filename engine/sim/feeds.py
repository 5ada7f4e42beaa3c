"""The hook where feed generation plugs into the simulator.

A *feed generator* is a callable ``gen(result, day) -> dict[str, pandas.DataFrame]`` that turns one
simulated day of a :class:`~engine.sim.run.SimResult` into records of the engine's feeds (events:
``ts, region, feed, category``...; readings: ``ts, sensor, metric, value``; snapshots:
``ts, entity, field, value``), at whatever cycle it likes (the engine scans every 15 minutes).
:func:`iter_feeds` runs the registered generators day by day and yields one :class:`DayFeeds` per
day, so a replay can consume feeds as a stream. Generators for tickets, fever-clinic visits,
reported cases with delay, road speeds, power loads and crowd counts register themselves with
:func:`register` (that part of the issue comes later); :func:`epidemic_snapshots` is the one
shipped now: the daily epidemic state per neighbourhood as snapshots.

>>> from engine.sim import MiniCity, Scenario, simulate
>>> res = simulate(MiniCity.uniform(2, 5_000), Scenario("2020-02-01", 3, mode="mean_field"))
>>> days = list(res.feeds())
>>> len(days), sorted(days[0].feeds)
(3, ['sim_epidemic'])
>>> days[0].feeds["sim_epidemic"].columns.tolist()
['ts', 'entity', 'field', 'value']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import pandas as pd

FeedGenerator = Callable[[object, int], dict]

GENERATORS: dict[str, FeedGenerator] = {}
"""Registered generators by name (used when :func:`iter_feeds` gets no explicit list)."""


@dataclass
class DayFeeds:
    """The feeds of one simulated day: ``feeds[name]`` is a DataFrame of records."""

    date: np.datetime64
    feeds: dict


def register(name: str, generator: FeedGenerator) -> FeedGenerator:
    """Register ``generator`` under ``name`` (a name can be registered once)."""
    if not callable(generator):
        raise ValueError(f"feed generator {name!r} is not callable")
    if name in GENERATORS and GENERATORS[name] is not generator:
        raise ValueError(f"feed generator {name!r} is already registered")
    GENERATORS[name] = generator
    return generator


def epidemic_snapshots(result, day: int) -> dict:
    """Snapshots at the end of ``day``: per neighbourhood, every compartment summed over age and
    the day's new infections, onsets, detected cases and imported infections."""
    ts = pd.Timestamp(result.dates[day]) + pd.Timedelta(days=1)
    comp = result.state[day].sum(axis=1)                         # (R, 6)
    fields = list(result.compartments) + ["new_infections", "new_onsets", "new_detected", "imported"]
    values = np.column_stack([comp, result.new_infections[day].sum(axis=1), result.new_onsets[day].sum(axis=1),
                              result.new_detected[day].sum(axis=1), result.imported[day]])
    R = values.shape[0]
    return {"sim_epidemic": pd.DataFrame({
        "ts": ts, "entity": np.repeat(np.asarray(result.region_ids).astype(str), len(fields)),
        "field": np.tile(fields, R), "value": values.ravel()})}


register("sim_epidemic", epidemic_snapshots)


def iter_feeds(result, generators=None) -> Iterator[DayFeeds]:
    """Yield one :class:`DayFeeds` per simulated day from ``generators`` (a ``{name: callable}``
    dict, or the registered ones)."""
    gens = dict(GENERATORS if generators is None else generators)
    for day in range(result.dates.shape[0]):
        feeds = {}
        for name, gen in gens.items():
            out = gen(result, day)
            if not isinstance(out, dict):
                raise ValueError(f"feed generator {name!r} returned {type(out).__name__}, expected a dict of DataFrames")
            feeds.update(out)
        yield DayFeeds(result.dates[day], feeds)
