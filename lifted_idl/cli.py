r"""The ``lifted-idl`` command: fit, predict, analyze, and run the paper reproductions.

Subcommands
-----------
``fit``
    Train an :class:`~lifted_idl.ImplicitRegressor` or :class:`~lifted_idl.ImplicitClassifier`
    on a CSV file (``--csv PATH --target COLUMN``) or on a built-in data set (``--dataset``;
    ``breast_cancer`` when neither is given), report the score on a held-out split and save the
    model with joblib, plus a JSON summary next to it.
``predict``
    Predictions of a saved model for the rows of a CSV file (the feature columns the model was
    trained on, found by name).
``analyze``
    The well-posedness certificate (theory §1), Lipschitz bounds and the sensitivity matrix
    (theory §6) of a saved model, a heatmap of the matrix, and for classifiers the certified
    accuracy on the l-infinity ball of radius ``--eps`` (in raw feature units).
``experiment``
    Run ``experiments/<name>.py`` (its ``main(out_dir)``); ``--list`` shows the scripts found.

Bad input (a missing or unreadable file, a missing column, non-numeric features, an unknown
data set or experiment) prints one line ``lifted-idl: error: ...`` on stderr and exits with
status 2. A saved model is a pickle: load only files you trust.
"""

from __future__ import annotations

import argparse
import ast
import csv
import importlib.util
import io
import json
import math
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["main", "build_parser", "CLIError", "DATASETS", "DEFAULT_DATASET"]

PROG = "lifted-idl"
DEFAULT_DATASET = "breast_cancer"
DEFAULT_MODEL = "lifted_idl_model.joblib"
DEFAULT_TEST_SIZE = 0.25
DEFAULT_SEED = 0
_BUILTIN = ("digits", "breast_cancer", "iris", "wine", "diabetes")
_SYNTHETIC = ("teacher", "function_fit")
DATASETS = _BUILTIN + _SYNTHETIC
_BUNDLE_FORMAT = "lifted_idl.cli/1"
_EXIT_OK, _EXIT_INTERNAL, _EXIT_USAGE = 0, 1, 2
# integer-valued numeric targets with at most this many distinct values count as class labels
_MAX_AUTO_CLASSES = 20


class CLIError(Exception):
    """Bad input to the command line (reported on stderr, exit status 2)."""


# ----------------------------------------------------------------------------------------------
# tables: CSV files and built-in data sets
# ----------------------------------------------------------------------------------------------
@dataclass
class _Table:
    """Feature matrix with its column names, and the target column when there is one."""

    X: np.ndarray
    feature_names: list[str]
    y: np.ndarray | None = None
    target: str | None = None
    source: str = ""


@dataclass
class _Split:
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    feature_names: list[str]
    target: str
    task: str
    source: dict = field(default_factory=dict)


