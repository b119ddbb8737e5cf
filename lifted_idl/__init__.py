"""lifted_idl: implicit deep learning models, trained by block-coordinate descent.

The model is :math:`\\hat y = Cx + Du`, with the hidden state solving the equilibrium
:math:`x = \\phi(Ax + Bu)` [IDL]. See ``docs/`` for the user guide and the theory.
"""

__version__ = "0.1.0"

from .exceptions import (  # noqa: E402
    BoundConditionError,
    ConvergenceWarning,
    IllPosedModelError,
    SolverError,
)
from .model import ImplicitModel  # noqa: E402

__all__ = [
    "ImplicitModel",
    "ConvergenceWarning",
    "IllPosedModelError",
    "SolverError",
    "BoundConditionError",
    "__version__",
]

from .estimators import ImplicitClassifier, ImplicitRegressor  # noqa: E402

__all__ += ["ImplicitRegressor", "ImplicitClassifier"]

from .cv import ImplicitClassifierCV, ImplicitRegressorCV  # noqa: E402

__all__ += ["ImplicitRegressorCV", "ImplicitClassifierCV"]
