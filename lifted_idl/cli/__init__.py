r"""The ``lifted-idl`` command: fit, predict, analyze, and run the paper reproductions.

Subcommands
-----------
``fit``
    Train an :class:`~lifted_idl.ImplicitRegressor` or :class:`~lifted_idl.ImplicitClassifier`
    on a CSV file (``--csv PATH --target COLUMN``) or on a built-in data set (``--dataset``;
    ``breast_cancer`` when neither is given), report the score on a held-out split and save the
    model as a model file (:func:`lifted_idl.save`: arrays and JSON, no pickle), plus a JSON
    summary next to it. The estimator options are the estimators' parameters, derived from
    their ``_parameter_constraints`` (:mod:`lifted_idl.cli.parser`).
``predict``
    Predictions of a saved model for the rows of a CSV file (the feature columns the model was
    trained on, found by name).
``analyze``
    The well-posedness certificate (theory §2), Lipschitz bounds and the sensitivity matrix
    (theory §7) of a saved model, a heatmap of the matrix, and for classifiers the certified
    accuracy on the l-infinity ball of radius ``--eps`` per standardised feature (feature j
    moves by ``eps`` times its training standard deviation).
``experiment``
    Run ``experiments/<name>.py`` (its ``main(out_dir)``); ``--list`` shows the scripts found.

Every failure (bad input, a bad option value, a file that cannot be read or written, a model
file that is not one, an unexpected error) prints one line ``lifted-idl: error: ...`` on
stderr and exits with status 2; Ctrl-C, at any time, prints ``lifted-idl: interrupted`` and
exits with status 130. Model files are read without unpickling: a pickle is refused. Every
output file is written to a temporary file beside it and renamed into place, as model files
are (``lifted_idl._files.atomic_write``): a failed write leaves the previous file as it was.

The package is split into :mod:`~lifted_idl.cli.parser` (the options),
:mod:`~lifted_idl.cli.data` (CSV tables, data sets, model files) and
:mod:`~lifted_idl.cli.commands`; this module imports them only inside :func:`main`, so that
an interrupt during the start-up imports is reported like any other.
"""

from __future__ import annotations

import sys

__all__ = ["main", "build_parser", "CLIError", "DATASETS", "DEFAULT_DATASET"]

#: names re-exported from the submodules, imported on first use
_FORWARD = {"build_parser": "parser", "CLIError": "_common", "DATASETS": "_common",
            "DEFAULT_DATASET": "_common", "DEFAULT_MODEL": "_common", "PROG": "_common",
            "read_table": "data", "find_experiments": "commands", "_detect_task": "data",
            "run": "commands"}


def main(argv: list[str] | None = None) -> int:
    """Run the ``lifted-idl`` command.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 on success, 2 for any failure (one line on stderr), 130 when
        interrupted (Ctrl-C), also during the imports of NumPy, SciPy and scikit-learn.
    """
    try:
        from .commands import run
    except KeyboardInterrupt:
        print("lifted-idl: interrupted", file=sys.stderr)
        return 130
    return run(argv)


def __getattr__(name: str):
    module = _FORWARD.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{module}", __name__), name)
