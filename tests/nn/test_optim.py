"""fastbp.optim (SGD, Adam) against the NumPy reference and torch.optim.

A Sequential's parameters sit back to back in one buffer, so its optimizer
updates them as one segment; standalone layers give one segment per
parameter. Both must give the reference's numbers, step after step.
"""

import math

import numpy as np
import pytest
import reference as ref
from conftest import TOL
from numba.core.errors import NumbaError

from fastbp import SGD, Adam, Linear, MSELoss, Parameter, Sequential, Tanh

SGD_SETTINGS = [
    dict(lr=0.1),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.1, weight_decay=0.1),
    dict(lr=0.02, momentum=0.5, nesterov=True, weight_decay=0.01),
]

ADAM_SETTINGS = [
    dict(),
    dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6),
    dict(lr=0.01, weight_decay=0.05),
    dict(lr=0.003, betas=(0.0, 0.5)),
]

N_STEPS = 6


def _settings_id(settings):
    return ",".join(f"{k}={v}" for k, v in settings.items()) or "defaults"


def _layers(dtype):
    """Two standalone Linear layers with fixed seeds and random biases."""
    rng = np.random.default_rng(3)
    a = Linear(3, 5, rng=1, dtype=dtype)
    b = Linear(5, 2, rng=2, dtype=dtype)
    a.bias.data[...] = rng.standard_normal(5)
    b.bias.data[...] = rng.standard_normal(2)
    return a, b


def _model(dtype):
    """The layers of _layers(dtype) packed into a Sequential."""
    a, b = _layers(dtype)
    return Sequential(a, Tanh(), b)


def _ref_sgd(params, grads, bufs, settings):
    s = dict(momentum=0.0, nesterov=False, weight_decay=0.0) | settings
    out = [
        ref.sgd_update(
            p, g, buf, s["lr"], s["momentum"], s["weight_decay"], s["nesterov"]
        )
        for p, g, buf in zip(params, grads, bufs, strict=True)
    ]
    return [p for p, _ in out], [buf for _, buf in out]


def _ref_adam(params, grads, ms, vs, settings, step):
    s = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0) | settings
    beta1, beta2 = s["betas"]
    out = [
        ref.adam_update(
            p, g, m, v, s["lr"], beta1, beta2, s["eps"], s["weight_decay"], step
        )
        for p, g, m, v in zip(params, grads, ms, vs, strict=True)
    ]
    return [o[0] for o in out], [o[1] for o in out], [o[2] for o in out]


def _run_against_reference(params, make_optimizer, kind, settings, dtype, tol):
    """N_STEPS steps with random gradients, compared with the reference after
    each one. The reference keeps its own float64 copies of the parameters."""
    rng = np.random.default_rng(11)
    optimizer = make_optimizer(params, **settings)
    expected = [p.data.astype(np.float64) for p in params]
    state1 = [np.zeros(p.shape) for p in params]
    state2 = [np.zeros(p.shape) for p in params]
    for step in range(1, N_STEPS + 1):
        grads = [rng.standard_normal(p.shape) for p in params]
        for p, g in zip(params, grads, strict=True):
            p.grad[...] = g
        grads = [p.grad.astype(np.float64) for p in params]  # as the kernel sees
        optimizer.step()
        if kind == "sgd":
            expected, state1 = _ref_sgd(expected, grads, state1, settings)
        else:
            expected, state1, state2 = _ref_adam(
                expected, grads, state1, state2, settings, step
            )
        for p, e in zip(params, expected, strict=True):
            assert p.data.dtype == dtype
            np.testing.assert_allclose(p.data, e, **tol)
    return optimizer


# SGD and Adam against the reference -------------------------------------------


@pytest.mark.parametrize("settings", SGD_SETTINGS, ids=_settings_id)
def test_sgd_sequential_matches_reference(dtype, tol, settings):
    model = _model(dtype)
    optimizer = _run_against_reference(
        model.parameters(), SGD, "sgd", settings, dtype, tol
    )
    # The whole model is one segment (one kernel call per step).
    assert len(optimizer._segments()) == 1


