"""The SIMD products of fastbp.kernels.simd against NumPy, on every edge of
their blocking: widths below, at and past one vector (and past a group of
four vectors), row counts around the row blocks, float32 and float64,
offsets inside larger buffers."""

import numpy as np
import pytest
from numba import njit

from fastbp.kernels import simd

SHAPES = [  # (K, N): in and out features
    (1, 2),
    (2, 8),
    (3, 5),
    (8, 1),
    (33, 1),
    (256, 1),
    (16, 16),
    (17, 33),
    (24, 8),
    (32, 64),
    (64, 64),
    (40, 70),
    (5, 130),
]
ROWS = [1, 3, 4, 7, 9, 64]


def _compiled(K, N):
    """Kernels calling the four products with K and N as literals."""
    scope = {"simd": simd, "njit": njit}
    exec(
        f"""
@njit
def forward(x, xo, w, wo, bo, y, yo, m, act):
    if act == 1:
        simd.forward(x, xo, w, wo, bo, y, yo, m, {K}, {N}, 1)
    else:
        simd.forward(x, xo, w, wo, bo, y, yo, m, {K}, {N}, 0)

@njit
def weight_grad(x, xo, dz, dzo, g, wo, bo, m):
    simd.weight_grad(x, xo, dz, dzo, g, wo, bo, m, {K}, {N})

@njit
def transpose(w, wo, wt):
    simd.transpose(w, wo, wt, {K}, {N})

@njit
def input_grad(dz, dzo, wt, wto, dx, dxo, h, ho, m, mask):
    if mask:
        simd.input_grad(dz, dzo, wt, wto, dx, dxo, h, ho, m, {K}, {N}, 1)
    else:
        simd.input_grad(dz, dzo, wt, wto, dx, dxo, h, ho, m, {K}, {N}, 0)
""",
        scope,
    )
    return scope


_cache = {}


def kernels(K, N):
    if (K, N) not in _cache:
        _cache[K, N] = _compiled(K, N)
    return _cache[K, N]


def _close(got, want, dtype):
    """Equal to rounding: sums of K terms in another order (and with fused
    multiply-adds) differ by a few ulps of the largest term."""
    eps = 1e-5 if dtype == np.float32 else 1e-13
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=eps, atol=eps * scale)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K,N", SHAPES)
def test_products_equal_numpy(K, N, dtype):
    rng = np.random.default_rng(K * 100 + N)
    k = kernels(K, N)
    pad = 3  # every matrix sits at an offset inside a larger buffer
    theta = rng.standard_normal(pad + K * N + N + pad).astype(dtype)
    wo, bo = pad, pad + K * N
    W, b = theta[wo:bo].reshape(K, N), theta[bo : bo + N]
    wt = np.full(N * K + 5, np.nan, dtype)
    if N > 1:
        k["transpose"](theta, wo, wt)
        np.testing.assert_array_equal(wt[: N * K].reshape(N, K), W.T)
        assert np.isnan(wt[N * K :]).all()  # nothing written past W.T
    for m in ROWS:
        X = rng.standard_normal((m, K)).astype(dtype)
        x = np.concatenate([np.zeros(pad, dtype), X.ravel()])
        for act in (0, 1):
            y = np.full(pad + m * N + pad, np.nan, dtype)
            k["forward"](x, pad, theta, wo, bo, y, pad, m, act)
            want = X @ W + b
            if act:
                want = np.maximum(want, 0)
            got = y[pad : pad + m * N].reshape(m, N)
            _close(got, want, dtype)
            assert np.isnan(y[:pad]).all() and np.isnan(y[pad + m * N :]).all()
        dZ = rng.standard_normal((m, N)).astype(dtype)
        dz = np.concatenate([np.zeros(pad, dtype), dZ.ravel()])
        g = np.full_like(theta, np.nan)
        k["weight_grad"](x, pad, dz, pad, g, wo, bo, m)
        _close(g[wo:bo].reshape(K, N), X.T @ dZ, dtype)
        _close(g[bo : bo + N], dZ.sum(0), dtype)
        assert np.isnan(g[:wo]).all() and np.isnan(g[bo + N :]).all()
        H = rng.standard_normal((m, K)).astype(dtype)
        h = np.concatenate([np.zeros(pad, dtype), H.ravel()])
        source, so = (wt, 0) if N > 1 else (theta, wo)  # N = 1: W is W.T
        for mask in (0, 1):
            dx = np.full(pad + m * K + pad, np.nan, dtype)
            k["input_grad"](dz, pad, source, so, dx, pad, h, pad, m, mask)
            want = dZ @ W.T
            if mask:
                want = np.where(H > 0, want, 0)
            got = dx[pad : pad + m * K].reshape(m, K)
            _close(got, want, dtype)
            assert np.isnan(dx[:pad]).all() and np.isnan(dx[pad + m * K :]).all()


def test_relu_keeps_nan_like_the_loops():
    """ReLU keeps x where x > 0 or x is NaN and writes 0 elsewhere, as
    activations.activate_flat's max(x, 0) does (a NaN must stay visible to
    the divergence checks); the backward mask (H > 0) drops NaN positions,
    as activate_backward_flat does."""
    k = kernels(2, 8)
    theta = np.zeros(2 * 8 + 8, np.float32)
    theta[16:] = [np.nan, -1, 0, 1, 2, -2, np.inf, -np.inf]
    x = np.zeros(2, np.float32)
    y = np.empty(8, np.float32)
    k["forward"](x, 0, theta, 0, 16, y, 0, 1, 1)
    np.testing.assert_array_equal(y, [np.nan, 0, 0, 1, 2, 0, np.inf, 0])
    from fastbp.kernels.activations import activation_backward, activation_forward

    z = theta[16:].copy()
    loops = np.empty_like(z)
    activation_forward(z, loops, 1, (0.0, 0.0))
    np.testing.assert_array_equal(y, loops)
    k8 = kernels(8, 1)
    dz = np.ones(1, np.float32)
    dx = np.empty(8, np.float32)
    w = np.ones(9, np.float32)
    k8["input_grad"](dz, 0, w, 0, dx, 0, z, 0, 1, 1)
    want = np.empty_like(z)
    activation_backward(z, np.ones(8, np.float32), want, 1, (0.0, 0.0))
    np.testing.assert_array_equal(dx, want)


def test_vector_width_is_known():
    assert simd.vector_bytes() in (16, 32, 64)
