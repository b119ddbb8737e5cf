"""Helpers shared by the accuracy experiments (function fit, tanh teacher, classification).

The output folder, JSON and PNG writers and the run record come from
:mod:`experiments._common` (the robustness experiments' helpers); this module adds what the
regression and classification reproductions need: an RMSE, the source state of the checkout a
result was produced from, and a way to fit an estimator on the non-constant columns of a
multi-output target only.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _p in (str(ROOT), str(HERE)):
    if _p not in sys.path:  # ``python experiments/x.py`` and ``lifted-idl experiment x``
        sys.path.insert(0, _p)

from _common import output_dir, run_info, save_png, write_json  # noqa: E402

__all__ = ["output_dir", "run_info", "save_png", "write_json", "rmse", "source_state",
           "fit_nonconstant", "quiet", "run_settings"]


def run_settings(config: dict, seeds=None, n_jobs=None, seed_key: str = "seeds"):
    """The seeds (``config[seed_key]`` unless given) and worker count (``config["n_jobs"]``
    unless given) of an experiment's ``main``, as a list of ints and an int."""
    seeds = config[seed_key] if seeds is None else seeds
    n_jobs = config["n_jobs"] if n_jobs is None else n_jobs
    return [int(s) for s in seeds], int(n_jobs)


def map_seeds(fn, seeds, n_jobs: int) -> list:
    """``[fn(s) for s in seeds]``, in ``n_jobs`` forked worker processes when ``n_jobs > 1``
    (one seed per task, results in the order of ``seeds``)."""
    if n_jobs <= 1:
        return [fn(s) for s in seeds]
    import multiprocessing as mp

    with mp.get_context("fork").Pool(n_jobs) as pool:
        return pool.map(fn, seeds, chunksize=1)


def rmse(pred, target) -> float:
    r"""Root-mean-square error over all entries, :math:`\sqrt{\mathrm{mean}((\hat y - y)^2)}`.

    Parameters
    ----------
    pred, target : array_like
        Arrays of the same shape (1-D, or samples × outputs).

    Returns
    -------
    float
    """
    pred = np.asarray(pred, dtype=float)
    target = np.asarray(target, dtype=float)
    return float(np.sqrt(np.mean((pred.reshape(target.shape) - target) ** 2)))


def source_state() -> dict:
    """The git commit of the checkout, whether it had uncommitted changes, and the command.

    Returns
    -------
    dict
        ``commit`` (hex string or None), ``dirty`` (bool or None: uncommitted changes to
        tracked files outside ``experiments/results``; results produced from a dirty tree
        depend on the uncommitted code as well) and ``invoked_as``, the command
        line of the process (``function_fit.py`` or ``lifted-idl experiment function_fit``).
    """
    def git(*args):
        try:
            out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                                 timeout=20, check=True)
            return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    commit = git("rev-parse", "HEAD")
    # the results folder itself does not count: a run rewrites its own earlier results
    status = git("status", "--porcelain", "--untracked-files=no", "--", ".",
                 ":(exclude)experiments/results")
    return {"commit": commit, "dirty": None if status is None else bool(status),
            "invoked_as": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])}


@contextlib.contextmanager
def quiet():
    """Silence warnings inside the block (convergence is recorded in the JSON instead).

    Yields
    ------
    None
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def fit_nonconstant(estimator, U, Y, U_eval):
    """Fit ``estimator`` on the non-constant columns of ``Y``; predict every column.

    Sparse random teachers can have an output that is identically zero (a zero row of the last
    weight matrix); the estimators refuse a constant target, so such a column is predicted by
    its training value, for every method alike.

    Parameters
    ----------
    estimator : regressor
        A scikit-learn regressor supporting multi-output targets (fitted in place).
    U : ndarray of shape (m, p)
    Y : ndarray of shape (m, q)
    U_eval : list of ndarray
        Inputs to predict.

    Returns
    -------
    list of ndarray
        Predictions of shape (m_k, q), one per entry of ``U_eval``.
    int
        The number of constant columns.
    """
    Y = np.asarray(Y, dtype=float)
    varying = Y.std(axis=0) > 1e-12
    estimator.fit(U, Y[:, varying])
    preds = []
    for V in U_eval:
        P = np.tile(Y[0], (V.shape[0], 1))
        P[:, varying] = np.asarray(estimator.predict(V)).reshape(V.shape[0], -1)
        preds.append(P)
    return preds, int((~varying).sum())
