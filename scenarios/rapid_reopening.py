#!/usr/bin/env python3
"""Rapid reopening (一次性全面复工): every sector, school and venue reopens on one day."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import Scenario  # noqa: E402
from engine.scenario.script import main  # noqa: E402
from scenarios._common import DAYS, START, incidents, lockdown  # noqa: E402


def build(seed: int = 0) -> Scenario:
    sc = Scenario("rapid_reopening", START, DAYS, seeds=(seed,), title="一次性全面复工 Rapid reopening")
    lockdown(sc)
    sc.at("2020-03-09", sector_share=1.0, schools=True, other=1.0, venue_cap=None, masks=0.8, testing=0.4)
    return incidents(sc)


if __name__ == "__main__":
    sys.exit(main(build))
