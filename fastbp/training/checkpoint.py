"""Checkpoints: everything a training run needs to go on where it stopped.

The :class:`Checkpointing` callback (``fastbp.train(checkpoint=PATH,
checkpoint_every=K, resume=PATH)``, in memory or streamed) writes a
checkpoint every K epochs and at the end, and continues one: ``epochs`` is
always the total, so the resumed run trains epochs ``epochs_done + 1`` to
``epochs`` and ends with the weights, history, learning rates and
early-stopping decisions of a run that was never interrupted (bit for bit on
the same machine and training path; the tests hold float64 runs to 1e-12).

What a resumed run continues from: the weights; the optimizer's state
vectors, step count and current learning rate; the shuffle key (epoch e
visits the rows in ``epoch_order(key, e, n)``, so the key and the epoch
count are the whole shuffling state; streamed training adds its buffer's
random generator); the schedule's and early stopping's state (best score,
its epoch and weights, epochs without improvement, the adaptive rate); and
the per-epoch history. What must not change, and is checked against the
resuming run (:meth:`Checkpoint.check`): the architecture, dtype, loss,
optimizer and its hyperparameters (the initial learning rate included),
batch size, row counts, L2 penalty, shuffling and seed, schedule and
early-stopping settings. Anything else is a :class:`CheckpointError` naming
the file and the first thing that differs.

File format: an uncompressed NumPy ``.npz`` archive of numeric and text
arrays only, so loading never unpickles anything:

=======================  ====================================================
entry                    content
=======================  ====================================================
format                   "fastbp-checkpoint"
format_version           1 (integer)
fastbp_version           version of fastbp that wrote the file
run                      JSON: what was trained and how (:func:`describe_run`:
                         architecture, dtype, loss, optimizer, training,
                         control); must equal the resuming run's
progress                 JSON: epochs_done, step_count, lr (the current
                         rate), control (``EpochControl.state()``), steps,
                         samples, train_seconds, stop_reason, rng (streamed
                         training's generator state, else null)
weights                  (n_parameters,), the model dtype: ``model.flat_data``
optimizer_state          (n_state, n_elements), the model dtype:
                         ``optimizer.state``
best_weights             (n_parameters,), the best epoch's weights; only with
                         early stopping's restore_best
history/loss             (epochs_done,) float64, mean training loss per epoch
history/val_loss         (epochs_done,) or (0,) without validation, float64
history/val_metric       same
history/lr               (epochs_done,) or (0,), float64
history/grad_norms       (epochs_done, n_layers) or (0, 0), float64
=======================  ====================================================

Writing is atomic (:func:`fastbp._files.atomic_file`: a temporary file in the
same folder, synced, then renamed over the target), so a run killed while
writing, or a process that dies, leaves the previous checkpoint whole.
Training with several processes writes through a :class:`CheckpointFile`
whose ``is_writer`` is true in one process only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from .._files import atomic_file, open_npz, unwritable_reason
from .._validate import positive_int
from .._version import __version__
from ..nn.parts import part_of
from .callbacks import Callback

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "Checkpoint",
    "CheckpointError",
    "CheckpointFile",
    "Checkpointing",
    "capture",
    "describe_run",
    "load_checkpoint",
]

FORMAT = "fastbp-checkpoint"
FORMAT_VERSION = 1
_HISTORY = ("loss", "val_loss", "val_metric", "lr", "grad_norms")
_ARRAYS = ("weights", "optimizer_state", "best_weights")
_PROGRESS = {
    "epochs_done": int,
    "step_count": int,
    "lr": (float, type(None)),
    "control": dict,
    "steps": int,
    "samples": int,
    "train_seconds": float,
    "stop_reason": (str, type(None)),
    "rng": (dict, type(None)),
}
#: EpochControl.state() entries and their JSON types.
_CONTROL = {
    "base_lr": (float, type(None)),
    "best": (float, type(None)),
    "best_epoch": (int, type(None)),
    "count": int,
    "schedule": (dict, type(None)),
}
_RUN_KEYS = ("architecture", "dtype", "loss", "optimizer", "training", "control")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or does not belong to the run that
    would resume it; the message is one line naming the file and the fault."""


