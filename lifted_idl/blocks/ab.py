r"""The (A, B, b) block of BCD: fit the state equation to the proxy states in divergence.

.. math::

    \min_{A, B, b}\; \frac1m\sum_{i=1}^n \lambda_i \sum_{s=1}^m
        F_\phi\big(P_{si},\, (XA^\top + UB^\top + \mathbf 1b^\top)_{si}\big)
        + \mathrm{Pen}([A\ B])
    \quad\text{s.t.}\quad \|A\|_\infty \le \kappa

(theory §7 and §2; arXiv §4.2, eq. (13); [IDL §6.2] for the projection). With
:math:`M = [X\ U\ \mathbf 1]` and :math:`w_i` the i-th row of :math:`[A\ B\ b]` the problem
separates across rows; row i minimises
:math:`\frac{\lambda_i}m\sum_s \big(f(M_s w_i) - P_{si} M_s w_i\big) + \mathrm{pen}(w_i)`
over :math:`\|w_{i,A}\|_1 \le \kappa` (the :math:`f^*(P)` part of :math:`F` is constant). For ReLU
:math:`f(z) = \tfrac12 z_+^2`: a convex piecewise-quadratic program.

Fast solver (``method="fast"``): a semismooth Newton method on all rows at once
(:func:`_ab_newton`). With a free bias the design is first centred,
:math:`[X - \bar x,\ U - \bar u,\ \mathbf 1]`, an exact reparametrisation
(:math:`b' = b + A\bar x + B\bar u`). Optimality of row i is the fixed point
:math:`w = \mathrm{prox}_t(w - t\nabla)`, the prox of "penalty + l1 ball on the A part" (for the
zero, ridge and l1 penalties exactly the penalty's shrinkage followed by the row-wise l1-ball
projection of theory §2). Each iteration takes a Newton step on the face of the feasible set that
this proximal point identifies (one small KKT solve per row with the generalised Hessian
:math:`\frac{\lambda_i}m M^\top\mathrm{diag}(\phi'(z))M`, updated incrementally for ReLU), an
Armijo search along the projection arc, and falls back to a proximal-gradient step
(step :math:`1/L_i`, :math:`L_i = \lambda_i\gamma\|M\|_2^2/m`) where the search fails, so every
iteration descends. Rows stop individually. On ReLU instances shaped like the BCD loop's (states
strongly correlated given U, all rows on the ball) it needs 10-60 iterations where FISTA
(:func:`_ab_fista`, per-row steps, momentum and gradient restarts, kept as the measured
baseline) needs 250-2000; ``benchmarks/bench_blocks.py`` prints both. The rows being
independent, ``n_jobs`` splits them into contiguous chunks solved in parallel threads, each by
the same method; the face-Newton routines are shared with the robust block (:mod:`._newton`).

The cvxpy formulation (``method="cvxpy"``) is one problem over all rows (never one problem per
row), built with the data as constants and solved by Clarabel (see :mod:`._common` for why not
DPP Parameters).

Boundedness. For :math:`P \in \mathrm{dom} f^*` each row objective is bounded below: for ReLU
with :math:`P \ge 0`, :math:`\tfrac12 z_+^2 - Pz \ge -\tfrac12 P^2`; for tanh/sigmoid with
:math:`P` in the *open* interval, :math:`f(z) - Pz` is coercive in :math:`z`; a convex
piecewise-quadratic or coercive-in-:math:`Mw` function attains its minimum. The only degenerate
cases are flat ones (a state whose column of X is constant or zero, a row with
:math:`P_{:,i} = 0` for ReLU whose minimisers are all :math:`w` with :math:`Mw \le 0`, a
rank-deficient design): there the minimiser is not unique, the solver converges to one of them
from ``init`` (an adaptive Levenberg–Marquardt damping handles the singular Hessian), and the
objective value is exact. The guard is on the data: ``P`` outside the domain of :math:`f^*`
(negative for ReLU; :math:`|P| \ge 1` for tanh, where the objective can be unbounded below)
raises ValueError.
"""

from __future__ import annotations

import numpy as np

from ..penalties import L1Penalty, L2Penalty, NoPenalty, PartialGroupPenalty
from ..wellposedness import project_inf_norm_ball
from ._common import (
    BlockResult,
    ab_cvxpy_solve,
    ab_cvxpy_variables,
    check_ab_data,
    check_ab_init,
    check_n_jobs,
    check_options,
    get_block_penalty,
    get_fenchel_activation,
    keep_better,
    penalty_prox,
    project_l1_rows,
    solve_row_chunks,
)
from ._newton import (
    RowHessians,
    armijo_rows,
    ball_face,
    cap_rows,
    design,
    face_kkt,
    from_internal,
    solve_face,
    to_internal,
)
from .objective import _ab_objective

__all__ = ["solve_ab"]


def _check(X, U, P, lam, kappa, activation, penalty, init):
    act = get_fenchel_activation(activation, "(A, B)")
    pen = get_block_penalty(penalty, "penalty", allow_group=True)
    X, U, P, lam, kappa = check_ab_data(X, U, P, lam, kappa, act, pen)
    init = check_ab_init(init, X.shape[1], U.shape[1])
    return X, U, P, lam, kappa, act, pen, init


