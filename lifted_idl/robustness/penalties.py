r"""Robustness penalties on the model parameters: Lipschitz surrogate and sensitivity.

Theory §6 (bounds) and §1 (matrix measure); [IDL §4.3, (4.7)], [NEMON].

* :class:`LipschitzSurrogatePenalty` — the convex surrogate of the l-infinity Lipschitz
  constant [IDL (4.7)],

  .. math:: \alpha\Big(\frac{\tfrac12(\|B\|_\infty^2 + \|C\|_\infty^2)}{1 - a(A)}
            + \|D\|_\infty\Big),\qquad a(A) = \|A\|_\infty \ \text{or}\
            \max(\mu_\infty(A), 0),

  an upper bound (AM–GM) of :math:`\alpha\rho` with :math:`\rho = \|B\|_\infty\|C\|_\infty /
  (1 - a(A)) + \|D\|_\infty` ([IDL §4.3] for :math:`\|A\|_\infty`, [NEMON] for
  :math:`\mu_\infty`);
* :class:`SensitivityPenalty` — :math:`\alpha\|S\|_\infty` with the sensitivity matrix
  :math:`S = |C|(I - |A|)^{-1}|B| + |D|` [IDL Thm 4.2];
* :class:`InputScaledPenalty` — either penalty measured on the raw inputs of a model trained on
  standardised ones (what an estimator needs).

The penalties are :class:`~lifted_idl.penalties.Penalty` objects: ``value(params)`` and
``grad(params)`` (keys ``"A", "B", "C", "D"``) on the parameter dict or an
:class:`~lifted_idl.ImplicitModel`, and ``constraints``, the training constraints under which
the value is finite. They act on all four matrices at once, so they have no view on one BCD
block (``restrict`` raises); they are passed to
:func:`lifted_idl.training.gradient.fit_gradient` as ``model_penalty`` (its
``constraint="mu_inf"`` option, the NE-MON training constraint, projects with
:func:`lifted_idl.wellposedness.project_mu_inf`).
"""

from __future__ import annotations

import numpy as np

from .._validation import check_choice, check_real
from ..exceptions import BoundConditionError
from ..penalties import PARAM_KEYS as _KEYS
from ..penalties import Penalty, as_params

__all__ = [
    "LipschitzSurrogatePenalty",
    "SensitivityPenalty",
    "InputScaledPenalty",
]


def _params(params) -> dict:
    """``A, B, C, D`` as float64 NumPy arrays of consistent shapes, from a dict or a model."""
    out = as_params(params)
    for k in _KEYS:
        if out[k].ndim != 2:
            raise ValueError(f"params[{k!r}] must be 2-D; got shape {out[k].shape}")
        if not np.all(np.isfinite(out[k])):
            raise ValueError(f"params[{k!r}] must be finite; got NaN or inf")
    n = out["A"].shape[0]
    if out["A"].shape != (n, n):
        raise ValueError(f"params['A'] must be square; got shape {out['A'].shape}")
    if out["B"].shape[0] != n or out["C"].shape[1] != n:
        raise ValueError(
            f"params shapes do not match: A {out['A'].shape}, B {out['B'].shape}, "
            f"C {out['C'].shape}"
        )
    if out["D"].shape != (out["C"].shape[0], out["B"].shape[1]):
        raise ValueError(
            f"params['D'] must have shape {(out['C'].shape[0], out['B'].shape[1])}; got "
            f"{out['D'].shape}"
        )
    return out


def _inf_norm_and_subgrad(M: np.ndarray) -> tuple[float, np.ndarray]:
    r""":math:`\|M\|_\infty = \max_i \sum_j |M_{ij}|` and a subgradient
    :math:`e_{i^*}\,\mathrm{sign}(M_{i^*,:})` (row :math:`i^*` attaining the maximum)."""
    G = np.zeros_like(M)
    if M.size == 0:
        return 0.0, G
    rows = np.abs(M).sum(axis=1)
    i = int(np.argmax(rows))
    G[i] = np.sign(M[i])
    return float(rows[i]), G


def _lse_rows_and_grad(M: np.ndarray, tau: float) -> tuple[float, np.ndarray]:
    r"""Log-sum-exp smoothing of :math:`\|M\|_\infty` and its gradient:

    .. math:: \ell_\tau(M) = \tau\log\sum_i \exp(\|m_i\|_1/\tau)
              \in \big[\|M\|_\infty,\ \|M\|_\infty + \tau\log(\#\text{rows})\big],

    gradient :math:`w_i\,\mathrm{sign}(m_i)` on row i with the softmax weights
    :math:`w = \mathrm{softmax}(\|m_i\|_1/\tau)` (a subgradient where an entry is zero)."""
    G = np.zeros_like(M)
    if M.size == 0:
        return 0.0, G
    rows = np.abs(M).sum(axis=1)
    top = float(rows.max())
    w = np.exp((rows - top) / tau)
    tot = float(w.sum())
    G[...] = (w / tot)[:, None] * np.sign(M)
    return top + tau * float(np.log(tot)), G


