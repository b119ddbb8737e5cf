"""Shared helpers of the robustness experiments: output folder, JSON + PNG writing, the digits
data and the implicit classifiers the experiments train.

Every experiment script has ``main(out_dir="experiments/results")`` and writes a small JSON
file (numbers, settings, notes) and a PNG figure there. The data are scikit-learn's bundled
8×8 digits (MNIST is not reachable offline, theory §9), scaled to [0, 1] by dividing the
pixel intensities (0–16) by 16, so every perturbation size is in units of the full pixel
range. Models are trained by :func:`lifted_idl.training.gradient.fit_gradient` directly on the
scaled pixels (the estimators standardise their inputs, which would change the input norm in
which the robustness penalties and certificates are measured).
"""

from __future__ import annotations

import json
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # running ``python experiments/x.py`` from a checkout
    sys.path.insert(0, str(ROOT))

from lifted_idl import ConvergenceWarning, ImplicitModel  # noqa: E402
from lifted_idl.training.gradient import fit_gradient  # noqa: E402

__all__ = [
    "command_line",
    "output_dir",
    "write_json",
    "save_png",
    "digits_split",
    "train_digits_classifier",
    "accuracy",
    "run_info",
]


def command_line(doc: str, argv=None) -> str:
    """The ``--out-dir`` of a script's command line (``--help`` prints ``doc``'s first line
    and the option, and exits before anything runs)."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    parser.add_argument("--out-dir", default="experiments/results",
                        help="where the JSON and PNG go (relative: from the repository root; "
                             "default: %(default)s)")
    return parser.parse_args(argv).out_dir


def output_dir(out_dir: str | Path = "experiments/results") -> Path:
    """The results folder (created); a relative path is taken from the repository root."""
    path = Path(out_dir)
    if not path.is_absolute():
        path = ROOT / path
    path.mkdir(parents=True, exist_ok=True)
    return path


def _plain(obj):
    """JSON-friendly copy: numpy scalars/arrays to Python, non-finite floats to None."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if np.isfinite(v) else None
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def write_json(data: dict, path: Path) -> Path:
    """Write ``data`` as indented JSON (numpy values converted, NaN/inf as null)."""
    path = Path(path)
    path.write_text(json.dumps(_plain(data), indent=2) + "\n")
    return path


def save_png(fig, path: Path, dpi: int = 110) -> Path:
    """Save a matplotlib figure as PNG and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


def digits_split(test_size: float = 0.3, seed: int = 0):
    """Digits scaled to [0, 1], stratified train/test split.

    Returns
    -------
    U_train, y_train, U_test, y_test : arrays
        ``U`` of shape (m, 64) in [0, 1]; labels 0–9.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    U = d.data / 16.0
    Ut, Us, yt, ys = train_test_split(U, d.target, test_size=test_size, random_state=seed,
                                      stratify=d.target)
    return Ut, yt, Us, ys


def train_digits_classifier(U, y, *, n_hidden: int = 100, kappa: float = 0.9,
                            constraint: str = "inf_norm", model_penalty=None,
                            max_iter: int = 300, learning_rate: float = 0.01, seed: int = 0):
    r"""An implicit ReLU classifier on the scaled digits, trained by :func:`fit_gradient`.

    Full-batch Adam on the softmax cross-entropy (theory §8), from :math:`A = 0`,
    :math:`B \sim \mathcal N(0, 1/p)`, :math:`C = D = 0`, zero biases, with the
    well-posedness ``constraint`` at radius ``kappa`` and an optional ``model_penalty``
    (:mod:`lifted_idl.robustness.penalties`). Stops after ``max_iter`` epochs or when the
    objective stalls for 30 epochs (relative ``tol=1e-5``).

    Returns
    -------
    model : ImplicitModel
        Acts on the scaled pixels; outputs are the 10 class logits.
    info : dict
        ``epochs``, ``objective`` (final), ``model_penalty`` (final value), ``seconds``.
    """
    rng = np.random.default_rng(seed)
    p, q = U.shape[1], 10
    model = ImplicitModel(np.zeros((n_hidden, n_hidden)),
                          rng.standard_normal((n_hidden, p)) / np.sqrt(p),
                          np.zeros((q, n_hidden)), np.zeros((q, p)),
                          b=np.zeros(n_hidden), c=np.zeros(q), activation="relu")
    Y = np.eye(q)[np.asarray(y)]
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model, hist = fit_gradient(model, U, Y, "cross_entropy", kappa=kappa,
                                   constraint=constraint, model_penalty=model_penalty,
                                   max_iter=max_iter, learning_rate=learning_rate,
                                   n_iter_no_change=30, tol=1e-5, random_state=seed)
    return model, {"epochs": hist["n_iter"], "objective": hist["loss"][-1],
                   "model_penalty": hist["model_penalty"],
                   "solver_failures": hist["solver_failures"],
                   "seconds": time.perf_counter() - t0}


def accuracy(model, U, y) -> float:
    """Share of samples whose largest logit is the label."""
    return float(np.mean(np.argmax(model.predict(U), axis=1) == np.asarray(y)))


def run_info(script: str, seconds: float) -> dict:
    """How the result was produced (command, versions, wall-clock time)."""
    import cvxpy
    import scipy
    import sklearn

    return {"command": f"python experiments/{script}", "seconds": round(seconds, 1),
            "python": platform.python_version(), "numpy": np.__version__,
            "scipy": scipy.__version__, "scikit-learn": sklearn.__version__,
            "cvxpy": cvxpy.__version__}
