"""Helpers shared by several test modules: reference data makers and residuals.

Import them as ``from _helpers import ...``: ``tests/`` is on ``sys.path`` because
``tests/conftest.py`` sits there (pytest's default ``prepend`` import mode), both under
``python -m pytest`` from the repository root and when one file is run alone.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from lifted_idl.activations import ReLU, Tanh
from lifted_idl.losses import SoftmaxCrossEntropy, SquaredLoss
from lifted_idl.penalties import L1Penalty, L2Penalty, NoPenalty
from lifted_idl.wellposedness import project_inf_norm_ball

ACTS = [ReLU(), Tanh()]
LOSSES = [SquaredLoss(), SoftmaxCrossEntropy()]
PENS = [NoPenalty(), L2Penalty(0.05), L1Penalty(0.02)]
RTOL = 1e-6
ORDS = [2, np.inf]


# Clarabel sometimes reports "optimal_inaccurate" on small SOCPs; the comparisons that use
# this mark hold regardless (the fast solvers are never above the reference by more than
# rounding).
CLARABEL_STATUS = pytest.mark.filterwarnings("ignore:.*CLARABEL returned status:UserWarning",
                                             "ignore:.*CLARABEL returned status")


def rel(a, b):
    return abs(a - b) / max(abs(a), abs(b), 1e-12)


def instance(seed, act, loss, m=40, n=6, p=3, q=2, kappa=0.5):
    """A random instance of the four blocks (a dict: U, A, B, b, X, P, C, D, c, Y, lam, mu,
    kappa); P lies in the domain of f* of ``act``, Y suits ``loss``."""
    rng = np.random.default_rng(seed)
    U = rng.standard_normal((m, p))
    A = project_inf_norm_ball(rng.standard_normal((n, n)), kappa)
    B = rng.standard_normal((n, p))
    b = 0.3 * rng.standard_normal(n)
    X = rng.standard_normal((m, n))
    if isinstance(act, ReLU):
        P = np.maximum(rng.standard_normal((m, n)), 0.0)
    else:
        P = np.tanh(rng.standard_normal((m, n)))
    C = rng.standard_normal((q, n))
    D = rng.standard_normal((q, p))
    c = rng.standard_normal(q)
    if isinstance(loss, SquaredLoss):
        Y = rng.standard_normal((m, q))
    else:
        Y = np.eye(q)[rng.integers(0, q, m)]
    lam = rng.uniform(0.5, 3.0, n)
    return dict(U=U, A=A, B=B, b=b, X=X, P=P, C=C, D=D, c=c, Y=Y, lam=lam, mu=0.7,
                kappa=kappa)


def ab_fixed_point_residual(X, U, P, lam, kappa, act, pen, A, B, b, fit_bias=True):
    """|W - Proj(prox(W - t grad))| for the (A, B, b) block, with a per-row step t."""
    m = X.shape[0]
    n = A.shape[0]
    Z = X @ A.T + U @ B.T + b
    G = (act(Z) - P) * (lam / m)
    W = np.hstack([A, B])
    gW = G.T @ np.hstack([X, U])
    if isinstance(pen, L2Penalty):
        gW = gW + pen.alpha * W
    M1 = np.hstack([X, U, np.ones((m, 1))])
    t = (m / (lam * np.linalg.norm(M1, 2) ** 2))[:, None]
    V = W - t * gW
    if isinstance(pen, L1Penalty):
        V = np.sign(V) * np.maximum(np.abs(V) - t * pen.alpha, 0.0)
    V[:, :n] = project_inf_norm_ball(V[:, :n], kappa)
    res = float(np.abs(V - W).max())
    if fit_bias:
        res = max(res, float(np.abs(t[:, 0] * G.sum(axis=0)).max()))
    return res


def fixed_part(rng, k, p, n_zero=2):
    """A fixed part with zero columns, one tiny column and regular ones."""
    F = rng.standard_normal((k, p))
    F[:, :n_zero] = 0.0
    F[:, n_zero] *= 1e-4
    return F


def ab_instance(seed, act, m=40, n=6, p=5, q=2):
    rng = np.random.default_rng(seed)
    U = rng.standard_normal((m, p))
    X = rng.standard_normal((m, n))
    if isinstance(act, ReLU):
        P = np.maximum(rng.standard_normal((m, n)), 0.0)
    else:
        P = np.tanh(rng.standard_normal((m, n)))
    lam = rng.uniform(0.5, 3.0, n)
    D = fixed_part(rng, q, p)
    return X, U, P, lam, D


def ab_kkt_residual(X, U, P, lam, kappa, act, pen, A, B, b):
    """Prox-gradient fixed-point residual of the (A, B, b) block at a single step 1/L."""
    m = X.shape[0]
    Z = X @ A.T + U @ B.T + b
    G = (act(Z) - P) * (lam / m)
    gA, gB, gb = G.T @ X + pen.ridge * A, G.T @ U, G.sum(axis=0)
    M = np.hstack([X, U, np.ones((m, 1))])
    t = 1.0 / (lam.max() * np.linalg.eigvalsh(M.T @ M)[-1] / m + pen.ridge)
    An = project_inf_norm_ball(A - t * gA, kappa)
    Bn = pen.prox_part(B - t * gB, t)
    return max(np.abs(An - A).max(), np.abs(Bn - B).max(), np.abs(t * gb).max()) / t


def cd_instance(seed, loss, m=50, n=5, p=6, q=3):
    rng = np.random.default_rng(seed)
    U = rng.standard_normal((m, p))
    P = np.maximum(rng.standard_normal((m, n)), 0.0)
    if loss == "squared":
        Y = rng.standard_normal((m, q))
    else:
        Y = np.eye(q)[rng.integers(0, q, m)]
    B = fixed_part(rng, 4, p, n_zero=3)
    return P, U, Y, B


# --------------------------------------------------------------------------------------------
# golden numbers (tests/data/*.npz, written by tests/data/make_goldens.py)
# --------------------------------------------------------------------------------------------
#: the golden suites: the module (in tests/training) that defines the cases, the file (in
#: tests/data) that holds their numbers
GOLDENS = {"rounds": ("golden_cases", "golden_rounds.npz"),
           "gradient": ("golden_gradient_cases", "golden_gradient.npz")}


def golden_arrays(cases) -> dict:
    """Every array of every case, keyed ``"case/key"`` as the golden files store them."""
    return {f"{name}/{key}": np.asarray(val, dtype=np.float64)
            for name, run in cases.items() for key, val in run().items()}


def load_golden(path) -> dict:
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def assert_golden(cases, golden, name):
    """Case ``name`` recomputed equals its golden arrays (to 1e-12)."""
    got = {k.split("/", 1)[1]: v for k, v in golden_arrays({name: cases[name]}).items()}
    want = {k.split("/", 1)[1]: v for k, v in golden.items() if k.split("/", 1)[0] == name}
    assert set(got) == set(want)
    for key, val in got.items():
        np.testing.assert_allclose(val, want[key], rtol=1e-12, atol=1e-13, err_msg=key)


# ----- robustness: points of the perturbation sets, a fitted-classifier stand-in -------------
def box_points(rng, u0, sigma, n_random=200):
    r"""Every corner of the box :math:`\|u - u_0\|_\infty \le \sigma` (p small) and
    ``n_random`` random points inside it."""
    p = u0.size
    corners = np.array(list(itertools.product([-1.0, 1.0], repeat=p)))
    return u0 + np.vstack([corners, rng.uniform(-1, 1, size=(n_random, p))]) * sigma


def card_points(rng, u0, sigma, k, n_random=200, full_support=False):
    """Every vertex of the cardinality set (k entries at +-sigma) and ``n_random`` random
    sparse points: k entries each (``full_support``) or between 1 and k."""
    p = u0.size
    pts = []
    for supp in itertools.combinations(range(p), k):
        for signs in itertools.product([-1.0, 1.0], repeat=k):
            d = np.zeros(p)
            d[list(supp)] = signs
            pts.append(d)
    for _ in range(n_random):
        d = np.zeros(p)
        size = k if full_support else rng.integers(1, k + 1)
        supp = rng.choice(p, size=size, replace=False)
        d[supp] = rng.uniform(-1, 1, size=supp.size)
        pts.append(d)
    return u0 + np.array(pts) * sigma


class FittedClassifier:
    """A stand-in for a fitted classifier: only ``model_``, ``classes_`` (and ``fit``)."""

    def __init__(self, model, classes):
        self.model_ = model
        self.classes_ = np.asarray(classes)

    def fit(self, X, y=None):  # pragma: no cover - never called
        return self
