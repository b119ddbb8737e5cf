"""The (A, B, b) block: majorize–minimize steps (``method="mm"``) against the Newton solver.

Run ``python benchmarks/bench_ab_mm.py [--quick] [--repeats 3] [--qp]``. For each size (m, n, p) it
prints the CPU time (``time.process_time``, minimum over the repeats; wall time beside it) of

* ``newton``: ``solve_ab(method="fast")`` to ``tol`` (1e-6, the BCD loop's ``block_tol``);
* ``mm``: ``solve_ab(method="mm")`` to the same ``tol``;
* ``mm K``: K MM steps (``max_iter=K``), the inexact step of a BCD round,

warm-started as in the BCD loop, with the relative objective gap to the Newton answer, the
fraction of the possible decrease achieved, :math:`(f_0 - f)/(f_0 - f^*)`, and the speed ratio
``t(newton) / t(method)`` measured in the same run.

``--qp`` compares the solvers of the MM step's QP instead, on instances shaped like the BCD
loop's (:func:`bench_blocks.make_loop_like`: every row of A on the ball, an ill-conditioned
Gram matrix with a constant column; ridge 1e-3): ``admm`` (ADMM alone, to its tolerance:
``FACE_COST = 0``) against the default (ADMM for at most ``ADMM_WARMUP`` iterations, then the
active-set face solve on the rows it has not settled), K MM steps each, with the CPU time, the
fraction of the possible decrease and the ratio ``t(admm) / t(default)``.

Data: :func:`bench_blocks.make` (a teacher implicit ReLU model, inputs N(0, I), X and P its
equilibrium plus noise, per-state weights lam ~ U[0.1, 2], kappa = 0.9), ridge 1e-3 (the
estimators' default penalty), p = 10. BLAS is limited to one thread.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_blocks import make, make_loop_like  # noqa: E402

from lifted_idl.activations import ReLU  # noqa: E402
from lifted_idl.blocks import ab_mm, ab_objective, solve_ab  # noqa: E402
from lifted_idl.penalties import L2Penalty  # noqa: E402

SIZES = [(2000, 20, 10), (2000, 100, 10), (2000, 200, 10), (32000, 20, 10)]
QP_SIZES = [(2000, 20, 10), (1257, 64, 64), (2000, 100, 10)]


def timed(fn, repeats):
    best_cpu, best_wall, out = np.inf, np.inf, None
    for _ in range(repeats):
        c, w = time.process_time(), time.perf_counter()
        out = fn()
        best_cpu = min(best_cpu, time.process_time() - c)
        best_wall = min(best_wall, time.perf_counter() - w)
    return out, best_cpu, best_wall


def run(sizes, repeats, tol=1e-6, steps=(1, 3, 10)):
    act, pen = ReLU(), L2Penalty(1e-3)
    for m, n, p in sizes:
        d = make(m, n, p, 1, act, seed=0)
        args = (d["X"], d["U"], d["P"], d["lam"], d["kappa"], act, pen)
        f0 = ab_objective(*args, *d["init_ab"])
        reps = repeats if m * n * (n + p) < 2e7 else 1
        res, t_n, w_n = timed(lambda args=args, d=d: solve_ab(
            *args, init=d["init_ab"], method="fast", tol=tol, max_iter=500), reps)
        fstar = res.objective
        print(f"(m, n, p) = ({m}, {n}, {p})  f0 = {f0:.6g}  f* = {fstar:.6g}", flush=True)
        print(f"  {'newton':8s} iters {res.n_iter:4d}  cpu {t_n:8.3f} s  wall {w_n:8.3f} s",
              flush=True)
        runs = [("mm", tol, 5000)] + [(f"mm {k}", 1e-300, k) for k in steps]
        for name, t_, it in runs:
            r, t, w = timed(lambda args=args, d=d, t_=t_, it=it: solve_ab(
                *args, init=d["init_ab"], method="mm", tol=t_, max_iter=it), reps)
            gap = (r.objective - fstar) / abs(fstar)
            frac = (f0 - r.objective) / max(f0 - fstar, 1e-300)
            print(f"  {name:8s} iters {r.n_iter:4d}  cpu {t:8.3f} s  wall {w:8.3f} s  "
                  f"gap {gap:9.2e}  decrease {frac:6.3f}  newton/mm {t_n / max(t, 1e-9):7.2f}",
                  flush=True)


def run_qp(sizes, repeats, steps=(1, 3, 10, 30)):
    pen = L2Penalty(1e-3)
    for m, n, p in sizes:
        (X, U, P, lam, kappa, act, _), init = make_loop_like(m, n, p)
        args = (X, U, P, lam, kappa, act, pen)
        f0 = ab_objective(*args, *init)
        fstar = solve_ab(*args, init=init, method="fast", tol=1e-9, max_iter=500).objective
        print(f"(m, n, p) = ({m}, {n}, {p})  f0 = {f0:.6g}  f* = {fstar:.6g}", flush=True)
        for k in steps:
            res = {}
            for name, face_cost in (("admm", 0.0), ("default", ab_mm.FACE_COST)):
                saved, ab_mm.FACE_COST = ab_mm.FACE_COST, face_cost
                try:
                    r, t, w = timed(lambda args=args, k=k, init=init: solve_ab(
                        *args, init=init, method="mm", tol=1e-300, max_iter=k), repeats)
                finally:
                    ab_mm.FACE_COST = saved
                res[name] = t
                frac = (f0 - r.objective) / max(f0 - fstar, 1e-300)
                ratio = res["admm"] / max(t, 1e-9)
                print(f"  {name:8s} {k:3d} steps  cpu {t:8.3f} s  wall {w:8.3f} s  "
                      f"decrease {frac:8.5f}  admm/this {ratio:6.2f}", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="m = 2000, n = 20 only")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--qp", action="store_true", help="compare the solvers of the MM QP")
    a = ap.parse_args(argv)
    with threadpool_limits(1):
        if a.qp:
            run_qp(QP_SIZES[:1] if a.quick else QP_SIZES, a.repeats)
        else:
            run(SIZES[:1] if a.quick else SIZES, a.repeats)


if __name__ == "__main__":
    main()
