"""The data-parallel (MPI) kernels are cached like every other kernel: a
second ``mpiexec`` run on the same cache compiles nothing, for every
variant (gradient all-reduce, sharded, local SGD), and trains the same.

Needs mpi4py and an mpiexec (the ``mpi`` extra); skipped without them.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mpi4py")
MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or (
    shutil.which("mpiexec")
)
if MPIEXEC is None:
    pytest.skip("no mpiexec found", allow_module_level=True)

SCRIPT = """
import sys
import numpy as np
from mpi4py import MPI
from numba.core import event
import fastbp

compiled = []


class Listener(event.Listener):
    def on_start(self, ev):
        compiled.append(ev.data["dispatcher"].py_func.__qualname__)

    def on_end(self, ev):
        pass


event.register("numba:compile", Listener())
dtype = np.dtype(sys.argv[1])
kw = {"shard": sys.argv[2] == "shard", "sync_every": int(sys.argv[3])}
rng = np.random.default_rng(0)
X = rng.standard_normal((48, 3))
T = X @ [[1.0], [-1.0], [0.5]]
model = fastbp.mlp([3, 8, 1], "tanh", rng=1, dtype=dtype)
opt = fastbp.SGD(model.parameters(), lr=0.05)
result = fastbp.train(
    model, fastbp.MSELoss(), opt, X, T, epochs=3, batch_size=8,
    comm=MPI.COMM_WORLD, **kw,
)
if MPI.COMM_WORLD.Get_rank() == 0:
    print(len(compiled), repr(result.loss[-1]))
"""

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def _run(cache, *args):
    proc = subprocess.run(
        [MPIEXEC, "-n", "2", sys.executable, "-c", SCRIPT, *args],
        env={**ENV, "FASTBP_CACHE_DIR": str(cache)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    count, loss = proc.stdout.split()
    return int(count), float(loss)


@pytest.mark.parametrize(
    "dtype,mode,sync",
    [("float32", "all", "1"), ("float64", "shard", "1"), ("float64", "all", "2")],
)
def test_second_run_compiles_nothing(tmp_path, dtype, mode, sync):
    first_count, first_loss = _run(tmp_path, dtype, mode, sync)
    second_count, second_loss = _run(tmp_path, dtype, mode, sync)
    assert first_count > 0
    assert second_count == 0
    assert second_loss == first_loss
