"""The per-cycle state machine over every (indicator, region) series of a level.

One call of :func:`step` advances all series by one cycle: a compiled loop (numba) over flat
arrays that touches only a byte or two per quiet series, and returns the few series that had an
event. :func:`step_reference` is the same machine written as a plain per-series Python loop; the
tests check on random score sequences that both give the same states and events.

Rules, per series and cycle (``s`` the score, levels from :class:`~engine.alerts.config.AlertConfig`):

* ``s`` is NaN (no opinion): the series holds its state; after ``stale_cycles`` NaN cycles in a
  row a pending series is cancelled and a firing one resolved.
* inactive: ``s >= fire_level`` starts pending with count 1 (fires at once when
  ``pending_cycles == 1``).
* pending: ``s >= fire_level`` adds one to the count and fires when it reaches
  ``pending_cycles`` (or the series row's own count, ``pending`` of :func:`step`: 1 for the
  subjects of feeds reported once a day, :attr:`AlertConfig.daily_feeds`); a lower score cancels. The severity is the highest seen while pending
  (critical at ``s >= critical_level``).
* firing: ``s < clear_level`` for ``resolve_cycles`` cycles in a row resolves (hysteresis: a score
  between clear and fire level keeps it firing); otherwise warn steps up to critical at
  ``s >= critical_level`` and critical steps down to warn at ``s < fire_level``.
* flap damping: each cycle shifts ``flap_bits`` left, setting the new bit when the series fired or
  resolved; damping starts when the set bits in the last ``flap_window`` cycles reach
  ``flap_threshold`` and ends when they fall to ``flap_clear`` or fewer.

>>> import numpy as np
>>> from engine.alerts.config import AlertConfig
>>> from engine.alerts.state import SeriesState, event_names
>>> cfg = AlertConfig(pending_cycles=2)
>>> st = SeriesState.empty(1, 2)
>>> for t, s in enumerate([[0.995, 0.5], [0.9995, 0.5], [0.97, 0.5], [0.5, 0.5]]):
...     idx, ev = step(st, np.array(s, np.float32), t, cfg)
...     print(t, [(int(i), event_names(int(e))) for i, e in zip(idx, ev)], st.state.tolist())
0 [(0, ['pending'])] [1, 0]
1 [(0, ['fired'])] [2, 0]
2 [(0, ['severity_down'])] [2, 0]
3 [(0, ['resolved'])] [0, 0]
"""

from __future__ import annotations

import math

import numpy as np

from engine.alerts.state import (
    CRITICAL, EV_CANCELLED, EV_FIRED, EV_FLAP_END, EV_FLAP_START, EV_PENDING, EV_RESOLVED,
    EV_SEV_DOWN, EV_SEV_UP, FIRING, INACTIVE, PENDING, WARN, SeriesState,
)
from engine.config import njit

__all__ = ["hot_rows", "step", "step_reference"]


