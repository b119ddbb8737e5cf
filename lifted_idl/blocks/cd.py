r"""The (C, D, c) block of BCD: a (regularised) linear fit of Y on the proxy states P and U.

.. math::

    \min_{C, D, c}\; \mathcal L(Y, PC^\top + UD^\top + \mathbf 1c^\top) + \mathrm{Pen}([C\ D])

(theory §8; arXiv §4.2, eq. (12) with a penalty instead of the l1-ball). With the design
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
* cross-entropy, no penalty or ridge: Newton's method on :math:`(W, c)` in whitened
  coordinates (the centred design's Gram matrix becomes :math:`mI`), each step solved with
  the explicit Hessian (few variables) or by conjugate gradients on exact Hessian-vector
  products preconditioned by the Hessian's diagonal (:func:`_softmax_newton_cg`);
* the group penalty [IDL (5.1)] seen by this block (:meth:`GroupPenalty.restrict
  <lifted_idl.penalties.GroupPenalty.restrict>`: :math:`\alpha\sum_j\|(De_j; Be_j)\|_r`, B
  fixed): for the squared loss, C is eliminated in closed form and FISTA runs on D against the
  Schur complement of the Gram matrix (:func:`_cd_group_squared`); for the cross-entropy a face
  Newton method (l2 group norm, :func:`_cd_group_newton`) or FISTA (l-inf,
  :func:`_cd_group_fista`), all with the exact group prox;
* cross-entropy, l1: L-BFGS-B on the split :math:`W = W^+ - W^-`, :math:`W^\pm \ge 0`, whose
  objective :math:`\mathcal L + \alpha\,\mathbf 1^\top(W^+ + W^-)` is smooth (the split is
  exact at the optimum, where :math:`W^+ \odot W^- = 0`), with the design columns scaled to unit
  root-mean-square.

The cvxpy formulation (``method="cvxpy"``) is one problem over :math:`(W, c)` with the loss's
and the penalty's own cvxpy expressions, solved by the solver of its class (:mod:`._common`:
OSQP for the squared loss with a zero, ridge, l1 or l-inf group penalty, ECOS with the l2
group norm, Clarabel for the cross-entropy).

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

from .._validation import check_real
from ..losses import (
    SoftmaxCrossEntropy,
    SquaredLoss,
    _row_shift,
    get_loss,
    log_partition_and_softmax,
    logsumexp_rows,
    softmax_rows,
    unit_mean_weights,
)
from ..penalties import GroupView, L1View, L2View, ZeroView
from ._common import (
    BlockResult,
    as_matrix,
    as_vector,
    check_cvxpy_solver,
    check_group_columns,
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
    pen = get_block_penalty(penalty, "penalty", "cd", allow_group=True)
    U = as_matrix("U", U)
    m, p = U.shape
    if m < 1:
        raise ValueError(f"U must have at least one sample; got shape {U.shape}")
    check_group_columns(pen, p, "penalty")
    if isinstance(pen, GroupView) and pen.block != "cd":
        raise ValueError(f"penalty is the (A, B) block's view of the group penalty; the (C, D) "
                         f"block needs group.restrict('cd', {{'B': B}}); got penalty={pen!r}")
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
             method: str = "fast", tol: float = 1e-8, max_iter: int = 1000,
             cvxpy_solver: str | None = None, sample_weight=None,
             rtol: float | None = None) -> BlockResult:
    r"""Solve the (C, D, c) block exactly (theory §8, arXiv (12)).

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
    penalty : Penalty, BlockView or str
        NoPenalty, L2Penalty or L1Penalty, seen on ``[C D]`` (the intercept is not
        penalised), or the group penalty's view of this block,
        ``GroupPenalty(alpha, ord).restrict("cd", {"B": B})``
        (:math:`\alpha\sum_j\|(De_j; Be_j)\|_r` [IDL (5.1)] with B fixed).
    fit_intercept : bool, default=True
        Fit :math:`c`; otherwise :math:`c = 0`.
    init : tuple (C, D, c), optional
        Warm start; the returned objective is never above the objective at ``init``.
    method : {"fast", "cvxpy"}
    tol : float, default=1e-8
        Iterative solvers: gradient tolerance (Newton-CG: its norm in whitened, scaled
        coordinates; L-BFGS-B: the largest projected-gradient entry), relative duality gap
        (coordinate descent), or the prox-gradient residual with per-column steps :math:`1/H_{jj}`
        relative to ``max(1, max|W|)`` (group penalty); cvxpy: the solver's gap/feasibility
        tolerances (clipped to [1e-10, 1e-6]).
    max_iter : int, default=1000
    cvxpy_solver : {None, "CLARABEL", "ECOS", "OSQP", "HIGHS"}, default=None
        With ``method="cvxpy"``: the solver; None picks it by the problem's class (see
        :mod:`lifted_idl.blocks`).
    sample_weight : ndarray of shape (m,), optional
        Non-negative sample weights: the loss becomes the weighted average
        :math:`\frac{1}{\sum_t w_t}\sum_s w_s\ell(y_s, \hat y_s)`
        (:func:`~lifted_idl.losses.unit_mean_weights`; integer weights are repeated samples).
        The squared loss is reduced to an unweighted problem (weighted centring, rows scaled by
        :math:`\sqrt{\tilde w_s}`); the cross-entropy solvers weight each sample's terms.
    rtol : float in (0, 1), optional
        An inexact solve from a warm start: with ``init``, the cross-entropy Newton solvers
        (no penalty or ridge) stop once the gradient's norm (whitened, scaled coordinates, as
        for ``tol``) is at most ``rtol`` times its norm at ``init``, or at most ``tol``. Every
        Newton step is a descent step, so the objective is still below the one at ``init``,
        and as a warm start approaches the optimum the solve becomes as accurate as the exact
        one. For the blocks of BCD, which re-solve (C, D, c) every round from the previous
        round's solution. Without ``init`` (a cold start, where the gradient at zero says
        nothing of the accuracy wanted), with ``method="cvxpy"`` and for the other losses and
        penalties it has no effect: the solve goes to ``tol``. None (the default): the exact
        solve.

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
    rtol = check_real("rtol", rtol, 0.0, 1.0, closed="neither", allow_none=True)
    cvxpy_solver = check_cvxpy_solver(method, cvxpy_solver)
    P, U, Y, loss, pen, init = _check(P, U, Y, loss, penalty, init)
    n, q = P.shape[1], Y.shape[1]
    if init is not None and not fit_intercept:
        init = (init[0], init[1], np.zeros(q))
    w = unit_mean_weights(sample_weight, P.shape[0])
    init_obj = None if init is None else _cd_objective(P, U, Y, loss, pen, *init, w)
    M = np.hstack([P, U])
    Y_orig, fit_c = Y, fit_intercept
    if w is not None and isinstance(loss, SquaredLoss) and method != "cvxpy":
        # weighted least squares = least squares on the weighted-centred rows scaled by
        # sqrt(w): the same objective, without an intercept (restored below)
        M, Y, mbar_w, ybar_w = _weighted_rows(M, Y, w, fit_intercept)
        fit_intercept, w = False, None
    if isinstance(pen, GroupView) and pen.alpha == 0 and method != "cvxpy":
        pen = ZeroView()
    if method == "cvxpy":
        W, c, n_iter, conv, solver = _cd_cvxpy(M, Y, loss, pen, fit_intercept, tol, max_iter,
                                               cvxpy_solver, w)
    else:
        W0 = None if init is None else np.hstack([init[0], init[1]])
        c0 = None if init is None else init[2]
        W, c, n_iter, conv, solver = _solve_fast(M, Y, loss, pen, fit_intercept, W0, c0, tol,
                                                 max_iter, w, None if init is None else rtol)
    C, D = np.ascontiguousarray(W[:, :n]), np.ascontiguousarray(W[:, n:])
    if not fit_intercept:
        c = np.zeros(q)
    if fit_intercept != fit_c:  # the weighted squared loss: the intercept of the centring
        c = ybar_w - W @ mbar_w
    w = unit_mean_weights(sample_weight, P.shape[0])
    obj = _cd_objective(P, U, Y_orig, loss, pen, C, D, c, w)
    res = BlockResult((C, D, c), float(obj), int(n_iter), bool(conv), solver)
    return keep_better(res, init, init_obj)


