"""Robust training: Lipschitz/sensitivity penalties, robust training in fit_gradient (its mu_inf
projection is tested in test_wellposedness.py), and the robust-counterpart (A, B) block
(theory §2, §7, §8; [IDL (4.7)], [NEMON], arXiv §5.3)."""

import itertools
import warnings

import numpy as np
import pytest

from lifted_idl import BoundConditionError, ConvergenceWarning, ImplicitModel
from lifted_idl.blocks import ab_objective, solve_ab
from lifted_idl.blocks.ab_robust import ab_robust_objective, solve_ab_robust
from lifted_idl.penalties import L1Penalty, L2Penalty, NoPenalty
from lifted_idl.robustness import lipschitz_bound
from lifted_idl.robustness.penalties import (
    InputScaledPenalty,
    LipschitzSurrogatePenalty,
    SensitivityPenalty,
)
from lifted_idl.training.gradient import fit_gradient, implicit_gradients
from lifted_idl.wellposedness import (
    inf_norm,
    mu_inf,
    nemon_parametrize,
    project_inf_norm_ball,
    project_mu_inf,
)

TIGHT = 1e-13


def _params(rng, n=5, p=4, q=3, kappa=0.7, zero_d=False):
    A = project_inf_norm_ball(rng.standard_normal((n, n)), kappa)
    A *= rng.uniform(0.5, 1.0, (n, 1))  # distinct row norms: a unique maximising row
    return {"A": A, "B": rng.standard_normal((n, p)), "C": rng.standard_normal((q, n)),
            "D": np.zeros((q, p)) if zero_d else rng.standard_normal((q, p))}


def _model(P, **kw):
    return ImplicitModel(P["A"], P["B"], P["C"], P["D"], **kw)


def _fd(pen, P, h=1e-6):
    out = {}
    for k in ("A", "B", "C", "D"):
        G = np.zeros_like(P[k])
        for i in np.ndindex(P[k].shape):
            vals = []
            for s in (1.0, -1.0):
                Q = {kk: v.copy() for kk, v in P.items()}
                Q[k][i] += s * h
                vals.append(pen.value(Q))
            G[i] = (vals[0] - vals[1]) / (2 * h)
        out[k] = G
    return out


# ----------------------------------------------------------------------------------------------
# LipschitzSurrogatePenalty [IDL (4.7)]
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("measure", ["inf_norm", "mu_inf"])
def test_lipschitz_surrogate_upper_bounds_the_lipschitz_constant(measure):
    rng = np.random.default_rng(0)
    kind = "rho" if measure == "inf_norm" else "nemon"
    for _ in range(5):
        P = _params(rng)
        if measure == "mu_inf":  # ||A||_inf > 1, mu_inf(A) < 1
            P["A"] = nemon_parametrize(1.5 * rng.standard_normal((5, 5)), 0.4)
            assert inf_norm(P["A"]) > 1
        pen = LipschitzSurrogatePenalty(2.0, measure=measure)
        a = inf_norm(P["A"]) if measure == "inf_norm" else max(mu_inf(P["A"]), 0.0)
        b, c, d = (inf_norm(P[k]) for k in "BCD")
        assert pen.value(P) == pytest.approx(2.0 * (0.5 * (b * b + c * c) / (1 - a) + d),
                                             rel=1e-12)
        rho = lipschitz_bound(_model(P), kind=kind)
        assert pen.value(P) >= 2.0 * rho * (1 - 1e-12)
        # equality in AM-GM: ||B||_inf = ||C||_inf
        Q = dict(P, C=P["C"] * (b / c))
        assert pen.value(Q) == pytest.approx(2.0 * lipschitz_bound(_model(Q), kind=kind),
                                             rel=1e-10)


@pytest.mark.parametrize("measure, smoothing",
                         [("inf_norm", 0.0), ("mu_inf", 0.0), ("inf_norm", 0.3), ("mu_inf", 0.1)])
