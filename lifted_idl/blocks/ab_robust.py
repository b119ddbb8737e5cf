r"""The robust-counterpart (A, B, b) block for box input uncertainty (ReLU), theory §8.

Robust counterpart [arXiv §5.3]: the inputs are only known to lie in the box
:math:`\{\hat u + \delta : |\delta| \le \sigma\}` (arXiv (16)), independently per sample. For a
fixed state X the pre-activation of state i at sample s, :math:`z_{si}(\delta) = \hat z_{si} +
b_i^\top\delta` with :math:`\hat Z = XA^\top + \hat UB^\top + \mathbf 1 b^\top`, ranges over
the interval :math:`[\hat z_{si} - r_i,\ \hat z_{si} + r_i]`, :math:`r = |B|\sigma`: the worst
case **adds** :math:`|B|\sigma` to the pre-activation (and subtracts it on the other side). The
robust LP relaxation of arXiv §5.3 writes this as the constraint
:math:`X \ge AX + B\hat U + |B|\sigma\mathbf 1^\top` (theory §8).

This module carries the same idea into the Fenchel-divergence (A, B) block of BCD (theory §8,
arXiv (13)). For ReLU and a proxy :math:`x \ge 0`, the divergence
:math:`F(x, z) = \tfrac12 x^2 + \tfrac12 z_+^2 - xz` splits into a nondecreasing and a
nonincreasing convex part of z,

.. math::

    F(x, z) = F^+(x, z) + F^-(x, z), \qquad F^+(x, z) = \tfrac12 (z - x)_+^2, \qquad
    F^-(x, z) = h_x(x - z),

    h_x(t) = \begin{cases} 0 & t \le 0 \\ \tfrac12 t^2 & 0 \le t \le x \\
             x t - \tfrac12 x^2 & t \ge x \end{cases}

(:math:`F^+` is the squared violation of :math:`x \ge z`, the LP-relaxation side;
:math:`F^-` penalises :math:`z` below :math:`x`). Each part has its worst case over the box
at one end of the interval, so

.. math::

    \sup_{|\delta| \le \sigma} F^+(x, z(\delta)) = \tfrac12(\hat z + r - x)_+^2,\qquad
    \sup_{|\delta| \le \sigma} F^-(x, z(\delta)) = h_x(x - \hat z + r).

**The block's objective** (row layout, samples in rows, data term averaged over m) is

.. math::

    J_\sigma(A, B, b) = \frac1m \sum_{i=1}^n \lambda_i \sum_{s=1}^m
      \Big[\tfrac12\big(\hat Z_{si} + r_i - P_{si}\big)_+^2
           + h_{P_{si}}\big(P_{si} - \hat Z_{si} + r_i\big)\Big]
      + \mathrm{Pen}([A\ B])
    \quad\text{s.t.}\quad \|A\|_\infty \le \kappa,

with :math:`\hat Z = XA^\top + UB^\top + \mathbf 1b^\top` (U the nominal inputs) and
:math:`r = |B|\sigma`. Properties:

* :math:`\sigma = 0` gives exactly the objective of :func:`~lifted_idl.blocks.solve_ab` (the
  divergence with its :math:`f^*(P)` part);
* it is convex in (A, B, b): :math:`\hat Z + r` is convex and :math:`(\cdot)_+^2` is convex
  nondecreasing; :math:`P - \hat Z + r` is convex and :math:`h_P` is convex nondecreasing;
* it is the sum of the worst cases of the two parts, so it upper-bounds the exact worst-case
  divergence :math:`\sup_\delta F` (the max of the two end values) and equals it for every
  entry whose interval :math:`[\hat z - r, \hat z + r]` does not contain :math:`P_{si}`; it is
  at most twice it.

Fast solver (``method="fast"``): the problem separates across rows of :math:`[A\ B\ b]`; all
rows are solved at once by a working-set (face) Newton method, as
:func:`~lifted_idl.blocks.solve_ab`. With :math:`B = B^+ - B^-`, :math:`B^\pm \ge 0`,
:math:`|B|` becomes :math:`B^+ + B^-` (exact at the optimum, :math:`J_\sigma` being
nondecreasing in r) and the objective is :math:`C^1` and piecewise quadratic with an exact
proximal map for the constraints; its proximal-gradient step gives the stopping test and a
guaranteed-descent fallback. On a face (signs of b fixed) :math:`r` is linear, and the Newton
step uses the generalised Hessian of the piecewise quadratic. The design is centred when the
bias is free (an exact reparametrisation). The face, the KKT solve, the step cap and the
per-row search are the routines of :mod:`._newton` that :func:`~lifted_idl.blocks.solve_ab`
uses too; ``n_jobs`` solves chunks of rows in parallel.

The cvxpy formulation (``method="cvxpy"``) states :math:`J_\sigma` directly in (A, B, b),
with ``abs(B) @ sigma`` for r, :math:`F^+` as ``square(pos(.))`` and :math:`F^-` as
:math:`\tfrac12 P^2\,\mathrm{huber}(\mathrm{pos}(t)/P)` (zero where P = 0), and is solved by the
solver of its class (:mod:`._common`; ECOS: cvxpy writes the Huber terms with second-order
cones).
"""