def _solve_fast(M, Y, loss, pen, fit_intercept, W0, c0, tol, max_iter, w, rtol=None):
    """The package's solver for this loss and penalty on the design ``M = [P U]``; returns
    ``(W, c, n_iter, converged, solver name)``; ``rtol`` (None: exact) is used by the
    cross-entropy Newton solvers only."""
    if isinstance(pen, GroupView) and pen.alpha > 0:
        if isinstance(loss, SquaredLoss):
            return (*_cd_group_squared(M, Y, pen, fit_intercept, W0, tol, max_iter),
                    "group_schur_fista")
        if pen.ord == 2:
            return (*_cd_group_newton(M, Y, loss, pen, fit_intercept, W0, c0, tol, max_iter, w),
                    "group_newton")
        return (*_cd_group_fista(M, Y, loss, pen, fit_intercept, W0, c0, tol, max_iter, w=w),
                "group_fista")
    if isinstance(loss, SquaredLoss) and not isinstance(pen, (L1View, GroupView)):
        W, c = _ridge_closed_form(M, Y, pen.alpha if isinstance(pen, L2View) else 0.0,
                                  fit_intercept)
        return W, c, 0, True, "closed_form"
    if isinstance(loss, SquaredLoss):
        return (*_lasso_cd(M, Y, pen.alpha, fit_intercept, W0, tol, max_iter), "cd")
    if isinstance(pen, L1View) and pen.alpha > 0:
        return (*_softmax_l1_lbfgsb(M, Y, pen.alpha, fit_intercept, W0, c0, tol, max_iter, w),
                "lbfgsb")
    return _softmax_ridge_newton(M, Y, pen.alpha, fit_intercept, W0, c0, tol, max_iter, w=w,
                                 rtol=rtol)


# --------------------------------------------------------------------------------------------
# squared loss
# --------------------------------------------------------------------------------------------
def _weighted_rows(M, Y, w, fit_intercept):
    r"""The unweighted least-squares problem of the weighted one: rows
    :math:`\sqrt{\tilde w_s}(m_s - \bar m_w)`, :math:`\sqrt{\tilde w_s}(y_s - \bar y_w)`
    with the weighted means (zero without an intercept); returns them and the means."""
    m = M.shape[0]
    if fit_intercept:
        mbar, ybar = w @ M / m, w @ Y / m
    else:
        mbar, ybar = np.zeros(M.shape[1]), np.zeros(Y.shape[1])
    r = np.sqrt(w)[:, None]
    return (M - mbar) * r, (Y - ybar) * r, mbar, ybar


def _weighted_centre(M, w, fit_intercept):
    """``M`` centred by its (weighted) column means, and the means."""
    if not fit_intercept:
        return M, np.zeros(M.shape[1])
    mbar = M.mean(axis=0) if w is None else w @ M / M.shape[0]
    return M - mbar, mbar


def _wgram(M, w):
    r""":math:`M^\top\mathrm{diag}(w)M` (:math:`M^\top M` for ``w`` None)."""
    return M.T @ M if w is None else (M * w[:, None]).T @ M


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
def _softmax_parts(Mx, Y, W, c, w=None):
    """Cross-entropy value, the scaled residual ``G = (softmax - Y)/m`` and the softmax
    (``w``: unit-mean sample weights, each sample's terms multiplied by its weight)."""
    m = Mx.shape[0]
    Z = Mx @ W.T
    Z += c
    lse, S = log_partition_and_softmax(Z)
    if w is None:
        f = float(lse.sum() - np.vdot(Y, Z)) / m
        G = (S - Y) / m
    else:
        f = float(w @ (lse - np.einsum("ij,ij->i", Y, Z))) / m
        G = (S - Y) * (w / m)[:, None]
    return f, G, S