@pytest.mark.parametrize("settings", SGD_SETTINGS, ids=_settings_id)
def test_sgd_standalone_layers_match_reference(dtype, tol, settings):
    a, b = _layers(dtype)
    params = a.parameters() + b.parameters()
    optimizer = _run_against_reference(params, SGD, "sgd", settings, dtype, tol)
    assert len(optimizer._segments()) == 4  # one per parameter


@pytest.mark.parametrize("settings", ADAM_SETTINGS, ids=_settings_id)
def test_adam_sequential_matches_reference(dtype, tol, settings):
    model = _model(dtype)
    optimizer = _run_against_reference(
        model.parameters(), Adam, "adam", settings, dtype, tol
    )
    assert len(optimizer._segments()) == 1
    assert optimizer.step_count == N_STEPS


@pytest.mark.parametrize("settings", ADAM_SETTINGS, ids=_settings_id)
def test_adam_standalone_layers_match_reference(dtype, tol, settings):
    a, b = _layers(dtype)
    params = a.parameters() + b.parameters()
    optimizer = _run_against_reference(params, Adam, "adam", settings, dtype, tol)
    assert len(optimizer._segments()) == 4
    assert optimizer.step_count == N_STEPS


@pytest.mark.parametrize(
    "make, settings",
    [(SGD, SGD_SETTINGS[-1]), (Adam, ADAM_SETTINGS[2])],
    ids=["sgd", "adam"],
)
def test_optimizer_segments_give_same_result(dtype, tol, make, settings):
    # Same start, same gradients: one segment or four, same parameters.
    model = _model(dtype)
    a, b = _layers(dtype)
    loose = a.parameters() + b.parameters()
    packed = model.parameters()
    opt_packed, opt_loose = make(packed, **settings), make(loose, **settings)
    rng = np.random.default_rng(5)
    for _ in range(N_STEPS):
        for p, q in zip(packed, loose, strict=True):
            p.grad[...] = q.grad[...] = rng.standard_normal(p.shape)
        opt_packed.step()
        opt_loose.step()
    for p, q in zip(packed, loose, strict=True):
        np.testing.assert_allclose(p.data, q.data, **tol)


@pytest.mark.parametrize("make", [SGD, Adam], ids=["sgd", "adam"])
def test_optimizer_subset_of_model_leaves_others_alone(dtype, tol, make):
    # An optimizer over the last layer only: a segment in the middle of the
    # model's flat buffer; the first layer must not move.
    model = _model(dtype)
    first = [p.data.copy() for p in model[0].parameters()]
    last = model[2].parameters()
    settings = dict(lr=0.1, momentum=0.9) if make is SGD else dict(lr=0.1)
    kind = "sgd" if make is SGD else "adam"
    for p in model[0].parameters():
        p.grad[...] = 1.0
    _run_against_reference(last, make, kind, settings, dtype, tol)
    for p, before in zip(model[0].parameters(), first, strict=True):
        np.testing.assert_array_equal(p.data, before)


def test_sgd_reversed_parameter_order_matches_reference(dtype, tol):
    # Parameters listed in reverse do not follow one another in memory.
    model = _model(dtype)
    params = model.parameters()[::-1]
    settings = dict(lr=0.05, momentum=0.9, nesterov=True)
    _run_against_reference(params, SGD, "sgd", settings, dtype, tol)


def test_sgd_training_loop_matches_reference(dtype, tol):
    # Real gradients from backward, the PyTorch-style loop.
    model = _model(dtype)
    loss = MSELoss()
    rng = np.random.default_rng(8)
    x = rng.standard_normal((7, 3)).astype(dtype)
    t = rng.standard_normal((7, 2)).astype(dtype)
    settings = dict(lr=0.1, momentum=0.9, weight_decay=0.01)
    optimizer = SGD(model.parameters(), **settings)
    expected = [p.data.astype(np.float64) for p in model.parameters()]
    bufs = [np.zeros(p.shape) for p in model.parameters()]
    for _ in range(N_STEPS):
        optimizer.zero_grad()
        loss(model(x), t)
        model.backward(loss.backward())
        grads = [p.grad.astype(np.float64) for p in model.parameters()]
        optimizer.step()
        expected, bufs = _ref_sgd(expected, grads, bufs, settings)
        for p, e in zip(model.parameters(), expected, strict=True):
            np.testing.assert_allclose(p.data, e, **tol)


