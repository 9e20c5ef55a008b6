"""The ways to run the core, one module each, and the one function that chooses among them.

- :mod:`~xpnet.engines.eager`: one operation at a time, chunks of samples spread over
  the CPU's cores on NumPy: the reference, and what every other engine falls back to.
- :mod:`~xpnet.engines.fused`: CuPy, the step's elementwise work in fused kernels.
- :mod:`~xpnet.engines.jax`: JAX, a block of full-batch epochs as one compiled program.
- :mod:`~xpnet.engines.torch`: PyTorch, each step compiled, and on CUDA, blocks of
  steps captured as CUDA graphs.
- :mod:`~xpnet.engines.dask`: Dask arrays, the core run once per block of samples.

:func:`choose` is the only place that knows which applies; the estimators and the
``xpnet`` command ask it (the command through :func:`check_engine`).
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from typing import Any

import array_api_compat as aac

from ..core.activations import Activation
from ..core.losses import Objective
from ..core.optimizers import Optimizer
from ..core.step import Step
from ..training.engine import Engine
from ..training.sparse import stored_values
from . import jax as _jax
from . import torch as _torch
from ._dask_graph import block_namespace
from .dask import Dask, is_dask
from .eager import Eager
from .fused import Fused, fused
from .jax import Jax
from .torch import TorchGraphBlocks, TorchStackGraphBlocks, TorchStackSteps, TorchSteps

__all__ = [
    "ENGINES",
    "check_engine",
    "choose",
    "choose_stack",
    "is_dask",
    "jit_stacks",
    "most_per_stack",
]

#: The values of ``engine=``.
ENGINES = ("auto", "eager", "jit")

#: The array libraries ``engine="jit"`` runs on, by module name.
COMPILED_LIBRARIES = ("jax", "torch", "cupy")


def check_engine(engine: str, library: str, *, full_batch: bool | None) -> None:
    """Raise ``ValueError`` if ``engine`` cannot run on ``library``'s arrays.

    Parameters
    ----------
    engine : {"auto", "eager", "jit"}
    library : str
        The arrays' library, by module name (``"numpy"``, ``"torch"``, ...; ``"dask"``
        for Dask arrays, whose blocks are NumPy's unless told otherwise).
    full_batch : bool or None
        Whether each epoch is one step; None if not known yet (the command checks
        before the data are loaded, when only the batch size is known).
    """
    if engine != "jit" or library == "cupy":  # CuPy's kernels serve mini-batches too
        return
    if full_batch is False:
        why = "mini-batches"
    elif library not in COMPILED_LIBRARIES:
        why = f"{library} arrays"
    else:
        return
    raise ValueError(
        f"engine='jit' compiles full-batch training on JAX or PyTorch arrays and "
        f"fuses kernels on CuPy, not {why}; use engine='auto' or 'eager'."
    )


def choose(
    engine: str,
    X: Any,
    *,
    f: Sequence[Activation],
    objective: Objective,
    optimizer: Optimizer | None = None,
    alpha: float = 0.0,
    widest: int,
    batch_size: int | None = None,
    chunk_size: int | None = None,
    n_epochs: int = 1,
) -> Engine:
    """The engine that runs a fit (or a prediction) on the samples X.

    ``engine="eager"`` runs one operation at a time; ``"jit"`` compiles or fuses where
    that exists and refuses otherwise; ``"auto"`` compiles where that is exact and pays
    for itself: JAX arrays, full-batch descent and at least ``MIN_EPOCHS_TO_COMPILE``
    epochs; and Dask's mini-batches, whose graphs cost nothing to build.  (CUDA graphs
    and CuPy's fused kernels are for ``"jit"`` alone until their gain is measured on a
    GPU; CUDA graphs cannot gain anything in fits of 32 epochs or fewer, which pay for a
    warm-up block and a capture first: see ``TorchGraphBlocks``.)  Dask arrays always
    run on the Dask engine.

    Parameters
    ----------
    engine : {"auto", "eager", "jit"}
    X : array of shape (N, n_0), or a sparse matrix (``xpnet.training.sparse``)
        The training samples (after any validation split), or those to predict for.
    f, objective, optimizer, alpha
        The step's parts (``xpnet.core.step.Step``); the optimizer may be None for a
        prediction.
    widest : int
        The largest layer size, for the eager engine's chunks.
    batch_size, chunk_size, n_epochs
        The fit's settings.

    Raises
    ------
    ValueError
        For ``engine="jit"`` where nothing compiles (see :func:`check_engine`).
    """
    N = X.shape[0]
    full_batch = batch_size is None or batch_size >= N
    dask = is_dask(X)
    if dask:  # the parameters are computed on in the blocks' namespace
        xp, device = block_namespace(X)
        library = "dask"
    else:  # a sparse X computes in the namespace of the values it stores
        values = stored_values(X)
        xp, device = aac.array_namespace(values), aac.device(values)
        library = _library(xp, X)
    jit, fusable = engine == "jit", Fused.takes(xp)
    check_engine(engine, "cupy" if fusable else library, full_batch=full_batch)
    how = Step(f, objective, optimizer, alpha, xp)
    settings = dict(device=device, widest=widest, batch_size=batch_size, chunk_size=chunk_size)
    if dask:
        if jit and fusable:  # the blocks' tasks run the fused kernels
            how = fused(how, Fused.make_kernel)
        return Dask(how, epochs_per_graph=engine == "auto", **settings)
    if jit and fusable:
        return Fused(how, **settings)
    if jit and aac.is_torch_namespace(xp):
        on_cuda = getattr(device, "type", None) == "cuda"
        return (TorchGraphBlocks if on_cuda else TorchSteps)(how, **settings)
    on_jax = aac.is_jax_namespace(xp)
    if (
        on_jax
        and full_batch
        and (jit or (engine == "auto" and n_epochs >= _jax.MIN_EPOCHS_TO_COMPILE))
    ):
        return Jax(how, **settings)
    return Eager(how, **settings)


def choose_stack(
    engine: str,
    X: Any,
    *,
    f: Sequence[Activation],
    objective: Objective,
    optimizer: Optimizer,
    widest: int,
    K: int,
    batch_size: int | None = None,
    chunk_size: int | None = None,
) -> Eager:
    """The engine that trains a stack of K networks on the samples X
    (``xpnet.training.stacks``), on X's namespace and device.

    As for one network (:func:`choose`): on JAX, each step compiled (every step of a
    stack has one shape); with ``engine="jit"``, on CuPy the eager engine through the
    fused kernels (mini-batches included), and on PyTorch each full-batch step compiled
    (on CUDA, blocks of them captured as CUDA graphs);
    on Dask arrays (full batch only), a graph per step over X's blocks; elsewhere the
    eager engine, with its chunks planned for the temporaries of K networks.
    ``engine="jit"`` is refused where :func:`jit_stacks` says no.  The other parameters
    are those of :func:`choose`.
    """
    full_batch = batch_size is None or batch_size >= X.shape[0]
    if is_dask(X):  # in full batch, each step a graph of a task per block for the stack
        if engine == "jit" or not full_batch:
            raise ValueError(
                "stacks of networks on Dask arrays train in full batch with engine='auto' "
                f"or 'eager', not engine={engine!r} with batch_size={batch_size!r} on "
                f"{X.shape[0]} samples; fit the others one by one."
            )
        xp, device = block_namespace(X)
        how = Step(f, objective, optimizer, 0.0, xp)
        return Dask(how, device=device, widest=K * widest, batch_size=batch_size)
    xp, device = aac.array_namespace(X), aac.device(X)
    if engine == "jit" and not jit_stacks(X, full_batch=full_batch):
        raise ValueError(
            "engine='jit' compiles stacks of networks on JAX and PyTorch (full batch) and "
            f"fuses their kernels on CuPy, not {_library(xp, X)} arrays"
            f"{' in mini-batches' if not full_batch else ''}; use engine='auto' or 'eager' "
            "to train them as one stack, or fit them one by one."
        )
    how = Step(f, objective, optimizer, 0.0, xp)
    if engine == "jit" and Fused.takes(xp):
        runs: type[Eager] = Fused
    elif engine == "jit" and aac.is_torch_namespace(xp):
        on_cuda = getattr(device, "type", None) == "cuda"
        runs = TorchStackGraphBlocks if on_cuda else TorchStackSteps
    else:
        runs = Jax if aac.is_jax_namespace(xp) else Eager
    return runs(how, device=device, widest=K * widest, batch_size=batch_size, chunk_size=chunk_size)


def jit_stacks(X: Any, *, full_batch: bool) -> bool:
    """Whether ``engine="jit"`` trains stacks of networks on X's arrays: through the fused
    kernels on CuPy, and in full batch compiled on JAX and PyTorch (a single fit with
    ``engine="jit"`` refuses mini-batches there)."""
    if is_dask(X):
        return False
    try:
        xp = aac.array_namespace(X)
    except TypeError:  # not an array of any namespace (a list, a DataFrame)
        return False
    if Fused.takes(xp):
        return True
    return full_batch and (aac.is_jax_namespace(xp) or aac.is_torch_namespace(xp))


def most_per_stack(X: Any, *, n_parameters: int, n_moments: int, widest: int, batch: int,
                   n_layers: int) -> int:  # fmt: skip
    """The most networks a stack on X's device should hold.

    A network of a stack keeps its parameters, their gradients and the optimizer's
    moments, and each step makes one (widest × batch) temporary per layer, plus its
    gathered batch.  On a CPU the stack's step should stay within the cache (beyond it,
    each product streams from farther and stacking gains less); on a GPU, within a
    quarter of the memory free now.  At most 256, at least 1.
    """
    if is_dask(X):  # a task per block holds the stack's temporaries for its block
        xp, device = block_namespace(X)
        batch = min(batch, max(X.chunks[0]))
        budget = DASK_TASK_BYTES
    else:
        xp, device = aac.array_namespace(X), aac.device(X)
        budget = _free_device_memory(xp, device)
        budget = _cache_bytes() if budget is None else budget // 4
    itemsize = xp.finfo(X.dtype).bits // 8
    per_network = itemsize * (
        n_parameters * (2 + n_moments) + widest * batch * (n_layers + 1) + X.shape[1] * batch
    )
    return int(min(256, max(1, budget // per_network)))


#: On Dask, what one block's task may hold of a stack's temporaries.  A task there costs
#: milliseconds of scheduling whatever it computes, so a stack gains from more networks
#: than a CPU's cache holds (on the digits in 4 blocks, 16 networks gained more than 4:
#: ``scripts/bench_stacks.py --backend dask``); 64 MiB stays small beside a worker's
#: memory.
DASK_TASK_BYTES = 64 << 20


def _free_device_memory(xp: Any, device: Any) -> int | None:
    """The free memory of a GPU, in bytes; None on a CPU."""
    if aac.is_cupy_namespace(xp):
        return int(device.mem_info[0])  # a cupy.cuda.Device: (free, total)
    if aac.is_torch_namespace(xp) and getattr(device, "type", None) == "cuda":
        return _torch.free_memory(device)
    return None


def _cache_bytes() -> int:
    """The cache a stack may fill, in bytes: the CPU's largest, as Linux tells it, but at
    most 4 MiB (where Linux does not tell, 4 MiB).  Beyond about twice a core's own
    (level 2) cache, a stack's step streams from the shared cache: on digits (a 64→32→10
    network, batches of 64) stacks of 16 to 40 trained fastest per network, 80 slower
    (``scripts/bench_search.py``; ``max_stack``)."""
    sizes = []
    for index in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*/size"):
        try:
            with open(index) as file:
                text = file.read().strip()
        except OSError:
            continue
        unit = {"K": 1 << 10, "M": 1 << 20}.get(text[-1:], 1)
        if text.rstrip("KM").isdigit():
            sizes.append(int(text.rstrip("KM")) * unit)
    return min(max(sizes, default=4 << 20), 4 << 20)


def _library(xp: Any, X: Any) -> str:
    """The name users know the arrays' library by (JAX's arrays are ``jaxlib``'s)."""
    for name in COMPILED_LIBRARIES:
        if getattr(aac, f"is_{name}_namespace")(xp):
            return name
    return type(X).__module__.split(".")[0]
