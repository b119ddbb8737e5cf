"""Tests of projected gradient training with implicit differentiation [IDL §6.2], theory §8."""

import warnings

import numpy as np
import pytest

from lifted_idl import ConvergenceWarning, IllPosedModelError, ImplicitModel
from lifted_idl.losses import SoftmaxCrossEntropy, SquaredLoss
from lifted_idl.penalties import L1Penalty, L2Penalty
from lifted_idl.training.gradient import fit_gradient, implicit_gradients, solve_adjoint
from lifted_idl.wellposedness import inf_norm, nemon_parametrize, project_inf_norm_ball

TIGHT = 1e-13  # forward and adjoint tolerance for the gradient checks (float64)


def _model(rng, n=4, p=3, q=2, activation="relu", kappa=0.8, bias=True):
    A = project_inf_norm_ball(rng.standard_normal((n, n)), kappa)
    return ImplicitModel(
        A, rng.standard_normal((n, p)), rng.standard_normal((q, n)),
        rng.standard_normal((q, p)),
        b=rng.standard_normal(n) if bias else None,
        c=rng.standard_normal(q) if bias else None,
        activation=activation,
    )


def _targets(rng, m, q, loss):
    if isinstance(loss, SquaredLoss):
        return rng.standard_normal((m, q))
    return np.eye(q)[rng.integers(0, q, m)]


def _fd_gradients(model, U, Y, loss, h=1e-6):
    """Central finite differences of the loss along every parameter entry (None -> zeros)."""
    out = {}
    for k in ("A", "B", "b", "C", "D", "c"):
        W = getattr(model, k)
        if W is None:
            W = np.zeros(model.n_states if k == "b" else model.n_outputs)
        fd = np.zeros_like(W)
        for i in np.ndindex(W.shape):
            vals = []
            for s in (1.0, -1.0):
                Wi = W.copy()
                Wi[i] += s * h
                vals.append(loss.value(Y, model.replace(**{k: Wi}).predict(U, tol=TIGHT)))
            fd[i] = (vals[0] - vals[1]) / (2 * h)
        out[k] = fd
    return out


def _rel_err(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)


def _assert_gradients_match(model, U, Y, loss):
    value, grads = implicit_gradients(model, U, Y, loss, tol=TIGHT)
    assert value == pytest.approx(loss.value(Y, model.predict(U, tol=TIGHT)), rel=1e-12)
    fd = _fd_gradients(model, U, Y, loss)
    for k in fd:
        assert grads[k].shape == fd[k].shape
        assert np.linalg.norm(fd[k]) > 0, k  # the check is not vacuous
        assert _rel_err(grads[k], fd[k]) < 1e-5, (k, _rel_err(grads[k], fd[k]))


# ----------------------------------------------------------------------------------------------
# gradients
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("loss", [SquaredLoss(), SoftmaxCrossEntropy()], ids=["sq", "xent"])
def test_gradients_match_finite_differences(activation, loss):
    rng = np.random.default_rng(0)
    model = _model(rng, n=4, p=3, q=3, activation=activation)
    U = rng.standard_normal((6, 3))
    _assert_gradients_match(model, U, _targets(rng, 6, 3, loss), loss)


def test_gradients_with_none_biases_are_those_at_zero():
    rng = np.random.default_rng(1)
    model = _model(rng, bias=False, activation="tanh")
    assert model.b is None and model.c is None
    U = rng.standard_normal((5, 3))
    _assert_gradients_match(model, U, rng.standard_normal((5, 2)), SquaredLoss())


def test_dag_model_gradients():
    """Strictly upper-triangular A (a feed-forward net, [IDL §3]) with ||A||_inf > 1."""
    rng = np.random.default_rng(2)
    n = 5
    A = np.triu(2.0 * rng.standard_normal((n, n)), k=1)
    model = _model(rng, n=n).replace(A=A)
    assert inf_norm(A) > 1 and model.well_posedness.certificate == "dag"
    U = rng.standard_normal((6, 3))
    _assert_gradients_match(model, U, rng.standard_normal((6, 2)), SquaredLoss())


