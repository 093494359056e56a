"""What a first run compiles: every Numba compilation and cache load of a
``fastbp`` command, with an empty (or a given) kernel cache.

    python benchmarks/cold_start.py [--runs 2] [--top 40] [--json FILE]
        [--case xor|csv|csv-new-width|all] [--mpi N]

Each case runs the ``fastbp`` command line in a fresh Python process whose
``FASTBP_CACHE_DIR`` is a new temporary directory (so every kernel compiles),
then ``--runs - 1`` more times on that same directory (so every kernel should
load). Inside the process a listener on Numba's event API
(``numba.core.event``, kind ``numba:compile``, which Numba fires once per
cache miss, around the compilation of one signature) records each compiled
function, its argument types and its seconds, inclusive and exclusive of the
compilations nested in it (a kernel typing a callee compiles the callee
inside its own event); Numba's ``Cache.load_overload`` is wrapped to time the
loads from disk the same way. Nothing is changed in the measured program: the
listener and the wrapper live in this tool's bootstrap code only.

Cases:

- ``xor``: ``fastbp train --data xor`` (its defaults: 2-8-1, tanh, SGD).
- ``csv``: ``fastbp train --data small.csv`` on a 200-row regression table of
  5 features written here (defaults: one hidden layer of 32, ReLU, Adam).
- ``csv-new-width``: the same cache, then a table of 7 features: what a new
  feature count compiles on a machine that already trained the first.
- ``mpi``: ``mpiexec -n N fastbp train --data xor`` (with ``--mpi N``), rank
  0's figures.

Prints, per run: wall seconds (process start to exit) and the process's CPU
seconds (user + system: what the wall time would be on an idle machine,
the run being single-threaded, so the figure to compare on a shared one),
seconds inside compilation and inside cache loads, and with ``--top`` the
table of compiled functions (module.name, signature, exclusive and
inclusive seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

#: Runs before the fastbp command line, in the measured process.
BOOTSTRAP = r"""
import atexit, json, os, sys, time
from numba.core import caching, event

_records, _stack = [], []


def _name(f):
    module = (f.__module__ or "?").replace("fastbp.kernels.", "")
    if module.startswith("fastbp_special_"):
        module = "special:" + module[len("fastbp_special_"):][:6]
    return f"{module}.{f.__qualname__}"


def _push():
    _stack.append([time.perf_counter(), 0.0])


def _pop(kind, name, sig):
    start, nested = _stack.pop()
    total = time.perf_counter() - start
    if _stack:
        _stack[-1][1] += total
    _records.append({"kind": kind, "name": name, "sig": sig,
                     "inclusive": total, "exclusive": total - nested})


class _Listener(event.Listener):
    def on_start(self, ev):
        _push()

    def on_end(self, ev):
        args = ev.data["args"]
        sig = "(" + ", ".join(str(a) for a in args) + ")"
        _pop("compile", _name(ev.data["dispatcher"].py_func), sig)


event.register("numba:compile", _Listener())
_load = caching.Cache.load_overload


def _timed_load(self, sig, target_context):
    _push()
    result = None
    try:
        result = _load(self, sig, target_context)
        return result
    finally:
        _pop("load" if result is not None else "load-miss",
             _name(self._py_func), str(sig))


caching.Cache.load_overload = _timed_load


def _dump():
    with open(os.environ["COLD_START_OUT"], "w") as f:
        json.dump({"records": _records}, f)


atexit.register(_dump)
"""

RUN_CLI = "from fastbp.cli import main\nsys.argv = ['fastbp', *sys.argv[1:]]\nmain()\n"

#: Rank 0 writes the records; the other ranks write beside them.
RUN_CLI_MPI = (
    "from mpi4py import MPI\n"
    "os.environ['COLD_START_OUT'] += f'.{MPI.COMM_WORLD.Get_rank()}'\n" + RUN_CLI
)


def write_table(path: Path, rows: int, features: int, seed: int = 0) -> None:
    """A regression CSV: features x0..x{f-1} standard normal, y a smooth
    function of them plus noise."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, features))
    y = np.tanh(X @ rng.standard_normal(features)) + 0.1 * rng.standard_normal(rows)
    header = ",".join([f"x{i}" for i in range(features)] + ["y"])
    np.savetxt(path, np.column_stack([X, y]), delimiter=",", header=header,
               comments="", fmt="%.6f")  # fmt: skip


def run_once(args: list[str], cache: Path, mpi: int = 0) -> dict:
    """Run ``fastbp *args`` under the bootstrap; its records and wall time."""
    out = cache.parent / f"records-{time.monotonic_ns()}.json"
    env = {**os.environ, "FASTBP_CACHE_DIR": str(cache), "COLD_START_OUT": str(out)}
    code = BOOTSTRAP + (RUN_CLI_MPI if mpi else RUN_CLI)
    command = [sys.executable, "-c", code, *args]
    if mpi:
        mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent))
        command = [mpiexec or "mpiexec", "-n", str(mpi), *command]
    start, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    records = json.loads(Path(f"{out}.0" if mpi else out).read_text())["records"]
    return {"wall": wall, "cpu": cpu, "records": records, "stdout": done.stdout}


