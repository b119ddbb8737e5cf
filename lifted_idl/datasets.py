"""Synthetic data sets of the papers, and a loader for scikit-learn's bundled ones.

* :func:`make_teacher`: data from a random implicit ReLU model (training issue, training notes);
* :func:`make_function_fit`: :math:`f(u) = 5\\cos(\\pi u)e^{-|u|/2}` [IDL §7.1] (theory §9);
* :func:`make_tanh_teacher`: the two-layer tanh teacher of [arXiv §7.1] (theory §9);
* :func:`load_builtin`: ``digits``, ``diabetes``, ``breast_cancer``, ``iris``, ``wine`` (bundled
  with scikit-learn, no download).
"""

from __future__ import annotations

import numpy as np

from ._validation import check_int, check_real
from .model import ImplicitModel

__all__ = ["make_teacher", "make_function_fit", "make_tanh_teacher", "load_builtin", "BUILTIN"]


def _rng(random_state):
    return random_state if isinstance(random_state, np.random.Generator) else (
        np.random.default_rng(random_state))


def make_teacher(n_train=500, n_test=500, *, n_features=10, n_hidden=20, n_outputs=1,
                 a_norm=0.5, noise=0.05, sparse_columns=None, random_state=0):
    r"""Data from a random implicit ReLU teacher with :math:`\|A\|_\infty` = ``a_norm``.

    A, B, C, D have standard normal entries, A is rescaled to :math:`\|A\|_\infty` =
    ``a_norm``; inputs are :math:`\mathcal N(0, I)`; Gaussian output noise has standard deviation
    ``noise`` times that of the clean outputs.

    Parameters
    ----------
    sparse_columns : int, optional
        Keep only this many nonzero columns of B and D (the model-recovery teacher of
        [arXiv §7.2]); the support is returned in ``info["support"]``.

    Returns
    -------
    U_train, y_train, U_test, y_test, info
        ``y`` is 1-D when ``n_outputs == 1``; ``info`` has the teacher ``model`` and ``support``.
    """
    n_train, n_test = check_int("n_train", n_train, 0), check_int("n_test", n_test, 0)
    n, p = check_int("n_hidden", n_hidden, 1), check_int("n_features", n_features, 1)
    q = check_int("n_outputs", n_outputs, 1)
    a_norm = check_real("a_norm", a_norm, 0.0, 1.0, closed="left")  # a well-posed teacher
    noise = check_real("noise", noise, 0.0)
    sparse_columns = check_int("sparse_columns", sparse_columns, 1, p, allow_none=True)
    rng = _rng(random_state)
    A = rng.standard_normal((n, n))
    A *= a_norm / np.abs(A).sum(axis=1).max()
    B = rng.standard_normal((n, p))
    C = rng.standard_normal((q, n))
    D = rng.standard_normal((q, p))
    support = np.arange(p)
    if sparse_columns is not None:
        support = np.sort(rng.choice(p, size=sparse_columns, replace=False))
        mask = np.zeros(p, dtype=bool)
        mask[support] = True
        B[:, ~mask] = 0
        D[:, ~mask] = 0
    teacher = ImplicitModel(A, B, C, D)
    U = rng.standard_normal((n_train + n_test, p))
    Y = teacher.predict(U)
    Y = Y + noise * Y.std(axis=0) * rng.standard_normal(Y.shape)
    if q == 1:
        Y = Y[:, 0]
    info = {"model": teacher, "support": support}
    return U[:n_train], Y[:n_train], U[n_train:], Y[n_train:], info


def make_function_fit(n_train=200, n_test=1000, *, random_state=0):
    r""":math:`f(u) = 5\cos(\pi u)\exp(-|u|/2)`, :math:`u \sim U[-5, 5]`, noise :math:`U[-1,1]`
    [IDL §7.1]. Returns ``U_train, y_train, U_test, y_test`` (U of shape (m, 1))."""
    n_train, n_test = check_int("n_train", n_train, 0), check_int("n_test", n_test, 0)
    rng = _rng(random_state)
    u = rng.uniform(-5, 5, n_train + n_test)
    y = 5 * np.cos(np.pi * u) * np.exp(-np.abs(u) / 2) + rng.uniform(-1, 1, u.shape)
    U = u[:, None]
    return U[:n_train], y[:n_train], U[n_train:], y[n_train:]


def make_tanh_teacher(n_train=1000, n_test=500, *, random_state=0):
    r"""[arXiv §7.1] teacher :math:`\hat y = W_3\tanh(W_2\tanh(W_1 u))`, p = 20, widths 12 and 6,
    q = 5, weights Bernoulli(0.3)·U[−0.5, 0.5]; inputs :math:`\mathcal N(0, \Sigma)` with
    :math:`\Sigma = MM^\top - \lambda_{\min} I`, an independent :math:`\Sigma` for the test set."""
    rng = _rng(random_state)
    sizes = [(12, 20), (6, 12), (5, 6)]
    W = [rng.binomial(1, 0.3, s) * rng.uniform(-0.5, 0.5, s) for s in sizes]

    def inputs(m):
        M = rng.uniform(-0.5, 0.5, (20, 20))
        S = M @ M.T
        S -= np.linalg.eigvalsh(S).min() * np.eye(20)
        S += 1e-9 * np.eye(20)
        return rng.multivariate_normal(np.zeros(20), S, size=m)

    def f(U):
        return np.tanh(np.tanh(U @ W[0].T) @ W[1].T) @ W[2].T

    Utr, Ute = inputs(n_train), inputs(n_test)
    return Utr, f(Utr), Ute, f(Ute)


BUILTIN = {
    "digits": ("classification", "load_digits"),
    "breast_cancer": ("classification", "load_breast_cancer"),
    "iris": ("classification", "load_iris"),
    "wine": ("classification", "load_wine"),
    "diabetes": ("regression", "load_diabetes"),
}


def load_builtin(name):
    """``(X, y, task)`` for a data set bundled with scikit-learn (no download)."""
    if name not in BUILTIN:
        raise ValueError(f"Unknown data set name={name!r}; expected one of {sorted(BUILTIN)}")
    import sklearn.datasets as skd

    task, loader = BUILTIN[name]
    X, y = getattr(skd, loader)(return_X_y=True)
    return X, y, task
