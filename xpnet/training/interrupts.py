"""SIGTERM taken for Ctrl-C: what batch schedulers, Kubernetes and ``timeout`` send first.

A ``KeyboardInterrupt`` during ``fit`` keeps the training read back so far and writes the
checkpoint (``xpnet.training.loop.Interrupted``); :class:`sigterm_as_interrupt` gives
SIGTERM the same effect, for as long as a ``with`` block runs.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any


class sigterm_as_interrupt:
    """Within the ``with`` block, SIGTERM raises ``KeyboardInterrupt``, as Ctrl-C does.

    A fit that receives it keeps what it trained up to the last block of 16 epochs read
    back, writes its checkpoint (``fit(checkpoint=...)``), and re-raises the
    ``KeyboardInterrupt``, so that the program can save, report and exit, typically with
    status 143 (128 + SIGTERM's 15, what a process ended by SIGTERM reports).  The
    handler that was in place before is put back when the block ends.

    Python runs signal handlers in the main thread only, so the block must run there
    too (a fit in another thread would not be interrupted).

    Attributes
    ----------
    received : bool
        Whether SIGTERM arrived while the block ran.

    Examples
    --------
    A job that a scheduler may stop, saving what it trained::

        with xpnet.sigterm_as_interrupt() as term:
            try:
                est.fit(X, y, checkpoint="run.npz", checkpoint_every=100)
            except KeyboardInterrupt:
                est.save("model.npz")
                sys.exit(143 if term.received else 130)
    """

    def __init__(self) -> None:
        self.received = False
        self._previous: Any = None

    def __enter__(self) -> sigterm_as_interrupt:
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError(
                "sigterm_as_interrupt() must be entered in the main thread: Python runs "
                "signal handlers there only."
            )
        self._previous = signal.signal(signal.SIGTERM, self._interrupt)
        return self

    def __exit__(self, *exc: Any) -> None:
        # None: the handler was not set from Python; the default is what it was.
        previous = signal.SIG_DFL if self._previous is None else self._previous
        signal.signal(signal.SIGTERM, previous)

    def _interrupt(self, signum: int, frame: FrameType | None) -> None:
        self.received = True
        raise KeyboardInterrupt
