"""Checkpoints and resume: a run stopped and resumed equals the run never
stopped (float64, 1e-12: weights, per-epoch losses, learning rates,
validation figures, early-stopping decisions); bad and mismatched checkpoints
are one-line errors (exit 2 at the command line); writes are atomic.

The reference in every equality test is the same training run without
interruption, computed here."""

import os

import numpy as np
import pyarrow as pa
import pytest
from cli_helpers import IRIS, REGRESSION, assert_input_error, invoke, train_json

import fastbp
from fastbp.data.stream import Streamed, scan
from fastbp.io import load_model, save_model
from fastbp.training.checkpoint import (
    Checkpoint,
    CheckpointError,
    CheckpointFile,
    load_checkpoint,
)
from fastbp.training.schedules import EarlyStopping

ATOL = 1e-12


def regression_data(seed=7):
    """(X, T, X_val, T_val): y = sin(x1) x2 + noise, 64 training rows."""
    rng = np.random.default_rng(seed)

    def rows(n):
        X = rng.normal(size=(n, 3))
        return X, np.sin(X[:, :1]) * X[:, 1:2] + 0.3 * rng.normal(size=(n, 1))

    return (*rows(64), *rows(24))


X, T, X_VAL, T_VAL = regression_data()


def make(opt, lr, dtype=np.float64, hidden=16):
    """A fresh (model, loss, optimizer), the same every call."""
    model = fastbp.mlp([3, hidden, 1], "tanh", rng=1, dtype=dtype)
    if opt == "sgd":
        optimizer = fastbp.SGD(model.parameters(), lr=lr, momentum=0.9)
    else:
        optimizer = fastbp.Adam(model.parameters(), lr=lr)
    return model, fastbp.MSELoss(), optimizer


#: name -> (optimizer, lr, train() keywords as a function: fresh objects for
#: each run). Each case's decisions fall on both sides of epoch 5, which the
#: test checks on the reference run.
CASES = {
    "sgd-momentum": ("sgd", 0.05, lambda: {}),
    "adam": ("adam", 0.02, lambda: {}),
    "sgd-invscaling": ("sgd", 0.5, lambda: {"lr_schedule": "invscaling"}),
    "adam-invscaling": ("adam", 0.2, lambda: {"lr_schedule": "invscaling"}),
    # scikit-learn's adaptive rule, as fastbp train --lr-schedule adaptive
    # builds it: lr / 5 when the training loss stalls for more than 1 epoch.
    "sgd-adaptive": (
        "sgd",
        0.05,
        lambda: {
            "lr_schedule": "adaptive",
            "early_stopping": EarlyStopping(1, 0.03, "train_loss", False),
        },
    ),
    "adam-adaptive": (
        "adam",
        0.02,
        lambda: {
            "lr_schedule": "adaptive",
            "early_stopping": EarlyStopping(1, 0.03, "train_loss", False),
        },
    ),
    "sgd-early-stopping": (
        "sgd",
        0.2,
        lambda: {
            "val": (X_VAL, T_VAL),
            "early_stopping": EarlyStopping(3, 1e-3, "val_loss"),
        },
    ),
    "adam-early-stopping": (
        "adam",
        0.2,
        lambda: {
            "val": (X_VAL, T_VAL),
            "early_stopping": EarlyStopping(3, 1e-3, "val_loss"),
        },
    ),
    "sgd-layer-path": ("sgd", 0.05, lambda: {"fuse": False, "grad_norms": True}),
    "adam-validation": ("adam", 0.02, lambda: {"val": (X_VAL, T_VAL)}),
}


def train(opt, lr, epochs, **kw):
    model, loss, optimizer = make(opt, lr)
    result = fastbp.train(
        model, loss, optimizer, X, T, epochs=epochs, batch_size=8, seed=3, **kw
    )
    return model, optimizer, result


