"""Sparse attacks [IDL §7.3.1]: attack sets, implicit gradients, optimality on affine models."""

import itertools

import numpy as np
import pytest
from _helpers import FittedClassifier

from lifted_idl import ImplicitModel
from lifted_idl.robustness import (
    attack_success_rate,
    gradient_attack,
    input_gradient,
    pairwise_sensitivity,
    sensitivity_attack,
    sensitivity_matrix,
)
from lifted_idl.wellposedness import nemon_parametrize, project_inf_norm_ball


def model_(n, p, q, seed, kappa=0.7, activation="relu"):
    rng = np.random.default_rng(seed)
    A = project_inf_norm_ball(rng.normal(size=(n, n)), kappa)
    return ImplicitModel(A, rng.normal(size=(n, p)), rng.normal(size=(q, n)),
                         0.3 * rng.normal(size=(q, p)), b=0.5 * rng.normal(size=n),
                         c=rng.normal(size=q), activation=activation)


def check_in_card_set(res, U, sigma, k):
    d = res.U_adv - U
    assert np.all(np.abs(d) <= sigma + 1e-12)
    assert np.all(np.count_nonzero(d, axis=1) <= k)
    changed = d != 0
    for i in range(U.shape[0]):
        assert set(np.flatnonzero(changed[i])) <= set(res.features[i])


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_input_gradient_matches_finite_differences(activation):
    model = model_(10, 4, 3, 1, activation=activation)
    rng = np.random.default_rng(1)
    U = rng.normal(size=(6, 4))
    G = rng.normal(size=(6, 3))
    grad = input_gradient(model, U, G)
    h = 1e-6
    fd = np.empty_like(U)
    for j in range(4):
        E = np.zeros_like(U)
        E[:, j] = h
        fd[:, j] = ((model.predict(U + E) - model.predict(U - E)) * G).sum(1) / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-6)


def test_input_gradient_direct_solve_under_mu_inf_certificate():
    """||A||_inf > 1 with mu_inf(A) < 1: the adjoint is solved directly; check against FD."""
    rng = np.random.default_rng(2)
    n, p, q = 7, 3, 2
    A = nemon_parametrize(rng.normal(size=(n, n)), 0.3)
    model = ImplicitModel(A, rng.normal(size=(n, p)), rng.normal(size=(q, n)), np.zeros((q, p)),
                          activation="tanh")
    assert model.well_posedness.certificate == "mu_inf"
    U, G = rng.normal(size=(4, p)), rng.normal(size=(4, q))
    grad = input_gradient(model, U, G)
    h = 1e-6
    fd = np.stack([((model.predict(U + h * e) - model.predict(U - h * e)) * G).sum(1) / (2 * h)
                   for e in np.eye(p)], axis=1)
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("k", [1, 3])
def test_attacks_stay_in_the_cardinality_set(k):
    model = model_(12, 6, 3, 3)
    rng = np.random.default_rng(3)
    U = rng.normal(size=(15, 6))
    sigma = rng.uniform(0.1, 0.5, size=6)
    S = sensitivity_matrix(model)
    for attack in (sensitivity_attack, gradient_attack):
        res = attack(model, U, k, sigma=sigma)
        check_in_card_set(res, U, sigma, k)
        np.testing.assert_allclose(res.Y_adv, model.predict(res.U_adv), atol=1e-10)
        # consistent with the sensitivity bound
        assert np.all(np.abs(res.Y_adv - model.predict(U)) <= np.abs(res.U_adv - U) @ S.T + 1e-9)


def test_sensitivity_attack_uses_pairwise_rows_and_beats_its_plain_candidates():
    model = model_(12, 6, 3, 4)
    rng = np.random.default_rng(4)
    U = rng.normal(size=(10, 6))
    sigma = 0.4
    Y = model.predict(U)
    y = Y.argmax(1)
    res = sensitivity_attack(model, U, 2, sigma=sigma)
    P = pairwise_sensitivity(model)
    for i in range(10):
        t = res.target[i]
        assert t != y[i]
        assert set(res.features[i]) == set(np.argsort(-P[y[i], t], kind="stable")[:2])
        # the returned perturbation is at least as damaging as moving those features by +sigma
        # or by -sigma, for every competitor (two of the candidates it tried)
        margin = res.Y_adv[i, y[i]] - np.delete(res.Y_adv[i], y[i]).max()
        for kk in range(3):
            if kk == y[i]:
                continue
            f = np.argsort(-P[y[i], kk], kind="stable")[:2]
            for s in (1.0, -1.0):
                u = U[i].copy()
                u[f] += s * sigma
                yy = model.predict(u[None])[0]
                assert margin <= yy[y[i]] - np.delete(yy, y[i]).max() + 1e-10


