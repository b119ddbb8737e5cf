"""Tests of the sparsity paths of lifted_idl.training.paths (docs/theory.md §6, §8).

:func:`frank_wolfe_path`: budgets hold exactly at every point, nonzeros are bounded by the
Frank–Wolfe iteration count, the training objective never increases along the path and the
validation score improves as the budget grows on a small teacher, and with the states fixed
(``n_rounds=0``) the warm-started path ends where a cold start and cvxpy end.
:func:`group_lasso_path`: the objective it reports is the penalised objective of its model, and
a strength above the data's collapses every feature group.
"""

from __future__ import annotations

import warnings

import cvxpy as cp
import numpy as np
import pytest

from lifted_idl.datasets import make_teacher
from lifted_idl.penalties import GroupPenalty
from lifted_idl.training.bcd import random_feature_init
from lifted_idl.training.paths import (
    PathPoint,
    frank_wolfe_path,
    group_lasso_path,
    plot_frank_wolfe_path,
)
from lifted_idl.wellposedness import project_inf_norm_ball

BUDGETS = [0.5, 2.0, 8.0]
N_HIDDEN = 4


@pytest.fixture(scope="module")
def data():
    U, y, Uv, yv, _ = make_teacher(120, 120, n_features=6, n_hidden=6, random_state=0)
    mu, sd = y.mean(), y.std()
    return U, (y - mu) / sd, Uv, (yv - mu) / sd


def l1(M):
    return float(np.abs(M).sum())


@pytest.mark.parametrize("kind", ["cd", "ab", "both"])
def test_budgets_respected_and_nonzeros_bounded(data, kind):
    U, y, Uv, yv = data
    path = frank_wolfe_path(U, y, BUDGETS[::-1], n_hidden=N_HIDDEN, kappa_a=0.5, U_val=Uv,
                            Y_val=yv, budget_kind=kind, random_state=0, max_iter=20,
                            n_rounds=3)
    assert [isinstance(pt, PathPoint) for pt in path] == [True] * 3
    key = "kappa_b" if kind == "ab" else "kappa_c"
    assert [pt.params[key] for pt in path] == BUDGETS  # sorted increasingly
    _, B0, _ = random_feature_init(U, N_HIDDEN, "relu", 0, 0.5)
    if kind != "cd":
        B0 = project_inf_norm_ball(B0.reshape(1, -1), BUDGETS[0]).reshape(B0.shape)
    for pt in path:
        m = pt.model
        assert np.abs(m.A).sum(axis=1).max() <= 0.5 * (1 + 1e-12)
        if kind in ("cd", "both"):
            assert l1(np.hstack([m.C, m.D])) <= pt.params["kappa_c"] * (1 + 1e-12)
            # every fw_cd step adds at most one nonzero to [C D] (started from zeros)
            assert pt.nnz["C"] + pt.nnz["D"] <= pt.fw_iter["cd"]
        if kind in ("ab", "both"):
            assert l1(m.B) <= pt.params["kappa_b"] * (1 + 1e-12)
            # a sweep adds at most one nonzero to every row of A (A starts at 0) and one to B
            assert pt.nnz["A"] <= N_HIDDEN * pt.fw_iter["ab"]
            assert pt.nnz["B"] <= np.count_nonzero(B0) + pt.fw_iter["ab"]
        assert pt.nnz == {k: int(np.count_nonzero(getattr(m, k))) for k in "ABCD"}
        norms = np.sqrt((m.B ** 2).sum(axis=0) + (m.D ** 2).sum(axis=0))
        np.testing.assert_allclose(pt.column_norms, norms, rtol=1e-13)
    assert all(a.fw_iter["cd"] <= b.fw_iter["cd"] for a, b in zip(path, path[1:], strict=False))


def test_tight_iteration_budget_bounds_nonzeros(data):
    """With one Frank–Wolfe step per solve and no BCD rounds, [C D] has at most 3 nonzeros."""
    U, y, _, _ = data
    path = frank_wolfe_path(U, y, BUDGETS, n_hidden=N_HIDDEN, random_state=1, max_iter=1,
                            n_rounds=0)
    assert [pt.fw_iter["cd"] for pt in path] == [1, 2, 3]
    assert all(pt.nnz["C"] + pt.nnz["D"] <= k for pt, k in zip(path, [1, 2, 3], strict=True))


