"""Tests of lifted_idl.compose: composition against running the parts, MLP and CPL conversion."""

import warnings

import numpy as np
import pytest
from scipy.special import expit, softmax
from sklearn.exceptions import ConvergenceWarning as SkConvergenceWarning
from sklearn.exceptions import NotFittedError
from sklearn.neural_network import MLPClassifier, MLPRegressor

from lifted_idl import ImplicitModel
from lifted_idl.activations import Blockwise, ReLU, Tanh
from lifted_idl.compose import (
    cascade,
    concatenate,
    cpl_block,
    cpl_network,
    feedback,
    from_mlp,
    parallel,
)
from lifted_idl.exceptions import IllPosedModelError
from lifted_idl.wellposedness import inf_norm

ATOL = 1e-9  # iterative solves stop at a relative step of 1e-10


def rand_model(rng, n, p, q, act="relu", kappa=0.5, bias=True, dag=False):
    """A random model with ||A||_inf = kappa (or strictly upper triangular A when dag)."""
    A = rng.standard_normal((n, n))
    if dag:
        A = np.triu(A, 1)
    else:
        A *= kappa / max(inf_norm(A), 1e-12)
    return ImplicitModel(
        A,
        rng.standard_normal((n, p)),
        rng.standard_normal((q, n)),
        rng.standard_normal((q, p)),
        b=rng.standard_normal(n) if bias else None,
        c=rng.standard_normal(q) if bias else None,
        activation=act,
    )


# ------------------------------------------------------------------------------------------------
# cascade
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bias1,bias2", [(True, True), (True, False), (False, True),
                                         (False, False)])
def test_cascade_matches_sequential(bias1, bias2):
    rng = np.random.default_rng(0)
    m1 = rand_model(rng, 5, 3, 4, bias=bias1)
    m2 = rand_model(rng, 6, 4, 2, bias=bias2)
    U = rng.standard_normal((20, 3))
    m = cascade(m1, m2)
    assert (m.n_states, m.n_features, m.n_outputs) == (11, 3, 2)
    Y1 = m1.predict(U)
    np.testing.assert_allclose(m.predict(U), m2.predict(Y1), atol=ATOL, rtol=0)
    # the state is (x2, x1)
    X = m.equilibrium(U)
    np.testing.assert_allclose(X[:, :6], m2.equilibrium(Y1), atol=ATOL, rtol=0)
    np.testing.assert_allclose(X[:, 6:], m1.equilibrium(U), atol=ATOL, rtol=0)
    assert (m.b is None) == (not bias1 and not bias2)
    assert (m.c is None) == (not bias1 and not bias2)


def test_cascade_mixed_activations_builds_blockwise():
    rng = np.random.default_rng(1)
    m1 = rand_model(rng, 4, 3, 3, act="tanh")
    m2 = rand_model(rng, 5, 3, 2, act="relu")
    m3 = rand_model(rng, 3, 2, 2, act="sigmoid")
    m = cascade(m1, m2, m3)
    assert isinstance(m.activation, Blockwise)
    assert [(s, a.name) for s, a in m.activation.blocks] == [(3, "sigmoid"), (5, "relu"),
                                                              (4, "tanh")]
    U = rng.standard_normal((15, 3))
    expected = m3.predict(m2.predict(m1.predict(U)))
    np.testing.assert_allclose(m.predict(U), expected, atol=ATOL, rtol=0)


def test_cascade_same_activation_keeps_it():
    rng = np.random.default_rng(2)
    m = cascade(rand_model(rng, 3, 2, 2, act="tanh"), rand_model(rng, 2, 2, 1, act="tanh"))
    assert isinstance(m.activation, Tanh)


def test_cascade_is_associative_and_matches_dag_forward_pass():
    rng = np.random.default_rng(3)
    ms = [rand_model(rng, 3, 2, 2, dag=True), rand_model(rng, 4, 2, 3, dag=True),
          rand_model(rng, 2, 3, 1, dag=True)]
    left = cascade(cascade(ms[0], ms[1]), ms[2])
    right = cascade(ms[0], cascade(ms[1], ms[2]))
    flat = cascade(*ms)
    for M in ("A", "B", "C", "D", "b", "c"):
        np.testing.assert_allclose(getattr(left, M), getattr(flat, M), atol=1e-14)
        np.testing.assert_allclose(getattr(right, M), getattr(flat, M), atol=1e-14)
    U = rng.standard_normal((10, 2))
    res = flat.solve(U)
    assert res.method == "triangular"
    expected = ms[2].predict(ms[1].predict(ms[0].predict(U)))
    np.testing.assert_allclose(flat.output(res.X, U), expected, atol=1e-12, rtol=0)


