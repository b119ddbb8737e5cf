"""Reliability regression tests (issue 15): the cases a new user tried and the package failed.

* atomic fits: an exception or a KeyboardInterrupt at any point of a fit, for every solver,
  leaves the estimator unfitted (``NotFittedError``) or with its previous model fully usable;
* extreme scales: data multiplied by 1e-300 .. 1e300 fits as at unit scale, or raises clearly;
* ``n_jobs`` follows joblib (None, -1, negative; 0 is an error);
* determinism across processes, concurrent ``predict`` from threads, pickles without cvxpy;
* the LP functions print nothing on stdout (HiGHS's banner) unless ``verbose``.

Model files (lifted_idl.persistence) and the CLI have their cases in ``test_persistence.py``
and ``test_cli.py``. Run: ``python -m pytest -q tests/test_reliability.py
tests/test_persistence.py tests/test_cli.py``.
"""

from __future__ import annotations

import os
import pickle
import pickletools
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

import lifted_idl.estimators as estimators_module
import lifted_idl.training.bcd as bcd_module
import lifted_idl.training.gradient as gradient_module
from lifted_idl import ImplicitClassifier, ImplicitRegressor, blocks

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

ROOT = Path(__file__).resolve().parent.parent
SOLVERS = ("bcd", "gradient", "bcd+gradient")


