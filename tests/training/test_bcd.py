"""Properties of the block-coordinate descent loop (theory §8)."""

import numpy as np
import pytest

from lifted_idl import ConvergenceWarning
from lifted_idl.activations import get_activation
from lifted_idl.datasets import make_teacher
from lifted_idl.losses import SoftmaxCrossEntropy, SquaredLoss
from lifted_idl.penalties import L2Penalty
from lifted_idl.training.bcd import fit_bcd
from lifted_idl.training.objective import true_objective


@pytest.fixture(scope="module")
def data():
    U, y, Ut, yt, _ = make_teacher(120, 60, n_features=4, n_hidden=6, random_state=2)
    s = y.std()
    return U, (y / s)[:, None], Ut, (yt / s)[:, None]


def _fit(data, loss=None, **kw):
    U, Y = data[:2]
    args = dict(n_hidden=6, kappa=0.9, activation=get_activation("relu"),
                pen_ab=L2Penalty(1e-3), pen_cd=L2Penalty(1e-3), max_iter=6, random_state=0)
    args.update(kw)
    return fit_bcd(U, Y, SquaredLoss() if loss is None else loss, **args)


@pytest.mark.parametrize("x_step", [False, True])
@pytest.mark.parametrize("loss", [SquaredLoss(), SoftmaxCrossEntropy()], ids=["sq", "ce"])
def test_relaxed_objective_never_increases_within_a_round(data, x_step, loss):
    """Every block step of a round lowers the relaxed objective, the inexact ones too (with
    the cross-entropy the P step stops at ``solve_p``'s ``rtol``)."""
    if isinstance(loss, SoftmaxCrossEntropy):
        U = data[0]
        labels = (U[:, 0] ** 2 + U[:, 1] > 0.8).astype(int) + (U[:, 2] > 0.5)
        data = (U, np.eye(3)[labels])
    _, hist = _fit(data, x_step=x_step, loss=loss)
    rounds = {}
    for it, block, lam, val in hist.relaxed:
        rounds.setdefault(it, []).append((block, lam, val))
    assert len(rounds) == hist.n_iter
    for it, steps in rounds.items():
        assert len({lam for _, lam, _ in steps}) == 1  # fixed lambda inside a round
        vals = [v for _, _, v in steps]
        for a, b in zip(vals, vals[1:], strict=False):
            assert b <= a + 1e-10 * max(1.0, abs(a)), (it, steps)


def test_anchor_equals_true_objective(data):
    """At the anchor X = P = equilibrium the relaxed objective is the true objective."""
    _, hist = _fit(data)
    anchors = [v for it, block, _, v in hist.relaxed if block == "anchor"]
    np.testing.assert_allclose(anchors, hist.train_loss[: len(anchors)], rtol=1e-8)


def test_true_objective_monotone_and_lambda_adapts(data):
    """Rejected rounds leave the weights unchanged and raise lambda; accepted ones lower it."""
    _, hist = _fit(data, max_iter=8, lam=1e-3, lam_min=1e-4)
    tl = hist.train_loss
    assert all(b <= a for a, b in zip(tl, tl[1:], strict=False))
    for k, acc in enumerate(hist.accepted[:-1]):
        if acc:
            assert hist.lam[k + 1] == pytest.approx(max(hist.lam[k] * 0.5, 1e-4))
            assert tl[k + 1] < tl[k]
        else:
            assert hist.lam[k + 1] == pytest.approx(hist.lam[k] * 4)
            assert tl[k + 1] == tl[k]


def test_returned_model_is_the_best_round_and_beats_init(data):
    U, Y, _, _ = data
    model, hist = _fit(data, max_iter=8)
    obj = true_objective(model, U, Y, SquaredLoss(), L2Penalty(1e-3), L2Penalty(1e-3))
    assert obj == pytest.approx(min(hist.train_loss), rel=1e-8)
    assert obj < 0.9 * hist.train_loss[0]
    assert np.abs(model.A).sum(axis=1).max() <= 0.9 + 1e-12


def test_final_cd_is_optimal_on_the_true_equilibrium(data):
    """(C, D, c) solves the ridge problem on X*: its gradient vanishes (KKT)."""
    U, Y, _, _ = data
    model, _ = _fit(data)
    X = model.equilibrium(U)
    R = model.output(X, U) - Y
    m = U.shape[0]
    gC = R.T @ X / m + 1e-3 * model.C
    gD = R.T @ U / m + 1e-3 * model.D
    gc = R.sum(axis=0) / m
    for g in (gC, gD, gc):
        assert np.abs(g).max() < 1e-7


