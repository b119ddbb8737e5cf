r"""Vectorized fixed-point solvers for the equilibrium :math:`x = \phi(Ax + Bu + b)`.

Every solver here is a pure function over the array namespace of its input: the same code runs
on NumPy and CuPy arrays. Samples are rows: ``Z0 = U B^T + b`` has shape ``(m, n)`` and so has
the returned state matrix ``X`` (the papers' :math:`X \in \mathbb R^{n \times m}`, transposed).

Convergence is judged **per sample**, against a relative tolerance on the fixed-point residual
of the Picard map :math:`g(x) = \phi(Ax + z_0)`,

.. math:: \|g(x^t_i) - x^t_i\|_\infty \le \mathrm{tol}\cdot\|x^{t+1}_i\|_\infty ,

(for Picard :math:`g(x^t) - x^t = x^{t+1} - x^t`; the averaged step divides its step by
:math:`\alpha`), and a sample is frozen as soon as it converges, so its answer does not depend
on which other samples share the batch (scikit-learn's ``check_methods_subset_invariance``).
Frozen rows are dropped from the matrix products once a quarter of the active block has
converged, so late iterations only pay for the slow samples. With a contraction factor
:math:`c` the returned state is within :math:`\frac{c}{1-c}\,\mathrm{tol}\,\|x\|_\infty` of the
exact fixed point. A sample whose iterate becomes NaN or inf (an ill-posed A solved with
``force=True``) is stopped and reported as unconverged with an infinite residual.

Methods (theory §2 and §6):

``"picard"``
    :math:`x \leftarrow \phi(Ax + z_0)`; converges linearly when :math:`\lambda_{PF}(|A|) < 1`
    [IDL Thm 2.2]. Per step: one GEMM into a preallocated buffer, then bias, activation,
    difference and row norms in about six passes over the active (m, n) block, which NumPy
    holds column-major so that the per-sample norms reduce over n contiguous columns (the
    returned states are row-major; CuPy keeps row-major, where its GEMM writes in place).
``"averaged"``
    Krasnosel'skii–Mann :math:`x \leftarrow (1-\alpha)x + \alpha\phi(Ax + z_0)` with the NE-MON
    step :math:`\alpha = 1/(1 + \max_i \max(-a_{ii}, 0))`; converges when
    :math:`\mu_\infty(A) < 1` [NEMON] (see :func:`lifted_idl.wellposedness.averaged_step`).
``"triangular"``
    Exact back-substitution by topological levels when A is strictly (block-)triangular up to a
    permutation (feed-forward networks, [IDL §3, Thm 2.7]); blockwise maps are evaluated one
    whole block at a time.
``"lowrank"``
    :math:`A = L R^\top`: :math:`O(mnk)` per iteration instead of :math:`O(mn^2)` (theory §6,
    [IDL §5]).
``"anderson"``
    Anderson-accelerated Picard (type II, per-sample least squares, safeguarded). **Opt-in**:
    it pays only when Picard is slow, i.e. when the iteration's actual contraction factor is
    close to 1 — e.g. a (nearly) nonnegative A with :math:`\lambda_{PF}(A) \ge 0.9` and
    states mostly in the linear regime of the activation, where Picard needs hundreds of
    iterations; on easy problems (a few tens of Picard iterations — which includes random-sign
    A even with :math:`\|A\|_\infty = 0.99`, whose actual contraction is far below the bound)
    each of its iterations costs a few Picard iterations and it is slower
    (``benchmarks/bench_kernel.py`` measures both cases). Rule of thumb: try it when Picard
    reports more than ~100 iterations. No convergence guarantee for nonsmooth
    maps: a sample whose residual grows falls back to the plain Picard step.

The adjoint equilibrium of implicit differentiation, :math:`V = \Psi \odot (VA) + R`
[IDL (6.5)-(6.6)], has its solvers here too: :func:`solve_adjoint` (the averaged fixed-point
iteration, whole-batch test, used by :mod:`lifted_idl.training.gradient`) and
:func:`solve_adjoint_direct` (dense per-row linear solves, the fallback of
:func:`lifted_idl.robustness.attacks.input_gradient`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._array import check_finite, get_namespace
from ._validation import check_int, check_max_iter, check_real, check_tol
from .activations import get_activation
from .exceptions import IllPosedModelError, _warn_convergence
from .wellposedness import is_well_posed

__all__ = [
    "FixedPointResult",
    "default_tol",
    "picard",
    "averaged",
    "back_substitution",
    "lowrank",
    "anderson",
    "solve",
    "solve_adjoint",
    "solve_adjoint_direct",
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
        Largest relative residual :math:`\\|g(x_i) - x_i\\|_\\infty / \\|x_i\\|_\\infty` over
        samples at their last iteration (``inf`` for a sample that diverged; for exact
        back-substitution, the residual of the returned states, a rounding-level number).
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


# ----------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------
def _check_tol(tol, dtype) -> float:
    """``tol``, or the dtype's :func:`default_tol` when it is None."""
    return default_tol(dtype) if tol is None else check_tol(tol, allow_zero=True)


