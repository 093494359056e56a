"""Every public kernel in fastbp.kernels against the NumPy reference.

Each test runs for float32 and float64 (the ``dtype`` fixture) and compares with
``reference`` under the per-dtype tolerances of ``conftest.TOL``. Output buffers
start as NaN, so an entry a kernel never writes fails the comparison.
"""

import numpy as np
import pytest
import reference as ref
from numba.core import errors as numba_errors

from fastbp import kernels
from fastbp._config import DENSE_BLAS_MIN_MACS

# Helpers ---------------------------------------------------------------------


def randn(rng, shape, dtype, scale=1.0):
    """Standard normal values times scale, C-contiguous, of the given dtype."""
    return (scale * rng.standard_normal(shape)).astype(dtype)


def nans(shape, dtype):
    """An output buffer every entry of which fails a comparison until written."""
    return np.full(shape, np.nan, dtype=dtype)


def assert_matches(actual, expected, tol):
    """actual has its own dtype kept and equals expected within tol."""
    np.testing.assert_allclose(actual, expected, **tol)


def _boundary_shapes():
    """(n, in, out) just below and exactly at the BLAS threshold of dense.

    Derived from the configured threshold, so both code paths keep being
    exercised when the number is re-measured.
    """
    in_features, out_features = 7, 9
    per_row = in_features * out_features
    n_at = -(-DENSE_BLAS_MIN_MACS // per_row)  # smallest n with n*7*9 >= min
    shapes = [(n_at, in_features, out_features)]
    if n_at > 1:
        shapes.insert(0, (n_at - 1, in_features, out_features))
    return shapes


DENSE_SHAPES = [
    (1, 1, 1),
    (1, 5, 3),  # batch 1
    (3, 5, 7),  # odd sizes
    (4, 1, 6),  # one input feature
    (5, 6, 1),  # one output feature
    *_boundary_shapes(),  # serial loop just below, BLAS at the threshold
    (65, 67, 129),  # BLAS, odd sizes
    (1, 100, 50),  # BLAS with batch 1
    (128, 784, 256),  # BLAS, MNIST-sized first layer
]


def _shape_id(shape):
    n, k, m = shape
    return f"{n}x{k}->{m}"


def _uses_blas(shape):
    n, k, m = shape
    return n * k * m >= DENSE_BLAS_MIN_MACS


def dense_inputs(rng, shape, dtype):
    """X, W, b with W ~ N(0, 1/in_features), so that Y = X @ W + b is O(1)."""
    n, k, m = shape
    X = randn(rng, (n, k), dtype)
    W = randn(rng, (k, m), dtype, scale=1.0 / np.sqrt(k))
    b = randn(rng, m, dtype)
    return X, W, b


# Dense -----------------------------------------------------------------------


def test_dense_shapes_cover_both_paths():
    paths = {_uses_blas(s) for s in DENSE_SHAPES}
    assert paths == {False, True}
    below, at = _boundary_shapes()
    assert not _uses_blas(below) and _uses_blas(at)


@pytest.mark.parametrize("shape", DENSE_SHAPES, ids=_shape_id)
def test_dense_forward_matches_reference(rng, dtype, tol, shape):
    X, W, b = dense_inputs(rng, shape, dtype)
    Y = nans((shape[0], shape[2]), dtype)
    assert kernels.dense_forward(X, W, b, Y) is None
    assert Y.dtype == dtype
    assert_matches(Y, ref.dense_forward(X, W, b), tol)


@pytest.mark.parametrize("shape", DENSE_SHAPES, ids=_shape_id)
def test_dense_relu_forward_matches_reference(rng, dtype, tol, shape):
    X, W, b = dense_inputs(rng, shape, dtype)
    Y = nans((shape[0], shape[2]), dtype)
    kernels.dense_relu_forward(X, W, b, Y)
    expected = ref.dense_relu_forward(X, W, b)
    assert_matches(Y, expected, tol)
    assert np.all(Y >= 0)


@pytest.mark.parametrize("shape", DENSE_SHAPES, ids=_shape_id)
def test_dense_forward_overwrites_stale_output(rng, dtype, tol, shape):
    # A second call into the same buffer must not accumulate onto the first.
    X, W, b = dense_inputs(rng, shape, dtype)
    Y = nans((shape[0], shape[2]), dtype)
    kernels.dense_forward(X, W, b, Y)
    X2, W2, b2 = dense_inputs(rng, shape, dtype)
    kernels.dense_forward(X2, W2, b2, Y)
    assert_matches(Y, ref.dense_forward(X2, W2, b2), tol)


@pytest.mark.parametrize("shape", DENSE_SHAPES, ids=_shape_id)
def test_dense_backward_matches_reference(rng, dtype, tol, shape):
    n, k, m = shape
    X, W, _ = dense_inputs(rng, shape, dtype)
    dY = randn(rng, (n, m), dtype, scale=1.0 / np.sqrt(n))
    dW, db, dX = nans((k, m), dtype), nans(m, dtype), nans((n, k), dtype)
    assert kernels.dense_backward(X, W, dY, dW, db, dX) is None
    dW_ref, db_ref, dX_ref = ref.dense_backward(X, W, dY)
    assert_matches(dW, dW_ref, tol)
    assert_matches(db, db_ref, tol)
    assert_matches(dX, dX_ref, tol)


@pytest.mark.parametrize("shape", DENSE_SHAPES, ids=_shape_id)
def test_dense_backward_params_matches_reference(rng, dtype, tol, shape):
    n, k, m = shape
    X, _, _ = dense_inputs(rng, shape, dtype)
    dY = randn(rng, (n, m), dtype, scale=1.0 / np.sqrt(n))
    dW, db = nans((k, m), dtype), nans(m, dtype)
    assert kernels.dense_backward_params(X, dY, dW, db) is None
    dW_ref, db_ref = ref.dense_backward_params(X, dY)
    assert_matches(dW, dW_ref, tol)
    assert_matches(db, db_ref, tol)


def _dense_forward_args(dtype, n=3, k=5, m=7, w_rows=None, b_len=None, y_shape=None):
    return (
        np.zeros((n, k), dtype),
        np.zeros((w_rows or k, m), dtype),
        np.zeros(b_len or m, dtype),
        np.zeros(y_shape or (n, m), dtype),
    )


@pytest.mark.parametrize(
    "bad",
    [dict(w_rows=6), dict(b_len=8), dict(y_shape=(4, 7)), dict(y_shape=(3, 8))],
    ids=["W-rows", "b-length", "Y-rows", "Y-cols"],
)
@pytest.mark.parametrize("name", ["dense_forward", "dense_relu_forward"])
def test_dense_forward_rejects_mismatched_shapes(dtype, name, bad):
    with pytest.raises(ValueError, match="dense"):
        getattr(kernels, name)(*_dense_forward_args(dtype, **bad))


@pytest.mark.parametrize(
    "which, shape",
    [
        ("W", (6, 7)),
        ("W", (5, 8)),
        ("dY", (4, 7)),
        ("dW", (5, 8)),
        ("dW", (6, 7)),
        ("db", (8,)),
        ("dX", (3, 6)),
        ("dX", (4, 5)),
    ],
)
def test_dense_backward_rejects_mismatched_shapes(dtype, which, shape):
    n, k, m = 3, 5, 7
    arrays = {
        "X": np.zeros((n, k), dtype),
        "W": np.zeros((k, m), dtype),
        "dY": np.zeros((n, m), dtype),
        "dW": np.zeros((k, m), dtype),
        "db": np.zeros(m, dtype),
        "dX": np.zeros((n, k), dtype),
    }
    arrays[which] = np.zeros(shape, dtype)
    with pytest.raises(ValueError, match="dense"):
        kernels.dense_backward(*arrays.values())


@pytest.mark.parametrize(
    "which, shape", [("dY", (4, 7)), ("dW", (5, 8)), ("dW", (6, 7)), ("db", (8,))]
)
def test_dense_backward_params_rejects_mismatched_shapes(dtype, which, shape):
    n, k, m = 3, 5, 7
    arrays = {
        "X": np.zeros((n, k), dtype),
        "dY": np.zeros((n, m), dtype),
        "dW": np.zeros((k, m), dtype),
        "db": np.zeros(m, dtype),
    }
    arrays[which] = np.zeros(shape, dtype)
    with pytest.raises(ValueError, match="dense"):
        kernels.dense_backward_params(*arrays.values())


def _assert_friendly_type_error(excinfo, name):
    exc = excinfo.value
    assert type(exc) is TypeError
    assert not isinstance(exc, numba_errors.NumbaError)
    message = str(exc)
    assert "\n" not in message
    assert f"{name}()" in message


@pytest.mark.parametrize("name", ["dense_forward", "dense_relu_forward"])
def test_dense_forward_dtype_mismatch_raises_type_error(name):
    X = np.zeros((3, 5), np.float32)
    W = np.zeros((5, 7), np.float64)
    b = np.zeros(7, np.float64)
    Y = np.zeros((3, 7), np.float64)
    with pytest.raises(TypeError) as excinfo:
        getattr(kernels, name)(X, W, b, Y)
    _assert_friendly_type_error(excinfo, name)


def test_dense_backward_dtype_mismatch_raises_type_error():
    X = np.zeros((3, 5), np.float32)
    W = np.zeros((5, 7), np.float64)
    dY = np.zeros((3, 7), np.float64)
    dW, db, dX = np.zeros((5, 7)), np.zeros(7), np.zeros((3, 5))
    with pytest.raises(TypeError) as excinfo:
        kernels.dense_backward(X, W, dY, dW, db, dX)
    _assert_friendly_type_error(excinfo, "dense_backward")


def test_dense_forward_non_array_argument_raises_type_error():
    X = np.zeros((3, 5))
    with pytest.raises(TypeError) as excinfo:
        kernels.dense_forward(X, None, np.zeros(7), np.zeros((3, 7)))
    _assert_friendly_type_error(excinfo, "dense_forward")


_F32, _F64 = np.float32, np.float64

MIXED_DTYPE_CALLS = {
    "relu_forward": lambda: kernels.relu_forward(np.ones(3, _F32), np.zeros(3, _F64)),
    "tanh_backward": lambda: kernels.tanh_backward(
        np.ones(3, _F32), np.ones(3, _F32), np.zeros(3, _F64)
    ),
    "mse_forward": lambda: kernels.mse_forward(
        np.ones((2, 2), _F32), np.zeros((2, 2), _F64), True
    ),
    "softmax_cross_entropy_backward": lambda: kernels.softmax_cross_entropy_backward(
        np.ones((2, 3), _F32), np.zeros(2, np.int64), np.zeros((2, 3), _F64)
    ),
    "sgd_update": lambda: kernels.sgd_update(
        np.ones(3, _F32), np.ones(3, _F64), np.zeros(3, _F32), 0.1, 0.9, 0.0, False
    ),
    "adam_update": lambda: kernels.adam_update(
        np.ones(3, _F64),
        np.ones(3, _F64),
        np.zeros(3, _F32),
        np.zeros(3, _F64),
        1e-3,
        0.9,
        0.999,
        1e-8,
        0.0,
        1,
    ),
}


@pytest.mark.parametrize("name", sorted(MIXED_DTYPE_CALLS))
def test_elementwise_dtype_mismatch_raises_type_error(name):
    # Element-wise kernels have no np.dot to trip over mixed dtypes; they check.
    with pytest.raises(TypeError) as excinfo:
        MIXED_DTYPE_CALLS[name]()
    _assert_friendly_type_error(excinfo, name)


# Activations -----------------------------------------------------------------

ELEMENTWISE_SHAPES = [(1, 1), (1, 7), (3, 5), (65, 129), (11,)]


def _elementwise_id(shape):
    return "x".join(map(str, shape))


def activation_input(rng, shape, dtype):
    """Normal values scaled by 3, with some exact zeros (ReLU's edge) mixed in."""
    X = randn(rng, shape, dtype, scale=3.0)
    X.reshape(-1)[::4] = 0.0
    return X


FORWARD = {
    "relu": (kernels.relu_forward, ref.relu_forward),
    "sigmoid": (kernels.sigmoid_forward, ref.sigmoid_forward),
    "tanh": (kernels.tanh_forward, ref.tanh_forward),
}
BACKWARD = {
    "relu": (kernels.relu_backward, ref.relu_backward),
    "sigmoid": (kernels.sigmoid_backward, ref.sigmoid_backward),
    "tanh": (kernels.tanh_backward, ref.tanh_backward),
}


@pytest.mark.parametrize("shape", ELEMENTWISE_SHAPES, ids=_elementwise_id)
@pytest.mark.parametrize("act", list(FORWARD))
def test_activation_forward_matches_reference(rng, dtype, tol, act, shape):
    kernel, reference = FORWARD[act]
    X = activation_input(rng, shape, dtype)
    Y = nans(shape, dtype)
    assert kernel(X, Y) is None
    assert_matches(Y, reference(X), tol)


@pytest.mark.parametrize("act", list(FORWARD))
def test_activation_forward_in_place(rng, dtype, tol, act):
    # The docstrings allow Y to be X.
    kernel, reference = FORWARD[act]
    X = activation_input(rng, (3, 5), dtype)
    expected = reference(X)
    kernel(X, X)
    assert_matches(X, expected, tol)


@pytest.mark.parametrize("shape", ELEMENTWISE_SHAPES, ids=_elementwise_id)
@pytest.mark.parametrize("act", list(BACKWARD))
def test_activation_backward_matches_reference(rng, dtype, tol, act, shape):
    # Backward kernels take the forward output Y (for ReLU, Y or X both work).
    kernel, reference = BACKWARD[act]
    X = activation_input(rng, shape, dtype)
    Y = FORWARD[act][1](X).astype(dtype)
    dY = randn(rng, shape, dtype)
    dX = nans(shape, dtype)
    assert kernel(Y, dY, dX) is None
    assert_matches(dX, reference(Y, dY), tol)


@pytest.mark.parametrize("shape", ELEMENTWISE_SHAPES, ids=_elementwise_id)
def test_relu_backward_input_and_output_give_same_mask(rng, dtype, shape):
    X = activation_input(rng, shape, dtype)
    Y = ref.relu_forward(X).astype(dtype)
    dY = randn(rng, shape, dtype)
    from_input, from_output = nans(shape, dtype), nans(shape, dtype)
    kernels.relu_backward(X, dY, from_input)
    kernels.relu_backward(Y, dY, from_output)
    np.testing.assert_array_equal(from_input, from_output)
    np.testing.assert_array_equal(from_input, np.where(X > 0, dY, 0))


@pytest.mark.parametrize("act", list(BACKWARD))
def test_activation_backward_in_place(rng, dtype, tol, act):
    # relu_backward documents dX = dY; the others write element by element too.
    kernel, reference = BACKWARD[act]
    Y = FORWARD[act][1](activation_input(rng, (3, 5), dtype)).astype(dtype)
    dY = randn(rng, (3, 5), dtype)
    expected = reference(Y, dY)
    kernel(Y, dY, dY)
    assert_matches(dY, expected, tol)


def test_sigmoid_forward_saturates_without_nan(dtype, tol):
    X = np.array([-1000.0, -100.0, -30.0, 0.0, 30.0, 100.0, 1000.0], dtype)
    Y = nans(X.shape, dtype)
    kernels.sigmoid_forward(X, Y)
    assert not np.isnan(Y).any()
    assert Y[0] == 0.0
    assert Y[3] == 0.5
    assert Y[-1] == 1.0
    assert_matches(Y, ref.sigmoid_forward(X), tol)


def test_tanh_forward_saturates_without_nan(dtype):
    X = np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0], dtype)
    Y = nans(X.shape, dtype)
    kernels.tanh_forward(X, Y)
    np.testing.assert_array_equal(Y, [-1.0, -1.0, 0.0, 1.0, 1.0])


