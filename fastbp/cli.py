"""The ``fastbp`` command line: train, predict, bench.

This module only parses options, calls the Python API and prints. Every input
error ends in one line ``Error: ...`` naming the file, line, column or option
at fault, and exit status 2.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass

import click
import numpy as np

from ._version import __version__

# Defaults that solve XOR for 100 of seeds 0-99 (see tests/test_cli.py and the
# README): 2-8-1 tanh network, SGD with momentum, full-batch.
XOR_DEFAULTS = dict(
    hidden="8",
    activation="tanh",
    optimizer="sgd",
    lr=0.1,
    momentum=0.9,
    epochs=1000,
    batch_size=4,
    val_split=0.0,
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
)


class InputError(click.ClickException):
    """A one-line error about the user's input; exit status 2."""

    exit_code = 2


def _positive(value, option: str, kind=int):
    if value is None:
        return None
    if not (value > 0) or (kind is float and not math.isfinite(value)):
        raise InputError(f"{option} must be positive, got {value}")
    return value


def _parse_hidden(text: str) -> list[int]:
    parts = [p.strip() for p in text.split(",")] if text.strip() else []
    if not parts or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise InputError(
            f"--hidden: {text!r} is not a comma-separated list of positive "
            "integers such as 8 or 64,64"
        )
    return [int(p) for p in parts]


@dataclass
class Problem:
    """What the command trains on, ready for fastbp.train."""

    name: str
    X: np.ndarray
    y: np.ndarray  # float (n, 1) targets or int (n,) labels
    feature_names: tuple
    target_name: str
    task: str  # "regression" or "classification"
    classes: tuple | None


def _load_problem(data: str, target, task) -> Problem:
    from .data import DataError, load_csv, xor

    if data == "xor":
        X, T = xor(np.float64)
        return Problem(
            "xor",
            X,
            T[:, 0].astype(np.int64),
            ("x1", "x2"),
            "xor",
            "classification",
            ("0", "1"),
        )
    try:
        ds = load_csv(data, target=target, task=task)
    except DataError as exc:
        raise InputError(str(exc)) from None
    return Problem(
        data, ds.X, ds.y, tuple(ds.feature_names), ds.target_name, ds.task, ds.classes
    )


def _targets(problem: Problem, loss: str) -> tuple[np.ndarray, int, str]:
    """(training targets, output units, metric) for the chosen loss."""
    if problem.task == "regression":
        return problem.y.reshape(-1, 1), 1, "r2"
    n_classes = len(problem.classes)
    if loss == "ce":
        return problem.y, n_classes, "accuracy"
    if n_classes == 2:  # one output, target 0/1, thresholded at 0.5
        return problem.y.astype(np.float64).reshape(-1, 1), 1, "binary_accuracy"
    return np.eye(n_classes)[problem.y], n_classes, "accuracy"


