"""Well-posedness certificates, the inf-norm ball and mu_inf projections, PF rescaling, NE-MON."""

from __future__ import annotations

import warnings
from fractions import Fraction

import cvxpy as cp
import numpy as np
import pytest

from lifted_idl import ImplicitModel
from lifted_idl.activations import BlockSoftmax, Blockwise
from lifted_idl.exceptions import ConvergenceWarning, IllPosedModelError
from lifted_idl.wellposedness import (
    _project_l1_rows,
    averaged_step,
    block_gain_matrix,
    dag_levels,
    inf_norm,
    is_well_posed,
    mu_inf,
    nemon_parameter,
    nemon_parametrize,
    pf_eigenvalue,
    project_inf_norm_ball,
    project_mu_inf,
    rescale_to_inf_norm,
)


# ----------------------------------------------------------------------------------------------
# norms, measure, PF eigenvalue
# ----------------------------------------------------------------------------------------------
def test_norms_against_explicit_formulas(rng):
    for _ in range(5):
        A = rng.standard_normal((6, 6)) * rng.uniform(0.1, 3)
        A[np.diag_indices(6)] -= rng.uniform(0, 4, 6)  # some negative diagonals
        row_abs = [sum(abs(A[i, j]) for j in range(6)) for i in range(6)]
        assert inf_norm(A) == pytest.approx(max(row_abs))
        mu = max(A[i, i] + sum(abs(A[i, j]) for j in range(6) if j != i) for i in range(6))
        assert mu_inf(A) == pytest.approx(mu)
        lam = pf_eigenvalue(A)
        assert lam == pytest.approx(np.abs(np.linalg.eigvals(np.abs(A))).max())
        # lambda_PF(|A|) <= ||A||_inf and mu_inf(A) <= ||A||_inf (theory §2)
        assert lam <= inf_norm(A) + 1e-12 and mu_inf(A) <= inf_norm(A) + 1e-12
    # rectangular matrices (B, C in the Lipschitz bounds)
    B = rng.standard_normal((3, 5))
    assert inf_norm(B) == pytest.approx(np.abs(B).sum(axis=1).max())


def test_pf_with_lipschitz_scaling():
    A = np.array([[0.0, 2.0], [2.0, 0.0]])
    assert pf_eigenvalue(A, "relu") == pytest.approx(2.0)
    assert pf_eigenvalue(A, "sigmoid") == pytest.approx(0.5)  # diag(1/4)|A|


def test_block_gain_matrix_hand_computed():
    # states 0,1: a softmax block (gamma 1/2, l2); state 2: relu (gamma 1, inf-norm)
    A = np.array([[0.3, -0.4, 1.0],
                  [0.0, 0.0, -2.0],
                  [0.6, 0.8, 0.5]])
    act = Blockwise([(2, BlockSoftmax()), (1, "relu")])
    N = block_gain_matrix(A, act)
    A11 = A[:2, :2]
    expected = np.array([
        # softmax row: 1/2 ||A_11||_{2->2}, 1/2 ||A_12||_{inf->2} = 1/2 ||(1, -2)||_2
        [0.5 * np.linalg.norm(A11, 2), 0.5 * np.sqrt(1.0 + 4.0)],
        # relu row: ||A_21||_{2->inf} = ||(0.6, 0.8)||_2 = 1, |A_22| = 0.5
        [1.0, 0.5],
    ])
    np.testing.assert_allclose(N, expected)
    # by hand: ||A_11||_2 = 0.5, N = [[0.25, sqrt5/2], [1, 0.5]]
    assert expected[0, 0] == pytest.approx(0.25)
    lam = 0.5 * (0.75 + np.sqrt(0.25**2 + 4 * np.sqrt(5) / 2))
    assert pf_eigenvalue(A, act) == pytest.approx(lam)
    # a standalone softmax block over all states
    assert pf_eigenvalue(A[:2, :2], "softmax") == pytest.approx(0.25)


