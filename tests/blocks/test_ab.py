"""Correctness of the fast group-penalised (A, B) block and of the fixed-part l2 group prox on
the edge cases that made them slow (theory §5, §7).

* ``_prox_l2_fixed`` (prox of :math:`t\\|(v, d)\\|_2` in v, :math:`\\|d\\| = \\delta` fixed) on
  columns and fixed parts of norms down to 1e-300, near the threshold :math:`\\|v\\| = t`:
  against a 50-digit root (mpmath) and its optimality conditions, and its scale equivariance;
* the row-separable majorant of :func:`~lifted_idl.blocks.ab._ab_group_newton` (its row
  searches and safe steps rely on it): it bounds the objective and touches it at the current
  point, for both group norms;
* the face Newton method (l2, and the l-inf variant behind ``_LINF_SOLVER``) on designs shaped
  like those of the BCD loop (states affine in U on the samples: singular Hessians), with zero,
  tiny (1e-14) and regular fixed parts: against the cvxpy formulation (objective within 1e-6
  relative and never above it beyond rounding, KKT residual), also at the BCD tolerance
  ``tol=1e-6``, where the stopping test must not stop short in the flat directions.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_group_penalty import ORDS, RTOL, ab_kkt_residual, rel

from lifted_idl.activations import ReLU, Tanh
from lifted_idl.blocks import ab as ab_module
from lifted_idl.blocks import ab_objective, solve_ab
from lifted_idl.blocks._common import project_l1_rows
from lifted_idl.penalties import GroupPenalty, _prox_l2_fixed

pytestmark = pytest.mark.filterwarnings("ignore:.*CLARABEL returned status:UserWarning",
                                        "ignore:.*CLARABEL returned status")


# --------------------------------------------------------------------------------------------
# the fixed-part l2 prox
# --------------------------------------------------------------------------------------------
def _shrink_mp(a, delta, t):
    """The shrink factor rho / (rho + t) of the prox, rho the root of
    rho^2 [(rho + t)^2 - a^2] = delta^2 (rho + t)^2, by bisection with 60 digits."""
    mpmath = pytest.importorskip("mpmath")
    with mpmath.workdps(60):
        a, d, t = mpmath.mpf(a), mpmath.mpf(delta), mpmath.mpf(t)

        def h(r):
            return r * r * ((r + t) ** 2 - a * a) - d * d * (r + t) ** 2

        lo, hi = max(mpmath.mpf(0), a - t), mpmath.sqrt(a * a + d * d)
        for _ in range(400):
            mid = (lo + hi) / 2
            if h(mid) > 0:
                hi = mid
            else:
                lo = mid
        rho = (lo + hi) / 2
        return float(rho / (rho + t))


SCALES = [1e-300, 1e-200, 1e-14, 1e-3, 1.0, 1e3]


@pytest.mark.parametrize("a", SCALES)
@pytest.mark.parametrize("delta", [1e-300, 1e-200, 1e-14, 1e-3, 1.0, 1e3])
@pytest.mark.parametrize("t", [1e-12, 1e-3, 1.0, 1e3])
def test_prox_l2_fixed_extreme_scales_match_high_precision(a, delta, t):
    rng = np.random.default_rng(0)
    v = rng.standard_normal(4)
    v *= a / np.linalg.norm(v)
    x = _prox_l2_fixed(v[:, None], np.array([delta]), np.array([t]))[:, 0]
    assert np.all(np.isfinite(x))
    want = _shrink_mp(a, delta, t)
    # x = s v with the exact shrink s, to rounding
    np.testing.assert_allclose(x, want * v, rtol=1e-12, atol=1e-15 * a)


@pytest.mark.parametrize("k", [1, 4, 8, 12, 15])
@pytest.mark.parametrize("side", [-1, 1])
def test_prox_l2_fixed_near_the_threshold(k, side):
    """||v|| = t (1 +- 10^-k) with a tiny fixed part: the regime where rho ~ delta^(2/3)."""
    t = 0.7
    a = t * (1 + side * 10.0 ** -k)
    v = np.array([[a * 0.6], [a * 0.8]])
    for delta in (1e-14, 1e-8, 1e-3):
        x = _prox_l2_fixed(v, np.array([delta]), np.array([t]))
        np.testing.assert_allclose(x, _shrink_mp(a, delta, t) * v, rtol=1e-11, atol=1e-16)


def test_prox_l2_fixed_optimality_and_scale_equivariance():
    """Many columns at once, norms and fixed parts spread over 600 decades: x = s v with
    s in [0, 1], stationarity x - v + t x / rho = 0 (relative to |v|, in variables scaled by
    the column's largest input, wherever x does not underflow), and
    prox(c v, c delta, c t) = c prox(v, delta, t)."""
    rng = np.random.default_rng(1)
    r, p = 3, 400
    V = rng.standard_normal((r, p)) * np.exp(rng.uniform(-650, 5, p))
    delta = np.exp(rng.uniform(-690, 3, p))
    t = np.exp(rng.uniform(-30, 3, p))
    X = _prox_l2_fixed(V, delta, t)
    assert np.all(np.isfinite(X))
    cols = np.arange(p)
    k = np.abs(V).argmax(axis=0)
    s = X[k, cols] / V[k, cols]
    assert np.all((s >= 0) & (s <= 1))
    np.testing.assert_allclose(X, s * V, rtol=1e-13, atol=1e-300)
    c = np.maximum(np.maximum(np.abs(V).max(axis=0), delta), t)
    Xn, Vn, dn, tn = X / c, V / c, delta / c, t / c
    mx = np.maximum(np.abs(Xn).max(axis=0), dn)
    rho = mx * np.sqrt(((Xn / mx) ** 2).sum(axis=0) + (dn / mx) ** 2)
    res = np.abs(Xn - Vn + tn * Xn / rho).max(axis=0) / np.abs(Vn).max(axis=0)
    normal = np.abs(X).min(axis=0) > 1e-280
    assert normal.sum() > p // 4
    assert res[normal].max() < 1e-11
    keep = np.abs(X).min(axis=0) > 1e-180  # no underflow at either scale
    for scale in (1e-100, 1e100):
        Xc = _prox_l2_fixed(V * scale, delta * scale, t * scale)
        np.testing.assert_allclose(Xc[:, keep], X[:, keep] * scale, rtol=1e-12, atol=0)


def test_prox_l2_fixed_degenerate_inputs():
    """Zero columns, zero steps, and a zero fixed part (the block soft threshold)."""
    V = np.array([[0.0, 3.0, 3.0, 1e-14, 2.0], [0.0, 4.0, 4.0, 0.0, 0.0]])
    delta = np.array([1.0, 0.0, 0.0, 0.0, 1e-14])
    t = np.array([1.0, 2.0, 6.0, 1.0, 0.0])
    X = _prox_l2_fixed(V, delta, t)
    np.testing.assert_array_equal(X[:, 0], 0.0)
    np.testing.assert_allclose(X[:, 1], V[:, 1] * (1 - 2.0 / 5.0), rtol=1e-15)
    np.testing.assert_array_equal(X[:, 2], 0.0)
    np.testing.assert_array_equal(X[:, 3], 0.0)
    np.testing.assert_array_equal(X[:, 4], V[:, 4])


# --------------------------------------------------------------------------------------------
# the row-separable majorant of the group Newton method
# --------------------------------------------------------------------------------------------
def bcd_like_instance(seed, act, m=80, n=5, p=7, q=2, fixed="mixed"):
    """An (A, B) block shaped like those of the BCD loop: the states are affine in U on the
    samples (all positive, so the ReLU is active everywhere: a rank-deficient design and
    singular row Hessians), one state with a real ReLU pattern, and a fixed part D with a zero
    column, a tiny (1e-14) one, a small one and regular ones."""
    rng = np.random.default_rng(seed)
    U = rng.standard_normal((m, p))
    X = U @ (0.3 * rng.standard_normal((p, n)))
    X = X - X.min(axis=0) + 0.1
    X[:, 0] = np.maximum(rng.standard_normal(m), 0.0)
    A0 = rng.standard_normal((n, n))
    A0 *= 0.8 / np.abs(A0).sum(axis=1, keepdims=True)
    B0 = 0.3 * rng.standard_normal((n, p))
    B0[:, p - 3:] = 0.0
    Z0 = X @ A0.T + U @ B0.T + 0.2 + 0.05 * rng.standard_normal((m, n))
    P = np.maximum(Z0, 0.0) if isinstance(act, ReLU) else np.tanh(Z0)
    lam = rng.uniform(5.0, 15.0, n)
    D = 0.3 * rng.standard_normal((q, p))
    if fixed == "mixed":
        D[:, p - 3] = 0.0
        D[:, p - 2] *= 1e-14
        D[:, p - 1] *= 1e-4
    elif fixed == "zero":
        D[:] = 0.0
    elif fixed == "tiny":
        D *= 1e-14
    return X, U, P, lam, D


def group_problem(seed, ord, fixed="mixed", alpha=0.05, ridge=0.0):
    act = ReLU()
    X, U, P, lam, D = bcd_like_instance(seed, act, fixed=fixed)
    pen = GroupPenalty(alpha, ord).for_ab(D, ridge=ridge)
    return ab_module._GroupAB(X, U, P, lam, 0.9, act, pen, True)


def random_point(rng, prob, zero_col=True):
    n, p, d = prob.n, prob.p, prob.d
    W = 0.3 * rng.standard_normal((n, d))
    W[:, :n] = project_l1_rows(W[:, :n], prob.kappa)
    if zero_col:
        W[:, n + p - 3] = 0.0  # a zero column (its fixed part is zero too)
        W[:, n + p - 2] *= 1e-13
    return W


@pytest.mark.parametrize("ord", ORDS)
@pytest.mark.parametrize("ridge", [0.0, 0.1])
def test_row_majorant_bounds_the_objective_and_touches_it(ord, ridge):
    rng = np.random.default_rng(2)
    prob = group_problem(3, ord, ridge=ridge)
    W = random_point(rng, prob)
    maj = ab_module._RowMajorant(prob, W)
    f0 = prob.value(W)[0]
    s0 = maj.values(W, prob.all)[0]
    for scale in (1e-8, 1e-3, 0.1, 1.0):
        for _ in range(20):
            Wt = W + scale * rng.standard_normal(W.shape) * (rng.random(W.shape) < 0.5)
            ft = prob.value(Wt)[0]
            st = maj.values(Wt, prob.all)[0]
            # F(Wt) - F(W) <= sum_i S_i(Wt) - S_i(W)
            assert ft - f0 <= (st - s0).sum() + 1e-12 * max(1.0, abs(f0))
    # tight at W: moving one row only, the majorant's change is at least the objective's,
    # and equal to first order along a smooth direction
    i = 1
    n, p = prob.n, prob.p
    step = np.zeros_like(W)
    step[i] = rng.standard_normal(W.shape[1])
    step[i, n + p - 3:n + p - 1] = 0.0  # off the zero and the tiny column (kink, curvature)
    if ord != 2:  # off the entries at their column's maximum (kinks)
        at = np.abs(W[i, n:n + p]) >= maj.mu
        step[i, n:n + p][at] = 0.0
    g = prob.grad(W)[0]
    slope = maj.slopes(W, g, step)
    h = 1e-7
    fd = (maj.values(W + h * step, prob.all)[0] - s0) / h
    np.testing.assert_allclose(fd[i], slope[i], rtol=1e-4, atol=1e-9)
    np.testing.assert_array_equal(slope[np.arange(prob.n) != i], 0.0)


@pytest.mark.parametrize("ord", ORDS)
def test_row_majorant_safe_step_decreases_every_row(ord):
    """The per-row fallback: the majorant's prox-gradient step with the safe row steps
    decreases every row's majorant (sufficient decrease), hence the objective."""
    rng = np.random.default_rng(4)
    prob = group_problem(5, ord, ridge=0.05)
    W = random_point(rng, prob)
    maj = ab_module._RowMajorant(prob, W)
    g = prob.grad(W)[0]
    Wn = maj.prox_step(W, g, prob.safe_row)
    s0 = maj.values(W, prob.all)[0]
    s1 = maj.values(Wn, prob.all)[0]
    dec = 0.5 / prob.safe_row * ((Wn - W) ** 2).sum(axis=1)
    assert np.all(s1 <= s0 - dec + 1e-12 * np.abs(s0))
    assert prob.value(Wn)[0] < prob.value(W)[0]
    assert np.all(np.abs(Wn[:, :prob.n]).sum(axis=1) <= prob.kappa * (1 + 1e-12))


# --------------------------------------------------------------------------------------------
# the block solves against cvxpy
# --------------------------------------------------------------------------------------------
@pytest.fixture(params=ORDS, ids=["l2", "linf"])
def group_ord(request, monkeypatch):
    """The group norm; for l-inf, the face Newton method (``_LINF_SOLVER = "newton"``)."""
    if request.param != 2:
        monkeypatch.setattr(ab_module, "_LINF_SOLVER", "newton")
    return request.param


def check_against_cvxpy(X, U, P, lam, kappa, act, pen, rtol=RTOL, **kw):
    fast = solve_ab(X, U, P, lam, kappa, act, pen, **kw)
    ref = solve_ab(X, U, P, lam, kappa, act, pen, method="cvxpy", tol=1e-10)
    assert fast.solver == "group_newton"
    assert fast.converged
    assert fast.objective <= ref.objective + 1e-9 * abs(ref.objective)
    assert rel(fast.objective, ref.objective) < rtol
    A, B, b = fast.value
    assert np.abs(A).sum(axis=1).max() <= kappa * (1 + 1e-10)
    assert fast.objective == pytest.approx(ab_objective(X, U, P, lam, kappa, act, pen, A, B, b),
                                           rel=1e-12)
    return fast, ref


@pytest.mark.parametrize("act", [ReLU(), Tanh()], ids=["relu", "tanh"])
@pytest.mark.parametrize("fixed", ["mixed", "zero", "tiny"])
@pytest.mark.parametrize("seed", [0, 1])
def test_group_newton_rank_deficient_design_matches_cvxpy(group_ord, act, fixed, seed):
    X, U, P, lam, D = bcd_like_instance(seed, act, fixed=fixed)
    pen = GroupPenalty(0.05, group_ord).for_ab(D)
    fast, ref = check_against_cvxpy(X, U, P, lam, 0.9, act, pen)
    A, B, b = fast.value
    assert ab_kkt_residual(X, U, P, lam, 0.9, act, pen, A, B, b) < 1e-5
    assert np.all(np.isfinite(B))
    if fixed == "zero":
        # a plain group lasso on B: the columns cvxpy zeroes are exactly zero
        zero_ref = np.abs(ref.value[1]).max(axis=0) < 1e-7
        assert np.all(B[:, zero_ref] == 0.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_group_newton_bcd_tolerance_does_not_stop_short(group_ord, seed):
    """At the BCD loop's tolerance (tol=1e-6, max_iter=100) the solve still ends within 1e-6
    (relative) of the cvxpy optimum: in the flat directions of a rank-deficient design the
    prox-gradient residual alone can pass 1e-3 above it; the Newton decrement test keeps
    going. Also from a warm start, as in BCD."""
    act = ReLU()
    X, U, P, lam, D = bcd_like_instance(10 + seed, act, m=120)
    pen = GroupPenalty(0.01, group_ord).for_ab(D)
    fast, ref = check_against_cvxpy(X, U, P, lam, 0.9, act, pen, tol=1e-6, max_iter=100)
    rng = np.random.default_rng(seed)
    A, B, b = ref.value
    init = (project_l1_rows(A + 0.05 * rng.standard_normal(A.shape), 0.9),
            B + 0.05 * rng.standard_normal(B.shape), b)
    check_against_cvxpy(X, U, P, lam, 0.9, act, pen, tol=1e-6, max_iter=100, init=init)
    # started at its own solution it stops at once, where it is
    again = solve_ab(X, U, P, lam, 0.9, act, pen, tol=1e-6, init=fast.value)
    assert again.n_iter <= 2
    assert again.objective <= fast.objective + 1e-12 * abs(fast.objective)


def test_group_newton_large_strength_and_ridge(group_ord):
    """A strength that zeroes every column of B (zero fixed part), and a ridge on A."""
    act = ReLU()
    X, U, P, lam, D = bcd_like_instance(7, act)
    big = solve_ab(X, U, P, lam, 0.9, act, GroupPenalty(50.0, group_ord).for_ab(0 * D))
    assert big.converged
    assert np.all(big.value[1] == 0.0)
    pen = GroupPenalty(0.05, group_ord).for_ab(D, ridge=0.1)
    check_against_cvxpy(X, U, P, lam, 0.9, act, pen)


def test_linf_newton_ties_the_column_maxima(monkeypatch):
    """l-inf: the columns of B whose maximum is a variable (above the fixed part) attain it at
    several rows at the solution; the Newton method lands on the tie exactly (as cvxpy)."""
    monkeypatch.setattr(ab_module, "_LINF_SOLVER", "newton")
    act = ReLU()
    X, U, P, lam, D = bcd_like_instance(3, act, fixed="zero")
    pen = GroupPenalty(0.02, np.inf).for_ab(D)
    fast, ref = check_against_cvxpy(X, U, P, lam, 0.9, act, pen)
    B = fast.value[1]
    absB = np.abs(B)
    top = absB.max(axis=0)
    tied_cols = 0
    for j in np.flatnonzero(top > 1e-8):
        at_top = np.isclose(absB[:, j], top[j], rtol=1e-9, atol=0)
        tied_cols += at_top.sum() > 1
    assert tied_cols >= 1
