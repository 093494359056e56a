"""The training loop: one loop for every data source, callbacks between calls.

:func:`fit` trains ``model`` on a data source for a number of epochs::

    run = Run(...)                       # what callbacks see
    data.bind(run)                       # check and shape the data
    callbacks: on_train_begin(run)       # resume a checkpoint, ...
    data.start(run)                      # choose, compile (or load) the kernel
    while epochs are left and nothing stopped the run:
        n = epochs the data and every callback allow in one call
        callbacks: on_epoch_begin(run)   # the schedule sets the rate
        data.train(run, n)               # n epochs in one kernel call
        data.validate(run)
        callbacks: on_epoch_end(run)     # progress, early stopping, checkpoints
    callbacks: on_train_end(run)         # the best weights back
    data.finish(run)

A data source is an object with that protocol: :class:`InMemory` (arrays)
here, :class:`fastbp.data.stream.Streamed` (a table read again every epoch)
in :mod:`fastbp.data`. The fused path runs whole epochs in one compiled call
(:mod:`fastbp.kernels.epoch`), several when no callback needs Python between
them; the layer path one Python iteration per mini-batch. Both visit the rows
of epoch e (from 0) in the order :func:`epoch_order` gives for
(``shuffle_key(seed)``, e), drawn inside the kernel, and stop with the same
:class:`DivergenceError` at the same epoch. A strategy
(:class:`fastbp.training.parallel.DataParallel`) spreads the run over MPI
processes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from numbers import Integral

import numpy as np
from numpy.typing import NDArray

from .._threads import thread_limit
from .._validate import finite, positive_int
from ..nn.layers import Sequential
from ..nn.losses import Loss
from ..nn.optim import Optimizer
from .callbacks import Callback
from .checkpoint import describe_run
from .checks import (
    check_data_range,
    check_initial_loss,
    coerce,
    divergence_error,
    non_negative,
    sample_weights,
)
from .compiling import CompileNotices, choose_kernel
from .fpmode import flush_subnormals
from .metrics import METRICS, evaluate_arrays
from .parallel import SingleProcess
from .result import TrainResult
from .runners import Engine, linear_layers, shuffle_key
from .schedules import EpochControl

__all__ = [
    "fit",
    "FitOptions",
    "Run",
    "InMemory",
    "STEPS_PER_CALL",
    "SECONDS_PER_CALL",
]

#: The fused path's first call runs this many training steps at most; later
#: calls as many as take about SECONDS_PER_CALL at the speed measured so far
#: (up to MAX_STEPS_PER_CALL), so that Python's share of a call (the history,
#: the checks: about 3 ms) stays near 1 % even at 0.1 µs per step. Callbacks
#: and validation make calls shorter (one epoch each for validation).
STEPS_PER_CALL = 1 << 16
SECONDS_PER_CALL = 0.25
MAX_STEPS_PER_CALL = 1 << 22


@dataclass(frozen=True)
class FitOptions:
    """How :func:`fit` trains, besides epochs, batches, seed, callbacks and
    strategy.

    shuffle : visit the rows of epoch e (from 0) in the order
        ``epoch_order(shuffle_key(seed), e, n)``; False: in their stored order
    metric : a name of :data:`fastbp.training.metrics.METRICS`, or None (the
        data source's default: accuracy for labels, R^2 for values)
    fuse : None picks the fused path when the parts qualify, True demands it,
        False forces the layer path
    threads : cap on BLAS and Numba threads during training, or None
    l2 : float >= 0, each batch's loss gains 0.5 * l2 * sum(||W||**2) / (its
        total weight) over the Linear weights
    """

    shuffle: bool = True
    metric: str | None = None
    fuse: bool | None = None
    threads: int | None = None
    l2: float = 0.0


@dataclass(eq=False)
class Run:
    """A training run between two calls of the kernel: what the data source
    and the callbacks read and change.

    Attributes
    ----------
    model, loss, optimizer, engine : the parts, and the path that trains them
    data : the data source
    epochs : int, the epochs asked for in all
    batch_size, l2, seed : the run's settings (``batch_size`` as asked; the
        data source may cap it at its rows)
    shuffle_key : int, the key of the row orders (-1: no shuffling)
    metric : str, the validation metric's name
    result : TrainResult, the history so far
    control : EpochControl, the schedule and early-stopping rule (a callback)
    strategy : SingleProcess or DataParallel
    epochs_done : int, epochs trained (a resumed checkpoint's included)
    stopped : bool, True once a callback called :meth:`stop`
    grad_norms : bool, whether the kernel measures gradient norms
    notices : CompileNotices, saying what compiles during the run
    """

    model: Sequential
    loss: Loss
    optimizer: Optimizer
    engine: Engine
    data: object
    epochs: int
    batch_size: int
    l2: float
    seed: int | None
    shuffle_key: int
    metric: str
    result: TrainResult
    control: EpochControl
    strategy: SingleProcess
    epochs_done: int = 0
    stopped: bool = False
    grad_norms: bool = False
    callbacks: list[Callback] = field(default_factory=list)
    notices: CompileNotices = field(init=False)
    #: What the first kernel call compiles, and the seconds that may take
    #: (choose_kernel's estimate; 0: not estimated), for the notice.
    kernel_what: str = "the training kernels"
    kernel_estimate: float = 0.0

    def __post_init__(self) -> None:
        self.notices = CompileNotices(self.result)

    def stop(self, reason: str | None) -> None:
        """End training after this round of callbacks (``reason`` goes to
        ``result.stop_reason`` when given)."""
        self.stopped = True
        if reason is not None:
            self.result.stop_reason = reason

    def track_grad_norms(self) -> None:
        """Have the kernel measure each layer's gradient norm (call from
        ``on_train_begin``)."""
        self.grad_norms = True

    @property
    def grad_norm_layers(self) -> int:
        """Columns of the gradient-norm history: one per Linear layer when
        tracked, else 0."""
        return len(linear_layers(self.model)) if self.grad_norms else 0

    def choose_kernel(self, batch_size: int, steps: int, weighted: bool) -> None:
        """Settle which fused kernel trains the ``steps`` steps of
        ``batch_size`` rows left (:func:`~fastbp.training.compiling.choose_kernel`):
        into ``engine`` and ``result.kernel``/``kernel_reason``. Call before
        making the runners (``engine.runner``)."""
        if not self.engine.fused:
            self.result.kernel = "layer path"
            self.kernel_what = "the layer path's kernels"
            return
        if self.strategy.distributed:
            self.result.kernel = "distributed"
            self.kernel_what = "the distributed training kernel"
            return
        choice = choose_kernel(
            self.engine.plan, batch_size=batch_size, steps=steps, weighted=weighted
        )
        self.engine = replace(self.engine, specialize=choice.specialize)
        self.result.kernel = f"{choice.kernel} {choice.label}"
        self.result.kernel_reason = choice.reason
        self.kernel_what = f"the {choice.kernel} training kernel for {choice.label}"
        self.kernel_estimate = choice.compile_estimate

    def warm_up(self, runner) -> None:
        """Compile (or load) ``runner``'s kernel: ``result.compile_seconds``."""
        start = time.perf_counter()
        runner.warm_up()
        self.result.compile_seconds = time.perf_counter() - start

    def kernel_notice(self) -> tuple[str, float]:
        """What the run's first kernel call compiles, and the estimated
        seconds (for CompileNotices)."""
        return self.kernel_what, self.kernel_estimate

    def describe(self) -> dict:
        """The run as a checkpoint records it (:func:`describe_run`)."""
        data = self.data.describe()  # mode, batch_size, rows, validation_rows, ...
        training = {
            **{key: data.pop(key) for key in ("mode", "batch_size", "rows")},
            "validation_rows": data.pop("validation_rows"),
            "l2": self.l2,
            "sample_weight": data.pop("sample_weight"),
            "shuffle": self.shuffle_key >= 0,
            "seed": self.seed,
            "shuffle_key": self.shuffle_key,
            **data,  # what only this kind of source has (shuffle_buffer)
        }
        return describe_run(
            self.model, self.loss, self.optimizer, self.control, training
        )

    def epochs_per_call(self) -> int:
        """Epochs the next kernel call may run: as many as the data source
        allows, the epochs left and every callback's limit."""
        count = min(self.data.max_epochs_per_call(self), self.epochs - self.epochs_done)
        for callback in self.callbacks:
            limit = callback.epochs_until_next_call(self)
            if limit is not None:
                count = min(count, limit)
        return max(1, count)

    def record(self, losses: NDArray, samples: int, steps: int, norms) -> None:
        """Add epochs just trained (their losses, NaN from a diverged one on)
        to the history; DivergenceError at the first non-finite one, after
        recording those before it."""
        finite = np.isfinite(losses)
        finished = len(losses) if finite.all() else int(np.argmin(finite))
        lr = getattr(self.optimizer, "lr", None)
        result = self.result
        result.record_epochs(
            losses[:finished],
            None if lr is None else float(lr),
            None if norms is None else norms[:finished],
        )
        result.epochs = self.epochs_done + finished
        result.steps += steps * finished
        result.samples += samples * finished
        if finished < len(losses):
            raise divergence_error(result.epochs + 1, self.optimizer)


