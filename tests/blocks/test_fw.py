"""Frank–Wolfe block solvers (lifted_idl.blocks.fw, theory §8) against their cvxpy twins."""

import itertools

import numpy as np
import pytest

from lifted_idl.activations import get_activation
from lifted_idl.blocks import FWResult, fw_ab, fw_cd
from lifted_idl.exceptions import ConvergenceWarning
from lifted_idl.losses import Loss, SoftmaxCrossEntropy, SquaredLoss

M, N, P_, Q = 30, 5, 3, 2


def _cd_data(loss, seed=0):
    rng = np.random.default_rng(seed)
    P = np.maximum(rng.normal(size=(M, N)), 0)
    U = rng.normal(size=(M, P_))
    if isinstance(loss, SoftmaxCrossEntropy):
        Y = np.eye(3)[np.arange(M) % 3]
        rng.shuffle(Y)
    else:
        Y = P[:, :Q] - 0.5 * U[:, :Q] + 0.3 * rng.normal(size=(M, Q)) + 1.0
    return P, U, Y


def _cvx_cd(P, U, Y, loss, kappa, fit_intercept=True, c_fixed=None):
    """The optimum by the cvxpy twin (``method="cvxpy"``, the solver of the problem's class)."""
    init = None if c_fixed is None else (np.zeros((Y.shape[1], P.shape[1])),
                                         np.zeros((Y.shape[1], U.shape[1])), c_fixed)
    ref = fw_cd(P, U, Y, loss, kappa, fit_intercept=fit_intercept, init=init, method="cvxpy",
                tol=1e-9)
    assert isinstance(ref, FWResult) and ref.converged and ref.solver.startswith("cvxpy:")
    assert np.abs(np.hstack(ref.value[:2])).sum() <= kappa * (1 + 1e-12)
    # the optimum's Frank-Wolfe gap is ~0
    assert ref.fw_gap <= 1e-5 * max(abs(ref.objective), 1.0)
    return ref.objective


def _check_cd(res, P, U, Y, loss, kappa):
    C, D, c = res.value
    W = np.hstack([C, D])
    # the reported objective is the loss at the returned variables
    assert res.objective == pytest.approx(loss.value(Y, P @ C.T + U @ D.T + c),
                                          rel=1e-12, abs=1e-14)
    assert np.abs(W).sum() <= kappa * (1 + 1e-12)
    # sparsity: each Frank-Wolfe step adds at most one nonzero
    assert np.count_nonzero(W) <= res.n_iter


@pytest.mark.parametrize(
    "loss, kappa, fit_intercept",
    list(itertools.product([SquaredLoss(), SoftmaxCrossEntropy()], [0.4, 3.0], [True, False])),
)
def test_fw_cd_matches_cvxpy(loss, kappa, fit_intercept):
    P, U, Y = _cd_data(loss)
    res = fw_cd(P, U, Y, loss, kappa, fit_intercept=fit_intercept, tol=1e-7, max_iter=3000)
    opt = _cvx_cd(P, U, Y, loss, kappa, fit_intercept)
    assert res.converged
    assert abs(res.objective - opt) <= 1e-4 * abs(opt)
    # the gap certifies the suboptimality (cvxpy's value is accurate to ~1e-8)
    assert res.objective - opt <= res.fw_gap + 1e-7 * abs(opt)
    assert res.fw_gap <= 1e-7 * res.objective
    _check_cd(res, P, U, Y, loss, kappa)
    if not fit_intercept:
        assert np.all(res.value[2] == 0)


@pytest.mark.parametrize("loss", [SquaredLoss(), SoftmaxCrossEntropy()])
def test_fw_cd_gap_certificate_before_convergence(loss):
    P, U, Y = _cd_data(loss, seed=3)
    kappa = 3.0
    opt = _cvx_cd(P, U, Y, loss, kappa)
    for it in (1, 3, 8):
        with pytest.warns(ConvergenceWarning, match="max_iter"):
            res = fw_cd(P, U, Y, loss, kappa, tol=1e-12, max_iter=it)
        assert not res.converged and res.n_iter == it
        assert res.fw_gap > 0
        assert opt - 1e-8 <= res.objective <= opt + res.fw_gap + 1e-8
        _check_cd(res, P, U, Y, loss, kappa)
    # the gap history ends at the reported gap and starts at the zero model's
    assert res.gap_history.shape == (it + 1,) and res.gap_history[-1] == res.fw_gap


def test_fw_cd_small_ball_is_sparse():
    P, U, Y = _cd_data(SquaredLoss(), seed=1)
    res = fw_cd(P, U, Y, "squared", 0.2, tol=1e-8)
    W = np.hstack([res.value[0], res.value[1]])
    assert res.converged
    assert np.count_nonzero(W) < W.size // 2
    assert np.abs(W).sum() == pytest.approx(0.2, rel=1e-9)  # the constraint is active