def solve_ab(X, U, P, lam, kappa, activation, penalty, *, fit_bias: bool = True, init=None,
             method: str = "fast", tol: float = 1e-8, max_iter: int = 2000,
             n_jobs: int | None = None) -> BlockResult:
    r"""Solve the (A, B, b) block exactly (theory §7, arXiv (13)).

    .. math::

        \min_{A, B, b}\; \frac1m\sum_i \lambda_i \sum_s F_\phi(P_{si}, Z_{si})
        + \mathrm{Pen}([A\ B]) \quad \text{s.t. } \|A\|_\infty \le \kappa,
        \qquad Z = XA^\top + UB^\top + \mathbf 1 b^\top.

    Parameters
    ----------
    X : ndarray of shape (m, n)
        States.
    U : ndarray of shape (m, p)
    P : ndarray of shape (m, n)
        Proxy states, in :math:`\mathrm{dom} f^*` (``>= 0`` for ReLU, in ``(-1, 1)`` for tanh).
    lam : float or ndarray of shape (n,)
        Per-state divergence weights, > 0.
    kappa : float
        Bound on :math:`\|A\|_\infty` (> 0; < 1 for well-posedness).
    activation : Activation or str
    penalty : Penalty or str
        NoPenalty, L2Penalty or L1Penalty on ``[A B]`` (b is not penalised).
    fit_bias : bool, default=True
        Fit :math:`b`; otherwise :math:`b = 0`.
    init : tuple (A, B, b), optional
        Warm start (A is projected onto the ball first). The returned objective is never above
        the objective at ``init`` (``+inf`` when ``init`` violates the constraint).
    method : {"fast", "cvxpy"}
    tol : float, default=1e-8
        A row has converged when its proximal-gradient step with the inverse mean curvature,
        :math:`\|\mathrm{prox}_t(w - t\nabla) - w\|_\infty`, is below
        ``tol * max(1, max|w|)``; cvxpy: Clarabel's tolerances (clipped to [1e-10, 1e-6]).
    max_iter : int, default=2000
    n_jobs : int, optional
        Solve the rows of ``[A B b]`` in parallel: ``None`` or 1 solves all rows at once in
        this thread; an int > 1 splits them into that many contiguous chunks (at most one per
        row), each solved by the same vectorised Newton method on its own rows, in parallel
        threads with BLAS limited to one thread each; -1 uses all cores. The rows are
        independent problems, so the solution is the sequential one up to rounding;
        ``n_iter`` is the largest of the chunks' and ``converged`` requires every chunk to
        converge. Ignored (sequential) where the rows are not separable, for a
        :class:`~lifted_idl.penalties.PartialGroupPenalty` of strength > 0 (it couples the
        rows through the columns of B), and by ``method="cvxpy"`` (one problem over all
        rows).

    Returns
    -------
    BlockResult
        ``value = (A, B, b)`` of shapes (n, n), (n, p), (n,).

    Raises
    ------
    ValueError
        Bad shapes, NaN/inf, ``P`` outside the domain of :math:`f^*`, unsupported activation,
        ``n_jobs`` not None, an int >= 1 or -1.
    SolverError
        The cvxpy solve failed or was infeasible.
    """
    check_options(method, tol, max_iter)
    n_workers = check_n_jobs(n_jobs)
    X, U, P, lam, kappa, act, pen, init = _check(X, U, P, lam, kappa, activation, penalty, init)
    n = X.shape[1]
    if init is not None and not fit_bias:
        init = (init[0], init[1], np.zeros(n))
    init_obj = None
    if init is not None:
        init_obj = _ab_objective(X, U, P, lam, kappa, act, pen, *init)
    if method == "cvxpy":
        A, B, b, n_iter, conv = _ab_cvxpy(X, U, P, lam, kappa, act, pen, fit_bias, tol,
                                          max_iter)
        solver = "cvxpy:CLARABEL"
    elif isinstance(pen, PartialGroupPenalty) and pen.alpha > 0:
        A, B, b, n_iter, conv, solver = _ab_group(X, U, P, lam, kappa, act, pen, fit_bias,
                                                  init, tol, max_iter)
    else:
        if isinstance(pen, PartialGroupPenalty):  # strength 0: no penalty
            pen = NoPenalty()
        A, B, b, n_iter, conv = _ab_newton(X, U, P, lam, kappa, act, pen, fit_bias, init, tol,
                                           max_iter, n_workers)
        solver = "newton"
    obj = _ab_objective(X, U, P, lam, kappa, act, pen, A, B, b)
    res = BlockResult((A, B, b), float(obj), int(n_iter), bool(conv), solver)
    return keep_better(res, init, init_obj)