@njit
def _advance(k, s, t, n_pending, state, count, severity, nan_run, since, started, flap_bits, flapping,
             n_resolve, fire, crit, clear, stale, window_mask, flap_on, flap_off):  # pragma: no cover - compiled
    """The rules for series ``k`` at score ``s`` (``nan_run`` already advanced: +1 on NaN, else 0);
    returns its event mask."""
    one = np.uint64(1)
    zero = np.uint64(0)
    st = state[k]
    ev = 0
    if s != s:
        if st != INACTIVE and stale > 0 and nan_run[k] >= stale:
            ev = EV_RESOLVED if st == FIRING else EV_CANCELLED
            state[k] = INACTIVE
            count[k] = 0
            severity[k] = 0
            since[k] = t
    else:
        lv = 0
        if s >= crit:
            lv = CRITICAL
        elif s >= fire:
            lv = WARN
        if st == INACTIVE:
            if lv > 0:
                count[k] = 1
                severity[k] = lv
                since[k] = t
                started[k] = t
                if n_pending <= 1:
                    state[k] = FIRING
                    count[k] = 0
                    ev = EV_FIRED
                else:
                    state[k] = PENDING
                    ev = EV_PENDING
        elif st == PENDING:
            if lv > 0:
                count[k] += 1
                if lv > severity[k]:
                    severity[k] = lv
                if count[k] >= n_pending:
                    state[k] = FIRING
                    count[k] = 0
                    since[k] = t
                    ev = EV_FIRED
            else:
                state[k] = INACTIVE
                count[k] = 0
                severity[k] = 0
                since[k] = t
                ev = EV_CANCELLED
        else:
            resolved = False
            if s < clear:
                count[k] += 1
                if count[k] >= n_resolve:
                    state[k] = INACTIVE
                    count[k] = 0
                    severity[k] = 0
                    since[k] = t
                    ev = EV_RESOLVED
                    resolved = True
            else:
                count[k] = 0
            if not resolved:
                if lv == CRITICAL and severity[k] == WARN:
                    severity[k] = CRITICAL
                    ev = EV_SEV_UP
                elif lv == 0 and severity[k] == CRITICAL:
                    severity[k] = WARN
                    ev = EV_SEV_DOWN
    # flap damping: a shift register of fire/resolve changes
    bits = flap_bits[k]
    changed = (ev & (EV_FIRED | EV_RESOLVED)) != 0
    if bits != zero or changed:
        bits = (bits << one) & window_mask
        if changed:
            bits |= one
        flap_bits[k] = bits
        if flap_on > 0:
            c = 0
            x = bits
            while x != zero:
                x &= x - one
                c += 1
            if flapping[k] == 0:
                if c >= flap_on:
                    flapping[k] = 1
                    ev |= EV_FLAP_START
            elif c <= flap_off:
                flapping[k] = 0
                ev |= EV_FLAP_END
    return ev


@njit
def _nan_runs(score, nan_run):  # pragma: no cover - compiled
    """``nan_run`` advanced by ``score``: +1 (at most 32767) on NaN, else 0.
    Branch-free: every element is written, so the loop vectorises."""
    for k in range(score.shape[0]):
        s = score[k]
        r = nan_run[k] + 1
        if r > 32767:
            r = 32767
        nan_run[k] = r if s != s else 0


@njit(inline="always")
def _quiet(st, s, bits, fire):  # pragma: no cover - compiled
    """A series the rules would leave as it is: inactive (``st``), its score ``s`` not at the fire
    level, its flap register ``bits`` 0. Scalars only: an inlined helper taking the state arrays
    costs a reference count pair per array per call (per series of a hot block)."""
    return st == INACTIVE and not (s >= fire) and bits == np.uint64(0)


@njit
def _visit(k, g, s, t, n_pending, state, count, severity, nan_run, since, started, flap_bits, flapping,
           n_resolve, fire, crit, clear, stale, window_mask, flap_on, flap_off, ev_out, idx_out, hot_rows,
           m):  # pragma: no cover - compiled
    """Series ``k`` of row ``g`` (not :func:`_quiet`) at score ``s``, as both step kernels visit it:
    the rules (:func:`_advance`), the row marked hot when the series is left not quiet, its event
    appended at ``m``. Returns the events' count after it. Called for the series that are not
    quiet only (few a cycle): its array arguments' reference counts are paid there only."""
    ev = _advance(k, s, t, n_pending, state, count, severity, nan_run, since, started, flap_bits, flapping,
                  n_resolve, fire, crit, clear, stale, window_mask, flap_on, flap_off)
    if state[k] != INACTIVE or flap_bits[k] != np.uint64(0):
        hot_rows[g] = 1
    if ev != 0:
        ev_out[m] = ev
        idx_out[m] = k
        m += 1
    return m


@njit
def _step_kernel(score, t, state, count, severity, nan_run, since, started, flap_bits, flapping,
                 row_pending, n_reg, n_resolve, fire, crit, clear, stale, window_mask, flap_on, flap_off,
                 ev_out, idx_out, hot_rows):  # pragma: no cover - compiled
    """All series, one cycle: NaN runs advanced in a vectorised pass, then a block of series at a
    time, a branch-free pass (it vectorises) finds whether anything can happen in the block (a
    series that is not inactive, a score at the fire level, a flap register still counting: the OR
    of the flap bits, the state and the fire test is not zero); only such a block is gone through
    with the rules (:func:`_advance`) where something can happen. Nearly every block is quiet.

    ``hot_rows`` (uint8, one per series row): set to 1 for the rows that, after the cycle, hold a
    series that is not inactive or whose flap register still counts (0 elsewhere): only series gone
    through the rules can be such (a quiet block stays quiet)."""
    n = score.shape[0]
    _nan_runs(score, nan_run)
    hot_rows[:] = 0
    m = 0
    zero = np.uint64(0)
    block = 256
    for b0 in range(0, n, block):
        b1 = min(b0 + block, n)
        hot = np.uint64(0)
        for k in range(b0, b1):
            hot |= flap_bits[k] | np.uint64(state[k]) | np.uint64(score[k] >= fire)
        if hot == zero:
            continue
        for k in range(b0, b1):
            s = score[k]
            if _quiet(state[k], s, flap_bits[k], fire):
                continue
            g = k // n_reg
            m = _visit(k, g, s, t, row_pending[g], state, count, severity, nan_run, since, started,
                       flap_bits, flapping, n_resolve, fire, crit, clear, stale, window_mask, flap_on, flap_off,
                       ev_out, idx_out, hot_rows, m)
    return m