def _read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV file, with checks that name the file and the line."""
    if not path.exists():
        raise CLIError(f"file not found: {path}")
    if path.is_dir():
        raise CLIError(f"{path} is a directory, not a CSV file")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except UnicodeDecodeError:
        raise CLIError(f"{path} is not a UTF-8 text CSV file") from None
    except csv.Error as err:
        raise CLIError(f"{path} is not a valid CSV file: {err}") from None
    except OSError as err:
        raise CLIError(f"cannot read {path}: {err.strerror or err}") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise CLIError(f"{path} is empty (expected a header line and data rows)")
    header = [h.strip() for h in rows[0]]
    if any(h == "" for h in header):
        raise CLIError(f"{path}: the header line has an empty column name: {rows[0]!r}")
    seen = set()
    for h in header:
        if h in seen:
            raise CLIError(f"{path}: column {h!r} appears more than once in the header")
        seen.add(h)
    data = rows[1:]
    if not data:
        raise CLIError(f"{path} has a header but no data rows")
    for k, r in enumerate(data):
        if len(r) != len(header):
            raise CLIError(
                f"{path}, line {k + 2}: {len(r)} fields, but the header has {len(header)} "
                "columns"
            )
    return header, data


def _numeric_column(path: Path, name: str, values: list[str], role: str) -> np.ndarray:
    out = np.empty(len(values), dtype=np.float64)
    for k, v in enumerate(values):
        s = v.strip()
        try:
            x = float(s)
        except ValueError:
            if s == "":
                raise CLIError(
                    f"{path}, line {k + 2}: missing value in {role} column {name!r}"
                ) from None
            raise CLIError(
                f"{path}: {role} column {name!r} is not numeric (line {k + 2}: {v!r}); "
                "features must be numbers — drop or encode that column, or choose the "
                "features with --features"
            ) from None
        if not math.isfinite(x):
            raise CLIError(
                f"{path}, line {k + 2}: {role} column {name!r} holds {v!r}; features must be "
                "finite numbers (no missing values)"
            )
        out[k] = x
    return out


def _parse_target(path: Path, name: str, values: list[str]) -> np.ndarray:
    """Numbers when every entry is one, else the labels as strings."""
    stripped = [v.strip() for v in values]
    for k, s in enumerate(stripped):
        if s == "":
            raise CLIError(f"{path}, line {k + 2}: missing value in target column {name!r}")
    try:
        y = np.array([float(s) for s in stripped])
    except ValueError:
        return np.array(stripped, dtype=object)
    if not np.all(np.isfinite(y)):
        k = int(np.flatnonzero(~np.isfinite(y))[0])
        raise CLIError(f"{path}, line {k + 2}: target column {name!r} holds {values[k]!r}")
    return y


def read_table(path, *, target: str | None = None, features: list[str] | None = None,
               require_target: bool = True, read_target: bool = True) -> _Table:
    """Read a CSV file into a numeric feature matrix and (optionally) a target column.

    Parameters
    ----------
    path : str or Path
    target : str, optional
        Name of the target column.
    features : list of str, optional
        Feature columns, in this order; default: every column except ``target``.
    require_target : bool, default=True
        Whether a missing ``target`` column is an error (else ``y`` is None).
    read_target : bool, default=True
        Parse the target column; when False it is only left out of the default features
        (``y`` is None), so new data may leave it empty.

    Returns
    -------
    _Table

    Raises
    ------
    CLIError
        For a missing or malformed file, a missing column (named in the message), a missing
        value or a non-numeric feature.
    """
    path = Path(path)
    header, data = _read_rows(path)
    cols = {h: j for j, h in enumerate(header)}
    if target is not None and target not in cols and require_target:
        raise CLIError(
            f"{path}: target column {target!r} not found; the columns are {header}"
        )
    has_target = read_target and target is not None and target in cols
    if features is None:
        features = [h for h in header if h != target]
        if not features:
            raise CLIError(f"{path}: no feature columns besides the target {target!r}")
    else:
        missing = [f for f in features if f not in cols]
        if missing:
            which = "column" if len(missing) == 1 else "columns"
            raise CLIError(
                f"{path}: missing feature {which} {', '.join(map(repr, missing))} "
                f"(the model needs {len(features)} feature columns: {features})"
            )
        if target is not None and target in features:
            raise CLIError(f"the target column {target!r} cannot also be a feature")
        if len(set(features)) != len(features):
            raise CLIError(f"a feature column is listed twice: {features}")
    X = np.column_stack([
        _numeric_column(path, f, [r[cols[f]] for r in data], "feature") for f in features
    ])
    y = _parse_target(path, target, [r[cols[target]] for r in data]) if has_target else None
    return _Table(X, list(features), y, target if has_target else None, str(path))


def _detect_task(y: np.ndarray) -> str:
    """``classification`` for text labels or few integer values, else ``regression``."""
    if y.dtype == object:
        return "classification"
    n_unique = np.unique(y).size
    integral = bool(np.all(y == np.round(y)))
    if integral and n_unique <= _MAX_AUTO_CLASSES and n_unique <= max(2, y.size // 2):
        return "classification"
    return "regression"


def _as_labels(y: np.ndarray) -> np.ndarray:
    """Class labels: integers stay integers (``3``, not ``3.0``), text stays text."""
    if y.dtype != object and np.all(y == np.round(y)):
        return y.astype(np.int64)
    return y


def _split(X, y, task, test_size, random_state):
    from sklearn.model_selection import train_test_split

    m = X.shape[0]
    n_test = math.ceil(test_size * m)
    if m - n_test < 2 or n_test < 1:
        raise CLIError(
            f"{m} samples are too few for a train/test split with test size {test_size} "
            "(need at least 2 training samples and 1 test sample)"
        )
    stratify = None
    if task == "classification":
        _, counts = np.unique(y.astype(str), return_counts=True)
        if counts.min() >= 2 and n_test >= counts.size and m - n_test >= counts.size:
            stratify = y.astype(str)
    return train_test_split(X, y, test_size=test_size, random_state=random_state,
                            stratify=stratify)


def _load_dataset(name: str, test_size: float, random_state: int) -> _Split:
    if name not in DATASETS:
        raise CLIError(f"unknown data set {name!r}; available: {', '.join(DATASETS)}")
    source = {"kind": "dataset", "name": name, "test_size": test_size,
              "random_state": random_state}
    if name == "teacher":
        from .datasets import make_teacher

        Xtr, ytr, Xte, yte, _ = make_teacher(random_state=random_state)
        names = [f"u{j}" for j in range(Xtr.shape[1])]
        source["test_size"] = None  # the generator's own split
        return _Split(Xtr, ytr, Xte, yte, names, "y", "regression", source)
    if name == "function_fit":
        from .datasets import make_function_fit

        Xtr, ytr, Xte, yte = make_function_fit(random_state=random_state)
        source["test_size"] = None
        return _Split(Xtr, ytr, Xte, yte, ["u"], "y", "regression", source)
    import sklearn.datasets as skd

    from .datasets import BUILTIN

    task, loader = BUILTIN[name]
    bunch = getattr(skd, loader)()
    X = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target)
    if task == "classification" and getattr(bunch, "target_names", None) is not None:
        labels = np.asarray(bunch.target_names)
        y = labels[y] if labels.dtype.kind in "iu" else labels[y].astype(object)
    names = [str(f) for f in bunch.feature_names]
    Xtr, Xte, ytr, yte = _split(X, y, task, test_size, random_state)
    return _Split(Xtr, ytr, Xte, yte, names, "target", task, source)


# ----------------------------------------------------------------------------------------------
# saved models
# ----------------------------------------------------------------------------------------------
@dataclass
class _Bundle:
    estimator: object
    task: str
    feature_names: list[str] | None
    target: str | None
    source: dict


def _load_bundle(path) -> _Bundle:
    import joblib

    path = Path(path)
    if not path.exists():
        raise CLIError(f"model file not found: {path}")
    if path.is_dir():
        raise CLIError(f"{path} is a directory, not a model file")
    try:
        obj = joblib.load(path)
    except Exception as err:  # a pickle can fail in many ways; all mean "not a model file"
        raise CLIError(
            f"cannot load a model from {path} ({type(err).__name__}: {err}); expected a file "
            f"written by '{PROG} fit' or joblib.dump of a fitted estimator"
        ) from None
    if isinstance(obj, dict) and obj.get("format") == _BUNDLE_FORMAT:
        return _Bundle(obj["estimator"], obj["task"], obj.get("feature_names"),
                       obj.get("target"), obj.get("source", {}))
    from .model import ImplicitModel

    if isinstance(getattr(obj, "model_", None), ImplicitModel):
        names = getattr(obj, "feature_names_in_", None)
        task = "classification" if hasattr(obj, "classes_") else "regression"
        return _Bundle(obj, task, None if names is None else [str(n) for n in names], None,
                       {})
    raise CLIError(
        f"{path} holds a {type(obj).__name__}, not a fitted lifted_idl estimator (expected a "
        f"file written by '{PROG} fit')"
    )


def _features_for(bundle: _Bundle, path: Path, with_target: bool = False) -> _Table:
    """The model's feature columns of a CSV file (and its target column if ``with_target``)."""
    est = bundle.estimator
    target = bundle.target
    if bundle.feature_names is not None:
        return read_table(path, target=target if with_target else None,
                          features=bundle.feature_names, require_target=with_target)
    # an estimator fitted on a bare array: every non-target column, in file order
    table = read_table(path, target=target, require_target=with_target,
                       read_target=with_target)
    p = int(est.n_features_in_)
    if table.X.shape[1] != p:
        raise CLIError(
            f"{path} has {table.X.shape[1]} feature columns {table.feature_names}; the model "
            f"expects {p}"
        )
    return table


