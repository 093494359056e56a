"""The worked numbers of the source tutorials (docs: SEEDS.md) as spec tests.

Each test runs an example from the tutorials through fastbp's public API and
checks the numbers they give: the (x + y) z circuit, the sigmoid neuron, one
SGD step lowering the loss, XOR, and the sigmoid's vanishing gradient.
"""

import math

import numpy as np
import pytest

from fastbp import (
    SGD,
    Linear,
    MSELoss,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
    numerical_gradient,
    train,
)
from fastbp.data import xor

# f(x, y, z) = (x + y) z -------------------------------------------------------


def test_seeds_add_multiply_circuit_numerical():
    # x = -2, y = 5, z = -4: q = x + y = 3, f = q z = -12; df/dz = q = 3 and
    # df/dx = df/dy = z = -4 (add passes the gradient on, multiply swaps).
    def f(w):
        x, y, z = w
        return (x + y) * z

    w = np.array([-2.0, 5.0, -4.0])
    assert w[0] + w[1] == 3.0
    assert f(w) == -12.0
    grad = numerical_gradient(f, w, 1e-4)
    # f is bilinear, so central differences are exact up to rounding.
    np.testing.assert_allclose(grad, [-4.0, -4.0, 3.0], rtol=0, atol=1e-9)


def test_seeds_add_multiply_circuit_layers():
    # The same circuit as two Linear layers: q = [x, y] @ [[1], [1]], then
    # f = q @ [[z]]. Backward with df/df = 1 gives df/dz as the second
    # layer's weight gradient and df/dx, df/dy as the input gradient.
    add = Linear(2, 1, rng=0, dtype=np.float64)
    add.weight.data[...] = [[1.0], [1.0]]
    mul = Linear(1, 1, rng=0, dtype=np.float64)
    mul.weight.data[...] = [[-4.0]]
    q = add(np.array([[-2.0, 5.0]]))
    np.testing.assert_array_equal(q, [[3.0]])
    f = mul(q)
    np.testing.assert_array_equal(f, [[-12.0]])
    dq = mul.backward(np.ones((1, 1)))
    np.testing.assert_array_equal(mul.weight.grad, [[3.0]])  # df/dz = q
    np.testing.assert_array_equal(dq, [[-4.0]])  # df/dq = z
    dxy = add.backward(dq)
    np.testing.assert_array_equal(dxy, [[-4.0, -4.0]])  # add distributes dq


# The sigmoid neuron -----------------------------------------------------------


def test_seeds_sigmoid_neuron():
    # f = sigmoid(w0 x0 + w1 x1 + w2), w = (2, -3, -3), x = (-1, -2).
    neuron = Linear(2, 1, rng=0, dtype=np.float64)
    neuron.weight.data[...] = [[2.0], [-3.0]]
    neuron.bias.data[...] = [-3.0]
    sigmoid = Sigmoid()
    x = np.array([[-1.0, -2.0]])

    z = neuron(x)
    np.testing.assert_array_equal(z, [[1.0]])  # the dot product is 1.0
    out = sigmoid(z)
    assert out.shape == (1, 1)
    assert abs(out[0, 0] - 0.731059) < 1e-6

    dz = sigmoid.backward(np.ones((1, 1)))
    assert abs(dz[0, 0] - 0.196612) < 1e-6  # sigma (1 - sigma)
    assert neuron.needs_input_grad
    dx = neuron.backward(dz)
    np.testing.assert_allclose(dx, [[0.393224, -0.589836]], rtol=0, atol=1e-6)
    np.testing.assert_allclose(
        neuron.weight.grad, [[-0.196612], [-0.393224]], rtol=0, atol=1e-6
    )
    np.testing.assert_allclose(neuron.bias.grad, [0.196612], rtol=0, atol=1e-6)