def test_lipschitz_surrogate_subgradient_inequality(measure, smoothing):
    """Convexity: f(Y) >= f(X) + <g(X), Y - X> on random pairs (both in the domain)."""
    rng = np.random.default_rng(1)
    pen = LipschitzSurrogatePenalty(0.7, measure=measure, smoothing=smoothing)
    worst = np.inf
    for _ in range(200):
        X, Y = _params(rng, kappa=rng.uniform(0.1, 0.9)), _params(rng, kappa=0.9)
        if rng.random() < 0.5:  # nearby pairs probe the local cut
            Y = {k: X[k] + 0.05 * rng.standard_normal(X[k].shape) for k in X}
            Y["A"] = project_inf_norm_ball(Y["A"], 0.95)
        if measure == "mu_inf" and rng.random() < 0.5:
            X["A"] = nemon_parametrize(rng.standard_normal((5, 5)), rng.uniform(-0.5, 0.9))
            Y["A"] = nemon_parametrize(rng.standard_normal((5, 5)), rng.uniform(-0.5, 0.9))
        g = pen.grad(X)
        lin = pen.value(X) + sum(float(np.vdot(g[k], Y[k] - X[k])) for k in g)
        worst = min(worst, pen.value(Y) - lin)
    assert worst >= -1e-10


@pytest.mark.parametrize("measure, smoothing",
                         [("inf_norm", 0.0), ("mu_inf", 0.0), ("inf_norm", 0.5), ("mu_inf", 0.2)])
def test_lipschitz_surrogate_gradient_matches_finite_differences(measure, smoothing):
    rng = np.random.default_rng(2)
    P = _params(rng)
    if measure == "mu_inf":
        P["A"] = nemon_parametrize(rng.standard_normal((5, 5)), 0.6)
        P["A"] -= np.diag(rng.uniform(0.0, 0.3, 5))  # distinct row measures: a unique max
        assert mu_inf(P["A"]) > 0  # differentiable branch of max(mu, 0)
    pen = LipschitzSurrogatePenalty(1.3, measure=measure, smoothing=smoothing)
    g, fd = pen.grad(P), _fd(pen, P)
    for k in g:
        assert np.linalg.norm(fd[k]) > 0, k
        np.testing.assert_allclose(g[k], fd[k], rtol=1e-6, atol=1e-7)


def test_lipschitz_surrogate_smoothing_is_a_tight_upper_bound():
    """exact <= smoothed <= the exact formula with each norm raised by tau * log(rows)."""
    rng = np.random.default_rng(8)
    for tau in (0.01, 0.1, 1.0):
        P = _params(rng, n=6, p=4, q=3)
        exact = LipschitzSurrogatePenalty(1.0).value(P)
        smooth = LipschitzSurrogatePenalty(1.0, smoothing=tau).value(P)
        a = inf_norm(P["A"])
        b = inf_norm(P["B"]) + tau * np.log(6)
        c = inf_norm(P["C"]) + tau * np.log(3)
        d = inf_norm(P["D"]) + tau * np.log(3)
        assert exact <= smooth <= 0.5 * (b * b + c * c) / (1 - a) + d + 1e-12
        if tau == 1.0:
            assert smooth > exact * (1 + 1e-3)
    assert LipschitzSurrogatePenalty(1.0, smoothing=1e-6).value(P) == pytest.approx(
        LipschitzSurrogatePenalty(1.0).value(P), rel=1e-5)
    with pytest.raises(ValueError, match="smoothing"):
        LipschitzSurrogatePenalty(1.0, smoothing=-0.1)


def test_lipschitz_surrogate_domain_and_arguments():
    rng = np.random.default_rng(3)
    P = _params(rng)
    P["A"] = nemon_parametrize(2 * rng.standard_normal((5, 5)), 0.3)  # ||A|| > 1, mu < 1
    with pytest.raises(BoundConditionError, match=r"\|\|A\|\|_inf < 1"):
        LipschitzSurrogatePenalty(1.0).value(P)
    assert np.isfinite(LipschitzSurrogatePenalty(1.0, measure="mu_inf").value(P))
    with pytest.raises(ValueError, match="alpha"):
        LipschitzSurrogatePenalty(-1.0)
    with pytest.raises(ValueError, match="measure"):
        LipschitzSurrogatePenalty(1.0, measure="l2")
    with pytest.raises(ValueError, match="missing 'D'"):
        LipschitzSurrogatePenalty(1.0).value({k: P[k] for k in "ABC"})
    # an ImplicitModel is accepted as params
    Q = _params(rng)
    assert LipschitzSurrogatePenalty(1.0).value(_model(Q)) == LipschitzSurrogatePenalty(
        1.0).value(Q)


