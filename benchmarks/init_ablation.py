"""Why ``fastbp train`` learned less per epoch than scikit-learn and PyTorch on
the end-to-end job: one change at a time to the model the CLI trains.

    python benchmarks/init_ablation.py [--jobs 100000:10,500000:1,500000:10]
        [--seeds 3] [--variants NAME,...] [--no-peers] [--out-dir DIR]

The data are ``benchmarks/end_to_end.py``'s (20 standard normal features, a
nonlinear target), written as its CSV and read as ``fastbp train`` reads it
(``Problem.from_file`` + ``prepare``: features standardized, target as is).
Each variant trains ``fastbp.mlp([20, 64, 1], "relu")`` with Adam (lr 0.001,
eps 1e-8), MSE (mean), batch 256, through ``fastbp.train`` (fused kernel),
and reports the train R^2 (the end-to-end benchmark's figure) mean +- std
over seeds 0..N-1 (the seed draws the weights and the shuffling). Variants:

- ``cli``: the command's model before this change: He-normal weights,
  W ~ N(0, 2 / fan_in), zero biases (``fastbp.mlp``'s ReLU default);
- ``target-std``: ``cli`` trained on the standardized target, predictions
  mapped back;
- ``loss-sum``: ``cli`` with MSE reduction "sum" (the gradient's scale; what
  batch-size / lr semantics would change);
- ``eps-1e-6``: ``cli`` with Adam eps 1e-6 (scikit-learn adds eps before the
  bias correction: an effective eps of at most eps / sqrt(1 - beta2) =
  31.6 eps = 3.2e-7 at step 1, so 1e-6 bounds that difference);
- ``layer-path``: ``cli`` trained by the per-layer path (``fuse=False``);
- ``he/2``: He-normal weights halved;
- ``xavier``: Glorot-uniform weights, U(+-sqrt(6 / (fan_in + fan_out))),
  zero biases (``init="xavier"``);
- ``xavier+bias``: scikit-learn's initialization: Glorot-uniform weights and
  biases;
- ``pytorch-w``: U(+-1/sqrt(fan_in)) weights, zero biases;
- ``pytorch``: ``init="pytorch"``: U(+-1/sqrt(fan_in)) weights and biases,
  ``torch.nn.Linear``'s default (``fastbp train``'s model after this change);
- ``he+bias``: He-normal weights, U(+-1/sqrt(fan_in)) biases.

Peers (``--no-peers`` skips them): scikit-learn's ``MLPRegressor`` (hidden
64, Adam, batch 256, lr 0.001; ``partial_fit`` once per epoch) and PyTorch
(Linear-ReLU-Linear, Adam, MSELoss, DataLoader(batch 256, shuffle)) on the
same standardized features and the standardized target, as the end-to-end
benchmark's jobs, R^2 after each job's epochs; seeds as above. Prints one
Markdown table: variant, then R^2 per job, and the best peer's per job with
the gap to it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from end_to_end import write_data  # noqa: E402

import fastbp  # noqa: E402
from fastbp.data.problem import Problem  # noqa: E402
from fastbp.nn.layers import Linear  # noqa: E402

#: variant -> (weights, biases, other settings); weights/biases: "he",
#: "he/2", "xavier", "pytorch" or "zero" drawn here in layer order (weight,
#: then bias, from default_rng(seed)), or "mlp:<init>" for fastbp.mlp's own.
VARIANTS = {
    "cli": ("mlp:he", None, {}),
    "target-std": ("mlp:he", None, {"target_std": True}),
    "loss-sum": ("mlp:he", None, {"reduction": "sum"}),
    "eps-1e-6": ("mlp:he", None, {"eps": 1e-6}),
    "layer-path": ("mlp:he", None, {"fuse": False}),
    "he/2": ("he/2", "zero", {}),
    "xavier": ("mlp:xavier", None, {}),
    "xavier+bias": ("xavier", "xavier", {}),
    "pytorch-w": ("pytorch", "zero", {}),
    "pytorch": ("mlp:pytorch", None, {}),
    "he+bias": ("he", "pytorch", {}),
}


def draw(kind: str, gen, fan_in: int, fan_out: int, shape) -> np.ndarray:
    if kind == "zero":
        return np.zeros(shape)
    if kind in ("he", "he/2"):
        scale = 0.5 if kind == "he/2" else 1.0
        return scale * gen.normal(0.0, np.sqrt(2.0 / fan_in), shape)
    bound = np.sqrt(6.0 / (fan_in + fan_out)) if kind == "xavier" else fan_in**-0.5
    return gen.uniform(-bound, bound, shape)


def build(variant: str, widths: list[int], seed: int):
    weights, biases, _ = VARIANTS[variant]
    if weights.startswith("mlp:"):
        return fastbp.mlp(widths, "relu", init=weights[4:], rng=seed)
    model = fastbp.mlp(widths, "relu", rng=seed)
    gen = np.random.default_rng(seed)
    for layer in (la for la in model.layers if isinstance(la, Linear)):
        n_in, n_out = layer.in_features, layer.out_features
        layer.weight.data[...] = draw(weights, gen, n_in, n_out, (n_in, n_out))
        layer.bias.data[...] = draw(biases, gen, n_in, n_out, n_out)
    return model


def r2(pred: np.ndarray, target: np.ndarray) -> float:
    pred, target = pred.astype(np.float64).ravel(), target.astype(np.float64).ravel()
    return 1.0 - ((pred - target) ** 2).sum() / ((target - target.mean()) ** 2).sum()


def run_fastbp(variant: str, X, T, epochs: int, seed: int) -> float:
    _, _, opts = VARIANTS[variant]
    model = build(variant, [X.shape[1], 64, 1], seed)
    mean, std = (T.mean(), T.std()) if opts.get("target_std") else (0.0, 1.0)
    target = ((T - mean) / std).astype(T.dtype)
    loss = fastbp.MSELoss(reduction=opts.get("reduction", "mean"))
    opt = fastbp.Adam(model.parameters(), lr=0.001, eps=opts.get("eps", 1e-8))
    fastbp.train(
        model, loss, opt, X, target, epochs=epochs, batch_size=256, seed=seed,
        fuse=opts.get("fuse"),
    )  # fmt: skip
    return r2(model.predict(X) * std + mean, T)


def run_sklearn(X, y, epoch_list: list[int], seed: int) -> dict[int, float]:
    from sklearn.neural_network import MLPRegressor

    model = MLPRegressor(
        hidden_layer_sizes=(64,), solver="adam", batch_size=256,
        learning_rate_init=0.001, random_state=seed, shuffle=True,
    )  # fmt: skip
    out = {}
    for epoch in range(1, max(epoch_list) + 1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.partial_fit(X, y)
        if epoch in epoch_list:
            out[epoch] = r2(model.predict(X), y)
    return out


def run_torch(X, y, epoch_list: list[int], seed: int) -> dict[int, float]:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(seed)
    Xt = torch.tensor(X, dtype=torch.float32)
    yt = torch.tensor(y[:, None], dtype=torch.float32)
    loader = DataLoader(TensorDataset(Xt, yt), batch_size=256, shuffle=True)
    model = torch.nn.Sequential(
        torch.nn.Linear(X.shape[1], 64), torch.nn.ReLU(), torch.nn.Linear(64, 1)
    )
    opt = torch.optim.Adam(model.parameters(), lr=0.001)
    loss_fn = torch.nn.MSELoss()
    out = {}
    for epoch in range(1, max(epoch_list) + 1):
        for xb, yb in loader:
            opt.zero_grad()
            loss_fn(model(xb), yb).backward()
            opt.step()
        if epoch in epoch_list:
            with torch.no_grad():
                out[epoch] = r2(model(Xt).numpy(), y)
    return out


def stats(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.pstdev(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", default="100000:10,500000:1,500000:10",
                        help="rows:epochs, comma-separated")  # fmt: skip
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--out-dir", default=None, help="default: a temp dir")
    args = parser.parse_args()
    jobs = [tuple(int(v) for v in job.split(":")) for job in args.jobs.split(",")]
    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        sys.exit(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    seeds = range(args.seeds)

    results: dict[str, dict[tuple[int, int], tuple[float, float]]] = {}
    workdir = Path(tempfile.mkdtemp(prefix="fastbp_init_", dir=args.out_dir))
    try:
        for rows in sorted({r for r, _ in jobs}):
            path = workdir / f"data_{rows}.csv"
            write_data(path, rows, 20)
            problem = Problem.from_file(path, target="y", task="regression")
            prepared = problem.prepare(loss="mse", val_fraction=0.0, seed=0)
            X, T = prepared.X_train, prepared.T_train.reshape(-1, 1)
            path.unlink()
            epoch_list = sorted({e for r, e in jobs if r == rows})
            for variant in variants:
                for epochs in epoch_list:
                    start = time.perf_counter()
                    scores = [run_fastbp(variant, X, T, epochs, s) for s in seeds]
                    results.setdefault(variant, {})[rows, epochs] = stats(scores)
                    print(json.dumps({
                        "variant": variant, "rows": rows, "epochs": epochs,
                        "r2": [round(s, 4) for s in scores],
                        "seconds": round(time.perf_counter() - start, 1),
                    }), file=sys.stderr, flush=True)  # fmt: skip
            if args.no_peers:
                continue
            Xs = X.astype(np.float64)
            ys = T[:, 0].astype(np.float64)
            ys = (ys - ys.mean()) / ys.std()
            for name, runner in (("scikit-learn", run_sklearn),
                                 ("PyTorch", run_torch)):  # fmt: skip
                per_seed = [runner(Xs, ys, epoch_list, s) for s in seeds]
                for epochs in epoch_list:
                    scores = [p[epochs] for p in per_seed]
                    results.setdefault(name, {})[rows, epochs] = stats(scores)
                record = {"peer": name, "rows": rows, "r2": per_seed}
                print(json.dumps(record, default=float), file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print_table(results, jobs, peers=not args.no_peers)


def print_table(results, jobs, peers: bool) -> None:
    heads = [f"{r:,} rows, {e} ep" for r, e in jobs]
    print(f"\ntrain R^2, mean ± std over seeds\n\n| variant | {' | '.join(heads)} |")
    print("|---|" + "---:|" * len(jobs))
    best = {}
    if peers:
        for job in jobs:
            best[job] = max(results[p][job][0] for p in ("scikit-learn", "PyTorch"))
    for name, per_job in results.items():
        cells = []
        for job in jobs:
            mean, std = per_job[job]
            gap = f" ({mean - best[job]:+.4f})" if best else ""
            cells.append(f"{mean:.4f} ± {std:.4f}{gap}")
        print(f"| {name} | {' | '.join(cells)} |")
    if best:
        print("\n(in brackets: the difference to the best peer's mean)")


if __name__ == "__main__":
    main()