@njit
def _step_rows_kernel(score, t, state, count, severity, nan_run, since, started, flap_bits, flapping,
                      row_pending, n_reg, n_resolve, fire, crit, clear, stale, window_mask, flap_on, flap_off,
                      ev_out, idx_out, hot_rows, rows):  # pragma: no cover - compiled
    """:func:`_step_kernel` where the caller knows the series rows that can hold a series that is not
    quiet (``rows[g] != 0``; every series of the other rows is inactive, its flap register 0 and its
    score not at the fire level, so the rules would skip it): NaN runs advanced for all series, the
    rules gone through on those rows only (no pass over the others' states and registers)."""
    n = score.shape[0]
    _nan_runs(score, nan_run)
    hot_rows[:] = 0
    m = 0
    for g in range(rows.shape[0]):
        if rows[g] == 0:
            continue
        for k in range(g * n_reg, min((g + 1) * n_reg, n)):
            s = score[k]
            if _quiet(state[k], s, flap_bits[k], fire):
                continue
            m = _visit(k, g, s, t, row_pending[g], state, count, severity, nan_run, since, started,
                       flap_bits, flapping, n_resolve, fire, crit, clear, stale, window_mask, flap_on, flap_off,
                       ev_out, idx_out, hot_rows, m)
    return m


def _check_score(state: SeriesState, score) -> np.ndarray:
    s = np.asarray(score)
    if s.size != state.n or (s.ndim == 2 and s.shape != state.shape):
        raise ValueError(f"score has shape {s.shape}, expected {state.shape} (indicators x regions)")
    if not np.issubdtype(s.dtype, np.floating):
        raise ValueError(f"score must be a float array (0..1, NaN = no opinion), got dtype {s.dtype}")
    return np.ascontiguousarray(s, dtype=np.float32).reshape(-1)


def _row_pending(state: SeriesState, cfg, pending) -> np.ndarray:
    """Pending cycles of each series row: ``pending`` (one per row) or ``cfg.pending_cycles``."""
    rows = state.shape[0]
    if pending is None:
        return np.full(rows, int(cfg.pending_cycles), np.int64)
    p = np.asarray(pending)
    if p.shape != (rows,) or not np.issubdtype(p.dtype, np.integer) or (rows and p.min() < 1):
        raise ValueError(f"pending must be {rows} integers >= 1 (one per series row), got shape {p.shape}, "
                         f"dtype {p.dtype}{', min ' + str(p.min()) if p.size else ''}")
    return np.ascontiguousarray(p, dtype=np.int64)


def _params(cfg, state: SeriesState, pending) -> tuple:
    mask = np.uint64((1 << cfg.flap_window) - 1)
    return (_row_pending(state, cfg, pending), max(int(state.shape[1]), 1), int(cfg.resolve_cycles), float(cfg.fire_level), float(cfg.critical_level),
            float(cfg.clear_level), int(cfg.stale_cycles), mask, int(cfg.flap_threshold), int(cfg.flap_clear))