# ----------------------------------------------------------------------------------------------
# SensitivityPenalty [IDL Thm 4.2]
# ----------------------------------------------------------------------------------------------
def test_sensitivity_penalty_value_is_the_sensitivity_lipschitz_bound():
    rng = np.random.default_rng(4)
    for _ in range(4):
        P = _params(rng, n=6, p=3, q=4)
        pen = SensitivityPenalty(0.5)
        assert pen.value(P) == pytest.approx(
            0.5 * lipschitz_bound(_model(P), kind="sensitivity"), rel=1e-10)
        # tighter than rho (theory §7)
        assert pen.value(P) <= 0.5 * lipschitz_bound(_model(P), kind="rho") * (1 + 1e-12)


def test_sensitivity_penalty_gradient_matches_finite_differences():
    rng = np.random.default_rng(5)
    P = _params(rng, n=5, p=3, q=3, kappa=0.8)
    pen = SensitivityPenalty(1.7)
    g, fd = pen.grad(P), _fd(pen, P)
    for k in g:
        assert np.linalg.norm(fd[k]) > 0, k
        np.testing.assert_allclose(g[k], fd[k], rtol=1e-6, atol=1e-7)


def test_sensitivity_penalty_pf_condition():
    rng = np.random.default_rng(6)
    P = _params(rng)
    # ||A||_inf > 1 but lambda_PF(|A|) < 1: still defined (and equal to the package's bound)
    A = np.triu(0.9 * np.abs(rng.standard_normal((5, 5))), k=1)
    A[0] = 0.6  # row sum 3 > 1, PF radius < 1 (nilpotent except one row)
    P["A"] = A
    assert inf_norm(A) > 1
    assert SensitivityPenalty(1.0).value(P) == pytest.approx(
        lipschitz_bound(_model(P), kind="sensitivity"), rel=1e-10)
    P["A"] = 0.3 * np.ones((5, 5))  # lambda_PF = 1.5
    with pytest.raises(BoundConditionError, match="lambda_PF"):
        SensitivityPenalty(1.0).value(P)


def test_input_scaled_penalty_is_the_penalty_of_the_raw_model():
    """Standardised inputs u~ = (u - mean) / s: the wrapper equals the penalty of the folded
    raw-input model, whose Lipschitz bound is in raw units; its gradient matches FD."""
    rng = np.random.default_rng(9)
    P = _params(rng, n=5, p=4, q=3)
    s = rng.uniform(0.2, 3.0, 4)
    mean = rng.standard_normal(4)
    std_model = ImplicitModel(P["A"], P["B"], P["C"], P["D"], b=rng.standard_normal(5),
                              c=rng.standard_normal(3))
    raw = std_model.replace(B=P["B"] / s, D=P["D"] / s, b=std_model.b - (P["B"] / s) @ mean,
                            c=std_model.c - (P["D"] / s) @ mean)
    U = rng.standard_normal((6, 4))
    np.testing.assert_allclose(raw.predict(U), std_model.predict((U - mean) / s), atol=1e-12)
    for inner in (SensitivityPenalty(0.4), LipschitzSurrogatePenalty(0.4, smoothing=0.2)):
        pen = InputScaledPenalty(inner, s)
        assert pen.value(std_model) == pytest.approx(inner.value(raw), rel=1e-12)
        g, fd = pen.grad(P), _fd(pen, P)
        for k in g:
            np.testing.assert_allclose(g[k], fd[k], rtol=1e-6, atol=1e-7)
    assert InputScaledPenalty(SensitivityPenalty(1.0), s).value(std_model) == pytest.approx(
        lipschitz_bound(raw, kind="sensitivity"), rel=1e-10)
    assert InputScaledPenalty(SensitivityPenalty(1.0), s).constraints == ("inf_norm",)
    with pytest.raises(ValueError, match="scale"):
        InputScaledPenalty(SensitivityPenalty(1.0), -s)
    with pytest.raises(ValueError, match="scale has 3"):
        InputScaledPenalty(SensitivityPenalty(1.0), s[:3]).value(P)


