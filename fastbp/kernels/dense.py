"""Dense (fully connected) layer kernels: Y = X @ W + b and its gradients.

W has shape (in_features, out_features), unlike PyTorch's (out, in), so the
forward pass is a plain ``X @ W`` with no transpose.

Each product picks its implementation by size: below
``_config.DENSE_BLAS_MIN_MACS`` multiply-adds a serial loop in i-k-j order,
whose innermost loop runs along the contiguous last axis of the output and is
vectorized by LLVM; from there on NumPy's own BLAS GEMM (blas.py; with
transpose flags, so ``X.T`` and ``W.T`` cost no copy), which brings its own
threads. Bias, activation and the column sums are serial loops fused
into one pass over the output.
"""

import numpy as np

from .._config import DENSE_BLAS_MIN_MACS
from ._jit import kernel, same_dtype
from .activations import activate_inplace, no_hyper
from .blas import gemm_nn, gemm_nt, gemm_tn
from .codes import ACT_IDENTITY, ACT_RELU

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


#: Offset 0 as an int64, not a literal: a literal 0 argument makes Numba compile
#: a callee once more, specialized on it (seconds per kernel, for nothing).
_0 = np.int64(0)

# The private kernels below work on flat (1-D) buffers, each matrix given by an
# offset and its sizes n (rows of X and Y), k (in_features), m (out_features),
# so that the fused training step never reshapes: inside a compiled loop a
# reshape costs ~13 ns (an out-of-line call), more than a small layer's
# arithmetic, while a 1-D slice such as one row costs nothing. Inner loops run
# over row slices, whose indices LLVM knows to be in range and vectorizes.


@kernel(inline="always")
def _row(flat, offset, i, width):
    """Row i of the (?, width) matrix stored in flat from offset: a 1-D view."""
    start = offset + i * width
    return flat[start : start + width]


@kernel
def _add_bias(y, yo, b, n, m, relu):
    """Y = Y + b in place, then max(Y, 0) when relu, in one pass over the
    rows; b is a 1-D (m,) array."""
    zero = y.dtype.type(0.0)
    for i in range(n):
        y_i = _row(y, yo, i, m)
        if relu:
            for j in range(m):
                y_i[j] = max(y_i[j] + b[j], zero)
        else:
            for j in range(m):
                y_i[j] += b[j]


@kernel
def _dense_forward_loop(x, xo, w, wo, b, y, yo, n, k, m, relu):
    """Y = X @ W + b, then max(Y, 0) when relu, by serial i-k-j loops (small
    shapes): the inner loop runs along contiguous rows of W and Y, with
    X[i, q] hoisted."""
    zero = y.dtype.type(0.0)
    for i in range(n):
        x_i, y_i = _row(x, xo, i, k), _row(y, yo, i, m)
        for j in range(m):
            y_i[j] = b[j]
        for q in range(k):
            v = x_i[q]
            w_q = _row(w, wo, q, m)
            for j in range(m):
                y_i[j] += v * w_q[j]
        if relu:
            for j in range(m):
                y_i[j] = max(y_i[j], zero)


@kernel
def dense_forward_flat(x, xo, w, wo, b, y, yo, n, k, m, act, p):
    """Y = act(X @ W + b) on flat buffers, no checks; the size switch lives here.

    act is an activation code (``codes.ACT_*``) with hyperparameters p.
    ReLU, the common case, is fused into the pass that adds the bias; any
    other activation is applied after, by activations.activate_inplace,
    whose branches for every activation are thus compiled once (not once in
    each of the two paths: 1.2 s of a first run's compile, 2026-12-07).
    """
    relu = act == ACT_RELU
    if _use_blas(n, k, m):
        gemm_nn(x, xo, w, wo, y, yo, n, k, m)
        _add_bias(y, yo, b, n, m, relu)
    else:
        _dense_forward_loop(x, xo, w, wo, b, y, yo, n, k, m, relu)
    if act != ACT_IDENTITY and not relu:
        activate_inplace(y[yo : yo + n * m], act, p)


@kernel(inline="always")
def _flat(a):
    return a.reshape(a.size)


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
    dense_act_forward(X, W, b, Y, ACT_IDENTITY, no_hyper())