from __future__ import annotations

import numpy as np

from .._validation import check_radius
from ..activations import ReLU
from ..penalties import L1View, L2View
from ..wellposedness import _project_l1_rows, project_inf_norm_ball
from ._common import (
    BlockResult,
    ab_cvxpy_solve,
    ab_cvxpy_variables,
    ab_result,
    ab_warm_start,
    as_matrix,
    as_vector,
    check_ab_data,
    check_ab_init,
    check_cvxpy_solver,
    check_n_jobs,
    check_options,
    get_block_penalty,
    get_fenchel_activation,
    solve_row_chunks,
)
from ._newton import (
    armijo_rows,
    ball_face,
    cap_rows,
    design,
    face_kkt,
    from_internal,
    solve_face,
    to_internal,
    weighted_grams,
)

__all__ = ["solve_ab_robust", "ab_robust_objective"]

#: relative slack on ||A||_inf <= kappa when evaluating the objective (rounding)
_KAPPA_SLACK = 1e-10


# --------------------------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------------------------
def _check(X, U, P, lam, kappa, activation, penalty, sigma, init):
    act = get_fenchel_activation(activation, "robust (A, B)")
    if not isinstance(act, ReLU):
        raise ValueError(
            "the robust-counterpart (A, B) block is written for ReLU (arXiv §5.3); got "
            f"activation={act!r}"
        )
    pen = get_block_penalty(penalty, "penalty", "ab")
    X, U, P, lam, kappa = check_ab_data(X, U, P, lam, kappa, act, pen)
    sigma = np.array(np.broadcast_to(check_radius("sigma", sigma, U.shape[1], per="feature"),
                                     (U.shape[1],)), dtype=np.float64)
    init = check_ab_init(init, X.shape[1], U.shape[1])
    return X, U, P, lam, kappa, act, pen, sigma, init


# --------------------------------------------------------------------------------------------
# objective
# --------------------------------------------------------------------------------------------
def _split_terms(P, Z, R):
    r"""Entrywise :math:`\tfrac12(Z + R - P)_+^2` and :math:`h_P(P - Z + R)` (R broadcast)."""
    up = np.maximum(Z + R - P, 0.0)
    t = P - Z + R
    tc = np.clip(t, 0.0, P)  # h_P(t) = tc * t - tc^2 / 2 covers all three pieces
    down = tc * t - 0.5 * tc * tc
    return 0.5 * up * up, down


def _objective(X, U, P, lam, kappa, pen, sigma, A, B, b):
    if float(np.abs(A).sum(axis=1).max(initial=0.0)) > kappa * (1 + _KAPPA_SLACK) + 1e-300:
        return np.inf
    Z = X @ A.T + U @ B.T + b
    R = np.abs(B) @ sigma
    up, down = _split_terms(P, Z, R)
    m = X.shape[0]
    return float(((up + down).sum(axis=0) * lam).sum() / m) + pen.value(np.hstack([A, B]))


def ab_robust_objective(X, U, P, lam, kappa, activation, penalty, sigma, A, B, b) -> float:
    r"""The robust block objective :math:`J_\sigma(A, B, b)` of the module docstring.

    ``+inf`` when :math:`\|A\|_\infty > \kappa`. Arguments as :func:`solve_ab_robust`, with
    ``A, B, b`` of shapes (n, n), (n, p), (n,) (``b=None`` means zeros).
    """
    X, U, P, lam, kappa, _, pen, sigma, _ = _check(X, U, P, lam, kappa, activation, penalty,
                                                   sigma, None)
    n, p = X.shape[1], U.shape[1]
    A = as_matrix("A", A, (n, n))
    B = as_matrix("B", B, (n, p))
    b = as_vector("b", b, n)
    return _objective(X, U, P, lam, kappa, pen, sigma, A, B, b)


