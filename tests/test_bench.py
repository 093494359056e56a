"""The benchmark engines agree with each other and with plain NumPy; the suite runs.

Every available engine trains the same MLP from the same start for a few steps
and must end with the weights of the from-scratch NumPy engine; torch and jax
engines are skipped when their library is missing.
"""

import importlib
import importlib.util
import json

import numpy as np
import pytest

from fastbp.bench.common import CASES, flops_per_step, init_params, make_batch
from fastbp.bench.numpy_scratch import NumpyEngine

LR = 0.05
STEPS = 3
SEED = 7
W_TOL = dict(rtol=1e-4, atol=1e-5)
SETUPS = [((3, 5, 2), 4), ((4, 6, 5, 3), 7)]

# (library that must import, module under fastbp.bench, class name)
ENGINES = [
    (None, "engines", "FastbpFusedEngine"),
    (None, "engines", "FastbpLayerEngine"),
    (None, "numpy_scratch", "NumpyEngine"),
    ("torch", "torch_eager", "TorchEngine"),
    ("jax", "jax_engines", "JaxLoopEngine"),
    ("jax", "jax_engines", "JaxStepEngine"),
]


@pytest.fixture(params=ENGINES, ids=lambda e: e[2])
def engine_cls(request):
    lib, mod, cls = request.param
    if lib is not None:
        pytest.importorskip(lib)
    module = importlib.import_module(f"fastbp.bench.{mod}")
    return getattr(module, cls)


def direct_loss(sizes, batch, seed):
    """MSE of the initial network on the batch, in float64, straight from numpy."""
    X, T = make_batch(sizes, batch, seed)
    params = init_params(sizes, seed)
    h = X.astype(np.float64)
    for k, (W, b) in enumerate(params):
        h = h @ W.astype(np.float64) + b
        if k < len(params) - 1:
            h = np.maximum(h, 0.0)
    return float(np.mean((h - T) ** 2))


@pytest.mark.parametrize(("sizes", "batch"), SETUPS)
def test_weights_match_numpy_scratch(engine_cls, sizes, batch):
    ref = NumpyEngine(sizes, batch, LR, SEED)
    ref.step(STEPS)
    eng = engine_cls(sizes, batch, LR, SEED)
    eng.warmup()
    eng.step(1)
    eng.step(STEPS - 1)  # two calls: state carries over between them
    got, want = eng.weights(), ref.weights()
    assert len(got) == len(want) == len(sizes) - 1
    for (W, b), (W_ref, b_ref), n_in, n_out in zip(
        got, want, sizes[:-1], sizes[1:], strict=True
    ):
        assert W.shape == (n_in, n_out)
        assert b.shape == (n_out,)
        assert W.dtype == b.dtype == np.float32
        np.testing.assert_allclose(W, W_ref, **W_TOL)
        np.testing.assert_allclose(b, b_ref, **W_TOL)
    # The weights did move, so the comparison means something.
    start = init_params(sizes, SEED)
    assert not np.allclose(want[0][0], start[0][0])


@pytest.mark.parametrize(("sizes", "batch"), SETUPS)
def test_first_loss_is_direct_mse(engine_cls, sizes, batch):
    eng = engine_cls(sizes, batch, LR, SEED)
    eng.warmup()
    loss = eng.step(1)
    assert isinstance(loss, float)
    assert loss == pytest.approx(direct_loss(sizes, batch, SEED), rel=1e-5)


def test_warmup_leaves_weights_alone(engine_cls):
    sizes, batch = SETUPS[1]
    eng = engine_cls(sizes, batch, LR, SEED)
    eng.warmup()
    for (W, b), (W0, b0) in zip(eng.weights(), init_params(sizes, SEED), strict=True):
        np.testing.assert_array_equal(W, W0)
        np.testing.assert_array_equal(b, b0)


def test_weights_are_copies(engine_cls):
    eng = engine_cls((3, 5, 2), 4, LR, SEED)
    before = eng.weights()
    before[0][0][...] = 123.0
    assert not np.any(eng.weights()[0][0] == 123.0)


def test_jax_loop_compiles_once():
    pytest.importorskip("jax")
    from fastbp.bench.jax_engines import JaxLoopEngine

    eng = JaxLoopEngine((3, 5, 2), 4, LR, SEED)
    eng.warmup()
    eng.step(1)
    eng.step(5)
    cache_size = getattr(eng._run, "_cache_size", None)
    if cache_size is None:
        pytest.skip("this jax has no jit _cache_size")
    assert cache_size() == 1


def test_flops_per_step_hand_example():
    # (3, 5, 2), B = 4:
    #   layer 1 (3 -> 5): forward 2*4*3*5 = 120, dW 120, no dX -> 240
    #   layer 2 (5 -> 2): forward 2*4*5*2 = 80, dW 80, dX 80  -> 240
    assert flops_per_step((3, 5, 2), 4) == 480
    # One layer: forward and dW only.
    assert flops_per_step((10, 1), 1) == 2 * 2 * 10


