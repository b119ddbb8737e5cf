"""The experiment scripts' command lines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"
SCRIPTS = sorted(p.name for p in EXPERIMENTS.glob("*.py")
                 if not p.name.startswith("_") and "__main__" in p.read_text())


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_prints_usage_and_runs_nothing(script, tmp_path):
    """``python experiments/X.py --help`` prints its usage and exits at once, writing no
    results (seven scripts used to ignore it, run the whole experiment and overwrite the
    committed results)."""
    results = EXPERIMENTS / "results"
    before = {p: p.stat().st_mtime_ns for p in results.glob("*")} if results.exists() else {}
    out = subprocess.run([sys.executable, str(EXPERIMENTS / script), "--help"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage:") and "--out-dir" in out.stdout
    after = {p: p.stat().st_mtime_ns for p in results.glob("*")} if results.exists() else {}
    assert after == before
    assert not any(tmp_path.iterdir())