def test_block_gain_matrix_against_the_definition(rng):
    # blocks: 2 relu states, a softmax block of 3, 1 tanh state, a softmax block of 2
    act = Blockwise([(2, "relu"), (3, BlockSoftmax()), (1, "tanh"), (2, BlockSoftmax())])
    A = rng.standard_normal((8, 8))
    units = [(0, 1), (1, 2), (2, 5), (5, 6), (6, 8)]
    genuine = {2, 4}
    gam = [1, 1, 0.5, 1, 0.5]
    N = block_gain_matrix(A, act)
    for i, (a0, a1) in enumerate(units):
        for j, (b0, b1) in enumerate(units):
            M = A[a0:a1, b0:b1]
            if i in genuine and j in genuine:
                val = np.linalg.norm(M, 2)  # l2 -> l2
            elif i in genuine:
                val = np.linalg.norm(M[:, 0])  # a scalar into an l2 block
            elif j in genuine:
                val = np.linalg.norm(M[0])  # l2 block into a scalar: dual of l2
            else:
                val = abs(M[0, 0])
            assert N[i, j] == pytest.approx(gam[i] * val, rel=1e-12)


# ----------------------------------------------------------------------------------------------
# DAG levels
# ----------------------------------------------------------------------------------------------
def test_dag_levels_of_a_permuted_triangular_matrix(rng, strictly_upper):
    A = strictly_upper(rng, 9, density=0.4)
    perm = rng.permutation(9)
    Ap = A[np.ix_(perm, perm)]
    levels = dag_levels(Ap)
    assert levels is not None
    assert sorted(np.concatenate(levels).tolist()) == list(range(9))
    seen = np.zeros(9, dtype=bool)
    for lev in levels:
        # each level depends only on earlier levels
        assert not (Ap[np.ix_(lev, np.flatnonzero(~seen))] != 0).any()
        seen[lev] = True
    # a dense strictly triangular matrix is a chain: one state per level
    assert len(dag_levels(np.triu(np.ones((7, 7)), 1))) == 7
    # a cycle or a self-loop is not a DAG
    cyc = np.zeros((3, 3))
    cyc[0, 1] = cyc[1, 2] = cyc[2, 0] = 1.0
    assert dag_levels(cyc) is None
    assert dag_levels(np.diag([0.0, 0.1, 0.0])) is None


def test_dag_levels_keep_genuine_blocks_whole():
    act = Blockwise([(1, "relu"), (2, BlockSoftmax())])
    A = np.zeros((3, 3))
    A[1, 0] = A[2, 0] = 1.0  # the softmax block reads state 0
    lev = dag_levels(A, activation=act)
    assert [lv.tolist() for lv in lev] == [[0], [1, 2]]
    # state-level DAG, but the softmax block reads its own state: a block self-loop
    B = A.copy()
    B[1, 2] = 1.0
    assert dag_levels(B) is not None
    assert dag_levels(B, activation=act) is None
    assert is_well_posed(B, act).certificate != "dag"


# ----------------------------------------------------------------------------------------------
# certificates
# ----------------------------------------------------------------------------------------------
def test_is_well_posed_picks_the_right_certificate(rng, strictly_upper, random_A):
    # strictly triangular up to permutation: exact back-substitution
    A = strictly_upper(rng, 6) * 10  # huge entries do not matter
    perm = rng.permutation(6)
    wp = is_well_posed(A[np.ix_(perm, perm)])
    assert (wp.well_posed, wp.certificate) == (True, "dag")
    # inf-norm below 1
    A = random_A(rng, 6, 0.8)
    wp = is_well_posed(A)
    assert wp.certificate == "inf_norm" and wp.value == pytest.approx(0.8)
    # PF below 1 but inf-norm above 1: a diagonal similarity of a nonnegative matrix
    M = random_A(rng, 6, 0.7, kind="nonneg")
    S = np.diag(np.geomspace(1, 20, 6))
    A = S @ M @ np.linalg.inv(S)
    assert inf_norm(A) > 1
    wp = is_well_posed(A)
    assert wp.certificate == "pf" and wp.value == pytest.approx(0.7)
    # mu_inf below 1 with very negative diagonal, lambda_PF(|A|) > 1 (theory §2, NE-MON)
    A = -5 * np.eye(6) + random_A(rng, 6, 0.5)
    A[np.diag_indices(6)] = -5.0
    assert pf_eigenvalue(A) > 1
    wp = is_well_posed(A)
    assert wp.certificate == "mu_inf" and wp.value < 1
    assert wp.alpha == pytest.approx(1 / 6)
    # none holds
    A = 1.5 * np.eye(3) + 0.1
    wp = is_well_posed(A)
    assert not wp and wp.certificate is None and wp.contraction == np.inf


