"""``xpnet --backend dask``: on real Dask clusters, equal to NumPy in float64 (full batch).

A full-batch step on Dask sums the blocks' gradients in another order than NumPy sums
the samples', so the two agree to rounding (rtol 1e-10 in float64), not bit for bit.
One cluster is started for the module and reached with ``--scheduler``; one test lets
the command start (and close) its own ``LocalCluster``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("dask.array", reason="Dask is not installed")

import xpnet
from xpnet.cli import main
from xpnet.cli._data import load_data
from xpnet.training.loop import READBACK_EVERY

#: Relative tolerance between Dask and NumPy runs in float64: summation order only.
RTOL = 1e-10
IRIS = ["--data", "iris", "--dtype", "float64", "--hidden", "8"]
DIABETES = ["--data", "diabetes", "--dtype", "float64", "--hidden", "8"]


def _distributed():
    return pytest.importorskip("distributed", reason="dask.distributed is not installed")


@pytest.fixture(scope="module")
def address():
    """The address of a LocalCluster of 2 worker processes × 1 thread, for the module."""
    distributed = _distributed()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0",
                                  scheduler_kwargs={"dashboard": False}) as cluster:  # fmt: skip
        yield cluster.scheduler_address


def _assert_same_model(a, b, X):
    for got, want in zip(a.weights_ + a.biases_, b.weights_ + b.biases_, strict=True):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-13)
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=RTOL)
    assert a.n_iter_ == b.n_iter_
    np.testing.assert_allclose(a.predict(X), b.predict(X), rtol=RTOL, atol=1e-12)


def _rows(stdout):
    """The summary table as {label: value}."""
    return {
        k.strip(): v.strip()
        for k, v in (line.strip().split("  ", 1) for line in stdout.splitlines() if "  " in line)
    }


def _live_processes_in_group(pgid):
    """The processes of group ``pgid`` that are still running (not zombies), on Linux."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        state, _, group = stat.rpartition(")")[2].split()[:3]
        if int(group) == pgid and state != "Z":
            pids.append(int(entry.name))
    return pids


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="sends SIGINT to a process group")
def test_ctrl_c_on_its_own_local_cluster_keeps_what_numpy_computes(tmp_path):
    # The command starts its own LocalCluster; Ctrl-C in a terminal reaches the whole
    # foreground process group, the cluster's worker processes included.
    _distributed()
    command = [sys.executable, "-m", "xpnet", "train", "--backend", "dask", *DIABETES,
               "--epochs", "100000", "--quiet", "--save", "dask.npz", "--checkpoint", "ck.npz",
               "--checkpoint-every", str(READBACK_EVERY)]  # fmt: skip
    env = dict(os.environ, PYTHONWARNINGS="error")
    run = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while not (tmp_path / "ck.npz").exists():  # a first block of epochs trained
            assert run.poll() is None, f"the run ended early:\n{run.communicate()}"
            assert time.monotonic() < deadline, "the run wrote no checkpoint in time"
            time.sleep(0.02)
        os.killpg(run.pid, signal.SIGINT)
        out, err = run.communicate(timeout=90)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.communicate()
    assert run.returncode == 130, err
    assert re.fullmatch(r"R²: -?\d+\.\d{4}\n", out), out
    k = int(re.search(r"^xpnet: interrupted at epoch (\d+)$", err, re.M).group(1))
    assert k >= READBACK_EVERY and k % READBACK_EVERY == 0
    assert "Traceback" not in err and "error" not in err.lower(), err
    # The cluster's processes ended with the command.
    deadline = time.monotonic() + 20
    while left := _live_processes_in_group(run.pid):
        assert time.monotonic() < deadline, f"processes {left} outlived the command"
        time.sleep(0.1)

    assert main(["train", *DIABETES, "--epochs", str(k), "--quiet",
                 "--save", str(tmp_path / "numpy.npz")]) == 0  # fmt: skip
    X = load_data("diabetes").X
    dask_model = xpnet.load(tmp_path / "dask.npz")
    _assert_same_model(dask_model, xpnet.load(tmp_path / "numpy.npz"), X)
    assert xpnet.load(tmp_path / "ck.npz").n_iter_ == k


