"""``sample_weight``: weights against repeated and dropped samples, and against cvxpy.

Convention (:func:`lifted_idl.losses.unit_mean_weights`): every average over the m samples
becomes :math:`\\sum_s w_s(\\cdot)_s/\\sum_s w_s`, so integer weights are repeated samples and
zero weights are removed samples.
"""

import warnings

import numpy as np
import pytest
from sklearn.preprocessing import StandardScaler

from lifted_idl import (
    ConvergenceWarning,
    ImplicitClassifier,
    ImplicitRegressor,
    blocks,
)
from lifted_idl.activations import get_activation
from lifted_idl.estimators import _standardise
from lifted_idl.losses import SoftmaxCrossEntropy, SquaredLoss, unit_mean_weights
from lifted_idl.penalties import GroupPenalty, L1Penalty, L2Penalty, NoPenalty
from lifted_idl.training.bcd import fit_bcd
from lifted_idl.training.gradient import fit_gradient
from lifted_idl.training.objective import true_objective

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
W_INT = np.array([2, 0, 1, 3, 1, 0, 2, 1, 1, 3, 1, 2, 1, 1])  # integer weights, two zeros
M = W_INT.size


def _rep(*arrays, w=W_INT):
    return [np.repeat(a, w, axis=0) for a in arrays]


def _max_diff(r1, r2):
    return max(float(np.abs(a - b).max()) for a, b in zip(r1, r2, strict=True))