def summary(run: dict) -> dict:
    recs = run["records"]
    compiles = [r for r in recs if r["kind"] == "compile"]
    loads = [r for r in recs if r["kind"] == "load"]
    return {
        "wall_s": run["wall"],
        "cpu_s": run["cpu"],
        # Top-level compilations only: nested ones are inside their parent.
        "compile_s": sum(r["exclusive"] for r in compiles),
        "load_s": sum(r["exclusive"] for r in loads),
        "signatures_compiled": len(compiles),
        "functions_compiled": len({r["name"] for r in compiles}),
        "signatures_loaded": len(loads),
    }


def _short(sig: str, width: int) -> str:
    for long, short in (
        ("array(float32, 1d, C)", "f4[:]"),
        ("array(float64, 1d, C)", "f8[:]"),
        ("array(float32, 2d, C)", "f4[:,:]"),
        ("array(float64, 2d, C)", "f8[:,:]"),
        ("array(int64, 1d, C)", "i8[:]"),
        ("array(int64, 2d, C)", "i8[:,:]"),
        ("readonly ", "ro "),
    ):
        sig = sig.replace(long, short)
    return sig if len(sig) <= width else sig[: width - 1] + "…"


def table(run: dict, top: int) -> str:
    compiles = sorted(
        (r for r in run["records"] if r["kind"] == "compile"),
        key=lambda r: -r["exclusive"],
    )
    lines = [f"  {'function':<44}{'excl s':>8}{'incl s':>8}  signature"]
    for r in compiles[:top]:
        lines.append(
            f"  {r['name'][:44]:<44}{r['exclusive']:>8.2f}{r['inclusive']:>8.2f}"
            f"  {_short(r['sig'], 70)}"
        )
    if len(compiles) > top:
        rest = sum(r["exclusive"] for r in compiles[top:])
        lines.append(f"  ... {len(compiles) - top} more, {rest:.2f} s")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--case", default="all", choices=["xor", "csv", "csv-new-width", "all"]
    )
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument(
        "--mpi", type=int, default=0, help="also mpiexec -n N fastbp train --data xor"
    )
    parser.add_argument("--json", default=None, help="write every figure here")
    options = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="fastbp-cold-"))
    small, wider = tmp / "small.csv", tmp / "wider.csv"
    write_table(small, 200, 5)
    write_table(wider, 200, 7, seed=1)
    quiet = ["--quiet"]
    cases = {
        "xor": [["train", "--data", "xor", *quiet]],
        "csv": [["train", "--data", str(small), *quiet]],
        "csv-new-width": [
            ["train", "--data", str(small), *quiet],
            ["train", "--data", str(wider), *quiet],
        ],
    }
    chosen = list(cases) if options.case == "all" else [options.case]
    report = {"cpu": _cpu(), "cases": {}}
    try:
        for name in chosen:
            cache = tmp / f"cache-{name}"
            runs = []
            sequence = cases[name]
            if name != "csv-new-width":
                sequence = sequence * options.runs
            for i, args in enumerate(sequence):
                run = run_once(args, cache)
                s = summary(run)
                runs.append({**s, "args": args})
                state = "empty cache" if i == 0 else "cache from the run before"
                print(
                    f"\n{name}, run {i + 1} ({state}): fastbp {' '.join(args[:3])}"
                    f"\n  wall {s['wall_s']:.2f} s (CPU {s['cpu_s']:.2f} s); compiling "
                    f"{s['compile_s']:.2f} s "
                    f"({s['signatures_compiled']} signatures of "
                    f"{s['functions_compiled']} functions); loading "
                    f"{s['load_s']:.2f} s ({s['signatures_loaded']} signatures)"
                )
                if s["signatures_compiled"] and options.top:
                    print(table(run, options.top))
                runs[-1]["compiled"] = [
                    r for r in run["records"] if r["kind"] == "compile"
                ]
            report["cases"][name] = runs
        if options.mpi:
            cache = tmp / "cache-mpi"
            runs = []
            for i in range(options.runs):
                run = run_once(["train", "--data", "xor", *quiet], cache, options.mpi)
                s = summary(run)
                runs.append(s)
                print(
                    f"\nmpiexec -n {options.mpi} fastbp train --data xor, run "
                    f"{i + 1}, rank 0: wall {s['wall_s']:.2f} s; compiling "
                    f"{s['compile_s']:.2f} s ({s['signatures_compiled']} signatures)"
                    f"; loading {s['load_s']:.2f} s"
                )
                if s["signatures_compiled"] and options.top:
                    print(table(run, options.top))
            report["cases"][f"mpi-{options.mpi}"] = runs
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if options.json:
        Path(options.json).write_text(json.dumps(report, indent=1) + "\n")


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


if __name__ == "__main__":
    main()
