"""``fit_gradient`` reproduces its golden numbers (``golden_gradient_cases.CASES``).

The goldens were written by ``tests/data/make_golden_gradient.py`` before ``fit_gradient`` was
split into named steps: the split had to leave every weight and every recorded objective as it
was (to 1e-12).
"""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from golden_gradient_cases import CASES

GOLDEN = pathlib.Path(__file__).resolve().parents[1] / "data" / "golden_gradient.npz"


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(golden, name):
    got = {k: np.asarray(v, dtype=np.float64) for k, v in CASES[name]().items()}
    want = {k.split("/", 1)[1]: v for k, v in golden.items() if k.split("/", 1)[0] == name}
    assert set(got) == set(want)
    for key, val in got.items():
        np.testing.assert_allclose(val, want[key], rtol=1e-12, atol=1e-13, err_msg=key)
