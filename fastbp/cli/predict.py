"""``fastbp predict``, ``fastbp evaluate`` and ``fastbp inspect``: a saved
model's predictions for a table, its score on a table that holds the target,
and what the model file expects and holds."""

from __future__ import annotations

import json
import math
import sys

import click

from ..progress import progress as progress_bar
from .errors import InputError
from .params import names, output_file
from .report import strict_json

__all__ = ["predict", "evaluate", "inspect"]

_FORMAT = click.option(
    "--format",
    "data_format",
    type=click.Choice(["csv", "tsv", "parquet", "feather"]),
    default=None,
    help="Format of --data. Default: by extension.",
)
_MODEL = click.option(
    "--model",
    "model_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="A model file written by 'fastbp train --save'.",
)
_DATA = click.option(
    "--data",
    required=True,
    type=click.Path(dir_okay=False, allow_dash=True),
    help="A table with the model's columns (by name): CSV, TSV, Parquet or "
    "Feather; '-' for CSV on standard input.",
)


def _header(data: str, data_format: str | None) -> list[str]:
    """The data file's column names ([] for standard input); one line when
    the file cannot be opened."""
    from ..data.loading import DataError
    from ..data.tables import header_of

    if data == "-":
        return []
    try:
        return header_of(data, data_format)
    except (DataError, ValueError) as exc:
        raise InputError(str(exc)) from None


def _load(model_path: str):
    """The model file's Predictor (one-line error)."""
    from ..data.predictor import Predictor
    from ..io.model import ModelFileError

    try:
        return Predictor.load(model_path)
    except ModelFileError as exc:
        raise InputError(str(exc)) from None


class Scoring:
    """The score of predictions against the file's target column, batch by
    batch, as ``fastbp evaluate`` reports it: rows without a target (or with
    a label the model does not know) are counted and left out."""

    def __init__(self, predictor) -> None:
        from ..training.metrics import ClassificationScore, RegressionScore

        self.predictor = predictor
        self.classification = predictor.task == "classification"
        self.score = (
            ClassificationScore(predictor.classes)
            if self.classification
            else RegressionScore()
        )
        self.skipped = 0

    def add(self, outputs, column) -> None:
        from ..data.raw import code_target

        p = self.predictor
        na = p.plan.na_values if p.plan is not None else ("",)
        if self.classification:
            values = _class_values(p)
            y, known = code_target(column, "classification", p.classes, values, na)
            self.score.add(y[known], p.proba(outputs[known]))
        else:
            y, known = code_target(column, "regression", None, None, na)
            self.score.add(y[known, 0], p.decode(outputs[known]))
        self.skipped += int((~known).sum())

    def result(self) -> dict:
        record = self.score.result()
        record["rows_without_target"] = self.skipped
        return record

    def line(self) -> str:
        r = self.result()
        if self.classification:
            text = f"accuracy {r['accuracy']:.4f}, log-loss {r['log_loss']:.4f}"
        else:
            text = f"R^2 {r['r2']:.4f}, RMSE {r['rmse']:.4g}, MAE {r['mae']:.4g}"
        skipped = f"; {self.skipped} rows without a known target left out"
        return f"{text} on {r['rows']} rows" + (skipped if self.skipped else "")


def _class_values(predictor):
    """The numeric values of the classes when every label is a number (so
    that 1 and 1.0 in the file are one class), else None."""
    import numpy as np

    try:
        values = np.array([float(c) for c in predictor.classes])
    except ValueError:
        return None
    order = np.argsort(values)
    if not np.all(order == np.arange(len(values))) or len(set(values)) < len(values):
        return None
    return values


def _batches(predictor, data, data_format, carry, bar):
    """The Predictor's batches of a file, its errors as one line."""
    from ..data.loading import DataError

    try:
        for outputs, columns in predictor.batches(data, data_format, carry=carry):
            bar.update(len(outputs))
            yield outputs, columns
    except (DataError, ValueError) as exc:
        raise InputError(str(exc)) from None


def _check_out(out: str | None, model_path: str, data: str) -> None:
    """--out: neither the model nor the data file, nor a fastbp archive
    (predictions are CSV or Parquet, never written over another kind)."""
    from .config import refuse_other_kind, same_file

    if out is None or out == "-":
        return
    for flag, path in (("--model", model_path), ("--data", data)):
        if path != "-" and same_file(out, path):
            raise InputError(f"--out would overwrite the {flag} file {out!r}")
    refuse_other_kind("--out", out, ("other",))


@click.command()
@_MODEL
@_DATA
@_FORMAT
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    callback=output_file,
    help="Write predictions here (.csv, or .parquet) instead of standard output.",
)
@click.option(
    "--proba",
    is_flag=True,
    help="Add one probability column per class, named proba_<class>.",
)
@click.option(
    "--keep",
    multiple=True,
    callback=names,
    metavar="COLS",
    help="Columns of --data to write before the prediction (IDs), comma-separated.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the run (rows, and the score when --data holds the target) "
    "as one JSON object on standard output; needs --out.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar, no score line.")
