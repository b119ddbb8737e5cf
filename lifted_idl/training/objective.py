r"""The true training objective, one definition for every trainer (theory §8).

The objective of [IDL (6.3)] with the penalties the package offers,

.. math::

    \mathcal L(Y, \hat Y) + \mathrm{pen}_{AB}([A\ B]) + \mathrm{pen}_{CD}([C\ D])
    + \mathrm{pen}_M(A, B, C, D)
    + \alpha_g \sum_{j=1}^p \left\|\begin{pmatrix} B \\ D \end{pmatrix} e_j\right\|_r
    + \frac{\beta}{2}\|C\|_F^2,
    \qquad \hat Y = X C^\top + U D^\top + c,\ \ X = \phi(X A^\top + U B^\top + b),

is evaluated here for :func:`~lifted_idl.training.bcd.fit_bcd` (through its blocks),
:func:`~lifted_idl.training.gradient.fit_gradient` and the sparsity paths of
:mod:`lifted_idl.training.paths`: each computes the loss at its own equilibrium (warm-started
where it has one) and adds the penalties with :func:`training_objective`. The terms are added
left to right in the order written above, so every trainer reports the same number for the
same model.
"""

from __future__ import annotations

import numpy as np

from ..penalties import GroupPenalty, NoPenalty, Penalty, get_penalty

__all__ = ["training_objective", "group_terms", "true_objective", "check_weight_penalty"]


def check_weight_penalty(pen, name: str, block: str) -> Penalty:
    """``pen_ab`` / ``pen_cd`` of the trainers, checked: None (no penalty), a penalty name
    (strength 0) or a :class:`~lifted_idl.penalties.Penalty` with a view on ``block``
    (``"ab"`` or ``"cd"``); a ValueError naming ``name`` otherwise."""
    if pen is None:
        return NoPenalty()
    if isinstance(pen, GroupPenalty):
        raise ValueError(f"{name} must act on one block's weights; the group penalty couples B "
                         f"and D: pass it as group=; got {name}={pen!r}")
    if not isinstance(pen, (Penalty, str)):
        raise ValueError(f"{name} must be None, a penalty name or a Penalty (not one block's "
                         f"view of one); got {name}={pen!r}")
    pen = get_penalty(pen, 0.0)
    pen.restrict(block)  # a penalty on all of (A, B, C, D) at once raises here
    return pen


def group_terms(B, C, D, group=None, c_ridge: float = 0.0) -> float:
    r"""The feature-selection penalty [IDL (5.1)] plus its ridge on C (theory §6).

    :math:`\alpha_g\sum_j\|[B; D]e_j\|_r + \tfrac{\beta}{2}\|C\|_F^2`, with ``group`` a
    :class:`~lifted_idl.penalties.GroupPenalty` (or None: no group term) and
    :math:`\beta` = ``c_ridge``.
    """
    v = 0.5 * c_ridge * float(np.vdot(C, C)) if c_ridge else 0.0
    return v + group.value({"B": B, "D": D}) if group is not None else v


def training_objective(loss_value: float, A, B, C, D, *, pen_ab=None, pen_cd=None, group=None,
                       c_ridge: float = 0.0, model_penalty: float = 0.0, AB=None,
                       CD=None) -> float:
    r"""The training objective given the loss value: the loss plus every penalty.

    Parameters
    ----------
    loss_value : float
        :math:`\mathcal L(Y, \hat Y)` at the model's equilibrium.
    A, B, C, D : arrays
        The weights.
    pen_ab, pen_cd : Penalty, optional
        Penalties seen through their views on ``[A B]`` and ``[C D]``
        (:meth:`~lifted_idl.penalties.Penalty.restrict`; None: no term).
    group : GroupPenalty, optional
        The feature-selection penalty on ``(B, D)``.
    c_ridge : float, default=0.0
        :math:`\beta`, the ridge :math:`\tfrac{\beta}{2}\|C\|_F^2`.
    model_penalty : float, default=0.0
        The value of a penalty on the whole model (robust training).
    AB, CD : arrays, optional
        ``[A B]`` and ``[C D]`` when the caller already holds them contiguous (no copy).

    Returns
    -------
    float
    """
    total = loss_value
    if pen_ab is not None:
        total += pen_ab.restrict("ab").value(np.hstack([A, B]) if AB is None else AB)
    if pen_cd is not None:
        total += pen_cd.restrict("cd").value(np.hstack([C, D]) if CD is None else CD)
    total += model_penalty
    return total + group_terms(B, C, D, group, c_ridge)


def true_objective(model, U, Y, loss, pen_ab=None, pen_cd=None, X=None, *, group=None,
                   c_ridge: float = 0.0, sample_weight=None) -> float:
    """Training objective of the real model: loss at the equilibrium plus penalties.

    ``X`` is the model's equilibrium at ``U`` when already known (solved otherwise); with
    ``sample_weight`` the loss is the weighted average over samples
    (:func:`~lifted_idl.losses.unit_mean_weights`); the other arguments are those of
    :func:`training_objective`.
    """
    if X is None:
        X = model.equilibrium(U)
    Yhat = model.output(X, U)
    return training_objective(loss.value(Y, Yhat, sample_weight=sample_weight), model.A,
                              model.B, model.C, model.D, pen_ab=pen_ab, pen_cd=pen_cd,
                              group=group, c_ridge=c_ridge)
