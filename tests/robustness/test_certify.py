"""Certificates (theory §7): radii are sound, LP certifies whatever sensitivity certifies, and
no attack flips a certified sample."""

import numpy as np
import pytest
from _helpers import FittedClassifier

from lifted_idl import ImplicitModel
from lifted_idl.robustness import (
    certified_accuracy,
    certified_radius,
    gradient_attack,
    lp_attack,
    lp_certify,
    pairwise_sensitivity,
    sensitivity_attack,
)
from lifted_idl.wellposedness import project_inf_norm_ball


def classifier_model(n, p, q, seed, kappa=0.6):
    rng = np.random.default_rng(seed)
    A = project_inf_norm_ball(rng.normal(size=(n, n)), kappa)
    return ImplicitModel(A, rng.normal(size=(n, p)) / np.sqrt(p), rng.normal(size=(q, n)),
                         0.3 * rng.normal(size=(q, p)), b=0.3 * rng.normal(size=n),
                         c=rng.normal(size=q))


def data(model, m, seed, noise=0.3):
    """Inputs with labels mostly equal to the prediction (a few flipped: misclassified)."""
    rng = np.random.default_rng(seed)
    U = rng.normal(size=(m, model.n_features))
    y = model.predict(U).argmax(1)
    flip = rng.uniform(size=m) < noise
    y[flip] = (y[flip] + 1) % model.n_outputs
    return U, y


