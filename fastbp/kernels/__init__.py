"""fastbp.kernels: the Numba kernels, pure functions on NumPy arrays.

Every kernel is compiled with ``numba.njit`` on first use for the argument
types it gets (float32 or float64, C-contiguous) and cached on disk. Kernels
write into caller-provided output arrays and return None or a scalar loss; they
never allocate an array on the training path. Weights W have shape
(in_features, out_features), so a dense layer computes ``Y = X @ W + b``.

==============================  =============================================
kernel                          formula
==============================  =============================================
dense_forward(X, W, b, Y)       Y = X @ W + b
dense_relu_forward(X, W, b, Y)  Y = max(0, X @ W + b)
dense_backward(X, W, dY,        dW = X.T @ dY, db = sum_rows(dY),
  dW, db, dX)                   dX = dY @ W.T
dense_backward_params(X, dY,    dW = X.T @ dY, db = sum_rows(dY)
  dW, db)                       (first layer: no dX)
relu_forward(X, Y)              Y = max(0, X)
relu_backward(A, dY, dX)        dX = dY * (A > 0)   (A: input or output)
leaky_relu_forward(X, Y,        Y = X if X > 0 else negative_slope * X
  negative_slope)
leaky_relu_backward(A, dY, dX,  dX = dY if A > 0 else negative_slope * dY
  negative_slope)
gelu_forward(X, Y)              Y = X * Phi(X)   (exact, erf form)
gelu_backward(X, dY, dX)        dX = dY * (Phi(X) + X phi(X))   (X: input)
sigmoid_forward(X, Y)           Y = 1 / (1 + exp(-X))
sigmoid_backward(Y, dY, dX)     dX = dY * Y * (1 - Y)
tanh_forward(X, Y)              Y = tanh(X)
tanh_backward(Y, dY, dX)        dX = dY * (1 - Y**2)
mse_forward(Y, T, mean)         mean: sum((Y-T)**2)/Y.size; else 0.5*sum(...)
mse_backward(Y, T, mean, dY)    mean: dY = 2(Y-T)/Y.size; else dY = Y - T
softmax_forward(Z, P)           P = softmax(Z) per row
softmax_cross_entropy_forward   mean_i logsumexp(Z[i]) - Z[i, labels[i]]
  (Z, labels)
softmax_cross_entropy_backward  dZ = (softmax(Z) - onehot(labels)) / N
  (Z, labels, dZ)
squared_error_backward          dY = (Y - T) / N; returns 0.5*sum((Y-T)**2)/N
  (Y, T, dY)
binary_cross_entropy_backward   dZ = (sigmoid(Z) - T) / N; returns
  (Z, T, dZ)                    sum(log(1 + exp(Z)) - T*Z) / N
sgd_update(param, grad, buf,    torch.optim.SGD step, in place
  lr, momentum, weight_decay,
  nesterov)
adam_update(param, grad, m, v,  torch.optim.Adam step, in place
  lr, beta1, beta2, eps,
  weight_decay, step)
all_finite(X)                   no NaN or inf in X
==============================  =============================================

Validation
----------
The names above are checking wrappers (:mod:`fastbp.kernels.api`) around the
njit kernels of the submodules (``fastbp.kernels.dense.dense_forward``, ...),
with the same signatures and docstrings. Before the kernel runs a wrapper checks
every argument once and raises a one-line TypeError or ValueError naming the
kernel and the argument: arrays must be ndarrays of one dtype, float32 or
float64 (labels: integers, converted to int64); shapes must agree; inputs that
are not C-contiguous are copied; outputs must be C-contiguous, writeable and
share no memory with another argument, except the documented in-place cases
(an activation's Y may be X and dX may be dY; P, dZ, dY of the losses may be
their input); optimizer hyperparameters must be finite and in range. That costs
a few microseconds per call; the layer API validates its own inputs once and
calls the submodule kernels directly.
"""

import importlib

from .._compat import lazy_exports

__all__ = [
    "dense_forward",
    "dense_relu_forward",
    "dense_backward",
    "dense_backward_params",
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
    "mse_forward",
    "mse_backward",
    "softmax_forward",
    "softmax_cross_entropy_forward",
    "softmax_cross_entropy_backward",
    "squared_error_backward",
    "binary_cross_entropy_backward",
    "sgd_update",
    "adam_update",
    "all_finite",
]

#: The submodules, imported at their first read as attributes too
#: (``fastbp.kernels.dense.dense_forward`` after ``import fastbp.kernels``).
SUBMODULES = (
    "activations", "api", "blas", "codes", "dense", "distributed", "epoch",
    "losses", "optim", "simd", "special", "util",
)  # fmt: skip

# The checking wrappers live in api.py, imported (with Numba) at the first
# read of one of them: ``import fastbp.kernels.codes`` needs no Numba.
_wrapper, _names = lazy_exports(__name__, dict.fromkeys(__all__, "api"))


def __getattr__(name: str) -> object:
    if name in SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    return _wrapper(name)


def __dir__() -> list[str]:
    return sorted([*_names(), *SUBMODULES])