# ----------------------------------------------------------------------------------------------
# losses and objectives: the weighted average is the plain average over the repeated data
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("loss", [SquaredLoss(), SoftmaxCrossEntropy()])
def test_loss_weighted_equals_repeated(loss):
    rng = np.random.default_rng(1)
    Y = np.eye(3)[rng.integers(0, 3, M)]
    Yh = rng.standard_normal((M, 3))
    Yr, Yhr = _rep(Y, Yh)
    assert loss.value(Y, Yh, sample_weight=W_INT) == pytest.approx(loss.value(Yr, Yhr),
                                                                   rel=1e-13)
    # the gradient of each sample is the sum of its copies' gradients
    g = loss.grad(Y, Yh, sample_weight=W_INT)
    gr = np.add.reduceat(loss.grad(Yr, Yhr), np.r_[0, np.cumsum(W_INT)[:-1]][W_INT > 0])
    np.testing.assert_allclose(g[W_INT > 0], gr, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(g[W_INT == 0], 0.0)
    import cvxpy as cp

    assert float(loss.cvxpy(Y, cp.Constant(Yh), sample_weight=W_INT).value) == pytest.approx(
        loss.value(Y, Yh, sample_weight=W_INT), rel=1e-10)


def _lifted(rng, m=M, n=3, p=2, q=2):
    A = 0.3 * rng.standard_normal((n, n))
    B, b = rng.standard_normal((n, p)), rng.standard_normal(n)
    C, D, c = rng.standard_normal((q, n)), rng.standard_normal((q, p)), rng.standard_normal(q)
    X, P = np.abs(rng.standard_normal((m, n))), np.abs(rng.standard_normal((m, n)))
    U, Y = rng.standard_normal((m, p)), rng.standard_normal((m, q))
    return A, B, b, C, D, c, X, P, U, Y


def test_relaxed_and_true_objective_weighted_equal_repeated():
    rng = np.random.default_rng(2)
    A, B, b, C, D, c, X, P, U, Y = _lifted(rng)
    lam = np.array([1.0, 2.0, 0.5])
    kw = dict(activation="relu", loss="squared", pen_ab=L2Penalty(0.1), pen_cd=L1Penalty(0.1))
    jw = blocks.relaxed_objective(A, B, b, C, D, c, X, P, U, Y, lam, 0.3, **kw,
                                  sample_weight=W_INT)
    Xr, Pr, Ur, Yr = _rep(X, P, U, Y)
    jr = blocks.relaxed_objective(A, B, b, C, D, c, Xr, Pr, Ur, Yr, lam, 0.3, **kw)
    for key in jr:
        assert jw[key] == pytest.approx(jr[key], rel=1e-12), key
    from lifted_idl import ImplicitModel

    model = ImplicitModel(A * 0.5 / np.abs(A).sum(axis=1).max(), B, C, D, b=b, c=c)
    assert true_objective(model, U, Y, SquaredLoss(), sample_weight=W_INT) == pytest.approx(
        true_objective(model, Ur, Yr, SquaredLoss()), rel=1e-12)


# ----------------------------------------------------------------------------------------------
# blocks: weighted fast solver = fast solver on repeated data = weighted cvxpy twin
# ----------------------------------------------------------------------------------------------
_CD_CASES = [
    ("squared", NoPenalty()), ("squared", L2Penalty(0.1)), ("squared", L1Penalty(0.05)),
    ("squared", "group2"), ("cross_entropy", L2Penalty(0.1)),
    ("cross_entropy", L1Penalty(0.05)), ("cross_entropy", "group2"),
    ("cross_entropy", "groupinf"),
]


@pytest.mark.parametrize("loss_name,pen", _CD_CASES)
def test_cd_block_weighted(loss_name, pen):
    rng = np.random.default_rng(3)
    n, p, q = 3, 2, 3
    P, U = rng.random((M, n)), rng.standard_normal((M, p))
    loss = SquaredLoss() if loss_name == "squared" else SoftmaxCrossEntropy()
    Y = rng.standard_normal((M, q)) if loss_name == "squared" else np.eye(q)[
        rng.integers(0, q, M)]
    if isinstance(pen, str):
        group = GroupPenalty(0.05, 2 if pen == "group2" else np.inf)
        pen = group.restrict("cd", {"B": rng.standard_normal((n, p))})
    kw = dict(tol=1e-10, max_iter=600)  # the l-inf group FISTA stops on max_iter
    r = blocks.solve_cd(P, U, Y, loss, pen, sample_weight=W_INT, **kw)
    rr = blocks.solve_cd(*_rep(P, U, Y), loss, pen, **kw)
    rc = blocks.solve_cd(P, U, Y, loss, pen, sample_weight=W_INT, method="cvxpy")
    assert r.objective == pytest.approx(rr.objective, rel=1e-10)
    # the weighted objective of the weighted solution is the repeated data's objective of it
    assert r.objective == pytest.approx(
        blocks.cd_objective(*_rep(P, U, Y), loss, pen, *r.value), rel=1e-12)
    assert r.objective <= rc.objective + 1e-7
    assert rc.objective - r.objective < 1e-6 * max(1.0, abs(r.objective))
    if loss_name == "squared":  # unique minimiser
        assert _max_diff(r.value, rr.value) < 1e-7
        assert _max_diff(r.value, rc.value) < 1e-3


_AB_CASES = [("relu", NoPenalty(), "fast"), ("relu", L2Penalty(0.05), "fast"),
             ("relu", L1Penalty(0.02), "mm"), ("tanh", L2Penalty(0.05), "mm"),
             ("relu", "group2", "fast"), ("tanh", "groupinf", "fast")]


@pytest.mark.parametrize("act_name,pen,method", _AB_CASES)
def test_ab_block_weighted(act_name, pen, method):
    rng = np.random.default_rng(4)
    n, p = 3, 2
    X, U = np.abs(rng.standard_normal((M, n))), rng.standard_normal((M, p))
    P = np.abs(rng.standard_normal((M, n)))
    if act_name == "tanh":
        P = 0.9 * np.tanh(P)
    if isinstance(pen, str):
        group = GroupPenalty(0.05, 2 if pen == "group2" else np.inf)
        pen = group.restrict("ab", {"D": rng.standard_normal((2, p))})
    act, lam = get_activation(act_name), np.array([1.0, 2.0, 0.5])
    kw = dict(method=method, tol=1e-10, max_iter=5000)
    r = blocks.solve_ab(X, U, P, lam, 0.5, act, pen, sample_weight=W_INT, **kw)
    rr = blocks.solve_ab(*_rep(X, U, P), lam, 0.5, act, pen, **kw)
    rc = blocks.solve_ab(X, U, P, lam, 0.5, act, pen, sample_weight=W_INT, method="cvxpy")
    assert _max_diff(r.value, rr.value) < 1e-7
    assert r.objective == pytest.approx(
        blocks.ab_objective(*_rep(X, U, P), lam, 0.5, act, pen, *r.value), rel=1e-12)
    assert r.objective <= rc.objective + 1e-8
    assert rc.objective - r.objective < 1e-6 * max(1.0, abs(r.objective))


@pytest.mark.parametrize("ord_", [2, np.inf])
def test_bd_block_weighted(ord_):
    rng = np.random.default_rng(6)
    A, B, b, C, D, c, X, P, U, Y = _lifted(rng)
    lam, group = np.array([1.0, 2.0, 0.5]), GroupPenalty(0.05, ord_)
    args = (A, B, b, C, D, c)
    kw = dict(tol=1e-12, max_iter=3000)
    r = blocks.solve_bd(*args, X, P, U, Y, lam, "relu", "squared", group, sample_weight=W_INT,
                        **kw)
    rr = blocks.solve_bd(*args, *_rep(X, P, U, Y), lam, "relu", "squared", group, **kw)
    rc = blocks.solve_bd(*args, X, P, U, Y, lam, "relu", "squared", group, method="cvxpy",
                         sample_weight=W_INT)
    assert r.objective == pytest.approx(rr.objective, rel=1e-10)
    assert _max_diff(r.value[0] + r.value[1], rr.value[0] + rr.value[1]) < 1e-6
    assert abs(rc.objective - r.objective) < 1e-6 * max(1.0, abs(r.objective))


@pytest.mark.parametrize("loss", [SquaredLoss(), SoftmaxCrossEntropy()])
def test_p_and_x_blocks_are_invariant_to_weights(loss):
    """Separable blocks: the weighted cvxpy twin has the unweighted fast solver's minimiser."""
    rng = np.random.default_rng(5)
    A, B, b, C, D, c, X, _, U, Y = _lifted(rng, q=3)
    A *= 0.5 / np.abs(A).sum(axis=1).max()
    if isinstance(loss, SoftmaxCrossEntropy):
        Y = np.eye(3)[rng.integers(0, 3, M)]
    w = np.where(W_INT > 0, W_INT, 0.5)  # positive weights: the minimiser is unique
    lam = np.array([1.0, 2.0, 0.5])
    fast = blocks.solve_p(A, B, b, C, D, c, X, U, Y, lam, 0.3, "relu", loss, tol=1e-10)
    twin = blocks.solve_p(A, B, b, C, D, c, X, U, Y, lam, 0.3, "relu", loss, method="cvxpy",
                          sample_weight=w)
    np.testing.assert_allclose(fast.value, twin.value, atol=2e-4)
    fw = blocks.solve_p(A, B, b, C, D, c, X, U, Y, lam, 0.3, "relu", loss, tol=1e-10,
                        sample_weight=w)
    assert fw.objective <= twin.objective + 1e-8
    assert twin.objective - fw.objective < 1e-6
    P = fast.value
    xf = blocks.solve_x(A, B, b, U, P, lam, 0.3, "relu", tol=1e-10)
    xc = blocks.solve_x(A, B, b, U, P, lam, 0.3, "relu", method="cvxpy", sample_weight=w)
    np.testing.assert_allclose(xf.value, xc.value, atol=2e-4)


# ----------------------------------------------------------------------------------------------
# training functions and estimators: integer weights = repeats, zero weights = dropping
# ----------------------------------------------------------------------------------------------
def _data(m=40, p=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, p))
    y = np.sin(X[:, 0]) + X[:, 1]
    yc = (X[:, 0] + 0.3 * X[:, 2] > 0).astype(int) + (X[:, 1] > 0.5)
    w = rng.integers(0, 4, m)
    w[:3] = [0, 2, 3]
    return X, y, yc, w


