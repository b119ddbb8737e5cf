"""The LP relaxation of [IDL Thm 4.3]: soundness, ordering, exactness, reuse, refusals."""

import pickle

import cvxpy as cp
import numpy as np
import pytest
from _helpers import box_points, card_points

from lifted_idl import ImplicitModel
from lifted_idl.exceptions import BoundConditionError, SolverError
from lifted_idl.robustness import (
    LPRelaxation,
    lp_attack,
    lp_output_bound,
    lp_state_bound,
    sensitivity_matrix,
    state_box_bound,
)
from lifted_idl.wellposedness import project_inf_norm_ball

SIZES = [(5, 4, 2, 0), (12, 5, 3, 1), (25, 4, 2, 2)]


def relu_model(n, p, q, seed, kappa=0.7):
    rng = np.random.default_rng(seed)
    A = project_inf_norm_ball(rng.normal(size=(n, n)), kappa)
    return ImplicitModel(A, rng.normal(size=(n, p)), rng.normal(size=(q, n)),
                         0.3 * rng.normal(size=(q, p)), b=0.5 * rng.normal(size=n),
                         c=rng.normal(size=q))


@pytest.mark.parametrize("n,p,q,seed", SIZES)
def test_lp_state_bound_sound_ordered_and_below_box(n, p, q, seed):
    model = relu_model(n, p, q, seed)
    rng = np.random.default_rng(50 + seed)
    u0 = rng.normal(size=p)
    sigma = rng.uniform(0.1, 0.6, size=p)
    paper = LPRelaxation(model, u0, sigma)
    tri = LPRelaxation(model, u0, sigma, relaxation="triangle")
    assert paper._problem.is_dpp() and tri._problem.is_dpp()
    X = model.equilibrium(box_points(rng, u0, sigma, n_random=150))
    x0 = model.equilibrium(u0[None])[0]
    sx = state_box_bound(model, sigma)
    strictly_tighter = 0
    for _ in range(6):
        c = rng.normal(size=n)
        bp, bt = paper.maximize(c).bound, tri.maximize(c).bound
        true_max = (X @ c).max()
        assert bt <= bp + 1e-7
        assert true_max <= bt + 1e-7
        assert bp <= c @ x0 + np.abs(c) @ sx + 1e-7
        strictly_tighter += bt < bp - 1e-6
    assert strictly_tighter >= 1
    assert tri.n_unstable_ > 0


@pytest.mark.parametrize("n,p,q,seed", SIZES)
def test_lp_output_bound_sound_and_below_sensitivity(n, p, q, seed):
    model = relu_model(n, p, q, seed)
    rng = np.random.default_rng(60 + seed)
    u0 = rng.normal(size=p)
    sigma = 0.3
    Y = model.predict(box_points(rng, u0, sigma, n_random=150))
    y0 = model.predict(u0[None])[0]
    S = sensitivity_matrix(model)
    for rel in ("paper", "triangle"):
        lp = LPRelaxation(model, u0, sigma, relaxation=rel)
        for _ in range(4):
            c = rng.normal(size=q)
            res = lp.maximize_output(c)
            assert (Y @ c).max() <= res.bound + 1e-7
            assert res.bound <= c @ y0 + np.abs(c) @ S @ np.full(p, sigma) + 1e-7
            assert res.bound <= lp.box_output_bound(c) + 1e-7
            assert np.all(np.abs(res.u - u0) <= sigma + 1e-9)
            assert res.status == "optimal" and res.solver == "HIGHS"
    # the thin wrapper is the same LP
    c = rng.normal(size=q)
    assert lp_output_bound(model, u0, sigma, c, relaxation="triangle").bound == pytest.approx(
        lp.maximize_output(c).bound, abs=1e-8)


@pytest.mark.parametrize("n,p,q,seed", SIZES[:2])
def test_lp_cardinality_sound_and_tighter_than_box(n, p, q, seed):
    model = relu_model(n, p, q, seed)
    rng = np.random.default_rng(70 + seed)
    u0 = rng.normal(size=p)
    sigma = rng.uniform(0.2, 0.8, size=p)
    k = 2
    Xk = model.equilibrium(card_points(rng, u0, sigma, k, n_random=150, full_support=True))
    for rel in ("paper", "triangle"):
        lpk = LPRelaxation(model, u0, sigma, k=k, relaxation=rel)
        lpb = LPRelaxation(model, u0, sigma, relaxation=rel)
        for _ in range(4):
            c = rng.normal(size=n)
            rk = lpk.maximize(c)
            assert (Xk @ c).max() <= rk.bound + 1e-7
            assert rk.bound <= lpb.maximize(c).bound + 1e-7
            w = (rk.u - u0) / sigma
            assert np.abs(w).sum() <= k + 1e-6 and np.all(np.abs(w) <= 1 + 1e-9)
    c = rng.normal(size=n)
    assert lp_state_bound(model, u0, sigma, c, k=k).bound == pytest.approx(
        LPRelaxation(model, u0, sigma, k=k).maximize(c).bound, abs=1e-8)


