"""Slow, obvious references for engine.detect (plain Python / numpy, no numba).

Each function mirrors one kernel by its definition, not by its implementation tricks:
tails by summing probability masses or integrating densities, the detector update one
series at a time with the formulas of docs/detect.md, the scan by brute force over every
zone and window.
"""

from __future__ import annotations

import math

import numpy as np

CRITICAL, WARN = 0.999, 0.99
SIGMA_PER_MAD = math.sqrt(math.pi / 2)


# ----------------------------------------------------------------------------- special functions

def simpson(f, a, b, n=4000):
    n += n % 2
    h = (b - a) / n
    s = f(a) + f(b)
    s += 4 * sum(f(a + (2 * k - 1) * h) for k in range(1, n // 2 + 1))
    s += 2 * sum(f(a + 2 * k * h) for k in range(1, n // 2))
    return s * h / 3


def poisson_pmf(k, mu):
    return math.exp(-mu + k * math.log(mu) - math.lgamma(k + 1)) if mu > 0 else float(k == 0)


def poisson_cdf(k, mu):
    return math.fsum(poisson_pmf(j, mu) for j in range(int(k) + 1)) if k >= 0 else 0.0


def nbinom_pmf(k, mu, r):
    p = r / (r + mu)
    return math.exp(math.lgamma(k + r) - math.lgamma(r) - math.lgamma(k + 1) + r * math.log(p) + k * math.log1p(-p))


def nbinom_cdf(k, mu, r):
    return math.fsum(nbinom_pmf(j, mu, r) for j in range(int(k) + 1)) if k >= 0 else 0.0


def gammainc_p(a, x):
    """P(a, x) by integrating the gamma density (substitution t = u^2 smooths a < 1)."""
    if x <= 0:
        return 0.0
    g = math.lgamma(a)
    f = lambda u: 2 * u ** (2 * a - 1) * math.exp(-u * u - g) if u > 0 else (2.0 * math.exp(-g) if a == 0.5 else 0.0)  # noqa: E731
    return simpson(f, 0.0, math.sqrt(x))


def betainc(a, b, x, n=4000):
    """I_x(a, b) by integrating the beta density after t = u^4 (smooth at 0 for any a >= 1).

    Above x = 1/2 by the symmetry ``I_x(a, b) = 1 - I_{1-x}(b, a)``: the density's
    ``(1 - t)^(b - 1)`` is steep near t = 1 for small b (Simpson was off by 1e-6 at a = 8,
    b = 1.5, x = 0.999)."""
    if x > 0.5:
        return 1.0 - betainc(b, a, 1.0 - x, n)
    lb = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    def f(u):
        if u <= 0.0:
            return 0.0
        t = u ** 4
        return 4.0 * math.exp((4 * a - 1) * math.log(u) + (b - 1) * math.log1p(-t) - lb) if t < 1.0 else 0.0
    return simpson(f, 0.0, x ** 0.25, n) if x > 0 else 0.0


def t_sf(t, nu):
    """P(T > t) for Student's t with ``nu`` degrees of freedom: ``I_x(nu / 2, 1 / 2) / 2`` at
    ``x = nu / (nu + t^2)`` (the beta density integrated, :func:`betainc`). Integrating the t
    density from 0 to ``t`` instead loses the far tail: at ``t`` ~ 1e8 (a held feed's spread ~0)
    its Simpson steps are wider than the density and the "tail" came out ~-2e8. 400 Simpson
    steps: within 2e-11 of scipy's ``t.sf`` for ``nu`` 1-10 and ``|t|`` up to 1e8 (4,000: 1e-14,
    ten times slower; the update reference calls this for every scored series)."""
    half = 0.5 * betainc(nu / 2, 0.5, nu / (nu + t * t), 400)
    return half if t >= 0 else 1.0 - half


# ----------------------------------------------------------------------------- detector scores

def t4_sf(t):
    return t_sf(t, 4.0)


def t_score(z, direction):
    if direction == 1:
        return 1 - t4_sf(z) if z > 0 else 0.0
    if direction == -1:
        return 1 - t4_sf(-z) if z < 0 else 0.0
    return 1 - 2 * t4_sf(abs(z))


def count_score(x, mu, var, direction, overdispersion):
    k = max(math.floor(x + 0.5), 0)
    if var > overdispersion * mu:
        r = mu * mu / (var - mu)
        cdf = lambda j: nbinom_cdf(j, mu, r)  # noqa: E731
    else:
        cdf = lambda j: poisson_cdf(j, mu)  # noqa: E731
    if direction == 1:
        return 0.0 if k <= mu else cdf(k - 1)
    if direction == -1:
        return 0.0 if k >= mu else 1 - cdf(k)
    p = 2 * min(cdf(k), 1 - cdf(k - 1))
    return max(1 - p, 0.0)


def cusum_tail(y, n=None):
    """The CUSUM score's ``exp(y)`` (``y <= 0``) as the engine defines it (nineteenth session):
    ``t = y log2(e)`` clamped at -58, ``t = n + f`` with ``n = floor(t + 1/2)``, and
    ``2**t ~ 2**n (1 + f (c1 + f (c2 + f (c3 + f c4))))``, a minimax quartic (relative error <= 2.84e-6).
    At a half-integer ``t`` the two ``n`` differ by 5.6e-6 relative (the polynomial's ends): ``n`` may
    be given there (float32 rounding of ``t + 1/2`` may take either)."""
    t = max(y / math.log(2.0), -58.0)
    n = math.floor(t + 0.5) if n is None else n
    f = t - n
    c1, c2, c3, c4 = 0.6931241154670715, 0.24024106562137604, 0.05590682849287987, 0.009582576341927052
    return math.ldexp(1.0 + f * (c1 + f * (c2 + f * (c3 + f * c4))), n)


def count_first_mass(t, n=None):
    """The vectorised count tail's first mass ``2**t`` (``t = r log2 p`` or ``-mu log2 e``, ``t <= 0``) as the
    engine defines it (twentieth session): ``t`` clamped at -58, ``t = n + f`` with ``n = floor(t + 1/2)``,
    ``2**t ~ 2**n (1 + f (c1 + f (c2 + f (c3 + f (c4 + f c5)))))``, a minimax quintic (relative error
    <= 1.63e-7, below the tail's float32 rounding: :func:`count_score`, the exact tail, stays the count
    tail's reference). ``n`` may be given at a half-integer ``t`` (as :func:`cusum_tail`)."""
    t = max(t, -58.0)
    n = math.floor(t + 0.5) if n is None else n
    f = t - n
    c1, c2, c3, c4, c5 = (0.6931465864181519, 0.24022166430950165, 0.055510472506284714, 0.009674952365458012,
                          0.0013202981790527701)
    return math.ldexp(1.0 + f * (c1 + f * (c2 + f * (c3 + f * (c4 + f * c5)))), n)


def cusum_score(cp, cn, direction, k):
    if direction == 1:
        return 1 - cusum_tail(-2 * k * cp)
    if direction == -1:
        return 1 - cusum_tail(-2 * k * cn)
    return max(1 - 2 * cusum_tail(-2 * k * max(cp, cn)), 0.0)


def threshold_score(x, warn, alarm):
    if math.isnan(warn) or math.isnan(x):
        return math.nan
    up = alarm > warn
    if (x >= alarm) if up else (x <= alarm):
        return CRITICAL
    if (x >= warn) if up else (x <= warn):
        return WARN + (CRITICAL - WARN) * abs(x - warn) / abs(alarm - warn)
    return 0.0


def value_tag(x):
    """The four bytes of float32 ``x`` XOR-folded (the engine's repeat tag)."""
    b = np.array([x], dtype=np.float32).view(np.uint32)[0].tobytes()
    return b[0] ^ b[1] ^ b[2] ^ b[3]


def _count_floors(st, i, r, par):
    """A count series' learned state: its level (expected count off the profile) at least 0, its
    spread (the shape's unit) at least the Poisson spread ``sqrt(max(level, count_mu_floor))``."""
    st["level"][i, r] = max(st["level"][i, r], 0.0)
    st["spread"][i, r] = max(st["spread"][i, r], math.sqrt(max(st["level"][i, r], par["count_mu_floor"])))


# ----------------------------------------------------------------------------- scan

def zones_reference(indptr, indices, x, y, K):
    """Same growth rule as build_zones, written as a search over all regions each step."""
    n = len(indptr) - 1
    adj = [set(indices[indptr[i]:indptr[i + 1]].tolist()) for i in range(n)]
    out = []
    for c in range(n):
        z = [c]
        while len(z) < K:
            cand = [j for j in range(n) if j not in z and any(j in adj[m] for m in z)]
            if not cand:
                break
            z.append(min(cand, key=lambda j: ((x[j] - x[c]) ** 2 + (y[j] - y[c]) ** 2, j)))
        out.append(z)
    return out


def scan_max_llr(obs, exp, zones):
    """Brute force: (max LLR, centre, size, window) over every zone prefix and window.

    ``obs``, ``exp``: (W, n_reg), row 0 the newest cycle.
    """
    best = (0.0, -1, -1, -1)
    for c, z in enumerate(zones):
        for s in range(1, len(z) + 1):
            members = z[:s]
            for w in range(1, obs.shape[0] + 1):
                o = float(obs[:w, members].sum())
                m = float(exp[:w, members].sum())
                v = o * math.log(o / m) - (o - m) if (o > m and m > 0) else 0.0
                if v > best[0] + 1e-12:
                    best = (v, c, s, w)
    return best


# ----------------------------------------------------------------------------- scan Monte Carlo

_M64 = (1 << 64) - 1
_GAMMA = 0x9E3779B97F4A7C15


def _mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


class SplitMix:
    """splitmix64 in Python integers; ``uniform()`` in (0, 1) as the engine's ``_uniform``."""

    def __init__(self, seed):
        self.state = int(seed) & _M64

    def uniform(self):
        self.state = (self.state + _GAMMA) & _M64
        z = _mix64(self.state)
        return float((z >> 11) + 1) * (1.0 / 9007199254740993.0)


def poisson_draw(stream, m):
    """Poisson(m) by inversion (pmf recurrence from exp(-m)); normal approximation above 50."""
    if m <= 0.0:
        return 0.0
    if m > 50.0:
        u1, u2 = stream.uniform(), stream.uniform()
        g = math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)
        return max(math.floor(m + math.sqrt(m) * g + 0.5), 0.0)
    u = stream.uniform()
    k, p = 0.0, math.exp(-m)
    f = p
    while u > f and k < 1000.0:
        k += 1.0
        p *= m / k
        f += p
    return k


def _zone_llrs(C, M, zones, table):
    """LLR of every (zone, size, window): ``C``, ``M`` (fill, n) cumulative over windows, as floats."""
    out = {}
    for zc, z in enumerate(zones):
        for w in range(C.shape[0]):
            c = m = 0.0
            for s, r in enumerate(z):
                c += C[w, r]
                m += M[w, r]
                if c > m and m > 0.0:
                    ic = int(c)
                    xl = table[ic] if (ic < len(table) and ic == c) else c * math.log(c)
                    out[zc, s, w] = float(xl - c * math.log(m) - c + m)
                else:
                    out[zc, s, w] = 0.0
    return out


def scan_reference(obs, exp, zones, replicas, seed, alpha, table, max_clusters=3):
    """The scan of one indicator at one cycle, written out: clusters and p-values.

    ``obs``, ``exp``: (fill, n) float32, row 0 the newest cycle; ``zones``: lists of regions;
    ``seed``: the indicator-cycle seed. Every replica draws every cell (w, then r) and scans
    every zone; ``p = h / k`` for a cluster whose ``h = floor(alpha R) + 1``-th exceedance came
    at replica ``k``, else ``(1 + E) / (R + 1)``. Returns an array (max_clusters, 5) as the
    engine's ``found`` (llr, p, centre, size, window; NaN rows when fewer).
    """
    fill, n = obs.shape
    ob = obs.astype(np.float64)
    ex = exp.astype(np.float64)
    C = np.zeros((fill, n))
    M = np.zeros((fill, n))
    for w in range(fill):
        for r in range(n):
            C[w, r] = ob[w, r] + (C[w - 1, r] if w else 0.0)
            M[w, r] = ex[w, r] + (M[w - 1, r] if w else 0.0)
    L = _zone_llrs(C, M, zones, table)
    found = np.full((max_clusters, 5), np.nan)
    taken = set()
    clusters = []
    for q in range(max_clusters):
        best = (0.0, -1, -1, -1)
        for zc, z in enumerate(zones):
            for s in range(len(z)):
                if any(r in taken for r in z[:s + 1]):
                    break
                for w in range(fill):
                    if L[zc, s, w] > best[0]:
                        best = (L[zc, s, w], zc, s, w)
        if best[1] < 0:
            break
        clusters.append(best)
        taken |= set(zones[best[1]][:best[2] + 1])
    if not clusters:
        return found
    h = int(math.floor(alpha * replicas)) + 1
    exceed = [0] * len(clusters)
    stop = [0] * len(clusters)
    stream = SplitMix(seed)
    for k in range(1, replicas + 1):
        X = np.zeros((fill, n))
        for w in range(fill):
            for r in range(n):
                X[w, r] = poisson_draw(stream, float(ex[w, r]))
        Cr = np.cumsum(X, axis=0)
        rmax = max(_zone_llrs(Cr, M, zones, table).values())
        for q, cl in enumerate(clusters):
            if rmax >= cl[0] and not stop[q]:
                exceed[q] += 1
                if exceed[q] == h:
                    stop[q] = k
    for q, (v, zc, s, w) in enumerate(clusters):
        p = h / stop[q] if stop[q] else (1.0 + exceed[q]) / (replicas + 1.0)
        found[q] = (v, p, zc, s + 1, w + 1)
    return found


def update_reference(V, phase_d, phase_w, det, par):
    """One cycle of detectors 1-5 for every series, one at a time; mutates ``det.state`` copies.

    With the weekly rows' daily fallback (``par["weekly_fallback"]``, city rules): the profile row holds the hour-of-week bins, then 2 x per_day daily bins; a
    weekly row whose hour-of-week bin has had fewer than ceil(warmup / per_week) visits is
    judged and learned against its daily bin (the weekly bin learns alongside) by the value's own
    tail only (its CUSUM held: a daily profile cannot know a weekday's level, and a day's offset is
    no incident), and its series are warm after ceil(warmup / 7) observations. With the city
    rules a region's push on a bin being set (first two visits) is clipped at 64 of its spreads.

    ``det`` is an engine Detectors (only its configuration arrays and a *copy* of its state
    are used); returns (score, code, new_state_arrays).
    """
    st = {k: v.astype(np.float64) if v.dtype.kind == "f" else v.astype(np.int64) for k, v in det.state.arrays().items()}
    n_ind, n_reg = V.shape
    # the engine keeps only the bad side's sum (and C- of two-sided rows): both sums here, the
    # unkept side at 0 (it never enters a one-sided score)
    down = det.direction == -1
    both = np.flatnonzero(det.direction == 0)
    st["cusum_pos"] = np.where(down[:, None], 0.0, st["cusum"])
    st["cusum_neg"], neg_rows = np.zeros((n_ind, n_reg)), st["cusum_neg"]
    st["cusum_neg"][down] = st["cusum"][down]
    st["cusum_neg"][both] = neg_rows[det.both_slot[both]]
    score = np.full((n_ind, n_reg), np.nan)
    code = np.zeros((n_ind, n_reg), dtype=np.int64)
    for i in range(n_ind):
        season, dirn, cnt = det.season[i], det.direction[i], det.is_count[i]
        # the city rules' learning (a settling bin keeps the spread that scales it; bounded pushes
        # while a bin is set) as the kernel sees them: through the row's hold mode, which is > 0
        # exactly under the city rules (Detectors.hold_mode; a test may set it by hand)
        rules = det.hold_mode[i] > 0
        ph = phase_w if season == 2 else phase_d
        ph2 = None                                  # the weekly bin learning beside its fallback
        warmup = det.warmup[i]
        width = st["shape"].shape[1]
        if season == 2 and det.city_rules and par.get("weekly_fallback", True) and width % 9 == 0:
            per_week = width - 2 * (width // 9)
            warmup = math.ceil(det.warmup[i] / 7)
            if st["visits"][i, phase_w] < math.ceil(det.warmup[i] / per_week):
                ph, ph2 = per_week + phase_d, phase_w
        sh = st["shape"][i, ph] if season > 0 else 0.0
        deltas2 = []
        z = np.full(n_reg, np.nan)
        deltas = []
        # city rules: no score on a profile bin never visited (learning goes on)
        judged = not (det.city_rules and season > 0 and st["visits"][i, ph] == 0)
        for r in range(n_reg):
            x = float(V[i, r])
            n = st["nobs"][i, r]
            # a non-count series repeating its non-zero value exactly was not updated: scored, not learned
            tag = value_tag(x) if not math.isnan(x) else st["last_tag"][i, r]
            rep = (det.hold_mode[i] > 0 and (not cnt) and not math.isnan(x) and n > 0
                   and (np.float32(x) != 0 or det.hold_mode[i] == 2) and tag == st["last_tag"][i, r])
            st["last_tag"][i, r] = tag
            best, c = threshold_score(x, det.warn[i], det.alarm[i]), 4
            L, D, S = st["level"][i, r], st["spread"][i, r], st["scale"][i, r]
            sigma = max(SIGMA_PER_MAD * S, par["floor_spread"] * D + par["floor_level"] * abs(L) + 1e-12)
            e = L + D * sh
            mu = max(e, par["count_mu_floor"]) if cnt else e
            sd = math.sqrt(max(sigma ** 2, mu)) if cnt else sigma
            if math.isnan(x) or n == 0:
                if not math.isnan(x):
                    st["level"][i, r], st["spread"][i, r], st["scale"][i, r], st["nobs"][i, r] = x, 0.0, 0.0, 1
                    if cnt:
                        _count_floors(st, i, r, par)
                score[i, r], code[i, r] = best, (c if best > 0 else 0)
                continue
            warm = n >= warmup
            # scored from the observation that completes the warm-up; a held repeat once it is learned
            warm_s = warm or (not rep and n + 1 >= warmup)
            zr = (x - mu) / sd
            if warm_s and judged:
                s1 = count_score(x, mu, sigma ** 2, dirn, par["overdispersion"]) if cnt else t_score(zr, dirn)
                if math.isnan(best) or s1 > best:
                    best, c = s1, (2 if cnt else 1)
                zc = min(max(zr, -par["cusum_clip"]), par["cusum_clip"])
                cap = par["cusum_cap"]
                cp = min(max(0.0, st["cusum_pos"][i, r] + zc - par["cusum_k"]), cap)
                cn = min(max(0.0, st["cusum_neg"][i, r] - zc - par["cusum_k"]), cap)
                if rep:
                    cp, cn = st["cusum_pos"][i, r], st["cusum_neg"][i, r]
                if ph2 is None:          # no CUSUM against the daily fallback of a weekly row (held)
                    st["cusum_pos"][i, r], st["cusum_neg"][i, r] = cp, cn
                    # a rolling window spanning ``span`` cycles: the stationary tail is exp(-2 k C / span)
                    s3 = cusum_score(cp, cn, dirn, par["cusum_k"] / float(det.span[i]))
                    if s3 > best:
                        best, c = s3, 3
                z[r] = zr
            score[i, r], code[i, r] = best, (c if best > 0 else 0)
            if rep:
                continue
            res, dev = x - e, abs(x - L)
            if warm:
                hub = par["huber"] * sigma
                res = min(max(res, -hub), hub)
                dev = min(max(dev, D - hub), D + hub)
            rate = lambda a: max(a, 1.0 / (n + 1))  # noqa: E731
            bin_set = season > 0 and st["visits"][i, ph] >= 2
            if judged or not warm:  # (warm on an unvisited bin: only the profile learns)
                st["level"][i, r] = L + rate(par["level_rate"]) * res
                st["scale"][i, r] = S + rate(par["scale_rate"]) * (abs(res) - S)
                if bin_set and warm and par["amplitude_rate"] > 0:   # D = the region's amplitude, robust LMS
                    st["spread"][i, r] = max(D + par["amplitude_rate"] * res * sh / max(sh * sh, 1.0), 0.0)
                elif rules and season > 0 and warm:     # a settling bin: the spread that scales it kept
                    pass
                else:
                    st["spread"][i, r] = D + rate(par["spread_rate"]) * (dev - D)
                if cnt:
                    _count_floors(st, i, r, par)
                st["nobs"][i, r] = min(n + 1, 32767)
            big = 64.0 if rules else 1e300    # city rules: bounded pushes while a bin is set
            if season > 0 and D > 0:
                if not bin_set:
                    c = big
                elif warm:
                    c = min(par["shape_clip"] * sigma / D, par["shape_clip"])
                else:
                    c = par["shape_clip"]
                deltas.append(min(max((x - L) / D - sh, -c), c))
                if ph2 is not None:
                    if st["visits"][i, ph2] < 2:
                        c2 = big
                    elif warm:
                        c2 = min(par["shape_clip"] * sigma / D, par["shape_clip"])
                    else:
                        c2 = par["shape_clip"]
                    deltas2.append(min(max((x - L) / D - st["shape"][i, ph2], -c2), c2))
        for p, ds in ((ph, deltas), (ph2, deltas2)):
            if ds:
                v = st["visits"][i, p]
                rt = 1.0 if v == 1 else max(par["shape_rate"], 1.0 / (v + 1))    # visit 2 overwrites visit 1
                st["shape"][i, p] = st["shape"][i, p] + rt * (sum(ds) / len(ds))
                st["visits"][i, p] = v + 1
        if det.spatial and n_reg > 1:
            for r in range(n_reg):
                if math.isnan(z[r]):
                    continue
                nb = [z[j] for j in det.adj_idx[det.adj_ptr[r]:det.adj_ptr[r + 1]] if not math.isnan(z[j])]
                if len(nb) < par["spatial_min_neighbours"]:
                    continue
                clip = lambda q: min(max(q, -6.0), 6.0)  # noqa: E731
                d = (clip(z[r]) - sum(clip(q) for q in nb) / len(nb)) / math.sqrt(1 + 1 / len(nb))
                s5 = t_score(d, det.direction[i])
                if math.isnan(score[i, r]) or s5 > score[i, r]:
                    score[i, r], code[i, r] = s5, 5
        # a crossed catalog level drives its row whatever the statistical scores (kernels._thr_pass)
        for r in range(n_reg):
            thr = threshold_score(float(V[i, r]), det.warn[i], det.alarm[i])
            if thr >= WARN:
                score[i, r], code[i, r] = thr, 4
    st["cusum"] = np.where(down[:, None], st["cusum_neg"], st.pop("cusum_pos"))
    neg_rows[det.both_slot[both]] = st["cusum_neg"][both]
    st["cusum_neg"] = neg_rows
    return score, code, st