# ----------------------------------------------------------------------------------------------
# fit
# ----------------------------------------------------------------------------------------------
_EST_OPTIONS = [
    # (flag, dest, type, choices, help)
    ("--n-hidden", "n_hidden", int, None, "state dimension n"),
    ("--kappa", "kappa", float, None,
     "well-posedness margin: training keeps ||A||_inf <= kappa < 1"),
    ("--activation", "activation", str, ("relu", "tanh", "leaky_relu"), None),
    ("--solver", "solver", str, ("bcd", "gradient", "bcd+gradient"),
     "block-coordinate descent, projected gradient, or BCD then gradient"),
    ("--penalty", "penalty", str, ("l2", "l1", "none"), None),
    ("--alpha", "alpha", float, None, "penalty strength"),
    ("--max-iter", "max_iter", int, None, "BCD rounds"),
    ("--gradient-max-iter", "gradient_max_iter", int, None, "epochs of the gradient solver"),
    ("--learning-rate", "learning_rate", float, None, "Adam step size of the gradient solver"),
    ("--batch-size", "batch_size", int, None, "minibatch size of the gradient solver"),
    ("--tol", "tol", float, None, "relative decrease below which a solver stops"),
    ("--lam", "lam", float, None, "initial weight of the Fenchel divergence (BCD)"),
    ("--lam-min", "lam_min", float, None, "floor of the Fenchel divergence weight (BCD)"),
    ("--mu", "mu", float, None, "weight of the coupling term of the relaxation (BCD)"),
    ("--n-jobs", "n_jobs", int, None, "threads for the linear algebra of a fit"),
]


