"""Tests of the group penalty of [IDL (5.1)] (theory §5) and of the blocks that accept it.

The prox is checked against its optimality conditions, the Moreau identity and cvxpy; the
(A, B) and (C, D) block solvers against the cvxpy formulation of the same problem (objective
within 1e-6 relative, never above it by more than rounding) and against the prox fixed point
(KKT) of the block.
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest

from lifted_idl.activations import ReLU, Tanh
from lifted_idl.blocks import ab_objective, cd_objective, relaxed_objective, solve_ab, solve_cd
from lifted_idl.blocks._common import project_l1_rows
from lifted_idl.penalties import (
    GroupPenalty,
    L2Penalty,
    NoPenalty,
    PartialGroupPenalty,
    group_prox,
)
from lifted_idl.wellposedness import project_inf_norm_ball

ORDS = [2, np.inf]
RTOL = 1e-6

# Clarabel sometimes reports "optimal_inaccurate" on these small SOCPs; the comparisons below
# hold regardless (the fast solvers are never above the reference by more than rounding).
pytestmark = pytest.mark.filterwarnings("ignore:.*CLARABEL returned status:UserWarning",
                                        "ignore:.*CLARABEL returned status")


def rel(a, b):
    return abs(a - b) / max(abs(a), abs(b), 1e-12)


def fixed_part(rng, k, p, n_zero=2):
    """A fixed part with zero columns, one tiny column and regular ones."""
    F = rng.standard_normal((k, p))
    F[:, :n_zero] = 0.0
    F[:, n_zero] *= 1e-4
    return F


# --------------------------------------------------------------------------------------------
# values, forms, prox
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ord", ORDS)
def test_values_and_cvxpy_forms_agree(ord):
    rng = np.random.default_rng(0)
    n, q, p = 4, 2, 6
    A, B = rng.standard_normal((n, n)), rng.standard_normal((n, p))
    C, D = rng.standard_normal((q, n)), rng.standard_normal((q, p))
    G = GroupPenalty(0.7, ord)
    r = 2 if ord == 2 else np.inf
    want = 0.7 * sum(np.linalg.norm(np.concatenate([B[:, j], D[:, j]]), r) for j in range(p))
    assert G.value(B, D) == pytest.approx(want, rel=1e-13)
    # each block's view, at the other block's part, is the whole penalty (+ its ridge)
    assert G.for_ab(D).value(np.hstack([A, B])) == pytest.approx(want, rel=1e-13)
    assert G.for_cd(B).value(np.hstack([C, D])) == pytest.approx(want, rel=1e-13)
    with_ridge = G.for_cd(B, ridge=0.3).value(np.hstack([C, D]))
    assert with_ridge == pytest.approx(want + 0.15 * np.sum(C * C), rel=1e-13)
    assert float(G.cvxpy(cp.Constant(B), cp.Constant(D)).value) == pytest.approx(want, rel=1e-9)
    expr = G.for_cd(B, ridge=0.3).cvxpy(cp.Constant(np.hstack([C, D])))
    assert float(expr.value) == pytest.approx(with_ridge, rel=1e-9)


@pytest.mark.parametrize("ord", ORDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_partial_prox_matches_cvxpy(ord, seed):
    rng = np.random.default_rng(seed)
    r, k, p = 4, 3, 7
    V = rng.standard_normal((r, p)) * rng.uniform(0.05, 3.0, p)
    F = fixed_part(rng, k, p)
    t = rng.uniform(0.2, 2.0)
    pen = PartialGroupPenalty(1.3, F, ord)
    X = pen.prox_part(V, t)

    def f(Xv):
        return 0.5 * np.sum((Xv - V) ** 2) + t * pen.value_part(Xv)

    x = cp.Variable((r, p))
    prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(x - V) + t * pen.cvxpy(
        cp.hstack([np.zeros((r, 1)), x]))))
    prob.solve(solver=cp.CLARABEL)
    assert f(X) <= f(x.value) + 1e-10
    assert rel(f(X), f(x.value)) < RTOL
    assert np.abs(X - x.value).max() < 1e-4


@pytest.mark.parametrize("seed", [0, 1])
def test_partial_l2_prox_optimality_conditions(seed):
    r"""x - v + t x / rho = 0 with rho = ||(x, d)|| where the result is nonzero; ||v|| <= t
    where it is zero (d = 0)."""
    rng = np.random.default_rng(seed)
    r, p = 5, 40
    V = rng.standard_normal((r, p)) * np.exp(rng.uniform(-6, 2, p))
    delta = np.where(rng.random(p) < 0.3, 0.0, np.exp(rng.uniform(-8, 1, p)))
    F = np.vstack([delta, np.zeros(p)])
    t = np.exp(rng.uniform(-3, 1, p))
    X = PartialGroupPenalty(1.0, F, 2).prox_part(V, t)
    rho = np.sqrt((X * X).sum(axis=0) + delta ** 2)
    nz = rho > 0
    res = X[:, nz] - V[:, nz] + t[nz] * X[:, nz] / rho[nz]
    assert np.abs(res).max() <= 1e-13 * max(1.0, np.abs(V).max())
    zero = ~nz
    assert zero.any()
    assert np.all(np.linalg.norm(V[:, zero], axis=0) <= t[zero] * (1 + 1e-12))


@pytest.mark.parametrize("ord", ORDS)
def test_joint_prox_closed_forms(ord):
    """Block soft threshold (l2) and Moreau's identity with the l1-ball projection (l-inf)."""
    rng = np.random.default_rng(3)
    n, q, p = 4, 2, 9
    B, D = rng.standard_normal((n, p)), rng.standard_normal((q, p))
    B[:, 0] *= 0.01
    D[:, 0] *= 0.01
    step, alpha = 0.8, 1.5
    Bn, Dn = group_prox(B, D, step, alpha, ord)
    W = np.vstack([B, D])
    Wn = np.vstack([Bn, Dn])
    t = step * alpha
    if ord == 2:
        nrm = np.linalg.norm(W, axis=0)
        want = W * np.maximum(1.0 - t / nrm, 0.0)
    else:
        want = W - project_inf_norm_ball(W.T.copy(), t).T
    np.testing.assert_allclose(Wn, want, atol=1e-13)
    assert np.all(Wn[:, 0] == 0)
    # the GroupPenalty method and per-group steps give the same map
    Bm, Dm = GroupPenalty(alpha, ord).prox(B, D, np.full(p, step))
    np.testing.assert_allclose(Bm, Bn, atol=1e-15)
    np.testing.assert_allclose(Dm, Dn, atol=1e-15)


