"""Tests of the four BCD blocks of the Fenchel relaxation (lifted_idl.blocks, theory §7).

Every fast solver is checked against the cvxpy formulation of the same problem (objective within
1e-6 relative) and against its own optimality conditions; every returned objective against the
objective function at the returned value.
"""

from __future__ import annotations

import numpy as np
import pytest

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
from lifted_idl.blocks._common import project_l1_rows, solve_cvxpy
from lifted_idl.exceptions import SolverError
from lifted_idl.losses import SoftmaxCrossEntropy, SquaredLoss
from lifted_idl.penalties import L1Penalty, L2Penalty, NoPenalty
from lifted_idl.wellposedness import inf_norm, project_inf_norm_ball

ACTS = [ReLU(), Tanh()]
LOSSES = [SquaredLoss(), SoftmaxCrossEntropy()]
PENS = [NoPenalty(), L2Penalty(0.05), L1Penalty(0.02)]
RTOL = 1e-6


def rel(a, b):
    return abs(a - b) / max(abs(a), abs(b), 1e-12)


def instance(seed, act, loss, m=40, n=6, p=3, q=2, kappa=0.5):
    rng = np.random.default_rng(seed)
    U = rng.standard_normal((m, p))
    A = project_inf_norm_ball(rng.standard_normal((n, n)), kappa)
    B = rng.standard_normal((n, p))
    b = 0.3 * rng.standard_normal(n)
    X = rng.standard_normal((m, n))
    if isinstance(act, ReLU):
        P = np.maximum(rng.standard_normal((m, n)), 0.0)
    else:
        P = np.tanh(rng.standard_normal((m, n)))
    C = rng.standard_normal((q, n))
    D = rng.standard_normal((q, p))
    c = rng.standard_normal(q)
    if isinstance(loss, SquaredLoss):
        Y = rng.standard_normal((m, q))
    else:
        Y = np.eye(q)[rng.integers(0, q, m)]
    lam = rng.uniform(0.5, 3.0, n)
    return dict(U=U, A=A, B=B, b=b, X=X, P=P, C=C, D=D, c=c, Y=Y, lam=lam, mu=0.7,
                kappa=kappa)


def fd_grad(f, x, h=1e-6):
    g = np.zeros_like(x)
    for k in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[k] = h
        g[k] = (f(x + e) - f(x - e)) / (2 * h)
    return g


# --------------------------------------------------------------------------------------------
# Fenchel divergence
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("act", ACTS, ids=["relu", "tanh"])
def test_fenchel_divergence_properties(act):
    rng = np.random.default_rng(0)
    Z = 2 * rng.standard_normal((30, 4))
    Xd = np.maximum(rng.standard_normal((30, 4)), 0) if isinstance(act, ReLU) else np.tanh(
        rng.standard_normal((30, 4)))
    F = act.fenchel(Xd, Z)
    assert np.all(F >= -1e-12)
    # zero exactly at x = phi(z), positive elsewhere (away from phi(z))
    assert np.abs(act.fenchel(act(Z), Z)).max() < 1e-12
    far = np.abs(Xd - act(Z)) > 1e-3
    assert np.all(F[far] > 0)
    # gradients against central finite differences
    gz = act.fenchel_grad_z(Xd, Z)
    gx = act.fenchel_grad_x(Xd, Z)
    for s in range(5):
        i = s % 4
        z, x = Z[s, i], Xd[s, i]
        if isinstance(act, ReLU) and x < 1e-3:
            x = 0.5
        h = 1e-6
        dz = (act.fenchel(np.array([x]), np.array([z + h]))
              - act.fenchel(np.array([x]), np.array([z - h])))[0] / (2 * h)
        dx = (act.fenchel(np.array([x + h]), np.array([z]))
              - act.fenchel(np.array([x - h]), np.array([z])))[0] / (2 * h)
        assert abs(dz - act.fenchel_grad_z(np.array([x]), np.array([z]))[0]) < 1e-6
        assert abs(dx - act.fenchel_grad_x(np.array([x]), np.array([z]))[0]) < 1e-6
    assert gz.shape == gx.shape == Z.shape


