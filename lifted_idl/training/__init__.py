"""Training algorithms (docs/theory.md §8): the anchored-round engine of block-coordinate
descent and what runs on it (fits and sparsity paths), projected gradient, Frank–Wolfe blocks."""

from .bcd import BCDHistory, fit_bcd
from .frank_wolfe import fw_ab, fw_cd
from .gradient import fit_gradient, implicit_gradients
from .paths import PathPoint, frank_wolfe_path, group_lasso_path, plot_frank_wolfe_path
from .rounds import History, RoundEngine, RoundSettings

__all__ = ["fit_bcd", "BCDHistory", "fit_gradient", "implicit_gradients", "fw_cd", "fw_ab",
           "PathPoint", "frank_wolfe_path", "group_lasso_path", "plot_frank_wolfe_path",
           "History", "RoundEngine", "RoundSettings"]
