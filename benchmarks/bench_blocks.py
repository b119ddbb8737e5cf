"""Speed of the four BCD blocks: the fast solvers against the cvxpy formulation (same process).

Run ``python benchmarks/bench_blocks.py`` (add ``--quick`` for n = 20 only, ``--parallel`` for
the parallel (A, B) section alone, ``--group-linf`` for the l-inf group (A, B) solvers alone).
For each block and size it prints the fast solver's time (median of 3, warm-started from a
perturbed point as in the BCD loop, and cold), the
cvxpy/Clarabel time (build + solve, one run), the relative objective gap
(fast - cvxpy) / |cvxpy| (negative: the fast answer is lower) and the speed-up ratio
cvxpy / fast. For the (A, B) block it also times the first-order baseline (FISTA with per-row
steps and restarts) that the semismooth Newton solver replaced, for X both the accelerated
gradient and the Newton solver, and for the cross-entropy (C, D) block with a ridge (small
enough for Newton with the explicit Hessian) its Newton-CG path (the path of larger blocks).

Parallel rows of the (A, B) block (``solve_ab(..., n_jobs=2)`` against ``n_jobs=1``), at
m = 2000, n = 100, p = 64, cold starts: the loop-like ReLU instance below, the teacher instance
with an l2 penalty (ReLU) and with tanh. Rounds interleave n_jobs = 1, n_jobs = 2 with joblib
threads (the default backend) and n_jobs = 2 with loky processes (after one warm-up call that
starts the workers, whose cost is printed separately). The speed-up is the ratio of the fastest
rounds, t(n_jobs=1) / t(n_jobs=2), with the median of the per-round ratios in brackets, and
the relative objective gap of each parallel answer to the sequential one.

Data: a teacher implicit ReLU (or tanh) model with ||A||_inf = 0.5, inputs N(0, I), m = 500,
p = 10; X and P are the teacher's equilibrium plus noise (P in dom f*), per-state weights
lam ~ U[0.1, 2], mu = 0.5, kappa = 0.9.

BLAS is limited to one thread (threadpoolctl): on a small shared machine, multithreaded OpenBLAS
makes the many small products of these solvers 10-100x slower and the timings meaningless.
"""

from __future__ import annotations

import contextlib
import functools
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from lifted_idl import ImplicitModel
from lifted_idl.activations import ReLU, Tanh
from lifted_idl.blocks import _common, solve_ab, solve_cd, solve_p, solve_x
from lifted_idl.blocks import cd as _cd
from lifted_idl.blocks.objective import _ab_objective
from lifted_idl.blocks.x import _x_agd, _x_newton
from lifted_idl.losses import SoftmaxCrossEntropy, SquaredLoss
from lifted_idl.penalties import L1Penalty, L2Penalty, NoPenalty
from lifted_idl.wellposedness import _project_l1_rows, project_inf_norm_ball

#: The baseline: the cvxpy formulation solved by Clarabel (the package's cvxpy solver when the
#: measurements below were recorded; ``method="cvxpy"`` now picks OSQP for quadratic programs,
#: which ``bench_cvxpy_solvers.py`` compares).
REF = {"method": "cvxpy", "cvxpy_solver": "CLARABEL"}


