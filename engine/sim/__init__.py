"""Scenario simulator: a seeded, numba-compiled metapopulation epidemic model of the city.

See ``docs/sim.md`` for the design. The public surface:

>>> from engine.sim import MiniCity, Scenario, simulate
>>> sc = Scenario("2020-02-01", days=10, mode="mean_field")
>>> simulate(MiniCity.uniform(2, 10_000), sc).state.shape
(10, 2, 16, 6)
"""

from engine.sim.contacts import AGE_BANDS, LOCATIONS, ContactMatrices, spectral_radius, symmetrise, wuhan_population
from engine.sim.ensemble import ensemble  # binding the function here keeps the submodule from shadowing it
from engine.sim.incidents import INCIDENT_KINDS, Incident, Truth
from engine.sim.minicity import MiniCity
from engine.sim.mobility import CityArrays, compile_city, daily_mobility
from engine.sim.params import COMPARTMENTS, EpiParams, MobilityParams
from engine.sim.policy import LEVER_DEFAULTS, SECTORS, VENUE_KINDS, Stage, Timeline
from engine.sim.run import Scenario, SimResult, simulate
from engine.sim.feeds import SimDay, write_parquet

__all__ = [
    "AGE_BANDS", "COMPARTMENTS", "INCIDENT_KINDS", "LEVER_DEFAULTS", "LOCATIONS", "SECTORS", "VENUE_KINDS",
    "CityArrays", "ContactMatrices", "EpiParams", "Incident", "MiniCity", "MobilityParams", "Scenario",
    "SimDay", "SimResult", "Stage", "Timeline", "Truth", "compile_city", "daily_mobility", "ensemble", "simulate",
    "spectral_radius", "symmetrise", "wuhan_population", "write_parquet",
]