def test_fw_cd_warm_start_and_fixed_intercept():
    loss = SquaredLoss()
    P, U, Y = _cd_data(loss, seed=2)
    res = fw_cd(P, U, Y, loss, 1.0, tol=1e-6)
    again = fw_cd(P, U, Y, loss, 1.0, tol=1e-6, init=res.value)
    assert again.n_iter == 0 and again.converged
    assert again.objective == pytest.approx(res.objective, rel=1e-12)
    # an init outside the ball is projected onto it first
    big = fw_cd(P, U, Y, loss, 1.0, tol=1e-6, init=(10 * np.ones((Q, N)), np.ones((Q, P_))))
    assert np.abs(np.hstack([big.value[0], big.value[1]])).sum() <= 1.0 + 1e-12
    assert big.objective == pytest.approx(res.objective, rel=1e-5)
    # a fixed intercept is kept and optimised around
    c0 = np.array([0.7, -0.2])
    fixed = fw_cd(P, U, Y, loss, 1.0, fit_intercept=False, tol=1e-7,
                  init=(np.zeros((Q, N)), np.zeros((Q, P_)), c0))
    assert np.array_equal(fixed.value[2], c0)
    opt = _cvx_cd(P, U, Y, loss, 1.0, fit_intercept=False, c_fixed=c0)
    assert abs(fixed.objective - opt) <= 1e-5 * opt


class _PlainSquared(Loss):
    """The squared loss as a generic Loss: exercises the L-BFGS intercept and root line search."""

    def value(self, Y, Yhat):
        return 0.5 * float(((Yhat - Y) ** 2).sum()) / Y.shape[0]

    def grad(self, Y, Yhat):
        return (Yhat - Y) / Y.shape[0]


def test_fw_cd_generic_loss_and_plain_fw():
    P, U, Y = _cd_data(SquaredLoss(), seed=4)
    ref = fw_cd(P, U, Y, SquaredLoss(), 0.5, tol=1e-9)
    res = fw_cd(P, U, Y, _PlainSquared(), 0.5, tol=1e-6)
    assert res.converged
    assert ref.objective - 1e-12 <= res.objective <= ref.objective + res.fw_gap + 1e-12
    assert res.objective == pytest.approx(ref.objective, rel=1e-5)
    assert np.count_nonzero(np.hstack([res.value[0], res.value[1]])) <= res.n_iter
    # without away steps: slower (O(1/t)), but the certificate still holds at every stop
    with pytest.warns(ConvergenceWarning):
        plain = fw_cd(P, U, Y, _PlainSquared(), 0.5, tol=1e-9, away_steps=False, max_iter=200)
    assert ref.objective - 1e-12 <= plain.objective <= ref.objective + plain.fw_gap + 1e-12
    assert plain.objective == pytest.approx(ref.objective, rel=1e-3)


# ----------------------------------------------------------------------------------------------
def _ab_data(act_name, seed=0):
    rng = np.random.default_rng(seed)
    X = np.maximum(rng.normal(size=(M, N)), 0)
    U = rng.normal(size=(M, P_))
    if act_name == "relu":
        P = np.maximum(X @ rng.normal(scale=0.3, size=(N, N)) + U @ rng.normal(size=(P_, N))
                       + 0.2 * rng.normal(size=(M, N)), 0)
    else:
        P = np.tanh(X @ rng.normal(scale=0.3, size=(N, N)) + U @ rng.normal(size=(P_, N)))
    lam = rng.uniform(0.5, 2.0, size=N)
    return X, U, P, lam


def _cvx_ab(X, U, P, lam, ka, kb, act, fit_bias=True):
    """The optimum by the cvxpy twin (``method="cvxpy"``, the solver of the problem's class)."""
    ref = fw_ab(X, U, P, lam, ka, kb, act, fit_bias=fit_bias, method="cvxpy", tol=1e-9)
    assert isinstance(ref, FWResult) and ref.converged and ref.solver.startswith("cvxpy:")
    A, B, _ = ref.value
    assert np.abs(A).sum(axis=1).max() <= ka * (1 + 1e-12)
    assert np.abs(B).sum() <= kb * (1 + 1e-12)
    assert ref.fw_gap <= 1e-5 * max(abs(ref.objective), 1.0)
    return ref.objective


def _check_ab(res, X, U, P, lam, ka, kb, act):
    Z = X @ res.value[0].T + U @ res.value[1].T + res.value[2]
    assert res.objective == pytest.approx(float((act.fenchel(P, Z) * lam).sum()) / X.shape[0],
                                          rel=1e-12)
    assert np.abs(res.value[0]).sum(axis=1).max() <= ka * (1 + 1e-12)
    assert np.abs(res.value[1]).sum() <= kb * (1 + 1e-12)
    # one signed vertex per row of A and one entry of B per sweep
    assert np.count_nonzero(res.value[0], axis=1).max() <= res.n_iter
    assert np.count_nonzero(res.value[1]) <= res.n_iter


