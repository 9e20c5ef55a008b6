"""Moving small arrays from a device to the host: the only place xpnet reads device data back."""

from __future__ import annotations

from typing import Any

import array_api_compat as aac
import numpy as np  # host-side by definition


def to_numpy(x: Any) -> np.ndarray:
    """Copy an array of any supported namespace, on any device, to a NumPy array.

    Each call is a host synchronisation on an asynchronous device: callers batch
    what they read (a whole loss history at once, not one value per epoch).
    """
    if aac.is_numpy_array(x):
        return x
    if aac.is_cupy_array(x):
        return x.get()
    if aac.is_torch_array(x):
        return x.detach().cpu().numpy()
    if aac.is_dask_array(x):
        return to_numpy(x.compute())  # through the blocks' library: CuPy blocks too
    if aac.is_array_api_strict_namespace(aac.array_namespace(x)):
        import array_api_strict

        return np.asarray(x.to_device(array_api_strict.Device("CPU_DEVICE")))
    return np.asarray(x)  # JAX and any namespace that speaks NumPy's protocols
