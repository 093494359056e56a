"""fastbp.gradcheck and fastbp.numerical_gradient.

Backprop's gradients of small Sequential MLPs (1 to 4 Linear layers, each
activation, each loss) agree with central differences in float64; gradcheck
leaves a float32 model untouched, and it notices a gradient that is off by 1%.
"""

import math

import numpy as np
import pytest

from fastbp import (
    GELU,
    CrossEntropyLoss,
    GradcheckResult,
    LeakyReLU,
    Linear,
    MSELoss,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
    gradcheck,
    numerical_gradient,
)

ACTIVATIONS = {
    "relu": ReLU,
    "leaky_relu": lambda: LeakyReLU(0.1),
    "gelu": GELU,
    "sigmoid": Sigmoid,
    "tanh": Tanh,
}

LOSSES = {
    "mse-mean": lambda: MSELoss("mean"),
    "mse-sum": lambda: MSELoss("sum"),
    "cross-entropy": CrossEntropyLoss,
}

#: Widths of the MLPs by number of Linear layers: odd sizes, 3 outputs.
WIDTHS = {1: (4, 3), 2: (4, 5, 3), 3: (4, 6, 5, 3), 4: (4, 7, 5, 6, 3)}

N_SAMPLES = 6

#: The largest relative error gradcheck may report for a correct gradient.
MAX_RELATIVE = 1e-6


def build_mlp(widths, act, dtype=np.float64, seed=0):
    """Linear layers of the given widths with ``act`` between them and random
    (not zero) biases, so the bias gradients are exercised."""
    rng = np.random.default_rng(seed)
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        if i:
            layers.append(ACTIVATIONS[act]())
        layer = Linear(a, b, rng=rng, dtype=dtype)
        layer.bias.data[...] = 0.5 * rng.standard_normal(b)
        layers.append(layer)
    return Sequential(*layers)


