"""The training loop: mini-batches over epochs, seeded shuffling, validation,
history and honest timing.

``train`` runs one of two paths with the same arithmetic:

- the fused path, :func:`fastbp.kernels.epoch.train_epochs`, runs whole epochs
  (several per call when nothing needs Python between them) inside one njit
  call. :func:`fused_plan` builds its description from the registry
  (:mod:`fastbp.parts`): it is used whenever every part has fused code: a
  Sequential of built-in Linear layers, each optionally followed by a
  registered activation; a registered loss; a registered optimizer over
  exactly ``model.parameters()``.
- the layer path calls ``model.forward``, ``loss.forward``, ``model.backward``
  and ``optimizer.step()`` from Python for each mini-batch; it runs any Layer,
  Loss and Optimizer, and ``TrainResult.layer_path_reason`` says why it ran.

Both visit the rows of epoch e (from 0) in the order :func:`epoch_order`
gives for (shuffle_key(seed), e), drawn inside the fused kernel (no Python
per epoch) and by the same compiled function on the layer path, so they
visit the data identically, and both stop with the same
:class:`DivergenceError` at the same epoch.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from .._threads import thread_limit
from .._validate import check_array, positive_int
from ..kernels.activations import ACT_IDENTITY, NO_HYPER
from ..kernels.epoch import (
    FusedLoss,
    FusedModel,
    FusedOptimizer,
    shuffle_rows,
    train_epochs,
)
from ..kernels.epoch import loss_and_gradient as fused_loss_and_gradient
from ..kernels.util import all_finite
from ..nn.layers import Linear, Sequential, uses_builtin_kernels
from ..nn.losses import Loss
from ..nn.optim import Optimizer
from ..nn.parts import part_of
from .checkpoint import Checkpoint, CheckpointFile, Checkpointing, capture, describe_run
from .schedules import Constant, EarlyStopping, EpochControl, Schedule, schedule

__all__ = [
    "train",
    "evaluate",
    "loss_and_gradient",
    "lbfgs",
    "TrainResult",
    "DivergenceError",
    "FusedPlan",
    "fused_plan",
    "FusedRunner",
    "LayerRunner",
    "choose_path",
    "batch_loss_share",
    "check_initial_loss",
    "check_data_range",
    "divergence_error",
    "epoch_control",
    "epoch_order",
    "shuffle_key",
]

#: The fused path runs this many training steps per call at most, so progress
#: is reported about every 0.1-1 s; fewer when validation runs every epoch.
STEPS_PER_CALL = 1 << 16


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


@dataclass
class TrainResult:
    """What ``train`` did: per-epoch history and timing.

    ``loss[e]`` is the mean training loss over epoch e (each batch's loss taken
    before its update); ``val_loss``/``val_metric`` are measured after each
    epoch when validation data was given. ``train_seconds`` counts only the
    training steps (the first call's JIT compilation or cache load is in
    ``compile_seconds``, validation in neither).
    """

    loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_metric: list[float] = field(default_factory=list)
    metric_name: str | None = None
    epochs: int = 0
    steps: int = 0
    samples: int = 0
    train_seconds: float = 0.0
    compile_seconds: float = 0.0
    fused: bool = False
    #: Why the layer path ran (None on the fused path).
    layer_path_reason: str | None = None
    #: The learning rate of each epoch (when a schedule or early stopping ran
    #: training epoch by epoch, or the optimizer has an ``lr``).
    lr: list[float] = field(default_factory=list)
    #: Per epoch, each layer's mean weight-gradient norm (grad_norms=True).
    grad_norms: list[list[float]] = field(default_factory=list)
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
        rows = []
        for e in range(len(self.loss)):
            row = {
                "epoch": e + 1,
                "train_loss": self.loss[e],
                "val_loss": _at(self.val_loss, e),
                "val_metric": _at(self.val_metric, e),
                "lr": _at(self.lr, e),
            }
            if self.grad_norms:
                row["grad_norms"] = _at(self.grad_norms, e)
            rows.append(row)
        return rows

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


# --- metrics -----------------------------------------------------------------


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
    gets loss inf and metric NaN.
    """
    X, T = _coerce(model, loss, X, T, "evaluation")
    return _evaluate(model, loss, X, T, metric, batch_size)