def test_init_and_batch_are_deterministic_float32():
    sizes, batch = (4, 6, 5, 3), 7
    p1, p2 = init_params(sizes, 3), init_params(sizes, 3)
    for (W1, b1), (W2, b2) in zip(p1, p2, strict=True):
        np.testing.assert_array_equal(W1, W2)
        np.testing.assert_array_equal(b1, b2)
        assert W1.dtype == b1.dtype == np.float32
    assert p1[0][0].shape == (4, 6)
    assert not np.array_equal(init_params(sizes, 4)[0][0], p1[0][0])
    X, T = make_batch(sizes, batch, 3)
    assert X.shape == (7, 4) and T.shape == (7, 3)
    assert X.dtype == T.dtype == np.float32
    np.testing.assert_array_equal(X, make_batch(sizes, batch, 3)[0])


def test_cases_are_the_benchmark_suite():
    assert sorted(CASES.values()) == sorted(
        [
            ((2, 8, 1), 4),
            ((32, 64, 1), 64),
            ((32, *[64] * 10, 1), 64),
            ((20, 256, 256, 1), 256),
            ((784, 256, 10), 128),
            ((1024, 1024, 1024, 10), 256),
        ]
    )


def test_suite_quick_run_reports_every_engine_and_writes_files(tmp_path):
    from fastbp.bench import suite

    cases = {"tiny": ((3, 5, 2), 4)}
    result = suite.run(
        cases=cases,
        budget=0.001,
        rounds=1,
        threads=1,
        micro_shapes=((4, 2, 8),),
        peak_size=64,
        scaling=False,
        echo=lambda *a: None,
    )
    (case,) = result["cases"]
    names = [row["engine"] for row in case["engines"]]
    assert names[:4] == ["fastbp-fused", "fastbp-train", "fastbp-layers", "numpy"]
    for row in case["engines"]:
        assert row["us_per_step"] > 0
        assert row["samples_per_s"] == pytest.approx(4e6 / row["us_per_step"])
        assert row["gflops"] == pytest.approx(
            flops_per_step((3, 5, 2), 4) / row["us_per_step"] / 1e3
        )
    assert case["engines"][0]["ratio_to_fused"] == 1.0
    # Engines agree after three identical SGD steps (float32 rounding only).
    assert max(case["agreement"].values()) < 1e-5
    kernels = {row["kernel"] for row in result["kernels"]}
    assert kernels == {
        "dense forward",
        "dense backward",
        "relu backward (mask)",
        "mse value+grad",
    }
    json_path, md_path = suite.write(result, tmp_path / "out")
    assert json.loads(json_path.read_text())["cases"][0]["case"] == "tiny"
    assert "| tiny (B=4) | fastbp-fused |" in md_path.read_text()


def _settings():
    """Every process-wide setting the suite may change, as comparable values."""
    import os

    import numba
    from threadpoolctl import threadpool_info

    from fastbp._threads import blas_threads

    settings = {
        "numba_threads": numba.get_num_threads(),
        "blas_threads": blas_threads(),
        "thread_pools": [(i["filepath"], i["num_threads"]) for i in threadpool_info()],
        "environ": dict(os.environ),
    }
    try:
        import torch
    except ImportError:
        pass
    else:
        settings["torch_threads"] = torch.get_num_threads()
    return settings


def _warm_engines(suite):
    """Run every engine once, so that what torch and jax set up for themselves
    on first use (torch writes TORCHINDUCTOR_CACHE_DIR and KMP_DUPLICATE_LIB_OK
    into os.environ) happens before the snapshot, not inside the suite."""
    for cls in suite.available_engines():
        engine = cls((3, 5, 2), 4, LR, SEED)
        engine.warmup()
        engine.step(1)


@pytest.mark.parametrize("threads", [1, None])
def test_suite_run_restores_every_setting(threads):
    from fastbp.bench import suite

    _warm_engines(suite)
    before = _settings()
    inside = []

    def echo(*args):
        inside.append(_settings())

    suite.run(
        cases={"tiny": ((3, 5, 2), 4)},
        budget=0.001,
        rounds=1,
        threads=threads,
        micro_shapes=((4, 2, 8),),
        peak_size=32,
        scaling=True,
        echo=echo,
    )
    assert _settings() == before
    if threads == 1:
        assert inside and all(s["numba_threads"] == 1 for s in inside)
        assert all(n == 1 for s in inside for n in s["blas_threads"])
        if "torch_threads" in before:
            assert all(s["torch_threads"] == 1 for s in inside)
        if importlib.util.find_spec("jax") and "XLA_FLAGS" not in before["environ"]:
            assert all(
                s["environ"]["XLA_FLAGS"] == suite.XLA_ONE_THREAD for s in inside
            )


def test_engine_threads_restores_settings_after_an_error():
    from fastbp.bench import suite

    _warm_engines(suite)
    before = _settings()
    with pytest.raises(RuntimeError, match="boom"), suite.engine_threads(1):
        raise RuntimeError("boom")
    assert _settings() == before
