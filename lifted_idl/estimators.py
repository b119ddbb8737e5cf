r"""scikit-learn estimators: :class:`ImplicitRegressor` and :class:`ImplicitClassifier`.

They validate data and parameters, standardise inputs (and regression targets), call one of the
training functions of :mod:`lifted_idl.training`, and fold the standardisation back into the
fitted :class:`~lifted_idl.ImplicitModel`, so ``model_`` acts on the raw features:

.. math:: \hat y = Cx + Du + c, \qquad x = \phi(Ax + Bu + b) \quad [IDL\ (2.1)].

Solvers (theory §8):

``"bcd"``
    block-coordinate descent on the Fenchel-divergence relaxation
    (:func:`lifted_idl.training.bcd.fit_bcd`); for classification started (without a warm
    start, and except for ``penalty="group"`` and ``robust_sigma``) from a few gradient
    epochs on the random-feature model;
``"gradient"``
    projected gradient with implicit differentiation [IDL §6.2]
    (:func:`lifted_idl.training.gradient.fit_gradient`);
``"bcd+gradient"``
    BCD, then gradient fine-tuning from the BCD model.
"""

from __future__ import annotations

import numbers
import warnings
from contextlib import nullcontext

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from .activations import Activation, ReLU, Sigmoid, Tanh, get_activation
from .blocks import CVXPY_SOLVERS
from .exceptions import ConvergenceWarning, _record_convergence
from .losses import SoftmaxCrossEntropy, SquaredLoss
from .model import ImplicitModel
from .penalties import GroupPenalty, NoPenalty, get_penalty

__all__ = ["ImplicitRegressor", "ImplicitClassifier"]

#: learning rates tried by the fine-tuning stage of ``solver="bcd+gradient"``: learning_rate,
#: then 4x shorter steps after each try that ends above the BCD objective
_FINE_TUNE_TRIES = 4
#: MM steps per BCD round: ``_AB_MM_STEPS`` below ``_AB_MM_WIDE_HIDDEN`` states, one from
#: there on, where a round's MM steps cost the most and more rounds of one step pay better
#: (measured in issue 13)
_AB_MM_STEPS = 2
_AB_MM_WIDE_HIDDEN = 64
#: tol=None: the relative decrease per BCD round / per gradient epoch below which each stops;
#: BCD's on up to ``_BCD_TOL_SAMPLES`` training samples (see :func:`_default_bcd_tol`)
_BCD_TOL = 1e-3
_BCD_TOL_SAMPLES = 1000
_GRADIENT_TOL = 1e-4
#: ``warmup_epochs="auto"``: gradient epochs (Adam, ``learning_rate``) from the random-feature
#: start before BCD's rounds, for the cross-entropy: the cost of a few rounds, sparing more
#: rounds than that (benchmarks/README.md, "BCD's warm-up"). For the squared loss only from
#: ``_WARMUP_REGRESSION_SAMPLES`` training rows on: below, the random-feature start's exact
#: least-squares readout is already a good start (friedman1 and the teacher at m <= 4000 took
#: fewer rounds but ended worse); from 8000 rows an epoch is 40 or more minibatch steps and
#: the warm-up ended both faster and better
_BCD_WARMUP_EPOCHS = 10
_WARMUP_REGRESSION_SAMPLES = 8000
#: ``pred_tol="auto"``: BCD's prediction test for classifiers whose rounds start from a trained
#: model (the warm-up's, or the previous fit's): the RMS change of the class probabilities per
#: round below which the fit has settled (benchmarks/README.md, "Stopping BCD")
_BCD_PRED_TOL = 1e-3


def _default_bcd_tol(n_samples: float) -> float:
    r"""BCD's ``tol`` when ``tol=None``: ``_BCD_TOL`` on up to ``_BCD_TOL_SAMPLES`` samples,
    :math:`\mathrm{tol}\sqrt{m_0/m}` on :math:`m` samples beyond.

    The training objective is a mean over the m samples: its standard error, relative to it,
    is :math:`\mathrm{sd}(\ell_s)/(\bar\ell\sqrt m)` (about :math:`1.4/\sqrt m` for Gaussian
    residuals). A relative decrease per round below that resolution is not worth a round on
    small data, but on more data the same decrease is a larger share of what the data can
    tell apart, and the rounds still lower the test error; the tolerance therefore shrinks
    with the statistical resolution, as :math:`1/\sqrt m`, beyond the size at which the
    default was chosen (measured in ``benchmarks/README.md``). ``n_samples``: the training
    samples, or the effective number :math:`(\sum_s w_s)^2/\sum_s w_s^2` with weights."""
    return _BCD_TOL * min(1.0, float(np.sqrt(_BCD_TOL_SAMPLES / max(n_samples, 1.0))))


def _fold_standardisation(model: ImplicitModel, mean_u, scale_u, mean_y=None, scale_y=None):
    r"""Model on raw inputs/targets from one trained on :math:`(u - \bar u)/s_u`, :math:`(y -
    \bar y)/s_y`: :math:`B' = B\,\mathrm{diag}(1/s_u)`, :math:`b' = b - B'\bar u`, likewise D, c;
    then C, D, c scaled by :math:`s_y` and :math:`\bar y` added to c."""
    z = mean_u / scale_u  # O(1): the raw features' means in standardised units
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        B = model.B / scale_u
        b = (np.zeros(model.n_states) if model.b is None else model.b) - model.B @ z
        c = (np.zeros(model.n_outputs) if model.c is None else model.c) - model.D @ z
        C = model.C
        if scale_y is None:
            D = model.D / scale_u
        else:  # the ratio first: s_y / s_u is O(1) when both are tiny or both huge
            D = model.D * (scale_y[:, None] / scale_u)
            C = C * scale_y[:, None]
            c = c * scale_y + mean_y
    if not all(np.all(np.isfinite(M)) for M in (B, D, b, c, C)):
        raise ValueError(
            "the model on raw features overflows float64: its weights scale like "
            f"(target scale {_span(scale_y)}) / (feature scale {_span(scale_u)}); rescale "
            "the features or the targets (e.g. to unit size) before fitting"
        )
    return ImplicitModel(model.A, B, C, D, b=b, c=c, activation=model.activation,
                         factors=model.factors)


def _scale_columns(model: ImplicitModel, s) -> ImplicitModel:
    """The model with the columns of B and D multiplied by ``s`` (shape (p,))."""
    return ImplicitModel(model.A, model.B * s, model.C, model.D * s, b=model.b, c=model.c,
                         activation=model.activation, factors=model.factors)


def _centre_logits(model: ImplicitModel) -> ImplicitModel:
    r"""The same classifier with logits that sum to zero over the classes: the class means of
    the rows of C, D and c subtracted.

    The softmax is unchanged by adding one vector to every class's logit, so the
    cross-entropy does not determine that shift; Newton steps leave rounding noise along it
    (amplified by the near-singular Hessian). Centring picks one representative, so that
    ``decision_function`` does not depend on that noise (e.g. on the order of the samples,
    or on weights versus repeated samples)."""
    C = model.C - model.C.mean(axis=0)
    D = model.D - model.D.mean(axis=0)
    c = None if model.c is None else model.c - model.c.mean()
    return ImplicitModel(model.A, model.B, C, D, b=model.b, c=c, activation=model.activation,
                         factors=model.factors)


