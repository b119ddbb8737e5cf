r"""Robustness certificates for implicit classifiers (theory §7, [IDL §4.3–4.4]).

A sample :math:`u^0` with label :math:`y` is *certified* on a ball of radius :math:`\varepsilon`
when every input of the ball is classified :math:`y`. With the margins
:math:`m_{yk}(u) = \hat y_y(u) - \hat y_k(u)`:

* sensitivity certificate: :math:`|m_{yk}(u) - m_{yk}(u^0)| \le S_{yk}|u - u^0|` with the
  pairwise sensitivity row :math:`S_{yk} = |C_y - C_k|(I - |A|)^{-1}|B| + |D_y - D_k|`
  [IDL Thm 4.2], so the prediction is certified on the l-infinity ball of radius
  :math:`\varepsilon` if :math:`m_{yk}(u^0) > \varepsilon\, S_{yk}\mathbf 1` for all
  :math:`k \ne y` (l2 ball: :math:`\varepsilon\|S_{yk}\|_2`; l1 ball:
  :math:`\varepsilon\|S_{yk}\|_\infty`);
* LP certificate [IDL Thm 4.3]: the LP relaxation's maximum of :math:`\hat y_k - \hat y_y` over
  the l-infinity ball is negative for all :math:`k \ne y`. With the box bound inside the LP,
  its value never exceeds :math:`-m_{yk} + \varepsilon S_{yk}\mathbf 1`, so the LP certifies
  every sample the sensitivity certificate does.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .._array import to_numpy
from .._validation import check_choice, check_real
from ._common import ModelLike, _as_model, _check_U, _Gains, _labels_to_index
from .bounds import _norm_arg, pairwise_sensitivity
from .lp import LPRelaxation

__all__ = ["certified_radius", "lp_certify", "certified_accuracy"]


def _check_eps(eps) -> float:
    try:
        e = float(eps)
    except (TypeError, ValueError):
        raise ValueError(f"eps must be a finite number >= 0; got eps={eps!r}") from None
    if not np.isfinite(e) or e < 0:
        raise ValueError(f"eps must be a finite number >= 0; got eps={eps!r}")
    return e


def certified_radius(clf: ModelLike, X: ArrayLike, y: ArrayLike,
                     norm: str | float = "inf") -> np.ndarray:
    r"""Certified radius of each sample from the pairwise sensitivity rows (theory §7).

    .. math::

        r(u^0) = \min_{k \ne y} \frac{m_{yk}(u^0)}{\|S_{yk}\|_*}, \qquad
        m_{yk} = \hat y_y - \hat y_k,

    with :math:`\|S_{yk}\|_* = S_{yk}\mathbf 1` for the l-infinity ball, :math:`\|S_{yk}\|_2`
    for the l2 ball and :math:`\max_j S_{yk,j}` for the l1 ball (the dual norms). Every input
    :math:`u` with :math:`\|u - u^0\| < r` is classified y. The margins are those of the
    computed equilibrium less a bound on the solver's error (:math:`N(C_y - C_k)\,\eta`, with
    :math:`\eta = (I - N(A,\gamma))^{-1}\|r\|` from the fixed-point residual r). The radius
    is 0 when the sample is misclassified or tied (or its margin is within that error), and
    ``inf`` when no margin depends on the input.

    Parameters
    ----------
    clf : fitted classifier or ImplicitModel (class logits, q >= 2)
    X : array of shape (m, p)
    y : array of shape (m,)
        True labels (estimator classes, or output indices for an ImplicitModel).
    norm : {"inf", 2, 1}

    Returns
    -------
    ndarray of shape (m,)

    Raises
    ------
    BoundConditionError
        If the sensitivity matrix's condition fails (see
        :func:`~lifted_idl.robustness.bounds.sensitivity_matrix`).
    """
    pn = _norm_arg(norm)
    model = _as_model(clf)
    X = _check_U(model, X, name="X")
    lab = _labels_to_index(clf, model, y, X.shape[0])
    P = pairwise_sensitivity(model)  # (q, q, p)
    if pn == np.inf:
        den = P.sum(axis=2)
    elif pn == 2:
        den = np.linalg.norm(P, axis=2)
    else:
        den = P.max(axis=2, initial=0.0)
    # the margins at the computed states, less a rigorous bound on what the solver's error
    # can change them by (|(C_y - C_k)(x - x*)| <= N(C_y - C_k) eta): a tiny margin is not
    # certified on the strength of rounding
    g = _Gains(model)
    Xs = np.asarray(to_numpy(model.equilibrium(X)), dtype=np.float64)
    Y = np.asarray(to_numpy(model.output(Xs, X)), dtype=np.float64)
    m, q = Y.shape
    C = np.asarray(to_numpy(model.C), dtype=np.float64)
    NdC = g.NC((C[:, None, :] - C[None, :, :]).reshape(q * q, -1)).reshape(q, q, -1)
    err = np.einsum("ikl,il->ik", NdC[lab], g.solve_error(model, X, Xs))
    margins = Y[np.arange(m), lab][:, None] - Y - err  # (m, q)
    dens = den[lab]  # (m, q)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(dens > 0, margins / np.where(dens > 0, dens, 1.0), np.inf)
    others = np.ones((m, q), dtype=bool)
    others[np.arange(m), lab] = False
    ratio = np.where(others, ratio, np.inf)
    radius = ratio.min(axis=1)
    bad = (np.where(others, margins, np.inf) <= 0).any(axis=1)
    radius[bad] = 0.0
    return radius


def lp_certify(clf: ModelLike, X: ArrayLike, y: ArrayLike, eps: float,
               relaxation: str = "triangle", solver: str | None = None, screen: bool = True,
               atol: float = 1e-7, return_bounds: bool = False
               ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    r"""LP certificate on the l-infinity ball of radius ``eps`` (theory §7, [IDL Thm 4.3]).

    Sample i is certified when it is classified correctly and, for every :math:`k \ne y_i`,

    .. math:: \max_{(x,u)\,\in\,\mathcal R} (e_k - e_{y_i})^\top(Cx + Du + c)
              < -\mathrm{atol},

    the relaxation :math:`\mathcal R` being the LP of
    :class:`~lifted_idl.robustness.lp.LPRelaxation` with
    :math:`\sigma_u = \varepsilon\mathbf 1`. One cvxpy problem is built and moved from
    sample to sample (:meth:`~lifted_idl.robustness.lp.LPRelaxation.set_input`).

    Parameters
    ----------
    clf : fitted classifier or ImplicitModel (ReLU, class logits)
    X : array of shape (m, p)
    y : array of shape (m,)
    eps : float
        Radius of the l-infinity ball.
    relaxation : {"triangle", "paper"}
        The triangle relaxation is the tighter one.
    solver : str, optional
        cvxpy solver (default HiGHS, falling back to Clarabel).
    screen : bool, default=True
        Skip the LP for a class k when the closed-form box bound it refines,
        :math:`(e_k - e_y)^\top\hat y^0 + |(e_k - e_y)^\top C|\sigma_x +
        |(e_k - e_y)^\top D|\sigma_u`, is already below ``-atol`` (the LP value cannot be
        larger). ``False`` solves every LP.
    atol : float, default=1e-7
        Safety margin for the solver's tolerance.
    return_bounds : bool, default=False
        Also return, per sample, the largest bound over k (the LP value, or the screening
        bound where the LP was skipped); for a misclassified sample, the nominal
        :math:`\max_{k \ne y}(\hat y_k - \hat y_y) \ge 0`.

    Returns
    -------
    certified : ndarray of bool, shape (m,)
    bounds : ndarray of shape (m,), only with ``return_bounds=True``

    Raises
    ------
    BoundConditionError
        Not a ReLU model, or :math:`\lambda_{PF}(|A|) \ge 1`.
    SolverError
        An LP could not be solved.
    """
    eps = _check_eps(eps)
    check_real("atol", atol, 0)
    model = _as_model(clf)
    X = _check_U(model, X, name="X")
    m = X.shape[0]
    lab = _labels_to_index(clf, model, y, m)
    q = model.n_outputs
    certified = np.zeros(m, dtype=bool)
    bounds = np.full(m, np.nan)
    if m == 0:
        return (certified, bounds) if return_bounds else certified
    Y = model.predict(X)
    lp = None
    for i in range(m):
        yi = lab[i]
        others = [k for k in range(q) if k != yi]
        nominal = max(Y[i, k] - Y[i, yi] for k in others)
        if nominal >= 0:
            bounds[i] = nominal
            continue
        if lp is None:
            lp = LPRelaxation(model, X[i], eps, relaxation=relaxation, solver=solver)
        else:
            lp.set_input(X[i])
        worst = -np.inf
        for k in others:
            c = np.zeros(q)
            c[k], c[yi] = 1.0, -1.0
            val = lp.box_output_bound(c) if screen else np.inf
            if not val < -atol:
                val = lp.maximize_output(c).bound
            worst = max(worst, val)
            if not return_bounds and worst >= -atol:
                break
        bounds[i] = worst
        certified[i] = worst < -atol
    return (certified, bounds) if return_bounds else certified


def certified_accuracy(clf: ModelLike, X: ArrayLike, y: ArrayLike, eps: float,
                       method: str = "sensitivity", norm: str | float = "inf",
                       **lp_options) -> float:
    r"""Fraction of samples certified correct on the ball of radius ``eps``.

    ``method="sensitivity"``: :math:`r(u^0) > \varepsilon` with :func:`certified_radius`
    (any ``norm``). ``method="lp"``: :func:`lp_certify` (l-infinity only; ``lp_options`` are
    passed on). The LP's certified accuracy is never below the sensitivity one (theory §7).

    Returns
    -------
    float
        In [0, 1]; NaN for an empty ``X``.
    """
    check_choice("method", method, ("sensitivity", "lp"))
    eps = _check_eps(eps)
    if method == "sensitivity":
        if lp_options:
            raise ValueError(f"options {sorted(lp_options)} only apply to method='lp'")
        r = certified_radius(clf, X, y, norm=norm)
        return float(np.mean(r > eps)) if r.size else float("nan")
    if _norm_arg(norm) != np.inf:
        raise ValueError(f"method='lp' certifies l-infinity balls only; got norm={norm!r}")
    ok = lp_certify(clf, X, y, eps, **lp_options)
    return float(np.mean(ok)) if ok.size else float("nan")
