"""Every Python block of README.md runs as written and prints what the README shows.

A block written as a doctest (``>>>`` lines followed by their output) is run by
``doctest`` and its output compared; any other block is run by ``exec`` and must not
raise.  Each test runs the Python blocks of its ``## `` section from the first up to its
own, in one fresh namespace and in a temporary working directory, so a block may use
what the blocks before it in its section defined.

A block that needs hardware carries a marker on the line directly before its fence::

    <!-- requires: cupy -->

(names from ``HARDWARE``, comma-separated).  It is skipped, with the reason, where that
hardware is missing, and it is never run ahead of a later block: what it shows is a
variant, which later blocks must not depend on.  Libraries a block imports (``sklearn``,
``torch``, ...) are found from its imports; a block skips, with the reason, when one of
``OPTIONAL_MODULES`` is not installed.
"""

from __future__ import annotations

import ast
import doctest
import importlib
import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"

#: Libraries a README block may import that need not be installed; others must import.
OPTIONAL_MODULES = (
    "sklearn",
    "torch",
    "jax",
    "array_api_strict",
    "dask",
    "distributed",
    "matplotlib",
)

OPTIONFLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

_FENCE = re.compile(r"^```(?P<lang>\S*)\s*$")
_HEADING = re.compile(r"^(?P<level>#{1,6})\s+(?P<title>.+?)\s*$")
_REQUIRES = re.compile(r"^<!--\s*requires:\s*(?P<names>[^>]*?)\s*-->\s*$")


def _cupy_device() -> str | None:
    """Why CuPy cannot run here, or None if it has a CUDA device."""
    if importlib.util.find_spec("cupy") is None:
        return "cupy is not installed"
    try:
        cupy = importlib.import_module("cupy")
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # no driver or no CUDA runtime: CuPy raises its own errors
        return f"cupy finds no CUDA device ({type(e).__name__}: {e})"
    return None if n > 0 else "cupy finds no CUDA device"


def _torch_cuda() -> str | None:
    """Why PyTorch cannot run on CUDA here, or None if it can."""
    if importlib.util.find_spec("torch") is None:
        return "torch is not installed"
    torch = importlib.import_module("torch")
    return None if torch.cuda.is_available() else "torch.cuda.is_available() is False"


#: What a ``<!-- requires: NAME -->`` marker may name, and how to tell why it is missing.
HARDWARE: dict[str, Callable[[], str | None]] = {
    "cupy": _cupy_device,
    "torch-cuda": _torch_cuda,
}

#: Imports that show a block needs hardware, with the marker that must say so.
_IMPORT_NEEDS_MARKER = {"cupy": "cupy"}


@dataclass(frozen=True)
class Block:
    """One ```python block of the README."""

    source: str
    line: int  # 1-based line of the opening fence
    section: str  # the enclosing ``## `` heading
    heading: str  # the nearest heading of any level
    requires: tuple[str, ...]

    @property
    def is_doctest(self) -> bool:
        return any(line.lstrip().startswith(">>>") for line in self.source.splitlines())


def parse_readme(text: str) -> list[Block]:
    """The README's ```python blocks, with their headings and ``requires`` markers."""
    blocks: list[Block] = []
    section = heading = ""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence is None:
            title = _HEADING.match(line)
            if title is not None:
                heading = title["title"]
                if len(title["level"]) <= 2:
                    section = heading
            marker = _REQUIRES.match(line)
            if marker is not None and lines[i + 1 : i + 2] != ["```python"]:
                raise ValueError(f"README.md:{i + 1}: a requires marker must precede ```python")
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), None)
        if end is None:
            raise ValueError(f"README.md:{i + 1}: a code block is never closed")
        if fence["lang"] == "python":
            marker = _REQUIRES.match(lines[i - 1]) if i > 0 else None
            requires = tuple(n.strip() for n in marker["names"].split(",")) if marker else ()
            unknown = sorted(set(requires) - set(HARDWARE))
            if unknown:
                raise ValueError(
                    f"README.md:{i}: unknown requirement(s) {unknown}; choose from {list(HARDWARE)}"
                )
            source = "\n".join(lines[i + 1 : end]) + "\n"
            blocks.append(Block(source, i + 1, section, heading, requires))
        i = end + 1
    return blocks


BLOCKS = parse_readme(README.read_text(encoding="utf-8"))


def _ids(blocks: list[Block]) -> list[str]:
    """``heading-n``: the n-th Python block under its nearest heading."""
    counts: dict[str, int] = {}
    ids = []
    for block in blocks:
        counts[block.heading] = counts.get(block.heading, 0) + 1
        ids.append(f"{block.heading}-{counts[block.heading]}")
    return ids