def assert_same_run(a, b):
    """(model, optimizer, result) a equals b to 1e-12, history included."""
    (model_a, opt_a, res_a), (model_b, opt_b, res_b) = a, b
    np.testing.assert_allclose(model_a.flat_data, model_b.flat_data, 0, ATOL)
    np.testing.assert_allclose(opt_a.state, opt_b.state, 0, ATOL)
    assert opt_a.step_count == opt_b.step_count
    assert opt_a.lr == opt_b.lr
    assert len(res_a.loss) == len(res_b.loss) == res_a.epochs == res_b.epochs
    np.testing.assert_allclose(res_a.loss, res_b.loss, 0, ATOL)
    np.testing.assert_allclose(res_a.val_loss, res_b.val_loss, 0, ATOL)
    np.testing.assert_allclose(res_a.val_metric, res_b.val_metric, 0, ATOL)
    np.testing.assert_allclose(res_a.grad_norms, res_b.grad_norms, 0, ATOL)
    assert res_a.lr == res_b.lr
    assert (res_a.best_epoch, res_a.stop_reason) == (
        res_b.best_epoch,
        res_b.stop_reason,
    )
    assert (res_a.steps, res_a.samples) == (res_b.steps, res_b.samples)


# --- resumed equals uninterrupted ---------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_checkpoint_resume_5_plus_5_equals_10_epochs(tmp_path, case):
    opt, lr, kw = CASES[case]
    path = tmp_path / "run.ckpt"
    reference = train(opt, lr, 10, **kw())
    first = train(opt, lr, 5, checkpoint=path, checkpoint_every=2, **kw())
    assert load_checkpoint(path).epochs_done == 5  # the last epoch is written
    resumed = train(opt, lr, 10, resume=path, **kw())
    assert resumed[2].start_epoch == 5
    assert_same_run(resumed, reference)
    # The first half is the reference's first half too.
    np.testing.assert_allclose(first[2].loss, reference[2].loss[:5], 0, ATOL)

    ref = reference[2]
    if "adaptive" in case:  # the rate dropped after epoch 5 (state carried over)
        assert ref.lr[5] < ref.lr[0] or ref.lr[9] < ref.lr[5]
        assert len(set(ref.lr)) >= 3
    if "early-stopping" in case:  # stopped after the resume, best epoch before
        assert ref.stop_reason is not None
        assert ref.best_epoch < 5 < ref.epochs < 10
    if "invscaling" in case:
        assert ref.lr[5] < ref.lr[4]


def test_checkpoint_resume_after_a_crash_equals_uninterrupted(tmp_path):
    """A run that dies in epoch 8 left its epoch-6 checkpoint; resuming with
    the same arguments finishes as the run never stopped."""
    path = tmp_path / "run.ckpt"
    reference = train("adam", 0.02, 10)

    def crash(epoch, result):
        if epoch == 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train("adam", 0.02, 10, checkpoint=path, checkpoint_every=3, callback=crash)
    assert load_checkpoint(path).epochs_done == 6
    resumed = train("adam", 0.02, 10, resume=path)
    assert resumed[2].start_epoch == 6
    assert_same_run(resumed, reference)


class RecordingFile(CheckpointFile):
    """A CheckpointFile that remembers the epoch of each checkpoint written."""

    def __init__(self, path, is_writer=True):
        super().__init__(path, is_writer=is_writer)
        self.epochs = []

    def write(self, make):
        super().write(lambda: self._record(make()))

    def _record(self, checkpoint):
        self.epochs.append(checkpoint.epochs_done)
        return checkpoint


def test_checkpoint_fused_chunks_stop_at_multiples_of_every(tmp_path):
    # Without validation or a schedule the fused kernel runs all 50 epochs in
    # one call; with checkpoints each call ends at a multiple of 7.
    target = RecordingFile(tmp_path / "run.ckpt")
    checkpointed = train("sgd", 0.05, 50, checkpoint=target, checkpoint_every=7)
    assert target.epochs == [7, 14, 21, 28, 35, 42, 49, 50]
    assert_same_run(checkpointed, train("sgd", 0.05, 50))
    resumed = train("sgd", 0.05, 60, resume=target.path)
    assert_same_run(resumed, train("sgd", 0.05, 60))