def _mu_inf_and_subgrad(A: np.ndarray) -> tuple[float, np.ndarray]:
    r""":math:`\mu_\infty(A) = \max_i (a_{ii} + \sum_{j\ne i}|a_{ij}|)` and a subgradient
    (row :math:`i^*`: :math:`\mathrm{sign}(a_{i^*j})` off the diagonal, 1 on it)."""
    G = np.zeros_like(A)
    if A.size == 0:
        return -np.inf, G
    d = np.diag(A)
    rows = d + np.abs(A).sum(axis=1) - np.abs(d)
    i = int(np.argmax(rows))
    G[i] = np.sign(A[i])
    G[i, i] = 1.0
    return float(rows[i]), G


class LipschitzSurrogatePenalty(Penalty):
    r"""Convex surrogate of the l-infinity Lipschitz constant [IDL (4.7)], theory §7.

    .. math::

        \mathrm{pen}(A, B, C, D) = \alpha\Big(\frac{\tfrac12(\|B\|_\infty^2 + \|C\|_\infty^2)}
        {1 - a(A)} + \|D\|_\infty\Big),

    with :math:`a(A) = \|A\|_\infty` (``measure="inf_norm"``, [IDL (4.7)]) or
    :math:`a(A) = \max(\mu_\infty(A), 0)` (``measure="mu_inf"``, the NE-MON form of the bound
    [NEMON], theory §7). By :math:`\tfrac12(b^2 + c^2) \ge bc` it upper-bounds :math:`\alpha`
    times the Lipschitz bound :math:`\rho = \|B\|_\infty\|C\|_\infty/(1 - a(A)) +
    \|D\|_\infty` (:func:`~lifted_idl.robustness.bounds.lipschitz_bound` with ``kind="rho"``,
    resp. ``kind="nemon"``, for slopes in [0, 1]).

    Convexity: :math:`(a, b, c) \mapsto \tfrac12(b^2 + c^2)/(1 - a)` is a quadratic-over-linear
    function, jointly convex on :math:`a < 1` and nondecreasing in :math:`a` and in
    :math:`b, c \ge 0`; composed with the convex :math:`\|\cdot\|_\infty` and
    :math:`\max(\mu_\infty(\cdot), 0)` it stays convex, and :meth:`grad` returns a subgradient
    by the chain rule (row-argmax subgradients of the norms).

    Smoothing. Each norm is a maximum over rows, so a subgradient step touches one row of B,
    C and D at a time while the data term pushes every row; with Adam the penalty then barely
    acts (measured on digits: the bound stays in the hundreds, see
    ``experiments/nemon_tradeoff.py``). With ``smoothing=tau > 0`` the norms of B, C and D are
    replaced by the log-sum-exp upper bound

    .. math:: \|M\|_\infty \le \ell_\tau(M) = \tau\log\sum_i e^{\|m_i\|_1/\tau}
              \le \|M\|_\infty + \tau\log(\#\text{rows}),

    which is convex, nondecreasing in the row norms and differentiable in them (softmax
    weights on the rows), so the penalty stays convex and an upper bound of
    :math:`\alpha\rho`, and its gradient reaches every near-maximal row. The A term stays
    exact (its smoothing could exceed 1; the training constraint bounds it anyway).

    Parameters
    ----------
    alpha : float
        Weight, :math:`\ge 0`.
    measure : {"inf_norm", "mu_inf"}, default="inf_norm"
        Which well-posedness measure enters the denominator. ``"mu_inf"`` is finite on
        :math:`\mu_\infty(A) < 1` (training with ``constraint="mu_inf"``) and never larger
        than ``"inf_norm"``.
    smoothing : float, default=0.0
        Temperature :math:`\tau \ge 0` of the log-sum-exp smoothing of
        :math:`\|B\|_\infty, \|C\|_\infty, \|D\|_\infty` (in the units of their row
        l1 norms); 0 gives exactly [IDL (4.7)].
    """

    def __init__(self, alpha: float, measure: str = "inf_norm", smoothing: float = 0.0):
        super().__init__(alpha)
        self.measure = check_choice("measure", measure, ("inf_norm", "mu_inf"))
        self.smoothing = check_real("smoothing", smoothing, 0)
        self.constraints = ("inf_norm",) if measure == "inf_norm" else ("inf_norm", "mu_inf")

    def _parts(self, P):
        if self.measure == "inf_norm":
            a, GA = _inf_norm_and_subgrad(P["A"])
            name = "||A||_inf"
        else:
            a, GA = _mu_inf_and_subgrad(P["A"])
            if a <= 0:
                a, GA = 0.0, np.zeros_like(GA)
            name = "max(mu_inf(A), 0)"
        if not a < 1:
            raise BoundConditionError(
                f"LipschitzSurrogatePenalty(measure={self.measure!r}) needs {name} < 1; got "
                f"{name} = {a:.6g}"
            )
        if self.smoothing > 0:
            b, GB = _lse_rows_and_grad(P["B"], self.smoothing)
            c, GC = _lse_rows_and_grad(P["C"], self.smoothing)
            d, GD = _lse_rows_and_grad(P["D"], self.smoothing)
        else:
            b, GB = _inf_norm_and_subgrad(P["B"])
            c, GC = _inf_norm_and_subgrad(P["C"])
            d, GD = _inf_norm_and_subgrad(P["D"])
        return a, b, c, d, GA, GB, GC, GD

    def value(self, params) -> float:
        """The penalty at ``params`` (a dict with ``A, B, C, D`` or an ImplicitModel)."""
        a, b, c, d, *_ = self._parts(_params(params))
        return self.alpha * (0.5 * (b * b + c * c) / (1.0 - a) + d)

    def grad(self, params) -> dict:
        r"""A subgradient: :math:`\alpha\big(\frac{b}{1-a}G_B + \frac{c}{1-a}G_C +
        \frac{b^2 + c^2}{2(1-a)^2}G_A + G_D\big)`, with :math:`G_M` a subgradient of the norm of
        M (of the measure of A)."""
        a, b, c, d, GA, GB, GC, GD = self._parts(_params(params))
        s = 1.0 / (1.0 - a)
        al = self.alpha
        return {"A": al * 0.5 * (b * b + c * c) * s * s * GA, "B": al * b * s * GB,
                "C": al * c * s * GC, "D": al * GD}

    def __repr__(self) -> str:
        return (f"LipschitzSurrogatePenalty(alpha={self.alpha}, measure={self.measure!r}, "
                f"smoothing={self.smoothing})")


