"""xpnet's fused kernels run on the CPU: their CUDA C++ bodies compiled by the host's C++ compiler.

A machine without a GPU cannot run ``cupy.ElementwiseKernel``, but the kernels' bodies
(``xpnet.engines.fused.KERNELS``) are plain C++ over ``T``.  :func:`host_kernel` compiles each
body into a loop over the elements, for float and double, and calls it on NumPy arrays
with ``ElementwiseKernel``'s conventions: the inputs, then the outputs to write into (an
output not given is allocated), broadcasting, scalars cast to ``T``, and inputs read
through ``const T&`` references to the arrays themselves, so that an output that is also
an input behaves as it does on the GPU.  The tests then run fits through the fused path
on NumPy arrays and compare them with the generic path.

What this does not check is CUDA's own compilation and math library; the tests of the
``cupy`` backend do, on a GPU.
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from xpnet.engines.fused import KERNELS, NVRTC_OPTIONS, Kernel

COMPILER = shutil.which("g++") or shutil.which("c++")
_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}


def _names(params: str) -> list[str]:
    """The parameter names of a list such as ``"T z, T b"`` (every type is ``T``)."""
    names = []
    for param in params.split(","):
        kind, name = param.split()
        assert kind == "T", f"host kernels take T parameters only, not {param!r}"
        names.append(name)
    return names


def _source(kernels: dict[str, Kernel]) -> str:
    lines = [
        "#include <cmath>",
        "using std::exp; using std::isnan; using std::sqrt; using std::tanh;",
    ]
    for name, k in kernels.items():
        ins, outs = _names(k.in_params), _names(k.out_params)
        args = [f"const T* _raw_{n}" for n in ins] + [f"T* _raw_{n}" for n in outs]
        refs = [f"const T& {n} = _raw_{n}[i];" for n in ins]
        refs += [f"T& {n} = _raw_{n}[i];" for n in outs]
        lines += [
            f"template <typename T> static void {name}(long n, {', '.join(args)}) {{",
            f"  for (long i = 0; i < n; ++i) {{ {' '.join(refs)} {k.operation}; }}",
            "}",
        ]
        for ctype in _TYPES.values():
            c_args = ", ".join(a.replace("T*", f"{ctype}*") for a in args)
            names = ", ".join(f"_raw_{n}" for n in ins + outs)
            body = f"{name}<{ctype}>(n, {names});"
            lines.append(f'extern "C" void {name}_{ctype}(long n, {c_args}) {{ {body} }}')
    return "\n".join(lines) + "\n"


#: Flags for the host compiler.  No contraction of a*b + c into one rounding: the fused
#: kernels are compiled for CUDA without it as well (``xpnet.engines.fused.NVRTC_OPTIONS``).
FLAGS = ("-O2", "-std=c++17", "-ffp-contract=off", "-shared", "-fPIC")


@functools.cache
def _library() -> ctypes.CDLL:
    """The kernels compiled into one shared library, once per test session, in a
    directory of this process's own."""
    if COMPILER is None:
        raise RuntimeError("no C++ compiler (g++ or c++) on PATH")
    build = Path(tempfile.mkdtemp(prefix="xpnet-host-kernels-"))
    atexit.register(shutil.rmtree, build, ignore_errors=True)
    source, library = build / "kernels.cpp", build / "kernels.so"
    source.write_text(_source(KERNELS))
    subprocess.run(
        [COMPILER, *FLAGS, str(source), "-o", str(library)], check=True, capture_output=True
    )
    return ctypes.CDLL(str(library))


