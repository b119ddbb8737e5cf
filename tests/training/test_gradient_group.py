"""Proximal gradient with the group penalty of [IDL (5.1)] in ``fit_gradient`` (theory §6, §8).

At a fixed point of the proximal iteration the group-lasso optimality conditions must hold for
``(B, D)``: with :math:`G = \\nabla_{[B; D]}\\mathcal L` (implicit differentiation),
:math:`\\|G e_j\\|_* \\le \\alpha` for a zero column and :math:`-G e_j \\in
\\alpha\\,\\partial\\|[B; D]e_j\\|_r` for a nonzero one (:math:`\\|\\cdot\\|_*` the dual norm:
l2 for r = 2, l1 for r = ∞). Adam's per-entry metric would break them (its prox is not the
group prox); the group-wise metric of ``fit_gradient`` keeps them.
"""

import warnings

import numpy as np
import pytest

from lifted_idl import ConvergenceWarning, ImplicitModel
from lifted_idl.losses import SquaredLoss
from lifted_idl.penalties import GroupPenalty, L1Penalty, L2Penalty
from lifted_idl.training.gradient import fit_gradient, implicit_gradients
from lifted_idl.wellposedness import project_inf_norm_ball


def _problem(seed=0, m=60, p=4, n=3, activation="tanh"):
    """Targets from features 0 and 1 only; a random small student."""
    rng = np.random.default_rng(seed)
    U = rng.standard_normal((m, p))
    y = np.tanh(1.5 * U[:, 0]) - 0.8 * U[:, 1] + 0.1 * rng.standard_normal(m)
    Y = ((y - y.mean()) / y.std())[:, None]
    A = project_inf_norm_ball(rng.standard_normal((n, n)), 0.5)
    model = ImplicitModel(A, 0.5 * rng.standard_normal((n, p)),
                          0.5 * rng.standard_normal((1, n)), 0.1 * rng.standard_normal((1, p)),
                          b=0.1 * rng.standard_normal(n), c=np.zeros(1), activation=activation)
    return model, U, Y


def _kkt_residuals(model, U, Y, alpha, ord):
    """Per column: ('zero', dual norm / alpha) or ('nonzero', optimality residual / alpha)."""
    _, g = implicit_gradients(model, U, Y, "squared", tol=1e-13)
    G = np.vstack([g["B"], g["D"]])
    W = np.vstack([model.B, model.D])
    out = []
    for j in range(W.shape[1]):
        w, gj = W[:, j], G[:, j]
        if not np.any(w):
            out.append(("zero", np.linalg.norm(gj, 2 if ord == 2 else 1) / alpha))
        elif ord == 2:
            out.append(("nonzero", np.linalg.norm(gj + alpha * w / np.linalg.norm(w)) / alpha))
        else:
            # -g in alpha * conv{sign(w_i) e_i : |w_i| = ||w||_inf}: g vanishes off the
            # maximisers, has the opposite sign on them, and ||g||_1 = alpha
            at = np.abs(w) >= np.abs(w).max() * (1 - 1e-9)
            r = (np.abs(gj[~at]).sum() + abs(np.abs(gj).sum() - alpha)
                 + np.maximum(gj[at] * np.sign(w[at]), 0).sum())
            out.append(("nonzero", r / alpha))
    return out


@pytest.mark.parametrize("ord, alpha, optimizer, lr, epochs", [
    (2, 0.1, "adam", 1e-2, 1000),
    (np.inf, 0.3, "adam", 1e-2, 1000),
    (2, 0.1, "sgd", 0.3, 2000),  # plain proximal gradient
])
def test_fixed_point_satisfies_group_lasso_optimality(ord, alpha, optimizer, lr, epochs):
    model, U, Y = _problem()
    group = GroupPenalty(alpha, ord)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # tol=0: runs every epoch
        fitted, hist = fit_gradient(model, U, Y, "squared", kappa=0.5, max_iter=epochs,
                                    optimizer=optimizer, learning_rate=lr, tol=0.0,
                                    n_iter_no_change=epochs, group=group, c_ridge=0.1,
                                    solver_tol=1e-12)
    loss = hist["loss"]
    assert abs(loss[-1] - loss[-50]) <= 1e-6 * loss[-1]  # at a fixed point of the iteration
    res = _kkt_residuals(fitted, U, Y, alpha, ord)
    kinds = [kind for kind, _ in res]
    assert kinds[0] == kinds[1] == "nonzero" and "zero" in kinds  # both cases are exercised
    for kind, r in res:
        if kind == "zero":
            assert r <= 1 + 1e-6
        else:
            assert r <= 1e-4
    # the objective recorded is loss + group penalty + C ridge of the returned model
    data = SquaredLoss().value(Y, fitted.predict(U, tol=1e-13))
    pen = group.value(fitted) + 0.05 * float(np.sum(fitted.C ** 2))
    assert loss[-1] == pytest.approx(data + pen, rel=1e-7)
    assert hist["group_penalty"] == pytest.approx(pen, rel=1e-9)


def test_group_prox_gives_exact_zero_columns_for_noise_features():
    """ReLU, three pure-noise features: their columns of [B; D] end exactly zero, the two
    informative ones do not; the same strength with no prox leaves every column nonzero."""
    rng = np.random.default_rng(1)
    U = rng.standard_normal((120, 5))
    y = 2 * U[:, 0] - np.maximum(U[:, 1], 0) + 0.05 * rng.standard_normal(120)
    Y = ((y - y.mean()) / y.std())[:, None]
    A = project_inf_norm_ball(rng.standard_normal((4, 4)), 0.5)
    init = ImplicitModel(A, rng.standard_normal((4, 5)), 0.5 * rng.standard_normal((1, 4)),
                         np.zeros((1, 5)), b=np.zeros(4), c=np.zeros(1), activation="relu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for ord in (2, np.inf):
            model, _ = fit_gradient(init, U, Y, "squared", kappa=0.5, max_iter=300,
                                    group=GroupPenalty(0.1, ord), c_ridge=0.1)
            norms = GroupPenalty(1.0, ord).column_norms({"B": model.B, "D": model.D})
            assert np.all(norms[2:] == 0), norms
            assert np.all(norms[:2] > 1e-2), norms
        plain, _ = fit_gradient(init, U, Y, "squared", kappa=0.5, max_iter=300)
    assert np.all(GroupPenalty(1.0).column_norms({"B": plain.B, "D": plain.D}) > 0)


def test_group_argument_validation():
    model, U, Y = _problem()
    with pytest.raises(ValueError, match="group must be None or a GroupPenalty"):
        fit_gradient(model, U, Y, "squared", kappa=0.5, max_iter=1, group=L2Penalty(1.0))
    with pytest.raises(ValueError, match="non-smooth"):
        fit_gradient(model, U, Y, "squared", kappa=0.5, max_iter=1,
                     group=GroupPenalty(0.1), pen_cd=L1Penalty(0.1))
    with pytest.raises(ValueError, match="c_ridge"):
        fit_gradient(model, U, Y, "squared", kappa=0.5, max_iter=1,
                     group=GroupPenalty(0.1), c_ridge=-1.0)
    # a smooth penalty combines with the group prox
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        _, hist = fit_gradient(model, U, Y, "squared", kappa=0.5, max_iter=2,
                               group=GroupPenalty(0.1), pen_ab=L2Penalty(1e-3))
    assert np.isfinite(hist["loss"][-1])