def _ab_fista(X, U, P, lam, kappa, act, pen, fit_bias, init, tol, max_iter):
    """FISTA baseline (per-row steps, momentum and gradient restarts, O'Donoghue & Candès 2015).

    Not used by :func:`solve_ab`: kept as the first-order reference that the benchmark times
    against the Newton solver. Returns ``(A, B, b, n_iter, converged)``.
    """
    m, n = X.shape
    p = U.shape[1]
    d = n + p
    if fit_bias:
        mbar = np.concatenate([X.mean(axis=0), U.mean(axis=0)])
        Mc = np.hstack([X, U])
        Mc -= mbar
    else:
        mbar = np.zeros(d)
        Mc = np.hstack([X, U])
    gamma = float(act.lipschitz)
    sM = float(np.linalg.eigvalsh(Mc.T @ Mc)[-1]) if d else 0.0
    # per-row steps: 1/L_i with L_i = (lam_i gamma / m) ||Mc||^2 (bias: lam_i gamma)
    step_W = m / (lam * gamma * max(sM, 1e-300))
    step_b = 1.0 / (lam * gamma)
    stepW_col = step_W[:, None]
    scale_g = lam / m

    if init is None:
        Wx = np.zeros((n, d))
        bx = np.zeros(n)
    else:
        Wx = np.hstack([project_inf_norm_ball(init[0], kappa), init[1]])
        bx = init[2] + Wx @ mbar if fit_bias else np.zeros(n)
    Wy, by = Wx.copy(), bx.copy()
    t = np.ones(n)
    converged = False
    n_iter = 0
    for k in range(1, max_iter + 1):
        n_iter = k
        Z = Mc @ Wy.T
        if fit_bias:
            Z += by
        G = act(Z)
        G -= P
        G *= scale_g
        gW = G.T @ Mc
        Wn = Wy - stepW_col * gW
        Wn = penalty_prox(pen, Wn, stepW_col)
        Wn[:, :n] = project_l1_rows(Wn[:, :n], kappa)
        if fit_bias:
            bn = by - step_b * G.sum(axis=0)
        else:
            bn = by
        dW = Wn - Wy
        db = bn - by
        step = max(float(np.abs(dW).max(initial=0.0)), float(np.abs(db).max(initial=0.0)))
        scale = max(1.0, float(np.abs(Wn).max(initial=0.0)), float(np.abs(bn).max(initial=0.0)))
        if step <= tol * scale:
            Wx, bx = Wn, bn
            converged = True
            break
        # per-row gradient restart: the step opposes the momentum direction
        restart = ((dW * (Wn - Wx)).sum(axis=1) + db * (bn - bx)) < 0.0
        # with dW = Wn - Wy, "(Wy - Wn) . (Wn - Wx) > 0" <=> "dW . (Wn - Wx) < 0"
        t_new = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
        beta = (t - 1.0) / t_new
        beta[restart] = 0.0
        t_new[restart] = 1.0
        Wy = Wn + beta[:, None] * (Wn - Wx)
        by = bn + beta * (bn - bx) if fit_bias else bn
        Wx, bx, t = Wn, bn, t_new
    A = np.ascontiguousarray(Wx[:, :n])
    B = np.ascontiguousarray(Wx[:, n:])
    b = bx - Wx @ mbar if fit_bias else np.zeros(n)
    return A, B, b, n_iter, converged


# --------------------------------------------------------------------------------------------
# face Newton (the default fast solver)
# --------------------------------------------------------------------------------------------
class _ABRows:
    r"""The row problems of the (A, B, b) block in the internal (centred) parametrisation.

    Row i: :math:`\frac{\lambda_i}{m}\sum_s [f(z_{si}) - P_{si} z_{si}] + \mathrm{pen}(w_i)`,
    :math:`z_{:,i} = M w_i`, over :math:`\|w_{i,A}\|_1 \le \kappa` (``f*(P)`` left out).
    """

    def __init__(self, M, P, lam, kappa, act, pen, n, npen):
        self.M, self.P, self.lam, self.kappa, self.act = M, P, lam, kappa, act
        self.n, self.npen, self.m = n, npen, M.shape[0]
        self.alpha = pen.alpha
        self.l1 = isinstance(pen, L1Penalty) and pen.alpha > 0
        self.l2 = isinstance(pen, L2Penalty) and pen.alpha > 0

    def values(self, W, rows, Z=None):
        if Z is None:
            Z = self.M @ W.T
        F = self.act.f(Z) - self.P[:, rows] * Z
        v = F.sum(axis=0) * (self.lam[rows] / self.m)
        if self.l2:
            v += 0.5 * self.alpha * (W[:, :self.npen] ** 2).sum(axis=1)
        elif self.l1:
            v += self.alpha * np.abs(W[:, :self.npen]).sum(axis=1)
        return v, Z

    def grad(self, W, rows, Z=None, ridge=True):
        """Gradient of the data term (plus the ridge's when ``ridge``)."""
        if Z is None:
            Z = self.M @ W.T
        G = self.act(Z)
        G -= self.P[:, rows]
        G *= self.lam[rows] / self.m
        g = G.T @ self.M
        if self.l2 and ridge:
            g[:, :self.npen] += self.alpha * W[:, :self.npen]
        return g, Z

    def prox(self, V, steps):
        """Prox of penalty + ball with per-row ``steps`` (shape (r, 1)): shrink, then project."""
        npen, n = self.npen, self.n
        if self.l2:
            V[:, :npen] /= 1.0 + steps * self.alpha
        elif self.l1:
            thr = steps * self.alpha
            V[:, :npen] = np.sign(V[:, :npen]) * np.maximum(np.abs(V[:, :npen]) - thr, 0.0)
        V[:, :n] = project_l1_rows(V[:, :n], self.kappa)
        return V


