"""Array-namespace helpers: the same kernel code runs on NumPy and CuPy arrays."""

from __future__ import annotations

import numpy as np

from ._validation import nonfinite_message

__all__ = ["get_namespace", "to_numpy", "cupy_available", "check_finite"]


def _cupy():
    try:
        import cupy  # noqa: F401

        return cupy
    except Exception:  # ImportError, or a CUDA runtime that fails to load
        return None


def cupy_available() -> bool:
    """True when CuPy imports and sees at least one GPU."""
    cp = _cupy()
    if cp is None:
        return False
    try:
        return cp.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def get_namespace(*arrays):
    """Return ``cupy`` if any of ``arrays`` is a CuPy array, else ``numpy``."""
    for a in arrays:
        mod = type(a).__module__
        if mod.startswith("cupy"):
            import cupy

            return cupy
    return np


def to_numpy(a):
    """Return ``a`` as a NumPy array (copies from the GPU when needed)."""
    if type(a).__module__.startswith("cupy"):
        return a.get()
    return np.asarray(a)


def check_finite(name: str, M, xp=None) -> None:
    """Raise ``ValueError`` naming ``name`` and the first NaN/inf entry (index and value)."""
    xp = get_namespace(M) if xp is None else xp
    ok = xp.isfinite(M)
    if bool(ok.all()):
        return
    bad = to_numpy(xp.argwhere(~ok)[0]).tolist()
    where = tuple(int(i) for i in bad)
    val = to_numpy(M[where] if where else M)
    raise ValueError(nonfinite_message(name, where, float(val), int(to_numpy((~ok).sum()))))
