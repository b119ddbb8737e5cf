r"""Why BCD fits the [arXiv §7.2] model-recovery teacher worse than gradient training (issue 14).

The set-up is that of ``experiments/model_recovery.py`` (its ``_data``: teacher n = 20,
p = 100, 10 nonzero columns of B and D, 5 % noise, m = 400 training and 200 validation points,
targets standardised; student n = 10 ReLU states, :math:`\|A\|_\infty \le 0.5`; group penalty
(5.1) with ``ord=2`` and the ridge :math:`\tfrac\beta2\|C\|_F^2`). Seeds 0–2 (development
seeds of that script). Four measurements, each comparing the two trainers on the same split:

1. **no penalty**: :func:`~lifted_idl.training.bcd.fit_bcd` (40 rounds) against
   :func:`~lifted_idl.training.gradient.fit_gradient` (Adam, step 1e-2, 2000 epochs), both from
   the same random-feature start: training and validation MSE.
2. **one strength**, :math:`\alpha = 0.0146\,\alpha_{\max}` (where the gradient path of
   ``model_recovery.py`` validates best on seeds 0 and 2), :math:`\beta = \alpha` (the gradient
   recipe): the penalised objective reached by

   * BCD from the random-feature start, 150 rounds, with the default extrapolation (weight
     0.9 at the start, adaptive) and without it (0), and the share of always-on states
     (active on > 97 % of the training points: a ReLU state that never switches off is a
     linear feature);
   * BCD without the state bias (``group_lasso_path(..., fit_bias=False)``, b = 0: the
     teacher's model), 150 rounds;
   * Adam (2000 epochs) from the same start;
   * 50 BCD rounds started at the Adam model (is BCD a worse *local* optimiser?);
   * 500 Adam epochs started at the BCD model (is BCD stalled at a point Adam can still
     descend from?).
3. **the decreasing path** (:func:`~lifted_idl.training.paths.group_lasso_path` as
   ``model_recovery.py`` runs it: 5 rounds per strength, :math:`\beta` = 1e-3): the Frobenius
   norm of B at every point after the first (the largest strength, :math:`\alpha_{\max}`).
4. **path variants**: the best validation MSE along the path (12 strengths,
   :math:`\alpha_{\max}\cdot\{0.003, \dots, 1\}`) for the gradient path of
   ``model_recovery.py`` (plain stage) and for :func:`group_lasso_path` as in
   ``model_recovery.py``; decreasing with :math:`\beta = \alpha`, 30 rounds, no extrapolation;
   increasing (``order="increasing"``, the continuation of the gradient path) with
   :math:`\beta = \alpha`, 30 rounds, with and without extrapolation, and without the bias;
   independent fits (``warm_start=False``, every strength from the random features, as the
   folds of the CV estimators) without the bias, 100 rounds each; and the gradient path
   without the bias (b = 0, ``train_bias=False``).

Run ``python experiments/bcd_diagnosis.py``; writes ``bcd_diagnosis.json`` into
``experiments/results/``. The findings are summarised in ``experiments/README.md``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _paper import map_seeds, output_dir, quiet, run_info, run_settings, source_state, write_json  # noqa: E402
from model_recovery import CONFIG as RECOVERY  # noqa: E402
from model_recovery import _alpha_max, _data, _gradient_path, precision_recall, support_of  # noqa: E402

from lifted_idl import ImplicitModel  # noqa: E402
from lifted_idl.losses import SquaredLoss  # noqa: E402
from lifted_idl.penalties import GroupPenalty, NoPenalty  # noqa: E402
from lifted_idl.training.bcd import fit_bcd, random_feature_init  # noqa: E402
from lifted_idl.training.gradient import fit_gradient  # noqa: E402
from lifted_idl.training.objective import true_objective  # noqa: E402
from lifted_idl.training.paths import group_lasso_path  # noqa: E402
from lifted_idl.training.rounds import RoundSettings  # noqa: E402

CONFIG = {
    "seeds": [0, 1, 2],
    "fraction": 0.0146,
    "no_penalty": {"bcd_rounds": 40, "adam_epochs": 2000},
    "one_strength": {"bcd_rounds": 150, "adam_epochs": 2000, "polish_rounds": 50,
                     "descend_epochs": 500, "c_ridge": "alpha"},
    "path_rounds": 30,
    "independent_rounds": 100,
    "always_on": 0.97,
    "n_jobs": 3,
}


def _mse(model, U, Y) -> float:
    return float(((np.asarray(model.predict(U, warn=False)) - Y) ** 2).mean())


def _always_on(model, U) -> int:
    """States active on more than ``CONFIG["always_on"]`` of the rows of U."""
    X = np.asarray(model.solve(U, warn=False).X)
    Z = X @ np.asarray(model.A).T + U @ np.asarray(model.B).T + np.asarray(model.b)
    return int(((Z > 0).mean(axis=0) > CONFIG["always_on"]).sum())


def _start(U, seed):
    s = RECOVERY["student"]
    A, B, b = random_feature_init(U, s["n_hidden"], s["activation"], seed, s["kappa"])
    q, p = 1, U.shape[1]
    return ImplicitModel(A, B, np.zeros((q, s["n_hidden"])), np.zeros((q, p)), b=b,
                         c=np.zeros(q), activation=s["activation"])


def _adam(model, U, Y, epochs, seed, group=None, c_ridge=0.0):
    g = RECOVERY["gradient"]
    out, _ = fit_gradient(model, U, Y, "squared", kappa=RECOVERY["student"]["kappa"],
                          max_iter=epochs, learning_rate=g["learning_rate"],
                          optimizer=g["optimizer"], tol=0.0, n_iter_no_change=epochs,
                          random_state=seed, group=group, c_ridge=c_ridge)
    return out


def _bcd(U, Y, rounds, seed, group=None, c_ridge=0.0, init=None, extrapolation=0.9):
    s = RECOVERY["student"]
    model, hist = fit_bcd(U, Y, SquaredLoss(), n_hidden=s["n_hidden"], kappa=s["kappa"],
                          activation=s["activation"], pen_ab=NoPenalty(), pen_cd=NoPenalty(),
                          group=group, c_ridge=c_ridge, max_iter=rounds, tol=1e-9,
                          random_state=seed, record_relaxed=False, init_model=init,
                          extrapolation=extrapolation)
    return model, hist


def no_penalty(seed, U, Y, Uv, Yv) -> dict:
    c = CONFIG["no_penalty"]
    t0 = time.process_time()
    mb, hb = _bcd(U, Y, c["bcd_rounds"], seed)
    t1 = time.process_time()
    mg = _adam(_start(U, seed), U, Y, c["adam_epochs"], seed)
    t2 = time.process_time()
    return {"bcd": {"train_mse": _mse(mb, U, Y), "val_mse": _mse(mb, Uv, Yv),
                    "rounds": hb.n_iter, "cpu_s": t1 - t0},
            "gradient": {"train_mse": _mse(mg, U, Y), "val_mse": _mse(mg, Uv, Yv),
                         "cpu_s": t2 - t1}}


def one_strength(seed, U, Y, Uv, Yv) -> dict:
    c = CONFIG["one_strength"]
    a = CONFIG["fraction"] * _alpha_max(U, Y)
    G = GroupPenalty(a, RECOVERY["group_ord"])

    def rec(model, cpu, **extra):
        sel = support_of(G.column_norms(model))
        return {"objective": float(true_objective(model, U, Y, SquaredLoss(), group=G,
                                                  c_ridge=a)),
                "train_mse": _mse(model, U, Y), "val_mse": _mse(model, Uv, Yv),
                "always_on": _always_on(model, U), "n_selected": int(sel.size),
                "B_fro": float(np.linalg.norm(model.B)), "b_norm": float(np.linalg.norm(
                    model.b)), "cpu_s": cpu, **extra}

    out = {"alpha": a}
    for name, ex in (("bcd_extrapolation", 0.9), ("bcd_no_extrapolation", 0.0)):
        t0 = time.process_time()
        m, h = _bcd(U, Y, c["bcd_rounds"], seed, G, a, extrapolation=ex)
        out[name] = rec(m, time.process_time() - t0, accepted=h.n_accepted, rounds=h.n_iter,
                        lam_last=float(h.lam[-1]))
        out[name]["_model"] = m
    t0 = time.process_time()
    s = RECOVERY["student"]
    (pt,) = group_lasso_path(U, Y, [a], ord=RECOVERY["group_ord"], n_hidden=s["n_hidden"],
                             kappa=s["kappa"], random_state=seed, n_rounds=c["bcd_rounds"],
                             tol=1e-9, c_ridge="alpha", fit_bias=False)
    out["bcd_no_bias"] = rec(pt.model, time.process_time() - t0, accepted=pt.n_accepted,
                             rounds=pt.n_rounds)
    t0 = time.process_time()
    mg = _adam(_start(U, seed), U, Y, c["adam_epochs"], seed, G, a)
    out["adam"] = rec(mg, time.process_time() - t0)
    t0 = time.process_time()
    mp, h = _bcd(U, Y, c["polish_rounds"], seed, G, a, init=mg, extrapolation=0.0)
    out["bcd_from_adam"] = rec(mp, time.process_time() - t0, accepted=h.n_accepted)
    t0 = time.process_time()
    md = _adam(out["bcd_no_extrapolation"].pop("_model"), U, Y, c["descend_epochs"], seed, G,
               a)
    out["adam_from_bcd"] = rec(md, time.process_time() - t0)
    out["bcd_extrapolation"].pop("_model")
    return out


def _gradient_no_bias(U, Y, Uv, Yv, support, fractions, seed):
    """The gradient path of ``model_recovery.py`` (plain stage) with b = 0 and not trained."""
    g = RECOVERY["gradient"]
    model = _start(U, seed)
    model = model.replace(b=np.zeros_like(np.asarray(model.b)))
    amax, rows = _alpha_max(U, Y), []
    for i, f in enumerate(fractions):
        a = f * amax
        epochs = g["epochs_first"] if i == 0 else g["epochs_per_alpha"]
        model, _ = fit_gradient(model, U, Y, "squared", kappa=RECOVERY["student"]["kappa"],
                                max_iter=epochs, learning_rate=g["learning_rate"],
                                optimizer=g["optimizer"], tol=0.0, n_iter_no_change=epochs,
                                random_state=seed, group=GroupPenalty(a, RECOVERY["group_ord"]),
                                c_ridge=a, train_bias=False)
        sel = support_of(GroupPenalty(1.0).column_norms(model))
        prec, rec = precision_recall(sel, support)
        rows.append({"fraction": float(f), "val_mse": _mse(model, Uv, Yv),
                     "n_selected": int(sel.size), "exact": bool(prec == 1 and rec == 1)})
    return rows


def _path_rows(path, amax, support):
    rows = []
    for pt in path:
        sel = support_of(pt.column_norms)
        prec, rec = precision_recall(sel, support)
        rows.append({"fraction": pt.params["alpha"] / amax, "val_mse": 2 * pt.val_loss,
                     "train_mse": 2 * pt.train_loss, "n_selected": int(sel.size),
                     "exact": bool(prec == 1 and rec == 1),
                     "B_fro": float(np.linalg.norm(pt.model.B)),
                     "n_rounds": pt.n_rounds, "n_accepted": pt.n_accepted})
    return sorted(rows, key=lambda r: r["fraction"])


def paths(seed, U, Y, Uv, Yv, support) -> dict:
    fr = np.asarray(RECOVERY["alpha_fractions"])
    amax = _alpha_max(U, Y)
    s = RECOVERY["student"]
    kw = {"n_hidden": s["n_hidden"], "kappa": s["kappa"], "U_val": Uv, "Y_val": Yv,
          "random_state": seed}
    r = CONFIG["path_rounds"]
    variants = {
        "bcd_as_model_recovery": {"n_rounds": RECOVERY["bcd"]["n_rounds"],
                                  "c_ridge": RECOVERY["bcd"]["c_ridge"]},
        "bcd_decreasing": {"n_rounds": r, "c_ridge": "alpha",
                           "rounds": RoundSettings(extrapolation=0.0)},
        "bcd_increasing": {"n_rounds": r, "c_ridge": "alpha", "order": "increasing",
                           "rounds": RoundSettings(extrapolation=0.0)},
        "bcd_increasing_extrapolation": {"n_rounds": r, "c_ridge": "alpha",
                                         "order": "increasing"},
        "bcd_increasing_no_bias": {"n_rounds": r, "c_ridge": "alpha", "order": "increasing",
                                   "fit_bias": False},
        "bcd_independent_no_bias": {"n_rounds": CONFIG["independent_rounds"],
                                    "c_ridge": "alpha", "warm_start": False,
                                    "fit_bias": False},
    }
    out = {}
    t0 = time.process_time()
    pts, _ = _gradient_path(_start(U, seed), U, Y, Uv, Yv, support, fr, seed)
    out["gradient"] = {"points": [{"fraction": p["fraction"], "val_mse": p["val_mse"],
                                   "n_selected": p["n_selected"], "exact": p["exact"]}
                                  for p in pts], "cpu_s": time.process_time() - t0}
    t0 = time.process_time()
    out["gradient_no_bias"] = {"points": _gradient_no_bias(U, Y, Uv, Yv, support, fr, seed),
                               "cpu_s": time.process_time() - t0}
    for name, v in variants.items():
        t0 = time.process_time()
        # group_lasso_path's defaults before they became independent b = 0 fits (the
        # settings this diagnosis was run with); a variant's own settings override them
        v = {"fit_bias": True, "warm_start": True, **v}
        path = group_lasso_path(U, Y, amax * fr, ord=RECOVERY["group_ord"], **kw, **v)
        out[name] = {"points": _path_rows(path, amax, support),
                     "cpu_s": time.process_time() - t0}
    for res in out.values():
        k = int(np.argmin([p["val_mse"] for p in res["points"]]))
        res["best"] = dict(res["points"][k])
    g = out["gradient"]["best"]["val_mse"]
    for res in out.values():
        res["best_ratio_to_gradient"] = res["best"]["val_mse"] / g
    dec = out["bcd_as_model_recovery"]["points"]
    out["decreasing_B_fro_after_first"] = max(p["B_fro"] for p in dec[:-1])
    return out


def run_seed(seed: int) -> dict:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1), quiet():
        U, Y, Uv, Yv, support, _ = _data(seed)
        out = {"seed": seed, "no_penalty": no_penalty(seed, U, Y, Uv, Yv),
               "one_strength": one_strength(seed, U, Y, Uv, Yv),
               "paths": paths(seed, U, Y, Uv, Yv, support)}
    o, p = out["one_strength"], out["paths"]
    print(f"seed {seed}: no penalty val MSE BCD {out['no_penalty']['bcd']['val_mse']:.3f} "
          f"gradient {out['no_penalty']['gradient']['val_mse']:.3f}; one strength objective "
          f"BCD {o['bcd_extrapolation']['objective']:.4f} / no extrapolation "
          f"{o['bcd_no_extrapolation']['objective']:.4f}, Adam {o['adam']['objective']:.4f}, "
          f"BCD from Adam {o['bcd_from_adam']['objective']:.4f}, Adam from BCD "
          f"{o['adam_from_bcd']['objective']:.4f}; path best val MSE "
          + ", ".join(f"{k} {v['best']['val_mse']:.3f}" for k, v in p.items()
                      if isinstance(v, dict)), flush=True)
    return out


def main(out_dir="experiments/results", seeds=None, n_jobs=None) -> dict:
    """Run the measurements and write ``bcd_diagnosis.json``.

    Parameters
    ----------
    out_dir : str or Path
    seeds : sequence of int, optional
        Default ``CONFIG["seeds"]``.
    n_jobs : int, optional
        Worker processes (default ``CONFIG["n_jobs"]``).

    Returns
    -------
    dict
        What the JSON file holds.
    """
    seeds, n_jobs = run_settings(CONFIG, seeds, n_jobs)
    out = output_dir(out_dir)
    t0 = time.perf_counter()
    results = map_seeds(run_seed, seeds, n_jobs)
    names = [k for k, v in results[0]["paths"].items() if isinstance(v, dict)]
    summary = {
        "path_best_val_mse": {k: [r["paths"][k]["best"]["val_mse"] for r in results]
                              for k in names},
        "path_best_ratio_to_gradient": {k: [r["paths"][k]["best_ratio_to_gradient"]
                                            for r in results] for k in names},
        "decreasing_B_fro_after_first": [r["paths"]["decreasing_B_fro_after_first"]
                                         for r in results],
        "one_strength_objective": {k: [r["one_strength"][k]["objective"] for r in results]
                                   for k in ("bcd_extrapolation", "bcd_no_extrapolation",
                                             "bcd_no_bias", "adam", "bcd_from_adam",
                                             "adam_from_bcd")},
        "one_strength_val_mse": {k: [r["one_strength"][k]["val_mse"] for r in results]
                                 for k in ("bcd_extrapolation", "bcd_no_extrapolation",
                                           "bcd_no_bias", "adam", "bcd_from_adam",
                                           "adam_from_bcd")},
        "exact_support_on_path": {k: [int(sum(p["exact"] for p in r["paths"][k]["points"]))
                                      for r in results] for k in names},
        "bar": "best validation MSE along the BCD path within 1.2x of the gradient path's",
    }
    data = {"experiment": "bcd_diagnosis", "source": "[arXiv §7.2], issue 14",
            "config": CONFIG, "recovery_config": RECOVERY, "summary": summary,
            "seeds": results, "run": run_info("bcd_diagnosis.py", time.perf_counter() - t0),
            "source_state": source_state()}
    write_json(data, out / "bcd_diagnosis.json")
    return data


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", default="experiments/results")
    parser.add_argument("--n-jobs", type=int, default=None)
    args = parser.parse_args()
    main(out_dir=args.out_dir, n_jobs=args.n_jobs)