def _softmax_ridge_newton(M, Y, alpha, fit_intercept, W0, c0, tol, max_iter, dense_max=100,
                          w=None, rtol=None):
    r"""Newton's method for :math:`\mathcal L_{CE}(Y, MW^\top + c) + \frac\alpha2\|W\|_F^2` in
    whitened coordinates.

    With :math:`M_c = M - \bar m` (intercept) and the eigendecomposition
    :math:`M_c^\top M_c = V\Sigma^2V^\top`, the variables :math:`\tilde W = W V_r\Sigma_r/\sqrt m`
    see the design :math:`\tilde M = \sqrt m M_cV_r\Sigma_r^{-1}` (:math:`\tilde M^\top\tilde M
    = mI`), so the Hessian of the loss is at most :math:`\tfrac12 I`; the ridge becomes the
    diagonal :math:`\frac{\alpha m}{2}\sum_j \|\tilde W_{:,j}\|^2/\sigma_j^2`. Each whitened
    column j is then scaled by :math:`(\tfrac12 + \alpha m/\sigma_j^2)^{-1/2}`, which bounds
    every diagonal entry of the whole Hessian by 1 (a Jacobi-like scaling that needs no
    curvature). Directions in the null space of :math:`M_c` do not change the loss and are set
    to 0 (the ridge's choice, and the minimum-norm one without it).
    With at most ``dense_max`` variables each Newton step solves the explicit Hessian
    (:func:`_softmax_dense_newton`; solver ``"newton"``), with more it runs preconditioned
    conjugate gradients on Hessian-vector products (:func:`_softmax_newton_cg`; solver
    ``"newton_cg"``). With unit-mean sample weights ``w`` the centring and the Gram matrix are
    weighted (:math:`M_c^\top\mathrm{diag}(w)M_c`), and so is every sample's loss term.
    With ``rtol`` the Newton iteration stops at the gradient tolerance ``max(tol, rtol *
    |g_0|)``, :math:`g_0` the (whitened) gradient at the start ``W0, c0`` (:func:`solve_cd`).
    """
    m, d = M.shape
    q = Y.shape[1]
    Mc, mbar = _weighted_centre(M, w, fit_intercept)
    ev, V = np.linalg.eigh(_wgram(Mc, w))
    keep = ev > max(float(ev[-1]) if d else 0.0, 1e-300) * d * np.finfo(float).eps
    Vr, sv = V[:, keep], np.sqrt(ev[keep])
    r = Vr.shape[1]
    # whitened columns, each scaled by 1/sqrt(1/2 + its ridge weight): the loss Hessian is at
    # most I/2 in whitened coordinates, so after the scaling every diagonal entry of the
    # whole Hessian is at most 1 and the strongly regularised directions (small singular
    # values) do not stretch its spectrum upwards. The ill-conditioning left comes from the
    # saturated softmax (small curvature), which the diagonal preconditioner of
    # _softmax_newton_cg addresses (benchmarks/README.md, bench_cd_softmax.py)
    pw = alpha * m / sv ** 2  # ridge weights of the whitened columns
    scale = np.sqrt(m) / sv / np.sqrt(0.5 + pw)
    to_w = Vr * scale  # W = Wt @ to_w.T
    pw = pw / (0.5 + pw)
    nw = q * r
    ni = q if fit_intercept else 0
    # the whitened design with the intercept's column of ones last, written in place: no
    # (m, d) temporaries besides it (each fresh one costs its page faults)
    Ma = np.empty((m, r + (1 if fit_intercept else 0)))
    Mt = Ma[:, :r]
    np.matmul(Mc, Vr, out=Mt)
    Mt *= scale
    del Mc, Mt
    if fit_intercept:
        Ma[:, r] = 1.0
    if W0 is None:
        W0, c0 = np.zeros((q, d)), np.zeros(q)
    x0 = np.concatenate([(W0 @ Vr / scale).ravel(),
                         (c0 + W0 @ mbar)[:ni]])
    dense = nw + ni <= dense_max
    newton = _softmax_dense_newton if dense else _softmax_newton_cg
    xs, nit, ok = newton(Ma, Y, pw, fit_intercept, x0, tol, max_iter, w, rtol,
                         augmented=True)
    Wt, c = xs[:nw].reshape(q, r), (xs[nw:] if ni else np.zeros(q))
    W = Wt @ to_w.T
    c = c - W @ mbar if fit_intercept else np.zeros(q)
    conv = bool(ok) or _softmax_kkt(M, Y, W, c, alpha, fit_intercept, w) <= 10 * tol
    return W, np.array(c, dtype=np.float64), int(nit), conv, "newton" if dense else "newton_cg"


def _softmax_kkt(M, Y, W, c, alpha, fit_intercept, w):
    """The largest entry of the gradient in the original coordinates (optimality of a solve
    that stopped before its whitened gradient met the tolerance)."""
    _, G, _ = _softmax_parts(M, Y, W, c, w)
    return max(float(np.abs(G.T @ M + alpha * W).max(initial=0.0)),
               float(np.abs(G.sum(axis=0)).max(initial=0.0)) if fit_intercept else 0.0)


def _armijo(value, Wa, f, step, slope):
    """Backtracking (Armijo, halving) along ``step`` from ``Wa`` (objective ``f``, directional
    derivative ``slope`` < 0) for the softmax Newton solvers; returns ``(t, f_t, extra_t)`` of
    the last step tried, the one taken (``value`` returns the objective and its softmax)."""
    t = 1.0
    while True:
        fn, extra = value(Wa + t * step)
        if fn <= f + 1e-4 * t * slope or t < 1e-10:
            return t, fn, extra
        t *= 0.5


