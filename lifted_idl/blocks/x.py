r"""The X block of BCD: the states that best explain the proxies through the state equation.

.. math::

    \min_X\; \frac1m\sum_{i=1}^n \lambda_i \sum_{s=1}^m
        F_\phi\big(P_{si},\, (XA^\top + UB^\top + \mathbf 1b^\top)_{si}\big)
        + \frac{\mu}{2m}\|X - P\|_F^2

(theory §8; arXiv §4.2, eq. (14)). Unconstrained, :math:`\mu/m`-strongly convex, separable
across samples; the gradient is
:math:`\frac1m\big[(\phi(Z) - P)\Lambda A + \mu(X - P)\big]` and its Lipschitz constant is at most
:math:`(\gamma\|\Lambda^{1/2}A\|_2^2 + \mu)/m` (:math:`\gamma` the Lipschitz constant of
:math:`\phi`). Setting it to zero gives the paper's fixed point
:math:`X = P - \frac1\mu(\phi(Z) - P)\Lambda A`, which is a contraction only when
:math:`\lambda\|A\|^2 < \mu`; the solver below needs no such condition.

Fast solvers (``method="fast"``), on all samples at once; the cheaper one for the problem's
conditioning is picked (:func:`_use_newton`):

* Nesterov's accelerated gradient for strongly convex functions (constant momentum
  :math:`(\sqrt{L} - \sqrt{\sigma})/(\sqrt{L} + \sqrt{\sigma})`, :math:`\sigma = \mu`, with a
  gradient-restart safeguard): two (m, n)·(n, n) products per iteration, about
  :math:`13\sqrt{L/\sigma}` iterations;
* a damped (semismooth for ReLU) Newton method, one n × n system per sample
  (:math:`A^\top\mathrm{diag}(\lambda\odot\phi'(z))A + \mu I`), 5-20 iterations, chosen when
  :math:`\sqrt{L/\sigma}` exceeds about 1.5 n (large :math:`\lambda/\mu`).

The cvxpy formulation (``method="cvxpy"``) is one problem over all of X, solved by the solver
of its class (:mod:`._common`: OSQP for the piecewise-quadratic ReLU divergence, Clarabel for
the exponential cones of tanh and sigmoid).
"""

from __future__ import annotations

import numpy as np

from ..losses import unit_mean_weights
from ._common import (
    BlockResult,
    as_lam,
    as_matrix,
    as_positive,
    as_state_weights,
    check_cvxpy_solver,
    check_domain,
    check_options,
    get_fenchel_activation,
    keep_better,
    solve_cvxpy,
)
from .objective import _x_objective

__all__ = ["solve_x"]


def _check(A, B, b, U, P, lam, mu, activation, init):
    act = get_fenchel_activation(activation, "X")
    U = as_matrix("U", U)
    m, p = U.shape
    A, B, b = as_state_weights(A, B, b, p)
    n = A.shape[0]
    P = as_matrix("P", P, (m, n))
    check_domain("P", P, act)
    lam = as_lam(lam, n)
    mu = as_positive("mu", mu)
    if init is not None:
        init = as_matrix("init", init, (m, n))
    return A, B, b, U, P, lam, mu, act, init


