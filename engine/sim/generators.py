"""Feed generators: the simulated state turned into every feed of ``indicators/feeds.toml``.

:class:`FeedModel` is built once per run (:meth:`FeedModel.for_result`): it precomputes the daily
*drivers* of every neighbourhood from the :class:`~engine.sim.run.SimResult` and the city, then
:meth:`FeedModel.day` generates one day of all feeds, vectorised over all emitters and all cycles
of the day (numpy broadcasting for the signals; the numba kernels of :mod:`engine.sim.noise` for
the noise and the event times). Random numbers come from per-(seed, day, feed) streams, so a day
never depends on what other days drew.

Drivers (per day ``t`` and neighbourhood ``r``)
-----------------------------------------------
* ``share[t, r]``: reopened share of the jobs located in ``r`` (its sector mix @ ``sector_share``);
  ``d7``, ``d14``: its rise over 7 and 14 days; ``closed_days``: cumulative days closed.
* ``commute[t, r]``: active commuters living in ``r`` / workforce; ``work_in``: workers present.
* ``activity = 0.15 + 0.25 (commute + work_in) + 0.35 other`` (traffic, street life) and
  ``home = clip(1 - 0.45 commute - 0.25 other - 0.1 schools, 0.2, 1)`` (time spent at home).
* ``lock = 1 - other`` (city-wide); ``alarm = 1 - exp(-x / 5)`` with ``x`` the city's cases found in
  the last 7 days per 100,000 residents (public worry).
* epidemic: symptom onsets and infectious share by age group (0-14, 15-59, 60+), cases found.

Rhythms: each feed family has a daily profile (a mixture of Gaussians in the hour of day, mean 1)
and a weekend factor; events follow it through :func:`engine.sim.noise.event_offsets`.

Effects of the state (rates per 10,000 residents per day unless said; see ``docs/sim.md``):
hotline tickets by taxonomy sub-class (``fever_symptoms`` base 0.6 + 0.35 per symptom onset;
``early_reopening`` base 0.2 x (0.3 + 2 share + 25 d14); ``wage_arrears`` with days closed;
``mask_shortage`` with mask demand), police incidents (theft with activity, burglary with empty
homes, disputes with time at home), fires, accidents (traffic), fever-clinic visits (background
fever + 70 % of symptom onsets; a ``venue_cluster``'s cases all present, in their regions and timed
inside its window: :meth:`FeedModel.cluster_presenting`), case reports with a reporting delay,
arrivals, quarantine; road
speeds and volumes from ``activity``, power, water and gas loads from residents at home and jobs
open; crowd counts at venues from the simulated visitors and occupancy; prices; mask stock;
enterprise, shop, gate, school, hospital and population snapshots. Incidents add their effects
(:data:`engine.sim.incidents.MAGNITUDE`).
"""

from __future__ import annotations

import functools
import zlib

import numpy as np
import pandas as pd

from engine.sim.incidents import ROUTINE_FEEDS
from engine.sim.feedkernels import CROWD_KINDS, crowd_signal, power_signal, road_signal, water_signal
from engine.sim.noise import day_key, event_offsets, noisy_grid
from engine.sim.policy import SECTORS, VENUE_KINDS

NS_MIN = 60 * 10**9
NS_DAY = 1440 * NS_MIN
CHILD, ADULT, ELDERLY = slice(0, 3), slice(3, 12), slice(12, 16)

# ------------------------------------------------------------------------------------------ rhythms
# name: (floor, [(hour, sd_hours, amplitude), ...], weekend factor of the daily level)
PROFILES = {
    "flat": (1.0, [], 1.0),
    "commute": (0.12, [(8.0, 1.0, 1.0), (18.0, 1.3, 0.9), (13.0, 3.5, 0.45)], 0.65),
    "gate": (0.01, [(7.8, 1.0, 1.0), (12.0, 2.0, 0.5), (18.5, 1.5, 1.0)], 0.9),
    "metro": (0.0, [(8.0, 0.9, 1.0), (18.0, 1.2, 0.9), (13.0, 3.0, 0.35)], 0.65),
    "daytime": (0.08, [(10.5, 2.5, 1.0), (16.0, 3.0, 0.9), (20.0, 2.0, 0.5)], 1.0),
    "calls": (0.15, [(10.0, 2.5, 1.0), (15.5, 2.5, 0.9), (20.5, 1.8, 0.45)], 0.85),
    "night": (0.35, [(23.0, 2.5, 1.0), (1.5, 2.0, 0.6)], 1.3),
    "market": (0.03, [(7.5, 1.3, 1.0), (17.0, 1.5, 0.55)], 1.1),
    "supermarket": (0.03, [(10.5, 2.0, 0.8), (18.5, 1.8, 1.0)], 1.15),
    "mall": (0.02, [(15.0, 2.8, 1.0), (20.0, 1.5, 0.6)], 1.35),
    "restaurant": (0.03, [(12.0, 1.0, 1.0), (18.5, 1.3, 1.1)], 1.2),
    "work": (0.03, [(10.0, 1.8, 1.0), (15.0, 1.8, 1.0)], 0.3),
    "residential": (0.45, [(7.5, 1.2, 0.5), (20.5, 2.0, 1.0), (12.5, 1.5, 0.3)], 1.05),
    "cooking": (0.08, [(7.0, 0.8, 0.5), (11.5, 0.8, 0.9), (18.0, 1.0, 1.0)], 1.05),
    "clinic": (0.15, [(9.5, 1.8, 1.0), (15.0, 2.0, 0.8), (21.0, 2.0, 0.35)], 0.9),
    "school": (0.0, [(7.6, 0.4, 1.0), (16.3, 0.4, 0.8)], 0.0),
    "sun": (0.05, [(14.0, 2.5, 1.0)], 1.0),
}
"""Daily profiles (floor, Gaussian bumps by hour, weekend level factor)."""


SERVICE_HOURS = {"metro": (6.0, 23.5), "school": (7.0, 17.0)}
"""Profiles that are zero outside these hours."""


def profile(name: str, cycles: int) -> np.ndarray:
    """The named daily profile over ``cycles`` equal cycles, mean 1.

    >>> p = profile("commute", 96)
    >>> round(float(p.mean()), 6), bool(p[8 * 4] > p[3 * 4])
    (1.0, True)
    >>> float(profile("metro", 96)[3 * 4])
    0.0
    """
    floor, bumps, _ = PROFILES[name]
    h = (np.arange(cycles) + 0.5) * 24.0 / cycles
    p = np.full(cycles, floor)
    for mu, sd, amp in bumps:
        d = (h - mu + 12.0) % 24.0 - 12.0
        p += amp * np.exp(-0.5 * (d / sd) ** 2)
    if name in SERVICE_HOURS:
        a, b = SERVICE_HOURS[name]
        p[(h < a) | (h > b)] = 0.0
    return p / p.mean()


# ------------------------------------------------------------------------------------------ rates
# hotline sub-class: (base per 10k/day, profile, channel group)
HOTLINE = {
    "fever_symptoms": (0.6, "calls", "health"), "testing_quarantine": (0.8, "calls", "health"),
    "suspected_case": (0.2, "calls", "health"), "quarantine_violation": (0.15, "calls", "health"),
    "chronic_medication": (0.3, "calls", "health"), "hospital_access": (0.3, "calls", "health"),
    "early_reopening": (0.2, "calls", "default"), "reopening_permit": (0.4, "daytime", "default"),
    "wage_arrears": (0.3, "calls", "default"), "layoff_dispute": (0.15, "calls", "default"),
    "vegetable_supply": (0.3, "calls", "default"), "mask_shortage": (0.3, "calls", "default"),
    "price_gouging": (0.2, "calls", "default"), "food_safety": (0.3, "calls", "default"),
    "property_service": (1.2, "calls", "build"), "compound_access": (0.5, "calls", "build"),
    "water_outage": (0.3, "calls", "build"), "water_quality": (0.15, "calls", "build"),
    "power_outage": (0.2, "calls", "build"), "gas_issue": (0.15, "calls", "build"),
    "sewer_blockage": (0.4, "calls", "build"), "garbage": (0.6, "calls", "build"),
    "construction_noise": (0.4, "calls", "build"), "social_noise": (0.5, "night", "default"),
    "public_transport": (0.3, "commute", "default"), "parking": (0.6, "calls", "default"),
    "building_safety": (0.15, "calls", "build"), "neighbour_dispute": (0.4, "calls", "default"),
    "elderly_assistance": (0.2, "calls", "default"), "school_reopening": (0.2, "calls", "default"),
    "refund_dispute": (0.4, "calls", "default"), "online_shopping": (0.4, "calls", "default"),
}
CHANNEL_MIX = {  # citizen_hotline, construction_hotline, health_hotline, online_clue
    "health": (0.45, 0.04, 0.36, 0.15), "build": (0.50, 0.28, 0.04, 0.18), "default": (0.64, 0.07, 0.07, 0.22),
}
DUPLICATE_SHARE = 0.08
"""Share of hotline tickets reported again on another channel (same text, 5-90 minutes later)."""

POLICE = {
    "assault": 0.12, "robbery": 0.02, "weapon": 0.01, "burglary": 0.08, "theft": 0.35, "vehicle_theft": 0.2,
    "pickpocketing": 0.1, "telecom_fraud": 0.25, "street_fraud": 0.05, "neighbour_dispute": 0.3,
    "family_dispute": 0.25, "labour_dispute": 0.08, "consumer_dispute": 0.15, "public_disturbance": 0.1,
    "gambling_drugs": 0.05, "drunk_disorder": 0.08, "epidemic_violation": 0.05, "crowd_gathering": 0.05,
    "missing_person": 0.05,
}
FRAUD = {"telecom": (0.18, 8000.0, 1.3), "online_shopping": (0.1, 1500.0, 1.0), "investment": (0.04, 60000.0, 1.4),
         "fake_supplies": (0.02, 3000.0, 1.0)}
"""category: (cases per 10k/day, median loss yuan, log-sd)."""
FIRE = {"residential_fire": 0.02, "commercial_fire": 0.01, "electrical_fire": 0.015, "ebike_fire": 0.01,
        "kitchen_fire": 0.02, "outdoor_fire": 0.01, "smoke_detector": 0.06, "false_alarm": 0.05, "rescue": 0.04}
ACCIDENTS = {"fatal": 0.002, "injury": 0.03, "property_damage": 0.25, "ebike": 0.06, "pedestrian": 0.02,
             "hit_and_run": 0.01}
GRID = {"garbage_overflow": 0.8, "illegal_parking": 1.0, "street_vending": 0.5, "illegal_construction": 0.1,
        "damaged_facility": 0.3, "road_damage": 0.2, "missing_manhole": 0.05, "flyposting": 0.3,
        "fallen_tree": 0.03, "waterlogging": 0.03}
LIFTS = {"trapped": 0.0008, "stopped": 0.002, "door_fault": 0.002, "overspeed": 0.0003}   # per lift per day
OUTAGES = {"water_outage": 0.02, "pipe_burst": 0.005, "power_outage": 0.01, "gas_outage": 0.005,
           "sewer_overflow": 0.01}
INSPECTIONS = {"price_gouging": 0.02, "counterfeit_masks": 0.01, "food_safety": 0.05, "expired_goods": 0.05,
               "unlicensed": 0.05, "wildlife_trade": 0.005, "inspection": 0.5}
