"""The boundary: checks on user input and hyperparameters, with errors that name the bad value.

Everything that inspects user arrays lives here.  An accepted ``X`` comes back in its
own namespace and on its own device, in a floating dtype, and is never written to:
conversion copies only where the dtype has to change, and the finiteness check
allocates nothing of X's size.  A sparse X (SciPy's, or cupyx's on CuPy) stays sparse,
in CSR form (``xpnet.training.sparse``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import array_api_compat as aac
import numpy as np  # host-side: lists, pandas objects and NumPy object arrays enter here

from ..core.activations import HIDDEN_ACTIVATIONS
from ..core.losses import LOSSES, OBJECTIVES
from ..engines import ENGINES
from ..training.samples import check_finite
from ..training.sparse import is_sparse, stored_values

Array = Any


def is_array(x: Any) -> bool:
    """Whether ``x`` is a dense array of a namespace xpnet can compute with."""
    return aac.is_array_api_obj(x) and not _is_sparse(x)


def _is_sparse(x: Any) -> bool:
    return is_sparse(x) or aac.is_pydata_sparse_array(x)


def as_array(x: Any, name: str, *, numeric: bool = True) -> tuple[Array, Any]:
    """``x`` as an array of a supported namespace, and that namespace.

    Arrays of a supported namespace are returned as they are.  Array-likes (lists,
    pandas objects) are converted to NumPy on the host; with ``numeric``, NumPy arrays
    of objects or text are converted to float64 as well (class labels keep theirs).
    """
    if _is_sparse(x):
        raise TypeError(
            f"{name} is a sparse matrix ({type(x).__name__}); xpnet takes a sparse X "
            f"(scipy.sparse), but {name} must be dense: convert it with {name}.toarray()."
        )
    if x is None:
        raise TypeError(f"{name} must be an array, got None.")
    if not is_array(x):
        x = np.asarray(x)
    if not getattr(x.dtype, "isnative", True):
        # Big-endian data on a little-endian machine (or the reverse), as files written
        # elsewhere give: NumPy's dtype ">f8" is no float64 to the namespace, and would
        # be trained in float32.  Converted to the same type in the machine's order.
        x = x.astype(x.dtype.newbyteorder("="))
    if numeric and aac.is_numpy_array(x) and x.dtype.kind in "OUS":
        try:
            x = x.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{name} must hold numbers: {exc}") from None
    if any(n is None or n != n for n in x.shape):  # None or NaN (n != n): not known
        raise ValueError(
            f"{name} has unknown dimensions, shape {tuple(x.shape)}: a lazy array whose "
            "size depends on its values, such as a Dask array after boolean indexing. "
            f"Compute its sizes first (for Dask: {name}.compute_chunk_sizes())."
        )
    return x, aac.array_namespace(x)


def _float_dtype(x: Array, xp: Any, device: Any, name: str) -> Any:
    """The floating dtype ``x`` is computed in: its own, or the namespace's default."""
    if xp.isdtype(x.dtype, "complex floating"):
        raise ValueError(f"Complex data not supported: {name} has dtype {x.dtype}.")
    if x.dtype in (xp.float32, xp.float64):
        return x.dtype
    if xp.isdtype(x.dtype, "real floating"):  # float16, bfloat16: too coarse to train in
        return xp.float32
    if xp.isdtype(x.dtype, ("integral", "bool")):
        return xp.__array_namespace_info__().default_dtypes(device=device)["real floating"]
    raise TypeError(f"{name} must hold numbers, got dtype {x.dtype}.")