def data_for(loss_name, widths, seed=1):
    """Inputs ~ N(0, 1) (ReLU kinks are then ~1e-6 away with probability
    ~1e-6) and targets: floats for MSE, integer labels for cross-entropy."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N_SAMPLES, widths[0]))
    if loss_name == "cross-entropy":
        t = rng.integers(0, widths[-1], N_SAMPLES)
    else:
        t = rng.standard_normal((N_SAMPLES, widths[-1]))
    return x, t


def _cases():
    """One case per (depth, activation, loss); a 1-layer MLP has no
    activation, so it appears once per loss."""
    cases = []
    for loss_name in LOSSES:
        cases.append(pytest.param(1, None, loss_name, id=f"1-linear-{loss_name}"))
        for depth in (2, 3, 4):
            for act in ACTIVATIONS:
                case_id = f"{depth}-linear-{act}-{loss_name}"
                cases.append(pytest.param(depth, act, loss_name, id=case_id))
    return cases


# gradcheck on correct gradients ----------------------------------------------


@pytest.mark.parametrize("depth, act, loss_name", _cases())
def test_gradcheck_mlp_gradients_match_numerical(depth, act, loss_name):
    widths = WIDTHS[depth]
    model = build_mlp(widths, act)
    x, t = data_for(loss_name, widths)
    result = gradcheck(model, LOSSES[loss_name](), x, t, eps=1e-6)
    assert isinstance(result, GradcheckResult)
    assert list(result.relative) == [name for name, _ in model.named_parameters()]
    assert len(result.relative) == 2 * depth
    for name, rel in result.relative.items():
        assert rel < MAX_RELATIVE, (name, rel, str(result))
    assert result.max_relative == max(result.relative.values())


def test_gradcheck_mixed_activations_and_leading_activation():
    model = Sequential(
        Tanh(),
        Linear(4, 6, rng=0, dtype=np.float64),
        ReLU(),
        Linear(6, 5, rng=1, dtype=np.float64),
        Sigmoid(),
        Linear(5, 3, rng=2, dtype=np.float64),
    )
    for loss_name in LOSSES:
        x, t = data_for(loss_name, (4, 3), seed=3)
        result = gradcheck(model, LOSSES[loss_name](), x, t)
        assert set(result.relative) == {
            "1.weight",
            "1.bias",
            "3.weight",
            "3.bias",
            "5.weight",
            "5.bias",
        }
        assert result.max_relative < MAX_RELATIVE, str(result)


def test_gradcheck_standalone_linear_float64():
    layer = Linear(4, 3, rng=0, dtype=np.float64)
    layer.bias.data[...] = [0.1, -0.2, 0.3]
    x, t = data_for("mse-mean", (4, 3))
    result = gradcheck(layer, MSELoss(), x, t)
    assert set(result.relative) == {"weight", "bias"}
    assert result.max_relative < MAX_RELATIVE, str(result)


def test_gradcheck_absolute_errors_are_small():
    model = build_mlp(WIDTHS[3], "tanh")
    x, t = data_for("mse-sum", WIDTHS[3])
    result = gradcheck(model, MSELoss("sum"), x, t)
    assert set(result.absolute) == set(result.relative)
    assert max(result.absolute.values()) < 1e-7


def test_gradcheck_result_str_lists_every_parameter():
    model = build_mlp(WIDTHS[2], "relu")
    x, t = data_for("cross-entropy", WIDTHS[2])
    text = str(gradcheck(model, CrossEntropyLoss(), x, t))
    lines = text.splitlines()
    assert lines[0].split() == ["parameter", "relative", "error", "absolute", "error"]
    assert [line.split()[0] for line in lines[1:]] == [
        "0.weight",
        "0.bias",
        "2.weight",
        "2.bias",
    ]


@pytest.mark.parametrize("eps", [0.0, -1e-6, math.nan, "1e-6", None])
def test_gradcheck_invalid_eps_raises(eps):
    model = build_mlp(WIDTHS[1], None)
    x, t = data_for("mse-mean", WIDTHS[1])
    with pytest.raises(ValueError, match="eps"):
        gradcheck(model, MSELoss(), x, t, eps=eps)


# gradcheck leaves the model alone --------------------------------------------


@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_gradcheck_float32_model_checked_on_float64_copy(loss_name):
    model = build_mlp(WIDTHS[3], "tanh", dtype=np.float32)
    x, t = data_for(loss_name, WIDTHS[3])
    model.flat_grad[...] = np.arange(model.flat_grad.size)  # sentinel gradients
    data_before = model.flat_data.copy()
    grad_before = model.flat_grad.copy()
    views_before = [p.data for p in model.parameters()]

    result = gradcheck(model, LOSSES[loss_name](), x, t, eps=1e-6)

    # Checked in float64: float32 central differences with h = 1e-6 would
    # be off by far more than 1e-6.
    assert result.max_relative < MAX_RELATIVE, str(result)
    # The float32 model is exactly as it was.
    assert model.dtype == np.float32
    np.testing.assert_array_equal(model.flat_data, data_before)
    np.testing.assert_array_equal(model.flat_grad, grad_before)
    for p, before in zip(model.parameters(), views_before, strict=True):
        assert p.data is before
        assert np.shares_memory(p.data, model.flat_data)
        assert p.data.dtype == np.float32
    # The same numbers as a check on an explicit float64 copy.
    copy = model.astype(np.float64)
    assert gradcheck(copy, LOSSES[loss_name](), x, t).relative == result.relative


def test_gradcheck_float64_model_parameters_restored():
    model = build_mlp(WIDTHS[2], "sigmoid")
    x, t = data_for("mse-mean", WIDTHS[2])
    before = model.flat_data.copy()
    gradcheck(model, MSELoss(), x, t)
    np.testing.assert_array_equal(model.flat_data, before)


def test_gradcheck_standalone_float32_linear_unchanged():
    # gradcheck promises "the model itself is never changed"; a float32 layer
    # that is not a Sequential must keep its arrays, its needs_input_grad and
    # so its input gradient, and stay connected to an optimizer built on it.
    from fastbp import SGD

    layer = Linear(4, 3, rng=0, dtype=np.float32)
    optimizer = SGD(layer.parameters(), lr=0.1)
    weight, bias = layer.weight.data, layer.bias.data
    w_before, b_before = weight.copy(), bias.copy()
    x, t = data_for("mse-mean", (4, 3))

    result = gradcheck(layer, MSELoss(), x, t)

    assert result.max_relative < MAX_RELATIVE, str(result)
    np.testing.assert_array_equal(layer.weight.data, w_before)
    np.testing.assert_array_equal(layer.bias.data, b_before)
    assert layer.needs_input_grad is True
    assert layer.weight.data is weight and layer.bias.data is bias
    x32 = x.astype(np.float32)
    layer(x32)
    dX = layer.backward(np.ones((N_SAMPLES, 3), np.float32))
    assert dX is not None and dX.shape == x32.shape
    optimizer.step()
    np.testing.assert_allclose(
        layer.weight.data, w_before - 0.1 * layer.weight.grad, rtol=1e-6
    )


# gradcheck detects wrong gradients -------------------------------------------


def _scale_after_backward(monkeypatch, layer, attr, factor):
    """Make layer._backward scale one of its parameter gradients by factor."""
    original = layer._backward

    def wrong_backward(dY):
        dX = original(dY)
        getattr(layer, attr).grad[...] *= factor
        return dX

    monkeypatch.setattr(layer, "_backward", wrong_backward)


@pytest.mark.parametrize("attr", ["weight", "bias"])
def test_gradcheck_detects_scaled_parameter_gradient(monkeypatch, attr):
    model = build_mlp(WIDTHS[3], "tanh")
    _scale_after_backward(monkeypatch, model[2], attr, 1.01)
    x, t = data_for("mse-mean", WIDTHS[3])
    result = gradcheck(model, MSELoss(), x, t)
    wrong = f"2.{attr}"
    # max |1.01 n - n| / max |1.01 n| = 0.01 / 1.01.
    assert result.relative[wrong] > 1e-3
    assert result.relative[wrong] == pytest.approx(0.01 / 1.01, rel=1e-4)
    for name, rel in result.relative.items():
        if name != wrong:
            assert rel < MAX_RELATIVE, (name, rel)


class _WrongInputGradLinear(Linear):
    """A Linear whose input gradient dX is 1% too large."""

    def _backward(self, dY):
        dX = super()._backward(dY)
        if dX is not None:
            dX *= 1.01
        return dX


def test_gradcheck_detects_wrong_input_gradient():
    # Layer 2 passes a wrong dX back: its own gradients stay right and the
    # first layer's are all 1% off.
    rng = np.random.default_rng(4)
    model = Sequential(
        Linear(4, 6, rng=rng, dtype=np.float64),
        Tanh(),
        _WrongInputGradLinear(6, 5, rng=rng, dtype=np.float64),
        Tanh(),
        Linear(5, 3, rng=rng, dtype=np.float64),
    )
    x, t = data_for("cross-entropy", (4, 3))
    result = gradcheck(model, CrossEntropyLoss(), x, t)
    for name in ("0.weight", "0.bias"):
        assert result.relative[name] == pytest.approx(0.01 / 1.01, rel=1e-4)
    for name in ("2.weight", "2.bias", "4.weight", "4.bias"):
        assert result.relative[name] < MAX_RELATIVE, (name, result.relative[name])
    assert result.max_relative > 1e-3


# numerical_gradient -----------------------------------------------------------


def test_numerical_gradient_worked_example():
    # SEEDS: y = (e^(x^2))^2 at x = 0.5, h = 1e-4 gives 3.2974426; the exact
    # derivative 4x e^(2x^2) is 3.2974425.
    w = np.array([0.5])
    grad = numerical_gradient(lambda v: float(np.exp(v[0] ** 2) ** 2), w, 1e-4)
    assert grad.shape == (1,) and grad.dtype == np.float64
    assert abs(grad[0] - 3.2974426) < 1e-6
    exact = 4 * 0.5 * math.exp(2 * 0.5**2)
    assert abs(exact - 3.2974425) < 1e-6
    # Central differences are O(h^2): h^2 f'''(x) / 6 = 8.8e-8 here.
    assert abs(grad[0] - exact) < 1e-7
    assert w[0] == 0.5  # restored


def test_numerical_gradient_restores_input_and_keeps_shape():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 4))
    before = w.copy()
    A = rng.standard_normal((3, 4))
    grad = numerical_gradient(lambda v: float(np.sum(A * v**2)), w, 1e-6)
    np.testing.assert_array_equal(w, before)
    assert grad.shape == (3, 4)
    np.testing.assert_allclose(grad, 2 * A * w, rtol=1e-7, atol=1e-8)


def test_numerical_gradient_sees_perturbation_through_another_reference():
    # f reads w through a closure, not its argument: the perturbation is in
    # place, as gradcheck relies on.
    w = np.array([1.0, 2.0, 3.0])
    grad = numerical_gradient(lambda _: float(w @ w), w, 1e-5)
    np.testing.assert_allclose(grad, 2 * np.array([1.0, 2.0, 3.0]), rtol=1e-9)