def _estimator(task: str, args) -> object:
    from .estimators import ImplicitClassifier, ImplicitRegressor

    cls = ImplicitClassifier if task == "classification" else ImplicitRegressor
    params = {dest: getattr(args, dest) for _, dest, _, _, _ in _EST_OPTIONS
              if getattr(args, dest) is not None}
    params["early_stopping"] = bool(args.early_stopping)
    params["random_state"] = args.random_state
    params["verbose"] = 0 if args.quiet else 1
    return cls(**params)


def _jsonable(v):
    if isinstance(v, (bool, int, float, str)) or v is None:
        return v if not (isinstance(v, float) and not math.isfinite(v)) else str(v)
    if isinstance(v, (np.integer, np.floating, np.bool_)):
        return _jsonable(v.item())
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return str(v)


def _scores(est, task, X, y) -> dict:
    if task == "classification":
        return {"accuracy": float(est.score(X, y))}
    from sklearn.metrics import mean_squared_error, r2_score

    pred = est.predict(X)
    return {"r2": float(r2_score(y, pred)),
            "rmse": float(np.sqrt(mean_squared_error(y, pred)))}


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
    import joblib

    out = Path(args.out)
    if out.suffix == ".json":
        raise CLIError(f"--out {out} ends in .json; that name is used for the summary")
    if args.csv is not None and args.dataset is not None:
        raise CLIError("give either --csv or --dataset, not both")
    if not 0 < args.test_size < 1:
        raise CLIError(f"--test-size must be in (0, 1); got {args.test_size}")
    if args.csv is None:
        if args.target is not None or args.features is not None:
            raise CLIError("--target and --features apply to --csv data only")
        name = args.dataset or DEFAULT_DATASET
        data = _load_dataset(name, args.test_size, args.random_state)
        if args.task is not None and args.task != data.task:
            raise CLIError(f"data set {name!r} is a {data.task} task, not {args.task}")
        what = f"data set {name!r}" + ("" if args.dataset else " (the default)")
    else:
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
    say(f"  train: {_format_scores(train)}")
    print(f"test score: {_format_scores(test)}")
    bundle = {"format": _BUNDLE_FORMAT, "estimator": est, "task": data.task,
              "feature_names": data.feature_names, "target": data.target,
              "source": data.source}
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(bundle, out)
    except OSError as err:
        raise CLIError(f"cannot write the model to {out}: {err.strerror or err}") from None
    from . import __version__

    summary = {
        "lifted_idl_version": __version__,
        "estimator": type(est).__name__,
        "params": _jsonable(est.get_params()),
        "task": data.task,
        "data": _jsonable(data.source),
        "n_train": int(data.X_train.shape[0]),
        "n_test": int(data.X_test.shape[0]),
        "feature_names": data.feature_names,
        "target": data.target,
        "classes": _jsonable(getattr(est, "classes_", None)),
        "fit_time_s": round(fit_time, 3),
        "n_iter": int(est.n_iter_),
        "converged": bool(est.converged_),
        "well_posedness": {"certificate": wp.certificate, "value": _jsonable(wp.value),
                           "contraction": _jsonable(wp.contraction)},
        "train_scores": train,
        "test_scores": test,
    }
    summary_path = out.with_suffix(".json")
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    say(f"  saved the model to {out} and a summary to {summary_path}")
    return _EXIT_OK


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
    bundle = _load_bundle(args.model)
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
            out.write_text(buf.getvalue())
        except OSError as err:
            raise CLIError(f"cannot write {out}: {err.strerror or err}") from None
        print(f"{PROG} predict: wrote {table.X.shape[0]} predictions to {out}", file=sys.stderr)
    return _EXIT_OK


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
    fig.savefig(path, dpi=100)


