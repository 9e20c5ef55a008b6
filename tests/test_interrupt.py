"""Long runs lose nothing: interrupts keep the last read-back block, checkpoints, exact resume."""

from __future__ import annotations

import _thread
import math
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import xpnet
from xpnet.training.loop import READBACK_EVERY

#: The seed's method: full-batch gradient descent with sigmoid hidden units.
SEED = dict(solver="sgd", activation="sigmoid")

#: Full batch, shuffled mini-batches with Adam, and momentum with the adaptive schedule:
#: every piece of state that resuming must carry (parameters, moments, step counts, the
#: batch-order generator, the schedule's μ and stall count).
SETTINGS = {
    "full-batch": dict(SEED),
    "adam-mini-batches": dict(solver="adam", batch_size=32),
    "momentum-adaptive": dict(
        SEED, momentum=0.9, batch_size=50, learning_rate_schedule="adaptive", tol=1e-3,
        n_iter_no_change=3,
    ),
}  # fmt: skip


def _data(N=200, n_in=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, n_in))
    return X, np.tanh(X @ rng.normal(size=n_in))


def _estimator(max_iter, **params):
    """A fit of exactly ``max_iter`` epochs (no stall of the loss ends it sooner)."""
    params.setdefault("n_iter_no_change", np.inf)
    return xpnet.MLPRegressor(hidden_layer_sizes=(7,), max_iter=max_iter, random_state=0, **params)


def _assert_same_fit(est, reference):
    for got, want in zip(est.weights_ + est.biases_, reference.weights_ + reference.biases_,
                         strict=True):  # fmt: skip
        np.testing.assert_array_equal(got, want)
    assert est.loss_curve_ == reference.loss_curve_
    assert est.n_iter_ == reference.n_iter_ and est.t_ == reference.t_


class _InterruptAtBlock:
    """A progress callback that raises KeyboardInterrupt at read-back block ``k``."""

    def __init__(self, k):
        self.k, self.calls = k, 0

    def __call__(self, losses, scores):
        self.calls += 1
        if self.calls == self.k:
            raise KeyboardInterrupt


@pytest.mark.parametrize("settings", list(SETTINGS))
def test_an_interrupt_keeps_the_blocks_read_back_and_resume_finishes_exactly(settings):
    X, y = _data()
    reference = _estimator(96, **SETTINGS[settings]).fit(X, y)
    est = _estimator(96, **SETTINGS[settings])
    with pytest.raises(KeyboardInterrupt):
        est.fit(X, y, callback=_InterruptAtBlock(3))
    assert est.n_iter_ == len(est.loss_curve_) == 3 * READBACK_EVERY
    assert est.t_ == est.n_iter_ * len(X)
    assert all(np.all(np.isfinite(W)) for W in est.weights_ + est.biases_)
    assert est.loss_curve_ == reference.loss_curve_[: est.n_iter_]
    est.fit(X, y, resume=True)
    _assert_same_fit(est, reference)


def test_an_interrupt_anywhere_leaves_a_consistent_fit():
    # The interrupt is raised in the main thread by another thread, so it lands wherever
    # training happens to be: mid-step, mid-read-back, in the chunk pool.
    X, y = _data()

    def interrupt_soon(losses, scores, calls=[]):  # noqa: B006  counts the blocks
        calls.append(1)
        if len(calls) == 5:
            _thread.interrupt_main()

    est = _estimator(10**6, solver="adam", batch_size=64)
    with pytest.raises(KeyboardInterrupt):
        est.fit(X, y, callback=interrupt_soon)
    n = est.n_iter_
    assert n >= 4 * READBACK_EVERY and n % READBACK_EVERY == 0 and len(est.loss_curve_) == n
    # The kept parameters are exactly those of a fit of n epochs: consistent with the
    # record, the optimizer's step count and the batch order.
    _assert_same_fit(est, _estimator(n, solver="adam", batch_size=64).fit(X, y))
    assert est._optimizer_state.t == n * math.ceil(len(X) / 64)


def test_an_interrupt_before_the_first_read_back_changes_nothing(monkeypatch):
    from xpnet.engines.eager import Eager

    def interrupted_block(*args, **kwargs):  # the engine's first block is interrupted
        raise KeyboardInterrupt

    X, y = _data()
    fitted = _estimator(20).fit(X, y)
    W = [W_l.copy() for W_l in fitted.weights_]
    monkeypatch.setattr(Eager, "run_block", interrupted_block)
    est = _estimator(20)
    with pytest.raises(KeyboardInterrupt):
        est.fit(X, y)
    assert not hasattr(est, "weights_")
    with pytest.raises(KeyboardInterrupt):
        fitted.set_params(warm_start=True).fit(X, y)
    for got, want in zip(fitted.weights_, W, strict=True):
        np.testing.assert_array_equal(got, want)
    assert fitted.n_iter_ == 20