# ----------------------------------------------------------------------------------------------
# fit_gradient: model_penalty and constraint
# ----------------------------------------------------------------------------------------------
def _problem(seed=0, m=40, n=5, p=3, q=2, kappa=0.6, activation="relu"):
    rng = np.random.default_rng(seed)
    P = _params(rng, n=n, p=p, q=q, kappa=kappa)
    model = ImplicitModel(P["A"], P["B"], P["C"], P["D"], b=rng.standard_normal(n),
                          c=rng.standard_normal(q), activation=activation)
    U = rng.standard_normal((m, p))
    Y = rng.standard_normal((m, q))
    return model, U, Y


@pytest.mark.parametrize("pen", [LipschitzSurrogatePenalty(0.3), SensitivityPenalty(0.3)])
def test_fit_sgd_step_adds_model_penalty_gradient(pen):
    model, U, Y = _problem(seed=1, activation="tanh")
    lr = 1e-3
    _, grads = implicit_gradients(model, U, Y, "squared", tol=TIGHT)
    gp = pen.grad(model)
    with pytest.warns(ConvergenceWarning, match="max_iter=1"):
        new, hist = fit_gradient(model, U, Y, "squared", kappa=0.9, max_iter=1, optimizer="sgd",
                                 learning_rate=lr, solver_tol=1e-13, model_penalty=pen)
    for k in ("A", "B", "b", "C", "D", "c"):
        expect = getattr(model, k) - lr * (grads[k] + gp.get(k, 0.0))
        np.testing.assert_allclose(getattr(new, k), expect, rtol=0, atol=1e-12)
    # the recorded objective includes the penalty
    obj = 0.5 * np.mean(np.sum((Y - new.predict(U)) ** 2, axis=1)) + pen.value(new)
    assert hist["loss"][-1] == pytest.approx(obj, rel=1e-6)
    assert hist["model_penalty"] == pytest.approx(pen.value(new), rel=1e-12)


def test_fit_with_lipschitz_penalty_lowers_the_bound():
    model, U, Y = _problem(seed=2, m=60)
    kw = dict(kappa=0.8, max_iter=150, learning_rate=0.03, n_iter_no_change=150)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        plain, hp = fit_gradient(model, U, Y, "squared", **kw)
        robust, hr = fit_gradient(model, U, Y, "squared",
                                  model_penalty=LipschitzSurrogatePenalty(0.05), **kw)
    rho_p = lipschitz_bound(plain, kind="rho")
    rho_r = lipschitz_bound(robust, kind="rho")
    assert rho_r < 0.5 * rho_p
    loss = 0.5 * np.mean(np.sum((Y - robust.predict(U)) ** 2, axis=1))
    assert hr["loss"][-1] == pytest.approx(
        loss + LipschitzSurrogatePenalty(0.05).value(robust), rel=1e-6)
    assert hr["loss"][-1] < hr["loss_initial"]


