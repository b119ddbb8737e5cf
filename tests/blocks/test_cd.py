"""Tests of the (C, D, c) block (lifted_idl.blocks.cd, theory §8): the fast solvers against the
cvxpy formulation of the same problem (objective within 1e-6 relative) and against their
optimality conditions (subgradient, prox fixed point), with plain and group penalties.
"""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import CLARABEL_STATUS, LOSSES, ORDS, PENS, RTOL, cd_instance, instance, rel

from lifted_idl.activations import ReLU
from lifted_idl.blocks import BlockResult, cd_objective, solve_cd
from lifted_idl.losses import SoftmaxCrossEntropy, SquaredLoss
from lifted_idl.penalties import GroupPenalty, L1Penalty, L2Penalty, NoPenalty

pytestmark = CLARABEL_STATUS


# --------------------------------------------------------------------------------------------
# plain penalties
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
    Hessian (few variables, the default there) and preconditioned Newton-CG (many): both reach
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


def test_softmax_ridge_pcg_saturated_weighted_warm_start():
    """Preconditioned Newton-CG where it matters: a nearly separable 4-class problem (the
    softmax saturates, so the whitened Hessian's curvature spans orders of magnitude), a small
    ridge, sample weights, and a warm start far from the optimum. It meets the weighted
    optimality conditions, agrees with Newton on the explicit Hessian, and never ends above
    its start."""
    from lifted_idl.blocks import cd as cd_mod

    rng = np.random.default_rng(7)
    m, d, q, alpha = 300, 12, 4, 1e-4
    M = rng.standard_normal((m, d)) * rng.uniform(0.2, 3.0, d)
    T = 3.0 * rng.standard_normal((q, d))
    Y = np.eye(q)[np.argmax(M @ T.T + 0.3 * rng.standard_normal((m, q)), axis=1)]
    w = rng.uniform(0.2, 2.0, m)
    w *= m / w.sum()
    W0, c0 = 5.0 * T, rng.standard_normal(q)
    loss, pen = SoftmaxCrossEntropy(), L2Penalty(alpha)
    P, U = M[:, :7], M[:, 7:]

    def obj(W, c):
        return cd_objective(P, U, Y, loss, pen, W[:, :7], W[:, 7:], c, sample_weight=w)

    sols = {}
    for dense_max in (0, 10**6):
        W, c, _, conv, solver = cd_mod._softmax_ridge_newton(
            M, Y, alpha, True, W0, c0, 1e-10, 200, dense_max=dense_max, w=w)
        assert conv and solver == ("newton" if dense_max else "newton_cg")
        G = loss.grad(Y, M @ W.T + c, sample_weight=w)
        assert np.abs(G.T @ M + alpha * W).max() < 1e-8
        assert np.abs(G.sum(axis=0)).max() < 1e-8
        assert obj(W, c) <= obj(W0, c0)
        sols[dense_max] = W, c
    (Wc, cc), (Wd, cd) = sols[0], sols[10**6]
    assert np.abs(Wc - Wd).max() <= 1e-6 * np.abs(Wd).max()
    assert rel(obj(Wc, cc), obj(Wd, cd)) < 1e-12


def test_softmax_newton_cg_line_search_takes_the_point_it_evaluated(monkeypatch):
    """When the Armijo search runs down to its smallest step, the point taken is the last one
    evaluated: the next Newton step starts from that point's softmax (an inconsistent pair
    once moved the iterate by t but kept the value and softmax of 2t). The first direction
    is built so that Armijo fails at every step down to 2**-33 while 2**-33 still decreases
    the objective; the second is uphill, which ends the solve where the first step left it."""
    from scipy.special import logsumexp, softmax

    from lifted_idl.blocks import cd as cd_mod

    rng = np.random.default_rng(3)
    m, r, q = 60, 4, 3
    Mt = rng.standard_normal((m, r))
    Y = np.eye(q)[rng.integers(0, q, m)]
    pw = np.full(r, 0.01)
    Ma = np.hstack([Mt, np.ones((m, 1))])
    pa = np.append(pw, 0.0)

    def phi(Wa):
        Z = Ma @ Wa.T
        return 0.5 * float(np.vdot(Wa * pa, Wa)) - float(np.vdot(Y, Z)) / m + float(
            logsumexp(Z, axis=1).mean())

    Wa0 = np.zeros((q, r + 1))
    g0 = (softmax(Ma @ Wa0.T, axis=1) - Y).T @ Ma / m + Wa0 * pa
    u = -g0 / np.linalg.norm(g0)
    f0, slope = phi(Wa0), float(np.vdot(g0, u))
    lo, hi = 0.0, 1.0
    while phi(Wa0 + hi * u) < f0:
        hi *= 2.0
    for _ in range(200):  # s*: where the objective along u comes back to f0
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if phi(Wa0 + mid * u) < f0 else (lo, mid)
    h = 1e-6 * hi
    dphi = (phi(Wa0 + (hi + h) * u) - phi(Wa0 + (hi - h) * u)) / (2 * h)
    s = hi * (1.0 - 0.5e-4 * abs(slope) / dphi)  # Armijo fails at s, the objective is lower
    assert f0 + 1e-4 * s * slope < phi(Wa0 + s * u) < f0
    seen = []

    def fake_pcg(Ma_, Ma2, S, Sw, pa_, g, eps):
        seen.append(S.copy())
        return u * (s * 2.0**33) if len(seen) == 1 else g  # then uphill: the solve stops

    monkeypatch.setattr(cd_mod, "_softmax_pcg", fake_pcg)
    x, _, _ = cd_mod._softmax_newton_cg(Mt, Y, pw, True, np.zeros(q * (r + 1)), 1e-14, 5)
    assert len(seen) == 2
    Wa1 = np.hstack([x[:q * r].reshape(q, r), x[q * r:, None]])
    assert phi(Wa1) < f0
    np.testing.assert_allclose(seen[1], softmax(Ma @ Wa1.T, axis=1), rtol=0, atol=1e-12)


