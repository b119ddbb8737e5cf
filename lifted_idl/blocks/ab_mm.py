r"""A majorize–minimize (MM) solver of the (A, B, b) block, batched over all rows.

The block (docs/theory.md §8, the (A, B) block of BCD; arXiv (13)) separates across the rows
:math:`w_i = (a_i, \beta_i, b_i)` of :math:`[A\ B\ b]`; row i minimises

.. math::

    f_i(w) = \frac{\lambda_i}{m}\sum_{s=1}^m F_\phi\big(P_{si},\, M_s w\big)
        + \mathrm{pen}(a, \beta) \quad\text{s.t.}\quad \|a\|_1 \le \kappa,
    \qquad M = [X\ U\ \mathbf 1].

**Majoriser.** For a componentwise activation with slopes in :math:`[0, \gamma]`,
:math:`\partial^2 F_\phi(x, z)/\partial z^2 = \phi'(z) \in [0, \gamma]`, so the Hessian of the
smooth part of row i, :math:`\frac{\lambda_i}{m}M^\top\mathrm{diag}(\phi'(Mw))M`, is below
:math:`c_i G` with :math:`c_i = \lambda_i\gamma/m` and the Gram matrix :math:`G = M^\top M`,
shared by all rows. Hence, at the current row :math:`w^k` with gradient :math:`g`,

.. math::

    f_i(w) \le Q_i(w) = f_i(w^k) + g^\top(w - w^k) + \tfrac{\theta c_i}{2}
    (w - w^k)^\top G (w - w^k) + \mathrm{pen}(w) - \mathrm{pen}(w^k)

for :math:`\theta = 1`, with equality at :math:`w^k`; minimising :math:`Q_i` over the feasible
set (one small QP per row, whose cost does not depend on m) decreases :math:`f_i`. One MM
step costs two m × n × (n + p + 1) products (the pre-activations :math:`Z = MW^\top` and the
gradients :math:`R^\top M`) and the QPs, against the :math:`O(nm(n+p)^2)` Hessians of the
Newton solver.

**Tighter curvature.** The majoriser with :math:`\theta = 1` is loose where :math:`\phi'` is
small on many samples (ReLU: the inactive ones). Each row therefore carries a scalar
:math:`\theta_i \in (0, 1]`, started at the mean slope :math:`\frac1{m\gamma}\sum_s
\phi'(z_{si})` (a Gauss–Newton guess, not a majoriser) and lowered after every accepted step; a
step is accepted only if :math:`f_i(w^{k+1}) \le Q_i(w^{k+1})`, i.e. if the model with that
:math:`\theta_i` bounds the objective at the new point; otherwise :math:`\theta_i` is raised
to :math:`\theta_i'` (the curvature the failed step measured, at least doubled, at most 1).
The row first tries the shortened step :math:`w^k + (\theta_i/\theta_i')(w^{QP} - w^k)` along
its QP's direction, near the minimiser of the raised model along it (no product: Z is affine in
W; no QP), under the same test with :math:`\theta_i'`; only if that fails is the row's QP
solved again. At :math:`\theta_i = 1` the test holds by the majoriser argument, so every
accepted step decreases :math:`f_i` by at least the model decrease
:math:`Q_i(w^k) - Q_i(w^{k+1}) \ge 0`, and a row whose step would not decrease it keeps
:math:`w^k` (rounding).

**Extrapolation.** From the second step on, each row steps from the extrapolated point
:math:`y = w^k + \beta_k(w^k - w^{k-1})` (Nesterov's :math:`\beta_k`; :math:`Z` is affine in
W, so :math:`Z_y` costs no product), and keeps that step where it lands feasible and below
:math:`f_i(w^k)`; elsewhere it restarts (:math:`\beta = 0`) with the plain step from
:math:`w^k`. The objective therefore still never increases.

**The QP.** In the centred parametrisation of :mod:`._newton` (:math:`M = [X - \bar x,\ U - \bar
u,\ \mathbf 1]`, free bias) the bias decouples: :math:`G = \mathrm{diag}(G_c, m)`, and the bias
step is closed form. For the ridge and no penalty the QP is first solved without the constraint
(one solve through the eigendecomposition of :math:`G_c`); only rows that leave the ball go on, and
their answer lies on the sphere :math:`\|a\|_1 = \kappa`. For those rows ADMM on the split :math:`w
= z` (the quadratic and the ridge in the w-update, :math:`(G_c + (\rho_i + \alpha/(\theta c_i)) I)w
= r_i` through the same eigendecomposition; the l1-ball projection
:func:`~lifted_idl.wellposedness._project_l1_rows`, theory §3, in the z-update) runs to its
tolerance, at most :data:`ADMM_WARMUP` iterations; on the rows it has not settled by then (late in
a fit, where the tolerance is tight, ADMM can take hundreds of iterations on an ill-conditioned or
rank-deficient Gram matrix), one face solve of a primal active-set method on the face of ADMM's
point finishes the QP (:func:`_active_set`; exact when ADMM found the face, and
:data:`ACTIVE_SET_ROUNDS` rounds run the method further): the free part :math:`\beta` is eliminated
(its Schur complement, through the eigendecomposition of :math:`G_{c,\beta\beta}`, so only the n
coordinates of a remain); on a face (support F, signs s) the KKT system of :math:`\min \tfrac12
a^\top S a - \rho^\top a` s.t. :math:`s^\top a_F = \kappa` is one :math:`(|F| + 1)`-dimensional
solve per row; a coordinate whose sign would flip stops the step at zero and leaves the face, and
at a face's optimum the coordinates whose gradient exceeds the ball's multiplier enter it. Every
point of the method is feasible, and a row keeps the better of it and the ADMM point. This path
runs where a face solve costs few ADMM iterations (:data:`FACE_COST`: few states, or many inputs,
which the Schur complement removes); elsewhere, and with the l1 penalty (whose prox also zeroes
coordinates of :math:`\beta`), ADMM runs alone to the inner tolerance. ADMM warm-starts its duals
from the previous MM step. Either way the model decrease of the answer is checked (a row with none
keeps its point).

Only the zero, ridge and l1 penalties are handled here; :func:`~.ab.solve_ab` sends the group
penalty to its exact solver.
"""

