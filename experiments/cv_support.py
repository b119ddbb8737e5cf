r"""The cross-validated estimators (issue 14): support recovery and diabetes.

**Rule and seeds, declared before the fresh seeds were run** (``CONFIG``; not changed after):

1. *Support recovery* on sparse implicit teachers of the [arXiv §7.2] kind
   (:func:`lifted_idl.datasets.make_teacher`, as ``experiments/model_recovery.py``): teacher
   with n = 20 ReLU states, :math:`\|A\|_\infty = 0.5`, p = 60 inputs of which 8 columns of B
   and D are nonzero, 1 % output noise, m = 300 training points (the set-up of issue 14). The
   estimator is the one of the bar, with the defaults otherwise (``random_state`` = the seed,
   for reproducibility): ``ImplicitRegressorCV(n_hidden=8, penalty="group", solver="bcd")``.
   Its support is ``support_`` (``feature_importances_ > 0``: the joint group prox returns
   exact zeros, so no threshold is involved). Both selections are reported:
   ``selection="relaxed"`` (the fitted estimator) and ``selection="min"``, whose choice is
   the argmax of ``cv_results_["mean_test_score"]`` of the same fit; its refit is
   ``ImplicitRegressor`` at that alpha, which is what ``ImplicitRegressorCV(selection="min")``
   returns (same fold paths, and ``tests/test_cv.py`` checks that the refit is the base fit).
   Exact support = precision = recall = 1. Bar: exact on at least 4 of the 5 fresh seeds.
   The default ``selection`` of the estimators is the one with more exact recoveries on the
   fresh seeds (a tie goes to ``"min"``, the simpler rule).
2. *Diabetes* (:func:`sklearn.datasets.load_diabetes`): 5 splits
   ``train_test_split(test_size=0.25, random_state=s)``, s = 0..4; test RMSE of
   ``ImplicitRegressorCV()`` with its defaults (``random_state=s``) against
   :class:`sklearn.linear_model.RidgeCV` (defaults, on the same raw features). Bar: the
   mean RMSE within one seed standard deviation (of RidgeCV's five RMSEs) of RidgeCV's mean.

3. *Support recovery, second rule* (``CONFIG_ADAPTIVE``; declared, with the package's new
   defaults, in one commit before its fresh seeds were run, once). The first rule failed
   (0 of 5, ``experiments/README.md``); what changed since: the estimators' ``fit_bias``
   (default ``"auto"``: the state bias b = 0 for ``penalty="group"`` with BCD) and
   ``selection="adaptive"``, now the default (the adaptive group lasso: the ``"min"`` choice
   gives column norms :math:`s_j`, a second cross-validated path with ``group_weights``
   :math:`\max_k s_k/s_j` chooses by minimum validation loss). Same teacher, same 300 training
   and 200 test points. The estimator of the bar with **every other parameter at its
   default** (``random_state`` = the seed): ``ImplicitRegressorCV(n_hidden=8,
   penalty="group", solver="bcd")``; its support is ``support_``. Also reported, from the
   same fit: the first stage (``first_stage_``: the ``"min"`` choice with b = 0, support =
   its refit's ``feature_importances_ > 0``). Exact = precision = recall = 1. Bar: exact on
   at least 4 of the 5 fresh seeds ``CONFIG_ADAPTIVE["fresh_seeds"]``, never run before this
   rule was committed (7301–7305 were the first rule's; 8501–8505 were set aside and never
   run, and are not reused). The development seeds (0, 1, 2, 100, 101) are the only ones
   the rule was tried on. Whatever the result, the default stays ``"adaptive"`` only if it
   has at least as many exact recoveries on the fresh seeds as its first stage (``"min"``);
   else the default returns to ``"min"``. Diabetes is not rerun: its defaults (penalty l2)
   are not touched by either change.

4. *Support recovery, third rule* (``CONFIG_RELAXED_STAGE``; declared in one commit, with
   the package's change, before its fresh seeds were run, once). The second rule got 2 of 5
   (``experiments/README.md``): its second stage, chosen by the minimum validation loss,
   took the smallest strength of its grid on every seed, where the folds keep a few
   irrelevant features, while the folds keep exactly the true 8 over several strengths
   before it. What changed: the adaptive second stage now chooses by the relaxed rule (each
   fold's path point refit on its kept features without the group penalty; the lowest
   mean validation loss of the refits). Same teacher, estimator, defaults and support rule
   as part 3. Bar: exact on at least 4 of the 5 fresh seeds
   ``CONFIG_RELAXED_STAGE["fresh_seeds"]`` (9201–9205), never run before this commit
   (7301–7305, 9101–9105 were the earlier rules'; 8501–8505 stay unused). Development
   seeds 0, 1, 2 only were tried (``experiments/README.md``). Whatever the result, the
   relaxed second stage stays the package's default only if it recovers the support
   exactly on at least as many fresh seeds as its first stage (``"min"``, reported from the
   same fit).

The design seeds (``CONFIG["design_seeds"]``) were used while writing the estimators and
choosing the grid; the fresh seeds were drawn after this docstring and ``CONFIG`` were written
and were run once.

Run ``python experiments/cv_support.py --adaptive`` for part 3 (writes
``cv_support_adaptive.json``), ``--relaxed-stage`` for part 4 (``cv_support_relaxed.json``);
``python experiments/cv_support.py`` or ``lifted-idl experiment cv_support`` for parts 1 and
2, which write ``cv_support.json`` and ``cv_support.png`` into ``experiments/results/``.
``--diagnose SEED ...`` (development seeds only, never the fresh ones) runs
:func:`diagnose_seed` instead and writes ``cv_support_dev.json``: along the CV grid, the
support of the fit on all the training data and of the folds' averaged importances, and
whether a threshold could separate the true columns (see ``experiments/README.md``).
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _paper import output_dir, rmse, run_info, run_settings, save_png, source_state, write_json  # noqa: E402

from lifted_idl import ConvergenceWarning, ImplicitRegressor, ImplicitRegressorCV  # noqa: E402
from lifted_idl.datasets import make_teacher  # noqa: E402

CONFIG = {
    "teacher": {"n_hidden": 20, "n_features": 60, "sparse_columns": 8, "a_norm": 0.5,
                "noise": 0.01, "n_train": 300, "n_test": 200},
    "estimator": {"n_hidden": 8, "penalty": "group", "solver": "bcd"},
    "support_rule": "support_ = feature_importances_ > 0 (exact zeros of the joint prox)",
    "selections": ["relaxed", "min"],
    "bar": "exact support (precision = recall = 1) on at least 4 of the 5 fresh seeds",
    "default_rule": "the selection with more exact recoveries on the fresh seeds; tie: 'min'",
    "design_seeds": [100, 101],
    "fresh_seeds": [7301, 7302, 7303, 7304, 7305],
    "diabetes_seeds": [0, 1, 2, 3, 4],
    "diabetes_test_size": 0.25,
    "n_jobs": 2,
}


CONFIG_ADAPTIVE = {
    "teacher": "CONFIG['teacher'] (unchanged)",
    "estimator": {"n_hidden": 8, "penalty": "group", "solver": "bcd"},
    "defaults": "every other parameter at the package default: selection='adaptive', "
                "fit_bias='auto' (b = 0 here), alphas=10, eps=1e-3, cv=5",
    "support_rule": "support_ = feature_importances_ > 0 (exact zeros of the joint prox)",
    "also_reported": "first stage: first_stage_['feature_importances_'] > 0 ('min', b = 0)",
    "bar": "exact support (precision = recall = 1) on at least 4 of the 5 fresh seeds",
    "default_rule": "selection='adaptive' stays the default iff its exact count on the fresh "
                    "seeds >= that of its first stage ('min'); else the default is 'min'",
    "development_seeds": [0, 1, 2, 100, 101],
    "fresh_seeds": [9101, 9102, 9103, 9104, 9105],
    "n_jobs": 5,
}


CONFIG_RELAXED_STAGE = {
    **{k: CONFIG_ADAPTIVE[k] for k in ("teacher", "estimator", "support_rule", "also_reported",
                                        "bar")},
    "defaults": "every other parameter at the package default: selection='adaptive' with its "
                "second stage chosen by relaxed refits, fit_bias='auto' (b = 0 here), "
                "alphas=10, eps=1e-3, cv=5",
    "default_rule": "the relaxed second stage stays the default iff its exact count on the "
                    "fresh seeds >= that of its first stage ('min')",
    "development_seeds": [0, 1, 2],
    "fresh_seeds": [9201, 9202, 9203, 9204, 9205],
    "n_jobs": 2,
}

def precision_recall(selected, support) -> tuple[float, float]:
    """Precision and recall of a boolean mask ``selected`` against the index set ``support``."""
    sel, sup = set(np.flatnonzero(selected).tolist()), set(int(i) for i in support)
    tp = len(sel & sup)
    return (tp / len(sel) if sel else 0.0), (tp / len(sup) if sup else 1.0)


def _record(mask, support, alpha, r2) -> dict:
    prec, rec = precision_recall(mask, support)
    return {"alpha": float(alpha), "selected": np.flatnonzero(mask), "n_selected":
            int(mask.sum()), "precision": prec, "recall": rec,
            "exact": bool(prec == 1.0 and rec == 1.0), "test_r2": float(r2)}


def teacher(seed: int):
    """The declared sparse teacher (``CONFIG["teacher"]``) of one seed: ``make_teacher``'s
    training and test data and its info."""
    t = CONFIG["teacher"]
    return make_teacher(
        t["n_train"], t["n_test"], n_features=t["n_features"], n_hidden=t["n_hidden"],
        a_norm=t["a_norm"], noise=t["noise"], sparse_columns=t["sparse_columns"],
        random_state=seed)


def support_seed(seed: int) -> dict:
    """Both selections on one teacher."""
    U, y, Ut, yt, info = teacher(seed)
    support = info["support"]
    t0 = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # selection="relaxed" computes both scores (it was the default when the committed
        # results were written; "min" is the default since, by the declared tie rule)
        cv = ImplicitRegressorCV(**CONFIG["estimator"], selection="relaxed",
                                 random_state=seed).fit(U, y)
        res = cv.cv_results_
        k = int(np.argmax(res["mean_test_score"]))
        base = ImplicitRegressor(**CONFIG["estimator"], alpha=float(cv.alphas_[k]),
                                 random_state=seed).fit(U, y)
    out = {"seed": seed, "support": support, "cpu_seconds": time.process_time() - t0,
           "alpha_max": float(cv.alphas_[0]), "alphas": cv.alphas_,
           "mean_n_selected": res["mean_n_selected"],
           "mean_test_score": res["mean_test_score"],
           "mean_relaxed_test_score": res.get("mean_relaxed_test_score"),
           "relaxed": _record(cv.support_, support, cv.alpha_, cv.score(Ut, yt)),
           "min": _record(base.feature_importances_ > 0, support, cv.alphas_[k],
                          base.score(Ut, yt))}
    for s in CONFIG["selections"]:
        r = out[s]
        print(f"seed {seed} {s:7s}: alpha {r['alpha']:.4g}, {r['n_selected']} kept, precision "
              f"{r['precision']:.2f}, recall {r['recall']:.2f}, exact {r['exact']}, "
              f"test R2 {r['test_r2']:.3f}", flush=True)
    return out


def adaptive_seed(seed: int) -> dict:
    """Part 3 on one teacher: the estimator of ``CONFIG_ADAPTIVE`` with the package defaults,
    its support and that of its first stage."""
    U, y, Ut, yt, info = teacher(seed)
    support = info["support"]
    t0 = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        cv = ImplicitRegressorCV(**CONFIG_ADAPTIVE["estimator"], random_state=seed).fit(U, y)
    out = {"seed": seed, "support": support, "cpu_seconds": time.process_time() - t0,
           "selection": cv.selection, "fit_bias": cv.fit_bias,
           "alphas": cv.alphas_, "mean_n_selected": cv.cv_results_["mean_n_selected"],
           "mean_test_score": cv.cv_results_["mean_test_score"],
           "feature_importances": cv.feature_importances_,
           "adaptive": _record(cv.support_, support, cv.alpha_, cv.score(Ut, yt))}
    if hasattr(cv, "first_stage_"):
        f = cv.first_stage_
        imp = f["feature_importances_"]
        # the first stage's refit is ImplicitRegressor at its alpha_: score it the same way
        base = ImplicitRegressor(**CONFIG_ADAPTIVE["estimator"], alpha=f["alpha_"],
                                 random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            r2 = base.fit(U, y).score(Ut, yt)
        out["first_stage"] = _record(imp > 0, support, f["alpha_"], r2)
        out["first_stage"]["separation"] = separation(imp, support)
        out["first_stage_importances"] = imp
        out["first_stage_mean_n_selected"] = f["cv_results_"]["mean_n_selected"]
    for s in ("adaptive", "first_stage"):
        if s in out:
            r = out[s]
            print(f"seed {seed} {s}: alpha {r['alpha']:.4g}, {r['n_selected']} kept, precision "
                  f"{r['precision']:.2f}, recall {r['recall']:.2f}, exact {r['exact']}, "
                  f"test R2 {r['test_r2']:.3f}", flush=True)
    return out


def main_adaptive(out_dir="experiments/results", seeds=None, n_jobs: int | None = None,
                  part: int = 3) -> dict:
    """Part 3 (or 4): :func:`adaptive_seed` on ``seeds`` (default the fresh seeds of
    ``CONFIG_ADAPTIVE``, or of ``CONFIG_RELAXED_STAGE``); writes ``cv_support_adaptive.json``
    (``cv_support_relaxed.json``)."""
    from joblib import Parallel, delayed

    config = CONFIG_ADAPTIVE if part == 3 else CONFIG_RELAXED_STAGE
    name = "adaptive" if part == 3 else "relaxed"
    seeds, n_jobs = run_settings(config, seeds, n_jobs, seed_key="fresh_seeds")
    t0 = time.perf_counter()
    per_seed = Parallel(n_jobs=n_jobs)(delayed(adaptive_seed)(s) for s in seeds)
    summary = {}
    for s in ("adaptive", "first_stage"):
        rows = [r[s] for r in per_seed if s in r]
        summary[s] = {"exact": int(sum(r["exact"] for r in rows)), "of": len(rows),
                      "precision": [r["precision"] for r in rows],
                      "recall": [r["recall"] for r in rows],
                      "n_selected": [r["n_selected"] for r in rows]}
        print(f"{s}: exact support on {summary[s]['exact']} of {len(rows)}")
    data = {"experiment": f"cv_support, part {part} (adaptive selection, b = 0"
                          f"{', relaxed second stage' if part == 4 else ''})",
            "source": "issue 14; [arXiv §7.2] teacher", "config": CONFIG,
            f"config_{name}": config, "seeds": seeds, "summary": summary,
            "support_seeds": per_seed,
            "run": run_info(f"cv_support.py --{'adaptive' if part == 3 else 'relaxed-stage'}",
                            time.perf_counter() - t0),
            "source_state": source_state()}
    write_json(data, output_dir(out_dir) / f"cv_support_{name}.json")
    return data


def separation(importances, support) -> float:
    """Smallest importance on ``support`` over the largest off it (> 1: some threshold on the
    importances gives the exact support; 0: a relevant feature is out; inf: nothing false in)."""
    imp = np.asarray(importances, dtype=float)
    on = np.zeros(imp.size, dtype=bool)
    on[np.asarray(support, dtype=int)] = True
    off = imp[~on].max(initial=0.0)
    return float(imp[on].min() / off) if off > 0 else float("inf")


def diagnose_seed(seed: int) -> dict:
    """Development diagnosis (not the declared run): the CV estimator's scores along its grid
    and, at every strength of that grid, the base estimator fitted on all the training data:
    features kept, true and false positives, :func:`separation`. Whether any selection rule
    on the path (a strength, then perhaps a threshold) can give the exact support."""
    U, y, Ut, yt, info = teacher(seed)
    support = info["support"]
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        cv = ImplicitRegressorCV(**CONFIG["estimator"], selection="relaxed",
                                 random_state=seed).fit(U, y)
        res = cv.cv_results_
        for i, a in enumerate(cv.alphas_):
            fi = ImplicitRegressor(**CONFIG["estimator"], alpha=float(a),
                                   random_state=seed).fit(U, y).feature_importances_
            prec, rec = precision_recall(fi > 0, support)
            rows.append({"alpha": float(a), "n_selected": int((fi > 0).sum()),
                         "precision": prec, "recall": rec,
                         "separation": separation(fi, support),
                         "mean_test_score": float(res["mean_test_score"][i]),
                         "mean_relaxed_test_score": float(res["mean_relaxed_test_score"][i]),
                         "cv_mean_n_selected": float(res["mean_n_selected"][i])})
            r = rows[-1]
            print(f"seed {seed} alpha {a:.3g}: kept {r['n_selected']}, precision "
                  f"{prec:.2f}, recall {rec:.2f}, separation {r['separation']:.3g}; CV score "
                  f"{r['mean_test_score']:.2f}, relaxed {r['mean_relaxed_test_score']:.2f}",
                  flush=True)
    # the folds' importances, each fit's scaled by its largest, averaged over the folds
    imp = res["feature_importances"]
    scaled = imp / np.maximum(imp.max(axis=-1, keepdims=True), np.finfo(float).tiny)
    for r, m in zip(rows, scaled.mean(axis=0), strict=True):
        r["fold_mean_separation"] = separation(m, support)
    print(f"seed {seed} fold-mean separation:",
          " ".join(f"{r['fold_mean_separation']:.3g}" for r in rows), flush=True)
    return {"seed": seed, "support": support, "path": rows,
            "fold_mean_importances": scaled.mean(axis=0),
            "min_index": int(np.argmax(res["mean_test_score"])),
            "relaxed_index": int(np.argmax(res["mean_relaxed_test_score"]))}


def diabetes_seed(seed: int) -> dict:
    """ImplicitRegressorCV() (defaults) against RidgeCV on one split."""
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import train_test_split

    X, y = load_diabetes(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=CONFIG["diabetes_test_size"],
                                          random_state=seed)
    t0 = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        cv = ImplicitRegressorCV(random_state=seed).fit(Xtr, ytr)
    seconds = time.process_time() - t0
    ridge = RidgeCV().fit(Xtr, ytr)
    out = {"seed": seed, "implicit_cv_rmse": rmse(cv.predict(Xte), yte),
           "ridge_cv_rmse": rmse(ridge.predict(Xte), yte), "alpha_": cv.alpha_,
           "alphas_": cv.alphas_, "ridge_alpha_": float(ridge.alpha_), "cpu_seconds": seconds}
    print(f"diabetes seed {seed}: ImplicitRegressorCV {out['implicit_cv_rmse']:.2f} (alpha_ "
          f"{cv.alpha_:.3g}), RidgeCV {out['ridge_cv_rmse']:.2f}", flush=True)
    return out


def _summary(per_seed) -> dict:
    out = {}
    for s in CONFIG["selections"]:
        rows = [r[s] for r in per_seed]
        out[s] = {"exact": int(sum(r["exact"] for r in rows)), "of": len(rows),
                  "precision": [r["precision"] for r in rows],
                  "recall": [r["recall"] for r in rows],
                  "n_selected": [r["n_selected"] for r in rows]}
    return out


def _plot(per_seed, diabetes):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    ax = axes[0]
    for i, r in enumerate(per_seed):
        ax.semilogx(r["alphas"], r["mean_n_selected"], "o-", ms=3, color=f"C{i}",
                    label=f"seed {r['seed']}")
        for s, mk in (("relaxed", "s"), ("min", "x")):
            ax.plot(r[s]["alpha"], r[s]["n_selected"], mk, color=f"C{i}", ms=8)
    ax.axhline(CONFIG["teacher"]["sparse_columns"], color="0.3", ls=":", lw=1)
    ax.set_xlabel("alpha")
    ax.set_ylabel("features kept (mean over folds)")
    ax.set_title("teacher: path; square = relaxed choice, x = min")
    ax.legend(fontsize=7)
    ax = axes[1]
    seeds = [d["seed"] for d in diabetes]
    ax.plot(seeds, [d["implicit_cv_rmse"] for d in diabetes], "o-", label="ImplicitRegressorCV()")
    ax.plot(seeds, [d["ridge_cv_rmse"] for d in diabetes], "s-", label="RidgeCV()")
    ax.set_xlabel("split seed")
    ax.set_ylabel("test RMSE")
    ax.set_title("diabetes")
    ax.legend()
    fig.tight_layout()
    return fig


def main(out_dir="experiments/results", seeds=None, n_jobs: int | None = None,
         diabetes: bool = True) -> dict:
    """Run both parts and write ``cv_support.json`` and ``cv_support.png``.

    Parameters
    ----------
    out_dir : str or Path
    seeds : sequence of int, optional
        Teacher seeds; default ``CONFIG["fresh_seeds"]``.
    n_jobs : int, optional
        Seeds run in parallel worker processes (default ``CONFIG["n_jobs"]``).
    diabetes : bool, default=True
        Also run the diabetes comparison.

    Returns
    -------
    dict
        What the JSON file holds.
    """
    from joblib import Parallel, delayed

    seeds, n_jobs = run_settings(CONFIG, seeds, n_jobs, seed_key="fresh_seeds")
    t0 = time.perf_counter()
    jobs = [delayed(support_seed)(s) for s in seeds]
    if diabetes:
        jobs += [delayed(diabetes_seed)(s) for s in CONFIG["diabetes_seeds"]]
    done = Parallel(n_jobs=n_jobs)(jobs)
    per_seed, dia = done[:len(seeds)], done[len(seeds):]
    summary = {"support": _summary(per_seed)}
    for s in CONFIG["selections"]:
        print(f"{s}: exact support on {summary['support'][s]['exact']} of {len(seeds)}")
    if dia:
        imp = np.array([d["implicit_cv_rmse"] for d in dia])
        rid = np.array([d["ridge_cv_rmse"] for d in dia])
        summary["diabetes"] = {
            "implicit_cv_rmse_mean": imp.mean(), "implicit_cv_rmse_std": imp.std(ddof=1),
            "ridge_cv_rmse_mean": rid.mean(), "ridge_cv_rmse_std": rid.std(ddof=1),
            "within_one_std": bool(abs(imp.mean() - rid.mean()) <= rid.std(ddof=1))}
        d = summary["diabetes"]
        print(f"diabetes: ImplicitRegressorCV {d['implicit_cv_rmse_mean']:.2f} ± "
              f"{d['implicit_cv_rmse_std']:.2f}, RidgeCV {d['ridge_cv_rmse_mean']:.2f} ± "
              f"{d['ridge_cv_rmse_std']:.2f}; within one std: {d['within_one_std']}")
    out = output_dir(out_dir)
    data = {"experiment": "cv_support", "source": "issue 14; [arXiv §7.2] teacher",
            "config": CONFIG, "seeds": seeds, "summary": summary, "support_seeds": per_seed,
            "diabetes": dia, "run": run_info("cv_support.py", time.perf_counter() - t0),
            "source_state": source_state()}
    write_json(data, out / "cv_support.json")
    if dia:
        save_png(_plot(per_seed, dia), out / "cv_support.png")
    return data


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", default="experiments/results")
    parser.add_argument("--seeds", type=int, nargs="*", default=None)
    parser.add_argument("--n-jobs", type=int, default=None)
    parser.add_argument("--no-diabetes", action="store_true")
    parser.add_argument("--adaptive", action="store_true",
                        help="part 3 (CONFIG_ADAPTIVE) on its fresh seeds, or on --seeds")
    parser.add_argument("--relaxed-stage", action="store_true",
                        help="part 4 (CONFIG_RELAXED_STAGE) on its fresh seeds, or on --seeds")
    parser.add_argument("--diagnose", type=int, nargs="+", default=None, metavar="SEED",
                        help="development seeds: diagnose_seed on each, to cv_support_dev.json")
    args = parser.parse_args()
    if args.diagnose is not None:
        from joblib import Parallel, delayed

        t0 = time.perf_counter()
        rows = Parallel(n_jobs=args.n_jobs or 1)(delayed(diagnose_seed)(s)
                                                 for s in args.diagnose)
        write_json({"experiment": "cv_support diagnosis (development seeds)", "config": CONFIG,
                    "seeds": args.diagnose, "per_seed": rows,
                    "run": run_info("cv_support.py", time.perf_counter() - t0),
                    "source_state": source_state()},
                   output_dir(args.out_dir) / "cv_support_dev.json")
        sys.exit(0)
    if args.adaptive or args.relaxed_stage:
        main_adaptive(out_dir=args.out_dir, seeds=args.seeds, n_jobs=args.n_jobs,
                      part=4 if args.relaxed_stage else 3)
        sys.exit(0)
    main(out_dir=args.out_dir, seeds=args.seeds, n_jobs=args.n_jobs,
         diabetes=not args.no_diabetes)