# --------------------------------------------------------------------------------------------
# public solver
# --------------------------------------------------------------------------------------------
def solve_ab_robust(X, U, P, lam, kappa, activation, penalty, sigma, *, fit_bias: bool = True,
                    init=None, method: str = "fast", tol: float = 1e-8, max_iter: int = 2000,
                    n_jobs: int | None = None, cvxpy_solver: str | None = None) -> BlockResult:
    r"""Solve the robust-counterpart (A, B, b) block (module docstring; arXiv §5.3, theory §8).

    .. math::

        \min_{A, B, b}\ \frac1m\sum_{i, s}\lambda_i\Big[\tfrac12\big(\hat Z_{si} + r_i -
        P_{si}\big)_+^2 + h_{P_{si}}\big(P_{si} - \hat Z_{si} + r_i\big)\Big] +
        \mathrm{Pen}([A\ B]) \quad\text{s.t.}\quad \|A\|_\infty \le \kappa,

    :math:`\hat Z = XA^\top + UB^\top + \mathbf 1b^\top`, :math:`r = |B|\sigma`, :math:`h_x` the
    Huber-like function of the module docstring: the sum of the worst cases, over
    :math:`|u_s - \hat u_s| \le \sigma`, of the two monotone parts of the ReLU Fenchel
    divergence :math:`F(P_{si}, z_{si}(u_s))`. With ``sigma=0`` it is the problem of
    :func:`~lifted_idl.blocks.solve_ab`.

    Parameters
    ----------
    X : ndarray of shape (m, n)
        States (fixed).
    U : ndarray of shape (m, p)
        Nominal inputs :math:`\hat U`.
    P : ndarray of shape (m, n)
        Proxy states (the targets of the state equation), ``>= 0``.
    lam : float or ndarray of shape (n,)
        Per-state divergence weights, > 0.
    kappa : float
        Bound on :math:`\|A\|_\infty` (> 0; < 1 for well-posedness).
    activation : Activation or str
        ReLU only.
    penalty : Penalty, BlockView or str
        NoPenalty, L2Penalty or L1Penalty, seen on ``[A B]`` (b is not penalised).
    sigma : float or ndarray of shape (p,)
        Half-widths of the input box, ``>= 0``, in the units of U.
    fit_bias : bool, default=True
        Fit b; otherwise b = 0.
    init : tuple (A, B, b), optional
        Warm start (A is projected onto the ball first). The returned objective is never above
        the objective at ``init``.
    method : {"fast", "cvxpy"}
    tol : float, default=1e-8
        A row has converged when its proximal-gradient step (split problem, step
        :math:`1/L_i`) is below ``tol * max(1, max|w|)``; cvxpy: the solver's tolerances
        (clipped to [1e-10, 1e-6]).
    max_iter : int, default=2000
    n_jobs : int, optional
        Solve the rows of ``[A B b]`` (independent problems) in parallel, as in
        :func:`~lifted_idl.blocks.solve_ab`: ``None`` or 1 all rows at once in this thread, an
        int > 1 that many contiguous chunks of rows in parallel threads (BLAS limited to one
        thread each), -1 all cores; the solution is the sequential one up to rounding,
        ``n_iter`` the largest of the chunks' and ``converged`` requires every chunk to
        converge. Ignored by ``method="cvxpy"``.
    cvxpy_solver : {None, "CLARABEL", "ECOS", "OSQP", "HIGHS"}, default=None
        With ``method="cvxpy"``: the solver; None picks it by the problem's class (see
        :mod:`lifted_idl.blocks`).

    Returns
    -------
    BlockResult
        ``value = (A, B, b)``; ``objective`` is :math:`J_\sigma` at it
        (:func:`ab_robust_objective`); ``solver`` is ``"newton"``, ``"cvxpy:NAME"`` (the cvxpy
        solver used) or ``"init"``.

    Raises
    ------
    ValueError
        Bad shapes, NaN/inf, negative ``P`` or ``sigma``, an activation other than ReLU,
        ``n_jobs`` not None, an int >= 1 or -1.
    SolverError
        The cvxpy solve failed.
    """
    check_options(method, tol, max_iter)
    cvxpy_solver = check_cvxpy_solver(method, cvxpy_solver)
    n_workers = check_n_jobs(n_jobs)
    X, U, P, lam, kappa, _, pen, sigma, init = _check(X, U, P, lam, kappa, activation, penalty,
                                                      sigma, init)
    def objective(A, B, b):
        return _objective(X, U, P, lam, kappa, pen, sigma, A, B, b)

    init, init_obj = ab_warm_start(init, fit_bias, objective)
    if method == "cvxpy":
        A, B, b, n_iter, conv, name = _cvxpy(X, U, P, lam, kappa, pen, sigma, fit_bias, tol,
                                             max_iter, cvxpy_solver)
        solver = f"cvxpy:{name}"
    else:
        A, B, b, n_iter, conv = _newton(X, U, P, lam, kappa, pen, sigma, fit_bias, init, tol,
                                        max_iter, n_workers)
        solver = "newton"
    return ab_result(objective, A, B, b, n_iter, conv, solver, init, init_obj)


