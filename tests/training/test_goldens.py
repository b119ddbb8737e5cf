"""The trainers reproduce their golden numbers (``tests/_helpers.GOLDENS``), to 1e-12.

* ``rounds`` (``golden_cases.CASES``): written (``python tests/data/make_goldens.py rounds``)
  before the round loop was moved into ``lifted_idl.training.rounds``: the refactor had to
  leave every number of ``fit_bcd``, ``group_lasso_path``, ``frank_wolfe_path`` and the
  estimators' initialisation as it was (to 1e-12, where the order of operations changed).
* ``gradient`` (``golden_gradient_cases.CASES``): written (``... make_goldens.py gradient``)
  before ``fit_gradient`` was split into named steps: the split had to leave every weight and
  every recorded objective as it was.

Commits that changed the numbers on purpose rewrote them and say so.
"""

from __future__ import annotations

import functools
import importlib
import pathlib

import pytest
from _helpers import GOLDENS, assert_golden, load_golden

DATA = pathlib.Path(__file__).resolve().parents[1] / "data"


def _cases(suite):
    return importlib.import_module(GOLDENS[suite][0]).CASES


@functools.cache
def _golden(suite):
    return load_golden(DATA / GOLDENS[suite][1])


@pytest.mark.parametrize(("suite", "name"),
                         [(suite, name) for suite in GOLDENS for name in sorted(_cases(suite))])
def test_golden(suite, name):
    assert_golden(_cases(suite), _golden(suite), name)