def test_prox_step_shapes_and_errors():
    rng = np.random.default_rng(4)
    F = rng.standard_normal((2, 5))
    pen = PartialGroupPenalty(0.5, F, 2, block="cd", ridge=0.2)
    W = rng.standard_normal((3, 8))
    # per-row steps that are all equal act as a scalar step
    np.testing.assert_allclose(pen.prox(W, np.full((3, 1), 0.4)), pen.prox(W, 0.4), atol=1e-15)
    out = pen.prox(W, 0.4)
    np.testing.assert_allclose(out[:, :3], W[:, :3] / (1 + 0.4 * 0.2), atol=1e-15)
    with pytest.raises(ValueError, match="one step per group"):
        pen.prox(W, np.array([[0.1], [0.2], [0.3]]))
    with pytest.raises(ValueError, match="ord must be 2 or np.inf"):
        GroupPenalty(1.0, ord=1)
    with pytest.raises(ValueError, match="alpha must be finite and >= 0"):
        GroupPenalty(-1.0)
    with pytest.raises(ValueError, match="ridge must be finite"):
        GroupPenalty(1.0).for_cd(F, ridge=-1.0)
    with pytest.raises(ValueError, match="same number of columns"):
        group_prox(np.zeros((2, 3)), np.zeros((1, 4)), 1.0, 1.0)
    with pytest.raises(ValueError, match="at least 5 columns"):
        pen.value(np.zeros((2, 4)))


# --------------------------------------------------------------------------------------------
# the (A, B) block
# --------------------------------------------------------------------------------------------
def ab_instance(seed, act, m=40, n=6, p=5, q=2):
    rng = np.random.default_rng(seed)
    U = rng.standard_normal((m, p))
    X = rng.standard_normal((m, n))
    if isinstance(act, ReLU):
        P = np.maximum(rng.standard_normal((m, n)), 0.0)
    else:
        P = np.tanh(rng.standard_normal((m, n)))
    lam = rng.uniform(0.5, 3.0, n)
    D = fixed_part(rng, q, p)
    return X, U, P, lam, D