def test_cascade_mixed_activations_dag_parts_via_picard():
    # both parts strictly triangular: the result is a DAG with a Blockwise (relu, tanh) map
    rng = np.random.default_rng(4)
    m1 = rand_model(rng, 4, 3, 2, act="tanh", dag=True)
    m2 = rand_model(rng, 3, 2, 2, act="relu", dag=True)
    m = cascade(m1, m2)
    assert m.well_posedness.certificate == "dag"
    U = rng.standard_normal((8, 3))
    np.testing.assert_allclose(m.predict(U, method="picard"), m2.predict(m1.predict(U)),
                               atol=ATOL, rtol=0)


def test_cascade_mixed_activations_dag_parts_auto():
    rng = np.random.default_rng(4)
    m1 = rand_model(rng, 4, 3, 2, act="tanh", dag=True)
    m2 = rand_model(rng, 3, 2, 2, act="relu", dag=True)
    U = rng.standard_normal((8, 3))
    np.testing.assert_allclose(cascade(m1, m2).predict(U), m2.predict(m1.predict(U)),
                               atol=1e-12, rtol=0)


def test_cascade_wellposed_iff_parts():
    rng = np.random.default_rng(5)
    for trial in range(6):
        n1, n2 = 3 + trial % 3, 4
        good1 = rand_model(rng, n1, 2, 3, kappa=0.9)
        good2 = rand_model(rng, n2, 3, 2, kappa=0.9)
        # PF-certified (not inf-norm) part: a scaled, non-normal A with lambda_PF(|A|) < 1
        S = np.diag(np.geomspace(1, 30, n2))
        pf2 = good2.replace(A=S @ good2.A @ np.linalg.inv(S))
        assert pf2.well_posedness.certificate in ("pf", "inf_norm")
        bad1 = good1.replace(A=good1.A * (1.5 / good1.pf_eigenvalue()))
        assert not bad1.is_well_posed
        assert cascade(good1, good2).is_well_posed
        assert cascade(good1, pf2).is_well_posed
        np.testing.assert_allclose(cascade(good1, pf2).pf_eigenvalue(),
                                   max(good1.pf_eigenvalue(), pf2.pf_eigenvalue()), rtol=1e-8)
        assert not cascade(bad1, good2).is_well_posed
        first = good2.replace(B=rng.standard_normal((n2, 2)), D=rng.standard_normal((2, 2)))
        assert not cascade(first, bad1).is_well_posed


def test_cascade_single_model_and_float32():
    rng = np.random.default_rng(6)
    m1 = rand_model(rng, 3, 2, 2).astype(np.float32)
    same = cascade(m1)
    assert same is not m1
    np.testing.assert_array_equal(same.A, m1.A)
    m = cascade(m1, rand_model(rng, 2, 2, 1).astype(np.float32))
    assert m.dtype == np.float32
    m64 = cascade(m1, rand_model(rng, 2, 2, 1))
    assert m64.dtype == np.float64


# ------------------------------------------------------------------------------------------------
# parallel and concatenate
# ------------------------------------------------------------------------------------------------
def test_parallel_matches_sum_of_parts():
    rng = np.random.default_rng(7)
    ms = [rand_model(rng, 4, 3, 2, act="relu"), rand_model(rng, 3, 3, 2, act="tanh", bias=False),
          rand_model(rng, 5, 3, 2, act="relu", dag=True)]
    U = rng.standard_normal((12, 3))
    m = parallel(*ms)
    assert isinstance(m.activation, Blockwise)
    np.testing.assert_allclose(m.predict(U), sum(mk.predict(U) for mk in ms), atol=ATOL,
                               rtol=0)
    w = [0.5, -2.0, 3.0]
    mw = parallel(*ms, weights=w)
    expected = sum(wk * mk.predict(U) for wk, mk in zip(w, ms, strict=True))
    np.testing.assert_allclose(mw.predict(U), expected, atol=1e-8, rtol=0)
    # state: (x1, x2, x3)
    X = m.equilibrium(U)
    np.testing.assert_allclose(X[:, 4:7], ms[1].equilibrium(U), atol=ATOL, rtol=0)
    # PF eigenvalue of a block-diagonal |A| is the largest of the blocks'
    np.testing.assert_allclose(m.pf_eigenvalue(), max(mk.pf_eigenvalue() for mk in ms),
                               rtol=1e-8)


