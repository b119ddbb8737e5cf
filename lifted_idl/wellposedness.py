r"""Well-posedness certificates, the projections onto the constraint sets, PF rescaling.

Implements theory §2–3:

* :func:`inf_norm`, :func:`pf_eigenvalue` (of :math:`|A|`, or of :math:`N(A,\gamma)` for
  blockwise activations [IDL §2.3]), :func:`mu_inf` [NEMON];
* :func:`dag_levels`, the topological levels of a strictly (block-)triangular A [IDL §3];
* :func:`is_well_posed`, which reports the first sufficient condition that holds;
* :func:`project_inf_norm_ball`, the exact row-wise projection onto
  :math:`\{A : \|A\|_\infty \le \kappa\}` [IDL §6.2];
* :func:`project_mu_inf`, the exact row-wise projection onto
  :math:`\{A : \mu_\infty(A) \le \gamma\}` [NEMON];
* :func:`rescale_to_inf_norm`, the PF diagonal scaling of [IDL §2.5];
* :func:`nemon_parametrize` / :func:`nemon_parameter`, the NE-MON parametrization of
  :math:`\mu_\infty(A) \le \gamma` and its inverse.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ._array import check_finite, get_namespace, to_numpy
from ._validation import (
    check_choice,
    check_finite_matrix,
    check_kappa,
    check_max_iter,
    check_real,
    check_tol,
)
from .activations import Activation, Blockwise, get_activation
from .exceptions import IllPosedModelError, _warn_convergence

__all__ = [
    "inf_norm",
    "pf_eigenvalue",
    "mu_inf",
    "block_gain_matrix",
    "dag_levels",
    "WellPosedness",
    "is_well_posed",
    "project_inf_norm_ball",
    "project_mu_inf",
    "rescale_to_inf_norm",
    "nemon_parametrize",
    "nemon_parameter",
    "averaged_step",
]


def _as_matrix(A, name: str = "A", square: bool = True) -> np.ndarray:
    """``A`` as a finite float64 NumPy matrix (copied from the GPU when needed)."""
    A = np.asarray(to_numpy(A))
    if A.dtype.kind in "fiub" and (A.ndim != 2 or (square and A.shape[0] != A.shape[1])):
        kind = "a square 2-D" if square else "a 2-D"
        raise ValueError(f"{name} must be {kind} array; got shape {A.shape}")
    return check_finite_matrix(name, A)


def inf_norm(A) -> float:
    r"""Induced infinity norm :math:`\|A\|_\infty = \max_i \sum_j |A_{ij}|` (theory §2).

    Parameters
    ----------
    A : array of shape (n, d)
        Any real matrix (square for the well-posedness condition :math:`\|A\|_\infty < 1`,
        rectangular for B or C in the Lipschitz bounds of theory §7).

    Returns
    -------
    float
        0 for a matrix with no rows.
    """
    A = _as_matrix(A, square=False)
    return float(np.abs(A).sum(axis=1).max(initial=0.0))


def mu_inf(A) -> float:
    r"""The l-infinity matrix measure [NEMON] (theory §2),

    .. math:: \mu_\infty(A) = \max_i \Big(a_{ii} + \sum_{j \ne i} |a_{ij}|\Big)
              \le \|A\|_\infty .

    Returns ``-inf`` for an empty matrix.
    """
    A = _as_matrix(A)
    if A.shape[0] == 0:
        return -np.inf
    d = np.diag(A)
    return float((d + np.abs(A).sum(axis=1) - np.abs(d)).max())


def _spectral_radius_nonneg(M: np.ndarray) -> float:
    if M.shape[0] == 0:
        return 0.0
    return float(np.max(np.abs(np.linalg.eigvals(M))))


def _dual(p: float) -> float:
    if p == 1:
        return np.inf
    if p == np.inf:
        return 1.0
    return p / (p - 1.0)


def _block_norm(M: np.ndarray, p_in: float, p_out: float) -> float:
    r"""Induced norm :math:`\|M\|_{p_{in} \to p_{out}}`; exact for a single row or column.

    A single column maps a scalar, so the norm is the :math:`p_{out}` norm of the column; a
    single row gives the dual :math:`p_{in}^*` norm of the row. Otherwise exact for equal norms
    in {1, 2, inf} and for (2→inf), (1→2), (1→inf); a norm-equivalence upper bound for
    (inf→2), (2→1), (inf→1) (sound for the PF certificate, possibly conservative).
    """
    if M.size == 0:
        return 0.0
    k_out, k_in = M.shape
    if k_in == 1:
        return float(np.linalg.norm(M[:, 0], ord=p_out))
    if k_out == 1:
        return float(np.linalg.norm(M[0], ord=_dual(p_in)))
    if p_in == p_out:
        if p_in == np.inf:
            return float(np.abs(M).sum(axis=1).max())
        if p_in == 1:
            return float(np.abs(M).sum(axis=0).max())
        if p_in == 2:
            return float(np.linalg.norm(M, 2))
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


def _units(act: Activation, n: int):
    """Partition of the states into units: single states for componentwise maps, whole blocks
    for genuine (BLIP) blocks. Returns ``(starts, stops, gammas, norms)`` lists."""
    if act.componentwise:
        g = act.state_lipschitz(n)
        return list(range(n)), list(range(1, n + 1)), list(g), [np.inf] * n
    wrapped = act if isinstance(act, Blockwise) else Blockwise([(n, act)])
    if wrapped.size != n:
        raise ValueError(f"activation covers {wrapped.size} states but A has n={n}")
    starts, stops, gammas, norms = [], [], [], []
    start = 0
    for size, sub in wrapped.blocks:
        if sub.componentwise:
            for k in range(size):
                starts.append(start + k)
                stops.append(start + k + 1)
                gammas.append(float(sub.lipschitz))
                norms.append(np.inf)
        else:
            starts.append(start)
            stops.append(start + size)
            gammas.append(float(sub.lipschitz))
            norms.append(float(sub.norm))
        start += size
    return starts, stops, gammas, norms


def block_gain_matrix(A, activation) -> np.ndarray:
    r"""The nonnegative matrix whose PF eigenvalue certifies well-posedness (theory §2).

    For componentwise activations: :math:`\mathrm{diag}(\gamma)|A|`. For a blockwise activation
    with a genuine (non-componentwise) block: the :math:`L \times L` matrix

    .. math:: N(A,\gamma)_{ij} = \gamma_i \|A_{ij}\|_{p_j \to p_i}

    [IDL §2.3, Thm 2.5], with componentwise blocks split into single states (tighter).
    """
    A = _as_matrix(A)
    act = get_activation(activation)
    n = A.shape[0]
    if act.componentwise:
        return act.state_lipschitz(n)[:, None] * np.abs(A)
    starts, stops, gammas, norms = _units(act, n)
    L = len(starts)
    genuine = [u for u in range(L) if norms[u] != np.inf or stops[u] - starts[u] != 1]
    single = np.setdiff1d(np.arange(L), genuine)
    st = np.asarray(starts, dtype=np.intp)
    gam = np.asarray(gammas, dtype=np.float64)
    N = np.empty((L, L))
    # single componentwise states: gamma_i |A_ij| (all norms of a scalar agree)
    N[np.ix_(single, single)] = gam[single, None] * np.abs(A[np.ix_(st[single], st[single])])

    def entry(i, j):
        sub = A[starts[i]:stops[i], starts[j]:stops[j]]
        return gammas[i] * _block_norm(sub, norms[j], norms[i])

    for i in genuine:
        for j in range(L):
            N[i, j] = entry(i, j)
    for j in genuine:
        for i in single:
            N[i, j] = entry(i, j)
    return N


def pf_eigenvalue(A, activation="relu") -> float:
    r"""Perron–Frobenius eigenvalue of :math:`\mathrm{diag}(\gamma)|A|`, or of
    :math:`N(A, \gamma)` for blockwise activations (theory §2, [IDL Thm 2.2, Thm 2.5]).

    For ReLU, leaky ReLU and tanh (:math:`\gamma = 1`) this is :math:`\lambda_{PF}(|A|)`;
    well-posedness holds when it is below 1.
    """
    return _spectral_radius_nonneg(block_gain_matrix(A, activation))


def _kahn_levels(dep: np.ndarray):
    """Levels of a DAG given ``dep[i, j]`` (i depends on j); ``None`` if there is a cycle."""
    U = dep.shape[0]
    remaining = dep.sum(axis=1)
    done = np.zeros(U, dtype=bool)
    ready = remaining == 0
    levels = []
    while True:
        r = np.flatnonzero(ready)
        if r.size == 0:
            break
        levels.append(r)
        done[r] = True
        remaining = remaining - dep[:, r].sum(axis=1)
        ready = (remaining == 0) & ~done
    return levels if bool(done.all()) else None


def dag_levels(A, tol: float = 0.0, activation=None):
    r"""Topological levels of the dependency graph of ``A`` (state i depends on j if
    :math:`|A_{ij}| > \mathrm{tol}`).

    Parameters
    ----------
    A : array of shape (n, n)
    tol : float, default=0.0
        Entries of magnitude at most ``tol`` are ignored.
    activation : str or Activation, optional
        With a blockwise activation holding genuine (non-componentwise) blocks, each such block
        is one node of the graph: it must be evaluated whole, so an entry of A inside a genuine
        block is a self-loop.

    Returns
    -------
    list of int arrays, or None
        The levels in evaluation order (increasing state indices within a level) when the graph
        is acyclic — A strictly upper (block-)triangular up to a permutation, a feed-forward
        network [IDL §3, Thm 2.7] — else ``None``. States of a level depend only on earlier
        levels, so back-substitution solves the equilibrium exactly, one level at a time. Cost
        :math:`O(n^2)`.
    """
    A = _as_matrix(A)
    tol = check_real("tol", tol, 0.0)
    n = A.shape[0]
    dep = np.abs(A) > tol
    act = None if activation is None else get_activation(activation)
    if act is None or act.componentwise:
        return _kahn_levels(dep)
    starts, stops, _, _ = _units(act, n)
    st = np.asarray(starts, dtype=np.intp)
    if n == 0:
        return []
    udep = np.logical_or.reduceat(np.logical_or.reduceat(dep, st, axis=0), st, axis=1)
    ulev = _kahn_levels(udep)
    if ulev is None:
        return None
    return [
        np.concatenate([np.arange(starts[u], stops[u]) for u in lev]) for lev in ulev
    ]


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
        weighted inf-norm), ``"mu_inf"`` (:math:`\\mu_\\infty(A\\,\\mathrm{diag}(\\gamma)) < 1`
        [NEMON], averaged iteration), or ``None``.
    value : float
        The certified quantity (0 for ``"dag"``; :math:`\\lambda_{PF}` when none holds).
    contraction : float
        Contraction factor of the iteration the certificate selects (Picard, or averaged with
        ``alpha`` for ``"mu_inf"``); ``inf`` when none holds.
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
    r"""NE-MON step and contraction factor for :math:`\mu_\infty(A) < 1` (theory §2).

    Returns
    -------
    alpha, c : float
        :math:`\alpha = 1/(1 + \max_i \max(-a_{ii}, 0))` and
        :math:`c = 1 - (1 - \max(\mu_\infty(A), 0))\,\alpha`, the inf-norm contraction factor
        of :math:`x \leftarrow (1-\alpha)x + \alpha\phi(Ax + b)` for slopes of
        :math:`\phi` in [0, 1].
    """
    A = _as_matrix(A)
    neg = float(np.maximum(-np.diag(A), 0).max(initial=0.0))
    alpha = 1.0 / (1.0 + neg)
    c = 1.0 - (1.0 - max(mu_inf(A), 0.0)) * alpha
    return alpha, c


def is_well_posed(A, activation="relu") -> WellPosedness:
    r"""Check the sufficient well-posedness conditions of theory §2 in order of cost.

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
    Order: DAG structure (exact, [IDL Thm 2.7]);
    :math:`\|\mathrm{diag}(\gamma)|A|\|_\infty < 1` (componentwise maps);
    :math:`\lambda_{PF}(\mathrm{diag}(\gamma)|A|) < 1` or :math:`\lambda_{PF}(N(A,\gamma)) < 1`
    [IDL Thm 2.2, Thm 2.5]; then, for componentwise monotone maps with slopes in
    :math:`[0, \gamma_j]`, :math:`\mu_\infty(A\Gamma) < 1` with :math:`\Gamma =
    \mathrm{diag}(\gamma)` [NEMON] (write :math:`x = \Gamma y`, so :math:`y = \psi(A\Gamma y + b)`
    with slopes of :math:`\psi` in [0, 1]). This last test allows very negative diagonals.
    """
    A = _as_matrix(A)
    act = get_activation(activation)
    if dag_levels(A, activation=act) is not None:
        return WellPosedness(True, "dag", 0.0, 0.0)
    G = block_gain_matrix(A, act)
    row = float(G.sum(axis=1).max(initial=0.0))
    if act.componentwise and row < 1:
        return WellPosedness(True, "inf_norm", row, row)
    lam = _spectral_radius_nonneg(G)
    if lam < 1:
        return WellPosedness(True, "pf", lam, lam)
    if act.componentwise:
        AG = A * act.state_lipschitz(A.shape[0])[None, :]
        mu = mu_inf(AG)
        if mu < 1:
            alpha, c = averaged_step(AG)
            return WellPosedness(True, "mu_inf", mu, c, alpha)
    return WellPosedness(False, None, lam, np.inf)


# ----------------------------------------------------------------------------------------------
# projection onto the inf-norm ball (theory §3)
# ----------------------------------------------------------------------------------------------
def project_inf_norm_ball(A, kappa, method: str = "sort", tol: float = 1e-12,
                          max_iter: int = 100):
    r"""Euclidean projection of ``A`` onto :math:`\{A : \|A\|_\infty \le \kappa\}` [IDL §6.2].

    The problem

    .. math:: \min_{A'} \tfrac12\|A' - A\|_F^2 \quad \text{s.t.} \quad
              \textstyle\sum_j |A'_{ij}| \le \kappa_i \ \ \forall i

    is separable across rows: each row :math:`a` is projected onto the l1 ball of radius
    :math:`\kappa_i`, i.e. soft-thresholded, :math:`a \mapsto \mathrm{sign}(a)\max(|a| -
    \theta, 0)`, with :math:`\theta \ge 0` the root of :math:`\sum_j \max(|a_j| - \theta, 0) =
    \kappa_i` (:math:`\theta = 0` for rows already inside; theory §3, eq. (8)).

    Parameters
    ----------
    A : array of shape (n, d)
        Rows to project (NumPy or CuPy; float32 stays float32, integers become float64).
    kappa : float or array of shape (n,)
        Radius, one for all rows or one per row, finite and :math:`\ge 0`.
    method : {"sort", "bisection"}
        ``"sort"`` (default): exact (Duchi et al. 2008), all rows at once with one row-wise
        sort and one cumulative sum (:func:`_project_l1_rows`, the projection the solvers use
        in their inner loops); rows inside the ball (their l1 norm, summed in decreasing order
        of magnitude, at most :math:`\kappa_i`) come back unchanged bit for bit.
        ``"bisection"``: the paper's vectorized bisection on :math:`\theta` over
        :math:`[0, \max_j |a_j|]`, stopped when the bracket is below ``tol`` times
        :math:`\max_j|a_j|`; it returns the feasible end of the bracket, so rows never leave
        the ball. Keep the default unless you want the paper's algorithm.
    tol : float, default=1e-12
        Relative bracket width for ``"bisection"`` (floored at 4 machine epsilons of the
        dtype).
    max_iter : int, default=100
        Bisection steps at most (a ``ConvergenceWarning`` is raised if the bracket is still
        wider than ``tol``).

    Returns
    -------
    array of shape (n, d), in the namespace of ``A``
        A new array (never ``A`` itself).
    """
    xp = get_namespace(A)
    if xp is np:
        A = np.asarray(A)
    if getattr(A, "ndim", None) != 2:
        raise ValueError(f"A must be a 2-D array; got shape {getattr(A, 'shape', None)}")
    if A.dtype.kind not in "fiub":
        raise ValueError(f"A must be a real numeric array; got dtype {A.dtype}")
    check_finite("A", A, xp)
    check_choice("method", method, ("sort", "bisection"))
    if method == "bisection":
        check_tol(tol)
        check_max_iter(max_iter)
    n, d = A.shape
    k_np = check_kappa(kappa, n)
    dtype = A.dtype if A.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    A = A.astype(dtype, copy=False)
    if method == "sort":
        return _project_l1_rows(A, k_np if k_np.ndim else float(k_np), xp=xp)
    absA = xp.abs(A)
    kap = xp.asarray(k_np, dtype=dtype)
    outside = absA.sum(axis=1) > kap
    n_out = int(outside.sum())
    if n_out == 0:
        return A.copy()
    if n_out == n:
        idx, sub, rowsA, ksub = None, absA, A, kap
    else:
        idx = xp.flatnonzero(outside)
        sub, rowsA = absA[idx], A[idx]
        ksub = kap[idx] if kap.ndim else kap
    if ksub.ndim == 0:
        ksub = xp.full(sub.shape[0], float(k_np), dtype=dtype)
    theta = _theta_bisection(sub, ksub, xp, float(tol), int(max_iter))
    # soft thresholding a - clip(a, -theta, theta) = sign(a) max(|a| - theta, 0)
    th = theta[:, None]
    shrunk = xp.maximum(rowsA, -th)
    xp.minimum(shrunk, th, out=shrunk)
    xp.subtract(rowsA, shrunk, out=shrunk)
    if idx is None:
        return shrunk
    out = A.copy()
    out[idx] = shrunk
    return out


#: Arrays with at most this many entries are projected without first finding the rows outside
#: the ball: every row is sorted (rows inside get the threshold 0). Above it, the row norms are
#: bounded first and only the rows that may lie outside are sorted when they are at most two
#: thirds of them. Both ways give the same numbers; this only trades a matrix-vector product
#: against sorting rows needlessly (benchmarks/bench_projection.py, the small-array table).
_SORT_ALL_SIZE = 1024


@functools.lru_cache(maxsize=32)
def _row_constants(d: int, dtype) -> tuple:
    r"""For rows of ``d`` entries of ``dtype``: the divisors ``1, 2, ..., d`` and the weights
    ``1 + 2 d eps`` (read-only; shared by every call with that width and dtype) whose product
    with a row of magnitudes bounds, above its rounding in any summation order, the row's l1
    norm summed in decreasing order (:func:`_project_l1_rows`): a sum of d nonnegative terms
    in any order, with or without fused multiply-adds, is within a relative
    :math:`d\,\mathrm{eps}/2` of the exact one (to first order), so the two sums differ by
    less than :math:`d\,\mathrm{eps}`."""
    div = np.arange(1, d + 1, dtype=dtype)
    weights = np.full(d, 1.0 + 2.0 * d * float(np.finfo(dtype).eps), dtype=dtype)
    div.flags.writeable = weights.flags.writeable = False
    return div, weights


def _project_l1_rows(V, kappa, out=None, xp=np):
    r"""Project every row of ``V`` onto the l1 ball of radius :math:`\kappa` (theory §3).

    The exact soft threshold of eq. (8) with, per row,

    .. math:: \theta = \max\Big(0,\ \max_{1 \le j \le d} \frac{c_j - \kappa}{j}\Big),
              \qquad c_j = \textstyle\sum_{k \le j} s_k ,

    where :math:`s_1 \ge s_2 \ge \dots \ge s_d` are the row's magnitudes sorted in decreasing
    order (Duchi et al. 2008). The root :math:`\theta^*` of eq. (8) bounds every term (the
    :math:`j` largest magnitudes less :math:`\theta^*` sum to at most :math:`\kappa`), with
    equality at :math:`j` = the number of entries above :math:`\theta^*`; so the maximum is
    :math:`\theta^*` for a row outside the ball and :math:`\le 0` for a row inside, whose
    :math:`\theta = 0` leaves it unchanged bit for bit (signed zeros too). "Inside" means
    :math:`c_d \le \kappa`: the l1 norm summed in decreasing order, which for a row on the
    sphere can differ from ``abs(v).sum()`` by an ulp.

    This is the one implementation of the projection: the public
    :func:`project_inf_norm_ball` validates its input and calls it, and the block solvers call
    it directly in their inner loops (the ADMM z-update of :mod:`.blocks.ab_mm` thousands of
    times per fit on arrays of a few hundred entries), so it does no checks and as few array
    operations as it can: the magnitudes are negated, sorted ascending in place and summed
    over contiguous rows, which gives :math:`-c_j` exactly (negation is exact), hence
    :math:`-\theta` as a minimum. Small arrays sort every row; larger ones first bound the row
    norms and, when at most two thirds of the rows may lie outside, sort only those
    (:data:`_SORT_ALL_SIZE`; the results are the same either way).

    Parameters
    ----------
    V : array of shape (n, d), float32 or float64
        The rows, finite (not checked). May be a view, e.g. the first columns of a wider
        array.
    kappa : float or array of shape (n,)
        The radius, one for all rows or one per row, :math:`\ge 0` (not checked).
    out : array of shape (n, d), optional
        Where to write the result; pass ``V`` itself to project in place (what the solvers'
        inner loops do). By default a new array.
    xp : module, default=numpy
        The array namespace of ``V`` (NumPy or CuPy).

    Returns
    -------
    array of shape (n, d)
        ``out`` when given, else a new array.
    """
    n, d = V.shape
    if d == 0:
        return V.copy() if out is None else out
    if getattr(kappa, "ndim", 0):  # one radius per row: a column
        kappa = xp.reshape(xp.asarray(kappa, dtype=V.dtype), (n, 1))
    if n * d <= _SORT_ALL_SIZE:
        return _soft_threshold(V, kappa, out, xp)
    # a row whose norm, enlarged by its rounding in any summation order, is at most kappa has
    # c_d <= kappa (theta = 0): only the others can move
    buf = xp.abs(V)
    near = buf @ xp.asarray(_row_constants(d, V.dtype)[1]) > (
        kappa[:, 0] if getattr(kappa, "ndim", 0) else kappa)
    k = int(xp.count_nonzero(near))
    if 3 * k > 2 * n:
        return _soft_threshold(V, kappa, out, xp, buf)
    if out is None:
        out = buf
    if out is not V:
        out[...] = V
    if k:
        rows = xp.flatnonzero(near)
        out[rows] = _soft_threshold(V[rows], kappa[rows] if getattr(kappa, "ndim", 0) else kappa,
                                    None, xp)
    return out


def _soft_threshold(V, kappa, out, xp, buf=None):
    r"""The rows ``V`` (at least one column) soft-thresholded at the :math:`\theta` of
    :func:`_project_l1_rows` (``kappa`` a number or a column), into ``out`` (None: into
    ``buf``, an array of V's shape to overwrite, or a new one)."""
    s = xp.copysign(V, -1.0) if buf is None else xp.copysign(V, -1.0, out=buf)  # -|v|
    s.sort(axis=1)  # -s_1 <= -s_2 <= ...
    if xp is np:  # the ufuncs' methods: np.cumsum and ndarray.min without their wrappers
        np.add.accumulate(s, axis=1, out=s)  # -c_j
        s += kappa
        s /= _row_constants(V.shape[1], V.dtype)[0]  # -(c_j - kappa) / j
        neg_theta = np.minimum.reduce(s, axis=1, initial=0.0)  # -theta, clamped at 0
    else:
        s = xp.cumsum(s, axis=1)
        s += kappa
        s /= xp.asarray(_row_constants(V.shape[1], V.dtype)[0])
        neg_theta = xp.minimum(s.min(axis=1), 0.0)
    r = xp.abs(V, out=s)
    r += neg_theta[:, None]
    xp.maximum(r, 0.0, out=r)
    return xp.copysign(r, V, out=r if out is None else out)


def _theta_bisection(absA, kappa, xp, tol, max_iter):
    """The paper's vectorized bisection on θ over [0, max_j |a_j|]; returns the feasible end."""
    lo = xp.zeros(absA.shape[0], dtype=absA.dtype)
    hi = absA.max(axis=1)
    # a bracket cannot shrink below a few ulps of max|a| (float32: tol is floored at 4 eps)
    tol = max(tol, 4 * float(np.finfo(absA.dtype).eps))
    width = tol * hi
    buf = xp.empty_like(absA)
    for _ in range(max_iter):
        mid = 0.5 * (lo + hi)
        xp.subtract(absA, mid[:, None], out=buf)
        xp.maximum(buf, 0, out=buf)
        above = buf.sum(axis=1) > kappa
        lo = xp.where(above, mid, lo)
        hi = xp.where(above, hi, mid)
        if bool(((hi - lo) <= width).all()):
            break
    else:
        gap = float(((hi - lo) / xp.maximum(width, xp.finfo(absA.dtype).tiny)).max())
        _warn_convergence(
            f"project_inf_norm_ball(method='bisection') stopped at max_iter={max_iter} with a "
            f"bracket {gap:.3g} times wider than tol={tol:g}; the result is feasible but not "
            "the exact projection", stacklevel=3)
    return hi


# ----------------------------------------------------------------------------------------------
# projection onto {mu_inf(A) <= gamma} (theory §2) [NEMON]
# ----------------------------------------------------------------------------------------------
def _check_gamma_rows(gamma, n: int) -> np.ndarray:
    try:
        g = np.asarray(gamma, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"gamma must be a real number or array; got gamma={gamma!r}") from None
    if g.ndim > 1 or (g.ndim == 1 and g.shape[0] != n):
        raise ValueError(
            f"gamma must be a scalar or have one entry per row ({n}); got shape {g.shape}"
        )
    if not np.all(np.isfinite(g)):
        raise ValueError(f"gamma must be finite; got gamma={gamma!r}")
    return np.broadcast_to(g, (n,))


def project_mu_inf(A, gamma):
    r"""Euclidean projection onto :math:`\{A : \mu_\infty(A) \le \gamma\}` [NEMON], theory §2.

    .. math::

        \min_{A'}\ \tfrac12\|A' - A\|_F^2 \quad\text{s.t.}\quad
        a'_{ii} + \sum_{j \ne i}|a'_{ij}| \le \gamma_i \quad \forall i .

    The problem separates across rows. For a row outside the set, the KKT conditions with a
    multiplier :math:`\theta > 0` give

    .. math:: a'_{ii} = a_{ii} - \theta, \qquad a'_{ij} = \mathrm{sign}(a_{ij})
              \max(|a_{ij}| - \theta, 0)\ (j \ne i),

    with :math:`\theta` the root of the strictly decreasing, piecewise-linear
    :math:`g(\theta) = a_{ii} - \theta + \sum_{j\ne i}(|a_{ij}| - \theta)_+ = \gamma_i` (the
    l1-ball projection of theory §3 with one extra coordinate that is always "active"). With
    :math:`s_1 \ge s_2 \ge \dots` the sorted off-diagonal magnitudes and
    :math:`c_k = \sum_{l \le k} s_l`, the test :math:`(k + 1)s_k > a_{ii} + c_k - \gamma_i`
    holds exactly for :math:`k \le \rho` (its left minus right side is nonincreasing in k), and
    :math:`\theta = (a_{ii} + c_\rho - \gamma_i)/(\rho + 1)`. All rows are processed at once
    (one sort, one cumulative sum). Rows already inside are returned unchanged.

    Parameters
    ----------
    A : array of shape (n, n)
        NumPy or CuPy; float32 stays float32, integers become float64.
    gamma : float or array of shape (n,)
        Bound on the matrix measure, any finite real (one for all rows or one per row);
        :math:`\gamma < 1` certifies well-posedness for slopes in [0, 1] (theory §2).

    Returns
    -------
    array of shape (n, n), in the namespace and floating dtype of ``A``.

    Raises
    ------
    ValueError
        For a non-square, non-numeric or non-finite ``A``, or a bad ``gamma``.
    """
    xp = get_namespace(A)
    if xp is np:
        A = np.asarray(A)
    if getattr(A, "ndim", None) != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"A must be a square 2-D array; got shape {getattr(A, 'shape', None)}")
    if A.dtype.kind not in "fiub":
        raise ValueError(f"A must be a real numeric array; got dtype {A.dtype}")
    dtype = A.dtype if A.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    A = A.astype(dtype, copy=False)
    check_finite("A", A, xp)
    n = A.shape[0]
    g = xp.asarray(_check_gamma_rows(gamma, n), dtype=dtype)
    out = A.copy()
    if n == 0:
        return out
    idx = xp.arange(n)
    d = A[idx, idx]
    absA = xp.abs(A)
    absA[idx, idx] = 0  # the diagonal enters linearly; a zero placeholder never matters
    measure = d + absA.sum(axis=1)
    outside = measure > g
    if not bool(outside.any()):
        return out
    rows = xp.flatnonzero(outside)
    s = -xp.sort(-absA[rows], axis=1)  # descending off-diagonal magnitudes
    css = xp.cumsum(s, axis=1)
    dr, gr = d[rows], g[rows]
    k = xp.arange(1, n + 1, dtype=dtype)
    ok = (k + 1) * s > dr[:, None] + css - gr[:, None]
    # rho = the last k where the test holds (0 when none does)
    anyok = ok.any(axis=1)
    last = n - 1 - xp.argmax(ok[:, ::-1], axis=1)
    rho = xp.where(anyok, last + 1, 0)
    csr = xp.where(rho > 0, css[xp.arange(rows.shape[0]), xp.maximum(rho - 1, 0)], 0)
    theta = (dr + csr - gr) / (rho + 1).astype(dtype)
    sub = A[rows]
    th = theta[:, None]
    shrunk = sub - xp.clip(sub, -th, th)  # sign(a) max(|a| - theta, 0)
    shrunk[xp.arange(rows.shape[0]), rows] = dr - theta
    out[rows] = shrunk
    return out


# ----------------------------------------------------------------------------------------------
# PF rescaling (theory §4) and NE-MON parametrization (theory §2)
# ----------------------------------------------------------------------------------------------
def rescale_to_inf_norm(model):
    r"""Equivalent model with :math:`\|A'\|_\infty < 1`, by the PF diagonal scaling [IDL §2.5].

    With :math:`s = (I - |A|)^{-1} \mathbf 1 \ (\ge 1)` and :math:`S = \mathrm{diag}(s)`:

    .. math:: A' = S^{-1} A S,\quad B' = S^{-1} B,\quad b' = S^{-1} b,\quad C' = C S,\quad
              D' = D,

    so that :math:`\|A'\|_\infty = \max_i (1 - 1/s_i) < 1` (because :math:`|A| s = s -
    \mathbf 1`; theory §4) and the states become :math:`x' = S^{-1}x`. The predictions are
    unchanged because a positively homogeneous componentwise activation commutes with positive
    diagonal scaling. Low-rank factors are rescaled too (:math:`L' = S^{-1}L`, :math:`R' = SR`).

    Parameters
    ----------
    model : ImplicitModel

    Returns
    -------
    ImplicitModel
        In the dtype and array namespace of ``model``.

    Raises
    ------
    IllPosedModelError
        If :math:`\lambda_{PF}(|A|) \ge 1`.
    ValueError
        If the activation is not positively homogeneous and componentwise (tanh, sigmoid,
        softmax).
    """
    act = model.activation
    if not act.positively_homogeneous or not act.componentwise:
        raise ValueError(
            "rescale_to_inf_norm needs a positively homogeneous componentwise activation; "
            f"got activation={act!r}"
        )
    xp = get_namespace(model.A)
    A = _as_matrix(model.A)
    n = A.shape[0]
    lam = _spectral_radius_nonneg(np.abs(A))
    if lam >= 1:
        raise IllPosedModelError(
            f"rescale_to_inf_norm needs lambda_PF(|A|) < 1; got lambda_PF(|A|) = {lam:.6g}"
        )
    s = np.linalg.solve(np.eye(n) - np.abs(A), np.ones(n))
    s = np.maximum(s, 1.0)  # s >= 1 in exact arithmetic
    dt = model.dtype

    def back(M):
        return xp.asarray(M.astype(dt))

    def f64(M):
        return np.asarray(to_numpy(M), dtype=np.float64)

    changes = dict(
        A=back(A * s[None, :] / s[:, None]),
        B=back(f64(model.B) / s[:, None]),
        C=back(f64(model.C) * s[None, :]),
        b=None if model.b is None else back(f64(model.b) / s),
    )
    if getattr(model, "factors", None) is not None:
        L, R = model.factors
        changes["factors"] = (back(f64(L) / s[:, None]), back(f64(R) * s[:, None]))
    return model.replace(**changes)


def nemon_parametrize(T, gamma: float):
    r"""NE-MON parametrization (theory §2, **fix** of the [NEMON] slide):

    .. math:: A = T - \mathrm{diag}(|T|\mathbf 1) + \gamma I .

    Every such A satisfies :math:`\mu_\infty(A) \le \gamma`: row i gives
    :math:`a_{ii} + \sum_{j\ne i}|a_{ij}| = t_{ii} - |t_{ii}| + \gamma \le \gamma`. Conversely
    every A with :math:`\mu_\infty(A) \le \gamma` arises this way (:func:`nemon_parameter`).

    Parameters
    ----------
    T : array of shape (n, n)
        Unconstrained parameter (NumPy or CuPy).
    gamma : float
        Bound on the matrix measure; :math:`\gamma < 1` gives a well-posed model.

    Returns
    -------
    A : array of shape (n, n), the dtype and namespace of ``T``.
    """
    xp = get_namespace(T)
    if xp is np:
        T = np.asarray(T)
    if getattr(T, "dtype", None) is not None and T.dtype.kind in "iub":
        T = T.astype(np.float64)
    if getattr(T, "ndim", None) != 2 or T.shape[0] != T.shape[1]:
        raise ValueError(f"T must be a square 2-D array; got shape {getattr(T, 'shape', None)}")
    check_finite("T", T, xp)
    gamma = check_real("gamma", gamma)
    n = T.shape[0]
    return T - xp.diag(xp.abs(T).sum(axis=1)) + gamma * xp.eye(n, dtype=T.dtype)


def nemon_parameter(A, gamma: float) -> np.ndarray:
    r"""A parameter T with ``nemon_parametrize(T, gamma) == A`` (the inverse map).

    Off the diagonal :math:`t_{ij} = a_{ij}`; on it, with :math:`r_i = a_{ii} - \gamma +
    \sum_{j \ne i}|a_{ij}| \le 0`, :math:`t_{ii} = r_i / 2` (then :math:`t_{ii} - |t_{ii}| =
    r_i`).

    Raises
    ------
    ValueError
        If :math:`\mu_\infty(A) > \gamma` (no such T exists).
    """
    A = _as_matrix(A)
    gamma = check_real("gamma", gamma)
    d = np.diag(A)
    r = d - gamma + np.abs(A).sum(axis=1) - np.abs(d)
    if r.size and r.max() > 1e-12 * max(1.0, abs(gamma)):
        raise ValueError(
            f"nemon_parameter needs mu_inf(A) <= gamma; got mu_inf(A) = {mu_inf(A):.6g} > "
            f"gamma = {gamma:.6g}"
        )
    T = A.copy()
    np.fill_diagonal(T, np.minimum(r, 0.0) / 2)
    return T
