"""fastbp.plot: training curves written atomically, matplotlib optional."""

import math
import subprocess
import sys

import pytest

from fastbp.plot import plot_history


def history(n=8, *, val=True, lr=True):
    rows = []
    for epoch in range(1, n + 1):
        row = {"epoch": epoch, "train_loss": 1.0 / epoch}
        if val:
            row["val_loss"] = 1.2 / epoch
            row["val_metric"] = 1.0 - 0.5 / epoch
        if lr:
            row["lr"] = 0.1 * 0.9**epoch
        rows.append(row)
    return rows


def test_png_is_written_at_the_figure_size(tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread

    out = tmp_path / "curves.png"
    plot_history(history(), out, metric_name="accuracy", title="run 1")
    assert out.read_bytes().startswith(b"\x89PNG")
    image = imread(out)
    # Two 5 x 4 inch panels at 100 dpi.
    assert image.ndim == 3 and image.shape[:2] == (400, 1000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png"]


def test_svg(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "curves.svg"
    plot_history(history(), str(out), metric_name="r2")
    text = out.read_text()
    assert "<svg" in text and "r2" in text


def test_history_without_validation_is_one_panel_or_lr(tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread

    only_loss = tmp_path / "loss.png"
    plot_history(history(val=False, lr=False), only_loss)
    assert imread(only_loss).shape[:2] == (400, 500)

    with_lr = tmp_path / "lr.png"
    plot_history(history(val=False), with_lr)
    assert imread(with_lr).shape[:2] == (400, 1000)


def test_gaps_none_nan_and_a_single_epoch(tmp_path):
    pytest.importorskip("matplotlib")
    rows = history(4)
    rows[1]["val_loss"] = None
    rows[2]["val_metric"] = math.nan
    rows[3]["train_loss"] = math.inf  # diverged
    plot_history(rows, tmp_path / "gaps.png")
    plot_history([{"epoch": 1, "train_loss": 0.5}], tmp_path / "one.pdf")
    assert (tmp_path / "one.pdf").read_bytes().startswith(b"%PDF")


def test_unknown_extension_names_the_path_and_leaves_nothing(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "curves.xyz"
    with pytest.raises(ValueError, match="curves.xyz") as info:
        plot_history(history(), out)
    assert ".png" in str(info.value) and ".svg" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    out = tmp_path / "curves.png"
    out.write_bytes(b"old")

    def broken(self, *args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Figure, "savefig", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        plot_history(history(), out)
    assert out.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]


def test_empty_history():
    with pytest.raises(ValueError, match=r"^plot_history: history is empty$"):
        plot_history([], "never.png")


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        ([{"train_loss": 1.0}], "no 'epoch'"),
        ([{"epoch": 1}], "no 'train_loss'"),
        ([{"epoch": 1, "train_loss": "high"}], "must be a number"),
        ([3.0], "must be a dict"),
    ],
)
def test_malformed_history(rows, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        plot_history(rows, tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []


def test_missing_matplotlib_is_a_one_line_import_error(tmp_path, monkeypatch):
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError) as info:
        plot_history(history(), tmp_path / "curves.png")
    assert str(info.value) == "plotting needs matplotlib: pip install 'fastbp[plot]'"
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert list(tmp_path.iterdir()) == []


def test_importing_fastbp_plot_does_not_import_matplotlib():
    code = "import fastbp.plot, sys; assert 'matplotlib' not in sys.modules"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
