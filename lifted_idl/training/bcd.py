r"""Block-coordinate descent on the Fenchel-divergence relaxation (docs/theory.md §8, arXiv §4.2).

The relaxed, lifted problem (row layout, data terms averaged over the m samples) is

.. math::

    \min_{A,B,b,C,D,c,X,P}\; \mathcal L(Y, PC^\top + UD^\top + c)
      + \frac1m\sum_i \lambda_i \sum_s F_\phi(P_{si}, Z_{si})
      + \frac{\mu}{2m}\|X - P\|_F^2 + \mathrm{Pen}_{AB} + \mathrm{Pen}_{CD}
    \quad\text{s.t. } \|A\|_\infty \le \kappa,\; P \in \mathrm{dom} f^*,

with :math:`Z = XA^\top + UB^\top + b`. Each block — (C,D,c), P, X, (A,B,b) — is a convex
program solved exactly (:mod:`lifted_idl.blocks`), so the relaxed objective never increases
across block steps at fixed :math:`(\lambda, \mu)` (Xu & Yin 2013). A plain alternation over the
four blocks stalls far from a good model (``experiments/README.md``); :func:`fit_bcd` therefore
runs *anchored* rounds (:mod:`lifted_idl.training.rounds`): each round re-anchors (X, P) at the
true equilibrium of the current weights, where the relaxation is exact, and then takes the P and
(A, B, b) block steps. This module supplies the blocks (:class:`BCDBlocks`); the loop is the
engine's. Per-state weights
:math:`\lambda_i \propto \lambda(\|C_{:,i}\|^2 + \epsilon)` scale the divergence by the loss
curvature of each state (arXiv §4.1 scales :math:`\lambda` per layer for the same reason).
Continuation on :math:`\lambda` is adaptive: a round that does not lower the true training
objective is undone and :math:`\lambda` grows (smaller steps), an accepted round lets it shrink.
Of the accepted rounds, the model with the lowest training (or validation) objective is
returned.
"""

from __future__ import annotations

import time

import numpy as np

from .. import blocks
from .._validation import check_choice
from ..losses import SoftmaxCrossEntropy, get_loss, unit_mean_weights
from ..penalties import NoPenalty
from ..wellposedness import project_inf_norm_ball
from .objective import check_weight_penalty, group_terms, training_objective
from .rounds import Blocks, History, RoundEngine, RoundSettings

__all__ = ["BCDHistory", "random_feature_init", "fit_bcd"]


BCDHistory = History  # the history of a fit_bcd run (kept under its earlier name)

# the fast (C, D, c) and P steps of a round stop at these tolerances relative to their warm
# starts (solve_cd's and solve_p's ``rtol``): the previous round's (C, D, c), the anchored
# states. The P step is inexact for the cross-entropy only, whose per-sample q x q Newton
# systems make each step costly (with the squared loss the exact step is cheap, and the
# inexact one took more rounds); measured in benchmarks/README.md
_CD_RTOL = 0.03
_P_RTOL = 0.1


def random_feature_init(U, n_hidden, activation, random_state, kappa, scale=1.0):
    r"""Random-feature initialisation: :math:`A = 0`, :math:`B \sim \mathcal N(0, s^2/p)`, b small.

    With A = 0 the equilibrium is the explicit random-feature map :math:`x = \phi(Bu + b)`.
    """
    rng = np.random.default_rng(random_state) if not isinstance(
        random_state, np.random.Generator) else random_state
    m, p = U.shape
    B = rng.standard_normal((n_hidden, p)) * (scale / np.sqrt(max(p, 1)))
    b = rng.uniform(-0.5, 0.5, n_hidden) * scale
    A = np.zeros((n_hidden, n_hidden))
    return A, B, b




