"""The ``fastbp`` command line: train, predict, bench.

This module only parses options, calls the library and prints: reading the
data, choosing the target, coding labels, splitting, standardizing and the
model file's contents are :mod:`fastbp.problem`'s work. Every input error ends
in one line ``Error: ...`` naming the file, line, column or option at fault,
and exit status 2; output paths are checked before any work is done.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Iterator

import click

from .._files import unwritable_reason
from .._version import __version__
from ..bench.command import bench
from ..nn.parts import ACTIVATIONS, LOSSES, OPTIMIZERS, builtin_parts
from ..progress import EpochProgress
from ..progress import progress as progress_bar
from ..training.schedules import SCHEDULES, EarlyStopping

builtin_parts()  # the choices below list them

# Defaults that solve XOR for at least 99 of seeds 0-99 (all 100 when last
# measured; tests/test_cli.py allows one miss), with a 2-8-1 tanh network,
# SGD with momentum, full-batch.
XOR_DEFAULTS = dict(
    hidden="8",
    activation="tanh",
    optimizer="sgd",
    lr=0.1,
    momentum=0.9,
    epochs=1000,
    batch_size=4,
    val_split=0.0,
    init=None,  # the activation's preference: Xavier for tanh
)
CSV_DEFAULTS = dict(
    hidden="32",
    activation="relu",
    optimizer="adam",
    lr=0.01,
    momentum=0.9,
    epochs=200,
    batch_size=16,
    val_split=0.2,
    # torch.nn.Linear's default (weights and biases ~ U(+-1/sqrt(fan_in))):
    # He-normal's first layer, twice as large, trains slower per epoch under
    # Adam (benchmarks/init_ablation.py).
    init="pytorch",
)


class InputError(click.ClickException):
    """A one-line error about the user's input; exit status 2."""

    exit_code = 2


def _data_error(exc: Exception) -> InputError:
    """The library's message about the data, with the option that helps."""
    hint = " (--dtype float64)" if "use float64" in str(exc) else ""
    return InputError(f"{exc}{hint}")


class _OneLineErrors(click.Group):
    """A click group whose usage errors are one ``Error:`` line, like the rest.

    click prints a usage line and a hint before a bad option's message; a
    user fixing a value needs only the message, which names the option.
    """

    def main(self, args=None, prog_name=None, complete_var=None, **extra):
        try:
            code = super().main(
                args, prog_name, complete_var, standalone_mode=False, **extra
            )
        except click.ClickException as exc:
            click.echo(f"Error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


@contextlib.contextmanager
def _warnings_to_stderr() -> Iterator[None]:
    """The library's UserWarnings raised in the block (a column of names read
    as labels), printed as ``Warning: ...`` lines on stderr once it ends."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        yield
    for warning in caught:
        click.echo(f"Warning: {warning.message}", err=True)


def _hidden(ctx: click.Context, param: click.Parameter, text: str | None):
    """--hidden: "8" or "64,64" as a list of positive widths."""
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",")] if text.strip() else []
    if not parts or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise click.BadParameter(
            f"{text!r} is not a comma-separated list of positive integers such "
            "as 8 or 64,64",
            ctx=ctx,
            param=param,
        )
    return [int(p) for p in parts]


def _finite(ctx: click.Context, param: click.Parameter, value: float | None):
    """A FloatRange lets NaN through (every comparison with it is False)."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a finite number", ctx, param)
    return value


def _output_file(ctx: click.Context, param: click.Parameter, value: str | None):
    """--save/--out: a file in an existing folder that takes new files."""
    if value is not None:
        reason = unwritable_reason(value)
        if reason:
            raise click.BadParameter(reason, ctx=ctx, param=param)
    return value