def test_mu_inf_certificate_uses_the_lipschitz_scaling(rng):
    # x = sigmoid(Ax + b) with slopes in [0, 1/4]: x = y/4-scaling gives mu_inf(A / 4) < 1
    A = np.array([[1.5, 1.0], [1.0, -20.0]])
    assert 1 <= mu_inf(A) < 4 and pf_eigenvalue(A, "sigmoid") > 1
    assert not is_well_posed(A, "relu")  # no certificate for slopes up to 1
    wp = is_well_posed(A, "sigmoid")
    assert wp.certificate == "mu_inf" and wp.value == pytest.approx(mu_inf(A / 4))
    assert wp.alpha == pytest.approx(1 / (1 + 20 / 4))
    # the certified averaged iteration reaches the fixed point
    from lifted_idl import kernel
    from lifted_idl.activations import Sigmoid

    Z0 = rng.standard_normal((5, 2)) * 3
    res = kernel.averaged(A, Z0, Sigmoid(), wp.alpha, tol=1e-13, max_iter=5000)
    assert res.converged
    X = res.X
    np.testing.assert_allclose(X, Sigmoid()(X @ A.T + Z0), atol=1e-11)


def test_averaged_step_contracts_on_random_pairs(rng, random_A):
    for _ in range(5):
        A = random_A(rng, 8, 0.9) - np.diag(rng.uniform(0, 6, 8))
        mu = mu_inf(A)
        assert mu < 1
        alpha, c = averaged_step(A)
        assert c < 1
        b = rng.standard_normal(8)

        def T(x, A=A, alpha=alpha, b=b):
            return (1 - alpha) * x + alpha * np.maximum(A @ x + b, 0)

        for _ in range(50):
            x, y = rng.standard_normal((2, 8)) * 3
            assert np.abs(T(x) - T(y)).max() <= c * np.abs(x - y).max() * (1 + 1e-12)


# ----------------------------------------------------------------------------------------------
# NE-MON parametrization
# ----------------------------------------------------------------------------------------------
def test_nemon_parametrization_property(rng):
    for trial in range(10):
        n = 2 + trial % 5
        T = rng.standard_normal((n, n)) * rng.uniform(0.1, 5)
        gamma = rng.uniform(-1, 0.99)
        A = nemon_parametrize(T, gamma)
        assert mu_inf(A) <= gamma + 1e-12
        # tight: rows with t_ii >= 0 reach gamma exactly
        if np.any(np.diag(T) >= 0):
            assert mu_inf(A) == pytest.approx(gamma)
        assert is_well_posed(A).well_posed  # gamma < 1
        # the inverse map
        T2 = nemon_parameter(A, gamma)
        np.testing.assert_allclose(nemon_parametrize(T2, gamma), A, atol=1e-12)
    with pytest.raises(ValueError, match="mu_inf"):
        nemon_parameter(np.eye(2), 0.5)
    with pytest.raises(ValueError, match="gamma"):
        nemon_parametrize(np.eye(2), np.nan)
    with pytest.raises(ValueError, match="T must be finite"):
        nemon_parametrize(np.array([[np.inf, 0], [0, 0]]), 0.5)


# ----------------------------------------------------------------------------------------------
# projection onto the inf-norm ball
# ----------------------------------------------------------------------------------------------
_CVX = {}


def _cvxpy_projection(A, kappa):
    """Reference: min ||X - A||_F^2 s.t. row l1 norms <= kappa, built once (DPP) per shape."""
    if A.shape not in _CVX:
        X = cp.Variable(A.shape)
        Ap = cp.Parameter(A.shape)
        kp = cp.Parameter(A.shape[0], nonneg=True)
        prob = cp.Problem(cp.Minimize(cp.sum_squares(X - Ap)), [cp.sum(cp.abs(X), axis=1) <= kp])
        assert prob.is_dpp()
        _CVX[A.shape] = (prob, X, Ap, kp)
    prob, X, Ap, kp = _CVX[A.shape]
    Ap.value = A
    kp.value = np.broadcast_to(np.asarray(kappa, dtype=float), (A.shape[0],)).copy()
    # a QP: OSQP with solution polishing recovers the active set exactly
    prob.solve(solver=cp.OSQP, eps_abs=1e-10, eps_rel=1e-10, polishing=True, max_iter=200000)
    assert prob.status == cp.OPTIMAL
    return X.value


