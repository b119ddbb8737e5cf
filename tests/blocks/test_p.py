"""Tests of the P block (lifted_idl.blocks.p, theory §8): the fast solver against the cvxpy
formulation and its KKT conditions, for ReLU, tanh and sigmoid.
"""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import ACTS, LOSSES, RTOL, instance, rel

from lifted_idl.activations import ReLU, Tanh
from lifted_idl.blocks import p_objective, solve_p
from lifted_idl.losses import SquaredLoss


def p_gradient(d, act, loss, P):
    Z = d["X"] @ d["A"].T + d["U"] @ d["B"].T + d["b"]
    Yhat = P @ d["C"].T + d["U"] @ d["D"].T + d["c"]
    m = P.shape[0]
    return loss.grad(d["Y"], Yhat) @ d["C"] + (d["lam"] * (act.inverse(P) - Z)
                                               + d["mu"] * (P - d["X"])) / m


@pytest.mark.parametrize("act", ACTS, ids=["relu", "tanh"])
@pytest.mark.parametrize("loss", LOSSES, ids=["sq", "ce"])
def test_p_fast_matches_cvxpy_and_kkt(act, loss):
    d = instance(9, act, loss)
    args = [d[k] for k in ("A", "B", "b", "C", "D", "c", "X", "U", "Y", "lam", "mu")]
    fast = solve_p(*args, act, loss)
    ref = solve_p(*args, act, loss, method="cvxpy")
    assert fast.converged
    assert rel(fast.objective, ref.objective) < RTOL
    P = fast.value
    assert fast.objective == pytest.approx(p_objective(*args, act, loss, P), rel=1e-14)
    g = p_gradient(d, act, loss, P) * P.shape[0]
    if isinstance(act, ReLU):
        # NNLS complementarity: P >= 0, grad >= 0, P * grad = 0
        assert P.min() >= 0.0
        assert g.min() > -1e-7
        assert np.abs(P * g).max() < 1e-7
        assert (P == 0).any()  # the bound is active somewhere on this instance
    else:
        assert np.abs(P).max() < 1.0
        assert np.abs(g).max() < 1e-7


def test_p_relu_differs_from_unconstrained_closed_form():
    """theory §8 fix: with P >= 0 the squared-loss P step is an NNLS, not the closed form."""
    act, loss = ReLU(), SquaredLoss()
    d = instance(10, act, loss)
    args = [d[k] for k in ("A", "B", "b", "C", "D", "c", "X", "U", "Y", "lam", "mu")]
    P = solve_p(*args, act, loss).value
    m, n = P.shape
    Z = d["X"] @ d["A"].T + d["U"] @ d["B"].T + d["b"]
    P0 = (d["lam"] * Z + d["mu"] * d["X"]) / (d["lam"] + d["mu"])
    # unconstrained minimiser, sample by sample: (C^T C + diag(lam + mu)) p = C^T r + (lam+mu) p0
    H = d["C"].T @ d["C"] + np.diag(d["lam"] + d["mu"])
    R = d["Y"] - d["U"] @ d["D"].T - d["c"]
    Pfree = np.linalg.solve(H, (R @ d["C"] + (d["lam"] + d["mu"]) * P0).T).T
    assert Pfree.min() < 0  # the closed form leaves the domain ...
    assert not np.allclose(P, np.maximum(Pfree, 0), atol=1e-6)  # ... and clipping is not optimal
    obj = p_objective(*args, act, loss, P)
    assert obj <= p_objective(*args, act, loss, np.maximum(Pfree, 0)) + 1e-12


def test_sigmoid_p_block():
    from lifted_idl.activations import Sigmoid

    act, loss = Sigmoid(), SquaredLoss()
    d = instance(20, Tanh(), loss)
    d["X"] = 0.5 * (d["P"] + 1.0)
    args = [d[k] for k in ("A", "B", "b", "C", "D", "c", "X", "U", "Y", "lam", "mu")]
    fast, ref = solve_p(*args, act, loss), solve_p(*args, act, loss, method="cvxpy")
    assert fast.converged and rel(fast.objective, ref.objective) < RTOL
    assert 0.0 < fast.value.min() and fast.value.max() < 1.0


