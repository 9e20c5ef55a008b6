"""Smoke test of ``scripts/bench.py``: it runs, and its JSON holds what readers rely on.

A benchmark, not a timed test: no ratio is asserted, only that timings were taken.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench.py"


@pytest.mark.slow
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
        assert r["paired_ratio_to_floor"] > 0 and r["paired_xpnet_over_this"] > 0
        assert "memory" not in r
    assert rows["floor"]["ratio_to_floor"] == rows["floor"]["paired_ratio_to_floor"] == 1.0
    assert rows["xpnet"]["paired_xpnet_over_this"] == 1.0

    table = md.read_text()
    assert "| S | float32 | floor [numpy]" in table
    assert "xpnet [numpy]" in proc.stdout


def test_bench_without_xpnet_stops_and_says_why(tmp_path: Path) -> None:
    # Where xpnet cannot be imported (not installed, repository not on the path), the
    # benchmark must not run on without xpnet's rows.
    hidden = tmp_path / "path" / "xpnet"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text('raise ImportError("no xpnet here")\n')
    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(SCRIPT), "--quick", "--problems", "S", "--dtypes", "float32",
           "--impls", "floor,xpnet", "--no-memory", "--json", str(out)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "path")}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 2, proc.stderr
    assert "xpnet is not importable (no xpnet here)" in proc.stderr
    assert not out.exists()


@pytest.mark.slow
def test_a_bench_ended_by_sigterm_writes_the_rows_it_finished(tmp_path: Path) -> None:
    # As `timeout` ends it: the first problem and dtype is done, the second is not.
    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(SCRIPT), "--quick", "--problems", "S", "--dtypes",
           "float32,float64", "--impls", "floor,xpnet", "--no-memory", "--rounds", "1",
           "--target-seconds", "0.02", "--json", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:
            if line.startswith("timing S float64"):
                break
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    report = json.loads(out.read_text())
    assert report["interrupted"].startswith("ended by SIGTERM after")
    assert {(r["impl"], r["dtype"]) for r in report["results"]} == {
        ("floor", "float32"),
        ("xpnet", "float32"),
    }
    assert "**Incomplete**: ended by SIGTERM" in stdout


@pytest.mark.slow
def test_bench_on_jax_times_xpnet_compiled_against_jax_s_floor(tmp_path: Path) -> None:
    pytest.importorskip("jax", reason="JAX is not installed")
    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(SCRIPT), "--backend", "jax", "--quick", "--problems", "S",
           "--dtypes", "float32", "--impls", "floor,xpnet,xpnet-eager", "--rounds", "1",
           "--target-seconds", "0.02", "--no-memory", "--json", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr

    report = json.loads(out.read_text())
    assert report["targets"] == {"M": 1.10, "S": 1.30}  # issue 9's goals, not NumPy's
    rows = {r["impl"]: r for r in report["results"]}
    assert rows.keys() == {"floor", "xpnet", "xpnet-eager"}
    assert rows["xpnet"]["label"] == "xpnet [jax, jit]"
    for r in rows.values():
        assert r["lib"] == "jax" and r["paired_ratio_to_floor"] > 0
    assert "S float32: xpnet" in proc.stdout


def test_compiled_implementations_have_no_memory_figure() -> None:
    # Each memory child would compile anew, and the compiler's own memory would count.
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        from _bench_impls import implementations
    finally:
        sys.path.remove(str(SCRIPT.parent))
    compiled = {
        backend: {i.key for i in implementations(backend) if i.compiled}
        for backend in ("numpy", "torch", "cupy", "jax")
    }
    assert compiled == {
        "numpy": set(),
        "torch": {"xpnet-jit"},
        "cupy": {"xpnet-jit", "xpnet-torch-jit"},
        "jax": {"floor", "xpnet", "jax-hand", "floor-loop"},
    }


def test_numpy_by_hand_takes_the_step_xpnet_takes() -> None:
    # The bench's hand-written NumPy peer must compute the same step as the library,
    # or its time would not be a yardstick for xpnet's.
    import numpy as np

    sys.path.insert(0, str(SCRIPT.parent))
    try:
        from _bench_impls import numpy_step
    finally:
        sys.path.remove(str(SCRIPT.parent))
    import array_api_compat.numpy as xp

    from xpnet.core.activations import ACTIVATIONS
    from xpnet.core.losses import OBJECTIVES
    from xpnet.core.optimizers import gradient_descent
    from xpnet.core.step import Step
    from xpnet.core.step import step as xpnet_step

    rng = np.random.default_rng(0)
    X, Y = rng.random((50, 6)), rng.random((50, 3))
    W = [rng.standard_normal((5, 6)), rng.standard_normal((4, 5)), rng.standard_normal((3, 4))]
    b = [rng.standard_normal(5), rng.standard_normal(4), rng.standard_normal(3)]
    f = [ACTIVATIONS["sigmoid"]] * 2 + [ACTIVATIONS["identity"]]
    W_hand, b_hand = [w.copy() for w in W], [c.copy() for c in b]
    step = numpy_step(W_hand, b_hand, X, Y, mu=0.3)
    how = Step(f, OBJECTIVES[("mse", "identity")], gradient_descent(), 0.0, xp)
    state = how.optimizer.init(W + b, xp=xp)
    for _ in range(3):  # the buffers are reused from step to step
        W, b, state, E = xpnet_step(W, b, state, X.T, Y.T, None, None, mu=0.3, how=how)
        np.testing.assert_allclose(step(), E, rtol=1e-12)
        for got, want in zip(W_hand + b_hand, W + b, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def _busy_process_alive(pid: int) -> bool:
    """Whether ``pid`` is still one of the bench's busy processes (a zombie is not)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return b"xpnet-bench-busy" in fh.read()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: whether the process exists at all
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


