"""Write the golden numbers: ``golden_rounds.npz`` (the anchored BCD rounds,
``tests/training/golden_cases.py``) or ``golden_gradient.npz`` (``fit_gradient``,
``tests/training/golden_gradient_cases.py``), at fixed settings.

Run from the repository root, ``python tests/data/make_goldens.py rounds`` (or ``gradient``),
only when a change is *meant* to change those numbers, and say so in the commit;
``tests/training/test_goldens.py`` recomputes every case of both and compares.
"""

from __future__ import annotations

import importlib
import pathlib
import sys

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "training"))
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parents[1]))

from _helpers import GOLDENS, golden_arrays  # noqa: E402


def main(which):
    module, name = GOLDENS[which]
    cases = importlib.import_module(module).CASES
    out = golden_arrays(cases)
    np.savez_compressed(HERE / name, **out)
    print(f"wrote {len(out)} arrays from {len(cases)} cases to {name}")


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in GOLDENS:
        sys.exit(f"usage: python tests/data/make_goldens.py {{{','.join(GOLDENS)}}}")
    main(sys.argv[1])