def _softmax_dense_newton(Mt, Y, pw, fit_intercept, x0, tol, max_iter, w=None, rtol=None,
                          augmented=False):
    r"""Damped Newton with the explicit Hessian, for the whitened problem of
    :func:`_softmax_ridge_newton` when it has few variables (:math:`q(r + 1)` up to about a
    hundred): one Hessian costs :math:`q^2 m r^2/2` flops and a Cholesky solve, against the
    few dozen Hessian-vector products (each a Python call) that :func:`_softmax_newton_cg`
    spends per solve. The Hessian of :math:`\frac1m\sum_i \mathrm{lse}(z_i) - y_i^\top z_i` in
    class blocks is :math:`H_{kl} = \tilde M_a^\top\mathrm{diag}(s_k\delta_{kl} - s_k s_l)\tilde
    M_a/m` on :math:`\tilde M_a = [\tilde M\ \mathbf 1]` (the column of ones for the
    intercept), plus the ridge's diagonal. Its null direction (the same shift of every
    class's intercept) is orthogonal to the gradient, so a tiny diagonal shift makes the
    Cholesky factorisation safe without changing the step. Steps are backtracked (Armijo);
    stops when the gradient's 2-norm is at most ``tol`` (SciPy's ``gtol``), or at most
    ``rtol`` times its norm at ``x0`` (an inexact solve; None: exact).

    ``x0`` and the returned point use :func:`_softmax_ridge_newton`'s packing
    (the q×r weights row by row, then the q intercepts); ``w``: unit-mean sample weights;
    ``augmented``: ``Mt`` already holds the intercept's column of ones last."""
    ni = 1 if fit_intercept else 0
    m, r = Mt.shape[0], Mt.shape[1] - (ni if augmented else 0)
    ws = None if w is None else w / m
    q = Y.shape[1]
    ra = r + ni
    Ma = Mt if augmented or not ni else np.hstack([Mt, np.ones((m, 1))])
    pa = np.concatenate([pw, np.zeros(ni)])
    Wa = np.empty((q, ra))
    Wa[:, :r] = x0[: q * r].reshape(q, r)
    if ni:
        Wa[:, r] = x0[q * r:]

    def value(Wa):
        Z = Ma @ Wa.T
        if w is None:
            f = float(logsumexp_rows(Z).sum() - np.vdot(Y, Z)) / m
        else:
            f = float(ws @ (logsumexp_rows(Z) - np.einsum("ij,ij->i", Y, Z)))
        return f + 0.5 * float(np.vdot(Wa * pa, Wa)), Z

    f, Z = value(Wa)
    ok, it = False, 0
    for it in range(max_iter + 1):
        S = softmax_rows(Z)
        g = (((S - Y) / m) if w is None else (S - Y) * ws[:, None]).T @ Ma + Wa * pa
        if it == 0:
            tol = _relative_tol(tol, rtol, g)
        if float(np.linalg.norm(g)) <= tol:
            ok = True
            break
        if it == max_iter:
            break
        H = np.empty((q, ra, q, ra))
        for k in range(q):
            for l in range(k, q):
                wk = S[:, k] * ((k == l) - S[:, l])
                wk = wk / m if w is None else wk * ws
                blk = Ma.T @ (Ma * wk[:, None])
                H[k, :, l, :] = blk
                if l != k:
                    H[l, :, k, :] = blk.T
            H[k, :, k, :] += np.diag(pa)
        H = H.reshape(q * ra, q * ra)
        H[np.diag_indices_from(H)] += 1e-12 * max(1.0, float(np.abs(np.diag(H)).max()))
        try:
            step = -scipy.linalg.cho_solve(scipy.linalg.cho_factor(H), g.ravel())
        except np.linalg.LinAlgError:
            step = -np.linalg.lstsq(H, g.ravel(), rcond=None)[0]
        step = step.reshape(q, ra)
        slope = float(np.vdot(g, step))
        if not slope < 0:
            break
        t, fn, Zn = _armijo(value, Wa, f, step, slope)
        if not fn < f:  # no decrease left at double precision: stationary up to rounding
            ok = float(np.linalg.norm(g)) <= 1e3 * tol
            break
        Wa, f, Z = Wa + t * step, fn, Zn
    x = np.concatenate([Wa[:, :r].ravel(), Wa[:, r] if ni else np.zeros(0)])
    return x, it, ok


def _softmax_newton_cg(Mt, Y, pw, fit_intercept, x0, tol, max_iter, w=None, rtol=None,
                       augmented=False):
    r"""Newton-CG for the whitened problem of :func:`_softmax_ridge_newton` when it has many
    variables (``Mt``, ``pw``, ``x0``, ``augmented`` and the returned point as for
    :func:`_softmax_dense_newton`; ``w``: unit-mean sample weights).

    Each Newton step runs conjugate gradients on exact Hessian-vector products
    (:func:`_softmax_pcg`) to the relative residual :math:`\min(\tfrac12, \|g\|^{1/2})`
    (superlinear convergence, the forcing of Nocedal & Wright 2006, Algorithm 7.1; theory
    §10), but not below the absolute residual ``tol / 2`` (the last step need not solve its
    system more accurately than the gradient the solve stops at). CG is preconditioned by the
    Hessian's diagonal
    :math:`\mathrm{diag}(H)_{kj} = \sum_i w_is_{ik}(1 - s_{ik})\tilde m_{ij}^2/m + a_j`
    (:math:`a` the ridge weights), which costs one product with the design. Whitening leaves
    the Hessian ill-conditioned where the softmax saturates (classes whose probabilities are
    near 0 or 1 on most samples have small curvature); the diagonal captures that per class
    and column (measured effect: benchmarks/README.md, ``bench_cd_softmax.py``).

    Steps are backtracked (Armijo); stops when the gradient's 2-norm is at most ``tol`` (with
    ``rtol``: at most ``max(tol, rtol * |g_0|)``, :math:`g_0` the gradient at ``x0``, an
    inexact solve whose CG systems are solved no further than that tolerance either), or
    when no step decreases the objective at double precision (converged if the gradient is
    then at most ``1e3 * tol``). Returns ``(x, n_iter, converged)``.

    With ``rtol`` the CG products with the Hessian (and its diagonal) are computed in single
    precision: their relative rounding, about :math:`10^{-7}`, is far below the relative
    residual CG is asked for (at least ``rtol / 2``), while the gradient, the objective and
    the Armijo test stay in double precision, so every step is still a checked descent step
    (half the cost of the products; the exact solve keeps double precision throughout).
    """
    ni = 1 if fit_intercept else 0
    m, r = Mt.shape[0], Mt.shape[1] - (ni if augmented else 0)
    q = Y.shape[1]
    Ma = Mt if augmented or not ni else np.hstack([Mt, np.ones((m, 1))])
    # the products of CG: single precision for an inexact solve (see above)
    Mh = Ma.astype(np.float32) if rtol is not None else Ma
    Mh2 = np.square(Mh)
    pa = np.concatenate([pw, np.zeros(ni)])
    Wa = np.empty((q, r + ni))
    Wa[:, :r] = x0[: q * r].reshape(q, r)
    if ni:
        Wa[:, r] = x0[q * r:]
    ws = np.full(m, 1.0 / m) if w is None else w / m
    Yw = Y * ws[:, None]
    ones = np.ones(q)

    def value(Wa):  # the objective and the softmax, from one exponential
        Z = Ma @ Wa.T
        f = 0.5 * float(np.vdot(Wa * pa, Wa)) - float(np.vdot(Yw, Z))
        zmax = _row_shift(Z)
        Z -= zmax[:, None]
        E = np.exp(Z, out=Z)
        tot = E @ ones  # a product: faster than a reduction over short rows
        f += float(ws @ (np.log(tot) + zmax))
        E /= tot[:, None]
        return f, E

    f, S = value(Wa)
    ok, it = False, 0
    for it in range(max_iter + 1):
        Sw = S * ws[:, None]
        g = (Sw - Yw).T @ Ma + Wa * pa
        gn = float(np.linalg.norm(g))
        if it == 0:
            tol = _relative_tol(tol, rtol, g)
        if gn <= tol:
            ok = True
            break
        if it == max_iter:
            break
        # the forcing min(1/2, |g|^(1/2))|g|, but never below tol/2: the next gradient is
        # about the CG residual, and a residual under tol/2 ends the solve at that step
        step = _softmax_pcg(Mh, Mh2, S, Sw, pa, g, max(0.5 * tol, min(0.5, np.sqrt(gn)) * gn))
        slope = float(np.vdot(g, step))
        if not slope < 0:
            break
        t, fn, Sn = _armijo(value, Wa, f, step, slope)
        if not fn < f:  # no decrease left at double precision: stationary up to rounding
            ok = gn <= 1e3 * tol
            break
        Wa, f, S = Wa + t * step, fn, Sn
    return np.concatenate([Wa[:, :r].ravel(), Wa[:, r] if ni else np.zeros(0)]), it, ok


