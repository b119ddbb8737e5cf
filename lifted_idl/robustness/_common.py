r"""Shared helpers of the robustness modules: argument checks and the gain matrices of theory §7.

Every robustness bound of [IDL §4] is written with three nonnegative "gain" matrices over a
partition of the state into blocks :math:`l = 1, \dots, L`:

.. math::

    N(A, \gamma)_{lh} = \gamma_l \|A_{lh}\|_{p_h \to p_l}, \qquad
    N(B, \gamma)_{li} = \gamma_l \|B_{li}\|_{p_l}, \qquad
    N(C)_{il} = \|C_{il}\|_{p_l^*},

[IDL (2.4), (4.5), §4.3]. For a componentwise (CONE) activation every state is its own block
with :math:`p_l = \infty`, so :math:`N(A,\gamma) = \mathrm{diag}(\gamma)|A|`,
:math:`N(B,\gamma) = \mathrm{diag}(\gamma)|B|` and :math:`N(C) = |C|`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._array import to_numpy
from .._validation import check_finite_matrix, check_int, check_radius
from ..activations import Activation, Blockwise
from ..exceptions import BoundConditionError
from ..model import ImplicitModel
from ..wellposedness import block_gain_matrix

__all__ = []  # private module

#: An :class:`ImplicitModel` or a fitted estimator exposing one as ``model_``.
ModelLike = Any


# ----------------------------------------------------------------------------------------------
# argument checks
# ----------------------------------------------------------------------------------------------
def _as_model(obj) -> ImplicitModel:
    """The :class:`ImplicitModel` behind ``obj`` (itself, or a fitted estimator's ``model_``)."""
    if isinstance(obj, ImplicitModel):
        return obj
    model = getattr(obj, "model_", None)
    if isinstance(model, ImplicitModel):
        return model
    if hasattr(obj, "fit") and model is None:
        from sklearn.exceptions import NotFittedError

        raise NotFittedError(
            f"{type(obj).__name__} is not fitted (it has no model_ attribute); call fit first"
        )
    raise TypeError(
        "expected an ImplicitModel or a fitted estimator whose model_ is an ImplicitModel; "
        f"got an object of type {type(obj).__name__}"
    )


def _is_estimator_classifier(obj) -> bool:
    return not isinstance(obj, ImplicitModel) and hasattr(obj, "classes_")


def _check_U(model: ImplicitModel, U, name: str = "U") -> np.ndarray:
    """``U`` as a float64 array of shape (m, p)."""
    if not hasattr(U, "toarray"):
        U = to_numpy(U)
    return check_finite_matrix(name, U, (None, model.n_features)).copy()


def _check_point(model: ImplicitModel, u0, name: str = "u0") -> np.ndarray:
    """A single input as a float64 vector of length p (accepts shape (p,) or (1, p))."""
    u = np.asarray(to_numpy(u0))
    if u.ndim == 2 and u.shape[0] == 1:
        u = u[0]
    return check_finite_matrix(name, u, (model.n_features,), ndim=1).copy()


def _check_sigma(sigma, p: int, name: str = "sigma_u", positive: bool = False) -> np.ndarray:
    """A scalar or length-p radius as a float64 vector of length p, finite and >= 0."""
    s = check_radius(name, sigma, p, per="feature")
    if s.ndim == 0:
        s = np.full(p, float(s))
    if positive and not np.any(s > 0):
        raise ValueError(f"{name} must have a positive entry; got {name}={sigma!r}")
    return s


def _check_k(k, p: int, name: str = "k") -> int | None:
    """``None`` or a positive int; values above p mean the whole box (Card <= p always)."""
    k = check_int(name, k, 1, allow_none=True)
    return None if k is None else min(k, p)


def _check_vector(v, length: int, name: str) -> np.ndarray:
    return check_finite_matrix(name, to_numpy(v), (length,), ndim=1).copy()


def _labels_to_index(obj, model: ImplicitModel, y, m: int, name: str = "y") -> np.ndarray:
    """Labels as output indices: mapped through ``classes_`` for estimators, checked otherwise."""
    q = model.n_outputs
    if q < 2:
        raise ValueError(
            f"classification needs one output per class (q >= 2); the model has q = {q}"
        )
    y = np.asarray(to_numpy(y))
    if y.ndim != 1 or y.shape[0] != m:
        raise ValueError(f"{name} must be a vector of length {m}; got shape {y.shape}")
    if _is_estimator_classifier(obj):
        classes = np.asarray(obj.classes_)
        if classes.shape[0] != q:
            raise ValueError(
                f"the estimator has {classes.shape[0]} classes_ but its model_ has q = {q} "
                "outputs; expected one logit per class"
            )
        lookup = {c: i for i, c in enumerate(classes.tolist())}
        try:
            return np.array([lookup[v] for v in y.tolist()], dtype=np.intp)
        except KeyError as err:
            raise ValueError(
                f"{name} contains the label {err.args[0]!r}, which is not in classes_ = "
                f"{classes.tolist()!r}"
            ) from None
    if y.dtype.kind not in "iu" and not (
        y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y))
    ):
        raise ValueError(
            f"{name} must hold integer output indices for an ImplicitModel; got dtype {y.dtype}"
        )
    yi = y.astype(np.intp)
    bad = (yi < 0) | (yi >= q)
    if np.any(bad):
        raise ValueError(
            f"{name} must hold output indices in [0, {q}); got {name}={yi[bad][0]!r}"
        )
    return yi


