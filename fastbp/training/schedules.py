"""Learning-rate schedules and early stopping for :func:`fastbp.train`.

A schedule gives the learning rate of each epoch from the optimizer's initial
``lr``; :func:`fastbp.train` sets ``optimizer.lr`` before each epoch, so the
fused kernel runs one epoch per call (Python runs per epoch, never per
step). Five schedules, by the names ``fastbp train --lr-schedule`` takes:

============  ===============================================================
constant      lr
invscaling    lr / (t + 1) ** power_t, t the samples seen before the epoch
              (scikit-learn's "invscaling")
adaptive      lr until the monitored value stops improving (see
              :class:`EarlyStopping`), then lr / 5 each time, stopping once it
              would fall below 1e-6 (scikit-learn's "adaptive")
step          lr * gamma ** ((epoch - 1) // step_size)
cosine        min_lr + (lr - min_lr) * (1 + cos(pi * (epoch - 1) / t_max)) / 2
============  ===============================================================

:class:`EarlyStopping` follows scikit-learn's MLP rule exactly: after each
epoch the monitored value (training loss, validation loss or validation
metric) counts as no improvement when it is not better than the best so far
by more than ``tol``; after more than ``patience`` such epochs in a row,
training stops (or an adaptive schedule divides the rate by 5 and the count
starts again). With ``restore_best`` the weights of the best epoch are put
back at the end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, is_dataclass

from .._validate import positive_int, real_in
from .callbacks import Callback

__all__ = [
    "Schedule",
    "Constant",
    "InvScaling",
    "Adaptive",
    "StepDecay",
    "Cosine",
    "EarlyStopping",
    "EpochControl",
    "SCHEDULES",
    "schedule",
]


class Schedule:
    """Base class: ``rate(epoch, lr, samples_seen) -> float`` for epoch >= 1,
    given the initial rate lr and the samples trained on before the epoch."""

    def rate(self, epoch: int, lr: float, samples_seen: int) -> float:
        raise NotImplementedError

    def plateau(self, current: float) -> float | None:
        """The rate after a plateau (see EarlyStopping), or None to stop."""
        return None

    def config(self) -> dict:
        """What the schedule is, as JSON data: ``{"type": class name, ...its
        settings}`` (the dataclass fields, less those :meth:`state` holds).
        Two schedules with equal configs give the same rates from the same
        state."""
        settings = {}
        if is_dataclass(self):
            state = self.state()
            settings = {
                f.name: getattr(self, f.name)
                for f in fields(self)
                if f.name not in state
            }
        return {"type": type(self).__name__, **settings}

    def state(self) -> dict:
        """What the schedule has learned while training, as JSON data (empty
        for a schedule that is a pure function of the epoch)."""
        return {}

    def load_state(self, state: dict) -> None:
        """Take back what :meth:`state` returned (resuming a run)."""


@dataclass(frozen=True)
class Constant(Schedule):
    """lr every epoch."""

    def rate(self, epoch: int, lr: float, samples_seen: int) -> float:
        return lr


@dataclass(frozen=True)
class InvScaling(Schedule):
    """lr / (samples_seen + 1) ** power_t, as scikit-learn's "invscaling"."""

    power_t: float = 0.5

    def __post_init__(self) -> None:
        real_in(self.power_t, "InvScaling", "power_t")

    def rate(self, epoch: int, lr: float, samples_seen: int) -> float:
        return lr / (samples_seen + 1) ** self.power_t


@dataclass
class Adaptive(Schedule):
    """lr, divided by ``factor`` at each plateau; training stops at a plateau
    once the rate is at most ``min_lr`` (scikit-learn's "adaptive": 5 and
    1e-6). Keeps the current rate, so use one instance per training run."""

    factor: float = 5.0
    min_lr: float = 1e-6
    current: float | None = None

    def __post_init__(self) -> None:
        real_in(self.factor, "Adaptive", "factor", low=1.0, low_open=True)
        real_in(self.min_lr, "Adaptive", "min_lr")

    def rate(self, epoch: int, lr: float, samples_seen: int) -> float:
        if self.current is None:
            self.current = lr
        return self.current

    def plateau(self, current: float) -> float | None:
        if current <= self.min_lr:
            return None
        self.current = current / self.factor
        return self.current

    def state(self) -> dict:
        return {"current": self.current}

    def load_state(self, state: dict) -> None:
        self.current = state["current"]