# --------------------------------------------------------------------------------------------
# fast solver: face Newton in (A, B, b), with proximal-gradient steps on the split B+ - B-
# --------------------------------------------------------------------------------------------
class _Rows:
    r"""The row problems in the centred parametrisation :math:`w_i = [a_i,\ b_i,\ \beta_i]`.

    ``Mt`` is the design :math:`[X_c\ U_c\ \mathbf 1]` (no ones without a bias), ``P`` and
    ``lam`` the columns and weights of the rows at hand (``rows`` below index them).

    Row i: :math:`\frac{\lambda_i}{m}\sum_s [\tfrac12(z_s + r - P_{si})_+^2 + h_{P_{si}}(P_{si} -
    z_s + r)] + \mathrm{pen}(a_i, b_i)`, :math:`z = X_c a + U_c b + \beta`,
    :math:`r = \sigma^\top|b|`, over :math:`\|a\|_1 \le \kappa`. The split form
    :math:`v_i = [a_i,\ b_i^+,\ b_i^-,\ \beta_i]` (:math:`r = \sigma^\top(b^+ + b^-)`,
    :math:`b^\pm \ge 0`) is smooth up to the l1 parts and the constraints, which have an exact
    proximal map; its proximal-gradient step is the stopping test and the guaranteed-descent
    fallback of :func:`_newton`.
    """

    def __init__(self, Mt, n, p, P, lam, kappa, pen, sigma):
        self.Mt, self.P, self.lam, self.kappa, self.sigma = Mt, P, lam, kappa, sigma
        self.m, self.n, self.p = Mt.shape[0], n, p
        self.alpha = pen.alpha
        self.l1 = isinstance(pen, L1View) and pen.alpha > 0
        self.l2 = isinstance(pen, L2View) and pen.alpha > 0

    # ---- the original variables
    def pieces(self, W, rows, r=None):
        """``(Z, r, up, down)`` at rows ``W``; ``r`` defaults to :math:`\\sigma^\top|b|`."""
        n, p = self.n, self.p
        Z = self.Mt @ W.T
        if r is None:
            r = np.abs(W[:, n:n + p]) @ self.sigma
        Pr = self.P[:, rows]
        up = np.maximum(Z + r - Pr, 0.0)
        t = Pr - Z + r
        down = np.clip(t, 0.0, Pr)
        return Z, r, up, down, t

    def values(self, W, rows):
        """True row objectives (with :math:`|b|`) at rows ``W``."""
        n, p = self.n, self.p
        _, _, up, down, t = self.pieces(W, rows)
        v = (0.5 * up * up + down * t - 0.5 * down * down).sum(axis=0) * (self.lam[rows] / self.m)
        if self.l2:
            v += 0.5 * self.alpha * (W[:, :n + p] ** 2).sum(axis=1)
        elif self.l1:
            v += self.alpha * np.abs(W[:, :n + p]).sum(axis=1)
        return v

    # ---- the split variables
    def to_split(self, W):
        n, p = self.n, self.p
        b = W[:, n:n + p]
        return np.hstack([W[:, :n], np.maximum(b, 0.0), np.maximum(-b, 0.0), W[:, n + p:]])

    def from_split(self, V):
        n, p = self.n, self.p
        return np.hstack([V[:, :n], V[:, n:n + p] - V[:, n + p:n + 2 * p], V[:, n + 2 * p:]])

    def split_grad(self, V, rows):
        """Gradient of the smooth part of the split row objective (ridge and B-l1 included)."""
        n, p = self.n, self.p
        W = self.from_split(V)
        r = (V[:, n:n + p] + V[:, n + p:n + 2 * p]) @ self.sigma
        _, _, up, down, _ = self.pieces(W, rows, r)
        w = self.lam[rows] / self.m
        Gz = (up - down) * w
        gr = (up + down).sum(axis=0) * w
        gW = Gz.T @ self.Mt
        g = np.empty_like(V)
        g[:, :n] = gW[:, :n]
        g[:, n:n + p] = gW[:, n:n + p] + gr[:, None] * self.sigma
        g[:, n + p:n + 2 * p] = -gW[:, n:n + p] + gr[:, None] * self.sigma
        g[:, n + 2 * p:] = gW[:, n + p:]
        if self.l2:
            g[:, :n] += self.alpha * V[:, :n]
            db = self.alpha * W[:, n:n + p]
            g[:, n:n + p] += db
            g[:, n + p:n + 2 * p] -= db
        elif self.l1:
            g[:, n:n + 2 * p] += self.alpha
        return g

    def split_prox(self, V, steps):
        r"""Prox of the A-l1 part, the ball and :math:`b^\pm \ge 0`, per-row ``steps``."""
        n, p = self.n, self.p
        if self.l1:
            thr = steps * self.alpha
            V[:, :n] = np.sign(V[:, :n]) * np.maximum(np.abs(V[:, :n]) - thr, 0.0)
        VA = V[:, :n]
        _project_l1_rows(VA, self.kappa, out=VA)
        np.maximum(V[:, n:n + 2 * p], 0.0, out=V[:, n:n + 2 * p])
        return V


