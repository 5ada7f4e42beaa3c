"""Epidemiological and mobility parameters of the simulator (plain, validated dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.sim.contacts import N_AGE

COMPARTMENTS = ("S", "E", "P", "C", "A", "R")
"""Compartments: susceptible, exposed (latent, not infectious), pre-symptomatic (infectious),
clinical (symptomatic), subclinical (asymptomatic, less infectious), removed."""

S, E, P, C, A, R = range(6)

# Davies et al. (2020, Nat Med) clinical fraction by 10-year band, spread over 5-year bands.
_CLINICAL_10Y = (0.29, 0.21, 0.27, 0.33, 0.40, 0.49, 0.63, 0.69)
DEFAULT_CLINICAL_FRACTION = tuple(_CLINICAL_10Y[min(i // 2, 7)] for i in range(N_AGE))


def _positive(name, value):
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number of days, got {value!r}")


def _unit(name, value):
    v = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(v)) or (v < 0).any() or (v > 1).any():
        raise ValueError(f"{name} must lie in 0..1, got {value!r}")


@dataclass(frozen=True)
class EpiParams:
    """Natural history of the infection (durations in days; exponential-rate transitions).

    Parameters
    ----------
    R0 : float
        Basic reproduction number of the baseline age mixing (all levers at 1, no testing):
        spectral radius of the next-generation matrix ``beta * C * diag(D)``, where ``D[j]`` is the
        expected infectiousness-weighted time an infected person of band ``j`` spends infectious
        *in the discretised model* (so that final sizes match ``z = 1 - exp(-R0 z)`` exactly).
    latent_days : float
        Mean time in E (infected, not yet infectious).
    presymptomatic_days : float
        Mean time in P (infectious before symptoms). ``0`` removes the state: E goes straight to
        C or A (the classic SEIR when ``subclinical_infectiousness`` is 1).
    infectious_days : float
        Mean time in C or A.
    clinical_fraction : float or sequence of 16 floats
        Share of infections that become clinical, by age band.
    subclinical_infectiousness, presymptomatic_infectiousness : float
        Infectiousness relative to a clinical case.

    Examples
    --------
    >>> EpiParams(R0=2.0).clinical_fraction[0]
    0.29
    >>> EpiParams(R0=-1)
    Traceback (most recent call last):
    ...
    ValueError: R0 must be a non-negative number, got -1
    """

    R0: float = 2.5
    latent_days: float = 3.0
    presymptomatic_days: float = 2.0
    infectious_days: float = 5.0
    clinical_fraction: tuple = DEFAULT_CLINICAL_FRACTION
    subclinical_infectiousness: float = 0.5
    presymptomatic_infectiousness: float = 1.0

    def __post_init__(self):
        if not (np.isfinite(self.R0) and self.R0 >= 0):
            raise ValueError(f"R0 must be a non-negative number, got {self.R0!r}")
        _positive("latent_days", self.latent_days)
        _positive("infectious_days", self.infectious_days)
        if not (np.isfinite(self.presymptomatic_days) and self.presymptomatic_days >= 0):
            raise ValueError(f"presymptomatic_days must be >= 0, got {self.presymptomatic_days!r}")
        cf = np.broadcast_to(np.asarray(self.clinical_fraction, dtype=np.float64), (N_AGE,))
        _unit("clinical_fraction", cf)
        object.__setattr__(self, "clinical_fraction", tuple(float(v) for v in cf))
        if not (np.isfinite(self.subclinical_infectiousness) and self.subclinical_infectiousness >= 0):
            raise ValueError(f"subclinical_infectiousness must be >= 0, got {self.subclinical_infectiousness!r}")
        if not (np.isfinite(self.presymptomatic_infectiousness) and self.presymptomatic_infectiousness >= 0):
            raise ValueError(
                f"presymptomatic_infectiousness must be >= 0, got {self.presymptomatic_infectiousness!r}")

    @classmethod
    def seir(cls, R0: float, latent_days: float, infectious_days: float) -> "EpiParams":
        """The classic SEIR special case (no pre-symptomatic state, all infections alike).

        >>> EpiParams.seir(2.0, 3.0, 5.0).presymptomatic_days
        0.0
        """
        return cls(R0=R0, latent_days=latent_days, presymptomatic_days=0.0, infectious_days=infectious_days,
                   clinical_fraction=(1.0,) * N_AGE, subclinical_infectiousness=1.0)

    def step_probabilities(self, dt: float) -> tuple[float, float, float]:
        """Per-sub-step leaving probabilities ``1 - exp(-dt / duration)`` for E, P and C/A.

        ``P``'s probability is 1 when ``presymptomatic_days`` is 0 (the state is skipped).
        """
        p_e = -np.expm1(-dt / self.latent_days)
        p_p = 1.0 if self.presymptomatic_days == 0 else -np.expm1(-dt / self.presymptomatic_days)
        p_i = -np.expm1(-dt / self.infectious_days)
        return float(p_e), float(p_p), float(p_i)

    def infectious_time(self, dt: float) -> np.ndarray:
        """Expected infectiousness-weighted days infectious per infection, by age band.

        Exact for the discretised chain: a state left with probability ``p`` per sub-step of
        ``dt`` days is counted in ``dt / p`` days on average.
        """
        _, p_p, p_i = self.step_probabilities(dt)
        d_p = 0.0 if self.presymptomatic_days == 0 else dt / p_p
        d_i = dt / p_i
        cf = np.asarray(self.clinical_fraction)
        return self.presymptomatic_infectiousness * d_p + (cf + (1 - cf) * self.subclinical_infectiousness) * d_i


@dataclass(frozen=True)
class MobilityParams:
    """How residents move: commuting to enterprises and visits to venues.

    Parameters
    ----------
    venue_share : float
        Share of "other" contacts that happen at venues (malls, wet markets, restaurants,
        supermarkets); the rest happen in the home neighbourhood.
    visits_per_day : float
        Venue visits per resident per day at baseline (sets visitor counts, not transmission).
    median_load : float
        Peak occupancy, as a share of capacity, of the median venue at baseline; a venue's own
        load scales with its catchment (visitors per unit of capacity), so venues in dense
        neighbourhoods are crowded (load > 1 means over capacity).
    commute_km : float
        Length scale of the gravity model placing each enterprise's workers in home
        neighbourhoods (weight ``working-age residents * exp(-distance / commute_km)``).
    neighbour_visit_weight : float
        Weight of venues in adjacent neighbourhoods relative to the home neighbourhood's.
    employment_rate : float
        Largest share of a neighbourhood's working-age (20-64) residents that can hold jobs;
        enterprise headcounts are scaled down where they would exceed it.

    >>> MobilityParams().venue_share
    0.5
    """

    venue_share: float = 0.5
    visits_per_day: float = 0.6
    median_load: float = 0.7
    commute_km: float = 5.0
    neighbour_visit_weight: float = 0.5
    employment_rate: float = 0.8
    venue_kinds: tuple = ("mall", "wet_market", "restaurant", "supermarket")

    def __post_init__(self):
        _unit("venue_share", self.venue_share)
        _unit("employment_rate", self.employment_rate)
        _unit("neighbour_visit_weight", self.neighbour_visit_weight)
        for name in ("visits_per_day", "median_load", "commute_km"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be positive, got {v!r}")
        if not self.venue_kinds:
            raise ValueError("venue_kinds must name at least one site kind")
