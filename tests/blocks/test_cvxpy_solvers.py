"""Every cvxpy twin of the blocks, solved by every declared solver that takes its problem class
(lifted_idl.blocks._common): the optima agree, the default pick follows the class, a solver
that cannot take the class is refused, and a failing pick falls back to Clarabel."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest

from lifted_idl.activations import ReLU, Tanh
from lifted_idl.blocks import (
    CVXPY_SOLVERS,
    _common,
    fw_ab,
    fw_cd,
    solve_ab,
    solve_ab_robust,
    solve_bd,
    solve_cd,
    solve_p,
    solve_x,
)
from lifted_idl.losses import SoftmaxCrossEntropy, SquaredLoss
from lifted_idl.penalties import GroupPenalty, L1Penalty, L2Penalty, NoPenalty
from lifted_idl.wellposedness import project_inf_norm_ball

SQ, CE = SquaredLoss(), SoftmaxCrossEntropy()
TOL = 1e-8
#: relative agreement with Clarabel at TOL (ECOS stops at 1e-7; OSQP polishes its ADMM point);
#: measured over 8 seeds: ECOS 1.2e-7, OSQP 1.2e-8, HiGHS 1.3e-9
RTOL = {"CLARABEL": 0.0, "OSQP": 1e-7, "HIGHS": 1e-7, "ECOS": 1e-6}


def _data(act, loss, seed=3, m=30, n=4, p=3, q=2):
    rng = np.random.default_rng(seed)
    U = rng.standard_normal((m, p))
    X = rng.standard_normal((m, n))
    P = (np.maximum(rng.standard_normal((m, n)), 0.0) if isinstance(act, ReLU)
         else np.tanh(rng.standard_normal((m, n))))
    Y = (rng.standard_normal((m, q)) if isinstance(loss, SquaredLoss)
         else np.eye(q)[rng.integers(0, q, m)])
    return dict(U=U, X=X, P=P, Y=Y, A=project_inf_norm_ball(rng.standard_normal((n, n)), 0.5),
                B=rng.standard_normal((n, p)), b=0.3 * rng.standard_normal(n),
                C=rng.standard_normal((q, n)), D=rng.standard_normal((q, p)),
                c=rng.standard_normal(q), lam=rng.uniform(0.5, 3.0, n))


def _twin(block, act, loss, **extra):
    """``solve(cvxpy_solver)`` for one twin on a small instance."""
    d = _data(act, loss)
    if block == "cd":
        return lambda s: solve_cd(d["P"], d["U"], d["Y"], loss, extra.get("pen", NoPenalty()),
                                  method="cvxpy", tol=TOL, cvxpy_solver=s)
    if block == "ab":
        return lambda s: solve_ab(d["X"], d["U"], d["P"], d["lam"], 0.5, act,
                                  extra.get("pen", NoPenalty()), method="cvxpy", tol=TOL,
                                  cvxpy_solver=s)
    if block == "ab_robust":
        return lambda s: solve_ab_robust(d["X"], d["U"], d["P"], d["lam"], 0.5, act,
                                         L1Penalty(0.01), 0.1, method="cvxpy", tol=TOL,
                                         cvxpy_solver=s)
    if block == "x":
        return lambda s: solve_x(d["A"], d["B"], d["b"], d["U"], d["P"], d["lam"], 0.7, act,
                                 method="cvxpy", tol=TOL, cvxpy_solver=s)
    if block == "p":
        return lambda s: solve_p(d["A"], d["B"], d["b"], d["C"], d["D"], d["c"], d["X"],
                                 d["U"], d["Y"], d["lam"], 0.7, act, loss, method="cvxpy",
                                 tol=TOL, cvxpy_solver=s)
    if block == "bd":
        return lambda s: solve_bd(d["A"], d["B"], d["b"], d["C"], d["D"], d["c"], d["X"],
                                  d["P"], d["U"], d["Y"], d["lam"], act, loss,
                                  GroupPenalty(0.3, extra["ord"]), method="cvxpy", tol=TOL,
                                  cvxpy_solver=s)
    if block == "fw_cd":
        return lambda s: fw_cd(d["P"], d["U"], d["Y"], loss, 1.0, method="cvxpy", tol=TOL,
                               cvxpy_solver=s)
    assert block == "fw_ab"
    return lambda s: fw_ab(d["X"], d["U"], d["P"], d["lam"], 0.5, 1.0, act, method="cvxpy",
                           tol=TOL, cvxpy_solver=s)


# (id, block, activation, loss, extra, problem class)
CASES = [
    ("cd-sq-ridge", "cd", ReLU(), SQ, {"pen": L2Penalty(0.05)}, "qp"),
    ("cd-sq-l1", "cd", ReLU(), SQ, {"pen": L1Penalty(0.02)}, "qp"),
    ("cd-ce", "cd", ReLU(), CE, {"pen": L2Penalty(0.05)}, "exp"),
    ("ab-relu-l1", "ab", ReLU(), SQ, {"pen": L1Penalty(0.02)}, "qp"),
    ("ab-tanh", "ab", Tanh(), SQ, {}, "exp"),
    ("ab-robust", "ab_robust", ReLU(), SQ, {}, "socp"),
    ("x-relu", "x", ReLU(), SQ, {}, "qp"),
    ("x-tanh", "x", Tanh(), SQ, {}, "exp"),
    ("p-relu-sq", "p", ReLU(), SQ, {}, "qp"),
    ("p-relu-ce", "p", ReLU(), CE, {}, "exp"),
    ("bd-l2", "bd", ReLU(), SQ, {"ord": 2}, "socp"),
    ("bd-linf", "bd", ReLU(), SQ, {"ord": np.inf}, "qp"),
    ("fw_cd-sq", "fw_cd", ReLU(), SQ, {}, "qp"),
    ("fw_cd-ce", "fw_cd", ReLU(), CE, {}, "exp"),
    ("fw_ab-relu", "fw_ab", ReLU(), SQ, {}, "qp"),
    ("fw_ab-tanh", "fw_ab", Tanh(), SQ, {}, "exp"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_every_declared_solver_of_the_class_agrees(case):
    _, block, act, loss, extra, kind = case
    solve = _twin(block, act, loss, **extra)
    default = solve(None)
    assert default.solver == "cvxpy:" + _common.DEFAULT_CVXPY_SOLVER[kind]
    assert default.converged
    ref = solve("CLARABEL")
    assert ref.solver == "cvxpy:CLARABEL"
    takes = [name for name, kinds in CVXPY_SOLVERS.items() if kind in kinds]
    assert {"CLARABEL", "ECOS"} <= set(takes)
    for name in CVXPY_SOLVERS:
        if name not in takes:
            with pytest.raises(ValueError, match=f"cvxpy_solver='{name}' cannot solve"):
                solve(name)
            continue
        res = solve(name.lower())  # names are case-insensitive
        assert res.solver == f"cvxpy:{name}" and res.converged, name
        scale = max(abs(ref.objective), 1.0)
        assert abs(res.objective - ref.objective) <= (RTOL[name] + 1e-9) * scale, name
    assert abs(default.objective - ref.objective) <= 1e-6 * max(abs(ref.objective), 1.0)


def test_osqp_and_ecos_are_the_picks_of_their_classes():
    """The bar of issue 16: OSQP and ECOS are called by block twins without being named."""
    picks = {_common.DEFAULT_CVXPY_SOLVER[c[-1]] for c in CASES}
    assert {"OSQP", "ECOS", "CLARABEL"} <= picks


def test_problem_class_of_small_programs():
    x = cp.Variable(3)
    A = np.arange(6.0).reshape(2, 3)
    assert _common.problem_class(cp.Problem(cp.Minimize(cp.norm1(A @ x - 1)))) == "lp"
    assert _common.problem_class(cp.Problem(cp.Minimize(cp.sum_squares(A @ x - 1)))) == "qp"
    assert _common.problem_class(cp.Problem(cp.Minimize(cp.norm(A @ x - 1, 2)))) == "socp"
    assert _common.problem_class(cp.Problem(cp.Minimize(cp.log_sum_exp(A @ x)),
                                            [x >= -1])) == "exp"


def test_lp_goes_to_highs_silently(capfd):
    x = cp.Variable(3)
    A = np.arange(6.0).reshape(2, 3)
    prob = cp.Problem(cp.Minimize(cp.norm1(A @ x - 1) + cp.norm1(x)))
    conv, _, name = _common.solve_cvxpy(prob, "test", 1e-8, 100)
    assert conv and name == "HIGHS"
    value = prob.value
    prob.solve(solver="CLARABEL")
    assert value == pytest.approx(prob.value, rel=1e-7)
    out, _ = capfd.readouterr()
    assert "HiGHS" not in out


def test_a_failing_pick_falls_back_to_clarabel(monkeypatch):
    def broken(problem, tol, max_iter):
        raise cp.error.SolverError("broken on purpose")

    solve = _twin("x", ReLU(), SQ)
    ok = solve(None)
    monkeypatch.setitem(_common._SOLVE, "OSQP", broken)
    res = solve(None)
    assert ok.solver == "cvxpy:OSQP" and res.solver == "cvxpy:CLARABEL" and res.converged
    assert res.objective == pytest.approx(ok.objective, rel=1e-7)
    # a named solver has no fallback
    with pytest.raises(Exception, match="broken on purpose"):
        solve("OSQP")


def test_cvxpy_solver_is_checked():
    solve = _twin("x", ReLU(), SQ)
    with pytest.raises(ValueError, match="cvxpy_solver must be None or one of"):
        solve("GUROBI")
    d = _data(ReLU(), SQ)
    with pytest.raises(ValueError, match="cvxpy_solver is used by method='cvxpy' only"):
        solve_x(d["A"], d["B"], d["b"], d["U"], d["P"], d["lam"], 0.7, "relu",
                cvxpy_solver="OSQP")
    with pytest.raises(ValueError, match="cvxpy_solver is used by method='cvxpy' only"):
        fw_cd(d["P"], d["U"], d["Y"], SQ, 1.0, cvxpy_solver="OSQP")
    with pytest.raises(ValueError, match="method must be 'fast' or 'cvxpy'"):
        fw_ab(d["X"], d["U"], d["P"], d["lam"], 0.5, 1.0, "relu", method="osqp")
