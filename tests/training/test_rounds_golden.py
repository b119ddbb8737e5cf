"""The anchored round engine reproduces its golden numbers (``golden_cases.CASES``).

The goldens were written (``python tests/data/make_goldens.py rounds``) before the round loop
was moved into ``lifted_idl.training.rounds``: the refactor had to leave every number of
``fit_bcd``, ``group_lasso_path``, ``frank_wolfe_path`` and the estimators' initialisation as
it was (to 1e-12, where the order of operations changed). Commits that changed the numbers on
purpose rewrote them and say so.
"""

from __future__ import annotations

import pathlib

import pytest
from _helpers import assert_golden, load_golden
from golden_cases import CASES

GOLDEN = pathlib.Path(__file__).resolve().parents[1] / "data" / "golden_rounds.npz"


@pytest.fixture(scope="module")
def golden():
    return load_golden(GOLDEN)


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(golden, name):
    assert_golden(CASES, golden, name)