def _newton(X, U, P, lam, kappa, pen, sigma, fit_bias, init, tol, max_iter, n_workers=1):
    r"""Face Newton method on all rows at once (:func:`_newton_rows`), or on ``n_workers``
    contiguous chunks of rows in parallel (:func:`~._common.solve_row_chunks`).

    The centred design, the curvature bound and the starting point are built once and shared
    by the chunks. Returns ``(A, B, b, n_iter, converged)``.
    """
    m, n = X.shape
    p = U.shape[1]
    npen = n + p
    Mt, mbar = design(X, U, fit_bias)  # [X - xbar, U - ubar (, 1)]
    Xc, Uc = Mt[:, :n], Mt[:, n:npen]
    # curvature bound of the split problem: rows k^{+/-} = [x, u +/- sigma, -u +/- sigma, 1]
    ones = Mt[:, npen:]
    Kp = np.hstack([Xc, Uc + sigma, -Uc + sigma, ones])
    Km = np.hstack([Xc, Uc - sigma, -Uc - sigma, ones])
    sQ = float(np.linalg.eigvalsh(Kp.T @ Kp + Km.T @ Km)[-1])
    l2 = isinstance(pen, L2View) and pen.alpha > 0
    L = lam * max(sQ, 1e-300) / m + (2.0 * pen.alpha if l2 else 0.0)
    steps = 1.0 / L
    if init is None:
        W = np.zeros((n, Mt.shape[1]))
    else:
        W = to_internal(project_inf_norm_ball(init[0], kappa), init[1], init[2], mbar,
                        fit_bias)

    def task(rows):
        return _newton_rows, (Mt, n, p, P[:, rows], lam[rows], steps[rows], kappa, pen, sigma,
                              W[rows], tol, max_iter)

    W, n_iter, converged = solve_row_chunks(task, n, n_workers)
    A, B, b = from_internal(W, n, p, mbar, fit_bias)
    return A, B, b, n_iter, converged


