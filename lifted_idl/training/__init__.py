"""Training algorithms: block-coordinate descent, projected gradient, Frank–Wolfe (theory §7)."""

from .bcd import BCDHistory, fit_bcd
from .frank_wolfe import fw_ab, fw_cd
from .gradient import fit_gradient, implicit_gradients

__all__ = ["fit_bcd", "BCDHistory", "fit_gradient", "implicit_gradients", "fw_cd", "fw_ab"]
