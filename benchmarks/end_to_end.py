"""CSV file -> trained model, end to end: fastbp against pandas + scikit-learn
and pandas + PyTorch doing the same job as a user would write it.

    python benchmarks/end_to_end.py [--rows 500000] [--features 20]
        [--epochs 1,10] [--threads N] [--quick] [--out-dir DIR] [--keep]

Writes one CSV of random regression data (``--features`` standard normal
columns x0..x{n-1} and a target ``y``, a nonlinear function of them plus
noise) with pyarrow, then runs every job in its own Python process under
``/usr/bin/time -f '%e %M'`` -- wall seconds and peak resident set size,
start-up, imports, reading the file, standardizing, training and one
evaluation pass included:

- ``fastbp train --data F --target y --task regression --epochs E --hidden 64
  --optimizer adam --batch-size 256 --lr 0.001 --val-split 0 --quiet --json``
  (the console script installed beside this Python);
- pandas + scikit-learn: ``read_csv``, ``StandardScaler``, ``MLPRegressor``
  with one hidden layer of 64, Adam, batch 256, ``max_iter=E`` epochs (no early
  stopping, no tolerance stop);
- pandas + PyTorch: ``read_csv``, standardize, ``TensorDataset`` +
  ``DataLoader(batch_size=256, shuffle=True)``, Linear-ReLU-Linear, Adam, MSE;
- ``numpy.loadtxt`` of the file alone: the reference the issue's loading
  targets are stated against.

All train on every row (no validation split), float32 (scikit-learn keeps
float64, its default). A library that is not installed is skipped with a note.
Prints a Markdown table: job, epochs, wall s, peak MB, train R^2, its
difference to fastbp's for the same epochs, and wall and memory ratios against
fastbp for the same epochs (quote a speed ratio only beside its R^2: a ratio
between runs of unequal quality says little). ``--threads N`` caps every
job (OMP/BLAS/Numba environment variables, fastbp ``--threads``,
``torch.set_num_threads``); by default each library uses what it finds.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

TIME = "/usr/bin/time"

SKLEARN_JOB = """
import json, sys
import pandas as pd
from sklearn.neural_network import MLPRegressor
from sklearn.preprocessing import StandardScaler

path, epochs, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3]
df = pd.read_csv(path)
X = StandardScaler().fit_transform(df.drop(columns="y").to_numpy())
y = df["y"].to_numpy()
y_mean, y_std = y.mean(), y.std()
model = MLPRegressor(
    hidden_layer_sizes=(64,), solver="adam", batch_size=256,
    learning_rate_init=0.001, max_iter=epochs, tol=0,
    n_iter_no_change=epochs + 1, early_stopping=False, shuffle=True,
    random_state=0,
)
import warnings
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # ConvergenceWarning: max_iter reached
    model.fit(X, (y - y_mean) / y_std)
print(json.dumps({"r2": model.score(X, (y - y_mean) / y_std)}))
"""

TORCH_JOB = """
import json, sys
import pandas as pd
import torch
from torch.utils.data import DataLoader, TensorDataset

path, epochs, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if threads != "-":
    torch.set_num_threads(int(threads))
torch.manual_seed(0)
df = pd.read_csv(path)
X = torch.tensor(df.drop(columns="y").to_numpy(), dtype=torch.float32)
y = torch.tensor(df[["y"]].to_numpy(), dtype=torch.float32)
X = (X - X.mean(0)) / X.std(0)
y = (y - y.mean()) / y.std()
loader = DataLoader(TensorDataset(X, y), batch_size=256, shuffle=True)
model = torch.nn.Sequential(
    torch.nn.Linear(X.shape[1], 64), torch.nn.ReLU(), torch.nn.Linear(64, 1)
)
opt = torch.optim.Adam(model.parameters(), lr=0.001)
loss_fn = torch.nn.MSELoss()
for _ in range(epochs):
    for xb, yb in loader:
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
with torch.no_grad():
    sse = float(((model(X) - y) ** 2).sum())
    sst = float(((y - y.mean()) ** 2).sum())
print(json.dumps({"r2": 1 - sse / sst}))
"""

LOADTXT_JOB = """
import json, sys
import numpy as np

a = np.loadtxt(sys.argv[1], delimiter=",", skiprows=1)
print(json.dumps({"shape": list(a.shape)}))
"""


def write_data(path: Path, n_rows: int, n_features: int, seed: int = 0) -> None:
    """Random regression data as CSV, written in pieces (bounded memory)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    w = rng.normal(size=n_features) / np.sqrt(n_features)
    names = [f"x{j}" for j in range(n_features)]
    schema = pa.schema([(c, pa.float64()) for c in [*names, "y"]])
    piece = 1 << 17
    with pacsv.CSVWriter(path, schema) as writer:
        for start in range(0, n_rows, piece):
            m = min(piece, n_rows - start)
            X = rng.normal(size=(m, n_features))
            y = (
                np.sin(X @ w * 2)
                + 0.5 * X[:, 0] * X[:, 1 % n_features]
                + 0.25 * X[:, 2 % n_features] ** 2
                + 0.1 * rng.normal(size=m)
            )
            columns = [X[:, j] for j in range(n_features)] + [y]
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))


