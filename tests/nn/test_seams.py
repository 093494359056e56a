"""Where the parts meet: the registry, Sequential's ownership of the flat
layout, the public layer protocol, the fused kernel's checked boundary and
divergence reported identically on both paths (issue 9)."""

import numpy as np
import pytest
import reference as ref
from numba.core.errors import NumbaError

import fastbp
from fastbp import (
    GELU,
    SGD,
    Adam,
    CrossEntropyLoss,
    DivergenceError,
    Layer,
    LeakyReLU,
    Linear,
    MSELoss,
    ReLU,
    Sequential,
    Tanh,
    train,
)
from fastbp.kernels import epoch as E
from fastbp.nn.parts import ACTIVATIONS, LOSSES, OPTIMIZERS, part_of, register
from fastbp.training.runners import fused_plan


def xor(dtype=np.float64):
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype)
    return X, np.array([[0], [1], [1], [0]], dtype)


def assert_one_line(exc):
    assert not isinstance(exc, NumbaError), type(exc)
    assert "\n" not in str(exc), str(exc)


# --- the registry ------------------------------------------------------------


def test_registry_lists_every_part_with_its_declaration():
    assert sorted(ACTIVATIONS) == ["gelu", "leaky_relu", "relu", "sigmoid", "tanh"]
    assert sorted(LOSSES) == ["binary_ce", "ce", "mse", "squared_error"]
    assert sorted(OPTIMIZERS) == ["adam", "sgd"]
    assert ACTIVATIONS["leaky_relu"].cls is LeakyReLU
    assert ACTIVATIONS["leaky_relu"].hyper == ("negative_slope",)
    assert LOSSES["ce"].target == "labels" and LOSSES["mse"].target == "values"
    assert OPTIMIZERS["adam"].hyper == ("lr", "beta1", "beta2", "eps", "weight_decay")
    assert OPTIMIZERS["adam"].state == ("exp_avg", "exp_avg_sq")
    codes = [part.code for part in ACTIVATIONS.values()]
    assert len(set(codes)) == len(codes)


def test_register_rejects_a_taken_name_and_a_loss_without_target():
    with pytest.raises(ValueError, match="taken by ReLU"):
        register("activation", "relu")(type("Other", (Layer,), {}))
    with pytest.raises(ValueError, match="target"):
        register("loss", "toy_loss")(type("ToyLoss", (fastbp.Loss,), {}))


def test_part_of_counts_only_the_exact_class():
    class MyReLU(ReLU):
        pass

    assert part_of(ReLU()) is ACTIVATIONS["relu"]
    assert part_of(MyReLU()) is None


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_mlp_builds_every_registered_activation(name):
    model = fastbp.mlp([3, 4, 2], name, rng=0, dtype=np.float64)
    assert type(model.layers[1]) is ACTIVATIONS[name].cls
    assert model.architecture()[1]["type"] == name


def test_architecture_keeps_activation_hyperparameters():
    model = Sequential(Linear(2, 3, rng=0), LeakyReLU(0.2), Linear(3, 1, rng=1))
    arch = model.architecture()
    assert arch[1] == {"type": "leaky_relu", "negative_slope": 0.2}
    copy = Sequential.from_architecture(arch)
    assert copy.layers[1].negative_slope == 0.2
    with pytest.raises(ValueError, match="unknown settings"):
        Sequential.from_architecture([{"type": "gelu", "approximate": "tanh"}])


