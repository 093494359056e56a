"""The layer API (fastbp.layers, fastbp.losses) against the NumPy reference.

Every layer's forward and backward is compared with ``reference`` in float32
and float64 under the per-dtype tolerances of ``conftest.TOL``, for batch 1,
odd sizes and sizes past the BLAS threshold. Buffers are reused while the batch
size stays the same, so tests change it back and forth and check the results
stay right. Error tests check the exception class, that the message is one line
naming the layer and the offending shape, and that no Numba error leaks out.
"""

import numpy as np
import pytest
import reference as ref
from conftest import TOL
from numba.core.errors import NumbaError

import fastbp
from fastbp import (
    GELU,
    CrossEntropyLoss,
    LeakyReLU,
    Linear,
    MSELoss,
    Parameter,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
)

# Helpers ---------------------------------------------------------------------

ACTIVATIONS = {
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "gelu": GELU,
    "sigmoid": Sigmoid,
    "tanh": Tanh,
}

#: (n_samples, in_features, out_features): 1x1, batch 1, odd sizes, one
#: input or output feature, and a product above the BLAS threshold.
LINEAR_SHAPES = [(1, 1, 1), (1, 5, 3), (3, 5, 7), (4, 1, 6), (7, 13, 1), (65, 67, 129)]

ACTIVATION_SHAPES = [(1, 1), (1, 7), (5, 3), (33, 65)]


def _shape_id(shape):
    return "x".join(map(str, shape))


def randn(rng, shape, dtype, scale=1.0):
    """Standard normal values times scale, C-contiguous, of the given dtype."""
    return (scale * rng.standard_normal(shape)).astype(dtype)


def assert_matches(actual, expected, tol):
    np.testing.assert_allclose(actual, expected, **tol)


def assert_clean_error(excinfo, *fragments):
    """One-line message containing every fragment, and not a Numba error."""
    exc = excinfo.value
    assert not isinstance(exc, NumbaError), type(exc)
    message = str(exc)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def linear(in_features, out_features, dtype, seed=0, bias_rng=None):
    """A Linear with He weights from ``seed`` and, if bias_rng, a random bias
    (the default zero bias would leave bias handling untested)."""
    layer = Linear(in_features, out_features, rng=seed, dtype=dtype)
    if bias_rng is not None:
        layer.bias.data[...] = bias_rng.standard_normal(out_features)
    return layer


def ref_forward(layers, x):
    """Every intermediate value (float64) of the layers applied in order."""
    values = [np.asarray(x, np.float64)]
    for layer in layers:
        a = values[-1]
        if isinstance(layer, Linear):
            a = ref.dense_forward(a, layer.weight.data, layer.bias.data)
        elif isinstance(layer, ReLU):
            a = ref.relu_forward(a)
        elif isinstance(layer, LeakyReLU):
            a = ref.leaky_relu_forward(a, layer.negative_slope)
        elif isinstance(layer, GELU):
            a = ref.gelu_forward(a)
        elif isinstance(layer, Sigmoid):
            a = ref.sigmoid_forward(a)
        elif isinstance(layer, Tanh):
            a = ref.tanh_forward(a)
        else:
            raise AssertionError(layer)
        values.append(a)
    return values


def ref_backward(layers, values, dY):
    """(gradients by "index.name", dX) for ``values`` from ref_forward."""
    grads = {}
    for i in reversed(range(len(layers))):
        layer, x, y = layers[i], values[i], values[i + 1]
        if isinstance(layer, Linear):
            dW, db, dY = ref.dense_backward(x, layer.weight.data, dY)
            grads[f"{i}.weight"], grads[f"{i}.bias"] = dW, db
        elif isinstance(layer, ReLU):
            dY = ref.relu_backward(x, dY)
        elif isinstance(layer, LeakyReLU):
            dY = ref.leaky_relu_backward(x, dY, layer.negative_slope)
        elif isinstance(layer, GELU):
            dY = ref.gelu_backward(x, dY)
        elif isinstance(layer, Sigmoid):
            dY = ref.sigmoid_backward(y, dY)
        else:
            dY = ref.tanh_backward(y, dY)
    return grads, dY


def mlp(widths, act, dtype, rng, first=None):
    """Sequential Linear/act/Linear/... with random biases; ``first`` is an
    optional activation placed before the first Linear."""
    layers = [first()] if first else []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        if i:
            layers.append(ACTIVATIONS[act]())
        layers.append(linear(a, b, dtype, seed=100 + i, bias_rng=rng))
    return Sequential(*layers)


def check_model_against_reference(model, x, dY, tol):
    """Forward output and every gradient of model agree with the reference."""
    y = model.forward(x)
    values = ref_forward(model.layers, x)
    assert y.dtype == x.dtype
    assert_matches(y, values[-1], tol)
    dX = model.backward(dY)
    grads, dX_ref = ref_backward(model.layers, values, dY)
    for name, p in model.named_parameters():
        assert_matches(p.grad, grads[name], tol)
    return dX, dX_ref


# Linear ----------------------------------------------------------------------


@pytest.mark.parametrize("shape", LINEAR_SHAPES, ids=_shape_id)
def test_linear_forward_matches_reference(rng, dtype, tol, shape):
    n, k, m = shape
    layer = linear(k, m, dtype, bias_rng=rng)
    x = randn(rng, (n, k), dtype)
    y = layer(x)
    assert y.shape == (n, m) and y.dtype == dtype
    assert_matches(y, ref.dense_forward(x, layer.weight.data, layer.bias.data), tol)