def solve_x(A, B, b, U, P, lam, mu, activation, *, init=None, method: str = "fast",
            tol: float = 1e-8, max_iter: int = 2000,
            cvxpy_solver: str | None = None, sample_weight=None) -> BlockResult:
    r"""Solve the X block exactly (theory §8, arXiv (14)).

    .. math::

        \min_X\; \frac1m\sum_i \lambda_i \sum_s F_\phi(P_{si}, Z_{si})
        + \frac{\mu}{2m}\|X - P\|_F^2, \qquad Z = XA^\top + UB^\top + \mathbf 1b^\top.

    Parameters
    ----------
    A, B, b : ndarrays of shapes (n, n), (n, p), (n,) (b may be None)
    U : ndarray of shape (m, p)
    P : ndarray of shape (m, n)
        Proxy states in :math:`\mathrm{dom} f^*`.
    lam : float or ndarray of shape (n,)
        Per-state divergence weights, > 0.
    mu : float
        Coupling weight, > 0.
    activation : Activation or str
    init : ndarray of shape (m, n), optional
        Warm start (default: ``P``). The returned objective is never above its objective.
    method : {"fast", "cvxpy"}
    tol : float, default=1e-8
        Stop when the step (gradient step :math:`\nabla/L` for accelerated gradient, Newton
        step for Newton) is below ``tol * max(1, max|X|)`` entrywise; cvxpy: the solver's
        tolerances (clipped to [1e-10, 1e-6]).
    max_iter : int, default=2000
    cvxpy_solver : {None, "CLARABEL", "ECOS", "OSQP", "HIGHS"}, default=None
        With ``method="cvxpy"``: the solver; None picks it by the problem's class (see
        :mod:`lifted_idl.blocks`).
    sample_weight : ndarray of shape (m,), optional
        Non-negative sample weights, as in :func:`~lifted_idl.blocks.solve_p`: the block is
        separable over samples, so the minimiser does not depend on them; the fast solver
        ignores them and the objective and the cvxpy twin are weighted.

    Returns
    -------
    BlockResult
        ``value = X`` of shape (m, n).
    """
    check_options(method, tol, max_iter)
    cvxpy_solver = check_cvxpy_solver(method, cvxpy_solver)
    A, B, b, U, P, lam, mu, act, init = _check(A, B, b, U, P, lam, mu, activation, init)
    w = unit_mean_weights(sample_weight, U.shape[0])
    init_obj = None if init is None else _x_objective(A, B, b, U, P, lam, mu, act, init, w)
    if method == "cvxpy":
        X, n_iter, conv, solver = _x_cvxpy(A, B, b, U, P, lam, mu, act, tol, max_iter,
                                           cvxpy_solver, w)
    else:
        if _use_newton(A, lam, mu, act, P.shape[0]):
            X, n_iter, conv = _x_newton(A, B, b, U, P, lam, mu, act, init, tol, max_iter)
            solver = "newton"
        else:
            X, n_iter, conv = _x_agd(A, B, b, U, P, lam, mu, act, init, tol, max_iter)
            solver = "agd"
    obj = _x_objective(A, B, b, U, P, lam, mu, act, X, w)
    return keep_better(BlockResult(X, float(obj), int(n_iter), bool(conv), solver), init,
                       init_obj)


def _use_newton(A, lam, mu, act, m):
    """Pick Newton when it should be cheaper than accelerated gradient.

    Measured (m = 500, n = 20-50): accelerated gradient takes about 13 sqrt(L/mu) iterations,
    a Newton iteration costs about n accelerated-gradient iterations and Newton takes 10-20
    iterations; so Newton wins when sqrt(L/mu) exceeds about 1.5 n.
    """
    n = A.shape[0]
    if n == 0:
        return False
    L = float(act.lipschitz) * float(np.linalg.eigvalsh(A.T @ (lam[:, None] * A))[-1]) + mu
    return bool(np.sqrt(L / mu) > 1.5 * n)


def _x_agd(A, B, b, U, P, lam, mu, act, init, tol, max_iter):
    """Accelerated gradient on m times the objective (the 1/m is common to every term)."""
    n = A.shape[0]
    E = U @ B.T
    E += b
    LA = lam[:, None] * A  # Lambda A
    gamma = float(act.lipschitz)
    L = gamma * float(np.linalg.eigvalsh(A.T @ LA)[-1]) + mu if n else mu
    sigma = mu
    beta_max = (np.sqrt(L) - np.sqrt(sigma)) / (np.sqrt(L) + np.sqrt(sigma))
    step = 1.0 / L
    Xx = P.copy() if init is None else init.copy()
    Xy = Xx.copy()
    converged = False
    n_iter = 0
    for k in range(1, max_iter + 1):
        n_iter = k
        Z = Xy @ A.T
        Z += E
        G = act(Z)
        G -= P
        Gr = G @ LA
        Gr += mu * (Xy - P)
        Xn = Xy - step * Gr
        dX = Xn - Xy
        if float(np.abs(dX).max(initial=0.0)) <= tol * max(1.0, float(np.abs(Xn).max(
                initial=0.0))):
            Xx = Xn
            converged = True
            break
        # gradient restart safeguard (the momentum fights the gradient)
        beta = 0.0 if float(np.vdot(dX, Xn - Xx)) < 0.0 else beta_max
        Xy = Xn + beta * (Xn - Xx)
        Xx = Xn
    return Xx, n_iter, converged