@pytest.mark.slow
def test_scheduler_address_trains_resumes_and_serves_as_numpy_does(address, tmp_path, capsys):
    pytest.importorskip("tqdm")
    plot = ["--plot", str(tmp_path / "loss.png")] if _has("matplotlib") else []
    on_dask = ["--backend", "dask", "--scheduler", address, "--dask-blocks", "3"]
    ck, m_dask, m_numpy = (str(tmp_path / name) for name in ("ck.npz", "d.npz", "n.npz"))
    # 16 epochs, a checkpoint, then on to 32 from it: as 32 epochs at once on NumPy.
    assert main(["train", *IRIS, *on_dask, "--epochs", "16", "--quiet", "--checkpoint", ck]) == 0
    assert main(["train", *on_dask, "--resume", ck, "--epochs", "32", "--save", m_dask,
                 *plot]) == 0  # fmt: skip
    rows = _rows(capsys.readouterr().out)
    assert rows["backend"] == "dask" and rows["dtype"] == "float64"
    assert rows["scheduler"] == f"{address}, 2 workers, 2 threads"
    assert rows["blocks"] == "3 of 37–38 training samples"  # 112 = 38 + 37 + 37
    assert rows["epochs"] == "32 (resumed at epoch 16)"
    assert main(["train", *IRIS, "--epochs", "32", "--quiet", "--save", m_numpy]) == 0
    numpy_accuracy = capsys.readouterr().out
    _assert_same_model(xpnet.load(m_dask), xpnet.load(m_numpy), load_data("iris").X)
    if plot:
        assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Served on Dask: the same predictions, probabilities and score as on NumPy.
    for model, backend, out in ((m_dask, on_dask, "pd.npz"), (m_numpy, [], "pn.npz")):
        argv = ["predict", "--model", model, *backend, "--proba", "--output", str(tmp_path / out)]
        assert main(argv) == 0
    with np.load(tmp_path / "pd.npz") as got, np.load(tmp_path / "pn.npz") as want:
        np.testing.assert_array_equal(got["prediction"], want["prediction"])
        np.testing.assert_array_equal(got["classes"], want["classes"])
        np.testing.assert_allclose(got["proba"], want["proba"], rtol=RTOL, atol=1e-15)
        assert got["prediction"].shape == (38,)  # the held-out split
    capsys.readouterr()
    assert main(["evaluate", "--model", m_dask, *on_dask]) == 0
    evaluated = _rows(capsys.readouterr().out)
    assert f"accuracy: {evaluated['accuracy']}\n" == numpy_accuracy
    assert evaluated["samples"] == "38 (iris, test)"

    # The cluster did the work: a fit's tasks (per block, and the tree of sums) are all
    # in one group named for the fit, the outputs of predict and evaluate are their own.
    from distributed import Client

    with Client(address, set_as_default=False) as client:
        prefixes = client.run_on_scheduler(lambda dask_scheduler: set(dask_scheduler.task_prefixes))
    assert "xpnet-fit" in prefixes, prefixes
    assert any("output" in name for name in prefixes), prefixes


def _has(module):
    import importlib.util

    return importlib.util.find_spec(module) is not None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--scheduler", "tcp://127.0.0.1:8786", *IRIS],
         "--scheduler applies to --backend dask only, not 'numpy'"),
        (["train", "--backend", "torch", "--dask-blocks", "4", *IRIS],
         "--dask-blocks applies to --backend dask only, not 'torch'"),
        (["evaluate", "--model", "m.npz", "--scheduler", "tcp://127.0.0.1:8786"],
         "--scheduler applies to --backend dask only, not 'numpy'"),
        (["train", "--backend", "dask", "--device", "cuda:0", *IRIS],
         "dask runs on NumPy blocks here, device 'cpu'; got 'cuda:0'"),
        (["train", "--backend", "dask", "--dask-blocks", "0"],
         "argument --dask-blocks: expected a number >= 1, got '0'"),
        (["predict", "--model", "missing.npz", "--backend", "dask"],
         "--model 'missing.npz': no such file"),
    ],
)  # fmt: skip
def test_dask_options_are_checked_in_one_line(args, message, capsys):
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == f"xpnet: error: {message}\n"


def test_a_scheduler_address_that_is_no_address_is_one_line(capsys):
    _distributed()
    assert main(["train", "--backend", "dask", "--scheduler", "nowhere", *IRIS, "--quiet"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("xpnet: error: --scheduler 'nowhere': ")
    assert err.count("\n") == 1


def test_info_lists_dask_with_its_blocks_and_distributed(capsys, monkeypatch):
    import dask

    # Dask alone: importing PyTorch and JAX to list them takes seconds.
    monkeypatch.setattr("xpnet.cli._backends.BACKENDS", ("numpy", "dask"))
    assert main(["info"]) == 0
    (line,) = [ln for ln in capsys.readouterr().out.splitlines() if ln.split()[:1] == ["dask"]]
    assert dask.__version__ in line and "devices: cpu (NumPy blocks)" in line
    if _has("distributed"):
        import distributed

        assert line.endswith(f"; distributed {distributed.__version__}")
    else:
        assert "distributed not installed" in line


def test_without_distributed_the_threaded_scheduler_trains(tmp_path, capsys):
    # dask.distributed made unimportable, as where it is not installed.
    code = textwrap.dedent(f"""
        import sys
        sys.modules["distributed"] = None
        import xpnet.cli._backends
        from xpnet.cli import main
        xpnet.cli._backends.BACKENDS = ("numpy", "dask")  # PyTorch and JAX take seconds to import
        print("status", main(["train", "--backend", "dask", *{IRIS!r}, "--epochs", "5",
                              "--quiet", "--dask-blocks", "3"]))
        print("status", main(["train", "--backend", "dask", "--scheduler", "tcp://h:8786",
                              *{IRIS!r}]))
        main(["info"])
    """)
    env = dict(os.environ, PYTHONWARNINGS="error")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "xpnet: warning: distributed is not installed: training on Dask's threaded scheduler "
        '(pip install "dask[distributed]" for a cluster)',
        "xpnet: error: --scheduler 'tcp://h:8786' needs dask.distributed, which is not "
        'installed: pip install "dask[distributed]"',
    ]
    accuracy, status_0, status_2, *info = result.stdout.splitlines()
    assert (status_0, status_2) == ("status 0", "status 2")
    assert any(ln.split()[:1] == ["dask"] and "distributed not installed" in ln for ln in info)
    # The threaded scheduler computes what NumPy computes.
    assert main(["train", *IRIS, "--epochs", "5", "--quiet"]) == 0
    assert capsys.readouterr().out == accuracy + "\n"
