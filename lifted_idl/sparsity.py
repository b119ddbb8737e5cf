r"""Feature selection, state reduction, low-rank compression and model-error bounds [IDL §5].

Implements theory §5 on a given :class:`~lifted_idl.model.ImplicitModel`:

* :func:`active_features`, :func:`drop_features`: zero columns of :math:`[B; D]` mean unused
  inputs [IDL §5.1];
* :func:`reduce_model`: states with a zero row of :math:`(A, B)` are constants and states no
  output depends on are dead; both are removed, to a fixed point [IDL §5.2];
* :func:`approximation_error_bound`: the corrected [IDL Thm 5.1] bound on the state error
  caused by replacing A with an approximation [IDL §5.4];
* :func:`low_rank_compress`: a truncated SVD :math:`A \approx L R^\top`, scaled to stay
  well-posed, solved by the k-dimensional iteration of [IDL §5.3];
* :func:`frank_wolfe_path`, :func:`plot_frank_wolfe_path`: the sparsity path of theory §7 over
  l1-ball budgets, Frank–Wolfe blocks inside anchored BCD rounds, warm-started;
* :func:`group_lasso_path`: the path of the group penalty [IDL (5.1)] over decreasing
  strengths, its two block views inside the same anchored rounds (feature selection, §5.1).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np

from ._array import to_numpy
from .activations import Blockwise
from .exceptions import BoundConditionError, IllPosedModelError
from .model import ImplicitModel
from .wellposedness import pf_eigenvalue, project_inf_norm_ball

__all__ = [
    "active_features",
    "drop_features",
    "reduce_model",
    "ApproximationBound",
    "approximation_error_bound",
    "LowRankReport",
    "low_rank_compress",
    "PathPoint",
    "frank_wolfe_path",
    "plot_frank_wolfe_path",
    "group_lasso_path",
]


def _check_model(model):
    if not isinstance(model, ImplicitModel):
        raise TypeError(f"model must be an ImplicitModel; got {type(model).__name__}")
    return model


def _check_tol(tol):
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not np.isfinite(tol) \
            or tol < 0:
        raise ValueError(f"tol must be a finite real number >= 0; got tol={tol!r}")
    return float(tol)


def _np64(M):
    return None if M is None else np.asarray(to_numpy(M), dtype=np.float64)


# ----------------------------------------------------------------------------------------------
# features [IDL §5.1]
# ----------------------------------------------------------------------------------------------
def active_features(model: ImplicitModel, tol: float = 0.0) -> np.ndarray:
    r"""Indices of the inputs the model reads: the nonzero columns of :math:`[B; D]`.

    A zero column j of :math:`\begin{pmatrix} B \\ D \end{pmatrix}` means input :math:`u_j`
    plays no role in the prediction rule [IDL §5.1, (5.1)] (theory §5).

    Parameters
    ----------
    model : ImplicitModel
    tol : float, default=0.0
        Entries with :math:`|\cdot| \le` ``tol`` count as zero.

    Returns
    -------
    ndarray of int, sorted: the j with :math:`\max(|B_{:j}|, |D_{:j}|) >` ``tol``.
    """
    _check_model(model)
    tol = _check_tol(tol)
    BD = np.vstack([_np64(model.B), _np64(model.D)])
    return np.flatnonzero((np.abs(BD) > tol).any(axis=0))


def drop_features(model: ImplicitModel, keep) -> ImplicitModel:
    r"""The model restricted to the inputs ``keep`` (columns of B and D), [IDL §5.1].

    The new model reads ``U[:, keep]``. It predicts exactly as the original on ``U`` when the
    dropped columns of :math:`[B; D]` are zero (see :func:`active_features`); otherwise it
    predicts as the original on inputs whose dropped features are zero.

    Parameters
    ----------
    model : ImplicitModel
    keep : array of int, or boolean mask of length p
        Features to keep, in the order they appear in the new input.

    Returns
    -------
    ImplicitModel with ``p' = len(keep)`` features.
    """
    _check_model(model)
    p = model.n_features
    k = np.asarray(keep)
    if k.ndim != 1:
        raise ValueError(f"keep must be 1-D (indices or a boolean mask); got shape {k.shape}")
    if k.dtype == bool:
        if k.shape[0] != p:
            raise ValueError(f"boolean keep must have length p={p}; got length {k.shape[0]}")
        idx = np.flatnonzero(k)
    else:
        if k.size and k.dtype.kind not in "iu":
            raise ValueError(f"keep must hold integer indices or booleans; got dtype {k.dtype}")
        idx = k.astype(int)
        if idx.size and (idx.min() < 0 or idx.max() >= p):
            raise ValueError(f"keep indices must lie in [0, {p}); got keep={keep!r}")
        if np.unique(idx).size != idx.size:
            raise ValueError(f"keep has repeated indices; got keep={keep!r}")
    B, D = to_numpy(model.B), to_numpy(model.D)
    return ImplicitModel(model.A, B[:, idx], model.C, D[:, idx], b=model.b, c=model.c,
                         activation=model.activation, factors=model.factors)


# ----------------------------------------------------------------------------------------------
# states [IDL §5.2]
# ----------------------------------------------------------------------------------------------
def _state_activations(act, n):
    """Per state: its block's activation, and whether it may be removed (componentwise)."""
    if isinstance(act, Blockwise):
        blocks = list(act.blocks)
    else:
        blocks = [(n, act)]
    block_of = np.concatenate([np.full(s, k, dtype=int) for k, (s, _) in enumerate(blocks)]
                              + [np.zeros(0, dtype=int)])
    removable = np.array([blocks[k][1].componentwise for k in block_of], dtype=bool)
    return blocks, block_of, removable


