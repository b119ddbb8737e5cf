"""Soundness of the closed-form robustness bounds (theory §7, [IDL §4.2-4.3], [NEMON])."""

import itertools

import numpy as np
import pytest
from _helpers import box_points, card_points

from lifted_idl import ImplicitModel
from lifted_idl.activations import BlockSoftmax, Blockwise
from lifted_idl.exceptions import BoundConditionError
from lifted_idl.robustness import (
    lipschitz_bound,
    pairwise_sensitivity,
    sensitivity_matrix,
    state_box_bound,
)
from lifted_idl.wellposedness import nemon_parametrize, project_inf_norm_ball

SIZES = [(5, 4, 2, 0), (12, 5, 3, 1), (30, 6, 2, 2)]


def relu_model(n, p, q, seed, kappa=0.8, activation="relu"):
    rng = np.random.default_rng(seed)
    A = project_inf_norm_ball(rng.normal(size=(n, n)), kappa)
    return ImplicitModel(A, rng.normal(size=(n, p)), rng.normal(size=(q, n)),
                         0.3 * rng.normal(size=(q, p)), b=rng.normal(size=n),
                         c=rng.normal(size=q), activation=activation)


class Fitted:
    """A stand-in for a fitted estimator: only ``model_`` (and ``fit``)."""

    def __init__(self, model):
        self.model_ = model

    def fit(self, X, y=None):  # pragma: no cover - never called
        return self


@pytest.mark.parametrize("n,p,q,seed", SIZES)
def test_sensitivity_and_box_bound_never_exceeded(n, p, q, seed):
    model = relu_model(n, p, q, seed)
    rng = np.random.default_rng(100 + seed)
    S = sensitivity_matrix(model)
    assert S.shape == (q, p) and np.all(S >= 0)
    for _ in range(3):
        u0 = rng.normal(size=p)
        sigma = rng.uniform(0.05, 1.0, size=p)
        U = box_points(rng, u0, sigma)
        X = model.equilibrium(U)
        x0 = model.equilibrium(u0[None])[0]
        Y = model.predict(U)
        y0 = model.predict(u0[None])[0]
        sx = state_box_bound(model, sigma)
        assert np.all(np.abs(X - x0) <= sx + 1e-9)
        assert np.all(np.abs(Y - y0) <= np.abs(U - u0) @ S.T + 1e-9)


def test_sensitivity_and_box_bound_tight_for_nonnegative_active_model():
    """A, B, C >= 0 and all units active: the model is affine with Jacobian S, so the box
    bound and S are attained at the corner u0 + sigma_u."""
    rng = np.random.default_rng(11)
    n, p, q = 10, 4, 2
    A = project_inf_norm_ball(rng.uniform(size=(n, n)), 0.7)
    model = ImplicitModel(A, rng.uniform(size=(n, p)), rng.uniform(size=(q, n)),
                          rng.uniform(size=(q, p)), b=np.full(n, 50.0))
    u0, sigma = rng.uniform(size=p), rng.uniform(0.1, 1, size=p)
    up = (u0 + sigma)[None]
    np.testing.assert_allclose(model.predict(up)[0] - model.predict(u0[None])[0],
                               sensitivity_matrix(model) @ sigma, rtol=1e-8)
    np.testing.assert_allclose(model.equilibrium(up)[0] - model.equilibrium(u0[None])[0],
                               state_box_bound(model, sigma), rtol=1e-8)


@pytest.mark.parametrize("n,p,q,seed", SIZES)
def test_cardinality_bounds_never_exceeded(n, p, q, seed):
    model = relu_model(n, p, q, seed)
    rng = np.random.default_rng(200 + seed)
    for k in (1, 2):
        u0 = rng.normal(size=p)
        sigma = rng.uniform(0.1, 1.0, size=p)
        U = card_points(rng, u0, sigma, k)
        dev = np.abs(model.equilibrium(U) - model.equilibrium(u0[None])[0])
        scalar = state_box_bound(model, sigma, k=k)
        vec = state_box_bound(model, sigma, k=k, componentwise=True)
        box = state_box_bound(model, sigma)
        assert isinstance(scalar, float)
        assert dev.max() <= scalar + 1e-9
        assert np.all(dev <= vec + 1e-9)
        assert np.all(vec <= scalar + 1e-12) and np.all(vec <= box + 1e-12)
    # k >= p is the box: the per-state refinement equals the box bound
    np.testing.assert_allclose(state_box_bound(model, sigma, k=p, componentwise=True), box)


def test_card_scalar_bound_is_paper_formula():
    model = relu_model(6, 5, 2, 7)
    sigma = np.linspace(0.1, 0.5, 5)
    A, B = model.A, model.B
    delta = max(np.sort(sigma * np.abs(B[i]))[-2:].sum() for i in range(6))
    assert state_box_bound(model, sigma, k=2) == pytest.approx(
        delta / (1 - np.abs(A).sum(axis=1).max()), rel=1e-12)


