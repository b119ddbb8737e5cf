"""The blocks' cvxpy twins under every declared solver that takes their problem class.

Run ``python benchmarks/bench_cvxpy_solvers.py`` (``--m``, ``--n``, ``--p`` set the size,
default m = 500, n = 20, p = 10; ``--rounds`` the interleaved rounds, default 2). For each twin
it prints, per solver, the CPU time (``time.process_time``) and wall time of one solve (build
+ solve, the minimum over rounds that interleave the solvers), the ratio to Clarabel's CPU time
(the baseline, measured in the same rounds) and the relative objective gap to Clarabel's
answer (negative: lower than Clarabel's). The solver that ``method="cvxpy"`` picks for the
twin's class is marked with ``*``.

Data: ReLU and tanh instances as in ``tests/blocks/test_cvxpy_solvers.py`` (Gaussian U and X,
P = relu or tanh of Gaussians, kappa = 0.5, lam ~ U[0.5, 3], mu = 0.7), block tol 1e-6 (the
BCD default).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

from lifted_idl.activations import ReLU, Tanh
from lifted_idl.blocks import (
    CVXPY_SOLVERS,
    fw_ab,
    fw_cd,
    solve_ab,
    solve_ab_robust,
    solve_bd,
    solve_cd,
    solve_p,
    solve_x,
)
from lifted_idl.blocks._common import DEFAULT_CVXPY_SOLVER
from lifted_idl.losses import SoftmaxCrossEntropy, SquaredLoss
from lifted_idl.penalties import GroupPenalty, L1Penalty, L2Penalty, NoPenalty
from lifted_idl.wellposedness import project_inf_norm_ball

TOL = 1e-6


def make(act, loss, m, n, p, q=2, seed=0):
    rng = np.random.default_rng(seed)
    return dict(
        U=rng.standard_normal((m, p)), X=rng.standard_normal((m, n)),
        P=(np.maximum(rng.standard_normal((m, n)), 0.0) if isinstance(act, ReLU)
           else np.tanh(rng.standard_normal((m, n)))),
        Y=(rng.standard_normal((m, q)) if isinstance(loss, SquaredLoss)
           else np.eye(q)[rng.integers(0, q, m)]),
        A=project_inf_norm_ball(rng.standard_normal((n, n)), 0.5),
        B=rng.standard_normal((n, p)), b=0.3 * rng.standard_normal(n),
        C=rng.standard_normal((q, n)), D=rng.standard_normal((q, p)), c=rng.standard_normal(q),
        lam=rng.uniform(0.5, 3.0, n))


def twins(m, n, p):
    """(name, problem class, solve(cvxpy_solver))."""
    out = []
    sq, ce, relu, tanh = SquaredLoss(), SoftmaxCrossEntropy(), ReLU(), Tanh()
    kw = {"method": "cvxpy", "tol": TOL}

    def add(name, kind, act, loss, fn):
        d = make(act, loss, m, n, p)
        out.append((name, kind, lambda s, d=d: fn(d, s)))

    add("(C,D) squared, l1", "qp", relu, sq, lambda d, s: solve_cd(
        d["P"], d["U"], d["Y"], sq, L1Penalty(0.01), cvxpy_solver=s, **kw))
    add("(C,D) cross-entropy, ridge", "exp", relu, ce, lambda d, s: solve_cd(
        d["P"], d["U"], d["Y"], ce, L2Penalty(0.01), cvxpy_solver=s, **kw))
    add("(A,B) ReLU", "qp", relu, sq, lambda d, s: solve_ab(
        d["X"], d["U"], d["P"], d["lam"], 0.5, relu, NoPenalty(), cvxpy_solver=s, **kw))
    add("(A,B) tanh", "exp", tanh, sq, lambda d, s: solve_ab(
        d["X"], d["U"], d["P"], d["lam"], 0.5, tanh, NoPenalty(), cvxpy_solver=s, **kw))
    add("robust (A,B) ReLU", "socp", relu, sq, lambda d, s: solve_ab_robust(
        d["X"], d["U"], d["P"], d["lam"], 0.5, relu, L2Penalty(1e-3), 0.05, cvxpy_solver=s,
        **kw))
    add("X ReLU", "qp", relu, sq, lambda d, s: solve_x(
        d["A"], d["B"], d["b"], d["U"], d["P"], d["lam"], 0.7, relu, cvxpy_solver=s, **kw))
    add("P ReLU squared", "qp", relu, sq, lambda d, s: solve_p(
        d["A"], d["B"], d["b"], d["C"], d["D"], d["c"], d["X"], d["U"], d["Y"], d["lam"], 0.7,
        relu, sq, cvxpy_solver=s, **kw))
    add("(B,D) l2 group", "socp", relu, sq, lambda d, s: solve_bd(
        d["A"], d["B"], d["b"], d["C"], d["D"], d["c"], d["X"], d["P"], d["U"], d["Y"],
        d["lam"], relu, sq, GroupPenalty(0.1, 2), cvxpy_solver=s, **kw))
    add("(B,D) l-inf group", "qp", relu, sq, lambda d, s: solve_bd(
        d["A"], d["B"], d["b"], d["C"], d["D"], d["c"], d["X"], d["P"], d["U"], d["Y"],
        d["lam"], relu, sq, GroupPenalty(0.1, np.inf), cvxpy_solver=s, **kw))
    add("fw_cd squared", "qp", relu, sq, lambda d, s: fw_cd(
        d["P"], d["U"], d["Y"], sq, 1.0, cvxpy_solver=s, **kw))
    add("fw_ab ReLU", "qp", relu, sq, lambda d, s: fw_ab(
        d["X"], d["U"], d["P"], d["lam"], 0.5, 1.0, relu, cvxpy_solver=s, **kw))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--m", type=int, default=500)
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--p", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--skip-highs", action="store_true",
                    help="leave HiGHS out (its QP method is slow on the (A,B) twins)")
    args = ap.parse_args(argv)
    print(f"m={args.m} n={args.n} p={args.p} tol={TOL:g}, min over {args.rounds} "
          "interleaved rounds; ratio = CPU time / Clarabel's CPU time; * = the default pick")
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, kind, solve in twins(args.m, args.n, args.p):
            names = [s for s, kinds in CVXPY_SOLVERS.items() if kind in kinds
                     and not (args.skip_highs and s == "HIGHS")]
            best = {s: (np.inf, np.inf) for s in names}
            obj = {}
            for _ in range(args.rounds):
                for s in names:
                    t0, w0 = time.process_time(), time.perf_counter()
                    try:
                        res = solve(s)
                    except Exception as exc:  # a solver that fails here is reported, not fatal
                        obj[s] = f"failed ({type(exc).__name__})"
                        continue
                    t, w = time.process_time() - t0, time.perf_counter() - w0
                    best[s] = (min(best[s][0], t), min(best[s][1], w))
                    obj[s] = res.objective
            ref_t, ref_obj = best["CLARABEL"][0], obj["CLARABEL"]
            print(f"{name} [{kind}]")
            for s in names:
                mark = "*" if DEFAULT_CVXPY_SOLVER[kind] == s else " "
                if isinstance(obj[s], str):
                    print(f"  {mark}{s:9s} {obj[s]}")
                    continue
                gap = (obj[s] - ref_obj) / max(abs(ref_obj), 1e-300)
                print(f"  {mark}{s:9s} cpu {best[s][0]:7.2f} s  wall {best[s][1]:7.2f} s  "
                      f"ratio {best[s][0] / ref_t:6.2f}  gap {gap:+.1e}")


if __name__ == "__main__":
    main()
