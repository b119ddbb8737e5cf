r"""The relaxed, lifted training objective and the part of it that each BCD block changes.

Row layout (samples in rows), data terms averaged over the :math:`m` samples (theory §8, the
scaled relaxation (11) of arXiv §4.1):

.. math::

    J = \mathcal L(Y, PC^\top + UD^\top + \mathbf 1 c^\top)
      + \frac1m \sum_{i=1}^n \lambda_i \sum_{s=1}^m F_\phi(P_{si}, Z_{si})
      + \frac{\mu}{2m}\|X - P\|_F^2 + \mathrm{Pen}_{AB}([A\ B]) + \mathrm{Pen}_{CD}([C\ D]),

with :math:`Z = XA^\top + UB^\top + \mathbf 1 b^\top` and the Fenchel divergence
:math:`F_\phi(x, z) = f^*(x) + f(z) - xz \ge 0` (zero iff :math:`x = \phi(z)`), subject to
:math:`\|A\|_\infty \le \kappa` and :math:`P \in \mathrm{dom} f^*`. Biases are not penalised.
The group penalty :math:`\mathcal P(B, D)` of [IDL (5.1)] couples the two penalty terms: it
enters as ``pen_group`` (once), or through one block's view of it
(``group.restrict("ab", {"D": D})`` as :math:`\mathrm{Pen}_{AB}`, whose value at the fixed D is
the whole :math:`\mathcal P(B, D)`).

Each block objective is the sum of the terms of :math:`J` that involve the block's variables
(whole terms, so e.g. the divergence keeps its :math:`f^*(P)` part in the (A, B) block):

* (C, D, c): loss + :math:`\mathrm{Pen}_{CD}`;
* (A, B, b): divergence + :math:`\mathrm{Pen}_{AB}` (``+inf`` when :math:`\|A\|_\infty > \kappa`);
* X: divergence + coupling;
* P: loss + divergence + coupling (``+inf`` outside :math:`\mathrm{dom} f^*`).
"""

from __future__ import annotations

import numpy as np

from ..activations import ReLU
from ..losses import get_loss, unit_mean_weights
from ..penalties import GroupPenalty
from ._common import (
    as_lam,
    as_matrix,
    as_output_weights,
    as_positive,
    as_state_weights,
    as_vector,
    get_block_penalty,
    get_fenchel_activation,
)

__all__ = [
    "relaxed_objective",
    "cd_objective",
    "ab_objective",
    "x_objective",
    "p_objective",
]

#: relative slack allowed on :math:`\|A\|_\infty \le \kappa` (rounding of the projection)
KAPPA_SLACK = 1e-10


# --------------------------------------------------------------------------------------------
# unchecked kernels (float64 arrays of consistent shapes)
# --------------------------------------------------------------------------------------------
def _pre_activation(X, U, A, B, b):
    Z = X @ A.T
    Z += U @ B.T
    Z += b
    return Z


def _divergence(act, P, Z, lam, w=None):
    r""":math:`\frac1m\sum_i \lambda_i \sum_s w_s F(P_{si}, Z_{si})` (``w``: unit-mean
    sample weights, :func:`~lifted_idl.losses.unit_mean_weights`; None: all 1)."""
    if type(act) is ReLU and P.size and float(P.min()) >= 0:
        cols = _relu_divergence_columns(P, Z, w)
    else:
        F = act.fenchel(P, Z)
        cols = F.sum(axis=0) if w is None else w @ F
    return float((cols @ lam)) / max(P.shape[0], 1)


