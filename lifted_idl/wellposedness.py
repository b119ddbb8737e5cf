r"""Well-posedness certificates, the l-infinity ball projection and PF rescaling.

Implements theory §1–3:

* :func:`inf_norm`, :func:`pf_eigenvalue` (of :math:`|A|`, or of :math:`N(A,\gamma)` for
  blockwise activations [IDL §2.3]), :func:`mu_inf` [NEMON];
* :func:`is_well_posed`, which reports the first sufficient condition that holds;
* :func:`project_inf_norm_ball`, the exact row-wise projection onto
  :math:`\{A : \|A\|_\infty \le \kappa\}` [IDL §6.2];
* :func:`rescale_to_inf_norm`, the PF diagonal scaling of [IDL §2.5];
* :func:`nemon_parametrize`, the NE-MON parametrization of :math:`\mu_\infty(A) \le \gamma`.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from ._array import get_namespace, to_numpy
from .activations import get_activation
from .exceptions import IllPosedModelError

__all__ = [
    "inf_norm",
    "pf_eigenvalue",
    "mu_inf",
    "dag_levels",
    "WellPosedness",
    "is_well_posed",
    "project_inf_norm_ball",
    "rescale_to_inf_norm",
    "nemon_parametrize",
    "averaged_step",
]


def _as_square(A, name="A"):
    A = np.asarray(to_numpy(A), dtype=float)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"{name} must be a square 2-D array; got shape {A.shape}")
    if not np.all(np.isfinite(A)):
        raise ValueError(f"{name} contains NaN or inf")
    return A


def inf_norm(A) -> float:
    r""":math:`\|A\|_\infty = \max_i \sum_j |A_{ij}|` (theory §1)."""
    A = _as_square(A)
    return float(np.abs(A).sum(axis=1).max(initial=0.0))


def mu_inf(A) -> float:
    r"""The l-infinity matrix measure :math:`\mu_\infty(A) = \max_i (a_{ii} + \sum_{j \ne i}
    |a_{ij}|)` [NEMON] (theory §1). Always :math:`\le \|A\|_\infty`."""
    A = _as_square(A)
    if A.shape[0] == 0:
        return -np.inf
    d = np.diag(A)
    return float((d + np.abs(A).sum(axis=1) - np.abs(d)).max())


def _spectral_radius_nonneg(M: np.ndarray) -> float:
    if M.shape[0] == 0:
        return 0.0
    return float(np.max(np.abs(np.linalg.eigvals(M))))


def _block_norm(M: np.ndarray, p_in: float, p_out: float) -> float:
    """Induced norm ``||M||_{p_in -> p_out}`` for p in {1, 2, inf}; an upper bound otherwise."""
    if M.size == 0:
        return 0.0
    if p_in == p_out:
        if p_in == np.inf:
            return float(np.abs(M).sum(axis=1).max())
        if p_in == 1:
            return float(np.abs(M).sum(axis=0).max())
        if p_in == 2:
            return float(np.linalg.norm(M, 2))
    # mixed norms: ||M||_{a->b} <= ||M||_{a->a} * c(a,b), c the norm-equivalence constant on R^k
    k_out, k_in = M.shape
    if p_in == 2 and p_out == np.inf:
        return float(np.linalg.norm(M, axis=1).max())  # exact: max row 2-norm
    if p_in == np.inf and p_out == 2:
        return float(np.sqrt(k_out) * np.abs(M).sum(axis=1).max())
    if p_in == 1 and p_out == 2:
        return float(np.linalg.norm(M, axis=0).max())  # exact: max column 2-norm
    if p_in == 2 and p_out == 1:
        return float(np.sqrt(k_out) * np.linalg.norm(M, 2))
    if p_in == 1 and p_out == np.inf:
        return float(np.abs(M).max())  # exact
    if p_in == np.inf and p_out == 1:
        return float(np.abs(M).sum())  # upper bound
    raise ValueError(f"unsupported block norms p_in={p_in}, p_out={p_out}")


def block_gain_matrix(A, activation) -> np.ndarray:
    r"""The matrix whose PF eigenvalue certifies well-posedness.

    For componentwise activations: :math:`\mathrm{diag}(\gamma)|A|`. For a blockwise activation
    with a non-componentwise block: the L×L matrix :math:`N(A,\gamma)_{ij} = \gamma_i
    \|A_{ij}\|_{p_j \to p_i}` [IDL §2.3], with componentwise blocks split into single states.
    """
    A = _as_square(A)
    act = get_activation(activation)
    n = A.shape[0]
    if act.componentwise:
        return act.state_lipschitz(n)[:, None] * np.abs(A)
    # split componentwise blocks into 1x1 blocks (tighter), keep genuine blocks whole
    bounds, gammas, norms = [], [], []
    start = 0
    for size, sub in act.blocks:
        if sub.componentwise:
            for k in range(size):
                bounds.append((start + k, start + k + 1))
                gammas.append(sub.lipschitz)
                norms.append(np.inf)
        else:
            bounds.append((start, start + size))
            gammas.append(sub.lipschitz)
            norms.append(sub.norm)
        start += size
    L = len(bounds)
    N = np.empty((L, L))
    for i, (a0, a1) in enumerate(bounds):
        for j, (b0, b1) in enumerate(bounds):
            N[i, j] = gammas[i] * _block_norm(A[a0:a1, b0:b1], norms[j], norms[i])
    return N


def pf_eigenvalue(A, activation="relu") -> float:
    r"""Perron–Frobenius eigenvalue of :math:`\mathrm{diag}(\gamma)|A|`, or of
    :math:`N(A, \gamma)` for blockwise activations (theory §1, [IDL Thm 2.2]).

    For ReLU, tanh and leaky ReLU (:math:`\gamma = 1`) this is :math:`\lambda_{PF}(|A|)`.
    """
    return _spectral_radius_nonneg(block_gain_matrix(A, activation))


def dag_levels(A, tol: float = 0.0):
    """Topological levels of the dependency graph of ``A`` (state i depends on j if A_ij ≠ 0).

    Returns a list of index arrays, in evaluation order, when the graph is acyclic (A is
    strictly upper triangular up to a permutation: a feed-forward network [IDL §3]); ``None``
    otherwise. States of one level depend only on earlier levels, so back-substitution solves the
    equilibrium exactly in ``len(levels)`` passes.
    """
    A = _as_square(A)
    n = A.shape[0]
    dep = np.abs(A) > tol
    if np.any(np.diag(dep)):
        return None
    done = np.zeros(n, dtype=bool)
    levels = []
    while not done.all():
        pending = ~done
        # ready: pending states all of whose dependencies are done
        ready = pending & ~dep[:, pending].any(axis=1)
        if not ready.any():
            return None
        levels.append(np.flatnonzero(ready))
        done |= ready
    return levels


@dataclass(frozen=True)
class WellPosedness:
    """Which sufficient well-posedness condition holds, and its value.

    Attributes
    ----------
    well_posed : bool
    certificate : str or None
        ``"dag"`` (strictly triangular up to permutation: exact back-substitution),
        ``"inf_norm"`` (:math:`\\|\\mathrm{diag}(\\gamma) A\\|_\\infty < 1`, Picard contracts in
        the inf-norm), ``"pf"`` (:math:`\\lambda_{PF} < 1` [IDL Thm 2.2], Picard contracts in a
        weighted inf-norm), ``"mu_inf"`` (:math:`\\mu_\\infty(A) < 1` [NEMON], averaged
        iteration), or ``None``.
    value : float
        The certified quantity (0 for ``"dag"``).
    contraction : float
        Contraction factor of the iteration the certificate selects (Picard, or averaged with
        ``alpha`` for ``"mu_inf"``).
    alpha : float
        Averaging step for the Krasnosel'skii–Mann iteration (1 means plain Picard).
    """

    well_posed: bool
    certificate: str | None
    value: float
    contraction: float
    alpha: float = 1.0

    def __bool__(self):
        return self.well_posed


def averaged_step(A) -> tuple[float, float]:
    r"""NE-MON step and contraction factor for :math:`\mu_\infty(A) < 1` (theory §1).

    Returns :math:`(\alpha, c)` with :math:`\alpha = 1/(1 + \max_i \max(-a_{ii}, 0))` and
    :math:`c = 1 - (1 - \max(\mu_\infty(A), 0))\,\alpha`.
    """
    A = _as_square(A)
    neg = float(np.maximum(-np.diag(A), 0).max(initial=0.0))
    alpha = 1.0 / (1.0 + neg)
    c = 1.0 - (1.0 - max(mu_inf(A), 0.0)) * alpha
    return alpha, c


def is_well_posed(A, activation="relu") -> WellPosedness:
    """Check the sufficient well-posedness conditions of theory §1 in order of cost.

    Parameters
    ----------
    A : array of shape (n, n)
    activation : str or Activation

    Returns
    -------
    WellPosedness
        Truthy when a certificate holds; ``.certificate`` names it.

    Notes
    -----
    Order: DAG structure (exact), :math:`\\|\\mathrm{diag}(\\gamma)|A|\\|_\\infty < 1`,
    :math:`\\lambda_{PF} < 1` [IDL Thm 2.2], then :math:`\\mu_\\infty(A) < 1` [NEMON]; the last
    holds for componentwise activations with slopes in [0, 1].
    """
    A = _as_square(A)
    act = get_activation(activation)
    if dag_levels(A) is not None:
        return WellPosedness(True, "dag", 0.0, 0.0)
    G = block_gain_matrix(A, act)
    row = float(G.sum(axis=1).max(initial=0.0))
    if act.componentwise and row < 1:
        return WellPosedness(True, "inf_norm", row, row)
    lam = _spectral_radius_nonneg(G)
    if lam < 1:
        return WellPosedness(True, "pf", lam, lam)
    if act.componentwise and act.lipschitz <= 1:
        mu = mu_inf(A)
        if mu < 1:
            alpha, c = averaged_step(A)
            return WellPosedness(True, "mu_inf", mu, c, alpha)
    return WellPosedness(False, None, lam, np.inf)


# ----------------------------------------------------------------------------------------------
# projection onto the inf-norm ball (theory §2)
# ----------------------------------------------------------------------------------------------
def _check_kappa(kappa, n_rows):
    k = np.asarray(kappa, dtype=float)
    if k.ndim > 1 or (k.ndim == 1 and k.shape[0] != n_rows):
        raise ValueError(f"kappa must be a scalar or have one entry per row; got shape {k.shape}")
    if not np.all(np.isfinite(k)) or np.any(k < 0):
        raise ValueError(f"kappa must be finite and >= 0; got kappa={kappa!r}")
    return k


def project_inf_norm_ball(A, kappa, method: str = "sort", tol: float = 1e-12, max_iter: int = 100):
    r"""Euclidean projection of ``A`` onto :math:`\{A : \|A\|_\infty \le \kappa\}`.

    The problem is separable across rows [IDL §6.2]: each row :math:`a` is projected onto the
    l1 ball of radius :math:`\kappa`, i.e. soft-thresholded, :math:`a \mapsto \mathrm{sign}(a)
    \max(|a| - \theta, 0)`, with :math:`\theta \ge 0` the root of
    :math:`\sum_j \max(|a_j| - \theta, 0) = \kappa` (theory §2).

    Parameters
    ----------
    A : array of shape (n, d)
        Rows to project (NumPy or CuPy).
    kappa : float or array of shape (n,)
        Radius, one for all rows or one per row.
    method : {"sort", "bisection"}
        ``"sort"``: exact, sort-based (Duchi et al. 2008), vectorized across rows.
        ``"bisection"``: the paper's vectorized bisection on θ, accurate to ``tol``.

    Returns
    -------
    array of shape (n, d), the same dtype and namespace as ``A``.
    """
    xp = get_namespace(A)
    if getattr(A, "ndim", None) != 2:
        raise ValueError(f"A must be a 2-D array; got shape {getattr(A, 'shape', None)}")
    if not bool(xp.all(xp.isfinite(A))):
        raise ValueError("A contains NaN or inf")
    if method not in ("sort", "bisection"):
        raise ValueError(f"method must be 'sort' or 'bisection'; got method={method!r}")
    n, d = A.shape
    k_np = _check_kappa(kappa, n)
    dtype = A.dtype if A.dtype in (np.float32, np.float64) else np.float64
    A = A.astype(dtype, copy=False)
    absA = xp.abs(A)
    rows = absA.sum(axis=1)
    kap = xp.asarray(k_np, dtype=dtype)
    outside = rows > kap
    if not bool(outside.any()):
        return A.copy()
    # work only on the rows outside the ball
    idx = xp.flatnonzero(outside)
    sub = absA[idx]
    ksub = kap[idx] if kap.ndim else kap
    if method == "sort":
        theta = _theta_sort(sub, ksub, xp)
    else:
        theta = _theta_bisection(sub, ksub, xp, tol, max_iter)
    out = A.copy()
    shrunk = xp.maximum(sub - theta[:, None], 0)
    out[idx] = xp.copysign(shrunk, A[idx])
    return out


def _theta_sort(absA, kappa, xp):
    """Threshold θ per row by sorting (rows are known to lie outside the ball)."""
    n, d = absA.shape
    S = xp.sort(absA, axis=1)[:, ::-1]  # descending view
    css = xp.cumsum(S, axis=1)
    css -= kappa[:, None] if getattr(kappa, "ndim", 0) else kappa
    j = xp.arange(1, d + 1, dtype=absA.dtype)
    # largest j with S_j > (css_j - kappa)/j  (condition is monotone in j)
    cond = S * j > css
    rho = d - 1 - xp.argmax(cond[:, ::-1], axis=1)
    theta = css[xp.arange(n), rho] / (rho + 1).astype(absA.dtype)
    return xp.maximum(theta, 0)


def _theta_bisection(absA, kappa, xp, tol, max_iter):
    """The paper's vectorized bisection on θ over [0, max_j |a_j|]."""
    k = kappa[:, None] if getattr(kappa, "ndim", 0) else kappa
    lo = xp.zeros(absA.shape[0], dtype=absA.dtype)
    hi = absA.max(axis=1)
    scale = xp.maximum(hi, 1)
    for _ in range(max_iter):
        mid = 0.5 * (lo + hi)
        s = xp.maximum(absA - mid[:, None], 0).sum(axis=1, keepdims=True)
        above = (s > k)[:, 0]
        lo = xp.where(above, mid, lo)
        hi = xp.where(above, hi, mid)
        if bool(((hi - lo) <= tol * scale).all()):
            break
    return 0.5 * (lo + hi)