@pytest.mark.parametrize("shape", LINEAR_SHAPES, ids=_shape_id)
def test_linear_backward_matches_reference(rng, dtype, tol, shape):
    n, k, m = shape
    layer = linear(k, m, dtype, bias_rng=rng)
    x = randn(rng, (n, k), dtype)
    dY = randn(rng, (n, m), dtype, scale=1.0 / np.sqrt(n))
    layer.forward(x)
    dX = layer.backward(dY)
    dW, db, dX_ref = ref.dense_backward(x, layer.weight.data, dY)
    assert dX.shape == (n, k) and dX.dtype == dtype
    assert_matches(dX, dX_ref, tol)
    assert_matches(layer.weight.grad, dW, tol)
    assert_matches(layer.bias.grad, db, tol)


def test_linear_backward_overwrites_gradients(rng, dtype, tol):
    # backward stores gradients (as the classic Affine layer), never adds.
    layer = linear(4, 3, dtype, bias_rng=rng)
    x = randn(rng, (5, 4), dtype)
    layer.forward(x)
    layer.backward(randn(rng, (5, 3), dtype))
    dY = randn(rng, (5, 3), dtype)
    layer.forward(x)
    layer.backward(dY)
    dW, db, _ = ref.dense_backward(x, layer.weight.data, dY)
    assert_matches(layer.weight.grad, dW, tol)
    assert_matches(layer.bias.grad, db, tol)


def test_linear_without_input_grad_returns_none(rng, dtype, tol):
    layer = linear(4, 3, dtype, bias_rng=rng)
    layer.needs_input_grad = False
    x = randn(rng, (6, 4), dtype)
    dY = randn(rng, (6, 3), dtype)
    layer.forward(x)
    assert layer.backward(dY) is None
    dW, db = ref.dense_backward_params(x, dY)
    assert_matches(layer.weight.grad, dW, tol)
    assert_matches(layer.bias.grad, db, tol)


def test_linear_buffers_follow_batch_size(rng, dtype, tol):
    layer = linear(4, 3, dtype, bias_rng=rng)
    W, b = layer.weight.data, layer.bias.data
    xa, xb = randn(rng, (5, 4), dtype), randn(rng, (5, 4), dtype)
    xc = randn(rng, (2, 4), dtype)
    ya = layer(xa)
    assert_matches(ya, ref.dense_forward(xa, W, b), tol)
    yb = layer(xb)
    assert yb is ya  # same batch size: the output buffer is reused
    assert_matches(yb, ref.dense_forward(xb, W, b), tol)
    yc = layer(xc)
    assert yc.shape == (2, 3)
    assert_matches(yc, ref.dense_forward(xc, W, b), tol)
    # Back to 5 rows, then backward at 5 rows, then at 2 rows, then 5 again.
    for x in (xa, xc, xa):
        dY = randn(rng, (x.shape[0], 3), dtype)
        assert_matches(layer(x), ref.dense_forward(x, W, b), tol)
        dX = layer.backward(dY)
        dW, db, dX_ref = ref.dense_backward(x, W, dY)
        assert dX.shape == x.shape
        assert_matches(dX, dX_ref, tol)
        assert_matches(layer.weight.grad, dW, tol)
        assert_matches(layer.bias.grad, db, tol)


def test_linear_input_grad_buffer_reused_for_same_batch(rng, dtype):
    layer = linear(4, 3, dtype)
    x = randn(rng, (5, 4), dtype)
    layer(x)
    first = layer.backward(randn(rng, (5, 3), dtype))
    layer(x)
    assert layer.backward(randn(rng, (5, 3), dtype)) is first


def test_linear_default_dtype_is_float32():
    layer = Linear(3, 2, rng=0)
    assert layer.dtype == np.float32
    assert layer.weight.data.dtype == np.float32
    assert layer.bias.data.dtype == np.float32


def test_linear_parameters_shapes_and_names(dtype):
    layer = Linear(3, 2, rng=0, dtype=dtype)
    weight, bias = layer.parameters()
    assert weight is layer.weight and bias is layer.bias
    assert isinstance(weight, Parameter)
    assert (weight.name, bias.name) == ("weight", "bias")
    assert weight.shape == (3, 2) and bias.shape == (2,)
    assert weight.grad.shape == (3, 2) and bias.grad.shape == (2,)
    assert weight.data.dtype == dtype and weight.grad.dtype == dtype
    assert weight.data.flags.c_contiguous


# Linear initialization -------------------------------------------------------


def test_linear_init_he_std():
    layer = Linear(1000, 500, init="he", rng=1, dtype=np.float64)
    w = layer.weight.data
    std = np.sqrt(2.0 / 1000)
    # 500,000 draws: the sample std is within ~0.1% of sigma (3 standard errors
    # of 0.1%), the mean within 3 sigma / sqrt(n) of 0.
    assert abs(w.std() / std - 1.0) < 5e-3
    assert abs(w.mean()) < 3 * std / np.sqrt(w.size)
    # Normal, not uniform: 68.3% of draws lie within one sigma.
    assert abs(np.mean(np.abs(w) < std) - 0.6827) < 0.005


def test_linear_init_xavier_bound():
    layer = Linear(600, 400, init="xavier", rng=2, dtype=np.float64)
    w = layer.weight.data
    bound = np.sqrt(6.0 / (600 + 400))
    assert np.max(np.abs(w)) <= bound
    assert np.max(w) > 0.999 * bound and np.min(w) < -0.999 * bound
    # Uniform on (-a, a): std a / sqrt(3), half the draws within a / 2.
    assert abs(w.std() / (bound / np.sqrt(3.0)) - 1.0) < 5e-3
    assert abs(np.mean(np.abs(w) < bound / 2) - 0.5) < 0.005


