"""Tests of the ``lifted-idl`` command (lifted_idl.cli), run in-process on tiny data.

Checks: a fit -> predict round trip reproduces the saved estimator's predictions; the task is
detected from the target column; analyze prints the certificate and the same Lipschitz bound and
certified accuracy as lifted_idl.robustness, and writes a PNG; experiments are discovered and
run; every bad input exits with status 2 and a one-line message naming the culprit.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest

from lifted_idl import load, save
from lifted_idl.cli import _detect_task, main

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--n-hidden", "4", "--max-iter", "2", "-q"]
# the gradient solver is the quick one for these tiny fits; BCD runs in the regression fixture
FAST = ["--n-hidden", "4", "--solver", "gradient", "--gradient-max-iter", "15", "-q"]


def write_csv(path: Path, header, rows) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def read_csv(path: Path):
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """Tiny regression and classification CSV files, and a model fitted on each."""
    d = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    U = rng.standard_normal((40, 3))
    y = U @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.standard_normal(40)
    reg_csv = write_csv(d / "reg.csv", ["a", "b", "c", "y"],
                        [[repr(float(x)) for x in u] + [repr(float(t))]
                         for u, t in zip(U, y, strict=True)])
    centres = np.array([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]])
    lab = np.repeat([0, 1, 2], 15)
    V = centres[lab] + 0.5 * rng.standard_normal((45, 3))
    names = np.array(["cat", "dog", "eel"])
    clf_csv = write_csv(d / "clf.csv", ["f1", "f2", "f3", "animal"],
                        [[repr(float(x)) for x in v] + [names[k]]
                         for v, k in zip(V, lab, strict=True)])
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(d)
        assert main(["fit", "--csv", str(reg_csv), "--target", "y", "--out",
                     str(d / "reg.npz"), *TINY]) == 0
        assert main(["fit", "--csv", str(clf_csv), "--target", "animal", "--out",
                     str(d / "clf.npz"), *FAST]) == 0
    return {"dir": d, "reg_csv": reg_csv, "clf_csv": clf_csv, "U": U, "V": V,
            "labels": names[lab], "reg": d / "reg.npz", "clf": d / "clf.npz"}


def test_fit_writes_model_and_summary(work):
    s = json.loads(work["reg"].with_suffix(".json").read_text())
    assert s["task"] == "regression" and s["estimator"] == "ImplicitRegressor"
    assert s["feature_names"] == ["a", "b", "c"] and s["target"] == "y"
    assert s["n_train"] + s["n_test"] == 40 and s["n_test"] == 10
    assert s["params"]["n_hidden"] == 4 and s["params"]["max_iter"] == 2
    assert s["params"]["solver"] == "bcd" and s["n_iter"] <= 2
    with np.load(work["reg"], allow_pickle=False) as npz:  # a plain-array file
        assert "metadata" in npz.files
    est = load(work["reg"])
    assert s["test_scores"]["r2"] == pytest.approx(
        est.score(*_test_split(work["U"], _col(work["reg_csv"], "y"), s)))
    c = json.loads(work["clf"].with_suffix(".json").read_text())
    assert c["task"] == "classification"  # detected from text labels
    assert c["classes"] == ["cat", "dog", "eel"]


def _col(path, name):
    header, rows = read_csv(path)
    return np.array([float(r[header.index(name)]) for r in rows])


def _test_split(X, y, summary):
    from sklearn.model_selection import train_test_split

    _, Xte, _, yte = train_test_split(X, y, test_size=summary["data"]["test_size"],
                                      random_state=summary["data"]["random_state"])
    return Xte, yte


def test_predict_round_trip_regression(work, capsys):
    out = work["dir"] / "pred_reg.csv"
    assert main(["predict", "--model", str(work["reg"]), "--csv", str(work["reg_csv"]),
                 "--out", str(out)]) == 0
    header, rows = read_csv(out)
    assert header == ["prediction"]
    got = np.array([float(r[0]) for r in rows])
    est = load(work["reg"])
    np.testing.assert_array_equal(got, est.predict(work["U"]))  # repr round-trips exactly


def test_predict_ignores_an_empty_target_column_and_reads_bare_estimators(work, tmp_path):
    header, rows = read_csv(work["reg_csv"])
    blank = write_csv(tmp_path / "new.csv", header, [r[:-1] + [""] for r in rows])
    out = tmp_path / "p.csv"
    assert main(["predict", "--model", str(work["reg"]), "--csv", str(blank), "--out",
                 str(out)]) == 0
    est = load(work["reg"])
    got = np.array([float(r[0]) for r in read_csv(out)[1]])
    np.testing.assert_array_equal(got, est.predict(work["U"]))
    # an estimator saved with lifted_idl.save (no column names): the CSV's columns in order
    bare = tmp_path / "bare.npz"
    save(est, bare)
    features_only = write_csv(tmp_path / "f.csv", header[:-1], [r[:-1] for r in rows])
    assert main(["predict", "--model", str(bare), "--csv", str(features_only), "--out",
                 str(out)]) == 0
    got = np.array([float(r[0]) for r in read_csv(out)[1]])
    np.testing.assert_array_equal(got, est.predict(work["U"]))
    # saved with the caller's own metadata, which need not be a dict: still read (it used to
    # fail with an AttributeError on a list)
    for k, meta in enumerate(([1, 2], {"cli": [3]}, "note")):
        other = save(est, tmp_path / f"meta{k}.npz", metadata=meta)
        assert main(["predict", "--model", str(other), "--csv", str(features_only), "--out",
                     str(out)]) == 0
        got = np.array([float(r[0]) for r in read_csv(out)[1]])
        np.testing.assert_array_equal(got, est.predict(work["U"]))


def test_predict_round_trip_classifier_to_stdout(work, capsys):
    # columns in another order and an extra column: features are found by name
    header, rows = read_csv(work["clf_csv"])
    order = [2, 0, 3, 1]
    shuffled = write_csv(work["dir"] / "shuffled.csv", [header[j] for j in order] + ["note"],
                         [[r[j] for j in order] + ["x"] for r in rows])
    assert main(["predict", "--model", str(work["clf"]), "--csv", str(shuffled),
                 "--proba"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "prediction,proba_cat,proba_dog,proba_eel"
    est = load(work["clf"])
    pred = [ln.split(",")[0] for ln in lines[1:]]
    assert pred == list(est.predict(work["V"]))
    proba = np.array([[float(v) for v in ln.split(",")[1:]] for ln in lines[1:]])
    np.testing.assert_array_equal(proba, est.predict_proba(work["V"]))
    assert np.mean(np.array(pred) == work["labels"]) > 0.8  # the tiny model did learn


def test_analyze_dataset_matches_the_model_features_by_name(tmp_path, capsys):
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split

    bunch = load_diabetes()
    names = list(bunch.feature_names)[::-1]  # diabetes' columns in reverse order
    X = bunch.data[:, ::-1]
    rows = [[repr(float(v)) for v in x] + [repr(float(t))]
            for x, t in zip(X, bunch.target, strict=True)]
    model = tmp_path / "m.npz"
    assert main(["fit", "--csv", str(write_csv(tmp_path / "d.csv", names + ["y"], rows)),
                 "--target", "y", "--out", str(model), *FAST]) == 0
    capsys.readouterr()
    assert main(["analyze", "--model", str(model), "--dataset", "diabetes", "--out-dir",
                 str(tmp_path / "a")]) == 0
    report = json.loads((tmp_path / "a" / "analysis.json").read_text())
    _, Xte, _, yte = train_test_split(bunch.data, bunch.target, test_size=0.25,
                                      random_state=0)
    est = load(model)
    assert report["scores"]["r2"] == pytest.approx(est.score(Xte[:, ::-1], yte), rel=1e-12)
    # a model of other columns, as many as diabetes has: refused, naming both sets of names
    other = write_csv(tmp_path / "o.csv", [f"f{j}" for j in range(10)] + ["y"], rows)
    assert main(["fit", "--csv", str(other), "--target", "y", "--out", str(model), *FAST]) == 0
    capsys.readouterr()
    assert main(["analyze", "--model", str(model), "--dataset", "diabetes", "--out-dir",
                 str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lifted-idl: error: data set 'diabetes' lacks the model's features "
                          "'f0', 'f1'") and err.count("\n") == 1
    assert "the model was trained on ['f0'" in err and "the data set has ['age'" in err


def _strict_json(path: Path):
    def refuse(constant):
        raise AssertionError(f"{path} holds {constant}, which is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_regression_scores_at_huge_scale_are_those_at_unit_scale(work, tmp_path, capsys):
    import warnings

    header, rows = read_csv(work["reg_csv"])
    huge = write_csv(tmp_path / "huge.csv", header,
                     [[repr(float(v) * 1e200) for v in r] for r in rows])
    scores = {}
    for name, path in [("unit", work["reg_csv"]), ("huge", huge)]:
        out = tmp_path / f"{name}.npz"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert main(["fit", "--csv", str(path), "--target", "y", "--out", str(out),
                         *FAST]) == 0
        assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]
        assert "nan" not in capsys.readouterr().out
        scores[name] = _strict_json(out.with_suffix(".json"))
        assert main(["analyze", "--model", str(out), "--csv", str(path), "--out-dir",
                     str(tmp_path / name)]) == 0
        scores[name]["analysis"] = _strict_json(tmp_path / name / "analysis.json")["scores"]
    for part in ("train_scores", "test_scores", "analysis"):
        unit, big = scores["unit"][part], scores["huge"][part]
        assert np.isfinite(big["r2"]) and big["r2"] == pytest.approx(unit["r2"], rel=1e-6)
        assert big["rmse"] == pytest.approx(unit["rmse"] * 1e200, rel=1e-6)


def test_analyze_classifier(work, capsys):
    from lifted_idl.robustness import certified_accuracy, lipschitz_bound

    out_dir = work["dir"] / "analysis"
    assert main(["analyze", "--model", str(work["clf"]), "--csv", str(work["clf_csv"]),
                 "--eps", "0.01", "--out-dir", str(out_dir)]) == 0
    text = capsys.readouterr().out
    est = load(work["clf"])
    wp = est.model_.well_posedness
    assert f"certificate {wp.certificate}" in text
    png = out_dir / "sensitivity.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((out_dir / "analysis.json").read_text())
    assert report["lipschitz"]["sensitivity, l_inf"] == pytest.approx(
        lipschitz_bound(est.model_))
    acc = certified_accuracy(est, work["V"], work["labels"], 0.01)
    assert report["certified_accuracy"]["value"] == pytest.approx(acc)
    assert "certified accuracy at eps = 0.01" in text
    assert np.array(report["sensitivity_matrix"]).shape == (3, 3)


def test_fit_builtin_dataset_then_analyze_uses_its_test_split(tmp_path, capsys):
    model = tmp_path / "ff.npz"
    assert main(["fit", "--dataset", "function_fit", "--out", str(model), *FAST]) == 0
    assert "test score: R^2 =" in capsys.readouterr().out
    assert main(["analyze", "--model", str(model), "--out-dir", str(tmp_path / "a")]) == 0
    text = capsys.readouterr().out
    assert "test split of data set 'function_fit' (1000 samples)" in text
    assert (tmp_path / "a" / "sensitivity.png").exists()


@pytest.mark.parametrize("labels,task", [
    (np.repeat([0.0, 1.0, 2.0], 10), "classification"),
    (np.linspace(0, 1, 30), "regression"),
    (np.arange(30.0), "regression"),  # integers, but every value distinct
    (np.array(["a", "b"] * 5, dtype=object), "classification"),
])
def test_detect_task(labels, task):
    assert _detect_task(labels) == task


def test_integers_beyond_2_to_53_are_not_int64_labels(tmp_path, capsys):
    from lifted_idl.cli.data import _as_labels

    big = np.array([2.0**63, 2.0**64, 1e300] * 10)
    assert _detect_task(big) == "regression"
    assert _detect_task(np.array([0.0, 2.0**53 - 1] * 5)) == "classification"
    # distinct, not all wrapped to -2**63: the integers as text
    assert list(_as_labels(big[:3])) == ["9223372036854775808", "18446744073709551616",
                                         str(int(1e300))]
    rng = np.random.default_rng(0)
    path = write_csv(tmp_path / "big.csv", ["a", "y"],
                     [[repr(float(v)), str(2**63 * (1 + k % 2))]
                      for k, v in enumerate(rng.standard_normal(30))])
    out = tmp_path / "m.npz"
    argv = ["fit", "--csv", str(path), "--target", "y", "--out", str(out), *FAST]
    assert main(argv) == 0  # detected as a regression
    assert json.loads(out.with_suffix(".json").read_text())["task"] == "regression"
    assert main([*argv, "--task", "classification"]) == 0
    assert json.loads(out.with_suffix(".json").read_text())["classes"] == [
        "18446744073709551616", "9223372036854775808"]
    capsys.readouterr()


def test_python_m_lifted_idl_fit_default_dataset(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    r = subprocess.run([sys.executable, "-m", "lifted_idl", "fit", "--solver", "gradient",
                        "--gradient-max-iter", "20"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "data set 'breast_cancer' (the default)" in r.stdout
    assert "test score: accuracy =" in r.stdout
    assert "[fit_gradient] epoch" in r.stdout  # verbose progress is on by default
    summary = json.loads((tmp_path / "lifted_idl_model.json").read_text())
    assert summary["data"]["name"] == "breast_cancer" and summary["n_test"] == 143
    assert load(tmp_path / "lifted_idl_model.npz").n_features_in_ == 30


# ----------------------------------------------------------------------------------------------
# experiments
# ----------------------------------------------------------------------------------------------
@pytest.fixture
def exp_dir(tmp_path):
    d = tmp_path / "experiments"
    d.mkdir()
    (d / "demo.py").write_text(
        '"""Writes a marker file."""\n'
        "import json\n\n"
        "from _helper import VALUE\n\n\n"
        "def main(out_dir):\n"
        "    (out_dir / 'result.json').write_text(json.dumps({'value': VALUE}))\n"
        "    return {'value': VALUE}\n"
    )
    (d / "_helper.py").write_text("VALUE = 42\n")
    (d / "no_main.py").write_text('"""Has no entry point."""\nX = 1\n')
    return d


def test_experiment_list_and_run(exp_dir, tmp_path, capsys):
    assert main(["experiment", "--list", "--experiments-dir", str(exp_dir)]) == 0
    listing = capsys.readouterr().out
    assert "demo" in listing and "Writes a marker file." in listing
    assert "_helper" not in listing
    out = tmp_path / "res"
    assert main(["experiment", "demo", "--out-dir", str(out), "--experiments-dir",
                 str(exp_dir)]) == 0
    assert json.loads((out / "result.json").read_text()) == {"value": 42}
    assert str(exp_dir) not in sys.path  # the helper path is removed again


# ----------------------------------------------------------------------------------------------
# errors: exit status 2 and a message naming the problem
# ----------------------------------------------------------------------------------------------
def _error_cases(work, exp_dir, tmp_path):
    d = work["dir"]
    bad_feat = write_csv(tmp_path / "badfeat.csv", ["a", "b", "y"],
                         [["1", "x", "2"], ["3", "4", "5"], ["5", "6", "7"]])
    hole = write_csv(tmp_path / "hole.csv", ["a", "y"], [["1", "2"], ["", "3"], ["4", "5"]])
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b,y\n1,2,3\n4,5\n")
    no_c = write_csv(tmp_path / "no_c.csv", ["a", "b", "y"], [["1", "2", "3"]])
    text_y = write_csv(tmp_path / "text_y.csv", ["a", "y"], [["1", "u"], ["2", "v"]] * 3)
    binary = tmp_path / "binary.csv"
    binary.write_bytes(bytes(range(256)))
    not_model = tmp_path / "not_model.joblib"
    joblib.dump({"hello": 1}, not_model)
    rc = str(work["reg_csv"])
    return [
        (["fit", "--csv", str(tmp_path / "nope.csv"), "--target", "y"], "file not found"),
        (["fit", "--csv", rc, "--target", "zz"], "target column 'zz' not found"),
        (["fit", "--csv", rc], "--csv needs --target"),
        (["fit", "--csv", str(bad_feat), "--target", "y"], "column 'b' is not numeric"),
        (["fit", "--csv", str(hole), "--target", "y"], "missing value in feature column 'a'"),
        (["fit", "--csv", str(ragged), "--target", "y"], "line 3: 2 fields"),
        (["fit", "--csv", str(binary), "--target", "y"], "not a UTF-8 text CSV"),
        (["fit", "--csv", str(text_y), "--target", "y", "--task", "regression"],
         "is not numeric; regression needs numbers"),
        (["fit", "--csv", rc, "--target", "y", "--features", "a,q"], "missing feature column"
         " 'q'"),
        (["fit", "--dataset", "mnist"], "unknown data set 'mnist'; available: digits"),
        (["fit", "--dataset", "iris", "--task", "regression"], "is a classification task"),
        (["fit", "--csv", rc, "--target", "y", "--kappa", "1.5"],
         "argument --kappa: must be a float in the range (0.0, 1.0); got '1.5'"),
        (["fit", "--csv", rc, "--target", "y", "--test-size", "1.5"], "--test-size"),
        (["fit", "--solver", "adam"], "argument --solver: must be a str among"),
        (["predict", "--model", str(work["reg"]), "--csv", str(no_c)],
         "missing feature column 'c'"),
        (["predict", "--model", str(tmp_path / "none.npz"), "--csv", rc],
         "model file not found"),
        (["predict", "--model", rc, "--csv", rc], "is not an .npz file"),
        (["predict", "--model", str(not_model), "--csv", rc], "is a pickle"),
        (["predict", "--model", str(work["reg"]), "--csv", rc, "--proba"], "needs a classifier"),
        (["analyze", "--model", str(work["reg"]), "--dataset", "iris"],
         "data set 'iris' lacks the model's features 'a', 'b', 'c': the model was trained on "
         "['a', 'b', 'c'], the data set has ['sepal length (cm)'"),
        (["analyze", "--model", str(work["clf"]), "--csv", rc], "column 'animal' not found"),
        (["experiment", "nothing", "--experiments-dir", str(exp_dir)],
         "unknown experiment 'nothing'"),
        (["experiment", "no_main", "--experiments-dir", str(exp_dir)], "has no main(out_dir)"),
        (["experiment", "demo", "--experiments-dir", str(d / "missing")],
         "experiments directory not found"),
        ([], "give a command"),
    ]


def test_errors_exit_2_with_message(work, exp_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for argv, message in _error_cases(work, exp_dir, tmp_path):
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2, (argv, err)
        assert message in err, (argv, err)
        assert "Traceback" not in err, argv
        assert err.count("\n") == 1 and err.startswith("lifted-idl: error: "), (argv, err)
    # the unknown experiment's message lists the available ones
    main(["experiment", "nothing", "--experiments-dir", str(exp_dir)])
    assert "available: demo, no_main" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# issue 15: one line per failure, options derived from the estimators, Ctrl-C, A = 0, eps
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["fit", "--n-hidden", "abc"], "argument --n-hidden: must be an int in the range [1, inf)"),
    (["fit", "--kappa", "1.5"], "argument --kappa: must be a float in the range (0.0, 1.0)"),
    (["fit", "--penalty", "l3"], "argument --penalty: must be a str among"),
    (["fit", "--batch-size", "0"], "argument --batch-size: must be a str among {'auto'} or an"
     " int in the range [1, inf); got '0'"),
    (["fit", "--max-iter", "2.5"], "argument --max-iter: must be an int"),
    (["fit", "--fit-bias", "maybe"], "argument --fit-bias: must be true or false or a str "
     "among {'auto'}; got 'maybe'"),
    (["fit", "--group-weights", "1,x"], "argument --group-weights: must be None or "
     "comma-separated numbers; got '1,x'"),
    (["fit", "--bogus"], "unrecognized arguments: --bogus"),
    (["predict", "--csv", "x.csv"], "the following arguments are required: --model"),
    (["frobnicate"], "argument COMMAND: invalid choice: 'frobnicate'"),
])
def test_bad_option_values_print_one_line_and_a_hint(argv, message, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1, captured.err
    assert message in captured.err
    assert "usage:" not in captured.err
    assert "--help'" in captured.err  # the hint


def test_fit_options_are_the_estimators_parameters(work, tmp_path, capsys):
    from sklearn.utils._param_validation import StrOptions

    from lifted_idl import ImplicitClassifier, ImplicitRegressor
    from lifted_idl.cli import build_parser

    fit = build_parser()._subparsers._group_actions[0].choices["fit"]
    dests = {a.dest for a in fit._actions}
    params = set(ImplicitRegressor().get_params()) | set(ImplicitClassifier().get_params())
    assert params - dests == {"verbose", "warm_start"}  # set by -q; nothing to warm-start
    for cls in (ImplicitRegressor, ImplicitClassifier):
        for name, constraints in cls._parameter_constraints.items():
            for c in constraints:
                if isinstance(c, StrOptions):
                    for option in c.options:  # every value is accepted by the option
                        flag = "--" + name.replace("_", "-")
                        args = build_parser().parse_args(["fit", flag, option])
                        assert getattr(args, name) == option
    # --penalty group (missing from the hand-kept list) fits and is saved
    out = tmp_path / "group.npz"
    assert main(["fit", "--csv", str(work["reg_csv"]), "--target", "y", "--out", str(out),
                 "--penalty", "group", "--c-ridge", "none", "--group-ord", "inf",
                 "--batch-size", "auto", "--n-jobs", "-1", *FAST]) == 0
    est = load(out)
    assert (est.penalty, est.c_ridge, est.group_ord, est.n_jobs) == ("group", None, "inf", -1)


def test_fit_bias_takes_true_false_and_auto():
    from lifted_idl.cli import build_parser

    for words, value in [(("true", "True", "YES", "1"), True),
                         (("false", "False", "no", "0"), False)]:
        for word in words:
            assert build_parser().parse_args(["fit", "--fit-bias", word]).fit_bias is value
    assert build_parser().parse_args(["fit", "--fit-bias", "auto"]).fit_bias == "auto"


def test_fit_bias_false_fits_without_the_state_bias(work, tmp_path):
    out = tmp_path / "m.npz"
    argv = ["fit", "--csv", str(work["reg_csv"]), "--target", "y", "--out", str(out), *FAST]
    assert main([*argv, "--fit-bias", "false"]) == 0
    est = load(out)
    assert est.fit_bias is False
    np.testing.assert_array_equal(est._scaled_model.b, 0.0)  # b = 0 on standardised data
    assert main([*argv, "--fit-bias", "true"]) == 0
    est = load(out)
    assert est.fit_bias is True and np.any(est._scaled_model.b != 0)


def test_group_weights_reach_the_estimator(work, tmp_path):
    from lifted_idl.cli import build_parser

    parsed = build_parser().parse_args(["fit", "--group-weights", "1, 2.5,inf"])
    assert parsed.group_weights == [1.0, 2.5, np.inf]
    assert build_parser().parse_args(["fit", "--group-weights", "none"]).group_weights is None
    out = tmp_path / "m.npz"
    assert main(["fit", "--csv", str(work["reg_csv"]), "--target", "y", "--out", str(out),
                 "--penalty", "group", "--group-weights", "1,inf,1", *FAST]) == 0
    est = load(out)  # the saved model file keeps them
    assert est.get_params()["group_weights"] == [1.0, np.inf, 1.0]
    B = np.asarray(est.model_.B)
    # weight inf leaves feature 'b' out: its column of B is 0, the others are not
    assert np.all(B[:, 1] == 0) and np.any(B[:, 0] != 0) and np.any(B[:, 2] != 0)
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["params"]["group_weights"] == [1.0, "inf", 1.0]


def test_fit_says_when_the_model_has_no_implicit_part(work, tmp_path, capsys, monkeypatch):
    import lifted_idl.estimators as est_module

    out = tmp_path / "m.npz"
    argv = ["fit", "--csv", str(work["reg_csv"]), "--target", "y", "--out", str(out), *FAST]
    assert main(argv) == 0
    assert "A = 0" not in capsys.readouterr().err
    assert json.loads(out.with_suffix(".json").read_text())["A_is_zero"] is False
    fold = est_module._fold_standardisation

    def round_zero(model, *a, **k):  # what early stopping at round 0 returns
        return fold(model.replace(A=np.zeros_like(model.A)), *a, **k)

    monkeypatch.setattr(est_module, "_fold_standardisation", round_zero)
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert sum("the returned model has A = 0" in ln for ln in err.splitlines()) == 1
    assert json.loads(out.with_suffix(".json").read_text())["A_is_zero"] is True


def test_analyze_unwritable_out_dir_exits_2(work, tmp_path, capsys, monkeypatch):
    import lifted_idl.cli.commands as commands

    locked = tmp_path / "locked"
    locked.mkdir()
    argv = ["analyze", "--model", str(work["clf"]), "--out-dir", str(locked)]
    if os.geteuid() != 0:  # root writes anywhere: the heatmap write fails below instead
        locked.chmod(0o500)
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "cannot write to" in err and err.count("\n") == 1
        locked.chmod(0o700)

    def denied(S, names, outputs, path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(commands, "_heatmap", denied)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "cannot write" in err and "sensitivity.png: Permission denied" in err
    assert err.count("\n") == 1


def test_unexpected_errors_exit_2_with_one_line(work, capsys, monkeypatch):
    import lifted_idl.cli.commands as commands

    def broken(*a, **k):
        raise RuntimeError("something\nbroke")

    monkeypatch.setattr(commands, "_heatmap", broken)
    assert main(["analyze", "--model", str(work["clf"]), "--out-dir",
                 str(work["dir"] / "x")]) == 2
    err = capsys.readouterr().err
    assert err == ("lifted-idl: error: unexpected RuntimeError: something broke (run "
                   "'lifted-idl --debug ...' for the traceback)\n")


def test_analyze_eps_is_per_standardised_feature(work, capsys):
    from lifted_idl.robustness import certified_radius

    out_dir = work["dir"] / "eps"
    eps = 0.2
    assert main(["analyze", "--model", str(work["clf"]), "--csv", str(work["clf_csv"]),
                 "--eps", str(eps), "--out-dir", str(out_dir)]) == 0
    assert f"certified accuracy at eps = {eps:g} per standardised feature" in \
        capsys.readouterr().out
    report = json.loads((out_dir / "analysis.json").read_text())["certified_accuracy"]
    est = load(work["clf"])
    X, labels = work["V"], work["labels"]
    s = json.loads(work["clf"].with_suffix(".json").read_text())
    Xtr, _, _, _ = _train_split(X, labels, s)
    np.testing.assert_allclose(report["raw_radius"], eps * Xtr.std(axis=0), rtol=1e-10)
    # soundness on the raw model: every certified sample keeps its class at the corners of
    # its box of half-widths eps * std_j
    idx = np.searchsorted(est.classes_, labels)
    r = certified_radius(est._scaled_model, (X - est._mean_u) / est._scale_u, idx)
    ok = r > eps
    assert report["value"] == pytest.approx(ok.mean()) and 0 < ok.mean() < 1
    rng = np.random.default_rng(0)
    radius = np.array(report["raw_radius"])
    for i in np.flatnonzero(ok):
        corners = X[i] + rng.choice([-1.0, 1.0], (64, X.shape[1])) * radius
        assert np.all(est.predict(corners) == labels[i])


def _train_split(X, y, summary):
    from sklearn.model_selection import train_test_split

    _, counts = np.unique(y.astype(str), return_counts=True)
    return train_test_split(X, y, test_size=summary["data"]["test_size"],
                            random_state=summary["data"]["random_state"],
                            stratify=y.astype(str))


_INTERRUPT = """
import runpy, sys
MODULE = sys.argv[1]
class Interrupt:
    def find_spec(self, name, path=None, target=None):
        if name == MODULE:
            raise KeyboardInterrupt
