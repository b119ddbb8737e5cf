r"""Feature selection, state reduction, low-rank compression and model-error bounds [IDL §5].

Implements theory §6 on a given :class:`~lifted_idl.model.ImplicitModel`:

* :func:`active_features`, :func:`drop_features`: zero columns of :math:`[B; D]` mean unused
  inputs [IDL §5.1];
* :func:`reduce_model`: states with a zero row of :math:`(A, B)` are constants and states no
  output depends on are dead; both are removed, to a fixed point [IDL §5.2];
* :func:`approximation_error_bound`: the corrected [IDL Thm 5.1] bound on the state error
  caused by replacing A with an approximation [IDL §5.4];
* :func:`low_rank_compress`: a truncated SVD :math:`A \approx L R^\top`, scaled to stay
  well-posed, solved by the k-dimensional iteration of [IDL §5.3];

The training paths that *produce* sparse models (the group-lasso and Frank–Wolfe paths) live in
:mod:`lifted_idl.training.paths`; this module only reads and edits a given model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._array import check_finite, to_numpy
from ._validation import check_int, check_real, check_tol
from .activations import Blockwise
from .exceptions import BoundConditionError, IllPosedModelError
from .model import ImplicitModel
from .wellposedness import pf_eigenvalue

__all__ = [
    "active_features",
    "drop_features",
    "reduce_model",
    "ApproximationBound",
    "approximation_error_bound",
    "LowRankReport",
    "low_rank_compress",
]


def _check_model(model):
    if not isinstance(model, ImplicitModel):
        raise TypeError(f"model must be an ImplicitModel; got {type(model).__name__}")
    return model


def _np64(M):
    return None if M is None else np.asarray(to_numpy(M), dtype=np.float64)


# ----------------------------------------------------------------------------------------------
# features [IDL §5.1]
# ----------------------------------------------------------------------------------------------
def active_features(model: ImplicitModel, tol: float = 0.0) -> np.ndarray:
    r"""Indices of the inputs the model reads: the nonzero columns of :math:`[B; D]`.

    A zero column j of :math:`\begin{pmatrix} B \\ D \end{pmatrix}` means input :math:`u_j`
    plays no role in the prediction rule [IDL §5.1, (5.1)] (theory §6).

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
    tol = check_tol(tol, allow_zero=True)
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

    Two reductions are applied in turn until neither removes a state (theory §6):

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
    tol = check_tol(tol, allow_zero=True)
    A, B, C, D = (_np64(getattr(model, k)) for k in "ABCD")
    n, q = A.shape[0], C.shape[0]
    b = np.zeros(n) if model.b is None else _np64(model.b).copy()
    c = np.zeros(q) if model.c is None else _np64(model.c).copy()
    blocks, block_of, removable = _state_activations(model.activation, n)
    keep = np.ones(n, dtype=bool)
    nzA, nzB, nzC = np.abs(A) > tol, np.abs(B) > tol, np.abs(C) > tol
    folded = np.zeros(2, dtype=bool)  # whether folding changed b, c
    while True:
        changed = _fold_constant_states(keep, removable, nzA, nzB, A, C, b, c, blocks, block_of,
                                        folded)
        if _drop_dead_states(keep, removable, nzA, nzC):
            changed = True
        if not changed:
            break
    kept = np.flatnonzero(keep)
    new_b = None if (model.b is None and not folded[0]) else b[kept]
    new_c = None if (model.c is None and not folded[1]) else c
    reduced = _submodel(model, kept, A, B, C, D, new_b, new_c, blocks, block_of)
    return (reduced, kept) if return_kept else reduced


def _fold_constant_states(keep, removable, nzA, nzB, A, C, b, c, blocks, block_of,
                          folded) -> bool:
    """Remove the states with zero rows of (A, B) from ``keep``, their values folded into b, c.

    Repeats until no row is constant (folding can make further rows zero); ``keep``, ``b``,
    ``c`` and ``folded`` (whether b, c changed) are updated in place. Returns whether a state
    was removed.
    """
    changed = False
    while True:
        const = keep & removable & ~(nzA[:, keep].any(axis=1)) & ~nzB.any(axis=1)
        if not const.any():
            return changed
        readers = keep & ~const
        for i in np.flatnonzero(const):
            act_i = blocks[block_of[i]][1]
            val = float(np.asarray(act_i(np.array([[b[i]]])))[0, 0])
            if val != 0.0:
                b[readers] += A[readers, i] * val
                c += C[:, i] * val
                folded[0] |= bool(np.any(A[readers, i] != 0))
                folded[1] |= bool(np.any(C[:, i] != 0))
        keep &= ~const
        changed = True


def _drop_dead_states(keep, removable, nzA, nzC) -> bool:
    """Remove from ``keep`` the states not reachable backwards from the outputs."""
    live = keep & (nzC.any(axis=0) | ~removable)
    while True:
        new = live | (keep & nzA[live].any(axis=0))
        if (new == live).all():
            break
        live = new
    dead = keep & ~live
    keep &= ~dead
    return bool(dead.any())


def _submodel(model, kept, A, B, C, D, b, c, blocks, block_of) -> ImplicitModel:
    """The model restricted to the states ``kept`` (biases ``b``, ``c`` given, or None)."""
    dt = model.dtype
    act = model.activation
    if isinstance(act, Blockwise):
        counts = np.bincount(block_of[kept], minlength=len(blocks))
        act = Blockwise([(int(counts[k]), blocks[k][1]) for k in range(len(blocks))])
    factors = None
    if model.factors is not None:
        L, R = (np.asarray(to_numpy(F)) for F in model.factors)
        factors = (L[kept], R[kept])
    return ImplicitModel(
        A[np.ix_(kept, kept)].astype(dt), B[kept].astype(dt), C[:, kept].astype(dt),
        D.astype(dt), b=None if b is None else b.astype(dt),
        c=None if c is None else c.astype(dt), activation=act, factors=factors,
    )


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

    The corrected [IDL Thm 5.1] (theory §6, **fix**): let :math:`A^0` be the model's A,
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
    check_finite("A_approx", Aap, np)
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
    keeps the compressed model well-posed (theory §6):

    * ``criterion="inf_norm"`` when ``kappa`` is given or :math:`\|\Gamma A^0\|_\infty < 1`:
      :math:`\|\Gamma L R^\top\|_\infty \le` ``kappa`` (default: the original's
      :math:`\|\Gamma A^0\|_\infty`), the convex training condition of theory §2;
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
    check_int("rank", rank, 1, n)
    check_real("kappa", kappa, 0, 1, closed="neither", allow_none=True)
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