def check_X(
    X: Any, *, n_features: int | None = None, estimator: str = "the estimator"
) -> tuple[Array, Any, Any]:
    """Validate the feature matrix at the boundary.

    Parameters
    ----------
    X : array or array-like of shape (N, n_features)
    n_features : int, optional
        The number of features the estimator was fitted with.
    estimator : str
        The estimator's name, for messages.

    Returns
    -------
    X : array of shape (N, n_features), or a sparse matrix
        In its own namespace and on its own device, in a floating dtype (a copy only
        where the dtype changed).  A sparse X comes back as a CSR matrix of the same
        library (a copy of its stored values only where it was in another format or
        the dtype changed).
    xp : array namespace
        Of X, or of the values a sparse X stores.
    device : the device of X
    """
    if aac.is_pydata_sparse_array(X):
        raise TypeError(
            f"X is a pydata sparse array ({type(X).__name__}); xpnet takes scipy.sparse "
            "matrices and arrays: convert it with X.tocsr()."
        )
    sparse = is_sparse(X)
    if not sparse:
        X, xp = as_array(X, "X")
    if len(X.shape) != 2:
        raise ValueError(
            f"Expected a 2-D array X of shape (n_samples, n_features), got {len(X.shape)}-D "
            f"with shape {tuple(X.shape)}. Reshape your data with X.reshape(-1, 1) if it "
            "has one feature, or X.reshape(1, -1) if it is one sample."
        )
    if sparse:
        # A batch is a range of rows, and the chunks of Xᵀ ranges of columns: cheap to
        # take from CSR (and from Xᵀ, its CSC view), not from another format.
        X = X if X.format == "csr" else X.tocsr()
        xp = aac.array_namespace(X.data)
    device = aac.device(stored_values(X))
    dtype = _float_dtype(stored_values(X), xp, device, "X")
    N, n = X.shape
    if N == 0:
        raise ValueError(f"Found array with 0 sample(s) (shape={tuple(X.shape)}); need at least 1.")
    if n == 0:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={tuple(X.shape)}) while a minimum of 1 "
            "is required."
        )
    if n_features is not None and n != n_features:
        raise ValueError(
            f"X has {n} features, but {estimator} is expecting {n_features} features as input."
        )
    if X.dtype != dtype:
        X = X.astype(dtype) if sparse else xp.astype(X, dtype)
    # NaN and infinity are looked for by the engine, where it reads X anyway (on Dask a
    # pass of its own would read X once more, from storage perhaps).
    return X, xp, device


def check_targets(y: Any, *, xp: Any, device: Any, dtype: Any, N: int) -> Array:
    """Validate regression targets and move them to X's namespace, device and dtype.

    Parameters
    ----------
    y : array or array-like of shape (N,) or (N, n_outputs)
        In X's namespace, or any host array-like (list, NumPy, pandas).

    Returns
    -------
    y : array of shape (N,) or (N, n_outputs), in ``xp`` on ``device``, of ``dtype``
    """
    y = host_or_namespace(y, xp=xp, name="y")
    if y.ndim not in (1, 2):
        raise ValueError(
            f"y must have shape (n_samples,) or (n_samples, n_outputs), got {y.shape}."
        )
    if y.shape[0] != N:
        raise ValueError(f"X has {N} samples but y has {y.shape[0]}; they must match.")
    if y.ndim == 2 and y.shape[1] == 0:
        raise ValueError(f"y has 0 outputs (shape={tuple(y.shape)}); need at least 1.")
    ns = aac.array_namespace(y)
    if ns.isdtype(y.dtype, "complex floating"):
        raise ValueError(f"Complex data not supported: y has dtype {y.dtype}.")
    if not ns.isdtype(y.dtype, ("real floating", "integral", "bool")):
        raise TypeError(f"y must hold numbers, got dtype {y.dtype}.")
    y = xp.asarray(y, dtype=dtype, device=device)
    check_finite(y, xp, "y")
    return y


