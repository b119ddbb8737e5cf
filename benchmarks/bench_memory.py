"""Peak memory of prediction on many rows: the chunked paths against the unchunked ones.

Run ``python benchmarks/bench_memory.py`` (``--rows 100000`` for a quick run). A regressor
with ``n_hidden=50`` is fitted on 2000 rows of p = 20 features (the gradient solver, a few
epochs: the memory of a prediction does not depend on the fit's quality) and pickled; each
case then runs in a fresh Python process that loads it, allocates the input (``--rows`` x 20,
float64 unless said otherwise) and predicts twice:

1. the rise of the process's peak resident memory during the first call, what the operating
   system sees: the peak (``VmHWM``, reset to the current RSS through
   ``/proc/self/clear_refs`` just before the call) minus the RSS before it, the input already
   counted; without ``/proc``, the rise of ``ru_maxrss`` above the earlier peak. Also the
   call's CPU time (``time.process_time``);
2. ``tracemalloc`` around the second call: the peak of the memory NumPy allocates during it
   (the input is not in it).

Cases: the bar, ``est.predict(U)`` with scikit-learn's default ``working_memory``;
``est.predict`` on float32 and int64 inputs; ``model_.predict(U, batch_size=1000)``; and two
baselines that hold the (m, n) states, measured in the same run: ``model_.predict(U)`` in one
solve (what ``est.predict`` did before it chunked) and ``model_.output(model_.equilibrium(U,
batch_size=1000), U)`` (what ``predict(U, batch_size=1000)`` did before it stopped holding the
states). Bar (issue 13): ``est.predict`` on 10^6 x 20 rows raises peak memory by at most 100 MB.

Then the speed side of the chunk size, which justifies capping the estimators' chunk budget
at 32 MiB: the CPU time (min over ``--repeats``) of ``model_.predict(U, batch_size=k)`` on
``--sweep-rows`` rows for chunks of 250 to 64000 rows (0.7 to 200 MB of working set), as a
ratio to the unchunked solve measured in the same process, interleaved.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "est.predict (default working_memory)": "est",
    "est.predict, float32 input": "est32",
    "est.predict, int64 input": "est_int",
    "model_.predict(U, batch_size=1000)": "model_bs",
    "baseline: model_.predict(U), one solve": "model_whole",
    "baseline: output(equilibrium(U, batch_size=1000))": "states_bs",
}

CHILD = r"""
import json, pickle, resource, sys, time, tracemalloc
import numpy as np
est = pickle.load(open(sys.argv[1], "rb"))
case, m = sys.argv[2], int(sys.argv[3])
rng = np.random.default_rng(0)
p = est.n_features_in_
if case == "est32":
    U = rng.standard_normal((m, p), dtype=np.float32)
elif case == "est_int":
    U = rng.integers(-5, 6, size=(m, p))
else:
    U = rng.standard_normal((m, p))
model = est.model_
model.predict(U[:10])  # the cached parameters and certificate are not what we measure
calls = {
    "est": lambda: est.predict(U), "est32": lambda: est.predict(U),
    "est_int": lambda: est.predict(U),
    "model_bs": lambda: model.predict(U, batch_size=1000),
    "model_whole": lambda: model.predict(U),
    "states_bs": lambda: model.output(model.equilibrium(U, batch_size=1000), U),
}
call = calls[case]

def status(key):  # kB, from /proc/self/status
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024

try:  # reset the peak (VmHWM) to the current RSS: the rise is then the call's alone
    open("/proc/self/clear_refs", "w").write("5")
    before, how = status("VmRSS"), "VmHWM"
except OSError:  # without it: the rise of ru_maxrss above the earlier peak
    before, how = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "ru_maxrss"
t = time.process_time()
Y = call()
cpu = time.process_time() - t
after = (status("VmHWM") if how == "VmHWM"
         else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
del Y
tracemalloc.start()
call()
peak = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
print(json.dumps(dict(rss=after - before, how=how, traced=peak, cpu=cpu)))
"""


def fit_and_pickle(path: Path) -> None:
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from lifted_idl import ImplicitRegressor

    rng = np.random.default_rng(0)
    X = rng.standard_normal((2000, 20))
    y = np.tanh(X[:, 0] + X[:, 1]) + 0.1 * rng.standard_normal(2000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = ImplicitRegressor(n_hidden=50, solver="gradient", gradient_max_iter=5,
                                max_iter=1, random_state=0).fit(X, y)
    path.write_bytes(pickle.dumps(est))


def run_case(path: Path, case: str, rows: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), case, str(rows)],
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def chunk_sweep(path: Path, rows: int, repeats: int) -> None:
    import time

    import numpy as np

    est = pickle.loads(path.read_bytes())
    model = est.model_
    U = np.random.default_rng(1).standard_normal((rows, est.n_features_in_))
    sizes = [None, 250, 1000, 4000, 16000, 64000]
    best = dict.fromkeys(sizes, np.inf)
    for _ in range(repeats):
        for k in sizes:
            t = time.process_time()
            model.predict(U, batch_size=k)
            best[k] = min(best[k], time.process_time() - t)
    print(f"\nchunk size sweep: model_.predict(U, batch_size=k), {rows} rows, CPU s (min of "
          f"{repeats}), ratio to one solve of all rows")
    print(f"{'k':>8s} {'working set MB':>15s} {'CPU s':>7s} {'ratio':>6s}")
    for k in sizes:
        ws = "-" if k is None else f"{k * model.row_bytes() / 1e6:.1f}"
        print(f"{'all' if k is None else k:>8} {ws:>15s} {best[k]:7.3f} "
              f"{best[k] / best[None]:6.2f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skip-baselines", action="store_true",
                        help="skip the two cases that hold the (m, n) states")
    parser.add_argument("--sweep-rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "est.pkl"
        fit_and_pickle(path)
        measure_cases(path, args.rows, args.skip_baselines)
        if args.sweep_rows:
            sys.path.insert(0, str(ROOT))
            chunk_sweep(path, args.sweep_rows, args.repeats)


def measure_cases(path: Path, rows: int, skip_baselines: bool) -> dict:
    print(f"{rows} x 20 rows, n_hidden = 50, q = 1 (output {rows * 8 / 1e6:.0f} MB); "
          "MB = 10^6 bytes; each case in a fresh process")
    print(f"{'case':52s} {'peak RSS rise':>13s} {'traced peak':>12s} {'CPU s':>7s}")
    results = {}
    for label, case in CASES.items():
        if skip_baselines and label.startswith("baseline"):
            continue
        r = results[case] = run_case(path, case, rows)
        print(f"{label:52s} {r['rss'] / 1e6:10.1f} MB {r['traced'] / 1e6:10.1f} MB "
              f"{r['cpu']:7.2f}", flush=True)
    print(f"peak RSS rise: {r['how']} during the call minus VmRSS before it; traced peak: "
          "tracemalloc's peak during a second call")
    est = results["est"]
    verdict = "PASS" if max(est["rss"], est["traced"]) <= 100e6 else "FAIL"
    print(f"bar (est.predict on 10^6 rows raises peak memory by <= 100 MB), at {rows} rows: "
          f"{verdict} (peak RSS rise {est['rss'] / 1e6:.1f} MB, traced "
          f"{est['traced'] / 1e6:.1f} MB)")
    if "model_whole" in results:
        for case, base in (("est", "model_whole"), ("model_bs", "states_bs")):
            r, b = results[case], results[base]
            print(f"{case} / {base}: traced peak {r['traced'] / b['traced']:.3f}, CPU time "
                  f"{r['cpu'] / b['cpu']:.2f}")
    return results


if __name__ == "__main__":
    main()