def test_unconverged_frank_wolfe_block_is_reported(data):
    """A (C, D) Frank–Wolfe solve cut at one iteration, far from its gap tolerance, is reported
    as unconverged (it used to count as converged whatever its gap)."""
    U, y, _, _ = data
    path = frank_wolfe_path(U, y, BUDGETS, n_hidden=N_HIDDEN, random_state=1, max_iter=1,
                            n_rounds=0, fw_tol=1e-12)
    assert [pt.blocks_converged for pt in path] == [False, False, False]


def test_objective_non_increasing_and_scores_improve(data):
    U, y, Uv, yv = data
    path = frank_wolfe_path(U, y, [0.25, 0.5, 1.0, 2.0, 4.0], n_hidden=N_HIDDEN, U_val=Uv,
                            Y_val=yv, random_state=0, max_iter=100, n_rounds=4)
    losses = [pt.train_loss for pt in path]
    assert all(b <= a * (1 + 1e-12) for a, b in zip(losses, losses[1:], strict=False))
    assert path[-1].train_score > path[0].train_score + 0.3
    assert path[-1].val_score > path[0].val_score + 0.3
    # the reported loss and score are those of the returned model
    m = path[-1].model
    pred = np.asarray(m.predict(U))[:, 0]
    assert path[-1].train_loss == pytest.approx(0.5 * np.mean((pred - y) ** 2), rel=1e-8)
    r2 = 1 - np.sum((np.asarray(m.predict(Uv))[:, 0] - yv) ** 2) / np.sum((yv - yv.mean()) ** 2)
    assert path[-1].val_score == pytest.approx(r2, rel=1e-8)


def test_warm_start_matches_cold_start_and_cvxpy(data):
    """With the states fixed (n_rounds=0) the path is a sequence of convex l1-ball problems: the
    warm-started endpoint, a cold start at the last budget, and cvxpy agree."""
    U, y, _, _ = data
    kw = dict(n_hidden=N_HIDDEN, random_state=2, max_iter=20000, n_rounds=0, fw_tol=1e-10)
    warm = frank_wolfe_path(U, y, [0.3, 1.0, 3.0], **kw)[-1]
    cold = frank_wolfe_path(U, y, [3.0], **kw)[0]
    assert warm.train_loss == pytest.approx(cold.train_loss, rel=1e-7)
    assert warm.fw_iter["cd"] != cold.fw_iter["cd"]
    X = np.asarray(warm.model.equilibrium(U))
    F = np.hstack([X, U])
    w, c = cp.Variable(F.shape[1]), cp.Variable()
    prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(F @ w + c - y) / len(y)),
                      [cp.norm1(w) <= 3.0])
    prob.solve(solver=cp.CLARABEL)
    assert warm.train_loss == pytest.approx(prob.value, rel=1e-6)
    assert warm.train_loss <= prob.value * (1 + 1e-9)


def test_classification_path(data):
    U, y, Uv, yv = data
    labels = np.where(y > 0, "hi", "lo")
    path = frank_wolfe_path(U, labels, [0.5, 4.0], task="classification", n_hidden=N_HIDDEN,
                            U_val=Uv, Y_val=np.where(yv > 0, "hi", "lo"), random_state=0,
                            max_iter=30, n_rounds=2)
    for pt in path:
        assert list(pt.classes) == ["hi", "lo"]
        assert l1(np.hstack([pt.model.C, pt.model.D])) <= pt.params["kappa_c"] * (1 + 1e-12)
        pred = pt.classes[np.asarray(pt.model.predict(Uv)).argmax(axis=1)]
        assert pt.val_score == pytest.approx(np.mean(pred == np.where(yv > 0, "hi", "lo")))
    assert path[1].train_loss <= path[0].train_loss


