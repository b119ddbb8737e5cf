"""Shared pieces of the BCD blocks: the result type, input checks, and the cvxpy plumbing.

The cvxpy reference formulations are built on every call with the data as constants; nothing
cvxpy-related outlives the call. A DPP form (data as ``cvxpy.Parameter``, built once and
re-solved) was tried first and dropped: products such as ``Parameter @ Variable`` over the
m × n pre-activations take far more memory and time to canonicalise than the constant-data
build (the X block ran out of memory at m = 500, n = 20).

Each formulation is solved by a solver the package declares (``setup.cfg``), picked by the
problem's class (:func:`problem_class`): HiGHS for linear programs; OSQP for quadratic programs
(the ReLU and leaky-ReLU divergences are piecewise quadratic, so with the squared loss and a
zero, ridge, l1 or l-inf group penalty every block is one); ECOS for second-order cone programs
(the l2 group norm, the robust (A, B) block's Huber terms); Clarabel for exponential cones
(tanh, sigmoid, the softmax cross-entropy), where ECOS is also correct but Clarabel, its
successor, has the more robust non-symmetric cone method and was the reference solver before
the others. :data:`CVXPY_SOLVERS` lists which solver takes which class. A picked solver that
fails or reports an inaccurate solution is followed by Clarabel. ``cvxpy_solver`` names one
solver instead (no fallback).
"""

from __future__ import annotations

import numbers
import os
import sys
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import numpy as np

from .._validation import (
    check_choice,
    check_finite_matrix,
    check_max_iter,
    check_real,
    check_tol,
)
from .._validation import check_n_jobs as _check_n_jobs
from ..activations import Activation, LeakyReLU, ReLU, Sigmoid, Tanh, get_activation
from ..exceptions import SolverError, _warn_convergence
from ..penalties import (
    BlockView,
    GroupPenalty,
    GroupView,
    L1View,
    L2View,
    ZeroView,
    get_penalty,
)

__all__ = ["BlockResult", "CVXPY_SOLVERS"]


@dataclass
class BlockResult:
    """What one block solve returns.

    Attributes
    ----------
    value : tuple or ndarray
        The block's new variables: ``(C, D, c)``, ``(A, B, b)``, ``X`` or ``P``.
    objective : float
        The block's objective (the terms of the relaxed objective that involve the block's
        variables) evaluated at ``value``.
    n_iter : int
        Iterations of the solver (0 for a closed form).
    converged : bool
        Whether the solver met its tolerance. The caller warns when it did not.
    solver : str
        ``"closed_form"``, ``"scalar"`` (the P block through its scalar residual: a finite
        exact method, ``n_iter`` 0), ``"cd"`` (coordinate descent), ``"newton_cg"``, ``"lbfgsb"``,
        ``"newton"``, ``"agd"`` (accelerated gradient), ``"prox_grad"``, ``"frank_wolfe"``,
        ``"cvxpy:NAME"`` with ``NAME`` the cvxpy solver that solved it (``"cvxpy:OSQP"``,
        ``"cvxpy:CLARABEL"``, ...), or ``"init"`` when the starting point was kept because the
        solve did not improve on it.
    """

    value: tuple | np.ndarray
    objective: float
    n_iter: int
    converged: bool
    solver: str


# --------------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------------
def as_matrix(name: str, M, shape=None, ndim: int = 2) -> np.ndarray:
    """``M`` as a finite float64 array of the given shape, or a ValueError naming ``name``
    (:func:`lifted_idl._validation.check_finite_matrix`)."""
    return check_finite_matrix(name, M, shape, ndim)


def as_vector(name: str, v, size: int, default_zero: bool = True) -> np.ndarray:
    """A bias vector of length ``size`` (``None`` means zeros when ``default_zero``)."""
    if v is None:
        if default_zero:
            return np.zeros(size)
        raise ValueError(f"{name} is required; got None")
    return as_matrix(name, np.reshape(np.asarray(v, dtype=np.float64), (-1,)), (size,), ndim=1)