def test_checkpoint_non_writer_writes_nothing(tmp_path):
    # An MPI rank other than 0 trains the same epochs and writes no file.
    target = RecordingFile(tmp_path / "run.ckpt", is_writer=False)
    train("sgd", 0.05, 4, checkpoint=target)
    assert target.epochs == [] and os.listdir(tmp_path) == []


def test_checkpoint_resume_of_a_finished_run_trains_nothing(tmp_path):
    """Resuming the checkpoint written when early stopping ended the run (or
    one with all the epochs) gives the run's final model: its best epoch's
    weights."""
    opt, lr, kw = CASES["sgd-early-stopping"]
    path = tmp_path / "run.ckpt"
    reference = train(opt, lr, 10, checkpoint=path, **kw())
    assert reference[2].stop_reason is not None
    resumed = train(opt, lr, 10, resume=path, **kw())
    assert resumed[2].start_epoch == resumed[2].epochs == reference[2].epochs
    assert_same_run(resumed, reference)

    train("adam", 0.02, 4, checkpoint=path)
    again = train("adam", 0.02, 4, resume=path)
    assert again[2].start_epoch == 4
    assert_same_run(again, train("adam", 0.02, 4))


def test_checkpoint_resume_with_grad_norms_only_now(tmp_path):
    # Norms not recorded before the checkpoint are NaN rows, so epochs stay
    # aligned with the history.
    path = tmp_path / "run.ckpt"
    train("sgd", 0.05, 3, checkpoint=path)
    _, _, result = train("sgd", 0.05, 5, resume=path, grad_norms=True)
    reference = train("sgd", 0.05, 5, grad_norms=True)[2]
    assert np.isnan(result.grad_norms[:3]).all()
    np.testing.assert_allclose(result.grad_norms[3:], reference.grad_norms[3:], 0, ATOL)


def test_checkpoint_stream_resume_equals_uninterrupted(tmp_path):
    """Streamed training with a shuffle buffer smaller than the data (its
    generator's draws continue across the resume) and validation rows."""
    rng = np.random.default_rng(0)
    n = 300
    features = rng.normal(size=(n, 4))
    y = features @ rng.normal(size=4) + 0.1 * rng.normal(size=n)
    table = pa.table({**{f"x{j}": features[:, j] for j in range(4)}, "y": y})

    def source():
        return iter(table.to_batches(max_chunksize=70))

    stats = scan(source, dtype=np.float64, val_fraction=0.2, seed=11)

    def run(epochs, **kw):
        model = fastbp.mlp([4, 8, 1], dtype=np.float64, rng=4)
        optimizer = fastbp.Adam(model.parameters(), lr=0.01)
        result = fastbp.train(
            model,
            fastbp.MSELoss(),
            optimizer,
            Streamed(source, stats, shuffle_buffer=50),
            epochs=epochs,
            batch_size=16,
            seed=5,
            lr_schedule="invscaling",
            **kw,
        )
        return model, optimizer, result

    path = tmp_path / "stream.ckpt"
    reference = run(10)
    run(5, checkpoint=path, checkpoint_every=2)
    assert load_checkpoint(path).rng_state is not None
    resumed = run(10, resume=path)
    assert_same_run(resumed, reference)
    # The same model trained in memory is another run.
    model = fastbp.mlp([4, 8, 1], dtype=np.float64, rng=4)
    with pytest.raises(CheckpointError, match="training mode is streamed"):
        fastbp.train(
            model, fastbp.MSELoss(), fastbp.Adam(model.parameters(), lr=0.01),
            features, y, epochs=10, batch_size=16, seed=5,
            lr_schedule="invscaling", resume=path,
        )  # fmt: skip


