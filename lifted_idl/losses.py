r"""Losses on the predictions :math:`\hat Y` (rows are samples): value, gradient, cvxpy form.

Both are averaged over samples so hyper-parameters do not depend on the sample count m:

* :class:`SquaredLoss`: :math:`\frac{1}{2m}\|Y - \hat Y\|_F^2` (theory §7);
* :class:`SoftmaxCrossEntropy`: :math:`\frac1m\sum_s \big(\mathrm{logsumexp}(\hat y_s) -
  y_s^\top \hat y_s\big)` with one-hot (or probability) rows :math:`y_s`.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp, softmax

__all__ = ["Loss", "SquaredLoss", "SoftmaxCrossEntropy", "get_loss"]


class Loss:
    name = "loss"

    def value(self, Y, Yhat) -> float:  # pragma: no cover - abstract
        raise TypeError(f"{type(self).__name__} does not define value")

    def grad(self, Y, Yhat):  # pragma: no cover - abstract
        """Gradient with respect to ``Yhat`` (same shape)."""
        raise TypeError(f"{type(self).__name__} does not define grad")

    def cvxpy(self, Y, Yhat_expr):  # pragma: no cover - abstract
        """cvxpy expression of :meth:`value` for an affine expression ``Yhat_expr``."""
        raise TypeError(f"{type(self).__name__} does not define a cvxpy form")

    def sample_values(self, Y, Yhat):  # pragma: no cover - abstract
        r"""Per-sample losses :math:`\ell(y_s, \hat y_s)`, shape (m,); :meth:`value` is their
        mean."""
        raise TypeError(f"{type(self).__name__} does not define sample_values")

    def sample_hessians(self, Y, Yhat):  # pragma: no cover - abstract
        r"""Per-sample Hessians :math:`\nabla^2_{\hat y}\ell(y_s, \hat y_s)`, shape (m, q, q).

        The Hessian of :meth:`value` is block diagonal with these blocks divided by m.
        """
        raise TypeError(f"{type(self).__name__} does not define sample_hessians")

    def __repr__(self):
        return f"{type(self).__name__}()"


class SquaredLoss(Loss):
    r""":math:`\frac{1}{2m}\|Y - \hat Y\|_F^2`."""

    name = "squared"
    smoothness = 1.0  # Lipschitz constant of the gradient of the per-sample loss

    def value(self, Y, Yhat):
        R = Yhat - Y
        return 0.5 * float(np.vdot(R, R)) / max(Y.shape[0], 1)

    def grad(self, Y, Yhat):
        return (Yhat - Y) / max(Y.shape[0], 1)

    def cvxpy(self, Y, Yhat_expr):
        import cvxpy as cp

        return 0.5 * cp.sum_squares(Yhat_expr - Y) / max(Y.shape[0], 1)

    def sample_values(self, Y, Yhat):
        R = Yhat - Y
        return 0.5 * np.einsum("ij,ij->i", R, R)

    def sample_hessians(self, Y, Yhat):
        m, q = Yhat.shape
        return np.broadcast_to(np.eye(q), (m, q, q))


class SoftmaxCrossEntropy(Loss):
    r""":math:`\frac1m\sum_s \mathrm{logsumexp}(\hat y_s) - y_s^\top\hat y_s`; ``Y`` one-hot."""

    name = "cross_entropy"
    smoothness = 0.5  # the softmax Jacobian has spectral norm <= 1/2

    def value(self, Y, Yhat):
        return float((logsumexp(Yhat, axis=1) - (Y * Yhat).sum(axis=1)).sum()) / max(
            Y.shape[0], 1
        )

    def grad(self, Y, Yhat):
        return (softmax(Yhat, axis=1) - Y) / max(Y.shape[0], 1)

    def cvxpy(self, Y, Yhat_expr):
        import cvxpy as cp

        m = max(Y.shape[0], 1)
        return (cp.sum(cp.log_sum_exp(Yhat_expr, axis=1)) - cp.sum(cp.multiply(Y, Yhat_expr))) / m

    def sample_values(self, Y, Yhat):
        return logsumexp(Yhat, axis=1) - (Y * Yhat).sum(axis=1)

    def sample_hessians(self, Y, Yhat):
        r""":math:`\mathrm{diag}(s) - ss^\top` with :math:`s = \mathrm{softmax}(\hat y_s)`."""
        S = softmax(Yhat, axis=1)
        H = -S[:, :, None] * S[:, None, :]
        i = np.arange(S.shape[1])
        H[:, i, i] += S
        return H


def get_loss(loss) -> Loss:
    """A :class:`Loss` from ``"squared"``, ``"cross_entropy"`` or an instance."""
    if isinstance(loss, Loss):
        return loss
    table = {"squared": SquaredLoss, "cross_entropy": SoftmaxCrossEntropy}
    if loss in table:
        return table[loss]()
    raise ValueError(f"Unknown loss={loss!r}; expected one of {sorted(table)} or a Loss")
