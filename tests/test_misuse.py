"""Misuse, one row per case: every bad input to the command line and the
library fails cleanly, the way the issue's contract says.

- The command line: one line ``Error: ...`` (printed once), exit status 2,
  no traceback, naming the file, line and column or the option, and no
  file it was given touched, nor any new file left behind (``CLI``; a few
  rows again through the installed command and under ``mpiexec -n 2``).
- The library: a TypeError or ValueError (or a documented subclass:
  DataError, CheckpointError, ModelFileError, scikit-learn's NotFittedError)
  whose message says what is wrong (``LIBRARY``).

``test_every_option_has_a_bad_input_row`` walks every command's parameters
(click's ``params``): a new option cannot ship without its row here.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import shlex
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import IRIS, REGRESSION, V1_IRIS, invoke, run_fastbp

import fastbp

# --- the files the rows name -------------------------------------------------


@dataclass(frozen=True)
class Fx:
    """The fixture folder: ``path(name)`` of its files, and a few objects."""

    root: Path

    def __getitem__(self, name: str) -> str:
        return str(self.root / name)


def _write_bad_files(root: Path) -> None:
    import pyarrow as pa
    import pyarrow.feather as pf
    import pyarrow.parquet as pq

    shutil.copy(IRIS, root / "iris.csv")
    shutil.copy(REGRESSION, root / "regression.csv")
    iris = (root / "iris.csv").read_bytes()
    gz = gzip.compress(iris)
    (root / "trunc.csv.gz").write_bytes(gz[: len(gz) // 2])
    with pa.CompressedOutputStream(str(root / "whole.csv.zst"), "zstd") as out:
        out.write(iris)
    zst = (root / "whole.csv.zst").read_bytes()
    (root / "trunc.csv.zst").write_bytes(zst[: len(zst) // 2])
    (root / "ragged.csv").write_text("a,b,y\n1,2,3\n4,5\n6,7,8\n")
    (root / "ragged.tsv").write_text("a\tb\ty\n1\t2\t3\n4\t5\t6\n7\t8\n")
    (root / "latin1.csv").write_bytes("caf\xe9,b,y\n1,2,3\n4,5,6\n".encode("latin-1"))
    (root / "empty.csv").write_text("")
    (root / "header.csv").write_text("a,b,y\n")
    (root / "dup.csv").write_text(
        "a,a,y\n" + "".join(f"{i},{i},{i}\n" for i in range(30))
    )
    (root / "onecls.csv").write_text("a,y\n" + "".join(f"{i},x\n" for i in range(30)))
    rows = "".join(f"{i},{1e39 if i == 30 else i}\n" for i in range(50))
    (root / "bigy.csv").write_text("a,y\n" + rows)
    (root / "bad.parquet").write_bytes(b"PAR1 not a parquet file PAR1")
    (root / "bad.feather").write_bytes(b"ARROW1 not an arrow file")
    (root / "notes.txt").write_text("not a model\n")
    n = 50
    nan = pa.table(
        {
            "a": np.arange(n, dtype=float),
            "b": np.r_[np.ones(n - 1), np.nan],
            "y": np.arange(n) % 2,
        }
    )
    pq.write_table(nan, root / "nan.parquet")
    pf.write_feather(nan, root / "nan.feather")
    big = pa.table(
        {
            "a": np.arange(n, dtype=float),
            "b": np.r_[np.ones(n - 1), 1e39],
            "y": np.arange(n, dtype=float),
        }
    )
    pq.write_table(big, root / "big.parquet")
    pf.write_feather(big, root / "big.feather")
    np.savez(root / "foreign.npz", a=np.arange(3))
    np.savez(
        root / "pickled.npz",
        format=np.array("fastbp-model"),
        format_version=np.array(1),
        x=np.array([{}], dtype=object),
    )


def _corrupt_copies(root: Path) -> None:
    """Truncated, foreign-version and mismatched copies of the model and the
    checkpoint trained by the fixture."""
    for name in ("model.npz", "ckpt.npz"):
        data = (root / name).read_bytes()
        (root / f"trunc.{name}").write_bytes(data[: len(data) // 2])
        with np.load(root / name) as f:
            entries = {k: f[k] for k in f.files}
        entries["format_version"] = np.array(99)
        np.savez(root / f"v99.{name}", **entries)


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    root = tmp_path_factory.mktemp("misuse")
    _write_bad_files(root)
    common = ("--epochs", 2, "--quiet", "--seed", 0)
    result = invoke(
        "train",
        "--data",
        root / "iris.csv",
        "--save",
        root / "model.npz",
        "--checkpoint",
        root / "ckpt.npz",
        *common,
    )
    assert result.exit_code == 0, result.output
    result = invoke(
        "train",
        "--data",
        root / "regression.csv",
        "--strict",
        "--save",
        root / "strict.npz",
        *common,
    )
    assert result.exit_code == 0, result.output
    _corrupt_copies(root)
    (root / "sub").mkdir()
    shutil.copytree(root, root.parent / "pristine")
    return Fx(root)


def _unchanged(fx: Fx, before: dict[str, str]) -> bool:
    """Whether the fixture folder is as before; if not, it is put back (so
    that one failing row does not spoil the next)."""
    if _snapshot(fx.root) == before:
        return True
    shutil.rmtree(fx.root)
    shutil.copytree(fx.root.parent / "pristine", fx.root)
    return False


def _snapshot(root: Path) -> dict[str, str]:
    """Every file of the fixture folder and a hash of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# --- the command line ----------------------------------------------------------


@dataclass(frozen=True)
class Cli:
    """``fastbp ARGS`` ({name} is the fixture file of that name) must fail
    with one ``Error:`` line holding each of ``words``; ``covers`` names
    arguments (not options) the row exercises; ``needs`` is the optional
    module whose absence is an earlier, different error (the row is skipped
    without it, and run by CI's second pass with the extras)."""

    id: str
    args: str
    words: tuple[str, ...]
    covers: tuple[str, ...] = ()
    needs: str | None = None

    def argv(self, fx: Fx) -> list[str]:
        return [
            re.sub(r"\{([^{}]+)\}", lambda m: fx[m.group(1)], part)
            for part in shlex.split(self.args)
        ]


def c(id, args, *words, covers=(), needs=None):
    return Cli(id, args, tuple(words), tuple(covers), needs)


T = "train --data {iris.csv} --epochs 2"  # a table run that would work
TR = "train --data {regression.csv} --epochs 2"

