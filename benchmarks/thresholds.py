"""Measure where fastbp's dense kernels should switch from loops to BLAS.

    python benchmarks/thresholds.py [--threads N]

For each shape (n, k) @ (k, m), times the two implementations of a dense layer
step that ``fastbp.kernels.dense`` chooses between, on flat buffers as the
fused epoch kernel holds them, each called many times
inside one compiled loop (so Python dispatch is excluded, as in the fused epoch
kernel): the serial hand-written loops, and ``np.dot`` (SciPy's BLAS) plus the
fused bias pass. Forward (Y = X W + b), weight gradient (dW = X^T dY, db) and
input gradient (dX = dY W^T) are timed separately and summed. Prints µs per
layer step for both and the ratio; the threshold in ``fastbp/_config.py`` sits
where the ratio crosses 1.

Then times the Adam update over a flat parameter vector serially and with a
``prange`` over 64k-element blocks, to see whether element-wise kernels should
go parallel for large models.
"""

import argparse
import statistics
import time

import numba
import numpy as np
from numba import prange

from fastbp._threads import thread_limit
from fastbp.kernels.dense import (
    _add_bias,
    _column_sums,
    _dense_backward_input_loop,
    _dense_backward_params_loop,
    _dense_forward_loop,
)
from fastbp.kernels.optim import _adam

SHAPES = [
    (4, 2, 8),
    (4, 8, 1),
    (8, 8, 8),
    (16, 8, 16),
    (16, 16, 16),
    (32, 16, 16),
    (32, 32, 16),
    (32, 32, 32),
    (64, 32, 32),
    (64, 32, 64),
    (64, 64, 64),
    (128, 64, 64),
    (128, 128, 128),
]


@numba.njit(cache=False, error_model="numpy")
def _loops(x, w, b, y, dy, dw, db, dx, n, k, m, reps):
    for _ in range(reps):
        _dense_forward_loop(x, 0, w, 0, b, y, 0, n, k, m, False)
        _dense_backward_params_loop(x, 0, dy, 0, dw, 0, n, k, m)
        _column_sums(dy, 0, db, n, m)
        _dense_backward_input_loop(dy, 0, w, 0, dx, 0, n, k, m)


@numba.njit(cache=False, error_model="numpy")
def _blas(x, w, b, y, dy, dw, db, dx, n, k, m, reps):
    X, W, Y = x.reshape((n, k)), w.reshape((k, m)), y.reshape((n, m))
    dY, dW, dX = dy.reshape((n, m)), dw.reshape((k, m)), dx.reshape((n, k))
    for _ in range(reps):
        np.dot(X, W, Y)
        _add_bias(y, 0, b, n, m, False)
        np.dot(X.T, dY, dW)
        _column_sums(dy, 0, db, n, m)
        np.dot(dY, W.T, dX)


@numba.njit(cache=False, error_model="numpy", parallel=True)
def _adam_prange(p, g, m, v, reps):
    # The same update, split into 64k-element blocks across threads.
    block = 65536
    for _ in range(reps):
        for c in prange((p.shape[0] + block - 1) // block):
            lo, hi = c * block, min(p.shape[0], (c + 1) * block)
            _adam(
                p[lo:hi], g[lo:hi], m[lo:hi], v[lo:hi], 1e-3, 0.9, 0.999, 1e-8, 0.0, 1
            )


@numba.njit(cache=False, error_model="numpy")
def _adam_serial(p, g, m, v, reps):
    for _ in range(reps):
        _adam(p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 0.0, 1)


def _median_us(fn, args, reps, rounds=7):
    """Median µs per repetition of fn(*args, reps) over rounds calls."""
    fn(*args, 1)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn(*args, reps)
        times.append((time.perf_counter() - start) / reps)
    return 1e6 * statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    header = ("n x k -> m", "MACs", "loops us", "BLAS us", "loops/BLAS")
    print(
        "".join(f"{h:>{w}}" for h, w in zip(header, (16, 9, 11, 10, 12), strict=True))
    )
    with thread_limit(args.threads):
        for n, k, m in SHAPES:
            arrays = (
                rng.standard_normal(n * k, dtype=np.float32),  # X
                rng.standard_normal(k * m, dtype=np.float32),  # W
                rng.standard_normal(m, dtype=np.float32),  # b
                np.empty(n * m, np.float32),  # Y
                rng.standard_normal(n * m, dtype=np.float32),  # dY
                np.empty(k * m, np.float32),  # dW
                np.empty(m, np.float32),  # db
                np.empty(n * k, np.float32),  # dX
                n,
                k,
                m,
            )
            reps = max(10, int(2e7 / (n * k * m)))
            loops = _median_us(_loops, arrays, reps)
            blas = _median_us(_blas, arrays, reps)
            print(
                f"{f'{n}x{k}->{m}':>16}{n * k * m:>9}{loops:>11.3f}{blas:>10.3f}"
                f"{loops / blas:>12.2f}"
            )
    print(f"\nAdam update, serial vs prange ({numba.get_num_threads()} threads):")
    for size in (10_000, 100_000, 1_000_000, 2_100_000):
        arrays = [rng.random(size, dtype=np.float32) for _ in range(4)]
        serial = _median_us(_adam_serial, arrays, 20)
        parallel = _median_us(_adam_prange, arrays, 20)
        print(f"{size:>12,} params: serial {serial:9.1f} us, prange {parallel:9.1f} us")


if __name__ == "__main__":
    main()
