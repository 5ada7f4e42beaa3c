"""The indicator core: the catalog compiled into batched kernels over windowed state.

``Engine(city, catalog, cycle="15min")`` computes every indicator for every region each cycle
(:meth:`Engine.step`) or over a period (:meth:`Engine.replay`); see ``docs/core.md``.
"""

from engine.core.engine import Engine, to_ns
from engine.core.plan import Plan, compile_plan
from engine.core.records import EncodedFeeds, Records, as_records
from engine.core.state import State

__all__ = ["EncodedFeeds", "Engine", "Plan", "Records", "State", "as_records", "compile_plan", "to_ns"]
