"""Element-wise activations, forward and backward: the maths of every activation.

This module is the one place an activation's formulas live. Each has a code
(``ACT_*``, what the fused kernel and the dense kernels dispatch on) and a
branch in :func:`activate_flat` and :func:`activate_backward_flat`; its layer class in
:mod:`fastbp.activations` registers that code, so the layer path, the fused
path, the CLI and model files all pick it up.

Arrays may have any shape but must be C-contiguous, of one shape and one dtype
(float32 or float64). Outputs may alias inputs (``relu_forward(X, X)`` is an
in-place ReLU). Each backward kernel takes what the forward pass leaves behind:
the output Y where the derivative is a function of Y (ReLU, leaky ReLU,
sigmoid, tanh), the input X where it is not (GELU; see :func:`grad_from_input`).

Hyperparameters reach the kernels as ``p``, a tuple of ``ACT_MAX_HYPER``
floats in the order the layer class declares them, zero-padded (LeakyReLU:
``p[0]`` = negative_slope). A tuple, not an array: it is passed by value, so
the fused loop makes no array view (and no reference count) per layer.
"""

import math

import numpy as np

from ._jit import kernel, same_dtype
from .codes import (
    ACT_GELU,
    ACT_IDENTITY,
    ACT_LEAKY_RELU,
    ACT_RELU,
    ACT_SIGMOID,
    ACT_TANH,
    keeps_input,
)

__all__ = [
    "relu_forward",
    "relu_backward",
    "leaky_relu_forward",
    "leaky_relu_backward",
    "gelu_forward",
    "gelu_backward",
    "sigmoid_forward",
    "sigmoid_backward",
    "tanh_forward",
    "tanh_backward",
]

_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


#: codes.keeps_input compiled, inlined where the kernels branch on it.
grad_from_input = kernel(inline="always")(keeps_input)


# One inline function per activation and direction, on 1-D contiguous
# arrays (often one row's slice): y = act(x), y may be x; dx = dy * act'(a),
# dx may be dy, a the output y or, where grad_from_input(act), the input x.
# activate_flat and activate_backward_flat dispatch on the code; the
# per-architecture kernels (special.py) call the one they need by name
# (ACT_FUNCTIONS), so that only it is compiled.


@kernel(inline="always")
def relu_flat(x, y, p):
    zero = y.dtype.type(0.0)
    for j in range(y.shape[0]):
        y[j] = max(x[j], zero)


@kernel(inline="always")
def relu_backward_flat(a, dy, dx, p):
    """act' = 1 where y > 0 (y > 0 exactly where x > 0), else 0."""
    zero = dx.dtype.type(0.0)
    for j in range(a.shape[0]):
        dx[j] = dy[j] if a[j] > zero else zero


@kernel(inline="always")
def leaky_relu_flat(x, y, p):
    zero = y.dtype.type(0.0)
    slope = y.dtype.type(p[0])
    for j in range(y.shape[0]):
        y[j] = x[j] if x[j] > zero else slope * x[j]


@kernel(inline="always")
def leaky_relu_backward_flat(a, dy, dx, p):
    """Slope >= 0: act' = 1 where y > 0, else slope."""
    zero = dx.dtype.type(0.0)
    slope = dx.dtype.type(p[0])
    for j in range(a.shape[0]):
        dx[j] = dy[j] if a[j] > zero else slope * dy[j]


@kernel(inline="always")
def gelu_flat(x, y, p):
    """x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)), the exact form (PyTorch's
    default approximate="none"); erf is evaluated in float64."""
    one = y.dtype.type(1.0)
    half = y.dtype.type(0.5)
    for j in range(y.shape[0]):
        v = x[j]
        y[j] = half * v * (one + y.dtype.type(math.erf(v * _SQRT_HALF)))


@kernel(inline="always")
def gelu_backward_flat(a, dy, dx, p):
    """a = x: act' = Phi(x) + x phi(x), phi the standard normal density."""
    for j in range(a.shape[0]):
        v = np.float64(a[j])
        cdf = 0.5 * (1.0 + math.erf(v * _SQRT_HALF))
        pdf = _INV_SQRT_2PI * math.exp(-0.5 * v * v)
        dx[j] = dy[j] * dx.dtype.type(cdf + v * pdf)


