"""Training benchmark: test score and fit time of every solver against scikit-learn's MLP.

For each data set it fits, with the same number of hidden units,

* ``init``: the random-feature initialisation alone, (C, D, c) refit on its
  equilibrium;
* ``bcd``, ``gradient``, ``bcd+gradient``: :class:`ImplicitRegressor` /
  :class:`ImplicitClassifier` with their defaults;
* ``bcd-es`` (only when asked for with ``--solvers``): BCD with ``early_stopping=True`` (the
  round is chosen on a 10 % validation split);
* ``init-cv``, ``bcd-cv`` (only when asked for): the same with ``alpha`` chosen by 3-fold
  cross-validation on the training set from ``--cv-alphas``, then refitted on all of it;
* ``--max-iter N`` sets the estimators' ``max_iter`` (BCD rounds; default: the estimator's
  default, 300), e.g. to measure BCD run to convergence;
* ``mlp``: ``MLPRegressor`` / ``MLPClassifier`` (inputs standardised, early stopping off);
* with ``--references``: standard models on the same split, to show how much any model can
  gain over a linear one on the data set: a ridge / logistic regression with its strength
  chosen by cross-validation, an RBF support-vector machine (C and gamma by 3-fold
  cross-validation) and gradient-boosted trees (``HistGradientBoosting``, defaults).

Scores: test RMSE for regression (lower is better), test accuracy for classification. Each
line prints the ratio of the score to the MLP's, measured in the same run, and the fit's CPU
time (``time.process_time``) beside its wall time. BLAS is limited to one thread (many small
products are much slower threaded on few cores); the reference models' cross-validation runs
two jobs, so their wall time is the one to read.

Run:  python benchmarks/bench_training.py [--datasets teacher,digits] [--seeds 3] [--json out.json]
          [--solvers init,bcd,gradient,bcd+gradient,bcd-es,init-cv,bcd-cv] [--references]
          [--max-iter 1000]
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
from threadpoolctl import threadpool_limits

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
    """The estimator's initialisation: random features, (C, D, c) refit, nothing else.

    The random features are drawn from the seed the estimator's own fit draws (``_fit_seed``),
    so this is the very model BCD and gradient training start from; checked against round 0 of
    the BCD history (its true training objective)."""
    est = est.set_params(solver="bcd", max_iter=1)
    # max_iter=1 runs one round; the history keeps round 0 (the initialisation), and the
    # estimator returns the best round, so re-fit the initial model explicitly:
    from lifted_idl.activations import get_activation
    from lifted_idl.estimators import _fold_standardisation
    from lifted_idl.losses import SoftmaxCrossEntropy, SquaredLoss
    from lifted_idl.penalties import get_penalty
    from lifted_idl.training.bcd import true_objective

    est.fit(U, y)  # sets scaling, classes_, n_features_in_
    mean_u, scale_u = est._standardise(np.asarray(U, dtype=float))
    Us = (U - mean_u) / scale_u
    if isinstance(est, ImplicitRegressor):
        Y = np.asarray(y, float).reshape(len(y), -1)
        my, sy = Y.mean(0), Y.std(0)
        Ys, loss, fold_y = (Y - my) / sy, SquaredLoss(), (my, sy)
    else:
        Ys = (y[:, None] == est.classes_[None, :]).astype(float)
        loss, fold_y = SoftmaxCrossEntropy(), ()
    pen = get_penalty(est.penalty, est.alpha)
    model = est._random_feature_model(Us, Ys, loss, get_activation(est.activation), pen,
                                      est._fit_seed())
    est.model_ = _fold_standardisation(model, mean_u, scale_u, *fold_y)
    start = true_objective(model, Us, Ys, loss, pen, pen)
    if not np.isclose(start, est.bcd_history_.train_loss[0], rtol=1e-8):
        raise RuntimeError(f"init_only's model (objective {start}) is not BCD's round 0 "
                           f"({est.bcd_history_.train_loss[0]})")
    return est


def cv_alpha(fit, U, y, task, alphas, seed, folds=3):
    """``fit(alpha, U, y)`` -> fitted estimator; alpha chosen by ``folds``-fold cross-validation
    on (U, y) (mean validation score, ties to the larger alpha), then refitted on all of it."""
    from joblib import Parallel, delayed
    from sklearn.model_selection import KFold, StratifiedKFold

    cv = (KFold(folds, shuffle=True, random_state=seed) if task == "regression"
          else StratifiedKFold(folds, shuffle=True, random_state=seed))
    splits = list(cv.split(U, y))

    def one(a, tr, va):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return score(fit(a, U[tr], y[tr]), U[va], y[va], task)

    vals = Parallel(n_jobs=2)(delayed(one)(a, tr, va) for a in alphas for tr, va in splits)
    means = np.asarray(vals).reshape(len(alphas), folds).mean(axis=1)
    sign = 1.0 if task == "regression" else -1.0  # RMSE: lower is better
    order = sorted(range(len(alphas)), key=lambda i: (sign * means[i], -alphas[i]))
    best = alphas[order[0]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fit(best, U, y), best


def references(U, y, Ut, yt, task, seed):
    """Standard models on the same split (inputs standardised): test scores by name."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegressionCV, RidgeCV
    from sklearn.model_selection import GridSearchCV
    from sklearn.svm import SVC, SVR

    svm = GridSearchCV(SVR() if task == "regression" else SVC(),
                       {"C": [0.3, 1, 10, 100], "gamma": ["scale", 0.3 / U.shape[1],
                                                          3 / U.shape[1]]}, cv=3, n_jobs=2)
    models = {"ridge/logistic-cv": (RidgeCV(alphas=np.logspace(-3, 3, 25))
                                    if task == "regression" else LogisticRegressionCV(Cs=13)),
              "rbf-svm-cv": svm,
              "boosted-trees": (HistGradientBoostingRegressor(random_state=seed)
                                if task == "regression"
                                else HistGradientBoostingClassifier(random_state=seed))}
    out = {}
    for k, mdl in models.items():
        t, c = time.perf_counter(), time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = make_pipeline(StandardScaler(), mdl).fit(U, y)
        out[k] = (score(est, Ut, yt, task), time.perf_counter() - t, time.process_time() - c)
    return out


