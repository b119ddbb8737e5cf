r"""[arXiv §7.1]: BCD against gradient training on the two-layer tanh teacher.

Teacher (theory §9, :func:`lifted_idl.datasets.make_tanh_teacher`):
:math:`\hat y = W_3\tanh(W_2\tanh(W_1 u))`, p = 20, widths 12 and 6, q = 5, weights
Bernoulli(0.3)·U[−0.5, 0.5]; inputs :math:`\mathcal N(0, \Sigma)`,
:math:`\Sigma = MM^\top - \lambda_{\min} I`, 1000 training and 500 test points (the test set
with an independent :math:`\Sigma`). The paper trains the 12-6 network by BCD on its Fenchel
(tanh divergence) formulation, 5 rounds, and by RMSProp (tuned step, 150 iterations), over 50
random teachers: the training RMSE of BCD is on average 1.1e-2 above RMSProp's (standard
deviation 2.7e-2), the test RMSE 3e-3 below (standard deviation 2.9e-2).

Here, for every trial (a new teacher and data set, seed = trial number):

* ``bcd_1``, ``bcd_5``, ``bcd_30``: :class:`~lifted_idl.ImplicitRegressor` with
  ``solver="bcd"``, tanh, n = 18 = 12 + 6 states (the size of the paper's lifted network,
  [IDL §3.2]), :math:`\|A\|_\infty \le 0.9`, 1, 5 and 30 rounds. The package trains a full
  implicit model (any A in the ball), not the layered network: the teacher is one such model
  (strictly block-triangular A), the class is larger;
* ``implicit_gradient``: the same model trained by projected gradient with implicit
  differentiation (Adam, 150 epochs, minibatches of 128);
* ``rmsprop``: the 12-6 tanh network trained by RMSProp — scikit-learn's ``MLPRegressor`` with
  ``solver="adam"`` and ``beta_1=0`` is RMSProp (with a bias-corrected second moment), 150
  epochs, minibatches of 128, inputs and targets standardised like the estimators do, step
  chosen among 1e-3, 3e-3, 1e-2, 3e-2 by the training RMSE (no validation set in the paper).

RMSE is over all outputs and samples, in the units of y. A sparse teacher can have an output
that is identically zero; such a column is predicted by its (zero) training value by every
method (:func:`_paper.fit_nonconstant`).

Run ``python experiments/tanh_teacher.py`` or ``lifted-idl experiment tanh_teacher``; writes
``tanh_teacher.json`` and ``tanh_teacher.png`` into ``experiments/results/``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import command_line  # noqa: E402
from _paper import (  # noqa: E402
    fit_nonconstant,
    output_dir,
    quiet,
    rmse,
    run_info,
    save_png,
    source_state,
    write_json,
)

from lifted_idl import ImplicitRegressor  # noqa: E402
from lifted_idl.datasets import make_tanh_teacher  # noqa: E402

PAPER = {"train_gap_bcd_minus_rmsprop": {"mean": 1.1e-2, "std": 2.7e-2},
         "test_gap_bcd_minus_rmsprop": {"mean": -3e-3, "std": 2.9e-2}, "trials": 50,
         "bcd_rounds": 5, "rmsprop_iterations": 150}
N_TRIALS = 10
COMMON = dict(n_hidden=18, kappa=0.9, activation="tanh", penalty="l2", alpha=1e-6, tol=1e-4,
              n_iter_no_change=5)
METHODS = {
    "bcd_1": dict(solver="bcd", max_iter=1, lam=0.1, lam_min=1e-3, mu=0.1),
    "bcd_5": dict(solver="bcd", max_iter=5, lam=0.1, lam_min=1e-3, mu=0.1),
    "bcd_30": dict(solver="bcd", max_iter=30, lam=0.1, lam_min=1e-3, mu=0.1),
    "implicit_gradient": dict(solver="gradient", gradient_max_iter=150, learning_rate=1e-2,
                              batch_size=128),
}
RMSPROP_STEPS = (1e-3, 3e-3, 1e-2, 3e-2)


def rmsprop_network(learning_rate, seed):
    """The 12-6 tanh network trained by RMSProp (Adam with ``beta_1=0``), standardised I/O.

    Parameters
    ----------
    learning_rate : float
    seed : int

    Returns
    -------
    sklearn regressor
        Unfitted ``TransformedTargetRegressor`` around a scaled ``MLPRegressor``.
    """
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.neural_network import MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    net = MLPRegressor(hidden_layer_sizes=(12, 6), activation="tanh", solver="adam",
                       beta_1=0.0, learning_rate_init=learning_rate, batch_size=128,
                       max_iter=150, tol=0.0, n_iter_no_change=150, alpha=0.0,
                       random_state=seed)
    return TransformedTargetRegressor(make_pipeline(StandardScaler(), net),
                                      transformer=StandardScaler())


def trial(seed):
    """One random teacher: every method's training and test RMSE.

    Parameters
    ----------
    seed : int

    Returns
    -------
    dict
    """
    U, Y, Ut, Yt = make_tanh_teacher(1000, 500, random_state=seed)
    out = {"seed": seed, "y_std_train": float(Y.std()), "y_std_test": float(Yt.std())}
    for name, kw in METHODS.items():
        t = time.perf_counter()
        est = ImplicitRegressor(**COMMON, **kw, random_state=seed)
        (P, Pt), n_const = fit_nonconstant(est, U, Y, [U, Ut])
        out[name] = {"train_rmse": rmse(P, Y), "test_rmse": rmse(Pt, Yt), "n_iter": est.n_iter_,
                     "converged": est.converged_, "seconds": time.perf_counter() - t}
        if name.startswith("bcd"):
            out[name]["train_objective_per_round"] = list(est.bcd_history_.train_loss)
    out["constant_outputs"] = n_const
    grid = {}
    for lr in RMSPROP_STEPS:
        t = time.perf_counter()
        (P, Pt), _ = fit_nonconstant(rmsprop_network(lr, seed), U, Y, [U, Ut])
        grid[lr] = {"train_rmse": rmse(P, Y), "test_rmse": rmse(Pt, Yt),
                    "seconds": time.perf_counter() - t}
    best = min(grid, key=lambda k: grid[k]["train_rmse"])
    out["rmsprop"] = {**grid[best], "learning_rate": best,
                      "grid": {str(k): v for k, v in grid.items()}}
    return out


def _stats(values):
    return {"mean": float(np.mean(values)), "std": float(np.std(values)),
            "values": [float(v) for v in values]}


def main(out_dir="experiments/results"):
    """Run the [arXiv §7.1] tanh-teacher comparison; write JSON and PNG.

    Parameters
    ----------
    out_dir : str or Path, default="experiments/results"
        Output folder (relative paths are taken from the repository root).

    Returns
    -------
    dict
        The results written to ``tanh_teacher.json``.
    """
    from threadpoolctl import threadpool_limits

    t_start = time.perf_counter()
    out = output_dir(out_dir)
    with threadpool_limits(1), quiet():
        trials = [trial(seed) for seed in range(N_TRIALS)]
    methods = [*METHODS, "rmsprop"]
    summary = {m: {s: _stats([t[m][s] for t in trials]) for s in ("train_rmse", "test_rmse")}
               for m in methods}
    gaps = {}
    for m in [*METHODS]:
        for s in ("train", "test"):
            gaps[f"{s}_gap_{m}_minus_rmsprop"] = _stats(
                [t[m][f"{s}_rmse"] - t["rmsprop"][f"{s}_rmse"] for t in trials])
    res = {"paper": PAPER,
           "settings": {"trials": N_TRIALS, "data": "make_tanh_teacher(1000, 500, "
                        "random_state=trial)", "estimator_common": COMMON, "methods": METHODS,
                        "rmsprop": "MLPRegressor((12, 6), tanh, adam beta_1=0, batch 128, "
                        "150 epochs, step from " + str(RMSPROP_STEPS) + " by training RMSE"},
           "summary": summary, "gaps": gaps, "trials": trials}
    _figure(out / "tanh_teacher.png", trials, summary, methods)
    res["run"] = {**run_info("tanh_teacher.py", time.perf_counter() - t_start),
                  **source_state()}
    write_json(res, out / "tanh_teacher.json")
    return res


def _figure(path, trials, summary, methods):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for s, mk in (("train", "o"), ("test", "s")):
        x = [t["rmsprop"][f"{s}_rmse"] for t in trials]
        y = [t["bcd_5"][f"{s}_rmse"] for t in trials]
        ax1.scatter(x, y, marker=mk, label=f"{s}")
    lim = ax1.get_xlim()[0], ax1.get_xlim()[1]
    lo, hi = min(lim[0], ax1.get_ylim()[0]), max(lim[1], ax1.get_ylim()[1])
    ax1.plot([lo, hi], [lo, hi], color="gray", lw=0.8)
    ax1.set_xlabel("RMSProp (12-6 tanh net) RMSE")
    ax1.set_ylabel("BCD, 5 rounds (implicit, n=18) RMSE")
    ax1.set_title("per trial (arXiv §7.1)")
    ax1.legend()
    xs = np.arange(len(methods))
    for i, s in enumerate(("train_rmse", "test_rmse")):
        ax2.bar(xs + (i - 0.5) * 0.38, [summary[m][s]["mean"] for m in methods], 0.38,
                yerr=[summary[m][s]["std"] for m in methods], capsize=3, label=s)
    ax2.set_xticks(xs, methods, rotation=20)
    ax2.set_ylabel("RMSE (mean ± std over trials)")
    ax2.set_title(f"{len(trials)} random tanh teachers")
    ax2.legend()
    save_png(fig, path)


if __name__ == "__main__":
    r = main(command_line(__doc__))
    for m, v in r["summary"].items():
        print(f"{m:18s} train {v['train_rmse']['mean']:.4f} +- {v['train_rmse']['std']:.4f}  "
              f"test {v['test_rmse']['mean']:.4f} +- {v['test_rmse']['std']:.4f}")
    for k, v in r["gaps"].items():
        print(f"{k}: {v['mean']:+.4f} +- {v['std']:.4f}")