from __future__ import annotations

import numpy as np

from ..penalties import L1View, L2View
from ..wellposedness import _project_l1_rows
from ._newton import design, from_internal, to_internal

__all__: list[str] = []

#: smallest per-row curvature scale theta (relative to the majoriser)
THETA_MIN = 1e-3
#: factor on theta after an accepted step, and the margin over the curvature it measured
THETA_DECREASE = 0.7
THETA_SAFETY = 2.0
#: over-relaxation of the ADMM solves of the QPs
RELAX = 1.6
#: ADMM tolerance: INNER_FACTOR times the previous MM step (relative), within [INNER_FACTOR tol,
#: INNER_MAX]: loose while the MM steps are long, tight near the solution
INNER_FACTOR = 1e-2
INNER_MAX = 1e-3
#: ADMM iterations at most where the active-set method runs (:attr:`_MMProblem.face`); the
#: rows still above the ADMM tolerance then go to it
ADMM_WARMUP = 20
#: the active-set method runs where its largest face solve, about n^3/3 + n^2 p flops per row
#: (the Schur complement and the KKT solve), costs at most FACE_COST ADMM iterations
#: (2 (n + p)^2 flops per row); elsewhere ADMM runs to its tolerance
FACE_COST = 15.0
#: rounds (face solves) of the active-set method at most
ACTIVE_SET_ROUNDS = 1
#: a face's optimum adds every coordinate whose multiplier violation is at least this fraction
#: of the row's largest
ADD_FRACTION = 0.1
#: iteration cap of each ADMM solve (lowered to ADMM_WARMUP where the face solve runs)
INNER_MAX_ITER = 500
#: a row that fails the acceptance test first tries the shortened step along its QP's
#: direction (:func:`_shortened`: no product, no QP) before its QP is solved again
SHORTEN = True