def test_triangle_lp_exact_on_affine_region():
    """All units stably active: the model is affine on the box and the triangle LP equals the
    true maximum c^T y0 + |c^T J| sigma, J = C (I - A)^{-1} B + D."""
    rng = np.random.default_rng(3)
    n, p, q = 8, 4, 2
    A = project_inf_norm_ball(rng.uniform(size=(n, n)), 0.5)
    model = ImplicitModel(A, rng.normal(size=(n, p)), rng.normal(size=(q, n)),
                          rng.normal(size=(q, p)), b=np.full(n, 30.0))
    u0, sigma = rng.normal(size=p), 0.2
    lp = LPRelaxation(model, u0, sigma, relaxation="triangle")
    assert lp.n_unstable_ == 0
    J = model.C @ np.linalg.solve(np.eye(n) - model.A, model.B) + model.D
    for _ in range(3):
        c = rng.normal(size=q)
        exact = c @ model.predict(u0[None])[0] + sigma * np.abs(c @ J).sum()
        assert lp.maximize_output(c).bound == pytest.approx(exact, rel=1e-7)


def test_reuse_by_set_input_matches_fresh_build_and_pickles():
    model = relu_model(12, 5, 3, 4)
    rng = np.random.default_rng(4)
    lp = LPRelaxation(model, rng.normal(size=5), 0.3, relaxation="triangle")
    for _ in range(3):
        u0, c = rng.normal(size=5), rng.normal(size=3)
        lp.set_input(u0)
        fresh = LPRelaxation(model, u0, 0.3, relaxation="triangle").maximize_output(c).bound
        assert lp.maximize_output(c).bound == pytest.approx(fresh, abs=1e-7)
    clone = pickle.loads(pickle.dumps(lp))
    np.testing.assert_array_equal(clone.u0, lp.u0)
    assert clone.maximize_output(c).bound == pytest.approx(lp.maximize_output(c).bound,
                                                           abs=1e-7)
    assert not any(isinstance(v, cp.Problem) for v in vars(lp.maximize_output(c)).values())


@pytest.mark.parametrize("k", [None, 2])
def test_lp_attack_in_set_and_below_bound(k):
    model = relu_model(12, 5, 3, 5)
    rng = np.random.default_rng(5)
    for _ in range(3):
        u0, sigma, c = rng.normal(size=5), rng.uniform(0.2, 0.6, size=5), rng.normal(size=3)
        att = lp_attack(model, u0, sigma, c, k=k)
        d = att.u - u0
        assert np.all(np.abs(d) <= sigma + 1e-12)
        if k is not None:
            assert np.count_nonzero(d) <= k
        assert att.value == pytest.approx(c @ model.predict(att.u[None])[0], abs=1e-10)
        assert att.value <= att.bound + 1e-7
        assert att.nominal == pytest.approx(c @ model.predict(u0[None])[0], abs=1e-10)


def test_solver_fallback_and_failure(monkeypatch):
    model = relu_model(5, 4, 2, 6)
    u0, c = np.ones(4), np.array([1.0, -1.0])
    ref = LPRelaxation(model, u0, 0.2).maximize_output(c).bound
    clar = LPRelaxation(model, u0, 0.2, solver="CLARABEL").maximize_output(c)
    assert clar.solver == "CLARABEL" and clar.bound == pytest.approx(ref, abs=1e-6)
    real_solve = cp.Problem.solve

    def highs_fails(self, *args, solver=None, **kw):
        if solver == "HIGHS":
            raise cp.error.SolverError("simulated HiGHS failure")
        return real_solve(self, *args, solver=solver, **kw)

    monkeypatch.setattr(cp.Problem, "solve", highs_fails)
    res = LPRelaxation(model, u0, 0.2).maximize_output(c)
    assert res.solver == "CLARABEL" and res.bound == pytest.approx(ref, abs=1e-6)
    with pytest.raises(SolverError, match="HIGHS"):
        LPRelaxation(model, u0, 0.2, solver="HIGHS").maximize_output(c)


def test_lp_refusals_and_bad_arguments():
    model = relu_model(5, 4, 2, 7)
    with pytest.raises(BoundConditionError, match="ReLU"):
        LPRelaxation(model.replace(activation="tanh"), np.zeros(4), 0.1)
    with pytest.raises(BoundConditionError, match="lambda_PF"):
        LPRelaxation(model.replace(A=-1.5 * np.eye(5)), np.zeros(4), 0.1)
    with pytest.raises(ValueError, match="relaxation"):
        LPRelaxation(model, np.zeros(4), 0.1, relaxation="sdp")
    with pytest.raises(ValueError, match="u0"):
        LPRelaxation(model, np.zeros(3), 0.1)
    with pytest.raises(ValueError, match="sigma_u"):
        LPRelaxation(model, np.zeros(4), np.array([0.1, -0.1, 0.1, 0.1]))
    with pytest.raises(ValueError, match="solver"):
        LPRelaxation(model, np.zeros(4), 0.1, solver="NOT_A_SOLVER")
    lp = LPRelaxation(model, np.zeros(4), 0.1)
    with pytest.raises(ValueError, match="c_out"):
        lp.maximize_output(np.ones(3))
    with pytest.raises(ValueError, match="c "):
        lp.maximize(np.full(5, np.nan))


def test_zero_radius_features_stay_fixed():
    model = relu_model(6, 4, 2, 8)
    sigma = np.array([0.0, 0.5, 0.0, 0.5])
    u0 = np.arange(4.0)
    res = LPRelaxation(model, u0, sigma, k=1).maximize_output(np.array([1.0, 0.0]))
    assert res.u[0] == u0[0] and res.u[2] == u0[2]
    rng = np.random.default_rng(8)
    U = u0 + np.array([[0, 1, 0, 0], [0, -1, 0, 0], [0, 0, 0, 1], [0, 0, 0, -1.0]]) * sigma
    U = np.vstack([U, u0 + rng.uniform(-1, 1, (50, 1)) * np.array([0, 1, 0, 0]) * sigma])
    assert model.predict(U)[:, 0].max() <= res.bound + 1e-7