def _ab_newton(X, U, P, lam, kappa, act, pen, fit_bias, init, tol, max_iter, n_workers=1):
    r"""Semismooth (face) Newton method on all rows at once (:func:`_ab_newton_rows`), or on
    ``n_workers`` contiguous chunks of rows in parallel (:func:`~._common.solve_row_chunks`).

    The design, its curvature bound and the starting point are built once and shared by the
    chunks; each chunk gets its own columns of ``P``, weights and rows of the start.
    Returns ``(A, B, b, n_iter, converged)``.
    """
    m, n = X.shape
    p = U.shape[1]
    npen = n + p
    M, mbar = design(X, U, fit_bias)
    d = M.shape[1]
    Mc = M[:, :npen]
    sM = float(np.linalg.eigvalsh(Mc.T @ Mc)[-1]) if npen else 0.0
    if fit_bias:
        sM = max(sM, float(m))
    steps = m / (lam * float(act.lipschitz) * max(sM, 1e-300))
    if init is None:
        W = np.zeros((n, d))
    else:
        W = to_internal(project_inf_norm_ball(init[0], kappa), init[1], init[2], mbar,
                        fit_bias)
    rn2 = np.einsum("sj,sj->s", M, M)
    Kr = RowHessians.khatri_rao(M) if n_workers > 1 else None

    def task(rows):
        return _ab_newton_rows, (M, P[:, rows], lam[rows], steps[rows], rn2, kappa, act, pen, n,
                                 npen, W[rows], tol, max_iter, Kr)

    W, n_iter, converged = solve_row_chunks(task, n, n_workers)
    A, B, b = from_internal(W, n, p, mbar, fit_bias)
    return A, B, b, n_iter, converged


def _ab_newton_rows(M, P, lam, steps, rn2, kappa, act, pen, n, npen, W, tol, max_iter,
                    Kr=None):
    r"""Semismooth (face) Newton method on the rows ``W`` (r, d) of the internal parameters.

    The rows share the design ``M`` (m, d) (:func:`~._newton.design`), its squared row norms
    ``rn2`` and, optionally, the Khatri-Rao rows ``Kr`` of :class:`~._newton.RowHessians`;
    each row has its own column of ``P`` (m, r), weight ``lam`` (r,) and safe step ``steps``
    (r,) (the proximal-gradient step :math:`1/L_i`). ``n`` is the number of states (columns of
    A), ``npen`` that of the penalised columns ``[A B]``. Returns ``(W, n_iter, converged)``;
    ``W`` is updated in place.

    Optimality of row i is the fixed point :math:`w = \mathrm{prox}_t(w - t\nabla)` for any
    step :math:`t > 0` (prox of the penalty and the ball). Each iteration, on the rows not yet
    converged:

    1. the generalised Hessian :math:`H_i = \frac{\lambda_i}{m}M^\top\mathrm{diag}
       (\phi'(z_i))M` (+ ridge) and the step :math:`t_i = d/\mathrm{tr}H_i` (inverse mean
       curvature) give the point :math:`v = \mathrm{prox}_{t}(w - t\nabla)`; the row has
       converged when :math:`\|v - w\|_\infty \le` ``tol`` :math:`\max(1, \|w\|_\infty)`;
    2. the face of :math:`v` (zero entries of A, and of [A B] for l1; signs; whether
       :math:`\|v_A\|_1 = \kappa`) is the working face, and the Newton step for the problem
       restricted to it is one (d + 1) × (d + 1) KKT solve per row (entries leaving the face
       move to 0; :math:`\sigma^\top(w + \Delta)_A = \kappa` on the ball), with an adaptive
       Levenberg–Marquardt damping for near-flat faces;
    3. a per-row Armijo search along the projection arc :math:`\Pi(w + a\Delta)`; rows where
       it fails take the proximal-gradient step with :math:`t = 1/L_i` (a guaranteed descent)
       and raise their damping.

    For ReLU the objective is piecewise quadratic: once the face and the sign pattern of z are
    right the step is exact, so the iteration ends at the solution up to rounding.
    """
    m, d = M.shape
    n_rows = W.shape[0]
    rp = _ABRows(M, P, lam, kappa, act, pen, n, npen)
    hess = RowHessians(M, n_rows, Kr)
    work = np.arange(n_rows)
    idx_pen = np.arange(npen)
    idx_d = np.arange(d)
    is_pen = idx_d < npen
    damp = np.zeros(n_rows)  # Levenberg-Marquardt damping, relative to the mean curvature
    converged = False
    n_iter = 0
    f_cur, Z = rp.values(W, work)
    for k in range(1, max_iter + 1):
        n_iter = k
        Wr = W[work]
        g, _ = rp.grad(Wr, work, Z, ridge=False)
        Dw = act.derivative(Z)
        Dw *= lam[work] / m
        trace = Dw.T @ rn2
        if rp.l2:
            trace += rp.alpha * npen
        st = steps[work]
        t_id = np.where(trace > 0, d / np.maximum(trace, 1e-300), st)
        t_id = np.maximum(t_id, st)[:, None]
        V = rp.prox(Wr - t_id * g, t_id)
        res = np.abs(V - Wr).max(axis=1)
        done = res <= tol * np.maximum(1.0, np.abs(Wr).max(axis=1))
        if done.all():
            converged = True
            break
        keep = ~done
        work, Wr, V, g, Z, Dw = work[keep], Wr[keep], V[keep], g[keep], Z[:, keep], Dw[:, keep]
        st = st[keep][:, None]
        Wh = rp.prox(Wr - st * g, st)  # the guaranteed-descent fallback
        fr = f_cur[work]
        r = work.size
        H = hess.update(work, Dw)
        if rp.l2:
            H[:, idx_pen, idx_pen] += rp.alpha
            g = g + rp.alpha * Wr * is_pen
        diag = H[:, idx_d, idx_d]
        # ---- the working face, from v
        free = np.ones((r, d), dtype=bool)
        free[:, :n] = V[:, :n] != 0
        gf = g.copy()
        if rp.l1:
            free[:, n:npen] = V[:, n:npen] != 0
            gf[:, :npen] += rp.alpha * np.sign(V[:, :npen])
        on_ball, cvec = ball_face(V[:, :n], d, kappa)
        # ---- Newton step on the face: leaving entries go to 0, c^T (w + delta) = kappa
        mean_curv = np.maximum(diag.sum(axis=1) / d, 1e-300)
        reg = 1e-10 * np.maximum(diag.max(axis=1), 1e-300) + damp[work] * mean_curv
        K, rhs, dz = face_kkt(H, reg, cvec, free, on_ball, gf, Wr, kappa)
        delta = solve_face(K, rhs, free, dz)
        delta[~np.isfinite(delta).all(axis=1)] = 0.0  # a singular face: take the fallback
        cap_rows(delta, Wr, kappa)
        gd = np.minimum((gf * delta).sum(axis=1), 0.0)
        # ---- per-row Armijo search along the projection arc; fall back to the prox point
        Wn = Wh
        fn = np.full(r, np.nan)
        Zn = np.empty((m, r))

        def trial(Wt, rows, work=work):
            Wt[:, :n] = project_l1_rows(Wt[:, :n], kappa)
            return rp.values(Wt, work[rows])

        todo = np.flatnonzero(np.abs(delta).max(axis=1) > 0)
        a, _ = armijo_rows(Wr, delta, fr, gd, todo, trial, Wn, fn, Zn)
        failed = np.isnan(fn)
        # adapt the damping: relax it after a full step, raise it after a failed search
        dw = damp[work]
        dw = np.where(a >= 1.0, dw * 0.1, dw)
        dw[failed] = np.maximum(dw[failed] * 10.0, 1e-4)
        damp[work] = np.where(dw < 1e-8, 0.0, dw)
        if failed.any():  # the prox point (Wn already holds it for these rows)
            fb, Zb = rp.values(Wn[failed], work[failed])
            fn[failed] = fb
            Zn[:, failed] = Zb
        W[work] = Wn
        f_cur[work] = fn
        Z = Zn
    return W, n_iter, converged


