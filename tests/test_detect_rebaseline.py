"""engine.detect.rebaseline: reset chosen series of a Detectors instance to a fresh start."""

import numpy as np
import pytest

from engine.detect import Detectors
from engine.detect.rebaseline import rebaseline, state_roles

T0 = np.datetime64("2020-03-02T00:15")
CYCLE = np.timedelta64(15, "m")


def _spec(n_reg=5, **kw):
    base = dict(direction=["up_bad", "both", "down_bad", "both"], seasonality=["none", "none", "daily", "none"],
                count=[False, False, False, True], n_reg=n_reg, spatial=False)
    base.update(kw)
    return Detectors.from_spec(**base)


def _values(n_t, n_ind, n_reg, seed=0):
    rng = np.random.default_rng(seed)
    v = rng.normal(20.0, 2.0, (n_t, n_ind, n_reg))
    v[:, -1] = rng.poisson(3.0, (n_t, n_reg))      # the count row
    return v


def test_reset_series_equal_fresh_state_others_untouched():
    det = _spec()
    fresh = det.state.copy()
    v = _values(300, det.n_ind, det.n_reg)
    det.run(v, T0 + np.arange(300) * CYCLE)
    before = det.state.copy()
    out = rebaseline(det, ["i1", 3], ["r0", "r3"], fresh=fresh)
    assert out["series"] == 4 and out["indicators"] == 2 and out["regions"] == 2
    st, rows, cols = det.state, [1, 3], [0, 3]
    for name in ("level", "spread", "scale", "cusum", "nobs", "last_tag"):
        a, b = getattr(st, name), getattr(before, name)
        assert np.array_equal(a[np.ix_(rows, cols)], getattr(fresh, name)[np.ix_(rows, cols)])
        keep = np.ones(a.shape, dtype=bool)
        keep[np.ix_(rows, cols)] = False
        assert np.array_equal(a[keep], b[keep], equal_nan=True), name
    # the two-sided indicator 1 has its C- in a slot row: reset for the chosen regions only
    slot = det.both_slot[1]
    assert np.all(st.cusum_neg[slot, cols] == 0)
    other = [c for c in range(det.n_reg) if c not in cols]
    assert np.array_equal(st.cusum_neg[slot, other], before.cusum_neg[slot, other])
    assert np.array_equal(st.cusum_neg[det.both_slot[3]], before.cusum_neg[det.both_slot[3]]) or 3 in rows
    # the rows' steady flags are cleared (the kernel reads their counts again); profiles kept
    assert not st.steady[rows].any()
    assert np.array_equal(st.shape, before.shape) and np.array_equal(st.visits, before.visits)
    assert np.array_equal(st.cycle, before.cycle) and np.array_equal(st.ring, before.ring)


def test_reset_series_then_score_like_a_detector_started_at_the_reset():
    """After the reset, a non-seasonal series is judged exactly as by detectors started on that
    cycle: warm-up (no score) first, then baselines learned from the new data only."""
    det = _spec()
    fresh_state = det.state.copy()
    n1, n2 = 260, 120
    v = _values(n1 + n2, det.n_ind, det.n_reg, seed=3)
    v[n1:, :2] += 15.0                               # a scheduled change moves rows 0 and 1 up
    t = T0 + np.arange(n1 + n2) * CYCLE
    det.run(v[:n1], t[:n1])
    assert det.state.steady[[0, 1]].all()            # warm rows, counts frozen
    rebaseline(det, [0, 1, 3], None, fresh=fresh_state)
    s, _ = det.run(v[n1:], t[n1:])
    new = _spec()
    s_new, _ = new.run(v[n1:], t[n1:])
    for i in (0, 1, 3):
        assert np.array_equal(s[:, i], s_new[:, i], equal_nan=True), i
    assert np.isnan(s[: int(new.warmup[0]) - 1, 0]).all()
    # without the reset the same change alarms on the moved rows
    old = _spec()
    old.run(v[:n1], t[:n1])
    s_old, _ = old.run(v[n1:], t[n1:])
    assert np.nanmax(s_old[:, 0]) >= 0.999 and np.nanmax(s[:, 0]) < 0.999