def as_state_weights(A, B, b, p: int):
    """The state-equation weights ``(A, B, b)`` of a model on ``p`` features, checked: A square
    (its size n sets the others), B (n, p), b of length n (``None``: zeros)."""
    A = as_matrix("A", A)
    n = A.shape[0]
    return as_matrix("A", A, (n, n)), as_matrix("B", B, (n, p)), as_vector("b", b, n)


def as_output_weights(C, D, c, q: int, n: int, p: int):
    """The output weights ``(C, D, c)`` for q outputs, n states and p features, checked: C
    (q, n), D (q, p), c of length q (``None``: zeros)."""
    return as_matrix("C", C, (q, n)), as_matrix("D", D, (q, p)), as_vector("c", c, q)


def as_model_data(A, B, b, C, D, c, X, U, Y):
    """The data and all the weights of a block that sees the whole model (the P and the
    (B, D) blocks), checked against each other: ``(A, B, b), (C, D, c), X, U, Y``."""
    U = as_matrix("U", U)
    m, p = U.shape
    if m < 1:
        raise ValueError(f"U must have at least one sample; got shape {U.shape}")
    A, B, b = as_state_weights(A, B, b, p)
    n = A.shape[0]
    Y = as_matrix("Y", Y, (m, None))
    CD = as_output_weights(C, D, c, Y.shape[1], n, p)
    return (A, B, b), CD, as_matrix("X", X, (m, n)), U, Y


def as_lam(lam, n: int) -> np.ndarray:
    """Per-state weights ``lam`` (a positive scalar or a positive vector of length ``n``)."""
    if isinstance(lam, numbers.Real) or np.ndim(lam) == 0:
        lam = np.full(n, float(lam))
    lam = as_matrix("lam", lam, (n,), ndim=1)
    if np.any(lam <= 0):
        raise ValueError(f"lam must be > 0 entrywise; got min(lam)={lam.min()!r}")
    return lam


def as_positive(name: str, v, upper: float | None = None, strict_upper: bool = True) -> float:
    """A finite positive float (optionally below ``upper``), or a ValueError naming ``name``."""
    return check_real(name, v, 0, upper, closed="neither" if strict_upper else "right")


def check_options(method: str, tol, max_iter) -> None:
    check_choice("method", method, ("fast", "cvxpy"))
    check_tol(tol)
    check_max_iter(max_iter)


def check_cvxpy_solver(method: str, cvxpy_solver) -> str | None:
    """``cvxpy_solver`` as a name of :data:`CVXPY_SOLVERS` (upper case), or None (pick by the
    problem's class); a ValueError for any other value, or for a name with a ``method`` other
    than ``"cvxpy"``."""
    if cvxpy_solver is None:
        return None
    name = cvxpy_solver.upper() if isinstance(cvxpy_solver, str) else None
    if name not in CVXPY_SOLVERS:
        raise ValueError(f"cvxpy_solver must be None or one of {sorted(CVXPY_SOLVERS)}; got "
                         f"cvxpy_solver={cvxpy_solver!r}")
    if method != "cvxpy":
        raise ValueError(f"cvxpy_solver is used by method='cvxpy' only; got method={method!r} "
                         f"with cvxpy_solver={cvxpy_solver!r}")
    return name


_KNOWN_ACTIVATIONS = (ReLU, Tanh, Sigmoid, LeakyReLU)


def get_fenchel_activation(activation, block: str) -> Activation:
    """An activation whose Fenchel divergence the blocks handle (componentwise, with f, f*)."""
    act = get_activation(activation)
    if not act.componentwise or not act.has_fenchel or type(act).__name__ == "Blockwise":
        raise ValueError(
            f"the {block} block needs a componentwise activation with a Fenchel divergence; "
            f"got activation={act!r}"
        )
    if not isinstance(act, _KNOWN_ACTIVATIONS):
        raise ValueError(
            f"the {block} block supports the ReLU, tanh, sigmoid and leaky-ReLU divergences; "
            f"got activation={act!r}"
        )
    return act


