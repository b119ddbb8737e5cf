"""Where BCD stops: the prediction test (``pred_tol``) against the objective test and the MLP.

For each classification data set (digits with n_hidden 64 on ``bench_scaling.py``'s split;
iris, breast cancer and wine with n_hidden 20 on stratified 70/30 splits, as
``bench_warmup.py``) and seed, this script fits ``ImplicitClassifier`` with its defaults and
``pred_tol`` in ``--pred-tol`` (``none``: the objective test alone; ``auto``: the default,
1e-3 after the warm-up) and ``MLPClassifier`` of the same width (``max_iter=2000``, inputs
standardised) as the baseline. It prints per data set and setting the mean over seeds of the
CPU and wall seconds (each the minimum over ``--repeats`` fits), the BCD rounds (mean and
largest; epochs for the MLP), the test accuracy with its standard error over the seeds, the
number of ConvergenceWarnings, and the CPU-time ratios to the objective test alone and to the
MLP, measured in the same run. One BLAS thread.

Run:  python benchmarks/bench_stopping.py [--seeds 10] [--pred-tol none,auto] [--repeats 1]
          [--datasets digits,iris,breast_cancer,wine]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_scaling import timed_fit  # noqa: E402
from bench_warmup import load  # noqa: E402

from lifted_idl import ConvergenceWarning, ImplicitClassifier  # noqa: E402


def fit_once(name, seed, setting, repeats):
    """``(cpu, wall, iterations, accuracy, warnings)`` of one fit (minimum times over
    ``repeats``); ``setting`` is a ``pred_tol`` value or ``"mlp"``."""
    Xtr, ytr, Xte, yte, n_hidden, _ = load(name, seed)
    if setting == "mlp":
        def new():
            return make_pipeline(StandardScaler(), MLPClassifier((n_hidden,), max_iter=2000,
                                                                 random_state=seed))
    else:
        def new():
            return make_pipeline(StandardScaler(), ImplicitClassifier(
                n_hidden=n_hidden, random_state=seed, pred_tol=setting))
    est, cpu, wall, caught = timed_fit(new, Xtr, ytr, repeats)
    n_warn = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    return cpu, wall, est[-1].n_iter_, float(np.mean(est.predict(Xte) == yte)), n_warn


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--pred-tol", default="none,auto")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--datasets", default="digits,iris,breast_cancer,wine")
    args = ap.parse_args(argv)
    settings = [None if t == "none" else t if t == "auto" else float(t)
                for t in args.pred_tol.split(",")]
    if settings[0] is not None:
        settings = [None] + settings
    print(f"# seeds 0-{args.seeds - 1}; min of {args.repeats} fit(s) per seed; CPU / wall s; "
          "rounds: BCD rounds (MLP: epochs), mean and largest; accuracy: mean +- standard error "
          "over the seeds")
    print("| data | pred_tol | cpu | wall | rounds | max | accuracy | warnings | cpu / none "
          "| cpu / MLP |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    with threadpool_limits(1):
        for name in args.datasets.split(","):
            rows = {}
            for s in ["mlp"] + settings:
                rows[s] = np.array([fit_once(name, seed, s, args.repeats)
                                    for seed in range(args.seeds)])
            for s in settings + ["mlp"]:
                r = rows[s]
                cpu, wall = r[:, 0].mean(), r[:, 1].mean()
                acc, se = r[:, 3].mean(), r[:, 3].std() / np.sqrt(len(r))
                label = "MLP" if s == "mlp" else str(s)
                print(f"| {name} | {label} | {cpu:.3f} | {wall:.3f} | {r[:, 2].mean():.1f} | "
                      f"{int(r[:, 2].max())} | {acc:.4f} ± {se:.4f} | {int(r[:, 4].sum())} | "
                      f"{cpu / rows[None][:, 0].mean():.2f} | "
                      f"{cpu / rows['mlp'][:, 0].mean():.2f} |", flush=True)


if __name__ == "__main__":
    main()
