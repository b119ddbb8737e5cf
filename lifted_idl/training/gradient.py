r"""Projected gradient training with implicit differentiation [IDL §6.2], theory §8.

The problem is [IDL (6.3)]

.. math::

    \min_{A,B,b,C,D,c}\ \mathcal L\big(Y, \hat Y\big) + \mathrm{pen}_{AB}([A\ B])
    + \mathrm{pen}_{CD}([C\ D])
    \quad\text{s.t.}\quad X = \phi(A X + B U + b),\ \ \hat Y = C X + D U + c,
    \ \ \|A\|_\infty \le \kappa,

with :math:`\kappa < 1`, so that every iterate is well-posed (theory §2).

Gradients (row layout). Samples are rows: ``U`` is ``(m, p)``, ``X`` is ``(m, n)`` and
:math:`G = \nabla_{\hat Y}\mathcal L` is ``(m, q)``. With :math:`Z = X A^\top + U B^\top + b` and
:math:`\Psi = \phi'(Z)` (``(m, n)``, entries in ``[0, 1]`` for a CONE map), the adjoint
:math:`V = \nabla_Z \mathcal L` solves the matrix equilibrium [IDL (6.5)]

.. math:: V = \Psi \odot (V A + G C),

the row-layout transpose of :math:`V = \Psi\circ(A^\top V + C^\top G)`; it is computed by the
fixed-point iteration [IDL (6.6)]. Then, by [IDL §6.2] (the outer-product formula preceding
(6.4)),

.. math::

    \nabla_A = V^\top X,\quad \nabla_B = V^\top U,\quad \nabla_b = V^\top \mathbf 1,\quad
    \nabla_C = G^\top X,\quad \nabla_D = G^\top U,\quad \nabla_c = G^\top \mathbf 1.

After every step, A is projected onto :math:`\{\|A\|_\infty \le \kappa\}` [IDL (6.7)], theory §3,
with :func:`lifted_idl.wellposedness.project_inf_norm_ball`, or, with ``constraint="mu_inf"``,
onto the NE-MON set :math:`\{\mu_\infty(A) \le \kappa\}` [NEMON] (theory §2) with
:func:`lifted_idl.wellposedness.project_mu_inf`; the forward and adjoint iterations are then
the averaged ones of theory §2. Robust training adds a ``model_penalty`` on (A, B, C, D), e.g. the
Lipschitz surrogate [IDL (4.7)] or the sensitivity penalty of theory §7
(:mod:`lifted_idl.robustness.penalties`). Feature selection adds the group penalty of
[IDL (5.1)] (theory §6) through its exact joint prox on ``(B, D)`` after every step
(``group=``; proximal gradient, with Adam's metric shared within each feature group), so
unused features get exactly zero columns.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from sklearn.utils import check_random_state

from .. import kernel
from .._array import check_finite, get_namespace
from .._validation import check_choice, check_int, check_max_iter, check_real, check_tol
from ..activations import get_activation
from ..exceptions import IllPosedModelError, _warn_convergence
from ..kernel import solve_adjoint  # also importable from here, as before
from ..losses import Loss, get_loss, unit_mean_weights
from ..model import ImplicitModel
from ..penalties import GroupPenalty, NoPenalty, Penalty
from ..wellposedness import averaged_step, project_inf_norm_ball, project_mu_inf
from .objective import check_weight_penalty, group_terms, training_objective

__all__ = ["implicit_gradients", "fit_gradient"]

_PARAMS = ("A", "B", "b", "C", "D", "c")


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
def _check_activation(act):
    if not act.componentwise:
        raise ValueError(
            f"activation={act!r} is not componentwise; implicit differentiation here needs a "
            "diagonal Jacobian phi'(z) [IDL §6.2]"
        )
    return act


def _check_data(model: ImplicitModel, U, Y):
    """Validate U and Y against the model; return float arrays in the model's dtype."""
    dtype = model.dtype
    U = np.asarray(U)
    if U.dtype.kind not in "fiub":
        raise ValueError(f"U must be numeric; got dtype {U.dtype}")
    if U.ndim != 2 or U.shape[1] != model.n_features:
        raise ValueError(
            f"U must have shape (m, {model.n_features}) (the model's p); got shape {U.shape}"
        )
    Y = np.asarray(Y)
    if Y.dtype.kind not in "fiub":
        raise ValueError(f"Y must be numeric; got dtype {Y.dtype}")
    q = model.n_outputs
    if Y.ndim == 1 and q == 1:
        Y = Y[:, None]
    if Y.ndim != 2 or Y.shape != (U.shape[0], q):
        raise ValueError(
            f"Y must have shape ({U.shape[0]}, {q}) (samples of U, outputs of the model); got "
            f"shape {Y.shape}"
        )
    if U.shape[0] == 0:
        raise ValueError("U has no samples (m = 0)")
    U = U.astype(dtype, copy=False)
    Y = Y.astype(dtype, copy=False)
    check_finite("U", U, np)
    check_finite("Y", Y, np)
    return U, Y


def _default_max_iter(tol: float, contraction: float) -> int:
    """Enough iterations for a contraction ``contraction`` to reach ``tol``, with a margin."""
    c = min(max(contraction, 1e-3), 0.9999)
    need = math.log(max(tol, 1e-300)) / math.log(c)
    return int(min(max(3 * need + 50, 100), 100000))


