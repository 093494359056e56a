"""Training runs whose results tests/test_pins.py holds fixed: a few models of
every kind the loop trains (fused and layer paths, validation and early
stopping, schedules, gradient norms, sample weights and L2, a checkpoint
resumed, a streamed table, L-BFGS), in float64. Run as a script, it writes
tests/fixtures/pins.npz from the installed fastbp:

    python tests/pin_scenarios.py tests/fixtures/pins.npz

Written with the fastbp.train keywords of 0.1, which every later version
keeps, so that the same script pins one version against another.
"""

import os
import sys
import tempfile
import warnings

import numpy as np

import fastbp

F64 = np.float64


def _xor():
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], F64)
    return X, np.array([[0.0], [1.0], [1.0], [0.0]])


def _regression(n=120, f=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f))
    y = np.tanh(X @ rng.normal(size=f)) + 0.1 * rng.normal(size=n)
    return X, y.reshape(-1, 1)


def _classes(n=150, f=4, k=3, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f))
    return X, np.argmax(X[:, :k] + 0.3 * rng.normal(size=(n, k)), axis=1)


def _sgd_xor(fuse):
    model = fastbp.mlp([2, 8, 1], "tanh", rng=0, dtype=F64)
    opt = fastbp.SGD(model.parameters(), lr=0.1, momentum=0.9)
    result = fastbp.train(
        model, fastbp.MSELoss(), opt, *_xor(), epochs=200, batch_size=4, fuse=fuse
    )
    return model, result


def _adam_regression():
    X, y = _regression()
    model = fastbp.mlp([5, 16, 16, 1], "relu", rng=3, dtype=F64)
    opt = fastbp.Adam(model.parameters(), lr=0.01)
    weights = np.linspace(0.5, 1.5, 96)
    from fastbp.schedules import EarlyStopping

    result = fastbp.train(
        model, fastbp.MSELoss(), opt, X[:96], y[:96], epochs=40, batch_size=16,
        seed=7, val=(X[96:], y[96:]), sample_weight=weights, l2=1e-3,
        early_stopping=EarlyStopping(patience=3, tol=0.0),
    )  # fmt: skip
    return model, result


def _ce_cosine():
    X, t = _classes()
    model = fastbp.mlp([4, 8, 3], "gelu", rng=5, dtype=F64)
    opt = fastbp.SGD(model.parameters(), lr=0.2, momentum=0.5, nesterov=True)
    result = fastbp.train(
        model, fastbp.CrossEntropyLoss(), opt, X, t, epochs=15, batch_size=10,
        seed=2, lr_schedule="cosine", grad_norms=True,
    )  # fmt: skip
    return model, result


def _resumed():
    X, t = _classes(seed=4)

    def run(epochs, **kw):
        model = fastbp.mlp([4, 6, 3], "tanh", rng=8, dtype=F64)
        opt = fastbp.Adam(model.parameters(), lr=0.02)
        result = fastbp.train(
            model, fastbp.CrossEntropyLoss(), opt, X, t, epochs=epochs,
            batch_size=32, seed=9, lr_schedule="invscaling", **kw,
        )  # fmt: skip
        return model, result

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "run.ckpt")
        run(4, checkpoint=path, checkpoint_every=2)
        return run(9, resume=path)


def _streamed():
    import pyarrow as pa

    from fastbp.stream import scan, train_stream

    X, y = _regression(n=300, f=4, seed=6)
    table = pa.table({**{f"x{j}": X[:, j] for j in range(4)}, "y": y[:, 0]})

    def source():
        return iter(table.to_batches(max_chunksize=64))

    stats = scan(source, dtype=F64, val_fraction=0.2, seed=3)
    model = fastbp.mlp([4, 8, 1], "relu", rng=2, dtype=F64)
    opt = fastbp.Adam(model.parameters(), lr=0.01)
    result = train_stream(
        model, fastbp.MSELoss(), opt, source, stats, epochs=3, batch_size=16,
        shuffle_buffer=100, seed=4,
    )  # fmt: skip
    return model, result


def _lbfgs():
    from fastbp.train import lbfgs

    X, y = _regression(seed=11)
    model = fastbp.mlp([5, 8, 1], "tanh", rng=1, dtype=F64)
    result = lbfgs(model, fastbp.MSELoss(), X, y, max_iter=25)
    return model, result


SCENARIOS = {
    "sgd_xor_fused": lambda: _sgd_xor(None),
    "sgd_xor_layers": lambda: _sgd_xor(False),
    "adam_regression_stopping": _adam_regression,
    "ce_cosine_norms": _ce_cosine,
    "checkpoint_resumed": _resumed,
    "streamed": _streamed,
    "lbfgs": _lbfgs,
}


def pins() -> dict[str, np.ndarray]:
    """name/weights, name/loss, name/val_metric of every scenario."""
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for name, scenario in SCENARIOS.items():
            model, result = scenario()
            out[f"{name}/weights"] = model.flat_data.copy()
            out[f"{name}/loss"] = np.array(result.loss, F64)
            out[f"{name}/val_metric"] = np.array(result.val_metric, F64)
            if result.grad_norms:
                out[f"{name}/grad_norms"] = np.array(result.grad_norms, F64)
    return out


if __name__ == "__main__":
    np.savez(sys.argv[1], **pins())
