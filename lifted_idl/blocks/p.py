r"""The P block of BCD: the proxy states, between the output fit, the state equation and X.

.. math::

    \min_{P \in \mathrm{dom} f^*}\; \mathcal L(Y, PC^\top + UD^\top + \mathbf 1c^\top)
      + \frac1m\sum_{i=1}^n\lambda_i\sum_{s=1}^m F_\phi(P_{si}, Z_{si})
      + \frac{\mu}{2m}\|X - P\|_F^2, \qquad Z = XA^\top + UB^\top + \mathbf 1b^\top

(theory §8; arXiv §4.2, eq. (15)). Strictly convex and separable across samples. For ReLU the
divergence and coupling terms are :math:`\sum_i\frac{\lambda_i + \mu}{2m}\|P_{:,i} - P^0_{:,i}\|^2
+ \text{const}` with :math:`P^0 = (Z\Lambda + \mu X)(\Lambda + \mu I)^{-1}`; with the constraint
:math:`P \ge 0` this is, per sample, a small bound-constrained QP for the squared loss (a
non-negative least-squares problem, **not** the closed form the arXiv text states: theory §8
**fix**) and a bound-constrained strictly convex program for the cross-entropy. For tanh the
domain is :math:`|P| < 1` and :math:`f^*(x) = \tfrac12[(1+x)\log(1+x) + (1-x)\log(1-x)]`.

Fast solver (``method="fast"``): a Newton method on all samples at once, exact up to rounding.
The Hessian of sample s is :math:`C^\top H_s C + \mathrm{diag}(\lambda\odot f^{*\prime\prime}
(p_s) + \mu)`, a diagonal plus a rank-q term (:math:`H_s` the Hessian of the per-sample loss),
so each Newton direction costs one q × q solve per sample (Woodbury identity
:math:`(\Delta + C^\top H C)^{-1} = \Delta^{-1} - \Delta^{-1}C^\top(I + HC\Delta^{-1}C^\top)^{-1}
HC\Delta^{-1}`, valid for the singular softmax Hessian too). For ReLU it is Bertsekas' (1982)
projected Newton method for the bound :math:`P \ge 0` (Newton on the free variables, scaled
projected gradient on the :math:`\varepsilon`-active ones, Armijo search along the projection
arc); for tanh and sigmoid a damped Newton method that keeps :math:`P` strictly inside the
domain. Line searches are per sample, vectorized. For the squared loss with ReLU the method
stops at the exact NNLS solution once the active set is identified. With one output (the
regressors' case), ReLU and the squared loss the fast solver instead solves the block through
its scalar residual (:func:`_p_relu_scalar`): the KKT conditions give every state as a
function of the residual, whose equation is scalar, piecewise linear and increasing; exact, in
a few matrix–vector products (``tol``, ``rtol`` and ``max_iter`` do not apply; ``solver`` is
``"scalar"``).

The cvxpy formulation (``method="cvxpy"``) is one problem over all of P (the loss's own cvxpy
expression, :math:`f^*` through ``f_conj_cvxpy``), solved by the solver of its class
(:mod:`._common`: OSQP for ReLU with the squared loss, a quadratic program; Clarabel for the
exponential cones of tanh, sigmoid and the cross-entropy).
"""

from __future__ import annotations

import numpy as np

from .._validation import check_real
from ..activations import ReLU, Sigmoid, Tanh
from ..losses import SoftmaxCrossEntropy, SquaredLoss, get_loss, unit_mean_weights
from ._common import (
    BlockResult,
    as_lam,
    as_matrix,
    as_model_data,
    as_positive,
    check_cvxpy_solver,
    check_options,
    domain_interval,
    get_fenchel_activation,
    keep_better,
    solve_cvxpy,
)
from .objective import _p_objective, _pre_activation

__all__ = ["solve_p"]