class _MMProblem:
    """The rows of the block in the internal parametrisation, with the shared Gram data."""

    def __init__(self, X, U, P, lam, kappa, act, pen, fit_bias, w=None):
        m, n = X.shape
        self.m, self.n, self.npen = m, n, n + U.shape[1]
        self.w = w  # unit-mean sample weights, or None
        self.M, self.mbar = design(X, U, fit_bias, w)
        self.fit_bias = fit_bias
        self.P, self.lam, self.kappa, self.act = P, lam, kappa, act
        self.gamma = float(act.lipschitz)
        self.alpha = float(getattr(pen, "alpha", 0.0))
        self.l1 = isinstance(pen, L1View) and self.alpha > 0
        self.l2 = isinstance(pen, L2View) and self.alpha > 0
        Mp = self.M[:, :self.npen]
        Gc = Mp.T @ Mp if w is None else (Mp * w[:, None]).T @ Mp
        s, V = np.linalg.eigh(0.5 * (Gc + Gc.T))
        self.s = np.maximum(s, 0.0)
        self.V = V
        self.Gc = Gc
        smax = float(self.s[-1]) if self.s.size else 0.0
        self.s_cut = 1e-12 * max(smax, 1e-300)
        # ADMM penalty: the geometric mean of the spectrum's ends (the lower end floored)
        lo = max(float(self.s[self.s > self.s_cut].min(initial=smax)), 1e-3 * smax)
        self.rho0 = float(np.sqrt(lo * smax)) if smax > 0 else 1.0
        self.c0 = lam * self.gamma / m  # majoriser curvature of each row
        p_free = self.npen - n
        self.face = not self.l1 and n**3 / 3 + n * n * p_free <= FACE_COST * 2 * self.npen**2
        if self.face:
            # the Schur complement of the free block: G_bb = U_b diag(lam_b) U_b^T
            Gbb = Gc[n:, n:]
            lam_b, U_b = np.linalg.eigh(0.5 * (Gbb + Gbb.T))
            self.lam_b, self.U_b = np.maximum(lam_b, 0.0), U_b
            self.K = Gc[:n, n:] @ U_b
            self.lam_b_cut = 1e-12 * max(float(self.lam_b[-1]) if lam_b.size else 0.0, 1e-300)

    # --- row values and gradients -------------------------------------------------------
    def pen_rows(self, W):
        Wp = W[:, :self.npen]
        if self.l2:
            return 0.5 * self.alpha * (Wp * Wp).sum(axis=1)
        if self.l1:
            return self.alpha * np.abs(Wp).sum(axis=1)
        return np.zeros(W.shape[0])

    def values(self, W, Z, rows):
        """Row objectives (without the constant f*(P)) at W with pre-activations Z."""
        F = self.act.f(Z)
        F -= self.P[:, rows] * Z
        Fs = F.sum(axis=0) if self.w is None else self.w @ F
        return Fs * (self.lam[rows] / self.m) + self.pen_rows(W)

    def grad(self, Z):
        """Gradient of the data term of every row, (n, d)."""
        R = self.act(Z)
        R -= self.P
        R *= self.lam / self.m
        if self.w is not None:
            R *= self.w[:, None]
        return R.T @ self.M

    def grad_rows(self, Z, rows):
        """Gradient of the data term of the rows ``rows`` (``Z``: their pre-activations)."""
        R = self.act(Z)
        R -= self.P[:, rows]
        R *= self.lam[rows] / self.m
        if self.w is not None:
            R *= self.w[:, None]
        return R.T @ self.M

    def mean_slope(self, Z):
        """Mean activation slope of every row over the samples, relative to gamma."""
        if self.w is not None:
            return self.w @ self.act.derivative(Z) / (self.m * self.gamma)
        return self.act.derivative(Z).mean(axis=0) / self.gamma

    # --- the model ----------------------------------------------------------------------
    def model_terms(self, W0, W1, g):
        r"""The terms of the model along :math:`\Delta = w^1 - w^0` per row:
        ``(g'Delta, Delta'G Delta, pen(w^1), pen(w^0))``."""
        D = W1 - W0
        Dp = D[:, :self.npen]
        quad = np.add.reduce(Dp @ self.Gc * Dp, axis=1)
        if self.fit_bias:
            quad += self.m * D[:, -1] ** 2
        return np.add.reduce(g * D, axis=1), quad, self.pen_rows(W1), self.pen_rows(W0)

    @staticmethod
    def decrease(terms, c):
        r""":math:`Q_i(w^1) - Q_i(w^0)` for curvatures ``c`` from :meth:`model_terms`."""
        lin, quad, pen1, pen0 = terms
        return lin + 0.5 * c * quad + pen1 - pen0

    def model_decrease(self, W0, W1, g, c):
        r""":math:`Q_i(w^1) - Q_i(w^0)` for curvatures ``c`` (per row)."""
        return self.decrease(self.model_terms(W0, W1, g), c)


def _eig_inverse(prob, shift):
    r"""The diagonal of :math:`(S + \mathrm{shift}_i I)^{-1}` per row, :math:`G_c = VSV^\top`
    (0 on the null space of :math:`G_c` where the shift is 0)."""
    d = prob.s[None, :] + shift[:, None]
    ok = d > prob.s_cut
    return np.where(ok, 1.0 / np.where(ok, d, 1.0), 0.0)


def _solve_eig(prob, R, shift):
    r"""Solve :math:`(G_c + \mathrm{shift}_i I)x_i = r_i` for every row of ``R`` (pseudo-inverse
    on the null space of :math:`G_c` where the shift is 0)."""
    return ((R @ prob.V) * _eig_inverse(prob, shift)) @ prob.V.T


