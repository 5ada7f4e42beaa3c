"""Every numba kernel of engine/sim equals its plain-numpy reference on random inputs."""

import numpy as np
import pytest

from engine.sim import seir
from engine.sim.prem import prem_kernel
from sim_reference import (epidemic_day_ref, force_of_infection_ref, prem_kernel_ref, transition_ref)


def _random_csr(rng, n_rows, n_cols, density=0.3):
    mask = rng.random((n_rows, n_cols)) < density
    rows, cols = np.nonzero(mask)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_rows))]).astype(np.int64)
    return indptr, cols.astype(np.int64), rng.random(cols.size) * 100, rng.random(cols.size)


def _random_inputs(seed, R=7, V=5, A=16):
    rng = np.random.default_rng(seed)
    n = rng.integers(0, 500, (R, A)).astype(np.float64)
    n[0, 3] = 0.0                                  # an empty cell
    state = np.zeros((R, A, 6))
    frac = rng.dirichlet(np.ones(6), size=(R, A))
    state[:] = np.floor(frac * n[..., None])
    state[..., 0] += n - state.sum(axis=2)
    cloc = rng.random((4, A, A))
    w = _random_csr(rng, R, R)
    v = _random_csr(rng, R, V)
    vs = rng.random(R)
    return dict(state=state, n=n, cloc=cloc, beta=0.05, f_p=0.8, f_a=0.5, tau=0.3, school=0.6, other=0.7,
                masks=0.8, venue_share=vs, w_indptr=w[0], w_indices=w[1], w_m=w[2], w_e=w[3],
                v_indptr=v[0], v_indices=v[1], v_m=v[2], v_e=v[3], n_venues=V)


@pytest.mark.parametrize("seed", range(4))
def test_force_of_infection_matches_reference(seed):
    kw = _random_inputs(seed)
    a, b = np.zeros(kw["n"].shape), np.zeros(kw["n"].shape)
    seir.force_of_infection(*kw.values(), a)
    force_of_infection_ref(*kw.values(), b)
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    assert (a >= 0).all() and a.max() > 0


@pytest.mark.parametrize("has_pre", [True, False])
def test_mean_field_transition_matches_reference(has_pre):
    kw = _random_inputs(11)
    rng = np.random.default_rng(2)
    lam = rng.random(kw["n"].shape)
    clinical = rng.random(16)
    outs = []
    for fn in (seir.transition, transition_ref):
        st = kw["state"].copy()
        flows = [np.zeros(kw["n"].shape) for _ in range(3)]
        fn(st, lam, 0.25, 0.3, 0.4 if has_pre else 1.0, 0.2, has_pre, clinical, 0.3, False, *flows)
        outs.append((st, flows))
    np.testing.assert_allclose(outs[0][0], outs[1][0], rtol=1e-12)
    for f0, f1 in zip(outs[0][1], outs[1][1]):
        np.testing.assert_allclose(f0, f1, rtol=1e-12)
    np.testing.assert_allclose(outs[0][0].sum(axis=2), kw["n"], rtol=1e-12)


def test_stochastic_transition_is_integral_conserving_seeded_and_unbiased():
    kw = _random_inputs(5, R=3)
    lam = np.full(kw["n"].shape, 0.4)
    clinical = np.full(16, 0.6)

    def run(seed):
        seir.seed_rng(seed)
        st = kw["state"].copy()
        flows = [np.zeros(kw["n"].shape) for _ in range(3)]
        seir.transition(st, lam, 0.25, 0.3, 0.4, 0.2, True, clinical, 0.5, True, *flows)
        return st, flows

    a, b = run(7), run(7)
    np.testing.assert_array_equal(a[0], b[0])
    st = a[0]
    assert (st >= 0).all() and np.array_equal(st, np.round(st))
    np.testing.assert_array_equal(st.sum(axis=2), kw["n"])
    # mean of many draws equals the mean-field step
    mf = kw["state"].copy()
    mflows = [np.zeros(kw["n"].shape) for _ in range(3)]
    seir.transition(mf, lam, 0.25, 0.3, 0.4, 0.2, True, clinical, 0.5, False, *mflows)
    draws = np.array([run(s)[0] for s in range(300)])
    se = draws.std(axis=0) / np.sqrt(300) + 1e-9
    z = np.abs(draws.mean(axis=0) - mf) / se
    assert np.mean(z < 4) > 0.99


def test_epidemic_day_matches_reference_mean_field():
    kw = _random_inputs(3)
    extra = dict(substeps=4, p_e=0.1, p_p=0.15, p_i=0.05, has_pre=True, clinical=np.full(16, 0.7),
                 stochastic=False)
    outs = []
    for fn in (seir.epidemic_day, epidemic_day_ref):
        k = dict(kw, state=kw["state"].copy())
        flows = [np.zeros(kw["n"].shape) for _ in range(3)]
        fn(*k.values(), *extra.values(), *flows)
        outs.append((k["state"], flows))
    np.testing.assert_allclose(outs[0][0], outs[1][0], rtol=1e-11)
    for f0, f1 in zip(outs[0][1], outs[1][1]):
        np.testing.assert_allclose(f0, f1, rtol=1e-11, atol=1e-12)


def test_prem_kernel_matches_reference():
    rng = np.random.default_rng(0)
    D, T = 5, 30
    beta = rng.random(D) * 0.05
    mult = rng.random((T, 4, 16))
    cloc = rng.random((4, 16, 16))
    n = rng.integers(1000, 5000, 16).astype(np.float64)
    i0 = np.full(16, 5.0)
    outs = []
    for fn in (prem_kernel, prem_kernel_ref):
        o = [np.zeros((T + 1, D)) for _ in range(3)] + [np.zeros((T, D))]
        fn(beta, mult, cloc, n, i0, 0.15, 0.13, *o)
        outs.append(o)
    for a, b in zip(*outs):
        np.testing.assert_allclose(a, b, rtol=1e-12)