@pytest.mark.parametrize("act", list(FORWARD))
def test_activation_forward_rejects_mismatched_shapes(dtype, act):
    kernel, _ = FORWARD[act]
    with pytest.raises(ValueError, match="same shape"):
        kernel(np.zeros((3, 4), dtype), np.zeros((4, 3), dtype))


@pytest.mark.parametrize("bad", ["A", "dY", "dX"])
@pytest.mark.parametrize("act", list(BACKWARD))
def test_activation_backward_rejects_mismatched_shapes(dtype, act, bad):
    kernel, _ = BACKWARD[act]
    arrays = {name: np.zeros((3, 4), dtype) for name in ("A", "dY", "dX")}
    arrays[bad] = np.zeros((4, 3), dtype)
    with pytest.raises(ValueError, match="same shape"):
        kernel(*arrays.values())


# Mean squared error ----------------------------------------------------------

LOSS_SHAPES = [(1, 1), (1, 7), (3, 5), (64, 10), (65, 129)]


@pytest.mark.parametrize("mean", [True, False], ids=["mean", "half-sum"])
@pytest.mark.parametrize("shape", LOSS_SHAPES, ids=_elementwise_id)
def test_mse_forward_matches_reference(rng, dtype, tol, shape, mean):
    Y, T = randn(rng, shape, dtype), randn(rng, shape, dtype)
    loss = kernels.mse_forward(Y, T, mean)
    assert isinstance(loss, float)
    assert_matches(loss, ref.mse_forward(Y, T, mean), tol)


