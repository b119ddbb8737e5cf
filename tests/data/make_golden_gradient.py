"""Write ``golden_gradient.npz``: the numbers of ``fit_gradient`` at fixed settings.

Run from the repository root (``python tests/data/make_golden_gradient.py``) only when a change
of the gradient training loop is *meant* to change its numbers, and say so in the commit.
``tests/training/test_gradient_golden.py`` (``golden_gradient_cases.CASES``) recomputes every
case and compares.
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "training"))
sys.path.insert(0, str(HERE.parents[1]))

from golden_gradient_cases import CASES  # noqa: E402


def main():
    out = {}
    for name, run in CASES.items():
        for key, val in run().items():
            out[f"{name}/{key}"] = np.asarray(val, dtype=np.float64)
    np.savez_compressed(HERE / "golden_gradient.npz", **out)
    print(f"wrote {len(out)} arrays from {len(CASES)} cases")


if __name__ == "__main__":
    main()