def test_linear_init_pytorch_bound():
    # torch.nn.Linear's default: weight and bias ~ U(-a, a), a = 1/sqrt(fan_in)
    layer = Linear(600, 400, init="pytorch", rng=3, dtype=np.float64)
    bound = 1.0 / np.sqrt(600)
    for values in (layer.weight.data, layer.bias.data):
        assert np.max(np.abs(values)) <= bound
    w = layer.weight.data
    assert np.max(w) > 0.999 * bound and np.min(w) < -0.999 * bound
    assert abs(w.std() / (bound / np.sqrt(3.0)) - 1.0) < 5e-3
    assert abs(np.mean(np.abs(w) < bound / 2) - 0.5) < 0.005
    b = layer.bias.data  # 400 draws: not all zero, both signs, uniform spread
    assert b.min() < -bound / 2 and b.max() > bound / 2
    assert abs(b.std() / (bound / np.sqrt(3.0)) - 1.0) < 0.15


def test_linear_init_pytorch_draws_weight_then_bias():
    layer = Linear(6, 4, init="pytorch", rng=7, dtype=np.float64)
    gen = np.random.default_rng(7)
    bound = 1.0 / np.sqrt(6)
    np.testing.assert_array_equal(layer.weight.data, gen.uniform(-bound, bound, (6, 4)))
    np.testing.assert_array_equal(layer.bias.data, gen.uniform(-bound, bound, 4))


def test_mlp_init_pytorch_every_linear():
    model = fastbp.mlp([5, 8, 3], "relu", init="pytorch", rng=0, dtype=np.float64)
    linears = [layer for layer in model.layers if isinstance(layer, Linear)]
    assert [layer.init for layer in linears] == ["pytorch", "pytorch"]
    for layer in linears:
        bound = 1.0 / np.sqrt(layer.in_features)
        assert np.all(np.abs(layer.bias.data) <= bound)
        assert np.any(layer.bias.data != 0)


@pytest.mark.parametrize("init", ["he", "xavier"])
def test_linear_init_bias_zero(init, dtype):
    layer = Linear(7, 5, init=init, rng=0, dtype=dtype)
    np.testing.assert_array_equal(layer.bias.data, np.zeros(5, dtype))
    np.testing.assert_array_equal(layer.weight.grad, np.zeros((7, 5), dtype))
    np.testing.assert_array_equal(layer.bias.grad, np.zeros(5, dtype))


@pytest.mark.parametrize("init", ["he", "xavier", "pytorch"])
def test_linear_init_seed_reproducible(init):
    a = Linear(6, 4, init=init, rng=123)
    b = Linear(6, 4, init=init, rng=123)
    c = Linear(6, 4, init=init, rng=124)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    assert not np.array_equal(a.weight.data, c.weight.data)


def test_linear_init_generator_accepted():
    a = Linear(6, 4, rng=np.random.default_rng(5))
    b = Linear(6, 4, rng=5)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)


def test_linear_init_float32_is_cast_of_float64_draw():
    a = Linear(6, 4, rng=9, dtype=np.float32)
    b = Linear(6, 4, rng=9, dtype=np.float64)
    np.testing.assert_array_equal(a.weight.data, b.weight.data.astype(np.float32))


@pytest.mark.parametrize("init", ["HE", "glorot", "", None])
def test_linear_init_invalid_raises(init):
    with pytest.raises(ValueError) as excinfo:
        Linear(3, 2, init=init)
    assert_clean_error(excinfo, "Linear", "init", repr(init))


@pytest.mark.parametrize("param", ["in_features", "out_features"])
@pytest.mark.parametrize("value", [0, -1, 2.5, True, "3", None])
def test_linear_size_invalid_raises(param, value):
    sizes = {"in_features": 3, "out_features": 2, param: value}
    with pytest.raises(ValueError) as excinfo:
        Linear(sizes["in_features"], sizes["out_features"])
    assert_clean_error(excinfo, "Linear", param, repr(value))


@pytest.mark.parametrize("bad", [np.float16, np.int32, np.complex128])
def test_linear_dtype_invalid_raises(bad):
    with pytest.raises(TypeError) as excinfo:
        Linear(3, 2, dtype=bad)
    assert_clean_error(excinfo, "Linear", "dtype", np.dtype(bad).name)


# Activations -----------------------------------------------------------------

REF_ACT = {
    "relu": (ref.relu_forward, lambda x, y, dY: ref.relu_backward(x, dY)),
    "leaky_relu": (
        ref.leaky_relu_forward,
        lambda x, y, dY: ref.leaky_relu_backward(x, dY),
    ),
    "gelu": (ref.gelu_forward, lambda x, y, dY: ref.gelu_backward(x, dY)),
    "sigmoid": (ref.sigmoid_forward, lambda x, y, dY: ref.sigmoid_backward(y, dY)),
    "tanh": (ref.tanh_forward, lambda x, y, dY: ref.tanh_backward(y, dY)),
}


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
@pytest.mark.parametrize("shape", ACTIVATION_SHAPES, ids=_shape_id)
def test_activation_forward_backward_match_reference(rng, dtype, tol, act, shape):
    layer = ACTIVATIONS[act]()
    x = randn(rng, shape, dtype, scale=3.0)
    dY = randn(rng, shape, dtype)
    forward, backward = REF_ACT[act]
    y = layer(x)
    assert y.shape == shape and y.dtype == dtype
    y_ref = forward(x)
    assert_matches(y, y_ref, tol)
    dX = layer.backward(dY)
    assert dX.shape == shape and dX.dtype == dtype
    assert_matches(dX, backward(x, y_ref, dY), tol)


def test_relu_zero_input_gives_zero_output_and_gradient(dtype):
    layer = ReLU()
    x = np.array([[-1.0, 0.0, 2.0]], dtype)
    np.testing.assert_array_equal(layer(x), np.array([[0.0, 0.0, 2.0]], dtype))
    dX = layer.backward(np.array([[5.0, 6.0, 7.0]], dtype))
    np.testing.assert_array_equal(dX, np.array([[0.0, 0.0, 7.0]], dtype))