def get_block_penalty(penalty, name: str, block: str, allow_group: bool = False) -> BlockView:
    """The view block ``block`` (``"ab"``: on ``[A B]``, ``"cd"``: on ``[C D]``) solves with.

    ``penalty`` is a view already, or a :class:`~lifted_idl.penalties.Penalty` or a penalty
    name, restricted to the block (:meth:`~lifted_idl.penalties.Penalty.restrict`). The views
    allowed: :class:`~lifted_idl.penalties.ZeroView`, :class:`~lifted_idl.penalties.L2View`,
    :class:`~lifted_idl.penalties.L1View`, and with ``allow_group`` also a
    :class:`~lifted_idl.penalties.GroupView` (one block's view of [IDL (5.1)]).
    """
    if isinstance(penalty, BlockView):
        view = penalty
    else:
        pen = get_penalty(penalty)
        if isinstance(pen, GroupPenalty):
            raise ValueError(
                f"{name} must be a penalty on this block's matrix; the group penalty [IDL (5.1)] "
                f"couples B and D: pass {name}=group.restrict('ab', {{'D': D}}) to the (A, B) "
                f"block or group.restrict('cd', {{'B': B}}) to the (C, D) block; got "
                f"{name}={penalty!r}"
            )
        view = pen.restrict(block)
    allowed = (ZeroView, L2View, L1View) + ((GroupView,) if allow_group else ())
    if not isinstance(view, allowed):
        extra = " or GroupPenalty's view" if allow_group else ""
        raise ValueError(
            f"{name} must be a NoPenalty, L2Penalty{',' if allow_group else ' or'} "
            f"L1Penalty{extra} (or the view of one); got {name}={view!r}"
        )
    return view


def check_group_columns(pen: BlockView, p: int, name: str) -> None:
    """A GroupView must have one group per input feature (p)."""
    if isinstance(pen, GroupView) and pen.n_groups != p:
        other = "D" if pen.block == "ab" else "B"
        raise ValueError(
            f"{name} is a group penalty with {pen.n_groups} groups (its fixed {other} has "
            f"{pen.n_groups} columns) but U has p={p} features"
        )


def domain_interval(act: Activation) -> tuple[float, float, bool]:
    """``(low, high, closed_low)``: the domain of :math:`f^*` (where the divergence is finite).

    ReLU: :math:`[0, \\infty)`; tanh: :math:`(-1, 1)`; sigmoid: :math:`(0, 1)`; leaky ReLU:
    the whole line.
    """
    if isinstance(act, ReLU):
        return 0.0, np.inf, True
    if isinstance(act, Tanh):
        return -1.0, 1.0, False
    if isinstance(act, Sigmoid):
        return 0.0, 1.0, False
    return -np.inf, np.inf, False


def check_domain(name: str, P: np.ndarray, act: Activation) -> None:
    r"""``P`` must lie in :math:`\mathrm{dom} f^*` (the interior for tanh/sigmoid)."""
    low, high, closed = domain_interval(act)
    bad_low = (P < low) if closed else (P <= low)
    bad = bad_low | (P >= high)
    if np.any(bad):
        k = int(np.flatnonzero(bad.ravel())[0])
        lo = "[" if closed else "("
        raise ValueError(
            f"{name} must lie in the domain {lo}{low}, {high}) of f* for {act!r}; got "
            f"{name}.flat[{k}]={P.ravel()[k]!r}"
        )


def check_ab_data(X, U, P, lam, kappa, act: Activation, pen: BlockView):
    """The data of an (A, B, b) block, checked: ``(X, U, P, lam, kappa)`` as float64 arrays of
    shapes (m, n), (m, p), (m, n), (n,) and a float, ``P`` in the domain of :math:`f^*`, and a
    group penalty with one group per input (shared by :mod:`.ab` and :mod:`.ab_robust`)."""
    U = as_matrix("U", U)
    m, p = U.shape
    if m < 1:
        raise ValueError(f"U must have at least one sample; got shape {U.shape}")
    check_group_columns(pen, p, "penalty")
    X = as_matrix("X", X, (m, None))
    n = X.shape[1]
    P = as_matrix("P", P, (m, n))
    check_domain("P", P, act)
    lam = as_lam(lam, n)
    kappa = as_positive("kappa", kappa)
    return X, U, P, lam, kappa