def run(datasets, seeds, solvers, with_references=False, cv_alphas=(1e-3, 1e-2, 3e-2, 1e-1),
        params=None):
    """Fit and score; ``params``: extra estimator parameters (e.g. ``{"max_iter": 1000}``)."""
    params = dict(params or {})
    rows = []
    for name in datasets:
        for seed in range(seeds):
            U, y, Ut, yt, task, n = load(name, seed)
            Est = ImplicitRegressor if task == "regression" else ImplicitClassifier
            Mlp = MLPRegressor if task == "regression" else MLPClassifier
            results = {}
            t, c = time.perf_counter(), time.process_time()
            mlp = make_pipeline(StandardScaler(),
                                Mlp(hidden_layer_sizes=(n,), max_iter=2000, random_state=seed))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mlp.fit(U, y)
            results["mlp"] = (score(mlp, Ut, yt, task), time.perf_counter() - t,
                              time.process_time() - c)
            if with_references:
                results.update(references(U, y, Ut, yt, task, seed))
            for solver in solvers:
                est = Est(n_hidden=n, random_state=seed, **params)
                t, c = time.perf_counter(), time.process_time()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    if solver == "init":
                        init_only(est, U, y)
                    elif solver in ("init-cv", "bcd-cv"):
                        def fit(a, Uf, yf, solver=solver, Est=Est, n=n, seed=seed):
                            e = Est(n_hidden=n, random_state=seed, **{**params, "alpha": a})
                            return init_only(e, Uf, yf) if solver == "init-cv" else e.fit(Uf, yf)
                        est, chosen = cv_alpha(fit, U, y, task, list(cv_alphas), seed)
                        print(f"{name:14s} seed {seed}  {solver:13s} alpha chosen {chosen:g}")
                    elif solver == "bcd-es":  # BCD with the round chosen on a validation split
                        est.set_params(solver="bcd", early_stopping=True).fit(U, y)
                    else:
                        est.set_params(solver=solver).fit(U, y)
                results[solver] = (score(est, Ut, yt, task), time.perf_counter() - t,
                                   time.process_time() - c)
            base = results["mlp"][0]
            for k, (s, dt, cpu) in results.items():
                rows.append(dict(dataset=name, seed=seed, method=k, task=task, score=s,
                                 time=dt, cpu=cpu, ratio_to_mlp=s / base))
                print(f"{name:14s} seed {seed}  {k:13s} "
                      f"{'rmse' if task == 'regression' else 'acc '} {s:8.4f}  "
                      f"ratio to mlp {s / base:6.3f}  cpu {cpu:7.2f} s  wall {dt:7.2f} s",
                      flush=True)
    return rows


def summarise(rows):
    print("\nmean over seeds (score, CPU s, wall s):")
    keys = sorted({(r["dataset"], r["method"]) for r in rows}, key=lambda k: (
        DATASETS.index(k[0]) if k[0] in DATASETS else 99, k[1]))
    for d, mth in keys:
        sel = [r for r in rows if r["dataset"] == d and r["method"] == mth]
        print(f"{d:14s} {mth:13s} {np.mean([r['score'] for r in sel]):8.4f} "
              f"{np.mean([r['cpu'] for r in sel]):7.2f} s "
              f"{np.mean([r['time'] for r in sel]):7.2f} s")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--solvers", default="init,bcd,gradient,bcd+gradient")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--json", default=None)
    ap.add_argument("--references", action="store_true",
                    help="also fit ridge/logistic regression, an RBF SVM and boosted trees")
    ap.add_argument("--cv-alphas", default="1e-3,1e-2,3e-2,1e-1",
                    help="the alphas init-cv and bcd-cv choose from")
    ap.add_argument("--max-iter", type=int, default=None,
                    help="the estimators' max_iter (BCD rounds); default: theirs")
    a = ap.parse_args()
    with threadpool_limits(1):  # many small products: threaded BLAS is slower on few cores
        rows = run(a.datasets.split(","), a.seeds, a.solvers.split(","), a.references,
                   tuple(float(v) for v in a.cv_alphas.split(",")),
                   params={} if a.max_iter is None else {"max_iter": a.max_iter})
    summarise(rows)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