def _picard_batch(A, Z0, act, X0, tol, max_iter, min_iter=0, alpha=1.0, w=None):
    r"""Warm-started Picard :math:`X \leftarrow \phi(X A^\top + Z_0)` for training steps.

    The same iteration as :func:`lifted_idl.kernel.picard`, with a whole-batch criterion
    :math:`\|X^{t+1} - X^t\|_F \le \mathrm{tol}\,\|X^{t+1}\|_F` instead of the kernel's
    per-sample one: a training step needs the batch gradient, a sum over samples, not
    subset-invariant answers, and the per-row norms the kernel computes cost several times the
    matrix product at the sizes of a training step. It converges when
    :math:`\gamma\|A\|_\infty < 1` (theory §2), which :func:`fit_gradient` enforces. The
    test is skipped for the first ``min_iter`` iterations.

    With ``alpha < 1`` it is the averaged (Krasnosel'skii–Mann) iteration
    :math:`X \leftarrow (1 - \alpha)X + \alpha\phi(XA^\top + Z_0)` that contracts under the
    NE-MON certificate :math:`\mu_\infty(A\Gamma) < 1` with the step of
    :func:`~lifted_idl.wellposedness.averaged_step` (theory §2); the test is then on the
    residual :math:`\|\phi(XA^\top + Z_0) - X\|_F = \|X^{t+1} - X^t\|_F/\alpha`.

    With sample weights ``w`` both norms are weighted, :math:`\sum_s w_s\|x_s\|^2`: the
    test of the data with sample s repeated :math:`w_s` times.

    Returns ``(X, converged, n_iter)``.
    """
    AT = np.ascontiguousarray(A.T)
    X = np.array(X0, dtype=Z0.dtype, copy=True)
    W = np.empty_like(X)
    averaged = alpha != 1.0
    if averaged:
        a = Z0.dtype.type(alpha)
        tol = tol * alpha
    for it in range(1, max_iter + 1):
        np.matmul(X, AT, out=W)
        W += Z0
        act(W, out=W)
        if averaged:
            W -= X
            W *= a
            W += X
        X, W = W, X
        if it < min_iter:
            continue
        np.subtract(X, W, out=W)
        if w is None:
            step = float(np.vdot(W, W))
            scale = float(np.vdot(X, X))
        else:
            step = float(w @ np.einsum("ij,ij->i", W, W))
            scale = float(w @ np.einsum("ij,ij->i", X, X))
        if step <= tol * tol * scale:
            return X, True, it
        if not math.isfinite(step):
            break
    return X, False, max_iter


def _backward(P, act, U, Y, X, loss, Z0, *, alpha, tol, max_iter, V0=None, min_iter=0,
              warn=True, out=None, w=None):
    r"""Loss value, adjoint and gradients at the equilibrium ``X`` (row layout, theory §8).

    ``P`` maps names to the parameter arrays (``b``/``c`` may be None); ``Z0 = U B^T + b``.
    Gradients are written into ``out`` (a dict of arrays of the parameters' shapes) when given.

    ``w``: per-sample multipliers (unit-mean sample weights, or their minibatch rows): the
    loss is :math:`\frac1{m_b}\sum_s w_s\ell_s`. The adjoint equation is separable over
    samples and linear, so it is solved for the rows :math:`\sqrt{w_s}r_s` and the result
    scaled by :math:`\sqrt{w_s}`: its whole-batch stopping test is then that of the data with
    sample s repeated :math:`w_s` times. The adjoint returned (the warm start of the next
    call) is the one of the :math:`\sqrt{w}`-scaled rows.
    """
    A, C = P["A"], P["C"]
    Z = X @ A.T
    Z += Z0
    Yhat = X @ C.T
    Yhat += U @ P["D"].T
    if P["c"] is not None:
        Yhat += P["c"]
    if w is None:
        value = loss.value(Y, Yhat)
        G = loss.grad(Y, Yhat)
    else:
        value = float(w @ loss.sample_values(Y, Yhat)) / max(Y.shape[0], 1)
        sw = np.sqrt(w)[:, None]
        G = loss.grad(Y, Yhat) * sw
    Psi = act.derivative(Z)
    R = G @ C
    R *= Psi
    res = solve_adjoint(A, Psi, R, alpha=alpha, tol=tol, max_iter=max_iter, V0=V0,
                        min_iter=min_iter, warn=warn)
    V = res.X
    if w is not None:
        V = V * sw
        G = G * sw
    if out is None:
        out = {
            "A": np.empty_like(A), "B": np.empty_like(P["B"]), "b": np.empty(A.shape[0], A.dtype),
            "C": np.empty_like(C), "D": np.empty_like(P["D"]), "c": np.empty(C.shape[0], A.dtype),
        }
    np.matmul(V.T, X, out=out["A"])
    np.matmul(V.T, U, out=out["B"])
    V.sum(axis=0, out=out["b"])
    np.matmul(G.T, X, out=out["C"])
    np.matmul(G.T, U, out=out["D"])
    G.sum(axis=0, out=out["c"])
    return value, out, res


