r"""Frank–Wolfe (conditional-gradient) solvers for the l1-constrained BCD blocks (theory §8).

The relaxed, lifted training problem of [IDL §6] / theory §8 splits into convex blocks. Two of
them have l1-type constraints whose linear minimisation oracle (LMO) returns a single signed
vertex, so Frank–Wolfe iterates stay sparse [IDL §5]:

* :func:`fw_cd`, the output block (row layout, loss averaged over the m samples)

  .. math:: \min_{C, D, c}\ \mathcal L\big(Y,\ P C^\top + U D^\top + \mathbf 1 c^\top\big)
            \quad\text{s.t.}\quad \|\mathrm{vec}[C\ D]\|_1 \le \kappa_C ;

* :func:`fw_ab`, the state block

  .. math:: \min_{A, B, b}\ \frac1m \sum_{i=1}^n \lambda_i \sum_{s=1}^m
            F_\phi\big(P_{si}, Z_{si}\big), \qquad Z = X A^\top + U B^\top + \mathbf 1 b^\top,

  subject to :math:`\|A\|_\infty \le \kappa_A` (each row of A in an l1 ball) and
  :math:`\|B\|_1 = \sum_{ij} |B_{ij}| \le \kappa_B` (the entrywise l1 norm, so its LMO picks a
  single signed entry of B), with :math:`F_\phi(x, z) = f^*(x) + f(z) - xz` the Fenchel
  divergence of the activation (theory §8).

The unconstrained intercepts (c, b) are minimised out exactly at every iterate, so the solver
runs Frank–Wolfe on the convex partial minimum :math:`g(W) = \min_c f(W, c)`, whose gradient is
:math:`\nabla_W f(W, c^\star(W))` (Danskin). The Frank–Wolfe gap
:math:`\langle \nabla g(W), W - S\rangle` with S the LMO vertex therefore bounds
:math:`g(W) - \min g` and is the stopping certificate. Steps use an exact line search (closed
form for the squared loss, otherwise a safeguarded root search on the directional derivative,
which is monotone by convexity) and, by default, away steps over an explicit active set
(Lacoste-Julien & Jaggi 2015), which lets iterates drop atoms again.

Both return a :class:`FWResult`, the common :class:`~lifted_idl.blocks.BlockResult` with the
gap. Their cvxpy twins (``method="cvxpy"``) state the same constrained problems, with the
l1 balls as ``sum(abs(.))`` constraints, and are solved by the solver of the problem's class
(:mod:`._common`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import softmax

from .._validation import (
    check_choice,
    check_finite_matrix,
    check_max_iter,
    check_real,
    check_tol,
)
from ..activations import Activation, get_activation
from ..exceptions import _warn_convergence
from ..losses import Loss, SoftmaxCrossEntropy, SquaredLoss, get_loss
from ..wellposedness import project_inf_norm_ball
from ._common import BlockResult, check_cvxpy_solver, solve_cvxpy

__all__ = ["FWResult", "fw_cd", "fw_ab"]


# ----------------------------------------------------------------------------------------------
# results
# ----------------------------------------------------------------------------------------------
@dataclass
class FWResult(BlockResult):
    """What :func:`fw_cd` and :func:`fw_ab` return: a :class:`~lifted_idl.blocks.BlockResult`
    (``value`` is ``(C, D, c)`` or ``(A, B, b)``) with the Frank–Wolfe gap certificate.

    The gap is a property of the returned point, not of the solver, so the cvxpy twin reports
    it too; it lives in this subclass rather than in ``BlockResult`` because no other block
    has a bound of this kind (their solvers stop on gradient or step sizes).

    Attributes
    ----------
    fw_gap : float
        Frank–Wolfe gap at ``value``: ``objective - optimum <= fw_gap``. ``converged`` (Frank–
        Wolfe) means ``fw_gap <= tol * max(|objective|, 1e-12 * max(|f0|, 1))``.
    gap_history : ndarray
        The gap at every iterate, the initial point first (cvxpy: the gap at its solution
        only).
    """

    fw_gap: float
    gap_history: np.ndarray = field(repr=False)


# ----------------------------------------------------------------------------------------------
# the l1 ball: an active-set representation
# ----------------------------------------------------------------------------------------------
def _radius(radius, K, name):
    r = np.asarray(radius, dtype=float)
    if r.ndim == 0:
        r = np.full(K, float(r))
    if r.shape != (K,):
        raise ValueError(f"{name} must be a scalar or have {K} entries; got shape {r.shape}")
    if not np.all(np.isfinite(r)) or np.any(r < 0):
        raise ValueError(f"{name} must be finite and >= 0; got {name}={radius!r}")
    return r


class _L1Atoms:
    """Points of K l1 balls of radii r_k in R^d, as convex combinations of atoms.

    Atoms per ball: ``+r e_j`` (columns ``0..d-1``), ``-r e_j`` (columns ``d..2d-1``) and ``0``
    (column ``2d``); their convex hull is the ball. The weights ``alpha`` (K, 2d+1) are
    nonnegative and sum to one per row.
    """

    def __init__(self, W, r):
        K, d = W.shape
        self.d = d
        self.r = r
        self.alpha = np.zeros((K, 2 * d + 1))
        pos = r > 0
        rr = np.where(pos, r, 1.0)[:, None]
        self.alpha[:, :d] = np.where(pos[:, None], np.maximum(W, 0) / rr, 0.0)
        self.alpha[:, d:2 * d] = np.where(pos[:, None], np.maximum(-W, 0) / rr, 0.0)
        tot = self.alpha[:, :2 * d].sum(axis=1)
        over = tot > 1
        self.alpha[over, :2 * d] /= tot[over, None]
        self.alpha[:, 2 * d] = np.maximum(1.0 - self.alpha[:, :2 * d].sum(axis=1), 0.0)

    def point(self):
        d = self.d
        return self.r[:, None] * (self.alpha[:, :d] - self.alpha[:, d:2 * d])

    def _values(self, G):
        # <G_k, atom> for every atom of ball k
        rG = self.r[:, None] * G
        return np.concatenate([rG, -rG, np.zeros((G.shape[0], 1))], axis=1)

    def _atom(self, idx):
        d = self.d
        K = idx.shape[0]
        S = np.zeros((K, d))
        rows = np.arange(K)
        plus = idx < d
        minus = (idx >= d) & (idx < 2 * d)
        S[rows[plus], idx[plus]] = self.r[plus]
        S[rows[minus], idx[minus] - d] = -self.r[minus]
        return S

    def fw_gap(self, G, W):
        vals = self._values(G)
        return (G * W).sum(axis=1) - vals.min(axis=1)

    def directions(self, G, W, away_steps):
        """Per ball: the direction, its largest feasible step and the FW gap at W."""
        vals = self._values(G)
        gw = (G * W).sum(axis=1)
        s_idx = np.argmin(vals, axis=1)
        rows = np.arange(G.shape[0])
        fw_gap = gw - vals[rows, s_idx]
        Dfw = self._atom(s_idx) - W
        if not away_steps:
            return Dfw, np.ones(G.shape[0]), fw_gap, ("fw", s_idx, None)
        masked = np.where(self.alpha > 0, vals, -np.inf)
        a_idx = np.argmax(masked, axis=1)
        away_gap = masked[rows, a_idx] - gw
        use_away = away_gap > fw_gap
        aw = self.alpha[rows, a_idx]
        with np.errstate(divide="ignore"):
            gmax_away = np.where(aw < 1, aw / np.maximum(1 - aw, 1e-300), np.inf)
        Daw = W - self._atom(a_idx)
        Dir = np.where(use_away[:, None], Daw, Dfw)
        gmax = np.where(use_away, gmax_away, 1.0)
        return Dir, gmax, fw_gap, ("mixed", s_idx, (use_away, a_idx, gmax))

    def update(self, info, gamma):
        kind, s_idx, away = info
        K = self.alpha.shape[0]
        rows = np.arange(K)
        use_away = np.zeros(K, dtype=bool) if away is None else away[0]
        fw = ~use_away & (gamma > 0)
        if fw.any():
            g = gamma[fw]
            self.alpha[fw] *= (1 - g)[:, None]
            self.alpha[rows[fw], s_idx[fw]] += g
        aw = use_away & (gamma > 0)
        if aw.any():
            a_idx, gmax = away[1], away[2]
            g = gamma[aw]
            self.alpha[aw] *= (1 + g)[:, None]
            self.alpha[rows[aw], a_idx[aw]] -= g
            drop = aw & (gamma >= gmax)
            self.alpha[rows[drop], a_idx[drop]] = 0.0
        np.maximum(self.alpha, 0.0, out=self.alpha)
        self.alpha /= self.alpha.sum(axis=1, keepdims=True)


# ----------------------------------------------------------------------------------------------
# a vectorized root search for increasing scalar functions (line searches and biases)
# ----------------------------------------------------------------------------------------------
def _increasing_root(fun, lo, hi, glo, ghi, xtol=1e-14, max_iter=200):
    """Roots of K increasing functions, given brackets with ``glo <= 0 <= ghi``.

    Illinois (modified regula falsi) with a bisection safeguard; ``fun(x)`` evaluates all K
    functions at the vector ``x``.
    """
    lo, hi, glo, ghi = (np.array(v, dtype=float) for v in (lo, hi, glo, ghi))
    x = np.where(glo >= 0, lo, hi)
    done = (glo >= 0) | (ghi <= 0)
    gscale = np.abs(glo) + np.abs(ghi)
    side = np.zeros(lo.shape, dtype=int)
    for it in range(max_iter):
        if done.all():
            break
        with np.errstate(divide="ignore", invalid="ignore"):
            xf = (lo * ghi - hi * glo) / (ghi - glo)
        bisect = ~np.isfinite(xf) | (xf <= lo) | (xf >= hi) | (it % 8 == 7)
        xn = np.where(bisect, 0.5 * (lo + hi), xf)
        xn = np.where(done, x, xn)
        g = fun(xn)
        x = np.where(done, x, xn)
        neg = (g < 0) & ~done
        pos = (g > 0) & ~done
        ghi = np.where(neg & (side == -1), 0.5 * ghi, ghi)
        glo = np.where(pos & (side == 1), 0.5 * glo, glo)
        lo = np.where(neg, xn, lo)
        glo = np.where(neg, g, glo)
        hi = np.where(pos, xn, hi)
        ghi = np.where(pos, g, ghi)
        side = np.where(neg, -1, np.where(pos, 1, side))
        done |= (np.abs(g) <= 1e-15 * gscale) | (hi - lo <= xtol * np.maximum(1.0, np.abs(x)))
    return x


def _line_search(dfun, gmax):
    """Exact line search on [0, gmax] for K convex functions with derivatives ``dfun``."""
    K = gmax.shape[0]
    g0 = dfun(np.zeros(K))
    active = g0 < 0
    gamma = np.zeros(K)
    if not active.any():
        return gamma
    # a finite upper end: gmax, or doubling from 1 for an unbounded away step
    hi = np.where(np.isfinite(gmax), gmax, 1.0)
    ghi = dfun(hi)
    for _ in range(60):
        grow = active & ~np.isfinite(gmax) & (ghi < 0)
        if not grow.any():
            break
        hi = np.where(grow, 2 * hi, hi)
        ghi = dfun(hi)
    full = active & (ghi <= 0)
    gamma[full] = hi[full]
    inner = active & ~full
    if inner.any():
        root = _increasing_root(dfun, np.zeros(K), hi, np.where(inner, g0, 0.0),
                                np.where(inner, ghi, 0.0))
        gamma[inner] = np.clip(root[inner], 0.0, hi[inner])
    return gamma


def _stop_scale(obj, obj0):
    return max(abs(obj), 1e-12 * max(abs(obj0), 1.0))


# ----------------------------------------------------------------------------------------------
# input checks
# ----------------------------------------------------------------------------------------------
def _as_2d(name, M, rows=None, cols=None):
    return check_finite_matrix(name, M, (rows, cols))


def _check_iter(tol, max_iter, method="fast"):
    check_choice("method", method, ("fast", "cvxpy"))
    return check_tol(tol), check_max_iter(max_iter, low=0)


def _warn_unconverged(name, gap, tol, scale, max_iter):
    _warn_convergence(
        f"{name} stopped at max_iter={max_iter} with Frank-Wolfe gap {gap:.3e} > "
        f"tol * scale = {tol * scale:.3e}; increase max_iter or tol", stacklevel=3)


# ----------------------------------------------------------------------------------------------
# the (C, D) block
# ----------------------------------------------------------------------------------------------
class _Intercept:
    """Exact minimisation of the loss over the unconstrained intercept c."""

    def __init__(self, loss: Loss, Y):
        self.loss, self.Y = loss, Y

    def __call__(self, H, c0):
        """argmin_c loss(Y, H + c), warm-started at c0."""
        loss, Y = self.loss, self.Y
        if isinstance(loss, SquaredLoss):
            return (Y - H).mean(axis=0)
        if isinstance(loss, SoftmaxCrossEntropy):
            return self._newton_softmax(H, c0)
        return self._lbfgs(H, c0)

    def _newton_softmax(self, H, c):
        """Damped Newton on the sum-zero subspace (the loss is invariant along 1)."""
        Y, m = self.Y, self.Y.shape[0]
        q = Y.shape[1]
        ones = np.full((q, q), 1.0 / q)
        ybar = Y.mean(axis=0)

        def value(c):
            T = H + c
            mx = T.max(axis=1, keepdims=True)
            lse = mx[:, 0] + np.log(np.exp(T - mx).sum(axis=1))
            return float(lse.mean() - (Y * T).sum(axis=1).mean())

        val = value(c)
        for _ in range(100):
            S = softmax(H + c, axis=1)
            g = S.mean(axis=0) - ybar
            if np.abs(g).max(initial=0.0) <= 1e-13:
                break
            Hs = (np.diag(S.sum(axis=0)) - S.T @ S) / m
            step = -np.linalg.solve(Hs + ones, g)
            step -= step.mean()
            dec = -float(g @ step)  # Newton decrement squared
            if dec <= 1e-10:  # quadratic-convergence region: full steps
                c = c + step
                if dec <= 1e-24:  # below rounding: done
                    break
                continue
            t = 1.0
            while t >= 1e-10:
                new = value(c + t * step)
                if new <= val - 1e-4 * t * dec:
                    break
                t *= 0.5
            else:
                break
            c = c + t * step
            val = new
        return c

    def _lbfgs(self, H, c0):
        from scipy.optimize import minimize

        loss, Y = self.loss, self.Y

        def fg(c):
            Yh = H + c
            return loss.value(Y, Yh), np.asarray(loss.grad(Y, Yh)).sum(axis=0)

        res = minimize(fg, c0, jac=True, method="L-BFGS-B",
                       options={"gtol": 1e-13, "ftol": 1e-15, "maxiter": 1000})
        return np.asarray(res.x, dtype=float)


def _check_cd_targets(loss, Y, fit_intercept):
    if isinstance(loss, SoftmaxCrossEntropy):
        if np.any(Y < 0) or not np.allclose(Y.sum(axis=1), 1.0, atol=1e-10):
            raise ValueError(
                "Y must hold one-hot or probability rows (nonnegative, summing to 1) for the "
                f"cross-entropy loss; got row sums in [{Y.sum(axis=1).min():.6g}, "
                f"{Y.sum(axis=1).max():.6g}] and min entry {Y.min():.6g}"
            )
        if fit_intercept and np.any(Y.sum(axis=0) <= 0):
            bad = np.flatnonzero(Y.sum(axis=0) <= 0).tolist()
            raise ValueError(
                f"Y has no mass on class(es) {bad}: the intercept minimiser does not exist "
                "(c_k -> -inf); drop those columns or pass fit_intercept=False"
            )


def fw_cd(P, U, Y, loss, kappa_c: float, *, fit_intercept: bool = True, init=None,
          tol: float = 1e-6, max_iter: int = 1000, away_steps: bool = True,
          warn: bool = True, method: str = "fast",
          cvxpy_solver: str | None = None) -> FWResult:
    r"""Frank–Wolfe for the l1-ball-constrained output block (C, D) (theory §8, [IDL §5-6]).

    Solves

    .. math:: \min_{C, D, c}\ \mathcal L\big(Y,\ P C^\top + U D^\top + \mathbf 1 c^\top\big)
              \quad\text{s.t.}\quad \|\mathrm{vec}[C\ D]\|_1 \le \kappa_C,

    the (C, D) block of the relaxed problem of theory §8 with an l1-ball instead of an l1
    penalty. The LMO of the ball picks a single signed entry
    :math:`-\kappa_C\,\mathrm{sign}(G_{kj}) e_k e_j^\top` of the gradient's largest magnitude,
    so after t steps ``[C D]`` has at most ``nnz(init) + t`` nonzeros.

    Parameters
    ----------
    P : array of shape (m, n)
        State features (the lifted P, or equilibrium states X).
    U : array of shape (m, p)
        Inputs.
    Y : array of shape (m, q)
        Targets (one-hot or probability rows for the cross-entropy).
    loss : {"squared", "cross_entropy"} or Loss
        Averaged over the samples (:mod:`lifted_idl.losses`).
    kappa_c : float
        Radius :math:`\kappa_C \ge 0` of the l1 ball on :math:`\mathrm{vec}[C\ D]`.
    fit_intercept : bool, default=True
        Minimise over the unconstrained intercept c at every iterate: in closed form
        (:math:`c = \bar y - \bar P C^\top - \bar U D^\top`) for the squared loss, by damped
        Newton for the cross-entropy, by L-BFGS for other losses. When False, c stays at the
        intercept given in ``init`` (zeros by default).
    init : tuple (C, D) or (C, D, c), optional
        Warm start; a point outside the ball is first projected onto it.
    tol : float, default=1e-6
        Stop when the Frank–Wolfe gap is at most ``tol * max(|objective|, 1e-12 * max(|f0|, 1))``
        (f0 the initial objective). Losses here are nonnegative, so this bounds the relative
        suboptimality.
    max_iter : int, default=1000
        Frank–Wolfe steps; hitting it issues a :class:`~lifted_idl.exceptions.ConvergenceWarning`.
    away_steps : bool, default=True
        Use away steps over the active set (atoms :math:`\pm\kappa_C e_{kj}` and 0).
    warn : bool, default=True
        Issue the ConvergenceWarning (``converged`` is recorded either way).
    method : {"fast", "cvxpy"}, default="fast"
        ``"fast"``: Frank–Wolfe as above; ``"cvxpy"``: the same problem stated in cvxpy (the
        reference), solved by the solver of its class (OSQP for the squared loss, a quadratic
        program; Clarabel for the cross-entropy's exponential cones); the point is projected
        onto the ball against rounding and its gap computed as for Frank–Wolfe.
    cvxpy_solver : {None, "CLARABEL", "ECOS", "OSQP", "HIGHS"}, default=None
        With ``method="cvxpy"``: the solver (None: picked by the problem's class,
        ``lifted_idl.blocks.CVXPY_SOLVERS``).

    Returns
    -------
    FWResult
        ``value = (C, D, c)`` of shapes (q, n), (q, p), (q,) (``c`` the fixed intercept from
        ``init``, or zeros, when ``fit_intercept=False``); ``objective`` is
        :math:`\mathcal L(Y, P C^\top + U D^\top + c)` there; ``n_iter`` counts
        Frank–Wolfe steps, each of which adds at most one nonzero to ``[C D]``; ``solver`` is
        ``"frank_wolfe"`` or ``"cvxpy:NAME"``.

    Notes
    -----
    With :math:`g(W) = \min_c f(W, c)` and :math:`W = [C\ D]`, the gap
    :math:`\langle\nabla g(W), W - S\rangle \ge g(W) - \min g` is a certificate of
    suboptimality. For the squared loss the line search is exact in closed form,
    :math:`\gamma = \mathrm{clip}(-\langle R, \Delta\rangle / \|\Delta\|_F^2, 0, \gamma_{\max})`
    with the centred residual R and the centred change of predictions :math:`\Delta`; for other
    losses it is a root search for the (monotone) directional derivative at fixed c, after
    which c is re-minimised.
    """
    loss = get_loss(loss)
    P = _as_2d("P", P)
    m, n = P.shape
    U = _as_2d("U", U, rows=m)
    Y = _as_2d("Y", Y, rows=m)
    if m == 0:
        raise ValueError("P, U and Y have no samples (m = 0)")
    p, q = U.shape[1], Y.shape[1]
    kappa_c = check_real("kappa_c", kappa_c, 0)
    tol, max_iter = _check_iter(tol, max_iter, method)
    cvxpy_solver = check_cvxpy_solver(method, cvxpy_solver)
    _check_cd_targets(loss, Y, fit_intercept)
    F = np.hstack([P, U])
    d = n + p
    c_fixed = np.zeros(q)
    if init is None:
        W = np.zeros((q, d))
    else:
        if not isinstance(init, (tuple, list)) or len(init) not in (2, 3):
            raise ValueError(f"init must be a tuple (C, D) or (C, D, c); got {type(init)}")
        C0 = _as_2d("init C", init[0], rows=q, cols=n)
        D0 = _as_2d("init D", init[1], rows=q, cols=p)
        W = np.hstack([C0, D0])
        if len(init) == 3 and init[2] is not None:
            c_fixed = check_finite_matrix("init c", init[2], (q,), ndim=1)
    if method == "cvxpy":
        return _fw_cd_cvxpy(F, Y, loss, kappa_c, n, fit_intercept, c_fixed, tol, max_iter,
                            cvxpy_solver)
    W = project_inf_norm_ball(W.reshape(1, -1), kappa_c).reshape(q, d)
    atoms = _L1Atoms(W.reshape(1, -1), np.array([kappa_c]))
    W = atoms.point().reshape(q, d)
    squared = isinstance(loss, SquaredLoss)
    intercept = _Intercept(loss, Y)
    Fbar = F.mean(axis=0)
    c = c_fixed.copy()

    def predictions(W, c):
        H = F @ W.T
        if fit_intercept:
            c = intercept(H, c)
        return H + c, c

    Yhat, c = predictions(W, c)
    obj = obj0 = loss.value(Y, Yhat)
    gaps = []
    converged = False
    n_iter = 0
    while True:
        G = np.asarray(loss.grad(Y, Yhat)).T @ F  # (q, d) gradient in W
        Dir, gmax, gap_k, info = atoms.directions(G.reshape(1, -1), W.reshape(1, -1),
                                                  away_steps)
        gap = max(float(gap_k[0]), 0.0)
        gaps.append(gap)
        scale = _stop_scale(obj, obj0)
        if gap <= tol * scale:
            converged = True
            break
        if n_iter >= max_iter:
            break
        Dm = Dir.reshape(q, d)
        Delta = F @ Dm.T
        if squared:
            if fit_intercept:
                Delta = Delta - (Fbar @ Dm.T)
            R = Yhat - Y
            den = float(np.vdot(Delta, Delta))
            gamma = 0.0 if den <= 0 else -float(np.vdot(R, Delta)) / den
            gamma = np.array([min(max(gamma, 0.0), float(gmax[0]))])
        else:
            def dfun(gv, Yhat=Yhat, Delta=Delta):
                return np.array([float(np.vdot(loss.grad(Y, Yhat + gv[0] * Delta), Delta))])

            gamma = _line_search(dfun, gmax)
        atoms.update(info, gamma)
        W = atoms.point().reshape(q, d)
        Yhat, c = predictions(W, c)
        obj = loss.value(Y, Yhat)
        n_iter += 1
    if not converged and warn:
        _warn_unconverged("fw_cd", gaps[-1], tol, _stop_scale(obj, obj0), max_iter)
    value = (W[:, :n].copy(), W[:, n:].copy(), np.asarray(c, dtype=float))
    return FWResult(value, float(obj), n_iter, converged, "frank_wolfe", gaps[-1],
                    np.asarray(gaps))


def _cd_gap(G, W, kappa_c):
    r"""The Frank–Wolfe gap of the ball :math:`\|\mathrm{vec}\,W\|_1 \le \kappa_C` at W."""
    return max(float(np.vdot(G, W)) + kappa_c * float(np.abs(G).max(initial=0.0)), 0.0)


def _fw_cd_cvxpy(F, Y, loss, kappa_c, n, fit_intercept, c_fixed, tol, max_iter, solver):
    """The cvxpy twin of :func:`fw_cd` on the design ``F = [P U]``."""
    import cvxpy as cp

    m, d = F.shape
    q = Y.shape[1]
    W = cp.Variable((q, d), name="W")
    Yhat = F @ W.T
    if fit_intercept:
        c = cp.Variable(q, name="c")
        Yhat = Yhat + np.ones((m, 1)) @ cp.reshape(c, (1, q), order="C")
    else:
        Yhat = Yhat + c_fixed[None, :]
    prob = cp.Problem(cp.Minimize(loss.cvxpy(Y, Yhat)), [cp.sum(cp.abs(W)) <= kappa_c])
    conv, n_iter, name = solve_cvxpy(prob, "fw_cd", tol, max_iter, solver)
    # the solver's rounding: back onto the ball
    Wv = project_inf_norm_ball(np.array(W.value, dtype=np.float64).reshape(1, -1),
                               kappa_c).reshape(q, d)
    cv = np.array(c.value, dtype=np.float64).reshape(q) if fit_intercept else c_fixed
    Yh = F @ Wv.T + cv
    gap = _cd_gap(np.asarray(loss.grad(Y, Yh)).T @ F, Wv, kappa_c)
    value = (Wv[:, :n].copy(), Wv[:, n:].copy(), cv)
    return FWResult(value, float(loss.value(Y, Yh)), n_iter, conv, f"cvxpy:{name}", gap,
                    np.array([gap]))


# ----------------------------------------------------------------------------------------------
# the (A, B) block
# ----------------------------------------------------------------------------------------------
def _check_activation(activation) -> Activation:
    act = get_activation(activation)
    if not act.componentwise or not act.has_fenchel:
        raise ValueError(
            f"fw_ab needs a componentwise activation with a Fenchel divergence; got "
            f"activation={act!r}"
        )
    return act


def _bias_minimiser(act, P, Z0, b0):
    r"""Per state i, :math:`\arg\min_\beta \sum_s F(P_{si}, Z0_{si} + \beta)`.

    The derivative :math:`\psi_i(\beta) = \sum_s \phi(Z0_{si} + \beta) - P_{si}` is
    nondecreasing; the root is bracketed by doubling steps from ``b0``.
    """
    n = Z0.shape[1]
    if n == 0:
        return np.zeros(0)
    # the minimiser exists iff mean_s P_si lies in the range of phi_i, an end point only when
    # phi attains it (ReLU's 0 at z <= 0), not when it is a limit (tanh's +-1, sigmoid's 0, 1)
    with np.errstate(all="ignore"):
        lo_lim = np.asarray(act(np.full((1, n), -1e300)))[0]
        hi_lim = np.asarray(act(np.full((1, n), 1e300)))[0]
        lo_att = np.asarray(act(np.full((1, n), -1.0)))[0] == lo_lim
        hi_att = np.asarray(act(np.full((1, n), 1.0)))[0] == hi_lim
    pbar = P.mean(axis=0)
    bad = ((pbar < lo_lim) | (pbar > hi_lim) | ((pbar == lo_lim) & ~lo_att)
           | ((pbar == hi_lim) & ~hi_att))
    if bad.any():
        i = np.flatnonzero(bad)
        raise ValueError(
            f"the bias minimiser does not exist for state(s) {i.tolist()}: the column means of "
            f"P there, {pbar[i].tolist()}, are not values the activation {act!r} takes "
            f"(its range is between {lo_lim[i[0]]:.6g} and {hi_lim[i[0]]:.6g}); pass "
            "fit_bias=False or fix P"
        )

    def psi(beta):
        return (act(Z0 + beta) - P).sum(axis=0)

    lo, hi = b0 - 1.0, b0 + 1.0
    glo, ghi = psi(lo), psi(hi)
    step = np.ones(n)
    for _ in range(200):
        bad_lo, bad_hi = glo > 0, ghi < 0
        if not (bad_lo.any() or bad_hi.any()):
            break
        step *= 2
        lo = np.where(bad_lo, lo - step, lo)
        hi = np.where(bad_hi, hi + step, hi)
        glo, ghi = psi(lo), psi(hi)
    else:
        bad = np.flatnonzero((glo > 0) | (ghi < 0)).tolist()
        raise ValueError(
            f"the bias minimiser does not exist for state(s) {bad}: the column sums of P lie "
            f"outside the range of the activation {act!r} (P must hold values phi can take)"
        )
    return _increasing_root(psi, lo, hi, glo, ghi)


def fw_ab(X, U, P, lam, kappa_a, kappa_b: float, activation, *, fit_bias: bool = True,
          init=None, tol: float = 1e-6, max_iter: int = 1000, away_steps: bool = True,
          warn: bool = True, method: str = "fast",
          cvxpy_solver: str | None = None) -> FWResult:
    r"""Frank–Wolfe for the (A, B) block of the relaxed problem (theory §8, [IDL §5-6]).

    Solves

    .. math:: \min_{A, B, b}\ \frac1m \sum_{i=1}^n \lambda_i \sum_{s=1}^m
              F_\phi\big(P_{si}, (X A^\top + U B^\top + \mathbf 1 b^\top)_{si}\big)
              \quad\text{s.t.}\quad \|A\|_\infty \le \kappa_A,\ \ \|B\|_1 \le \kappa_B,

    with :math:`F_\phi(x, z) = f^*(x) + f(z) - xz` the Fenchel divergence (theory §8),
    :math:`\|A\|_\infty = \max_i \sum_j |A_{ij}|` (every row of A in an l1 ball, the
    convex well-posedness condition of theory §2) and :math:`\|B\|_1 = \sum_{ij} |B_{ij}|`
    the *entrywise* l1 norm (theory §8 writes :math:`\|B\|_1 \le \kappa_B`; the entrywise norm
    makes its LMO a single signed entry of B). The LMO picks one signed vertex per row of A
    and one entry of B, so after t sweeps every row of A and all of B have at most t more
    nonzeros than ``init``.

    Parameters
    ----------
    X : array of shape (m, n)
        States (the lifted X of the BCD).
    U : array of shape (m, p)
        Inputs.
    P : array of shape (m, n)
        Targets of the divergence (the lifted P); must lie in the domain of :math:`f^*`
        (:math:`P \ge 0` for ReLU, :math:`|P| \le 1` for tanh, ...).
    lam : float or array of shape (n,)
        Per-state weights :math:`\lambda_i > 0`.
    kappa_a : float or array of shape (n,)
        Radius of the l1 ball of every row of A (one per row, or one for all); >= 0.
    kappa_b : float
        Radius of the entrywise l1 ball of B; >= 0.
    activation : str or Activation
        Componentwise, with a Fenchel divergence (``relu``, ``leaky_relu``, ``tanh``,
        ``sigmoid``, ``identity``, or a componentwise Blockwise map).
    fit_bias : bool, default=True
        Minimise over the unconstrained bias b at every iterate (a monotone root search per
        state); otherwise b stays at ``init``'s (zeros by default).
    init : tuple (A, B) or (A, B, b), optional
        Warm start; rows of A and B outside their balls are first projected onto them.
    tol : float, default=1e-6
        Stop when the total gap (sum over the rows of A and over B) is at most
        ``tol * max(|objective|, 1e-12 * max(|f0|, 1))``.
    max_iter : int, default=1000
        Sweeps; hitting it issues a :class:`~lifted_idl.exceptions.ConvergenceWarning`.
    away_steps : bool, default=True
    warn : bool, default=True
    method : {"fast", "cvxpy"}, default="fast"
        ``"fast"``: Frank–Wolfe as above; ``"cvxpy"``: the same problem stated in cvxpy (the
        reference), solved by the solver of its class (OSQP for the ReLU and leaky-ReLU
        divergences, quadratic programs; Clarabel for the exponential cones of tanh and
        sigmoid); A and B are projected onto their balls against rounding and the gap is
        computed as for Frank–Wolfe.
    cvxpy_solver : {None, "CLARABEL", "ECOS", "OSQP", "HIGHS"}, default=None
        With ``method="cvxpy"``: the solver (None: picked by the problem's class,
        ``lifted_idl.blocks.CVXPY_SOLVERS``).

    Returns
    -------
    FWResult
        ``value = (A, B, b)`` of shapes (n, n), (n, p), (n,) (``b`` the fixed bias from
        ``init``, or zeros, when ``fit_bias=False``); ``objective`` is
        :math:`\frac1m\sum_i \lambda_i \sum_s F_\phi(P_{si}, Z_{si})` there; ``n_iter``
        counts sweeps, each of which adds at most one nonzero to every row of A and one to B;
        ``solver`` is ``"frank_wolfe"`` or ``"cvxpy:NAME"``.

    Notes
    -----
    The objective is separable across the rows of (A, b) for fixed B, so a sweep takes a
    Frank–Wolfe (or away) step in every row of A with its own exact line search
    (vectorized), then one step in B with an exact line search, then re-minimises b. The
    gradient is :math:`\nabla_Z = \frac1m(\phi(Z) - P)\Lambda`, :math:`\nabla_A = \nabla_Z^\top
    X`, :math:`\nabla_B = \nabla_Z^\top U` (``activation.fenchel_grad_z``). The gap at the start
    of a sweep, :math:`\sum_i \langle \nabla_{A_i}, A_i - S_i\rangle + \langle \nabla_B, B -
    S_B\rangle`, bounds the suboptimality.
    """
    act = _check_activation(activation)
    X = _as_2d("X", X)
    m, n = X.shape
    if m == 0:
        raise ValueError("X, U and P have no samples (m = 0)")
    U = _as_2d("U", U, rows=m)
    P = _as_2d("P", P, rows=m, cols=n)
    p = U.shape[1]
    lam_arr = np.asarray(lam, dtype=float)
    if lam_arr.ndim == 0:
        lam_arr = np.full(n, float(lam_arr))
    if lam_arr.shape != (n,) or not np.all(np.isfinite(lam_arr)) or np.any(lam_arr <= 0):
        raise ValueError(
            f"lam must be a positive scalar or a positive ({n},) array; got lam={lam!r}"
        )
    ra = _radius(kappa_a, n, "kappa_a")
    kappa_b = check_real("kappa_b", kappa_b, 0)
    tol, max_iter = _check_iter(tol, max_iter, method)
    cvxpy_solver = check_cvxpy_solver(method, cvxpy_solver)
    with np.errstate(all="ignore"):
        fconj = act.f_conj(P)
    if not np.all(np.isfinite(fconj)):
        bad = np.argwhere(~np.isfinite(fconj))[0]
        raise ValueError(
            f"P lies outside the domain of the conjugate f* of {act!r}: P[{bad[0]}, {bad[1]}] = "
            f"{P[bad[0], bad[1]]!r} (e.g. P >= 0 for ReLU)"
        )
    b = np.zeros(n)
    if init is None:
        A0, B0 = np.zeros((n, n)), np.zeros((n, p))
    else:
        if not isinstance(init, (tuple, list)) or len(init) not in (2, 3):
            raise ValueError(f"init must be a tuple (A, B) or (A, B, b); got {type(init)}")
        A0 = _as_2d("init A", init[0], rows=n, cols=n)
        B0 = _as_2d("init B", init[1], rows=n, cols=p)
        if len(init) == 3 and init[2] is not None:
            b = check_finite_matrix("init b", init[2], (n,), ndim=1).copy()
    if method == "cvxpy":
        return _fw_ab_cvxpy(X, U, P, lam_arr, ra, kappa_b, act, fit_bias, b, tol, max_iter,
                            cvxpy_solver)
    atoms_a = _L1Atoms(project_inf_norm_ball(A0, ra), ra)
    atoms_b = _L1Atoms(project_inf_norm_ball(B0.reshape(1, -1), kappa_b), np.array([kappa_b]))
    A = atoms_a.point()
    B = atoms_b.point().reshape(n, p)
    w = lam_arr / m  # per-state weight of the per-sample divergence

    def objective(Z):
        return float((act.fenchel(P, Z) * w).sum())

    def grad_z(Z):
        return act.fenchel_grad_z(P, Z) * w

    def refit_bias(A, B, b):
        Z0 = X @ A.T + U @ B.T
        if fit_bias:
            b = _bias_minimiser(act, P, Z0, b)
        return Z0 + b, b

    Z, b = refit_bias(A, B, b)
    obj = obj0 = objective(Z)
    gaps = []
    converged = False
    n_iter = 0
    while True:
        GZ = grad_z(Z)
        gA = GZ.T @ X
        gB = GZ.T @ U
        gap = float(atoms_a.fw_gap(gA, A).sum() + atoms_b.fw_gap(gB.reshape(1, -1),
                                                                   B.reshape(1, -1)).sum())
        gap = max(gap, 0.0)
        gaps.append(gap)
        scale = _stop_scale(obj, obj0)
        if gap <= tol * scale:
            converged = True
            break
        if n_iter >= max_iter:
            break
        # --- A: one step per row, each with its own exact line search
        DA, gmax, _, info = atoms_a.directions(gA, A, away_steps)
        DZ = X @ DA.T

        def dA(gv, Z=Z, DZ=DZ):
            return (act.fenchel_grad_z(P, Z + gv * DZ) * DZ).sum(axis=0) * w

        gamma = _line_search(dA, gmax)
        atoms_a.update(info, gamma)
        A = atoms_a.point()
        Z = X @ A.T + U @ B.T + b
        # --- B: one step on the entrywise l1 ball
        gB = grad_z(Z).T @ U
        DB, gmax, _, info = atoms_b.directions(gB.reshape(1, -1), B.reshape(1, -1), away_steps)
        DZ = U @ DB.reshape(n, p).T

        def dB(gv, Z=Z, DZ=DZ):
            return np.array([float((act.fenchel_grad_z(P, Z + gv[0] * DZ) * DZ * w).sum())])

        gamma = _line_search(dB, gmax)
        atoms_b.update(info, gamma)
        B = atoms_b.point().reshape(n, p)
        # --- b: exact minimisation
        Z, b = refit_bias(A, B, b)
        obj = objective(Z)
        n_iter += 1
    if not converged and warn:
        _warn_unconverged("fw_ab", gaps[-1], tol, _stop_scale(obj, obj0), max_iter)
    return FWResult((A, B, b), obj, n_iter, converged, "frank_wolfe", gaps[-1],
                    np.asarray(gaps))


def _ab_gap(gA, A, ra, gB, B, kappa_b):
    """The Frank–Wolfe gap of the balls of the rows of A and of B at (A, B)."""
    gap = ((gA * A).sum(axis=1) + ra * np.abs(gA).max(axis=1, initial=0.0)).sum()
    gap += float(np.vdot(gB, B)) + kappa_b * float(np.abs(gB).max(initial=0.0))
    return max(float(gap), 0.0)


def _fw_ab_cvxpy(X, U, P, lam, ra, kappa_b, act, fit_bias, b_fixed, tol, max_iter, solver):
    """The cvxpy twin of :func:`fw_ab`."""
    import cvxpy as cp

    m, n = X.shape
    p = U.shape[1]
    A, B = cp.Variable((n, n), name="A"), cp.Variable((n, p), name="B")
    Z = X @ A.T + U @ B.T
    if fit_bias:
        b = cp.Variable(n, name="b")
        Z = Z + np.ones((m, 1)) @ cp.reshape(b, (1, n), order="C")
    else:
        Z = Z + b_fixed[None, :]
    w = np.tile(lam / m, (m, 1))
    # f*(P) is constant here; the objective is evaluated in NumPy below
    obj = cp.sum(cp.multiply(w, act.f_cvxpy(Z))) - cp.sum(cp.multiply(w * P, Z))
    prob = cp.Problem(cp.Minimize(obj), [cp.sum(cp.abs(A), axis=1) <= ra,
                                         cp.sum(cp.abs(B)) <= kappa_b])
    conv, n_iter, name = solve_cvxpy(prob, "fw_ab", tol, max_iter, solver)
    # the solver's rounding: back onto the balls
    Av = project_inf_norm_ball(np.array(A.value, dtype=np.float64), ra)
    Bv = project_inf_norm_ball(np.array(B.value, dtype=np.float64).reshape(1, -1),
                               kappa_b).reshape(n, p)
    bv = np.array(b.value, dtype=np.float64).reshape(n) if fit_bias else b_fixed
    Zv = X @ Av.T + U @ Bv.T + bv
    GZ = act.fenchel_grad_z(P, Zv) * (lam / m)
    gap = _ab_gap(GZ.T @ X, Av, ra, GZ.T @ U, Bv, kappa_b)
    objective = float((act.fenchel(P, Zv) * (lam / m)).sum())
    return FWResult((Av, Bv, bv), objective, n_iter, conv, f"cvxpy:{name}", gap,
                    np.array([gap]))