def _hard_rows(rng):
    A = rng.standard_normal((14, 9))
    A[0] = 0.0  # zero row
    A[1] *= 0.01  # inside the ball
    A[2] = [1, -1, 1, 1, -1, 1, 0, 0, 0]  # ties
    A[3] = [2, 2, 2, -2, 0.5, 0.5, -0.5, 0, 0]  # ties at two levels
    A[4] = 0.0
    A[4, 3] = -7.0  # one nonzero
    A[5] = A[2] * 1e-8  # tiny row
    return A


@pytest.mark.parametrize("kappa", [0.0, 1e-9, 0.3, 1.0, 3.0])
def test_projection_matches_cvxpy(rng, kappa):
    A = _hard_rows(rng)
    ref = _cvxpy_projection(A, kappa)
    for method in ("sort", "bisection"):
        P = project_inf_norm_ball(A, kappa, method=method)
        np.testing.assert_allclose(P, ref, atol=1e-8)
        # feasible up to rounding of the row sums
        slack = 1e-13 * (1 + np.abs(A).sum(axis=1))
        assert np.all(np.abs(P).sum(axis=1) <= kappa + slack)


def test_projection_exact_optimality_conditions(rng):
    # KKT of the row problem: P = soft-threshold(a, theta), theta > 0 iff ||a||_1 > kappa,
    # and then ||P||_1 = kappa. Checked to rounding, much tighter than cvxpy.
    A = np.vstack([_hard_rows(rng), rng.standard_normal((30, 9)) * 3])
    kap = rng.uniform(0, 4, A.shape[0])
    kap[:3] = [0.0, 1e-12, 1e-6]
    P = project_inf_norm_ball(A, kap)
    for a, p, k in zip(A, P, kap, strict=True):
        if np.abs(a).sum() <= k:
            np.testing.assert_array_equal(p, a)
            continue
        assert np.abs(p).sum() == pytest.approx(k, rel=1e-12, abs=1e-15 * np.abs(a).sum())
        nz = p != 0
        assert np.all(np.sign(p[nz]) == np.sign(a[nz]))
        theta = (np.abs(a) - np.abs(p))[nz]
        if nz.any():
            np.testing.assert_allclose(theta, theta[0], rtol=1e-10, atol=1e-14)
            # entries set to zero are the ones with |a_j| <= theta
            assert np.all(np.abs(a[~nz]) <= theta[0] * (1 + 1e-12) + 1e-15)
        else:
            assert k <= 1e-15 * np.abs(a).sum()
    # sort and bisection agree
    Pb = project_inf_norm_ball(A, kap, method="bisection")
    np.testing.assert_allclose(P, Pb, atol=1e-10 * np.abs(A).max())


def test_projection_dtype_and_validation(rng):
    A = rng.standard_normal((5, 4)).astype(np.float32)
    P = project_inf_norm_ball(A, 0.5)
    assert P.dtype == np.float32
    np.testing.assert_allclose(P, project_inf_norm_ball(A.astype(np.float64), 0.5), atol=1e-6)
    assert project_inf_norm_ball(np.arange(6).reshape(2, 3), 1.0).dtype == np.float64
    Ain = rng.standard_normal((3, 3)) * 0.01
    Pin = project_inf_norm_ball(Ain, 10.0)
    np.testing.assert_array_equal(Pin, Ain)
    assert Pin is not Ain
    with pytest.raises(ValueError, match=r"kappa must be finite and >= 0; got kappa=-0.5"):
        project_inf_norm_ball(A, -0.5)
    with pytest.raises(ValueError, match="kappa must be a scalar or have one entry per row"):
        project_inf_norm_ball(A, np.ones(3))
    bad = A.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"A must be finite; got A\[1, 2\] = nan"):
        project_inf_norm_ball(bad, 0.5)
    with pytest.raises(ValueError, match="2-D"):
        project_inf_norm_ball(np.ones(4), 0.5)
    with pytest.raises(ValueError, match="method"):
        project_inf_norm_ball(A, 0.5, method="condat")