# ----------------------------------------------------------------------------------------------
# public: gradients
# ----------------------------------------------------------------------------------------------
def implicit_gradients(model: ImplicitModel, U, Y, loss: str | Loss, X=None,
                       tol: float | None = None,
                       max_iter: int | None = None) -> tuple[float, dict]:
    r"""Loss and its gradients with respect to every parameter, by implicit differentiation.

    Computes :math:`\mathcal L(Y, \hat Y)` with :math:`\hat Y = X C^\top + U D^\top + c` at the
    equilibrium :math:`X = \phi(X A^\top + U B^\top + b)` and the gradients of [IDL §6.2]
    (theory §8), in the row layout,

    .. math::

        V = \Psi \odot (V A + G C),\qquad \Psi = \phi'(Z),\ G = \nabla_{\hat Y}\mathcal L,

        \nabla_A = V^\top X,\ \nabla_B = V^\top U,\ \nabla_b = V^\top\mathbf 1,\
        \nabla_C = G^\top X,\ \nabla_D = G^\top U,\ \nabla_c = G^\top\mathbf 1,

    with V the adjoint of [IDL (6.5)], solved by the fixed-point iteration [IDL (6.6)]
    (:func:`~lifted_idl.kernel.solve_adjoint`).

    Parameters
    ----------
    model : ImplicitModel
        A well-posed model with a componentwise activation.
    U : array of shape (m, p)
    Y : array of shape (m, q)
        Targets (one-hot rows for the cross-entropy); shape ``(m,)`` is accepted when q = 1.
    loss : str or Loss
        ``"squared"``, ``"cross_entropy"`` or a :class:`~lifted_idl.losses.Loss` (averaged over
        samples, so the gradients are too).
    X : array of shape (m, n), optional
        The equilibrium states, when already known; otherwise ``model.solve(U)`` computes them
        (through the fixed-point kernel).
    tol : float, optional
        Relative tolerance of the forward solve and of the adjoint iteration (default 1e-10 in
        float64, 1e-5 in float32).
    max_iter : int, optional
        Iteration cap for both; by default derived from the model's contraction factor.

    Returns
    -------
    loss_value : float
    grads : dict
        Keys ``"A", "B", "b", "C", "D", "c"``, arrays of the parameters' shapes. A bias that
        is ``None`` in the model is treated as zeros: its gradient is still returned (the
        gradient at zero).

    Raises
    ------
    IllPosedModelError
        When no well-posedness certificate holds for A (theory §2).
    ValueError
        For shapes that do not match the model, non-finite data or a non-componentwise
        activation.

    Warns
    -----
    ConvergenceWarning
        When the forward or the adjoint iteration does not reach ``tol``.
    """
    if not isinstance(model, ImplicitModel):
        raise ValueError(f"model must be an ImplicitModel; got {type(model).__name__}")
    loss = get_loss(loss)
    act = _check_activation(model.activation)
    if get_namespace(model.A) is not np:
        model = model.to_numpy()  # keeps the cached certificate of a NumPy model otherwise
    U, Y = _check_data(model, U, Y)
    wp = model.well_posedness
    if not wp.well_posed:
        raise IllPosedModelError(
            f"No well-posedness certificate holds for this A (lambda_PF = {wp.value:.6g}); the "
            "adjoint equation [IDL (6.5)] need not have a unique solution"
        )
    check_int("max_iter", max_iter, 1, allow_none=True)
    check_real("tol", tol, 0, allow_none=True)
    if X is None:
        X = model.solve(U, tol=tol, max_iter=max_iter).X
    else:
        X = np.asarray(X)
        if X.shape != (U.shape[0], model.n_states):
            raise ValueError(
                f"X must have shape ({U.shape[0]}, {model.n_states}); got shape {X.shape}"
            )
        check_finite("X", X, np)
        X = X.astype(model.dtype, copy=False)
    P = {k: getattr(model, k) for k in _PARAMS}
    Z0 = U @ P["B"].T
    if P["b"] is not None:
        Z0 += P["b"]
    atol = kernel.default_tol(model.dtype) if tol is None else float(tol)
    if max_iter is None:
        if wp.certificate == "dag":
            max_iter = model.n_states + 2  # nilpotent: exact after at most n steps
        else:
            max_iter = _default_max_iter(atol, wp.contraction)
    value, grads, _ = _backward(P, act, U, Y, X, loss, Z0, alpha=wp.alpha, tol=atol,
                                max_iter=max_iter)
    return value, grads


# ----------------------------------------------------------------------------------------------
# public: training
# ----------------------------------------------------------------------------------------------
def _check_model_penalty(pen, constraint):
    """``pen`` is None or a Penalty with ``grad``, valid under ``constraint``."""
    if pen is None:
        return
    if not (callable(getattr(pen, "value", None)) and callable(getattr(pen, "grad", None))):
        raise ValueError(
            "model_penalty must be None or a Penalty with value(params) and grad(params) "
            f"(e.g. lifted_idl.robustness.penalties.LipschitzSurrogatePenalty); got "
            f"model_penalty={pen!r}"
        )
    allowed = getattr(pen, "constraints", None)
    if allowed is not None and constraint not in allowed:
        raise ValueError(
            f"model_penalty={pen!r} is only defined under constraint in {tuple(allowed)}; got "
            f"constraint={constraint!r}"
        )


class _Params:
    """All parameters in one flat buffer, with views ``A, B, b, C, D, c``.

    ``[A B]`` and ``[C D]`` are contiguous blocks so penalties act on them without copies, and
    the optimizer updates the whole vector in a handful of vectorised operations.
    """

    def __init__(self, n, p, q, dtype):
        self.n, self.p, self.q = n, p, q
        sizes = (n * (n + p), n, q * (n + p), q)
        self.flat = np.zeros(sum(sizes), dtype=dtype)
        self.views(self.flat, self)

    def views(self, flat, target):
        n, p, q = self.n, self.p, self.q
        k1 = n * (n + p)
        k2 = k1 + n
        k3 = k2 + q * (n + p)
        target.AB = flat[:k1].reshape(n, n + p)
        target.b = flat[k1:k2]
        target.CD = flat[k2:k3].reshape(q, n + p)
        target.c = flat[k3:]
        target.A, target.B = target.AB[:, :n], target.AB[:, n:]
        target.C, target.D = target.CD[:, :n], target.CD[:, n:]
        return target

    def as_dict(self, obj=None):
        obj = self if obj is None else obj
        return {k: getattr(obj, k) for k in _PARAMS}


class _Views:
    pass