def _qp_admm(prob, W0p, q, beta, thr, Z, Y, rows, tol, max_iter):
    r"""ADMM on the rows ``rows``: minimise :math:`q^\top w + \tfrac12 (w - w^0)^\top G_c
    (w - w^0) + \tfrac\beta2\|w\|^2 + \mathrm{thr}\|w\|_1 + I(\|w_A\|_1 \le \kappa)` per row.

    Over-relaxed ADMM (relaxation 1.6, Boyd et al. 2011 §3.4.3) with the penalty
    :attr:`_MMProblem.rho0`; the w-update in the eigenbasis of :math:`G_c` (two products
    with V per iteration). A row stops when its primal and dual residuals (max norm) are below
    ``tol * max(1, max|z|)``. ``Z`` (the feasible iterate) and ``Y`` (the scaled duals) are
    updated in place on ``rows``. Returns the number of iterations and the mask (over ``rows``)
    of the rows that did not meet the tolerance within ``max_iter``.
    """
    n = prob.n
    rho = prob.rho0
    V, VT = prob.V, prob.V.T
    kappa = prob.kappa
    z, u = Z[rows], Y[rows]
    base = (W0p @ prob.Gc - q) @ V  # in the eigenbasis
    inv = _eig_inverse(prob, rho + beta)
    t = None if thr is None else thr[:, None] / rho
    live = np.arange(rows.size)  # the rows still iterating: z, u, base, inv, t cut to them
    zl, ul = z, u  # u = Y[rows] is a copy: updated in place
    it = 0
    done = np.zeros(rows.size, dtype=bool)
    while it < max_iter:
        it += 1
        w = (zl - ul) @ V
        w *= rho
        w += base
        w *= inv
        w = w @ VT
        wr = RELAX * w
        wr += (1.0 - RELAX) * zl
        v = wr + ul
        if t is not None:
            v = np.sign(v) * np.maximum(np.abs(v) - t, 0.0)
        vA = v[:, :n]
        _project_l1_rows(vA, kappa, out=vA)
        wr -= v
        ul += wr
        # |w - v|, |v - z| and |v| in one buffer, one abs and one reduction: per row the
        # residual max(|w - v|, |v - z|) and max|v| (maxima are exact: the same numbers as
        # separate reductions)
        buf = np.empty((3,) + v.shape)
        np.subtract(w, v, out=buf[0])
        np.subtract(v, zl, out=buf[1])
        buf[2] = v
        np.abs(buf, out=buf)
        red = np.maximum.reduce(buf, axis=2, initial=0.0)
        res = np.maximum(red[0], red[1])
        zl = v
        done = res <= tol * np.maximum(1.0, red[2])
        n_done = np.count_nonzero(done)
        if n_done == done.size:
            break
        if n_done * 4 >= done.size:  # drop the finished rows
            z[live], u[live] = zl, ul
            keep = ~done
            live, zl, ul, base, inv = live[keep], zl[keep], ul[keep], base[keep], inv[keep]
            if t is not None:
                t = t[keep]
    z[live], u[live] = zl, ul
    Z[rows], Y[rows] = z, u
    slow = np.zeros(rows.size, dtype=bool)
    slow[live[~done] if done.size == live.size else live] = True
    return it, slow


def _mm_qp(prob, W0, g, c, duals, inner_tol, inner_max_iter):
    r"""Minimise the model :math:`Q_i` of every row (curvatures ``c``) over the feasible set.

    Returns the new rows (feasible; the bias step exact) and updates ``duals`` (the ADMM
    duals, unscaled) in place.
    """
    n, npen = prob.n, prob.npen
    r = W0.shape[0]
    W1 = W0.copy()
    if prob.fit_bias:
        W1[:, -1] = W0[:, -1] - g[:, -1] / (c * prob.m)
    W0p = W0[:, :npen]
    q = g[:, :npen] / c[:, None]
    beta = prob.alpha / c if prob.l2 else np.zeros(r)
    thr = prob.alpha / c if prob.l1 else None
    todo = np.arange(r)
    if not prob.l1:
        # the QP without the ball: (G_c + beta I) w = G_c w0 - q
        Wu = _solve_eig(prob, W0p @ prob.Gc - q, beta)
        inside = np.abs(Wu[:, :n]).sum(axis=1) <= prob.kappa
        W1[inside, :npen] = Wu[inside]
        duals[inside] = 0.0
        todo = np.flatnonzero(~inside)
    if todo.size:
        Z = W0p.copy()
        ZA = Z[:, :n]
        _project_l1_rows(ZA, prob.kappa, out=ZA)
        rho = prob.rho0
        Y = duals / (rho * c[:, None])  # scaled dual of the problem divided by c
        _, slow = _qp_admm(prob, W0p[todo], q[todo], beta[todo],
                           None if thr is None else thr[todo], Z, Y, todo, inner_tol,
                           min(inner_max_iter, ADMM_WARMUP) if prob.face else inner_max_iter)
        if prob.face and slow.any():
            s = todo[slow]
            Z[s] = _active_set(prob, W0p[s], q[s], beta[s], Z[s])
        W1[todo, :npen] = Z[todo]
        duals[todo] = Y[todo] * (rho * c[todo, None])
    return W1