def host_or_namespace(y: Any, *, xp: Any, name: str, numeric: bool = True) -> Array:
    """``y`` as an array of ``xp``, or failing that as a host (NumPy) array.

    Targets may come in X's namespace or as any host array-like; an array of a third
    namespace (a PyTorch ``y`` for a CuPy ``X``) is refused rather than moved implicitly.
    """
    y, ns = as_array(y, name, numeric=numeric)
    if ns is not xp and not aac.is_numpy_namespace(ns):
        raise TypeError(
            f"{name} is a {type(y).__module__}.{type(y).__name__} but X is an array of "
            f"{xp.__name__}; pass {name} in X's namespace or as a NumPy array or list."
        )
    return y


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def check_hyperparameters(est: Any, *, natural_output: dict[str, str]) -> tuple[list[int], str]:
    """Validate an estimator's hyperparameters.

    Parameters
    ----------
    est : estimator
    natural_output : dict
        The output activation each loss implies when ``output_activation`` is None.

    Returns
    -------
    hidden : list of int
        The hidden layer sizes n_1 .. n_{L-1}.
    output_activation : str
        The output activation, with ``None`` resolved to the loss's natural one.
    """
    sizes = est.hidden_layer_sizes
    if _is_int(sizes):
        sizes = (sizes,)
    if not isinstance(sizes, Sequence) or isinstance(sizes, str):
        raise TypeError(f"hidden_layer_sizes must be an int or a sequence of ints, got {sizes!r}.")
    for n in sizes:
        if not _is_int(n):
            raise TypeError(f"hidden_layer_sizes must hold ints, got {n!r} in {sizes!r}.")
        if n <= 0:
            raise ValueError(f"hidden_layer_sizes must be > 0, got {n!r} in {sizes!r}.")
    if est.activation not in HIDDEN_ACTIVATIONS:
        raise ValueError(f"activation must be one of {HIDDEN_ACTIVATIONS}, got {est.activation!r}.")
    # The estimator's natural outputs name the losses it takes (the regressor's poisson).
    losses = tuple(loss for loss in LOSSES if loss in natural_output)
    if est.loss not in losses:
        raise ValueError(f"loss must be one of {losses}, got {est.loss!r}.")
    output = est.output_activation
    if output is None:
        output = natural_output[est.loss]
    # A classifier's outputs must be probabilities: its class narrows the choice.
    usable = getattr(est, "_usable_outputs", None)
    allowed = tuple(
        f for (loss, f) in OBJECTIVES if loss == est.loss and (usable is None or f in usable)
    )
    if output not in allowed:
        # Only an output the user set can be wrong: None is the loss's natural one.
        raise ValueError(
            f"output_activation={output!r} does not go with loss={est.loss!r}; "
            f"choose one of {allowed}, or None for the loss's natural output."
        )
    mu = est.learning_rate
    if mu is not None and (not _is_real(mu) or not 0.0 < float(mu) < np.inf):
        raise ValueError(f"learning_rate must be None or a positive finite number, got {mu!r}.")
    if not _is_int(est.max_iter) or est.max_iter < 1:
        raise ValueError(f"max_iter must be an int >= 1, got {est.max_iter!r}.")
    B = est.batch_size
    if not (B is None or (isinstance(B, str) and B == "auto") or (_is_int(B) and B >= 1)):
        raise ValueError(f"batch_size must be 'auto', None or an int >= 1, got {B!r}.")
    if est.chunk_size is not None and (not _is_int(est.chunk_size) or est.chunk_size < 1):
        raise ValueError(f"chunk_size must be None or an int >= 1, got {est.chunk_size!r}.")
    if not isinstance(est.shuffle, bool):
        raise TypeError(f"shuffle must be True or False, got {est.shuffle!r}.")
    if not isinstance(est.early_stopping, bool):
        raise TypeError(f"early_stopping must be True or False, got {est.early_stopping!r}.")
    fraction = est.validation_fraction
    if not _is_real(fraction) or not 0.0 < float(fraction) < 1.0:
        raise ValueError(f"validation_fraction must be a number in (0, 1), got {fraction!r}.")
    n = est.n_iter_no_change
    if not ((_is_int(n) and n >= 1) or (_is_real(n) and float(n) == math.inf)):
        raise ValueError(f"n_iter_no_change must be an int >= 1 or numpy.inf, got {n!r}.")
    if not _is_real(est.tol) or not 0.0 <= float(est.tol) < np.inf:
        raise ValueError(f"tol must be a finite number >= 0, got {est.tol!r}.")
    _check_optimizer(est)
    return [int(n) for n in sizes], output


SOLVERS = ("sgd", "adam", "lbfgs")
SCHEDULES = ("constant", "invscaling", "adaptive")


