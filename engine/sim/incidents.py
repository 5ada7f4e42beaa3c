"""Injected incidents with ground truth, so that detection can be measured, not assumed.

An :class:`Incident` says what happened (``kind``), when (``start`` .. ``end``, timestamps), where
(``regions``, optionally one ``site``), how strongly (``magnitude``) and which catalog indicators
it should move (``indicators``: ids from ``indicators/*.toml``, kept as strings). The simulator
returns them as :class:`Truth`.

Epidemic effects: ``venue_cluster`` is ``magnitude`` cases linked to its venue presenting over its
window in its regions (clinical onsets on a triangular curve over the window, at the regions'
fever clinics; found, confirmed and traced like any case); ``market_crowd`` multiplies demand at its wet
market(s) by ``magnitude`` while it lasts (more visitors, denser, more transmission). Every kind
also moves feeds (:mod:`engine.sim.generators`); :data:`EFFECTS` lists the ``(feed, item)`` pairs
each kind moves and :data:`MAGNITUDE` what ``magnitude`` means for it. When ``indicators`` is not
given, the kind's :data:`DEFAULT_INDICATORS` (catalog ids) are used.

>>> inc = Incident("market_crowd", "2020-03-02 07:00", "2020-03-02 10:00", regions=["R001"],
...                indicators=["safety.public.crowd_density.max_1h"], magnitude=2.5)
>>> [str(d) for d in inc.days]
['2020-03-02', '2020-03-02']
>>> Incident("power_outage", "2020-03-02 07:00", "2020-03-02 10:00", regions=["R001"]).indicators[0]
'construction.lifelines.power_load.min_1h'
>>> Incident("alien_landing", "2020-03-02", "2020-03-03", regions=["R001"], indicators=["x.y"])
Traceback (most recent call last):
...
ValueError: unknown incident kind 'alien_landing': expected one of venue_cluster, water_main_burst, market_crowd, price_spike, power_outage, fraud_wave, mask_shortage
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

INCIDENT_KINDS = ("venue_cluster", "water_main_burst", "market_crowd", "price_spike", "power_outage",
                  "fraud_wave", "mask_shortage")
"""Kinds of injected incident."""

MAGNITUDE = {
    "venue_cluster": "cases linked to the venue presenting over the window in its regions (e.g. 30): clinical "
                     "onsets on a triangular curve over the window, all at the regions' fever clinics, fever "
                     "tickets 0.35 and suspected-case tickets 0.1 a case, found and confirmed like any case",
    "market_crowd": "demand factor at the wet market(s) (e.g. 2.5 = 2.5 times the usual crowd) over the "
                    "window: entries and occupancy up to the occupancy limit in force, the rest held at the gate "
                    "(queue); the market's crowding camera alerts (p 0.5 a cycle) while the people who came "
                    "exceed half the capacity or the lower limit in force (a lockdown's 30 %)",
    "water_main_burst": "severity, 1 = a typical burst: pressure -60 %, flow +80 %, turbidity +15 NTU, "
                        "chlorine -50 %; 1 + Poisson(0.5) pipe_burst and Poisson(4) water_outage interruption "
                        "events, Poisson(25) water_outage tickets per region",
    "price_spike": "severity, 1 = prices of the items +40 % (and market supply -30 %, price tickets x6)",
    "power_outage": "severity, 1 = load -97 % and voltage to 0 at the region's transformers; "
                    "1 + Poisson(3) power_outage events and Poisson(30) tickets per region",
    "fraud_wave": "telecom-fraud cases reported per region over the window (e.g. 20: a scam worked through "
                  "one neighbourhood's phone lists or group chats), each a police report and a filed loss, on "
                  "top of the background (~0.35 reports per 10,000 residents a day, one to three a week in a "
                  "neighbourhood)",
    "mask_shortage": "severity, 1 = pharmacy mask stock -90 %, mask prices +100 % (other protective supplies "
                     "+20 %), mask_shortage tickets x11, pharmacy queues +10 per site at peak",
}
"""What ``magnitude`` means for each kind (the effect sizes of the feed generators)."""

EFFECTS = {
    "venue_cluster": (("fever_clinic_visits", "adult"), ("epidemic_reports", "confirmed"),
                      ("hotline_tickets", "fever_symptoms"), ("epidemic_reports", "close_contact"),
                      ("epidemic_reports", "secondary_contact"), ("quarantine_events", "code_red"),
                      ("quarantine_events", "code_yellow")),
    "market_crowd": (("crowd_counts", "entries"), ("crowd_counts", "occupancy"), ("crowd_counts", "queue"),
                     ("crowd_alerts", "market_crowding"), ("police_incidents", "crowd_gathering")),
    "water_main_burst": (("utility_outages", "pipe_burst"), ("utility_outages", "water_outage"),
                         ("water_network", "pressure"), ("water_network", "turbidity"),
                         ("hotline_tickets", "water_outage")),
    "price_spike": (("staple_prices", "*"), ("market_supply", "vegetables"), ("hotline_tickets", "price_gouging")),
    "power_outage": (("power_grid", "load"), ("power_grid", "voltage"), ("utility_outages", "power_outage"),
                     ("hotline_tickets", "power_outage")),
    "fraud_wave": (("police_incidents", "telecom_fraud"), ("fraud_losses", "telecom")),
    "mask_shortage": (("pharmacy_stock", "surgical_mask"), ("pharmacy_stock", "n95_mask"),
                      ("protective_prices", "surgical_mask"), ("protective_prices", "n95_mask"),
                      ("protective_prices", "kn95_mask"), ("protective_prices", "hand_sanitizer"),
                      ("protective_prices", "disinfectant"), ("protective_prices", "alcohol"),
                      ("protective_prices", "thermometer"), ("protective_prices", "antipyretic"),
                      ("hotline_tickets", "mask_shortage"),
                      ("crowd_counts", "queue"), ("crowd_alerts", "pharmacy_queue")),
}
"""``(feed, item)`` pairs each kind moves in its regions during its window (``*``: its ``items``)."""

DEFAULT_INDICATORS = {
    "venue_cluster": ("safety.epidemic.fever_clinic_visits.per10k_24h", "safety.epidemic.confirmed.count_24h",
                      "livelihood.citizen_demands.tickets_fever_symptoms.count_24h",
                      # its cases as the fever clinics count them (adults, sampled)
                      "safety.epidemic.fever_adult.count_24h", "safety.epidemic.fever_sampled.count_24h",
                      # its confirmed cases' traced contacts
                      "safety.epidemic.close_contact.count_24h", "safety.epidemic.secondary_contact.count_24h",
                      # the health codes its confirmed cases (red) and their close contacts (yellow) are given
                      "safety.epidemic.quarantine_code_red.count_24h", "safety.epidemic.quarantine_code_yellow.count_24h"),
    "market_crowd": ("market.commerce.occupancy_wet_market.max_1h", "market.commerce.entries_wet_market.sum_1h",
                     "safety.public_safety.video_market_crowding.count_1h",
                     "market.commerce.queue_wet_market.max_1h", "safety.public_safety.police_crowd_gathering.count_1h"),
    "water_main_burst": ("construction.lifelines.outage_pipe_burst.count_1h",
                         "construction.lifelines.outage_water_outage.count_1h",
                         "construction.lifelines.water_pressure.min_1h",
                         "construction.lifelines.water_turbidity.mean_1h",
                         "livelihood.citizen_demands.tickets_water_outage.count_1h"),
    # price_spike: the price of each item it raises (of its ``items`` when it names some)
    "price_spike": ("market.supervision.price_pork.mean_24h", "market.supervision.price_bok_choy.mean_24h",
                    "market.supervision.price_cabbage.mean_24h", "market.supervision.price_tomato.mean_24h",
                    "market.supervision.price_cucumber.mean_24h"),
    "power_outage": ("construction.lifelines.power_load.min_1h", "construction.lifelines.power_voltage.min_1h",
                     "construction.lifelines.outage_power_outage.count_1h",
                     "livelihood.citizen_demands.tickets_power_outage.count_1h"),
    # the wave's cases are police reports (their category, its fraud group, all incidents) and filed losses
    "fraud_wave": ("safety.public_order.police_telecom_fraud.count_24h", "safety.public_order.fraud_telecom.loss_24h",
                   "safety.public_order.police_fraud.count_24h", "safety.public_order.police_all.count_24h",
                   "safety.public_order.fraud_all.loss_24h"),
    "mask_shortage": ("livelihood.essential_supplies.stock_surgical_mask.min_now",
                      "market.supervision.price_surgical_mask.mean_24h",
                      "livelihood.citizen_demands.tickets_mask_shortage.count_24h",
                      "livelihood.essential_supplies.pharmacy_queue.max_1h",
                      # what else the generators move: the other masks' stock and prices, the other
                      # protective supplies' prices (+20 %), the pharmacies' queue camera alerts
                      "livelihood.essential_supplies.stock_n95_mask.min_now",
                      "market.supervision.price_n95_mask.mean_24h", "market.supervision.price_kn95_mask.mean_24h",
                      "market.supervision.price_hand_sanitizer.mean_24h",
                      "market.supervision.price_disinfectant.mean_24h", "market.supervision.price_alcohol.mean_24h",
                      "market.supervision.price_thermometer.mean_24h",
                      "market.supervision.price_antipyretic.mean_24h",
                      "safety.public_safety.video_pharmacy_queue.count_1h"),
}
"""Catalog indicator ids each kind should move (used when an incident names none)."""

PRICE_SPIKE_ITEMS = ("pork", "bok_choy", "cabbage", "tomato", "cucumber")
"""Staple items a ``price_spike`` raises when it names no ``items``."""

_ID = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)+$")


@dataclass(frozen=True)
class Incident:
    """One injected incident (see module docstring).

    Parameters
    ----------
    kind : str
        One of :data:`INCIDENT_KINDS`.
    start, end : timestamp-like
        Start and end (``end >= start``; a date means its midnight).
    regions : sequence of region ids
        Neighbourhoods affected (at least one).
    indicators : sequence of str, optional
        Catalog indicator ids the incident should move (dotted lower-case ids); default
        :data:`DEFAULT_INDICATORS` of the kind.
    site : str, optional
        Site id (a venue for ``venue_cluster``; a wet market for ``market_crowd``; a pharmacy for
        ``mask_shortage``...). ``venue_cluster`` without a site uses the largest venue of its first
        region; ``market_crowd`` without a site applies to every wet market of its regions.
    magnitude : float
        Size: see :data:`MAGNITUDE` (infections seeded for ``venue_cluster``, a demand factor for
        ``market_crowd``, a severity with 1 = typical for the others).
    note : str
        Free text.
    items : sequence of str
        ``price_spike`` only: staple_prices metrics raised (default :data:`PRICE_SPIKE_ITEMS`).
    """

    kind: str
    start: object
    end: object
    regions: tuple
    indicators: tuple = ()
    site: str | None = None
    magnitude: float = 1.0
    note: str = ""
    items: tuple = ()

    def __post_init__(self):
        if self.kind not in INCIDENT_KINDS:
            raise ValueError(f"unknown incident kind {self.kind!r}: expected one of {', '.join(INCIDENT_KINDS)}")
        try:
            start, end = pd.Timestamp(self.start), pd.Timestamp(self.end)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"incident start/end must be timestamps, got {self.start!r}, {self.end!r}") from exc
        if end < start:
            raise ValueError(f"incident ends {end} before it starts {start}")
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)
        regions = (self.regions,) if isinstance(self.regions, str) else tuple(self.regions)
        if not regions:
            raise ValueError("an incident needs at least one region")
        object.__setattr__(self, "regions", regions)
        inds = (self.indicators,) if isinstance(self.indicators, str) else tuple(self.indicators or ())
        items = (self.items,) if isinstance(self.items, str) else tuple(self.items or ())
        if not inds and self.kind == "price_spike" and items:
            inds = tuple(f"market.supervision.price_{i}.mean_24h" for i in items)
        if not inds:
            inds = DEFAULT_INDICATORS[self.kind]
        for i in inds:
            if not isinstance(i, str) or not _ID.match(i):
                raise ValueError(f"indicator id {i!r}: expected a dotted lower-case id like "
                                 "'safety.epidemic.fever_clinic_visits.per10k_24h'")
        object.__setattr__(self, "indicators", inds)
        if not (np.isfinite(self.magnitude) and self.magnitude >= 0):
            raise ValueError(f"magnitude must be a number >= 0, got {self.magnitude!r}")
        if items and self.kind != "price_spike":
            raise ValueError(f"items apply to price_spike incidents only, not {self.kind}")
        if self.kind == "price_spike" and not items:
            items = PRICE_SPIKE_ITEMS
        object.__setattr__(self, "items", items)

    @property
    def effects(self) -> tuple:
        """``(feed, item)`` pairs this incident moves (:data:`EFFECTS`, with ``items`` expanded)."""
        out = []
        for feed, item in EFFECTS[self.kind]:
            out += [(feed, i) for i in self.items] if item == "*" else [(feed, item)]
        return tuple(out)

    def to_dict(self) -> dict:
        """JSON-ready dict (timestamps as ISO text).

        >>> Incident("fraud_wave", "2020-03-02", "2020-03-04", regions=["R001"]).to_dict()["end"]
        '2020-03-04T00:00:00'
        """
        return {"kind": self.kind, "start": self.start.isoformat(), "end": self.end.isoformat(),
                "regions": list(self.regions), "site": self.site, "magnitude": float(self.magnitude),
                "indicators": list(self.indicators), "effects": [list(e) for e in self.effects],
                "items": list(self.items), "note": self.note}

    @property
    def days(self) -> tuple[np.datetime64, np.datetime64]:
        """First and last calendar day touched."""
        return (np.datetime64(self.start.date(), "D"), np.datetime64(self.end.date(), "D"))

    def check_indicators(self, known) -> None:
        """``ValueError`` if an indicator id is not in ``known`` (e.g. the compiled catalog's ids)."""
        known = set(known)
        bad = [i for i in self.indicators if i not in known]
        if bad:
            raise ValueError(f"incident {self.kind} names indicator(s) not in the catalog: {bad}")


ROUTINE_FEEDS = {
    "utility_outages": "construction.lifelines.outage_{item}.count_1h",
    "gas_alarms": "safety.public_safety.gas_{item}.count_1h",
}
"""Event feeds whose *background* events (the city's own outages, gas alarms; not an injected
incident's) are recorded in :attr:`Truth.routine`, with the catalog indicator that counts each
category: the catalog rules ``count_1h >= 1`` alert on a single event of these feeds, so an alert
explained by one is a true alert, not a false one (:mod:`engine.scenario.quality`)."""

ROUTINE_SPAN = pd.Timedelta("2h")
"""How long a routine event explains an alert after its report: the ``count_1h`` window (1 h)
plus the alert manager's pending cycles and a margin."""


@dataclass
class Truth:
    """The incidents of a simulation, as resolved by it (``site`` filled in where it was chosen).

    ``routine`` collects the background events of :data:`ROUTINE_FEEDS` as the feed generators
    draw them (``{(day, feed): records}``, so a day generated twice is recorded once); see
    :meth:`routine_events`.
    """

    incidents: list = field(default_factory=list)
    routine: dict = field(default_factory=dict)

    def record_routine(self, day: int, feed: str, items, regions, times_ns) -> None:
        """Record one day's background events of ``feed`` (category names, region ids, event times
        in ns since the epoch)."""
        tmpl = ROUTINE_FEEDS[feed]
        self.routine[(int(day), feed)] = [
            (pd.Timestamp(int(t)), str(r), str(i), tmpl.format(item=i)) for i, r, t in zip(items, regions, times_ns)]

    def routine_events(self) -> list:
        """The recorded background events as truth records, sorted by time: ``kind`` "routine",
        ``feed``, ``item``, ``start`` (the report), ``end`` (``start +`` :data:`ROUTINE_SPAN`),
        ``regions``, ``indicators``.

        >>> tr = Truth()
        >>> tr.record_routine(0, "gas_alarms", ["leak"], ["N0008"], [pd.Timestamp("2020-02-24 10:05").value])
        >>> ev = tr.routine_events()[0]
        >>> ev["kind"], ev["end"], ev["indicators"]
        ('routine', '2020-02-24T12:05:00', ['safety.public_safety.gas_leak.count_1h'])
        """
        rows = sorted(r + (feed,) for (_, feed), recs in self.routine.items() for r in recs)
        return [{"kind": "routine", "feed": feed, "item": item, "start": t.isoformat(),
                 "end": (t + ROUTINE_SPAN).isoformat(), "regions": [reg], "indicators": [ind]}
                for t, reg, item, ind, feed in rows]

    def __len__(self):
        return len(self.incidents)

    def __iter__(self):
        return iter(self.incidents)

    def to_frame(self) -> pd.DataFrame:
        """One row per incident: kind, start, end, regions, site, magnitude, indicators, note, effects.

        >>> Truth().to_frame().columns.tolist()
        ['kind', 'start', 'end', 'regions', 'site', 'magnitude', 'indicators', 'note', 'effects']
        """
        cols = ["kind", "start", "end", "regions", "site", "magnitude", "indicators", "note", "effects"]
        return pd.DataFrame([{c: getattr(i, c) for c in cols} for i in self.incidents], columns=cols)

    def to_json(self) -> list:
        """The incidents as JSON-ready dicts (see :meth:`Incident.to_dict`)."""
        return [i.to_dict() for i in self.incidents]

    def check_indicators(self, known) -> None:
        """:meth:`Incident.check_indicators` for every incident."""
        for i in self.incidents:
            i.check_indicators(known)

    def active(self, when) -> list:
        """Incidents under way at timestamp ``when``."""
        t = pd.Timestamp(when)
        return [i for i in self.incidents if i.start <= t <= i.end]