def test_saved_model_round_trips_leaky_relu_and_gelu(tmp_path):
    from fastbp.io import load_model, save_model

    model = Sequential(
        Linear(2, 4, rng=0), LeakyReLU(0.3), Linear(4, 4, rng=1), GELU(),
        Linear(4, 1, rng=2),
    )  # fmt: skip
    meta = {
        "feature_names": ["a", "b"],
        "target_name": "y",
        "task": "regression",
        "classes": None,
        "standardizer": None,
    }
    save_model(tmp_path / "m.npz", model, meta=meta)
    loaded, _ = load_model(tmp_path / "m.npz")
    assert loaded.architecture() == model.architecture()
    x = np.random.default_rng(0).standard_normal((5, 2)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_leaky_relu_rejects_a_negative_slope():
    with pytest.raises(ValueError, match="negative_slope"):
        LeakyReLU(-0.1)


def test_gelu_matches_pytorch():
    torch = pytest.importorskip("torch")
    x = np.linspace(-6, 6, 101).reshape(1, -1)
    layer = GELU()
    y = layer(x)
    dx = layer.backward(np.ones_like(x))
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.gelu(xt)
    yt.sum().backward()
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_leaky_relu_matches_pytorch():
    torch = pytest.importorskip("torch")
    x = np.linspace(-3, 3, 60).reshape(3, 20)
    layer = LeakyReLU(0.05)
    y = layer(x)
    dx = layer.backward(np.full_like(x, 2.0))
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.leaky_relu(xt, 0.05)
    (2.0 * yt).sum().backward()
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(dx, xt.grad.numpy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_kernels_match_reference_on_both_signs(dtype):
    x = np.linspace(-8, 8, 257, dtype=dtype).reshape(1, -1)
    y, dx = np.empty_like(x), np.empty_like(x)
    dy = np.full_like(x, 0.5)
    from fastbp.kernels.activations import gelu_backward, gelu_forward

    gelu_forward(x, y)
    gelu_backward(x, dy, dx)
    tol = dict(rtol=1e-6, atol=1e-7) if dtype == np.float32 else dict(rtol=1e-12)
    np.testing.assert_allclose(y, ref.gelu_forward(x), **tol)
    np.testing.assert_allclose(dx, ref.gelu_backward(x, dy), **tol)


# --- Sequential owns the flat layout -----------------------------------------


@pytest.mark.parametrize("fuse", [True, False])
def test_optimizer_built_before_sequential_trains_the_model(fuse):
    # Before: Sequential re-packed the parameters behind the optimizer's back
    # and training silently changed nothing.
    first, last = (
        Linear(2, 8, rng=0, dtype=np.float64),
        Linear(8, 1, rng=1, dtype=np.float64),
    )
    optimizer = SGD(first.parameters() + last.parameters(), lr=0.1, momentum=0.9)
    model = Sequential(first, Tanh(), last)
    twin = fastbp.mlp([2, 8, 1], "tanh", rng=0, dtype=np.float64)
    twin.flat_data[...] = model.flat_data
    twin_opt = SGD(twin.parameters(), lr=0.1, momentum=0.9)
    X, T = xor()
    before = model.flat_data.copy()
    result = train(
        model, MSELoss(), optimizer, X, T, epochs=200, batch_size=4, fuse=fuse
    )
    train(twin, MSELoss(), twin_opt, X, T, epochs=200, batch_size=4, fuse=fuse)
    assert result.fused is fuse
    assert not np.array_equal(model.flat_data, before)
    np.testing.assert_array_equal(model.flat_data, twin.flat_data)
    assert result.loss[-1] < 0.05


def test_optimizer_step_after_packing_updates_the_models_arrays():
    layer = Linear(3, 2, rng=0, dtype=np.float64)
    optimizer = SGD(layer.parameters(), lr=1.0)
    model = Sequential(layer)
    model.flat_grad[...] = 1.0
    before = model.flat_data.copy()
    optimizer.step()
    np.testing.assert_array_equal(model.flat_data, before - 1.0)


def test_layer_in_two_models_is_an_error():
    shared = Linear(2, 2, rng=0)
    first = Sequential(shared, ReLU())
    with pytest.raises(ValueError, match="already belongs to another Sequential") as e:
        Sequential(shared)
    assert_one_line(e.value)
    assert first.layers[0] is shared
    with pytest.raises(ValueError, match="appears twice"):
        act = ReLU()
        Sequential(Linear(2, 2, rng=0), act, Linear(2, 2, rng=1), act)


def test_layer_is_free_again_once_its_model_is_gone():
    import gc

    layer = Linear(2, 2, rng=0)
    Sequential(layer)
    gc.collect()
    Sequential(layer)  # no error: the first model no longer exists


def test_offsets_come_from_the_model():
    model = fastbp.mlp([3, 4, 2], "relu", rng=0)
    first, last = model.layers[0], model.layers[2]
    assert model.offset(first.weight) == 0
    assert model.offset(first.bias) == 12
    assert model.offset(last.weight) == 16
    assert model.offset(last.bias) == 24
    assert np.shares_memory(last.bias.data, model.flat_data[24:26])
    with pytest.raises(KeyError):
        model.offset(Linear(1, 1).weight)


def test_nested_sequential_keeps_views_of_the_outer_buffer():
    inner = Sequential(Linear(3, 4, rng=0, dtype=np.float64), Tanh())
    outer = Sequential(inner, Linear(4, 1, rng=1, dtype=np.float64))
    assert np.shares_memory(inner.flat_data, outer.flat_data)
    x = np.random.default_rng(0).standard_normal((5, 3))
    expected = ref.dense_forward(
        ref.tanh_forward(ref.dense_forward(x, *[p.data for p in inner.parameters()])),
        *[p.data for p in outer.layers[1].parameters()],
    )
    np.testing.assert_allclose(outer.predict(x), expected, rtol=1e-12)
    opt = SGD(outer.parameters(), lr=0.1)
    result = train(outer, MSELoss(), opt, x, np.ones((5, 1)), epochs=3, batch_size=5)
    assert result.fused is False and "layer 0" in result.layer_path_reason


# --- the public layer protocol -----------------------------------------------


class Scale(Layer):
    """A user's layer: y = 2x, written with the public protocol only."""

    def forward(self, x):
        self.x = x
        return 2.0 * x

    def backward(self, dY):
        return 2.0 * dY


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_user_layer_trains_inside_sequential_on_the_layer_path(dtype):
    model = Sequential(Linear(2, 8, rng=0, dtype=dtype), Scale(), Tanh(),
                       Linear(8, 1, rng=1, dtype=dtype))  # fmt: skip
    X, T = xor(dtype)
    result = train(model, MSELoss(), SGD(model.parameters(), lr=0.1, momentum=0.9),
                   X, T, epochs=300, batch_size=4)  # fmt: skip
    assert result.fused is False
    assert "Scale" in result.layer_path_reason
    # The same network with the scale folded into the weights: same result.
    twin = Sequential(Linear(2, 8, rng=0, dtype=dtype), Tanh(),
                      Linear(8, 1, rng=1, dtype=dtype))  # fmt: skip
    w = twin.layers[0]
    w.weight.data *= 2
    w.bias.data *= 2
    y = model.predict(X)
    assert y.shape == (4, 1)
    assert result.loss[-1] < result.loss[0]


def test_user_layer_returning_the_wrong_dtype_is_named():
    class Wrong(Layer):
        def forward(self, x):
            return x.astype(np.float64)

        def backward(self, dY):
            return dY

    model = Sequential(Linear(2, 2, rng=0), Wrong())
    with pytest.raises(TypeError, match=r"Wrong.*forward\(\).*float64") as e:
        model.forward(np.ones((3, 2), np.float32))
    assert_one_line(e.value)


def test_subclass_overriding_forward_runs_its_own_forward():
    calls = []

    class Logged(Linear):
        def forward(self, x):
            calls.append(x.shape)
            return super().forward(x)

    model = Sequential(Logged(2, 3, rng=0), ReLU(), Linear(3, 1, rng=1))
    model.forward(np.ones((4, 2), np.float32))
    assert calls == [(4, 2)]
    assert isinstance(
        fused_plan(model, MSELoss(), SGD(model.parameters(), lr=0.1)), str
    )


@pytest.mark.parametrize("loss", [MSELoss(), CrossEntropyLoss()])
def test_evaluate_between_loss_and_backward_leaves_gradients_alone(loss):
    rng = np.random.default_rng(0)
    model = fastbp.mlp([3, 5, 2], "relu", rng=0, dtype=np.float64)
    x, xv = rng.standard_normal((6, 3)), rng.standard_normal((9, 3))
    if loss.target == "labels":
        t, tv = rng.integers(0, 2, 6), rng.integers(0, 2, 9)
    else:
        t, tv = rng.standard_normal((6, 2)), rng.standard_normal((9, 2))

    loss.forward(model.forward(x), t)
    model.backward(loss.backward())
    expected = model.flat_grad.copy()

    loss.forward(model.forward(x), t)
    fastbp.evaluate(model, loss, xv, tv)
    model.predict(xv)
    model.backward(loss.backward())
    np.testing.assert_array_equal(model.flat_grad, expected)


# --- divergence: one error, both paths ---------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_divergence_is_reported_identically_on_both_paths(dtype, opt):
    messages = []
    for fuse in (True, False):
        model = fastbp.mlp([2, 8, 1], "tanh", rng=0, dtype=dtype)
        if opt == "sgd":
            optimizer = SGD(model.parameters(), lr=1e30)
        else:
            optimizer = Adam(model.parameters(), lr=1e300)
        X, T = xor(dtype)
        with pytest.raises(DivergenceError) as e:
            # Targets of 1e5 pass the data range check; the rate makes the
            # first update overflow, so both paths diverge at the same step
            # (near overflow their float32 roundings would part).
            train(model, MSELoss(), optimizer, X, T * 1e5, epochs=50, batch_size=2,
                  fuse=fuse)  # fmt: skip
        assert_one_line(e.value)
        messages.append(str(e.value))
    assert messages[0] == messages[1]
    assert "epoch" in messages[0]


# --- the fused kernel's boundary ---------------------------------------------


def _fused_args(dtype=np.float64):
    model = fastbp.mlp([2, 8, 1], "tanh", rng=0, dtype=dtype)
    optimizer = Adam(model.parameters(), lr=0.01)
    plan = fused_plan(model, MSELoss(), optimizer)
    X, T = xor(dtype)
    return dict(
        X=X,
        T=T,
        labels=np.empty(0, np.int64),
        perms=np.empty((3, 0), np.int64),
        model=plan.model,
        loss=plan.loss,
        optimizer=plan.fused_optimizer(),
        batch_size=2,
        epoch_loss=np.empty(3),
    )


def test_train_epochs_runs_with_good_arguments():
    args = _fused_args()
    step = E.train_epochs(**args)
    assert step == 6 and np.all(np.isfinite(args["epoch_loss"]))


def _bad_cases():
    a = _fused_args
    opt = a()["optimizer"]
    model = a()["model"]
    return {
        "short optimizer state": dict(optimizer=opt._replace(state=opt.state[:, :5])),
        "one state row for adam": dict(optimizer=opt._replace(state=opt.state[:1])),
        "short hyper": dict(optimizer=opt._replace(hyper=opt.hyper[:2])),
        "unknown optimizer": dict(optimizer=opt._replace(code=7)),
        "negative step": dict(optimizer=opt._replace(step=-1)),
        "short epoch_loss": dict(epoch_loss=np.empty(1)),
        "unknown loss code": dict(loss=E.FusedLoss(9, np.zeros(1))),
        "mse without hyper": dict(loss=E.FusedLoss(0, np.zeros(0))),
        "layout past theta": dict(
            model=model._replace(layout=model.layout + np.array([0, 0, 100, 0, 0]))
        ),
        "layout widths do not chain": dict(
            model=model._replace(layout=model.layout * np.array([1, 2, 1, 1, 1]))
        ),
        "unknown activation": dict(
            model=model._replace(layout=model.layout + np.array([0, 0, 0, 0, 40]))
        ),
        "short act_hyper": dict(model=model._replace(act_hyper=np.zeros((1, 2)))),
        "short grad": dict(model=model._replace(grad=model.grad[:3])),
        "perms out of range": dict(perms=np.full((3, 4), 9, np.int64)),
        "perms too short": dict(perms=np.zeros((3, 2), np.int64)),
        "labels out of range for cross-entropy": dict(
            loss=E.FusedLoss(1, np.zeros(0)), labels=np.array([0, 1, 2, 3])
        ),
        "float16 X": dict(X=np.zeros((4, 2), np.float16)),
        "float32 X for a float64 model": dict(X=np.zeros((4, 2), np.float32)),
        "Fortran X": dict(X=np.asfortranarray(np.zeros((4, 2)))),
        "batch_size 0": dict(batch_size=0),
        "X with 3 columns": dict(X=np.zeros((4, 3))),
        "T of the wrong shape": dict(T=np.zeros((4, 2))),
        "model not a FusedModel": dict(model=tuple(model)),
    }


@pytest.mark.parametrize("case", sorted(_bad_cases()))
def test_train_epochs_rejects_misuse_before_compiled_code(case):
    args = {**_fused_args(), **_bad_cases()[case]}
    theta = args["model"][0]
    before = theta.copy()
    with pytest.raises((TypeError, ValueError)) as e:
        E.train_epochs(**args)
    assert type(e.value) in (TypeError, ValueError)
    assert_one_line(e.value)
    assert str(e.value).startswith("train_epochs: ")
    np.testing.assert_array_equal(theta, before)


# --- a part of one's own, through the public registry ------------------------


@pytest.fixture
def softsign():
    """A user's activation, y = x / (1 + |x|), registered for the test only."""

    @register("activation", "test_softsign", hyper=("scale",))
    class Softsign(Layer):
        def __init__(self, scale=1.0):
            self.scale = scale

        def forward(self, x):
            self.x = x
            return self.scale * x / (1.0 + np.abs(x))

        def backward(self, dY):
            return dY * self.scale / (1.0 + np.abs(self.x)) ** 2

    yield Softsign
    del ACTIVATIONS["test_softsign"]


def test_registered_layer_path_activation_trains_saves_and_reports(softsign):
    model = fastbp.mlp([2, 8, 1], "test_softsign", rng=0, dtype=np.float64)
    assert isinstance(model.layers[1], softsign)
    X, T = xor()
    optimizer = SGD(model.parameters(), lr=0.2, momentum=0.9)
    result = train(model, MSELoss(), optimizer, X, T, epochs=400, batch_size=4)
    assert result.fused is False
    assert "test_softsign" not in result.layer_path_reason  # names the layer
    assert "no fused kernel" in result.layer_path_reason
    assert result.loss[-1] < 0.05
    arch = model.architecture()
    assert arch[1] == {"type": "test_softsign", "scale": 1.0}
    rebuilt = Sequential.from_architecture(arch, dtype=np.float64)
    rebuilt.flat_data[...] = model.flat_data
    np.testing.assert_array_equal(rebuilt.predict(X), model.predict(X))
    # Its gradient is right: finite differences on a fresh (untrained) model.
    fresh = fastbp.mlp([2, 8, 1], "test_softsign", rng=1, dtype=np.float64)
    check = fastbp.gradcheck(fresh, MSELoss(), X, T)
    assert check.max_relative < 1e-6, str(check)