_ARMIJO = 1e-4
_MAX_HALVINGS = 50
_EXACT = 1e-12  # a relative scaled Newton step at the rounding level
#: ReLU with the squared loss and one output: the exact solver through the scalar residual
#: (:func:`_p_relu_scalar`) instead of the Newton iteration
SCALAR_RESIDUAL = True
#: its semismooth Newton steps at most, before the sorted breakpoints finish the samples left
_SCALAR_STEPS = 4


def _check(A, B, b, C, D, c, X, U, Y, lam, mu, activation, loss, init):
    act = get_fenchel_activation(activation, "P")
    if not isinstance(act, (ReLU, Tanh, Sigmoid)):
        raise ValueError(f"the P block supports the ReLU, tanh and sigmoid divergences (f* "
                         f"twice differentiable on its domain); got activation={act!r}")
    loss = get_loss(loss)
    if not isinstance(loss, (SquaredLoss, SoftmaxCrossEntropy)):
        raise ValueError(f"the P block supports SquaredLoss and SoftmaxCrossEntropy; got "
                         f"loss={loss!r}")
    (A, B, b), (C, D, c), X, U, Y = as_model_data(A, B, b, C, D, c, X, U, Y)
    m, n = X.shape
    lam = as_lam(lam, n)
    mu = as_positive("mu", mu)
    if init is not None:
        init = as_matrix("init", init, (m, n))
    return A, B, b, C, D, c, X, U, Y, lam, mu, act, loss, init


