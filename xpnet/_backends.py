"""Backends by name for the ``xpnet`` command: import them, find devices, say what is usable.

The library itself never imports an array library: it takes the namespace of the arrays
it is given.  The command has to start from a name, and this module is where it does.
"""

from __future__ import annotations

import importlib
from typing import Any

import array_api_compat as aac

BACKENDS = ("numpy", "cupy", "torch", "jax", "array_api_strict")
_MODULES = {"jax": "jax.numpy"}
_INSTALL = {
    "cupy": 'pip install "xpnet[cuda12]" or "xpnet[cuda13]"',
    "torch": "pip install torch",
    "jax": "pip install jax",
    "array_api_strict": "pip install array-api-strict",
}


class BackendError(ValueError):
    """A backend or device that cannot be used here; the message says why."""


def namespace(name: str) -> Any:
    """The Array API namespace of backend ``name`` (array-api-compat's where it wraps one)."""
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; choose from {BACKENDS}")
    try:
        module = importlib.import_module(_MODULES.get(name, name))
    except ImportError as exc:
        raise BackendError(f"backend {name!r} is not installed ({exc}): {_INSTALL[name]}") from None
    if name == "jax":
        import jax

        # Without it JAX truncates float64 and int64 to 32 bits; float32 stays float32.
        jax.config.update("jax_enable_x64", True)
    return aac.array_namespace(module.asarray(0))


def device(name: str, xp: Any, spec: str | None) -> Any:
    """The device of backend ``name`` that ``spec`` names (None: the default one).

    ``spec`` is ``"cpu"`` for NumPy; ``"cuda:1"`` or ``"1"`` for CuPy; any
    ``torch.device`` string for PyTorch; ``"cpu"``, ``"gpu"`` or ``"gpu:1"`` for JAX;
    ``"CPU_DEVICE"`` or ``"device1"`` for array-api-strict.
    """
    try:
        dev = _device(name, xp, spec)
        xp.zeros(1, dtype=xp.float32, device=dev)  # fails now, not halfway through training
    except BackendError:
        raise
    except Exception as exc:  # each library has its own error for a missing device
        raise BackendError(f"device {spec!r} is not usable with {name}: {exc}") from None
    return dev


def _device(name: str, xp: Any, spec: str | None) -> Any:
    if spec is None:
        return xp.__array_namespace_info__().default_device()
    if name == "numpy":
        if spec != "cpu":
            raise BackendError(f"numpy has one device, 'cpu'; got {spec!r}")
        return "cpu"
    if name == "torch":
        import torch

        return torch.device(spec)
    if name == "cupy":
        import cupy

        return cupy.cuda.Device(_index(spec, name))
    if name == "jax":
        import jax

        platform, _, index = spec.partition(":")
        return jax.devices(platform)[int(index or 0)]
    import array_api_strict

    return array_api_strict.Device(spec)


def _index(spec: str, name: str) -> int:
    text = spec.rpartition(":")[2]
    if not text.isdigit():
        raise BackendError(f"{name} devices are 'cuda:N' or 'N', got {spec!r}")
    return int(text)


def device_name(dev: Any) -> str:
    """A short printable name for a device object."""
    if type(dev).__module__.startswith("cupy"):
        return f"cuda:{dev.id}"
    return str(dev)


def report() -> list[tuple[str, str, str]]:
    """For each backend: (name, version or "-", "devices: ..." or "not usable: why")."""
    rows = []
    for name in BACKENDS:
        try:
            module = importlib.import_module(name)
        except ImportError:
            rows.append(
                (
                    name,
                    "-",
                    f"not usable: not installed ({_INSTALL.get(name, '')})".replace(" ()", ""),
                )
            )
            continue
        except Exception as exc:  # a broken install: say what broke
            rows.append((name, "-", f"not usable: import failed: {exc}"))
            continue
        version = str(getattr(module, "__version__", "?"))
        try:
            devices = _devices(name, module)
        except Exception as exc:  # no driver, no runtime: the library imports but cannot run
            rows.append((name, version, f"not usable: {type(exc).__name__}: {exc}"))
            continue
        if not devices:
            rows.append((name, version, "not usable: no device found"))
        else:
            rows.append((name, version, "devices: " + ", ".join(devices)))
    return rows


def _devices(name: str, module: Any) -> list[str]:
    if name == "numpy":
        return ["cpu"]
    if name == "cupy":
        n = module.cuda.runtime.getDeviceCount()
        names = []
        for i in range(n):
            props = module.cuda.runtime.getDeviceProperties(i)
            names.append(f"cuda:{i} ({props['name'].decode()})")
        return names
    if name == "torch":
        names = ["cpu"]
        if module.cuda.is_available():
            names += [
                f"cuda:{i} ({module.cuda.get_device_name(i)})"
                for i in range(module.cuda.device_count())
            ]
        mps = getattr(module.backends, "mps", None)
        if mps is not None and mps.is_available():
            names.append("mps")
        return names
    if name == "jax":
        import jax

        return [f"{d.platform}:{d.id}" for d in jax.devices()]
    info = module.__array_namespace_info__()
    return [str(d).removeprefix("array_api_strict.Device(").strip("')") for d in info.devices()]