def test_checkpoints_are_written_every_n_epochs_and_at_the_end(tmp_path):
    X, y = _data()
    seen = []
    _estimator(100).fit(X, y, checkpoint=lambda est: seen.append(est.n_iter_),
                        checkpoint_every=40)  # fmt: skip
    # At the read-back after each multiple of 40 (blocks end at 48 and 80), and at the end.
    assert seen == [48, 80, 100]

    path = tmp_path / "run.npz"
    est = _estimator(100, solver="adam").fit(X, y, checkpoint=path, checkpoint_every=32)
    saved = xpnet.load(path)
    _assert_same_fit(saved, est)
    assert os.listdir(tmp_path) == ["run.npz"]  # no temporary file left behind


def test_a_checkpoint_holds_the_training_so_far_and_resumes_exactly(tmp_path):
    X, y = _data()
    settings = SETTINGS["adam-mini-batches"]
    snapshots = []
    est = _estimator(96, **settings)
    est.fit(X, y, checkpoint=snapshots.append, checkpoint_every=48)
    first = snapshots[0]  # at epoch 48, with its arrays on the host
    assert first.n_iter_ == 48 and isinstance(first.weights_[0], np.ndarray)
    first.save(tmp_path / "at48.npz")
    resumed = xpnet.load(tmp_path / "at48.npz").fit(X, y, resume=True)
    _assert_same_fit(resumed, est)


def test_a_failed_checkpoint_fails_the_fit_and_changes_nothing(tmp_path):
    X, y = _data()
    est = _estimator(20)
    with pytest.raises(OSError):
        est.fit(X, y, checkpoint=tmp_path / "no such folder" / "m.npz")
    assert not hasattr(est, "weights_")


def test_resume_after_a_stopping_rule_ended_the_fit_trains_no_more():
    X, y = _data()
    settings = dict(SETTINGS["momentum-adaptive"], tol=0.05)  # the rule gives up early
    est = _estimator(400, **settings).fit(X, y)
    assert est.n_iter_ < 400
    W = [W_l.copy() for W_l in est.weights_]
    est.fit(X, y, resume=True)
    assert est.n_iter_ < 400
    for got, want in zip(est.weights_, W, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(resume=True), ValueError, "resume=True carries on a fit .* not been fitted"),
        (dict(checkpoint=3), TypeError, "checkpoint must be a file path or a callable, got 3"),
        (dict(checkpoint="m.npz", checkpoint_every=0), ValueError,
         "checkpoint_every must be None or an int >= 1, got 0"),
        (dict(checkpoint_every=10), ValueError, "checkpoint_every needs checkpoint="),
    ],
)  # fmt: skip
def test_bad_checkpoint_and_resume_arguments(kwargs, error, match):
    X, y = _data(N=20)
    with pytest.raises(error, match=match):
        _estimator(5).fit(X, y, **kwargs)


#: Early stopping that does not stop before the interrupt at epoch 48, and does stop
#: after it: the resumed fit must carry on the split, the count and the best epoch.
STOPPING = dict(early_stopping=True, n_iter_no_change=20, tol=0.0, learning_rate=1.0,
                batch_size=40, **SEED)  # fmt: skip


@pytest.mark.parametrize("through_a_file", [False, True])
def test_early_stopping_resumes_exactly(through_a_file, tmp_path):
    X, y = _data()
    reference = _estimator(400, **STOPPING).fit(X, y)
    assert 48 < reference.n_iter_ < 400  # stopped by the rule, after the interrupt
    est = _estimator(400, **STOPPING)
    with pytest.raises(KeyboardInterrupt):
        est.fit(X, y, callback=_InterruptAtBlock(3))
    assert est.n_iter_ == 48
    if through_a_file:
        est.save(tmp_path / "at48.npz")
        est = xpnet.load(tmp_path / "at48.npz")
    est.fit(X, y, resume=True)
    _assert_same_fit(est, reference)
    assert est.validation_scores_ == reference.validation_scores_
    assert est.best_validation_score_ == reference.best_validation_score_
    est.fit(X, y, resume=True)  # stopped by its rule: nothing left to do
    _assert_same_fit(est, reference)


