"""experiments/model_recovery.py: the declared BCD arm (CONFIG_CV_BCD) and its seeds."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
sys.path.insert(0, str(EXPERIMENTS))

mr = pytest.importorskip("model_recovery")


def test_cv_bcd_fresh_seeds_never_used_before():
    """The declared fresh seeds are disjoint from every seed the script used before
    (CONFIG's seen, held-out and relaxed-rule seeds, the arm's development seeds, and the
    seeds of the committed results outside the arm's own fresh block)."""
    fresh = set(mr.CONFIG_CV_BCD["fresh_seeds"])
    assert len(fresh) == 5
    c = mr.CONFIG
    used = (set(c["seeds"]) | set(c["heldout_seeds"]) | set(c["fresh_seeds"])
            | set(c["relaxed"]["seen_seeds"]) | set(c["relaxed"]["fresh_seeds"])
            | set(mr.CONFIG_CV_BCD["development_seeds"]))
    assert not fresh & used
    data = json.loads((EXPERIMENTS / "results" / "model_recovery.json").read_text())
    for key in ("seeds", "heldout_seeds", "fresh_seeds"):
        assert not fresh & {int(r["seed"]) for r in data.get(key, [])}
    dev = data.get("cv_bcd", {}).get("development", {})
    assert not fresh & set(dev.get("seeds", []))


def test_cv_bcd_arm_support_is_the_estimators_nonzero_columns():
    """On a tiny teacher the arm's support is ``support_`` of the CV estimator, which equals the
    nonzero columns of its raw-feature ``model_`` (the standardisation rescales columns, so
    zeros must stay zeros); precision and recall agree with a count by hand; the state bias is
    0 (fit_bias='auto' with the group penalty and BCD, as the declaration says)."""
    from lifted_idl.datasets import make_teacher
    from lifted_idl.penalties import GroupPenalty

    U, y, Uv, yv, info = make_teacher(80, 40, n_features=8, n_hidden=4, a_norm=0.5,
                                      noise=0.01, sparse_columns=3, random_state=0)
    out = mr.cv_bcd_arm(U, y, Uv, yv, info["support"], 0, n_hidden=3, alphas=3, cv=2,
                        max_iter=6)
    norms = GroupPenalty(1.0).column_norms(info["model"])  # the teacher: 3 nonzero columns
    assert np.count_nonzero(norms) == 3
    sel = set(out["selected"].tolist())
    assert sel == set(np.flatnonzero(np.asarray(out["norms"]) > 0).tolist())
    assert sel == set(np.flatnonzero(out["feature_importances"] > 0).tolist())
    assert 0 < len(sel) < 8  # the grid's choice keeps some features and drops others
    tp = len(sel & set(info["support"].tolist()))
    assert out["precision"] == pytest.approx(tp / len(sel))
    assert out["recall"] == pytest.approx(tp / 3)
    assert out["rule_agrees"] == (set(mr.support_of(out["norms"]).tolist()) == sel)
    est = mr.ImplicitRegressorCV(**{**mr.CONFIG_CV_BCD["params"], "n_hidden": 3, "alphas": 3,
                                    "cv": 2, "max_iter": 6}, random_state=0)
    with mr.quiet():
        est.fit(U, y)
    # b of the model on the standardised features (model_ folds the centring into its b)
    assert np.all(np.asarray(est.best_estimator_._scaled_model.b) == 0)
    assert np.array_equal(np.flatnonzero(est.support_), out["selected"])
    assert out["val_mse"] == pytest.approx(np.mean((est.predict(Uv) - yv) ** 2))


def test_path_line_fresh_seeds_never_used_before():
    """The path line's fresh seeds are disjoint from every seed of the script's earlier
    configurations and committed results (the CV arm's fresh seeds included)."""
    fresh = set(mr.CONFIG_PATH_LINE["fresh_seeds"])
    assert len(fresh) == 5
    c = mr.CONFIG
    used = (set(c["seeds"]) | set(c["heldout_seeds"]) | set(c["fresh_seeds"])
            | set(mr.CONFIG_CV_BCD["fresh_seeds"]) | set(mr.CONFIG_CV_BCD["development_seeds"])
            | set(range(5)))
    assert not fresh & used
    data = json.loads((EXPERIMENTS / "results" / "model_recovery.json").read_text())
    for key in ("seeds", "heldout_seeds", "fresh_seeds"):
        assert not fresh & {int(r["seed"]) for r in data.get(key, [])}
    cv = data.get("cv_bcd", {}).get("fresh", {})
    assert not fresh & {int(r["seed"]) for r in cv.get("per_seed", [])}