@pytest.mark.parametrize("act", ACTS, ids=["relu", "tanh"])
def test_fenchel_cvxpy_matches_numpy(act):
    import cvxpy as cp

    rng = np.random.default_rng(1)
    Z = rng.standard_normal((7, 3))
    Xd = np.abs(rng.standard_normal((7, 3))) if isinstance(act, ReLU) else np.tanh(
        rng.standard_normal((7, 3)))
    expr = act.fenchel_cvxpy(cp.Constant(Xd), cp.Constant(Z))
    assert rel(float(expr.value), float(act.fenchel(Xd, Z).sum())) < 1e-10
    # with one argument a variable (as in the blocks) the expression is convex
    v = cp.Variable((7, 3))
    assert act.fenchel_cvxpy(cp.Constant(Xd), v).is_convex()
    assert act.fenchel_cvxpy(v, cp.Constant(Z)).is_convex()


# --------------------------------------------------------------------------------------------
# relaxed objective
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
            + pen_ab.value(np.hstack([d["A"], d["B"]])) + pen_cd.value(np.hstack([d["C"],
                                                                                  d["D"]])))
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


# --------------------------------------------------------------------------------------------
# (C, D, c) block
# --------------------------------------------------------------------------------------------
def cd_subgradient_residual(P, U, Y, loss, pen, C, D, c, fit_intercept=True):
    M = np.hstack([P, U])
    W = np.hstack([C, D])
    G = loss.grad(Y, M @ W.T + c)
    gW = G.T @ M
    if isinstance(pen, L1Penalty):
        r = np.where(W == 0, np.maximum(np.abs(gW) - pen.alpha, 0.0),
                     np.abs(gW + pen.alpha * np.sign(W)))
    else:
        r = np.abs(gW + pen.alpha * W)
    res = float(r.max())
    if fit_intercept:
        res = max(res, float(np.abs(G.sum(axis=0)).max()))
    return res


@pytest.mark.parametrize("loss", LOSSES, ids=["sq", "ce"])
@pytest.mark.parametrize("pen", PENS, ids=["none", "l2", "l1"])
def test_cd_fast_matches_cvxpy_and_kkt(loss, pen):
    d = instance(3, ReLU(), loss)
    fast = solve_cd(d["P"], d["U"], d["Y"], loss, pen)
    ref = solve_cd(d["P"], d["U"], d["Y"], loss, pen, method="cvxpy")
    assert isinstance(fast, BlockResult) and fast.converged
    # the squared loss makes a quadratic program (OSQP), the cross-entropy exponential cones
    assert ref.solver == ("cvxpy:OSQP" if isinstance(loss, SquaredLoss) else "cvxpy:CLARABEL")
    assert rel(fast.objective, ref.objective) < RTOL
    C, D, c = fast.value
    assert C.shape == (2, 6) and D.shape == (2, 3) and c.shape == (2,)
    assert fast.objective == pytest.approx(cd_objective(d["P"], d["U"], d["Y"], loss, pen,
                                                        C, D, c), rel=1e-14)
    assert cd_subgradient_residual(d["P"], d["U"], d["Y"], loss, pen, C, D, c) < 1e-6