def test_bisection_warns_when_stopped_early_and_stays_feasible(rng):
    A = rng.standard_normal((6, 10))
    with pytest.warns(ConvergenceWarning, match="max_iter=3"):
        P = project_inf_norm_ball(A, 0.7, method="bisection", max_iter=3)
    assert np.abs(P).sum(axis=1).max() <= 0.7 + 1e-12


# the row kernel behind project_inf_norm_ball and the solvers' inner loops
def _exact_l1_projection(a, kappa):
    """Brute force in exact rational arithmetic: the soft threshold at the root theta of
    sum_j max(|a_j| - theta, 0) = kappa, found by trying every support size k (the root is
    theta_k = (sum of the k largest - kappa) / k when it lies in [s_{k+1}, s_k)); rounded once
    to float64 at the end."""
    s = sorted((Fraction(abs(float(x))) for x in a), reverse=True)
    kap = Fraction(float(kappa))
    if sum(s) <= kap:
        return np.asarray(a, dtype=np.float64).copy()
    theta, csum = s[0], Fraction(0)  # kappa = 0: everything goes to zero
    for k in range(1, len(s) + 1):
        csum += s[k - 1]
        t = (csum - kap) / k
        if (s[k] if k < len(s) else 0) <= t < s[k - 1]:
            theta = t
            break
    return np.array([float(np.sign(x) * max(Fraction(abs(float(x))) - theta, Fraction(0)))
                     for x in a])


def _kernel_rows(rng, n, d, dtype, frac_out):
    """Rows for the kernel: about ``frac_out`` of them outside the ball of radius 1 (scalar
    case), with ties, zero rows, -0.0 entries, a single nonzero, and rows exactly on their
    sphere (dyadic entries: every summation order gives their l1 norm exactly); the per-row
    radii put those rows on the sphere, one on it to rounding and one just outside."""
    V = rng.standard_normal((n, d)) * 0.5 / d  # l1 norms about 0.4
    out = rng.uniform(size=n) < frac_out
    V[out] *= rng.uniform(3.0, 50.0, (int(out.sum()), 1))
    V[::7] = np.round(V[::7] * 4) / 4  # ties (and zeros)
    V[1] = 0.0
    V[2] = -0.0
    V[3, 1:] = -0.0
    V[5] = np.round(rng.standard_normal(d) * 8) / 8
    V = V.astype(dtype)
    kap = rng.uniform(0.0, 3.0, n)
    kap[:2] = 0.0
    kap[5] = np.abs(V[5]).sum()  # exactly on the sphere
    kap[6] = 0.0 if d == 1 else float(np.abs(V[6]).max()) * 1e-3
    eps = float(np.finfo(dtype).eps)
    kap[7] = np.abs(V[7]).sum()  # on the sphere to rounding
    kap[8] = float(_sorted_norm(V[8])) * (1 - 8 * d * eps)  # just outside
    return V, kap.astype(dtype).astype(np.float64)


def _sorted_norm(v):
    """The l1 norm summed in decreasing order of magnitude, in v's dtype (the kernel's test
    for rows inside the ball)."""
    return np.cumsum(np.sort(np.abs(v))[::-1], dtype=v.dtype)[-1] if v.size else 0.0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape, frac_out", [((12, 7), 1.0), ((9, 1), 0.5), ((30, 9), 0.3),
                                             ((60, 24), 0.2), ((60, 24), 0.9)])