def _relu_divergence_columns(P, Z, w=None):
    r"""Column sums (weighted by ``w``) of the ReLU divergence on its domain :math:`P \ge 0`,
    :math:`F(p, z) = \tfrac12 z_+^2 + \tfrac12 p^2 - pz = \tfrac12(z_+ - p)^2 + p\,z_-`
    (:math:`z = z_+ - z_-`): two non-negative terms, so no cancellation near the equilibrium
    (where the three terms of the first form nearly cancel), in a few passes over the data
    and one (m, n) temporary instead of the dozen passes and several temporaries of the
    generic :meth:`~lifted_idl.activations.Activation.fenchel`."""
    E = np.maximum(Z, 0.0)
    E -= Z  # z_-
    if w is None:
        neg = np.einsum("ij,ij->j", P, E)
    else:
        E *= P
        neg = w @ E
    np.maximum(Z, 0.0, out=E)
    E -= P  # z_+ - p
    if w is None:
        sq = np.einsum("ij,ij->j", E, E)
    else:
        E *= E
        sq = w @ E
    return 0.5 * sq + neg


def _coupling(X, P, mu, w=None):
    R = X - P
    if w is None:
        return 0.5 * mu * float(np.vdot(R, R)) / max(X.shape[0], 1)
    return 0.5 * mu * float(w @ np.einsum("ij,ij->i", R, R)) / max(X.shape[0], 1)


def _output(P, U, C, D, c):
    Yhat = P @ C.T
    Yhat += U @ D.T
    Yhat += c
    return Yhat


def _ab_feasible(A, kappa):
    return float(np.abs(A).sum(axis=1).max(initial=0.0)) <= kappa * (1 + KAPPA_SLACK) + 1e-300


# --------------------------------------------------------------------------------------------
# checked, public objectives
# --------------------------------------------------------------------------------------------
def _check_lifted(A, B, b, C, D, c, X, P, U, Y, lam, mu):
    """All the variables and data of :math:`J`, checked against the shapes U and Y set."""
    U = as_matrix("U", U)
    m, p = U.shape
    A, B, b = as_state_weights(A, B, b, p)
    n = A.shape[0]
    Y = as_matrix("Y", Y, (m, None))
    C, D, c = as_output_weights(C, D, c, Y.shape[1], n, p)
    X = as_matrix("X", X, (m, n))
    P = as_matrix("P", P, (m, n))
    return A, B, b, C, D, c, X, P, U, Y, as_lam(lam, n), as_positive("mu", mu)


