"""``--engine jit`` where nothing compiles, said before the data is loaded.

The rule is the library's (``xpnet.engines.check_engine``); the command only asks it
early, when the backend is known and the data are not.  Whether a ``--batch-size`` makes
mini-batches depends on the number of samples (a batch as large as the data is one
step), so that is left to the library once the data are loaded.
"""

from __future__ import annotations

import argparse

from .. import engines
from ._common import CommandError


def _check_engine(args: argparse.Namespace, batch_size: int | None) -> None:
    """``--engine jit`` where nothing compiles: said before the data is loaded."""
    try:
        engines.check_engine(args.engine, args.backend, full_batch=None)
    except ValueError:
        where = ", ".join(engines.COMPILED_LIBRARIES)
        raise CommandError(
            f"--engine jit compiles on {where}, not --backend {args.backend}"
        ) from None
