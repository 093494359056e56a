"""Property tests: kernel invariants over random shapes and values (hypothesis).

Shapes go up to 24 per side, so dense products land on both sides of the BLAS
threshold. Sums are compared against a bound scaled by the sum of absolute
terms, the standard forward-error bound of a floating-point dot product, with
the per-dtype tolerances of conftest.TOL.
"""

import numpy as np
import pytest
import reference as ref
from conftest import DTYPES, TOL
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fastbp import kernels

# First calls JIT-compile (or load from the disk cache), hence no deadline.
PROPERTY_SETTINGS = settings(max_examples=40, deadline=None)

dims = st.integers(min_value=1, max_value=24)


def matrices(dtype, shape, bound=10.0):
    """Arrays of the given shape with finite entries in [-bound, bound]."""
    width = np.dtype(dtype).itemsize * 8
    elements = st.floats(-bound, bound, allow_nan=False, width=width)
    return hnp.arrays(dtype, shape, elements=elements)


def assert_within_sum_bound(actual, expected, abs_terms, tol):
    """|actual - expected| <= atol + rtol * (sum of |terms| that made expected)."""
    error = np.abs(np.asarray(actual, np.float64) - expected)
    bound = tol["atol"] + tol["rtol"] * abs_terms
    assert np.all(error <= bound), np.max(error - bound)


@pytest.mark.parametrize("dtype", DTYPES)
@PROPERTY_SETTINGS
@given(data=st.data(), n=dims, k=dims, m=dims)
def test_dense_forward_matches_reference_for_random_shapes(dtype, data, n, k, m):
    X = data.draw(matrices(dtype, (n, k)), label="X")
    W = data.draw(matrices(dtype, (k, m)), label="W")
    b = data.draw(matrices(dtype, (m,)), label="b")
    Y = np.full((n, m), np.nan, dtype)
    kernels.dense_forward(X, W, b, Y)
    abs_terms = np.abs(X.astype(np.float64)) @ np.abs(W.astype(np.float64))
    assert_within_sum_bound(
        Y, ref.dense_forward(X, W, b), abs_terms + np.abs(b), TOL[np.dtype(dtype)]
    )


@pytest.mark.parametrize("dtype", DTYPES)
@PROPERTY_SETTINGS
@given(data=st.data(), n=dims, m=dims)
def test_relu_backward_zero_where_input_not_positive(dtype, data, n, m):
    X = data.draw(matrices(dtype, (n, m)), label="X")
    dY = data.draw(matrices(dtype, (n, m)), label="dY")
    dX = np.full((n, m), np.nan, dtype)
    kernels.relu_backward(X, dY, dX)
    assert np.all(dX[X <= 0] == 0)
    np.testing.assert_array_equal(dX[X > 0], dY[X > 0])


@pytest.mark.parametrize("dtype", DTYPES)
@PROPERTY_SETTINGS
@given(data=st.data(), n=dims, k=dims, m=dims)
def test_dense_backward_db_is_row_sum_of_dy(dtype, data, n, k, m):
    X = data.draw(matrices(dtype, (n, k)), label="X")
    W = data.draw(matrices(dtype, (k, m)), label="W")
    dY = data.draw(matrices(dtype, (n, m)), label="dY")
    dW, db, dX = np.empty((k, m), dtype), np.full(m, np.nan, dtype), np.empty_like(X)
    kernels.dense_backward(X, W, dY, dW, db, dX)
    dY64 = dY.astype(np.float64)
    tol = TOL[np.dtype(dtype)]
    assert_within_sum_bound(db, dY64.sum(axis=0), np.abs(dY64).sum(axis=0), tol)
    db_params = np.full(m, np.nan, dtype)
    kernels.dense_backward_params(X, dY, np.empty((k, m), dtype), db_params)
    np.testing.assert_array_equal(db_params, db)


@pytest.mark.parametrize("dtype", DTYPES)
@PROPERTY_SETTINGS
@given(data=st.data(), n=dims, c=dims)
def test_softmax_rows_sum_to_one(dtype, data, n, c):
    Z = data.draw(matrices(dtype, (n, c), bound=1e3), label="Z")
    P = np.full((n, c), np.nan, dtype)
    kernels.softmax_forward(Z, P)
    assert np.all((P >= 0) & (P <= 1))
    np.testing.assert_allclose(P.sum(axis=1, dtype=np.float64), 1.0, **TOL[P.dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@PROPERTY_SETTINGS
@given(data=st.data(), n=dims, c=dims)
def test_softmax_cross_entropy_gradient_rows_sum_to_zero(dtype, data, n, c):
    Z = data.draw(matrices(dtype, (n, c), bound=1e3), label="Z")
    labels = np.array(
        data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)), np.int64
    )
    dZ = np.full((n, c), np.nan, dtype)
    loss = kernels.softmax_cross_entropy_backward(Z, labels, dZ)
    assert np.isfinite(loss) and loss >= 0
    np.testing.assert_allclose(dZ.sum(axis=1, dtype=np.float64), 0.0, **TOL[dZ.dtype])


@pytest.mark.parametrize("mean", [True, False], ids=["mean", "half-sum"])
@PROPERTY_SETTINGS
@given(data=st.data(), n=st.integers(1, 8), m=st.integers(1, 8))
def test_mse_backward_equals_finite_difference(mean, data, n, m):
    # MSE is quadratic, so the central difference has no truncation error and
    # only rounding, about eps * L / h < 1e-8 for these sizes and h = 1e-3.
    Y = data.draw(matrices(np.float64, (n, m)), label="Y")
    T = data.draw(matrices(np.float64, (n, m)), label="T")
    dY = np.full((n, m), np.nan)
    kernels.mse_backward(Y, T, mean, dY)
    h = 1e-3
    numeric = np.empty((n, m))
    for index in np.ndindex(n, m):
        up, down = Y.copy(), Y.copy()
        up[index] += h
        down[index] -= h
        numeric[index] = (
            kernels.mse_forward(up, T, mean) - kernels.mse_forward(down, T, mean)
        ) / (2 * h)
    np.testing.assert_allclose(dY, numeric, rtol=1e-7, atol=1e-7)