def test_seeds_sigmoid_neuron_exact_values():
    # The rounded figures above come from sigma(1) = 1 / (1 + e^-1).
    sig = 1.0 / (1.0 + math.exp(-1.0))
    local = sig * (1.0 - sig)
    neuron = Linear(2, 1, rng=0, dtype=np.float64)
    neuron.weight.data[...] = [[2.0], [-3.0]]
    neuron.bias.data[...] = [-3.0]
    sigmoid = Sigmoid()
    out = sigmoid(neuron(np.array([[-1.0, -2.0]])))
    dx = neuron.backward(sigmoid.backward(np.ones((1, 1))))
    tol = dict(rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(out, [[sig]], **tol)
    np.testing.assert_allclose(dx, [[2 * local, -3 * local]], **tol)
    np.testing.assert_allclose(neuron.weight.grad, [[-local], [-2 * local]], **tol)
    np.testing.assert_allclose(neuron.bias.grad, [local], **tol)


# One SGD step lowers the loss -------------------------------------------------


def _three_four_one(seed, dtype):
    """2 rows x 3 features, a 3-4-1 net (Linear, ReLU, Linear), all from seed."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 3)).astype(dtype)
    t = rng.standard_normal((2, 1)).astype(dtype)
    model = Sequential(
        Linear(3, 4, rng=rng, dtype=dtype), ReLU(), Linear(4, 1, rng=rng, dtype=dtype)
    )
    return model, x, t


@pytest.mark.parametrize("seed", range(10))
def test_seeds_one_sgd_step_lowers_loss(dtype, seed):
    # The tutorial's loss fell from 2.064 to 0.790 with its own random draws;
    # assert the decrease for each of these seeds. (lr 0.1 is not small for
    # every draw: with He weights and N(0, 1) inputs about 1 seed in 12
    # overshoots, e.g. seed 13; see the small-step test below for a property
    # that holds for all.)
    model, x, t = _three_four_one(seed, dtype)
    loss = MSELoss(reduction="sum")  # 0.5 * sum((y - t)^2)
    optimizer = SGD(model.parameters(), lr=0.1)
    before = loss(model(x), t)
    y = model.predict(x).astype(np.float64)
    assert before == pytest.approx(0.5 * np.sum((y - t) ** 2), rel=1e-5)
    model.backward(loss.backward())
    data, grad = model.flat_data.copy(), model.flat_grad.copy()
    assert np.any(grad != 0)
    optimizer.step()
    # W <- W - lr dW, for every parameter.
    np.testing.assert_allclose(
        model.flat_data, data - np.asarray(0.1, dtype) * grad, rtol=1e-6, atol=1e-7
    )
    after = loss(model(x), t)
    assert after < before, (before, after)


@pytest.mark.parametrize("seed", range(50))
def test_seeds_small_sgd_step_follows_gradient(seed):
    # For a small step the loss falls by lr |g|^2 to first order: the gradient
    # is a descent direction and its size is right.
    model, x, t = _three_four_one(seed, np.float64)
    loss = MSELoss(reduction="sum")
    lr = 1e-5
    optimizer = SGD(model.parameters(), lr=lr)
    before = loss(model(x), t)
    model.backward(loss.backward())
    predicted = lr * float(model.flat_grad @ model.flat_grad)
    optimizer.step()
    after = loss(model(x), t)
    assert after < before
    assert before - after == pytest.approx(predicted, rel=1e-3)


# XOR --------------------------------------------------------------------------

XOR_SEEDS = range(5)


def _xor_model(seed):
    return Sequential(Linear(2, 8, rng=seed), Tanh(), Linear(8, 1, rng=seed + 1000))


def _assert_solves_xor(model, X, T):
    predictions = model.predict(X)
    assert predictions.shape == (4, 1)
    np.testing.assert_array_equal(predictions > 0.5, T > 0.5)


@pytest.mark.parametrize("seed", XOR_SEEDS)
def test_seeds_xor_trains_with_manual_loop(seed):
    X, T = xor()
    model = _xor_model(seed)
    loss = MSELoss()
    optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9)
    first = None
    for _ in range(1000):
        value = loss(model(X), T)
        first = value if first is None else first
        model.backward(loss.backward())
        optimizer.step()
    assert value < 0.01 * first
    _assert_solves_xor(model, X, T)


@pytest.mark.parametrize("seed", XOR_SEEDS)
@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "layer-path"])
def test_seeds_xor_trains_with_train(seed, fuse):
    X, T = xor()
    model = _xor_model(seed)
    optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9)
    result = train(
        model, MSELoss(), optimizer, X, T, epochs=1000, batch_size=4, fuse=fuse
    )
    assert result.fused is fuse
    assert result.epochs == 1000 and result.steps == 1000
    assert result.loss[-1] < 0.01 * result.loss[0]
    _assert_solves_xor(model, X, T)


# The vanishing gradient -------------------------------------------------------


@pytest.mark.parametrize("depth", [1, 2, 3, 5, 8])
def test_seeds_sigmoid_stack_vanishing_gradient(depth):
    # sigma' <= 1/4, so through L sigmoids (with W = I, b = 0 between them)
    # the gradient reaching the input is at most 0.25^L of the upstream one.
    width = 5
    rng = np.random.default_rng(depth)
    layers = []
    for _ in range(depth):
        lin = Linear(width, width, rng=rng, dtype=np.float64)
        lin.weight.data[...] = np.eye(width)
        layers += [lin, Sigmoid()]
    x = rng.standard_normal((4, width))
    dY = rng.standard_normal((4, width))

    a, local = x, np.ones_like(x)
    for layer in layers:
        a = layer(a)
        if isinstance(layer, Sigmoid):
            local = local * a * (1.0 - a)  # product of sigma' along the way
    grad = dY
    for layer in reversed(layers):
        grad = layer.backward(grad)

    assert grad.shape == x.shape
    assert np.all(np.abs(grad) <= 0.25**depth * np.abs(dY))
    np.testing.assert_allclose(grad, dY * local, rtol=1e-12, atol=0)
    if depth >= 2:
        # After the first sigmoid the inputs lie in (0, 1), away from 0
        # where sigma' peaks: strictly below the bound.
        assert np.all(np.abs(grad) < 0.25**depth * np.abs(dY))


def test_seeds_relu_stack_keeps_gradient():
    # ReLU eases it: through positive inputs its gradient is exactly 1.
    width, depth = 5, 8
    model = Sequential(
        ReLU(),
        *[
            layer
            for _ in range(depth)
            for layer in (Linear(width, width, rng=0, dtype=np.float64), ReLU())
        ],
    )
    for layer in model.layers:
        if isinstance(layer, Linear):
            layer.weight.data[...] = np.eye(width)
    x = np.abs(np.random.default_rng(0).standard_normal((3, width))) + 0.1
    dY = np.random.default_rng(1).standard_normal((3, width))
    model(x)
    np.testing.assert_array_equal(model.backward(dY), dY)


def test_seeds_sigmoid_sequential_vanishing_gradient():
    # The same through a Sequential that starts with a Sigmoid (so it returns
    # the input gradient): L = 6 sigmoids.
    width, depth = 3, 6
    layers = [Sigmoid()]
    for _ in range(depth - 1):
        layers += [Linear(width, width, rng=0, dtype=np.float64), Sigmoid()]
    model = Sequential(*layers)
    for layer in model.layers:
        if isinstance(layer, Linear):
            layer.weight.data[...] = np.eye(width)
    x = np.random.default_rng(2).standard_normal((4, width))
    dY = np.ones((4, width))
    model(x)
    grad = model.backward(dY)
    assert np.all(np.abs(grad) <= 0.25**depth)
    assert np.all(grad > 0)
