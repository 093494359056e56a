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
sgd_update(param, grad, buf,    torch.optim.SGD step, in place
  lr, momentum, weight_decay,
  nesterov)
adam_update(param, grad, m, v,  torch.optim.Adam step, in place
  lr, beta1, beta2, eps,
  weight_decay, step)
all_finite(X)                   no NaN or inf in X
==============================  =============================================
"""

from .activations import (
    relu_backward,
    relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    tanh_backward,
    tanh_forward,
)
from .dense import (
    dense_backward,
    dense_backward_params,
    dense_forward,
    dense_relu_forward,
)
from .losses import (
    mse_backward,
    mse_forward,
    softmax_cross_entropy_backward,
    softmax_cross_entropy_forward,
    softmax_forward,
)
from .optim import adam_update, sgd_update
from .util import all_finite

__all__ = [
    "dense_forward",
    "dense_relu_forward",
    "dense_backward",
    "dense_backward_params",
    "relu_forward",
    "relu_backward",
    "sigmoid_forward",
    "sigmoid_backward",
    "tanh_forward",
    "tanh_backward",
    "mse_forward",
    "mse_backward",
    "softmax_forward",
    "softmax_cross_entropy_forward",
    "softmax_cross_entropy_backward",
    "sgd_update",
    "adam_update",
    "all_finite",
]