@pytest.mark.parametrize("mean", [True, False], ids=["mean", "half-sum"])
@pytest.mark.parametrize("shape", LOSS_SHAPES, ids=_elementwise_id)
def test_mse_backward_matches_reference(rng, dtype, tol, shape, mean):
    Y, T = randn(rng, shape, dtype), randn(rng, shape, dtype)
    dY = nans(shape, dtype)
    loss = kernels.mse_backward(Y, T, mean, dY)
    assert_matches(loss, ref.mse_forward(Y, T, mean), tol)
    assert_matches(dY, ref.mse_backward(Y, T, mean), tol)


@pytest.mark.parametrize("mean", [True, False], ids=["mean", "half-sum"])
def test_mse_backward_in_place(rng, dtype, tol, mean):
    # The docstring allows dY to be Y.
    Y, T = randn(rng, (3, 5), dtype), randn(rng, (3, 5), dtype)
    expected_loss = ref.mse_forward(Y, T, mean)
    expected_grad = ref.mse_backward(Y, T, mean)
    loss = kernels.mse_backward(Y, T, mean, Y)
    assert_matches(loss, expected_loss, tol)
    assert_matches(Y, expected_grad, tol)


def test_mse_worked_example(dtype):
    # Differences 1, 0, -2, 3: squares sum to 14 over 4 elements.
    Y = np.array([[1.0, 2.0], [3.0, 4.0]], dtype)
    T = np.array([[0.0, 2.0], [5.0, 1.0]], dtype)
    assert kernels.mse_forward(Y, T, True) == 3.5
    assert kernels.mse_forward(Y, T, False) == 7.0
    dY = nans(Y.shape, dtype)
    assert kernels.mse_backward(Y, T, True, dY) == 3.5
    np.testing.assert_array_equal(dY, [[0.5, 0.0], [-1.0, 1.5]])
    assert kernels.mse_backward(Y, T, False, dY) == 7.0
    np.testing.assert_array_equal(dY, [[1.0, 0.0], [-2.0, 3.0]])