def test_sensitivity_matches_paper_fixed_point_iteration():
    """S = |C| X_inf + |D| with X_{t+1} = |A| X_t + |B| [IDL §4.3]."""
    model = relu_model(15, 4, 3, 3)
    X = np.zeros((15, 4))
    for _ in range(400):
        X = np.abs(model.A) @ X + np.abs(model.B)
    np.testing.assert_allclose(sensitivity_matrix(model),
                               np.abs(model.C) @ X + np.abs(model.D), rtol=1e-10)


def test_pairwise_rows_sound_and_tighter_than_sum():
    model = relu_model(12, 5, 3, 4)
    P = pairwise_sensitivity(model)
    S = sensitivity_matrix(model)
    assert np.all(P <= S[:, None, :] + S[None, :, :] + 1e-12)
    np.testing.assert_allclose(P, P.transpose(1, 0, 2))
    rng = np.random.default_rng(0)
    u0, sigma = rng.normal(size=5), 0.4
    U = box_points(rng, u0, sigma)
    dY = model.predict(U) - model.predict(u0[None])[0]
    for y, k in itertools.permutations(range(3), 2):
        assert np.all(np.abs(dY[:, y] - dY[:, k]) <= np.abs(U - u0) @ P[y, k] + 1e-9)


def test_sigmoid_gamma_folded_in():
    """Sigmoid (gamma = 1/4) is well posed for ||A||_inf < 4; S uses diag(gamma)."""
    rng = np.random.default_rng(5)
    n, p, q = 10, 4, 2
    A = project_inf_norm_ball(rng.normal(size=(n, n)), 3.0)
    model = ImplicitModel(A, rng.normal(size=(n, p)), rng.normal(size=(q, n)),
                          np.zeros((q, p)), activation="sigmoid")
    with pytest.raises(BoundConditionError):  # without gamma this would be meaningless
        sensitivity_matrix(model.replace(activation="relu"))
    S = sensitivity_matrix(model)
    G = 0.25 * np.eye(n)
    expected = np.abs(model.C) @ np.linalg.solve(np.eye(n) - G @ np.abs(A), G @ np.abs(model.B))
    np.testing.assert_allclose(S, expected, rtol=1e-10)
    u0 = rng.normal(size=p)
    U = box_points(rng, u0, 2.0)
    assert np.all(np.abs(model.predict(U) - model.predict(u0[None])[0])
                  <= np.abs(U - u0) @ S.T + 1e-9)
    assert np.all(np.abs(model.equilibrium(U) - model.equilibrium(u0[None])[0])
                  <= state_box_bound(model, 2.0) + 1e-9)


def test_blip_sensitivity_sound():
    """BLIP map: ReLU block plus a softmax block (Lipschitz 1/2 in l2) [IDL Thm 4.2]."""
    rng = np.random.default_rng(6)
    n, p, q = 9, 4, 3
    A = project_inf_norm_ball(rng.normal(size=(n, n)), 0.6)
    act = Blockwise([(4, "relu"), (5, BlockSoftmax())])
    model = ImplicitModel(A, 2 * rng.normal(size=(n, p)), rng.normal(size=(q, n)),
                          0.2 * rng.normal(size=(q, p)), activation=act)
    S = sensitivity_matrix(model)
    for _ in range(3):
        u0 = rng.normal(size=p)
        U = box_points(rng, u0, 0.7, n_random=400)
        dY = np.abs(model.predict(U) - model.predict(u0[None])[0])
        assert np.all(dY <= np.abs(U - u0) @ S.T + 1e-9)
        assert np.all(np.abs(model.equilibrium(U) - model.equilibrium(u0[None])[0])
                      <= state_box_bound(model, 0.7) + 1e-9)
    # a bare softmax map is one block: same S as its Blockwise wrapper, sound on samples
    wrapped = model.replace(activation=Blockwise([(n, BlockSoftmax())]))
    np.testing.assert_allclose(sensitivity_matrix(model.replace(activation=BlockSoftmax())),
                               sensitivity_matrix(wrapped))
    u0 = rng.normal(size=p)
    U = box_points(rng, u0, 0.7)
    assert np.all(np.abs(wrapped.predict(U) - wrapped.predict(u0[None])[0])
                  <= np.abs(U - u0) @ sensitivity_matrix(wrapped).T + 1e-9)


