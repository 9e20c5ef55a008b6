"""The GPU check's plan (``scripts/gpu_check.sh --list``) holds: the tests that need a GPU
run first, and every part's time limit fits in one command of ten minutes.

The check itself is rehearsed on a machine without a GPU by running it
(``OUT=$(mktemp -d) bash scripts/gpu_check.sh``); this only reads its plan, in
milliseconds.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gpu_check.sh"

#: What one command on a GPU machine may take, and the margin the check leaves under it
#: (for starting Python and writing the summaries between the parts).
COMMAND_LIMIT_S, MARGIN_S = 600, 40


def _plan() -> tuple[list[tuple[str, int, str]], int, int]:
    """The check's parts (name, limit in seconds, what it needs), the total it states
    with its grace periods, and the grace per part."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    listed = subprocess.run(
        [bash, str(SCRIPT), "--list"], capture_output=True, text=True, timeout=30, check=True
    ).stdout.splitlines()
    parts = []
    for line in listed[1:-1]:
        name, limit, needs, *_ = line.split()
        parts.append((name, int(limit.removesuffix("s")), needs))
    total = re.fullmatch(r"total: (\d+) s with (\d+) s of grace per part .*", listed[-1])
    assert total is not None, listed[-1]
    return parts, int(total[1]), int(total[2])


def test_the_gpu_check_fits_in_one_command_with_the_gpu_tests_first():
    parts, total, grace = _plan()
    names = [name for name, _, _ in parts]
    assert names[:3] == ["prepare", "gpu-tests", "cupy-tests"], names
    assert total == sum(limit + grace for _, limit, _ in parts)
    assert total <= COMMAND_LIMIT_S - MARGIN_S, f"the parts may take {total} s"
    # What a part may need is a GPU, and nothing else: on a machine without one, the
    # check skips just those parts, and says so.
    assert {needs for _, _, needs in parts} <= {"-", "cupy", "jax-gpu"}


def test_the_gpu_tests_the_check_selects_are_marked():
    # gpu-tests runs `pytest -m gpu` over the files it names: each must hold such tests.
    script = SCRIPT.read_text()
    selection = re.search(r"pytest -m gpu [^\n]*\\\n\s*((?:tests/\S+\s*)+)", script)
    assert selection is not None
    for path in selection[1].split():
        assert "pytest.mark.gpu" in (REPO / path).read_text(), path