@dataclass
class Checkpoint:
    """The state of a training run after ``epochs_done`` epochs.

    Attributes
    ----------
    run : dict
        JSON data saying what is trained and how (:func:`describe_run`).
    epochs_done : int
        Epochs trained; a resumed run starts with epoch epochs_done + 1.
    weights : ndarray of shape (n_parameters,), float32 or float64
        ``model.flat_data``.
    optimizer_state : ndarray of shape (n_state, n_elements), the same dtype
        ``optimizer.state`` (momentum buffer, Adam's moments).
    step_count : int
        ``optimizer.step_count``: updates done (Adam's bias correction).
    lr : float or None
        The optimizer's current learning rate (None without ``lr``).
    control : dict
        :meth:`fastbp.schedules.EpochControl.state`.
    best_weights : ndarray of shape (n_parameters,) or None
        The best epoch's weights, kept for early stopping's restore_best.
    history : dict of ndarray, float64
        "loss", "val_loss", "val_metric", "lr": (epochs_done,) or (0,) when
        not recorded; "grad_norms": (epochs_done, n_layers) or (0, 0).
    steps, samples : int
        Training steps and rows trained on, all epochs.
    train_seconds : float
        Training time of all epochs so far.
    stop_reason : str or None
        Why training ended before its last epoch (early stopping), else None.
    rng_state : dict or None
        Streamed training's shuffle-buffer generator
        (``numpy.random.Generator.bit_generator.state``), else None.
    path : str or None
        The file it was read from or last written to (for messages).
    """

    run: dict
    epochs_done: int
    weights: NDArray
    optimizer_state: NDArray
    step_count: int
    lr: float | None
    control: dict
    best_weights: NDArray | None = None
    history: dict[str, NDArray] = field(default_factory=dict)
    steps: int = 0
    samples: int = 0
    train_seconds: float = 0.0
    stop_reason: str | None = None
    rng_state: dict | None = None
    path: str | None = None

    # --- writing and reading -------------------------------------------------

    def save(self, path: str | os.PathLike) -> None:
        """Write the checkpoint to path (used exactly as given), atomically:
        an existing file is replaced only once the new one is complete, and a
        failure leaves it as it was and no temporary file behind."""
        progress = {
            "epochs_done": self.epochs_done,
            "step_count": self.step_count,
            "lr": self.lr,
            "control": self.control,
            "steps": self.steps,
            "samples": self.samples,
            "train_seconds": self.train_seconds,
            "stop_reason": self.stop_reason,
            "rng": self.rng_state,
        }
        arrays = {
            "format": np.array(FORMAT),
            "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
            "fastbp_version": np.array(__version__),
            "run": np.array(json.dumps(self.run, allow_nan=False)),
            "progress": np.array(json.dumps(progress, allow_nan=False)),
            "weights": self.weights,
            "optimizer_state": self.optimizer_state,
        }
        if self.best_weights is not None:
            arrays["best_weights"] = self.best_weights
        for name in _HISTORY:
            arrays["history/" + name] = _history_array(self.history, name)
        target = os.fspath(path)
        # A file object, not a name: np.savez would append ".npz" to a name.
        with atomic_file(target) as f:
            np.savez(f, **arrays)
        self.path = target

    @classmethod
    def load(cls, path: str | os.PathLike) -> Checkpoint:
        """Read a checkpoint written by :meth:`save`, every entry checked.

        Raises
        ------
        CheckpointError
            The file is missing, unreadable, not a zip/npz archive, truncated
            or corrupt, not a fastbp checkpoint, of another format version,
            or an entry is missing, unexpected, pickled or malformed (the
            message names the file and the entry).
        """
        path = os.fspath(path)
        with open_npz(path, CheckpointError, "a fastbp checkpoint") as r:
            r.header(FORMAT, FORMAT_VERSION, "a fastbp checkpoint")
            known = {"format", "format_version", "fastbp_version", "run", "progress"}
            known |= {*_ARRAYS, *("history/" + name for name in _HISTORY)}
            for key in r.files:
                if key not in known:
                    raise r.fail(f"unexpected entry {key!r}")
            r.text("fastbp_version")
            run, progress = r.json("run"), r.json("progress")
            if not (isinstance(run, dict) and all(k in run for k in _RUN_KEYS)):
                raise r.fail(f"entry 'run' must be a JSON object with {_RUN_KEYS}")
            if not isinstance(progress, dict):
                raise r.fail("entry 'progress' must be a JSON object")
            _check_fields(r, "progress", progress, _PROGRESS)
            _check_fields(r, "control", progress["control"], _CONTROL)
            done = progress["epochs_done"]
            if done < 1 or progress["step_count"] < 0:
                raise r.fail("progress: epochs_done must be >= 1, step_count >= 0")
            dtype = run["dtype"]
            if dtype not in ("float32", "float64"):
                raise r.fail(f"dtype must be 'float32' or 'float64', got {dtype!r}")
            weights = _entry(r, "weights", dtype, 1)
            state = _entry(r, "optimizer_state", dtype, 2)
            best = None
            if "best_weights" in r.files:
                best = _entry(r, "best_weights", dtype, 1)
                if best.shape != weights.shape:
                    raise r.fail("best_weights and weights differ in shape")
            if state.shape[0] and state.shape[1] != weights.size:
                raise r.fail(
                    f"optimizer_state has shape {state.shape}, the model "
                    f"{weights.size} parameters"
                )
            history = {}
            for name in _HISTORY:
                key = "history/" + name
                arr = _entry(r, key, "float64", 2 if name == "grad_norms" else 1)
                if arr.shape[0] not in (0, done):
                    raise r.fail(f"entry {key!r} has {arr.shape[0]} rows, not {done}")
                history[name] = arr
            if history["loss"].shape[0] != done:
                raise r.fail(f"entry 'history/loss' has no value for each of {done}")
        return cls(
            run=run,
            epochs_done=done,
            weights=weights,
            optimizer_state=state,
            step_count=progress["step_count"],
            lr=progress["lr"],
            control=progress["control"],
            best_weights=best,
            history=history,
            steps=progress["steps"],
            samples=progress["samples"],
            train_seconds=progress["train_seconds"],
            stop_reason=progress["stop_reason"],
            rng_state=progress["rng"],
            path=path,
        )

    # --- resuming --------------------------------------------------------------

    @property
    def shuffle_key(self) -> int:
        """The shuffle key the run was trained with (-1: no shuffling)."""
        return int(self.run["training"].get("shuffle_key", -1))

    def finished(self, epochs: int) -> bool:
        """True when nothing is left to train for a run of ``epochs`` in all:
        that many are done, or early stopping ended the run."""
        return self.epochs_done >= epochs or self.stop_reason is not None

    def check(self, run: dict, epochs: int, model, optimizer) -> None:
        """CheckpointError unless this checkpoint can resume ``run`` (the
        resuming run's :func:`describe_run`) of ``epochs`` epochs in all, with
        model (a Sequential) and optimizer: one line naming the file and the
        first setting that differs, or the epochs."""
        where = self.path or "checkpoint"
        for key in _RUN_KEYS:
            if key in ("training", "control"):
                continue
            _compare(where, _LABELS[key], self.run[key], run[key])
        for group in ("training", "control"):
            mine, theirs = self.run[group], run[group]
            for key in dict.fromkeys([*mine, *theirs]):
                if key == "seed":
                    continue  # compared through shuffle_key, which it names
                a, b = mine.get(key), theirs.get(key)
                if key == "shuffle_key" and a != b:
                    raise CheckpointError(
                        f"{where}: the checkpoint was shuffled with seed "
                        f"{mine.get('seed')!r}, this run with seed "
                        f"{theirs.get('seed')!r}"
                    )
                _compare(where, _LABELS.get(key, key.replace("_", " ")), a, b)
        if model.flat_data.shape != self.weights.shape:
            raise CheckpointError(
                f"{where}: the checkpoint holds {self.weights.size} parameters, "
                f"the model has {model.flat_data.size}"
            )
        if optimizer.state.shape != self.optimizer_state.shape:
            raise CheckpointError(
                f"{where}: the optimizer state has shape "
                f"{self.optimizer_state.shape} in the checkpoint, "
                f"{optimizer.state.shape} here"
            )
        if self.epochs_done > epochs:
            raise CheckpointError(
                f"{where}: the checkpoint has {self.epochs_done} epochs done, "
                f"more than the {epochs} asked for (epochs is the total, not "
                "the number to add)"
            )

    def restore(self, model, optimizer, control, result, grad_norm_layers=0) -> int:
        """Put the run back as it was: model.flat_data, the optimizer's state,
        step count and lr, the EpochControl's state and the TrainResult's
        history and counters (``result.start_epoch`` = epochs_done). The
        gradient norms are kept when grad_norm_layers > 0 (they are recorded
        now; epochs the checkpoint holds none for get rows of NaN), dropped
        otherwise. Returns epochs_done.
        Call :meth:`check` first."""
        model.flat_data[...] = self.weights
        optimizer.state[...] = self.optimizer_state
        optimizer.step_count = self.step_count
        if self.lr is not None:
            optimizer.lr = self.lr
        try:
            control.load_state(self.control, self.best_weights)
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(
                f"{self.path or 'checkpoint'}: the schedule state is malformed "
                f"({exc!r})"
            ) from None
        h = self.history
        result.loss = h["loss"]
        result.val_loss = h["val_loss"]
        result.val_metric = h["val_metric"]
        result.lr = h["lr"]
        norms = h["grad_norms"]
        if not grad_norm_layers:  # not recorded now: none for earlier epochs
            norms = norms[:0]
        elif norms.shape[0] != self.epochs_done:
            norms = np.full((self.epochs_done, grad_norm_layers), np.nan)
        result.grad_norms = norms
        result.epochs = result.start_epoch = self.epochs_done
        result.steps, result.samples = self.steps, self.samples
        result.train_seconds = self.train_seconds
        result.stop_reason = self.stop_reason
        return self.epochs_done


