"""Checkpoints: the model as trained so far, written while training goes on.

A fit given ``checkpoint=`` hands each read-back's consistent state (the
``xpnet.training.loop.History`` of the run so far) to a :class:`CheckpointWriter`, which
turns it into a fitted copy of the estimator with its arrays on the host and writes
that in a background thread.
"""

from __future__ import annotations

import copy
import numbers
import os
import threading
from collections.abc import Callable
from typing import Any

import array_api_compat as aac

from .._files import check_writable
from .._host import to_numpy
from ..core.optimizers import OptimizerState
from .loop import History


def check_checkpoint(checkpoint: Any, every: Any) -> None:
    """Validate ``fit``'s ``checkpoint`` and ``checkpoint_every`` before any training.

    A file path must be one that can be saved to now (:func:`xpnet._files.check_writable`:
    its folder exists and takes new files, and it is not a directory or a special
    file): found out after the last epoch, a bad path would cost the whole fit.
    """
    if checkpoint is not None and not (
        callable(checkpoint) or isinstance(checkpoint, (str, os.PathLike))
    ):
        raise TypeError(f"checkpoint must be a file path or a callable, got {checkpoint!r}.")
    if every is not None and (
        isinstance(every, bool) or not isinstance(every, numbers.Integral) or every < 1
    ):
        raise ValueError(f"checkpoint_every must be None or an int >= 1, got {every!r}.")
    if every is not None and checkpoint is None:
        raise ValueError("checkpoint_every needs checkpoint=, the file (or callable) to write.")
    if isinstance(checkpoint, (str, os.PathLike)):
        check_writable(checkpoint)


class CheckpointWriter:
    """Writes the model as trained so far, in a background thread, at most one at a time.

    Called at each read-back with the run's :class:`History`, it writes when another
    ``every`` epochs have passed (and, through :meth:`last`, at the end).  The parameters
    are copied to the host in the training thread, right after the read-back that has
    just synchronised the device anyway; writing the file (and its fsync) happens in the
    background while training goes on.  A write still under way when the next is due is
    waited for, and so is the last when the fit ends.  A write that failed has its error
    raised at the first read-back that finds it finished (not at the next write, which
    may be many epochs later), so that a full disk stops the fit early.
    """

    def __init__(
        self, target: Any, every: int | None, keep: Callable[..., None], est: Any, *, n_iter: int
    ) -> None:
        self.target, self.every, self.keep, self.est = target, every, keep, est
        self.n_iter = self.done = n_iter  # epochs before this fit, and as of the last write
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def __enter__(self) -> CheckpointWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.wait()

    def on_block(self, history: History) -> None:
        """Write if a multiple of ``every`` epochs was passed since the last write; first,
        raise the error of a write that has failed."""
        if self.thread is not None and not self.thread.is_alive():
            self.wait()
        n_iter = self.n_iter + len(history.losses)
        if self.every is not None and n_iter // self.every > self.done // self.every:
            self.write(self.snapshot(history))

    def last(self, history: History) -> None:
        if self.target is not None:
            self.write(self.snapshot(history))

    def snapshot(self, history: History) -> Any:
        """A fitted copy of the estimator as of ``history``, its arrays on the host."""
        est = copy.copy(self.est)
        self.keep(est, history)
        est.weights_ = [to_numpy(W_l) for W_l in est.weights_]
        est.biases_ = [to_numpy(b_l) for b_l in est.biases_]
        state = est._optimizer_state
        est._optimizer_state = OptimizerState(
            state.t, tuple([to_numpy(m) for m in moment] for moment in state.moments)
        )
        if hasattr(est, "classes_") and not aac.is_numpy_array(est.classes_):
            est.classes_ = to_numpy(est.classes_)
        est._rng = copy.deepcopy(self.est._rng)  # training draws on from the original
        return est

    def write(self, snapshot: Any) -> None:
        self.wait()
        self.done = snapshot.n_iter_
        self.thread = threading.Thread(target=self._run, args=(snapshot,))
        self.thread.start()

    def _run(self, snapshot: Any) -> None:
        try:
            if callable(self.target):
                self.target(snapshot)
            else:
                snapshot.save(self.target)
        except BaseException as exc:  # handed to the training thread by wait()
            self.error = exc

    def wait(self) -> None:
        if self.thread is not None:
            self.thread.join()
            self.thread = None
        if self.error is not None:
            error, self.error = self.error, None
            raise error