def test_l1_kernel_matches_exact_projection_and_kkt(dtype, shape, frac_out):
    """_project_l1_rows against the projection in rational arithmetic, one radius and one per
    row, small arrays (every row sorted) and large ones (rows outside found first, few or
    most of them): equal to a few ulps of the row's l1 norm; feasible to rounding; rows
    inside unchanged bit for bit (signed zeros too); on rows outside the KKT condition
    sum_j max(|a_j| - theta, 0) = kappa with one theta for every nonzero entry and
    |a_j| <= theta on the entries set to zero."""
    rng = np.random.default_rng(shape[0] * 100 + shape[1] + int(10 * frac_out))
    V, kap = _kernel_rows(rng, *shape, dtype, frac_out)
    eps = float(np.finfo(dtype).eps)
    d = shape[1]
    for kappa in (1.0, kap):
        P = _project_l1_rows(V, kappa)
        assert P.dtype == dtype and not np.shares_memory(P, V)
        for i, (a, p) in enumerate(zip(V, P, strict=True)):
            k = float(np.broadcast_to(kappa, (shape[0],))[i])
            norm1 = float(np.abs(a.astype(np.float64)).sum())
            scale = max(norm1, k, 1e-300)
            np.testing.assert_allclose(p, _exact_l1_projection(a, k), rtol=0,
                                       atol=4 * d * eps * scale)
            assert np.abs(p.astype(np.float64)).sum() <= k + 2 * d * eps * scale
            if _sorted_norm(a) <= np.asarray(k, dtype=dtype):
                assert np.array_equal(p, a) and np.array_equal(np.signbit(p), np.signbit(a))
                continue
            nz = p != 0
            theta = (np.abs(a) - np.abs(p)).astype(np.float64)
            if nz.any():
                assert np.all(np.sign(p[nz]) == np.sign(a[nz]))
                th = float(np.median(theta[nz]))
                np.testing.assert_allclose(theta[nz], th, rtol=0, atol=4 * eps * scale)
                assert np.all(np.abs(a[~nz]) <= th + 4 * eps * scale)
                kkt = np.maximum(np.abs(a.astype(np.float64)) - th, 0.0).sum()
                assert kkt == pytest.approx(k, rel=0, abs=4 * d * eps * scale)
            else:  # everything shrinks to zero only when kappa rounds to 0
                assert k <= 2 * d * eps * scale
    assert np.array_equal(_project_l1_rows(V[5:6], kap[5:6]), V[5:6])  # on the sphere


@pytest.mark.parametrize("shape, frac_out", [((10, 8), 0.5), ((60, 24), 0.2),
                                             ((60, 24), 0.9)])
def test_l1_kernel_in_place_on_views_and_the_same_on_every_path(shape, frac_out):
    """In place on a view (the first columns of a wider array, as the solvers call it), into
    another array, or into a new one: the same numbers and signed zeros, the other columns
    and the input untouched; and the same as projecting each row alone (a 1-row array takes
    the path that sorts every row, a large one finds the rows outside first)."""
    rng = np.random.default_rng(11)
    V, kap = _kernel_rows(rng, *shape, np.float64, frac_out)
    n, d = shape
    for kappa in (1.0, kap):
        want = np.vstack([_project_l1_rows(V[i:i + 1], np.atleast_1d(kappa)[i:i + 1]
                                           if np.ndim(kappa) else kappa) for i in range(n)])
        W = np.hstack([V, rng.standard_normal((n, 3))])
        W0 = W.copy()
        view = W[:, :d]
        assert _project_l1_rows(view, kappa, out=view) is view
        target = np.full_like(V, np.nan)
        got_out = _project_l1_rows(V, kappa, out=target)
        got_new = _project_l1_rows(V, kappa)
        assert got_out is target and np.array_equal(V, W0[:, :d])
        np.testing.assert_array_equal(W[:, d:], W0[:, d:])
        for got in (W[:, :d], got_out, got_new):
            assert np.array_equal(got, want) and np.array_equal(np.signbit(got),
                                                                np.signbit(want))
    assert _project_l1_rows(np.empty((3, 0)), 1.0).shape == (3, 0)


def test_l1_kernel_array_namespace_path_matches_numpy():
    """The branch that runs on another array namespace (CuPy) with its generic calls, run here
    on NumPy through a stand-in namespace: the same numbers and signed zeros as the NumPy
    branch, small and large arrays, one radius and one per row."""
    import types

    names = ("abs", "asarray", "reshape", "count_nonzero", "flatnonzero", "cumsum",
             "minimum", "maximum", "copysign")
    xp = types.SimpleNamespace(**{k: getattr(np, k) for k in names})
    rng = np.random.default_rng(12)
    for shape, frac_out in (((12, 7), 1.0), ((60, 24), 0.2), ((60, 24), 0.9)):
        for dtype in (np.float64, np.float32):
            V, kap = _kernel_rows(rng, *shape, dtype, frac_out)
            for kappa in (1.0, kap):
                want = _project_l1_rows(V, kappa)
                got = _project_l1_rows(V, kappa, xp=xp)
                assert np.array_equal(got, want)
                assert np.array_equal(np.signbit(got), np.signbit(want))


