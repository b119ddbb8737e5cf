"""lifted_idl: implicit deep learning models, trained by block-coordinate descent.

The model is :math:`\\hat y = Cx + Du`, with the hidden state solving the equilibrium
:math:`x = \\phi(Ax + Bu)` [IDL]. See ``docs/`` for the user guide and the theory.

The names below are imported on first use (PEP 562), so that ``import lifted_idl`` (and the
``lifted-idl`` command's start-up) loads NumPy, SciPy and scikit-learn only when needed.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: public name -> the module that defines it
_EXPORTS = {
    "ImplicitModel": ".model",
    "ConvergenceWarning": ".exceptions",
    "IllPosedModelError": ".exceptions",
    "SolverError": ".exceptions",
    "BoundConditionError": ".exceptions",
    "ModelFileError": ".exceptions",
    "ImplicitRegressor": ".estimators",
    "ImplicitClassifier": ".estimators",
    "ImplicitRegressorCV": ".cv",
    "ImplicitClassifierCV": ".cv",
    "save": ".persistence",
    "load": ".persistence",
}

__all__ = [
    "ImplicitModel",
    "ConvergenceWarning",
    "IllPosedModelError",
    "SolverError",
    "BoundConditionError",
    "ModelFileError",
    "__version__",
    "ImplicitRegressor",
    "ImplicitClassifier",
    "ImplicitRegressorCV",
    "ImplicitClassifierCV",
    "save",
    "load",
]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module, __name__), name)
        globals()[name] = value
        return value
    try:  # a submodule: lifted_idl.blocks, lifted_idl.robustness, ...
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as err:
        if err.name != f"{__name__}.{name}":
            raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