def solve_p(A, B, b, C, D, c, X, U, Y, lam, mu, activation, loss, *, init=None,
            method: str = "fast", tol: float = 1e-8, max_iter: int = 2000,
            cvxpy_solver: str | None = None, sample_weight=None,
            rtol: float | None = None) -> BlockResult:
    r"""Solve the P block exactly (theory §8 with its **fix**, arXiv (15)).

    .. math::

        \min_{P \in \mathrm{dom} f^*}\; \mathcal L(Y, PC^\top + UD^\top + c)
        + \frac1m\sum_i\lambda_i\sum_s F_\phi(P_{si}, Z_{si}) + \frac{\mu}{2m}\|X - P\|_F^2

    Parameters
    ----------
    A, B, b : ndarrays of shapes (n, n), (n, p), (n,) (b may be None)
    C, D, c : ndarrays of shapes (q, n), (q, p), (q,) (c may be None)
    X : ndarray of shape (m, n)
    U : ndarray of shape (m, p)
    Y : ndarray of shape (m, q)
    lam : float or ndarray of shape (n,)
        Per-state divergence weights, > 0.
    mu : float
        Coupling weight, > 0.
    activation : Activation or str
        ReLU (:math:`P \ge 0`), tanh (:math:`|P| < 1`) or sigmoid (:math:`0 < P < 1`).
    loss : Loss or str
        SquaredLoss or SoftmaxCrossEntropy.
    init : ndarray of shape (m, n), optional
        Warm start (moved into the domain if needed). The returned objective is never above the
        objective at ``init``. Default: :math:`P^0` above, moved into the domain.
    method : {"fast", "cvxpy"}
    tol : float, default=1e-8
        Newton stops when the scaled (projected) gradient step
        :math:`|P - \Pi(P - \nabla/\mathrm{diag}\,\nabla^2)|` is below ``tol * max(1, max|P|)``
        entrywise; cvxpy: the solver's tolerances (clipped to [1e-10, 1e-6]). Not used by
        the exact solver of ReLU with the squared loss and one output (``solver="scalar"``).
    max_iter : int, default=2000
        Newton iterations at most (not used by the scalar solver either).
    cvxpy_solver : {None, "CLARABEL", "ECOS", "OSQP", "HIGHS"}, default=None
        With ``method="cvxpy"``: the solver; None picks it by the problem's class (see
        :mod:`lifted_idl.blocks`).
    sample_weight : ndarray of shape (m,), optional
        Non-negative sample weights: every average over samples in the objective is weighted
        (:func:`~lifted_idl.losses.unit_mean_weights`). The block is separable over samples
        and a weight multiplies all of one sample's terms, so the minimiser does not depend
        on the weights (a sample of weight 0 has any minimiser; the unweighted one is
        returned): the fast solver ignores them, while the reported objective, the
        comparison with ``init`` and the cvxpy formulation are weighted (the cvxpy twin thus
        checks this invariance).
    rtol : float in (0, 1), optional
        An inexact solve (``method="fast"``, not the scalar solver, which is exact anyway):
        Newton also stops once the largest entry of the
        scaled projected gradient step (the quantity of ``tol``) is at most ``rtol`` times
        its value at the start (``init``, or :math:`P^0`); for ReLU a sample already there
        stops moving (the block is separable). Every Newton step is a descent step, so the
        objective is still below the start's. For the P step of BCD, which
        starts every round from the anchored states and needs targets, not an exact
        minimiser; as the rounds converge the start nears the optimum and the solve becomes
        as accurate as the exact one. None (the default): the exact solve.

    Returns
    -------
    BlockResult
        ``value = P`` of shape (m, n).
    """
    check_options(method, tol, max_iter)
    rtol = check_real("rtol", rtol, 0.0, 1.0, closed="neither", allow_none=True)
    cvxpy_solver = check_cvxpy_solver(method, cvxpy_solver)
    A, B, b, C, D, c, X, U, Y, lam, mu, act, loss, init = _check(
        A, B, b, C, D, c, X, U, Y, lam, mu, activation, loss, init)
    Z = _pre_activation(X, U, A, B, b)
    E = U @ D.T
    E += c
    w = unit_mean_weights(sample_weight, X.shape[0])
    init_obj = obj = None
    if method == "cvxpy":
        P, n_iter, conv, solver = _p_cvxpy(Z, C, E, X, Y, lam, mu, act, loss, tol, max_iter,
                                           cvxpy_solver, w)
    elif SCALAR_RESIDUAL and isinstance(act, ReLU) and isinstance(loss, SquaredLoss) \
            and C.shape[0] == 1:
        P, n_iter, conv, solver = (_p_relu_scalar(Z, C, E, X, Y, lam, mu, init), 0, True,
                                  "scalar")
    else:
        P, n_iter, conv, v_start, v_end = _p_newton(Z, C, E, X, Y, lam, mu, act, loss, init,
                                                    tol, max_iter, rtol)
        solver = "newton"
        if v_start is not None:  # started at init: both objectives from the sample values
            init_obj, obj = _objectives_from_samples(act, Z, lam, w, v_start, v_end)
    if init is not None and init_obj is None:
        init_obj = _p_objective(Z, C, E, X, Y, lam, mu, act, loss, init, w)
    if obj is None:
        obj = _p_objective(Z, C, E, X, Y, lam, mu, act, loss, P, w)
    return keep_better(BlockResult(P, float(obj), int(n_iter), bool(conv), solver), init,
                       init_obj)


# --------------------------------------------------------------------------------------------
# Newton
# --------------------------------------------------------------------------------------------
def _fstar_derivs(act, P):
    """(f*'(P), f*''(P)) on the domain; f*'' is None for ReLU, where it is 1."""
    if isinstance(act, ReLU):
        return P, None
    if isinstance(act, Tanh):
        return np.arctanh(P), 1.0 / ((1.0 - P) * (1.0 + P))
    # sigmoid
    return np.log(P) - np.log1p(-P), 1.0 / (P * (1.0 - P))


def _objectives_from_samples(act, Z, lam, w, v_start, v_end):
    r"""The P objective at the start and at the end of :func:`_p_newton` from its per-sample
    values (:func:`_sample_values`: m times each sample's terms without
    :math:`\sum_i\lambda_if(z_{si})`, which the start and the end share), weighted by the
    unit-mean ``w``: ``(None, None)`` when a value is not finite (then :func:`_p_objective`
    decides). Spares the two evaluations of the whole objective that the Newton iteration has
    already done sample by sample."""
    m = max(Z.shape[0], 1)
    with np.errstate(all="ignore"):
        fz = act.f(Z) @ lam
    tot = [float(v.sum() if w is None else w @ v) for v in (v_start + fz, v_end + fz)]
    if not np.isfinite(tot).all():
        return None, None
    return tot[0] / m, tot[1] / m