def _try(fn, *a, **k):
    """``(value, None)``, or ``(None, reason)`` when a bound's condition fails."""
    from .exceptions import BoundConditionError

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
    p = int(bundle.estimator.n_features_in_)
    if data.X_test.shape[1] != p:
        raise CLIError(
            f"data set {name!r} has {data.X_test.shape[1]} features; the model expects {p}"
        )
    if data.task != bundle.task:
        raise CLIError(f"data set {name!r} is a {data.task} task; the model does "
                       f"{bundle.task}")
    return data.X_test, data.y_test, f"test split of data set {name!r} " \
        f"({data.X_test.shape[0]} samples)"


def _cmd_analyze(args) -> int:
    try:
        from . import robustness
    except ImportError as err:  # pragma: no cover - the subpackage ships with the package
        raise CLIError(f"lifted_idl.robustness is not available: {err}") from None
    if not (math.isfinite(args.eps) and args.eps >= 0):
        raise CLIError(f"--eps must be a finite number >= 0; got {args.eps}")
    bundle = _load_bundle(args.model)
    est = bundle.estimator
    model = est.model_
    data = _analysis_data(args, bundle)
    out_dir = Path(args.out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CLIError(f"cannot create {out_dir}: {err.strerror or err}") from None
    from .wellposedness import inf_norm, mu_inf

    A = np.asarray(model.A, dtype=np.float64)
    wp = model.well_posedness
    report: dict = {
        "model": {"estimator": type(est).__name__, "task": bundle.task,
                  "n_states": model.n_states, "n_features": model.n_features,
                  "n_outputs": model.n_outputs, "activation": repr(model.activation)},
        "well_posedness": {"well_posed": bool(wp.well_posed), "certificate": wp.certificate,
                           "value": _jsonable(wp.value),
                           "contraction": _jsonable(wp.contraction),
                           "alpha": _jsonable(wp.alpha)},
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
    lip: dict = {}
    print("Lipschitz bounds (inputs in raw feature units):")
    for label, kind, norm in [("sensitivity, l_inf", "sensitivity", "inf"),
                              ("sensitivity, l_2", "sensitivity", 2),
                              ("rho [IDL 4.3], l_inf", "rho", "inf"),
                              ("NE-MON, l_inf", "nemon", "inf")]:
        val, why = _try(robustness.lipschitz_bound, model, norm=norm, kind=kind)
        lip[label] = val if why is None else f"n/a: {why}"
        print(f"  {label:22s} " + (f"{val:.6g}" if why is None else f"n/a ({why})"))
    report["lipschitz"] = lip
    S, why = _try(robustness.sensitivity_matrix, model)
    names = bundle.feature_names or [f"x{j}" for j in range(model.n_features)]
    if S is not None:
        if bundle.task == "classification":
            outputs = [str(c) for c in est.classes_]
        else:
            outputs = [bundle.target or "y"] if model.n_outputs == 1 else [
                f"y{i}" for i in range(model.n_outputs)]
        png = out_dir / "sensitivity.png"
        _heatmap(S, names, outputs, png)
        top = np.argsort(-S.max(axis=0))[: min(5, S.shape[1])]
        print("most sensitive features: " + ", ".join(
            f"{names[j]} ({S[:, j].max():.3g})" for j in top))
        print(f"sensitivity heatmap: {png}")
        report["sensitivity_png"] = str(png)
        report["sensitivity_matrix"] = S.tolist()
    else:
        print(f"sensitivity matrix: n/a ({why})")
    if data is None:
        print("no evaluation data (pass --csv PATH or --dataset NAME for scores)")
    else:
        X, y, desc = data
        scores = _scores(est, bundle.task, X, y)
        report["data"] = desc
        report["scores"] = scores
        print(f"data: {desc}: {_format_scores(scores)}")
        if bundle.task == "classification":
            acc, why = _try(robustness.certified_accuracy, est, X, y, args.eps)
            if why is None:
                print(f"certified accuracy at eps = {args.eps:g} (l_inf ball, raw feature "
                      f"units, sensitivity bound): {acc:.4g}")
                report["certified_accuracy"] = {"eps": args.eps, "value": acc,
                                                "method": "sensitivity", "norm": "inf"}
            else:
                print(f"certified accuracy: n/a ({why})")
        elif isinstance(lip.get("sensitivity, l_inf"), float):
            bound = args.eps * lip["sensitivity, l_inf"]
            print(f"output change on the l_inf ball of radius eps = {args.eps:g}: at most "
                  f"{bound:.4g}")
            report["output_change_bound"] = {"eps": args.eps, "value": bound}
    path = out_dir / "analysis.json"
    path.write_text(json.dumps(_jsonable(report), indent=2) + "\n")
    print(f"report: {path}")
    return _EXIT_OK


# ----------------------------------------------------------------------------------------------
# experiment
# ----------------------------------------------------------------------------------------------
def _experiments_dir(arg) -> Path:
    if arg is not None:
        d = Path(arg)
        if not d.is_dir():
            raise CLIError(f"experiments directory not found: {d}")
        return d
    here = Path(__file__).resolve().parent.parent / "experiments"
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
        return _EXIT_OK
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
        out_dir.mkdir(parents=True, exist_ok=True)
        print(f"{PROG} experiment {name}: writing to {out_dir}")
        t0 = time.perf_counter()
        result = main_fn(out_dir)
    finally:
        sys.path.remove(str(directory))
    print(f"  done in {time.perf_counter() - t0:.1f} s")
    if result is not None:
        print(json.dumps(_jsonable(result), indent=2) if isinstance(result, dict)
              else str(result))
    written = sorted(p for p in out_dir.rglob("*") if p.is_file())
    for p in written:
        print(f"  {p}")
    return _EXIT_OK


# ----------------------------------------------------------------------------------------------
# parser and entry point
# ----------------------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, then exit 2 (as argparse does), without usage noise
        self.print_usage(sys.stderr)
        self.exit(_EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``lifted-idl`` command.

    Returns
    -------
    argparse.ArgumentParser
    """
    parser = _Parser(prog=PROG, description="Implicit deep learning models: fit, predict, "
                     "analyze robustness, and run the paper reproductions.")
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of an unexpected error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    fit = sub.add_parser("fit", help="train a model on a CSV file or a built-in data set",
                         description="Train an implicit model, print the test score, save it. "
                         f"With no data option it trains on the {DEFAULT_DATASET!r} data set.")
    src = fit.add_argument_group("data")
    src.add_argument("--csv", metavar="PATH", help="CSV file with a header line")
    src.add_argument("--target", metavar="COLUMN", help="column to predict (with --csv)")
    src.add_argument("--features", metavar="COL,COL",
                     help="feature columns (with --csv; default: all but the target)")
    src.add_argument("--dataset", metavar="NAME",
                     help=f"built-in data set: {', '.join(DATASETS)} "
                     f"(default {DEFAULT_DATASET})")
    src.add_argument("--task", choices=("classification", "regression"),
                     help="default: detected from the target column")
    src.add_argument("--test-size", type=float, default=DEFAULT_TEST_SIZE,
                     help="held-out fraction (default %(default)s)")
    est = fit.add_argument_group("estimator (default: the estimator's own defaults)")
    for flag, dest, typ, choices, text in _EST_OPTIONS:
        est.add_argument(flag, dest=dest, type=typ, choices=choices, default=None, help=text,
                         metavar="{" + ",".join(choices) + "}" if choices else dest.upper())
    est.add_argument("--early-stopping", dest="early_stopping", action="store_true",
                     default=True,
                     help="hold out a validation split and keep the best round (the default)")
    est.add_argument("--no-early-stopping", dest="early_stopping", action="store_false",
                     help="train on the whole training split and keep the round with the "
                          "lowest training objective")
    est.add_argument("--random-state", type=int, default=DEFAULT_SEED,
                     help="seed of the split and of the solver (default %(default)s)")
    fit.add_argument("--out", default=DEFAULT_MODEL, metavar="PATH",
                     help="where to save the model (joblib; default %(default)s); the JSON "
                     "summary goes next to it, with suffix .json")
    fit.add_argument("-q", "--quiet", action="store_true", help="print only the test score")

    pred = sub.add_parser("predict", help="predictions of a saved model for a CSV file")
    pred.add_argument("--model", required=True, metavar="PATH", help="file written by fit")
    pred.add_argument("--csv", required=True, metavar="PATH",
                      help="CSV file with the model's feature columns (others are ignored)")
    pred.add_argument("--out", metavar="PATH", help="output CSV (default: stdout)")
    pred.add_argument("--proba", action="store_true",
                      help="classifiers: add one probability column per class")

    ana = sub.add_parser("analyze", help="well-posedness, Lipschitz bounds, sensitivity "
                         "heatmap and certified accuracy of a saved model")
    ana.add_argument("--model", required=True, metavar="PATH", help="file written by fit")
    ana.add_argument("--csv", metavar="PATH", help="evaluation data, with the target column")
    ana.add_argument("--dataset", metavar="NAME",
                     help="built-in evaluation data (its test split); default: the model's "
                     "own built-in training data set, if any")
    ana.add_argument("--eps", type=float, default=0.01,
                     help="l_inf radius for the certified accuracy, in raw feature units "
                     "(default %(default)s)")
    ana.add_argument("--out-dir", default="lifted_idl_analysis", metavar="DIR",
                     help="where to write sensitivity.png and analysis.json "
                     "(default %(default)s)")

    exp = sub.add_parser("experiment", help="run a reproduction script from experiments/")
    exp.add_argument("name", nargs="?", metavar="NAME", help="experiments/<NAME>.py")
    exp.add_argument("--list", action="store_true", help="list the available experiments")
    exp.add_argument("--out-dir", metavar="DIR", help="default: results/<NAME>")
    exp.add_argument("--experiments-dir", metavar="DIR",
                     help="default: experiments/ next to the package, else ./experiments")
    return parser


_COMMANDS = {"fit": _cmd_fit, "predict": _cmd_predict, "analyze": _cmd_analyze,
             "experiment": _cmd_experiment}


def main(argv: list[str] | None = None) -> int:
    """Run the ``lifted-idl`` command.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 on success, 2 for bad input or usage (the message is on stderr),
        1 for an unexpected error.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed by argparse
        return exc.code if isinstance(exc.code, int) else _EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return _EXIT_USAGE
    try:
        return _COMMANDS[args.command](args)
    except CLIError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return _EXIT_USAGE
    except (ValueError, TypeError) as err:  # invalid estimator options, bad data for a model
        if args.debug:
            raise
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return _EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if args.debug:
            raise
        print(f"{PROG}: unexpected error: {type(err).__name__}: {err} "
              f"(run '{PROG} --debug {args.command} ...' for the traceback)", file=sys.stderr)
        return _EXIT_INTERNAL