def _relative_tol(tol, rtol, g0):
    """The gradient tolerance of a Newton solve from a point of gradient ``g0``: ``tol``, or
    with ``rtol`` (an inexact solve) ``max(tol, rtol * |g0|)``."""
    return tol if rtol is None else max(tol, rtol * float(np.linalg.norm(g0)))


def _softmax_pcg(Ma, Ma2, S, Sw, pa, g, eps):
    r"""An approximate Newton step: conjugate gradients on :math:`Hs = -g` from 0, with the
    Hessian's diagonal as preconditioner, until the residual's 2-norm is at most ``eps`` (or
    after as many iterations as variables). ``Ma2``: the squared design, ``Sw``: the softmax
    times the sample weights over m. Every iterate from 0 is a descent direction. The products
    with the design are computed in its precision (``Ma`` in single precision: see
    :func:`_softmax_newton_cg`); the CG vectors stay in double precision."""
    dt = Ma.dtype
    S, Sw = S.astype(dt, copy=False), Sw.astype(dt, copy=False)
    dg = (Sw * (1.0 - S)).T @ Ma2 + pa
    pinv = 1.0 / np.maximum(dg, 1e-12 * max(float(dg.max(initial=0.0)), 1e-300))
    ones = np.ones(g.shape[0], dtype=dt)

    def hvp(P):
        T = Ma @ P.T.astype(dt, copy=False)
        T *= Sw
        T -= S * (T @ ones)[:, None]
        Hp = (T.T @ Ma).astype(np.float64, copy=False)
        Hp += P * pa
        return Hp

    s = np.zeros_like(g)
    res = -g
    z = pinv * res
    p = z.copy()
    rz = float(np.vdot(res, z))
    for _ in range(g.size):
        Hp = hvp(p)
        pHp = float(np.vdot(p, Hp))
        if not pHp > 0:  # no curvature left along p (rounding): keep the step so far
            if not s.any():
                s = p
            break
        a = rz / pHp
        s += a * p
        res -= a * Hp
        if float(np.linalg.norm(res)) <= eps:
            break
        z = pinv * res
        rz_new = float(np.vdot(res, z))
        p *= rz_new / rz
        p += z
        rz = rz_new
    return s


def _softmax_l1_lbfgsb(M, Y, alpha, fit_intercept, W0, c0, tol, max_iter, w=None):
    r"""L-BFGS-B for :math:`\mathcal L_{CE}(Y, MW^\top + c) + \alpha\|W\|_1` on the split
    :math:`W = (W^+ - W^-)\,\mathrm{diag}(1/s)`, :math:`W^\pm \ge 0`, with the design columns
    scaled to unit root-mean-square :math:`s` (a diagonal preconditioner that keeps the bound
    structure; the penalty becomes :math:`\alpha\sum_j (W^+_{:,j} + W^-_{:,j})/s_j`)."""
    m, d = M.shape
    q = Y.shape[1]
    Mc, mbar = _weighted_centre(M, w, fit_intercept)
    cn = np.sqrt((Mc * Mc).mean(axis=0) if w is None else w @ (Mc * Mc) / m)
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
        f, G, _ = _softmax_parts(Ms, Y, Ws, v[2 * nw:] if ni else zero_c, w)
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
    _, G, _ = _softmax_parts(M, Y, W, c, w)
    gW = G.T @ M
    r = np.where(W == 0, np.maximum(np.abs(gW) - alpha, 0.0), np.abs(gW + alpha * np.sign(W)))
    kkt = max(float(r.max(initial=0.0)),
              float(np.abs(G.sum(axis=0)).max(initial=0.0)) if fit_intercept else 0.0)
    conv = bool(res.success) or kkt <= 10 * tol
    return W, np.array(c, dtype=np.float64), int(res.nit), conv


