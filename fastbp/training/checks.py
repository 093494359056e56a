"""The checks at training's public boundary: arrays cast and shaped for a
model and loss, sample weights, numbers, values too large for the dtype, and
the one message a diverged run ends with. Raise TypeError or ValueError (or
:class:`DivergenceError`) naming the argument; inside, the loop trusts them.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from .._validate import check_array
from ..kernels.util import all_finite
from ..nn.optim import Optimizer
from .metrics import evaluate_arrays
from .result import DivergenceError

__all__ = [
    "coerce",
    "cast_checked",
    "sample_weights",
    "non_negative",
    "check_data_range",
    "check_initial_loss",
    "divergence_error",
]


def coerce(model, loss, X: object, T: object, what: str, who: str = "train"):
    """X and T checked and cast for model and loss: X (n, in_features) in the
    model dtype; T int64 labels (n,) for a loss whose target is "labels", else
    (n, n_outputs) values in the model dtype."""
    dtype = model.dtype
    X = check_array(
        cast_checked(X, dtype, who, f"{what} X"), who, f"{what} X", dtype=dtype, ndim=2
    )
    if model.in_features is not None and X.shape[1] != model.in_features:
        raise ValueError(
            f"{who}: {what} X has shape {X.shape} but the model takes "
            f"{model.in_features} features"
        )
    n_out = model.out_features
    if loss.target == "labels":
        T = np.ascontiguousarray(T)
        if T.dtype.kind not in "iu":
            raise TypeError(f"{who}: {what} labels must be integers, got {T.dtype}")
        T = check_array(
            T.astype(np.int64),
            who,
            f"{what} labels",
            dtype=np.dtype(np.int64),
            ndim=1,
        )
        if n_out is not None and T.size and (T.min() < 0 or T.max() >= n_out):
            raise ValueError(
                f"{who}: {what} labels must lie in [0, {n_out}) for a model with "
                f"{n_out} outputs, got values in [{T.min()}, {T.max()}]"
            )
    else:
        T = cast_checked(T, dtype, who, f"{what} targets")
        if T.ndim == 1 and n_out == 1:
            T = T.reshape(-1, 1)
        T = check_array(T, who, f"{what} targets", dtype=dtype, ndim=2)
        if n_out is not None and T.shape[1] != n_out:
            raise ValueError(
                f"{who}: {what} targets have shape {T.shape} but the model has "
                f"{n_out} outputs; expected ({T.shape[0]}, {n_out})"
            )
    if X.shape[0] == 0:
        raise ValueError(f"{who}: {what} X has no rows")
    if T.shape[0] != X.shape[0]:
        raise ValueError(
            f"{who}: {what} X has {X.shape[0]} rows but targets have {T.shape[0]}"
        )
    return X, T


def cast_checked(value: object, dtype: np.dtype, who: str, name: str) -> NDArray:
    """value as a C-contiguous array of dtype; a finite value that the cast
    makes infinite is a ValueError naming it (not "NaN or inf")."""
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(value, dtype=dtype)
    if out.size and not all_finite(out):
        original = np.asarray(value)
        if original.dtype.kind in "fiu" and original.shape == out.shape:
            lost = np.isfinite(original) & ~np.isfinite(out)
            if lost.any():
                index = np.unravel_index(np.argmax(lost), out.shape)
                where = ", ".join(map(str, index))
                raise ValueError(
                    f"{who}: {name} holds {float(original[index]):g} at [{where}], "
                    f"too large for {np.dtype(dtype)}; use float64 or scale the data"
                )
    return out


def sample_weights(
    sample_weight: object | None, n: int, who: str = "train"
) -> NDArray | None:
    """sample_weight as a float64 (n,) array of finite weights >= 0, not
    all 0; None stays None."""
    if sample_weight is None:
        return None
    w = np.ascontiguousarray(sample_weight, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"{who}: sample_weight must have shape ({n},), got {w.shape}")
    if not np.all(np.isfinite(w)) or w.min() < 0 or w.sum() <= 0:
        raise ValueError(f"{who}: sample_weight must be finite, >= 0 and not all 0")
    return w


def non_negative(value: object, name: str, who: str = "train") -> float:
    """A finite number >= 0, as float (TypeError or ValueError naming who
    and name)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise TypeError(f"{who}: {name} must be a number, got {value!r}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{who}: {name} must be finite and >= 0, got {value!r}")
    return float(value)


def divergence_error(epoch: int, optimizer: Optimizer) -> DivergenceError:
    """The DivergenceError both paths raise for a non-finite loss in epoch."""
    lr = getattr(optimizer, "lr", None)
    return DivergenceError(
        f"training diverged: the loss became NaN or infinite in epoch {epoch}; "
        "try a smaller learning rate" + (f" than {lr:g}" if lr is not None else ""),
        epoch,
    )


def check_data_range(dtype: np.dtype, X: NDArray, T: NDArray, what: str) -> None:
    """DivergenceError (before_training) naming the row and column of the
    first value of X, or of float targets T, whose square overflows dtype:
    the loss of such data is infinite before any step, whatever the learning
    rate. One pass of max/min over each array, no copy."""
    limit = math.sqrt(float(np.finfo(dtype).max))
    for name, A in (("X", X), ("targets", T)):
        if A.size == 0 or A.dtype.kind != "f":
            continue
        if max(float(A.max()), -float(A.min())) <= limit:
            continue
        flat = int(np.argmax(np.abs(A.reshape(len(A), -1)) > limit))
        row, col = divmod(flat, A.size // len(A))
        value = float(A.reshape(-1)[flat])
        raise DivergenceError(
            f"{what} {name}, row {row}, column {col}: {value:.3g} is too large "
            f"for {dtype} arithmetic (its square overflows, so the loss is "
            "infinite before any training step); scale the data down"
            + (" or use float64" if dtype == np.float32 else ""),
            0,
            before_training=True,
        )


def check_initial_loss(model, loss, X, T, batch_size) -> None:
    """DivergenceError (before_training) if the untrained model's loss on the
    first batch is already NaN or infinite: the data overflows the dtype."""
    if math.isfinite(evaluate_arrays(model, loss, X[:batch_size], T[:batch_size])[0]):
        return
    largest = max(float(np.max(np.abs(X))), float(np.max(np.abs(T))))
    raise DivergenceError(
        "the loss is NaN or infinite before any training step: the data is too "
        f"large for {model.dtype} arithmetic (largest absolute value "
        f"{largest:.3g}); scale the inputs and targets down",
        0,
        before_training=True,
    )