@kernel(inline="always")
def tanh_flat(x, y, p):
    for j in range(y.shape[0]):
        y[j] = np.tanh(x[j])


@kernel(inline="always")
def tanh_backward_flat(a, dy, dx, p):
    """act' = 1 - y^2."""
    one = dx.dtype.type(1.0)
    for j in range(a.shape[0]):
        dx[j] = dy[j] * (one - a[j] * a[j])


@kernel(inline="always")
def sigmoid_flat(x, y, p):
    """1 / (1 + e^-x): for x -> -inf, e^-x -> inf and y -> 0, never NaN."""
    one = y.dtype.type(1.0)
    for j in range(y.shape[0]):
        y[j] = one / (one + np.exp(-x[j]))


@kernel(inline="always")
def sigmoid_backward_flat(a, dy, dx, p):
    """act' = y (1 - y)."""
    one = dx.dtype.type(1.0)
    for j in range(a.shape[0]):
        dx[j] = dy[j] * a[j] * (one - a[j])


@kernel(inline="always")
def identity_flat(x, y, p):
    for j in range(y.shape[0]):
        y[j] = x[j]


@kernel(inline="always")
def identity_backward_flat(a, dy, dx, p):
    for j in range(a.shape[0]):
        dx[j] = dy[j]


#: code -> names of its (forward, backward) functions above.
ACT_FUNCTIONS = {
    ACT_IDENTITY: ("identity_flat", "identity_backward_flat"),
    ACT_RELU: ("relu_flat", "relu_backward_flat"),
    ACT_TANH: ("tanh_flat", "tanh_backward_flat"),
    ACT_SIGMOID: ("sigmoid_flat", "sigmoid_backward_flat"),
    ACT_LEAKY_RELU: ("leaky_relu_flat", "leaky_relu_backward_flat"),
    ACT_GELU: ("gelu_flat", "gelu_backward_flat"),
}


@kernel(inline="always")
def activate_flat(x, y, act, p):
    """y = act(x) on 1-D contiguous arrays (often one row's slice); y may be x."""
    if act == ACT_RELU:
        relu_flat(x, y, p)
    elif act == ACT_LEAKY_RELU:
        leaky_relu_flat(x, y, p)
    elif act == ACT_GELU:
        gelu_flat(x, y, p)
    elif act == ACT_TANH:
        tanh_flat(x, y, p)
    elif act == ACT_SIGMOID:
        sigmoid_flat(x, y, p)
    else:
        identity_flat(x, y, p)


@kernel(inline="always")
def activate_backward_flat(a, dy, dx, act, p):
    """dx = dy * act'(x) on 1-D arrays; dx may be dy.

    ``a`` is the forward output y, or the input x where grad_from_input(act):
    ReLU: act' = 1 where y > 0 (y > 0 exactly where x > 0), else 0.
    Leaky ReLU (slope >= 0): act' = 1 where y > 0, else slope.
    GELU: act' = Phi(x) + x phi(x), phi the standard normal density.
    tanh: act' = 1 - y^2. Sigmoid: act' = y (1 - y).
    """
    if act == ACT_RELU:
        relu_backward_flat(a, dy, dx, p)
    elif act == ACT_LEAKY_RELU:
        leaky_relu_backward_flat(a, dy, dx, p)
    elif act == ACT_GELU:
        gelu_backward_flat(a, dy, dx, p)
    elif act == ACT_TANH:
        tanh_backward_flat(a, dy, dx, p)
    elif act == ACT_SIGMOID:
        sigmoid_backward_flat(a, dy, dx, p)
    else:
        identity_backward_flat(a, dy, dx, p)


# Called, not inlined, by the fused training step: one compiled copy of the
# activation branches instead of one per call site keeps its compile time
# down. Each inlines the loops above with its arrays known to be the same or
# apart, so LLVM vectorizes them without a runtime overlap check (a call
# passing one array as both x and y would fall back to scalar loops).


@kernel
def activate_into(x, y, act, p):
    """y = act(x), x and y distinct 1-D arrays."""
    activate_flat(x, y, act, p)


@kernel
def activate_inplace(y, act, p):
    """y = act(y) in place, y a 1-D array."""
    activate_flat(y, y, act, p)