def test_zero_default_equals_empty_state_and_profiles_option():
    det = _spec()
    fresh = det.state.copy()
    det.run(_values(250, det.n_ind, det.n_reg), T0 + np.arange(250) * CYCLE)
    a, b = det.state.copy(), det.state.copy()
    det.state = a
    rebaseline(det, [2], None)
    det.state = b
    rebaseline(det, [2], None, fresh=fresh)
    assert a.equals(b)
    assert b.visits[2].sum() > 0
    rebaseline(det, [2], None, fresh=fresh, profiles=True)
    assert det.state.visits[2].sum() == 0 and np.all(det.state.shape[2] == 0)
    assert det.state.visits[0].sum() == a.visits[0].sum()


def test_scan_rings_reset_per_region():
    n = 6
    indptr = np.array([0, 1, 3, 5, 7, 9, 10])
    indices = np.array([1, 0, 2, 1, 3, 2, 4, 3, 5, 4])
    det = Detectors.from_spec(direction=["up_bad"] * 3, seasonality=["none"] * 3, count=[True] * 3, n_reg=n,
                              cluster=[False, True, True], adjacency=(indptr, indices), spatial=False,
                              scan_replicas=19)
    assert state_roles(det)["scan_obs"] == "slot:scan_slot"
    det.state.scan_obs[:] = 1.0
    det.state.scan_exp[:] = 2.0
    rebaseline(det, [2], [1, 4])
    slot = det.scan_slot[2]
    assert np.all(det.state.scan_obs[slot][:, [1, 4]] == 0) and np.all(det.state.scan_exp[slot][:, [1, 4]] == 0)
    assert np.all(det.state.scan_obs[slot][:, [0, 2, 3, 5]] == 1)
    assert np.all(det.state.scan_obs[det.scan_slot[1]] == 1)


@pytest.mark.parametrize("n_ind", [1, 2])
def test_scalars_untouched_when_the_indicator_count_is_small(n_ind):
    det = Detectors.from_spec(direction=["up_bad"] * n_ind, seasonality=["none"] * n_ind, count=[False] * n_ind,
                              n_reg=3, spatial=False)
    det.run(_values(30, n_ind, 3)[:, :n_ind], T0 + np.arange(30) * CYCLE)
    cycle, ring = det.state.cycle.copy(), det.state.ring.copy()
    roles = state_roles(det)
    assert roles["cycle"] == "scalar" and roles["ring"] == "scalar"
    rebaseline(det, list(range(n_ind)))
    assert np.array_equal(det.state.cycle, cycle) and np.array_equal(det.state.ring, ring)
    assert np.all(det.state.nobs == 0)


def test_profile_not_taken_for_series_when_bins_equal_regions():
    det = Detectors.from_spec(direction=["up_bad", "up_bad"], seasonality=["weekly", "none"], count=[False, False],
                              n_reg=det_bins(), spatial=False)
    roles = state_roles(det)
    assert roles["shape"] == "profile" and roles["visits"] == "profile" and roles["level"] == "series"


def det_bins():
    return _spec().state.shape.shape[1]


def test_errors_name_the_value():
    det = _spec()
    with pytest.raises(ValueError, match="unknown indicator 'nope'"):
        rebaseline(det, ["nope"])
    with pytest.raises(ValueError, match="region position 9 is out of range 0..4"):
        rebaseline(det, [0], [9])
    other = _spec(n_reg=4)
    with pytest.raises(ValueError, match="does not match the detectors' layout at 'level'"):
        rebaseline(det, [0], fresh=other.state)


def test_an_unexplained_region_array_is_reported_not_guessed():
    det = _spec()
    det.both_slot_copy_slot = det.both_slot.copy()   # two maps of the same size, neither named like cusum_neg
    with pytest.raises(ValueError, match="more than one slot map"):
        state_roles(det)
