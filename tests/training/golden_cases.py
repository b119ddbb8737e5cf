"""Fixed-settings runs of the anchored BCD rounds whose numbers are kept as goldens.

Every setting is spelled out (none taken from a default), so a change of a default does not
move a golden; a change of the engine's arithmetic does. ``tests/data/make_goldens.py rounds``
writes the goldens; ``test_goldens.py`` compares.
"""

from __future__ import annotations

import warnings

import numpy as np

from lifted_idl.activations import get_activation
from lifted_idl.datasets import make_teacher
from lifted_idl.losses import SoftmaxCrossEntropy, SquaredLoss
from lifted_idl.penalties import GroupPenalty, L2Penalty, NoPenalty
from lifted_idl.training.bcd import fit_bcd
from lifted_idl.training.paths import frank_wolfe_path, group_lasso_path
from lifted_idl.training.rounds import RoundSettings

BCD = dict(lam=10.0, lam_increase=4.0, lam_decrease=0.5, lam_min=3.0, lam_max=1e4, mu=1e-3,
           per_state_lam=True, x_step=False, extrapolation=0.9, extrapolation_growth=1.0,
           extrapolation_max=0.9, extrapolate_first=False, tol=1e-4, n_iter_no_change=5,
           block_solver="fast", block_tol=1e-6, block_max_iter=100, fit_intercept=True)


def _regression():
    U, y, Ut, yt, _ = make_teacher(90, 40, n_features=4, n_hidden=6, random_state=3)
    s = y.std()
    return U, (y / s)[:, None], Ut, (yt / s)[:, None]


def _classification():
    rng = np.random.default_rng(5)
    U = rng.standard_normal((90, 3))
    labels = (U[:, 0] > 0).astype(int) + (U[:, 1] + 0.3 * U[:, 2] > 0.5).astype(int)
    return U, np.eye(3)[labels]


def _weights(model):
    return {k: getattr(model, k) for k in ("A", "B", "b", "C", "D", "c")}


def _bcd_out(model, hist):
    out = _weights(model)
    out["train_loss"] = hist.train_loss
    out["accepted"] = np.asarray(hist.accepted, dtype=float)
    out["lam"] = hist.lam
    out["relaxed"] = [v for *_, v in hist.relaxed]
    out["validation_loss"] = hist.validation_loss
    out["meta"] = [hist.n_iter, hist.best_round, hist.n_extrapolated, float(hist.converged)]
    return out


def _bcd(U, Y, loss, max_iter, **kw):
    args = dict(BCD, n_hidden=5, kappa=0.5, activation=get_activation("relu"),
                pen_ab=L2Penalty(1e-3), pen_cd=L2Penalty(1e-3), max_iter=max_iter,
                random_state=0)
    args.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _bcd_out(*fit_bcd(U, Y, loss, **args))


def bcd_squared():
    U, Y, _, _ = _regression()
    return _bcd(U, Y, SquaredLoss(), 25)


def bcd_squared_low_floor():
    U, Y, _, _ = _regression()
    return _bcd(U, Y, SquaredLoss(), 20, lam=0.1, lam_min=1e-3, mu=0.1, extrapolation=0.0,
                per_state_lam=False)


def bcd_converged():
    U, Y, _, _ = _regression()
    return _bcd(U, Y, SquaredLoss(), 40, tol=2e-2, n_iter_no_change=2)


def bcd_stalled():
    U, Y, _, _ = _regression()
    return _bcd(U, Y, SquaredLoss(), 30, lam=0.1, lam_min=1e-3, lam_max=0.1, lam_decrease=1.0,
                mu=0.1,
                extrapolation=0.0, per_state_lam=False)


def bcd_x_step_tanh():
    U, Y, _, _ = _regression()
    return _bcd(U, Y, SquaredLoss(), 8, x_step=True, activation=get_activation("tanh"))


def bcd_validation():
    U, Y, Ut, Yt = _regression()
    return _bcd(U, Y, SquaredLoss(), 15, validation=(Ut, Yt), n_iter_no_change=3)


def bcd_softmax():
    U, Y = _classification()
    return _bcd(U, Y, SoftmaxCrossEntropy(), 8)


def bcd_group():
    U, Y, _, _ = _regression()
    return _bcd(U, Y, SquaredLoss(), 8, pen_ab=NoPenalty(), pen_cd=NoPenalty(),
                group=GroupPenalty(3e-2, 2), c_ridge=1e-3)


def bcd_robust():
    U, Y, _, _ = _regression()
    return _bcd(U, Y, SquaredLoss(), 6, robust_sigma=0.05)


# the constants the paths ran with before they moved onto fit_bcd's (the goldens' settings)
PATH_ROUNDS = RoundSettings(lam=0.1, lam_increase=4.0, lam_decrease=0.5, lam_min=1e-3,
                            lam_max=1e4, mu=0.1, per_state_lam=True, extrapolation=0.0,
                            extrapolation_growth=1.0, extrapolation_max=0.9,
                            n_iter_no_change=3, patience="all", bound_first=False)


def _path_out(path):
    out = {}
    for k, pt in enumerate(path):
        for name, val in _weights(pt.model).items():
            out[f"{k}/{name}"] = val
        out[f"{k}/scalars"] = [pt.train_loss, pt.objective, pt.train_score, pt.n_rounds,
                               pt.n_accepted, float(pt.converged)]
    return out


def group_path():
    U, Y, _, _ = _regression()
    return _path_out(group_lasso_path(U, Y[:, 0], [0.1, 0.03, 0.01], n_hidden=5, kappa=0.5,
                                      random_state=1, n_rounds=6, tol=1e-4, c_ridge=1e-3,
                                      rounds=PATH_ROUNDS, fit_bias=True, warm_start=True))


def fw_path_cd():
    U, Y, _, _ = _regression()
    return _path_out(frank_wolfe_path(U, Y[:, 0], [0.5, 2.0], n_hidden=4, kappa_a=0.5,
                                      budget_kind="cd", random_state=0, max_iter=20,
                                      n_rounds=4, tol=1e-4, fw_tol=1e-6, ridge=1e-3,
                                      rounds=PATH_ROUNDS))


def fw_path_ab():
    U, Y, _, _ = _regression()
    return _path_out(frank_wolfe_path(U, Y[:, 0], [1.0, 3.0], n_hidden=4, kappa_a=0.5,
                                      budget_kind="ab", random_state=0, max_iter=20,
                                      n_rounds=4, tol=1e-4, fw_tol=1e-6, ridge=1e-3,
                                      rounds=PATH_ROUNDS))


def estimator_init():
    """The random-feature model the gradient solver starts from (A = 0, (C, D, c) refitted)."""
    from lifted_idl import ImplicitRegressor

    U, Y, _, _ = _regression()
    est = ImplicitRegressor(n_hidden=5, solver="gradient", gradient_max_iter=1, random_state=0)
    from lifted_idl.losses import SquaredLoss as SL

    model = est._random_feature_model(U, Y, SL(), get_activation("relu"), L2Penalty(1e-3),
                                      est._fit_seed())
    return _weights(model)


CASES = {f.__name__: f for f in (bcd_squared, bcd_squared_low_floor, bcd_converged,
                                 bcd_stalled, bcd_x_step_tanh,
                                 bcd_validation, bcd_softmax, bcd_group, bcd_robust, group_path,
                                 fw_path_cd, fw_path_ab, estimator_init)}