def reduce_model(model: ImplicitModel, tol: float = 0.0, *, return_kept: bool = False
                 ) -> ImplicitModel | tuple[ImplicitModel, np.ndarray]:
    r"""An equivalent model with fewer states: constant and dead states removed [IDL §5.2].

    Two reductions are applied in turn until neither removes a state (theory §5):

    1. **Constant states.** If row i of :math:`(A, B)` is zero, then
       :math:`x_i = \phi_i(b_i)` for every input (:math:`\phi_i(0)` without bias; the
       theory's zero rows of :math:`(A, B, b)`). The state is removed and its constant value is
       *folded* into the biases of the states and outputs that read it:
       :math:`b_j \mathrel{+}= A_{ji}\,\phi_i(b_i)`, :math:`c \mathrel{+}= C_{:i}\,\phi_i(b_i)`.
       So states are removed whatever :math:`\phi(0)` is (sigmoid's 1/2 included); when
       :math:`\phi_i(b_i) = 0` (ReLU/tanh without bias) nothing is added. Folding can make
       further rows zero, hence the iteration.
    2. **Dead states.** A state is live if an output reads it (:math:`C_{:i} \neq 0`) or a live
       state reads it (:math:`A_{ji} \neq 0`, :math:`j \ne i` live). The others — zero
       columns of :math:`[A; C]` and, more generally, groups of states only read by each
       other — cannot affect the prediction and are removed.

    Live states never read dead ones, so the reduced state solves the reduced equation
    :math:`x_1 = \phi(A_{11} x_1 + B_1 u + b_1)`; :math:`A_{11}` is a principal submatrix, so
    :math:`\lambda_{PF}(|A_{11}|) \le \lambda_{PF}(|A|)` and :math:`\|A_{11}\|_\infty \le
    \|A\|_\infty`: well-posedness is kept. States inside non-componentwise blocks of a
    :class:`~lifted_idl.activations.Blockwise` map (softmax) are never removed, since their
    value depends on their whole block. Low-rank factors are kept (rows ``L[kept]``,
    ``R[kept]``).

    Parameters
    ----------
    model : ImplicitModel
    tol : float, default=0.0
        Entries with :math:`|\cdot| \le` ``tol`` count as zero when deciding which states to
        remove. With ``tol = 0`` the reduced model is exactly equivalent; with ``tol > 0`` it
        ignores the small entries of the removed rows and columns (an approximation).
    return_kept : bool, default=False
        Also return the indices of the kept states (in the original numbering).

    Returns
    -------
    ImplicitModel, or (ImplicitModel, ndarray of int) with ``return_kept=True``.
    """
    _check_model(model)
    tol = _check_tol(tol)
    A, B, C, D = (_np64(getattr(model, k)) for k in "ABCD")
    n, q = A.shape[0], C.shape[0]
    b = np.zeros(n) if model.b is None else _np64(model.b).copy()
    c = np.zeros(q) if model.c is None else _np64(model.c).copy()
    b_changed = c_changed = False
    blocks, block_of, removable = _state_activations(model.activation, n)
    keep = np.ones(n, dtype=bool)
    nzA, nzB, nzC = np.abs(A) > tol, np.abs(B) > tol, np.abs(C) > tol
    while True:
        changed = False
        # 1. constant states, folded into the biases
        while True:
            const = keep & removable & ~(nzA[:, keep].any(axis=1)) & ~nzB.any(axis=1)
            if not const.any():
                break
            readers = keep & ~const
            for i in np.flatnonzero(const):
                act_i = blocks[block_of[i]][1]
                val = float(np.asarray(act_i(np.array([[b[i]]])))[0, 0])
                if val != 0.0:
                    b[readers] += A[readers, i] * val
                    c += C[:, i] * val
                    b_changed |= bool(np.any(A[readers, i] != 0))
                    c_changed |= bool(np.any(C[:, i] != 0))
            keep &= ~const
            changed = True
        # 2. dead states: not reachable backwards from the outputs
        live = keep & (nzC.any(axis=0) | ~removable)
        while True:
            reads = keep & nzA[live].any(axis=0)
            new = live | reads
            if (new == live).all():
                break
            live = new
        dead = keep & ~live
        if dead.any():
            keep &= ~dead
            changed = True
        if not changed:
            break
    kept = np.flatnonzero(keep)
    dt = model.dtype
    act = model.activation
    if isinstance(act, Blockwise):
        counts = np.bincount(block_of[kept], minlength=len(blocks))
        act = Blockwise([(int(counts[k]), blocks[k][1]) for k in range(len(blocks))])
    new_b = None if (model.b is None and not b_changed) else b[kept].astype(dt)
    new_c = None if (model.c is None and not c_changed) else c.astype(dt)
    factors = None
    if model.factors is not None:
        L, R = (np.asarray(to_numpy(F)) for F in model.factors)
        factors = (L[kept], R[kept])
    reduced = ImplicitModel(
        A[np.ix_(kept, kept)].astype(dt), B[kept].astype(dt), C[:, kept].astype(dt),
        D.astype(dt), b=new_b, c=new_c, activation=act, factors=factors,
    )
    return (reduced, kept) if return_kept else reduced


# ----------------------------------------------------------------------------------------------
# model error [IDL §5.4, Thm 5.1]
# ----------------------------------------------------------------------------------------------
@dataclass
class ApproximationBound:
    r"""The bound of :func:`approximation_error_bound`.

    Attributes
    ----------
    gain : ndarray of shape (n, n)
        :math:`K = (I - \Gamma(|A^0| + E))^{-1}\,\Gamma E \ge 0`, so that
        :math:`|x - x^0| \le K |x^0|` for every input.
    E : ndarray of shape (n, n)
        :math:`|A - A^0|`.
    pf_value : float
        :math:`\lambda_{PF}(\Gamma(|A^0| + E)) < 1`, the condition of the theorem.
    X0 : ndarray of shape (m, n) or None
        The original model's states for the given U.
    state_bound : ndarray of shape (m, n) or None
        :math:`|x^0| K^\top` per sample (rows): bound on :math:`|x - x^0|`.
    output_bound : ndarray of shape (m, q) or None
        ``state_bound @ |C|.T``: bound on :math:`|\hat y - \hat y^0|`.
    """

    gain: np.ndarray = field(repr=False)
    E: np.ndarray = field(repr=False)
    pf_value: float
    X0: np.ndarray | None = field(default=None, repr=False)
    state_bound: np.ndarray | None = field(default=None, repr=False)
    output_bound: np.ndarray | None = field(default=None, repr=False)