def _ab_fista(X, U, P, lam, kappa, act, pen, fit_bias, init, tol, max_iter):
    """FISTA baseline (per-row steps, momentum and gradient restarts, O'Donoghue & Candès 2015).

    The first-order solver that the semismooth Newton method of
    :func:`lifted_idl.blocks.solve_ab` replaced, kept here as the baseline this benchmark times
    against it (the package does not ship it). Returns ``(A, B, b, n_iter, converged)``.
    """
    m, n = X.shape
    p = U.shape[1]
    d = n + p
    if fit_bias:
        mbar = np.concatenate([X.mean(axis=0), U.mean(axis=0)])
        Mc = np.hstack([X, U])
        Mc -= mbar
    else:
        mbar = np.zeros(d)
        Mc = np.hstack([X, U])
    gamma = float(act.lipschitz)
    sM = float(np.linalg.eigvalsh(Mc.T @ Mc)[-1]) if d else 0.0
    # per-row steps: 1/L_i with L_i = (lam_i gamma / m) ||Mc||^2 (bias: lam_i gamma)
    step_W = m / (lam * gamma * max(sM, 1e-300))
    step_b = 1.0 / (lam * gamma)
    stepW_col = step_W[:, None]
    scale_g = lam / m

    if init is None:
        Wx = np.zeros((n, d))
        bx = np.zeros(n)
    else:
        Wx = np.hstack([project_inf_norm_ball(init[0], kappa), init[1]])
        bx = init[2] + Wx @ mbar if fit_bias else np.zeros(n)
    Wy, by = Wx.copy(), bx.copy()
    t = np.ones(n)
    converged = False
    n_iter = 0
    for k in range(1, max_iter + 1):
        n_iter = k
        Z = Mc @ Wy.T
        if fit_bias:
            Z += by
        G = act(Z)
        G -= P
        G *= scale_g
        gW = G.T @ Mc
        Wn = Wy - stepW_col * gW
        Wn = pen.prox(Wn, stepW_col)
        WnA = Wn[:, :n]
        _project_l1_rows(WnA, kappa, out=WnA)
        if fit_bias:
            bn = by - step_b * G.sum(axis=0)
        else:
            bn = by
        dW = Wn - Wy
        db = bn - by
        step = max(float(np.abs(dW).max(initial=0.0)), float(np.abs(db).max(initial=0.0)))
        scale = max(1.0, float(np.abs(Wn).max(initial=0.0)), float(np.abs(bn).max(initial=0.0)))
        if step <= tol * scale:
            Wx, bx = Wn, bn
            converged = True
            break
        # per-row gradient restart: the step opposes the momentum direction
        restart = ((dW * (Wn - Wx)).sum(axis=1) + db * (bn - bx)) < 0.0
        # with dW = Wn - Wy, "(Wy - Wn) . (Wn - Wx) > 0" <=> "dW . (Wn - Wx) < 0"
        t_new = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
        beta = (t - 1.0) / t_new
        beta[restart] = 0.0
        t_new[restart] = 1.0
        Wy = Wn + beta[:, None] * (Wn - Wx)
        by = bn + beta * (bn - bx) if fit_bias else bn
        Wx, bx, t = Wn, bn, t_new
    A = np.ascontiguousarray(Wx[:, :n])
    B = np.ascontiguousarray(Wx[:, n:])
    b = bx - Wx @ mbar if fit_bias else np.zeros(n)
    return A, B, b, n_iter, converged


def make(m, n, p, q, act, seed=0, classify=False):
    rng = np.random.default_rng(seed)
    U = rng.standard_normal((m, p))
    A = project_inf_norm_ball(rng.standard_normal((n, n)), 0.5)
    B = rng.standard_normal((n, p)) / np.sqrt(p)
    b = 0.1 * rng.standard_normal(n)
    C = rng.standard_normal((q, n))
    D = rng.standard_normal((q, p))
    model = ImplicitModel(A, B, C, D, b=b, activation=act)
    Xs = model.equilibrium(U)
    Yhat = model.predict(U)
    if classify:
        # noisy labels: not linearly separable, so the unpenalised cross-entropy has a minimiser
        Y = np.eye(q)[np.argmax(Yhat + 2.0 * Yhat.std() * rng.standard_normal(Yhat.shape),
                                axis=1)]
    else:
        Y = Yhat + 0.1 * Yhat.std() * rng.standard_normal(Yhat.shape)
    noise = 0.1 * rng.standard_normal((m, n))
    if isinstance(act, ReLU):
        P = np.maximum(Xs + noise, 0.0)
    else:
        P = np.tanh(np.arctanh(np.clip(Xs, -0.99, 0.99)) + noise)
    X = Xs + 0.1 * rng.standard_normal((m, n))
    lam = rng.uniform(0.1, 2.0, n)
    A0 = project_inf_norm_ball(A + 0.05 * rng.standard_normal((n, n)), 0.9)
    B0 = B + 0.05 * rng.standard_normal(B.shape)
    return dict(U=U, A=A, B=B, b=b, C=C, D=D, c=np.zeros(q), X=X, P=P, Y=Y, lam=lam, mu=0.5,
                kappa=0.9, init_ab=(A0, B0, b), act=act)


