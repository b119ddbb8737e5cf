"""The commands of ``lifted-idl``: fit, predict, analyze, experiment, and :func:`run`, which
parses the arguments, runs one command and turns every failure into one line on stderr."""

from __future__ import annotations

import ast
import csv
import importlib.util
import io
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from .._files import atomic_write
from ._common import (
    DEFAULT_DATASET,
    DEFAULT_SEED,
    DEFAULT_TEST_SIZE,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    PROG,
    CLIError,
    jsonable,
    missing_list,
    one_line,
)
from .data import (
    _as_labels,
    _Bundle,
    _detect_task,
    _features_for,
    _load_dataset,
    _Split,
    _split,
    load_bundle,
    read_table,
    save_bundle,
)

__all__ = ["run", "find_experiments"]


# ----------------------------------------------------------------------------------------------
# fit
# ----------------------------------------------------------------------------------------------
def _estimator(task: str, args) -> object:
    from ..estimators import ImplicitClassifier, ImplicitRegressor
    from .parser import estimator_options

    cls = ImplicitClassifier if task == "classification" else ImplicitRegressor
    valid = cls().get_params()
    params = {opt.name: getattr(args, opt.name) for opt in estimator_options()
              if hasattr(args, opt.name) and opt.name in valid}
    params["random_state"] = args.random_state
    params["verbose"] = 0 if args.quiet else 1
    return cls(**params)


def _scores(est, task, X, y) -> dict:
    """Accuracy, or R^2 and RMSE, of ``est`` on ``(X, y)``.

    The regression scores are computed on ``y`` and the predictions divided by the largest
    magnitude among them (R^2 does not change; the RMSE is scaled back), so that targets
    near 1e200 do not overflow in the squares (R^2 = nan, RMSE = inf) nor ones near 1e-200
    underflow.
    """
    if task == "classification":
        return {"accuracy": float(est.score(X, y))}
    from sklearn.metrics import mean_squared_error, r2_score

    y = np.asarray(y, dtype=np.float64)
    pred = np.asarray(est.predict(X), dtype=np.float64)
    both = np.abs(np.concatenate([y.ravel(), pred.ravel()]))
    scale = float(np.max(both[np.isfinite(both)], initial=0.0))
    if scale == 0.0:
        scale = 1.0
    with np.errstate(over="ignore"):  # an RMSE beyond the largest float is inf
        return {"r2": float(r2_score(y / scale, pred / scale)),
                "rmse": float(scale * np.sqrt(mean_squared_error(y / scale, pred / scale)))}


def _json_text(obj) -> str:
    """``obj`` as indented JSON text; non-finite numbers as strings ("nan", "inf"), never the
    invalid NaN/Infinity of :func:`json.dumps`."""
    return json.dumps(jsonable(obj), indent=2, allow_nan=False) + "\n"


def _format_scores(scores: dict) -> str:
    names = {"accuracy": "accuracy", "r2": "R^2", "rmse": "RMSE"}
    return "  ".join(f"{names[k]} = {v:.4g}" for k, v in scores.items())


def _warn_lines(caught) -> None:
    seen = set()
    for w in caught:
        msg = f"{w.category.__name__}: {w.message}"
        if msg not in seen:
            seen.add(msg)
            print(f"{PROG}: warning: {msg}", file=sys.stderr)