_LABELS = {
    "architecture": "model",
    "dtype": "dtype",
    "loss": "loss",
    "optimizer": "optimizer",
    "mode": "training mode",
    "rows": "number of training rows",
    "validation_rows": "number of validation rows",
    "lr_schedule": "lr schedule",
    "early_stopping": "early stopping",
}


def _compare(where: str, label: str, a: object, b: object) -> None:
    """CheckpointError naming label (and the first differing setting of two
    configs of one type) when a (the checkpoint's) differs from b."""
    if a == b:
        return
    if isinstance(a, dict) and isinstance(b, dict) and a.get("type") == b.get("type"):
        for key in dict.fromkeys([*a, *b]):
            if a.get(key) != b.get(key):
                label, a, b = f"{label} {key}", a.get(key), b.get(key)
                break
    raise CheckpointError(
        f"{where}: does not match this run: {label} is {_show(a)} in the "
        f"checkpoint, {_show(b)} here"
    )


def _show(value: object) -> str:
    """A config value on one line: "linear(2,8) tanh linear(8,1)" for an
    architecture, "Adam(lr=0.01, ...)" for a typed config, else JSON."""
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return " ".join(_show(v) for v in value) or "[]"
    if isinstance(value, dict):
        if value.get("type") == "linear":
            return f"linear({value.get('in_features')},{value.get('out_features')})"
        rest = ", ".join(f"{k}={v!r}" for k, v in value.items() if k != "type")
        name = value.get("type", "")
        return f"{name}({rest})" if name and rest else name or f"({rest})"
    if value is None:
        return "none"
    return value if isinstance(value, str) else json.dumps(value)