def approximation_error_bound(model: ImplicitModel, A_approx, U=None) -> ApproximationBound:
    r"""Bound the state and output error of replacing the model's A by ``A_approx``.

    The corrected [IDL Thm 5.1] (theory §5, **fix**): let :math:`A^0` be the model's A,
    :math:`A` = ``A_approx`` and :math:`E = |A - A^0|`. If :math:`\phi` is CONE with slopes in
    :math:`[0, \gamma_i]`, :math:`\Gamma = \mathrm{diag}(\gamma)` and
    :math:`\lambda_{PF}(\Gamma(|A^0| + E)) < 1`, then for every input

    .. math:: |x - x^0| \le \big(I - \Gamma(|A^0| + E)\big)^{-1} \Gamma E\, |x^0|,
              \qquad |\hat y - \hat y^0| \le |C|\,|x - x^0|,

    where :math:`x^0`, :math:`x` solve the equilibria with :math:`A^0` and :math:`A` (same
    B, b, C, D, c). For ReLU, leaky ReLU and tanh (:math:`\Gamma = I`) this is exactly
    :math:`(I - |A^0| - E)^{-1} E |x^0|`. Proof: :math:`|x - x^0| \le \Gamma|A x - A^0 x^0|
    \le \Gamma|A||x - x^0| + \Gamma E |x^0|` and :math:`|A| \le |A^0| + E`; then use
    :math:`(I - M)^{-1} = \sum_k M^k \ge 0` for :math:`M \ge 0`, :math:`\lambda_{PF}(M) < 1`.
    The condition also certifies that the approximate model is well-posed.

    Parameters
    ----------
    model : ImplicitModel
        The original model (:math:`A^0`); componentwise activation.
    A_approx : array of shape (n, n)
        The approximation A (low rank, sparsified, quantised, ...).
    U : array of shape (m, p), optional
        Inputs at which to evaluate the per-sample bound.

    Returns
    -------
    ApproximationBound

    Raises
    ------
    BoundConditionError
        If :math:`\lambda_{PF}(\Gamma(|A^0| + E)) \ge 1`.
    """
    _check_model(model)
    act = model.activation
    if not act.componentwise:
        raise ValueError(
            f"approximation_error_bound needs a componentwise (CONE) activation; got {act!r}"
        )
    A0 = _np64(model.A)
    n = A0.shape[0]
    Aap = np.asarray(to_numpy(A_approx))
    if Aap.dtype.kind not in "fiub" or Aap.shape != (n, n):
        raise ValueError(
            f"A_approx must be a real array of shape ({n}, {n}); got shape {Aap.shape} and "
            f"dtype {Aap.dtype}"
        )
    Aap = Aap.astype(np.float64)
    if not np.all(np.isfinite(Aap)):
        raise ValueError("A_approx contains NaN or inf")
    gamma = act.state_lipschitz(n)
    E = np.abs(Aap - A0)
    M = gamma[:, None] * (np.abs(A0) + E)
    lam = float(np.max(np.abs(np.linalg.eigvals(M)), initial=0.0))
    if lam >= 1:
        raise BoundConditionError(
            "approximation_error_bound needs lambda_PF(diag(gamma)(|A0| + E)) < 1 with "
            f"E = |A_approx - A0|; got lambda_PF = {lam:.6g} >= 1 (max |A_approx - A0| = "
            f"{E.max(initial=0.0):.3g})"
        )
    K = np.linalg.solve(np.eye(n) - M, gamma[:, None] * E)
    np.maximum(K, 0.0, out=K)  # K >= 0 exactly; remove rounding-level negatives
    res = ApproximationBound(gain=K, E=E, pf_value=lam)
    if U is not None:
        X0 = np.asarray(to_numpy(model.equilibrium(U)), dtype=np.float64)
        res.X0 = X0
        res.state_bound = np.abs(X0) @ K.T
        res.output_bound = res.state_bound @ np.abs(_np64(model.C)).T
    return res


# ----------------------------------------------------------------------------------------------
# low rank [IDL §5.3]
# ----------------------------------------------------------------------------------------------
@dataclass
class LowRankReport:
    r"""What :func:`low_rank_compress` did.

    Attributes
    ----------
    rank : int
    criterion : str
        ``"inf_norm"``: scaled so that :math:`\|\Gamma L R^\top\|_\infty \le` ``target``;
        ``"pf"``: scaled so that :math:`\lambda_{PF}(\Gamma|L R^\top|) \le` ``target``
        (the block matrix :math:`N(A, \gamma)` for blockwise maps).
    target : float
        The bound enforced (< 1, so the compressed model is well-posed).
    scale : float
        Factor in (0, 1] applied to the truncated SVD (1: no scaling needed).
    singular_values : ndarray of shape (n,)
        Of the original A.
    spectral_error : float
        :math:`\|A^0 - L R^\top\|_2` after scaling (:math:`\sigma_{k+1}` when ``scale = 1``).
    inf_norm : float
        :math:`\|L R^\top\|_\infty`.
    pf_value : float
        :math:`\lambda_{PF}` of the compressed A (with the activation's gains).
    bound : ApproximationBound or None
        :func:`approximation_error_bound` for the compressed A, when its condition holds.
    bound_note : str
        Why ``bound`` is None, or ``"ok"``.
    """

    rank: int
    criterion: str
    target: float
    scale: float
    singular_values: np.ndarray = field(repr=False)
    spectral_error: float
    inf_norm: float
    pf_value: float
    bound: ApproximationBound | None = field(repr=False)
    bound_note: str


