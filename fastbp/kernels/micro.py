"""Loops for the products of tiny layers, for the per-architecture kernels.

The generated kernels of special.py call these with literal sizes: for a
layer as small as XOR's Linear(2, 8), LLVM then unrolls every loop completely
and keeps the rows in registers, where a call to a generic kernel would spend
more time in set-up than in arithmetic. They are ``inline="always"`` so the
literals reach LLVM. Layers of one output have their own versions, written
as dot products along the contiguous rows so that they vectorize.

Matrices are flat arrays with an offset and their sizes, as in dense.py:
X (n, k), W (k, m), Y (n, m), dZ (n, m), all row-major. Loops index 1-D
row slices, whose indices LLVM knows are in range.
"""

from ._jit import kernel

__all__ = [
    "mm_forward",
    "mm_forward_1",
    "mm_backward_params",
    "mm_backward_params_1",
    "mm_backward_input",
    "mm_backward_input_1",
]


@kernel(inline="always")
def mm_forward(x, xo, w, wo, b, y, yo, n, k, m):
    """Y = X @ W + b for X (n, k) at x[xo:], W (k, m) at w[wo:] and b (m,),
    into Y (n, m) at y[yo:]: Y[i, :] = b + sum_q X[i, q] W[q, :]."""
    for i in range(n):
        x_i = x[xo + i * k : xo + (i + 1) * k]
        y_i = y[yo + i * m : yo + (i + 1) * m]
        for j in range(m):
            y_i[j] = b[j]
        for q in range(k):
            a = x_i[q]
            w_q = w[wo + q * m : wo + (q + 1) * m]
            for j in range(m):
                y_i[j] += a * w_q[j]


@kernel(inline="always")
def mm_forward_1(x, xo, w, wo, b, y, yo, n, k):
    """mm_forward for one output (m = 1): Y[i] = b[0] + X[i, :] . W[:, 0]."""
    w_0 = w[wo : wo + k]
    for i in range(n):
        x_i = x[xo + i * k : xo + (i + 1) * k]
        s = b[0]
        for q in range(k):
            s += x_i[q] * w_0[q]
        y[yo + i] = s


@kernel(inline="always")
def mm_backward_params(x, xo, dz, dzo, dw, dwo, db, n, k, m):
    """dW = X.T @ dZ into dw[dwo:] (k, m) and db = column sums of dZ (m,),
    for X (n, k) at x[xo:] and dZ (n, m) at dz[dzo:]:
    dW[q, :] = sum_i X[i, q] dZ[i, :]."""
    zero = dw.dtype.type(0.0)
    for j in range(k * m):
        dw[dwo + j] = zero
    for j in range(m):
        db[j] = zero
    for i in range(n):
        z_i = dz[dzo + i * m : dzo + (i + 1) * m]
        x_i = x[xo + i * k : xo + (i + 1) * k]
        for q in range(k):
            a = x_i[q]
            dw_q = dw[dwo + q * m : dwo + (q + 1) * m]
            for j in range(m):
                dw_q[j] += a * z_i[j]
        for j in range(m):
            db[j] += z_i[j]


@kernel(inline="always")
def mm_backward_params_1(x, xo, dz, dzo, dw, dwo, db, n, k):
    """mm_backward_params for one output: dW[:, 0] = sum_i dZ[i] X[i, :],
    db[0] = sum_i dZ[i]."""
    dw_0 = dw[dwo : dwo + k]
    zero = dw.dtype.type(0.0)
    for q in range(k):
        dw_0[q] = zero
    total = zero
    for i in range(n):
        a = dz[dzo + i]
        total += a
        x_i = x[xo + i * k : xo + (i + 1) * k]
        for q in range(k):
            dw_0[q] += a * x_i[q]
    db[0] = total


@kernel(inline="always")
def mm_backward_input(dz, dzo, w, wo, dx, dxo, n, k, m):
    """dX = dZ @ W.T into dx[dxo:] (n, k), for dZ (n, m) at dz[dzo:] and W
    (k, m) at w[wo:]: dX[i, q] = dZ[i, :] . W[q, :]."""
    for i in range(n):
        dz_i = dz[dzo + i * m : dzo + (i + 1) * m]
        dx_i = dx[dxo + i * k : dxo + (i + 1) * k]
        for q in range(k):
            w_q = w[wo + q * m : wo + (q + 1) * m]
            s = dx.dtype.type(0.0)
            for j in range(m):
                s += dz_i[j] * w_q[j]
            dx_i[q] = s


@kernel(inline="always")
def mm_backward_input_1(dz, dzo, w, wo, dx, dxo, n, k):
    """mm_backward_input for one output: dX[i, :] = dZ[i] W[:, 0]."""
    w_0 = w[wo : wo + k]
    for i in range(n):
        a = dz[dzo + i]
        dx_i = dx[dxo + i * k : dxo + (i + 1) * k]
        for q in range(k):
            dx_i[q] = a * w_0[q]