def _check_fields(r, what: str, data: dict, kinds: dict) -> None:
    """Each key of kinds in data, of its JSON type (an integer is taken for
    a float, in place); else r.fail naming it."""
    for key, kind in kinds.items():
        value = data.get(key, ...)
        if float in (kind if isinstance(kind, tuple) else (kind,)):
            if isinstance(value, int) and not isinstance(value, bool):
                value = data[key] = float(value)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise r.fail(f"{what} entry {key!r} is missing or malformed")


def _entry(r, key: str, dtype: str, ndim: int) -> NDArray:
    """Entry key as an ndim-dimensional array of dtype with finite values."""
    arr = r.array(key)
    if arr.ndim != ndim or arr.dtype != np.dtype(dtype):
        raise r.fail(
            f"entry {key!r} must be a {ndim}-d {dtype} array, got {arr.dtype} of "
            f"shape {arr.shape}"
        )
    if key in _ARRAYS and not np.all(np.isfinite(arr)):
        raise r.fail(f"entry {key!r} contains NaN or infinity")
    return arr


def _history_array(history: dict, name: str) -> NDArray:
    """history[name] as float64 (grad_norms 2-d, (0, 0) when empty)."""
    arr = np.asarray(history.get(name, ()), dtype=np.float64)
    if name == "grad_norms" and arr.size == 0:
        arr = arr.reshape(0, 0)
    return arr


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """:meth:`Checkpoint.load`."""
    return Checkpoint.load(path)