def _evaluate(model, loss, X, T, metric=None, batch_size=4096):
    """evaluate() on arrays already checked and cast by _coerce.

    Runs ``model.predict`` and ``loss.value``, which leave the buffers of a
    pending backward pass alone.
    """
    outputs, total = [], 0.0
    for s in range(0, X.shape[0], batch_size):
        y = model.predict(X[s : s + batch_size])
        if not all_finite(y):  # a diverged model: its loss is infinite
            return math.inf, math.nan
        total += batch_loss_share(
            loss, loss.value(y, T[s : s + batch_size]), y.shape[0]
        )
        outputs.append(y)
    value = total / X.shape[0]
    y_all = np.concatenate(outputs)
    return value, (METRICS[metric](y_all, T) if metric else math.nan)


def batch_loss_share(loss: Loss, value: float, rows: int) -> float:
    """A batch's share of a per-sample mean loss: a mean-reduced loss counts
    once per row, a summed one (MSELoss(reduction="sum")) once."""
    return value if getattr(loss, "reduction", "mean") == "sum" else value * rows


# --- the fused path ----------------------------------------------------------


@dataclass
class FusedPlan:
    """What the fused kernel needs besides the data, built once per train()."""

    model: FusedModel
    loss: FusedLoss
    optimizer: Optimizer

    def fused_optimizer(self) -> FusedOptimizer:
        """The optimizer's kernel form, with its current step count."""
        opt = self.optimizer
        return FusedOptimizer(
            part_of(opt).code, opt.hyper_vector(), opt.state, opt.step_count
        )


def fused_plan(
    model: object, loss: Loss, optimizer: Optimizer | None
) -> FusedPlan | str:
    """The fused kernel's description of (model, loss, optimizer), derived
    from the registry, or a string saying why this combination must take the
    layer path. optimizer None: a plan for evaluating the loss and gradient
    only (its ``optimizer`` is None)."""
    if not isinstance(model, Sequential):
        return "the model is not a Sequential"
    layers, rows, hyper, i = model.layers, [], [], 0
    while i < len(layers):
        layer = layers[i]
        if not (isinstance(layer, Linear) and uses_builtin_kernels(layer)):
            return f"layer {i} ({layer!r}) is not a fastbp Linear"
        act, p = ACT_IDENTITY, NO_HYPER
        after = layers[i + 1] if i + 1 < len(layers) else None
        if after is not None and not isinstance(after, Linear):
            part = part_of(after)
            if part is None or not part.fused or not uses_builtin_kernels(after):
                return f"layer {i + 1} ({after!r}) has no fused kernel"
            act, p = part.code, after.hyper_vector()
            i += 1
        w, b = model.offset(layer.weight), model.offset(layer.bias)
        rows.append((layer.in_features, layer.out_features, w, b, act))
        hyper.append(p)
        i += 1
    loss_part = part_of(loss)
    if loss_part is None or not loss_part.fused:
        return f"the loss {loss!r} has no fused kernel"
    loss_hyper = [float(v) for v in loss_part.hyperparameters(loss).values()]
    if optimizer is not None:
        opt_part = part_of(optimizer)
        if opt_part is None or not opt_part.fused:
            return f"the optimizer {optimizer!r} has no fused kernel"
        params = model.parameters()
        if len(optimizer.params) != len(params) or any(
            a is not b for a, b in zip(optimizer.params, params, strict=True)
        ):
            return "the optimizer does not hold exactly model.parameters(), in order"
    fused_model = FusedModel(
        model.flat_data,
        model.flat_grad,
        np.array(rows, dtype=np.int64),
        np.array(hyper, dtype=np.float64),
    )
    fused_loss = FusedLoss(loss_part.code, np.array(loss_hyper, dtype=np.float64))
    return FusedPlan(fused_model, fused_loss, optimizer)


def choose_path(
    model, loss, optimizer, metric: str, fuse: bool | None, who: str
) -> tuple[FusedPlan | None, TrainResult]:
    """(the fused plan, or None for the layer path; an empty TrainResult
    saying which path and why), after checking ``metric``. fuse=True demands
    the fused path (ValueError naming ``who`` if it cannot run), False forbids
    it."""
    if metric not in METRICS:
        raise ValueError(
            f"{who}: metric must be one of {sorted(METRICS)}, got {metric!r}"
        )
    plan = fused_plan(model, loss, optimizer) if fuse is not False else None
    if fuse and isinstance(plan, str):
        raise ValueError(f"{who}: fuse=True but {plan}")
    fused = isinstance(plan, FusedPlan)
    result = TrainResult(
        metric_name=metric,
        fused=fused,
        layer_path_reason=None if fused else plan or "fuse=False",
    )
    return (plan if fused else None), result


