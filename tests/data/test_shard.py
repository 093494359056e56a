"""fastbp.data.shard: each rank reads only its share of a file; the ranks merge
their statistics, so that every rank makes the column plan one process makes
of the whole file, and a bad cell ends every rank with one message.

Ranks are threads with a shared-list communicator here (the collectives are
allgather only); the MPI tests at the end run the same under ``mpiexec``.
"""

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from fastbp.data import DataError, Standardizer
from fastbp.data.plan import PlanOptions
from fastbp.data.problem import Problem
from fastbp.data.raw import RawTable, raw_problem
from fastbp.data.shard import (
    LocalComm,
    global_rows,
    load_shard,
    run_collectively,
    shard_part,
)
from fastbp.data.stream import holdout_mask
from fastbp.data.tables import count_newlines, file_part, part_table

ROOT = Path(__file__).resolve().parents[2]


# --- fake communicators --------------------------------------------------------


class ThreadComm:
    """Rank ``rank`` of ranks run as threads: allgather through a shared list
    and a barrier (mpi4py's method names)."""

    def __init__(self, rank, shared):
        self.rank, self.shared = rank, shared

    def Get_rank(self):  # noqa: N802
        return self.rank

    def Get_size(self):  # noqa: N802
        return self.shared["size"]

    def allgather(self, obj):
        shared = self.shared
        shared["slots"][self.rank] = obj
        shared["barrier"].wait()
        out = list(shared["slots"])
        shared["barrier"].wait()  # nobody writes the next round's slot early
        return out