# --- what a run is -------------------------------------------------------------


def describe_run(model, loss, optimizer, control, training: dict) -> dict:
    """What a training run is, as the JSON data a checkpoint stores and a
    resuming run must match.

    Parameters
    ----------
    model : Sequential
        Described by :meth:`Sequential.architecture` (layers without a
        registered description by class name and parameter shapes), and
        its dtype.
    loss, optimizer : the run's Loss and Optimizer
        By registered name (else class name) and hyperparameters; the
        optimizer's ``lr`` is ``control.base_lr``, the rate the run started
        with, since a schedule changes the current one.
    control : EpochControl
        Its :meth:`~EpochControl.config` (schedule and early stopping).
    training : dict
        JSON data about the data and loop: ``mode`` ("in-memory" or
        "streamed"), ``batch_size``, ``rows``, ``validation_rows``, ``l2``,
        ``sample_weight`` (given or not), ``shuffle``, ``seed``,
        ``shuffle_key``, and for streaming ``shuffle_buffer``.
    """
    opt = _part_config(optimizer)
    if "lr" in opt or getattr(optimizer, "lr", None) is not None:
        opt["lr"] = control.base_lr
    run = {
        "architecture": _architecture(model),
        "dtype": model.flat_data.dtype.name,
        "loss": _part_config(loss),
        "optimizer": opt,
        "training": training,
        "control": control.config(),
    }
    # As it reads back from a file: tuples become lists, NumPy scalars numbers.
    return json.loads(json.dumps(run, default=_plain, allow_nan=False))


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} {value!r} is not JSON data")


def _part_config(obj: object) -> dict:
    part = part_of(obj)
    if part is None:
        return {"type": type(obj).__qualname__}
    return {"type": part.name, **part.hyperparameters(obj)}


def _architecture(model) -> list[dict]:
    try:
        return model.architecture()
    except TypeError:  # a layer of the user's own: its class and shapes
        return [
            {
                "type": type(layer).__qualname__,
                "shapes": [list(p.data.shape) for p in layer.parameters()],
            }
            for layer in model.layers
        ]


# --- writing during training -----------------------------------------------------


class CheckpointFile:
    """Where a training run writes its checkpoints, and whether this process
    writes them.

    Parameters
    ----------
    path : str or path-like
        The checkpoint file, replaced atomically at each write.
    is_writer : bool
        False in a process that trains in step with another that writes (an
        MPI rank other than 0): it builds and writes nothing.
    """

    def __init__(self, path: str | os.PathLike, *, is_writer: bool = True) -> None:
        self.path = os.fspath(path)
        self.is_writer = bool(is_writer)

    def __repr__(self) -> str:
        return f"CheckpointFile({self.path!r}, is_writer={self.is_writer})"

    def write(self, make: Callable[[], Checkpoint]) -> None:
        """Save the checkpoint ``make()`` builds, if this process writes."""
        if self.is_writer:
            make().save(self.path)