def test_gradient_attack_is_optimal_on_an_affine_model():
    """All units active on the box: margins are affine, so the best vertex of the box is the
    gradient sign, and gradient_attack with k = p must match brute force over all corners."""
    rng = np.random.default_rng(5)
    n, p, q = 8, 4, 3
    A = project_inf_norm_ball(rng.uniform(size=(n, n)), 0.5)
    model = ImplicitModel(A, rng.normal(size=(n, p)), rng.normal(size=(q, n)),
                          rng.normal(size=(q, p)), b=np.full(n, 40.0))
    U = rng.normal(size=(5, p))
    sigma = 0.3
    y = model.predict(U).argmax(1)
    corners = np.array(list(itertools.product([-1.0, 1.0], repeat=p))) * sigma
    res = gradient_attack(model, U, p, sigma=sigma)
    for i in range(5):
        Yc = model.predict(U[i] + corners)
        brute = (Yc[:, y[i]] - np.delete(Yc, y[i], axis=1).max(1)).min()
        got = res.Y_adv[i, y[i]] - np.delete(res.Y_adv[i], y[i]).max()
        assert got == pytest.approx(brute, abs=1e-9)


def test_regression_attacks_push_an_output():
    model = model_(10, 5, 1, 6)
    rng = np.random.default_rng(6)
    U = rng.normal(size=(8, 5))
    y0 = model.predict(U)[:, 0]
    S = sensitivity_matrix(model)[0]
    for attack in (sensitivity_attack, gradient_attack):
        res = attack(model, U, 2, sigma=0.5)
        check_in_card_set(res, U, 0.5, 2)
        assert np.all(res.target == 0)
        moved = np.abs(res.Y_adv[:, 0] - y0)
        assert np.all(moved > 0) and np.all(moved <= 2 * 0.5 * np.sort(S)[-2:].sum() + 1e-9)
    with pytest.raises(ValueError, match="y is only"):
        sensitivity_attack(model, U, 2, y=np.zeros(8))


def test_estimator_labels_targets_and_success_rate():
    model = model_(10, 5, 3, 7)
    clf = FittedClassifier(model, ["ant", "bee", "cat"])
    rng = np.random.default_rng(7)
    U = rng.normal(size=(30, 5))
    pred = model.predict(U).argmax(1)
    labels = clf.classes_[pred]
    r_model = sensitivity_attack(model, U, 2, sigma=0.8, target=np.where(pred == 0, 1, 0))
    r_clf = sensitivity_attack(clf, U, 2, sigma=0.8,
                               target=np.where(pred == 0, "bee", "ant"), y=labels)
    np.testing.assert_array_equal(r_model.U_adv, r_clf.U_adv)
    # brute-force success rate
    adv_pred = model.predict(r_clf.U_adv).argmax(1)
    y_true = labels.copy()
    y_true[:5] = np.where(pred[:5] == 2, "ant", "cat")  # a few misclassified clean samples
    correct = clf.classes_[pred] == y_true
    expected = np.mean(clf.classes_[adv_pred][correct] != y_true[correct])
    assert attack_success_rate(clf, U, y_true, r_clf.U_adv) == pytest.approx(expected)
    assert attack_success_rate(clf, U, y_true, r_clf.U_adv, among="all") == pytest.approx(
        np.mean(clf.classes_[adv_pred] != y_true))
    assert np.isnan(attack_success_rate(model, U[:1], [(pred[0] + 1) % 3], U[:1]))
    assert attack_success_rate(model, U, pred, U) == 0.0
    with pytest.raises(ValueError, match="dog"):
        attack_success_rate(clf, U[:2], ["dog", "ant"], U[:2])
    with pytest.raises(ValueError, match="target"):
        sensitivity_attack(clf, U, 2, target="bee", y=np.full(30, "bee"))


def test_attack_argument_errors():
    model = model_(6, 4, 2, 8)
    U = np.zeros((3, 4))
    with pytest.raises(ValueError, match="k"):
        sensitivity_attack(model, U, 0)
    with pytest.raises(ValueError, match="sigma"):
        gradient_attack(model, U, 1, sigma=-1.0)
    with pytest.raises(ValueError, match="task"):
        gradient_attack(model, U, 1, task="ranking")
    with pytest.raises(ValueError, match="U"):
        gradient_attack(model, np.zeros((3, 5)), 1)
    with pytest.raises(ValueError, match="G"):
        input_gradient(model, U, np.zeros((3, 3)))


def test_input_gradient_and_attacks_check_their_arrays():
    """A NaN cotangent G or NaN/mis-shaped states X are refused by name (they used to give a
    NaN gradient, or the silently wrong G D); an attack on no samples returns an empty
    result (it used to fail inside numpy)."""
    rng = np.random.default_rng(0)
    A = project_inf_norm_ball(rng.standard_normal((4, 4)), 0.5)
    model = ImplicitModel(A, rng.standard_normal((4, 3)), rng.standard_normal((2, 4)),
                          rng.standard_normal((2, 3)))
    U = rng.standard_normal((5, 3))
    G = np.ones((5, 2))
    with pytest.raises(ValueError, match="G"):
        input_gradient(model, U, np.full((5, 2), np.nan))
    with pytest.raises(ValueError, match="X"):
        input_gradient(model, U, G, X=np.full((5, 4), np.nan))
    with pytest.raises(ValueError, match="X"):
        input_gradient(model, U, G, X=np.zeros((5, 3)))
    for attack in (sensitivity_attack, gradient_attack):
        res = attack(model, np.zeros((0, 3)), k=1)
        assert res.U_adv.shape == (0, 3) and res.features.shape == (0, 1)
        assert res.Y_adv.shape == (0, 2) and res.target.shape == (0,)
