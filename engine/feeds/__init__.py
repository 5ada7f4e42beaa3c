"""Feeds in: records, adapters, validation with quarantine, and encoding for the kernels.

* :class:`Feeds` holds events, readings and snapshots (frames in memory, or
  :meth:`Feeds.read` of CSV / Parquet files and folders).
* :class:`Adapter` maps a city's own export (e.g. a 311 / 12345 ticket CSV) onto records
  from a TOML file; ``indicators/adapters/`` ships ``nyc311`` and ``la311``.
* :func:`encode` validates every row, sets bad rows aside in a :class:`Quarantine` (reason
  and detail kept, nothing dropped) and returns the accepted rows as an :class:`Encoded` of
  numpy arrays for the kernels.
* :func:`synthetic_feeds` generates a realistic load for every feed of the catalog;
  :func:`corrupt_feeds` spoils a share of its rows for tests and benchmarks.

See ``docs/feeds.md`` for the schema, the file layout, adapters and the quarantine reasons.

Examples
--------
>>> import pandas as pd
>>> from engine import City, Catalog
>>> city = City.synthetic(seed=1, neighbourhoods=20, streets=2, population=50_000)
>>> feeds = synthetic_feeds(city, Catalog.load(), "2020-02-01", "2020-02-01 01:00")
>>> enc, q = encode(feeds, city, Catalog.load(), now="2020-02-01 01:00")
>>> len(q), enc.n_rows["readings"] == feeds.n_rows["readings"]
(0, True)
"""

from engine.feeds.adapters import Adapter, AdapterError, bundled_adapters
from engine.feeds.encode import Encoded, Encoder, as_keys, encode, parse_times
from engine.feeds.frames import Feeds
from engine.feeds.quarantine import Quarantine
from engine.feeds.schema import KINDS, OPTIONAL, REASON_TEXT, REASONS, REQUIRED, FeedError
from engine.feeds.synthetic import corrupt_feeds, synthetic_feeds

__all__ = [
    "Adapter", "AdapterError", "Encoded", "Encoder", "FeedError", "Feeds", "KINDS", "OPTIONAL", "Quarantine", "REASONS",
    "REASON_TEXT", "REQUIRED", "as_keys", "bundled_adapters", "corrupt_feeds", "encode", "parse_times",
    "synthetic_feeds",
]
