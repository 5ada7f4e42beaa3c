"""Detectors.run into caller buffers (``out``) and with the baselines of every k-th cycle only
(``baseline_every``), as the scenario runner calls it: the same scores, codes and baselines as
fresh outputs and successive updates, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from engine.detect import Detectors


def _pair(**kw):
    from engine.catalog import Catalog
    from engine.city import City

    city = City.synthetic(seed=2, neighbourhoods=30, streets=3, population=100_000)
    cat = Catalog.load()
    keep = [k for k, i in enumerate(cat.indicators) if i.get("cluster_scan")][:3] + list(range(0, 2900, 150))

    class Sub:
        indicators = [cat.indicators[k] for k in keep]

    return [Detectors(Sub, city, cycle="1h", warmup=4, scan_replicas=49, **kw) for _ in range(2)]


@pytest.mark.parametrize("every", [1, 3, 4])
def test_run_baseline_every_into_buffers_equals_updates(every):
    a, b = _pair()
    rng = np.random.default_rng(7)
    n_t = 24
    V = rng.poisson(2.0, size=(n_t, a.n_ind, a.n_reg)).astype(np.float32)
    V[rng.random(V.shape) < 0.2] = np.nan
    V[16:, 0, :4] += 6
    times = np.datetime64("2024-01-01T00:00") + np.arange(n_t) * np.timedelta64(1, "h")
    n_b = 12 // every
    big = (np.full((30, a.n_ind, a.n_reg), -7.0, np.float32), np.full((30, a.n_ind, a.n_reg), 9, np.int8),
           np.full((14, a.n_ind, a.n_reg), -7.0, np.float32), np.full((14, a.n_ind, a.n_reg), -7.0, np.float32))
    got_s, got_d, got_e, got_c = [], [], [], []
    for lo in (0, 12):                      # two parts through the same buffers, as the runner does
        out = (big[0][:12], big[1][:12], big[2][:n_b], big[3][:n_b])
        s, d = a.run(V[lo:lo + 12], times[lo:lo + 12], baseline=True, baseline_every=every, out=out)
        assert np.shares_memory(s, big[0]) and np.shares_memory(d, big[1])
        got_s.append(s.copy()); got_d.append(d.copy()); got_e.append(out[2].copy()); got_c.append(out[3].copy())
    outs = [b.update(V[t], times[t], baseline=True) for t in range(n_t)]
    np.testing.assert_array_equal(np.concatenate(got_s).view(np.int32), np.stack([o[0] for o in outs]).view(np.int32))
    np.testing.assert_array_equal(np.concatenate(got_d), np.stack([o[1] for o in outs]))
    want = [t for t in range(n_t) if t % 12 < n_b * every and t % every == every - 1]
    np.testing.assert_array_equal(np.concatenate(got_e).view(np.int32),
                                  np.stack([outs[t][2]["expected"] for t in want]).view(np.int32))
    np.testing.assert_array_equal(np.concatenate(got_c).view(np.int32),
                                  np.stack([outs[t][2]["scale"] for t in want]).view(np.int32))
    assert a.state.equals(b.state)
    assert (big[2][n_b:] == -7.0).all()                 # nothing written past the views


def test_run_baseline_every_fresh_outputs_and_checks():
    a, b = _pair()
    rng = np.random.default_rng(3)
    V = rng.poisson(2.0, size=(8, a.n_ind, a.n_reg)).astype(np.float32)
    times = np.datetime64("2024-01-01T00:00") + np.arange(8) * np.timedelta64(1, "h")
    s, d, ex = a.run(V, times, baseline=True, baseline_every=4, extra=True)
    s2, d2, ex2 = b.run(V, times, baseline=True, extra=True)
    np.testing.assert_array_equal(s, s2)
    np.testing.assert_array_equal(ex["expected"], ex2["expected"][[3, 7]])
    np.testing.assert_array_equal(ex["scale"], ex2["scale"][[3, 7]])
    assert ex["clusters"] == ex2["clusters"]
    later = times[-1] + np.timedelta64(1, "h")
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="baseline_every"):
            a.run(V[:1], [later], baseline=True, baseline_every=bad)
    shape = (1, a.n_ind, a.n_reg)
    with pytest.raises(ValueError, match="out must be"):
        a.run(V[:1], [later], out=(np.empty(shape, np.float64), np.empty(shape, np.int8)))
    with pytest.raises(ValueError, match="out must be"):
        a.run(V[:1], [later], baseline=True, out=(np.empty(shape, np.float32), np.empty(shape, np.int8)))
    with pytest.raises(ValueError, match="out must be"):
        a.run(V[:2], [later, later + np.timedelta64(1, "h")],
              out=(np.empty((2, a.n_ind, a.n_reg), np.float32)[:, :, ::2], np.empty((2, a.n_ind, a.n_reg), np.int8)))
