"""Tests across the four BCD blocks (lifted_idl.blocks, theory §8): the relaxed objective, the
descent guarantee from an initial point, names, bad inputs and solver failures.

Each block's own reference tests (fast solver against cvxpy and optimality conditions) are in
``test_ab.py``, ``test_cd.py``, ``test_x.py`` and ``test_p.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import ACTS, LOSSES, RTOL, ab_instance, cd_instance, instance, rel

from lifted_idl import ImplicitModel
from lifted_idl.activations import LeakyReLU, ReLU, Tanh
from lifted_idl.blocks import (
    BlockResult,
    ab_objective,
    cd_objective,
    p_objective,
    relaxed_objective,
    solve_ab,
    solve_cd,
    solve_p,
    solve_x,
    x_objective,
)
from lifted_idl.blocks._common import solve_cvxpy
from lifted_idl.exceptions import SolverError
from lifted_idl.losses import SquaredLoss
from lifted_idl.penalties import GroupPenalty, L1Penalty, L2Penalty, NoPenalty
from lifted_idl.wellposedness import project_inf_norm_ball


# --------------------------------------------------------------------------------------------
# the relaxed objective
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("act", ACTS, ids=["relu", "tanh"])
@pytest.mark.parametrize("loss", LOSSES, ids=["sq", "ce"])
def test_relaxed_objective_zero_divergence_at_equilibrium(act, loss):
    d = instance(2, act, loss)
    model = ImplicitModel(d["A"], d["B"], d["C"], d["D"], b=d["b"], c=d["c"], activation=act)
    Xs = model.equilibrium(d["U"])
    pen_ab, pen_cd = L2Penalty(0.1), L1Penalty(0.05)
    J = relaxed_objective(d["A"], d["B"], d["b"], d["C"], d["D"], d["c"], Xs, Xs, d["U"],
                          d["Y"], d["lam"], d["mu"], act, loss, pen_ab, pen_cd)
    assert abs(J["divergence"]) < 1e-9 and J["coupling"] == 0.0
    true = (loss.value(d["Y"], model.predict(d["U"]))
            + pen_ab.restrict("ab").value(np.hstack([d["A"], d["B"]]))
            + pen_cd.restrict("cd").value(np.hstack([d["C"], d["D"]])))
    assert rel(J["total"], true) < 1e-9
    # away from the equilibrium every term is non-negative and the divergence positive
    J2 = relaxed_objective(d["A"], d["B"], d["b"], d["C"], d["D"], d["c"], d["X"], d["P"],
                           d["U"], d["Y"], d["lam"], d["mu"], act, loss, pen_ab, pen_cd)
    for key in ("loss", "divergence", "coupling", "penalty"):
        assert J2[key] >= 0.0
    assert J2["divergence"] > 0
    assert rel(J2["total"], J2["loss"] + J2["divergence"] + J2["coupling"]
               + J2["penalty"]) < 1e-12
    # outside dom f* the divergence is +inf
    Pbad = d["P"].copy()
    Pbad[0, 0] = -1.5
    J3 = relaxed_objective(d["A"], d["B"], d["b"], d["C"], d["D"], d["c"], d["X"], Pbad,
                           d["U"], d["Y"], d["lam"], d["mu"], act, loss, pen_ab, pen_cd)
    assert J3["divergence"] == np.inf


def test_relu_divergence_matches_the_fenchel_form():
    """The ReLU divergence of the objectives (two non-negative terms) equals the generic
    Fenchel form f(z) + f*(p) - pz up to rounding, weighted or not, is non-negative, and is
    inf outside the domain p >= 0."""
    from lifted_idl.blocks.objective import _divergence

    rng = np.random.default_rng(21)
    m, n = 50, 7
    Z = rng.standard_normal((m, n))
    P = np.maximum(Z + 0.3 * rng.standard_normal((m, n)), 0.0)
    P[:5] = np.maximum(Z[:5], 0.0)  # rows at their equilibrium: divergence 0 there
    lam = rng.random(n) + 0.5
    w = rng.random(m)
    w *= m / w.sum()
    act = ReLU()
    for wt in (None, w):
        F = act.fenchel(P, Z)
        want = float((F.sum(axis=0) if wt is None else wt @ F) @ lam) / m
        got = _divergence(act, P, Z, lam, wt)
        assert got >= 0 and got == pytest.approx(want, rel=1e-13)
    assert _divergence(act, np.maximum(Z[:5], 0.0), Z[:5], lam) == 0.0
    Pn = P.copy()
    Pn[3, 2] = -1e-9
    assert _divergence(act, Pn, Z, lam) == np.inf


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
    view = relaxed_objective(*args, G.restrict("ab", {"D": D}), L2Penalty(0.1))
    want = G.value({"B": B, "D": D}) + 0.05 * np.sum(np.hstack([C, D]) ** 2)
    assert joint["penalty"] == pytest.approx(want, rel=1e-13)
    assert view["total"] == pytest.approx(joint["total"], rel=1e-13)
    assert joint["total"] - base["total"] == pytest.approx(want, rel=1e-12)
    with pytest.raises(ValueError, match="pen_group must be a GroupPenalty"):
        relaxed_objective(*args, NoPenalty(), NoPenalty(), pen_group=L2Penalty(1.0))


# --------------------------------------------------------------------------------------------
# warm starts and the descent guarantee
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("act", ACTS, ids=["relu", "tanh"])
def test_descent_from_init_all_blocks(act):
    loss = SquaredLoss()
    d = instance(11, act, loss)
    rng = np.random.default_rng(0)
    # CD
    init = (d["C"], d["D"], d["c"])
    r = solve_cd(d["P"], d["U"], d["Y"], loss, L1Penalty(0.02), init=init)
    assert r.objective <= cd_objective(d["P"], d["U"], d["Y"], loss, L1Penalty(0.02), *init)
    # AB from a feasible point
    args = (d["X"], d["U"], d["P"], d["lam"], d["kappa"], act, L2Penalty(0.05))
    init = (d["A"], d["B"], d["b"])
    r = solve_ab(*args, init=init, max_iter=3)
    assert r.objective <= ab_objective(*args, *init)
    # X
    xargs = (d["A"], d["B"], d["b"], d["U"], d["P"], d["lam"], d["mu"], act)
    X0 = d["X"]
    r = solve_x(*xargs, init=X0, max_iter=2)
    assert r.objective <= x_objective(*xargs, X0)
    # P, from an init in the domain
    pargs = [d[k] for k in ("A", "B", "b", "C", "D", "c", "X", "U", "Y", "lam", "mu")]
    P0 = d["P"] * rng.uniform(0.5, 0.9, d["P"].shape)
    r = solve_p(*pargs, act, loss, init=P0, max_iter=1)
    assert r.objective <= p_objective(*pargs, act, loss, P0)


def test_init_kept_when_solver_ends_worse():
    """cvxpy's interior-point answer is a hair above the exact one: the exact init is kept."""
    act, loss = ReLU(), SquaredLoss()
    d = instance(12, act, loss)
    args = (d["X"], d["U"], d["P"], d["lam"], d["kappa"], act, NoPenalty())
    best = solve_ab(*args)
    again = solve_ab(*args, init=best.value, method="cvxpy")
    assert again.objective <= best.objective
    if again.solver == "init":
        for a, b in zip(again.value, best.value, strict=True):
            assert np.array_equal(a, b)
    # the same for P
    pargs = [d[k] for k in ("A", "B", "b", "C", "D", "c", "X", "U", "Y", "lam", "mu")]
    bp = solve_p(*pargs, act, loss)
    rp = solve_p(*pargs, act, loss, init=bp.value, method="cvxpy")
    assert rp.objective <= bp.objective


