r"""Cross-validated estimators: :class:`ImplicitRegressorCV` and :class:`ImplicitClassifierCV`.

They answer "which ``alpha``?" as :class:`sklearn.linear_model.LassoCV` and
:class:`sklearn.linear_model.LogisticRegressionCV` do: every fold fits the base estimator
(:class:`~lifted_idl.ImplicitRegressor` / :class:`~lifted_idl.ImplicitClassifier`) along a
decreasing grid of strengths (each fit from the base estimator's own initialisation: warm
starts were measured worse, see ``_fold_path``); the strength with the best mean validation
score is chosen, and the base estimator is refit at it on all the data.

The grid starts at :func:`alpha_max`. For ``penalty="group"`` (theory §6, [IDL (5.1)]) that is the
smallest strength at which the model with no input, :math:`B = 0, D = 0`, is a stationary point
of the penalised training problem; below it the penalty lets features in.
"""

from __future__ import annotations

import copy
import inspect
import numbers
import warnings

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone, is_classifier
from sklearn.metrics import log_loss, mean_squared_error
from sklearn.model_selection import check_cv
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_sample_weight,
    _get_feature_names,
    check_is_fitted,
    check_X_y,
)

from .estimators import (
    ImplicitClassifier,
    ImplicitRegressor,
    _BaseImplicit,
    _DenseTags,
    _MultiOutputTags,
    _standardise,
)
from .exceptions import ConvergenceWarning

__all__ = ["ImplicitRegressorCV", "ImplicitClassifierCV", "alpha_max", "alpha_grid"]


def _checked_xy(X, y, **kw):
    """``X``, ``y`` checked as ``validate_data`` checks them, and the feature names of ``X``
    (or None), without setting any attribute: the CV fit sets them all at its end."""
    names = _get_feature_names(X)
    X, y = check_X_y(X, y, dtype=[np.float64, np.float32], **kw)
    return X, y, names


def _standardised(X, sample_weight=None):
    """The inputs as the base estimators standardise them (same rule, same tiny-scale guard,
    weighted with ``sample_weight``)."""
    return _standardise(X, sample_weight=sample_weight)[2]