@pytest.mark.parametrize("act", ["sigmoid", "tanh"])
def test_activation_saturates_without_nan(dtype, tol, act):
    layer = ACTIVATIONS[act]()
    x = np.array([[-1000.0, -100.0, -30.0, 0.0, 30.0, 100.0, 1000.0]], dtype)
    y = layer(x)
    assert np.all(np.isfinite(y))
    assert_matches(y, REF_ACT[act][0](x), tol)
    dX = layer.backward(np.ones_like(x))
    assert np.all(np.isfinite(dX))


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_activation_buffers_follow_batch_size(rng, dtype, tol, act):
    layer = ACTIVATIONS[act]()
    forward, backward = REF_ACT[act]
    xa, xb = randn(rng, (5, 3), dtype), randn(rng, (5, 3), dtype)
    xc = randn(rng, (1, 3), dtype)
    ya = layer(xa)
    yb = layer(xb)
    assert yb is ya  # same batch size: the output buffer is reused
    assert_matches(yb, forward(xb), tol)
    for x in (xc, xa, xc):
        dY = randn(rng, x.shape, dtype)
        y = layer(x)
        assert y.shape == x.shape
        assert_matches(y, forward(x), tol)
        assert_matches(layer.backward(dY), backward(x, forward(x), dY), tol)


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_activation_has_no_parameters(act):
    assert ACTIVATIONS[act]().parameters() == []


# Layer errors ----------------------------------------------------------------


def _layers_for_errors(dtype):
    """(layer, input width) pairs: a Linear and each activation, all fixed to
    dtype (the activations through a Sequential, which sets their dtype)."""
    lin = Linear(2, 8, rng=0, dtype=dtype)
    acts = [cls() for cls in ACTIVATIONS.values()]
    Sequential(Linear(2, 8, rng=0, dtype=dtype), *acts)
    return [(lin, 2)] + [(a, 8) for a in acts]


def test_layer_wrong_dtype_raises_type_error():
    for layer, width in _layers_for_errors(np.float32):
        x = np.zeros((3, width), np.float64)
        with pytest.raises(TypeError) as excinfo:
            layer(x)
        assert_clean_error(excinfo, repr(layer), "float64", "float32")


def test_layer_non_array_raises_type_error():
    for layer, width in _layers_for_errors(np.float32):
        with pytest.raises(TypeError) as excinfo:
            layer([[0.0] * width])
        assert_clean_error(excinfo, repr(layer), "list")


@pytest.mark.parametrize("shape", [(2,), (1, 3, 2), ()], ids=["1d", "3d", "scalar"])
def test_layer_wrong_ndim_raises(dtype, shape):
    layer = Linear(2, 8, rng=0, dtype=dtype)
    x = np.zeros(shape, dtype)
    with pytest.raises(ValueError) as excinfo:
        layer(x)
    assert_clean_error(excinfo, repr(layer), str(shape))


def test_activation_wrong_ndim_raises(dtype):
    for layer, _ in _layers_for_errors(dtype)[1:]:
        x = np.zeros((2, 4, 8), dtype)
        with pytest.raises(ValueError) as excinfo:
            layer(x)
        assert_clean_error(excinfo, repr(layer), "(2, 4, 8)")


@pytest.mark.parametrize("shape", [(3, 3), (3, 1), (0, 2)])
def test_linear_wrong_feature_count_raises(dtype, shape):
    layer = Linear(2, 8, rng=0, dtype=dtype)
    with pytest.raises(ValueError) as excinfo:
        layer(np.zeros(shape, dtype))
    assert_clean_error(excinfo, repr(layer), str(shape))


@pytest.mark.parametrize("layout", ["strided", "fortran"])
def test_layer_non_contiguous_raises(dtype, layout):
    for layer, width in _layers_for_errors(dtype):
        if layout == "strided":
            x = np.ones((3, 2 * width), dtype)[:, ::2]
        else:
            x = np.asfortranarray(np.ones((3, width), dtype))
        assert not x.flags.c_contiguous
        with pytest.raises(ValueError) as excinfo:
            layer(x)
        assert_clean_error(excinfo, repr(layer), f"(3, {width})", "contiguous")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_layer_non_finite_input_raises(dtype, bad):
    for layer, width in _layers_for_errors(dtype):
        x = np.zeros((3, width), dtype)
        x[2, width - 1] = bad
        with pytest.raises(ValueError) as excinfo:
            layer(x)
        assert_clean_error(excinfo, repr(layer), f"(3, {width})", "NaN or inf")


def test_layer_backward_before_forward_raises(dtype):
    layers = [layer for layer, _ in _layers_for_errors(dtype)]
    model = Sequential(Linear(2, 3, rng=0, dtype=dtype), Tanh())
    for layer in [Linear(2, 8, rng=0, dtype=dtype), *layers[1:], model]:
        with pytest.raises(RuntimeError) as excinfo:
            layer.backward(np.zeros((3, 8), dtype))
        assert_clean_error(excinfo, "backward() called before forward()")


def test_layer_backward_wrong_shape_raises(rng, dtype):
    for layer, width in _layers_for_errors(dtype):
        layer(randn(rng, (4, width), dtype))
        with pytest.raises(ValueError) as excinfo:
            layer.backward(np.zeros((3, 8), dtype))
        assert_clean_error(excinfo, repr(layer), "(3, 8)", "(4, 8)")


def test_layer_backward_wrong_dtype_raises(rng):
    for layer, width in _layers_for_errors(np.float64):
        layer(randn(rng, (4, width), np.float64))
        with pytest.raises(TypeError) as excinfo:
            layer.backward(np.zeros((4, 8), np.float32))
        assert_clean_error(excinfo, repr(layer), "dY", "float32", "float64")