COMMUNITY = {"group_rental": 0.05, "nonresident_registered": 0.5, "dispute_mediated": 0.3, "mediation_failed": 0.05,
             "elderly_visit": 0.5, "delivery_service": 0.1, "petition": 0.03}
REPORT_DELAY = np.array([0.10, 0.35, 0.25, 0.15, 0.08, 0.05, 0.02])
"""Share of cases reported 0, 1, ... 6 days after they are found (mean 1.9 days)."""
HOSPITAL_CONFIRM = 0.3
"""Share of clinical onsets not found by testing that are confirmed anyway (fever clinics)."""
CFR = np.array([2e-5, 2e-5, 1e-4, 1e-4, 3e-4, 3e-4, 8e-4, 8e-4, 1.5e-3, 1.5e-3, 6e-3, 6e-3, 0.02, 0.03,
                0.05, 0.08])
STAPLES = {"pork": 52.0, "beef": 85.0, "mutton": 80.0, "chicken": 22.0, "eggs": 11.0, "carp": 14.0, "grass_carp": 18.0,
           "rice": 5.5, "flour": 4.5, "cooking_oil": 15.0, "cabbage": 3.5, "bok_choy": 5.0, "potato": 4.0,
           "tomato": 7.0, "cucumber": 6.5, "radish": 2.8, "carrot": 4.0, "onion": 3.5, "garlic": 9.0, "ginger": 14.0,
           "lotus_root": 9.0, "tofu": 6.0, "milk": 12.0, "apple": 10.0}
"""Base retail prices (yuan per kg or L), an inner-city wet market in February 2020."""
VEGETABLES = ("cabbage", "bok_choy", "potato", "tomato", "cucumber", "radish", "carrot", "onion", "lotus_root")
PROTECTIVE = {"surgical_mask": 2.0, "n95_mask": 12.0, "kn95_mask": 6.0, "hand_sanitizer": 25.0, "disinfectant": 15.0,
              "alcohol": 18.0, "thermometer": 35.0, "antipyretic": 20.0}
MASK_ITEMS = ("surgical_mask", "n95_mask", "kn95_mask")
STOCK = {"surgical_mask": 3000.0, "n95_mask": 300.0, "hand_sanitizer": 200.0, "disinfectant": 150.0,
         "thermometer": 40.0, "antipyretic": 120.0}

SNAPSHOT_TIMES = {  # minutes after midnight of each snapshot
    "enterprise_status": (540,), "shop_status": (600,), "pharmacy_stock": (480, 720, 1080, 1320),
    "market_supply": (300,), "elderly_care_status": (480, 1200), "quarantine_hotels": (480,),
    "gate_status": (0, 360, 720, 1080), "school_status": (450,), "hospital_status": (360, 720, 1080, 1380),
    "population_status": (480,),
}
READING_CADENCE = {"air_quality": 60, "consumer_spending": 60, "staple_prices": 1440, "protective_prices": 1440}
"""Minutes between readings where not every cycle (prices: daily, at ``PRICE_TIME``)."""
PRICE_TIME = {"staple_prices": 420, "protective_prices": 540}


@functools.lru_cache(maxsize=256)
def _hash_unit(seed: int, name: str, n: int) -> np.ndarray:
    """``n`` fixed uniforms for emitter attributes (same for every day of a run; cached, read-only)."""
    u = np.random.default_rng([int(seed), zlib.crc32(name.encode())]).random(n)
    u.flags.writeable = False
    return u


def _counts(rng, lam) -> np.ndarray:
    lam = np.asarray(lam, dtype=np.float64)
    return rng.poisson(np.where(lam > 0.0, lam, 0.0))          # NaN and negative rates: 0


