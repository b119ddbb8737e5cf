"""The cross-validated estimators: the alpha grid, the selection, and the refit."""

from __future__ import annotations

import warnings

import joblib
import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.utils._param_validation import InvalidParameterError

from lifted_idl import (
    ConvergenceWarning,
    ImplicitClassifier,
    ImplicitClassifierCV,
    ImplicitRegressor,
    ImplicitRegressorCV,
)
from lifted_idl.cv import alpha_grid, alpha_max
from lifted_idl.datasets import make_teacher

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

FAST = {"n_hidden": 4, "max_iter": 4, "random_state": 0}


@pytest.fixture(scope="module")
def sparse_data():
    U, y, _, _, info = make_teacher(80, 1, n_features=12, n_hidden=6, noise=0.01,
                                    sparse_columns=3, random_state=7)
    # features in raw units of different scales: the grid must not depend on them
    return U * np.linspace(0.5, 20, 12), y, info["support"]


def test_alpha_grid_is_geometric_from_alpha_max(sparse_data):
    U, y, _ = sparse_data
    amax = alpha_max(U, y)
    grid = alpha_grid(amax, 7, 1e-2)
    assert grid.shape == (7,) and grid[0] == pytest.approx(amax)
    assert grid[-1] == pytest.approx(amax * 1e-2)
    assert np.all(np.diff(grid) < 0)
    np.testing.assert_allclose(grid[1:] / grid[:-1], (1e-2) ** (1 / 6))
    # invariant to the units of the features and of y (the estimators standardise both)
    assert alpha_max(U / np.arange(1, 13), 3 * y + 5) == pytest.approx(amax)
    est = ImplicitRegressorCV(alphas=3, eps=1e-2, cv=2, penalty="group", selection="min",
                              **FAST).fit(U, y)
    np.testing.assert_allclose(est.alphas_, alpha_grid(amax, 3, 1e-2))


def test_alpha_max_is_the_group_lasso_threshold_of_the_linear_part():
    # the linear part alone (B = 0): min 1/(2m)||Y_s - U_s D^T||^2 + alpha sum_j ||D e_j||_2,
    # solved by cvxpy, is zero exactly from alpha_max on (two outputs: a true group norm)
    cp = pytest.importorskip("cvxpy")
    rng = np.random.default_rng(0)
    U = rng.standard_normal((50, 5)) * [1, 2, 3, 4, 5]
    Y = U[:, :2] @ rng.standard_normal((2, 2)) + 0.3 * rng.standard_normal((50, 2))
    amax = alpha_max(U, Y)
    Us = (U - U.mean(0)) / U.std(0)
    Ys = (Y - Y.mean(0)) / Y.std(0)
    D = cp.Variable((2, 5))
    a = cp.Parameter(nonneg=True)
    obj = cp.sum_squares(Ys - Us @ D.T) / 100 + a * cp.sum(cp.norm(D, 2, axis=0))
    prob = cp.Problem(cp.Minimize(obj))
    for f, zero in ((1.02, True), (0.95, False)):
        a.value = f * amax
        prob.solve()
        assert bool(np.abs(D.value).max() < 1e-4) is zero, f


def test_group_fit_is_empty_above_alpha_max_and_not_below(sparse_data):
    U, y, _ = sparse_data
    amax = alpha_max(U, y)
    above = ImplicitRegressor(penalty="group", alpha=1.01 * amax, n_hidden=6, max_iter=30,
                              random_state=0).fit(U, y)
    assert not np.any(above.feature_importances_ > 0)
    below = ImplicitRegressor(penalty="group", alpha=0.3 * amax, n_hidden=6, max_iter=30,
                              random_state=0).fit(U, y)
    assert np.any(below.feature_importances_ > 0)
    Xc, yc = make_classification(80, 6, n_informative=3, random_state=0)
    amax_c = alpha_max(Xc, yc, classifier=True)
    clf = ImplicitClassifier(penalty="group", alpha=1.01 * amax_c, n_hidden=6, max_iter=30,
                             random_state=0).fit(Xc, yc)
    assert not np.any(clf.feature_importances_ > 0)
    clf.set_params(alpha=0.3 * amax_c).fit(Xc, yc)
    assert np.any(clf.feature_importances_ > 0)