def _into_domain(act, P):
    low, high, closed = domain_interval(act)
    if closed:
        return np.maximum(P, low)
    width = high - low
    return np.clip(P, low + 1e-6 * width, high - 1e-6 * width)


def _sample_values(P, Z, C, E, X, Y, lam, mu, act, loss):
    """m times the P objective per sample, up to the constant f(Z) terms."""
    Yhat = P @ C.T
    Yhat += E
    R = P - X
    if isinstance(act, ReLU):  # P >= 0 on the box, where f*(p) = p^2 / 2
        F = 0.5 * P
        F -= Z
        F *= P
    else:
        with np.errstate(all="ignore"):
            F = act.f_conj(P) - P * Z
    return loss.sample_values(Y, Yhat) + F @ lam + 0.5 * mu * np.einsum("ij,ij->i", R, R)


def _box(act):
    r"""Bounds used by the Newton iteration: ``[0, inf)`` for ReLU; for tanh and sigmoid the open
    interval shrunk by :math:`\epsilon_{\rm mach}` times its width at each end (where
    :math:`f^{*\prime}` and :math:`f^{*\prime\prime}` are finite)."""
    low, high, closed = domain_interval(act)
    if closed:
        return low, high
    margin = np.finfo(np.float64).eps * (high - low)
    return low + margin, high - margin


def _p_relu_scalar(Z, C, E, X, Y, lam, mu, init=None):
    r"""The exact P block for ReLU, the squared loss and one output, through its scalar residual.

    Per sample (m times its terms), with :math:`\kappa_i = \lambda_i + \mu`, :math:`a_i =
    (\lambda_i z_i + \mu x_i)/\kappa_i` and the output's weights :math:`c`, the block is
    :math:`\min_{p \ge 0} \tfrac12 r^2 + \sum_i \tfrac{\kappa_i}2 (p_i - a_i)^2` with the
    residual :math:`r = c^\top p + e - y`. Its KKT conditions give :math:`p_i = \max(0, a_i -
    b_i r)`, :math:`b_i = c_i/\kappa_i`, so r solves the scalar equation

    .. math:: h(r) = r - \sum_i c_i \max(0, a_i - b_i r) - (e - y) = 0 ,

    whose left side is continuous, piecewise linear and increasing (slope :math:`1 + \sum_{i
    \in S} c_i^2/\kappa_i \ge 1` on the active set :math:`S = \{i: a_i > b_i r\}`): the
    root is unique (the block is strictly convex). On a fixed active set h is linear, with the
    root :math:`r_S = (e - y + \sum_{i \in S} c_i a_i)/(1 + \sum_{i \in S} c_i^2/\kappa_i)`;
    when the active set at :math:`r_S` is S itself, :math:`h(r_S) = 0`. From the residual at
    ``init`` (BCD's warm start: the anchored states; else at :math:`\max(a, 0)`) every sample
    takes such steps (a semismooth Newton step on h) until its active set repeats, at most
    :data:`_SCALAR_STEPS`; the few samples left then get the root from their sorted breakpoints
    :math:`t_i = a_i/b_i` (:func:`_relu_scalar_sorted`). Exact up to rounding: the Newton
    iteration's answer, with a few matrix-vector products."""
    kap = lam + mu
    A0 = lam * Z
    A0 += mu * X
    A0 /= kap  # a: the minimiser of the separable terms, entry by entry
    c = C[0]
    b = c / kap
    w = c * b
    e = (E - Y)[:, 0]
    CA = A0 * c
    start = np.maximum(A0, 0.0) if init is None else init
    r = start @ c + e
    R = np.empty_like(r)
    rows = None  # the samples still iterating (None: all of them)
    Aa, CAa, ea = A0, CA, e
    S = np.greater(Aa - np.multiply.outer(r, b), 0.0)
    for _ in range(_SCALAR_STEPS):
        Sf = S.astype(np.float64)
        r = (np.einsum("ij,ij->i", Sf, CAa) + ea) / (1.0 + Sf @ w)
        S_new = np.greater(Aa - np.multiply.outer(r, b), 0.0)
        moved = (S_new != S).any(axis=1)
        if rows is None:
            R[~moved] = r[~moved]
            rows = np.flatnonzero(moved)
        else:
            R[rows[~moved]] = r[~moved]
            rows = rows[moved]
        if rows.size == 0:
            break
        Aa, CAa, ea, r, S = A0[rows], CA[rows], e[rows], r[moved], S_new[moved]
    if rows is None:  # no step was taken (_SCALAR_STEPS = 0)
        rows = np.arange(Z.shape[0])
    if rows.size:
        R[rows] = _relu_scalar_sorted(A0[rows], c, b, e[rows])
    P = A0
    P -= R[:, None] * b
    np.maximum(P, 0.0, out=P)
    return P