def test_layer_backward_non_finite_passes_through(rng, dtype):
    # A diverging model's gradients are data, not a user error: they flow
    # through (training reports divergence from the loss value).
    for layer, width in _layers_for_errors(dtype):
        layer(randn(rng, (4, width), dtype))
        dY = np.zeros((4, 8), dtype)
        dY[1, 1] = np.nan
        layer.backward(dY)
        assert (
            np.isnan(layer.parameters()[0].grad).any() if layer.parameters() else True
        )


# Sequential: forward and backward --------------------------------------------

SEQ_WIDTHS = [(3, 1), (3, 5, 2), (7, 9, 4, 3), (67, 129, 65)]


def _widths_id(widths):
    return "-".join(map(str, widths))


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
@pytest.mark.parametrize("widths", SEQ_WIDTHS, ids=_widths_id)
@pytest.mark.parametrize("n", [1, 6])
def test_sequential_forward_backward_match_reference(rng, dtype, tol, act, widths, n):
    model = mlp(widths, act, dtype, rng)
    x = randn(rng, (n, widths[0]), dtype)
    dY = randn(rng, (n, widths[-1]), dtype)
    dX, _ = check_model_against_reference(model, x, dY, tol)
    assert dX is None  # the first layer is a Linear: no input gradient


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_sequential_leading_activation_returns_input_grad(rng, dtype, tol, act):
    model = mlp((4, 5, 3), act, dtype, rng, first=ACTIVATIONS[act])
    x = randn(rng, (5, 4), dtype)
    dY = randn(rng, (5, 3), dtype)
    dX, dX_ref = check_model_against_reference(model, x, dY, tol)
    assert dX.shape == x.shape and dX.dtype == dtype
    assert_matches(dX, dX_ref, tol)


def test_sequential_ending_with_activation_matches_reference(rng, dtype, tol):
    # Linear + trailing ReLU (fused) and Linear + trailing Sigmoid.
    for last in (ReLU, Sigmoid):
        model = Sequential(
            linear(3, 6, dtype, seed=1, bias_rng=rng),
            ReLU(),
            linear(6, 4, dtype, seed=2, bias_rng=rng),
            last(),
        )
        x = randn(rng, (5, 3), dtype)
        dY = randn(rng, (5, 4), dtype)
        check_model_against_reference(model, x, dY, tol)


def test_sequential_mixed_activations_match_reference(rng, dtype, tol):
    model = Sequential(
        linear(3, 6, dtype, seed=1, bias_rng=rng),
        ReLU(),
        linear(6, 5, dtype, seed=2, bias_rng=rng),
        Tanh(),
        linear(5, 4, dtype, seed=3, bias_rng=rng),
        Sigmoid(),
        linear(4, 2, dtype, seed=4, bias_rng=rng),
    )
    x = randn(rng, (7, 3), dtype)
    check_model_against_reference(model, x, randn(rng, (7, 2), dtype), tol)


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_sequential_buffers_follow_batch_size(rng, dtype, tol, act):
    model = mlp((3, 6, 2), act, dtype, rng)
    for n in (5, 5, 1, 5, 2, 1):
        x = randn(rng, (n, 3), dtype)
        dY = randn(rng, (n, 2), dtype)
        check_model_against_reference(model, x, dY, tol)


def test_sequential_forward_reuses_output_buffer(rng, dtype):
    model = mlp((3, 6, 2), "relu", dtype, rng)
    first = model(randn(rng, (4, 3), dtype))
    assert model(randn(rng, (4, 3), dtype)) is first


def test_sequential_call_equals_forward(rng, dtype):
    model = mlp((3, 6, 2), "tanh", dtype, rng)
    x = randn(rng, (4, 3), dtype)
    expected = model.forward(x).copy()
    np.testing.assert_array_equal(model(x), expected)


def test_sequential_len_getitem_and_features(dtype):
    layers = [
        Linear(3, 4, rng=0, dtype=dtype),
        Tanh(),
        Linear(4, 2, rng=1, dtype=dtype),
    ]
    model = Sequential(*layers)
    assert len(model) == 3
    assert all(model[i] is layer for i, layer in enumerate(layers))
    assert (model.in_features, model.out_features) == (3, 2)
    assert model.dtype == dtype


# Sequential: parameter packing -----------------------------------------------


def test_sequential_packs_parameters_into_flat_views(dtype):
    layers = [
        Linear(3, 4, rng=0, dtype=dtype),
        ReLU(),
        Linear(4, 2, rng=1, dtype=dtype),
    ]
    before = [p.data.copy() for layer in layers for p in layer.parameters()]
    model = Sequential(*layers)
    params = model.parameters()
    assert len(params) == 4
    total = sum(p.data.size for p in params)
    assert model.flat_data.shape == (total,) and model.flat_grad.shape == (total,)
    assert model.flat_data.dtype == dtype and model.flat_grad.dtype == dtype
    for p, old in zip(params, before, strict=True):
        assert np.shares_memory(p.data, model.flat_data)
        assert np.shares_memory(p.grad, model.flat_grad)
        assert p.data.shape == old.shape and p.grad.shape == old.shape
        np.testing.assert_array_equal(p.data, old)  # values survive packing
    np.testing.assert_array_equal(
        model.flat_data, np.concatenate([old.ravel() for old in before])
    )


def test_sequential_flat_views_are_live(rng, dtype):
    model = Sequential(
        Linear(3, 4, rng=0, dtype=dtype), Linear(4, 2, rng=1, dtype=dtype)
    )
    model.flat_data[...] = np.arange(model.flat_data.size)
    np.testing.assert_array_equal(model[0].weight.data.ravel(), np.arange(12))
    # 3*4 weights, 4 biases, 4*2 weights, then the last 2 biases.
    np.testing.assert_array_equal(model[1].bias.data, [24, 25])
    x = randn(rng, (2, 3), dtype)
    model(x)
    model.backward(np.ones((2, 2), dtype))
    grads = np.concatenate([p.grad.ravel() for p in model.parameters()])
    np.testing.assert_array_equal(model.flat_grad, grads)
    assert np.any(model.flat_grad != 0)