def check_ab_init(init, n: int, p: int):
    """A warm start ``(A, B, b)`` of shapes (n, n), (n, p), (n,) (``b=None``: zeros), or None."""
    if init is None:
        return None
    try:
        A0, B0, b0 = init
    except (TypeError, ValueError):
        raise ValueError(
            f"init must be a tuple (A, B, b); got {type(init).__name__}") from None
    return (as_matrix("init A", A0, (n, n)), as_matrix("init B", B0, (n, p)),
            as_vector("init b", b0, n))


#: The cvxpy solvers the package declares (``setup.cfg``), each with the problem classes of
#: :func:`problem_class` that it takes (cvxpy rewrites a quadratic program for the cone
#: solvers; OSQP and HiGHS take no cone beyond the linear one).
CVXPY_SOLVERS = {
    "CLARABEL": ("lp", "qp", "socp", "exp"),
    "ECOS": ("lp", "qp", "socp", "exp"),
    "OSQP": ("lp", "qp"),
    "HIGHS": ("lp", "qp"),
}

#: The solver each problem class gets when ``cvxpy_solver`` is None.
DEFAULT_CVXPY_SOLVER = {"lp": "HIGHS", "qp": "OSQP", "socp": "ECOS", "exp": "CLARABEL"}

_CLASS_NAMES = {"lp": "linear program", "qp": "quadratic program",
                "socp": "second-order cone program", "exp": "exponential cone program"}

#: cvxpy atoms whose canonical form has exponential cones
_EXP_CONE_ATOMS = frozenset({"exp", "log", "log1p", "entr", "rel_entr", "kl_div", "log_sum_exp",
                             "logistic", "xexp"})


def problem_class(problem) -> str:
    """The class of a DCP ``cvxpy.Problem``: ``"lp"`` or ``"qp"`` as cvxpy's ``is_lp`` /
    ``is_qp`` see it (a piecewise-linear or quadratic objective over piecewise-linear
    constraints), else ``"exp"`` when an atom of it needs exponential cones, else ``"socp"``."""
    is_lp = getattr(problem, "is_lp", None)  # cvxpy >= 1.6
    if is_lp is not None and is_lp():
        return "lp"
    if problem.is_qp():
        return "qp"
    if any(atom.__name__ in _EXP_CONE_ATOMS for atom in problem.atoms()):
        return "exp"
    return "socp"


def _eps(tol: float) -> float:
    return float(min(max(tol, 1e-10), 1e-6))


def _ipm_iters(max_iter: int) -> int:
    return int(max(min(max_iter, 500), 50))


def _solve_clarabel(problem, tol, max_iter):
    import cvxpy as cp

    eps = _eps(tol)
    opts = {"tol_gap_abs": eps, "tol_gap_rel": eps, "tol_feas": eps,
            "max_iter": _ipm_iters(max_iter)}
    n_iter = 0
    # Clarabel sometimes stalls just short of its tolerances on exponential cones (tanh,
    # cross-entropy) and reports "almost solved"; shorter interior-point steps fix that.
    for extra in ({}, {"max_step_fraction": 0.9}):
        problem.solve(solver=cp.CLARABEL, **opts, **extra)
        n_iter += int(getattr(problem.solver_stats, "num_iters", 0) or 0)
        if problem.status != cp.OPTIMAL_INACCURATE:
            break
    return n_iter