def _as_float_2d(name, M, xp, dtype=None):
    if xp is np:
        M = np.asarray(M)
    if getattr(M, "ndim", None) != 2:
        raise ValueError(f"{name} must be a 2-D array; got shape {getattr(M, 'shape', None)}")
    if M.dtype.kind not in "fiub":
        raise ValueError(f"{name} must be a real numeric array; got dtype {M.dtype}")
    if dtype is None:
        dtype = M.dtype if M.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    return M.astype(dtype, copy=False)


def _prepare(A, Z0, X0, A_name="A"):
    """Validate shapes and finiteness; cast A and X0 to the dtype of Z0."""
    xp = get_namespace(Z0)
    Z0 = _as_float_2d("Z0", Z0, xp)
    m, n = Z0.shape
    if A is not None:
        A = _as_float_2d(A_name, xp.asarray(A) if xp is not np else A, xp, Z0.dtype)
        if A.shape != (n, n):
            raise ValueError(
                f"{A_name} has shape {A.shape}; expected ({n}, {n}) to match Z0 of shape {(m, n)}"
            )
        check_finite(A_name, A, xp)
    check_finite("Z0", Z0, xp)
    if X0 is not None:
        X0 = _as_float_2d("X0", X0, xp, Z0.dtype)
        if X0.shape != (m, n):
            raise ValueError(f"X0 has shape {X0.shape}; expected {(m, n)} (the shape of Z0)")
        check_finite("X0", X0, xp)
    return xp, A, Z0, X0


# ----------------------------------------------------------------------------------------------
# the shared per-sample loop
# ----------------------------------------------------------------------------------------------
def _nonneg(activation) -> bool:
    return bool(getattr(activation, "nonnegative", False))


def _row_inf(M, xp):
    """Row-wise infinity norm without materializing ``abs(M)`` (two reductions)."""
    if M.shape[1] == 0:
        return xp.zeros(M.shape[0], dtype=M.dtype)
    return xp.maximum(M.max(axis=1), -M.min(axis=1))


def _row_abs_max(M, xp):
    """Row-wise infinity norm that overwrites ``M`` with ``abs(M)`` (one pass and one
    reduction; for a work array whose contents are not needed afterwards). The same numbers as
    :func:`_row_inf` (a maximum is exact; NaN and inf rows stay NaN and inf)."""
    if M.shape[1] == 0:
        return xp.zeros(M.shape[0], dtype=M.dtype)
    xp.abs(M, out=M)
    return np.maximum.reduce(M, axis=1) if xp is np else M.max(axis=1)


def _row_scale(M, xp, nonneg):
    """Row-wise infinity norm of an iterate; one reduction when the range is nonnegative."""
    if M.shape[1] == 0:
        return xp.zeros(M.shape[0], dtype=M.dtype)
    if not nonneg:
        return _row_inf(M, xp)
    return np.maximum.reduce(M, axis=1) if xp is np else M.max(axis=1)