QUICK_UNDER_LOAD = ["--quick", "--contention", "2", "--problems", "S", "--dtypes", "float32",
                    "--impls", "floor,xpnet", "--rounds", "2", "--target-seconds", "0.02",
                    "--no-memory"]  # fmt: skip


@pytest.mark.slow
def test_bench_under_contention_pairs_idle_and_loaded_and_ends_its_busy_processes(
    tmp_path: Path,
) -> None:
    out, md = tmp_path / "bench.json", tmp_path / "bench.md"
    cmd = [
        sys.executable,
        str(SCRIPT),
        *QUICK_UNDER_LOAD,
        "--json",
        str(out),
        "--markdown",
        str(md),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr

    report = json.loads(out.read_text())
    busy = report["config"]["contention"]
    assert (busy["processes"], busy["kind"], busy["group"]) == (2, "python", "same")
    assert len(busy["pids"]) == 2
    for pid in busy["pids"]:
        assert not _busy_process_alive(pid), f"busy process {pid} outlived the bench"
    rows = {r["impl"]: r for r in report["results"]}
    assert rows.keys() == {"floor", "xpnet"}
    for r in rows.values():
        loaded = r["loaded"]
        assert len(loaded["seconds_per_epoch"]) == len(r["seconds_per_epoch"]) == 2
        assert all(t > 0 for t in loaded["seconds_per_epoch"])
        assert loaded["min_over_idle"] <= loaded["paired_over_idle"] <= loaded["max_over_idle"]
        assert loaded["paired_ratio_to_floor"] > 0
        assert loaded["other_load_cores"] is None or loaded["other_load_cores"] >= 0
    assert rows["floor"]["loaded"]["paired_ratio_to_floor"] == 1.0

    table = md.read_text()
    assert "| idle ms / epoch |" in table and "| loaded ÷ idle |" in table
    assert "loaded ÷ idle" in table.split("Goals")[1]


@pytest.mark.slow
def test_ctrl_c_kills_the_busy_processes() -> None:
    # A process started in the background may inherit SIGINT ignored: restore Python's
    # handler, as a terminal's Ctrl-C would find it.
    wrapper = (
        "import runpy, signal, sys\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "sys.argv = sys.argv[1:]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    # Many rounds, so that the run is still going when Ctrl-C comes (a quick one could
    # end first on an idle machine and exit 0).
    long_run = [*QUICK_UNDER_LOAD, "--rounds", "1000"]
    cmd = [sys.executable, "-c", wrapper, str(SCRIPT), *long_run, "--json", os.devnull]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        line = ""
        while "busy processes" not in line:
            line = proc.stderr.readline()
            assert line, "the bench ended before starting its busy processes"
        pids = [int(pid) for pid in line.split("pids")[1].split()]
        assert len(pids) == 2 and all(_busy_process_alive(pid) for pid in pids)
        # Ctrl-C once the timings run: a KeyboardInterrupt raised inside the first import
        # of a C extension's module (NumPy's random, when the data are made) can be lost
        # in the import machinery, and the bench would then carry on.
        while not line.startswith("  round "):
            line = proc.stderr.readline()
            assert line, "the bench ended before its first round"
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    assert proc.returncode != 0
    for pid in pids:
        assert not _busy_process_alive(pid), f"busy process {pid} outlived Ctrl-C"
