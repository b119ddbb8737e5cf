r"""[arXiv §7.2] model recovery with the group penalty [IDL (5.1)] (theory §9).

Teacher (:func:`lifted_idl.datasets.make_teacher`): an implicit ReLU model with n = 20 states,
p = 100 inputs, q = 1 output, :math:`\|A\|_\infty = 0.5`, and **10 of the 100 columns** of B
(and of D) nonzero, the others exactly zero; inputs :math:`\mathcal N(0, I)`, 5 % output noise;
m = 400 training points and 200 validation points from the same teacher (targets standardised
with the training mean and deviation). The paper trains an implicit model with n = 10 states
by BCD with the group penalty (5.1), :math:`\alpha = 2` (the norm order) and weight 5, and shows
(its Figure 2) that the learned column norms of B have the teacher's column support.

Here, for every seed (a new teacher and data set each), a student with n = 10 ReLU states,
:math:`\|A\|_\infty \le 0.5`, is trained on

.. math:: \tfrac{1}{2m}\|Y - \hat Y\|_F^2 + \alpha\sum_{j=1}^{p} w_j^{-1}
          \left\|\begin{pmatrix} B \\ D\end{pmatrix}e_j\right\|_2 + \frac{\beta}{2}\|C\|_F^2

over a grid of strengths :math:`\alpha \in \alpha_{\max}\cdot\{0.003, \dots, 1\}` (12 values,
geometric; :math:`\alpha_{\max} = \max_j |u_j^\top (y - \bar y)|/m`), in two stages:

1. **plain group lasso** (:math:`w_j = 1`);
2. **adaptive group lasso** (Wang & Leng 2008, the group version of Zou's adaptive lasso):
   :math:`w_j = r_j/\max_k r_k` with :math:`r_j` the column norms of the stage-1 model chosen by
   minimum validation MSE, implemented by training on the rescaled inputs :math:`w_j u_j`
   (a feature outside the stage-1 support, :math:`w_j \le 10^{-8}`, stays out),
   warm-started from that model.

Two trainers, both on the same grid:

* **gradient**: :func:`lifted_idl.training.gradient.fit_gradient` with the exact joint prox of
  the group penalty (proximal Adam with one step size per feature group, ``group=``), full
  batch, step 1e-2, :math:`\beta = \alpha`; a continuation path from the smallest strength up
  (2000 epochs from the random-feature start, then 500 per strength, warm-started);
* **BCD**: :func:`lifted_idl.training.paths.group_lasso_path` (anchored BCD rounds with exact
  group-penalised block solves, 5 rounds per strength, from the largest strength down,
  :math:`\beta` = 1e-3, its default).

Strength selection, by the script from the validation set (never per seed by hand): the
minimum validation MSE, and the one-standard-error rule (the largest :math:`\alpha` whose
validation MSE is within one standard error of the minimum, the standard error being that of
the mean of the 200 squared validation errors at the minimum; Breiman et al. 1984, Hastie et
al., *Elements of Statistical Learning* §7.10).

**Support rule, fixed before any run**: the features whose learned column norm is not zero,
:math:`r_j > 10^{-8}\max_k r_k` (a numerical-zero test; the gradient trainer's prox returns
exact zeros, counted separately in the JSON). No threshold is tuned.

Bar: exact support recovery (precision = recall = 1) in at least 4 of the 5 seeds 0–4. The
history: the plain group lasso with the minimum-validation strength was run first (it is what
``CONFIG["tried"]`` lists first); the adaptive stage and the one-standard-error rule were added
after seeing its results on seeds 0–4, so seeds 5–9, never looked at while the procedure was
designed, are run as a held-out check of the final procedure (gradient trainer only).

**Relaxed (refit) selection, declared before any run on seeds 10–19** (``CONFIG["relaxed"]``;
the relaxed lasso of Meinshausen 2007, also called post-selection refit or debiasing). After
seeds 0–9 the exact support lay on every gradient path and the strength-selection rule was the
weak link, so one more standard rule is tested, on seeds 10–19 that nobody had looked at,
run once. For every point of a gradient path (each strength :math:`\alpha`, separately for the
plain stage and for the adaptive stage), with :math:`S(\alpha)` its support by the rule above:

1. refit the student on the features in :math:`S(\alpha)` only (the inputs of that stage,
   i.e. the rescaled :math:`w_j u_j` in the adaptive stage, restricted to the columns in
   :math:`S`), **without** the group penalty, keeping the ridge
   :math:`\tfrac{\beta}{2}\|C\|_F^2` with the same :math:`\beta = \alpha` as that path
   point (there is no other L2 term); warm-started from the path point restricted to
   :math:`S` (columns :math:`S` of B and D, all of A, b, C, c); the same trainer and settings as
   the path (:func:`~lifted_idl.training.gradient.fit_gradient`, Adam, step 1e-2, full batch,
   the seed as ``random_state``), a fixed **500 epochs** (no early stopping); an empty
   :math:`S` is refitted as a model with no inputs;
2. compute the validation MSE of the refitted model on the same 200 validation points;
3. choose the :math:`\alpha` whose refit has the lowest validation MSE; ties (equal values)
   go to the smaller support, then to the larger :math:`\alpha`;
4. report the support :math:`S(\alpha)` of the chosen path point (by construction the refit
   has the same support).

The primary relaxed result is the adaptive stage (``adaptive_relaxed``: the final procedure
with the one-standard-error rule replaced by this rule); ``plain_relaxed`` applies the same rule
to the plain stage alone. Nothing else changes (grid, trainer, stage-1 weights from the plain
minimum-MSE model, support rule). Seeds 0–9 are also reported under this rule, labelled as
seen seeds; seeds 10–19 also carry the earlier rules, since their paths are computed anyway.

**BCD by the package's cross-validated estimator, declared before seeds 40–44 were run**
(``CONFIG_CV_BCD``; issue 14, part 2: "BCD exact support on at least 4 of 5 fresh seeds, with
the rule declared first"). The BCD arm above (``group_lasso_path``, 5 rounds, with the state
bias b) recovers the support on none of seeds 0–4. This arm runs, on this script's teacher and
data (:func:`_data`), the procedure the package now ships for "which features?":
``ImplicitRegressorCV(n_hidden=10, kappa=0.5, activation="relu", penalty="group",
solver="bcd", group_ord=2, n_jobs=1, random_state=seed)`` with every other parameter at its
default (``selection="adaptive"``: a ``"min"`` first stage, ``group_weights``
:math:`\max_k s_k/s_j` from its refit's column norms, a second cross-validated path chosen by
relaxed refits; ``fit_bias="auto"``, i.e. b = 0; 10 strengths, ``eps`` 1e-3, 5 folds), fitted
on the 400 training points (the validation set is used only to report its MSE). Support =
``support_`` (``feature_importances_ > 0``, the exact zeros of the joint (B, D) prox); the
script's rule (:func:`support_of` on the column norms of ``model_``) is reported beside it.
Exact = precision = recall = 1. Bar: exact on at least 4 of the 5 fresh seeds 40–44, which
no earlier run of this script used (its seeds were 0–19). Development: seeds 0 and 1 only,
with exactly these settings (no setting was changed after them): exact on both. The fresh
seeds are run once (``--cv-bcd fresh``); whatever the outcome it is reported, and neither the
rule nor the seeds change after. The same run also computes, per seed, the gradient arm with
its declared relaxed rule (side by side with it at the bottom of ``model_recovery.png``) and,
for the bar line "best validation MSE along the BCD group-lasso path within 1.2x of the gradient
path's", two ``group_lasso_path`` runs on the plain stage's grid (``CV_PATHS``): its defaults
(20 rounds, b fitted, warm-started from the largest strength down) and the configuration of
``bcd_diagnosis.py`` (b = 0, independent fits, 100 rounds, :math:`\beta = \alpha`); those are
measurements, not rules.

Run ``python experiments/model_recovery.py`` or ``lifted-idl experiment model_recovery``;
writes ``model_recovery.json`` and ``model_recovery.png`` into ``experiments/results/``.
``--no-bcd`` recomputes the gradient trainer only (all seeds, with the relaxed rule) and
carries the BCD results over unchanged from the existing results file. ``--cv-bcd fresh``
runs only ``CONFIG_CV_BCD`` (``--cv-bcd development --seeds 0 1`` its development seeds) and
merges it into ``model_recovery.json`` under ``cv_bcd``, every other entry unchanged. The
committed results come from a full run (BCD included, with the joint (B, D) prox step of
``group_lasso_path``); the summary of the file before the relaxed rule was added is kept under
``previous_run``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _paper import (  # noqa: E402
    map_seeds,
    output_dir,
    quiet,
    run_info,
    run_settings,
    save_png,
    source_state,
    write_json,
)

from lifted_idl import ImplicitModel, ImplicitRegressorCV  # noqa: E402
from lifted_idl.datasets import make_teacher  # noqa: E402
from lifted_idl.penalties import GroupPenalty  # noqa: E402
from lifted_idl.training.bcd import random_feature_init  # noqa: E402
from lifted_idl.training.gradient import fit_gradient  # noqa: E402
from lifted_idl.training.paths import group_lasso_path  # noqa: E402

CONFIG = {
    "seeds": [0, 1, 2, 3, 4],
    "heldout_seeds": [5, 6, 7, 8, 9],
    "teacher": {"n_hidden": 20, "n_features": 100, "n_outputs": 1, "a_norm": 0.5,
                "sparse_columns": 10, "noise": 0.05, "n_train": 400, "n_validation": 200},
    "student": {"n_hidden": 10, "kappa": 0.5, "activation": "relu"},
    "group_ord": 2,
    "alpha_fractions": np.geomspace(0.003, 1.0, 12).tolist(),
    "gradient": {"optimizer": "adam", "learning_rate": 1e-2, "batch": "full",
                 "epochs_first": 2000, "epochs_per_alpha": 500, "c_ridge": "alpha",
                 "path": "increasing alpha, warm-started", "prox": "exact group prox, one "
                 "Adam step size per feature group (fit_gradient(group=...))"},
    "bcd": {"function": "lifted_idl.training.paths.group_lasso_path", "n_rounds": 5,
            "c_ridge": 1e-3, "path": "decreasing alpha, warm-started"},
    "support_rule": "features with learned column norm ||[B; D]e_j||_2 > 1e-8 * max_k (a "
                    "numerical-zero test), fixed before any run",
    "zero_tol": 1e-8,
    "selection_rules": {"min": "minimum validation MSE",
                        "1se": "largest alpha with validation MSE <= minimum + one standard "
                               "error (of the mean squared error at the minimum)"},
    "primary": "adaptive group lasso, one-standard-error rule",
    "tried": [
        "plain group lasso, alpha at the minimum validation MSE (run first): see "
        "summary.<trainer>.plain_min",
        "plain group lasso, one-standard-error rule: summary.<trainer>.plain_1se",
        "adaptive group lasso (weights from the plain minimum-MSE model), minimum validation "
        "MSE: summary.<trainer>.adaptive_min",
        "adaptive group lasso, one-standard-error rule (chosen after seeing seeds 0-4): "
        "summary.<trainer>.adaptive_1se; held-out seeds 5-9 in summary.heldout",
        "relaxed (refit) selection on the plain and on the adaptive path, declared before "
        "seeds 10-19 were run (run once): summary.relaxed",
        "earlier version of this script: smoothed group penalty (no exact zeros) with a "
        "largest-gap threshold picked after seeing the seeds: 4/5, and 0/5 with the fixed "
        "rule norm >= 0.1 max; not used",
    ],
    "fresh_seeds": list(range(10, 20)),
    "relaxed": {
        "name": "relaxed (refit) group lasso selection, Meinshausen 2007",
        "declared": "before any run on seeds 10-19; not changed after; seeds 10-19 run once",
        "rule": "for every point of a gradient path (plain stage and, separately, adaptive "
                "stage): support S(alpha) by the support rule; refit the student on the "
                "features in S only (that stage's inputs restricted to S), without the group "
                "penalty, same ridge beta = alpha on C, warm-started from the path point "
                "restricted to S, fit_gradient with the path's settings for a fixed number of "
                "epochs; choose the alpha whose refit has the lowest validation MSE (ties: "
                "smaller support, then larger alpha); report the support of that path point",
        "epochs": 500, "optimizer": "adam", "learning_rate": 1e-2, "batch": "full",
        "c_ridge": "alpha of the path point", "early_stopping": "none (tol=0)",
        "empty_support": "refit as a model with no inputs",
        "trainer": "gradient only",
        "primary": "adaptive_relaxed",
        "seen_seeds": list(range(0, 10)), "fresh_seeds": list(range(10, 20)),
    },
    "n_jobs": 2,
}
CONFIG_CV_BCD = {
    "name": "BCD by the package's cross-validated estimator, default procedure (issue 14, "
            "part 2: BCD exact support on at least 4 of 5 fresh seeds)",
    "estimator": "lifted_idl.ImplicitRegressorCV",
    "params": {"n_hidden": 10, "kappa": 0.5, "activation": "relu", "penalty": "group",
               "solver": "bcd", "group_ord": 2, "n_jobs": 1},
    "random_state": "the seed",
    "defaults": "every other parameter at the package default: selection='adaptive' (first "
                "stage 'min'; group_weights max_k s_k / s_j from its refit's column norms; "
                "second CV path chosen by relaxed refits), fit_bias='auto' (b = 0 for the "
                "group penalty with BCD), alphas=10, eps=1e-3, cv=5 (KFold, not shuffled), "
                "c_ridge=None (beta = alpha), max_iter=300",
    "data": "_data(seed): fitted on the 400 training points (inputs as drawn, targets "
            "standardised with the training mean and deviation); validation MSE of "
            "best_estimator_ on the 200 validation points, same units as the other arms",
    "support_rule": "support_ of the fitted estimator (feature_importances_ > 0: the exact "
                    "zeros of the joint (B, D) prox); the script's rule (support_of, column "
                    "norms of model_ > 1e-8 max) is reported beside it (rule_agrees)",
    "exact": "precision = recall = 1 against the teacher's 10 columns",
    "bar": "exact support on at least 4 of the 5 fresh seeds",
    "development_seeds": [0, 1],
    "development_result": "seeds 0 and 1 (run by hand with these settings before this "
                          "declaration): exact on both (10 kept, precision 1, recall 1; "
                          "validation MSE 0.049 and 0.043; 357 and 385 CPU s); first stage 90 "
                          "and 84 kept; support_ and the script's rule agree on both",
    "fresh_seeds": [40, 41, 42, 43, 44],
    "fresh_seeds_check": "never used by this script or its results before this declaration "
                         "(grep -rn over experiments/, git log -p of the script and of "
                         "model_recovery.json); 0-19 were the earlier rules' seeds",
    "run_once": "the fresh seeds are run once, after this declaration is committed with a "
                "clean tree; main_cv(stage='fresh') refuses to overwrite a fresh result",
    "if_fails": "reported as not met with the per-seed numbers; the rule, the estimator and "
                "its settings are not changed and these seeds are not rerun; another attempt "
                "would need a new declaration and new fresh seeds",
    "also_run": {
        "gradient": "the gradient arm of this script (_stages('gradient', relaxed=True); its "
                    "declared rule is adaptive_relaxed) on the same seeds, for the side-by-side "
                    "figure and as the reference of the 1.2x line; not part of this bar",
        "bcd_path_default": "group_lasso_path with its defaults (n_rounds=20, c_ridge=1e-3, "
                            "fit_bias=True, warm_start=True, decreasing) on the 12-point grid "
                            "of the plain stage: what a user gets from it",
        "bcd_path_b0": "group_lasso_path(c_ridge='alpha', warm_start=False, fit_bias=False, "
                       "n_rounds=100) on the same grid (the configuration of "
                       "bcd_diagnosis.py)",
        "ratio": "best validation MSE along each BCD path over that of the gradient arm's plain "
                 "path (the bar line: within 1.2x); measured and reported, no rule",
    },
    "n_jobs": 5,  # all five seeds at once, one thread each (the estimator: n_jobs=1)
}
#: the 1.2x path line of issue 14, declared before its fresh seeds 45-49 are run
CONFIG_PATH_LINE = {
    "name": "BCD group-lasso path with group_lasso_path's defaults against the gradient path",
    "declared": "before any run on seeds 45-49; not changed after; seeds 45-49 run once",
    "bcd": "group_lasso_path(U, Y, alphas, ord=2, n_hidden=10, kappa=0.5, U_val, Y_val, "
           "random_state=seed) with its defaults: every strength an independent fit from the "
           "random features, b = 0, beta = alpha, up to 300 rounds, tol 1e-4; the plain "
           "stage's 12-point grid (alpha_fractions times alpha_max)",
    "gradient": "this script's gradient plain path (_gradient_path from the random-feature "
                "start, CONFIG['gradient']) on the same grid and data",
    "measure": "the best validation MSE along each path (200 validation points); ratio = "
               "BCD's / gradient's",
    "bar": "ratio <= 1.2 on at least 4 of the 5 fresh seeds",
    "development": "seeds 0-4 only, before the defaults changed (scratch script, the same "
                   "settings given explicitly; gradient: the committed main run's plain "
                   "paths): ratios 0.64, 1.19, 1.00, 1.10, 0.87",
    "fresh_seeds": [45, 46, 47, 48, 49],
    "n_jobs": 2,
}
#: the group_lasso_path settings of CONFIG_CV_BCD["also_run"] (the 1.2x line)
CV_PATHS = {"bcd_path_default": {"n_rounds": 20, "c_ridge": 1e-3, "fit_bias": True,
                                 "warm_start": True},  # the defaults when it ran
            "bcd_path_b0": {"c_ridge": "alpha", "warm_start": False, "fit_bias": False,
                            "n_rounds": 100}}
PAPER = {"n_teacher": 20, "p": 100, "q": 1, "m": 400, "a_norm": 0.5, "n_student": 10,
         "group_norm_order": 2, "penalty_weight": 5,
         "result": "learned column norms of B recover the teacher's column support (figure)"}
VARIANTS = ("plain_min", "plain_1se", "adaptive_min", "adaptive_1se")
RELAXED_VARIANTS = ("plain_relaxed", "adaptive_relaxed")


def support_of(norms, tol: float | None = None) -> np.ndarray:
    r"""The stated support rule: indices with :math:`r_j > \mathrm{tol}\cdot\max_k r_k`.

    Parameters
    ----------
    norms : ndarray of shape (p,)
        Column norms :math:`r_j \ge 0`.
    tol : float, optional
        Relative numerical-zero level; default ``CONFIG["zero_tol"]`` (1e-8).

    Returns
    -------
    ndarray of int, sorted (empty when every norm is 0).
    """
    norms = np.asarray(norms, dtype=float)
    tol = CONFIG["zero_tol"] if tol is None else tol
    top = norms.max(initial=0.0)
    if top <= 0:
        return np.zeros(0, dtype=int)
    return np.flatnonzero(norms > tol * top)


def precision_recall(selected, support) -> tuple[float, float]:
    """Precision and recall of a selected set of features against the true support."""
    sel, sup = set(int(i) for i in selected), set(int(i) for i in support)
    tp = len(sel & sup)
    return (tp / len(sel) if sel else 0.0), (tp / len(sup) if sup else 1.0)


def select_alpha(val_mse, val_se, alphas) -> dict:
    """Indices chosen by the minimum validation MSE and by the one-standard-error rule."""
    val_mse = np.asarray(val_mse)
    k = int(np.argmin(val_mse))
    ok = np.flatnonzero(val_mse <= val_mse[k] + val_se[k])
    k1 = int(ok[np.argmax(np.asarray(alphas)[ok])])
    return {"min": k, "1se": k1}


def _data(seed):
    t = CONFIG["teacher"]
    U, y, Uv, yv, info = make_teacher(
        t["n_train"], t["n_validation"], n_features=t["n_features"], n_hidden=t["n_hidden"],
        n_outputs=t["n_outputs"], a_norm=t["a_norm"], noise=t["noise"],
        sparse_columns=t["sparse_columns"], random_state=seed)
    mu, sd = y.mean(), y.std()
    Y, Yv = ((y - mu) / sd)[:, None], ((yv - mu) / sd)[:, None]
    teacher = info["model"]
    true_norms = GroupPenalty(1.0).column_norms(teacher)
    return U, Y, Uv, Yv, np.asarray(info["support"]), true_norms


def _alpha_max(U, Y) -> float:
    return float(np.abs(U.T @ (Y - Y.mean(axis=0))).max() / U.shape[0])


def _point(model, norms, Uv, Yv, support, alpha, extra=None) -> dict:
    err = ((np.asarray(model.predict(Uv, warn=False)) - Yv) ** 2).ravel()
    sel = support_of(norms)
    prec, rec = precision_recall(sel, support)
    out = {"alpha": float(alpha), "val_mse": float(err.mean()),
           "val_se": float(err.std(ddof=1) / np.sqrt(err.size)), "n_selected": int(sel.size),
           "n_exact_zero": int(np.sum(norms == 0)), "precision": prec, "recall": rec,
           "exact": bool(prec == 1.0 and rec == 1.0), "selected": sel, "norms": norms}
    out.update(extra or {})
    return out


def _gradient_path(init, U, Y, Uv, Yv, support, fractions, seed, weights=None):
    """Continuation path of proximal-gradient fits, smallest strength first."""
    s, g = CONFIG["student"], CONFIG["gradient"]
    w = np.ones(U.shape[1]) if weights is None else weights
    Uw, Uvw = U * w, Uv * w
    amax = _alpha_max(Uw, Y)
    model, points = init, []
    for i, f in enumerate(fractions):
        alpha = f * amax
        epochs = g["epochs_first"] if i == 0 else g["epochs_per_alpha"]
        model, hist = fit_gradient(
            model, Uw, Y, "squared", kappa=s["kappa"], max_iter=epochs,
            learning_rate=g["learning_rate"], optimizer=g["optimizer"], tol=0.0,
            n_iter_no_change=epochs, random_state=seed,
            group=GroupPenalty(alpha, CONFIG["group_ord"]), c_ridge=alpha)
        # column norms in the original features: [B; D] e_j w_j
        norms = GroupPenalty(1.0).column_norms(model) * w
        points.append(_point(model, norms, Uvw, Yv, support, alpha,
                             {"fraction": float(f), "objective": hist["loss"][-1]}))
        points[-1]["_model"] = model
    return points, amax


def _refit(model, sel, Uw, Y, Uvw, Yv, alpha, seed) -> dict:
    """The relaxed rule's refit of one path point on its support ``sel`` (no group penalty)."""
    s, r = CONFIG["student"], CONFIG["relaxed"]
    start = model.replace(B=np.asarray(model.B)[:, sel], D=np.asarray(model.D)[:, sel])
    fit, hist = fit_gradient(
        start, Uw[:, sel], Y, "squared", kappa=s["kappa"], max_iter=r["epochs"],
        learning_rate=r["learning_rate"], optimizer=r["optimizer"], tol=0.0,
        n_iter_no_change=r["epochs"], random_state=seed, c_ridge=alpha)
    err = ((np.asarray(fit.predict(Uvw[:, sel], warn=False)) - Yv) ** 2).ravel()
    tr = ((np.asarray(fit.predict(Uw[:, sel], warn=False)) - Y) ** 2).ravel()
    return {"refit_val_mse": float(err.mean()),
            "refit_val_se": float(err.std(ddof=1) / np.sqrt(err.size)),
            "refit_train_mse": float(tr.mean()), "refit_objective": float(hist["loss"][-1]),
            "refit_epochs": int(len(hist["loss"]))}