def relaxed_objective(A, B, b, C, D, c, X, P, U, Y, lam, mu, activation, loss, pen_ab,
                      pen_cd, *, pen_group: GroupPenalty | None = None,
                      sample_weight=None) -> dict:
    r"""The relaxed lifted objective :math:`J` of theory §8 (arXiv (11)), term by term.

    .. math::

        J = \underbrace{\mathcal L(Y, PC^\top + UD^\top + c)}_{\texttt{loss}}
          + \underbrace{\tfrac1m\textstyle\sum_i\lambda_i\sum_s F_\phi(P_{si}, Z_{si})}_
            {\texttt{divergence}}
          + \underbrace{\tfrac{\mu}{2m}\|X - P\|_F^2}_{\texttt{coupling}}
          + \underbrace{\mathrm{Pen}_{AB}([A\ B]) + \mathrm{Pen}_{CD}([C\ D])}_{\texttt{penalty}}

    with :math:`Z = XA^\top + UB^\top + b`.

    Parameters
    ----------
    A, B, b : arrays of shapes (n, n), (n, p), (n,) or None
    C, D, c : arrays of shapes (q, n), (q, p), (q,) or None
    X, P : arrays of shape (m, n)
    U : array of shape (m, p)
    Y : array of shape (m, q)
    lam : float or array of shape (n,)
        Per-state divergence weights, > 0.
    mu : float
        Coupling weight, > 0.
    activation, loss, pen_ab, pen_cd : instances or names
        See :func:`~lifted_idl.activations.get_activation`, :func:`~lifted_idl.losses.get_loss`,
        :func:`~lifted_idl.penalties.get_penalty`; the penalties enter through their views
        on ``[A B]`` and ``[C D]`` (:meth:`~lifted_idl.penalties.Penalty.restrict`).
        ``pen_ab`` may also be one block's view of the group penalty
        (``group.restrict("ab", {"D": D})``, whose value is the whole
        :math:`\mathcal P(B, D)` of [IDL (5.1)]; then pass ``pen_cd=None``), and ``pen_cd``
        likewise ``group.restrict("cd", {"B": B})``.
    pen_group : GroupPenalty, optional
        The group penalty :math:`\mathcal P(B, D)` of [IDL (5.1)] (theory §6), added once to
        the ``penalty`` term (on top of ``pen_ab`` and ``pen_cd``).
    sample_weight : array of shape (m,), optional
        Non-negative sample weights: every average over samples (loss, divergence, coupling)
        becomes the weighted average :math:`\frac{1}{\sum_t w_t}\sum_s w_s(\cdot)_s`
        (:func:`~lifted_idl.losses.unit_mean_weights`), so that integer weights give the
        objective of the data with sample s repeated :math:`w_s` times.

    Returns
    -------
    dict with keys ``total``, ``loss``, ``divergence``, ``coupling``, ``penalty`` (floats). The
    divergence is ``inf`` when :math:`P \notin \mathrm{dom} f^*`. The constraint
    :math:`\|A\|_\infty \le \kappa` is not part of :math:`J` and is not checked here.

    Notes
    -----
    The divergence (Fenchel–Young inequality), the coupling and the penalties are
    :math:`\ge 0`, and so are both losses provided. The divergence and the coupling vanish
    exactly when :math:`P = X = \phi(XA^\top + UB^\top + b)`, i.e. at the true equilibrium,
    where :math:`J` is the training objective of the implicit model.
    """
    act = get_fenchel_activation(activation, "relaxed objective")
    loss = get_loss(loss)
    pen_ab = get_block_penalty(pen_ab, "pen_ab", "ab", allow_group=True)
    pen_cd = get_block_penalty(pen_cd, "pen_cd", "cd", allow_group=True)
    if pen_group is not None and not isinstance(pen_group, GroupPenalty):
        raise ValueError(f"pen_group must be a GroupPenalty or None; got pen_group={pen_group!r}")
    A, B, b, C, D, c, X, P, U, Y, lam, mu = _check_lifted(A, B, b, C, D, c, X, P, U, Y, lam,
                                                          mu)
    Z = _pre_activation(X, U, A, B, b)
    w = unit_mean_weights(sample_weight, U.shape[0])
    lo = loss.value(Y, _output(P, U, C, D, c), sample_weight=w)
    dv = _divergence(act, P, Z, lam, w)
    cp_ = _coupling(X, P, mu, w)
    pen = pen_ab.value(np.hstack([A, B])) + pen_cd.value(np.hstack([C, D]))
    if pen_group is not None:
        pen += pen_group.value({"B": B, "D": D})
    return {"total": lo + dv + cp_ + pen, "loss": lo, "divergence": dv, "coupling": cp_,
            "penalty": pen}


def cd_objective(P, U, Y, loss, penalty, C, D, c=None, *, sample_weight=None) -> float:
    r"""Objective of the (C, D, c) block: :math:`\mathcal L(Y, PC^\top + UD^\top + c) +
    \mathrm{Pen}_{CD}([C\ D])` (theory §8, arXiv (12)); with ``sample_weight`` the loss is the
    weighted average over samples."""
    loss = get_loss(loss)
    pen = get_block_penalty(penalty, "penalty", "cd", allow_group=True)
    U = as_matrix("U", U)
    m, p = U.shape
    P = as_matrix("P", P, (m, None))
    n = P.shape[1]
    Y = as_matrix("Y", Y, (m, None))
    q = Y.shape[1]
    C, D, c = as_output_weights(C, D, c, q, n, p)
    return _cd_objective(P, U, Y, loss, pen, C, D, c, unit_mean_weights(sample_weight, m))


def _cd_objective(P, U, Y, loss, pen, C, D, c, w=None):
    return loss.value(Y, _output(P, U, C, D, c), sample_weight=w) + pen.value(np.hstack([C, D]))