def alpha_max(X, Y, *, penalty: str = "group", group_ord=2, classifier: bool = False,
              sample_weight=None, group_weights=None) -> float:
    r"""The largest strength of the grid: where the penalty leaves (almost) no input in use.

    Let :math:`U` be the standardised inputs (as the estimators standardise them), and
    :math:`R \in \mathbb R^{m\times q}` the residual of the best model with no input,
    :math:`B = 0,\ D = 0,\ C = 0`: its states are the constant equilibrium of
    :math:`x = \phi(Ax + b)` and its output the constant :math:`c^*` that minimises the loss.
    For the regressor (squared loss on standardised targets, :math:`\frac1{2m}\|Y - \hat
    Y\|_F^2`) :math:`R = -Y_s`, the standardised targets; for the classifier (softmax cross
    entropy on one-hot rows, one logit per class, also for two classes) :math:`R = \pi - Y`,
    :math:`\pi` the class frequencies. With :math:`G = \frac1m U^\top R` (the gradient of the
    mean loss with respect to :math:`D^\top`):

    * ``penalty="group"``, :math:`\alpha\sum_j\|[B; D]e_j\|_r` [IDL (5.1)]:
      :math:`\alpha_{\max} = \max_j \|G_{j,:}\|_{r^*}`, :math:`r^*` the dual norm (2 for
      ``group_ord=2``, 1 for ``"inf"``). At :math:`C = 0` the gradient of the loss with
      respect to B vanishes (the output does not read the states), and so does that of the
      BCD relaxation (its Fenchel divergence is zero, and minimal, at the equilibrium), so
      the column j of the gradient with respect to :math:`[B; D]` is :math:`(0, G_{j,:})`.
      The point :math:`B = D = C = 0` is therefore stationary (zero lies in the subdifferential
      of every group) iff :math:`\alpha \ge \alpha_{\max}`; :math:`C = 0` is where the ridge
      on C (``c_ridge``, which defaults to ``alpha``) puts C when the states are constant.
      This is the model a fit started from the all-zero columns would stay at; the
      estimators start from a random-feature model (:math:`B \ne 0`), and at
      :math:`1.01\,\alpha_{\max}` their BCD fits end with every column zero for
      ``group_ord=2`` (``tests/test_cv.py``). For ``"inf"`` the zero model is stationary but
      need not be the fit: under the max-norm of a column, its n entries in B cost what one
      does, and fits can keep features above it (in the measured case, up to about
      :math:`2\,\alpha_{\max}`).
    * ``penalty="l1"``: :math:`\max_{j,k}|G_{jk}|`, the lasso :math:`\alpha_{\max}` of the
      linear part; by the same argument (with also the gradient in C zero, since the states
      are constant and R has zero mean) the zero model is stationary from there up.
    * ``penalty="l2"``: no strength zeroes a ridge; the grid starts at
      :math:`\|U\|_2^2/m`, the largest eigenvalue of the standardised Gram matrix, where a
      ridge on the linear part keeps at most half of the least-squares coefficient in every
      principal direction (:math:`s/(s + \alpha) \le 1/2`).

    Parameters
    ----------
    X : array of shape (m, p)
        Raw inputs.
    Y : array of shape (m,) or (m, q)
        Targets (regressor) or class labels (classifier).
    penalty : {"group", "l1", "l2"}, default="group"
    group_ord : {2, "inf"}, default=2
    classifier : bool, default=False
    sample_weight : array of shape (m,), optional
        Positive sample weights: every average over the samples above (the standardisation,
        the residual's mean or class frequencies, and :math:`G`) is weighted, as in the
        estimators' weighted fit.
    group_weights : array of shape (p,), optional
        The weights :math:`w_j` of a weighted group penalty,
        :math:`\alpha\sum_j w_j\|[B; D]e_j\|_r` (the estimators' ``group_weights``): then
        :math:`\alpha_{\max} = \max_j \|G_{j,:}\|_{r^*}/w_j` (a weight inf: the feature
        is never in).

    Returns
    -------
    float
        Positive; where the formula gives 0 (targets orthogonal to every input) the machine
        resolution is returned, as :func:`sklearn.linear_model._coordinate_descent._alpha_grid`
        does.
    """
    U = _standardised(X, sample_weight)
    m = U.shape[0]
    w = np.ones(m) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    w = w / w.mean()
    if penalty == "l2":
        amax = float(np.linalg.norm(U * np.sqrt(w)[:, None], 2) ** 2 / m)
    else:
        if classifier:
            T = LabelBinarizer().fit_transform(np.asarray(Y)).astype(np.float64)
            if T.shape[1] == 1:
                T = np.hstack([1 - T, T])
            R = np.average(T, axis=0, weights=w) - T
        else:
            Yf = np.asarray(Y, dtype=np.float64)
            Yf = Yf.reshape(-1, 1) if Yf.ndim == 1 else Yf
            mean = np.average(Yf, axis=0, weights=w)
            sd = np.sqrt(np.average((Yf - mean) ** 2, axis=0, weights=w))
            R = -(Yf - mean) / np.where(sd > 0, sd, 1.0)
        G = U.T @ (R * w[:, None]) / m
        if penalty == "group":
            dual = 2 if group_ord == 2 else 1
            norms = np.linalg.norm(G, ord=dual, axis=1)
            if group_weights is not None:
                norms = norms / np.asarray(group_weights, dtype=np.float64)
            amax = float(norms.max(initial=0.0))
        elif penalty == "l1":
            amax = float(np.abs(G).max(initial=0.0))
        else:
            raise ValueError(
                f"penalty={penalty!r} has no strength to cross-validate; expected "
                "'group', 'l1' or 'l2'")
    return max(amax, float(np.finfo(np.float64).resolution))


def alpha_grid(amax: float, n_alphas: int, eps: float) -> np.ndarray:
    """``n_alphas`` strengths, geometric from ``amax`` down to ``amax * eps`` (decreasing)."""
    return np.geomspace(amax, amax * eps, num=n_alphas)


