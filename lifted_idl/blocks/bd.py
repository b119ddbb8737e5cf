r"""The joint (B, D) block of BCD with the group penalty [IDL (5.1)].

.. math::

    \min_{B, D}\; \mathcal L(Y, PC^\top + UD^\top + \mathbf 1c^\top)
    + \frac1m\sum_i\lambda_i\sum_s F_\phi(P_{si}, Z_{si}) + \mathcal P(B, D),
    \qquad Z = XA^\top + UB^\top + \mathbf 1b^\top,

everything else fixed (docs/theory.md §8). It is convex in (B, D): the Fenchel divergence is
convex in its second argument, the loss in D, and the group norm
:math:`\mathcal P(B, D) = \alpha\sum_j\|[B; D]e_j\|_r` jointly. The (A, B, b) and (C, D, c)
blocks see :math:`\mathcal P` with the other part fixed, which is smooth in their part while the
other part is nonzero, so they alone never zero a column of [B; D]; this block's joint prox
(:func:`~lifted_idl.penalties.group_prox`) does.

Fast solver (``method="fast"``): proximal gradient with backtracking, started from the given
(B, D), with a first step from the curvature along the gradient and the step doubled after each
accepted step. Every accepted step passes the sufficient-decrease test and lowers the block
objective, so the result is never above the starting point.

The cvxpy formulation (``method="cvxpy"``) is one problem over (B, D) with the loss's and the
group penalty's own cvxpy expressions, solved by the solver of its class (:mod:`._common`:
OSQP for ReLU with the squared loss and the l-inf group norm, a quadratic program; ECOS for the
l2 group norm's second-order cones; Clarabel for the exponential cones of tanh, sigmoid and
the cross-entropy).
"""

from __future__ import annotations

import numpy as np

from ..losses import get_loss, unit_mean_weights
from ..penalties import GroupPenalty
from ._common import (
    BlockResult,
    as_lam,
    as_matrix,
    as_model_data,
    check_cvxpy_solver,
    check_domain,
    check_options,
    get_fenchel_activation,
    solve_cvxpy,
)
from .objective import _divergence

__all__ = ["solve_bd"]


def _check(A, B, b, C, D, c, X, P, U, Y, lam, activation, loss, group):
    if not isinstance(group, GroupPenalty):
        raise ValueError(f"group must be a GroupPenalty (the penalty of [IDL (5.1)] on [B; D]); "
                         f"got group={group!r}")
    act = get_fenchel_activation(activation, "(B, D)")
    loss = get_loss(loss)
    (A, B, b), (C, D, c), X, U, Y = as_model_data(A, B, b, C, D, c, X, U, Y)
    m, n = X.shape
    P = as_matrix("P", P, (m, n))
    check_domain("P", P, act)
    return A, B, b, C, D, c, X, P, U, Y, as_lam(lam, n), act, loss


def solve_bd(A, B, b, C, D, c, X, P, U, Y, lam, activation, loss, group, *,
             method: str = "fast", tol: float = 1e-7, max_iter: int = 50,
             cvxpy_solver: str | None = None, sample_weight=None) -> BlockResult:
    r"""Solve the joint (B, D) block of the group-penalised relaxation (module docstring).

    .. math::

        \min_{B, D}\; \mathcal L(Y, PC^\top + UD^\top + c)
        + \frac1m\sum_i\lambda_i\sum_s F_\phi(P_{si}, (XA^\top + UB^\top + b)_{si})
        + \alpha\sum_j\|[B; D]e_j\|_r

    Parameters
    ----------
    A, B, b : ndarrays of shapes (n, n), (n, p), (n,) (b may be None)
        State weights; A and b stay fixed, B is the starting point of the fast solver.
    C, D, c : ndarrays of shapes (q, n), (q, p), (q,) (c may be None)
        Output weights; C and c stay fixed, D is the starting point of the fast solver.
    X : ndarray of shape (m, n)
        States.
    P : ndarray of shape (m, n)
        Proxy states, in :math:`\mathrm{dom} f^*`.
    U : ndarray of shape (m, p)
    Y : ndarray of shape (m, q)
    lam : float or ndarray of shape (n,)
        Per-state divergence weights, > 0.
    activation : Activation or str
    loss : Loss or str
    group : GroupPenalty
        The penalty :math:`\mathcal P(B, D)` of [IDL (5.1)] (strength ``alpha``, column norm
        ``ord``).
    method : {"fast", "cvxpy"}
    tol : float, default=1e-7
        Fast: stop when a step moves (B, D) by at most ``tol * max(1, ||(B, D)||_F)``; cvxpy:
        the solver's tolerances (clipped to [1e-10, 1e-6]). BCD takes one inexact step of
        this block per round, so the default is loose; lower it (and raise ``max_iter``) for
        an exact solve.
    max_iter : int, default=50
        Proximal-gradient steps at most.
    cvxpy_solver : {None, "CLARABEL", "ECOS", "OSQP", "HIGHS"}, default=None
        With ``method="cvxpy"``: the solver; None picks it by the problem's class (see
        :mod:`lifted_idl.blocks`).
    sample_weight : ndarray of shape (m,), optional
        Non-negative sample weights: the loss and the divergence become weighted averages
        :math:`\frac{1}{\sum_t w_t}\sum_s w_s(\cdot)_s`
        (:func:`~lifted_idl.losses.unit_mean_weights`; integer weights are repeated samples).

    Returns
    -------
    BlockResult
        ``value = ((A, B, b), (C, D, c))`` with the new B and D; ``objective`` is the block
        objective above; ``solver`` is ``"prox_grad"`` or ``"cvxpy:NAME"``; fast:
        ``converged`` is False only when ``max_iter`` steps were taken without meeting
        ``tol`` (a step that can no longer lower the objective also ends the solve).

    Raises
    ------
    ValueError
        Bad shapes, NaN/inf, ``P`` outside the domain of :math:`f^*`, ``group`` not a
        :class:`~lifted_idl.penalties.GroupPenalty`.
    SolverError
        The cvxpy solve failed.
    """
    check_options(method, tol, max_iter)
    cvxpy_solver = check_cvxpy_solver(method, cvxpy_solver)
    A, B, b, C, D, c, X, P, U, Y, lam, act, loss = _check(A, B, b, C, D, c, X, P, U, Y, lam,
                                                         activation, loss, group)
    w = unit_mean_weights(sample_weight, U.shape[0])
    if method == "cvxpy":
        B, D, n_iter, conv, solver = _bd_cvxpy(A, b, C, c, X, P, U, Y, lam, act, loss, group,
                                               tol, max_iter, cvxpy_solver, w)
        obj = _bd_objective(A, B, b, C, D, c, X, P, U, Y, lam, act, loss, group, w)
    else:
        B, D, obj, n_iter, conv = _bd_prox_grad(A, B, b, C, D, c, X, P, U, Y, lam, act, loss,
                                                group, max_iter, tol, w)
        solver = "prox_grad"
    return BlockResult(((A, B, b), (C, D, c)), float(obj), int(n_iter), bool(conv), solver)


