"""The planner's scenario: a city, a period, a policy timeline, incidents and seeds.

A scenario is written in a few readable lines and checked as it is written (a date outside the
period, an unknown sector, a share outside 0..1, overlapping stages: ``ValueError`` naming the
value and what was expected), before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.sim.params import EpiParams, MobilityParams
from engine.sim.run import Scenario as SimScenario


@dataclass
class Scenario:
    """What a planner replays: simulate the city under a policy, run every cycle through the engine.

    Parameters
    ----------
    name : str
        Short id (used for folders and tables), e.g. ``"staged_reopening"``.
    start : date-like
        First day of the period.
    days : int
        Length of the period in days.
    city : City or dict, optional
        The city, or keyword arguments of :meth:`engine.City.synthetic` (default: the synthetic
        district, seed 0).
    seeds : sequence of int
        Simulation seeds. Every seed contributes to the epidemic curves (ensemble bands); the
        first seed's feeds are replayed through the engine (values, scores, alerts, indices).
    cycle : str
        Engine cycle (default ``"15min"``).
    title : str
        A human title for reports.
    params, mobility : EpiParams, MobilityParams
        Natural history and mobility of the simulated epidemic.
    initial_infections : int or dict
        People infected on the first day (a total spread by population, or ``{region: count}``).
    mode : {"stochastic", "mean_field"}
    history_days : int
        Days of history replayed before the period to learn the detectors' baselines (a burn-in,
        as an operations centre starts its detectors on past feeds): the same city under the
        levers in force on the first day, without incidents; nothing of it is scored, alerted
        or stored. Default 7 (one week: the 7-day windows are full and every hour of the week
        has been seen once). 0 starts cold.
    rebaseline_levers : bool
        On each day a policy lever changes, the detectors re-learn the baselines of the
        indicators it moves (:mod:`engine.scenario.levers`) instead of alarming on the planned
        change (default True; False keeps the old baselines, to compare).
    full_windows : bool
        The detectors see a rolling count or sum only once the replay has covered its whole
        window (NaN before: :mod:`engine.scenario.windows`); default True, False to compare.

    Examples
    --------
    >>> sc = Scenario("staged", "2020-02-10", days=30, city=dict(neighbourhoods=30, population=100_000))
    >>> _ = sc.at("2020-02-10", sector_share=0.1, schools=False, other=0.3, masks=0.7)
    >>> _ = sc.stages([("2020-02-20", "2020-02-29", {"sector_share": 0.5})])
    >>> sc.at("2020-04-01", masks=1.0)
    Traceback (most recent call last):
    ...
    ValueError: date 2020-04-01 is outside the scenario period 2020-02-10..2020-03-10
    """

    name: str
    start: object
    days: int
    city: object = None
    seeds: tuple = (0,)
    cycle: str = "15min"
    title: str = ""
    params: EpiParams = field(default_factory=EpiParams)
    mobility: MobilityParams = field(default_factory=MobilityParams)
    initial_infections: object = 20
    mode: str = "stochastic"
    history_days: int = 7
    rebaseline_levers: bool = True
    full_windows: bool = True
    sim: SimScenario = field(init=False, repr=False)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip() or "/" in self.name:
            raise ValueError(f"scenario name {self.name!r}: expected a short non-empty name without '/'")
        self.seeds = tuple(self.seeds)
        if not self.seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in self.seeds):
            raise ValueError(f"seeds={self.seeds!r}: expected one or more non-negative integers")
        import pandas as pd

        try:
            minutes = pd.Timedelta(self.cycle).total_seconds() / 60
        except ValueError:
            minutes = -1
        if minutes <= 0 or 1440 % minutes or minutes > 60:
            raise ValueError(f"cycle={self.cycle!r}: expected a divisor of one day of at most 1 hour, e.g. '15min'")
        self.cycle_minutes = int(minutes)
        if isinstance(self.history_days, bool) or not isinstance(self.history_days, int) or self.history_days < 0:
            raise ValueError(f"history_days={self.history_days!r}: expected a whole number of days >= 0")
        self.sim = SimScenario(self.start, self.days, params=self.params, mobility=self.mobility,
                               initial_infections=self.initial_infections, mode=self.mode, name=self.name)
        self.title = self.title or self.name.replace("_", " ")

    # ---------------------------------------------------------------- the policy, checked as written
    def at(self, date, **levers) -> "Scenario":
        """Change levers from ``date`` on (see :mod:`engine.sim.policy` for every lever)."""
        self.sim.at(date, **levers)
        return self

    def stages(self, stages) -> "Scenario":
        """Override levers over closed date ranges ``[(first, last, {lever: value}), ...]``."""
        self.sim.stages(stages)
        return self

    def incident(self, kind, start, end, regions, indicators=(), **kw) -> "Scenario":
        """Inject an incident with ground truth (see :mod:`engine.sim.incidents`)."""
        self.sim.incident(kind, start, end, regions, indicators, **kw)
        return self

    # ---------------------------------------------------------------- running
    def build_city(self):
        """The :class:`engine.City` this scenario runs on."""
        from engine.city import City

        if self.city is None:
            return City.synthetic(seed=0)
        if isinstance(self.city, dict):
            return City.synthetic(**self.city)
        return self.city

    def with_history(self):
        """The simulation to run: ``history_days`` days of history, then the period.

        One continuous simulation (the city's sensors, sites and epidemic go on from the history
        into the period, as they do in a real city) starting ``history_days`` before ``start``:
        the history runs under the levers in force on the first day (changes dated on it, and
        stages covering it stretched back over the history), with no incidents; the period is
        as written. The epidemic is seeded at the start of the history.
        """
        import copy

        import numpy as np

        from engine.sim.policy import Timeline

        if not self.history_days:
            return self.sim
        tl = self.sim.timeline
        start = self.sim.start - np.timedelta64(self.history_days, "D")
        new = Timeline(start, tl.end)
        for d, levers in tl._changes:          # order of writing kept (later wins on one date)
            new.at(start if d <= tl.start else d, **levers)
        new.stages([(start if s <= tl.start else s, e, levers) for s, e, levers in tl._stages])
        sim = copy.copy(self.sim)
        sim.start, sim.days, sim.timeline = start, self.sim.days + self.history_days, new
        sim.incidents = list(self.sim.incidents)
        return sim

    def quick(self, days: int = 3) -> "Scenario":
        """A small, fast version for tests: the first ``days`` days, one seed."""
        import copy

        sc = copy.copy(self)
        sc.sim = self.sim.head(days)
        sc.days = sc.sim.days
        sc.seeds = self.seeds[:1]
        return sc

    def run(self, out, *, store_every: str | None = None, progress: bool | None = None, city=None,
            warm: bool | None = False):
        """Simulate, replay every cycle through the engine and write the run folder ``out``.

        See :func:`engine.scenario.runner.run_scenario` for the folder's contents and ``warm``
        (compile the later stages' kernels in a second process on a fresh numba cache).
        """
        from engine.scenario.runner import run_scenario

        return run_scenario(self, out, store_every=store_every, progress=progress, city=city, warm=warm)
