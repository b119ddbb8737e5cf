"""Tests of the majorize–minimize (A, B, b) solver (``solve_ab(..., method="mm")``, blocks.ab_mm).

Checked: every MM step decreases its model and the model bounds the objective's change (so the
objective never increases); run to convergence, the answer matches the exact Newton solver and
the cvxpy formulation; the l1-ball constraint holds exactly (the l1-ball projection itself is
tested in tests/test_wellposedness.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from lifted_idl.activations import LeakyReLU, ReLU, Tanh
from lifted_idl.blocks import ab_mm as ab_mm_module
from lifted_idl.blocks import ab_objective, solve_ab
from lifted_idl.blocks.ab_mm import ab_mm
from lifted_idl.penalties import GroupPenalty, L1Penalty, L2Penalty, NoPenalty
from lifted_idl.wellposedness import project_inf_norm_ball

ACTS = {"relu": ReLU(), "tanh": Tanh(), "leaky_relu": LeakyReLU(0.1)}


def instance(seed, act, m=120, n=6, p=3):
    """Correlated states (as in the BCD loop: states are functions of U) and proxies in
    dom f*."""
    rng = np.random.default_rng(seed)
    U = rng.standard_normal((m, p))
    X = np.tanh(U @ rng.standard_normal((p, n)) + 0.5 * rng.standard_normal((m, n)))
    T = U @ rng.standard_normal((p, n)) + X @ rng.standard_normal((n, n)) * 0.3 + 0.2
    T += 0.3 * rng.standard_normal((m, n))
    if isinstance(act, ReLU):
        P = np.maximum(T, 0.0)
    elif isinstance(act, Tanh):
        P = np.tanh(T)
    else:
        P = act(T)
    lam = rng.uniform(0.5, 3.0, n)
    init = (0.1 * rng.standard_normal((n, n)), 0.1 * rng.standard_normal((n, p)),
            0.1 * rng.standard_normal(n))
    return X, U, P, lam, init


@pytest.mark.parametrize(("adaptive", "accelerate"), [(False, False), (True, False),
                                                      (True, True)])
@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_mm_steps_decrease_model_and_objective(act, adaptive, accelerate):
    """Every step lowers its model (the majoriser at theta = 1) and, without extrapolation, the
    model bounds the objective's change; with it, the objective still never increases."""
    act = ACTS[act]
    X, U, P, lam, init = instance(0, act)
    init = (project_inf_norm_ball(init[0], 0.4), init[1], init[2])
    trace = []
    A, B, b, n_iter, _ = ab_mm(X, U, P, lam, 0.4, act, L2Penalty(0.01).restrict("ab"), True,
                               init, 1e-12, 30,
                               adaptive=adaptive, accelerate=accelerate, trace=trace)
    assert len(trace) == n_iter <= 30  # (exact QPs can converge to tol 1e-12 first)
    for f0, f1, dec in trace:
        assert np.all(dec <= 0.0)  # the QP's answer decreases the model
        if not accelerate:  # the model (theta = 1: the majoriser) bounds the change
            assert np.all(f1 - f0 <= dec + 1e-12 * np.maximum(1.0, np.abs(f0)))
        assert np.all(f1 <= f0)
    first, last = trace[0][0].sum(), trace[-1][1].sum()
    assert last < first - 1e-3 * abs(first)  # and it makes progress
    # the block objective at the answer is the sum of the traced rows' (up to f*(P))
    obj = ab_objective(X, U, P, lam, 0.4, act, L2Penalty(0.01), A, B, b)
    obj0 = ab_objective(X, U, P, lam, 0.4, act, L2Penalty(0.01), *init)
    assert obj - obj0 == pytest.approx(last - first, rel=1e-8, abs=1e-12)