def _softmax_problem(seed, m, r, q, signal, penalty):
    """A random cross-entropy + ridge problem of the (C, D, c) solvers: the whitened design
    ``Mt``, one-hot ``Y`` (classes from the first q columns times ``signal`` plus noise), the
    ridge weights ``pw``, the norm of the objective's gradient at a flat point, and a start."""
    from scipy.special import softmax

    rng = np.random.default_rng(seed)
    Mt = rng.standard_normal((m, r))
    Y = np.eye(q)[np.argmax(Mt[:, :q] * signal + rng.standard_normal((m, q)), axis=1)]
    pw = np.full(r, penalty)
    Ma = np.hstack([Mt, np.ones((m, 1))])
    pa = np.append(pw, 0.0)

    def grad_norm(x):
        Wa = np.hstack([x[:q * r].reshape(q, r), x[q * r:, None]])
        g = (softmax(Ma @ Wa.T, axis=1) - Y).T @ Ma / m + Wa * pa
        return np.linalg.norm(g)

    return Mt, Y, pw, grad_norm, 0.3 * rng.standard_normal(q * (r + 1))


@pytest.mark.parametrize("dense_max", [10**6, 0], ids=["dense", "cg"])
def test_softmax_newton_rtol_stops_relative_to_the_warm_start(dense_max):
    """The Newton solvers of the cross-entropy block with ``rtol``: the (whitened) gradient
    ends at most ``rtol`` times its norm at the start, short of the exact solve's, in fewer
    Newton steps."""
    from lifted_idl.blocks import cd as cd_mod

    rtol = 0.05
    Mt, Y, pw, grad_norm, x0 = _softmax_problem(11, 200, 6, 3, 2.0, 0.01)
    newton = cd_mod._softmax_dense_newton if dense_max else cd_mod._softmax_newton_cg
    x, it, ok = newton(Mt, Y, pw, True, x0, 1e-10, 100, None, rtol)
    xe, ite, oke = newton(Mt, Y, pw, True, x0, 1e-10, 100)
    assert ok and oke and it < ite
    assert 1e3 * grad_norm(xe) < grad_norm(x) <= rtol * grad_norm(x0)


@pytest.mark.parametrize("rtol", [1e-3, 1e-6])
def test_softmax_newton_cg_single_precision_products_meet_rtol(rtol):
    """With ``rtol`` Newton-CG computes its Hessian products in single precision: the solve
    still meets tight relative tolerances (the gradient is double precision), and lands
    on the exact solve's point up to the gradient it stops at."""
    from lifted_idl.blocks import cd as cd_mod

    Mt, Y, pw, grad_norm, x0 = _softmax_problem(13, 300, 20, 5, 3.0, 1e-3)
    x, _, ok = cd_mod._softmax_newton_cg(Mt, Y, pw, True, x0, 1e-12, 100, None, rtol)
    xe, _, oke = cd_mod._softmax_newton_cg(Mt, Y, pw, True, x0, 1e-12, 100)
    assert ok and oke
    assert grad_norm(x) <= rtol * grad_norm(x0)
    # strong convexity (ridge): |x - x*| <= |g(x)| / min(pw)
    assert np.linalg.norm(x - xe) <= grad_norm(x) / 1e-3


def test_solve_cd_rtol_warm_start_only():
    """``solve_cd``'s ``rtol``: from ``init``, fewer Newton steps and an objective between the
    start's and the optimum's; without ``init`` (a cold start) the exact solve."""
    rng = np.random.default_rng(12)
    m, q, rtol = 200, 3, 0.05
    U = rng.standard_normal((m, 3))
    P = np.maximum(rng.standard_normal((m, 3)), 0.0)
    Y = np.eye(q)[np.argmax(2 * U + rng.standard_normal((m, q)), axis=1)]
    loss, pen = SoftmaxCrossEntropy(), L2Penalty(0.01)
    init = (np.ones((q, 3)), -np.ones((q, 3)), np.zeros(q))
    kw = dict(tol=1e-10, max_iter=100)
    ref = solve_cd(P, U, Y, loss, pen, init=init, **kw)
    fast = solve_cd(P, U, Y, loss, pen, init=init, rtol=rtol, **kw)
    assert fast.converged and fast.n_iter < ref.n_iter
    assert ref.objective < fast.objective < cd_objective(P, U, Y, loss, pen, *init)
    cold = solve_cd(P, U, Y, loss, pen, rtol=rtol, **kw)
    exact = solve_cd(P, U, Y, loss, pen, **kw)
    assert cold.objective == exact.objective and cold.n_iter == exact.n_iter
    with pytest.raises(ValueError, match="rtol"):
        solve_cd(P, U, Y, loss, pen, rtol=0.0)


# --------------------------------------------------------------------------------------------
# the group penalty
# --------------------------------------------------------------------------------------------
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
    pen = GroupPenalty(0.08, ord).restrict("cd", {"B": B}, ridge=0.01)
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
    r = solve_cd(P, U, Y, "squared", GroupPenalty(alpha).restrict("cd", {"B": B}))
    C, D, c = r.value
    R = (P @ C.T + U @ D.T + c - Y) / len(U)
    g = np.linalg.norm(R.T @ U, axis=0)
    for j in range(3):  # the zero columns of B
        if np.all(D[:, j] == 0):
            assert g[j] <= alpha * (1 + 1e-8)
        else:
            assert g[j] > alpha * (1 - 1e-8)
    assert np.any(np.all(D[:, :3] == 0, axis=0))