def _prerequisites(index: int) -> list[Block]:
    """The unmarked blocks of ``BLOCKS[index]``'s section before it, then the block itself."""
    block = BLOCKS[index]
    earlier = [b for b in BLOCKS[:index] if b.section == block.section and not b.requires]
    return [*earlier, block]


def _python_source(block: Block) -> str:
    if not block.is_doctest:
        return block.source
    examples = doctest.DocTestParser().get_examples(block.source)
    return "".join(example.source for example in examples)


def _imported_modules(block: Block) -> set[str]:
    tree = ast.parse(_python_source(block), filename=str(README))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.partition(".")[0])
    return names


def _skip_unless_available(blocks: list[Block]) -> None:
    """Skip, naming what is missing, unless every block's hardware and libraries are here."""
    for block in blocks:
        imported = _imported_modules(block)
        for module, marker in _IMPORT_NEEDS_MARKER.items():
            if module in imported and marker not in block.requires:
                pytest.fail(
                    f"README.md:{block.line}: the block imports {module}; put "
                    f"'<!-- requires: {marker} -->' on the line before its fence",
                    pytrace=False,
                )
        for name in block.requires:
            why = HARDWARE[name]()
            if why is not None:
                pytest.skip(f"needs {name}: {why}")
        for module in sorted(imported & set(OPTIONAL_MODULES)):
            if importlib.util.find_spec(module) is None:
                pytest.skip(f"needs {module}: it is not installed")


def _run_doctest(block: Block, namespace: dict, runner: doctest.DocTestRunner) -> None:
    parser = doctest.DocTestParser()
    pieces = parser.parse(block.source)
    stray = [p for p in pieces if isinstance(p, str) and p.strip()]
    if stray:
        # The parser takes text before the first ``>>>`` for prose and would never run it.
        pytest.fail(
            f"README.md:{block.line}: a doctest block has lines outside its examples: "
            f"{stray[0].strip().splitlines()[0]!r}",
            pytrace=False,
        )
    test = parser.get_doctest(block.source, {}, block.heading, str(README), block.line)
    test.globs = namespace  # shared with the section's other blocks, not copied
    report: list[str] = []
    result = runner.run(test, out=report.append, clear_globs=False)
    if result.failed:
        pytest.fail("".join(report), pytrace=False)


def run_blocks(blocks: list[Block]) -> None:
    """Run ``blocks`` in order in one fresh namespace; fail on wrong output or an error."""
    namespace: dict = {"__name__": "readme"}
    runner = doctest.DocTestRunner(verbose=False, optionflags=OPTIONFLAGS)
    for block in blocks:
        if block.is_doctest:
            _run_doctest(block, namespace, runner)
        else:
            # Blank lines ahead of the source make tracebacks point at README.md's lines.
            code = compile("\n" * block.line + block.source, str(README), "exec")
            exec(code, namespace)


@pytest.mark.parametrize(
    "index",
    [
        # A block that needs hardware needs a GPU (HARDWARE): the GPU check selects it.
        pytest.param(i, id=name, marks=[pytest.mark.gpu] if block.requires else [])
        for i, (block, name) in enumerate(zip(BLOCKS, _ids(BLOCKS), strict=True))
    ],
)
def test_readme_block(index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = _prerequisites(index)
    _skip_unless_available(blocks)
    monkeypatch.chdir(tmp_path)
    run_blocks(blocks)


def test_readme_has_python_blocks() -> None:
    assert len(BLOCKS) >= 5, "README.md's Python blocks were not found"


def test_a_wrong_output_or_an_error_fails() -> None:
    text = """## Section

```python
>>> x = 1 + 1
```

<!-- requires: cupy, torch-cuda -->
```python
>>> x
3
```

```python
y = x / 0
```
"""
    first, second, third = parse_readme(text)
    assert (second.section, second.requires, second.is_doctest) == (
        "Section",
        ("cupy", "torch-cuda"),
        True,
    )
    assert not third.is_doctest
    run_blocks([first])
    with pytest.raises(pytest.fail.Exception, match=r"Expected:\s+3\s+Got:\s+2"):
        run_blocks([first, second])
    with pytest.raises(ZeroDivisionError):
        run_blocks([first, third])
    with pytest.raises(pytest.fail.Exception, match="lines outside its examples"):
        run_blocks(parse_readme("```python\nx = 1\n>>> x\n1\n```\n"))
