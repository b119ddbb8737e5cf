"""Estimator behaviour beyond the sklearn checks: pipelines, search, pickling, bad input."""

import pickle
import pickletools
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.datasets import load_iris, make_classification
from sklearn.feature_selection import SelectFromModel
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from lifted_idl import (
    ConvergenceWarning,
    ImplicitClassifier,
    ImplicitModel,
    ImplicitRegressor,
    SolverError,
)
from lifted_idl.activations import get_activation
from lifted_idl.datasets import make_teacher

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def teacher():
    return make_teacher(200, 200, n_features=5, n_hidden=8, random_state=1)


def test_regressor_beats_its_initialisation(teacher):
    U, y, Ut, yt, _ = teacher
    reg = ImplicitRegressor(n_hidden=10, max_iter=15, random_state=0).fit(U, y)
    hist = reg.bcd_history_
    # the returned model's training objective is below the random-feature initialisation's
    assert min(hist.train_loss) < 0.8 * hist.train_loss[0]
    assert isinstance(reg.model_, ImplicitModel)
    assert reg.model_.well_posedness.well_posed
    assert np.abs(reg.model_.A).sum(axis=1).max() <= reg.kappa + 1e-9
    assert reg.score(Ut, yt) > 0.5


@pytest.mark.parametrize("lam, lam_min", [(10.0, 3.0), (1.0, 0.05), (0.5, 3.0)])
def test_bcd_divergence_weight_stays_at_or_above_its_floor(teacher, lam, lam_min):
    U, y, _, _, _ = teacher
    reg = ImplicitRegressor(n_hidden=6, max_iter=12, lam=lam, lam_min=lam_min,
                            random_state=0).fit(U, y)
    used = np.asarray(reg.bcd_history_.lam)
    floor = min(lam, lam_min)  # a floor above the starting weight is the starting weight
    assert used[0] == lam
    assert used.min() >= floor * (1 - 1e-12)
    if lam > lam_min:  # accepted rounds halve the weight down to the floor
        assert used.min() < lam


def test_model_acts_on_raw_features(teacher):
    U, y, Ut, yt, _ = teacher
    reg = ImplicitRegressor(n_hidden=6, max_iter=3, random_state=0).fit(U * 10 + 3, y)
    np.testing.assert_allclose(reg.model_.predict(Ut * 10 + 3)[:, 0], reg.predict(Ut * 10 + 3),
                               rtol=1e-12, atol=1e-12)


def test_multioutput_regression(teacher):
    U, y, _, _, _ = teacher
    Y = np.column_stack([y, -2 * y + 1])
    reg = ImplicitRegressor(n_hidden=6, max_iter=3, random_state=0).fit(U, Y)
    assert reg.predict(U).shape == (U.shape[0], 2)
    assert reg.model_.n_outputs == 2


def test_classifier_string_labels_and_proba():
    X, y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    clf = ImplicitClassifier(n_hidden=8, max_iter=5, random_state=0).fit(X, names)
    assert set(clf.classes_) == set(names)
    P = clf.predict_proba(X)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-12)
    assert np.all(clf.predict(X) == clf.classes_[P.argmax(axis=1)])
    assert clf.score(X, names) > 0.9


def test_binary_decision_function_is_logit_difference():
    X, y = make_classification(120, 6, random_state=0)
    clf = ImplicitClassifier(n_hidden=6, max_iter=4, random_state=0).fit(X, y)
    d = clf.decision_function(X)
    Z = clf.model_.predict(X)
    assert d.shape == (120,)
    np.testing.assert_allclose(d, Z[:, 1] - Z[:, 0], rtol=1e-12, atol=1e-12)
    assert np.all((d > 0) == (clf.predict_proba(X)[:, 1] > 0.5))


def test_float32_stays_float32(teacher):
    U, y, _, _, _ = teacher
    reg = ImplicitRegressor(n_hidden=6, max_iter=3, random_state=0).fit(U.astype(np.float32), y)
    out = reg.predict(U.astype(np.float32))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, reg.predict(U), rtol=1e-3, atol=1e-3)


