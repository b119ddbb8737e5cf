"""Feature selection, state reduction, low rank and the model-error bound (theory §6)."""

import numpy as np
import pytest

from lifted_idl import ImplicitModel
from lifted_idl.activations import Blockwise
from lifted_idl.exceptions import BoundConditionError, IllPosedModelError
from lifted_idl.sparsity import (
    active_features,
    approximation_error_bound,
    drop_features,
    low_rank_compress,
    reduce_model,
)
from lifted_idl.wellposedness import inf_norm, pf_eigenvalue

TIGHT = dict(tol=1e-14, max_iter=5000)


def _random_model(seed, n=10, p=5, q=3, kappa=0.9, activation="relu"):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(n, n))
    A *= kappa / inf_norm(A)  # dense, ||A||_inf = kappa
    return dict(A=A, B=rng.normal(size=(n, p)), C=rng.normal(size=(q, n)),
                D=rng.normal(size=(q, p)), b=rng.normal(size=n), c=rng.normal(size=q),
                activation=activation), rng


def _planted(seed, activation):
    """Zero rows/columns planted so that states {2, 3, 5} are constant and {7, 8, 9} dead."""
    kw, rng = _random_model(seed, activation=activation)
    A, B, C = kw["A"], kw["B"], kw["C"]
    A[[2, 5]] = 0.0
    B[[2, 5]] = 0.0          # 2 and 5: zero rows of (A, B) -> x = phi(b)
    A[3] = 0.0
    A[3, 2] = 0.4
    B[3] = 0.0               # 3 reads only the constant 2: constant after folding
    A[:, 7] = 0.0
    C[:, 7] = 0.0            # 7: zero column of [A; C]
    A[:, [8, 9]] = 0.0
    A[8, 9], A[9, 8] = 0.3, -0.2
    C[:, [8, 9]] = 0.0       # 8 <-> 9: read only by each other
    return kw, rng


def _max_rel_diff(Y1, Y2):
    return np.abs(Y1 - Y2).max() / max(1.0, np.abs(Y2).max())


@pytest.mark.parametrize(
    "activation",
    ["relu", "sigmoid", "tanh", Blockwise([(4, "relu"), (6, "sigmoid")])],
    ids=["relu", "sigmoid", "tanh", "blockwise"],
)
def test_reduce_model_planted(activation):
    kw, rng = _planted(0, activation)
    model = ImplicitModel(**kw)
    reduced, kept = reduce_model(model, return_kept=True)
    assert kept.tolist() == [0, 1, 4, 6]
    assert reduced.n_states == 4
    U = rng.normal(size=(200, 5))
    assert _max_rel_diff(reduced.predict(U, **TIGHT), model.predict(U, **TIGHT)) <= 1e-9
    # the kept states themselves are unchanged
    X, Xr = model.equilibrium(U, **TIGHT), reduced.equilibrium(U, **TIGHT)
    assert np.abs(X[:, kept] - Xr).max() <= 1e-9
    assert reduced.pf_eigenvalue() <= model.pf_eigenvalue() + 1e-12
    # a fixed point: reducing again removes nothing
    assert reduce_model(reduced).n_states == 4


def test_reduce_model_without_biases_and_nothing_to_remove():
    kw, rng = _planted(1, "relu")
    kw["b"] = kw["c"] = None
    model = ImplicitModel(**kw)
    reduced = reduce_model(model)
    # relu(0) = 0: nothing to fold, the biases stay absent
    assert reduced.n_states == 4 and reduced.b is None and reduced.c is None
    U = rng.normal(size=(100, 5))
    assert _max_rel_diff(reduced.predict(U, **TIGHT), model.predict(U, **TIGHT)) <= 1e-9
    # sigmoid(0) = 1/2 is folded: biases appear
    model = ImplicitModel(**{**kw, "activation": "sigmoid"})
    reduced = reduce_model(model)
    assert reduced.n_states == 4 and reduced.c is not None
    assert _max_rel_diff(reduced.predict(U, **TIGHT), model.predict(U, **TIGHT)) <= 1e-9
    # a dense model keeps every state
    dense = ImplicitModel(**_random_model(2)[0])
    red, kept = reduce_model(dense, return_kept=True)
    assert kept.tolist() == list(range(10)) and np.array_equal(red.A, dense.A)


def test_reduce_model_softmax_block_is_kept_whole():
    kw, rng = _planted(3, Blockwise([(6, "relu"), (4, "softmax")]))
    kw["A"] = 0.5 * kw["A"]
    model = ImplicitModel(**kw)
    reduced, kept = reduce_model(model, return_kept=True)
    # 2, 3, 5 are constant and 7 is dead in the relu block; 6..9 form the softmax block
    assert kept.tolist() == [0, 1, 4, 6, 7, 8, 9]
    U = rng.normal(size=(100, 5))
    assert _max_rel_diff(reduced.predict(U, **TIGHT), model.predict(U, **TIGHT)) <= 1e-9