CLI = [
    # --- train: the data -----------------------------------------------------------
    c("data-missing", "train --data {nothing.csv}", "nothing.csv", "no such file"),
    c("data-folder", "train --data {sub}", "--data", "is a folder"),
    c("data-unknown-type", "train --data {notes.txt}", "--data", "--format"),
    c("data-ragged", "train --data {ragged.csv}", "ragged.csv", "line 3", "fields"),
    c("data-ragged-tsv", "train --data {ragged.tsv}", "ragged.tsv", "line 4"),
    c("data-latin1", "train --data {latin1.csv}", "latin1.csv", "not UTF-8"),
    c("data-truncated-gz", "train --data {trunc.csv.gz}", "trunc.csv.gz", "whole"),
    c("data-truncated-zst", "train --data {trunc.csv.zst}", "trunc.csv.zst", "whole"),
    c("data-empty", "train --data {empty.csv}", "empty.csv", "mpty"),
    c("data-header-only", "train --data {header.csv}", "header.csv", "no data rows"),
    c("data-bad-parquet", "train --data {bad.parquet}", "bad.parquet", "parquet"),
    c("data-bad-feather", "train --data {bad.feather}", "bad.feather", "feather"),
    c("data-dup-header", "train --data {dup.csv}", "dup.csv", "'a' appears twice"),
    c("data-one-class", "train --data {onecls.csv}", "onecls.csv", "only one class"),
    c(
        "data-float32-target",
        "train --data {bigy.csv}",
        "bigy.csv",
        "line 32",
        "column 'y'",
        "--dtype float64",
    ),
    c(
        "data-float32-feature-parquet",
        "train --data {big.parquet}",
        "big.parquet",
        "data row 50",
        "column 'b'",
        "--dtype float64",
    ),
    c("format-parquet-on-csv", f"{T} --format parquet", "iris.csv", "as parquet"),
    c("format-unknown", f"{T} --format xlsx", "--format", "xlsx"),
    c("target-unknown", f"{T} --target nope", "'nope' not found", "line 1"),
    c("target-index", f"{T} --target 99", "index 99", "out of range"),
    c("task-unknown", f"{T} --task cluster", "--task", "cluster"),
    c("task-regression-of-labels", f"{T} --task regression", "line 2", "species"),
    c("categorical-unknown", f"{T} --categorical nope", "categorical", "'nope'"),
    c("categorical-empty", f"{T} --categorical ,", "--categorical", "empty"),
    c("numeric-target", f"{T} --numeric species", "numeric", "target column"),
    c("drop-target", f"{T} --drop species", "drop", "target column"),
    c("features-unknown", f"{T} --features nope", "features", "'nope'"),
    c("na-values-strict", f"{T} --strict --na-values x", "--na-values", "--strict"),
    c("max-categories-zero", f"{T} --max-categories 0", "--max-categories"),
    c("max-categories-text", f"{T} --max-categories many", "--max-categories"),
    c(
        "strict-nan-parquet",
        "train --data {nan.parquet} --strict",
        "nan.parquet",
        "data row 50",
        "'b'",
    ),
    c(
        "strict-nan-feather",
        "train --data {nan.feather} --strict",
        "nan.feather",
        "data row 50",
        "'b'",
    ),
    c(
        "strict-stream-float32",
        "train --data {big.feather} --strict --stream",
        "big.feather",
        "data row 50",
        "too large for float32",
    ),
    # --- train: the network and the optimizer --------------------------------------
    c("hidden-zero", f"{T} --hidden 0", "--hidden"),
    c("hidden-text", f"{T} --hidden 8,x", "--hidden"),
    c("hidden-too-large", f"{T} --hidden 100000000,100000000", "--hidden", "GiB"),
    c("activation-unknown", f"{T} --activation swish", "--activation"),
    c("loss-ce-regression", f"{TR} --loss ce", "--loss ce", "--loss mse"),
    c("loss-ce-regression-stream", f"{TR} --loss ce --stream", "--loss mse"),
    c("loss-unknown", f"{T} --loss hinge", "--loss"),
    c("optimizer-unknown", f"{T} --optimizer rmsprop", "--optimizer"),
    c("lr-schedule-unknown", f"{T} --lr-schedule exp", "--lr-schedule"),
    c(
        "lr-schedule-lbfgs",
        f"{T} --optimizer lbfgs --lr-schedule cosine",
        "--lr-schedule",
        "lbfgs",
    ),
    c(
        "early-stopping-lbfgs",
        f"{T} --optimizer lbfgs --early-stopping",
        "--early-stopping",
        "lbfgs",
    ),
    c("grad-norms-lbfgs", f"{T} --optimizer lbfgs --grad-norms", "--grad-norms"),
    c("no-fuse-lbfgs", f"{T} --optimizer lbfgs --no-fuse", "--no-fuse"),
    c("stream-lbfgs", f"{T} --optimizer lbfgs --stream", "--stream", "lbfgs"),
    c("patience-zero", f"{T} --patience 0", "--patience"),
    c("tol-nan", f"{T} --tol nan", "--tol"),
    c("tol-negative", f"{T} --tol -1", "--tol"),
    c("tol-inf", f"{T} --tol inf", "--tol"),
    c("lr-nan", f"{T} --lr nan", "--lr", "finite"),
    c("lr-zero", f"{T} --lr 0", "--lr"),
    c("lr-negative", f"{T} --lr -0.1", "--lr"),
    c("lr-inf", f"{T} --lr inf", "--lr"),
    c("lr-text", f"{T} --lr fast", "--lr"),
    c("momentum-one", f"{T} --momentum 1", "--momentum"),
    c("l2-negative", f"{T} --l2 -1", "--l2"),
    c("l2-nan", f"{T} --l2 nan", "--l2"),
    c("momentum-nan", f"{T} --momentum nan", "--momentum"),
    c("epochs-zero", "train --data {iris.csv} --epochs 0", "--epochs"),
    c("epochs-fraction", "train --data {iris.csv} --epochs 2.5", "--epochs"),
    c("batch-size-zero", f"{T} --batch-size 0", "--batch-size"),
    c("seed-negative", f"{T} --seed -1", "--seed"),
    c("seed-text", f"{T} --seed x", "--seed"),
    c("seed-huge-text", f"{T} --seed 1e3", "--seed"),
    c("val-split-one", f"{T} --val-split 1", "--val-split"),
    c("val-split-nan", f"{T} --val-split nan", "--val-split"),
    c("val-split-stream-all", f"{T} --stream --val-split 0.999", "no training rows"),
    c("dtype-float16", f"{T} --dtype float16", "--dtype"),
    c("threads-zero", f"{T} --threads 0", "--threads"),
    # --- train: outputs ------------------------------------------------------------
    c("save-folder", f"{T} --save {{sub}}", "--save"),
    c("save-missing-folder", f"{T} --save {{nodir/m.npz}}", "--save", "does not exist"),
    c("save-unwritable", f"{T} --save /proc/m.npz", "--save", "cannot write"),
    c("save-over-data", f"{T} --save {{iris.csv}}", "--save", "data file"),
    c(
        "save-over-other-kind",
        f"{T} --save {{regression.csv}}",
        "--save",
        "another kind",
    ),
    c("save-over-checkpoint", f"{T} --save {{ckpt.npz}}", "--save", "checkpoint"),
    c(
        "save-same-as-checkpoint",
        f"{T} --save {{new.npz}} --checkpoint {{new.npz}}",
        "--save",
        "--checkpoint",
        "same file",
    ),
    c(
        "plot-extension",
        f"{T} --plot {{loss.txt}}",
        "--plot",
        "image type",
        needs="matplotlib",
    ),
    c("plot-over-data", f"{T} --plot {{iris.csv}}", "--plot", "data file"),
    c("plot-same-as-save", f"{T} --plot {{a.png}} --save {{a.png}}", "same file"),
    c("plot-missing-folder", f"{T} --plot {{nodir/a.png}}", "--plot"),
    c("checkpoint-folder", f"{T} --checkpoint {{sub}}", "--checkpoint"),
    c(
        "checkpoint-over-model",
        f"{T} --checkpoint {{model.npz}}",
        "--checkpoint",
        "model file",
    ),
    c(
        "checkpoint-lbfgs",
        f"{T} --optimizer lbfgs --checkpoint {{c.npz}}",
        "--checkpoint",
        "lbfgs",
    ),
    c("checkpoint-every-alone", f"{T} --checkpoint-every 2", "--checkpoint-every"),
    c(
        "checkpoint-every-zero",
        f"{T} --checkpoint {{c.npz}} --checkpoint-every 0",
        "--checkpoint-every",
    ),
    # --- train: resuming -----------------------------------------------------------
    c("resume-missing", f"{T} --resume {{none.npz}}", "--resume", "no such file"),
    c("resume-folder", f"{T} --resume {{sub}}", "--resume"),
    c("resume-text", f"{T} --resume {{notes.txt}}", "--resume", "not a fastbp"),
    c("resume-model", f"{T} --resume {{model.npz}}", "--resume", "fastbp-model"),
    c("resume-truncated", f"{T} --resume {{trunc.ckpt.npz}}", "--resume", "corrupt"),
    c("resume-foreign", f"{T} --resume {{foreign.npz}}", "--resume", "format"),
    c("resume-version", f"{T} --resume {{v99.ckpt.npz}}", "--resume", "version 99"),
    c(
        "resume-fewer-epochs",
        "train --data {iris.csv} --epochs 1 --resume {ckpt.npz}",
        "--resume",
        "2 epochs done",
    ),
    c(
        "resume-other-hidden",
        f"{T} --epochs 4 --resume {{ckpt.npz}} --hidden 8",
        "does not match",
        "model",
    ),
    c(
        "resume-other-lr",
        f"{T} --epochs 4 --resume {{ckpt.npz}} --lr 0.5",
        "optimizer lr",
    ),
    c("resume-other-seed", f"{T} --epochs 4 --resume {{ckpt.npz}} --seed 3", "seed"),
    c(
        "resume-other-batch",
        f"{T} --epochs 4 --resume {{ckpt.npz}} --batch-size 7",
        "batch size",
    ),
    c(
        "resume-other-mode",
        f"{T} --epochs 4 --resume {{ckpt.npz}} --stream",
        "training mode",
    ),
    c(
        "resume-other-dtype",
        f"{T} --epochs 4 --resume {{ckpt.npz}} --dtype float64",
        "dtype",
    ),
    c("resume-other-data", f"{TR} --epochs 4 --resume {{ckpt.npz}}", "model"),
    c(
        "resume-save-over-it",
        f"{T} --resume {{ckpt.npz}} --save {{ckpt.npz}}",
        "--save",
        "resumed",
    ),
    c("resume-lbfgs", f"{T} --optimizer lbfgs --resume {{ckpt.npz}}", "--resume"),
    # --- train: streaming, sharding, standard input --------------------------------
    c("stream-xor", "train --data xor --stream --quiet", "--stream", "'xor'"),
    c("stream-stdin", "train --data - --stream --json", "--stream", "'-'"),
    c("stream-missing", "train --data {nothing.csv} --stream", "no such file"),
    c("stream-truncated", "train --data {trunc.csv.gz} --stream", "whole"),
    c("stream-ragged", "train --data {ragged.csv} --stream", "line 3"),
    c("stream-latin1", "train --data {latin1.csv} --stream", "not UTF-8"),
    c("stream-bad-parquet", "train --data {bad.parquet} --stream", "as parquet"),
    c(
        "stream-float32-target",
        "train --data {bigy.csv} --stream",
        "line 32",
        "--dtype float64",
    ),
    c(
        "stream-float32-feature",
        "train --data {big.parquet} --stream",
        "data row 50",
        "column 'b'",
    ),
    c(
        "shuffle-buffer-huge",
        f"{T} --stream --shuffle-buffer 1000000000000",
        "--shuffle-buffer",
    ),
    c("shuffle-buffer-zero", f"{T} --stream --shuffle-buffer 0", "--shuffle-buffer"),
    c("shard-missing", "train --data {nothing.csv} --shard", "no such file"),
    c("sync-every-zero", f"{T} --sync-every 0", "--sync-every"),
    c("xor-categorical", "train --data xor --categorical a", "--categorical", "xor"),
    c("strict-drop", f"{T} --strict --drop sepal_width", "--drop", "--strict"),
    # --- predict -------------------------------------------------------------------
    c(
        "predict-model-missing",
        "predict --model {none.npz} --data {iris.csv}",
        "none.npz",
        "no such file",
    ),
    c(
        "predict-model-checkpoint",
        "predict --model {ckpt.npz} --data {iris.csv}",
        "ckpt.npz",
        "fastbp-checkpoint",
    ),
    c(
        "predict-model-text",
        "predict --model {notes.txt} --data {iris.csv}",
        "not a fastbp model file",
    ),
    c(
        "predict-model-truncated",
        "predict --model {trunc.model.npz} --data {iris.csv}",
        "corrupt or truncated",
    ),
    c(
        "predict-model-foreign",
        "predict --model {foreign.npz} --data {iris.csv}",
        "without 'format'",
    ),
    c(
        "predict-model-version",
        "predict --model {v99.model.npz} --data {iris.csv}",
        "version 99",
    ),
    c(
        "predict-model-pickled",
        "predict --model {pickled.npz} --data {iris.csv}",
        "pickled.npz",
    ),
    c("predict-model-folder", "predict --model {sub} --data {iris.csv}", "--model"),
    c(
        "predict-data-missing",
        "predict --model {model.npz} --data {nothing.csv}",
        "no such file",
    ),
    c("predict-data-folder", "predict --model {model.npz} --data {sub}", "--data"),
    c(
        "predict-data-ragged",
        "predict --model {model.npz} --data {ragged.csv}",
        "ragged.csv",
    ),
    c(
        "predict-data-latin1",
        "predict --model {model.npz} --data {latin1.csv}",
        "not UTF-8",
    ),
    c(
        "predict-data-truncated",
        "predict --model {model.npz} --data {trunc.csv.gz}",
        "whole",
    ),
    c(
        "predict-data-columns",
        "predict --model {model.npz} --data {regression.csv}",
        "missing 'sepal_length'",
    ),
    c(
        "predict-format",
        "predict --model {model.npz} --data {iris.csv} --format feather",
        "as feather",
    ),
    c(
        "predict-out-data",
        "predict --model {model.npz} --data {iris.csv} --out {iris.csv}",
        "--out",
        "--data",
    ),
    c(
        "predict-out-model",
        "predict --model {model.npz} --data {iris.csv} --out {model.npz}",
        "--out",
        "--model",
    ),
    c(
        "predict-out-checkpoint",
        "predict --model {model.npz} --data {iris.csv} --out {ckpt.npz}",
        "--out",
        "checkpoint",
    ),
    c(
        "predict-out-folder",
        "predict --model {model.npz} --data {iris.csv} --out {sub}",
        "--out",
    ),
    c(
        "predict-out-missing-folder",
        "predict --model {model.npz} --data {iris.csv} --out {nodir/p.csv}",
        "--out",
        "does not exist",
    ),
    c(
        "predict-proba-regression",
        "predict --model {strict.npz} --data {regression.csv} --proba",
        "--proba",
    ),
    c(
        "predict-keep-unknown",
        "predict --model {model.npz} --data {iris.csv} --keep id",
        "--keep",
        "'id'",
    ),
    c(
        "predict-keep-empty",
        "predict --model {model.npz} --data {iris.csv} --keep ,",
        "--keep",
    ),
    c(
        "predict-json-stdout",
        "predict --model {model.npz} --data {iris.csv} --json",
        "--json",
        "--out",
    ),
    c(
        "predict-quiet",
        "predict --model {none.npz} --data {iris.csv} --quiet",
        "no such file",
    ),
    # --- evaluate ------------------------------------------------------------------
    c(
        "evaluate-no-target",
        "evaluate --model {model.npz} --data {regression.csv}",
        "'species'",
        "evaluate needs it",
    ),
    c(
        "evaluate-checkpoint",
        "evaluate --model {ckpt.npz} --data {iris.csv}",
        "fastbp-checkpoint",
    ),
    c(
        "evaluate-latin1",
        "evaluate --model {model.npz} --data {latin1.csv}",
        "not UTF-8",
    ),
    c(
        "evaluate-format",
        "evaluate --model {model.npz} --data {iris.csv} --format parquet",
        "as parquet",
    ),
    c(
        "evaluate-json",
        "evaluate --model {foreign.npz} --data {iris.csv} --json",
        "foreign.npz",
    ),
    c(
        "evaluate-quiet",
        "evaluate --model {model.npz} --data {header.csv} -q",
        "header.csv",
    ),
    # --- inspect -------------------------------------------------------------------
    c(
        "inspect-checkpoint",
        "inspect {ckpt.npz}",
        "fastbp-checkpoint",
        covers=("model_path",),
    ),
    c("inspect-missing", "inspect {none.npz}", "no such file"),
    c("inspect-folder", "inspect {sub}", "MODEL"),
    c("inspect-json", "inspect {trunc.model.npz} --json", "corrupt"),
    # --- export --------------------------------------------------------------------
    c(
        "export-checkpoint",
        "export {ckpt.npz} {m.onnx}",
        "fastbp-checkpoint",
        covers=("model_path", "out"),
    ),
    c("export-missing", "export {none.npz} {m.onnx}", "no such file"),
    c("export-over-model", "export {model.npz} {model.npz}", "OUT", "model file"),
    c("export-over-data", "export {model.npz} {iris.csv}", "OUT", ".onnx"),
    c("export-folder", "export {model.npz} {sub}", "OUT", "folder"),
    c("export-missing-folder", "export {model.npz} {nodir/m.onnx}", "OUT"),
    c("export-opset-low", "export {model.npz} {m.onnx} --opset 5", "--opset"),
    c(
        "export-opset-high",
        "export {model.npz} {m.onnx} --opset 100000",
        "opset",
        needs="onnx",
    ),
    c("export-opset-text", "export {model.npz} {m.onnx} --opset new", "--opset"),
    c("export-inputs", "export {model.npz} {m.onnx} --inputs rows", "--inputs"),
    # --- bench ---------------------------------------------------------------------
    c("bench-budget-nan", "bench --budget nan", "--budget", "finite"),
    c("bench-budget-zero", "bench --budget 0", "--budget"),
    c("bench-budget-huge", "bench --budget 1e9", "--budget"),
    c("bench-rounds-zero", "bench --rounds 0", "--rounds"),
    c("bench-threads-zero", "bench --threads 0", "--threads"),
    c("bench-case-unknown", "bench --quick --case nope", "--case", "'nope'"),
    c("bench-out-file", "bench --out {iris.csv}", "--out"),
    c("bench-out-unwritable", "bench --out /proc/results", "--out"),
    # --- the group -----------------------------------------------------------------
    c("command-unknown", "fit --data {iris.csv}", "No such command"),
    c("option-unknown", "train --data {iris.csv} --learning-rate 1", "No such option"),
]


