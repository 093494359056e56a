"""The command line's options, each declared once.

``TRAIN_OPTIONS`` are ``fastbp train``'s options in the order ``--help``
lists them; :func:`train_options` applies them to a command whose function
takes them all as keywords and hands them to
:meth:`fastbp.cli.config.TrainConfig.from_options`, which applies the
defaults of the XOR and table jobs and refuses combinations that do not go
together. The callbacks here check one value each.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import click

from ..nn.parts import ACTIVATIONS, OPTIMIZERS, builtin_parts
from ..training.schedules import SCHEDULES
from .params import finite, na_values, names, output_file, parse_hidden

__all__ = ["TRAIN_OPTIONS", "train_options"]

builtin_parts()  # the choices below list them


def _hidden(ctx: click.Context, param: click.Parameter, text: str | None):
    """--hidden: "8" or "64,64" as a list of positive widths."""
    if text is None:
        return None
    widths = parse_hidden(text)
    if widths is None:
        raise click.BadParameter(
            f"{text!r} is not a comma-separated list of positive integers such "
            "as 8 or 64,64",
            ctx=ctx,
            param=param,
        )
    return widths


TRAIN_OPTIONS = [
    click.option(
        "--data",
        required=True,
        metavar="xor|PATH",
        help="'xor' for the built-in XOR set, or a table with a header row: CSV, "
        "TSV (also gzip/zstd), Parquet or Feather; '-' for CSV on standard input.",
    ),
    click.option(
        "--format",
        "data_format",
        type=click.Choice(["csv", "tsv", "parquet", "feather"]),
        default=None,
        help="Format of --data. Default: by extension (.csv, .tsv, .csv.gz, "
        ".csv.zst, .parquet, .feather); '-' reads CSV from standard input.",
    ),
    click.option(
        "--target",
        default=None,
        metavar="NAME|INDEX",
        help="Target column: name or 0-based index. Default: the last column.",
    ),
    click.option(
        "--task",
        type=click.Choice(["regression", "classification"]),
        default=None,
        help="Default: inferred from the target column.",
    ),
    click.option(
        "--categorical",
        multiple=True,
        callback=names,
        metavar="COLS",
        help="Columns to one-hot code whatever they hold (comma-separated, or "
        "the option repeated).",
    ),
    click.option(
        "--numeric",
        multiple=True,
        callback=names,
        metavar="COLS",
        help="Columns to read as numbers; cells that are not numbers are missing.",
    ),
    click.option(
        "--drop",
        multiple=True,
        callback=names,
        metavar="COLS",
        help="Columns to leave out.",
    ),
    click.option(
        "--features",
        multiple=True,
        callback=names,
        metavar="COLS",
        help="The only columns to use (besides the target). Default: every "
        "column the plan gives a role.",
    ),
    click.option(
        "--na-values",
        default=None,
        callback=na_values,
        metavar="LIST",
        help="Comma-separated spellings of a missing cell, replacing the "
        "default: empty, NA, N/A, NaN, nan, null, NULL, None, n/a, #N/A.",
    ),
    click.option(
        "--max-categories",
        type=click.IntRange(min=1),
        default=20,
        show_default=True,
        help="Levels one-hot coded per categorical column; rarer levels and "
        "levels unseen in training share one 'other' input.",
    ),
    click.option(
        "--strict",
        is_flag=True,
        help="Clean numbers only: the first missing or non-numeric cell is an "
        "error naming the file, line (or data row) and column.",
    ),
    click.option(
        "--hidden",
        default=None,
        callback=_hidden,
        metavar="8|64,64",
        help="Hidden layer widths, comma-separated. [xor: 8; csv: 32]",
    ),
    click.option(
        "--activation",
        type=click.Choice(sorted(ACTIVATIONS)),
        default=None,
        help="Hidden activation (the registered ones, default settings). "
        "[xor: tanh; csv: relu]",
    ),
    click.option(
        "--loss",
        # The losses fastbp.problem.LOSS_NAMES codes targets for (that module is
        # imported only when training runs).
        type=click.Choice(["ce", "mse"]),
        default=None,
        help="Default: ce for classification, mse for regression and xor.",
    ),
    click.option(
        "--optimizer",
        type=click.Choice([*sorted(OPTIMIZERS), "lbfgs"]),
        default=None,
        help="lbfgs: full-batch L-BFGS (scipy), --epochs iterations at most. "
        "[xor: sgd; csv: adam]",
    ),
    click.option(
        "--lr-schedule",
        type=click.Choice(SCHEDULES),
        default="constant",
        show_default=True,
        help="invscaling: lr/(t+1)^0.5 (t samples seen); adaptive: lr/5 when "
        "the monitored value stalls (see --patience); step: lr/10 every third of "
        "--epochs; cosine: down to 0 at the last epoch.",
    ),
    click.option(
        "--early-stopping",
        is_flag=True,
        help="Stop when the validation metric (the training loss without "
        "--val-split) has not improved by more than --tol for more than "
        "--patience epochs; keep the best epoch's weights.",
    ),
    click.option(
        "--patience",
        type=click.IntRange(min=1),
        default=10,
        show_default=True,
        help="Epochs without improvement that --early-stopping and the adaptive "
        "schedule tolerate.",
    ),
    click.option(
        "--tol",
        type=click.FloatRange(min=0, max=math.inf, max_open=True),
        default=1e-4,
        show_default=True,
        callback=finite,
        help="Improvement that counts, for --early-stopping and adaptive; "
        "gradient tolerance for lbfgs.",
    ),
    click.option(
        "--grad-norms",
        is_flag=True,
        help="Print each layer's mean weight-gradient norm per epoch (measured "
        "inside the fused kernel): vanishing or exploding gradients at a glance.",
    ),
    click.option(
        "--plot",
        type=click.Path(dir_okay=False),
        default=None,
        callback=output_file,
        help="Draw the training/validation loss and metric per epoch to this "
        "image (.png, .pdf, .svg); needs matplotlib: pip install 'fastbp[plot]'.",
    ),
    click.option(
        "--lr",
        type=click.FloatRange(min=0, min_open=True, max=math.inf, max_open=True),
        default=None,
        callback=finite,
        help="Learning rate. [xor: 0.1; csv: 0.01]",
    ),
    click.option(
        "--l2",
        type=click.FloatRange(min=0, max=math.inf, max_open=True),
        default=None,
        callback=finite,
        help="L2 penalty: each batch's loss gains 0.5 * L2 * sum(W**2) / its "
        "rows (scikit-learn's alpha). [xor: 0; csv: 0.0001]",
    ),
    click.option(
        "--momentum",
        type=click.FloatRange(min=0, max=1, max_open=True),
        default=None,
        callback=finite,
        help="SGD momentum. [0.9]",
    ),
    click.option(
        "--epochs",
        type=click.IntRange(min=1),
        default=None,
        help="[xor: 1000; csv: 200]",
    ),
    click.option(
        "--batch-size",
        type=click.IntRange(min=1),
        default=None,
        help="[xor: 4; csv: 16]",
    ),
    click.option(
        "--seed",
        type=click.IntRange(min=0),
        default=0,
        show_default=True,
        help="Seeds weight init, shuffling and the validation split.",
    ),
    click.option(
        "--val-split",
        type=click.FloatRange(min=0, max=1, max_open=True),
        default=None,
        callback=finite,
        help="Fraction of rows held out for validation, in [0, 1). [xor: 0; csv: 0.2]",
    ),
    click.option(
        "--dtype",
        type=click.Choice(["float32", "float64"]),
        default="float32",
        show_default=True,
    ),
    click.option(
        "--threads",
        type=click.IntRange(min=1),
        default=None,
        help="Cap on BLAS and Numba threads. Default: all cores.",
    ),
    click.option(
        "--save",
        type=click.Path(dir_okay=False),
        default=None,
        callback=output_file,
        help="Write the trained model to this .npz file.",
    ),
    click.option(
        "--stream",
        is_flag=True,
        help="Train from the file read again each epoch, record batch by record "
        "batch, in memory that does not grow with the file (not for xor or -).",
    ),
    click.option(
        "--shard",
        is_flag=True,
        help="Under mpiexec: each process reads only its share of the file (CSV "
        "byte ranges, Parquet row groups) and trains on it; statistics are shared. "
        "Shuffling is per shard, so the model differs from one process's.",
    ),
    click.option(
        "--sync-every",
        type=click.IntRange(min=1),
        default=1,
        show_default=True,
        help="Under mpiexec: 1 all-reduces the gradients every step (the model of "
        "one process); K > 1 averages the weights every K steps instead (local "
        "SGD), for networks whose step is shorter than the all-reduce.",
    ),
    click.option(
        "--shuffle-buffer",
        type=click.IntRange(min=1, max=1 << 30),
        default=65536,
        show_default=True,
        help="With --stream: rows the approximate shuffle draws from; at least the "
        "row count shuffles exactly as in-memory training does.",
    ),
    click.option(
        "--checkpoint",
        type=click.Path(dir_okay=False),
        default=None,
        callback=output_file,
        help="Write a checkpoint (weights, optimizer and schedule state, shuffle "
        "state, history) to this file every --checkpoint-every epochs and after "
        "the last, atomically: an interrupted write leaves the previous one.",
    ),
    click.option(
        "--checkpoint-every",
        type=click.IntRange(min=1),
        default=None,
        metavar="K",
        help="Epochs between checkpoints (with --checkpoint). [1]",
    ),
    click.option(
        "--resume",
        type=click.Path(dir_okay=False),
        default=None,
        help="Continue the run of this checkpoint up to --epochs epochs in all, "
        "as if it had never stopped; give the options of the run that wrote it.",
    ),
    click.option(
        "--no-fuse",
        is_flag=True,
        help="Use the layer-by-layer path instead of the fused epoch kernel.",
    ),
    click.option("--quiet", "-q", is_flag=True, help="Print only the summary line."),
    click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="End stdout with one JSON object of the results.",
    ),
]


def train_options(command: Callable) -> Callable:
    """Apply every option of TRAIN_OPTIONS to command, in order."""
    for option in reversed(TRAIN_OPTIONS):
        command = option(command)
    return command
