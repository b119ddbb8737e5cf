"""The package's exceptions and warnings, in one module.

Every error names the offending argument and the value seen.
"""

import contextlib
import contextvars
import warnings

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


#: the convergence notes of the fit running in this thread (or task), or None outside a fit
_NOTES: contextvars.ContextVar[list | None] = contextvars.ContextVar("lifted_idl_convergence",
                                                                    default=None)


def _warn_convergence(message: str, stacklevel: int = 1) -> None:
    """Issue a :class:`ConvergenceWarning` through the warnings filters (``stacklevel`` as in
    :func:`warnings.warn`, counted from the caller) and note it for the fit that runs in this
    context (:func:`_record_convergence`), whatever the filters say.

    The estimators' ``converged_`` is built from these notes, not from caught warnings: the
    warnings machinery is process-wide and not thread-safe, so fits running side by side in
    threads would see each other's warnings (and a user's filter would hide them)."""
    notes = _NOTES.get()
    if notes is not None:
        notes.append(str(message))
    warnings.warn(message, ConvergenceWarning, stacklevel=stacklevel + 1)


@contextlib.contextmanager
def _record_convergence():
    """Collect the :func:`_warn_convergence` notes issued in this context (this thread or
    task; nested recorders each see only their own) into the yielded list."""
    notes: list = []
    token = _NOTES.set(notes)
    try:
        yield notes
    finally:
        _NOTES.reset(token)
