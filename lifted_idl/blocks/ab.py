r"""The (A, B, b) block of BCD: fit the state equation to the proxy states in divergence.

.. math::

    \min_{A, B, b}\; \frac1m\sum_{i=1}^n \lambda_i \sum_{s=1}^m
        F_\phi\big(P_{si},\, (XA^\top + UB^\top + \mathbf 1b^\top)_{si}\big)
        + \mathrm{Pen}([A\ B])
    \quad\text{s.t.}\quad \|A\|_\infty \le \kappa

(theory §8 and §3; arXiv §4.2, eq. (13); [IDL §6.2] for the projection). With
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
projection of theory §3). Each iteration takes a Newton step on the face of the feasible set that
this proximal point identifies (one small KKT solve per row with the generalised Hessian
:math:`\frac{\lambda_i}m M^\top\mathrm{diag}(\phi'(z))M`, updated incrementally for ReLU), an
Armijo search along the projection arc, and falls back to a proximal-gradient step
(step :math:`1/L_i`, :math:`L_i = \lambda_i\gamma\|M\|_2^2/m`) where the search fails, so every
iteration descends. Rows stop individually. On ReLU instances shaped like the BCD loop's (states
strongly correlated given U, all rows on the ball) it needs 10-60 iterations where FISTA
(per-row steps, momentum and gradient restarts; the baseline that
``benchmarks/bench_blocks.py`` times against it) needs 250-2000. The rows being
independent, ``n_jobs`` splits them into contiguous chunks solved in parallel threads, each by
the same method; the face-Newton routines are shared with the robust block (:mod:`._newton`).

Majorize–minimize (``method="mm"``, :mod:`.ab_mm`): the curvature of every row's smooth part
is below :math:`\frac{\lambda_i\gamma}m M^\top M`, one Gram matrix for all rows, so each MM
step is two m × n × (n + p + 1) products and one small QP per row (ADMM through the
eigendecomposition of :math:`M^\top M`), with a per-row curvature scale checked against the
objective; the objective decreases at every step. It is the inexact (A, B, b) step of BCD.

The cvxpy formulation (``method="cvxpy"``) is one problem over all rows (never one problem per
row), built with the data as constants and solved by the solver of its class (see
:mod:`._common`, and for why not DPP Parameters): OSQP for the ReLU and leaky-ReLU divergences
with a zero, ridge or l1 penalty (a quadratic program), ECOS with the l2 group norm, Clarabel
for tanh and sigmoid.

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

from .._validation import check_choice
from ..losses import unit_mean_weights
from ..penalties import GroupView, L1View, L2View, ZeroView, l1_thresholds
from ..wellposedness import _project_l1_rows, project_inf_norm_ball
from ._common import (
    BlockResult,
    ab_cvxpy_solve,
    ab_cvxpy_variables,
    ab_result,
    ab_warm_start,
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
from .ab_mm import ab_mm
from .objective import _ab_objective

__all__ = ["solve_ab"]


def _check(X, U, P, lam, kappa, activation, penalty, init):
    act = get_fenchel_activation(activation, "(A, B)")
    pen = get_block_penalty(penalty, "penalty", "ab", allow_group=True)
    X, U, P, lam, kappa = check_ab_data(X, U, P, lam, kappa, act, pen)
    init = check_ab_init(init, X.shape[1], U.shape[1])
    return X, U, P, lam, kappa, act, pen, init


def solve_ab(X, U, P, lam, kappa, activation, penalty, *, fit_bias: bool = True, init=None,
             method: str = "fast", tol: float = 1e-8, max_iter: int = 2000,
             n_jobs: int | None = None, cvxpy_solver: str | None = None,
             sample_weight=None) -> BlockResult:
    r"""Solve the (A, B, b) block exactly (theory §8, arXiv (13)).

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
    penalty : Penalty, BlockView or str
        NoPenalty, L2Penalty or L1Penalty, seen on ``[A B]`` (b is not penalised), or the group
        penalty's view of this block, ``GroupPenalty(alpha, ord).restrict("ab", {"D": D})``
        (:math:`\alpha\sum_j\|(Be_j; De_j)\|_r` [IDL (5.1)] with D fixed).
    fit_bias : bool, default=True
        Fit :math:`b`; otherwise :math:`b = 0`.
    init : tuple (A, B, b), optional
        Warm start (A is projected onto the ball first). The returned objective is never above
        the objective at ``init`` (``+inf`` when ``init`` violates the constraint).
    method : {"fast", "cvxpy", "mm"}
        ``"fast"``: the semismooth Newton method (exact to ``tol``); ``"cvxpy"``: the reference
        formulation; ``"mm"``: majorize–minimize steps batched over all rows
        (:func:`~.ab_mm.ab_mm`), each of cost :math:`O(mn(n+p))` plus small QPs independent of
        m, that decrease the objective at every step: the cheap inexact step for BCD (a few
        steps, ``max_iter``), or run to convergence an exact solver that needs more, cheaper
        iterations than Newton. Only the zero, ridge and l1 penalties; a group penalty of
        strength > 0 is solved by the exact ``"fast"`` path whatever ``method`` says.
    tol : float, default=1e-8
        A row has converged when its proximal-gradient step with the inverse mean curvature,
        :math:`\|\mathrm{prox}_t(w - t\nabla) - w\|_\infty`, is below
        ``tol * max(1, max|w|)``; cvxpy: the solver's tolerances (clipped to [1e-10, 1e-6]);
        mm: the MM step, relative, :math:`\max_i\|w_i^{k+1} - w_i^k\|_\infty \le`
        ``tol * max(1, max|W|)``.
    max_iter : int, default=2000
        Iterations at most (mm: the number of MM steps).
    n_jobs : int, optional
        Solve the rows of ``[A B b]`` in parallel: ``None`` or 1 solves all rows at once in
        this thread; an int > 1 splits them into that many contiguous chunks (at most one per
        row), each solved by the same vectorised Newton method on its own rows, in parallel
        threads with BLAS limited to one thread each; -1 uses all cores. The rows are
        independent problems, so the solution is the sequential one up to rounding;
        ``n_iter`` is the largest of the chunks' and ``converged`` requires every chunk to
        converge. Ignored (sequential) where the rows are not separable, for a
        :class:`~lifted_idl.penalties.GroupView` of strength > 0 (it couples the
        rows through the columns of B), by ``method="cvxpy"`` (one problem over all
        rows) and by ``method="mm"`` (whose steps are matrix products over all rows).
    cvxpy_solver : {None, "CLARABEL", "ECOS", "OSQP", "HIGHS"}, default=None
        With ``method="cvxpy"``: the solver; None picks it by the problem's class (see
        :mod:`lifted_idl.blocks`).
    sample_weight : ndarray of shape (m,), optional
        Non-negative sample weights: the divergence becomes the weighted average
        :math:`\frac{1}{\sum_t w_t}\sum_s w_s F_\phi(P_{si}, Z_{si})`
        (:func:`~lifted_idl.losses.unit_mean_weights`; integer weights are repeated samples),
        so every row's Gram matrix is :math:`M^\top\mathrm{diag}(w)M` and the centring of
        the design is weighted.

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
    check_choice("method", method, ("fast", "cvxpy", "mm"))
    check_options("fast" if method == "mm" else method, tol, max_iter)
    cvxpy_solver = check_cvxpy_solver(method, cvxpy_solver)
    n_workers = check_n_jobs(n_jobs)
    X, U, P, lam, kappa, act, pen, init = _check(X, U, P, lam, kappa, activation, penalty, init)
    w = unit_mean_weights(sample_weight, X.shape[0])
    init, init_obj = ab_warm_start(
        init, fit_bias,
        lambda A, B, b: _ab_objective(X, U, P, lam, kappa, act, pen, A, B, b, w))
    if method == "cvxpy":
        A, B, b, n_iter, conv, solver = _ab_cvxpy(X, U, P, lam, kappa, act, pen, fit_bias, tol,
                                                  max_iter, cvxpy_solver, w)
    elif isinstance(pen, GroupView) and pen.alpha > 0:
        A, B, b, n_iter, conv, solver = _ab_group(X, U, P, lam, kappa, act, pen, fit_bias,
                                                  init, tol, max_iter, w)
    elif method == "mm":
        if isinstance(pen, GroupView):  # strength 0: no penalty
            pen = ZeroView()
        A, B, b, n_iter, conv = ab_mm(X, U, P, lam, kappa, act, pen, fit_bias, init, tol,
                                      max_iter, w=w)
        solver = "mm"
    else:
        if isinstance(pen, GroupView):  # strength 0: no penalty
            pen = ZeroView()
        A, B, b, n_iter, conv = _ab_newton(X, U, P, lam, kappa, act, pen, fit_bias, init, tol,
                                           max_iter, n_workers, w)
        solver = "newton"
    return ab_result(lambda A, B, b: _ab_objective(X, U, P, lam, kappa, act, pen, A, B, b, w),
                     A, B, b, n_iter, conv, solver, init, init_obj)