@pytest.mark.parametrize("act", [LeakyReLU(0.1), "sigmoid"], ids=["leaky", "sigmoid"])
def test_other_activations_ab_x(act):
    from lifted_idl.activations import get_activation

    act = get_activation(act)
    d = instance(19, Tanh(), SquaredLoss())  # P in (-1, 1)
    P = d["P"] if isinstance(act, LeakyReLU) else 0.5 * (d["P"] + 1.0)  # sigmoid: (0, 1)
    args = (d["X"], d["U"], P, d["lam"], d["kappa"], act, L2Penalty(0.05))
    fast, ref = solve_ab(*args), solve_ab(*args, method="cvxpy")
    assert rel(fast.objective, ref.objective) < RTOL
    xargs = (d["A"], d["B"], d["b"], d["U"], P, d["lam"], d["mu"], act)
    fast, ref = solve_x(*xargs), solve_x(*xargs, method="cvxpy")
    assert rel(fast.objective, ref.objective) < RTOL


# --------------------------------------------------------------------------------------------
# names, bad inputs, solver failures
# --------------------------------------------------------------------------------------------
def test_names_are_accepted():
    d = instance(14, ReLU(), SquaredLoss())
    r1 = solve_cd(d["P"], d["U"], d["Y"], "squared", "l2")
    assert r1.solver == "closed_form"
    r2 = solve_ab(d["X"], d["U"], d["P"], 1.0, 0.5, "relu", "none")
    assert r2.converged and r2.value[0].shape == (6, 6)


