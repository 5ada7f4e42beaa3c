"""Signal kernels of the big feeds: a feed family's metrics for every (cycle, emitter) in one pass.

The big reading feeds (road traffic, water, power, crowd counts: most of the 140 M records of a
full run) are cheap per value, so numpy temporaries (one array per operation) cost more than the
arithmetic. Each kernel here writes a feed's whole signal ``sig (C, E, M)`` in one loop;
:func:`engine.sim.noise.noisy_grid` then adds the noise and writes the records. Each kernel gives
the same signal, bit for bit, as its numpy formula (``tests/sim_reference.py``): the same
operations in the same order, with numpy's ``minimum``/``maximum`` (NaN propagating) as
:func:`fmin`/:func:`fmax`.

Every kernel takes its per-cycle vectors (``(C,)``), per-emitter vectors (``(E,)``) and scalars,
then ``sig``. The formulas are those of :func:`engine.sim.generators.gen_network_readings` and
:func:`engine.sim.generators.gen_crowds`.
"""

from __future__ import annotations

import numpy as np

from engine.config import njit


@njit
def fmin(a, b):
    """``np.minimum`` of two floats (NaN if either is NaN)."""
    if a != a or b != b:
        return np.nan
    return a if a <= b else b


@njit
def fmax(a, b):
    """``np.maximum`` of two floats (NaN if either is NaN)."""
    if a != a or b != b:
        return np.nan
    return a if a >= b else b


@njit
def road_signal(prof, base, act, k, capk, vfree, sig):
    """Road segments: speed, volume, occupancy, congestion. ``volume = base * prof * act * k``;
    ``ratio = volume / capk``; speeds fall with the ratio (BPR-like), congestion with speed.
    Occupancy grows as ``ratio ** 1.2``, taken as ``prof ** 1.2 * (base act k / capk) ** 1.2`` (the
    same up to rounding; C + E powers instead of C x E)."""
    C, E = prof.shape[0], base.shape[0]
    pow_c = np.empty(C)
    for c in range(C):
        pow_c[c] = prof[c] ** 1.2
    pow_e = np.empty(E)
    for e in range(E):
        pow_e[e] = (base[e] * act[e] * k / capk[e]) ** 1.2
    for c in range(C):
        for e in range(E):
            vol = base[e] * prof[c] * act[e] * k
            ratio = vol / capk[e]
            x = fmin(ratio, 1.4)
            speed = fmax(vfree[e] * (1.0 - 0.55 * (x * x) / 1.96 * 1.6), 5.0)
            sig[c, e, 0] = speed
            sig[c, e, 1] = vol
            sig[c, e, 2] = 100.0 * fmin(0.95, 0.85 * pow_c[c] * pow_e[e])
            sig[c, e, 3] = fmin(fmax(4.0 * (vfree[e] / speed - 1.0), 0.0), 10.0)


@njit
def water_signal(res_prof, work_prof, a, h, b, burst, rain, sig):
    """Water meters: pressure, flow, turbidity, chlorine. ``flow = a * res_prof * h + b * work_prof``
    (residents at home, open jobs); pressure falls with flow over its daily mean; a main burst
    (``burst (C, E)``) cuts pressure and chlorine and raises flow and turbidity."""
    C, E = res_prof.shape[0], a.shape[0]
    mean = np.zeros(E)
    for c in range(C):                         # daily mean flow, summed in cycle order as numpy does
        for e in range(E):
            mean[e] += a[e] * res_prof[c] * h[e] + b[e] * work_prof[c]
    for e in range(E):
        mean[e] = mean[e] / C + 1e-9
    for c in range(C):
        for e in range(E):
            flow = a[e] * res_prof[c] * h[e] + b[e] * work_prof[c]
            bu = burst[c, e]
            cut = fmin(bu, 1.0)
            sig[c, e, 0] = (0.36 - 0.05 * (flow / mean[e] - 1.0)) * (1.0 - 0.6 * cut)
            sig[c, e, 1] = flow * (1.0 + 0.8 * bu)
            sig[c, e, 2] = 0.35 + 15.0 * bu + 0.2 * rain
            sig[c, e, 3] = 0.6 * (1.0 - 0.5 * cut)