def _data(m=60, p=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(0.5, 2.0, (m, p)) * rng.choice([-1.0, 1.0], (m, p))
    y = X @ np.linspace(1.0, -1.0, p) + 0.1 * np.sin(3 * X[:, 0])
    labels = (X[:, 0] + X[:, 1] > 0).astype(int)
    return X, y, labels


def _est(kind, solver, **kw):
    cls = ImplicitRegressor if kind == "regressor" else ImplicitClassifier
    params = dict(n_hidden=4, solver=solver, max_iter=3, gradient_max_iter=8, random_state=0)
    return cls(**{**params, **kw})


# ----------------------------------------------------------------------------------------------
# atomic fits
# ----------------------------------------------------------------------------------------------
class _Injected(Exception):
    pass


#: where a fit is broken into: (module, attribute, solvers that reach it)
POINTS = {
    "standardise": (estimators_module, "_standardise", SOLVERS),
    "fit_bcd": (bcd_module, "fit_bcd", ("bcd", "bcd+gradient")),
    "fit_gradient": (gradient_module, "fit_gradient", ("gradient", "bcd+gradient")),
    "cd_block_2nd_call": (blocks, "solve_cd", ("bcd", "bcd+gradient")),
    "cd_block": (blocks, "solve_cd", SOLVERS),
    "fold": (estimators_module, "_fold_standardisation", SOLVERS),
}
CASES = [(kind, solver, point, exc)
         for kind in ("regressor", "classifier")
         for point, (_, _, solvers) in POINTS.items()
         for solver in solvers
         for exc in (_Injected, KeyboardInterrupt)]


def _inject(monkeypatch, point, exc):
    """Make the ``point`` of a fit raise ``exc``; returns the list of hits."""
    module, name, _ = POINTS[point]
    original = getattr(module, name)
    after = 1 if point.endswith("2nd_call") else 0
    hits = []

    def broken(*a, **k):
        hits.append(name)
        if len(hits) > after:
            raise exc("injected")
        return original(*a, **k)

    monkeypatch.setattr(module, name, broken)
    return hits


def _target(kind, X, y, labels, outputs=1):
    if kind == "classifier":
        return labels
    return y if outputs == 1 else np.column_stack([y, -y])


@pytest.mark.parametrize("kind,solver,point,exc", CASES,
                         ids=[f"{k}-{s}-{p}-{e.__name__}" for k, s, p, e in CASES])
def test_failed_fit_leaves_the_estimator_as_it_was(kind, solver, point, exc, monkeypatch):
    X, y, labels = _data()
    # a first fit that fails: the estimator stays unfitted
    est = _est(kind, solver)
    with monkeypatch.context() as mp:
        hits = _inject(mp, point, exc)
        with pytest.raises(exc):
            est.fit(X, _target(kind, X, y, labels))
        assert hits, f"{point} was not reached by solver={solver!r}"
    with pytest.raises(NotFittedError):
        check_is_fitted(est)
    with pytest.raises(NotFittedError):
        est.predict(X)
    assert not hasattr(est, "n_features_in_")
    # a refit with another width (and, for the regressor, two outputs) that fails: the
    # previous model is kept whole, with its input width and its output shape
    est.fit(X, _target(kind, X, y, labels))
    before = est.predict(X).copy()
    X2 = np.hstack([X, X[:, :1]])
    with monkeypatch.context() as mp:
        _inject(mp, point, exc)
        with pytest.raises(exc):
            est.fit(X2, _target(kind, X2, y, labels, outputs=2))
    assert est.n_features_in_ == 3
    after = est.predict(X)
    assert after.shape == before.shape
    np.testing.assert_array_equal(after, before)
    with pytest.raises(ValueError, match="features"):
        est.predict(X2)


def test_failed_fit_on_bad_targets_leaves_the_estimator_unfitted():
    X, y, _ = _data()
    reg = ImplicitRegressor(max_iter=1)
    with pytest.raises(ValueError, match="constant"):
        reg.fit(X, np.ones(len(X)))
    with pytest.raises(NotFittedError):
        reg.predict(X)
    clf = ImplicitClassifier(max_iter=1)
    with pytest.raises(ValueError, match="class"):
        clf.fit(X, np.zeros(len(X)))
    with pytest.raises(NotFittedError):
        clf.predict(X)
    # a failed refit on new feature names keeps the old names
    pd = pytest.importorskip("pandas")
    reg = ImplicitRegressor(n_hidden=3, max_iter=1, random_state=0)
    reg.fit(pd.DataFrame(X, columns=["a", "b", "c"]), y)
    with pytest.raises(ValueError, match="constant"):
        reg.fit(pd.DataFrame(X, columns=["u", "v", "w"]), np.ones(len(X)))
    assert list(reg.feature_names_in_) == ["a", "b", "c"]
    assert reg.predict(pd.DataFrame(X, columns=["a", "b", "c"])).shape == (len(X),)


# ----------------------------------------------------------------------------------------------
# extreme scales
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("solver", ["bcd", "gradient"])
@pytest.mark.parametrize("scale", [1e-300, 1e-150, 1e150, 1e155, 1e300])
def test_scaled_data_fits_as_at_unit_scale(solver, scale):
    X, y, labels = _data()
    base = _est("regressor", solver).fit(X, y).predict(X)
    # inputs and targets scaled together, and inputs alone
    both = _est("regressor", solver).fit(X * scale, y * scale).predict(X * scale) / scale
    np.testing.assert_allclose(both, base, rtol=1e-7, atol=1e-7 * np.abs(base).max())
    inputs = _est("regressor", solver).fit(X * scale, y).predict(X * scale)
    np.testing.assert_allclose(inputs, base, rtol=1e-7, atol=1e-7 * np.abs(base).max())
    clf = _est("classifier", solver).fit(X, labels)
    scaled = _est("classifier", solver).fit(X * scale, labels)
    np.testing.assert_array_equal(scaled.predict(X * scale), clf.predict(X))
    np.testing.assert_allclose(scaled.predict_proba(X * scale), clf.predict_proba(X),
                               rtol=1e-6, atol=1e-9)


def test_tiny_targets_are_not_constant_and_overflow_is_a_clear_error():
    X, y, _ = _data()
    reg = _est("regressor", "bcd").fit(X, y * 1e-300)
    base = _est("regressor", "bcd").fit(X, y).predict(X)
    np.testing.assert_allclose(reg.predict(X) / 1e-300, base, rtol=1e-7, atol=1e-9)
    # features at 1e-300 and targets at 1e300: the raw-feature model's weights would be 1e600
    with pytest.raises(ValueError, match="overflows float64"):
        _est("regressor", "bcd").fit(X * 1e-300, y * 1e300)
    # a feature whose spread is below the smallest normal float
    Xs = X.copy()
    Xs[:, 1] = 1e-300 * (1 + 1e-11 * np.arange(len(X)))
    with pytest.raises(ValueError, match="X column 1 varies by"):
        _est("regressor", "bcd").fit(Xs, y)


# ----------------------------------------------------------------------------------------------
# n_jobs
# ----------------------------------------------------------------------------------------------
def test_n_jobs_follows_joblib(monkeypatch):
    import joblib

    X, y, _ = _data()
    seen = []
    original = bcd_module.fit_bcd

    def spy(*a, **k):
        seen.append(k["n_jobs"])
        return original(*a, **k)

    monkeypatch.setattr(bcd_module, "fit_bcd", spy)
    preds = {}
    for n_jobs in (None, 1, -1, -2):
        preds[n_jobs] = _est("regressor", "bcd", n_jobs=n_jobs).fit(X, y).predict(X)
    cores = joblib.cpu_count()
    assert seen == [1, 1, cores, max(cores - 1, 1)]
    for p in preds.values():  # the row-parallel (A,B) block gives the same answer
        np.testing.assert_allclose(p, preds[None], rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="'n_jobs' parameter.*Got 0"):
        _est("regressor", "bcd", n_jobs=0).fit(X, y)
    with pytest.raises(ValueError, match="n_jobs"):
        _est("regressor", "bcd", n_jobs=1.5).fit(X, y)


# ----------------------------------------------------------------------------------------------
# determinism, threads, pickles
# ----------------------------------------------------------------------------------------------
_CHILD = """
import sys, warnings
import numpy as np
warnings.simplefilter("ignore")
from lifted_idl import ImplicitRegressor
rng = np.random.default_rng(0)
X = rng.standard_normal((80, 4))
y = np.tanh(X @ [1.0, -2.0, 0.5, 1.0])
for solver in ("bcd", "bcd+gradient"):
    reg = ImplicitRegressor(n_hidden=5, max_iter=3, solver=solver, gradient_max_iter=10,
                            random_state=7).fit(X, y)
    sys.stdout.write(reg.predict(X).tobytes().hex())
"""


def _run_all(commands, env):
    """Run the commands at once; their CompletedProcess results, in order."""
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for c in commands]
    outs = []
    for c, p in zip(commands, procs, strict=True):
        out, err = p.communicate(timeout=180)
        outs.append(subprocess.CompletedProcess(c, p.returncode, out, err))
    return outs