class Checkpointing(Callback):
    """Checkpoints as a training callback: resume where a checkpoint ended,
    keep each call of the fused kernel within one checkpoint interval, and
    write a checkpoint every ``every`` epochs and at the end.

    Parameters
    ----------
    target : str, path-like, CheckpointFile or None
        Where to write (a path must be writable: ValueError).
    every : int >= 1
        Epochs between checkpoints (counted from the first epoch of the run,
        so a resumed run writes at the same epochs).
    resume : str, path-like, Checkpoint or None
        The checkpoint to continue (a path is read now: CheckpointError).
        It must describe the same run (architecture, data, settings: see
        :meth:`Checkpoint.check`); with ``seed=None`` its shuffle key is
        used. One whose run is complete, or ended by early stopping, trains
        nothing: the model gets its final weights.

    Put it after the callbacks whose state it saves (``fastbp.train``
    places it last): it writes what the epoch's other callbacks decided.
    """

    def __init__(self, target=None, every: int = 1, resume=None) -> None:
        self.every = positive_int(every, "checkpoint", "checkpoint_every")
        if target is None or isinstance(target, CheckpointFile):
            self.file = target
        elif isinstance(target, str | os.PathLike):
            self.file = CheckpointFile(target)
            reason = unwritable_reason(self.file.path)
            if reason:
                raise ValueError(f"checkpoint: {reason}")
        else:
            raise TypeError(
                f"checkpoint must be a path or a CheckpointFile, got {target!r}"
            )
        if resume is None or isinstance(resume, Checkpoint):
            self.resumed = resume
        elif isinstance(resume, str | os.PathLike):
            self.resumed = Checkpoint.load(resume)
        else:
            raise TypeError(f"resume must be a path or a Checkpoint, got {resume!r}")
        self.run_info: dict | None = None

    def on_train_begin(self, run) -> None:
        """Adopt the checkpoint's shuffle key (seed None), check it against
        the run and restore it."""
        ckpt = self.resumed
        if ckpt is not None and run.seed is None and run.shuffle_key >= 0:
            if ckpt.shuffle_key >= 0:  # fresh entropy would shuffle otherwise
                run.shuffle_key = ckpt.shuffle_key
        self.run_info = run.describe()
        if ckpt is None:
            return
        ckpt.check(self.run_info, run.epochs, run.model, run.optimizer)
        layers = run.grad_norm_layers
        run.epochs_done = ckpt.restore(
            run.model, run.optimizer, run.control, run.result, layers
        )
        run.data.load_state(ckpt.rng_state if run.epochs_done else None)
        if ckpt.finished(run.epochs):
            run.stop(ckpt.stop_reason)

    def epochs_until_next_call(self, run) -> int | None:
        """Up to the next checkpoint epoch (a multiple of every)."""
        if self.file is None:
            return None
        return self.every - run.epochs_done % self.every

    def on_epoch_end(self, run) -> None:
        """Write when the epoch is a checkpoint epoch, the last one, or
        training stops there."""
        done = run.epochs_done
        if self.file is not None and (
            run.stopped or done >= run.epochs or done % self.every == 0
        ):
            self.file.write(
                lambda: capture(
                    self.run_info, run.model, run.optimizer, run.control,
                    run.result, run.data.state(),
                )
            )  # fmt: skip


def capture(run, model, optimizer, control, result, rng_state=None) -> Checkpoint:
    """The Checkpoint of a run now (after an epoch): copies of the weights,
    the optimizer state and the best weights, the history as arrays."""
    norms = result.history_array("grad_norms")
    history = {
        name: result.history_array(name).copy()
        for name in ("loss", "val_loss", "val_metric", "lr")
    }
    history["grad_norms"] = norms.reshape(len(norms), -1 if len(norms) else 0).copy()
    lr = getattr(optimizer, "lr", None)
    best = control.best_weights
    return Checkpoint(
        run=run,
        epochs_done=result.epochs,
        weights=model.flat_data.copy(),
        optimizer_state=optimizer.state.copy(),
        step_count=int(optimizer.step_count),
        lr=None if lr is None else float(lr),
        control=control.state(),
        best_weights=None if best is None else best.copy(),
        history=history,
        steps=int(result.steps),
        samples=int(result.samples),
        train_seconds=float(result.train_seconds),
        stop_reason=result.stop_reason,
        rng_state=rng_state,
    )