# --------------------------------------------------------------------------------------------
# the group penalty [IDL (5.1)]
# --------------------------------------------------------------------------------------------
def _cd_group_fista(M, Y, loss, pen, fit_intercept, W0, c0, tol, max_iter,
                    check_every: int = 5, w=None):
    r"""FISTA (function-value restarts) for :math:`\mathcal L(Y, MW^\top + c) +
    \alpha\sum_j\|(W_{:,n+j}; F e_j)\|_r` (the group penalty with B fixed), for the
    cross-entropy (the squared loss goes to :func:`_cd_group_squared`).

    The intercept is a free variable against the centred design. The step is :math:`1/L`,
    :math:`L = \beta\lambda_{\max}(M_c^\top M_c/m)` (:math:`\beta` the loss smoothness,
    1/2 for the cross-entropy; with the intercept column the eigenvalue is at least 1). The
    prox of the unpenalised C columns is the identity and of the D columns the exact group prox
    (:class:`~lifted_idl.penalties.GroupView`).
    Stops when the prox-gradient residual with per-column steps :math:`1/(\beta G_{jj})`
    (inverse curvature of column j) is at most ``tol * max(1, max|W|)``.
    """
    m, d = M.shape
    q = Y.shape[1]
    p = pen.n_groups
    k0 = d - p
    beta = float(getattr(loss, "smoothness", 1.0))
    Mc, mbar = _weighted_centre(M, w, fit_intercept)
    G = _wgram(Mc, w) / m
    free_c = fit_intercept
    ridge = pen.ridge  # on the C columns, in the smooth part
    L = beta * max(float(np.linalg.eigvalsh(G)[-1]) if d else 0.0, 1.0 if free_c else 0.0)
    L = max(L + ridge, 1e-300)
    t = 1.0 / L
    gdiag = beta * np.diag(G).copy()
    gdiag[:k0] += ridge
    col_steps = np.where(gdiag > 0, 1.0 / np.maximum(gdiag, 1e-300), t)
    col_steps = np.maximum(col_steps, t)
    def smooth(W, c):
        Yh = Mc @ W.T
        Yh += c
        f = loss.value(Y, Yh, sample_weight=w)
        R = loss.grad(Y, Yh, sample_weight=w)
        return f, R.T @ Mc, R.sum(axis=0)

    def value(W, c):
        f, gW, gc = smooth(W, c)
        return f + pen.value_part(W[:, k0:]), gW, gc

    if ridge:
        plain = smooth

        def smooth(W, c):
            f, gW, gc = plain(W, c)
            C = W[:, :k0]
            gW = gW.copy()
            gW[:, :k0] += ridge * C
            return f + 0.5 * ridge * float(np.vdot(C, C)), gW, gc

    def prox_step(W, gW, steps_cols):
        V = W - gW * steps_cols[None, :]
        V[:, k0:] = pen.prox_part(V[:, k0:], steps_cols[k0:])
        return V

    W = np.zeros((q, d)) if W0 is None else np.array(W0, dtype=np.float64)
    c = np.zeros(q)
    if free_c:
        c = (np.zeros(q) if c0 is None else np.asarray(c0, dtype=np.float64)) + W @ mbar
    tvec = np.full(d, t)
    f_cur, _, _ = value(W, c)
    Wy, cy, theta = W.copy(), c.copy(), 1.0
    converged = False
    n_iter = 0
    for k in range(1, max_iter + 1):
        n_iter = k
        _, gW, gc = smooth(Wy, cy)
        Wn = prox_step(Wy, gW, tvec)
        cn = cy - t * gc if free_c else cy
        fn = value(Wn, cn)[0]
        if fn > f_cur:  # restart from the last iterate with a plain prox-gradient step
            _, gW, gc = smooth(W, c)
            Wn = prox_step(W, gW, tvec)
            cn = c - t * gc if free_c else c
            fn = value(Wn, cn)[0]
            theta = 1.0
            Wy, cy = Wn, cn
        else:
            th_new = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * theta * theta))
            mom = (theta - 1.0) / th_new
            Wy = Wn + mom * (Wn - W)
            cy = cn + mom * (cn - c) if free_c else cn
            theta = th_new
        W, c, f_cur = Wn, cn, fn
        if k % check_every == 0 or k == max_iter:
            _, gW, gc = smooth(W, c)
            V = prox_step(W, gW, col_steps)
            res = float(np.abs(V - W).max(initial=0.0))
            if free_c:
                res = max(res, float(np.abs(gc).max(initial=0.0)) / beta)
            if res <= tol * max(1.0, float(np.abs(W).max(initial=0.0))):
                converged = True
                break
    if fit_intercept:
        c = c - W @ mbar
    return W, np.asarray(c, dtype=np.float64), n_iter, converged


class _GroupCD:
    r"""The (C, D, c) block with a :class:`~lifted_idl.penalties.GroupView` on D, for the
    cross-entropy (the squared loss goes to :func:`_cd_group_squared`).

    Variables :math:`V = [W\ c']` (the intercept column with an intercept, against the centred
    design).
    """

    def __init__(self, M, Y, loss, pen, fit_intercept, w=None):
        m, d = M.shape
        self.w = w  # unit-mean sample weights or None
        self.m, self.d, self.q = m, d, Y.shape[1]
        self.p = pen.n_groups
        self.k0 = d - self.p
        self.loss, self.pen, self.Y = loss, pen, Y
        self.beta = float(getattr(loss, "smoothness", 1.0))
        Mc, self.mbar = _weighted_centre(M, w, fit_intercept)
        self.free_c = fit_intercept
        self.Mx = np.hstack([Mc, np.ones((m, 1))]) if self.free_c else Mc
        self.dx = self.Mx.shape[1]
        self.G = _wgram(self.Mx, w) / m
        self.ridge = pen.ridge  # on the C columns
        L = self.beta * (float(np.linalg.eigvalsh(self.G)[-1]) if self.dx else 0.0)
        L += self.ridge
        self.t_safe = 1.0 / max(L, 1e-300)
        gd = self.beta * np.diag(self.G)
        gd[:self.k0] += self.ridge
        st = np.where(gd > 0, 1.0 / np.maximum(gd, 1e-300), self.t_safe)
        self.col_steps = np.maximum(st, self.t_safe)

    def smooth(self, V):
        """Loss (plus the ridge on C) value and gradient (q, dx)."""
        Yh = self.Mx @ V.T
        f = self.loss.value(self.Y, Yh, sample_weight=self.w)
        g = self.loss.grad(self.Y, Yh, sample_weight=self.w).T @ self.Mx
        if self.ridge:
            C = V[:, :self.k0]
            f += 0.5 * self.ridge * float(np.vdot(C, C))
            g[:, :self.k0] += self.ridge * C
        return f, g

    def value(self, V):
        return self.smooth(V)[0] + self.pen.value_part(V[:, self.k0:self.k0 + self.p])

    def hessian(self, V):
        """Hessian of the loss in ``vec(V)`` (row-major: output k, column j at k*dx + j)."""
        q, dx = self.q, self.dx
        S = softmax_rows(self.Mx @ V.T)
        H4 = np.empty((q, dx, q, dx))
        for k in range(q):
            for l_ in range(k, q):
                wk = S[:, k] * ((k == l_) - S[:, l_])
                if self.w is not None:
                    wk = wk * self.w
                blk = (self.Mx * wk[:, None]).T @ self.Mx / self.m
                H4[k, :, l_, :] = blk
                H4[l_, :, k, :] = blk.T
        H = H4.reshape(q * dx, q * dx)
        if self.ridge:
            idx = (np.arange(q)[:, None] * dx + np.arange(self.k0)[None, :]).ravel()
            H[idx, idx] += self.ridge
        return H

    def prox_step(self, V, g, steps):
        """Prox-gradient point with one step per column (the C columns, whose ridge is in the
        smooth part, and the intercept have no prox; the D columns go through the exact group
        prox)."""
        k0, p = self.k0, self.p
        Vn = V - g * steps[None, :]
        Vn[:, k0:k0 + p] = self.pen.prox_part(Vn[:, k0:k0 + p], steps[k0:k0 + p])
        return Vn

    def to_internal(self, W, c):
        V = np.array(W, dtype=np.float64)
        if self.free_c:
            V = np.hstack([V, (c + W @ self.mbar)[:, None]])
        return V

    def from_internal(self, V):
        W = np.ascontiguousarray(V[:, :self.d])
        if self.free_c:
            c = V[:, self.d] - W @ self.mbar
        else:
            c = np.zeros(self.q)
        return W, np.asarray(c, dtype=np.float64)