def _relaxed(points, U, Y, Uv, Yv, seed, weights=None) -> int:
    """Refit every path point on its support (adds the ``refit_*`` keys); the chosen index.

    The rule of ``CONFIG["relaxed"]``: the lowest refit validation MSE, ties to the smaller
    support, then to the larger strength.
    """
    w = np.ones(U.shape[1]) if weights is None else weights
    Uw, Uvw = U * w, Uv * w
    for pt in points:
        pt.update(_refit(pt["_model"], pt["selected"], Uw, Y, Uvw, Yv, pt["alpha"], seed))
    keys = [(pt["refit_val_mse"], pt["n_selected"], -pt["alpha"]) for pt in points]
    return int(min(range(len(points)), key=keys.__getitem__))


def _bcd_path(U, Y, Uv, Yv, support, fractions, seed, weights=None, init=None,
              settings=None):
    """:func:`group_lasso_path` on the (rescaled) inputs; points in increasing strength.

    ``settings``: keyword arguments of :func:`group_lasso_path` (default: the script's BCD arm,
    ``n_rounds`` and ``c_ridge`` of ``CONFIG["bcd"]``, with b, warm-started; ``{}``: the
    function's defaults)."""
    s, b = CONFIG["student"], CONFIG["bcd"]
    if settings is None:  # with the state bias, warm-started (the defaults when it ran)
        settings = {"n_rounds": b["n_rounds"], "c_ridge": b["c_ridge"], "fit_bias": True,
                    "warm_start": True}
    w = np.ones(U.shape[1]) if weights is None else weights
    Uw, Uvw = U * w, Uv * w
    amax = _alpha_max(Uw, Y)
    path = group_lasso_path(Uw, Y, amax * np.asarray(fractions), ord=CONFIG["group_ord"],
                            n_hidden=s["n_hidden"], kappa=s["kappa"], U_val=Uvw, Y_val=Yv,
                            random_state=seed, init_model=init, **settings)
    points = []
    for pt in path[::-1]:  # the path runs from the largest strength down
        model = pt.model
        norms = GroupPenalty(1.0).column_norms(model) * w
        points.append(_point(model, norms, Uvw, Yv, support, pt.params["alpha"],
                             {"fraction": pt.params["alpha"] / amax,
                              "objective": pt.objective}))
        points[-1]["_model"] = model
    return points, amax