def test_sequential_named_parameters():
    model = Sequential(
        Linear(3, 4, rng=0), ReLU(), Linear(4, 5, rng=1), Tanh(), Linear(5, 1, rng=2)
    )
    named = list(model.named_parameters())
    assert [name for name, _ in named] == [
        "0.weight",
        "0.bias",
        "2.weight",
        "2.bias",
        "4.weight",
        "4.bias",
    ]
    assert [p for _, p in named] == model.parameters()
    assert named[2][1] is model[2].weight


def test_sequential_mixed_dtypes_raise_type_error():
    a = Linear(2, 3, rng=0, dtype=np.float32)
    b = Linear(3, 1, rng=0, dtype=np.float64)
    with pytest.raises(TypeError) as excinfo:
        Sequential(a, Tanh(), b)
    assert_clean_error(excinfo, repr(a), repr(b), "float32", "float64")


def test_sequential_mismatched_widths_raise_value_error():
    a = Linear(2, 3, rng=0)
    b = Linear(4, 1, rng=0)
    with pytest.raises(ValueError) as excinfo:
        Sequential(a, ReLU(), b)
    assert_clean_error(excinfo, repr(a), repr(b), "3", "4")


def test_sequential_empty_raises_value_error():
    with pytest.raises(ValueError) as excinfo:
        Sequential()
    assert_clean_error(excinfo, "Sequential")


def test_sequential_non_layer_raises_type_error():
    with pytest.raises(TypeError) as excinfo:
        Sequential(Linear(2, 3, rng=0), np.tanh)
    assert_clean_error(excinfo, "Sequential", "layer 1")


def test_sequential_first_linear_skips_input_grad(rng, dtype):
    model = Sequential(
        Linear(3, 4, rng=0, dtype=dtype), Tanh(), Linear(4, 2, rng=1, dtype=dtype)
    )
    assert model[0].needs_input_grad is False
    assert model[2].needs_input_grad is True
    model(randn(rng, (5, 3), dtype))
    assert model.backward(randn(rng, (5, 2), dtype)) is None


# Sequential: errors ----------------------------------------------------------


def test_sequential_wrong_dtype_raises_type_error():
    model = Sequential(Linear(2, 8, rng=0), Tanh(), Linear(8, 1, rng=1))
    with pytest.raises(TypeError) as excinfo:
        model(np.zeros((3, 2), np.float64))
    assert_clean_error(excinfo, "Sequential", "float64", "float32")


def test_sequential_wrong_features_raise_value_error(dtype):
    first = Linear(2, 8, rng=0, dtype=dtype)
    model = Sequential(first, Tanh(), Linear(8, 1, rng=1, dtype=dtype))
    with pytest.raises(ValueError) as excinfo:
        model(np.zeros((3, 5), dtype))
    assert_clean_error(excinfo, "Sequential", repr(first), "(3, 5)")


@pytest.mark.parametrize("case", ["1d", "strided", "fortran", "nan", "inf"])
def test_sequential_bad_input_raises_value_error(dtype, case):
    model = Sequential(Linear(2, 8, rng=0, dtype=dtype), Tanh())
    if case == "1d":
        x, shape = np.zeros(2, dtype), "(2,)"
    elif case == "strided":
        x, shape = np.zeros((3, 4), dtype)[:, ::2], "(3, 2)"
    elif case == "fortran":
        x, shape = np.asfortranarray(np.zeros((3, 2), dtype)), "(3, 2)"
    else:
        x, shape = np.zeros((3, 2), dtype), "(3, 2)"
        x[1, 0] = np.nan if case == "nan" else np.inf
    with pytest.raises(ValueError) as excinfo:
        model(x)
    assert_clean_error(excinfo, "Sequential", shape)


def test_sequential_backward_wrong_shape_raises(rng, dtype):
    model = Sequential(
        Linear(2, 8, rng=0, dtype=dtype), Tanh(), Linear(8, 3, rng=1, dtype=dtype)
    )
    model(randn(rng, (4, 2), dtype))
    with pytest.raises(ValueError) as excinfo:
        model.backward(np.zeros((4, 2), dtype))
    assert_clean_error(excinfo, repr(model[2]), "(4, 2)", "(4, 3)")


# Sequential: predict ---------------------------------------------------------


def test_sequential_predict_returns_copy(rng, dtype):
    model = mlp((3, 6, 2), "tanh", dtype, rng)
    x = randn(rng, (4, 3), dtype)
    first = model.predict(x)
    expected = first.copy()
    assert not np.shares_memory(first, model(x))
    first[...] = 99.0
    np.testing.assert_array_equal(model.predict(x), expected)


def test_sequential_predict_accepts_lists(rng, dtype, tol):
    model = mlp((2, 6, 1), "tanh", dtype, rng)
    rows = [[0, 1], [1, 0], [0.5, -0.25]]
    y = model.predict(rows)
    assert y.shape == (3, 1) and y.dtype == dtype
    assert_matches(y, ref_forward(model.layers, np.array(rows, dtype))[-1], tol)
    # One sample as a flat list is one row.
    np.testing.assert_array_equal(model.predict([0, 1]), y[:1])


def test_sequential_predict_matches_forward(rng, dtype):
    model = mlp((3, 6, 2), "relu", dtype, rng)
    x = randn(rng, (5, 3), dtype)
    np.testing.assert_array_equal(model.predict(x), model.forward(x))


