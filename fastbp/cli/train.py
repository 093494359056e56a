"""``fastbp train``: load -> build -> fit -> report.

Every option is declared once (:mod:`fastbp.cli.options`) and resolved into
one frozen :class:`~fastbp.cli.config.TrainConfig`; the data is loaded into a
job (:mod:`fastbp.cli.jobs`), the network built from the registry's names,
trained by :func:`fastbp.train` (or L-BFGS) and reported by one
:class:`~fastbp.cli.report.Reporter`. Under ``mpiexec`` every rank runs this
command on the same data; rank 0 alone prints and writes files, and an error
in the arguments or the data, the same on every rank, is printed once.
"""

from __future__ import annotations

import time

import click

from .config import MpiWorld, TrainConfig, mpi_world
from .errors import InputError, data_error
from .jobs import load
from .options import train_options
from .report import Reporter, output_stream

__all__ = ["train"]


@click.command()
@train_options
def train(**options) -> None:
    """Train an MLP on XOR or a table and report throughput."""
    world = mpi_world()
    try:
        run(TrainConfig.from_options(options, world), world)
    except click.ClickException as exc:
        if world.leader:
            raise
        raise click.exceptions.Exit(exc.exit_code) from None


def run(config: TrainConfig, world: MpiWorld) -> None:
    """One training run: load, build, fit, report."""
    resumed = _read_checkpoint(config.resume)  # a bad file fails at once
    job = load(config, world, output_stream(config))
    reporter = Reporter(config, job, world)
    widths = [job.n_features, *config.hidden, job.n_outputs]
    _check_memory(config, job, widths)
    model, loss, optimizer = build(config, widths, job.loss)
    reporter.header(widths, optimizer, resumed)
    reporter.processes()
    strategy = _strategy(config, world)
    wall = time.perf_counter()
    with reporter.notices():
        try:
            result = fit(
                config, job, model, loss, optimizer, resumed, strategy, reporter
            )
        finally:
            reporter.progress.close()
        reporter.wall = time.perf_counter() - wall
        from ..training.compiling import CompileNotices

        with CompileNotices(result).phase("the evaluation kernels"):
            figures = job.final_figures(model, loss, result, strategy)
    _compile_generic_later(config, world, result, reporter)
    reporter.notes(result, model)
    if config.save is not None:
        job.save(
            config.save, model, {"training": _training(config, job, result, figures)}
        )
    if config.plot is not None:
        from ..plot import plot_history

        key = "r2" if job.metric == "r2" else "accuracy"
        name = config.data if job.streamed else job.name
        plot_history(result.history, config.plot, metric_name=key, title=name)
    reporter.summary(result, figures, widths)


def _compile_generic_later(config, world, result, reporter) -> None:
    """After a job that compiled a specialized kernel (no generic one was
    cached), compile the generic kernel in the background, so that the next
    new architecture starts at once (:mod:`fastbp.training.warm`)."""
    if world.several or not result.compiled:
        return
    if not (result.kernel or "").startswith("specialized"):
        return
    from ..training.warm import compile_generic_later

    pid = compile_generic_later(config.dtype)
    if pid is not None and reporter.talk:
        reporter.echo(
            f"compiling the generic {config.dtype} kernel in the background "
            f"(pid {pid}): new architectures will start at once"
        )


def _training(config: TrainConfig, job, result, figures) -> dict:
    """How the model was trained and how it ended, for the model file
    (``fastbp inspect`` shows it)."""
    key = "r2" if job.metric == "r2" else "accuracy"
    val_loss = result.kept(result.val_loss)
    return {
        "data": config.data,
        "hidden": list(config.hidden),
        "activation": config.activation,
        "optimizer": config.optimizer,
        "lr": config.lr,
        "l2": config.l2,
        "batch_size": config.batch_size,
        "epochs": result.epochs,
        "seed": config.seed,
        "val_split": config.val_split,
        "lr_schedule": config.lr_schedule,
        "early_stopping": config.early_stopping,
        "final": {
            "train_loss": figures[0],
            f"train_{key}": figures[1],
            "val_loss": None if val_loss is None else val_loss * job.loss_scale,
            f"val_{key}": result.kept(result.val_metric),
        },
    }


