"""argparse types: the values of the command line checked as they are parsed.

Each turns a bad value into argparse's one-line error, which names the option.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {text!r}")
    return value


def _float_in(low: float, high: float, what: str, closed: str = "()") -> Callable[[str], float]:
    """An argparse type: a float between ``low`` and ``high``, an end included where
    ``closed`` ("()", "[]", "[)") has a bracket."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        above = value >= low if closed[0] == "[" else value > low
        below = value <= high if closed[1] == "]" else value < high
        if not (above and below):  # NaN included
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


_positive_float = _float_in(0.0, math.inf, "a positive number")
_fraction = _float_in(0.0, 1.0, "a number between 0 and 1")
_unit_interval = _float_in(0.0, 1.0, "a number from 0 to 1", "[]")
_non_negative = _float_in(0.0, math.inf, "a number >= 0", "[)")


def _hidden(text: str) -> tuple[int, ...]:
    if text.strip().lower() in ("", "none"):
        return ()
    try:
        sizes = tuple(int(n) for n in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected layer sizes like 64,32 (or none), got {text!r}"
        ) from None
    if any(n < 1 for n in sizes):
        raise argparse.ArgumentTypeError(f"layer sizes must be >= 1, got {text!r}")
    return sizes
