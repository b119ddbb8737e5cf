r"""The anchored-round engine of block-coordinate descent (docs/theory.md §8, arXiv §4.2).

One loop serves :func:`~lifted_idl.training.bcd.fit_bcd`, the sparsity paths
(:func:`~lifted_idl.training.paths.group_lasso_path`,
:func:`~lifted_idl.training.paths.frank_wolfe_path`) and the estimators' initialisation: a
fit is a path of length one, as scikit-learn's ``ElasticNet.fit`` is one call of
``enet_path``. What differs between them is *which* block steps a round takes and *which*
objective it is judged on; both are supplied by a :class:`Blocks` object. The loop itself —
anchor, P step, the weight steps, extrapolation, accept/reject, continuation on
:math:`\lambda`, stopping and the history — lives here once.

A round, from the anchored state :math:`(W, X^*, (C, D, c))` (docs/theory.md §8):

1. **anchor** the lifted variables at the true equilibrium, :math:`X = P = X^*`, where the
   relaxed objective equals the true training objective;
2. the **P step** (targets for the states) and, optionally, the X step;
3. the **weight steps** of :meth:`Blocks.weight_steps` (the (A, B, b) block, and for the group
   penalty the joint (B, D) block); every block step is a descent step of the relaxed
   objective at fixed :math:`(\lambda, \mu)`, recorded in :attr:`History.relaxed`;
4. **re-anchor** at the new weights and **accept** the round iff the true objective decreased;
   a rejected round is undone and :math:`\lambda` grows by ``lam_increase`` (shorter steps), an
   accepted one shrinks it by ``lam_decrease`` down to ``lam_min`` — the damping of
   Levenberg–Marquardt. The true objective therefore never increases over the rounds;
5. after an accepted round, the **extrapolated** weights
   :math:`W_{k+1} + \beta_k(W_{k+1} - W_{k-1})` — the new weights pushed further along the
   change over the last two accepted rounds, and made feasible again by
   :meth:`Blocks.project` — are kept when their true objective is lower still (block updates
   with extrapolation, Xu & Yin 2013). From the second accepted round on. The weight
   :math:`\beta_k` adapts: every kept point moves it towards 1 (longer steps along a steady
   drift), a point that is not kept restarts it (the function-value restart of adaptive
   momentum schemes). With ``extrapolate_first`` (the default) the extrapolated point is judged
   first, against the current state's objective, and the round's own new weights are anchored
   only when it is not kept: one equilibrium solve, not two, in the usual round whose
   extrapolated point is kept.

The new weights are first judged with (C, D, c) kept, an upper bound of the refitted
objective (``bound_first``): the (C, D, c) solve is then spent on the point that is kept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .._validation import check_choice
from ..exceptions import _warn_convergence
from ..model import ImplicitModel
from ..wellposedness import project_inf_norm_ball

__all__ = ["History", "RoundSettings", "State", "Blocks", "RoundEngine", "lam_vector"]


@dataclass
class History:
    """What a run of anchored rounds did.

    Attributes
    ----------
    relaxed : list of (round, block, lam_scale, objective)
        The relaxed objective at the anchor and after every block step of every round (also of
        rejected rounds), when ``record_relaxed`` is set. Within a round (fixed ``lam_scale``)
        it is non-increasing for the exact and majorize–minimize block steps (not for the
        robust (A, B, b) step of ``robust_sigma``, which descends its own robust objective).
    train_loss : list of float
        The true training objective (loss at the true equilibrium, after refitting (C, D, c),
        plus penalties) of the current weights after every round; entry 0 is the starting
        state. Non-increasing: rejected rounds leave it unchanged.
    validation_loss : list of float
        The loss on held-out data of the starting state and after every round, when
        validation data were given.
    lam : list of float
        The divergence weight used in every round.
    accepted : list of bool
        Whether each round was accepted.
    n_iter : int
        Rounds run.
    converged : bool
    best_round : int
        The round whose state was returned.
    n_extrapolated : int
        Rounds whose extrapolated point was kept.
    beta : list of float
        The extrapolation weight tried in each round (0 where none was tried: a rejected
        round, the first accepted one, or ``extrapolation=0``).
    time : float
        Seconds.
    block_warnings : list of (round, block)
        Block solves (and equilibrium solves) that stopped on their iteration cap.
    pred_change : list of float
        With ``RoundSettings.pred_tol``: for every accepted round, the root-mean-square change
        of the training residuals (:meth:`Blocks.residuals`) from the previous accepted state.
    stopped_by : str
        Why the run ended: ``"objective"`` (``tol``, on the selection score: the validation
        loss when validation data were given), ``"predictions"`` (``pred_tol``),
        ``"stalled"`` (a rejection at ``lam_max``), ``"max_iter"``, or ``""`` before a run.
    """

    relaxed: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)
    validation_loss: list = field(default_factory=list)
    n_iter: int = 0
    converged: bool = False
    best_round: int = 0
    n_extrapolated: int = 0
    lam: list = field(default_factory=list)
    accepted: list = field(default_factory=list)
    beta: list = field(default_factory=list)
    time: float = 0.0
    block_warnings: list = field(default_factory=list)
    pred_change: list = field(default_factory=list)
    stopped_by: str = ""

    @property
    def n_accepted(self) -> int:
        """Accepted rounds."""
        return int(sum(self.accepted))


@dataclass(frozen=True)
class RoundSettings:
    r"""The constants of the anchored rounds.

    Attributes
    ----------
    lam : float
        Initial weight :math:`\lambda` of the Fenchel-divergence term.
    lam_increase, lam_decrease : float
        Factors on :math:`\lambda` after a rejected / an accepted round.
    lam_min, lam_max : float
        Range of :math:`\lambda` (a ``lam_min`` above ``lam`` acts as ``lam``). A rejection at
        ``lam_max`` ends the run (the relaxation cannot find a descent step).
    mu : float
        Weight of the coupling :math:`\tfrac{\mu}{2m}\|X - P\|_F^2`.
    per_state_lam : bool
        Scale :math:`\lambda_i` by the loss curvature of state i (:func:`lam_vector`).
    x_step : bool
        Also minimise over X inside a round (the plain alternation of arXiv §4.2).
    extrapolation : float
        Weight :math:`\beta_k` of the extrapolated point :math:`W_{k+1} + \beta_k(W_{k+1} -
        W_{k-1})` tried after every accepted round (from the second on), at the start and
        after every restart; 0 disables it.
    extrapolation_growth, extrapolation_max : float
        Adaptive weight: after a kept extrapolated point :math:`1 - \beta_{k+1} = (1 -
        \beta_k)/g` (``extrapolation_growth`` g >= 1), up to ``extrapolation_max`` (< 1);
        a point that is not kept restarts :math:`\beta` at ``extrapolation``. g = 1 keeps
        :math:`\beta` fixed at ``extrapolation``.
    tol, n_iter_no_change : float, int
        Converged when the selection score improved by less than ``tol`` (relative) per round
        on average over the last ``n_iter_no_change`` rounds counted by ``patience``: by less
        than ``tol * n_iter_no_change`` relative to the score before them.
    pred_tol : float or None
        Also converged when the fitted function has stopped moving: when the training
        residuals :meth:`Blocks.residuals` (the fitted values minus the targets for the squared
        loss, the class probabilities minus the one-hot targets for the cross-entropy) moved by
        less than ``pred_tol`` per round, root mean square over samples and outputs, on average
        over the last ``n_iter_no_change`` accepted rounds. The change is in the units of the
        targets (standardised targets, probabilities), whatever the size of the objective:
        on a nearly separable classification problem the cross-entropy keeps falling by a
        steady fraction per round (the weights grow against their penalty) while the
        probabilities, and the predictions, no longer change. None: the objective test only.
    patience : {"accepted", "all"}
        Count only accepted rounds towards ``n_iter_no_change`` (rejected rounds change
        nothing), or every round.
    bound_first : bool
        Judge the new weights with (C, D, c) kept (an upper bound of the refitted objective)
        and refit (C, D, c) only on the point that is kept.
    extrapolate_first : bool
        From the second accepted round on, judge the extrapolated point first, against the
        current state's objective, and anchor the round's own new weights only when it is not
        kept: one equilibrium solve per round where the extrapolated point is usually kept
        (``History.n_extrapolated``), instead of two. Its equilibrium starts from the current
        states pushed along their change over the last accepted round. Off: the new weights
        are anchored and accepted first, and the extrapolated point must beat them.
    record_relaxed : bool
        Evaluate the relaxed objective after every block step for :attr:`History.relaxed`
        (one objective evaluation per step; for diagnostics and tests).
    """

    lam: float = 10.0
    lam_increase: float = 4.0
    lam_decrease: float = 0.5
    lam_min: float = 3.0
    lam_max: float = 1e4
    mu: float = 1e-3
    per_state_lam: bool = True
    x_step: bool = False
    extrapolation: float = 0.9
    extrapolation_growth: float = 1.2
    extrapolation_max: float = 0.99
    tol: float = 1e-4
    n_iter_no_change: int = 5
    pred_tol: float | None = None
    patience: str = "accepted"
    bound_first: bool = True
    extrapolate_first: bool = True
    record_relaxed: bool = True

    def __post_init__(self):
        check_choice("patience", self.patience, ("accepted", "all"))
        if self.pred_tol is not None and not self.pred_tol >= 0:
            raise ValueError(f"pred_tol must be None or >= 0; got pred_tol={self.pred_tol!r}")
        if not self.extrapolation_growth >= 1.0:
            raise ValueError(f"extrapolation_growth must be >= 1; got "
                             f"extrapolation_growth={self.extrapolation_growth!r}")
        if not 0.0 <= self.extrapolation_max < 1.0:
            raise ValueError(f"extrapolation_max must be in [0, 1); got "
                             f"extrapolation_max={self.extrapolation_max!r}")


@dataclass
class State:
    """Weights ``W = (A, B, b)`` at their true equilibrium ``X``, with ``CD = (C, D, c)``, the
    model they make and its true objective ``obj``."""

    W: tuple
    X: np.ndarray
    CD: tuple
    model: ImplicitModel
    obj: float


def lam_vector(C, lam_scale, eps=1e-2):
    r"""Per-state divergence weights :math:`\lambda_i = \lambda(\|C_{:,i}\|^2/\overline{\|C\|^2}
    + \epsilon)`: the loss curvature of each state (arXiv §4.1 scales :math:`\lambda` per layer
    for the same reason)."""
    w = (C * C).sum(axis=0)
    w = w / max(w.mean(), 1e-12)
    return lam_scale * (w + eps)


class Blocks:
    """The block steps and the objective of one anchored-BCD problem.

    The engine calls these; a subclass supplies them. ``U``, ``Y``, ``loss`` and
    ``activation`` must be set by the subclass, and ``kappa`` when extrapolating.
    """

    U: np.ndarray
    Y: np.ndarray
    loss = None
    activation = None
    kappa: float = None
    fit_intercept: bool = True

    def cd_step(self, W, X, init):
        """(C, D, c) at the equilibrium X of W, from ``init``; returns ``(CD, converged)``."""
        raise TypeError(f"{type(self).__name__} does not define cd_step")

    def weight_steps(self, X, P, lamv, W, CD):
        """Yield ``(name, W, CD, converged)`` after each weight block step of a round (the
        last one is the round's candidate; its CD is the start of the anchor's (C, D, c)
        solve)."""
        raise TypeError(f"{type(self).__name__} does not define weight_steps")

    def objective(self, W, CD, X, model):
        """The true objective of ``model`` (weights W, CD) at its equilibrium X."""
        raise TypeError(f"{type(self).__name__} does not define objective")

    def p_step(self, W, CD, X, lamv, mu):
        """The P block from the anchor; returns ``(P, converged)``."""
        raise TypeError(f"{type(self).__name__} does not define p_step")

    def x_step(self, W, P, lamv, mu, init):
        """The X block; returns ``(X, converged)``."""
        raise TypeError(f"{type(self).__name__} does not define x_step")

    def relaxed(self, W, CD, X, P, lamv, mu):
        """The relaxed objective (for :attr:`History.relaxed`)."""
        raise TypeError(f"{type(self).__name__} does not define relaxed")

    def project(self, W):
        r"""The extrapolated weights made feasible: A onto :math:`\|A\|_\infty \le \kappa`
        (a subclass whose weights carry more constraints projects onto those too)."""
        A, B, b = W
        return project_inf_norm_ball(A, self.kappa), B, b

    def model(self, W, CD):
        A, B, b = W
        C, D, c = CD
        # the weights come from the block solvers, the activation from the checked settings
        return ImplicitModel._trusted(A, B, C, D, b=b, c=c if self.fit_intercept else None,
                                      activation=self.activation)

    def residuals(self, st):
        r"""The per-sample gradient of the loss with respect to the outputs at the training
        predictions of state ``st``, shape (m, q): :math:`\hat y_s - y_s` for the squared
        loss, :math:`\mathrm{softmax}(\hat y_s) - y_s` for the cross-entropy (the targets are
        fixed, so its change between rounds is that of the fitted values, or of the class
        probabilities)."""
        Yhat = st.model._output(st.X, self.U, np)  # the training inputs: checked once
        return self.loss.grad(self.Y, Yhat) * max(self.U.shape[0], 1)

    def equilibrium(self, W, X0):
        """The true equilibrium of weights W (from X0); returns ``(X, converged)``."""
        A, B, b = W
        q, p, n = self.Y.shape[1], self.U.shape[1], A.shape[0]
        proto = ImplicitModel._trusted(A, B, np.zeros((q, n)), np.zeros((q, p)), b=b,
                                       activation=self.activation)
        # U is checked (and cast to its compute dtype) on the first solve only: the same
        # training inputs every round
        checked = getattr(self, "_checked_U", None)
        if checked is None or checked[0] is not self.U:
            checked = self._checked_U = (self.U, proto._check_input(self.U)[0])
        res = proto._solve_trusted(checked[1], X0=X0, warn=False)
        return res.X, res.converged


class RoundEngine:
    """Runs anchored rounds on a :class:`Blocks` problem with :class:`RoundSettings`.

    The divergence weight :math:`\\lambda` is state of the engine: a path that calls
    :meth:`run` once per point carries it from one point to the next.

    Parameters
    ----------
    blocks : Blocks
    settings : RoundSettings
    validation : tuple (U_val, Y_val) or (U_val, Y_val, sample_weight_val), optional
        Held-out data: the returned round, and convergence, are then judged on the validation
        loss (weighted by ``sample_weight_val`` when given) instead of the true objective
        (early stopping).
    verbose : int
    callback : callable, optional
        ``callback(round, model, history)`` after each round.
    label : str
        Prefix of the progress lines.
    """

    def __init__(self, blocks: Blocks, settings: RoundSettings, *, validation=None, verbose=0,
                 callback=None, label="BCD"):
        self.blocks, self.settings = blocks, settings
        self.validation, self.verbose, self.callback, self.label = (validation, verbose,
                                                                     callback, label)
        self.lam = float(settings.lam)
        self.lam_min = min(float(settings.lam_min), self.lam)  # a floor above the start
        self.beta = float(settings.extrapolation)
        self._x_prev = None  # the equilibrium of the state before the current one
        self.history = History()

    # -- states -----------------------------------------------------------------------------
    def _warn_block(self, converged, name):
        if not converged:
            self.history.block_warnings.append((self.history.n_iter, name))

    def state(self, W, X, CD):
        """The state of weights W at their equilibrium X with ``CD`` as given (no solve)."""
        model = self.blocks.model(W, CD)
        return State(W, X, CD, model, self.blocks.objective(W, CD, X, model))

    def refit(self, W, X, cd_init):
        """The state of W with (C, D, c) solved on its equilibrium X (from ``cd_init``)."""
        CD, ok = self.blocks.cd_step(W, X, cd_init)
        self._warn_block(ok, "CD")
        return self.state(W, X, CD)

    def anchor(self, W, X0=None, cd_init=None, refit=True):
        """True equilibrium of W, with (C, D, c) solved on it (``refit``), or kept at
        ``cd_init``: the objective is then an upper bound of the refitted one."""
        X, ok = self.blocks.equilibrium(W, X0)
        self._warn_block(ok, "equilibrium")
        return self.refit(W, X, cd_init) if refit else self.state(W, X, cd_init)

    # -- one round --------------------------------------------------------------------------
    def _record(self, it, name, W, CD, X, P, lamv):
        if self.settings.record_relaxed:
            val = self.blocks.relaxed(W, CD, X, P, lamv, self.settings.mu)
            self.history.relaxed.append((it, name, self.lam, val))

    def _candidate(self, it, st):
        """The round's block steps from the anchored state ``st``: the new weights, the
        (C, D, c) their anchor starts from."""
        s, bl = self.settings, self.blocks
        n = st.W[0].shape[0]
        lamv = lam_vector(st.CD[0], self.lam) if s.per_state_lam else np.full(n, self.lam)
        X = st.X
        self._record(it, "anchor", st.W, st.CD, X, X, lamv)
        P, ok = bl.p_step(st.W, st.CD, X, lamv, s.mu)
        self._warn_block(ok, "P")
        self._record(it, "P", st.W, st.CD, X, P, lamv)
        if s.x_step:
            X, ok = bl.x_step(st.W, P, lamv, s.mu, X)
            self._warn_block(ok, "X")
            self._record(it, "X", st.W, st.CD, X, P, lamv)
        W, CD = st.W, st.CD
        for name, W, CD, ok in bl.weight_steps(X, P, lamv, st.W, st.CD):
            self._warn_block(ok, name)
            self._record(it, name, W, CD, X, P, lamv)
        return W, CD

    def _judge(self, st, W, CD, w_prev):
        """The state to move to from ``st`` (None: reject), extrapolating when it pays."""
        s = self.settings
        extrapolate = s.extrapolation > 0 and w_prev is not None
        if extrapolate and s.extrapolate_first:
            kept = self._extrapolate(W, CD, w_prev, self._x0_first(st), st.obj)
            if kept is not None:
                new, refitted = kept
                return new if refitted else self.refit(new.W, new.X, new.CD)
            extrapolate = False  # tried and not kept: the round's own weights are judged
        cand = self.anchor(W, st.X, CD, refit=not s.bound_first)
        refitted = not s.bound_first
        if cand.obj >= st.obj and not refitted:
            cand, refitted = self.refit(cand.W, cand.X, cand.CD), True
        if not cand.obj < st.obj:
            return None
        if extrapolate:
            kept = self._extrapolate(W, cand.CD, w_prev, cand.X, cand.obj)
            if kept is not None:
                cand, refitted = kept
        if not refitted:
            cand = self.refit(cand.W, cand.X, cand.CD)
        return cand

    def _x0_first(self, st):
        """The start of the extrapolated point's equilibrium under ``extrapolate_first``: the
        current states pushed along their change over the last accepted round, ``X_k + (1 +
        beta)(X_k - X_{k-1})``, the same two-round push as the weights'."""
        if self._x_prev is None or self._x_prev.shape != st.X.shape:
            return st.X
        return st.X + (1.0 + self.beta) * (st.X - self._x_prev)

    def _trial(self, W, X0, CD, bar):
        """Weights W judged against the objective ``bar``: ``(state, refitted)`` when their
        true objective is lower, else None. Judged with (C, D, c) kept first (an upper bound
        of the refitted objective); (C, D, c) is solved only when the bound does not decide."""
        st = self.anchor(W, X0, CD, refit=False)
        if st.obj < bar:
            return st, False
        st = self.refit(st.W, st.X, CD)
        return (st, True) if st.obj < bar else None

    def _extrapolate(self, W, CD, w_prev, X0, bar):
        r"""The extrapolated point :math:`W_{k+1} + \beta_k(W_{k+1} - W_{k-1})` of the new
        weights ``W`` (``w_prev`` is :math:`W_{k-1}`), its equilibrium from ``X0`` and judged
        with ``CD`` first, kept when its true objective is below ``bar``: ``(state, refitted)``,
        or None.

        :math:`\beta_k` adapts: each kept point brings it closer to 1, :math:`1 - \beta_{k+1} =
        (1 - \beta_k)/g` (``extrapolation_growth``) up to ``extrapolation_max``, and a point
        that is not kept restarts it at ``extrapolation`` (the function-value restart of
        adaptive momentum schemes)."""
        s = self.settings
        (A, B, b), (Ap, Bp, bp), beta = W, w_prev, self.beta
        self.history.beta[-1] = beta
        Wt = self.blocks.project((A + beta * (A - Ap), B + beta * (B - Bp), b + beta * (b - bp)))
        trial = self._trial(Wt, X0, CD, bar)
        if trial is None:
            self.beta = s.extrapolation
            return None
        self.history.n_extrapolated += 1
        self.beta = min(1.0 - (1.0 - beta) / s.extrapolation_growth,
                        max(s.extrapolation_max, s.extrapolation))
        return trial

    def _score(self, st):
        if self.validation is None:
            return st.obj
        U_val, Y_val = self.validation[:2]
        w_val = self.validation[2] if len(self.validation) > 2 else None
        v = self.blocks.loss.value(Y_val, st.model.predict(U_val, warn=False),
                                   sample_weight=w_val)
        self.history.validation_loss.append(v)
        return v

    # -- the loop ---------------------------------------------------------------------------
    def run(self, st: State, max_iter: int, *, warn: bool = True):
        """Run up to ``max_iter`` rounds from the anchored state ``st``.

        Returns
        -------
        best : State
            The accepted state with the lowest selection score (the true objective, or the
            validation loss).
        history : History
            This run's history (a new one per call).
        """
        t0 = time.perf_counter()
        s = self.settings
        # a new history per run; block warnings of the anchors before it carry over
        hist = self.history = History(block_warnings=list(self.history.block_warnings))
        hist.train_loss.append(st.obj)
        score0 = self._score(st)
        best = (score0, st, 0)
        scores, accepted_scores = [score0], [score0]
        k = s.n_iter_no_change
        # the residuals of the last k + 1 accepted states (the prediction test)
        residuals = [] if s.pred_tol is None else [self.blocks.residuals(st)]
        w_prev, self._x_prev = None, None
        self.beta = float(s.extrapolation)  # the momentum restarts with every run
        for it in range(1, max_iter + 1):
            hist.n_iter = it
            hist.lam.append(self.lam)
            hist.beta.append(0.0)
            W, CD = self._candidate(it, st)
            new = self._judge(st, W, CD, w_prev)
            stalled = False
            if new is not None:
                w_prev, self._x_prev, st = st.W, st.X, new
                self.lam = max(self.lam * s.lam_decrease, self.lam_min)
            else:
                stalled = self.lam >= s.lam_max
                self.lam = min(self.lam * s.lam_increase, s.lam_max)
            hist.accepted.append(new is not None)
            hist.train_loss.append(st.obj)
            if new is not None:
                score = self._score(st)
            else:
                score = scores[-1]
                if self.validation is not None:
                    hist.validation_loss.append(score)
            scores.append(score)
            if score < best[0]:
                best = (score, st, it)
            self._progress(it, st, score, best)
            if self.callback is not None:
                self.callback(it, st.model, hist)
            if stalled:
                hist.converged, hist.stopped_by = True, "stalled"
                break
            if new is not None:
                accepted_scores.append(score)
                if s.pred_tol is not None:
                    residuals = residuals[-k:] + [self.blocks.residuals(st)]
                    hist.pred_change.append(self._rms(residuals[-1] - residuals[-2]))
            pool = accepted_scores if s.patience == "accepted" else scores
            reason = self._stop_reason(pool, best[0], residuals if new is not None else None)
            if reason is not None:
                hist.converged, hist.stopped_by = True, reason
                break
        else:
            hist.stopped_by = "max_iter"
            if warn and max_iter > 0:
                self._warn_max_iter(max_iter, best[2])
        hist.best_round = best[2]
        hist.time = time.perf_counter() - t0
        return best[1], hist

    def _stop_reason(self, pool, best, residuals):
        """``"objective"`` when the best score improved on the best of ``pool`` before its last
        ``n_iter_no_change`` entries by at most ``tol`` per round (relative); ``"predictions"``
        when the last accepted round's ``residuals`` (None after a rejected round) moved by at
        most ``pred_tol`` per round over them; else None."""
        s, k = self.settings, self.settings.n_iter_no_change
        if len(pool) > k:
            past = min(pool[:-k])
            if past - best <= s.tol * k * abs(past):
                return "objective"
        if (s.pred_tol is not None and residuals is not None and len(residuals) > k
                and self._rms(residuals[-1] - residuals[0]) <= s.pred_tol * k):
            return "predictions"
        return None

    def _warn_max_iter(self, max_iter, best_round):
        s = self.settings
        moving = ("" if s.pred_tol is None else
                  f" and its training predictions still moving by more than "
                  f"pred_tol={s.pred_tol:g}")
        _warn_convergence(
            f"{self.label} stopped at max_iter={max_iter} rounds while the objective was "
            f"still improving by more than tol={s.tol:g}{moving} per round over the "
            f"last {s.n_iter_no_change} rounds; the best round ({best_round}) is returned; "
            f"raise max_iter to train further.", stacklevel=4)

    def _rms(self, R):
        """Root mean square of the rows ``R`` (m, q) over samples (weighted by the blocks'
        unit-mean sample weights ``w``, when they have them) and outputs."""
        sq = np.einsum("ij,ij->i", R, R) / max(R.shape[1], 1)
        w = getattr(self.blocks, "w", None)
        return float(np.sqrt((sq.mean() if w is None else w @ sq / sq.shape[0])))

    def _progress(self, it, st, score, best):
        if not self.verbose:
            return
        hist = self.history
        extra = "" if self.validation is None else f"  validation {score:.6g}"
        print(f"[{self.label}] round {it:3d}  lam={hist.lam[-1]:9.3g}  "
              f"{'accepted' if hist.accepted[-1] else 'rejected'}  "
              f"training objective {st.obj:.6g}{extra}  best {best[0]:.6g} (round {best[2]})",
              flush=True)
