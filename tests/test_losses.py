"""Tests of the losses (lifted_idl.losses): per-sample values and Hessians against the mean
value and central differences of the gradient.
"""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import LOSSES
from scipy.special import logsumexp, softmax

from lifted_idl.losses import (
    SquaredLoss,
    log_partition_and_softmax,
    logsumexp_rows,
    softmax_rows,
)


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


def test_row_kernels_match_scipy_with_inf_and_nan():
    """The NumPy log-partition and softmax kernels give SciPy's values up to rounding, and
    its results on rows holding +inf, -inf or NaN (inf, -inf, NaN, never a silent finite
    number)."""
    rng = np.random.default_rng(5)
    Z = rng.standard_normal((40, 7)) * 30  # large logits: the shift matters
    Z[3] = [np.inf, 0, 1, 2, 3, 4, 5]
    Z[4] = -np.inf
    Z[5, 2] = np.nan
    Z[6] = [np.inf, -np.inf, 0, 0, 0, 0, 0]
    Z[7] = [-np.inf, 1, 2, 3, 4, 5, 6]
    Z[8] = 700.0 + np.arange(7)  # exp overflows without the shift
    with np.errstate(all="ignore"):
        want_l, want_s = logsumexp(Z, axis=1), softmax(Z, axis=1)
    got_l, got_s = logsumexp_rows(Z), softmax_rows(Z)
    both_l, both_s = log_partition_and_softmax(Z)
    for lse, sm in ((got_l, got_s), (both_l, both_s)):
        np.testing.assert_allclose(lse, want_l, rtol=1e-14, atol=1e-14)
        np.testing.assert_allclose(sm, want_s, rtol=1e-13, atol=1e-15)
    assert got_l[3] == np.inf and got_l[4] == -np.inf and np.isnan(got_l[5])
    assert np.isfinite(got_s[8]).all() and got_s[8].sum() == pytest.approx(1.0, abs=1e-15)
    # other shapes and dtypes go to SciPy
    assert logsumexp_rows(np.zeros((3, 0))).tolist() == [-np.inf] * 3
    np.testing.assert_allclose(softmax_rows(np.arange(6).reshape(2, 3)),
                               softmax(np.arange(6).reshape(2, 3), axis=1))