def test_adam_first_step_moves_every_entry_by_lr():
    # With bias correction, m_hat / sqrt(v_hat) = sign(g) on step one.
    model = _model(np.float64)
    before = model.flat_data.copy()
    rng = np.random.default_rng(0)
    model.flat_grad[...] = rng.standard_normal(model.flat_grad.size)
    sign = np.sign(model.flat_grad)
    Adam(model.parameters(), lr=0.01, eps=0.0).step()
    np.testing.assert_allclose(model.flat_data, before - 0.01 * sign, rtol=1e-12)


# zero_grad --------------------------------------------------------------------


@pytest.mark.parametrize("make", [SGD, Adam], ids=["sgd", "adam"])
@pytest.mark.parametrize("packed", [True, False], ids=["sequential", "standalone"])
def test_optimizer_zero_grad_zeros_every_grad(dtype, make, packed):
    if packed:
        params = _model(dtype).parameters()
    else:
        a, b = _layers(dtype)
        params = a.parameters() + b.parameters()
    for i, p in enumerate(params):
        p.grad[...] = i + 1.0
    data = [p.data.copy() for p in params]
    make(params, lr=0.1).zero_grad()
    for p, before in zip(params, data, strict=True):
        np.testing.assert_array_equal(p.grad, np.zeros(p.shape, dtype))
        np.testing.assert_array_equal(p.data, before)


def test_optimizer_zero_grad_subset_leaves_others():
    model = _model(np.float64)
    model.flat_grad[...] = 1.0
    SGD(model[2].parameters(), lr=0.1).zero_grad()
    assert np.all(model[0].weight.grad == 1.0) and np.all(model[0].bias.grad == 1.0)
    assert np.all(model[2].weight.grad == 0.0) and np.all(model[2].bias.grad == 0.0)


def test_sgd_zero_gradient_without_decay_changes_nothing(dtype):
    model = _model(dtype)
    before = model.flat_data.copy()
    optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9)
    optimizer.zero_grad()
    for _ in range(3):
        optimizer.step()
    np.testing.assert_array_equal(model.flat_data, before)


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: SGD(ps, lr=0.1, momentum=0.9),
        lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
        lambda ps: Adam(ps, lr=0.01),
    ],
    ids=["sgd-momentum", "sgd-nesterov", "adam"],
)
def test_state_decaying_below_the_smallest_normal_is_stored_as_zero(dtype, make):
    """A gradient that stays 0 decays the state geometrically; below the
    dtype's smallest normal number it becomes 0 instead of sticking at a
    subnormal value (0.9 x the smallest subnormal rounds back to itself), and
    the parameters stay where the reference puts them."""
    tiny = np.finfo(dtype).tiny
    model = _model(dtype)
    optimizer = make(model.parameters())
    model.flat_grad[...] = 1.0
    optimizer.step()
    state = optimizer.state
    # Just above and below the smallest normal, and the smallest subnormal.
    state.reshape(-1)[:3] = [2 * tiny, tiny / 4, np.finfo(dtype).smallest_subnormal]
    before = model.flat_data.copy()
    model.flat_grad[...] = 0.0
    for _ in range(2000):
        optimizer.step()
    values = state.reshape(-1)
    assert not np.any((values != 0) & (np.abs(values) < tiny)), "a subnormal stayed"
    assert np.count_nonzero(values[:3]) == 0
    # What the zero-gradient steps moved is the decaying momentum's doing, as
    # in the reference; the flushed entries moved nothing measurable.
    assert np.all(np.isfinite(model.flat_data))
    np.testing.assert_allclose(model.flat_data, before, atol=2.0, rtol=0)


# Validation -------------------------------------------------------------------


def _assert_clean_value_error(excinfo, *fragments):
    exc = excinfo.value
    assert not isinstance(exc, NumbaError)
    message = str(exc)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def _params():
    return Linear(2, 3, rng=0).parameters()