def _relative(res, scale, xp):
    """``res / scale`` with 0/0 = 0 and x/0 = inf (x > 0); NaN stays NaN -> inf."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = xp.where(scale > 0, res / xp.where(scale > 0, scale, 1), xp.inf)
        r = xp.where(res == 0, 0, r)
    return xp.where(xp.isnan(r), xp.inf, r)


def _warn(result: FixedPointResult, tol: float, max_iter: int):
    if not result.converged:
        why = (
            "non-finite iterates: the iteration diverged"
            if not np.isfinite(result.residual)
            else f"max_iter={max_iter} iterations reached"
        )
        _warn_convergence(
            f"Fixed-point iteration ({result.method}) did not converge for "
            f"{result.n_unconverged} sample(s) ({why}): relative residual "
            f"{result.residual:.3e} > tol={tol:.1e}.", stacklevel=3)


def _iterate_order(xp) -> str:
    """The layout of the iterates: column-major with NumPy, so that the per-sample norms reduce
    over n contiguous columns of length m instead of m short rows (several times faster for
    small n); row-major with CuPy, whose matmul writes in place only into a row-major ``out``
    (into any other it computes a temporary and copies it, at every step)."""
    return "F" if xp is np else "C"


def _take_rows(M, rows):
    """``M[rows]`` in the layout of M (column-major stays column-major)."""
    if M.flags.f_contiguous and not M.flags.c_contiguous:
        return M.T[:, rows].T
    return M[rows]


def _iterate(step, Z0, X0, tol, max_iter, method, nonneg=False, step_scale=1.0):
    """Shared per-sample loop: ``step(Xa, Z0a, out, zero)`` writes the next iterate into
    ``out`` (``zero``: Xa is known to be 0, so the product with A is skipped: a cold start's
    first step costs no GEMM).

    A row is written to the output at the iteration where it converges (or turns non-finite)
    and is no longer reported again; the active block is compacted once a quarter of its rows
    has stopped. ``step_scale`` is the ratio of the step to the Picard residual (``alpha`` for
    the averaged iteration).
    """
    xp = get_namespace(Z0)
    m, n = Z0.shape
    X = xp.empty(Z0.shape, dtype=Z0.dtype)
    if m == 0 or n == 0:
        return FixedPointResult(X, 0, 0.0, True, 0, method)
    order = _iterate_order(xp)
    Xa = (xp.zeros(Z0.shape, dtype=Z0.dtype, order=order) if X0 is None
          else xp.array(X0, dtype=Z0.dtype, copy=True, order=order))
    Z0a = xp.asfortranarray(Z0) if order == "F" else xp.ascontiguousarray(Z0)
    buf = xp.empty_like(Xa)
    idx = None  # original row of each active row (None: identity)
    alive = None  # mask of active rows not yet stopped (None: all of them)
    n_alive = m
    # final residual and iterate norm per original row (their ratio is taken once, at the end)
    res_end = xp.zeros(m, dtype=Z0.dtype)
    scale_end = xp.zeros(m, dtype=Z0.dtype)
    ok = xp.zeros(m, dtype=bool)  # converged per original row
    thr = Z0.dtype.type(tol * step_scale)
    n_iter = 0
    res = scale = None
    with np.errstate(over="ignore", invalid="ignore"):
        for it in range(1, max_iter + 1):
            n_iter = it
            new = step(Xa, Z0a, buf, it == 1 and X0 is None)
            diff = xp.subtract(new, Xa, out=Xa)
            res = _row_abs_max(diff, xp)  # diff becomes the next output buffer
            scale = _row_scale(new, xp, nonneg)
            Xa, buf = new, diff  # the old iterate's storage becomes the next output buffer
            # stop where res <= thr * scale (converged) or where the iterate is NaN/inf (its
            # row norm, and so the limit, is NaN/inf: the comparison below is False); the old
            # iterate is finite (checked start, non-finite rows stopped), so a finite scale
            # means a finite residual
            lim = thr * scale
            stop = ~(res > lim)
            if alive is not None:
                stop &= alive
            n_stop = int(xp.count_nonzero(stop))
            if not n_stop:
                continue
            rows = xp.flatnonzero(stop)
            orig = rows if idx is None else idx[rows]
            X[orig] = Xa[rows]
            res_end[orig] = res[rows]
            scale_end[orig] = scale[rows]
            ok[orig] = (res[rows] <= lim[rows]) & xp.isfinite(scale[rows])
            if alive is None:
                alive = xp.ones(Xa.shape[0], dtype=bool)
            alive[rows] = False
            n_alive -= n_stop
            if n_alive == 0:
                break
            if n_alive <= 0.75 * Xa.shape[0]:
                keep = xp.flatnonzero(alive)
                idx = keep if idx is None else idx[keep]
                Xa, Z0a = _take_rows(Xa, keep), _take_rows(Z0a, keep)
                buf = xp.empty_like(Xa)
                res, scale = res[keep], scale[keep]
                alive = None
    if n_alive:
        rows = xp.arange(Xa.shape[0]) if alive is None else xp.flatnonzero(alive)
        orig = rows if idx is None else idx[rows]
        X[orig] = Xa[rows]
        res_end[orig] = res[rows]
        scale_end[orig] = scale[rows]
    rel = _relative(res_end, scale_end * step_scale, xp)
    n_unconv = m - int(ok.sum())
    residual = float(rel.max())
    return FixedPointResult(X, n_iter, residual, n_unconv == 0, n_unconv, method)


# ----------------------------------------------------------------------------------------------
# methods
# ----------------------------------------------------------------------------------------------
def picard(A, Z0, activation, tol=None, max_iter: int = 500, X0=None,
           warn: bool = True) -> FixedPointResult:
    r"""Picard iteration :math:`x \leftarrow \phi(Ax + z_0)`, all samples at once [IDL §2].

    Converges linearly when :math:`\lambda_{PF}(\mathrm{diag}(\gamma)|A|) < 1` [IDL Thm 2.2]
    (theory §2). In place: one GEMM into a preallocated buffer, then the bias, the activation
    and the residual in about six passes over the active rows; a cold start's first step needs
    no product.

    Parameters
    ----------
    A : array of shape (n, n)
    Z0 : array of shape (m, n)
        ``U @ B.T + b``, one row per sample (float32 stays float32).
    activation : Activation
    tol : float, optional
        Relative per-sample tolerance (default: :func:`default_tol`).
    max_iter : int, default=500
    X0 : array of shape (m, n), optional
        Warm start (default zeros).
    warn : bool, default=True
        Raise a :class:`~lifted_idl.exceptions.ConvergenceWarning` (with the residual) when a
        sample does not converge.

    Returns
    -------
    FixedPointResult
    """
    xp, A, Z0, X0 = _prepare(A, Z0, X0)
    tol = _check_tol(tol, Z0.dtype)
    max_iter = check_max_iter(max_iter)
    AT = A.T

    def step(Xa, Z0a, out, zero):
        if zero:
            out[...] = Z0a
        else:
            xp.matmul(Xa, AT, out=out)
            out += Z0a
        return activation(out, out=out)

    res = _iterate(step, Z0, X0, tol, max_iter, "picard", _nonneg(activation))
    if warn:
        _warn(res, tol, max_iter)
    return res


def averaged(A, Z0, activation, alpha, tol=None, max_iter: int = 2000, X0=None,
             warn: bool = True) -> FixedPointResult:
    r"""Krasnosel'skii–Mann iteration :math:`x \leftarrow (1-\alpha)x + \alpha\phi(Ax + z_0)`.

    With :math:`\alpha = 1/(1 + \max_i\max(-a_{ii}, 0))` it contracts in the inf-norm with
    factor :math:`1 - (1 - \max(\mu_\infty(A), 0))\alpha` whenever :math:`\mu_\infty(A) < 1`
    and the slopes of :math:`\phi` lie in [0, 1] [NEMON] (theory §2; see
    :func:`lifted_idl.wellposedness.averaged_step`). The convergence test is on the Picard
    residual :math:`\|\phi(Ax + z_0) - x\|_\infty = \|x^{t+1} - x^t\|_\infty / \alpha`.

    Other parameters and the return value are as for :func:`picard`.

    Parameters
    ----------
    alpha : float in (0, 1]
        The averaging step; 1 is Picard.
    """
    xp, A, Z0, X0 = _prepare(A, Z0, X0)
    tol = _check_tol(tol, Z0.dtype)
    max_iter = check_max_iter(max_iter)
    check_real("alpha", alpha, 0, 1, closed="right")
    AT = A.T
    a = Z0.dtype.type(alpha)

    def step(Xa, Z0a, out, zero):
        if zero:
            out[...] = Z0a
            activation(out, out=out)
            out *= a
            return out
        xp.matmul(Xa, AT, out=out)
        out += Z0a
        activation(out, out=out)
        out -= Xa  # x + alpha (phi - x): three passes, no temporary
        out *= a
        out += Xa
        return out

    res = _iterate(step, Z0, X0, tol, max_iter, "averaged", False, float(alpha))
    if warn:
        _warn(res, tol, max_iter)
    return res


def back_substitution(A, Z0, activation, levels) -> FixedPointResult:
    r"""Exact solve by topological levels (A strictly (block-)triangular up to permutation).

    States are permuted into level order; level :math:`\ell` (states :math:`I_\ell`) then
    depends only on the prefix of earlier levels, :math:`x_{I_\ell} = \phi_{I_\ell}(A_{I_\ell,
    <\ell}\, x_{<\ell} + z_{0,I_\ell})` [IDL §3, Thm 2.7]: one pass in total, :math:`O(mn^2/2)`
    flops. Blockwise activations are applied to each level through
    :meth:`~lifted_idl.activations.Activation.subset` (genuine blocks must lie within one level,
    which :func:`~lifted_idl.wellposedness.dag_levels` guarantees when given the activation).

    Parameters
    ----------
    A : array of shape (n, n)
    Z0 : array of shape (m, n)
    activation : Activation
    levels : list of int arrays
        From :func:`lifted_idl.wellposedness.dag_levels`: a partition of ``range(n)`` in which
        each level depends only on earlier ones.

    Returns
    -------
    FixedPointResult
        ``n_iter = len(levels)``; ``residual`` is the relative residual
        :math:`\|\phi(Ax + z_0) - x\|_\infty / \|x\|_\infty` of the answer (one extra product).

    Raises
    ------
    ValueError
        If ``levels`` is not a partition of the states, or if A has a dependency that the level
        order violates (the answer would be wrong).
    """
    xp, A, Z0, _ = _prepare(A, Z0, None)
    m, n = Z0.shape
    levs = [np.sort(np.asarray(lv, dtype=np.intp).ravel()) for lv in levels]
    order = np.concatenate(levs) if levs else np.zeros(0, dtype=np.intp)
    if order.shape[0] != n or not np.array_equal(np.sort(order), np.arange(n)):
        raise ValueError(
            f"levels must partition the {n} states; got {len(levs)} levels covering "
            f"{order.shape[0]} indices"
        )
    sizes = [lv.shape[0] for lv in levs]
    bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(np.intp)
    # every dependency must point to an earlier level: the permuted A is strictly block lower
    Ap_np = np.abs(np.asarray(_to_host(A)))[np.ix_(order, order)] > 0
    for k in range(len(levs)):
        if Ap_np[bounds[k]:bounds[k + 1], bounds[k]:].any():
            raise ValueError(
                f"levels do not respect A: level {k} depends on itself or on a later level"
            )
    perm = xp.asarray(order)
    Ap = A[perm][:, perm]
    Z0p = Z0[:, perm]
    Xp = xp.empty_like(Z0p)
    for k, lv in enumerate(levs):
        s, e = int(bounds[k]), int(bounds[k + 1])
        if e == s:
            continue
        if s == 0:
            Zl = Z0p[:, s:e].copy()
        else:
            Zl = Xp[:, :s] @ Ap[s:e, :s].T
            Zl += Z0p[:, s:e]
        sub = activation.subset(lv) if hasattr(activation, "subset") else activation
        Xp[:, s:e] = sub(Zl)
    X = xp.empty_like(Z0)
    X[:, perm] = Xp
    del Xp, Z0p  # the residual below needs one more (m, n) array, not three
    if m and n:
        with np.errstate(over="ignore", invalid="ignore"):
            Xc = xp.matmul(X, A.T)
            Xc += Z0
            Xc = activation(Xc, out=Xc)
            Xc -= X
            residual = float(_relative(_row_inf(Xc, xp), _row_inf(X, xp), xp).max())
    else:
        residual = 0.0
    return FixedPointResult(X, len(levs), residual, True, 0, "triangular")


def _to_host(M):
    return M.get() if type(M).__module__.startswith("cupy") else M


def lowrank(L, R, Z0, activation, tol=None, max_iter: int = 500, X0=None,
            warn: bool = True) -> FixedPointResult:
    r"""Picard iteration for :math:`A = L R^\top` (rank k), in :math:`O(mnk)` per step.

    Iterates :math:`x \leftarrow \phi(L (R^\top x) + z_0)`: the same iterates as Picard on the
    full A, computed through the k-dimensional variable :math:`z = R^\top x`, i.e. the
    iteration :math:`z \leftarrow R^\top\phi(Lz + z_0)` of theory §6 [IDL §5]; well-posed when
    :math:`\lambda_{PF}(|R|^\top \mathrm{diag}(\gamma)|L|) < 1`.

    Other parameters and the return value are as for :func:`picard`.

    Parameters
    ----------
    L, R : arrays of shape (n, k)
    """
    xp, _, Z0, X0 = _prepare(None, Z0, X0)
    n = Z0.shape[1]
    L = _as_float_2d("L", L, xp, Z0.dtype)
    R = _as_float_2d("R", R, xp, Z0.dtype)
    if L.shape[0] != n or R.shape != L.shape:
        raise ValueError(
            f"L and R must both have shape ({n}, k); got L {L.shape} and R {R.shape}"
        )
    check_finite("L", L, xp)
    check_finite("R", R, xp)
    tol = _check_tol(tol, Z0.dtype)
    max_iter = check_max_iter(max_iter)
    LT = L.T

    def step(Xa, Z0a, out, zero):
        if zero:
            out[...] = Z0a
        else:
            xp.matmul(Xa @ R, LT, out=out)
            out += Z0a
        return activation(out, out=out)

    res = _iterate(step, Z0, X0, tol, max_iter, "lowrank", _nonneg(activation))
    if warn:
        _warn(res, tol, max_iter)
    return res


def anderson(A, Z0, activation, tol=None, max_iter: int = 500, X0=None, memory: int = 5,
             reg: float = 1e-10, warn: bool = True) -> FixedPointResult:
    r"""Anderson-accelerated Picard iteration (type II), vectorized over samples.

    For each sample, with :math:`g(x) = \phi(Ax + z_0)` and residuals :math:`f_k = g(x_k) -
    x_k`, the next iterate is :math:`x_{k+1} = g(x_k) - \Delta G\,\gamma` where
    :math:`\gamma = \arg\min_\gamma \|f_k - \Delta F\,\gamma\|_2^2 + \mathrm{reg}\cdot
    \mathrm{tr}(\Delta F^\top\Delta F)\|\gamma\|_2^2`, over the last ``memory`` differences
    :math:`\Delta F, \Delta G` (batched small least-squares solves). A sample whose residual
    grows takes the plain Picard step. Samples converge and are frozen one by one, as in
    :func:`picard` (the returned state is :math:`g(x_k)` at the first k meeting the
    tolerance), and frozen samples leave the batch.

    Opt-in (see the module docstring): use it when Picard needs hundreds of iterations; on
    well-conditioned problems it is slower than Picard (``benchmarks/bench_kernel.py``).

    Other parameters and the return value are as for :func:`picard`.

    Parameters
    ----------
    memory : int, default=5
        Number of stored differences.
    reg : float, default=1e-10
        Relative Tikhonov regularization of the least-squares problems.
    """
    xp, A, Z0, X0 = _prepare(A, Z0, X0)
    tol = _check_tol(tol, Z0.dtype)
    max_iter = check_max_iter(max_iter)
    check_int("memory", memory, 1)
    check_real("reg", reg, 0)
    m, n = Z0.shape
    if m == 0 or n == 0:
        return FixedPointResult(xp.empty_like(Z0), 0, 0.0, True, 0, "anderson")
    batch = _AndersonBatch(xp, Z0, X0, activation, memory, reg, tol)
    with np.errstate(over="ignore", invalid="ignore"):
        n_iter = batch.run(A.T, X0 is None, max_iter)
    batch.freeze_rest()
    n_unconv = m - int(batch.ok.sum())
    res = FixedPointResult(batch.X, n_iter, float(batch.rel.max()), n_unconv == 0, n_unconv,
                           "anderson")
    if warn:
        _warn(res, tol, max_iter)
    return res


class _AndersonBatch:
    """The state of :func:`anderson`: the samples still iterating and their histories.

    ``X``, ``rel`` and ``ok`` hold the answers of all samples; the other arrays only the rows
    still alive (``idx`` maps them back once the batch has been compacted).
    """

    def __init__(self, xp, Z0, X0, activation, memory, reg, tol):
        m, n = Z0.shape
        dt = Z0.dtype
        self.xp, self.activation, self.memory, self.reg = xp, activation, memory, reg
        self.nonneg = _nonneg(activation)
        self.thr = dt.type(tol)
        self.X = xp.empty_like(Z0)
        self.rel = xp.zeros(m, dtype=dt)
        self.ok = xp.zeros(m, dtype=bool)
        self.Xa = xp.zeros_like(Z0) if X0 is None else xp.array(X0, dtype=dt, copy=True)
        self.Z0a = Z0
        self.dF = xp.zeros((m, memory, n), dtype=dt)
        self.dG = xp.zeros((m, memory, n), dtype=dt)
        self.f_prev = self.g_prev = None
        self.prev_norm = xp.full(m, xp.inf, dtype=dt)
        self.idx = None
        self.alive = xp.ones(m, dtype=bool)
        self.n_alive = m
        self.eye_cache = {}
        self.k = 0
        self.G = self.rn = self.scale = None

    def run(self, AT, cold, max_iter):
        """Iterate until every sample is frozen or ``max_iter``; returns the iterations run."""
        xp = self.xp
        n_iter = 0
        for it in range(1, max_iter + 1):
            n_iter = it
            if it == 1 and cold:  # A @ 0 = 0: no product for a cold start
                G = self.Z0a.copy()
            else:
                G = xp.matmul(self.Xa, AT)
                G += self.Z0a
            self.activation(G, out=G)
            self.G = G
            F = G - self.Xa
            self.rn = _row_inf(F, xp)
            self.scale = _row_scale(G, xp, self.nonneg)
            F = self._freeze_converged(F)
            if self.n_alive == 0:
                break
            self.Xa = self._next_iterate(self.G, F)
        return n_iter

    def _freeze_converged(self, F):
        """Store and drop the samples that met the tolerance (or blew up); returns F."""
        xp = self.xp
        fin = xp.isfinite(self.scale) & xp.isfinite(self.rn)
        conv = (self.rn <= self.thr * self.scale) & fin
        stop = (conv | ~fin) & self.alive
        n_stop = int(stop.sum())
        if not n_stop:
            return F
        rows = xp.flatnonzero(stop)
        self._store(rows)
        self.ok[rows if self.idx is None else self.idx[rows]] = conv[rows]
        self.alive[rows] = False
        self.n_alive -= n_stop
        if self.n_alive and self.n_alive <= 0.75 * self.Xa.shape[0]:
            F = self._compact(F)
        return F

    def _store(self, rows):
        orig = rows if self.idx is None else self.idx[rows]
        self.X[orig] = self.G[rows]
        self.rel[orig] = _relative(self.rn[rows], self.scale[rows], self.xp)

    def _compact(self, F):
        """Keep only the alive rows in every per-sample array; returns F's alive rows."""
        keep = self.xp.flatnonzero(self.alive)
        self.idx = keep if self.idx is None else self.idx[keep]
        self.Xa, self.Z0a, self.G = self.Xa[keep], self.Z0a[keep], self.G[keep]
        self.dF, self.dG = self.dF[keep], self.dG[keep]
        if self.f_prev is not None:
            self.f_prev, self.g_prev = self.f_prev[keep], self.g_prev[keep]
        self.prev_norm, self.rn, self.scale = (self.prev_norm[keep], self.rn[keep],
                                               self.scale[keep])
        self.alive = self.xp.ones(keep.shape[0], dtype=bool)
        return F[keep]

    def _next_iterate(self, G, F):
        """Push the newest differences; the Anderson step (the Picard one where it fails)."""
        xp, memory = self.xp, self.memory
        if self.f_prev is not None:
            slot = self.k % memory
            xp.subtract(F, self.f_prev, out=self.dF[:, slot])
            xp.subtract(G, self.g_prev, out=self.dG[:, slot])
            self.k += 1
        self.f_prev, self.g_prev = F, G
        mk = min(self.k, memory)
        if mk == 0:
            Xn = G.copy()
        else:
            Xn = self._extrapolate(G, F, mk)
        self.prev_norm = self.rn
        return Xn

    def _extrapolate(self, G, F, mk):
        """:math:`g(x_k) - \\Delta G\\gamma` from the regularised least squares, safeguarded."""
        xp = self.xp
        dt = G.dtype
        Fh = self.dF[:, :mk]
        gram = Fh @ Fh.transpose(0, 2, 1)  # (m, mk, mk)
        rhs = Fh @ F[:, :, None]  # (m, mk, 1)
        tr = xp.trace(gram, axis1=1, axis2=2)[:, None, None]
        eye = self.eye_cache.get(mk)
        if eye is None:
            eye = self.eye_cache[mk] = xp.eye(mk, dtype=dt)[None]
        gram += (dt.type(self.reg) * tr + xp.finfo(dt).tiny) * eye
        gamma = xp.linalg.solve(gram, rhs)  # (m, mk, 1)
        Xn = G - (gamma.transpose(0, 2, 1) @ self.dG[:, :mk])[:, 0]
        grew = self.rn > self.prev_norm  # safeguard: the plain step where the residual grew
        if bool(grew.any()):
            Xn[grew] = G[grew]
        bad = ~xp.isfinite(Xn).all(axis=1)
        if bool(bad.any()):
            Xn[bad] = G[bad]
        return Xn

    def freeze_rest(self):
        """Store the samples still alive after the last iteration (not converged)."""
        if self.n_alive:
            self._store(self.xp.flatnonzero(self.alive))