def _solve_ecos(problem, tol, max_iter):
    # below its default tolerances (1e-8) ECOS's interior-point steps stall and it reports an
    # inaccurate solution at the accuracy it had reached
    eps = max(_eps(tol), 1e-7)
    problem.solve(solver="ECOS", abstol=eps, reltol=eps, feastol=eps,
                  max_iters=_ipm_iters(max_iter))
    return int(getattr(problem.solver_stats, "num_iters", 0) or 0)


def _osqp_1() -> bool:
    """Whether the installed OSQP is 1.x (its setting ``polish`` became ``polishing``)."""
    try:
        from importlib.metadata import version

        return int(version("osqp").split(".")[0]) >= 1
    except Exception:  # not installed, or an unparsable version: the older name
        return False


_OSQP_1 = _osqp_1()


def _solve_osqp(problem, tol, max_iter):
    # ADMM's residual tolerances leave a point less accurate than an interior point's at the
    # same value, and the polishing step (an active-set refinement) that makes it exact does
    # not always succeed. At most 1e-8: a BCD round (tests/training/test_bcd.py) then ends
    # within 2e-6 of the fast blocks' round (Clarabel: 2e-5; OSQP at 1e-6: 2e-4);
    # benchmarks/README.md has the cost
    eps = min(_eps(tol), 1e-8)
    polish = {"polishing" if _OSQP_1 else "polish": True}
    problem.solve(solver="OSQP", eps_abs=eps, eps_rel=eps, **polish,
                  max_iter=max(100 * int(max_iter), 20000))
    return int(getattr(problem.solver_stats, "num_iters", 0) or 0)


@contextmanager
def _quiet_stdout():
    """Send file descriptor 1 to the null device (HiGHS prints a banner from C++ on its first
    call, whatever its options say)."""
    try:
        sys.stdout.flush()
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # no real stdout (e.g. captured in Python)
        fd = 1
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def _solve_highs(problem, tol, max_iter):
    eps = _eps(tol)
    # cvxpy's bound propagation for HiGHS multiplies infinite bounds by zero (NaN, ignored)
    with _quiet_stdout(), np.errstate(invalid="ignore"):
        problem.solve(solver="HIGHS", primal_feasibility_tolerance=eps,
                      dual_feasibility_tolerance=eps, ipm_optimality_tolerance=eps,
                      output_flag=False)
    return int(getattr(problem.solver_stats, "num_iters", 0) or 0)


_SOLVE = {"CLARABEL": _solve_clarabel, "ECOS": _solve_ecos, "OSQP": _solve_osqp,
          "HIGHS": _solve_highs}


def solve_cvxpy(problem, block: str, tol: float, max_iter: int,
                solver: str | None = None) -> tuple[bool, int, str]:
    """Solve a block's cvxpy formulation with ``solver`` or, when None, with the solver of its
    class (:data:`DEFAULT_CVXPY_SOLVER`), followed by Clarabel if that one fails or is
    inaccurate.

    ``tol`` sets the solver's tolerances (clipped to [1e-10, 1e-6]; OSQP's at most 1e-8,
    ECOS's at least 1e-7) and
    ``max_iter`` its iterations (interior-point solvers: clipped to [50, 500]; OSQP: at least
    20000 ADMM steps). Raises a ValueError when ``solver`` does not take the problem's class,
    SolverError when no solver solved it, and warns (ConvergenceWarning) on an inaccurate
    solution.

    Returns
    -------
    converged : bool
    n_iter : int
        Iterations of every solver tried, summed.
    name : str
        The solver that returned the solution.
    """
    import cvxpy as cp

    kind = problem_class(problem)
    if solver is None:
        order = list(dict.fromkeys((DEFAULT_CVXPY_SOLVER[kind], "CLARABEL")))
    elif kind not in CVXPY_SOLVERS[solver]:
        takes = sorted(k for k, v in CVXPY_SOLVERS.items() if kind in v)
        raise ValueError(
            f"cvxpy_solver={solver!r} cannot solve the {block} block here: it is a "
            f"{_CLASS_NAMES[kind]}; pass one of {takes}, or None to pick by class")
    else:
        order = [solver]
    n_iter, failures = 0, []
    for name in order:
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Solution may be inaccurate")
                n_iter += _SOLVE[name](problem, tol, max_iter)
        except cp.error.SolverError as exc:
            failures.append(f"{name} failed: {exc}")
            continue
        status = problem.status
        if status == cp.OPTIMAL:
            return True, n_iter, name
        failures.append(f"{name} returned status {status!r}")
        if status == cp.OPTIMAL_INACCURATE and name == order[-1]:
            _warn_convergence(f"{block} block: cvxpy/{name} returned status {status!r}",
                              stacklevel=3)
            return False, n_iter, name
    raise SolverError(f"{block} block: cvxpy: " + "; ".join(failures))