@pytest.mark.parametrize("case", CLI, ids=[case.id for case in CLI])
def test_cli_misuse_is_one_line(case, fx):
    if case.needs:
        pytest.importorskip(case.needs)
    before = _snapshot(fx.root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        result = invoke(*case.argv(fx))
    kept = _unchanged(fx, before)
    output = result.output
    assert result.exit_code == 2, output
    assert "Traceback" not in output, output
    lines = [line for line in output.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], output
    for word in case.words:
        assert word in errors[0], (word, errors[0])
    assert kept, "a failing command touched its files"


def _covered() -> dict[str, set[str]]:
    """command -> the parameter names the CLI rows exercise."""
    import click

    from fastbp.cli.main import COMMANDS, main

    ctx = click.Context(main)
    covered: dict[str, set[str]] = {}
    for case in CLI:
        name = shlex.split(case.args)[0]
        if name not in COMMANDS:
            continue
        command = main.get_command(ctx, name)
        tokens = set(shlex.split(case.args)) | set(case.covers)
        for param in command.params:
            if tokens & {*param.opts, *param.secondary_opts, param.name}:
                covered.setdefault(name, set()).add(param.name)
    return covered


def test_every_option_has_a_bad_input_row():
    """Each parameter of each command appears in a row above (a new option
    needs its bad-input case before it ships)."""
    import click

    from fastbp.cli.main import COMMANDS, main

    ctx = click.Context(main)
    covered = _covered()
    missing = []
    for name in COMMANDS:
        command = main.get_command(ctx, name)
        for param in command.params:
            if param.name == "help":
                continue
            if param.name not in covered.get(name, set()):
                missing.append(f"fastbp {name} {'/'.join(param.opts)}")
    assert not missing, f"no misuse row for: {', '.join(missing)}"


def test_misuse_table_size():
    assert len(CLI) + len(LIBRARY) >= 100


# --- the same through the installed command and under MPI -------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ("train --data {trunc.csv.gz} --stream --quiet", ("whole",)),
        ("predict --model {model.npz} --data {iris.csv} --out {iris.csv}", ("--out",)),
        ("bench --budget nan", ("--budget",)),
        ("train --data {big.parquet} --epochs 1", ("data row 50",)),
    ],
)
def test_installed_command_misuse(args, words, fx):
    argv = Cli("x", args, words).argv(fx)
    before = _snapshot(fx.root)
    proc = run_fastbp(*argv, cwd=fx.root)
    kept = _unchanged(fx, before)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("Error:"), proc.stderr
    assert proc.stderr.count("Error:") == 1, proc.stderr
    for word in words:
        assert word in proc.stderr
    assert kept