def fit_gradient(model: ImplicitModel, U, Y, loss: str | Loss, *, kappa: float,
                 pen_ab: Penalty | str | None = None, pen_cd: Penalty | str | None = None,
                 max_iter: int = 200, batch_size: int | None = None, optimizer: str = "adam",
                 learning_rate: float = 1e-2, tol: float = 1e-6, n_iter_no_change: int = 10,
                 random_state=None, verbose: int = 0, callback=None, train_bias: bool = True,
                 solver_tol: float | None = None, model_penalty=None,
                 constraint: str = "inf_norm", group: GroupPenalty | None = None,
                 c_ridge: float = 0.0, sample_weight=None) -> tuple[ImplicitModel, dict]:
    r"""Train every parameter by (stochastic) projected gradient [IDL §6.2], theory §8.

    Minimises [IDL (6.3)] with biases and penalties,

    .. math::

        \min\ \mathcal L(Y, X C^\top + U D^\top + c) + \mathrm{pen}_{AB}([A\ B])
        + \mathrm{pen}_{CD}([C\ D]) + \mathrm{pen}_{M}(A, B, C, D)
        + \alpha_g \sum_{j=1}^p \left\|\begin{pmatrix} B \\ D \end{pmatrix} e_j\right\|_r
        + \frac{\beta}{2}\|C\|_F^2

        \text{s.t.}\ \ X = \phi(X A^\top + U B^\top + b),\ \ A \in \mathcal K,

    with :math:`\mathcal K = \{\|A\|_\infty \le \kappa\}` (``constraint="inf_norm"``,
    [IDL (6.7)]) or :math:`\mathcal K = \{\mu_\infty(A) \le \kappa\}` (``constraint="mu_inf"``,
    [NEMON]), :math:`\mathrm{pen}_M` an optional penalty on the whole model
    (``model_penalty``, e.g. the Lipschitz surrogate [IDL (4.7)] of
    :class:`~lifted_idl.robustness.penalties.LipschitzSurrogatePenalty`; theory §7), and the
    optional feature-selection penalty of [IDL (5.1)] (``group``, theory §6) with its ridge
    :math:`\beta` on C (``c_ridge``).

    Each step computes the minibatch gradients by implicit differentiation
    (:func:`implicit_gradients`: forward Picard solve, adjoint [IDL (6.5)-(6.6)]), adds the
    gradients of smooth penalties and of ``model_penalty``, takes an Adam or plain gradient
    step on all of ``A, B, b, C, D, c``, applies the prox of non-smooth penalties (l1, and
    the exact joint prox :func:`~lifted_idl.penalties.group_prox` of the group penalty on
    ``(B, D)``), then projects A onto :math:`\mathcal K` (theory §3 for the inf-norm ball,
    :func:`~lifted_idl.wellposedness.project_mu_inf` for the matrix-measure set). Every
    iterate is therefore well-posed: under ``"inf_norm"`` Picard contracts with factor at most
    :math:`\gamma\kappa`; under ``"mu_inf"`` the forward and adjoint iterations are the
    averaged ones of theory §2, with the NE-MON step
    :math:`\alpha = 1/(1 + \max_i\max(-\gamma a_{ii}, 0))` recomputed after every projection.

    Parameters
    ----------
    model : ImplicitModel
        Initial model (not modified). A componentwise activation with Lipschitz constant
        :math:`\gamma` such that :math:`\gamma\kappa < 1` is required. Its A is first projected
        onto the ball, so the first iterate is feasible too.
    U : array of shape (m, p)
    Y : array of shape (m, q)
        Shape ``(m,)`` is accepted when q = 1.
    loss : str or Loss
        ``"squared"``, ``"cross_entropy"`` or a :class:`~lifted_idl.losses.Loss`.
    kappa : float
        Radius of the well-posedness constraint, in (0, 1).
    pen_ab, pen_cd : Penalty or str, optional
        Penalties seen through their views on ``[A B]`` and on ``[C D]``
        (:meth:`~lifted_idl.penalties.Penalty.restrict`; biases are not penalised). Smooth ones
        (``penalty.smooth``) enter through their gradient, others (l1) through a proximal step
        after the gradient step. With Adam the prox uses the optimizer's diagonal metric, i.e.
        per-entry steps :math:`\eta/(\sqrt{\hat v} + \epsilon)`, so its fixed points satisfy the
        optimality conditions of the penalised problem; with SGD the step is
        ``learning_rate``. The view's ``prox`` must accept an array of steps (the package's
        penalties' do).
    max_iter : int, default=200
        Maximum number of epochs (passes over the data).
    batch_size : int, optional
        Minibatch size; ``None`` (or a size of at least m) means full-batch steps. Minibatches
        are drawn from a fresh permutation every epoch.
    optimizer : {"adam", "sgd"}, default="adam"
        Adam (:math:`\beta_1 = 0.9`, :math:`\beta_2 = 0.999`, :math:`\epsilon = 10^{-8}`) or
        plain gradient steps of size ``learning_rate``.
    learning_rate : float, default=1e-2
    tol : float, default=1e-6
        Training stops when the epoch objective has not decreased by more than
        ``tol`` times the best objective so far for ``n_iter_no_change`` consecutive epochs.
    n_iter_no_change : int, default=10
    random_state : int, RandomState or None
        Seeds the minibatch permutations; with an int two fits are identical.
    verbose : int, default=0
        ``1`` prints the objective every 10 epochs and at the end, ``2`` or more every epoch.
    callback : callable, optional
        Called after every step (after the projection) as ``callback(info)`` with a dict
        holding ``"epoch"``, ``"step"``, ``"batch_loss"`` (the minibatch loss before the step)
        and copies of the parameters ``"A", "B", "b", "C", "D", "c"``.
    train_bias : bool, default=True
        Whether to train ``b`` and ``c``. When True, a bias that is ``None`` in ``model``
        starts at zero and is returned as an array; when False the biases keep their values
        (``None`` stays ``None``).
    solver_tol : float, optional
        Relative tolerance (Frobenius norm over the batch) of the forward and adjoint
        fixed-point solves in each step; default 1e-8 in float64, 1e-5 in float32. Both are
        warm-started from the previous step's solution for the same samples, so a step
        usually needs only a few iterations. (Under ``"mu_inf"`` the test is on the residual,
        i.e. on the averaged step divided by :math:`\alpha`.)
    model_penalty : Penalty, optional
        A penalty on the whole model with ``value(params) -> float`` and
        ``grad(params) -> dict`` (keys ``"A", "B", "C", "D"``; ``params`` is a dict of the
        current arrays), such as
        :class:`~lifted_idl.robustness.penalties.LipschitzSurrogatePenalty` or
        :class:`~lifted_idl.robustness.penalties.SensitivityPenalty`. Its value enters the
        objective (and ``history["loss"]``) and its (sub)gradient the step; the minibatch
        loss is an average over samples, so the penalty is applied once per step at full
        weight. If it has an attribute ``constraints``, ``constraint`` must be one of them.
    constraint : {"inf_norm", "mu_inf"}, default="inf_norm"
        The well-posedness set :math:`\mathcal K` A is projected onto after every step:
        :math:`\|A\|_\infty \le \kappa` [IDL (6.7)] or :math:`\mu_\infty(A) \le \kappa`
        [NEMON] (less conservative: rows may have large negative diagonals, so
        :math:`\|A\|_\infty` can exceed 1).
    group : GroupPenalty, optional
        The feature-selection penalty :math:`\alpha_g\sum_j\|[B; D]e_j\|_r` of [IDL (5.1)]
        (theory §6), applied by its exact joint prox after every step (proximal gradient), so
        unused features get **exactly zero** columns of ``[B; D]``. Adam's per-entry metric
        would make that prox inexact (it is not separable across a group with unequal
        weights), so for the entries of ``B`` and ``D`` the Adam denominator is shared within
        each feature group j: :math:`\sqrt{\bar v_j} + \epsilon` with :math:`\bar v_j` the
        mean of the bias-corrected second moments over the :math:`n + q` entries of column j
        of ``[B; D]`` (a group-wise diagonal metric). The prox of step
        :math:`\eta_j = \eta/(\sqrt{\bar v_j} + \epsilon)` is then exact in that metric, and a
        fixed point of the iteration satisfies the group-lasso optimality condition
        :math:`-\nabla_{(B,D)e_j}\mathcal L \in \alpha_g\,\partial\|[B; D]e_j\|_r` for every j
        (``tests/training/test_gradient_group.py`` checks it). With ``optimizer="sgd"`` it is the
        plain proximal gradient method with step ``learning_rate``. ``pen_ab`` and ``pen_cd``
        must then be smooth (or none): the prox of a sum is not the composition of the
        proxes in general.
    c_ridge : float, default=0.0
        :math:`\beta \ge 0`, a ridge :math:`\tfrac{\beta}{2}\|C\|_F^2` (a smooth term, in the
        gradient and in the objective). With ``group`` and a positively homogeneous
        activation (ReLU), :math:`(B, b, C) \to (sB, sb, C/s)` keeps the predictions and
        lowers the group penalty as :math:`s \to 0`; the ridge gives the problem a minimiser
        (:meth:`~lifted_idl.penalties.GroupPenalty.restrict`).
    sample_weight : ndarray of shape (m,), optional
        Non-negative sample weights: the loss is the weighted average
        :math:`\frac{1}{\sum_t w_t}\sum_s w_s\ell_s`
        (:func:`~lifted_idl.losses.unit_mean_weights`), and the whole-batch stopping tests of
        the forward and adjoint solves use the weighted norms. With full-batch steps, integer
        weights give the fit on the data with each sample repeated :math:`w_s` times (up to
        rounding). A minibatch's loss is :math:`\frac{1}{|b|}\sum_{s\in b}\tilde w_s
        \ell_s` with the unit-mean weights :math:`\tilde w`, an unbiased estimate of the
        weighted loss; repeating samples changes the minibatches themselves, so with
        minibatches weights and repeats agree only in expectation.

    Returns
    -------
    model : ImplicitModel
        A new model holding the **last iterate** (not the best one seen). Low-rank factors of
        the input model are not carried over (A changes).
    history : dict
        ``"loss"``: the full training objective (loss plus penalties, on all of U) after each
        epoch; ``"loss_initial"``: the objective of the (projected) initial model;
        ``"n_iter"``: epochs run; ``"n_steps"``: gradient steps; ``"converged"``: whether the
        stopping rule fired before ``max_iter``; ``"solver_failures"``: number of forward or
        adjoint solves that missed ``solver_tol``; ``"forward_iter"``, ``"adjoint_iter"``: mean
        fixed-point iterations per solve; ``"time"``: wall-clock seconds;
        ``"model_penalty"``: the value of ``model_penalty`` at the returned model (0.0 when
        there is none); ``"constraint"``: the constraint used; ``"group_penalty"``: the
        group penalty plus the C ridge at the returned model (0.0 without ``group``).

    Raises
    ------
    ValueError
        For an argument out of range (named in the message), mismatched shapes or a
        non-componentwise activation.
    FloatingPointError
        When the loss or its gradient overflows (a learning rate far too large).

    Warns
    -----
    ConvergenceWarning
        When ``max_iter`` epochs end without meeting the stopping rule, or when some
        fixed-point solves missed their tolerance.

    Notes
    -----
    Runs on NumPy arrays (a CuPy model is copied to the host). Each step's forward solve is a
    warm-started Picard iteration with a whole-batch stopping test, and the adjoint iteration
    is warm-started from the previous adjoint of the same samples.
    """
    t_start = time.perf_counter()
    opts = _check_fit_options(
        model, loss, kappa=kappa, pen_ab=pen_ab, pen_cd=pen_cd, max_iter=max_iter,
        batch_size=batch_size, optimizer=optimizer, learning_rate=learning_rate, tol=tol,
        n_iter_no_change=n_iter_no_change, verbose=verbose, callback=callback,
        train_bias=train_bias, solver_tol=solver_tol, model_penalty=model_penalty,
        constraint=constraint, group=group, c_ridge=c_ridge)
    rng = check_random_state(random_state)
    if get_namespace(model.A) is not np:
        model = model.to_numpy()
    U, Y = _check_data(model, U, Y)
    trainer = _GradientTrainer(model, U, Y, opts, unit_mean_weights(sample_weight, U.shape[0]))
    stopping = _StoppingRule(opts)
    if opts.batch_size is None or opts.batch_size >= U.shape[0]:
        loss_initial, converged, n_iter = _run_full_batch(trainer, stopping)
    else:
        loss_initial, converged, n_iter = _run_minibatch(trainer, stopping, rng)
    if opts.verbose == 1 and n_iter % 10:
        print(f"[fit_gradient] epoch {n_iter:5d}  objective = {stopping.history[-1]:.8g}")
    _warn_outcome(trainer, converged)
    history = {
        "loss": stopping.history,
        "loss_initial": loss_initial,
        "n_iter": n_iter,
        "n_steps": trainer.counters["steps"],
        "converged": converged,
        "solver_failures": trainer.counters["failures"],
        "forward_iter": trainer.counters["fwd_iter"] / max(trainer.counters["fwd_solves"], 1),
        "adjoint_iter": trainer.counters["adj_iter"] / max(trainer.counters["adj_solves"], 1),
        "time": time.perf_counter() - t_start,
        "model_penalty": trainer.model_penalty_value(),
        "constraint": opts.constraint,
        "group_penalty": trainer.group_value(),
    }
    return trainer.result_model(model), history