def test_pipeline_gridsearch_clone_pickle(teacher):
    U, y, Ut, yt, _ = teacher
    pipe = make_pipeline(StandardScaler(), ImplicitRegressor(max_iter=3, random_state=0))
    gs = GridSearchCV(pipe, {"implicitregressor__n_hidden": [4, 8]}, cv=2, n_jobs=2)
    gs.fit(U, y)
    assert gs.best_params_["implicitregressor__n_hidden"] in (4, 8)
    best = gs.best_estimator_
    again = pickle.loads(pickle.dumps(best))
    np.testing.assert_array_equal(again.predict(Ut), best.predict(Ut))
    c = clone(best)
    assert not hasattr(c[-1], "model_")
    # converged_ is recorded even though worker warnings are lost
    assert isinstance(best[-1].converged_, bool)


def test_pickle_is_small_and_holds_no_cvxpy(teacher):
    U, y, _, _, _ = teacher
    reg = ImplicitRegressor(n_hidden=6, max_iter=2, block_solver="cvxpy", random_state=0).fit(U, y)
    blob = pickle.dumps(reg)
    # no cvxpy object is pickled: no global from a cvxpy module (the string "cvxpy" itself is
    # the block_solver parameter's value)
    globals_ = [op[1] for op in pickletools.genops(blob) if op[0].name in ("GLOBAL",)]
    strings = [op[1] for op in pickletools.genops(blob) if isinstance(op[1], str)]
    assert not any(str(g).startswith("cvxpy") for g in globals_)
    assert not any(s.startswith("cvxpy.") for s in strings)
    assert len(blob) < 200_000


def test_random_state_reproducible(teacher):
    U, y, _, _, _ = teacher
    a = ImplicitRegressor(n_hidden=6, max_iter=3, random_state=3).fit(U, y).predict(U)
    b = ImplicitRegressor(n_hidden=6, max_iter=3, random_state=3).fit(U, y).predict(U)
    np.testing.assert_array_equal(a, b)


def test_warm_start_continues(teacher):
    U, y, _, _, _ = teacher
    reg = ImplicitRegressor(n_hidden=6, max_iter=2, warm_start=True, random_state=0).fit(U, y)
    first = reg.loss_curve_[-1]
    reg.fit(U, y)
    assert min(reg.loss_curve_) <= first + 1e-9


@pytest.mark.parametrize("solver", ["gradient", "bcd"])
def test_warm_start_starts_afresh_when_the_previous_model_does_not_fit(solver):
    """warm_start reuses the previous model only where it fits the new problem: with other
    classes (fewer, or the same number relabelled), another number of outputs or another
    activation the refit is the cold fit, bit for bit; without fit_bias the start's state
    bias is 0."""
    X, y = make_classification(120, 5, n_informative=3, n_classes=3, n_clusters_per_class=1,
                               random_state=0)
    fast = dict(n_hidden=4, max_iter=3, gradient_max_iter=5, solver=solver, random_state=0)

    def refit_is_cold(cls, first, second, **changes):
        warm = cls(warm_start=True, **fast).fit(X, first)
        warm.set_params(**changes).fit(X, second)
        cold = cls(**fast).set_params(**changes).fit(X, second)
        np.testing.assert_array_equal(warm.predict(X), cold.predict(X))
        return warm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        refit_is_cold(ImplicitClassifier, y, (y > 0).astype(int))  # 3 -> 2 classes
        refit_is_cold(ImplicitClassifier, y, np.array(["c", "a", "b"])[y])  # relabelled
        Y = np.column_stack([X[:, 0], X[:, 1] - X[:, 2]])
        refit_is_cold(ImplicitRegressor, Y[:, 0], Y)  # 1 -> 2 outputs
        est = refit_is_cold(ImplicitRegressor, Y[:, 0], Y[:, 0], activation="tanh")
        assert est.model_.activation == get_activation("tanh")
        est = ImplicitRegressor(warm_start=True, **fast).fit(X, Y[:, 0])
        assert np.any(est._scaled_model.b != 0)  # the model on the standardised features
        est.set_params(fit_bias=False).fit(X, Y[:, 0])
        np.testing.assert_array_equal(est._scaled_model.b, 0.0)


def test_verbose_reports_progress(teacher, capsys):
    U, y, _, _, _ = teacher
    ImplicitRegressor(n_hidden=4, max_iter=2, verbose=1, random_state=0).fit(U, y)
    out = capsys.readouterr().out
    assert "round" in out


