"""Element-wise activations: ReLU, sigmoid and tanh, forward and backward.

Arrays may have any shape but must be C-contiguous, of one shape and one dtype
(float32 or float64). Outputs may alias inputs (``relu_forward(X, X)`` is an
in-place ReLU). Each backward kernel takes what the forward pass leaves behind:
the mask for ReLU, the output Y for sigmoid and tanh, whose derivatives are
functions of Y alone.
"""

import numpy as np

from ._jit import kernel, same_dtype

__all__ = [
    "relu_forward",
    "relu_backward",
    "sigmoid_forward",
    "sigmoid_backward",
    "tanh_forward",
    "tanh_backward",
]

# Activation codes shared with the dense kernels and the fused epoch path.
ACT_IDENTITY = 0
ACT_RELU = 1
ACT_TANH = 2
ACT_SIGMOID = 3


@kernel
def _activate(x, y, act):
    """y = act(x) on 1-D contiguous arrays (often one row's slice); y may be x."""
    one = y.dtype.type(1.0)
    zero = y.dtype.type(0.0)
    if act == ACT_RELU:
        for j in range(y.shape[0]):
            y[j] = max(x[j], zero)
    elif act == ACT_TANH:
        for j in range(y.shape[0]):
            y[j] = np.tanh(x[j])
    elif act == ACT_SIGMOID:
        # 1 / (1 + e^-x): for x -> -inf, e^-x -> inf and y -> 0, never NaN.
        for j in range(y.shape[0]):
            y[j] = one / (one + np.exp(-x[j]))
    else:
        for j in range(y.shape[0]):
            y[j] = x[j]


@kernel
def _activate_backward(y, dy, dx, act):
    """dx = dy * act'(x), from the forward output y, on 1-D arrays.

    ReLU: act' = 1 where y > 0 (y > 0 exactly where x > 0), else 0.
    tanh: act' = 1 - y^2. Sigmoid: act' = y (1 - y). dx may be dy.
    """
    one = y.dtype.type(1.0)
    zero = y.dtype.type(0.0)
    if act == ACT_RELU:
        for j in range(y.shape[0]):
            dx[j] = dy[j] if y[j] > zero else zero
    elif act == ACT_TANH:
        for j in range(y.shape[0]):
            dx[j] = dy[j] * (one - y[j] * y[j])
    elif act == ACT_SIGMOID:
        for j in range(y.shape[0]):
            dx[j] = dy[j] * y[j] * (one - y[j])
    else:
        for j in range(y.shape[0]):
            dx[j] = dy[j]


@kernel
def _forward(X, Y, act):
    if X.shape != Y.shape:
        raise ValueError("activation: X and Y must have the same shape")
    same_dtype(X, Y)
    _activate(X.reshape(X.size), Y.reshape(Y.size), act)


@kernel
def _backward(A, dY, dX, act):
    if A.shape != dY.shape or A.shape != dX.shape:
        raise ValueError("activation backward: arrays must have the same shape")
    same_dtype(A, dY)
    same_dtype(A, dX)
    _activate_backward(A.reshape(A.size), dY.reshape(dY.size), dX.reshape(dX.size), act)


@kernel
def relu_forward(X, Y):
    """Y = max(0, X), element-wise, written into Y (which may be X)."""
    _forward(X, Y, ACT_RELU)


@kernel
def relu_backward(A, dY, dX):
    """dX = dY where A > 0, else 0: the gradient passes only where x was > 0.

    A is the ReLU's forward input X or its output Y; both give the same mask,
    since max(0, x) > 0 exactly where x > 0. dX may be dY (in place).
    """
    _backward(A, dY, dX, ACT_RELU)


@kernel
def sigmoid_forward(X, Y):
    """Y = 1 / (1 + exp(-X)), element-wise, written into Y (which may be X)."""
    _forward(X, Y, ACT_SIGMOID)


@kernel
def sigmoid_backward(Y, dY, dX):
    """dX = dY * Y * (1 - Y), from the forward output Y: sigma' = sigma (1 - sigma).

    sigma' <= 1/4, so L stacked sigmoids scale gradients by at most 4^-L: the
    vanishing gradient that ReLU avoids.
    """
    _backward(Y, dY, dX, ACT_SIGMOID)


@kernel
def tanh_forward(X, Y):
    """Y = tanh(X), element-wise, written into Y (which may be X)."""
    _forward(X, Y, ACT_TANH)


@kernel
def tanh_backward(Y, dY, dX):
    """dX = dY * (1 - Y**2), from the forward output Y = tanh(X)."""
    _backward(Y, dY, dX, ACT_TANH)
