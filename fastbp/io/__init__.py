"""Model files and predictions out.

``fastbp.io`` owns what leaves a training run: model files (a pickle-free
``.npz`` of the weights with a JSON description, written atomically) and
predictions written batch by batch as CSV or Parquet, and the ONNX export of
a model with its preprocessing (needs the ``onnx`` extra).
"""

from .._compat import lazy_exports

_NAMES = {
    **dict.fromkeys(
        ("ModelFileError", "save_model", "load_model", "atomic_file",
         "write_text_atomic", "FORMAT", "FORMAT_VERSION"),
        "model",
    ),
    **dict.fromkeys(("PredictionWriter", "output_format"), "outputs"),
    **dict.fromkeys(("export_onnx",), "onnx"),
}  # fmt: skip

__all__ = list(_NAMES)
__getattr__, __dir__ = lazy_exports(__name__, _NAMES)