def ab_cvxpy_variables(X, U, fit_bias: bool):
    """The variables of an (A, B, b) block's cvxpy formulation and its pre-activations.

    Returns ``(W, b, Z)``: ``W = [A B]`` of shape (n, n + p), ``b`` of shape (n,) (``None``
    without a bias) and the affine expression ``Z = [X U] W^T + 1 b^T`` of shape (m, n).
    """
    import cvxpy as cp

    m, n = X.shape
    p = U.shape[1]
    M = np.hstack([X, U])
    W = cp.Variable((n, n + p), name="W")
    Z = M @ W.T
    b = None
    if fit_bias:
        b = cp.Variable(n, name="b")
        Z = Z + np.ones((m, 1)) @ cp.reshape(b, (1, n), order="C")
    return W, b, Z


def ab_cvxpy_solve(objective, W, b, kappa: float, block: str, tol: float, max_iter: int,
                   solver: str | None = None):
    r"""Minimise ``objective`` over the variables of :func:`ab_cvxpy_variables` subject to
    :math:`\|A\|_\infty \le \kappa` (one problem over all rows), with :func:`solve_cvxpy`.

    Returns ``(A, B, b, n_iter, converged, name)``, the arrays as float64 and ``name`` the
    solver used; an A that the solver's rounding left just outside the ball is projected back
    onto it.
    """
    import cvxpy as cp

    from ..wellposedness import project_inf_norm_ball
    from .objective import _ab_feasible

    n = W.shape[0]
    prob = cp.Problem(cp.Minimize(objective), [cp.sum(cp.abs(W[:, :n]), axis=1) <= kappa])
    conv, n_iter, name = solve_cvxpy(prob, block, tol, max_iter, solver)
    Wv = np.array(W.value, dtype=np.float64)
    A = Wv[:, :n]
    if not _ab_feasible(A, kappa):  # the solver's rounding: back onto the ball
        A = project_inf_norm_ball(A, kappa)
    B = np.ascontiguousarray(Wv[:, n:])
    bv = np.zeros(n) if b is None else np.array(b.value, dtype=np.float64).reshape(n)
    return np.ascontiguousarray(A), B, bv, n_iter, conv, name


def keep_better(result: BlockResult, init_value, init_objective: float | None) -> BlockResult:
    """Return ``result``, or the initial point when the solve ended above its objective."""
    if init_objective is None or not np.isfinite(init_objective):
        return result
    if not result.objective <= init_objective:
        return BlockResult(init_value, float(init_objective), result.n_iter, result.converged,
                           "init")
    return result


def ab_warm_start(init, fit_bias: bool, objective):
    """An (A, B, b) block's warm start (with b = 0 when no bias is fitted) and its objective
    ``objective(A, B, b)``; ``(None, None)`` without one."""
    if init is None:
        return None, None
    if not fit_bias:
        init = (init[0], init[1], np.zeros(init[0].shape[0]))
    return init, objective(*init)


def ab_result(objective, A, B, b, n_iter, converged, solver, init, init_objective):
    """The :class:`BlockResult` of an (A, B, b) solve, its objective evaluated by
    ``objective(A, B, b)``, or the warm start when the solve ended above it
    (:func:`keep_better`)."""
    res = BlockResult((A, B, b), float(objective(A, B, b)), int(n_iter), bool(converged),
                      solver)
    return keep_better(res, init, init_objective)