def _check_optimizer(est: Any) -> None:
    """Validate the update rule's and the learning-rate schedule's hyperparameters."""
    if est.solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {est.solver!r}.")

    def number(name: str, low: float, high: float, *, closed: str) -> None:
        v = getattr(est, name)
        ok = _is_real(v) and low <= float(v) <= high
        ok = ok and (closed[0] == "[" or float(v) != low) and (closed[1] == "]" or float(v) != high)
        if not ok:
            raise ValueError(
                f"{name} must be a number in {closed[0]}{low}, {high}{closed[1]}, got {v!r}."
            )

    number("momentum", 0.0, 1.0, closed="[]")
    number("beta_1", 0.0, 1.0, closed="[)")
    number("beta_2", 0.0, 1.0, closed="[)")
    number("epsilon", 0.0, np.inf, closed="()")
    number("alpha", 0.0, np.inf, closed="[)")
    number("power_t", 0.0, np.inf, closed="[)")
    if not isinstance(est.nesterovs_momentum, bool):
        raise TypeError(
            f"nesterovs_momentum must be True or False, got {est.nesterovs_momentum!r}."
        )
    if est.learning_rate_schedule not in SCHEDULES:
        raise ValueError(
            f"learning_rate_schedule must be one of {SCHEDULES}, "
            f"got {est.learning_rate_schedule!r}."
        )
    if est.solver == "adam" and est.learning_rate_schedule != "constant":
        raise ValueError(
            f"learning_rate_schedule={est.learning_rate_schedule!r} applies to solver='sgd' "
            "only: Adam adapts its own step sizes. Use learning_rate_schedule='constant'."
        )
    if not _is_int(est.max_fun) or est.max_fun < 1:
        raise ValueError(f"max_fun must be an int >= 1, got {est.max_fun!r}.")
    if est.engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {est.engine!r}.")
    if not (isinstance(est.verbose, bool) or (_is_int(est.verbose) and est.verbose >= 0)):
        raise ValueError(f"verbose must be True, False or an int >= 0, got {est.verbose!r}.")


def check_sample_weight(
    sample_weight: Any, *, xp: Any, device: Any, dtype: Any, N: int
) -> tuple[Array, np.ndarray]:
    """Validate sample weights; return them on the device and on the host.

    Parameters
    ----------
    sample_weight : array, array-like of shape (N,), or a number
        A number weighs every sample the same.  In X's namespace or on the host.

    Returns
    -------
    s : array of shape (N,), in ``xp`` on ``device``, of ``dtype``
    s_host : numpy.ndarray of shape (N,), the same values (the training loop sums
        batches of them without reading the device)

    Raises
    ------
    ValueError
        For weights of the wrong shape, NaN, infinite or negative weights, or weights
        that are all zero.
    """
    if _is_real(sample_weight):
        sample_weight = np.full(N, float(sample_weight))
    s = host_or_namespace(sample_weight, xp=xp, name="sample_weight")
    if s.ndim != 1 or s.shape[0] != N:
        raise ValueError(
            f"sample_weight must have shape ({N},), one weight per sample, "
            f"got shape {tuple(s.shape)}."
        )
    ns = aac.array_namespace(s)
    if not ns.isdtype(s.dtype, ("real floating", "integral", "bool")):
        raise TypeError(f"sample_weight must hold real numbers, got dtype {s.dtype}.")
    from .._host import to_numpy  # the weights are read once, here at the boundary

    s_host = np.asarray(to_numpy(s), dtype=np.float32 if xp.finfo(dtype).bits == 32 else np.float64)
    if not np.all(np.isfinite(s_host)):
        raise ValueError("sample_weight contains NaN or infinity; weights must be finite.")
    if np.any(s_host < 0):
        raise ValueError(
            f"sample_weight must be >= 0, got {s_host[s_host < 0][:3].tolist()} among them."
        )
    if not np.any(s_host > 0):
        raise ValueError("sample_weight is zero for every sample: there is nothing to learn from.")
    return xp.asarray(s_host, dtype=dtype, device=device), s_host