# ----------------------------------------------------------------------------------------------
# fit_gradient, step by step
# ----------------------------------------------------------------------------------------------
@dataclass
class _FitOptions:
    """The validated settings of :func:`fit_gradient` (see its parameters)."""

    loss: Loss
    act: object
    kappa: float
    lip: float
    pen_ab: Penalty
    pen_cd: Penalty
    constraint: str
    model_penalty: object
    group: GroupPenalty | None
    c_ridge: float
    max_iter: int
    n_iter_no_change: int
    batch_size: int | None
    optimizer: str
    learning_rate: float
    tol: float
    solver_tol: float | None
    verbose: int
    callback: object
    train_bias: bool


def _check_fit_options(model, loss, *, kappa, pen_ab, pen_cd, constraint, model_penalty, group,
                       c_ridge, **loop) -> _FitOptions:
    """Validate the arguments of :func:`fit_gradient`; each error names the argument."""
    if not isinstance(model, ImplicitModel):
        raise ValueError(f"model must be an ImplicitModel; got {type(model).__name__}")
    loss = get_loss(loss)
    act = _check_activation(get_activation(model.activation))
    check_real("kappa", kappa, 0, 1, closed="neither")
    lip = float(np.max(act.state_lipschitz(model.n_states), initial=0.0))
    if float(kappa) * lip >= 1:
        raise ValueError(
            f"kappa * lipschitz(activation) = {float(kappa) * lip:.4g} >= 1: ||A||_inf <= kappa "
            f"does not certify well-posedness for activation={act!r}; got kappa={kappa!r}"
        )
    pen_ab = check_weight_penalty(pen_ab, "pen_ab", "ab")
    pen_cd = check_weight_penalty(pen_cd, "pen_cd", "cd")
    check_choice("constraint", constraint, ("inf_norm", "mu_inf"))
    _check_model_penalty(model_penalty, constraint)
    _check_group(group, pen_ab, pen_cd)
    check_real("c_ridge", c_ridge, 0)
    return _FitOptions(loss=loss, act=act, kappa=kappa, lip=lip, pen_ab=pen_ab, pen_cd=pen_cd,
                       constraint=constraint, model_penalty=model_penalty, group=group,
                       c_ridge=float(c_ridge), **_check_loop_options(**loop))