@pytest.mark.parametrize("loss", LOSSES, ids=["sq", "ce"])
def test_cd_without_intercept_and_rank_deficient(loss):
    d = instance(4, ReLU(), loss)
    P = d["P"].copy()
    P[:, 1] = P[:, 0]  # duplicate column: a rank-deficient design
    P[:, 2] = 0.0  # dead state
    pen = NoPenalty() if isinstance(loss, SquaredLoss) else L2Penalty(0.01)
    fast = solve_cd(P, d["U"], d["Y"], loss, pen, fit_intercept=False)
    ref = solve_cd(P, d["U"], d["Y"], loss, pen, fit_intercept=False, method="cvxpy")
    assert np.all(fast.value[2] == 0.0)
    assert rel(fast.objective, ref.objective) < RTOL
    C, D, c = fast.value
    assert cd_subgradient_residual(P, d["U"], d["Y"], loss, pen, C, D, c,
                                   fit_intercept=False) < 1e-6


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("q", [2, 4])
def test_softmax_ridge_dense_newton_and_cg_agree_with_cvxpy(q, fit_intercept):
    """The (C, D, c) cross-entropy + ridge block has two exact solvers: Newton with the explicit
    Hessian (few variables, the default there) and trust-region Newton-CG (many): both reach
    the cvxpy optimum, with a rank-deficient design (a duplicated and a dead column)."""
    from lifted_idl.blocks import cd as cd_mod

    loss, pen = SoftmaxCrossEntropy(), L2Penalty(0.02)
    d = instance(5 + q, ReLU(), loss, m=60, q=q)
    P = d["P"].copy()
    P[:, 1] = P[:, 0]
    P[:, 2] = 0.0
    M = np.hstack([P, d["U"]])
    ref = solve_cd(P, d["U"], d["Y"], loss, pen, fit_intercept=fit_intercept, method="cvxpy")
    for dense_max in (10**6, 0):
        W, c, _, conv, solver = cd_mod._softmax_ridge_newton(
            M, d["Y"], pen.alpha, fit_intercept, None, None, 1e-10, 200, dense_max=dense_max)
        assert conv and solver == ("newton" if dense_max else "newton_cg")
        C, D = W[:, :6], W[:, 6:]
        obj = cd_objective(P, d["U"], d["Y"], loss, pen, C, D, c)
        assert obj <= ref.objective + 1e-7 * abs(ref.objective)
        assert rel(obj, ref.objective) < RTOL
        assert cd_subgradient_residual(P, d["U"], d["Y"], loss, pen, C, D, c,
                                       fit_intercept=fit_intercept) < 1e-7
        if not fit_intercept:
            assert np.all(c == 0.0)


# --------------------------------------------------------------------------------------------
# (A, B, b) block
# --------------------------------------------------------------------------------------------
def ab_fixed_point_residual(X, U, P, lam, kappa, act, pen, A, B, b, fit_bias=True):
    """|W - Proj(prox(W - t grad))| for the (A, B, b) block, with a per-row step t."""
    m = X.shape[0]
    n = A.shape[0]
    Z = X @ A.T + U @ B.T + b
    G = (act(Z) - P) * (lam / m)
    W = np.hstack([A, B])
    gW = G.T @ np.hstack([X, U])
    if isinstance(pen, L2Penalty):
        gW = gW + pen.alpha * W
    M1 = np.hstack([X, U, np.ones((m, 1))])
    t = (m / (lam * np.linalg.norm(M1, 2) ** 2))[:, None]
    V = W - t * gW
    if isinstance(pen, L1Penalty):
        V = np.sign(V) * np.maximum(np.abs(V) - t * pen.alpha, 0.0)
    V[:, :n] = project_inf_norm_ball(V[:, :n], kappa)
    res = float(np.abs(V - W).max())
    if fit_bias:
        res = max(res, float(np.abs(t[:, 0] * G.sum(axis=0)).max()))
    return res


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


# --------------------------------------------------------------------------------------------
# X block
# --------------------------------------------------------------------------------------------
def x_gradient(A, B, b, U, P, lam, mu, act, X):
    Z = X @ A.T + U @ B.T + b
    return ((act(Z) - P) * lam @ A + mu * (X - P)) / X.shape[0]