sys.meta_path.insert(0, Interrupt())
sys.argv = ["lifted-idl"] + sys.argv[2:]
runpy.run_module("lifted_idl", run_name="__main__", alter_sys=True)
"""


def _env():
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))


@pytest.mark.parametrize("module", ["numpy", "scipy.linalg", "sklearn.base",
                                    "lifted_idl.cli.commands"])
def test_ctrl_c_during_the_start_up_imports_exits_130_with_one_line(module, work, tmp_path):
    argv = ["analyze", "--model", str(work["clf"]), "--out-dir", str(tmp_path)]
    r = subprocess.run([sys.executable, "-c", _INTERRUPT, module, *argv], env=_env(),
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert (r.returncode, r.stderr) == (130, "lifted-idl: interrupted\n")


def test_ctrl_c_during_a_fit_exits_130_with_one_line(tmp_path):
    import signal

    p = subprocess.Popen([sys.executable, "-m", "lifted_idl", "fit", "--dataset", "digits",
                          "--max-iter", "100000", "--tol", "0", "--no-early-stopping"],
                         cwd=tmp_path, env=_env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        for line in p.stdout:  # wait for the solver to run
            if "round" in line:
                break
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert (p.returncode, err) == (130, "lifted-idl: interrupted\n")
    assert not (tmp_path / "lifted_idl_model.npz").exists()


class _Payload:
    """A pickle that writes a file when it is unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.write_text, (pathlib.Path(self.marker), "the payload ran"))