def _cmd_fit(args) -> int:
    out = Path(args.out)
    if out.suffix == ".json":
        raise CLIError(f"--out {out} ends in .json; that name is used for the summary")
    if args.csv is not None and args.dataset is not None:
        raise CLIError("give either --csv or --dataset, not both")
    if not 0 < args.test_size < 1:
        raise CLIError(f"--test-size must be in (0, 1); got {args.test_size}")
    data, what = _fit_data_csv(args) if args.csv is not None else _fit_data_builtin(args)
    est = _estimator(data.task, args)

    def say(*parts):
        if not args.quiet:
            print(*parts, flush=True)

    say(f"{PROG} fit: {what}")
    say(f"  {data.task}: {data.X_train.shape[0]} training / {data.X_test.shape[0]} test "
        f"samples, {data.X_train.shape[1]} features")
    say(f"  {est!r}")
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(data.X_train, data.y_train)
    fit_time = time.perf_counter() - t0
    _warn_lines(caught)
    wp = est.model_.well_posedness
    test = _scores(est, data.task, data.X_test, data.y_test)
    train = _scores(est, data.task, data.X_train, data.y_train)
    say(f"  fitted in {fit_time:.2f} s ({est.n_iter_} iterations, "
        f"{'converged' if est.converged_ else 'not converged'})")
    say(f"  well-posedness: certificate {wp.certificate}, value {wp.value:.4g}")
    no_state = not np.any(np.asarray(est.model_.A))
    if no_state:  # said even with --quiet: the model is not what the user asked for
        print(f"{PROG}: note: the returned model has A = 0 (the solver kept its starting "
              "round, e.g. by early stopping): nothing implicit is left, x = phi(Bu + b) is "
              "a fixed random-feature layer; try --no-early-stopping, more --max-iter or "
              "another --alpha", file=sys.stderr)
    say(f"  train: {_format_scores(train)}")
    print(f"test score: {_format_scores(test)}")
    summary = _fit_summary(est, data, fit_time, no_state, train, test)
    summary_path = out.with_suffix(".json")
    if summary_path.is_dir():
        raise CLIError(f"cannot write the summary {summary_path}: it is a directory")
    # the summary is written in full to a temporary file before the model is saved, and
    # replaces the old one after: a failure at either step leaves the previous pair as it was
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(summary_path) as fh:
            fh.write(_json_text(summary))
            fh.flush()  # a failed write (a full disk) shows before the model is replaced
            save_bundle(est, out, data.task, data.feature_names, data.target, data.source)
    except OSError as err:
        raise CLIError(f"cannot write {summary_path}: {err.strerror or err}") from None
    say(f"  saved the model to {out} and a summary to {summary_path}")
    return EXIT_OK


def _fit_data_builtin(args):
    """The train/test split of a built-in data set, and how to name it."""
    if args.target is not None or args.features is not None:
        raise CLIError("--target and --features apply to --csv data only")
    name = args.dataset or DEFAULT_DATASET
    data = _load_dataset(name, args.test_size, args.random_state)
    if args.task is not None and args.task != data.task:
        raise CLIError(f"data set {name!r} is a {data.task} task, not {args.task}")
    return data, f"data set {name!r}" + ("" if args.dataset else " (the default)")


def _fit_data_csv(args):
    """The train/test split of ``--csv`` data (task detected unless ``--task``), and its name."""
    if args.target is None:
        raise CLIError("--csv needs --target COLUMN (the column to predict)")
    features = None
    if args.features is not None:
        features = [f.strip() for f in args.features.split(",") if f.strip()]
        if not features:
            raise CLIError("--features is empty")
    table = read_table(args.csv, target=args.target, features=features)
    task = args.task or _detect_task(table.y)
    y = table.y
    if task == "regression":
        if y.dtype == object:
            raise CLIError(
                f"target column {args.target!r} is not numeric; regression needs numbers "
                "(use --task classification for class labels)"
            )
    else:
        y = _as_labels(y)
    Xtr, Xte, ytr, yte = _split(table.X, y, task, args.test_size, args.random_state)
    source = {"kind": "csv", "path": str(Path(args.csv).resolve()),
              "test_size": args.test_size, "random_state": args.random_state}
    data = _Split(Xtr, ytr, Xte, yte, table.feature_names, args.target, task, source)
    what = f"{args.csv} (target {args.target!r})"
    if args.task is None:
        what += f"; task detected as {task} (override with --task)"
    return data, what


def _fit_summary(est, data, fit_time, no_state, train, test) -> dict:
    """The JSON summary written beside the model file."""
    from .. import __version__

    wp = est.model_.well_posedness
    return {
        "lifted_idl_version": __version__,
        "estimator": type(est).__name__,
        "params": jsonable(est.get_params()),
        "task": data.task,
        "data": jsonable(data.source),
        "n_train": int(data.X_train.shape[0]),
        "n_test": int(data.X_test.shape[0]),
        "feature_names": data.feature_names,
        "target": data.target,
        "classes": jsonable(getattr(est, "classes_", None)),
        "fit_time_s": round(fit_time, 3),
        "n_iter": int(est.n_iter_),
        "converged": bool(est.converged_),
        "A_is_zero": bool(no_state),
        "well_posedness": {"certificate": wp.certificate, "value": jsonable(wp.value),
                           "contraction": jsonable(wp.contraction)},
        "train_scores": train,
        "test_scores": test,
    }


