"""Training curves as an image file: loss, validation metric, learning rate.

:func:`plot_history` draws a training history with matplotlib, an optional
dependency (``pip install 'fastbp[plot]'``). Importing this module never
imports matplotlib; the function does, and it never touches pyplot, the
user's backend or rcParams: it draws on its own
:class:`matplotlib.figure.Figure` through the Agg canvas.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from numbers import Integral

from ._files import atomic_file

__all__ = ["plot_history", "check_image_path"]

_MISSING = "plotting needs matplotlib: pip install 'fastbp[plot]'"
#: Pixels per inch of raster output; a panel is _PANEL inches (width, height).
_DPI = 100
_PANEL = (5.0, 4.0)
_OPTIONAL = ("val_loss", "val_metric", "lr")


def plot_history(
    history: Sequence[dict],
    path: str | os.PathLike,
    *,
    metric_name: str | None = None,
    title: str | None = None,
) -> None:
    """Draw training curves and write them to path, atomically.

    Parameters
    ----------
    history : list of dict
        One dict per epoch, in order, with keys

        ``"epoch"``
            the epoch number, an int counting from 1;
        ``"train_loss"``
            the mean training loss of the epoch, a float;
        ``"val_loss"``, ``"val_metric"``, ``"lr"`` (optional)
            validation loss, validation metric and learning rate, floats;
            a missing key, None or NaN means "not measured this epoch".

        Non-finite values (a diverged loss) are left out of the curves.
    path : str or path-like
        The file to write; its extension chooses the format: ``.png``,
        ``.pdf``, ``.svg`` or any other that matplotlib writes. An existing
        file is replaced only once the new one is complete.
    metric_name : str or None
        Label of the validation metric ("accuracy", "r2"); "validation
        metric" when None.
    title : str or None
        Title above the panels.

    The left panel shows training and validation loss per epoch, on a log
    axis when every value drawn is positive. The right panel shows the
    validation metric; where no epoch has one, the learning rate instead;
    where there is neither, the figure has the loss panel only. Raster
    formats are drawn at 100 dpi on 5 x 4 inches per panel.

    Raises
    ------
    ImportError
        matplotlib is not installed.
    ValueError
        history is empty or malformed, or path has an extension matplotlib
        cannot write (the message names path and the supported extensions).
    OSError
        The file cannot be written; nothing is left behind and an existing
        file is unchanged.
    """
    epochs, series = _columns(history)
    try:
        ext = check_image_path(path)
    except ValueError as exc:
        raise ValueError(f"plot_history: {exc}") from None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    target = os.fspath(path)

    if _any(series["val_metric"]):
        right, right_label = series["val_metric"], metric_name or "validation metric"
    elif _any(series["lr"]):
        right, right_label = series["lr"], "learning rate"
    else:
        right, right_label = None, None
    n_panels = 1 if right is None else 2
    fig = Figure(figsize=(_PANEL[0] * n_panels, _PANEL[1]), dpi=_DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, n_panels, squeeze=False)[0]
    style = {"marker": "o", "markersize": 3} if len(epochs) <= 50 else {}

    ax = axes[0]
    ax.plot(epochs, series["train_loss"], label="training", **style)
    if _any(series["val_loss"]):
        ax.plot(epochs, series["val_loss"], label="validation", **style)
    drawn = [
        v for key in ("train_loss", "val_loss") for v in series[key] if math.isfinite(v)
    ]
    if drawn and min(drawn) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title("loss")
    ax.legend()

    if right is not None:
        ax = axes[1]
        ax.plot(epochs, right, color="C2", **style)
        if right_label == "learning rate" and min(v for v in right if v == v) > 0:
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(right_label)
        ax.set_title(right_label)

    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()

    with atomic_file(target) as f:
        fig.savefig(f, format=ext, dpi=_DPI)


def check_image_path(path: str | os.PathLike) -> str:
    """The image format of path's extension ("png", "svg", ...): ImportError
    (one line) when matplotlib is missing, ValueError naming path and the
    supported extensions when matplotlib cannot write it. What
    :func:`plot_history` checks first, for callers (the command line) that
    check before a long run."""
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        raise ImportError(_MISSING) from None
    target = os.fspath(path)
    ext = os.path.splitext(target)[1].lower().lstrip(".")
    supported = FigureCanvasBase.get_supported_filetypes()
    if ext not in supported:
        raise ValueError(
            f"cannot write {target!r}: unknown image type "
            f"{ext or '(none)'!r}; supported: "
            + ", ".join("." + e for e in sorted(supported))
        )
    return ext


def _columns(history: Sequence[dict]) -> tuple[list[int], dict[str, list[float]]]:
    """The epochs and, per key, one float per epoch (NaN where absent or
    non-finite)."""
    if isinstance(history, (str, bytes, dict)) or not isinstance(history, Sequence):
        raise ValueError(
            "plot_history: history must be a list of dicts, got "
            f"{type(history).__name__}"
        )
    if len(history) == 0:
        raise ValueError("plot_history: history is empty")
    epochs: list[int] = []
    series: dict[str, list[float]] = {k: [] for k in ("train_loss", *_OPTIONAL)}
    for i, row in enumerate(history):
        if not isinstance(row, dict):
            raise ValueError(
                f"plot_history: history[{i}] must be a dict, got {type(row).__name__}"
            )
        for key in ("epoch", "train_loss"):
            if key not in row:
                raise ValueError(f"plot_history: history[{i}] has no {key!r}")
        epoch = row["epoch"]
        if isinstance(epoch, bool) or not isinstance(epoch, Integral):
            raise ValueError(
                f"plot_history: history[{i}]['epoch'] must be an int, got {epoch!r}"
            )
        epochs.append(int(epoch))
        for key, values in series.items():
            values.append(_number(row.get(key), i, key))
    return epochs, series


def _number(value: object, i: int, key: str) -> float:
    if value is None:
        return math.nan
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(
            f"plot_history: history[{i}][{key!r}] must be a number or None, "
            f"got {value!r}"
        ) from None
    return x if math.isfinite(x) else math.nan


def _any(values: list[float]) -> bool:
    """Whether any value is measured (not NaN)."""
    return any(v == v for v in values)