@pytest.mark.parametrize(
    "act_name, ka, kb, fit_bias",
    [("relu", 0.5, 1.0, True), ("relu", 0.3, 4.0, False), ("tanh", 0.5, 1.0, True)],
)
def test_fw_ab_matches_cvxpy(act_name, ka, kb, fit_bias):
    act = get_activation(act_name)
    X, U, P, lam = _ab_data(act_name)
    res = fw_ab(X, U, P, lam, ka, kb, act_name, fit_bias=fit_bias, tol=1e-6, max_iter=3000)
    opt = _cvx_ab(X, U, P, lam, ka, kb, act, fit_bias)
    assert res.converged
    assert abs(res.objective - opt) <= 1e-4 * abs(opt)
    assert res.objective - opt <= res.fw_gap + 1e-7 * abs(opt)
    _check_ab(res, X, U, P, lam, ka, kb, act)
    if not fit_bias:
        assert np.all(res.value[2] == 0)


def test_fw_ab_gap_certificate_before_convergence():
    act = get_activation("relu")
    X, U, P, lam = _ab_data("relu", seed=1)
    ka, kb = 0.5, 2.0
    opt = _cvx_ab(X, U, P, lam, ka, kb, act)
    for it in (1, 4, 10):
        with pytest.warns(ConvergenceWarning, match="fw_ab"):
            res = fw_ab(X, U, P, lam, ka, kb, "relu", tol=1e-12, max_iter=it)
        assert not res.converged and res.n_iter == it and res.fw_gap > 0
        assert opt - 1e-8 <= res.objective <= opt + res.fw_gap + 1e-8
        _check_ab(res, X, U, P, lam, ka, kb, act)


def test_fw_ab_zero_radius_and_warm_start():
    X, U, P, lam = _ab_data("relu", seed=2)
    # radius 0 pins A = 0, B = 0: only the bias is fitted; its optimum has zero derivative
    res = fw_ab(X, U, P, lam, 0.0, 0.0, "relu", tol=1e-6)
    assert res.converged and res.n_iter == 0
    assert not res.value[0].any() and not res.value[1].any()
    psi = (np.maximum(res.value[2], 0) - P).sum(axis=0)  # d/db sum_s F(P_s, b)
    assert np.abs(psi).max() <= 1e-9 * M
    full = fw_ab(X, U, P, lam, 0.5, 1.0, "relu", tol=1e-6)
    again = fw_ab(X, U, P, lam, 0.5, 1.0, "relu", tol=1e-6, init=full.value)
    assert again.n_iter == 0 and again.objective == pytest.approx(full.objective, rel=1e-10)


# ----------------------------------------------------------------------------------------------
def test_bad_inputs_raise():
    P, U, Y = _cd_data(SquaredLoss())
    with pytest.raises(ValueError, match="kappa_c"):
        fw_cd(P, U, Y, "squared", -1.0)
    with pytest.raises(ValueError, match="U has 29 rows"):
        fw_cd(P, U[:-1], Y, "squared", 1.0)
    with pytest.raises(ValueError, match="NaN"):
        fw_cd(np.where(P > 1, np.nan, P), U, Y, "squared", 1.0)
    with pytest.raises(ValueError, match="tol"):
        fw_cd(P, U, Y, "squared", 1.0, tol=0.0)
    with pytest.raises(ValueError, match="max_iter"):
        fw_cd(P, U, Y, "squared", 1.0, max_iter=-1)
    with pytest.raises(ValueError, match="init C"):
        fw_cd(P, U, Y, "squared", 1.0, init=(np.zeros((Q, N + 1)), np.zeros((Q, P_))))
    with pytest.raises(ValueError, match="one-hot or probability"):
        fw_cd(P, U, Y, "cross_entropy", 1.0)
    Y3 = np.eye(3)[np.zeros(M, dtype=int)]
    with pytest.raises(ValueError, match=r"no mass on class\(es\) \[1, 2\]"):
        fw_cd(P, U, Y3, "cross_entropy", 1.0)
    with pytest.raises(ValueError, match="Unknown loss"):
        fw_cd(P, U, Y, "hinge", 1.0)
    X, U, Pab, lam = _ab_data("relu")
    with pytest.raises(ValueError, match="lam"):
        fw_ab(X, U, Pab, -lam, 0.5, 1.0, "relu")
    with pytest.raises(ValueError, match="domain of the conjugate"):
        fw_ab(X, U, Pab - 1.0, lam, 0.5, 1.0, "relu")
    with pytest.raises(ValueError, match="componentwise activation"):
        fw_ab(X, U, Pab, lam, 0.5, 1.0, "softmax")
    with pytest.raises(ValueError, match="kappa_a"):
        fw_ab(X, U, Pab, lam, np.ones(N + 1), 1.0, "relu")
    with pytest.raises(ValueError, match="kappa_b"):
        fw_ab(X, U, Pab, lam, 0.5, np.inf, "relu")
    with pytest.raises(ValueError, match="P has 4 columns"):
        fw_ab(X, U, Pab[:, :4], lam, 0.5, 1.0, "relu")
    # tanh: column means of P outside (-1, 1) have no bias minimiser
    with pytest.raises(ValueError, match="bias minimiser does not exist"):
        fw_ab(X, U, np.ones_like(Pab), lam, 0.5, 1.0, "tanh")