def loss_and_gradient(
    model: Sequential,
    loss: Loss,
    X: object,
    T: object,
    *,
    sample_weight: object | None = None,
    l2: float = 0.0,
) -> tuple[float, NDArray]:
    """(L, g): the loss of model over all of (X, T) and its gradient, one
    compiled pass (in chunks of rows), for full-batch solvers such as
    scipy's L-BFGS-B.

    L is the (sample-weighted) mean loss plus 0.5 * l2 * sum(||W||**2) /
    (the total weight) over the Linear weights; g, an (n_parameters,) float64
    array, is dL/d(model.flat_data), in the model's flat order. Arguments as
    :func:`train`; the model must qualify for the fused path (ValueError
    saying why not). The parameters are not changed (``model.flat_grad`` is
    scratch).
    """
    if not isinstance(model, Sequential):
        raise TypeError(f"loss_and_gradient: model must be a Sequential, got {model!r}")
    if not isinstance(loss, Loss):
        raise TypeError(f"loss_and_gradient: loss must be a fastbp Loss, got {loss!r}")
    plan = fused_plan(model, loss, None)
    if isinstance(plan, str):
        raise ValueError(f"loss_and_gradient: {plan}")
    X, T = _coerce(model, loss, X, T, "training")
    weights = _sample_weight(sample_weight, X.shape[0])
    T, labels = _values_and_labels(X, T)
    return fused_loss_and_gradient(
        X, T, labels, plan.model, plan.loss, weights, _non_negative(l2, "l2")
    )


def lbfgs(
    model: Sequential,
    loss: Loss,
    X: object,
    T: object,
    *,
    max_iter: int = 200,
    max_fun: int = 15000,
    tol: float = 1e-4,
    sample_weight: object | None = None,
    l2: float = 0.0,
    val: tuple[object, object] | None = None,
    metric: str | None = None,
    threads: int | None = None,
    callback: Callable[[int, TrainResult], None] | None = None,
) -> TrainResult:
    """Full-batch training with L-BFGS: ``scipy.optimize.minimize(method=
    "L-BFGS-B")`` fed by :func:`loss_and_gradient` (one compiled pass over
    all rows per evaluation), the best solver for small data sets.

    Stops after ``max_iter`` iterations, ``max_fun`` loss evaluations, or
    when the largest gradient component is below ``tol`` (scipy's gtol).
    The model ends with the solver's final weights. Returns a TrainResult
    with one entry per iteration in ``loss`` (and ``val_loss``/``val_metric``
    when val is given); ``epochs`` counts iterations, ``steps`` loss
    evaluations, ``stop_reason`` is scipy's message when it did not converge
    (None when it did). Arguments as :func:`train`.

    Raises DivergenceError when the solver's weights are not finite.
    """
    import scipy.optimize

    max_iter = positive_int(max_iter, "lbfgs", "max_iter")
    max_fun = positive_int(max_fun, "lbfgs", "max_fun")
    tol = _non_negative(tol, "tol")
    if not isinstance(model, Sequential):
        raise TypeError(f"lbfgs: model must be a fastbp Sequential, got {model!r}")
    if not isinstance(loss, Loss):
        raise TypeError(f"lbfgs: loss must be a fastbp Loss, got {loss!r}")
    plan = fused_plan(model, loss, None)
    if isinstance(plan, str):
        raise ValueError(f"lbfgs: {plan}")
    X, T = _coerce(model, loss, X, T, "training")
    if val is not None:
        val = _coerce(model, loss, val[0], val[1], "validation")
    if metric is None:
        metric = "accuracy" if loss.target == "labels" else "r2"
    if metric not in METRICS:
        raise ValueError(f"lbfgs: metric must be one of {sorted(METRICS)}")
    weights = _sample_weight(sample_weight, X.shape[0])
    l2 = _non_negative(l2, "l2")
    values, labels = _values_and_labels(X, T)
    theta = model.flat_data
    result = TrainResult(metric_name=metric, fused=True)

    def value_and_grad(x):
        theta[...] = x
        result.steps += 1
        # Checked by the warm-up call below; trusted on every later one.
        return fused_loss_and_gradient(
            X, values, labels, plan.model, plan.loss, weights, l2, check=False
        )

    def record(intermediate_result):
        result.loss.append(float(intermediate_result.fun))
        result.epochs += 1
        result.samples += X.shape[0]
        if val is not None:
            theta[...] = intermediate_result.x
            v_loss, v_metric = _evaluate(model, loss, *val, metric)
            result.val_loss.append(v_loss)
            result.val_metric.append(v_metric)
        if callback is not None:
            callback(result.epochs, result)

    with thread_limit(threads):
        check_initial_loss(model, loss, X, T, X.shape[0])
        start = time.perf_counter()
        # Checks the arguments once and compiles (or loads the cache).
        fused_loss_and_gradient(X, values, labels, plan.model, plan.loss, weights, l2)
        result.compile_seconds = time.perf_counter() - start
        start = time.perf_counter()
        res = scipy.optimize.minimize(
            value_and_grad,
            theta.astype(np.float64),
            method="L-BFGS-B",
            jac=True,
            callback=record,
            options={"maxfun": max_fun, "maxiter": max_iter, "gtol": tol},
        )
        result.train_seconds = time.perf_counter() - start
    if not np.all(np.isfinite(res.x)):
        raise DivergenceError(
            "L-BFGS diverged: its weights became NaN or infinite; scale the data",
            result.epochs,
        )
    theta[...] = res.x
    if res.status != 0:
        result.stop_reason = (
            f"L-BFGS-B did not converge (status={res.status}): {res.message}"
        )
    return result


