"""Gradient check: backprop's gradients against central differences.

The numerical derivative (f(w + h) - f(w - h)) / 2h is accurate to O(h^2) but
costs two forward passes per parameter element; backprop gets every gradient
for about the cost of one. So the numerical one is only ever a test of the
analytic one.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .._validate import real_in
from .layers import Layer, Sequential
from .losses import Loss

__all__ = ["gradcheck", "GradcheckResult", "numerical_gradient"]


@dataclass(frozen=True)
class GradcheckResult:
    """Per-parameter comparison of analytic and numerical gradients.

    ``relative[name]`` is max_i |a_i - n_i| / max_i max(|a_i|, |n_i|): the
    largest difference between the analytic gradient a and the numerical one
    n, relative to the largest gradient entry of that parameter (0 when both
    are exactly zero). Scaling by the parameter's largest entry rather than by
    each entry keeps near-zero entries, where the finite difference's rounding
    error (~1e-16 |f| / h) dominates, from reporting noise as error.
    """

    relative: dict[str, float]
    absolute: dict[str, float]

    @property
    def max_relative(self) -> float:
        return max(self.relative.values(), default=0.0)

    def __str__(self) -> str:
        width = max((len(n) for n in self.relative), default=9)
        lines = [f"{'parameter':<{width}}  relative error  absolute error"]
        for name, rel in self.relative.items():
            lines.append(f"{name:<{width}}  {rel:14.3e}  {self.absolute[name]:14.3e}")
        return "\n".join(lines)


def _named_parameters(model: Layer):
    if isinstance(model, Sequential):
        return list(model.named_parameters())
    return [(p.name or str(i), p) for i, p in enumerate(model.parameters())]


def _to_float64(model: Layer) -> Layer:
    if model.dtype == np.float64:
        return model
    if isinstance(model, Sequential):
        return model.astype(np.float64)
    # A copy: Sequential() would repack the user's layer into its own buffer.
    return Sequential(copy.deepcopy(model)).astype(np.float64)


def gradcheck(
    model: Layer, loss: Loss, x: object, t: object, eps: float = 1e-6
) -> GradcheckResult:
    """Compare every parameter gradient with central differences, in float64.

    Parameters
    ----------
    model : Sequential or Layer
        A float64 model is checked in place: every parameter value is restored
        exactly, but its gradients and work buffers are left holding the last
        evaluation. Any other dtype is checked on a float64 copy, and the
        model is not touched.
    loss : a fastbp Loss (MSELoss, CrossEntropyLoss or your own)
    x : array-like of shape (n_samples, in_features)
    t : targets: (n_samples, n_outputs) floats for MSE, (n_samples,) integer
        labels for cross-entropy.
    eps : float
        The step h of (f(w + h) - f(w - h)) / 2h.

    Returns
    -------
    GradcheckResult with the largest relative (and absolute) error per
    parameter, named as ``Sequential.named_parameters`` names them.
    """
    h = real_in(eps, "gradcheck", "eps", low_open=True)
    model = _to_float64(model)
    x = np.ascontiguousarray(x, dtype=np.float64)
    if loss.target == "labels":
        t = np.ascontiguousarray(t, dtype=np.int64)
    else:
        t = np.ascontiguousarray(t, dtype=np.float64)

    def objective() -> float:
        return loss.forward(model.forward(x), t)

    objective()
    model.backward(loss.backward())
    named = _named_parameters(model)
    analytic = {name: p.grad.copy() for name, p in named}

    relative, absolute = {}, {}
    for name, p in named:
        numeric = numerical_gradient(lambda _: objective(), p.data, h)
        diff = float(np.max(np.abs(analytic[name] - numeric), initial=0.0))
        scale = max(
            float(np.max(np.abs(analytic[name]), initial=0.0)),
            float(np.max(np.abs(numeric), initial=0.0)),
        )
        relative[name] = diff / scale if scale > 0 else diff
        absolute[name] = diff
    return GradcheckResult(relative, absolute)


def numerical_gradient(f, w: NDArray, eps: float = 1e-6) -> NDArray:
    """Central differences (f(w + h e_i) - f(w - h e_i)) / 2h for every i.

    Parameters
    ----------
    f : callable taking w and returning a float
    w : float64 ndarray, C-contiguous; perturbed in place one element at a
        time and restored, so f may also read it through another reference
        (as gradcheck does with a parameter's data).
    eps : float, the step h.
    """
    grad = np.empty_like(w, dtype=np.float64)
    flat, out = w.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        original = flat[i]
        flat[i] = original + eps
        f_plus = f(w)
        flat[i] = original - eps
        f_minus = f(w)
        flat[i] = original
        out[i] = (f_plus - f_minus) / (2.0 * eps)
    return grad