class FeedModel:
    """The per-run drivers and the per-day generation of every feed (see module docstring).

    Parameters
    ----------
    result : SimResult
        With ``result.city`` and ``result.arrays`` set (as :func:`engine.sim.simulate` does).
    cycle_minutes : int
        The engine cycle (divides 1440, at most 60).
    feeds : iterable of str, optional
        Only these feeds.

    Examples
    --------
    >>> from engine import City
    >>> from engine.sim import Scenario, simulate
    >>> city = City.synthetic(seed=1, neighbourhoods=12, streets=2, population=40_000)
    >>> res = simulate(city, Scenario("2020-02-01", 2, mode="mean_field"), seed=1)
    >>> frames = FeedModel(res, feeds=["road_traffic"]).day(0)
    >>> int(frames["readings"].shape[0]) == 96 * 4 * int((city.sensors.kind == "road_segment").sum())
    True
    """

    def __init__(self, result, cycle_minutes: int = 15, feeds=None):
        from engine.sim.feeds import FeedVocab, feed_specs

        if result.city is None:
            raise ValueError("this SimResult has no city (simulate(city, ...) keeps it): cannot generate feeds")
        if isinstance(cycle_minutes, bool) or not isinstance(cycle_minutes, (int, np.integer)) \
                or cycle_minutes < 1 or 1440 % cycle_minutes or cycle_minutes > 60:
            raise ValueError(f"cycle_minutes={cycle_minutes!r}: expected a divisor of 1440 between 1 and 60")
        specs = feed_specs()
        if feeds is not None:
            feeds = list(feeds)
            bad = [f for f in feeds if f not in specs]
            if bad:
                raise ValueError(f"unknown feed(s) {bad}: expected ids of indicators/feeds.toml")
        self.only = None if feeds is None else set(feeds)
        self.res = result
        self.city = result.city
        self.seed = int(result.seed)
        self.cycle = int(cycle_minutes)
        self.C = 1440 // self.cycle
        self.vocab = FeedVocab(self.city, specs)
        self._grid_cache: dict = {}
        self._where: dict = {}
        self._prof_tiles: dict = {}
        self._sizes: dict = {}
        self._prof = {k: profile(k, self.C) for k in PROFILES}
        self._cdf_names = list(PROFILES)
        self._cdf = np.stack([np.cumsum(self._prof[k]) / self._prof[k].sum() for k in self._cdf_names])
        self._cdf[:, -1] = 1.0
        self._drivers()

    @classmethod
    def for_result(cls, result, cycle_minutes: int = 15, feeds=None) -> "FeedModel":
        """A model for ``result`` (cached on the result for the same options)."""
        key = (int(cycle_minutes), None if feeds is None else tuple(sorted(feeds)))
        cache = result.__dict__.setdefault("_feed_models", {})
        if key not in cache:
            cache.clear()
            cache[key] = cls(result, cycle_minutes, feeds)
        return cache[key]

    def wants(self, feed: str) -> bool:
        return self.only is None or feed in self.only

    def where(self, table: str, kinds) -> np.ndarray:
        """Positions (read-only, cached) of the sites or sensors (``table``) of a kind or kinds."""
        key = (table, kinds if isinstance(kinds, str) else tuple(kinds))
        pos = self._where.get(key)
        if pos is None:
            k = self.site_kind if table == "site" else self.sensor_kind
            pos = np.flatnonzero(np.isin(k, [kinds] if isinstance(kinds, str) else list(kinds)))
            pos.flags.writeable = False
            self._where[key] = pos
        return pos

    # ------------------------------------------------------------------------------ drivers
    def _drivers(self):
        res, city = self.res, self.city
        arr = res.arrays
        T, R = res.dates.shape[0], len(res.region_ids)
        self.T, self.R = T, R
        regions = city.regions
        self.pop = np.asarray(arr.n.sum(axis=1), dtype=np.float64)
        self.pop10k = self.pop / 1e4
        self.region_name = regions["name"].astype(str).to_numpy() if "name" in regions else \
            np.asarray(regions.index.astype(str))
        self.area = regions["area_km2"].to_numpy(dtype=np.float64) if "area_km2" in regions else np.ones(R)
        lev = res.levers
        self.other = lev["other"].to_numpy()
        self.schools = lev["schools"].to_numpy()
        self.masks = lev["masks"].to_numpy()
        self.testing = lev["testing"].to_numpy()
        self.quarantine = lev["arrival_quarantine"].to_numpy()
        self.compliance = lev["quarantine_compliance"].to_numpy()
        self.lock = 1.0 - self.other
        # jobs by region and sector -> reopened share of the jobs located in each region
        ent = city.enterprises
        emp = np.zeros((R, len(SECTORS)))
        if len(ent):
            rpos = res.region_ids.get_indexer(ent["region"])
            spos = pd.Index(SECTORS).get_indexer(ent["sector"].astype(str))
            np.add.at(emp, (rpos, spos), ent["employees"].to_numpy(dtype=np.float64))
        self.emp = emp
        tot = emp.sum(axis=1)
        city_mix = emp.sum(axis=0) / max(emp.sum(), 1.0)
        ss = res.sector_share
        share = np.where(tot[None, :] > 0, (ss @ emp.T) / np.maximum(tot, 1.0)[None, :], (ss @ city_mix)[:, None])
        self.share = share                                                     # (T, R)
        self.d7 = np.maximum(share - np.vstack([np.repeat(share[:1], 7, 0), share])[:T], 0.0)
        self.d14 = np.maximum(share - np.vstack([np.repeat(share[:1], 14, 0), share])[:T], 0.0)
        self.closed_days = np.cumsum(1.0 - share, axis=0)
        self.share_E = ss[:, SECTORS.index("E")]
        self.share_H = ss[:, SECTORS.index("H")]
        self.share_F = ss[:, SECTORS.index("F")]
        self.jobs_open = share * tot[None, :]                                  # jobs open in region
        wf = np.asarray(arr.workforce, dtype=np.float64)
        self.commute = np.where(wf > 0, res.workers_home / np.maximum(wf, 1e-9), ss.mean(axis=1)[:, None])
        at_full = np.bincount(arr.work_indices, weights=arr.work_sector.sum(axis=1), minlength=R)
        self.work_in = np.where(at_full > 0, res.workers_at / np.maximum(at_full, 1e-9), self.commute)
        self.activity = 0.15 + 0.25 * (self.commute + self.work_in) + 0.35 * self.other[:, None]
        self.home = np.clip(1.0 - 0.45 * self.commute - 0.25 * self.other[:, None] - 0.1 * self.schools[:, None],
                            0.2, 1.0)
        # epidemic
        st = res.state
        inf = st[..., 2] + st[..., 3] + st[..., 4]                             # (T, R, 16)
        n = arr.n
        self.n_group = np.stack([n[:, g].sum(axis=1) for g in (CHILD, ADULT, ELDERLY)], axis=1)   # (R, 3)
        self.inf_share = np.stack([inf[..., g].sum(axis=2) for g in (CHILD, ADULT, ELDERLY)], axis=2) \
            / np.maximum(self.n_group, 1.0)[None]
        self.inf_all = inf.sum(axis=2) / np.maximum(self.pop, 1.0)[None]
        self.clinical = st[..., 3].sum(axis=2)
        on = res.new_onsets
        self.onsets = np.stack([on[..., g].sum(axis=2) for g in (CHILD, ADULT, ELDERLY)], axis=2)   # (T, R, 3)
        cl = res.cluster_cases if getattr(res, "cluster_cases", None) is not None else np.zeros_like(on)
        self.cluster = np.stack([cl[..., g].sum(axis=2) for g in (CHILD, ADULT, ELDERLY)], axis=2)  # (T, R, 3)
        found = res.new_detected + HOSPITAL_CONFIRM * np.maximum(res.new_onsets - res.new_detected, 0.0)
        conf = np.zeros_like(found)
        for k, w in enumerate(REPORT_DELAY[:T]):
            conf[k:] += w * found[:T - k]
        self.confirm_exp = conf                                                # (T, R, 16) expected reports
        city_found = found.sum(axis=(1, 2))
        wk = np.convolve(city_found, np.ones(7))[:T]
        self.alarm = 1.0 - np.exp(-(wk / max(self.pop.sum(), 1.0) * 1e5) / 5.0)
        conf_r = conf.sum(axis=2)
        self.close_exp = 8.0 * conf_r
        key = res.key_arrivals
        self.q_home = 0.6 * key * self.quarantine[:, None] + 0.5 * self.close_exp
        self.q_hotel = 0.4 * key * self.quarantine[:, None] + 0.5 * self.close_exp
        last14 = lambda x: np.cumsum(x, axis=0) - np.vstack([np.zeros((14, R)), np.cumsum(x, axis=0)])[:T]  # noqa: E731
        self.q_stock_home = last14(self.q_home)                              # people in quarantine (14 days)
        self.q_stock_hotel = last14(self.q_hotel)
        self.q_released = np.vstack([np.zeros((14, R)), self.q_home + self.q_hotel])[:T]
        # venues
        self.venue_region = np.asarray(arr.venue_region)
        self.venue_kind = np.asarray(arr.venue_kind)
        self.venue_capacity = np.asarray(arr.venue_capacity, dtype=np.float64)
        # weather: pollution factor (AR(1) around 1) and rain (0 or mm-ish intensity), per day
        wr = np.random.default_rng([self.seed, zlib.crc32(b"weather")])
        pol = np.empty(T)
        x = 0.0
        for t in range(T):
            x = 0.7 * x + wr.normal(0.0, 0.25)
            pol[t] = np.exp(x)
        self.pollution = pol
        self.rain = np.where(wr.random(T) < 0.25, wr.gamma(1.5, 1.0, T), 0.0)
        # prices: city-wide log random walks per item
        pr = np.random.default_rng([self.seed, zlib.crc32(b"prices")])
        self.staple_walk = np.exp(np.cumsum(pr.normal(0.0, 0.008, (T, len(STAPLES))), axis=0))
        # tables
        self._tables()
        self._incidents()

    def _tables(self):
        city, res = self.city, self.res
        sites = city.sites if isinstance(getattr(city, "sites", None), pd.DataFrame) else pd.DataFrame(
            columns=["kind", "region", "capacity"])
        sensors = city.sensors if isinstance(getattr(city, "sensors", None), pd.DataFrame) else pd.DataFrame(
            columns=["kind", "region"])
        self.site_region = res.region_ids.get_indexer(sites["region"]).astype(np.int64)
        self.site_kind = sites["kind"].astype(str).to_numpy()
        self.site_cap = sites["capacity"].to_numpy(dtype=np.float64) if "capacity" in sites else np.zeros(len(sites))
        self.sensor_region = res.region_ids.get_indexer(sensors["region"]).astype(np.int64)
        self.sensor_kind = sensors["kind"].astype(str).to_numpy()
        self.site_venue = res.venue_ids.get_indexer(sites.index) if len(sites) else np.zeros(0, np.int64)
        ent = city.enterprises
        self.ent_region = res.region_ids.get_indexer(ent["region"]).astype(np.int64)
        self.ent_sector = pd.Index(SECTORS).get_indexer(ent["sector"].astype(str)).astype(np.int64)
        self.ent_emp = ent["employees"].to_numpy(dtype=np.float64)
        self.ent_u = _hash_unit(self.seed, "enterprise-open", len(ent))
        self.ent_eff = 0.55 + 0.35 * _hash_unit(self.seed, "enterprise-eff", len(ent))
        R = self.R
        self.n_sensor = {k: np.bincount(self.sensor_region[self.sensor_kind == k], minlength=R).astype(float)
                         for k in set(self.sensor_kind)}
        self.n_site = {k: np.bincount(self.site_region[self.site_kind == k], minlength=R).astype(float)
                       for k in set(self.site_kind)}
        # nearest hospital of each region
        hosp = np.flatnonzero(self.site_kind == "hospital")
        regions = city.regions
        if len(hosp) and {"x_m", "y_m"} <= set(regions):
            xy = regions[["x_m", "y_m"]].to_numpy(dtype=np.float64)
            hx = xy[self.site_region[hosp]]
            d = np.hypot(xy[:, None, 0] - hx[None, :, 0], xy[:, None, 1] - hx[None, :, 1])
            self.region_hospital = hosp[np.argmin(d, axis=1)]
        else:
            self.region_hospital = np.full(R, hosp[0] if len(hosp) else -1)

    def _incidents(self):
        res = self.res
        self.incidents = []
        day0 = np.datetime64(res.dates[0], "ns").astype(np.int64)
        for inc in res.truth:
            pos = res.region_ids.get_indexer(list(inc.regions)).astype(np.int64)
            a = np.datetime64(inc.start.to_datetime64(), "ns").astype(np.int64) - day0
            b = np.datetime64(inc.end.to_datetime64(), "ns").astype(np.int64) - day0
            if b <= a:                       # an instant: give it one cycle
                b = a + self.cycle * NS_MIN
            self.incidents.append((inc, pos, int(a), int(b)))

    def incidents_start(self, inc) -> int:
        """An incident's start in ns after the first day's midnight."""
        for i, pos, a, b in self.incidents:
            if i is inc:
                return a
        raise KeyError(inc)

    def active(self, t: int, kind: str):
        """``[(incident, region positions, cover (C,))]`` of ``kind`` touching day ``t``; cover is
        the share of each cycle inside the incident's window."""
        out = []
        c0 = t * NS_DAY + np.arange(self.C, dtype=np.int64) * self.cycle * NS_MIN
        c1 = c0 + self.cycle * NS_MIN
        for inc, pos, a, b in self.incidents:
            if inc.kind != kind or b <= t * NS_DAY or a >= (t + 1) * NS_DAY:
                continue
            cover = np.clip((np.minimum(c1, b) - np.maximum(c0, a)) / (self.cycle * NS_MIN), 0.0, 1.0)
            out.append((inc, pos, cover))
        return out

    def region_boost(self, t: int, kind: str, weight=None) -> np.ndarray:
        """(R,) sum over active incidents of ``magnitude * share of the day covered`` (``weight``
        reweights the cycles, e.g. a feed's rhythm)."""
        out = np.zeros(self.R)
        for inc, pos, cover in self.active(t, kind):
            w = cover if weight is None else cover * weight
            out[pos] += inc.magnitude * w.mean()
        return out

    def cycle_boost(self, t: int, kind: str, cap: float | None = None) -> np.ndarray:
        """(C, R) magnitude (capped at ``cap``) times cover per cycle and region."""
        out = np.zeros((self.C, self.R))
        for inc, pos, cover in self.active(t, kind):
            m = inc.magnitude if cap is None else min(inc.magnitude, cap)
            out[:, pos] += m * cover[:, None]
        return out if cap is None else np.minimum(out, cap)

    def cluster_presenting(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``venue_cluster`` cases presenting on day ``t``: ``(cases (R, 3) by age group, weight
        (C,))``, the cases the simulation seeded that day (:attr:`SimResult.cluster_cases`) and their
        timing over the day's cycles (:func:`engine.sim.run.cluster_share` of the incidents under
        way, weighted by magnitude; zero outside their windows)."""
        from engine.sim.run import cluster_share

        day0 = np.datetime64(self.res.dates[0], "ns").astype(np.int64)
        edges = day0 + t * NS_DAY + np.arange(self.C + 1, dtype=np.int64) * self.cycle * NS_MIN
        weight = np.zeros(self.C)
        for inc in self.res.truth:
            if inc.kind == "venue_cluster":
                weight += inc.magnitude * cluster_share(inc, edges)
        return self.cluster[t], weight

    # ------------------------------------------------------------------------------ one day
    def day(self, t: int, rows: dict | None = None) -> dict:
        """All feeds of day ``t`` as ``{kind: DataFrame}`` (see :mod:`engine.sim.feeds`); ``rows``,
        if given, receives ``{feed: rows}`` (feeds with rows only)."""
        from engine.sim.feeds import DayBuffer

        if not 0 <= t < self.T:
            raise IndexError(f"day {t} is outside the run (0..{self.T - 1})")
        date = np.datetime64(self.res.dates[t], "D")
        start = int(np.datetime64(date, "ns").astype(np.int64))
        buf = DayBuffer(self.vocab, start, int(date.astype(np.int64)), self._sizes)
        ctx = _Day(self, t, buf, start, bool(pd.Timestamp(date).day_of_week >= 5))
        for name, gen in GENERATORS:
            if any(self.wants(f) for f in name.split("+")):
                gen(ctx)
        self._sizes = buf.sizes
        if rows is not None:
            rows.update({f: n for f, n in buf.rows.items() if n})
        return buf.frames()

    # ------------------------------------------------------------------------------ helpers
    def grid(self, ctx, feed: str, emitter: str, positions, times_min, signal, sd, integer=None):
        """Readings or snapshots of ``feed`` for every (time, emitter, item): ``signal`` is
        ``(len(times_min), E, M)``; adds noise, clips to the bounds and writes the records
        (:func:`engine.sim.noise.noisy_grid`)."""
        if not self.wants(feed):
            return
        Cn, E, M = signal.shape
        if Cn * E * M == 0:
            return
        integer = np.zeros(M, dtype=np.bool_) if integer is None else np.asarray(integer, dtype=np.bool_)
        rec = self._records(ctx, feed, emitter, positions, times_min, np.asarray(sd, dtype=np.float64), integer)
        noisy_grid(np.ascontiguousarray(signal, dtype=np.float64), *rec)   # one layout: one compile

    def signal(self, ctx, feed: str, emitter: str, positions, times_min, kernel, args, sd, integer=None):
        """Like :meth:`grid`, with the signal ``(len(times_min), E, len(sd))`` written by a kernel
        of :mod:`engine.sim.feedkernels` (``kernel(*args, sig)``)."""
        if not self.wants(feed) or len(positions) * len(times_min) == 0:
            return
        sig = np.empty((len(times_min), len(positions), len(sd)))
        kernel(*args, sig)
        self.grid(ctx, feed, emitter, positions, times_min, sig, sd, integer)

    def _records(self, ctx, feed, emitter, positions, times_min, sd, integer) -> tuple:
        """The record arguments of :func:`engine.sim.noise.noisy_grid` after the signal: noise and
        bounds, the stream key, emitter and item codes, absolute times, and the reserved columns."""
        kind = self.vocab.specs[feed]["kind"]
        E, M = len(positions), sd.size
        key = (feed, E, tuple(times_min))
        cached = self._grid_cache.get(key)
        if cached is None:
            from engine.sim.feeds import EMITTER_COL, ITEM_COL, _code_dtype

            v = self.vocab
            edt = _code_dtype(len(v.dtypes[(kind, EMITTER_COL[kind])].categories))
            idt = _code_dtype(len(v.dtypes[(kind, ITEM_COL[kind])].categories))
            off = np.asarray(times_min, dtype=np.int64) * NS_MIN
            if kind == "readings":        # an interval's reading is stamped 1 s before its end
                off = off - 10**9
            cached = (self.vocab.emitter_codes(kind, emitter, positions).astype(edt),
                      self.vocab.item_code[feed].astype(idt), off)
            self._grid_cache[key] = cached
        em, it, off = cached
        lo, hi = self.vocab.bounds[feed]
        em_o, it_o, t_o, out = ctx.buf.reserve(kind, feed, len(off) * E * M)
        return sd, lo, hi, integer, ctx.key(feed), em, it, off + ctx.start, em_o, it_o, t_o, out

    def reading_times(self, feed: str) -> np.ndarray:
        """Minutes after midnight of the ends of a readings feed's intervals (:meth:`grid` stamps
        each reading 1 second before, so a day's readings stay in that day)."""
        cad = max(READING_CADENCE.get(feed, self.cycle), self.cycle)
        if feed in PRICE_TIME:
            return np.array([PRICE_TIME[feed]])
        return np.arange(1, 1440 // cad + 1) * cad


class _Day:
    """What a generator sees for one day."""

    def __init__(self, model: FeedModel, t: int, buf, start: int, weekend: bool):
        self.m, self.t, self.buf, self.start, self.weekend = model, t, buf, start, weekend

    def rng(self, name: str) -> np.random.Generator:
        return np.random.default_rng([self.m.seed, self.t, zlib.crc32(name.encode())])

    def key(self, name: str):
        return day_key(self.m.seed, self.t, name)

    def level(self, prof: str) -> float:
        return PROFILES[prof][2] if self.weekend else 1.0

    def prof(self, name: str) -> np.ndarray:
        return self.m._prof[name]

    def emit(self, feed: str, rates, profiles, extra=(), value=None, record: bool = True):
        """Poisson events of ``feed`` from daily ``rates (R, K)`` (the feed's categories in order)
        following ``profiles`` (one name per category, weekend factors applied); ``extra`` adds
        incident components ``(rates (R, K), cover (C,))`` timed by their cover. ``value`` is a
        callable ``f(category, region, rng)``. Returns ``(category, region, offset_ns, rng)`` of the
        drawn events (recorded in the day's buffer unless ``record`` is false), or None."""
        m = self.m
        if not m.wants(feed):
            return None
        rng = self.rng(feed)
        names = m._cdf_names
        lev = np.array([self.level(p) for p in profiles])
        lam = np.asarray(rates, dtype=np.float64) * lev[None, :]
        counts = [_counts(rng, lam).ravel()]
        tiled = m._prof_tiles.get(tuple(profiles))
        if tiled is None:                       # profile of every (region, category) cell
            tiled = m._prof_tiles[tuple(profiles)] = np.tile([names.index(p) for p in profiles], m.R)
        prof_idx = [tiled]
        cdfs = [m._cdf]
        for rates_x, cover in extra:
            if cover.sum() <= 0:
                continue
            c = _counts(rng, rates_x).ravel()
            counts.append(c)
            prof_idx.append(np.full(c.size, len(names) + len(cdfs) - 1, dtype=np.int64))
            cdf = np.cumsum(cover) / cover.sum()
            cdf[-1] = 1.0
            cdfs.append(cdf[None, :])
        K = len(profiles)
        cnt = np.concatenate(counts).astype(np.int64)
        n = int(cnt.sum())
        if n == 0:
            return None
        cell = np.repeat(np.arange(cnt.size), cnt)
        cat = cell % K
        reg = (cell // K) % m.R
        off = np.empty(n, dtype=np.int64)
        event_offsets(cnt, np.concatenate(prof_idx).astype(np.int64), np.vstack(cdfs), m.cycle * NS_MIN,
                      self.key(feed), off)
        if record:
            val = None if value is None else value(cat, reg, rng)
            self.buf.events(feed, cat, reg, off, value=val)
            if feed in ROUTINE_FEEDS:
                # the background events (first block of cells, not an incident's extras) are
                # routine events of the city: the truth lists them for the detection quality
                bg = cell < m.R * K
                items = m.vocab.items[feed]
                m.res.truth.record_routine(self.t, feed, [items[c] for c in cat[bg]],
                                           np.asarray(m.res.region_ids)[reg[bg]], self.start + off[bg])
        return cat, reg, off, rng


# ================================================================================ generators
def _names_rates(table: dict, feed_items: list) -> np.ndarray:
    return np.array([table[i] for i in feed_items], dtype=np.float64)


def gen_hotline(d: _Day):
    m, t = d.m, d.t
    items = m.vocab.items["hotline_tickets"]
    base = np.array([HOTLINE[i][0] for i in items])
    mult = np.ones((m.R, len(items)))
    col = {i: k for k, i in enumerate(items)}
    alarm, lock = m.alarm[t], m.lock[t]
    cases, when = m.cluster_presenting(t)
    cases = cases.sum(axis=1)
    onsets = m.onsets[t].sum(axis=1) - cases              # the cluster's cases are timed in its window (below)
    home, act, share = m.home[t], m.activity[t], m.share[t]
    wage = (1.0 - share) * np.minimum(1.0, m.closed_days[t] / 30.0)
    mask_need = (1.0 - m.masks[t]) * (1.0 + alarm)
    s7 = abs(m.schools[t] - m.schools[max(t - 7, 0)])
    setm = {
        "fever_symptoms": 0.6 + 0.4 * alarm, "testing_quarantine": 1 + 3 * alarm, "suspected_case": 1 + 2 * alarm,
        "quarantine_violation": 1 + alarm, "chronic_medication": 1 + 1.5 * lock, "hospital_access": 1 + 1.5 * lock,
        "early_reopening": (0.3 + 2.0 * share + 25.0 * m.d14[t]) * (1 + alarm),
        "reopening_permit": 0.5 + 3.0 * (1 - share) * (share > 0.02) + 20.0 * m.d7[t],
        "wage_arrears": 0.5 + 3.0 * wage, "layoff_dispute": 0.6 + 2.0 * wage, "vegetable_supply": 1 + 3 * lock,
        "mask_shortage": 1 + 3 * mask_need, "price_gouging": 1 + 2 * alarm, "compound_access": 1 + 2 * lock,
        "garbage": 0.7 + 0.6 * home, "social_noise": 0.6 + 0.8 * home, "neighbour_dispute": 0.6 + 0.8 * home,
        "construction_noise": 0.2 + m.share_E[t], "public_transport": 0.3 + 0.7 * act, "parking": 0.4 + 0.6 * act,
        "elderly_assistance": 1 + 2 * lock, "school_reopening": 1 + 5 * s7, "refund_dispute": 1 + 2 * lock,
        "online_shopping": 1 + 1.5 * lock, "sewer_blockage": 1 + 0.3 * m.rain[t],
    }
    for k, v in setm.items():
        mult[:, col[k]] = v
    rates = base[None, :] * m.pop10k[:, None] * mult
    rates[:, col["fever_symptoms"]] += 0.35 * onsets
    rates[:, col["suspected_case"]] += 0.1 * onsets
    rates[:, col["testing_quarantine"]] += 0.05 * m.res.key_arrivals[t]
    rates[:, col["quarantine_violation"]] += 0.02 * m.res.key_arrivals[t]
    extra = []
    prof = d.prof("calls")
    for kind, item, per_region in (("water_main_burst", "water_outage", 25.0), ("power_outage", "power_outage", 30.0)):
        for inc, pos, cover in m.active(t, kind):     # per_region tickets over the whole incident
            x = np.zeros_like(rates)
            x[pos, col[item]] = per_region * inc.magnitude * _day_part(m, inc, cover)
            extra.append((x, cover * (0.3 + prof)))
    for kind, item, factor in (("mask_shortage", "mask_shortage", 10.0), ("price_spike", "price_gouging", 5.0),
                               ("mask_shortage", "price_gouging", 3.0)):
        for inc, pos, cover in m.active(t, kind):
            x = np.zeros_like(rates)
            x[pos, col[item]] = factor * inc.magnitude * rates[pos, col[item]] * cover.mean()
            extra.append((x, cover * prof))
    if cases.sum() > 0 and when.sum() > 0:                    # the venue cluster's cases, as onsets are
        x = np.zeros_like(rates)
        x[:, col["fever_symptoms"]] = 0.35 * cases
        x[:, col["suspected_case"]] = 0.1 * cases
        extra.append((x, when))
    for inc, pos, cover in m.active(t, "venue_cluster"):      # visitors worried after the news
        x = np.zeros_like(rates)
        x[pos, col["fever_symptoms"]] = 2.0 * rates[pos, col["fever_symptoms"]] * cover.mean()
        extra.append((x, cover * prof))
    groups = [HOTLINE[i][2] for i in items]
    mix = np.array([CHANNEL_MIX[g] for g in groups])                     # (K, 4)
    chan_ids = ["citizen_hotline", "construction_hotline", "health_hotline", "online_clue"]
    chan_code = np.array([m.vocab.channels.index(c) for c in chan_ids], dtype=np.int32)
    zh = [m.vocab.specs["hotline_tickets"]["categories"][i]["name_zh"] for i in items]
    # draw the events, then the duplicates (same text on another channel, 5-90 minutes later)
    ev = d.emit("hotline_tickets", rates, [HOTLINE[i][1] for i in items], extra=extra, record=False)
    if ev is None:
        return
    cat, reg, off, rng = ev
    u = rng.random(cat.size)
    cum = np.cumsum(mix[cat], axis=1)
    ch = (u[:, None] > cum).sum(axis=1).clip(0, 3)
    building, unit = rng.integers(1, 40, cat.size), rng.integers(1, 5, cat.size)
    room = rng.integers(1, 19, cat.size) * 100 + rng.integers(1, 5, cat.size)
    names = m.region_name.tolist()               # Python objects: formatting numpy scalars is slow
    text = np.array([f"{names[r]}{b}栋{u}单元{h}室居民反映：{zh[c]}"
                     for r, b, u, h, c in zip(reg.tolist(), building.tolist(), unit.tolist(), room.tolist(),
                                              cat.tolist())], dtype=object)
    dup = rng.random(cat.size) < DUPLICATE_SHARE
    k = int(dup.sum())
    ch2 = (ch[dup] + rng.integers(1, 4, k)) % 4
    off2 = np.minimum(off[dup] + rng.integers(5, 91, k) * NS_MIN, NS_DAY - 1)
    d.buf.events("hotline_tickets", np.concatenate([cat, cat[dup]]), np.concatenate([reg, reg[dup]]),
                 np.concatenate([off, off2]), channel=chan_code[np.concatenate([ch, ch2])],
                 text=np.concatenate([text, text[dup]]))


def _day_part(m, inc, cover) -> float:
    """Share of an incident's duration that falls on this day."""
    dur = max((inc.end - inc.start).total_seconds() / 60.0, m.cycle)
    return float(min(1.0, cover.sum() * m.cycle / dur))


def gen_police_fraud(d: _Day):
    m, t = d.m, d.t
    items = m.vocab.items["police_incidents"]
    col = {i: k for k, i in enumerate(items)}
    act, home, lock, alarm = m.activity[t], m.home[t], m.lock[t], m.alarm[t]
    wage = (1.0 - m.share[t]) * np.minimum(1.0, m.closed_days[t] / 30.0)
    mult = np.ones((m.R, len(items)))
    for k, v in {"theft": 0.3 + 0.7 * act, "pickpocketing": 0.2 + 0.8 * act, "robbery": 0.4 + 0.6 * act,
                 "vehicle_theft": 0.4 + 0.6 * act, "burglary": 1.4 - 0.6 * home, "telecom_fraud": 1 + 0.5 * home,
                 "street_fraud": 0.3 + 0.7 * act, "neighbour_dispute": 0.7 + 0.6 * home,
                 "family_dispute": 0.6 + 0.8 * home, "labour_dispute": 0.5 + 2.0 * wage,
                 "consumer_dispute": 0.5 + 0.5 * m.other[t], "drunk_disorder": 0.2 + 0.8 * m.other[t],
                 "epidemic_violation": 1 + 6 * lock * (0.3 + alarm), "crowd_gathering": 0.3 + 0.7 * m.other[t]}.items():
        mult[:, col[k]] = v
    rates = _names_rates(POLICE, items)[None, :] * m.pop10k[:, None] * mult
    prof = ["night" if i in ("drunk_disorder", "family_dispute", "burglary") else "calls" for i in items]
    extra = []
    for inc, pos, cover in m.active(t, "fraud_wave"):
        # ``magnitude`` cases reported per region over the whole wave (its share of them today),
        # on top of the background, timed by the wave's cover and the calls' rhythm
        x = np.zeros_like(rates)
        x[pos, col["telecom_fraud"]] = inc.magnitude * _day_part(m, inc, cover)
        extra.append((x, cover * d.prof("calls")))
    for inc, pos, cover in m.active(t, "market_crowd"):
        x = np.zeros_like(rates)
        x[pos, col["crowd_gathering"]] = 2.0 * cover.mean() * max(inc.magnitude - 1.0, 0.0)
        extra.append((x, cover))
    d.emit("police_incidents", rates, prof, extra=extra)
    # fraud losses (cases filed with a loss)
    fi = m.vocab.items["fraud_losses"]
    fcol = {i: k for k, i in enumerate(fi)}
    fr = np.array([FRAUD[i][0] for i in fi])[None, :] * m.pop10k[:, None] * np.ones((m.R, len(fi)))
    fr[:, fcol["telecom"]] *= 1 + 0.5 * home
    fr[:, fcol["online_shopping"]] *= 1 + 1.0 * lock
    fr[:, fcol["fake_supplies"]] *= 1 + 10 * (1 - m.masks[t]) * alarm + 5 * m.region_boost(t, "mask_shortage")
    ex = []
    for inc, pos, cover in m.active(t, "fraud_wave"):
        x = np.zeros_like(fr)       # every case of the wave is filed with a loss, like the background's
        x[pos, fcol["telecom"]] = inc.magnitude * _day_part(m, inc, cover)
        ex.append((x, cover * d.prof("calls")))
    med = np.array([FRAUD[i][1] for i in fi])
    sdv = np.array([FRAUD[i][2] for i in fi])
    d.emit("fraud_losses", fr, ["calls"] * len(fi), extra=ex,
           value=lambda cat, reg, rng: np.minimum(np.round(med[cat] * np.exp(sdv[cat] * rng.standard_normal(cat.size)),
                                                           0), 1e8))


def gen_safety(d: _Day):
    m, t = d.m, d.t
    act, home, other = m.activity[t], m.home[t], m.other[t]
    items = m.vocab.items["fire_alarms"]
    mult = np.ones((m.R, len(items)))
    for k, i in enumerate(items):
        if i in ("residential_fire", "kitchen_fire", "ebike_fire", "smoke_detector"):
            mult[:, k] = 0.6 + 0.8 * home
        elif i == "commercial_fire":
            mult[:, k] = 0.3 + 0.7 * other
    d.emit("fire_alarms", _names_rates(FIRE, items)[None, :] * m.pop10k[:, None] * mult,
           ["cooking" if i == "kitchen_fire" else "daytime" for i in items])
    items = m.vocab.items["traffic_accidents"]
    d.emit("traffic_accidents", _names_rates(ACCIDENTS, items)[None, :] * (m.pop10k * act)[:, None],
           ["commute"] * len(items))
    items = m.vocab.items["gas_alarms"]
    rates = np.array([0.02, 0.01, 0.005])[None, :] * m.pop10k[:, None] * np.ones((m.R, 3))
    rates[:, 0] *= 0.7 + 0.6 * home
    rates[:, 2] *= 0.2 + m.share_E[t]
    d.emit("gas_alarms", rates, ["cooking", "daytime", "daytime"])
    # construction-site events
    items = m.vocab.items["construction_events"]
    sites = m.n_site.get("construction_site", np.zeros(m.R))
    e = m.share_E[t]
    per_site = {"accident": 0.002 * e, "dust_violation": 0.03 * e * m.pollution[t], "night_work": 0.01 * e,
                "inspection_fail": 0.02 * e, "worker_fever": 0.01 * e}
    rates = np.zeros((m.R, len(items)))
    for k, i in enumerate(items):
        if i == "unsafe_building":
            rates[:, k] = 0.02 * m.pop10k * (1 + m.rain[t])
        elif i == "worker_fever":
            rates[:, k] = sites * (per_site[i] + 300 * e * m.inf_share[t][:, 1] * 0.5)
        else:
            rates[:, k] = sites * per_site[i]
    d.emit("construction_events", rates, ["night" if i == "night_work" else "work" for i in items])
    # grid patrol, lifts
    items = m.vocab.items["grid_patrol"]
    mult = np.ones((m.R, len(items)))
    for k, i in enumerate(items):
        mult[:, k] = {"garbage_overflow": 0.7 + 0.6 * home, "illegal_parking": 0.3 + 0.7 * act,
                      "street_vending": 0.3 + 0.7 * other, "waterlogging": 0.3 + 3.0 * m.rain[t],
                      "fallen_tree": 1 + m.rain[t]}.get(i, 1.0)
    d.emit("grid_patrol", _names_rates(GRID, items)[None, :] * m.pop10k[:, None] * mult, ["work"] * len(items))
    items = m.vocab.items["lift_faults"]
    lifts = m.n_sensor.get("lift_monitor", m.pop10k * 14)
    d.emit("lift_faults", _names_rates(LIFTS, items)[None, :] * (lifts * (0.7 + 0.6 * home))[:, None],
           ["daytime"] * len(items))


def gen_utilities_events(d: _Day):
    m, t = d.m, d.t
    items = m.vocab.items["utility_outages"]
    col = {i: k for k, i in enumerate(items)}
    rates = _names_rates(OUTAGES, items)[None, :] * m.pop10k[:, None] * np.ones((m.R, len(items)))
    rates[:, col["sewer_overflow"]] *= 1 + 4 * m.rain[t]
    extra, first = [], []
    for kind, items_n in (("water_main_burst", {"pipe_burst": 0.5, "water_outage": 4.0}),
                          ("power_outage", {"power_outage": 3.0})):
        for inc, pos, cover in m.active(t, kind):
            for item, n in items_n.items():           # n events per region over the whole incident
                x = np.zeros_like(rates)
                x[pos, col[item]] = n * inc.magnitude * _day_part(m, inc, cover)
                extra.append((x, cover))
            c0 = int(np.flatnonzero(cover > 0)[0])
            if c0 * m.cycle * NS_MIN + t * NS_DAY <= m.incidents_start(inc) < (c0 + 1) * m.cycle * NS_MIN + t * NS_DAY:
                # the first report of each region, in the cycle the incident starts
                item = "pipe_burst" if kind == "water_main_burst" else "power_outage"
                first.append((np.full(pos.size, col[item]), pos,
                              c0 * m.cycle * NS_MIN + (np.arange(pos.size) % m.cycle) * NS_MIN))
    d.emit("utility_outages", rates, ["daytime"] * len(items), extra=extra)
    if m.wants("utility_outages"):
        for cat, reg, off in first:
            d.buf.events("utility_outages", cat, reg, off)
    # market inspections and community events
    items = m.vocab.items["market_inspections"]
    col = {i: k for k, i in enumerate(items)}
    mult = np.ones((m.R, len(items)))
    mult[:, col["price_gouging"]] = 1 + 3 * m.alarm[t] + 5 * m.region_boost(t, "price_spike") + \
        3 * m.region_boost(t, "mask_shortage")
    mult[:, col["counterfeit_masks"]] = 1 + 5 * (1 - m.masks[t]) + 8 * m.region_boost(t, "mask_shortage")
    mult[:, col["unlicensed"]] = 0.3 + 0.7 * m.other[t]
    mult[:, col["wildlife_trade"]] = 1 + m.alarm[t]
    d.emit("market_inspections", _names_rates(INSPECTIONS, items)[None, :] * m.pop10k[:, None] * mult,
           ["work"] * len(items))
    items = m.vocab.items["community_events"]
    col = {i: k for k, i in enumerate(items)}
    lock, home = m.lock[t], m.home[t]
    mult = np.ones((m.R, len(items)))
    mult[:, col["nonresident_registered"]] = 0.3 + 0.7 * m.share[t] + 5 * m.d7[t]
    mult[:, col["dispute_mediated"]] = 0.7 + 0.6 * home
    mult[:, col["mediation_failed"]] = 0.7 + 0.6 * home
    mult[:, col["elderly_visit"]] = 1 + 2 * lock
    mult[:, col["delivery_service"]] = 1 + 20 * lock
    rates = _names_rates(COMMUNITY, items)[None, :] * m.pop10k[:, None] * mult
    rates[:, col["nonresident_registered"]] += 0.05 * m.res.arrivals[t]
    d.emit("community_events", rates, ["work"] * len(items))


def gen_epidemic_events(d: _Day):
    m, t = d.m, d.t
    res = m.res
    # fever clinics: background fever (per 10k of the age group) + 70 % of symptom onsets + worried well
    items = m.vocab.items["fever_clinic_visits"]
    col = {i: k for k, i in enumerate(items)}
    bg = np.array([1.2, 0.6, 0.9])
    # (a venue cluster's cases all present, at the clinics of its regions, timed in its window)
    cases, when = m.cluster_presenting(t)
    onsets = m.onsets[t] - cases
    visits = m.n_group / 1e4 * bg[None, :] * (1 + 1.5 * m.alarm[t]) + 0.7 * onsets      # (R, 3)

    def clinic_rates(visits, onsets):
        rates = np.zeros((m.R, len(items)))
        rates[:, col["child"]], rates[:, col["adult"]], rates[:, col["elderly"]] = visits.T
        tot = visits.sum(axis=1)
        rates[:, col["sampled"]] = tot * (0.3 + 0.6 * m.testing[t])
        rates[:, col["positive_screen"]] = 0.6 * onsets.sum(axis=1) * (0.4 + 0.6 * m.testing[t]) + 0.002 * tot
        return rates, tot

    rates, tot = clinic_rates(visits, onsets)
    extra = [(clinic_rates(cases, cases)[0], when)] if cases.sum() > 0 and when.sum() > 0 else []
    d.emit("fever_clinic_visits", rates, ["clinic"] * len(items), extra=extra)
    # case reports with delay, by age
    conf = m.confirm_exp[t]                                                  # (R, 16)
    items = m.vocab.items["epidemic_reports"]
    col = {i: k for k, i in enumerate(items)}
    rates = np.zeros((m.R, len(items)))
    if m.wants("epidemic_reports") or m.wants("confirmed_by_age"):
        rng = d.rng("confirmed")
        by_age = _counts(rng, conf)                                         # the confirmed cases, by age
        if m.wants("confirmed_by_age"):
            cnt = by_age.ravel().astype(np.int64)
            n = int(cnt.sum())
            if n:
                cell = np.repeat(np.arange(cnt.size), cnt)
                off = np.empty(n, dtype=np.int64)
                event_offsets(cnt, np.full(cnt.size, m._cdf_names.index("daytime"), dtype=np.int64), m._cdf,
                              m.cycle * NS_MIN, d.key("confirmed_by_age"), off)
                d.buf.events("confirmed_by_age", cell % 16, cell // 16, off)
        conf_r = conf.sum(axis=1)
        past = lambda k: m.confirm_exp[t - k].sum(axis=1) if t >= k else np.zeros(m.R)   # noqa: E731
        rates[:, col["asymptomatic"]] = 0.25 * conf_r * (0.3 + 0.7 * m.testing[t])
        rates[:, col["suspected"]] = 0.8 * conf_r + 0.01 * tot
        rates[:, col["close_contact"]] = m.close_exp[t]
        rates[:, col["secondary_contact"]] = 1.5 * m.close_exp[t]
        rates[:, col["recovered"]] = past(14)
        rates[:, col["death"]] = (m.confirm_exp[t - 10] @ CFR) if t >= 10 else 0.0
        if m.wants("epidemic_reports"):
            d.emit("epidemic_reports", rates, ["daytime"] * len(items))     # (confirmed: 0 here, drawn above)
            # the confirmed counts themselves, same draw as confirmed_by_age
            cnt = by_age.sum(axis=1).astype(np.int64)
            n = int(cnt.sum())
            if n:
                off = np.empty(n, dtype=np.int64)
                event_offsets(cnt, np.full(cnt.size, m._cdf_names.index("daytime"), dtype=np.int64), m._cdf,
                              m.cycle * NS_MIN, d.key("epidemic_reports/confirmed"), off)
                d.buf.events("epidemic_reports", np.full(n, col["confirmed"]), np.repeat(np.arange(m.R), cnt), off)
    # arrivals
    items = m.vocab.items["arrivals"]
    col = {i: k for k, i in enumerate(items)}
    rates = np.zeros((m.R, len(items)))
    arr, key = res.arrivals[t], res.key_arrivals[t]
    rates[:, col["from_key_area"]] = key
    rates[:, col["from_other_domestic"]] = 0.94 * (arr - key)
    rates[:, col["from_abroad"]] = 0.06 * (arr - key)
    prev = m.commute[t - 1] if t else m.commute[t]
    wf = np.asarray(res.arrays.workforce, dtype=np.float64)
    rates[:, col["returning_worker"]] = 0.2 * np.maximum(m.commute[t] - prev, 0.0) * wf + 0.3 * m.pop10k
    rates[:, col["returning_student"]] = 0.1 * m.pop10k + 0.02 * m.n_group[:, 0] * \
        max(m.schools[t] - (m.schools[t - 3] if t >= 3 else m.schools[t]), 0.0)
    d.emit("arrivals", rates, ["daytime"] * len(items))
    # quarantine
    items = m.vocab.items["quarantine_events"]
    col = {i: k for k, i in enumerate(items)}
    rates = np.zeros((m.R, len(items)))
    rates[:, col["home_start"]] = m.q_home[t]
    rates[:, col["hotel_start"]] = m.q_hotel[t]
    rates[:, col["released"]] = m.q_released[t]
    rates[:, col["breach"]] = 0.3 * (1 - m.compliance[t]) * (m.q_home[t] + m.q_hotel[t]) + 0.002 * m.pop10k
    rates[:, col["code_red"]] = conf.sum(axis=1) + 0.02 * m.pop10k * m.alarm[t]
    rates[:, col["code_yellow"]] = 0.5 * m.close_exp[t] + 0.2 * m.pop10k * (0.2 + m.alarm[t])
    d.emit("quarantine_events", rates, ["daytime"] * len(items))


def _per_emitter(values_by_region, region_of, counts_by_region):
    """Share a per-region amount equally among the emitters of each region."""
    n = np.maximum(counts_by_region[region_of], 1.0)
    return values_by_region[..., region_of] / n


def gen_network_readings(d: _Day):
    """Road traffic, water, power, gas, drainage, air quality and noise sensors."""
    m, t = d.m, d.t
    C = m.C
    sk, sr = m.sensor_kind, m.sensor_region
    times = m.reading_times("road_traffic")
    # --- road traffic
    pos = m.where("sensor", "road_segment")
    if pos.size and m.wants("road_traffic"):
        r = sr[pos]
        u = _hash_unit(m.seed, "road", pos.size)
        base = 250.0 + 450.0 * u                                           # vehicles per 15 min at full activity
        vfree = 35.0 + 25.0 * _hash_unit(m.seed, "vfree", pos.size)
        cap = base * 2.0
        m.signal(d, "road_traffic", "sensor", pos, times, road_signal,
                (d.prof("commute") * d.level("commute"), base, m.activity[t][r], m.cycle / 15.0, cap * m.cycle / 15.0,
                 vfree), [0.06, 0.12, 0.1, 0.1], integer=[False, True, False, False])
    # --- water
    pos = m.where("sensor", "water_meter")
    if pos.size and m.wants("water_network"):
        r = sr[pos]
        resid = m.pop[r] / np.maximum(m.n_sensor["water_meter"][r], 1.0)
        jobs = m.jobs_open[t][r] / np.maximum(m.n_sensor["water_meter"][r], 1.0)
        burst = m.cycle_boost(t, "water_main_burst", cap=1.5)[:, r]          # (C, E)
        m.signal(d, "water_network", "sensor", pos, times, water_signal,
                (d.prof("residential"), d.prof("work") * d.level("work"), resid * 0.2 / 24.0,
                 0.85 + 0.3 * m.home[t][r], jobs * 0.06 / 24.0, burst, float(m.rain[t])), [0.02, 0.06, 0.15, 0.05])
    # --- power
    pos = m.where("sensor", "power_meter")
    if pos.size and m.wants("power_grid"):
        r = sr[pos]
        n = np.maximum(m.n_sensor["power_meter"][r], 1.0)
        resid = m.pop[r] / n
        jobs = m.jobs_open[t][r] / n
        out = np.minimum(m.cycle_boost(t, "power_outage", cap=1.0)[:, r], 1.0)
        m.signal(d, "power_grid", "sensor", pos, times, power_signal,
                (d.prof("residential"), 0.15 + d.prof("work") * d.level("work"),
                 0.3 * resid * (0.85 + 0.3 * m.home[t][r]), 0.9 * jobs, out, m.cycle), [0.05, 0.005, 0.05])
    # --- gas
    pos = m.where("sensor", "gas_meter")
    if pos.size and m.wants("gas_network"):
        r = sr[pos]
        n = np.maximum(m.n_sensor["gas_meter"][r], 1.0)
        flow = ((m.pop[r] / n) * 0.007 * (0.8 + 0.4 * m.home[t][r]))[None, :] * d.prof("cooking")[:, None] + \
            ((m.jobs_open[t][r] / n) * 0.003 * m.share_H[t])[None, :] * d.prof("restaurant")[:, None]
        press = 200.0 - 12.0 * flow / (flow.mean(axis=0, keepdims=True) + 1e-9)
        m.grid(d, "gas_network", "sensor", pos, times, np.stack([press, flow], axis=-1), [0.01, 0.07])
    # --- drainage
    pos = m.where("sensor", "drainage_gauge")
    if pos.size and m.wants("drainage"):
        r = sr[pos]
        n = np.maximum(m.n_sensor["drainage_gauge"][r], 1.0)
        lagged = np.roll(d.prof("residential"), max(1, 60 // m.cycle))
        flow = ((m.pop[r] / n) * 0.16 / 24.0)[None, :] * lagged[:, None] * (1.0 + 1.5 * m.rain[t])
        level = 0.3 + 0.9 * flow / (flow.mean(axis=0, keepdims=True) + 1e-9) * (1.0 + 0.5 * m.rain[t]) * 0.5
        m.grid(d, "drainage", "sensor", pos, times, np.stack([level, flow], axis=-1), [0.06, 0.08])
    # --- air quality (hourly) and noise
    traffic = (d.prof("commute") * d.level("commute"))                     # (C,)
    city_act = float(np.average(m.activity[t], weights=m.pop))
    pos = m.where("sensor", "air_monitor")
    if pos.size and m.wants("air_quality"):
        at = m.reading_times("air_quality")
        ci = ((at - 1) // m.cycle).clip(0, C - 1)
        loc = 0.8 + 0.4 * _hash_unit(m.seed, "air", pos.size)
        tr = traffic[ci][:, None] * city_act
        pm25 = 38.0 * m.pollution[t] * loc[None, :] * (0.75 + 0.35 * tr) / (1.0 + 0.5 * m.rain[t])
        pm10 = 1.6 * pm25
        no2 = (15.0 + 35.0 * tr) * loc[None, :]
        o3 = (30.0 + 70.0 * d.prof("sun")[ci])[:, None] * np.ones_like(pm25) / (1.0 + 0.3 * m.rain[t])
        aqi = _aqi_pm25(pm25)
        m.grid(d, "air_quality", "sensor", pos, at, np.stack([pm25, pm10, no2, o3, aqi], axis=-1),
               [0.08, 0.08, 0.1, 0.08, 0.04], integer=[False, False, False, False, True])
    pos = m.where("sensor", "noise_monitor")
    if pos.size and m.wants("noise"):
        r = sr[pos]
        tr = traffic[:, None] * m.activity[t][r][None, :]
        leq = 42.0 + 10.0 * np.log10(1.0 + 20.0 * tr)
        m.grid(d, "noise", "sensor", pos, times, np.stack([leq, leq + 14.0], axis=-1), [0.03, 0.04])


def _aqi_pm25(c):
    """China HJ 633-2012 IAQI of a PM2.5 concentration (ug/m3), capped at 500."""
    bp_c = np.array([0, 35, 75, 115, 150, 250, 350, 500], dtype=float)
    bp_i = np.array([0, 50, 100, 150, 200, 300, 400, 500], dtype=float)
    return np.interp(c, bp_c, bp_i)


def gen_crowds(d: _Day):
    """Crowd counts at sites (every cycle), video-patrol alerts, construction-site monitors."""
    m, t = d.m, d.t
    res = m.res
    kinds = m.vocab.specs["crowd_counts"]["emitter_kinds"]
    times = m.reading_times("crowd_counts")
    C, cyc = m.C, m.cycle
    pos = m.where("site", kinds)
    alerts = []                                                           # (category, region, cycle) arrays
    if pos.size and (m.wants("crowd_counts") or m.wants("crowd_alerts")):
        E = pos.size
        r = m.site_region[pos]
        kind = m.site_kind[pos]
        cap = np.maximum(m.site_cap[pos], 1.0)
        v = m.site_venue[pos]
        isv = v >= 0
        # per-site daily amounts and rhythms; crowd_signal spreads them over the cycles
        code = np.full(E, -1, dtype=np.int64)
        a = np.zeros(E)                                                   # daily entries (offices: workers)
        b = np.zeros(E)                                                   # venues: peak occupancy
        adm = np.ones(E)
        p_in = np.zeros(E, dtype=np.int64)
        p_occ = np.zeros(E, dtype=np.int64)
        rows_in, rows_occ = [], []

        def rhythm(sel, k, prof_in, prof_occ):
            code[sel] = CROWD_KINDS.index(k)
            p_in[sel], p_occ[sel] = len(rows_in), len(rows_occ)
            rows_in.append(prof_in)
            rows_occ.append(prof_occ)

        # venues: the simulated visitors and peak occupancy
        pname = {"mall": "mall", "wet_market": "market", "restaurant": "restaurant", "supermarket": "supermarket"}
        for k, pn in pname.items():
            sel = np.flatnonzero(isv & (kind == k))
            if not sel.size:
                continue
            pr = d.prof(pn)
            a[sel] = res.venue_visitors[t, v[sel]] * d.level(pn)
            b[sel] = res.venue_occupancy[t, v[sel]] * cap[sel] * d.level(pn)
            if res.venue_admitted is not None:
                adm[sel] = res.venue_admitted[t, v[sel]]
            rhythm(sel, "venue", pr, pr / pr.max())
        # compound gates: residents going out and back
        sel = np.flatnonzero(kind == "compound_gate")
        if sel.size:
            rr = r[sel]
            per_gate = m.pop[rr] / np.maximum(m.n_site["compound_gate"][rr], 1.0)
            a[sel] = per_gate * (0.5 + 1.7 * m.activity[t][rr])
            rhythm(sel, "compound_gate", d.prof("gate") * d.level("gate"), np.zeros(C))
        check = 0.3 + 0.7 * max(m.lock[t], m.alarm[t])
        sel = np.flatnonzero(kind == "pharmacy")
        boost = np.zeros((C, E))
        if sel.size:
            rr = r[sel]
            catch = m.pop[rr] / np.maximum(m.n_site["pharmacy"][rr], 1.0)
            boost[:, sel] = m.cycle_boost(t, "mask_shortage", cap=2.0)[:, rr]
            a[sel] = catch * 0.012 * (1 + 1.5 * m.alarm[t] + 2.0 * (1 - m.masks[t]))
            pr = d.prof("daytime")
            rhythm(sel, "pharmacy", pr, pr / pr.max())
        sel = np.flatnonzero(kind == "metro_station")
        if sel.size:
            rr = r[sel]
            n = np.maximum(m.n_site["metro_station"][rr], 1.0)
            a[sel] = (res.workers_home[t, rr] + res.workers_at[t, rr]) * 0.35 / n + m.pop[rr] * 0.1 * m.other[t] / n
            rhythm(sel, "metro_station", d.prof("metro") * d.level("metro"), np.zeros(C))
        sel = np.flatnonzero(kind == "office_building")
        if sel.size:
            rr = r[sel]
            n = np.maximum(m.n_site["office_building"][rr], 1.0)
            a[sel] = np.minimum(res.workers_at[t, rr] * 0.5 / n, cap[sel])
            pr = d.prof("work") * d.level("work")
            rhythm(sel, "office_building", d.prof("commute"), pr / pr.max())
        sel = np.flatnonzero(kind == "hospital")
        if sel.size:
            rr = r[sel]
            n = np.maximum(m.n_site["hospital"][rr], 1.0)
            a[sel] = m.pop[rr] * 0.004 * (0.5 + 0.5 * m.other[t]) / n + (m.onsets[t, rr].sum(axis=1) * 0.7) / n
            rhythm(sel, "hospital", d.prof("clinic"), np.zeros(C))
        sel = np.flatnonzero(kind == "school")
        if sel.size:
            open_ = (_hash_unit(m.seed, "school-open", m.site_kind.size)[pos[sel]] < m.schools[t]).astype(float)
            a[sel] = cap[sel] * open_ * 0.95 * d.level("school")
            h = (np.arange(C) + 0.5) * 24.0 / C
            rhythm(sel, "school", d.prof("school"), ((h >= 7.5) & (h <= 16.5)).astype(float))
        sig = np.empty((C, E, 3))
        crowd_signal(code, p_in, p_occ, a, b, cap, adm, boost, np.array(rows_in or [np.zeros(C)]),
                     np.array(rows_occ or [np.zeros(C)]), cyc, check, d.level("work"), max(m.alarm[t], 0.2),
                     1 + 3 * m.alarm[t], sig)
        entries, occ, queue = sig[..., 0], sig[..., 1], sig[..., 2]
        # a market crowd: the day's simulated visitors include the factor; show it in its window
        for inc, rp, cover in m.active(t, "market_crowd"):
            f = max(inc.magnitude, 1e-9)
            hit = (kind == "wet_market") & isv & np.isin(r, rp) if inc.site is None else \
                (m.res.venue_ids[np.maximum(v, 0)] == inc.site) & isv
            sel = np.flatnonzero(hit)
            if sel.size:
                shape = (1.0 + (f - 1.0) * cover)[:, None] / f
                entries[:, sel] *= shape
                occ[:, sel] *= shape
                queue[:, sel] = queue[:, sel] * shape + 0.1 * np.maximum(occ[:, sel] - cap[sel][None, :], 0.0)
        scale = cyc / 15.0
        if m.wants("crowd_counts"):
            m.grid(d, "crowd_counts", "site", pos, times, sig, [0.1, 0.08, 0.15], integer=[True, True, True])
        # alerts: crowded sites in a cycle raise an alert with probability 0.5
        # a wet market's crowding camera sees the people who came: those inside and those held at
        # the gate when entry is limited (occupancy / admitted share); it alerts above the
        # occupancy limit in force (the market authority's published cap: a lockdown's 30 %, a
        # reopening stage's 50 % or 75 %; occupancy itself cannot pass it, so a crowd shows at the
        # gate), or above half the capacity where no limit is in force
        limit = 0.5
        if "cap_wet_market" in res.levers:
            in_force = float(res.levers["cap_wet_market"].iloc[t])
            limit = in_force if np.isfinite(in_force) else limit
        came = occ / np.maximum(adm, 1e-3)[None, :]
        rules = (("compound_gate", "gate_crowding", queue, False, 12.0 * scale),
                 ("pharmacy", "pharmacy_queue", queue, False, 8.0),
                 ("wet_market", "market_crowding", came, True, limit),
                 ("metro_station", "station_crowding", occ, True, 0.3),
                 ("mall", "mall_crowding", occ, True, 0.6))
        rng = d.rng("crowd_alerts")
        ai = m.vocab.items["crowd_alerts"]
        for k, cat, x, per_cap, thr in rules:
            sel = np.flatnonzero(kind == k)
            if not sel.size:
                continue
            x = x[:, sel] / cap[sel][None, :] if per_cap else x[:, sel]     # share of capacity, or queue
            hit = (x > thr) & (rng.random((C, sel.size)) < 0.5)
            ci, ei = np.nonzero(hit)
            alerts.append((np.full(ci.size, ai.index(cat)), r[sel][ei], ci))
    if m.wants("crowd_alerts"):
        rng = d.rng("crowd_alerts/background")
        ai = m.vocab.items["crowd_alerts"]
        cams = np.bincount(m.sensor_region[m.sensor_kind == "camera"], minlength=m.R).astype(float) \
            if (m.sensor_kind == "camera").any() else m.pop10k * 8
        bg = np.full((m.R, len(ai)), 0.004) * cams[:, None]
        bg[:, ai.index("no_mask")] = cams * 0.02 * (1 - m.masks[t]) * (0.3 + m.other[t])
        d.emit("crowd_alerts", bg, ["daytime"] * len(ai))
        for cat, reg, ci in alerts:
            if ci.size:
                off = ci * cyc * NS_MIN + (rng.random(ci.size) * cyc * NS_MIN).astype(np.int64)
                d.buf.events("crowd_alerts", cat, reg, off)
    # construction-site monitors
    pos = m.where("site", "construction_site")
    if pos.size and m.wants("site_monitors"):
        e = m.share_E[t]
        cap = np.maximum(m.site_cap[pos], 1.0)
        pr = d.prof("work") * d.level("work")
        workers = (cap * e * 0.8)[None, :] * (pr / pr.max())[:, None]
        active = workers / cap[None, :]
        # the ambient level plus the works' dust: a monitored site with dust suppression adds
        # some 40-60 ug/m3 at full work (180 put every busy site at 170-230 ug/m3, daily); the
        # catalog's hourly warn (250) is the ambient grade II limit plus a site standard's excess
        pm10 = 60.0 * m.pollution[t] + 60.0 * active / (1.0 + m.rain[t])
        # boundary Leq: 50 dB(A) idle, ~68 at the busiest (active 0.8); GB 12523-2011 allows 70 by day
        # (25 x sqrt(active) put every busy site at 72, above the limit all day)
        noise = 50.0 + 20.0 * np.sqrt(active)
        m.grid(d, "site_monitors", "site", pos, times, np.stack([pm10, noise, workers], axis=-1), [0.1, 0.03, 0.06],
               integer=[False, False, True])


def gen_commerce(d: _Day):
    """Consumer spending (hourly, per region), staple and protective prices (daily)."""
    m, t = d.m, d.t
    res = m.res
    if m.wants("consumer_spending"):
        times = m.reading_times("consumer_spending")
        H = times.size
        ci = ((times - 1) // m.cycle).clip(0, m.C - 1)
        vis = np.zeros((len(VENUE_KINDS), m.R))
        if res.venue_visitors.shape[1]:
            np.add.at(vis, (m.venue_kind, m.venue_region), res.venue_visitors[t])
        kv = {k: vis[VENUE_KINDS.index(k)] for k in VENUE_KINDS}
        lock, other = m.lock[t], m.other[t]

        def hourly(daily, prof):   # 万元 per hour
            p = d.prof(prof)[ci]
            return daily[None, :] * (p / p.sum())[:, None] / 1e4 * d.level(prof)

        catering = hourly(kv["restaurant"] * 60.0 + m.pop * 2.0 * m.share_H[t], "restaurant")
        groceries = hourly((kv["wet_market"] + kv["supermarket"]) * 55.0 + m.pop * 3.0, "market")
        retail = hourly(kv["mall"] * 180.0 + m.pop * 4.0 * (0.3 + 0.7 * m.share_F[t]), "mall")
        ent = hourly(m.pop * 1.5 * other ** 2, "mall")
        serv = hourly(m.pop * 2.5 * (0.3 + 0.7 * other), "daytime")
        online = hourly(m.pop * 4.0 * (1 + 1.5 * lock), "daytime")
        items = m.vocab.items["consumer_spending"]
        sig = {"catering": catering, "groceries": groceries, "retail": retail, "entertainment": ent,
               "services": serv, "online_delivery": online}
        m.grid(d, "consumer_spending", "region", np.arange(m.R), times, np.stack([sig[i] for i in items], axis=-1),
               [0.1] * len(items))
    # staple prices at wet markets and supermarkets, daily
    pos = m.where("site", ["wet_market", "supermarket"])
    if pos.size and m.wants("staple_prices"):
        items = m.vocab.items["staple_prices"]
        base = np.array([STAPLES[i] for i in items])
        walk = m.staple_walk[t, [list(STAPLES).index(i) for i in items]]
        veg = np.isin(items, VEGETABLES)
        lockp = np.where(veg, 1.0 + 0.25 * m.lock[t], 1.0 + 0.08 * m.lock[t])
        site = (1.0 + 0.06 * (_hash_unit(m.seed, "price-site", m.site_kind.size)[pos] - 0.5)) * \
            np.where(m.site_kind[pos] == "supermarket", 1.06, 1.0)
        spike = np.zeros((pos.size, len(items)))
        for inc, rp, cover in m.active(t, "price_spike"):
            hit = np.isin(m.site_region[pos], rp)
            it = np.isin(items, inc.items)
            spike[np.ix_(hit, it)] += 0.4 * inc.magnitude
        sig = (base * walk * lockp)[None, :] * site[:, None] * (1.0 + spike)
        m.grid(d, "staple_prices", "site", pos, m.reading_times("staple_prices"), sig[None], [0.02] * len(items))
    pos = m.where("site", "pharmacy")
    if pos.size and m.wants("protective_prices"):
        items = m.vocab.items["protective_prices"]
        base = np.array([PROTECTIVE[i] for i in items])
        mask = np.isin(items, MASK_ITEMS)
        demand = 1.0 + np.where(mask, 0.6, 0.15) * m.alarm[t] * (1.5 - m.masks[t])
        short = np.zeros(pos.size)
        for inc, rp, cover in m.active(t, "mask_shortage"):
            short[np.isin(m.site_region[pos], rp)] += inc.magnitude
        sig = base[None, :] * demand[None, :] * (1.0 + np.where(mask, 1.0, 0.2)[None, :] * short[:, None])
        m.grid(d, "protective_prices", "site", pos, m.reading_times("protective_prices"), sig[None],
               [0.03] * len(items))


def gen_snapshots(d: _Day):
    """Enterprise, shop, pharmacy stock, market supply, elderly care, quarantine hotels, gates,
    schools, hospitals and population snapshots."""
    m, t = d.m, d.t
    res = m.res
    rng = d.rng("snapshots")
    sk = m.site_kind
    if m.wants("enterprise_status") and m.ent_sector.size:
        share = res.sector_share[t, m.ent_sector]
        open_ = (m.ent_u < share).astype(float)
        back = open_ * m.ent_emp * m.ent_eff * (0.75 + 0.25 * share) * (1.0 - 2.0 * m.inf_all[t][m.ent_region])
        cap_use = open_ * 100.0 * (0.35 + 0.6 * share) * m.ent_eff / 0.75
        power = 8.0 + cap_use * 1.05
        sig = np.stack([open_, m.ent_emp, back, cap_use, power], axis=-1)[None]
        m.grid(d, "enterprise_status", "enterprise", np.arange(m.ent_sector.size), SNAPSHOT_TIMES["enterprise_status"],
               sig, [0.0, 0.0, 0.05, 0.05, 0.05], integer=[True, True, True, False, False])
    kinds = m.vocab.specs["shop_status"]["emitter_kinds"]
    pos = m.where("site", kinds)
    if pos.size and m.wants("shop_status"):
        k = sk[pos]
        other = m.other[t]
        p = np.select([k == "street_shop", k == "restaurant", k == "mall", k == "hotel"],
                      [0.15 + 0.85 * m.share_F[t] * (0.4 + 0.6 * other), m.share_H[t] * (0.3 + 0.7 * other),
                       0.1 + 0.9 * other, 0.3 + 0.7 * m.share_H[t]], default=0.92 + 0.08 * m.share_F[t])
        open_ = (_hash_unit(m.seed, "shop-open", sk.size)[pos] < p).astype(float)
        m.grid(d, "shop_status", "site", pos, SNAPSHOT_TIMES["shop_status"], open_[None, :, None], [0.0])
    pos = m.where("site", "pharmacy")
    if pos.size and m.wants("pharmacy_stock"):
        items = m.vocab.items["pharmacy_stock"]
        base = np.array([STOCK[i] for i in items])
        mask = np.isin(items, MASK_ITEMS)
        tm = np.array(SNAPSHOT_TIMES["pharmacy_stock"])
        ci = (tm // m.cycle).clip(0, m.C - 1)
        short = np.minimum(m.cycle_boost(t, "mask_shortage", cap=1.0)[ci][:, m.site_region[pos]], 1.0)   # (S, E)
        demand = 1.0 + np.where(mask, 1.5, 0.5)[None, None, :] * m.alarm[t] * (1.2 - m.masks[t])
        sold = (tm / 1440.0)[:, None, None] * 0.5                          # stock sold through the day
        sig = base[None, None, :] / demand * (1.0 - sold / demand) * \
            (1.0 - 0.9 * short[..., None] * mask[None, None, :])
        m.grid(d, "pharmacy_stock", "site", pos, tm, sig, [0.08] * len(items), integer=[True] * len(items))
    pos = m.where("site", ["wet_market", "supermarket"])
    if pos.size and m.wants("market_supply"):
        items = m.vocab.items["market_supply"]
        capf = np.maximum(m.site_cap[pos], 1.0) / 1200.0
        spike = np.zeros(pos.size)
        for inc, rp, cover in m.active(t, "price_spike"):
            spike[np.isin(m.site_region[pos], rp)] += inc.magnitude
        lock = m.lock[t]
        f = (1.0 + 0.3 * lock) * np.maximum(1.0 - 0.3 * spike, 0.1)
        sig = np.stack([3.0 * capf * f, 1.0 * capf * f, 0.5 * capf * f, 0.8 * capf * f,
                        np.maximum(7.0 * (1.0 - 0.3 * lock) * (1.0 - 0.5 * np.minimum(spike, 1.5)), 0.5)], axis=-1)
        m.grid(d, "market_supply", "site", pos, SNAPSHOT_TIMES["market_supply"], sig[None], [0.08] * len(items))
    pos = m.where("site", "elderly_care")
    if pos.size and m.wants("elderly_care_status"):
        r = m.site_region[pos]
        resid = np.round(np.maximum(m.site_cap[pos], 1.0) * (0.75 + 0.2 * _hash_unit(m.seed, "care", sk.size)[pos]))
        staff = np.round(resid / 4.0 * (1.0 - 0.1 * m.alarm[t]))
        fever = rng.poisson(resid * (0.003 + 0.5 * m.inf_share[t][r, 2]))
        closed = np.full(pos.size, float(m.lock[t] > 0.3 or m.alarm[t] > 0.2))
        sig = np.stack([resid, staff, fever, closed], axis=-1)
        tm = SNAPSHOT_TIMES["elderly_care_status"]
        m.grid(d, "elderly_care_status", "site", pos, tm, np.repeat(sig[None], len(tm), 0), [0.0] * 4)
    pos = m.where("site", "hotel")
    if pos.size and m.wants("quarantine_hotels"):
        designated = _hash_unit(m.seed, "quarantine-hotel", sk.size)[pos] < 0.4
        rooms = np.round(designated * np.maximum(m.site_cap[pos], 1.0) * 0.5)
        need = m.q_stock_hotel[t].sum()
        occ = np.minimum(rooms, np.round(need * rooms / max(rooms.sum(), 1.0) + 0.05 * rooms))
        m.grid(d, "quarantine_hotels", "site", pos, SNAPSHOT_TIMES["quarantine_hotels"],
               np.stack([rooms, occ], axis=-1)[None], [0.0, 0.0])
    pos = m.where("site", "compound_gate")
    if pos.size and m.wants("gate_status"):
        tm = SNAPSHOT_TIMES["gate_status"]
        u = _hash_unit(m.seed, "gate", sk.size)[pos]
        lock, alarm = m.lock[t], m.alarm[t]
        open_ = (u >= 0.5 * lock * (0.5 + alarm)).astype(float)
        temp = ((lock > 0.3) | (alarm > 0.05)) & (_hash_unit(m.seed, "gate-temp", sk.size)[pos] < 0.92)
        night = np.array([tt < 360 for tt in tm])
        guard = (rng.random((len(tm), pos.size)) > np.where(night, 0.15, 0.03)[:, None]).astype(float)
        sig = np.stack([np.broadcast_to(open_, guard.shape), np.broadcast_to(temp.astype(float), guard.shape), guard],
                       axis=-1)
        m.grid(d, "gate_status", "site", pos, tm, sig, [0.0, 0.0, 0.0])
    pos = m.where("site", "school")
    if pos.size and m.wants("school_status"):
        r = m.site_region[pos]
        open_ = (_hash_unit(m.seed, "school-open", sk.size)[pos] < m.schools[t]).astype(float)
        kid = m.inf_share[t][r, 0]
        att = open_ * np.clip(95.0 - 400.0 * kid - 3.0 * m.alarm[t], 40.0, 100.0)
        absent = open_ * rng.poisson(np.maximum(m.site_cap[pos], 1.0) * (0.002 + 0.5 * kid))
        m.grid(d, "school_status", "site", pos, SNAPSHOT_TIMES["school_status"],
               np.stack([open_, att, absent], axis=-1)[None], [0.0, 0.01, 0.0])
    pos = m.where("site", "hospital")
    if pos.size and m.wants("hospital_status"):
        tm = SNAPSHOT_TIMES["hospital_status"]
        cap = np.maximum(m.site_cap[pos], 1.0)
        fever_total = np.round(cap / 30.0)
        icu_total = np.round(cap / 75.0)
        load = np.zeros(m.site_kind.size)
        np.add.at(load, m.region_hospital, m.clinical[t] * 0.05 + m.onsets[t].sum(axis=1) * 0.3)
        sev = np.zeros(m.site_kind.size)
        np.add.at(sev, m.region_hospital, m.clinical[t] * 0.012)
        f_occ = np.minimum(fever_total, np.round(0.3 * fever_total + load[pos]))
        i_occ = np.minimum(icu_total, np.round(0.5 * icu_total + sev[pos]))
        staff_abs = rng.poisson(cap * 0.8 * (0.01 + 2.0 * m.inf_all[t][m.site_region[pos]]))
        sig = np.stack([fever_total, f_occ, icu_total, i_occ, staff_abs], axis=-1)
        m.grid(d, "hospital_status", "site", pos, tm, np.repeat(sig[None], len(tm), 0), [0.0, 0.05, 0.0, 0.05, 0.0],
               integer=[True] * 5)
    if m.wants("population_status"):
        sig = np.stack([m.pop * (0.88 + 0.1 * m.share[t]), m.pop * 0.15 * (0.3 + 0.7 * m.share[t]),
                        m.q_stock_home[t], res.workers_home[t], res.workers_at[t]], axis=-1)
        m.grid(d, "population_status", "region", np.arange(m.R), SNAPSHOT_TIMES["population_status"], sig[None],
               [0.0, 0.02, 0.0, 0.02, 0.02], integer=[True] * 5)


GENERATORS = [
    ("hotline_tickets", gen_hotline),
    ("police_incidents+fraud_losses", gen_police_fraud),
    ("fire_alarms+traffic_accidents+gas_alarms+construction_events+grid_patrol+lift_faults", gen_safety),
    ("utility_outages+market_inspections+community_events", gen_utilities_events),
    ("fever_clinic_visits+epidemic_reports+confirmed_by_age+arrivals+quarantine_events", gen_epidemic_events),
    ("road_traffic+water_network+power_grid+gas_network+drainage+air_quality+noise", gen_network_readings),
    ("crowd_counts+crowd_alerts+site_monitors", gen_crowds),
    ("consumer_spending+staple_prices+protective_prices", gen_commerce),
    ("enterprise_status+shop_status+pharmacy_stock+market_supply+elderly_care_status+quarantine_hotels+"
     "gate_status+school_status+hospital_status+population_status", gen_snapshots),
]
"""``(feeds it makes, generator)`` in the order they run; every feed of feeds.toml is covered."""
