"""special.kernel_status: whether a kernel is compiled on disk and what
compiling it would cost, known without compiling anything, and kept true
by the ledger each process writes (fresh cache directories, subprocesses:
the cache directory is fixed when fastbp.kernels is imported)."""

import json
import subprocess
import sys

SCRIPT = """
import json, sys, time
import numpy as np
from numba.core import event
import fastbp
from fastbp.kernels import special
from fastbp.kernels.epoch import train_epochs
from fastbp.training.runners import fused_plan

sizes, spec = [int(v) for v in sys.argv[1].split("-")], sys.argv[2]
model = fastbp.mlp(sizes, "tanh", rng=0)
plan = fused_plan(model, fastbp.MSELoss(), fastbp.SGD(model.parameters(), lr=0.1))
compiled = []


class Listener(event.Listener):
    def on_start(self, ev):
        compiled.append(ev.data["dispatcher"].py_func.__qualname__)

    def on_end(self, ev):
        pass


def status():
    opt = plan.fused_optimizer()
    start = time.perf_counter()
    with event.install_listener("numba:compile", Listener()):
        s = special.kernel_status(
            plan.model.layout, plan.loss.code, opt.code, np.float32
        )
    return s._asdict(), time.perf_counter() - start


before, seconds = status()
if spec != "none":
    X = np.zeros((8, sizes[0]), np.float32)
    T = np.zeros((8, sizes[-1]), np.float32)
    train_epochs(
        X, T, np.empty(0, np.int64), np.empty((1, 0), np.int64), plan.model,
        plan.loss, plan.fused_optimizer(), 4, np.empty(1), specialize=spec == "1",
    )
after, _ = status()
print(json.dumps({"before": before, "after": after, "seconds": seconds,
                  "compiled_by_status": len(compiled)}))
"""


def _run(cache, sizes, spec):
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, sizes, spec],
        env={"FASTBP_CACHE_DIR": str(cache), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_status_follows_what_is_compiled(tmp_path):
    first = _run(tmp_path, "2-8-1", "none")
    b = first["before"]
    assert b["label"] == "2-8-1" and b["specialize"]
    assert not b["cached"] and not b["generic_cached"]
    assert 1 < b["compile_seconds"] < b["generic_compile_seconds"]
    assert first["compiled_by_status"] == 0 and first["seconds"] < 0.5

    special = _run(tmp_path, "2-8-1", "1")
    assert not special["before"]["cached"]
    assert special["after"]["cached"] and not special["after"]["generic_cached"]
    # Another architecture is not cached; its estimate now leaves out what
    # the first one compiled for both (loss, optimizer, shuffle).
    other = _run(tmp_path, "3-5-1", "none")["before"]
    assert not other["cached"]
    assert other["compile_seconds"] < special["before"]["compile_seconds"] * 2

    generic = _run(tmp_path, "3-5-1", "0")
    assert generic["after"]["generic_cached"] and not generic["after"]["cached"]
    # A fresh process finds both on disk.
    again = _run(tmp_path, "2-8-1", "none")["before"]
    assert again["cached"] and again["generic_cached"]


def test_ledger_records_compile_seconds(tmp_path):
    _run(tmp_path, "2-8-1", "1")
    entries = [json.loads(p.read_text()) for p in tmp_path.glob("*/ledger/*.json")]
    (entry,) = entries
    assert entry["kernel"].startswith("fastbp_special_")
    assert entry["dtype"] == "float32" and entry["layers"] == 2
    assert entry["seconds"] > 0.5
    # The second process loads the kernel: its entry stays the measured one.
    _run(tmp_path, "2-8-1", "1")
    (again,) = [json.loads(p.read_text()) for p in tmp_path.glob("*/ledger/*.json")]
    assert again["seconds"] == entry["seconds"]
