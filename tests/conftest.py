"""Shared fixtures: random well-posed implicit models and small helpers (no autouse).

Helpers that are plain functions (data makers, reference residuals) live in ``_helpers.py``
beside this file and are imported as ``from _helpers import ...`` from every folder of tests/.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

# pytest's default "prepend" import mode puts this folder on sys.path already; this keeps
# ``_helpers`` importable under ``--import-mode=importlib`` too.
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))


def _random_A(rng, n, kappa, kind="signed"):
    """A random (n, n) matrix with ``||A||_inf = kappa`` (every row sums to kappa in abs)."""
    if kind == "signed":
        A = rng.standard_normal((n, n))
    elif kind == "nonneg":
        A = rng.random((n, n))
    else:
        raise ValueError(f"unknown kind={kind!r}")
    rows = np.abs(A).sum(axis=1, keepdims=True)
    return A * (kappa / np.maximum(rows, 1e-300))


def _strictly_upper(rng, n, density=0.7):
    """A random strictly upper-triangular matrix (a DAG) with a few zero entries."""
    A = np.triu(rng.standard_normal((n, n)), k=1)
    A *= rng.random((n, n)) < density
    return A


@pytest.fixture
def rng():
    """A fresh generator with a fixed seed for each test."""
    return np.random.default_rng(0)


@pytest.fixture
def random_A():
    """Factory ``random_A(rng, n, kappa, kind="signed"|"nonneg")``."""
    return _random_A


@pytest.fixture
def strictly_upper():
    """Factory ``strictly_upper(rng, n, density=0.7)``."""
    return _strictly_upper


@pytest.fixture
def make_model():
    """Factory for a random well-posed :class:`~lifted_idl.ImplicitModel`.

    ``make_model(rng, n=6, p=4, q=2, kappa=0.6, activation="relu", dtype=np.float64,
    bias=True, kind="signed")``; A has ``||A||_inf = kappa``.
    """
    from lifted_idl import ImplicitModel

    def make(rng, n=6, p=4, q=2, kappa=0.6, activation="relu", dtype=np.float64, bias=True,
             kind="signed"):
        A = _random_A(rng, n, kappa, kind)
        B = rng.standard_normal((n, p))
        C = rng.standard_normal((q, n))
        D = rng.standard_normal((q, p))
        b = rng.standard_normal(n) if bias else None
        c = rng.standard_normal(q) if bias else None
        def cast(M):
            return None if M is None else np.asarray(M, dtype=dtype)

        return ImplicitModel(cast(A), cast(B), cast(C), cast(D), b=cast(b), c=cast(c),
                             activation=activation)

    return make
