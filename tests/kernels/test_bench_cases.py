"""The bench's reference cases (SimpleChains' networks, one of them float64):
every engine builds them in the case's dtype and trains to the weights of
the from-scratch NumPy engine; the report sets fastbp's GFLOP/s per core
beside the published figure."""

import importlib

import numpy as np
import pytest

from fastbp.bench import suite
from fastbp.bench.common import (
    PUBLISHED_GFLOPS_PER_CORE,
    REFERENCE_CASES,
    case_spec,
    flops_per_step,
)
from fastbp.bench.numpy_scratch import NumpyEngine

ENGINES = [
    (None, "engines", "FastbpFusedEngine"),
    (None, "engines", "FastbpTrainEngine"),
    (None, "engines", "FastbpLayerEngine"),
    ("torch", "torch_eager", "TorchEngine"),
    ("jax", "jax_engines", "JaxLoopEngine"),
    ("jax", "jax_engines", "JaxStepEngine"),
]


def test_reference_cases():
    assert case_spec(REFERENCE_CASES["simplechains-24-8-2-f64"]) == (
        (24, 8, 2),
        200,
        np.dtype(np.float64),
    )
    assert case_spec(REFERENCE_CASES["simplechains-4-32-16-4"])[:2] == (
        (4, 32, 16, 4),
        10_000,
    )
    assert set(PUBLISHED_GFLOPS_PER_CORE) == set(REFERENCE_CASES)
    assert set(suite.ALL_CASES) == set(suite.CASES) | set(REFERENCE_CASES)


@pytest.mark.parametrize("lib,module,name", ENGINES)
def test_float64_engines_match_numpy(lib, module, name):
    """24-8-2 on 20 rows, float64: weights equal NumPy's to 1e-12 after
    three SGD steps, and stay float64."""
    if lib is not None:
        pytest.importorskip(lib)
    cls = getattr(importlib.import_module(f"fastbp.bench.{module}"), name)
    ref = NumpyEngine((24, 8, 2), 20, 0.05, 3, dtype=np.float64)
    ref.step(3)
    engine = cls((24, 8, 2), 20, 0.05, 3, dtype=np.float64)
    engine.warmup()
    engine.step(3)
    for (W, b), (W0, b0) in zip(engine.weights(), ref.weights(), strict=True):
        assert W.dtype == b.dtype == np.float64
        np.testing.assert_allclose(W, W0, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(b, b0, rtol=1e-12, atol=1e-13)


def test_report_sets_fastbp_beside_the_published_figure():
    cases = {"simplechains-24-8-2-f64": ((24, 8, 2), 20, "float64")}
    result = suite.run(
        cases=cases,
        budget=0.001,
        rounds=1,
        threads=1,
        micro_shapes=(),
        peak_size=64,
        scaling=False,
        echo=lambda *a: None,
    )
    (case,) = result["cases"]
    assert case["dtype"] == "float64"
    train = next(r for r in case["engines"] if r["engine"] == "fastbp-train")
    assert train["gflops_per_core"] == pytest.approx(
        flops_per_step((24, 8, 2), 20) / train["us_per_step"] / 1e3
    )
    assert max(case["agreement"].values()) < 1e-12
    text = suite.markdown(result)
    assert "| simplechains-24-8-2-f64 (B=20, float64) | fastbp-train |" in text
    assert "published GFLOP/s per core" in text
