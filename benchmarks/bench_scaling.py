"""Scaling benchmark: CPU time and test score of BCD, gradient training and the MLP.

On friedman1 (``sklearn.datasets.make_friedman1``, p = 10, noise 1, a test set of 2000
points; inputs standardised for every model) it fits, with the same number of hidden units,

* ``bcd``: :class:`ImplicitRegressor` with its defaults (block-coordinate descent);
* ``gradient``: :class:`ImplicitRegressor` with ``solver="gradient"``;
* ``mlp``: scikit-learn's ``MLPRegressor(hidden_layer_sizes=(n_hidden,), max_iter=2000)``,
  the baseline of every ratio,

over two sweeps: the number of samples m in {500, 2000, 8000, 32000} at n_hidden 20, and
n_hidden in {10, 20, 50, 100, 200} at m = 2000; with ``--digits``, also digits (n_hidden 64,
70 / 30 split) against ``MLPClassifier``. For every point it prints the mean over seeds of the
CPU time (``time.process_time``; the minimum over ``--repeats`` fits of each seed) beside the
wall time, the test RMSE (accuracy for digits), and the ratios to the MLP measured in the same
run, and the CPU time per round of BCD, per epoch of gradient training and per iteration of
the MLP (the fit's CPU time over its count: the start, e.g. BCD's warm-up, included). Then the
log-log slopes of CPU time against m (500 -> 32000) and against n_hidden
(20 -> 200), and a PNG of both sweeps.

BLAS is limited to one thread (many small products are much slower threaded on few cores).

Run:  python benchmarks/bench_scaling.py [--seeds 3] [--repeats 1] [--models bcd,gradient,mlp]
          [--ms 500,2000,8000,32000] [--ns 10,20,50,100,200] [--digits] [--no-sweeps]
          [--png benchmarks/scaling.png] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits, make_friedman1
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from lifted_idl import ImplicitClassifier, ImplicitRegressor

N_TEST = 2000


def friedman(m, seed):
    X, y = make_friedman1(n_samples=m + N_TEST, n_features=10, noise=1.0, random_state=seed)
    return X[:m], y[:m], X[m:], y[m:]


def digits(seed):
    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=seed, stratify=y)
    return Xtr, ytr, Xte, yte


def make(model, n_hidden, seed, task):
    if model == "mlp":
        cls = MLPRegressor if task == "regression" else MLPClassifier
        est = cls(hidden_layer_sizes=(n_hidden,), max_iter=2000, random_state=seed)
    else:
        cls = ImplicitRegressor if task == "regression" else ImplicitClassifier
        solver = "bcd" if model == "bcd" else "gradient"
        est = cls(n_hidden=n_hidden, solver=solver, random_state=seed)
    return make_pipeline(StandardScaler(), est)


def timed_fit(new_estimator, X, y, repeats):
    """Fit ``new_estimator()`` on (X, y) ``repeats`` times (at least once); returns the last
    fitted estimator, the minimum CPU (``time.process_time``) and wall times, and the warnings
    its fit raised (recorded, not shown). The benchmarks' one timing loop."""
    cpu = wall = np.inf
    for _ in range(max(repeats, 1)):
        est = new_estimator()
        c0, w0 = time.process_time(), time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est.fit(X, y)
        cpu = min(cpu, time.process_time() - c0)
        wall = min(wall, time.perf_counter() - w0)
    return est, cpu, wall, caught


def fit_once(model, n_hidden, seed, data, task, repeats):
    """Fit ``repeats`` times; the minimum CPU and wall times, and the test score."""
    Xtr, ytr, Xte, yte = data
    est, cpu, wall, _ = timed_fit(lambda: make(model, n_hidden, seed, task), Xtr, ytr, repeats)
    pred = est.predict(Xte)
    if task == "regression":
        sc = float(np.sqrt(np.mean((pred - yte) ** 2)))
    else:
        sc = float(np.mean(pred == yte))
    last = est[-1]
    rounds = int(getattr(last, "n_iter_", 0))
    # the MLP has no converged_: it converged when it stopped before max_iter
    conv = bool(getattr(last, "converged_", rounds < getattr(last, "max_iter", np.inf)))
    return {"cpu": cpu, "wall": wall, "score": sc, "n_iter": rounds, "converged": conv}