def fit(
    model: Sequential,
    loss: Loss,
    optimizer: Optimizer,
    data,
    *,
    epochs: int,
    batch_size: int = 32,
    seed: int | None = 0,
    callbacks: Sequence[Callback] = (),
    strategy: SingleProcess | None = None,
    options: FitOptions | None = None,
) -> TrainResult:
    """Train ``model`` on a data source; the one loop behind ``fastbp.train``.

    Parameters
    ----------
    model : Sequential
    loss : a fastbp Loss
    optimizer : a fastbp Optimizer, usually over ``model.parameters()``
    data : a data source: :class:`InMemory` or
        :class:`fastbp.data.stream.Streamed`
    epochs, batch_size : int >= 1 (``epochs`` in all, a resumed
        checkpoint's included)
    seed : int or None, the shuffle key is ``shuffle_key(seed)`` (fresh
        entropy for None)
    callbacks : Callback instances, run in this order around every call
    strategy : :class:`fastbp.training.parallel.DataParallel`, or None
    options : FitOptions (shuffling, metric, path, threads, L2), or None for
        the defaults

    Returns the run's TrainResult; raises DivergenceError when the loss
    becomes NaN or infinite.
    """
    epochs = positive_int(epochs, "train", "epochs")
    batch_size = positive_int(batch_size, "train", "batch_size")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, Integral):
            raise TypeError(f"train: seed must be an integer or None, got {seed!r}")
        if seed < 0:
            raise ValueError(f"train: seed must be >= 0 or None, got {seed!r}")
    options = options or FitOptions()
    metric = options.metric
    if not isinstance(model, Sequential):
        raise TypeError(f"train: model must be a fastbp Sequential, got {model!r}")
    if not isinstance(loss, Loss):
        raise TypeError(f"train: loss must be a fastbp Loss, got {loss!r}")
    if not isinstance(optimizer, Optimizer):
        raise TypeError(
            f"train: optimizer must be a fastbp Optimizer, got {optimizer!r}"
        )
    callbacks = list(callbacks)
    for callback in callbacks:
        if not isinstance(callback, Callback):
            raise TypeError(
                f"train: callbacks must be fastbp Callbacks, got {callback!r}"
            )
    if metric is not None and metric not in METRICS:
        raise ValueError(
            f"train: metric must be one of {sorted(METRICS)}, got {metric!r}"
        )
    try:
        engine = Engine.choose(model, loss, optimizer, options.fuse)
    except ValueError as exc:
        raise ValueError(f"train: {exc}") from None
    controls = [cb for cb in callbacks if isinstance(cb, EpochControl)]
    control = controls[0] if controls else EpochControl(optimizer, model)
    run = Run(
        model, loss, optimizer, engine, data, epochs, batch_size,
        non_negative(options.l2, "l2"), seed,
        shuffle_key(seed) if options.shuffle else -1,
        metric or data.default_metric(loss),
        TrainResult(fused=engine.fused, layer_path_reason=engine.reason),
        control, strategy or SingleProcess(), callbacks=callbacks,
    )  # fmt: skip
    run.result.metric_name = run.metric
    run.strategy.begin(run)
    data.bind(run)
    with thread_limit(options.threads), flush_subnormals():
        for callback in callbacks:
            callback.on_train_begin(run)
        with run.notices.phase(run.kernel_notice):
            data.start(run)
        run.strategy.started()
        with run.notices.phase("the evaluation kernels"):
            while run.epochs_done < epochs and not run.stopped:
                count = run.epochs_per_call()
                for callback in callbacks:
                    callback.on_epoch_begin(run)
                data.train(run, count)
                run.epochs_done += count
                data.validate(run)
                for callback in callbacks:
                    callback.on_epoch_end(run)
            for callback in callbacks:
                callback.on_train_end(run)
            data.finish(run)
    return run.result


