"""``xpnet train`` on long runs: Ctrl-C keeps the training, checkpoints survive SIGKILL."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("tqdm")

import xpnet
from xpnet.cli import main
from xpnet.training.loop import READBACK_EVERY

#: A run long enough to be interrupted or killed mid-way on any machine.
LONG = ["--epochs", "100000", "--hidden", "32", "--quiet"]


def _start(args, cwd):
    env = dict(os.environ, PYTHONWARNINGS="error")
    return subprocess.Popen([sys.executable, "-m", "xpnet", "train", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def _wait_for(path, run, seconds=60):
    """Until ``path`` exists (the run has trained some epochs); fails if the run ended."""
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert run.poll() is None, f"the run ended early:\n{run.communicate()}"
        assert time.monotonic() < deadline, "the run wrote no checkpoint in time"
        time.sleep(0.02)


def _stop(run):
    if run.poll() is None:
        run.kill()
    return run.communicate(timeout=60)


def _same_parameters(a, b):
    for got, want in zip(a.weights_ + a.biases_, b.weights_ + b.biases_, strict=True):
        np.testing.assert_array_equal(got, want)


def test_ctrl_c_finishes_the_block_saves_the_model_and_exits_130(tmp_path):
    run = _start([*LONG, "--save", "m.npz", "--checkpoint", "ck.npz",
                  "--checkpoint-every", "16"], cwd=tmp_path)  # fmt: skip
    try:
        _wait_for(tmp_path / "ck.npz", run)
        run.send_signal(signal.SIGINT)
        out, err = run.communicate(timeout=60)
    finally:
        _stop(run)
    assert run.returncode == 130, err
    assert re.search(r"^accuracy: \d\.\d{4}$", out, re.M), out
    k = int(re.search(r"xpnet: interrupted at epoch (\d+)", err).group(1))
    assert k >= READBACK_EVERY and k % READBACK_EVERY == 0
    model = xpnet.load(tmp_path / "m.npz")
    assert model.n_iter_ == len(model.loss_curve_) == k
    assert all(np.all(np.isfinite(W)) for W in model.weights_)
    assert xpnet.load(tmp_path / "ck.npz").n_iter_ == k  # the checkpoint has them all
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_a_second_ctrl_c_aborts_at_once_without_a_partial_file(tmp_path):
    run = _start([*LONG, "--save", "m.npz", "--checkpoint", "ck.npz",
                  "--checkpoint-every", "16"], cwd=tmp_path)  # fmt: skip
    try:
        _wait_for(tmp_path / "ck.npz", run)
        run.send_signal(signal.SIGINT)
        run.send_signal(signal.SIGINT)
        _, err = run.communicate(timeout=60)
    finally:
        _stop(run)
    assert run.returncode == 130, err
    assert "xpnet: interrupted" in err
    assert sorted(os.listdir(tmp_path)) in (["ck.npz"], ["ck.npz", "m.npz"])
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
    if (tmp_path / "m.npz").exists():  # the save had finished before the second Ctrl-C
        xpnet.load(tmp_path / "m.npz")


def test_a_killed_run_resumes_from_its_checkpoint_to_the_uninterrupted_result(
    tmp_path, monkeypatch
):
    settings = ["--hidden", "32", "--batch-size", "256", "--solver", "adam", "--quiet"]
    run = _start([*settings, "--epochs", "100000", "--checkpoint", "ck.npz",
                  "--checkpoint-every", "32"], cwd=tmp_path)  # fmt: skip
    try:
        _wait_for(tmp_path / "ck.npz", run)
        run.send_signal(signal.SIGKILL)  # no handler runs: as a scheduler's time limit
        run.wait(timeout=60)
    finally:
        _stop(run)
    assert run.returncode == -signal.SIGKILL
    k = xpnet.load(tmp_path / "ck.npz").n_iter_
    assert k >= 32 and k % READBACK_EVERY == 0
    # Resumed to k + 48 epochs in all, against a run of k + 48 epochs never stopped.
    total = str(k + 48)
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--resume", "ck.npz", "--epochs", total, "--save", "resumed.npz",
                 "--quiet"]) == 0  # fmt: skip
    assert main(["train", *settings, "--epochs", total, "--save", "whole.npz"]) == 0
    resumed, whole = xpnet.load(tmp_path / "resumed.npz"), xpnet.load(tmp_path / "whole.npz")
    _same_parameters(resumed, whole)
    assert resumed.loss_curve_ == whole.loss_curve_ and resumed.n_iter_ == k + 48


def test_a_checkpoint_serves_as_a_model(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--epochs", "40", "--quiet", "--checkpoint", "ck.npz",
                 "--save", "m.npz"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["evaluate", "--model", "m.npz"]) == 0
    from_model = capsys.readouterr().out
    assert main(["evaluate", "--model", "ck.npz"]) == 0
    assert capsys.readouterr().out == from_model


def test_resume_wants_a_checkpoint(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--epochs", "20", "--quiet", "--save", "m.npz"]) == 0
    assert main(["train", "--resume", "m.npz"]) == 2
    assert "is a trained model, not a checkpoint" in capsys.readouterr().err
    assert main(["train", "--resume", "nothing.npz"]) == 2
    assert "--resume 'nothing.npz': no such file" in capsys.readouterr().err


def test_sigterm_finishes_the_block_saves_the_model_and_exits_143(tmp_path):
    # What batch schedulers, Kubernetes and `timeout` send before they kill.
    run = _start([*LONG, "--save", "m.npz", "--checkpoint", "ck.npz",
                  "--checkpoint-every", "16"], cwd=tmp_path)  # fmt: skip
    try:
        _wait_for(tmp_path / "ck.npz", run)
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=60)
    finally:
        _stop(run)
    assert run.returncode == 143, err
    assert "SIGTERM: stopping after this block of epochs" in err
    k = int(re.search(r"xpnet: interrupted at epoch (\d+)", err).group(1))
    assert k % READBACK_EVERY == 0
    model, checkpoint = xpnet.load(tmp_path / "m.npz"), xpnet.load(tmp_path / "ck.npz")
    assert model.n_iter_ == checkpoint.n_iter_ == k


def test_a_resumed_run_checkpoints_where_and_as_often_as_the_first(tmp_path, monkeypatch):
    import xpnet.cli._train as train

    monkeypatch.chdir(tmp_path)
    assert main(["train", "--epochs", "32", "--quiet", "--checkpoint", "ck.npz",
                 "--checkpoint-every", "16"]) == 0  # fmt: skip
    written, save = [], train.save

    def spy(est, path, **kwargs):
        written.append((os.path.basename(path), est.n_iter_))
        save(est, path, **kwargs)

    monkeypatch.setattr(train, "save", spy)
    # Killed again after this, the job would lose at most 16 epochs, as the first time.
    assert main(["train", "--resume", "ck.npz", "--epochs", "80", "--quiet"]) == 0
    assert written == [("ck.npz", n) for n in (48, 64, 80, 80)]
    assert xpnet.load(tmp_path / "ck.npz").n_iter_ == 80


def test_resume_refuses_the_options_that_define_the_run(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--epochs", "16", "--quiet", "--checkpoint", "ck.npz"]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", "ck.npz", "--data", "iris", "--lr", "0.5",
                 "--hidden", "8"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "--data, --hidden, --lr cannot be given with it" in err, err
    assert xpnet.load(tmp_path / "ck.npz").n_iter_ == 16  # nothing ran
    # What only says how or where the run goes on is taken.
    assert main(["train", "--resume", "ck.npz", "--epochs", "32", "--engine", "eager",
                 "--quiet", "--checkpoint-every", "16", "--save", "m.npz"]) == 0  # fmt: skip


def test_an_early_stopping_run_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    settings = ["--early-stopping", "--n-iter-no-change", "20", "--hidden", "16", "--quiet"]
    monkeypatch.chdir(tmp_path)
    assert main(["train", *settings, "--epochs", "48", "--checkpoint", "ck.npz"]) == 0
    assert main(["train", "--resume", "ck.npz", "--epochs", "1000", "--save", "resumed.npz",
                 "--quiet"]) == 0  # fmt: skip
    assert main(["train", *settings, "--epochs", "1000", "--save", "whole.npz"]) == 0
    resumed, whole = xpnet.load(tmp_path / "resumed.npz"), xpnet.load(tmp_path / "whole.npz")
    assert 48 < whole.n_iter_ < 1000  # the rule stopped it after the resume
    _same_parameters(resumed, whole)
    assert resumed.validation_scores_ == whole.validation_scores_


def test_evaluate_finds_the_training_data_from_any_folder_and_refuses_a_changed_file(
    tmp_path, capsys, monkeypatch
):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    data = tmp_path / "data" / "points.csv"
    data.parent.mkdir()
    body = [",".join([*(repr(float(v)) for v in x), str(t)]) for x, t in zip(X, y, strict=True)]
    rows = ["a,b,c,target", *body]
    data.write_text("\n".join(rows) + "\n")
    monkeypatch.chdir(data.parent)
    assert main(["train", "--data", "points.csv", "--epochs", "20", "--quiet",
                 "--save", str(tmp_path / "m.npz")]) == 0  # fmt: skip
    trained = capsys.readouterr().out
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the saved path was relative to the other folder
    assert main(["evaluate", "--model", str(tmp_path / "m.npz")]) == 0
    accuracy = trained.split()[-1]
    assert f"accuracy  {accuracy}" in capsys.readouterr().out
    # The file edited since: its held-out rows would be other rows; refused.
    data.write_text("\n".join(rows[:1] + rows[:0:-1]) + "\n")  # the same rows, reversed
    assert main(["evaluate", "--model", str(tmp_path / "m.npz")]) == 2
    err = capsys.readouterr().err
    assert "needs the data trained on" in err and "its contents differ" in err, err
    assert main(["predict", "--model", str(tmp_path / "m.npz")]) == 2
    capsys.readouterr()
    # Every row of it may still be scored, named with --data.
    assert main(["evaluate", "--model", str(tmp_path / "m.npz"), "--data", str(data)]) == 0
