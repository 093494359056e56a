"""``fastbp export MODEL OUT``: a model file as an ONNX graph with its
preprocessing (:func:`fastbp.io.onnx.export_onnx`)."""

from __future__ import annotations

import click

from ..io.onnx import DEFAULT_OPSET, MIN_OPSET
from .errors import InputError
from .params import output_file

#: Extensions of the files fastbp reads: an ONNX graph is never written there.
_DATA_EXTENSIONS = (
    ".npz", ".csv", ".tsv", ".gz", ".zst", ".parquet", ".pq", ".feather", ".arrow",
    ".ipc",
)  # fmt: skip


@click.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(dir_okay=False))
@click.argument("out", metavar="OUT", callback=output_file)
@click.option(
    "--opset",
    type=click.IntRange(min=MIN_OPSET),
    default=DEFAULT_OPSET,
    show_default=True,
    help="ONNX opset to write. Below 20, GELU is written in its erf form and "
    "date columns cannot be read.",
)
@click.option(
    "--inputs",
    type=click.Choice(["columns", "matrix"]),
    default="columns",
    show_default=True,
    help="'columns': one graph input per raw column, shape (N, 1); 'matrix': "
    "one float64 input X, shape (N, n_columns), for models of numeric columns.",
)
def export(model_path, out, opset, inputs):
    """Export a model file to ONNX, with its preprocessing.

    The graph takes the raw columns (numeric as float64, text as strings) and
    gives 'label' and 'probabilities' (classification) or 'variable'
    (regression), as fastbp predict computes them.
    """
    from ..io.model import ModelFileError
    from ..io.onnx import export_onnx
    from .config import refuse_other_kind, same_file

    if same_file(out, model_path):
        raise InputError(f"OUT would overwrite the model file {out!r}")
    if out.lower().endswith(_DATA_EXTENSIONS):
        raise InputError(
            f"OUT {out!r} names a data or model file; give a path ending in .onnx"
        )
    refuse_other_kind("OUT", out, ("other",))

    try:
        proto = export_onnx(model_path, out, opset=opset, inputs=inputs)
    except (ModelFileError, ValueError, ImportError) as exc:
        raise InputError(str(exc)) from None
    graph = proto.graph
    names = [i.name for i in graph.input]
    shown = ", ".join(names[:5]) + (
        f", ... ({len(names)} in all)" if len(names) > 5 else ""
    )
    click.echo(
        f"wrote {out} (ONNX opset {opset}): inputs {shown}; outputs "
        f"{', '.join(o.name for o in graph.output)}"
    )
