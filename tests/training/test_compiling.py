"""Compile only when it pays, never silently: the kernel choice from what is
cached and the job's steps, the notices around Numba's compiles, what a run
records of them, the NumPy evaluation of small jobs, and the background
compile of the generic kernel."""

import json
import logging
import os

import numba
import numpy as np
import pytest
from cli_helpers import invoke

import fastbp
from fastbp import MSELoss, Sequential
from fastbp._validate import NUMPY_CHECK_SIZE, finite
from fastbp.kernels import special
from fastbp.nn import SGD, CrossEntropyLoss, Linear, Tanh
from fastbp.nn.losses import BinaryCrossEntropyLoss, SquaredErrorLoss
from fastbp.training import compiling, warm
from fastbp.training.compiling import CompileNotices, choose_kernel, step_seconds
from fastbp.training.metrics import evaluate_arrays
from fastbp.training.result import TrainResult
from fastbp.training.runners import fused_plan


def _plan(widths=(2, 8, 1)):
    model = fastbp.mlp(list(widths), "tanh", rng=0)
    return fused_plan(model, MSELoss(), SGD(model.parameters(), lr=0.1))


def _status(label="2-8-1", *, specialize=True, cached=False, generic_cached=True):
    return special.KernelStatus(
        label=label,
        specialize=specialize,
        cached=cached,
        compile_seconds=3.0,
        generic_cached=generic_cached,
        generic_compile_seconds=17.0,
    )


@pytest.fixture
def specializing(monkeypatch):
    """Per-architecture kernels allowed (the suite's conftest turns them off)."""
    monkeypatch.setenv("FASTBP_SPECIALIZE", "1")


def _choose(monkeypatch, status, steps, widths=(2, 8, 1), batch=4):
    monkeypatch.setattr(special, "kernel_status", lambda *a, **k: status)
    return choose_kernel(_plan(widths), batch_size=batch, steps=steps, weighted=False)


# --- the step model ---------------------------------------------------------


def test_step_seconds_is_the_documented_model():
    layout = _plan((2, 8, 1)).model.layout
    flops = 6 * 4 * (2 * 8 + 8 * 1)
    assert step_seconds(layout, 4, False) == pytest.approx(2 * 0.8e-6 + flops / 60e9)
    assert step_seconds(layout, 4, True) == pytest.approx(2 * 0.1e-6 + flops / 120e9)


def test_step_seconds_big_layers_cost_the_same_on_both_kernels():
    # A 256 x 256 layer exceeds SIMD_MAX_WEIGHTS: both kernels call BLAS.
    layout = _plan((256, 256)).model.layout
    assert 256 * 256 > special.SIMD_MAX_WEIGHTS
    gap = step_seconds(layout, 64, False) - step_seconds(layout, 64, True)
    assert gap == pytest.approx(0.8e-6 - 0.1e-6)


# --- the choice ----------------------------------------------------------------


def test_cached_specialized_kernel_is_used(monkeypatch, specializing):
    choice = _choose(monkeypatch, _status(cached=True), steps=1)
    assert (choice.kernel, choice.compile_estimate) == ("specialized", 0.0)
    assert choice.specialize


def test_short_job_runs_the_cached_generic_kernel(monkeypatch, specializing):
    choice = _choose(monkeypatch, _status(), steps=1000)
    assert (choice.kernel, choice.compile_estimate) == ("generic", 0.0)
    assert "less than its compile" in choice.reason
    assert not choice.specialize


def test_long_job_compiles_the_specialized_kernel(monkeypatch, specializing):
    layout = _plan().model.layout
    saved_per_step = step_seconds(layout, 4, False) - step_seconds(layout, 4, True)
    steps = int(3.0 / saved_per_step) + 1000  # saves just over the 3 s compile
    choice = _choose(monkeypatch, _status(), steps=steps)
    assert (choice.kernel, choice.compile_estimate) == ("specialized", 3.0)
    assert "more than its compile" in choice.reason
    fewer = _choose(monkeypatch, _status(), steps=int(3.0 / saved_per_step) - 1000)
    assert fewer.kernel == "generic"


def test_nothing_cached_compiles_the_cheaper_specialized_kernel(
    monkeypatch, specializing
):
    choice = _choose(monkeypatch, _status(generic_cached=False), steps=10)
    assert (choice.kernel, choice.compile_estimate) == ("specialized", 3.0)
    assert "compiles soonest" in choice.reason


def test_ineligible_layout_runs_generic(monkeypatch, specializing):
    status = _status(specialize=False, generic_cached=False)
    choice = _choose(monkeypatch, status, steps=10**9)
    assert (choice.kernel, choice.compile_estimate) == ("generic", 17.0)