def measure(argv: list[str], env: dict[str, str], workdir: Path) -> dict:
    """Run argv under /usr/bin/time; wall s, peak MB and its JSON line."""
    timing = workdir / "time.txt"
    run = subprocess.run(
        [TIME, "-f", "%e %M", "-o", str(timing), *argv],
        env=env,
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        tail = (run.stderr or run.stdout).strip().splitlines()[-3:]
        return {"error": f"exit {run.returncode}: " + " | ".join(tail)}
    wall, peak_kb = timing.read_text().split()[-2:]
    out: dict = {"wall": float(wall), "peak_mb": int(peak_kb) / 1024}
    lines = [ln for ln in run.stdout.splitlines() if ln.startswith("{")]
    if lines:
        out.update(json.loads(lines[-1]))
    return out


def jobs(path: Path, epochs: int, threads: int | None, workdir: Path):
    """(name, argv or a reason it is skipped) for each engine."""
    t = "-" if threads is None else str(threads)
    fastbp_cli = Path(sys.executable).parent / "fastbp"
    argv = [str(fastbp_cli), "train", "--data", str(path), "--target", "y"]
    argv += ["--task", "regression", "--epochs", str(epochs), "--hidden", "64"]
    argv += ["--optimizer", "adam", "--batch-size", "256", "--lr", "0.001"]
    argv += ["--val-split", "0", "--quiet", "--json"]
    if threads is not None:
        argv += ["--threads", t]
    yield "fastbp", argv if fastbp_cli.exists() else f"no {fastbp_cli}"
    for name, script, needs in (
        ("pandas + scikit-learn", SKLEARN_JOB, ("pandas", "sklearn")),
        ("pandas + PyTorch", TORCH_JOB, ("pandas", "torch")),
    ):
        missing = [m for m in needs if importlib.util.find_spec(m) is None]
        if missing:
            yield name, f"not installed: {', '.join(missing)}"
            continue
        file = workdir / f"job_{needs[1]}.py"
        file.write_text(script)
        yield name, [sys.executable, str(file), str(path), str(epochs), t]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--epochs", default="1,10", help="comma-separated")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="50,000 rows")
    parser.add_argument("--out-dir", default=None, help="default: a temp dir")
    parser.add_argument("--keep", action="store_true", help="keep the CSV")
    args = parser.parse_args()
    rows = 50_000 if args.quick else args.rows
    epoch_list = [int(e) for e in args.epochs.split(",")]
    if not os.path.exists(TIME):
        sys.exit(f"{TIME} (GNU time) is needed to measure peak memory")

    env = dict(os.environ)
    if args.threads is not None:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS"):  # fmt: skip
            env[var] = str(args.threads)

    workdir = Path(tempfile.mkdtemp(prefix="fastbp_e2e_", dir=args.out_dir))
    path = workdir / "big.csv"
    try:
        write_data(path, rows, args.features)
        size_mb = path.stat().st_size / 2**20
        print(
            f"{rows:,} rows x {args.features} features + y, {size_mb:.0f} MB CSV; "
            f"threads: {args.threads or 'default'}; {os.cpu_count()} cores; "
            f"Python {sys.version.split()[0]}",
            flush=True,
        )
        results: list[tuple[str, str, dict]] = []
        notes: list[str] = []
        load = measure([sys.executable, "-c", LOADTXT_JOB, str(path)], env, workdir)
        results.append(("numpy.loadtxt (read only)", "-", load))
        for epochs in epoch_list:
            for name, argv in jobs(path, epochs, args.threads, workdir):
                if isinstance(argv, str):
                    note = f"{name}: skipped ({argv})"
                    if note not in notes:
                        notes.append(note)
                    continue
                print(f"running {name}, {epochs} epochs ...", file=sys.stderr)
                results.append((name, str(epochs), measure(argv, env, workdir)))
        print_table(results)
        for note in notes:
            print(f"\n{note}")
    finally:
        if args.keep:
            print(f"\ndata kept in {path}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def print_table(results: list[tuple[str, str, dict]]) -> None:
    base = {e: r for name, e, r in results if name == "fastbp" and "wall" in r}
    print("\n| job | epochs | wall s | peak MB | train R^2 | R^2 - fastbp "
          "| wall / fastbp | peak / fastbp |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, epochs, r in results:
        if "error" in r:
            print(f"| {name} | {epochs} | failed: {r['error']} | | | | | |")
            continue
        r2 = r.get("r2", r.get("train_r2"))
        r2_text = f"{r2:.3f}" if isinstance(r2, float) else ""
        ref = base.get(epochs)  # loadtxt ("-"): no ratio
        ref_r2 = ref.get("train_r2") if ref else None
        gap = (
            f"{r2 - ref_r2:+.3f}"
            if isinstance(r2, float) and isinstance(ref_r2, float)
            else ""
        )
        ratios = (
            f"{r['wall'] / ref['wall']:.2f}x | {r['peak_mb'] / ref['peak_mb']:.2f}x"
            if ref
            else " | "
        )
        print(
            f"| {name} | {epochs} | {r['wall']:.2f} | {r['peak_mb']:.0f} "
            f"| {r2_text} | {gap} | {ratios} |"
        )


if __name__ == "__main__":
    main()
