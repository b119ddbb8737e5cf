"""Activations: values, derivatives, Lipschitz data, Fenchel divergence, blockwise maps."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from lifted_idl.activations import (
    BlockSoftmax,
    Blockwise,
    Identity,
    LeakyReLU,
    ReLU,
    Sigmoid,
    Tanh,
    get_activation,
)

COMPONENTWISE = [ReLU(), LeakyReLU(0.1), Tanh(), Sigmoid(), Identity()]
IDS = [repr(a) for a in COMPONENTWISE]


def _away_from_kinks(rng, shape):
    Z = rng.uniform(-3, 3, size=shape)
    return np.where(np.abs(Z) < 1e-3, 0.5, Z)


@pytest.mark.parametrize("act", COMPONENTWISE, ids=IDS)
def test_derivative_matches_central_differences(act, rng):
    Z = _away_from_kinks(rng, (5, 7))
    h = 1e-6
    fd = (act(Z + h) - act(Z - h)) / (2 * h)
    np.testing.assert_allclose(act.derivative(Z), fd, atol=1e-8)


@pytest.mark.parametrize("act", COMPONENTWISE, ids=IDS)
def test_lipschitz_constant_bounds_and_is_attained(act, rng):
    Z1, Z2 = rng.uniform(-4, 4, (2, 4000))
    ratio = np.abs(act(Z1) - act(Z2)) / np.abs(Z1 - Z2)
    assert ratio.max() <= act.lipschitz * (1 + 1e-12)
    # the largest slope is attained (at 0 for tanh/sigmoid, anywhere positive for relu)
    assert act.derivative(np.array([0.0, 1.0])).max() == pytest.approx(act.lipschitz)
    # slopes are never negative (monotone maps: the CONE/NE-MON conditions need it)
    assert act.derivative(Z1).min() >= 0


@pytest.mark.parametrize("act", COMPONENTWISE, ids=IDS)
def test_nonnegative_flag_matches_the_range(act, rng):
    vals = act(rng.uniform(-5, 5, 1000))
    assert act.nonnegative == bool(vals.min() >= 0)


@pytest.mark.parametrize("act", COMPONENTWISE, ids=IDS)
def test_positively_homogeneous_flag(act, rng):
    Z = rng.uniform(-3, 3, 50)
    homog = np.allclose(act(2.5 * Z), 2.5 * act(Z), atol=1e-12)
    assert act.positively_homogeneous == homog


@pytest.mark.parametrize("act", COMPONENTWISE, ids=IDS)
def test_out_argument_writes_in_place(act, rng):
    Z = rng.standard_normal((3, 4))
    expected = act(Z.copy())
    out = Z.copy()
    res = act(out, out=out)
    np.testing.assert_array_equal(out, expected)
    assert res is out


@pytest.mark.parametrize("act", COMPONENTWISE, ids=IDS)
def test_fenchel_divergence_nonnegative_and_zero_on_graph(act, rng):
    Z = rng.uniform(-3, 3, 200)
    # any x in the range of phi (the domain of f*)
    X = act(rng.uniform(-3, 3, 200))
    F = act.fenchel(X, Z)
    assert F.min() >= -1e-12
    np.testing.assert_allclose(act.fenchel(act(Z), Z), 0, atol=1e-12)
    # zero only on the graph: off the graph the divergence is positive
    far = np.abs(X - act(Z)) > 1e-3
    assert F[far].min() > 0


@pytest.mark.parametrize("act", COMPONENTWISE, ids=IDS)
def test_potential_gradient_is_phi_and_conjugate_is_sup(act, rng):
    Z = _away_from_kinks(rng, 6)
    h = 1e-6
    np.testing.assert_allclose((act.f(Z + h) - act.f(Z - h)) / (2 * h), act(Z), atol=1e-7)
    # f*(x) = sup_z xz - f(z), by a scalar maximization at a few points of the range
    for x in act(np.array([-1.3, -0.2, 0.4, 1.7])):
        r = minimize_scalar(lambda z, x=x: act.f(np.array(z)) - x * z, bounds=(-40, 40),
                            method="bounded", options={"xatol": 1e-12})
        assert act.f_conj(np.array(x)) == pytest.approx(-r.fun, abs=1e-7)
    # the inverse of phi, where it exists
    Zi = rng.uniform(-2, 2, 20) if not act.nonnegative else rng.uniform(0.1, 2, 20)
    if isinstance(act, ReLU):
        np.testing.assert_allclose(act.inverse(act(Zi)), Zi)
    else:
        np.testing.assert_allclose(act.inverse(act(Zi)), Zi, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("act", COMPONENTWISE, ids=IDS)
def test_fenchel_gradients_match_differences(act, rng):
    Z = _away_from_kinks(rng, 10)
    # x inside the domain of f* (x > 0 for the ReLU), where f* is differentiable
    X = act(_away_from_kinks(rng, 10))
    if isinstance(act, ReLU):
        X = np.where(X < 1e-3, 0.5, X)
    h = 1e-6
    fd = (act.fenchel(X, Z + h) - act.fenchel(X, Z - h)) / (2 * h)
    np.testing.assert_allclose(act.fenchel_grad_z(X, Z), fd, atol=1e-7)
    fd = (act.fenchel(X + h, Z) - act.fenchel(X - h, Z)) / (2 * h)
    np.testing.assert_allclose(act.fenchel_grad_x(X, Z), fd, atol=1e-6)
    assert act.fenchel_grad_z(X, Z).shape == act.fenchel_grad_x(X, Z).shape == Z.shape


@pytest.mark.parametrize("act", COMPONENTWISE, ids=IDS)
def test_fenchel_cvxpy_equals_numeric(act, rng):
    Z = rng.uniform(-2, 2, (3, 4))
    X = act(rng.uniform(-2, 2, (3, 4)))
    xv = cp.Variable((3, 4))
    xv.value = X
    expr = act.fenchel_cvxpy(xv, Z)
    assert expr.is_convex()
    assert expr.value == pytest.approx(act.fenchel(X, Z).sum(), rel=1e-9, abs=1e-9)
    # convex in z too (the (A, B) and X blocks make z the variable); exact on constants
    assert act.fenchel_cvxpy(cp.Constant(X), cp.Variable((3, 4))).is_convex()
    const = act.fenchel_cvxpy(cp.Constant(X), cp.Constant(Z))
    assert float(const.value) == pytest.approx(act.fenchel(X, Z).sum(), rel=1e-10, abs=1e-12)


def test_block_softmax_is_half_lipschitz_in_l2(rng):
    sm = BlockSoftmax()
    worst = 0.0
    for _ in range(200):
        z = rng.standard_normal(4) * 3
        s = sm(z[None])[0]
        J = np.diag(s) - np.outer(s, s)
        worst = max(worst, np.linalg.norm(J, 2))
    assert worst <= sm.lipschitz + 1e-12
    Z1, Z2 = rng.standard_normal((2, 500, 4))
    ratio = np.linalg.norm(sm(Z1) - sm(Z2), axis=1) / np.linalg.norm(Z1 - Z2, axis=1)
    assert ratio.max() <= 0.5 + 1e-12
    np.testing.assert_allclose(sm(Z1).sum(axis=1), 1)


def test_blockwise_applies_each_block_and_merges_neighbours(rng):
    bw = Blockwise([(2, "relu"), (1, "relu"), (3, "tanh"), (2, BlockSoftmax())])
    assert bw.blocks[0][0] == 3 and bw.size == 8  # the two relu blocks merged
    assert not bw.componentwise and not bw.nonnegative
    Z = rng.standard_normal((5, 8))
    out = bw(Z)
    np.testing.assert_array_equal(out[:, :3], np.maximum(Z[:, :3], 0))
    np.testing.assert_array_equal(out[:, 3:6], np.tanh(Z[:, 3:6]))
    np.testing.assert_allclose(out[:, 6:], BlockSoftmax()(Z[:, 6:]))
    np.testing.assert_array_equal(bw.state_lipschitz(8), [1, 1, 1, 1, 1, 1, 0.5, 0.5])
    # in place on an aliased buffer gives the same values
    Zc = Z.copy()
    bw(Zc, out=Zc)
    np.testing.assert_array_equal(Zc, out)
    with pytest.raises(ValueError, match="covers 8 states"):
        bw(Z[:, :7])


def test_blockwise_subset(rng):
    bw = Blockwise([(3, "relu"), (2, "sigmoid"), (2, BlockSoftmax()), (1, "tanh")])
    Z = rng.standard_normal((4, 8))
    full = bw(Z)
    idx = np.array([0, 2, 3, 5, 6, 7])
    sub = bw.subset(idx)
    assert sub.size == idx.size
    np.testing.assert_allclose(sub(Z[:, idx]), full[:, idx])
    with pytest.raises(ValueError, match="taken whole"):
        bw.subset([0, 5])  # half of the softmax block
    with pytest.raises(ValueError, match="increasing"):
        bw.subset([2, 1])
    # componentwise maps are their own subsets
    assert ReLU().subset([1, 4]) == ReLU()


def test_blockwise_nested_size_must_agree():
    inner = Blockwise([(2, "relu"), (1, "tanh")])
    assert Blockwise([(3, inner), (1, "sigmoid")]).size == 4
    with pytest.raises(ValueError, match="nested Blockwise"):
        Blockwise([(4, inner)])


def test_blockwise_fenchel_cvxpy_equals_numeric(rng):
    bw = Blockwise([(2, "relu"), (3, "tanh")])
    Z = rng.uniform(-2, 2, (4, 5))
    X = bw(rng.uniform(-2, 2, (4, 5)))
    xv = cp.Variable((4, 5))
    xv.value = X
    expr = bw.fenchel_cvxpy(xv, Z)
    assert expr.is_convex()
    assert expr.value == pytest.approx(bw.fenchel(X, Z).sum(), rel=1e-9)


def test_registry_and_validation():
    assert isinstance(get_activation("leaky_relu"), LeakyReLU)
    act = Tanh()
    assert get_activation(act) is act
    with pytest.raises(ValueError, match="activation='swish'"):
        get_activation("swish")
    with pytest.raises(ValueError, match="slope=1.5"):
        LeakyReLU(1.5)
    with pytest.raises(ValueError, match="size"):
        Blockwise([(-1, "relu")])