def _validation_loss(est, X, y, classes=None, sw=None) -> float:
    """Validation loss of a fitted base estimator: mean squared error in the raw target units
    (averaged over outputs) or the log loss, weighted by ``sw``."""
    if classes is None:
        return float(mean_squared_error(y, est.predict(X), sample_weight=sw))
    proba = np.zeros((X.shape[0], len(classes)))  # a class missing from the fold: column 0
    proba[:, np.searchsorted(classes, est.classes_)] = est.predict_proba(X)
    return float(log_loss(y, proba, labels=classes, sample_weight=sw))


def _prior_loss(y_train, y_test, classes=None, sw_train=None, sw_test=None) -> float:
    """Validation loss of the model with no input (training mean / class frequencies)."""
    if classes is None:
        pred = np.broadcast_to(np.average(y_train, axis=0, weights=sw_train), np.shape(y_test))
        return float(mean_squared_error(y_test, pred, sample_weight=sw_test))
    freq = np.array([np.average(y_train == c, weights=sw_train) for c in classes])
    return float(log_loss(y_test, np.tile(freq, (len(y_test), 1)), labels=classes,
                          sample_weight=sw_test))


def _fit_quiet(est, X, y, sw=None):
    """Fit, recording (instead of raising repeatedly) convergence warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y, sample_weight=sw)
    return est


# Why the folds fit every strength from scratch: warm-starting each fit from the previous
# strength's model (the base estimator's ``warm_start``) was measured on one fold (3-fold
# split) of a design teacher of ``experiments/cv_support.py`` (seed 101, 10 strengths) and of
# diabetes: best validation MSE along the path 12.6 warm against 2.79 cold on the teacher,
# 3031 against 2858 on diabetes, at about 1/30 of the BCD rounds (a warm-started BCD fit
# stops after a few rounds). Cold fits also score exactly the model that the refit at
# ``alpha_`` trains (on more data).


def _fold_path(base, X, y, train, test, alphas, relaxed, classes, sw=None):
    """One fold: a fit at every strength of ``alphas`` (decreasing); validation losses.

    Returns a dict of arrays over the grid: ``loss``, ``n_iter``, ``converged``,
    ``n_selected`` and ``importances`` (group penalty: the fits' ``feature_importances_``,
    shape (n_alphas, n_features)) and, when ``relaxed``, ``relaxed_loss``: the validation
    loss of the refit of each path point on its support without the group penalty. A fold
    whose training targets are constant scores the constant model at every strength."""
    Xtr, Xte, ytr, yte = X[train], X[test], y[train], y[test]
    swtr, swte = (None, None) if sw is None else (sw[train], sw[test])
    k = len(alphas)
    out = {"loss": np.empty(k), "n_iter": np.zeros(k, dtype=int),
           "converged": np.zeros(k, dtype=bool), "n_selected": np.full(k, -1)}
    if base.penalty == "group":
        out["importances"] = np.zeros((k, X.shape[1]))
    if relaxed:
        out["relaxed_loss"] = np.empty(k)
    if classes is None and np.any(np.ptp(np.reshape(ytr, (len(ytr), -1)), axis=0) == 0):
        # a constant target on this fold (the base estimator refuses it): every strength
        # gives the constant model, scored as such
        for name in ("loss", "relaxed_loss"):
            if name in out:
                out[name][:] = _prior_loss(ytr, yte, None, swtr, swte)
        out["converged"][:] = True
        out["n_selected"][:] = 0 if base.penalty == "group" else -1
        return out
    for i, a in enumerate(alphas):
        # every strength from the base estimator's own initialisation (see above)
        est = _fit_quiet(clone(base).set_params(alpha=float(a), warm_start=False), Xtr, ytr,
                         swtr)
        out["loss"][i] = _validation_loss(est, Xte, yte, classes, swte)
        out["n_iter"][i] = est.n_iter_
        out["converged"][i] = est.converged_
        if base.penalty == "group":
            out["importances"][i] = est.feature_importances_
            sel = out["importances"][i] > 0
            out["n_selected"][i] = int(sel.sum())
            if relaxed:
                out["relaxed_loss"][i] = _relaxed_loss(base, sel, a, Xtr, ytr, Xte, yte,
                                                       classes, swtr, swte)
    return out


def _relaxed_loss(base, sel, alpha, Xtr, ytr, Xte, yte, classes, swtr=None, swte=None):
    """The relaxed rule's score of one path point: refit on the features ``sel`` without the
    group penalty (the ridge on C kept, :math:`\beta` = ``c_ridge`` or the point's alpha),
    from the base estimator's own initialisation; validation loss of the refit. An empty
    ``sel`` scores the model with no input (the training mean, or the class frequencies).

    Refits warm-started from the path point (restricted to ``sel``), as
    ``experiments/model_recovery.py`` does with the gradient trainer, were tried and dropped:
    unpenalised BCD from a group-penalised start diverged on some folds (validation MSE up to
    1e21 on the design teachers of ``experiments/cv_support.py``)."""
    if not sel.any():
        return _prior_loss(ytr, yte, classes, swtr, swte)
    beta = float(alpha if base.c_ridge is None else base.c_ridge)
    # no group penalty, so no group weights (they are per feature of the full X)
    refit = clone(base).set_params(alpha=0.0, c_ridge=beta, warm_start=False,
                                   group_weights=None)
    _fit_quiet(refit, Xtr[:, sel], ytr, swtr)
    return _validation_loss(refit, Xte[:, sel], yte, classes, swte)


def _cv_results(paths, alphas, relaxed, group):
    """``cv_results_`` from the folds' paths, and the index of the best strength (ties: the
    first, i.e. the largest alpha)."""
    results = {"alphas": alphas}
    for name, prefix in (("loss", "test_score"), ("relaxed_loss", "relaxed_test_score")):
        if name not in paths[0]:
            continue
        scores = -np.array([p[name] for p in paths])  # (n_folds, n_alphas)
        for k, row in enumerate(scores):
            results[f"split{k}_{prefix}"] = row
        results[f"mean_{prefix}"] = scores.mean(axis=0)
        results[f"std_{prefix}"] = scores.std(axis=0)
    if group:
        results["mean_n_selected"] = np.mean([p["n_selected"] for p in paths], axis=0)
        results["feature_importances"] = np.array([p["importances"] for p in paths])
    results["converged"] = np.array([p["converged"] for p in paths])
    results["n_iter"] = np.array([p["n_iter"] for p in paths])
    key = "relaxed_loss" if relaxed else "loss"
    return results, int(np.argmax(-np.mean([p[key] for p in paths], axis=0)))


#: the exponent gamma of the adaptive weights, w_j = (max_k s_k / s_j)^gamma
_ADAPTIVE_GAMMA = 1.0
#: how the adaptive (second) stage chooses its strength: "relaxed" (refits on the kept
#: features without the penalty) or "min" (the penalised fits; experiments/README.md)
_ADAPTIVE_STAGE2 = "relaxed"


def _adaptive_weights(importances, weights=None):
    r"""The adaptive group lasso's weights from a first fit's column norms s (standardised
    features): :math:`w_j = (\max_k s_k / s_j)^\gamma`, inf where :math:`s_j = 0`, times the
    first stage's own ``weights``; None when the first fit uses no feature."""
    s = np.asarray(importances, dtype=np.float64)
    top = s.max(initial=0.0)
    if not top > 0:
        return None
    with np.errstate(divide="ignore"):
        w = (top / s) ** _ADAPTIVE_GAMMA
    return w if weights is None else w * np.asarray(weights, dtype=np.float64)


