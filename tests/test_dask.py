"""Scale-out with Dask: a GridSearchCV run through joblib's dask backend on a LocalCluster
gives the same search as the plain joblib run.

The cluster runs its two workers as threads of this process (``processes=False``): starting
worker processes takes seconds and needs the package importable in them, while the property
under test — every fit is independent and deterministic given ``random_state``, whichever
worker runs it — is the same. The task stream proves the fits went through the scheduler.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_regression
from sklearn.model_selection import GridSearchCV, cross_validate

from lifted_idl import ImplicitRegressor

distributed = pytest.importorskip("dask.distributed")
joblib = pytest.importorskip("joblib")

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

GRID = {"n_hidden": [3, 6], "alpha": [1e-4, 1.0]}


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as c:
        yield c


def _data():
    return make_regression(n_samples=40, n_features=3, noise=5.0, random_state=0)


def test_gridsearch_on_dask_matches_plain_joblib(client):
    X, y = _data()
    est = ImplicitRegressor(max_iter=2, random_state=0)
    plain = GridSearchCV(est, GRID, cv=2).fit(X, y)
    with distributed.get_task_stream(client) as stream, joblib.parallel_backend("dask"):
        on_dask = GridSearchCV(est, GRID, cv=2, n_jobs=2).fit(X, y)
    assert len(stream.data) > 0, "no task reached the Dask scheduler"
    scores = plain.cv_results_["mean_test_score"]
    assert len(set(np.round(scores, 12))) > 1  # the grid is not degenerate: the best matters
    assert on_dask.best_params_ == plain.best_params_
    for key in ("split0_test_score", "split1_test_score", "mean_test_score", "rank_test_score"):
        np.testing.assert_allclose(on_dask.cv_results_[key], plain.cv_results_[key],
                                   rtol=1e-10, atol=0, err_msg=key)
    np.testing.assert_allclose(on_dask.predict(X), plain.predict(X), rtol=1e-10)


def test_convergence_is_recorded_on_workers(client):
    # warnings raised on a worker do not reach the caller: converged_ / n_iter_ must
    X, y = _data()
    est = ImplicitRegressor(n_hidden=4, max_iter=1, tol=0.0, random_state=0)
    plain = cross_validate(est, X, y, cv=2, return_estimator=True)
    with joblib.parallel_backend("dask"):
        on_dask = cross_validate(est, X, y, cv=2, n_jobs=2, return_estimator=True)
    for a, b in zip(plain["estimator"], on_dask["estimator"], strict=True):
        assert a.converged_ is b.converged_ is False  # one round, tol=0: cannot converge
        assert a.n_iter_ == b.n_iter_
        np.testing.assert_allclose(a.model_.A, b.model_.A, rtol=1e-12)
    np.testing.assert_allclose(on_dask["test_score"], plain["test_score"], rtol=1e-10)