def point(models, n_hidden, seeds, loader, task, repeats):
    out = {}
    for model in models:
        runs = [fit_once(model, n_hidden, s, loader(s), task, repeats) for s in seeds]
        out[model] = {k: float(np.mean([r[k] for r in runs])) for k in
                      ("cpu", "wall", "score", "n_iter")}
        # CPU seconds per round (BCD) / epoch (gradient) / iteration (MLP), the start included
        out[model]["cpu_per_iter"] = float(np.mean([r["cpu"] / max(r["n_iter"], 1)
                                                    for r in runs]))
        out[model]["per_seed_score"] = [r["score"] for r in runs]
        out[model]["per_seed_cpu"] = [r["cpu"] for r in runs]
        out[model]["n_converged"] = int(sum(r["converged"] for r in runs))
    return out


def show(label, res, task):
    base = res.get("mlp")
    unit = "RMSE" if task == "regression" else "accuracy"
    for model, r in res.items():
        ratio = ""
        if base is not None and model != "mlp":
            ratio = (f"  cpu/mlp {r['cpu'] / base['cpu']:6.2f}  "
                     f"{unit}/mlp {r['score'] / base['score']:6.3f}")
        print(f"{label:>18s}  {model:9s} cpu {r['cpu']:8.2f} s  wall {r['wall']:8.2f} s  "
              f"{unit} {r['score']:.4f}  rounds {r['n_iter']:7.1f}  "
              f"ms/round {1e3 * r['cpu_per_iter']:7.2f}  "
              f"converged {r['n_converged']}/{len(r['per_seed_score'])}{ratio}", flush=True)


def slope(xs, ys):
    xs, ys = np.log(np.asarray(xs, float)), np.log(np.asarray(ys, float))
    return float(np.polyfit(xs, ys, 1)[0])


def plot(results, ms, ns, models, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 2, figsize=(11, 8))
    for col, (key, xs, xlabel) in enumerate([("m", ms, "samples m (n_hidden 20)"),
                                            ("n", ns, "n_hidden (m = 2000)")]):
        for model in models:
            pts = [results[key][str(x)][model] for x in xs]
            ax[0, col].loglog(xs, [p["cpu"] for p in pts], marker="o", label=model)
            ax[1, col].semilogx(xs, [p["score"] for p in pts], marker="o", label=model)
        ax[0, col].set_ylabel("CPU seconds")
        ax[1, col].set_ylabel("test RMSE")
        for r in (0, 1):
            ax[r, col].set_xlabel(xlabel)
            ax[r, col].grid(True, which="both", alpha=0.3)
            ax[r, col].legend()
    fig.suptitle("friedman1: BCD, gradient training and the MLP")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--models", default="bcd,gradient,mlp")
    ap.add_argument("--ms", default="500,2000,8000,32000")
    ap.add_argument("--ns", default="10,20,50,100,200")
    ap.add_argument("--digits", action="store_true")
    ap.add_argument("--no-sweeps", action="store_true")
    ap.add_argument("--png", default="benchmarks/scaling.png")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    models = args.models.split(",")
    seeds = list(range(args.seeds))
    ms = [int(v) for v in args.ms.split(",")]
    ns = [int(v) for v in args.ns.split(",")]
    results = {"m": {}, "n": {}, "digits": None}
    with threadpool_limits(1):
        if not args.no_sweeps:
            print("# sweep in m (n_hidden 20)")
            for m in ms:
                res = point(models, 20, seeds, lambda s, m=m: friedman(m, s), "regression",
                            args.repeats)
                results["m"][str(m)] = res
                show(f"m={m}", res, "regression")
            print("# sweep in n_hidden (m = 2000)")
            for n in ns:
                res = results["m"].get("2000") if n == 20 and 2000 in ms else None
                if res is None:
                    res = point(models, n, seeds, lambda s: friedman(2000, s), "regression",
                                args.repeats)
                results["n"][str(n)] = res
                show(f"n_hidden={n}", res, "regression")
        if args.digits:
            print("# digits (n_hidden 64)")
            res = point(models, 64, seeds, digits, "classification", args.repeats)
            results["digits"] = res
            show("digits", res, "classification")
    if not args.no_sweeps:
        print("# log-log slopes of CPU time")
        for model in models:
            parts = []
            if len(ms) > 1:
                cpu = [results["m"][str(m)][model]["cpu"] for m in ms]
                parts.append(f"in m ({ms[0]}->{ms[-1]}): {slope(ms, cpu):.2f}")
            big = [n for n in ns if n >= 20]
            if len(big) > 1:
                cpu = [results["n"][str(n)][model]["cpu"] for n in big]
                parts.append(f"in n_hidden ({big[0]}->{big[-1]}): {slope(big, cpu):.2f}")
            print(f"  {model:9s} " + "   ".join(parts))
        if args.png:
            plot(results, ms, ns, models, args.png)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