def _ab_cvxpy(X, U, P, lam, kappa, act, pen, fit_bias, tol, max_iter):
    """The cvxpy formulation (one problem over all rows); ``(A, B, b, n_iter, converged)``."""
    import cvxpy as cp

    m = X.shape[0]
    W, b, Z = ab_cvxpy_variables(X, U, fit_bias)
    lam_rows = np.tile(lam, (m, 1))
    # f*(P) is constant here; it is added back by the numpy objective
    div = cp.sum(cp.multiply(lam_rows, act.f_cvxpy(Z))) - cp.sum(cp.multiply(lam_rows * P, Z))
    return ab_cvxpy_solve(div / m + pen.cvxpy(W), W, b, kappa, "(A, B)", tol, max_iter)


# --------------------------------------------------------------------------------------------
# the group penalty [IDL (5.1)]: rows coupled through the columns of B
# --------------------------------------------------------------------------------------------
class _GroupAB:
    r"""The (A, B, b) block with a :class:`~lifted_idl.penalties.PartialGroupPenalty` on B.

    In the internal (centred) parametrisation :math:`W = [A\ B\ b']` the objective is
    :math:`\sum_i \frac{\lambda_i}{m}\sum_s [f(z_{si}) - P_{si}z_{si}] + \alpha\sum_j
    \|(B e_j; F e_j)\|_r` over :math:`\|A_{i,:}\|_1 \le \kappa` (the :math:`f^*(P)` part of the
    divergence left out). The penalty couples the rows, so unlike :func:`_ab_newton` the rows
    are not solved independently; the constraint (rows of A) and the penalty (columns of B)
    still act on disjoint entries, so the prox of their sum is the pair of exact proxes, also
    in any diagonal metric that is constant on every row of A and every column of B.
    """

    def __init__(self, X, U, P, lam, kappa, act, pen, fit_bias):
        m, n = X.shape
        p = U.shape[1]
        self.m, self.n, self.p, self.npen = m, n, p, n + p
        self.M, self.mbar = design(X, U, fit_bias)
        self.d = self.M.shape[1]
        self.lam, self.kappa, self.act, self.pen = lam, kappa, act, pen
        self.rows = _ABRows(self.M, P, lam, kappa, act, NoPenalty(), n, n + p)
        self.all = np.arange(n)
        self.M2 = self.M * self.M
        sM = float(np.linalg.eigvalsh(self.M.T @ self.M)[-1]) if self.d else 0.0
        self.ridge = pen.ridge  # on A, in the smooth part
        # per-row Lipschitz constants of the smooth gradient, and the safe steps: 1/L_i on the
        # row-separable entries (A, bias), 1/max_i L_i on the columns of B (one step a group)
        self.L = np.maximum(lam * float(act.lipschitz) * max(sM, 1e-300) / m + self.ridge,
                            1e-300)
        self.safe_row = 1.0 / self.L
        self.safe_col = float(1.0 / self.L.max())

    def value(self, W, Z=None):
        v, Z = self.rows.values(W, self.all, Z)
        f = float(v.sum()) + self.pen.value_part(W[:, self.n:self.npen])
        if self.ridge:
            f += 0.5 * self.ridge * float(np.vdot(W[:, :self.n], W[:, :self.n]))
        return f, Z

    def grad(self, W, Z=None):
        """Gradient of the smooth part (data term and the ridge on A)."""
        g, Z = self.rows.grad(W, self.all, Z, ridge=False)
        if self.ridge:
            g[:, :self.n] += self.ridge * W[:, :self.n]
        return g, Z

    def prox(self, V, row_steps, col_steps):
        """Prox of ball + group at ``V`` in the metric (row steps on A, column steps on B)."""
        n, npen = self.n, self.npen
        V[:, :n] = project_l1_rows(V[:, :n], self.kappa)
        V[:, n:npen] = self.pen.prox_part(V[:, n:npen], col_steps)
        return V

    def step(self, W, g, row_steps, col_steps):
        """The proximal-gradient point with per-row steps (A, bias) and per-column steps (B)."""
        n, npen = self.n, self.npen
        V = W - row_steps[:, None] * g
        V[:, n:npen] = W[:, n:npen] - col_steps[None, :] * g[:, n:npen]
        return self.prox(V, row_steps, col_steps)

    def metric_steps(self, Z):
        r"""Inverse mean curvatures: :math:`d/\mathrm{tr}H_i` per row, :math:`n/\sum_i
        (H_i)_{jj}` per column of B (never below the safe steps); also the Hessian diagonal."""
        Dw = self.act.derivative(Z)
        Dw *= self.lam / self.m
        hd = Dw.T @ self.M2  # (n, d): diagonals of the row Hessians
        hd[:, :self.n] += self.ridge
        tr = hd.sum(axis=1)
        row = np.where(tr > 0, self.d / np.maximum(tr, 1e-300), self.safe_row)
        row = np.maximum(row, self.safe_row)
        cs = hd[:, self.n:self.npen].sum(axis=0)
        col = np.where(cs > 0, self.n / np.maximum(cs, 1e-300), self.safe_col)
        col = np.maximum(col, self.safe_col)
        return row, col, Dw

    def residual(self, W, g, Z):
        """Scaled prox-gradient residual (the stopping test) and the prox point."""
        row, col, Dw = self.metric_steps(Z)
        V = self.step(W, g, row, col)
        res = float(np.abs(V - W).max(initial=0.0))
        return res, V, row, col, Dw