def make_loop_like(m, n, p, seed=1, rank=4):
    """An (A, B) instance shaped like the ones the BCD loop produces: a constant input column
    (the appended bias), states that are ReLU features of U through a nearly low-rank map (so
    the states are strongly correlated given U: an ill-conditioned design), small per-state
    weights, and every row of A on the kappa ball at the optimum."""
    rng = np.random.default_rng(seed)
    U = np.hstack([rng.standard_normal((m, p - 1)), np.ones((m, 1))])
    W = (rng.standard_normal((n, rank)) @ rng.standard_normal((rank, p))
         + 0.3 * rng.standard_normal((n, p))) / np.sqrt(p)
    X = np.maximum(U @ W.T, 0.0)
    P = np.maximum(X + 0.3 * rng.standard_normal((m, n)), 0.0)
    lam = 1e-3 + 0.6 * rng.random(n) ** 3
    A0 = project_inf_norm_ball(rng.standard_normal((n, n)), 0.9)
    return (X, U, P, lam, 0.9, ReLU(), NoPenalty().restrict("ab")), (A0, W, np.zeros(n))


def timed(fn, reps=3):
    times, out = [], None
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def report(name, t_fast, t_cold, t_ref, obj_fast, obj_ref, extra=""):
    gap = (obj_fast - obj_ref) / max(abs(obj_ref), 1e-300)
    print(f"{name:<38} fast {t_fast * 1e3:8.1f} ms  cold {t_cold * 1e3:8.1f} ms  "
          f"cvxpy {t_ref * 1e3:9.1f} ms  ratio {t_ref / t_fast:8.1f}x  gap {gap:+.1e}{extra}",
          flush=True)


