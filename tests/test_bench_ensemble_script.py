"""Smoke test of ``scripts/bench_ensemble.py``: it runs and writes the ratios the README quotes.

A benchmark, not a timed test: no ratio is asserted, only that timings were taken.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_ensemble.py"


@pytest.mark.slow
def test_bench_ensemble_quick_run_writes_json(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    out = tmp_path / "ensemble.json"
    cmd = [sys.executable, str(SCRIPT), "--K", "2", "--epochs", "1", "--rounds", "1",
           "--json", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert all(len(t) == 1 and t[0] > 0 for t in report["times_s"].values())
    assert set(report["ratios"]) == {"separate/stacked", "separate/shared", "stacked/shared"}
    assert "separate ÷ shared:" in proc.stdout