def ab_objective(X, U, P, lam, kappa, activation, penalty, A, B, b=None, *,
                 sample_weight=None) -> float:
    r"""Objective of the (A, B, b) block (theory §8, arXiv (13)):
    :math:`\frac1m\sum_i\lambda_i\sum_s F_\phi(P_{si}, Z_{si}) + \mathrm{Pen}_{AB}([A\ B])`,
    ``+inf`` when :math:`\|A\|_\infty > \kappa` (up to a relative slack of 1e-10). With
    ``sample_weight`` the average over samples is weighted
    (:func:`~lifted_idl.losses.unit_mean_weights`)."""
    act = get_fenchel_activation(activation, "(A, B)")
    pen = get_block_penalty(penalty, "penalty", "ab", allow_group=True)
    U = as_matrix("U", U)
    m, p = U.shape
    X = as_matrix("X", X, (m, None))
    n = X.shape[1]
    P = as_matrix("P", P, (m, n))
    lam = as_lam(lam, n)
    kappa = as_positive("kappa", kappa)
    A = as_matrix("A", A, (n, n))
    B = as_matrix("B", B, (n, p))
    b = as_vector("b", b, n)
    w = unit_mean_weights(sample_weight, m)
    return _ab_objective(X, U, P, lam, kappa, act, pen, A, B, b, w)


def _ab_objective(X, U, P, lam, kappa, act, pen, A, B, b, w=None):
    if not _ab_feasible(A, kappa):
        return np.inf
    Z = _pre_activation(X, U, A, B, b)
    return _divergence(act, P, Z, lam, w) + pen.value(np.hstack([A, B]))


def x_objective(A, B, b, U, P, lam, mu, activation, X) -> float:
    r"""Objective of the X block (theory §8, arXiv (14)):
    :math:`\frac1m\sum_i\lambda_i\sum_s F_\phi(P_{si}, Z_{si}) + \frac{\mu}{2m}\|X - P\|_F^2`."""
    act = get_fenchel_activation(activation, "X")
    U = as_matrix("U", U)
    m, p = U.shape
    A, B, b = as_state_weights(A, B, b, p)
    n = A.shape[0]
    P = as_matrix("P", P, (m, n))
    X = as_matrix("X", X, (m, n))
    lam = as_lam(lam, n)
    mu = as_positive("mu", mu)
    return _x_objective(A, B, b, U, P, lam, mu, act, X)


def _x_objective(A, B, b, U, P, lam, mu, act, X, w=None):
    Z = _pre_activation(X, U, A, B, b)
    return _divergence(act, P, Z, lam, w) + _coupling(X, P, mu, w)


def p_objective(A, B, b, C, D, c, X, U, Y, lam, mu, activation, loss, P) -> float:
    r"""Objective of the P block (theory §8, arXiv (15)):
    :math:`\mathcal L(Y, PC^\top + UD^\top + c) + \frac1m\sum_i\lambda_i\sum_s
    F_\phi(P_{si}, Z_{si}) + \frac{\mu}{2m}\|X - P\|_F^2`, ``+inf`` outside
    :math:`\mathrm{dom} f^*`."""
    act = get_fenchel_activation(activation, "P")
    loss = get_loss(loss)
    A, B, b, C, D, c, X, P, U, Y, lam, mu = _check_lifted(A, B, b, C, D, c, X, P, U, Y, lam,
                                                          mu)
    Z = _pre_activation(X, U, A, B, b)
    return _p_objective(Z, C, U @ D.T + c, X, Y, lam, mu, act, loss, P)


def _p_objective(Z, C, E, X, Y, lam, mu, act, loss, P, w=None):
    """P-block objective with ``Z`` and the constant output part ``E = UD^T + c`` precomputed
    (``w``: unit-mean sample weights or None)."""
    dv = _divergence(act, P, Z, lam, w)
    if not np.isfinite(dv):
        return np.inf
    return loss.value(Y, P @ C.T + E, sample_weight=w) + dv + _coupling(X, P, mu, w)
