r"""LP relaxation of the worst case over an input set, for ReLU models [IDL Thm 4.3], theory §7.

For a ReLU implicit model, a nominal input :math:`u^0` with state :math:`x^0 = x(u^0)` and the
box bound :math:`|x - x^0| \le \sigma_x` [IDL Thm 4.1], the worst linear objective over the input
set is bounded by the LP (bidual form of [IDL Thm 4.3])

.. math::

    \bar p = \max_{x, u}\ c^\top x \quad \text{s.t.}\quad x \ge Ax + Bu + b,\ x \ge 0,\
    |x - x^0| \le \sigma_x,\ |u - u^0| \le \sigma_u,
    \ [\ \|\mathrm{diag}(\sigma_u)^{-1}(u - u^0)\|_1 \le k\ ].

Every true pair :math:`(x(u), u)` with :math:`u` in the set is feasible, so
:math:`\bar p \ge \max_u c^\top x(u)`; the LP maximiser :math:`u` is a candidate attack. The
bracketed constraint is the convex hull of the cardinality set :math:`\mathcal U^{card}`
[IDL (4.2)]. An output objective :math:`c^\top(Cx + Du + c_0)` is linear in :math:`(x, u)` too.

``relaxation="triangle"`` adds, from the pre-activation bounds :math:`l \le z \le h`,
:math:`z = Ax + Bu + b`, implied by the box bound, the upper side of the convex hull of the
ReLU graph: :math:`x \le h \odot (z - l) / (h - l)` on unstable units (:math:`l < 0 < h`),
:math:`x = z` on stably active ones (:math:`l \ge 0`) and :math:`x = 0` on stably inactive ones
(:math:`h \le 0`). Every true pair still satisfies these, so the bound stays sound and is
never larger than the paper's.

The problem is built once, with cvxpy Parameters (it is DPP), and re-solved for new objectives
and new nominal inputs by updating parameter values (:class:`LPRelaxation`).
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from .._array import to_numpy
from ..activations import Blockwise, ReLU
from ..exceptions import BoundConditionError, SolverError
from ._common import (
    ModelLike,
    _as_model,
    _check_k,
    _check_point,
    _check_sigma,
    _check_vector,
    _Gains,
    _top_k_sum,
)

__all__ = [
    "LPResult",
    "LPAttackResult",
    "LPRelaxation",
    "lp_state_bound",
    "lp_output_bound",
    "lp_attack",
]

_DEFAULT_SOLVERS = ("HIGHS", "CLARABEL")
_BANNER_LOCK = threading.Lock()


@functools.cache
def _absorb_highs_banner() -> None:
    """Send HiGHS's copyright banner to the null device.

    The HiGHS library prints it to file descriptor 1, once per process, when its first
    ``Highs`` object is constructed; cvxpy constructs one before it applies any option
    (``log_to_console``, ``output_flag``), so no solver option silences it. One ``Highs`` is
    constructed here with descriptor 1 pointing at the null device (for a moment, under a
    lock, once per process: ``functools.cache``), and the C library's buffers are flushed
    there before descriptor 1 is restored. The banner is a process-wide property of the
    library, so this one-time state is too.
    """
    try:
        import highspy
    except ImportError:  # pragma: no cover - cvxpy without HiGHS: nothing to absorb
        return
    with _BANNER_LOCK:
        try:
            sys.stdout.flush()
            saved = os.dup(1)
        except (OSError, ValueError):  # no descriptor 1 (a closed or replaced stdout)
            highspy.Highs()
            return
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, 1)
            highspy.Highs()
            try:
                import ctypes

                ctypes.CDLL(None).fflush(None)
            except (OSError, AttributeError):  # pragma: no cover - no C library handle
                pass
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            os.close(null)


@dataclass(frozen=True)
class LPResult:
    """Solution of one LP relaxation.

    Attributes
    ----------
    bound : float
        The LP value: an upper bound on the objective over every input of the set.
    u : ndarray of shape (p,)
        The maximising input (in the box, and in the l1 hull of the cardinality set when ``k``
        is given; it need not have at most k changed features).
    x : ndarray of shape (n,)
        The LP's state variable at the optimum (not the true equilibrium at ``u``).
    status : str
        The cvxpy status (``"optimal"``).
    solver : str
        The solver that produced it.
    """

    bound: float
    u: np.ndarray
    x: np.ndarray
    status: str
    solver: str


@dataclass(frozen=True)
class LPAttackResult:
    """An attack point from the LP relaxation, evaluated on the real model.

    Attributes
    ----------
    u : ndarray of shape (p,)
        The attack point, in the input set (box, or cardinality set when ``k`` is given).
    value : float
        True objective :math:`c^\\top \\hat y(u)` on the model.
    bound : float
        LP upper bound on the objective over the set (``value <= bound``).
    nominal : float
        :math:`c^\\top \\hat y(u^0)`.
    u_lp : ndarray of shape (p,)
        The LP maximiser before it was mapped into the set.
    lp : LPResult
    """

    u: np.ndarray
    value: float
    bound: float
    nominal: float
    u_lp: np.ndarray
    lp: LPResult


def _require_relu(model):
    act = model.activation
    ok = isinstance(act, ReLU) or (
        isinstance(act, Blockwise) and all(isinstance(a, ReLU) for _, a in act.blocks)
    )
    if not ok:
        raise BoundConditionError(
            f"the LP relaxation [IDL Thm 4.3] is written for ReLU; got activation={act!r}"
        )


class LPRelaxation:
    r"""The LP relaxation of [IDL Thm 4.3] around one nominal input, built once.

    Parameters
    ----------
    model : ImplicitModel or fitted estimator
        A ReLU model with :math:`\lambda_{PF}(|A|) < 1`.
    u0 : array of shape (p,)
        Nominal input (change it later with :meth:`set_input`).
    sigma_u : float or array of shape (p,)
        Box radii :math:`\sigma_u \ge 0` (fixed for the life of the object).
    k : int, optional
        Cardinality budget: adds :math:`\|\mathrm{diag}(\sigma_u)^{-1}(u - u^0)\|_1 \le k`.
    relaxation : {"paper", "triangle"}
        The LP of [IDL Thm 4.3], or that LP plus the triangle upper bounds (module docstring).
    solver : str, optional
        A cvxpy solver name. Default: HiGHS, falling back to Clarabel when HiGHS is missing or
        fails.
    verbose : bool, default=False
        Let the solver print its log (and HiGHS its banner) to stdout; by default nothing is
        printed.

    Notes
    -----
    The state bound :math:`\sigma_x` is the box bound :math:`(I - |A|)^{-1}|B|\sigma_u`, or
    with ``k`` its cardinality refinement :math:`(I - |A|)^{-1} d`,
    :math:`d_i = s_k(\sigma_u \odot |B|^\top e_i)` (see
    :func:`~lifted_idl.robustness.bounds.state_box_bound`); either is sound. It is widened by a
    rigorous bound on the error of the computed :math:`x^0`,
    :math:`(I - |A|)^{-1}|x^0 - \phi(Ax^0 + Bu^0 + b)|`, plus a rounding margin, so the LP stays
    sound although :math:`x^0` comes from an iterative solve.

    Parameters of the cvxpy problem: the nominal data (:math:`Bu^0 + b`, the bounds on x and,
    for the triangle relaxation, the slopes and offsets of the upper lines) and the objective.
    ``is_dpp()`` holds, so re-solves skip the canonicalisation. The object pickles as its
    construction arguments (the cvxpy problem is rebuilt on load).

    Examples
    --------
    >>> import numpy as np
    >>> from lifted_idl import ImplicitModel
    >>> from lifted_idl.robustness.lp import LPRelaxation
    >>> m = ImplicitModel(np.array([[0.0, 0.5], [0.0, 0.0]]), np.eye(2), np.ones((1, 2)),
    ...                   np.zeros((1, 2)))
    >>> lp = LPRelaxation(m, np.array([1.0, 2.0]), 0.1)
    >>> round(lp.maximize_output([1.0]).bound, 6)   # y = x1 + x2 = u1 + 1.5 u2, monotone
    4.25
    """

    def __init__(self, model: ModelLike, u0: ArrayLike, sigma_u: ArrayLike, k: int | None = None,
                 relaxation: str = "paper",
                 solver: str | None = None, verbose: bool = False) -> None:
        import cvxpy as cp

        m = _as_model(model)
        _require_relu(m)
        if relaxation not in ("paper", "triangle"):
            raise ValueError(
                f"relaxation must be 'paper' or 'triangle'; got relaxation={relaxation!r}"
            )
        if solver is not None:
            if not isinstance(solver, str):
                raise ValueError(f"solver must be a cvxpy solver name; got solver={solver!r}")
            if solver.upper() not in cp.installed_solvers():
                raise ValueError(
                    f"solver={solver!r} is not installed; installed: {cp.installed_solvers()}"
                )
            self._solvers = (solver.upper(),)
        else:
            self._solvers = tuple(s for s in _DEFAULT_SOLVERS if s in cp.installed_solvers())
            if not self._solvers:  # pragma: no cover - environment guard
                raise SolverError(f"neither HiGHS nor Clarabel is installed for cvxpy; "
                                  f"installed: {cp.installed_solvers()}")
        self.model = m
        self.relaxation = relaxation
        self.solver = solver
        self.verbose = bool(verbose)
        self._A = np.asarray(to_numpy(m.A), dtype=np.float64)
        self._B = np.asarray(to_numpy(m.B), dtype=np.float64)
        self._C = np.asarray(to_numpy(m.C), dtype=np.float64)
        self._D = np.asarray(to_numpy(m.D), dtype=np.float64)
        n, p = self._B.shape
        self._b = np.zeros(n) if m.b is None else np.asarray(to_numpy(m.b), dtype=np.float64)
        self._c = (np.zeros(m.n_outputs) if m.c is None
                   else np.asarray(to_numpy(m.c), dtype=np.float64))
        self.sigma_u = _check_sigma(sigma_u, p)
        self.k = _check_k(k, p)
        g = _Gains(m)
        g.require_pf("LPRelaxation")
        self._absA = np.abs(self._A)
        # |B| |u - u0| <= dvec on the set (box or cardinality)
        if self.k is None:
            self._dvec = np.abs(self._B) @ self.sigma_u
        else:
            self._dvec = _top_k_sum(np.abs(self._B) * self.sigma_u[None, :], self.k)
        self.sigma_x = g.resolvent_times(self._dvec)
        self._resolvent = np.linalg.inv(np.eye(n) - self._absA) if n else np.zeros((0, 0))
        self._active = np.flatnonzero(self.sigma_u > 0)
        self._build(cp)
        self._u0 = None
        self.set_input(u0)

    # ------------------------------------------------------------------------------------------
    def _build(self, cp):
        n = self._A.shape[0]
        pa = max(self._active.size, 1)  # a dummy zero column when no feature may move
        Bs = np.zeros((n, pa))
        if self._active.size:
            Bs = self._B[:, self._active] * self.sigma_u[self._active][None, :]
        x = cp.Variable(n, name="x")
        w = cp.Variable(pa, name="w")  # u = u0 + sigma_u * w on the active features
        z = cp.Variable(n, name="z")
        self._zc = cp.Parameter(n, name="Bu0_plus_b")
        self._xlo = cp.Parameter(n, name="x_lower")
        self._xhi = cp.Parameter(n, name="x_upper")
        self._cx = cp.Parameter(n, name="c_x")
        self._cw = cp.Parameter(pa, name="c_w")
        cons = [
            z == self._A @ x + Bs @ w + self._zc,
            x >= z,
            x >= 0,
            x >= self._xlo,
            x <= self._xhi,
            w >= -1,
            w <= 1,
        ]
        if self._active.size == 0:
            cons.append(w == 0)
        if self.k is not None:
            cons.append(cp.norm1(w) <= self.k)
        if self.relaxation == "triangle":
            self._slope = cp.Parameter(n, name="triangle_slope")
            self._offset = cp.Parameter(n, name="triangle_offset")
            cons.append(x <= cp.multiply(self._slope, z) + self._offset)
        self._x, self._w = x, w
        self._problem = cp.Problem(cp.Maximize(self._cx @ x + self._cw @ w), cons)
        if not self._problem.is_dpp():  # pragma: no cover - guarded by construction
            raise RuntimeError("LPRelaxation problem is not DPP")

    @property
    def u0(self) -> np.ndarray:
        """The current nominal input."""
        return self._u0.copy()

    @property
    def x0(self) -> np.ndarray:
        """The equilibrium at the nominal input."""
        return self._x0.copy()

    def set_input(self, u0: ArrayLike) -> LPRelaxation:
        r"""Move the relaxation to a new nominal input :math:`u^0` (no rebuild).

        Solves :math:`x^0 = x(u^0)`, bounds its error and updates the parameters.
        """
        u0 = _check_point(self.model, u0)
        A, B, b = self._A, self._B, self._b
        x0 = np.asarray(self.model.equilibrium(u0[None, :]), dtype=np.float64)[0]
        zc = B @ u0 + b
        z0 = A @ x0 + zc
        # rigorous bound on the error of x0: |e| <= |A||e| + r0 with r0 the residual
        r0 = np.abs(x0 - np.maximum(z0, 0.0))
        err = np.maximum(self._resolvent @ r0, 0.0) if x0.size else r0
        scale = 1.0 + float(np.abs(x0).max(initial=0.0)) + float(
            np.abs(z0).max(initial=0.0)) + float(self.sigma_x.max(initial=0.0))
        slack = err + 1e-12 * scale
        sx = self.sigma_x + slack
        self._zc.value = zc
        self._xlo.value = x0 - sx
        self._xhi.value = x0 + sx
        if self.relaxation == "triangle":
            r = self._absA @ sx + self._dvec + 1e-12 * scale  # |z - z0| <= r
            lo, hi = z0 - r, z0 + r
            slope = np.zeros_like(z0)
            offset = np.zeros_like(z0)
            active = lo >= 0
            unstable = (lo < 0) & (hi > 0)
            slope[active] = 1.0
            h, l_ = hi[unstable], lo[unstable]
            slope[unstable] = h / (h - l_)
            offset[unstable] = -slope[unstable] * l_
            self._slope.value = slope
            self._offset.value = offset
            self.n_unstable_ = int(unstable.sum())
        self._u0 = u0
        self._x0 = x0
        return self

    # ------------------------------------------------------------------------------------------
    def _solve(self, cx, cw, const) -> LPResult:
        import cvxpy as cp

        self._cx.value = cx
        self._cw.value = cw
        failures = []
        for name in self._solvers:
            if name == "HIGHS" and not self.verbose:
                _absorb_highs_banner()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    self._problem.solve(solver=name, verbose=self.verbose)
            except cp.error.SolverError as err:
                failures.append(f"{name}: {type(err).__name__}: {err}")
                continue
            status = self._problem.status
            if status == cp.OPTIMAL and self._x.value is not None:
                w = np.clip(np.asarray(self._w.value, dtype=np.float64), -1.0, 1.0)
                u = self._u0.copy()
                if self._active.size:
                    u[self._active] += self.sigma_u[self._active] * w
                return LPResult(
                    bound=float(self._problem.value) + const,
                    u=u,
                    x=np.asarray(self._x.value, dtype=np.float64).copy(),
                    status=status,
                    solver=name,
                )
            failures.append(f"{name}: status={status}")
        raise SolverError(
            "the LP relaxation could not be solved to optimality (" + "; ".join(failures) + ")"
        )

    def maximize(self, c: ArrayLike) -> LPResult:
        r"""Upper-bound :math:`\max_{u} c^\top x(u)` over the input set (state objective)."""
        n = self._A.shape[0]
        c = _check_vector(c, n, "c")
        return self._solve(c, np.zeros(self._cw.shape[0]), 0.0)

    def maximize_output(self, c_out: ArrayLike) -> LPResult:
        r"""Upper-bound :math:`\max_u c^\top \hat y(u) = c^\top (Cx + Du + c_0)` over the set."""
        q = self._C.shape[0]
        c_out = _check_vector(c_out, q, "c_out")
        cx = self._C.T @ c_out
        dcol = self._D.T @ c_out
        cw = np.zeros(self._cw.shape[0])
        if self._active.size:
            cw = dcol[self._active] * self.sigma_u[self._active]
        const = float(dcol @ self._u0 + c_out @ self._c)
        return self._solve(cx, cw, const)

    def box_output_bound(self, c_out: ArrayLike) -> float:
        r"""The closed-form bound the LP improves on: :math:`c^\top\hat y^0 + |c^\top C|\sigma_x
        + |c^\top D|\sigma_u` (theory §7), with the same widened :math:`\sigma_x` as the LP."""
        q = self._C.shape[0]
        c_out = _check_vector(c_out, q, "c_out")
        sx = 0.5 * (self._xhi.value - self._xlo.value)
        y0 = self._C @ self._x0 + self._D @ self._u0 + self._c
        return float(c_out @ y0 + np.abs(c_out @ self._C) @ sx
                     + np.abs(c_out @ self._D) @ self._card_sigma(np.abs(c_out @ self._D)))

    def _card_sigma(self, weights):
        """The worst |u - u0| for a nonnegative weight vector over the set."""
        if self.k is None:
            return self.sigma_u
        contrib = weights * self.sigma_u
        out = np.zeros_like(self.sigma_u)
        top = np.argsort(-contrib, kind="stable")[: self.k]
        out[top] = self.sigma_u[top]
        return out

    def __reduce__(self):
        return (_rebuild, (self.model, self._u0, self.sigma_u, self.k, self.relaxation,
                           self.solver, self.verbose))

    def __repr__(self):
        return (f"LPRelaxation(n={self._A.shape[0]}, p={self._B.shape[1]}, k={self.k}, "
                f"relaxation={self.relaxation!r})")


def _rebuild(model, u0, sigma_u, k, relaxation, solver, verbose=False):
    return LPRelaxation(model, u0, sigma_u, k=k, relaxation=relaxation, solver=solver,
                        verbose=verbose)


def lp_state_bound(model: ModelLike, u0: ArrayLike, sigma_u: ArrayLike, c: ArrayLike,
                   k: int | None = None, relaxation: str = "paper",
                   solver: str | None = None, verbose: bool = False) -> LPResult:
    r"""LP upper bound on :math:`\max_{u \in \mathcal U} c^\top x(u)` [IDL Thm 4.3].

    .. math:: \max_{x,u}\ c^\top x \ \text{s.t.}\ x \ge Ax + Bu + b,\ x \ge 0,\
              |x - x^0| \le \sigma_x,\ u \in \mathcal U.

    Parameters
    ----------
    model : ImplicitModel or fitted estimator (ReLU)
    u0 : array of shape (p,)
    sigma_u : float or array of shape (p,)
    c : array of shape (n,)
    k : int, optional
        Cardinality budget (l1 hull of :math:`\mathcal U^{card}`).
    relaxation : {"paper", "triangle"}
    solver : str, optional
    verbose : bool, default=False
        Print the solver's log; by default nothing reaches stdout.

    Returns
    -------
    LPResult

    Raises
    ------
    BoundConditionError
        Not ReLU, or :math:`\lambda_{PF}(|A|) \ge 1`.
    SolverError
        No solver reached an optimal solution.
    """
    return LPRelaxation(model, u0, sigma_u, k=k, relaxation=relaxation, solver=solver,
                        verbose=verbose).maximize(c)


def lp_output_bound(model: ModelLike, u0: ArrayLike, sigma_u: ArrayLike, c_out: ArrayLike,
                    k: int | None = None, relaxation: str = "paper",
                    solver: str | None = None, verbose: bool = False) -> LPResult:
    r"""LP upper bound on :math:`\max_{u \in \mathcal U} c^\top \hat y(u)`, with
    :math:`\hat y = Cx + Du + c_0` (theory §7, [IDL Thm 4.3] with a term in u).

    Parameters and errors as :func:`lp_state_bound`, with ``c_out`` of shape (q,).
    """
    return LPRelaxation(model, u0, sigma_u, k=k, relaxation=relaxation, solver=solver,
                        verbose=verbose).maximize_output(c_out)


def lp_attack(model: ModelLike, u0: ArrayLike, sigma_u: ArrayLike, c_out: ArrayLike,
              k: int | None = None, relaxation: str = "paper",
              solver: str | None = None, verbose: bool = False) -> LPAttackResult:
    r"""Attack from the LP relaxation [IDL §7.3.2]: the LP maximiser of
    :math:`c^\top \hat y(u)`, mapped into the input set and evaluated on the real model.

    The LP's :math:`u` lies in the box but, with ``k``, only in the l1 hull of the cardinality
    set. Candidates in the set are built from its scaled step :math:`w = (u - u^0)/\sigma_u`:
    :math:`w` itself (box) or its k largest entries (cardinality), and the same support pushed
    to the vertex :math:`\mathrm{sign}(w)`. The candidate with the largest true objective is
    returned.

    Parameters and errors as :func:`lp_state_bound`, with ``c_out`` of shape (q,).

    Returns
    -------
    LPAttackResult
        ``value`` (true :math:`c^\top\hat y(u)`) never exceeds ``bound`` (the LP value).
    """
    lp = LPRelaxation(model, u0, sigma_u, k=k, relaxation=relaxation, solver=solver,
                      verbose=verbose)
    res = lp.maximize_output(c_out)
    c_out = np.asarray(c_out, dtype=np.float64)
    u0 = lp.u0
    sig = lp.sigma_u
    w = np.zeros_like(u0)
    act = sig > 0
    w[act] = np.clip((res.u[act] - u0[act]) / sig[act], -1.0, 1.0)
    cands = []
    if lp.k is None:
        cands.append(w)
        cands.append(np.sign(w) * (np.abs(w) > 1e-9))
    else:
        keep = np.argsort(-np.abs(w), kind="stable")[: lp.k]
        ws = np.zeros_like(w)
        ws[keep] = w[keep]
        cands.append(ws)
        cands.append(np.sign(ws) * (np.abs(ws) > 1e-9))
    U = u0[None, :] + np.stack(cands) * sig[None, :]
    m = lp.model
    vals = m.predict(np.vstack([U, u0[None, :]])) @ c_out
    best = int(np.argmax(vals[:-1]))
    return LPAttackResult(u=U[best], value=float(vals[best]), bound=res.bound,
                          nominal=float(vals[-1]), u_lp=res.u, lp=res)
