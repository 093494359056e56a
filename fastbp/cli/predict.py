"""``fastbp predict``: a saved model's predictions for a table."""

from __future__ import annotations

import sys

import click

from ..progress import progress as progress_bar
from .errors import InputError
from .options import output_file

__all__ = ["predict"]


@click.command()
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
    callback=output_file,
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
