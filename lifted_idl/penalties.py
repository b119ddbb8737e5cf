r"""Penalties: one interface on the model's parameters, and the view each BCD block takes.

A :class:`Penalty` is a function of the model's parameter dict ``params`` (the arrays
``"A", "B", "C", "D"``, or an :class:`~lifted_idl.ImplicitModel`), the dict that gradient
training already works on:

* ``value(params)``: the penalty's value;
* ``grad(params)``: its gradient (a dict over the parameters it reads, ``keys``), when
  ``smooth``;
* ``prox(params, step)``: :math:`\arg\min_V \tfrac12\|V - \mathrm{params}\|^2 +
  \mathrm{step}\cdot\mathrm{pen}(V)` (a dict over ``keys``), when it has one;
* ``cvxpy(params)``: its cvxpy expression (``params``: a dict of cvxpy expressions), when it
  has one;
* ``restrict(block, params)``: the view one BCD block needs, a convex function of that
  block's own matrix, ``[A B]`` (``block="ab"``) or ``[C D]`` (``block="cd"``), the other
  parameters fixed at ``params`` (a :class:`BlockView`);
* ``constraints``: the training constraints of
  :func:`~lifted_idl.training.gradient.fit_gradient` under which the value is finite.

The penalties:

* :class:`NoPenalty`: 0;
* :class:`L2Penalty`: :math:`\tfrac{\alpha}{2}(\|A\|_F^2 + \|B\|_F^2 + \|C\|_F^2 +
  \|D\|_F^2)` (ridge);
* :class:`L1Penalty`: :math:`\alpha(\|A\|_1 + \|B\|_1 + \|C\|_1 + \|D\|_1)` (entrywise,
  sparsity [IDL §5]);
* :class:`GroupPenalty`: the feature-selection penalty of [IDL (5.1)] (theory §6),

  .. math:: \mathcal P(B, D) = \alpha_g \sum_{j=1}^p
            \left\| \begin{pmatrix} B \\ D \end{pmatrix} e_j \right\|_r ,
            \qquad r \in \{2, \infty\};

* the robustness penalties of :mod:`lifted_idl.robustness.penalties` (the Lipschitz
  surrogate [IDL (4.7)] and the sensitivity penalty), which act on all four matrices at once
  and have no block view.

The entrywise penalties are separable over the blocks, so their views need no fixed part and
their value is the sum of their views' values; :class:`GroupPenalty` couples B and D, so its
view on one block holds the other block's part fixed (:class:`GroupView`), and its value
there is the whole :math:`\mathcal P(B, D)`.

The views (:class:`ZeroView`, :class:`L2View`, :class:`L1View`, :class:`GroupView`) act on
one matrix ``W``: ``value(W)``, ``grad(W)``, ``prox(W, step)`` and ``cvxpy(W)``. The block
solvers of :mod:`lifted_idl.blocks` take a penalty (and restrict it themselves) or a view.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping

import numpy as np

from ._array import to_numpy
from ._validation import check_choice, check_finite_matrix, check_real

__all__ = [
    "Penalty",
    "NoPenalty",
    "L2Penalty",
    "L1Penalty",
    "GroupPenalty",
    "BlockView",
    "ZeroView",
    "L2View",
    "L1View",
    "GroupView",
    "as_params",
    "group_prox",
    "l1_thresholds",
    "get_penalty",
]

PARAM_KEYS = ("A", "B", "C", "D")
_BLOCKS = {"ab": ("A", "B"), "cd": ("C", "D")}


def as_params(params, keys=PARAM_KEYS) -> dict:
    """The arrays ``keys`` of ``params`` as float64 NumPy arrays.

    ``params`` is a dict (other keys, such as the biases, are ignored) or an
    :class:`~lifted_idl.ImplicitModel` (CuPy arrays are copied to the host). A missing key
    raises a ValueError that names it.
    """
    if not isinstance(params, Mapping):
        if not all(hasattr(params, k) for k in keys):
            raise ValueError(f"params must be a dict with keys {list(keys)} or an "
                             f"ImplicitModel; got {type(params).__name__}")
        params = {k: getattr(params, k) for k in keys}
    out = {}
    for k in keys:
        if params.get(k) is None:
            raise ValueError(f"params is missing {k!r}; it needs keys {list(keys)}")
        out[k] = np.asarray(to_numpy(params[k]), dtype=np.float64)
    return out


def _check_block(block) -> str:
    return check_choice("block", block, ("ab", "cd"))


class Penalty:
    """Base class: a penalty on the model's parameter dict (see the module docstring).

    Attributes
    ----------
    alpha : float
        The strength (>= 0).
    smooth : bool
        Whether :meth:`grad` exists (the non-smooth penalties have a :meth:`prox`).
    keys : tuple of str
        The parameters the penalty reads; :meth:`grad` and :meth:`prox` return these keys.
    constraints : tuple of str
        The training constraints of :func:`~lifted_idl.training.gradient.fit_gradient`
        under which the value is finite (``"inf_norm"``: :math:`\\|A\\|_\\infty \\le \\kappa
        < 1`; ``"mu_inf"``: :math:`\\mu_\\infty(A) \\le \\kappa < 1`).
    """

    name = "penalty"
    smooth = True
    keys: tuple[str, ...] = PARAM_KEYS
    constraints: tuple[str, ...] = ("inf_norm", "mu_inf")

    def __init__(self, alpha: float = 0.0):
        self.alpha = check_real("alpha", alpha, 0)

    def value(self, params) -> float:  # pragma: no cover - abstract
        raise TypeError(f"{type(self).__name__} does not define value")

    def grad(self, params) -> dict:
        raise TypeError(f"{type(self).__name__} is not smooth: it has no grad")

    def prox(self, params, step) -> dict:
        r""":math:`\arg\min_V \tfrac12\|V - \mathrm{params}\|_F^2 +
        \mathrm{step}\cdot\mathrm{pen}(V)`, over the parameters ``keys``."""
        raise TypeError(f"{type(self).__name__} does not define prox")

    def cvxpy(self, params):
        """cvxpy expression of the value (``params``: a dict of cvxpy expressions or arrays)."""
        raise TypeError(f"{type(self).__name__} does not define a cvxpy form")

    def restrict(self, block: str, params=None) -> BlockView:
        """The view of BCD block ``block`` (``"ab"``: on ``[A B]``, ``"cd"``: on ``[C D]``),
        the other parameters fixed at ``params``."""
        raise ValueError(
            f"{type(self).__name__} acts on all of (A, B, C, D) at once and has no view on one "
            "BCD block; train with fit_gradient(model_penalty=...) instead")

    def __repr__(self):
        return f"{type(self).__name__}(alpha={self.alpha})"


# --------------------------------------------------------------------------------------------
# the views: a convex function of one block's matrix
# --------------------------------------------------------------------------------------------
class BlockView:
    """Base class of the views: a convex function of one BCD block's matrix ``W``.

    ``W`` is ``[A B]`` for the (A, B) block or ``[C D]`` for the (C, D) block. A view has
    ``value(W)``, ``grad(W)`` (when ``smooth``), ``prox(W, step)`` (``step`` a scalar or an
    array of W's shape) and ``cvxpy(W)`` (W a cvxpy expression). Build one with
    :meth:`Penalty.restrict`.
    """

    name = "view"
    smooth = True

    def __init__(self, alpha: float = 0.0):
        self.alpha = check_real("alpha", alpha, 0)

    def value(self, W) -> float:  # pragma: no cover - abstract
        raise TypeError(f"{type(self).__name__} does not define value")

    def grad(self, W):
        raise TypeError(f"{type(self).__name__} is not smooth")

    def prox(self, W, step):  # pragma: no cover - abstract
        r""":math:`\arg\min_V \tfrac{1}{2}\|V - W\|_F^2 + \mathrm{step}\cdot\mathrm{pen}(V)`."""
        raise TypeError(f"{type(self).__name__} does not define prox")

    def cvxpy(self, W):  # pragma: no cover - abstract
        raise TypeError(f"{type(self).__name__} does not define a cvxpy form")

    def __repr__(self):
        return f"{type(self).__name__}(alpha={self.alpha})"


class ZeroView(BlockView):
    """The zero function (the view of :class:`NoPenalty`)."""

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


class L2View(BlockView):
    r"""Ridge on one matrix, :math:`\tfrac\alpha2\|W\|_F^2` (the view of :class:`L2Penalty`)."""

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


class L1View(BlockView):
    r"""Lasso on one matrix, :math:`\alpha\|W\|_1`; its prox is soft thresholding (the view of
    :class:`L1Penalty`)."""

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


# --------------------------------------------------------------------------------------------
# the entrywise penalties: one view applied to each of A, B, C, D
# --------------------------------------------------------------------------------------------
class _Entrywise(Penalty):
    """A penalty that applies the same function, its view, to each of A, B, C and D: its
    value is the sum of its views' values on ``[A B]`` and ``[C D]``, and it needs no fixed
    part."""

    view_class = BlockView

    def __init__(self, alpha: float = 0.0):
        super().__init__(alpha)
        self._view = self.view_class(self.alpha)

    def value(self, params) -> float:
        P = as_params(params)
        return float(sum(self._view.value(P[k]) for k in PARAM_KEYS))

    def grad(self, params) -> dict:
        if not self.smooth:
            return super().grad(params)
        P = as_params(params)
        return {k: self._view.grad(P[k]) for k in PARAM_KEYS}

    def prox(self, params, step) -> dict:
        """The prox, entry by entry; ``step`` is a scalar or a dict of per-entry steps with
        the keys ``"A", "B", "C", "D"``."""
        P = as_params(params)
        return {k: self._view.prox(P[k], step[k] if isinstance(step, Mapping) else step)
                for k in PARAM_KEYS}

    def cvxpy(self, params):
        """cvxpy expression of the value (``params``: a dict of cvxpy expressions)."""
        return sum(self._view.cvxpy(params[k]) for k in PARAM_KEYS)

    def restrict(self, block: str, params=None) -> BlockView:
        """The same function on the block's matrix (no fixed part: ``params`` unused)."""
        _check_block(block)
        return self._view


class NoPenalty(_Entrywise):
    """No penalty (0)."""

    name = "none"
    view_class = ZeroView

    def __init__(self, alpha: float = 0.0):
        super().__init__(0.0)


class L2Penalty(_Entrywise):
    r"""Ridge on the weights, :math:`\tfrac\alpha2(\|A\|_F^2 + \|B\|_F^2 + \|C\|_F^2 +
    \|D\|_F^2)`; each block sees :math:`\tfrac\alpha2\|W\|_F^2` (:class:`L2View`)."""

    name = "l2"
    view_class = L2View


class L1Penalty(_Entrywise):
    r"""Entrywise lasso on the weights, :math:`\alpha(\|A\|_1 + \|B\|_1 + \|C\|_1 + \|D\|_1)`;
    each block sees :math:`\alpha\|W\|_1` (:class:`L1View`), whose prox is soft
    thresholding."""

    name = "l1"
    smooth = False
    view_class = L1View


# --------------------------------------------------------------------------------------------
# the group penalty of [IDL (5.1)]
# --------------------------------------------------------------------------------------------
def _check_ord(ord) -> float:
    """The group norm: 2 or ``np.inf`` (also ``"2"``, ``"inf"``)."""
    if isinstance(ord, str):
        ord = ord.strip().lower()
        if ord in ("2", "l2"):
            return 2.0
        if ord in ("inf", "linf"):
            return np.inf
    elif isinstance(ord, numbers.Real) and not isinstance(ord, bool):
        if ord == 2:
            return 2.0
        if ord == np.inf:
            return np.inf
    raise ValueError(f"ord must be 2 or np.inf (the column norm of [IDL (5.1)]); got ord={ord!r}")


def _column_norms(V: np.ndarray, ord: float) -> np.ndarray:
    if V.shape[0] == 0:
        return np.zeros(V.shape[1])
    if ord == 2:
        return np.sqrt(np.einsum("ij,ij->j", V, V))
    return np.abs(V).max(axis=0)


def _group_steps(step, p: int, n_cols: int | None = None) -> np.ndarray:
    """One prox step per group, shape (p,), from a scalar, a (p,) vector, or an array that is
    constant along the rows of every penalised column (e.g. per-row steps all equal)."""
    s = np.asarray(step, dtype=np.float64)
    if s.ndim == 0:
        s = np.full(p, float(s))
    elif s.ndim == 1 and s.shape[0] == p:
        s = s.copy()
    elif s.ndim == 2 and s.shape[1] in (1, p) or (
            s.ndim == 2 and n_cols is not None and s.shape[1] == n_cols):
        if s.shape[1] == n_cols and n_cols != p:
            s = s[:, n_cols - p:]
        if s.shape[0] > 1 and np.any(s.max(axis=0) != s.min(axis=0)):
            raise ValueError(
                "the group prox needs one step per group (column): got steps that differ "
                f"between rows (min {s.min():.6g}, max {s.max():.6g}); pass a scalar step or "
                "one step per column")
        s = np.broadcast_to(s[0], (p,)).astype(np.float64)
    else:
        raise ValueError(
            f"step must be a scalar, a vector of {p} per-group steps, or an array constant along "
            f"the rows of the penalised columns; got step of shape {s.shape}")
    if not np.all(np.isfinite(s)) or np.any(s < 0):
        raise ValueError(f"step must be finite and >= 0; got step={step!r}")
    return s


def l1_thresholds(V: np.ndarray, radius: np.ndarray) -> np.ndarray:
    r"""Per column j, the :math:`\theta_j \ge 0` with :math:`\sum_i (|V_{ij}| - \theta_j)_+ =
    r_j` (0 when :math:`\|V_{:j}\|_1 \le r_j`): the soft-threshold level of the projection
    onto the l1 ball (theory §3)."""
    r, p = V.shape
    theta = np.zeros(p)
    if r == 0 or p == 0:
        return theta
    absV = np.abs(V)
    outside = absV.sum(axis=0) > radius
    if not outside.any():
        return theta
    S = -np.sort(-absV[:, outside], axis=0)
    css = np.cumsum(S, axis=0) - radius[outside]
    k = np.arange(1, r + 1, dtype=np.float64)[:, None]
    cond = S * k > css
    last = r - 1 - np.argmax(cond[::-1], axis=0)
    theta[outside] = np.maximum(css[last, np.arange(S.shape[1])] / (last + 1.0), 0.0)
    return theta


def _prox_l2_fixed(V, delta, t):
    r"""Exact prox of :math:`v \mapsto t\|(v, d)\|_2` with :math:`\|d\|_2 = \delta`, per column.

    The minimiser is :math:`x = v\,\rho/(\rho + t)` with :math:`\rho = \|(x, d)\|_2`; for
    :math:`\delta = 0` the block soft threshold. For :math:`\delta > 0`, :math:`\rho` is the
    unique positive root of :math:`\rho^2[(\rho + t)^2 - a^2] = \delta^2(\rho + t)^2`
    (:math:`a = \|v\|_2`), i.e. of

    .. math:: L(y) = \log\rho + \tfrac12\log(y + (t - a)_+) + \tfrac12\log(\rho + t + a)
              - \log(\rho + t) - \log\delta = 0, \qquad \rho = y + (a - t)_+ ,

    increasing in :math:`y > 0` (the factorisation
    :math:`(\rho + t)^2 - a^2 = (\rho + t - a)(\rho + t + a)` removes the cancellation near
    :math:`a = t`). In :math:`x = \log y` the slope of :math:`L` stays within about
    :math:`[\tfrac12, 2]` over the whole range (every regime is a power law: :math:`\rho
    \propto \delta`, :math:`\rho^{3/2} \propto \delta`, :math:`y \propto \delta^2`), so a
    Newton iteration in :math:`x`, safeguarded by bisection in the bracket
    :math:`\rho \in [\max(\delta, a - t), \|(a, \delta)\|]`, converges in a few steps
    whatever the scales (columns of norm 1e-14 or 1e-300 included) on all columns at once.
    """
    # column norms without underflow (entries below 1e-154 square to 0)
    big = np.abs(V).max(axis=0, initial=0.0)
    Vs = V / np.where(big > 0, big, 1.0)
    a = big * np.sqrt(np.einsum("ij,ij->j", Vs, Vs))
    shrink = np.ones_like(a)
    zero_d = delta <= 0
    with np.errstate(divide="ignore", invalid="ignore"):
        shrink[zero_d] = np.where(a[zero_d] > t[zero_d], 1.0 - t[zero_d] / a[zero_d], 0.0)
    todo = ~zero_d & (t > 0) & (a > 0)
    if not todo.any():
        return V * shrink
    aa, dd, tt = a[todo], delta[todo], t[todo]
    base = np.maximum(aa - tt, 0.0)  # rho = y + base
    gap = np.maximum(tt - aa, 0.0)  # rho + t - a = y + gap
    s = aa + tt
    log_d = np.log(dd)
    R = np.hypot(aa, dd)
    # bracket for y: rho <= ||(a, delta)||; rho >= delta (a <= t), and for a > t
    # y = delta^2 (rho + t)^2 / (rho^2 (rho + t + a)) >= delta^2 / (R + t + a)
    y_hi = np.maximum(R - base, 1e-300)
    y_lo = np.where(aa <= tt, dd, dd * (dd / (R + s)))
    y_lo = np.minimum(np.maximum(y_lo, 1e-300), y_hi)
    with np.errstate(divide="ignore", over="ignore", under="ignore"):
        xl, xh = np.log(y_lo), np.log(y_hi)
        x = 0.5 * (xl + xh)
        done = np.zeros(x.shape, dtype=bool)
        for _ in range(100):
            y = np.exp(x)
            rho = y + base
            L = (np.log(rho) + 0.5 * np.log(y + gap) + 0.5 * np.log(rho + s) - np.log(rho + tt)
                 - log_d)
            dL = y * (1.0 / rho + 0.5 / (y + gap) + 0.5 / (rho + s) - 1.0 / (rho + tt))
            xl = np.where(L < 0, x, xl)
            xh = np.where(L > 0, x, xh)
            with np.errstate(invalid="ignore"):
                newton = x - L / dL
            tiny = 1e-15 + 8.0 * np.spacing(np.abs(x))
            done |= (L == 0) | (np.abs(newton - x) <= tiny) | (xh - xl <= tiny)
            if done.all():
                break
            new = np.clip(newton, xl, xh)
            # a Newton point past the end of the bracket where x already is: bisect
            bad = ~np.isfinite(newton) | (new == x)
            x = np.where(done, x, np.where(bad, 0.5 * (xl + xh), new))
        rho = np.exp(x) + base
    shrink[todo] = rho / (rho + tt)
    return V * shrink


def _prox_linf_fixed(V, delta, t):
    r"""Exact prox of :math:`v \mapsto t\max(\|v\|_\infty, \delta)`, per column.

    :math:`\min_x \tfrac12\|x - v\|^2 + t\max(\|x\|_\infty, \delta) = \min_{\mu \ge \delta}
    \tfrac12\|(|v| - \mu)_+\|^2 + t\mu`: the minimiser is :math:`x = \mathrm{clip}(v, -\mu,
    \mu)` with :math:`\mu = \max(\theta, \delta)` and :math:`\theta` the soft-threshold level of
    the l1-ball projection of v with radius t (Moreau: :math:`\delta = 0` gives
    :math:`v - \Pi_{\|\cdot\|_1 \le t}(v)`).
    """
    mu = np.maximum(l1_thresholds(V, t), delta)
    return np.clip(V, -mu, mu)


def _prox_group_columns(V, delta, t, ord):
    """Prox of :math:`\\sum_j t_j\\|(V_{:j}, d_j)\\|_{ord}` with fixed parts of norms delta."""
    if V.size == 0:
        return V.copy()
    if ord == 2:
        return _prox_l2_fixed(V, delta, t)
    return _prox_linf_fixed(V, delta, t)


def group_prox(B, D, step, alpha: float, ord=2):
    r"""Exact prox of the joint group penalty [IDL (5.1)] (theory §6).

    .. math::

        \operatorname*{arg\,min}_{B', D'}\ \tfrac12\|B' - B\|_F^2 + \tfrac12\|D' - D\|_F^2
        + \mathrm{step}\cdot\alpha \sum_j \left\|\begin{pmatrix} B' \\ D' \end{pmatrix}
        e_j\right\|_r

    column by column: the block soft threshold
    :math:`w_j (1 - t/\|w_j\|_2)_+` for :math:`r = 2`, and
    :math:`w_j - \Pi_{\|\cdot\|_1 \le t}(w_j)` (Moreau) for :math:`r = \infty`, with
    :math:`w_j = (B e_j; D e_j)` and :math:`t = \mathrm{step}\,\alpha`.

    Parameters
    ----------
    B : array of shape (n, p)
    D : array of shape (q, p)
    step : float or array of shape (p,)
        Prox step, one for all groups or one per group (>= 0).
    alpha : float
        Strength :math:`\alpha_g \ge 0`.
    ord : {2, np.inf}, default=2
        The column norm r.

    Returns
    -------
    B_new, D_new : arrays of shapes (n, p) and (q, p)
    """
    ordv = _check_ord(ord)
    alpha = GroupPenalty(alpha, ordv).alpha
    B = check_finite_matrix("B", B)
    D = check_finite_matrix("D", D)
    if B.shape[1] != D.shape[1]:
        raise ValueError(f"B and D must have the same number of columns (features); got "
                         f"B.shape={B.shape}, D.shape={D.shape}")
    p = B.shape[1]
    t = _group_steps(step, p) * alpha
    W = _prox_group_columns(np.vstack([B, D]), np.zeros(p), t, ordv)
    return W[:B.shape[0]].copy(), W[B.shape[0]:].copy()


class GroupView(BlockView):
    r"""One block's view of the group penalty [IDL (5.1)], the other block's part fixed.

    On a matrix ``W`` whose last :math:`p` columns are the penalised part :math:`V` (B in
    ``[A B]``, or D in ``[C D]``), with the fixed matrix :math:`F` (D, or B) of p columns:

    .. math:: \mathrm{pen}(W) = \alpha \sum_{j=1}^p \left\|\begin{pmatrix} V e_j \\ F e_j
              \end{pmatrix}\right\|_r ,

    a convex function of :math:`V` (a norm of an affine map), equal to the group penalty
    :math:`\mathcal P(B, D)` of [IDL (5.1)] at the fixed part, plus an optional ridge
    :math:`\tfrac{\beta}{2}\|W_0\|_F^2` on the other columns :math:`W_0` of ``W`` (A, or C;
    0 by default). Build it with :meth:`GroupPenalty.restrict`.

    Parameters
    ----------
    alpha : float
        Strength :math:`\alpha_g \ge 0`.
    fixed : array of shape (k, p)
        The fixed part F.
    ord : {2, np.inf}, default=2
    block : {"ab", "cd"}, default="ab"
        Which block the penalty is for (only used in messages and ``repr``).
    ridge : float, default=0.0
        :math:`\beta \ge 0`, the ridge on the other columns (A or C).
    """

    name = "group_view"
    smooth = False

    def __init__(self, alpha: float, fixed, ord=2, block: str = "ab", ridge: float = 0.0):
        super().__init__(alpha)
        self.ridge = check_real("ridge", ridge, 0)
        self.ord = _check_ord(ord)
        self.block = check_choice("block", block, ("ab", "cd"))
        self.fixed = check_finite_matrix("fixed", fixed).copy()
        self.fixed.setflags(write=False)
        self.n_groups = self.fixed.shape[1]
        self.fixed_norms = _column_norms(self.fixed, self.ord)

    def _part(self, W):
        W = np.asarray(W)
        p = self.n_groups
        if W.ndim != 2 or W.shape[1] < p:
            raise ValueError(
                f"W must be 2-D with at least {p} columns (its last {p} are the penalised "
                f"{'B' if self.block == 'ab' else 'D'}); got shape {W.shape}")
        return W.shape[1] - p

    # -- on the penalised part only (used inside the solvers) --------------------------------
    def value_part(self, V) -> float:
        """Penalty value for the penalised columns ``V`` of shape (r, p)."""
        norms = _column_norms(V, self.ord)
        if self.ord == 2:
            tot = np.hypot(norms, self.fixed_norms)
        else:
            tot = np.maximum(norms, self.fixed_norms)
        return self.alpha * float(tot.sum())

    def prox_part(self, V, step):
        """Prox of ``step * pen`` on the penalised columns ``V`` (step: scalar or (p,))."""
        t = _group_steps(step, self.n_groups) * self.alpha
        return _prox_group_columns(np.asarray(V, dtype=np.float64), self.fixed_norms, t,
                                   self.ord)

    def column_norms(self, W) -> np.ndarray:
        r"""The group norms :math:`\|(V e_j; F e_j)\|_r`, shape (p,)."""
        k = self._part(W)
        norms = _column_norms(np.asarray(W, dtype=np.float64)[:, k:], self.ord)
        if self.ord == 2:
            return np.hypot(norms, self.fixed_norms)
        return np.maximum(norms, self.fixed_norms)

    # -- the view's interface, on the whole W ------------------------------------------------
    def value(self, W):
        k = self._part(W)
        W = np.asarray(W, dtype=np.float64)
        v = self.value_part(W[:, k:])
        if self.ridge:
            v += 0.5 * self.ridge * float(np.vdot(W[:, :k], W[:, :k]))
        return v

    def prox(self, W, step):
        r""":math:`\arg\min_{W'} \tfrac12\|W' - W\|_F^2 + \mathrm{step}\cdot\mathrm{pen}(W')`:
        the other columns are kept (divided by :math:`1 + \mathrm{step}\,\beta` with a ridge),
        the penalised ones go through the exact group prox.

        ``step`` is a scalar, one step per group (shape (p,)), or an array constant along the
        rows of the penalised columns; steps that differ between rows of a group raise."""
        k = self._part(W)
        W = np.array(W, dtype=np.float64)
        t = _group_steps(step, self.n_groups, W.shape[1])
        W[:, k:] = _prox_group_columns(W[:, k:], self.fixed_norms, t * self.alpha, self.ord)
        if self.ridge and k:
            s = np.asarray(step, dtype=np.float64)
            if s.ndim == 2 and s.shape[1] == W.shape[1]:
                s = s[:, :k]
            elif s.ndim == 2 and s.shape[1] == 1:
                pass
            elif s.ndim != 0:
                raise ValueError(
                    "with a ridge, step must be a scalar or an array of W's width (the ridge "
                    f"columns need their steps); got step of shape {s.shape}")
            W[:, :k] /= 1.0 + s * self.ridge
        return W

    def cvxpy(self, W):
        import cvxpy as cp

        k = W.shape[1] - self.n_groups
        expr = cp.Constant(0.0)
        if self.n_groups and self.alpha > 0:
            # the fixed part enters through its column norms only:
            # ||(v, f)||_2 = ||(v, ||f||_2)||_2 and max(||v||_inf, ||f||_inf)
            V = W[:, k:]
            S = cp.vstack([V, self.fixed_norms[None, :]])
            if self.ord == 2:
                expr = self.alpha * cp.sum(cp.norm(S, 2, axis=0))
            else:
                expr = self.alpha * cp.sum(cp.max(cp.abs(S), axis=0))
        if self.ridge and k:
            expr = expr + 0.5 * self.ridge * cp.sum_squares(W[:, :k])
        return expr

    def __repr__(self):
        o = "2" if self.ord == 2 else "inf"
        extra = f", ridge={self.ridge}" if self.ridge else ""
        return (f"GroupView(alpha={self.alpha}, ord={o}, block={self.block!r}, "
                f"fixed shape={self.fixed.shape}{extra})")


class GroupPenalty(Penalty):
    r"""The feature-selection penalty of [IDL (5.1)] (theory §6).

    .. math:: \mathcal P(B, D) = \alpha \sum_{j=1}^p \left\|\begin{pmatrix} B \\ D
              \end{pmatrix} e_j\right\|_r, \qquad r \in \{2, \infty\}

    (the paper's :math:`\alpha > 1` is the norm order ``ord`` here; ``alpha`` is the strength
    :math:`\alpha_g`). A zero column j of :math:`[B; D]` means input j is unused [IDL §5.1].

    The penalty couples the (A, B) and (C, D) blocks of BCD; each block sees a convex penalty in
    its own variables with the other part fixed, :meth:`restrict` (a :class:`GroupView`,
    accepted by :func:`~lifted_idl.blocks.solve_ab` and :func:`~lifted_idl.blocks.solve_cd`).
    A gradient method on all parameters, and the joint (B, D) block, use the joint
    :meth:`prox` (:func:`group_prox`).

    Parameters
    ----------
    alpha : float, default=0.0
        Strength :math:`\alpha_g \ge 0`.
    ord : {2, np.inf}, default=2
        The column norm r.
    """

    name = "group"
    smooth = False
    keys = ("B", "D")

    def __init__(self, alpha: float = 0.0, ord=2):
        super().__init__(alpha)
        self.ord = _check_ord(ord)

    def _pair(self, params):
        P = params if isinstance(params, Mapping) else as_params(params, self.keys)
        for k in self.keys:
            if P.get(k) is None:
                raise ValueError(f"params is missing {k!r}; it needs keys {list(self.keys)}")
        B = check_finite_matrix("B", P["B"])
        D = check_finite_matrix("D", P["D"])
        if B.shape[1] != D.shape[1]:
            raise ValueError(f"B and D must have the same number of columns (features); got "
                             f"B.shape={B.shape}, D.shape={D.shape}")
        return B, D

    def column_norms(self, params) -> np.ndarray:
        r"""The group norms :math:`\|[B; D] e_j\|_r`, shape (p,)."""
        B, D = self._pair(params)
        return _column_norms(np.vstack([B, D]), self.ord)

    def value(self, params) -> float:
        r""":math:`\mathcal P(B, D)` of [IDL (5.1)]."""
        return self.alpha * float(self.column_norms(params).sum())

    def prox(self, params, step) -> dict:
        """The joint prox of B and D, :func:`group_prox` (``step``: a scalar or one step per
        group, shape (p,))."""
        B, D = self._pair(params)
        Bn, Dn = group_prox(B, D, step, self.alpha, self.ord)
        return {"B": Bn, "D": Dn}

    def restrict(self, block: str, params=None, ridge: float = 0.0) -> GroupView:
        r"""The penalty block ``block`` sees, the other block's part fixed at ``params``.

        ``"ab"``: on ``[A B]``, acting on B, with ``params["D"]`` fixed; ``"cd"``: on
        ``[C D]``, acting on D, with ``params["B"]`` fixed. Either adds the optional ridge
        :math:`\tfrac{\beta}{2}\|W_0\|_F^2` (``ridge``) on the block's other columns (A or C).

        For a positively homogeneous activation (ReLU) the rescaling
        :math:`(B, b, C) \to (sB, sb, C/s)` leaves the predictions unchanged and lowers
        :math:`\mathcal P(B, D)` as :math:`s \to 0`: without a bound on C the penalised
        problem has no minimiser (B shrinks to 0 while C grows). A ridge on C restores one.
        """
        block = _check_block(block)
        other = "D" if block == "ab" else "B"
        fixed = None if params is None else (
            params.get(other) if isinstance(params, Mapping) else getattr(params, other, None))
        if fixed is None:
            raise ValueError(
                f"the group penalty couples B and D: its view on the ({block[0].upper()}, "
                f"{block[1].upper()}) block needs the fixed {other}; pass "
                f"group.restrict({block!r}, {{{other!r}: {other}}})")
        return GroupView(self.alpha, np.asarray(to_numpy(fixed), dtype=np.float64), self.ord,
                         block=block, ridge=ridge)

    def cvxpy(self, params):
        """cvxpy expression of :math:`\\mathcal P(B, D)` (``params["B"]``, ``params["D"]``:
        cvxpy expressions or arrays)."""
        import cvxpy as cp

        S = cp.vstack([params["B"], params["D"]])
        if self.ord == 2:
            return self.alpha * cp.sum(cp.norm(S, 2, axis=0))
        return self.alpha * cp.sum(cp.max(cp.abs(S), axis=0))

    def __repr__(self):
        o = "2" if self.ord == 2 else "inf"
        return f"GroupPenalty(alpha={self.alpha}, ord={o})"


_TABLE = {"none": NoPenalty, None: NoPenalty, "l2": L2Penalty, "l1": L1Penalty}


def get_penalty(penalty, alpha: float = 0.0) -> Penalty:
    """A :class:`Penalty` from a name (``None``/"none", "l2", "l1") and ``alpha``, or an
    instance."""
    if isinstance(penalty, Penalty):
        return penalty
    if isinstance(penalty, BlockView):
        raise ValueError(
            f"penalty={penalty!r} is one block's view; pass the penalty it restricts (e.g. "
            "L2Penalty(alpha), GroupPenalty(alpha, ord))")
    if penalty in _TABLE:
        return _TABLE[penalty](alpha)
    raise ValueError(
        f"Unknown penalty={penalty!r}; expected one of {[k for k in _TABLE if k]} or a Penalty"
    )