# ----------------------------------------------------------------------------------------------
# the adjoint equilibrium of implicit differentiation [IDL (6.5)-(6.6)]
# ----------------------------------------------------------------------------------------------
def solve_adjoint(A, Psi, R, *, alpha: float = 1.0, tol: float | None = None,
                  max_iter: int = 500, V0=None, min_iter: int = 0,
                  warn: bool = True) -> FixedPointResult:
    r"""Solve the adjoint equilibrium :math:`V = \Psi \odot (V A) + R` by fixed-point iteration.

    With :math:`R = \Psi \odot (G C)` this is [IDL (6.5)] in the row layout (one sample per
    row): for each sample, :math:`v = \Psi (A^\top v + C^\top g)`, i.e.
    :math:`(I - \Psi A^\top) v = \Psi C^\top g`. The iteration [IDL (6.6)], averaged with step
    :math:`\alpha`,

    .. math:: V \leftarrow (1 - \alpha) V + \alpha\,\big(\Psi \odot (V A) + R\big),

    converges for every well-posed A (theory §2):

    * :math:`\|A\|_\infty < 1`, :math:`\alpha = 1`: each row map :math:`v \mapsto \Psi A^\top v`
      contracts in the l1 norm, :math:`\|\Psi A^\top\|_1 = \|A\Psi\|_\infty \le \|A\|_\infty`;
    * :math:`\lambda_{PF}(|A|) < 1`, :math:`\alpha = 1`: spectral radius of
      :math:`\Psi A^\top` at most :math:`\lambda_{PF}(|A|)` [IDL Thm 2.2];
    * :math:`\mu_\infty(A) < 1` with the NE-MON step :math:`\alpha = 1/(1 + \max_i
      \max(-a_{ii}, 0))` [NEMON]: the iteration matrix :math:`(1-\alpha) I + \alpha\Psi A^\top`
      has the spectrum of :math:`(1-\alpha) I + \alpha \Psi A`, whose inf-norm is at most
      :math:`1 - \alpha(1 - \max(\mu_\infty(A), 0))` since :math:`0 \le \psi_i \le 1`
      (theory §2);
    * strictly triangular A (a DAG, [IDL §3]): :math:`\Psi A^\top` is nilpotent and the
      iteration is exact after as many steps as the DAG has levels.

    Parameters
    ----------
    A : array of shape (n, n)
    Psi : array of shape (m, n)
        Derivatives :math:`\phi'(Z)` at the equilibrium, one row per sample.
    R : array of shape (m, n)
        Right-hand side, :math:`\Psi \odot (G C)`.
    alpha : float, default=1.0
        Averaging step in ``(0, 1]``.
    tol : float, optional
        Stop when :math:`\|V^{t+1} - V^t\|_F \le \mathrm{tol}\cdot\|V^{t+1}\|_F` (the whole
        matrix: the gradients are sums over samples). Default: 1e-10 in float64, 1e-5 in
        float32.
    max_iter : int, default=500
    V0 : array of shape (m, n), optional
        Warm start (zeros by default).
    min_iter : int, default=0
        Iterations run before the stopping test is first evaluated (the test costs about a
        third of an iteration; a training loop passes the count its previous step needed).
    warn : bool, default=True
        Emit a :class:`~lifted_idl.exceptions.ConvergenceWarning` when the tolerance is not met.

    Returns
    -------
    FixedPointResult
        ``X`` holds V; ``method`` is ``"adjoint"``; ``residual`` is the last relative step.
    """
    A, Psi, R, dtype = _check_adjoint_args(A, Psi, R, alpha, max_iter, min_iter)
    tol = default_tol(dtype) if tol is None else float(tol)
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0; got tol={tol!r}")
    if V0 is None:
        V = R.astype(dtype, copy=True)  # the first Picard iterate from V = 0
        n_done = 1
    else:
        V0 = np.asarray(V0)
        if V0.shape != R.shape:
            raise ValueError(f"V0 must have shape {R.shape}; got shape {V0.shape}")
        V = V0.astype(dtype, copy=True)
        n_done = 0
    if V.size == 0:
        return FixedPointResult(V, 0, 0.0, True, 0, "adjoint")
    V, it, residual, converged = _adjoint_iterations(
        A.astype(dtype, copy=False), Psi.astype(dtype, copy=False), R.astype(dtype, copy=False),
        V, alpha, n_done, tol, max_iter, min_iter)
    n_unconv = 0 if converged else V.shape[0]
    res = FixedPointResult(V, it, residual, converged, n_unconv, "adjoint")
    if warn and not converged:
        _warn_convergence(
            f"Adjoint fixed-point iteration [IDL (6.6)] did not converge in max_iter={max_iter} "
            f"iterations: relative step {residual:.3e} > tol={tol:.1e}.", stacklevel=2)
    return res