def test_predict_never_unpickles_a_model_file(work, tmp_path, capsys):
    import pickle

    marker = tmp_path / "ran.txt"
    for name in ("model.npz", "model.joblib", "model.pkl"):
        bad = tmp_path / name
        bad.write_bytes(pickle.dumps({"format": "lifted_idl.cli/1",
                                      "estimator": _Payload(marker)}))
        assert main(["predict", "--model", str(bad), "--csv", str(work["reg_csv"])]) == 2
        err = capsys.readouterr().err
        assert "is a pickle, not a lifted_idl model file" in err and err.count("\n") == 1
        assert not marker.exists()
    pickle.loads(bad.read_bytes())  # the payload is live: unpickling writes its file
    assert marker.exists()


# ----------------------------------------------------------------------------------------------
# output files: replaced whole or not at all
# ----------------------------------------------------------------------------------------------
_FSIZE = """
import resource, sys
import matplotlib.figure, matplotlib.font_manager  # caches written before the limit
import lifted_idl.cli.commands
from lifted_idl.cli import main
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
sys.exit(main(sys.argv[2:]))
"""


def _run_with_file_size_limit(limit, argv, cwd):
    """The command in a subprocess whose writes fail past ``limit`` bytes of a file (EFBIG)."""
    return subprocess.run([sys.executable, "-c", _FSIZE, str(limit), *argv], env=_env(),
                          cwd=cwd, capture_output=True, text=True, timeout=300)