class SensitivityPenalty(Penalty):
    r""":math:`\alpha\|S\|_\infty` with the sensitivity matrix of [IDL Thm 4.2] (theory §7).

    .. math::

        S = |C|\,M\,|B| + |D|,\qquad M = (I - |A|)^{-1},\qquad
        \|S\|_\infty = \max_k \big(|C| M |B|\mathbf 1 + |D|\mathbf 1\big)_k,

    never above the :math:`\rho` bound for slopes in [0, 1] (ReLU, leaky ReLU, tanh; for
    sigmoid it is an upper bound of the :math:`\Gamma`-weighted one). It needs
    :math:`\lambda_{PF}(|A|) < 1` (guaranteed by :math:`\|A\|_\infty \le \kappa < 1`), so it is
    offered with the ``"inf_norm"`` training constraint only.

    Gradient (implicit-function form). With :math:`k^*` the row attaining the maximum,
    :math:`w = M|B|\mathbf 1` and :math:`v = M^\top |C|^\top e_{k^*}`, and
    :math:`dM = M\, d|A|\, M`:

    .. math::

        \frac{\partial\|S\|_\infty}{\partial|A|} = v w^\top,\quad
        \frac{\partial\|S\|_\infty}{\partial|B|} = v\mathbf 1^\top,\quad
        \frac{\partial\|S\|_\infty}{\partial|C|} = e_{k^*} w^\top,\quad
        \frac{\partial\|S\|_\infty}{\partial|D|} = e_{k^*}\mathbf 1^\top,

    multiplied entrywise by :math:`\mathrm{sign}` of the parameter. This is the gradient wherever
    :math:`k^*` is unique and no entry is zero; elsewhere it is one element of the Clarke
    generalised gradient (the penalty is not convex in (A, B, C)).

    Parameters
    ----------
    alpha : float
        Weight, :math:`\ge 0`.
    """

    constraints = ("inf_norm",)

    def _solve(self, P):
        A, B, C, D = P["A"], P["B"], P["C"], P["D"]
        n = A.shape[0]
        absA = np.abs(A)
        row = float(absA.sum(axis=1).max(initial=0.0))
        if not row < 1:
            lam = float(np.max(np.abs(np.linalg.eigvals(absA)), initial=0.0))
            if not lam < 1:
                raise BoundConditionError(
                    f"SensitivityPenalty needs lambda_PF(|A|) < 1 [IDL Thm 4.2]; got "
                    f"lambda_PF(|A|) = {lam:.6g}"
                )
        IA = np.eye(n) - absA
        w = np.linalg.solve(IA, np.abs(B).sum(axis=1)) if n else np.zeros(0)
        rows = np.abs(C) @ w + np.abs(D).sum(axis=1)
        k = int(np.argmax(rows)) if rows.size else 0
        return IA, w, rows, k

    def value(self, params) -> float:
        """The penalty at ``params`` (a dict with ``A, B, C, D`` or an ImplicitModel)."""
        P = _params(params)
        _, _, rows, _ = self._solve(P)
        return self.alpha * float(rows.max(initial=0.0))

    def grad(self, params) -> dict:
        """The gradient of the class docstring (keys ``"A", "B", "C", "D"``)."""
        P = _params(params)
        IA, w, rows, k = self._solve(P)
        A, B, C, D = P["A"], P["B"], P["C"], P["D"]
        out = {key: np.zeros_like(P[key]) for key in _KEYS}
        if rows.size == 0:
            return out
        n = A.shape[0]
        v = np.linalg.solve(IA.T, np.abs(C[k])) if n else np.zeros(0)
        al = self.alpha
        out["A"] = al * np.sign(A) * np.outer(v, w)
        out["B"] = al * np.sign(B) * v[:, None]
        out["C"][k] = al * np.sign(C[k]) * w
        out["D"][k] = al * np.sign(D[k])
        return out