def test_fit_mu_inf_constraint_projects_every_iterate():
    model, U, Y = _problem(seed=3, activation="tanh")
    rng = np.random.default_rng(30)
    A = nemon_parametrize(1.5 * rng.standard_normal((5, 5)), 0.3)  # ||A||_inf > 1
    model = model.replace(A=A)
    assert inf_norm(A) > 1 and model.well_posedness.certificate == "mu_inf"
    kappa = 0.3
    mus, norms = [], []

    def cb(info):
        mus.append(mu_inf(info["A"]))
        norms.append(inf_norm(info["A"]))

    loss0 = 0.5 * np.mean(np.sum((Y - model.predict(U)) ** 2, axis=1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        new, hist = fit_gradient(model, U, Y, "squared", kappa=kappa, max_iter=40,
                                 learning_rate=0.05, constraint="mu_inf", callback=cb,
                                 model_penalty=LipschitzSurrogatePenalty(0.01, "mu_inf"))
    assert max(mus) <= kappa + 1e-12
    assert max(mus) >= kappa - 1e-9  # the constraint was active
    assert max(norms) > 1  # not inside the inf-norm ball: the NE-MON set is larger
    assert hist["solver_failures"] == 0 and hist["constraint"] == "mu_inf"
    assert new.well_posedness.certificate == "mu_inf"
    assert 0.5 * np.mean(np.sum((Y - new.predict(U)) ** 2, axis=1)) < 0.7 * loss0


def test_fit_mu_inf_sgd_step_is_projected_implicit_gradient_step():
    """Under mu_inf the forward/adjoint solves are the averaged iterations: the step is exact."""
    model, U, Y = _problem(seed=4, activation="relu")
    rng = np.random.default_rng(40)
    model = model.replace(A=nemon_parametrize(rng.standard_normal((5, 5)), 0.5))
    assert model.well_posedness.alpha < 1
    lr = 1e-3
    _, grads = implicit_gradients(model, U, Y, "squared", tol=TIGHT)
    with pytest.warns(ConvergenceWarning, match="max_iter=1"):
        new, _ = fit_gradient(model, U, Y, "squared", kappa=0.5, max_iter=1, optimizer="sgd",
                              learning_rate=lr, solver_tol=1e-13, constraint="mu_inf")
    np.testing.assert_allclose(new.A, project_mu_inf(model.A - lr * grads["A"], 0.5),
                               rtol=0, atol=1e-12)
    for k in ("B", "b", "C", "D", "c"):
        np.testing.assert_allclose(getattr(new, k), getattr(model, k) - lr * grads[k],
                                   rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(constraint="l2"), "constraint"),
        (dict(model_penalty=3), "model_penalty"),
        (dict(model_penalty=SensitivityPenalty(1.0), constraint="mu_inf"), "constraint"),
        (dict(model_penalty=LipschitzSurrogatePenalty(1.0), constraint="mu_inf"), "constraint"),
    ],
)
def test_fit_robust_bad_arguments(kwargs, match):
    model, U, Y = _problem(seed=5, m=10)
    with pytest.raises(ValueError, match=match):
        fit_gradient(model, U, Y, "squared", kappa=0.5, **kwargs)


# ----------------------------------------------------------------------------------------------
# the robust-counterpart (A, B) block [arXiv §5.3]
# ----------------------------------------------------------------------------------------------
def _block_data(seed, m=30, n=4, p=3):
    rng = np.random.default_rng(seed)
    X = np.maximum(rng.standard_normal((m, n)), 0)
    U = rng.standard_normal((m, p))
    A0 = 0.3 * rng.standard_normal((n, n))
    B0 = rng.standard_normal((n, p))
    P = np.maximum(X @ A0.T + U @ B0.T + 0.3 * rng.standard_normal((m, n)), 0)
    lam = rng.uniform(0.5, 2.0, n)
    return X, U, P, lam, rng


def _relu_div(x, z):
    return 0.5 * x * x + 0.5 * np.maximum(z, 0) ** 2 - x * z