def test_concatenate_matches_stacked_outputs():
    rng = np.random.default_rng(8)
    ms = [rand_model(rng, 4, 3, 2, act="tanh"), rand_model(rng, 2, 3, 1, act="relu"),
          rand_model(rng, 3, 3, 3, act="tanh", bias=False)]
    U = rng.standard_normal((9, 3))
    m = concatenate(*ms)
    assert m.n_outputs == 6
    np.testing.assert_allclose(m.predict(U), np.hstack([mk.predict(U) for mk in ms]),
                               atol=ATOL, rtol=0)


def test_parallel_keeps_low_rank_factors():
    rng = np.random.default_rng(9)
    parts = []
    for n in (5, 4):
        L = rng.standard_normal((n, 2))
        R = rng.standard_normal((n, 2))
        s = 0.5 / inf_norm(L @ R.T)
        parts.append(ImplicitModel.from_low_rank(s * L, R, rng.standard_normal((n, 3)),
                                                 rng.standard_normal((2, n)),
                                                 rng.standard_normal((2, 3))))
    U = rng.standard_normal((7, 3))
    for m, expected in ((parallel(*parts), parts[0].predict(U) + parts[1].predict(U)),
                        (concatenate(*parts), np.hstack([p.predict(U) for p in parts]))):
        assert m.factors is not None and m.factors[0].shape == (9, 4)
        res = m.solve(U)
        assert res.method == "lowrank"
        np.testing.assert_allclose(m.output(res.X, U), expected, atol=ATOL, rtol=0)


# ------------------------------------------------------------------------------------------------
# feedback
# ------------------------------------------------------------------------------------------------
def _loop_by_parts(m1, m2, U, n_iter=200):
    """Solve y1 = m1(u + m2(y1)) by iterating the parts' own input-output maps."""
    Y1 = np.zeros((U.shape[0], m1.n_outputs))
    for _ in range(n_iter):
        Y1_new = m1.predict(U + m2.predict(Y1))
        if np.max(np.abs(Y1_new - Y1)) < 1e-13:
            return Y1_new
        Y1 = Y1_new
    raise AssertionError("the loop of the parts did not converge")


@pytest.mark.parametrize("act2", ["relu", "tanh"])
def test_feedback_matches_loop_of_parts(act2):
    rng = np.random.default_rng(10)
    p, q = 3, 2
    m1 = rand_model(rng, 4, p, q, kappa=0.3)
    m2 = rand_model(rng, 3, q, p, act=act2, kappa=0.3)
    # small loop gain so that the outer iteration on the parts contracts
    m1 = m1.replace(D=np.zeros((q, p)), C=0.3 * m1.C / np.abs(m1.C).sum(axis=1).max(),
                    B=0.5 * m1.B / np.abs(m1.B).sum(axis=1).max())
    m2 = m2.replace(D=np.zeros((p, q)), C=0.3 * m2.C / np.abs(m2.C).sum(axis=1).max(),
                    B=0.5 * m2.B / np.abs(m2.B).sum(axis=1).max())
    m = feedback(m1, m2)
    assert m.is_well_posed
    U = rng.standard_normal((10, p))
    Y1 = _loop_by_parts(m1, m2, U)
    np.testing.assert_allclose(m.predict(U), Y1, atol=1e-8, rtol=0)
    # the state is (x1, x2) with x2 = m2's state for input y1
    X = m.equilibrium(U)
    np.testing.assert_allclose(X[:, 4:], m2.equilibrium(Y1), atol=1e-8, rtol=0)
    if act2 != "relu":
        assert isinstance(m.activation, Blockwise)