def _mpiexec():
    bin_dir = Path(sys.executable).parent
    mpiexec = shutil.which("mpiexec", path=str(bin_dir)) or shutil.which("mpiexec")
    fastbp_exe = shutil.which("fastbp", path=str(bin_dir)) or shutil.which("fastbp")
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return None
    if mpiexec is None or fastbp_exe is None:
        return None
    return [mpiexec, "-n", "2", fastbp_exe]


MPI_CASES = [
    ("train --data {iris.csv} --stream --epochs 1", ("--stream", "MPI")),
    ("train --data {iris.csv} --lr nan", ("--lr",)),
    ("train --data {iris.csv} --optimizer lbfgs", ("lbfgs", "MPI")),
    ("train --data xor --shard", ("--shard", "'xor'")),
    ("train --data {latin1.csv} --shard --epochs 1", ("not UTF-8",)),
    ("train --data {ragged.csv} --shard --epochs 1", ("ragged.csv", "line 3")),
    ("train --data {nothing.csv} --epochs 1", ("no such file",)),
]


@pytest.mark.parametrize(("args", "words"), MPI_CASES)
def test_misuse_under_mpi_prints_one_line(args, words, fx):
    launcher = _mpiexec()
    if launcher is None:
        pytest.skip("needs mpi4py and mpiexec (the mpi extra)")
    env = {"OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    import os

    proc = subprocess.run(
        [*launcher, *Cli("x", args, words).argv(fx)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=fx.root,
        env={**os.environ, **env},
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output, output
    assert output.count("Error:") == 1, output  # rank 0 alone prints it
    for word in words:
        assert word in output, (word, output)


# --- the library ------------------------------------------------------------------


@dataclass(frozen=True)
class Lib:
    """``call(fx)`` must raise ``error`` with a message matching ``match``."""

    id: str
    call: object
    error: type
    match: str


def _mlp(widths=(2, 4, 1), dtype="float32"):
    return fastbp.mlp(list(widths), "tanh", rng=0, dtype=dtype)


def _train(X=None, T=None, model=None, **kw):
    model = model or _mlp()
    X = np.zeros((8, 2)) if X is None else X
    T = np.zeros((8, 1)) if T is None else T
    kw.setdefault("epochs", 1)
    opt = fastbp.SGD(model.parameters(), lr=0.1)
    return fastbp.train(model, fastbp.MSELoss(), opt, X, T, **kw)


def _lbfgs(**kw):
    X, T = np.ones((8, 2)), np.ones((8, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return fastbp.train.lbfgs(_mlp(), fastbp.MSELoss(), X, T, **kw)


def _read(fx, name, **kw):
    from fastbp.data.tables import read_table

    return read_table(fx[name], **kw)


def _scan(fx, name="iris.csv", **kw):
    from fastbp.data.stream import file_source, scan

    return scan(file_source(fx[name]), name=fx[name], **kw)


def _streamed(fx, model=None, **kw):
    from fastbp.data.stream import Streamed, file_source

    stats = _scan(fx, val_fraction=0.2)
    data = Streamed(file_source(fx["iris.csv"]), stats)
    model = model or fastbp.mlp([4, 8, 3], "relu", rng=0)
    opt = fastbp.Adam(model.parameters(), lr=0.01)
    return fastbp.train(model, fastbp.CrossEntropyLoss(), opt, data, epochs=1, **kw)


def _skl():
    return pytest.importorskip("fastbp.sklearn")


def _xy(n=40):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 3))
    return X, (X[:, 0] > 0).astype(int), X[:, 0]


SMALL = dict(hidden_layer_sizes=(4,), max_iter=2, random_state=0)


def _fit_c(**params):
    X, y, _ = _xy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _skl().MLPClassifier(**{**SMALL, **params}).fit(X, y)


def _fit_r(X=None, y=None, **params):
    X0, _, y0 = _xy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return (
            _skl()
            .MLPRegressor(**{**SMALL, **params})
            .fit(X0 if X is None else X, y0 if y is None else y)
        )


def _partial(*batches, classes=(0, 1)):
    est = _skl().MLPClassifier(**SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, (X, y) in enumerate(batches):
            est.partial_fit(X, y, classes=list(classes) if i == 0 else None)
    return est


def _iris_frame():
    pd = pytest.importorskip("pandas")
    return pd.read_csv(IRIS)


def _encoder(**params):
    return _skl().TableEncoder(**params).fit(_iris_frame().iloc[:, :4])


def L(id, call, error, match):
    return Lib(id, call, error, match)


X8 = np.zeros((8, 2))
BIG = np.full((8, 2), 1e39)

LIBRARY = [
    # --- read_table ----------------------------------------------------------------
    L("read-missing", lambda fx: _read(fx, "nothing.csv"), ValueError, "no such file"),
    L("read-latin1", lambda fx: _read(fx, "latin1.csv"), ValueError, "not UTF-8"),
    L("read-ragged", lambda fx: _read(fx, "ragged.csv"), ValueError, "line 3"),
    L("read-truncated", lambda fx: _read(fx, "trunc.csv.gz"), ValueError, "whole"),
    L("read-bad-parquet", lambda fx: _read(fx, "bad.parquet"), ValueError, "bad.parq"),
    L("read-bad-feather", lambda fx: _read(fx, "bad.feather"), ValueError, "bad.feat"),
    L(
        "read-nan-parquet",
        lambda fx: _read(fx, "nan.parquet"),
        ValueError,
        "'b': data row 50 is NaN",
    ),
    L(
        "read-big-feather",
        lambda fx: _read(fx, "big.feather"),
        ValueError,
        "data row 50 is too large for float32",
    ),
    L(
        "read-task",
        lambda fx: _read(fx, "iris.csv", task="cluster"),
        ValueError,
        "task must be",
    ),
    L(
        "read-dtype-float16",
        lambda fx: _read(fx, "iris.csv", dtype="float16"),
        TypeError,
        "dtype must be float32 or float64",
    ),
    L(
        "read-dtype-int",
        lambda fx: _read(fx, "iris.csv", dtype=np.int32),
        TypeError,
        "dtype must be",
    ),
    L(
        "read-format",
        lambda fx: _read(fx, "iris.csv", format="xlsx"),
        ValueError,
        "format must be",
    ),
    L(
        "read-unknown-type",
        lambda fx: _read(fx, "notes.txt"),
        ValueError,
        "unknown file type",
    ),
    L(
        "read-folder",
        lambda fx: _read(fx, "sub", format="csv"),
        ValueError,
        "is a directory",
    ),
    L("read-empty", lambda fx: _read(fx, "empty.csv"), ValueError, "empty"),
    L("read-header-only", lambda fx: _read(fx, "header.csv"), ValueError, "no data"),
    L(
        "read-target",
        lambda fx: _read(fx, "iris.csv", target=2.5),
        TypeError,
        "target must be",
    ),
    # --- fastbp.train, evaluate, lbfgs ---------------------------------------------
    L(
        "train-no-rows",
        lambda fx: _train(np.zeros((0, 2)), np.zeros((0, 1))),
        ValueError,
        "no rows",
    ),
    L("train-seed-negative", lambda fx: _train(seed=-1), ValueError, "seed"),
    L("train-seed-text", lambda fx: _train(seed="a"), TypeError, "seed"),
    L("train-epochs-zero", lambda fx: _train(epochs=0), ValueError, "epochs"),
    L("train-batch-zero", lambda fx: _train(batch_size=0), ValueError, "batch_size"),
    L("train-nan", lambda fx: _train(np.full((8, 2), np.nan)), ValueError, "NaN"),
    L(
        "train-float32-overflow",
        lambda fx: _train(BIG),
        ValueError,
        "1e\\+39 .*too large for float32",
    ),
    L(
        "train-target-overflow",
        lambda fx: _train(X8, np.full((8, 1), 1e39)),
        ValueError,
        "targets holds 1e\\+39",
    ),
    L(
        "train-rows-differ",
        lambda fx: _train(X8, np.zeros((7, 1))),
        ValueError,
        "8 rows but targets have 7",
    ),
    L(
        "train-features",
        lambda fx: _train(np.zeros((8, 3))),
        ValueError,
        "takes 2 features",
    ),
    L("train-l2", lambda fx: _train(l2=float("nan")), ValueError, "l2"),
    L("train-schedule", lambda fx: _train(lr_schedule="exp"), ValueError, "schedule"),
    L("train-metric", lambda fx: _train(metric="f1"), ValueError, "metric"),
    L("train-threads", lambda fx: _train(threads=0), ValueError, "threads"),
    L(
        "train-val-rows",
        lambda fx: _train(val=(np.zeros((0, 2)), np.zeros((0, 1)))),
        ValueError,
        "validation X has no rows",
    ),
    L(
        "train-weights",
        lambda fx: _train(sample_weight=-np.ones(8)),
        ValueError,
        "sample_weight",
    ),
    L(
        "train-checkpoint-folder",
        lambda fx: _train(checkpoint=fx["sub"]),
        ValueError,
        "folder",
    ),
    L(
        "train-checkpoint-every",
        lambda fx: _train(checkpoint=fx["c.npz"], checkpoint_every=0),
        ValueError,
        "checkpoint_every",
    ),
    L(
        "train-resume-missing",
        lambda fx: _train(resume=fx["none.npz"]),
        ValueError,
        "no such file",
    ),
    L(
        "train-resume-model",
        lambda fx: _train(resume=fx["model.npz"]),
        ValueError,
        "not a fastbp checkpoint",
    ),
    L(
        "train-resume-other-run",
        lambda fx: _train(resume=fx["ckpt.npz"], epochs=5),
        ValueError,
        "does not match this run",
    ),
    L(
        "train-early-stopping-type",
        lambda fx: _train(early_stopping=3),
        TypeError,
        "early_stopping",
    ),
    L(
        "train-early-stopping-val",
        lambda fx: _train(early_stopping=fastbp.EarlyStopping()),
        ValueError,
        "validation data",
    ),
    L(
        "evaluate-no-rows",
        lambda fx: fastbp.evaluate(
            _mlp(), fastbp.MSELoss(), np.zeros((0, 2)), np.zeros((0, 1))
        ),
        ValueError,
        "no rows",
    ),
    L(
        "evaluate-metric",
        lambda fx: fastbp.evaluate(
            _mlp(), fastbp.MSELoss(), X8, np.zeros((8, 1)), metric="f1"
        ),
        ValueError,
        "evaluate: metric",
    ),
    L(
        "evaluate-batch",
        lambda fx: fastbp.evaluate(
            _mlp(), fastbp.MSELoss(), X8, np.zeros((8, 1)), batch_size=0
        ),
        ValueError,
        "batch_size",
    ),
    L("lbfgs-val-pair", lambda fx: _lbfgs(val=(X8,)), TypeError, "lbfgs: val"),
    L("lbfgs-tol", lambda fx: _lbfgs(tol=float("nan")), ValueError, "lbfgs: tol"),
    L("lbfgs-max-iter", lambda fx: _lbfgs(max_iter=0), ValueError, "max_iter"),
    L(
        "lbfgs-weights",
        lambda fx: _lbfgs(sample_weight=np.zeros(8)),
        ValueError,
        "lbfgs: sample_weight",
    ),
    # --- checkpoints ---------------------------------------------------------------
    L(
        "checkpoint-model",
        lambda fx: _ckpt(fx["model.npz"]),
        ValueError,
        "fastbp-model",
    ),
    L("checkpoint-text", lambda fx: _ckpt(fx["notes.txt"]), ValueError, "not a"),
    L("checkpoint-folder", lambda fx: _ckpt(fx["sub"]), ValueError, "directory"),
    L(
        "checkpoint-truncated",
        lambda fx: _ckpt(fx["trunc.ckpt.npz"]),
        ValueError,
        "corrupt or truncated",
    ),
    L(
        "checkpoint-version",
        lambda fx: _ckpt(fx["v99.ckpt.npz"]),
        ValueError,
        "version 99",
    ),
    # --- schedules and early stopping ----------------------------------------------
    L(
        "invscaling-nan",
        lambda fx: _sched("InvScaling", float("nan")),
        ValueError,
        "power_t",
    ),
    L(
        "invscaling-negative",
        lambda fx: _sched("InvScaling", -1),
        ValueError,
        "power_t",
    ),
    L("step-zero", lambda fx: _sched("StepDecay", 0), ValueError, "step_size"),
    L("step-gamma", lambda fx: _sched("StepDecay", 3, 0.0), ValueError, "gamma"),
    L("cosine-zero", lambda fx: _sched("Cosine", 0), ValueError, "t_max"),
    L("adaptive-factor", lambda fx: _sched("Adaptive", 1.0), ValueError, "factor"),
    L(
        "schedule-epochs",
        lambda fx: _schedule("cosine", epochs=0),
        ValueError,
        "epochs",
    ),
    L(
        "schedule-name",
        lambda fx: _schedule("exp", epochs=3),
        ValueError,
        "schedule must be",
    ),
    L(
        "early-stopping-patience",
        lambda fx: fastbp.EarlyStopping(patience=0),
        ValueError,
        "patience",
    ),
    L(
        "early-stopping-tol",
        lambda fx: fastbp.EarlyStopping(tol=float("nan")),
        ValueError,
        "tol",
    ),
    L(
        "early-stopping-monitor",
        lambda fx: fastbp.EarlyStopping(monitor="acc"),
        ValueError,
        "monitor",
    ),
    # --- streaming -----------------------------------------------------------------
    L("scan-task", lambda fx: _scan(fx, task="cluster"), ValueError, "task"),
    L("scan-val-one", lambda fx: _scan(fx, val_fraction=1), ValueError, "val_fraction"),
    L(
        "scan-val-text",
        lambda fx: _scan(fx, val_fraction="a"),
        ValueError,
        "val_fraction",
    ),
    L("scan-dtype", lambda fx: _scan(fx, dtype="float16"), TypeError, "dtype"),
    L("scan-seed-negative", lambda fx: _scan(fx, seed=-1), ValueError, "seed"),
    L("scan-seed-fraction", lambda fx: _scan(fx, seed=1.5), ValueError, "seed"),
    L("scan-target", lambda fx: _scan(fx, target="nope"), ValueError, "'nope'"),
    L("scan-missing", lambda fx: _scan(fx, "nothing.csv"), ValueError, "no such"),
    L("scan-latin1", lambda fx: _scan(fx, "latin1.csv"), ValueError, "not UTF-8"),
    L("scan-ragged", lambda fx: _scan(fx, "ragged.csv"), ValueError, "line 3"),
    L(
        "scan-bad-parquet",
        lambda fx: _scan(fx, "bad.parquet"),
        ValueError,
        "cannot read as parquet",
    ),
    L(
        "scan-float32",
        lambda fx: _scan(fx, "big.parquet"),
        ValueError,
        "column 'b', data row 50: 1e\\+39 is too large",
    ),
    L("scan-source", lambda fx: _stream_mod().scan(3), TypeError, "callable"),
    L(
        "scan-source-items",
        lambda fx: _stream_mod().scan(lambda: iter([[1]])),
        TypeError,
        "yielded list",
    ),
    L(
        "scan-empty-source",
        lambda fx: _stream_mod().scan(lambda: iter([])),
        ValueError,
        "no data rows",
    ),
    L(
        "file-source-format",
        lambda fx: _stream_mod().file_source(fx["iris.csv"], format="xlsx"),
        ValueError,
        "format",
    ),
    L(
        "file-source-rows",
        lambda fx: _stream_mod().file_source(fx["iris.csv"], batch_rows=0),
        ValueError,
        "batch_rows",
    ),
    L(
        "streamed-stats",
        lambda fx: _stream_mod().Streamed(lambda: iter([]), 3),
        TypeError,
        "scan",
    ),
    L(
        "streamed-buffer-zero",
        lambda fx: _stream_mod().Streamed(
            lambda: iter([]), _scan(fx), shuffle_buffer=0
        ),
        ValueError,
        "shuffle_buffer",
    ),
    L(
        "streamed-buffer-huge",
        lambda fx: _stream_mod().Streamed(
            lambda: iter([]), _scan(fx), shuffle_buffer=1 << 40
        ),
        ValueError,
        "at most",
    ),
    L(
        "streamed-features",
        lambda fx: _streamed(fx, fastbp.mlp([3, 4, 3], "relu", rng=0)),
        ValueError,
        "takes 3 features",
    ),
    L(
        "streamed-dtype",
        lambda fx: _streamed(fx, fastbp.mlp([4, 4, 3], "relu", rng=0, dtype="float64")),
        ValueError,
        "float64",
    ),
    L(
        "streamed-no-shuffle",
        lambda fx: _streamed(fx, shuffle=False),
        ValueError,
        "shuffle",
    ),
    L(
        "streamed-val",
        lambda fx: _streamed(fx, val=(X8, X8)),
        ValueError,
        "val does not apply",
    ),
    L(
        "streamed-weights",
        lambda fx: _streamed(fx, sample_weight=np.ones(150)),
        ValueError,
        "sample_weight does not apply",
    ),
    # --- the estimators ------------------------------------------------------------
    *[
        L(
            f"estimator-{param}-{value!r}",
            lambda fx, p=param, v=value: _fit_c(**{p: v}),
            ValueError,
            param,
        )
        for param, value in [
            ("hidden_layer_sizes", (0,)),
            ("activation", "swish"),
            ("solver", "rms"),
            ("alpha", -1.0),
            ("batch_size", 0),
            ("learning_rate", "exp"),
            ("learning_rate_init", 0.0),
            ("power_t", float("nan")),
            ("max_iter", 0),
            ("tol", float("nan")),
            ("momentum", 1.5),
            ("validation_fraction", 1.0),
            ("beta_1", 1.0),
            ("epsilon", 0.0),
            ("n_iter_no_change", 0),
            ("max_fun", 0),
            ("dtype", "float16"),
            ("n_threads", 0),
            ("shuffle", "yes"),
            ("early_stopping", "no"),
        ]
    ],
    L(
        "estimator-class-weight",
        lambda fx: _fit_c(class_weight="equal"),
        ValueError,
        "class_weight",
    ),
    L("regressor-loss", lambda fx: _fit_r(loss="huber"), ValueError, "loss"),
    L(
        "estimator-nan",
        lambda fx: _fit_r(X=np.full((40, 3), np.nan)),
        ValueError,
        "NaN",
    ),
    L(
        "estimator-inf",
        lambda fx: _fit_r(X=np.full((40, 3), np.inf)),
        ValueError,
        "infinity",
    ),
    L(
        "estimator-float32-overflow",
        lambda fx: _fit_r(X=np.full((40, 3), 1e39)),
        ValueError,
        "MLPRegressor: X holds 1e\\+39.*too large for float32",
    ),
    L(
        "estimator-target-overflow",
        lambda fx: _fit_r(y=np.full(40, 1e39)),
        ValueError,
        "MLPRegressor: y holds 1e\\+39",
    ),
    L(
        "estimator-predict-overflow",
        lambda fx: _fit_c().predict(np.full((2, 3), 1e39)),
        ValueError,
        "predict: X holds 1e\\+39",
    ),
    L(
        "estimator-predict-features",
        lambda fx: _fit_c().predict(np.zeros((2, 2))),
        ValueError,
        "2 features",
    ),
    L(
        "estimator-save-folder",
        lambda fx: _fit_c().save(fx["sub"]),
        ValueError,
        "save: .* is a folder",
    ),
    L(
        "estimator-save-missing-folder",
        lambda fx: _fit_c().save(fx["nodir/m.npz"]),
        ValueError,
        "does not exist",
    ),
    L(
        "estimator-save-unfitted",
        lambda fx: _skl().MLPClassifier().save(fx["u.npz"]),
        ValueError,
        "not fitted",
    ),
    L(
        "partial-fit-no-classes",
        lambda fx: _skl().MLPClassifier().partial_fit(*_xy()[:2]),
        ValueError,
        "classes must be passed",
    ),
    L(
        "partial-fit-new-class",
        lambda fx: _partial(_xy()[:2], (_xy()[0], np.full(40, 5))),
        ValueError,
        "classes not in",
    ),
    L(
        "partial-fit-undeclared",
        lambda fx: _partial(_xy()[:2], classes=(0, 2)),
        ValueError,
        "classes not in",
    ),
    L(
        "partial-fit-features",
        lambda fx: _partial(_xy()[:2], (_xy()[0][:, :2], _xy()[1])),
        ValueError,
        "2 features",
    ),
    L(
        "partial-fit-overflow",
        lambda fx: _partial((np.full((40, 3), 1e39), _xy()[1])),
        ValueError,
        "too large for float32",
    ),
    L(
        "load-missing",
        lambda fx: _skl().MLPClassifier.load(fx["none.npz"]),
        ValueError,
        "no such file",
    ),
    L(
        "load-checkpoint",
        lambda fx: _skl().MLPClassifier.load(fx["ckpt.npz"]),
        ValueError,
        "fastbp-checkpoint",
    ),
    L(
        "load-regression-as-classifier",
        lambda fx: _skl().MLPClassifier.load(fx["strict.npz"]),
        ValueError,
        "MLPRegressor",
    ),
    L(
        "load-classifier-as-regressor",
        lambda fx: _skl().MLPRegressor.load(fx["model.npz"]),
        ValueError,
        "MLPClassifier",
    ),
    L(
        "load-text",
        lambda fx: _skl().MLPRegressor.load(fx["notes.txt"]),
        ValueError,
        "not a fastbp model file",
    ),
    L(
        "load-continue",
        lambda fx: (
            _skl()
            .MLPClassifier.load(fx["model.npz"])
            .partial_fit(_iris_frame().iloc[:, :4].to_numpy(), _iris_frame().species)
        ),
        ValueError,
        "cannot continue training",
    ),
    L(
        "load-columns-by-name",
        lambda fx: (
            _skl()
            .MLPRegressor.load(fx["strict.npz"])
            .predict(_regression_frame()[["x3", "x2", "x1"]])
        ),
        ValueError,
        "feature names",
    ),
    L(
        "load-v1-columns-by-name",
        lambda fx: (
            _skl()
            .MLPClassifier.load(V1_IRIS)
            .predict(_iris_frame().iloc[:, [3, 2, 1, 0]])
        ),
        ValueError,
        "feature names",
    ),
    L(
        "load-plan-missing-column",
        lambda fx: (
            _skl()
            .MLPClassifier.load(fx["model.npz"])
            .predict(_iris_frame().drop(columns=["petal_width"]))
        ),
        ValueError,
        "missing 'petal_width'",
    ),
    # --- TableEncoder --------------------------------------------------------------
    L(
        "encoder-max-categories",
        lambda fx: _encoder(max_categories=0),
        ValueError,
        "max_categories",
    ),
    L(
        "encoder-max-categories-type",
        lambda fx: _encoder(max_categories=2.5),
        TypeError,
        "max_categories",
    ),
    L(
        "encoder-categorical",
        lambda fx: _encoder(categorical=3),
        TypeError,
        "categorical",
    ),
    L("encoder-numeric", lambda fx: _encoder(numeric=[1]), TypeError, "numeric"),
    L("encoder-na-values", lambda fx: _encoder(na_values=3), TypeError, "na_values"),
    L("encoder-dtype", lambda fx: _encoder(dtype="float16"), ValueError, "dtype"),
    L("encoder-drop", lambda fx: _encoder(drop="nope"), ValueError, "'nope'"),
    L("encoder-features", lambda fx: _encoder(features=["nope"]), ValueError, "nope"),
    L(
        "encoder-fit-overflow",
        lambda fx: (
            _skl()
            .TableEncoder()
            .fit(_iris_frame().iloc[:, :4].assign(sepal_width=1e39))
        ),
        ValueError,
        "'sepal_width', data row 1: 1e\\+39 is too large for float32",
    ),
    L(
        "encoder-transform-missing",
        lambda fx: _encoder().transform(_iris_frame().iloc[:, :3]),
        ValueError,
        "petal_width",
    ),
    L(
        "encoder-transform-overflow",
        lambda fx: _encoder().transform(
            _iris_frame().iloc[:, :4].assign(sepal_length=1e39)
        ),
        ValueError,
        "too large",
    ),
    L(
        "encoder-fit-no-rows",
        lambda fx: _skl().TableEncoder().fit(_iris_frame().iloc[:0, :4]),
        ValueError,
        "0 rows",
    ),
]


def _ckpt(path):
    from fastbp.training.checkpoint import Checkpoint

    return Checkpoint.load(path)


def _sched(name, *args):
    from fastbp.training import schedules

    return getattr(schedules, name)(*args)


def _schedule(name, **kw):
    from fastbp.training.schedules import schedule

    return schedule(name, **kw)


def _stream_mod():
    from fastbp.data import stream

    return stream


def _regression_frame():
    pd = pytest.importorskip("pandas")
    return pd.read_csv(REGRESSION)


@pytest.mark.parametrize("case", LIBRARY, ids=[case.id for case in LIBRARY])
def test_library_misuse_raises(case, fx):
    before = _snapshot(fx.root)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(case.error, match=case.match) as info:
                case.call(fx)
    finally:
        kept = _unchanged(fx, before)
    assert isinstance(info.value, TypeError | ValueError)
    assert kept


def test_streamed_regression_of_many_distinct_targets_trains(tmp_path):
    """More distinct target values than a class count can be (65536) in one
    record batch: the first pass used to crash (TypeError) on any large
    regression file, streamed or sharded."""
    from fastbp.data.stream import file_source, scan

    n = 70_000
    rng = np.random.default_rng(1)
    x = rng.normal(size=n)
    path = tmp_path / "wide.csv"
    y = x * 3 + rng.normal(size=n)
    lines = ["x,y"] + [f"{a:.9f},{b:.9f}" for a, b in zip(x, y, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    stats = scan(file_source(path), name=str(path), val_fraction=0.1)
    assert stats.task == "regression" and stats.n_rows == n
