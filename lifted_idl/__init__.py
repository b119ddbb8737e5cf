"""lifted_idl: implicit deep learning models, trained by block-coordinate descent.

The model is :math:`\\hat y = Cx + Du`, with the hidden state solving the equilibrium
:math:`x = \\phi(Ax + Bu)` [IDL]. See ``docs/`` for the user guide and the theory.
"""

__version__ = "0.1.0"

from .exceptions import ConvergenceWarning, IllPosedModelError, SolverError  # noqa: E402
from .model import ImplicitModel  # noqa: E402

__all__ = [
    "ImplicitModel",
    "ConvergenceWarning",
    "IllPosedModelError",
    "SolverError",
    "__version__",
]
