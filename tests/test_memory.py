"""Bounded memory of inference: chunked solves give the unchunked answers, and predictions hold
one chunk's work arrays, never the (m, n) states (issue 13, part 3).

NumPy reports its allocations to ``tracemalloc``, so the peak traced memory during a call is a
measure of the temporaries it makes (the input, allocated before tracing starts, is not in it).
"""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest
from sklearn import config_context

from lifted_idl import ImplicitClassifier, ImplicitModel, ImplicitRegressor
from lifted_idl.activations import get_activation
from lifted_idl.exceptions import ConvergenceWarning

MiB = 2 ** 20


def _model(rng, path, activation="relu", n=12, p=5, q=3, random_A=None, strictly_upper=None):
    """A random model whose ``method="auto"`` solve takes ``path``."""
    B, C, D = (rng.standard_normal(s) for s in ((n, p), (q, n), (q, p)))
    b, c = rng.standard_normal(n), rng.standard_normal(q)
    if path == "lowrank":
        L, R = rng.standard_normal((n, 3)), rng.standard_normal((n, 3))
        R *= 0.5 / np.abs(R.T @ np.abs(L)).sum(axis=1).max()
        return ImplicitModel.from_low_rank(L, R, B, C, D, b=b, c=c, activation=activation)
    if path == "triangular":
        A = strictly_upper(rng, n)
        perm = rng.permutation(n)
        A = A[np.ix_(perm, perm)]  # a DAG, triangular only up to a permutation
    elif path == "averaged":  # mu_inf(A G) < 1 while ||A G||_inf, lambda_PF(|A G|) >= 1
        A = (random_A(rng, n, 0.5) - 2.0 * np.eye(n)) / get_activation(activation).lipschitz
    else:
        A = random_A(rng, n, 0.9)
    return ImplicitModel(A, B, C, D, b=b, c=c, activation=activation)


@pytest.mark.parametrize("path", ["picard", "averaged", "triangular", "lowrank"])
@pytest.mark.parametrize("activation", ["relu", "tanh", "leaky_relu", "sigmoid"])
def test_chunked_predict_and_solve_equal_the_unchunked_ones(rng, random_A, strictly_upper,
                                                            path, activation):
    model = _model(rng, path, activation, random_A=random_A, strictly_upper=strictly_upper)
    U = rng.standard_normal((41, model.n_features)) * rng.uniform(0.1, 10, (41, 1))
    whole = model.solve(U)
    assert whole.method == path and whole.converged
    Y = model.predict(U)
    for bs in (1, 6, 16, 40, 41, 500):
        np.testing.assert_allclose(model.predict(U, batch_size=bs), Y, rtol=0, atol=1e-12)
        res = model.solve(U, batch_size=bs)
        np.testing.assert_allclose(res.X, whole.X, rtol=0, atol=1e-12)
        assert res.method == path and res.converged and res.n_unconverged == 0
        assert res.n_iter <= whole.n_iter
    # the output formula holds row by row on the chunked states
    X = model.equilibrium(U, batch_size=10)
    np.testing.assert_allclose(model.output(X, U), Y, rtol=0, atol=1e-12)


def test_chunked_anderson_warm_start_and_integer_input(rng, random_A):
    model = _model(rng, "picard", random_A=random_A)
    U = rng.integers(-5, 6, size=(60, model.n_features))
    Uf = U.astype(np.float64)
    np.testing.assert_allclose(model.predict(U, batch_size=8, method="anderson"),
                               model.predict(Uf, method="anderson"), rtol=0, atol=1e-12)
    X = model.equilibrium(Uf)
    warm = model.solve(U, X0=X, batch_size=16)  # every chunk starts at its own fixed point
    assert warm.n_iter <= 2
    np.testing.assert_allclose(warm.X, model.solve(Uf, X0=X).X, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match=r"X0 has shape \(59, 12\)"):
        model.solve(U, X0=X[:59], batch_size=16)