# --------------------------------------------------------------------------------------------
# row-separable blocks: rows solved in parallel
# --------------------------------------------------------------------------------------------
#: joblib backend of :func:`solve_row_chunks`. Threads: the row solvers spend their time in
#: NumPy/BLAS/LAPACK calls that release the GIL (batched Gram products and KKT solves over the
#: rows of a chunk), the chunks share the design matrix without copies, and there is no worker
#: start-up or pickling. ``benchmarks/bench_blocks.py --parallel`` (m = 2000, n = 100, p = 64,
#: 2 cores) measured n_jobs = 2 at 1.7-1.9x the sequential speed with threads and, once its
#: workers had started, the same within the noise with loky processes (1.1-2.0x over two runs
#: on a shared machine), whose first call cost up to a few seconds more to start them.
ROW_BACKEND = "threading"


def check_n_jobs(n_jobs) -> int:
    """The number of workers that ``n_jobs`` asks for (joblib convention).

    ``None`` or ``1``: one (sequential); ``-1``: all cores (:func:`joblib.cpu_count`); any
    other int ``>= 1``: that many. Anything else raises a ValueError naming ``n_jobs``.
    """
    n_jobs = _check_n_jobs(n_jobs)
    if n_jobs == -1:
        import joblib

        return max(1, int(joblib.cpu_count()))
    return n_jobs


def row_chunks(n_rows: int, n_workers: int) -> list[slice]:
    """``min(n_workers, n_rows)`` contiguous slices covering ``range(n_rows)``, sizes within one
    of each other (one slice, possibly empty, when ``n_workers <= 1`` or ``n_rows <= 1``)."""
    k = max(1, min(int(n_workers), int(n_rows)))
    bounds = [(n_rows * j) // k for j in range(k + 1)]
    return [slice(bounds[j], bounds[j + 1]) for j in range(k)]


def solve_row_chunks(task, n_rows: int, n_workers: int, backend: str | None = None):
    """Solve a row-separable block chunk by chunk, the chunks in parallel.

    Parameters
    ----------
    task : callable
        ``task(rows)``, for a slice ``rows`` of the block's rows, returns ``(fn, args)``:
        ``fn(*args)`` solves exactly those rows and returns ``(W_rows, n_iter, converged)``
        with ``W_rows`` of shape ``(len(rows), ...)``. ``fn`` must be a module-level function
        (process backends pickle it) and ``args`` the chunk's own data.
    n_rows : int
        Rows of the block.
    n_workers : int
        From :func:`check_n_jobs`; with one worker (or one row) ``fn`` runs once on all rows,
        in this thread.
    backend : str, optional
        joblib backend (default :data:`ROW_BACKEND`). With ``"threading"`` BLAS is limited to
        one thread per worker for the duration (:func:`threadpoolctl.threadpool_limits`), so
        that ``n_workers`` threads use ``n_workers`` cores; process backends do this
        themselves.

    Returns
    -------
    W : ndarray
        The chunks' ``W_rows`` stacked in row order.
    n_iter : int
        The largest iteration count of the chunks (the rows are solved independently, so this
        is the count of the slowest row, as in a solve over all rows at once).
    converged : bool
        Whether every chunk converged.
    """
    chunks = row_chunks(n_rows, n_workers)
    if len(chunks) == 1:
        fn, args = task(chunks[0])
        return fn(*args)
    from joblib import Parallel, delayed

    backend = ROW_BACKEND if backend is None else backend
    calls = [task(rows) for rows in chunks]
    if backend == "threading":
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(1)
    else:
        limits = nullcontext()
    with limits:
        outs = Parallel(n_jobs=len(chunks), backend=backend)(
            delayed(fn)(*args) for fn, args in calls)
    W = np.concatenate([o[0] for o in outs], axis=0)
    return W, max(int(o[1]) for o in outs), all(bool(o[2]) for o in outs)