# --- the file ------------------------------------------------------------------


def test_checkpoint_save_load_round_trip(tmp_path):
    opt, lr, kw = CASES["adam-early-stopping"]
    path = tmp_path / "run.ckpt"
    model, optimizer, result = train(opt, lr, 4, checkpoint=path, **kw())
    ckpt = load_checkpoint(path)
    assert ckpt.path == str(path) and ckpt.epochs_done == 4
    # The model ends with the best epoch's weights (restore_best); the
    # checkpoint holds those and the last epoch's, which training goes on from.
    np.testing.assert_array_equal(ckpt.best_weights, model.flat_data)
    last_epoch = train(opt, lr, 4)[0].flat_data
    np.testing.assert_array_equal(ckpt.weights, last_epoch)
    np.testing.assert_array_equal(ckpt.optimizer_state, optimizer.state)
    assert ckpt.weights.dtype == np.float64
    assert ckpt.step_count == optimizer.step_count == 4 * 8
    assert ckpt.lr == optimizer.lr
    assert ckpt.history["loss"].tolist() == result.loss
    assert ckpt.history["val_metric"].tolist() == result.val_metric
    assert ckpt.best_weights is not None and ckpt.control["best_epoch"] >= 1
    assert ckpt.run["optimizer"] == {
        "type": "adam", "lr": 0.2, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
        "weight_decay": 0.0,
    }  # fmt: skip
    assert ckpt.run["training"]["rows"] == 64
    assert ckpt.samples == result.samples and ckpt.steps == result.steps
    copy = tmp_path / "copy.ckpt"
    ckpt.save(copy)
    again = Checkpoint.load(copy)
    for name in ("run", "epochs_done", "step_count", "lr", "control", "rng_state"):
        assert getattr(again, name) == getattr(ckpt, name)
    np.testing.assert_array_equal(again.best_weights, ckpt.best_weights)
    with np.load(path, allow_pickle=False) as npz:  # no pickled entry
        assert str(npz["format"]) == "fastbp-checkpoint"


@pytest.fixture
def saved(tmp_path):
    """A 3-epoch float64 SGD checkpoint of the regression problem."""
    path = tmp_path / "run.ckpt"
    train("sgd", 0.05, 3, checkpoint=path)
    return path


def checkpoint_error(path, **run):
    """The one-line message resuming path raises, checked to name the file."""
    opt = run.pop("opt", "sgd")
    lr = run.pop("lr", 0.05)
    dtype = run.pop("dtype", np.float64)
    hidden = run.pop("hidden", 16)
    model, loss, optimizer = make(opt, lr, dtype, hidden)
    settings = {"epochs": 10, "batch_size": 8, "seed": 3, **run}
    with pytest.raises(CheckpointError) as info:
        fastbp.train(model, loss, optimizer, X, T, resume=path, **settings)
    message = str(info.value)
    assert "\n" not in message and str(path) in message, message
    return message