def build(config: TrainConfig, widths: list[int], loss_name: str):
    """(model, loss, optimizer) from the registry's names: an MLP of widths
    with the activation between layers, its Linear layers initialized as the
    job's defaults say (PyTorch's init for tables; the activation's
    preference for XOR); SGD takes the momentum; the
    optimizer is None for lbfgs (full-batch, no optimizer object)."""
    from ..nn.layers import mlp
    from ..nn.parts import LOSSES, OPTIMIZERS

    model = mlp(
        widths, config.activation, init=config.init, rng=config.seed,
        dtype=config.dtype,
    )  # fmt: skip
    loss = LOSSES[loss_name].cls()
    if config.optimizer == "lbfgs":
        return model, loss, None
    extra = {"momentum": config.momentum} if config.optimizer == "sgd" else {}
    optimizer = OPTIMIZERS[config.optimizer].cls(
        model.parameters(), lr=config.lr, **extra
    )
    return model, loss, optimizer


def fit(config, job, model, loss, optimizer, resumed, strategy, reporter):
    """Train; a divergence or a checkpoint that does not fit is one line."""
    from ..training.checkpoint import CheckpointError
    from ..training.result import DivergenceError

    common = dict(
        metric=job.metric,
        threads=config.threads,
        callback=reporter.progress if reporter.progress.enabled else None,
    )
    try:
        if config.optimizer == "lbfgs":
            from ..training.fullbatch import lbfgs

            X, T, val = job.full_batch()
            return lbfgs(
                model, loss, X, T, max_iter=config.epochs, tol=config.tol, val=val,
                l2=config.l2, **common,
            )  # fmt: skip
        from ..training.api import train as train_model

        return train_model(
            model, loss, optimizer, job.source(), epochs=config.epochs,
            batch_size=config.batch_size, seed=config.seed,
            fuse=False if config.no_fuse else None, lr_schedule=config.lr_schedule,
            early_stopping=_stopping(config, job.n_val > 0),
            grad_norms=config.grad_norms, checkpoint=config.checkpoint,
            checkpoint_every=config.checkpoint_every, resume=resumed,
            strategy=strategy, l2=config.l2, **common,
        )  # fmt: skip
    except DivergenceError as exc:
        hint = "" if exc.before_training else f", for example --lr {config.lr / 10:g}"
        raise InputError(f"{exc}{hint}") from None
    except CheckpointError as exc:
        raise InputError(f"--resume: {exc}") from None
    except ValueError as exc:  # a bad cell found while streaming
        from ..data.loading import DataError

        if isinstance(exc, DataError):
            from ..data.tables import with_lines

            message = with_lines(str(exc), config.data, config.data_format)
            raise data_error(DataError(message)) from None
        raise


def _stopping(config: TrainConfig, has_val: bool):
    """The EarlyStopping rule of --early-stopping (on the validation metric,
    or the training loss without validation rows) or of the adaptive
    schedule (which lowers the rate at a plateau), or None."""
    from ..training.schedules import EarlyStopping

    if not (config.early_stopping or config.lr_schedule == "adaptive"):
        return None
    monitor = "val_metric" if has_val else "train_loss"
    return EarlyStopping(
        config.patience, config.tol, monitor, restore_best=config.early_stopping
    )


def _strategy(config: TrainConfig, world: MpiWorld):
    """DataParallel over the world's processes, or SingleProcess for one."""
    from ..training.parallel import DataParallel, SingleProcess

    if not world.several:
        return SingleProcess()
    return DataParallel(world.comm, shard=config.shard, sync_every=config.sync_every)


def _read_checkpoint(path: str | None):
    """--resume: the checkpoint read and checked (one-line error), or None."""
    if path is None:
        return None
    from ..training.checkpoint import Checkpoint, CheckpointError

    try:
        return Checkpoint.load(path)
    except CheckpointError as exc:
        raise InputError(f"--resume: {exc}") from None


def _check_memory(config: TrainConfig, job, widths: list[int]) -> None:
    """--hidden: an MLP too large for the memory available is refused before
    anything is allocated."""
    from ..data.problem import available_bytes, training_bytes
    from ..nn.parts import OPTIMIZERS

    if config.optimizer == "lbfgs":  # full batch in chunks of 4096 rows; 3 vectors
        n_state, rows = 3, min(job.local_rows, 4096)
    else:
        n_state, rows = len(OPTIMIZERS[config.optimizer].state), config.batch_size
    need = training_bytes(widths, rows, config.dtype, n_state)
    free = available_bytes()
    if free is not None and need > free:
        raise InputError(
            f"--hidden: an MLP {'-'.join(map(str, widths))} needs about "
            f"{need / 2**30:.1f} GiB to train, more than the {free / 2**30:.1f} "
            "GiB of memory available"
        )