class InputScaledPenalty(Penalty):
    r"""A model penalty measured in the units of the raw inputs of a standardised model.

    An estimator trains on :math:`\tilde u = (u - \bar u) \oslash s` and folds the scaling
    back, :math:`B_{raw} = B\,\mathrm{diag}(s)^{-1}`, :math:`D_{raw} =
    D\,\mathrm{diag}(s)^{-1}` (A and C unchanged; the biases absorb :math:`\bar u` and no
    penalty here involves them). Robustness is certified on the raw inputs, so this wrapper
    evaluates the inner penalty on the raw model,

    .. math:: \mathrm{pen}_s(A, B, C, D) = \mathrm{pen}(A,\ B\,\mathrm{diag}(s)^{-1},\ C,\
              D\,\mathrm{diag}(s)^{-1}),

    with the chain rule :math:`\nabla_B = \nabla_{B_{raw}}\mathrm{diag}(s)^{-1}` (likewise D).

    Parameters
    ----------
    penalty : Penalty
        E.g. :class:`LipschitzSurrogatePenalty` or :class:`SensitivityPenalty`.
    scale : array of shape (p,)
        The positive per-feature scales :math:`s`.
    """

    def __init__(self, penalty, scale):
        if not (callable(getattr(penalty, "value", None))
                and callable(getattr(penalty, "grad", None))):
            raise ValueError(f"penalty must have value and grad methods; got penalty={penalty!r}")
        s = np.asarray(scale, dtype=np.float64)
        if s.ndim != 1 or not np.all(np.isfinite(s)) or np.any(s <= 0):
            raise ValueError(
                f"scale must be a 1-D array of finite numbers > 0; got scale={scale!r}")
        self.penalty = penalty
        self.scale = s
        self.alpha = getattr(penalty, "alpha", 1.0)
        self.constraints = getattr(penalty, "constraints", Penalty.constraints)

    def _raw(self, params):
        P = _params(params)
        if P["B"].shape[1] != self.scale.shape[0]:
            raise ValueError(f"scale has {self.scale.shape[0]} entries; the model has "
                             f"p={P['B'].shape[1]} inputs")
        return dict(P, B=P["B"] / self.scale, D=P["D"] / self.scale)

    def value(self, params) -> float:
        """The inner penalty at the raw-input model."""
        return float(self.penalty.value(self._raw(params)))

    def grad(self, params) -> dict:
        """Gradient with respect to the standardised-input parameters (chain rule)."""
        g = dict(self.penalty.grad(self._raw(params)))
        g["B"] = g["B"] / self.scale
        g["D"] = g["D"] / self.scale
        return g

    def __repr__(self) -> str:
        return f"InputScaledPenalty({self.penalty!r}, scale=<{self.scale.shape[0]} values>)"
