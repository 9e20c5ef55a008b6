"""Smoke test of ``scripts/bench_lbfgs.py``: it runs, and its JSON holds what the README quotes.

A benchmark, not a timed test: no ratio is asserted, only that timings were taken.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_lbfgs.py"


@pytest.mark.slow
def test_bench_lbfgs_quick_run_writes_json(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    pytest.importorskip("threadpoolctl")
    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(SCRIPT), "--problems", "S", "--dtypes", "float64",
           "--rounds", "1", "--iterations", "2", "--json", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(out.read_text())["results"]
    assert (row["problem"], row["dtype"], row["max_iter"]) == ("S", "float64", 2)
    for name in ("xpnet", "sklearn", "sklearn-1-thread"):
        assert row["median_s"][name] > 0
        n_iter, n_fun = row["iterations_and_evaluations"][name]
        assert n_iter == 2 and n_fun >= 3
    assert row["xpnet_over"]["sklearn"] > 0 and row["per_evaluation_xpnet_over"]["sklearn"] > 0
    assert "| S | float64 |" in proc.stdout