class _Reduced:
    r"""The QP of the rows that leave the ball with :math:`\beta` eliminated: :math:`\min_a
    \tfrac12 a^\top S_i a - \rho_i^\top a` s.t. :math:`\|a\|_1 \le \kappa`, where, with
    :math:`H_i = G_c + b_i I` (``beta``: the ridge over the curvature) and :math:`r_i = G_c
    w^0_i - q_i`, :math:`S_i = H_{i,aa} - G_{a\beta} H_{i,\beta\beta}^{-1} G_{\beta a}`,
    :math:`\rho_i = r_{i,a} - G_{a\beta}H_{i,\beta\beta}^{-1} r_{i,\beta}`, and
    :math:`\beta^*(a) = H_{i,\beta\beta}^{-1}(r_{i,\beta} - G_{\beta a}a)` (pseudo-inverse on
    the null space of :math:`G_{c,\beta\beta}` where :math:`b_i = 0`)."""

    def __init__(self, prob, W0p, q, beta):
        n = prob.n
        self.prob, self.beta = prob, beta
        self.r = W0p @ prob.Gc - q
        dl = prob.lam_b[None, :] + beta[:, None]
        ok = dl > prob.lam_b_cut
        self.Dinv = np.where(ok, 1.0 / np.where(ok, dl, 1.0), 0.0)
        self.sD = np.sqrt(self.Dinv)
        self.rho = self.r[:, :n] - ((self.r[:, n:] @ prob.U_b) * self.Dinv) @ prob.K.T

    def grad(self, a, rows):
        r""":math:`S_i a_i - \rho_i` for the rows ``rows``."""
        prob = self.prob
        Gaa = prob.Gc[:prob.n, :prob.n]
        return (a @ Gaa + self.beta[rows, None] * a
                - ((a @ prob.K) * self.Dinv[rows]) @ prob.K.T - self.rho[rows])

    def free_part(self, a):
        r""":math:`\beta^*(a)` for every row."""
        prob = self.prob
        rb = self.r[:, prob.n:] - a @ prob.Gc[:prob.n, prob.n:]
        return ((rb @ prob.U_b) * self.Dinv) @ prob.U_b.T

    def values(self, W):
        r"""The QP objective :math:`\tfrac12 w^\top H_i w - r_i^\top w` of full rows."""
        return ((0.5 * (W @ self.prob.Gc + self.beta[:, None] * W) - self.r) * W).sum(axis=1)

    def face_solve(self, sgn, rows):
        r"""Minimise over the faces ``sgn`` (rows of signs in {-1, 0, 1}; support F) of the
        sphere: :math:`S_{FF} a_F + \mu s_F = \rho_F`, :math:`s_F^\top a_F = \kappa`, one
        :math:`(|F| + 1)`-dimensional KKT solve per row, padded to the largest support. Returns
        ``(a, mu)``."""
        prob = self.prob
        supp = sgn != 0
        cnt = supp.sum(axis=1)
        k = int(cnt.max())
        order = np.argsort(~supp, axis=1, kind="stable")[:, :k]  # the support first
        valid = np.arange(k)[None, :] < cnt[:, None]
        KF = prob.K[order] * self.sD[rows, None, :]
        S = prob.Gc[order[:, :, None], order[:, None, :]] - KF @ KF.transpose(0, 2, 1)
        S[~(valid[:, :, None] & valid[:, None, :])] = 0.0
        idx = np.arange(k)
        S[:, idx, idx] += np.where(valid, self.beta[rows, None], 1.0)
        kkt = np.zeros((rows.size, k + 1, k + 1))
        kkt[:, :k, :k] = S
        sF = np.take_along_axis(sgn, order, axis=1) * valid
        kkt[:, :k, k] = sF
        kkt[:, k, :k] = sF
        rhs = np.empty((rows.size, k + 1, 1))
        rhs[:, :k, 0] = np.take_along_axis(self.rho[rows], order, axis=1) * valid
        rhs[:, k, 0] = prob.kappa
        sol = np.linalg.solve(kkt, rhs)[:, :, 0]
        a = np.zeros_like(sgn)
        np.put_along_axis(a, order, sol[:, :k] * valid, axis=1)
        return a, sol[:, k]


