"""Speed of the fixed-point kernel against its floor, one GEMM per iteration.

Run ``python benchmarks/bench_kernel.py`` (``--quick`` for a smoke run, ``--skip-anderson``
to time only the bar). Three parts, each printing ratios against a baseline measured in the same
process, interleaved round by round (the machine may be shared: min and median over rounds):

1. The bar: ``ImplicitModel.equilibrium(U)`` with its defaults (Picard, per-sample freezing,
   tolerance 1e-10 / 1e-5) for n in {100, 500, 1000}, m = 2000, p = 64, float32 and float64,
   against ``n_iter`` × one (m×n)·(n×n) GEMM (``np.matmul`` into a preallocated buffer).
   Bar: within 1.3× at n >= 500 in both dtypes. Frozen samples leave the batch, so the ratio
   can fall below 1.
2. Per-iteration overhead with nothing frozen: a slowly contracting problem (nonnegative A,
   lambda_PF = 0.99, positive inputs) stopped at a fixed ``max_iter`` so every sample is active
   in every iteration: what the bias, the activation, the residual and the bookkeeping cost on
   top of the GEMM.
3. Anderson acceleration against Picard (time and iterations) on easy problems
   (random-sign A with ||A||_inf = 0.5 and 0.99: the actual contraction is far below the bound)
   and hard ones (nonnegative A, sparse or dense, with lambda_PF = ||A||_inf = 0.95 and 0.99:
   the iteration contracts at nearly that rate).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

if "--threads" in sys.argv[:-1]:  # BLAS threads must be fixed before numpy is imported
    _t = sys.argv[sys.argv.index("--threads") + 1]
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _t

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lifted_idl import ImplicitModel  # noqa: E402
from lifted_idl.exceptions import ConvergenceWarning  # noqa: E402


def random_A(rng, n, kappa, kind):
    """Rows scaled to l1 norm kappa: random signs, dense nonnegative, or 5 nonzeros per row."""
    if kind == "signed":
        A = rng.standard_normal((n, n))
    elif kind == "nonneg":
        A = rng.random((n, n))
    else:  # "sparse": nonnegative, 5 entries per row (far from low rank)
        A = np.zeros((n, n))
        cols = np.argsort(rng.random((n, n)), axis=1)[:, :5]
        np.put_along_axis(A, cols, rng.random((n, 5)), axis=1)
    return A * (kappa / np.abs(A).sum(axis=1, keepdims=True))


def make_model(rng, n, p, kappa, kind, dtype):
    A = random_A(rng, n, kappa, kind)
    B = rng.standard_normal((n, p)) / np.sqrt(p)
    if kind != "signed":
        B = np.abs(B)
    C = rng.standard_normal((3, n))
    return ImplicitModel(A.astype(dtype), B.astype(dtype), C.astype(dtype),
                         np.zeros((3, p), dtype=dtype), b=np.full(n, 0.1, dtype=dtype))


def gemm_time(X, AT, out, reps):
    t = time.perf_counter()
    for _ in range(reps):
        np.matmul(X, AT, out=out)
    return (time.perf_counter() - t) / reps


def compare(model, U, rounds, **solve_kw):
    """Rounds of (one equilibrium, a few GEMMs); returns ratios and the result."""
    res = model.solve(U, **solve_kw)  # warm-up: certificate, parameter cache
    n, m = model.n_states, U.shape[0]
    rng = np.random.default_rng(1)
    X = rng.standard_normal((m, n)).astype(U.dtype)
    AT = np.asarray(model.A, dtype=U.dtype).T
    out = np.empty_like(X)
    t_eq, t_gemm, ratios = [], [], []
    gemm_reps = max(3, min(res.n_iter, 15))
    for _ in range(rounds):
        t = time.perf_counter()
        res = model.solve(U, **solve_kw)
        te = time.perf_counter() - t
        tg = gemm_time(X, AT, out, gemm_reps)
        t_eq.append(te)
        t_gemm.append(tg)
        ratios.append(te / (res.n_iter * tg))
    return dict(n_iter=res.n_iter, t_eq=min(t_eq), t_gemm=min(t_gemm),
                ratio_min=min(ratios), ratio_med=statistics.median(ratios),
                ratio_of_mins=min(t_eq) / (res.n_iter * min(t_gemm)), res=res)


def part_bar(sizes, m, p, rounds):
    print(f"== 1. equilibrium(U) vs n_iter x GEMM  (m={m}, p={p}, random-sign A, "
          "||A||_inf = 0.9; bar 1.3x at n >= 500)")
    print(f"{'n':>5} {'dtype':>8} {'iters':>6} {'t_eq [s]':>9} {'GEMM [ms]':>10} "
          f"{'ratio min':>10} {'median':>8} {'min/min':>8}  bar")
    ok = True
    for n in sizes:
        for dtype in (np.float32, np.float64):
            rng = np.random.default_rng(n)
            model = make_model(rng, n, p, 0.9, "signed", dtype)
            U = rng.standard_normal((m, p)).astype(dtype)
            r = compare(model, U, rounds)
            passed = r["ratio_min"] <= 1.3
            if n >= 500:
                ok &= passed
            bar = ("PASS" if passed else "FAIL") if n >= 500 else "-"
            print(f"{n:>5} {np.dtype(dtype).name:>8} {r['n_iter']:>6} {r['t_eq']:>9.3f} "
                  f"{r['t_gemm'] * 1e3:>10.2f} {r['ratio_min']:>10.3f} {r['ratio_med']:>8.3f} "
                  f"{r['ratio_of_mins']:>8.3f}  {bar}")
    print(f"bar (ratio <= 1.3 at n >= 500, both dtypes): {'PASS' if ok else 'FAIL'}\n")
    return ok


def part_overhead(sizes, m, p, rounds, iters=30):
    print(f"== 2. per-iteration overhead, no sample frozen (nonneg A, lambda_PF = 0.99, "
          f"max_iter={iters})")
    print(f"{'n':>5} {'dtype':>8} {'iters':>6} {'unconv':>7} {'ratio min':>10} {'median':>8}")
    for n in sizes:
        for dtype in (np.float32, np.float64):
            rng = np.random.default_rng(n)
            model = make_model(rng, n, p, 0.99, "nonneg", dtype)
            U = (rng.random((m, p)) + 0.5).astype(dtype)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                r = compare(model, U, rounds, max_iter=iters, warn=False)
            print(f"{n:>5} {np.dtype(dtype).name:>8} {r['n_iter']:>6} "
                  f"{r['res'].n_unconverged:>7} {r['ratio_min']:>10.3f} {r['ratio_med']:>8.3f}")
    print()


def part_anderson(n, m, p, rounds):
    print(f"== 3. Anderson vs Picard (n={n}, m={m}, float64, ReLU, inputs N(0.3, 1); time "
          "ratio < 1: Anderson faster)")
    print(f"{'case':>26} {'picard it':>10} {'anderson it':>12} {'t_picard':>9} "
          f"{'t_anderson':>11} {'t_and/t_pic':>12}")
    cases = [("easy: signed, kappa 0.5", 0.5, "signed"),
             ("easy: signed, kappa 0.99", 0.99, "signed"),
             ("hard: sparse>=0, 0.95", 0.95, "sparse"),
             ("hard: sparse>=0, 0.99", 0.99, "sparse"),
             ("hard: dense>=0, 0.99", 0.99, "nonneg")]
    for label, kappa, kind in cases:
        rng = np.random.default_rng(7)
        model = make_model(rng, n, p, kappa, kind, np.float64)
        U = rng.standard_normal((m, p)) + 0.3
        times = {"picard": [], "anderson": []}
        iters = {}
        reps = rounds if kind == "signed" else 1
        for _ in range(reps):
            for meth in ("picard", "anderson"):
                t = time.perf_counter()
                res = model.solve(U, method=meth, max_iter=20000)
                times[meth].append(time.perf_counter() - t)
                iters[meth] = res.n_iter
                assert res.converged, (label, meth)
        tp, ta = min(times["picard"]), min(times["anderson"])
        print(f"{label:>26} {iters['picard']:>10} {iters['anderson']:>12} {tp:>9.3f} "
              f"{ta:>11.3f} {ta / tp:>12.2f}")
    print()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, few rounds")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--skip-anderson", action="store_true")
    ap.add_argument("--skip-overhead", action="store_true")
    ap.add_argument("--threads", type=int, default=None,
                    help="BLAS threads (default: the library's own choice)")
    args = ap.parse_args(argv)
    if args.quick:
        sizes, m, p, rounds, and_n, and_m = (100, 500), 500, 64, args.rounds or 3, 100, 300
    else:
        sizes, m, p, rounds, and_n, and_m = (100, 500, 1000), 2000, 64, args.rounds or 7, 300, 1000
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    print(f"numpy {np.__version__}, BLAS threads: {threads}, {os.cpu_count()} CPUs; timings "
          f"are min/median over {rounds} interleaved rounds\n")
    ok = part_bar(sizes, m, p, rounds)
    if not args.skip_overhead:
        part_overhead(sizes, m, p, rounds)
    if not args.skip_anderson:
        part_anderson(and_n, and_m, p, min(rounds, 3))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
