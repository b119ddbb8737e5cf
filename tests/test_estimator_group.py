"""``penalty="group"`` in the estimators: feature selection with the group penalty [IDL (5.1)].

The estimators standardise the inputs and the (regression) targets inside ``fit``; the penalty
:math:`\\alpha\\sum_j\\|[B; D]e_j\\|_r + \\tfrac{\\beta}{2}\\|C\\|_F^2` acts on the standardised
model, and ``feature_importances_`` are its column norms. The gradient solver, and BCD's joint
(B, D) step, apply the exact joint prox, so unused features get exactly zero importance.
"""

import warnings

import numpy as np
import pytest
from sklearn.feature_selection import SelectFromModel
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from lifted_idl import ConvergenceWarning, ImplicitClassifier, ImplicitRegressor
from lifted_idl.activations import get_activation
from lifted_idl.losses import SquaredLoss
from lifted_idl.penalties import GroupPenalty

RELEVANT = [0, 1]


def _sparse_problem(seed=0, m=150, p=6):
    """y depends on features 0 and 1 only (one of them through a ReLU); 4 pure-noise ones."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, p))
    y = 3 * X[:, 0] - 2 * X[:, 1] + np.maximum(X[:, 0], 0) + 0.1 * rng.standard_normal(m)
    return X, y


def _objective(est, X, y):
    """The penalised training objective of the fitted model, recomputed on the standardised
    data the estimator trained on."""
    Xs = (X - X.mean(axis=0)) / X.std(axis=0)
    ys = ((y - y.mean()) / y.std())[:, None]
    M = est._scaled_model
    ridge = est.alpha if est.c_ridge is None else est.c_ridge
    ord_ = np.inf if est.group_ord == "inf" else est.group_ord
    return (SquaredLoss().value(ys, M.predict(Xs, tol=1e-12))
            + GroupPenalty(est.alpha, ord_).value(M) + 0.5 * ridge * np.sum(M.C ** 2))


def _fit(X, y, **kw):
    params = {"n_hidden": 4, "penalty": "group", "alpha": 0.1, "max_iter": 5,
              "gradient_max_iter": 200, "random_state": 0}
    params.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return ImplicitRegressor(**params).fit(X, y)


@pytest.mark.parametrize("group_ord", [2, "inf"])
@pytest.mark.parametrize("solver", ["gradient", "bcd+gradient"])
def test_noise_features_get_exactly_zero_importance(solver, group_ord):
    X, y = _sparse_problem()
    est = _fit(X, y, solver=solver, group_ord=group_ord)
    imp = est.feature_importances_
    noise = np.setdiff1d(np.arange(X.shape[1]), RELEVANT)
    assert np.all(imp[noise] == 0.0), imp
    assert np.all(imp[RELEVANT] > 1e-2), imp
    # the raw-feature model reads the same features only
    W = np.vstack([est.model_.B, est.model_.D])
    np.testing.assert_array_equal(np.any(W != 0, axis=0), imp > 0)
    assert est.score(X, y) > 0.95
    # the recorded objective is the penalised one, and it decreased from the initial model
    obj = _objective(est, X, y)
    assert est.loss_curve_[-1] == pytest.approx(obj, rel=1e-6)
    if solver == "gradient":
        Xs = (X - X.mean(axis=0)) / X.std(axis=0)
        ys = ((y - y.mean()) / y.std())[:, None]
        pen, group = est._penalties()
        init = est._random_feature_model(Xs, ys, SquaredLoss(), get_activation("relu"), pen,
                                         0, group, est.alpha)  # the solver's starting point
        first = (SquaredLoss().value(ys, init.predict(Xs)) + group.value(init)
                 + 0.5 * est.alpha * np.sum(init.C ** 2))
    else:
        first = est.loss_curve_[0]  # BCD's round 0: the anchored initial model
    assert obj < 0.5 * first


@pytest.mark.parametrize("group_ord", [2, "inf"])
def test_bcd_with_group_penalty_descends_and_ranks_features(group_ord):
    """BCD alone: the objective never increases, and its joint (B, D) prox step zeroes the
    noise features exactly while keeping the informative ones."""
    X, y = _sparse_problem()
    # the default damping (lam floor 3) takes short steps: 30 rounds, not 5
    est = _fit(X, y, solver="bcd", group_ord=group_ord, max_iter=30)
    curve = np.asarray(est.loss_curve_)
    assert np.all(np.diff(curve) <= 1e-12 * np.abs(curve[:-1]))
    assert curve[-1] < 0.5 * curve[0]
    assert est.loss_curve_[-1] == pytest.approx(_objective(est, X, y), rel=1e-6)
    imp = est.feature_importances_
    assert set(np.argsort(imp)[-2:]) == set(RELEVANT)
    noise = np.setdiff1d(np.arange(X.shape[1]), RELEVANT)
    assert np.all(imp[noise] == 0.0) and np.all(imp[RELEVANT] > 1e-2), imp


def test_select_from_model_in_a_pipeline_selects_relevant_features():
    X, y = _sparse_problem(seed=1)
    X = X * np.array([1e3, 1e-2, 1.0, 1e3, 1e-2, 5.0])  # units must not matter
    selector = SelectFromModel(
        ImplicitRegressor(n_hidden=4, penalty="group", alpha=0.1, solver="gradient",
                          gradient_max_iter=200, random_state=0),
        threshold=1e-12)  # exact zeros: keep every feature the model reads
    pipe = Pipeline([("select", selector), ("linear", LinearRegression())])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipe.fit(X, y)
    support = pipe.named_steps["select"].get_support()
    np.testing.assert_array_equal(np.flatnonzero(support), RELEVANT)
    assert pipe[:-1].transform(X).shape == (X.shape[0], 2)
    assert pipe.score(X, y) > 0.9
    # the default threshold ("mean" of the importances) selects the same features here
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sel = SelectFromModel(ImplicitRegressor(
            n_hidden=4, penalty="group", alpha=0.1, solver="gradient", gradient_max_iter=200,
            random_state=0)).fit(X, y)
    np.testing.assert_array_equal(np.flatnonzero(sel.get_support()), RELEVANT)


def test_classifier_group_penalty_zeroes_noise_features():
    X, _ = _sparse_problem(seed=2, m=200)
    labels = (X[:, 0] - X[:, 1] > 0).astype(int) + (X[:, 0] > 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = ImplicitClassifier(n_hidden=4, penalty="group", alpha=0.1, solver="gradient",
                                 gradient_max_iter=200, random_state=0).fit(X, labels)
    imp = clf.feature_importances_
    assert np.all(imp[RELEVANT] > 0.1) and np.all(imp[2:] == 0), imp
    assert clf.score(X, labels) > 0.9


@pytest.mark.parametrize("params, match", [
    ({"penalty": "group", "group_ord": 3}, "group_ord"),
    ({"penalty": "group", "group_ord": "2"}, "group_ord"),
    ({"penalty": "group", "group_ord": 1}, "group_ord"),
    ({"penalty": "group", "c_ridge": -1.0}, "c_ridge"),
    ({"penalty": "group_lasso"}, "penalty"),
])
def test_invalid_group_parameters_raise(params, match):
    X, y = _sparse_problem()
    with pytest.raises(ValueError, match=match):
        ImplicitRegressor(**params).fit(X, y)


def test_group_ord_accepts_inf_float_and_fit_keeps_parameters():
    X, y = _sparse_problem()
    est = ImplicitRegressor(n_hidden=3, penalty="group", alpha=0.1, group_ord=np.inf,
                            solver="gradient", gradient_max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    assert est.group_ord == np.inf and est.c_ridge is None  # fit does not overwrite them


# the API checks with the group penalty (tests/test_sklearn_compat.py runs them for the other
# configurations); a few epochs suffice, the checks exercise the API, not the solver
_GROUP_XFAIL = {
    # weights are exact here (tests/test_sample_weight.py), but this l-inf group fit is
    # itself rounding-sensitive: permuting the samples, without any weights, already moves
    # its predictions by about 1e-4 on this check's data, above the check's rtol of 1e-7.
    # Measured: the initial model's l-inf group (C, D, c) solve (FISTA, not converged) differs
    # by 6e-8 between the two orders, and Adam, which divides each gradient entry by its own
    # size, turns such near-zero gradient entries into steps of ~1e-4 in the second epoch
    "check_sample_weight_equivalence_on_dense_data":
        "the l-inf group fit moves by ~1e-4 under a mere permutation of the samples",
}


@parametrize_with_checks([
    ImplicitRegressor(n_hidden=4, penalty="group", alpha=0.01, group_ord="inf",
                      solver="gradient", gradient_max_iter=5, random_state=0),
], expected_failed_checks=lambda est: _GROUP_XFAIL)
def test_sklearn_compatible_with_group_penalty(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)