def test_mu_inf_model_gradients_use_averaged_adjoint():
    """mu_inf(A) < 1 but lambda_PF(|A|) > 1: the adjoint needs the NE-MON averaging step."""
    rng = np.random.default_rng(3)
    n = 4
    A = nemon_parametrize(1.5 * rng.standard_normal((n, n)), 0.5)
    model = _model(rng, n=n, activation="tanh").replace(A=A)
    wp = model.well_posedness
    assert wp.certificate == "mu_inf" and wp.alpha < 1
    U = rng.standard_normal((5, 3))
    _assert_gradients_match(model, U, rng.standard_normal((5, 2)), SquaredLoss())


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_adjoint_matches_per_sample_linear_solve(activation):
    rng = np.random.default_rng(4)
    model = _model(rng, n=6, p=3, q=2, activation=activation, kappa=0.9)
    U = rng.standard_normal((8, 3))
    X = model.equilibrium(U, tol=TIGHT)
    Z = X @ model.A.T + U @ model.B.T + model.b
    Psi = model.activation.derivative(Z)
    G = rng.standard_normal((8, 2))
    res = solve_adjoint(model.A, Psi, Psi * (G @ model.C), tol=TIGHT)
    assert res.converged
    for s in range(U.shape[0]):
        # (I - Psi A^T) v = Psi C^T g   [IDL (6.5)]
        M = np.eye(6) - Psi[s][:, None] * model.A.T
        v = np.linalg.solve(M, Psi[s] * (model.C.T @ G[s]))
        np.testing.assert_allclose(res.X[s], v, rtol=1e-10, atol=1e-12)