# ----------------------------------------------------------------------------------------------
# predict
# ----------------------------------------------------------------------------------------------
def _fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    if isinstance(v, (np.integer,)):
        return str(int(v))
    return str(v)


def _cmd_predict(args) -> int:
    bundle = load_bundle(args.model)
    est = bundle.estimator
    table = _features_for(bundle, Path(args.csv))
    pred = np.asarray(est.predict(table.X))
    header: list[str]
    if pred.ndim == 1:
        header, cols = ["prediction"], [pred]
    else:
        header = [f"prediction_{j}" for j in range(pred.shape[1])]
        cols = [pred[:, j] for j in range(pred.shape[1])]
    if args.proba:
        if bundle.task != "classification":
            raise CLIError("--proba needs a classifier; this model is a regressor")
        P = est.predict_proba(table.X)
        header += [f"proba_{c}" for c in est.classes_]
        cols += [P[:, j] for j in range(P.shape[1])]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for i in range(table.X.shape[0]):
        writer.writerow([_fmt(c[i]) for c in cols])
    if args.out is None:
        sys.stdout.write(buf.getvalue())
    else:
        out = Path(args.out)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(out) as fh:
                fh.write(buf.getvalue())
        except OSError as err:
            raise CLIError(f"cannot write {out}: {err.strerror or err}") from None
        print(f"{PROG} predict: wrote {table.X.shape[0]} predictions to {out}", file=sys.stderr)
    return EXIT_OK


# ----------------------------------------------------------------------------------------------
# analyze
# ----------------------------------------------------------------------------------------------
def _heatmap(S: np.ndarray, feature_names, output_names, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    q, p = S.shape
    fig = Figure(figsize=(min(max(5.5, 3 + 0.35 * p), 16), min(max(3.5, 2 + 0.35 * q), 10)))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(S, aspect="auto", cmap="viridis", interpolation="nearest")
    fig.colorbar(im, ax=ax)
    if p <= 40:
        ax.set_xticks(range(p))
        ax.set_xticklabels(feature_names, rotation=90, fontsize=7)
    if q <= 25:
        ax.set_yticks(range(q))
        ax.set_yticklabels(output_names, fontsize=7)
    ax.set_title("sensitivity matrix S:  |y(u) - y(u0)| <= S |u - u0|", fontsize=9)
    ax.set_xlabel("feature", fontsize=8)
    ax.set_ylabel("output", fontsize=8)
    fig.tight_layout()
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=100)


def _try(fn, *a, **k):
    """``(value, None)``, or ``(None, reason)`` when a bound's condition fails."""
    from ..exceptions import BoundConditionError

    try:
        return fn(*a, **k), None
    except BoundConditionError as err:
        return None, str(err)


def _analysis_data(args, bundle: _Bundle):
    """(X, y, description) to evaluate on, or None."""
    if args.csv is not None and args.dataset is not None:
        raise CLIError("give either --csv or --dataset, not both")
    if args.csv is not None:
        if bundle.target is None:
            raise CLIError(
                "this model file does not record its target column; analyze --csv needs one "
                f"(fit it with '{PROG} fit')"
            )
        table = _features_for(bundle, Path(args.csv), with_target=True)
        y = table.y
        if bundle.task == "classification":
            y = _as_labels(y)
        elif y.dtype == object:
            raise CLIError(f"target column {bundle.target!r} of {args.csv} is not numeric")
        return table.X, y, f"{args.csv} ({table.X.shape[0]} rows)"
    name = args.dataset
    src = bundle.source
    if name is None and src.get("kind") == "dataset":
        name = src["name"]
    if name is None:
        return None
    test_size = src.get("test_size") or DEFAULT_TEST_SIZE
    seed = src.get("random_state", DEFAULT_SEED)
    data = _load_dataset(name, test_size, seed)
    X = _dataset_features(bundle, name, data)
    if data.task != bundle.task:
        raise CLIError(f"data set {name!r} is a {data.task} task; the model does "
                       f"{bundle.task}")
    return X, data.y_test, f"test split of data set {name!r} ({X.shape[0]} samples)"