def _active_set(prob, W0p, q, beta, Z):
    r"""Finish the QP of :func:`_qp_admm` (no l1 penalty) on rows whose unconstrained
    minimiser leaves the ball, from the feasible ADMM points ``Z``: a primal active-set method
    on the faces of the sphere :math:`\|a\|_1 = \kappa` in the reduced problem of
    :class:`_Reduced` (at most :data:`ACTIVE_SET_ROUNDS` face solves).

    Each round solves the face of every unfinished row (:meth:`_Reduced.face_solve`). A row
    whose solution keeps the face's signs moves there; at that face optimum, the zero
    coordinates j with :math:`|\nabla_j| > \mu` (the KKT condition of the ball) enter the face
    with the sign of :math:`-\nabla_j` (all those within :data:`ADD_FRACTION` of the largest
    violation); with none the row is optimal. A row whose solution flips a sign moves along the
    segment to the first coordinate that reaches zero, which leaves the face. The points stay
    feasible; the model decreases along each segment (convex on the face). Returns the rows
    (a and :math:`\beta^*(a)`), each the better of that point and its ADMM point.
    """
    n = prob.n
    red = _Reduced(prob, W0p, q, beta)
    a = Z[:, :n].copy()  # feasible (ADMM's z)
    sgn = np.sign(a)
    empty = ~sgn.any(axis=1)
    if empty.any():  # a = 0: start from the steepest coordinate
        e = np.flatnonzero(empty)
        g = red.grad(a[e], e)
        j = np.abs(g).argmax(axis=1)
        sgn[e, j] = -np.sign(g[np.arange(e.size), j])
    live = np.arange(a.shape[0])
    try:
        for _ in range(ACTIVE_SET_ROUNDS):
            if live.size == 0:
                break
            cur, s = a[live], sgn[live]
            new, mu = red.face_solve(s, live)
            flip = (s != 0) & (new * s <= 0)
            den = np.abs(cur) + np.abs(new)
            ratio = np.where(flip, np.abs(cur) / np.where(den > 0, den, 1.0), np.inf)
            t = np.minimum(1.0, ratio.min(axis=1, initial=np.inf))
            step = cur + t[:, None] * (new - cur)
            block = flip & (ratio <= t[:, None])
            step[block] = 0.0
            s[block] = 0.0
            g = red.grad(step, live)
            viol = np.where(s == 0, np.abs(g) - mu[:, None], -np.inf)
            vmax = viol.max(axis=1, initial=-np.inf)
            add = (t >= 1.0) & (vmax > 1e-9 * np.maximum(1.0, np.abs(mu)))
            enter = add[:, None] & (viol >= ADD_FRACTION * vmax[:, None]) & (s == 0)
            s[enter] = -np.sign(g[enter])
            a[live], sgn[live] = step, s
            live = live[~((t >= 1.0) & ~add)]
    except np.linalg.LinAlgError:  # a singular face (no ridge, a dead state): keep the points
        pass
    norm = np.abs(a).sum(axis=1)  # kappa up to rounding
    a *= np.minimum(1.0, prob.kappa / np.maximum(norm, 1e-300))[:, None]
    W = np.hstack([a, red.free_part(a)])
    worse = ~(red.values(W) < red.values(Z))
    W[worse] = Z[worse]
    return W


def _curvature_ratio(prob, terms, f0, f1, rows):
    r"""The curvature of the smooth part along the step of ``terms``
    (:meth:`_MMProblem.model_terms`) relative to the majoriser's: :math:`(f_1 - f_0 -
    g^\top\Delta - \Delta\mathrm{pen}) / (\tfrac{c^0_i}2\Delta^\top G\Delta)` per row
    (0 for a zero step)."""
    gd, _, pen1, pen0 = terms
    lin = gd + pen1 - pen0
    quad = prob.decrease(terms, prob.c0[rows]) - lin
    return np.where(quad > 0, (f1 - f0 - lin) / np.where(quad > 0, quad, 1.0), 0.0)


def _shortened(prob, todo, glob, ok, W0, Wt, Z, Zt, f, g, rt, theta, W1, Z1, f1, dec, ratio):
    r"""The rows that failed the acceptance test (``~ok``) tried at the shortened step
    :math:`w^k + t_i(w^{QP} - w^k)`, :math:`t_i = \theta_i / \theta_i'`, along their QP's
    direction, with :math:`\theta_i'` the raised curvature (the curvature the failed step
    measured, ``rt``, at least doubled, at most 1).

    Along the direction the model :math:`Q_i` with :math:`\theta_i'` is minimised near
    :math:`t_i` (exactly so without a penalty and the ball); the point is feasible where
    :math:`w^k` is (the feasible set is convex) and :math:`Z` is affine in W, so the trial costs
    no product and no QP. A row whose point passes the test of :func:`_mm_step` with
    :math:`\theta_i'` (:math:`f_i \le Q_i`, its model decrease :math:`\le 0`, inside the ball)
    is accepted: its outputs are written, its ``theta`` raised to :math:`\theta_i'` and its
    ``ok`` set. ``todo``, ``glob``, ``ok``, ``W0``, ``Wt``, ``Zt``, ``rt`` are those of the
    current attempt of :func:`_mm_step` (rows ``todo`` of its arrays); the others its whole
    arrays."""
    fail = np.flatnonzero(~ok)
    gf = glob[fail]
    th_new = np.minimum(1.0, np.maximum(2.0 * theta[gf], 1.1 * rt[fail]))
    t = theta[gf] / th_new
    W0f = W0[fail]
    Wb = W0f + t[:, None] * (Wt[fail] - W0f)
    Zf = Z[:, todo[fail]]
    Zb = Zf + (Zt[:, fail] - Zf) * t[None, :]
    fb = prob.values(Wb, Zb, gf)
    terms = prob.model_terms(W0f, Wb, g[todo[fail]])
    db = prob.decrease(terms, th_new * prob.c0[gf])
    f0 = f[todo[fail]]
    good = (db <= 0) & (fb <= f0 + db + 1e-12 * np.maximum(np.abs(f0), 1.0))
    good &= np.abs(Wb[:, :prob.n]).sum(axis=1) <= prob.kappa * (1 + 1e-12)
    if not good.any():
        return
    k = fail[good]
    rows = todo[k]
    W1[rows], Z1[:, rows], f1[rows], dec[rows] = Wb[good], Zb[:, good], fb[good], db[good]
    ratio[rows] = _curvature_ratio(prob, tuple(x[good] for x in terms), f0[good], fb[good],
                                   gf[good])
    theta[gf[good]] = th_new[good]
    ok[k] = True


