"""Planted one-line bugs: which does the test suite catch?

    python benchmarks/mutants.py                 # every mutant, every test
    python benchmarks/mutants.py --baseline      # without the tests of issue 21
    python benchmarks/mutants.py --only step-off-by-one --only pad-floor
    python benchmarks/mutants.py --list

The package and the tests are copied once into a temporary folder (never
touching the tree); each mutant replaces one line of one module of the copy
(the text must occur exactly once), runs the test files relevant to that
module with ``pytest -x`` and ``PYTHONPATH`` on the copy (subprocesses, the
installed ``fastbp`` command and ``mpiexec`` included, import the copy), and
puts the line back. A mutant is caught when the tests fail; the first
failing test is printed. ``--baseline`` leaves out the test files the issue
added (tests/test_misuse.py, tests/test_strength.py), which gives the catch
rate before them. scikit-learn's check_estimator conformance tests are left
out of every run (-k "not conformance"): they take minutes and test the
protocol, not these numbers.

The mutants sit where the issue says the last round's survivors were:
non-default parameters of schedules and early stopping, ties with tol=0,
seed=None with a checkpoint, partial_fit whose first batch lacks a class,
the row numbers of errors in typed files, the streamed validation split's
formula, and the MPI step (local SGD's period, a shard's padding, per-rank
keys, means over ranks).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NEW_TESTS = ("tests/test_misuse.py", "tests/test_strength.py")

SCHEDULES = [
    "tests/training/test_training_features.py",
    "tests/test_sklearn.py",
    "tests/training/test_checkpoint.py",
]
CHECKPOINT = ["tests/training/test_checkpoint.py", "tests/test_pins.py"]
STREAM = ["tests/data/test_stream.py", "tests/data/test_plan.py"]
SHARD = ["tests/data/test_shard.py", "tests/data/test_plan.py"]
TABLES = [
    "tests/data/test_tables.py",
    "tests/data/test_data.py",
    "tests/cli/test_cli.py",
]
RAW = [
    "tests/data/test_plan.py",
    "tests/data/test_stream.py",
    "tests/data/test_shard.py",
]
SKLEARN = ["tests/test_sklearn.py", "tests/test_sklearn_table.py"]
MPI = ["tests/training/test_mpi.py", "tests/data/test_shard.py"]


@dataclass(frozen=True)
class Mutant:
    id: str
    path: str  # relative to fastbp/
    old: str
    new: str
    tests: list[str]
    what: str


MUTANTS = [
    Mutant("invscaling-ignores-power_t", "training/schedules.py",
           "return lr / (samples_seen + 1) ** self.power_t",
           "return lr / (samples_seen + 1) ** 0.5", SCHEDULES,
           "InvScaling uses the default exponent whatever power_t is"),
    Mutant("schedule-drops-power_t", "training/schedules.py",
           "return InvScaling(power_t)", "return InvScaling()", SCHEDULES,
           "schedule('invscaling', power_t=...) forgets power_t"),
    Mutant("step-off-by-one", "training/schedules.py",
           "return lr * self.gamma ** ((epoch - 1) // self.step_size)",
           "return lr * self.gamma ** (epoch // self.step_size)", SCHEDULES,
           "StepDecay decays one epoch early"),
    Mutant("cosine-drops-min_lr", "training/schedules.py",
           "return self.min_lr + (lr - self.min_lr) * (1 + math.cos(math.pi * x)) / 2",
           "return (lr - self.min_lr) * (1 + math.cos(math.pi * x)) / 2", SCHEDULES,
           "Cosine forgets its floor min_lr"),
    Mutant("adaptive-min_lr-strict", "training/schedules.py",
           "if current <= self.min_lr:", "if current < self.min_lr:", SCHEDULES,
           "adaptive lowers the rate once more past min_lr"),
    Mutant("tie-counts-as-stall", "training/schedules.py",
           "self.count = self.count + 1 if score < best + rule.tol else 0",
           "self.count = self.count + 1 if score <= best + rule.tol else 0", SCHEDULES,
           "a tie with tol=0 counts as no improvement"),
    Mutant("tie-moves-best-epoch", "training/schedules.py",
           "if score > best:", "if score >= best:", SCHEDULES,
           "a tie replaces the best epoch (restore_best keeps the last tie)"),
    Mutant("seed-none-ignores-checkpoint-key", "training/checkpoint.py",
           "if ckpt.shuffle_key >= 0:", "if ckpt.shuffle_key < 0:", CHECKPOINT,
           "seed=None resumed with fresh entropy, not the checkpoint's key"),
    Mutant("resume-finished-refused", "training/checkpoint.py",
           "if self.epochs_done > epochs:", "if self.epochs_done >= epochs:",
           CHECKPOINT, "a checkpoint with exactly epochs done is refused"),
    Mutant("last-epoch-not-written", "training/checkpoint.py",
           "run.stopped or done >= run.epochs or done % self.every == 0",
           "run.stopped or done % self.every == 0", CHECKPOINT,
           "the last epoch is checkpointed only on a multiple of every"),
    Mutant("holdout-bits", "data/stream.py",
           "return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53 < val_fraction",
           "return (h >> np.uint64(12)).astype(np.float64) * 2.0**-53 < val_fraction",
           STREAM, "the validation draw uses 52 bits (about twice the rows held out)"),
    Mutant("row-hash-off-by-one", "data/stats.py",
           "return _splitmix((rows.astype(np.uint64) + np.uint64(1)) * _GOLDEN + key)",
           "return _splitmix(rows.astype(np.uint64) * _GOLDEN + key)", STREAM,
           "the row hash numbers rows from 0, not 1, unlike its docstring"),
    Mutant("scan-stats-of-validation-rows", "data/stream.py",
           "        train = present & ~held_out\n        try:",
           "        train = present\n        try:", STREAM,
           "the streamed plan's statistics include the validation rows"),
    Mutant("drain-epoch-off-by-one", "data/stream.py",
           "for block in self.pool.drain(run.shuffle_key, epoch - 1):",
           "for block in self.pool.drain(run.shuffle_key, epoch):", STREAM,
           "the buffer's last rows are trained in the next epoch's order"),
    Mutant("shard-first-row", "data/shard.py",
           "first_row = sum(counts[:rank])", "first_row = sum(counts[: rank + 1])",
           SHARD, "a shard numbers its rows from the end of its own part"),
    Mutant("null-row-without-offset", "data/tables.py",
           "row = offset + int(np.argmax(nulls)) + 1",
           "row = int(np.argmax(nulls)) + 1", TABLES,
           "an empty cell past the first batch is named by its row in the batch"),
    Mutant("nan-row-without-offset", "data/tables.py",
           "row = offset + int(np.argmax(bad)) + 1", "row = int(np.argmax(bad)) + 1",
           TABLES, "a NaN past the first batch is named by its row in the batch"),
    Mutant("strict-row-off-by-one", "data/stream.py",
           'data row {offset + i + 1}: {what}"', 'data row {offset + i}: {what}"',
           STREAM, "--strict --stream names the row before the bad one"),
    Mutant("merge-keeps-last-spelling", "data/raw.py",
           "if value not in self.numbers or row < self.numbers[value][0]:",
           "if value not in self.numbers or row > self.numbers[value][0]:", RAW,
           "merged statistics name a class by its last spelling (007 for 7)"),
    Mutant("target-scale-of-all-rows", "data/raw.py",
           "scaled = present if train is None else present & train",
           "scaled = present", RAW,
           "the target's scale includes the validation rows"),
    Mutant("partial-fit-classes-from-batch", "sklearn.py",
           "self._binarizer.fit(classes)", "self._binarizer.fit(y)", SKLEARN,
           "partial_fit sizes the output by the first batch's classes"),
    Mutant("partial-fit-invscaling-power", "sklearn.py",
           "opt.lr = self.learning_rate_init / (self.t_ + 1) ** self.power_t",
           "opt.lr = self.learning_rate_init / (self.t_ + 1) ** 0.5", SKLEARN,
           "partial_fit's invscaling ignores power_t"),
    Mutant("estimator-patience-default", "sklearn.py",
           "patience=self.n_iter_no_change,", "patience=10,", SKLEARN,
           "n_iter_no_change is ignored (the default 10)"),
    Mutant("sync-period-off-by-one", "training/parallel.py",
           "k for k in range(1, self.sync_every + 1) if steps_per_epoch % k == 0",
           "k for k in range(1, self.sync_every) if steps_per_epoch % k == 0", MPI,
           "local SGD's period is below sync_every even when it divides the epoch"),
    Mutant("pad-floor", "training/parallel.py",
           "local = -(-batch_size // self.size)", "local = batch_size // self.size",
           MPI, "a shard's local batch rounds down (the global batch shrinks)"),
    Mutant("rank-key-shared", "training/parallel.py",
           "return key ^ self.rank if self.shard and key >= 0 else key",
           "return key", MPI, "every shard shuffles with the same key"),
    Mutant("mean-over-ranks-unweighted", "training/parallel.py",
           'sum(f[0] * f[1 + i] for f in figures) / total if total else float("nan")',
           'sum(f[1 + i] for f in figures) / len(figures)', MPI,
           "figures over ranks are plain means, not weighted by rows"),
]  # fmt: skip


def copy_tree(into: Path) -> tuple[Path, Path]:
    """(package folder for PYTHONPATH, folder to run pytest in): the package
    (its Numba caches too, timestamps kept, so kernels load), the tests, the
    examples and pyproject.toml."""
    pkg, run = into / "pkg", into / "run"
    shutil.copytree(ROOT / "fastbp", pkg / "fastbp", copy_function=shutil.copy2)
    run.mkdir()
    shutil.copytree(ROOT / "tests", run / "tests", ignore=_no_cache)
    shutil.copytree(ROOT / "examples", run / "examples")
    shutil.copy2(ROOT / "pyproject.toml", run / "pyproject.toml")
    return pkg, run


def _no_cache(folder, names):
    return [n for n in names if n in ("__pycache__", ".pytest_cache")]


def environment(pkg: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(pkg) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("FASTBP_SPECIALIZE", "0")
    return env


def pytest(run: Path, env, tests: list[str], timeout: float) -> tuple[int, str]:
    """(exit status, the first failing test or the tail of the output)."""
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"]
    command += ["-k", "not conformance", *tests]
    try:
        proc = subprocess.run(
            command, cwd=run, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return -1, f"timed out after {timeout:.0f} s"
    lines = proc.stdout.strip().splitlines()
    failed = [line for line in lines if line.startswith(("FAILED", "ERROR"))]
    return proc.returncode, (failed[0] if failed else (lines[-1] if lines else ""))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--baseline", action="store_true", help="without " + ", ".join(NEW_TESTS)
    )
    parser.add_argument(
        "--only", action="append", default=[], help="mutant id (repeatable)"
    )
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument(
        "--clean",
        action="store_true",
        help="first run every selection on the unmutated copy",
    )
    parser.add_argument("--timeout", type=float, default=1200.0)
    args = parser.parse_args(argv)  # fmt: skip
    mutants = [m for m in MUTANTS if not args.only or m.id in args.only]
    if args.list:
        for m in mutants:
            print(f"{m.id:34} fastbp/{m.path:24} {m.what}")
        return 0
    with tempfile.TemporaryDirectory(prefix="fastbp-mutants-") as folder:
        pkg, run = copy_tree(Path(folder))
        env = environment(pkg)
        where = subprocess.run(
            [sys.executable, "-c", "import fastbp; print(fastbp.__file__)"],
            cwd=run, env=env, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        if not where.startswith(str(pkg)):
            print(f"the copy is not what runs: fastbp from {where}", file=sys.stderr)
            return 2

        def selection(m: Mutant) -> list[str]:
            new = [] if args.baseline else list(NEW_TESTS)
            return list(dict.fromkeys([*m.tests, *new]))

        if args.clean:
            every = sorted({t for m in mutants for t in selection(m)})
            code, note = pytest(run, env, every, args.timeout)
            print(f"unmutated: exit {code} ({note})", flush=True)
            if code != 0:
                return 2
        caught = 0
        print(f"{'mutant':34} {'result':9} {'s':>5}  first failing test", flush=True)
        for m in mutants:
            target = pkg / "fastbp" / m.path
            source = target.read_text()
            if source.count(m.old) != 1:
                print(f"{m.id}: the line to change occurs {source.count(m.old)} times")
                return 2
            stat = target.stat()
            target.write_text(source.replace(m.old, m.new))
            start = time.perf_counter()
            try:
                code, note = pytest(run, env, selection(m), args.timeout)
            finally:
                target.write_text(source)
                os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
            seconds = time.perf_counter() - start
            result = "SURVIVED" if code in (0, 5) else "caught"
            if code == -1:
                result = "TIMEOUT"  # counted as not caught
            caught += result == "caught"
            note = note if result == "caught" else ""
            print(f"{m.id:34} {result:9} {seconds:5.0f}  {note}", flush=True)
        rate = 100.0 * caught / len(mutants)
        label = "baseline (without the new tests)" if args.baseline else "all tests"
        print(f"\n{label}: caught {caught} of {len(mutants)} ({rate:.0f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
