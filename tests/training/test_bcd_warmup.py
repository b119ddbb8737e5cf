"""The gradient warm-up of the estimators' BCD stage (``warmup_epochs``)."""

import warnings

import numpy as np
import pytest

from lifted_idl import ImplicitClassifier, ImplicitRegressor
from lifted_idl import estimators as est_mod
from lifted_idl.datasets import make_teacher
from lifted_idl.exceptions import ConvergenceWarning


def _data():
    U, y, *_ = make_teacher(120, 10, n_features=4, n_hidden=6, random_state=3)
    return U, (y > np.median(y)).astype(int)


def test_default_bcd_fit_is_bcd_from_the_warmup_model():
    # one default classifier fit = the gradient solver stopped at _BCD_WARMUP_EPOCHS epochs,
    # then BCD warm-started from its model: the same weights, and no ConvergenceWarning for
    # the epochs cut short by design
    U, y = _data()
    k = est_mod._BCD_WARMUP_EPOCHS
    assert k > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        one = ImplicitClassifier(n_hidden=6, random_state=0, max_iter=400).fit(U, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        two = ImplicitClassifier(n_hidden=6, random_state=0, max_iter=400, solver="gradient",
                                 gradient_max_iter=k, warm_start=True).fit(U, y)
    warm = two.loss_curve_[-1]
    two.set_params(solver="bcd").fit(U, y)
    for name in "ABCDbc":
        np.testing.assert_allclose(getattr(one.model_, name), getattr(two.model_, name),
                                   rtol=1e-10, atol=1e-12)
    assert one.converged_
    # the record holds BCD's rounds only (n_iter_ <= max_iter): round 0 is the anchored
    # warm-up model (its (C, D, c) re-solved: at most the warm-up's objective), and the
    # objective never rises from there
    assert one.n_iter_ == two.n_iter_ <= 400
    bcd = np.array(one.loss_curve_)
    assert bcd.size == one.n_iter_ + 1 and bcd[0] <= warm * (1 + 1e-9)
    assert np.all(np.diff(bcd) <= 1e-12 * np.abs(bcd[:-1])) and bcd[-1] < bcd[0]


@pytest.mark.parametrize("Est, kw", [(ImplicitClassifier, dict(penalty="group", alpha=0.01)),
                                     (ImplicitClassifier, dict(robust_sigma=0.05)),
                                     (ImplicitRegressor, {})])
def test_no_warmup_for_regression_group_penalty_and_robust_step(Est, kw):
    # regression, the group-penalty path and the robust (A, B, b) step start from random
    # features: the fit is the same with the warm-up switched off
    U, y = _data()
    if Est is ImplicitRegressor:
        y = U @ np.arange(1.0, U.shape[1] + 1.0)
    ref = Est(n_hidden=6, random_state=0, max_iter=15, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = ref.fit(U, y).model_
        b = ref.set_params(warmup_epochs=0).fit(U, y).model_
    for name in "ABCD":
        assert np.array_equal(getattr(a, name), getattr(b, name))


def test_warmup_skipped_on_warm_start():
    # a warm-started BCD fit continues from the previous model, not from a new warm-up
    U, y = _data()
    clf = ImplicitClassifier(n_hidden=6, random_state=0, max_iter=5, warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(U, y)
        first = clf.loss_curve_[-1]
        clf.fit(U, y)
    assert clf.n_iter_ <= 5 and clf.loss_curve_[0] <= first * (1 + 1e-9)


def test_warmup_epochs_parameter():
    # an explicit count is that many epochs (also for regression); 0 switches "auto" off;
    # a count > 0 with the robust (A, B, b) step raises
    U, y = _data()
    yr = U @ np.arange(1.0, U.shape[1] + 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for Est, t, auto in [(ImplicitClassifier, y, est_mod._BCD_WARMUP_EPOCHS),
                             (ImplicitRegressor, yr, 0)]:
            fits = {k: Est(n_hidden=6, random_state=0, max_iter=10, warmup_epochs=k).fit(U, t)
                    for k in ["auto", 0, 3, auto]}
            assert np.array_equal(fits["auto"].model_.A, fits[auto].model_.A)
            assert not np.array_equal(fits[0].model_.A, fits[3].model_.A)
            ref = Est(n_hidden=6, random_state=0, solver="gradient", gradient_max_iter=3,
                      warm_start=True).fit(U, t)
            ref.set_params(solver="bcd", max_iter=10).fit(U, t)
            np.testing.assert_allclose(fits[3].model_.A, ref.model_.A, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="robust_sigma"):
        ImplicitClassifier(n_hidden=6, robust_sigma=0.05, warmup_epochs=2).fit(U, y)
    with pytest.raises(ValueError, match="warmup_epochs"):
        ImplicitClassifier(warmup_epochs=-1).fit(U, y)


def test_auto_warmup_for_regression_from_the_sample_threshold(monkeypatch):
    # regression warms up from _WARMUP_REGRESSION_SAMPLES training rows on (lowered here to
    # keep the test small): at the threshold "auto" is the 10-epoch fit, one row below it the
    # random-feature start
    U, _ = _data()
    y = U @ np.arange(1.0, U.shape[1] + 1.0) + np.sin(3 * U[:, 0])
    monkeypatch.setattr(est_mod, "_WARMUP_REGRESSION_SAMPLES", U.shape[0])
    kw = dict(n_hidden=6, random_state=0, max_iter=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for X, t, k in [(U, y, est_mod._BCD_WARMUP_EPOCHS), (U[1:], y[1:], 0)]:
            auto = ImplicitRegressor(**kw).fit(X, t).model_
            ref = ImplicitRegressor(warmup_epochs=k, **kw).fit(X, t).model_
            other = ImplicitRegressor(warmup_epochs=0 if k else 10, **kw).fit(X, t).model_
            assert np.array_equal(auto.A, ref.A) and not np.array_equal(auto.A, other.A)


def _separable():
    # two well-separated blobs: the penalised cross-entropy keeps falling by a steady fraction
    # per round long after the probabilities have settled
    rng = np.random.default_rng(0)
    U = np.vstack([rng.normal(-2.0, 1.0, (60, 3)), rng.normal(2.0, 1.0, (60, 3))])
    return U, np.repeat([0, 1], 60)


def test_classifier_stops_when_its_probabilities_settle():
    # pred_tol="auto" after the warm-up: the run ends on the prediction test at the first
    # accepted round whose mean change over the last n_iter_no_change rounds is below
    # _BCD_PRED_TOL, where the objective test alone runs on; the rounds are the same up to
    # there (the test only decides where to stop)
    U, y = _separable()
    k, tol = 5, est_mod._BCD_PRED_TOL
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        auto = ImplicitClassifier(n_hidden=6, random_state=0, n_iter_no_change=k).fit(U, y)
        full = ImplicitClassifier(n_hidden=6, random_state=0, n_iter_no_change=k,
                                  pred_tol=None).fit(U, y)
        fixed = ImplicitClassifier(n_hidden=6, random_state=0, n_iter_no_change=k,
                                   pred_tol=tol).fit(U, y)
    h = auto.bcd_history_
    assert h.stopped_by == "predictions" and auto.converged_
    assert len(h.pred_change) == h.n_accepted >= k
    assert full.bcd_history_.stopped_by == "objective" and full.bcd_history_.pred_change == []
    assert full.n_iter_ > auto.n_iter_
    np.testing.assert_array_equal(auto.loss_curve_, full.loss_curve_[:auto.n_iter_ + 1])
    np.testing.assert_array_equal(auto.loss_curve_, fixed.loss_curve_)
    assert auto.score(U, y) == full.score(U, y) == 1.0


@pytest.mark.parametrize("Est, kw, active", [
    (ImplicitClassifier, {}, True),
    (ImplicitClassifier, dict(warmup_epochs=0), False),  # from random features
    (ImplicitClassifier, dict(pred_tol=None), False),
    (ImplicitRegressor, {}, False),
    (ImplicitRegressor, dict(pred_tol=1e-3), True),
])
def test_pred_tol_auto_resolution(Est, kw, active):
    # "auto" is the prediction test for classification from a trained start only; an explicit
    # value applies everywhere (history.pred_change is recorded exactly when the test runs)
    U, y = _separable()
    if Est is ImplicitRegressor:
        y = U @ np.arange(1.0, U.shape[1] + 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = Est(n_hidden=6, random_state=0, max_iter=8, **kw).fit(U, y)
    assert bool(est.bcd_history_.pred_change) is active


def test_pred_tol_auto_on_warm_start_and_validation():
    # a warm-started refit starts from the previous (trained) model: "auto" runs the test
    U, y = _separable()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = ImplicitClassifier(n_hidden=6, random_state=0, max_iter=8, warmup_epochs=0,
                                 warm_start=True).fit(U, y)
        assert clf.bcd_history_.pred_change == []
        clf.fit(U, y)
    assert clf.bcd_history_.pred_change
    for bad in (-1.0, "fast"):
        with pytest.raises(ValueError, match="pred_tol"):
            ImplicitClassifier(pred_tol=bad).fit(U, y)
