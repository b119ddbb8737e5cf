"""Tests of the (A, B, b) block (lifted_idl.blocks.ab, theory §8): the fast solvers against the
cvxpy formulation of the same problem and against their optimality conditions.

* plain penalties (none, l2, l1): objective within 1e-6 relative of cvxpy, the prox-gradient
  fixed point, the l1-ball of the rows of A, warm starts;
* the group penalty of [IDL (5.1)] (theory §6): the group solvers against cvxpy (never above
  it beyond rounding) and the block's KKT residual; the row-separable majorant of
  :func:`~lifted_idl.blocks.ab._ab_group_newton` (it bounds the objective and touches it);
  the face Newton method (l2 and l-inf) on designs shaped like those of the BCD loop
  (singular Hessians; zero, tiny and regular fixed parts), also at the BCD tolerance
  ``tol=1e-6``, where the stopping test must not stop short.

The majorize-minimize solver is in ``test_ab_mm.py``, the row-parallel solves in
``test_ab_parallel.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import (
    ACTS,
    CLARABEL_STATUS,
    ORDS,
    PENS,
    RTOL,
    ab_fixed_point_residual,
    ab_instance,
    ab_kkt_residual,
    instance,
    rel,
)

from lifted_idl.activations import ReLU, Tanh
from lifted_idl.blocks import ab as ab_module
from lifted_idl.blocks import ab_objective, solve_ab
from lifted_idl.losses import SquaredLoss
from lifted_idl.penalties import GroupPenalty, L2Penalty, NoPenalty
from lifted_idl.wellposedness import inf_norm, project_inf_norm_ball

pytestmark = CLARABEL_STATUS


# --------------------------------------------------------------------------------------------
# plain penalties
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("act", ACTS, ids=["relu", "tanh"])
@pytest.mark.parametrize("pen", PENS, ids=["none", "l2", "l1"])
def test_ab_fast_matches_cvxpy_and_fixed_point(act, pen):
    d = instance(5, act, SquaredLoss())
    args = (d["X"], d["U"], d["P"], d["lam"], d["kappa"], act, pen)
    fast = solve_ab(*args)
    ref = solve_ab(*args, method="cvxpy")
    assert fast.converged
    assert rel(fast.objective, ref.objective) < RTOL
    A, B, b = fast.value
    assert inf_norm(A) <= d["kappa"] * (1 + 1e-12)
    assert fast.objective == pytest.approx(ab_objective(*args, A, B, b), rel=1e-14)
    assert ab_fixed_point_residual(*args, A, B, b) < 1e-7


@pytest.mark.parametrize("act", ACTS, ids=["relu", "tanh"])
def test_ab_no_bias_and_inactive_ball(act):
    d = instance(6, act, SquaredLoss())
    for kappa, fit_bias in [(0.3, False), (50.0, True)]:
        args = (d["X"], d["U"], d["P"], d["lam"], kappa, act, L2Penalty(0.01))
        fast = solve_ab(*args, fit_bias=fit_bias)
        ref = solve_ab(*args, fit_bias=fit_bias, method="cvxpy")
        assert rel(fast.objective, ref.objective) < RTOL
        A, B, b = fast.value
        if not fit_bias:
            assert np.all(b == 0.0)
        assert ab_fixed_point_residual(*args, A, B, b, fit_bias=fit_bias) < 1e-7
    # with kappa = 50 the ball is inactive at the optimum: a plain stationary point
    assert inf_norm(A) < 50.0


def test_ab_flat_row_relu():
    """A state with P[:, i] = 0 has a flat optimum (any w with Mw <= 0): objective still exact."""
    act = ReLU()
    d = instance(7, act, SquaredLoss())
    P = d["P"].copy()
    P[:, 0] = 0.0
    args = (d["X"], d["U"], P, d["lam"], d["kappa"], act, NoPenalty())
    fast = solve_ab(*args)
    ref = solve_ab(*args, method="cvxpy")
    assert abs(fast.objective - ref.objective) < 1e-6 * max(1.0, abs(ref.objective))
    A, B, b = fast.value
    Z0 = d["X"] @ A[0] + d["U"] @ B[0] + b[0]
    assert np.all(Z0 <= 1e-8)  # the flat row sits where its divergence part is zero


def test_warm_start_converges_faster_ab():
    act = ReLU()
    d = instance(13, act, SquaredLoss())
    args = (d["X"], d["U"], d["P"], d["lam"], d["kappa"], act, NoPenalty())
    cold = solve_ab(*args)
    warm = solve_ab(*args, init=cold.value)
    assert warm.n_iter <= 2 and warm.objective <= cold.objective


# --------------------------------------------------------------------------------------------
# the group penalty
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("act", [ReLU(), Tanh()], ids=["relu", "tanh"])
@pytest.mark.parametrize("ord", ORDS)
@pytest.mark.parametrize("seed", [0, 1])
def test_solve_ab_group_matches_cvxpy(act, ord, seed):
    X, U, P, lam, D = ab_instance(seed, act)
    pen = GroupPenalty(0.3, ord).restrict("ab", {"D": D})
    kappa = 0.5
    fast = solve_ab(X, U, P, lam, kappa, act, pen)
    ref = solve_ab(X, U, P, lam, kappa, act, pen, method="cvxpy")
    assert fast.converged
    assert fast.solver == "group_newton"
    assert fast.objective <= ref.objective + 1e-9 * abs(ref.objective)
    assert rel(fast.objective, ref.objective) < RTOL
    A, B, b = fast.value
    assert np.abs(A).sum(axis=1).max() <= kappa * (1 + 1e-10)
    assert fast.objective == pytest.approx(ab_objective(X, U, P, lam, kappa, act, pen, A, B, b),
                                           rel=1e-12)
    assert ab_kkt_residual(X, U, P, lam, kappa, act, pen, A, B, b) < 1e-5
    # columns whose D part is zero are exactly zero in B where cvxpy's are (numerically) zero
    Bc = ref.value[1]
    zero_ref = np.linalg.norm(Bc[:, :2], axis=0) < 1e-6
    assert np.all(np.linalg.norm(B[:, :2], axis=0)[zero_ref] == 0.0)


def test_solve_ab_group_zero_columns_and_warm_start():
    """D = 0 makes the B part a plain group lasso: a large strength zeroes every column of B;
    a warm start never ends above its own objective; strength 0 is the unpenalised block."""
    act = ReLU()
    X, U, P, lam, D = ab_instance(5, act)
    big = solve_ab(X, U, P, lam, 0.5, act,
                   GroupPenalty(50.0).restrict("ab", {"D": np.zeros_like(D)}))
    assert np.all(big.value[1] == 0.0)
    pen = GroupPenalty(0.2).restrict("ab", {"D": D}, ridge=0.05)
    cold = solve_ab(X, U, P, lam, 0.5, act, pen)
    ref = solve_ab(X, U, P, lam, 0.5, act, pen, method="cvxpy")
    assert rel(cold.objective, ref.objective) < RTOL
    rng = np.random.default_rng(9)
    init = (project_inf_norm_ball(rng.standard_normal((6, 6)), 0.5),
            rng.standard_normal((6, 5)), rng.standard_normal(6))
    warm = solve_ab(X, U, P, lam, 0.5, act, pen, init=init)
    assert warm.objective <= ab_objective(X, U, P, lam, 0.5, act, pen, *init)
    assert rel(warm.objective, cold.objective) < RTOL
    zero = solve_ab(X, U, P, lam, 0.5, act, GroupPenalty(0.0).restrict("ab", {"D": D}))
    plain = solve_ab(X, U, P, lam, 0.5, act, NoPenalty())
    assert rel(zero.objective, plain.objective) < 1e-10


# --------------------------------------------------------------------------------------------
# the row-separable majorant of the group Newton method
# --------------------------------------------------------------------------------------------
def bcd_like_instance(seed, act, m=80, n=5, p=7, q=2, fixed="mixed"):
    """An (A, B) block shaped like those of the BCD loop: the states are affine in U on the
    samples (all positive, so the ReLU is active everywhere: a rank-deficient design and
    singular row Hessians), one state with a real ReLU pattern, and a fixed part D with a zero
    column, a tiny (1e-14) one, a small one and regular ones."""
    rng = np.random.default_rng(seed)
    U = rng.standard_normal((m, p))
    X = U @ (0.3 * rng.standard_normal((p, n)))
    X = X - X.min(axis=0) + 0.1
    X[:, 0] = np.maximum(rng.standard_normal(m), 0.0)
    A0 = rng.standard_normal((n, n))
    A0 *= 0.8 / np.abs(A0).sum(axis=1, keepdims=True)
    B0 = 0.3 * rng.standard_normal((n, p))
    B0[:, p - 3:] = 0.0
    Z0 = X @ A0.T + U @ B0.T + 0.2 + 0.05 * rng.standard_normal((m, n))
    P = np.maximum(Z0, 0.0) if isinstance(act, ReLU) else np.tanh(Z0)
    lam = rng.uniform(5.0, 15.0, n)
    D = 0.3 * rng.standard_normal((q, p))
    if fixed == "mixed":
        D[:, p - 3] = 0.0
        D[:, p - 2] *= 1e-14
        D[:, p - 1] *= 1e-4
    elif fixed == "zero":
        D[:] = 0.0
    elif fixed == "tiny":
        D *= 1e-14
    return X, U, P, lam, D


def group_problem(seed, ord, fixed="mixed", alpha=0.05, ridge=0.0):
    act = ReLU()
    X, U, P, lam, D = bcd_like_instance(seed, act, fixed=fixed)
    pen = GroupPenalty(alpha, ord).restrict("ab", {"D": D}, ridge=ridge)
    return ab_module._GroupAB(X, U, P, lam, 0.9, act, pen, True)


def random_point(rng, prob, zero_col=True):
    n, p, d = prob.n, prob.p, prob.d
    W = 0.3 * rng.standard_normal((n, d))
    W[:, :n] = project_inf_norm_ball(W[:, :n], prob.kappa)
    if zero_col:
        W[:, n + p - 3] = 0.0  # a zero column (its fixed part is zero too)
        W[:, n + p - 2] *= 1e-13
    return W


@pytest.mark.parametrize("ord", ORDS)
@pytest.mark.parametrize("ridge", [0.0, 0.1])
def test_row_majorant_bounds_the_objective_and_touches_it(ord, ridge):
    rng = np.random.default_rng(2)
    prob = group_problem(3, ord, ridge=ridge)
    W = random_point(rng, prob)
    maj = ab_module._RowMajorant(prob, W)
    f0 = prob.value(W)[0]
    s0 = maj.values(W, prob.all)[0]
    for scale in (1e-8, 1e-3, 0.1, 1.0):
        for _ in range(20):
            Wt = W + scale * rng.standard_normal(W.shape) * (rng.random(W.shape) < 0.5)
            ft = prob.value(Wt)[0]
            st = maj.values(Wt, prob.all)[0]
            # F(Wt) - F(W) <= sum_i S_i(Wt) - S_i(W)
            assert ft - f0 <= (st - s0).sum() + 1e-12 * max(1.0, abs(f0))
    # tight at W: moving one row only, the majorant's change is at least the objective's,
    # and equal to first order along a smooth direction
    i = 1
    n, p = prob.n, prob.p
    step = np.zeros_like(W)
    step[i] = rng.standard_normal(W.shape[1])
    step[i, n + p - 3:n + p - 1] = 0.0  # off the zero and the tiny column (kink, curvature)
    if ord != 2:  # off the entries at their column's maximum (kinks)
        at = np.abs(W[i, n:n + p]) >= maj.mu
        step[i, n:n + p][at] = 0.0
    g = prob.grad(W)[0]
    slope = maj.slopes(W, g, step)
    h = 1e-7
    fd = (maj.values(W + h * step, prob.all)[0] - s0) / h
    np.testing.assert_allclose(fd[i], slope[i], rtol=1e-4, atol=1e-9)
    np.testing.assert_array_equal(slope[np.arange(prob.n) != i], 0.0)


@pytest.mark.parametrize("ord", ORDS)
def test_row_majorant_safe_step_decreases_every_row(ord):
    """The per-row fallback: the majorant's prox-gradient step with the safe row steps
    decreases every row's majorant (sufficient decrease), hence the objective."""
    rng = np.random.default_rng(4)
    prob = group_problem(5, ord, ridge=0.05)
    W = random_point(rng, prob)
    maj = ab_module._RowMajorant(prob, W)
    g = prob.grad(W)[0]
    Wn = maj.prox_step(W, g, prob.safe_row)
    s0 = maj.values(W, prob.all)[0]
    s1 = maj.values(Wn, prob.all)[0]
    dec = 0.5 / prob.safe_row * ((Wn - W) ** 2).sum(axis=1)
    assert np.all(s1 <= s0 - dec + 1e-12 * np.abs(s0))
    assert prob.value(Wn)[0] < prob.value(W)[0]
    assert np.all(np.abs(Wn[:, :prob.n]).sum(axis=1) <= prob.kappa * (1 + 1e-12))