@pytest.mark.parametrize("exact_cd", [True, False])
@pytest.mark.parametrize("extrapolation", [0.0, 0.9])
def test_every_round_ends_with_optimal_cd_and_its_true_objective(extrapolation, exact_cd,
                                                                  monkeypatch):
    """The candidate of a round may be judged with (C, D, c) kept (an upper bound), but every
    accepted state has (C, D, c) solved on its equilibrium and the history records its true
    objective. With the exact (C, D, c) step the cross-entropy KKT conditions hold; with the
    default inexact step (``solve_cd``'s ``rtol`` from the previous state's (C, D, c)) the gap
    to the block's optimum is at most ``rtol`` times the gap of that warm start."""
    from scipy.special import softmax

    from lifted_idl.blocks import cd_objective, solve_cd
    from lifted_idl.training import bcd as bcd_mod

    if exact_cd:
        monkeypatch.setattr(bcd_mod, "_CD_RTOL", None)
    rng = np.random.default_rng(1)
    U = rng.standard_normal((80, 3))
    labels = (U[:, 0] ** 2 + U[:, 1] > 0.8).astype(int) + (U[:, 2] > 0.5)
    Y = np.eye(3)[labels]
    pen, loss = L2Penalty(1e-3), SoftmaxCrossEntropy()
    checked, prev, ratios = [], [], []

    def check(it, model, hist):
        X = model.equilibrium(U)
        CD = (model.C, model.D, model.c)
        if exact_cd:
            G = (softmax(model.output(X, U), axis=1) - Y) / U.shape[0]
            for g in (G.T @ X + 1e-3 * model.C, G.T @ U + 1e-3 * model.D, G.sum(axis=0)):
                assert np.abs(g).max() < 1e-6, it
        elif prev and hist.accepted[-1]:
            best = solve_cd(X, U, Y, loss, pen, init=CD, tol=1e-10).objective
            gap = cd_objective(X, U, Y, loss, pen, *CD) - best
            gap0 = cd_objective(X, U, Y, loss, pen, *prev[-1]) - best
            assert gap <= bcd_mod._CD_RTOL * gap0, it
            ratios.append(gap / gap0)
        prev.append(CD)
        assert hist.train_loss[-1] == pytest.approx(
            true_objective(model, U, Y, loss, pen, pen), rel=1e-9)
        checked.append(it)

    _, hist = fit_bcd(U, Y, loss, n_hidden=6, kappa=0.8, activation=get_activation("relu"),
                      pen_ab=pen, pen_cd=pen, max_iter=8, extrapolation=extrapolation,
                      random_state=0, callback=check)
    assert len(checked) == hist.n_iter and sum(hist.accepted) >= 4
    assert np.all(np.diff(hist.train_loss) <= 1e-12)
    assert exact_cd or len(ratios) >= 3


def test_validation_selects_the_best_validation_round(data):
    U, Y, Ut, Yt = data
    model, hist = _fit(data, validation=(Ut, Yt), max_iter=6, n_iter_no_change=10)
    assert len(hist.validation_loss) == hist.n_iter + 1
    v = SquaredLoss().value(Yt, model.predict(Ut))
    assert v == pytest.approx(min(hist.validation_loss), rel=1e-8)
    assert hist.validation_loss[hist.best_round] == min(hist.validation_loss)


def test_cross_entropy_training_lowers_the_loss():
    rng = np.random.default_rng(0)
    U = rng.standard_normal((90, 3))
    labels = (U[:, 0] ** 2 + U[:, 1] > 0.8).astype(int) + (U[:, 2] > 0.5)
    Y = np.eye(3)[labels]
    model, hist = fit_bcd(U, Y, SoftmaxCrossEntropy(), n_hidden=6, kappa=0.8,
                          activation=get_activation("relu"), pen_ab=L2Penalty(1e-3),
                          pen_cd=L2Penalty(1e-3), max_iter=5, random_state=0)
    assert min(hist.train_loss) < hist.train_loss[0]
    assert np.argmax(model.predict(U), axis=1).tolist() != [0] * 90