class FusedRunner:
    """Runs epochs of a :class:`FusedPlan` on fixed data (what train uses).

    ``runner(perms, key=-1, first_epoch=0)`` trains one epoch per row of
    perms (an (n_epochs, n_samples) int64 array of row orders, or
    (n_epochs, 0): then the orders :func:`epoch_order` gives for key and
    epochs first_epoch, first_epoch + 1, ..., or the stored order when key is
    -1) and returns the per-epoch losses, NaN from a diverged epoch on.
    X and T must already be checked and cast as train() does.
    """

    def __init__(
        self,
        plan: FusedPlan,
        X: NDArray,
        T: NDArray,
        batch_size: int,
        sample_weight: NDArray | None = None,
        l2: float = 0.0,
        grad_norms: bool = False,
        distributed: bool | str = False,
        sync_every: int = 1,
    ):
        self.plan, self.X, self.batch_size = plan, X, batch_size
        self.distributed, self.sync_every = distributed, sync_every
        #: stats[0]: seconds spent in all-reduce so far (distributed).
        self.stats = np.zeros(1)
        self.T, self.labels = _values_and_labels(X, T)
        self.sample_weight, self.l2, self.track_norms = sample_weight, l2, grad_norms
        #: (n_epochs, n_layers) weight-gradient norms of the last call, when
        #: grad_norms is on.
        self.norms = np.empty((0, 0))

    def warm_up(self) -> None:
        """Zero epochs: compiles (or loads from the cache), changes nothing."""
        self(np.empty((0, 0), np.int64))

    def __call__(self, perms: NDArray, key: int = -1, first_epoch: int = 0) -> NDArray:
        plan = self.plan
        out = np.full(perms.shape[0], np.nan)
        n_layers = plan.model.layout.shape[0]
        self.norms = np.zeros((perms.shape[0], n_layers if self.track_norms else 0))
        plan.optimizer.step_count = train_epochs(
            self.X,
            self.T,
            self.labels,
            perms,
            plan.model,
            plan.loss,
            plan.fused_optimizer(),
            self.batch_size,
            out,
            self.sample_weight,
            self.l2,
            self.norms if self.track_norms else None,
            key,
            first_epoch,
            distributed=self.distributed,
            stats=self.stats,
            sync_every=self.sync_every,
        )
        return out


def _values_and_labels(X: NDArray, T: NDArray) -> tuple[NDArray, NDArray]:
    """(float targets, int64 labels) as the fused kernels take them: one of
    the two is T, the other an empty array."""
    if T.dtype.kind in "iu":  # labels
        return np.empty((0, 0), X.dtype), T
    return T, np.empty(0, np.int64)


# --- the loop ----------------------------------------------------------------


