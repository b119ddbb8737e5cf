"""Speed of the projection onto {A : ||A||_inf <= kappa} against np.sort on the same matrix.

Run ``python benchmarks/bench_projection.py``. Projects a 1000×1000 standard normal matrix
(every row outside the ball for kappa = 1; about half of them for the "mixed" case) with
``project_inf_norm_ball(A, kappa)`` (exact, sort-based) and with the paper's bisection, and
prints each time divided by ``np.sort(A, axis=1)`` measured in the same rounds (interleaved;
min and median over rounds). Beside them, the kernel both call,
:func:`lifted_idl.wellposedness._project_l1_rows`, in place as the solvers call it (no input
validation; one radius for all rows, the median row norm in the "mixed" case), timed on a copy
made outside the timer. Bar: the sort-based projection under 3× np.sort.

A second table (``--small``, or alone with ``--small-only``) times the kernel on the small
arrays of the solvers' inner loops (the ADMM z-update of ``blocks/ab_mm.py`` runs thousands of
times per fit on about 20×20): n×n for n in 20, 64, 200, all rows outside (kappa = 1) and
about a tenth of them (kappa at the 90th percentile of the row norms), in place and into a
new array, and ``project_inf_norm_ball`` (the checks added); CPU time (process_time) per call
in µs, min over rounds of many calls, and divided by ``np.sort(A, axis=1)`` timed the same way
in the same rounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lifted_idl.wellposedness import _project_l1_rows, project_inf_norm_ball  # noqa: E402


def timed(f):
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def timed_inplace(A, kappa):
    """``_project_l1_rows`` in place on a fresh copy of A (the copy not timed)."""
    B = A.copy()
    t = time.perf_counter()
    _project_l1_rows(B, kappa, out=B)
    return time.perf_counter() - t


def cpu_per_call(f, calls):
    """CPU time of one call of ``f`` in µs, averaged over ``calls`` calls."""
    t = time.process_time()
    for _ in range(calls):
        f()
    return (time.process_time() - t) / calls * 1e6


def small_arrays(rounds):
    """The kernel on the solvers' small arrays (the second table of the module docstring)."""
    rng = np.random.default_rng(1)
    print(f"\nkernel on small arrays: CPU µs per call, min over {rounds} rounds "
          "(ratio: / np.sort of the same matrix)")
    print(f"{'n':>4} {'rows out':>9} {'np.sort':>8} {'in place':>9} {'ratio':>6} "
          f"{'new array':>10} {'ratio':>6} {'public':>8} {'ratio':>6}")
    for n in (20, 64, 200):
        A = rng.standard_normal((n, n))
        q90 = float(np.quantile(np.abs(A).sum(axis=1), 0.9))
        calls = max(20, 200_000 // (n * n))
        for label, kappa in (("all", 1.0), ("10%", q90)):
            B = np.empty_like(A)

            def in_place(A=A, B=B, kappa=kappa):
                np.copyto(B, A)
                _project_l1_rows(B, kappa, out=B)

            runs = {"sort": [], "copy": [], "inplace": [], "new": [], "public": []}
            for _ in range(rounds):
                runs["sort"].append(cpu_per_call(lambda A=A: np.sort(A, axis=1), calls))
                runs["copy"].append(cpu_per_call(lambda A=A, B=B: np.copyto(B, A), calls))
                runs["inplace"].append(cpu_per_call(in_place, calls))
                runs["new"].append(cpu_per_call(lambda A=A, k=kappa: _project_l1_rows(A, k),
                                                calls))
                runs["public"].append(cpu_per_call(
                    lambda A=A, k=kappa: project_inf_norm_ball(A, k), calls))
            best = {k: min(v) for k, v in runs.items()}
            inplace = best["inplace"] - best["copy"]  # the copy that restores B, not timed
            srt = best["sort"]
            print(f"{n:>4} {label:>9} {srt:>8.2f} {inplace:>9.2f} {inplace / srt:>6.2f} "
                  f"{best['new']:>10.2f} {best['new'] / srt:>6.2f} {best['public']:>8.2f} "
                  f"{best['public'] / srt:>6.2f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--small", action="store_true",
                    help="also time the kernel on small arrays (the second table)")
    ap.add_argument("--small-only", action="store_true", help="only the small-array table")
    args = ap.parse_args(argv)
    if args.small_only:
        small_arrays(args.rounds)
        return 0
    rng = np.random.default_rng(0)
    n = args.n
    base = rng.standard_normal((n, n))
    ok = True
    print(f"numpy {np.__version__}; {n}x{n}, min/median over {args.rounds} interleaved rounds")
    print(f"{'case':>16} {'dtype':>8} {'np.sort [ms]':>13} {'sort-proj':>10} {'median':>7} "
          f"{'bisection':>10} {'median':>7} {'l1-rows':>8} {'median':>7}  bar(<3x)")
    for dtype in (np.float64, np.float32):
        A = base.astype(dtype)
        # "mixed": kappa per row at the median row norm, so half the rows are inside already
        med = float(np.median(np.abs(A).sum(axis=1)))
        cases = [("all rows out", 1.0), ("mixed", np.full(n, med))]
        for label, kappa in cases:
            k1 = float(np.max(kappa))  # one radius for the in-place kernel
            err1 = float(np.abs(_project_l1_rows(A, k1) - project_inf_norm_ball(A, k1)).max())
            ref = project_inf_norm_ball(A, kappa)
            bis = project_inf_norm_ball(A, kappa, method="bisection")
            err = float(np.abs(ref - bis).max())
            ts, tp, tb, tl = [], [], [], []
            for _ in range(args.rounds):
                ts.append(timed(lambda A=A: np.sort(A, axis=1)))
                tp.append(timed(lambda A=A, k=kappa: project_inf_norm_ball(A, k)))
                tb.append(timed(lambda A=A, k=kappa: project_inf_norm_ball(
                    A, k, method="bisection")))
                tl.append(timed_inplace(A, k1))
            rp = [p / s for p, s in zip(tp, ts, strict=True)]
            rb = [b / s for b, s in zip(tb, ts, strict=True)]
            rl = [v / s for v, s in zip(tl, ts, strict=True)]
            passed = min(rp) < 3
            ok &= passed
            print(f"{label:>16} {np.dtype(dtype).name:>8} {min(ts) * 1e3:>13.2f} "
                  f"{min(rp):>10.2f} {statistics.median(rp):>7.2f} {min(rb):>10.2f} "
                  f"{statistics.median(rb):>7.2f} {min(rl):>8.2f} {statistics.median(rl):>7.2f}"
                  f"  {'PASS' if passed else 'FAIL'}"
                  f"   (|sort - bisection| = {err:.1e}, |l1-rows - sort| = {err1:.1e})")
    print(f"bar (sort-based projection < 3x np.sort): {'PASS' if ok else 'FAIL'}")
    if args.small:
        small_arrays(args.rounds)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