def test_reduce_model_tol_and_low_rank_factors():
    kw, rng = _planted(4, "relu")
    kw["A"][7, 2] = 1e-12  # a tiny entry: state 2 is not exactly unread / constant-free
    kw["C"][:, 8] = 1e-13
    model = ImplicitModel(**kw)
    assert reduce_model(model).n_states == 6  # 8 and 9 become live through the tiny C entry
    assert reduce_model(model, tol=1e-10).n_states == 4
    # low-rank factors survive a reduction: rows of L and R are selected
    rng = np.random.default_rng(5)
    L, R = 0.3 * rng.normal(size=(8, 2)), 0.3 * rng.normal(size=(8, 2))
    L[[1, 4]] = 0.0
    B = rng.normal(size=(8, 3))
    B[[1, 4]] = 0.0
    C = rng.normal(size=(2, 8))
    C[:, 6] = 0.0
    R[6] = 0.0  # state 6: unread
    lr = ImplicitModel.from_low_rank(L, R, B, C, rng.normal(size=(2, 3)), b=rng.normal(size=8))
    red = reduce_model(lr)
    assert red.n_states == 5 and red.factors is not None
    U = rng.normal(size=(50, 3))
    assert red.solve(U).method == "lowrank"
    assert _max_rel_diff(red.predict(U, **TIGHT), lr.predict(U, **TIGHT)) <= 1e-9


def test_active_and_drop_features():
    kw, rng = _random_model(6)
    kw["B"][:, [1, 3]] = 0.0
    kw["D"][:, 1] = 0.0
    model = ImplicitModel(**kw)
    assert active_features(model).tolist() == [0, 2, 3, 4]   # column 3 of D is nonzero
    kw["D"][:, 3] = 0.0
    model = ImplicitModel(**kw)
    act = active_features(model)
    assert act.tolist() == [0, 2, 4]
    small = drop_features(model, act)
    assert small.n_features == 3
    U = rng.normal(size=(100, 5))
    assert _max_rel_diff(small.predict(U[:, act], **TIGHT), model.predict(U, **TIGHT)) <= 1e-12
    mask = np.zeros(5, dtype=bool)
    mask[act] = True
    assert np.array_equal(drop_features(model, mask).B, small.B)
    kw["B"][0, 3] = 1e-9
    assert active_features(ImplicitModel(**kw), tol=1e-6).tolist() == [0, 2, 4]
    assert active_features(ImplicitModel(**kw)).tolist() == [0, 2, 3, 4]
    for bad, msg in [([0, 5], r"\[0, 5\)"), ([0, 0], "repeated"),
                     (np.ones(4, dtype=bool), "length p=5"), ([0.0, 1.0], "integer")]:
        with pytest.raises(ValueError, match=msg):
            drop_features(model, bad)


# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("seed", range(4))
def test_approximation_error_bound_holds(activation, seed):
    kappa = 2.5 if activation == "sigmoid" else 0.8  # sigmoid: slopes <= 1/4
    kw, rng = _random_model(10 + seed, kappa=kappa, activation=activation)
    model = ImplicitModel(**kw)
    U = 2.0 * rng.normal(size=(300, 5))
    for size in (1e-3, 1e-2):
        A_approx = kw["A"] + size * rng.normal(size=kw["A"].shape)
        res = approximation_error_bound(model, A_approx, U)
        assert res.pf_value < 1
        X = model.replace(A=A_approx).equilibrium(U, **TIGHT)
        slack = 1e-9 * (1 + np.abs(res.X0))
        assert np.all(np.abs(X - res.X0) <= res.state_bound + slack)
        Y = model.replace(A=A_approx).predict(U, **TIGHT)
        assert np.all(np.abs(Y - model.predict(U, **TIGHT)) <= res.output_bound + 1e-8)
        assert np.all(res.gain >= 0)
        if activation == "tanh":
            # the uncorrected [IDL Thm 5.1], (I - |A0 + E|)^{-1} E x0 (no |.| on x0), fails
            E, A0 = res.E, kw["A"]
            paper = np.linalg.solve(np.eye(10) - np.abs(A0 + E), E @ res.X0.T).T
            assert np.any(np.abs(X - res.X0) > paper + 1e-6)
    # no perturbation: zero bound
    res = approximation_error_bound(model, kw["A"])
    assert not res.gain.any() and res.state_bound is None


