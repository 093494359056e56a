"""Loading a large table, and training on it from the command line.

Generates a numeric CSV (default 500,000 rows x 20 features + a target,
~96 MB) and its Parquet twin, then times each job in a fresh process with
``/usr/bin/time`` (wall seconds, peak RSS):

- ``numpy.loadtxt`` of the CSV (the reference the targets are stated in);
- ``fastbp.data.tables.read_table`` of the CSV and of the Parquet file;
- ``fastbp train --data big.csv --epochs 1`` (the whole command) and the XOR
  run's peak RSS (the process baseline);
- a bare ``python -c "import fastbp"`` (the baseline of the read_table rows).

    python benchmarks/loading.py [--rows 500000] [--keep DIR] [--old]

``--old`` also times the line-by-line scanner ``fastbp.data.load_csv`` (about
a minute). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def generate(folder: Path, rows: int, features: int = 20) -> tuple[Path, Path]:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, features))
    y = (
        np.sin(X[:, 0])
        + 0.5 * X[:, 1] ** 2
        - X[:, 2] * X[:, 3]
        + rng.normal(0, 0.1, rows)
    )
    columns = {f"x{j + 1}": X[:, j] for j in range(features)} | {"y": y}
    table = pa.table(columns)
    csv_path, parquet_path = folder / "big.csv", folder / "big.parquet"
    pacsv.write_csv(table, csv_path)
    pq.write_table(table, parquet_path)
    return csv_path, parquet_path


def timed(args: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of a command."""
    run = subprocess.run(
        ["/usr/bin/time", "-f", "%e %M", *args], capture_output=True, text=True
    )
    if run.returncode != 0:
        raise RuntimeError(run.stderr[-2000:])
    wall, kb = run.stderr.strip().splitlines()[-1].split()
    return float(wall), float(kb) / 1024


def reading_times(csv_path: Path, parquet_path: Path) -> tuple[float, float]:
    """Median seconds of read_table on each file, in this process (warm)."""
    import time

    from fastbp.data.tables import read_table

    medians = []
    for path in (csv_path, parquet_path):
        times = []
        for _ in range(5):
            start = time.perf_counter()
            read_table(path)
            times.append(time.perf_counter() - start)
        medians.append(float(np.median(times)))
    return medians[0], medians[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--keep", type=Path, default=None)
    parser.add_argument("--old", action="store_true")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="fastbp-loading-"))
    folder.mkdir(parents=True, exist_ok=True)
    csv_path, parquet_path = generate(folder, args.rows)
    py = sys.executable
    fastbp = [py, "-m", "fastbp"]
    jobs = {
        "numpy.loadtxt (CSV)": [
            py, "-c", f"import numpy; numpy.loadtxt({str(csv_path)!r}, "
            "delimiter=',', skiprows=1)",
        ],
        "fastbp read_table (CSV)": [
            py, "-c", "from fastbp.data.tables import read_table; "
            f"read_table({str(csv_path)!r})",
        ],
        "fastbp read_table (Parquet)": [
            py, "-c", "from fastbp.data.tables import read_table; "
            f"read_table({str(parquet_path)!r})",
        ],
        "fastbp train --epochs 1 (CSV)": [
            *fastbp, "train", "--data", str(csv_path), "--epochs", "1", "--quiet"
        ],
        "fastbp train --epochs 1 (Parquet)": [
            *fastbp, "train", "--data", str(parquet_path), "--epochs", "1", "--quiet"
        ],
        "fastbp train --data xor (baseline)": [*fastbp, "train", "--data", "xor", "-q"],
        "python -c 'import fastbp' (baseline)": [py, "-c", "import fastbp"],
    }  # fmt: skip
    if args.old:
        jobs["fastbp.data.load_csv (old loader)"] = [
            py, "-c", f"from fastbp.data import load_csv; load_csv({str(csv_path)!r})",
        ]  # fmt: skip
    timed(jobs["fastbp train --data xor (baseline)"])  # compile once, untimed
    results = {name: timed(cmd) for name, cmd in jobs.items()}
    in_process = reading_times(csv_path, parquet_path)
    feature_mb = args.rows * 20 * 4 / 2**20
    size_mb = csv_path.stat().st_size / 2**20
    print(f"{args.rows:,} rows x 20 features; CSV {size_mb:.0f} MB, "
          f"float32 feature array {feature_mb:.0f} MB\n")  # fmt: skip
    print("| job | wall s | peak RSS MB |\n|---|---:|---:|")
    for name, (wall, mb) in results.items():
        print(f"| {name} | {wall:.2f} | {mb:.0f} |")
    loadtxt = results["numpy.loadtxt (CSV)"][0]
    train_wall, train_mb = results["fastbp train --epochs 1 (CSV)"]
    base = results["fastbp train --data xor (baseline)"][1]
    csv_read = results["fastbp read_table (CSV)"][0]
    pq_read = results["fastbp read_table (Parquet)"][0]
    bare = results["python -c 'import fastbp' (baseline)"][1]
    above = [results[f"fastbp read_table ({k})"][1] - bare for k in ("CSV", "Parquet")]
    print(
        f"\nread_table peak RSS above a bare import fastbp: CSV {above[0]:.0f} MB "
        f"({above[0] / feature_mb:.1f} x the feature array), Parquet "
        f"{above[1]:.0f} MB ({above[1] / feature_mb:.1f} x; pyarrow itself "
        "and a whole Parquet row group, decoded, count here)"
    )
    print(
        f"read_table in one process, median of 5: CSV {in_process[0]:.3f} s, "
        f"Parquet {in_process[1]:.3f} s: {in_process[0] / in_process[1]:.1f} x "
        "(target >= 5)"
    )
    print(
        f"train --epochs 1 wall / loadtxt wall: {train_wall / loadtxt:.2f} "
        f"(target <= 2)\ntrain peak RSS: {train_mb:.0f} MB (target <= 400); above "
        f"the XOR baseline: {(train_mb - base) / feature_mb:.1f} x the feature "
        f"array (target <= ~4)\nread_table CSV / Parquet, each in a fresh process: "
        f"{csv_read / pq_read:.1f} x (includes interpreter start-up)"
    )


if __name__ == "__main__":
    main()