@pytest.mark.parametrize("act", ACTS, ids=["relu", "tanh"])
@pytest.mark.parametrize("lam_scale", [1.0, 400.0], ids=["agd", "newton"])
def test_x_fast_matches_cvxpy_and_stationary(act, lam_scale):
    d = instance(8, act, SquaredLoss(), kappa=0.9)
    lam = d["lam"] * lam_scale
    args = (d["A"], d["B"], d["b"], d["U"], d["P"], lam, d["mu"], act)
    fast = solve_x(*args)
    ref = solve_x(*args, method="cvxpy")
    assert fast.converged
    assert fast.solver == ("agd" if lam_scale == 1.0 else "newton")
    assert rel(fast.objective, ref.objective) < RTOL
    assert fast.objective == pytest.approx(x_objective(*args, fast.value), rel=1e-14)
    g = x_gradient(*args, fast.value)
    assert np.abs(g).max() < 1e-8 * max(1.0, lam.max())


# --------------------------------------------------------------------------------------------
# P block
# --------------------------------------------------------------------------------------------
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
    """theory §7 fix: with P >= 0 the squared-loss P step is an NNLS, not the closed form."""
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


def test_warm_start_converges_faster_ab():
    act = ReLU()
    d = instance(13, act, SquaredLoss())
    args = (d["X"], d["U"], d["P"], d["lam"], d["kappa"], act, NoPenalty())
    cold = solve_ab(*args)
    warm = solve_ab(*args, init=cold.value)
    assert warm.n_iter <= 2 and warm.objective <= cold.objective


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


def test_project_l1_rows_matches_wellposedness():
    rng = np.random.default_rng(16)
    V = rng.standard_normal((40, 7)) * rng.uniform(0, 2, (40, 1))
    V[0] = 0.0
    got = project_l1_rows(V.copy(), 0.6)
    assert np.allclose(got, project_inf_norm_ball(V, 0.6), atol=1e-14)
    assert np.all(np.abs(got).sum(axis=1) <= 0.6 * (1 + 1e-12))


def test_keep_better_returns_init_when_worse():
    from lifted_idl.blocks._common import keep_better

    init = np.zeros(3)
    worse = BlockResult(np.ones(3), 2.0, 5, True, "newton")
    kept = keep_better(worse, init, 1.0)
    assert kept.solver == "init" and kept.objective == 1.0 and kept.value is init
    better = BlockResult(np.ones(3), 0.5, 5, True, "newton")
    assert keep_better(better, init, 1.0) is better


@pytest.mark.parametrize("loss", LOSSES, ids=["sq", "ce"])
def test_loss_sample_values_and_hessians(loss):
    rng = np.random.default_rng(17)
    m, q = 6, 3
    Yhat = rng.standard_normal((m, q))
    Y = rng.standard_normal((m, q)) if isinstance(loss, SquaredLoss) else np.eye(q)[
        rng.integers(0, q, m)]
    v = loss.sample_values(Y, Yhat)
    assert v.shape == (m,) and v.mean() == pytest.approx(loss.value(Y, Yhat), rel=1e-13)
    H = loss.sample_hessians(Y, Yhat)
    for s in range(m):
        def grad_s(y, s=s):
            Z = Yhat.copy()
            Z[s] = y
            return loss.grad(Y, Z)[s] * m
        J = np.column_stack([(grad_s(Yhat[s] + 1e-6 * e) - grad_s(Yhat[s] - 1e-6 * e)) / 2e-6
                             for e in np.eye(q)])
        assert np.allclose(H[s], J, atol=1e-6)


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


def test_sigmoid_p_block():
    from lifted_idl.activations import Sigmoid

    act, loss = Sigmoid(), SquaredLoss()
    d = instance(20, Tanh(), loss)
    d["X"] = 0.5 * (d["P"] + 1.0)
    args = [d[k] for k in ("A", "B", "b", "C", "D", "c", "X", "U", "Y", "lam", "mu")]
    fast, ref = solve_p(*args, act, loss), solve_p(*args, act, loss, method="cvxpy")
    assert fast.converged and rel(fast.objective, ref.objective) < RTOL
    assert 0.0 < fast.value.min() and fast.value.max() < 1.0
