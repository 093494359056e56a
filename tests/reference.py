"""Plain NumPy versions of every kernel in ``fastbp.kernels``, for the tests.

Each function is the textbook formula, written for clarity, not speed: it
takes arrays of any float dtype, computes in float64 and returns new arrays
(or a float) instead of writing into buffers. The optimizer references return
the updated state as new arrays too. This module never imports fastbp, so a
bug there cannot leak into the expected values.

W has shape (in_features, out_features) and a dense layer computes
``Y = X @ W + b``, as in fastbp.
"""

import numpy as np
import scipy.special


def _f64(*arrays):
    return [np.asarray(a, dtype=np.float64) for a in arrays]


# Dense layer -----------------------------------------------------------------


def dense_forward(X, W, b):
    """Y = X @ W + b."""
    X, W, b = _f64(X, W, b)
    return X @ W + b


def dense_relu_forward(X, W, b):
    """Y = max(0, X @ W + b)."""
    return np.maximum(dense_forward(X, W, b), 0.0)


def dense_backward_params(X, dY):
    """(dW, db) = (X.T @ dY, dY summed over rows)."""
    X, dY = _f64(X, dY)
    return X.T @ dY, dY.sum(axis=0)


def dense_backward(X, W, dY):
    """(dW, db, dX) = (X.T @ dY, dY summed over rows, dY @ W.T)."""
    X, W, dY = _f64(X, W, dY)
    dW, db = dense_backward_params(X, dY)
    return dW, db, dY @ W.T


# Activations -----------------------------------------------------------------


def relu_forward(X):
    """Y = max(0, X)."""
    (X,) = _f64(X)
    return np.where(X > 0.0, X, 0.0)


def relu_backward(A, dY):
    """dX = dY where A > 0, else 0."""
    A, dY = _f64(A, dY)
    return np.where(A > 0.0, dY, 0.0)


def leaky_relu_forward(X, negative_slope=0.01):
    """Y = X where X > 0, else negative_slope * X."""
    (X,) = _f64(X)
    return np.where(X > 0.0, X, negative_slope * X)


def leaky_relu_backward(A, dY, negative_slope=0.01):
    """dX = dY where A > 0, else negative_slope * dY."""
    A, dY = _f64(A, dY)
    return np.where(A > 0.0, dY, negative_slope * dY)


def gelu_forward(X):
    """Y = X * Phi(X) = 0.5 X (1 + erf(X / sqrt(2))), the exact GELU."""
    (X,) = _f64(X)
    return 0.5 * X * (1.0 + scipy.special.erf(X / np.sqrt(2.0)))


def gelu_backward(X, dY):
    """dX = dY * (Phi(X) + X phi(X)), from the input X."""
    X, dY = _f64(X, dY)
    cdf = 0.5 * (1.0 + scipy.special.erf(X / np.sqrt(2.0)))
    pdf = np.exp(-0.5 * X**2) / np.sqrt(2.0 * np.pi)
    return dY * (cdf + X * pdf)


def sigmoid_forward(X):
    """Y = 1 / (1 + exp(-X)), evaluated without overflow for large |X|."""
    (X,) = _f64(X)
    # exp(-|x|) never overflows; use sigma(x) = 1 - sigma(-x) for x < 0.
    e = np.exp(-np.abs(X))
    return np.where(X >= 0.0, 1.0 / (1.0 + e), e / (1.0 + e))


def sigmoid_backward(Y, dY):
    """dX = dY * Y * (1 - Y)."""
    Y, dY = _f64(Y, dY)
    return dY * Y * (1.0 - Y)


def tanh_forward(X):
    """Y = tanh(X)."""
    (X,) = _f64(X)
    return np.tanh(X)


def tanh_backward(Y, dY):
    """dX = dY * (1 - Y**2)."""
    Y, dY = _f64(Y, dY)
    return dY * (1.0 - Y**2)


# Losses ----------------------------------------------------------------------