def _cv_signature(base_cls, extra):
    """``__init__``'s signature: the base estimator's parameters, then ``extra`` (keyword
    only; an extra parameter of the same name replaces the base's)."""
    names = {p.name for p in extra}
    params = [p for p in inspect.signature(base_cls.__init__).parameters.values()
              if p.name not in names]
    return inspect.Signature(params + list(extra))


_EXTRA = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
          for name, default in [("alphas", 10), ("eps", 1e-3), ("cv", 5),
                                ("selection", "adaptive"), ("n_jobs", None)]]


class _BaseImplicitCV(_DenseTags, BaseEstimator):
    """Shared machinery; ``_base_class`` is the estimator being tuned."""

    _base_class: type = _BaseImplicit
    _parameter_constraints: dict = {
        **_BaseImplicit._parameter_constraints,
        "alphas": [Interval(numbers.Integral, 1, None, closed="left"), "array-like"],
        "eps": [Interval(numbers.Real, 0, 1, closed="neither")],
        "cv": ["cv_object"],
        "selection": [StrOptions({"min", "relaxed", "adaptive"})],
        # no alpha to cross-validate without a penalty
        "penalty": [StrOptions({"l2", "l1", "group"})],
        "n_jobs": [None, Interval(numbers.Integral, None, -1, closed="right"),
                   Interval(numbers.Integral, 1, None, closed="left")],
    }

    def __init__(self, *args, **kwargs):
        bound = type(self).__init__.__signature__.bind(self, *args, **kwargs)
        bound.apply_defaults()
        for name, value in bound.arguments.items():
            if name != "self":
                setattr(self, name, value)

    def _base(self):
        """The base estimator with this estimator's parameters (one thread per fit: ``n_jobs``
        runs folds here)."""
        names = inspect.signature(self._base_class.__init__).parameters
        params = {k: v for k, v in self.get_params(deep=False).items() if k in names}
        params["n_jobs"] = None
        return self._base_class(**params)

    def _grid(self, X, y, sw=None, group_weights=None):
        if not isinstance(self.alphas, numbers.Integral):
            alphas = np.asarray(self.alphas, dtype=np.float64).ravel()
            if alphas.size == 0 or not np.all(np.isfinite(alphas)) or np.any(alphas < 0):
                raise ValueError(f"alphas must be a nonempty array of finite values >= 0; "
                                 f"got alphas={self.alphas!r}")
            return np.sort(alphas)[::-1]
        amax = alpha_max(X, y, penalty=self.penalty, group_ord=self.group_ord,
                         classifier=is_classifier(self), sample_weight=sw,
                         group_weights=group_weights)
        return alpha_grid(amax, int(self.alphas), self.eps)

    def _weighted(self, X, sample_weight, groups):
        """``(sw, groups)``: the weights checked as the base estimators check theirs (length,
        finite, non-negative, not all 0; None for None) and the samples' groups (for a
        group-aware splitter) checked for length. Samples of weight 0 stay: the folds index
        the samples as given (explicit splits, groups); :meth:`_fit_cv` checks that every
        fold has weight on both sides."""
        self._base_class._sample_weight(sample_weight, X)  # raises on bad weights
        sw = (None if sample_weight is None
              else _check_sample_weight(sample_weight, X, dtype=np.float64))
        if groups is not None:
            groups = np.asarray(groups)
            if groups.ndim != 1 or groups.shape[0] != X.shape[0]:
                raise ValueError(f"groups must hold one label per sample ({X.shape[0]}); "
                                 f"got shape {groups.shape}")
        return sw, groups

    def _fit_cv(self, X, y, names, classes=None, sample_weight=None, groups=None):
        """The whole CV fit into locals, then every fitted attribute at once (a fit that
        raises or is interrupted leaves the estimator as it was). ``sample_weight`` and
        ``groups`` as :meth:`_weighted` returns them."""
        base = self._base()
        base._check_robust_options()
        base._column_multipliers(X.shape[1])  # group_weights checked before any fit
        sw = sample_weight
        cv = check_cv(self.cv, y, classifier=is_classifier(self))
        folds = list(cv.split(X, y, groups))
        if sw is not None:
            for k, (train, test) in enumerate(folds):
                for part, rows in (("training", train), ("validation", test)):
                    if not np.any(sw[rows] > 0):
                        raise ValueError(
                            f"fold {k}: every sample of its {part} part has weight 0; "
                            "choose splits (cv) that give both parts a sample of positive "
                            "weight")
        group = self.penalty == "group"
        relaxed = self.selection == "relaxed" and group
        alphas, results, best = self._cv_stage(base, X, y, folds, relaxed, classes, sw)
        adaptive = {}
        if self.selection == "adaptive" and group:
            first = self._refit(base, float(alphas[best]), X, y, sw, warm=False)
            adaptive = {"first_stage_": {"alpha_": float(alphas[best]), "alphas_": alphas,
                                         "cv_results_": results,
                                         "feature_importances_": first.feature_importances_}}
            weights = _adaptive_weights(first.feature_importances_, base.group_weights)
            if weights is not None:
                base = clone(base).set_params(group_weights=weights)
                alphas, results, best = self._cv_stage(
                    base, X, y, folds, _ADAPTIVE_STAGE2 == "relaxed", classes, sw)
            adaptive["group_weights_"] = base.group_weights
        if adaptive and weights is None and not (self.warm_start
                                                 and hasattr(self, "best_estimator_")):
            final = first  # no feature kept: the first stage's refit is the final one
        else:
            final = self._refit(base, float(alphas[best]), X, y, sw)
        fitted = {**adaptive, "alphas_": alphas, "alpha_": float(alphas[best]),
                  "best_index_": best,
                  "cv_results_": results, "n_splits_": len(folds), "best_estimator_": final,
                  "model_": final.model_, "n_iter_": final.n_iter_,
                  "converged_": final.converged_, "loss_curve_": final.loss_curve_,
                  "n_features_in_": final.n_features_in_}
        if names is not None:
            fitted["feature_names_in_"] = names
            final.feature_names_in_ = names  # the refit saw an array; its columns are these
        if self.penalty == "group":
            fitted["support_"] = final.feature_importances_ > 0
        if classes is not None:
            fitted["classes_"] = final.classes_
        for name in ("support_", "feature_names_in_", "classes_", "first_stage_",
                     "group_weights_"):
            if name not in fitted and name in self.__dict__:
                del self.__dict__[name]
        self.__dict__.update(fitted)
        return self

    def _cv_stage(self, base, X, y, folds, relaxed, classes, sw):
        """One cross-validated path of ``base`` (its ``group_weights`` included): the grid,
        ``cv_results_`` and the index of the chosen strength."""
        alphas = self._grid(X, y, sw, base.group_weights if self.penalty == "group" else None)
        paths = Parallel(n_jobs=self.n_jobs)(
            delayed(_fold_path)(base, X, y, train, test, alphas, relaxed, classes, sw)
            for train, test in folds)
        results, best = _cv_results(paths, alphas, relaxed, self.penalty == "group")
        return alphas, results, best

    def _refit(self, base, alpha, X, y, sw, warm=True):
        """The base estimator refit on all the data at ``alpha`` (with ``warm_start``, from a
        copy of the previous refit: the old one stays usable until the new fit succeeds)."""
        final = clone(base).set_params(alpha=alpha)
        if warm and self.warm_start and hasattr(self, "best_estimator_"):
            params = {**final.get_params(), "warm_start": True}
            final = copy.deepcopy(self.best_estimator_).set_params(**params)
        return final.fit(X, y, sample_weight=sw)

    @property
    def feature_importances_(self):
        """The refit estimator's ``feature_importances_`` (column norms of [B; D] on the
        standardised features)."""
        check_is_fitted(self)
        return self.best_estimator_.feature_importances_

    def _checked(self, X):
        """``X`` as given, for the refit estimator, which checks it (its shape, values and
        feature names: those of this fit, set on it by :meth:`_fit_cv`) the way its own fit
        saw the data; checked here as well, an array would be a second copy and a DataFrame
        would reach it without its names (a warning at every call)."""
        check_is_fitted(self)
        return X

    def predict(self, X):
        """Predictions of the estimator refit at ``alpha_``."""
        X = self._checked(X)
        return self.best_estimator_.predict(X)


