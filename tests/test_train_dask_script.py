"""Smoke test of ``scripts/train_dask.py --quick``: it trains on a LocalCluster and its
JSON holds every figure it promises.

A benchmark, not a timed test: no speed is asserted, only that the timings were taken,
that the hand-written Dask step is xpnet's step, and that nothing spilled or paused.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("dask.array", reason="Dask is not installed")
pytest.importorskip("distributed", reason="dask.distributed is not installed")
pytest.importorskip("psutil", reason="psutil is not installed")

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_dask.py"


@pytest.mark.slow
def test_quick_run_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "dask.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json", str(out)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())

    config = report["config"]
    assert (config["samples"], config["features"], config["blocks"]) == (4096, 16, 4)
    assert config["x_bytes"] == 4096 * 16 * 4 and config["block_bytes"] == 1024 * 16 * 4
    assert (config["workers"], config["threads"]) == (2, 2)
    assert config["memory_limit_bytes"] == [2**30]
    assert config["numpy_samples"] == 2048  # two blocks' worth

    results = report["results"]
    assert set(results) == {"xpnet", "plain Dask", "draw X only", "NumPy in memory"}
    for name, r in results.items():
        assert len(r["seconds_per_epoch"]) == 3 and all(t > 0 for t in r["seconds_per_epoch"])
        assert r["epochs_counted"] == 2 and r["median_s"] > 0 and r["samples_per_s"] > 0
        if name != "draw X only":
            assert len(r["losses"]) == 3 and r["losses"][-1] < r["losses"][0], name  # it learns
    assert results["NumPy in memory"]["samples"] == 2048
    assert report["xpnet_over_plain_dask"] > 0
    # The same initial weights and the same step: the losses agree to float32 rounding.
    assert report["losses_max_relative_difference"] < 1e-5

    workers = report["workers"]
    for phase in ("setup", "xpnet", "plain Dask", "draw X only", "monitor (whole run)"):
        peaks = workers["peak_rss_bytes"][phase]
        assert len(peaks) == 2 and all(0 < v < 2**30 for v in peaks.values()), phase
    assert workers["spilled_to_disk_bytes"] == 0
    assert workers["spilled_to_disk_bytes_by_phase"] == {
        "xpnet": 0,
        "plain Dask": 0,
        "draw X only": 0,
    }
    assert workers["paused"] is False and workers["restarted"] is False
    assert workers["workers_at_start"] == workers["workers_seen"] == 2
    assert report["client_peak_rss_bytes"] > 0 and report["failures"] == {}

    assert "xpnet ÷ plain Dask: " in proc.stdout
    assert "spilled to disk: 0 bytes; paused: no; restarted: no" in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--blocks", "0"], "argument --blocks: expected a number >= 1, got '0'"),
        (["--memory-limit", "lots"], "expected an amount of memory like 1GiB or 512MB, got 'lots'"),
        (["--samples", "3", "--blocks", "4"], "--blocks 4 is more than --samples 3"),
    ],
)
def test_bad_options_are_one_line(args: list[str], message: str) -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.endswith(f"{message}\n") and proc.stderr.count("\n") == 1, proc.stderr
