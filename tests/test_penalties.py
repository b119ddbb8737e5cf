"""Tests of the penalties (lifted_idl.penalties), chiefly the group penalty of [IDL (5.1)]
(theory §6).

The prox is checked against its optimality conditions, the Moreau identity and cvxpy; the
fixed-part l2 group prox ``_prox_l2_fixed`` (prox of :math:`t\\|(v, d)\\|_2` in v,
:math:`\\|d\\| = \\delta` fixed) on norms down to 1e-300 and near the threshold
:math:`\\|v\\| = t`, against a 60-digit root (mpmath), its optimality conditions and its
scale equivariance. The blocks that accept the group penalty are tested in ``tests/blocks/``.
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
from _helpers import CLARABEL_STATUS, ORDS, RTOL, fixed_part, rel

from lifted_idl.blocks import solve_ab
from lifted_idl.model import ImplicitModel
from lifted_idl.penalties import (
    GroupPenalty,
    GroupView,
    L1Penalty,
    L2Penalty,
    NoPenalty,
    Penalty,
    _prox_l2_fixed,
    group_prox,
)
from lifted_idl.robustness.penalties import (
    InputScaledPenalty,
    LipschitzSurrogatePenalty,
    SensitivityPenalty,
)
from lifted_idl.wellposedness import project_inf_norm_ball

pytestmark = CLARABEL_STATUS


# --------------------------------------------------------------------------------------------
# the one interface: value / grad / prox on the parameter dict, restrict to a block
# --------------------------------------------------------------------------------------------
KEYS = ("A", "B", "C", "D")
ALL_PENALTIES = {
    "none": NoPenalty(),
    "l2": L2Penalty(0.3),
    "l1": L1Penalty(0.2),
    "group2": GroupPenalty(0.4, 2),
    "group_inf": GroupPenalty(0.4, np.inf),
    "lipschitz": LipschitzSurrogatePenalty(0.5, smoothing=0.1),
    "sensitivity": SensitivityPenalty(0.5),
    "scaled": InputScaledPenalty(SensitivityPenalty(0.5), [0.5, 2.0, 1.0, 3.0, 0.7]),
}
PROX_PENALTIES = ["none", "l2", "l1", "group2", "group_inf"]
MODEL_PENALTIES = ["lipschitz", "sensitivity", "scaled"]


def _point(seed, n=4, p=5, q=3):
    """A generic parameter dict (no zero entries, distinct row norms; ||A||_inf < 1)."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n))
    A *= 0.6 / np.abs(A).sum(axis=1).max()
    return {"A": A, "B": rng.standard_normal((n, p)), "C": rng.standard_normal((q, n)),
            "D": rng.standard_normal((q, p)), "b": rng.standard_normal(n)}


@pytest.mark.parametrize("name", list(ALL_PENALTIES))
def test_every_penalty_takes_the_parameter_dict_or_a_model(name):
    pen = ALL_PENALTIES[name]
    assert isinstance(pen, Penalty)
    P = _point(0)
    model = ImplicitModel(P["A"], P["B"], P["C"], P["D"], b=P["b"])
    assert pen.value(model) == pen.value(P)
    assert pen.value(P) >= 0.0
    with pytest.raises(ValueError, match="missing 'D'"):
        pen.value({k: P[k] for k in ("A", "B", "C")})


@pytest.mark.parametrize("name", [k for k, v in ALL_PENALTIES.items() if v.smooth])
def test_grad_agrees_with_finite_differences(name):
    pen = ALL_PENALTIES[name]
    P, h = _point(1), 1e-6
    g = pen.grad(P)
    assert set(g) == set(pen.keys)
    for k in pen.keys:
        fd = np.zeros_like(P[k])
        for i in np.ndindex(P[k].shape):
            up, down = dict(P, **{k: P[k].copy()}), dict(P, **{k: P[k].copy()})
            up[k][i] += h
            down[k][i] -= h
            fd[i] = (pen.value(up) - pen.value(down)) / (2 * h)
        np.testing.assert_allclose(g[k], fd, rtol=1e-6, atol=1e-7, err_msg=k)


