"""``fastbp.train``: the training loop with today's keywords, and ``evaluate``.

:func:`train` is a thin convenience over :func:`fastbp.training.loop.fit`:
its arrays become an :class:`~fastbp.training.loop.InMemory` source (a
streamed source can be given instead of X), its keywords become callbacks
(schedule and early stopping, gradient norms, progress, checkpoints) and a
strategy (data parallelism over MPI), and nothing else happens here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from numpy.typing import NDArray

from .._validate import positive_int
from ..nn.layers import Sequential
from ..nn.losses import Loss
from ..nn.optim import Optimizer
from .callbacks import Callback, EpochCallback, GradNorms
from .checkpoint import Checkpoint, CheckpointFile, Checkpointing
from .checks import coerce
from .loop import FitOptions, InMemory, fit
from .metrics import METRICS, evaluate_arrays
from .parallel import DataParallel
from .result import TrainResult
from .schedules import Constant, EarlyStopping, EpochControl, Schedule, schedule

__all__ = ["train", "evaluate", "epoch_control"]


def train(
    model: Sequential,
    loss: Loss,
    optimizer: Optimizer,
    X: object,
    T: object = None,
    *,
    epochs: int,
    batch_size: int = 32,
    shuffle: bool = True,
    seed: int | None = 0,
    val: tuple[object, object] | None = None,
    metric: str | None = None,
    fuse: bool | None = None,
    threads: int | None = None,
    callback: Callable[[int, TrainResult], None] | None = None,
    sample_weight: object | None = None,
    l2: float = 0.0,
    lr_schedule: Schedule | str | None = None,
    early_stopping: EarlyStopping | None = None,
    grad_norms: bool = False,
    checkpoint: str | os.PathLike | CheckpointFile | None = None,
    checkpoint_every: int = 1,
    resume: str | os.PathLike | Checkpoint | None = None,
    comm: object | None = None,
    shard: bool = False,
    sync_every: int = 1,
    callbacks: Sequence[Callback] = (),
    strategy: DataParallel | None = None,
) -> TrainResult:
    """Train ``model`` on (X, T) with mini-batches; returns a TrainResult.

    Parameters
    ----------
    model : Sequential
    loss : a fastbp Loss (MSELoss, CrossEntropyLoss or your own)
    optimizer : a fastbp Optimizer (SGD, Adam or your own), usually over
        ``model.parameters()``
    X : array-like of shape (n_samples, in_features), cast to the model dtype
    T : targets: (n_samples, n_outputs) (or (n_samples,) for one output) for
        a loss whose ``target`` is "values" (MSE), (n_samples,) integer labels
        for "labels" (cross-entropy)
    epochs, batch_size : int >= 1; the last batch of an epoch may be shorter
    shuffle : visit the rows of epoch e (from 0) in the order
        ``epoch_order(shuffle_key(seed), e, n_samples)``
    seed : int or None
    val : (X_val, T_val) or None; evaluated after every epoch
    metric : "accuracy", "binary_accuracy", "logit_accuracy", "r2" or None
        (default: accuracy for cross-entropy, r2 for MSE)
    fuse : None picks the fused path when the model qualifies, True demands it
        (ValueError if it cannot), False forces the layer path
    threads : cap on BLAS and Numba threads during training, or None
    callback : called as callback(epoch, result) after each epoch (epochs
        count from 1); in the fused path calls arrive per chunk of epochs,
        about 20 in all (:class:`fastbp.training.callbacks.EpochCallback`)
    sample_weight : array-like of shape (n_samples,) of finite weights >= 0,
        or None: each batch's loss is the weighted mean sum(w_i l_i) / sum(w_i)
        (fused path only)
    l2 : float >= 0, scikit-learn's alpha: each batch's loss gains
        0.5 * l2 * sum(||W||**2) / (its total weight) over the Linear weights
        (not biases)
    lr_schedule : a :class:`fastbp.training.schedules.Schedule`, one of the
        names in ``fastbp.training.schedules.SCHEDULES``, or None (constant);
        sets ``optimizer.lr`` before each epoch
    early_stopping : an :class:`fastbp.EarlyStopping`, or None
    grad_norms : record each layer's mean weight-gradient norm per epoch in
        ``result.grad_norms`` (computed inside the fused kernel)
    checkpoint : a path, a :class:`fastbp.training.checkpoint.CheckpointFile`
        or None: write a checkpoint (:mod:`fastbp.training.checkpoint`; weights,
        optimizer and schedule state, shuffle key, history) there, atomically,
        after every ``checkpoint_every``-th epoch (counted from the run's
        first) and after the last one trained
    checkpoint_every : int >= 1
    resume : a checkpoint's path, a :class:`fastbp.training.checkpoint.Checkpoint`
        or None: continue that run. ``epochs`` stays the total: epochs
        ``epochs_done + 1`` to ``epochs`` are trained, and the result equals
        a run never interrupted (history included; ``result.start_epoch``
        says where this call began). Pass a model, loss and optimizer built
        as for the first run (fresh, with its initial lr) and the same data
        and settings: anything the checkpoint records that differs is a
        :class:`fastbp.training.checkpoint.CheckpointError` (a ValueError) naming it,
        as is a checkpoint with more than ``epochs`` epochs. A checkpoint
        with exactly ``epochs``, or whose run early stopping ended, trains
        nothing: the model gets its final weights (the best epoch's, with
        restore_best) and the result its history. With seed=None the
        checkpoint's shuffle key is used.

    comm : ``mpi4py.MPI.COMM_WORLD`` or None: data-parallel training over
        MPI (the ``mpi`` extra; run the program under ``mpiexec -n N``).
        Every process calls train with the same arguments and data; rank 0's
        initial weights (and shuffle key) are broadcast, each rank trains
        its share of every batch (``batch_size`` is the global batch; an
        uneven split is weighted by rows), and the gradients are all-reduced
        inside the fused kernel once per step. The model is the one a single
        process trains, to the rounding of the sums (1e-9 relative in
        float64, tested). Only rank 0 writes checkpoints given as a path.
    shard : with comm, (X, T, sample_weight, val) are this process's own
        share of the data (see :func:`fastbp.data.shard.load_shard`), not the
        same data on every rank. ``batch_size`` stays the global batch:
        each rank trains batches of ceil(batch_size / N) of its own rows,
        shuffled within its shard (so the model differs from one process's);
        a rank with fewer rows than the others gets padding rows of weight 0,
        so every rank takes the same number of steps. Validation loss and
        metric are the row-weighted means over the ranks' validation rows
        (for R^2 an approximation), so that every rank decides alike.
    sync_every : int >= 1, with comm: 1 all-reduces the gradients every step
        (the model of one process); K > 1 is local SGD: each rank updates
        its own weights from its own rows and the weights are averaged over
        the ranks every K steps, one all-reduce per K steps (for networks so
        small that the all-reduce costs more than the step). K is lowered
        to the largest divisor of the steps per epoch, so that the ranks
        agree at every epoch's end; ``result.sync_every`` says which K ran.

    Raises

    callbacks : more :class:`fastbp.training.callbacks.Callback` objects, run
        after ``callback`` and before the schedule, early stopping and
        checkpoints
    strategy : a :class:`fastbp.training.parallel.DataParallel` (instead of
        comm, shard and sync_every), or None

    X may also be a data source (:class:`fastbp.data.stream.Streamed`, read
    again every epoch), with T None; ``val``, ``sample_weight``, ``comm``
    then do not apply.

    Raises
    ------
    DivergenceError when the training loss becomes NaN or infinite.
    CheckpointError (a ValueError) for a checkpoint that cannot be read or
    does not match the run.
    """
    if comm is not None:
        if strategy is not None:
            raise ValueError("train: give comm or strategy, not both")
        strategy = DataParallel(comm, shard=shard, sync_every=sync_every)
    if strategy is not None:
        if strategy.size > 1 and checkpoint is not None:
            if not isinstance(checkpoint, CheckpointFile):
                checkpoint = CheckpointFile(checkpoint, is_writer=strategy.rank == 0)
    if T is None and hasattr(X, "bind"):  # a data source
        for name, value in (("val", val), ("sample_weight", sample_weight)):
            if value is not None:
                raise ValueError(
                    f"train: {name} does not apply to a data source such as "
                    "Streamed (its validation rows come from scan's val_fraction)"
                )
        data = X
    else:
        data = InMemory(X, T, sample_weight=sample_weight, val=val)
    control = epoch_control(
        model, optimizer, lr_schedule, early_stopping, epochs, data.has_validation
    )
    every = [EpochCallback(callback)] if callback is not None else []
    norms = [GradNorms()] if grad_norms else []
    saving = []
    if checkpoint is not None or resume is not None:
        saving = [Checkpointing(checkpoint, checkpoint_every, resume)]
    elif checkpoint_every != 1:  # checked even when unused, as before
        Checkpointing(None, checkpoint_every, None)
    return fit(
        model, loss, optimizer, data, epochs=epochs, batch_size=batch_size,
        seed=seed, strategy=strategy,
        callbacks=[*norms, *every, *callbacks, control, *saving],
        options=FitOptions(shuffle, metric, fuse, threads, l2),
    )  # fmt: skip


def evaluate(
    model: Sequential,
    loss: Loss,
    X: NDArray,
    T: NDArray,
    metric: str | None = None,
    batch_size: int = 4096,
) -> tuple[float, float]:
    """(loss per sample, metric) of the model on X, T, in batches.

    The loss is averaged over rows as in :class:`TrainResult`; the metric is
    NaN when ``metric`` is None. A model whose outputs overflow to inf or NaN
    gets loss inf and metric NaN. ValueError for data with no rows.
    """
    X, T = coerce(model, loss, X, T, "evaluation", "evaluate")
    if metric is not None and metric not in METRICS:
        raise ValueError(
            f"evaluate: metric must be one of {sorted(METRICS)} or None, got {metric!r}"
        )
    batch_size = positive_int(batch_size, "evaluate", "batch_size")
    return evaluate_arrays(model, loss, X, T, metric, batch_size)


def epoch_control(
    model: Sequential,
    optimizer: Optimizer,
    lr_schedule: Schedule | str | None,
    early_stopping: EarlyStopping | None,
    epochs: int,
    has_val: bool,
    who: str = "train",
) -> EpochControl:
    """The EpochControl of a training run, its arguments checked (TypeError
    or ValueError naming who): a schedule object or name, an optimizer with
    ``lr`` for it, validation data for early stopping on a validation
    figure."""
    if isinstance(lr_schedule, str):
        lr_schedule = schedule(lr_schedule, epochs=epochs)
    if isinstance(lr_schedule, Constant):
        lr_schedule = None  # nothing to set: epochs may run many per call
    if lr_schedule is not None and not isinstance(lr_schedule, Schedule):
        raise TypeError(
            f"{who}: lr_schedule must be a Schedule or a name, got {lr_schedule!r}"
        )
    if lr_schedule is not None and getattr(optimizer, "lr", None) is None:
        raise ValueError(
            f"{who}: lr_schedule needs an optimizer with lr, got {optimizer!r}"
        )
    if early_stopping is not None:
        if not isinstance(early_stopping, EarlyStopping):
            raise TypeError(
                f"{who}: early_stopping must be a fastbp.schedules.EarlyStopping"
            )
        if early_stopping.monitor != "train_loss" and not has_val:
            raise ValueError(
                f"{who}: early stopping on {early_stopping.monitor} needs "
                "validation data"
            )
    return EpochControl(optimizer, model, lr_schedule, early_stopping)