def test_feedback_ill_posed_is_reported():
    # x1 = relu(x2 + u), x2 = relu(2 x1): no solution for u > 0
    m1 = ImplicitModel([[0.0]], [[1.0]], [[1.0]], [[0.0]])
    m2 = ImplicitModel([[0.0]], [[2.0]], [[1.0]], [[0.0]])
    m = feedback(m1, m2)
    np.testing.assert_allclose(m.A, [[0.0, 1.0], [2.0, 0.0]])
    assert not m.well_posedness.well_posed
    assert m1.is_well_posed and m2.is_well_posed
    with pytest.raises(IllPosedModelError):
        m.predict(np.ones((2, 1)))


# ------------------------------------------------------------------------------------------------
# from_mlp
# ------------------------------------------------------------------------------------------------
def _forward(mlp, U):
    """The network's output layer before out_activation, from coefs_/intercepts_."""
    act = {"relu": lambda z: np.maximum(z, 0), "tanh": np.tanh, "logistic": expit,
           "identity": lambda z: z}[mlp.activation]
    H = U
    for W, b in zip(mlp.coefs_[:-1], mlp.intercepts_[:-1], strict=True):
        H = act(H @ W + b)
    return H @ mlp.coefs_[-1] + mlp.intercepts_[-1]


def _fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkConvergenceWarning)
        return est.fit(X, y)


HIDDEN = [(6,), (5, 4), (4, 3, 5)]


@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_from_mlp_regressor_exact(hidden, activation):
    rng = np.random.default_rng(11)
    X = rng.standard_normal((40, 3))
    for y in (X[:, 0] - 2 * X[:, 1] ** 2, np.c_[X[:, 0], np.sin(X[:, 2])]):
        mlp = _fit(MLPRegressor(hidden_layer_sizes=hidden, activation=activation, max_iter=30,
                                random_state=0), X, y)
        m = from_mlp(mlp)
        assert m.n_states == sum(hidden)
        assert np.allclose(np.tril(m.A), 0)  # strictly upper block triangular
        res = m.solve(X)
        assert res.method == "triangular"
        out = m.output(res.X, X)
        np.testing.assert_allclose(out, mlp.predict(X).reshape(len(X), -1), atol=1e-10,
                                   rtol=0)
        np.testing.assert_allclose(out, _forward(mlp, X), atol=1e-10, rtol=0)
        # the state lists the hidden layers in reverse: x = (x_L, ..., x_1)
        H1 = {"relu": lambda z: np.maximum(z, 0), "tanh": np.tanh}[activation](
            X @ mlp.coefs_[0] + mlp.intercepts_[0])
        np.testing.assert_allclose(res.X[:, -hidden[0]:], H1, atol=1e-12, rtol=0)


@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_from_mlp_classifier_exact(hidden, activation):
    rng = np.random.default_rng(12)
    X = rng.standard_normal((45, 4))
    for y in ((X[:, 0] > 0).astype(int), np.digitize(X[:, 1], [-0.5, 0.5])):
        mlp = _fit(MLPClassifier(hidden_layer_sizes=hidden, activation=activation, max_iter=30,
                                 random_state=0), X, y)
        m = from_mlp(mlp)
        res = m.solve(X)
        assert res.method == "triangular"
        out = m.output(res.X, X)
        np.testing.assert_allclose(out, _forward(mlp, X), atol=1e-10, rtol=0)
        proba = mlp.predict_proba(X)
        if len(mlp.classes_) == 2:
            assert mlp.out_activation_ == "logistic" and out.shape == (45, 1)
            np.testing.assert_allclose(expit(out[:, 0]), proba[:, 1], atol=1e-12)
        else:
            assert mlp.out_activation_ == "softmax" and out.shape == (45, 3)
            np.testing.assert_allclose(softmax(out, axis=1), proba, atol=1e-12)


@pytest.mark.parametrize("activation,name", [("logistic", "sigmoid"), ("identity", "identity")])
def test_from_mlp_other_activations(activation, name):
    rng = np.random.default_rng(13)
    X = rng.standard_normal((30, 3))
    mlp = _fit(MLPRegressor(hidden_layer_sizes=(4, 3), activation=activation, max_iter=20,
                            random_state=0), X, X[:, 0])
    m = from_mlp(mlp)
    assert m.activation.name == name
    np.testing.assert_allclose(m.predict(X)[:, 0], mlp.predict(X), atol=1e-10, rtol=0)