def test_feature_importances_select_from_model():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 6))
    y = 3 * X[:, 0] - 2 * X[:, 1] + 0.01 * rng.standard_normal(200)
    reg = ImplicitRegressor(n_hidden=6, max_iter=30, random_state=0).fit(X, y)
    imp = reg.feature_importances_
    assert imp.shape == (6,)
    assert set(np.argsort(imp)[-2:]) == {0, 1}
    sel = SelectFromModel(reg, prefit=True, threshold="mean")
    assert sel.transform(X).shape[1] >= 2


@pytest.mark.parametrize(
    "X, y, match",
    [
        (np.array([[np.nan, 1.0], [1.0, 2.0], [0.0, 1.0]]), [1.0, 2.0, 3.0], "NaN"),
        (np.array([[np.inf, 1.0], [1.0, 2.0], [0.0, 1.0]]), [1.0, 2.0, 3.0], "infinity"),
        (np.ones((3, 2)), [1.0, 2.0], "inconsistent numbers of samples"),
        (np.ones((1, 2)), [1.0], "1 sample"),
        (np.arange(6.0).reshape(3, 2), [1.0, 1.0, 1.0], "constant"),
        (np.arange(6.0), [1.0, 2.0, 3.0], "2D array"),
    ],
)
def test_regressor_bad_input(X, y, match):
    with pytest.raises(ValueError, match=match):
        ImplicitRegressor(max_iter=1).fit(X, y)


def test_classifier_single_class_and_continuous_target():
    X = np.arange(12.0).reshape(6, 2)
    with pytest.raises(ValueError, match="class"):
        ImplicitClassifier(max_iter=1).fit(X, np.zeros(6))
    with pytest.raises(ValueError, match="Unknown label type"):
        ImplicitClassifier(max_iter=1).fit(X, np.linspace(0, 1, 6))


def test_sparse_input_rejected_clearly(teacher):
    U, y, _, _, _ = teacher
    with pytest.raises(TypeError, match="[Ss]parse"):
        ImplicitRegressor(max_iter=1).fit(sp.csr_matrix(U), y)


def test_wrong_feature_count_at_predict(teacher):
    U, y, _, _, _ = teacher
    reg = ImplicitRegressor(n_hidden=4, max_iter=1, random_state=0).fit(U, y)
    with pytest.raises(ValueError, match="features"):
        reg.predict(U[:, :3])


def test_invalid_parameters_named():
    X = np.random.default_rng(0).standard_normal((20, 3))
    y = X[:, 0]
    with pytest.raises(ValueError, match="kappa"):
        ImplicitRegressor(kappa=1.5).fit(X, y)
    with pytest.raises(ValueError, match="solver"):
        ImplicitRegressor(solver="sgd").fit(X, y)


def test_failed_block_leaves_fitted_model_intact(teacher, monkeypatch):
    U, y, Ut, _, _ = teacher
    reg = ImplicitRegressor(n_hidden=6, max_iter=2, random_state=0).fit(U, y)
    before = reg.predict(Ut).copy()
    model_before = reg.model_
    from lifted_idl import blocks

    def boom(*a, **k):
        raise SolverError("(A,B) block: solver status 'infeasible'")

    monkeypatch.setattr(blocks, "solve_ab", boom)
    with pytest.raises(SolverError, match="infeasible"):
        reg.fit(U, y)
    assert reg.model_ is model_before
    np.testing.assert_array_equal(reg.predict(Ut), before)


def test_nonconvergence_recorded(teacher):
    U, y, _, _, _ = teacher
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        reg = ImplicitRegressor(n_hidden=6, max_iter=1, tol=0.0, random_state=0).fit(U, y)
    assert not reg.converged_
    assert any(issubclass(w.category, ConvergenceWarning) for w in rec)


def test_nonconvergence_recorded_whatever_the_filters(teacher):
    """A user's filter on the package's modules silences its ConvergenceWarnings (they are
    issued from the package's modules, not re-issued from a file path), and converged_ is
    recorded all the same."""
    U, y, _, _, _ = teacher
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=ConvergenceWarning, module="lifted_idl")
        reg = ImplicitRegressor(n_hidden=6, max_iter=1, tol=0.0, random_state=0).fit(U, y)
    assert not reg.converged_
    assert not any(issubclass(w.category, ConvergenceWarning) for w in rec)