def predict(model_path, data, data_format, out, proba, keep, as_json, quiet):
    """Predict with a saved model; writes CSV or Parquet (labels or values).

    When --data holds the model's target column, its score goes to standard
    error (accuracy and log-loss, or R^2, RMSE and MAE)."""
    from ..io.outputs import PredictionWriter

    if as_json and out is None:
        raise InputError(
            "--json needs --out FILE: standard output carries the JSON record"
        )
    _check_out(out, model_path, data)
    predictor = _load(model_path)
    if proba and predictor.task != "classification":
        raise InputError("--proba needs a classification model; this one regresses")
    present = _header(data, data_format)
    missing = [c for c in keep if present and c not in present]
    if missing:
        raise InputError(
            f"--keep: {data} has no column {', '.join(map(repr, missing))}"
        )
    target = predictor.target_name
    scoring = Scoring(predictor) if target in present else None
    carry = (*keep, *([target] if scoring else []))
    kind = "labels" if predictor.task == "classification" else "values"
    # The bar goes to stderr (a terminal only), so stdout stays CSV.
    bar = progress_bar(desc="predicting", enabled=not quiet, stream=sys.stderr)
    try:
        with bar, PredictionWriter(out, kind) as writer:
            for outputs, columns in _batches(predictor, data, data_format, carry, bar):
                after = None
                if proba:
                    p = predictor.proba(outputs)
                    after = {
                        f"proba_{c}": p[:, k] for k, c in enumerate(predictor.classes)
                    }
                writer.write(
                    predictor.decode(outputs),
                    before={c: columns[c] for c in keep},
                    after=after,
                )
                if scoring is not None:
                    scoring.add(outputs, columns[target])
    except (ValueError, OSError) as exc:
        raise InputError(str(exc)) from None
    if scoring is not None and not quiet and not as_json:
        click.echo(f"score: {scoring.line()}", err=True)
    if as_json:
        record = {"model": model_path, "data": data, "rows": writer.rows, "out": out}
        record["score"] = scoring.result() if scoring is not None else None
        click.echo(json.dumps(strict_json(record), allow_nan=False))


@click.command()
@_MODEL
@_DATA
@_FORMAT
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def evaluate(model_path, data, data_format, as_json, quiet):
    """Score a saved model on a table that holds its target: accuracy,
    log-loss and the confusion matrix, or R^2, RMSE and MAE."""
    predictor = _load(model_path)
    target = predictor.target_name
    present = _header(data, data_format) if data != "-" else [target]
    if present and target not in present:
        raise InputError(
            f"{data}: no column {target!r}, the model's target; evaluate needs it"
        )
    scoring = Scoring(predictor)
    bar = progress_bar(desc="evaluating", enabled=not quiet, stream=sys.stderr)
    with bar:
        for outputs, columns in _batches(predictor, data, data_format, (target,), bar):
            scoring.add(outputs, columns[target])
    record = {"model": model_path, "data": data, "task": predictor.task}
    record.update(scoring.result())
    if as_json:
        click.echo(json.dumps(strict_json(record), allow_nan=False))
        return
    click.echo(f"{data}: {scoring.line()}")
    if scoring.classification:
        _confusion(record)


def _confusion(record: dict) -> None:
    """The confusion matrix, true classes down, predicted across."""
    classes = [str(c) for c in record["classes"]]
    width = max(8, *(len(c) for c in classes))
    click.echo("confusion matrix (rows: true class, columns: predicted):")
    click.echo(" " * width + " " + " ".join(f"{c:>{width}}" for c in classes))
    for c, row in zip(classes, record["confusion_matrix"], strict=True):
        click.echo(f"{c:>{width}} " + " ".join(f"{v:>{width}d}" for v in row))


@click.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def inspect(model_path, as_json):
    """Show what a model file expects and holds: architecture, each input
    column and what it becomes, training settings, final metrics."""
    from ..io.model import ModelFileError, load_model

    predictor = _load(model_path)
    try:
        model, meta = load_model(model_path)
    except ModelFileError as exc:  # pragma: no cover - read by _load already
        raise InputError(str(exc)) from None
    record = {
        "model": model_path,
        "architecture": model.architecture(),
        "dtype": model.dtype.name,
        "task": predictor.task,
        "target": predictor.target_name,
        "classes": list(predictor.classes) if predictor.classes else None,
        "inputs": list(predictor.feature_names),
        "columns": _columns(predictor),
        "target_scale": meta.get("target_scale"),
        "loss": meta.get("loss"),
        "metric": meta.get("metric"),
        "training": meta.get("training"),
    }
    if as_json:
        click.echo(json.dumps(strict_json(record), allow_nan=False))
        return
    _show(record)


def _columns(predictor) -> list[dict]:
    """Each data column the model reads, its role and its inputs."""
    if predictor.plan is None:
        return [
            {"name": n, "role": "numeric", "becomes": [n]} for n in predictor.columns
        ]
    return [
        {"name": c.name, "role": c.role, "becomes": list(c.inputs),
         "detail": c.describe()}
        for c in predictor.plan.columns
    ]  # fmt: skip


def _show(record: dict) -> None:
    widths = [record["architecture"][0].get("in_features")] + [
        layer["out_features"]
        for layer in record["architecture"]
        if layer.get("type") == "linear"
    ]
    acts = sorted(
        {a["type"] for a in record["architecture"] if a.get("type") != "linear"}
    )
    click.echo(
        f"{record['model']}: MLP {'-'.join(map(str, widths))} "
        f"{', '.join(acts) or 'linear'}, {record['dtype']}; {record['task']} of "
        f"{record['target']!r}"
        + (f" ({len(record['classes'])} classes)" if record["classes"] else "")
    )
    click.echo("columns:")
    for column in record["columns"]:
        becomes = ", ".join(column["becomes"]) or "-"
        detail = column.get("detail", column["role"])
        click.echo(f"  {column['name']!r}: {detail} -> {becomes}")
    training = record.get("training")
    if training:
        settings = ", ".join(f"{k} {v}" for k, v in training.items() if k != "final")
        click.echo(f"training: {settings}")
        final = training.get("final") or {}
        if final:
            click.echo(
                "final: "
                + ", ".join(
                    f"{k} {v:.4g}"
                    if isinstance(v, float) and math.isfinite(v)
                    else f"{k} {v}"
                    for k, v in final.items()
                )
            )