@pytest.mark.parametrize("selection", ["min", "relaxed"])
def test_cv_results_and_the_choice(sparse_data, selection):
    U, y, _ = sparse_data
    est = ImplicitRegressorCV(alphas=4, cv=3, penalty="group", selection=selection,
                              **FAST).fit(U, y)
    res = est.cv_results_
    for key in ("mean_test_score", "std_test_score", "split0_test_score",
                "split2_test_score", "mean_n_selected"):
        assert res[key].shape == (4,), key
    assert res["converged"].shape == res["n_iter"].shape == (3, 4)
    folds = np.array([res[f"split{k}_test_score"] for k in range(3)])
    np.testing.assert_allclose(res["mean_test_score"], folds.mean(0))
    np.testing.assert_allclose(res["std_test_score"], folds.std(0))
    key = "mean_relaxed_test_score" if selection == "relaxed" else "mean_test_score"
    assert (key in res) and ("mean_relaxed_test_score" in res) is (selection == "relaxed")
    # the score is minus the validation loss: the choice is the argmin of the mean loss
    assert np.all(res["mean_test_score"] <= 0)
    assert est.alpha_ == est.alphas_[np.argmin(-res[key])] == est.alphas_[est.best_index_]
    # the largest alpha keeps (almost) nothing, the smallest keeps features
    assert res["mean_n_selected"][0] <= 1 and res["mean_n_selected"][-1] >= 3
    # the folds' importances: nonnegative, their nonzeros are the features counted as kept
    imp = res["feature_importances"]
    assert imp.shape == (3, 4, U.shape[1]) and np.all(imp >= 0)
    np.testing.assert_allclose((imp > 0).sum(-1).mean(0), res["mean_n_selected"])


def test_final_model_is_the_base_fit_at_alpha_(sparse_data):
    U, y, _ = sparse_data
    est = ImplicitRegressorCV(alphas=3, cv=2, penalty="group", selection="min",
                              **FAST).fit(U, y)
    ref = ImplicitRegressor(penalty="group", alpha=est.alpha_, **FAST).fit(U, y)
    for name in "ABCD":
        np.testing.assert_array_equal(getattr(est.model_, name), getattr(ref.model_, name))
    np.testing.assert_array_equal(est.predict(U), ref.predict(U))
    assert est.score(U, y) == ref.score(U, y)
    assert est.n_iter_ == ref.n_iter_
    np.testing.assert_array_equal(est.support_, est.feature_importances_ > 0)
    np.testing.assert_array_equal(est.support_, ref.feature_importances_ > 0)


def test_n_jobs_2_matches_n_jobs_1(sparse_data):
    # the folds go through joblib.Parallel; threads here (worker processes take seconds to
    # start), any backend (loky, Dask) runs the same independent, seeded fold paths
    U, y, _ = sparse_data
    kw = dict(alphas=3, cv=2, penalty="group", selection="min", **FAST)
    one = ImplicitRegressorCV(n_jobs=1, **kw).fit(U, y)
    with joblib.parallel_backend("threading"):
        two = ImplicitRegressorCV(n_jobs=2, **kw).fit(U, y)
    for key, val in one.cv_results_.items():
        np.testing.assert_array_equal(two.cv_results_[key], val, err_msg=key)
    assert one.alpha_ == two.alpha_
    np.testing.assert_array_equal(one.predict(U), two.predict(U))


def test_explicit_alphas_are_honoured():
    Xc, yc = make_classification(60, 4, n_informative=2, n_redundant=0, random_state=1)
    est = ImplicitClassifierCV(alphas=[1e-3, 0.3, 0.03], cv=2, **FAST).fit(Xc, yc)
    np.testing.assert_array_equal(est.alphas_, [0.3, 0.03, 1e-3])
    assert est.alpha_ in est.alphas_ and est.cv_results_["mean_test_score"].shape == (3,)
    assert not hasattr(est, "support_")  # l2 penalty: no support
    ref = ImplicitClassifier(alpha=est.alpha_, **FAST).fit(Xc, yc)
    np.testing.assert_allclose(est.predict_proba(Xc), ref.predict_proba(Xc))
    np.testing.assert_array_equal(est.classes_, ref.classes_)


