"""Injected incidents with ground truth, so that detection can be measured, not assumed.

An :class:`Incident` says what happened (``kind``), when (``start`` .. ``end``, timestamps), where
(``regions``, optionally one ``site``), how strongly (``magnitude``) and which catalog indicators
it should move (``indicators``: ids from ``indicators/*.toml``, kept as strings). The simulator
returns them as :class:`Truth`.

Epidemic effects now: ``venue_cluster`` seeds ``magnitude`` infections among the visitors of its
venue on its first day (in proportion to where they live); ``market_crowd`` multiplies demand at
its wet market(s) by ``magnitude`` while it lasts (more visitors, denser, more transmission).
The other kinds (water-main burst, staple price spike, power outage, fraud wave, mask shortage at
pharmacies) only carry ground truth for now; their feed effects come with the feed generators.

>>> inc = Incident("market_crowd", "2020-03-02 07:00", "2020-03-02 10:00", regions=["R001"],
...                indicators=["safety.public.crowd_density.max_1h"], magnitude=2.5)
>>> [str(d) for d in inc.days]
['2020-03-02', '2020-03-02']
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
    indicators : sequence of str
        Catalog indicator ids the incident should move (dotted lower-case ids).
    site : str, optional
        Site id (a venue for ``venue_cluster``; a wet market for ``market_crowd``; a pharmacy for
        ``mask_shortage``...). ``venue_cluster`` without a site uses the largest venue of its first
        region; ``market_crowd`` without a site applies to every wet market of its regions.
    magnitude : float
        Size: infections seeded (``venue_cluster``), demand factor (``market_crowd``), or a
        kind-specific scale for the feed generators.
    note : str
        Free text.
    """

    kind: str
    start: object
    end: object
    regions: tuple
    indicators: tuple
    site: str | None = None
    magnitude: float = 1.0
    note: str = ""

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
        inds = (self.indicators,) if isinstance(self.indicators, str) else tuple(self.indicators)
        if not inds:
            raise ValueError("an incident needs the indicator ids it should move (at least one)")
        for i in inds:
            if not isinstance(i, str) or not _ID.match(i):
                raise ValueError(f"indicator id {i!r}: expected a dotted lower-case id like "
                                 "'safety.epidemic.fever_clinic_visits.per10k_24h'")
        object.__setattr__(self, "indicators", inds)
        if not (np.isfinite(self.magnitude) and self.magnitude >= 0):
            raise ValueError(f"magnitude must be a number >= 0, got {self.magnitude!r}")

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


@dataclass
class Truth:
    """The incidents of a simulation, as resolved by it (``site`` filled in where it was chosen)."""

    incidents: list = field(default_factory=list)

    def __len__(self):
        return len(self.incidents)

    def __iter__(self):
        return iter(self.incidents)

    def to_frame(self) -> pd.DataFrame:
        """One row per incident: kind, start, end, regions, site, magnitude, indicators, note.

        >>> Truth().to_frame().columns.tolist()
        ['kind', 'start', 'end', 'regions', 'site', 'magnitude', 'indicators', 'note']
        """
        cols = ["kind", "start", "end", "regions", "site", "magnitude", "indicators", "note"]
        return pd.DataFrame([{c: getattr(i, c) for c in cols} for i in self.incidents], columns=cols)

    def active(self, when) -> list:
        """Incidents under way at timestamp ``when``."""
        t = pd.Timestamp(when)
        return [i for i in self.incidents if i.start <= t <= i.end]