def _coerce(model: Sequential, loss: Loss, X: object, T: object, what: str):
    """X and T checked and cast for model and loss: X (n, in_features) in the
    model dtype; T int64 labels (n,) for a loss whose target is "labels", else
    (n, n_outputs) values in the model dtype."""
    dtype = model.dtype
    X = check_array(
        np.ascontiguousarray(X, dtype=dtype), "train", f"{what} X", dtype=dtype, ndim=2
    )
    if model.in_features is not None and X.shape[1] != model.in_features:
        raise ValueError(
            f"train: {what} X has shape {X.shape} but the model takes "
            f"{model.in_features} features"
        )
    n_out = model.out_features
    if loss.target == "labels":
        T = np.ascontiguousarray(T)
        if T.dtype.kind not in "iu":
            raise TypeError(f"train: {what} labels must be integers, got {T.dtype}")
        T = check_array(
            T.astype(np.int64),
            "train",
            f"{what} labels",
            dtype=np.dtype(np.int64),
            ndim=1,
        )
        if n_out is not None and T.size and (T.min() < 0 or T.max() >= n_out):
            raise ValueError(
                f"train: {what} labels must lie in [0, {n_out}) for a model with "
                f"{n_out} outputs, got values in [{T.min()}, {T.max()}]"
            )
    else:
        T = np.ascontiguousarray(T, dtype=dtype)
        if T.ndim == 1 and n_out == 1:
            T = T.reshape(-1, 1)
        T = check_array(T, "train", f"{what} targets", dtype=dtype, ndim=2)
        if n_out is not None and T.shape[1] != n_out:
            raise ValueError(
                f"train: {what} targets have shape {T.shape} but the model has "
                f"{n_out} outputs; expected ({T.shape[0]}, {n_out})"
            )
    if T.shape[0] != X.shape[0]:
        raise ValueError(
            f"train: {what} X has {X.shape[0]} rows but targets have {T.shape[0]}"
        )
    return X, T


