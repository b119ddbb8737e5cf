"""Argument checks shared by the package: one home for "is this a valid int, number, matrix".

Each check raises ``ValueError`` (``TypeError`` for a sparse matrix) with a message that names
the argument and the value it saw, and returns the value in its canonical type (``int``,
``float``, a float64 array). Checks that only one module needs, because they depend on what
that module knows (an activation's domain, a model's shapes, the array namespace of a GPU
solve), stay in that module.

This module sits at the bottom of the import graph: it imports only NumPy, :mod:`numbers` and
:mod:`lifted_idl.exceptions`.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = [
    "check_choice",
    "check_finite_matrix",
    "check_int",
    "check_kappa",
    "check_max_iter",
    "check_n_jobs",
    "check_numeric",
    "check_radius",
    "check_real",
    "check_shape",
    "check_tol",
    "nonfinite_message",
]

_CLOSED = ("both", "left", "right", "neither")


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _is_real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def check_int(name: str, v, low: int | None = None, high: int | None = None, *,
              allow_none: bool = False) -> int | None:
    """``v`` as an ``int`` with ``low <= v <= high`` (a bound of None is no bound).

    Booleans are rejected; NumPy integers are accepted. With ``allow_none``, None passes
    through unchanged.
    """
    if v is None and allow_none:
        return None
    if not _is_int(v) or (low is not None and v < low) or (high is not None and v > high):
        if low is not None and high is not None:
            rng = f" in [{low}, {high}]"
        elif low is not None:
            rng = f" >= {low}"
        elif high is not None:
            rng = f" <= {high}"
        else:
            rng = ""
        what = f"None or an int{rng}" if allow_none else f"an int{rng}"
        raise ValueError(f"{name} must be {what}; got {name}={v!r}")
    return int(v)


def _in_range(v, low, high, closed: str) -> bool:
    """Whether the finite real ``v`` lies between ``low`` and ``high`` (None: unbounded)."""
    if low is not None and not (v >= low if closed in ("both", "left") else v > low):
        return False
    return high is None or (v <= high if closed in ("both", "right") else v < high)


def _range_words(low, high, closed: str) -> str:
    """What :func:`check_real` asks for, in words: "finite and >= 0", "a finite number in
    (0, 1]", ..."""
    low_in, high_in = closed in ("both", "left"), closed in ("both", "right")
    if low is not None and high is not None:
        return f"a finite number in {'[' if low_in else '('}{low}, {high}{']' if high_in else ')'}"
    if low is not None:
        return f"finite and {'>=' if low_in else '>'} {low}"
    if high is not None:
        return f"finite and {'<=' if high_in else '<'} {high}"
    return "a finite number"


def check_real(name: str, v, low: float | None = None, high: float | None = None, *,
               closed: str = "both", allow_none: bool = False) -> float | None:
    """``v`` as a finite ``float`` in the interval from ``low`` to ``high``.

    ``closed`` says which ends belong to the interval, as in scikit-learn's ``Interval``:
    ``"both"``, ``"left"`` (``low <= v < high``), ``"right"`` or ``"neither"``. A bound of
    None is no bound; NaN, infinities and booleans are always rejected. With ``allow_none``,
    None passes through unchanged.
    """
    if closed not in _CLOSED:
        raise ValueError(f"closed must be one of {_CLOSED}; got closed={closed!r}")
    if v is None and allow_none:
        return None
    if not (_is_real(v) and bool(np.isfinite(v)) and _in_range(v, low, high, closed)):
        what = _range_words(low, high, closed)
        what = f"None or {what}" if allow_none else what
        raise ValueError(f"{name} must be {what}; got {name}={v!r}")
    return float(v)


def check_tol(tol, name: str = "tol", *, allow_zero: bool = False) -> float:
    """A stopping tolerance: a finite float ``> 0`` (``>= 0`` with ``allow_zero``)."""
    return check_real(name, tol, 0, closed="left" if allow_zero else "neither")


def check_max_iter(max_iter, name: str = "max_iter", low: int = 1) -> int:
    """An iteration budget: an int ``>= low`` (1 by default; 0 where no iteration is valid)."""
    return check_int(name, max_iter, low)


def check_n_jobs(n_jobs) -> int:
    """``n_jobs`` in joblib's convention: None (meaning 1), an int ``>= 1``, or ``-1`` (all
    cores). Returns 1 for None and the int otherwise (``-1`` is left for the caller to
    resolve to a number of cores)."""
    if n_jobs is None:
        return 1
    if not _is_int(n_jobs) or (n_jobs < 1 and n_jobs != -1):
        raise ValueError(
            f"n_jobs must be None, an int >= 1 or -1 (all cores); got n_jobs={n_jobs!r}")
    return int(n_jobs)


