"""The cross-entropy + ridge (C, D, c) block on the solves a BCD fit makes.

It records the (C, D, c) solves of a digits fit (``ImplicitClassifier(n_hidden=64)`` after a
``StandardScaler``, 70 / 30 split as in ``bench_scaling.py``, ``--rounds`` BCD rounds; every
``--every``-th solve: its design, targets, penalty and warm start), then re-solves each
recorded instance, at each ``--tols`` tolerance, with

* ``pcg``: the package's path (:func:`lifted_idl.blocks.solve_cd`; Newton steps by conjugate
  gradients preconditioned by the Hessian's diagonal, :func:`lifted_idl.blocks.cd.
  _softmax_newton_cg`);
* ``trust-ncg``, the baseline: the same call with that Newton-CG loop replaced by SciPy's
  trust-region Newton-CG (``scipy.optimize.minimize(method="trust-ncg")``, exact
  Hessian-vector products) on the same whitened problem, with the same stopping rule (the
  gradient's 2-norm at most ``tol``) — the solver this block used before.

Both stop on the same gradient norm, so the comparison is at equal final accuracy. It prints
the CPU time per solve (``time.process_time``, the minimum over ``--repeats`` passes, the two
solvers interleaved), the ratio trust-ncg / pcg, the mean Hessian-vector products per solve,
the largest gradient entry in the original coordinates and the largest relative objective
difference (pcg - trust-ncg) / |trust-ncg|.

BLAS is limited to one thread. Run:
    python benchmarks/bench_cd_softmax.py [--rounds 40] [--every 2] [--tols 1e-6,1e-8]
        [--repeats 3] [--seed 0]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import scipy.optimize
from scipy.special import logsumexp, softmax
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

import lifted_idl.blocks as blocks
from lifted_idl import ImplicitClassifier
from lifted_idl.blocks import cd as cd_mod

HVP = {"pcg": 0, "trust-ncg": 0}


def record(seed, rounds, every):
    """The (C, D, c) solves of a digits BCD fit: every ``every``-th call's arguments."""
    X, y = load_digits(return_X_y=True)
    Xtr, _, ytr, _ = train_test_split(X, y, test_size=0.3, random_state=seed, stratify=y)
    Xtr = StandardScaler().fit_transform(Xtr)
    orig, calls = blocks.solve_cd, []

    def spy(P, U, Y, loss, penalty, **kw):
        calls.append((P.copy(), U.copy(), Y.copy(), loss, penalty, dict(kw)))
        return orig(P, U, Y, loss, penalty, **kw)

    blocks.solve_cd = spy
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ImplicitClassifier(n_hidden=64, max_iter=rounds, random_state=seed).fit(Xtr, ytr)
    finally:
        blocks.solve_cd = orig
    return calls[1::every]  # the first one is the random-feature start, solved cold


def trust_ncg(Mt, Y, pw, fit_intercept, x0, tol, max_iter, w=None):
    """SciPy trust-ncg on the whitened problem (the signature, packing and stopping rule of
    :func:`lifted_idl.blocks.cd._softmax_newton_cg`): the block's solver before it."""
    m, r = Mt.shape
    q = Y.shape[1]
    nw, ni = q * r, q if fit_intercept else 0
    zero_c = np.zeros(q)

    def unpack(v):
        return v[:nw].reshape(q, r), (v[nw:] if ni else zero_c)

    def fun(v):
        Wt, c = unpack(v)
        Z = Mt @ Wt.T + c
        ws = np.full(m, 1.0 / m) if w is None else w / m
        f = float(ws @ (logsumexp(Z, axis=1) - (Y * Z).sum(axis=1)))
        G = (softmax(Z, axis=1) - Y) * ws[:, None]
        f += 0.5 * float(np.vdot(Wt * pw, Wt))
        return f, np.concatenate([(G.T @ Mt + Wt * pw).ravel(), G.sum(axis=0)[:ni]])

    cache = {"v": None, "S": None}

    def hessp(v, s):  # many products at the same point: keep its softmax
        HVP["trust-ncg"] += 1
        if cache["v"] is None or not np.array_equal(cache["v"], v):
            Wt, c = unpack(v)
            cache["v"], cache["S"] = v.copy(), softmax(Mt @ Wt.T + c, axis=1)
        S = cache["S"]
        sW, sc = unpack(s)
        T = S * (Mt @ sW.T + sc)
        T -= S * T.sum(axis=1, keepdims=True)
        T /= m
        if w is not None:
            T *= w[:, None]
        return np.concatenate([(T.T @ Mt + sW * pw).ravel(), T.sum(axis=0)[:ni]])

    res = scipy.optimize.minimize(fun, x0, jac=True, hessp=hessp, method="trust-ncg",
                                  options={"maxiter": max_iter, "gtol": tol})
    return res.x, res.nit, res.success


