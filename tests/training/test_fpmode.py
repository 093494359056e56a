"""Training runs with subnormal numbers flushed to zero (FTZ and DAZ set in
the calling thread's MXCSR on x86-64) and leaves the register as it found it."""

import platform

import numpy as np
import pytest

import fastbp
from fastbp.training.fpmode import FTZ_DAZ, flush_subnormals, mxcsr

pytestmark = pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"), reason="x86-64 only"
)

SUBNORMAL = np.float32(1e-39)  # below float32's smallest normal, 1.18e-38


def _xor_run(callback=None):
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    T = np.array([[0], [1], [1], [0]], np.float32)
    model = fastbp.mlp([2, 4, 1], "tanh", rng=0)
    return fastbp.train(
        model, fastbp.MSELoss(), fastbp.SGD(model.parameters(), lr=0.1), X, T,
        epochs=3, batch_size=4, callback=callback,
    )  # fmt: skip


def test_flush_subnormals_sets_and_restores_the_register():
    before = mxcsr()
    assert before is not None and before & FTZ_DAZ == 0
    with flush_subnormals():
        assert mxcsr() == before | FTZ_DAZ
        # DAZ: a subnormal input reads as 0; FTZ: a subnormal result is 0.
        assert SUBNORMAL * np.float32(1.0) == 0.0
        assert np.float32(1e-20) * np.float32(1e-20) == 0.0
    assert mxcsr() == before
    assert SUBNORMAL * np.float32(1.0) == SUBNORMAL


def test_training_flushes_while_it_runs_and_restores_after():
    before = mxcsr()
    seen = []
    _xor_run(callback=lambda epoch, result: seen.append(mxcsr()))
    assert seen and all(value == before | FTZ_DAZ for value in seen)
    assert mxcsr() == before


def test_the_register_is_restored_when_training_fails():
    before = mxcsr()

    def fail(epoch, result):
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        _xor_run(callback=fail)
    assert mxcsr() == before