def check_choice(name: str, v, options) -> str:
    """``v``, one of the strings ``options``; the message lists them."""
    if not isinstance(v, str) or v not in options:
        opts = [repr(o) for o in options]
        listed = opts[0] if len(opts) == 1 else f"{', '.join(opts[:-1])} or {opts[-1]}"
        raise ValueError(f"{name} must be {listed}; got {name}={v!r}")
    return v


def check_radius(name: str, v, size: int | None = None, per: str = "entry") -> np.ndarray:
    """A bound or radius: a finite number ``>= 0``, or a vector of ``size`` of them.

    Returns a float64 array of shape ``()`` or ``(size,)`` (not broadcast). With
    ``size=None`` only a scalar is accepted. ``per`` names what the entries stand for
    ("row", "feature") in the message.
    """
    try:
        r = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number or array; got {name}={v!r}") from None
    if r.ndim > 1 or (r.ndim == 1 and (size is None or r.shape[0] != size)):
        count = "" if size is None else f" ({size})"
        raise ValueError(
            f"{name} must be a scalar or have one entry per {per}{count}; got shape {r.shape}"
        )
    if not np.all(np.isfinite(r)) or np.any(r < 0):
        raise ValueError(f"{name} must be finite and >= 0; got {name}={v!r}")
    return r


def check_kappa(kappa, n_rows: int | None = None) -> np.ndarray:
    """A row-norm bound ``kappa``: a number ``>= 0`` or one per row (:func:`check_radius`)."""
    return check_radius("kappa", kappa, n_rows, per="row")


def nonfinite_message(name: str, where: tuple, value: float, count: int) -> str:
    """The message for a matrix ``name`` with ``count`` NaN/inf entries, the first at ``where``."""
    entry = f"{name}[{', '.join(map(str, where))}]" if where else name
    plural = "entry" if count == 1 else "entries"
    return (f"{name} must be finite; got {entry} = {float(value)!r} "
            f"({name} contains NaN or inf in {count} {plural})")


def check_shape(name: str, got: tuple, shape: tuple) -> None:
    """Raise a ValueError naming ``name`` unless ``got`` matches ``shape`` (same length; a
    None in ``shape`` matches any size)."""
    for k, (g, want) in enumerate(zip(got, shape, strict=True)):
        if want is not None and g != want:
            expected = tuple(s if s is not None else "*" for s in shape)
            word = ("rows", "columns")[k] if len(shape) == 2 else f"entries along axis {k}"
            raise ValueError(f"{name} has shape {tuple(got)}; expected {expected} "
                             f"({name} has {g} {word}; expected {want})")


def check_numeric(name: str, M, shape: tuple | None = None, ndim: int = 2) -> None:
    """Check that the array ``M`` (NumPy or another array namespace's) has a real numeric
    dtype, ``ndim`` dimensions and ``shape`` (None: a free dimension); a ValueError names
    ``name`` and what was seen. Converts nothing."""
    if M.dtype.kind not in "fiub":
        raise ValueError(f"{name} must be a real numeric array; got dtype {M.dtype}")
    if M.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D; got shape {M.shape}")
    if shape is not None:
        check_shape(name, M.shape, shape)


def check_finite_matrix(name: str, M, shape: tuple | None = None, ndim: int = 2) -> np.ndarray:
    """``M`` as a finite float64 NumPy array of ``ndim`` dimensions and ``shape``.

    ``shape`` may hold None for a free dimension. A SciPy sparse matrix raises ``TypeError``
    (pass ``M.toarray()``); a non-numeric dtype, a wrong number of dimensions, a wrong shape
    or a NaN/inf entry raise ``ValueError`` naming ``name`` and what was seen.
    """
    if hasattr(M, "toarray"):
        raise TypeError(f"{name} is a sparse matrix; pass a dense array ({name}.toarray())")
    if M is None:
        raise ValueError(f"{name} is required; got None")
    M = np.asarray(M)
    if M.dtype.kind == "O":  # e.g. a list mixing ints and NumPy floats
        try:
            M = M.astype(np.float64)
        except (TypeError, ValueError):
            pass
    check_numeric(name, M, shape, ndim)
    M = M.astype(np.float64, copy=False)
    ok = np.isfinite(M)
    if not ok.all():
        where = tuple(int(i) for i in np.argwhere(~ok)[0])
        raise ValueError(nonfinite_message(name, where, M[where], int((~ok).sum())))
    return M