def _dataset_features(bundle: _Bundle, name: str, data: _Split) -> np.ndarray:
    """The model's feature columns of a data set's test split, found by name as ``predict``
    finds them in a CSV file (by count for a model without feature names)."""
    names = bundle.feature_names
    if names is None:
        p = int(bundle.estimator.n_features_in_)
        if data.X_test.shape[1] != p:
            raise CLIError(
                f"data set {name!r} has {data.X_test.shape[1]} features; the model expects {p}"
            )
        return data.X_test
    cols = {f: j for j, f in enumerate(data.feature_names)}
    missing = [f for f in names if f not in cols]
    if missing:
        raise CLIError(
            f"data set {name!r} lacks the model's {missing_list('feature', missing)}: "
            f"the model was trained on {names}, the data set has {data.feature_names}"
        )
    return data.X_test[:, [cols[f] for f in names]]


def _class_index(est, y) -> np.ndarray:
    """Labels as indices into ``est.classes_``; an unknown label is an error."""
    index = {c: i for i, c in enumerate(est.classes_.tolist())}
    try:
        return np.array([index[v] for v in np.asarray(y).tolist()], dtype=np.int64)
    except KeyError as err:
        raise CLIError(f"label {err.args[0]!r} is not one of the model's classes "
                       f"{est.classes_.tolist()}") from None


