r"""Sparse adversarial attacks on implicit models [IDL §7.3], theory §7.

Both attacks change at most ``k`` input features of each sample by :math:`\pm\sigma_j`, so the
attacked input stays in the cardinality set :math:`\mathcal U^{card}` [IDL (4.2)] with
:math:`\sigma_u = \sigma`:

* :func:`sensitivity_attack` [IDL §7.3.1] ranks features by a row of the input-independent
  sensitivity matrix :math:`S` of [IDL Thm 4.2] (for a classifier, the pairwise row
  :math:`S_{yk}` of the margin :math:`\hat y_y - \hat y_k`), weighted by :math:`\sigma`;
* :func:`gradient_attack` ranks them by the saliency :math:`|\nabla_u|` of the same quantity at
  the sample, from implicit differentiation (theory §8): with :math:`z = Ax + Bu + b`,
  :math:`\Phi = \phi'(z)` and an output cotangent :math:`g`, the row vector :math:`v` solves
  :math:`v = \Phi \odot (vA + gC)` and :math:`\nabla_u (g^\top \hat y) = vB + gD`.

For classifiers (an estimator with ``classes_``, or an :class:`ImplicitModel` with ``q >= 2``
outputs read as class logits) the attacks try every competing class (or ``target``) and keep
the perturbation with the smallest resulting margin. For regressors they maximise the change
of one output (``target``, or the output that moves most).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .._array import to_numpy
from .._validation import check_choice, check_finite_matrix, check_int
from ..kernel import solve_adjoint, solve_adjoint_direct
from ._common import (
    ModelLike,
    _as_model,
    _check_sigma,
    _check_U,
    _is_estimator_classifier,
    _labels_to_index,
)
from .bounds import pairwise_sensitivity, sensitivity_matrix

__all__ = [
    "AttackResult",
    "sensitivity_attack",
    "gradient_attack",
    "attack_success_rate",
    "input_gradient",
]

_CHUNK = 2_000_000  # floats per candidate batch


@dataclass(frozen=True)
class AttackResult:
    """Perturbed inputs from a sparse attack.

    Attributes
    ----------
    U_adv : ndarray of shape (m, p)
        Attacked inputs; ``|U_adv - U| <= sigma`` and at most ``k`` features change per row.
    features : ndarray of shape (m, k)
        The features chosen for each sample (those with :math:`\\sigma_j > 0` changed).
    Y_adv : ndarray of shape (m, q)
        Model outputs at ``U_adv``.
    target : ndarray of shape (m,)
        Output index attacked: the competing class whose margin was reduced (classification)
        or the output pushed (regression).
    """

    U_adv: np.ndarray
    features: np.ndarray
    Y_adv: np.ndarray
    target: np.ndarray


# ----------------------------------------------------------------------------------------------
# implicit gradient
# ----------------------------------------------------------------------------------------------
def input_gradient(model: ModelLike, U: ArrayLike, G: ArrayLike,
                   X: ArrayLike | None = None) -> np.ndarray:
    r"""Gradient of :math:`g_i^\top \hat y(u_i)` with respect to :math:`u_i`, for every row i.

    Implicit differentiation in row layout (theory §8, [IDL §6.2]): with
    :math:`z = xA^\top + uB^\top + b`, :math:`\Phi = \phi'(z)`, the adjoint :math:`v` solves

    .. math:: v = \Phi \odot (vA + gC), \qquad \nabla_u = vB + gD.

    The fixed point is found by Picard iteration (:func:`~lifted_idl.kernel.solve_adjoint`)
    when a Perron–Frobenius certificate holds (it contracts because
    :math:`\rho(|A|\Phi) \le \lambda_{PF}(|A|) < 1` for slopes in [0, 1]); otherwise, or if
    that stalls, by the linear solves :math:`(I - \Phi A^\top) v^\top = \Phi C^\top g^\top`
    (:func:`~lifted_idl.kernel.solve_adjoint_direct`).

    Parameters
    ----------
    model : ImplicitModel or fitted estimator
        With a componentwise activation.
    U : array of shape (m, p)
    G : array of shape (m, q)
        Output cotangents.
    X : array of shape (m, n), optional
        The equilibria at ``U`` (solved when omitted).

    Returns
    -------
    ndarray of shape (m, p)
    """
    m = _as_model(model)
    U = _check_U(m, U)
    G = check_finite_matrix("G", to_numpy(G), (U.shape[0], m.n_outputs))
    act = m.activation
    if not act.componentwise:
        raise ValueError(
            f"input_gradient needs a componentwise activation (a diagonal Jacobian); got "
            f"activation={act!r}"
        )
    A = np.asarray(to_numpy(m.A), dtype=np.float64)
    B = np.asarray(to_numpy(m.B), dtype=np.float64)
    C = np.asarray(to_numpy(m.C), dtype=np.float64)
    D = np.asarray(to_numpy(m.D), dtype=np.float64)
    X = (m.equilibrium(U) if X is None
         else check_finite_matrix("X", to_numpy(X), (U.shape[0], m.n_states)))
    X = np.asarray(to_numpy(X), dtype=np.float64)
    Z = X @ A.T + U @ B.T
    if m.b is not None:
        Z += np.asarray(to_numpy(m.b), dtype=np.float64)
    Phi = np.asarray(act.derivative(Z), dtype=np.float64)
    R = Phi * (G @ C)
    V = None
    wp = m.well_posedness
    if wp.certificate in ("dag", "inf_norm", "pf"):
        c = min(max(float(wp.contraction), 1e-3), 0.9999)
        max_iter = int(min(np.ceil(np.log(1e-14) / np.log(c)) + 20, 20000))
        res = solve_adjoint(A, Phi, R, tol=1e-13, max_iter=max_iter, warn=False)
        V = res.X if res.converged else None
    if V is None:
        V = solve_adjoint_direct(A, Phi, R, chunk_floats=_CHUNK)
    return V @ B + G @ D


# ----------------------------------------------------------------------------------------------
# shared machinery
# ----------------------------------------------------------------------------------------------
def _task(obj, model, task):
    check_choice("task", task, ("auto", "classification", "regression"))
    if task != "auto":
        return task
    if _is_estimator_classifier(obj):
        return "classification"
    if not hasattr(obj, "model_") and model.n_outputs >= 2:
        return "classification"
    return "regression"


def _check_attack_k(k, p):
    return min(check_int("k", k, 1), p)


def _target_index(obj, model, target, m, task):
    """``None`` or an int array of length m of output indices."""
    if target is None:
        return None
    t = np.asarray(target)
    if t.ndim == 0:
        t = np.full(m, t.item(), dtype=t.dtype if t.dtype.kind in "iuf" else object)
    if task == "classification":
        return _labels_to_index(obj, model, t, m, name="target")
    q = model.n_outputs
    if t.dtype.kind not in "iu" or t.shape != (m,) or np.any((t < 0) | (t >= q)):
        raise ValueError(f"target must be output indices in [0, {q}); got target={target!r}")
    return t.astype(np.intp)


def _attack_pairs(obj, model, target, y, task, Y):
    """``(lab, comp, tgt)``: each sample's label (None for regression), the output indices its
    attack works on, shape (m, T) (the competing classes or the outputs pushed), and the
    targets asked for (None: every competitor)."""
    mm, q = Y.shape
    tgt = _target_index(obj, model, target, mm, task)
    if task == "classification":
        if q < 2:
            raise ValueError(f"classification attacks need q >= 2 outputs; the model has q={q}")
        lab = (np.argmax(Y, axis=1) if y is None
               else _labels_to_index(obj, model, y, mm))
        if tgt is not None:
            same = np.flatnonzero(tgt == lab)
            if same.size:
                raise ValueError(
                    f"target equals the attacked label for sample {same[0]} "
                    f"(output index {tgt[same[0]]}); a targeted attack needs another class"
                )
            comp = tgt[:, None]
        else:
            allc = np.arange(q)
            comp = np.stack([allc[allc != lab[i]] for i in range(mm)])  # (m, q-1)
    else:
        if y is not None:
            raise ValueError("y is only used for classification attacks; got y for regression")
        lab = None
        comp = (np.broadcast_to(np.arange(q), (mm, q)) if tgt is None else tgt[:, None])
    return lab, comp, tgt


def _attack(obj, U, k, sigma, target, y, task, rank):
    """Run a top-k sign attack. ``rank`` is "sensitivity" or "gradient"."""
    model = _as_model(obj)
    U = _check_U(model, U)
    mm, p = U.shape
    k = _check_attack_k(k, p)
    sig = _check_sigma(sigma, p, name="sigma")
    task = _task(obj, model, task)
    q = model.n_outputs
    if mm == 0:  # nothing to attack
        return AttackResult(U.copy(), np.zeros((0, k), dtype=np.intp), np.zeros((0, q)),
                            np.zeros(0, dtype=np.intp))
    X = model.equilibrium(U)
    Y = model.output(X, U)
    lab, comp, tgt = _attack_pairs(obj, model, target, y, task, Y)
    T = comp.shape[1]
    rows = np.repeat(np.arange(mm), T)
    cflat = comp.reshape(-1)
    # cotangent whose gradient increases the attacked quantity
    Gc = np.zeros((mm * T, q))
    Gc[np.arange(mm * T), cflat] = 1.0
    if task == "classification":
        Gc[np.arange(mm * T), lab[rows]] -= 1.0
    if model.activation.componentwise:
        grad = input_gradient(model, U[rows], Gc, X=X[rows])
    elif rank == "gradient":
        raise ValueError(
            f"gradient_attack needs a componentwise activation; got {model.activation!r}"
        )
    else:
        grad = np.ones((mm * T, p))  # no linearisation: signs are tried both ways below
    if rank == "sensitivity":
        if task == "classification":
            P = pairwise_sensitivity(model)
            score = P[lab[rows], cflat]
        else:
            score = sensitivity_matrix(model)[cflat]
    else:
        score = np.abs(grad)
    score = score * sig[None, :]
    feats = np.argsort(-score, axis=1, kind="stable")[:, :k]  # (mT, k)
    gsign = np.sign(np.take_along_axis(grad, feats, axis=1))
    gsign[gsign == 0] = 1.0
    if rank == "sensitivity":
        signs = [gsign, np.ones_like(gsign), -np.ones_like(gsign)]
    elif task == "classification":
        signs = [gsign]
    else:
        signs = [gsign, -gsign]
    S = len(signs)
    # candidates (mT*S, p), evaluated in chunks
    best_val = np.full(mm, np.inf)
    best_U = U.copy()
    best_Y = Y.copy()
    best_f = np.zeros((mm, k), dtype=np.intp)
    best_t = np.zeros(mm, dtype=np.intp)
    per_sample = T * S
    chunk = max(1, _CHUNK // max(per_sample * p, 1))
    for s0 in range(0, mm, chunk):
        idx = np.arange(s0, min(s0 + chunk, mm))
        sel = (idx[:, None] * T + np.arange(T)[None, :]).reshape(-1)  # rows of the mT arrays
        cand = np.repeat(U[idx], per_sample, axis=0).reshape(idx.size, T, S, p)
        for si, sg in enumerate(signs):
            delta = np.zeros((sel.size, p))
            np.put_along_axis(delta, feats[sel], sg[sel] * sig[feats[sel]], axis=1)
            cand[:, :, si, :] += delta.reshape(idx.size, T, p)
        flat = cand.reshape(-1, p)
        Yc = model.predict(flat).reshape(idx.size, T, S, q)
        if task == "classification":
            ly = lab[idx]
            own = np.take_along_axis(Yc, ly[:, None, None, None], axis=3)[..., 0]
            if tgt is not None:
                val = own - np.take_along_axis(Yc, comp[idx][:, :, None, None], axis=3)[..., 0]
            else:
                other = Yc.copy()
                np.put_along_axis(other, np.broadcast_to(ly[:, None, None, None],
                                                         (idx.size, T, S, 1)), -np.inf, axis=3)
                val = own - other.max(axis=3)  # margin: smaller is better for the attacker
        else:
            y0 = np.take_along_axis(Y[idx][:, None, :], comp[idx][:, :, None], axis=2)  # (b,T,1)
            yc = np.take_along_axis(Yc, comp[idx][:, :, None, None], axis=3)[..., 0]
            val = -np.abs(yc - y0)
        flatv = val.reshape(idx.size, -1)
        j = np.argmin(flatv, axis=1)
        ti, si = np.divmod(j, S)
        best_val[idx] = flatv[np.arange(idx.size), j]
        best_U[idx] = cand[np.arange(idx.size), ti, si]
        best_Y[idx] = Yc[np.arange(idx.size), ti, si]
        best_f[idx] = feats[idx * T + ti]
        best_t[idx] = comp[idx, ti]
    return AttackResult(U_adv=best_U, features=best_f, Y_adv=best_Y, target=best_t)


def sensitivity_attack(model: ModelLike, U: ArrayLike, k: int, sigma: ArrayLike = 1.0,
                       target: Any = None, y: ArrayLike | None = None,
                       task: str = "auto") -> AttackResult:
    r"""Sparse attack from the sensitivity matrix [IDL §7.3.1].

    For each sample and each attacked output (every competing class k of the label y for a
    classifier, with the pairwise row :math:`S_{yk}` of theory §7; output t of a regressor,
    with the row :math:`S_t`), the k features with the largest :math:`S_{\cdot j}\sigma_j`
    are moved by :math:`\pm\sigma_j`. Signs are tried three ways — from the local linearisation
    (the sign of the implicit gradient of :math:`\hat y_k - \hat y_y`, resp. :math:`\hat y_t`),
    all :math:`+`, all :math:`-` — and the candidate that hurts most on the real model is
    kept: the smallest margin :math:`\hat y_y - \max_{j \ne y}\hat y_j` (or
    :math:`\hat y_y - \hat y_{target}`), resp. the largest :math:`|\Delta\hat y_t|`.

    Parameters
    ----------
    model : ImplicitModel or fitted estimator
    U : array of shape (m, p)
    k : int
        Number of features to perturb per sample.
    sigma : float or array of shape (p,), default=1.0
        Perturbation size per feature, in the units of the raw inputs.
    target : label or output index, or array of them, optional
        Classification: the class to promote (estimator labels, or output indices for an
        ImplicitModel). Regression: the output to push.
    y : array of shape (m,), optional
        Labels whose margin is attacked (default: the predicted classes).
    task : {"auto", "classification", "regression"}
        ``"auto"``: classification for estimators with ``classes_`` and for ImplicitModels with
        ``q >= 2``; regression otherwise.

    Returns
    -------
    AttackResult
    """
    return _attack(model, U, k, sigma, target, y, task, "sensitivity")


def gradient_attack(model: ModelLike, U: ArrayLike, k: int, sigma: ArrayLike = 1.0,
                    target: Any = None, y: ArrayLike | None = None,
                    task: str = "auto") -> AttackResult:
    r"""Sparse saliency attack from the implicit gradient [IDL §7.3.1, the baseline].

    For each sample and attacked output, the k features with the largest
    :math:`|\partial(\hat y_k - \hat y_y)/\partial u_j|\,\sigma_j` (regression:
    :math:`|\partial\hat y_t/\partial u_j|\sigma_j`) are moved by :math:`\sigma_j` in the
    gradient's sign (both signs for regression). The gradient is :math:`vB + gD` with the
    adjoint :math:`v = \Phi\odot(vA + gC)` (:func:`input_gradient`). The candidate that hurts
    most on the real model is kept, as in :func:`sensitivity_attack`, whose parameters this
    shares.

    Returns
    -------
    AttackResult
    """
    return _attack(model, U, k, sigma, target, y, task, "gradient")


def attack_success_rate(clf_or_model: ModelLike, U: ArrayLike, y: ArrayLike, U_adv: ArrayLike,
                        among: str = "correct") -> float:
    r"""Share of samples an attack turns from correctly to wrongly classified.

    Parameters
    ----------
    clf_or_model : fitted classifier or ImplicitModel (class logits, q >= 2)
    U : array of shape (m, p)
        Clean inputs.
    y : array of shape (m,)
        True labels (estimator classes, or output indices for an ImplicitModel).
    U_adv : array of shape (m, p)
        Attacked inputs.
    among : {"correct", "all"}
        ``"correct"``: among the samples classified correctly on ``U``, the fraction
        misclassified on ``U_adv`` (NaN when none is correct). ``"all"``: the fraction of all
        samples misclassified on ``U_adv``.

    Returns
    -------
    float
    """
    check_choice("among", among, ("correct", "all"))
    model = _as_model(clf_or_model)
    U = _check_U(model, U)
    U_adv = _check_U(model, U_adv, name="U_adv")
    if U_adv.shape != U.shape:
        raise ValueError(f"U_adv must have the shape of U {U.shape}; got {U_adv.shape}")
    lab = _labels_to_index(clf_or_model, model, y, U.shape[0])
    wrong_adv = np.argmax(model.predict(U_adv), axis=1) != lab
    if among == "all":
        return float(np.mean(wrong_adv)) if wrong_adv.size else float("nan")
    correct = np.argmax(model.predict(U), axis=1) == lab
    if not correct.any():
        return float("nan")
    return float(np.mean(wrong_adv[correct]))