@pytest.mark.parametrize("make", [SGD, Adam], ids=["sgd", "adam"])
@pytest.mark.parametrize("lr", [0.0, -0.1, math.nan, "0.1", None, True, [0.1]])
def test_optimizer_invalid_lr_raises(make, lr):
    with pytest.raises(ValueError) as excinfo:
        make(_params(), lr=lr)
    _assert_clean_value_error(excinfo, make.__name__, "lr", repr(lr))


@pytest.mark.parametrize("momentum", [-0.1, -1, math.nan, "0.9", None])
def test_sgd_invalid_momentum_raises(momentum):
    with pytest.raises(ValueError) as excinfo:
        SGD(_params(), lr=0.1, momentum=momentum)
    _assert_clean_value_error(excinfo, "SGD", "momentum", repr(momentum))


@pytest.mark.parametrize("make", [SGD, Adam], ids=["sgd", "adam"])
@pytest.mark.parametrize("weight_decay", [-1e-4, math.nan, "0"])
def test_optimizer_invalid_weight_decay_raises(make, weight_decay):
    with pytest.raises(ValueError) as excinfo:
        make(_params(), lr=0.1, weight_decay=weight_decay)
    _assert_clean_value_error(excinfo, make.__name__, "weight_decay")


def test_sgd_nesterov_without_momentum_raises():
    with pytest.raises(ValueError) as excinfo:
        SGD(_params(), lr=0.1, nesterov=True)
    _assert_clean_value_error(excinfo, "SGD", "nesterov", "momentum")


@pytest.mark.parametrize(
    "betas, name",
    [
        ((1.0, 0.999), "betas[0]"),
        ((-0.1, 0.999), "betas[0]"),
        ((0.9, 1.0), "betas[1]"),
        ((0.9, 1.5), "betas[1]"),
        ((0.9, -0.5), "betas[1]"),
        (("0.9", 0.999), "betas[0]"),
        ((0.9, None), "betas[1]"),
        ((math.nan, 0.999), "betas[0]"),
    ],
)
def test_adam_betas_out_of_range_raise(betas, name):
    with pytest.raises(ValueError) as excinfo:
        Adam(_params(), betas=betas)
    _assert_clean_value_error(excinfo, "Adam", name)


@pytest.mark.parametrize("betas", [0.9, (0.9,), (0.9, 0.99, 0.999), "ab", None])
def test_adam_betas_not_a_pair_raise(betas):
    with pytest.raises(ValueError) as excinfo:
        Adam(_params(), betas=betas)
    _assert_clean_value_error(excinfo, "Adam", "betas")


def test_adam_betas_list_accepted():
    assert Adam(_params(), betas=[0.8, 0.9]).betas == (0.8, 0.9)


@pytest.mark.parametrize("eps", [-1e-8, math.nan, "1e-8"])
def test_adam_invalid_eps_raises(eps):
    with pytest.raises(ValueError) as excinfo:
        Adam(_params(), eps=eps)
    _assert_clean_value_error(excinfo, "Adam", "eps")


def test_optimizer_hyperparameters_stored_as_floats():
    sgd = SGD(_params(), lr=1, momentum=0, weight_decay=0)
    assert (sgd.lr, sgd.momentum, sgd.weight_decay, sgd.nesterov) == (
        1.0,
        0.0,
        0.0,
        False,
    )
    assert all(isinstance(v, float) for v in (sgd.lr, sgd.momentum, sgd.weight_decay))
    adam = Adam(_params())
    assert (adam.lr, adam.betas, adam.eps, adam.weight_decay) == (
        1e-3,
        (0.9, 0.999),
        1e-8,
        0.0,
    )


@pytest.mark.parametrize("make", [SGD, Adam], ids=["sgd", "adam"])
def test_optimizer_mixed_dtypes_raise_type_error(make):
    a = Linear(2, 3, rng=0, dtype=np.float32)
    b = Linear(3, 1, rng=0, dtype=np.float64)
    with pytest.raises(TypeError) as excinfo:
        make(a.parameters() + b.parameters(), lr=0.1)
    _assert_clean_value_error(excinfo, make.__name__, "float32", "float64")