def test_max_iter_reached_warns(data):
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        _, hist = _fit(data, max_iter=2, tol=0.0)
    assert not hist.converged and hist.stopped_by == "max_iter"


def _residual_rms(model, U, Y, loss, prev):
    """The residuals of ``model`` on (U, Y) (softmax probabilities minus one-hot targets, or
    fitted values minus targets) and their root-mean-square change from ``prev``."""
    from scipy.special import softmax

    Yhat = model.predict(U)
    R = (softmax(Yhat, axis=1) if isinstance(loss, SoftmaxCrossEntropy) else Yhat) - Y
    return R, (None if prev is None else float(np.sqrt(np.mean(np.sum((R - prev) ** 2, 1)
                                                                / R.shape[1]))))


@pytest.mark.parametrize("loss", ["squared", "cross_entropy"])
def test_pred_tol_stops_when_the_predictions_stop_moving(data, loss):
    """``pred_tol``: the recorded change of every accepted round is the root-mean-square change
    of the residuals (probabilities minus one-hot targets for the cross-entropy), recomputed
    here from the models of the rounds; the run stops at the first accepted round whose change
    over the last ``n_iter_no_change`` accepted rounds is below ``pred_tol`` per round, and not
    before."""
    U, Y, _, _ = data
    if loss == "cross_entropy":
        Y = np.eye(2)[(Y[:, 0] > np.median(Y[:, 0])).astype(int)]
        lossobj = SoftmaxCrossEntropy()
    else:
        lossobj = SquaredLoss()
    models = []
    k, pred_tol = 3, 5e-3
    kw = dict(n_hidden=6, kappa=0.9, activation=get_activation("relu"), pen_ab=L2Penalty(1e-3),
              pen_cd=L2Penalty(1e-3), tol=0.0, n_iter_no_change=k, pred_tol=pred_tol,
              random_state=0, record_relaxed=False)
    start, _ = fit_bcd(U, Y, lossobj, max_iter=0, **kw)  # no round: the start
    _, hist = fit_bcd(U, Y, lossobj, max_iter=200, **kw,
                      callback=lambda it, m, h: models.append(m))
    assert hist.converged and hist.stopped_by == "predictions"
    assert len(hist.pred_change) == hist.n_accepted
    # the residuals of the start and of every accepted round, from the models themselves
    states = [start] + [m for m, a in zip(models, hist.accepted, strict=True) if a]
    res = [_residual_rms(start, U, Y, lossobj, None)[0]]
    for j, m in enumerate(states[1:]):
        R, change = _residual_rms(m, U, Y, lossobj, res[-1])
        assert change == pytest.approx(hist.pred_change[j], rel=1e-6, abs=1e-12)
        res.append(R)
    windows = [_residual_rms(states[j], U, Y, lossobj, res[j - k])[1]
               for j in range(k, len(res))]
    assert windows[-1] <= pred_tol * k
    assert all(w > pred_tol * k for w in windows[:-1])


@pytest.mark.filterwarnings("ignore::lifted_idl.ConvergenceWarning")
def test_pred_tol_none_changes_nothing(data):
    _, h0 = _fit(data, max_iter=8)
    _, h1 = _fit(data, max_iter=8, pred_tol=None)
    assert h0.train_loss == h1.train_loss and h1.pred_change == []
    assert h1.stopped_by in ("objective", "max_iter")
    with pytest.raises(ValueError, match="pred_tol"):
        _fit(data, pred_tol=-1.0)


def test_cvxpy_blocks_give_the_same_first_round(data):
    U, Y, _, _ = data
    m_fast, h_fast = _fit(data, max_iter=1)
    m_cvx, h_cvx = _fit(data, max_iter=1, block_solver="cvxpy")
    np.testing.assert_allclose(h_cvx.train_loss, h_fast.train_loss, rtol=1e-4)


