"""The argument parser of the ``lifted-idl`` command.

The estimator options of ``fit`` are derived from the estimators' ``_parameter_constraints``
and docstrings (:func:`estimator_options`), so they follow the estimators: a new parameter or
a new option value (``--penalty group``) is a command-line option without a change here.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass

__all__ = ["build_parser", "estimator_options", "EstimatorOption", "parse"]

from ._common import (
    DATASETS,
    DEFAULT_DATASET,
    DEFAULT_EPS,
    DEFAULT_MODEL,
    DEFAULT_SEED,
    DEFAULT_TEST_SIZE,
    EXIT_ERROR,
    PROG,
    one_line,
)

#: estimator parameters the command sets itself: ``--random-state`` also seeds the train/test
#: split, ``-q`` sets ``verbose``, and a fresh fit has nothing to warm-start from
_COMMAND_OWNED = ("random_state", "verbose", "warm_start")
#: the command's defaults where they differ from the estimators'
_COMMAND_DEFAULTS = {"early_stopping": True}
#: the words a value of a parameter that takes a bool among other values may be spelled as
_TRUE, _FALSE = ("true", "yes", "1"), ("false", "no", "0")


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        """One line and a hint on stderr, exit status 2 (no usage block)."""
        hint = f"see '{self.prog} --help'"
        self.exit(EXIT_ERROR, f"{PROG}: error: {one_line(message)} ({hint})\n")


@dataclass
class EstimatorOption:
    """One ``fit`` option, derived from an estimator parameter."""

    name: str
    flag: str
    constraints: list
    choices: tuple
    boolean: bool
    help: str

    def convert(self, text: str):
        """The parameter value of a command-line word, checked against the constraints.

        ``none`` is None where None is allowed; ``true``/``false`` (also ``yes``/``no`` and
        ``1``/``0``, in any case) a bool where a bool is; a comma-separated list of numbers
        (``inf`` allowed) a list of floats where an array-like is; else the word as an option
        string, an int or a float, the first the constraints accept.
        """
        from sklearn.utils._param_validation import _ArrayLikes, _Booleans, _NoneConstraint

        candidates = []
        word = text.strip().lower()
        if word == "none" and self._takes(_NoneConstraint):
            candidates.append(None)
        if text in self.choices:
            candidates.append(text)
        if word in _TRUE + _FALSE and self._takes(_Booleans):
            candidates.append(word in _TRUE)
        for cast in (int, float):
            try:
                candidates.append(cast(text))
            except ValueError:
                pass
        if self._takes(_ArrayLikes):
            try:
                candidates.append([float(v) for v in text.split(",")])
            except ValueError:
                pass
        for value in candidates:
            if any(c.is_satisfied_by(value) for c in self.constraints):
                return value
        wanted = " or ".join(_describe(c) for c in self.constraints)
        raise argparse.ArgumentTypeError(f"must be {wanted}; got {text!r}")

    def _takes(self, kind) -> bool:
        return any(isinstance(c, kind) for c in self.constraints)


def _describe(constraint) -> str:
    """A constraint in the words of the command line."""
    from sklearn.utils._param_validation import _ArrayLikes, _Booleans

    if isinstance(constraint, _Booleans):
        return "true or false"
    if isinstance(constraint, _ArrayLikes):
        return "comma-separated numbers"
    return str(constraint)


def _doc_summaries(doc: str) -> dict:
    """The first sentence of each parameter's description in a numpydoc docstring."""
    out = {}
    for m in re.finditer(r"^    (\w+) : [^\n]*\n((?:        [^\n]*\n|\s*\n)*)", doc, re.M):
        text = " ".join(m.group(2).split())
        text = re.sub(r":\w+:`~?([^`]*)`", r"\1", text).replace("``", "").replace("\\", "")
        first = re.split(r"(?<=[a-z0-9)])\. ", text, maxsplit=1)[0].rstrip(".")
        out[m.group(1)] = first
    return out