@click.group(
    cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.version_option(__version__, prog_name="fastbp")
def main() -> None:
    """fastbp: a JIT-compiled backpropagation engine for MLPs on the CPU.

    \b
    fastbp train --data xor                 train the XOR network
    fastbp train --data examples/iris.csv   train on a CSV file
    fastbp predict --model m.npz --data f.csv
    fastbp bench                            speed benchmarks
    """


main.add_command(bench)


@main.command()
@click.option(
    "--data",
    required=True,
    metavar="xor|PATH",
    help="'xor' for the built-in XOR set, or a table with a header row: CSV, "
    "TSV (also gzip/zstd), Parquet or Feather; '-' for CSV on standard input.",
)
@click.option(
    "--format",
    "data_format",
    type=click.Choice(["csv", "tsv", "parquet", "feather"]),
    default=None,
    help="Format of --data. Default: by extension (.csv, .tsv, .csv.gz, "
    ".csv.zst, .parquet, .feather); '-' reads CSV from standard input.",
)
@click.option(
    "--target",
    default=None,
    metavar="NAME|INDEX",
    help="Target column: name or 0-based index. Default: the last column.",
)
@click.option(
    "--task",
    type=click.Choice(["regression", "classification"]),
    default=None,
    help="Default: inferred from the target column.",
)
@click.option(
    "--hidden",
    default=None,
    callback=_hidden,
    metavar="8|64,64",
    help="Hidden layer widths, comma-separated. [xor: 8; csv: 32]",
)
@click.option(
    "--activation",
    type=click.Choice(sorted(ACTIVATIONS)),
    default=None,
    help="Hidden activation (the registered ones, default settings). "
    "[xor: tanh; csv: relu]",
)
@click.option(
    "--loss",
    # The losses fastbp.problem.LOSS_NAMES codes targets for (that module is
    # imported only when training runs).
    type=click.Choice(["ce", "mse"]),
    default=None,
    help="Default: ce for classification, mse for regression and xor.",
)
@click.option(
    "--optimizer",
    type=click.Choice([*sorted(OPTIMIZERS), "lbfgs"]),
    default=None,
    help="lbfgs: full-batch L-BFGS (scipy), --epochs iterations at most. "
    "[xor: sgd; csv: adam]",
)
@click.option(
    "--lr-schedule",
    type=click.Choice(SCHEDULES),
    default="constant",
    show_default=True,
    help="invscaling: lr/(t+1)^0.5 (t samples seen); adaptive: lr/5 when "
    "the monitored value stalls (see --patience); step: lr/10 every third of "
    "--epochs; cosine: down to 0 at the last epoch.",
)
@click.option(
    "--early-stopping",
    is_flag=True,
    help="Stop when the validation metric (the training loss without "
    "--val-split) has not improved by more than --tol for more than "
    "--patience epochs; keep the best epoch's weights.",
)
@click.option(
    "--patience",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Epochs without improvement that --early-stopping and the adaptive "
    "schedule tolerate.",
)
@click.option(
    "--tol",
    type=click.FloatRange(min=0, max=math.inf, max_open=True),
    default=1e-4,
    show_default=True,
    callback=_finite,
    help="Improvement that counts, for --early-stopping and adaptive; "
    "gradient tolerance for lbfgs.",
)
@click.option(
    "--grad-norms",
    is_flag=True,
    help="Print each layer's mean weight-gradient norm per epoch (measured "
    "inside the fused kernel): vanishing or exploding gradients at a glance.",
)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False),
    default=None,
    callback=_output_file,
    help="Draw the training/validation loss and metric per epoch to this "
    "image (.png, .pdf, .svg); needs matplotlib: pip install 'fastbp[plot]'.",
)
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True, max=math.inf, max_open=True),
    default=None,
    callback=_finite,
    help="Learning rate. [xor: 0.1; csv: 0.01]",
)
@click.option(
    "--momentum",
    type=click.FloatRange(min=0, max=1, max_open=True),
    default=None,
    callback=_finite,
    help="SGD momentum. [0.9]",
)
@click.option(
    "--epochs", type=click.IntRange(min=1), default=None, help="[xor: 1000; csv: 200]"
)
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=None, help="[xor: 4; csv: 16]"
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seeds weight init, shuffling and the validation split.",
)
@click.option(
    "--val-split",
    type=click.FloatRange(min=0, max=1, max_open=True),
    default=None,
    callback=_finite,
    help="Fraction of rows held out for validation, in [0, 1). [xor: 0; csv: 0.2]",
)
@click.option(
    "--dtype",
    type=click.Choice(["float32", "float64"]),
    default="float32",
    show_default=True,
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="Cap on BLAS and Numba threads. Default: all cores.",
)
@click.option(
    "--save",
    type=click.Path(dir_okay=False),
    default=None,
    callback=_output_file,
    help="Write the trained model to this .npz file.",
)
@click.option(
    "--stream",
    is_flag=True,
    help="Train from the file read again each epoch, record batch by record "
    "batch, in memory that does not grow with the file (not for xor or -).",
)
@click.option(
    "--shard",
    is_flag=True,
    help="Under mpiexec: each process reads only its share of the file (CSV "
    "byte ranges, Parquet row groups) and trains on it; statistics are shared. "
    "Shuffling is per shard, so the model differs from one process's.",
)
@click.option(
    "--sync-every",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Under mpiexec: 1 all-reduces the gradients every step (the model of "
    "one process); K > 1 averages the weights every K steps instead (local "
    "SGD), for networks whose step is shorter than the all-reduce.",
)
@click.option(
    "--shuffle-buffer",
    type=click.IntRange(min=1),
    default=65536,
    show_default=True,
    help="With --stream: rows the approximate shuffle draws from; at least the "
    "row count shuffles exactly as in-memory training does.",
)
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False),
    default=None,
    callback=_output_file,
    help="Write a checkpoint (weights, optimizer and schedule state, shuffle "
    "state, history) to this file every --checkpoint-every epochs and after "
    "the last, atomically: an interrupted write leaves the previous one.",
)
@click.option(
    "--checkpoint-every",
    type=click.IntRange(min=1),
    default=None,
    metavar="K",
    help="Epochs between checkpoints (with --checkpoint). [1]",
)
@click.option(
    "--resume",
    type=click.Path(dir_okay=False),
    default=None,
    help="Continue the run of this checkpoint up to --epochs epochs in all, "
    "as if it had never stopped; give the options of the run that wrote it.",
)
@click.option(
    "--no-fuse",
    is_flag=True,
    help="Use the layer-by-layer path instead of the fused epoch kernel.",
)
@click.option("--quiet", "-q", is_flag=True, help="Print only the summary line.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="End stdout with one JSON object of the results.",
)
def train(
    data,
    data_format,
    target,
    task,
    hidden,
    activation,
    loss,
    optimizer,
    lr_schedule,
    early_stopping,
    patience,
    tol,
    grad_norms,
    plot,
    lr,
    momentum,
    epochs,
    batch_size,
    seed,
    val_split,
    dtype,
    threads,
    save,
    stream,
    shuffle_buffer,
    shard,
    sync_every,
    checkpoint,
    checkpoint_every,
    resume,
    no_fuse,
    quiet,
    as_json,
):
    """Train an MLP on XOR or a table and report throughput."""
    options = dict(locals())
    comm, rank = _mpi_world()
    if comm is None:
        return _train(**options, comm=None, rank=0)
    # Under mpiexec every rank runs this command on the same data; rank 0
    # alone prints and writes files. An error in the arguments or the data
    # is the same on every rank: rank 0 reports it, the others exit with its
    # status, silently.
    for flag, given in (
        ("--stream", stream),
        ("--no-fuse", no_fuse),
        ("--optimizer lbfgs", optimizer == "lbfgs"),
    ):
        if given:
            raise InputError(f"{flag} does not run on several MPI processes")
    if shard and data in ("xor", "-"):
        raise InputError(f"--shard needs a file each process can read, not {data!r}")
    if rank != 0:
        options.update(quiet=True, save=None, plot=None, as_json=False)
    if threads is None:  # the cores of this machine, shared by its ranks
        options["threads"] = _threads_per_rank()
    try:
        return _train(**options, comm=comm, rank=rank)
    except click.ClickException as exc:
        if rank == 0:
            raise
        raise click.exceptions.Exit(exc.exit_code) from None