def _mm_step(prob, rows, W, Z, f, g, theta, duals, inner_tol, inner_max_iter):
    r"""One MM step on the rows ``rows`` from the points ``W`` (their pre-activations ``Z`` and
    objectives ``f``), with the per-row curvature scales ``theta`` (raised in place where a
    step fails the acceptance test, until it passes or reaches the majoriser). ``theta`` and
    ``duals`` are the arrays of all rows; ``W, Z, f, g`` those of ``rows``.

    Returns ``(W1, Z1, f1, dec, ratio)``: the new rows, their pre-activations and objectives,
    the model decreases (<= 0) and the measured curvature ratios of the accepted steps.
    """
    r = W.shape[0]
    W1, Z1 = np.empty_like(W), np.empty_like(Z)
    f1, dec, ratio = np.empty(r), np.zeros(r), np.zeros(r)
    todo = np.arange(r)
    for _ in range(64):
        glob = rows[todo]
        c = theta[glob] * prob.c0[glob]
        du = duals[glob]
        W0 = W[todo]
        Wt = _mm_qp(prob, W0, g[todo], c, du, inner_tol, inner_max_iter)
        duals[glob] = du
        terms = prob.model_terms(W0, Wt, g[todo])
        dt = prob.decrease(terms, c)
        worse = ~(dt <= 0)  # no model decrease (an inexact QP solve, rounding): keep the row
        if worse.any():
            Wt[worse] = W0[worse]
            dt[worse] = 0.0
            # the terms of the zero step of those rows: 0, 0 and pen(w^0) twice
            terms[0][worse], terms[1][worse] = 0.0, 0.0
            terms = (terms[0], terms[1], np.where(worse, terms[3], terms[2]), terms[3])
        Zt = prob.M @ Wt.T
        # all the rows (distinct indices): a slice, so that P is not gathered column by column
        sel = slice(None) if glob.size == prob.n else glob
        ft = prob.values(Wt, Zt, sel)
        rt = _curvature_ratio(prob, terms, f[todo], ft, sel)
        ok = ft <= f[todo] + dt + 1e-12 * np.maximum(np.abs(f[todo]), 1.0)
        ok |= theta[glob] >= 1.0  # the majoriser: holds up to rounding (checked below)
        plain = ok.copy()
        if SHORTEN and not ok.all():  # accepts some of the failed rows (ok set, outputs written)
            _shortened(prob, todo, glob, ok, W0, Wt, Z, Zt, f, g, rt, theta, W1, Z1, f1, dec,
                       ratio)
        acc = todo[plain]
        W1[acc], Z1[:, acc], f1[acc], dec[acc], ratio[acc] = (Wt[plain], Zt[:, plain],
                                                              ft[plain], dt[plain], rt[plain])
        todo = todo[~ok]
        if todo.size == 0:
            break
        glob = rows[todo]
        theta[glob] = np.minimum(1.0, np.maximum(2.0 * theta[glob], 1.1 * rt[~ok]))
    # a row whose step raised its objective (rounding, at theta = 1) keeps its point
    up = ~(f1 <= f)
    W1[up], Z1[:, up], f1[up], dec[up] = W[up], Z[:, up], f[up], 0.0
    return W1, Z1, f1, dec, ratio


