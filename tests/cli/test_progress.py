"""Progress bars (fastbp.progress): drawn by tqdm on a terminal only; plain
epoch lines elsewhere; nothing with enabled=False (--quiet)."""

import io
import subprocess
import sys
from types import SimpleNamespace

import pytest

from fastbp.progress import EpochProgress, human_bytes, is_terminal, progress


class FakeTTY(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self):
        return True


def result(loss, val_loss=None):
    """The fields of a TrainResult that EpochProgress reads."""
    return SimpleNamespace(
        final_loss=loss,
        val_loss=[val_loss] if val_loss is not None else [],
        val_metric=[0.5] if val_loss is not None else [],
        metric_name="r2",
    )


def test_progress_off_a_terminal_draws_nothing():
    stream = io.StringIO()
    with progress(total=1000, desc="loading", stream=stream) as bar:
        bar.update(600, bytes=10_000)
        bar.update(400, bytes=10_000)
    assert not bar.enabled
    assert stream.getvalue() == ""


def test_progress_disabled_draws_nothing_on_a_terminal():
    stream = FakeTTY()
    with progress(total=1000, enabled=False, stream=stream) as bar:
        bar.update(1000, bytes=5)
    assert not bar.enabled
    assert stream.getvalue() == ""


def test_progress_on_a_terminal_shows_unit_count_rate_and_bytes():
    stream = FakeTTY()
    with progress(total=3000, desc="loading", stream=stream) as bar:
        assert bar.enabled
        for _ in range(3):
            bar.update(1000, bytes=1 << 20)
    text = stream.getvalue()
    assert "loading" in text
    assert "3.00k/3.00k" in text  # count of the total, tqdm's unit scaling
    assert "rows/s" in text
    assert "3 MiB read" in text
    assert "100%" in text
    assert bar.n == 3000 and bar.bytes == 3 << 20


def test_progress_unknown_total_shows_count_without_percent():
    stream = FakeTTY()
    with progress(unit="batches", stream=stream) as bar:
        bar.update(7)
    text = stream.getvalue()
    assert "7.00 batches" in text and "batches/s" in text
    assert "%" not in text


def test_progress_set_total_and_close_twice():
    stream = FakeTTY()
    bar = progress(stream=stream)
    bar.set_total(10)
    bar.update(10)
    bar.close()
    bar.close()
    bar.update(5)  # after close: ignored, no error
    assert "10.0/10.0" in stream.getvalue()


def test_progress_default_stream_is_stderr_and_silent_when_captured(capsys):
    with progress(total=5) as bar:
        bar.update(5)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0 B"), (512, "512 B"), (1536, "1.5 KiB"), (3 << 20, "3 MiB"),
     (5 * 2**30 + 2**29, "5.5 GiB"), (2**50, "1.02e+03 TiB")],
)  # fmt: skip
def test_human_bytes_units(n, text):
    assert human_bytes(n) == text


def test_is_terminal_of_odd_streams():
    closed = io.StringIO()
    closed.close()
    assert not is_terminal(closed)
    assert not is_terminal(None)
    assert not is_terminal(object())
    assert is_terminal(FakeTTY())


def test_epoch_progress_off_a_terminal_prints_a_line_every_tenth():
    stream = io.StringIO()
    callback = EpochProgress(20, stream=stream)
    for epoch in range(1, 21):
        callback(epoch, result(1.0 / epoch))
    callback.close()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "epoch  2/20  loss 0.5"
    assert lines[-1] == "epoch 20/20  loss 0.05"
    assert len(lines) == 10


def test_epoch_progress_lines_with_validation_and_skipped_epochs():
    stream = io.StringIO()
    callback = EpochProgress(1000, stream=stream)
    for epoch in (50, 100, 150, 333, 1000):  # fastbp.train reports ~20 times
        callback(epoch, result(0.25, val_loss=0.5))
    lines = stream.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == ["100/1000", "333/1000", "1000/1000"]
    assert lines[0] == "epoch  100/1000  loss 0.25  val_loss 0.5  val_r2 0.5000"


def test_epoch_progress_disabled_prints_nothing():
    for stream in (io.StringIO(), FakeTTY()):
        callback = EpochProgress(10, enabled=False, stream=stream)
        for epoch in range(1, 11):
            callback(epoch, result(1.0))
        callback.close()
        assert stream.getvalue() == ""


def test_epoch_progress_on_a_terminal_draws_a_bar():
    stream = FakeTTY()
    with EpochProgress(10, stream=stream) as callback:
        for epoch in (5, 10):
            callback(epoch, result(0.125))
    text = stream.getvalue()
    assert "training" in text and "epochs/s" in text and "100%" in text
    assert "loss 0.125" in text and "epoch 10/10" in text
    assert "epoch 10/10  loss" not in text  # no plain lines on a terminal


def test_epoch_progress_counts_rows_when_given_rows_per_epoch():
    stream = FakeTTY()
    with EpochProgress(4, stream=stream, rows_per_epoch=500) as callback:
        for epoch in range(1, 5):
            callback(epoch, result(1.0))
    text = stream.getvalue()
    assert "2.00k/2.00k" in text and "rows/s" in text


def test_epoch_progress_as_a_train_callback():
    import numpy as np

    import fastbp

    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3)).astype(np.float32)
    T = X.sum(axis=1, keepdims=True)
    model = fastbp.mlp([3, 4, 1], "relu", rng=0)
    stream = io.StringIO()
    with EpochProgress(10, stream=stream) as callback:
        fastbp.train(model, fastbp.MSELoss(), fastbp.SGD(model.parameters(), lr=0.01),
                     X, T, epochs=10, batch_size=16, callback=callback)  # fmt: skip
    lines = stream.getvalue().splitlines()
    assert lines and lines[-1].startswith("epoch 10/10  loss ")


def test_import_fastbp_progress_does_not_import_tqdm():
    code = (
        "import sys, fastbp, fastbp.progress; "
        "sys.exit(1 if 'tqdm' in sys.modules else 0)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