def _newton_rows(Mt, n, p, P, lam, steps, kappa, pen, sigma, W, tol, max_iter):
    r"""Working-set (face) Newton method on the rows ``W`` (r, d) (as :func:`solve_ab`'s solver).

    The rows share the design ``Mt`` (m, d) of :class:`_Rows`; each has its own column of
    ``P`` (m, r), weight ``lam`` (r,) and safe step ``steps`` (r,) (:math:`1/L_i`). ``n`` and
    ``p`` are the numbers of states and inputs. Returns ``(W, n_iter, converged)``; ``W`` is
    updated in place.

    Each iteration, on the rows not yet converged:

    1. the proximal-gradient point of the split problem (step :math:`1/L_i`, :math:`L_i` a
       bound on the curvature) gives the stopping test and a guaranteed-descent fallback (the
       true objective at :math:`b = b^+ - b^-` is at most the split one);
    2. the working face, from a proximal step scaled by the Hessian (the mean curvature of
       the A part, the diagonal for :math:`b^\pm`): the support of a (and whether
       :math:`\|a\|_1 = \kappa`), the support of b with its signs :math:`s` (on the face
       :math:`r = \sum_j\sigma_j s_j b_j` is linear);
    3. a Newton step on the face: the generalised Hessian of the piecewise-quadratic row
       objective, :math:`\frac{\lambda_i}m\sum_s [\mathbb 1_{up}k^+_s k^{+\top}_s +
       \mathbb 1_{down}k^-_s k^{-\top}_s]` with :math:`k^\pm_s = [x_s,\ u_s \pm \sigma\odot s,
       1]`, written as one weighted Gram matrix of :math:`[x_s, u_s, 1]` plus rank-two
       corrections, and one equality-constrained KKT solve per row;
    4. a per-row Armijo search on the true objective along the projection arc (b kept in its
       face orthant, a in the ball); rows where it fails take a proximal-gradient step with an
       adaptive step size, or the :math:`1/L_i` point of 1.
    """
    rp = _Rows(Mt, n, p, P, lam, kappa, pen, sigma)
    m, d = Mt.shape
    npen = n + p
    work = np.arange(W.shape[0])
    idx_d = np.arange(d)
    is_pen = idx_d < npen
    sig_full = np.zeros(d)
    sig_full[n:npen] = sigma
    converged = False
    n_iter = 0
    f_cur = rp.values(W, work)
    t_fb = 4.0 * steps  # adaptive fallback steps
    for k in range(1, max_iter + 1):
        n_iter = k
        Wr = W[work]
        # ---- 1. proximal-gradient point of the split problem: test and fallback
        Sr = rp.to_split(Wr)
        st = steps[work][:, None]
        gS0 = rp.split_grad(Sr, work)
        Sh = rp.split_prox(Sr - st * gS0, st)
        res = np.abs(Sh - Sr).max(axis=1)
        done = res <= tol * np.maximum(1.0, np.abs(Sr).max(axis=1))
        if done.all():
            converged = True
            break
        keep = ~done
        work, Wr, Sh, Sr, gS0 = work[keep], Wr[keep], Sh[keep], Sr[keep], gS0[keep]
        fr = f_cur[work]
        r = work.size
        Wh = rp.from_split(Sh)
        # ---- pieces at the current point (true r)
        _, _, up, down, t = rp.pieces(Wr, work)
        wl = lam[work] / m
        act_up = (up > 0) * wl
        act_dn = ((t > 0) & (t < rp.P[:, work])) * wl
        Gz = (up - down) * wl
        gr = (up + down).sum(axis=0) * wl
        g0 = Gz.T @ Mt  # gradient through z
        G = weighted_grams(Mt, act_up + act_dn)
        vp = act_up.T @ Mt  # sum_s 1_up k_s (weighted)
        vm = act_dn.T @ Mt
        Np = act_up.sum(axis=0)
        Nm = act_dn.sum(axis=0)
        # ---- 2. face from a scaled proximal step
        diag = G[:, idx_d, idx_d] + (Np + Nm)[:, None] * sig_full ** 2
        if rp.l2:
            diag = diag + rp.alpha * is_pen
        # one step for the A part (the ball needs a common step): its mean curvature; one per
        # coordinate for b+, b- (separable constraints): a diagonal-Newton step
        t_a = (n / np.maximum(diag[:, :n].sum(axis=1), 1e-300))[:, None]
        T = np.empty_like(Sr)
        T[:, :n] = t_a
        db = 1.0 / np.maximum(diag[:, n:npen], 1e-300)
        T[:, n:npen] = db
        T[:, npen:npen + p] = db
        T[:, npen + p:] = 0.0
        V = Sr - T * gS0
        V = rp.split_prox(V, t_a)
        Vw = rp.from_split(V)
        sgn = np.sign(Vw)
        free = np.ones((r, d), dtype=bool)
        free[:, :npen] = Vw[:, :npen] != 0
        on_ball, cvec = ball_face(V[:, :n], d, kappa)
        # ---- 3. Newton step on the face: e = [0, sigma * s, 0] shifts k to k^{+/-}
        E = sgn * sig_full
        gf = g0 + gr[:, None] * E
        H = G + (vp - vm)[:, :, None] * E[:, None, :] + E[:, :, None] * (vp - vm)[:, None, :]
        H += (Np + Nm)[:, None, None] * E[:, :, None] * E[:, None, :]
        if rp.l2:
            H[:, idx_d[is_pen], idx_d[is_pen]] += rp.alpha
            gf = gf + rp.alpha * Wr * is_pen
        elif rp.l1:
            gf = gf + rp.alpha * sgn * is_pen
        dH = H[:, idx_d, idx_d]
        reg = 1e-10 * np.maximum(dH.max(axis=1), 1e-300)
        # fixed coordinates move to 0
        K, rhs, dz = face_kkt(H, reg, cvec, free, on_ball, gf, Wr, kappa)
        delta = solve_face(K, rhs, free, dz)
        bad = ~np.isfinite(delta).all(axis=1)  # a singular face: take the proximal direction
        delta[bad] = (Wh - Wr)[bad]
        cap_rows(delta, Wr, kappa)
        gd = np.minimum((gf * delta).sum(axis=1), 0.0)
        # ---- 4. per-row Armijo search on the true objective; fall back to the prox point
        Wn = Wh
        fn = np.full(r, np.nan)

        def trial(Wt, rows, work=work, sgn=sgn):
            # projection arc: b stays in its face orthant (|b| is linear there), a in the ball
            Wt[:, n:npen] *= (Wt[:, n:npen] * sgn[rows, n:npen]) > 0
            WtA = Wt[:, :n]
            _project_l1_rows(WtA, kappa, out=WtA)
            return rp.values(Wt, work[rows]), None

        _, todo = armijo_rows(Wr, delta, fr, gd, np.arange(r), trial, Wn, fn)
        if todo.size:
            # proximal-gradient step with an adaptive step (doubled after each success, back to
            # 1/L_i on failure): curvature is often far below L_i on nearly inactive states
            wt = work[todo]
            tt = t_fb[wt][:, None]
            Sn = rp.split_prox(Sr[todo] - tt * gS0[todo], tt)
            Wt = rp.from_split(Sn)
            ft = rp.values(Wt, wt)
            dS = Sn - Sr[todo]
            bound = (fr[todo] + (gS0[todo] * dS).sum(axis=1)
                     + (dS * dS).sum(axis=1) / (2 * tt[:, 0]))
            ok = ft <= bound
            acc = todo[ok]
            Wn[acc] = Wt[ok]
            fn[acc] = ft[ok]
            t_fb[wt[ok]] *= 2.0
            t_fb[wt[~ok]] = steps[wt[~ok]]
            todo = todo[~ok]  # these keep the 1/L_i point
            fn[todo] = rp.values(Wn[todo], work[todo])
        W[work] = Wn
        f_cur[work] = fn
    return W, n_iter, converged