def _relu_scalar_sorted(A0, c, b, e):
    """The root r of :func:`_p_relu_scalar`'s h for every row, from its sorted breakpoints:
    between two consecutive ones the active set is fixed (:math:`c_i > 0`: :math:`t_i > r`;
    :math:`c_i < 0`: :math:`t_i < r`), so prefix sums give h at each breakpoint, the count of
    negative values the segment holding the root (h increases), and that segment's linear
    equation the root."""
    m = A0.shape[0]
    nz = np.flatnonzero(c)
    if nz.size == 0:
        return e.copy()
    cz, bz, a = c[nz], b[nz], A0[:, nz]
    with np.errstate(divide="ignore", invalid="ignore"):  # b_i may underflow to 0
        T = a / bz
    order = np.argsort(T, axis=1)
    Ts = np.take_along_axis(T, order, axis=1)
    pos = cz[order] > 0  # the sorted terms with c_i > 0
    wts = (cz * bz)[order]  # c_i^2 / kappa_i: the slope an active term adds
    vals = np.take_along_axis(a, order, axis=1) * cz[order]  # c_i a_i
    k = nz.size
    # on segment j (between the sorted breakpoints j - 1 and j) the active terms are the c > 0
    # ones at positions >= j and the c < 0 ones at positions < j: suffix sums of the former
    # (ending in 0) and prefix sums of the latter (starting at 0), each summed in its own
    # direction (a total minus a prefix cancels where one weight dominates)
    cum = np.zeros((4, m, k + 1))
    np.cumsum(np.where(pos, wts, 0.0)[:, ::-1], axis=1, out=cum[0, :, k - 1::-1])
    np.cumsum(np.where(pos, 0.0, wts), axis=1, out=cum[1, :, 1:])
    np.cumsum(np.where(pos, vals, 0.0)[:, ::-1], axis=1, out=cum[2, :, k - 1::-1])
    np.cumsum(np.where(pos, 0.0, vals), axis=1, out=cum[3, :, 1:])
    slope = 1.0 + cum[0] + cum[1]  # (m, k + 1), per segment
    inter = cum[2] + cum[3]
    h = Ts * slope[:, :k] - inter[:, :k] - e[:, None]  # h at breakpoint j, from segment j
    seg = np.count_nonzero(h < 0, axis=1)
    rows = np.arange(m)
    r = (inter[rows, seg] + e) / slope[rows, seg]
    lo = np.where(seg > 0, Ts[rows, np.maximum(seg - 1, 0)], -np.inf)  # rounding: r stays
    hi = np.where(seg < k, Ts[rows, np.minimum(seg, k - 1)], np.inf)  # in its segment
    return np.clip(r, lo, hi)


