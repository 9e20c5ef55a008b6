"""The ``xpnet`` command: train, predict, evaluate, info.

``xpnet train`` with no arguments trains a classifier on scikit-learn's digits on NumPy
and prints its held-out accuracy.  Features are standardised with the training split's
mean and standard deviation (and regression targets likewise); the scaling is then
folded into the first (and last) layer's W and b, so a saved model takes raw features
and returns targets in their own units, from ``xpnet.load`` as from ``xpnet predict``.

With ``--backend dask`` the data are cut into blocks of rows (``--dask-blocks``) and
computed by a Dask cluster: a ``LocalCluster`` the command starts and closes, or the
scheduler at ``--scheduler``.  The parameters, and everything after training (the
score, the saved model, checkpoints, the plot), come back to the host as NumPy arrays.

Every expected failure (a bad option, a missing file, a backend that cannot run here)
is one line ``xpnet: error: ...`` on stderr, with exit status 2.  Data that will train
poorly (a classifier with too few samples per class) get a line ``xpnet: warning: ...``
and the command goes on.

The modules of this package, one job each (imports go down this list, never back up):

- ``__init__``: :func:`main`, the entry point, and each error's exit status.
- ``_parser``: the parser, and each subcommand's options in small groups.
- ``_argtypes``: argparse types, each option's values checked as they are parsed.
- ``_info``: ``xpnet info``.
- ``_serve``: ``xpnet predict`` and ``xpnet evaluate``: a saved model loaded and served.
- ``_train``: ``xpnet train``: training, Ctrl-C or SIGTERM finishing the block,
  ``--resume``, the report.
- ``_engine``: ``--engine jit`` where nothing compiles, asked of the library early.
- ``_common``: what the subcommands share: ``CommandError``, the backend and device, the
  Dask scheduler, the scaling folded into a network, the metrics.
- ``_backends``: backends by name: importing them, devices, Dask schedulers, ``info``'s
  report.
- ``_data``: the bundled data sets and data files, the task, the held-out split.
- ``_progress``: the progress bar, the loss plot, tables.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from ._backends import BackendError
from ._common import CommandError
from ._data import DataError
from ._parser import build_parser

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a bad command line told in one line
        return int(exc.code or 0)
    if args.command is None:
        # The help, where a user typing a bare `xpnet` looks for it, but status 2 as any
        # other incomplete command line: a script whose `xpnet $COMMAND` lost its command
        # fails instead of passing.  (git prints its usage with status 1; argparse's own
        # usage errors, and ours, are 2.)
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except BrokenPipeError:  # the reader went away (xpnet predict | head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (CommandError, DataError, BackendError, ValueError, TypeError, OSError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"xpnet: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        # 130 for Ctrl-C; a run stopped by SIGTERM says so with 143 (128 + the signal).
        print("xpnet: interrupted", file=sys.stderr)
        return getattr(exc, "status", 130)