class BCDBlocks(Blocks):
    """The blocks of :func:`fit_bcd`: exact (C, D, c), P, X and (A, B, b) steps
    (:mod:`lifted_idl.blocks`), the robust (A, B, b) step with ``robust_sigma``, and with a
    group penalty the joint (B, D) step (:func:`~lifted_idl.blocks.solve_bd`); the objective
    is the loss at the true equilibrium plus ``pen_ab``, ``pen_cd`` and the group penalty.

    With ``sample_weight`` every average over samples is weighted (the (C, D, c), (A, B, b)
    and (B, D) steps and the objectives). The P and X blocks are separable over samples, and
    a weight multiplies all of one sample's terms, so their minimisers do not depend on the
    weights (for positive weights; a sample of weight 0 takes no part in any other block):
    their fast solvers ignore the weights (:func:`~lifted_idl.blocks.solve_p`).

    With ``block_solver="fast"`` the (C, D, c) step, and with the cross-entropy the P step,
    are inexact solves from their warm starts (``rtol`` of :func:`~lifted_idl.blocks.solve_cd`
    and :func:`~lifted_idl.blocks.solve_p`): each still never ends above its start."""

    def __init__(self, U, Y, loss, activation, *, kappa, pen_ab, pen_cd, group=None,
                 c_ridge=0.0, fit_intercept=True, block_solver="fast", block_tol=1e-6,
                 block_max_iter=100, robust_sigma=None, n_jobs=None, ab_method="fast",
                 ab_max_iter=5, sample_weight=None, fit_bias=True):
        self.U, self.Y, self.loss, self.activation = U, Y, loss, activation
        self.fit_bias = fit_bias
        self.w = unit_mean_weights(sample_weight, U.shape[0])
        if self.w is not None and robust_sigma is not None:
            raise ValueError("sample_weight is not supported with robust_sigma (the robust "
                             "(A, B, b) step is unweighted); drop one of them")
        self.kappa, self.pen_ab, self.pen_cd = kappa, pen_ab, pen_cd
        self.group, self.c_ridge, self.fit_intercept = group, c_ridge, fit_intercept
        self.robust_sigma = robust_sigma
        method = block_method(block_solver)
        self.kw = {**method, "tol": block_tol, "max_iter": block_max_iter}
        fast = method["method"] == "fast"
        self.cd_rtol = _CD_RTOL if fast else None
        self.p_rtol = (_P_RTOL if fast and isinstance(get_loss(loss), SoftmaxCrossEntropy)
                       else None)
        self.ab_kw = {} if n_jobs in (None, 1) else {"n_jobs": n_jobs}
        check_choice("ab_method", ab_method, ("mm", "fast"))
        # the (A, B, b) step: a few majorize-minimize steps (inexact by design, each one a
        # descent step), or the exact block solve
        # (a group penalty is always solved exactly: the MM step does not take it)
        self.ab_mm = block_solver == "fast" and ab_method == "mm" and group is None
        self.ab_max_iter = ab_max_iter
        # the joint (B, D) step: one short proximal-gradient solve per round (its own
        # tolerance), or the cvxpy twin to the blocks' tolerance
        self.bd_kw = {} if method["method"] == "fast" else self.kw

    def group_value(self, B, C, D):
        if self.group is None:
            return 0.0
        return group_terms(B, C, D, self.group, self.c_ridge)

    def cd_step(self, W, X, init):
        pen = self.pen_cd if self.group is None else self.group.restrict(
            "cd", {"B": W[1]}, ridge=self.c_ridge)
        r = blocks.solve_cd(X, self.U, self.Y, self.loss, pen, fit_intercept=self.fit_intercept,
                            init=init, sample_weight=self.w, rtol=self.cd_rtol, **self.kw)
        return r.value, r.converged

    def objective(self, W, CD, X, model):
        # true_objective at the equilibrium X, with the outputs of the checked training
        # inputs (model.output would check U again every round)
        Yhat = model._output(X, self.U, np)
        return training_objective(self.loss.value(self.Y, Yhat, sample_weight=self.w),
                                  model.A, model.B, model.C, model.D, pen_ab=self.pen_ab,
                                  pen_cd=self.pen_cd, group=self.group,
                                  c_ridge=self.c_ridge if self.group is not None else 0.0)

    def p_step(self, W, CD, X, lamv, mu):
        r = blocks.solve_p(*W, *CD, X, self.U, self.Y, lamv, mu, self.activation, self.loss,
                           init=X.copy(), sample_weight=self.w, rtol=self.p_rtol, **self.kw)
        return r.value, r.converged

    def x_step(self, W, P, lamv, mu, init):
        r = blocks.solve_x(*W, self.U, P, lamv, mu, self.activation, init=init,
                           sample_weight=self.w, **self.kw)
        return r.value, r.converged

    def relaxed(self, W, CD, X, P, lamv, mu):
        return (blocks.relaxed_objective(*W, *CD, X, P, self.U, self.Y, lamv, mu,
                                         self.activation, self.loss, self.pen_ab,
                                         self.pen_cd, sample_weight=self.w)["total"]
                + self.group_value(W[1], *CD[:2]))

    def weight_steps(self, X, P, lamv, W, CD):
        pen = self.pen_ab if self.group is None else self.group.restrict("ab", {"D": CD[1]})
        if self.robust_sigma is None and self.ab_mm:
            r = blocks.solve_ab(X, self.U, P, lamv, self.kappa, self.activation, pen, init=W,
                                fit_bias=self.fit_bias, method="mm", tol=self.kw["tol"],
                                max_iter=self.ab_max_iter,
                                sample_weight=self.w, **self.ab_kw)
            r.converged = True  # a fixed number of descent steps
        elif self.robust_sigma is None:
            r = blocks.solve_ab(X, self.U, P, lamv, self.kappa, self.activation, pen, init=W,
                                fit_bias=self.fit_bias, sample_weight=self.w, **self.kw,
                                **self.ab_kw)
        else:
            r = blocks.solve_ab_robust(X, self.U, P, lamv, self.kappa, self.activation, pen,
                                       self.robust_sigma, init=W, fit_bias=self.fit_bias,
                                       **self.kw, **self.ab_kw)
        yield "AB", r.value, CD, r.converged
        if self.group is not None and self.group.alpha > 0:
            # the joint (B, D) step zeroes whole columns; the anchor re-solves (C, D, c) from
            # its D, which keeps D's zero columns
            r = blocks.solve_bd(*r.value, *CD, X, P, self.U, self.Y, lamv, self.activation,
                                self.loss, self.group, sample_weight=self.w,
                                **self.bd_kw)
            yield "BD", *r.value, r.converged