def test_mse_forward_rejects_mismatched_shapes(dtype):
    with pytest.raises(ValueError, match="mse"):
        kernels.mse_forward(np.zeros((3, 4), dtype), np.zeros((4, 3), dtype), True)


@pytest.mark.parametrize("bad", ["T", "dY"])
def test_mse_backward_rejects_mismatched_shapes(dtype, bad):
    arrays = {"Y": np.zeros((3, 4), dtype), "T": np.zeros((3, 4), dtype)}
    arrays["dY"] = np.zeros((3, 4), dtype)
    arrays[bad] = np.zeros((4, 3), dtype)
    with pytest.raises(ValueError, match="mse"):
        kernels.mse_backward(arrays["Y"], arrays["T"], True, arrays["dY"])


# Softmax and cross-entropy ---------------------------------------------------


def logits_and_labels(rng, shape, dtype):
    Z = randn(rng, shape, dtype, scale=3.0)
    labels = rng.integers(0, shape[1], size=shape[0])
    return Z, labels


@pytest.mark.parametrize("shape", LOSS_SHAPES, ids=_elementwise_id)
def test_softmax_forward_matches_reference(rng, dtype, tol, shape):
    Z, _ = logits_and_labels(rng, shape, dtype)
    P = nans(shape, dtype)
    assert kernels.softmax_forward(Z, P) is None
    assert_matches(P, ref.softmax(Z), tol)