# ----------------------------------------------------------------------------------------------
# gain matrices (theory §7, [IDL (2.4), (4.5), §4.3])
# ----------------------------------------------------------------------------------------------
def _dual(p: float) -> float:
    if p == np.inf:
        return 1.0
    if p == 1:
        return np.inf
    return p / (p - 1.0)


class _Gains:
    """The block partition and the matrices :math:`N(A,\\gamma)`, :math:`N(B,\\gamma)` of a model.

    Attributes
    ----------
    componentwise : bool
        True for CONE maps (every state its own block, :math:`p = \\infty`).
    NA : array (L, L)
    NB : array (L, p)
    gamma : array (L,)
    slices : list of (start, stop) or None
        Block boundaries (None in the componentwise case, where block l is state l).
    norms : list of float or None
        The norm :math:`p_l` of each block.
    """

    def __init__(self, model: ImplicitModel):
        act = model.activation
        A = np.asarray(to_numpy(model.A), dtype=np.float64)
        B = np.asarray(to_numpy(model.B), dtype=np.float64)
        n = A.shape[0]
        self.n = n
        for _, sub in _sub_activations(act, n):
            g = float(sub.lipschitz)
            if not np.isfinite(g) or g < 0:
                raise BoundConditionError(
                    f"the bounds of theory §7 need a finite Lipschitz constant; activation "
                    f"{sub!r} has lipschitz={sub.lipschitz!r}"
                )
        self.activation = act
        self.componentwise = bool(act.componentwise)
        if self.componentwise:
            gamma = np.asarray(act.state_lipschitz(n), dtype=np.float64)
            self.gamma = gamma
            self.NA = gamma[:, None] * np.abs(A)
            self.NB = gamma[:, None] * np.abs(B)
            self.slices = None
            self.norms = None
            return
        wrapped = act if isinstance(act, Blockwise) else Blockwise([(n, act)])
        slices, gammas, norms = [], [], []
        start = 0
        for size, sub in wrapped.blocks:
            if sub.componentwise:  # split into single states, as block_gain_matrix does
                for t in range(size):
                    slices.append((start + t, start + t + 1))
                    gammas.append(float(sub.lipschitz))
                    norms.append(np.inf)
            else:
                slices.append((start, start + size))
                gammas.append(float(sub.lipschitz))
                norms.append(float(sub.norm))
            start += size
        NA = block_gain_matrix(A, wrapped)
        if NA.shape != (len(slices), len(slices)):  # pragma: no cover - consistency guard
            raise RuntimeError(
                f"block partition mismatch: {len(slices)} blocks but N(A) has shape {NA.shape}"
            )
        self.gamma = np.asarray(gammas)
        self.slices = slices
        self.norms = norms
        self.NA = NA
        self.NB = np.stack(
            [g * np.linalg.norm(B[a:b], ord=pn, axis=0)
             for (a, b), g, pn in zip(slices, gammas, norms, strict=True)]
        )

    @property
    def n_blocks(self) -> int:
        return self.NA.shape[0]

    def NC(self, C: np.ndarray) -> np.ndarray:
        """:math:`N(C)_{il} = \\|C_{il}\\|_{p_l^*}` for the rows of ``C`` (shape (q', n))."""
        C = np.asarray(C, dtype=np.float64)
        if self.componentwise:
            return np.abs(C)
        cols = [np.linalg.norm(C[:, a:b], ord=_dual(pn), axis=1)
                for (a, b), pn in zip(self.slices, self.norms, strict=True)]
        return np.stack(cols, axis=1)

    def expand(self, eta: np.ndarray) -> np.ndarray:
        """A per-state bound from a per-block bound: :math:`|x_j| \\le \\|x_l\\|_{p_l}`."""
        if self.componentwise:
            return eta
        out = np.empty(self.n)
        for (a, b), e in zip(self.slices, eta, strict=True):
            out[a:b] = e
        return out

    def block_norms(self, R: np.ndarray) -> np.ndarray:
        r""":math:`\|R_{s,l}\|_{p_l}` of every row s of ``R`` (shape (m, n)) and block l: shape
        (m, L) (:math:`|R|` in the componentwise case)."""
        if self.componentwise:
            return np.abs(R)
        return np.stack([np.linalg.norm(R[:, a:b], ord=pn, axis=1)
                         for (a, b), pn in zip(self.slices, self.norms, strict=True)], axis=1)

    def solve_error(self, model: ImplicitModel, U: np.ndarray, X: np.ndarray) -> np.ndarray:
        r"""Per-sample bounds :math:`\eta` on the block norms of the error of computed states
        ``X`` at inputs ``U``, shape (m, L): with the residual :math:`r = X - \phi(XA^\top +
        UB^\top + b)` and the true equilibrium :math:`x^*`, :math:`\|(x - x^*)_l\| \le
        \|r_l\| + \sum_k N(A,\gamma)_{lk}\|(x - x^*)_k\|`, so :math:`\eta = (I -
        N(A,\gamma))^{-1}\|r\|` (needs :math:`\lambda_{PF}(N(A,\gamma)) < 1`)."""
        A = np.asarray(to_numpy(model.A), dtype=np.float64)
        B = np.asarray(to_numpy(model.B), dtype=np.float64)
        Z = X @ A.T + U @ B.T
        if model.b is not None:
            Z += np.asarray(to_numpy(model.b), dtype=np.float64)
        R = X - np.asarray(to_numpy(model.activation(Z)), dtype=np.float64)
        return self.resolvent_times(self.block_norms(R).T).T

    def pf(self) -> float:
        """:math:`\\lambda_{PF}(N(A,\\gamma))` (an eigenvalue computation; used for messages)."""
        if self.n_blocks == 0:
            return 0.0
        return float(np.max(np.abs(np.linalg.eigvals(self.NA))))

    def pf_below_one(self) -> bool:
        """Certify :math:`\\lambda_{PF}(N) < 1` without an eigenvalue computation.

        For :math:`N \\ge 0`, :math:`I - N` is a nonsingular M-matrix (equivalently
        :math:`\\lambda_{PF}(N) < 1`) iff some :math:`s \\ge 0` has :math:`(I - N)s > 0`
        (Berman & Plemmons, Thm 6.2.3). Try :math:`\\|N\\|_\\infty < 1` (then
        :math:`s = \\mathbf 1`), else :math:`s = (I - N)^{-1}\\mathbf 1`, checking the residual.
        """
        L = self.n_blocks
        if L == 0 or float(self.NA.sum(axis=1).max()) < 1:
            return True
        M = np.eye(L) - self.NA
        try:
            s = np.linalg.solve(M, np.ones(L))
        except np.linalg.LinAlgError:
            return False
        return bool(np.all(np.isfinite(s)) and np.all(s > 0) and np.all(M @ s > 0.5))

    def require_pf(self, what: str) -> None:
        """Raise BoundConditionError unless :math:`\\lambda_{PF}(N(A,\\gamma)) < 1`."""
        if self.pf_below_one():
            return
        lam = self.pf()
        name = ("lambda_PF(diag(gamma)|A|)" if self.componentwise
                else "lambda_PF(N(A, gamma))")
        extra = "" if lam >= 1 else " (too close to 1 to certify in floating point)"
        raise BoundConditionError(
            f"{what} needs {name} < 1 [IDL Thm 2.2, Thm 4.1/4.2]; got {name} = {lam:.6g}"
            + extra
        )

    def resolvent_times(self, M: np.ndarray) -> np.ndarray:
        """:math:`(I - N(A,\\gamma))^{-1} M`, clipped at 0 (it is entrywise nonnegative)."""
        L = self.n_blocks
        if L == 0:
            return np.zeros((0,) + M.shape[1:])
        out = np.linalg.solve(np.eye(L) - self.NA, M)
        return np.maximum(out, 0.0)

    def transfer(self) -> np.ndarray:
        """:math:`T = (I - N(A,\\gamma))^{-1} N(B,\\gamma)`, shape (L, p)."""
        return self.resolvent_times(self.NB)


def _sub_activations(act: Activation, n: int):
    if isinstance(act, Blockwise):
        return list(act.blocks)
    return [(n, act)]


def _top_k_sum(M: np.ndarray, k: int) -> np.ndarray:
    """:math:`s_k` of each row: the sum of its k largest entries."""
    if k >= M.shape[1]:
        return M.sum(axis=1)
    part = np.partition(M, M.shape[1] - k, axis=1)[:, M.shape[1] - k:]
    return part.sum(axis=1)
