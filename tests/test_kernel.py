"""The fixed-point kernel against closed forms, exact solves and each other."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.optimize import root

from lifted_idl import kernel
from lifted_idl.activations import BlockSoftmax, Blockwise, ReLU, Tanh, get_activation
from lifted_idl.exceptions import ConvergenceWarning, IllPosedModelError
from lifted_idl.wellposedness import averaged_step, dag_levels, inf_norm

RELU = ReLU()
TANH = Tanh()


def _all_methods(A, Z0, act, factors=None, **kw):
    """Every iterative method on the same problem (plus low rank when factors are given)."""
    alpha = 0.6
    out = {
        "picard": kernel.picard(A, Z0, act, **kw),
        "averaged": kernel.averaged(A, Z0, act, alpha, **kw),
        "anderson": kernel.anderson(A, Z0, act, **kw),
    }
    if factors is not None:
        out["lowrank"] = kernel.lowrank(*factors, Z0, act, **kw)
    return out


# ----------------------------------------------------------------------------------------------
# closed forms and exact solves
# ----------------------------------------------------------------------------------------------
def test_diagonal_relu_closed_form(rng):
    # x_i = max(a_i x_i + z_i, 0), |a_i| < 1: x_i = z_i / (1 - a_i) if z_i > 0 else 0
    n, m = 7, 40
    a = rng.uniform(-0.95, 0.95, n)
    A = np.diag(a)
    Z0 = rng.standard_normal((m, n)) * 3
    exact = np.where(Z0 > 0, Z0 / (1 - a), 0.0)
    for name, res in _all_methods(A, Z0, RELU, max_iter=5000).items():
        assert res.converged, name
        np.testing.assert_allclose(res.X, exact, rtol=1e-8, atol=1e-12, err_msg=name)
        assert res.residual <= 1e-10


def test_relu_fixed_point_is_the_exact_active_set_solution(rng, random_A):
    # for ReLU the equilibrium solves a linear system on its active set S = {z > 0}:
    # x_S = (I - A_SS)^{-1} z0_S, x_{S^c} = 0; recompute it exactly per sample and compare
    n, m = 12, 25
    A = random_A(rng, n, 0.9)
    Z0 = rng.standard_normal((m, n))
    res = kernel.picard(A, Z0, RELU, tol=1e-13, max_iter=2000)
    assert res.converged
    for x, z in zip(res.X, Z0, strict=True):
        S = (A @ x + z) > 0
        xs = np.zeros(n)
        xs[S] = np.linalg.solve(np.eye(S.sum()) - A[np.ix_(S, S)], z[S])
        # the active-set solution is a fixed point (consistency of the guessed set)
        np.testing.assert_allclose(xs, np.maximum(A @ xs + z, 0), atol=1e-12)
        np.testing.assert_allclose(x, xs, atol=1e-11)


def test_tanh_against_a_tight_root_solve(rng, random_A):
    n, m = 10, 6
    A = random_A(rng, n, 0.95)
    Z0 = rng.standard_normal((m, n)) * 2
    results = _all_methods(A, Z0, TANH, tol=1e-13, max_iter=5000)
    for i in range(m):
        sol = root(lambda x, z=Z0[i]: x - np.tanh(A @ x + z), np.zeros(n),
                   jac=lambda x, z=Z0[i]: np.eye(n) - (1 - np.tanh(A @ x + z) ** 2)[:, None] * A,
                   method="hybr", tol=1e-14)
        assert sol.success
        for name, res in results.items():
            np.testing.assert_allclose(res.X[i], sol.x, atol=1e-11, err_msg=name)


def _feed_forward(rng, widths, p):
    """A dense ReLU network as an implicit model (theory §5, [IDL §3]) and its forward pass."""
    Ws = [rng.standard_normal((widths[0], p))]
    for k in range(1, len(widths)):
        Ws.append(rng.standard_normal((widths[k], widths[k - 1])) / np.sqrt(widths[k - 1]))
    n = sum(widths)
    # state x = (x_L, ..., x_1): last layer first, so A is strictly upper block-triangular
    offs = np.cumsum([0] + widths[::-1])
    pos = {len(widths) - 1 - j: (offs[j], offs[j + 1]) for j in range(len(widths))}
    A = np.zeros((n, n))
    B = np.zeros((n, p))
    B[slice(*pos[0])] = Ws[0]
    for k in range(1, len(widths)):
        A[slice(*pos[k]), slice(*pos[k - 1])] = Ws[k]

    def forward(U):
        xs = [np.maximum(U @ Ws[0].T, 0)]
        for k in range(1, len(widths)):
            xs.append(np.maximum(xs[-1] @ Ws[k].T, 0))
        return np.hstack(xs[::-1])

    return A, B, forward


def test_back_substitution_equals_the_forward_pass(rng):
    A, B, forward = _feed_forward(rng, [5, 4, 3, 2], p=3)
    assert np.allclose(A, np.triu(A, 1))
    U = rng.standard_normal((30, 3))
    levels = dag_levels(A)
    assert len(levels) == 4
    res = kernel.back_substitution(A, U @ B.T, RELU, levels)
    np.testing.assert_allclose(res.X, forward(U), atol=1e-13)
    assert res.n_iter == 4 and res.converged and res.residual < 1e-14
    # Picard on a nilpotent A is exact after depth + 1 iterations
    pic = kernel.picard(A, U @ B.T, RELU, tol=0.0, max_iter=5, warn=False)
    np.testing.assert_allclose(pic.X, forward(U), atol=1e-13)


def test_back_substitution_on_a_permuted_dag_matches_a_state_by_state_loop(rng, strictly_upper):
    n, m = 10, 8
    A0 = strictly_upper(rng, n, density=0.5)
    perm = rng.permutation(n)
    A = A0[np.ix_(perm, perm)]
    Z0 = rng.standard_normal((m, n))
    # explicit substitution in the order of the triangular A0 (last state first)
    inv = np.argsort(perm)
    X0 = np.zeros((m, n))
    for i in range(n - 1, -1, -1):
        X0[:, i] = np.tanh(X0 @ A0[i] + Z0[:, inv][:, i])
    expected = X0[:, perm]
    res = kernel.back_substitution(A, Z0, TANH, dag_levels(A))
    np.testing.assert_allclose(res.X, expected, atol=1e-14)


@pytest.mark.parametrize("blocks", [
    [(4, "tanh"), (3, "relu")],
    [(3, "relu"), (2, BlockSoftmax()), (2, "sigmoid")],
], ids=["tanh+relu", "relu+softmax+sigmoid"])
def test_back_substitution_with_blockwise_activations(rng, blocks):
    act = Blockwise(blocks)
    n = act.size
    A = np.triu(rng.standard_normal((n, n)), 1)
    for sl, sub in act.slices:  # a genuine block must not read itself
        if not sub.componentwise:
            A[sl, sl] = 0.0
    Z0 = rng.standard_normal((9, n))
    levels = dag_levels(A, activation=act)
    assert levels is not None
    res = kernel.back_substitution(A, Z0, act, levels)
    pic = kernel.picard(A, Z0, act, tol=0.0, max_iter=n + 2, warn=False)
    np.testing.assert_allclose(res.X, pic.X, atol=1e-13)
    np.testing.assert_allclose(res.X, act(res.X @ A.T + Z0), atol=1e-13)


def test_back_substitution_rejects_bad_levels(rng, strictly_upper):
    A = strictly_upper(rng, 5, density=1.0)
    Z0 = rng.standard_normal((2, 5))
    with pytest.raises(ValueError, match="partition"):
        kernel.back_substitution(A, Z0, RELU, [np.arange(4)])
    with pytest.raises(ValueError, match="levels do not respect A"):
        kernel.back_substitution(A, Z0, RELU, [np.arange(5)])


# ----------------------------------------------------------------------------------------------
# agreement, invariance, dtype
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("act", ["relu", "tanh", "leaky_relu", "sigmoid"])
def test_all_methods_agree(rng, act):
    n, m, k = 15, 30, 3
    act = get_activation(act)
    L = rng.standard_normal((n, k))
    R = rng.standard_normal((n, k))
    A = L @ R.T
    s = 0.9 / inf_norm(A)
    L *= s
    A = L @ R.T
    Z0 = rng.standard_normal((m, n))
    results = _all_methods(A, Z0, act, factors=(L, R), tol=1e-12, max_iter=3000)
    ref = results.pop("picard")
    assert ref.converged
    for name, res in results.items():
        assert res.converged, name
        np.testing.assert_allclose(res.X, ref.X, atol=1e-10, err_msg=name)


def test_per_sample_convergence_bound(rng, random_A):
    # every returned row meets the relative criterion: with c = ||A||_inf,
    # ||g(x) - x||_inf <= c * tol * ||x||_inf (Picard returns x_{t+1})
    n, m, tol = 20, 200, 1e-8
    A = random_A(rng, n, 0.9)
    Z0 = rng.standard_normal((m, n)) * rng.uniform(0.01, 100, (m, 1))  # mixed scales
    res = kernel.picard(A, Z0, TANH, tol=tol)
    G = np.tanh(res.X @ A.T + Z0)
    lhs = np.abs(G - res.X).max(axis=1)
    rhs = 0.9 * tol * np.abs(res.X).max(axis=1)
    assert np.all(lhs <= rhs * (1 + 1e-6) + 1e-300)
    assert res.residual <= tol


@pytest.mark.parametrize("method", ["picard", "averaged", "anderson", "lowrank"])
def test_subset_invariance(rng, method):
    n, m, k = 16, 60, 4
    L = rng.standard_normal((n, k))
    R = rng.standard_normal((n, k))
    L *= 0.95 / inf_norm(L @ R.T)
    A = L @ R.T
    Z0 = rng.standard_normal((m, n)) * rng.uniform(0.1, 10, (m, 1))
    kw = dict(alpha=0.7, factors=(L, R), force=True)
    full = kernel.solve(A, Z0, RELU, method, **kw).X
    for idx in (np.arange(0, m, 3), rng.permutation(m)[:7], np.array([5])):
        part = kernel.solve(A, Z0[idx], RELU, method, **kw).X
        np.testing.assert_allclose(part, full[idx], rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", ["picard", "averaged", "lowrank"])
def test_input_layout_does_not_change_the_answer(rng, method):
    """The iterates are held column-major: row-major, column-major and strided inputs and warm
    starts give the same states (to rounding), returned row-major, at the fixed point."""
    n, m, k = 12, 300, 3
    L = rng.standard_normal((n, k))
    R = rng.standard_normal((n, k))
    L *= 0.9 / inf_norm(L @ R.T)
    A = L @ R.T
    Zbig = rng.standard_normal((2 * m, n + 3))
    Z0 = np.ascontiguousarray(Zbig[::2, :n])
    X0 = np.maximum(rng.standard_normal((m, n)), 0)
    kw = dict(alpha=0.7, factors=(L, R), force=True)
    ref = kernel.solve(A, Z0, RELU, method, X0=X0, **kw)
    assert ref.X.flags.c_contiguous and ref.converged
    Xbig = np.zeros((m, 2 * n))
    Xbig[:, ::2] = X0
    for Z, Xs in ((np.asfortranarray(Z0), np.asfortranarray(X0)), (Zbig[::2, :n], Xbig[:, ::2])):
        res = kernel.solve(A, Z, RELU, method, X0=Xs, **kw)
        assert res.X.flags.c_contiguous
        np.testing.assert_allclose(res.X, ref.X, rtol=0, atol=1e-12)
    resid = np.abs(np.maximum(ref.X @ A.T + Z0, 0) - ref.X).max(axis=1)
    assert np.all(resid <= 1e-8 * np.abs(ref.X).max(axis=1) + 1e-300)


def test_float32_stays_float32(rng, random_A):
    A = random_A(rng, 12, 0.8)
    Z0 = rng.standard_normal((20, 12))
    Z32 = Z0.astype(np.float32)
    ref = kernel.picard(A, Z0, TANH).X
    for name, res in _all_methods(A, Z32, TANH, factors=None).items():
        assert res.X.dtype == np.float32, name
        np.testing.assert_allclose(res.X, ref, atol=5e-5, err_msg=name)
    levels = dag_levels(np.triu(A, 1))
    assert kernel.back_substitution(np.triu(A, 1), Z32, TANH, levels).X.dtype == np.float32


def test_warm_start_and_empty_inputs(rng, random_A):
    A = random_A(rng, 8, 0.9)
    Z0 = rng.standard_normal((10, 8))
    cold = kernel.picard(A, Z0, RELU)
    warm = kernel.picard(A, Z0, RELU, X0=cold.X)
    assert warm.n_iter <= 2 and warm.n_iter < cold.n_iter
    np.testing.assert_allclose(warm.X, cold.X, atol=1e-12)
    empty = kernel.picard(A, Z0[:0], RELU)
    assert empty.X.shape == (0, 8) and empty.converged


def test_anderson_pays_on_a_slowly_contracting_problem(rng, random_A):
    # nonnegative A with row sums 0.99 and positive inputs: the linear regime, contraction 0.99
    A = random_A(rng, 30, 0.99, kind="nonneg")
    Z0 = rng.random((20, 30)) + 0.5
    pic = kernel.picard(A, Z0, RELU, max_iter=5000)
    acc = kernel.anderson(A, Z0, RELU, max_iter=5000)
    assert pic.converged and acc.converged
    assert acc.n_iter * 10 < pic.n_iter
    np.testing.assert_allclose(acc.X, pic.X, rtol=1e-7)


# ----------------------------------------------------------------------------------------------
# failure paths
# ----------------------------------------------------------------------------------------------
def test_nonconvergence_warns_with_the_residual(rng, random_A):
    A = random_A(rng, 10, 0.99, kind="nonneg")
    Z0 = rng.random((6, 10)) + 1
    with pytest.warns(ConvergenceWarning, match=r"6 sample\(s\).*relative residual"):
        res = kernel.picard(A, Z0, RELU, max_iter=3)
    assert not res.converged and res.n_unconverged == 6 and res.n_iter == 3
    assert res.residual > 1e-10
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet = kernel.picard(A, Z0, RELU, max_iter=3, warn=False)
    assert quiet.residual == pytest.approx(res.residual)
    for fn in (lambda: kernel.anderson(A, Z0, RELU, max_iter=2),
               lambda: kernel.averaged(A, Z0, RELU, 0.5, max_iter=2)):
        with pytest.warns(ConvergenceWarning, match="did not converge"):
            fn()


def test_divergence_is_reported_not_silent(rng):
    A = 2.0 * np.eye(3)  # x = 2x + z diverges
    Z0 = rng.random((4, 3)) + 1
    with pytest.raises(IllPosedModelError, match="force=True"):
        kernel.solve(A, Z0, "identity")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no overflow warnings leak out
        with pytest.warns(ConvergenceWarning, match="diverged"):
            res = kernel.solve(A, Z0, "identity", force=True, max_iter=3000)
    assert not res.converged and res.residual == np.inf and res.n_unconverged == 4
    assert res.n_iter < 3000  # diverged rows are stopped, not iterated to max_iter


def test_kernel_solve_checks_wellposedness(rng):
    A = np.array([[0.0, 1.2], [1.0, 0.0]])  # lambda_PF = sqrt(1.2)
    Z0 = rng.standard_normal((3, 2))
    with pytest.raises(IllPosedModelError):
        kernel.solve(A, Z0, RELU)
    # a certified low-rank factorization is accepted without the full-A check
    L = np.array([[0.5], [0.2]])
    R = np.array([[0.3], [0.9]])
    res = kernel.solve(L @ R.T, Z0, RELU, "lowrank", factors=(L, R))
    np.testing.assert_allclose(res.X, kernel.picard(L @ R.T, Z0, RELU).X, atol=1e-12)


def test_averaged_step_reaches_a_mu_inf_certified_fixed_point(rng, random_A):
    # very negative diagonal: Picard diverges, the NE-MON averaged iteration converges
    n = 6
    A = random_A(rng, n, 0.5) - 4 * np.eye(n)
    alpha, c = averaged_step(A)
    Z0 = rng.standard_normal((5, n))
    res = kernel.averaged(A, Z0, RELU, alpha, tol=1e-12, max_iter=5000)
    assert res.converged
    np.testing.assert_allclose(res.X, np.maximum(res.X @ A.T + Z0, 0), atol=1e-10)
    with pytest.warns(ConvergenceWarning):
        kernel.picard(A, Z0, RELU, max_iter=200)


@pytest.mark.parametrize("call, match", [
    (lambda A, Z: kernel.picard(A, Z[:, :3], RELU), r"A has shape \(4, 4\); expected \(3, 3\)"),
    (lambda A, Z: kernel.picard(A[:, :3], Z, RELU), r"A has shape \(4, 3\)"),
    (lambda A, Z: kernel.picard(A, Z[0], RELU), r"Z0 must be a 2-D array; got shape \(4,\)"),
    (lambda A, Z: kernel.picard(A, np.where(Z > 1, np.nan, Z), RELU),
     r"Z0 must be finite; got Z0\[\d+, \d+\] = nan"),
    (lambda A, Z: kernel.picard(np.where(A > 0.1, np.inf, A), Z, RELU), r"A must be finite"),
    (lambda A, Z: kernel.picard(A, Z, RELU, X0=np.zeros((2, 4))), r"X0 has shape \(2, 4\)"),
    (lambda A, Z: kernel.picard(A, Z, RELU, tol=-1.0), r"tol=-1.0"),
    (lambda A, Z: kernel.picard(A, Z, RELU, max_iter=0), r"max_iter=0"),
    (lambda A, Z: kernel.averaged(A, Z, RELU, 1.5), r"alpha=1.5"),
    (lambda A, Z: kernel.anderson(A, Z, RELU, memory=0), r"memory=0"),
    (lambda A, Z: kernel.lowrank(np.ones((4, 2)), np.ones((3, 2)), Z, RELU), r"L and R"),
    (lambda A, Z: kernel.solve(A, Z, RELU, "newton"), r"method='newton'"),
    (lambda A, Z: kernel.solve(A, Z, RELU, "triangular"), r"levels"),
    (lambda A, Z: kernel.solve(A, Z, RELU, "lowrank"), r"factors"),
])
def test_bad_inputs_raise_value_error_naming_the_argument(rng, call, match):
    A = rng.standard_normal((4, 4)) * 0.1
    Z = rng.standard_normal((6, 4)) + 1
    with pytest.raises(ValueError, match=match):
        call(A, Z)


def test_cupy_matches_numpy(rng, random_A):
    cp = pytest.importorskip("cupy")
    from lifted_idl._array import cupy_available

    if not cupy_available():
        pytest.skip("CuPy is installed but sees no GPU")
    A = random_A(rng, 20, 0.9)
    Z0 = rng.standard_normal((50, 20))
    for method in ("picard", "averaged", "anderson"):
        ref = kernel.solve(A, Z0, TANH, method, alpha=0.7)
        gpu = kernel.solve(cp.asarray(A), cp.asarray(Z0), TANH, method, alpha=0.7)
        assert isinstance(gpu.X, cp.ndarray) and gpu.n_iter == ref.n_iter
        np.testing.assert_allclose(gpu.X.get(), ref.X, atol=1e-12)


def test_row_abs_max_equals_row_inf():
    """The in-place residual norm of the iteration loop gives _row_inf's numbers, bit for bit,
    NaN and inf rows included, and leaves abs(M) behind."""
    from lifted_idl.kernel import _row_abs_max, _row_inf

    rng = np.random.default_rng(0)
    M = np.asfortranarray(rng.standard_normal((50, 7)))
    M[3, 2], M[5, 0], M[7, 4], M[9] = np.nan, np.inf, -np.inf, -0.0
    want = _row_inf(M, np)
    work = M.copy(order="F")
    got = _row_abs_max(work, np)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(work, np.abs(M))
    assert _row_abs_max(np.empty((4, 0)), np).shape == (4,)


def test_diverging_rows_stop_and_the_others_converge(rng):
    """Rows whose iterates overflow stop as unconverged while the rest converge to the fixed
    point, each row as if solved alone (the per-row stop test of the shared loop)."""
    A = np.array([[0.0, 0.0], [0.0, 3.0]])  # x2 = relu(3 x2 + z2): diverges for z2 > 0
    Z0 = rng.standard_normal((40, 2))
    Z0[:, 1] = np.where(np.arange(40) % 3 == 0, 1.0, -1.0)  # every third row diverges
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = kernel.picard(A, Z0, RELU, max_iter=3000)
        alone = [kernel.picard(A, Z0[i:i + 1], RELU, max_iter=3000) for i in range(40)]
    diverge = np.arange(40) % 3 == 0
    assert res.n_unconverged == diverge.sum() and res.n_iter < 3000
    for i in np.flatnonzero(~diverge):
        assert alone[i].converged and np.array_equal(res.X[i], alone[i].X[0])
    assert not any(alone[i].converged for i in np.flatnonzero(diverge))