@pytest.mark.parametrize("name", PROX_PENALTIES)
@pytest.mark.parametrize("step", [0.3, 1.7])
def test_prox_is_the_prox(name, step):
    r"""prox(params, t) minimises 1/2||V - params||^2 + t pen(V) (over the penalised keys): it
    matches cvxpy on the penalty's own cvxpy form, and no perturbation does better."""
    pen = ALL_PENALTIES[name]
    P = _point(2)
    V = pen.prox(P, step)
    assert set(V) == set(pen.keys)

    def f(W):
        return (0.5 * sum(float(np.sum((W[k] - P[k]) ** 2)) for k in pen.keys)
                + step * pen.value(dict(P, **W)))

    x = {k: cp.Variable(P[k].shape) for k in pen.keys}
    expr = pen.cvxpy(dict(P, **x))
    obj = 0.5 * sum(cp.sum_squares(x[k] - P[k]) for k in pen.keys) + step * expr
    cp.Problem(cp.Minimize(obj)).solve(solver=cp.CLARABEL)
    ref = {k: x[k].value for k in pen.keys}
    assert f(V) <= f(ref) + 1e-9
    for k in pen.keys:
        np.testing.assert_allclose(V[k], ref[k], atol=1e-5)
    rng = np.random.default_rng(3)
    for _ in range(20):
        W = {k: V[k] + 1e-3 * rng.standard_normal(V[k].shape) for k in pen.keys}
        assert f(V) <= f(W) + 1e-12


@pytest.mark.parametrize("name", PROX_PENALTIES)
def test_restricted_views_agree_with_the_full_penalty(name):
    """Entrywise penalties: the views' values add up to the value, and the views' prox (and
    grad) are the penalty's on the block's keys. The group penalty: the view of either block,
    at the other block's part, is the whole value."""
    pen = ALL_PENALTIES[name]
    P = _point(4)
    AB, CD = np.hstack([P["A"], P["B"]]), np.hstack([P["C"], P["D"]])
    if isinstance(pen, GroupPenalty):
        want = pen.value(P)
        assert pen.restrict("ab", P).value(AB) == pytest.approx(want, rel=1e-13)
        assert pen.restrict("cd", P).value(CD) == pytest.approx(want, rel=1e-13)
        with pytest.raises(ValueError, match="needs the fixed D"):
            pen.restrict("ab")
        return
    ab, cd = pen.restrict("ab"), pen.restrict("cd")
    assert ab.value(AB) + cd.value(CD) == pytest.approx(pen.value(P), rel=1e-13)
    full = pen.prox(P, 0.7)
    np.testing.assert_array_equal(ab.prox(AB, 0.7), np.hstack([full["A"], full["B"]]))
    np.testing.assert_array_equal(cd.prox(CD, 0.7), np.hstack([full["C"], full["D"]]))
    if pen.smooth:
        g = pen.grad(P)
        np.testing.assert_array_equal(ab.grad(AB), np.hstack([g["A"], g["B"]]))


@pytest.mark.parametrize("name", MODEL_PENALTIES)
def test_model_penalties_have_no_block_view(name):
    """A penalty on all of (A, B, C, D) at once has no view on one block: restricting it, or
    handing it to a block solver or as pen_ab, is an error that says where it belongs."""
    pen = ALL_PENALTIES[name]
    with pytest.raises(ValueError, match="model_penalty"):
        pen.restrict("ab")
    rng = np.random.default_rng(5)
    X, U = rng.random((10, 4)), rng.standard_normal((10, 5))
    with pytest.raises(ValueError, match="model_penalty"):
        solve_ab(X, U, X, 1.0, 0.5, "relu", pen)


# --------------------------------------------------------------------------------------------
# values, forms, prox
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ord", ORDS)
def test_values_and_cvxpy_forms_agree(ord):
    rng = np.random.default_rng(0)
    n, q, p = 4, 2, 6
    A, B = rng.standard_normal((n, n)), rng.standard_normal((n, p))
    C, D = rng.standard_normal((q, n)), rng.standard_normal((q, p))
    G = GroupPenalty(0.7, ord)
    r = 2 if ord == 2 else np.inf
    want = 0.7 * sum(np.linalg.norm(np.concatenate([B[:, j], D[:, j]]), r) for j in range(p))
    assert G.value({"B": B, "D": D}) == pytest.approx(want, rel=1e-13)
    # each block's view, at the other block's part, is the whole penalty (+ its ridge)
    assert G.restrict("ab", {"D": D}).value(np.hstack([A, B])) == pytest.approx(want, rel=1e-13)
    assert G.restrict("cd", {"B": B}).value(np.hstack([C, D])) == pytest.approx(want, rel=1e-13)
    with_ridge = G.restrict("cd", {"B": B}, ridge=0.3).value(np.hstack([C, D]))
    assert with_ridge == pytest.approx(want + 0.15 * np.sum(C * C), rel=1e-13)
    expr = G.cvxpy({"B": cp.Constant(B), "D": cp.Constant(D)})
    assert float(expr.value) == pytest.approx(want, rel=1e-9)
    expr = G.restrict("cd", {"B": B}, ridge=0.3).cvxpy(cp.Constant(np.hstack([C, D])))
    assert float(expr.value) == pytest.approx(with_ridge, rel=1e-9)


