"""What a training run reports: :class:`TrainResult` and :class:`DivergenceError`.

The per-epoch history (losses, validation figures, learning rates, gradient
norms) is kept in NumPy arrays while training runs, a whole fused call's
epochs as the kernel returned them, and is built into Python lists only when
read: a fused call of a million XOR epochs then adds no per-epoch work to the
loop, not a million Python floats.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

__all__ = ["TrainResult", "DivergenceError", "Series"]


class DivergenceError(RuntimeError):
    """The training loss became NaN or infinite.

    Attributes
    ----------
    epoch : int
        The epoch (from 1) whose loss was not finite; 0 when the untrained
        model's loss already was.
    before_training : bool
        True when the loss was not finite before any update: the data's
        values overflow the dtype's arithmetic, and no learning rate helps.
    """

    def __init__(self, message: str, epoch: int, before_training: bool = False):
        super().__init__(message)
        self.epoch = epoch
        self.before_training = before_training


class Series:
    """A growing float64 array of per-epoch values, (n,) or (n, width).

    Values arrive in blocks. A block of at least :data:`ADOPT` rows that its
    caller hands over (``extend(values, own=True)``: the fused kernel's
    per-call losses) is kept as it is, and a value repeated that many times
    (:meth:`fill`: one call's learning rate) as one broadcast number: neither
    is copied while training runs, so a fused call of two million XOR epochs
    adds no per-epoch work to the loop. Smaller blocks are copied into a
    buffer that doubles when full. Reading (:attr:`array`, :meth:`tolist`)
    joins what is pending into the buffer once; :meth:`tolist` builds the
    Python list once and then only appends what arrived since.
    """

    __slots__ = ("_data", "_filled", "_pending", "_n", "_list")

    #: Blocks of at least this many rows are kept as they came until read.
    ADOPT = 1024

    def __init__(self, values: Iterable | NDArray = (), width: int | None = None):
        values = np.asarray(values, dtype=np.float64)
        if width is not None:
            values = values.reshape(-1, width)
        self._data = values.copy()
        self._filled = self._n = len(values)
        self._pending: list[NDArray] = []
        self._list: list = []

    def __len__(self) -> int:
        return self._n

    @property
    def array(self) -> NDArray:
        """The values so far (a view; copy it to keep it)."""
        self._settle()
        return self._data[: self._n]

    def last(self) -> NDArray | float | None:
        """The last value (a row for 2-D series), None when empty; joins
        nothing."""
        if not self._n:
            return None
        tail = self._pending[-1] if self._pending else self._data[: self._filled]
        return tail[-1]

    def extend(self, values: NDArray, own: bool = False) -> None:
        """Append the rows of values, (count,) or (count, width). ``own``:
        the caller hands values over and never writes them again, so a large
        block is kept without a copy."""
        values = np.asarray(values, dtype=np.float64)
        if not len(values):
            return
        if len(values) >= self.ADOPT or self._pending:
            self._pending.append(values if own else values.copy())
        else:
            self._copy_in(values)
        self._n += len(values)

    def fill(self, value: float, count: int) -> None:
        """Append ``value`` count times."""
        block = np.broadcast_to(np.float64(value), (count,))
        if not count:
            return
        if count >= self.ADOPT or self._pending:
            self._pending.append(block)
        else:
            self._copy_in(block)
        self._n += count

    def truncate(self, n: int) -> None:
        """Keep the first n values."""
        self._settle()
        self._n = self._filled = min(self._n, n)
        del self._list[n:]

    def tolist(self) -> list:
        """The values as a list of floats (lists of floats for 2-D), built
        incrementally: the same list object grows as values arrive."""
        if len(self._list) > self._n:
            del self._list[self._n :]
        if len(self._list) < self._n:
            self._settle()
            self._list.extend(self._data[len(self._list) : self._n].tolist())
        return self._list

    def _settle(self) -> None:
        """Copy the pending blocks into the buffer (adopting the first one as
        the buffer when nothing is there yet and it is a plain array)."""
        pending, self._pending = self._pending, []
        if pending and self._filled == 0 and pending[0].flags.writeable:
            first = pending.pop(0)
            self._data, self._filled = first, len(first)
        for block in pending:
            self._copy_in(block)

    def _copy_in(self, values: NDArray) -> None:
        count, width = len(values), values.shape[1:]
        if self._filled == 0 and self._data.shape[1:] != width:
            self._data = np.empty((0, *width))
        if self._filled + count > len(self._data):
            size = max(2 * len(self._data), self._filled + count, 16)
            grown = np.empty((size, *width))
            grown[: self._filled] = self._data[: self._filled]
            self._data = grown
        self._data[self._filled : self._filled + count] = values
        self._filled += count


def _series(values: Iterable = ()) -> Series:
    return values if isinstance(values, Series) else Series(values)


@dataclass
class TrainResult:
    """What a training run did: per-epoch history and timing.

    ``loss[e]`` is the mean training loss over epoch e (each batch's loss
    taken before its update); ``val_loss``/``val_metric`` are measured after
    each epoch when validation data was given. ``train_seconds`` counts only
    the training steps (the first call's JIT compilation or cache load is in
    ``compile_seconds``, validation in neither).

    The history lists (``loss``, ``val_loss``, ``val_metric``, ``lr``,
    ``grad_norms``) are built from arrays when read; treat them as read-only
    (``history_array(name)`` gives the array itself).
    """

    metric_name: str | None = None
    epochs: int = 0
    steps: int = 0
    samples: int = 0
    train_seconds: float = 0.0
    compile_seconds: float = 0.0
    fused: bool = False
    #: Why the layer path ran (None on the fused path).
    layer_path_reason: str | None = None
    #: The epoch (from 1) whose weights the model holds after early stopping
    #: with restore_best, else None.
    best_epoch: int | None = None
    #: Why training ended before ``epochs`` (early stopping), else None.
    stop_reason: str | None = None
    #: Epochs done before this call: those of the checkpoint it resumed, else
    #: 0. The history and counters (steps, samples, train_seconds) cover all
    #: epochs, those before included.
    start_epoch: int = 0
    #: MPI processes that trained (comm=), 1 otherwise.
    processes: int = 1
    #: Seconds this process spent in the gradients' all-reduce (comm=); part
    #: of train_seconds (local SGD, sync_every > 1: not measured, 0).
    allreduce_seconds: float = 0.0
    #: Steps between weight averages under local SGD (1: gradients every step).
    sync_every: int = 1
    #: The fused kernel that trained ("specialized 20-32-1", "generic
    #: 20-32-1", "distributed") or "layer path", and why that kernel
    #: (training.compiling.choose_kernel); None before training.
    kernel: str | None = None
    kernel_reason: str | None = None
    #: The functions Numba compiled during the run (cache misses), and the
    #: seconds compiling took; empty and 0 when every kernel came from the
    #: cache (``compile_seconds`` is the first call's time either way).
    compiled: list[str] = field(default_factory=list)
    compiling_seconds: float = 0.0
    _loss: Series = field(default_factory=Series, repr=False)
    _val_loss: Series = field(default_factory=Series, repr=False)
    _val_metric: Series = field(default_factory=Series, repr=False)
    _lr: Series = field(default_factory=Series, repr=False)
    _grad_norms: Series = field(default_factory=Series, repr=False)

    # --- the history ---------------------------------------------------------

    @property
    def loss(self) -> list[float]:
        """Mean training loss of each epoch."""
        return self._loss.tolist()

    @loss.setter
    def loss(self, values: Iterable[float]) -> None:
        self._loss = _series(values)

    @property
    def val_loss(self) -> list[float]:
        """Validation loss after each epoch (when validation data was given)."""
        return self._val_loss.tolist()

    @val_loss.setter
    def val_loss(self, values: Iterable[float]) -> None:
        self._val_loss = _series(values)

    @property
    def val_metric(self) -> list[float]:
        """Validation metric after each epoch (when validation data was given)."""
        return self._val_metric.tolist()

    @val_metric.setter
    def val_metric(self, values: Iterable[float]) -> None:
        self._val_metric = _series(values)

    @property
    def lr(self) -> list[float]:
        """The learning rate of each epoch (for an optimizer with ``lr``)."""
        return self._lr.tolist()

    @lr.setter
    def lr(self, values: Iterable[float]) -> None:
        self._lr = _series(values)

    @property
    def grad_norms(self) -> list[list[float]]:
        """Per epoch, each layer's mean weight-gradient norm (grad_norms=True)."""
        return self._grad_norms.tolist()

    @grad_norms.setter
    def grad_norms(self, values: Iterable) -> None:
        self._grad_norms = _series(values)

    @property
    def final_loss(self) -> float | None:
        """The last epoch's mean training loss (``loss[-1]`` without building
        the list), None before any epoch."""
        last = self._loss.last()
        return None if last is None else float(last)

    def history_array(self, name: str) -> NDArray:
        """The history series ``name`` ("loss", "val_loss", "val_metric",
        "lr", "grad_norms") as a float64 array (a view)."""
        return getattr(self, f"_{name}").array

    def record_epochs(self, losses: NDArray, lr: float | None, norms=None) -> None:
        """Add the history of epochs just trained: their losses, the
        learning rate they ran at (None: the optimizer has none) and their
        gradient norms ((count, n_layers), or None when not tracked). The
        arrays are kept, not copied: the caller hands them over."""
        self._loss.extend(losses, own=True)
        if lr is not None:
            self._lr.fill(lr, len(losses))
        if norms is not None:
            self._grad_norms.extend(norms, own=True)

    def record_validation(self, loss: float, metric: float) -> None:
        """Add the validation figures measured after an epoch."""
        self._val_loss.fill(loss, 1)
        self._val_metric.fill(metric, 1)

    def kept(self, values: list[float]) -> float | None:
        """The entry of a per-epoch list (``val_loss``, ``val_metric``...)
        for the weights the model ends with: the best epoch's after early
        stopping restored them, else the last; None for an empty list."""
        if not values:
            return None
        return values[self.best_epoch - 1] if self.best_epoch else values[-1]

    @property
    def history(self) -> list[dict]:
        """One dict per epoch: epoch, train_loss, val_loss, val_metric, lr
        (None where not measured), and grad_norms when they were."""
        loss, val_loss, val_metric = self.loss, self.val_loss, self.val_metric
        lr, norms = self.lr, self.grad_norms
        rows = []
        for e in range(len(loss)):
            row = {
                "epoch": e + 1,
                "train_loss": loss[e],
                "val_loss": _at(val_loss, e),
                "val_metric": _at(val_metric, e),
                "lr": _at(lr, e),
            }
            if norms:
                row["grad_norms"] = _at(norms, e)
            rows.append(row)
        return rows

    # --- rates ---------------------------------------------------------------

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.train_seconds if self.train_seconds else math.nan

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.train_seconds if self.train_seconds else math.nan

    @property
    def us_per_step(self) -> float:
        return 1e6 * self.train_seconds / self.steps if self.steps else math.nan


def _at(values: list, i: int):
    return values[i] if i < len(values) else None