@pytest.mark.parametrize("q", [1, 3], ids=["q1", "q3"])
def test_p_relu_frozen_samples_match_iterating_all(q, monkeypatch):
    """ReLU samples leave the Newton batch once their step is at the rounding level: the answer
    is the one of iterating every sample (freezing off), an exact NNLS point (KKT per entry),
    for the scalar (q = 1; the scalar-residual solver off) and the batched (q > 1) Woodbury
    solves."""
    import lifted_idl.blocks.p as pmod

    act, loss = ReLU(), SquaredLoss()
    d = instance(31, act, loss, m=300, n=12, q=q)
    args = [d[k] for k in ("A", "B", "b", "C", "D", "c", "X", "U", "Y", "lam", "mu")]
    monkeypatch.setattr(pmod, "SCALAR_RESIDUAL", False)  # Newton for q = 1 too
    fast = solve_p(*args, act, loss, tol=1e-10)
    monkeypatch.setattr(pmod, "_EXACT", 0.0)  # no sample is ever frozen
    every = solve_p(*args, act, loss, tol=1e-10)
    assert fast.converged and every.converged and fast.n_iter >= 3
    np.testing.assert_allclose(fast.value, every.value, rtol=0, atol=1e-11)
    P = fast.value
    g = p_gradient(d, act, loss, P) * P.shape[0]
    assert P.min() >= 0.0 and g.min() > -1e-9 and np.abs(P * g).max() < 1e-9
    assert (P == 0).any() and (P > 0).any()


def scaled_step(d, act, loss, P):
    r"""The scaled projected gradient step :math:`P - \Pi(P - g/D_g)` of ``solve_p``'s ``tol``
    and ``rtol`` (``D_g`` the Hessian diagonal of the separable terms)."""
    g = p_gradient(d, act, loss, P) * P.shape[0]
    if isinstance(act, ReLU):
        return P - np.maximum(P - g / (d["lam"] + d["mu"]), 0.0)
    return P - np.clip(P - g / (d["lam"] / ((1 - P) * (1 + P)) + d["mu"]), -1.0, 1.0)


@pytest.mark.parametrize("act", ACTS, ids=["relu", "tanh"])
@pytest.mark.parametrize("loss", LOSSES, ids=["sq", "ce"])
def test_p_rtol_stops_relative_to_the_start(act, loss):
    """An inexact P step (``rtol``): every entry of the scaled projected gradient step ends at
    most ``rtol`` times the largest one at the start (short of the exact solve's), in no more
    Newton iterations than the exact solve, at an objective between the start's and the
    optimum's."""
    d = instance(12, act, loss, m=200, q=3)
    args = [d[k] for k in ("A", "B", "b", "C", "D", "c", "X", "U", "Y", "lam", "mu")]
    start = d["P"]  # in the domain, far from the optimum
    exact = solve_p(*args, act, loss, init=start, tol=1e-10)
    rtol = 0.05
    fast = solve_p(*args, act, loss, init=start, tol=1e-10, rtol=rtol)
    r0 = np.abs(scaled_step(d, act, loss, start)).max()
    r = np.abs(scaled_step(d, act, loss, fast.value)).max()
    assert fast.converged and r <= rtol * r0 * (1 + 1e-9)
    assert r > 1e3 * np.abs(scaled_step(d, act, loss, exact.value)).max()  # stopped early
    assert fast.n_iter <= exact.n_iter
    assert exact.objective <= fast.objective < p_objective(*args, act, loss, start)
    with pytest.raises(ValueError, match="rtol"):
        solve_p(*args, act, loss, rtol=1.0)


@pytest.mark.parametrize("act", ACTS, ids=["relu", "tanh"])
@pytest.mark.parametrize("loss", LOSSES, ids=["sq", "ce"])
@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weighted"])
def test_p_objectives_from_sample_values(act, loss, weighted):
    """From a warm start in the domain the reported objectives come from the Newton
    iteration's per-sample values: they equal the objective evaluated afresh (the weighted
    one: the plain objective on the samples repeated by their integer weights), at the
    returned P and at the start (the start is returned when nothing beats it)."""
    d = instance(14, act, loss, m=60)
    rng = np.random.default_rng(3)
    w = rng.integers(0, 4, 60) if weighted else None
    keys = ("A", "B", "b", "C", "D", "c", "X", "U", "Y", "lam", "mu")
    args = [d[k] for k in keys]
    rows = np.repeat(np.arange(60), w) if weighted else np.arange(60)
    rep = [d[k][rows] if k in ("X", "U", "Y") else d[k] for k in keys]
    start = d["P"]
    for kw in (dict(rtol=0.1), dict(tol=1e-10)):
        r = solve_p(*args, act, loss, init=start, sample_weight=w, **kw)
        assert r.solver == "newton"
        assert r.objective == pytest.approx(p_objective(*rep, act, loss, r.value[rows]),
                                            rel=1e-13)
    # started at the optimum: nothing beats it, and the start's objective is the same number
    again = solve_p(*args, act, loss, init=r.value, sample_weight=w, tol=1e-10)
    assert again.objective == pytest.approx(p_objective(*rep, act, loss, r.value[rows]),
                                            rel=1e-13)