@pytest.mark.parametrize("n,p,q,seed", SIZES)
def test_lipschitz_bounds_sound_and_ordered(n, p, q, seed):
    model = relu_model(n, p, q, seed, kappa=0.6)
    rng = np.random.default_rng(300 + seed)
    L_s = lipschitz_bound(model)
    L_rho = lipschitz_bound(model, kind="rho")
    L_nemon = lipschitz_bound(model, kind="nemon")
    L_2 = lipschitz_bound(model, norm=2)
    L_1 = lipschitz_bound(model, norm=1)
    assert L_s <= L_rho * (1 + 1e-12) and L_nemon <= L_rho * (1 + 1e-12)
    U1 = rng.normal(size=(300, p))
    # nearby pairs and pairs along sparse directions
    U2 = U1 + rng.normal(size=(300, p)) * rng.uniform(0.01, 2, size=(300, 1))
    dY = model.predict(U1) - model.predict(U2)
    dU = U1 - U2
    r_inf = np.abs(dY).max(1) / np.abs(dU).max(1)
    assert r_inf.max() <= min(L_s, L_nemon) + 1e-9
    assert np.all(np.linalg.norm(dY, axis=1) <= L_2 * np.linalg.norm(dU, axis=1) + 1e-9)
    assert np.all(np.abs(dY).sum(1) <= L_1 * np.abs(dU).sum(1) + 1e-9)


def test_nemon_bound_with_negative_diagonal():
    """mu_inf(A) < 1 <= ||A||_inf: rho refuses, the NE-MON bound holds on samples."""
    rng = np.random.default_rng(8)
    n, p, q = 8, 4, 2
    A = nemon_parametrize(rng.normal(size=(n, n)), 0.5)
    assert np.abs(A).sum(1).max() > 1
    model = ImplicitModel(A, rng.normal(size=(n, p)), rng.normal(size=(q, n)),
                          0.1 * rng.normal(size=(q, p)))
    with pytest.raises(BoundConditionError, match="rho"):
        lipschitz_bound(model, kind="rho")
    L = lipschitz_bound(model, kind="nemon")
    U1 = rng.normal(size=(300, p))
    U2 = U1 + 0.3 * rng.normal(size=(300, p))
    dY = model.predict(U1) - model.predict(U2)
    assert np.all(np.abs(dY).max(1) <= L * np.abs(U1 - U2).max(1) + 1e-8)


def test_refusals_name_the_failed_condition():
    rng = np.random.default_rng(9)
    n, p, q = 6, 3, 2
    B, C, D = rng.normal(size=(n, p)), rng.normal(size=(q, n)), rng.normal(size=(q, p))
    # lambda_PF(|A|) = 1.2 (yet mu_inf(A) < 1 thanks to the negative diagonal)
    bad = ImplicitModel(-1.2 * np.eye(n), B, C, D)
    for fn in (sensitivity_matrix, pairwise_sensitivity, lambda m: state_box_bound(m, 0.1),
               lambda m: state_box_bound(m, 0.1, k=1, componentwise=True)):
        with pytest.raises(BoundConditionError, match=r"lambda_PF.*1\.2"):
            fn(bad)
    assert lipschitz_bound(bad, kind="nemon") > 0  # mu_inf(A) = -1.2 < 1: still valid
    # ||A||_inf = 3 but A strictly triangular (lambda_PF = 0): scalar card bound refuses
    A = np.zeros((n, n))
    A[0, 1] = 3.0
    tri = ImplicitModel(A, B, C, D)
    with pytest.raises(BoundConditionError, match=r"\|\|.*inf.*3"):
        state_box_bound(tri, 0.1, k=1)
    with pytest.raises(BoundConditionError, match="rho"):
        lipschitz_bound(tri, kind="rho")
    assert state_box_bound(tri, 0.1, k=1, componentwise=True).shape == (n,)
    with pytest.raises(BoundConditionError, match="mu_inf"):
        lipschitz_bound(ImplicitModel(1.5 * np.eye(n), B, C, D), kind="nemon")
    soft = ImplicitModel(0.1 * np.eye(n), B, C, D, activation=BlockSoftmax())
    for kind in ("rho", "nemon"):
        with pytest.raises(BoundConditionError, match="componentwise"):
            lipschitz_bound(soft, kind=kind)
    with pytest.raises(ValueError, match="norm"):
        lipschitz_bound(tri, norm=3)
    with pytest.raises(ValueError, match="norm"):
        lipschitz_bound(relu_model(4, 3, 2, 0), norm=2, kind="rho")
    with pytest.raises(ValueError, match="kind"):
        lipschitz_bound(tri, kind="spectral")


def test_estimator_input_and_bad_arguments():
    model = relu_model(6, 3, 2, 10)
    np.testing.assert_array_equal(sensitivity_matrix(Fitted(model)), sensitivity_matrix(model))
    assert lipschitz_bound(Fitted(model)) == lipschitz_bound(model)
    with pytest.raises(TypeError, match="ImplicitModel"):
        sensitivity_matrix(np.eye(3))

    class Unfitted:
        def fit(self, X, y=None):  # pragma: no cover
            return self

    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        sensitivity_matrix(Unfitted())
    with pytest.raises(ValueError, match="sigma_u"):
        state_box_bound(model, -0.1)
    with pytest.raises(ValueError, match="sigma_u"):
        state_box_bound(model, np.ones(4))
    with pytest.raises(ValueError, match="k"):
        state_box_bound(model, 0.1, k=0)