def test_bad_inputs_raise():
    d = instance(15, ReLU(), SquaredLoss())
    act, loss = ReLU(), SquaredLoss()
    with pytest.raises(ValueError, match="P has shape"):
        solve_cd(d["P"][:-1], d["U"], d["Y"], loss, "none")
    Pn = d["P"].copy()
    Pn[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        solve_ab(d["X"], d["U"], Pn, d["lam"], 0.5, act, "none")
    with pytest.raises(ValueError, match="domain"):
        solve_ab(d["X"], d["U"], d["P"] - 1.0, d["lam"], 0.5, act, "none")
    with pytest.raises(ValueError, match="domain"):
        solve_x(d["A"], d["B"], d["b"], d["U"], np.full_like(d["P"], 1.0), d["lam"], 1.0,
                Tanh())
    with pytest.raises(ValueError, match="lam"):
        solve_x(d["A"], d["B"], d["b"], d["U"], d["P"], -1.0, 1.0, act)
    with pytest.raises(ValueError, match="lam has shape"):
        solve_x(d["A"], d["B"], d["b"], d["U"], d["P"], np.ones(3), 1.0, act)
    with pytest.raises(ValueError, match="mu"):
        solve_x(d["A"], d["B"], d["b"], d["U"], d["P"], d["lam"], 0.0, act)
    with pytest.raises(ValueError, match="kappa"):
        solve_ab(d["X"], d["U"], d["P"], d["lam"], -0.5, act, "none")
    with pytest.raises(ValueError, match="B has shape"):
        solve_p(d["A"], d["B"][:, :2], d["b"], d["C"], d["D"], d["c"], d["X"], d["U"], d["Y"],
                d["lam"], 1.0, act, loss)
    with pytest.raises(ValueError, match="method"):
        solve_cd(d["P"], d["U"], d["Y"], loss, "none", method="newton")
    with pytest.raises(ValueError, match="max_iter"):
        solve_x(d["A"], d["B"], d["b"], d["U"], d["P"], d["lam"], 1.0, act, max_iter=0)
    with pytest.raises(ValueError, match="P block supports"):
        solve_p(d["A"], d["B"], d["b"], d["C"], d["D"], d["c"], d["X"], d["U"], d["Y"],
                d["lam"], 1.0, LeakyReLU(0.1), loss)
    with pytest.raises(ValueError, match="init"):
        solve_cd(d["P"], d["U"], d["Y"], loss, "none", init=(d["C"], d["D"]))


def test_cvxpy_failure_raises_solver_error():
    import cvxpy as cp

    x = cp.Variable()
    prob = cp.Problem(cp.Minimize(x), [x >= 1, x <= 0])
    with pytest.raises(SolverError, match=r"\(A, B\) block.*infeasible"):
        solve_cvxpy(prob, "(A, B)", 1e-8, 100)


def test_keep_better_returns_init_when_worse():
    from lifted_idl.blocks._common import keep_better

    init = np.zeros(3)
    worse = BlockResult(np.ones(3), 2.0, 5, True, "newton")
    kept = keep_better(worse, init, 1.0)
    assert kept.solver == "init" and kept.objective == 1.0 and kept.value is init
    better = BlockResult(np.ones(3), 0.5, 5, True, "newton")
    assert keep_better(better, init, 1.0) is better


def test_block_errors_name_the_argument():
    act = ReLU()
    X, U, P, lam, D = ab_instance(0, act)
    G = GroupPenalty(0.1)
    with pytest.raises(ValueError, match=r"group.restrict\('ab', \{'D': D\}\)"):
        solve_ab(X, U, P, lam, 0.5, act, G)
    with pytest.raises(ValueError, match="4 groups"):
        solve_ab(X, U, P, lam, 0.5, act, G.restrict("ab", {"D": D[:, :4]}))
    Pc, Uc, Yc, B = cd_instance(0, "squared")
    with pytest.raises(ValueError, match=r"group.restrict\('cd', \{'B': B\}\)"):
        solve_cd(Pc, Uc, Yc, "squared", G.restrict("ab", {"D": B}))
    # the robust (A, B) block keeps its own list of penalties
    from lifted_idl.blocks._common import get_block_penalty

    with pytest.raises(ValueError, match="NoPenalty, L2Penalty or L1Penalty"):
        get_block_penalty(G.restrict("ab", {"D": D}), "penalty", "ab")