@pytest.mark.parametrize("ord", ORDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_partial_prox_matches_cvxpy(ord, seed):
    rng = np.random.default_rng(seed)
    r, k, p = 4, 3, 7
    V = rng.standard_normal((r, p)) * rng.uniform(0.05, 3.0, p)
    F = fixed_part(rng, k, p)
    t = rng.uniform(0.2, 2.0)
    pen = GroupView(1.3, F, ord)
    X = pen.prox_part(V, t)

    def f(Xv):
        return 0.5 * np.sum((Xv - V) ** 2) + t * pen.value_part(Xv)

    x = cp.Variable((r, p))
    prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(x - V) + t * pen.cvxpy(
        cp.hstack([np.zeros((r, 1)), x]))))
    prob.solve(solver=cp.CLARABEL)
    assert f(X) <= f(x.value) + 1e-10
    assert rel(f(X), f(x.value)) < RTOL
    assert np.abs(X - x.value).max() < 1e-4


@pytest.mark.parametrize("seed", [0, 1])
def test_partial_l2_prox_optimality_conditions(seed):
    r"""x - v + t x / rho = 0 with rho = ||(x, d)|| where the result is nonzero; ||v|| <= t
    where it is zero (d = 0)."""
    rng = np.random.default_rng(seed)
    r, p = 5, 40
    V = rng.standard_normal((r, p)) * np.exp(rng.uniform(-6, 2, p))
    delta = np.where(rng.random(p) < 0.3, 0.0, np.exp(rng.uniform(-8, 1, p)))
    F = np.vstack([delta, np.zeros(p)])
    t = np.exp(rng.uniform(-3, 1, p))
    X = GroupView(1.0, F, 2).prox_part(V, t)
    rho = np.sqrt((X * X).sum(axis=0) + delta ** 2)
    nz = rho > 0
    res = X[:, nz] - V[:, nz] + t[nz] * X[:, nz] / rho[nz]
    assert np.abs(res).max() <= 1e-13 * max(1.0, np.abs(V).max())
    zero = ~nz
    assert zero.any()
    assert np.all(np.linalg.norm(V[:, zero], axis=0) <= t[zero] * (1 + 1e-12))


@pytest.mark.parametrize("ord", ORDS)
def test_joint_prox_closed_forms(ord):
    """Block soft threshold (l2) and Moreau's identity with the l1-ball projection (l-inf)."""
    rng = np.random.default_rng(3)
    n, q, p = 4, 2, 9
    B, D = rng.standard_normal((n, p)), rng.standard_normal((q, p))
    B[:, 0] *= 0.01
    D[:, 0] *= 0.01
    step, alpha = 0.8, 1.5
    Bn, Dn = group_prox(B, D, step, alpha, ord)
    W = np.vstack([B, D])
    Wn = np.vstack([Bn, Dn])
    t = step * alpha
    if ord == 2:
        nrm = np.linalg.norm(W, axis=0)
        want = W * np.maximum(1.0 - t / nrm, 0.0)
    else:
        want = W - project_inf_norm_ball(W.T.copy(), t).T
    np.testing.assert_allclose(Wn, want, atol=1e-13)
    assert np.all(Wn[:, 0] == 0)
    # the GroupPenalty method and per-group steps give the same map
    new = GroupPenalty(alpha, ord).prox({"B": B, "D": D}, np.full(p, step))
    Bm, Dm = new["B"], new["D"]
    np.testing.assert_allclose(Bm, Bn, atol=1e-15)
    np.testing.assert_allclose(Dm, Dn, atol=1e-15)


def test_prox_step_shapes_and_errors():
    rng = np.random.default_rng(4)
    F = rng.standard_normal((2, 5))
    pen = GroupView(0.5, F, 2, block="cd", ridge=0.2)
    W = rng.standard_normal((3, 8))
    # per-row steps that are all equal act as a scalar step
    np.testing.assert_allclose(pen.prox(W, np.full((3, 1), 0.4)), pen.prox(W, 0.4), atol=1e-15)
    out = pen.prox(W, 0.4)
    np.testing.assert_allclose(out[:, :3], W[:, :3] / (1 + 0.4 * 0.2), atol=1e-15)
    with pytest.raises(ValueError, match="one step per group"):
        pen.prox(W, np.array([[0.1], [0.2], [0.3]]))
    with pytest.raises(ValueError, match="ord must be 2 or np.inf"):
        GroupPenalty(1.0, ord=1)
    with pytest.raises(ValueError, match="alpha must be finite and >= 0"):
        GroupPenalty(-1.0)
    with pytest.raises(ValueError, match="ridge must be finite"):
        GroupPenalty(1.0).restrict("cd", {"B": F}, ridge=-1.0)
    with pytest.raises(ValueError, match="same number of columns"):
        group_prox(np.zeros((2, 3)), np.zeros((1, 4)), 1.0, 1.0)
    with pytest.raises(ValueError, match="at least 5 columns"):
        pen.value(np.zeros((2, 4)))


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