_DOC_CV = r"""
    Parameters
    ----------
    (every parameter of the base estimator)
        As in :class:`~lifted_idl.{base}`; ``alpha`` is ignored (the grid replaces it) and
        ``n_jobs`` is the one below.
    alphas : int or array-like, default=10
        A count: that many strengths on a geometric grid from :func:`alpha_max` down to
        ``alpha_max * eps`` (the weighted one for the adaptive second stage). An array:
        exactly those strengths (fitted largest first; both adaptive stages use them). The
        count trades time for resolution: every strength costs one fit per fold.
    eps : float in (0, 1), default=1e-3
        Length of the grid, ``alpha_min / alpha_max``.
    cv : int, cross-validation generator or iterable, default=5
        As in :func:`sklearn.model_selection.check_cv`: an int is that many folds of
        ``KFold`` ({strat}).
    selection : {{"min", "relaxed", "adaptive"}}, default="adaptive"
        With ``penalty="group"``, how ``alpha_`` is chosen: ``"min"``, the lowest mean
        validation loss of the penalised fits; ``"relaxed"`` (Meinshausen 2007), the lowest
        mean validation loss of each fold's path point **refit on its support without the
        group penalty** (the ridge on C kept: ``c_ridge``, or that point's alpha), so a
        strength is judged by the features it selects rather than by how much it shrinks
        them; ``"adaptive"``, the adaptive group lasso (Wang & Leng 2008) in two stages:
        the ``"min"`` choice, refit on all the data, gives column norms :math:`s_j`; the
        second stage cross-validates again, along its own grid from :func:`alpha_max` with
        the weights, the base estimator with ``group_weights`` :math:`w_j = \max_k s_k /
        s_j` (inf where :math:`s_j = 0`: a feature the first stage dropped stays out), and
        chooses by the relaxed rule (the refits of its path points on their kept
        features). Features the first fit barely uses are penalised the most, so the second
        stage drops them at strengths that still keep the strong ones (it costs a second
        path and its refits). With BCD, ``"min"`` keeps many
        irrelevant features and the relaxed rule drops weak relevant ones
        (``experiments/README.md``). Ignored by the other penalties.
    n_jobs : int or None, default=None
        Folds fitted in parallel by :class:`joblib.Parallel` (None: 1 unless inside a
        ``joblib.parallel_backend`` context; -1: all cores), so a Dask joblib backend
        distributes them. Every fit itself runs on one thread.

    Attributes
    ----------
    alpha_ : float
        The chosen strength.
    alphas_ : ndarray of shape (n_alphas,)
        The grid, decreasing.
    best_index_ : int
        ``alphas_[best_index_] == alpha_``.
    cv_results_ : dict of ndarrays
        ``"alphas"``; ``"split{{k}}_test_score"``, ``"mean_test_score"``,
        ``"std_test_score"`` (over the grid): the **negative validation loss** of the
        penalised fits ({loss}; greater is better); with ``selection="relaxed"`` and
        ``penalty="group"`` the same keys with ``relaxed_test_score`` for the refits (which
        then choose ``alpha_``); ``"mean_n_selected"`` (group penalty): mean number of
        features in use, and ``"feature_importances"``: the folds' ``feature_importances_``,
        (n_folds, n_alphas, n_features), zero where a fit drops a feature; ``"converged"``,
        ``"n_iter"``: (n_folds, n_alphas).
    best_estimator_ : {base}
        The base estimator refit on all the data at ``alpha_``; ``predict`` and the other
        prediction methods delegate to it.
    model_ : ImplicitModel
        Its model, on the raw features.
    n_iter_ : int
        Its iterations.
    converged_ : bool
    loss_curve_ : list of float
    first_stage_ : dict
        With ``selection="adaptive"`` (group penalty): the first stage's ``alpha_``,
        ``alphas_``, ``cv_results_`` and the ``feature_importances_`` of its refit.
    group_weights_ : ndarray of shape (n_features,)
        With ``selection="adaptive"``: the second stage's ``group_weights``.
    support_ : ndarray of bool, shape (n_features,)
        With ``penalty="group"``: the features the refit model reads
        (``feature_importances_ > 0``).
    feature_importances_ : ndarray of shape (n_features,)
    n_splits_ : int
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Defined when X has string feature names.
"""


