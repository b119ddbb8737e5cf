r"""Vectorized fixed-point solvers for the equilibrium :math:`x = \phi(Ax + Bu + b)`.

Every solver here is a pure function over the array namespace of its input: the same code runs
on NumPy and CuPy arrays. Samples are rows: ``Z0 = U B^T + b`` has shape ``(m, n)`` and so has
the returned state matrix ``X``.

Convergence is judged **per sample**, against a relative tolerance,

.. math:: \|x^{t+1}_i - x^t_i\|_\infty \le \mathrm{tol}\cdot\|x^{t+1}_i\|_\infty,

and a sample is frozen as soon as it converges, so its answer does not depend on which other
samples share the batch (scikit-learn's ``check_methods_subset_invariance``).

Methods (theory §1 and §5):

``"picard"``
    :math:`x \leftarrow \phi(Ax + z_0)`; converges linearly when :math:`\lambda_{PF}(|A|) < 1`
    [IDL Thm 2.2].
``"averaged"``
    Krasnosel'skii–Mann :math:`x \leftarrow (1-\alpha)x + \alpha\phi(Ax + z_0)` with the NE-MON
    step :math:`\alpha = 1/(1 + \max_i \max(-a_{ii}, 0))`; converges when
    :math:`\mu_\infty(A) < 1` [NEMON].
``"triangular"``
    Exact back-substitution by topological levels when A is strictly (block-)triangular up to a
    permutation (feed-forward networks, [IDL §3]).
``"lowrank"``
    :math:`A = L R^\top`: :math:`O(mnk)` per iteration instead of :math:`O(mn^2)` (theory §5).
``"anderson"``
    Anderson-accelerated Picard (type II, per-sample least squares, safeguarded).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ._array import get_namespace
from .exceptions import ConvergenceWarning

__all__ = [
    "FixedPointResult",
    "default_tol",
    "picard",
    "averaged",
    "back_substitution",
    "lowrank",
    "anderson",
    "solve",
    "METHODS",
]

METHODS = ("picard", "averaged", "triangular", "lowrank", "anderson")


@dataclass
class FixedPointResult:
    """Result of a fixed-point solve.

    Attributes
    ----------
    X : array of shape (m, n)
        The equilibrium states, one row per sample.
    n_iter : int
        Iterations run (the largest over samples; matrix products with A).
    residual : float
        Largest relative residual :math:`\\|x^{t+1}_i - x^t_i\\|_\\infty / \\|x^{t+1}_i\\|_\\infty`
        over samples at their last iteration (0 for exact back-substitution).
    converged : bool
        Whether every sample met the tolerance.
    n_unconverged : int
        Number of samples that did not.
    method : str
    """

    X: object
    n_iter: int
    residual: float
    converged: bool
    n_unconverged: int = 0
    method: str = "picard"


def default_tol(dtype) -> float:
    """Default relative tolerance: 1e-10 in float64, 1e-5 in float32."""
    return 1e-5 if np.dtype(dtype) == np.float32 else 1e-10


def _row_inf(M, xp):
    """Row-wise infinity norm without materializing ``abs(M)``."""
    if M.shape[1] == 0:
        return xp.zeros(M.shape[0], dtype=M.dtype)
    return xp.maximum(M.max(axis=1), -M.min(axis=1))


def _warn(result: FixedPointResult, tol: float, max_iter: int):
    if not result.converged:
        warnings.warn(
            f"Fixed-point iteration ({result.method}) did not converge for "
            f"{result.n_unconverged} sample(s) in max_iter={max_iter} iterations: relative "
            f"residual {result.residual:.3e} > tol={tol:.1e}.",
            ConvergenceWarning,
            stacklevel=3,
        )


def _iterate(step, Z0, X0, tol, max_iter, method):
    """Shared per-sample loop: ``step(Xa, Z0a, out)`` writes the next iterate into ``out``.

    A row is written to the output at the iteration where it converges and is no longer
    reported again; the active block is compacted once a quarter of its rows has converged.
    """
    xp = get_namespace(Z0)
    m, n = Z0.shape
    X = xp.empty_like(Z0)
    if m == 0 or n == 0:
        return FixedPointResult(X, 0, 0.0, True, 0, method)
    Xa = xp.zeros_like(Z0) if X0 is None else xp.array(X0, dtype=Z0.dtype, copy=True)
    Z0a = Z0
    buf = xp.empty_like(Z0)
    idx = None  # original row of each active row (None: identity)
    alive = xp.ones(m, dtype=bool)  # active rows not yet converged
    n_alive = m
    rel = xp.zeros(m, dtype=Z0.dtype)  # final relative residual per original row
    n_iter = 0
    for it in range(1, max_iter + 1):
        n_iter = it
        new = step(Xa, Z0a, buf)
        diff = xp.subtract(new, Xa, out=Xa)
        res = _row_inf(diff, xp)
        scale = _row_inf(new, xp)
        Xa, buf = new, diff  # the old iterate's storage becomes the next output buffer
        conv = (res <= tol * scale) & alive
        n_conv = int(conv.sum())
        if n_conv:
            rows = xp.flatnonzero(conv)
            orig = rows if idx is None else idx[rows]
            X[orig] = Xa[rows]
            rel[orig] = res[rows] / xp.maximum(scale[rows], xp.finfo(Z0.dtype).tiny)
            alive &= ~conv
            n_alive -= n_conv
            if n_alive == 0:
                break
            if n_alive <= 0.75 * Xa.shape[0]:
                keep = xp.flatnonzero(alive)
                idx = keep if idx is None else idx[keep]
                Xa, Z0a = Xa[keep], Z0a[keep]
                buf = xp.empty_like(Xa)
                alive = xp.ones(keep.shape[0], dtype=bool)
                res, scale = res[keep], scale[keep]
    if n_alive:
        rows = xp.flatnonzero(alive)
        orig = rows if idx is None else idx[rows]
        X[orig] = Xa[rows]
        with np.errstate(divide="ignore", invalid="ignore"):
            rel[orig] = xp.where(scale[rows] > 0, res[rows] / scale[rows], xp.inf)
    residual = float(rel.max())
    return FixedPointResult(X, n_iter, residual, n_alive == 0, int(n_alive), method)


def picard(A, Z0, activation, tol=None, max_iter=500, X0=None, warn=True):
    r"""Picard iteration :math:`x \leftarrow \phi(Ax + z_0)`, all samples at once.

    Parameters
    ----------
    A : array of shape (n, n)
    Z0 : array of shape (m, n)
        ``U @ B.T + b``, one row per sample.
    activation : Activation
    tol : float, optional
        Relative per-sample tolerance (default: :func:`default_tol`).
    max_iter : int
    X0 : array of shape (m, n), optional
        Warm start.

    Returns
    -------
    FixedPointResult
    """
    xp = get_namespace(Z0)
    tol = default_tol(Z0.dtype) if tol is None else float(tol)
    AT = A.T

    def step(Xa, Z0a, out):
        xp.matmul(Xa, AT, out=out)
        out += Z0a
        return activation(out, out=out)

    res = _iterate(step, Z0, X0, tol, max_iter, "picard")
    if warn:
        _warn(res, tol, max_iter)
    return res


def averaged(A, Z0, activation, alpha, tol=None, max_iter=2000, X0=None, warn=True):
    r"""Krasnosel'skii–Mann iteration :math:`x \leftarrow (1-\alpha)x + \alpha\phi(Ax + z_0)`.

    With :math:`\alpha = 1/(1 + \max_i\max(-a_{ii}, 0))` it contracts in the inf-norm whenever
    :math:`\mu_\infty(A) < 1` [NEMON] (see :func:`lifted_idl.wellposedness.averaged_step`).
    """
    xp = get_namespace(Z0)
    tol = default_tol(Z0.dtype) if tol is None else float(tol)
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must lie in (0, 1]; got alpha={alpha!r}")
    AT = A.T
    a = Z0.dtype.type(alpha)
    b = Z0.dtype.type(1 - alpha)

    def step(Xa, Z0a, out):
        xp.matmul(Xa, AT, out=out)
        out += Z0a
        activation(out, out=out)
        out *= a
        out += b * Xa
        return out

    res = _iterate(step, Z0, X0, tol, max_iter, "averaged")
    if warn:
        _warn(res, tol, max_iter)
    return res


def back_substitution(A, Z0, activation, levels):
    """Exact solve by topological levels (strictly triangular A up to permutation).

    Parameters
    ----------
    levels : list of index arrays
        From :func:`lifted_idl.wellposedness.dag_levels`; each level depends only on earlier
        ones.

    Returns
    -------
    FixedPointResult with ``n_iter = len(levels)`` and the exact residual of the answer.
    """
    xp = get_namespace(Z0)
    m, n = Z0.shape
    X = xp.zeros_like(Z0)
    comp = activation.componentwise
    for lev in levels:
        lev = xp.asarray(lev)
        Zl = X @ A[lev].T
        Zl += Z0[:, lev]
        if comp:
            X[:, lev] = activation(Zl)
        else:  # a blockwise map needs the whole pre-activation; levels keep blocks whole
            full = X @ A.T + Z0
            X[:, lev] = activation(full)[:, lev]
    if m and n:
        Xc = activation(X @ A.T + Z0)
        residual = float((_row_inf(Xc - X, xp) / xp.maximum(_row_inf(Xc, xp), 1e-300)).max())
    else:
        residual = 0.0
    return FixedPointResult(X, len(levels), residual, True, 0, "triangular")


def lowrank(L, R, Z0, activation, tol=None, max_iter=500, X0=None, warn=True):
    r"""Picard iteration for :math:`A = L R^\top` (rank k), in :math:`O(mnk)` per step.

    Iterates :math:`x \leftarrow \phi(L (R^\top x) + z_0)`: the same iterates as Picard on the
    full A, computed through the k-dimensional variable :math:`z = R^\top x` (theory §5);
    well-posed when :math:`\lambda_{PF}(|R|^\top|L|) < 1`.
    """
    xp = get_namespace(Z0)
    tol = default_tol(Z0.dtype) if tol is None else float(tol)
    LT = L.T

    def step(Xa, Z0a, out):
        zk = Xa @ R
        xp.matmul(zk, LT, out=out)
        out += Z0a
        return activation(out, out=out)

    res = _iterate(step, Z0, X0, tol, max_iter, "lowrank")
    if warn:
        _warn(res, tol, max_iter)
    return res


def anderson(A, Z0, activation, tol=None, max_iter=500, X0=None, memory=5, reg=1e-10,
             warn=True):
    r"""Anderson-accelerated Picard iteration (type II), vectorized over samples.

    For each sample, with :math:`g(x) = \phi(Ax + z_0)` and residuals :math:`f_k = g(x_k) - x_k`,
    the next iterate is :math:`x_{k+1} = g(x_k) - \Delta G\,\gamma` where
    :math:`\gamma = \arg\min \|f_k - \Delta F\,\gamma\|_2` (a batched ``memory``-sized least
    squares with Tikhonov ``reg``). A sample whose residual grows falls back to the plain Picard
    step. All samples iterate together; converged samples are frozen (their rows are kept but
    no longer updated).
    """
    xp = get_namespace(Z0)
    tol = default_tol(Z0.dtype) if tol is None else float(tol)
    m, n = Z0.shape
    dt = Z0.dtype
    X = xp.zeros_like(Z0) if X0 is None else xp.array(X0, dtype=dt, copy=True)
    if m == 0 or n == 0:
        return FixedPointResult(X, 0, 0.0, True, 0, "anderson")
    AT = A.T
    dF = xp.zeros((memory, m, n), dtype=dt)
    dG = xp.zeros((memory, m, n), dtype=dt)
    done = xp.zeros(m, dtype=bool)
    final_res = xp.zeros(m, dtype=dt)
    f_prev = g_prev = None
    prev_norm = xp.full(m, xp.inf, dtype=dt)
    k = 0
    n_iter = 0
    for it in range(1, max_iter + 1):
        n_iter = it
        G = activation(X @ AT + Z0)
        F = G - X
        rn = _row_inf(F, xp)
        scale = _row_inf(G, xp)
        conv = (rn <= tol * scale) & ~done
        if bool(conv.any()):
            X[conv] = G[conv]
            with np.errstate(divide="ignore", invalid="ignore"):
                final_res[conv] = xp.where(scale[conv] > 0, rn[conv] / scale[conv], 0)
            done |= conv
        if bool(done.all()):
            break
        if f_prev is not None:
            slot = k % memory
            dF[slot] = F - f_prev
            dG[slot] = G - g_prev
            k += 1
        f_prev, g_prev = F, G
        mk = min(k, memory)
        if mk == 0:
            Xn = G
        else:
            Fh = dF[:mk]  # (mk, m, n)
            gram = xp.einsum("imn,jmn->mij", Fh, Fh)
            rhs = xp.einsum("imn,mn->mi", Fh, F)
            tr = xp.einsum("mii->m", gram)[:, None, None]
            gram = gram + (reg * tr + 1e-30) * xp.eye(mk, dtype=dt)[None]
            gamma = xp.linalg.solve(gram, rhs[..., None])[..., 0]  # (m, mk)
            Xn = G - xp.einsum("mi,imn->mn", gamma, dG[:mk])
            # safeguard: samples whose residual grew take the plain step
            bad = rn > prev_norm
            if bool(bad.any()):
                Xn[bad] = G[bad]
        prev_norm = rn
        Xn[done] = X[done]
        X = Xn
    pending = ~done
    n_unconv = int(pending.sum())
    if n_unconv:
        G = activation(X @ AT + Z0)
        rn = _row_inf(G - X, xp)
        sc = _row_inf(G, xp)
        with np.errstate(divide="ignore", invalid="ignore"):
            final_res[pending] = xp.where(sc[pending] > 0, rn[pending] / sc[pending], xp.inf)
    res = FixedPointResult(X, n_iter, float(final_res.max()), n_unconv == 0, n_unconv, "anderson")
    if warn:
        _warn(res, tol, max_iter)
    return res


def solve(A, Z0, activation, method="picard", *, tol=None, max_iter=None, X0=None, alpha=1.0,
          levels=None, factors=None, warn=True):
    """Dispatch to one of the fixed-point methods (see the module docstring)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got method={method!r}")
    if method == "triangular":
        if levels is None:
            raise ValueError("method='triangular' needs the DAG levels of A")
        return back_substitution(A, Z0, activation, levels)
    kw = dict(tol=tol, X0=X0, warn=warn)
    if max_iter is not None:
        kw["max_iter"] = max_iter
    if method == "picard":
        return picard(A, Z0, activation, **kw)
    if method == "averaged":
        return averaged(A, Z0, activation, alpha, **kw)
    if method == "lowrank":
        if factors is None:
            raise ValueError("method='lowrank' needs the factors (L, R) of A")
        return lowrank(factors[0], factors[1], Z0, activation, **kw)
    return anderson(A, Z0, activation, **kw)