# Sequential: architecture and astype -----------------------------------------


def test_sequential_architecture_round_trip(rng, dtype):
    model = Sequential(
        Linear(2, 8, rng=0, dtype=dtype),
        Tanh(),
        Linear(8, 4, rng=1, dtype=dtype),
        ReLU(),
        Linear(4, 3, rng=2, dtype=dtype),
        Sigmoid(),
    )
    arch = model.architecture()
    assert arch == [
        {"type": "linear", "in_features": 2, "out_features": 8},
        {"type": "tanh"},
        {"type": "linear", "in_features": 8, "out_features": 4},
        {"type": "relu"},
        {"type": "linear", "in_features": 4, "out_features": 3},
        {"type": "sigmoid"},
    ]
    rebuilt = Sequential.from_architecture(arch, dtype=dtype, rng=7)
    assert rebuilt.architecture() == arch
    assert rebuilt.dtype == dtype
    assert [type(layer) for layer in rebuilt.layers] == [
        type(layer) for layer in model.layers
    ]
    again = Sequential.from_architecture(arch, dtype=dtype, rng=7)
    np.testing.assert_array_equal(again.flat_data, rebuilt.flat_data)
    assert rebuilt.predict(randn(rng, (3, 2), dtype)).shape == (3, 3)


def test_sequential_from_architecture_default_dtype_float32():
    model = Sequential.from_architecture(
        [{"type": "linear", "in_features": 2, "out_features": 1}], rng=0
    )
    assert model.dtype == np.float32


@pytest.mark.parametrize(
    "spec",
    [{"type": "conv"}, {"kind": "linear"}, "linear", None],
    ids=["unknown-type", "no-type", "string", "none"],
)
def test_sequential_from_architecture_unknown_layer_raises(spec):
    arch = [{"type": "linear", "in_features": 2, "out_features": 3}, spec]
    with pytest.raises(ValueError) as excinfo:
        Sequential.from_architecture(arch)
    assert_clean_error(excinfo, "from_architecture", "layer 1", repr(spec))


def test_sequential_astype_float64_copies_values_exactly(rng):
    model = mlp((3, 6, 4, 2), "tanh", np.float32, rng)
    copy = model.astype(np.float64)
    assert copy.dtype == np.float64 and model.dtype == np.float32
    assert copy.architecture() == model.architecture()
    np.testing.assert_array_equal(copy.flat_data, model.flat_data.astype(np.float64))
    for (name, p), (name64, p64) in zip(
        model.named_parameters(), copy.named_parameters(), strict=True
    ):
        assert name == name64
        np.testing.assert_array_equal(p64.data, p.data.astype(np.float64))
    assert not np.shares_memory(copy.flat_data, model.flat_data)
    x = randn(rng, (4, 3), np.float32)
    np.testing.assert_allclose(
        copy.predict(x.astype(np.float64)),
        model.predict(x),
        **TOL[np.dtype(np.float32)],
    )
    copy.flat_data[...] = 0.0
    assert np.any(model.flat_data != 0)


def test_sequential_astype_float32_rounds_values(rng):
    model = mlp((3, 5, 2), "relu", np.float64, rng)
    copy = model.astype(np.float32)
    assert copy.dtype == np.float32
    np.testing.assert_array_equal(copy.flat_data, model.flat_data.astype(np.float32))


# Losses ----------------------------------------------------------------------

LOSS_SHAPES = [(1, 1), (1, 4), (3, 5), (7, 2), (64, 10)]


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("shape", LOSS_SHAPES, ids=_shape_id)
def test_mse_loss_value_and_gradient_match_reference(rng, dtype, tol, reduction, shape):
    loss = MSELoss(reduction=reduction)
    y, t = randn(rng, shape, dtype), randn(rng, shape, dtype)
    value = loss(y, t)
    assert isinstance(value, float)
    mean = reduction == "mean"
    np.testing.assert_allclose(value, ref.mse_forward(y, t, mean), **tol)
    grad = loss.backward()
    assert grad.shape == shape and grad.dtype == dtype
    assert_matches(grad, ref.mse_backward(y, t, mean), tol)


def test_mse_loss_default_reduction_is_mean():
    assert MSELoss().reduction == "mean"


def test_mse_loss_worked_values():
    y = np.array([[1.0, 2.0], [3.0, 4.0]])
    t = np.array([[0.0, 2.0], [1.0, 1.0]])
    # Squared errors 1, 0, 4, 9: sum 14.
    loss_mean, loss_sum = MSELoss("mean"), MSELoss("sum")
    assert loss_mean(y, t) == pytest.approx(14.0 / 4, abs=1e-15)
    np.testing.assert_allclose(loss_mean.backward(), 2.0 * (y - t) / 4, atol=1e-15)
    assert loss_sum(y, t) == pytest.approx(7.0, abs=1e-15)
    np.testing.assert_allclose(loss_sum.backward(), y - t, atol=1e-15)


@pytest.mark.parametrize("reduction", ["MEAN", "none", "", None])
def test_mse_loss_bad_reduction_raises(reduction):
    with pytest.raises(ValueError) as excinfo:
        MSELoss(reduction=reduction)
    assert_clean_error(excinfo, "MSELoss", "reduction", repr(reduction))


def test_mse_loss_shape_mismatch_raises(dtype):
    loss = MSELoss()
    with pytest.raises(ValueError) as excinfo:
        loss(np.zeros((4, 2), dtype), np.zeros((4, 3), dtype))
    assert_clean_error(excinfo, "MSELoss", "(4, 3)", "(4, 2)")


def test_mse_loss_target_dtype_mismatch_raises():
    with pytest.raises(TypeError) as excinfo:
        MSELoss()(np.zeros((4, 2), np.float32), np.zeros((4, 2), np.float64))
    assert_clean_error(excinfo, "MSELoss", "float64", "float32")