# ----------------------------------------------------------------------------------------------
# PF rescaling (theory §3) and NE-MON parametrization (theory §1)
# ----------------------------------------------------------------------------------------------
def rescale_to_inf_norm(model):
    r"""Equivalent model with :math:`\|A'\|_\infty < 1`, by the PF diagonal scaling [IDL §2.5].

    With :math:`s = (I - |A|)^{-1} 1` and :math:`S = \mathrm{diag}(s)`:
    :math:`A' = S^{-1} A S`, :math:`B' = S^{-1} B`, :math:`b' = S^{-1} b`, :math:`C' = C S`,
    :math:`D' = D`. Then :math:`\|A'\|_\infty = \max_i (1 - 1/s_i) < 1` (theory §3) and the
    predictions are unchanged because the activation is positively homogeneous.

    Raises
    ------
    IllPosedModelError
        If :math:`\lambda_{PF}(|A|) \ge 1`.
    ValueError
        If the activation is not positively homogeneous (tanh, sigmoid).
    """
    act = model.activation
    if not act.positively_homogeneous or not act.componentwise:
        raise ValueError(
            f"rescale_to_inf_norm needs a positively homogeneous componentwise activation; "
            f"got activation={act!r}"
        )
    A = np.asarray(model.A, dtype=np.float64)
    n = A.shape[0]
    lam = pf_eigenvalue(A, "relu")
    if lam >= 1:
        raise IllPosedModelError(
            f"rescale_to_inf_norm needs lambda_PF(|A|) < 1; got lambda_PF(|A|) = {lam:.6g}"
        )
    s = np.linalg.solve(np.eye(n) - np.abs(A), np.ones(n))
    s = np.maximum(s, 1.0)  # s >= 1 in exact arithmetic
    dt = model.dtype
    return model.replace(
        A=(A * s[None, :] / s[:, None]).astype(dt),
        B=(np.asarray(model.B, dtype=np.float64) / s[:, None]).astype(dt),
        C=(np.asarray(model.C, dtype=np.float64) * s[None, :]).astype(dt),
        b=None if model.b is None else (np.asarray(model.b, np.float64) / s).astype(dt),
    )


