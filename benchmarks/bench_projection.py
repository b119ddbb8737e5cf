"""Speed of the projection onto {A : ||A||_inf <= kappa} against np.sort on the same matrix.

Run ``python benchmarks/bench_projection.py``. Projects a 1000×1000 standard normal matrix
(every row outside the ball for kappa = 1; about half of them for the "mixed" case) with
``project_inf_norm_ball(A, kappa)`` (exact, sort-based) and with the paper's bisection, and
prints each time divided by ``np.sort(A, axis=1)`` measured in the same rounds (interleaved;
min and median over rounds). Beside them, the solvers' in-place row projection
:func:`lifted_idl.blocks._common.project_l1_rows` (the z-update of the MM solver's ADMM, no
input validation; one radius for all rows, the median row norm in the "mixed" case), timed on
a copy made outside the timer. Bar: the sort-based projection under 3× np.sort.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lifted_idl.blocks._common import project_l1_rows  # noqa: E402
from lifted_idl.wellposedness import project_inf_norm_ball  # noqa: E402


def timed(f):
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def timed_inplace(A, kappa):
    """``project_l1_rows`` on a fresh copy of A (the copy not timed)."""
    B = A.copy()
    t = time.perf_counter()
    project_l1_rows(B, kappa)
    return time.perf_counter() - t


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args(argv)
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
            k1 = float(np.max(kappa))  # one radius for project_l1_rows
            err1 = float(np.abs(project_l1_rows(A.copy(), k1)
                                - project_inf_norm_ball(A, k1)).max())
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
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
