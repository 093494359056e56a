"""``fastbp train``'s data, loaded for one run: the XOR set or a table read
into memory (a rank's shard under MPI), or a table streamed from disk.

:func:`load` returns a :class:`TableJob` or a :class:`StreamJob`, which
answer the same questions: the data source the loop trains on, its rows,
features, task and coding, how to save a model trained on it, and the final
figures the summary reports. Errors in the data are one-line InputErrors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..progress import progress as progress_bar
from .config import MpiWorld, TrainConfig
from .errors import InputError, data_error, warnings_to_stderr

__all__ = ["load", "TableJob", "StreamJob"]


@dataclass
class TableJob:
    """A table (or XOR) in memory, prepared for one loss: ``prepared`` is a
    :class:`fastbp.data.problem.Prepared`; under --shard this rank's rows,
    ``n_train``/``n_val`` counting every rank's."""

    name: str
    prepared: object
    n_train: int
    n_val: int
    sharded: bool = False
    dropped: int = 0
    streamed = False

    @property
    def plan(self):
        """The column plan (None for XOR and --strict)."""
        return self.problem.plan

    @property
    def loss_scale(self) -> float:
        """Losses on scaled targets times this are in the target's units."""
        return self.prepared.loss_scale

    @property
    def problem(self):
        return self.prepared.problem

    @property
    def task(self) -> str:
        return self.problem.task

    @property
    def n_features(self) -> int:
        return self.problem.n_features

    @property
    def n_outputs(self) -> int:
        return self.prepared.n_outputs

    @property
    def loss(self) -> str:
        return self.prepared.loss

    @property
    def metric(self) -> str:
        return self.prepared.metric

    @property
    def local_rows(self) -> int:
        """Training rows in this process (a shard's, under --shard)."""
        return len(self.prepared.X_train)

    def source(self):
        """The in-memory data source of the training loop."""
        from ..training.loop import InMemory

        p = self.prepared
        return InMemory(p.X_train, p.T_train, val=p.validation)

    def full_batch(self):
        """(X, T, validation) for L-BFGS."""
        p = self.prepared
        return p.X_train, p.T_train, p.validation

    def save(self, path: str, model, extra: dict) -> None:
        self.prepared.save(path, model, extra)

    def final_figures(self, model, loss, result, strategy) -> tuple[float, float]:
        """(loss, metric) of the trained model over the training rows (the
        means over every rank's rows under --shard)."""
        from ..training.api import evaluate

        p = self.prepared
        value, metric = evaluate(model, loss, p.X_train, p.T_train, p.metric)
        return strategy.mean_over_ranks(len(p.X_train), value * p.loss_scale, metric)


@dataclass
class StreamJob:
    """A table read again every epoch (--stream): ``stats`` from the first
    pass (:func:`fastbp.data.stream.scan`)."""

    name: str
    source_fn: object
    stats: object
    loss: str
    n_outputs: int
    metric: str
    shuffle_buffer: int
    streamed = True
    sharded = False

    @property
    def plan(self):
        return self.stats.plan

    @property
    def dropped(self) -> int:
        return self.stats.dropped

    @property
    def problem(self):
        return self.stats.prepared(self.loss).problem

    @property
    def prepared(self):
        return self.stats.prepared(self.loss)

    @property
    def loss_scale(self) -> float:
        scale = self.stats.target_scale
        return 1.0 if scale is None else scale[1] ** 2

    @property
    def task(self) -> str:
        return self.stats.task

    @property
    def n_features(self) -> int:
        return self.stats.n_features

    @property
    def n_train(self) -> int:
        return self.stats.n_train

    @property
    def n_val(self) -> int:
        return self.stats.n_val

    local_rows = n_train

    def source(self):
        from ..data.stream import Streamed

        return Streamed(self.source_fn, self.stats, shuffle_buffer=self.shuffle_buffer)

    def save(self, path: str, model, extra: dict) -> None:
        self.stats.save(path, model, self.loss, extra)

    def final_figures(self, model, loss, result, strategy) -> tuple[float, None]:
        """(the last epoch's mean training loss, None): the streamed table is
        not read again to score the final model on it."""
        last = result.loss[-1] if result.loss else math.nan
        return last * self.loss_scale, None


def load(config: TrainConfig, world: MpiWorld, out) -> TableJob | StreamJob:
    """The run's data, read and prepared for its loss."""
    _check_data_path(config)
    if config.stream:
        return _stream(config)
    if config.shard:
        return _shard(config, world)
    from ..data.loading import DataError
    from ..data.problem import Problem

    if config.xor:
        problem = Problem.xor()
    elif not config.strict:
        return _raw(config, out)
    else:
        try:
            with (
                warnings_to_stderr(),
                progress_bar(
                    desc="loading", enabled=not config.quiet, stream=out
                ) as bar,
            ):
                problem = Problem.from_file(
                    config.data, target=config.target, task=config.task,
                    dtype=config.dtype, format=config.data_format, progress=bar,
                )  # fmt: skip
        except (DataError, ValueError) as exc:  # ValueError: unknown file type
            raise data_error(exc) from None
    loss = _loss_for(config.loss, problem.task, problem.default_loss)
    prepared = _prepare(problem, loss, config)
    return TableJob(problem.name, prepared, len(prepared.X_train), len(prepared.X_val))