def mse_forward(Y, T, mean):
    """sum((Y - T)**2) / Y.size if mean else 0.5 * sum((Y - T)**2)."""
    Y, T = _f64(Y, T)
    total = np.sum((Y - T) ** 2)
    return float(total / Y.size if mean else 0.5 * total)


def mse_backward(Y, T, mean):
    """dL/dY = 2 (Y - T) / Y.size if mean else Y - T."""
    Y, T = _f64(Y, T)
    return 2.0 * (Y - T) / Y.size if mean else Y - T


def squared_error(Y, T):
    """0.5 * sum((Y - T)**2) / n_samples, and its gradient (Y - T) / n_samples."""
    Y, T = _f64(Y, T)
    return float(0.5 * np.sum((Y - T) ** 2) / Y.shape[0]), (Y - T) / Y.shape[0]


def binary_cross_entropy(Z, T):
    """sum(T * -log(p) + (1 - T) * -log(1 - p)) / n_samples with p =
    1 / (1 + exp(-Z)), and its gradient (p - T) / n_samples."""
    Z, T = _f64(Z, T)
    p = 1.0 / (1.0 + np.exp(-Z))
    value = -np.sum(T * np.log(p) + (1 - T) * np.log1p(-p)) / Z.shape[0]
    return float(value), (p - T) / Z.shape[0]


def logsumexp(Z):
    """log(sum(exp(Z[i]))) per row, with the row maximum subtracted first."""
    (Z,) = _f64(Z)
    m = Z.max(axis=1)
    return m + np.log(np.exp(Z - m[:, None]).sum(axis=1))


def softmax(Z):
    """P[i] = exp(Z[i]) / sum(exp(Z[i])) per row."""
    (Z,) = _f64(Z)
    return np.exp(Z - logsumexp(Z)[:, None])


def onehot(labels, n_classes):
    """Row i is 1 at column labels[i] and 0 elsewhere."""
    out = np.zeros((len(labels), n_classes))
    out[np.arange(len(labels)), labels] = 1.0
    return out


def softmax_cross_entropy_forward(Z, labels):
    """mean over rows i of logsumexp(Z[i]) - Z[i, labels[i]]."""
    (Z,) = _f64(Z)
    rows = np.arange(Z.shape[0])
    return float(np.mean(logsumexp(Z) - Z[rows, labels]))


def softmax_cross_entropy_backward(Z, labels):
    """dZ = (softmax(Z) - onehot(labels)) / n_samples."""
    (Z,) = _f64(Z)
    return (softmax(Z) - onehot(labels, Z.shape[1])) / Z.shape[0]


# Optimizers ------------------------------------------------------------------


def sgd_update(param, grad, buf, lr, momentum, weight_decay, nesterov):
    """One torch.optim.SGD step (dampening 0); returns (param, buf).

    g = grad + weight_decay * param; with momentum, buf = momentum * buf + g
    (buf starts at 0) and the step direction is g + momentum * buf under
    Nesterov, else buf. Without momentum buf is returned unchanged.
    """
    param, grad, buf = _f64(param, grad, buf)
    g = grad + weight_decay * param
    if momentum != 0.0:
        buf = momentum * buf + g
        g = g + momentum * buf if nesterov else buf
    return param - lr * g, buf


def adam_update(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, step):
    """One torch.optim.Adam step (amsgrad=False); returns (param, m, v).

    g = grad + weight_decay * param; m and v are the moving averages of g and
    g**2, each divided by its bias correction 1 - beta**step before use.
    """
    param, grad, m, v = _f64(param, grad, m, v)
    g = grad + weight_decay * param
    m = beta1 * m + (1.0 - beta1) * g
    v = beta2 * v + (1.0 - beta2) * g**2
    m_hat = m / (1.0 - beta1**step)
    v_hat = v / (1.0 - beta2**step)
    return param - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


# Utilities -------------------------------------------------------------------


def all_finite(X):
    """True when no element of X is NaN or infinite."""
    return bool(np.all(np.isfinite(X)))