def test_checkpoint_truncated_file(saved):
    data = saved.read_bytes()
    for size in (0, 10, len(data) // 2, len(data) - 1):
        saved.write_bytes(data[:size])
        message = checkpoint_error(saved)
        assert "truncated" in message or "not a .npz" in message


def test_checkpoint_corrupted_member(saved):
    data = bytearray(saved.read_bytes())
    at = data.index(b"fastbp-checkpoint") if b"fastbp-checkpoint" in data else 100
    data[at] ^= 0xFF
    saved.write_bytes(bytes(data))
    assert "unreadable" in checkpoint_error(saved)


def test_checkpoint_other_files_are_refused(tmp_path):
    model_file = tmp_path / "model.npz"
    save_model(model_file, make("sgd", 0.1)[0])
    assert "not a fastbp checkpoint" in checkpoint_error(model_file)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert "not a fastbp checkpoint" in checkpoint_error(text)
    assert "no such file" in checkpoint_error(tmp_path / "missing.ckpt")
    # A model file is not a checkpoint either way round.
    with pytest.raises(ValueError, match="not a fastbp model file"):
        load_model(text)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"hidden": 8}, "model is linear(3,16)"),
        ({"dtype": np.float32}, "dtype is float64 in the checkpoint, float32"),
        ({"opt": "adam"}, "optimizer is sgd("),
        ({"lr": 0.01}, "optimizer lr is 0.05 in the checkpoint, 0.01 here"),
        ({"batch_size": 16}, "batch size is 8"),
        ({"seed": 4}, "seed 3, this run with seed 4"),
        ({"lr_schedule": "invscaling"}, "lr schedule is none in the checkpoint"),
        ({"val": (X_VAL, T_VAL)}, "number of validation rows is 0"),
        ({"l2": 0.1}, "l2 is 0.0"),
        ({"epochs": 2}, "3 epochs done, more than the 2 asked for"),
    ],
)
def test_checkpoint_mismatch_is_one_line(saved, change, words):
    assert words in checkpoint_error(saved, **change)


def test_checkpoint_other_training_rows(saved):
    model, loss, optimizer = make("sgd", 0.05)
    with pytest.raises(CheckpointError, match="number of training rows is 64"):
        fastbp.train(
            model, loss, optimizer, X[:50], T[:50], epochs=5, batch_size=8, seed=3,
            resume=saved,
        )  # fmt: skip


def test_checkpoint_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="checkpoint_every"):
        train("sgd", 0.05, 2, checkpoint=tmp_path / "c", checkpoint_every=0)
    with pytest.raises(ValueError, match="does not exist"):
        train("sgd", 0.05, 2, checkpoint=tmp_path / "no" / "c")
    with pytest.raises(TypeError, match="resume"):
        train("sgd", 0.05, 2, resume=3)


# --- atomic writes ---------------------------------------------------------------


@pytest.mark.parametrize("failure", [OSError("disk full"), KeyboardInterrupt()])
def test_checkpoint_failed_write_leaves_the_old_one(saved, monkeypatch, failure):
    before = saved.read_bytes()

    def savez_then_fail(file, **arrays):
        file.write(b"PK\x03\x04 half a checkpoint")  # a partial archive
        raise failure

    monkeypatch.setattr(np, "savez", savez_then_fail)
    with pytest.raises(type(failure)):
        train("sgd", 0.05, 6, checkpoint=saved, resume=saved)
    monkeypatch.undo()
    assert saved.read_bytes() == before
    assert os.listdir(saved.parent) == [saved.name]  # no temporary file left
    assert load_checkpoint(saved).epochs_done == 3


# --- the command line --------------------------------------------------------------


def model_arrays(path):
    model, meta = load_model(path)
    return model.flat_data, meta


IRIS_RUN = (
    "--data", IRIS, "--dtype", "float64", "--optimizer", "sgd", "--lr", "0.05",
    "--lr-schedule", "adaptive", "--patience", "1", "--tol", "0.02",
)  # fmt: skip


