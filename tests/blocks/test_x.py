"""Tests of the X block (lifted_idl.blocks.x, theory §8): the fast solver (accelerated gradient,
Newton) against the cvxpy formulation and its stationarity condition.
"""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import ACTS, RTOL, instance, rel

from lifted_idl.blocks import solve_x, x_objective
from lifted_idl.losses import SquaredLoss


def x_gradient(A, B, b, U, P, lam, mu, act, X):
    Z = X @ A.T + U @ B.T + b
    return ((act(Z) - P) * lam @ A + mu * (X - P)) / X.shape[0]


@pytest.mark.parametrize("act", ACTS, ids=["relu", "tanh"])
@pytest.mark.parametrize("lam_scale", [1.0, 400.0], ids=["agd", "newton"])
def test_x_fast_matches_cvxpy_and_stationary(act, lam_scale):
    d = instance(8, act, SquaredLoss(), kappa=0.9)
    lam = d["lam"] * lam_scale
    args = (d["A"], d["B"], d["b"], d["U"], d["P"], lam, d["mu"], act)
    fast = solve_x(*args)
    ref = solve_x(*args, method="cvxpy")
    assert fast.converged
    assert fast.solver == ("agd" if lam_scale == 1.0 else "newton")
    assert rel(fast.objective, ref.objective) < RTOL
    assert fast.objective == pytest.approx(x_objective(*args, fast.value), rel=1e-14)
    g = x_gradient(*args, fast.value)
    assert np.abs(g).max() < 1e-8 * max(1.0, lam.max())