@kernel
def activate_backward_inplace(a, d, act, p):
    """d = d * act'(a) in place (a: the output, or the input where
    grad_from_input(act))."""
    activate_backward_flat(a, d, d, act, p)


@kernel
def activation_forward(X, Y, act, p):
    """Y = act(X) element-wise for activation code act, hyperparameters p."""
    if X.shape != Y.shape:
        raise ValueError("activation: X and Y must have the same shape")
    same_dtype(X, Y)
    activate_flat(X.reshape(X.size), Y.reshape(Y.size), act, p)


@kernel
def activation_backward(A, dY, dX, act, p):
    """dX = dY * act'(X), from A = Y (or X where grad_from_input(act))."""
    if A.shape != dY.shape or A.shape != dX.shape:
        raise ValueError("activation backward: arrays must have the same shape")
    same_dtype(A, dY)
    same_dtype(A, dX)
    activate_backward_flat(
        A.reshape(A.size), dY.reshape(dY.size), dX.reshape(dX.size), act, p
    )


@kernel(inline="always")
def no_hyper():
    return (0.0, 0.0)


@kernel(inline="always")
def one_hyper(value):
    return (np.float64(value), 0.0)


@kernel(inline="always")
def hyper_row(act_hyper, layer):
    """Row ``layer`` of an (n_layers, ACT_MAX_HYPER) float64 array as ``p``."""
    return (act_hyper[layer, 0], act_hyper[layer, 1])


@kernel
def relu_forward(X, Y):
    """Y = max(0, X), element-wise, written into Y (which may be X)."""
    activation_forward(X, Y, ACT_RELU, no_hyper())


@kernel
def relu_backward(A, dY, dX):
    """dX = dY where A > 0, else 0: the gradient passes only where x was > 0.

    A is the ReLU's forward input X or its output Y; both give the same mask,
    since max(0, x) > 0 exactly where x > 0. dX may be dY (in place).
    """
    activation_backward(A, dY, dX, ACT_RELU, no_hyper())


@kernel
def leaky_relu_forward(X, Y, negative_slope):
    """Y = X where X > 0, else negative_slope * X; Y may be X."""
    activation_forward(X, Y, ACT_LEAKY_RELU, one_hyper(negative_slope))


@kernel
def leaky_relu_backward(A, dY, dX, negative_slope):
    """dX = dY where A > 0, else negative_slope * dY.

    A is the forward input X or output Y: for negative_slope >= 0 both are
    > 0 at the same places. dX may be dY.
    """
    activation_backward(A, dY, dX, ACT_LEAKY_RELU, one_hyper(negative_slope))


@kernel
def gelu_forward(X, Y):
    """Y = X * Phi(X) = 0.5 X (1 + erf(X / sqrt(2))), exact GELU; Y may be X."""
    activation_forward(X, Y, ACT_GELU, no_hyper())


@kernel
def gelu_backward(X, dY, dX):
    """dX = dY * (Phi(X) + X phi(X)), from the forward INPUT X.

    phi(x) = exp(-x^2 / 2) / sqrt(2 pi) is the standard normal density and
    Phi its distribution function. dX may be dY.
    """
    activation_backward(X, dY, dX, ACT_GELU, no_hyper())


@kernel
def sigmoid_forward(X, Y):
    """Y = 1 / (1 + exp(-X)), element-wise, written into Y (which may be X)."""
    activation_forward(X, Y, ACT_SIGMOID, no_hyper())


@kernel
def sigmoid_backward(Y, dY, dX):
    """dX = dY * Y * (1 - Y), from the forward output Y: sigma' = sigma (1 - sigma).

    sigma' <= 1/4, so L stacked sigmoids scale gradients by at most 4^-L: the
    vanishing gradient that ReLU avoids.
    """
    activation_backward(Y, dY, dX, ACT_SIGMOID, no_hyper())


@kernel
def tanh_forward(X, Y):
    """Y = tanh(X), element-wise, written into Y (which may be X)."""
    activation_forward(X, Y, ACT_TANH, no_hyper())


@kernel
def tanh_backward(Y, dY, dX):
    """dX = dY * (1 - Y**2), from the forward output Y = tanh(X)."""
    activation_backward(Y, dY, dX, ACT_TANH, no_hyper())
