"""Input and output of the ``lifted-idl`` command: CSV tables, built-in data sets, model files.

Model files are written and read with :func:`lifted_idl.save` / :func:`lifted_idl.load`
(plain arrays and JSON; a pickle is refused, never loaded); the command keeps its own
metadata (task, target column, feature names, data source) in the file's ``user`` metadata.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._common import (
    DATASETS,
    PROG,
    CLIError,
    missing_list,
    one_line,
)

# integer-valued numeric targets with at most this many distinct values count as class labels
_MAX_AUTO_CLASSES = 20
# integers are labels only below this magnitude: every one of them is exact in a float64 (so
# distinct numbers in the file stay distinct) and fits an int64
_MAX_EXACT_INT = 2.0 ** 53


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
    features = _feature_columns(path, header, cols, target, features)
    X = np.column_stack([
        _numeric_column(path, f, [r[cols[f]] for r in data], "feature") for f in features
    ])
    y = _parse_target(path, target, [r[cols[target]] for r in data]) if has_target else None
    return _Table(X, list(features), y, target if has_target else None, str(path))


def _feature_columns(path: Path, header, cols, target, features) -> list[str]:
    """The feature columns of :func:`read_table`: ``features`` checked, or all but ``target``."""
    if features is None:
        features = [h for h in header if h != target]
        if not features:
            raise CLIError(f"{path}: no feature columns besides the target {target!r}")
        return features
    missing = [f for f in features if f not in cols]
    if missing:
        raise CLIError(
            f"{path}: missing feature {missing_list('column', missing)} "
            f"(the model needs {len(features)} feature columns: {features})"
        )
    if target is not None and target in features:
        raise CLIError(f"the target column {target!r} cannot also be a feature")
    if len(set(features)) != len(features):
        raise CLIError(f"a feature column is listed twice: {features}")
    return features


def _integer_labels(y: np.ndarray) -> bool:
    """Whether numbers ``y`` are integers of magnitude below 2**53 (exact, and int64)."""
    return bool(np.all(y == np.round(y)) and np.all(np.abs(y) < _MAX_EXACT_INT))


def _detect_task(y: np.ndarray) -> str:
    """``classification`` for text labels or few integer values (of magnitude below 2**53),
    else ``regression``."""
    if y.dtype == object:
        return "classification"
    n_unique = np.unique(y).size
    if _integer_labels(y) and n_unique <= _MAX_AUTO_CLASSES and n_unique <= max(2, y.size // 2):
        return "classification"
    return "regression"


def _as_labels(y: np.ndarray) -> np.ndarray:
    """Class labels: integers stay integers (``3``, not ``3.0``), text stays text.

    Integers of magnitude 2**53 or more become their decimal text (an int64 cast wraps them
    from 2**63 on, and scikit-learn takes such floats for a continuous target).
    """
    if y.dtype == object or not np.all(y == np.round(y)):
        return y
    if _integer_labels(y):
        return y.astype(np.int64)
    return np.array([str(int(v)) for v in y], dtype=object)


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
        from ..datasets import make_teacher

        Xtr, ytr, Xte, yte, _ = make_teacher(random_state=random_state)
        names = [f"u{j}" for j in range(Xtr.shape[1])]
        source["test_size"] = None  # the generator's own split
        return _Split(Xtr, ytr, Xte, yte, names, "y", "regression", source)
    if name == "function_fit":
        from ..datasets import make_function_fit

        Xtr, ytr, Xte, yte = make_function_fit(random_state=random_state)
        source["test_size"] = None
        return _Split(Xtr, ytr, Xte, yte, ["u"], "y", "regression", source)
    import sklearn.datasets as skd

    from ..datasets import BUILTIN

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
# model files
# ----------------------------------------------------------------------------------------------
@dataclass
class _Bundle:
    estimator: object
    task: str
    feature_names: list[str] | None
    target: str | None
    source: dict


def save_bundle(est, path: Path, task: str, feature_names, target, source) -> None:
    """Write a fitted estimator and the command's metadata to a model file."""
    from ..persistence import save

    meta = {"cli": {"task": task, "feature_names": feature_names, "target": target,
                    "source": source}}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save(est, path, metadata=meta)
    except OSError as err:
        raise CLIError(f"cannot write the model to {path}: {err.strerror or err}") from None


def load_bundle(path) -> _Bundle:
    """A fitted estimator and its metadata from a model file (never unpickles)."""
    from ..exceptions import ModelFileError
    from ..persistence import _read, load

    path = Path(path)
    try:
        meta = _read(path)[0]
        obj = load(path)
    except ModelFileError as err:
        raise CLIError(one_line(err)) from None
    if meta.get("kind") == "ImplicitModel":
        raise CLIError(
            f"{path} holds a bare ImplicitModel, not a fitted estimator (expected a file "
            f"written by '{PROG} fit' or lifted_idl.save of a fitted estimator)"
        )
    user = meta.get("user")
    cli = user.get("cli") if isinstance(user, dict) else None
    if not isinstance(cli, dict):  # a model saved by lifted_idl.save with other metadata
        cli = {}
    names = cli.get("feature_names")
    if names is not None and not (isinstance(names, list)
                                  and all(isinstance(n, str) for n in names)):
        raise CLIError(f"{path}: its metadata's feature names are not a list of strings")
    if names is None and getattr(obj, "feature_names_in_", None) is not None:
        names = [str(n) for n in obj.feature_names_in_]
    task = "classification" if hasattr(obj, "classes_") else "regression"
    return _Bundle(obj, task, names, cli.get("target"), cli.get("source") or {})


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