def test_adjoint_gradient_of_b_is_sum_of_closed_form_adjoints():
    rng = np.random.default_rng(5)
    model = _model(rng, n=5, activation="relu")
    U = rng.standard_normal((7, 3))
    Y = rng.standard_normal((7, 2))
    loss = SquaredLoss()
    X = model.equilibrium(U, tol=TIGHT)
    _, grads = implicit_gradients(model, U, Y, loss, X=X, tol=TIGHT)
    Z = X @ model.A.T + U @ model.B.T + model.b
    Psi = model.activation.derivative(Z)
    G = loss.grad(Y, model.output(X, U))
    V = np.stack([
        np.linalg.solve(np.eye(5) - Psi[s][:, None] * model.A.T, Psi[s] * (model.C.T @ G[s]))
        for s in range(7)
    ])
    np.testing.assert_allclose(grads["b"], V.sum(0), rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(grads["A"], V.T @ X, rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(grads["D"], G.T @ U, rtol=1e-12)


def test_adjoint_warns_when_iterations_run_out():
    rng = np.random.default_rng(6)
    model = _model(rng, n=6, kappa=0.95, activation="tanh")
    U = rng.standard_normal((5, 3))
    Z = model.equilibrium(U) @ model.A.T + U @ model.B.T + model.b
    Psi = model.activation.derivative(Z)
    with pytest.warns(ConvergenceWarning, match="max_iter=2"):
        res = solve_adjoint(model.A, Psi, Psi * rng.standard_normal((5, 6)), tol=1e-14,
                            max_iter=2)
    assert not res.converged


def test_implicit_gradients_bad_input():
    rng = np.random.default_rng(7)
    model = _model(rng)
    U = rng.standard_normal((5, 3))
    Y = rng.standard_normal((5, 2))
    with pytest.raises(ValueError, match="U must have shape"):
        implicit_gradients(model, U[:, :2], Y, "squared")
    with pytest.raises(ValueError, match="Y must have shape"):
        implicit_gradients(model, U, Y[:4], "squared")
    with pytest.raises(ValueError, match="X must have shape"):
        implicit_gradients(model, U, Y, "squared", X=np.zeros((5, 3)))
    with pytest.raises(ValueError, match="Unknown loss"):
        implicit_gradients(model, U, Y, "hinge")
    with pytest.raises(IllPosedModelError):
        implicit_gradients(model.replace(A=2.0 * np.eye(4)), U, Y, "squared")
    soft = ImplicitModel(np.zeros((4, 4)), model.B, model.C, model.D, activation="softmax")
    with pytest.raises(ValueError, match="not componentwise"):
        implicit_gradients(soft, U, Y, "squared")


# ----------------------------------------------------------------------------------------------
# training
# ----------------------------------------------------------------------------------------------
def _teacher_problem(seed=0, m=80, p=3, n=5, q=1):
    rng = np.random.default_rng(seed)
    teacher = _model(rng, n=n, p=p, q=q, kappa=0.5, bias=False)
    U = rng.standard_normal((m, p))
    Y = teacher.predict(U)
    Y = (Y - Y.mean(0)) / Y.std(0)
    r = np.random.default_rng(seed + 100)
    student = ImplicitModel(
        0.01 * r.standard_normal((n, n)), r.standard_normal((n, p)) / np.sqrt(p),
        r.standard_normal((q, n)) / np.sqrt(n), np.zeros((q, p)),
    )
    return student, U, Y


def _objective(model, U, Y, loss, pen_ab=None, pen_cd=None):
    value = loss.value(Y, model.predict(U))
    if pen_ab is not None:
        value += pen_ab.restrict("ab").value(np.hstack([model.A, model.B]))
    if pen_cd is not None:
        value += pen_cd.restrict("cd").value(np.hstack([model.C, model.D]))
    return value


def test_fit_decreases_loss_on_teacher_problem():
    student, U, Y = _teacher_problem()
    loss = SquaredLoss()
    before = _objective(student, U, Y, loss)
    with pytest.warns(ConvergenceWarning, match="max_iter=150"):  # the rule cannot fire
        model, hist = fit_gradient(student, U, Y, loss, kappa=0.9, max_iter=150,
                                   learning_rate=0.05, n_iter_no_change=150)
    after = _objective(model, U, Y, loss)
    assert after < 0.5 * before
    assert hist["loss_initial"] == pytest.approx(before, rel=1e-6)
    # history["loss"][-1] is the objective of the returned (last) iterate
    assert hist["loss"][-1] == pytest.approx(after, rel=1e-6)
    assert len(hist["loss"]) == hist["n_iter"] == hist["n_steps"]


def test_fit_every_iterate_is_projected():
    student, U, Y = _teacher_problem(seed=1)
    kappa = 0.3
    student = student.replace(A=project_inf_norm_ball(np.ones((5, 5)), 0.9))
    norms = []
    with pytest.warns(ConvergenceWarning, match="max_iter=30"):
        _, hist = fit_gradient(student, U, Y, "squared", kappa=kappa, max_iter=30,
                               learning_rate=0.1, batch_size=20, random_state=0,
                               n_iter_no_change=30,
                               callback=lambda info: norms.append(inf_norm(info["A"])))
    assert len(norms) == hist["n_steps"] == 30 * 4
    assert max(norms) <= kappa * (1 + 1e-12)
    assert max(norms) >= kappa * (1 - 1e-9)  # the constraint was active: projection did work


def test_fit_sgd_step_is_the_implicit_gradient_step():
    """One full-batch SGD step moves every parameter by -lr * (implicit gradient)."""
    rng = np.random.default_rng(8)
    model = _model(rng, n=4, p=3, q=2, kappa=0.5, activation="tanh")
    U = rng.standard_normal((10, 3))
    Y = rng.standard_normal((10, 2))
    lr = 1e-3
    _, grads = implicit_gradients(model, U, Y, "squared", tol=TIGHT)
    with pytest.warns(ConvergenceWarning, match="max_iter=1"):
        new, _ = fit_gradient(model, U, Y, "squared", kappa=0.9, max_iter=1, optimizer="sgd",
                              learning_rate=lr, solver_tol=1e-13)
    for k in ("A", "B", "b", "C", "D", "c"):
        np.testing.assert_allclose(getattr(new, k), getattr(model, k) - lr * grads[k],
                                   rtol=0, atol=1e-12)


def test_fit_first_adam_step_has_size_learning_rate():
    """Adam's bias-corrected first step is lr * g / (|g| + eps) entrywise."""
    rng = np.random.default_rng(9)
    model = _model(rng, n=4, p=3, q=2, kappa=0.5)
    U = rng.standard_normal((10, 3))
    Y = rng.standard_normal((10, 2))
    lr = 1e-3
    _, grads = implicit_gradients(model, U, Y, "squared", tol=TIGHT)
    with pytest.warns(ConvergenceWarning):
        new, _ = fit_gradient(model, U, Y, "squared", kappa=0.9, max_iter=1, learning_rate=lr)
    for k in ("B", "C", "D", "c"):
        g = grads[k]
        np.testing.assert_allclose(getattr(new, k) - getattr(model, k),
                                   -lr * g / (np.abs(g) + 1e-8), rtol=1e-6, atol=1e-12)


def test_fit_minibatch_is_reproducible():
    student, U, Y = _teacher_problem(seed=2)
    kw = dict(kappa=0.9, max_iter=8, batch_size=16, learning_rate=0.02, n_iter_no_change=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        m1, h1 = fit_gradient(student, U, Y, "squared", random_state=0, **kw)
        m2, h2 = fit_gradient(student, U, Y, "squared", random_state=0, **kw)
        m3, h3 = fit_gradient(student, U, Y, "squared", random_state=1, **kw)
    for k in ("A", "B", "b", "C", "D", "c"):
        np.testing.assert_array_equal(getattr(m1, k), getattr(m2, k))
    assert h1["loss"] == h2["loss"]
    assert not np.array_equal(m1.A, m3.A)  # the shuffling does depend on the seed


def test_fit_does_not_mutate_input():
    student, U, Y = _teacher_problem(seed=3)
    student = student.replace(A=np.full((5, 5), 0.5))  # outside the ball: projected inside
    before = {k: None if getattr(student, k) is None else getattr(student, k).copy()
              for k in ("A", "B", "b", "C", "D", "c")}
    U0, Y0 = U.copy(), Y.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        new, _ = fit_gradient(student, U, Y, "squared", kappa=0.5, max_iter=5)
    for k, v in before.items():
        if v is None:
            assert getattr(student, k) is None
        else:
            np.testing.assert_array_equal(getattr(student, k), v)
    np.testing.assert_array_equal(U, U0)
    np.testing.assert_array_equal(Y, Y0)
    assert new is not student and new.b is not None and new.c is not None
    assert inf_norm(new.A) <= 0.5 * (1 + 1e-12)


def test_fit_l1_prox_gives_exact_zeros_and_l2_enters_objective():
    student, U, Y = _teacher_problem(seed=4)
    loss = SquaredLoss()
    pen_ab, pen_cd = L2Penalty(0.01), L1Penalty(0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        plain, _ = fit_gradient(student, U, Y, loss, kappa=0.9, max_iter=60,
                                learning_rate=0.05)
        model, hist = fit_gradient(student, U, Y, loss, kappa=0.9, max_iter=60,
                                   learning_rate=0.05, pen_ab=pen_ab, pen_cd=pen_cd)
    CD = np.hstack([model.C, model.D])
    assert np.count_nonzero(np.hstack([plain.C, plain.D]) == 0) == 0
    assert np.count_nonzero(CD == 0) >= 2
    assert hist["loss"][-1] == pytest.approx(
        _objective(model, U, Y, loss, pen_ab, pen_cd), rel=1e-6)


def test_fit_cross_entropy_tanh_decreases_loss():
    rng = np.random.default_rng(10)
    U = rng.standard_normal((60, 3))
    Y = np.eye(3)[np.argmax(U @ rng.standard_normal((3, 3)), axis=1)]
    student = _model(rng, n=4, p=3, q=3, kappa=0.5, activation="tanh")
    loss = SoftmaxCrossEntropy()
    before = _objective(student, U, Y, loss)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model, _ = fit_gradient(student, U, Y, loss, kappa=0.9, max_iter=100,
                                learning_rate=0.05, batch_size=20, random_state=0)
    assert _objective(model, U, Y, loss) < 0.5 * before


def test_fit_sgd_decreases_loss():
    student, U, Y = _teacher_problem(seed=5)
    loss = SquaredLoss()
    before = _objective(student, U, Y, loss)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model, hist = fit_gradient(student, U, Y, loss, kappa=0.9, max_iter=100,
                                   optimizer="sgd", learning_rate=0.2)
    assert _objective(model, U, Y, loss) < 0.5 * before
    assert hist["loss"][-1] < hist["loss"][0]


def test_fit_max_iter_warns_and_stopping_rule_converges():
    student, U, Y = _teacher_problem(seed=6)
    with pytest.warns(ConvergenceWarning, match="max_iter=3"):
        _, hist = fit_gradient(student, U, Y, "squared", kappa=0.9, max_iter=3)
    assert hist["n_iter"] == 3 and len(hist["loss"]) == 3 and not hist["converged"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        _, hist = fit_gradient(student, U, Y, "squared", kappa=0.9, max_iter=500, tol=0.5,
                               n_iter_no_change=3)
    assert hist["converged"] and 3 <= hist["n_iter"] < 500
    losses = hist["loss"]
    best = min(losses[:-3])
    assert all(v >= best * (1 - 0.5) for v in losses[-3:])


def test_fit_train_bias_false_keeps_biases():
    student, U, Y = _teacher_problem(seed=7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        new, _ = fit_gradient(student, U, Y, "squared", kappa=0.9, max_iter=5,
                              train_bias=False)
        with_b = student.replace(b=np.full(5, 0.3), c=np.array([0.2]))
        new_b, _ = fit_gradient(with_b, U, Y, "squared", kappa=0.9, max_iter=5,
                                train_bias=False)
    assert new.b is None and new.c is None
    np.testing.assert_array_equal(new_b.b, np.full(5, 0.3))
    np.testing.assert_array_equal(new_b.c, [0.2])
    assert not np.array_equal(new_b.B, with_b.B)


def test_fit_verbose_prints_progress(capsys):
    student, U, Y = _teacher_problem(seed=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        _, hist = fit_gradient(student, U, Y, "squared", kappa=0.9, max_iter=3, verbose=2)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "objective" in ln]
    assert len(lines) == 3
    assert float(lines[-1].split("=")[-1]) == pytest.approx(hist["loss"][-1], rel=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(kappa=1.0), "kappa"),
        (dict(kappa=0.0), "kappa"),
        (dict(kappa=0.5, optimizer="rmsprop"), "optimizer"),
        (dict(kappa=0.5, learning_rate=0.0), "learning_rate"),
        (dict(kappa=0.5, learning_rate=float("nan")), "learning_rate"),
        (dict(kappa=0.5, batch_size=0), "batch_size"),
        (dict(kappa=0.5, max_iter=0), "max_iter"),
        (dict(kappa=0.5, n_iter_no_change=0), "n_iter_no_change"),
        (dict(kappa=0.5, tol=-1.0), "tol"),
        (dict(kappa=0.5, solver_tol=0.0), "solver_tol"),
        (dict(kappa=0.5, pen_ab=3), "pen_ab"),
        (dict(kappa=0.5, callback=3), "callback"),
        (dict(kappa=0.5, verbose=-1), "verbose"),
    ],
)
def test_fit_bad_arguments(kwargs, match):
    student, U, Y = _teacher_problem(seed=9, m=10)
    with pytest.raises(ValueError, match=match):
        fit_gradient(student, U, Y, "squared", **kwargs)


def test_fit_bad_data():
    student, U, Y = _teacher_problem(seed=9, m=10)
    with pytest.raises(ValueError, match="Y must have shape"):
        fit_gradient(student, U, Y[:5], "squared", kappa=0.5)
    U_bad = U.copy()
    U_bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="U contains NaN"):
        fit_gradient(student, U_bad, Y, "squared", kappa=0.5)
