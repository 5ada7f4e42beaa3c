"""Planners' scenarios: define (:class:`Scenario`), run end to end, measure detection on the truth."""

from engine.scenario.planner import Scenario

__all__ = ["Scenario"]