def test_fit_bcd_and_fit_gradient_weighted_equal_repeated():
    X, y, _, w = _data(30)
    Y = y[:, None]
    act = get_activation("relu")
    kw = dict(n_hidden=5, kappa=0.5, activation=act, pen_ab=L2Penalty(1e-3),
              pen_cd=L2Penalty(1e-3), max_iter=6, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mw, hw = fit_bcd(X, Y, SquaredLoss(), sample_weight=w, **kw)
        mr, hr = fit_bcd(*_rep(X, Y, w=w), SquaredLoss(), **kw)
        np.testing.assert_allclose(hw.train_loss, hr.train_loss, rtol=1e-10)
        np.testing.assert_allclose(mw.predict(X), mr.predict(X), rtol=1e-8, atol=1e-10)
        gkw = dict(kappa=0.5, max_iter=20, learning_rate=1e-2, random_state=0)
        gw, ghw = fit_gradient(mw, X, Y, SquaredLoss(), sample_weight=w, **gkw)
        gr, ghr = fit_gradient(mw, *_rep(X, Y, w=w), SquaredLoss(), **gkw)
    np.testing.assert_allclose(ghw["loss"], ghr["loss"], rtol=1e-9)
    np.testing.assert_allclose(gw.predict(X), gr.predict(X), rtol=1e-8, atol=1e-10)


_SOLVERS = [dict(solver="bcd", max_iter=12), dict(solver="bcd", max_iter=6, n_hidden=16),
            dict(solver="gradient", gradient_max_iter=25),
            dict(solver="bcd+gradient", max_iter=4, gradient_max_iter=15)]


def _outputs(est, X):
    return est.predict(X) if isinstance(est, ImplicitRegressor) else est.decision_function(X)


@pytest.mark.parametrize("Est", [ImplicitRegressor, ImplicitClassifier])
@pytest.mark.parametrize("params", _SOLVERS, ids=lambda d: d["solver"] + str(d.get("n_hidden",
                                                                                      "")))
def test_estimator_integer_weights_equal_repeats(Est, params):
    X, y, yc, w = _data()
    t = y if Est is ImplicitRegressor else yc
    est = dict(n_hidden=6, random_state=0)
    est.update(params)
    # a classifier's BCD stage starts with a gradient warm-up that agrees to rounding (1e-9),
    # which its rounds then carry to about 1e-7: BCD itself is checked to 1e-8 with the
    # warm-up off, the whole default fit to 1e-5
    warmups = ([True, False] if Est is ImplicitClassifier and params["solver"] != "gradient"
               else [True])
    for warmup in warmups:
        kw = {**est, "warmup_epochs": "auto" if warmup else 0}
        tol = 1e-5 if warmup and len(warmups) == 2 else 1e-8
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            a = Est(**kw).fit(X, t, sample_weight=w)
            b = Est(**kw).fit(*_rep(X, t, w=w))
        np.testing.assert_allclose(_outputs(a, X), _outputs(b, X), rtol=tol, atol=tol)
        np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=tol)