def _stages(trainer, U, Y, Uv, Yv, support, seed, relaxed: bool = False) -> dict:
    """Plain then adaptive group lasso with one trainer; the four selections (six with the
    relaxed rule, gradient trainer only)."""
    fr = np.asarray(CONFIG["alpha_fractions"])
    s = CONFIG["student"]
    t0 = time.perf_counter()
    if trainer == "gradient":
        A, B, b = random_feature_init(U, s["n_hidden"], s["activation"], seed, s["kappa"])
        q, p = Y.shape[1], U.shape[1]
        init = ImplicitModel(A, B, np.zeros((q, s["n_hidden"])), np.zeros((q, p)), b=b,
                             c=np.zeros(q), activation=s["activation"])
        plain, amax1 = _gradient_path(init, U, Y, Uv, Yv, support, fr, seed)
    else:
        plain, amax1 = _bcd_path(U, Y, Uv, Yv, support, fr, seed)
    pick1 = select_alpha([pt["val_mse"] for pt in plain], [pt["val_se"] for pt in plain],
                         [pt["alpha"] for pt in plain])
    base = plain[pick1["min"]]
    w = base["norms"] / base["norms"].max()
    w[w <= CONFIG["zero_tol"]] = 0.0  # numerically zero in stage 1 (the support rule): out
    m0 = base["_model"]
    scale = np.where(w > 0, w, 1.0)
    start = m0.replace(B=np.asarray(m0.B) / scale, D=np.asarray(m0.D) / scale)
    if trainer == "gradient":
        adaptive, amax2 = _gradient_path(start, U, Y, Uv, Yv, support, fr, seed, weights=w)
    else:
        adaptive, amax2 = _bcd_path(U, Y, Uv, Yv, support, fr, seed, weights=w, init=start)
    pick2 = select_alpha([pt["val_mse"] for pt in adaptive],
                         [pt["val_se"] for pt in adaptive], [pt["alpha"] for pt in adaptive])
    seconds = time.perf_counter() - t0
    rules = ("min", "1se")
    if relaxed:
        t1 = time.perf_counter()
        pick1["relaxed"] = _relaxed(plain, U, Y, Uv, Yv, seed)
        pick2["relaxed"] = _relaxed(adaptive, U, Y, Uv, Yv, seed, weights=w)
        rules = ("min", "1se", "relaxed")
    out = {"alpha_max_plain": amax1, "alpha_max_adaptive": amax2, "weights": w,
           "seconds": seconds}
    if relaxed:
        out["seconds_refits"] = time.perf_counter() - t1
    for stage, pts, pick in (("plain", plain, pick1), ("adaptive", adaptive, pick2)):
        out[f"{stage}_path"] = [{k: v for k, v in pt.items() if k not in ("_model", "norms",
                                                                          "selected")}
                                for pt in pts]
        for rule in rules:
            pt = pts[pick[rule]]
            out[f"{stage}_{rule}"] = {k: v for k, v in pt.items() if k != "_model"}
            out[f"{stage}_{rule}"]["index"] = pick[rule]
    return out


