"""Imported risk (输入性风险): arrivals, testing, quarantine, and the breaches that seed infections.

Per day, from the levers: ``arrivals`` people arrive, a share ``key_area_share`` of them from key
areas. Among key-area arrivals a share ``key_area_prevalence`` is infected; a share
``arrival_testing`` is tested, with sensitivity ``test_sensitivity`` (a positive is isolated);
of the rest a share ``arrival_quarantine`` is quarantined, and a quarantined person breaches with
probability ``1 - quarantine_compliance``. Other arrivals are infected with ``other_prevalence``
and go straight home. So an infected key-area arrival breaches with probability
``(1 - testing * sensitivity) * (1 - quarantine * compliance)``.

Arrivals live in neighbourhoods in proportion to population (and age bands in proportion to the
neighbourhood's residents); each breach moves one susceptible resident of that neighbourhood and
band into E (infected while away). Mean-field mode uses expected values; stochastic mode draws
binomials and multinomials from the run's generator.
"""

from __future__ import annotations

import numpy as np

from engine.sim.policy import DailyLevers


def breach_probability(levers: DailyLevers) -> np.ndarray:
    """Per-day probability that an infected key-area arrival seeds an infection in the city.

    >>> from engine.sim.policy import Timeline
    >>> tl = Timeline("2020-01-01", "2020-01-02").at("2020-01-02", arrival_testing=1.0,
    ...     test_sensitivity=0.8, arrival_quarantine=1.0, quarantine_compliance=0.9)
    >>> [round(float(v), 6) for v in breach_probability(tl.daily())]
    [1.0, 0.02]
    """
    caught = levers.arrival_testing * levers.test_sensitivity
    return (1.0 - caught) * (1.0 - levers.arrival_quarantine * levers.quarantine_compliance)


def import_flows(levers: DailyLevers, n: np.ndarray, rng: np.random.Generator | None):
    """Arrivals, key-area arrivals and breaches per day and neighbourhood.

    Returns ``arrivals (T, R)``, ``key_arrivals (T, R)`` and ``breaches (T, R, 16)``; expected
    values when ``rng`` is None, draws otherwise.

    >>> from engine.sim.policy import Timeline
    >>> tl = Timeline("2020-01-01", "2020-01-01").at("2020-01-01", arrivals=1000, key_area_share=0.5,
    ...                                              key_area_prevalence=0.01)
    >>> arr, key, br = import_flows(tl.daily(), np.full((2, 16), 10.0), None)
    >>> float(arr.sum()), float(key.sum()), round(float(br.sum()), 9)
    (1000.0, 500.0, 5.0)
    """
    T = levers.dates.shape[0]
    R, A = n.shape
    pop = n.sum(axis=1)
    if pop.sum() <= 0:
        raise ValueError("the city has no residents")
    region_share = pop / pop.sum()
    age_share = np.divide(n, pop[:, None], out=np.zeros_like(n), where=pop[:, None] > 0)
    b = breach_probability(levers)
    arrivals = np.zeros((T, R))
    key = np.zeros((T, R))
    breaches = np.zeros((T, R, A))
    for t in range(T):
        total = levers.arrivals[t]
        if total <= 0:
            continue
        if rng is None:
            k = total * levers.key_area_share[t]
            infected_k = k * levers.key_area_prevalence[t]
            infected_o = (total - k) * levers.other_prevalence[t]
            arrivals[t] = total * region_share
            key[t] = k * region_share
            breaches[t] = (infected_k * b[t] + infected_o) * region_share[:, None] * age_share
        else:
            total_i = int(round(total))
            k = rng.binomial(total_i, levers.key_area_share[t])
            arrivals[t] = rng.multinomial(total_i - k, region_share)
            key[t] = rng.multinomial(k, region_share)
            arrivals[t] += key[t]
            ik = rng.binomial(key[t].astype(np.int64), levers.key_area_prevalence[t])
            io = rng.binomial((arrivals[t] - key[t]).astype(np.int64), levers.other_prevalence[t])
            br = rng.binomial(ik, b[t]) + io
            for r in np.flatnonzero(br):
                breaches[t, r] = rng.multinomial(int(br[r]), age_share[r])
    return arrivals, key, breaches