def _check_group(group, pen_ab, pen_cd):
    if group is not None and not isinstance(group, GroupPenalty):
        raise ValueError(f"group must be None or a GroupPenalty; got group={group!r}")
    if group is not None and not (pen_ab.smooth and pen_cd.smooth):
        raise ValueError(
            "group cannot be combined with a non-smooth pen_ab/pen_cd (the prox of the sum is "
            f"not the composition of the proxes); got pen_ab={pen_ab!r}, pen_cd={pen_cd!r}")


def _check_loop_options(*, max_iter, n_iter_no_change, batch_size, optimizer, learning_rate,
                        tol, solver_tol, verbose, callback, train_bias) -> dict:
    """Validate the optimizer's and the stopping rule's settings of :func:`fit_gradient`."""
    max_iter = check_max_iter(max_iter)
    n_iter_no_change = check_int("n_iter_no_change", n_iter_no_change, 1)
    batch_size = check_int("batch_size", batch_size, 1, allow_none=True)
    check_choice("optimizer", optimizer, ("adam", "sgd"))
    check_real("learning_rate", learning_rate, 0, closed="neither")
    check_tol(tol, allow_zero=True)
    if solver_tol is not None:
        check_tol(solver_tol, "solver_tol")
    verbose = check_int("verbose", verbose, 0)
    if callback is not None and not callable(callback):
        raise ValueError(f"callback must be callable; got callback={callback!r}")
    return dict(max_iter=max_iter, n_iter_no_change=n_iter_no_change, batch_size=batch_size,
                optimizer=optimizer, learning_rate=learning_rate, tol=tol, solver_tol=solver_tol,
                verbose=verbose, callback=callback, train_bias=train_bias)


class _Adam:
    """Adam's moments (:math:`\\beta_1 = 0.9`, :math:`\\beta_2 = 0.999`, :math:`\\epsilon =
    10^{-8}`) over the flat parameter vector, with the group-wise metric of ``group``."""

    beta1, beta2, eps = 0.9, 0.999, 1e-8

    def __init__(self, par: _Params):
        self.m1 = np.zeros_like(par.flat)
        self.m2 = np.zeros_like(par.flat)
        self.den = np.empty_like(par.flat)
        self.m2v = par.views(self.m2, _Views())  # views of the second moments and denominators
        self.denv = par.views(self.den, _Views())

    def update(self, par, gflat, buf, t, lr, group_rows, need_steps):
        """One Adam step on ``par.flat``; returns the group denominators (or None).

        With ``group_rows`` (``n + q``, when there is a group penalty) one denominator per
        feature group j of [B; D]: the RMS of its second moments, so that the group prox is
        exact in Adam's metric. With ``need_steps`` the per-entry prox steps ``lr / den`` are
        left in ``buf``.
        """
        b1, b2, eps = self.beta1, self.beta2, self.eps
        m1, m2, den = self.m1, self.m2, self.den
        # m1 <- b1 m1 + (1-b1) g ; m2 <- b2 m2 + (1-b2) g^2
        np.multiply(m1, b1, out=m1)
        np.multiply(gflat, 1 - b1, out=buf)
        np.add(m1, buf, out=m1)
        np.multiply(gflat, gflat, out=buf)
        np.multiply(buf, 1 - b2, out=buf)
        np.multiply(m2, b2, out=m2)
        np.add(m2, buf, out=m2)
        # den = sqrt(v_hat) + eps ; theta <- theta - lr m_hat / den
        np.sqrt(m2, out=den)
        np.multiply(den, 1 / math.sqrt(1 - b2 ** t), out=den)
        gden = None
        if group_rows:
            vbar = self.m2v.B.sum(axis=0)
            vbar += self.m2v.D.sum(axis=0)
            gden = np.sqrt(vbar / (group_rows * (1 - b2 ** t))) + eps
        np.add(den, eps, out=den)
        if group_rows:
            self.denv.B[...] = gden
            self.denv.D[...] = gden
        np.divide(m1, den, out=buf)
        np.multiply(buf, lr / (1 - b1 ** t), out=buf)
        np.subtract(par.flat, buf, out=par.flat)
        if need_steps:
            np.divide(lr, den, out=buf)  # the prox in Adam's diagonal metric
        return gden