def _span(v) -> str:
    if v is None:
        return "1"
    v = np.asarray(v)
    return f"{v.min():.3g}" if v.min() == v.max() else f"{v.min():.3g}..{v.max():.3g}"


def _standardise(X, what="X", sample_weight=None):
    r"""Column means and scales of ``X`` and the standardised ``(X - mean) / scale``.

    Computed on ``X / max|X|`` (per column), so that neither the squares of the standard
    deviation overflow (features of size 1e155 and beyond) nor underflow (1e-160 and below):
    the result is the same, to rounding, for ``t X`` with any ``t`` in 1e-300..1e300. A
    column whose spread is below 1e-12 of its size is constant: scale ``max|X|``, so its
    standardised values are (near) 0. With ``sample_weight`` (positive) the mean and the
    standard deviation are weighted, :math:`\bar x = \sum_s w_sx_s/\sum_s w_s` and
    :math:`s^2 = \sum_s w_s(x_s - \bar x)^2/\sum_s w_s`: those of the data with sample s
    repeated :math:`w_s` times (as ``StandardScaler.fit(X, sample_weight=w)``).

    Returns
    -------
    mean, scale : ndarray of shape (n_columns,)
    Xs : ndarray, the standardised ``X``
    const : ndarray of bool, the constant columns

    Raises
    ------
    ValueError
        When a column's spread is below the smallest normal float64 (it would lose its
        precision when standardised).
    """
    X = np.asarray(X, dtype=np.float64)
    size = np.max(np.abs(X), axis=0)
    size[size == 0] = 1.0
    Xn = X / size
    if sample_weight is None:
        mean_n = Xn.mean(axis=0)
        std_n = Xn.std(axis=0)
    else:
        w = np.asarray(sample_weight, dtype=np.float64) / float(np.sum(sample_weight))
        mean_n = w @ Xn
        std_n = np.sqrt(w @ (Xn - mean_n) ** 2)
    const = std_n < 1e-12
    std_n[const] = 1.0
    scale = size * std_n
    tiny = scale < np.finfo(np.float64).tiny
    if np.any(tiny):
        j = int(np.flatnonzero(tiny)[0])
        raise ValueError(
            f"{what} column {j} varies by {scale[j]:.3g}, below the smallest normal float64 "
            f"({np.finfo(np.float64).tiny:.3g}); rescale it before fitting"
        )
    return size * mean_n, scale, (Xn - mean_n) / std_n, const


class _DenseTags:
    """The scikit-learn tags of every estimator of the package: dense input only, and
    deterministic given ``random_state``."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        tags.non_deterministic = False
        return tags


class _MultiOutputTags:
    """The regressors' tags: one or several targets."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags


class _BaseImplicit(_DenseTags, BaseEstimator):
    _parameter_constraints: dict = {
        "n_hidden": [Interval(numbers.Integral, 1, None, closed="left")],
        "kappa": [Interval(numbers.Real, 0, 1, closed="neither")],
        "activation": [StrOptions({"relu", "tanh", "leaky_relu"}), Activation],
        "solver": [StrOptions({"bcd", "gradient", "bcd+gradient"})],
        "penalty": [StrOptions({"l2", "l1", "group", "none"})],
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "group_ord": [Options(numbers.Real, {2, np.inf}), StrOptions({"inf"})],
        "c_ridge": [None, Interval(numbers.Real, 0, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "gradient_max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "learning_rate": [Interval(numbers.Real, 0, None, closed="neither")],
        "batch_size": [StrOptions({"auto"}), Interval(numbers.Integral, 1, None, closed="left")],
        "tol": [None, Interval(numbers.Real, 0, None, closed="left")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "lam": [Interval(numbers.Real, 0, None, closed="neither")],
        "lam_min": [Interval(numbers.Real, 0, None, closed="neither")],
        "mu": [Interval(numbers.Real, 0, None, closed="neither")],
        "block_solver": [StrOptions({"fast", "cvxpy", *CVXPY_SOLVERS})],
        "ab_step": [StrOptions({"auto", "exact", "mm"})],
        "random_state": ["random_state"],
        "warm_start": ["boolean"],
        "verbose": ["verbose"],
        "n_jobs": [None, Interval(numbers.Integral, None, -1, closed="right"),
                   Interval(numbers.Integral, 1, None, closed="left")],
        "robust": [None, StrOptions({"lipschitz", "sensitivity"})],
        "robust_alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "robust_smoothing": [Interval(numbers.Real, 0, None, closed="left")],
        "constraint": [StrOptions({"inf_norm", "mu_inf"})],
        "robust_sigma": [None, Interval(numbers.Real, 0, None, closed="left")],
        "fit_bias": ["boolean", StrOptions({"auto"})],
        "group_weights": [None, "array-like"],
        "warmup_epochs": [StrOptions({"auto"}), Interval(numbers.Integral, 0, None,
                                                          closed="left")],
        "pred_tol": [None, StrOptions({"auto"}), Interval(numbers.Real, 0, None,
                                                          closed="left")],
    }

    def __init__(self, n_hidden=20, *, kappa=0.5, activation="relu", solver="bcd",
                 penalty="l2", alpha=1e-3, group_ord=2, c_ridge=None, max_iter=300,
                 gradient_max_iter=300,
                 learning_rate=1e-2, batch_size="auto", tol=None, n_iter_no_change=5,
                 early_stopping=False, validation_fraction=0.1, lam=10.0, lam_min=3.0, mu=1e-3,
                 block_solver="fast", ab_step="auto", random_state=None, warm_start=False,
                 verbose=0,
                 n_jobs=None, robust=None, robust_alpha=0.0, robust_smoothing=0.1,
                 constraint="inf_norm", robust_sigma=None, fit_bias="auto",
                 group_weights=None, warmup_epochs="auto", pred_tol="auto"):
        self.n_hidden = n_hidden
        self.kappa = kappa
        self.activation = activation
        self.solver = solver
        self.penalty = penalty
        self.alpha = alpha
        self.group_ord = group_ord
        self.c_ridge = c_ridge
        self.max_iter = max_iter
        self.gradient_max_iter = gradient_max_iter
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.lam = lam
        self.lam_min = lam_min
        self.mu = mu
        self.block_solver = block_solver
        self.ab_step = ab_step
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.n_jobs = n_jobs
        self.robust = robust
        self.robust_alpha = robust_alpha
        self.robust_smoothing = robust_smoothing
        self.constraint = constraint
        self.robust_sigma = robust_sigma
        self.fit_bias = fit_bias
        self.group_weights = group_weights
        self.warmup_epochs = warmup_epochs
        self.pred_tol = pred_tol

    # ------------------------------------------------------------------------------------------
    def _check_robust_options(self):
        gradient_stage = self.solver in ("gradient", "bcd+gradient")
        if self.solver != "gradient" and not isinstance(get_activation(self.activation),
                                                        (ReLU, Tanh, Sigmoid)):
            raise ValueError(
                f"solver={self.solver!r} trains ReLU, tanh and sigmoid models (its P block "
                f"needs their Fenchel divergences, theory §8); activation="
                f"{self.activation!r} needs solver='gradient'"
            )
        if self.robust is not None and not gradient_stage:
            raise ValueError(
                f"robust={self.robust!r} is a penalty of the gradient solver; use "
                f"solver='gradient' or 'bcd+gradient' (got solver={self.solver!r})"
            )
        if self.constraint == "mu_inf" and not gradient_stage:
            raise ValueError(
                "constraint='mu_inf' is enforced by the gradient solver (BCD keeps "
                "||A||_inf <= kappa, a subset); use solver='gradient' or 'bcd+gradient' "
                f"(got solver={self.solver!r})"
            )
        if self.robust_sigma is not None and self.solver == "gradient":
            raise ValueError(
                "robust_sigma selects the robust-counterpart (A,B) step of BCD; use "
                "solver='bcd' or 'bcd+gradient' (got solver='gradient')"
            )
        if (self.robust_sigma is not None and self.warmup_epochs != "auto"
                and self.warmup_epochs > 0):
            raise ValueError("warmup_epochs > 0 cannot be combined with robust_sigma (the "
                             "warm-up's gradient epochs are not robust); use 0 or 'auto'")

    def _model_penalty(self, scale_u):
        """The robustness penalty on the raw-feature model, or None (theory §7, [IDL (4.7)])."""
        if self.robust is None or self.robust_alpha == 0:
            return None
        from .robustness.penalties import (
            InputScaledPenalty,
            LipschitzSurrogatePenalty,
            SensitivityPenalty,
        )

        if self.robust == "lipschitz":
            measure = "mu_inf" if self.constraint == "mu_inf" else "inf_norm"
            pen = LipschitzSurrogatePenalty(self.robust_alpha, measure=measure,
                                            smoothing=self.robust_smoothing)
        else:
            pen = SensitivityPenalty(self.robust_alpha)
        return InputScaledPenalty(pen, scale_u)

    def _n_threads(self) -> int:
        """``n_jobs`` resolved once, as joblib does: None is 1 (or the active
        ``joblib.parallel_config``'s value), -1 all cores, -2 all but one, and so on."""
        import joblib
        from sklearn.utils._param_validation import InvalidParameterError

        if self.n_jobs is not None and not isinstance(self.n_jobs, bool) and self.n_jobs == 0:
            raise InvalidParameterError(
                f"The 'n_jobs' parameter of {type(self).__name__} must be None or a non-zero "
                "int (-1: all cores, -2: all but one, ...). Got 0 instead."
            )
        return max(int(joblib.effective_n_jobs(self.n_jobs)), 1)

    def _fit(self, X, Y, loss, stratify=None, scale_u=None, sample_weight=None, classes=None):
        """Train on standardised data; returns (model on standardised data, record).

        Reads the estimator's parameters (and its previous model for ``warm_start``) and
        changes nothing on it: :meth:`_commit` stores the result. The stages: BCD
        (:meth:`_fit_bcd_stage`), gradient training or fine-tuning
        (:meth:`_fit_gradient_stage`), as ``solver`` says. ``sample_weight``: positive
        weights (see :meth:`_sample_weight`) or None; ``classes``: a classifier's classes
        (a warm start needs the previous fit's)."""
        from threadpoolctl import threadpool_limits

        self._check_robust_options()
        n_threads = self._n_threads()
        seed = self._fit_seed()
        act = get_activation(self.activation)
        pen, group = self._penalties()
        c_ridge = 0.0
        if group is not None:
            c_ridge = float(self.alpha if self.c_ridge is None else self.c_ridge)
        init = self._warm_start_model(X, Y, act, classes)
        mult = self._column_multipliers(X.shape[1])
        if mult is not None:  # the weighted group penalty as a rescaling of the columns
            X = X * mult
            if init is not None:  # the previous model on the weighted features
                init = _scale_columns(init, np.divide(1.0, mult, out=np.zeros_like(mult),
                                                      where=mult > 0))
        record = {"loss_curve": [], "n_iter": 0, "converged": True}
        X, Y, sw, validation = self._validation_split(X, Y, seed, stratify, sample_weight)
        # convergence problems are warned as they happen (through the user's filters) and
        # noted for this fit alone, in this thread (_record_convergence)
        with threadpool_limits(n_threads), _record_convergence() as notes:
            model = init
            if self.solver in ("bcd", "bcd+gradient"):
                epochs = 0 if init is not None else self._warmup_epochs(loss, X.shape[0])
                if epochs > 0:
                    init = self._fit_gradient_stage(X, Y, loss, act, pen, group, c_ridge, None,
                                                    seed, scale_u, record, sw, warmup=epochs)
                model = self._fit_bcd_stage(X, Y, loss, act, pen, group, c_ridge, init,
                                            validation, seed, n_threads, scale_u, record, sw,
                                            pred_tol=self._pred_tol(loss, init is not None))
            if self.solver in ("gradient", "bcd+gradient"):
                model = self._fit_gradient_stage(X, Y, loss, act, pen, group, c_ridge, model,
                                                 seed, scale_u, record, sw)
        if notes:
            record["converged"] = False
        if mult is not None:
            model = _scale_columns(model, mult)
        return model, record

    def _warmup_epochs(self, loss, n_samples) -> int:
        """``warmup_epochs`` resolved: ``"auto"`` is ``_BCD_WARMUP_EPOCHS`` for the cross-entropy
        ``loss`` (classification) and for the squared loss from ``_WARMUP_REGRESSION_SAMPLES``
        training rows (``n_samples``) on; 0 for smaller regression problems, for the group
        penalty (its BCD path, which ranks the features, starts from random features) and for
        ``robust_sigma`` (whose (A, B, b) step is robust while the gradient epochs are not; an
        explicit count raises there, in :meth:`_check_robust_options`)."""
        if self.warmup_epochs != "auto":
            return int(self.warmup_epochs)
        auto = ((isinstance(loss, SoftmaxCrossEntropy)
                 or n_samples >= _WARMUP_REGRESSION_SAMPLES)
                and self.penalty != "group" and self.robust_sigma is None)
        return _BCD_WARMUP_EPOCHS if auto else 0

    def _pred_tol(self, loss, trained_start) -> float | None:
        """``pred_tol`` resolved: ``"auto"`` is ``_BCD_PRED_TOL`` for the cross-entropy ``loss``
        (classification) when BCD's rounds start from a trained model (``trained_start``: the
        warm-up's or, with ``warm_start``, the previous fit's), None otherwise."""
        if self.pred_tol != "auto":
            return None if self.pred_tol is None else float(self.pred_tol)
        return _BCD_PRED_TOL if trained_start and isinstance(loss, SoftmaxCrossEntropy) else None

    def _fit_bias(self) -> bool:
        """``fit_bias`` resolved: ``"auto"`` is False for the group penalty with a BCD stage,
        True otherwise."""
        if self.fit_bias == "auto":
            return not (self.penalty == "group" and self.solver in ("bcd", "bcd+gradient"))
        return bool(self.fit_bias)

    def _column_multipliers(self, n_features):
        r"""``1 / group_weights`` (0 where a weight is inf), or None without weights.

        The weighted group penalty :math:`\alpha\sum_j w_j\|[B; D]e_j\|_r` on the
        standardised features u is the plain one on the features :math:`\tilde u_j =
        u_j / w_j`: a model :math:`(\tilde B, \tilde D)` on :math:`\tilde u` is
        :math:`(B, D) = (\tilde B, \tilde D)\,\mathrm{diag}(1/w)` on u, and
        :math:`\|\tilde B e_j\| = w_j\|B e_j\|`. A weight inf makes the feature's column 0,
        so its weights stay 0."""
        if self.group_weights is None:
            return None
        if self.penalty != "group":
            raise ValueError(f"group_weights weights the group penalty; got "
                             f"penalty={self.penalty!r} (use penalty='group')")
        if self.robust is not None or self.robust_sigma is not None:
            raise ValueError("group_weights cannot be combined with robust or robust_sigma "
                             "(their penalties are stated on the unweighted features)")
        w = np.asarray(self.group_weights, dtype=np.float64)
        if w.shape != (n_features,) or np.any(np.isnan(w)) or np.any(w <= 0):
            raise ValueError(f"group_weights must be {n_features} positive values (inf "
                             f"allowed), one per feature; got {self.group_weights!r}")
        return 1.0 / w

    def _warm_start_model(self, X, Y, act, classes=None):
        """The previous model on standardised data when ``warm_start`` can use it, else None:
        the same number of states, features and outputs, the activation ``act``, and for a
        classifier the same ``classes`` (a relabelled target would start from the output
        rows of other classes). Without ``fit_bias`` its state bias is set to 0 (the solvers
        keep it where it starts)."""
        if not (self.warm_start and hasattr(self, "_scaled_model")):
            return None
        init = self._scaled_model
        if (init.n_states != self.n_hidden or init.n_features != X.shape[1]
                or init.n_outputs != Y.shape[1] or init.activation != act):
            return None
        if classes is not None:
            old = getattr(self, "classes_", None)
            if old is None or not np.array_equal(old, classes):  # shapes included
                return None
        if not self._fit_bias() and np.any(init.b != 0):
            init = init.replace(b=np.zeros_like(init.b))
        return init

    def _validation_split(self, X, Y, seed, stratify, sample_weight=None):
        """``(X, Y, sample_weight, None)``, or with ``early_stopping`` the training part and
        ``(Xv, Yv)`` (``(Xv, Yv, wv)`` with weights: the validation loss is weighted too).

        The split draws samples, not weight units: a sample of weight 2 falls on one side,
        while its two copies in repeated data may fall on both, so with ``early_stopping``
        weights and repeats give different (equally valid) splits."""
        if not self.early_stopping:
            return X, Y, sample_weight, None
        from sklearn.model_selection import train_test_split

        if sample_weight is None:
            X, Xv, Y, Yv = train_test_split(X, Y, test_size=self.validation_fraction,
                                            random_state=seed, stratify=stratify)
            w, validation = None, (Xv, Yv)
        else:
            X, Xv, Y, Yv, w, wv = train_test_split(
                X, Y, sample_weight, test_size=self.validation_fraction, random_state=seed,
                stratify=stratify)
            validation = (Xv, Yv, wv)
        if X.shape[0] < 2 or Xv.shape[0] < 1:
            raise ValueError(
                f"early_stopping with validation_fraction={self.validation_fraction} "
                f"leaves {X.shape[0]} training and {Xv.shape[0]} validation samples"
            )
        return X, Y, w, validation

    def _ab_mm(self):
        """Whether BCD's (A, B, b) step is the inexact majorize–minimize step."""
        return self.ab_step in ("auto", "mm")

    def _bcd_tol(self, n_samples, sample_weight=None) -> float:
        """``tol``, or for ``tol=None`` :func:`_default_bcd_tol` of the (effective) number of
        training samples."""
        if self.tol is not None:
            return self.tol
        if sample_weight is not None:
            w = np.asarray(sample_weight, dtype=np.float64)
            n_samples = float(w.sum() ** 2 / (w @ w))
        return _default_bcd_tol(n_samples)

    def _fit_bcd_stage(self, X, Y, loss, act, pen, group, c_ridge, init, validation, seed,
                       n_threads, scale_u, record, sample_weight=None, pred_tol=None):
        """The BCD stage (:func:`~lifted_idl.training.bcd.fit_bcd`); updates ``record``.
        ``pred_tol``: the prediction test's tolerance (:meth:`_pred_tol`) or None."""
        from .training.bcd import fit_bcd

        model, hist = fit_bcd(
            X, Y, loss, n_hidden=self.n_hidden, kappa=self.kappa, activation=act,
            pen_ab=pen, pen_cd=pen, group=group, c_ridge=c_ridge,
            init_model=init, lam=self.lam, lam_min=self.lam_min, mu=self.mu,
            max_iter=self.max_iter, tol=self._bcd_tol(X.shape[0], sample_weight),
            n_iter_no_change=self.n_iter_no_change, pred_tol=pred_tol,
            block_solver=self.block_solver, ab_method="mm" if self._ab_mm() else "fast",
            ab_max_iter=_AB_MM_STEPS if self.n_hidden < _AB_MM_WIDE_HIDDEN else 1,
            record_relaxed=False,
            validation=validation, random_state=seed, verbose=self.verbose,
            n_jobs=n_threads,
            robust_sigma=(None if self.robust_sigma is None
                          else self.robust_sigma / scale_u),
            sample_weight=sample_weight, fit_bias=self._fit_bias())
        record["loss_curve"] += list(hist.train_loss)
        record["n_iter"] += hist.n_iter
        record["converged"] &= hist.converged
        record["bcd_history"] = hist
        return model

    def _fit_gradient_stage(self, X, Y, loss, act, pen, group, c_ridge, model, seed, scale_u,
                            record, sample_weight=None, warmup=0):
        """Gradient training from ``model`` (random features when None), or the fine-tuning
        of a BCD model (``solver="bcd+gradient"``); updates ``record``. ``warmup`` > 0: that
        many epochs before a BCD stage (:meth:`_warmup_epochs`) instead, which end at
        their epoch count by design (no ConvergenceWarning for that) and are part of the BCD
        stage's start (not in ``record``)."""
        from .training.gradient import fit_gradient

        if model is None:
            model = self._random_feature_model(X, Y, loss, act, pen, seed, group, c_ridge,
                                               sample_weight)
        bs = None if self.batch_size == "auto" and X.shape[0] <= 1000 else (
            200 if self.batch_size == "auto" else int(self.batch_size))
        fine_tune = self.solver == "bcd+gradient" and not warmup
        lr = self.learning_rate
        for _ in range(_FINE_TUNE_TRIES if fine_tune else 1):
            # the warm-up's notes stay out of the fit's: it is a start, and its epoch cap is
            # reached by design
            with warnings.catch_warnings(), (_record_convergence() if warmup else nullcontext()):
                if warmup:
                    warnings.filterwarnings("ignore", message="fit_gradient stopped at max_iter",
                                            category=ConvergenceWarning)
                tuned, ghist = fit_gradient(
                    model, X, Y, loss, kappa=self.kappa, pen_ab=pen, pen_cd=pen,
                    max_iter=warmup if warmup else self.gradient_max_iter,
                    batch_size=bs,
                    learning_rate=lr, tol=_GRADIENT_TOL if self.tol is None else self.tol,
                    random_state=seed,
                    verbose=self.verbose, model_penalty=self._model_penalty(scale_u),
                    constraint=self.constraint, group=group, c_ridge=c_ridge,
                    sample_weight=sample_weight, train_bias=self._fit_bias())
            if warmup:  # part of the BCD stage's start: n_iter_ <= max_iter stays true
                return tuned
            record["n_iter"] += int(ghist["n_iter"])
            # fit_gradient returns its last iterate; a fine-tuning stage that ends above its
            # starting objective (steps too long for an already fitted model: Adam's first
            # steps move every weight by about the learning rate) is discarded and retried
            # from the BCD model with 4x shorter steps, rather than allowed to undo the BCD
            # stage
            if not fine_tune or ghist["loss"][-1] <= ghist["loss_initial"]:
                model = tuned
                record["loss_curve"] += list(ghist["loss"])
                break
            if self.verbose:
                print(f"[bcd+gradient] learning_rate={lr:g} ended above the BCD "
                      f"objective ({ghist['loss'][-1]:.6g} > "
                      f"{ghist['loss_initial']:.6g}); retrying with {lr / 4:g}")
            lr /= 4
        record["converged"] &= bool(ghist["converged"])
        return model

    def _penalties(self):
        r"""The penalty on ``[A B]`` and on ``[C D]``, and the group penalty (or None).

        With ``penalty="group"``: no penalty on the blocks, and
        :math:`\alpha\sum_j\|[B; D]e_j\|_r` [IDL (5.1)], :math:`r` = ``group_ord``, on the
        weights of the standardised features (plus the ridge ``c_ridge`` on C, added by the
        solvers)."""
        if self.penalty == "group":
            ord_ = np.inf if self.group_ord == "inf" else self.group_ord
            return NoPenalty(), GroupPenalty(self.alpha, ord_)
        return get_penalty(self.penalty, self.alpha), None

    def _fit_seed(self):
        """The integer seed of a fit (its initialisation and its validation split), drawn from
        ``random_state``: the same for every fit with an integer ``random_state``."""
        from sklearn.utils import check_random_state

        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

    def _random_feature_model(self, X, Y, loss, act, pen, seed, group=None, c_ridge=0.0,
                              sample_weight=None):
        from .training.bcd import initial_model

        return initial_model(X, Y, loss, n_hidden=self.n_hidden, kappa=self.kappa,
                             activation=act, pen_cd=pen, group=group, c_ridge=c_ridge,
                             random_state=seed, sample_weight=sample_weight,
                             fit_bias=self._fit_bias())

    @staticmethod
    def _sample_weight(sample_weight, X):
        """Validated weights: ``(keep, w)`` with ``keep`` the rows of positive weight (None:
        all) and ``w`` their weights, or None when they are all equal (the unweighted fit).

        ``_check_sample_weight`` raises on a wrong length, NaN/inf, negative weights and all
        weights zero. Samples of weight 0 are dropped before anything else (standardisation,
        validation split, classes), which makes "weight 0" and "sample removed" the same fit
        exactly."""
        if sample_weight is None:
            return None, None
        w = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        if not np.all(np.isfinite(w)):
            raise ValueError("sample_weight must be finite; got NaN or inf")
        keep = np.flatnonzero(w > 0)
        if keep.size == 0:  # not every supported scikit-learn rejects all-zero weights
            raise ValueError("Sample weights must contain at least one non-zero number.")
        if keep.size == w.size:
            keep = None
        else:
            w = w[keep]
        if np.all(w == w[0]):
            return keep, None
        top = float(w.max())
        if not 1e-100 < top < 1e100:  # only the ratios matter: keep their sums finite
            w = w / top
        return keep, w

    #: every attribute a fit sets; :meth:`_commit` replaces them all in one step
    _FITTED = ("model_", "_scaled_model", "_mean_u", "_scale_u", "loss_curve_", "n_iter_",
               "converged_", "bcd_history_", "n_features_in_", "feature_names_in_",
               "classes_", "_y_ndim")

    def _validate_fit_data(self, X, y, **kwargs):
        """``validate_data(self, X, y, reset=True)`` without changing the estimator.

        Returns ``X, y`` and the ``n_features_in_`` / ``feature_names_in_`` a successful fit
        will store; the estimator keeps its previous values meanwhile (also when validation
        raises or is interrupted)."""
        keys = ("n_features_in_", "feature_names_in_")
        saved = {k: self.__dict__[k] for k in keys if k in self.__dict__}
        try:
            X, y = validate_data(self, X, y, **kwargs)
            seen = {k: self.__dict__[k] for k in keys if k in self.__dict__}
        finally:
            for k in keys:
                self.__dict__.pop(k, None)
            self.__dict__.update(saved)
        return X, y, seen

    def _fitted_state(self, model_scaled, record, mean_u, scale_u, mean_y=None, scale_y=None):
        """The fitted attributes of a finished fit (nothing is stored yet)."""
        state = {
            "_scaled_model": model_scaled,
            "model_": _fold_standardisation(model_scaled, mean_u, scale_u, mean_y, scale_y),
            "_mean_u": mean_u,
            "_scale_u": scale_u,
            "loss_curve_": list(record["loss_curve"]),
            "n_iter_": max(int(record["n_iter"]), 1),
            "converged_": bool(record["converged"]),
        }
        if "bcd_history" in record:
            state["bcd_history_"] = record["bcd_history"]
        return state

    def _commit(self, state):
        """Replace every fitted attribute by those of ``state`` in one assignment, so that a
        fit that raises or is interrupted before this line leaves the estimator as it was
        (unfitted, or with its previous model, input width and output shape)."""
        new = {k: v for k, v in self.__dict__.items() if k not in self._FITTED}
        new.update(state)
        self.__dict__ = new

    def __sklearn_is_fitted__(self):
        return "model_" in self.__dict__

    def _check_min_samples(self, X):
        if X.shape[0] < 2:
            raise ValueError(
                f"Found {X.shape[0]} sample(s) (n_samples = {X.shape[0]}); "
                f"{type(self).__name__} needs at least 2 samples."
            )

    @property
    def feature_importances_(self):
        r"""Column norms :math:`\|[B; D] e_j\|_2` of the model fitted on standardised inputs
        (and, for the regressor, standardised targets): the weights the penalty acts on,
        unchanged by a change of units of a feature. ``model_`` (raw features) has the
        columns :math:`B e_j / s_j` and :math:`D e_j\, s_y / s_j`, so its zero columns are
        the same; a ``penalty="group"`` fit by the gradient solver makes them exactly zero
        for the features it does not use."""
        check_is_fitted(self)
        M = self._scaled_model
        return np.linalg.norm(np.vstack([M.B, M.D]), axis=0)

    #: cap in MiB on the working set of one prediction chunk (see ``_decision``)
    _PREDICT_CHUNK_MIB = 32

    def _decision(self, X, post=None):
        """``model_``'s outputs for ``X`` (``post`` applied), computed chunk by chunk.

        The chunk follows scikit-learn's ``working_memory`` the way
        ``sklearn.metrics.pairwise_distances_chunked`` does: ``get_chunk_n_rows`` of the
        solver's per-row working set (:meth:`ImplicitModel.row_bytes
        <lifted_idl.ImplicitModel.row_bytes>`) under a budget of
        ``min(working_memory, _PREDICT_CHUNK_MIB)`` MiB. scikit-learn's default
        ``working_memory`` (1024 MiB) would let a chunk hold a gigabyte, while the fixed-point
        solve already runs at full speed with chunks of a few thousand rows (a few MiB; see
        ``benchmarks/README.md``), so the budget is capped: predictions on any number of rows
        then add at most about 32 MiB besides their output. A smaller ``working_memory``
        (``sklearn.config_context``) lowers it further. The input is validated without a
        dtype conversion and each chunk is cast to floating point in turn, so an integer
        input is never copied whole.
        """
        from sklearn import get_config

        # the helper of sklearn.metrics.pairwise_distances_chunked (private since 1.3, where
        # it moved; present in every scikit-learn this package supports)
        from sklearn.utils._chunking import get_chunk_n_rows

        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype="numeric")
        model = self.model_
        dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.dtype(np.float64)
        budget = min(get_config()["working_memory"], self._PREDICT_CHUNK_MIB)
        rows = get_chunk_n_rows(model.row_bytes(dtype), max_n_rows=X.shape[0],
                                working_memory=budget)
        return model._predict(X, batch_size=rows, post=post)


_DOC_PARAMS = r"""
    Parameters
    ----------
    n_hidden : int, default=20
        State dimension n.
    kappa : float in (0, 1), default=0.5
        Well-posedness margin: training keeps :math:`\|A\|_\infty \le \kappa` (theory §2).
        It also bounds the model's capacity (the trained A sits on the bound) and sets the
        Picard contraction rate: the equilibrium needs about
        :math:`\log(\mathrm{tol})/\log\kappa` iterations. Raise it for more feedback
        through A, lower it for cheaper equilibria and a more damped model; the default is
        measured in ``benchmarks/README.md``.
    activation : {"relu", "tanh", "leaky_relu"} or Activation, default="relu"
        The state activation φ. BCD (``solver="bcd"`` and ``"bcd+gradient"``) trains ReLU,
        tanh and sigmoid models; ``"leaky_relu"`` and other activations need
        ``solver="gradient"``.
    solver : {"bcd", "gradient", "bcd+gradient"}, default="bcd"
        Block-coordinate descent on the Fenchel relaxation, projected gradient with implicit
        differentiation, or BCD followed by gradient fine-tuning (theory §8). A BCD stage
        that starts from random features (no warm start) may first train them for a few
        gradient epochs (``warmup_epochs``). The fine-tuning
        stage is kept only if it ends below the BCD model's training objective; otherwise it
        is retried from the BCD model with the learning rate divided by 4, three times at
        most, and the BCD model is kept if none of the tries improves on it.
    penalty : {"l2", "l1", "group", "none"}, default="l2"
        Penalty on ``[A B]`` and on ``[C D]`` (biases are not penalised), or ``"group"``:
        the feature-selection penalty of [IDL (5.1)] (theory §6),

        .. math:: \alpha \sum_{j=1}^p \left\|\begin{pmatrix} B \\ D \end{pmatrix} e_j
                  \right\|_r + \frac{\beta}{2}\|C\|_F^2

        (r is ``group_ord``, :math:`\beta` is ``c_ridge``) on the weights of the
        **standardised** features (the inputs are standardised inside ``fit``), with no other
        penalty on A, B, C, D. The gradient solver applies it by its exact joint prox
        (:func:`lifted_idl.penalties.group_prox`, see
        :func:`~lifted_idl.training.gradient.fit_gradient`), so unused features get exactly
        zero columns, i.e. exactly zero ``feature_importances_``: use ``solver="gradient"``
        or ``"bcd+gradient"`` for feature selection. BCD sees the penalty one block at a time
        with the other block's part fixed, plus a joint (B, D) proximal step
        (:func:`~lifted_idl.training.bcd.fit_bcd`), which sets unused columns exactly to zero
        as well.
    alpha : float, default=1e-3
        Penalty strength (with ``penalty="group"``, the group weight :math:`\alpha`). The
        penalty is added to the *mean* loss on standardised data. The default suits large or
        clean data; small, noisy data sets want more, and no single value serves both
        (``benchmarks/README.md``): choose it by cross-validation, which
        :class:`~lifted_idl.ImplicitRegressorCV` / :class:`~lifted_idl.ImplicitClassifierCV`
        do.
    group_ord : {2, "inf"}, default=2
        The column norm r of ``penalty="group"`` (``np.inf`` is accepted for ``"inf"``);
        ignored by the other penalties.
    c_ridge : float or None, default=None
        With ``penalty="group"``: the ridge :math:`\beta` on C (None: :math:`\beta = \alpha`).
        For a positively homogeneous activation (ReLU) the rescaling
        :math:`(B, b, C) \to (sB, sb, C/s)` keeps the predictions and lowers the group
        penalty as :math:`s \to 0`; the ridge gives the problem a minimiser
        (:meth:`lifted_idl.penalties.GroupPenalty.restrict`). Ignored by the other penalties.
    max_iter : int, default=300
        Maximum number of BCD rounds (see :func:`lifted_idl.training.bcd.fit_bcd`). A fit
        stops earlier when its objective stops improving (``tol``); the cap is for hard
        problems, where more rounds keep improving the fit (``benchmarks/README.md``).
    gradient_max_iter : int, default=300
        Epochs of the gradient solver / fine-tuning stage.
    learning_rate : float, default=1e-2
        Adam step size of the gradient solver (the first one tried by the fine-tuning stage of
        ``"bcd+gradient"``: from a fitted model Adam's first steps, about this long in every
        weight, often overshoot; see ``solver``).
    batch_size : int or "auto", default="auto"
        Minibatch size of the gradient solver ("auto": full batch up to 1000 samples, else 200).
    tol : float or None, default=None
        Relative decrease per round (per epoch for the gradient solver) below which a
        solver stops. None: 1e-4 per gradient epoch, and per BCD round (which, with its
        adaptive extrapolation, moves much further than an epoch) 1e-3 on up to 1000
        training samples and :math:`10^{-3}\sqrt{1000/m}` on m samples beyond: the
        statistical error of the training objective shrinks like :math:`1/\sqrt m`, and on
        more data further rounds keep lowering the test error (``benchmarks/README.md``).
        Raise it for a quicker, rougher fit; lower it to run BCD further. BCD's
        classifiers also stop on ``pred_tol``.
    n_iter_no_change : int, default=5
        BCD: the (accepted) rounds over which the mean relative decrease is compared with
        ``tol``; gradient solver: epochs without an improvement of ``tol`` before stopping.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data (stratified for classifiers) and
        return the round with the lowest validation loss.
    validation_fraction : float, default=0.1
    lam : float, default=10.0
        Initial weight of the Fenchel divergence of the relaxation (adapted during BCD).
    lam_min : float, default=3.0
        Floor of that weight (``lam_min`` of :func:`~lifted_idl.training.bcd.fit_bcd`; the
        smaller of ``lam`` and ``lam_min`` is used). A high floor keeps every BCD round a
        short, damped step, which generalises far better than long steps; see ``fit_bcd``.
    mu : float, default=1e-3
        Weight of the coupling term :math:`\tfrac{\mu}{2m}\|X - P\|^2` of the relaxation
        (see :func:`lifted_idl.training.bcd.fit_bcd` for why it is small).
    block_solver : {"fast", "cvxpy", "CLARABEL", "ECOS", "OSQP", "HIGHS"}, default="fast"
        Solve every BCD block with its fast solver, or with its cvxpy formulation (the
        reference, much slower): ``"cvxpy"`` picks the solver by each problem's class, a
        solver name uses that solver for every block.
    ab_step : {"auto", "exact", "mm"}, default="auto"
        BCD's (A, B, b) step: solved exactly (a row-wise Newton method whose cost grows like
        :math:`n^3` per row), or a few majorize–minimize steps batched over all rows
        (:mod:`lifted_idl.blocks.ab_mm`; inexact, but each step lowers the block objective,
        at a cost that grows like :math:`n^2`). ``"auto"`` takes the MM step at every width
        (the group penalty's (A, B, b) step is always exact): its damped steps are cheaper
        and, at small widths, they also fit better than the exact block minimiser, which can
        stop BCD early at a poor point (``benchmarks/README.md``, ``bench_scaling.py``);
        choose ``"exact"`` for the reference block solve.
    random_state : int, RandomState instance or None, default=None
    warm_start : bool, default=False
        Start from the previous fit's model when its shape (states, features, outputs), its
        activation and, for a classifier, its classes match; otherwise start afresh. Without
        ``fit_bias`` the start's state bias is set to 0.
    verbose : int, default=0
        Print progress of the solvers.
    robust : {None, "lipschitz", "sensitivity"}, default=None
        Robustness penalty of the gradient solver, on the model acting on raw features: the
        convex Lipschitz surrogate :math:`\tfrac12(\|B\|_\infty^2 + \|C\|_\infty^2)/(1 -
        \|A\|_\infty) + \|D\|_\infty` [IDL (4.7)] or :math:`\|S\|_\infty`, S the
        sensitivity matrix (theory §7); see :mod:`lifted_idl.robustness.penalties`.
    robust_alpha : float, default=0.0
        Strength of the robustness penalty.
    robust_smoothing : float, default=0.1
        Log-sum-exp smoothing of the row maxima in the Lipschitz surrogate (still an upper
        bound; 0 gives the exact, non-smooth penalty).
    constraint : {"inf_norm", "mu_inf"}, default="inf_norm"
        Well-posedness constraint of the gradient solver: :math:`\|A\|_\infty \le \kappa`,
        or the NE-MON matrix measure :math:`\mu_\infty(A) \le \kappa` [NEMON] (a larger set).
    robust_sigma : float or None, default=None
        Box uncertainty on the raw features: BCD then takes the robust-counterpart (A, B)
        step (arXiv §5.3, :func:`lifted_idl.blocks.solve_ab_robust`; ReLU only).
    n_jobs : int or None, default=None
        Threads for one fit: the rows of the (A, B, b) block of BCD are solved in ``n_jobs``
        parallel chunks (same answer as sequentially), and the rest of the linear algebra
        uses ``n_jobs`` BLAS threads. Read as joblib reads it (``joblib.effective_n_jobs``):
        None means 1 (unless inside a ``joblib.parallel_config(n_jobs=...)`` block), -1 all
        cores, -2 all but one; 0 is an error. Keep None on few cores: the block solvers do
        many small products, which extra threads slow down.
    fit_bias : bool or "auto", default="auto"
        Fit the state bias b of :math:`x = \phi(Ax + Bu + b)` (the output intercept c is
        always fitted). False keeps b = 0 on the standardised features (``model_`` then has
        :math:`b = -B\bar u` on the raw ones): the model of the sparse teachers of [arXiv
        §7.2]. ``"auto"``: False for ``penalty="group"`` with a BCD stage (``solver="bcd"``
        or ``"bcd+gradient"``), True otherwise. There the unpenalised b grows while the
        penalty shrinks B and leaves ReLU states always on (a worse fit, and column norms
        that do not rank the features; ``experiments/README.md``, ``bcd_diagnosis.py`` and
        ``cv_support.py``); the gradient solver fits better with b.
    group_weights : array-like of shape (n_features,) or None, default=None
        With ``penalty="group"``: one positive weight :math:`w_j` per feature, for the
        weighted penalty :math:`\alpha\sum_j w_j\|[B; D]e_j\|_r` (on the standardised
        features); ``np.inf`` leaves feature j out. None: all 1. The adaptive group lasso
        (Wang & Leng 2008) takes :math:`w_j = 1/\|\hat\beta_j\|^\gamma` from a first fit;
        :class:`~lifted_idl.ImplicitRegressorCV` does so with ``selection="adaptive"``.
        Applied by fitting on the features :math:`u_j/w_j` and scaling the fitted columns
        back, so every solver takes it.
    warmup_epochs : int or "auto", default="auto"
        Gradient epochs (Adam, ``learning_rate``, the ``batch_size`` rule) on the
        random-feature model before the rounds of a BCD stage that does not warm start; the
        rounds start from the model they reach. They are part of the start: not counted in
        ``n_iter_`` nor ``loss_curve_``, and their epoch cap raises no ConvergenceWarning.
        ``"auto"``: 10 for classification (the cross-entropy, whose block steps are iterative:
        a few cheap epochs spare many rounds) and for regression from 8000 training samples
        on (an epoch is then 40 or more minibatch steps); 0 for smaller regression problems
        (the least-squares readout of the random features is already a good start), for
        ``penalty="group"`` (its path ranks the features from the random-feature start) and
        ``robust_sigma`` (the epochs are not robust; an explicit count > 0 raises there).
        Set 0 to start the rounds from the random features; measurements in
        ``benchmarks/README.md`` ("BCD's warm-up").
    pred_tol : float, None or "auto", default="auto"
        BCD also stops when its training predictions have settled: when the class
        probabilities (fitted values of the standardised targets for regression) moved by
        less than ``pred_tol`` per accepted round, root mean square over samples and outputs,
        on average over the last ``n_iter_no_change`` rounds (``bcd_history_.stopped_by`` is
        then ``"predictions"``). On nearly separable classes the cross-entropy keeps falling
        by a steady fraction per round, its weights growing against the penalty, long after
        the probabilities, and the predictions, have stopped changing; ``tol`` alone then runs
        dozens of rounds for nothing. ``"auto"``: 1e-3 for classification when the rounds
        start from a trained model (after the warm-up of ``warmup_epochs``, or from the
        previous fit with ``warm_start``); None, the objective test alone, for regression
        (where the fit keeps improving while its values move little) and from random
        features (whose first rounds move the probabilities slowly while the fit still
        improves). Lower it, or set None, to run the rounds further; measurements in
        ``benchmarks/README.md`` ("Stopping BCD").
"""

_DOC_ATTRS = r"""
    Attributes
    ----------
    model_ : ImplicitModel
        The fitted model, acting on raw features.
    n_iter_ : int
        Iterations run (BCD rounds plus gradient epochs).
    loss_curve_ : list of float
        True training objective after every BCD round / gradient epoch (standardised scale).
    converged_ : bool
        Whether every solver stage met its tolerance (also recorded when warnings are lost in
        parallel workers).
    bcd_history_ : History
        The BCD stage's record (:class:`lifted_idl.training.rounds.History`): the true
        training objective per round, the rounds accepted, the divergence weights, and
        ``stopped_by``, which test ended the rounds. Set by fits with a BCD stage only.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Defined when X has string feature names.
    feature_importances_ : ndarray of shape (n_features,)
        Column norms :math:`\|[B; D]e_j\|_2` of the model on the **standardised** features
        (the weights the penalty acts on), for ``SelectFromModel``: a change of units of a
        feature does not change its importance. ``model_`` (raw features) has the same zero
        columns.
"""


_DOC_CHUNKING = """Computed in chunks of rows, as scikit-learn's
        ``pairwise_distances_chunked`` does: each chunk's working set is at most
        ``min(working_memory, 32)`` MiB (``sklearn.get_config()``; 32 MiB with the default
        1024, since chunks of a few thousand rows already run at full speed), so memory beyond
        the output stays bounded for any number of rows. Lower ``working_memory`` with
        ``sklearn.config_context`` to bound it further."""

_DOC_SAMPLE_WEIGHT = r"""        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights. Every average over the samples (the loss, the divergence and
            coupling terms of BCD's relaxation, the training objective, the validation loss
            of ``early_stopping``) becomes the weighted average
            :math:`\sum_s w_s(\cdot)_s/\sum_s w_s`, and the standardisation uses the
            weighted mean and standard deviation. Samples of weight 0 are dropped, so they
            give exactly the fit without them; integer weights give the fit on the data with
            each sample repeated :math:`w_s` times (to rounding) for ``solver="bcd"`` (with
            ``tol=None`` on up to 1000 effective samples :math:`(\sum_s w_s)^2/\sum_s w_s^2`:
            beyond, the default ``tol`` follows the number of samples, which repeats raise and
            weights do not), and for the gradient solvers with full-batch steps
            (``batch_size="auto"`` up to 1000 samples). Minibatches and the
            ``early_stopping`` split draw samples, not copies, so there the two agree in
            distribution only. Not supported with ``robust_sigma``."""


class ImplicitRegressor(_MultiOutputTags, RegressorMixin, _BaseImplicit):
    __doc__ = (
        r"""Implicit-model regressor with the squared loss, single or multi-output.

    Minimises :math:`\frac{1}{2m}\|Y - \hat Y\|_F^2 + \mathrm{Pen}` over implicit models with
    :math:`\|A\|_\infty \le \kappa` (theory §8).
    """
        + _DOC_PARAMS
        + _DOC_ATTRS
        + r"""
    Examples
    --------
    >>> from sklearn.datasets import make_regression
    >>> from lifted_idl import ImplicitRegressor
    >>> X, y = make_regression(200, 5, noise=1.0, random_state=0)
    >>> reg = ImplicitRegressor(n_hidden=10, random_state=0).fit(X, y)
    >>> reg.score(X, y) > 0.9
    True
    """
    )

    def fit(self, X, y, sample_weight=None):
        r"""Fit the model to data ``X`` (n_samples, n_features) and targets ``y``.

        A fit that raises (or is interrupted) leaves the estimator as it was.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
{sample_weight}
        """
        self._validate_params()
        X, y, seen = self._validate_fit_data(X, y, multi_output=True, y_numeric=True,
                                             dtype=[np.float64, np.float32])
        keep, sw = self._sample_weight(sample_weight, X)
        if keep is not None:
            X, y = X[keep], y[keep]
        self._check_min_samples(X)
        y = np.asarray(y, dtype=np.float64)
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
        mean_u, scale_u, Us, _ = _standardise(X, "X", sw)
        mean_y, scale_y, Ys, const = _standardise(Y, "y", sw)
        if np.any(const):
            raise ValueError(
                "y is constant (zero variance in target column(s) "
                f"{np.flatnonzero(const).tolist()}); a constant target needs no model"
            )
        model, record = self._fit(Us, Ys, SquaredLoss(), scale_u=scale_u, sample_weight=sw)
        state = self._fitted_state(model, record, mean_u, scale_u, mean_y, scale_y)
        state.update(seen, _y_ndim=y.ndim)
        self._commit(state)
        return self

    def predict(self, X):
        """Predictions, shape (n_samples,) or (n_samples, n_outputs); float32 stays float32.

        {chunking}
        """
        return self._decision(X, post=lambda Y: Y[:, 0] if self._y_ndim == 1 else Y)


class ImplicitClassifier(ClassifierMixin, _BaseImplicit):
    __doc__ = (
        r"""Implicit-model classifier with the softmax cross-entropy loss.

    One logit per class (also for two classes): :math:`\frac1m\sum_s \mathrm{logsumexp}(\hat
    y_s) - y_s^\top \hat y_s + \mathrm{Pen}` with :math:`\|A\|_\infty \le \kappa` (theory §8).
    """
        + _DOC_PARAMS
        + _DOC_ATTRS
        + r"""
    classes_ : ndarray of shape (n_classes,)

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from lifted_idl import ImplicitClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = ImplicitClassifier(n_hidden=10, random_state=0).fit(X, y)
    >>> clf.score(X, y) > 0.9
    True
    """
    )

    def fit(self, X, y, sample_weight=None):
        r"""Fit the classifier to data ``X`` and labels ``y`` (any hashable labels).

        A fit that raises (or is interrupted) leaves the estimator as it was.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
{sample_weight}
        """
        self._validate_params()
        X, y, seen = self._validate_fit_data(X, y, dtype=[np.float64, np.float32])
        keep, sw = self._sample_weight(sample_weight, X)
        if keep is not None:
            X, y = X[keep], y[keep]
        check_classification_targets(y)
        if type_of_target(y) not in ("binary", "multiclass"):
            raise ValueError(f"Unknown label type: {type_of_target(y)!r}")
        self._check_min_samples(X)
        lb = LabelBinarizer()
        Y = lb.fit_transform(y)
        classes = lb.classes_
        if classes.shape[0] < 2:
            raise ValueError(
                f"The classifier needs at least 2 classes; got 1 class ({classes[0]!r})"
            )
        if classes.shape[0] == 2:
            Y = np.hstack([1 - Y, Y])
        mean_u, scale_u, Us, _ = _standardise(X, "X", sw)
        model, record = self._fit(Us, Y.astype(np.float64), SoftmaxCrossEntropy(),
                                  stratify=y if self.early_stopping else None, scale_u=scale_u,
                                  sample_weight=sw, classes=classes)
        model = _centre_logits(model)
        state = self._fitted_state(model, record, mean_u, scale_u)
        state.update(seen, classes_=classes)
        self._commit(state)
        return self

    def decision_function(self, X):
        """Logits (n_samples, n_classes); for two classes, the logit difference (n_samples,).

        Computed in chunks of rows, as :meth:`predict`."""
        return self._decision(X, post=lambda Z: Z[:, 1] - Z[:, 0] if Z.shape[1] == 2 else Z)

    def predict_proba(self, X):
        """Class probabilities, the softmax of the logits; computed in chunks of rows, as
        :meth:`predict`."""
        from scipy.special import softmax

        return self._decision(X, post=lambda Z: softmax(Z, axis=1))

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`; computed in chunks of rows, as :meth:`predict`."""
        from scipy.special import log_softmax

        return self._decision(X, post=lambda Z: log_softmax(Z, axis=1))

    def predict(self, X):
        """Class labels, the argmax of the logits.

        {chunking}
        """
        labels = self._decision(X, post=lambda Z: np.argmax(Z, axis=1))
        return self.classes_[labels]


for _cls in (ImplicitRegressor, ImplicitClassifier):  # one text for both estimators
    _cls.fit.__doc__ = _cls.fit.__doc__.replace("{sample_weight}", _DOC_SAMPLE_WEIGHT)
    _cls.predict.__doc__ = _cls.predict.__doc__.replace("{chunking}", _DOC_CHUNKING)
del _cls