def test_plot_shows_the_path(data):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    U, y, Uv, yv = data
    path = frank_wolfe_path(U, y, BUDGETS, n_hidden=N_HIDDEN, U_val=Uv, Y_val=yv,
                            random_state=0, max_iter=10, n_rounds=1)
    ax_nnz, ax_score = plot_frank_wolfe_path(path)
    lines = {ln.get_label(): ln for ln in ax_nnz.get_lines()}
    np.testing.assert_array_equal(lines["nnz(D)"].get_ydata(), [pt.nnz["D"] for pt in path])
    np.testing.assert_array_equal(lines["nnz(D)"].get_xdata(), BUDGETS)
    scores = {ln.get_label(): ln for ln in ax_score.get_lines()}
    np.testing.assert_allclose(scores["validation"].get_ydata(), [pt.val_score for pt in path])
    plt.close("all")
    with pytest.raises(ValueError, match="non-empty list of PathPoint"):
        plot_frank_wolfe_path([])
    # a group-lasso path has no budgets to plot against (it used to fail with a KeyError)
    group = group_lasso_path(U, y, [0.1], n_hidden=N_HIDDEN, random_state=0, n_rounds=1)
    with pytest.raises(ValueError, match="from frank_wolfe_path"):
        plot_frank_wolfe_path(group)


def test_path_errors(data):
    U, y, Uv, yv = data
    with pytest.raises(ValueError, match="budget_kind must be"):
        frank_wolfe_path(U, y, BUDGETS, budget_kind="b")
    with pytest.raises(ValueError, match="budgets must be finite and > 0"):
        frank_wolfe_path(U, y, [1.0, -1.0])
    with pytest.raises(ValueError, match="nested"):
        frank_wolfe_path(U, y, [[1.0, 4.0], [2.0, 1.0]], budget_kind="both")
    with pytest.raises(ValueError, match="pass both U_val and Y_val"):
        frank_wolfe_path(U, y, BUDGETS, U_val=Uv)
    with pytest.raises(ValueError, match="kappa_a must be a finite number in"):
        frank_wolfe_path(U, y, BUDGETS, kappa_a=1.5)
    with pytest.raises(ValueError, match="task must be"):
        frank_wolfe_path(U, y, BUDGETS, task="ranking")
    with pytest.raises(ValueError, match="alphas must be"):
        group_lasso_path(U, y, [-1.0])
    with pytest.raises(ValueError, match="ord must be 2 or np.inf"):
        group_lasso_path(U, y, [0.1], ord=3)
    for flag in ("warm_start", "fit_bias"):  # a string used to be taken for True
        with pytest.raises(ValueError, match=f"{flag} must be True or False"):
            group_lasso_path(U, y, [0.1], **{flag: "no"})


