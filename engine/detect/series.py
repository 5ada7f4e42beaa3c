"""One series at a time: the engine's detector kernels on a 1 indicator x 1 region problem.

:func:`score_series` runs two models of the series through the catalog's per-cycle kernel
(:func:`engine.detect.kernels.step_indicator`): a seasonal one (profile from the timestamps'
spacing, slow level) and a local one (no profile, fast level); by default each model's scores
go through the anomaly-likelihood layer (:mod:`engine.detect.likelihood`) and the larger of
the two is returned. :func:`alert_onsets` turns scores into the alerts the engine would raise
(hysteresis: an alert opens when the score reaches ``WARN`` and closes once it has stayed
below ``CLEAR`` for ``clear_cycles`` cycles; optionally a holdoff after each raised alert),
which is what ``cityvitals nab`` writes.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from engine.config import njit
from engine.detect.kernels import COUNT_SCRATCH, NOBS_MAX, _step
from engine.detect.params import DetectorParams
from engine.levels import CLEAR, WARN

__all__ = ["LOCAL_DEFAULTS", "NAB_HOLDOFF", "SERIES_DEFAULTS", "alert_onsets", "choose_seasonality", "score_series"]

#: detector parameters of the **seasonal model** :func:`score_series` uses unless told
#: otherwise (measured on NAB, docs/detect.md). One series has no neighbours to share a
#: seasonal shape with: its level moves slower than a season (``level_rate`` 0.003: at 0.02
#: the level chased the daily swing and traded that error with the shape, which diverged),
#: its shape learns faster and unclipped (``shape_rate`` 0.2, ``shape_clip`` 1e6) and ``D``
#: stays the mean absolute deviation (``amplitude_rate`` 0); residuals are clipped later
#: (``huber`` 5) and the scale learns slowly (``scale_rate`` 0.005: at 0.02 a sustained
#: shift clipped at 5 sigma inflated ``S`` by ~10 % a cycle and hid itself within ~20
#: cycles). The CUSUM is off (``cusum_k`` 50 exceeds every clipped residual): the
#: likelihood layer's short-term average of the surprise does its job, and a CUSUM held
#: high through a stretch of misfit blinds the layer. A weekly series is judged against a
#: daily (weekday / weekend) profile until its hour-of-week bins have been visited
#: (``weekly_fallback``, the catalog's mechanism, :func:`engine.detect.kernels._step`): without
#: it the first week is scored against the level alone (blind to a daily swing) and the second
#: against bins set by one visit each, learned while the level was still settling.
SERIES_DEFAULTS = {"level_rate": 0.003, "shape_rate": 0.2, "shape_clip": 1e6, "amplitude_rate": 0.0,
                   "huber": 5.0, "cusum_k": 50.0, "scale_rate": 0.005, "weekly_fallback": True}

#: parameters of the **local model** :func:`score_series` runs next to the seasonal one: the
#: same kernel without a profile and with a fast level (``level_rate`` 0.3, an EWMA over the
#: last ~3-6 cycles), so its residual is the surprise of a value against the recent values
#: (a jump, a spike, a dropout), where the slow seasonal level only sees a misfit.
LOCAL_DEFAULTS = {**SERIES_DEFAULTS, "level_rate": 0.3}

#: cycles after an alert opens during which :func:`alert_onsets` (as ``cityvitals nab``
#: calls it) opens no new one: one alert per episode, even when the score dips below
#: ``CLEAR`` and rises again inside it
NAB_HOLDOFF = 100

#: profile-bin widths (minutes) :func:`choose_seasonality` picks from: the spacing of the
#: series, rounded down to one of these (each divides a day)
BIN_WIDTHS = (5, 10, 15, 20, 30, 60)


def _ns_index(timestamps) -> pd.DatetimeIndex:
    """Timestamps as a nanosecond DatetimeIndex (pandas >= 3 parses to microseconds: ``asi8``
    is in the index's own unit, so integer arithmetic on it needs one fixed unit)."""
    t = pd.DatetimeIndex(pd.to_datetime(timestamps))
    if t.tz is not None:
        t = t.tz_localize(None)
    return t.as_unit("ns")


def choose_seasonality(timestamps) -> tuple[str, int]:
    """Seasonality and profile-bin width (minutes) suited to a series' timestamps.

    A daily profile when the series spans at least 3 days with a spacing of at most 2
    hours; weekly when it spans at least 3 weeks as well; none otherwise. Bins are as wide
    as the spacing (rounded down to one of :data:`BIN_WIDTHS`, 5 to 60 minutes): one
    series has nobody to share a bin's error with, and a wide bin mixes the two sides of
    every sharp daily edge.

    >>> t = pd.date_range("2024-01-01", periods=2000, freq="5min")
    >>> choose_seasonality(t)
    ('daily', 5)
    >>> choose_seasonality(pd.date_range("2024-01-01", periods=2000, freq="30min"))
    ('weekly', 30)
    """
    t = _ns_index(timestamps)
    if len(t) < 3:
        return "none", 60
    step = np.median(np.diff(t.asi8)) / 60e9
    span_days = (t[-1] - t[0]).total_seconds() / 86400
    if step <= 0 or step > 120 or span_days < 3:
        return "none", 60
    width = max([w for w in BIN_WIDTHS if w <= step] or [BIN_WIDTHS[0]])
    return ("weekly" if span_days >= 21 else "daily"), width


def score_series(values, timestamps, *, direction: str = "both", seasonality: str | None = None,
                 count: bool = False, warmup: int | None = None, phase_minutes: int | None = None,
                 likelihood: bool = True, likelihood_params: dict | None = None, local: bool | dict = True,
                 **config) -> np.ndarray:
    """Scores of one series, from the same kernels the engine runs on the whole city.

    Two models of the series run through the detector kernels (each a 1 x 1 problem): the
    **seasonal model** (profile from :func:`choose_seasonality`, slow level,
    :data:`SERIES_DEFAULTS`) and the **local model** (no profile, fast level,
    :data:`LOCAL_DEFAULTS`); each model's scores go through its own anomaly-likelihood
    layer and the series' score is the larger of the two.

    Parameters
    ----------
    values : 1-D array of numbers (NaN: missing)
    timestamps : 1-D array of times, in order (a repeated time is taken as 1 microsecond later)
    direction : {"both", "up_bad", "down_bad"}
    seasonality : {"none", "daily", "weekly"}, optional
        Profile of the seasonal model; default :func:`choose_seasonality`.
    count : bool
        Treat values as event counts (count detector instead of the t score).
    warmup : int, optional
        Cycles before scoring; default NAB's probationary period, ``min(15 % of the
        series, 750)``. With ``likelihood``, the seasonal model's detectors warm up in its
        first half, the local model's (no profile) for the catalog's non-seasonal warm-up
        (``DetectorParams.warmup``, 16 cycles, at most that half), and each model's
        likelihood layer learns over the rest (its ``learn``).
    likelihood : bool
        Return the anomaly-likelihood layer's scores (:mod:`engine.detect.likelihood`)
        over the detector scores; False: the detector scores themselves.
    likelihood_params : dict, optional
        :class:`engine.detect.params.LikelihoodParams` fields (``learn`` is set from
        ``warmup``).
    local : bool or dict
        Run the local model too (True: :data:`LOCAL_DEFAULTS`; a dict: fields that
        override them, ``warmup`` among them: its detector warm-up with ``likelihood``);
        False: the seasonal model alone.
    **config
        :class:`engine.detect.DetectorParams` fields of the seasonal model (default
        :data:`SERIES_DEFAULTS`).

    Returns
    -------
    float32 array of scores (NaN during warm-up).

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> x = rng.normal(size=2000); x[1600] = 12.0
    >>> t = pd.date_range("2024-01-01", periods=2000, freq="5min")
    >>> s = score_series(x, t)
    >>> bool(np.isnan(s[:300]).all()), bool(s[1600] > 0.99)
    (True, True)
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError(f"values must be one series (1-D), got shape {v.shape}")
    t = _ns_index(timestamps)
    if len(t) != len(v):
        raise ValueError(f"{len(v)} values but {len(t)} timestamps")
    if len(v) == 0:
        return np.zeros(0, dtype=np.float32)
    if not isinstance(local, (bool, dict)):
        raise ValueError(f"local must be True, False or a dict of detector parameters, got {local!r}")
    auto_season, auto_width = choose_seasonality(t)
    seasonality = seasonality or auto_season
    phase_minutes = phase_minutes or auto_width
    # Rows are cycles: a repeated or backward timestamp (real files have them) becomes
    # 1 microsecond after the previous row; phases still come from the timestamps.
    ns = np.maximum.accumulate(t.asi8 - np.arange(len(t), dtype=np.int64) * 1000)
    ns += np.arange(len(t), dtype=np.int64) * 1000
    times = pd.DatetimeIndex(ns).values
    if warmup is None:
        warmup = min(int(0.15 * len(v)), 750)
    warmup = max(int(warmup), 2 if likelihood else 1)
    det_warmup = warmup // 2 if likelihood else warmup
    # the kernel scores from the observation that completes its warm-up (the ``warmup``-th):
    # a kernel warm-up of dw + 1 leaves rows 0 .. dw - 1 unscored, and the layer learns rows
    # dw .. warmup - 1, so nothing scores inside the probationary period
    models = [(seasonality, phase_minutes, {**SERIES_DEFAULTS, **config})]
    if local is not False:
        models.append(("none", phase_minutes, {**LOCAL_DEFAULTS, **(local if isinstance(local, dict) else {})}))
    out = None
    for season, width, cfg in models:
        # A model without a profile (the local model) warms up as the catalog warms up a
        # non-seasonal series (``DetectorParams.warmup`` cycles, 16; at most half the
        # probation): its states are running means that settle in a few cycles. Its layer
        # learns over the rest of the probation, about twice the cycles a half would leave it:
        # the layer's learned spread is the weak link (``n_eff`` ~ 0.1 a cycle).
        dw = det_warmup
        if likelihood and season == "none":
            dw = min(int(cfg.get("warmup", DetectorParams.warmup)), det_warmup)
        scores = _model_scores(v, times, direction, season, count, width, dw + 1, cfg)
        if likelihood:
            from engine.detect.likelihood import Likelihood

            lp = {**(likelihood_params or {}), "learn": warmup - dw}
            scores = Likelihood(1, 1, **lp).run(scores)
        s = scores[:, 0, 0]
        out = s if out is None else np.fmax(out, s)
    return out


def _model_scores(v, times, direction, seasonality, count, phase_minutes, warmup, config) -> np.ndarray:
    """Detector scores (n_t, 1, 1) of one model of the series: the catalog's kernel
    (:func:`engine.detect.kernels.step_indicator`'s ``_step``) on a 1 x 1 problem, cycle after
    cycle in one compiled loop (:func:`_series_kernel`; equal to ``Detectors.run`` without its
    per-cycle Python work). A weekly model with ``weekly_fallback`` gets the kernel's daily
    fallback (weekday / weekend bins after the hour-of-week ones, as the catalog path lays
    them out); the kernel then reads ``warmup`` as a weekly warm-up (its series warm after a
    seventh of it, its weekly bins judged once visited ``ceil(warmup / per_week)`` times), so
    it is given ``7 warmup``: warm after ``warmup`` cycles as the other models, each weekly
    bin taking over after as many visits as the warm-up spans days (rounded up)."""
    from engine.detect.detectors import Detectors
    from engine.detect.seasonal import phase_bins

    det = Detectors.from_spec(direction=[direction], seasonality=[seasonality], count=[count], n_reg=1,
                              cycle=pd.Timedelta(1, "us"), phase_minutes=phase_minutes, spatial=False,
                              warmup_cycles=warmup, **config)
    dbin, wbin = phase_bins(times, det.phase_minutes)
    weekly = det.season[0] == 2
    phase = np.ascontiguousarray(wbin if weekly else dbin, dtype=np.int64)
    kw = int(det.warmup[0])
    if weekly and det.params.weekly_fallback:
        per_day = 1440 // det.phase_minutes
        phase_fb = np.ascontiguousarray(dbin + per_day * (wbin // per_day >= 5), dtype=np.int64)
        kw = 7 * kw
    else:
        phase_fb = np.full(len(v), -1, dtype=np.int64)
    s = det.state
    out = np.empty((len(v), 1, 1), dtype=np.float32)
    kernel = _series_kernel_count if det.is_count[0] else _series_kernel_plain
    kernel(np.ascontiguousarray(v, dtype=np.float64), phase, phase_fb, int(det.season[0]), int(det.direction[0]),
           kw, det.params.vector(), s.level[0], s.spread[0], s.scale[0], s.cusum_pos[0], s.cusum_neg[0], s.nobs[0],
           s.shape[0], s.visits[0], out[:, 0, 0])
    return out


@njit
def _series_kernel_plain(x, phase, phase_fb, season, direction, warmup, par, L, D, S, CP, CN, N, shape, visits,
                         out):  # pragma: no cover - compiled
    """:func:`_series_kernel` of a series that is not a count. ``is_count`` reaches :func:`_step` as a
    literal ``False``, on which its count tail compiles to nothing (:func:`engine.detect.kernels._count_tail`),
    so the cold ``cityvitals nab`` (every NAB series: not counts) compiles none of the count pass (~12 of its
    ~20 s of compilation, docs/detect.md, "The NAB path's cold compile ... (twenty-second session)")."""
    _series_kernel(x, phase, phase_fb, season, direction, False, warmup, par, L, D, S, CP, CN, N, shape, visits,
                   out)


@njit
def _series_kernel_count(x, phase, phase_fb, season, direction, warmup, par, L, D, S, CP, CN, N, shape, visits,
                         out):  # pragma: no cover - compiled
    """:func:`_series_kernel` of a count series (``is_count`` a literal ``True``)."""
    _series_kernel(x, phase, phase_fb, season, direction, True, warmup, par, L, D, S, CP, CN, N, shape, visits,
                   out)


@njit
def _series_kernel(x, phase, phase_fb, season, direction, is_count, warmup, par, L, D, S, CP, CN, N, shape,
                   visits, out):  # pragma: no cover - compiled
    """``step_indicator`` for one region over the cycles of ``x`` (n_t) -> ``out`` (n_t, float32);
    ``phase_fb`` the daily fallback bin of a weekly model's cycles (-1: none, ``step_indicator``
    exactly)."""
    z = np.empty(1)
    mu_s = np.empty(1)
    var_s = np.empty(1)
    c3_s = np.empty(1)
    score = np.empty(1, dtype=np.float32)
    code = np.empty(1, dtype=np.int8)
    none32 = np.empty(0, dtype=np.float32)
    scan_mu = np.empty(0)
    adj_ptr = np.zeros(2, dtype=np.int64)
    adj_idx = np.zeros(0, dtype=np.int64)
    cw = np.empty((COUNT_SCRATCH, 1), dtype=np.float32)     # the count pass's scratch (one series)
    ci = np.empty(1, dtype=np.int32)
    for t in range(x.shape[0]):
        _step(x[t:t + 1], phase[t], phase_fb[t], season, direction, is_count, math.nan, math.nan, warmup, 1.0,
              par, L, D, S, CP, CN, N, N, NOBS_MAX + 1, None, shape, visits, adj_ptr, adj_idx, False, z, mu_s,
              var_s, c3_s, cw, ci, score, code, none32, none32, False, scan_mu, False, True, 0)
        out[t] = score[0]


def alert_onsets(scores, threshold: float = WARN, clear: float = CLEAR, clear_cycles: int = 1,
                 holdoff: int = 0, pending: int = 1) -> np.ndarray:
    """The score at cycles where an alert opens, 0 elsewhere.

    An alert opens when the score has been at or above ``threshold`` for ``pending`` cycles in a
    row while no alert is open (a lower score or NaN in between cancels the count); it closes once
    the score has been below ``clear`` (or NaN) for ``clear_cycles`` cycles in a row. One that opens
    within ``holdoff`` cycles of the last raised one is taken as the same episode and not raised.
    Used by ``cityvitals nab`` (with ``holdoff`` :data:`NAB_HOLDOFF`): NAB counts every row above
    the threshold as a detection, the engine raises one alert per episode. On scores without NaN,
    ``holdoff=0`` gives exactly the cycles at which the engine's alert lifecycle
    (:func:`engine.alerts.lifecycle.step`, ``pending_cycles=pending``, ``resolve_cycles=
    clear_cycles``, flap damping off) fires (tested); its production default is ``pending_cycles``
    3, NAB's path uses 1 (docs/detect.md, "NAB, 2026-11-29 (fifth session)").

    >>> alert_onsets(np.array([0.2, 0.995, 0.999, 0.97, 0.5, 0.991, 0.1])).tolist()
    [0.0, 0.995, 0.0, 0.0, 0.0, 0.991, 0.0]
    >>> alert_onsets(np.array([0.2, 0.995, 0.999, 0.97, 0.5, 0.991, 0.1]), holdoff=5).tolist()
    [0.0, 0.995, 0.0, 0.0, 0.0, 0.0, 0.0]
    >>> alert_onsets(np.array([0.2, 0.995, 0.999, 0.97, 0.5, 0.991, 0.1]), pending=2).tolist()
    [0.0, 0.0, 0.999, 0.0, 0.0, 0.0, 0.0]
    """
    if isinstance(holdoff, bool) or not isinstance(holdoff, (int, np.integer)) or holdoff < 0:
        raise ValueError(f"holdoff must be an integer >= 0, got {holdoff!r}")
    if isinstance(pending, bool) or not isinstance(pending, (int, np.integer)) or pending < 1:
        raise ValueError(f"pending must be an integer >= 1, got {pending!r}")
    if isinstance(clear_cycles, bool) or not isinstance(clear_cycles, (int, np.integer)) or clear_cycles < 1:
        raise ValueError(f"clear_cycles must be an integer >= 1, got {clear_cycles!r}")
    s = np.ascontiguousarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise ValueError(f"scores must be one series (1-D), got shape {s.shape}")
    out = np.zeros(len(s), dtype=np.float64)
    _onsets(s, float(threshold), float(clear), int(clear_cycles), int(holdoff), int(pending), out)
    return out


@njit
def _onsets(s, threshold, clear, clear_cycles, holdoff, pending, out):  # pragma: no cover - compiled
    """:func:`alert_onsets`' loop: ``out[k] = s[k]`` where an alert opens."""
    open_ = False
    quiet = 0
    count = 0                              # cycles in a row at or above threshold while closed
    last = -holdoff - 1
    for k in range(s.shape[0]):
        v = s[k]
        ok = v == v
        if open_:
            if ok and v >= clear:
                quiet = 0
            else:
                quiet += 1
                if quiet >= clear_cycles:
                    open_ = False
            continue
        if ok and v >= threshold:
            count += 1
            if count >= pending:
                open_ = True               # within the holdoff: part of the last episode, not raised
                quiet = 0
                count = 0
                if k - last > holdoff:
                    out[k] = v
                    last = k
        else:
            count = 0