def test_resume_of_early_stopping_wants_its_state():
    X, y = _data()
    plain = _estimator(20).fit(X, y).set_params(early_stopping=True)
    with pytest.raises(ValueError, match="cannot carry on this fit with early_stopping=True"):
        plain.fit(X, y, resume=True)
    stopping = _estimator(400, **STOPPING)
    with pytest.raises(KeyboardInterrupt):
        stopping.fit(X, y, callback=_InterruptAtBlock(1))
    with pytest.raises(ValueError, match="resume it with early_stopping=True"):
        stopping.set_params(early_stopping=False).fit(X, y, resume=True)
    with pytest.raises(ValueError, match=r"held out validation_fraction=0\.1 of 200 samples; "
                                         r"it got 150 samples"):  # fmt: skip
        stopping.set_params(early_stopping=True).fit(X[:150], y[:150], resume=True)


def test_a_killed_run_resumes_from_its_checkpoint_to_the_same_weights(tmp_path):
    """SIGKILL, as a scheduler's time limit or a lost machine would: no handler runs."""
    path = tmp_path / "run.npz"
    script = textwrap.dedent(
        f"""
        import time, numpy as np, xpnet
        rng = np.random.default_rng(0)
        X = rng.normal(size=(200, 5)); y = np.tanh(X @ rng.normal(size=5))
        est = xpnet.MLPRegressor(hidden_layer_sizes=(7,), max_iter=10**6, random_state=0,
                                 solver="adam", batch_size=32, n_iter_no_change=np.inf)
        est.fit(X, y, callback=lambda *a: time.sleep(0.02), checkpoint={str(path)!r},
                checkpoint_every=32)
        """
    )
    run = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 60
        while not path.exists() and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # a few more checkpoints, so that the kill lands mid-run
        assert run.poll() is None, "the training run ended before it could be killed"
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == -signal.SIGKILL
    est = xpnet.load(path)
    k = est.n_iter_
    assert k >= 32 and k % READBACK_EVERY == 0
    X, y = _data()
    est.set_params(max_iter=k + 40).fit(X, y, resume=True)
    _assert_same_fit(est, _estimator(k + 40, solver="adam", batch_size=32).fit(X, y))


def test_the_batch_order_generator_is_saved(tmp_path):
    X, y = _data()
    est = _estimator(10, batch_size=16).fit(X, y)
    est.save(tmp_path / "m.npz")
    loaded = xpnet.load(tmp_path / "m.npz")
    assert loaded._rng.bit_generator.state == est._rng.bit_generator.state
    np.testing.assert_array_equal(loaded._rng.permutation(50), est._rng.permutation(50))


def test_sigterm_as_interrupt_keeps_the_training_and_writes_the_checkpoint(tmp_path):
    """SIGTERM, as batch schedulers, Kubernetes and ``timeout`` send before they kill."""
    path, ready = tmp_path / "run.npz", tmp_path / "training"
    script = textwrap.dedent(
        f"""
        import pathlib, sys, time, numpy as np, xpnet
        rng = np.random.default_rng(0)
        X = rng.normal(size=(200, 5)); y = np.tanh(X @ rng.normal(size=5))
        est = xpnet.MLPRegressor(hidden_layer_sizes=(7,), max_iter=10**6, random_state=0,
                                 solver="adam", batch_size=32)

        def each_block(losses, scores):
            pathlib.Path({str(ready)!r}).touch()  # the signal may come now
            time.sleep(0.01)

        with xpnet.sigterm_as_interrupt() as term:
            try:
                est.fit(X, y, callback=each_block, checkpoint={str(path)!r},
                        checkpoint_every=10**6)
            except KeyboardInterrupt:
                est.save({str(tmp_path / "model.npz")!r})
                sys.exit(143 if term.received else 130)
        """
    )
    run = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 143, err
    # The checkpoint (due only at the end) was written on the way out, as on Ctrl-C.
    model, checkpoint = xpnet.load(tmp_path / "model.npz"), xpnet.load(path)
    assert model.n_iter_ >= READBACK_EVERY and model.n_iter_ % READBACK_EVERY == 0
    _assert_same_fit(model, checkpoint)


def test_sigterm_as_interrupt_puts_the_previous_handler_back():
    def mine(signum, frame):
        pass

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        with xpnet.sigterm_as_interrupt() as term:
            assert signal.getsignal(signal.SIGTERM) not in (mine, signal.SIG_DFL)
            with pytest.raises(KeyboardInterrupt):
                signal.raise_signal(signal.SIGTERM)
        assert term.received and signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_sigterm_as_interrupt_wants_the_main_thread():
    import threading

    errors = []

    def enter():
        try:
            with xpnet.sigterm_as_interrupt():
                pass
        except RuntimeError as exc:
            errors.append(str(exc))

    thread = threading.Thread(target=enter)
    thread.start()
    thread.join()
    assert errors and "main thread" in errors[0]