@kernel
def dense_relu_forward(X, W, b, Y):
    """Y = max(0, X @ W + b), written into Y: bias add and ReLU in one pass.

    Shapes as in :func:`dense_forward`. For the backward pass, Y itself is the
    ReLU mask: Y > 0 exactly where X @ W + b > 0 (see
    :func:`fastbp.kernels.relu_backward`).
    """
    dense_act_forward(X, W, b, Y, ACT_RELU, no_hyper())


@kernel
def dense_act_forward(X, W, b, Y, act, p):
    """Y = act(X @ W + b), written into Y, the activation applied row by row.

    act is an activation code (``codes.ACT_*``) and p its float64
    hyperparameter vector; shapes as in :func:`dense_forward`. The layer API
    uses it to fuse a Linear layer with the activation after it.
    """
    _check_forward(X, W, b, Y)
    n, k = X.shape
    dense_forward_flat(
        _flat(X), _0, _flat(W), _0, b, _flat(Y), _0, n, k, W.shape[1], act, p
    )


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
def _column_sums(dy, dyo, db, n, m):
    """db[j] = sum_i dY[i, j]; rows outer so the inner loop is contiguous."""
    for j in range(m):
        db[j] = 0.0
    for i in range(n):
        dy_i = _row(dy, dyo, i, m)
        for j in range(m):
            db[j] += dy_i[j]


@kernel
def _dense_backward_params_loop(x, xo, dy, dyo, dw, dwo, n, k, m):
    """dW = X.T @ dY by serial loops: dW[p, :] += X[i, p] * dY[i, :], i-k-j
    order so the inner loop runs along contiguous rows of dW and dY."""
    for p in range(k):
        dw_p = _row(dw, dwo, p, m)
        for j in range(m):
            dw_p[j] = 0.0
    for i in range(n):
        x_i, dy_i = _row(x, xo, i, k), _row(dy, dyo, i, m)
        for p in range(k):
            v = x_i[p]
            dw_p = _row(dw, dwo, p, m)
            for j in range(m):
                dw_p[j] += v * dy_i[j]


@kernel
def dense_backward_params_flat(x, xo, dy, dyo, dw, dwo, db, n, k, m):
    """dW = X.T @ dY and db = column sums of dY (db a 1-D (m,) array)."""
    if _use_blas(n, k, m):
        gemm_tn(x, xo, dy, dyo, dw, dwo, n, k, m)
    else:
        _dense_backward_params_loop(x, xo, dy, dyo, dw, dwo, n, k, m)
    _column_sums(dy, dyo, db, n, m)


@kernel
def _dense_backward_input_loop(dy, dyo, w, wo, dx, dxo, n, k, m):
    """dX = dY @ W.T by serial loops: dX[i, p] is the dot product of the
    contiguous rows dY[i, :] and W[p, :]."""
    for i in range(n):
        dy_i, dx_i = _row(dy, dyo, i, m), _row(dx, dxo, i, k)
        for p in range(k):
            w_p = _row(w, wo, p, m)
            s = dx.dtype.type(0.0)
            for j in range(m):
                s += dy_i[j] * w_p[j]
            dx_i[p] = s


@kernel
def dense_backward_input_flat(dy, dyo, w, wo, dx, dxo, n, k, m):
    """dX = dY @ W.T on flat buffers."""
    if _use_blas(n, k, m):
        gemm_nt(dy, dyo, w, wo, dx, dxo, n, k, m)
    else:
        _dense_backward_input_loop(dy, dyo, w, wo, dx, dxo, n, k, m)


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
    n, k = X.shape
    dense_backward_params_flat(
        _flat(X), _0, _flat(dY), _0, _flat(dW), _0, db, n, k, dY.shape[1]
    )


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
    n, k = X.shape
    m = dY.shape[1]
    flat_dY = _flat(dY)
    dense_backward_params_flat(_flat(X), _0, flat_dY, _0, _flat(dW), _0, db, n, k, m)
    dense_backward_input_flat(flat_dY, _0, _flat(W), _0, _flat(dX), _0, n, k, m)