@njit
def power_signal(res_prof, work_q, a, b, outage, cycle_minutes, sig):
    """Transformers: load, voltage, energy. ``load = (a * res_prof + b * work_q) * (1 - 0.97 outage)``;
    voltage sags with load over its daily mean and is 0 in an outage (``outage (C, E)``, <= 1)."""
    C, E = res_prof.shape[0], a.shape[0]
    mean = np.zeros(E)
    for c in range(C):
        for e in range(E):
            mean[e] += (a[e] * res_prof[c] + b[e] * work_q[c]) * (1.0 - 0.97 * outage[c, e])
    for e in range(E):
        mean[e] = mean[e] / C + 1e-9
    for c in range(C):
        for e in range(E):
            o = outage[c, e]
            load = (a[e] * res_prof[c] + b[e] * work_q[c]) * (1.0 - 0.97 * o)
            sig[c, e, 0] = load
            sig[c, e, 1] = (228.0 - 6.0 * load / mean[e] + 6.0) * (1.0 - o)
            sig[c, e, 2] = load * cycle_minutes / 60.0


CROWD_KINDS = ("venue", "compound_gate", "pharmacy", "metro_station", "office_building", "hospital", "school")
"""Site formulas of :func:`crowd_signal` by code (-1: no formula, all zero)."""


@njit
def crowd_signal(kind, p_in, p_occ, a, b, cap, adm, boost, prof_in, prof_occ, cycle_minutes, check, work_level,
                 office_queue, hospital_queue, sig):
    """Entries, occupancy and queue ``sig (C, E, 3)`` of crowd-count sites by formula ``kind[e]``
    (:data:`CROWD_KINDS`). ``pin = prof_in[p_in[e], c]`` (a daily profile, mean 1) spreads the
    site's daily entries ``a[e]`` over the cycles; ``pocc = prof_occ[p_occ[e], c]`` shapes
    occupancy (profile over its peak, or presence). ``boost (C, E)``: pharmacies' mask-shortage
    boost. ``b``: venues' peak occupancy; ``adm``: venues' admitted share; ``cap``: capacity."""
    C, E = sig.shape[0], sig.shape[1]
    for c in range(C):
        for e in range(E):
            k = kind[e]
            pin = prof_in[p_in[e], c]
            pocc = prof_occ[p_occ[e], c]
            ent = a[e] * pin / C
            occ = 0.0
            q = 0.0
            if k == 0:                          # venue: simulated visitors, peak occupancy, queue if capped
                occ = b[e] * pocc
                demand = occ / fmax(adm[e], 1e-3)
                q = 0.15 * fmax(demand - occ, 0.0) + 0.01 * occ
            elif k == 1:                        # compound gate
                occ = ent * 1.0 / cycle_minutes
                q = ent * 0.08 * check
            elif k == 2:                        # pharmacy
                ms = boost[c, e]
                ent = ent * (1.0 + 1.0 * ms)
                occ = ent * 6.0 / cycle_minutes
                q = fmax(occ - 0.5 * cap[e], 0.0) + 10.0 * ms * pocc
            elif k == 3:                        # metro station
                occ = ent * 4.0 / cycle_minutes
                q = 0.3 * fmax(occ - 0.3 * cap[e], 0.0)
            elif k == 4:                        # office building: arrivals by the commute rhythm
                ent = a[e] * 1.3 * pin / C
                occ = a[e] * pocc * work_level
                q = 0.01 * ent * office_queue
            elif k == 5:                        # hospital
                occ = ent * 60.0 / cycle_minutes
                q = 0.05 * occ * hospital_queue
            elif k == 6:                        # school: pupils present 07:30-16:30
                occ = a[e] * pocc
                q = 0.02 * ent
            else:
                ent = 0.0
            sig[c, e, 0] = ent
            sig[c, e, 1] = occ
            sig[c, e, 2] = q