def train(
    model: Sequential,
    loss: Loss,
    optimizer: Optimizer,
    X: object,
    T: object,
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
        count from 1); in the fused path calls arrive per chunk of epochs
    sample_weight : array-like of shape (n_samples,) of finite weights >= 0,
        or None: each batch's loss is the weighted mean sum(w_i l_i) / sum(w_i)
        (fused path only)
    l2 : float >= 0, scikit-learn's alpha: each batch's loss gains
        0.5 * l2 * sum(||W||**2) / (its total weight) over the Linear weights
        (not biases)
    lr_schedule : a :class:`fastbp.schedules.Schedule`, one of the names in
        ``fastbp.schedules.SCHEDULES``, or None (constant); sets
        ``optimizer.lr`` before each epoch
    early_stopping : an :class:`fastbp.schedules.EarlyStopping`, or None
    grad_norms : record each layer's mean weight-gradient norm per epoch in
        ``result.grad_norms`` (computed inside the fused kernel)
    checkpoint : a path, a :class:`fastbp.checkpoint.CheckpointFile` or
        None: write a checkpoint (:mod:`fastbp.checkpoint`; weights,
        optimizer and schedule state, shuffle key, history) there, atomically,
        after every ``checkpoint_every``-th epoch (counted from the run's
        first) and after the last one trained
    checkpoint_every : int >= 1
    resume : a checkpoint's path, a :class:`fastbp.checkpoint.Checkpoint`
        or None: continue that run. ``epochs`` stays the total: epochs
        ``epochs_done + 1`` to ``epochs`` are trained, and the result equals
        a run never interrupted (history included; ``result.start_epoch``
        says where this call began). Pass a model, loss and optimizer built
        as for the first run (fresh, with its initial lr) and the same data
        and settings: anything the checkpoint records that differs is a
        :class:`fastbp.checkpoint.CheckpointError` (a ValueError) naming it,
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
        share of the data (see :func:`fastbp.shard.load_shard`), not the
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
    ------
    DivergenceError when the training loss becomes NaN or infinite.
    CheckpointError (a ValueError) for a checkpoint that cannot be read or
    does not match the run.
    """
    epochs = positive_int(epochs, "train", "epochs")
    batch_size = positive_int(batch_size, "train", "batch_size")
    if not isinstance(model, Sequential):
        raise TypeError(f"train: model must be a fastbp Sequential, got {model!r}")
    if not isinstance(loss, Loss):
        raise TypeError(f"train: loss must be a fastbp Loss, got {loss!r}")
    if not isinstance(optimizer, Optimizer):
        raise TypeError(
            f"train: optimizer must be a fastbp Optimizer, got {optimizer!r}"
        )
    X, T = _coerce(model, loss, X, T, "training")
    if val is not None:
        val = _coerce(model, loss, val[0], val[1], "validation")
    if metric is None:
        metric = "accuracy" if loss.target == "labels" else "r2"
    weights = _sample_weight(sample_weight, X.shape[0])
    l2 = _non_negative(l2, "l2")
    control = epoch_control(
        model, optimizer, lr_schedule, early_stopping, epochs, val is not None, "train"
    )
    plan, result = choose_path(model, loss, optimizer, metric, fuse, "train")
    use_fused = plan is not None
    if weights is not None and not use_fused:
        raise ValueError(
            f"train: sample_weight needs the fused path ({result.layer_path_reason})"
        )
    processes = _processes(comm, use_fused, result)
    if processes > 1 and checkpoint is not None:
        if not isinstance(checkpoint, CheckpointFile):
            checkpoint = CheckpointFile(checkpoint, is_writer=comm.Get_rank() == 0)
    saving = Checkpointing(checkpoint, checkpoint_every, resume, "train")
    key = saving.shuffle_key(shuffle_key(seed) if shuffle else -1, seed)
    if processes > 1:  # every rank starts from rank 0's weights and order
        comm.Bcast(model.flat_data, root=0)
        key = comm.bcast(key, root=0)
    sharded = shard and processes > 1
    epoch_samples = X.shape[0]
    if sharded:
        X, T, weights, batch_size, epoch_samples = _pad_shard(
            comm, X, T, weights, batch_size
        )
        if key >= 0:  # each shard its own order
            key ^= comm.Get_rank()
    n = X.shape[0]
    batch_size = min(batch_size, n)
    steps_per_epoch = -(-n // batch_size)
    sync_every = positive_int(sync_every, "train", "sync_every")
    if processes > 1 and sync_every > 1:
        sync_every = max(
            k for k in range(1, sync_every + 1) if steps_per_epoch % k == 0
        )
        if optimizer.step_count % steps_per_epoch:
            raise ValueError(
                "train: sync_every needs an optimizer whose step count is a "
                "whole number of epochs (a fresh one)"
            )
        result.sync_every = sync_every
    run_info = None  # described only when checkpointing (the runs must match)
    if saving.active:
        run_info = describe_run(
            model, loss, optimizer, control,
            {
                "mode": "in-memory", "batch_size": batch_size, "rows": n,
                "validation_rows": 0 if val is None else len(val[0]), "l2": l2,
                "sample_weight": weights is not None, "shuffle": key >= 0,
                "seed": seed, "shuffle_key": key,
            },
        )  # fmt: skip
    done = saving.start(
        run_info, epochs, model, optimizer, control, result,
        len(linear_layers(model)) if grad_norms else 0,
    )  # fmt: skip

    check_data_range(model.dtype, X, T, "training")
    if val is not None:
        check_data_range(model.dtype, *val, "validation")
    with thread_limit(threads):
        check_initial_loss(model, loss, X, T, batch_size)
        if use_fused:
            distributed = "sharded" if sharded else processes > 1
            run = FusedRunner(
                plan, X, T, batch_size, weights, l2, grad_norms, distributed,
                sync_every if processes > 1 else 1,
            )  # fmt: skip
        else:
            run = LayerRunner(model, loss, optimizer, X, T, batch_size, l2, grad_norms)
        start = time.perf_counter()
        run.warm_up()
        result.compile_seconds = time.perf_counter() - start

        per_call = 1
        if use_fused and val is None and not control.per_epoch:
            per_call = max(1, STEPS_PER_CALL // steps_per_epoch)
            if callback is not None:  # report progress about 20 times
                per_call = min(per_call, max(1, epochs // 20))
        while done < epochs and not saving.finished(epochs):
            count = saving.chunk(done, min(per_call, epochs - done))
            control.before(done + 1, result.samples)
            start = time.perf_counter()
            losses = run(np.empty((count, 0), np.int64), key, done)
            if result.sync_every > 1:  # each rank's loss is its own rows'
                losses = comm.allreduce(losses) / processes
            result.train_seconds += time.perf_counter() - start
            if not all_finite(model.flat_data):
                # The last update of the chunk blew the weights up: its loss,
                # measured before the update, could not show it.
                losses[-1] = np.nan
            finished = losses[np.isfinite(losses)]
            result.loss.extend(finished.tolist())  # floats, ~10 ns each
            if hasattr(optimizer, "lr"):
                result.lr.extend([float(optimizer.lr)] * finished.size)
            if grad_norms:
                result.grad_norms.extend(run.norms[: finished.size].tolist())
            result.epochs = done + finished.size
            result.steps += steps_per_epoch * finished.size
            result.samples += epoch_samples * finished.size
            if finished.size < count:
                raise divergence_error(result.epochs + 1, optimizer)
            done += count
            if val is not None:
                v_loss, v_metric = _evaluate(model, loss, *val, metric)
                if sharded:
                    v_loss, v_metric = mean_over_ranks(
                        comm, len(val[0]), v_loss, v_metric
                    )
                if not math.isfinite(v_loss):
                    raise divergence_error(done, optimizer)
                result.val_loss.append(v_loss)
                result.val_metric.append(v_metric)
            if callback is not None:
                callback(done, result)
            stop = control.after(result)
            saving.after_epoch(
                done, epochs, stop,
                lambda: capture(run_info, model, optimizer, control, result),
            )  # fmt: skip
            if stop:
                break
        control.finish(result)
        if processes > 1:
            result.processes = processes
            result.allreduce_seconds = float(run.stats[0])
        # Weights can stay finite yet so large that outputs overflow: check the
        # final model on one batch (the epoch losses were taken before updates).
        if not math.isfinite(_evaluate(model, loss, X[:batch_size], T[:batch_size])[0]):
            raise divergence_error(result.epochs, optimizer)
    return result


def _pad_shard(comm, X, T, weights, batch_size):
    """A shard ready for sharded data-parallel training: (X, T, weights,
    local batch, rows over all ranks). The local batch is ceil(batch_size /
    N); X and T gain zero rows of weight 0 up to the largest shard's number
    of local batches, so every rank runs the same number of steps (each
    step all-reduces)."""
    local = -(-batch_size // comm.Get_size())
    n = X.shape[0]
    counts = comm.allgather(n)
    rows = max(-(-c // local) for c in counts) * local
    if weights is None:
        weights = np.ones(n)
    pad = rows - n
    X = np.concatenate([X, np.zeros((pad, *X.shape[1:]), X.dtype)])
    T = np.concatenate([T, np.zeros((pad, *T.shape[1:]), T.dtype)])
    weights = np.concatenate([weights, np.zeros(pad)])
    return X, T, weights, local, sum(counts)


def mean_over_ranks(comm, rows, loss_value, metric_value):
    """Row-weighted means over the ranks of each rank's (loss, metric)."""
    figures = comm.allgather((rows, loss_value, metric_value))
    total = sum(r for r, _, _ in figures)
    return tuple(
        sum(r * f[i] for r, *f in figures) / total if total else float("nan")
        for i in (0, 1)
    )