def _p_newton(Z, C, E, X, Y, lam, mu, act, loss, init, tol, max_iter, rtol=None):
    r"""Projected Newton (Bertsekas 1982) on the box :func:`_box`, all samples at once.

    For tanh and sigmoid the box only guards the singular ends of the domain: :math:`f^*` acts
    as a barrier there, so a bound is active only when the optimum lies within
    :math:`\epsilon_{\rm mach}` of an end (the objective then differs from the infimum by a
    rounding-level amount).

    The problem is separable over samples. For ReLU the diagonal scaling of the separable
    terms is the bounded :math:`\lambda + \mu`, so a scaled projected gradient step at the
    rounding level (below ``min(tol, 1e-12)`` relative) means a projected gradient at the
    rounding level: such a sample is frozen and leaves the batch, so later iterations only pay
    for the samples still moving (usually a few after the first two steps; with the squared
    loss a sample's objective is a quadratic, on which one Newton step from the right face is
    exact), and the answer is the one of iterating them all up to rounding. For tanh and
    sigmoid the scaling :math:`\lambda f^{*\prime\prime}(p)` blows up near the ends of the
    domain, where a small scaled step does not mean optimality on its own: every sample
    iterates.

    With ``rtol`` (an inexact solve, :func:`solve_p`) the iteration also stops once every
    row's scaled projected gradient step is at most ``rtol`` times the largest one at the
    start; for ReLU a sample already there is frozen as well (it has met the tolerance of
    the solve).

    Returns ``(P, n_iter, converged, v_start, v_end)``: the per-sample values
    (:func:`_sample_values`) at the start and at the returned P when the iteration started at
    ``init`` itself (already in the domain), else None.
    """
    freeze = isinstance(act, ReLU)
    lo, hi = _box(act)
    if init is None:
        P = _into_domain(act, (act(Z) * lam + mu * X) / (lam + mu))
    else:
        P = _into_domain(act, init)
    P = np.ascontiguousarray(P, dtype=np.float64)  # a new array: rows are written in place
    at_init = init is not None and np.array_equal(P, init)
    CC = (C.T[:, :, None] * C.T[:, None, :]).reshape(C.shape[1], -1)  # row i: C[:, i] C[:, i]^T
    # ReLU: the gradient's constant part lam Z + mu X, once
    ZX = lam * Z + mu * X if isinstance(act, ReLU) else None
    v_start = _sample_values(P, Z, C, E, X, Y, lam, mu, act, loss)
    v_end = v_start.copy()  # every sample's value at its current P
    batch = (Z, E, X, Y, ZX, v_start)
    Pa = P
    rows = None  # the samples still iterating (None: all of them)
    frozen_top = 0.0  # max |P| over the frozen samples
    floor = 0.0  # with rtol: rtol times the largest scaled step at the start
    converged = False
    n_iter = 0
    for k in range(1, max_iter + 1):
        n_iter = k
        Za, Ea, Xa, Ya, ZXa, va = batch
        g, Dg, gs, res, Yhat = _projected_gradient(Pa, Za, C, Ea, Xa, Ya, ZXa, lam, mu, act,
                                                   loss, lo, hi)
        scale = max(1.0, frozen_top, float(np.abs(Pa).max(initial=0.0)))
        exact = min(tol, _EXACT) * scale
        rn = _row_abs_max(res, max(exact, floor))
        if k == 1 and rtol is not None:
            floor = rtol * float(rn.max(initial=0.0))
        if bool((rn <= max(tol * scale, floor)).all()):
            converged = True
            break
        done = rn <= max(exact, floor)
        if freeze and bool(done.any()):  # freeze the samples at the solve's tolerance
            frozen_top = max(frozen_top, float(np.abs(Pa[done]).max()))
            keep = np.flatnonzero(~done)
            rows = keep if rows is None else rows[keep]
            Pa, g, gs, res, Yhat = Pa[keep], g[keep], gs[keep], res[keep], Yhat[keep]
            Dg = Dg[keep] if Dg.ndim == 2 else Dg
            batch = tuple(None if M is None else M[keep] for M in batch)
            Za, Ea, Xa, Ya, ZXa, va = batch
        d, free = _newton_direction(Pa, g, Dg, gs, res, Yhat, C, CC, Ya, loss, lo, hi)
        Pa, va, ok = _search_projected(Pa, d, g, free, lo, hi, va, Za, C, Ea, Xa, Ya, lam, mu,
                                       act, loss)
        batch = (Za, Ea, Xa, Ya, ZXa, va)
        if rows is None:
            P = Pa
            v_end = va
        else:
            P[rows] = Pa
            v_end[rows] = va
        if not ok:
            # no sample could make progress: we are at the rounding floor of the objective
            break
    if not at_init:
        return P, n_iter, converged, None, None
    return P, n_iter, converged, v_start, v_end


