"""Callbacks: everything that happens between two calls of the training kernel.

The loop (:func:`fastbp.training.fit`) trains epochs in calls of the fused
kernel, several epochs per call when nothing needs Python between them.
Around each call it runs the callbacks, in the order given, through one small
protocol (every hook optional):

``on_train_begin(run)``
    once, after the data is bound and before anything is compiled; may
    restore a run (checkpoints) or ask for figures (gradient norms).
``epochs_until_next_call(run)``
    how many epochs may pass before this callback must run again, or None
    for no limit: a callback that needs nothing per epoch lets the kernel
    run many epochs per call; one that returns 1 runs after every epoch.
``on_epoch_begin(run)``
    before a call; ``run.epochs_done`` epochs are done.
``on_epoch_end(run)``
    after a call and its validation; ``run.epochs_done`` counts the epochs
    just trained and ``run.result`` holds their history. Calling
    ``run.stop(reason)`` ends training after this round of callbacks.
``on_train_end(run)``
    once, after the last call (also after a stop).

The built-in ones: :class:`fastbp.training.schedules.EpochControl` (learning
rate schedules and early stopping), :class:`fastbp.training.checkpoint.Checkpointing`
(checkpoints and resuming), :class:`GradNorms`, :class:`EpochCallback` (a
function called as ``fn(epoch, result)``, as ``fastbp.train(callback=)``
takes it, and the progress display). ``docs/python.md`` writes one more,
a logger of the history to a CSV file, in 17 lines.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the loop's state, for annotations only
    from .loop import Run

__all__ = ["Callback", "EpochCallback", "GradNorms"]


class Callback:
    """Base class of training callbacks: every hook does nothing."""

    def on_train_begin(self, run: Run) -> None:
        """Once, before training (after the data is checked)."""

    def epochs_until_next_call(self, run: Run) -> int | None:
        """Epochs that may pass before this callback must run again (>= 1),
        or None when it needs nothing between epochs."""
        return None

    def on_epoch_begin(self, run: Run) -> None:
        """Before each call of the kernel."""

    def on_epoch_end(self, run: Run) -> None:
        """After each call of the kernel (and the validation after it)."""

    def on_train_end(self, run: Run) -> None:
        """Once, after the last epoch."""


class EpochCallback(Callback):
    """``fn(epoch, result)`` after the epochs of each call, ``epoch`` (from 1)
    the last of them.

    Parameters
    ----------
    fn : callable(int, TrainResult)
    every : int >= 1, or None
        Epochs between calls at most; None: about 20 calls over the run
        (``max(1, epochs // 20)``), which lets the fused kernel run that many
        epochs per call.
    """

    def __init__(self, fn: Callable[[int, Any], None], every: int | None = None):
        if not callable(fn):
            raise TypeError(f"callback must be callable, got {fn!r}")
        self.fn, self.every = fn, every

    def epochs_until_next_call(self, run: Run) -> int:
        return self.every or max(1, run.epochs // 20)

    def on_epoch_end(self, run: Run) -> None:
        self.fn(run.epochs_done, run.result)


class GradNorms(Callback):
    """Record each layer's mean weight-gradient norm per epoch in
    ``result.grad_norms`` (measured inside the fused kernel, per step, and
    averaged over the epoch's steps): vanishing or exploding gradients at a
    glance."""

    def on_train_begin(self, run: Run) -> None:
        run.track_grad_norms()
