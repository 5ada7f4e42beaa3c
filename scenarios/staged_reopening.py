#!/usr/bin/env python3
"""Staged reopening (三阶段复工): essential and industrial sectors first, then services, then all."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import Scenario  # noqa: E402
from engine.scenario.script import main  # noqa: E402
from scenarios._common import DAYS, START, incidents, lockdown  # noqa: E402


def build(seed: int = 0) -> Scenario:
    sc = Scenario("staged_reopening", START, DAYS, seeds=(seed,), title="三阶段复工 Staged reopening")
    lockdown(sc)
    sc.stages([
        ("2020-03-09", "2020-03-22", {"sector_share": {"C": 0.5, "D": 1.0, "E": 0.5, "G": 0.6, "I": 0.5}}),
        ("2020-03-23", "2020-04-05", {"sector_share": 0.6, "other": 0.5, "venue_cap": 0.5}),
    ])
    sc.at("2020-04-06", sector_share=0.95, other=0.8, venue_cap=0.75, schools=0.5, masks=0.7)
    return incidents(sc)


if __name__ == "__main__":
    sys.exit(main(build))