def test_softmax_forward_in_place(rng, dtype, tol):
    Z, _ = logits_and_labels(rng, (3, 5), dtype)
    expected = ref.softmax(Z)
    kernels.softmax_forward(Z, Z)
    assert_matches(Z, expected, tol)


def test_softmax_forward_rejects_mismatched_shapes(dtype):
    with pytest.raises(ValueError, match="softmax"):
        kernels.softmax_forward(np.zeros((3, 4), dtype), np.zeros((4, 3), dtype))


@pytest.mark.parametrize("shape", LOSS_SHAPES, ids=_elementwise_id)
def test_softmax_cross_entropy_forward_matches_reference(rng, dtype, tol, shape):
    Z, labels = logits_and_labels(rng, shape, dtype)
    loss = kernels.softmax_cross_entropy_forward(Z, labels)
    assert isinstance(loss, float)
    assert_matches(loss, ref.softmax_cross_entropy_forward(Z, labels), tol)


@pytest.mark.parametrize("shape", LOSS_SHAPES, ids=_elementwise_id)
def test_softmax_cross_entropy_backward_matches_reference(rng, dtype, tol, shape):
    Z, labels = logits_and_labels(rng, shape, dtype)
    dZ = nans(shape, dtype)
    loss = kernels.softmax_cross_entropy_backward(Z, labels, dZ)
    assert_matches(loss, ref.softmax_cross_entropy_forward(Z, labels), tol)
    assert_matches(dZ, ref.softmax_cross_entropy_backward(Z, labels), tol)