def ball_points(rng, u0, eps, norm, count):
    p = u0.size
    if norm == "inf":
        d = rng.uniform(-1, 1, size=(count, p))
        d[: count // 2] = np.sign(d[: count // 2])  # box corners
        return u0 + eps * d
    d = rng.normal(size=(count, p))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return u0 + eps * d * rng.uniform(0.5, 1, size=(count, 1))


@pytest.mark.parametrize("n,p,q,seed", [(6, 4, 3, 0), (15, 5, 2, 1), (30, 6, 4, 2)])
@pytest.mark.parametrize("norm", ["inf", 2])
def test_certified_radius_sound_and_brute_force(n, p, q, seed, norm):
    model = classifier_model(n, p, q, seed)
    U, y = data(model, 20, seed)
    r = certified_radius(model, U, y, norm=norm)
    Y = model.predict(U)
    P = pairwise_sensitivity(model)
    rng = np.random.default_rng(seed)
    for i in range(20):
        margins = [Y[i, y[i]] - Y[i, k] for k in range(q) if k != y[i]]
        if min(margins) <= 0:
            assert r[i] == 0.0
            continue
        dens = [P[y[i], k].sum() if norm == "inf" else np.linalg.norm(P[y[i], k])
                for k in range(q) if k != y[i]]
        assert r[i] == pytest.approx(min(m / d for m, d in zip(margins, dens, strict=True)))
        pts = ball_points(rng, U[i], 0.999 * r[i], norm, 200)
        assert np.all(model.predict(pts).argmax(1) == y[i])
    assert np.any(r > 0) and np.any(r == 0)


def test_lp_certifies_whatever_sensitivity_certifies():
    model = classifier_model(12, 5, 3, 3)
    U, y = data(model, 16, 3)
    r = certified_radius(model, U, y)
    eps = float(np.median(r[r > 0]))
    sens = r > eps
    lp, bounds = lp_certify(model, U, y, eps, screen=False, return_bounds=True)
    assert sens.any() and np.all(lp[sens])
    assert lp.sum() >= sens.sum()
    # screening with the box bound never changes the answer
    np.testing.assert_array_equal(lp_certify(model, U, y, eps, screen=True), lp)
    # misclassified samples are never certified, and their reported bound is the nominal one
    Y = model.predict(U)
    wrong = Y.argmax(1) != y
    assert wrong.any() and not lp[wrong].any()
    assert np.all(bounds[wrong] >= 0)
    # the LP bound dominates every sampled point of the ball
    rng = np.random.default_rng(3)
    for i in np.flatnonzero(~wrong)[:6]:
        Yb = model.predict(ball_points(rng, U[i], eps, "inf", 100))
        worst = (np.delete(Yb, y[i], axis=1) - Yb[:, [y[i]]]).max()
        assert worst <= bounds[i] + 1e-7
    acc_s = certified_accuracy(model, U, y, eps)
    acc_lp = certified_accuracy(model, U, y, eps, method="lp")
    assert acc_s == pytest.approx(sens.mean()) and acc_lp == pytest.approx(lp.mean())
    assert acc_lp >= acc_s
    # the paper relaxation certifies no more than the triangle one
    paper = lp_certify(model, U, y, eps, relaxation="paper", screen=False)
    assert np.all(lp[paper])


def test_certified_samples_survive_every_attack():
    model = classifier_model(10, 5, 3, 4)
    U, y = data(model, 14, 4, noise=0.0)
    r = certified_radius(model, U, y)
    eps = float(np.quantile(r, 0.4))
    cert_lp = lp_certify(model, U, y, eps)
    cert = cert_lp | (r > eps)
    assert cert.sum() >= 3
    Uc, yc = U[cert], y[cert]
    rng = np.random.default_rng(4)
    flipped = []
    for k in (1, 3, 5):
        for attack in (sensitivity_attack, gradient_attack):
            res = attack(model, Uc, k, sigma=eps, y=yc)
            flipped.append(model.predict(res.U_adv).argmax(1) != yc)
    for u0, yi in zip(Uc, yc, strict=True):
        for kk in range(3):
            if kk == yi:
                continue
            c = np.zeros(3)
            c[kk], c[yi] = 1.0, -1.0
            for kcard in (None, 2):
                att = lp_attack(model, u0, eps, c, k=kcard, relaxation="triangle")
                assert att.value < 0 and att.value <= att.bound + 1e-7
        pts = ball_points(rng, u0, eps, "inf", 300)
        flipped.append(np.array([np.any(model.predict(pts).argmax(1) != yi)]))
    assert not np.concatenate(flipped).any()
    # sanity: the same attacks at a much larger radius do flip some of these samples
    big = sensitivity_attack(model, Uc, 5, sigma=50 * max(eps, 1e-3), y=yc)
    assert np.any(model.predict(big.U_adv).argmax(1) != yc)


def test_estimator_labels_match_output_indices():
    model = classifier_model(8, 4, 3, 5)
    clf = FittedClassifier(model, [10, 20, 30])
    U, y = data(model, 10, 5)
    np.testing.assert_array_equal(certified_radius(clf, U, clf.classes_[y]),
                                  certified_radius(model, U, y))
    r = certified_radius(model, U, y)
    eps = float(np.median(r))
    np.testing.assert_array_equal(lp_certify(clf, U, clf.classes_[y], eps),
                                  lp_certify(model, U, y, eps))


def test_certify_argument_errors():
    model = classifier_model(6, 4, 3, 6)
    U, y = data(model, 4, 6)
    with pytest.raises(ValueError, match="eps"):
        certified_accuracy(model, U, y, -0.1)
    with pytest.raises(ValueError, match="method"):
        certified_accuracy(model, U, y, 0.1, method="smoothing")
    with pytest.raises(ValueError, match="l-infinity"):
        certified_accuracy(model, U, y, 0.1, method="lp", norm=2)
    with pytest.raises(ValueError, match="output indices"):
        certified_radius(model, U, np.array([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="norm"):
        certified_radius(model, U, y, norm="fro")
    with pytest.raises(ValueError, match="q >= 2"):
        certified_radius(model.replace(C=model.C[:1], D=model.D[:1], c=model.c[:1]), U,
                         np.zeros(4, dtype=int))


def test_certified_radius_discounts_the_solvers_error():
    """A margin smaller than what the fixed-point solver's error can change it by is not
    certified: with lambda = 0.999 the computed state is about 1e-4 off, and the label whose
    logit the computed state puts ahead by 5e-5 is in truth behind (it was certified, while
    lp_certify, which bounds that error, refused it)."""
    a = 0.999
    t = 1 / (1 - a) - 5e-5
    model = ImplicitModel(np.array([[a]]), np.array([[1.0]]), np.array([[1.0], [0.0]]),
                          np.zeros((2, 1)), c=np.array([0.0, t]))
    U = np.array([[1.0]])
    assert model.predict(U)[0].argmax() == 1  # the computed logits: label 1 ahead
    assert certified_radius(model, U, np.array([1]))[0] == 0.0
    assert certified_accuracy(model, U, np.array([1]), 1e-8) == 0.0
    assert not lp_certify(model, U, np.array([1]), 1e-8)[0]