def _check_adjoint_args(A, Psi, R, alpha, max_iter, min_iter):
    """Shapes and ranges of :func:`solve_adjoint`'s arguments; returns arrays and a float dtype."""
    A = np.asarray(A)
    Psi = np.asarray(Psi)
    R = np.asarray(R)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"A must be a square 2-D array; got shape {A.shape}")
    n = A.shape[0]
    if Psi.ndim != 2 or Psi.shape[1] != n:
        raise ValueError(f"Psi must have shape (m, {n}); got shape {Psi.shape}")
    if R.shape != Psi.shape:
        raise ValueError(f"R must have the shape of Psi {Psi.shape}; got shape {R.shape}")
    check_real("alpha", alpha, 0, 1, closed="right")
    check_max_iter(max_iter)
    check_int("min_iter", min_iter, 0)
    dtype = np.result_type(A.dtype, Psi.dtype, R.dtype)
    if dtype not in (np.float32, np.float64):
        dtype = np.dtype(np.float64)
    return A, Psi, R, dtype


def _adjoint_iterations(A, Psi, R, V, alpha, n_done, tol, max_iter, min_iter):
    """The averaged iteration of :func:`solve_adjoint` from ``V`` (overwritten).

    Returns ``(V, iterations, relative step, converged)``.
    """
    W = np.empty_like(V)
    a = V.dtype.type(alpha)
    averaged = alpha != 1
    residual = math.inf
    it = n_done
    while it < max_iter:
        it += 1
        np.matmul(V, A, out=W)
        W *= Psi
        W += R
        if averaged:
            W -= V
            W *= a
            W += V
        V, W = W, V
        if it < min_iter:
            continue
        np.subtract(V, W, out=W)  # W now holds the step
        step = math.sqrt(float(np.vdot(W, W)))
        scale = math.sqrt(float(np.vdot(V, V)))
        if not (math.isfinite(step) and math.isfinite(scale)):
            return V, it, math.inf, False
        if step <= tol * scale:
            return V, it, (step / scale if scale > 0 else 0.0), True
        residual = step / scale if scale > 0 else math.inf
    return V, it, residual, False