def block_method(block_solver) -> dict:
    """The keyword arguments ``method`` and ``cvxpy_solver`` of the block solvers for
    ``block_solver``: ``"fast"``, ``"cvxpy"`` (the solver picked by each problem's class) or a
    cvxpy solver of :data:`lifted_idl.blocks.CVXPY_SOLVERS` (``"OSQP"``, ``"CLARABEL"``, ...)
    for every block."""
    if block_solver in ("fast", "cvxpy"):
        return {"method": block_solver, "cvxpy_solver": None}
    if isinstance(block_solver, str) and block_solver.upper() in blocks.CVXPY_SOLVERS:
        return {"method": "cvxpy", "cvxpy_solver": block_solver.upper()}
    raise ValueError(f"block_solver must be 'fast', 'cvxpy' or one of "
                     f"{sorted(blocks.CVXPY_SOLVERS)}; got block_solver={block_solver!r}")


def initial_model(U, Y, loss, *, n_hidden, kappa, activation, pen_cd, group=None, c_ridge=0.0,
                  random_state=None, fit_intercept=True, sample_weight=None, fit_bias=True):
    """The model BCD starts from: random features (:func:`random_feature_init`, A = 0) with
    (C, D, c) solved on their states (weighted by ``sample_weight``) — round 0 of
    :func:`fit_bcd`, anchored by the same engine, with the (C, D, c) block solved to its own
    default tolerance."""
    U = np.ascontiguousarray(U, dtype=np.float64)
    Y = np.ascontiguousarray(Y, dtype=np.float64)
    problem = BCDBlocks(U, Y, loss, activation, kappa=kappa, pen_ab=NoPenalty(), pen_cd=pen_cd,
                        group=group, c_ridge=c_ridge, fit_intercept=fit_intercept,
                        block_tol=1e-8, block_max_iter=1000, sample_weight=sample_weight,
                        fit_bias=fit_bias)
    engine = RoundEngine(problem, RoundSettings())
    A, B, b = random_feature_init(U, n_hidden, activation, random_state, kappa)
    return engine.anchor((A, B, b if fit_bias else np.zeros_like(b))).model