def _processes(comm: object | None, use_fused: bool, result: TrainResult) -> int:
    """The number of MPI processes comm spans (1 for None), after checking
    that it is MPI_COMM_WORLD, which the kernel's all-reduce uses."""
    if comm is None:
        return 1
    try:
        from mpi4py import MPI
    except ImportError:
        raise ValueError(
            "train: comm needs mpi4py (pip install 'fastbp[mpi]')"
        ) from None
    if not isinstance(comm, MPI.Comm) or comm.Compare(MPI.COMM_WORLD) not in (
        MPI.IDENT,
        MPI.CONGRUENT,
    ):
        raise ValueError(
            "train: comm must be mpi4py.MPI.COMM_WORLD (the fused kernel "
            "all-reduces over MPI_COMM_WORLD)"
        )
    size = comm.Get_size()
    if size > 1 and not use_fused:
        raise ValueError(
            f"train: comm needs the fused path ({result.layer_path_reason})"
        )
    return size


def shuffle_key(seed: int | None) -> int:
    """The shuffle key of a seed, in [0, 2**63): a hash of the seed
    (``numpy.random.SeedSequence``), or fresh entropy for None."""
    state = np.random.SeedSequence(seed).generate_state(1, np.uint64)[0]
    return int(state >> np.uint64(1))


def epoch_order(key: int, epoch: int, n: int) -> NDArray:
    """The row order (a permutation of 0..n-1, int64) that training visits
    in epoch ``epoch`` (from 0) for shuffle key ``key``: the same function
    the fused kernel runs (:func:`fastbp.kernels.epoch.shuffle_rows`)."""
    order = np.empty(n, np.int64)
    shuffle_rows(order, key, epoch)
    return order


