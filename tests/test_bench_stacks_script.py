"""Smoke test of ``scripts/bench_stacks.py``: it runs, and its JSON holds what the README quotes.

A benchmark, not a timed test: no ratio is asserted, only that timings were taken and
that each stacked fit equalled its separate fit.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_stacks.py"


def _run(tmp_path: Path, *args: str) -> tuple[dict, subprocess.CompletedProcess]:
    out = tmp_path / "stacks.json"
    cmd = [sys.executable, str(SCRIPT), "--problems", "S", "--K", "1,3", "--epochs", "2",
           "--rounds", "1", "--json", str(out), *args]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text()), proc


@pytest.mark.slow
@pytest.mark.parametrize(
    ("library", "batches"), [("numpy", ("full", 64)), ("dask", ("full",))], ids=["numpy", "dask"]
)
def test_bench_stacks_quick_run_writes_json(tmp_path: Path, library: str, batches: tuple) -> None:
    if library == "dask":
        pytest.importorskip("dask.array")
    report, proc = _run(tmp_path, "--backend", library,
                        "--batch", ",".join(map(str, batches)))  # fmt: skip
    rows = report["results"]
    assert [(r["batch"], r["K"]) for r in rows] == [(b, K) for b in batches for K in (1, 3)]
    for row in rows:
        assert row["separate_us"] > 0 and row["stacked_us"] > 0 and len(row["ratios"]) == 1
        assert row["equal"] and row["max_abs_diff"] < 1e-9
    assert "| S | full | 3 |" in proc.stdout


def test_bench_stacks_on_dask_refuses_mini_batches(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--backend", "dask", "--batch", "full,64"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "Dask stacks train in full batch only: use --batch full" in proc.stderr