class ImplicitRegressorCV(_MultiOutputTags, RegressorMixin, _BaseImplicitCV):
    __doc__ = (
        r"""Implicit-model regressor with the penalty strength chosen by cross-validation.

    Like :class:`sklearn.linear_model.LassoCV`: every fold fits
    :class:`~lifted_idl.ImplicitRegressor` along a decreasing grid of ``alpha`` (every fit
    from the regressor's own initialisation), ``alpha_`` has the best mean validation score, and
    the regressor is refit at ``alpha_`` on all the data.
    """
        + _DOC_CV.format(base="ImplicitRegressor", strat="not shuffled",
                         loss="mean squared error in the units of y")
        + r"""
    Examples
    --------
    >>> from sklearn.datasets import make_regression
    >>> from lifted_idl import ImplicitRegressorCV
    >>> X, y = make_regression(100, 4, noise=5.0, random_state=0)
    >>> reg = ImplicitRegressorCV(n_hidden=5, max_iter=5, alphas=3, cv=3,
    ...                           random_state=0).fit(X, y)
    >>> bool(reg.alpha_ in reg.alphas_)
    True
    """
    )
    _base_class = ImplicitRegressor

    def fit(self, X, y, sample_weight=None, groups=None):
        """Cross-validate ``alpha`` on ``X`` (n_samples, n_features), ``y``; refit at
        ``alpha_``. ``sample_weight`` weights the fits, the validation losses and the grid
        (as in :meth:`ImplicitRegressor.fit`; every fold needs a sample of positive weight
        on both sides). ``groups``: the samples' group labels, for a group-aware ``cv``
        such as :class:`~sklearn.model_selection.GroupKFold`. A fit that raises leaves the
        estimator as it was."""
        self._validate_params()
        X, y, names = _checked_xy(X, y, multi_output=True, y_numeric=True)
        sw, groups = self._weighted(X, sample_weight, groups)
        return self._fit_cv(X, y, names, sample_weight=sw, groups=groups)