def low_rank_compress(model: ImplicitModel, rank: int, U=None, *, kappa: float | None = None
                      ) -> tuple[ImplicitModel, LowRankReport]:
    r"""Rank-``rank`` model :math:`A \approx L R^\top` from a truncated SVD [IDL §5.3].

    With :math:`A^0 = \sum_i \sigma_i u_i v_i^\top`, take :math:`L = U_k \Sigma_k^{1/2} s`,
    :math:`R = V_k \Sigma_k^{1/2}` (k = ``rank``) and the largest :math:`s \in (0, 1]` that
    keeps the compressed model well-posed (theory §5):

    * ``criterion="inf_norm"`` when ``kappa`` is given or :math:`\|\Gamma A^0\|_\infty < 1`:
      :math:`\|\Gamma L R^\top\|_\infty \le` ``kappa`` (default: the original's
      :math:`\|\Gamma A^0\|_\infty`), the convex training condition of theory §1;
    * otherwise ``criterion="pf"`` when :math:`0 < \lambda_{PF}(\Gamma|A^0|) < 1`:
      :math:`\lambda_{PF}(\Gamma|L R^\top|) \le \lambda_{PF}(\Gamma|A^0|)` [IDL Thm 2.2]
      (:math:`\lambda_{PF}` is positively homogeneous, so s is exact).

    (:math:`\Gamma = \mathrm{diag}(\gamma)`, the activation's slopes; I for ReLU.) The
    compressed model is built with :meth:`ImplicitModel.from_low_rank`, so its default solve
    iterates in :math:`\mathbb R^k` at :math:`O(mnk)` per step (``method="lowrank"``); the
    iterates equal Picard's on the dense :math:`L R^\top`.

    Parameters
    ----------
    model : ImplicitModel
    rank : int
        Target rank, ``1 <= rank <= n``.
    U : array of shape (m, p), optional
        Inputs at which to evaluate the error bound of :func:`approximation_error_bound`.
    kappa : float, optional
        Enforce :math:`\|\Gamma L R^\top\|_\infty \le \kappa` with :math:`0 < \kappa < 1`.

    Returns
    -------
    (ImplicitModel, LowRankReport)

    Raises
    ------
    IllPosedModelError
        If no criterion applies (:math:`\lambda_{PF}(\Gamma|A^0|) \ge 1`, or = 0 with
        :math:`\|\Gamma A^0\|_\infty \ge 1`) and ``kappa`` is not given.
    """
    _check_model(model)
    n = model.n_states
    if isinstance(rank, bool) or not isinstance(rank, numbers.Integral) or not 1 <= rank <= n:
        raise ValueError(f"rank must be an int with 1 <= rank <= n={n}; got rank={rank!r}")
    if kappa is not None:
        if isinstance(kappa, bool) or not isinstance(kappa, numbers.Real) \
                or not 0 < kappa < 1:
            raise ValueError(f"kappa must be a real number in (0, 1); got kappa={kappa!r}")
    act = model.activation
    A0 = _np64(model.A)
    gamma = act.state_lipschitz(n) if act.componentwise else None

    def inf_measure(A):
        return float((gamma[:, None] * np.abs(A)).sum(axis=1).max(initial=0.0))

    def pf_measure(A):
        return pf_eigenvalue(A, act)

    if kappa is not None:
        if not act.componentwise:
            raise ValueError(f"kappa (an inf-norm bound) needs a componentwise activation; "
                             f"got {act!r}")
        criterion, measure, target = "inf_norm", inf_measure, float(kappa)
    elif act.componentwise and inf_measure(A0) < 1:
        criterion, measure, target = "inf_norm", inf_measure, inf_measure(A0)
    else:
        lam0 = pf_measure(A0)
        if not 0 < lam0 < 1:
            raise IllPosedModelError(
                "low_rank_compress needs ||diag(gamma) A||_inf < 1 or 0 < lambda_PF < 1 to "
                f"keep the model well-posed; got lambda_PF = {lam0:.6g}. Pass kappa in (0, 1) "
                "to impose ||diag(gamma) L R^T||_inf <= kappa."
            )
        criterion, measure, target = "pf", pf_measure, lam0
    Us, s, Vt = np.linalg.svd(A0)
    root = np.sqrt(s[:rank])
    L = Us[:, :rank] * root
    R = Vt[:rank].T * root
    cur = measure(L @ R.T)
    scale = 1.0 if cur <= target else target / cur
    Ak = (L * scale) @ R.T
    while measure(Ak) > target:  # rounding: make the bound hold exactly in floating point
        scale *= 1.0 - 4 * np.finfo(float).eps
        Ak = (L * scale) @ R.T
    L = L * scale
    dt = model.dtype
    compressed = ImplicitModel.from_low_rank(
        L.astype(dt), R.astype(dt), model.B, model.C, model.D, b=model.b, c=model.c,
        activation=act,
    )
    bound, note = None, "ok"
    if not act.componentwise:
        note = "the error bound needs a componentwise activation"
    else:
        try:
            bound = approximation_error_bound(model, Ak, U)
        except BoundConditionError as exc:
            note = str(exc)
    report = LowRankReport(
        rank=int(rank), criterion=criterion, target=float(target), scale=float(scale),
        singular_values=s, spectral_error=float(np.linalg.norm(A0 - Ak, 2)),
        inf_norm=float(np.abs(Ak).sum(axis=1).max(initial=0.0)),
        pf_value=float(pf_measure(Ak)), bound=bound, bound_note=note,
    )
    return compressed, report


# ----------------------------------------------------------------------------------------------
# sparsity paths (theory §5 and §7): anchored BCD rounds with sparse blocks, warm-started
# ----------------------------------------------------------------------------------------------
@dataclass
class PathPoint:
    """One point of :func:`frank_wolfe_path` or :func:`group_lasso_path`.

    Attributes
    ----------
    params : dict
        The constraint or penalty of this point: ``{"kappa_c": ..., "kappa_b": ...}`` (None
        where the block is unconstrained) for the Frank–Wolfe path, ``{"alpha": ...}`` for the
        group path.
    model : ImplicitModel
        The fitted model (its A, B, b; C, D, c refitted at the true equilibrium).
    nnz : dict
        Nonzero entries of ``"A"``, ``"B"``, ``"C"``, ``"D"``.
    column_norms : ndarray of shape (p,)
        :math:`\\|[B; D] e_j\\|_2`, the feature weights of [IDL §5.1].
    train_loss : float
        The training loss at the true equilibrium (without penalty).
    objective : float
        The objective the rounds decrease: ``train_loss`` plus the penalty (group path: the
        group penalty and the ridge on C).
    train_score, val_score : float
        :math:`R^2` (regression, averaged over outputs) or accuracy (classification);
        ``val_score`` is None without validation data.
    val_loss : float or None
        The validation loss (half the mean squared error, or the mean cross-entropy).
    n_rounds, n_accepted : int
        Anchored BCD rounds run at this point and how many were accepted.
    fw_iter : dict
        Cumulative Frank–Wolfe iterations along the path up to this point, ``{"cd": ..., "ab":
        ...}`` (zeros for the group path). A (C, D) step adds at most one nonzero to
        ``[C D]``; an (A, B) sweep at most one to every row of A and one to B.
    converged : bool
        Whether the rounds at this point stopped on ``tol`` (not on ``n_rounds``).
    classes : ndarray or None
        The class labels (classification), in the order of the model's outputs.
    """

    params: dict
    model: ImplicitModel
    nnz: dict
    column_norms: np.ndarray
    train_loss: float
    objective: float
    train_score: float
    val_score: float | None
    val_loss: float | None
    n_rounds: int
    n_accepted: int
    fw_iter: dict = field(default_factory=dict)
    converged: bool = False
    classes: np.ndarray | None = None


