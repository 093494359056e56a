"""Thread counts: results do not depend on them beyond float rounding, and
thread_limit always restores the previous counts."""

import numba
import numpy as np
import pytest

import fastbp
from fastbp import kernels
from fastbp._threads import blas_threads, thread_limit


def _train_blas_sized(threads):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((256, 96))
    T = rng.standard_normal((256, 4))
    model = fastbp.Sequential(
        fastbp.Linear(96, 64, rng=1, dtype=np.float64),
        fastbp.ReLU(),
        fastbp.Linear(64, 4, rng=2, dtype=np.float64),
    )
    optimizer = fastbp.SGD(model.parameters(), lr=0.01, momentum=0.9)
    fastbp.train(
        model,
        fastbp.MSELoss(),
        optimizer,
        X,
        T,
        epochs=3,
        batch_size=64,
        threads=threads,
    )
    return model.flat_data.copy()


def test_threads_training_result_independent_of_thread_count():
    # 64x96->64 products take the BLAS path, which splits work across threads.
    one, two = _train_blas_sized(1), _train_blas_sized(2)
    np.testing.assert_allclose(one, two, rtol=1e-12, atol=1e-13)


def test_threads_dense_kernels_independent_of_thread_count():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((128, 784), dtype=np.float32)
    W = rng.standard_normal((784, 256), dtype=np.float32)
    b = rng.standard_normal(256, dtype=np.float32)
    results = []
    for n in (1, 2):
        Y = np.empty((128, 256), np.float32)
        with thread_limit(n):
            kernels.dense_relu_forward(X, W, b, Y)
        results.append(Y)
    np.testing.assert_allclose(results[0], results[1], rtol=1e-4, atol=1e-4)


def test_threads_limit_restores_counts_after_an_error():
    before_numba, before_blas = numba.get_num_threads(), blas_threads()
    with pytest.raises(RuntimeError), thread_limit(1):
        assert numba.get_num_threads() == 1
        assert all(n == 1 for n in blas_threads())
        raise RuntimeError("boom")
    assert numba.get_num_threads() == before_numba
    assert blas_threads() == before_blas


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_threads_limit_rejects_non_positive_counts(bad):
    with pytest.raises(ValueError, match="threads"), thread_limit(bad):
        pass
