"""scikit-learn API conformance: every check of ``parametrize_with_checks``."""

import warnings

from sklearn.utils.estimator_checks import parametrize_with_checks

from lifted_idl import (
    ConvergenceWarning,
    ImplicitClassifier,
    ImplicitClassifierCV,
    ImplicitRegressor,
    ImplicitRegressorCV,
)

# Small, quick configurations; the checks exercise the API, not the solvers' quality.
ESTIMATORS = [
    ImplicitRegressor(n_hidden=5, max_iter=2, random_state=0),
    ImplicitClassifier(n_hidden=5, max_iter=2, random_state=0),
    ImplicitClassifier(n_hidden=4, solver="gradient", gradient_max_iter=15, random_state=0),
    # the CV estimators: 2 strengths, 2 folds (the checks' data sets can be tiny)
    ImplicitRegressorCV(n_hidden=3, max_iter=2, alphas=2, cv=2, random_state=0),
    ImplicitClassifierCV(n_hidden=3, max_iter=2, alphas=2, cv=2, random_state=0),
    ImplicitRegressorCV(n_hidden=3, max_iter=2, alphas=[1e-2, 1e-3], cv=2, penalty="group",
                        random_state=0),
]

# Expected failures, each with its reason (none at present).
EXPECTED_FAILED = {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=lambda est: EXPECTED_FAILED)
def test_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)