def _ab_group(X, U, P, lam, kappa, act, pen, fit_bias, init, tol, max_iter):
    """Dispatch: face Newton for the l2 group norm, FISTA for the l-inf one."""
    prob = _GroupAB(X, U, P, lam, kappa, act, pen, fit_bias)
    if init is None:
        W = np.zeros((prob.n, prob.d))
    else:
        W = to_internal(project_inf_norm_ball(init[0], kappa), init[1], init[2], prob.mbar,
                        fit_bias)
    if pen.ord == 2:
        W, n_iter, conv = _ab_group_newton(prob, W, tol, max_iter)
        solver = "group_newton"
    else:
        W, n_iter, conv = _ab_group_fista(prob, W, tol, max_iter)
        solver = "group_fista"
    A, B, b = from_internal(W, prob.n, prob.p, prob.mbar, fit_bias)
    return A, B, b, n_iter, conv, solver


def _ab_group_fista(prob: _GroupAB, W, tol, max_iter, check_every: int = 5):
    r"""Accelerated proximal gradient (FISTA with function-value restarts) for the group block.

    Steps :math:`1/L_i` on row i's A entries and bias and :math:`1/\max_i L_i` on the columns
    of B (the descent lemma holds in this diagonal metric since the data Hessian is block
    diagonal by rows with :math:`H_i \preceq L_i I`). Stops when the prox-gradient residual in
    the mean-curvature metric (:meth:`_GroupAB.residual`) is below ``tol * max(1, max|W|)``,
    tested every ``check_every`` iterations.
    """
    row, col = prob.safe_row, np.full(prob.p, prob.safe_col)
    f_cur, Z = prob.value(W)
    Wy, t = W.copy(), 1.0
    Zy = Z
    converged = False
    n_iter = 0
    for k in range(1, max_iter + 1):
        n_iter = k
        g, _ = prob.grad(Wy, Zy)
        Wn = prob.step(Wy, g, row, col)
        fn, Zn = prob.value(Wn)
        if fn > f_cur:  # restart: a plain prox-gradient step from the last iterate
            g, _ = prob.grad(W, Z)
            Wn = prob.step(W, g, row, col)
            fn, Zn = prob.value(Wn)
            t = 1.0
            Wy, Zy = Wn, Zn
        else:
            t_new = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
            Wy = Wn + ((t - 1.0) / t_new) * (Wn - W)
            Zy = None
            t = t_new
        W, Z, f_cur = Wn, Zn, fn
        if Zy is None:
            Zy = prob.M @ Wy.T
        if k % check_every == 0 or k == max_iter:
            gW, _ = prob.grad(W, Z)
            res = prob.residual(W, gW, Z)[0]
            if res <= tol * max(1.0, float(np.abs(W).max(initial=0.0))):
                converged = True
                break
    return W, n_iter, converged