def test_from_mlp_no_hidden_layer_and_float32():
    rng = np.random.default_rng(14)
    X = rng.standard_normal((30, 3))
    lin = _fit(MLPRegressor(hidden_layer_sizes=(), max_iter=20, random_state=0), X,
               X @ [1.0, 2.0, -1.0])
    m = from_mlp(lin)
    assert m.n_states == 0
    np.testing.assert_allclose(m.predict(X)[:, 0], lin.predict(X), atol=1e-10, rtol=0)
    X32 = X.astype(np.float32)
    mlp32 = _fit(MLPRegressor(hidden_layer_sizes=(5,), max_iter=20, random_state=0), X32,
                 X32[:, 0])
    m32 = from_mlp(mlp32)
    assert m32.dtype == np.float32
    np.testing.assert_allclose(m32.predict(X32)[:, 0], mlp32.predict(X32), atol=1e-5, rtol=0)


def test_from_mlp_cascades_with_other_models():
    rng = np.random.default_rng(15)
    X = rng.standard_normal((30, 3))
    mlp = _fit(MLPRegressor(hidden_layer_sizes=(5, 4), max_iter=20, random_state=0), X, X[:, :2])
    head = rand_model(rng, 3, 2, 1)
    m = cascade(from_mlp(mlp), head)
    np.testing.assert_allclose(m.predict(X), head.predict(mlp.predict(X)), atol=ATOL, rtol=0)


def test_from_mlp_bad_input():
    with pytest.raises(NotFittedError, match="mlp"):
        from_mlp(MLPRegressor())
    with pytest.raises(TypeError, match="MLPRegressor or MLPClassifier"):
        from_mlp(rand_model(np.random.default_rng(0), 2, 2, 1))
    X = np.random.default_rng(0).standard_normal((20, 2))
    mlp = _fit(MLPRegressor(hidden_layer_sizes=(3,), max_iter=5, random_state=0), X, X[:, 0])
    mlp.activation = "softplus"
    with pytest.raises(ValueError, match="softplus"):
        from_mlp(mlp)


# ------------------------------------------------------------------------------------------------
# CPL
# ------------------------------------------------------------------------------------------------
def _cpl_formula(W, b, X):
    h = 2.0 / np.linalg.norm(W, 2) ** 2
    return X - h * np.maximum(X @ W.T + b, 0) @ W


def test_cpl_block_matches_formula_and_is_1_lipschitz():
    rng = np.random.default_rng(16)
    for k, d in [(5, 3), (3, 6), (8, 8)]:
        W = rng.standard_normal((k, d))
        b = rng.standard_normal(k)
        blk = cpl_block(W, b)
        assert (blk.n_states, blk.n_features, blk.n_outputs) == (k, d, d)
        X = rng.standard_normal((200, d))
        Z = blk.predict(X)
        np.testing.assert_allclose(Z, _cpl_formula(W, b, X), atol=1e-13, rtol=0)
        # random pairs, including close pairs in the same activation pattern
        Y = np.vstack([rng.standard_normal((100, d)), X[100:] + 1e-3 * rng.standard_normal(
            (100, d))])
        ratio = np.linalg.norm(Z - blk.predict(Y), axis=1) / np.linalg.norm(X - Y, axis=1)
        assert ratio.max() <= 1 + 1e-12
        # the bound is attained up to a few percent along the top singular direction
        v = np.linalg.svd(W)[2][0]
        x0 = np.zeros((1, d))
        far = cpl_block(W, np.full(k, 10.0))  # every unit active near 0: z = x - h W^T (W x+b)
        r = np.linalg.norm(far.predict(x0 + 1e-3 * v) - far.predict(x0)) / 1e-3
        assert r > 1 - 1e-9


