"""Smoke test of ``scripts/bench.py``: it runs, and its JSON holds what readers rely on.

A benchmark, not a timed test: no ratio is asserted, only that timings were taken.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench.py"


def test_bench_quick_run_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    md = tmp_path / "bench.md"
    cmd = [sys.executable, str(SCRIPT), "--quick", "--problems", "S", "--dtypes", "float32",
           "--no-memory", "--json", str(out), "--markdown", str(md)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr

    report = json.loads(out.read_text())
    assert {"config", "machine", "targets", "results", "skipped"} <= report.keys()
    assert report["config"]["backend"] == "numpy"
    assert {"cpu", "cores", "versions", "env", "threadpools"} <= report["machine"].keys()
    rows = {r["impl"]: r for r in report["results"]}
    assert {"floor", "xpnet"} <= rows.keys()  # the peers appear when installed
    for r in report["results"]:
        assert (r["problem"], r["dtype"], r["N"]) == ("S", "float32", 1797)
        assert r["epochs_per_timing"] >= 1
        assert r["seconds_per_epoch"] and all(t > 0 for t in r["seconds_per_epoch"])
        assert r["median_s"] > 0
        assert r["ratio_to_floor"] > 0 and r["xpnet_over_this"] > 0
        assert "memory" not in r
    assert rows["floor"]["ratio_to_floor"] == 1.0

    table = md.read_text()
    assert "| S | float32 | floor [numpy]" in table
    assert "xpnet [numpy]" in proc.stdout
