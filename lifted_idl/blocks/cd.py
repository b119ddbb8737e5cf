r"""The (C, D, c) block of BCD: a (regularised) linear fit of Y on the proxy states P and U.

.. math::

    \min_{C, D, c}\; \mathcal L(Y, PC^\top + UD^\top + \mathbf 1c^\top) + \mathrm{Pen}([C\ D])

(theory §7; arXiv §4.2, eq. (12) with a penalty instead of the l1-ball). With the design
:math:`M = [P\ U]` and :math:`W = [C\ D]` this is a generalised linear model per output; the
intercept :math:`c` is not penalised.

Fast solvers (``method="fast"``):

* squared loss, no penalty or ridge: closed form. The intercept is removed by centring
  :math:`M` and :math:`Y`; then :math:`W^\top = (M_c^\top M_c/m + \alpha I)^{-1}M_c^\top Y_c/m`
  (Cholesky) for :math:`\alpha > 0`, and the minimum-norm least-squares solution
  (pivoted QR, ``gelsy``, safe for rank-deficient designs) for :math:`\alpha = 0`;
  :math:`c = \bar y - W\bar m`;
* squared loss, l1: coordinate descent (scikit-learn's ``enet_path`` with a precomputed Gram
  matrix, one output at a time, stopped on the duality gap), warm-started from ``init``;
* cross-entropy, no penalty or ridge: trust-region Newton-CG (SciPy ``trust-ncg``, exact
  Hessian-vector products) on :math:`(W, c)` in whitened coordinates (the centred design's
  Gram matrix becomes :math:`mI`), typically 5-15 Newton iterations;
* cross-entropy, l1: L-BFGS-B on the split :math:`W = W^+ - W^-`, :math:`W^\pm \ge 0`, whose
  objective :math:`\mathcal L + \alpha\,\mathbf 1^\top(W^+ + W^-)` is smooth (the split is
  exact at the optimum, where :math:`W^+ \odot W^- = 0`), with the design columns scaled to unit
  root-mean-square.

The cvxpy formulation (``method="cvxpy"``) is one problem over :math:`(W, c)` with the loss's
and the penalty's own cvxpy expressions, solved by Clarabel.

Degenerate cases. The squared loss always attains its minimum. The cross-entropy is invariant to
adding the same vector to every class (``C + 1v^T``) and, without a penalty, has no minimiser when
the classes are linearly separable in :math:`[P\ U]` (the infimum 0 is approached as
:math:`\|W\| \to \infty`). the solver then stops once the gradient falls below ``tol`` (or at
``max_iter``), returns a point of lower objective than ``init``, and reports ``converged``
honestly; use a ridge penalty to make the problem well-posed.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.optimize
from scipy.special import logsumexp, softmax

from ..losses import SoftmaxCrossEntropy, SquaredLoss, get_loss
from ..penalties import L1Penalty, L2Penalty
from ._common import (
    BlockResult,
    as_matrix,
    as_vector,
    check_options,
    get_block_penalty,
    keep_better,
    solve_cvxpy,
)
from .objective import _cd_objective

__all__ = ["solve_cd"]


def _check(P, U, Y, loss, penalty, init):
    loss = get_loss(loss)
    if not isinstance(loss, (SquaredLoss, SoftmaxCrossEntropy)):
        raise ValueError(f"the (C, D) block supports SquaredLoss and SoftmaxCrossEntropy; got "
                         f"loss={loss!r}")
    pen = get_block_penalty(penalty, "penalty")
    U = as_matrix("U", U)
    m, p = U.shape
    if m < 1:
        raise ValueError(f"U must have at least one sample; got shape {U.shape}")
    P = as_matrix("P", P, (m, None))
    Y = as_matrix("Y", Y, (m, None))
    n, q = P.shape[1], Y.shape[1]
    if init is not None:
        try:
            C0, D0, c0 = init
        except (TypeError, ValueError):
            raise ValueError(
                f"init must be a tuple (C, D, c); got {type(init).__name__}") from None
        init = (as_matrix("init C", C0, (q, n)), as_matrix("init D", D0, (q, p)),
                as_vector("init c", c0, q))
    return P, U, Y, loss, pen, init


def solve_cd(P, U, Y, loss, penalty, *, fit_intercept: bool = True, init=None,
             method: str = "fast", tol: float = 1e-8, max_iter: int = 1000) -> BlockResult:
    r"""Solve the (C, D, c) block exactly (theory §7, arXiv (12)).

    .. math::

        \min_{C, D, c}\; \mathcal L(Y, PC^\top + UD^\top + \mathbf 1c^\top)
        + \mathrm{Pen}([C\ D])

    Parameters
    ----------
    P : ndarray of shape (m, n)
        Proxy states (or the true equilibrium X for a final refit).
    U : ndarray of shape (m, p)
    Y : ndarray of shape (m, q)
        Targets (one-hot or probability rows for the cross-entropy).
    loss : Loss or str
        :class:`~lifted_idl.losses.SquaredLoss` or
        :class:`~lifted_idl.losses.SoftmaxCrossEntropy`.
    penalty : Penalty or str
        NoPenalty, L2Penalty or L1Penalty on ``[C D]`` (the intercept is not penalised).
    fit_intercept : bool, default=True
        Fit :math:`c`; otherwise :math:`c = 0`.
    init : tuple (C, D, c), optional
        Warm start; the returned objective is never above the objective at ``init``.
    method : {"fast", "cvxpy"}
    tol : float, default=1e-8
        Iterative solvers: gradient tolerance (Newton-CG: its norm in whitened coordinates;
        L-BFGS-B: the largest projected-gradient entry) or relative duality gap (coordinate
        descent); cvxpy: Clarabel's gap/feasibility tolerances
        (clipped to [1e-10, 1e-6]).
    max_iter : int, default=1000

    Returns
    -------
    BlockResult
        ``value = (C, D, c)`` of shapes (q, n), (q, p), (q,).

    Raises
    ------
    ValueError
        Bad shapes, NaN/inf, unsupported loss or penalty.
    SolverError
        The cvxpy solve failed or was infeasible.
    """
    check_options(method, tol, max_iter)
    P, U, Y, loss, pen, init = _check(P, U, Y, loss, penalty, init)
    n, q = P.shape[1], Y.shape[1]
    if init is not None and not fit_intercept:
        init = (init[0], init[1], np.zeros(q))
    init_obj = None if init is None else _cd_objective(P, U, Y, loss, pen, *init)
    M = np.hstack([P, U])
    if method == "cvxpy":
        W, c, n_iter, conv = _cd_cvxpy(M, Y, loss, pen, fit_intercept, tol, max_iter)
        solver = "cvxpy:CLARABEL"
    elif isinstance(loss, SquaredLoss) and not isinstance(pen, L1Penalty):
        W, c = _ridge_closed_form(M, Y, pen.alpha if isinstance(pen, L2Penalty) else 0.0,
                                  fit_intercept)
        n_iter, conv, solver = 0, True, "closed_form"
    elif isinstance(loss, SquaredLoss):
        W0 = None if init is None else np.hstack([init[0], init[1]])
        W, c, n_iter, conv = _lasso_cd(M, Y, pen.alpha, fit_intercept, W0, tol, max_iter)
        solver = "cd"
    else:
        W0 = None if init is None else np.hstack([init[0], init[1]])
        c0 = None if init is None else init[2]
        if isinstance(pen, L1Penalty) and pen.alpha > 0:
            W, c, n_iter, conv = _softmax_l1_lbfgsb(M, Y, pen.alpha, fit_intercept, W0, c0, tol,
                                                    max_iter)
            solver = "lbfgsb"
        else:
            W, c, n_iter, conv = _softmax_ridge_newton(M, Y, pen.alpha, fit_intercept, W0, c0,
                                                       tol, max_iter)
            solver = "newton_cg"
    C, D = np.ascontiguousarray(W[:, :n]), np.ascontiguousarray(W[:, n:])
    if not fit_intercept:
        c = np.zeros(q)
    obj = _cd_objective(P, U, Y, loss, pen, C, D, c)
    res = BlockResult((C, D, c), float(obj), int(n_iter), bool(conv), solver)
    return keep_better(res, init, init_obj)


# --------------------------------------------------------------------------------------------
# squared loss
# --------------------------------------------------------------------------------------------
def _centre(M, Y, fit_intercept):
    if fit_intercept:
        mbar, ybar = M.mean(axis=0), Y.mean(axis=0)
        return M - mbar, Y - ybar, mbar, ybar
    return M, Y, np.zeros(M.shape[1]), np.zeros(Y.shape[1])


def _ridge_closed_form(M, Y, alpha, fit_intercept):
    r"""Exact minimiser of :math:`\frac1{2m}\|Y - MW^\top - c\|^2 + \frac\alpha2\|W\|^2`."""
    m = M.shape[0]
    Mc, Yc, mbar, ybar = _centre(M, Y, fit_intercept)
    if alpha > 0:
        G = Mc.T @ Mc
        G /= m
        G[np.diag_indices_from(G)] += alpha
        Wt = scipy.linalg.solve(G, Mc.T @ Yc / m, assume_a="pos", check_finite=False)
    else:
        Wt = scipy.linalg.lstsq(Mc, Yc, lapack_driver="gelsy", check_finite=False)[0]
    W = np.ascontiguousarray(Wt.T)
    return W, ybar - W @ mbar


def _lasso_cd(M, Y, alpha, fit_intercept, W0, tol, max_iter):
    r"""Coordinate descent, one output at a time, for
    :math:`\frac1{2m}\|Y - MW^\top - c\|^2 + \alpha\|W\|_1`."""
    from sklearn.linear_model import enet_path

    Mc, Yc, mbar, ybar = _centre(M, Y, fit_intercept)
    Mf = np.asfortranarray(Mc)
    G = np.ascontiguousarray(Mf.T @ Mf)
    MY = Mf.T @ Yc
    q, d = Y.shape[1], M.shape[1]
    W = np.zeros((q, d))
    n_iter, conv = 0, True
    for j in range(q):
        coef0 = None if W0 is None else np.asfortranarray(W0[j])
        _, coefs, gaps, iters = enet_path(
            Mf, np.ascontiguousarray(Yc[:, j]), l1_ratio=1.0, alphas=np.array([alpha]),
            precompute=G, Xy=np.ascontiguousarray(MY[:, j]), coef_init=coef0,
            check_input=False, return_n_iter=True, tol=tol, max_iter=max_iter)
        W[j] = coefs[:, 0]
        n_iter = max(n_iter, int(iters[0]))
        conv &= int(iters[0]) < max_iter
    return W, ybar - W @ mbar, n_iter, conv


# --------------------------------------------------------------------------------------------
# cross-entropy
# --------------------------------------------------------------------------------------------
def _softmax_parts(Mx, Y, W, c):
    """Cross-entropy value, the scaled residual ``G = (softmax - Y)/m`` and the softmax."""
    m = Mx.shape[0]
    Z = Mx @ W.T
    Z += c
    f = float(logsumexp(Z, axis=1).sum() - np.vdot(Y, Z)) / m
    S = softmax(Z, axis=1)
    G = (S - Y) / m
    return f, G, S


def _softmax_ridge_newton(M, Y, alpha, fit_intercept, W0, c0, tol, max_iter):
    r"""Trust-region Newton-CG (SciPy ``trust-ncg``) for :math:`\mathcal L_{CE}(Y, MW^\top + c)
    + \frac\alpha2\|W\|_F^2` in whitened coordinates.

    With :math:`M_c = M - \bar m` (intercept) and the eigendecomposition
    :math:`M_c^\top M_c = V\Sigma^2V^\top`, the variables :math:`\tilde W = W V_r\Sigma_r/\sqrt m`
    see the design :math:`\tilde M = \sqrt m M_cV_r\Sigma_r^{-1}` (:math:`\tilde M^\top\tilde M
    = mI`), so the Hessian of the loss is at most :math:`\tfrac12 I` and Newton-CG needs few
    inner iterations; the ridge becomes the diagonal :math:`\frac{\alpha m}{2}\sum_j
    \|\tilde W_{:,j}\|^2/\sigma_j^2`. Directions in the null space of :math:`M_c` do not change
    the loss and are set to 0 (the ridge's choice, and the minimum-norm one without it).
    """
    m, d = M.shape
    q = Y.shape[1]
    if fit_intercept:
        mbar = M.mean(axis=0)
        Mc = M - mbar
    else:
        mbar = np.zeros(d)
        Mc = M
    ev, V = np.linalg.eigh(Mc.T @ Mc)
    keep = ev > max(float(ev[-1]) if d else 0.0, 1e-300) * d * np.finfo(float).eps
    Vr, sv = V[:, keep], np.sqrt(ev[keep])
    r = Vr.shape[1]
    to_w = Vr * (np.sqrt(m) / sv)  # W = Wt @ to_w.T
    Mt = (Mc @ Vr) * (np.sqrt(m) / sv)
    pw = alpha * m / sv ** 2  # ridge weights of the whitened columns
    nw = q * r
    ni = q if fit_intercept else 0
    if W0 is None:
        W0, c0 = np.zeros((q, d)), np.zeros(q)
    x0 = np.concatenate([(W0 @ Vr * (sv / np.sqrt(m))).ravel(),
                         (c0 + W0 @ mbar)[:ni]])
    zero_c = np.zeros(q)

    def unpack(v):
        return v[:nw].reshape(q, r), (v[nw:] if ni else zero_c)

    def fun(v):
        Wt, c = unpack(v)
        f, G, _ = _softmax_parts(Mt, Y, Wt, c)
        f += 0.5 * float(np.vdot(Wt * pw, Wt))
        gW = G.T @ Mt + Wt * pw
        return f, np.concatenate([gW.ravel(), G.sum(axis=0)[:ni]])

    def hessp(v, s):
        Wt, c = unpack(v)
        Z = Mt @ Wt.T
        Z += c
        S = softmax(Z, axis=1)
        sW, sc = unpack(s)
        dZ = Mt @ sW.T
        dZ += sc
        T = S * dZ
        T -= S * T.sum(axis=1, keepdims=True)
        T /= m
        return np.concatenate([(T.T @ Mt + sW * pw).ravel(), T.sum(axis=0)[:ni]])

    res = scipy.optimize.minimize(fun, x0, jac=True, hessp=hessp, method="trust-ncg",
                                  options={"maxiter": max_iter, "gtol": tol})
    Wt, c = unpack(res.x)
    W = Wt @ to_w.T
    c = c - W @ mbar if fit_intercept else np.zeros(q)
    # optimality in the original coordinates
    _, G, _ = _softmax_parts(M, Y, W, c)
    kkt = max(float(np.abs(G.T @ M + alpha * W).max(initial=0.0)),
              float(np.abs(G.sum(axis=0)).max(initial=0.0)) if fit_intercept else 0.0)
    conv = bool(res.success) or kkt <= 10 * tol
    return W, np.array(c, dtype=np.float64), int(res.nit), conv


def _softmax_l1_lbfgsb(M, Y, alpha, fit_intercept, W0, c0, tol, max_iter):
    r"""L-BFGS-B for :math:`\mathcal L_{CE}(Y, MW^\top + c) + \alpha\|W\|_1` on the split
    :math:`W = (W^+ - W^-)\,\mathrm{diag}(1/s)`, :math:`W^\pm \ge 0`, with the design columns
    scaled to unit root-mean-square :math:`s` (a diagonal preconditioner that keeps the bound
    structure; the penalty becomes :math:`\alpha\sum_j (W^+_{:,j} + W^-_{:,j})/s_j`)."""
    m, d = M.shape
    q = Y.shape[1]
    if fit_intercept:
        mbar = M.mean(axis=0)
        Mc = M - mbar
    else:
        mbar = np.zeros(d)
        Mc = M
    cn = np.sqrt((Mc * Mc).mean(axis=0))
    cn[cn <= 0] = 1.0
    Ms = Mc / cn
    wpen = np.broadcast_to(alpha / cn, (q, d)).ravel()
    nw = q * d
    ni = q if fit_intercept else 0
    if W0 is None:
        W0, c0 = np.zeros((q, d)), np.zeros(q)
    Ws0 = W0 * cn
    x0 = np.concatenate([np.maximum(Ws0, 0).ravel(), np.maximum(-Ws0, 0).ravel(),
                         (c0 + W0 @ mbar)[:ni]])
    zero_c = np.zeros(q)

    def fun(v):
        Ws = (v[:nw] - v[nw:2 * nw]).reshape(q, d)
        f, G, _ = _softmax_parts(Ms, Y, Ws, v[2 * nw:] if ni else zero_c)
        f += float(wpen @ (v[:nw] + v[nw:2 * nw]))
        g = (G.T @ Ms).ravel()
        return f, np.concatenate([g + wpen, wpen - g, G.sum(axis=0)[:ni]])

    bounds = [(0.0, None)] * (2 * nw) + [(None, None)] * ni
    res = scipy.optimize.minimize(
        fun, x0, jac=True, method="L-BFGS-B", bounds=bounds,
        options={"maxiter": max_iter, "gtol": tol, "ftol": 1e-15, "maxcor": 20, "maxls": 50})
    v = res.x
    W = (v[:nw] - v[nw:2 * nw]).reshape(q, d) / cn
    c = (v[2 * nw:] - W @ mbar) if fit_intercept else np.zeros(q)
    # subgradient optimality in the original coordinates
    _, G, _ = _softmax_parts(M, Y, W, c)
    gW = G.T @ M
    r = np.where(W == 0, np.maximum(np.abs(gW) - alpha, 0.0), np.abs(gW + alpha * np.sign(W)))
    kkt = max(float(r.max(initial=0.0)),
              float(np.abs(G.sum(axis=0)).max(initial=0.0)) if fit_intercept else 0.0)
    conv = bool(res.success) or kkt <= 10 * tol
    return W, np.array(c, dtype=np.float64), int(res.nit), conv


# --------------------------------------------------------------------------------------------
# cvxpy formulation
# --------------------------------------------------------------------------------------------
def _cd_cvxpy(M, Y, loss, pen, fit_intercept, tol, max_iter):
    import cvxpy as cp

    m, d = M.shape
    q = Y.shape[1]
    W = cp.Variable((q, d), name="W")
    Yhat = M @ W.T
    c = None
    if fit_intercept:
        c = cp.Variable(q, name="c")
        Yhat = Yhat + np.ones((m, 1)) @ cp.reshape(c, (1, q), order="C")
    prob = cp.Problem(cp.Minimize(loss.cvxpy(Y, Yhat) + pen.cvxpy(W)))
    conv, n_iter = solve_cvxpy(prob, "(C, D)", tol, max_iter)
    Wv = np.array(W.value, dtype=np.float64)
    cv = np.array(c.value, dtype=np.float64).reshape(q) if fit_intercept else np.zeros(q)
    return Wv, cv, n_iter, conv
