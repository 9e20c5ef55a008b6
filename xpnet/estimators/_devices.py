"""Devices named by strings: one reading of ``"cpu"``, ``"cuda:1"``, ``"gpu"`` for every backend.

Each array library takes its own kind of device in ``asarray(..., device=)``: a string
for NumPy and Dask, a ``torch.device``, a ``cupy.cuda.Device``, a JAX ``Device``, an
array-api-strict ``Device``.  People, and the ``xpnet`` command's ``--device``, name
devices by strings; :func:`as_device` turns such a string into the namespace's own
device, the same way for ``xpnet.load(path, xp=..., device=...)`` and for the command.

The device classes are taken from the namespace's inspection API
(``__array_namespace_info__``), so nothing here imports an array library.
"""

from __future__ import annotations

import re
from typing import Any

import array_api_compat as aac

#: What each library's device strings look like, for the error messages.
GRAMMAR = {
    "numpy": "'cpu'",
    "dask": "'cpu'",
    "cupy": "'cuda', 'cuda:N' (or 'gpu:N') or 'N'",
    "torch": "a torch.device string: 'cpu', 'cuda', 'cuda:N' (or 'gpu:N'), 'mps', ...",
    "jax": "'cpu', 'gpu' or 'cuda', 'tpu', each with ':N' for the N-th of its kind",
    "array_api_strict": "'cpu' (its 'CPU_DEVICE') or one of its device names",
}
#: ``cuda:1``, ``gpu``, ``cpu:0``: a kind of device, then its index if there is one.
_SPEC = re.compile(r"(?P<kind>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<index>\d+))?")


def library(xp: Any) -> str | None:
    """The name of the array library behind namespace ``xp``, or None for another one."""
    for name, test in (
        ("numpy", aac.is_numpy_namespace),
        ("cupy", aac.is_cupy_namespace),
        ("torch", aac.is_torch_namespace),
        ("jax", aac.is_jax_namespace),
        ("dask", aac.is_dask_namespace),
        ("array_api_strict", aac.is_array_api_strict_namespace),
    ):
        if test(xp):
            return name
    return None


def as_device(xp: Any, device: Any) -> Any:
    """The device of namespace ``xp`` that ``device`` names, checked to hold an array.

    Parameters
    ----------
    xp : array namespace
        An array-api-compat namespace, or a library that is one (``jax.numpy``,
        ``array_api_strict``).
    device : str, a device of ``xp``, or None
        None is the namespace's default device, and a device object is taken as it is.
        A string names a device the same way for every library:

        - NumPy and Dask: ``"cpu"``;
        - CuPy: ``"cuda"`` (device 0), ``"cuda:N"``, ``"gpu:N"`` or ``"N"``;
        - PyTorch: any ``torch.device`` string (``"cpu"``, ``"cuda:1"``, ``"mps"``),
          and ``"gpu"``/``"gpu:N"`` for ``"cuda"``/``"cuda:N"``;
        - JAX: ``"cpu"``, ``"gpu"`` (or ``"cuda"``), ``"tpu"``, with ``":N"`` for the
          N-th device of that kind (``"gpu:1"``); without it, the first;
        - array-api-strict: ``"cpu"`` (its ``"CPU_DEVICE"``) or one of its device names
          (``"device1"``).

        A string for another namespace is handed to it as it is.

    Returns
    -------
    device
        What ``xp.asarray(..., device=)`` takes.  For JAX, None stays None: JAX then
        places arrays itself ("uncommitted") on its default device.

    Raises
    ------
    ValueError
        If the string names no device of the library, or the device cannot hold an
        array here (no such GPU, no driver); the message names the string.
    """
    name = library(xp)
    info = xp.__array_namespace_info__()
    if device is None:
        device, spec = info.default_device(), None
    elif isinstance(device, str):
        spec = device
        if name is not None:
            device = _PARSERS[name](spec.strip(), info, name)
    else:
        return device
    try:
        # Fails now, with the device's name, rather than halfway through a fit or a load.
        xp.zeros(1, dtype=xp.float32, device=device)
    except Exception as exc:  # each library has its own error for a device it cannot use
        problem = " ".join(str(exc).split()) or type(exc).__name__
        raise ValueError(f"device {spec!r} is not usable with {name or xp}: {problem}") from None
    return device


def _unknown(spec: str, name: str, why: str = "") -> ValueError:
    return ValueError(f"{name} has no device {spec!r}{why}; it takes {GRAMMAR[name]}")


def _cpu_only(spec: str, info: Any, name: str) -> Any:
    if spec != "cpu":
        raise _unknown(spec, name)
    return "cpu"


def _cupy(spec: str, info: Any, name: str) -> Any:
    match = _SPEC.fullmatch(spec)
    if spec.isdigit():
        index = int(spec)
    elif match and match["kind"] in ("cuda", "gpu"):
        index = int(match["index"] or 0)
    else:
        raise _unknown(spec, name)
    return type(info.default_device())(index)  # cupy.cuda.Device


def _torch(spec: str, info: Any, name: str) -> Any:
    match = _SPEC.fullmatch(spec)
    if match and match["kind"] == "gpu":  # JAX's word for it
        spec = "cuda" + spec[len("gpu") :]
    try:
        return type(info.default_device())(spec)  # torch.device
    except (RuntimeError, ValueError, TypeError):
        raise _unknown(spec, name) from None


def _jax(spec: str, info: Any, name: str) -> Any:
    match = _SPEC.fullmatch(spec)
    if not match:
        raise _unknown(spec, name)
    kind = _jax_kind(match["kind"])
    # Every backend's devices, the default one's first; None stands for "uncommitted".
    devices = [d for d in info.devices() if d is not None and _jax_kind(d.platform) == kind]
    index = int(match["index"] or 0)
    if index >= len(devices):
        here = ", ".join(f"{d.platform}:{d.id}" for d in info.devices() if d is not None)
        raise _unknown(spec, name, f" (its devices here: {here})")
    return devices[index]


def _jax_kind(platform: str) -> str:
    """JAX calls NVIDIA and AMD GPUs "gpu" as well as "cuda" and "rocm"."""
    return {"cuda": "gpu", "rocm": "gpu"}.get(platform, platform)


def _array_api_strict(spec: str, info: Any, name: str) -> Any:
    Device = type(info.default_device())
    try:
        return Device("CPU_DEVICE" if spec == "cpu" else spec)
    except ValueError:
        names = ", ".join(repr(device_name(d)) for d in info.devices())
        raise ValueError(
            f"{name} has no device {spec!r}; it takes 'cpu' or one of {names}"
        ) from None


_PARSERS = {
    "numpy": _cpu_only,
    "dask": _cpu_only,
    "cupy": _cupy,
    "torch": _torch,
    "jax": _jax,
    "array_api_strict": _array_api_strict,
}


def device_name(device: Any) -> str:
    """A device as the string that names it: ``"cpu"``, ``"cuda:1"``, ``"gpu:0"``, ``"device1"``."""
    module = type(device).__module__
    if module.startswith("cupy"):
        return f"cuda:{device.id}"
    if module.startswith("array_api_strict"):
        return str(device).removeprefix("array_api_strict.Device(").strip("')")
    if hasattr(device, "platform") and hasattr(device, "id"):  # JAX's
        return f"{device.platform}:{device.id}"
    return str(device)