@pytest.mark.parametrize("steps", [4, 2, 1, 0], ids=["newton", "two-step", "one-step", "sorted"])
def test_p_relu_scalar_residual_is_the_exact_nnls(steps, monkeypatch):
    """ReLU, the squared loss and one output: the solver through the scalar residual (its
    semismooth Newton steps, then the sorted breakpoints for the samples left; ``steps`` = 2
    sends a subset of the samples that moved in the first step to the breakpoints, ``steps`` =
    0 every sample) returns the NNLS point of the Newton iteration and
    of cvxpy, and meets the KKT conditions entry by entry; outputs with zero, positive and
    negative weights, starts from ``init`` and from the default."""
    import lifted_idl.blocks.p as pmod

    act, loss = ReLU(), SquaredLoss()
    monkeypatch.setattr(pmod, "_SCALAR_STEPS", steps)
    for seed in range(6):
        d = instance(40 + seed, act, loss, m=150, n=9, q=1)
        d["C"][0, seed % 9] = 0.0  # a state the output ignores: p = max(a, 0)
        args = [d[k] for k in ("A", "B", "b", "C", "D", "c", "X", "U", "Y", "lam", "mu")]
        for init in (None, d["X"]):
            fast = solve_p(*args, act, loss, init=init)
            assert fast.solver == "scalar" and fast.converged
            P = fast.value
            g = p_gradient(d, act, loss, P) * P.shape[0]
            assert P.min() >= 0.0 and g.min() > -1e-10 and np.abs(P * g).max() < 1e-10
            assert (P == 0).any() and (P > 0).any()
            with monkeypatch.context() as mp:
                mp.setattr(pmod, "SCALAR_RESIDUAL", False)
                newton = solve_p(*args, act, loss, init=init, tol=1e-12)
            assert newton.solver == "newton"
            np.testing.assert_allclose(P, newton.value, rtol=0, atol=1e-11)
            assert fast.objective <= newton.objective + 1e-13 * abs(newton.objective)
        if seed == 0:
            ref = solve_p(*args, act, loss, method="cvxpy")
            assert rel(fast.objective, ref.objective) < RTOL


@pytest.mark.parametrize("steps", [4, 0], ids=["newton", "sorted"])
def test_p_relu_scalar_residual_without_output_weights(steps, monkeypatch):
    r"""All output weights zero: the residual does not depend on P, and P is the positive part
    of the separable terms' minimiser :math:`(\lambda z + \mu x)/(\lambda + \mu)`, on the
    Newton path and on the sorted one (which has no breakpoint then)."""
    import lifted_idl.blocks.p as pmod

    monkeypatch.setattr(pmod, "_SCALAR_STEPS", steps)
    act, loss = ReLU(), SquaredLoss()
    d = instance(50, act, loss, m=40, n=5, q=1)
    d["C"][:] = 0.0
    args = [d[k] for k in ("A", "B", "b", "C", "D", "c", "X", "U", "Y", "lam", "mu")]
    r = solve_p(*args, act, loss)
    Z = d["X"] @ d["A"].T + d["U"] @ d["B"].T + d["b"]
    want = np.maximum((d["lam"] * Z + d["mu"] * d["X"]) / (d["lam"] + d["mu"]), 0.0)
    assert r.solver == "scalar"
    np.testing.assert_allclose(r.value, want, rtol=1e-14, atol=1e-15)


def test_p_relu_scalar_sorted_root_with_a_dominant_weight():
    r"""The sorted-breakpoint root where one output weight dominates the others by 10^4 (its
    state inactive at the root): the segments' slopes and intercepts are summed without
    cancellation, so the root matches a bisection of the increasing function h to rounding."""
    from lifted_idl.blocks.p import _relu_scalar_sorted

    rng = np.random.default_rng(0)
    m, n = 300, 30
    A0 = rng.standard_normal((m, n))
    A0[:, 0] = -10.0
    c = rng.standard_normal(n)
    c[0] = 1e4
    b = c / 2.0
    e = rng.standard_normal(m) - rng.standard_normal(m)

    def h(r):
        return r - np.maximum(0.0, A0 - r[:, None] * b) @ c - e

    lo, hi = np.full(m, -1e9), np.full(m, 1e9)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        neg = h(mid) < 0
        lo, hi = np.where(neg, mid, lo), np.where(neg, hi, mid)
    r = _relu_scalar_sorted(A0, c, b, e)
    np.testing.assert_allclose(r, 0.5 * (lo + hi), rtol=0, atol=1e-13)
