"""Metrics and evaluation: accuracy, R^2 and the loss of a model over data.

Each metric takes model outputs y, (n_samples, n_outputs), and targets t as
the loss takes them (class indices (n_samples,), or values (n_samples,
n_outputs)), and returns a float.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from .._validate import finite
from ..nn.layers import NUMPY_ROWS

__all__ = [
    "METRICS",
    "accuracy",
    "binary_accuracy",
    "logit_accuracy",
    "r2",
    "batch_loss_share",
    "evaluate_arrays",
    "ClassificationScore",
    "RegressionScore",
]


def accuracy(y: NDArray, t: NDArray) -> float:
    """Fraction of rows whose largest output is at the label t: integer labels
    (n_samples,) or one-hot rows (n_samples, n_classes)."""
    labels = np.argmax(t, axis=1) if t.ndim == 2 else t
    return float(np.mean(np.argmax(y, axis=1) == labels))


def binary_accuracy(y: NDArray, t: NDArray) -> float:
    """Fraction of outputs on the same side of 0.5 as the target."""
    return float(np.mean((y > 0.5) == (t > 0.5)))


def r2(y: NDArray, t: NDArray) -> float:
    """Coefficient of determination 1 - SS_res / SS_tot, averaged over outputs."""
    y64, t64 = y.astype(np.float64), t.astype(np.float64)
    # A diverging model's outputs overflow these sums: its R^2 is NaN or
    # -inf, reported as such, not as a NumPy warning.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ss_res = np.sum((t64 - y64) ** 2, axis=0)
        ss_tot = np.sum((t64 - t64.mean(axis=0)) ** 2, axis=0)
        per_output = np.where(ss_tot > 0, 1.0 - ss_res / ss_tot, np.nan)
    return float(np.mean(per_output))


def logit_accuracy(y: NDArray, t: NDArray) -> float:
    """Fraction of rows whose every output is on the same side of 0 as its
    0/1 target is of 0.5: the accuracy of sigmoid outputs (logits y) for one
    binary label, the exact-match accuracy for several."""
    return float(np.mean(np.all((y > 0) == (t > 0.5), axis=1)))


METRICS: dict[str, Callable[[NDArray, NDArray], float]] = {
    "accuracy": accuracy,
    "binary_accuracy": binary_accuracy,
    "logit_accuracy": logit_accuracy,
    "r2": r2,
}


def _has_numpy_value(loss) -> bool:
    return callable(getattr(loss, "numpy_value", None))


def batch_loss_share(loss, value: float, rows: int) -> float:
    """A batch's share of a per-sample mean loss: a mean-reduced loss counts
    once per row, a summed one (MSELoss(reduction="sum")) once."""
    return value if getattr(loss, "reduction", "mean") == "sum" else value * rows


def evaluate_arrays(model, loss, X, T, metric=None, batch_size=4096):
    """(loss per sample, metric) of model on X, T, already checked and cast
    for them, in batches of rows: the metric NaN when ``metric`` is None, and
    (inf, NaN) for a model whose outputs overflow.

    Up to NUMPY_ROWS rows, when every layer and the loss have a NumPy form,
    runs ``model.predict_numpy`` and ``loss.numpy_value``: no kernel is
    loaded or compiled for a small job's checks and validation. Otherwise
    ``model.predict`` and ``loss.value``. Both leave the buffers of a
    pending backward pass alone, and agree to float rounding.
    """
    if X.shape[0] == 0:
        raise ValueError("evaluate: no rows to evaluate on")
    if X.shape[0] <= NUMPY_ROWS and model.numpy_ready and _has_numpy_value(loss):
        # A few rows: NumPy alone, no kernel to load or compile.
        with np.errstate(all="ignore"):  # a diverged model's inf and NaN
            y = model.predict_numpy(X)
        if not np.isfinite(y).all():
            return math.inf, math.nan
        value = batch_loss_share(loss, loss.numpy_value(y, T), y.shape[0])
        return value / X.shape[0], (METRICS[metric](y, T) if metric else math.nan)
    outputs, total = [], 0.0
    for s in range(0, X.shape[0], batch_size):
        y = model.predict(X[s : s + batch_size])
        if not finite(y):  # a diverged model: its loss is infinite
            return math.inf, math.nan
        total += batch_loss_share(
            loss, loss.value(y, T[s : s + batch_size]), y.shape[0]
        )
        outputs.append(y)
    value = total / X.shape[0]
    y_all = np.concatenate(outputs)
    return value, (METRICS[metric](y_all, T) if metric else math.nan)


class ClassificationScore:
    """Accuracy, log-loss and the confusion matrix of predictions, summed
    batch by batch.

    ``add(labels, proba)`` takes true class indices (n,) int64 (into the
    model's classes) and predicted probabilities (n, n_classes).
    """

    def __init__(self, classes: tuple[str, ...]) -> None:
        self.classes = tuple(classes)
        k = len(self.classes)
        self.confusion = np.zeros((k, k), dtype=np.int64)
        self.log_loss_sum = 0.0
        self.rows = 0

    def add(self, labels: NDArray, proba: NDArray) -> None:
        predicted = np.argmax(proba, axis=1)
        np.add.at(self.confusion, (labels, predicted), 1)
        p = np.clip(proba[np.arange(len(labels)), labels], 1e-15, 1.0)
        self.log_loss_sum += float(-np.log(p).sum())
        self.rows += len(labels)

    def result(self) -> dict:
        """{"rows", "accuracy", "log_loss", "classes", "confusion_matrix"}
        (rows of the matrix: true class; columns: predicted)."""
        rows = self.rows
        return {
            "rows": rows,
            "accuracy": float(np.trace(self.confusion) / rows) if rows else math.nan,
            "log_loss": self.log_loss_sum / rows if rows else math.nan,
            "classes": list(self.classes),
            "confusion_matrix": self.confusion.tolist(),
        }


class RegressionScore:
    """R^2, RMSE and MAE of predicted values, summed batch by batch (the
    targets' spread merged as in :class:`fastbp.data.stats.Moments`)."""

    def __init__(self) -> None:
        self.rows = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.squared = 0.0
        self.absolute = 0.0

    def add(self, y: NDArray, predicted: NDArray) -> None:
        y = np.asarray(y, np.float64).ravel()
        d = y - np.asarray(predicted, np.float64).ravel()
        self.squared += float(d @ d)
        self.absolute += float(np.abs(d).sum())
        m = len(y)
        if m == 0:
            return
        mean = float(y.mean())
        m2 = float(((y - mean) ** 2).sum())
        n = self.rows + m
        delta = mean - self.mean
        self.mean += delta * m / n
        self.m2 += m2 + delta * delta * self.rows * m / n
        self.rows = n

    def result(self) -> dict:
        """{"rows", "r2", "rmse", "mae"} in the target's units."""
        n = self.rows
        if not n:
            return {"rows": 0, "r2": math.nan, "rmse": math.nan, "mae": math.nan}
        r2_value = 1.0 - self.squared / self.m2 if self.m2 > 0 else math.nan
        return {
            "rows": n,
            "r2": r2_value,
            "rmse": math.sqrt(self.squared / n),
            "mae": self.absolute / n,
        }