def test_environment_can_turn_specialization_off(monkeypatch):
    monkeypatch.setenv("FASTBP_SPECIALIZE", "0")
    choice = _choose(monkeypatch, _status(cached=True), steps=10**9)
    assert choice.kernel == "generic"


def test_kernel_status_compiles_nothing(specializing):
    compiled = []

    class Listener(numba.core.event.Listener):
        def on_start(self, ev):
            compiled.append(ev)

        def on_end(self, ev):
            pass

    plan = _plan((3, 5, 7, 2))
    with numba.core.event.install_listener("numba:compile", Listener()):
        choose_kernel(plan, batch_size=8, steps=10, weighted=True)
    assert compiled == []


# --- notices ---------------------------------------------------------------------


def _fresh_kernel():
    @numba.njit(cache=False)
    def twice(x):
        return 2 * x

    return twice


def test_notices_say_what_compiles_and_record_it(caplog):
    result = TrainResult()
    twice = _fresh_kernel()
    with caplog.at_level(logging.INFO, logger="fastbp"):
        with CompileNotices(result).phase("the doubling kernel", 2.4):
            assert twice(21) == 42
        with CompileNotices(result).phase("the doubling kernel again"):
            assert twice(4) == 8  # compiled already: nothing to say
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "compiling the doubling kernel, first time only (about 2 s)..."
    assert lines[1].startswith("compiled the doubling kernel in ")
    assert len(lines) == 2
    assert result.compiled == ["_fresh_kernel.<locals>.twice"]
    assert 0 < result.compiling_seconds < 60


def test_notices_ask_a_function_at_the_first_compile(caplog):
    asked = []

    def describe():
        asked.append(True)
        return "what the block settled", 0.0

    with caplog.at_level(logging.INFO, logger="fastbp"):
        with CompileNotices(TrainResult()).phase(describe):
            assert not asked
            _fresh_kernel()(1)
    assert asked == [True]
    assert caplog.records[0].getMessage() == (
        "compiling what the block settled, first time only..."
    )


def test_train_records_the_kernel_and_its_reason():
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    T = np.array([[0], [1], [1], [0]], np.float32)
    model = fastbp.mlp([2, 6, 1], "tanh", rng=0)
    result = fastbp.train(
        model, MSELoss(), SGD(model.parameters(), lr=0.1), X, T, epochs=3
    )
    # tests/conftest.py sets FASTBP_SPECIALIZE=0
    assert (result.kernel, result.kernel_reason) == (
        "generic 2-6-1",
        "FASTBP_SPECIALIZE=0",
    )
    layered = fastbp.train(
        model, MSELoss(), SGD(model.parameters(), lr=0.1), X, T, epochs=1, fuse=False
    )
    assert layered.kernel == "layer path"


def test_cli_json_reports_the_kernel_and_what_compiled():
    result = invoke("train", "--data", "xor", "--epochs", "5", "--json", "--quiet")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["kernel"] == "generic 2-8-1"
    assert record["kernel_reason"] == "FASTBP_SPECIALIZE=0"
    assert isinstance(record["compiled"], list)
    assert record["compiling_seconds"] >= 0


# --- NumPy evaluation of a few rows ------------------------------------------------


@pytest.mark.parametrize(
    "loss, target",
    [
        (MSELoss(), "values"),
        (MSELoss(reduction="sum"), "values"),
        (SquaredErrorLoss(), "values"),
        (BinaryCrossEntropyLoss(), "binary"),
        (CrossEntropyLoss(), "labels"),
    ],
)
def test_numpy_value_equals_the_kernel_value(loss, target):
    rng = np.random.default_rng(0)
    y = rng.normal(size=(37, 3)) * 4
    t = {
        "values": rng.normal(size=(37, 3)),
        "binary": rng.integers(0, 2, size=(37, 3)).astype(np.float64),
        "labels": rng.integers(0, 3, size=37),
    }[target]
    assert loss.numpy_value(y, t) == pytest.approx(loss.value(y, t), rel=1e-13)


def test_numpy_value_matches_the_formulas():
    y = np.array([[1.0, -2.0, 0.5]])
    t = np.array([[0.0, 1.0, 1.0]])
    assert MSELoss().numpy_value(y, t) == pytest.approx((1 + 9 + 0.25) / 3)
    assert SquaredErrorLoss().numpy_value(y, t) == pytest.approx(0.5 * 10.25)
    bce = np.sum(np.log1p(np.exp(y)) - t * y)
    assert BinaryCrossEntropyLoss().numpy_value(y, t) == pytest.approx(bce)
    ce = np.log(np.sum(np.exp(y))) - y[0, 2]
    assert CrossEntropyLoss().numpy_value(y, np.array([2])) == pytest.approx(ce)