class _GradientTrainer:
    """The state of one :func:`fit_gradient` run: parameters, gradients, optimizer, warm starts.

    The parameters live in one flat buffer (copies: the input model is never touched); the
    forward and adjoint solves are warm-started from the last solution for the same samples.
    """

    def __init__(self, model: ImplicitModel, U, Y, opts: _FitOptions, w=None):
        self.opts, self.U, self.Y = opts, U, Y
        self.w = w  # unit-mean sample weights, or None
        m = U.shape[0]
        n, p, q = model.n_states, model.n_features, model.n_outputs
        dtype = model.dtype
        if opts.solver_tol is None:
            self.stol = 1e-5 if dtype == np.float32 else 1e-8
        else:
            self.stol = float(opts.solver_tol)
        self.mu_mode = opts.constraint == "mu_inf"
        self.project = project_mu_inf if self.mu_mode else project_inf_norm_ball
        # NE-MON step and contraction (theory §2), recomputed after every projection (mu_inf)
        self.alpha = 1.0
        self.max_iter = _default_max_iter(self.stol, float(opts.kappa) * opts.lip)
        self.par = par = _Params(n, p, q, dtype)
        par.A[...] = self.project(model.A, opts.kappa)
        par.B[...] = model.B
        par.C[...] = model.C
        par.D[...] = model.D
        if model.b is not None:
            par.b[...] = model.b
        if model.c is not None:
            par.c[...] = model.c
        self.P = par.as_dict()
        self.gflat = np.zeros_like(par.flat)
        self.grad = par.views(self.gflat, _Views())
        self.gdict = par.as_dict(self.grad)
        self.adam = _Adam(par) if opts.optimizer == "adam" else None
        self.buf = np.empty_like(par.flat)
        self.steps = par.views(self.buf, _Views())  # per-entry prox steps, written into buf
        self.group_rows = n + q if opts.group is not None else 0
        self.set_iteration()
        self.X_cache = np.zeros((m, n), dtype=dtype)  # warm starts, one row per sample
        self.V_cache = np.zeros((m, n), dtype=dtype)
        self.counters = {"failures": 0, "steps": 0, "fwd_iter": 0, "adj_iter": 0,
                         "fwd_solves": 0, "adj_solves": 0, "fwd_last": 0, "adj_last": 0}

    # -- the fixed-point solves ------------------------------------------------------------
    def set_iteration(self):
        """Under ``mu_inf``: the NE-MON step and iteration cap of the current A (theory §2)."""
        if not self.mu_mode:
            return
        alpha, c = averaged_step(self.opts.lip * np.asarray(self.par.A, dtype=np.float64))
        self.alpha = alpha
        self.max_iter = _default_max_iter(self.stol, c)

    def forward(self, Ub, X0, in_step=True, wb=None):
        """Warm-started equilibrium of the batch ``Ub`` (sample weights ``wb``); returns
        ``(X, Z0)``."""
        par, counters = self.par, self.counters
        Z0 = Ub @ par.B.T
        Z0 += par.b
        # skip the stopping test for the iterations the previous step needed, less two
        X, ok, it = _picard_batch(par.A, Z0, self.opts.act, X0, self.stol, self.max_iter,
                                  counters["fwd_last"] - 2 if in_step else 0, alpha=self.alpha,
                                  w=wb)
        if in_step:
            counters["fwd_last"] = it
        counters["fwd_iter"] += it
        counters["fwd_solves"] += 1
        if not ok:
            counters["failures"] += 1
        return X, Z0

    # -- the objective -----------------------------------------------------------------------
    def model_penalty_value(self):
        mpen = self.opts.model_penalty
        return float(mpen.value(self.P)) if mpen is not None else 0.0

    def group_value(self):
        par = self.par
        return group_terms(par.B, par.C, par.D, self.opts.group, self.opts.c_ridge)

    def objective(self, value):
        """The training objective of [IDL (6.3)] given the loss ``value``."""
        opts, par = self.opts, self.par
        return training_objective(value, par.A, par.B, par.C, par.D, pen_ab=opts.pen_ab,
                                  pen_cd=opts.pen_cd, group=opts.group, c_ridge=opts.c_ridge,
                                  model_penalty=self.model_penalty_value(), AB=par.AB,
                                  CD=par.CD)

    def full_objective(self):
        """The objective on all of U (a forward solve, warm-started, outside the steps)."""
        par, U = self.par, self.U
        X, _ = self.forward(U, self.X_cache, in_step=False, wb=self.w)
        self.X_cache[...] = X
        Yhat = X @ par.C.T
        Yhat += U @ par.D.T
        Yhat += par.c
        return self.objective(self.opts.loss.value(self.Y, Yhat, sample_weight=self.w))

    # -- one step ------------------------------------------------------------------------------
    def gradient(self, Ub, Yb, idx):
        """Loss value at the current parameters on a batch; gradients into ``self.grad``."""
        opts, counters = self.opts, self.counters
        X0 = self.X_cache if idx is None else self.X_cache[idx]
        V0 = self.V_cache if idx is None else self.V_cache[idx]
        wb = self.w if self.w is None or idx is None else self.w[idx]
        X, Z0 = self.forward(Ub, X0, wb=wb)
        alpha = self.alpha
        value, _, res = _backward(self.P, opts.act, Ub, Yb, X, opts.loss, Z0, alpha=alpha,
                                  tol=self.stol * alpha, max_iter=self.max_iter, V0=V0,
                                  min_iter=max(counters["adj_last"] - 2, 0), warn=False,
                                  out=self.gdict, w=wb)
        counters["adj_last"] = res.n_iter
        counters["adj_iter"] += res.n_iter
        counters["adj_solves"] += 1
        if not res.converged:
            counters["failures"] += 1
        if idx is None:
            self.X_cache[...] = X
            self.V_cache[...] = res.X
        else:
            self.X_cache[idx] = X
            self.V_cache[idx] = res.X
        self._add_penalty_gradients()
        if not (math.isfinite(value) and math.isfinite(float(np.vdot(self.gflat, self.gflat)))):
            raise FloatingPointError(
                f"the loss or its gradient overflowed (loss = {value}) after "
                f"{counters['steps']} steps; lower learning_rate (got "
                f"learning_rate={opts.learning_rate!r})"
            )
        return value

    def _add_penalty_gradients(self):
        """Zero the frozen biases' gradients; add those of the smooth penalties."""
        opts, par, grad = self.opts, self.par, self.grad
        if not opts.train_bias:
            grad.b[...] = 0
            grad.c[...] = 0
        if opts.pen_ab.smooth and not isinstance(opts.pen_ab, NoPenalty):
            grad.AB[...] += opts.pen_ab.restrict("ab").grad(par.AB)
        if opts.pen_cd.smooth and not isinstance(opts.pen_cd, NoPenalty):
            grad.CD[...] += opts.pen_cd.restrict("cd").grad(par.CD)
        if opts.c_ridge:
            grad.C[...] += opts.c_ridge * par.C
        if opts.model_penalty is not None:
            gm = opts.model_penalty.grad(self.P)
            for key in ("A", "B", "C", "D"):
                g = gm.get(key) if isinstance(gm, dict) else None
                if g is not None:
                    getattr(grad, key)[...] += g

    def step(self, epoch, batch_value):
        """Optimizer step, proxes, projection of A; then the callback."""
        opts, par = self.opts, self.par
        self.counters["steps"] += 1
        t = self.counters["steps"]
        lr = float(opts.learning_rate)
        need_steps = not (opts.pen_ab.smooth and opts.pen_cd.smooth)
        if self.adam is not None:
            gden = self.adam.update(par, self.gflat, self.buf, t, lr, self.group_rows,
                                    need_steps)
        else:
            np.multiply(self.gflat, lr, out=self.buf)
            np.subtract(par.flat, self.buf, out=par.flat)
            self.buf.fill(lr)
        self._apply_proxes(lr / gden if self.adam is not None and self.group_rows else lr)
        par.A[...] = self.project(par.A, opts.kappa)
        self.set_iteration()
        if opts.callback is not None:
            info = {"epoch": epoch, "step": t, "batch_loss": batch_value}
            info.update({k: v.copy() for k, v in par.as_dict().items()})
            opts.callback(info)

    def _apply_proxes(self, group_step):
        """Prox of the non-smooth penalties (steps in ``self.steps``) and of the group one."""
        opts, par = self.opts, self.par
        if not opts.pen_ab.smooth:
            par.AB[...] = opts.pen_ab.restrict("ab").prox(par.AB, self.steps.AB)
        if not opts.pen_cd.smooth:
            par.CD[...] = opts.pen_cd.restrict("cd").prox(par.CD, self.steps.CD)
        if opts.group is not None:
            new = opts.group.prox({"B": par.B, "D": par.D}, group_step)
            par.B[...] = new["B"]
            par.D[...] = new["D"]

    def result_model(self, model):
        """A new model from the last iterate (biases kept as ``None`` when not trained)."""
        par, train_bias = self.par, self.opts.train_bias
        keep_b = train_bias or model.b is not None
        keep_c = train_bias or model.c is not None
        return ImplicitModel(
            par.A.copy(), par.B.copy(), par.C.copy(), par.D.copy(),
            b=par.b.copy() if keep_b else None, c=par.c.copy() if keep_c else None,
            activation=model.activation,
        )