@dataclass(frozen=True)
class StepDecay(Schedule):
    """lr * gamma ** ((epoch - 1) // step_size)."""

    step_size: int = 10
    gamma: float = 0.1

    def __post_init__(self) -> None:
        positive_int(self.step_size, "StepDecay", "step_size")
        real_in(self.gamma, "StepDecay", "gamma", low_open=True)

    def rate(self, epoch: int, lr: float, samples_seen: int) -> float:
        return lr * self.gamma ** ((epoch - 1) // self.step_size)


@dataclass(frozen=True)
class Cosine(Schedule):
    """min_lr + (lr - min_lr) * (1 + cos(pi * (epoch - 1) / t_max)) / 2:
    from lr at epoch 1 down to min_lr at epoch t_max + 1 (SGDR without
    restarts); constant at min_lr after."""

    t_max: int
    min_lr: float = 0.0

    def __post_init__(self) -> None:
        positive_int(self.t_max, "Cosine", "t_max")
        real_in(self.min_lr, "Cosine", "min_lr")

    def rate(self, epoch: int, lr: float, samples_seen: int) -> float:
        x = min(epoch - 1, self.t_max) / self.t_max
        return self.min_lr + (lr - self.min_lr) * (1 + math.cos(math.pi * x)) / 2


#: The names ``fastbp train --lr-schedule`` and the estimators take.
SCHEDULES = ("constant", "invscaling", "adaptive", "step", "cosine")


def schedule(
    name: str,
    *,
    epochs: int,
    power_t: float = 0.5,
    step_size: int | None = None,
    gamma: float = 0.1,
) -> Schedule:
    """The schedule called ``name`` (one of :data:`SCHEDULES`) for a run of
    ``epochs`` epochs: step decays every ``step_size`` epochs (default: a
    third of the run), cosine reaches 0 after the last epoch."""
    positive_int(epochs, "schedule", "epochs")
    if name == "constant":
        return Constant()
    if name == "invscaling":
        return InvScaling(power_t)
    if name == "adaptive":
        return Adaptive()
    if name == "step":
        return StepDecay(step_size or max(1, epochs // 3), gamma)
    if name == "cosine":
        return Cosine(epochs)
    raise ValueError(f"lr schedule must be one of {SCHEDULES}, got {name!r}")


MONITORS = ("train_loss", "val_loss", "val_metric")


@dataclass
class EarlyStopping:
    """Stop when ``monitor`` has not improved by more than ``tol`` for more
    than ``patience`` epochs in a row (scikit-learn's n_iter_no_change and
    tol); ``restore_best`` puts back the weights of the best epoch.

    monitor : "train_loss", "val_loss" (lower is better) or "val_metric"
        (higher is better); the last two need validation data.
    """

    patience: int = 10
    tol: float = 1e-4
    monitor: str = "val_metric"
    restore_best: bool = True

    def __post_init__(self) -> None:
        if self.monitor not in MONITORS:
            raise ValueError(
                f"EarlyStopping: monitor must be one of {MONITORS}, "
                f"got {self.monitor!r}"
            )
        if (
            isinstance(self.patience, bool)
            or not (isinstance(self.patience, int) and self.patience >= 1)
            and self.patience != math.inf
        ):
            raise ValueError(
                f"EarlyStopping: patience must be an integer >= 1 or inf, "
                f"got {self.patience!r}"
            )
        if not (isinstance(self.tol, int | float) and self.tol >= 0):
            raise ValueError(f"EarlyStopping: tol must be >= 0, got {self.tol!r}")

    @property
    def higher_is_better(self) -> bool:
        return self.monitor == "val_metric"

    def config(self) -> dict:
        """The rule's settings as JSON data (an infinite patience as "inf")."""
        return {
            "patience": "inf" if self.patience == math.inf else self.patience,
            "tol": self.tol,
            "monitor": self.monitor,
            "restore_best": self.restore_best,
        }


class EpochControl(Callback):
    """The learning-rate schedule and the early-stopping rule of a run, as
    one callback (an adaptive schedule and early stopping share the rule
    that sees a plateau): before each epoch, set ``optimizer.lr`` from the
    schedule; after it, apply the early-stopping rule (an adaptive schedule
    lowers the rate at a plateau instead of stopping); at the end, put back
    the best epoch's weights. With neither, it does nothing and lets the
    kernel run many epochs per call.

    ``optimizer`` needs an ``lr`` attribute when a schedule is given;
    ``model`` is a fastbp Sequential (its ``flat_data`` holds the weights).
    """

    def __init__(self, optimizer, model, lr_schedule=None, early_stopping=None):
        self.optimizer, self.model = optimizer, model
        self.schedule, self.rule = lr_schedule, early_stopping
        self.base_lr = getattr(optimizer, "lr", None)
        self.best, self.best_epoch, self.count = None, None, 0
        keep = early_stopping is not None and early_stopping.restore_best
        self.best_weights = model.flat_data.copy() if keep else None

    @property
    def per_epoch(self) -> bool:
        """True when something must run between every two epochs."""
        return self.schedule is not None or self.rule is not None

    # --- as a callback ------------------------------------------------------

    def epochs_until_next_call(self, run) -> int | None:
        return 1 if self.per_epoch else None

    def on_epoch_begin(self, run) -> None:
        self.before(run.epochs_done + 1, run.result.samples)

    def on_epoch_end(self, run) -> None:
        if self.after(run.result):
            run.stop(run.result.stop_reason)

    def on_train_end(self, run) -> None:
        self.finish(run.result)

    # --- the rules ------------------------------------------------------------

    def before(self, epoch: int, samples_seen: int) -> None:
        """Set the learning rate of ``epoch`` (from 1)."""
        if self.schedule is not None:
            self.optimizer.lr = self.schedule.rate(epoch, self.base_lr, samples_seen)

    def after(self, result) -> bool:
        """Takes the epoch just finished (``result``: a TrainResult); True
        when training must stop, with ``result.stop_reason`` set."""
        rule = self.rule
        if rule is None:
            return False
        value = float(
            result.history_array(
                rule.monitor if rule.monitor != "train_loss" else "loss"
            )[-1]
        )
        score = value if rule.higher_is_better else -value
        best = -math.inf if self.best is None else self.best
        self.count = self.count + 1 if score < best + rule.tol else 0
        if score > best:
            self.best, self.best_epoch = score, result.epochs
            if self.best_weights is not None:
                self.best_weights[...] = self.model.flat_data
        if self.count <= rule.patience:
            return False
        self.count = 0
        lowered = self.schedule.plateau(self.optimizer.lr) if self.schedule else None
        if lowered is not None:
            self.optimizer.lr = lowered
            return False
        result.stop_reason = (
            f"{rule.monitor} did not improve by more than tol={rule.tol:g} for "
            f"{rule.patience} consecutive epochs"
        )
        return True

    def config(self) -> dict:
        """The schedule's and the early-stopping rule's settings, as JSON data
        (None for either that is absent)."""
        return {
            "lr_schedule": None if self.schedule is None else self.schedule.config(),
            "early_stopping": None if self.rule is None else self.rule.config(),
        }

    def state(self) -> dict:
        """What the control carries from epoch to epoch, as JSON data: the
        initial rate, the best score and its epoch, the epochs without
        improvement, the schedule's state. The best epoch's weights are
        ``best_weights`` (None without restore_best)."""
        return {
            "base_lr": self.base_lr,
            "best": self.best,
            "best_epoch": self.best_epoch,
            "count": self.count,
            "schedule": None if self.schedule is None else self.schedule.state(),
        }

    def load_state(self, state: dict, best_weights=None) -> None:
        """Take back :meth:`state` and ``best_weights`` (an array of
        ``model.flat_data``'s shape, or None), resuming a run where it was."""
        self.base_lr = state["base_lr"]
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self.count = state["count"]
        if self.schedule is not None and state["schedule"] is not None:
            self.schedule.load_state(state["schedule"])
        if self.best_weights is not None and best_weights is not None:
            self.best_weights[...] = best_weights

    def finish(self, result) -> None:
        """Put the best epoch's weights back (restore_best); sets
        ``result.best_epoch``."""
        if self.best_weights is not None and self.best_epoch is not None:
            self.model.flat_data[...] = self.best_weights
            result.best_epoch = self.best_epoch