def test_softmax_cross_entropy_backward_in_place(rng, dtype, tol):
    # The docstring allows dZ to be Z.
    Z, labels = logits_and_labels(rng, (6, 5), dtype)
    expected_loss = ref.softmax_cross_entropy_forward(Z, labels)
    expected_grad = ref.softmax_cross_entropy_backward(Z, labels)
    loss = kernels.softmax_cross_entropy_backward(Z, labels, Z)
    assert_matches(loss, expected_loss, tol)
    assert_matches(Z, expected_grad, tol)


def test_softmax_cross_entropy_large_logits_stay_finite(dtype, tol):
    # exp(1e4) overflows both dtypes; the max-shifted form must not.
    Z = np.array([[1e4, 0.0, -1e4], [1e4, 1e4, 0.0], [-1e4, -1e4, -1e4]], dtype)
    labels = np.array([0, 2, 1])
    # Row losses: log(1 + e^-1e4 + e^-2e4) = 0, 1e4 + log 2, log 3.
    expected = (0.0 + 1e4 + np.log(2.0) + np.log(3.0)) / 3
    loss = kernels.softmax_cross_entropy_forward(Z, labels)
    assert_matches(loss, expected, tol)
    dZ = nans(Z.shape, dtype)
    assert_matches(kernels.softmax_cross_entropy_backward(Z, labels, dZ), loss, tol)
    assert np.isfinite(dZ).all()
    expected_grad = (
        np.array([[0.0, 0.0, 0.0], [0.5, 0.5, -1.0], [1 / 3, -2 / 3, 1 / 3]]) / 3
    )
    assert_matches(dZ, expected_grad, tol)
    P = nans(Z.shape, dtype)
    kernels.softmax_forward(Z, P)
    assert_matches(P, [[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [1 / 3] * 3], tol)


@pytest.mark.parametrize("label", [-1, 5], ids=["negative", "n_classes"])
def test_softmax_cross_entropy_rejects_label_out_of_range(dtype, label):
    Z = np.zeros((3, 5), dtype)
    labels = np.array([0, label, 1])
    with pytest.raises(ValueError, match="labels"):
        kernels.softmax_cross_entropy_forward(Z, labels)
    with pytest.raises(ValueError, match="labels"):
        kernels.softmax_cross_entropy_backward(Z, labels, np.zeros((3, 5), dtype))


def test_softmax_cross_entropy_rejects_mismatched_shapes(dtype):
    Z = np.zeros((3, 5), dtype)
    with pytest.raises(ValueError, match="labels"):
        kernels.softmax_cross_entropy_forward(Z, np.array([0, 1]))
    with pytest.raises(ValueError, match="dZ"):
        kernels.softmax_cross_entropy_backward(
            Z, np.array([0, 1, 2]), np.zeros((3, 4), dtype)
        )


# Optimizers ------------------------------------------------------------------

SGD_SETTINGS = [
    dict(momentum=0.0, weight_decay=0.0, nesterov=False),
    dict(momentum=0.0, weight_decay=0.01, nesterov=False),
    dict(momentum=0.9, weight_decay=0.0, nesterov=False),
    dict(momentum=0.9, weight_decay=0.01, nesterov=False),
    dict(momentum=0.9, weight_decay=0.0, nesterov=True),
    dict(momentum=0.9, weight_decay=0.01, nesterov=True),
]


def _settings_id(settings):
    return "-".join(f"{k}={v}" for k, v in settings.items())


@pytest.mark.parametrize("settings", SGD_SETTINGS, ids=_settings_id)
def test_sgd_update_five_steps_match_reference(rng, dtype, tol, settings):
    lr = 0.1
    param = randn(rng, (4, 3), dtype)
    # Without momentum the buffer must be left alone, so NaN there must not leak.
    buf = np.zeros_like(param) if settings["momentum"] else nans(param.shape, dtype)
    param_ref, buf_ref = param.astype(np.float64), buf.astype(np.float64)
    for _ in range(5):
        grad = randn(rng, param.shape, dtype)
        assert kernels.sgd_update(param, grad, buf, lr, **settings) is None
        param_ref, buf_ref = ref.sgd_update(param_ref, grad, buf_ref, lr, **settings)
        assert_matches(param, param_ref, tol)
        if settings["momentum"]:
            assert_matches(buf, buf_ref, tol)
        else:
            assert np.isnan(buf).all()
    assert param.dtype == dtype and buf.dtype == dtype


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_adam_update_five_steps_match_reference(rng, dtype, tol, weight_decay):
    hyper = dict(lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=weight_decay)
    param = randn(rng, (4, 3), dtype)
    m, v = np.zeros_like(param), np.zeros_like(param)
    param_ref, m_ref, v_ref = (a.astype(np.float64) for a in (param, m, v))
    for step in range(1, 6):
        grad = randn(rng, param.shape, dtype)
        assert kernels.adam_update(param, grad, m, v, step=step, **hyper) is None
        param_ref, m_ref, v_ref = ref.adam_update(
            param_ref, grad, m_ref, v_ref, step=step, **hyper
        )
        assert_matches(param, param_ref, tol)
        assert_matches(m, m_ref, tol)
        assert_matches(v, v_ref, tol)


def test_adam_update_first_step_moves_by_lr(dtype):
    # At step 1 the bias-corrected m / sqrt(v) is sign(g): every entry moves
    # by lr (up to eps), whatever the size of its gradient.
    param = np.zeros(4, dtype)
    grad = np.array([1e-3, -2.0, 5.0, -1e2], dtype)
    m, v = np.zeros_like(param), np.zeros_like(param)
    kernels.adam_update(param, grad, m, v, 0.01, 0.9, 0.999, 1e-8, 0.0, 1)
    np.testing.assert_allclose(param, -0.01 * np.sign(grad), rtol=1e-4)


def test_adam_update_rejects_step_zero(dtype):
    arrays = [np.zeros(3, dtype) for _ in range(4)]
    with pytest.raises(ValueError, match="step"):
        kernels.adam_update(*arrays, 1e-3, 0.9, 0.999, 1e-8, 0.0, 0)


@pytest.mark.parametrize("bad", ["grad", "buf"])
def test_sgd_update_rejects_mismatched_shapes(dtype, bad):
    arrays = {name: np.zeros((3, 4), dtype) for name in ("param", "grad", "buf")}
    arrays[bad] = np.zeros((4, 3), dtype)
    with pytest.raises(ValueError, match="shape"):
        kernels.sgd_update(*arrays.values(), 0.1, 0.9, 0.0, False)


@pytest.mark.parametrize("bad", ["grad", "m", "v"])
def test_adam_update_rejects_mismatched_shapes(dtype, bad):
    arrays = {name: np.zeros((3, 4), dtype) for name in ("param", "grad", "m", "v")}
    arrays[bad] = np.zeros((4, 3), dtype)
    with pytest.raises(ValueError, match="shape"):
        kernels.adam_update(*arrays.values(), 1e-3, 0.9, 0.999, 1e-8, 0.0, 1)


@pytest.mark.parametrize("settings", SGD_SETTINGS, ids=_settings_id)
def test_sgd_update_matches_torch(rng, dtype, tol, settings):
    torch = pytest.importorskip("torch")
    lr = 0.1
    param = randn(rng, (4, 3), dtype)
    buf = np.zeros_like(param)
    weight = torch.nn.Parameter(torch.from_numpy(param.copy()))
    optimizer = torch.optim.SGD([weight], lr=lr, **settings)
    for _ in range(5):
        grad = randn(rng, param.shape, dtype)
        kernels.sgd_update(param, grad, buf, lr, **settings)
        weight.grad = torch.from_numpy(grad.copy())
        optimizer.step()
        assert_matches(param, weight.detach().numpy(), tol)
        if settings["momentum"]:
            state = optimizer.state[weight]["momentum_buffer"]
            assert_matches(buf, state.numpy(), tol)


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_adam_update_matches_torch(rng, dtype, tol, weight_decay):
    torch = pytest.importorskip("torch")
    hyper = dict(lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=weight_decay)
    param = randn(rng, (4, 3), dtype)
    m, v = np.zeros_like(param), np.zeros_like(param)
    weight = torch.nn.Parameter(torch.from_numpy(param.copy()))
    optimizer = torch.optim.Adam(
        [weight],
        lr=hyper["lr"],
        betas=(hyper["beta1"], hyper["beta2"]),
        eps=hyper["eps"],
        weight_decay=weight_decay,
    )
    for step in range(1, 6):
        grad = randn(rng, param.shape, dtype)
        kernels.adam_update(param, grad, m, v, step=step, **hyper)
        weight.grad = torch.from_numpy(grad.copy())
        optimizer.step()
        state = optimizer.state[weight]
        assert_matches(param, weight.detach().numpy(), tol)
        assert_matches(m, state["exp_avg"].numpy(), tol)
        assert_matches(v, state["exp_avg_sq"].numpy(), tol)


# all_finite ------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("where", [0, 7, -1], ids=["first", "middle", "last"])
def test_all_finite_detects_bad_value(rng, dtype, where, bad):
    X = randn(rng, (3, 5), dtype)
    assert kernels.all_finite(X) is True
    X.reshape(-1)[where] = bad
    assert kernels.all_finite(X) is False
    assert kernels.all_finite(X) == ref.all_finite(X)


@pytest.mark.parametrize(
    "shape", [(1, 1), (11,), (3, 5), (2, 3, 4), (0, 3)], ids=_elementwise_id
)
def test_all_finite_matches_reference(rng, dtype, shape):
    X = randn(rng, shape, dtype)
    assert kernels.all_finite(X) is True
    with np.errstate(over="ignore"):
        X = randn(rng, shape, dtype, scale=1e39)  # inf in float32, finite in float64
    assert kernels.all_finite(X) == ref.all_finite(X)


def test_all_finite_largest_finite_value_is_finite(dtype):
    X = np.array([np.finfo(dtype).max, -np.finfo(dtype).max, np.finfo(dtype).tiny])
    assert kernels.all_finite(X.astype(dtype)) is True
