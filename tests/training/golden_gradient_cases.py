"""Fixed-settings runs of ``fit_gradient`` whose numbers are kept as goldens.

Every setting is spelled out, so a change of a default does not move a golden; a change of the
training loop's arithmetic does. ``tests/data/make_goldens.py gradient`` writes the goldens;
``test_goldens.py`` compares (to 1e-12). They were written before ``fit_gradient`` was
split into named steps, to prove that the split changed no number.
"""

from __future__ import annotations

import warnings

import numpy as np

from lifted_idl import ConvergenceWarning, ImplicitModel
from lifted_idl.penalties import GroupPenalty, L1Penalty, L2Penalty
from lifted_idl.robustness.penalties import LipschitzSurrogatePenalty, SensitivityPenalty
from lifted_idl.training.gradient import fit_gradient
from lifted_idl.wellposedness import project_inf_norm_ball

BASE = dict(kappa=0.8, max_iter=12, batch_size=None, optimizer="adam", learning_rate=0.02,
            tol=1e-6, n_iter_no_change=10, random_state=0, verbose=0, callback=None,
            train_bias=True, solver_tol=1e-9, model_penalty=None, constraint="inf_norm",
            group=None, c_ridge=0.0, pen_ab=None, pen_cd=None)


def _problem(seed=0, m=40, p=4, n=5, q=2, activation="tanh", bias=True):
    rng = np.random.default_rng(seed)
    U = rng.standard_normal((m, p))
    Y = np.column_stack([np.tanh(1.5 * U[:, 0]) - 0.8 * U[:, 1], U[:, 2] * U[:, 3]])[:, :q]
    Y = Y + 0.1 * rng.standard_normal(Y.shape)
    A = project_inf_norm_ball(rng.standard_normal((n, n)), 0.6)
    model = ImplicitModel(A, 0.5 * rng.standard_normal((n, p)),
                          0.5 * rng.standard_normal((q, n)), 0.1 * rng.standard_normal((q, p)),
                          b=0.1 * rng.standard_normal(n) if bias else None,
                          c=np.zeros(q) if bias else None, activation=activation)
    return model, U, Y


def _classification(seed=1, m=45, p=3, n=4):
    rng = np.random.default_rng(seed)
    U = rng.standard_normal((m, p))
    labels = (U[:, 0] > 0).astype(int) + (U[:, 1] + 0.3 * U[:, 2] > 0.5).astype(int)
    A = project_inf_norm_ball(rng.standard_normal((n, n)), 0.5)
    model = ImplicitModel(A, 0.5 * rng.standard_normal((n, p)),
                          0.5 * rng.standard_normal((3, n)), 0.1 * rng.standard_normal((3, p)),
                          b=np.zeros(n), c=np.zeros(3), activation="relu")
    return model, U, np.eye(3)[labels]


def _run(problem, loss="squared", **kw):
    model, U, Y = problem
    settings = {**BASE, **kw}
    steps = []

    def callback(info):
        steps.append(info["batch_loss"])

    if settings.pop("record_steps", False):
        settings["callback"] = callback
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        new, hist = fit_gradient(model, U, Y, loss, **settings)
    out = {k: getattr(new, k) for k in ("A", "B", "C", "D")}
    out["b"] = np.zeros(0) if new.b is None else new.b
    out["c"] = np.zeros(0) if new.c is None else new.c
    out["loss"] = hist["loss"]
    for key in ("loss_initial", "n_iter", "n_steps", "converged", "solver_failures",
                "model_penalty", "group_penalty"):
        out[key] = float(hist[key])
    if steps:
        out["batch_loss"] = steps
    return out


CASES = {
    "full_adam": lambda: _run(_problem(), record_steps=True),
    "full_sgd_l2": lambda: _run(_problem(), optimizer="sgd", learning_rate=0.1,
                                pen_ab=L2Penalty(0.01), pen_cd=L2Penalty(0.02)),
    "minibatch_adam_l1": lambda: _run(_problem(seed=2), batch_size=16, random_state=3,
                                      pen_ab=L1Penalty(0.01), pen_cd=L1Penalty(0.005),
                                      record_steps=True),
    "minibatch_sgd_l1": lambda: _run(_problem(seed=2), batch_size=7, optimizer="sgd",
                                     learning_rate=0.05, pen_ab=L1Penalty(0.01), random_state=4),
    "group_adam": lambda: _run(_problem(seed=3), group=GroupPenalty(0.05, 2), c_ridge=0.1),
    "group_sgd_inf_minibatch": lambda: _run(_problem(seed=3), group=GroupPenalty(0.05, np.inf),
                                            c_ridge=0.1, optimizer="sgd", learning_rate=0.1,
                                            batch_size=13),
    "mu_inf_lipschitz": lambda: _run(
        _problem(seed=4, activation="relu"), constraint="mu_inf", kappa=0.7,
        model_penalty=LipschitzSurrogatePenalty(0.05, measure="mu_inf")),
    "sensitivity_no_bias": lambda: _run(_problem(seed=5, bias=False),
                                        model_penalty=SensitivityPenalty(0.05),
                                        train_bias=False),
    "early_stop": lambda: _run(_problem(seed=6), max_iter=200, tol=0.05, n_iter_no_change=2),
    "cross_entropy_minibatch": lambda: _run(_classification(), loss="cross_entropy",
                                            batch_size=20, kappa=0.5, max_iter=8),
}