def test_evaluate_a_few_rows_in_numpy_as_the_kernels_do():
    rng = np.random.default_rng(1)
    f64 = np.float64
    model = Sequential(
        Linear(4, 9, rng=0, dtype=f64), Tanh(), Linear(9, 3, rng=1, dtype=f64)
    )
    X = rng.normal(size=(5000, 4))
    labels = rng.integers(0, 3, 5000)
    loss = CrossEntropyLoss()
    small = evaluate_arrays(model, loss, X[:300], labels[:300], "accuracy")
    # 5000 rows > NUMPY_ROWS: the kernels, batch by batch
    y = model.predict(X[:300])
    assert small[0] == pytest.approx(loss.value(y, labels[:300]), rel=1e-12)
    assert small[1] == np.mean(np.argmax(y, axis=1) == labels[:300])
    big = evaluate_arrays(model, loss, X, labels)
    assert big[0] == pytest.approx(loss.value(model.predict(X), labels), rel=1e-12)


def test_evaluate_of_a_diverged_model_in_numpy_is_infinite():
    model = Sequential(Linear(2, 1, rng=0, dtype=np.float64))
    model.flat_data[:] = np.inf
    value, metric = evaluate_arrays(model, MSELoss(), np.ones((3, 2)), np.ones((3, 1)))
    assert value == np.inf and np.isnan(metric)


@pytest.mark.parametrize("size", [10, NUMPY_CHECK_SIZE + 7])
def test_finite_on_both_sides_of_the_numpy_size(size):
    x = np.ones(size)
    assert finite(x)
    x[size // 2] = np.nan
    assert not finite(x)
    x[size // 2] = -np.inf
    assert not finite(x.reshape(1, -1))


# --- the background compile of the generic kernel -------------------------------


class _Spawned:
    def __init__(self, argv, **options):
        self.argv, self.options, self.pid = argv, options, 4242


@pytest.fixture
def spawning(monkeypatch, tmp_path):
    """compile_generic_later with a cache in tmp_path, the generic kernel
    not cached, and Popen recorded instead of run."""
    from fastbp.kernels import _jit

    monkeypatch.setenv("FASTBP_BACKGROUND_COMPILE", "1")
    monkeypatch.setattr(_jit, "CACHE_DIR", tmp_path)
    monkeypatch.setattr(special, "generic_cached", lambda dtype: False)
    started = []
    monkeypatch.setattr(
        warm.subprocess,
        "Popen",
        lambda *a, **k: started.append(_Spawned(*a, **k)) or started[-1],
    )
    return tmp_path, started


def test_background_compile_starts_one_detached_process(spawning):
    folder, started = spawning
    assert warm.compile_generic_later("float64") == 4242
    (process,) = started
    lock = folder / "ledger" / "compiling-generic-float64.lock"
    assert process.argv[1:] == ["-m", "fastbp.training.warm", "float64", str(lock)]
    assert process.options["start_new_session"]
    assert process.options["env"]["FASTBP_SPECIALIZE"] == "0"
    assert lock.exists()
    assert warm.compile_generic_later("float64") is None  # one at a time
    os.utime(lock, (0, 0))  # a lock left by a process that died
    assert warm.compile_generic_later("float64") == 4242
    assert len(started) == 2


def test_background_compile_not_when_cached_or_turned_off(spawning, monkeypatch):
    _, started = spawning
    monkeypatch.setattr(special, "generic_cached", lambda dtype: True)
    assert warm.compile_generic_later("float32") is None
    monkeypatch.setattr(special, "generic_cached", lambda dtype: False)
    monkeypatch.setenv("FASTBP_BACKGROUND_COMPILE", "0")
    assert warm.compile_generic_later("float32") is None
    assert started == []


def test_background_process_trains_on_the_generic_kernel_and_frees_the_lock(
    monkeypatch, tmp_path
):
    from fastbp.training import api

    calls = []
    monkeypatch.setattr(api, "train", lambda *a, **k: calls.append((a, k)))
    lock = tmp_path / "x.lock"
    lock.write_text("")
    warm.main(["float32", str(lock)])
    ((args, options),) = calls
    assert args[0].dtype == np.float32 and options == {"epochs": 1}
    assert not lock.exists()


def test_compiling_module_has_no_side_effects_on_logging():
    assert compiling.log.name == "fastbp"
    assert not compiling.log.handlers
