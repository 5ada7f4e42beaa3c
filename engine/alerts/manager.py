"""The alert manager: one call per cycle turns score arrays into alert transitions and notifications.

:class:`AlertManager` keeps the state of every (indicator, region) series of each level in numpy
arrays (:mod:`engine.alerts.state`), advances it with the compiled state machine
(:mod:`engine.alerts.lifecycle`), and only for the series that had an event builds Python
objects and history rows. Then it applies acknowledgements and silences (from the SQLite store,
where the CLI writes them), inhibition (a firing alert at a level in ``inhibit_by`` mutes the same
indicator's alerts in the regions it contains), routes alerts to their owner department, groups
them per (department, level, region, dimension), decides which groups to notify, escalates
unacknowledged critical alerts, and writes everything in one SQLite transaction; sinks deliver
from the outbox.

An *alert* is one episode of a series: it opens when the series turns pending, becomes firing,
and ends resolved (or is dropped when it never fired). While flap damping holds a series, an
alert that has fired stays firing (flagged ``flapping``) rather than resolving and re-firing.

>>> import numpy as np, tempfile, os
>>> from types import SimpleNamespace
>>> from engine.catalog import Catalog
>>> from engine.city import City
>>> full = Catalog.load()
>>> cat = SimpleNamespace(indicators=full.indicators[:4], departments=full.departments, dimensions=full.dimensions)
>>> city = City.synthetic(seed=1, neighbourhoods=6, streets=2, population=20_000)
>>> am = AlertManager(cat, city, store=os.path.join(tempfile.mkdtemp(), "a.sqlite"),
...                   config=AlertConfig(pending_cycles=2, alert_per="indicator"))
>>> score = np.full((4, 6), 0.5, np.float32); score[1, 2] = 0.995
>>> [len(am.process(t * 900, score).notifications) for t in range(3)]
[0, 1, 0]
>>> [(a["state"], a["severity"], a["region"]) for a in am.store.list_alerts()]
[('firing', 'warn', 'N0003')]
>>> am.close()
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import time as _time
from collections import defaultdict
from pathlib import Path

import numpy as np

from engine import levels as score_levels
from engine.alerts.config import AlertConfig, iso, to_epoch
from engine.alerts.fold import Fold
from engine.alerts.grouping import Group
from engine.alerts.lifecycle import hot_rows, step
from engine.alerts.notifications import escalation_summary, group_summary
from engine.alerts.regions import Hierarchy
from engine.alerts.routing import Router
from engine.alerts.silences import parse_expiry
from engine.alerts.sinks import Sink
from engine.alerts.state import (
    CRITICAL, EV_CANCELLED, EV_FIRED, EV_PENDING, EV_RESOLVED, FIRING, INACTIVE, PENDING, SEVERITY_NAMES, STATE_NAMES, SeriesState, event_names,
)
from engine.alerts.store import AlertStore

__all__ = ["AlertManager", "CycleResult"]

CHECKPOINT_VERSION = 1
TRANSITION_KEYS = ("t", "time", "level", "indicator", "region", "alert_id", "events", "state", "alert_state",
                   "severity", "value", "score", "detector")


def _num(x):
    x = float(x)
    return None if x != x else x


def _detector_name(code: int) -> str:
    return score_levels.DETECTORS.get(int(code), f"code{int(code)}")


def _none_nan(a: np.ndarray) -> list:
    return [None if x != x else x for x in a.tolist()]


_EVENT_TEXT = np.array([",".join(event_names(m)) for m in range(256)], dtype=object)
_STATE_TEXT = np.array([STATE_NAMES[k] for k in range(3)], dtype=object)
_SEV_TEXT = np.array([SEVERITY_NAMES[k] for k in range(3)], dtype=object)
_DETECTOR_TEXT = np.array([_detector_name(k) for k in range(256)], dtype=object)


class _Alert:
    """One alert that has fired (an episode of one series), kept while it is firing."""

    __slots__ = ("id", "level", "ind", "reg", "row", "state", "severity", "fired", "started_at", "fired_at", "resolved_at",
                 "critical_since", "flapping", "muted", "escalated_at", "value", "score", "detector", "ack",
                 "updated_at")

    def __init__(self, id, level, ind, reg, state="firing", severity=1, fired=True, started_at=None, fired_at=None,
                 resolved_at=None, critical_since=None, flapping=False, muted="", escalated_at=None, value=None,
                 score=None, detector=None, ack=None, updated_at=None, row=None):
        self.id, self.level, self.ind, self.reg, self.state = int(id), level, int(ind), int(reg), state
        self.row = int(ind) if row is None else int(row)   # the series row (subject row when folded)
        self.severity, self.fired, self.started_at, self.fired_at = severity, fired, started_at, fired_at
        self.resolved_at, self.critical_since, self.flapping, self.muted = resolved_at, critical_since, flapping, muted
        self.escalated_at, self.value, self.score, self.detector = escalated_at, value, score, detector
        self.ack, self.updated_at = ack, updated_at

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__}


class CycleResult(list):
    """What one cycle produced: a list of dicts, the transitions first, then the notifications.

    Each dict has ``type`` (``"transition"`` or ``"notification"``). :attr:`transitions` and
    :attr:`notifications` give the two parts.
    """

    def __init__(self, transitions: list[dict], notifications: list[dict]):
        super().__init__(transitions + notifications)
        self.transitions = transitions
        self.notifications = notifications


class AlertManager:
    """Alert lifecycle over score arrays, with grouping, inhibition, silences, acks, routing and sinks.

    Parameters
    ----------
    catalog : engine.catalog.Catalog or similar
        Indicators in score-row order (``indicators``) and ``departments``; see
        :class:`~engine.alerts.routing.Router`.
    city : engine.city.City
        Regions of each level (``city.levels``).
    store : str, Path or AlertStore
        The SQLite database (default ``"alerts.sqlite"``).
    sinks : list of Sink
        E.g. ``[JsonlSink("alerts.jsonl"), WebhookSink("http://...")]``.
    config : AlertConfig, optional
    checkpoint : str or Path, optional
        State saved by :meth:`save_state` to start from. Without one, the pending and firing
        alerts of the store are taken up again (their series restart at count 0).

    Examples
    --------
    See the module docstring; :meth:`process` for one level, :meth:`process_cycle` for all levels
    of a cycle at once (so that inhibition sees this cycle's district alerts).
    """

    def __init__(self, catalog, city, store="alerts.sqlite", sinks=(), config: AlertConfig | None = None,
                 checkpoint=None):
        self.config = config if config is not None else AlertConfig()
        if not isinstance(self.config, AlertConfig):
            raise TypeError(f"config must be an AlertConfig, got {type(self.config).__name__}")
        self.router = Router(catalog)
        self.hierarchy = Hierarchy(city)
        self.city = city
        for lvl in self.config.inhibit_by:
            if lvl not in self.hierarchy.levels:
                raise ValueError(f"inhibit_by names unknown level {lvl!r}; expected some of {self.hierarchy.levels}")
        self.store = store if isinstance(store, AlertStore) else AlertStore(store)
        self.sinks: list[Sink] = list(sinks)
        names = [s.name for s in self.sinks]
        if len(set(names)) != len(names):
            raise ValueError(f"sink names must be unique, got {names}")
        self.n_indicators = len(self.router)
        windows = ([i.get("window") for i in self.router.indicators]
                   if self.config.alert_windows == "shortest" else None)
        self.fold = Fold(self.router.ids, self.config.alert_per, windows)
        self.n_rows = self.fold.n_rows
        self.row_pending = self._row_pending()
        self.states: dict[str, SeriesState] = {}
        self.last_time: dict[str, int] = {}
        self.alerts: dict[int, _Alert] = {}
        self.recently_resolved: dict[int, _Alert] = {}
        self.groups: dict[tuple, Group] = {}
        self.next_id = self.store.max_alert_id() + 1
        self._ws: dict[str, dict] = {}
        self._in_batch = False
        self._current: dict[str, tuple] = {}
        self._ind_ids = np.array(self.router.ids, dtype=object)
        self._reg_ids = {lvl: np.array(self.hierarchy.ids(lvl), dtype=object) for lvl in self.hierarchy.levels}
        if checkpoint is not None:
            self.load_state(checkpoint)
        else:
            self._restore_from_store()
        for s in self.sinks:
            s.attach(self.store.path, self.config)
        self._drain_sync()
        for s in self.sinks:
            s.wake()

    def _row_pending(self) -> np.ndarray:
        """Pending cycles of each alert row: 1 where every indicator of the row comes from one of
        ``config.daily_feeds`` (a held daily value: nothing to confirm), else ``pending_cycles``."""
        daily = set(self.config.daily_feeds)
        out = np.full(self.n_rows, self.config.pending_cycles, np.int64)
        if not daily:
            return out
        feeds = [i.get("feed") for i in self.router.indicators]
        held = np.ones(self.n_rows, bool)
        np.logical_and.at(held, self.fold.row_of, np.array([f in daily for f in feeds], bool))
        out[held] = 1
        return out

    # ------------------------------------------------------------------ inputs
    @property
    def levels(self) -> list[str]:
        """The city's levels, finest first."""
        return self.hierarchy.levels

    def _state(self, level: str) -> SeriesState:
        if level not in self.states:
            self.states[level] = SeriesState.empty(self.n_rows, self.hierarchy.size(level))
        return self.states[level]

    def _inputs(self, level, score, detector, value):
        if level not in self.hierarchy.levels:
            raise ValueError(f"unknown level {level!r}; expected one of {self.hierarchy.levels}")
        shape = (self.n_indicators, self.hierarchy.size(level))
        out = []
        for name, arr, kind in (("score", score, "f"), ("detector", detector, "i"), ("value", value, "f")):
            if arr is None:
                if name == "score":
                    raise ValueError("score is required")
                arr = np.zeros(shape, np.int8) if kind == "i" else np.full(shape, np.nan, np.float32)
            a = np.asarray(arr)
            if a.shape != shape:
                raise ValueError(f"{name} at level {level!r} has shape {a.shape}, expected {shape} "
                                 f"(indicators x {level} regions)")
            if kind == "f" and not np.issubdtype(a.dtype, np.floating):
                raise ValueError(f"{name} must be a float array, got dtype {a.dtype}")
            if kind == "i" and not np.issubdtype(a.dtype, np.integer):
                raise ValueError(f"detector must be an integer array (codes of engine.levels.DETECTORS), got dtype {a.dtype}")
            out.append(np.ascontiguousarray(a).reshape(-1))
        return out

    # ------------------------------------------------------------------ the cycle
    def process(self, time, score, detector=None, value=None, level: str | None = None) -> CycleResult:
        """Process one level of one cycle.

        Parameters
        ----------
        time : int, datetime, numpy.datetime64 or str
            Cycle time; must be later than the last one processed at this level.
        score : array of float, shape (n_indicators, n_regions of the level)
            Scores 0..1 (NaN = no opinion), as in :mod:`engine.levels`.
        detector : array of int, same shape, optional
            Detector codes (:data:`engine.levels.DETECTORS`).
        value : array of float, same shape, optional
            Indicator values.
        level : str, optional
            ``"neighbourhood"`` (default: the city's finest level), ``"street"``, ``"district"``...

        Returns
        -------
        CycleResult
            Transitions (one dict per series with events) and notifications (payload dicts).
        """
        level = self.hierarchy.levels[0] if level is None else level
        return self.process_cycle(time, {level: (score, detector, value)})

    def process_cycle(self, time, levels: dict) -> CycleResult:
        """Process several levels of one cycle (coarsest first), then notify once.

        Parameters
        ----------
        time : cycle time (see :meth:`process`)
        levels : dict
            ``{level: (score, detector, value)}``; detector and value may be ``None``.
        """
        t = to_epoch(time)
        inputs = {}
        for level, arrays in levels.items():
            if not isinstance(arrays, (tuple, list)) or len(arrays) != 3:
                raise ValueError(f"levels[{level!r}] must be (score, detector, value), got {type(arrays).__name__}")
            inputs[level] = self._inputs(level, *arrays)
            self._check_time(level, t)
        return self._cycle(t, inputs, folded=False)

    def process_folded(self, time, levels: dict, fill: dict | None = None, rows: dict | None = None) -> CycleResult:
        """Process several levels of one cycle whose scores are already folded to the alert rows.

        The same as :meth:`process_cycle` after its fold (:meth:`engine.alerts.fold.Fold.apply`):
        :func:`engine.alerts.cycle.fold_cycle` splits, adjusts and folds a cycle in one kernel.

        Parameters
        ----------
        time : cycle time (see :meth:`process`)
        levels : dict
            ``{level: (score, detector, value, lead, raw_value)}``: the folded arrays (alert rows x
            regions of the level: float score, integer detector code, float value, integer lead
            indicator row) and the level's unfolded values (indicators x regions).
        fill : dict, optional
            ``{level: fill(cells)}``: the level's detector, value and lead arrays are complete
            only where ``fill`` has completed them (``fold_cycle(..., lazy=True)``); the manager
            calls it with the flat cells it reads (its series with events and its firing alerts)
            before reading them.
        rows : dict, optional
            ``{level: rows}``: uint8, one per alert row; a row of 0 holds only series that are
            inactive, whose flap registers are 0 and whose scores are not at the fire level (the
            caller's promise: ``fold_cycle``'s ``"exact"``); the state machine goes through the
            rows of 1 only (:func:`engine.alerts.lifecycle.step`'s ``rows``).
        """
        t = to_epoch(time)
        inputs = {}
        for level, arrays in levels.items():
            if not isinstance(arrays, (tuple, list)) or len(arrays) != 5:
                raise ValueError(f"levels[{level!r}] must be (score, detector, value, lead, raw_value), "
                                 f"got {type(arrays).__name__}")
            if level not in self.hierarchy.levels:
                raise ValueError(f"unknown level {level!r}; expected one of {self.hierarchy.levels}")
            n = self.hierarchy.size(level)
            want = (self.n_rows * n,) * 4 + (self.n_indicators * n,)
            flat = []
            for name, a, size, kind in zip(("score", "detector", "value", "lead", "raw_value"), arrays, want,
                                           ("f", "iu", "f", "iu", "f")):
                a = np.asarray(a)
                if a.size != size or a.dtype.kind not in kind:
                    raise ValueError(f"{name} at level {level!r} has shape {a.shape} and dtype {a.dtype}, expected "
                                     f"{size} {'float' if kind == 'f' else 'integer'} values")
                flat.append(np.ascontiguousarray(a).reshape(-1))
            inputs[level] = tuple(flat)
            self._check_time(level, t)
        for name, d in (("fill", fill), ("rows", rows)):
            unknown = set(d or ()) - set(inputs)
            if unknown:
                raise ValueError(f"{name} names levels {sorted(unknown)} that are not processed; expected some of "
                                 f"{sorted(inputs)}")
        return self._cycle(t, inputs, folded=True, fill=fill, exact_rows=rows)

    def hot_rows(self, level: str) -> np.ndarray:
        """The level's alert rows (uint8, one per row) holding a series that is not inactive or
        whose flap register still counts (:func:`engine.alerts.lifecycle.hot_rows`): the rows whose
        folded scores :meth:`process_folded` must get exactly; on the others it reads only whether
        a score is NaN and whether it is at the fire level (``fold_cycle(..., hot=...)``). The
        array is the level's workspace's, rewritten by the next cycle."""
        return hot_rows(self._state(level), self._ws.setdefault(level, {}))

    def _check_time(self, level: str, t: int) -> None:
        if level in self.last_time and t <= self.last_time[level]:
            raise ValueError(f"cycle time {iso(t)} is not after the last cycle processed at level {level!r} "
                             f"({iso(self.last_time[level])})")

    def _cycle(self, t: int, inputs: dict, folded: bool, fill: dict | None = None,
               exact_rows: dict | None = None) -> CycleResult:
        rows: list[tuple] = []
        touched: set[int] = set()
        resolved: list[int] = []
        cycles = []
        t_start = _time.perf_counter()
        for level in sorted(inputs, key=self.hierarchy.rank, reverse=True):
            t0 = _time.perf_counter()
            ws = self._ws.setdefault(level, {})
            if folded:
                score, detector, value, lead, raw_value = inputs[level]
            else:
                score, detector, value = inputs[level]
                raw_value = value
                lead = None
            if not folded and not self.fold.identity:
                # two kernels, not one: a fused fold + state machine a subject row at a time was
                # measured slower (docs/report.md, fifth session)
                nreg = self.hierarchy.size(level)
                fs, fd, fv, fl = self.fold.apply(score.reshape(self.n_indicators, nreg),
                                                 detector.reshape(self.n_indicators, nreg),
                                                 value.reshape(self.n_indicators, nreg), out=ws)
                score, detector, value, lead = fs.reshape(-1), fd.reshape(-1), fv.reshape(-1), fl.reshape(-1)
            st = self._state(level)
            idx, ev = step(st, score, t, self.config, ws, self.row_pending, rows=(exact_rows or {}).get(level))
            if fill and level in fill:
                # the cells read below: the series with events and the level's firing alerts (_refresh)
                nreg = st.shape[1]
                ks = [ep.row * nreg + ep.reg for ep in self.alerts.values() if ep.level == level]
                cells = np.union1d(idx, np.array(ks, np.int64)) if ks else idx
                if len(cells):
                    fill[level](cells)
            self._current[level] = (score, detector, raw_value)
            if len(idx):
                self._apply(level, st, idx, ev, t, score, detector, value, rows, touched, resolved, lead)
            self.last_time[level] = t
            counts = ([int(np.count_nonzero(ev & bit)) for bit in (EV_PENDING, EV_CANCELLED, EV_FIRED, EV_RESOLVED)]
                      if len(idx) else [0, 0, 0, 0])
            cycles.append([t, iso(t), level, st.n, len(idx)] + counts + [None, _time.perf_counter() - t0])
        notifications = self._notify(t, touched)
        cycles.append([t, iso(t), "all", sum(c[3] for c in cycles), sum(c[4] for c in cycles)] +
                      [sum(c[k] for c in cycles) for k in (5, 6, 7, 8)] + [len(notifications), None])
        alert_rows = [self._alert_row(self.alerts.get(i) or self.recently_resolved[i], t) for i in sorted(touched)
                      if i in self.alerts or i in self.recently_resolved]
        cycles[-1][-1] = _time.perf_counter() - t_start
        self.store.write_cycle(transitions=rows, alerts=alert_rows, resolved=resolved, notifications=notifications,
                               levels=list(inputs), cycles=cycles, t=t)
        self._forget_resolved()
        if not self._in_batch:
            self._deliver()
        transitions = [dict(zip(TRANSITION_KEYS, r), type="transition") for r in rows]
        return CycleResult(transitions, [dict(n["payload"], type="notification") for n in notifications])

    def _apply(self, level, st, idx, ev, t, score, detector, value, rows, touched, resolved, lead=None):
        """Turn the events of one level into alert changes and history rows.

        Series whose alert never fired (pending, cancelled: the bulk, about 1% of series per cycle
        when nothing is wrong) are handled as arrays; only alerts that fire become objects.
        ``lead`` (folded rows only): the indicator row that drove each series this cycle.
        """
        nreg = st.shape[1]
        stamp = iso(t)
        s_arr = st.state[idx]
        aid = st.alert_id[idx]
        if self.alerts:
            has_ep = np.fromiter((a in self.alerts for a in aid.tolist()), bool, len(idx))
        else:
            has_ep = np.zeros(len(idx), bool)
        quiet = ~has_ep & (s_arr != FIRING)
        new = quiet & (aid == 0) & (s_arr == PENDING)
        n_new = int(new.sum())
        if n_new:
            fresh = np.arange(self.next_id, self.next_id + n_new, dtype=np.int64)
            st.alert_id[idx[new]] = fresh
            aid[new] = fresh
            self.next_id += n_new
        if n_new:
            ni = idx[new]
            st.p_score[ni], st.p_value[ni], st.p_detector[ni] = score[ni], value[ni], detector[ni]
        if self.config.record_blips and quiet.any():
            qi = idx[quiet]
            qs, qa = s_arr[quiet], aid[quiet]
            ind_i, reg_i = np.divmod(qi, nreg)
            if lead is not None:
                ind_i = lead[qi]
            alert_state = np.where(qs == PENDING, "pending", np.where(qa != 0, "cancelled", ""))
            sev = np.where(qs == PENDING, st.severity[qi], 0)
            rows.extend(zip(
                itertools.repeat(t), itertools.repeat(stamp), itertools.repeat(level),
                self._ind_ids[ind_i].tolist(), self._reg_ids[level][reg_i].tolist(),
                [a or None for a in qa.tolist()], _EVENT_TEXT[ev[quiet]].tolist(), _STATE_TEXT[qs].tolist(),
                [a or None for a in alert_state.tolist()], _SEV_TEXT[sev].tolist(),
                _none_nan(value[qi]), _none_nan(score[qi]), _DETECTOR_TEXT[np.clip(detector[qi], 0, 255)].tolist()))
        st.alert_id[idx[quiet & (s_arr == INACTIVE)]] = 0
        loud = ~quiet
        if not loud.any():
            return
        ids, reg_ids = self.router.ids, self.hierarchy.ids(level)
        li = idx[loud]
        for k, e, s, f, sev, a, sc, dc, vl, started in zip(
                li.tolist(), ev[loud].tolist(), s_arr[loud].tolist(), st.flapping[li].tolist(),
                st.severity[li].tolist(), aid[loud].tolist(), score[li].tolist(), detector[li].tolist(),
                value[li].tolist(), st.started[li].tolist()):
            row, r = divmod(k, nreg)
            i = row if lead is None else int(lead[k])
            sc, vl, det = (None if sc != sc else sc), (None if vl != vl else vl), _detector_name(dc)
            ep = self.alerts.get(a) if a else None
            if ep is None:  # s == FIRING: a new alert fires
                if not a:
                    a = self.next_id
                    self.next_id += 1
                    st.alert_id[k] = a
                ep = _Alert(a, level, i, r, started_at=started, fired_at=t, flapping=bool(f), row=row)
                self.alerts[a] = ep
                if started < t and not self.config.record_blips:  # its pending start, written now
                    ps, pv = float(st.p_score[k]), float(st.p_value[k])
                    psev = "critical" if ps >= self.config.critical_level else "warn"
                    rows.append((started, iso(started), level, ids[i], reg_ids[r], a, "pending", "pending", "pending",
                                 psev, None if pv != pv else pv, None if ps != ps else ps,
                                 _detector_name(st.p_detector[k])))
            elif s == INACTIVE and not f:  # resolved (flap damping no longer holds it)
                del self.alerts[ep.id]
                st.alert_id[k] = 0
                ep.state, ep.resolved_at, ep.flapping, ep.critical_since = "resolved", t, False, None
                ep.value, ep.score, ep.detector, ep.updated_at = vl, sc, det, t
                resolved.append(ep.id)
                self.recently_resolved[ep.id] = ep
                touched.add(ep.id)
                rows.append((t, stamp, level, ids[ep.ind], reg_ids[r], ep.id, _EVENT_TEXT[e], STATE_NAMES[s], "resolved",
                             None, vl, sc, det))
                continue
            # firing, or held firing by flap damping while the series is pending or inactive
            if s != INACTIVE:
                ep.severity = sev
            if ep.severity == CRITICAL:
                if ep.critical_since is None:
                    ep.critical_since = t
            else:
                ep.critical_since = None
            ep.flapping = bool(f)
            ep.value, ep.score, ep.detector, ep.updated_at = vl, sc, det, t
            touched.add(ep.id)
            rows.append((t, stamp, level, ids[ep.ind], reg_ids[r], ep.id, _EVENT_TEXT[e], STATE_NAMES[s], "firing",
                         SEVERITY_NAMES[ep.severity], vl, sc, det))

    # ------------------------------------------------------------------ muting, grouping, escalation
    def _region_chain(self, level: str, reg: int) -> tuple:
        h = self.hierarchy
        return tuple(h.ids(up)[int(h.parent_map(level, up)[reg])] for up in h.levels[h.rank(level):])

    def _mute_reason(self, ep: _Alert, silences) -> str:
        h = self.hierarchy
        for up in self.config.inhibit_by:
            if h.rank(up) > h.rank(ep.level) and up in self.states:
                p = int(h.parent_map(ep.level, up)[ep.reg])
                src = self.alerts.get(int(self.states[up].alert_id[ep.row * h.size(up) + p]))
                if src is not None and src.state == "firing":
                    return f"inhibited by alert {src.id}"
        if silences:
            ind = self.router.indicator(ep.ind)
            chain = self._region_chain(ep.level, ep.reg)
            for s in silences:
                if s.matches_fields(indicator=ind["id"], dimension=ind["dimension"], department=ind["owner"],
                                    region_ids=chain):
                    return f"silenced by {s.id}"
        return ""

    def _group_key(self, ep: _Alert) -> tuple:
        ind = self.router.indicator(ep.ind)
        return (ind["owner"], ep.level, ep.reg, ind["dimension"])

    def _notify(self, t: int, touched: set) -> list[dict]:
        cfg = self.config
        acks = self.store.open_acks()
        for ep in self.alerts.values():
            ep.ack = acks.get(ep.id)
        silences = self.store.silences(active_at=t)
        firing = [ep for ep in self.alerts.values() if ep.state == "firing"]
        content: dict[tuple, dict] = defaultdict(dict)
        for ep in firing:
            muted = self._mute_reason(ep, silences)
            if muted != ep.muted:
                ep.muted = muted
                touched.add(ep.id)
            if not muted:
                content[self._group_key(ep)][ep.id] = int(ep.severity)
        for key in content:
            if key not in self.groups:
                self.groups[key] = Group(key=key, first_seen=t)
        out: list[dict] = []
        for key in sorted(self.groups, key=lambda k: (k[0], self.hierarchy.rank(k[1]), k[1], k[2], k[3])):
            g = self.groups[key]
            now = content.get(key, {})
            reason = g.due(t, now, cfg)
            if reason:
                out.append(self._group_notification(t, g, now, reason))
                g.sent_now(t, now)
            if not now and g.finished:
                del self.groups[key]
        for ep in sorted(firing, key=lambda e: e.id):
            if (ep.severity == CRITICAL and not ep.muted and ep.ack is None and ep.escalated_at is None
                    and ep.critical_since is not None and t - ep.critical_since >= cfg.escalation_after):
                ep.escalated_at = t
                touched.add(ep.id)
                out.append(self._escalation(t, ep))
        return out

    def _forget_resolved(self) -> None:
        """Drop resolved alerts no group still has to report."""
        keep = set()
        for g in self.groups.values():
            keep.update(g.sent)
        for aid in [a for a in self.recently_resolved if a not in keep]:
            del self.recently_resolved[aid]

    # ------------------------------------------------------------------ payloads
    def alert_view(self, ep: _Alert) -> dict:
        """The JSON view of an alert used in notifications."""
        ind = self.router.indicator(ep.ind)
        h = self.hierarchy
        return {
            "alert_id": ep.id, "status": ep.state, "severity": SEVERITY_NAMES.get(ep.severity),
            "level": ep.level, "indicator": ind["id"], "indicator_name_zh": ind["name_zh"],
            "indicator_name_en": ind["name_en"], "unit": ind.get("unit", ""), "dimension": ind["dimension"],
            "domain": ind.get("domain"), "region": h.ids(ep.level)[ep.reg], "region_name": h.names(ep.level)[ep.reg],
            "value": ep.value, "score": ep.score, "detector": ep.detector, "started_at": iso(ep.started_at),
            "fired_at": iso(ep.fired_at), "resolved_at": iso(ep.resolved_at), "flapping": bool(ep.flapping),
            "acked_by": ep.ack["by"] if ep.ack else None, "ack_comment": ep.ack["comment"] if ep.ack else None,
        }

    def _refresh(self, ep: _Alert) -> None:
        cur = self._current.get(ep.level)
        if cur is not None and ep.state == "firing":
            n = self.hierarchy.size(ep.level)
            k = ep.row * n + ep.reg
            ep.score, ep.detector = _num(cur[0][k]), _detector_name(cur[1][k])
            ep.value = _num(cur[2][ep.ind * n + ep.reg])

    def _department(self, dep_id: str) -> dict:
        d = self.router.departments[dep_id]
        return {k: d.get(k, "") for k in ("id", "name_zh", "name_en", "contact", "escalation")}

    def _group_notification(self, t: int, g: Group, now: dict, reason: str) -> dict:
        dep_id, level, reg, dim = g.key
        alerts_now = sorted((self.alerts[i] for i in now), key=lambda e: (-int(e.severity), e.id))
        for ep in alerts_now:
            self._refresh(ep)
        gone = [self.recently_resolved[i] for i in sorted(g.sent) if i not in now and i in self.recently_resolved]
        firing_v = [self.alert_view(ep) for ep in alerts_now]
        resolved_v = [self.alert_view(ep) for ep in gone]
        dep = self._department(dep_id)
        dname = self.router.dimension_names.get(dim, {})
        dimension = {"id": dim, "name_zh": dname.get("name_zh", dim), "name_en": dname.get("name_en", dim)}
        h = self.hierarchy
        region, region_name = h.ids(level)[reg], h.names(level)[reg]
        status = "firing" if firing_v else "resolved"
        nid = f"{iso(t)}/group/{dep_id}/{level}/{region}/{dim}"
        payload = {
            "id": nid, "kind": "group", "time": iso(t), "status": status, "reason": reason,
            "department": dep, "to": dep["contact"],
            "group": {"level": level, "region": region, "region_name": region_name, "dimension": dim,
                      "dimension_name_zh": dimension["name_zh"], "dimension_name_en": dimension["name_en"]},
            "counts": {"firing": len(firing_v), "critical": sum(a["severity"] == "critical" for a in firing_v),
                       "resolved": len(resolved_v)},
            "alerts": firing_v + resolved_v,
            "summary": group_summary(status, reason, region_name, region, dimension, dep, firing_v, resolved_v),
        }
        return {"id": nid, "t": t, "kind": "group", "status": status, "reason": reason, "department": dep_id,
                "contact": dep["contact"], "level": level, "region": region, "dimension": dim,
                "alert_ids": [a["alert_id"] for a in payload["alerts"]], "payload": payload,
                "sinks": [s.name for s in self.sinks if s.wants(dep_id)]}

    def _escalation(self, t: int, ep: _Alert) -> dict:
        self._refresh(ep)
        ind = self.router.indicator(ep.ind)
        dep = self._department(ind["owner"])
        to = self.router.contact(dep["id"], escalate=True)
        view = self.alert_view(ep)
        nid = f"{iso(t)}/escalation/{ep.id}"
        minutes = (t - ep.critical_since) / 60.0
        payload = {"id": nid, "kind": "escalation", "time": iso(t), "status": "firing", "reason": "unacknowledged",
                   "department": dep, "to": to, "critical_since": iso(ep.critical_since), "alerts": [view],
                   "summary": escalation_summary(view, dep, minutes)}
        return {"id": nid, "t": t, "kind": "escalation", "status": "firing", "reason": "unacknowledged",
                "department": dep["id"], "contact": to, "level": ep.level, "region": view["region"],
                "dimension": ind["dimension"], "alert_ids": [ep.id], "payload": payload,
                "sinks": [s.name for s in self.sinks if s.wants(dep["id"])]}

    def _alert_row(self, ep: _Alert, t: int) -> tuple:
        ind = self.router.indicator(ep.ind)
        h = self.hierarchy
        return (ep.id, ep.level, ind["id"], ind["name_zh"], ind["name_en"], ind.get("unit", ""),
                h.ids(ep.level)[ep.reg], h.names(ep.level)[ep.reg], ind["dimension"], ind["owner"], ep.state,
                SEVERITY_NAMES.get(ep.severity), ep.value, ep.score, ep.detector, iso(ep.started_at),
                iso(ep.fired_at), iso(ep.resolved_at), iso(t), t, int(bool(ep.flapping)), ep.muted or "",
                iso(ep.escalated_at))

    # ------------------------------------------------------------------ sinks
    def _deliver(self) -> None:
        """Written notifications to the sinks: the synchronous ones drain now, the others are woken."""
        self._drain_sync()
        for s in self.sinks:
            if s.asynchronous:
                s.wake()

    @contextlib.contextmanager
    def batch(self):
        """Cycles processed together: their store writes go in one transaction at the end, and the
        sinks get their notifications then (each cycle alone: a transaction and a delivery a cycle).

        For cycles that arrive together (a run's part of a day: :func:`engine.alerts.cycle.alert_part`).
        The results are those of the cycles one by one: the same rows in the same order, the
        same notifications in the same order. The batch holds the store's write lock until it
        ends (:meth:`engine.alerts.store.AlertStore.begin_batch`): an acknowledgement or silence
        another process makes meanwhile waits, and counts from the next batch. A cycle that
        raises leaves the cycles before it written, as alone. Nested batches are one batch.

        Examples
        --------
        >>> # with am.batch():
        >>> #     for t, s in cycles: am.process(t, s)
        """
        if self._in_batch:
            yield self
            return
        self.store.begin_batch()
        self._in_batch = True
        try:
            yield self
        finally:
            self._in_batch = False
            self.store.end_batch()
            self._deliver()

    def _drain_sync(self) -> None:
        for s in self.sinks:
            if not s.asynchronous:
                s.drain(self.store)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait up to ``timeout`` seconds until every sink's outbox is empty; ``True`` when it is."""
        self._drain_sync()
        import time as _time

        deadline = _time.monotonic() + timeout
        ok = True
        for s in self.sinks:
            ok = s.flush(max(0.0, deadline - _time.monotonic())) and ok
        return ok

    def close(self) -> None:
        """Stop the sinks' threads and close the store (undelivered notifications stay in the outbox)."""
        for s in self.sinks:
            s.close()
        self.store.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # ------------------------------------------------------------------ operator actions
    def acknowledge(self, alert_id: int, comment: str, by: str = "operator", time=None) -> int:
        """Acknowledge a pending or firing alert (stops its escalation); returns the ack id."""
        return self.store.ack(alert_id, comment, by, None if time is None else to_epoch(time))

    def silence(self, *, author: str, comment: str, expires, created=None, starts=None, **matchers) -> int:
        """Add a silence (``indicator``, ``region``, ``dimension``, ``department`` matchers); returns its id.

        ``expires`` is a duration after ``created`` (``"2h"``; ``created`` defaults to now) or a
        time (see :func:`~engine.alerts.silences.parse_expiry`).
        """
        import time as _time

        created_t = int(_time.time()) if created is None else to_epoch(created, "created")
        return self.store.add_silence(author=author, comment=comment, created_at=created_t,
                                      expires_at=parse_expiry(expires, created_t),
                                      starts_at=None if starts is None else to_epoch(starts, "starts"), **matchers)

    def unsilence(self, silence_id: int, by: str | None = None, time=None) -> None:
        """End a silence."""
        self.store.remove_silence(silence_id, by, None if time is None else to_epoch(time))

    # ------------------------------------------------------------------ checkpoints
    def _fingerprint(self) -> dict:
        return {"indicators": self.n_indicators, "alert_per": self.config.alert_per, "rows": self.n_rows,
                "first": self.router.ids[0] if self.router.ids else None,
                "last": self.router.ids[-1] if self.router.ids else None,
                "regions": {lvl: self.hierarchy.size(lvl) for lvl in self.hierarchy.levels}}

    def save_state(self, path) -> Path:
        """Write the state (series arrays, open alerts, groups) to an ``.npz`` file atomically.

        Examples
        --------
        >>> # am.save_state("alerts-state.npz"); AlertManager(cat, city, store=..., checkpoint="alerts-state.npz")
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {}
        for level, st in self.states.items():
            for name, a in st.to_arrays().items():
                arrays[f"{level}.{name}"] = a
        meta = {"version": CHECKPOINT_VERSION, "fingerprint": self._fingerprint(), "config": self.config.to_dict(),
                "last_time": self.last_time, "next_id": self.next_id, "levels": sorted(self.states),
                "alerts": [ep.to_dict() for ep in self.alerts.values()],
                "recently_resolved": [ep.to_dict() for ep in self.recently_resolved.values()],
                "groups": [g.to_dict() for g in self.groups.values()]}
        arrays["meta"] = np.array(json.dumps(meta, ensure_ascii=False))
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return path

    def load_state(self, path) -> None:
        """Replace the state with a checkpoint written by :meth:`save_state`.

        Raises
        ------
        ValueError
            When the checkpoint was made for another catalog or city (names what differs).
        """
        with np.load(Path(path), allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("version") != CHECKPOINT_VERSION:
                raise ValueError(f"checkpoint {str(path)!r} has version {meta.get('version')!r}, expected {CHECKPOINT_VERSION}")
            fp = self._fingerprint()
            if meta["fingerprint"] != fp:
                raise ValueError(f"checkpoint {str(path)!r} was made for {meta['fingerprint']}, not this catalog and "
                                 f"city {fp}")
            self.states = {lvl: SeriesState.from_arrays((self.n_rows, self.hierarchy.size(lvl)),
                                                        {f: z[f"{lvl}.{f}"] for f in SeriesState.fields})
                           for lvl in meta["levels"]}
        self.last_time = {k: int(v) for k, v in meta["last_time"].items()}
        self.next_id = max(int(meta["next_id"]), self.store.max_alert_id() + 1)
        self.alerts = {int(d["id"]): _Alert(**d) for d in meta["alerts"]}
        self.recently_resolved = {int(d["id"]): _Alert(**d) for d in meta["recently_resolved"]}
        for ep in list(self.alerts.values()) + list(self.recently_resolved.values()):
            if ep.ack is not None:
                ep.ack = dict(ep.ack)
        self.groups = {tuple(g["key"]): Group.from_dict(g) for g in meta["groups"]}
        self._current = {}

    def _restore_from_store(self) -> None:
        """Take up the store's pending and firing alerts (a restart without a checkpoint)."""
        h = self.hierarchy
        last_sent: dict[tuple, int] = {}
        for n in self.store.conn.execute("SELECT department, level, region, dimension, MAX(t) AS t FROM notifications "
                                         "WHERE kind = 'group' GROUP BY department, level, region, dimension"):
            found = h.find(n["region"]) if n["region"] else None
            if found and found[0] == n["level"]:
                last_sent[(n["department"], n["level"], found[1], n["dimension"])] = int(n["t"])
        for row in self.store.active_alerts():
            level = row["level"]
            if level not in h.levels or row["indicator"] not in self.router:
                continue
            reg = h.index(level, row["region"])
            if reg is None:
                continue
            i = self.router.index(row["indicator"])
            st = self._state(level)
            k = int(self.fold.row_of[i]) * h.size(level) + reg
            sev = CRITICAL if row["severity"] == "critical" else 1
            t_up = int(row["t_updated"] or 0)
            started = to_epoch(row["started_at"]) if row["started_at"] else t_up
            fired = to_epoch(row["fired_at"]) if row["fired_at"] else t_up
            st.state[k], st.count[k], st.severity[k], st.alert_id[k] = FIRING, 0, sev, row["id"]
            st.since[k], st.started[k] = fired, started
            self._ws.setdefault(level, {}).pop("hot_of", None)   # the state changed outside step
            ep = _Alert(row["id"], level, i, reg, row=int(self.fold.row_of[i]), severity=sev, started_at=started, fired_at=fired,
                        critical_since=t_up if sev == CRITICAL else None, muted=row["muted"] or "",
                        escalated_at=to_epoch(row["escalated_at"]) if row["escalated_at"] else None,
                        value=row["value"], score=row["score"], detector=row["detector"], updated_at=t_up)
            self.alerts[ep.id] = ep
            if not ep.muted:
                key = self._group_key(ep)
                if key in last_sent:
                    g = self.groups.setdefault(key, Group(key=key, first_seen=last_sent[key], last_sent=last_sent[key]))
                    g.sent[ep.id] = sev