def test_robust_objective_is_the_worst_case_of_each_divergence_part():
    """Brute force over the box vertices: sup F+ and sup F- add +-|B|sigma to z."""
    X, U, P, lam, rng = _block_data(0, m=6, n=3, p=3)
    A = project_inf_norm_ball(rng.standard_normal((3, 3)), 0.7)
    B, b = rng.standard_normal((3, 3)), rng.standard_normal(3)
    sigma = np.array([0.3, 0.0, 0.8])
    Z0 = X @ A.T + U @ B.T + b
    verts = np.array(list(itertools.product([-1.0, 1.0], repeat=3))) * sigma
    Zv = Z0[None] + (verts @ B.T)[:, None, :]  # (vertices, m, n)
    up = 0.5 * np.maximum(Zv - P, 0) ** 2
    t = P - Zv
    tc = np.clip(t, 0, P)
    down = tc * t - 0.5 * tc * tc
    np.testing.assert_allclose(up + down, _relu_div(P, Zv), atol=1e-12)  # F = F+ + F-
    m = X.shape[0]
    brute = float(((up.max(0) + down.max(0)).sum(0) * lam).sum() / m)
    val = ab_robust_objective(X, U, P, lam, 0.7, "relu", "none", sigma, A, B, b)
    assert val == pytest.approx(brute, rel=1e-12)
    exact = float((_relu_div(P, Zv).max(0).sum(0) * lam).sum() / m)  # sup of F itself
    assert exact - 1e-12 <= val <= 2 * exact + 1e-12
    assert val > exact  # this instance has intervals that straddle P
    # sigma = 0: the plain block objective of solve_ab
    assert ab_robust_objective(X, U, P, lam, 0.7, "relu", "none", 0.0, A, B, b) == (
        pytest.approx(ab_objective(X, U, P, lam, 0.7, "relu", "none", A, B, b), rel=1e-12))


CASES = [
    (1, NoPenalty(), 0.3, True),
    (2, L2Penalty(0.02), np.array([0.0, 0.2, 0.5]), True),
    (3, L1Penalty(0.01), 0.2, True),
    (4, L2Penalty(0.01), 0.4, False),
]


@pytest.mark.parametrize("seed, pen, sigma, fit_bias", CASES)
def test_robust_block_fast_matches_cvxpy(seed, pen, sigma, fit_bias):
    X, U, P, lam, _ = _block_data(seed)
    kw = dict(fit_bias=fit_bias)
    fast = solve_ab_robust(X, U, P, lam, 0.6, "relu", pen, sigma, tol=1e-10, **kw)
    ref = solve_ab_robust(X, U, P, lam, 0.6, "relu", pen, sigma, method="cvxpy", tol=1e-9, **kw)
    assert fast.converged and fast.solver == "newton"
    assert abs(fast.objective - ref.objective) <= 1e-6 * abs(ref.objective)
    assert fast.objective <= ref.objective * (1 + 1e-9)
    A, B, b = fast.value
    assert inf_norm(A) <= 0.6 * (1 + 1e-12)
    if not fit_bias:
        np.testing.assert_array_equal(b, 0.0)
    assert fast.objective == pytest.approx(
        ab_robust_objective(X, U, P, lam, 0.6, "relu", pen, sigma, A, B, b), rel=1e-14)


@pytest.mark.parametrize("seed, pen, sigma, fit_bias", CASES)
def test_robust_block_fast_solution_satisfies_kkt(seed, pen, sigma, fit_bias):
    """KKT of the row problems, derived independently of the solver (subgradients of |b|)."""
    X, U, P, lam, _ = _block_data(seed)
    kappa = 0.6
    A, B, b = solve_ab_robust(X, U, P, lam, kappa, "relu", pen, sigma, fit_bias=fit_bias,
                              tol=1e-11).value
    m, n = X.shape
    sig = np.broadcast_to(np.asarray(sigma, dtype=float), (U.shape[1],))
    a1 = pen.alpha if isinstance(pen, L1Penalty) else 0.0
    a2 = pen.alpha if isinstance(pen, L2Penalty) else 0.0
    Z = X @ A.T + U @ B.T + b
    R = np.abs(B) @ sig
    up = np.maximum(Z + R - P, 0)
    down = np.clip(P - Z + R, 0, P)
    tol = 1e-6
    for i in range(n):
        w = lam[i] / m
        gz = w * (up[:, i] - down[:, i])
        gr = w * (up[:, i] + down[:, i]).sum()
        if fit_bias:
            assert abs(gz.sum()) <= tol
        # B: smooth part + (gr sigma_j + a1) d|b_j|
        gb = U.T @ gz + a2 * B[i]
        thr = gr * sig + a1
        nz = B[i] != 0
        np.testing.assert_allclose(gb[nz] + thr[nz] * np.sign(B[i, nz]), 0, atol=tol)
        assert np.all(np.abs(gb[~nz]) <= thr[~nz] + tol)
        # A: ball multiplier nu >= 0 with complementary slackness
        ga = X.T @ gz + a2 * A[i]
        an = A[i] != 0
        on_ball = np.abs(A[i]).sum() >= kappa * (1 - 1e-8)
        nu_j = -ga[an] * np.sign(A[i, an]) - a1
        nu = float(np.median(nu_j)) if (on_ball and an.any()) else 0.0
        assert nu >= -tol
        np.testing.assert_allclose(nu_j, nu, atol=tol)
        assert np.all(np.abs(ga[~an]) <= nu + a1 + tol)


