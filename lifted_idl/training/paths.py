r"""Sparsity paths: anchored BCD rounds with sparse blocks, warm-started along a path
(docs/theory.md §6 and §8).

* :func:`group_lasso_path`: the path of the group penalty [IDL (5.1)] over a grid of
  strengths (feature selection, [IDL §5.1]);
* :func:`frank_wolfe_path`, :func:`plot_frank_wolfe_path`: the path over l1-ball budgets, with
  Frank–Wolfe blocks.

Both run on the round engine of :mod:`lifted_idl.training.rounds`, as
:func:`~lifted_idl.training.bcd.fit_bcd` does. A point of :func:`frank_wolfe_path` is a fit
warm-started from the previous point, with the divergence weight carried along; a point of
:func:`group_lasso_path` is a fit of its own from the random-feature start (with
``warm_start=True``, the same continuation as Frank–Wolfe's).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .._validation import check_choice, check_int, check_real
from ..activations import get_activation
from ..blocks import fw_ab, fw_cd, relaxed_objective, solve_ab, solve_bd, solve_cd, solve_p
from ..losses import SoftmaxCrossEntropy, SquaredLoss
from ..model import ImplicitModel
from ..penalties import GroupPenalty, L2Penalty, NoPenalty
from ..sparsity import _check_model, _np64
from ..wellposedness import project_inf_norm_ball
from .bcd import random_feature_init
from .objective import training_objective
from .rounds import Blocks, RoundEngine, RoundSettings

__all__ = ["PathPoint", "frank_wolfe_path", "plot_frank_wolfe_path", "group_lasso_path"]


@dataclass
class PathPoint:
    """One point of :func:`frank_wolfe_path` or :func:`group_lasso_path`.

    Attributes
    ----------
    params : dict
        The constraint or penalty of this point: ``{"kappa_c": ..., "kappa_b": ...}`` (None
        where the block is unconstrained) for the Frank–Wolfe path, ``{"alpha": ...}`` for the
        group path.
    model : ImplicitModel
        The fitted model (its A, B, b; C, D, c refitted at the true equilibrium).
    nnz : dict
        Nonzero entries of ``"A"``, ``"B"``, ``"C"``, ``"D"``.
    column_norms : ndarray of shape (p,)
        :math:`\\|[B; D] e_j\\|_2`, the feature weights of [IDL §5.1].
    train_loss : float
        The training loss at the true equilibrium (without penalty).
    objective : float
        The objective the rounds decrease: ``train_loss`` plus the penalty (group path: the
        group penalty and the ridge on C).
    train_score, val_score : float
        :math:`R^2` (regression, averaged over outputs) or accuracy (classification);
        ``val_score`` is None without validation data.
    val_loss : float or None
        The validation loss (half the mean squared error, or the mean cross-entropy).
    n_rounds, n_accepted : int
        Anchored BCD rounds run at this point and how many were accepted.
    fw_iter : dict
        Cumulative Frank–Wolfe iterations along the path up to this point, ``{"cd": ..., "ab":
        ...}`` (zeros for the group path). A (C, D) step adds at most one nonzero to
        ``[C D]``; an (A, B) sweep at most one to every row of A and one to B.
    converged : bool
        Whether the rounds at this point stopped on ``tol`` (not on ``n_rounds``).
    blocks_converged : bool
        Whether every block solve at this point (equilibria, (C, D, c) fits, P steps and weight
        steps, Frank–Wolfe included) reached its own tolerance; False when one stopped on its
        iteration limit (for Frank–Wolfe: raise ``max_iter`` or ``fw_tol``).
    classes : ndarray or None
        The class labels (classification), in the order of the model's outputs.
    """

    params: dict
    model: ImplicitModel
    nnz: dict
    column_norms: np.ndarray
    train_loss: float
    objective: float
    train_score: float
    val_score: float | None
    val_loss: float | None
    n_rounds: int
    n_accepted: int
    fw_iter: dict = field(default_factory=dict)
    converged: bool = False
    classes: np.ndarray | None = None
    blocks_converged: bool = True


def _path_data(U, Y, task, U_val, Y_val):
    """Validated arrays, targets as (m, q) (one-hot for classification), the loss and classes."""
    if task not in ("regression", "classification"):
        raise ValueError(f"task must be 'regression' or 'classification'; got task={task!r}")
    U = np.asarray(U, dtype=np.float64)
    if U.ndim != 2 or U.shape[0] < 2 or not np.all(np.isfinite(U)):
        raise ValueError(f"U must be a finite 2-D array with at least 2 samples; got shape "
                         f"{U.shape}")
    if (U_val is None) != (Y_val is None):
        raise ValueError("pass both U_val and Y_val, or neither; got "
                         f"U_val={'None' if U_val is None else 'array'}, "
                         f"Y_val={'None' if Y_val is None else 'array'}")
    classes = None
    if task == "regression":
        def targets(Y, name, m):
            Y = np.asarray(Y, dtype=np.float64)
            Y = Y[:, None] if Y.ndim == 1 else Y
            if Y.ndim != 2 or Y.shape[0] != m or not np.all(np.isfinite(Y)):
                raise ValueError(f"{name} must be finite with {m} rows; got shape {Y.shape}")
            return Y
        loss = SquaredLoss()
    else:
        y = np.asarray(Y).reshape(-1)
        classes = np.unique(y)
        if classes.size < 2:
            raise ValueError(f"classification needs at least 2 classes in Y; got {classes}")

        def targets(Y, name, m):
            y = np.asarray(Y).reshape(-1)
            if y.shape[0] != m:
                raise ValueError(f"{name} must have {m} labels; got {y.shape[0]}")
            idx = np.searchsorted(classes, y)
            bad = (idx >= classes.size) | (classes[np.minimum(idx, classes.size - 1)] != y)
            if bad.any():
                raise ValueError(f"{name} has labels not seen in Y: {np.unique(y[bad])[:5]}")
            return np.eye(classes.size)[idx]
        loss = SoftmaxCrossEntropy()
    Y = targets(Y, "Y", U.shape[0])
    if U_val is not None:
        U_val = np.asarray(U_val, dtype=np.float64)
        if U_val.ndim != 2 or U_val.shape[1] != U.shape[1] or not np.all(np.isfinite(U_val)):
            raise ValueError(f"U_val must be finite with {U.shape[1]} columns; got shape "
                             f"{U_val.shape}")
        Y_val = targets(Y_val, "Y_val", U_val.shape[0])
    return U, Y, U_val, Y_val, loss, classes


def _score(task, Y, Yhat):
    if task == "classification":
        return float(np.mean(Yhat.argmax(axis=1) == Y.argmax(axis=1)))
    ss_res = ((Y - Yhat) ** 2).sum(axis=0)
    ss_tot = ((Y - Y.mean(axis=0)) ** 2).sum(axis=0)
    r2 = np.where(ss_tot > 0, 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0), 0.0)
    return float(r2.mean())


class _PathBlocks(Blocks):
    r"""The blocks of a sparsity path: a pluggable (C, D, c) step ``cd_fn(X, W, init)``
    (returning ``(CD, converged)``), weight step ``ab_fn(X, P, lamv, W, CD)`` (returning
    ``(W, CD, converged)``, CD as given unless the step also moved (C, D, c)) and penalties
    ``pen_fn()`` (the keywords of :func:`~lifted_idl.training.objective.training_objective`
    at the current point of the path); the P step is the exact
    :func:`~lifted_idl.blocks.solve_p` (its default tolerance)."""

    def __init__(self, U, Y, loss, act, kappa, cd_fn, ab_fn, pen_fn, b_budget=None):
        self.U, self.Y, self.loss, self.activation, self.kappa = U, Y, loss, act, kappa
        self.cd_fn, self.ab_fn, self.pen_fn = cd_fn, ab_fn, pen_fn
        self.b_budget = b_budget  # callable: the current l1 budget on vec(B), or None

    def project(self, W):
        """A onto its ball and, under a budget on B, vec(B) onto its l1 ball."""
        A, B, b = super().project(W)
        budget = None if self.b_budget is None else self.b_budget()
        if budget is not None:
            B = project_inf_norm_ball(B.reshape(1, -1), budget).reshape(B.shape)
        return A, B, b

    def cd_step(self, W, X, init):
        return self.cd_fn(X, W, init)

    def objective(self, W, CD, X, model):
        C, D, c = CD
        loss = self.loss.value(self.Y, X @ C.T + self.U @ D.T + c)
        return training_objective(loss, *W[:2], C, D, **self.pen_fn())

    def p_step(self, W, CD, X, lamv, mu):
        r = solve_p(*W, *CD, X, self.U, self.Y, lamv, mu, self.activation, self.loss,
                    init=X.copy())
        return r.value, r.converged

    def relaxed(self, W, CD, X, P, lamv, mu):
        return relaxed_objective(*W, *CD, X, P, self.U, self.Y, lamv, mu, self.activation,
                                 self.loss, NoPenalty(), NoPenalty())["total"] + (
                                     training_objective(0.0, *W[:2], *CD[:2], **self.pen_fn()))

    def weight_steps(self, X, P, lamv, W, CD):
        yield "AB", *self.ab_fn(X, P, lamv, W, CD)


def _engine(blocks, rounds, tol):
    """The round engine of a path: ``rounds`` (default: the constants of
    :func:`~lifted_idl.training.bcd.fit_bcd`) with the path's ``tol``. The relaxed objective
    is not recorded (a path keeps no per-round history)."""
    if rounds is None:
        rounds = RoundSettings()
    if not isinstance(rounds, RoundSettings):
        raise TypeError(f"rounds must be a RoundSettings or None; got {type(rounds).__name__}")
    return RoundEngine(blocks, replace(rounds, tol=tol, record_relaxed=False), label="path")


def _run(engine, st, n_rounds, n_warned):
    """Rounds at one path point; returns ``(state, n_run, n_accepted, converged,
    blocks_converged)``. ``n_warned``: the engine's block warnings before this point's anchor
    (the block solves that missed their tolerance since then make ``blocks_converged`` False).
    """
    best, hist = engine.run(st, n_rounds, warn=False)
    return (best, hist.n_iter, hist.n_accepted, hist.converged,
            len(hist.block_warnings) == n_warned)


def _make_point(params, st, task, U_val, Y_val, act, n_run, n_acc, fw_iter, converged,
                classes, U, Y, blocks_converged):
    A, B, b = st.W
    C, D, c = st.CD
    model = ImplicitModel(A, B, C, D, b=b, c=c, activation=act)
    Yhat = st.X @ C.T + U @ D.T + c
    val_score = val_loss = None
    if U_val is not None:
        Yv = model.predict(U_val, warn=False)
        loss = SoftmaxCrossEntropy() if task == "classification" else SquaredLoss()
        val_loss = float(loss.value(Y_val, Yv))
        val_score = _score(task, Y_val, Yv)
    loss_value = (SoftmaxCrossEntropy() if task == "classification" else SquaredLoss()).value(
        Y, Yhat)
    nnz = {"A": int(np.count_nonzero(A)), "B": int(np.count_nonzero(B)),
           "C": int(np.count_nonzero(C)), "D": int(np.count_nonzero(D))}
    norms = np.sqrt((B * B).sum(axis=0) + (D * D).sum(axis=0))
    return PathPoint(params=dict(params), model=model, nnz=nnz, column_norms=norms,
                     train_loss=float(loss_value), objective=float(st.obj),
                     train_score=_score(task, Y, Yhat), val_score=val_score, val_loss=val_loss,
                     n_rounds=int(n_run), n_accepted=int(n_acc), fw_iter=dict(fw_iter),
                     converged=bool(converged), classes=classes,
                     blocks_converged=bool(blocks_converged))


def frank_wolfe_path(U, Y, budgets, *, task: str = "regression", n_hidden: int = 10,
                     kappa_a: float = 0.5, U_val=None, Y_val=None, budget_kind: str = "cd",
                     activation="relu", random_state=None, max_iter: int = 100,
                     n_rounds: int = 10, tol: float = 1e-4, fw_tol: float = 1e-6,
                     ridge: float = 1e-3, rounds: RoundSettings | None = None
                     ) -> list[PathPoint]:
    r"""Sparsity path over l1-ball budgets, Frank–Wolfe blocks in anchored BCD (theory §8).

    In the spirit of :func:`sklearn.linear_model.lasso_path`: for every budget, in increasing
    order, warm-started from the previous point, runs anchored BCD rounds on

    .. math:: \min\ \mathcal L(Y, XC^\top + UD^\top + c)\ \ \text{s.t.}\ \
              X = \phi(XA^\top + UB^\top + b),\ \ \|A\|_\infty \le \kappa_A,\ \
              \|\mathrm{vec}[C\ D]\|_1 \le \kappa_C,\ \ \|B\|_1 \le \kappa_B

    (the constrained form of the l1 penalties of [IDL §5]; :math:`\|B\|_1` entrywise). A round
    (as :func:`~lifted_idl.training.bcd.fit_bcd`): anchor at the true equilibrium X of the
    current (A, B, b) with (C, D, c) fitted there; the P step
    (:func:`~lifted_idl.blocks.solve_p`); the (A, B, b) step on (X, P) by
    :func:`~lifted_idl.blocks.fw_ab`; re-anchor with the (C, D, c) step by
    :func:`~lifted_idl.blocks.fw_cd` at the new equilibrium; accept iff the
    training loss decreased. Frank–Wolfe adds at most one nonzero per step, so iterates are
    sparse; the block that carries no budget is solved exactly: (A, B, b) without penalty
    (:func:`~lifted_idl.blocks.solve_ab`), (C, D, c) with the small ridge ``ridge``
    (:func:`~lifted_idl.blocks.solve_cd`).

    Parameters
    ----------
    U : array of shape (m, p)
        Inputs (standardise them first: the budgets bound the raw weights).
    Y : array of shape (m,) or (m, q)
        Targets (regression) or class labels (classification).
    budgets : array of shape (k,), or (k, 2) for ``budget_kind="both"``
        Radii > 0: :math:`\kappa_C` (``"cd"``), :math:`\kappa_B` (``"ab"``), or both (a 1-D
        array gives :math:`\kappa_C = \kappa_B`; rows of a (k, 2) array are
        :math:`(\kappa_C, \kappa_B)`). Sorted increasingly (``"both"``: by
        :math:`\kappa_C + \kappa_B`; every point's balls must contain the previous point's).
    task : {"regression", "classification"}
        Squared loss, or softmax cross-entropy on one-hot labels.
    n_hidden : int, default=10
    kappa_a : float, default=0.5
        :math:`\|A\|_\infty \le \kappa_A < 1` (well-posedness for 1-Lipschitz activations).
    U_val, Y_val : arrays, optional
        Validation data for ``val_score`` / ``val_loss``.
    budget_kind : {"cd", "ab", "both"}, default="cd"
    activation : str or Activation, default="relu"
    random_state : int, Generator or None
        Seeds the random-feature initialisation (:math:`A = 0`, :math:`B \sim
        \mathcal N(0, 1/p)`; projected onto the first :math:`\kappa_B` ball).
    max_iter : int, default=100
        Frank–Wolfe iterations (``fw_cd`` steps, ``fw_ab`` sweeps) per block solve.
    n_rounds : int, default=10
        Anchored BCD rounds per budget (0: only the (C, D) fit at the equilibrium of the
        current (A, B, b), a convex path for fixed states).
    tol : float, default=1e-4
        Rounds at a budget stop once the loss improved by less than ``tol`` (relative) over
        ``rounds.n_iter_no_change`` accepted rounds.
    fw_tol : float, default=1e-6
        Relative Frank–Wolfe gap at which a block solve stops.
    ridge : float, default=1e-3
        For ``budget_kind="ab"``: the ridge :math:`\tfrac{\rho}{2}\|[C\ D]\|_F^2` of the
        unconstrained (C, D) block (added to the training objective). Without it, a small
        :math:`\kappa_B` makes the states nearly constant and C grows without bound to use
        them (for ReLU, :math:`(B, b, C) \to (sB, sb, C/s)` leaves the predictions unchanged).
    rounds : RoundSettings, optional
        The constants of the anchored rounds (divergence weight and its continuation,
        extrapolation, patience); default ``RoundSettings()``, those of
        :func:`~lifted_idl.training.bcd.fit_bcd`. The divergence weight is carried from one
        point to the next.

    Returns
    -------
    list of PathPoint
        One per budget, in increasing order. The objective (``train_loss``, plus the ridge for
        ``"ab"``) is non-increasing along the path (budgets nested, warm starts, monotone
        Frank–Wolfe steps with exact line search, only improving rounds accepted).

    Raises
    ------
    ValueError
        Bad data, budgets, or options (the message names the argument).
    """
    U, Y, U_val, Y_val, loss, classes = _path_data(U, Y, task, U_val, Y_val)
    bud = _check_budgets(budgets, budget_kind)
    n_hidden = check_int("n_hidden", n_hidden, 1)
    kappa_a = check_real("kappa_a", kappa_a, 0, 1.0, closed="neither")
    max_iter = check_int("max_iter", max_iter, 1)
    n_rounds = check_int("n_rounds", n_rounds, 0)
    tol = check_real("tol", tol, 0, closed="neither")
    fw_tol = check_real("fw_tol", fw_tol, 0, closed="neither")
    check_real("ridge", ridge, 0)
    act = get_activation(activation)
    steps = _FWSteps(U, Y, loss, act, budget_kind, kappa_a, ridge, fw_tol, max_iter)
    engine = _engine(_PathBlocks(U, Y, loss, act, kappa_a, steps.cd_step, steps.ab_step,
                                 steps.penalties, b_budget=lambda: steps.cur["kappa_b"]),
                     rounds, tol)
    A, B, b = random_feature_init(U, n_hidden, act, random_state, kappa_a)
    path = []
    st = None
    for row in bud:
        steps.set_budgets(row)
        n_warned = len(engine.history.block_warnings)
        if st is None:
            if steps.has_ab:
                B = project_inf_norm_ball(B.reshape(1, -1), steps.cur["kappa_b"]).reshape(B.shape)
            st = engine.anchor((A, B, b))
        else:  # warm start: the previous point is feasible for the larger balls
            st = engine.anchor(st.W, X0=st.X, cd_init=st.CD)
        st, n_run, n_acc, conv, blocks_ok = _run(engine, st, n_rounds, n_warned)
        path.append(_make_point(steps.cur, st, task, U_val, Y_val, act, n_run, n_acc,
                                steps.fw_iter, conv, classes, U, Y, blocks_ok))
    return path


def _check_budgets(budgets, budget_kind) -> np.ndarray:
    """The budgets of :func:`frank_wolfe_path`, checked and sorted along the path."""
    check_choice("budget_kind", budget_kind, ("cd", "ab", "both"))
    bud = np.asarray(budgets, dtype=np.float64)
    if budget_kind == "both" and bud.ndim == 1:
        bud = np.stack([bud, bud], axis=1)
    want = 2 if budget_kind == "both" else 1
    if (want == 1 and bud.ndim != 1) or (want == 2 and (bud.ndim != 2 or bud.shape[1] != 2)) \
            or bud.shape[0] == 0:
        raise ValueError(f"budgets must be a non-empty {'(k, 2) or (k,)' if want == 2 else '1-D'}"
                         f" array for budget_kind={budget_kind!r}; got shape {bud.shape}")
    if not np.all(np.isfinite(bud)) or np.any(bud <= 0):
        raise ValueError(f"budgets must be finite and > 0; got budgets={budgets!r}")
    if want == 1:
        return np.sort(bud)
    bud = bud[np.argsort(bud.sum(axis=1), kind="stable")]
    if np.any(np.diff(bud, axis=0) < 0):
        raise ValueError("budgets for budget_kind='both' must be nested (both radii "
                         f"non-decreasing along the path); got budgets={budgets!r}")
    return bud


class _FWSteps:
    """The (C, D, c) and (A, B, b) block steps of :func:`frank_wolfe_path` at the current budgets.

    A block that carries a budget is solved by Frank–Wolfe (:func:`fw_cd`, :func:`fw_ab`); the
    other one exactly (:func:`solve_cd` with the ridge, :func:`solve_ab` without penalty).
    """

    def __init__(self, U, Y, loss, act, budget_kind, kappa_a, ridge, fw_tol, max_iter):
        self.U, self.Y, self.loss, self.act = U, Y, loss, act
        self.budget_kind, self.kappa_a = budget_kind, kappa_a
        self.fw_tol, self.max_iter = fw_tol, max_iter
        self.has_cd = budget_kind in ("cd", "both")
        self.has_ab = budget_kind in ("ab", "both")
        self.cd_pen = L2Penalty(float(ridge)) if ridge > 0 else NoPenalty()
        self.cur = {"kappa_c": None, "kappa_b": None}
        self.fw_iter = {"cd": 0, "ab": 0}

    def set_budgets(self, row):
        """The radii of one path point (a row of the checked budgets)."""
        if self.budget_kind == "both":
            kc, kb = row[0], row[1]
        else:
            kc, kb = (row, None) if self.budget_kind == "cd" else (None, row)
        self.cur["kappa_c"] = None if kc is None else float(kc)
        self.cur["kappa_b"] = None if kb is None else float(kb)

    def cd_step(self, X, AB, init):
        if self.has_cd:
            C0, D0 = (None, None) if init is None else init[:2]
            r = fw_cd(X, self.U, self.Y, self.loss, self.cur["kappa_c"], fit_intercept=True,
                      init=None if init is None else (C0, D0), tol=self.fw_tol,
                      max_iter=self.max_iter, warn=False)
            self.fw_iter["cd"] += r.n_iter
        else:
            r = solve_cd(X, self.U, self.Y, self.loss, self.cd_pen, init=init)
        return r.value, r.converged

    def ab_step(self, X, P, lamv, AB, CD):
        if self.has_ab:
            r = fw_ab(X, self.U, P, lamv, self.kappa_a, self.cur["kappa_b"], self.act,
                      fit_bias=True, init=AB, tol=self.fw_tol, max_iter=self.max_iter,
                      warn=False)
            self.fw_iter["ab"] += r.n_iter
        else:
            r = solve_ab(X, self.U, P, lamv, self.kappa_a, self.act, "none", init=AB)
        return r.value, CD, r.converged

    def penalties(self):
        """The penalties of the objective (:func:`~.objective.training_objective`'s keywords):
        the ridge on [C D] when that block carries no budget."""
        return {} if self.has_cd else {"pen_cd": self.cd_pen}


def plot_frank_wolfe_path(path, ax=None):
    """Plot a :func:`frank_wolfe_path`: nonzeros (left) and scores (right) against the budget.

    Parameters
    ----------
    path : list of PathPoint
    ax : sequence of two matplotlib Axes, optional
        Created (one figure, two panels) when omitted.

    Returns
    -------
    tuple of two Axes
    """
    if not path or not all(isinstance(pt, PathPoint) for pt in path) or not all(
            pt.params.get("kappa_c") is not None or pt.params.get("kappa_b") is not None
            for pt in path):
        raise ValueError("path must be a non-empty list of PathPoint from frank_wolfe_path "
                         "(points with a budget kappa_c or kappa_b)")
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(1, 2, figsize=(10, 4))
    try:
        ax_nnz, ax_score = ax
    except (TypeError, ValueError):
        raise ValueError(f"ax must be a pair of matplotlib Axes; got {ax!r}") from None
    p0 = path[0].params
    key = "kappa_c" if p0.get("kappa_c") is not None else "kappa_b"
    label = {"kappa_c": r"$\kappa_C$ (budget on $\|(C, D)\|_1$)",
             "kappa_b": r"$\kappa_B$ (budget on $\|B\|_1$)"}[key]
    x = np.array([pt.params[key] for pt in path])
    for name, mk in zip("ABCD", "os^v", strict=True):
        ax_nnz.plot(x, [pt.nnz[name] for pt in path], marker=mk, label=f"nnz({name})")
    ax_nnz.set_xlabel(label)
    ax_nnz.set_ylabel("nonzero entries")
    ax_nnz.legend()
    task = "accuracy" if path[0].classes is not None else r"$R^2$"
    ax_score.plot(x, [pt.train_score for pt in path], marker="o", label="train")
    if path[0].val_score is not None:
        ax_score.plot(x, [pt.val_score for pt in path], marker="s", label="validation")
    ax_score.set_xlabel(label)
    ax_score.set_ylabel(task)
    ax_score.legend()
    for a in (ax_nnz, ax_score):
        a.set_xscale("log")
        a.grid(True, alpha=0.3)
    return ax_nnz, ax_score


def group_lasso_path(U, Y, alphas, *, ord=2, task: str = "regression", n_hidden: int = 10,
                     kappa: float = 0.5, U_val=None, Y_val=None, activation="relu",
                     random_state=None, n_rounds: int = 300, tol: float = 1e-4,
                     c_ridge: float | str = "alpha", rounds: RoundSettings | None = None,
                     init_model=None, order: str = "decreasing", fit_bias: bool = False,
                     warm_start: bool = False) -> list[PathPoint]:
    r"""Path of the group penalty [IDL (5.1)] over a grid of strengths, in anchored BCD.

    For every strength :math:`\alpha` in ``alphas`` (largest first, as
    :func:`sklearn.linear_model.lasso_path`, unless ``order="increasing"``), from the same
    random-feature start (or, with ``warm_start=True``, from the previous point), runs anchored
    BCD rounds (as
    :func:`~lifted_idl.training.bcd.fit_bcd`, theory §8) on

    .. math:: \min\ \mathcal L(Y, XC^\top + UD^\top + c) + \alpha\sum_{j=1}^p
              \left\|\begin{pmatrix} B \\ D\end{pmatrix}e_j\right\|_r
              + \frac{\beta}{2}\|C\|_F^2
              \ \ \text{s.t.}\ \ X = \phi(XA^\top + UB^\top + b),\ \ \|A\|_\infty \le \kappa,

    the feature-selection problem of [IDL §5.1] (theory §6). The small ridge on C
    (:math:`\beta` = ``c_ridge``) makes it well-posed: for a positively homogeneous
    activation, :math:`(B, b, C) \to (sB, sb, C/s)` keeps the predictions and lowers the group
    penalty as :math:`s \to 0`, so without it the infimum is approached with B shrinking to 0
    and C growing without bound (:meth:`~lifted_idl.penalties.GroupPenalty.restrict`).

    The (A, B, b) step sees the penalty with D fixed, the (C, D, c) step at the anchor with B
    fixed (:meth:`~lifted_idl.penalties.GroupPenalty.restrict`); each
    is convex and solved exactly (:func:`~lifted_idl.blocks.solve_ab`,
    :func:`~lifted_idl.blocks.solve_cd`). After the (A, B, b) step, a joint (B, D) block step
    (proximal gradient with the exact joint prox, as in
    :func:`~lifted_idl.training.bcd.fit_bcd`) zeroes whole columns: the two one-sided steps
    alone only shrink a group whose other part is nonzero. A round is accepted iff the
    penalised training objective decreased.

    As an optimiser of this nonconvex problem the anchored BCD is weaker than gradient
    training (``experiments/bcd_diagnosis.py``, figures in ``experiments/README.md``). Two
    reasons are structural. From the largest strength down, the first point
    (:math:`\alpha \ge \alpha_{\max}`) has B = 0, and B = 0, C = 0 is a stationary point of
    the objective for every :math:`\alpha` (the states are constant, so neither the loss nor
    the rounds move B or C): every later point is then a linear model in D. And with the group
    penalty, BCD's rounds stall at a higher objective than proximal Adam reaches from the same
    start, with most ReLU states always on (linear): the penalty shrinks B while the
    unpenalised bias b stays. ``order="increasing"`` or ``warm_start=False`` avoid the first;
    ``fit_bias=False`` removes the second where the states need no offset (the [arXiv §7.2]
    teacher); started at Adam's model, BCD keeps it and lowers its objective further. The
    defaults therefore fit every point on its own (``warm_start=False``: each point is what
    :class:`~lifted_idl.ImplicitRegressor` fits at that strength, a fit being a path of length
    one), without the state bias (as the estimators' ``fit_bias="auto"`` for the group
    penalty), with :math:`\beta = \alpha` (``c_ridge="alpha"``, the estimators' default) and
    up to 300 rounds (``experiments/model_recovery.py`` compares them with the gradient
    paths; figures in ``experiments/README.md``).

    Parameters
    ----------
    U : array of shape (m, p)
        Inputs (standardise them first).
    Y : array of shape (m,) or (m, q)
        Targets or class labels.
    alphas : array of shape (k,)
        Strengths >= 0, in any order (they are fitted in the order ``order``).
    ord : {2, np.inf}, default=2
        The group norm r.
    task : {"regression", "classification"}
    n_hidden : int, default=10
    kappa : float, default=0.5
        :math:`\|A\|_\infty \le \kappa < 1`.
    U_val, Y_val : arrays, optional
        Validation data for ``val_score`` / ``val_loss`` (select :math:`\alpha` on them).
    activation : str or Activation, default="relu"
    random_state : int, Generator or None
        Seeds the random-feature initialisation (unless ``init_model``).
    n_rounds : int, default=300
        Anchored BCD rounds per strength at most (``tol`` stops them earlier), as the
        estimators' ``max_iter``.
    tol : float, default=1e-4
        Rounds at a strength stop once the objective improved by less than ``tol`` (relative)
        over ``rounds.n_iter_no_change`` accepted rounds.
    c_ridge : float or "alpha", default="alpha"
        :math:`\beta \ge 0`, the ridge on C; ``"alpha"``: :math:`\beta = \alpha` at every
        point. With the group penalty on B the balance of the rescaling
        :math:`(B, b, C) \to (sB, sb, C/s)` is set by :math:`\beta/\alpha`; a fixed small
        :math:`\beta` lets B shrink and C grow as :math:`\alpha` grows, ``"alpha"`` keeps it
        the same along the path (the recipe of ``experiments/model_recovery.py``'s gradient
        paths).
    rounds : RoundSettings, optional
        The constants of the anchored rounds (divergence weight and its continuation,
        extrapolation, patience); default ``RoundSettings()``, those of
        :func:`~lifted_idl.training.bcd.fit_bcd`. With ``warm_start=True`` the divergence
        weight is carried from one point to the next; otherwise each point starts from it.
    init_model : ImplicitModel, optional
        Start from this model (its A projected onto the ball) instead of random features.
    order : {"decreasing", "increasing"}, default="decreasing"
        The order in which the strengths are fitted (and returned); it matters with
        ``warm_start=True``, where each point starts from the previous one.
        ``"decreasing"`` is the order of :func:`sklearn.linear_model.lasso_path`; for this
        nonconvex problem its first point, at or above :math:`\alpha_{\max}`, is the
        stationary point B = 0 that warm-started later points never leave (see above).
        ``"increasing"`` starts from the weakest penalty, where the random features are
        trained first, and lets the penalty remove features as it grows (the continuation of
        the gradient paths of ``experiments/model_recovery.py``).

    warm_start : bool, default=False
        Start every point from the previous one (a continuation path), or, with False, every
        point from the same initialisation (random features or ``init_model``) with the
        divergence weight reset: independent fits, as the folds of
        :class:`~lifted_idl.ImplicitRegressorCV` run them. Warm starts carry a point's basin
        to the next (from the largest strength down, the stationary point B = 0), so the
        independent fits validate better at the cost of more rounds.
    fit_bias : bool, default=False
        Fit the state bias b. With False, b = 0 (also from ``init_model``) and the states are
        :math:`x = \phi(Ax + Bu)`, the model of the [arXiv §7.2] teacher. Under the group
        penalty the unpenalised b is what lets the rounds move ReLU states into their
        always-on, linear regime (B shrinks, b stays: ``experiments/README.md``); without b
        no offset can hold a state on. Turn it off for inputs centred at 0 when the states
        need no offset.

    Returns
    -------
    list of PathPoint
        One per strength, in the order fitted (``order``); ``params = {"alpha": ...}``.
    """
    U, Y, U_val, Y_val, loss, classes = _path_data(U, Y, task, U_val, Y_val)
    al = np.asarray(alphas, dtype=np.float64)
    if al.ndim != 1 or al.size == 0 or not np.all(np.isfinite(al)) or np.any(al < 0):
        raise ValueError(f"alphas must be a non-empty 1-D array of finite values >= 0; got "
                         f"alphas={alphas!r}")
    order = check_choice("order", order, ("decreasing", "increasing"))
    al = np.sort(al)[::-1] if order == "decreasing" else np.sort(al)
    GroupPenalty(0.0, ord)  # validates ord
    n_hidden = check_int("n_hidden", n_hidden, 1)
    kappa = check_real("kappa", kappa, 0, 1.0, closed="neither")
    n_rounds = check_int("n_rounds", n_rounds, 0)
    tol = check_real("tol", tol, 0, closed="neither")
    for name, flag in (("warm_start", warm_start), ("fit_bias", fit_bias)):
        if not isinstance(flag, (bool, np.bool_)):
            raise ValueError(f"{name} must be True or False; got {name}={flag!r}")
    ridge_tied = isinstance(c_ridge, str)
    if ridge_tied:
        check_choice("c_ridge", c_ridge, ("alpha",))
    else:
        c_ridge = float(check_real("c_ridge", c_ridge, 0))
    act = get_activation(activation)
    group = {"pen": GroupPenalty(float(al[0]), ord),
             "ridge": float(al[0]) if ridge_tied else c_ridge}

    def cd_step(X, AB, init):
        pen = group["pen"].restrict("cd", {"B": AB[1]}, ridge=group["ridge"])
        r = solve_cd(X, U, Y, loss, pen, init=init)
        return r.value, r.converged

    def ab_step(X, P, lamv, AB, CD):
        pen = group["pen"].restrict("ab", {"D": CD[1]})
        r = solve_ab(X, U, P, lamv, kappa, act, pen, init=AB, fit_bias=fit_bias)
        if group["pen"].alpha <= 0:
            return r.value, CD, r.converged
        # the joint (B, D) block step: the one that zeroes whole columns (as in fit_bcd)
        rb = solve_bd(*r.value, *CD, X, P, U, Y, lamv, act, loss, group["pen"])
        return *rb.value, r.converged and rb.converged

    def penalty():
        return {"group": group["pen"], "c_ridge": group["ridge"]}

    engine = _engine(_PathBlocks(U, Y, loss, act, kappa, cd_step, ab_step, penalty), rounds,
                     tol)
    if init_model is None:
        A, B, b = random_feature_init(U, n_hidden, act, random_state, kappa)
    else:
        _check_model(init_model)
        if init_model.n_features != U.shape[1] or init_model.n_outputs != Y.shape[1]:
            raise ValueError(
                f"init_model has p={init_model.n_features}, q={init_model.n_outputs}; the data "
                f"have p={U.shape[1]}, q={Y.shape[1]}")
        A = project_inf_norm_ball(_np64(init_model.A), kappa)
        B = _np64(init_model.B)
        b = np.zeros(A.shape[0]) if init_model.b is None else _np64(init_model.b)
    if not fit_bias:
        b = np.zeros_like(b)
    path = []
    st = None
    for a in al:
        group["pen"] = GroupPenalty(float(a), ord)
        if ridge_tied:
            group["ridge"] = float(a)
        n_warned = len(engine.history.block_warnings)
        if st is None or not warm_start:
            engine.lam = engine.settings.lam
            st = engine.anchor((A, B, b))
        else:
            st = engine.anchor(st.W, X0=st.X, cd_init=st.CD)
        st, n_run, n_acc, conv, blocks_ok = _run(engine, st, n_rounds, n_warned)
        path.append(_make_point({"alpha": float(a)}, st, task, U_val, Y_val, act, n_run, n_acc,
                                {"cd": 0, "ab": 0}, conv, classes, U, Y, blocks_ok))
    return path
