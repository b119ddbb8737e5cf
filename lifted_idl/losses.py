r"""Losses on the predictions :math:`\hat Y` (rows are samples): value, gradient, cvxpy form.

Both are averaged over samples so hyper-parameters do not depend on the sample count m:

* :class:`SquaredLoss`: :math:`\frac{1}{2m}\|Y - \hat Y\|_F^2` (theory §8);
* :class:`SoftmaxCrossEntropy`: :math:`\frac1m\sum_s \big(\mathrm{logsumexp}(\hat y_s) -
  y_s^\top \hat y_s\big)` with one-hot (or probability) rows :math:`y_s`.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp, softmax

__all__ = ["Loss", "SquaredLoss", "SoftmaxCrossEntropy", "get_loss", "unit_mean_weights"]


def _row_shift(Z):
    """The row maxima of ``Z`` (m, q), with the non-finite ones replaced by 0 (the shift of
    SciPy's ``logsumexp``: a row holding +inf gives +inf, a row of -inf gives -inf, NaN stays
    NaN). The maxima are taken on a column-major copy: a reduction over the short rows of a
    row-major matrix costs several times the copy."""
    zmax = np.asfortranarray(Z).max(axis=1)
    bad = ~np.isfinite(zmax)
    if bad.any():
        zmax[bad] = 0.0
    return zmax


def _shifted_exp(Z):
    """``(exp(Z - shift), shift)`` row by row, with the shift of :func:`_row_shift`."""
    zmax = _row_shift(Z)
    E = Z - zmax[:, None]
    np.exp(E, out=E)
    return E, zmax


def _row_sums(E):
    """Row sums of a non-negative (m, q) matrix as a product (faster than a reduction over
    short rows; inf and NaN propagate as in a sum)."""
    return E @ np.ones(E.shape[1], dtype=E.dtype)


def _is_plain(Z) -> bool:
    """A 2-D floating matrix with at least one column: the case of the NumPy kernels below
    (anything else goes to SciPy)."""
    return (isinstance(Z, np.ndarray) and Z.ndim == 2 and Z.shape[1] > 0
            and Z.dtype.kind == "f")


def log_partition_and_softmax(Z):
    r"""``(logsumexp_rows(Z), softmax_rows(Z))`` from one exponential: the log-partition
    :math:`\log\sum_k e^{z_{sk}}` and the softmax of every row of ``Z`` (m, q), as
    ``scipy.special.logsumexp(Z, axis=1)`` and ``scipy.special.softmax(Z, axis=1)`` (equal up
    to rounding, with their results on rows holding +inf, -inf or NaN: a log-partition of
    +inf, -inf or NaN and a softmax of NaN) at a fraction of their cost on short rows (the
    kernel of every cross-entropy value and gradient of BCD)."""
    if not _is_plain(Z):
        return logsumexp(Z, axis=1), softmax(Z, axis=1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        E, zmax = _shifted_exp(Z)
        tot = _row_sums(E)
        E /= tot[:, None]
        lse = np.log(tot)
    lse += zmax
    bad = ~np.isfinite(lse)
    if bad.any():  # +inf, only -inf, or NaN in the row: SciPy's softmax is NaN there
        E[bad] = np.nan
    return lse, E


def logsumexp_rows(Z):
    """The log-partition of every row of ``Z`` (:func:`log_partition_and_softmax`)."""
    if not _is_plain(Z):
        return logsumexp(Z, axis=1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        E, zmax = _shifted_exp(Z)
        out = np.log(_row_sums(E))
    out += zmax
    return out


def softmax_rows(Z):
    """The softmax of every row of ``Z`` (:func:`log_partition_and_softmax`)."""
    return log_partition_and_softmax(Z)[1]


def unit_mean_weights(sample_weight, m: int):
    r"""Sample weights rescaled to mean 1, :math:`\tilde w_s = m\,w_s/\sum_t w_t`, or None.

    Every data term of the package is an average over the m samples, :math:`\frac1m\sum_s
    (\cdot)_s`; with weights it becomes :math:`\frac{1}{\sum_t w_t}\sum_s w_s(\cdot)_s =
    \frac1m\sum_s\tilde w_s(\cdot)_s`, so that integer weights give the plain average over the
    data with every sample repeated :math:`w_s` times, and zero weights the average without
    those samples. ``None`` (no weights) stays None: the unweighted code paths are used.

    Raises
    ------
    ValueError
        Weights of the wrong shape, negative or not finite, or summing to zero.
    """
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (m,):
        raise ValueError(f"sample_weight must have shape ({m},); got shape {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("sample_weight must be finite and non-negative")
    top = float(w.max(initial=0.0))
    if not top > 0:
        raise ValueError("sample_weight sums to zero: at least one sample needs a positive "
                         "weight")
    if not 1e-100 < top < 1e100:  # only the ratios matter: keep the sum finite
        w = w / top
    return w * (m / float(w.sum()))


def _mean_rows(G, sample_weight=None):
    """Per-sample gradient rows ``G`` scaled as the mean loss weighs them: by 1/m, times the
    unit-mean sample weights when given (in place)."""
    G /= max(G.shape[0], 1)
    if sample_weight is not None:
        G *= unit_mean_weights(sample_weight, G.shape[0])[:, None]
    return G


def _weighted_mean(v, w):
    """Mean of the per-sample values ``v`` (m,), weighted by unit-mean weights ``w``."""
    m = max(v.shape[0], 1)
    return float(v.sum() if w is None else w @ v) / m


class Loss:
    name = "loss"

    def value(self, Y, Yhat, sample_weight=None) -> float:  # pragma: no cover - abstract
        """The loss, averaged over samples (weighted by ``sample_weight``, see
        :func:`unit_mean_weights`)."""
        raise TypeError(f"{type(self).__name__} does not define value")

    def grad(self, Y, Yhat, sample_weight=None):  # pragma: no cover - abstract
        """Gradient of :meth:`value` with respect to ``Yhat`` (same shape)."""
        raise TypeError(f"{type(self).__name__} does not define grad")

    def cvxpy(self, Y, Yhat_expr, sample_weight=None):  # pragma: no cover - abstract
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

    def value(self, Y, Yhat, sample_weight=None):
        R = Yhat - Y
        if sample_weight is None:
            return 0.5 * float(np.vdot(R, R)) / max(Y.shape[0], 1)
        w = unit_mean_weights(sample_weight, Y.shape[0])
        return 0.5 * _weighted_mean(np.einsum("ij,ij->i", R, R), w)

    def grad(self, Y, Yhat, sample_weight=None):
        return _mean_rows(Yhat - Y, sample_weight)

    def cvxpy(self, Y, Yhat_expr, sample_weight=None):
        import cvxpy as cp

        m = max(Y.shape[0], 1)
        if sample_weight is None:
            return 0.5 * cp.sum_squares(Yhat_expr - Y) / m
        w = unit_mean_weights(sample_weight, Y.shape[0])
        return 0.5 * cp.sum_squares(cp.multiply(np.sqrt(w)[:, None], Yhat_expr - Y)) / m

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

    def value(self, Y, Yhat, sample_weight=None):
        v = logsumexp_rows(Yhat) - np.einsum("ij,ij->i", Y, Yhat)
        if sample_weight is None:
            return float(v.sum()) / max(Y.shape[0], 1)
        return _weighted_mean(v, unit_mean_weights(sample_weight, Y.shape[0]))

    def grad(self, Y, Yhat, sample_weight=None):
        return _mean_rows(softmax_rows(Yhat) - Y, sample_weight)

    def cvxpy(self, Y, Yhat_expr, sample_weight=None):
        import cvxpy as cp

        m = max(Y.shape[0], 1)
        if sample_weight is None:
            return (cp.sum(cp.log_sum_exp(Yhat_expr, axis=1))
                    - cp.sum(cp.multiply(Y, Yhat_expr))) / m
        per_sample = (cp.log_sum_exp(Yhat_expr, axis=1)
                      - cp.sum(cp.multiply(Y, Yhat_expr), axis=1))
        return unit_mean_weights(sample_weight, Y.shape[0]) @ per_sample / m

    def sample_values(self, Y, Yhat):
        return logsumexp_rows(Yhat) - np.einsum("ij,ij->i", Y, Yhat)

    def sample_hessians(self, Y, Yhat):
        r""":math:`\mathrm{diag}(s) - ss^\top` with :math:`s = \mathrm{softmax}(\hat y_s)`."""
        S = softmax_rows(Yhat)
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
