"""The joint (B, D) block of the group penalty (lifted_idl.blocks.bd): proximal gradient against
the block's cvxpy twin."""

import numpy as np
import pytest

from lifted_idl.activations import get_activation
from lifted_idl.blocks import BlockResult, solve_bd
from lifted_idl.losses import SquaredLoss
from lifted_idl.penalties import GroupPenalty


def _instance(seed=1, m=60, n=4, p=6):
    rng = np.random.default_rng(seed)
    U = rng.standard_normal((m, p))
    X = np.maximum(rng.standard_normal((m, n)), 0)
    P = np.maximum(X + 0.3 * rng.standard_normal((m, n)), 0)
    Y = rng.standard_normal((m, 1))
    A = 0.2 * rng.standard_normal((n, n))
    B0, b = rng.standard_normal((n, p)), rng.standard_normal(n)
    C, D0, c = rng.standard_normal((1, n)), rng.standard_normal((1, p)), np.zeros(1)
    lamv = rng.uniform(0.5, 2.0, n)
    return A, B0, b, C, D0, c, X, P, U, Y, lamv


@pytest.mark.parametrize("ord", [2, np.inf])
def test_group_bd_step_matches_cvxpy(ord):
    """The joint (B, D) block of the group-penalised relaxation (a convex problem) solved by
    proximal gradient agrees with its cvxpy formulation, and zeroes whole columns."""
    A, B0, b, C, D0, c, X, P, U, Y, lamv = _instance()
    m = U.shape[0]
    act = get_activation("relu")
    group = GroupPenalty(0.4, ord)
    loss = SquaredLoss()

    def objective(B, D):
        Z = X @ A.T + U @ B.T + b
        return (loss.value(Y, P @ C.T + U @ D.T + c)
                + float(act.fenchel(P, Z).sum(axis=0) @ lamv) / m + group.value({"B": B, "D": D}))

    fast = solve_bd(A, B0, b, C, D0, c, X, P, U, Y, lamv, act, loss, group, max_iter=20000,
                    tol=1e-13)
    ref = solve_bd(A, B0, b, C, D0, c, X, P, U, Y, lamv, act, loss, group, method="cvxpy",
                   tol=1e-9)
    assert isinstance(fast, BlockResult) and fast.solver == "prox_grad" and fast.converged
    # l2 group norm: second-order cones (ECOS); l-inf: a quadratic program (OSQP)
    assert ref.solver == ("cvxpy:ECOS" if ord == 2 else "cvxpy:OSQP") and ref.converged
    (A1, B, b1), (C1, D, c1) = fast.value
    (_, Bv, _), (_, Dv, _) = ref.value
    assert A1 is not None and np.array_equal(A1, A) and np.array_equal(b1, b)
    assert np.array_equal(C1, C) and np.array_equal(c1, c)
    f_fast, f_ref = objective(B, D), objective(Bv, Dv)
    assert fast.objective == pytest.approx(f_fast, rel=1e-12)
    assert ref.objective == pytest.approx(f_ref, rel=1e-12)
    assert f_fast <= f_ref + 1e-6 * abs(f_ref)
    assert f_fast >= f_ref - 1e-6 * abs(f_ref)
    assert f_fast < objective(B0, D0)
    norms = group.column_norms({"B": B, "D": D})
    ref_norms = group.column_norms({"B": Bv, "D": Dv})
    assert np.any(norms == 0.0) and np.any(norms > 0)  # exact zeros from the joint prox ...
    np.testing.assert_array_equal(norms == 0.0, ref_norms < 1e-6)  # ... where cvxpy has ~0


def test_bd_short_solve_descends_and_reports_its_iterations():
    """BCD's default: a short solve (50 steps at most) never ends above its start and reports
    whether it met its tolerance."""
    A, B0, b, C, D0, c, X, P, U, Y, lamv = _instance(seed=2)
    group = GroupPenalty(0.4, 2)
    start = solve_bd(A, B0, b, C, D0, c, X, P, U, Y, lamv, "relu", "squared", group,
                     max_iter=1)
    res = solve_bd(A, B0, b, C, D0, c, X, P, U, Y, lamv, "relu", "squared", group, max_iter=3)
    assert res.n_iter <= 3 and not res.converged
    assert res.objective <= start.objective
    # a start at the optimum: a few (tiny) steps meet the tolerance
    opt = solve_bd(A, B0, b, C, D0, c, X, P, U, Y, lamv, "relu", "squared", group,
                   max_iter=20000, tol=1e-13)
    (_, Bo, _), (_, Do, _) = opt.value
    again = solve_bd(A, Bo, b, C, Do, c, X, P, U, Y, lamv, "relu", "squared", group)
    assert again.converged and again.n_iter < 10
    assert again.objective <= opt.objective + 1e-12 * abs(opt.objective)


def test_bd_checks_its_input():
    A, B0, b, C, D0, c, X, P, U, Y, lamv = _instance()
    group = GroupPenalty(0.4, 2)
    with pytest.raises(ValueError, match="GroupPenalty"):
        solve_bd(A, B0, b, C, D0, c, X, P, U, Y, lamv, "relu", "squared",
                 group.restrict("ab", {"D": D0}))
    with pytest.raises(ValueError, match="domain"):
        solve_bd(A, B0, b, C, D0, c, X, -1.0 - P, U, Y, lamv, "relu", "squared", group)
    with pytest.raises(ValueError, match="B has shape"):
        solve_bd(A, B0[:, :-1], b, C, D0, c, X, P, U, Y, lamv, "relu", "squared", group)
    with pytest.raises(ValueError, match="method"):
        solve_bd(A, B0, b, C, D0, c, X, P, U, Y, lamv, "relu", "squared", group, method="x")
    with pytest.raises(ValueError, match="cvxpy_solver is used by method='cvxpy' only"):
        solve_bd(A, B0, b, C, D0, c, X, P, U, Y, lamv, "relu", "squared", group,
                 cvxpy_solver="ECOS")
