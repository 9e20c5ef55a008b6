"""``xpnet info``: the version, each backend's devices (or why it cannot run here) and the
optional packages the command uses."""

from __future__ import annotations

import argparse
import sys

import array_api_compat
import numpy as np

from .._version import __version__
from ._backends import report
from ._progress import extras, table


def _info(args: argparse.Namespace) -> int:
    print(
        f"xpnet {__version__} (Python {sys.version.split()[0]}, NumPy {np.__version__}, "
        f"array-api-compat {array_api_compat.__version__})"
    )
    # One table, in two parts: the versions of both start in the same column.
    backends, packages = report(), extras()
    lines = table([*backends, *packages]).splitlines()
    print("backends:")
    print("\n".join(lines[: len(backends)]))
    print('optional packages of the command (pip install "xpnet[examples]"):')
    print("\n".join(lines[len(backends) :]))
    return 0