@pytest.mark.parametrize("Est", [ImplicitRegressor, ImplicitClassifier])
@pytest.mark.parametrize("params", [dict(solver="bcd", max_iter=5, early_stopping=True,
                                         validation_fraction=0.25),
                                    dict(solver="gradient", gradient_max_iter=10,
                                         batch_size=8)], ids=["early_stopping", "minibatch"])
def test_estimator_zero_weights_equal_dropping(Est, params):
    """Exact (the rows are dropped first), also where repeats are not: the validation split
    and the minibatches see the same samples."""
    X, y, yc, w = _data()
    t = y if Est is ImplicitRegressor else yc
    keep = w > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = Est(n_hidden=5, random_state=0, **params).fit(X, t, sample_weight=w)
        b = Est(n_hidden=5, random_state=0, **params).fit(X[keep], t[keep],
                                                           sample_weight=w[keep])
        c = Est(n_hidden=5, random_state=0, **params).fit(X, t, sample_weight=keep * 1.0)
        d = Est(n_hidden=5, random_state=0, **params).fit(X[keep], t[keep])
    np.testing.assert_array_equal(_outputs(a, X), _outputs(b, X))
    np.testing.assert_array_equal(_outputs(c, X), _outputs(d, X))
    assert not np.array_equal(_outputs(a, X), _outputs(c, X))  # the weights do matter