def _accelerated_step(prob, W, Z, f, W_prev, Z_prev, t, theta, duals, itol, inner_max_iter):
    r"""An MM step from the extrapolated points :math:`y = w + \beta(w - w^{prev})`
    (:math:`\beta = (t_k - 1)/t_{k+1}`, Nesterov's sequence per row; Z is affine in W, so
    :math:`Z_y` costs no product), kept for the rows where it lands feasible and below
    :math:`f(w)`; the other rows restart (:math:`t = 1`) with the plain MM step from w.
    Returns the plain step's tuple and the new ``t``."""
    n = W.shape[0]
    rows = np.arange(n)
    t_new = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
    beta = (t - 1.0) / t_new
    Yw = W + beta[:, None] * (W - W_prev)
    Zy = Z + (Z - Z_prev) * beta[None, :]
    fy = prob.values(Yw, Zy, slice(None))  # all the rows
    W1, Z1, f1, dec, ratio = _mm_step(prob, rows, Yw, Zy, fy, prob.grad(Zy), theta, duals,
                                      itol, inner_max_iter)
    bad = ~(f1 <= f) | (np.abs(W1[:, :prob.n]).sum(axis=1) > prob.kappa * (1 + 1e-12))
    # without extrapolation (beta = 0) the step is the plain one; it can only rise by the
    # rounding of f computed from pre-activations of other shapes: keep the point
    up = bad & (beta == 0)
    W1[up], Z1[:, up], f1[up], dec[up] = W[up], Z[:, up], f[up], 0.0
    bad &= beta > 0
    if bad.any():
        b = np.flatnonzero(bad)
        out = _mm_step(prob, b, W[b], Z[:, b], f[b], prob.grad_rows(Z[:, b], b), theta, duals,
                       itol, inner_max_iter)
        W1[b], Z1[:, b], f1[b], dec[b], ratio[b] = out
        t_new[b] = 1.0
    return (W1, Z1, f1, dec, ratio), t_new


def ab_mm(X, U, P, lam, kappa, act, pen, fit_bias, init, tol, max_iter, *, adaptive=True,
          accelerate=True, trace=None, w=None):
    r"""MM steps on all rows of the (A, B, b) block (see the module docstring).

    Parameters
    ----------
    X, U, P, lam, kappa, act, pen, fit_bias
        The block's data, checked by :func:`~.ab.solve_ab` (``pen``: the view of NoPenalty,
        L2Penalty or L1Penalty).
    init : tuple (A, B, b) or None
        Starting point (A is projected onto the ball).
    tol : float
        Stop when every row's MM step is below ``tol * max(1, max|W|)`` in the max norm.
    max_iter : int
        Number of MM steps at most.
    adaptive : bool, default=True
        Per-row curvature scales :math:`\theta_i` with the acceptance test; ``False`` uses the
        majoriser itself (:math:`\theta = 1`).
    accelerate : bool, default=True
        Extrapolated steps with restarts; ``False``: plain MM steps, each a minimiser of the
        model at the current point (or, for a row that failed the acceptance test, its
        shortened step along the QP's direction, ``SHORTEN``).
    trace : list, optional
        Appended with ``(f_before, f_after, model_decrease)`` row vectors per MM step (for
        tests).
    w : ndarray of shape (m,), optional
        Unit-mean sample weights (:func:`~lifted_idl.losses.unit_mean_weights`): the
        weighted divergence, whose Gram matrix is :math:`M^\top\mathrm{diag}(w)M`.

    Returns
    -------
    (A, B, b, n_iter, converged)
    """
    prob = _MMProblem(X, U, P, lam, kappa, act, pen, fit_bias, w)
    n, p = X.shape[1], U.shape[1]
    if init is None:
        W = np.zeros((n, prob.M.shape[1]))
    else:
        A0 = _project_l1_rows(np.asarray(init[0], dtype=np.float64), kappa)
        W = to_internal(A0, init[1], init[2], prob.mbar, fit_bias)
    Z = prob.M @ W.T
    f = prob.values(W, Z, slice(None))
    theta = np.clip(prob.mean_slope(Z), THETA_MIN, 1.0) if adaptive else np.ones(n)
    duals = np.zeros((n, prob.npen))
    t = np.ones(n)
    W_prev, Z_prev = W, Z
    converged = False
    n_iter = 0
    rel_step = np.inf
    for k in range(1, max_iter + 1):
        n_iter = k
        itol = float(np.clip(INNER_FACTOR * rel_step, INNER_FACTOR * tol, INNER_MAX))
        if accelerate and k > 1:
            (W1, Z1, f1, dec, ratio), t = _accelerated_step(
                prob, W, Z, f, W_prev, Z_prev, t, theta, duals, itol, INNER_MAX_ITER)
        else:
            W1, Z1, f1, dec, ratio = _mm_step(prob, np.arange(n), W, Z, f, prob.grad(Z),
                                              theta, duals, itol, INNER_MAX_ITER)
        W_prev, Z_prev, Z = W, Z, Z1
        if trace is not None:
            trace.append((f.copy(), f1.copy(), dec.copy()))
        rel_step = float(np.abs(W1 - W).max(initial=0.0)) / max(
            1.0, float(np.abs(W1).max(initial=0.0)))
        W, f = W1, f1
        if adaptive:
            theta = np.clip(np.maximum(THETA_DECREASE * theta, THETA_SAFETY * ratio),
                            THETA_MIN, 1.0)
        # a step below tol is convergence only when its QPs were solved at the tight floor;
        # a loose first solve that moved no row is followed by a tight one (rel_step = 0)
        if rel_step <= tol and itol <= INNER_FACTOR * tol:
            converged = True
            break
    A, B, b = from_internal(W, n, p, prob.mbar, fit_bias)
    return A, B, b, n_iter, converged
