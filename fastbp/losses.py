"""Loss layers: MSELoss and CrossEntropyLoss.

``loss.forward(y, t)`` (also ``loss(y, t)``) returns the loss value as a float
and computes the gradient with respect to y in the same pass;
``loss.backward()`` returns that gradient, ready for ``model.backward``.
``loss.value(y, t)`` returns the value alone and leaves the gradient of the
last ``forward`` untouched, for evaluating between a step's forward and
backward passes.

Each loss is declared once with :func:`fastbp.parts.register`: its name, its
code in the fused kernel, its hyperparameters and the kind of target it
takes (``"values"``: floats shaped like the output; ``"labels"``: one integer
class index per row).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ._validate import check_array
from .kernels.losses import (
    CROSS_ENTROPY_HYPER,
    LOSS_CROSS_ENTROPY,
    LOSS_MSE,
    MSE_HYPER,
    mse_backward,
    mse_forward,
    softmax_cross_entropy_backward,
    softmax_cross_entropy_forward,
)
from .layers import buffer
from .parts import Part, register

__all__ = ["Loss", "MSELoss", "CrossEntropyLoss"]


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

    def _check(self, y: NDArray, t: NDArray) -> None:
        self._check_output(y)
        check_array(t, repr(self), "target t", dtype=y.dtype, ndim=y.ndim)
        if t.shape != y.shape:
            raise ValueError(
                f"{self!r}: target shape {t.shape} does not match output shape "
                f"{y.shape}"
            )

    def forward(self, y: NDArray, t: NDArray) -> float:
        self._check(y, t)
        return mse_backward(y, t, self.mean, self._grad_buffer(y))

    def value(self, y: NDArray, t: NDArray) -> float:
        self._check(y, t)
        return mse_forward(y, t, self.mean)


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
        return softmax_cross_entropy_backward(y, labels, self._grad_buffer(y))

    def value(self, y: NDArray, t: NDArray) -> float:
        return softmax_cross_entropy_forward(y, self._labels(y, t))
