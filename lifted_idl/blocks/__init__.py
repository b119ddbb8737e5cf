r"""The four convex blocks of block-coordinate descent on the Fenchel relaxation (theory §8).

Each block minimises the relaxed, lifted objective (arXiv (11), row layout, data terms averaged
over the m samples) exactly over its own variables, all others fixed:

* :func:`solve_cd` — (C, D, c): a (regularised) linear or softmax fit of Y on [P U];
* :func:`solve_ab` — (A, B, b): the state equation in divergence, s.t. :math:`\|A\|_\infty \le
  \kappa`; its ``method="mm"`` takes majorize–minimize steps batched over the rows
  (:mod:`.ab_mm`), each decreasing the objective at a cost linear in m × n × (n + p);
  :func:`solve_ab_robust` — its robust counterpart for box input uncertainty (arXiv §5.3);
* :func:`solve_x` — X: states between the state equation and the proxies;
* :func:`solve_p` — P: proxies between the output fit, the state equation and X, in
  :math:`\mathrm{dom} f^*`;
* :func:`solve_bd` — the joint (B, D) block of the group penalty [IDL (5.1)], the step that
  zeroes whole columns of [B; D];
* :func:`fw_cd`, :func:`fw_ab` — the (C, D, c) and (A, B, b) blocks with l1-ball budgets
  instead of penalties, by Frank–Wolfe (sparse iterates, a gap certificate: :class:`FWResult`).

Every solver takes ``method="fast"`` (vectorised NumPy/SciPy, the default) or ``"cvxpy"`` (one
reference problem over all of the block's variables, solved by the cvxpy solver of its problem
class: OSQP for quadratic programs, ECOS for second-order cone programs, Clarabel for
exponential cones, HiGHS for linear programs; ``cvxpy_solver`` names one of
:data:`CVXPY_SOLVERS` instead), ``tol`` and ``max_iter``, and returns a
:class:`BlockResult`. The (C, D, c), (A, B, b), X and P solvers take ``init``; with it the
returned objective is never above the objective at ``init``.
:func:`relaxed_objective` evaluates the whole objective term by term; :func:`cd_objective`,
:func:`ab_objective`, :func:`x_objective`, :func:`p_objective` the part each block changes.
"""

from ._common import CVXPY_SOLVERS, BlockResult
from .ab import solve_ab
from .ab_robust import ab_robust_objective, solve_ab_robust
from .bd import solve_bd
from .cd import solve_cd
from .fw import FWResult, fw_ab, fw_cd
from .objective import ab_objective, cd_objective, p_objective, relaxed_objective, x_objective
from .p import solve_p
from .x import solve_x

__all__ = [
    "BlockResult",
    "FWResult",
    "CVXPY_SOLVERS",
    "solve_cd",
    "solve_ab",
    "solve_ab_robust",
    "ab_robust_objective",
    "solve_x",
    "solve_p",
    "solve_bd",
    "fw_cd",
    "fw_ab",
    "relaxed_objective",
    "cd_objective",
    "ab_objective",
    "x_objective",
    "p_objective",
]
