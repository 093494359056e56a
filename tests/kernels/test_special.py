"""Kernels generated per architecture (fastbp.kernels.special) train exactly
as the generic fused kernel does: same losses, same weights, float64."""

import subprocess
import sys

import numpy as np
import pytest

import fastbp
from fastbp.kernels import special
from fastbp.kernels.epoch import train_epochs
from fastbp.training.runners import fused_plan

ARCHS = [
    ([2, 8, 1], "relu"),  # XOR: every layer tiny
    ([5, 16, 3], "tanh"),  # 5x16 = 80 weights: BLAS kernels; 16x3 micro
    ([4, 4, 4, 4, 1], "sigmoid"),  # deep and tiny
    ([3, 30, 9, 1], "gelu"),  # pre-activations kept (z)
    ([6, 40, 1], "leaky_relu"),  # one output after a BLAS-sized layer
]


def _run(sizes, act, spec, loss="mse", dtype=np.float64, **extra):
    rng = np.random.default_rng(3)
    n = 37  # batches of 8: a short last batch
    X = rng.standard_normal((n, sizes[0]))
    model = fastbp.mlp(sizes, act, rng=1, dtype=dtype)
    if loss == "mse":
        loss_obj = fastbp.MSELoss()
        T = rng.standard_normal((n, sizes[-1])).astype(dtype)
        labels = np.empty(0, np.int64)
    else:
        loss_obj = fastbp.CrossEntropyLoss()
        T = np.empty((0, 0), dtype)
        labels = rng.integers(0, sizes[-1], n).astype(np.int64)
    optimizer = fastbp.Adam(model.parameters(), lr=0.01)
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


@pytest.mark.parametrize("sizes,act", ARCHS)
def test_special_equals_generic(sizes, act):
    """Shuffled epochs, short last batch, Adam: losses and weights equal the
    generic kernel's to 1e-12 relative (the products run different loops)."""
    loss_g, theta_g, steps_g, _ = _run(sizes, act, False)
    loss_s, theta_s, steps_s, _ = _run(sizes, act, True)
    assert steps_g == steps_s == 4 * 5
    np.testing.assert_allclose(loss_s, loss_g, rtol=1e-12)
    np.testing.assert_allclose(theta_s, theta_g, rtol=1e-12, atol=1e-14)
    assert not np.allclose(theta_s, _run(sizes, act, True)[1] * 0)  # it trained


@pytest.mark.parametrize("sizes,act", ARCHS[:2])
def test_special_equals_generic_with_every_option(sizes, act):
    """Sample weights, L2, gradient norms and a cross-entropy loss on labels."""
    w = np.random.default_rng(0).uniform(0, 2, 37)
    kw = {"sample_weight": w, "l2": 0.3, "norms": True}
    g = _run(sizes, act, False, loss="ce", **kw)
    s = _run(sizes, act, True, loss="ce", **dict(kw))
    np.testing.assert_allclose(s[0], g[0], rtol=1e-12)
    np.testing.assert_allclose(s[1], g[1], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(s[3], g[3], rtol=1e-12)
    assert s[3].min() > 0


def test_float32_agrees():
    loss_g, theta_g, _, _ = _run([2, 8, 1], "relu", False, dtype=np.float32)
    loss_s, theta_s, _, _ = _run([2, 8, 1], "relu", True, dtype=np.float32)
    np.testing.assert_allclose(theta_s, theta_g, rtol=1e-5, atol=1e-6)


def _layout(sizes):
    model = fastbp.mlp(sizes)
    optimizer = fastbp.SGD(model.parameters(), lr=0.1)
    return fused_plan(model, fastbp.MSELoss(), optimizer).model.layout


def test_eligibility():
    """Specialized where some layer is tiny or has one output and the network
    is small; not for wide networks (BLAS-bound), nor beyond MAX_LAYERS."""
    assert special.eligible(_layout([2, 8, 1]))
    assert special.eligible(_layout([32, 64, 1]))
    assert not special.eligible(_layout([20, 256, 256, 1]))  # 71k weights
    assert not special.eligible(_layout([784, 256, 10]))
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
