#!/usr/bin/env python3
"""No reopening (维持封控): the lockdown is kept for the whole period."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import Scenario  # noqa: E402
from engine.scenario.script import main  # noqa: E402
from scenarios._common import DAYS, START, incidents, lockdown  # noqa: E402


def build(seed: int = 0) -> Scenario:
    sc = Scenario("no_reopening", START, DAYS, seeds=(seed,), title="维持封控 No reopening")
    lockdown(sc)
    return incidents(sc)


if __name__ == "__main__":
    sys.exit(main(build))