def test_mse_loss_non_finite_target_raises(dtype):
    t = np.zeros((4, 2), dtype)
    t[3, 1] = np.nan
    with pytest.raises(ValueError) as excinfo:
        MSELoss()(np.zeros((4, 2), dtype), t)
    assert_clean_error(excinfo, "MSELoss", "(4, 2)", "NaN or inf")


def test_loss_backward_before_forward_raises():
    for loss in (MSELoss(), CrossEntropyLoss()):
        with pytest.raises(RuntimeError) as excinfo:
            loss.backward()
        assert_clean_error(excinfo, repr(loss), "before forward()")


CE_SHAPES = [(1, 2), (1, 5), (4, 3), (9, 7), (64, 10)]


@pytest.mark.parametrize("shape", CE_SHAPES, ids=_shape_id)
def test_cross_entropy_loss_value_and_gradient_match_reference(rng, dtype, tol, shape):
    n, c = shape
    y = randn(rng, shape, dtype, scale=2.0)
    t = rng.integers(0, c, n)
    loss = CrossEntropyLoss()
    value = loss(y, t)
    assert isinstance(value, float)
    np.testing.assert_allclose(value, ref.softmax_cross_entropy_forward(y, t), **tol)
    grad = loss.backward()
    assert grad.shape == shape and grad.dtype == dtype
    assert_matches(grad, ref.softmax_cross_entropy_backward(y, t), tol)
    # Each row of (softmax - onehot) / n sums to zero.
    np.testing.assert_allclose(grad.sum(axis=1), 0.0, atol=tol["atol"])


@pytest.mark.parametrize("label_dtype", [np.int32, np.int64, np.uint8])
def test_cross_entropy_loss_accepts_integer_labels(rng, tol, label_dtype):
    y = randn(rng, (4, 3), np.float64)
    t = np.array([0, 2, 1, 2], label_dtype)
    loss = CrossEntropyLoss()
    expected = ref.softmax_cross_entropy_forward(y, t.astype(np.int64))
    np.testing.assert_allclose(loss(y, t), expected, **TOL[np.dtype(np.float64)])


def test_cross_entropy_loss_large_logits_stay_finite(dtype):
    y = np.array([[1000.0, 0.0], [0.0, -1000.0], [-50.0, 50.0]], dtype)
    t = np.array([1, 0, 1])
    loss = CrossEntropyLoss()
    value = loss(y, t)
    # Row 0 costs 1000, rows 1 and 2 cost ~0: mean 1000 / 3.
    assert value == pytest.approx(1000.0 / 3, rel=1e-6)
    grad = loss.backward()
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, [[1 / 3, -1 / 3], [0, 0], [0, 0]], atol=1e-6)


@pytest.mark.parametrize("labels", [[0.0, 1.0, 2.0], [True, False, True]])
def test_cross_entropy_loss_float_labels_raise_type_error(labels):
    with pytest.raises(TypeError) as excinfo:
        CrossEntropyLoss()(np.zeros((3, 3)), np.array(labels))
    assert_clean_error(excinfo, "CrossEntropyLoss", "integer")


def test_cross_entropy_loss_list_labels_raise_type_error():
    with pytest.raises(TypeError) as excinfo:
        CrossEntropyLoss()(np.zeros((3, 3)), [0, 1, 2])
    assert_clean_error(excinfo, "CrossEntropyLoss", "list")


@pytest.mark.parametrize("bad", [-1, 3, 100])
def test_cross_entropy_loss_out_of_range_labels_raise(dtype, bad):
    t = np.array([0, bad, 1])
    with pytest.raises(ValueError) as excinfo:
        CrossEntropyLoss()(np.zeros((3, 3), dtype), t)
    assert_clean_error(excinfo, "CrossEntropyLoss", "[0, 3)", "(3, 3)", str(bad))


@pytest.mark.parametrize("t_shape", [(4,), (3, 1), (2,)])
def test_cross_entropy_loss_shape_mismatch_raises(dtype, t_shape):
    with pytest.raises(ValueError) as excinfo:
        CrossEntropyLoss()(np.zeros((3, 3), dtype), np.zeros(t_shape, np.int64))
    assert_clean_error(excinfo, "CrossEntropyLoss", str(t_shape), "(3, 3)")


def test_cross_entropy_loss_non_finite_logits_give_non_finite_loss(dtype):
    # As torch.nn.CrossEntropyLoss: a diverged model's loss is NaN, no error;
    # train() turns it into a DivergenceError.
    y = np.zeros((3, 3), dtype)
    y[0, 0] = np.nan
    assert np.isnan(CrossEntropyLoss()(y, np.zeros(3, np.int64)))
    assert np.isnan(CrossEntropyLoss().value(y, np.zeros(3, np.int64)))


def test_mlp_builds_linear_layers_with_activations_between():
    model = fastbp.mlp([3, 5, 4, 2], "tanh", rng=0, dtype=np.float64)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Linear", "Tanh", "Linear", "Tanh", "Linear"]
    assert [lay.out_features for lay in model.layers[::2]] == [5, 4, 2]
    assert model.dtype == np.float64
    # The same seed gives the same weights as drawing the layers in turn.
    gen = np.random.default_rng(0)
    first = fastbp.Linear(3, 5, init="xavier", rng=gen, dtype=np.float64)
    np.testing.assert_array_equal(model.layers[0].weight.data, first.weight.data)


@pytest.mark.parametrize(
    ("widths", "activation"), [([3], "relu"), ([3, 2], "softplus")]
)
def test_mlp_rejects_bad_arguments(widths, activation):
    with pytest.raises(ValueError, match="mlp"):
        fastbp.mlp(widths, activation)