def _projected_gradient(P, Z, C, E, X, Y, ZX, lam, mu, act, loss, lo, hi):
    r"""The gradient g (m times the objective's), the Hessian diagonal ``Dg`` of the separable
    terms (shape (n,) for ReLU, where it is :math:`\lambda + \mu`), the scaled gradient
    :math:`g / D_g`, the scaled projected gradient step :math:`P - \Pi(P - g / D_g)` and the
    outputs :math:`\hat Y`. ``ZX`` is :math:`\lambda Z + \mu X` for ReLU (None otherwise)."""
    Yhat = P @ C.T
    Yhat += E
    d1, d2 = _fstar_derivs(act, P)
    # loss.grad averages over the rows it gets: the per-sample gradient is that many times it
    g = (loss.grad(Y, Yhat) * float(P.shape[0])) @ C
    if d2 is None:  # ReLU: lam (P - Z) + mu (P - X) = (lam + mu) P - ZX
        Dg = lam + mu
        g += Dg * P
        g -= ZX
    else:
        g += lam * (d1 - Z)
        g += mu * (P - X)
        Dg = lam * d2 + mu
    gs = g / Dg
    res = P - gs
    np.clip(res, lo, hi, out=res)
    np.subtract(P, res, out=res)
    return g, Dg, gs, res, Yhat


def _row_abs_max(R, below):
    r"""Row-wise :math:`\|r\|_\infty`, exact where it exceeds ``below``; elsewhere an upper
    bound that is at most ``below`` (:math:`\|r\|_2`: a row reduction of a C-ordered matrix is
    cheap as a dot product, not as a maximum). Comparisons with any threshold of at least
    ``below`` are thus exact."""
    rn = np.sqrt(np.einsum("ij,ij->i", R, R))
    rest = np.flatnonzero(~(rn <= below))
    if rest.size:
        rn[rest] = np.abs(R[rest]).max(axis=1)
    return rn


def _newton_direction(P, g, Dg, gs, res, Yhat, C, CC, Y, loss, lo, hi):
    """The projected Newton direction and the mask (1.0 / 0.0) of the free variables."""
    m = P.shape[0]
    q = C.shape[0]
    # epsilon-active bounds (Bertsekas): at a bound with the gradient pushing outwards
    eps = np.minimum(np.sqrt(np.einsum("ij,ij->i", res, res)), 1e-3)[:, None]
    active = (P <= lo + eps) & (g > 0)
    if np.isfinite(hi):
        active |= (P >= hi - eps) & (g < 0)
    free = np.logical_not(active).astype(np.float64)  # masks multiply: np.where is slower
    Dinv = free / Dg
    # Newton direction on the free variables (Woodbury, one q x q solve per sample)
    H = loss.sample_hessians(Y, Yhat)
    h = free * gs
    # K_s = C diag(Dinv_s) C^T for every sample, as one (m, n) x (n, q q) product: no
    # (m, q, n) temporary, so the block's memory stays O(m (n + q^2))
    K = (Dinv @ CC).reshape(m, q, q)
    S = np.eye(q) + H @ K
    r = h @ C.T
    Hr = H @ r[:, :, None]
    if q == 1:
        t = Hr[:, :, 0] / S[:, :, 0]
    else:
        t = np.linalg.solve(S, Hr)[:, :, 0]
    # free variables: -(h - Dinv C^T t); active ones: the scaled gradient step -g / Dg
    d = Dinv * (t @ C)
    d -= gs
    return d, free


