"""The shared argument checks of lifted_idl._validation: each rejects what it should with a
message naming the argument and the value, and accepts the boundary cases."""

import numpy as np
import pytest
import scipy.sparse as sp

from lifted_idl._validation import (
    check_choice,
    check_finite_matrix,
    check_int,
    check_kappa,
    check_max_iter,
    check_n_jobs,
    check_radius,
    check_real,
    check_shape,
    check_tol,
    nonfinite_message,
)


@pytest.mark.parametrize("v, low, high", [(0, 0, None), (5, 1, 5), (np.int64(3), 1, None),
                                          (-7, None, None), (1, None, 1)])
def test_check_int_accepts_bounds_and_numpy_ints(v, low, high):
    out = check_int("n", v, low, high)
    assert out == int(v) and type(out) is int


@pytest.mark.parametrize("v, low, high, rng", [
    (0, 1, None, ">= 1"), (6, 1, 5, r"in \[1, 5\]"), (2, None, 1, "<= 1"),
    (True, 0, None, ">= 0"), (np.bool_(True), 0, None, ">= 0"), (1.0, 0, None, ">= 0"),
    ("3", 0, None, ">= 0"), (None, 0, None, ">= 0"),
])
def test_check_int_rejects_naming_argument_and_value(v, low, high, rng):
    with pytest.raises(ValueError, match=rf"n_hidden must be an int {rng}; got "
                                         rf"n_hidden={v!r}"):
        check_int("n_hidden", v, low, high)


def test_check_int_allow_none():
    assert check_int("batch_size", None, 1, allow_none=True) is None
    with pytest.raises(ValueError, match=r"batch_size must be None or an int >= 1; got "
                                         r"batch_size=0"):
        check_int("batch_size", 0, 1, allow_none=True)


@pytest.mark.parametrize("v, low, high, closed", [
    (0.0, 0, None, "both"), (1.0, 0, 1, "right"), (0.0, 0, 1, "left"), (0.5, 0, 1, "neither"),
    (-1e300, None, None, "both"), (np.float32(0.25), 0, 1, "both"), (3, 0, None, "both"),
])
def test_check_real_accepts_boundaries(v, low, high, closed):
    out = check_real("x", v, low, high, closed=closed)
    assert out == float(v) and type(out) is float


@pytest.mark.parametrize("v, low, high, closed, what", [
    (0.0, 0, None, "neither", "finite and > 0"),
    (-1e-300, 0, None, "both", "finite and >= 0"),
    (1.0, None, 1, "left", "finite and < 1"),
    (2.0, None, 1, "both", "finite and <= 1"),
    (1.0, 0, 1, "neither", r"a finite number in \(0, 1\)"),
    (0.0, 0, 1, "right", r"a finite number in \(0, 1\]"),
    (1.0, 0, 1, "left", r"a finite number in \[0, 1\)"),
    (np.nan, None, None, "both", "a finite number"),
    (np.inf, 0, None, "both", "finite and >= 0"),
    (True, 0, None, "both", "finite and >= 0"),
    ("0.5", 0, 1, "both", r"a finite number in \[0, 1\]"),
    (None, 0, None, "both", "finite and >= 0"),
])
def test_check_real_rejects_naming_argument_and_value(v, low, high, closed, what):
    with pytest.raises(ValueError, match=rf"alpha must be {what}; got alpha={v!r}"):
        check_real("alpha", v, low, high, closed=closed)


def test_check_real_allow_none_and_bad_closed():
    assert check_real("kappa", None, 0, 1, allow_none=True) is None
    with pytest.raises(ValueError, match="kappa must be None or a finite number in"):
        check_real("kappa", 2.0, 0, 1, allow_none=True)
    with pytest.raises(ValueError, match="closed must be one of"):
        check_real("kappa", 0.5, 0, 1, closed="open")


def test_check_tol_and_max_iter():
    assert check_tol(1e-300) == 1e-300
    assert check_tol(0, allow_zero=True) == 0.0
    with pytest.raises(ValueError, match=r"tol must be finite and > 0; got tol=0"):
        check_tol(0)
    with pytest.raises(ValueError, match=r"solver_tol must be finite and >= 0; got "
                                         r"solver_tol=-1e-12"):
        check_tol(-1e-12, "solver_tol", allow_zero=True)
    with pytest.raises(ValueError, match="tol must be finite"):
        check_tol(np.inf)
    assert check_max_iter(1) == 1 and check_max_iter(0, low=0) == 0
    with pytest.raises(ValueError, match=r"max_iter must be an int >= 1; got max_iter=0"):
        check_max_iter(0)
    with pytest.raises(ValueError, match=r"max_iter must be an int >= 0; got max_iter=-1"):
        check_max_iter(-1, low=0)


def test_check_n_jobs_joblib_convention():
    assert check_n_jobs(None) == 1
    assert check_n_jobs(1) == 1 and check_n_jobs(np.int32(4)) == 4 and check_n_jobs(-1) == -1
    for bad in (0, -2, 1.0, True, "2"):
        with pytest.raises(ValueError, match=rf"n_jobs must be None, an int >= 1 or -1 "
                                             rf"\(all cores\); got n_jobs={bad!r}"):
            check_n_jobs(bad)