def bench_size(n, act, with_cvxpy=True):
    m, p = 500, 10
    tag = f"m={m} n={n} p={p} {type(act).__name__}"
    d = make(m, n, p, 1, act)
    # ---- (A, B, b)
    for pen in (NoPenalty(), L2Penalty(1e-3), L1Penalty(1e-3)):
        # the private solvers take the block's view of the penalty
        args = (d["X"], d["U"], d["P"], d["lam"], d["kappa"], act, pen.restrict("ab"))
        tf, rf = timed(lambda args=args: solve_ab(*args, init=d["init_ab"]))
        tc, _ = timed(lambda args=args: solve_ab(*args), reps=1)
        tr, rr = timed(lambda args=args: solve_ab(*args, **REF), reps=1)
        tfi, out = timed(lambda args=args: _ab_fista(*args, True, d["init_ab"], 1e-8, 20000),
                         reps=1)
        A, B, b = out[:3]
        fobj = _ab_objective(*args, A, B, b)
        extra = (f"  | FISTA {tfi * 1e3:.0f} ms ({out[3]} it, gap "
                 f"{(fobj - rf.objective) / abs(rf.objective):+.0e}): newton/fista speed-up "
                 f"{tfi / tf:.1f}x")
        report(f"AB {pen!r} {tag}", tf, tc, tr, rf.objective, rr.objective, extra)
    if isinstance(act, ReLU):
        args, init = make_loop_like(m, n, p)
        tf, rf = timed(lambda: solve_ab(*args, init=init))
        tc, _ = timed(lambda: solve_ab(*args), reps=1)
        tr, rr = timed(lambda: solve_ab(*args, **REF), reps=1)
        tfi, out = timed(lambda: _ab_fista(*args, True, init, 1e-8, 20000), reps=1)
        fobj = _ab_objective(*args, *out[:3])
        extra = (f"  | FISTA {tfi * 1e3:.0f} ms ({out[3]} it, gap "
                 f"{(fobj - rf.objective) / abs(rf.objective):+.0e}): newton/fista speed-up "
                 f"{tfi / tf:.1f}x")
        report(f"AB loop-like m={m} n={n} p={p} ReLU", tf, tc, tr, rf.objective, rr.objective,
               extra)
    # ---- X
    for lam_scale in (1.0, 100.0):
        lam = d["lam"] * lam_scale
        args = (d["A"], d["B"], d["b"], d["U"], d["P"], lam, d["mu"], act)
        tf, rf = timed(lambda args=args: solve_x(*args, init=d["X"]))
        tc, _ = timed(lambda args=args: solve_x(*args), reps=1)
        tr, rr = timed(lambda args=args: solve_x(*args, **REF), reps=1)
        ta, outa = timed(lambda args=args: _x_agd(*args, d["X"], 1e-8, 100000), reps=1)
        tn, outn = timed(lambda args=args: _x_newton(*args, d["X"], 1e-8, 2000), reps=1)
        extra = (f"  | {rf.solver}; AGD {ta * 1e3:.0f} ms ({outa[1]} it), Newton "
                 f"{tn * 1e3:.0f} ms ({outn[1]} it)")
        report(f"X lam*{lam_scale:g} {tag}", tf, tc, tr, rf.objective, rr.objective, extra)
    # ---- P and (C, D, c), squared loss (q = 1) and cross-entropy (q = 3)
    for loss, q in ((SquaredLoss(), 1), (SoftmaxCrossEntropy(), 3)):
        e = make(m, n, p, q, act, classify=q > 1)
        pargs = [e[k] for k in ("A", "B", "b", "C", "D", "c", "X", "U", "Y", "lam", "mu")]
        tf, rf = timed(lambda pargs=pargs, loss=loss, P0=e["P"]: solve_p(*pargs, act, loss,
                                                                         init=P0))
        tc, _ = timed(lambda pargs=pargs, loss=loss: solve_p(*pargs, act, loss), reps=1)
        tr, rr = timed(lambda pargs=pargs, loss=loss: solve_p(*pargs, act, loss,
                                                              **REF), reps=1)
        report(f"P {loss.name} q={q} {tag}", tf, tc, tr, rf.objective, rr.objective)
        if not isinstance(act, ReLU):
            continue
        for pen in (NoPenalty(), L2Penalty(1e-3), L1Penalty(1e-3)):
            cargs = (e["P"], e["U"], e["Y"], loss, pen)
            tc0, r0 = timed(lambda cargs=cargs: solve_cd(*cargs), reps=1)
            init = (r0.value[0] * 0.9, r0.value[1] * 0.9, r0.value[2])
            tf, rf = timed(lambda cargs=cargs, init=init: solve_cd(*cargs, init=init))
            tr, rr = timed(lambda cargs=cargs: solve_cd(*cargs, **REF), reps=1)
            extra = f"  | {rf.solver}"
            if rf.solver == "newton":  # the same warm solve on the Newton-CG path
                with _dense_newton_off():
                    tg, rg = timed(lambda cargs=cargs, init=init: solve_cd(*cargs, init=init))
                gap = (rg.objective - rf.objective) / max(abs(rf.objective), 1e-300)
                extra += (f"; Newton-CG {tg * 1e3:.1f} ms (gap {gap:+.0e}): "
                          f"newton/newton-cg speed-up {tg / tf:.1f}x")
            report(f"CD {loss.name} {pen!r} q={q} {tag}", tf, tc0, tr, rf.objective,
                   rr.objective, extra)


@contextlib.contextmanager
def _dense_newton_off():
    """Route the cross-entropy ridge (C, D) block to its Newton-CG path."""
    orig = _cd._softmax_ridge_newton
    _cd._softmax_ridge_newton = functools.partial(orig, dense_max=0)
    try:
        yield
    finally:
        _cd._softmax_ridge_newton = orig


