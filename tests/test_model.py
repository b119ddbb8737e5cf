"""ImplicitModel: validation, shapes, dtypes, method selection, caching, pickling."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import lifted_idl.model as model_module
from lifted_idl import ImplicitModel
from lifted_idl.activations import BlockSoftmax, Blockwise
from lifted_idl.exceptions import ConvergenceWarning, IllPosedModelError
from lifted_idl.wellposedness import is_well_posed


def _params(rng, n=5, p=3, q=2):
    return dict(A=rng.standard_normal((n, n)) * 0.1, B=rng.standard_normal((n, p)),
                C=rng.standard_normal((q, n)), D=rng.standard_normal((q, p)),
                b=rng.standard_normal(n), c=rng.standard_normal(q))


def test_docstring_example():
    A = np.array([[0.0, 0.5], [0.0, 0.0]])
    model = ImplicitModel(A, np.eye(2), np.ones((1, 2)), np.zeros((1, 2)))
    # x2 = relu(2) = 2, x1 = relu(0.5 * 2 + 1) = 2, y = 4
    np.testing.assert_array_equal(model.predict(np.array([[1.0, 2.0]])), [[4.0]])


def test_shapes_and_output_formula(rng, make_model):
    model = make_model(rng, n=6, p=4, q=3)
    U = rng.standard_normal((11, 4))
    X = model.equilibrium(U)
    Y = model.predict(U)
    assert X.shape == (11, 6) and Y.shape == (11, 3)
    np.testing.assert_allclose(X, np.maximum(X @ model.A.T + U @ model.B.T + model.b, 0),
                               atol=1e-12)
    np.testing.assert_allclose(Y, X @ model.C.T + U @ model.D.T + model.c, atol=1e-12)
    np.testing.assert_allclose(model.output(X, U), Y, atol=0)
    assert model.n_states == 6 and model.n_features == 4 and model.n_outputs == 3


@pytest.mark.parametrize("name, bad, match", [
    ("A", np.zeros((5, 4)), r"A has shape \(5, 4\); expected \(5, 5\)"),
    ("A", np.zeros(5), r"A must be 2-D; got shape \(5,\)"),
    ("B", np.zeros((4, 3)), r"B has shape \(4, 3\); expected \(5, '\*'\)"),
    ("C", np.zeros((2, 4)), r"C has shape \(2, 4\)"),
    ("D", np.zeros((2, 2)), r"D has shape \(2, 2\); expected \(2, 3\)"),
    ("b", np.zeros(4), r"b has shape \(4,\); expected \(5,\)"),
    ("c", np.zeros((2, 1)), r"c must be 1-D"),
    ("A", np.full((5, 5), "x"), r"A must be a real numeric array"),
])
def test_wrong_shapes_raise_naming_the_argument(rng, name, bad, match):
    params = _params(rng)
    params[name] = bad
    with pytest.raises(ValueError, match=match):
        ImplicitModel(**params)


@pytest.mark.parametrize("name", ["A", "B", "C", "D", "b", "c"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nonfinite_parameters_raise_naming_the_argument_and_value(rng, name, value):
    params = _params(rng)
    M = params[name].copy()
    M.flat[1] = value
    params[name] = M
    with pytest.raises(ValueError, match=rf"{name} must be finite; got {name}\[.*\] = {value}"):
        ImplicitModel(**params)


def test_bad_inputs_raise_naming_u(rng, make_model):
    model = make_model(rng, n=4, p=3)
    U = rng.standard_normal((5, 3))
    with pytest.raises(ValueError, match=r"U has 2 features \(shape \(5, 2\)\)"):
        model.predict(U[:, :2])
    with pytest.raises(ValueError, match=r"U must be 2-D"):
        model.predict(U[0])
    U[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"U must be finite; got U\[2, 1\] = nan"):
        model.predict(U)
    with pytest.raises(ValueError, match=r"X0 has shape \(5, 3\)"):
        model.equilibrium(np.zeros((5, 3)), X0=np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"X has shape \(4, 4\)"):
        model.output(np.zeros((4, 4)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="method='fast'"):
        model.solve(np.zeros((5, 3)), method="fast")
    with pytest.raises(ValueError, match="batch_size"):
        model.solve(np.zeros((5, 3)), batch_size=0)


def test_dtypes_are_kept(rng, make_model):
    m32 = make_model(rng, dtype=np.float32)
    assert all(M.dtype == np.float32 for M in (m32.A, m32.B, m32.C, m32.D, m32.b, m32.c))
    U = rng.standard_normal((7, 4))
    assert m32.predict(U.astype(np.float32)).dtype == np.float32
    assert m32.predict(U).dtype == np.float64  # float64 data runs in float64
    m64 = m32.astype(np.float64)
    assert m64.dtype == np.float64 and m64.astype("float64") is m64
    # float32 data stays float32 with a float64 model, and is accurate to float32 precision
    Y32 = m64.predict(U.astype(np.float32))
    assert Y32.dtype == np.float32
    np.testing.assert_allclose(Y32, m64.predict(U), rtol=1e-4, atol=1e-4)
    # integer parameters become float64
    mi = ImplicitModel(np.zeros((2, 2), int), np.eye(2, dtype=int), np.ones((1, 2), int),
                       np.zeros((1, 2), int))
    assert mi.dtype == np.float64
    with pytest.raises(ValueError, match="float16"):
        m32.astype(np.float16)


def test_parameters_are_copied(rng):
    params = _params(rng)
    A = params["A"]
    model = ImplicitModel(**params)
    U = rng.standard_normal((4, 3))
    before = model.predict(U)
    A *= 50  # mutating the caller's array does not change the model
    np.testing.assert_array_equal(model.predict(U), before)


def test_pickle_round_trip_is_small_and_equal(rng, make_model):
    model = make_model(rng, n=30, p=8, q=3)
    U = rng.standard_normal((40, 8))
    Y = model.predict(U)
    model.predict(U.astype(np.float32))  # fill the caches (float32 copies, certificate)
    blob = pickle.dumps(model)
    arrays = sum(M.nbytes for M in (model.A, model.B, model.C, model.D, model.b, model.c))
    assert len(blob) < arrays + 1500
    clone = pickle.loads(blob)
    for name in ("A", "B", "C", "D", "b", "c"):
        np.testing.assert_array_equal(getattr(clone, name), getattr(model, name))
    assert clone.activation == model.activation and clone.factors is None
    np.testing.assert_array_equal(clone.predict(U), Y)


def test_wellposedness_is_computed_once(rng, make_model, monkeypatch):
    calls = []

    def counting(A, activation="relu"):
        calls.append(1)
        return is_well_posed(A, activation)

    monkeypatch.setattr(model_module, "is_well_posed", counting)
    model = make_model(rng)
    U = rng.standard_normal((3, 4))
    for _ in range(3):
        model.predict(U)
        model.equilibrium(U.astype(np.float32))
    assert model.well_posedness.certificate == "inf_norm"
    assert len(calls) == 1
    # assigning a parameter clears the cache: the certificate is recomputed for the new A
    model.A = model.A * 3
    assert model.well_posedness.value == pytest.approx(1.8)
    assert len(calls) == 2


def test_ill_posed_model_raises_unless_forced(rng):
    A = np.array([[0.0, 1.1], [1.1, 0.0]])
    model = ImplicitModel(A, np.eye(2), np.eye(2), np.zeros((2, 2)), activation="tanh")
    assert not model.is_well_posed
    U = rng.standard_normal((5, 2))
    with pytest.raises(IllPosedModelError, match="force=True"):
        model.predict(U)
    # forced: the eigenvalue -1.1 makes Picard oscillate; tanh keeps the iterates bounded, and
    # the failure is reported (warning, converged=False, the residual) rather than hidden
    with pytest.warns(ConvergenceWarning, match="max_iter=2000"):
        res = model.solve(U, force=True, max_iter=2000)
    assert not res.converged and res.residual > 1e-3
    assert np.all(np.isfinite(res.X)) and np.abs(res.X).max() <= 1


def test_auto_method_selection(rng, make_model, strictly_upper):
    U = rng.standard_normal((6, 4))
    # DAG -> back-substitution
    A = strictly_upper(rng, 6)
    dag = ImplicitModel(A, rng.standard_normal((6, 4)), rng.standard_normal((2, 6)),
                        np.zeros((2, 4)))
    res = dag.solve(U)
    assert res.method == "triangular"
    np.testing.assert_allclose(res.X, dag.solve(U, method="picard", max_iter=20).X,
                               atol=1e-12)
    # inf-norm -> Picard
    assert make_model(rng).solve(U).method == "picard"
    # mu_inf only -> averaged with the NE-MON step, and the result is a fixed point
    Am = 0.3 * rng.standard_normal((6, 6)) - 5 * np.eye(6)
    mu = ImplicitModel(Am, rng.standard_normal((6, 4)), rng.standard_normal((2, 6)),
                       np.zeros((2, 4)))
    assert mu.well_posedness.certificate == "mu_inf"
    res = mu.solve(U)
    assert res.method == "averaged" and res.converged
    Z = res.X @ Am.T + U @ mu.B.T
    np.testing.assert_allclose(res.X, np.maximum(Z, 0), atol=1e-9)
    # an explicit averaged solve on an inf-norm model uses a valid step and agrees with Picard
    m0 = make_model(rng)
    avg = m0.solve(U, method="averaged", tol=1e-12)
    assert avg.method == "averaged" and avg.converged
    np.testing.assert_allclose(avg.X, m0.solve(U, tol=1e-12).X, atol=1e-10)
    # low rank -> lowrank iteration, same answer as Picard on the full A
    L, R = rng.random((6, 2)) * 0.3, rng.random((6, 2)) * 0.3
    lr = ImplicitModel.from_low_rank(L, R, rng.standard_normal((6, 4)),
                                     rng.standard_normal((2, 6)), np.zeros((2, 4)))
    res = lr.solve(U)
    assert res.method == "lowrank"
    np.testing.assert_allclose(res.X, lr.solve(U, method="picard").X, atol=1e-12)
    # low rank certified by mu_inf only -> averaged (Picard, low-rank or not, oscillates
    # there), and the result is the fixed point
    lm = ImplicitModel.from_low_rank(np.array([[-3.0], [0.5]]), np.array([[1.0], [0.0]]),
                                     np.eye(2), np.ones((1, 2)), np.zeros((1, 2)))
    assert lm.well_posedness.certificate == "mu_inf"
    res = lm.solve(np.array([[1.0, 0.0]]))
    assert res.method == "averaged" and res.converged
    np.testing.assert_allclose(res.X, [[0.25, 0.125]], atol=1e-9)
    # the low-rank factors survive replace() unless A changes
    assert lr.replace(C=np.ones((1, 6)), D=np.zeros((1, 4))).factors is not None
    assert lr.replace(A=lr.A * 0.5).factors is None
    with pytest.raises(ValueError, match="triangular"):
        make_model(rng).solve(U, method="triangular")


def test_blockwise_dag_model_uses_exact_back_substitution(rng):
    act = Blockwise([(2, "relu"), (2, BlockSoftmax()), (2, "tanh")])
    A = np.triu(rng.standard_normal((6, 6)), 1)
    A[2:4, 2:4] = 0.0
    model = ImplicitModel(A, rng.standard_normal((6, 3)), rng.standard_normal((1, 6)),
                          np.zeros((1, 3)), activation=act)
    assert model.well_posedness.certificate == "dag"
    U = rng.standard_normal((8, 3))
    res = model.solve(U)
    assert res.method == "triangular"
    np.testing.assert_allclose(res.X, act(res.X @ A.T + U @ model.B.T), atol=1e-13)


def test_batches_and_subsets_give_the_same_rows(rng, make_model):
    model = make_model(rng, n=10, p=4, kappa=0.95)
    U = rng.standard_normal((50, 4)) * rng.uniform(0.1, 10, (50, 1))
    full = model.predict(U)
    np.testing.assert_allclose(model.predict(U, batch_size=7), full, rtol=0, atol=1e-12)
    idx = rng.permutation(50)[:9]
    np.testing.assert_allclose(model.predict(U[idx]), full[idx], rtol=0, atol=1e-12)
    warm = model.solve(U, X0=model.equilibrium(U))
    assert warm.n_iter <= 2


def test_nonconvergence_in_the_model_warns(rng, random_A):
    A = random_A(rng, 8, 0.99, kind="nonneg")
    model = ImplicitModel(A, np.eye(8), np.ones((1, 8)), np.zeros((1, 8)))
    U = rng.random((4, 8)) + 1
    with pytest.warns(ConvergenceWarning, match="relative residual"):
        res = model.solve(U, max_iter=5)
    assert not res.converged and res.n_unconverged == 4


def test_device_argument():
    """device="cpu" returns NumPy from any input; "cuda" without a GPU is refused clearly;
    an unknown device is named."""
    from lifted_idl._array import cupy_available

    rng = np.random.default_rng(0)
    A = 0.3 * rng.standard_normal((4, 4)) / 4
    M = ImplicitModel(A, rng.standard_normal((4, 3)), rng.standard_normal((2, 4)),
                      rng.standard_normal((2, 3)))
    U = rng.standard_normal((5, 3))
    np.testing.assert_array_equal(M.predict(U, device="cpu"), M.predict(U))
    with pytest.raises(ValueError, match="device"):
        M.predict(U, device="tpu")
    if cupy_available():
        import cupy

        out = M.predict(U, device="cuda")
        assert isinstance(out, cupy.ndarray)
        np.testing.assert_allclose(cupy.asnumpy(out), M.predict(U), rtol=1e-10, atol=1e-12)
    else:
        with pytest.raises(ValueError, match="CuPy"):
            M.predict(U, device="cuda")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_trusted_constructor_and_solve_equal_the_checked_ones(rng, dtype):
    """``_trusted`` (the trainers' per-round models, no validation) builds the constructor's
    model: the same arrays, copied and cast alike, and ``_solve_trusted`` the same states as
    ``solve``, bit for bit."""
    params = {k: v.astype(dtype) for k, v in _params(rng, n=7, p=4).items()}
    ref = ImplicitModel(**params, activation="relu")
    got = ImplicitModel._trusted(**params, activation="relu")
    for k in ("A", "B", "C", "D", "b", "c"):
        a, g = getattr(ref, k), getattr(got, k)
        assert g.dtype == a.dtype and np.array_equal(g, a)
        assert not np.shares_memory(g, params[k])
    assert got.activation == ref.activation and got.factors is None
    assert got.well_posedness == ref.well_posedness
    U = rng.standard_normal((40, 4)).astype(dtype)
    X0 = rng.uniform(0, 1, (40, 7)).astype(dtype)
    for warm in (None, X0):
        want, res = ref.solve(U, X0=warm, warn=False), got._solve_trusted(U, X0=warm, warn=False)
        assert np.array_equal(res.X, want.X) and res.n_iter == want.n_iter
    mixed = ImplicitModel._trusted(params["A"].astype(np.float32), params["B"], params["C"],
                                   params["D"])
    assert mixed.dtype == ImplicitModel(params["A"].astype(np.float32), params["B"],
                                        params["C"], params["D"]).dtype


def test_outputs_that_overflow_raise_instead_of_returning_inf():
    """Finite inputs so large that the pre-activations or the outputs overflow raise a
    ValueError naming the input (whole and chunked, predict and output) instead of returning
    inf or NaN; inputs just below still predict."""
    model = ImplicitModel([[0.5]], [[1e200]], [[1e100]], [[0.0]])
    ok = model.predict(np.array([[1e-100]]))
    assert np.isfinite(ok).all() and ok[0, 0] == pytest.approx(2e200)
    for u, where in ((1e110, "U B\\^T \\+ b overflows"), (1e10, "outputs overflow")):
        U = np.array([[1.0], [u]])
        with pytest.raises(ValueError, match=where):
            model.predict(U)
        with pytest.raises(ValueError, match=where):
            model.predict(U, batch_size=1)
    with pytest.raises(ValueError, match="outputs overflow"):
        model.output(np.array([[1e300]]), np.array([[0.0]]))


def test_assigning_a_parameter_checks_it_like_the_constructor(rng, make_model):
    """``model.C = value`` is checked as the constructor checks it: NaN or a wrong shape
    raises and leaves the model (and its predictions) as they were; a good value is stored as
    a copy; assigning A drops the low-rank factors, as replace() does."""
    model = make_model(rng)
    U = rng.standard_normal((4, model.n_features))
    before = model.predict(U)
    for value in (np.full_like(model.C, np.nan), model.C[:, :-1]):
        with pytest.raises(ValueError):
            model.C = value
        np.testing.assert_array_equal(model.predict(U), before)
    C = np.zeros_like(model.C)
    model.C = C
    C[...] = 1.0  # the model holds a copy
    np.testing.assert_allclose(model.predict(U), U @ model.D.T + model.c, rtol=1e-14)
    L = rng.standard_normal((3, 1)) * 0.2
    low = ImplicitModel.from_low_rank(L, L, np.ones((3, 2)), np.ones((1, 3)), np.ones((1, 2)))
    low.A = np.zeros((3, 3))
    assert low.factors is None


def test_a_bad_solver_tolerance_is_named(rng, make_model):
    model = make_model(rng)
    U = rng.standard_normal((2, model.n_features))
    for tol in (float("nan"), "abc", -1.0):
        with pytest.raises(ValueError, match="tol must be finite"):
            model.predict(U, tol=tol)
