"""Backends by name for the ``xpnet`` command: import them, find devices, say what is usable.

The library itself never imports an array library: it takes the namespace of the arrays
it is given.  The command has to start from a name, and this module is where it does.

Dask is a backend of its own kind: its arrays are split into blocks of rows (NumPy
arrays here) and computed by a scheduler, which the command starts or connects to
(:func:`dask_scheduler`) and closes when it ends; :func:`to_backend` cuts the data into
those blocks.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import array_api_compat as aac
import numpy as np  # host-side: the data sets the command loads are NumPy arrays

from ..estimators._devices import as_device
from ..estimators._devices import device_name as _device_name

BACKENDS = ("numpy", "cupy", "torch", "jax", "array_api_strict", "dask")
_MODULES = {"jax": "jax.numpy", "dask": "dask.array"}
_INSTALL = {
    "cupy": 'pip install "xpnet[cuda12]" or "xpnet[cuda13]"',
    "torch": "pip install torch",
    "jax": "pip install jax",
    "array_api_strict": "pip install array-api-strict",
    "dask": 'pip install "dask[array]"',
}
DISTRIBUTED_INSTALL = 'pip install "dask[distributed]"'
#: How long ``--scheduler ADDRESS`` waits to connect, and then for a first worker.
CONNECT_TIMEOUT_S = 10


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

    Read as ``xpnet.load(device=spec)`` reads it (:func:`xpnet.estimators._devices.as_device`):
    ``"cpu"`` for NumPy; ``"cuda:1"`` or ``"1"`` for CuPy; any ``torch.device`` string
    for PyTorch; ``"cpu"``, ``"gpu"`` or ``"gpu:1"`` for JAX; ``"cpu"`` or ``"device1"``
    for array-api-strict.
    """
    if name == "dask" and spec not in (None, "cpu"):
        # The command gives Dask NumPy blocks; CuPy blocks are for the library's users.
        raise BackendError(f"dask runs on NumPy blocks here, device 'cpu'; got {spec!r}")
    try:
        return as_device(xp, spec)
    except ValueError as exc:
        raise BackendError(str(exc)) from None


def device_name(dev: Any, xp: Any = None) -> str:
    """A short printable name for a device object (the one ``--device`` would take).

    JAX's default device is None ("uncommitted": JAX places the arrays); with ``xp``
    given, it is named by where an array actually goes.
    """
    if dev is None and xp is not None:
        dev = aac.device(xp.zeros(1))
    return _device_name(dev)


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
        elif name == "dask":
            rows.append((name, version, f"devices: {devices[0]}; {_distributed_status()}"))
        else:
            rows.append((name, version, "devices: " + ", ".join(devices)))
    return rows


def _distributed_status() -> str:
    try:
        import distributed
    except ImportError:
        return f"distributed not installed: threaded scheduler only ({DISTRIBUTED_INSTALL})"
    except Exception as exc:  # a broken install: say what broke
        return f"distributed import failed: {exc}"
    return f"distributed {distributed.__version__}"


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
    if name == "dask":
        import dask.array  # noqa: F401  (dask without its array extra cannot train)

        return ["cpu (NumPy blocks)"]
    info = module.__array_namespace_info__()
    return [str(d).removeprefix("array_api_strict.Device(").strip("')") for d in info.devices()]


# -- Dask: blocks of rows, and the scheduler that computes them ------------------------------


