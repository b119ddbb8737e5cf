"""The (A, B, b) rows solved in parallel: ``solve_ab(..., n_jobs=k)``, ``solve_ab_robust``.

The rows of ``[A B b]`` are independent problems, so a solve split into chunks of rows must give
the sequential answer (objective within 1e-8 relative, the same point up to rounding), still
agree with the cvxpy formulation and satisfy the block's optimality conditions; the chunks'
iteration counts and convergence flags must be combined honestly (max, all).
"""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import ACTS, PENS, RTOL, rel
from _helpers import ab_fixed_point_residual as fixed_point_residual
from threadpoolctl import threadpool_info

import lifted_idl.blocks.ab as ab_module
import lifted_idl.blocks.ab_robust as robust_module
from lifted_idl.activations import ReLU
from lifted_idl.blocks import (
    _common,
    ab_objective,
    ab_robust_objective,
    solve_ab,
    solve_ab_robust,
)
from lifted_idl.blocks._common import check_n_jobs, row_chunks, solve_row_chunks
from lifted_idl.penalties import GroupPenalty, L1Penalty, L2Penalty, NoPenalty
from lifted_idl.wellposedness import inf_norm, project_inf_norm_ball

SAME = 1e-8  # n_jobs > 1 against n_jobs = 1, relative objective