def nemon_parametrize(T, gamma: float):
    r"""NE-MON parametrization: :math:`A = T - \mathrm{diag}(|T|\mathbf 1) + \gamma I`.

    Every such A satisfies :math:`\mu_\infty(A) \le \gamma`, and every A with
    :math:`\mu_\infty(A) \le \gamma` arises this way (take :math:`T = A` off the diagonal and
    :math:`t_{ii} = a_{ii} - \gamma + \sum_{j\ne i}|a_{ij}|` when that is :math:`\le 0`) — the
    corrected form of the [NEMON] slide (theory §1, **fix**).

    Parameters
    ----------
    T : array of shape (n, n)
        Unconstrained parameter.
    gamma : float
        Bound on the matrix measure; :math:`\gamma < 1` gives a well-posed model.
    """
    xp = get_namespace(T)
    if getattr(T, "ndim", None) != 2 or T.shape[0] != T.shape[1]:
        raise ValueError(f"T must be a square 2-D array; got shape {getattr(T, 'shape', None)}")
    if not isinstance(gamma, numbers.Real) or not np.isfinite(gamma):
        raise ValueError(f"gamma must be a finite real number; got gamma={gamma!r}")
    n = T.shape[0]
    return T - xp.diag(xp.abs(T).sum(axis=1)) + gamma * xp.eye(n, dtype=T.dtype)
