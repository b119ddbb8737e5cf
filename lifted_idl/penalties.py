r"""Penalties on weight matrices: value, gradient (where smooth), prox, and cvxpy form.

A penalty acts on one matrix ``W`` (``(A, B)`` stacked as ``[A B]``, or ``(C, D)`` stacked as
``[C D]``) with strength ``alpha``:

* :class:`NoPenalty`: 0;
* :class:`L2Penalty`: :math:`\tfrac{\alpha}{2}\|W\|_F^2` (ridge);
* :class:`L1Penalty`: :math:`\alpha\|W\|_1` (entrywise, sparsity [IDL §5]).
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["Penalty", "NoPenalty", "L2Penalty", "L1Penalty", "get_penalty"]


class Penalty:
    """Base class. ``smooth`` says whether :meth:`grad` exists."""

    name = "penalty"
    smooth = True

    def __init__(self, alpha: float = 0.0):
        if not isinstance(alpha, numbers.Real) or not np.isfinite(alpha) or alpha < 0:
            raise ValueError(f"penalty strength alpha must be finite and >= 0; got alpha={alpha!r}")
        self.alpha = float(alpha)

    def value(self, W) -> float:  # pragma: no cover - abstract
        raise TypeError(f"{type(self).__name__} does not define value")

    def grad(self, W):  # pragma: no cover - abstract
        raise TypeError(f"{type(self).__name__} is not smooth")

    def prox(self, W, step: float):
        r""":math:`\arg\min_V \tfrac{1}{2}\|V - W\|_F^2 + \mathrm{step}\cdot\mathrm{pen}(V)`."""
        raise TypeError(f"{type(self).__name__} does not define prox")  # pragma: no cover

    def cvxpy(self, W):  # pragma: no cover - abstract
        raise TypeError(f"{type(self).__name__} does not define a cvxpy form")

    def __repr__(self):
        return f"{type(self).__name__}(alpha={self.alpha})"


class NoPenalty(Penalty):
    name = "none"

    def __init__(self, alpha: float = 0.0):
        super().__init__(0.0)

    def value(self, W):
        return 0.0

    def grad(self, W):
        return np.zeros_like(W)

    def prox(self, W, step):
        return W.copy()

    def cvxpy(self, W):
        import cvxpy as cp

        return cp.Constant(0.0)


class L2Penalty(Penalty):
    r"""Ridge, :math:`\tfrac\alpha2\|W\|_F^2`."""

    name = "l2"

    def value(self, W):
        return 0.5 * self.alpha * float(np.vdot(W, W))

    def grad(self, W):
        return self.alpha * W

    def prox(self, W, step):
        return W / (1.0 + step * self.alpha)

    def cvxpy(self, W):
        import cvxpy as cp

        return 0.5 * self.alpha * cp.sum_squares(W)


class L1Penalty(Penalty):
    r"""Entrywise lasso, :math:`\alpha\|W\|_1`; prox is soft thresholding."""

    name = "l1"
    smooth = False

    def value(self, W):
        return self.alpha * float(np.abs(W).sum())

    def prox(self, W, step):
        t = step * self.alpha
        return np.sign(W) * np.maximum(np.abs(W) - t, 0.0)

    def cvxpy(self, W):
        import cvxpy as cp

        return self.alpha * cp.sum(cp.abs(W))


_TABLE = {"none": NoPenalty, None: NoPenalty, "l2": L2Penalty, "l1": L1Penalty}


def get_penalty(penalty, alpha: float = 0.0) -> Penalty:
    """A :class:`Penalty` from a name (``None``/"none", "l2", "l1") and ``alpha``, or an instance."""
    if isinstance(penalty, Penalty):
        return penalty
    if penalty in _TABLE:
        return _TABLE[penalty](alpha)
    raise ValueError(
        f"Unknown penalty={penalty!r}; expected one of {[k for k in _TABLE if k]} or a Penalty"
    )
