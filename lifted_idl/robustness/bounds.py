r"""Closed-form robustness bounds: sensitivity matrix, state box bounds, Lipschitz constants.

Implements theory §7 ([IDL §4.2–4.3], [NEMON]). With :math:`x^0 = x(u^0)` and
:math:`x = x(u)` the equilibria at a nominal and a perturbed input:

* box bound on the state [IDL Thm 4.1]: :math:`|x - x^0| \le (I - |A|)^{-1}|B|\,\sigma_u` on
  :math:`\mathcal U^{box} = \{u : |u - u^0| \le \sigma_u\}` (CONE maps);
* cardinality bound [IDL (4.4)]: :math:`\|x - x^0\|_\infty \le \delta / (1 - \|A\|_\infty)` on
  :math:`\mathcal U^{card} = \mathcal U^{box} \cap \{\mathrm{Card}(u - u^0) \le k\}`;
* sensitivity matrix [IDL Thm 4.2]: :math:`|\hat y(u) - \hat y(u^0)| \le S |u - u^0|`;
* Lipschitz constants in the l-infinity norm: :math:`\|S\|_\infty`, :math:`\rho` [IDL §4.3] and
  the NE-MON constant [NEMON].

All bounds account for the activation's Lipschitz constants :math:`\gamma` (sigmoid has
:math:`\gamma = 1/4`); for ReLU, leaky ReLU and tanh (:math:`\gamma = 1`) they are the paper's
formulas. A bound whose condition fails raises
:class:`~lifted_idl.exceptions.BoundConditionError`, naming the condition and its value.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .._array import to_numpy
from .._validation import check_choice
from ..exceptions import BoundConditionError
from ..wellposedness import mu_inf
from ._common import ModelLike, _as_model, _check_k, _check_sigma, _Gains, _top_k_sum

__all__ = [
    "sensitivity_matrix",
    "pairwise_sensitivity",
    "state_box_bound",
    "lipschitz_bound",
]


def _norm_arg(norm) -> float:
    if isinstance(norm, str):
        key = norm.strip().lower()
        table = {"inf": np.inf, "linf": np.inf, "l_inf": np.inf, "2": 2.0, "l2": 2.0,
                 "1": 1.0, "l1": 1.0}
        if key in table:
            return table[key]
    elif isinstance(norm, (int, float, np.integer, np.floating)) and not isinstance(norm, bool):
        if norm in (1, 2) or norm == np.inf:
            return float(norm)
    raise ValueError(f"norm must be 'inf', 2 or 1; got norm={norm!r}")


def sensitivity_matrix(model: ModelLike) -> np.ndarray:
    r"""Sensitivity matrix :math:`S` with :math:`|\hat y(u) - \hat y(u^0)| \le S\,|u - u^0|`.

    [IDL Thm 4.2, (4.8)], theory §7. For a CONE map with per-state Lipschitz constants
    :math:`\gamma` (:math:`\Gamma = \mathrm{diag}(\gamma)`):

    .. math:: S = |C|\,(I - \Gamma|A|)^{-1}\,\Gamma|B| + |D|,

    which is :math:`|C|(I - |A|)^{-1}|B| + |D|` for ReLU. For a BLIP map (a
    :class:`~lifted_idl.activations.Blockwise` activation with a non-componentwise block):

    .. math:: S = N(C)\,(I - N(A,\gamma))^{-1}\,N(B,\gamma) + |D|,

    with :math:`N(A,\gamma)` of [IDL (2.4)], :math:`N(B,\gamma)` of [IDL (4.5)] and the dual
    norms in :math:`N(C)`. :math:`S` does not depend on the input.

    Parameters
    ----------
    model : ImplicitModel or fitted estimator
        An estimator is read through its ``model_``.

    Returns
    -------
    S : ndarray of shape (q, p)
        Nonnegative.

    Raises
    ------
    BoundConditionError
        If :math:`\lambda_{PF}(\Gamma|A|) \ge 1` (resp. :math:`\lambda_{PF}(N(A,\gamma)) \ge 1`),
        or the activation has no finite Lipschitz constant.
    """
    m = _as_model(model)
    g = _Gains(m)
    g.require_pf("sensitivity_matrix")
    C = np.asarray(to_numpy(m.C), dtype=np.float64)
    D = np.asarray(to_numpy(m.D), dtype=np.float64)
    return g.NC(C) @ g.transfer() + np.abs(D)


def pairwise_sensitivity(model: ModelLike) -> np.ndarray:
    r"""Pairwise sensitivity rows :math:`S_{yk}` for the margins :math:`\hat y_y - \hat y_k`.

    Theory §6: :math:`S_{yk} = N(C_y - C_k)\,(I - N(A,\gamma))^{-1} N(B,\gamma) + |D_y - D_k|`
    (for ReLU, :math:`|C_y - C_k|(I - |A|)^{-1}|B| + |D_y - D_k|`), so that
    :math:`|m_{yk}(u) - m_{yk}(u^0)| \le S_{yk}|u - u^0|`. This is tighter than
    :math:`S_y + S_k` because :math:`|C_y - C_k| \le |C_y| + |C_k|`.

    Returns
    -------
    P : ndarray of shape (q, q, p)
        ``P[y, k]`` is the row :math:`S_{yk}` (zero on the diagonal, symmetric in y, k).

    Raises
    ------
    BoundConditionError
        As :func:`sensitivity_matrix`.
    """
    m = _as_model(model)
    g = _Gains(m)
    g.require_pf("pairwise_sensitivity")
    C = np.asarray(to_numpy(m.C), dtype=np.float64)
    D = np.asarray(to_numpy(m.D), dtype=np.float64)
    q, p = D.shape
    T = g.transfer()
    dC = (C[:, None, :] - C[None, :, :]).reshape(q * q, -1)
    dD = np.abs(D[:, None, :] - D[None, :, :]).reshape(q * q, p)
    return (g.NC(dC) @ T + dD).reshape(q, q, p)


def state_box_bound(model: ModelLike, sigma_u: ArrayLike, k: int | None = None,
                    componentwise: bool = False) -> np.ndarray | float:
    r"""Bound on the state deviation :math:`x(u) - x(u^0)` over a box or cardinality set.

    Box set :math:`\mathcal U^{box} = \{u : |u - u^0| \le \sigma_u\}` (``k=None``), [IDL
    Thm 4.1], theory §7: for a CONE map,

    .. math:: |x - x^0| \le \sigma_x := (I - \Gamma|A|)^{-1}\,\Gamma|B|\,\sigma_u,

    the fixed point of :math:`\sigma \leftarrow \Gamma(|A|\sigma + |B|\sigma_u)` (for ReLU,
    :math:`\Gamma = I`). For a BLIP map the same formula with :math:`N(A,\gamma)`,
    :math:`N(B,\gamma)` bounds the block norms :math:`\|(x - x^0)_l\|_{p_l}`, hence every state
    of block l.

    Cardinality set :math:`\mathcal U^{card} = \mathcal U^{box} \cap \{\mathrm{Card}(u - u^0)
    \le k\}`, [IDL (4.4)]:

    .. math:: \|x - x^0\|_\infty \le \frac{\delta}{1 - \|\Gamma A\|_\infty}, \qquad
              \delta = \max_i \gamma_i\, s_k(\sigma_u \odot |B|^\top e_i),

    with :math:`s_k` the sum of the k largest entries. With ``componentwise=True`` the
    per-state refinement :math:`|x - x^0| \le (I - \Gamma|A|)^{-1} d`,
    :math:`d_i = \gamma_i s_k(\sigma_u \odot |B|^\top e_i)`, is returned instead: it follows
    from :math:`|x - x^0| \le \Gamma(|A||x - x^0| + |B||u - u^0|)` and
    :math:`(|B||u - u^0|)_i \le s_k(\sigma_u \odot |B|^\top e_i)` on
    :math:`\mathcal U^{card}`, needs only :math:`\lambda_{PF}(\Gamma|A|) < 1`, and is
    entrywise no larger than both the scalar bound and the box bound.

    Parameters
    ----------
    model : ImplicitModel or fitted estimator
    sigma_u : float or array of shape (p,)
        Nonnegative radii of the box.
    k : int, optional
        Maximal number of perturbed features (cardinality set).
    componentwise : bool, default=False
        For ``k`` given: return the per-state refinement instead of the scalar bound.

    Returns
    -------
    ndarray of shape (n,) or float
        ``k=None`` (or ``componentwise=True``): the per-state bound :math:`\sigma_x`.
        ``k`` given: the scalar bound on :math:`\|x - x^0\|_\infty`.

    Raises
    ------
    BoundConditionError
        Box bound: :math:`\lambda_{PF}(\Gamma|A|) \ge 1` (resp. :math:`N(A,\gamma)`).
        Scalar cardinality bound: :math:`\|\Gamma A\|_\infty \ge 1` (resp.
        :math:`\|N(A,\gamma)\|_\infty \ge 1`).
    """
    m = _as_model(model)
    p = m.n_features
    sigma = _check_sigma(sigma_u, p)
    k = _check_k(k, p)
    g = _Gains(m)
    if k is None:
        g.require_pf("state_box_bound")
        return g.expand(g.resolvent_times(g.NB @ sigma))
    d = _top_k_sum(g.NB * sigma[None, :], k)
    if componentwise:
        g.require_pf("state_box_bound(componentwise=True)")
        return g.expand(g.resolvent_times(d))
    row = float(g.NA.sum(axis=1).max(initial=0.0))
    if not row < 1:
        name = "||diag(gamma) A||_inf" if g.componentwise else "||N(A, gamma)||_inf"
        raise BoundConditionError(
            f"the cardinality bound [IDL (4.4)] needs {name} < 1; got {name} = {row:.6g} "
            "(rescale with lifted_idl.wellposedness.rescale_to_inf_norm, or pass "
            "componentwise=True, which needs only lambda_PF < 1)"
        )
    return float(d.max(initial=0.0) / (1.0 - row))


def lipschitz_bound(model: ModelLike, norm: str | float = "inf",
                    kind: str = "sensitivity") -> float:
    r"""An upper bound on the Lipschitz constant of :math:`u \mapsto \hat y(u)`.

    ``kind="sensitivity"`` (theory §7, [IDL Thm 4.2]): from :math:`|\Delta\hat y| \le
    S|\Delta u|`, the constant :math:`\|S\|` in the induced norm ``norm`` (inf, 2 or 1; in
    the inf-norm never above ``"rho"``; ``"nemon"`` can be below it where A has negative
    diagonal entries).

    ``kind="rho"`` [IDL §4.3] (inf-norm, CONE maps):

    .. math:: \rho = \frac{\|\Gamma B\|_\infty \|C\|_\infty}{1 - \|\Gamma A\|_\infty}
              + \|D\|_\infty, \qquad \text{needs } \|\Gamma A\|_\infty < 1.

    ``kind="nemon"`` [NEMON] (inf-norm, componentwise maps with slopes in
    :math:`[0, \gamma]`, :math:`\gamma \le 1`):

    .. math:: \frac{\gamma\,\|B\|_\infty \|C\|_\infty}{1 - \gamma\max(\mu_\infty(A), 0)}
              + \|D\|_\infty, \qquad \text{needs } \mu_\infty(A) < 1,

    with :math:`\mu_\infty(A) = \max_i (a_{ii} + \sum_{j \ne i} |a_{ij}|)`. It allows very
    negative diagonals where :math:`\|A\|_\infty \ge 1`. For :math:`\gamma = 1` all three are
    the formulas of theory §7.

    Parameters
    ----------
    model : ImplicitModel or fitted estimator
    norm : {"inf", 2, 1}, default="inf"
        Only ``kind="sensitivity"`` supports 2 and 1.
    kind : {"sensitivity", "rho", "nemon"}

    Returns
    -------
    float

    Raises
    ------
    BoundConditionError
        When the condition of the chosen bound fails or the activation does not fit it.
    """
    check_choice("kind", kind, ("sensitivity", "rho", "nemon"))
    pn = _norm_arg(norm)
    m = _as_model(model)
    if kind == "sensitivity":
        S = sensitivity_matrix(m)
        if S.size == 0:
            return 0.0
        if pn == np.inf:
            return float(S.sum(axis=1).max())
        if pn == 1:
            return float(S.sum(axis=0).max())
        return float(np.linalg.norm(S, 2))
    if pn != np.inf:
        raise ValueError(f"kind={kind!r} is an l-infinity bound; got norm={norm!r}")
    act = m.activation
    if not act.componentwise:
        raise BoundConditionError(
            f"kind={kind!r} needs a componentwise (CONE) activation; got activation={act!r} "
            "(use kind='sensitivity' for blockwise maps)"
        )
    A = np.asarray(to_numpy(m.A), dtype=np.float64)
    B = np.asarray(to_numpy(m.B), dtype=np.float64)
    C = np.asarray(to_numpy(m.C), dtype=np.float64)
    D = np.asarray(to_numpy(m.D), dtype=np.float64)

    def inf(M):
        return float(np.abs(M).sum(axis=1).max(initial=0.0))

    g = _Gains(m)
    if kind == "rho":
        a = float(g.NA.sum(axis=1).max(initial=0.0))
        if not a < 1:
            raise BoundConditionError(
                f"kind='rho' needs ||diag(gamma) A||_inf < 1 [IDL §4.3]; got {a:.6g}"
            )
        return float(g.NB.sum(axis=1).max(initial=0.0)) * inf(C) / (1.0 - a) + inf(D)
    gam = float(g.gamma.max(initial=0.0))
    if gam > 1:
        raise BoundConditionError(
            f"kind='nemon' needs slopes in [0, 1] (Lipschitz constant <= 1); activation {act!r} "
            f"has Lipschitz constant {gam:.6g}"
        )
    mu = mu_inf(A) if A.shape[0] else -np.inf
    if not mu < 1:
        raise BoundConditionError(f"kind='nemon' needs mu_inf(A) < 1 [NEMON]; got {mu:.6g}")
    return gam * inf(B) * inf(C) / (1.0 - gam * max(mu, 0.0)) + inf(D)
