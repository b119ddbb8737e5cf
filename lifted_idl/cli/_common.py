"""Constants, the error type and small helpers shared by the ``lifted-idl`` modules."""

from __future__ import annotations

import math

PROG = "lifted-idl"
DEFAULT_DATASET = "breast_cancer"
DEFAULT_MODEL = "lifted_idl_model.npz"
DEFAULT_TEST_SIZE = 0.25
DEFAULT_SEED = 0
#: default radius of analyze's l-infinity ball, per standardised feature
DEFAULT_EPS = 0.05
_BUILTIN = ("digits", "breast_cancer", "iris", "wine", "diabetes")
_SYNTHETIC = ("teacher", "function_fit")
DATASETS = _BUILTIN + _SYNTHETIC
EXIT_OK, EXIT_ERROR, EXIT_INTERRUPTED = 0, 2, 130


class CLIError(Exception):
    """Bad input to the command line (reported on stderr, exit status 2)."""


def one_line(text) -> str:
    """``text`` on one line (newlines and runs of spaces become one space)."""
    return " ".join(str(text).split())


def jsonable(v):
    """``v`` with NumPy scalars and arrays turned into JSON types (non-finite floats as text)."""
    import numpy as np

    if isinstance(v, (bool, int, float, str)) or v is None:
        return v if not (isinstance(v, float) and not math.isfinite(v)) else str(v)
    if isinstance(v, (np.integer, np.floating, np.bool_)):
        return jsonable(v.item())
    if isinstance(v, (list, tuple, np.ndarray)):
        return [jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    return str(v)


def missing_list(noun: str, missing) -> str:
    """``"<noun> 'a'"`` or ``"<noun>s 'a', 'b'"``: the names ``missing`` for an error line."""
    return f"{noun}{'' if len(missing) == 1 else 's'} {', '.join(map(repr, missing))}"