def _mpi_world():
    """(MPI.COMM_WORLD, this rank) when the command runs under mpiexec (or
    srun) with 2 or more processes, else (None, 0). The process count is read
    from the launcher's environment first, so a plain run never imports
    mpi4py."""
    size = 1
    for name in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"):
        if os.environ.get(name, "").isdigit():
            size = max(size, int(os.environ[name]))
    if size < 2:
        return None, 0
    try:
        from mpi4py import MPI
    except ImportError:
        raise InputError(
            f"running on {size} MPI processes needs the mpi extra: "
            "pip install 'fastbp[mpi]'"
        ) from None
    world = MPI.COMM_WORLD
    return (world, world.Get_rank()) if world.Get_size() > 1 else (None, 0)


def _threads_per_rank() -> int:
    """This machine's cores divided by the MPI ranks on it (the launcher's
    MPI_LOCALNRANKS or OMPI_COMM_WORLD_LOCAL_SIZE), at least 1: ranks that
    each start a thread per core would fight over the cores, and MPI's
    polling with them."""
    local = 1
    for name in ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE"):
        if os.environ.get(name, "").isdigit():
            local = int(os.environ[name])
    return max(1, (os.cpu_count() or 1) // max(1, local))


def _train(
    data,
    data_format,
    target,
    task,
    hidden,
    activation,
    loss,
    optimizer,
    lr_schedule,
    early_stopping,
    patience,
    tol,
    grad_norms,
    plot,
    lr,
    momentum,
    epochs,
    batch_size,
    seed,
    val_split,
    dtype,
    threads,
    save,
    stream,
    shuffle_buffer,
    shard,
    sync_every,
    checkpoint,
    checkpoint_every,
    resume,
    no_fuse,
    quiet,
    as_json,
    comm,
    rank,
):
    """fastbp train, after the MPI world (if any) is found; comm is
    MPI.COMM_WORLD or None, rank this process's rank."""
    import fastbp

    from ..data.loading import DataError
    from ..data.problem import Problem, available_bytes, training_bytes
    from ..training.checkpoint import CheckpointError
    from ..training.loop import lbfgs, mean_over_ranks

    defaults = XOR_DEFAULTS if data == "xor" else CSV_DEFAULTS
    hidden = hidden or _hidden(None, None, defaults["hidden"])
    activation = activation or defaults["activation"]
    optimizer = optimizer or defaults["optimizer"]
    lr = lr if lr is not None else defaults["lr"]
    momentum = momentum if momentum is not None else defaults["momentum"]
    epochs = epochs or defaults["epochs"]
    batch_size = batch_size or defaults["batch_size"]
    val_split = val_split if val_split is not None else defaults["val_split"]
    init = defaults["init"]
    out = sys.stderr if as_json else sys.stdout
    if plot is not None:
        _check_plotting(plot)
    if optimizer == "lbfgs":
        for flag, given in (
            ("--no-fuse", no_fuse),
            ("--grad-norms", grad_norms),
            ("--early-stopping", early_stopping),
            ("--lr-schedule", lr_schedule != "constant"),
            ("--stream", stream),
            ("--checkpoint", checkpoint is not None),
            ("--resume", resume is not None),
        ):
            if given:
                raise InputError(f"{flag} does not apply to --optimizer lbfgs")
    if checkpoint_every is not None and checkpoint is None:
        raise InputError("--checkpoint-every needs --checkpoint PATH")
    checkpoint_every = checkpoint_every or 1
    # Read (and checked) before the data: a bad file fails at once.
    resume = _read_checkpoint(resume)
    if stream:
        if data in ("xor", "-"):
            raise InputError(f"--stream needs a file to read again, not {data!r}")
        return _train_streamed(**locals())  # every option, resolved above

    sharded = shard and comm is not None
    if sharded:
        from ..data.shard import global_rows, load_shard

        try:
            with _warnings_to_stderr():
                prepared = load_shard(
                    data, comm, target=target, task=task, loss=loss,
                    val_fraction=val_split, seed=seed, dtype=dtype,
                    format=data_format,
                )  # fmt: skip
        except (DataError, ValueError) as exc:  # the same on every rank
            raise _data_error(exc) from None
        problem = prepared.problem
    elif data == "xor":
        problem = Problem.xor()
    else:
        try:
            with (
                _warnings_to_stderr(),
                progress_bar(desc="loading", enabled=not quiet, stream=out) as bar,
            ):
                problem = Problem.from_file(
                    data, target=target, task=task, dtype=dtype, format=data_format,
                    progress=bar,
                )  # fmt: skip
        except (DataError, ValueError) as exc:  # ValueError: unknown file type
            raise _data_error(exc) from None
    loss = loss or problem.default_loss
    if loss == "ce" and problem.task != "classification":
        raise InputError("--loss ce needs a classification target; use --loss mse")
    if not sharded:  # (load_shard prepared this rank's rows)
        prepared = _prepare(problem, loss, val_split, seed, dtype, data)

    widths = [problem.n_features, *hidden, prepared.n_outputs]
    if optimizer == "lbfgs":  # full batch in chunks of 4096 rows; 3 vectors
        n_state, rows = 3, min(len(prepared.X_train), 4096)
    else:
        n_state, rows = len(OPTIMIZERS[optimizer].state), batch_size
    need = training_bytes(widths, rows, dtype, n_state)
    free = available_bytes()
    if free is not None and need > free:
        raise InputError(
            f"--hidden: an MLP {'-'.join(map(str, widths))} needs about "
            f"{need / 2**30:.1f} GiB to train, more than the {free / 2**30:.1f} "
            "GiB of memory available"
        )
    model, loss_fn, opt = _build(
        widths, activation, loss, optimizer, lr, momentum, seed, dtype, init
    )

    n_train, n_val = len(prepared.X_train), len(prepared.X_val)
    if sharded:
        n_train, n_val = global_rows(comm, prepared)
    if not quiet:
        click.echo(
            f"fastbp {__version__}: {problem.name}, {n_train} training / "
            f"{n_val} validation rows, {problem.n_features} features, "
            f"{problem.task}; MLP {'-'.join(map(str, widths))} {activation}, "
            f"{loss}, {opt if opt is not None else 'L-BFGS-B'!r}, {dtype}",
            file=out,
        )
        _print_resuming(resume, epochs, out)
    if comm is not None:  # the launcher names a failed process by its pid
        pids = comm.gather(os.getpid(), root=0)
        if not quiet:
            ranks = ", ".join(f"rank {r} pid {pid}" for r, pid in enumerate(pids))
            click.echo(f"{len(pids)} MPI processes: {ranks}", file=out)
    progress = EpochProgress(
        epochs, enabled=not quiet, stream=out, rows_per_epoch=len(prepared.X_train)
    )
    wall = time.perf_counter()
    common = dict(
        val=prepared.validation,
        metric=prepared.metric,
        threads=threads,
        callback=progress if progress.enabled else None,
    )
    try:
        if optimizer == "lbfgs":
            result = lbfgs(
                model, loss_fn, prepared.X_train, prepared.T_train,
                max_iter=epochs, tol=tol, **common,
            )  # fmt: skip
        else:
            stopping = _stopping(
                early_stopping, lr_schedule, patience, tol, bool(prepared.validation)
            )
            result = fastbp.train(
                model, loss_fn, opt, prepared.X_train, prepared.T_train,
                epochs=epochs, batch_size=batch_size, seed=seed,
                fuse=False if no_fuse else None, lr_schedule=lr_schedule,
                early_stopping=stopping, grad_norms=grad_norms,
                checkpoint=checkpoint, checkpoint_every=checkpoint_every,
                resume=resume, comm=comm, shard=sharded, sync_every=sync_every,
                **common,
            )  # fmt: skip
    except fastbp.DivergenceError as exc:
        hint = "" if exc.before_training else f", for example --lr {lr / 10:g}"
        raise InputError(f"{exc}{hint}") from None
    except CheckpointError as exc:
        raise InputError(f"--resume: {exc}") from None
    finally:
        progress.close()
    wall = time.perf_counter() - wall

    metric = prepared.metric
    train_loss, train_metric = fastbp.evaluate(
        model, loss_fn, prepared.X_train, prepared.T_train, metric
    )
    if sharded:  # this rank's rows are a share: the means over every rank's
        train_loss, train_metric = mean_over_ranks(
            comm, len(prepared.X_train), train_loss, train_metric
        )
    val_loss = result.kept(result.val_loss)
    val_metric = result.kept(result.val_metric)
    metric_key = "r2" if metric == "r2" else "accuracy"

    if problem.name == "xor" and not quiet:
        _print_truth_table(model, problem, out)
    if not quiet:
        _print_run_notes(result, grad_norms, out)
        _print_checkpoint_notes(result, checkpoint, out)
    if save is not None:
        prepared.save(save, model)
    if plot is not None:
        _plot(result, plot, metric_key, problem.name)
    path = "(fused)" if result.fused else f"(layer path: {result.layer_path_reason})"
    summary = (
        f"{result.samples_per_s:,.0f} samples/s, {result.steps_per_s:,.0f} steps/s, "
        f"{result.us_per_step:.3g} us/step; trained {result.epochs} epochs "
        f"({result.steps} steps) in {result.train_seconds:.3g} s, compile "
        f"{result.compile_seconds:.3g} s; loss {train_loss:.4g}, "
        f"train {metric_key} {train_metric:.4f}"
        + (f", val {metric_key} {val_metric:.4f}" if val_metric is not None else "")
        + f" {path}"
    )
    if rank == 0:
        click.echo(summary, file=out)
    if save is not None and not quiet:
        click.echo(f"saved model to {save}", file=out)
    if as_json:
        record = {
            "data": problem.name,
            "processes": result.processes,
            "allreduce_seconds": result.allreduce_seconds,
            "sync_every": result.sync_every,
            "task": problem.task,
            "fused": result.fused,
            "layer_path_reason": result.layer_path_reason,
            "samples_per_s": result.samples_per_s,
            "steps_per_s": result.steps_per_s,
            "us_per_step": result.us_per_step,
            "train_seconds": result.train_seconds,
            "compile_seconds": result.compile_seconds,
            "wall_seconds": wall,
            "epochs": result.epochs,
            "start_epoch": result.start_epoch,
            "steps": result.steps,
            "train_loss": train_loss,
            "val_loss": val_loss,
            f"train_{metric_key}": train_metric,
            f"val_{metric_key}": val_metric,
            "architecture": widths,
            "activation": activation,
            "loss": loss,
            "optimizer": optimizer,
            "lr": lr,
            "batch_size": batch_size,
            "seed": seed,
            "dtype": dtype,
            "lr_schedule": lr_schedule,
            "early_stopping": early_stopping,
            "stop_reason": result.stop_reason,
            "best_epoch": result.best_epoch,
            "history": result.history,
        }
        if grad_norms:
            record["grad_norms"] = result.grad_norms
        click.echo(json.dumps(_strict(record), allow_nan=False))


def _prepare(problem, loss, val_split, seed, dtype, data):
    """problem.prepare for fastbp train, its errors as one-line InputErrors."""
    from ..data.loading import DataError

    try:
        # A table's X is read for this run only: reuse it for the training
        # rows rather than holding two copies (xor's truth table needs its X).
        return problem.prepare(
            loss=loss, val_fraction=val_split, seed=seed, dtype=dtype,
            copy=data == "xor",
        )  # fmt: skip
    except DataError as exc:  # a value whose square overflows the dtype
        raise _data_error(exc) from None
    except ValueError as exc:  # val_fraction leaves no training rows
        raise InputError(f"--val-split: {exc}") from None


def _strict(value):
    """value for strict JSON: an undefined figure (R^2 of one row) is null,
    not NaN, in nested lists and dicts too."""
    if isinstance(value, dict):
        return {key: _strict(v) for key, v in value.items()}
    if isinstance(value, list):
        return [_strict(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _check_plotting(path: str) -> None:
    """--plot: matplotlib installed and the extension one it writes, checked
    before training so a long run does not end in an error."""
    from ..plot import check_image_path

    try:
        check_image_path(path)
    except ImportError:
        raise InputError(
            "--plot needs matplotlib: pip install 'fastbp[plot]'"
        ) from None
    except ValueError as exc:
        raise InputError(f"--plot: {exc}") from None


def _stopping(early_stopping, lr_schedule, patience, tol, has_val):
    """The EarlyStopping rule of --early-stopping (on the validation metric,
    or the training loss without validation rows) or of the adaptive
    schedule (which lowers the rate at a plateau), or None."""
    if not (early_stopping or lr_schedule == "adaptive"):
        return None
    monitor = "val_metric" if has_val else "train_loss"
    return EarlyStopping(patience, tol, monitor, restore_best=early_stopping)


def _read_checkpoint(path: str | None):
    """--resume: the checkpoint read and checked (one-line error), or None."""
    if path is None:
        return None
    from ..training.checkpoint import Checkpoint, CheckpointError

    try:
        return Checkpoint.load(path)
    except CheckpointError as exc:
        raise InputError(f"--resume: {exc}") from None


def _print_resuming(resumed, epochs: int, out) -> None:
    """Where a resumed run starts (nothing when not resuming, or when the
    checkpoint has more epochs than asked for: an error follows)."""
    if resumed is None or resumed.epochs_done > epochs:
        return
    if resumed.stop_reason is not None:
        left = f"its run stopped after epoch {resumed.epochs_done}; nothing to train"
    elif resumed.epochs_done >= epochs:
        left = "nothing to train"
    else:
        left = f"training epochs {resumed.epochs_done + 1}-{epochs}"
    click.echo(
        f"resuming {resumed.path}: {resumed.epochs_done} of {epochs} epochs "
        f"done, {left}",
        file=out,
    )


def _print_checkpoint_notes(result, checkpoint, out) -> None:
    """Where the last checkpoint went."""
    if checkpoint is not None and result.epochs > result.start_epoch:
        click.echo(f"checkpoint: epoch {result.epochs} in {checkpoint}", file=out)


def _print_run_notes(result, grad_norms: bool, out) -> None:
    """The gradient-norm table (--grad-norms) and why training stopped early."""
    if grad_norms:
        _print_grad_norms(result, out)
    if result.stop_reason:
        best = f"; kept epoch {result.best_epoch}" if result.best_epoch else ""
        click.echo(
            f"stopped after epoch {result.epochs}: {result.stop_reason}{best}",
            file=out,
        )


def _plot(result, path: str, metric_key: str, name: str) -> None:
    from ..plot import plot_history

    plot_history(result.history, path, metric_name=metric_key, title=name)


def _print_grad_norms(result, out) -> None:
    """Per-layer mean weight-gradient norms, for up to 10 epochs spread over
    the run (the first and last always)."""
    norms = result.grad_norms
    if not norms:
        return
    n = len(norms)
    shown = sorted({round(i * (n - 1) / 9) for i in range(10)}) if n > 10 else range(n)
    layers = len(norms[0])
    click.echo("mean weight-gradient norm per layer (input side first):", file=out)
    header = "epoch " + " ".join(f"{'W' + str(j + 1):>9}" for j in range(layers))
    click.echo(header, file=out)
    for e in shown:
        cells = " ".join(f"{v:9.2e}" for v in norms[e])
        click.echo(f"{e + 1:5d} {cells}", file=out)


def _build(widths, activation, loss, optimizer, lr, momentum, seed, dtype, init=None):
    """(model, loss, optimizer) from the registry's names: an MLP of widths
    with the activation between layers, its Linear layers initialized by
    ``init`` (None: the activation's preference); SGD takes the momentum; the
    optimizer is None for lbfgs (full-batch, no optimizer object)."""
    import fastbp

    model = fastbp.mlp(widths, activation, init=init, rng=seed, dtype=dtype)
    if optimizer == "lbfgs":
        return model, LOSSES[loss].cls(), None
    extra = {"momentum": momentum} if optimizer == "sgd" else {}
    opt = OPTIMIZERS[optimizer].cls(model.parameters(), lr=lr, **extra)
    return model, LOSSES[loss].cls(), opt


def _train_streamed(
    data, data_format, target, task, hidden, activation, loss, optimizer, lr,
    momentum, epochs, batch_size, seed, val_split, dtype, threads, save,
    shuffle_buffer, no_fuse, quiet, as_json, out, lr_schedule, early_stopping,
    patience, tol, grad_norms, plot, checkpoint, checkpoint_every, resume, init,
    **_,
) -> None:  # fmt: skip
    """fastbp train --stream: scan pass, then epochs read from disk."""
    import fastbp

    from ..data.loading import DataError
    from ..data.stream import file_source, scan, train_stream
    from ..training.checkpoint import CheckpointError

    source = file_source(data, format=data_format)
    try:
        with _warnings_to_stderr():
            stats = scan(
                source, target=target, task=task, dtype=dtype,
                val_fraction=val_split, seed=seed, name=data,
            )  # fmt: skip
        loss, n_outputs, metric = stats.coding(loss)
    except (DataError, ValueError) as exc:
        raise InputError(str(exc)) from None
    widths = [stats.n_features, *hidden, n_outputs]
    model, loss_fn, opt = _build(
        widths, activation, loss, optimizer, lr, momentum, seed, dtype, init
    )
    if not quiet:
        click.echo(
            f"fastbp {__version__}: {data} (streamed), {stats.n_train} training / "
            f"{stats.n_val} validation rows, {stats.n_features} features, "
            f"{stats.task}; MLP {'-'.join(map(str, widths))} {activation}, {loss}, "
            f"{opt!r}, {dtype}, shuffle buffer {shuffle_buffer}",
            file=out,
        )
        _print_resuming(resume, epochs, out)
    progress = EpochProgress(
        epochs, enabled=not quiet, stream=out, rows_per_epoch=stats.n_train
    )
    try:
        result = train_stream(
            model, loss_fn, opt, source, stats, epochs=epochs,
            batch_size=batch_size, shuffle_buffer=shuffle_buffer, seed=seed,
            metric=metric, fuse=False if no_fuse else None, threads=threads,
            callback=progress if progress.enabled else None,
            lr_schedule=lr_schedule, grad_norms=grad_norms,
            early_stopping=_stopping(
                early_stopping, lr_schedule, patience, tol, stats.n_val > 0
            ),
            checkpoint=checkpoint, checkpoint_every=checkpoint_every,
            resume=resume,
        )  # fmt: skip
    except fastbp.DivergenceError as exc:
        hint = "" if exc.before_training else f", for example --lr {lr / 10:g}"
        raise InputError(f"{exc}{hint}") from None
    except DataError as exc:
        raise InputError(str(exc)) from None
    except CheckpointError as exc:
        raise InputError(f"--resume: {exc}") from None
    finally:
        progress.close()
    if not quiet:
        _print_run_notes(result, grad_norms, out)
        _print_checkpoint_notes(result, checkpoint, out)
    if save is not None:
        stats.save(save, model, loss)
    metric_key = "r2" if metric == "r2" else "accuracy"
    if plot is not None:
        _plot(result, plot, metric_key, data)
    train_loss = result.loss[-1] if result.loss else math.nan
    val_metric = result.kept(result.val_metric)
    path = "(fused)" if result.fused else f"(layer path: {result.layer_path_reason})"
    click.echo(
        f"{result.samples_per_s:,.0f} samples/s, {result.steps_per_s:,.0f} "
        f"steps/s; trained {result.epochs} epochs ({result.steps} steps) in "
        f"{result.train_seconds:.3g} s, streamed; last epoch loss "
        f"{train_loss:.4g}"
        + (f", val {metric_key} {val_metric:.4f}" if val_metric is not None else "")
        + f" {path}",
        file=out,
    )
    if as_json:
        record = {
            "data": data,
            "stream": True,
            "task": stats.task,
            "fused": result.fused,
            "samples_per_s": result.samples_per_s,
            "steps_per_s": result.steps_per_s,
            "train_seconds": result.train_seconds,
            "epochs": result.epochs,
            "start_epoch": result.start_epoch,
            "steps": result.steps,
            "train_loss": train_loss,
            "val_loss": result.kept(result.val_loss),
            f"val_{metric_key}": val_metric,
            "architecture": widths,
            "shuffle_buffer": shuffle_buffer,
            "lr_schedule": lr_schedule,
            "early_stopping": early_stopping,
            "stop_reason": result.stop_reason,
            "best_epoch": result.best_epoch,
            "history": result.history,
        }
        if grad_norms:
            record["grad_norms"] = result.grad_norms
        click.echo(json.dumps(_strict(record), allow_nan=False))


def _print_truth_table(model, problem, stream) -> None:
    """Inputs, target and the model's P(class 1): its output (MSE, one unit) or
    the softmax of its two logits (cross-entropy)."""
    from ..kernels import softmax_forward

    out = model.predict(problem.X)
    if out.shape[1] == 2:
        softmax_forward(out, out)
    p1 = out[:, -1]
    click.echo(" x1  x2  target  prediction", file=stream)
    for row, t, y in zip(problem.X, problem.y, p1, strict=True):
        mark = "ok" if (y > 0.5) == (t > 0.5) else "WRONG"
        click.echo(f"{row[0]:3.0f} {row[1]:3.0f} {t:7d} {y:11.4f}  {mark}", file=stream)


@main.command()
@click.option(
    "--model",
    "model_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="A model file written by 'fastbp train --save'.",
)
@click.option(
    "--data",
    required=True,
    type=click.Path(dir_okay=False, allow_dash=True),
    help="A table with the model's feature columns (by name): CSV, TSV, "
    "Parquet or Feather; '-' for CSV on standard input.",
)
@click.option(
    "--format",
    "data_format",
    type=click.Choice(["csv", "tsv", "parquet", "feather"]),
    default=None,
    help="Format of --data. Default: by extension.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    callback=_output_file,
    help="Write predictions here (.csv, or .parquet) instead of standard output.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def predict(model_path, data, data_format, out, quiet):
    """Predict with a saved model; writes CSV or Parquet (labels or values)."""
    from ..data.loading import DataError
    from ..data.problem import Predictor
    from ..io.model import ModelFileError
    from ..io.outputs import PredictionWriter

    try:
        predictor = Predictor.load(model_path)
        kind = "labels" if predictor.task == "classification" else "values"
        # The bar goes to stderr (a terminal only), so stdout stays CSV.
        bar = progress_bar(desc="predicting", enabled=not quiet, stream=sys.stderr)
        with bar, PredictionWriter(out, kind) as writer:
            for predictions in predictor.predict_batches(data, data_format):
                writer.write(predictions)
                bar.update(len(predictions))
    except (ModelFileError, DataError, ValueError) as exc:
        raise InputError(str(exc)) from None
