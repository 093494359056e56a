"""Kernels generated per architecture (fastbp.kernels.special) train exactly
as the generic fused kernel does: same losses, same weights, float64, for
every activation, loss and optimizer, SIMD layers (simd.py) and BLAS ones
mixed."""

import subprocess
import sys

import numpy as np
import pytest

import fastbp
from fastbp.kernels import special
from fastbp.kernels.epoch import train_epochs
from fastbp.nn.losses import BinaryCrossEntropyLoss, SquaredErrorLoss
from fastbp.training.runners import fused_plan

ARCHS = [
    ([2, 8, 1], "relu"),  # XOR: every layer tiny; ReLU fused both ways
    ([5, 16, 3], "tanh"),
    ([4, 4, 4, 4, 1], "sigmoid"),  # deep and tiny
    ([3, 30, 9, 1], "gelu"),  # pre-activations kept (z)
    ([6, 40, 1], "leaky_relu"),  # one output after a wider layer
    ([3, 17, 33, 5], "relu"),  # widths off every vector and block size
    ([2, 150, 120, 3], "relu"),  # 150x120 > SIMD_MAX_WEIGHTS: a BLAS layer
    ([7, 1, 6, 2], "tanh"),  # a hidden layer of one unit
]


def _run(sizes, act, spec, loss="mse", dtype=np.float64, opt="adam", **extra):
    rng = np.random.default_rng(3)
    n = 37  # batches of 8: a short last batch
    X = rng.standard_normal((n, sizes[0]))
    model = fastbp.mlp(sizes, act, rng=1, dtype=dtype)
    labels = np.empty(0, np.int64)
    T = rng.standard_normal((n, sizes[-1])).astype(dtype)
    if loss == "mse":
        loss_obj = fastbp.MSELoss()
    elif loss == "mse-sum":
        loss_obj = fastbp.MSELoss(reduction="sum")
    elif loss == "squared":
        loss_obj = SquaredErrorLoss()
    elif loss == "bce":
        loss_obj = BinaryCrossEntropyLoss()
        T = (T > 0).astype(dtype)
    else:
        loss_obj = fastbp.CrossEntropyLoss()
        T = np.empty((0, 0), dtype)
        labels = rng.integers(0, sizes[-1], n).astype(np.int64)
    if opt == "adam":
        optimizer = fastbp.Adam(model.parameters(), lr=0.01, weight_decay=0.01)
    elif opt == "nesterov":
        optimizer = fastbp.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    else:
        optimizer = fastbp.SGD(model.parameters(), lr=0.05)
    plan = fused_plan(model, loss_obj, optimizer)
    out = np.empty(4)
    norms = np.zeros((4, len(sizes) - 1)) if extra.pop("norms", False) else None
    steps = train_epochs(
        X.astype(dtype),
        T,
        labels,
        np.empty((4, 0), np.int64),
        plan.model,
        plan.loss,
        plan.fused_optimizer(),
        8,
        out,
        grad_norms=norms,
        shuffle_key=11,
        specialize=spec,
        **extra,
    )
    return out, model.flat_data.copy(), steps, norms


def _same(special, generic, norms=False):
    """Losses and weights equal to 1e-12 relative: the products add their
    terms in another order (and with fused multiply-adds)."""
    assert special[2] == generic[2]
    np.testing.assert_allclose(special[0], generic[0], rtol=1e-12)
    np.testing.assert_allclose(special[1], generic[1], rtol=1e-12, atol=1e-13)
    if norms:
        np.testing.assert_allclose(special[3], generic[3], rtol=1e-12)


@pytest.mark.parametrize("sizes,act", ARCHS)
def test_special_equals_generic(sizes, act):
    """Shuffled epochs, short last batch, Adam with weight decay: losses
    and weights equal the generic kernel's."""
    generic = _run(sizes, act, False)
    special = _run(sizes, act, True)
    assert generic[2] == 4 * 5
    _same(special, generic)
    start = fastbp.mlp(sizes, act, rng=1, dtype=np.float64).flat_data
    assert np.abs(special[1] - start).max() > 1e-3  # it trained


@pytest.mark.parametrize(
    "loss,opt",
    [
        ("mse-sum", "sgd"),
        ("squared", "nesterov"),
        ("bce", "sgd"),
        ("ce", "nesterov"),
    ],
)
@pytest.mark.parametrize("sizes,act", [ARCHS[0], ARCHS[5]])
def test_special_equals_generic_for_every_loss_and_optimizer(sizes, act, loss, opt):
    """Each loss and optimizer is called by name in the generated module."""
    _same(_run(sizes, act, True, loss, opt=opt), _run(sizes, act, False, loss, opt=opt))


@pytest.mark.parametrize("sizes,act", [ARCHS[0], ARCHS[1], ARCHS[6]])
def test_special_equals_generic_with_every_option(sizes, act):
    """Sample weights, L2, gradient norms and a cross-entropy loss on labels."""
    w = np.random.default_rng(0).uniform(0, 2, 37)
    kw = {"sample_weight": w, "l2": 0.3, "norms": True}
    g = _run(sizes, act, False, loss="ce", **kw)
    s = _run(sizes, act, True, loss="ce", **dict(kw))
    _same(s, g, norms=True)
    assert s[3].min() > 0


@pytest.mark.parametrize("sizes,act", [ARCHS[0], ARCHS[5]])
def test_float32_agrees(sizes, act):
    loss_g, theta_g, _, _ = _run(sizes, act, False, dtype=np.float32)
    loss_s, theta_s, _, _ = _run(sizes, act, True, dtype=np.float32)
    np.testing.assert_allclose(theta_s, theta_g, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loss_s, loss_g, rtol=1e-5)