def epoch_control(
    model: Sequential,
    optimizer: Optimizer,
    lr_schedule: Schedule | str | None,
    early_stopping: EarlyStopping | None,
    epochs: int,
    has_val: bool,
    who: str,
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


def _sample_weight(sample_weight: object | None, n: int) -> NDArray | None:
    if sample_weight is None:
        return None
    w = np.ascontiguousarray(sample_weight, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"train: sample_weight must have shape ({n},), got {w.shape}")
    if not np.all(np.isfinite(w)) or w.min() < 0 or w.sum() <= 0:
        raise ValueError("train: sample_weight must be finite, >= 0 and not all 0")
    return w


def _non_negative(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise TypeError(f"train: {name} must be a number, got {value!r}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"train: {name} must be finite and >= 0, got {value!r}")
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
    if math.isfinite(_evaluate(model, loss, X[:batch_size], T[:batch_size])[0]):
        return
    largest = max(float(np.max(np.abs(X))), float(np.max(np.abs(T))))
    raise DivergenceError(
        "the loss is NaN or infinite before any training step: the data is too "
        f"large for {model.dtype} arithmetic (largest absolute value "
        f"{largest:.3g}); scale the inputs and targets down",
        0,
        before_training=True,
    )


class LayerRunner:
    """The layer path on fixed data: ``runner(perms)`` trains one epoch per
    row of perms (row orders, or (n_epochs, 0) for the stored order) through
    the public layer API, one Python iteration per mini-batch, and returns
    the per-epoch losses, NaN from a diverged epoch on (as FusedRunner)."""

    def __init__(
        self, model, loss, optimizer, X, T, batch_size, l2=0.0, grad_norms=False
    ):
        self.model, self.loss, self.optimizer = model, loss, optimizer
        self.X, self.T, self.batch_size = X, T, batch_size
        self.xbuf = np.empty((batch_size, X.shape[1]), X.dtype)
        self.tbuf = np.empty((batch_size, *T.shape[1:]), T.dtype)
        self.l2, self.track_norms = l2, grad_norms
        self.weights = [layer.weight for layer in linear_layers(model)]
        self.norms = np.empty((0, 0))

    def _penalize(self, rows: int, norms: NDArray | None) -> float:
        """Adds l2 * W / rows to each Linear weight's gradient (returning the
        penalty 0.5 * l2 * sum(||W||**2) / rows) and each gradient's norm to
        norms, as the fused kernel does."""
        penalty = 0.0
        decay = self.l2 / rows
        for i, weight in enumerate(self.weights):
            if decay:
                weight.grad += weight.data.dtype.type(decay) * weight.data
                w64 = weight.data.astype(np.float64).ravel()
                penalty += 0.5 * decay * float(w64 @ w64)
            if norms is not None:
                norms[i] += float(np.linalg.norm(weight.grad.astype(np.float64)))
        return penalty

    def warm_up(self) -> None:
        """One step on the first batch compiles every kernel the loop uses;
        the parameters, optimizer state and step count are restored after."""
        model, loss, optimizer = self.model, self.loss, self.optimizer
        params = optimizer.params
        saved = [p.data.copy() for p in params]
        state, count = optimizer.state.copy(), optimizer.step_count
        m = min(self.batch_size, self.X.shape[0])
        loss.forward(model.forward(self.X[:m]), self.T[:m])
        model.backward(loss.backward())
        optimizer.step()
        for p, data in zip(params, saved, strict=True):
            p.data[...] = data
        optimizer.state[...] = state
        optimizer.step_count = count

    def __call__(self, perms: NDArray, key: int = -1, first_epoch: int = 0) -> NDArray:
        model, loss, optimizer = self.model, self.loss, self.optimizer
        X, T, bs = self.X, self.T, self.batch_size
        n = X.shape[0]
        if perms.shape[1] == 0 and key >= 0:
            perms = np.stack(
                [epoch_order(key, first_epoch + e, n) for e in range(perms.shape[0])]
            ).reshape(perms.shape[0], n)
        out = np.full(perms.shape[0], np.nan)
        self.norms = np.zeros(
            (perms.shape[0], len(self.weights) if self.track_norms else 0)
        )
        for e in range(perms.shape[0]):
            total = 0.0
            norms = self.norms[e] if self.track_norms else None
            for s in range(0, n, bs):
                m = min(bs, n - s)
                if perms.shape[1]:
                    idx = perms[e, s : s + m]
                    xb = np.take(X, idx, axis=0, out=self.xbuf[:m])
                    tb = np.take(T, idx, axis=0, out=self.tbuf[:m])
                else:
                    xb, tb = X[s : s + m], T[s : s + m]
                value = loss.forward(model.forward(xb), tb)
                if not math.isfinite(value):
                    return out
                model.backward(loss.backward())
                if self.l2 or norms is not None:
                    value += self._penalize(m, norms)
                optimizer.step()
                total += batch_loss_share(loss, value, m)
            out[e] = total / n
            if norms is not None:
                norms /= -(-n // bs)
        return out


def linear_layers(model: Sequential) -> list[Linear]:
    """The Linear layers of model, nested Sequentials included, in order."""
    found = []
    for layer in model.layers:
        if isinstance(layer, Sequential):
            found.extend(linear_layers(layer))
        elif isinstance(layer, Linear):
            found.append(layer)
    return found