def _path_data(U, Y, task, U_val, Y_val):
    """Validated arrays, targets as (m, q) (one-hot for classification), the loss and classes."""
    from .losses import SoftmaxCrossEntropy, SquaredLoss

    if task not in ("regression", "classification"):
        raise ValueError(f"task must be 'regression' or 'classification'; got task={task!r}")
    U = np.asarray(U, dtype=np.float64)
    if U.ndim != 2 or U.shape[0] < 2 or not np.all(np.isfinite(U)):
        raise ValueError(f"U must be a finite 2-D array with at least 2 samples; got shape "
                         f"{U.shape}")
    if (U_val is None) != (Y_val is None):
        raise ValueError("pass both U_val and Y_val, or neither; got "
                         f"U_val={'None' if U_val is None else 'array'}, "
                         f"Y_val={'None' if Y_val is None else 'array'}")
    classes = None
    if task == "regression":
        def targets(Y, name, m):
            Y = np.asarray(Y, dtype=np.float64)
            Y = Y[:, None] if Y.ndim == 1 else Y
            if Y.ndim != 2 or Y.shape[0] != m or not np.all(np.isfinite(Y)):
                raise ValueError(f"{name} must be finite with {m} rows; got shape {Y.shape}")
            return Y
        loss = SquaredLoss()
    else:
        y = np.asarray(Y).reshape(-1)
        classes = np.unique(y)
        if classes.size < 2:
            raise ValueError(f"classification needs at least 2 classes in Y; got {classes}")

        def targets(Y, name, m):
            y = np.asarray(Y).reshape(-1)
            if y.shape[0] != m:
                raise ValueError(f"{name} must have {m} labels; got {y.shape[0]}")
            idx = np.searchsorted(classes, y)
            bad = (idx >= classes.size) | (classes[np.minimum(idx, classes.size - 1)] != y)
            if bad.any():
                raise ValueError(f"{name} has labels not seen in Y: {np.unique(y[bad])[:5]}")
            return np.eye(classes.size)[idx]
        loss = SoftmaxCrossEntropy()
    Y = targets(Y, "Y", U.shape[0])
    if U_val is not None:
        U_val = np.asarray(U_val, dtype=np.float64)
        if U_val.ndim != 2 or U_val.shape[1] != U.shape[1] or not np.all(np.isfinite(U_val)):
            raise ValueError(f"U_val must be finite with {U.shape[1]} columns; got shape "
                             f"{U_val.shape}")
        Y_val = targets(Y_val, "Y_val", U_val.shape[0])
    return U, Y, U_val, Y_val, loss, classes


def _score(task, Y, Yhat):
    if task == "classification":
        return float(np.mean(Yhat.argmax(axis=1) == Y.argmax(axis=1)))
    ss_res = ((Y - Yhat) ** 2).sum(axis=0)
    ss_tot = ((Y - Y.mean(axis=0)) ** 2).sum(axis=0)
    r2 = np.where(ss_tot > 0, 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0), 0.0)
    return float(r2.mean())


class _Anchored:
    r"""Anchored BCD rounds (as :func:`~lifted_idl.training.bcd.fit_bcd`, theory §7) with
    pluggable (A, B) and (C, D) steps.

    The state is the weights and the true equilibrium X of (A, B, b); (C, D, c) is always the
    output of ``cd_step`` at X (the anchor). A round solves the P block
    (:func:`~lifted_idl.blocks.solve_p`, per-state weights
    :math:`\lambda_i \propto \|C_{:,i}\|^2/\mathrm{mean} + 10^{-2}`), takes ``ab_step`` on
    (X, P), re-anchors at the new weights and accepts the round iff the objective (loss at the
    equilibrium plus ``penalty``) decreased; otherwise :math:`\lambda` grows (smaller steps).
    Accepted rounds therefore never increase the objective.
    """

    def __init__(self, U, Y, loss, act, cd_step, ab_step, penalty, lam, mu, lam_max=1e4):
        self.U, self.Y, self.loss, self.act = U, Y, loss, act
        self.cd_step, self.ab_step, self.penalty = cd_step, ab_step, penalty
        self.lam, self.mu, self.lam_max = float(lam), float(mu), float(lam_max)

    def anchor(self, A, B, b, X0=None, cd_init=None):
        q, p = self.Y.shape[1], self.U.shape[1]
        proto = ImplicitModel(A, B, np.zeros((q, A.shape[0])), np.zeros((q, p)), b=b,
                              activation=self.act)
        X = proto.solve(self.U, X0=X0, warn=False).X
        C, D, c = self.cd_step(X, (A, B, b), cd_init)
        Yhat = X @ C.T + self.U @ D.T + c
        loss = self.loss.value(self.Y, Yhat)
        obj = loss + self.penalty(A, B, C, D)
        return {"AB": (A, B, b), "CD": (C, D, c), "X": X, "loss": loss, "obj": obj}

    def rounds(self, st, n_rounds, tol, n_iter_no_change=3):
        """Run up to ``n_rounds`` rounds from the anchored state ``st``; returns
        ``(state, n_run, n_accepted, converged)``."""
        from .blocks import solve_p

        n_acc = 0
        history = [st["obj"]]
        converged = False
        k = 0
        for k in range(1, n_rounds + 1):
            C = st["CD"][0]
            w = (C * C).sum(axis=0)
            lamv = self.lam * (w / max(float(w.mean()), 1e-12) + 1e-2)
            X = st["X"]
            P = solve_p(*st["AB"], *st["CD"], X, self.U, self.Y, lamv, self.mu, self.act,
                        self.loss, init=X.copy()).value
            out = self.ab_step(X, P, lamv, st["AB"], st["CD"])
            # an ab_step may also return the (C, D, c) its joint step ended at, as the start of
            # the anchor's (C, D, c) solve
            (A, B, b), cd_init = (out if len(out) == 2 else (out, st["CD"]))
            cand = self.anchor(A, B, b, X0=X, cd_init=cd_init)
            if cand["obj"] < st["obj"]:
                st = cand
                n_acc += 1
                self.lam = max(self.lam * 0.5, 1e-3)
            else:
                if self.lam >= self.lam_max:
                    converged = True
                    break
                self.lam = min(self.lam * 4.0, self.lam_max)
            history.append(st["obj"])
            if k >= n_iter_no_change:
                past = history[-1 - n_iter_no_change]
                if past - history[-1] <= tol * abs(past):
                    converged = True
                    break
        return st, k, n_acc, converged


def _check_count(name, v, low):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low:
        raise ValueError(f"{name} must be an int >= {low}; got {name}={v!r}")
    return int(v)


def _check_positive(name, v, upper=None):
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not np.isfinite(v) or v <= 0 \
            or (upper is not None and v >= upper):
        rng = f"in (0, {upper})" if upper is not None else "> 0"
        raise ValueError(f"{name} must be a finite number {rng}; got {name}={v!r}")
    return float(v)


def _make_point(params, st, task, U_val, Y_val, act, n_run, n_acc, fw_iter, converged,
                classes, U, Y):
    A, B, b = st["AB"]
    C, D, c = st["CD"]
    model = ImplicitModel(A, B, C, D, b=b, c=c, activation=act)
    Yhat = st["X"] @ C.T + U @ D.T + c
    val_score = val_loss = None
    if U_val is not None:
        from .losses import SoftmaxCrossEntropy, SquaredLoss

        Yv = model.predict(U_val, warn=False)
        loss = SoftmaxCrossEntropy() if task == "classification" else SquaredLoss()
        val_loss = float(loss.value(Y_val, Yv))
        val_score = _score(task, Y_val, Yv)
    nnz = {"A": int(np.count_nonzero(A)), "B": int(np.count_nonzero(B)),
           "C": int(np.count_nonzero(C)), "D": int(np.count_nonzero(D))}
    norms = np.sqrt((B * B).sum(axis=0) + (D * D).sum(axis=0))
    return PathPoint(params=dict(params), model=model, nnz=nnz, column_norms=norms,
                     train_loss=float(st["loss"]), objective=float(st["obj"]),
                     train_score=_score(task, Y, Yhat), val_score=val_score, val_loss=val_loss,
                     n_rounds=int(n_run), n_accepted=int(n_acc), fw_iter=dict(fw_iter),
                     converged=bool(converged), classes=classes)


