"""Loss kernels, value and gradient: mean squared error, scikit-learn's half
squared error, softmax cross-entropy and sigmoid binary cross-entropy.

Loss values are accumulated in float64 whatever the array dtype and returned
as a Python float. Each ``*_backward`` kernel writes the gradient with respect
to the network output and returns the loss value too, so a training step needs
one pass over the output, not two.
"""

import numpy as np

from ._jit import kernel, same_dtype
from .codes import (
    LOSS_BINARY_CROSS_ENTROPY,
    LOSS_CROSS_ENTROPY,
    LOSS_MSE,
    LOSS_SQUARED_ERROR,
)

__all__ = [
    "mse_forward",
    "mse_backward",
    "softmax_forward",
    "softmax_cross_entropy_forward",
    "softmax_cross_entropy_backward",
    "squared_error_backward",
    "binary_cross_entropy_backward",
]


@kernel
def _check_same_shape(Y, T):
    if Y.shape != T.shape:
        raise ValueError("mse: Y and T must have the same shape")
    same_dtype(Y, T)


@kernel
def _squared_error_sum(y, t):
    total = 0.0
    for i in range(y.shape[0]):
        d = np.float64(y[i]) - np.float64(t[i])
        total += d * d
    return total


@kernel
def mse_backward_flat(y, t, dy, mean):
    """dY = 2 (Y - T) / size (mean) or Y - T (sum) on 1-D arrays; returns L."""
    count = y.shape[0]
    total = _squared_error_sum(y, t)
    scale = dy.dtype.type(2.0 / max(count, 1) if mean else 1.0)
    for i in range(count):
        dy[i] = (y[i] - t[i]) * scale
    return total / max(count, 1) if mean else 0.5 * total


@kernel
def mse_forward(Y, T, mean):
    """L = sum((Y - T)**2) / Y.size if mean else 0.5 * sum((Y - T)**2).

    The mean squared error of the output Y against the target T.
    mean=True:  L = sum((Y - T)**2) / Y.size, as ``torch.nn.MSELoss()``.
    mean=False: L = 0.5 * sum((Y - T)**2), the classic from-scratch MSE whose
    gradient is exactly Y - T.

    Parameters
    ----------
    Y, T : ndarray of shape (n_samples, n_outputs), float32 or float64
    mean : bool
    """
    _check_same_shape(Y, T)
    total = _squared_error_sum(Y.reshape(Y.size), T.reshape(T.size))
    return total / max(Y.size, 1) if mean else 0.5 * total


@kernel
def mse_backward(Y, T, mean, dY):
    """dY = dL/dY, written into dY; returns L as :func:`mse_forward` does.

    mean=True:  dY = 2 (Y - T) / Y.size.
    mean=False: dY = Y - T, which starts the backward chain.

    dY has the shape and dtype of Y and may be Y itself.
    """
    _check_same_shape(Y, T)
    if dY.shape != Y.shape:
        raise ValueError("mse: dY must have the shape of Y")
    same_dtype(Y, dY)
    return mse_backward_flat(
        Y.reshape(Y.size), T.reshape(T.size), dY.reshape(dY.size), mean
    )


@kernel
def _check_labels(Z, labels):
    n_samples, n_classes = Z.shape
    if labels.shape[0] != n_samples:
        raise ValueError("cross-entropy: labels.shape[0] must equal Z.shape[0]")
    for i in range(n_samples):
        if labels[i] < 0 or labels[i] >= n_classes:
            raise ValueError("cross-entropy: labels must lie in [0, Z.shape[1])")


@kernel
def _softmax_row(z, p):
    """p = exp(z - max z) / sum(...) on 1-D arrays (p may be z); returns
    log(sum(exp(z))), the log-sum-exp, computed stably."""
    m = z[0]
    for j in range(1, z.shape[0]):
        m = max(m, z[j])
    s = 0.0
    for j in range(z.shape[0]):
        e = np.exp(z[j] - m)
        p[j] = e
        s += e
    inv = p.dtype.type(1.0 / s)
    for j in range(z.shape[0]):
        p[j] *= inv
    return np.float64(m) + np.log(s)


@kernel
def softmax_cross_entropy_backward_flat(z, labels, dz, n, c):
    """dZ = (softmax(Z) - onehot(labels)) / n, Z and dZ flat (n * c,) arrays;
    returns the mean loss. Labels must lie in [0, c): callers check them."""
    scale = dz.dtype.type(1.0 / max(n, 1))
    total = 0.0
    for i in range(n):
        z_i, dz_i = z[i * c : (i + 1) * c], dz[i * c : (i + 1) * c]
        label = labels[i]
        z_label = np.float64(z_i[label])  # read before dZ (maybe Z) is written
        total += _softmax_row(z_i, dz_i) - z_label
        dz_i[label] -= 1.0
        for j in range(c):
            dz_i[j] *= scale
    return total / max(n, 1)


@kernel
def softmax_forward(Z, P):
    """P = softmax(Z) row by row, computed with the row maximum subtracted.

    Z, P : ndarray of shape (n_samples, n_classes); P overwritten (may be Z).
    """
    if Z.shape != P.shape:
        raise ValueError("softmax: Z and P must have the same shape")
    same_dtype(Z, P)
    for i in range(Z.shape[0]):
        _softmax_row(Z[i], P[i])