def test_constant_weights_are_the_unweighted_fit():
    X, y, _, _ = _data()
    a = ImplicitRegressor(n_hidden=5, max_iter=5, random_state=0).fit(X, y)
    b = ImplicitRegressor(n_hidden=5, max_iter=5, random_state=0).fit(
        X, y, sample_weight=np.full(len(y), 3.5))
    np.testing.assert_array_equal(a.predict(X), b.predict(X))


@pytest.mark.parametrize("scale", [1e-300, 1e300])
def test_weights_of_extreme_scale(scale):
    X, y, _, w = _data()
    a = ImplicitRegressor(n_hidden=5, max_iter=5, random_state=0).fit(X, y, sample_weight=w)
    b = ImplicitRegressor(n_hidden=5, max_iter=5, random_state=0).fit(
        X, y, sample_weight=w * scale)
    np.testing.assert_allclose(a.predict(X), b.predict(X), rtol=1e-9)


def test_weighted_standardisation():
    X, _, _, w = _data()
    X = X * np.array([1e-200, 1.0, 1e150, 3.0])
    mean, scale, Xs, _ = _standardise(X, sample_weight=w)
    mr, sr, _, _ = _standardise(np.repeat(X, w, axis=0))
    np.testing.assert_allclose(mean, mr, rtol=1e-12)
    np.testing.assert_allclose(scale, sr, rtol=1e-12)
    sc = StandardScaler().fit(X[:, [1, 3]], sample_weight=w)
    np.testing.assert_allclose(mean[[1, 3]], sc.mean_, rtol=1e-12)
    np.testing.assert_allclose(scale[[1, 3]], sc.scale_, rtol=1e-12)
    np.testing.assert_allclose(w @ Xs / w.sum(), 0.0, atol=1e-14)
    np.testing.assert_allclose(w @ Xs ** 2 / w.sum(), 1.0, rtol=1e-12)


@pytest.mark.parametrize("bad,match", [
    (-np.ones(20), "(?i)negative"), (np.r_[np.nan, np.ones(19)], "NaN"),
    (np.ones(19), "shape"), (np.zeros(20), "non-zero"), (np.ones((20, 1)), "1D"),
])
@pytest.mark.parametrize("Est", [ImplicitRegressor, ImplicitClassifier])
def test_bad_weights_raise(Est, bad, match):
    X, y, yc, _ = _data(20)
    with pytest.raises(ValueError, match=match):
        Est(n_hidden=3, max_iter=2).fit(X, y if Est is ImplicitRegressor else yc,
                                        sample_weight=bad)
    assert not hasattr(Est(), "model_")


def test_unit_mean_weights_checks_and_robust_sigma():
    with pytest.raises(ValueError, match="shape"):
        unit_mean_weights(np.ones(3), 4)
    with pytest.raises(ValueError, match="finite and non-negative"):
        unit_mean_weights(np.array([1.0, -1.0]), 2)
    with pytest.raises(ValueError, match="sums to zero"):
        unit_mean_weights(np.zeros(2), 2)
    np.testing.assert_allclose(unit_mean_weights(np.array([1.0, 3.0]), 2), [0.5, 1.5])
    X, y, _, w = _data(20)
    with pytest.raises(ValueError, match="robust_sigma"):
        ImplicitRegressor(n_hidden=3, max_iter=2, robust_sigma=0.1).fit(X, y, sample_weight=w)