def run_seed(seed: int, trainers=("gradient", "bcd"), relaxed: bool = True) -> dict:
    """Both stages and all selections of one seed, for the given trainers (the relaxed rule
    with the gradient trainer when ``relaxed``)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1), quiet():
        U, Y, Uv, Yv, support, true_norms = _data(seed)
        out = {"seed": seed, "support": support, "true_norms": true_norms}
        for trainer in trainers:
            out[trainer] = _stages(trainer, U, Y, Uv, Yv, support, seed,
                                   relaxed=relaxed and trainer == "gradient")
    return out


def cv_bcd_arm(U, Y, Uv, Yv, support, seed, **params) -> dict:
    """The arm of ``CONFIG_CV_BCD``: :class:`~lifted_idl.ImplicitRegressorCV` fitted on the
    training points; its support, precision, recall and validation MSE.

    ``params`` override ``CONFIG_CV_BCD["params"]`` (tests run it on tiny instances; the
    declared run passes none). ``selected`` is ``support_`` (the declared rule);
    ``rule_agrees`` says whether :func:`support_of` on the column norms of ``model_`` gives
    the same features."""
    est = ImplicitRegressorCV(**{**CONFIG_CV_BCD["params"], **params}, random_state=seed)
    t0 = time.process_time()
    with quiet():
        est.fit(U, np.asarray(Y).ravel())
    cpu = time.process_time() - t0
    sel = np.flatnonzero(est.support_)
    norms = GroupPenalty(1.0).column_norms(est.model_)
    prec, rec = precision_recall(sel, support)
    err = (np.asarray(est.predict(Uv)).ravel() - np.asarray(Yv).ravel()) ** 2
    out = {"alpha": est.alpha_, "fraction": est.alpha_ / est.alphas_[0],
           "alphas": est.alphas_, "selected": sel, "n_selected": int(sel.size),
           "precision": prec, "recall": rec, "exact": bool(prec == 1.0 and rec == 1.0),
           "val_mse": float(err.mean()), "val_se": float(err.std(ddof=1) / np.sqrt(err.size)),
           "norms": norms, "feature_importances": est.feature_importances_,
           "rule_agrees": bool(np.array_equal(support_of(norms), sel)),
           "mean_n_selected": est.cv_results_["mean_n_selected"],
           "converged": bool(est.converged_), "cpu_seconds": cpu}
    if hasattr(est, "first_stage_"):
        f = est.first_stage_
        fsel = np.flatnonzero(f["feature_importances_"] > 0)
        fp, fr = precision_recall(fsel, support)
        out["first_stage"] = {"alpha": f["alpha_"], "n_selected": int(fsel.size),
                              "precision": fp, "recall": fr,
                              "exact": bool(fp == 1.0 and fr == 1.0),
                              "mean_n_selected": f["cv_results_"]["mean_n_selected"]}
    return out


def cv_seed(seed: int) -> dict:
    """One seed of ``CONFIG_CV_BCD``: the CV-estimator arm, the gradient arm (with the relaxed
    rule) and the two BCD paths of ``CV_PATHS`` (best validation MSE against the gradient
    arm's plain path)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1), quiet():
        U, Y, Uv, Yv, support, true_norms = _data(seed)
        out = {"seed": seed, "support": support, "true_norms": true_norms,
               "cv_bcd": cv_bcd_arm(U, Y, Uv, Yv, support, seed)}
        c = out["cv_bcd"]
        print(f"seed {seed:2d} cv_bcd: alpha = {c['alpha']:.4g} ({c['fraction']:.4f} of its "
              f"grid's max), {c['n_selected']:3d} kept, precision {c['precision']:.2f}, recall "
              f"{c['recall']:.2f}, val MSE {c['val_mse']:.4f}, {c['cpu_seconds']:.0f} CPU s",
              flush=True)
        out["gradient"] = _stages("gradient", U, Y, Uv, Yv, support, seed, relaxed=True)
        best_grad = min(pt["val_mse"] for pt in out["gradient"]["plain_path"])
        fr = np.asarray(CONFIG["alpha_fractions"])
        for name, settings in CV_PATHS.items():
            t0 = time.process_time()
            pts, _ = _bcd_path(U, Y, Uv, Yv, support, fr, seed, settings=settings)
            best = min(pt["val_mse"] for pt in pts)
            out[name] = {"path": [{k: v for k, v in pt.items() if k not in ("_model", "norms",
                                                                             "selected")}
                                  for pt in pts],
                         "best_val_mse": best, "gradient_best_val_mse": best_grad,
                         "ratio": best / best_grad,
                         "exact_points": int(sum(pt["exact"] for pt in pts)),
                         "cpu_seconds": time.process_time() - t0}
            print(f"seed {seed:2d} {name}: best val MSE {best:.4f} against the gradient "
                  f"path's {best_grad:.4f} ({best / best_grad:.2f}x)", flush=True)
    return out


def _cv_summary(rows) -> dict:
    """Exact counts and per-seed figures of :func:`cv_seed` results."""
    def arm(get):
        recs = [get(r) for r in rows]
        return {"exact": int(sum(x["exact"] for x in recs)), "of": len(recs),
                "n_selected": [x["n_selected"] for x in recs],
                "precision": [x["precision"] for x in recs],
                "recall": [x["recall"] for x in recs],
                "val_mse": [x["val_mse"] for x in recs]}

    out = {"seeds": [int(r["seed"]) for r in rows],
           "cv_bcd": arm(lambda r: r["cv_bcd"]),
           "cv_bcd_first_stage": {k: [r["cv_bcd"]["first_stage"][k] for r in rows]
                                  for k in ("n_selected", "precision", "recall", "exact")},
           "gradient_adaptive_relaxed": arm(lambda r: r["gradient"]["adaptive_relaxed"]),
           "gradient_adaptive_1se": arm(lambda r: r["gradient"]["adaptive_1se"]),
           "rule_agrees": [r["cv_bcd"]["rule_agrees"] for r in rows],
           "cpu_seconds": [r["cv_bcd"]["cpu_seconds"] for r in rows]}
    for name in CV_PATHS:
        out[name] = {k: [r[name][k] for r in rows]
                     for k in ("best_val_mse", "gradient_best_val_mse", "ratio",
                               "exact_points", "cpu_seconds")}
        out[name]["within_1.2x"] = int(sum(x <= 1.2 for x in out[name]["ratio"]))
    out["cv_bcd"]["bar_met"] = bool(out["cv_bcd"]["exact"] >= 4)
    return out


def _run_all(jobs, n_jobs):
    if n_jobs <= 1:
        return [run_seed(*j) for j in jobs]
    import multiprocessing as mp

    with mp.get_context("fork").Pool(n_jobs) as pool:
        return pool.starmap(run_seed, jobs, chunksize=1)


def _summary(results, trainer) -> dict:
    out = {}
    for v in VARIANTS + RELAXED_VARIANTS:
        if not all(v in r[trainer] for r in results):
            continue
        rs = [r[trainer][v] for r in results]
        out[v] = {"exact_recovery": int(sum(x["exact"] for x in rs)),
                  "precision": [x["precision"] for x in rs],
                  "recall": [x["recall"] for x in rs],
                  "n_selected": [x["n_selected"] for x in rs],
                  "chosen_alpha": [x["alpha"] for x in rs],
                  "chosen_fraction": [x["fraction"] for x in rs],
                  "val_mse": [x["val_mse"] for x in rs],
                  "n_exact_zero": [x["n_exact_zero"] for x in rs]}
        if "refit_val_mse" in rs[0]:
            out[v]["refit_val_mse"] = [x["refit_val_mse"] for x in rs]
    out["exact_support_on_path"] = [
        {"plain": int(sum(p["exact"] for p in r[trainer]["plain_path"])),
         "adaptive": int(sum(p["exact"] for p in r[trainer]["adaptive_path"]))}
        for r in results]
    out["seconds"] = [r[trainer]["seconds"] for r in results]
    if all("seconds_refits" in r[trainer] for r in results):
        out["seconds_refits"] = [r[trainer]["seconds_refits"] for r in results]
    return out


def _norm_bars(ax, norms, on, true, title):
    """The [arXiv §7.2] panel: learned column norms over their maximum (red on the true
    support ``on``, grey off it) and the teacher's scaled norms ``true``."""
    norms = np.asarray(norms, dtype=float)
    learned = norms / max(norms.max(), 1e-300)
    x = np.arange(norms.size)
    ax.bar(x[~on], learned[~on], color="0.55", width=1.0, label="learned, not in support")
    ax.bar(x[on], learned[on], color="C3", width=1.0, label="learned, true support")
    ax.plot(x[on], true[on], "kv", ms=4, label="teacher (scaled)")
    ax.set_title(title, fontsize=8)
    ax.set_xlim(-1, norms.size)
    ax.set_xlabel("feature j", fontsize=8)
    ax.legend(fontsize=6, loc="upper right")


def _plot(results, groups=(), fig=None):
    """Rows: seeds 0-4 (learned column norms, validation paths); last row: the chosen support
    sizes of every seed under the 1-SE and the relaxed rules (``groups``: (label, results)).
    ``fig``: a (sub)figure to draw on (then no layout call); default a new figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(results)
    own = fig is None
    if own:
        fig = plt.figure(figsize=(16, 2.7 * k + 3.2))
    gs = fig.add_gridspec(k + 1, 3, height_ratios=[2.7] * k + [3.2])
    for i, res in enumerate(results):
        row = [fig.add_subplot(gs[i, j]) for j in range(3)]
        p = len(res["true_norms"])
        on = np.zeros(p, dtype=bool)
        on[res["support"]] = True
        true = res["true_norms"] / res["true_norms"].max()
        for ax, trainer in zip(row[:2], ("gradient", "bcd"), strict=True):
            if trainer not in res:
                ax.set_axis_off()
                continue
            ch = res[trainer]["adaptive_1se"]
            _norm_bars(ax, ch["norms"], on, true,
                       f"seed {res['seed']}, {trainer}: $\\|[B;D]e_j\\|$/max, adaptive + 1-SE "
                       f"(prec {ch['precision']:.2f}, rec {ch['recall']:.2f}, "
                       f"{ch['n_selected']} nonzero)")
        ax = row[2]
        for trainer, style in (("gradient", "o-"), ("bcd", "s--")):
            if trainer not in res:
                continue
            for stage, color in (("plain", "C0"), ("adaptive", "C1")):
                pts = res[trainer][f"{stage}_path"]
                fr = [pt["fraction"] for pt in pts]
                ax.semilogx(fr, [pt["val_mse"] for pt in pts], style, color=color, ms=3,
                            label=f"{trainer}, {stage}")
                if "refit_val_mse" in pts[0]:
                    ax.semilogx(fr, [pt["refit_val_mse"] for pt in pts], ":", color=color,
                                marker="x", ms=3, label=f"{trainer}, {stage}, refit (relaxed)")
                ex = [pt for pt in pts if pt["exact"]]
                ax.semilogx([pt["fraction"] for pt in ex], [pt["val_mse"] for pt in ex], "k*",
                            ms=7)
            ch = res[trainer]["adaptive_1se"]
            ax.axvline(ch["fraction"], color="C1", lw=0.7, ls=style[1:] or "-")
            if "adaptive_relaxed" in res[trainer]:
                ax.axvline(res[trainer]["adaptive_relaxed"]["fraction"], color="C2", lw=1.2,
                           ls=":", label="adaptive, relaxed choice")
        ax.set_title(r"validation MSE vs $\alpha/\alpha_{\max}$ (★: exact support; "
                     r"vertical: chosen $\alpha$)", fontsize=8)
        ax.set_yscale("log")
        ax.legend(fontsize=5)
    if groups:
        ax = fig.add_subplot(gs[k, :])
        pos = 0
        ticks, labels = [], []
        rules = (("adaptive_1se", "adaptive, 1-SE", "o", -0.2),
                 ("adaptive_relaxed", "adaptive, relaxed", "s", 0.0),
                 ("plain_relaxed", "plain, relaxed", "^", 0.2))
        for label, res_list in groups:
            start = pos
            for res in res_list:
                g = res["gradient"]
                for v, _name, mk, dx in rules:
                    if v not in g:
                        continue
                    ch = g[v]
                    color = "C2" if ch["exact"] else ("C3" if ch["recall"] < 1 else "C1")
                    ax.plot(pos + dx, ch["n_selected"], mk, color=color, mfc="none" if
                            v == "plain_relaxed" else color, ms=6)
                ticks.append(pos)
                labels.append(str(res["seed"]))
                pos += 1
            ax.axvspan(start - 0.5, pos - 0.5, color="0.93" if "fresh" in label else "1.0",
                       zorder=0)
            ax.text((start + pos - 1) / 2, 1.02, label, transform=ax.get_xaxis_transform(),
                    ha="center", fontsize=8)
        ax.axhline(10, color="k", lw=0.6)
        ax.set_yscale("log")
        ax.set_yticks([1, 2, 5, 10, 20, 50, 100], ["1", "2", "5", "10", "20", "50", "100"])
        ax.minorticks_off()
        ax.set_xticks(ticks, labels, fontsize=7)
        ax.set_xlabel("seed (green: exact support; orange: recall 1 with extra features; "
                      "red: a true feature missed)", fontsize=8)
        ax.set_ylabel("features kept", fontsize=8)
        from matplotlib.lines import Line2D

        ax.legend([Line2D([], [], ls="", marker=mk, color="0.3", mfc="none" if
                          v == "plain_relaxed" else "0.3") for v, _, mk, _ in rules],
                  [name for _, name, _, _ in rules], fontsize=7, loc="upper right")
    fig.suptitle("[arXiv §7.2] model recovery: teacher n = 20, p = 100, 10 active columns; "
                 "student n = 10, group penalty (l2); support = nonzero columns", fontsize=11)
    if own:
        fig.tight_layout()
    return fig


def _relaxed_table(results, variants=("adaptive_relaxed", "plain_relaxed", "adaptive_1se")):
    """Per-seed rows (chosen strength, precision, recall) and exact-recovery counts."""
    out = {"seeds": [int(r["seed"]) for r in results]}
    for v in variants:
        rows = [{"seed": int(r["seed"]), "alpha": r["gradient"][v]["alpha"],
                 "fraction": r["gradient"][v]["fraction"],
                 "n_selected": r["gradient"][v]["n_selected"],
                 "precision": r["gradient"][v]["precision"],
                 "recall": r["gradient"][v]["recall"], "exact": r["gradient"][v]["exact"]}
                for r in results]
        out[v] = {"exact_recovery": int(sum(x["exact"] for x in rows)), "of": len(rows),
                  "per_seed": rows}
    out["exact_support_on_adaptive_path"] = [
        int(sum(p["exact"] for p in r["gradient"]["adaptive_path"])) for r in results]
    return out


def _previous_run(path: Path):
    """The summary of the results file this run replaces, if it predates the relaxed rule
    (kept so that earlier numbers are not lost); an older record is carried forward."""
    import json

    if not path.exists():
        return None
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if "previous_run" in old:
        return old["previous_run"]
    if "relaxed" in old.get("summary", {}):
        return None
    return {"note": "the results file before the relaxed rule was added (same code paths for "
                    "the earlier rules; kept as written)",
            "run": old.get("run"), "source_state": old.get("source_state"),
            "summary": old.get("summary")}


def _carried_bcd(path: Path, seeds) -> dict | None:
    """The BCD results of the existing results file, for ``main(bcd=False)``."""
    import json

    if not path.exists():
        return None
    old = json.loads(path.read_text())
    per_seed = {int(r["seed"]): r["bcd"] for r in old.get("seeds", []) if "bcd" in r}
    if "bcd" not in old.get("summary", {}) or any(s not in per_seed for s in seeds):
        return None
    for r in per_seed.values():
        for v in VARIANTS:
            r[v]["norms"] = np.asarray(r[v]["norms"])
    source = old["summary"].get("bcd_source") or {
        "run": old.get("run"), "source_state": old.get("source_state")}
    return {"summary": old["summary"]["bcd"], "per_seed": per_seed, "source": source}


def main(out_dir="experiments/results", seeds=None, heldout: bool = True,
         fresh: bool = True, bcd: bool = True, n_jobs: int | None = None) -> dict:
    """Run the experiment and write ``model_recovery.json`` and ``model_recovery.png``.

    Parameters
    ----------
    out_dir : str or Path
    seeds : sequence of int, optional
        Default: ``CONFIG["seeds"]`` (0–4), with both trainers.
    heldout : bool, default=True
        Also run ``CONFIG["heldout_seeds"]`` (5–9) with the gradient trainer.
    fresh : bool, default=True
        Also run ``CONFIG["fresh_seeds"]`` (10–19) with the gradient trainer (the test of
        the relaxed rule).
    bcd : bool, default=True
        Run the BCD trainer on ``seeds``. With False, its results are carried over unchanged
        from the existing ``model_recovery.json`` in ``out_dir`` (``summary.bcd_source`` says
        which run produced them); the gradient results are always recomputed.
    n_jobs : int, optional
        Worker processes (default ``CONFIG["n_jobs"]``; each uses one BLAS thread).

    Returns
    -------
    dict
        What the JSON file holds.
    """
    seeds, n_jobs = run_settings(CONFIG, seeds, n_jobs)
    out = output_dir(out_dir)
    previous = _previous_run(out / "model_recovery.json")
    carried = None
    if not bcd:
        carried = _carried_bcd(out / "model_recovery.json", seeds)
        if carried is None:
            raise ValueError("bcd=False needs a results file with BCD results for "
                             f"seeds {seeds} in {out}")
    t0 = time.perf_counter()
    held_seeds = CONFIG["heldout_seeds"] if heldout else []
    fresh_seeds = CONFIG["fresh_seeds"] if fresh else []
    jobs = [(s, ("gradient", "bcd") if bcd else ("gradient",)) for s in seeds]
    jobs += [(s, ("gradient",)) for s in held_seeds]
    jobs += [(s, ("gradient",)) for s in fresh_seeds]
    out_all = _run_all(jobs, n_jobs)
    results = out_all[:len(seeds)]
    held = out_all[len(seeds):len(seeds) + len(held_seeds)]
    new = out_all[len(seeds) + len(held_seeds):]
    if carried is not None:
        for r in results:
            r["bcd"] = carried["per_seed"][int(r["seed"])]
    for r in out_all:
        for trainer in ("gradient", "bcd"):
            if trainer not in r:
                continue
            for v in ("adaptive_1se", "adaptive_relaxed", "plain_relaxed"):
                if v in r[trainer]:
                    c = r[trainer][v]
                    print(f"seed {r['seed']:2d} {trainer:8s} {v:16s}: alpha = {c['alpha']:.4g} "
                          f"({c['fraction']:.4f} alpha_max), {c['n_selected']:3d} kept, "
                          f"precision {c['precision']:.2f}, recall {c['recall']:.2f}",
                          flush=True)
    summary = {t: _summary(results, t) for t in ("gradient", "bcd")}
    if carried is not None:
        summary["bcd"] = carried["summary"]
        summary["bcd_source"] = carried["source"]
        summary["bcd_source"]["note"] = ("BCD results carried over unchanged from this run "
                                         "(main(bcd=False)); not recomputed")
    if held:
        summary["heldout"] = {"seeds": held_seeds, "gradient": _summary(held, "gradient")}
    if new:
        summary["fresh"] = {"seeds": fresh_seeds, "gradient": _summary(new, "gradient")}
    summary["relaxed"] = {
        "rule": CONFIG["relaxed"]["rule"], "declared": CONFIG["relaxed"]["declared"],
        "seen_seeds": _relaxed_table(results + held),
        "fresh_seeds": _relaxed_table(new) if new else None,
        "note": "seen seeds: 0-4 shaped the earlier procedure and 5-9 were its held-out "
                "check; fresh seeds 10-19 were first run with the relaxed rule declared"}
    summary["bar"] = ("exact support recovery (precision = recall = 1) in at least 4 of the 5 "
                      "seeds 0-4, support = nonzero learned columns, alpha by validation")
    summary["bar_met"] = {t: {v: bool(summary[t][v]["exact_recovery"] >= 4)
                              for v in VARIANTS + RELAXED_VARIANTS if v in summary[t]}
                          for t in ("gradient", "bcd")}
    data = {"experiment": "model_recovery", "source": "[arXiv §7.2], theory §9",
            "paper": PAPER, "config": CONFIG, "summary": summary, "seeds": results,
            "heldout_seeds": held, "fresh_seeds": new,
            "run": run_info("model_recovery.py" + ("" if bcd else " --no-bcd"),
                            time.perf_counter() - t0),
            "source_state": source_state()}
    if previous is not None:
        data["previous_run"] = previous
    cv_block = _carried_cv(out / "model_recovery.json")
    if cv_block is not None:  # CONFIG_CV_BCD's results are carried over unchanged
        data["cv_bcd"] = cv_block
    write_json(data, out / "model_recovery.json")
    cv_rows = (cv_block or {}).get("fresh", {}).get("per_seed")
    save_png(_figure(results, held, new, _arrays(cv_rows) if cv_rows else None),
             out / "model_recovery.png")
    return data


def _carried_cv(path: Path):
    """The ``cv_bcd`` block (``main_cv``) of the existing results file, or None."""
    import json

    if not path.exists():
        return None
    return json.loads(path.read_text()).get("cv_bcd")


def _plot_cv(rows, title, fig=None):
    """Per seed: learned against true column norms for the gradient arm (adaptive, relaxed
    rule) and the CV-estimator BCD arm (the [arXiv §7.2] figure), and the validation MSE
    along the plain gradient path and the two BCD paths of ``CV_PATHS``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(rows)
    own = fig is None
    if own:
        fig = plt.figure(figsize=(16, 2.7 * k + 0.6))
    axes = fig.subplots(k, 3, squeeze=False)
    for row, res in zip(axes, rows, strict=True):
        true_norms = np.asarray(res["true_norms"], dtype=float)
        p = true_norms.size
        on = np.zeros(p, dtype=bool)
        on[np.asarray(res["support"], dtype=int)] = True
        true = true_norms / true_norms.max()
        arms = (("gradient, adaptive + relaxed", res["gradient"]["adaptive_relaxed"]),
                ("BCD, ImplicitRegressorCV (support_)", res["cv_bcd"]))
        for ax, (label, ch) in zip(row[:2], arms, strict=True):
            _norm_bars(ax, ch["norms"], on, true,
                       f"seed {res['seed']}, {label}:\n$\\|[B;D]e_j\\|$/max (prec "
                       f"{ch['precision']:.2f}, rec {ch['recall']:.2f}, {ch['n_selected']} "
                       f"kept, val MSE {ch['val_mse']:.3f})")
        ax = row[2]
        pts = res["gradient"]["plain_path"]
        ax.semilogx([pt["fraction"] for pt in pts], [pt["val_mse"] for pt in pts], "o-",
                    ms=3, label="gradient path (plain)")
        for (name, st), color in zip((("bcd_path_default", "s--"), ("bcd_path_b0", "^-")),
                                     ("C1", "C2"), strict=True):
            pts = res[name]["path"]
            ax.semilogx([pt["fraction"] for pt in pts], [pt["val_mse"] for pt in pts], st,
                        color=color, ms=3, label=f"{name} ({res[name]['ratio']:.2f}x)")
        ax.axhline(res["cv_bcd"]["val_mse"], color="C3", lw=0.8, ls=":",
                   label="ImplicitRegressorCV (BCD)")
        ax.set_yscale("log")
        ax.set_title(r"validation MSE vs $\alpha/\alpha_{\max}$; ratio = best BCD / best "
                     "gradient", fontsize=8)
        ax.legend(fontsize=6)
    fig.suptitle(title, fontsize=11)
    if own:
        fig.tight_layout()
    return fig


def _arrays(rows):
    """Per-seed results read back from the JSON, with ``norms`` and ``true_norms`` as arrays
    (what the plots expect)."""
    def conv(obj):
        if isinstance(obj, dict):
            return {k: (np.asarray(v, dtype=float) if k in ("norms", "true_norms") else conv(v))
                    for k, v in obj.items()}
        if isinstance(obj, list):
            return [conv(v) for v in obj]
        return obj

    return conv(rows)


def _figure(results, held, new, cv_rows=None):
    """``model_recovery.png``: the main run's figure (seeds 0-4, and the support sizes of the
    seen and fresh seeds); below it, when ``cv_rows`` (``CONFIG_CV_BCD``'s fresh seeds) are
    given, the gradient arm beside the CV-estimator BCD arm on those seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = (("seen seeds 0-9", results + held), ("fresh seeds 10-19", new))
    if not cv_rows:
        return _plot(results, groups)
    h1, h2 = 2.7 * len(results) + 3.2, 2.7 * len(cv_rows) + 0.8
    fig = plt.figure(figsize=(16, h1 + h2), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[h1, h2])
    _plot(results, groups, fig=top)
    seeds = [r["seed"] for r in cv_rows]
    _plot_cv(cv_rows, f"BCD by ImplicitRegressorCV (package defaults; declared before fresh "
             f"seeds {seeds[0]}-{seeds[-1]} were run) beside gradient (adaptive + relaxed); "
             "support = nonzero columns", fig=bottom)
    return fig


def replot(out_dir="experiments/results") -> None:
    """Redraw ``model_recovery.png`` from ``model_recovery.json`` (no fit)."""
    import json

    out = output_dir(out_dir)
    data = json.loads((out / "model_recovery.json").read_text())
    cv = data.get("cv_bcd", {}).get("fresh", {}).get("per_seed")
    save_png(_figure(_arrays(data["seeds"]), _arrays(data["heldout_seeds"]),
                     _arrays(data["fresh_seeds"]), _arrays(cv) if cv else None),
             out / "model_recovery.png")


def main_cv(out_dir="experiments/results", stage: str = "fresh", seeds=None,
            n_jobs: int | None = None) -> dict:
    """Run :func:`cv_seed` (``CONFIG_CV_BCD``) and merge it into ``model_recovery.json``.

    Parameters
    ----------
    out_dir : str or Path
        Holds the ``model_recovery.json`` of a full run; its other entries are kept as they
        are, and ``cv_bcd[stage]`` is written (with ``cv_bcd.config``).
    stage : {"fresh", "development"}
        ``"fresh"``: ``CONFIG_CV_BCD["fresh_seeds"]``, once (refused when the file already has
        them); redraws ``model_recovery.png`` with its rows added. ``"development"``:
        ``seeds`` from ``CONFIG_CV_BCD["development_seeds"]`` only.
    seeds : sequence of int, optional
        Development seeds (default all of them).
    n_jobs : int, optional
        Seeds in parallel worker processes (default ``CONFIG_CV_BCD["n_jobs"]``).

    Returns
    -------
    dict
        What ``cv_bcd[stage]`` holds.
    """
    import json

    path = output_dir(out_dir) / "model_recovery.json"
    data = json.loads(path.read_text())
    block = data.setdefault("cv_bcd", {})
    if stage == "fresh":
        if seeds is not None:
            raise ValueError("the fresh seeds are those of CONFIG_CV_BCD; got seeds")
        if "fresh" in block:
            raise ValueError(f"{path} already holds the fresh seeds' results (run once)")
        seeds = CONFIG_CV_BCD["fresh_seeds"]
    elif stage == "development":
        seeds = CONFIG_CV_BCD["development_seeds"] if seeds is None else seeds
        if not set(seeds) <= set(CONFIG_CV_BCD["development_seeds"]):
            raise ValueError(f"development seeds are {CONFIG_CV_BCD['development_seeds']}; "
                             f"got {seeds}")
    else:
        raise ValueError(f"stage must be 'fresh' or 'development'; got {stage!r}")
    seeds, n_jobs = run_settings(CONFIG_CV_BCD, seeds, n_jobs)
    t0 = time.perf_counter()
    block["config"] = CONFIG_CV_BCD
    rows = []

    def record(row):
        # every finished seed is written at once (a run cut short keeps what it finished)
        rows.append(row)
        rows.sort(key=lambda r: seeds.index(r["seed"]))
        block[stage] = {"seeds": seeds, "complete": len(rows) == len(seeds),
                        "finished_seeds": [r["seed"] for r in rows], "per_seed": rows,
                        "run": run_info(f"model_recovery.py --cv-bcd {stage}",
                                        time.perf_counter() - t0),
                        "source_state": source_state()}
        write_json(data, path)

    if n_jobs <= 1:
        for s in seeds:
            record(cv_seed(s))
    else:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(n_jobs) as pool:
            for row in pool.imap_unordered(cv_seed, seeds, chunksize=1):
                record(row)
    summary = _cv_summary(rows)
    c = summary["cv_bcd"]
    print(f"{stage}: ImplicitRegressorCV (BCD) exact support on {c['exact']} of {c['of']} "
          f"(bar 4 of 5: {'met' if c['bar_met'] else 'not met'}); gradient adaptive + relaxed "
          f"{summary['gradient_adaptive_relaxed']['exact']} of {c['of']}", flush=True)
    block[stage]["summary"] = summary
    write_json(data, path)
    if stage == "fresh":
        replot(out_dir)
    return block[stage]


def path_line_seed(seed: int) -> dict:
    """One seed of ``CONFIG_PATH_LINE``: the best validation MSE along the gradient plain path
    and along ``group_lasso_path`` with its defaults, and their ratio."""
    from threadpoolctl import threadpool_limits

    fr = np.asarray(CONFIG["alpha_fractions"])
    s = CONFIG["student"]
    with threadpool_limits(1), quiet():
        U, Y, Uv, Yv, support, _ = _data(seed)
        t0 = time.process_time()
        A, B, b = random_feature_init(U, s["n_hidden"], s["activation"], seed, s["kappa"])
        q, p = Y.shape[1], U.shape[1]
        init = ImplicitModel(A, B, np.zeros((q, s["n_hidden"])), np.zeros((q, p)), b=b,
                             c=np.zeros(q), activation=s["activation"])
        grad, _ = _gradient_path(init, U, Y, Uv, Yv, support, fr, seed)
        t1 = time.process_time()
        bcd, _ = _bcd_path(U, Y, Uv, Yv, support, fr, seed, settings={})
        t2 = time.process_time()
    g, c = min(pt["val_mse"] for pt in grad), min(pt["val_mse"] for pt in bcd)
    row = {"seed": seed, "gradient_best_val_mse": g, "bcd_best_val_mse": c, "ratio": c / g,
           "within_1.2": bool(c <= 1.2 * g), "gradient_cpu_s": t1 - t0, "bcd_cpu_s": t2 - t1,
           "bcd_path": [{"fraction": pt["fraction"], "val_mse": pt["val_mse"],
                         "n_selected": pt["n_selected"], "exact": pt["exact"]} for pt in bcd]}
    print(f"seed {seed}: best val MSE BCD path {c:.4f}, gradient path {g:.4f} ({c / g:.2f}x), "
          f"{t2 - t1:.0f} / {t1 - t0:.0f} CPU s", flush=True)
    return row


def main_path_line(out_dir="experiments/results", n_jobs: int | None = None) -> dict:
    """Run ``CONFIG_PATH_LINE`` on its fresh seeds, once, into ``model_recovery.json``
    (``path_line``; the file's other entries are kept)."""
    import json

    path = output_dir(out_dir) / "model_recovery.json"
    data = json.loads(path.read_text())
    if "path_line" in data:
        raise ValueError(f"{path} already holds the path line's fresh seeds (run once)")
    seeds, n_jobs = run_settings(CONFIG_PATH_LINE, None, n_jobs, seed_key="fresh_seeds")
    t0 = time.perf_counter()
    rows = map_seeds(path_line_seed, seeds, n_jobs)
    k = sum(r["within_1.2"] for r in rows)
    data["path_line"] = {"config": CONFIG_PATH_LINE, "per_seed": rows,
                         "summary": {"within_1.2": k, "of": len(rows), "bar_met": k >= 4,
                                     "ratios": [r["ratio"] for r in rows]},
                         "run": run_info("model_recovery.py --path-line",
                                         time.perf_counter() - t0),
                         "source_state": source_state()}
    write_json(data, path)
    print(f"path line: within 1.2x on {k} of {len(rows)} (bar 4 of 5: "
          f"{'met' if k >= 4 else 'not met'})", flush=True)
    return data["path_line"]


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", default="experiments/results")
    parser.add_argument("--no-bcd", action="store_true",
                        help="keep the BCD results of the existing results file")
    parser.add_argument("--n-jobs", type=int, default=None)
    parser.add_argument("--cv-bcd", choices=("fresh", "development"), default=None,
                        help="run only CONFIG_CV_BCD (ImplicitRegressorCV with BCD, beside "
                             "the gradient arm) and merge it into model_recovery.json")
    parser.add_argument("--seeds", type=int, nargs="*", default=None,
                        help="with --cv-bcd development: which development seeds")
    parser.add_argument("--path-line", action="store_true",
                        help="run only CONFIG_PATH_LINE (the BCD path with group_lasso_path's "
                             "defaults against the gradient path) on its fresh seeds, once")
    parser.add_argument("--replot", action="store_true",
                        help="redraw model_recovery.png from model_recovery.json (no fit)")
    args = parser.parse_args()
    if args.replot:
        replot(args.out_dir)
    elif args.path_line:
        main_path_line(out_dir=args.out_dir, n_jobs=args.n_jobs)
    elif args.cv_bcd is not None:
        main_cv(out_dir=args.out_dir, stage=args.cv_bcd, seeds=args.seeds, n_jobs=args.n_jobs)
    else:
        main(out_dir=args.out_dir, bcd=not args.no_bcd, n_jobs=args.n_jobs)