def _snapshot(directory):
    return {p.name: p.read_bytes() for p in Path(directory).iterdir()}


def test_predict_out_is_replaced_whole_or_not_at_all(work, tmp_path):
    out = tmp_path / "pred.csv"
    old_mask = os.umask(0o027)
    try:
        assert main(["predict", "--model", str(work["reg"]), "--csv", str(work["reg_csv"]),
                     "--out", str(out)]) == 0
    finally:
        os.umask(old_mask)
    assert out.stat().st_mode & 0o777 == 0o640  # the umask's mode, as open() gives
    before = _snapshot(tmp_path)
    header, rows = read_csv(work["reg_csv"])
    big = write_csv(work["dir"] / "big.csv", header, rows * 10)  # about 30 kB of predictions
    r = _run_with_file_size_limit(2048, ["predict", "--model", str(work["reg"]), "--csv",
                                         str(big), "--out", str(out)], tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith(f"lifted-idl: error: cannot write {out}: File too large")
    assert _snapshot(tmp_path) == before  # the old file byte for byte, no temporary file


def test_analyze_sensitivity_png_is_replaced_whole_or_not_at_all(work, tmp_path):
    argv = ["analyze", "--model", str(work["clf"]), "--out-dir", str(tmp_path)]
    assert main(argv) == 0
    before = _snapshot(tmp_path)
    assert len(before["sensitivity.png"]) > 4096
    r = _run_with_file_size_limit(4096, argv, tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "sensitivity.png: File too large" in r.stderr
    assert _snapshot(tmp_path) == before


class _HalfWriter:
    """A text file that writes half of what it is given, then fails as a full disk does."""

    def __init__(self, fh):
        self._fh = fh

    def write(self, text):
        self._fh.write(text[: len(text) // 2])
        self._fh.flush()
        raise OSError(28, "No space left on device")

    def __getattr__(self, name):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._fh.close()


def _fail_text_writes_midway(monkeypatch):
    import io

    real_open = io.open

    def fake_open(file, mode="r", *a, **k):
        fh = real_open(file, mode, *a, **k)
        return _HalfWriter(fh) if "w" in mode and "b" not in mode else fh

    monkeypatch.setattr(io, "open", fake_open)


def test_fit_keeps_the_old_model_and_summary_when_the_summary_write_fails(
        work, tmp_path, capsys, monkeypatch):
    out = tmp_path / "m.npz"
    argv = ["fit", "--csv", str(work["reg_csv"]), "--target", "y", "--out", str(out), *FAST]
    assert main(argv) == 0
    before = _snapshot(tmp_path)
    capsys.readouterr()
    _fail_text_writes_midway(monkeypatch)
    assert main([*argv, "--random-state", "1"]) == 2  # another model
    err = capsys.readouterr().err.splitlines()[-1]  # after the fit's warnings
    assert err == f"lifted-idl: error: cannot write {out.with_suffix('.json')}: No space " \
        "left on device"
    assert _snapshot(tmp_path) == before  # neither file replaced, no temporary file


def test_analyze_keeps_the_old_report_when_its_write_fails(work, tmp_path, capsys,
                                                           monkeypatch):
    argv = ["analyze", "--model", str(work["clf"]), "--csv", str(work["clf_csv"]),
            "--out-dir", str(tmp_path)]
    assert main(argv) == 0
    before = _snapshot(tmp_path)
    capsys.readouterr()
    _fail_text_writes_midway(monkeypatch)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"lifted-idl: error: cannot write {tmp_path / 'analysis.json'}: No space " \
        "left on device\n"
    assert _snapshot(tmp_path) == before