class _StoppingRule:
    """Records the epoch objectives; fires after ``n_iter_no_change`` epochs without progress."""

    def __init__(self, opts: _FitOptions):
        self.opts = opts
        self.history: list[float] = []
        self.best = math.inf
        self.no_change = 0

    def record(self, obj, epoch):
        """Record the objective after ``epoch``; return True when the stopping rule fires."""
        opts = self.opts
        self.history.append(obj)
        if opts.verbose >= 2 or (opts.verbose == 1 and epoch % 10 == 0):
            print(f"[fit_gradient] epoch {epoch:5d}  objective = {obj:.8g}")
        if not math.isfinite(obj):
            raise FloatingPointError(
                f"the training objective became {obj} at epoch {epoch}; lower learning_rate "
                f"(got learning_rate={opts.learning_rate!r})"
            )
        if obj >= self.best - opts.tol * abs(self.best):
            self.no_change += 1
        else:
            self.no_change = 0
        self.best = min(self.best, obj)
        return self.no_change >= opts.n_iter_no_change


def _run_full_batch(trainer: _GradientTrainer, stopping: _StoppingRule):
    """Full-batch epochs; returns ``(initial objective, converged, epochs run)``."""
    U, Y = trainer.U, trainer.Y
    value = trainer.gradient(U, Y, None)
    loss_initial = trainer.objective(value)
    epoch = 0
    for epoch in range(1, trainer.opts.max_iter + 1):
        trainer.step(epoch, value)
        value = trainer.gradient(U, Y, None)  # at the new iterate: objective after this epoch
        if stopping.record(trainer.objective(value), epoch):
            return loss_initial, True, epoch
    return loss_initial, False, epoch


def _run_minibatch(trainer: _GradientTrainer, stopping: _StoppingRule, rng):
    """Minibatch epochs over a fresh permutation each; same return as :func:`_run_full_batch`."""
    U, Y = trainer.U, trainer.Y
    m, batch_size = U.shape[0], trainer.opts.batch_size
    loss_initial = trainer.full_objective()
    epoch = 0
    for epoch in range(1, trainer.opts.max_iter + 1):
        order = rng.permutation(m)
        for s in range(0, m, batch_size):
            idx = order[s:s + batch_size]
            value = trainer.gradient(U[idx], Y[idx], idx)
            trainer.step(epoch, value)
        if stopping.record(trainer.full_objective(), epoch):
            return loss_initial, True, epoch
    return loss_initial, False, epoch


def _warn_outcome(trainer: _GradientTrainer, converged: bool):
    """ConvergenceWarnings for an unfinished run and for inexact fixed-point solves."""
    opts = trainer.opts
    if not converged:
        _warn_convergence(
            f"fit_gradient stopped at max_iter={opts.max_iter} epochs before the objective "
            f"stalled (tol={opts.tol:g}, n_iter_no_change={opts.n_iter_no_change}); the last "
            "iterate is returned. Increase max_iter or the learning rate.", stacklevel=3)
    failures = trainer.counters["failures"]
    if failures:
        _warn_convergence(
            f"{failures} forward/adjoint fixed-point solve(s) missed "
            f"solver_tol={trainer.stol:.1e} within {trainer.max_iter} iterations; gradients "
            "may be inexact.", stacklevel=3)