def test_same_random_state_gives_bit_identical_predictions_across_processes():
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    outs = _run_all([[sys.executable, "-c", _CHILD]] * 2, env)
    for r in outs:
        assert r.returncode == 0, r.stderr
    assert len(outs[0].stdout) == 2 * 80 * 16
    assert outs[0].stdout == outs[1].stdout


def test_concurrent_predict_from_threads_matches_serial():
    X, y, labels = _data(m=300, p=4, seed=1)
    reg = _est("regressor", "bcd").fit(X, y)
    clf = _est("classifier", "bcd").fit(X, labels)
    chunks = np.array_split(np.arange(len(X)), 12)
    serial = [(reg.predict(X[c]), clf.predict_proba(X[c])) for c in chunks]
    fresh = pickle.loads(pickle.dumps((reg, clf)))  # empty caches: threads fill them at once
    with ThreadPoolExecutor(6) as pool:
        got = list(pool.map(lambda c: (fresh[0].predict(X[c]), fresh[1].predict_proba(X[c])),
                            chunks * 3))
    for k, (p, q) in enumerate(got):
        np.testing.assert_array_equal(p, serial[k % len(chunks)][0])
        np.testing.assert_array_equal(q, serial[k % len(chunks)][1])


@pytest.mark.parametrize("kind", ["regressor", "classifier"])
def test_pickle_holds_no_cvxpy_objects_after_a_cvxpy_fit(kind):
    X, y, labels = _data()
    est = _est(kind, "bcd", block_solver="cvxpy", max_iter=2)
    est.fit(X, _target(kind, X, y, labels))
    blob = pickle.dumps(est)
    modules = {str(op[1]).split(" ")[0] for op in pickletools.genops(blob)
               if op[0].name in ("GLOBAL", "STACK_GLOBAL")}
    strings = [op[1] for op in pickletools.genops(blob) if isinstance(op[1], str)]
    assert not any(m.startswith("cvxpy") for m in modules)
    assert not any(s.startswith("cvxpy") and s != "cvxpy" for s in strings)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # unpickling needs no cvxpy state
        again = pickle.loads(blob)
    np.testing.assert_array_equal(again.predict(X), est.predict(X))


# ----------------------------------------------------------------------------------------------
# quiet LP solvers: HiGHS prints its banner on fd 1 on first use in a process
# ----------------------------------------------------------------------------------------------
_LP_CHILD = """
import sys
import numpy as np
from lifted_idl import ImplicitModel
from lifted_idl.robustness import lp_attack, lp_certify, lp_state_bound
rng = np.random.default_rng(0)
A = rng.standard_normal((5, 5))
A *= 0.5 / np.abs(A).sum(axis=1).max()
model = ImplicitModel(A, rng.standard_normal((5, 3)), rng.standard_normal((2, 5)),
                      np.zeros((2, 3)))
U = rng.standard_normal((3, 3))
verbose = sys.argv[2] == "verbose"
if sys.argv[1] == "lp_state_bound":
    r = lp_state_bound(model, U[0], 0.1, np.ones(5), verbose=verbose).bound
elif sys.argv[1] == "lp_attack":
    r = lp_attack(model, U[0], 0.1, np.array([1.0, -1.0]), verbose=verbose).value
else:
    y = model.predict(U).argmax(axis=1)
    r = lp_certify(model, U, y, 0.01, screen=False).sum()
sys.stderr.write(f"result {r}")
"""


def test_lp_functions_print_nothing_unless_verbose():
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    cases = [("lp_state_bound", "quiet"), ("lp_attack", "quiet"), ("lp_certify", "quiet"),
             ("lp_state_bound", "verbose")]
    outs = _run_all([[sys.executable, "-c", _LP_CHILD, fn, mode] for fn, mode in cases], env)
    for (fn, mode), r in zip(cases, outs, strict=True):
        assert r.returncode == 0, r.stderr
        assert "result" in r.stderr
        if mode == "quiet":
            assert r.stdout == "", fn
        else:  # the same check sees the solver's output when it is asked for
            assert "HiGHS" in r.stdout