def solve_adjoint_direct(A, Psi, R, chunk_floats: int = 2_000_000) -> np.ndarray:
    r"""Solve :math:`V = \Psi \odot (V A) + R` row by row with dense linear solves.

    Row i solves :math:`(I - \mathrm{diag}(\psi_i) A^\top) v_i = r_i`: the fallback of
    :func:`solve_adjoint` when no contraction certificate holds or the iteration stalls.
    ``chunk_floats`` bounds the size of the stacked ``(rows, n, n)`` systems.

    Parameters
    ----------
    A : array of shape (n, n)
    Psi : array of shape (m, n)
    R : array of shape (m, n)

    Returns
    -------
    ndarray of shape (m, n)
    """
    m, n = Psi.shape
    V = np.empty_like(R)
    chunk = max(1, chunk_floats // max(n * n, 1))
    eye = np.eye(n)
    for s in range(0, m, chunk):
        P = Psi[s:s + chunk]
        M = eye[None] - P[:, :, None] * A.T[None]
        V[s:s + chunk] = np.linalg.solve(M, R[s:s + chunk][:, :, None])[:, :, 0]
    return V


# ----------------------------------------------------------------------------------------------
# dispatch
# ----------------------------------------------------------------------------------------------
def _lowrank_certified(L, R, activation) -> bool:
    """:math:`\\lambda_{PF}(|R|^\\top \\mathrm{diag}(\\gamma)|L|) < 1` (theory §6)."""
    if not activation.componentwise:
        return False
    L = np.abs(np.asarray(_to_host(L), dtype=np.float64))
    R = np.abs(np.asarray(_to_host(R), dtype=np.float64))
    g = activation.state_lipschitz(L.shape[0])
    M = R.T @ (g[:, None] * L)
    return M.shape[0] == 0 or float(np.max(np.abs(np.linalg.eigvals(M)))) < 1


def solve(A, Z0, activation, method: str = "picard", *, tol=None, max_iter=None, X0=None,
          alpha: float = 1.0, levels=None, factors=None, warn: bool = True,
          force: bool = False) -> FixedPointResult:
    """Dispatch to one of the fixed-point methods (see the module docstring).

    Parameters
    ----------
    A : array of shape (n, n)
    Z0 : array of shape (m, n)
    activation : Activation
    method : {"picard", "averaged", "triangular", "lowrank", "anderson"}
    tol, max_iter, X0, warn
        As for :func:`picard` (``max_iter`` defaults to each method's own).
    alpha : float, default=1.0
        Step of the averaged iteration.
    levels : list of int arrays
        Required by ``"triangular"`` (:func:`lifted_idl.wellposedness.dag_levels`).
    factors : tuple (L, R)
        Required by ``"lowrank"``.
    force : bool, default=False
        Skip the well-posedness check. Otherwise :func:`lifted_idl.wellposedness.is_well_posed`
        must find a certificate (or, for ``"lowrank"``, :math:`\\lambda_{PF}(|R|^\\top|L|) < 1`)
        and :class:`~lifted_idl.exceptions.IllPosedModelError` is raised when none holds.
        :class:`~lifted_idl.ImplicitModel` checks once, caches the result and passes
        ``force=True``.

    Returns
    -------
    FixedPointResult
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got method={method!r}")
    activation = get_activation(activation)
    if method == "triangular" and levels is None:
        raise ValueError("method='triangular' needs the DAG levels of A (levels=...)")
    if method == "lowrank" and factors is None:
        raise ValueError("method='lowrank' needs the factors (L, R) of A (factors=...)")
    if not force:
        certified = method == "lowrank" and _lowrank_certified(*factors, activation)
        if not certified:
            wp = is_well_posed(_to_host(A), activation)
            if not wp.well_posed:
                raise IllPosedModelError(
                    f"No well-posedness certificate holds for this A: lambda_PF = "
                    f"{wp.value:.6g} >= 1, mu_inf >= 1 and A is not triangular. Project or "
                    "rescale A, or pass force=True to iterate anyway."
                )
    if method == "triangular":
        return back_substitution(A, Z0, activation, levels)
    kw = dict(tol=tol, X0=X0, warn=warn)
    if max_iter is not None:
        kw["max_iter"] = max_iter
    if method == "picard":
        return picard(A, Z0, activation, **kw)
    if method == "averaged":
        return averaged(A, Z0, activation, alpha, **kw)
    if method == "lowrank":
        return lowrank(factors[0], factors[1], Z0, activation, **kw)
    return anderson(A, Z0, activation, **kw)