def _check_data_path(config: TrainConfig) -> None:
    """--data: not a folder, and of a format known by its extension or by
    --format (one line naming the option, before anything is read)."""
    import os

    from ..data.tables import format_of

    if config.data in ("xor", "-"):
        return
    if os.path.isdir(config.data):
        raise InputError(f"--data: {config.data!r} is a folder, not a data file")
    try:
        format_of(config.data, config.data_format)
    except ValueError as exc:
        raise InputError(f"--data: {exc} with --format") from None


def _located(exc: Exception, config: TrainConfig) -> InputError:
    """A data error of a raw table, its data row named by its line in a CSV
    file, with the option that helps."""
    from ..data.tables import with_lines

    message = with_lines(str(exc), config.data, config.data_format)
    return data_error(type(exc)(message))


def _raw(config: TrainConfig, out) -> TableJob:
    """A raw table: read as it is, its column plan made from the training
    rows, every row encoded by it; regression targets scaled inside."""
    from ..data.loading import DataError
    from ..data.plan import PlanError
    from ..data.raw import RawTable, raw_problem

    try:
        with (
            warnings_to_stderr(),
            progress_bar(desc="loading", enabled=not config.quiet, stream=out),
        ):
            raw = RawTable.read(
                config.data, target=config.target, format=config.data_format,
                options=config.plan_options(),
            )  # fmt: skip
            problem, val_rows, dropped = raw_problem(
                raw, task=config.task, dtype=config.dtype,
                options=config.plan_options(), val_fraction=config.val_split,
                seed=config.seed,
            )  # fmt: skip
    except (DataError, PlanError) as exc:
        raise _located(exc, config) from None
    except ValueError as exc:  # val_fraction leaves no training rows
        raise InputError(f"--val-split: {exc}") from None
    del raw  # the Arrow table: X holds every row now
    _release_arrow_memory()
    loss = _loss_for(config.loss, problem.task, problem.default_loss)
    try:
        prepared = problem.prepare(
            loss=loss, val_rows=val_rows, dtype=config.dtype, copy=False,
            scale_target=True,
        )  # fmt: skip
    except DataError as exc:
        raise _located(exc, config) from None
    if not len(prepared.X_train):
        raise InputError(f"--val-split: {config.val_split:g} leaves no training rows")
    return TableJob(
        problem.name, prepared, len(prepared.X_train), len(prepared.X_val),
        dropped=dropped,
    )  # fmt: skip


def _release_arrow_memory() -> None:
    """Hand pyarrow's freed buffers back to the system (its pool keeps them)."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


def _loss_for(loss: str | None, task: str, default: str) -> str:
    loss = loss or default
    if loss == "ce" and task != "classification":
        raise InputError("--loss ce needs a classification target; use --loss mse")
    return loss


def _prepare(problem, loss: str, config: TrainConfig):
    """problem.prepare for the run, its errors as one-line InputErrors."""
    from ..data.loading import DataError

    try:
        # A table's X is read for this run only: reuse it for the training
        # rows rather than holding two copies (xor's truth table needs its X).
        return problem.prepare(
            loss=loss, val_fraction=config.val_split, seed=config.seed,
            dtype=config.dtype, copy=config.xor,
        )  # fmt: skip
    except DataError as exc:  # a value whose square overflows the dtype
        raise data_error(exc) from None
    except ValueError as exc:  # val_fraction leaves no training rows
        raise InputError(f"--val-split: {exc}") from None


def _shard(config: TrainConfig, world: MpiWorld) -> TableJob:
    """This rank's share of the file, with statistics agreed by all ranks."""
    from ..data.loading import DataError
    from ..data.shard import global_rows, load_shard

    try:
        with warnings_to_stderr():
            prepared = load_shard(
                config.data, world.comm, target=config.target, task=config.task,
                loss=config.loss, val_fraction=config.val_split, seed=config.seed,
                dtype=config.dtype, format=config.data_format,
                options=config.plan_options(), scale_target=not config.strict,
            )  # fmt: skip
    except (DataError, ValueError) as exc:  # the same on every rank
        raise data_error(exc) from None
    _loss_for(prepared.loss, prepared.problem.task, prepared.loss)
    n_train, n_val = global_rows(world.comm, prepared)
    return TableJob(prepared.problem.name, prepared, n_train, n_val, sharded=True)


def _stream(config: TrainConfig) -> StreamJob:
    """The first pass over a streamed file: rows, labels, statistics."""
    from ..data.loading import DataError
    from ..data.stream import file_source, scan

    source = file_source(config.data, format=config.data_format)
    try:
        with warnings_to_stderr():
            stats = scan(
                source, target=config.target, task=config.task, dtype=config.dtype,
                val_fraction=config.val_split, seed=config.seed, name=config.data,
                options=config.plan_options(), scale_target=not config.strict,
            )  # fmt: skip
    except DataError as exc:  # its data row named by its line in a CSV file
        raise _located(exc, config) from None
    except ValueError as exc:
        raise InputError(str(exc)) from None
    _loss_for(config.loss, stats.task, stats.default_loss)
    loss, n_outputs, metric = stats.coding(config.loss)
    return StreamJob(
        f"{config.data} (streamed)", source, stats, loss, n_outputs, metric,
        config.shuffle_buffer,
    )  # fmt: skip