def _bd_objective(A, B, b, C, D, c, X, P, U, Y, lam, act, loss, group, w=None):
    Z = X @ A.T + b + U @ B.T
    return (loss.value(Y, P @ C.T + c + U @ D.T, sample_weight=w)
            + _divergence(act, P, Z, lam, w) + group.value({"B": B, "D": D}))


def _bd_prox_grad(A, B, b, C, D, c, X, P, U, Y, lamv, activation, loss, group, max_steps,
                  tol, w=None):
    """Proximal gradient with backtracking; ``(B, D, objective, n_steps, converged)``
    (``w``: unit-mean sample weights or None)."""
    m = max(U.shape[0], 1)
    base = X @ A.T + b
    out = P @ C.T + c

    def smooth(B, D):
        Z = base + U @ B.T
        return (loss.value(Y, out + U @ D.T, sample_weight=w)
                + _divergence(activation, P, Z, lamv, w)), Z

    f, Z = smooth(B, D)
    F = f + group.value({"B": B, "D": D})
    t = None
    n_steps, converged = 0, False
    for _ in range(max_steps):
        GZ = (activation.fenchel_grad_z(P, Z) * lamv) / m
        if w is not None:
            GZ *= w[:, None]
        gB = GZ.T @ U
        gD = loss.grad(Y, out + U @ D.T, sample_weight=w).T @ U
        if t is None:  # a first step from the curvature along the gradient, then adapted
            Uw = U if w is None else U * np.sqrt(w)[:, None]
            L0 = (np.linalg.norm(Uw, 2) ** 2) * max(float(lamv.max()) / m,
                                                    getattr(loss, "smoothness", 1.0) / m)
            t = 1.0 / max(L0, 1e-12)
        while True:
            new = group.prox({"B": B - t * gB, "D": D - t * gD}, t)
            Bn, Dn = new["B"], new["D"]
            dB, dD = Bn - B, Dn - D
            fn, Zn = smooth(Bn, Dn)
            quad = (float(np.vdot(gB, dB) + np.vdot(gD, dD))
                    + 0.5 / t * float(np.vdot(dB, dB) + np.vdot(dD, dD)))
            if fn <= f + quad + 1e-12 * max(1.0, abs(f)) or t < 1e-12:
                break
            t *= 0.5
        Fn = fn + group.value({"B": Bn, "D": Dn})
        if not Fn <= F:  # no step lowers the objective any more
            converged = True
            break
        step = float(np.sqrt(np.vdot(dB, dB) + np.vdot(dD, dD)))
        B, D, f, Z, F = Bn, Dn, fn, Zn, Fn
        n_steps += 1
        t *= 2.0
        if step <= tol * max(1.0, float(np.sqrt(np.vdot(B, B) + np.vdot(D, D)))):
            converged = True
            break
    return B, D, F, n_steps, converged


def _bd_cvxpy(A, b, C, c, X, P, U, Y, lam, act, loss, group, tol, max_iter, solver=None,
              w=None):
    """The cvxpy formulation; ``(B, D, n_iter, converged, label)``."""
    import cvxpy as cp

    m, n = X.shape
    p, q = U.shape[1], Y.shape[1]
    Bv, Dv = cp.Variable((n, p), name="B"), cp.Variable((q, p), name="D")
    Z = (X @ A.T + b) + U @ Bv.T
    lam_rows = np.tile(lam, (m, 1))
    if w is not None:  # sample s's divergence terms weighted by w_s
        lam_rows = lam_rows * w[:, None]
    # f*(P) is constant here; it is added back by the numpy objective
    div = cp.sum(cp.multiply(lam_rows, act.f_cvxpy(Z))) - cp.sum(cp.multiply(lam_rows * P, Z))
    obj = (loss.cvxpy(Y, (P @ C.T + c) + U @ Dv.T, sample_weight=w) + div / m
           + group.cvxpy({"B": Bv, "D": Dv}))
    conv, n_iter, name = solve_cvxpy(cp.Problem(cp.Minimize(obj)), "(B, D)", tol, max_iter,
                                     solver)
    return (np.array(Bv.value, dtype=np.float64), np.array(Dv.value, dtype=np.float64), n_iter,
            conv, f"cvxpy:{name}")
