"""The package's exceptions and warnings, in one module.

Every error names the offending argument and the value seen.
"""

from sklearn.exceptions import ConvergenceWarning

__all__ = [
    "ConvergenceWarning",
    "IllPosedModelError",
    "SolverError",
    "BoundConditionError",
    "ModelFileError",
]


class IllPosedModelError(ValueError):
    """No sufficient well-posedness condition holds for the model's A.

    Raised by the fixed-point kernel and by :class:`~lifted_idl.ImplicitModel` when neither
    ``lambda_PF(|A|) < 1`` [IDL Thm 2.2], nor ``mu_inf(A) < 1`` [NEMON], nor a DAG structure
    (strictly triangular up to permutation) certifies a unique equilibrium (theory §2). Pass
    ``force=True`` (to :meth:`ImplicitModel.solve` or :func:`lifted_idl.kernel.solve`) to try
    the iteration anyway; non-convergence is then reported by a ConvergenceWarning.
    """


class SolverError(RuntimeError):
    """A convex subproblem (cvxpy or a fast solver) failed or was infeasible.

    The fitted model is left as it was before the failed step.
    """


class BoundConditionError(ValueError):
    """A robustness bound was asked for where its theorem's condition does not hold."""


class ModelFileError(ValueError):
    """A file is not a model file that :func:`lifted_idl.load` can read (a pickle, another
    format version, a modified file, ...), or an object cannot be written to one.

    The message is one line and names the file. Loading never unpickles.
    """