def _group_trial(prob: _GroupAB, Wt, WB, bn):
    """A trial point on the projection arc: rows of A onto the ball, and the group analogue
    of the orthant projection: a column of B that the step takes through zero (against its
    current direction ``WB``) stops at zero."""
    n, npen = prob.n, prob.npen
    Wt[:, :n] = project_l1_rows(Wt[:, :n], prob.kappa)
    cross = ((Wt[:, n:npen] * WB).sum(axis=0) <= 0) & (bn > 0)
    Wt[:, n:npen][:, cross] = 0.0
    return Wt


def _group_search(prob: _GroupAB, W, f_cur, gf, direction, WB, bn):
    """Armijo backtracking on the whole objective along the projection arc of ``direction``;
    returns ``(a, W_new, f_new, Z_new)``, or ``(0, None, inf, None)`` when it fails."""
    gd = min(float((gf * direction).sum()), 0.0)
    a = 1.0
    if np.abs(direction).max(initial=0.0) > 0:
        for _ in range(12):
            Wt = _group_trial(prob, W + a * direction, WB, bn)
            ft, Zt = prob.value(Wt)
            if ft <= f_cur + 1e-4 * a * gd + 1e-15 * abs(f_cur):
                return a, Wt, ft, Zt
            a *= 0.5
    return 0.0, None, np.inf, None