def step(state: SeriesState, score, t: int, cfg, workspace: dict | None = None,
         pending=None, rows=None) -> tuple[np.ndarray, np.ndarray]:
    """Advance every series of a level by one cycle, in place.

    Parameters
    ----------
    state : SeriesState
        The level's arrays (updated in place).
    score : array of float, shape (n_indicators, n_regions) or flat
        This cycle's scores (0..1; NaN = no opinion).
    t : int
        Cycle time, epoch seconds (stored as ``since`` on state changes).
    cfg : AlertConfig
    workspace : dict, optional
        Reused output buffers (kept between calls to avoid allocating per cycle), and the checked
        parameters of the last ``cfg`` / ``pending`` / shape: a call with the same ``pending``
        object takes it to hold the same values (pass a new array after changing one).
    pending : array of int, shape (n_indicators,), optional
        Pending cycles of each row (each >= 1); default ``cfg.pending_cycles`` for every row.
    rows : array of uint8, shape (n_indicators,), optional
        The caller's promise that every series of a row of 0 is quiet: inactive, its flap register
        0 and its score not at ``cfg.fire_level`` (NaN or below). The rules then go through the
        rows of 1 only (the same states and events: they would skip the others' series).
        :func:`engine.alerts.cycle.fold_cycle`'s ``"exact"`` with ``hot=`` :func:`hot_rows`.

    Returns
    -------
    idx : ndarray of int64
        Flat indices (``indicator * n_regions + region``) of the series with events, ascending.
    events : ndarray of uint8
        Their event bit masks (:data:`engine.alerts.state.EV_PENDING` ...).

    Examples
    --------
    >>> from engine.alerts.config import AlertConfig
    >>> st = SeriesState.empty(2, 2)
    >>> idx, ev = step(st, np.array([[0.2, 0.9999], [np.nan, 0.1]]), 100, AlertConfig(pending_cycles=1))
    >>> idx.tolist(), ev.tolist(), st.severity.tolist()
    ([1], [2], [0, 2, 0, 0])
    """
    s = _check_score(state, score)
    ws = workspace if workspace is not None else {}
    if ws.get("n") != state.n or len(ws["hot"]) != state.shape[0]:
        ws["n"] = state.n
        ws["ev"] = np.empty(state.n, np.uint8)
        ws["idx"] = np.empty(state.n, np.int64)
        ws["hot"] = np.empty(state.shape[0], np.uint8)
    # the parameters are checked once per (config, pending, shape) a workspace sees (the manager's
    # every cycle: the same objects)
    key = ws.get("params_of")
    if key is None or key[0] is not cfg or key[1] is not pending or key[2] != state.shape:
        ws["params"] = _params(cfg, state, pending)
        ws["params_of"] = (cfg, pending, state.shape)
    ws["hot_of"] = None
    args = (s, np.int64(t), state.state, state.count, state.severity, state.nan_run, state.since,
            state.started, state.flap_bits, state.flapping, *ws["params"], ws["ev"], ws["idx"], ws["hot"])
    if rows is None:
        m = _step_kernel(*args)
    else:
        r = np.asarray(rows)
        if r.shape != (state.shape[0],) or r.dtype != np.uint8:
            raise ValueError(f"rows must be {state.shape[0]} uint8 (one per series row), got shape {r.shape}, "
                             f"dtype {r.dtype}")
        m = _step_rows_kernel(*args, r)
    ws["hot_of"] = (state.state, state.flap_bits)
    return ws["idx"][:m].copy(), ws["ev"][:m].copy()


def hot_rows(state: SeriesState, workspace: dict) -> np.ndarray:
    """The series rows (uint8, one per row: 1 or 0) holding a series that is not inactive or whose
    flap register still counts: the rows whose scores the state machine reads beyond "NaN or not,
    at the fire level or not" (:func:`engine.alerts.cycle.fold_cycle`'s ``hot``).

    The last :func:`step` with this ``workspace`` on these state arrays wrote them; otherwise (a
    new workspace, arrays loaded or replaced) they are computed from the arrays. A caller that
    changes the state arrays in place outside :func:`step` drops ``workspace["hot_of"]``.

    Examples
    --------
    >>> from engine.alerts.config import AlertConfig
    >>> st = SeriesState.empty(3, 2)
    >>> ws = {}
    >>> hot_rows(st, ws).tolist()
    [0, 0, 0]
    >>> _ = step(st, np.array([[0.2, 0.5], [0.5, 0.9999], [np.nan, 0.1]]), 100, AlertConfig(pending_cycles=2), ws)
    >>> hot_rows(st, ws).tolist()
    [0, 1, 0]
    """
    of = workspace.get("hot_of")
    h = workspace.get("hot")
    if of is None or h is None or of[0] is not state.state or of[1] is not state.flap_bits or len(h) != state.shape[0]:
        busy = (state.state != INACTIVE) | (state.flap_bits != 0)
        h = busy.reshape(state.shape[0], -1).any(axis=1).astype(np.uint8)
        workspace["hot"] = h
        workspace["hot_of"] = (state.state, state.flap_bits)
    return h