def ab_kkt_residual(X, U, P, lam, kappa, act, pen, A, B, b):
    """Prox-gradient fixed-point residual of the (A, B, b) block at a single step 1/L."""
    m = X.shape[0]
    Z = X @ A.T + U @ B.T + b
    G = (act(Z) - P) * (lam / m)
    gA, gB, gb = G.T @ X + pen.ridge * A, G.T @ U, G.sum(axis=0)
    M = np.hstack([X, U, np.ones((m, 1))])
    t = 1.0 / (lam.max() * np.linalg.eigvalsh(M.T @ M)[-1] / m + pen.ridge)
    An = project_l1_rows(A - t * gA, kappa)
    Bn = pen.prox_part(B - t * gB, t)
    return max(np.abs(An - A).max(), np.abs(Bn - B).max(), np.abs(t * gb).max()) / t


@pytest.mark.parametrize("act", [ReLU(), Tanh()], ids=["relu", "tanh"])
@pytest.mark.parametrize("ord", ORDS)
@pytest.mark.parametrize("seed", [0, 1])
def test_solve_ab_group_matches_cvxpy(act, ord, seed):
    X, U, P, lam, D = ab_instance(seed, act)
    pen = GroupPenalty(0.3, ord).for_ab(D)
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
    big = solve_ab(X, U, P, lam, 0.5, act, GroupPenalty(50.0).for_ab(np.zeros_like(D)))
    assert np.all(big.value[1] == 0.0)
    pen = GroupPenalty(0.2).for_ab(D, ridge=0.05)
    cold = solve_ab(X, U, P, lam, 0.5, act, pen)
    ref = solve_ab(X, U, P, lam, 0.5, act, pen, method="cvxpy")
    assert rel(cold.objective, ref.objective) < RTOL
    rng = np.random.default_rng(9)
    init = (project_inf_norm_ball(rng.standard_normal((6, 6)), 0.5),
            rng.standard_normal((6, 5)), rng.standard_normal(6))
    warm = solve_ab(X, U, P, lam, 0.5, act, pen, init=init)
    assert warm.objective <= ab_objective(X, U, P, lam, 0.5, act, pen, *init)
    assert rel(warm.objective, cold.objective) < RTOL
    zero = solve_ab(X, U, P, lam, 0.5, act, GroupPenalty(0.0).for_ab(D))
    plain = solve_ab(X, U, P, lam, 0.5, act, NoPenalty())
    assert rel(zero.objective, plain.objective) < 1e-10


# --------------------------------------------------------------------------------------------
# the (C, D) block
# --------------------------------------------------------------------------------------------
def cd_instance(seed, loss, m=50, n=5, p=6, q=3):
    rng = np.random.default_rng(seed)
    U = rng.standard_normal((m, p))
    P = np.maximum(rng.standard_normal((m, n)), 0.0)
    if loss == "squared":
        Y = rng.standard_normal((m, q))
    else:
        Y = np.eye(q)[rng.integers(0, q, m)]
    B = fixed_part(rng, 4, p, n_zero=3)
    return P, U, Y, B


def cd_kkt_residual(P, U, Y, loss, pen, C, D, c, fit_intercept):
    from lifted_idl.losses import get_loss

    lo = get_loss(loss)
    Yh = P @ C.T + U @ D.T + c
    R = lo.grad(Y, Yh)
    gC, gD = R.T @ P + pen.ridge * C, R.T @ U
    M = np.hstack([P, U, np.ones((len(U), 1))])
    t = 1.0 / (np.linalg.eigvalsh(M.T @ M)[-1] / len(U) + pen.ridge)
    res = max(np.abs(t * gC).max(), np.abs(pen.prox_part(D - t * gD, t) - D).max())
    if fit_intercept:
        res = max(res, np.abs(t * R.sum(axis=0)).max())
    return res / t