def _cmd_analyze(args) -> int:
    if not (math.isfinite(args.eps) and args.eps >= 0):
        raise CLIError(f"--eps must be a finite number >= 0; got {args.eps}")
    bundle = load_bundle(args.model)
    data = _analysis_data(args, bundle)
    out_dir = Path(args.out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CLIError(f"cannot create {out_dir}: {err.strerror or err}") from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise CLIError(f"cannot write to {out_dir}: permission denied")
    report = _report_well_posedness(bundle)
    report["lipschitz"] = _report_lipschitz(bundle.estimator.model_)
    S = _report_sensitivity(bundle, out_dir, report)
    if data is None:
        print("no evaluation data (pass --csv PATH or --dataset NAME for scores)")
    else:
        _report_scores(bundle, data, S, args.eps, report)
    path = out_dir / "analysis.json"
    try:
        with atomic_write(path) as fh:
            fh.write(_json_text(report))
    except OSError as err:
        raise CLIError(f"cannot write {path}: {err.strerror or err}") from None
    print(f"report: {path}")
    return EXIT_OK


def _report_well_posedness(bundle) -> dict:
    """The model's shape, its well-posedness certificate and the norms of A (printed too)."""
    from ..wellposedness import inf_norm, mu_inf

    est = bundle.estimator
    model = est.model_
    A = np.asarray(model.A, dtype=np.float64)
    wp = model.well_posedness
    report: dict = {
        "model": {"estimator": type(est).__name__, "task": bundle.task,
                  "n_states": model.n_states, "n_features": model.n_features,
                  "n_outputs": model.n_outputs, "activation": repr(model.activation)},
        "well_posedness": {"well_posed": bool(wp.well_posed), "certificate": wp.certificate,
                           "value": jsonable(wp.value),
                           "contraction": jsonable(wp.contraction),
                           "alpha": jsonable(wp.alpha)},
        "norms": {"inf_norm_A": inf_norm(A) if A.size else 0.0,
                  "lambda_pf": model.pf_eigenvalue(),
                  "mu_inf_A": mu_inf(A) if A.size else 0.0},
    }
    print(f"model: {type(est).__name__}, n = {model.n_states} states, p = {model.n_features} "
          f"features, q = {model.n_outputs} outputs, activation {model.activation!r}")
    verdict = "well-posed" if wp.well_posed else "NOT certified well-posed"
    print(f"well-posedness: {verdict}; certificate {wp.certificate}, value {wp.value:.6g}, "
          f"contraction {wp.contraction:.6g}")
    print(f"  ||A||_inf = {report['norms']['inf_norm_A']:.6g}, lambda_PF(|A|) = "
          f"{report['norms']['lambda_pf']:.6g}, mu_inf(A) = {report['norms']['mu_inf_A']:.6g}")
    return report


def _report_lipschitz(model) -> dict:
    """The Lipschitz bounds of :func:`~lifted_idl.robustness.lipschitz_bound` (printed too)."""
    from .. import robustness

    lip: dict = {}
    print("Lipschitz bounds (inputs in raw feature units):")
    for label, kind, norm in [("sensitivity, l_inf", "sensitivity", "inf"),
                              ("sensitivity, l_2", "sensitivity", 2),
                              ("rho [IDL 4.3], l_inf", "rho", "inf"),
                              ("NE-MON, l_inf", "nemon", "inf")]:
        val, why = _try(robustness.lipschitz_bound, model, norm=norm, kind=kind)
        lip[label] = val if why is None else f"n/a: {why}"
        print(f"  {label:22s} " + (f"{val:.6g}" if why is None else f"n/a ({why})"))
    return lip


def _report_sensitivity(bundle, out_dir: Path, report: dict):
    """The sensitivity matrix and its heatmap (None when it does not exist)."""
    from .. import robustness

    est = bundle.estimator
    model = est.model_
    S, why = _try(robustness.sensitivity_matrix, model)
    if S is None:
        print(f"sensitivity matrix: n/a ({why})")
        return None
    names = bundle.feature_names or [f"x{j}" for j in range(model.n_features)]
    if bundle.task == "classification":
        outputs = [str(c) for c in est.classes_]
    else:
        outputs = [bundle.target or "y"] if model.n_outputs == 1 else [
            f"y{i}" for i in range(model.n_outputs)]
    png = out_dir / "sensitivity.png"
    try:
        _heatmap(S, names, outputs, png)
    except OSError as err:
        raise CLIError(f"cannot write {png}: {err.strerror or err}") from None
    top = np.argsort(-S.max(axis=0))[: min(5, S.shape[1])]
    print("most sensitive features: " + ", ".join(
        f"{names[j]} ({S[:, j].max():.3g})" for j in top))
    print(f"sensitivity heatmap: {png}")
    report["sensitivity_png"] = str(png)
    report["sensitivity_matrix"] = S.tolist()
    return S


def _report_scores(bundle, data, S, eps: float, report: dict):
    """Scores on the evaluation data, and the certified accuracy (classification) or the
    output-change bound (regression) on the box of radius ``eps`` per standardised feature."""
    from .. import robustness

    est = bundle.estimator
    X, y, desc = data
    scores = _scores(est, bundle.task, X, y)
    report["data"] = desc
    report["scores"] = scores
    print(f"data: {desc}: {_format_scores(scores)}")
    # the ball: feature j moves by eps * s_j, s_j its training standard deviation, i.e.
    # the l_inf ball of radius eps for the model on standardised features
    radius = eps * np.asarray(est._scale_u, dtype=np.float64)
    ball = (f"eps = {eps:g} per standardised feature (l_inf box of radius "
            f"eps * std_j, {radius.min():.3g} to {radius.max():.3g} in raw units)")
    report_eps = {"eps": eps, "per": "standardised feature", "raw_radius": radius.tolist()}
    if bundle.task == "classification":
        Us = (X - est._mean_u) / est._scale_u
        acc, why = _try(robustness.certified_accuracy, est._scaled_model, Us,
                        _class_index(est, y), eps)
        if why is None:
            print(f"certified accuracy at {ball}, sensitivity bound: {acc:.4g}")
            report["certified_accuracy"] = {**report_eps, "value": acc,
                                            "method": "sensitivity", "norm": "inf"}
        else:
            print(f"certified accuracy: n/a ({why})")
    elif S is not None:
        bound = float(np.max(S @ radius))
        print(f"output change on the box of {ball}: at most {bound:.4g}")
        report["output_change_bound"] = {**report_eps, "value": bound}


# ----------------------------------------------------------------------------------------------
# experiment
# ----------------------------------------------------------------------------------------------
def _experiments_dir(arg) -> Path:
    if arg is not None:
        d = Path(arg)
        if not d.is_dir():
            raise CLIError(f"experiments directory not found: {d}")
        return d
    here = Path(__file__).resolve().parents[2] / "experiments"
    if here.is_dir():
        return here
    cwd = Path.cwd() / "experiments"
    if cwd.is_dir():
        return cwd
    raise CLIError(
        f"no experiments/ directory next to the package ({here}) or in the current directory; "
        "pass --experiments-dir DIR"
    )


def find_experiments(directory) -> dict[str, Path]:
    """``{name: path}`` of the scripts ``<directory>/<name>.py`` (not starting with ``_``)."""
    return {p.stem: p for p in sorted(Path(directory).glob("*.py"))
            if not p.stem.startswith("_")}


def _describe(path: Path) -> str:
    try:
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    except (SyntaxError, UnicodeDecodeError, OSError):
        return "(unreadable)"
    return doc.strip().splitlines()[0] if doc else ""


def _cmd_experiment(args) -> int:
    directory = _experiments_dir(args.experiments_dir)
    found = find_experiments(directory)
    if args.list:
        if not found:
            print(f"no experiments in {directory}")
        for name, path in found.items():
            print(f"{name:24s} {_describe(path)}")
        return EXIT_OK
    if args.name is None:
        raise CLIError("give an experiment NAME, or --list to see the available ones")
    name = args.name.replace("-", "_")
    if name.endswith(".py"):
        name = name[:-3]
    if name not in found:
        avail = ", ".join(found) if found else "none"
        raise CLIError(f"unknown experiment {args.name!r} in {directory}; available: {avail}")
    path = found[name]
    spec = importlib.util.spec_from_file_location(f"lifted_idl_experiment_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(directory))
    try:
        try:
            spec.loader.exec_module(module)
        except SyntaxError as err:
            raise CLIError(f"{path} has a syntax error: {err}") from None
        main_fn = getattr(module, "main", None)
        if not callable(main_fn):
            raise CLIError(f"{path} has no main(out_dir) function")
        out_dir = Path(args.out_dir) if args.out_dir else Path("results") / name
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise CLIError(f"cannot create {out_dir}: {err.strerror or err}") from None
        print(f"{PROG} experiment {name}: writing to {out_dir}")
        t0 = time.perf_counter()
        result = main_fn(out_dir)
    finally:
        sys.path.remove(str(directory))
    print(f"  done in {time.perf_counter() - t0:.1f} s")
    if result is not None:
        print(json.dumps(jsonable(result), indent=2) if isinstance(result, dict)
              else str(result))
    written = sorted(p for p in out_dir.rglob("*") if p.is_file())
    for p in written:
        print(f"  {p}")
    return EXIT_OK


# ----------------------------------------------------------------------------------------------
# entry point
# ----------------------------------------------------------------------------------------------
_COMMANDS = {"fit": _cmd_fit, "predict": _cmd_predict, "analyze": _cmd_analyze,
             "experiment": _cmd_experiment}


def interrupted() -> int:
    """Report Ctrl-C in one line; the exit status 130 (128 + SIGINT)."""
    try:
        print(f"{PROG}: interrupted", file=sys.stderr, flush=True)
    except (OSError, ValueError):  # pragma: no cover - stderr closed
        pass
    return EXIT_INTERRUPTED


def run(argv: list[str] | None = None) -> int:
    """Parse ``argv``, run the command, and return the exit status (see :func:`main`)."""
    from .parser import parse

    debug = False
    try:
        try:
            args = parse(argv)
        except SystemExit as exc:  # --help (0), or a usage error already printed (2)
            return exc.code if isinstance(exc.code, int) else EXIT_ERROR
        debug = args.debug
        if args.command is None:
            raise CLIError("give a command: fit, predict, analyze or experiment (see "
                           f"'{PROG} --help')")
        return _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        return interrupted()
    except CLIError as err:
        print(f"{PROG}: error: {one_line(err)}", file=sys.stderr)
        return EXIT_ERROR
    except (ValueError, TypeError) as err:  # invalid estimator options, bad data for a model
        if debug:
            raise
        print(f"{PROG}: error: {one_line(err)}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as err:
        if debug:
            raise
        print(f"{PROG}: error: unexpected {type(err).__name__}: {one_line(err)} (run "
              f"'{PROG} --debug ...' for the traceback)", file=sys.stderr)
        return EXIT_ERROR