def _cd_group_squared(M, Y, pen, fit_intercept, W0, tol, max_iter, check_every: int = 5):
    r"""Squared loss with the group penalty on D: C eliminated exactly, FISTA on D.

    With :math:`G = M_c^\top M_c/m`, :math:`R = Y_c^\top M_c/m` (centred, so the intercept is
    :math:`\bar y - W\bar m`) and :math:`\beta` the ridge on C, the objective
    :math:`\tfrac12\mathrm{tr}(WGW^\top) - \mathrm{tr}(WR^\top) + \tfrac\beta2\|C\|^2 +
    \alpha\sum_j\rho_j(D)` is quadratic in the unpenalised C, minimised at
    :math:`C = (R_C - DG_{DC})K`, :math:`K = (G_{CC} + \beta I)^{+}` (pseudo-inverse: the
    minimum-norm C when the states are collinear). What is left is a group lasso in D with the
    Schur complement :math:`S = G_{DD} - G_{DC}KG_{CD}` (the Gram matrix of the inputs with the
    states projected out) and the linear term :math:`R_D - R_CKG_{CD}`. Eliminating C removes
    the ill-conditioning of strongly correlated states (and the flat directions where a state
    is an affine function of the inputs); FISTA with function-value restarts and the exact group
    prox then solves the reduced problem, stopping when the prox-gradient residual with
    per-column steps :math:`1/S_{jj}` is at most ``tol * max(1, max|W|)``.
    """
    m, d = M.shape
    q = Y.shape[1]
    p = pen.n_groups
    k0 = d - p
    if fit_intercept:
        mbar, ybar = M.mean(axis=0), Y.mean(axis=0)
        Mc, Yc = M - mbar, Y - ybar
    else:
        mbar, ybar = np.zeros(d), np.zeros(q)
        Mc, Yc = M, Y
    G = Mc.T @ Mc / m
    R = Yc.T @ Mc / m
    Gcc = G[:k0, :k0] + pen.ridge * np.eye(k0)
    Gcd = G[:k0, k0:]
    if k0:
        ev, Q = np.linalg.eigh(Gcc)
        keep = ev > max(float(ev[-1]), 1e-300) * k0 * np.finfo(float).eps
        K = (Q[:, keep] / ev[keep]) @ Q[:, keep].T
    else:
        K = np.zeros((0, 0))
    KGcd = K @ Gcd
    S = G[k0:, k0:] - Gcd.T @ KGcd
    S = 0.5 * (S + S.T)
    Rd = R[:, k0:] - R[:, :k0] @ KGcd
    L = max(float(np.linalg.eigvalsh(S)[-1]) if p else 0.0, 1e-300)
    t = 1.0 / L
    sd = np.diag(S).copy()
    col_steps = np.maximum(np.where(sd > 0, 1.0 / np.maximum(sd, 1e-300), t), t)

    def smooth(D):
        DS = D @ S
        return 0.5 * float(np.vdot(D, DS)) - float(np.vdot(D, Rd)), DS - Rd

    def value(D):
        return smooth(D)[0] + pen.value_part(D)

    D = np.zeros((q, p)) if W0 is None else np.array(W0[:, k0:], dtype=np.float64)
    f_cur = value(D)
    Dy, theta = D.copy(), 1.0
    converged = False
    n_iter = 0
    tvec = np.full(p, t)
    for k in range(1, max_iter + 1):
        n_iter = k
        _, g = smooth(Dy)
        Dn = pen.prox_part(Dy - t * g, tvec)
        fn = value(Dn)
        if fn > f_cur:  # restart: a plain prox-gradient step from the last iterate
            _, g = smooth(D)
            Dn = pen.prox_part(D - t * g, tvec)
            fn = value(Dn)
            theta = 1.0
            Dy = Dn
        else:
            th_new = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * theta * theta))
            Dy = Dn + ((theta - 1.0) / th_new) * (Dn - D)
            theta = th_new
        D, f_cur = Dn, fn
        if k % check_every == 0 or k == max_iter:
            _, g = smooth(D)
            res = float(np.abs(pen.prox_part(D - g * col_steps, col_steps) - D).max(initial=0.0))
            C = (R[:, :k0] - D @ Gcd.T) @ K
            scale = max(1.0, float(np.abs(D).max(initial=0.0)),
                        float(np.abs(C).max(initial=0.0)))
            if res <= tol * scale:
                converged = True
                break
    C = (R[:, :k0] - D @ Gcd.T) @ K
    W = np.hstack([C, D])
    c = ybar - W @ mbar if fit_intercept else np.zeros(q)
    return W, c, n_iter, converged


def _residual_halved(prob: _GroupCD, V, Vp, Vt) -> bool:
    """Whether the prox-gradient residual at ``Vt`` is at most half of that at ``V``."""
    _, gt = prob.smooth(Vt)
    rt = float(np.abs(prob.prox_step(Vt, gt, prob.col_steps) - Vt).max(initial=0.0))
    return rt <= 0.5 * float(np.abs(Vp - V).max(initial=0.0))


