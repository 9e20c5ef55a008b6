"""scikit-learn's estimator protocol: parameters by name, a short repr, tags, and random_state."""

from __future__ import annotations

import inspect
import numbers
from typing import Any

import numpy as np  # host-side: the random generator


class EstimatorProtocol:
    """What scikit-learn asks of an estimator besides fitting: its constructor's
    parameters read and set by name (so that ``clone``, pipelines and grid searches
    work), a repr of those that differ from the defaults, and its tags."""

    @classmethod
    def _get_param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [p for p in signature.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The hyperparameters, as passed to the constructor."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params: Any) -> EstimatorProtocol:
        """Set hyperparameters by name; returns the estimator."""
        valid = self._get_param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"Invalid parameter {name!r} for {type(self).__name__}; "
                    f"valid parameters are {valid}."
                )
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {
            name: p.default for name, p in inspect.signature(type(self).__init__).parameters.items()
        }
        changed = [
            f"{name}={value!r}"
            for name, value in self.get_params().items()
            if not (value is defaults[name] or _equal(value, defaults[name]))
        ]
        return f"{type(self).__name__}({', '.join(changed)})"

    def __sklearn_tags__(self) -> Any:
        # Called by scikit-learn only, so importing it here adds no dependency.
        from sklearn.utils import Tags, TargetTags

        tags = Tags(estimator_type=None, target_tags=TargetTags(required=True))
        tags.input_tags.two_d_array = True
        tags.input_tags.sparse = True  # SciPy's sparse X, in any format
        return tags


def _generator(random_state: Any) -> np.random.Generator:
    """A NumPy ``Generator`` from ``random_state`` (None, an int, a Generator or a RandomState)."""
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(np.iinfo(np.int32).max))
    if isinstance(random_state, bool) or not (
        random_state is None or isinstance(random_state, (numbers.Integral, np.random.Generator))
    ):
        raise ValueError(
            f"random_state must be None, an int or a numpy.random.Generator, got {random_state!r}."
        )
    return np.random.default_rng(random_state)


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False
