"""Dense (fully connected) layer kernels: Y = X @ W + b and its gradients.

W has shape (in_features, out_features), unlike PyTorch's (out, in), so the
forward pass is a plain ``X @ W`` with no transpose.

Each product picks its implementation by size: below
``_config.DENSE_BLAS_MIN_MACS`` multiply-adds a serial loop in i-k-j order,
whose innermost loop runs along the contiguous last axis of the output and is
vectorized by LLVM; from there on ``np.dot`` inside njit, i.e. SciPy's BLAS
(GEMM with transpose flags, so ``X.T`` and ``W.T`` cost no copy), which brings
its own threads. Bias, activation and the column sums are serial loops fused
into one pass over the output.
"""

import numpy as np

from .._config import DENSE_BLAS_MIN_MACS
from ._jit import kernel, same_dtype
from .activations import ACT_IDENTITY, ACT_RELU, _activate

__all__ = [
    "dense_forward",
    "dense_relu_forward",
    "dense_backward",
    "dense_backward_params",
]


@kernel
def _use_blas(n_samples, in_features, out_features):
    return n_samples * in_features * out_features >= DENSE_BLAS_MIN_MACS


@kernel
def _check_forward(X, W, b, Y):
    same_dtype(X, W)
    same_dtype(X, b)
    same_dtype(X, Y)
    n_samples, in_features = X.shape
    if W.shape[0] != in_features:
        raise ValueError("dense: X.shape[1] must equal W.shape[0] (in_features)")
    if b.shape[0] != W.shape[1]:
        raise ValueError("dense: b.shape[0] must equal W.shape[1] (out_features)")
    if Y.shape[0] != n_samples or Y.shape[1] != W.shape[1]:
        raise ValueError("dense: Y must have shape (X.shape[0], W.shape[1])")


@kernel
def _bias_activate(Y, b, act):
    """Y = act(Y + b) in place, one pass over the rows."""
    n_samples, out_features = Y.shape
    for i in range(n_samples):
        for j in range(out_features):
            Y[i, j] += b[j]
        if act != ACT_IDENTITY:
            _activate(Y[i], Y[i], act)


@kernel
def _dense_forward_loop(X, W, b, Y, act):
    """Y = act(X @ W + b) by serial i-k-j loops (small shapes)."""
    n_samples, in_features = X.shape
    out_features = W.shape[1]
    for i in range(n_samples):
        for j in range(out_features):
            Y[i, j] = b[j]
        for k in range(in_features):
            x = X[i, k]
            for j in range(out_features):
                Y[i, j] += x * W[k, j]
        if act != ACT_IDENTITY:
            _activate(Y[i], Y[i], act)


@kernel
def _dense_forward(X, W, b, Y, act):
    """Y = act(X @ W + b), no shape checks; the size switch lives here."""
    if _use_blas(X.shape[0], X.shape[1], W.shape[1]):
        np.dot(X, W, Y)
        _bias_activate(Y, b, act)
    else:
        _dense_forward_loop(X, W, b, Y, act)


@kernel
def dense_forward(X, W, b, Y):
    """Y = X @ W + b, written into Y.

    Parameters
    ----------
    X : ndarray of shape (n_samples, in_features), float32 or float64
    W : ndarray of shape (in_features, out_features), same dtype
    b : ndarray of shape (out_features,), same dtype
    Y : ndarray of shape (n_samples, out_features), same dtype; overwritten.

    All arrays C-contiguous. Raises ValueError when the shapes disagree.
    """
    _check_forward(X, W, b, Y)
    _dense_forward(X, W, b, Y, ACT_IDENTITY)


@kernel
def dense_relu_forward(X, W, b, Y):
    """Y = max(0, X @ W + b), written into Y: bias add and ReLU in one pass.

    Shapes as in :func:`dense_forward`. For the backward pass, Y itself is the
    ReLU mask: Y > 0 exactly where X @ W + b > 0 (see
    :func:`fastbp.kernels.relu_backward`).
    """
    _check_forward(X, W, b, Y)
    _dense_forward(X, W, b, Y, ACT_RELU)


@kernel
def _check_backward(X, dY, dW, db):
    same_dtype(X, dY)
    same_dtype(X, dW)
    same_dtype(X, db)
    n_samples, in_features = X.shape
    if dY.shape[0] != n_samples:
        raise ValueError("dense: dY.shape[0] must equal X.shape[0] (n_samples)")
    if dW.shape[0] != in_features or dW.shape[1] != dY.shape[1]:
        raise ValueError("dense: dW must have shape (X.shape[1], dY.shape[1])")
    if db.shape[0] != dY.shape[1]:
        raise ValueError("dense: db.shape[0] must equal dY.shape[1]")