@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_shortened_steps_keep_the_model_bound_and_spare_qps(act, monkeypatch):
    """A row that fails the acceptance test first tries the shortened step along its QP's
    direction (``_shortened``): every row accepted there is inside the ball, its objective
    lies below its model at the raised curvature (a model decrease <= 0), its theta was
    raised, and its pre-activations and objective (computed without a product) are those of
    its new weights; run to convergence, the MM steps solve fewer QPs with the shortened steps than
    without them and reach the same block optimum."""
    act = ACTS[act]
    X, U, P, lam, init = instance(4, act, m=200, n=8, p=4)
    kappa, pen = 0.4, L2Penalty(0.01).restrict("ab")
    init = (project_inf_norm_ball(init[0], kappa), init[1], init[2])
    qps, shortened = [], []
    real_qp, real_short = ab_mm_module._mm_qp, ab_mm_module._shortened

    def count_qp(*args):
        qps.append(1)
        return real_qp(*args)

    def check_short(prob, todo, glob, ok, W0, Wt, Z, Zt, f, g, rt, theta, W1, Z1, f1, dec,
                    ratio):
        before, th0 = ok.copy(), theta.copy()
        real_short(prob, todo, glob, ok, W0, Wt, Z, Zt, f, g, rt, theta, W1, Z1, f1, dec,
                   ratio)
        k = np.flatnonzero(ok & ~before)
        rows = todo[k]
        assert np.all(dec[rows] <= 0.0)
        assert np.all(f1[rows] <= f[rows] + dec[rows] + 1e-12 * np.maximum(1, np.abs(f[rows])))
        assert np.all(np.abs(W1[rows, :prob.n]).sum(axis=1) <= kappa * (1 + 1e-12))
        assert np.all(theta[glob[k]] > th0[glob[k]])
        # the pre-activations and objectives it computed without a product are those of the
        # accepted rows
        Zr = prob.M @ W1[rows].T
        np.testing.assert_allclose(Z1[:, rows], Zr, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(f1[rows], prob.values(W1[rows], Zr, glob[k]), rtol=1e-12,
                                   atol=1e-12)
        shortened.append(k.size)

    monkeypatch.setattr(ab_mm_module, "_mm_qp", count_qp)
    monkeypatch.setattr(ab_mm_module, "_shortened", check_short)
    out = {}
    for shorten in (True, False):
        monkeypatch.setattr(ab_mm_module, "SHORTEN", shorten)
        qps.clear()
        A, B, b, _, converged = ab_mm(X, U, P, lam, kappa, act, pen, True, init, 1e-10, 2000)
        assert converged
        out[shorten] = (len(qps), ab_objective(X, U, P, lam, kappa, act, L2Penalty(0.01),
                                               A, B, b))
    assert sum(shortened) > 0
    assert out[True][0] < out[False][0]
    assert out[True][1] == pytest.approx(out[False][1], rel=1e-8)


@pytest.mark.parametrize("act", ["relu", "tanh", "leaky_relu"])
@pytest.mark.parametrize("pen", [L2Penalty(0.02), L1Penalty(0.01)], ids=["l2", "l1"])
@pytest.mark.parametrize("kappa", [0.3, 50.0], ids=["ball", "free"])
def test_mm_converges_to_exact_optimum(act, pen, kappa):
    act_ = ACTS[act]
    seed = {"relu": 1, "tanh": 2, "leaky_relu": 3}[act]
    X, U, P, lam, init = instance(seed, act_)
    args = (X, U, P, lam, kappa, act_, pen)
    mm = solve_ab(*args, init=init, method="mm", tol=1e-10, max_iter=5000)
    newton = solve_ab(*args, init=init, method="fast", tol=1e-10, max_iter=500)
    assert mm.solver == "mm" and mm.converged
    assert mm.objective == pytest.approx(newton.objective, rel=1e-6)
    if act == "relu" or kappa < 1:  # the cvxpy twin (exponential cones for tanh: slower)
        ref = solve_ab(*args, method="cvxpy", tol=1e-9)
        assert mm.objective <= ref.objective + 1e-6 * abs(ref.objective)
    # the constraint is active exactly when asked for
    norms = np.abs(mm.value[0]).sum(axis=1)
    assert np.all(norms <= kappa * (1 + 1e-12))
    if kappa < 1:
        assert np.any(norms >= kappa * (1 - 1e-9))
    else:
        assert np.all(norms < 0.5 * kappa)


@pytest.mark.parametrize("seed", range(3))
def test_mm_ball_holds_exactly_and_never_above_init(seed):
    act = ReLU()
    X, U, P, lam, init = instance(10 + seed, act, n=8)
    init = (init[0] * 20.0, init[1], init[2])  # A outside the ball: projected first
    for max_iter in (1, 3):
        r = solve_ab(X, U, P, lam, 0.2, act, NoPenalty(), init=init, method="mm",
                     max_iter=max_iter)
        assert np.abs(r.value[0]).sum(axis=1).max() <= 0.2 * (1 + 1e-12)
    # from a feasible start the returned objective is never above the start's
    A0 = project_inf_norm_ball(init[0], 0.2)
    obj0 = ab_objective(X, U, P, lam, 0.2, act, NoPenalty(), A0, init[1], init[2])
    r = solve_ab(X, U, P, lam, 0.2, act, NoPenalty(), init=(A0, init[1], init[2]),
                 method="mm", max_iter=2)
    assert r.objective < obj0


def test_mm_without_bias_matches_newton():
    act = ReLU()
    X, U, P, lam, init = instance(4, act)
    args = (X, U, P, lam, 0.5, act, L2Penalty(0.01))
    mm = solve_ab(*args, fit_bias=False, method="mm", tol=1e-10, max_iter=5000)
    newton = solve_ab(*args, fit_bias=False, method="fast", tol=1e-10)
    assert np.all(mm.value[2] == 0.0)
    assert mm.objective == pytest.approx(newton.objective, rel=1e-6)


def test_mm_group_penalty_uses_exact_solver():
    act = ReLU()
    X, U, P, lam, _ = instance(5, act)
    D = np.random.default_rng(0).standard_normal((2, U.shape[1]))
    pen = GroupPenalty(0.05).restrict("ab", {"D": D})
    mm = solve_ab(X, U, P, lam, 0.5, act, pen, method="mm")
    fast = solve_ab(X, U, P, lam, 0.5, act, pen, method="fast")
    assert mm.solver == fast.solver != "mm"
    assert mm.objective == fast.objective


def test_bad_method_names_the_options():
    X, U, P, lam, _ = instance(0, ReLU())
    with pytest.raises(ValueError, match="'mm'"):
        solve_ab(X, U, P, lam, 0.5, "relu", "l2", method="newton")


@pytest.mark.filterwarnings("ignore::lifted_idl.exceptions.ConvergenceWarning")
def test_bcd_with_mm_steps_keeps_rounds_monotone():
    """fit_bcd(ab_method="mm"): the relaxed objective never increases within a round, the
    (A, B) entry included, and the true training objective never increases."""
    from lifted_idl.activations import get_activation
    from lifted_idl.datasets import make_teacher
    from lifted_idl.losses import SquaredLoss
    from lifted_idl.training.bcd import fit_bcd

    U, y, _, _, _ = make_teacher(150, 10, n_features=4, n_hidden=6, random_state=1)
    Y = (y / y.std())[:, None]
    _, hist = fit_bcd(U, Y, SquaredLoss(), n_hidden=8, kappa=0.9,
                      activation=get_activation("relu"), pen_ab=L2Penalty(1e-3),
                      pen_cd=L2Penalty(1e-3), max_iter=5, random_state=0, ab_method="mm",
                      ab_max_iter=3)
    rounds = {}
    for it, block, _lam, val in hist.relaxed:
        rounds.setdefault(it, []).append((block, val))
    assert all("AB" in dict(v) for v in rounds.values())
    for vals in rounds.values():
        for (_, a), (_, b) in zip(vals, vals[1:], strict=False):
            assert b <= a + 1e-10 * max(1.0, abs(a))
    assert np.all(np.diff(hist.train_loss) <= 1e-12)
    with pytest.raises(ValueError, match="ab_method"):
        fit_bcd(U, Y, SquaredLoss(), n_hidden=8, kappa=0.9, activation="relu",
                pen_ab=L2Penalty(1e-3), pen_cd=L2Penalty(1e-3), ab_method="newton")


@pytest.mark.parametrize(("seed", "pen"), [(0, L2Penalty(0.02)), (1, L2Penalty(1e-4)),
                                           (2, NoPenalty())])
def test_mm_qp_active_set_matches_cvxpy(seed, pen, monkeypatch):
    """The QP of one MM step (ADMM warm-up, then the active-set method on the rows that leave
    the ball) on a Gram matrix made rank deficient by a constant input (as the constant pixels
    of digits): with the defaults, feasible and a model decrease; run to its end, the
    active-set method reaches cvxpy's minimum."""
    import cvxpy as cp

    from lifted_idl.blocks import ab_mm as mod

    act = ReLU()
    X, U, P, lam, _ = instance(20 + seed, act, n=7, p=4)
    U[:, 1] = 0.7  # constant column: G_c singular
    kappa = 0.3
    prob = mod._MMProblem(X, U, P, lam, kappa, act, pen.restrict("ab"), True)
    rng = np.random.default_rng(seed)
    W0 = 0.1 * rng.standard_normal((7, prob.M.shape[1]))
    W0[:, :7] = project_inf_norm_ball(W0[:, :7], kappa)
    g = prob.grad(prob.M @ W0.T)
    c = prob.c0 * rng.uniform(0.05, 1.0, 7)
    assert prob.face
    # the defaults (a loose ADMM tolerance), then 3 ADMM iterations to a tolerance no row meets
    # and the active-set method run to its end
    for rounds, warmup, itol in ((mod.ACTIVE_SET_ROUNDS, mod.ADMM_WARMUP, 1e-3), (30, 3, 1e-14)):
        monkeypatch.setattr(mod, "ACTIVE_SET_ROUNDS", rounds)
        monkeypatch.setattr(mod, "ADMM_WARMUP", warmup)
        W1 = mod._mm_qp(prob, W0, g, c, np.zeros((7, prob.npen)), itol, 500)
        dec = prob.model_decrease(W0, W1, g, c)
        assert np.all(dec <= 0.0)
        assert np.abs(W1[:, :7]).sum(axis=1).max() <= kappa * (1 + 1e-12)
    G = prob.Gc
    for i in range(7):
        w = cp.Variable(prob.npen)
        d = w - W0[i, :prob.npen]
        obj = g[i, :prob.npen] @ d + 0.5 * c[i] * cp.quad_form(d, cp.psd_wrap(G))
        if isinstance(pen, L2Penalty):
            obj += 0.5 * pen.alpha * cp.sum_squares(w)
        cp.Problem(cp.Minimize(obj), [cp.norm1(w[:7]) <= kappa]).solve(solver=cp.CLARABEL)
        ref = prob.model_decrease(W0[i:i + 1], np.append(w.value, W1[i, -1])[None], g[i:i + 1],
                                  c[i:i + 1])[0]
        assert dec[i] <= ref + 1e-7 * abs(ref) + 1e-12
        assert dec[i] == pytest.approx(ref, rel=1e-5, abs=1e-12)


def test_zero_step_of_loose_qps_is_not_convergence(monkeypatch):
    """A first step whose loosely solved QPs move no row is not convergence: the next step
    solves them at the tight floor and moves (before, the block returned its start as
    converged, and a BCD round was wasted)."""
    import lifted_idl.blocks.ab_mm as mm

    act = ACTS["relu"]
    X, U, P, lam, init = instance(3, act)
    init = (project_inf_norm_ball(init[0], 0.4), init[1], init[2])
    tol = 1e-8
    real = mm._mm_step

    def loose_fails(prob, rows, W, Z, f, g, theta, duals, inner_tol, inner_max_iter):
        if inner_tol > mm.INNER_FACTOR * tol:  # a loose solve that lowers no model
            return W, Z, f, np.zeros(len(rows)), np.ones(len(rows))
        return real(prob, rows, W, Z, f, g, theta, duals, inner_tol, inner_max_iter)

    monkeypatch.setattr(mm, "_mm_step", loose_fails)
    A, B, b, n_iter, converged = ab_mm(X, U, P, lam, 0.4, act, NoPenalty().restrict("ab"),
                                      True, init, tol, 3, accelerate=False)
    assert n_iter >= 2
    assert max(np.abs(A - init[0]).max(), np.abs(B - init[1]).max()) > 1e-4