def estimator_options() -> list[EstimatorOption]:
    """The ``fit`` options: one per parameter of the estimators, except the command's own.

    The type and the accepted values come from ``_parameter_constraints`` (values an option
    cannot spell, such as an ``Activation`` object, are left out), the help text from the
    parameter's docstring.
    """
    from sklearn.utils._param_validation import StrOptions, make_constraint

    from ..activations import Activation
    from ..estimators import ImplicitClassifier, ImplicitRegressor

    docs = _doc_summaries(ImplicitRegressor.__doc__)
    names = list(ImplicitRegressor().get_params())
    for extra in ImplicitClassifier().get_params():
        if extra not in names:
            names.append(extra)
    constraints = {**ImplicitRegressor._parameter_constraints,
                   **ImplicitClassifier._parameter_constraints}
    options = []
    for name in names:
        if name in _COMMAND_OWNED:
            continue
        raw = [c for c in constraints[name]
               if not (isinstance(c, type) and issubclass(c, Activation))]
        boolean = raw == ["boolean"]
        cons = [make_constraint(c) for c in raw]
        choices = tuple(sorted(o for c in cons if isinstance(c, StrOptions)
                               for o in c.options))
        options.append(EstimatorOption(name, "--" + name.replace("_", "-"), cons, choices,
                                       boolean, docs.get(name, "")))
    return options


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
    est = fit.add_argument_group(
        "estimator (the parameters of ImplicitRegressor / ImplicitClassifier; default: the "
        "estimator's own, except --early-stopping)")
    for opt in estimator_options():
        text = opt.help
        if opt.name in _COMMAND_DEFAULTS:
            text += f" (default here: {_COMMAND_DEFAULTS[opt.name]})"
        if opt.boolean:
            est.add_argument(opt.flag, dest=opt.name, action=argparse.BooleanOptionalAction,
                             default=_COMMAND_DEFAULTS.get(opt.name, argparse.SUPPRESS),
                             help=text)
            continue
        est.add_argument(opt.flag, dest=opt.name, type=opt.convert, metavar=_metavar(opt),
                         default=argparse.SUPPRESS, help=text)
    est.add_argument("--random-state", type=int, default=DEFAULT_SEED,
                     help="seed of the split and of the solver (default %(default)s)")
    fit.add_argument("--out", default=DEFAULT_MODEL, metavar="PATH",
                     help="where to save the model (a lifted_idl model file: arrays and "
                     "JSON, no pickle; default %(default)s); the JSON summary goes next to "
                     "it, with suffix .json")
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
                     help="built-in evaluation data (its test split; the model's feature "
                     "columns are found in it by name); default: the model's own built-in "
                     "training data set, if any")
    ana.add_argument("--eps", type=float, default=DEFAULT_EPS,
                     help="radius of the l_inf ball for the certified accuracy (regression: "
                     "the output change bound), per standardised feature: feature j may move "
                     "by eps times its training standard deviation (default %(default)s)")
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


def _metavar(opt: EstimatorOption) -> str:
    """``{a,b}|true|false|NUM,NUM,...|NAME|none``: the parts that ``opt`` takes."""
    from sklearn.utils._param_validation import (
        StrOptions,
        _ArrayLikes,
        _Booleans,
        _NoneConstraint,
    )

    parts = ["{" + ",".join(opt.choices) + "}"] if opt.choices else []
    other = [c for c in opt.constraints if not isinstance(c, (StrOptions, _NoneConstraint))]
    if any(isinstance(c, _Booleans) for c in other):
        parts.append("true|false")
    if any(isinstance(c, _ArrayLikes) for c in other):
        parts.append("NUM,NUM,...")
    if any(not isinstance(c, (_Booleans, _ArrayLikes)) for c in other) or not parts:
        parts.append(opt.name.upper())
    if opt._takes(_NoneConstraint):
        parts.append("none")
    return "|".join(parts)


def parse(argv) -> argparse.Namespace:
    """Parse ``argv``; a usage error exits (status 2, one line) through :class:`_Parser`."""
    return build_parser().parse_args(argv)