def test_one_module_per_loss_and_optimizer():
    """The loss, the optimizer and row weighting are part of the key: each
    combination is its own module, and the same one is reused."""
    layout = _layout([2, 8, 1])
    a = special.specialized(layout, 0, 0)
    assert special.specialized(layout, 0, 0) is a
    others = {
        special.specialized(layout, 1, 0),
        special.specialized(layout, 0, 1),
        special.specialized(layout, 0, 0, True),
    }
    assert a not in others and len(others) == 3
    text = special.module_source(layout, 0, 1)
    assert "adam_flat(" in text and "sgd_flat(" not in text.split("import")[-1]


def _layout(sizes):
    model = fastbp.mlp(sizes)
    optimizer = fastbp.SGD(model.parameters(), lr=0.1)
    return fused_plan(model, fastbp.MSELoss(), optimizer).model.layout


def test_eligibility():
    """Specialized where some layer is small enough for the SIMD products
    and the network is not large; not beyond MAX_LAYERS."""
    assert special.eligible(_layout([2, 8, 1]))
    assert special.eligible(_layout([32, 64, 1]))
    assert special.eligible(_layout([32, *[64] * 10, 1]))  # 39k weights
    assert special.eligible(_layout([20, 256, 256, 1]))  # 71k, 256x256 on BLAS
    assert not special.eligible(_layout([784, 256, 10]))  # 203k weights
    assert not special.eligible(_layout([200, 200, 200]))  # no SIMD-sized layer
    assert not special.eligible(_layout([2] * (special.MAX_LAYERS + 2)))


def test_generated_module_is_written_once_and_reused(tmp_path):
    """A second process finds the generated module and its compiled kernel in
    the cache: it compiles nothing (Numba reports no compilation)."""
    script = """
import numpy as np, fastbp
from numba.core import event
compiled = []
class L(event.Listener):
    def on_start(self, ev): compiled.append(ev.data["dispatcher"].py_func.__name__)
    def on_end(self, ev): pass
model = fastbp.mlp([2, 8, 1], "relu", rng=0)
X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
T = np.array([[0], [1], [1], [0]], np.float32)
opt = fastbp.SGD(model.parameters(), lr=0.1)
fastbp.train(model, fastbp.MSELoss(), opt, X[:1], T[:1], epochs=1, batch_size=4)
with event.install_listener("numba:compile", L()):
    r = fastbp.train(model, fastbp.MSELoss(), opt, X, T, epochs=5, batch_size=4)
print(len(compiled), r.loss[-1])
"""
    env = {"FASTBP_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    first = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True
    )
    assert first.returncode == 0, first.stderr
    second = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True
    )
    assert second.returncode == 0, second.stderr
    generated = list(tmp_path.glob("*/special/fastbp_special_*.py"))
    assert len(generated) == 1
    assert second.stdout.split()[0] == "0"  # nothing compiled the second time
    assert second.stdout.split()[1] == first.stdout.split()[1]


@pytest.mark.parametrize("chunks", [2, 3])
@pytest.mark.parametrize("sizes,act", [ARCHS[1], ARCHS[3]])
def test_parallel_equals_serial(monkeypatch, chunks, sizes, act):
    """Batches cut into chunks trained at once (rows 8 -> 4+4 or 3+3+2, the
    short last batch of 5 -> fewer chunks): the same losses, weights and
    gradient norms as the whole batch on one thread, with sample weights, L2
    and cross-entropy, to 1e-12 (only the sums' rounding differs)."""
    monkeypatch.setattr("fastbp.kernels.epoch.PARALLEL_MIN_ROWS", 1)
    monkeypatch.setattr("fastbp.kernels.epoch.numba.get_num_threads", lambda: chunks)
    w = np.random.default_rng(0).uniform(0, 2, 37)
    for loss, kw in (("mse", {}), ("ce", {"sample_weight": w, "l2": 0.3})):
        serial = _run(sizes, act, False, loss=loss, norms=True, **kw)
        par = _run(sizes, act, False, loss=loss, norms=True, parallel=True, **kw)
        np.testing.assert_allclose(par[0], serial[0], rtol=1e-12)
        np.testing.assert_allclose(par[1], serial[1], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(par[3], serial[3], rtol=1e-12)
        assert par[2] == serial[2]


@pytest.mark.parametrize("chunks", [2, 3])
@pytest.mark.parametrize("sizes,act", [ARCHS[0], ARCHS[3], ARCHS[6]])
def test_special_parallel_equals_serial(monkeypatch, chunks, sizes, act):
    """The specialized step run batch-parallel (chunks of the batch on
    Numba's threads, gradients summed): the generic serial kernel's losses,
    weights and norms to 1e-12, with sample weights, L2 and cross-entropy."""
    monkeypatch.setattr("fastbp.kernels.epoch.PARALLEL_MIN_ROWS", 1)
    monkeypatch.setattr("fastbp.kernels.epoch.numba.get_num_threads", lambda: chunks)
    w = np.random.default_rng(0).uniform(0, 2, 37)
    for loss, kw in (("mse", {}), ("ce", {"sample_weight": w, "l2": 0.3})):
        serial = _run(sizes, act, False, loss=loss, norms=True, **kw)
        par = _run(sizes, act, True, loss=loss, norms=True, parallel=True, **kw)
        _same(par, serial, norms=True)
