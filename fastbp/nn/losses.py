"""Loss layers: MSELoss, CrossEntropyLoss, and the losses of scikit-learn's
MLPs, SquaredErrorLoss and BinaryCrossEntropyLoss.

``loss.forward(y, t)`` (also ``loss(y, t)``) returns the loss value as a float
and computes the gradient with respect to y in the same pass;
``loss.backward()`` returns that gradient, ready for ``model.backward``.
``loss.value(y, t)`` returns the value alone and leaves the gradient of the
last ``forward`` untouched, for evaluating between a step's forward and
backward passes. ``loss.numpy_value(y, t)`` is the same value computed by
NumPy alone (no compiled kernel: evaluating a few rows loads none), for the
built-in losses; a loss without it is evaluated by ``value``.

Each loss is declared once with :func:`fastbp.parts.register`: its name, its
code in the fused kernel, its hyperparameters and the kind of target it
takes (``"values"``: floats shaped like the output; ``"labels"``: one integer
class index per row).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .._compat import LazyModule
from .._validate import check_array
from ..kernels.codes import (
    BINARY_CROSS_ENTROPY_HYPER,
    CROSS_ENTROPY_HYPER,
    LOSS_BINARY_CROSS_ENTROPY,
    LOSS_CROSS_ENTROPY,
    LOSS_MSE,
    LOSS_SQUARED_ERROR,
    MSE_HYPER,
    SQUARED_ERROR_HYPER,
)
from .layers import buffer
from .parts import Part, register

#: The loss kernels, imported (with Numba) by the first forward or value.
_losses = LazyModule("fastbp.kernels.losses")

__all__ = [
    "Loss",
    "MSELoss",
    "CrossEntropyLoss",
    "SquaredErrorLoss",
    "BinaryCrossEntropyLoss",
]


class Loss:
    """Base class: ``forward(y, t) -> float``, ``backward() -> dL/dy``,
    ``value(y, t) -> float``.

    The output y need not be finite: a diverging model gives a NaN or
    infinite loss, which is how training notices divergence.
    """

    #: The registry's declaration (set by ``register``; inherited).
    part: Part | None = None

    @property
    def target(self) -> str:
        """``"values"`` or ``"labels"``: what this loss compares outputs with."""
        part = type(self).part
        return part.target if part is not None else "values"

    def __call__(self, y: NDArray, t: NDArray) -> float:
        return self.forward(y, t)

    def forward(self, y: NDArray, t: NDArray) -> float:
        raise NotImplementedError

    def value(self, y: NDArray, t: NDArray) -> float:
        raise NotImplementedError

    def backward(self) -> NDArray:
        grad = self.__dict__.get("_grad")
        if grad is None:
            raise RuntimeError(f"{self!r}: backward() called before forward()")
        return grad

    def _grad_buffer(self, y: NDArray) -> NDArray:
        return buffer(self, "_grad", y.shape, y.dtype)

    def _check_output(self, y: NDArray) -> NDArray:
        return check_array(y, repr(self), "output y", dtype=None, ndim=2, finite=False)

    def _check_values(self, y: NDArray, t: NDArray) -> None:
        """y a 2-D float output and t a target of its shape and dtype."""
        self._check_output(y)
        check_array(t, repr(self), "target t", dtype=y.dtype, ndim=y.ndim)
        if t.shape != y.shape:
            raise ValueError(
                f"{self!r}: target shape {t.shape} does not match output shape "
                f"{y.shape}"
            )


@register("loss", "mse", code=LOSS_MSE, hyper=MSE_HYPER, target="values")
class MSELoss(Loss):
    """Mean squared error between the output y and the target t.

    Parameters
    ----------
    reduction : {"mean", "sum"}
        "mean": L = sum((y - t)**2) / y.size, gradient 2 (y - t) / y.size, as
        ``torch.nn.MSELoss()``. "sum": L = 0.5 * sum((y - t)**2), gradient
        y - t, the classic from-scratch MSE layer.

    Shape
    -----
    y, t: (n_samples, n_outputs), same float dtype.
    """

    def __init__(self, reduction: str = "mean") -> None:
        if reduction not in ("mean", "sum"):
            raise ValueError(
                f"MSELoss: reduction must be 'mean' or 'sum', got {reduction!r}"
            )
        self.reduction = reduction

    @property
    def mean(self) -> bool:
        """True for reduction="mean" (the kernels' form of the setting)."""
        return self.reduction == "mean"

    def __repr__(self) -> str:
        return f"MSELoss(reduction={self.reduction!r})"

    def forward(self, y: NDArray, t: NDArray) -> float:
        self._check_values(y, t)
        return _losses.mse_backward(y, t, self.mean, self._grad_buffer(y))

    def value(self, y: NDArray, t: NDArray) -> float:
        self._check_values(y, t)
        return _losses.mse_forward(y, t, self.mean)

    def numpy_value(self, y: NDArray, t: NDArray) -> float:
        """:meth:`value` by NumPy, y and t as checked by ``value``."""
        squares = _sum_of_squares(y, t)
        return squares / y.size if self.mean else 0.5 * squares


@register(
    "loss",
    "ce",
    code=LOSS_CROSS_ENTROPY,
    hyper=CROSS_ENTROPY_HYPER,
    target="labels",
)
class CrossEntropyLoss(Loss):
    """Softmax cross-entropy of logits y against integer class labels t.

    L = mean_i (logsumexp(y[i]) - y[i, t[i]]), computed stably; gradient
    (softmax(y) - onehot(t)) / n_samples. Like ``torch.nn.CrossEntropyLoss``,
    it applies the softmax itself: the model's last layer is a Linear.

    Shape
    -----
    y: (n_samples, n_classes), float; t: (n_samples,), integer in
    [0, n_classes).
    """

    def __repr__(self) -> str:
        return "CrossEntropyLoss()"

    def _labels(self, y: NDArray, t: NDArray) -> NDArray:
        self._check_output(y)
        if not isinstance(t, np.ndarray) or t.dtype.kind not in "iu":
            got = t.dtype if isinstance(t, np.ndarray) else type(t).__name__
            raise TypeError(f"{self!r}: labels t must be an integer array, got {got}")
        if t.shape != (y.shape[0],):
            raise ValueError(
                f"{self!r}: labels t have shape {t.shape}, expected ({y.shape[0]},) "
                f"for output shape {y.shape}"
            )
        labels = np.ascontiguousarray(t, dtype=np.int64)
        if labels.size and (labels.min() < 0 or labels.max() >= y.shape[1]):
            raise ValueError(
                f"{self!r}: labels must lie in [0, {y.shape[1]}) for output shape "
                f"{y.shape}, got values in [{labels.min()}, {labels.max()}]"
            )
        return labels

    def forward(self, y: NDArray, t: NDArray) -> float:
        labels = self._labels(y, t)
        return _losses.softmax_cross_entropy_backward(y, labels, self._grad_buffer(y))

    def value(self, y: NDArray, t: NDArray) -> float:
        return _losses.softmax_cross_entropy_forward(y, self._labels(y, t))

    def numpy_value(self, y: NDArray, t: NDArray) -> float:
        """:meth:`value` by NumPy: mean of logsumexp(y[i]) - y[i, t[i]]."""
        y = y.astype(np.float64)
        top = np.max(y, axis=1, keepdims=True)
        with np.errstate(invalid="ignore", over="ignore"):  # a diverged model
            lse = top[:, 0] + np.log(np.sum(np.exp(y - top), axis=1))
        picked = y[np.arange(y.shape[0]), self._labels(y, t)]
        return float(np.mean(lse - picked))


class _ValueLoss(Loss):
    """A loss of float targets shaped like the output, computed by one loss
    kernel ``kernel(y, t, dy) -> value`` (named by ``_kernel``) that writes
    the gradient too."""

    _kernel = ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def forward(self, y: NDArray, t: NDArray) -> float:
        self._check_values(y, t)
        return getattr(_losses, self._kernel)(y, t, self._grad_buffer(y))

    def value(self, y: NDArray, t: NDArray) -> float:
        self._check_values(y, t)
        return getattr(_losses, self._kernel)(y, t, np.empty_like(y))


@register(
    "loss",
    "squared_error",
    code=LOSS_SQUARED_ERROR,
    hyper=SQUARED_ERROR_HYPER,
    target="values",
)
class SquaredErrorLoss(_ValueLoss):
    """Half squared error, summed over outputs and averaged over rows.

    L = 0.5 * sum((y - t)**2) / n_samples, gradient (y - t) / n_samples: the
    loss scikit-learn's MLPRegressor trains with (for one output also the
    value it reports as ``loss_``).

    Shape
    -----
    y, t: (n_samples, n_outputs), same float dtype.
    """

    _kernel = "squared_error_backward"

    def numpy_value(self, y: NDArray, t: NDArray) -> float:
        """:meth:`value` by NumPy: 0.5 * sum((y - t)**2) / n_samples."""
        return 0.5 * _sum_of_squares(y, t) / y.shape[0]


@register(
    "loss",
    "binary_ce",
    code=LOSS_BINARY_CROSS_ENTROPY,
    hyper=BINARY_CROSS_ENTROPY_HYPER,
    target="values",
)
class BinaryCrossEntropyLoss(_ValueLoss):
    """Sigmoid binary cross-entropy of logits y against 0/1 targets t.

    L = sum(log(1 + exp(y)) - t * y) / n_samples, computed stably: the
    cross-entropy of p = sigmoid(y), summed over outputs (independent binary
    labels) and averaged over rows; gradient (sigmoid(y) - t) / n_samples.
    Like ``torch.nn.BCEWithLogitsLoss(reduction="sum") / n_samples``, it
    applies the sigmoid itself: the model's last layer is a Linear. The loss
    of scikit-learn's MLPClassifier for two classes and for multi-label
    targets.

    Shape
    -----
    y, t: (n_samples, n_outputs), same float dtype.
    """

    _kernel = "binary_cross_entropy_backward"

    def numpy_value(self, y: NDArray, t: NDArray) -> float:
        """:meth:`value` by NumPy: sum(log(1 + exp(y)) - t * y) / n_samples."""
        y, t = y.astype(np.float64), t.astype(np.float64)
        with np.errstate(invalid="ignore", over="ignore"):  # a diverged model
            return float(np.sum(np.logaddexp(0.0, y) - t * y) / y.shape[0])


def _sum_of_squares(y: NDArray, t: NDArray) -> float:
    """sum((y - t)**2) in float64."""
    with np.errstate(invalid="ignore", over="ignore"):  # a diverged model
        return float(np.sum(np.square(y.astype(np.float64) - t)))
