"""What ``fastbp train`` prints: the header line, progress, notes, the
summary line and the ``--json`` record, one schema for every mode (in memory,
streamed, sharded, L-BFGS). Rank 0 alone prints under MPI."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
import time

import click
import numpy as np

from .._version import __version__
from ..progress import EpochProgress
from .config import MpiWorld, TrainConfig

__all__ = ["Reporter", "output_stream", "process_seconds", "strict_json"]

#: Fallback start of the process where the system does not say: when this
#: module was imported.
_IMPORTED = time.perf_counter()


def process_seconds() -> float:
    """Seconds since this process started, interpreter start-up and imports
    included (Linux: /proc; elsewhere since the CLI was imported)."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - _IMPORTED


def _times(value: float | None, scale: float) -> float | None:
    return None if value is None else value * scale


def strict_json(value):
    """value for strict JSON: an undefined figure (R^2 of one row) is null,
    not NaN, in nested lists and dicts too."""
    if isinstance(value, dict):
        return {key: strict_json(v) for key, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def output_stream(config: TrainConfig):
    """Where the run's lines go: stdout, or stderr when stdout carries the
    --json record."""
    return sys.stderr if config.as_json else sys.stdout


class Reporter:
    """Prints one run, to :func:`output_stream`."""

    def __init__(self, config: TrainConfig, job, world: MpiWorld) -> None:
        self.config, self.job, self.world = config, job, world
        self.out = output_stream(config)
        self.talk = not config.quiet
        self.progress = EpochProgress(
            config.epochs, enabled=self.talk, stream=self.out,
            rows_per_epoch=job.local_rows, loss_scale=job.loss_scale,
        )  # fmt: skip
        self.wall = 0.0

    def echo(self, text: str) -> None:
        click.echo(text, file=self.out)

    @contextlib.contextmanager
    def notices(self):
        """fastbp's log lines (what compiles, how long it took) on the run's
        stream while the block runs; dropped with --quiet and off rank 0."""
        talk = self.talk and self.world.leader
        handler = logging.StreamHandler(self.out) if talk else logging.NullHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger = logging.getLogger("fastbp")
        level = logger.level
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            yield
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)

    # --- before training -------------------------------------------------------

    def header(self, widths: list[int], optimizer, resumed) -> None:
        """The run in one line: data, rows, features, task, network."""
        if not self.talk:
            return
        c, job = self.config, self.job
        opt = repr(optimizer) if optimizer is not None else "'L-BFGS-B'"
        extra = f", shuffle buffer {c.shuffle_buffer}" if job.streamed else ""
        self.echo(
            f"fastbp {__version__}: {job.name}, {job.n_train} training / "
            f"{job.n_val} validation rows, {job.n_features} features, {job.task}; "
            f"MLP {'-'.join(map(str, widths))} {c.activation}, {job.loss}, {opt}, "
            f"{c.dtype}{extra}"
        )
        plan = job.plan
        if plan is not None:
            self.echo(f"columns: {plan.summary()}")
            for note in plan.notes:
                self.echo(f"note: {note}")
        if job.dropped:
            target = job.problem.target_name
            self.echo(
                f"note: {job.dropped} rows without a target ({target!r} missing) "
                "left out"
            )
        if job.loss_scale != 1.0:
            mean, std = job.prepared.target_scale
            self.echo(
                f"note: the target {job.problem.target_name!r} is trained as "
                f"(value - {mean:.4g}) / {std:.4g}; losses and predictions are in "
                "its own units"
            )
        self._resuming(resumed)

    def _resuming(self, resumed) -> None:
        """Where a resumed run starts (nothing when not resuming, or when the
        checkpoint has more epochs than asked for: an error follows)."""
        epochs = self.config.epochs
        if resumed is None or resumed.epochs_done > epochs:
            return
        if resumed.stop_reason is not None:
            left = (
                f"its run stopped after epoch {resumed.epochs_done}; nothing to train"
            )
        elif resumed.epochs_done >= epochs:
            left = "nothing to train"
        else:
            left = f"training epochs {resumed.epochs_done + 1}-{epochs}"
        self.echo(
            f"resuming {resumed.path}: {resumed.epochs_done} of {epochs} epochs "
            f"done, {left}"
        )

    def processes(self) -> None:
        """Each rank's pid: the launcher names a failed process by its pid."""
        world = self.world
        if not world.several:
            return
        pids = world.comm.gather(os.getpid(), root=0)
        if self.talk:
            ranks = ", ".join(f"rank {r} pid {pid}" for r, pid in enumerate(pids))
            self.echo(f"{len(pids)} MPI processes: {ranks}")

    # --- after training --------------------------------------------------------

    def notes(self, result, model) -> None:
        """The XOR truth table, the gradient-norm table, why training stopped
        early, where the last checkpoint went."""
        if not self.talk:
            return
        if self.config.xor:
            self._truth_table(model)
        if self.config.grad_norms:
            self._grad_norms(result)
        if result.stop_reason:
            best = f"; kept epoch {result.best_epoch}" if result.best_epoch else ""
            self.echo(
                f"stopped after epoch {result.epochs}: {result.stop_reason}{best}"
            )
        if self.config.checkpoint is not None and result.epochs > result.start_epoch:
            self.echo(f"checkpoint: epoch {result.epochs} in {self.config.checkpoint}")

    def _truth_table(self, model) -> None:
        """Inputs, target and the model's P(class 1): its output (MSE, one
        unit) or the softmax of its two logits (cross-entropy)."""
        problem = self.job.problem
        out = model.serve(problem.X)  # NumPy: four rows load no kernel
        if out.shape[1] == 2:
            out = np.exp(out - out.max(axis=1, keepdims=True))
            out /= out.sum(axis=1, keepdims=True)
        self.echo(" x1  x2  target  prediction")
        for row, t, y in zip(problem.X, problem.y, out[:, -1], strict=True):
            mark = "ok" if (y > 0.5) == (t > 0.5) else "WRONG"
            self.echo(f"{row[0]:3.0f} {row[1]:3.0f} {t:7d} {y:11.4f}  {mark}")

    def _grad_norms(self, result) -> None:
        """Per-layer mean weight-gradient norms, for up to 10 epochs spread
        over the run (the first and last always)."""
        norms = result.grad_norms
        if not norms:
            return
        n = len(norms)
        shown = (
            sorted({round(i * (n - 1) / 9) for i in range(10)}) if n > 10 else range(n)
        )
        layers = len(norms[0])
        self.echo("mean weight-gradient norm per layer (input side first):")
        self.echo("epoch " + " ".join(f"{'W' + str(j + 1):>9}" for j in range(layers)))
        for e in shown:
            self.echo(f"{e + 1:5d} " + " ".join(f"{v:9.2e}" for v in norms[e]))

    def summary(self, result, figures, widths) -> None:
        """The summary line (every rank computes; rank 0 prints), the saved
        model's path, and the --json record."""
        c, job = self.config, self.job
        train_loss, train_metric = figures
        key = "r2" if job.metric == "r2" else "accuracy"
        val_metric = result.kept(result.val_metric)
        path = (
            f"({result.kernel} kernel)"
            if result.fused
            else f"(layer path: {result.layer_path_reason})"
        )
        line = (
            f"{result.samples_per_s:,.0f} samples/s, {result.steps_per_s:,.0f} "
            f"steps/s, {result.us_per_step:.3g} us/step; trained {result.epochs} "
            f"epochs ({result.steps} steps) in {result.train_seconds:.3g} s"
            + (", streamed" if job.streamed else "")
            + f", compile {result.compile_seconds:.3g} s; "
            + ("last epoch loss" if job.streamed else "loss")
            + f" {train_loss:.4g}"
            + (f", train {key} {train_metric:.4f}" if train_metric is not None else "")
            + (f", val {key} {val_metric:.4f}" if val_metric is not None else "")
            + f" {path}; whole command {process_seconds():.3g} s"
        )
        if self.world.leader:
            self.echo(line)
        if c.save is not None and self.talk:
            self.echo(f"saved model to {c.save}")
        if c.as_json:
            record = self.record(result, figures, widths, key, val_metric)
            click.echo(json.dumps(strict_json(record), allow_nan=False))

    def record(self, result, figures, widths, key, val_metric) -> dict:
        """The --json record: the same keys in every mode, null where a
        figure was not measured."""
        c, job = self.config, self.job
        train_loss, train_metric = figures
        record = {
            "data": c.data,
            "stream": job.streamed,
            "processes": result.processes,
            "allreduce_seconds": result.allreduce_seconds,
            "sync_every": result.sync_every,
            "task": job.task,
            "fused": result.fused,
            "layer_path_reason": result.layer_path_reason,
            "samples_per_s": result.samples_per_s,
            "steps_per_s": result.steps_per_s,
            "us_per_step": result.us_per_step,
            "train_seconds": result.train_seconds,
            "compile_seconds": result.compile_seconds,
            "kernel": result.kernel,
            "kernel_reason": result.kernel_reason,
            "compiled": result.compiled,
            "compiling_seconds": result.compiling_seconds,
            "wall_seconds": self.wall,
            "process_seconds": process_seconds(),
            "epochs": result.epochs,
            "start_epoch": result.start_epoch,
            "steps": result.steps,
            "train_rows": job.n_train,
            "validation_rows": job.n_val,
            "train_loss": train_loss,
            "val_loss": _times(result.kept(result.val_loss), job.loss_scale),
            f"train_{key}": train_metric,
            f"val_{key}": val_metric,
            "architecture": widths,
            "activation": c.activation,
            "loss": job.loss,
            "optimizer": c.optimizer,
            "lr": c.lr,
            "l2": c.l2,
            "batch_size": c.batch_size,
            "seed": c.seed,
            "dtype": c.dtype,
            "shuffle_buffer": c.shuffle_buffer if job.streamed else None,
            "lr_schedule": c.lr_schedule,
            "early_stopping": c.early_stopping,
            "stop_reason": result.stop_reason,
            "best_epoch": result.best_epoch,
            "history": self._history(result),
            "dropped_rows": job.dropped,
            "plan": None if job.plan is None else job.plan.to_json(),
        }
        if c.grad_norms:
            record["grad_norms"] = result.grad_norms
        return record

    def _history(self, result) -> list[dict]:
        """The per-epoch history, losses in the target's units."""
        scale = self.job.loss_scale
        rows = result.history
        if scale != 1.0:
            for row in rows:
                for key in ("train_loss", "val_loss"):
                    if row[key] is not None:
                        row[key] *= scale
        return rows
