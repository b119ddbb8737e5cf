"""Constants, the error type and small helpers shared by the ``lifted-idl`` modules."""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from pathlib import Path

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


def _umask() -> int:
    """The process's umask (read by setting and restoring it; the command runs one thread)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path, mode: str = "w"):
    """Write ``path`` all or nothing: a file object on a temporary file beside it.

    The temporary file is created in ``path``'s directory (mode ``0o666`` less the umask, as
    a plain ``open`` would create it). When the ``with`` block ends without an exception it
    is flushed, synced to disk and renamed over ``path`` (:func:`os.replace`, atomic on POSIX
    file systems); on any exception, Ctrl-C included, it is removed and ``path`` is left as
    it was. ``mode`` is ``"w"`` (text, UTF-8) or ``"wb"``.

    Raises
    ------
    OSError
        When the file cannot be created, written or renamed.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                               dir=path.parent if str(path.parent) else ".")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        fh = os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"}))
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    try:
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
