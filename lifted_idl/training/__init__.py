"""Training algorithms (docs/theory.md §8): the anchored-round engine of block-coordinate
descent and what runs on it (fits and sparsity paths), projected gradient.

The Frank–Wolfe blocks live in :mod:`lifted_idl.blocks` (``fw_cd``, ``fw_ab``); the names are
kept importable from here, outside ``__all__``."""

from ..blocks.fw import fw_ab, fw_cd  # noqa: F401  (moved to lifted_idl.blocks)
from .bcd import BCDHistory, fit_bcd
from .gradient import fit_gradient, implicit_gradients
from .paths import PathPoint, frank_wolfe_path, group_lasso_path, plot_frank_wolfe_path
from .rounds import History, RoundEngine, RoundSettings

__all__ = ["fit_bcd", "BCDHistory", "fit_gradient", "implicit_gradients", "PathPoint",
           "frank_wolfe_path", "group_lasso_path", "plot_frank_wolfe_path", "History",
           "RoundEngine", "RoundSettings"]
