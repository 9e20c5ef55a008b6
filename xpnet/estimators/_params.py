"""scikit-learn's estimator protocol (parameters by name, a short repr, tags, random_state),
and what the hyperparameters name: the update rule, the schedule, μ and the batch size."""

from __future__ import annotations

import inspect
import numbers
from typing import Any

import numpy as np  # host-side: the random generator

from ..core.optimizers import Optimizer, make_optimizer
from ..training.schedules import Schedule

#: μ for ``learning_rate=None``: the seed's gradient descent takes 0.1, and Adam with
#: mini-batches scikit-learn's 0.001.  Adam's steps are about μ in size whatever the
#: gradient's scale; with one full-batch step per epoch, 0.001 moves a weight at most 0.2
#: in 200 epochs, so full-batch Adam takes 0.01.
DEFAULT_LEARNING_RATE = {"sgd": 0.1, "adam": 0.001, "adam, full batch": 0.01}

#: scikit-learn's mini-batch size for ``batch_size="auto"`` (with Adam).
AUTO_BATCH_SIZE = 200


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
            for name, value in self.get_params(deep=False).items()
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


class Settings:
    """What an estimator's hyperparameters name, worked out once they are checked."""

    def _optimizer(self) -> Optimizer:
        """The update rule the hyperparameters name (validated already)."""
        return make_optimizer(
            self.solver, momentum_=float(self.momentum), nesterovs_momentum=self.nesterovs_momentum,
            beta_1=float(self.beta_1), beta_2=float(self.beta_2), epsilon=float(self.epsilon),
        )  # fmt: skip

    def _schedule(self) -> Schedule:
        """The learning-rate schedule the hyperparameters name."""
        return Schedule(
            self.learning_rate_schedule, self._learning_rate(), power_t=float(self.power_t),
            tol=float(self.tol), n_iter_no_change=_patience(self.n_iter_no_change),
        )  # fmt: skip

    def _learning_rate(self) -> float:
        """μ: ``learning_rate``, or with None the solver's default."""
        if self.learning_rate is not None:
            return float(self.learning_rate)
        if self.solver == "adam" and self.batch_size is None:
            return DEFAULT_LEARNING_RATE["adam, full batch"]
        return DEFAULT_LEARNING_RATE[self.solver]

    def _batch_size(self, N: int) -> int | None:
        """Samples per step for N training samples: ``batch_size``, or for "auto"
        scikit-learn's min(200, N) with Adam and all N (the seed's method) with "sgd"."""
        if self.batch_size != "auto":
            return self.batch_size
        return min(AUTO_BATCH_SIZE, N) if self.solver == "adam" else None


def _patience(n_iter_no_change: Any) -> float:
    """``n_iter_no_change`` as the stopping rules count it: an int, or ``inf`` (never stop)."""
    return float(n_iter_no_change) if float(n_iter_no_change) == np.inf else int(n_iter_no_change)