def test_check_choice():
    assert check_choice("method", "fast", ("fast", "cvxpy")) == "fast"
    with pytest.raises(ValueError, match=r"method must be 'fast' or 'cvxpy'; got "
                                         r"method='newton'"):
        check_choice("method", "newton", ("fast", "cvxpy"))
    with pytest.raises(ValueError, match=r"kind must be 'cd', 'ab' or 'both'; got kind=3"):
        check_choice("kind", 3, ("cd", "ab", "both"))


def test_check_radius_and_kappa():
    assert check_kappa(0).shape == () and float(check_kappa(0)) == 0.0
    np.testing.assert_array_equal(check_kappa([0.0, 0.5, 2.0], 3), [0.0, 0.5, 2.0])
    with pytest.raises(ValueError, match=r"kappa must be finite and >= 0; got kappa=-0.5"):
        check_kappa(-0.5, 3)
    with pytest.raises(ValueError, match=r"kappa must be a scalar or have one entry per row "
                                         r"\(3\); got shape \(2,\)"):
        check_kappa([0.1, 0.2], 3)
    with pytest.raises(ValueError, match=r"kappa must be a scalar or have one entry per row; "
                                         r"got shape \(1,\)"):
        check_kappa([0.1])
    with pytest.raises(ValueError, match=r"sigma must be a real number or array; got "
                                         r"sigma='x'"):
        check_radius("sigma", "x", 2)
    with pytest.raises(ValueError, match=r"sigma must be finite and >= 0; got sigma=\[0.1, nan\]"):
        check_radius("sigma", [0.1, np.nan], 2, per="feature")
    with pytest.raises(ValueError, match="one entry per feature"):
        check_radius("sigma", np.ones((2, 2)), 2, per="feature")


def test_check_shape():
    check_shape("B", (4, 3), (4, None))
    with pytest.raises(ValueError, match=r"B has shape \(4, 3\); expected \(5, '\*'\) "
                                         r"\(B has 4 rows; expected 5\)"):
        check_shape("B", (4, 3), (5, None))
    with pytest.raises(ValueError, match=r"B has 3 columns; expected 2"):
        check_shape("B", (4, 3), (None, 2))
    with pytest.raises(ValueError, match=r"b has 4 entries along axis 0; expected 5"):
        check_shape("b", (4,), (5,))


def test_check_finite_matrix_accepts_and_casts():
    M = check_finite_matrix("U", [[1, 2], [3, 4]], (2, None))
    assert M.dtype == np.float64 and M.shape == (2, 2)
    X = np.zeros((3, 2))
    assert check_finite_matrix("X", X) is X  # float64 input is not copied
    v = check_finite_matrix("b", np.array([1, np.float64(2.5)], dtype=object), (2,), ndim=1)
    assert v.dtype == np.float64 and v.tolist() == [1.0, 2.5]
    assert check_finite_matrix("E", np.zeros((0, 3))).shape == (0, 3)


def test_check_finite_matrix_rejects_naming_argument_and_value():
    U = np.ones((3, 4))
    U[2, 1] = np.nan
    U[0, 3] = np.inf
    with pytest.raises(ValueError, match=r"U must be finite; got U\[0, 3\] = inf \(U contains "
                                         r"NaN or inf in 2 entries\)"):
        check_finite_matrix("U", U)
    with pytest.raises(ValueError, match=r"U must be 2-D; got shape \(3,\)"):
        check_finite_matrix("U", np.ones(3))
    with pytest.raises(ValueError, match=r"U must be a real numeric array; got dtype <U1"):
        check_finite_matrix("U", [["a"]])
    with pytest.raises(ValueError, match=r"U has shape \(3, 4\); expected \('\*', 5\)"):
        check_finite_matrix("U", np.ones((3, 4)), (None, 5))
    with pytest.raises(ValueError, match="U is required; got None"):
        check_finite_matrix("U", None)
    with pytest.raises(TypeError, match=r"U is a sparse matrix; pass a dense array"):
        check_finite_matrix("U", sp.csr_matrix(np.eye(2)))


def test_nonfinite_message_singular_and_scalar():
    assert nonfinite_message("a", (), np.nan, 1) == \
        "a must be finite; got a = nan (a contains NaN or inf in 1 entry)"


def test_dataset_makers_check_their_arguments():
    """make_teacher and make_function_fit name a bad argument (a negative n_train used to give
    silently wrong splits, a negative a_norm a teacher with ||A||_inf = 1, a bad
    sparse_columns numpy's message); good ones give the shapes asked for."""
    from lifted_idl.datasets import make_function_fit, make_teacher

    U, y, Ut, yt, info = make_teacher(7, 3, n_features=4, n_hidden=3, sparse_columns=2)
    assert U.shape == (7, 4) and Ut.shape == (3, 4) and info["support"].size == 2
    bad = [dict(n_train=-1), dict(n_test=-1), dict(noise=-1.0), dict(a_norm=-1.0),
           dict(a_norm=1.0), dict(sparse_columns=11), dict(sparse_columns=0),
           dict(n_hidden=0)]
    for kw in bad:
        name = next(iter(kw))
        with pytest.raises(ValueError, match=name):
            make_teacher(**kw)
    with pytest.raises(ValueError, match="n_train"):
        make_function_fit(-1)
