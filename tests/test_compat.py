"""The module paths fastbp had before its packages by concern still work, each
with a DeprecationWarning naming the new place; ``fastbp.train`` and
``fastbp.gradcheck`` are the functions and the old modules at once."""

import importlib
import subprocess
import sys

import numpy as np
import pytest

import fastbp

OLD_PATHS = {
    "fastbp.layers": ("Linear", "fastbp.nn.layers"),
    "fastbp.losses": ("MSELoss", "fastbp.nn.losses"),
    "fastbp.optim": ("Adam", "fastbp.nn.optim"),
    "fastbp.parts": ("register", "fastbp.nn.parts"),
    "fastbp.schedules": ("EarlyStopping", "fastbp.training.schedules"),
    "fastbp.checkpoint": ("Checkpoint", "fastbp.training.checkpoint"),
    "fastbp.tables": ("read_table", "fastbp.data.tables"),
    "fastbp.problem": ("Predictor", "fastbp.data.problem"),
    "fastbp.stream": ("scan", "fastbp.data.stream"),
    "fastbp.shard": ("load_shard", "fastbp.data.shard"),
    "fastbp.outputs": ("PredictionWriter", "fastbp.io.outputs"),
    "fastbp.train": ("lbfgs", "fastbp.training"),
    "fastbp.gradcheck": ("GradcheckResult", "fastbp.nn.numerical"),
}


@pytest.mark.parametrize("old", sorted(OLD_PATHS))
def test_old_module_path_forwards_with_a_warning(old):
    name, new = OLD_PATHS[old]
    module = importlib.import_module(old)
    with pytest.warns(DeprecationWarning, match=f"{old}.{name} moved to {new}"):
        value = getattr(module, name)
    assert value is getattr(importlib.import_module(new), name)
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        module.nonexistent  # noqa: B018


def test_train_is_the_function_and_the_old_module():
    # README of 0.1: fastbp.train.lbfgs(...); fastbp.train(...) stays a call
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float64)
    T = np.array([0.0, 1.0, 1.0, 0.0])
    model = fastbp.mlp([2, 4, 1], "tanh", rng=0, dtype=np.float64)
    with pytest.warns(DeprecationWarning):
        lbfgs = fastbp.train.lbfgs
    assert lbfgs is fastbp.lbfgs
    result = fastbp.train(
        model, fastbp.MSELoss(), fastbp.SGD(model.parameters(), lr=0.1), X, T,
        epochs=3, batch_size=4,
    )  # fmt: skip
    assert len(result.loss) == 3 and result.fused


def test_importing_an_old_path_first_keeps_train_callable():
    code = (
        "import fastbp.train, fastbp.gradcheck, fastbp, inspect;"
        "assert callable(fastbp.train) and callable(fastbp.gradcheck);"
        "print(list(inspect.signature(fastbp.train).parameters)[:3])"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "['model', 'loss', 'optimizer']"


def test_import_fastbp_loads_numpy_only():
    code = (
        "import sys, fastbp;"
        "print(sorted(m for m in ('numba', 'scipy', 'pyarrow', 'click') "
        "if m in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