@pytest.mark.parametrize("loss", ["squared", "cross_entropy"])
@pytest.mark.parametrize("ord", ORDS)
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_solve_cd_group_matches_cvxpy(loss, ord, fit_intercept):
    P, U, Y, B = cd_instance(0, loss)
    pen = GroupPenalty(0.08, ord).for_cd(B, ridge=0.01)
    fast = solve_cd(P, U, Y, loss, pen, fit_intercept=fit_intercept)
    ref = solve_cd(P, U, Y, loss, pen, method="cvxpy", fit_intercept=fit_intercept)
    assert fast.converged
    assert fast.objective <= ref.objective + 1e-9 * abs(ref.objective)
    assert rel(fast.objective, ref.objective) < RTOL
    C, D, c = fast.value
    assert fast.objective == pytest.approx(cd_objective(P, U, Y, loss, pen, C, D, c), rel=1e-12)
    assert cd_kkt_residual(P, U, Y, loss, pen, C, D, c, fit_intercept) < 1e-5
    if not fit_intercept:
        assert np.all(c == 0)


def test_solve_cd_group_zeroes_columns():
    """With B's column zero, D's column is zero exactly iff the loss gradient on it is at most
    alpha in norm (checked at the solution, for every such column)."""
    P, U, Y, B = cd_instance(1, "squared")
    alpha = 0.15
    r = solve_cd(P, U, Y, "squared", GroupPenalty(alpha).for_cd(B))
    C, D, c = r.value
    R = (P @ C.T + U @ D.T + c - Y) / len(U)
    g = np.linalg.norm(R.T @ U, axis=0)
    for j in range(3):  # the zero columns of B
        if np.all(D[:, j] == 0):
            assert g[j] <= alpha * (1 + 1e-8)
        else:
            assert g[j] > alpha * (1 - 1e-8)
    assert np.any(np.all(D[:, :3] == 0, axis=0))


# --------------------------------------------------------------------------------------------
# objectives and errors
# --------------------------------------------------------------------------------------------
def test_relaxed_objective_with_group():
    rng = np.random.default_rng(2)
    m, n, p, q = 30, 4, 5, 2
    A = project_inf_norm_ball(rng.standard_normal((n, n)), 0.5)
    B, b = rng.standard_normal((n, p)), rng.standard_normal(n)
    C, D, c = rng.standard_normal((q, n)), rng.standard_normal((q, p)), rng.standard_normal(q)
    X, U, Y = rng.standard_normal((m, n)), rng.standard_normal((m, p)), rng.standard_normal((m, q))
    P = np.maximum(rng.standard_normal((m, n)), 0.0)
    G = GroupPenalty(0.4)
    args = (A, B, b, C, D, c, X, P, U, Y, 1.0, 0.5, "relu", "squared")
    base = relaxed_objective(*args, NoPenalty(), NoPenalty())
    joint = relaxed_objective(*args, NoPenalty(), L2Penalty(0.1), pen_group=G)
    view = relaxed_objective(*args, G.for_ab(D), L2Penalty(0.1))
    want = G.value(B, D) + 0.05 * np.sum(np.hstack([C, D]) ** 2)
    assert joint["penalty"] == pytest.approx(want, rel=1e-13)
    assert view["total"] == pytest.approx(joint["total"], rel=1e-13)
    assert joint["total"] - base["total"] == pytest.approx(want, rel=1e-12)
    with pytest.raises(ValueError, match="pen_group must be a GroupPenalty"):
        relaxed_objective(*args, NoPenalty(), NoPenalty(), pen_group=L2Penalty(1.0))


def test_block_errors_name_the_argument():
    act = ReLU()
    X, U, P, lam, D = ab_instance(0, act)
    G = GroupPenalty(0.1)
    with pytest.raises(ValueError, match=r"group.for_ab\(D\)"):
        solve_ab(X, U, P, lam, 0.5, act, G)
    with pytest.raises(ValueError, match="4 groups"):
        solve_ab(X, U, P, lam, 0.5, act, G.for_ab(D[:, :4]))
    Pc, Uc, Yc, B = cd_instance(0, "squared")
    with pytest.raises(ValueError, match=r"group.for_cd\(B\)"):
        solve_cd(Pc, Uc, Yc, "squared", G.for_ab(B))
    # the robust (A, B) block keeps its own list of penalties
    from lifted_idl.blocks._common import get_block_penalty

    with pytest.raises(ValueError, match="NoPenalty, L2Penalty or L1Penalty"):
        get_block_penalty(G.for_ab(D), "penalty")
