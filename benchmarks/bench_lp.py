"""LP relaxation benchmark [IDL Thm 4.3]: build once, re-solve per objective and per input.

For random ReLU models with ``||A||_inf = 0.7``, p = 64 features and q = 10 outputs, and
n = 25, 50, 100, 200 states, it times for both relaxations ("paper", "triangle"):

* ``build``: :class:`LPRelaxation` construction (equilibrium, box bound, cvxpy problem),
  median of 3;
* ``first``: the first solve (cvxpy canonicalisation of the DPP problem plus HiGHS),
  median of 3;
* ``resolve``: median time per new objective (parameter update and HiGHS only);
* ``new u0``: median time to move to a new nominal input and solve;
* ``rebuild``: the baseline in the same run, a fresh problem per objective; the printed
  ``speedup`` is rebuild / resolve.

It then prints the log-log slope of each time against n (time ~ n^slope).

Run:  python benchmarks/bench_lp.py [--sizes 25,50,100,200] [--p 64] [--repeats 7]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from lifted_idl import ImplicitModel
from lifted_idl.robustness import LPRelaxation
from lifted_idl.wellposedness import project_inf_norm_ball


def make_model(n, p, q, seed):
    rng = np.random.default_rng(seed)
    A = project_inf_norm_ball(rng.normal(size=(n, n)), 0.7)
    return ImplicitModel(A, rng.normal(size=(n, p)) / np.sqrt(p), rng.normal(size=(q, n)),
                         0.1 * rng.normal(size=(q, p)), b=0.3 * rng.normal(size=n))


def bench(n, p, q, relaxation, repeats, seed=0):
    model = make_model(n, p, q, seed)
    rng = np.random.default_rng(seed + 1)
    u0, sigma = rng.normal(size=p), 0.05
    builds, firsts = [], []
    for _ in range(3):
        t0 = time.perf_counter()
        lp = LPRelaxation(model, u0, sigma, relaxation=relaxation)
        t1 = time.perf_counter()
        lp.maximize_output(rng.normal(size=q))
        builds.append(t1 - t0)
        firsts.append(time.perf_counter() - t1)
    resolve, new_u, rebuild = [], [], []
    for _ in range(repeats):
        c = rng.normal(size=q)
        s = time.perf_counter()
        bound = lp.maximize_output(c).bound
        resolve.append(time.perf_counter() - s)
        s = time.perf_counter()
        fresh = LPRelaxation(model, lp.u0, sigma, relaxation=relaxation).maximize_output(c)
        rebuild.append(time.perf_counter() - s)
        assert abs(fresh.bound - bound) <= 1e-6 * (1 + abs(bound)), (fresh.bound, bound)
    for _ in range(repeats):
        s = time.perf_counter()
        lp.set_input(rng.normal(size=p)).maximize_output(rng.normal(size=q))
        new_u.append(time.perf_counter() - s)
    return {
        "build": float(np.median(builds)),
        "first": float(np.median(firsts)),
        "resolve": float(np.median(resolve)),
        "new u0": float(np.median(new_u)),
        "rebuild": float(np.median(rebuild)),
        "unstable": getattr(lp, "n_unstable_", None),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="25,50,100,200")
    ap.add_argument("--p", type=int, default=64)
    ap.add_argument("--q", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    bench(10, 8, 2, "paper", 1)  # warm up imports and cvxpy caches
    keys = ["build", "first", "resolve", "new u0", "rebuild"]
    for relaxation in ("paper", "triangle"):
        print(f"\nrelaxation={relaxation!r}, p={args.p}, q={args.q} (seconds)")
        print(f"{'n':>5} " + " ".join(f"{k:>9}" for k in keys) + f" {'speedup':>8} "
              f"{'unstable':>8}")
        rows = []
        for n in sizes:
            r = bench(n, args.p, args.q, relaxation, args.repeats)
            rows.append(r)
            unst = "-" if r["unstable"] is None else str(r["unstable"])
            print(f"{n:>5} " + " ".join(f"{r[k]:9.4f}" for k in keys)
                  + f" {r['rebuild'] / r['resolve']:8.1f} {unst:>8}")
        if len(sizes) > 1:
            ln = np.log(sizes)
            slopes = {k: np.polyfit(ln, np.log([r[k] for r in rows]), 1)[0] for k in keys}
            print("scaling  time ~ n^s:  " + ", ".join(f"{k} s={v:.2f}"
                                                    for k, v in slopes.items()))


if __name__ == "__main__":
    main()