@pytest.mark.parametrize(
    "args",
    [
        IRIS_RUN,
        IRIS_RUN[:-6] + ("--early-stopping", "--patience", "2"),
        (
            "--data",
            REGRESSION,
            "--dtype",
            "float64",
            "--stream",
            "--shuffle-buffer",
            "40",
            "--lr-schedule",
            "invscaling",
        ),
    ],  # fmt: skip
    ids=["adaptive", "early-stopping", "stream"],
)
def test_cli_resume_equals_uninterrupted(tmp_path, args):
    full, half, resumed = (tmp_path / f"{n}.npz" for n in ("full", "half", "res"))
    ckpt = tmp_path / "run.ckpt"
    reference = train_json(*args, "--epochs", "10", "--save", full)
    first = train_json(
        *args, "--epochs", "5", "--checkpoint", ckpt, "--checkpoint-every", "2",
        "--save", half,
    )  # fmt: skip
    assert first["epochs"] == 5
    record = train_json(
        *args, "--epochs", "10", "--resume", ckpt, "--checkpoint", ckpt,
        "--save", resumed,
    )  # fmt: skip
    assert record["start_epoch"] == 5 and record["epochs"] == reference["epochs"]
    weights, meta = model_arrays(resumed)
    reference_weights, reference_meta = model_arrays(full)
    np.testing.assert_allclose(weights, reference_weights, 0, ATOL)
    assert meta == reference_meta
    for a, b in zip(record["history"], reference["history"], strict=True):
        assert a.keys() == b.keys() and a["epoch"] == b["epoch"]
        for key in ("train_loss", "val_loss", "lr"):
            np.testing.assert_allclose(a[key] or 0, b[key] or 0, 0, ATOL)
    assert record["stop_reason"] == reference["stop_reason"]
    assert record["best_epoch"] == reference["best_epoch"]
    # The checkpoint now holds the whole run: resuming it again trains nothing.
    again = invoke("train", *args, "--epochs", "10", "--resume", ckpt)
    assert again.exit_code == 0 and "nothing to train" in again.output


@pytest.fixture
def cli_checkpoint(tmp_path):
    ckpt = tmp_path / "run.ckpt"
    result = invoke("train", *IRIS_RUN, "--epochs", "3", "--checkpoint", ckpt, "-q")
    assert result.exit_code == 0, result.output
    return ckpt


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--hidden", "8"), ["--resume", "model is linear(4,32)", "linear(4,8)"]),
        (("--dtype", "float32"), ["--resume", "dtype is float64", "float32 here"]),
        (("--lr", "0.1"), ["--resume", "optimizer lr is 0.05"]),
        (("--epochs", "2"), ["--resume", "3 epochs done", "2 asked for"]),
        (("--seed", "1"), ["--resume", "seed 0", "seed 1"]),
    ],
)
def test_cli_resume_mismatch_exit_2(cli_checkpoint, args, words):
    run = list(IRIS_RUN)
    for i in range(0, len(args), 2):  # later options override earlier ones
        run += [args[i], args[i + 1]]
    result = invoke("train", *run, "--resume", cli_checkpoint)
    assert_input_error(result.output, result.exit_code, str(cli_checkpoint), *words)


@pytest.mark.parametrize("kind", ["truncated", "model-file", "missing", "garbage"])
def test_cli_resume_bad_file_exit_2(tmp_path, cli_checkpoint, kind):
    path = tmp_path / "bad.ckpt"
    if kind == "truncated":
        data = cli_checkpoint.read_bytes()
        path.write_bytes(data[: len(data) - 100])
    elif kind == "model-file":
        save_model(path, make("sgd", 0.1)[0])
    elif kind == "garbage":
        path.write_bytes(b"\x00\x01 not a checkpoint")
    result = invoke("train", *IRIS_RUN, "--resume", path)
    assert_input_error(result.output, result.exit_code, "--resume", str(path))


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--checkpoint-every", "2"), ["--checkpoint-every needs --checkpoint"]),
        (("--checkpoint-every", "0", "--checkpoint", "{c}"), ["--checkpoint-every"]),
        (("--optimizer", "lbfgs", "--resume", "{c}"), ["--resume", "lbfgs"]),
        (("--optimizer", "lbfgs", "--checkpoint", "{c}"), ["--checkpoint", "lbfgs"]),
        (("--checkpoint", "{c}/no/c"), ["--checkpoint", "does not exist"]),
    ],
)
def test_cli_checkpoint_option_errors(tmp_path, args, words):
    args = [a.format(c=tmp_path / "c") for a in args]
    result = invoke("train", "--data", IRIS, *args)
    assert_input_error(result.output, result.exit_code, *words)
    assert os.listdir(tmp_path) == []
