"""What the bundled scenarios share: the lockdown they start from and the incidents they inject.

The incidents carry ground truth, so every run measures detection (recall, precision, time to
detect). Their regions lie within N0001..N0030 so that ``--quick`` runs (30 neighbourhoods) keep
them; days are counted from the scenario's start.
"""

from __future__ import annotations

import pandas as pd

START = "2020-02-24"
DAYS = 60


def lockdown(sc):
    """Wuhan-style lockdown on day 0: essential sectors only, schools shut, masks, testing."""
    return sc.at(sc.sim.start, sector_share={"D": 0.9, "F": 0.3, "G": 0.3, "H": 0.1, "Q": 0.9, "S": 0.8, "C": 0.1},
                 schools=False, other=0.2, masks=0.6, testing=0.6, venue_cap=0.3,
                 arrivals=500, key_area_share=0.1, key_area_prevalence=0.002, arrival_testing=1.0,
                 arrival_quarantine=1.0, quarantine_compliance=0.95)


def incidents(sc, day0: int = 1):
    """The standard incident set (one of each kind), from ``day0`` on.

    Each is placed where both the ``--quick`` city and the demo city have the data its indicators
    need (``tests/test_scenario_incidents.py``): water meters in N0008, power meters in N0014, a
    price feed in N0023, a venue in N0010; no neighbourhood of N0001..N0030 has a pharmacy or a wet
    market in both cities, so ``mask_shortage`` and ``market_crowd`` take two neighbourhoods, one with
    the site in each. The wet-market and fraud indicators are weekly series, silent for two weeks
    of data (7 days of history + 7): those two come after the period's first week.
    """
    start = pd.Timestamp(str(sc.sim.start))

    def at(day, hour):
        return str(start + pd.Timedelta(days=day0 + day, hours=hour))

    sc.incident("water_main_burst", at(0, 9), at(0, 15), regions=["N0008"], magnitude=1.0)
    sc.incident("power_outage", at(0, 19), at(0, 23), regions=["N0014"], magnitude=1.0)
    sc.incident("mask_shortage", at(3, 8), at(4, 20), regions=["N0016", "N0025"], magnitude=1.0)
    sc.incident("price_spike", at(4, 6), at(5, 6), regions=["N0023"], magnitude=1.0)
    # 30 cases linked to the venue present at the fever clinics of the three neighbourhoods over
    # the 72 hours (a triangular curve peaking half-way; engine.sim.run.cluster_share), as clinical
    # onsets of the epidemic: fever visits, fever-symptom tickets and confirmed cases where and when
    # the truth says. The site (truth only) is the largest venue of the first region: N0010 has
    # venues in the 300- and the 30-neighbourhood city (N0009 has none in either)
    sc.incident("venue_cluster", at(5, 18), at(8, 18), regions=["N0010", "N0009", "N0011"], magnitude=30)
    sc.incident("market_crowd", at(9, 7), at(9, 10), regions=["N0003", "N0004"], magnitude=2.5)
    # a fraud wave as the police see one: 20 telecom-fraud reports from one neighbourhood in 24 hours
    # (a scam worked through its phone lists / group chats), against ~0.25 a day there (7,181 residents)
    sc.incident("fraud_wave", at(10, 8), at(11, 8), regions=["N0021"], magnitude=20)
    return sc