# --------------------------------------------------------------------------------------------
# face Newton (the default fast solver)
# --------------------------------------------------------------------------------------------
class _ABRows:
    r"""The row problems of the (A, B, b) block in the internal (centred) parametrisation.

    Row i: :math:`\frac{\lambda_i}{m}\sum_s [f(z_{si}) - P_{si} z_{si}] + \mathrm{pen}(w_i)`,
    :math:`z_{:,i} = M w_i`, over :math:`\|w_{i,A}\|_1 \le \kappa` (``f*(P)`` left out).
    """

    def __init__(self, M, P, lam, kappa, act, pen, n, npen, w=None):
        self.M, self.P, self.lam, self.kappa, self.act = M, P, lam, kappa, act
        self.w = w  # unit-mean sample weights, or None
        self.n, self.npen, self.m = n, npen, M.shape[0]
        self.alpha = pen.alpha
        self.l1 = isinstance(pen, L1View) and pen.alpha > 0
        self.l2 = isinstance(pen, L2View) and pen.alpha > 0

    def values(self, W, rows, Z=None):
        if Z is None:
            Z = self.M @ W.T
        F = self.act.f(Z) - self.P[:, rows] * Z
        v = (F.sum(axis=0) if self.w is None else self.w @ F) * (self.lam[rows] / self.m)
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
        if self.w is not None:
            G *= self.w[:, None]
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
        VA = V[:, :n]
        _project_l1_rows(VA, self.kappa, out=VA)
        return V


def _ab_newton(X, U, P, lam, kappa, act, pen, fit_bias, init, tol, max_iter, n_workers=1,
               w=None):
    r"""Semismooth (face) Newton method on all rows at once (:func:`_ab_newton_rows`), or on
    ``n_workers`` contiguous chunks of rows in parallel (:func:`~._common.solve_row_chunks`).

    The design, its curvature bound and the starting point are built once and shared by the
    chunks; each chunk gets its own columns of ``P``, weights and rows of the start.
    Returns ``(A, B, b, n_iter, converged)``.
    """
    m, n = X.shape
    p = U.shape[1]
    npen = n + p
    M, mbar = design(X, U, fit_bias, w)
    d = M.shape[1]
    Mc = M[:, :npen]
    Mw = Mc if w is None else Mc * w[:, None]
    sM = float(np.linalg.eigvalsh(Mw.T @ Mc)[-1]) if npen else 0.0
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
                                 npen, W[rows], tol, max_iter, Kr, w)

    W, n_iter, converged = solve_row_chunks(task, n, n_workers)
    A, B, b = from_internal(W, n, p, mbar, fit_bias)
    return A, B, b, n_iter, converged