class HostKernel:
    """One fused kernel, callable on NumPy arrays like ``cupy.ElementwiseKernel``.

    Like CuPy's kernel, it keeps the functions it has run, one per dtype: handles valid
    in this process alone, which cannot be pickled (CuPy's kernel pickles its own as raw
    device pointers).
    """

    def __init__(self, name: str, kernel: Kernel) -> None:
        self.name = name
        self.nin, self.nout = len(_names(kernel.in_params)), len(_names(kernel.out_params))
        self.calls = 0  # how often it ran: tests check that the fused path is taken
        self._functions: dict[np.dtype, Any] = {}

    def __call__(self, *args: Any) -> Any:
        if not self.nin <= len(args) <= self.nin + self.nout:
            raise TypeError(f"{self.name} takes {self.nin} inputs and up to {self.nout} outputs")
        ins, outs = args[: self.nin], list(args[self.nin :])
        outs += [None] * (self.nout - len(outs))
        dtypes = {a.dtype for a in [*ins, *outs] if isinstance(a, np.ndarray)}
        if len(dtypes) != 1 or next(iter(dtypes)) not in _TYPES:
            raise TypeError(f"{self.name}: one float dtype for every array, got {dtypes}")
        dtype = dtypes.pop()
        shape = np.broadcast_shapes(*(np.shape(a) for a in [*ins, *outs] if a is not None))
        # An array of the full shape is read where it lies (so that aliasing is as on the
        # GPU); a broadcast array or a scalar is made whole first, cast to T.
        ins = [a if _whole(a, shape) else _made_whole(a, dtype, shape) for a in ins]
        for o in outs:
            if o is not None and not (_whole(o, shape) and o.flags.writeable):
                raise ValueError(f"{self.name}: an output must be whole, C-contiguous, writeable")
        outs = [np.empty(shape, dtype) if o is None else o for o in outs]
        function = self._functions.get(dtype)
        if function is None:
            function = self._functions[dtype] = getattr(_library(), f"{self.name}_{_TYPES[dtype]}")
        pointers = [ctypes.c_void_p(a.ctypes.data) for a in [*ins, *outs]]
        function(ctypes.c_long(int(np.prod(shape))), *pointers)
        self.calls += 1
        return outs[0] if self.nout == 1 else tuple(outs)


def _whole(a: Any, shape: tuple[int, ...]) -> bool:
    return isinstance(a, np.ndarray) and a.shape == shape and a.flags.c_contiguous


def _made_whole(a: Any, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    return np.ascontiguousarray(np.broadcast_to(np.asarray(a, dtype), shape))


@functools.cache
def host_kernel(name: str, kernel: Kernel) -> HostKernel:
    """``make_kernel`` for ``xpnet.engines.fused.fused``: the kernel on the CPU."""
    return HostKernel(name, kernel)


def calls() -> dict[str, int]:
    """How often each kernel has run on the host in this process, by name."""
    return {name: host_kernel(name, k).calls for name, k in KERNELS.items()}


def cuda_source_compiles(kernel: Kernel, name: str, dtype: Any) -> None:
    """Compile ``kernel`` for ``dtype`` as CuPy would, with NVRTC, and raise if it fails.

    CuPy writes the kernel's source from its parameter lists and body, then compiles it
    with NVRTC; neither step needs a GPU.  This takes CuPy's own source writer (a private
    function, so this check belongs to the tests) and NVRTC with CuPy's headers and
    options and xpnet's, for a current architecture, in the three forms xpnet calls a
    kernel in: on whole 1-D arrays (CuPy reduces a whole array to one dimension); on
    2-D arrays some of which are broadcast, as b[:, None] is; and for a stack, on 3-D
    arrays, the update's constants among them (one per network, broadcast).
    """
    import cupy
    import cupy._core._kernel as cupy_kernel
    import cupy.cuda.compiler as compiler
    from cupy._core import _carray, _scalar, core

    ek = cupy.ElementwiseKernel(
        kernel.in_params, kernel.out_params, kernel.operation, name=f"xpnet_{name}"
    )
    n_in, n_out = len(_names(kernel.in_params)), len(_names(kernel.out_params))
    scalar = cupy_kernel._ArgInfo(3, _scalar.CScalar, np.dtype(dtype), 0, True, True)
    type_map = cupy_kernel._TypeMap((("T", np.dtype(dtype)),))
    header = "".join(f"#include <{h}>\n" for h in core._cupy_header_list)  # as CuPy's
    # CuPy's own compiler options (its headers, CCCL's, CUDA's), xpnet's, and a current
    # architecture.
    options = (*core.assemble_cupy_compiler_options(()), *NVRTC_OPTIONS, "-arch=compute_90")
    for ndim, contiguous, scalars in ((1, True, kernel.scalars), (2, False, kernel.scalars),
                                      (3, False, 0)):  # fmt: skip
        array = cupy_kernel._ArgInfo(1, cupy.ndarray, np.dtype(dtype), ndim, contiguous, True)
        infos = [array] * (n_in - scalars) + [scalar] * scalars + [array] * n_out
        infos.append(cupy_kernel._ArgInfo(2, _carray.Indexer, None, ndim, True, True))
        code = cupy_kernel._get_elementwise_kernel_code(
            tuple(infos), type_map, ek.params, ek.operation, ek.name, ek.preamble
        )
        program = compiler._NVRTCProgram(header + code, f"xpnet_{name}.cu")
        program.compile(options)