def _ab_group_newton(prob: _GroupAB, W, tol, max_iter):
    r"""Face Newton method for the l2 group norm on all rows at once.

    Each iteration:

    1. the prox-gradient point :math:`v` in the mean-curvature metric (steps
       :math:`d/\mathrm{tr}H_i` on row i, :math:`n/\sum_i (H_i)_{jj}` on column j of B) gives
       the stopping test and the working face: zero entries of A, zero columns of B, the rows
       of A on the ball;
    2. on the face the penalty :math:`\alpha\sum_j\rho_j`, :math:`\rho_j = \|(B e_j; F e_j)\|_2`
       is smooth with Hessian :math:`\alpha(I/\rho_j - b_jb_j^\top/\rho_j^3)` on column j: the
       Newton matrix is the per-row KKT matrices of :func:`_ab_newton` (plus the diagonal
       :math:`\alpha/\rho_j`) minus one rank-one term per free column, solved by the Woodbury
       identity with one :math:`(d+1)\times(d+1)` inverse per row and a k × k system (k free
       columns). A column entering the face (b_j = 0, F e_j = 0) is linearised at its prox
       point;
    3. one Armijo search along the projection arc on the whole objective; if it fails, the
       proximal-gradient step with the safe steps of :func:`_ab_group_fista` (a guaranteed
       descent) and a larger Levenberg–Marquardt damping.
    """
    n, p, d, npen = prob.n, prob.p, prob.d, prob.npen
    kappa = prob.kappa
    alpha = prob.pen.alpha
    delta = prob.pen.fixed_norms
    hess = RowHessians(prob.M, n)
    idx_d = np.arange(d)
    damp = 0.0
    stalled = 0
    converged = False
    n_iter = 0
    f_cur, Z = prob.value(W)
    for k in range(1, max_iter + 1):
        n_iter = k
        g, _ = prob.grad(W, Z)
        res, V, row, col, Dw = prob.residual(W, g, Z)
        if res <= tol * max(1.0, float(np.abs(W).max(initial=0.0))):
            converged = True
            break
        H = hess.update(prob.all, Dw)
        if prob.ridge:
            H[:, idx_d[:n], idx_d[:n]] += prob.ridge
        # ---- working face
        free = np.ones((n, d), dtype=bool)
        free[:, :n] = V[:, :n] != 0
        VB = V[:, n:npen]
        fcol = np.any(VB != 0, axis=0) | (delta > 0)
        free[:, n:npen] = fcol[None, :]
        on_ball, cvec = ball_face(V[:, :n], d, kappa)
        # ---- smooth penalty on the free columns, linearised at b (or at v when entering)
        WB = W[:, n:npen]
        bn = np.sqrt((WB * WB).sum(axis=0))
        entering = fcol & (bn == 0) & (delta == 0)
        Bt = np.where(entering[None, :], VB, WB)
        rho = np.sqrt((Bt * Bt).sum(axis=0) + delta * delta)
        diag = H[:, idx_d, idx_d]
        # groups whose penalty curvature alpha/rho dwarfs the data's (norm near 0) are frozen
        # for this step: their Newton move is negligible and the prox fallback handles them
        frozen = fcol & (alpha > 1e12 * max(float(diag.mean()), 1e-300) * rho)
        fcol = fcol & ~frozen
        free[:, n:npen] = fcol[None, :]
        J = np.flatnonzero(fcol)
        gf = g.copy()
        gf[:, n + J] += alpha * Bt[:, J] / rho[J]
        # ---- per-row KKT matrices (A-ball faces, fixed entries), diagonal group term
        mean_curv = np.maximum(diag.sum(axis=1) / d, 1e-300)
        reg = 1e-10 * np.maximum(diag.max(axis=1), 1e-300) + damp * mean_curv
        group_diag = np.zeros(d)
        group_diag[n + J] = alpha / rho[J]
        dz = np.where(free, 0.0, -W)
        dz[:, n:npen][:, frozen] = 0.0
        K, rhs, dz = face_kkt(H, reg, cvec, free, on_ball, gf, W, kappa, dz=dz,
                              extra_diag=group_diag)
        with np.errstate(all="ignore"):
            try:
                Kinv = np.linalg.inv(K)
            except np.linalg.LinAlgError:
                Kinv = np.linalg.pinv(K)
            y0 = (Kinv @ rhs[:, :, None])[:, :, 0]
            if J.size:
                # Woodbury for K - sum_j u_j u_j^T, u_j = sqrt(alpha/rho_j^3) (b_j (x) e_{n+j})
                sq = np.sqrt(alpha / rho[J])
                Ub = (Bt[:, J] / rho[J]) * sq[None, :]  # (n, k): the row-i entry of u_j
                Q = Kinv[:, :, n + J] * Ub[:, None, :]  # (n, d+1, k) = Kinv u (per row)
                Sm = np.eye(J.size) - np.einsum("ij,ijl->jl", Ub, Q[:, n + J, :])
                wv = np.einsum("ij,ij->j", Ub, y0[:, n + J])
                try:
                    zv = np.linalg.solve(Sm, wv)
                except np.linalg.LinAlgError:
                    zv = np.linalg.lstsq(Sm, wv, rcond=None)[0]
                sol = y0 + (Q @ zv[None, :, None])[:, :, 0]
            else:
                sol = y0
        delta_W = np.where(free, sol[:, :d], dz)
        if not np.isfinite(delta_W).all():
            delta_W = np.zeros_like(W)
        big = 10.0 * (max(1.0, float(np.abs(W).max(initial=0.0))) + kappa)
        delta_W *= min(1.0, big / max(float(np.abs(delta_W).max(initial=0.0)), 1e-300))
        # ---- step length: an Armijo search on the whole objective along the projection arc
        # of delta; when it does not take the full step, also along that of diag(a) delta
        # with per-row lengths a_i (the data terms separate across rows: each row's own
        # Armijo step, its share of the penalty counted by the linearisation), keeping the
        # better point. Fall back to the safe prox step when both searches fail.
        a, Wt, ft, Zt = _group_search(prob, W, f_cur, gf, delta_W, WB, bn)
        if a < 1.0:
            gdr = np.minimum((gf * delta_W).sum(axis=1), 0.0)
            pen_lin = ((gf - g) * delta_W).sum(axis=1)
            fr = prob.rows.values(W, prob.all, Z)[0]
            ar = np.ones(n)
            todo = np.flatnonzero(np.abs(delta_W).max(axis=1) > 0)
            for _ in range(12):
                if todo.size == 0:
                    break
                Wr = _group_trial(prob, W + ar[:, None] * delta_W, WB, bn)[todo]
                fr_t = prob.rows.values(Wr, todo)[0]
                ok = fr_t + ar[todo] * pen_lin[todo] <= fr[todo] + 1e-4 * ar[todo] * gdr[
                    todo] + 1e-15 * np.abs(fr[todo])
                todo = todo[~ok]
                ar[todo] *= 0.5
            ar[todo] = 0.0
            a2, Wt2, ft2, Zt2 = _group_search(prob, W, f_cur, gf, ar[:, None] * delta_W, WB,
                                              bn)
            if ft2 < ft:
                a, Wt, ft, Zt = a2 * float(ar.max()), Wt2, ft2, Zt2
        # a step that does not decrease the objective (the projections undid it) counts as a
        # failed search, unless it halves the prox-gradient residual (a flat direction the
        # objective cannot resolve at its rounding level)
        accepted = Wt is not None and (ft < f_cur - 1e-15 * abs(f_cur) or (
            prob.residual(Wt, prob.grad(Wt, Zt)[0], Zt)[0] <= 0.5 * res))
        if accepted:
            damp = damp * 0.1 if a >= 1.0 else damp
            if damp < 1e-8:
                damp = 0.0
        else:
            damp = min(max(damp * 10.0, 1e-4), 1e8)
            Wt = prob.step(W, g, prob.safe_row, np.full(p, prob.safe_col))
            ft, Zt = prob.value(Wt)
            if not ft < f_cur:  # no step decreases f: the objective is at its rounding level
                stalled += 1
                if stalled >= 3:
                    break
                continue
            stalled = 0
        W, f_cur, Z = Wt, ft, Zt
    return W, n_iter, converged