# --------------------------------------------------------------------------------------------
# the group Newton solves against cvxpy
# --------------------------------------------------------------------------------------------
@pytest.fixture(params=ORDS, ids=["l2", "linf"])
def group_ord(request, monkeypatch):
    """The group norm; for l-inf, the face Newton method (``_LINF_SOLVER = "newton"``)."""
    if request.param != 2:
        monkeypatch.setattr(ab_module, "_LINF_SOLVER", "newton")
    return request.param


def check_against_cvxpy(X, U, P, lam, kappa, act, pen, rtol=RTOL, **kw):
    fast = solve_ab(X, U, P, lam, kappa, act, pen, **kw)
    ref = solve_ab(X, U, P, lam, kappa, act, pen, method="cvxpy", tol=1e-10)
    assert fast.solver == "group_newton"
    assert fast.converged
    assert fast.objective <= ref.objective + 1e-9 * abs(ref.objective)
    assert rel(fast.objective, ref.objective) < rtol
    A, B, b = fast.value
    assert np.abs(A).sum(axis=1).max() <= kappa * (1 + 1e-10)
    assert fast.objective == pytest.approx(ab_objective(X, U, P, lam, kappa, act, pen, A, B, b),
                                           rel=1e-12)
    return fast, ref


@pytest.mark.parametrize("act", [ReLU(), Tanh()], ids=["relu", "tanh"])
@pytest.mark.parametrize("fixed", ["mixed", "zero", "tiny"])
@pytest.mark.parametrize("seed", [0, 1])
def test_group_newton_rank_deficient_design_matches_cvxpy(group_ord, act, fixed, seed):
    X, U, P, lam, D = bcd_like_instance(seed, act, fixed=fixed)
    pen = GroupPenalty(0.05, group_ord).restrict("ab", {"D": D})
    fast, ref = check_against_cvxpy(X, U, P, lam, 0.9, act, pen)
    A, B, b = fast.value
    assert ab_kkt_residual(X, U, P, lam, 0.9, act, pen, A, B, b) < 1e-5
    assert np.all(np.isfinite(B))
    if fixed == "zero":
        # a plain group lasso on B: the columns cvxpy zeroes are exactly zero
        zero_ref = np.abs(ref.value[1]).max(axis=0) < 1e-7
        assert np.all(B[:, zero_ref] == 0.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_group_newton_bcd_tolerance_does_not_stop_short(group_ord, seed):
    """At the BCD loop's tolerance (tol=1e-6, max_iter=100) the solve still ends within 1e-6
    (relative) of the cvxpy optimum: in the flat directions of a rank-deficient design the
    prox-gradient residual alone can pass 1e-3 above it; the Newton decrement test keeps
    going. Also from a warm start, as in BCD."""
    act = ReLU()
    X, U, P, lam, D = bcd_like_instance(10 + seed, act, m=120)
    pen = GroupPenalty(0.01, group_ord).restrict("ab", {"D": D})
    fast, ref = check_against_cvxpy(X, U, P, lam, 0.9, act, pen, tol=1e-6, max_iter=100)
    rng = np.random.default_rng(seed)
    A, B, b = ref.value
    init = (project_inf_norm_ball(A + 0.05 * rng.standard_normal(A.shape), 0.9),
            B + 0.05 * rng.standard_normal(B.shape), b)
    check_against_cvxpy(X, U, P, lam, 0.9, act, pen, tol=1e-6, max_iter=100, init=init)
    # started at its own solution it stops at once, where it is
    again = solve_ab(X, U, P, lam, 0.9, act, pen, tol=1e-6, init=fast.value)
    assert again.n_iter <= 2
    assert again.objective <= fast.objective + 1e-12 * abs(fast.objective)


def test_group_newton_large_strength_and_ridge(group_ord):
    """A strength that zeroes every column of B (zero fixed part), and a ridge on A."""
    act = ReLU()
    X, U, P, lam, D = bcd_like_instance(7, act)
    big = solve_ab(X, U, P, lam, 0.9, act,
                   GroupPenalty(50.0, group_ord).restrict("ab", {"D": 0 * D}))
    assert big.converged
    assert np.all(big.value[1] == 0.0)
    pen = GroupPenalty(0.05, group_ord).restrict("ab", {"D": D}, ridge=0.1)
    check_against_cvxpy(X, U, P, lam, 0.9, act, pen)


def test_linf_newton_ties_the_column_maxima(monkeypatch):
    """l-inf: the columns of B whose maximum is a variable (above the fixed part) attain it at
    several rows at the solution; the Newton method lands on the tie exactly (as cvxpy)."""
    monkeypatch.setattr(ab_module, "_LINF_SOLVER", "newton")
    act = ReLU()
    X, U, P, lam, D = bcd_like_instance(3, act, fixed="zero")
    pen = GroupPenalty(0.02, np.inf).restrict("ab", {"D": D})
    fast, ref = check_against_cvxpy(X, U, P, lam, 0.9, act, pen)
    B = fast.value[1]
    absB = np.abs(B)
    top = absB.max(axis=0)
    tied_cols = 0
    for j in np.flatnonzero(top > 1e-8):
        at_top = np.isclose(absB[:, j], top[j], rtol=1e-9, atol=0)
        tied_cols += at_top.sum() > 1
    assert tied_cols >= 1