@pytest.mark.parametrize("make", [SGD, Adam], ids=["sgd", "adam"])
def test_optimizer_empty_params_raise(make):
    with pytest.raises(ValueError) as excinfo:
        make([], lr=0.1)
    _assert_clean_value_error(excinfo, make.__name__, "empty")


@pytest.mark.parametrize("make", [SGD, Adam], ids=["sgd", "adam"])
def test_optimizer_non_parameter_raises_type_error(make):
    with pytest.raises(TypeError) as excinfo:
        make([np.zeros(3)], lr=0.1)
    _assert_clean_value_error(excinfo, make.__name__, "ndarray")


def test_optimizer_non_contiguous_parameter_raises():
    p = Parameter(np.zeros((4, 6))[:, ::2])
    with pytest.raises(ValueError) as excinfo:
        SGD([p], lr=0.1)
    _assert_clean_value_error(excinfo, "SGD", "C-contiguous")


def test_optimizer_accepts_generator_of_parameters():
    model = _model(np.float64)
    optimizer = SGD((p for p in model.parameters()), lr=0.1)
    assert len(optimizer.params) == 4


# Against torch.optim ----------------------------------------------------------


#: float64 over five steps of a tiny network: a few ulps per operation.
TOL_TORCH = TOL[np.dtype(np.float64)]


def _torch_pair(torch, seed=0):
    """A fastbp Sequential and a torch copy of it (weights transposed: torch
    stores (out_features, in_features)), float64."""
    rng = np.random.default_rng(seed)
    model = Sequential(
        Linear(3, 5, rng=rng, dtype=np.float64),
        Tanh(),
        Linear(5, 2, rng=rng, dtype=np.float64),
    )
    for p in model.parameters():
        if p.name == "bias":
            p.data[...] = 0.5 * rng.standard_normal(p.shape)
    net = torch.nn.Sequential(
        torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2)
    ).double()
    with torch.no_grad():
        for i in (0, 2):
            net[i].weight.copy_(torch.from_numpy(model[i].weight.data.T.copy()))
            net[i].bias.copy_(torch.from_numpy(model[i].bias.data.copy()))
    return model, net


def _compare_with_torch(torch, make, torch_make, settings, torch_settings):
    model, net = _torch_pair(torch)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 3))
    t = rng.standard_normal((8, 2))
    loss, torch_loss = MSELoss(), torch.nn.MSELoss()
    optimizer = make(model.parameters(), **settings)
    torch_optimizer = torch_make(net.parameters(), **torch_settings)
    xt, tt = torch.from_numpy(x), torch.from_numpy(t)
    for _ in range(5):
        value = loss(model(x), t)
        model.backward(loss.backward())
        optimizer.step()
        torch_optimizer.zero_grad()
        torch_value = torch_loss(net(xt), tt)
        torch_value.backward()
        torch_optimizer.step()
        assert value == pytest.approx(torch_value.item(), rel=1e-12)
    for i in (0, 2):
        np.testing.assert_allclose(
            model[i].weight.data, net[i].weight.detach().numpy().T, **TOL_TORCH
        )
        np.testing.assert_allclose(
            model[i].bias.data, net[i].bias.detach().numpy(), **TOL_TORCH
        )


@pytest.mark.parametrize(
    "settings",
    [
        dict(lr=0.1, momentum=0.9),
        dict(lr=0.1, momentum=0.9, nesterov=True),
        dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
        dict(lr=0.05, weight_decay=0.1),
    ],
    ids=_settings_id,
)
def test_sgd_matches_torch(settings):
    torch = pytest.importorskip("torch")
    _compare_with_torch(torch, SGD, torch.optim.SGD, settings, settings)


@pytest.mark.parametrize(
    "settings",
    [
        dict(lr=0.01),
        dict(lr=0.01, weight_decay=0.01),
        dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05),
    ],
    ids=_settings_id,
)
def test_adam_matches_torch(settings):
    torch = pytest.importorskip("torch")
    _compare_with_torch(torch, Adam, torch.optim.Adam, settings, settings)
