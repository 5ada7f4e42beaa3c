"""Scenarios and the simulation driver: :class:`Scenario`, :func:`simulate`, :class:`SimResult`.

>>> from engine.sim import MiniCity, Scenario, simulate
>>> city = MiniCity.uniform(n_regions=3, residents=20_000)
>>> sc = Scenario("2020-02-01", days=30, initial_infections=20, mode="mean_field")
>>> _ = sc.timeline.at("2020-02-10", sector_share=0.3, schools=False, venue_cap=0.5, masks=0.7)
>>> res = simulate(city, sc, seed=1)
>>> res.state.shape, res.compartments
((30, 3, 16, 6), ('S', 'E', 'P', 'C', 'A', 'R'))
>>> bool(np.allclose(res.state.sum(axis=(2, 3)), city.age.sum(axis=1)))
True
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from engine.sim.contacts import AGE_BANDS, ContactMatrices
from engine.sim.imports import import_flows
from engine.sim.incidents import Incident, Truth
from engine.sim.mobility import CityArrays, compile_city, daily_mobility
from engine.sim.params import COMPARTMENTS, EpiParams, MobilityParams
from engine.sim.policy import SECTORS, VENUE_KINDS, Timeline, to_day
from engine.sim.seir import calibrate_beta, epidemic_day, seed_rng

MODES = ("stochastic", "mean_field")


@dataclass
class Scenario:
    """What to simulate: period, natural history, mobility, policy timeline, seeding, incidents.

    Parameters
    ----------
    start : date-like
        First day.
    days : int
        Number of days simulated.
    params : EpiParams
    mobility : MobilityParams
    contacts : ContactMatrices, optional
        Location matrices; the China matrices by default.
    initial_infections : int or dict
        People infected on day 0: a total spread over neighbourhoods by population, or
        ``{region_id: count}``. Age bands follow the neighbourhood's residents.
    initial_compartment : {"E", "P", "C", "A"}
    mode : {"stochastic", "mean_field"}
    substeps : int
        Sub-steps per day (``dt = 1 / substeps``).
    incidents : list of Incident
    name : str

    Attributes
    ----------
    timeline : Timeline
        The policy levers over ``start .. start + days - 1``; use ``.at`` and ``.stages``.
    """

    start: object
    days: int
    params: EpiParams = field(default_factory=EpiParams)
    mobility: MobilityParams = field(default_factory=MobilityParams)
    contacts: ContactMatrices | None = None
    initial_infections: object = 20
    initial_compartment: str = "E"
    mode: str = "stochastic"
    substeps: int = 4
    incidents: list = field(default_factory=list)
    name: str = "scenario"
    timeline: Timeline | None = None

    def __post_init__(self):
        self.start = to_day(self.start)
        if isinstance(self.days, bool) or not isinstance(self.days, (int, np.integer)) or self.days < 1:
            raise ValueError(f"days={self.days!r}: expected a whole number of days >= 1")
        if self.mode not in MODES:
            raise ValueError(f"mode={self.mode!r}: expected one of {', '.join(MODES)}")
        if isinstance(self.substeps, bool) or not isinstance(self.substeps, (int, np.integer)) or self.substeps < 1:
            raise ValueError(f"substeps={self.substeps!r}: expected a whole number >= 1")
        if self.initial_compartment not in ("E", "P", "C", "A"):
            raise ValueError(f"initial_compartment={self.initial_compartment!r}: expected E, P, C or A")
        if self.initial_compartment == "P" and self.params.presymptomatic_days == 0:
            raise ValueError("initial_compartment='P' but presymptomatic_days is 0 (no P state)")
        ii = self.initial_infections
        if isinstance(ii, dict):
            if any((not np.isfinite(v)) or v < 0 for v in ii.values()):
                raise ValueError(f"initial_infections values must be >= 0, got {ii}")
        elif isinstance(ii, bool) or not isinstance(ii, (int, float, np.integer, np.floating)) or ii < 0:
            raise ValueError(f"initial_infections={ii!r}: expected a count >= 0 or a {{region: count}} dict")
        end = self.start + np.timedelta64(int(self.days) - 1, "D")
        if self.timeline is None:
            self.timeline = Timeline(self.start, end)
        elif self.timeline.start != self.start or self.timeline.end != end:
            raise ValueError(f"timeline covers {self.timeline.start}..{self.timeline.end}, "
                             f"expected the scenario period {self.start}..{end}")
        self.incidents = list(self.incidents)
        for inc in self.incidents:
            self._check_incident(inc)

    @property
    def end(self) -> np.datetime64:
        return self.timeline.end

    def _check_incident(self, inc):
        if not isinstance(inc, Incident):
            raise ValueError(f"incidents must be Incident objects, got {type(inc).__name__}")
        d0, d1 = inc.days
        if d0 < self.start or d1 > self.end:
            raise ValueError(f"incident {inc.kind} {d0}..{d1} is outside the scenario period {self.start}..{self.end}")

    def head(self, days: int) -> "Scenario":
        """A copy over the first ``days`` days (later lever changes and incidents dropped).

        >>> Scenario("2020-02-01", 30).head(7).days
        7
        """
        import copy

        if isinstance(days, bool) or not isinstance(days, (int, np.integer)) or days < 1:
            raise ValueError(f"days={days!r}: expected a whole number of days >= 1")
        if days >= self.days:
            return copy.deepcopy(self)
        end = self.start + np.timedelta64(int(days) - 1, "D")
        sc = copy.deepcopy(self)
        sc.days, sc.timeline = int(days), self.timeline.head(end)
        sc.incidents = [i for i in sc.incidents if i.days[1] <= end]
        return sc

    def at(self, date, **levers) -> "Scenario":
        """Shortcut for ``self.timeline.at``; returns the scenario."""
        self.timeline.at(date, **levers)
        return self

    def stages(self, stages) -> "Scenario":
        """Shortcut for ``self.timeline.stages``; returns the scenario."""
        self.timeline.stages(stages)
        return self

    def incident(self, kind, start, end, regions, indicators=(), **kw) -> "Scenario":
        """Add an :class:`Incident` (checked against the period); returns the scenario.

        ``indicators`` defaults to the kind's catalog ids (:data:`engine.sim.incidents.DEFAULT_INDICATORS`).
        """
        inc = Incident(kind, start, end, regions, indicators, **kw)
        self._check_incident(inc)
        self.incidents.append(inc)
        return self


@dataclass
class SimResult:
    """Daily output of :func:`simulate`.

    Arrays have a leading day axis ``T``; ``R`` regions, ``V`` venues, 16 age bands.

    Attributes
    ----------
    dates : (T,) datetime64[D]
    state : (T, R, 16, 6) compartments at the end of each day (:attr:`compartments`)
    initial : (R, 16, 6) state at the start of day 0
    new_infections, new_onsets, new_detected : (T, R, 16) daily flows (S->E; clinical symptom
        onsets; onsets tested and found)
    imported : (T, R) infections seeded by arrivals breaching testing/quarantine
    arrivals, key_arrivals : (T, R) arrivals and arrivals from key areas by home neighbourhood
    workers_home, workers_at : (T, R) active commuters by home and by work neighbourhood
    venue_visitors, venue_occupancy : (T, V) visitors per day and peak occupancy (share of capacity)
    venue_admitted : (T, V) share of the demand admitted under the occupancy cap (1 = no queue)
    cluster_cases : (T, R, 16) the ``venue_cluster`` incidents' cases presenting each day (seeded as
        clinical, C, at the start of the day and counted in ``new_onsets``; see :func:`cluster_share`)
    sector_share : (T, 20) reopened share of each sector
    levers : DataFrame, one row per day, every lever
    truth : Truth, the injected incidents
    city, arrays : the city simulated and its compiled arrays (the feed generators read them)
    """

    scenario: str
    mode: str
    seed: int
    beta: float
    dates: np.ndarray
    region_ids: pd.Index
    venue_ids: pd.Index
    venue_kind: np.ndarray
    state: np.ndarray
    initial: np.ndarray
    new_infections: np.ndarray
    new_onsets: np.ndarray
    new_detected: np.ndarray
    imported: np.ndarray
    arrivals: np.ndarray
    key_arrivals: np.ndarray
    workers_home: np.ndarray
    workers_at: np.ndarray
    venue_visitors: np.ndarray
    venue_occupancy: np.ndarray
    sector_share: np.ndarray
    levers: pd.DataFrame
    truth: Truth
    compartments: tuple = COMPARTMENTS
    age_bands: tuple = AGE_BANDS
    venue_admitted: np.ndarray | None = field(default=None, repr=False)
    cluster_cases: np.ndarray | None = field(default=None, repr=False)
    city: object = field(default=None, repr=False)
    arrays: CityArrays | None = field(default=None, repr=False)

    def totals(self) -> pd.DataFrame:
        """City totals per day: one column per compartment plus the daily flows.

        ``infectious`` is P + C + A; ``cumulative_infections`` counts day-0 seeds too.
        """
        comp = self.state.sum(axis=(1, 2))
        df = pd.DataFrame(comp, columns=list(self.compartments), index=pd.DatetimeIndex(self.dates, name="date"))
        df["infectious"] = df["P"] + df["C"] + df["A"]
        df["new_infections"] = self.new_infections.sum(axis=(1, 2))
        df["new_onsets"] = self.new_onsets.sum(axis=(1, 2))
        df["new_detected"] = self.new_detected.sum(axis=(1, 2))
        df["imported"] = self.imported.sum(axis=1)
        df["cumulative_infections"] = self.initial[..., 0].sum() - df["S"]
        return df

    def to_xarray(self):
        """Everything as an ``xarray.Dataset`` with labelled dims (date, region, age, compartment, venue)."""
        import xarray as xr

        coords = {"date": pd.DatetimeIndex(self.dates), "region": np.asarray(self.region_ids),
                  "age": list(self.age_bands), "compartment": list(self.compartments),
                  "venue": np.asarray(self.venue_ids), "sector": list(SECTORS)}
        dra = ("date", "region", "age")
        ds = xr.Dataset(
            {"state": (("date", "region", "age", "compartment"), self.state),
             "new_infections": (dra, self.new_infections), "new_onsets": (dra, self.new_onsets),
             "new_detected": (dra, self.new_detected), "imported": (("date", "region"), self.imported),
             "arrivals": (("date", "region"), self.arrivals), "key_arrivals": (("date", "region"), self.key_arrivals),
             "workers_home": (("date", "region"), self.workers_home),
             "workers_at": (("date", "region"), self.workers_at),
             "venue_visitors": (("date", "venue"), self.venue_visitors),
             "venue_occupancy": (("date", "venue"), self.venue_occupancy),
             "sector_share": (("date", "sector"), self.sector_share)},
            coords=coords, attrs={"scenario": self.scenario, "mode": self.mode, "seed": self.seed, "beta": self.beta})
        ds["venue_kind"] = ("venue", np.array(VENUE_KINDS)[self.venue_kind] if len(self.venue_kind) else
                            np.array([], dtype=str))
        return ds

    def feeds_by_day(self, *, cycle_minutes: int = 15, feeds=None, generators=None, threads=None):
        """Yield the feeds of each day as a :class:`engine.sim.feeds.SimDay` (memory bounded);
        see :func:`engine.sim.feeds.iter_days` for the options."""
        from engine.sim.feeds import iter_days

        return iter_days(self, cycle_minutes=cycle_minutes, feeds=feeds, generators=generators, threads=threads)

    def feeds(self, *, cycle_minutes: int = 15, feeds=None, generators=None):
        """All days' feeds in one :class:`engine.sim.feeds.SimDay` (for small runs); its
        ``to_feeds()`` gives an :class:`engine.feeds.Feeds`."""
        from engine.sim.feeds import concat_days

        return concat_days(self.feeds_by_day(cycle_minutes=cycle_minutes, feeds=feeds, generators=generators))

    def curves(self) -> pd.DataFrame:
        """Daily city curves (:meth:`totals`) plus the levers, one row per day (``epidemic.parquet``)."""
        return self.totals().join(self.levers)


def _spread(total: float, weights: np.ndarray, rng) -> np.ndarray:
    w = weights.ravel()
    if w.sum() <= 0 or total <= 0:
        return np.zeros_like(weights)
    if rng is None:
        return (total * w / w.sum()).reshape(weights.shape)
    return rng.multinomial(int(round(total)), w / w.sum()).reshape(weights.shape).astype(np.float64)


def _initial_state(arr: CityArrays, sc: Scenario, rng) -> np.ndarray:
    n = arr.n
    state = np.zeros(n.shape + (6,))
    state[..., 0] = n
    ii = sc.initial_infections
    seeds = np.zeros_like(n)
    if isinstance(ii, dict):
        pos = arr.region_pos(ii.keys())
        for p, v in zip(pos, ii.values()):
            seeds[p] += _spread(v, n[p], rng)
    else:
        seeds = _spread(ii, n, rng)
    seeds = np.minimum(seeds, n)
    comp = COMPARTMENTS.index(sc.initial_compartment)
    state[..., 0] -= seeds
    state[..., comp] += seeds
    return state


def _venue_demand(arr: CityArrays, sc: Scenario) -> tuple[np.ndarray, list]:
    """Per-day per-venue crowd factors, and the incidents with chosen sites filled in."""
    T = sc.days
    demand = np.ones((T, arr.n_venues))
    resolved = []
    for inc in sc.incidents:
        pos = arr.region_pos(inc.regions)
        d0 = int((inc.days[0] - sc.start).astype(int))
        d1 = int((inc.days[1] - sc.start).astype(int))
        if inc.kind == "venue_cluster":
            if inc.site is None:
                cand = np.flatnonzero(np.isin(arr.venue_region, pos[:1]))
                if cand.size == 0:
                    raise ValueError(f"venue_cluster in {inc.regions[0]}: that region has no venue; name a site")
                site = arr.venue_ids[cand[np.argmax(arr.venue_capacity[cand])]]
                inc = Incident(**{**inc.__dict__, "site": str(site)})
            elif arr.venue_ids.get_indexer([inc.site])[0] < 0:
                raise ValueError(f"venue_cluster site {inc.site!r} is not a venue ({', '.join(VENUE_KINDS)})")
        elif inc.kind == "market_crowd":
            if inc.site is not None:
                v = arr.venue_ids.get_indexer([inc.site])
                if v[0] < 0:
                    raise ValueError(f"market_crowd site {inc.site!r} is not a venue")
            else:
                v = np.flatnonzero(np.isin(arr.venue_region, pos) & (arr.venue_kind == VENUE_KINDS.index("wet_market")))
            demand[d0:d1 + 1, v] *= inc.magnitude
        resolved.append(inc)
    return demand, resolved


def cluster_share(inc: Incident, edges_ns) -> np.ndarray:
    """Share of a ``venue_cluster``'s cases presenting between consecutive ``edges_ns`` (ns since
    the epoch, increasing): a triangular epidemic curve over the incident's window, rising from its
    start to a peak half-way and falling to zero at its end (a point-source cluster: the cases
    caught at the venue fall ill over a few days, most of them in the middle); an instant incident
    presents all at once. The shares of edges spanning the window sum to 1.

    >>> inc = Incident("venue_cluster", "2020-03-01", "2020-03-03", regions=["R1"])
    >>> edges = np.arange("2020-03-01", "2020-03-05", dtype="datetime64[D]").astype("datetime64[ns]").astype(np.int64)
    >>> cluster_share(inc, edges).round(3).tolist()
    [0.5, 0.5, 0.0]
    """
    t = np.asarray(edges_ns, dtype=np.int64)
    a, b = inc.start.value, inc.end.value
    if b <= a:
        cdf = (t > a).astype(np.float64)
    else:
        u = np.clip((t - a) / float(b - a), 0.0, 1.0)
        cdf = np.where(u <= 0.5, 2.0 * u * u, 1.0 - 2.0 * (1.0 - u) ** 2)
    return np.diff(cdf)


def _cluster_cases(arr: CityArrays, sc: Scenario, incidents, rng) -> np.ndarray:
    """(T, R, 16) the ``venue_cluster`` cases presenting each day: ``magnitude`` cases over the
    window (:func:`cluster_share` by day), in the incident's regions in proportion to their residents
    by age; drawn as one multinomial of ``round(magnitude)`` in the stochastic mode."""
    T, (R, A) = sc.days, arr.n.shape
    out = np.zeros((T, R, A))
    edges = (np.datetime64(sc.start, "ns") + np.arange(T + 1) * np.timedelta64(1, "D")).astype(np.int64)
    for inc in incidents:
        if inc.kind != "venue_cluster":
            continue
        pos = arr.region_pos(inc.regions)
        w = cluster_share(inc, edges)[:, None, None] * arr.n[pos][None, :, :]
        cells = np.zeros((T, len(pos), A))
        if w.sum() > 0 and inc.magnitude > 0:
            if rng is None:
                cells = inc.magnitude * w / w.sum()
            else:
                cells = rng.multinomial(int(round(inc.magnitude)), (w / w.sum()).ravel()).reshape(w.shape)
        np.add.at(out, (slice(None), pos), cells.astype(np.float64))
    return out


def simulate(city, scenario: Scenario, seed: int = 0, *, mode: str | None = None,
             arrays: CityArrays | None = None, kernel=None) -> SimResult:
    """Run one scenario on a city; returns the daily :class:`SimResult`.

    Parameters
    ----------
    city : engine.City or MiniCity
        Anything with the City interface (see :mod:`engine.sim.minicity`).
    scenario : Scenario
    seed : int
        Seeds the stochastic transitions, imports and seeding (ignored by nothing: the mean-field
        mode is deterministic whatever the seed).
    mode : {"stochastic", "mean_field"}, optional
        Overrides ``scenario.mode``.
    arrays : CityArrays, optional
        ``compile_city(city, scenario.mobility)`` computed beforehand (ensembles, benchmarks).
    kernel : callable, optional
        Another implementation of :func:`engine.sim.seir.epidemic_day` with the same signature
        (the plain-numpy reference, for tests and benchmarks).

    Examples
    --------
    >>> from engine.sim import MiniCity, Scenario
    >>> res = simulate(MiniCity.uniform(1, 50_000), Scenario("2020-01-01", 60, initial_infections=50), seed=3)
    >>> int(res.totals()["cumulative_infections"].iloc[-1]) > 50
    True
    """
    mode = mode or scenario.mode
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}: expected one of {', '.join(MODES)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed={seed!r}: expected an integer >= 0")
    stochastic = mode == "stochastic"
    sc = scenario
    arr = arrays if arrays is not None else compile_city(city, sc.mobility)
    kernel = kernel or epidemic_day
    lev = sc.timeline.daily()
    cm = sc.contacts or ContactMatrices.china()
    if cm.n_age != arr.n.shape[1]:
        raise ValueError(f"contact matrices have {cm.n_age} age bands, the city {arr.n.shape[1]}")
    pr = sc.params
    dt = 1.0 / sc.substeps
    beta = calibrate_beta(pr, cm.total(), dt)
    p_e, p_p, p_i = pr.step_probabilities(dt)
    has_pre = pr.presymptomatic_days > 0
    clinical = np.asarray(pr.clinical_fraction, dtype=np.float64)
    rng = np.random.default_rng(seed) if stochastic else None
    if stochastic:
        seed_rng(int(seed))

    state = _initial_state(arr, sc, rng)
    initial = state.copy()
    arrivals, key_arrivals, breaches = import_flows(lev, arr.n, rng)
    demand, resolved = _venue_demand(arr, sc)
    cluster_plan = _cluster_cases(arr, sc, resolved, rng)

    T, (R, A), V = sc.days, arr.n.shape, arr.n_venues
    out_state = np.empty((T, R, A, 6))
    flows = [np.empty((T, R, A)) for _ in range(3)]
    imported = np.zeros((T, R))
    workers_home, workers_at = np.empty((T, R)), np.empty((T, R))
    visitors, occupancy, admitted = np.empty((T, V)), np.empty((T, V)), np.empty((T, V))
    day_flows = [np.zeros((R, A)) for _ in range(3)]
    cluster = np.zeros((T, R, A))
    cloc = np.ascontiguousarray(cm.by_location)
    mob, mob_key = None, None
    for t in range(T):
        key = (lev.sector_share[t], lev.other[t], lev.venue_cap[t], demand[t])
        if mob_key is None or not all(np.array_equal(a, b) for a, b in zip(key, mob_key)):
            mob, mob_key = daily_mobility(arr, *key), key        # levers change on few days: reuse
        moved = np.minimum(breaches[t], state[..., 0])
        state[..., 0] -= moved
        state[..., 1] += moved
        imported[t] = moved.sum(axis=1)
        # the venue cluster's cases presenting today: clinical (C) from the start of the day
        cl = np.minimum(cluster_plan[t], state[..., 0])
        state[..., 0] -= cl
        state[..., 3] += cl
        cluster[t] = cl
        kernel(state, arr.n, cloc, beta, pr.presymptomatic_infectiousness, pr.subclinical_infectiousness,
               lev.testing[t], lev.schools[t], lev.other[t], lev.masks[t], arr.venue_share,
               arr.work_indptr, arr.work_indices, mob.work_m, mob.work_e,
               arr.visit_indptr, arr.visit_indices, mob.visit_m, mob.visit_e, V,
               sc.substeps, p_e, p_p, p_i, has_pre, clinical, stochastic, *day_flows)
        out_state[t] = state
        for f, d in zip(flows, day_flows):
            f[t] = d
        if cl.any():     # they are today's symptom onsets too, tested like the others
            flows[1][t] += cl
            tau = float(lev.testing[t])
            flows[2][t] += rng.binomial(cl.astype(np.int64), tau).astype(np.float64) if stochastic else cl * tau
        workers_home[t], workers_at[t] = mob.workers_home, mob.workers_at
        visitors[t], occupancy[t], admitted[t] = mob.venue_visitors, mob.venue_occupancy, mob.venue_admitted
    return SimResult(
        scenario=sc.name, mode=mode, seed=int(seed), beta=float(beta), dates=lev.dates,
        region_ids=arr.region_ids, venue_ids=arr.venue_ids, venue_kind=arr.venue_kind,
        state=out_state, initial=initial, new_infections=flows[0], new_onsets=flows[1], new_detected=flows[2],
        imported=imported, arrivals=arrivals, key_arrivals=key_arrivals, workers_home=workers_home,
        workers_at=workers_at, venue_visitors=visitors, venue_occupancy=occupancy,
        sector_share=lev.sector_share.copy(), levers=lev.to_frame(), truth=Truth(resolved),
        venue_admitted=admitted, city=city, arrays=arr, cluster_cases=cluster)
