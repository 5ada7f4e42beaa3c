"""Planners' scenarios: define (:class:`Scenario`), run end to end, measure detection on the truth."""

__all__ = ["Scenario"]


def __getattr__(name):
    # lazy: the CLI reads engine.scenario.script at start-up, which must not pull in the simulator
    if name == "Scenario":
        from engine.scenario.planner import Scenario

        return Scenario
    raise AttributeError(f"module 'engine.scenario' has no attribute {name!r}")