def test_bad_input_raises():
    Xc, yc = make_classification(30, 3, n_informative=2, n_redundant=0, random_state=1)
    with pytest.raises(InvalidParameterError, match="'penalty' parameter"):
        ImplicitClassifierCV(penalty="none", **FAST).fit(Xc, yc)
    with pytest.raises(ValueError, match="alphas"):
        ImplicitClassifierCV(alphas=[0.1, -1.0], **FAST).fit(Xc, yc)
    with pytest.raises(ValueError, match="selection"):
        ImplicitClassifierCV(selection="best", **FAST).fit(Xc, yc)


def test_convergence_warnings_do_not_leak_from_the_folds(sparse_data):
    U, y, _ = sparse_data
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        est = ImplicitRegressorCV(alphas=2, cv=2, tol=0.0, **FAST).fit(U, y)
    # the folds record theirs (one per fit would drown the user); the final fit warns
    assert not est.cv_results_["converged"].any()
    assert sum(issubclass(w.category, ConvergenceWarning) for w in caught) == 1


def test_zero_weights_equal_dropping_the_samples(sparse_data):
    """With explicit splits, samples of weight 0 change nothing: the grid, every fold's score,
    alpha_ and the refit are those of the data without them."""
    U, y, _ = sparse_data
    m = U.shape[0]
    drop = np.arange(0, m, 5)
    keep = np.setdiff1d(np.arange(m), drop)
    w = np.ones(m)
    w[drop] = 0.0
    new = -np.ones(m, dtype=int)
    new[keep] = np.arange(keep.size)
    halves = [np.arange(0, m // 2), np.arange(m // 2, m)]
    splits_full = [(halves[1], halves[0]), (halves[0], halves[1])]
    splits_kept = [(new[np.intersect1d(tr, keep)], new[np.intersect1d(te, keep)])
                   for tr, te in splits_full]
    # the grid: the same to rounding; then one explicit grid for both, since the BCD fits
    # with b = 0 (fit_bias="auto") amplify a 1e-16 change of alpha to 1e-4 in the scores
    amax = alpha_max(U[keep], y[keep])
    assert alpha_max(U, y, sample_weight=w) == pytest.approx(amax, rel=1e-12)
    kw = dict(FAST, penalty="group", alphas=alpha_grid(amax, 3, 1e-3), selection="min")
    weighted = ImplicitRegressorCV(cv=splits_full, **kw).fit(U, y, sample_weight=w)
    dropped = ImplicitRegressorCV(cv=splits_kept, **kw).fit(U[keep], y[keep])
    np.testing.assert_array_equal(weighted.alphas_, dropped.alphas_)
    for k in range(2):
        np.testing.assert_allclose(weighted.cv_results_[f"split{k}_test_score"],
                                   dropped.cv_results_[f"split{k}_test_score"], rtol=1e-8)
    assert weighted.alpha_ == dropped.alpha_
    np.testing.assert_allclose(weighted.predict(U), dropped.predict(U), rtol=1e-8, atol=1e-10)


def test_failed_fit_leaves_the_estimator_as_it_was(sparse_data):
    U, y, _ = sparse_data
    est = ImplicitRegressorCV(alphas=2, cv=2, **FAST).fit(U, y)
    before = est.predict(U)
    with pytest.raises(InvalidParameterError, match="'penalty' parameter"):
        est.set_params(penalty="none").fit(U[:, :5], y)
    assert est.n_features_in_ == U.shape[1]
    np.testing.assert_array_equal(est.predict(U), before)


def test_warm_start_refit_continues_from_a_copy(sparse_data):
    U, y, _ = sparse_data
    est = ImplicitRegressorCV(alphas=2, cv=2, warm_start=True, **FAST).fit(U, y)
    first = est.best_estimator_
    before = first.predict(U)
    est.fit(U, y)  # the second fit used to pass warm_start twice and raise
    assert est.best_estimator_ is not first
    np.testing.assert_array_equal(first.predict(U), before)  # the old refit is untouched


def test_support_is_dropped_when_the_penalty_changes(sparse_data):
    U, y, _ = sparse_data
    est = ImplicitRegressorCV(penalty="group", alphas=2, cv=2, **FAST).fit(U, y)
    assert hasattr(est, "support_")
    est.set_params(penalty="l2").fit(U, y)
    assert not hasattr(est, "support_")


def test_column_rescaling_is_the_weighted_group_penalty():
    """The reparametrisation behind ``group_weights``: a model (B~, D~) on the features
    u_j / w_j is (B~, D~) diag(1/w) on u, with the same predictions, and its plain group
    penalty is the weighted one of the model on u."""
    from lifted_idl import ImplicitModel
    from lifted_idl.estimators import _scale_columns
    from lifted_idl.penalties import GroupPenalty

    rng = np.random.default_rng(3)
    n, p, q = 5, 7, 2
    A = rng.standard_normal((n, n))
    A *= 0.4 / np.abs(A).sum(1).max()
    tilde = ImplicitModel(A, rng.standard_normal((n, p)), rng.standard_normal((q, n)),
                          rng.standard_normal((q, p)), b=rng.standard_normal(n),
                          c=rng.standard_normal(q))
    w = rng.uniform(0.2, 5.0, p)
    U = rng.standard_normal((30, p))
    model = _scale_columns(tilde, 1.0 / w)
    np.testing.assert_allclose(model.predict(U), tilde.predict(U / w), rtol=1e-10,
                               atol=1e-12)
    for ord_ in (2, np.inf):
        pen = GroupPenalty(0.7, ord_)
        weighted = 0.7 * float(w @ pen.column_norms({"B": model.B, "D": model.D}))
        assert pen.value({"B": tilde.B, "D": tilde.D}) == pytest.approx(weighted, rel=1e-12)


def test_group_weights_fit(sparse_data):
    U, y, _ = sparse_data
    p = U.shape[1]
    kw = dict(penalty="group", alpha=0.01, n_hidden=4, max_iter=10, random_state=0)
    plain = ImplicitRegressor(**kw).fit(U, y)
    ones = ImplicitRegressor(group_weights=np.ones(p), **kw).fit(U, y)
    for name in "ABCD":  # unit weights: the same fit, bit for bit
        np.testing.assert_array_equal(getattr(ones.model_, name), getattr(plain.model_, name))
    # an infinite weight leaves its feature out; a finite one does not
    w = np.ones(p)
    w[[0, 5]] = np.inf
    out = ImplicitRegressor(group_weights=w, **kw).fit(U, y)
    assert np.all(out.feature_importances_[[0, 5]] == 0)
    assert np.all(out.model_.B[:, [0, 5]] == 0) and np.all(out.model_.D[:, [0, 5]] == 0)
    assert np.any(out.feature_importances_ > 0)
    # the weighted threshold: every column zero above alpha_max(group_weights), not below
    w = np.linspace(0.5, 4.0, p)
    amax = alpha_max(U, y, group_weights=w)
    assert amax == pytest.approx(float(np.max(
        np.linalg.norm(_std(U).T @ -_std(y)[:, None] / len(y), axis=1) / w)))
    kw.update(n_hidden=6, max_iter=30)
    above = ImplicitRegressor(group_weights=w, **dict(kw, alpha=1.01 * amax)).fit(U, y)
    assert not np.any(above.feature_importances_ > 0)
    below = ImplicitRegressor(group_weights=w, **dict(kw, alpha=0.3 * amax)).fit(U, y)
    assert np.any(below.feature_importances_ > 0)
    for bad in (np.ones(p - 1), -np.ones(p), np.full(p, np.nan)):
        with pytest.raises(ValueError, match="group_weights"):
            ImplicitRegressor(group_weights=bad, **kw).fit(U, y)
    with pytest.raises(ValueError, match="group_weights"):
        ImplicitRegressor(group_weights=np.ones(p), alpha=0.01).fit(U, y)


def _std(a):
    return (a - a.mean(0)) / a.std(0)


def test_fit_bias_false_keeps_the_state_bias_zero(sparse_data):
    U, y, _ = sparse_data
    for solver in ("bcd", "gradient"):
        est = ImplicitRegressor(penalty="group", alpha=0.01, fit_bias=False, solver=solver,
                                gradient_max_iter=20, **FAST).fit(U, y)
        assert np.all(est._scaled_model.b == 0), solver
        # on the raw features the bias is what the centring of the inputs puts there
        Us = (U - est._mean_u) / est._scale_u
        np.testing.assert_allclose(est.model_.b, -est._scaled_model.B @ (est._mean_u
                                                                          / est._scale_u))
        np.testing.assert_allclose(est.predict(U), est._scaled_model.predict(Us).ravel()
                                   * y.std() + y.mean(), rtol=1e-8, atol=1e-8)


def test_adaptive_selection(sparse_data):
    """selection="adaptive": the second stage is the CV path of the base estimator with the
    weights (max_k s_k / s_j) from the first stage's refit (column norms s), on its own grid;
    a feature the first stage dropped stays out."""
    U, y, _ = sparse_data
    kw = dict(alphas=3, cv=2, penalty="group", **FAST)
    est = ImplicitRegressorCV(selection="adaptive", **kw).fit(U, y)
    first = est.first_stage_
    plain = ImplicitRegressorCV(selection="min", **kw).fit(U, y)
    assert first["alpha_"] == plain.alpha_
    np.testing.assert_array_equal(first["feature_importances_"], plain.feature_importances_)
    s = first["feature_importances_"]
    with np.errstate(divide="ignore"):
        np.testing.assert_allclose(est.group_weights_, s.max() / s)
    np.testing.assert_allclose(est.alphas_, alpha_grid(
        alpha_max(U, y, group_weights=est.group_weights_), 3, est.eps))
    assert not np.any(est.support_ & (s == 0))
    # the second stage chooses by its relaxed refits
    assert est.best_index_ == np.argmax(est.cv_results_["mean_relaxed_test_score"])
    ref = ImplicitRegressor(penalty="group", alpha=est.alpha_, group_weights=est.group_weights_,
                            **FAST).fit(U, y)
    np.testing.assert_array_equal(est.predict(U), ref.predict(U))
    np.testing.assert_array_equal(est.support_, ref.feature_importances_ > 0)


def test_adaptive_without_kept_features_refits_once(sparse_data, monkeypatch):
    """When the first stage keeps no feature there is no second stage, and its refit on all
    the data is the final model: one fit on the whole data set, not two."""
    U, y, _ = sparse_data
    whole = []
    fit = ImplicitRegressor.fit

    def counting_fit(self, X, *args, **kwargs):
        whole.append(X.shape[0] == U.shape[0])
        return fit(self, X, *args, **kwargs)

    monkeypatch.setattr(ImplicitRegressor, "fit", counting_fit)
    est = ImplicitRegressorCV(alphas=[1e6], cv=2, penalty="group", selection="adaptive",
                              **FAST).fit(U, y)
    assert not est.support_.any() and est.group_weights_ is None
    assert sum(whole) == 1


def test_relaxed_scores_with_group_weights(sparse_data):
    """The relaxed refits drop the group penalty, and with it the per-feature group weights:
    a weighted base scores each path point as the unweighted refit on the kept features
    (the weights once reached the refit on the kept columns only, a shape error)."""
    from sklearn.model_selection import KFold

    from lifted_idl.cv import _relaxed_loss

    U, y, _ = sparse_data
    w = np.linspace(0.5, 2.0, U.shape[1])
    folds = list(KFold(2).split(U))
    est = ImplicitRegressorCV(alphas=3, cv=folds, penalty="group", selection="relaxed",
                              group_weights=w, **FAST).fit(U, y)
    res = est.cv_results_
    plain = ImplicitRegressor(penalty="group", **FAST)
    for k, (tr, te) in enumerate(folds):
        for i, a in enumerate(est.alphas_):
            sel = res["feature_importances"][k, i] > 0
            ref = _relaxed_loss(plain, sel, a, U[tr], y[tr], U[te], y[te], None)
            assert res[f"split{k}_relaxed_test_score"][i] == pytest.approx(-ref, rel=1e-12)


@pytest.mark.parametrize("kind", ["regressor", "classifier"])
def test_dataframe_fit_predicts_on_dataframes_without_warnings(kind):
    """Fitted on a DataFrame, the CV estimators predict on DataFrames with its columns
    without a warning (they used to hand the refit estimator, which has the names, a bare
    array: a warning at every call), warn on a bare array, refuse reordered columns, and
    give the same numbers either way (to rounding: a DataFrame's array is column-major)."""
    pd = pytest.importorskip("pandas")
    X, labels = make_classification(80, 4, n_informative=3, n_redundant=0, random_state=0)
    df = pd.DataFrame(X, columns=list("abcd"))
    if kind == "regressor":
        est, y, methods = ImplicitRegressorCV, X @ np.arange(4.0), ["predict", "score"]
    else:
        est, y = ImplicitClassifierCV, labels
        methods = ["predict", "predict_proba", "decision_function", "predict_log_proba",
                   "score"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fitted = est(alphas=2, cv=2, **FAST).fit(df, y)
    assert list(fitted.feature_names_in_) == list("abcd")
    for name in methods:
        args = (y,) if name == "score" else ()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got = getattr(fitted, name)(df, *args)
        with pytest.warns(UserWarning, match="feature names"):
            bare = getattr(fitted, name)(X, *args)
        np.testing.assert_allclose(got, bare, rtol=1e-12, atol=1e-12)  # memory layouts
    with pytest.raises(ValueError, match="feature names"):
        fitted.predict(df[list("badc")])


def test_groups_reach_a_group_aware_splitter():
    """``fit(..., groups=g)`` with ``cv=GroupKFold`` draws the folds from the groups: the same
    fit as the explicit list of those splits; a wrong length is refused."""
    from sklearn.model_selection import GroupKFold

    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.standard_normal(60)
    g = np.repeat(np.arange(6), 10)
    by_groups = ImplicitRegressorCV(alphas=2, cv=GroupKFold(3), **FAST).fit(X, y, groups=g)
    splits = list(GroupKFold(3).split(X, y, g))
    explicit = ImplicitRegressorCV(alphas=2, cv=splits, **FAST).fit(X, y)
    assert by_groups.alpha_ == explicit.alpha_ and by_groups.n_splits_ == 3
    np.testing.assert_array_equal(by_groups.cv_results_["mean_test_score"],
                                  explicit.cv_results_["mean_test_score"])
    with pytest.raises(ValueError, match="groups must hold one label per sample"):
        ImplicitRegressorCV(alphas=2, cv=GroupKFold(3), **FAST).fit(X, y, groups=g[:-1])


@pytest.mark.parametrize("kind", ["regressor", "classifier"])
def test_cv_sample_weights_are_checked_like_the_base_estimators(kind):
    """The CV estimators check sample weights as the base estimators do (a negative or NaN
    weight is refused by name; a negative one used to fail inside an SVD), and a fold whose
    validation part has weight 0 only is refused by name (it used to fail in the validation
    loss with a message about all the weights)."""
    from sklearn.model_selection import KFold

    X, labels = make_classification(60, 4, n_informative=3, n_redundant=0, random_state=1)
    est, y = ((ImplicitRegressorCV, X @ np.arange(4.0)) if kind == "regressor"
              else (ImplicitClassifierCV, labels))
    for bad, match in ((-1.0, "Negative values"), (np.nan, "NaN")):
        w = np.ones(60)
        w[0] = bad
        with pytest.raises(ValueError, match=match):
            est(alphas=2, cv=3, **FAST).fit(X, y, sample_weight=w)
    w = np.ones(60)
    w[:15] = 0.0
    with pytest.raises(ValueError, match="fold 0: every sample of its validation part"):
        est(alphas=2, cv=KFold(4), **FAST).fit(X, y, sample_weight=w)
    assert est(alphas=2, cv=KFold(4, shuffle=True, random_state=0), **FAST).fit(
        X, y, sample_weight=w).alpha_ > 0