# --------------------------------------------------------------------------------------------
# cvxpy formulation of the same problem
# --------------------------------------------------------------------------------------------
def _cvxpy(X, U, P, lam, kappa, pen, sigma, fit_bias, tol, max_iter, solver=None):
    """The cvxpy formulation (one problem over all rows); ``(A, B, b, n_iter, converged,
    name)``."""
    import cvxpy as cp

    m, n = X.shape
    W, b, Z = ab_cvxpy_variables(X, U, fit_bias)
    r = cp.abs(W[:, n:]) @ sigma  # |B| sigma, shape (n,)
    R = np.ones((m, 1)) @ cp.reshape(r, (1, n), order="C")
    lam_rows = np.tile(lam, (m, 1))
    up = cp.sum(cp.multiply(0.5 * lam_rows, cp.square(cp.pos(Z + R - P))))
    pos_p = P > 0
    inv_p = np.where(pos_p, 1.0 / np.where(pos_p, P, 1.0), 0.0)
    # h_P(t) = P^2/2 * huber(t_+/P, 1) for P > 0, and 0 for P = 0
    down = cp.sum(cp.multiply(0.5 * lam_rows * P * P,
                              cp.huber(cp.multiply(inv_p, cp.pos(P - Z + R)), 1.0)))
    return ab_cvxpy_solve((up + down) / m + pen.cvxpy(W), W, b, kappa, "robust (A, B)", tol,
                          max_iter, solver)