def frank_wolfe_path(U, Y, budgets, *, task: str = "regression", n_hidden: int = 10,
                     kappa_a: float = 0.5, U_val=None, Y_val=None, budget_kind: str = "cd",
                     activation="relu", random_state=None, max_iter: int = 100,
                     n_rounds: int = 10, tol: float = 1e-4, fw_tol: float = 1e-6,
                     ridge: float = 1e-3, lam: float = 0.1,
                     mu: float = 0.1) -> list[PathPoint]:
    r"""Sparsity path over l1-ball budgets, Frank–Wolfe blocks in anchored BCD (theory §7).

    In the spirit of :func:`sklearn.linear_model.lasso_path`: for every budget, in increasing
    order, warm-started from the previous point, runs anchored BCD rounds on

    .. math:: \min\ \mathcal L(Y, XC^\top + UD^\top + c)\ \ \text{s.t.}\ \
              X = \phi(XA^\top + UB^\top + b),\ \ \|A\|_\infty \le \kappa_A,\ \
              \|\mathrm{vec}[C\ D]\|_1 \le \kappa_C,\ \ \|B\|_1 \le \kappa_B

    (the constrained form of the l1 penalties of [IDL §5]; :math:`\|B\|_1` entrywise). A round
    (as :func:`~lifted_idl.training.bcd.fit_bcd`): anchor at the true equilibrium X of the
    current (A, B, b) with (C, D, c) fitted there; the P step
    (:func:`~lifted_idl.blocks.solve_p`); the (A, B, b) step on (X, P) by
    :func:`~lifted_idl.training.frank_wolfe.fw_ab`; re-anchor with the (C, D, c) step by
    :func:`~lifted_idl.training.frank_wolfe.fw_cd` at the new equilibrium; accept iff the
    training loss decreased. Frank–Wolfe adds at most one nonzero per step, so iterates are
    sparse; the block that carries no budget is solved exactly: (A, B, b) without penalty
    (:func:`~lifted_idl.blocks.solve_ab`), (C, D, c) with the small ridge ``ridge``
    (:func:`~lifted_idl.blocks.solve_cd`).

    Parameters
    ----------
    U : array of shape (m, p)
        Inputs (standardise them first: the budgets bound the raw weights).
    Y : array of shape (m,) or (m, q)
        Targets (regression) or class labels (classification).
    budgets : array of shape (k,), or (k, 2) for ``budget_kind="both"``
        Radii > 0: :math:`\kappa_C` (``"cd"``), :math:`\kappa_B` (``"ab"``), or both (a 1-D
        array gives :math:`\kappa_C = \kappa_B`; rows of a (k, 2) array are
        :math:`(\kappa_C, \kappa_B)`). Sorted increasingly (``"both"``: by
        :math:`\kappa_C + \kappa_B`; every point's balls must contain the previous point's).
    task : {"regression", "classification"}
        Squared loss, or softmax cross-entropy on one-hot labels.
    n_hidden : int, default=10
    kappa_a : float, default=0.5
        :math:`\|A\|_\infty \le \kappa_A < 1` (well-posedness for 1-Lipschitz activations).
    U_val, Y_val : arrays, optional
        Validation data for ``val_score`` / ``val_loss``.
    budget_kind : {"cd", "ab", "both"}, default="cd"
    activation : str or Activation, default="relu"
    random_state : int, Generator or None
        Seeds the random-feature initialisation (:math:`A = 0`, :math:`B \sim
        \mathcal N(0, 1/p)`; projected onto the first :math:`\kappa_B` ball).
    max_iter : int, default=100
        Frank–Wolfe iterations (``fw_cd`` steps, ``fw_ab`` sweeps) per block solve.
    n_rounds : int, default=10
        Anchored BCD rounds per budget (0: only the (C, D) fit at the equilibrium of the
        current (A, B, b), a convex path for fixed states).
    tol : float, default=1e-4
        Rounds at a budget stop once the loss improved by less than ``tol`` (relative) over 3
        rounds.
    fw_tol : float, default=1e-6
        Relative Frank–Wolfe gap at which a block solve stops.
    ridge : float, default=1e-3
        For ``budget_kind="ab"``: the ridge :math:`\tfrac{\rho}{2}\|[C\ D]\|_F^2` of the
        unconstrained (C, D) block (added to the training objective). Without it, a small
        :math:`\kappa_B` makes the states nearly constant and C grows without bound to use
        them (for ReLU, :math:`(B, b, C) \to (sB, sb, C/s)` leaves the predictions unchanged).
    lam, mu : float
        Initial divergence weight (adapted as in ``fit_bcd``) and coupling weight.

    Returns
    -------
    list of PathPoint
        One per budget, in increasing order. The objective (``train_loss``, plus the ridge for
        ``"ab"``) is non-increasing along the path (budgets nested, warm starts, monotone
        Frank–Wolfe steps with exact line search, only improving rounds accepted).

    Raises
    ------
    ValueError
        Bad data, budgets, or options (the message names the argument).
    """
    from .activations import get_activation
    from .blocks import solve_ab, solve_cd
    from .penalties import L2Penalty, NoPenalty
    from .training.bcd import random_feature_init
    from .training.frank_wolfe import fw_ab, fw_cd

    U, Y, U_val, Y_val, loss, classes = _path_data(U, Y, task, U_val, Y_val)
    if budget_kind not in ("cd", "ab", "both"):
        raise ValueError(f"budget_kind must be 'cd', 'ab' or 'both'; got "
                         f"budget_kind={budget_kind!r}")
    bud = np.asarray(budgets, dtype=np.float64)
    if budget_kind == "both" and bud.ndim == 1:
        bud = np.stack([bud, bud], axis=1)
    want = 2 if budget_kind == "both" else 1
    if (want == 1 and bud.ndim != 1) or (want == 2 and (bud.ndim != 2 or bud.shape[1] != 2)) \
            or bud.shape[0] == 0:
        raise ValueError(f"budgets must be a non-empty {'(k, 2) or (k,)' if want == 2 else '1-D'}"
                         f" array for budget_kind={budget_kind!r}; got shape {bud.shape}")
    if not np.all(np.isfinite(bud)) or np.any(bud <= 0):
        raise ValueError(f"budgets must be finite and > 0; got budgets={budgets!r}")
    if want == 1:
        bud = np.sort(bud)
    else:
        bud = bud[np.argsort(bud.sum(axis=1), kind="stable")]
        if np.any(np.diff(bud, axis=0) < 0):
            raise ValueError("budgets for budget_kind='both' must be nested (both radii "
                             f"non-decreasing along the path); got budgets={budgets!r}")
    n_hidden = _check_count("n_hidden", n_hidden, 1)
    kappa_a = _check_positive("kappa_a", kappa_a, 1.0)
    max_iter = _check_count("max_iter", max_iter, 1)
    n_rounds = _check_count("n_rounds", n_rounds, 0)
    tol = _check_positive("tol", tol)
    fw_tol = _check_positive("fw_tol", fw_tol)
    lam = _check_positive("lam", lam)
    mu = _check_positive("mu", mu)
    if isinstance(ridge, bool) or not isinstance(ridge, numbers.Real) or not np.isfinite(
            ridge) or ridge < 0:
        raise ValueError(f"ridge must be a finite number >= 0; got ridge={ridge!r}")
    act = get_activation(activation)
    has_cd = budget_kind in ("cd", "both")
    cd_pen = L2Penalty(float(ridge)) if ridge > 0 else NoPenalty()
    has_ab = budget_kind in ("ab", "both")
    cur = {"kappa_c": None, "kappa_b": None}
    fw_iter = {"cd": 0, "ab": 0}

    def cd_step(X, AB, init):
        if has_cd:
            C0, D0 = (None, None) if init is None else init[:2]
            r = fw_cd(X, U, Y, loss, cur["kappa_c"], fit_intercept=True,
                      init=None if init is None else (C0, D0), tol=fw_tol, max_iter=max_iter,
                      warn=False)
            fw_iter["cd"] += r.n_iter
            return r.C, r.D, r.c
        return solve_cd(X, U, Y, loss, cd_pen, init=init).value

    def ab_step(X, P, lamv, AB, CD):
        if has_ab:
            r = fw_ab(X, U, P, lamv, kappa_a, cur["kappa_b"], act, fit_bias=True, init=AB,
                      tol=fw_tol, max_iter=max_iter, warn=False)
            fw_iter["ab"] += r.n_iter
            return r.A, r.B, r.b
        return solve_ab(X, U, P, lamv, kappa_a, act, "none", init=AB).value

    def penalty(A, B, C, D):
        return 0.0 if has_cd else cd_pen.value(np.hstack([C, D]))

    runner = _Anchored(U, Y, loss, act, cd_step, ab_step, penalty, lam, mu)
    A, B, b = random_feature_init(U, n_hidden, act, random_state, kappa_a)
    path = []
    st = None
    for row in bud:
        kc, kb = (row[0], row[1]) if want == 2 else (
            (row, None) if budget_kind == "cd" else (None, row))
        cur["kappa_c"] = None if kc is None else float(kc)
        cur["kappa_b"] = None if kb is None else float(kb)
        if st is None:
            if has_ab:
                B = project_inf_norm_ball(B.reshape(1, -1), cur["kappa_b"]).reshape(B.shape)
            st = runner.anchor(A, B, b)
        else:  # warm start: the previous point is feasible for the larger balls
            st = runner.anchor(*st["AB"], X0=st["X"], cd_init=st["CD"])
        st, n_run, n_acc, conv = runner.rounds(st, n_rounds, tol)
        path.append(_make_point(cur, st, task, U_val, Y_val, act, n_run, n_acc, fw_iter, conv,
                                classes, U, Y))
    return path