# ----------------------------------------------------------------------------------------------
# PF rescaling
# ----------------------------------------------------------------------------------------------
def test_rescale_preserves_predictions_and_reaches_the_norm_condition(rng, random_A):
    for activation in ("relu", "leaky_relu"):
        M = random_A(rng, 7, 0.8, kind="nonneg")
        S = np.diag(np.geomspace(1, 30, 7))
        A = S @ (M * np.sign(rng.standard_normal((7, 7)))) @ np.linalg.inv(S)
        assert inf_norm(A) > 1 and pf_eigenvalue(A) < 1
        model = ImplicitModel(A, rng.standard_normal((7, 3)), rng.standard_normal((2, 7)),
                              rng.standard_normal((2, 3)), b=rng.standard_normal(7),
                              c=rng.standard_normal(2), activation=activation)
        new = rescale_to_inf_norm(model)
        s = np.linalg.solve(np.eye(7) - np.abs(A), np.ones(7))
        assert inf_norm(new.A) < 1
        assert inf_norm(new.A) == pytest.approx(np.max(1 - 1 / s))
        U = rng.standard_normal((20, 3))
        np.testing.assert_allclose(new.predict(U), model.predict(U), atol=1e-9)
        np.testing.assert_allclose(new.equilibrium(U) * s, model.equilibrium(U), atol=1e-9)
        assert new.well_posedness.certificate == "inf_norm"


def test_rescale_keeps_low_rank_factors_and_dtype(rng):
    L = rng.random((6, 2)) * 0.4
    R = rng.random((6, 2)) * 0.4
    model = ImplicitModel.from_low_rank(L.astype(np.float32), R.astype(np.float32),
                                        rng.standard_normal((6, 3)).astype(np.float32),
                                        rng.standard_normal((1, 6)).astype(np.float32),
                                        np.zeros((1, 3), np.float32))
    new = rescale_to_inf_norm(model)
    assert new.dtype == np.float32 and new.factors is not None
    np.testing.assert_allclose(new.factors[0] @ new.factors[1].T, new.A, atol=1e-6)
    U = rng.standard_normal((10, 3)).astype(np.float32)
    np.testing.assert_allclose(new.predict(U), model.predict(U), rtol=1e-4, atol=1e-4)


def test_rescale_rejects_what_it_cannot_do(rng):
    A = np.array([[0.0, 1.2], [1.0, 0.0]])  # lambda_PF = sqrt(1.2) > 1
    model = ImplicitModel(A, np.eye(2), np.ones((1, 2)), np.zeros((1, 2)))
    with pytest.raises(IllPosedModelError, match="lambda_PF"):
        rescale_to_inf_norm(model)
    tanh = ImplicitModel(0.5 * A, np.eye(2), np.ones((1, 2)), np.zeros((1, 2)),
                         activation="tanh")
    with pytest.raises(ValueError, match="positively homogeneous"):
        rescale_to_inf_norm(tanh)