def test_convergence_of_fits_in_threads_is_their_own():
    """Fits running side by side in threads each record their own convergence: the one that
    converges says so while the other one, next to it, stops at max_iter (the warnings
    machinery is process-wide; the notes behind converged_ are per thread)."""
    import threading

    rng = np.random.default_rng(0)
    U = rng.standard_normal((300, 5))
    y = U @ rng.standard_normal(5) + 0.1 * rng.standard_normal(300)
    alone = ImplicitRegressor(n_hidden=5, max_iter=200, tol=0.5, random_state=0).fit(U, y)
    assert alone.converged_
    for _ in range(5):
        good = ImplicitRegressor(n_hidden=5, max_iter=200, tol=0.5, random_state=0)
        bad = ImplicitRegressor(n_hidden=5, max_iter=2, tol=0.0, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            threads = [threading.Thread(target=e.fit, args=(U, y)) for e in (good, bad)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert good.converged_ and not bad.converged_


def test_finetuning_that_ends_uphill_keeps_the_bcd_model(teacher, monkeypatch):
    """bcd+gradient never returns a model worse (in training objective) than its BCD stage."""
    U, y, _, _, _ = teacher
    import lifted_idl.training.gradient as gradient_module

    def uphill(model, *args, **kwargs):
        worse = model.replace(C=np.zeros_like(model.C))
        return worse, {"loss": [10.0], "loss_initial": 1.0, "n_iter": 1, "converged": True}

    bcd_only = ImplicitRegressor(n_hidden=5, max_iter=3, random_state=0).fit(U, y)
    monkeypatch.setattr(gradient_module, "fit_gradient", uphill)
    both = ImplicitRegressor(n_hidden=5, max_iter=3, solver="bcd+gradient",
                             random_state=0).fit(U, y)
    np.testing.assert_array_equal(both.predict(U), bcd_only.predict(U))
    # the gradient solver alone has nothing to fall back on: it takes the result
    grad = ImplicitRegressor(n_hidden=5, solver="gradient", random_state=0).fit(U, y)
    assert np.all(grad.model_.C == 0)


def test_finetuning_retries_with_shorter_steps(teacher, monkeypatch):
    """An uphill fine-tuning stage is retried from the BCD model with the learning rate / 4;
    the first try that ends below the BCD objective is kept, and after 4 uphill tries the
    BCD model is."""
    U, y, _, _, _ = teacher
    import lifted_idl.training.gradient as gradient_module

    rates = []

    def downhill_below(threshold):
        def fake(model, *args, learning_rate, **kwargs):
            rates.append(learning_rate)
            if learning_rate > threshold:
                return model.replace(C=np.zeros_like(model.C)), {
                    "loss": [10.0], "loss_initial": 1.0, "n_iter": 1, "converged": True}
            return model.replace(C=2.0 * model.C), {
                "loss": [0.5], "loss_initial": 1.0, "n_iter": 1, "converged": True}
        return fake

    bcd_only = ImplicitRegressor(n_hidden=5, max_iter=3, random_state=0).fit(U, y)
    kw = dict(n_hidden=5, max_iter=3, solver="bcd+gradient", learning_rate=1e-2,
              random_state=0)
    monkeypatch.setattr(gradient_module, "fit_gradient", downhill_below(1e-3))
    both = ImplicitRegressor(**kw).fit(U, y)
    np.testing.assert_allclose(rates, [1e-2, 2.5e-3, 6.25e-4])
    np.testing.assert_allclose(both.model_.C, 2.0 * bcd_only.model_.C, rtol=1e-12)
    assert both.loss_curve_[-1] == 0.5

    rates.clear()
    monkeypatch.setattr(gradient_module, "fit_gradient", downhill_below(0.0))
    kept = ImplicitRegressor(**kw).fit(U, y)
    np.testing.assert_allclose(rates, [1e-2, 2.5e-3, 6.25e-4, 1.5625e-4])
    np.testing.assert_array_equal(kept.predict(U), bcd_only.predict(U))


def test_robust_penalty_lowers_the_lipschitz_bound():
    """A Lipschitz-penalised classifier has a smaller certified-radius denominator (||S||_inf)."""
    from lifted_idl.robustness import lipschitz_bound

    X, y = load_iris(return_X_y=True)
    kw = dict(n_hidden=8, solver="gradient", gradient_max_iter=150, random_state=0)
    plain = ImplicitClassifier(**kw).fit(X, y)
    robust = ImplicitClassifier(robust="lipschitz", robust_alpha=0.05, **kw).fit(X, y)
    assert lipschitz_bound(robust) < 0.5 * lipschitz_bound(plain)
    assert robust.score(X, y) > 0.8


def test_mu_inf_constraint_holds_on_the_fitted_model():
    from lifted_idl.wellposedness import mu_inf

    X, y = load_iris(return_X_y=True)
    clf = ImplicitClassifier(n_hidden=6, solver="gradient", gradient_max_iter=60,
                             constraint="mu_inf", kappa=0.5, random_state=0).fit(X, y)
    assert mu_inf(clf.model_.A) <= 0.5 + 1e-9
    assert clf.model_.well_posedness.well_posed


def test_robust_sigma_uses_the_robust_block(teacher, monkeypatch):
    U, y, _, _, _ = teacher
    from lifted_idl import blocks

    calls = []
    original = blocks.solve_ab_robust

    def spy(*args, **kwargs):
        calls.append(args[7])
        return original(*args, **kwargs)

    monkeypatch.setattr(blocks, "solve_ab_robust", spy)
    ImplicitRegressor(n_hidden=5, max_iter=2, robust_sigma=0.1, random_state=0).fit(U, y)
    assert calls
    # sigma is given in raw units and passed in standardised units
    np.testing.assert_allclose(calls[0], 0.1 / U.std(axis=0), rtol=1e-12)


def test_robust_options_need_their_solver():
    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match="gradient solver"):
        ImplicitClassifier(robust="lipschitz", robust_alpha=0.1).fit(X, y)
    with pytest.raises(ValueError, match="mu_inf"):
        ImplicitClassifier(constraint="mu_inf").fit(X, y)
    with pytest.raises(ValueError, match="robust_sigma"):
        ImplicitClassifier(solver="gradient", robust_sigma=0.1).fit(X, y)


def _first_converged_round(hist, tol, k):
    """The first round at which the objective test of the rounds (relative decrease below
    ``tol`` per round over the last ``k`` accepted rounds) holds, from the history."""
    pool = [hist.train_loss[0]]
    for it, acc in enumerate(hist.accepted, start=1):
        if acc:
            pool.append(hist.train_loss[it])
        if len(pool) > k and min(pool[:-k]) - pool[-1] <= tol * k * abs(min(pool[:-k])):
            return it
    return None


@pytest.mark.parametrize("m", [400, 2000])
def test_default_bcd_tol_shrinks_beyond_1000_samples(m):
    """``tol=None``: BCD stops at the first round whose objective test holds with
    ``1e-3 * min(1, sqrt(1000 / m))``, and not with the tolerance of 1000 samples when
    m > 1000."""
    from lifted_idl.estimators import _default_bcd_tol

    U, y, _, _, _ = make_teacher(m, 10, n_features=3, n_hidden=4, random_state=0)
    reg = ImplicitRegressor(n_hidden=2, random_state=0).fit(U, y)
    hist = reg.bcd_history_
    tol = _default_bcd_tol(m)
    assert tol == pytest.approx(1e-3 * min(1.0, np.sqrt(1000 / m)))
    assert hist.stopped_by == "objective"
    assert _first_converged_round(hist, tol, 5) == hist.n_iter
    if m > 1000:  # the looser tolerance of 1000 samples would have stopped it earlier
        assert _first_converged_round(hist, 1e-3, 5) < hist.n_iter


def test_leaky_relu_needs_the_gradient_solver():
    """BCD's P block has the ReLU, tanh and sigmoid divergences only: a leaky-ReLU estimator
    with a BCD stage is refused before any training (it used to fail inside the first round,
    and in every fold of the CV estimators), and trains with solver="gradient"."""
    from lifted_idl import ImplicitRegressorCV

    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3))
    y = X @ np.array([1.0, -1.0, 0.5])
    for solver in ("bcd", "bcd+gradient"):
        est = ImplicitRegressor(n_hidden=3, activation="leaky_relu", solver=solver)
        with pytest.raises(ValueError, match="needs solver='gradient'"):
            est.fit(X, y)
        assert not hasattr(est, "model_")
    with pytest.raises(ValueError, match="needs solver='gradient'"):
        ImplicitRegressorCV(alphas=2, cv=2, n_hidden=3, activation="leaky_relu").fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = ImplicitRegressor(n_hidden=3, activation="leaky_relu", solver="gradient",
                                gradient_max_iter=5, random_state=0).fit(X, y)
    assert est.model_.activation == get_activation("leaky_relu")