def plot_frank_wolfe_path(path, ax=None):
    """Plot a :func:`frank_wolfe_path`: nonzeros (left) and scores (right) against the budget.

    Parameters
    ----------
    path : list of PathPoint
    ax : sequence of two matplotlib Axes, optional
        Created (one figure, two panels) when omitted.

    Returns
    -------
    tuple of two Axes
    """
    if not path or not all(isinstance(pt, PathPoint) for pt in path):
        raise ValueError("path must be a non-empty list of PathPoint (from frank_wolfe_path)")
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(1, 2, figsize=(10, 4))
    try:
        ax_nnz, ax_score = ax
    except (TypeError, ValueError):
        raise ValueError(f"ax must be a pair of matplotlib Axes; got {ax!r}") from None
    p0 = path[0].params
    key = "kappa_c" if p0.get("kappa_c") is not None else "kappa_b"
    label = {"kappa_c": r"$\kappa_C$ (budget on $\|(C, D)\|_1$)",
             "kappa_b": r"$\kappa_B$ (budget on $\|B\|_1$)"}[key]
    x = np.array([pt.params[key] for pt in path])
    for name, mk in zip("ABCD", "os^v", strict=True):
        ax_nnz.plot(x, [pt.nnz[name] for pt in path], marker=mk, label=f"nnz({name})")
    ax_nnz.set_xlabel(label)
    ax_nnz.set_ylabel("nonzero entries")
    ax_nnz.legend()
    task = "accuracy" if path[0].classes is not None else r"$R^2$"
    ax_score.plot(x, [pt.train_score for pt in path], marker="o", label="train")
    if path[0].val_score is not None:
        ax_score.plot(x, [pt.val_score for pt in path], marker="s", label="validation")
    ax_score.set_xlabel(label)
    ax_score.set_ylabel(task)
    ax_score.legend()
    for a in (ax_nnz, ax_score):
        a.set_xscale("log")
        a.grid(True, alpha=0.3)
    return ax_nnz, ax_score