def _face_newton_step(prob, V, g, Vp, damp):
    """The Newton step of :func:`_cd_group_newton` on the face of the prox-gradient point
    ``Vp`` (Levenberg–Marquardt damping ``damp``); returns the step and its slope (<= 0) along
    the face's gradient."""
    q, dx, k0, p = prob.q, prob.dx, prob.k0, prob.p
    alpha, delta = prob.pen.alpha, prob.pen.fixed_norms
    cols = np.arange(k0, k0 + p)
    VD = V[:, cols]
    bn = np.sqrt((VD * VD).sum(axis=0))
    fcol = np.any(Vp[:, cols] != 0, axis=0) | (delta > 0)
    entering = fcol & (bn == 0) & (delta == 0)
    Dt = np.where(entering[None, :], Vp[:, cols], VD)
    rho = np.sqrt((Dt * Dt).sum(axis=0) + delta * delta)
    H = prob.hessian(V)
    Hd = np.diag(H)
    # groups whose penalty curvature alpha/rho dwarfs the loss's (norm near 0) are frozen
    # for this step: their Newton move is negligible and the prox fallback handles them
    frozen = fcol & (alpha > 1e12 * max(float(Hd.mean()) if Hd.size else 0.0,
                                        1e-300) * rho)
    J = np.flatnonzero(fcol & ~frozen)
    gf = g.copy()
    gf[:, cols[J]] += alpha * Dt[:, J] / rho[J]
    free = np.ones((q, dx), dtype=bool)
    free[:, cols] = (fcol & ~frozen)[None, :]
    for j in J:  # penalty Hessian of group j (couples the outputs in column j)
        idx = np.arange(q) * dx + cols[j]
        u = Dt[:, j] / rho[j]
        H[np.ix_(idx, idx)] += (alpha / rho[j]) * (np.eye(q) - np.outer(u, u))
    fv = free.ravel()
    dz = np.where(free, 0.0, -V)
    dz[:, cols[frozen]] = 0.0
    dz = dz.ravel()
    reg = 1e-12 * max(float(Hd.max(initial=0.0)), 1e-300) + damp * max(
        float(Hd.mean()) if Hd.size else 0.0, 1e-300)
    step = dz.copy()
    if fv.any():
        Hff = H[np.ix_(fv, fv)] + reg * np.eye(int(fv.sum()))
        rhs = -gf.ravel()[fv] - H[np.ix_(fv, ~fv)] @ dz[~fv]
        try:
            step[fv] = scipy.linalg.solve(Hff, rhs, assume_a="sym", check_finite=False)
        except (np.linalg.LinAlgError, ValueError):
            step[fv] = np.linalg.lstsq(Hff, rhs, rcond=None)[0]
    Delta = step.reshape(q, dx)
    if not np.isfinite(Delta).all():
        Delta = np.zeros_like(V)
    return Delta, min(float((gf * Delta).sum()), 0.0)


def _face_search(prob, V, Vp, Delta, gd, f_cur):
    """Armijo search of :func:`_cd_group_newton` along ``Delta`` (a group the step takes
    through zero stops at zero); returns ``(accepted, step length, point, value)``."""
    cols = np.arange(prob.k0, prob.k0 + prob.p)
    VD = V[:, cols]
    bn = np.sqrt((VD * VD).sum(axis=0))
    a = 1.0
    if not np.abs(Delta).max(initial=0.0) > 0:
        return False, a, V, f_cur
    for _ in range(30):
        Vt = V + a * Delta
        cross = ((Vt[:, cols] * VD).sum(axis=0) <= 0) & (bn > 0)
        Vt[:, cols[cross]] = 0.0
        ft = prob.value(Vt)
        if ft <= f_cur + 1e-4 * a * gd + 1e-15 * abs(f_cur):
            # a decrease, or a change at the rounding level of f that halves the
            # prox-gradient residual (flat directions the objective cannot resolve)
            return (ft < f_cur - 1e-15 * abs(f_cur) or _residual_halved(prob, V, Vp, Vt)), a, \
                Vt, ft
        a *= 0.5
    return False, a, Vt, ft


def _cd_group_newton(M, Y, loss, pen, fit_intercept, W0, c0, tol, max_iter, w=None):
    r"""Face Newton method for the (C, D, c) block with the l2 group norm on D (cross-entropy;
    the squared loss goes to :func:`_cd_group_squared`).

    Each iteration: the prox-gradient point with one step per column (inverse curvature
    :math:`1/(\beta G_{jj})`) gives the stopping test (``tol * max(1, max|W|)``) and the
    working face (the groups it keeps; the others move to zero). On the face the penalty
    :math:`\alpha\sum_j\sqrt{\|W_{:,n+j}\|^2 + \|Be_j\|^2}` is smooth; the Newton step solves
    the softmax Hessian plus the penalty Hessian :math:`\alpha(I/\rho_j -
    w_jw_j^\top/\rho_j^3)` on the free variables. An Armijo search along the step (a group
    that the step takes through zero stops at zero) is accepted on decrease; otherwise the
    prox-gradient step with :math:`1/L` (a guaranteed descent) and a larger
    Levenberg–Marquardt damping.
    """
    prob = _GroupCD(M, Y, loss, pen, fit_intercept, w)
    q, dx = prob.q, prob.dx
    if W0 is None:
        V = np.zeros((q, dx))
    else:
        V = prob.to_internal(W0, np.zeros(q) if c0 is None else np.asarray(c0, float))
    f_cur = prob.value(V)
    damp = 0.0
    stalled = 0
    converged = False
    n_iter = 0
    for k in range(1, max_iter + 1):
        n_iter = k
        _, g = prob.smooth(V)
        Vp = prob.prox_step(V, g, prob.col_steps)
        if float(np.abs(Vp - V).max(initial=0.0)) <= tol * max(
                1.0, float(np.abs(V).max(initial=0.0))):
            converged = True
            break
        Delta, gd = _face_newton_step(prob, V, g, Vp, damp)
        accepted, a, Vt, ft = _face_search(prob, V, Vp, Delta, gd, f_cur)
        if accepted:
            damp = damp * 0.1 if (a >= 1.0 and damp >= 1e-10) else (0.0 if a >= 1.0 else damp)
        else:
            damp = min(max(damp * 10.0, 1e-6), 1e8)
            Vt = prob.prox_step(V, g, np.full(dx, prob.t_safe))
            ft = prob.value(Vt)
            if not ft < f_cur:  # no step decreases f: the objective is at its rounding level
                stalled += 1
                if stalled >= 3:
                    break
                Vt, ft = V, f_cur
            else:
                stalled = 0
        V, f_cur = Vt, ft
    W, c = prob.from_internal(V)
    return W, c, n_iter, converged


# --------------------------------------------------------------------------------------------
# cvxpy formulation
# --------------------------------------------------------------------------------------------
def _cd_cvxpy(M, Y, loss, pen, fit_intercept, tol, max_iter, solver=None, w=None):
    """The cvxpy formulation; ``(W, c, n_iter, converged, label)``."""
    import cvxpy as cp

    m, d = M.shape
    q = Y.shape[1]
    W = cp.Variable((q, d), name="W")
    Yhat = M @ W.T
    c = None
    if fit_intercept:
        c = cp.Variable(q, name="c")
        Yhat = Yhat + np.ones((m, 1)) @ cp.reshape(c, (1, q), order="C")
    prob = cp.Problem(cp.Minimize(loss.cvxpy(Y, Yhat, sample_weight=w) + pen.cvxpy(W)))
    conv, n_iter, name = solve_cvxpy(prob, "(C, D)", tol, max_iter, solver)
    Wv = np.array(W.value, dtype=np.float64)
    cv = np.array(c.value, dtype=np.float64).reshape(q) if fit_intercept else np.zeros(q)
    return Wv, cv, n_iter, conv, f"cvxpy:{name}"