# --------------------------------------------------------------------------------------------
# the group path
# --------------------------------------------------------------------------------------------
def test_group_path_objective_and_collapse(data):
    U, y, Uv, yv = data
    amax = np.abs(U.T @ (y - y.mean())).max() / len(y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = group_lasso_path(U, y, [0.05 * amax, 20 * amax], n_hidden=N_HIDDEN, U_val=Uv,
                                Y_val=yv, random_state=0, n_rounds=15, c_ridge=1e-2,
                                fit_bias=True, warm_start=True)
    assert [pt.params["alpha"] for pt in path] == [20 * amax, 0.05 * amax]
    G = GroupPenalty(1.0)
    for pt in path:
        m = pt.model
        pred = np.asarray(m.predict(U))[:, 0]
        loss = 0.5 * np.mean((pred - y) ** 2)
        assert pt.train_loss == pytest.approx(loss, rel=1e-8)
        want = loss + pt.params["alpha"] * G.value(m) + 0.5e-2 * np.sum(m.C ** 2)
        assert pt.objective == pytest.approx(want, rel=1e-8)
    # far above the data's strength every group shrinks to (numerically) nothing
    _, B0, _ = random_feature_init(U, N_HIDDEN, "relu", 0, 0.5)
    assert path[0].column_norms.max() < 1e-3 * np.linalg.norm(B0, axis=0).max()
    assert path[1].column_norms.max() > 0.1
    assert path[1].train_loss < path[0].train_loss


def test_group_path_zeroes_noise_features_exactly():
    """The joint (B, D) step of the BCD path sets the columns of pure-noise inputs exactly to
    zero (the one-sided block steps alone could only shrink them) and keeps the informative
    ones."""
    rng = np.random.default_rng(0)
    U = rng.standard_normal((150, 6))
    y = 3 * U[:, 0] - 2 * U[:, 1] + np.maximum(U[:, 0], 0) + 0.1 * rng.standard_normal(150)
    y = (y - y.mean()) / y.std()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (pt,) = group_lasso_path(U, y, [0.05], n_hidden=N_HIDDEN, random_state=0, n_rounds=10,
                                 c_ridge=1e-2, fit_bias=True)
    norms = pt.column_norms
    assert np.all(norms[2:] == 0.0) and np.all(norms[:2] > 1e-2), norms


@pytest.mark.parametrize("seed", [3, 5])
def test_extrapolated_rounds_keep_the_budget_on_b(seed):
    """The rounds' extrapolated point is projected onto every constraint of the weights: with
    a budget on B (budget_kind="ab"), ||B||_1 <= kappa_B at every point (it exceeded it,
    up to 0.63 for 0.5, when only A was projected)."""
    rng = np.random.default_rng(seed)
    U = rng.standard_normal((100, 5))
    y = np.tanh(U @ rng.standard_normal(5)) + 0.1 * rng.standard_normal(100)
    path = frank_wolfe_path(U, y, [0.5], n_hidden=6, activation="tanh", budget_kind="ab",
                            random_state=seed, n_rounds=20)
    for pt in path:
        assert l1(pt.model.B) <= 0.5 * (1 + 1e-12)
        assert np.abs(pt.model.A).sum(axis=1).max() <= 0.5 * (1 + 1e-12)


def test_group_path_decreasing_start_is_stuck_at_b_zero_increasing_is_not(data):
    """B = 0 (with C = 0) is a stationary point of the group-penalised objective: from the
    largest strength down, B never comes back once the first point zeroed it; fitted in
    increasing order, the weak strength is fitted first and keeps its states. With
    ``c_ridge="alpha"`` the ridge of every point is its own strength."""
    U, y, Uv, yv = data
    amax = np.abs(U.T @ (y - y.mean())).max() / len(y)
    alphas = [0.05 * amax, 20 * amax]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kw = {"n_hidden": N_HIDDEN, "random_state": 0, "n_rounds": 15, "fit_bias": True,
              "warm_start": True}
        down = group_lasso_path(U, y, alphas, **kw)
        up = group_lasso_path(U, y, alphas, order="increasing", **kw)
    assert [pt.params["alpha"] for pt in up] == sorted(alphas)
    assert [pt.params["alpha"] for pt in down] == sorted(alphas)[::-1]
    G = GroupPenalty(1.0)
    for pt in down + up:
        m, a = pt.model, pt.params["alpha"]
        loss = 0.5 * np.mean((np.asarray(m.predict(U))[:, 0] - y) ** 2)
        assert pt.objective == pytest.approx(loss + a * G.value(m)
                                             + 0.5 * a * np.sum(m.C ** 2), rel=1e-8)
    assert np.abs(down[1].model.B).max() < 1e-8
    assert np.linalg.norm(up[0].model.B) > 0.1
    assert up[0].train_loss < down[1].train_loss
    with pytest.raises(ValueError, match="order"):
        group_lasso_path(U, y, alphas, order="up")
    with pytest.raises(ValueError, match="c_ridge"):
        group_lasso_path(U, y, alphas, c_ridge="beta")


def test_group_path_cold_points_are_independent_fits(data):
    """The defaults (``warm_start=False``, ``fit_bias=False``): every point is the one-point
    path at its strength (same start, same divergence weight), bit for bit, and b stays 0."""
    U, y, _, _ = data
    amax = np.abs(U.T @ (y - y.mean())).max() / len(y)
    alphas = [0.3 * amax, 0.03 * amax]
    kw = {"n_hidden": N_HIDDEN, "random_state": 0, "n_rounds": 6}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = group_lasso_path(U, y, alphas, **kw)
        singles = [group_lasso_path(U, y, [a], **kw)[0] for a in alphas]
        warm = group_lasso_path(U, y, alphas, warm_start=True, **kw)
    for pt, one in zip(path, singles, strict=True):
        assert pt.params == one.params
        for name in ("A", "B", "C", "D", "b"):
            np.testing.assert_array_equal(getattr(pt.model, name), getattr(one.model, name))
        assert np.all(np.asarray(pt.model.b) == 0)
    # the warm path's second point starts elsewhere, so it differs
    assert not np.array_equal(warm[1].model.B, path[1].model.B)