def to_backend(
    name: str, xp: Any, a: np.ndarray, *, dtype: Any, device: Any, blocks: int | None = None
) -> Any:
    """A host array ``a`` as an array of backend ``name`` (``dtype`` None: a's own).

    On Dask, ``a`` is cut along its first axis (the samples) only, into ``blocks``
    blocks of as equal sizes as can be (at most one per row), and persisted: the blocks
    are sent to the workers once, and every later graph refers to them there, instead
    of carrying the data along with each training step.
    """
    if name != "dask":
        return xp.asarray(a, dtype=dtype, device=device)
    import dask
    import dask.array as da

    a = np.asarray(a, dtype=dtype)
    N = a.shape[0]
    k = max(1, min(blocks or 1, N))
    rows = tuple(N // k + (i < N % k) for i in range(k))
    (x,) = dask.persist(da.from_array(a, chunks=(rows, *a.shape[1:])))
    return x


@dataclass(frozen=True)
class DaskScheduler:
    """Where Dask computes: a description for the summary, and its worker threads."""

    description: str
    threads: int
    note: str | None = None  # a fallback the user should hear of


@contextlib.contextmanager
def dask_scheduler(address: str | None) -> Iterator[DaskScheduler]:
    """Dask's scheduler for the command's run, closed when the run ends however it ends.

    ``address``: a ``distributed.Client`` connected to that scheduler.  None: a
    ``LocalCluster`` sized for this machine (one worker process per core or so) and its
    Client, both closed at the end; without ``distributed``, Dask's threaded scheduler.
    The Client becomes Dask's default, so the estimator's ``dask.compute`` calls run on it.
    """
    try:
        import distributed
    except ImportError:
        if address is not None:
            raise BackendError(
                f"--scheduler {address!r} needs dask.distributed, which is not installed: "
                f"{DISTRIBUTED_INSTALL}"
            ) from None
        import dask
        from dask.system import CPU_COUNT

        with dask.config.set(scheduler="threads"):
            yield DaskScheduler(
                f"threaded, {CPU_COUNT} threads", CPU_COUNT,
                note="distributed is not installed: training on Dask's threaded scheduler "
                f"({DISTRIBUTED_INSTALL} for a cluster)",
            )  # fmt: skip
        return

    _quiet_aborted_gathers()
    with contextlib.ExitStack() as stack:
        if address is None:
            with _sigint_ignored():
                # No dashboard (and its web server on a free port, not 8787, which
                # another cluster of this machine may hold: a warning otherwise).
                local = distributed.LocalCluster(
                    processes=True, dashboard_address=":0", scheduler_kwargs={"dashboard": False}
                )
                cluster = stack.enter_context(local)
            client = stack.enter_context(distributed.Client(cluster))
        else:
            try:
                client = stack.enter_context(
                    distributed.Client(address, timeout=f"{CONNECT_TIMEOUT_S}s")
                )
                client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
            except Exception as exc:  # each way of failing raises its own type
                problem = " ".join(str(exc).split()) or type(exc).__name__
                raise BackendError(f"--scheduler {address!r}: {problem}") from None
        nthreads = client.nthreads()
        threads = max(1, sum(nthreads.values()))
        if address is None:
            per_worker = max(nthreads.values(), default=1)
            where = (
                f"LocalCluster, {len(nthreads)} worker processes × {per_worker} "
                f"thread{'s' * (per_worker != 1)}"
            )
        else:
            where = f"{address}, {len(nthreads)} workers, {threads} threads"
        yield DaskScheduler(where, threads)


class _NoAbortedGather(logging.Filter):
    """Drops asyncio's report of a Client's gather cut short by ``AllExit``.

    A second Ctrl-C aborts the ``dask.compute`` under way; closing the Client then ends
    its pending gather with ``AllExit``, which asyncio reports, traceback and all, as
    "Task exception was never retrieved" -- after the command's own one line.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return type(exc).__name__ != "AllExit"


def _quiet_aborted_gathers() -> None:
    log = logging.getLogger("asyncio")
    if not any(isinstance(f, _NoAbortedGather) for f in log.filters):
        log.addFilter(_NoAbortedGather())


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored while the LocalCluster starts its processes, which inherit that.

    Ctrl-C reaches every process of the terminal's foreground group: without this the
    workers would die of the first one, which the command means to turn into "finish
    the block of epochs under way, then save and report".  The command alone then hears
    Ctrl-C, and closes the cluster itself.  (A Ctrl-C during the few seconds the cluster
    takes to start is lost.)
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal dispositions belong to the main thread
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