def bench_ab_parallel(rounds=5, m=2000, n=100, p=64):
    """solve_ab with n_jobs = 2 (threads, and loky processes) against n_jobs = 1."""
    loop_args, _ = make_loop_like(m, n, p)
    cases = [("loop-like ReLU none", loop_args)]
    for act, pen in ((ReLU(), L2Penalty(1e-3)), (Tanh(), L2Penalty(1e-3))):
        d = make(m, n, p, 1, act)
        cases.append((f"teacher {type(act).__name__} {pen!r}",
                      (d["X"], d["U"], d["P"], d["lam"], d["kappa"], act, pen)))

    def run(args, n_jobs, backend):
        _common.ROW_BACKEND = backend
        try:
            t = time.perf_counter()
            res = solve_ab(*args, n_jobs=n_jobs)
            return time.perf_counter() - t, res
        finally:
            _common.ROW_BACKEND = "threading"

    for name, args in cases:
        t_start, _ = run(args, 2, "loky")  # starts (or reuses) the loky workers
        configs = [(1, "threading"), (2, "threading"), (2, "loky")]
        times = {c: [] for c in configs}
        results = {}
        for k in range(rounds):
            order = configs if k % 2 == 0 else configs[::-1]
            for cfg in order:
                t, res = run(args, *cfg)
                times[cfg].append(t)
                results[cfg] = res
        seq = results[(1, "threading")]
        t1 = times[(1, "threading")]
        line = (f"AB parallel {name} m={m} n={n} p={p}: n_jobs=1 {min(t1):.2f} s "
                f"({seq.n_iter} it)")
        for cfg in configs[1:]:
            tk = times[cfg]
            ratios = [a / b for a, b in zip(t1, tk, strict=True)]
            gap = abs(results[cfg].objective - seq.objective) / abs(seq.objective)
            line += (f" | n_jobs=2 {cfg[1]} {min(tk):.2f} s, speed-up {min(t1) / min(tk):.2f}x "
                     f"({statistics.median(ratios):.2f}x), gap {gap:.0e}")
        print(line + f" | loky start-up call {t_start:.2f} s", flush=True)


def bench_group_linf(reps=5):
    """The (A, B) block with the l-inf group norm: face Newton (the default) against FISTA
    (``_LINF_SOLVER``), CPU time (min over ``reps``), on the instances of
    ``tests/blocks/test_ab.py::test_solve_ab_group_matches_cvxpy`` (m=40, n=6, p=5) and a
    larger one (m=400, n=10, p=100) at the default tol and at BCD's tol=1e-6, max_iter=100."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from _helpers import ab_instance  # the test's instances, drawn the same way

    from lifted_idl.blocks import ab as _ab
    from lifted_idl.penalties import GroupPenalty

    def instance(seed, act, m, n, p, q=2):
        X, U, P, lam, D = ab_instance(seed, act, m, n, p, q)
        return (X, U, P, lam, 0.5, act, GroupPenalty(0.3, np.inf).restrict("ab", {"D": D}))

    default = _ab._LINF_SOLVER
    cases = [(act, seed, (40, 6, 5), {}) for act in (ReLU(), Tanh()) for seed in (0, 1)]
    cases += [(ReLU(), seed, (400, 10, 100), kw) for seed in (0, 1)
              for kw in ({}, {"tol": 1e-6, "max_iter": 100})]
    try:
        for act, seed, (m, n, p), kw in cases:
            args = instance(seed, act, m, n, p)
            ref = solve_ab(*args, **REF)
            row = {}
            for solver in ("newton", "fista"):
                _ab._LINF_SOLVER = solver
                best = np.inf
                for _ in range(reps):
                    t = time.process_time()
                    res = solve_ab(*args, **kw)
                    best = min(best, time.process_time() - t)
                row[solver] = (best, res)
            parts = [f"{s} {t * 1e3:6.1f} ms cpu ({r.n_iter} it, conv {r.converged}, gap "
                     f"{(r.objective - ref.objective) / abs(ref.objective):+.0e})"
                     for s, (t, r) in row.items()]
            print(f"AB l-inf group m={m} n={n} p={p} {type(act).__name__} seed={seed} {kw}: "
                  + "; ".join(parts)
                  + f"; fista/newton {row['fista'][0] / row['newton'][0]:.2f}", flush=True)
    finally:
        _ab._LINF_SOLVER = default


def main(argv):
    sizes = [20] if "--quick" in argv else [20, 50]
    with threadpool_limits(1):
        if "--group-linf" in argv:
            bench_group_linf()
            return
        if "--parallel" not in argv:
            for n in sizes:
                bench_size(n, ReLU())
            bench_size(20, Tanh())
        bench_ab_parallel()


if __name__ == "__main__":
    main(sys.argv[1:])