def test_robust_block_sigma_zero_is_solve_ab_and_value_grows_with_sigma():
    X, U, P, lam, _ = _block_data(5)
    pen = L2Penalty(0.01)
    plain = solve_ab(X, U, P, lam, 0.6, "relu", pen, tol=1e-10)
    vals = [solve_ab_robust(X, U, P, lam, 0.6, "relu", pen, s, tol=1e-10).objective
            for s in (0.0, 0.1, 0.3, 0.6)]
    assert vals[0] == pytest.approx(plain.objective, rel=1e-8)
    assert all(v1 > v0 for v0, v1 in zip(vals, vals[1:], strict=False))
    # the robust solution shrinks |B| sigma compared with the plain one
    Br = solve_ab_robust(X, U, P, lam, 0.6, "relu", pen, 0.6, tol=1e-10).value[1]
    assert np.abs(Br).sum() < np.abs(plain.value[1]).sum()


def test_robust_block_init_and_bad_input():
    X, U, P, lam, rng = _block_data(6)
    n, p = X.shape[1], U.shape[1]
    init = (project_inf_norm_ball(rng.standard_normal((n, n)), 0.6),
            rng.standard_normal((n, p)), rng.standard_normal(n))
    f0 = ab_robust_objective(X, U, P, lam, 0.6, "relu", "l2", 0.2, *init)
    res = solve_ab_robust(X, U, P, lam, 0.6, "relu", "l2", 0.2, init=init, max_iter=1)
    assert res.objective <= f0
    with pytest.raises(ValueError, match="ReLU"):
        solve_ab_robust(X, U, np.clip(P, 0, 0.5), lam, 0.6, "tanh", "none", 0.1)
    with pytest.raises(ValueError, match="sigma"):
        solve_ab_robust(X, U, P, lam, 0.6, "relu", "none", -0.1)
    with pytest.raises(ValueError, match="sigma"):
        solve_ab_robust(X, U, P, lam, 0.6, "relu", "none", np.ones(p + 1))
    with pytest.raises(ValueError, match="P must lie"):
        solve_ab_robust(X, U, P - 1.0, lam, 0.6, "relu", "none", 0.1)
    with pytest.raises(ValueError, match="method"):
        solve_ab_robust(X, U, P, lam, 0.6, "relu", "none", 0.1, method="scs")


def test_robustness_penalties_refuse_non_finite_weights():
    """NaN weights are refused by name (the penalties used to return NaN values and
    gradients, or a raw LinAlgError for NaN in A)."""
    rng = np.random.default_rng(0)
    good = {"A": 0.1 * rng.standard_normal((3, 3)), "B": rng.standard_normal((3, 2)),
            "C": rng.standard_normal((1, 3)), "D": rng.standard_normal((1, 2))}
    for pen in (LipschitzSurrogatePenalty(1.0), SensitivityPenalty(1.0)):
        assert np.isfinite(pen.value(good))
        for key in ("A", "B", "C", "D"):
            bad = dict(good)
            bad[key] = np.full_like(good[key], np.nan)
            with pytest.raises(ValueError, match=f"params\\['{key}'\\] must be finite"):
                pen.value(bad)
            with pytest.raises(ValueError, match="must be finite"):
                pen.grad(bad)
