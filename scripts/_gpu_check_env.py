"""What ``scripts/gpu_check.sh`` needs to know about the machine it runs on.

``--facts FILE``: check that xpnet is this repository's and array-api-compat at least
the floor that ``pyproject.toml`` sets (exit 1 with the reason if not); write the
versions and the GPU as CuPy, PyTorch and JAX see it to FILE as JSON, and print what
the script needs as shell assignments::

    CUPY_GPU=1 CUPY_WHY='...' TORCH_CUDA=1 TORCH_WHY='...' JAX_GPU=0 JAX_WHY='...'
    GPU_SUMMARY='...'

A helper of the GPU check, not part of the xpnet package.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import re
import shlex
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def version(text: str) -> tuple[int, ...]:
    """``"1.14.0"`` as ``(1, 14, 0)``: the leading numbers, for comparing versions."""
    return tuple(int(n) for n in re.findall(r"\d+", text.split("+")[0])[:3])


def floor() -> str:
    """The lowest array-api-compat that ``pyproject.toml`` accepts, as written there."""
    found = re.search(r'"array-api-compat>=([0-9.]+)"', (REPO / "pyproject.toml").read_text())
    if found is None:
        raise SystemExit("pyproject.toml has no array-api-compat>=X.Y requirement")
    return found[1]


def _cupy() -> tuple[bool, str, dict[str, Any]]:
    try:
        cupy = importlib.import_module("cupy")
    except ImportError:
        return False, "CuPy is not installed", {}
    info: dict[str, Any] = {"cupy": cupy.__version__}
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # no driver, no runtime: CuPy imports but cannot run
        return False, f"CuPy sees no CUDA device ({type(exc).__name__})", info
    if n == 0:
        return False, "CuPy sees no CUDA device", info
    props = cupy.cuda.runtime.getDeviceProperties(0)
    name = props["name"]
    info.update(
        gpu=name.decode() if isinstance(name, bytes) else name,
        cuda_runtime=cupy.cuda.runtime.runtimeGetVersion(),
        cuda_driver=cupy.cuda.runtime.driverGetVersion(),
        cupy_devices=n,
    )
    return True, f"CuPy sees {n} CUDA device(s)", info


def _torch() -> tuple[bool, str, dict[str, Any]]:
    try:
        torch = importlib.import_module("torch")
    except ImportError:
        return False, "PyTorch is not installed", {}
    info: dict[str, Any] = {"torch": torch.__version__}
    if not torch.cuda.is_available():
        return False, "PyTorch has no CUDA device", info
    info["torch_gpu"] = torch.cuda.get_device_name(0)
    return True, "PyTorch has CUDA", info


def _jax() -> tuple[bool, str, dict[str, Any]]:
    try:
        jax = importlib.import_module("jax")
    except ImportError:
        return False, "JAX is not installed", {}
    info: dict[str, Any] = {"jax": jax.__version__}
    try:
        backend = jax.default_backend()
    except Exception as exc:
        return False, f"JAX has no backend ({type(exc).__name__})", info
    info["jax_backend"] = backend
    return backend == "gpu", f"JAX's default backend is {backend}", info


def facts(path: Path) -> dict[str, str]:
    """Check xpnet and array-api-compat, then gather the machine's facts into ``path``."""
    import numpy

    try:
        import array_api_compat

        import xpnet
    except ImportError as exc:
        raise SystemExit(
            f"{exc}: run scripts/gpu_wheelhouse.sh where pip reaches a package index, and "
            "bring the wheelhouse/ folder it fills along with the repository"
        ) from exc
    here = Path(xpnet.__file__).resolve().parents[1]
    if here != REPO:
        raise SystemExit(f"xpnet is imported from {here}, not from this repository ({REPO})")
    if version(array_api_compat.__version__) < version(floor()):
        raise SystemExit(
            f"array-api-compat {array_api_compat.__version__} is older than xpnet's floor "
            f"{floor()}: run scripts/gpu_wheelhouse.sh and bring wheelhouse/ along"
        )
    machine: dict[str, Any] = {
        "python": f"{platform.python_version()} ({sys.executable})",
        "numpy": numpy.__version__,
        "array_api_compat": f"{array_api_compat.__version__} ({array_api_compat.__file__})",
        "xpnet": f"{xpnet.__version__} ({here})",
    }
    shell = {}
    for key, probe in (("CUPY_GPU", _cupy), ("TORCH_CUDA", _torch), ("JAX_GPU", _jax)):
        ok, why, info = probe()
        machine.update(info)
        shell[key], shell[key.split("_")[0] + "_WHY"] = str(int(ok)), why
    gpu = machine.get("gpu") or machine.get("torch_gpu")
    shell["GPU_SUMMARY"] = (
        f"{gpu or 'no GPU'}; {shell['CUPY_WHY']}; {shell['TORCH_WHY']}; {shell['JAX_WHY']}; "
        f"python {platform.python_version()}, array-api-compat {array_api_compat.__version__}"
    )
    machine["gpu_seen"] = shell["GPU_SUMMARY"]
    path.write_text(json.dumps(machine, indent=1) + "\n")
    return shell


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--facts", type=Path, metavar="FILE", required=True)
    args = parser.parse_args(argv)
    for key, value in facts(args.facts).items():
        print(f"{key}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
