"""BCD's gradient warm-up (``warmup_epochs``): CPU time, rounds and test score against no warm-up.

A BCD stage that starts from random features may first train them for a few gradient epochs
(``warmup_epochs``; ``"auto"`` is 10 for classification and for regression from 8000 training
samples on, 0 below). This script fits the estimator defaults with ``warmup_epochs`` in
``--epochs`` (0 is the baseline) on digits (n_hidden 64, ``bench_scaling.py``'s split), iris,
breast cancer and wine (n_hidden 20, stratified 70/30 splits), diabetes (regression, n_hidden
20, 70/30 split), friedman1 (``friedman1:M``: M
training points, n_hidden 20, ``bench_scaling.py``'s data) and the teacher of
``bench_training.py`` (``teacher:M``: M training and 2000 test points, n_hidden 20), and prints
per data set and count the mean over seeds of the CPU and wall seconds (each the minimum over
``--repeats`` fits), the BCD rounds, the test accuracy (RMSE for regression), and the CPU-time
ratio to no warm-up measured in the same run. One BLAS thread. A count at least the gradient
solver's epoch cap (``gradient_max_iter``, 300) starts the rounds from the gradient solver's own
fit: the warm-up stops on its tolerance like ``solver="gradient"``.

Run:  python benchmarks/bench_warmup.py [--seeds 3] [--epochs 0,5,10,20] [--repeats 1]
          [--datasets digits,iris,breast_cancer,wine,diabetes,friedman1:2000,teacher:4000,...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, load_wine
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_scaling import digits, friedman, timed_fit  # noqa: E402

from lifted_idl import ImplicitClassifier, ImplicitRegressor  # noqa: E402
from lifted_idl.datasets import make_teacher  # noqa: E402

SMALL = {"iris": load_iris, "breast_cancer": load_breast_cancer, "wine": load_wine,
         "diabetes": load_diabetes}


def load(name, seed):
    """``(Xtr, ytr, Xte, yte, n_hidden, classification)``."""
    if name == "digits":
        return (*digits(seed), 64, True)
    if ":" in name:
        kind, m = name.split(":")
        if kind == "friedman1":
            return (*friedman(int(m), seed), 20, False)
        U, y, Ut, yt, _ = make_teacher(int(m), 2000, random_state=seed)
        return U, y, Ut, yt, 20, False
    X, y = SMALL[name](return_X_y=True)
    classification = name != "diabetes"
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=seed,
                                          stratify=y if classification else None)
    return Xtr, ytr, Xte, yte, 20, classification


def fit_once(name, seed, epochs, repeats):
    Xtr, ytr, Xte, yte, n_hidden, classification = load(name, seed)
    cls = ImplicitClassifier if classification else ImplicitRegressor
    est, cpu, wall, _ = timed_fit(
        lambda: make_pipeline(StandardScaler(), cls(n_hidden=n_hidden, random_state=seed,
                                                    warmup_epochs=epochs)),
        Xtr, ytr, repeats)
    pred = est.predict(Xte)
    score = (float(np.mean(pred == yte)) if classification
             else float(np.sqrt(np.mean((pred - yte) ** 2))))
    return cpu, wall, est[-1].n_iter_, score


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", default="0,5,10,20")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--datasets", default="digits,iris,breast_cancer,wine,friedman1:2000")
    args = ap.parse_args(argv)
    counts = [int(e) for e in args.epochs.split(",")]
    if counts[0] != 0:
        counts = [0] + counts
    print(f"# seeds 0-{args.seeds - 1}; min of {args.repeats} fit(s) per seed; CPU / wall s; "
          "score = test accuracy (RMSE for regression)")
    print("| data | warmup_epochs | cpu | wall | rounds | score | cpu / no warm-up |")
    print("|---|---|---|---|---|---|---|")
    with threadpool_limits(1):
        for name in args.datasets.split(","):
            base = None
            for k in counts:
                runs = np.array([fit_once(name, s, k, args.repeats)
                                 for s in range(args.seeds)])
                cpu, wall, rounds, score = runs.mean(axis=0)
                base = cpu if base is None else base
                print(f"| {name} | {k} | {cpu:.3f} | {wall:.3f} | {rounds:.1f} | "
                      f"{score:.4f} | {cpu / base:.2f} |", flush=True)


if __name__ == "__main__":
    main()