class InMemory:
    """Arrays in memory as a data source of :func:`fit`.

    Parameters
    ----------
    X : array-like of shape (n_samples, in_features), cast to the model dtype
    T : targets: (n_samples, n_outputs) (or (n_samples,) for one output) for
        a loss whose ``target`` is "values", (n_samples,) integer labels for
        "labels"
    sample_weight : array-like of shape (n_samples,) of finite weights >= 0,
        or None: each batch's loss is the weighted mean (fused path only)
    val : (X_val, T_val) or None; evaluated after every epoch
    """

    mode = "in-memory"

    def __init__(self, X, T, *, sample_weight=None, val=None) -> None:
        self.X_raw, self.T_raw = X, T
        self.weights_raw, self.val_raw = sample_weight, val
        self.rng_state = None

    @property
    def has_validation(self) -> bool:
        return self.val_raw is not None

    def default_metric(self, loss: Loss) -> str:
        return "accuracy" if loss.target == "labels" else "r2"

    # --- before training -----------------------------------------------------

    def bind(self, run: Run) -> None:
        """Check and cast the arrays for the run's model and loss, pad a
        shard, and fix the batch size and steps per epoch."""
        model, loss, strategy = run.model, run.loss, run.strategy
        X, T = coerce(model, loss, self.X_raw, self.T_raw, "training")
        self.val = None
        if self.val_raw is not None:
            self.val = coerce(model, loss, *self.val_raw, "validation")
        weights = sample_weights(self.weights_raw, X.shape[0])
        if weights is not None and not run.engine.fused:
            raise ValueError(
                f"train: sample_weight needs the fused path ({run.engine.reason})"
            )
        self.weighted = weights is not None
        self.X, self.T, self.weights, batch, self.epoch_samples = strategy.pad(
            X, T, weights, run.batch_size
        )
        n = self.X.shape[0]
        self.batch_size = min(batch, n)
        self.steps_per_epoch = -(-n // self.batch_size)
        self.sync_every = strategy.sync_period(self.steps_per_epoch, run.optimizer)
        run.result.sync_every = self.sync_every

    def describe(self) -> dict:
        """The data and batching, as a checkpoint records them."""
        return {
            "mode": self.mode,
            "batch_size": self.batch_size,
            "rows": self.X.shape[0],
            "validation_rows": 0 if self.val is None else len(self.val[0]),
            "sample_weight": self.weighted,
        }

    def state(self) -> None:
        """Nothing beyond the run's shuffle key to checkpoint."""

    def load_state(self, state) -> None:
        """See :meth:`state`."""

    def start(self, run: Run) -> None:
        """Refuse data that overflows the dtype, then choose the kernel for
        the steps left and compile (or load) it: ``result.compile_seconds``."""
        steps = (run.epochs - run.epochs_done) * self.steps_per_epoch
        run.choose_kernel(self.batch_size, steps, self.weighted)
        check_data_range(run.model.dtype, self.X, self.T, "training")
        if self.val is not None:
            check_data_range(run.model.dtype, *self.val, "validation")
        check_initial_loss(run.model, run.loss, self.X, self.T, self.batch_size)
        self.runner = run.engine.runner(
            self.X, self.T, self.batch_size, self.weights, run.l2, run.grad_norms,
            run.strategy.distributed, self.sync_every,
        )  # fmt: skip
        self.seconds_per_step = 0.0
        self.key = run.strategy.rank_key(run.shuffle_key)
        run.warm_up(self.runner)

    def max_epochs_per_call(self, run: Run) -> int:
        """Many epochs per call on the fused path without validation (see
        STEPS_PER_CALL); else one."""
        if not run.engine.fused or self.val is not None:
            return 1
        steps = STEPS_PER_CALL
        if self.seconds_per_step:  # measured by the calls so far
            steps = min(
                MAX_STEPS_PER_CALL, int(SECONDS_PER_CALL / self.seconds_per_step)
            )
        return max(1, steps // self.steps_per_epoch)

    # --- training --------------------------------------------------------------

    def train(self, run: Run, count: int) -> None:
        """Epochs ``run.epochs_done + 1 ..`` + count in one kernel call."""
        start = time.perf_counter()
        losses = self.runner(np.empty((count, 0), np.int64), self.key, run.epochs_done)
        losses = run.strategy.epoch_losses(losses)
        elapsed = time.perf_counter() - start
        run.result.train_seconds += elapsed
        self.seconds_per_step = elapsed / (count * self.steps_per_epoch)
        if not finite(run.model.flat_data):
            # The last update of the call blew the weights up: its loss,
            # measured before the update, could not show it.
            losses[-1] = np.nan
        norms = self.runner.norms if run.grad_norms else None
        run.record(losses, self.epoch_samples, self.steps_per_epoch, norms)

    def validate(self, run: Run) -> None:
        """Loss and metric on the validation arrays, into the history."""
        if self.val is None:
            return
        v_loss, v_metric = evaluate_arrays(run.model, run.loss, *self.val, run.metric)
        v_loss, v_metric = run.strategy.mean_over_ranks(
            len(self.val[0]), v_loss, v_metric
        )
        if not math.isfinite(v_loss):
            raise divergence_error(run.epochs_done, run.optimizer)
        run.result.record_validation(v_loss, v_metric)

    def finish(self, run: Run) -> None:
        """Weights can stay finite yet so large that outputs overflow: check
        the final model on one batch (the epoch losses were taken before
        updates)."""
        run.strategy.finish(run.result, self.runner)
        bs = self.batch_size
        value = evaluate_arrays(run.model, run.loss, self.X[:bs], self.T[:bs])[0]
        if not math.isfinite(value):
            raise divergence_error(run.result.epochs, run.optimizer)
