"""Data: reading tables, preparing problems, streaming and sharding.

``fastbp.data`` owns the way from a file (or arrays) to the arrays the loop
trains on: the readers (CSV/TSV, Parquet, Feather, standard input), target
coding, the train/validation split and standardization, the streamed source
read again every epoch, and a rank's shard under MPI.
"""

from .._compat import lazy_exports

_NAMES = {
    **dict.fromkeys(
        (
            "DataError", "Dataset", "CsvCells", "read_csv_cells", "Standardizer",
            "MAX_INFERRED_CLASSES", "load_csv", "load_features", "train_val_split",
            "xor",
        ),
        "loading",
    ),
    **dict.fromkeys(
        ("FORMATS", "format_of", "read_columns", "read_table", "iter_batches",
         "batch_array", "file_part", "part_table"),
        "tables",
    ),
    **dict.fromkeys(("Problem", "Prepared", "Predictor"), "problem"),
    **dict.fromkeys(
        ("DEFAULT_SHUFFLE_BUFFER", "StreamStats", "scan", "file_source",
         "holdout_mask"),
        "stream",
    ),
    **dict.fromkeys(("load_shard", "LocalComm"), "shard"),
    **dict.fromkeys(("SQUARE_SAFE", "Moments"), "stats"),
}  # fmt: skip

__all__ = list(_NAMES)
__getattr__, __dir__ = lazy_exports(__name__, _NAMES)