def _ab_newton_rows(M, P, lam, steps, rn2, kappa, act, pen, n, npen, W, tol, max_iter,
                    Kr=None, w=None):
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

    With unit-mean sample weights ``w`` every sample's terms are multiplied by its weight
    (the Hessians become :math:`\frac{\lambda_i}{m}M^\top\mathrm{diag}(w\odot\phi')M`).
    """
    m, d = M.shape
    n_rows = W.shape[0]
    rp = _ABRows(M, P, lam, kappa, act, pen, n, npen, w)
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
        if w is not None:
            Dw *= w[:, None]
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
            WtA = Wt[:, :n]
            _project_l1_rows(WtA, kappa, out=WtA)
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


def _ab_cvxpy(X, U, P, lam, kappa, act, pen, fit_bias, tol, max_iter, solver=None, w=None):
    """The cvxpy formulation (one problem over all rows); ``(A, B, b, n_iter, converged,
    label)``."""
    import cvxpy as cp

    m = X.shape[0]
    W, b, Z = ab_cvxpy_variables(X, U, fit_bias)
    lam_rows = np.tile(lam, (m, 1))
    if w is not None:  # sample s's divergence terms weighted by w_s
        lam_rows = lam_rows * w[:, None]
    # f*(P) is constant here; it is added back by the numpy objective
    div = cp.sum(cp.multiply(lam_rows, act.f_cvxpy(Z))) - cp.sum(cp.multiply(lam_rows * P, Z))
    *out, name = ab_cvxpy_solve(div / m + pen.cvxpy(W), W, b, kappa, "(A, B)", tol, max_iter,
                                solver)
    return (*out, f"cvxpy:{name}")


# --------------------------------------------------------------------------------------------
# the group penalty [IDL (5.1)]: rows coupled through the columns of B
# --------------------------------------------------------------------------------------------
class _GroupAB:
    r"""The (A, B, b) block with a :class:`~lifted_idl.penalties.GroupView` on B.

    In the internal (centred) parametrisation :math:`W = [A\ B\ b']` the objective is
    :math:`\sum_i \frac{\lambda_i}{m}\sum_s [f(z_{si}) - P_{si}z_{si}] + \alpha\sum_j
    \|(B e_j; F e_j)\|_r` over :math:`\|A_{i,:}\|_1 \le \kappa` (the :math:`f^*(P)` part of the
    divergence left out). The penalty couples the rows, so unlike :func:`_ab_newton` the rows
    are not solved independently; the constraint (rows of A) and the penalty (columns of B)
    still act on disjoint entries, so the prox of their sum is the pair of exact proxes, also
    in any diagonal metric that is constant on every row of A and every column of B.
    """

    def __init__(self, X, U, P, lam, kappa, act, pen, fit_bias, w=None):
        m, n = X.shape
        p = U.shape[1]
        self.m, self.n, self.p, self.npen = m, n, p, n + p
        self.M, self.mbar = design(X, U, fit_bias, w)
        self.d = self.M.shape[1]
        self.lam, self.kappa, self.act, self.pen = lam, kappa, act, pen
        self.w = w  # unit-mean sample weights, or None
        self.rows = _ABRows(self.M, P, lam, kappa, act, ZeroView(), n, n + p, w)
        self.all = np.arange(n)
        self.M2 = self.M * self.M
        Mw = self.M if w is None else self.M * w[:, None]
        sM = float(np.linalg.eigvalsh(Mw.T @ self.M)[-1]) if self.d else 0.0
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
        VA = V[:, :n]
        _project_l1_rows(VA, self.kappa, out=VA)
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
        if self.w is not None:
            Dw *= self.w[:, None]
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


#: Solver of the (A, B) block for the l-inf group norm: ``"newton"`` (:func:`_ab_group_newton`,
#: the face Newton method of the l2 norm extended to l-inf; the default) or ``"fista"``
#: (:func:`_ab_group_fista`). On the (A, B) steps of BCD fits FISTA often stops at max_iter
#: short of the cvxpy optimum while the Newton method converges in a few iterations; see
#: ``benchmarks/README.md`` for measured times.
_LINF_SOLVER = "newton"


def _ab_group(X, U, P, lam, kappa, act, pen, fit_bias, init, tol, max_iter, w=None):
    """Dispatch: face Newton for the l2 group norm, ``_LINF_SOLVER`` for the l-inf one."""
    prob = _GroupAB(X, U, P, lam, kappa, act, pen, fit_bias, w)
    if init is None:
        W = np.zeros((prob.n, prob.d))
    else:
        W = to_internal(project_inf_norm_ball(init[0], kappa), init[1], init[2], prob.mbar,
                        fit_bias)
    if pen.ord == 2 or _LINF_SOLVER == "newton":
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


def _clip_signs(Vt, V0):
    """The orthant part of the projection arc: entries of ``Vt`` whose sign differs from their
    nonzero value in ``V0`` stop at zero (in place)."""
    Vt[(Vt * V0) < 0] = 0.0
    return Vt


def _group_trial(prob: _GroupAB, Wt, W):
    """A trial point on the projection arc from ``W``: entries of A that the step takes
    through zero stop there, the rows of A go onto the ball, and (l2 group norm) a column of
    B that the step takes through zero (against its direction in ``W``) stops at zero, the
    group analogue."""
    n, npen = prob.n, prob.npen
    WtA = _clip_signs(Wt[:, :n], W[:, :n])
    _project_l1_rows(WtA, prob.kappa, out=WtA)
    if prob.pen.ord == 2:
        WB = W[:, n:npen]
        cross = ((Wt[:, n:npen] * WB).sum(axis=0) <= 0) & np.any(WB != 0, axis=0)
        Wt[:, n:npen][:, cross] = 0.0
    return Wt


class _RowMajorant:
    r"""A row-separable majorant of the group objective at the current point :math:`W^k`.

    l2 group norm: with :math:`\rho_j = \|(B^k e_j; F e_j)\|_2`, concavity of the square root
    gives :math:`\rho_j(B) \le \rho_j + (\|Be_j\|^2 - \|B^ke_j\|^2)/(2\rho_j)` for
    :math:`\rho_j > 0`, and :math:`\|Be_j\|_2 \le \|Be_j\|_1` for a zero column
    (:math:`\rho_j = 0`). l-inf: with :math:`\mu_j = \max(\|B^ke_j\|_\infty, \|Fe_j\|_\infty)`,
    :math:`\max(\|Be_j\|_\infty, \|Fe_j\|_\infty) \le \mu_j + \sum_i (|B_{ij}| - \mu_j)_+`.
    Both are tight at :math:`B^k`, so :math:`F(W) \le \sum_i S_i(w_i) + \mathrm{const}` with

    .. math:: S_i(w) = f_i(w) + \tfrac\beta2\|w_A\|^2 + \alpha\sum_{\rho_j > 0}
              \frac{B_{ij}^2}{2\rho_j} + \alpha\sum_{\rho_j = 0} |B_{ij}|
              \quad\text{or}\quad
              f_i(w) + \tfrac\beta2\|w_A\|^2 + \alpha\sum_j (|B_{ij}| - \mu_j)_+ ,

    equality at :math:`W^k`: rows that each decrease their :math:`S_i` together decrease the
    objective. That lets every row take its own Armijo step (and its own safe
    proximal-gradient step, the prox of :math:`S_i`'s penalty being entrywise: a scaling and a
    soft threshold, or a soft threshold beyond :math:`\mu_j`), as the row-separable solver
    :func:`_ab_newton_rows` does.
    """

    def __init__(self, prob: _GroupAB, W):
        n, npen = prob.n, prob.npen
        self.prob = prob
        self.l2 = prob.pen.ord == 2
        self.alpha = prob.pen.alpha
        WB = W[:, n:npen]
        if self.l2:
            rho = np.sqrt((WB * WB).sum(axis=0) + prob.pen.fixed_norms ** 2)
            self.zero = rho == 0
            self.inv = np.where(self.zero, 0.0, 1.0 / np.where(self.zero, 1.0, rho))
        else:
            self.mu = np.maximum(np.abs(WB).max(axis=0, initial=0.0), prob.pen.fixed_norms)
            self.zero = self.mu == 0

    def pen_rows(self, Wr):
        """The penalty part of :math:`S_i` (with the ridge on A) for the rows ``Wr``."""
        prob = self.prob
        B = Wr[:, prob.n:prob.npen]
        if self.l2:
            v = self.alpha * ((0.5 * B * B) @ self.inv + np.abs(B[:, self.zero]).sum(axis=1))
        else:
            v = self.alpha * np.maximum(np.abs(B) - self.mu, 0.0).sum(axis=1)
        if prob.ridge:
            v += 0.5 * prob.ridge * (Wr[:, :prob.n] ** 2).sum(axis=1)
        return v

    def values(self, Wr, rows, Z=None):
        """:math:`S_i` (up to constants) and the pre-activations for the rows ``rows``."""
        v, Z = self.prob.rows.values(Wr, rows, Z)
        return v + self.pen_rows(Wr), Z

    def slopes(self, W, g, direction):
        """Per-row directional derivatives of :math:`S_i` along ``direction`` (``g``: the
        smooth gradient, ridge included)."""
        n, npen = self.prob.n, self.prob.npen
        B, dB = W[:, n:npen], direction[:, n:npen]
        out = (g * direction).sum(axis=1)
        if self.l2:
            out += self.alpha * ((B * dB) @ self.inv + np.abs(dB[:, self.zero]).sum(axis=1))
        else:
            at = np.abs(B) >= self.mu
            up = np.where(self.zero, np.abs(dB), np.maximum(np.sign(B) * dB, 0.0))
            out += self.alpha * np.where(at, up, 0.0).sum(axis=1)
        return out

    def prox_step(self, Wr, gr, steps):
        """The proximal-gradient point of :math:`S_i` with per-row ``steps`` (r,)."""
        n, npen = self.prob.n, self.prob.npen
        st = steps[:, None]
        V = Wr - st * gr
        VA = V[:, :n]
        _project_l1_rows(VA, self.prob.kappa, out=VA)
        VB = V[:, n:npen]
        thr = st * self.alpha
        if self.l2:
            VB[:, self.zero] = np.sign(VB[:, self.zero]) * np.maximum(
                np.abs(VB[:, self.zero]) - thr, 0.0)
            VB /= 1.0 + thr * self.inv[None, :]
        else:
            a = np.abs(VB)
            VB[:] = np.sign(VB) * np.where(a > self.mu, np.maximum(a - thr, self.mu), a)
        return V


def _l2_face_step(Kinv, rhs, free, dz, J, Bt, rho, alpha, n):
    r"""The face Newton step for the l2 group norm, from the inverses ``Kinv`` of the per-row
    KKT matrices (:func:`~._newton.face_kkt`, with the diagonal group term
    :math:`\alpha/\rho_j`) and their right-hand sides: the rank-one terms
    :math:`-u_ju_j^\top`, :math:`u_j = \sqrt{\alpha/\rho_j^3}\,(b_j \otimes e_{n+j})`, of the
    free columns ``J`` of B by the Woodbury identity (a k × k system). Rows with a non-finite
    solution come back zero (the caller's fallback takes over)."""
    d = free.shape[1]
    with np.errstate(all="ignore"):
        y0 = (Kinv @ rhs[:, :, None])[:, :, 0]
        if J.size:
            sq = np.sqrt(alpha / rho[J])
            Ub = (Bt[:, J] / rho[J]) * sq[None, :]  # (n, k): the row-i entry of u_j
            Q = Kinv[:, :, n + J] * Ub[:, None, :]  # (n, d+1, k) = Kinv u (per row)
            Sm = np.eye(J.size) - np.einsum("ij,ijl->jl", Ub, Q[:, n + J, :])
            wv = np.einsum("ij,ij->j", Ub, y0[:, n + J])
            zv = _solve_small(Sm, wv)
            sol = y0 + (Q @ zv[None, :, None])[:, :, 0]
        else:
            sol = y0
    step = np.where(free, sol[:, :d], dz)
    step[~np.isfinite(step).all(axis=1)] = 0.0
    return step


def _linf_face_step(Kinv, rhs, H, g, free, dz, T, Emask, mu_cur, damp_mu, alpha, n):
    r"""The face Newton step for the l-inf group norm, from the inverses ``Kinv`` of the
    per-row KKT matrices (:func:`~._newton.face_kkt`) and their right-hand sides.

    On the face, the entries of a tied column j (``T``) that attain its maximum are
    :math:`B_{ij} = s_{ij}\mu_j` (signs ``Emask``, zero off the tied entries) with one
    variable :math:`\mu_j` shared by the rows, and the penalty is :math:`\alpha\sum_j\mu_j`,
    linear. Row i's step is :math:`\Delta_i = P_i x_i + c_i + E_i\mu` (free coordinates x,
    fixed moves c = ``dz``, :math:`-B_{ij}` at the tied entries): minimising the quadratic
    model over every :math:`x_i` leaves the k × k Schur complement
    :math:`\sum_i E_i^\top H_i E_i - R_i^\top K_i^{-1} R_i` (:math:`R_i`: the free rows of
    :math:`H_iE_i`) for :math:`\mu`, damped towards ``mu_cur`` by ``damp_mu``."""
    d = free.shape[1]
    with np.errstate(all="ignore"):
        y0 = (Kinv @ rhs[:, :, None])[:, :, 0]
        step = np.where(free, y0[:, :d], dz)
        if T.size:
            cols = n + T
            HE = H[:, :, cols] * Emask[:, None, :]  # (n, d, k)
            R = np.zeros((free.shape[0], d + 1, T.size))
            R[:, :d] = np.where(free[:, :, None], HE, 0.0)
            Y = Kinv @ R
            S = np.einsum("ij,ijl->jl", Emask, HE[:, cols, :]) - np.einsum(
                "iaj,ial->jl", R, Y)
            r_mu = -alpha - np.einsum("ij,ij->j", Emask,
                                      (g + (H @ step[:, :, None])[:, :, 0])[:, cols])
            lm = damp_mu * np.maximum(np.diag(S), 0.0) + 1e-10 * max(
                float(np.abs(np.diag(S)).max()), 1e-300)
            mu = _solve_small(S + np.diag(lm), r_mu + lm * mu_cur)
            step = np.where(free, step - (Y @ mu[None, :, None])[:, :d, 0], step)
            step[:, cols] += Emask * mu[None, :]
    step[~np.isfinite(step).all(axis=1)] = 0.0
    return step


def _kkt_rhs(H, cvec, free, on_ball, g, W, kappa, dz):
    """The right-hand sides of :func:`~._newton.face_kkt` (without building the matrices)."""
    rhs_top = -g - (H @ dz[:, :, None])[:, :, 0]
    rhs_c = np.where(on_ball, kappa - (cvec * W).sum(axis=1), 0.0)
    return np.concatenate([np.where(free, rhs_top, 0.0), rhs_c[:, None]], axis=1)


def _fix_in_inverse(Kinv, newly, max_rank=8):
    r"""Update, in place, the inverses ``Kinv`` (r, d+1, d+1) of KKT matrices for the
    coordinates ``newly`` (r, d) that become fixed: the matrix's row and column of such a
    coordinate c turn into :math:`e_c`, i.e. the coordinate is eliminated, a rank-one update
    :math:`K^{-1} - K^{-1}e_ce_c^\top K^{-1}/(K^{-1})_{cc}` of the inverse (then
    :math:`e_c` in its row and column) instead of a new inversion. Returns False when a
    pivot vanishes or some row fixes more than ``max_rank`` coordinates (a new inversion is
    then cheaper): the caller inverts afresh, ``Kinv`` being left partly updated."""
    counts = newly.sum(axis=1)
    if counts.max(initial=0) > max_rank:
        return False
    order = np.argsort(~newly, axis=1, kind="stable")  # the new coordinates first, per row
    for k in range(int(counts.max(initial=0))):
        rows = np.flatnonzero(counts > k)
        c = order[rows, k]
        u = Kinv[rows, :, c]
        v = Kinv[rows, c, :]
        piv = Kinv[rows, c, c]
        if not np.all(np.abs(piv) > 1e-300) or not np.all(np.isfinite(piv)):
            return False
        Kinv[rows] -= u[:, :, None] * (v / piv[:, None])[:, None, :]
        Kinv[rows, c, :] = 0.0
        Kinv[rows, :, c] = 0.0
        Kinv[rows, c, c] = 1.0
    return True


def _batched_inv(K, free):
    """Inverses of the KKT matrices ``K`` (r, d+1, d+1) of :func:`~._newton.face_kkt`.

    The coordinates fixed in every row (``free`` false in all rows: zero columns of B,
    columns of A zero in every row) have identity rows and columns in every matrix, so only
    the block of the others is inverted (the inverse is the identity on the rest): with many
    zero columns of B this is most of the cost."""
    r, d1 = K.shape[0], K.shape[1]
    keep = np.append(np.flatnonzero(free.any(axis=0)), d1 - 1)
    if keep.size < d1:
        Kinv = np.zeros_like(K)
        idx = np.arange(d1)
        Kinv[:, idx, idx] = 1.0
        Kinv[:, keep[:, None], keep[None, :]] = _batched_inv(
            K[:, keep[:, None], keep[None, :]], np.ones((r, keep.size - 1), dtype=bool))
        return Kinv
    try:
        return np.linalg.inv(K)
    except np.linalg.LinAlgError:
        return np.linalg.pinv(K)


def _solve_small(S, r):
    try:
        return np.linalg.solve(S, r)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(S, r, rcond=None)[0]


def _group_direction(prob: _GroupAB, W, g, V, col, H, damp):
    r"""The face and the Newton step of one iteration of :func:`_ab_group_newton`.

    ``damp`` is the per-row damping (a shared l-inf column maximum takes the largest of its
    rows'). Returns ``(step, slope, zero_cols, tied)``: the step (capped), the slope along it
    that the Armijo test and the Newton decrement use (l2: the sum of the majorant's row
    slopes, which bounds the directional derivative; l-inf: the secant slope
    :math:`g^\top\Delta + \mathrm{pen}(W + \Delta) - \mathrm{pen}(W)`, which bounds it too),
    the columns of B that the face sends to zero, and the entries of B tied to a shared
    column maximum (l-inf; ``None`` for l2).
    """
    n, d, npen = prob.n, prob.d, prob.npen
    kappa, alpha = prob.kappa, prob.pen.alpha
    delta = prob.pen.fixed_norms
    idx_d = np.arange(d)
    diag = H[:, idx_d, idx_d]
    mean_curv = np.maximum(diag.sum(axis=1) / d, 1e-300)
    reg = 1e-10 * np.maximum(diag.max(axis=1), 1e-300) + damp * mean_curv
    free = np.ones((n, d), dtype=bool)
    free[:, :n] = V[:, :n] != 0
    on_ball, cvec = ball_face(V[:, :n], d, kappa)
    WB = W[:, n:npen]
    if prob.pen.ord == 2:
        VB = V[:, n:npen]
        fcol = np.any(VB != 0, axis=0) | (delta > 0)
        # smooth penalty on the free columns, linearised at b (or at v when entering)
        bn = np.sqrt((WB * WB).sum(axis=0))
        entering = fcol & (bn == 0) & (delta == 0)
        Bt = np.where(entering[None, :], VB, WB)
        rho = np.sqrt((Bt * Bt).sum(axis=0) + delta * delta)
        # groups whose penalty curvature alpha/rho dwarfs the data's (norm near 0) are frozen
        # for this step: their Newton move is negligible and the prox fallback handles them
        frozen = fcol & (alpha > 1e12 * max(float(diag.mean()), 1e-300) * rho)
        fcol = fcol & ~frozen
        free[:, n:npen] = fcol[None, :]
        J = np.flatnonzero(fcol)
        gf = g.copy()
        gf[:, n + J] += alpha * Bt[:, J] / rho[J]
        group_diag = np.zeros(d)
        group_diag[n + J] = alpha / rho[J]
        dz = np.where(free, 0.0, -W)
        dz[:, n:npen][:, frozen] = 0.0
        zero_cols = ~fcol & ~frozen
        tied = None

        gk, extra = gf, group_diag

        def solve(Kinv, rhs, free, dz):
            return _l2_face_step(Kinv, rhs, free, dz, J, Bt, rho, alpha, n)
    else:
        # the l-inf prox point of the B part: clip(v, -mu, mu), mu = max(theta, ||F e_j||)
        vB = WB - col[None, :] * g[:, n:npen]
        muV = np.maximum(l1_thresholds(vB, col * alpha), delta)
        zero_cols = muV == 0
        at = (np.abs(vB) >= muV) & ~zero_cols
        tied_col = muV > delta  # the column's maximum is a variable; else capped at delta
        tied = at & tied_col
        capped = at & ~tied_col
        sgn = np.sign(vB)
        free[:, n:npen] = ~at & ~zero_cols
        dz = np.where(free, 0.0, -W)

        dz[:, n:npen][capped] = (sgn * delta - WB)[capped]
        gk, extra = g, None

        def solve(Kinv, rhs, free, dz):
            T = np.flatnonzero(tied.any(axis=0))
            Emask = np.where(tied, sgn, 0.0)[:, T]
            mu_cur = np.abs(WB[:, T]).max(axis=0, initial=0.0)
            damp_mu = np.where(Emask != 0, damp[:, None], 0.0).max(axis=0, initial=0.0)
            return _linf_face_step(Kinv, rhs, H, g, free, dz, T, Emask, mu_cur, damp_mu,
                                   alpha, n)
    # A entries that the step takes through zero (the face from v missed that they leave)
    # are fixed at zero, and (l-inf) free entries of B that it takes above their column's
    # new maximum join the tied (or capped) ones; the step is then recomputed, a few times
    # at most (otherwise the projection arc, or the kink of the max, cuts the step there,
    # iteration after iteration)
    K, rhs, dz = face_kkt(H, reg, cvec, free, on_ball, gk, W, kappa, dz=dz, extra_diag=extra)
    with np.errstate(all="ignore"):
        Kinv = _batched_inv(K, free)
    WA = W[:, :n]
    for _ in range(4):
        step = solve(Kinv, rhs, free, dz)
        newly = np.zeros_like(free)
        newly[:, :n] = free[:, :n] & (WA * (WA + step[:, :n]) < 0)
        if prob.pen.ord != 2:
            Bn = WB + step[:, n:npen]
            top = np.where(tied, np.abs(Bn), 0.0).max(axis=0, initial=0.0)
            bound = np.where(tied.any(axis=0), np.maximum(top, delta), delta)
            over = free[:, n:npen] & (np.abs(Bn) > bound * (1 + 1e-12))
            newly[:, n:npen] = over
        if not newly.any():
            break
        cross = newly[:, :n]
        cvec[:, :n][cross] = 0.0
        dz[:, :n][cross] = -WA[cross]
        if prob.pen.ord != 2 and over.any():
            sgn[over] = np.sign(Bn[over])
            dz[:, n:npen][over] = -WB[over]
            tied |= over & tied.any(axis=0)[None, :]
            capped |= over & ~tied
            dz[:, n:npen][over & capped] = (sgn * delta - WB)[over & capped]
        free &= ~newly
        with np.errstate(all="ignore"):
            if not _fix_in_inverse(Kinv, newly):
                K = face_kkt(H, reg, cvec, free, on_ball, gk, W, kappa, dz=dz,
                             extra_diag=extra)[0]
                Kinv = _batched_inv(K, free)
        rhs = _kkt_rhs(H, cvec, free, on_ball, gk, W, kappa, dz)
    cap_rows(step, W, kappa)
    if prob.pen.ord == 2:
        slope = float(_RowMajorant(prob, W).slopes(W, g, step).sum())
    else:
        pen = prob.pen
        slope = float((g * step).sum()) + pen.value_part(WB + step[:, n:npen]) - \
            pen.value_part(WB)
    return step, slope, zero_cols, tied


def _global_search(prob, W, step, slope, moving, f_cur):
    """Step 1 of :func:`_ab_group_newton`: the step on the whole objective, full or
    backtracked up to 3 times; returns ``(W, f, Z, length, full)`` (W None and length 0 when
    none passed the Armijo test; ``full``: the full step's point, value and pre-activations)."""
    Wt = ft = Zt = full = None
    if moving.any() and slope < 0:
        a = 1.0
        for _ in range(4):
            Wa = _group_trial(prob, W + a * step, W)
            fa, Za = prob.value(Wa)
            if full is None:
                full = (Wa, fa, Za)
            if fa <= f_cur + 1e-4 * a * slope + 1e-15 * abs(f_cur):
                return Wa, fa, Za, a, full
            a *= 0.5
    return Wt, ft, Zt, 0.0, full


def _row_searches(prob, W, g, Z, step, tied, moving, zero_cols, damp):
    """Step 2 of :func:`_ab_group_newton`: every row searches along its own arc on the
    row-separable majorant, rows whose search fails take its safe proximal-gradient step;
    then the columns the face sends to zero are zeroed where that lowers the objective.
    Returns ``(W, f, Z, damping)``."""
    n, npen = prob.n, prob.npen
    maj = _RowMajorant(prob, W)
    if tied is not None:  # a row alone cannot lower a shared maximum: keep them
        step[:, n:npen][tied] = 0.0
    slopes = np.minimum(maj.slopes(W, g, step), 0.0)
    s_cur = prob.rows.values(W, prob.all, Z)[0] + maj.pen_rows(W)
    Wr = np.empty_like(W)
    sr = np.full(n, np.nan)
    Zr = np.empty_like(Z)

    def trial(Wq, rows):
        WqA = _clip_signs(Wq[:, :n], W[rows, :n])
        _project_l1_rows(WqA, prob.kappa, out=WqA)
        return maj.values(Wq, rows)

    a, _ = armijo_rows(W, step, s_cur, slopes, np.flatnonzero(moving & (slopes < 0)),
                       trial, Wr, sr, Zr)
    failed = np.isnan(sr)
    damp = np.where((a >= 1.0) & ~failed, damp * 0.1, damp)
    damp[failed] = np.maximum(damp[failed] * 10.0, 1e-4)
    if failed.any():
        fr = np.flatnonzero(failed)
        Wr[fr] = maj.prox_step(W[fr], g[fr], prob.safe_row[fr])
        Zr[:, fr] = prob.M @ Wr[fr].T
    fr_, Zr = prob.value(Wr, Zr)
    # the columns the face sends to zero, zeroed where the searches stopped short
    out = np.flatnonzero(zero_cols & np.any(Wr[:, n:npen] != 0, axis=0))
    if out.size:
        W0 = Wr.copy()
        W0[:, n + out] = 0.0
        Z0 = Zr - prob.M[:, n + out] @ Wr[:, n + out].T
        f0, Z0 = prob.value(W0, Z0)
        if f0 <= fr_:
            Wr, fr_, Zr = W0, f0, Z0
    return Wr, fr_, Zr, damp


def _ab_group_newton(prob: _GroupAB, W, tol, max_iter):
    r"""Face Newton method for the group penalty (l2 or l-inf) on all rows at once.

    Each iteration:

    1. the prox-gradient point :math:`v` in the mean-curvature metric (steps
       :math:`d/\mathrm{tr}H_i` on row i, :math:`n/\sum_i (H_i)_{jj}` on column j of B) gives
       the stopping test and the working face: zero entries of A, the rows of A on the ball,
       zero columns of B, and for l-inf the entries of B at their column's maximum (tied to a
       variable maximum, or capped at :math:`\|Fe_j\|_\infty`);
    2. the Newton step on that face (:func:`_group_direction`). l2: the penalty
       :math:`\alpha\sum_j\rho_j`, :math:`\rho_j = \|(B e_j; F e_j)\|_2`, is smooth there
       with Hessian :math:`\alpha(I/\rho_j - b_jb_j^\top/\rho_j^3)` on column j: the per-row
       KKT matrices of :func:`_ab_newton` (plus :math:`\alpha/\rho_j` and a per-row
       Levenberg–Marquardt damping) minus one rank-one term per free column, by the
       Woodbury identity (:func:`_l2_face_step`); a column entering the face (b_j = 0,
       F e_j = 0) is linearised at its prox point. l-inf: the penalty is linear on the face,
       the shared column maxima are eliminated by a Schur complement
       (:func:`_linf_face_step`). A entries that the step would take through zero are fixed
       at zero and the step recomputed;
    3. the full step (along the projection arc) if it passes the Armijo test on the whole
       objective; otherwise every row searches along its own arc on the row-separable
       majorant :class:`_RowMajorant` (so that the rows together still decrease the
       objective), rows whose search fails take the majorant's safe proximal-gradient step and
       raise their damping, rows that take a full step lower it. Columns that the face sends
       to zero are then zeroed when that lowers the objective. Should nothing decrease the
       objective, the joint proximal-gradient step with the safe steps of
       :func:`_ab_group_fista` (a guaranteed descent away from a solution) is taken.

    Stopping test: the prox-gradient residual below ``tol * max(1, max|W|)`` *and* the
    Newton decrement (the model's slope along the step) below :math:`\tfrac12
    \mathrm{tol}^2\sum_i\mathrm{tr}H_i`, the objective accuracy that a residual of ``tol``
    per entry stands for. The design of the BCD loop is often rank deficient (states affine
    in U on the samples), so the row Hessians are singular and the residual alone can pass
    far (relative objective gaps up to 1e-3 at ``tol = 1e-6``) from the minimum along their
    flat directions, where only the penalty and the ball act.

    Why per row: with singular Hessians and a penalty nearly linear along a column
    (:math:`\|b_j\| \gg \|Fe_j\|`), the undamped Newton step of some rows is huge and
    useless; one damping and one search for all the rows let such a row stall the others
    (the previous solver: 50-100+ iterations a call where this one needs 5-15).
    """
    n, p, d = prob.n, prob.p, prob.d
    hess = RowHessians(prob.M, n)
    idx_d = np.arange(d)
    damp = np.zeros(n)  # per-row Levenberg-Marquardt damping, relative to the mean curvature
    stalled = 0
    converged = False
    n_iter = 0
    f_cur, Z = prob.value(W)
    for k in range(1, max_iter + 1):
        n_iter = k
        g, _ = prob.grad(W, Z)
        res, V, row, col, Dw = prob.residual(W, g, Z)
        small = res <= tol * max(1.0, float(np.abs(W).max(initial=0.0)))
        H = hess.update(prob.all, Dw)
        if prob.ridge:
            H[:, idx_d[:n], idx_d[:n]] += prob.ridge
        step, slope, zero_cols, tied = _group_direction(prob, W, g, V, col, H, damp)
        # ---- stopping test: the residual, and the Newton decrement at the objective
        # accuracy that the residual stands for (a residual r per entry ~ 0.5 r^2 tr H),
        # that of the undamped step (a damped one can be short anywhere)
        dec_tol = 0.5 * tol * tol * float(np.trace(H, axis1=1, axis2=2).sum())
        if small and -slope <= dec_tol and damp.any():
            damp = np.zeros(n)
            step, slope, zero_cols, tied = _group_direction(prob, W, g, V, col, H, damp)
        if small and -slope <= dec_tol:
            converged = True
            break
        moving = np.abs(step).max(axis=1) > 0
        # ---- 1. the step on the whole objective: full, or backtracked a few times
        Wt, ft, Zt, a_glob, full = _global_search(prob, W, step, slope, moving, f_cur)
        if a_glob == 1.0:
            damp = np.where(moving, damp * 0.1, damp)
        else:
            # ---- 2. per-row searches on the majorant, the safe prox step where they fail;
            # kept if better than the backtracked step
            Wr, fr_, Zr, damp = _row_searches(prob, W, g, Z, step, tied, moving, zero_cols,
                                              damp)
            if Wt is None or fr_ < ft:
                Wt, ft, Zt = Wr, fr_, Zr
        damp = np.minimum(np.where(damp < 1e-8, 0.0, damp), 1e8)
        if not ft < f_cur - 1e-15 * abs(f_cur):
            # ---- 3. nothing decreased the objective: the joint safe prox step
            Ws = prob.step(W, g, prob.safe_row, np.full(p, prob.safe_col))
            fs, Zs = prob.value(Ws)
            if fs < ft:
                Wt, ft, Zt = Ws, fs, Zs
            if not ft < f_cur and full is not None and full[1] <= f_cur + 1e-15 * abs(
                    f_cur) and prob.residual(full[0], prob.grad(full[0], full[2])[0],
                                             full[2])[0] <= 0.5 * res:
                # the full step changes f at its rounding level only but halves the residual
                # (a direction the objective cannot resolve): take it
                Wt, ft, Zt = full
            elif not ft < f_cur:  # no step decreases f: the objective is at its rounding level
                stalled += 1
                if stalled >= 3:
                    converged = small
                    break
                continue
        stalled = 0
        W, f_cur, Z = Wt, ft, Zt
    return W, n_iter, converged
