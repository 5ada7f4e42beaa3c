"""Fused feed kernels: the signal, the noise and every column of a feed's records in one pass.

The big reading feeds (road traffic, water, power: about half of the 140 M records of a full run)
are cheap per value, so numpy temporaries (one array per operation) and a separate noise pass used
to cost more than the arithmetic. Each kernel here computes one feed family's metrics per (cycle,
emitter) and writes the records straight into the day's columns through :func:`put`, which adds
the noise of :func:`engine.sim.noise.noisy_value` with the same counter as
:func:`engine.sim.noise.noisy_grid` (row ``i = (c * E + e) * M + m``). So each kernel gives the
same records, bit for bit, as its numpy formula (in ``tests/sim_reference.py``) followed by
:func:`~engine.sim.noise.noisy_grid`.

Every kernel takes its per-cycle vectors (``(C,)``), per-emitter vectors (``(E,)``) and scalars,
then the record arguments ``sd, lo, hi, integer, key, emitters, items, times, em_out, it_out,
t_out, out`` of :func:`~engine.sim.noise.noisy_grid`. The formulas are those of
:func:`engine.sim.generators.gen_network_readings`; numpy's ``minimum``/``maximum`` (NaN
propagating) are :func:`fmin`/:func:`fmax`.
"""

from __future__ import annotations

import numpy as np

from engine.config import njit
from engine.sim.noise import noisy_value


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
def put(v, i, m, e, c, sd, lo, hi, integer, key, emitters, items, times, em_out, it_out, t_out, out):
    """Row ``i`` (metric ``m`` of emitter ``e`` at cycle ``c``) of a record block, value ``v`` noised."""
    em_out[i] = emitters[e]
    it_out[i] = items[m]
    t_out[i] = times[c]
    out[i] = noisy_value(v, sd[m], lo[m], hi[m], integer[m], key, i)


@njit
def road_readings(prof, base, act, k, capk, vfree,
                  sd, lo, hi, integer, key, emitters, items, times, em_out, it_out, t_out, out):
    """Road segments: speed, volume, occupancy, congestion. ``volume = base * prof * act * k``;
    ``ratio = volume / capk``; speeds fall with the ratio (BPR-like), congestion with speed."""
    C, E, M = prof.shape[0], base.shape[0], 4
    for c in range(C):
        for e in range(E):
            vol = base[e] * prof[c] * act[e] * k
            ratio = vol / capk[e]
            x = fmin(ratio, 1.4)
            speed = fmax(vfree[e] * (1.0 - 0.55 * (x * x) / 1.96 * 1.6), 5.0)
            occ = 100.0 * fmin(0.95, 0.85 * ratio ** 1.2)
            cong = fmin(fmax(4.0 * (vfree[e] / speed - 1.0), 0.0), 10.0)
            i = (c * E + e) * M
            put(speed, i, 0, e, c, sd, lo, hi, integer, key, emitters, items, times, em_out, it_out, t_out, out)
            put(vol, i + 1, 1, e, c, sd, lo, hi, integer, key, emitters, items, times, em_out, it_out, t_out, out)
            put(occ, i + 2, 2, e, c, sd, lo, hi, integer, key, emitters, items, times, em_out, it_out, t_out, out)
            put(cong, i + 3, 3, e, c, sd, lo, hi, integer, key, emitters, items, times, em_out, it_out, t_out, out)


@njit
def water_readings(res_prof, work_prof, a, h, b, burst, rain,
                   sd, lo, hi, integer, key, emitters, items, times, em_out, it_out, t_out, out):
    """Water meters: pressure, flow, turbidity, chlorine. ``flow = a * res_prof * h + b * work_prof``
    (residents at home, open jobs); pressure falls with flow over its daily mean; a main burst
    (``burst (C, E)``) cuts pressure and chlorine and raises flow and turbidity."""
    C, E, M = res_prof.shape[0], a.shape[0], 4
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
            pressure = (0.36 - 0.05 * (flow / mean[e] - 1.0)) * (1.0 - 0.6 * cut)
            turb = 0.35 + 15.0 * bu + 0.2 * rain
            chlor = 0.6 * (1.0 - 0.5 * cut)
            i = (c * E + e) * M
            put(pressure, i, 0, e, c, sd, lo, hi, integer, key, emitters, items, times, em_out, it_out, t_out, out)
            put(flow * (1.0 + 0.8 * bu), i + 1, 1, e, c, sd, lo, hi, integer, key, emitters, items, times,
                em_out, it_out, t_out, out)
            put(turb, i + 2, 2, e, c, sd, lo, hi, integer, key, emitters, items, times, em_out, it_out, t_out, out)
            put(chlor, i + 3, 3, e, c, sd, lo, hi, integer, key, emitters, items, times, em_out, it_out, t_out, out)


@njit
def power_readings(res_prof, work_q, a, b, outage, cycle_minutes,
                   sd, lo, hi, integer, key, emitters, items, times, em_out, it_out, t_out, out):
    """Transformers: load, voltage, energy. ``load = (a * res_prof + b * work_q) * (1 - 0.97 outage)``;
    voltage sags with load over its daily mean and is 0 in an outage (``outage (C, E)``, <= 1)."""
    C, E, M = res_prof.shape[0], a.shape[0], 3
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
            volt = (228.0 - 6.0 * load / mean[e] + 6.0) * (1.0 - o)
            i = (c * E + e) * M
            put(load, i, 0, e, c, sd, lo, hi, integer, key, emitters, items, times, em_out, it_out, t_out, out)
            put(volt, i + 1, 1, e, c, sd, lo, hi, integer, key, emitters, items, times, em_out, it_out, t_out, out)
            put(load * cycle_minutes / 60.0, i + 2, 2, e, c, sd, lo, hi, integer, key, emitters, items, times,
                em_out, it_out, t_out, out)


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
