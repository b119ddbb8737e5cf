"""``fit_gradient`` reproduces its golden numbers (``golden_gradient_cases.CASES``).

The goldens were written (``python tests/data/make_goldens.py gradient``) before
``fit_gradient`` was split into named steps: the split had to leave every weight and every
recorded objective as it was (to 1e-12).
"""

from __future__ import annotations

import pathlib

import pytest
from _helpers import assert_golden, load_golden
from golden_gradient_cases import CASES

GOLDEN = pathlib.Path(__file__).resolve().parents[1] / "data" / "golden_gradient.npz"


@pytest.fixture(scope="module")
def golden():
    return load_golden(GOLDEN)


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(golden, name):
    assert_golden(CASES, golden, name)