def test_approximation_error_bound_refuses():
    kw, rng = _random_model(20, kappa=0.9)
    model = ImplicitModel(**kw)
    A_approx = kw["A"] + 0.2 * np.sign(kw["A"])  # rows of |A0| + E sum to > 1
    with pytest.raises(BoundConditionError, match="lambda_PF"):
        approximation_error_bound(model, A_approx)
    with pytest.raises(ValueError, match=r"shape \(10, 10\)"):
        approximation_error_bound(model, kw["A"][:, :9])
    with pytest.raises(ValueError, match="NaN"):
        approximation_error_bound(model, np.full((10, 10), np.nan))
    soft = ImplicitModel(**{**kw, "A": 0.3 * kw["A"], "activation": Blockwise([(10, "softmax")])})
    with pytest.raises(ValueError, match="componentwise"):
        approximation_error_bound(soft, soft.A)


# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rank", [1, 3, 6])
def test_low_rank_compress_inf_norm(rank):
    kw, rng = _random_model(30, kappa=0.7)
    model = ImplicitModel(**kw)
    U = rng.normal(size=(100, 5))
    comp, rep = low_rank_compress(model, rank, U)
    assert rep.criterion == "inf_norm" and 0 < rep.scale <= 1
    assert np.linalg.matrix_rank(comp.A) == rank
    assert inf_norm(comp.A) <= inf_norm(model.A)
    assert rep.inf_norm == pytest.approx(inf_norm(comp.A), rel=1e-12)
    # the k-dimensional kernel path equals the dense solve of the same A
    res = comp.solve(U, **TIGHT)
    assert res.method == "lowrank"
    dense = ImplicitModel(comp.A, comp.B, comp.C, comp.D, b=comp.b, c=comp.c)
    assert dense.solve(U, **TIGHT).method == "picard"
    assert np.abs(res.X - dense.equilibrium(U, **TIGHT)).max() <= 1e-9
    if rep.scale == 1.0:
        assert rep.spectral_error == pytest.approx(rep.singular_values[rank], rel=1e-9)
    if rep.bound is not None:
        Xk = comp.equilibrium(U, **TIGHT)
        assert np.all(np.abs(Xk - rep.bound.X0) <= rep.bound.state_bound + 1e-9)
    else:
        assert "lambda_PF" in rep.bound_note


def test_low_rank_compress_full_rank_is_exact_and_bound_applies():
    kw, rng = _random_model(31, kappa=0.5)
    model = ImplicitModel(**kw)
    U = rng.normal(size=(100, 5))
    comp, rep = low_rank_compress(model, 10, U)
    assert rep.bound is not None and rep.bound_note == "ok"
    assert _max_rel_diff(comp.predict(U, **TIGHT), model.predict(U, **TIGHT)) <= 1e-9
    # a near-low-rank A: a rank-2 compression is accurate and its bound applies
    L, R = rng.normal(size=(10, 2)), rng.normal(size=(10, 2))
    A = L @ R.T + 1e-4 * rng.normal(size=(10, 10))
    A *= 0.6 / inf_norm(A)
    model = ImplicitModel(**{**kw, "A": A})
    comp, rep = low_rank_compress(model, 2, U)
    assert rep.bound is not None
    err = np.abs(comp.equilibrium(U, **TIGHT) - rep.bound.X0)
    assert np.all(err <= rep.bound.state_bound + 1e-9)
    assert rep.bound.state_bound.max() <= 1e-2 * np.abs(rep.bound.X0).max()


def test_low_rank_compress_pf_criterion_and_errors():
    kw, rng = _random_model(32, kappa=0.6)
    s = np.geomspace(1.0, 20.0, 10)
    kw["A"] = kw["A"] * s[None, :] / s[:, None]   # same lambda_PF, larger inf-norm
    model = ImplicitModel(**kw)
    assert inf_norm(model.A) > 1 > pf_eigenvalue(model.A)
    comp, rep = low_rank_compress(model, 4)
    assert rep.criterion == "pf"
    assert pf_eigenvalue(comp.A) <= pf_eigenvalue(model.A) * (1 + 1e-12)
    U = rng.normal(size=(50, 5))
    assert comp.solve(U).method == "lowrank"
    # an explicit kappa imposes the inf-norm bound instead
    comp, rep = low_rank_compress(model, 4, kappa=0.5)
    assert rep.criterion == "inf_norm" and inf_norm(comp.A) <= 0.5
    with pytest.raises(ValueError, match="rank"):
        low_rank_compress(model, 0)
    with pytest.raises(ValueError, match="rank"):
        low_rank_compress(model, 11)
    with pytest.raises(ValueError, match="kappa"):
        low_rank_compress(model, 2, kappa=1.0)
    ill = ImplicitModel(**{**kw, "A": 2 * np.eye(10)})
    with pytest.raises(IllPosedModelError, match="lambda_PF"):
        low_rank_compress(ill, 2)
    with pytest.raises(TypeError, match="ImplicitModel"):
        low_rank_compress(kw["A"], 2)
