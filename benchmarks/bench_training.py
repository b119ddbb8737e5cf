"""Training benchmark: test score and fit time of every solver against scikit-learn's MLP.

For each data set it fits, with the same number of hidden units,

* ``init``: the random-feature initialisation alone, (C, D, c) refit on its
  equilibrium;
* ``bcd``, ``gradient``, ``bcd+gradient``: :class:`ImplicitRegressor` /
  :class:`ImplicitClassifier` with their defaults;
* ``bcd-es`` (only when asked for with ``--solvers``): BCD with ``early_stopping=True`` (the
  round is chosen on a 10 % validation split);
* ``mlp``: ``MLPRegressor`` / ``MLPClassifier`` (inputs standardised, early stopping off).

Scores: test RMSE for regression (lower is better), test accuracy for classification. Each
line prints the ratio of the score to the MLP's, measured in the same run.

Run:  python benchmarks/bench_training.py [--datasets teacher,digits] [--seeds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from lifted_idl import ConvergenceWarning, ImplicitClassifier, ImplicitRegressor
from lifted_idl.datasets import load_builtin, make_function_fit, make_teacher

DATASETS = ["teacher", "function_fit", "digits", "diabetes", "breast_cancer"]


def load(name, seed):
    if name == "teacher":
        U, y, Ut, yt, _ = make_teacher(500, 500, random_state=seed)
        return U, y, Ut, yt, "regression", 20
    if name == "function_fit":
        U, y, Ut, yt = make_function_fit(200, 1000, random_state=seed)
        return U, y, Ut, yt, "regression", 75
    X, y, task = load_builtin(name)
    strat = y if task == "classification" else None
    U, Ut, y, yt = train_test_split(X, y, test_size=0.3, random_state=seed, stratify=strat)
    return U, y, Ut, yt, task, 50 if name == "digits" else 20


def score(est, Ut, yt, task):
    if task == "regression":
        return float(np.sqrt(np.mean((est.predict(Ut) - yt) ** 2)))
    return float(np.mean(est.predict(Ut) == yt))


def init_only(est, U, y):
    """The estimator's initialisation: random features, (C, D, c) refit, nothing else."""
    est = est.set_params(solver="bcd", max_iter=1)
    # max_iter=1 runs one round; the history keeps round 0 (the initialisation), and the
    # estimator returns the best round, so re-fit the initial model explicitly:
    from lifted_idl.activations import get_activation
    from lifted_idl.estimators import _fold_standardisation
    from lifted_idl.losses import SoftmaxCrossEntropy, SquaredLoss
    from lifted_idl.penalties import get_penalty

    est.fit(U, y)  # sets scaling, classes_, n_features_in_
    mean_u, scale_u = est._standardise(np.asarray(U, dtype=float))
    Us = (U - mean_u) / scale_u
    if isinstance(est, ImplicitRegressor):
        Y = np.asarray(y, float).reshape(len(y), -1)
        my, sy = Y.mean(0), Y.std(0)
        model = est._random_feature_model(Us, (Y - my) / sy, SquaredLoss(),
                                          get_activation(est.activation),
                                          get_penalty(est.penalty, est.alpha), 0)
        est.model_ = _fold_standardisation(model, mean_u, scale_u, my, sy)
    else:
        Y = (y[:, None] == est.classes_[None, :]).astype(float)
        model = est._random_feature_model(Us, Y, SoftmaxCrossEntropy(),
                                          get_activation(est.activation),
                                          get_penalty(est.penalty, est.alpha), 0)
        est.model_ = _fold_standardisation(model, mean_u, scale_u)
    return est


def run(datasets, seeds, solvers):
    rows = []
    for name in datasets:
        for seed in range(seeds):
            U, y, Ut, yt, task, n = load(name, seed)
            Est = ImplicitRegressor if task == "regression" else ImplicitClassifier
            Mlp = MLPRegressor if task == "regression" else MLPClassifier
            results = {}
            t = time.perf_counter()
            mlp = make_pipeline(StandardScaler(),
                                Mlp(hidden_layer_sizes=(n,), max_iter=2000, random_state=seed))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mlp.fit(U, y)
            results["mlp"] = (score(mlp, Ut, yt, task), time.perf_counter() - t)
            for solver in solvers:
                est = Est(n_hidden=n, random_state=seed)
                t = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    if solver == "init":
                        init_only(est, U, y)
                    elif solver == "bcd-es":  # BCD with the round chosen on a validation split
                        est.set_params(solver="bcd", early_stopping=True).fit(U, y)
                    else:
                        est.set_params(solver=solver).fit(U, y)
                results[solver] = (score(est, Ut, yt, task), time.perf_counter() - t)
            base = results["mlp"][0]
            for k, (s, dt) in results.items():
                rows.append(dict(dataset=name, seed=seed, method=k, task=task, score=s,
                                 time=dt, ratio_to_mlp=s / base))
                print(f"{name:14s} seed {seed}  {k:13s} "
                      f"{'rmse' if task == 'regression' else 'acc '} {s:8.4f}  "
                      f"ratio to mlp {s / base:6.3f}  time {dt:7.2f} s", flush=True)
    return rows


def summarise(rows):
    print("\nmean over seeds (score, time):")
    keys = sorted({(r["dataset"], r["method"]) for r in rows}, key=lambda k: (
        DATASETS.index(k[0]) if k[0] in DATASETS else 99, k[1]))
    for d, mth in keys:
        sel = [r for r in rows if r["dataset"] == d and r["method"] == mth]
        print(f"{d:14s} {mth:13s} {np.mean([r['score'] for r in sel]):8.4f} "
              f"{np.mean([r['time'] for r in sel]):7.2f} s")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--solvers", default="init,bcd,gradient,bcd+gradient")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    rows = run(a.datasets.split(","), a.seeds, a.solvers.split(","))
    summarise(rows)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
