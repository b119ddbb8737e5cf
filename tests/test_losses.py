"""Tests of the losses (lifted_idl.losses): per-sample values and Hessians against the mean
value and central differences of the gradient.
"""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import LOSSES

from lifted_idl.losses import SquaredLoss


@pytest.mark.parametrize("loss", LOSSES, ids=["sq", "ce"])
def test_loss_sample_values_and_hessians(loss):
    rng = np.random.default_rng(17)
    m, q = 6, 3
    Yhat = rng.standard_normal((m, q))
    Y = rng.standard_normal((m, q)) if isinstance(loss, SquaredLoss) else np.eye(q)[
        rng.integers(0, q, m)]
    v = loss.sample_values(Y, Yhat)
    assert v.shape == (m,) and v.mean() == pytest.approx(loss.value(Y, Yhat), rel=1e-13)
    H = loss.sample_hessians(Y, Yhat)
    for s in range(m):
        def grad_s(y, s=s):
            Z = Yhat.copy()
            Z[s] = y
            return loss.grad(Y, Z)[s] * m
        J = np.column_stack([(grad_s(Yhat[s] + 1e-6 * e) - grad_s(Yhat[s] - 1e-6 * e)) / 2e-6
                             for e in np.eye(q)])
        assert np.allclose(H[s], J, atol=1e-6)