def step_reference(state: SeriesState, score, t: int, cfg, pending=None) -> tuple[np.ndarray, np.ndarray]:
    """The same machine as :func:`step`, one series at a time in plain Python (slow; for tests).

    Examples
    --------
    >>> from engine.alerts.config import AlertConfig
    >>> st = SeriesState.empty(1, 1)
    >>> [step_reference(st, np.array([x]), i, AlertConfig(pending_cycles=2))[1].tolist() for i, x in enumerate([0.995, 0.995, 0.96, 0.9])]
    [[1], [2], [], [4]]
    """
    s = _check_score(state, score)
    p = cfg
    rows = [int(cfg.pending_cycles)] * state.shape[0] if pending is None else [int(x) for x in pending]
    out_idx, out_ev = [], []
    for k in range(state.n):
        n_pending = rows[k // state.shape[1]]
        x = float(s[k])
        st = int(state.state[k])
        events = set()
        if math.isnan(x):
            state.nan_run[k] = min(int(state.nan_run[k]) + 1, 32767)
            if st != INACTIVE and p.stale_cycles > 0 and state.nan_run[k] >= p.stale_cycles:
                events.add("resolved" if st == FIRING else "cancelled")
                state.state[k], state.count[k], state.severity[k], state.since[k] = INACTIVE, 0, 0, t
        else:
            state.nan_run[k] = 0
            level = CRITICAL if x >= p.critical_level else WARN if x >= p.fire_level else 0
            if st == INACTIVE:
                if level:
                    state.severity[k], state.since[k], state.started[k] = level, t, t
                    if n_pending == 1:
                        state.state[k], state.count[k] = FIRING, 0
                        events.add("fired")
                    else:
                        state.state[k], state.count[k] = PENDING, 1
                        events.add("pending")
            elif st == PENDING:
                if level:
                    state.count[k] += 1
                    state.severity[k] = max(int(state.severity[k]), level)
                    if state.count[k] >= n_pending:
                        state.state[k], state.count[k], state.since[k] = FIRING, 0, t
                        events.add("fired")
                else:
                    state.state[k], state.count[k], state.severity[k], state.since[k] = INACTIVE, 0, 0, t
                    events.add("cancelled")
            else:  # firing
                below_clear_long_enough = False
                if x < p.clear_level:
                    state.count[k] += 1
                    below_clear_long_enough = state.count[k] >= p.resolve_cycles
                else:
                    state.count[k] = 0
                if below_clear_long_enough:
                    state.state[k], state.count[k], state.severity[k], state.since[k] = INACTIVE, 0, 0, t
                    events.add("resolved")
                elif level == CRITICAL and state.severity[k] == WARN:
                    state.severity[k] = CRITICAL
                    events.add("severity_up")
                elif level == 0 and state.severity[k] == CRITICAL:
                    state.severity[k] = WARN
                    events.add("severity_down")
        # flap damping over the last flap_window cycles
        history = [(int(state.flap_bits[k]) >> i) & 1 for i in range(p.flap_window)]
        history = [1 if events & {"fired", "resolved"} else 0] + history[:p.flap_window - 1]
        state.flap_bits[k] = sum(b << i for i, b in enumerate(history))
        if p.flap_threshold:
            changes = sum(history)
            if not state.flapping[k] and changes >= p.flap_threshold:
                state.flapping[k] = 1
                events.add("flap_start")
            elif state.flapping[k] and changes <= p.flap_clear:
                state.flapping[k] = 0
                events.add("flap_end")
        if events:
            names = {"pending": EV_PENDING, "fired": EV_FIRED, "resolved": EV_RESOLVED, "cancelled": EV_CANCELLED,
                     "severity_up": EV_SEV_UP, "severity_down": EV_SEV_DOWN, "flap_start": EV_FLAP_START,
                     "flap_end": EV_FLAP_END}
            out_idx.append(k)
            out_ev.append(sum(names[e] for e in events))
    return np.array(out_idx, np.int64), np.array(out_ev, np.uint8)