def _x_newton(A, B, b, U, P, lam, mu, act, init, tol, max_iter):
    r"""Damped (semi-smooth for ReLU) Newton method, one n × n system per sample, batched.

    Sample s minimises :math:`\sum_i \lambda_i[f(z_i) - P_{si}z_i] + \frac\mu2\|x - p_s\|^2`,
    :math:`z = Ax + e_s`; its (generalised) Hessian :math:`A^\top\mathrm{diag}(\lambda\odot
    \phi'(z))A + \mu I \succeq \mu I`. Per-sample Armijo backtracking; stops when every Newton
    step is below ``tol * max(1, max|X|)`` entrywise.
    """
    m, n = P.shape
    E = U @ B.T
    E += b
    LA = lam[:, None] * A
    X = P.copy() if init is None else init.copy()
    eye = np.eye(n)

    def values(Xc, rows):
        Z = Xc @ A.T
        Z += E[rows]
        R = Xc - P[rows]
        v = (act.f(Z) - P[rows] * Z) @ lam + 0.5 * mu * np.einsum("ij,ij->i", R, R)
        return v, Z

    rows = np.arange(m)
    vals, Z = values(X, rows)
    converged = False
    n_iter = 0
    for k in range(1, max_iter + 1):
        n_iter = k
        G = act(Z)
        G -= P[rows]
        g = G @ LA
        g += mu * (X[rows] - P[rows])
        Dw = act.derivative(Z) * lam  # (r, n)
        H = (A.T[None, :, :] * Dw[:, None, :]) @ A
        H += mu * eye
        d = -np.linalg.solve(H, g[:, :, None])[:, :, 0]
        step = np.abs(d).max(axis=1)
        done = step <= tol * np.maximum(1.0, np.abs(X[rows]).max(axis=1))
        if done.all():
            converged = True
            break
        keep = ~done
        rows, d, g = rows[keep], d[keep], g[keep]
        v0 = vals[rows]
        gd = np.minimum((g * d).sum(axis=1), 0.0)
        a = np.ones(rows.size)
        todo = np.arange(rows.size)
        Xr = X[rows]
        Znew = np.empty((rows.size, n))
        for _ in range(50):
            Xt = Xr[todo] + a[todo, None] * d[todo]
            vt, Zt = values(Xt, rows[todo])
            ok = vt <= v0[todo] + 1e-4 * a[todo] * gd[todo] + 1e-15 * np.abs(v0[todo])
            acc = todo[ok]
            X[rows[acc]] = Xt[ok]
            vals[rows[acc]] = vt[ok]
            Znew[acc] = Zt[ok]
            todo = todo[~ok]
            if todo.size == 0:
                break
            a[todo] *= 0.5
        if todo.size:  # no decrease at rounding level: those samples are done
            keep = np.ones(rows.size, dtype=bool)
            keep[todo] = False
            rows, Znew = rows[keep], Znew[keep]
            if rows.size == 0:
                converged = True
                break
        Z = Znew
    return X, n_iter, converged


# --------------------------------------------------------------------------------------------
# cvxpy formulation
# --------------------------------------------------------------------------------------------
def _x_cvxpy(A, B, b, U, P, lam, mu, act, tol, max_iter, solver=None, w=None):
    """The cvxpy formulation; ``(X, n_iter, converged, label)``."""
    import cvxpy as cp

    m, n = P.shape
    X = cp.Variable((m, n), name="X")
    Z = X @ A.T + (U @ B.T + b)
    lam_rows = np.tile(lam, (m, 1))
    R = X - P
    if w is not None:  # every term of sample s weighted by w_s
        lam_rows = lam_rows * w[:, None]
        R = cp.multiply(np.sqrt(w)[:, None], R)
    div = cp.sum(cp.multiply(lam_rows, act.f_cvxpy(Z))) - cp.sum(cp.multiply(lam_rows * P, Z))
    prob = cp.Problem(cp.Minimize((div + 0.5 * mu * cp.sum_squares(R)) / m))
    conv, n_iter, name = solve_cvxpy(prob, "X", tol, max_iter, solver)
    return np.array(X.value, dtype=np.float64), n_iter, conv, f"cvxpy:{name}"