def fit_bcd(U, Y, loss, *, n_hidden, kappa, activation, pen_ab, pen_cd, init_model=None,
            lam=10.0, lam_increase=4.0, lam_decrease=0.5, lam_min=3.0, lam_max=1e4, mu=1e-3,
            per_state_lam=True, x_step=False, extrapolation=0.9, extrapolation_growth=1.2,
            extrapolation_max=0.99, extrapolate_first=True, max_iter=30, tol=1e-4,
            n_iter_no_change=5, pred_tol=None, block_solver="fast", block_tol=1e-6,
            block_max_iter=100, ab_method="fast", ab_max_iter=5, fit_intercept=True,
            validation=None, robust_sigma=None, group=None, c_ridge=0.0, n_jobs=None,
            random_state=None, verbose=0, callback=None, sample_weight=None,
            record_relaxed=True, fit_bias=True):
    r"""Train an implicit model by block-coordinate descent on the relaxation (docs/theory.md §8).

    A fit is one run of the anchored-round engine (:class:`~lifted_idl.training.rounds.
    RoundEngine`) on :class:`BCDBlocks`, from the random-feature model (or ``init_model``).

    Each round

    1. **anchors** the lifted variables at the true equilibrium of the current weights,
       :math:`X = P = X^*`, :math:`X^* = \phi(AX^* + BU + b)`, with the (C, D, c) block solved
       there (the refit of [IDL §7.1]); at the anchor the relaxed objective equals the true
       training objective;
    2. solves the **P block** (targets for the states: a proximal step of the loss in state
       space, :math:`P \in \mathrm{dom} f^*`), optionally the **X block**, then the
       **(A, B, b) block** (fit :math:`\phi(XA^\top + UB^\top + b)` to P in Fenchel divergence,
       :math:`\|A\|_\infty \le \kappa`). These block steps never increase the relaxed objective;
    3. re-anchors at the new weights and **accepts** the round if the true training objective
       decreased; otherwise the round is undone and :math:`\lambda` is multiplied by
       ``lam_increase`` (smaller steps: the targets P stay closer to the equilibrium). An
       accepted round divides :math:`\lambda` by ``1/lam_decrease``. This adaptive continuation
       on :math:`\lambda` acts like the damping of Levenberg–Marquardt, and makes the true
       training objective non-increasing over the rounds. The new weights are first judged
       with (C, D, c) kept, an upper bound of the refitted objective; (C, D, c) is solved on
       the extrapolated point (see ``extrapolation``), and on the new weights only when the
       bound does not decide or the extrapolated point is not kept: one (C, D, c) solve per
       round in most rounds instead of two.

    Anchoring X at the equilibrium instead of minimising over X is what lets BCD make progress:
    with X free, the (A, B) block lowers the relaxed objective by copying the states through A
    (X ≈ P), a stationary point far from a good model (``x_step=True`` restores that plain
    alternation for comparison).

    Parameters
    ----------
    U : ndarray of shape (m, p)
    Y : ndarray of shape (m, q)
        Targets (one-hot rows for the cross-entropy loss).
    loss : Loss
    n_hidden : int
        State dimension n.
    kappa : float
        Bound :math:`\|A\|_\infty \le \kappa < 1`.
    activation : Activation
    pen_ab, pen_cd : Penalty
        The penalties the (A, B, b) and (C, D, c) steps see, through their views on ``[A B]``
        and ``[C D]`` (:meth:`~lifted_idl.penalties.Penalty.restrict`).
    init_model : ImplicitModel, optional
        Start from this model (e.g. :func:`lifted_idl.compose.from_mlp`) instead of random
        features; its A is projected onto the :math:`\kappa` ball first.
    lam : float
        Initial weight of the divergence term.
    lam_increase, lam_decrease, lam_min, lam_max : float
        Adaptive continuation: factor on a rejected / accepted round, and the range of
        :math:`\lambda`. Training stops when a round is rejected at ``lam_max``. A ``lam_min``
        above ``lam`` acts as ``lam``.
        The floor ``lam_min`` decides what kind of model BCD finds. With a low floor (1e-3)
        the rounds become long, Gauss–Newton-like steps: the training objective falls fastest,
        but the P targets switch inactive units on (the divergence pulls linearly on
        :math:`z < 0`) and the model generalises like a near-linear one. A floor of a few units
        keeps every round a short damped step; raise it if the test score falls while the
        training objective still improves, lower it if rounds make too little progress
        (measurements: ``benchmarks/README.md``).
    mu : float
        Weight of the coupling :math:`\tfrac{\mu}{2m}\|X - P\|^2`. Without an X step it only
        damps the P step on top of :math:`\lambda`; keep it small so that it does not slow
        the rounds once :math:`\lambda` is small.
    per_state_lam : bool
        Scale :math:`\lambda_i` by the loss curvature of state i, :math:`\|C_{:,i}\|^2`.
    x_step : bool
        Also minimise over X inside a round (the plain alternation of arXiv §4.2).
    extrapolation : float
        Weight :math:`\beta` of the extrapolated point :math:`W + \beta(W - W_{\mathrm{prev}})`
        of the accepted (A, B, b) sequence (A re-projected), tried after every accepted round
        and kept only when its true training objective is lower (block updates with
        extrapolation, Xu & Yin 2013). 0 disables it; the value chosen is measured in
        ``benchmarks/README.md``. It is the weight at the start and after every restart (see
        the next parameters).
    extrapolation_growth, extrapolation_max : float
        Adaptive extrapolation: after a kept extrapolated point the weight moves towards 1,
        :math:`1 - \beta_{k+1} = (1 - \beta_k)/g` (g = ``extrapolation_growth`` >= 1), up to
        ``extrapolation_max`` < 1; a point that is not kept restarts it at ``extrapolation``.
        On a slow, steady drift of the weights (the usual tail of a fit) the steps grow
        while they pay; g = 1 keeps the weight fixed. Lower ``extrapolation_max`` if the
        extrapolated points are often not kept (``history.beta``, ``n_extrapolated``).
    extrapolate_first : bool
        Judge the extrapolated point first (against the current objective) and anchor the
        round's own new weights only when it is not kept: one equilibrium solve instead of
        two in the rounds whose extrapolated point is kept. Turn it off to judge the new
        weights first and keep the extrapolated point only when it beats them (the behaviour
        before this option; ``RoundSettings.extrapolate_first``).
    max_iter : int
        Maximum number of rounds.
    tol, n_iter_no_change : float, int
        Converged when the selection score (training objective, or validation loss) has
        improved by less than ``tol`` (relative) per round on average over the last
        ``n_iter_no_change`` accepted rounds, i.e. by less than ``tol * n_iter_no_change``
        over them (rejected rounds change nothing, so they do not count towards the
        patience).
    pred_tol : float or None
        Also converged when the training predictions have stopped moving: when the residuals
        (fitted values minus targets for the squared loss, class probabilities minus one-hot
        targets for the cross-entropy) moved by less than ``pred_tol`` per round, root mean
        square over samples and outputs, on average over the last ``n_iter_no_change``
        accepted rounds (``RoundSettings.pred_tol``; ``history.pred_change`` holds the change
        of every accepted round). Unlike the objective's relative decrease, this test does not
        depend on how close the objective is to zero: on nearly separable classes the
        cross-entropy keeps falling by a steady fraction per round, the weights growing
        against their penalty, long after the probabilities have settled. None: the objective
        test only. ``history.stopped_by`` says which test ended the run.
    block_solver : {"fast", "cvxpy", "CLARABEL", "ECOS", "OSQP", "HIGHS"}
        The block solvers: ``"fast"`` (the vectorised exact solvers of
        :mod:`lifted_idl.blocks`), ``"cvxpy"`` (their cvxpy formulations, each solved by the
        solver of its problem class), or one cvxpy solver for every block (a block whose class
        it cannot take raises a ValueError). cvxpy is a reference: slower, for checking.
    block_tol, block_max_iter : float, int
        Tolerance and iteration cap passed to every block solver. A block's answer never ends
        above its starting point whatever these are, so the monotonicity above holds exactly;
        the outer loop needs descent, not 1e-8 accuracy, from each block.
    ab_method : {"fast", "mm"}
        The (A, B, b) step when ``block_solver="fast"``: ``"fast"`` solves the block to
        ``block_tol`` by the Newton method (cost :math:`O(nm(n+p)^2)` per iteration);
        ``"mm"`` takes at most ``ab_max_iter`` majorize–minimize steps
        (:mod:`lifted_idl.blocks.ab_mm`; each lowers the block objective, at a cost linear in
        m × n × (n + p)), an inexact step that keeps every round monotone. Use ``"mm"`` for
        wide models, where the Newton Hessians dominate a round; the estimators take it at
        every width (their ``ab_step="auto"``: at small widths its damped steps also fitted
        better than the exact block minimiser, ``benchmarks/README.md``). Ignored with
        ``block_solver="cvxpy"`` and ``robust_sigma``; a group penalty is always solved
        exactly.
    ab_max_iter : int
        MM steps per round with ``ab_method="mm"``.
    fit_intercept : bool
    fit_bias : bool, default=True
        Fit the state bias b. False keeps b = 0 (the model :math:`x = \phi(Ax + Bu)` of the
        [arXiv §7.2] teachers): with a group penalty the unpenalised b can grow against the
        shrinking columns of B and put ReLU states in their always-on (linear) regime
        (``experiments/README.md``, ``bcd_diagnosis.py``).
    group : GroupPenalty, optional
        The feature-selection penalty :math:`\mathcal P(B, D) = \alpha\sum_j \|[B; D]e_j\|_r`
        of [IDL (5.1)], on top of ``pen_ab`` and ``pen_cd``. It couples the two weight blocks:
        the (C, D, c) step sees it with B fixed, the (A, B, b) step with D fixed
        (:meth:`~lifted_idl.penalties.GroupPenalty.restrict`), and a joint (B, D) block step
        (:func:`~lifted_idl.blocks.solve_bd`) after the (A, B, b) step is what sets
        whole columns of [B; D] to zero; all are convex block steps of the same objective,
        which therefore still never increases.
    c_ridge : float
        With ``group``: a ridge :math:`\tfrac{\beta}{2}\|C\|_F^2` that keeps the (C, D, c)
        step bounded (for ReLU, :math:`(B, b, C) \to (sB, sb, C/s)` would otherwise shrink the
        penalty without changing the predictions).
    n_jobs : int, optional
        Passed to the (A, B, b) block solver (rows solved in parallel).
    robust_sigma : float or ndarray of shape (p,), optional
        Box uncertainty on the (standardised) inputs: the (A, B, b) step is then the robust
        counterpart :func:`lifted_idl.blocks.solve_ab_robust` (arXiv §5.3; ReLU). Rounds are
        still accepted on the nominal training objective.
    validation : tuple (U_val, Y_val) or (U_val, Y_val, sample_weight_val), optional
        Held-out data: the returned round, and convergence, are then judged on the validation
        loss (weighted when weights are given) instead of the training objective (early
        stopping).
    random_state : int, Generator or None
    verbose : int
    callback : callable, optional
        ``callback(round, model, history)`` after each round.
    sample_weight : ndarray of shape (m,), optional
        Non-negative sample weights. Every average over the samples in the relaxation (loss,
        divergence, coupling) and in the training objective becomes the weighted average
        :math:`\frac{1}{\sum_t w_t}\sum_s w_s(\cdot)_s`
        (:func:`~lifted_idl.losses.unit_mean_weights`), so integer weights give the fit on the
        data with each sample repeated :math:`w_s` times, and zero weights the fit without
        those samples (up to rounding: the random-feature start depends on the seed and the
        shapes only). Not supported with ``robust_sigma``.
    record_relaxed : bool
        Evaluate the relaxed objective after every block step into ``history.relaxed`` (a
        diagnostic: one objective evaluation per block step; the estimators turn it off).

    Returns
    -------
    model : ImplicitModel
        The accepted round with the lowest training objective (validation loss when given).
    history : BCDHistory
    """
    U = np.ascontiguousarray(U, dtype=np.float64)
    Y = np.ascontiguousarray(Y, dtype=np.float64)
    if init_model is None:
        W = random_feature_init(U, n_hidden, activation, random_state, kappa)
    else:
        W = (project_inf_norm_ball(np.asarray(init_model.A, dtype=np.float64), kappa),
             np.array(init_model.B, dtype=np.float64),
             (np.zeros(init_model.A.shape[0]) if init_model.b is None
              else np.array(init_model.b, dtype=np.float64)))
    if not fit_bias:
        W = (W[0], W[1], np.zeros_like(W[2]))
    pen_ab = check_weight_penalty(pen_ab, "pen_ab", "ab")
    pen_cd = check_weight_penalty(pen_cd, "pen_cd", "cd")
    if group is not None and not group.alpha and not c_ridge:
        group = None
    if group is not None:
        if not isinstance(pen_ab, NoPenalty) or not isinstance(pen_cd, NoPenalty):
            raise ValueError("group cannot be combined with pen_ab/pen_cd: pass NoPenalty() for "
                             "both (the group penalty already acts on B and D)")
    problem = BCDBlocks(U, Y, loss, activation, kappa=kappa, pen_ab=pen_ab, pen_cd=pen_cd,
                        group=group, c_ridge=c_ridge, fit_intercept=fit_intercept,
                        block_solver=block_solver, block_tol=block_tol,
                        block_max_iter=block_max_iter, robust_sigma=robust_sigma,
                        n_jobs=n_jobs, ab_method=ab_method, ab_max_iter=ab_max_iter,
                        sample_weight=sample_weight, fit_bias=fit_bias)
    settings = RoundSettings(lam=lam, lam_increase=lam_increase, lam_decrease=lam_decrease,
                             lam_min=lam_min, lam_max=lam_max, mu=mu,
                             per_state_lam=per_state_lam, x_step=x_step,
                             extrapolation=extrapolation,
                             extrapolation_growth=extrapolation_growth,
                             extrapolation_max=extrapolation_max,
                             extrapolate_first=extrapolate_first, tol=tol,
                             n_iter_no_change=n_iter_no_change, pred_tol=pred_tol,
                             record_relaxed=record_relaxed)
    engine = RoundEngine(problem, settings, validation=validation, verbose=verbose,
                         callback=callback)
    t0 = time.perf_counter()
    start = engine.anchor(W)
    best, hist = engine.run(start, max_iter)
    hist.time = time.perf_counter() - t0
    return best.model, hist