class ImplicitClassifierCV(ClassifierMixin, _BaseImplicitCV):
    __doc__ = (
        r"""Implicit-model classifier with the penalty strength chosen by cross-validation.

    Like :class:`sklearn.linear_model.LogisticRegressionCV`: every (stratified) fold fits
    :class:`~lifted_idl.ImplicitClassifier` along a decreasing grid of ``alpha`` (every fit
    from the classifier's own initialisation), ``alpha_`` has the best mean validation score (the
    negative log loss), and the classifier is refit at ``alpha_`` on all the data.
    """
        + _DOC_CV.format(base="ImplicitClassifier", strat="stratified for classifiers",
                         loss="log loss")
        + r"""
    classes_ : ndarray of shape (n_classes,)

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from lifted_idl import ImplicitClassifierCV
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = ImplicitClassifierCV(n_hidden=5, max_iter=5, alphas=3, cv=3,
    ...                            random_state=0).fit(X, y)
    >>> bool(clf.score(X, y) > 0.8)
    True
    """
    )
    _base_class = ImplicitClassifier

    def fit(self, X, y, sample_weight=None, groups=None):
        """Cross-validate ``alpha`` on ``X`` and labels ``y``; refit at ``alpha_``.
        ``sample_weight`` weights the fits, the validation losses and the grid (as in
        :meth:`ImplicitClassifier.fit`; every fold needs a sample of positive weight on both
        sides). ``groups``: the samples' group labels, for a group-aware ``cv`` such as
        :class:`~sklearn.model_selection.GroupKFold`. A fit that raises leaves the estimator
        as it was."""
        self._validate_params()
        X, y, names = _checked_xy(X, y)
        sw, groups = self._weighted(X, sample_weight, groups)
        check_classification_targets(y)
        classes = np.unique(y)
        if classes.shape[0] < 2:
            raise ValueError(
                f"The classifier needs at least 2 classes; got 1 class ({classes[0]!r})")
        return self._fit_cv(X, y, names, classes=classes, sample_weight=sw, groups=groups)

    def decision_function(self, X):
        """The refit classifier's logits (their difference for two classes)."""
        X = self._checked(X)
        return self.best_estimator_.decision_function(X)

    def predict_proba(self, X):
        """The refit classifier's class probabilities."""
        X = self._checked(X)
        return self.best_estimator_.predict_proba(X)

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`."""
        X = self._checked(X)
        return self.best_estimator_.predict_log_proba(X)


for _cls in (ImplicitRegressorCV, ImplicitClassifierCV):
    _cls.__init__ = lambda self, *args, **kwargs: _BaseImplicitCV.__init__(self, *args,
                                                                           **kwargs)
    _cls.__init__.__signature__ = _cv_signature(_cls._base_class, _EXTRA)
    _cls.__init__.__doc__ = f"Parameters: those of {_cls._base_class.__name__}, plus alphas, " \
        "eps, cv, selection, n_jobs (see the class docstring)."
del _cls