@pytest.mark.parametrize("ord", [2, np.inf])
def test_group_penalty_in_bcd_keeps_descent(ord):
    """With the group penalty of [IDL (5.1)], every block step is still exact: the relaxed
    objective is non-increasing within a round, equals the true objective (penalty included) at
    the anchor, and the true objective never increases; the returned model's objective is the
    best one recorded."""
    from lifted_idl.penalties import GroupPenalty, NoPenalty

    U, y, _, _, _ = make_teacher(200, 10, n_features=4, n_hidden=6, random_state=3)
    rng = np.random.default_rng(0)
    U = np.hstack([U, rng.standard_normal((U.shape[0], 4))])  # 4 noise features
    Y = (y / y.std())[:, None]
    group = GroupPenalty(0.02, ord)
    model, hist = fit_bcd(U, Y, SquaredLoss(), n_hidden=6, kappa=0.9,
                          activation=get_activation("relu"), pen_ab=NoPenalty(),
                          pen_cd=NoPenalty(), group=group, c_ridge=1e-2, max_iter=15,
                          random_state=0)
    rounds = {}
    for it, _block, _lam, val in hist.relaxed:
        rounds.setdefault(it, []).append(val)
    for vals in rounds.values():
        for a, b in zip(vals, vals[1:], strict=False):
            assert b <= a + 1e-10 * max(1.0, abs(a))
    tl = hist.train_loss
    assert all(b <= a for a, b in zip(tl, tl[1:], strict=False))
    anchors = [v for it, block, _, v in hist.relaxed if block == "anchor"]
    np.testing.assert_allclose(anchors, tl[: len(anchors)], rtol=1e-8)
    expected = (SquaredLoss().value(Y, model.predict(U)) + group.value(model)
                + 0.5e-2 * float(np.vdot(model.C, model.C)))
    assert expected == pytest.approx(min(tl), rel=1e-6)
    with pytest.raises(ValueError, match="group cannot be combined"):
        fit_bcd(U, Y, SquaredLoss(), n_hidden=3, kappa=0.9, activation=get_activation("relu"),
                pen_ab=L2Penalty(1e-3), pen_cd=NoPenalty(), group=group, max_iter=1)


def test_block_solver_names_one_cvxpy_solver(data):
    """``block_solver`` may name the cvxpy solver of every block: ECOS takes every class and
    gives the fast blocks' first round; OSQP cannot take tanh's exponential cones and says so."""
    _, h_fast = _fit(data, max_iter=1)
    _, h_ecos = _fit(data, max_iter=1, block_solver="ECOS")
    np.testing.assert_allclose(h_ecos.train_loss, h_fast.train_loss, rtol=1e-4)
    with pytest.raises(ValueError, match="block_solver must be 'fast', 'cvxpy' or one of"):
        _fit(data, max_iter=1, block_solver="GUROBI")
    with pytest.raises(ValueError, match="cvxpy_solver='OSQP' cannot solve the P block"):
        _fit(data, max_iter=1, block_solver="OSQP", activation=get_activation("tanh"))


@pytest.mark.filterwarnings("ignore::lifted_idl.ConvergenceWarning")
def test_adaptive_extrapolation_follows_its_rule(data):
    """The extrapolation weight grows towards 1 after every kept point (1 - beta divided by
    the growth factor, capped) and restarts after a point that is not kept; the true
    objective still never increases."""
    kept = []
    growth, cap, start = 1.5, 0.97, 0.6
    _, hist = _fit(data, max_iter=25, tol=0.0, extrapolation=start, extrapolation_growth=growth,
                   extrapolation_max=cap,
                   callback=lambda it, model, h: kept.append(h.n_extrapolated))
    assert np.all(np.diff(hist.train_loss) <= 1e-12)
    gained = np.diff([0] + kept)
    tried = [k for k, b in enumerate(hist.beta) if b > 0]
    assert len(tried) >= 8 and gained.sum() >= 3 and gained.sum() < len(tried)
    assert hist.beta[tried[0]] == start
    for k, nxt in zip(tried[:-1], tried[1:], strict=True):
        b = hist.beta[k]
        want = min(1 - (1 - b) / growth, cap) if gained[k] else start
        assert hist.beta[nxt] == pytest.approx(want, rel=1e-12), k
    assert max(hist.beta) > start  # the weight did grow


@pytest.mark.filterwarnings("ignore::lifted_idl.ConvergenceWarning")
def test_fixed_extrapolation_keeps_its_weight(data):
    _, hist = _fit(data, max_iter=10, tol=0.0, extrapolation=0.9, extrapolation_growth=1.0)
    assert {b for b in hist.beta if b > 0} == {0.9}


@pytest.mark.parametrize("kw", [{"extrapolation_growth": 0.5}, {"extrapolation_max": 1.0}])
def test_adaptive_extrapolation_settings_are_checked(kw):
    from lifted_idl.training.rounds import RoundSettings

    with pytest.raises(ValueError, match=next(iter(kw))):
        RoundSettings(**kw)