def test_cpl_network_is_1_lipschitz():
    rng = np.random.default_rng(17)
    d = 4
    Ws = [rng.standard_normal((k, d)) for k in (6, 3, 5)]
    bs = [rng.standard_normal(W.shape[0]) for W in Ws]
    net = cpl_network(Ws, bs)
    X = rng.standard_normal((150, d))
    Y = X + rng.standard_normal((150, d)) * rng.uniform(1e-3, 2, (150, 1))
    res = net.solve(X)
    assert res.method == "triangular"
    Z = net.output(res.X, X)
    expected = X
    for W, b in zip(Ws, bs, strict=True):
        expected = _cpl_formula(W, b, expected)
    np.testing.assert_allclose(Z, expected, atol=1e-12, rtol=0)
    ratio = np.linalg.norm(Z - net.predict(Y), axis=1) / np.linalg.norm(X - Y, axis=1)
    assert ratio.max() <= 1 + 1e-12
    np.testing.assert_allclose(cpl_network(Ws).predict(X),
                               cpl_network(Ws, [np.zeros(W.shape[0]) for W in Ws]).predict(X),
                               atol=1e-14)


def test_cpl_bad_input():
    rng = np.random.default_rng(18)
    with pytest.raises(ValueError, match="spectral norm"):
        cpl_block(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="2-D"):
        cpl_block(np.ones(3))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        cpl_block(np.ones((2, 3)), np.ones(3))
    with pytest.raises(ValueError, match="NaN"):
        cpl_block(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match=r"Ws\[1\]"):
        cpl_network([rng.standard_normal((2, 3)), rng.standard_normal((2, 4))])
    with pytest.raises(ValueError, match="one bias per layer"):
        cpl_network([rng.standard_normal((2, 3))], [np.ones(2), np.ones(2)])
    with pytest.raises(ValueError, match=r"bs\[0\]"):
        cpl_network([rng.standard_normal((2, 3))], [np.ones(5)])
    with pytest.raises(ValueError, match="at least one"):
        cpl_network([])


# ------------------------------------------------------------------------------------------------
# bad input to the connections
# ------------------------------------------------------------------------------------------------
def test_composition_bad_input():
    rng = np.random.default_rng(19)
    m32 = rand_model(rng, 3, 3, 2)
    m23 = rand_model(rng, 2, 2, 3)
    m33 = rand_model(rng, 2, 3, 3)
    with pytest.raises(ValueError, match=r"models\[1\].*p=3.*q=2"):
        cascade(m32, m33)
    with pytest.raises(ValueError, match=r"models\[2\]"):
        cascade(m32, m23, m23)
    with pytest.raises(ValueError, match="at least one"):
        cascade()
    with pytest.raises(TypeError, match=r"models\[1\] must be an ImplicitModel"):
        cascade(m32, "relu")
    with pytest.raises(ValueError, match=r"models\[1\] has q \(outputs\)=3"):
        parallel(m32, m33)
    with pytest.raises(ValueError, match=r"models\[1\] has p \(inputs\)=2"):
        concatenate(m32, m23)
    with pytest.raises(ValueError, match="weights"):
        parallel(m32, m32, weights=[1.0])
    with pytest.raises(ValueError, match="weights"):
        parallel(m32, m32, weights=[1.0, np.inf])
    # feedback: D must be zero, dimensions must close the loop
    with pytest.raises(ValueError, match=r"m1\.D must be zero"):
        feedback(m32, m23.replace(D=np.zeros((3, 2))))
    with pytest.raises(ValueError, match=r"m2\.D must be zero"):
        feedback(m32.replace(D=np.zeros((2, 3))), m23)
    z32 = m32.replace(D=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="p2=3"):
        feedback(z32, m33.replace(D=np.zeros((3, 3))))
    with pytest.raises(ValueError, match="q2=2"):
        feedback(z32, rand_model(rng, 2, 2, 2).replace(D=np.zeros((2, 2))))
    with pytest.raises(TypeError, match="ImplicitModel"):
        feedback(z32, None)


def test_relu_parts_keep_plain_relu():
    rng = np.random.default_rng(20)
    m = concatenate(rand_model(rng, 2, 2, 1), rand_model(rng, 3, 2, 1))
    assert isinstance(m.activation, ReLU)


def test_from_mlp_refuses_a_regressor_with_a_nonlinear_output():
    """MLPRegressor(loss="poisson") predicts exp of its last layer, which no implicit model
    (affine in its state) reproduces: refused (it used to return the logarithm of the
    predictions)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlp = MLPRegressor(hidden_layer_sizes=(4,), loss="poisson", max_iter=20,
                           random_state=0).fit(X, np.exp(X[:, 0]))
    with pytest.raises(ValueError, match="output activation is 'exp'"):
        from_mlp(mlp)
