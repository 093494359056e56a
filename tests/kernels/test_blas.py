"""The kernels' matrix products go through NumPy's own BLAS (one BLAS, one
thread pool per process), and the np.dot fallback computes the same."""

import json
import subprocess
import sys

import numpy as np
import pytest

from fastbp.kernels import blas, dense_backward, dense_forward

SCRIPT = """
import json, sys
import numpy as np
import threadpoolctl
import fastbp
from fastbp.kernels import blas, dense_backward, dense_forward

rng = np.random.default_rng(0)
out = {"gemm": blas.GEMM}
for n, k, m in [(64, 48, 40), (300, 1, 9)]:
    X = rng.standard_normal((n, k))
    W = rng.standard_normal((k, m))
    b = rng.standard_normal(m)
    dY = rng.standard_normal((n, m))
    Y, dW, db, dX = np.empty((n, m)), np.empty((k, m)), np.empty(m), np.empty((n, k))
    dense_forward(X, W, b, Y)
    dense_backward(X, W, dY, dW, db, dX)
    out[f"{n}x{k}x{m}"] = [a.tolist() for a in (Y, dW, db, dX)]
model = fastbp.mlp([20, 64, 1], "relu")
fastbp.train(model, fastbp.MSELoss(), fastbp.SGD(model.parameters(), lr=0.01),
             rng.standard_normal((512, 20)), rng.standard_normal((512, 1)),
             epochs=1, batch_size=256)
out["blas"] = [i["filepath"] for i in threadpoolctl.threadpool_info()
               if i["user_api"] == "blas"]
print(json.dumps(out))
"""


def _run(env_gemm):
    import os

    env = dict(os.environ)
    env.pop("FASTBP_GEMM", None)
    if env_gemm:
        env["FASTBP_GEMM"] = env_gemm
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


needs_numpy_openblas = pytest.mark.skipif(
    not blas.GEMM.startswith("numpy-openblas"),
    reason="NumPy here is not built with scipy-openblas",
)


@needs_numpy_openblas
def test_kernels_call_numpys_blas():
    """The library the kernels' GEMM symbols come from is NumPy's own, one of
    those loaded after training. (Numba imports scipy.linalg when it starts,
    which loads SciPy's OpenBLAS too; the kernels leave it idle.)"""
    run = _run(None)
    assert run["gemm"].startswith("numpy-openblas")
    numpys = [path for path in run["blas"] if path in run["gemm"]]
    assert len(numpys) == 1 and "numpy" in numpys[0], run["blas"]


@needs_numpy_openblas
def test_fallback_gives_the_same_products():
    """FASTBP_GEMM=numba routes the products to np.dot (SciPy's BLAS); both
    agree with each other to float64 rounding."""
    direct, fallback = _run(None), _run("numba")
    assert fallback["gemm"].startswith("numba")
    for shape in ("64x48x40", "300x1x9"):
        for a, b in zip(direct[shape], fallback[shape], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,k,m", [(1, 1, 1), (3, 700, 2), (257, 33, 65)])
def test_products_match_numpy(dtype, n, k, m):
    """All three transposition cases of the direct GEMM call, against NumPy
    in float64, at sizes that reach BLAS and odd leading dimensions."""
    rng = np.random.default_rng(n * k * m)
    X = rng.standard_normal((n, k)).astype(dtype)
    W = rng.standard_normal((k, m)).astype(dtype)
    b = rng.standard_normal(m).astype(dtype)
    dY = rng.standard_normal((n, m)).astype(dtype)
    Y, dW, db, dX = (np.empty(s, dtype) for s in ((n, m), (k, m), m, (n, k)))
    dense_forward(X, W, b, Y)
    dense_backward(X, W, dY, dW, db, dX)
    X64, W64, dY64 = (a.astype(np.float64) for a in (X, W, dY))
    tol = 1e-4 if dtype == np.float32 else 1e-12
    for got, want in (
        (Y, X64 @ W64 + b),
        (dW, X64.T @ dY64),
        (db, dY64.sum(0)),
        (dX, dY64 @ W64.T),
    ):
        scale = max(1.0, float(np.abs(want).max()))
        assert np.abs(got - want).max() <= tol * scale * np.sqrt(k + n + m)


USER_JIT = """
import numpy as np
from numba import njit
from fastbp.kernels.dense import dense_forward_flat

@njit
def mine(x, w, b, y):
    dense_forward_flat(x, 0, w, 0, b, y, 0, 64, 48, 40, 0, (0.0, 0.0))

rng = np.random.default_rng(1)
x, w = rng.random(64 * 48), rng.random(48 * 40)
b, y = np.zeros(40), np.empty(64 * 40)
mine(x, w, b, y)
print(abs(y.reshape(64, 40) - x.reshape(64, 48) @ w.reshape(48, 40)).max())
"""


@pytest.mark.parametrize("run", ["compiles", "loads from the cache"])
def test_kernels_called_from_users_jitted_code(tmp_path, run):
    """A user's own @njit function calling a kernel, in a fresh process (the
    BLAS symbols are registered when the kernel is first compiled or loaded,
    also when another jitted function types it, not at import)."""
    import os

    env = {**os.environ, "FASTBP_CACHE_DIR": str(tmp_path)}
    for _ in range(1 if run == "compiles" else 2):
        proc = subprocess.run(
            [sys.executable, "-c", USER_JIT], env=env, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
        assert float(proc.stdout) < 1e-12