class _Progress:
    """click's progress bar on a terminal; plain lines about every 10% else."""

    def __init__(self, epochs: int, quiet: bool, as_json: bool) -> None:
        self.epochs = epochs
        self.bar = None
        self.every = max(1, epochs // 10)
        self.next_line = self.every
        self.enabled = not quiet
        self.stream = sys.stderr if as_json else sys.stdout
        if self.enabled and self.stream.isatty():
            self.bar = click.progressbar(
                length=epochs, label="training", file=self.stream
            )
            self.bar.__enter__()
        self.shown = 0

    def __call__(self, epoch: int, result) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(epoch - self.shown)
            self.shown = epoch
            return
        if epoch >= self.next_line or epoch == self.epochs:
            line = (
                f"epoch {epoch:>{len(str(self.epochs))}}/{self.epochs}  "
                f"loss {result.loss[-1]:.6g}"
            )
            if result.val_loss:
                line += f"  val_loss {result.val_loss[-1]:.6g}"
                line += f"  val_{result.metric_name} {result.val_metric[-1]:.4f}"
            click.echo(line, file=self.stream)
            self.next_line = (epoch // self.every + 1) * self.every

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fastbp")
def main() -> None:
    """fastbp: a JIT-compiled backpropagation engine for MLPs on the CPU.

    \b
    fastbp train --data xor                 train the XOR network
    fastbp train --data examples/iris.csv   train on a CSV file
    fastbp predict --model m.npz --data f.csv
    fastbp bench                            speed benchmarks
    """


@main.command()
@click.option(
    "--data",
    required=True,
    metavar="xor|PATH.csv",
    help="'xor' for the built-in XOR set, or a CSV file with a header row.",
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
    metavar="8|64,64",
    help="Hidden layer widths, comma-separated. [xor: 8; csv: 32]",
)
@click.option(
    "--activation",
    type=click.Choice(["relu", "tanh", "sigmoid"]),
    default=None,
    help="Hidden activation. [xor: tanh; csv: relu]",
)
@click.option(
    "--loss",
    type=click.Choice(["mse", "ce"]),
    default=None,
    help="Default: ce for classification, mse for regression and xor.",
)
@click.option(
    "--optimizer",
    type=click.Choice(["sgd", "adam"]),
    default=None,
    help="[xor: sgd; csv: adam]",
)
@click.option(
    "--lr", type=float, default=None, help="Learning rate. [xor: 0.1; csv: 0.01]"
)
@click.option("--momentum", type=float, default=None, help="SGD momentum. [0.9]")
@click.option("--epochs", type=int, default=None, help="[xor: 1000; csv: 200]")
@click.option("--batch-size", type=int, default=None, help="[xor: 4; csv: 16]")
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seeds weight init, shuffling and the validation split.",
)
@click.option(
    "--val-split",
    type=float,
    default=None,
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
    type=int,
    default=None,
    help="Cap on BLAS and Numba threads. Default: all cores.",
)
@click.option(
    "--save",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the trained model to this .npz file.",
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
    target,
    task,
    hidden,
    activation,
    loss,
    optimizer,
    lr,
    momentum,
    epochs,
    batch_size,
    seed,
    val_split,
    dtype,
    threads,
    save,
    no_fuse,
    quiet,
    as_json,
):
    """Train an MLP on XOR or a CSV file and report throughput."""
    import fastbp

    from .data import Standardizer, train_val_split

    defaults = XOR_DEFAULTS if data == "xor" else CSV_DEFAULTS
    hidden = _parse_hidden(hidden if hidden is not None else defaults["hidden"])
    activation = activation or defaults["activation"]
    optimizer = optimizer or defaults["optimizer"]
    lr = _positive(lr if lr is not None else defaults["lr"], "--lr", float)
    momentum = momentum if momentum is not None else defaults["momentum"]
    if not (0 <= momentum < 1):
        raise InputError(f"--momentum must be in [0, 1), got {momentum}")
    epochs = _positive(epochs if epochs is not None else defaults["epochs"], "--epochs")
    batch_size = _positive(
        batch_size if batch_size is not None else defaults["batch_size"],
        "--batch-size",
    )
    val_split = val_split if val_split is not None else defaults["val_split"]
    if not (0 <= val_split < 1):
        raise InputError(f"--val-split must be in [0, 1), got {val_split}")
    if threads is not None:
        _positive(threads, "--threads")
    if save is not None:
        _check_writable(save)

    problem = _load_problem(data, target, task)
    if loss is None:
        loss = "ce" if problem.task == "classification" and data != "xor" else "mse"
    if loss == "ce" and problem.task != "classification":
        raise InputError("--loss ce needs a classification target; use --loss mse")
    targets, n_outputs, metric = _targets(problem, loss)

    n = problem.X.shape[0]
    stratify = problem.y if problem.task == "classification" else None
    try:
        train_idx, val_idx = train_val_split(n, val_split, seed, stratify=stratify)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    # XOR's 0/1 inputs are used as they are; CSV features are standardized with
    # the training rows' statistics, stored in the model file for predict.
    scaler = None if data == "xor" else Standardizer().fit(problem.X[train_idx])
    X = np.ascontiguousarray(
        problem.X if scaler is None else scaler.transform(problem.X), dtype=dtype
    )

    widths = [problem.X.shape[1], *hidden, n_outputs]
    model = fastbp.mlp(widths, activation, rng=seed, dtype=dtype)
    loss_fn = fastbp.CrossEntropyLoss() if loss == "ce" else fastbp.MSELoss()
    if optimizer == "sgd":
        opt = fastbp.SGD(model.parameters(), lr=lr, momentum=momentum)
    else:
        opt = fastbp.Adam(model.parameters(), lr=lr)

    if not quiet:
        click.echo(
            f"fastbp {__version__}: {problem.name}, {len(train_idx)} training / "
            f"{len(val_idx)} validation rows, {problem.X.shape[1]} features, "
            f"{problem.task}; MLP {'-'.join(map(str, widths))} {activation}, "
            f"{loss}, {opt!r}, {dtype}",
            file=sys.stderr if as_json else sys.stdout,
        )
    progress = _Progress(epochs, quiet, as_json)
    val = (X[val_idx], targets[val_idx]) if len(val_idx) else None
    wall = time.perf_counter()
    try:
        result = fastbp.train(
            model,
            loss_fn,
            opt,
            X[train_idx],
            targets[train_idx],
            epochs=epochs,
            batch_size=batch_size,
            seed=seed,
            val=val,
            metric=metric,
            fuse=False if no_fuse else None,
            threads=threads,
            callback=progress if progress.enabled else None,
        )
    except fastbp.DivergenceError as exc:
        raise InputError(f"{exc}, for example --lr {lr / 10:g}") from None
    finally:
        progress.close()
    wall = time.perf_counter() - wall

    train_loss, train_metric = fastbp.evaluate(
        model, loss_fn, X[train_idx], targets[train_idx], metric
    )
    val_loss = result.val_loss[-1] if result.val_loss else None
    val_metric = result.val_metric[-1] if result.val_metric else None
    metric_key = "r2" if metric == "r2" else "accuracy"

    if problem.name == "xor" and not quiet:
        _print_truth_table(model, X, problem, as_json)
    if save is not None:
        from .io import save_model

        save_model(save, model, meta=_meta(problem, scaler, loss, metric))
    summary = (
        f"{result.samples_per_s:,.0f} samples/s, {result.steps_per_s:,.0f} steps/s, "
        f"{result.us_per_step:.3g} us/step; trained {result.epochs} epochs "
        f"({result.steps} steps) in {result.train_seconds:.3g} s, compile "
        f"{result.compile_seconds:.3g} s; loss {train_loss:.4g}, "
        f"train {metric_key} {train_metric:.4f}"
        + (f", val {metric_key} {val_metric:.4f}" if val_metric is not None else "")
        + (" (fused)" if result.fused else " (layer path)")
    )
    click.echo(summary, file=sys.stderr if as_json else sys.stdout)
    if save is not None and not quiet:
        click.echo(f"saved model to {save}", file=sys.stderr if as_json else sys.stdout)
    if as_json:
        record = {
            "data": problem.name,
            "task": problem.task,
            "fused": result.fused,
            "samples_per_s": result.samples_per_s,
            "steps_per_s": result.steps_per_s,
            "us_per_step": result.us_per_step,
            "train_seconds": result.train_seconds,
            "compile_seconds": result.compile_seconds,
            "wall_seconds": wall,
            "epochs": result.epochs,
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
        }
        # Strict JSON: an undefined figure (R^2 of one row) is null, not NaN.
        clean = {
            key: None if isinstance(v, float) and not math.isfinite(v) else v
            for key, v in record.items()
        }
        click.echo(json.dumps(clean, allow_nan=False))


def _check_writable(path: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InputError(f"--save: folder {folder!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise InputError(f"--save: folder {folder!r} is not writable")


def _meta(problem: Problem, scaler, loss: str, metric: str) -> dict:
    return {
        "feature_names": list(problem.feature_names),
        "target_name": problem.target_name,
        "task": problem.task,
        "classes": list(problem.classes) if problem.classes else None,
        "standardizer": None
        if scaler is None
        else {"mean": scaler.mean.tolist(), "std": scaler.std.tolist()},
        "loss": loss,
        "metric": metric,
    }


def _print_truth_table(model, X, problem: Problem, as_json: bool) -> None:
    """Inputs, target and the model's P(class 1): its output (MSE, one unit) or
    the softmax of its two logits (cross-entropy)."""
    from .kernels import softmax_forward

    out = model.predict(X)
    if out.shape[1] == 2:
        softmax_forward(out, out)
    p1 = out[:, -1]
    stream = sys.stderr if as_json else sys.stdout
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
    type=click.Path(dir_okay=False),
    help="CSV file with the model's feature columns (by name).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write predictions here instead of standard output.",
)
def predict(model_path, data, out):
    """Predict with a saved model; writes CSV (class labels or values)."""
    from .data import DataError, Standardizer, load_features
    from .io import ModelFileError, load_model, write_text_atomic

    try:
        model, meta = load_model(model_path)
    except ModelFileError as exc:
        raise InputError(str(exc)) from None
    try:
        X = load_features(data, meta["feature_names"])
    except DataError as exc:
        raise InputError(str(exc)) from None
    if meta["standardizer"] is not None:
        X = Standardizer(**meta["standardizer"]).transform(X)
    X = np.ascontiguousarray(X, dtype=model.dtype)
    Y = model.predict(X)
    lines = ["prediction"]
    classes = meta.get("classes")
    if meta["task"] == "classification":
        if Y.shape[1] == 1:
            index = (Y[:, 0] > 0.5).astype(int)
        else:
            index = np.argmax(Y, axis=1)
        lines += [_csv_field(classes[i]) for i in index]
    else:
        lines += [repr(float(v)) for v in Y[:, 0]]
    text = "\n".join(lines) + "\n"
    if out is None:
        click.echo(text, nl=False)
    else:
        write_text_atomic(out, text)


def _csv_field(text: str) -> str:
    if any(c in text for c in ',"\n\r') or text != text.strip():
        return '"' + text.replace('"', '""') + '"'
    return text


@main.command()
@click.option(
    "--quick",
    is_flag=True,
    help="Smoke run: two tiny cases, one round, no thread scaling.",
)
@click.option(
    "--threads",
    type=int,
    default=None,
    help="Threads for every library (BLAS, Numba, torch, XLA). "
    "Default: each library's own default.",
)
@click.option(
    "--case",
    "case_names",
    multiple=True,
    help="Run only these cases (repeatable): xor-2-8-1, 32-64-1, "
    "784-256-10, 1024-1024-1024-10.",
)
@click.option(
    "--budget",
    type=float,
    default=0.25,
    show_default=True,
    help="Seconds per timing; each engine is timed once per round.",
)
@click.option("--rounds", type=int, default=5, show_default=True)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Write results.json and results.md into this folder.",
)
def bench(quick, threads, case_names, budget, rounds, out_dir):
    """Speed benchmarks: fastbp against NumPy, PyTorch and JAX (when installed)."""
    from .bench import suite

    if threads is not None:
        _positive(threads, "--threads")
    _positive(budget, "--budget", float)
    _positive(rounds, "--rounds")
    cases = suite.CASES
    if quick:
        cases, budget, rounds = suite.quick_cases(), min(budget, 0.02), 1
    if case_names:
        unknown = [c for c in case_names if c not in suite.CASES]
        if unknown:
            raise InputError(
                f"--case: unknown case {unknown[0]!r}; choose from "
                f"{', '.join(suite.CASES)}"
            )
        cases = {c: suite.CASES[c] for c in case_names}
    result = suite.run(
        cases=cases,
        budget=budget,
        rounds=rounds,
        threads=threads,
        peak_size=256 if quick else 2048,
        scaling=not quick,
        micro_shapes=((4, 2, 8),)
        if quick
        else ((4, 2, 8), (64, 32, 64), (128, 784, 256)),
        echo=click.echo,
    )
    click.echo("")
    click.echo(suite.markdown(result))
    if out_dir is not None:
        json_path, md_path = suite.write(result, out_dir)
        click.echo(f"wrote {json_path} and {md_path}")