def test_inputs_with_nan_or_wrong_shape_are_named():
    with pytest.raises(ValueError, match=r"A must be finite; got A\[0, 1\] = inf"):
        inf_norm(np.array([[0.0, np.inf], [0.0, 0.0]]))
    with pytest.raises(ValueError, match=r"A must be a square 2-D array; got shape \(2, 3\)"):
        mu_inf(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="square"):
        is_well_posed(np.zeros(3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pf_eigenvalue(np.zeros((0, 0))) == 0.0


# ----------------------------------------------------------------------------------------------
# project_mu_inf [NEMON]
# ----------------------------------------------------------------------------------------------
def _cvx_project_mu(A, gamma):
    n = A.shape[0]
    Xv = cp.Variable((n, n))
    off = 1.0 - np.eye(n)
    g = np.broadcast_to(np.asarray(gamma, dtype=float), (n,))
    prob = cp.Problem(cp.Minimize(cp.sum_squares(Xv - A)),
                      [cp.diag(Xv) + cp.sum(cp.multiply(off, cp.abs(Xv)), axis=1) <= g])
    prob.solve(solver=cp.CLARABEL, tol_gap_abs=1e-11, tol_gap_rel=1e-11, tol_feas=1e-11)
    return Xv.value, prob.value


@pytest.mark.parametrize("n, gamma", [(1, 0.3), (2, -0.4), (4, 0.0), (7, 0.9), (12, 0.5)])
def test_project_mu_inf_matches_cvxpy(n, gamma):
    rng = np.random.default_rng(n)
    A = 1.5 * rng.standard_normal((n, n))
    if n > 1:
        A[0] = 0.01 * A[0]  # one row inside the set: untouched
    Xp = project_mu_inf(A, gamma)
    Xc, val = _cvx_project_mu(A, gamma)
    assert np.sum((Xp - A) ** 2) == pytest.approx(val, rel=1e-7, abs=1e-10)
    np.testing.assert_allclose(Xp, Xc, atol=1e-5)
    d = np.diag(Xp)
    rows = d + np.abs(Xp).sum(axis=1) - np.abs(d)
    assert rows.max() <= gamma + 1e-12
    inside = np.diag(A) + np.abs(A).sum(axis=1) - np.abs(np.diag(A)) <= gamma
    np.testing.assert_array_equal(Xp[inside], A[inside])
    assert not inside.all()


def test_project_mu_inf_kkt_and_properties():
    """Exact optimality: A - X = theta * (subgradient of the row measure at X), theta >= 0."""
    rng = np.random.default_rng(7)
    n = 9
    A = rng.standard_normal((n, n))
    gam = rng.uniform(-0.5, 0.9, n)  # per-row bounds
    X = project_mu_inf(A, gam)
    for i in range(n):
        r = A[i] - X[i]
        meas = X[i, i] + np.abs(X[i]).sum() - abs(X[i, i])
        if np.allclose(r, 0):
            assert meas <= gam[i] + 1e-12
            continue
        theta = r[i]  # the diagonal enters with slope 1
        assert theta > 0 and meas == pytest.approx(gam[i], abs=1e-12)
        off = np.arange(n) != i
        nz = off & (X[i] != 0)
        np.testing.assert_allclose(r[nz], theta * np.sign(X[i, nz]), rtol=1e-10, atol=1e-12)
        assert np.all(np.abs(r[off & (X[i] == 0)]) <= theta + 1e-12)
    np.testing.assert_allclose(project_mu_inf(X, gam), X, rtol=0, atol=1e-14)  # idempotent
    # the NE-MON parametrization lands inside the set; float32 stays float32
    T = rng.standard_normal((n, n))
    Am = nemon_parametrize(T, 0.5)
    np.testing.assert_array_equal(project_mu_inf(Am, 0.5), Am)
    assert project_mu_inf(A.astype(np.float32), 0.5).dtype == np.float32
    assert mu_inf(project_mu_inf(A, 0.5)) <= 0.5 + 1e-12


def test_project_mu_inf_bad_input():
    with pytest.raises(ValueError, match="square"):
        project_mu_inf(np.zeros((2, 3)), 0.5)
    with pytest.raises(ValueError, match="gamma"):
        project_mu_inf(np.zeros((2, 2)), np.array([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="gamma"):
        project_mu_inf(np.zeros((2, 2)), float("nan"))
    with pytest.raises(ValueError, match="NaN"):
        project_mu_inf(np.array([[np.inf, 0.0], [0.0, 0.0]]), 0.5)


def test_dag_levels_checks_its_tolerance():
    """A NaN or negative tol is refused (NaN used to call a fully cyclic A acyclic)."""
    from lifted_idl.wellposedness import dag_levels

    assert dag_levels(np.ones((3, 3))) is None
    for tol in (np.nan, -1.0):
        with pytest.raises(ValueError, match="tol"):
            dag_levels(np.ones((3, 3)), tol=tol)