def run_ranks(size, fn):
    """[(ok, result or exception)] of fn(comm) on ``size`` thread ranks."""
    shared = {
        "size": size,
        "slots": [None] * size,
        "barrier": threading.Barrier(size, timeout=60),
    }
    out = [None] * size

    def work(rank):
        try:
            out[rank] = (True, fn(ThreadComm(rank, shared)))
        except Exception as exc:  # compared by the test
            out[rank] = (False, exc)

    threads = [threading.Thread(target=work, args=(r,)) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def results(size, fn):
    """fn(comm)'s result on every thread rank; fails on any error."""
    out = run_ranks(size, fn)
    for ok, value in out:
        if not ok:
            raise value
    return [value for _, value in out]


def errors(size, fn):
    """The error message of every thread rank (each must have failed)."""
    out = run_ranks(size, fn)
    assert not any(ok for ok, _ in out), out
    for _, exc in out:
        assert isinstance(exc, ValueError), repr(exc)
    return [str(exc) for _, exc in out]


# --- data ----------------------------------------------------------------------


def make_table(n=600, seed=0, target="text"):
    rng = np.random.default_rng(seed)
    columns = {
        "a": rng.normal(size=n),
        "b": rng.integers(-5, 5, n).astype(np.float64),
        "c": rng.uniform(0, 100, n) + 1e6,  # a large mean: cancellation-prone
    }
    if target == "text":
        columns["y"] = rng.choice(["setosa", "versicolor", "virginica"], n)
    elif target == "int":
        columns["y"] = rng.integers(0, 4, n)
    else:
        columns["y"] = columns["a"] * 2 + rng.normal(size=n)
    return pa.table(columns)


def write(table, folder, kind, row_group_size=64):
    path = Path(folder) / f"data.{kind}"
    if kind in ("csv", "tsv"):
        options = pacsv.WriteOptions(delimiter="\t" if kind == "tsv" else ",")
        pacsv.write_csv(table, str(path), write_options=options)
    elif kind == "parquet":
        pq.write_table(table, path, row_group_size=row_group_size)
    else:
        feather.write_feather(table, path, chunksize=50)
    return str(path)


def write_text(folder, name, lines, newline="\n", end="\n"):
    path = Path(folder) / name
    path.write_bytes((newline.join(lines) + end).encode())
    return str(path)


def naive_lines(path):
    """The whole file's data lines, in order: the reference for CSV parts."""
    return [line for line in Path(path).read_bytes().split(b"\n")[1:] if line.strip()]


KINDS = ["csv", "tsv", "parquet", "feather"]


# --- plans: what each rank reads ----------------------------------------------


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("end", ["\n", ""])
@pytest.mark.parametrize("size", [1, 2, 3, 5, 40])
def test_file_part_csv_cuts_at_line_starts(tmp_path, newline, end, size):
    lines = ["x,y"] + [f"{i}.{'5' * (i % 9)},{i % 3}" for i in range(30)]
    path = write_text(tmp_path, "d.csv", lines, newline, end.replace("\n", newline))
    data = Path(path).read_bytes()
    parts = [file_part(path, r, size) for r in range(size)]
    header_end = data.index(b"\n") + 1
    assert parts[0].start == header_end and parts[-1].stop == len(data)
    for a, b in zip(parts, parts[1:], strict=False):
        assert a.stop == b.start  # contiguous: every byte once
    for p in parts:
        assert p.first_row is None and p.header_end == header_end
        assert p.start == p.stop or data[p.start - 1 : p.start] == b"\n"


def test_file_part_csv_header_after_blank_lines_and_bom(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b"\xef\xbb\xbf\n  \na,b\n1,2\n3,4\n")
    part = file_part(path, 0, 2)
    assert part.header_end == len(b"\xef\xbb\xbf\n  \na,b\n")
    shares = [part_table(path, file_part(path, r, 2)) for r in range(2)]
    assert [s.column("a").to_pylist() for s in shares] == [["1"], ["3"]]


def test_file_part_parquet_whole_row_groups_balanced(tmp_path):
    path = write(make_table(n=1000), tmp_path, "parquet", row_group_size=100)
    parts = [shard_part(path, r, 3) for r in range(3)]
    # cuts nearest to 333 and 667 rows: after groups 3 and 7
    assert [(p.start, p.stop, p.first_row) for p in parts] == [
        (0, 3, 0),
        (3, 7, 300),
        (7, 10, 700),
    ]
    uneven = tmp_path / "uneven.parquet"
    with pq.ParquetWriter(uneven, make_table(n=1).schema) as w:
        for n in (500, 10, 10, 10, 470):
            w.write_table(make_table(n=n))
    parts = [shard_part(uneven, r, 2) for r in range(2)]
    assert [(p.start, p.stop) for p in parts] == [(0, 1), (1, 5)]


def test_file_part_refuses_what_cannot_be_entered_in_the_middle(tmp_path):
    path = tmp_path / "d.csv.gz"
    with pa.CompressedOutputStream(str(path), "gzip") as out:
        out.write(b"a,b\n1,2\n")
    with pytest.raises(DataError, match=r"d\.csv\.gz: a gzip file cannot be read"):
        shard_part(path, 0, 2)
    with pytest.raises(DataError, match="no such file"):
        shard_part(tmp_path / "missing.parquet", 0, 2)
    stream = tmp_path / "s.arrow"
    with pa.OSFile(str(stream), "wb") as sink:
        table = make_table(n=5)
        with pa.ipc.new_stream(sink, table.schema) as w:
            w.write_table(table)
    with pytest.raises(DataError, match="Arrow stream"):
        shard_part(stream, 0, 2)
    with pytest.raises(ValueError, match="index must be in"):
        shard_part(tmp_path / "x.csv", 2, 2)


def test_count_newlines_in_chunks(tmp_path):
    path = tmp_path / "n.txt"
    path.write_bytes(b"a\nbb\n\nccc\n" * 100)
    assert count_newlines(path, 10 * 37 + 5, chunk=7) == 4 * 37 + 2


def test_run_collectively_ends_every_rank_with_the_first_failure():
    def step(comm):
        r = comm.Get_rank()
        if r >= 1:
            raise DataError(f"f.csv, line {r}, column 'b': 'x' is not a number")
        return "fine"

    out = run_ranks(3, lambda c: run_collectively(c, step, c))
    for ok, exc in out:
        assert not ok and type(exc) is DataError
        assert str(exc) == "rank 1: f.csv, line 1, column 'b': 'x' is not a number"
    out = run_ranks(2, lambda c: run_collectively(c, lambda: {}[c.Get_rank()]))
    assert [str(exc) for _, exc in out] == ["rank 0: KeyError: 0"] * 2
    assert type(out[1][1]) is ValueError
    assert results(2, lambda c: run_collectively(c, lambda: c.Get_rank())) == [0, 1]
    with pytest.raises(KeyError):  # one process: the error as it is
        run_collectively(LocalComm(), lambda: {}["k"])


def test_run_collectively_needs_a_communicator():
    with pytest.raises(TypeError, match="comm must be a communicator"):
        run_collectively(object(), print)


# --- load_shard: the prepared share -------------------------------------------


def whole_file(path, val_fraction=0.0, seed=0, dtype=np.float64, scale_target=False):
    """One process's preparation of the whole file with the stream's
    validation rows: the reference every rank count must give."""
    raw = RawTable.read(path)
    held = holdout_mask(0, raw.table.num_rows, val_fraction, seed)
    problem, val, _ = raw_problem(raw, dtype=dtype, val_rows=held, seed=seed)
    return problem.prepare(dtype=dtype, val_rows=val, scale_target=scale_target)


def assemble(prepared, val_fraction, seed=0):
    """The file's rows in order from every rank's (X, T) train/val arrays,
    checking that the shares are contiguous and cover the file once."""
    X, T, row = [], [], 0
    for p in prepared:
        n = len(p.X_train) + len(p.X_val)
        assert p.problem.first_row == row
        held = holdout_mask(row, n, val_fraction, seed)
        x = np.empty((n, p.X_train.shape[1]), p.X_train.dtype)
        t = np.empty((n, *p.T_train.shape[1:]), p.T_train.dtype)
        x[~held], x[held] = p.X_train, p.X_val
        t[~held], t[held] = p.T_train, p.T_val
        X.append(x)
        T.append(t)
        row += n
    return np.concatenate(X), np.concatenate(T)


def assert_same_plan(a, b):
    """Two column plans: the same roles, inputs, levels and fills; the same
    standardization to float64 rounding (Chan's merge over ranks against one
    pass)."""
    ja, jb = a.to_json(), b.to_json()
    for ca, cb in zip(ja["columns"], jb["columns"], strict=True):
        mean_a, std_a = ca.pop("mean", []), ca.pop("std", [])
        mean_b, std_b = cb.pop("mean", []), cb.pop("std", [])
        assert ca == cb
        np.testing.assert_allclose(mean_a, mean_b, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(std_a, std_b, rtol=1e-12)


@pytest.mark.parametrize("kind", ["csv", "parquet", "feather"])
@pytest.mark.parametrize("size", [1, 2, 3])
def test_load_shard_is_the_whole_file_shared_out(tmp_path, kind, size):
    path = write(make_table(target="int"), tmp_path, kind)
    whole = whole_file(path)
    prepared = results(size, lambda c: load_shard(path, c, dtype=np.float64))
    X, T = assemble(prepared, 0.0)
    np.testing.assert_allclose(X, whole.X_train, rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(T, whole.T_train)
    for p in prepared:
        assert_same_plan(p.problem.plan, whole.problem.plan)
        assert p.metadata()["classes"] == whole.metadata()["classes"]
        assert (p.loss, p.metric, p.n_outputs) == (
            whole.loss,
            whole.metric,
            whole.n_outputs,
        )
    totals = results(size, lambda c: global_rows(c, prepared[c.Get_rank()]))
    assert totals == [(600, 0)] * size


def raw_table(n=500, seed=3):
    """Text categories, missing cells in every spelling, a bool and a date
    column, an id column and a target with a few missing cells."""
    rng = np.random.default_rng(seed)
    color = rng.choice(["red", "green", "blue", "NA", ""], n)
    size = np.where(
        rng.random(n) < 0.1, "N/A", np.round(rng.normal(10, 3, n), 2).astype(str)
    )
    flag = rng.choice(["true", "false", "None"], n)
    day = [f"2020-{1 + i % 12:02d}-{1 + i % 28:02d}" for i in range(n)]
    y = np.round(rng.normal(size=n), 3).astype(str)
    y[rng.random(n) < 0.03] = "null"
    return pa.table({"id": np.arange(n), "color": color, "size": size, "flag": flag,
                     "day": day, "y": y})  # fmt: skip


@pytest.mark.parametrize("kind", ["csv", "parquet"])
@pytest.mark.parametrize("size", [1, 2, 3])
def test_load_shard_raw_table_makes_one_processs_plan(tmp_path, kind, size):
    # Roles, levels, medians and the target's scale are merged over ranks:
    # the plan of one process, whatever the rank count.
    path = write(raw_table(), tmp_path, kind)
    whole = whole_file(path, 0.2, seed=7, scale_target=True)

    def load(comm):
        return load_shard(
            path, comm, val_fraction=0.2, seed=7, dtype=np.float64,
            scale_target=True,
        )  # fmt: skip

    prepared = results(size, load)
    plan = whole.problem.plan
    roles = {c.name: c.role for c in plan.columns}
    assert roles == {"id": "identifier", "color": "categorical", "size": "numeric",
                     "flag": "boolean", "day": "datetime"}  # fmt: skip
    for p in prepared:
        assert_same_plan(p.problem.plan, plan)
        np.testing.assert_allclose(p.target_scale, whole.target_scale, rtol=1e-12)
    X = np.concatenate([np.concatenate([p.X_train, p.X_val]) for p in prepared])
    assert X.shape[0] == len(whole.X_train) + len(whole.X_val)
    totals = results(size, lambda c: global_rows(c, prepared[c.Get_rank()]))
    assert totals == [(len(whole.X_train), len(whole.X_val))] * size


@pytest.mark.parametrize("size", [1, 2, 3])
def test_load_shard_validation_rows_by_the_stream_rule(tmp_path, size):
    path = write(make_table(target="float"), tmp_path, "csv")
    whole = whole_file(path, 0.2, seed=5)

    def load(comm):
        return load_shard(path, comm, val_fraction=0.2, seed=5, dtype=np.float64)

    prepared = results(size, load)
    held = holdout_mask(0, 600, 0.2, 5)
    X, T = assemble(prepared, 0.2, seed=5)
    np.testing.assert_allclose(X[~held], whole.X_train, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(X[held], whole.X_val, rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(T[~held], whole.T_train)
    n_val = int(held.sum())
    totals = results(size, lambda c: global_rows(c, prepared[c.Get_rank()]))
    assert totals == [(600 - n_val, n_val)] * size


def test_load_shard_one_process_is_the_ordinary_road(tmp_path):
    path = write(make_table(), tmp_path, "csv")
    whole = whole_file(path, dtype=np.float32)
    local = load_shard(path, LocalComm())
    np.testing.assert_array_equal(local.X_train, whole.X_train)
    assert local.scaler.mean.tobytes() == whole.scaler.mean.tobytes()
    assert local.scaler.std.tobytes() == whole.scaler.std.tobytes()
    assert local.metadata() == whole.metadata()


def test_load_shard_strict_bad_cell_ends_every_rank_with_its_line(tmp_path):
    lines = ["a,b,y"] + [f"{i},{i * 2},{'p' if i % 2 else 'q'}" for i in range(60)]
    lines[50] = "49,x2,p"  # line 51, in the second half
    path = write_text(tmp_path, "bad.csv", lines)
    messages = errors(
        2, lambda c: load_shard(path, c, options=PlanOptions(strict=True))
    )
    assert (
        messages == [f"rank 1: {path}, column 'b', line 51: 'x2' is not a number"] * 2
    )
    # Without strict, the text cell is one of column b's missing cells.
    prepared = results(2, lambda c: load_shard(path, c))
    roles = {c.name: c.role for c in prepared[0].problem.plan.columns}
    assert roles == {"a": "identifier", "b": "numeric"}  # a: a row counter


def test_load_shard_ragged_line_ends_every_rank_with_its_message(tmp_path):
    lines = ["a,b,y"] + [f"{i},{i * 2},{'p' if i % 2 else 'q'}" for i in range(60)]
    lines[50] = "49,2,p,extra"
    path = write_text(tmp_path, "bad.csv", lines)
    messages = errors(2, lambda c: load_shard(path, c))
    assert len(set(messages)) == 1 and messages[0].startswith("rank 1: ")
    assert "cannot read" in messages[0] or "fields" in messages[0]


def test_load_shard_rank_without_rows_is_an_error_on_every_rank(tmp_path):
    path = write_text(tmp_path, "tiny.csv", ["a,y", "1,2.5", "2,3.5"])
    messages = errors(3, lambda c: load_shard(path, c))
    expected = (
        f"{path}: rank 2 of 3 gets no data rows: the file's 2 rows are shared "
        "out as whole lines; run fewer ranks"
    )
    assert messages == [expected] * 3
    one = write_text(tmp_path, "one.csv", ["a,y", "1,2.5"])
    assert errors(2, lambda c: load_shard(one, c))[0].endswith(
        "the file's 1 row is shared out as whole lines; run fewer ranks"
    )
    parquet = write(make_table(n=100), tmp_path, "parquet", row_group_size=100)
    assert "as whole row groups" in errors(2, lambda c: load_shard(parquet, c))[0]
    header_only = write_text(tmp_path, "h.csv", ["a,y"])
    assert (
        errors(2, lambda c: load_shard(header_only, c))
        == [f"{header_only}: no data rows"] * 2
    )


def test_load_shard_header_errors_on_every_rank(tmp_path):
    path = write_text(tmp_path, "dup.csv", ["a,a", "1,2", "3,4"])
    messages = errors(2, lambda c: load_shard(path, c))
    assert len(set(messages)) == 1 and "appears twice" in messages[0]
    missing = write_text(tmp_path, "m.csv", ["a,y", "1,2", "3,4"])
    assert (
        "target column 'z' not found"
        in errors(2, lambda c: load_shard(missing, c, target="z"))[0]
    )


def test_load_shard_ce_for_regression_on_every_rank(tmp_path):
    path = write(make_table(target="float"), tmp_path, "csv")
    assert (
        errors(2, lambda c: load_shard(path, c, loss="ce"))
        == [
            "load_shard: loss 'ce' needs a classification target; use loss 'mse' for "
            "regression"
        ]
        * 2
    )


def test_load_shard_checks_its_arguments():
    with pytest.raises(TypeError, match="comm must be"):
        load_shard("x.csv", None)
    with pytest.raises(ValueError, match="val_fraction"):
        load_shard("x.csv", LocalComm(), val_fraction=1.0)
    with pytest.raises(ValueError, match="loss must be"):
        load_shard("x.csv", LocalComm(), loss="hinge")


def test_prepare_with_given_scaler_and_validation_rows():
    X = np.arange(12.0).reshape(6, 2)
    problem = Problem.from_arrays(X, np.arange(6.0))
    scaler = Standardizer(mean=[1.0, 2.0], std=[2.0, 4.0])
    val = np.array([False, True, False, False, True, False])
    prepared = problem.prepare(dtype=np.float64, scaler=scaler, val_rows=val)
    assert prepared.scaler is scaler
    np.testing.assert_array_equal(prepared.X_val, (X[val] - [1, 2]) / [2, 4])
    np.testing.assert_array_equal(prepared.T_train[:, 0], [0, 2, 3, 5])
    with pytest.raises(ValueError, match="val_rows must be a bool array"):
        problem.prepare(val_rows=np.array([1, 4]))
    with pytest.raises(ValueError, match="scaler must be a fitted Standardizer"):
        problem.prepare(scaler=Standardizer())


# --- under MPI -------------------------------------------------------------------


def find_mpiexec():
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


WORKER = r"""
import json, sys
import numpy as np
from mpi4py import MPI
from fastbp.data.plan import PlanOptions
from fastbp.data.shard import global_rows, load_shard

comm = MPI.COMM_WORLD
rank = comm.Get_rank()
jobs, out = json.load(open(sys.argv[1])), sys.argv[2]
for job in jobs:
    name, path = job.pop("name"), job.pop("path")
    if job.pop("strict", False):
        job["options"] = PlanOptions(strict=True)
    try:
        p = load_shard(path, comm, **job)
    except ValueError as exc:
        with open(f"{out}/{name}.{rank}.json", "w") as f:
            json.dump({"error": str(exc), "type": type(exc).__name__}, f)
        continue
    np.savez(
        f"{out}/{name}.{rank}.npz", X_train=p.X_train, T_train=p.T_train,
        X_val=p.X_val, T_val=p.T_val, mean=p.scaler.mean, std=p.scaler.std,
        first_row=p.problem.first_row, totals=global_rows(comm, p),
        classes=np.array(p.problem.classes or (), dtype=str),
    )
"""


class Loaded:
    """What one rank's load_shard gave, read back from the worker's file."""

    def __init__(self, path):
        with np.load(path) as f:
            for key in f.files:
                setattr(self, key, f[key])
        self.problem = type("P", (), {"first_row": int(self.first_row)})


@pytest.fixture(scope="module", params=[2, 3], ids=lambda n: f"{n}ranks")
def mpi_run(request, tmp_path_factory):
    """Every MPI job below, run by one ``mpiexec -n N`` per rank count."""
    # "could not import": CI reruns these once the mpi extra is installed
    pytest.importorskip("mpi4py")
    mpiexec = find_mpiexec()
    if mpiexec is None:
        pytest.skip(f"no mpiexec beside {sys.executable} nor on PATH")
    size = request.param
    folder = tmp_path_factory.mktemp(f"mpi{size}")
    csv = write(make_table(n=3000), folder, "csv")
    parquet = write(make_table(n=3000, target="float"), folder, "parquet", 250)
    lines = ["a,b,y"] + [f"{i},{i * 2},{'p' if i % 2 else 'q'}" for i in range(90)]
    lines[70] = "69,abc,p"  # line 71: in the second half (rank 1 of 2)
    bad = write_text(folder, "bad.csv", lines)
    tiny = write_text(folder, "tiny.csv", ["a,y", "1,2.5"])
    f64 = {"dtype": "float64"}
    jobs = [
        {"name": "csv", "path": csv, **f64},
        {"name": "parquet", "path": parquet, "val_fraction": 0.2, **f64},
        {"name": "bad", "path": bad, "strict": True},
        {"name": "tiny", "path": tiny},
    ]
    (folder / "jobs.json").write_text(json.dumps(jobs))
    (folder / "worker.py").write_text(WORKER)
    out = folder / "out"
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [mpiexec, "-n", str(size), sys.executable,
         str(folder / "worker.py"), str(folder / "jobs.json"), str(out)],
        capture_output=True, text=True, timeout=120, cwd=ROOT, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr

    def get(name):
        loaded = []
        for rank in range(size):
            npz, err = out / f"{name}.{rank}.npz", out / f"{name}.{rank}.json"
            loaded.append(Loaded(npz) if npz.exists() else json.loads(err.read_text()))
        return loaded

    return size, {"csv": csv, "parquet": parquet, "bad": bad, "tiny": tiny}, get


def test_mpi_csv_shards_are_the_file_with_its_statistics(mpi_run):
    size, paths, get = mpi_run
    whole = whole_file(paths["csv"])
    ranks = get("csv")
    X, T = assemble(ranks, 0.0)
    np.testing.assert_allclose(X, whole.X_train, rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(T, whole.T_train)
    for r in ranks:
        np.testing.assert_allclose(r.mean, whole.scaler.mean, rtol=1e-12, atol=0)
        np.testing.assert_allclose(r.std, whole.scaler.std, rtol=1e-12, atol=0)
        assert tuple(r.classes) == whole.problem.classes
        assert tuple(r.totals) == (3000, 0)
    assert all(len(r.X_train) > 0 for r in ranks) and len(ranks) == size


def test_mpi_parquet_shards_are_the_file_with_its_statistics(mpi_run):
    size, paths, get = mpi_run
    whole = whole_file(paths["parquet"], 0.2)
    scaler = whole.scaler
    held = holdout_mask(0, 3000, 0.2, 0)
    ranks = get("parquet")
    X, T = assemble(ranks, 0.2)
    np.testing.assert_allclose(X[~held], whole.X_train, rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(T[~held], whole.T_train)
    for r in ranks:
        np.testing.assert_allclose(r.mean, scaler.mean, rtol=1e-12, atol=0)
        np.testing.assert_allclose(r.std, scaler.std, rtol=1e-12, atol=0)
        assert tuple(r.totals) == (3000 - held.sum(), held.sum())


def test_mpi_bad_cell_ends_every_rank_with_that_ranks_message(mpi_run):
    size, paths, get = mpi_run
    message = f"{paths['bad']}, column 'b', line 71: 'abc' is not a number"
    data = Path(paths["bad"]).read_bytes()
    line_start = data.index(b"69,abc,p")
    owner = next(
        r
        for r in range(size)
        if (p := file_part(paths["bad"], r, size)).start <= line_start < p.stop
    )
    assert owner == 1 or size != 2
    for r in get("bad"):
        assert r == {"error": f"rank {owner}: {message}", "type": "DataError"}


def test_mpi_file_with_fewer_rows_than_ranks_is_a_clear_error(mpi_run):
    size, paths, get = mpi_run
    for r in get("tiny"):
        assert r["error"] == (
            f"{paths['tiny']}: rank 1 of {size} gets no data rows: the file's 1 "
            "row is shared out as whole lines; run fewer ranks"
        )