@kernel
def _column_sums(dY, db):
    """db[j] = sum_i dY[i, j]; rows outer so the inner loop is contiguous."""
    n_samples, out_features = dY.shape
    for j in range(out_features):
        db[j] = 0.0
    for i in range(n_samples):
        for j in range(out_features):
            db[j] += dY[i, j]


@kernel
def _dense_backward_params_loop(X, dY, dW):
    """dW = X.T @ dY by serial loops: dW[k, :] += X[i, k] * dY[i, :], i-k-j
    order so the inner loop runs along contiguous rows of dW and dY."""
    n_samples, in_features = X.shape
    out_features = dY.shape[1]
    for k in range(in_features):
        for j in range(out_features):
            dW[k, j] = 0.0
    for i in range(n_samples):
        for k in range(in_features):
            x = X[i, k]
            for j in range(out_features):
                dW[k, j] += x * dY[i, j]


@kernel
def _dense_backward_params(X, dY, dW, db):
    if _use_blas(X.shape[0], X.shape[1], dY.shape[1]):
        np.dot(X.T, dY, dW)
    else:
        _dense_backward_params_loop(X, dY, dW)
    _column_sums(dY, db)


@kernel
def _dense_backward_input_loop(dY, W, dX):
    """dX = dY @ W.T by serial loops: dX[i, k] is the dot product of the
    contiguous rows dY[i, :] and W[k, :]."""
    n_samples, out_features = dY.shape
    in_features = W.shape[0]
    for i in range(n_samples):
        for k in range(in_features):
            s = dX.dtype.type(0.0)
            for j in range(out_features):
                s += dY[i, j] * W[k, j]
            dX[i, k] = s


@kernel
def _dense_backward_input(dY, W, dX):
    if _use_blas(dY.shape[0], W.shape[0], dY.shape[1]):
        np.dot(dY, W.T, dX)
    else:
        _dense_backward_input_loop(dY, W, dX)


@kernel
def dense_backward_params(X, dY, dW, db):
    """dW = X.T @ dY and db = dY summed over rows, written into dW and db.

    The parameter half of the dense backward pass, for the first layer of a
    network, whose input gradient nobody needs.

    Parameters
    ----------
    X : ndarray of shape (n_samples, in_features)
        The forward input.
    dY : ndarray of shape (n_samples, out_features)
        Gradient of the loss with respect to Y.
    dW : ndarray of shape (in_features, out_features); overwritten.
    db : ndarray of shape (out_features,); overwritten.

    Notes
    -----
    From Y[i, j] = sum_k X[i, k] W[k, j] + b[j]: dL/dW[k, j] = sum_i X[i, k]
    dY[i, j], i.e. dW = X^T dY, and dL/db[j] = sum_i dY[i, j]. Gradients have
    the shapes of the values they belong to, which checks the transposes.
    """
    _check_backward(X, dY, dW, db)
    _dense_backward_params(X, dY, dW, db)


@kernel
def dense_backward(X, W, dY, dW, db, dX):
    """dW = X.T @ dY, db = sum of dY over rows, dX = dY @ W.T; all overwritten.

    Parameters
    ----------
    X : ndarray of shape (n_samples, in_features)
        The forward input.
    W : ndarray of shape (in_features, out_features)
    dY : ndarray of shape (n_samples, out_features)
        Gradient of the loss with respect to Y = X @ W + b.
    dW : ndarray of shape (in_features, out_features); overwritten.
    db : ndarray of shape (out_features,); overwritten.
    dX : ndarray of shape (n_samples, in_features); overwritten with
        dL/dX = dY @ W^T, the gradient passed to the layer before.

    All arrays C-contiguous and of one dtype (float32 or float64).
    """
    _check_backward(X, dY, dW, db)
    same_dtype(X, W)
    same_dtype(X, dX)
    if W.shape[0] != X.shape[1] or W.shape[1] != dY.shape[1]:
        raise ValueError("dense: W must have shape (X.shape[1], dY.shape[1])")
    if dX.shape[0] != X.shape[0] or dX.shape[1] != X.shape[1]:
        raise ValueError("dense: dX must have the shape of X")
    _dense_backward_params(X, dY, dW, db)
    _dense_backward_input(dY, W, dX)