def test_chunked_errors_and_one_warning_for_all_chunks(rng, random_A):
    model = _model(rng, "picard", random_A=random_A)
    U = rng.standard_normal((50, model.n_features))
    U[37, 2] = np.nan
    with pytest.raises(ValueError, match=r"U\[37, 2\] = nan"):  # index in U, not in the chunk
        model.predict(U, batch_size=8)
    U[37, 2] = 0.0
    X0 = np.zeros((50, model.n_states))
    X0[41, 1] = np.inf
    with pytest.raises(ValueError, match=r"X0\[41, 1\] = inf"):
        model.solve(U, X0=X0, batch_size=8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = model.solve(U, batch_size=8, max_iter=2)
    conv = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert len(conv) == 1 and f"for {res.n_unconverged} sample(s)" in str(conv[0].message)
    assert res.n_unconverged == 50 and not res.converged  # two steps reach no sample


def _regressor(rng, n_hidden=50, p=20, m=200):
    X = rng.standard_normal((m, p))
    y = np.tanh(X[:, 0]) + 0.1 * X[:, 1]
    with warnings.catch_warnings():  # three epochs: a model to predict with, not a good one
        warnings.simplefilter("ignore", ConvergenceWarning)
        return ImplicitRegressor(n_hidden=n_hidden, solver="gradient", gradient_max_iter=3,
                                 max_iter=1, random_state=0).fit(X, y)


def test_estimators_chunk_their_input_without_changing_the_answers(rng):
    reg = _regressor(rng, n_hidden=8, p=4, m=60)
    X = rng.standard_normal((300, 4))
    y_model = reg.model_.predict(X)[:, 0]  # one solve of all rows
    with config_context(working_memory=0.01):  # 10 KiB: chunks of a few rows
        np.testing.assert_allclose(reg.predict(X), y_model, rtol=0, atol=1e-12)
    np.testing.assert_allclose(reg.predict(X), y_model, rtol=0, atol=1e-12)
    Xi = rng.integers(-3, 4, size=(50, 4))
    np.testing.assert_allclose(reg.predict(Xi), reg.model_.predict(Xi.astype(float))[:, 0],
                               rtol=0, atol=1e-12)

    Xc = rng.standard_normal((90, 4))
    for k in (2, 3):
        yc = np.arange(90) % k
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf = ImplicitClassifier(n_hidden=6, solver="gradient", gradient_max_iter=3,
                                     max_iter=1, random_state=0).fit(Xc, yc)
        Z = clf.model_.predict(Xc)
        expected = {
            "decision_function": Z[:, 1] - Z[:, 0] if k == 2 else Z,
            "predict_proba": np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True),
            "predict": clf.classes_[np.argmax(Z, axis=1)],
        }
        expected["predict_log_proba"] = np.log(expected["predict_proba"])
        with config_context(working_memory=0.005):
            for name, want in expected.items():
                got = getattr(clf, name)(Xc)
                assert got.shape == want.shape, name
                np.testing.assert_allclose(got, want, rtol=0, atol=1e-12, err_msg=name)


def _peak_bytes(fn):
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_predictions_hold_one_chunk_not_the_states(rng):
    """Peak traced memory of predicting m = 50000 rows (n = 50, p = 20) stays within the output
    plus one chunk's working set; the (m, n) states alone would be 20 MB."""
    reg = _regressor(rng)
    model = reg.model_
    m = 50_000
    U = rng.standard_normal((m, 20))
    row = model.row_bytes()
    out = m * 8
    states = m * model.n_states * 8
    slack = MiB // 2  # small objects: the model's cached parameters, per-row scalars

    for wm in (1, 4):
        with config_context(working_memory=wm):
            peak = _peak_bytes(lambda: reg.predict(U))
        assert peak <= out + wm * MiB + slack, (wm, peak)
    peak = _peak_bytes(lambda: model.predict(U, batch_size=1000))
    assert peak <= out + 1000 * row + slack, peak
    assert out + 4 * MiB + slack < states / 3  # the bound is far from what m states would take
    # the default working_memory (1 GiB) is capped: a chunk holds at most 32 MiB
    rows = int(reg._PREDICT_CHUNK_MIB * MiB // row)
    assert rows < m and rows * row <= 32 * MiB