def instance(seed, act, m=60, n=10, p=4, kappa=0.5, slow_half=False):
    """A generic (A, B) block; with ``slow_half`` the last n/2 states get 100x smaller weights
    (their rows need more Newton iterations, so the two halves finish at different counts)."""
    rng = np.random.default_rng(seed)
    U = np.hstack([rng.standard_normal((m, p - 1)), np.ones((m, 1))])
    X = np.maximum(rng.standard_normal((m, n)), 0.0)
    if isinstance(act, ReLU):
        A0 = project_inf_norm_ball(rng.standard_normal((n, n)), kappa)
        Z = X @ A0.T + U @ rng.standard_normal((n, p)).T + 0.3 * rng.standard_normal((m, n))
        P = np.maximum(Z, 0.0)
    else:
        P = np.tanh(rng.standard_normal((m, n)))
    lam = rng.uniform(0.5, 3.0, n)
    if slow_half:
        lam[n // 2:] *= 1e-2
    return X, U, P, lam, kappa


@pytest.fixture
def chunk_spy(monkeypatch):
    """Records, for every chunk that solve_ab's Newton method solves: its P columns, the
    chunk's (n_iter, converged) and the BLAS thread counts seen inside the chunk."""
    calls = []
    inner = ab_module._ab_newton_rows

    def spy(*args, **kwargs):
        out = inner(*args, **kwargs)
        blas = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
        calls.append({"P": args[1].copy(), "n_iter": out[1], "converged": out[2],
                      "blas_threads": blas})
        return out

    monkeypatch.setattr(ab_module, "_ab_newton_rows", spy)
    return calls


# --------------------------------------------------------------------------------------------
# solve_ab
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("act", ACTS, ids=["relu", "tanh"])
@pytest.mark.parametrize("pen", PENS, ids=["none", "l2", "l1"])
def test_parallel_matches_sequential_cvxpy_and_fixed_point(act, pen):
    X, U, P, lam, kappa = instance(1, act)
    args = (X, U, P, lam, kappa, act, pen)
    seq = solve_ab(*args)
    par = solve_ab(*args, n_jobs=2)
    ref = solve_ab(*args, method="cvxpy", n_jobs=2)  # cvxpy: one problem, n_jobs ignored
    assert seq.converged and par.converged and par.solver == "newton"
    assert rel(par.objective, seq.objective) < SAME
    for a, b in zip(par.value, seq.value, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-7)
    assert rel(par.objective, ref.objective) < RTOL
    A, B, b = par.value
    assert inf_norm(A) <= kappa * (1 + 1e-12)
    assert par.objective == pytest.approx(ab_objective(*args, A, B, b), rel=1e-14)
    assert fixed_point_residual(*args, A, B, b) < 1e-7


@pytest.mark.parametrize("act", ACTS, ids=["relu", "tanh"])
def test_parallel_uneven_chunks_no_bias_and_warm_start(act):
    """Three chunks of 4, 3, 3 rows; no bias; a warm start (its rows travel with the chunks)."""
    X, U, P, lam, kappa = instance(2, act)
    n, p = X.shape[1], U.shape[1]
    rng = np.random.default_rng(7)
    init = (project_inf_norm_ball(rng.standard_normal((n, n)), kappa),
            rng.standard_normal((n, p)), rng.standard_normal(n))
    args = (X, U, P, lam, kappa, act, L2Penalty(0.01))
    for fit_bias in (False, True):
        seq = solve_ab(*args, fit_bias=fit_bias, init=init)
        par = solve_ab(*args, fit_bias=fit_bias, init=init, n_jobs=3)
        ref = solve_ab(*args, fit_bias=fit_bias, method="cvxpy")
        assert par.converged
        assert rel(par.objective, seq.objective) < SAME
        assert rel(par.objective, ref.objective) < RTOL
        assert par.objective <= ab_objective(*args, *init[:2], init[2] if fit_bias else None)
        A, B, b = par.value
        if not fit_bias:
            assert np.all(b == 0.0)
        assert fixed_point_residual(*args, A, B, b, fit_bias=fit_bias) < 1e-7
    # more workers than rows: one row a chunk
    many = solve_ab(*args, n_jobs=4 * n)
    assert rel(many.objective, seq.objective) < SAME


def test_parallel_chunks_are_contiguous_and_flags_combined(chunk_spy):
    """Two contiguous halves; n_iter is the slower chunk's, converged needs both chunks."""
    act = ReLU()
    X, U, P, lam, kappa = instance(2, act, slow_half=True)
    args = (X, U, P, lam, kappa, act, NoPenalty())
    seq = solve_ab(*args)
    assert len(chunk_spy) == 1 and chunk_spy[0]["P"].shape == P.shape
    chunk_spy.clear()
    par = solve_ab(*args, n_jobs=2)
    assert len(chunk_spy) == 2
    cols = sorted((c["P"] for c in chunk_spy), key=lambda Pc: not np.array_equal(Pc, P[:, :5]))
    np.testing.assert_array_equal(cols[0], P[:, :5])
    np.testing.assert_array_equal(cols[1], P[:, 5:])
    iters = [c["n_iter"] for c in chunk_spy]
    assert min(iters) < max(iters)  # the instance separates the halves
    assert par.n_iter == max(iters) == seq.n_iter
    assert par.converged and all(c["converged"] for c in chunk_spy)
    # an iteration budget that only the faster chunk meets: not converged, n_iter = max_iter
    budget = (min(iters) + max(iters)) // 2
    chunk_spy.clear()
    cut = solve_ab(*args, n_jobs=2, max_iter=budget)
    flags = sorted(c["converged"] for c in chunk_spy)
    assert flags == [False, True]
    assert not cut.converged and cut.n_iter == budget
    assert cut.converged == solve_ab(*args, max_iter=budget).converged


def test_parallel_threads_run_blas_single_threaded(chunk_spy):
    X, U, P, lam, kappa = instance(3, ReLU())
    before = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    solve_ab(X, U, P, lam, kappa, "relu", "l2", n_jobs=2)
    assert len(chunk_spy) == 2
    assert all(t == 1 for c in chunk_spy for t in c["blas_threads"])
    after = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    assert after == before  # the limit is lifted when the block returns


def test_group_penalty_falls_back_to_sequential(chunk_spy):
    """The group penalty couples the rows: n_jobs is ignored, the answer is bit-identical."""
    X, U, P, lam, kappa = instance(4, ReLU())
    D = np.random.default_rng(0).standard_normal((2, U.shape[1]))
    pen = GroupPenalty(0.05).restrict("ab", {"D": D})
    seq = solve_ab(X, U, P, lam, kappa, "relu", pen)
    par = solve_ab(X, U, P, lam, kappa, "relu", pen, n_jobs=2)
    assert par.solver == seq.solver == "group_newton"
    assert chunk_spy == []  # the row-separable Newton method was not used
    assert par.objective == seq.objective and par.n_iter == seq.n_iter
    for a, b in zip(par.value, seq.value, strict=True):
        np.testing.assert_array_equal(a, b)
    # strength 0: no penalty, rows separable again, so the chunks are used
    free = solve_ab(X, U, P, lam, kappa, "relu", GroupPenalty(0.0).restrict("ab", {"D": D}),
                    n_jobs=2)
    assert len(chunk_spy) == 2
    assert rel(free.objective, solve_ab(X, U, P, lam, kappa, "relu", "none").objective) < SAME


def test_process_backend_gives_the_same_answer(monkeypatch):
    """The chunk solvers are module-level functions of plain arrays: loky processes work too."""
    X, U, P, lam, kappa = instance(5, ReLU())
    args = (X, U, P, lam, kappa, "relu", L1Penalty(0.02))
    seq = solve_ab(*args)
    rseq = solve_ab_robust(*args, 0.2)
    monkeypatch.setattr(_common, "ROW_BACKEND", "loky")
    par = solve_ab(*args, n_jobs=2)
    rpar = solve_ab_robust(*args, 0.2, n_jobs=2)
    assert par.converged and rel(par.objective, seq.objective) < SAME
    assert rpar.converged and rel(rpar.objective, rseq.objective) < SAME


# --------------------------------------------------------------------------------------------
# solve_ab_robust
# --------------------------------------------------------------------------------------------
ROBUST_CASES = [
    (1, NoPenalty(), 0.3, True),
    (2, L2Penalty(0.02), np.array([0.0, 0.2, 0.5, 0.1]), True),
    (3, L1Penalty(0.01), 0.2, True),
    (4, L2Penalty(0.01), 0.4, False),
]


@pytest.mark.parametrize("seed, pen, sigma, fit_bias", ROBUST_CASES)
def test_robust_parallel_matches_sequential_and_cvxpy(seed, pen, sigma, fit_bias, monkeypatch):
    X, U, P, lam, kappa = instance(seed, ReLU(), m=40, n=7)
    args = (X, U, P, lam, kappa, "relu", pen, sigma)
    calls = []
    inner = robust_module._newton_rows

    def spy(*a, **k):
        out = inner(*a, **k)
        calls.append((a[3].shape[1], out[1], out[2]))
        return out

    monkeypatch.setattr(robust_module, "_newton_rows", spy)
    seq = solve_ab_robust(*args, fit_bias=fit_bias, tol=1e-10)
    calls.clear()
    par = solve_ab_robust(*args, fit_bias=fit_bias, tol=1e-10, n_jobs=2)
    ref = solve_ab_robust(*args, fit_bias=fit_bias, method="cvxpy", tol=1e-9)
    assert sorted(c[0] for c in calls) == [3, 4]  # 7 rows: contiguous chunks of 3 and 4
    assert par.n_iter == max(c[1] for c in calls) and par.converged
    assert par.solver == "newton"
    assert rel(par.objective, seq.objective) < SAME
    for a, b in zip(par.value, seq.value, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-7)
    assert abs(par.objective - ref.objective) <= RTOL * abs(ref.objective)
    A, B, b = par.value
    assert inf_norm(A) <= kappa * (1 + 1e-12)
    assert par.objective == pytest.approx(ab_robust_objective(*args, A, B, b), rel=1e-14)


# --------------------------------------------------------------------------------------------
# n_jobs and the chunking helpers
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2", [2]])
def test_bad_n_jobs_raise(bad):
    X, U, P, lam, kappa = instance(6, ReLU(), m=20, n=4, p=2)
    with pytest.raises(ValueError, match="n_jobs"):
        solve_ab(X, U, P, lam, kappa, "relu", "none", n_jobs=bad)
    with pytest.raises(ValueError, match="n_jobs"):
        solve_ab(X, U, P, lam, kappa, "relu", "none", method="cvxpy", n_jobs=bad)
    with pytest.raises(ValueError, match="n_jobs"):
        solve_ab_robust(X, U, P, lam, kappa, "relu", "none", 0.1, n_jobs=bad)


def test_n_jobs_values():
    import joblib

    assert check_n_jobs(None) == 1 and check_n_jobs(1) == 1 and check_n_jobs(3) == 3
    assert check_n_jobs(np.int64(2)) == 2
    assert check_n_jobs(-1) == joblib.cpu_count()
    X, U, P, lam, kappa = instance(6, ReLU(), m=20, n=4, p=2)
    seq = solve_ab(X, U, P, lam, kappa, "relu", "none")
    for n_jobs in (None, 1):  # the sequential path: bit-identical
        again = solve_ab(X, U, P, lam, kappa, "relu", "none", n_jobs=n_jobs)
        assert again.objective == seq.objective
    every = solve_ab(X, U, P, lam, kappa, "relu", "none", n_jobs=-1)
    assert rel(every.objective, seq.objective) < SAME


def test_row_chunks_and_combination():
    for n_rows, k in [(10, 3), (10, 2), (7, 7), (3, 8), (5, 1), (1, 4)]:
        chunks = row_chunks(n_rows, k)
        sizes = [c.stop - c.start for c in chunks]
        assert len(chunks) == min(k, n_rows)
        assert chunks[0].start == 0 and chunks[-1].stop == n_rows
        assert all(a.stop == b.start for a, b in zip(chunks, chunks[1:], strict=False))
        assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1

    flags = {0: (4, True), 1: (9, False), 2: (6, True)}

    def fake(start, stop, n_iter, conv):
        return np.arange(start, stop)[:, None] * np.ones((1, 2)), n_iter, conv

    def task(rows):
        return fake, (rows.start, rows.stop) + flags[rows.start // 4]

    W, n_iter, conv = solve_row_chunks(task, 12, 3)
    np.testing.assert_array_equal(W[:, 0], np.arange(12))  # stacked in row order
    assert n_iter == 9 and conv is False
    flags[1] = (9, True)
    assert solve_row_chunks(task, 12, 3)[1:] == (9, True)