def _search_projected(P, d, g, free, lo, hi, vals, Z, C, E, X, Y, lam, mu, act, loss):
    r"""Armijo search along the projection arc :math:`P(\alpha) = \Pi(P + \alpha d)`, per
    sample; every sample tries :math:`\alpha = 1` first, on the whole batch."""
    g_free = g * free
    gd_free = np.einsum("ij,ij->i", g_free, d)  # <= 0
    g_act = g - g_free

    def trial(a, Pt, vt, todo):
        """The samples ``todo`` that accept the step ``a`` to ``Pt`` (values ``vt``)."""
        P0, v0 = (P, vals) if todo is None else (P[todo], vals[todo])
        ga = g_act if todo is None else g_act[todo]
        gf = gd_free if todo is None else gd_free[todo]
        pred = np.einsum("ij,ij->i", ga, P0 - Pt) - a * gf
        slack = 1e-13 * (1.0 + np.abs(v0))
        return (v0 - vt >= _ARMIJO * pred - slack) & (vt <= v0 + slack)

    newP = np.clip(P + d, lo, hi)
    newv = _sample_values(newP, Z, C, E, X, Y, lam, mu, act, loss)
    ok = trial(1.0, newP, newv, None)
    moved = bool(ok.any())
    todo = np.flatnonzero(~ok)
    newP[todo] = P[todo]
    newv[todo] = vals[todo]
    a = 1.0
    for _ in range(_MAX_HALVINGS - 1):
        if todo.size == 0:
            break
        a *= 0.5
        Pt = np.clip(P[todo] + a * d[todo], lo, hi)
        vt = _sample_values(Pt, Z[todo], C, E[todo], X[todo], Y[todo], lam, mu, act, loss)
        ok = trial(a, Pt, vt, todo)
        idx = todo[ok]
        newP[idx] = Pt[ok]
        newv[idx] = vt[ok]
        moved |= bool(ok.any())
        todo = todo[~ok]
    return newP, newv, moved


# --------------------------------------------------------------------------------------------
# cvxpy formulation
# --------------------------------------------------------------------------------------------
def _p_cvxpy(Z, C, E, X, Y, lam, mu, act, loss, tol, max_iter, solver=None, w=None):
    """The cvxpy formulation; ``(P, n_iter, converged, label)``."""
    import cvxpy as cp

    m, n = X.shape
    P = cp.Variable((m, n), name="P")
    lam_rows = np.tile(lam, (m, 1))
    R = P - X
    if w is not None:  # every term of sample s weighted by w_s
        lam_rows = lam_rows * w[:, None]
        R = cp.multiply(np.sqrt(w)[:, None], R)
    div = cp.sum(cp.multiply(lam_rows, act.f_conj_cvxpy(P))) - cp.sum(cp.multiply(lam_rows * Z, P))
    obj = loss.cvxpy(Y, P @ C.T + E, sample_weight=w) + (div + 0.5 * mu * cp.sum_squares(R)) / m
    cons = [P >= 0] if isinstance(act, ReLU) else []
    prob = cp.Problem(cp.Minimize(obj), cons)
    conv, n_iter, name = solve_cvxpy(prob, "P", tol, max_iter, solver)
    Pv = np.array(P.value, dtype=np.float64)
    low, high, closed = domain_interval(act)
    if closed:
        Pv = np.maximum(Pv, low)  # the solver's rounding: back into the domain
    else:
        Pv = np.clip(Pv, np.nextafter(low, high), np.nextafter(high, low))
    return Pv, n_iter, conv, f"cvxpy:{name}"