class _CountedDesign:
    """The whitened design inside the CG loop, counting the Hessian-vector products (one
    ``design @ direction`` each)."""

    __array_ufunc__ = None  # NumPy defers ``array @ design`` to __rmatmul__

    def __init__(self, A):
        self.A = A

    def __matmul__(self, other):
        HVP["pcg"] += 1
        return self.A @ other

    def __rmatmul__(self, other):
        return other @ self.A


def counted_pcg(orig):
    def pcg(Ma, Ma2, S, Sw, pa, g, eps):
        return orig(_CountedDesign(Ma), Ma2, S, Sw, pa, g, eps)
    return pcg


def solve_all(calls, tol, solver):
    newton = cd_mod._softmax_newton_cg
    if solver == "trust-ncg":
        cd_mod._softmax_newton_cg = trust_ncg
    try:
        out = []
        t0 = time.process_time()
        for P, U, Y, loss, pen, kw in calls:
            out.append(blocks.solve_cd(P, U, Y, loss, pen, **{**kw, "tol": tol}))
        return time.process_time() - t0, out
    finally:
        cd_mod._softmax_newton_cg = newton


def kkt(call, res):
    P, U, Y, loss, pen, _ = call
    C, D, c = res.value
    M, W = np.hstack([P, U]), np.hstack([C, D])
    G = loss.grad(Y, M @ W.T + c)
    return max(float(np.abs(G.T @ M + pen.alpha * W).max()), float(np.abs(G.sum(0)).max()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--every", type=int, default=2)
    ap.add_argument("--tols", default="1e-6,1e-8")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    with threadpool_limits(1):
        calls = record(args.seed, args.rounds, args.every)
        P, U, Y = calls[0][:3]
        print(f"{len(calls)} recorded (C, D, c) solves of a digits fit (seed {args.seed}): "
              f"m = {P.shape[0]}, n + p = {P.shape[1] + U.shape[1]}, q = {Y.shape[1]}, "
              f"{calls[0][4]!r}")
        for tol in (float(t) for t in args.tols.split(",")):
            best = {}
            for _ in range(args.repeats):
                for solver in ("trust-ncg", "pcg"):
                    HVP[solver] = 0
                    t, out = solve_all(calls, tol, solver)
                    if solver not in best or t < best[solver][0]:
                        best[solver] = (t, out, HVP[solver])
            (tb, ob, hb), (tn, on, hn) = best["trust-ncg"], best["pcg"]
            fb = np.array([r.objective for r in ob])
            fn = np.array([r.objective for r in on])
            n = len(calls)
            gb = max(kkt(c, r) for c, r in zip(calls, ob, strict=True))
            gn = max(kkt(c, r) for c, r in zip(calls, on, strict=True))
            print(f"tol {tol:g}: trust-ncg {1e3 * tb / n:.1f} ms/solve ({hb / n:.0f} Hv), "
                  f"pcg {1e3 * tn / n:.1f} ms/solve ({hn / n:.0f} Hv), ratio {tb / tn:.2f}x; "
                  f"max |grad| {gb:.1e} / {gn:.1e}; "
                  f"max (f_pcg - f_tr)/|f_tr| {np.max((fn - fb) / np.abs(fb)):+.1e}; "
                  f"all converged {all(r.converged for r in on)}", flush=True)


if __name__ == "__main__":
    cd_mod._softmax_pcg = counted_pcg(cd_mod._softmax_pcg)
    main()