@kernel
def softmax_cross_entropy_forward(Z, labels):
    """L = mean_i (logsumexp(Z[i]) - Z[i, labels[i]]), the softmax cross-entropy.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_classes), float32 or float64
        Unnormalized scores (logits).
    labels : ndarray of shape (n_samples,), int64
        Class indices in [0, n_classes).

    Computed stably: logsumexp(z) = max(z) + log(sum(exp(z - max(z)))).
    """
    _check_labels(Z, labels)
    n_samples, n_classes = Z.shape
    total = 0.0
    for i in range(n_samples):
        z = Z[i]
        m = z[0]
        for j in range(1, n_classes):
            m = max(m, z[j])
        s = 0.0
        for j in range(n_classes):
            s += np.exp(np.float64(z[j] - m))
        total += np.float64(m) + np.log(s) - np.float64(z[labels[i]])
    return total / max(n_samples, 1)


@kernel
def softmax_cross_entropy_backward(Z, labels, dZ):
    """dZ = (softmax(Z) - onehot(labels)) / n_samples; returns the loss value.

    The gradient at the logits of softmax followed by cross-entropy is the
    prediction minus the target, averaged over the batch. Shapes as in
    :func:`softmax_cross_entropy_forward`; dZ has the shape of Z and may be Z.
    """
    _check_labels(Z, labels)
    if dZ.shape != Z.shape:
        raise ValueError("cross-entropy: dZ must have the shape of Z")
    same_dtype(Z, dZ)
    n, c = Z.shape
    return softmax_cross_entropy_backward_flat(
        Z.reshape(Z.size), labels, dZ.reshape(dZ.size), n, c
    )


@kernel
def squared_error_backward_flat(y, t, dy, n, c):
    """dY = (Y - T) / n on flat (n * c,) arrays; returns
    L = 0.5 * sum((Y - T)**2) / n, the half squared error summed over the c
    outputs and averaged over the n rows (scikit-learn's MLPRegressor
    gradient; its reported loss for c = 1)."""
    total = _squared_error_sum(y, t)
    scale = dy.dtype.type(1.0 / max(n, 1))
    for i in range(n * c):
        dy[i] = (y[i] - t[i]) * scale
    return 0.5 * total / max(n, 1)


@kernel
def binary_cross_entropy_backward_flat(z, t, dz, n, c):
    """dZ = (sigmoid(Z) - T) / n on flat (n * c,) logits Z and 0/1 targets T;
    returns L = sum(softplus(Z) - T * Z) / n, the binary cross-entropy of
    sigmoid(Z), summed over the c outputs and averaged over the n rows.
    dZ may be Z."""
    scale = 1.0 / max(n, 1)
    total = 0.0
    for i in range(n * c):
        zi, ti = np.float64(z[i]), np.float64(t[i])
        # softplus(z) = log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|)), with
        # no overflow for large |z|; the same e gives sigmoid(z) = 1 / (1 + e)
        # for z >= 0 and e / (1 + e) below: one exponential per element.
        e = np.exp(-abs(zi))
        total += max(zi, 0.0) + np.log1p(e) - ti * zi
        p = 1.0 / (1.0 + e) if zi >= 0.0 else e / (1.0 + e)
        dz[i] = (p - ti) * scale
    return total * scale


@kernel
def _check_values(Y, T, dY):
    if Y.shape != T.shape or dY.shape != Y.shape:
        raise ValueError("loss: Y, T and dY must have the same shape")
    same_dtype(Y, T)
    same_dtype(Y, dY)


@kernel
def squared_error_backward(Y, T, dY):
    """dY = (Y - T) / n_samples, written into dY; returns
    L = 0.5 * sum((Y - T)**2) / n_samples.

    Y, T, dY : ndarray of shape (n_samples, n_outputs), one float dtype; dY
    may be Y.
    """
    _check_values(Y, T, dY)
    n, c = Y.shape
    return squared_error_backward_flat(
        Y.reshape(Y.size), T.reshape(T.size), dY.reshape(dY.size), n, c
    )


@kernel
def binary_cross_entropy_backward(Z, T, dZ):
    """dZ = (sigmoid(Z) - T) / n_samples, written into dZ; returns
    L = sum(log(1 + exp(Z)) - T * Z) / n_samples, computed stably.

    Z : ndarray of shape (n_samples, n_outputs), logits; T of Z's shape, 0/1
    targets (any values in [0, 1] are accepted); dZ of Z's shape, may be Z.
    """
    _check_values(Z, T, dZ)
    n, c = Z.shape
    return binary_cross_entropy_backward_flat(
        Z.reshape(Z.size), T.reshape(T.size), dZ.reshape(dZ.size), n, c
    )


@kernel(inline="always")
def loss_takes_labels(code):
    """True when loss ``code`` compares with int64 class labels, not targets."""
    return code == LOSS_CROSS_ENTROPY


@kernel
def loss_backward_flat(code, hyper, out, t, to, labels, lo, dout, n, c):
    """Loss ``code`` of the flat (n * c,) output and its gradient into dout.

    MSE reads the n * c targets at t[to:] and ``hyper[0]`` (mean), as do
    the half squared error and binary cross-entropy (without hyper);
    softmax cross-entropy reads the n labels at labels[lo:]. Returns the loss value
    (a mean over the batch, or 0.5 * the sum for MSE with mean = 0). Only the
    branch taken makes a view.
    """
    if code == LOSS_CROSS_ENTROPY:
        return softmax_cross_entropy_backward_flat(out, labels[lo : lo + n], dout, n, c)
    if code == LOSS_SQUARED_ERROR:
        return squared_error_backward_flat(out, t[to : to + n * c], dout, n, c)
    if code == LOSS_BINARY_CROSS_ENTROPY:
        return binary_cross_entropy_backward_flat(out, t[to : to + n * c], dout, n, c)
    # LOSS_MSE
    return mse_backward_flat(out, t[to : to + n * c], dout, hyper[0] != 0.0)


@kernel(inline="always")
def loss_is_summed(code, hyper):
    """True when the loss is a sum over the batch, not a mean (MSE, mean = 0)."""
    return code == LOSS_MSE and hyper[0] == 0.0