@pytest.mark.filterwarnings("ignore::lifted_idl.ConvergenceWarning")
def test_weight_penalties_are_checked_and_names_accepted(data):
    """pen_ab / pen_cd as fit_gradient takes them: None and names are penalties of strength 0
    (the same fit as NoPenalty), and one block's view, the group penalty or a penalty on all
    four matrices give a ValueError that names the argument."""
    from lifted_idl.penalties import GroupPenalty, NoPenalty
    from lifted_idl.robustness.penalties import LipschitzSurrogatePenalty

    ref, _ = _fit(data, max_iter=2, pen_ab=NoPenalty(), pen_cd=NoPenalty())
    for pen in (None, "l2", "none"):
        model, _ = _fit(data, max_iter=2, pen_ab=pen, pen_cd=pen)
        np.testing.assert_array_equal(model.A, ref.A)
        np.testing.assert_array_equal(model.C, ref.C)
    for bad, match in ((L2Penalty(1e-3).restrict("ab"), "pen_ab=L2View"),
                       (GroupPenalty(0.1), "pen_ab.*group="),
                       (LipschitzSurrogatePenalty(0.1), "no view on one BCD block")):
        with pytest.raises(ValueError, match=match):
            _fit(data, max_iter=1, pen_ab=bad)


@pytest.mark.parametrize("first", [True, False])
def test_extrapolate_first_judges_the_extrapolated_point_first(data, monkeypatch, first):
    """``extrapolate_first``: a round whose extrapolated point is kept solves one equilibrium
    (the point's own; the round's new weights are never anchored), a round whose point is not
    kept two (the point, then the new weights); off, every round that tries the point solves
    two. Either way accepted rounds lower the true objective and rejected ones keep it."""
    from lifted_idl.training.bcd import BCDBlocks

    solves = []
    orig = BCDBlocks.equilibrium

    def counting(self, W, X0):
        solves.append(1)
        return orig(self, W, X0)

    monkeypatch.setattr(BCDBlocks, "equilibrium", counting)
    per_round, kept = [], []

    def cb(it, model, h):
        per_round.append(len(solves))
        kept.append(h.n_extrapolated)

    _, hist = _fit(data, max_iter=20, tol=0.0, extrapolate_first=first, callback=cb)
    n_solves = np.diff(per_round, prepend=0)
    gained = np.diff(kept, prepend=0)
    tl = hist.train_loss
    tried = [k for k, b in enumerate(hist.beta) if b > 0]
    assert len(tried) >= 5 and gained.sum() >= 3
    for k in range(1, hist.n_iter):  # round 1 also holds the start's anchor: skip it
        if hist.accepted[k]:
            assert tl[k + 1] < tl[k]
        else:
            assert tl[k + 1] == tl[k] and not gained[k]
        if k in tried and first:
            assert n_solves[k] == (1 if gained[k] else 2), k
        elif k in tried:
            assert n_solves[k] == 2, k
        else:
            assert n_solves[k] == 1, k


def test_blocks_objective_is_the_true_objective(data):
    """BCDBlocks.objective (the outputs of the checked training inputs, no re-check per round)
    is :func:`true_objective` of the model at its equilibrium, bit for bit, with and without
    sample weights."""
    from lifted_idl.training.bcd import BCDBlocks, random_feature_init

    U, Y = data[:2]
    act = get_activation("relu")
    w = np.random.default_rng(0).uniform(0.5, 2.0, U.shape[0])
    for sw in (None, w):
        bl = BCDBlocks(U, Y, SquaredLoss(), act, kappa=0.9, pen_ab=L2Penalty(1e-2),
                       pen_cd=L2Penalty(1e-3), sample_weight=sw)
        W = random_feature_init(U, 6, act, 0, 0.9)
        X, _ = bl.equilibrium(W, None)
        CD, _ = bl.cd_step(W, X, None)
        model = bl.model(W, CD)
        want = true_objective(model, U, Y, SquaredLoss(), L2Penalty(1e-2), L2Penalty(1e-3), X,
                              sample_weight=bl.w)
        assert bl.objective(W, CD, X, model) == want
        assert np.array_equal(X, model.equilibrium(U))