def group_lasso_path(U, Y, alphas, *, ord=2, task: str = "regression", n_hidden: int = 10,
                     kappa: float = 0.5, U_val=None, Y_val=None, activation="relu",
                     random_state=None, n_rounds: int = 20, tol: float = 1e-4,
                     c_ridge: float = 1e-3, lam: float = 0.1, mu: float = 0.1,
                     init_model=None) -> list[PathPoint]:
    r"""Path of the group penalty [IDL (5.1)] over decreasing strengths, in anchored BCD.

    For every strength :math:`\alpha` in ``alphas`` (largest first, as
    :func:`sklearn.linear_model.lasso_path`), warm-started from the previous point, runs
    anchored BCD rounds (as :func:`~lifted_idl.training.bcd.fit_bcd`, theory §7) on

    .. math:: \min\ \mathcal L(Y, XC^\top + UD^\top + c) + \alpha\sum_{j=1}^p
              \left\|\begin{pmatrix} B \\ D\end{pmatrix}e_j\right\|_r
              + \frac{\beta}{2}\|C\|_F^2
              \ \ \text{s.t.}\ \ X = \phi(XA^\top + UB^\top + b),\ \ \|A\|_\infty \le \kappa,

    the feature-selection problem of [IDL §5.1] (theory §5). The small ridge on C
    (:math:`\beta` = ``c_ridge``) makes it well-posed: for a positively homogeneous
    activation, :math:`(B, b, C) \to (sB, sb, C/s)` keeps the predictions and lowers the group
    penalty as :math:`s \to 0`, so without it the infimum is approached with B shrinking to 0
    and C growing without bound (:meth:`~lifted_idl.penalties.GroupPenalty.for_cd`).

    The (A, B, b) step sees the penalty with D fixed
    (:meth:`~lifted_idl.penalties.GroupPenalty.for_ab`), the (C, D, c) step at the anchor with B
    fixed (:meth:`~lifted_idl.penalties.GroupPenalty.for_cd`); each
    is convex and solved exactly (:func:`~lifted_idl.blocks.solve_ab`,
    :func:`~lifted_idl.blocks.solve_cd`). After the (A, B, b) step, a joint (B, D) block step
    (proximal gradient with the exact joint prox, as in
    :func:`~lifted_idl.training.bcd.fit_bcd`) zeroes whole columns: the two one-sided steps
    alone only shrink a group whose other part is nonzero. A round is accepted iff the
    penalised training objective decreased.

    As an optimiser of this nonconvex problem the anchored BCD is weaker than gradient
    training: in ``experiments/model_recovery.py`` (p = 100, m = 400, 5 rounds per strength) it
    reached a validation MSE of 0.17–0.40 (standardised targets) against 0.03–0.06 for
    :func:`~lifted_idl.training.gradient.fit_gradient` with the exact group prox
    (``group=``), and no point of its paths had the teacher's support.

    Parameters
    ----------
    U : array of shape (m, p)
        Inputs (standardise them first).
    Y : array of shape (m,) or (m, q)
        Targets or class labels.
    alphas : array of shape (k,)
        Strengths >= 0; sorted decreasingly.
    ord : {2, np.inf}, default=2
        The group norm r.
    task : {"regression", "classification"}
    n_hidden : int, default=10
    kappa : float, default=0.5
        :math:`\|A\|_\infty \le \kappa < 1`.
    U_val, Y_val : arrays, optional
        Validation data for ``val_score`` / ``val_loss`` (select :math:`\alpha` on them).
    activation : str or Activation, default="relu"
    random_state : int, Generator or None
        Seeds the random-feature initialisation (unless ``init_model``).
    n_rounds : int, default=20
        Anchored BCD rounds per strength.
    tol : float, default=1e-4
        Rounds at a strength stop once the objective improved by less than ``tol`` (relative)
        over 3 rounds.
    c_ridge : float, default=1e-3
        :math:`\beta \ge 0`, the ridge on C.
    lam, mu : float
        Initial divergence weight and coupling weight, as in ``fit_bcd``.
    init_model : ImplicitModel, optional
        Start from this model (its A projected onto the ball) instead of random features.

    Returns
    -------
    list of PathPoint
        One per strength, largest first; ``params = {"alpha": ...}``.
    """
    from .activations import get_activation
    from .blocks import solve_ab, solve_cd
    from .penalties import GroupPenalty
    from .training.bcd import _group_bd_step, random_feature_init
    U, Y, U_val, Y_val, loss, classes = _path_data(U, Y, task, U_val, Y_val)
    al = np.asarray(alphas, dtype=np.float64)
    if al.ndim != 1 or al.size == 0 or not np.all(np.isfinite(al)) or np.any(al < 0):
        raise ValueError(f"alphas must be a non-empty 1-D array of finite values >= 0; got "
                         f"alphas={alphas!r}")
    al = np.sort(al)[::-1]
    GroupPenalty(0.0, ord)  # validates ord
    n_hidden = _check_count("n_hidden", n_hidden, 1)
    kappa = _check_positive("kappa", kappa, 1.0)
    n_rounds = _check_count("n_rounds", n_rounds, 0)
    tol = _check_positive("tol", tol)
    lam = _check_positive("lam", lam)
    mu = _check_positive("mu", mu)
    if isinstance(c_ridge, bool) or not isinstance(c_ridge, numbers.Real) or not np.isfinite(
            c_ridge) or c_ridge < 0:
        raise ValueError(f"c_ridge must be a finite number >= 0; got c_ridge={c_ridge!r}")
    c_ridge = float(c_ridge)
    act = get_activation(activation)
    group = {"pen": GroupPenalty(float(al[0]), ord)}

    def cd_step(X, AB, init):
        pen = group["pen"].for_cd(AB[1], ridge=c_ridge)
        return solve_cd(X, U, Y, loss, pen, init=init).value

    def ab_step(X, P, lamv, AB, CD):
        W = solve_ab(X, U, P, lamv, kappa, act, group["pen"].for_ab(CD[1]), init=AB).value
        if group["pen"].alpha <= 0:
            return W
        # the joint (B, D) block step: the one that zeroes whole columns (as in fit_bcd)
        return _group_bd_step(W, CD, X, P, U, Y, lamv, loss, act, group["pen"])

    def penalty(A, B, C, D):
        return group["pen"].value(B, D) + 0.5 * c_ridge * float(np.vdot(C, C))

    runner = _Anchored(U, Y, loss, act, cd_step, ab_step, penalty, lam, mu)
    if init_model is None:
        A, B, b = random_feature_init(U, n_hidden, act, random_state, kappa)
    else:
        _check_model(init_model)
        if init_model.n_features != U.shape[1] or init_model.n_outputs != Y.shape[1]:
            raise ValueError(
                f"init_model has p={init_model.n_features}, q={init_model.n_outputs}; the data "
                f"have p={U.shape[1]}, q={Y.shape[1]}")
        A = project_inf_norm_ball(_np64(init_model.A), kappa)
        B = _np64(init_model.B)
        b = np.zeros(A.shape[0]) if init_model.b is None else _np64(init_model.b)
    path = []
    st = None
    for a in al:
        group["pen"] = GroupPenalty(float(a), ord)
        if st is None:
            st = runner.anchor(A, B, b)
        else:
            st = runner.anchor(*st["AB"], X0=st["X"], cd_init=st["CD"])
        st, n_run, n_acc, conv = runner.rounds(st, n_rounds, tol)
        path.append(_make_point({"alpha": float(a)}, st, task, U_val, Y_val, act, n_run, n_acc,
                                {"cd": 0, "ab": 0}, conv, classes, U, Y))
    return path
