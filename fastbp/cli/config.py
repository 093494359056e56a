"""``fastbp train``'s settings as one frozen object, and the MPI world it runs in.

:meth:`TrainConfig.from_options` takes the parsed options (``TRAIN_OPTIONS``)
and returns every setting resolved: the XOR job's and the table job's
defaults applied, and the combinations that cannot run refused with one line
naming the options (L-BFGS with per-epoch features, streaming with XOR or
standard input, several MPI processes with streaming, the layer path or
L-BFGS, one file given for two outputs).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from .._files import KIND_WORDS, file_kind
from .errors import InputError
from .params import parse_hidden

__all__ = ["TrainConfig", "MpiWorld", "mpi_world", "XOR_DEFAULTS", "TABLE_DEFAULTS"]

# Defaults that solve XOR for at least 99 of seeds 0-99 (all 100 when last
# measured; tests/cli/test_cli.py allows one miss), with a 2-8-1 tanh network,
# SGD with momentum, full-batch.
XOR_DEFAULTS = dict(
    init=None,  # the activation's preference: Xavier for tanh
    hidden="8",
    activation="tanh",
    optimizer="sgd",
    lr=0.1,
    momentum=0.9,
    l2=0.0,
    epochs=1000,
    batch_size=4,
    val_split=0.0,
)
TABLE_DEFAULTS = dict(
    # torch.nn.Linear's default (weights and biases ~ U(+-1/sqrt(fan_in))):
    # He-normal's first layer, twice as large, trains slower per epoch under
    # Adam (benchmarks/init_ablation.py).
    init="pytorch",
    hidden="32",
    activation="relu",
    optimizer="adam",
    lr=0.01,
    momentum=0.9,
    # scikit-learn's alpha: it also keeps a ReLU network's extrapolation on
    # rows far outside the training data in check (benchmarks/raw_tables.py:
    # diamonds' impossible sizes in the validation rows).
    l2=1e-4,
    epochs=200,
    batch_size=16,
    val_split=0.2,
)


@dataclass(frozen=True)
class MpiWorld:
    """The processes a command runs on: ``comm`` is MPI.COMM_WORLD (None for
    one process), ``rank`` this process's rank, ``size`` their number."""

    comm: object = None
    rank: int = 0
    size: int = 1

    @property
    def several(self) -> bool:
        return self.size > 1

    @property
    def leader(self) -> bool:
        """Rank 0, which alone prints and writes files."""
        return self.rank == 0


def mpi_world() -> MpiWorld:
    """The MPI world when the command runs under mpiexec (or srun) with 2 or
    more processes, else one process. The process count is read from the
    launcher's environment first, so a plain run never imports mpi4py."""
    size = 1
    for name in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"):
        if os.environ.get(name, "").isdigit():
            size = max(size, int(os.environ[name]))
    if size < 2:
        return MpiWorld()
    try:
        from mpi4py import MPI
    except ImportError:
        raise InputError(
            f"running on {size} MPI processes needs the mpi extra: "
            "pip install 'fastbp[mpi]'"
        ) from None
    world = MPI.COMM_WORLD
    if world.Get_size() < 2:
        return MpiWorld()
    return MpiWorld(world, world.Get_rank(), world.Get_size())


def threads_per_rank() -> int:
    """This machine's cores divided by the MPI ranks on it (the launcher's
    MPI_LOCALNRANKS or OMPI_COMM_WORLD_LOCAL_SIZE), at least 1: ranks that
    each start a thread per core would fight over the cores, and MPI's
    polling with them."""
    local = 1
    for name in ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE"):
        if os.environ.get(name, "").isdigit():
            local = int(os.environ[name])
    return max(1, (os.cpu_count() or 1) // max(1, local))


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of one ``fastbp train`` run, resolved (see the options'
    help for each)."""

    data: str
    data_format: str | None
    target: str | None
    task: str | None
    categorical: tuple[str, ...]
    numeric: tuple[str, ...]
    drop: tuple[str, ...]
    features: tuple[str, ...]
    na_values: tuple[str, ...] | None
    max_categories: int
    strict: bool
    init: str | None
    hidden: tuple[int, ...]
    activation: str
    loss: str | None
    optimizer: str
    lr_schedule: str
    early_stopping: bool
    patience: int
    tol: float
    grad_norms: bool
    plot: str | None
    lr: float
    momentum: float
    l2: float
    epochs: int
    batch_size: int
    seed: int
    val_split: float
    dtype: str
    threads: int | None
    save: str | None
    stream: bool
    shuffle_buffer: int
    shard: bool
    sync_every: int
    checkpoint: str | None
    checkpoint_every: int
    resume: str | None
    no_fuse: bool
    quiet: bool
    as_json: bool

    @classmethod
    def from_options(cls, options: dict, world: MpiWorld) -> TrainConfig:
        """The settings of the parsed options: defaults applied, exclusions
        checked (InputError naming the options)."""
        raw = dict(options)
        defaults = XOR_DEFAULTS if raw["data"] == "xor" else TABLE_DEFAULTS
        for key, value in defaults.items():
            if raw.get(key) is None:
                raw[key] = parse_hidden(value) if key == "hidden" else value
        raw["hidden"] = tuple(raw["hidden"])
        _refuse_conflicts(raw, world)
        if raw["plot"] is not None:
            _check_plotting(raw["plot"])
        if raw["checkpoint_every"] is None:
            raw["checkpoint_every"] = 1
        if world.several:
            if raw["threads"] is None:  # the cores of this machine, shared
                raw["threads"] = threads_per_rank()
            if not world.leader:  # rank 0 alone prints and writes
                raw.update(quiet=True, save=None, plot=None, as_json=False)
        else:
            raw["shard"] = False
        names = {f.name for f in fields(cls)}
        return cls(**{key: raw[key] for key in names})

    @property
    def xor(self) -> bool:
        return self.data == "xor"

    def plan_options(self):
        """The column options as :class:`fastbp.data.plan.PlanOptions`."""
        from ..data.plan import NA_VALUES, PlanOptions

        return PlanOptions(
            categorical=self.categorical,
            numeric=self.numeric,
            drop=self.drop,
            features=self.features or None,
            na_values=self.na_values or NA_VALUES,
            max_categories=self.max_categories,
            strict=self.strict,
        )


def _refuse_conflicts(raw: dict, world: MpiWorld) -> None:
    """InputError for options that do not go together."""
    if world.several:
        for flag, given in (
            ("--stream", raw["stream"]),
            ("--no-fuse", raw["no_fuse"]),
            ("--optimizer lbfgs", raw["optimizer"] == "lbfgs"),
        ):
            if given:
                raise InputError(f"{flag} does not run on several MPI processes")
        if raw["shard"] and raw["data"] in ("xor", "-"):
            raise InputError(
                f"--shard needs a file each process can read, not {raw['data']!r}"
            )
    if raw["optimizer"] == "lbfgs":
        for flag, given in (
            ("--no-fuse", raw["no_fuse"]),
            ("--grad-norms", raw["grad_norms"]),
            ("--early-stopping", raw["early_stopping"]),
            ("--lr-schedule", raw["lr_schedule"] != "constant"),
            ("--stream", raw["stream"]),
            ("--checkpoint", raw["checkpoint"] is not None),
            ("--resume", raw["resume"] is not None),
        ):
            if given:
                raise InputError(f"{flag} does not apply to --optimizer lbfgs")
    if raw["strict"] or raw["data"] == "xor":
        for flag, key in (
            ("--categorical", "categorical"),
            ("--numeric", "numeric"),
            ("--drop", "drop"),
            ("--features", "features"),
            ("--na-values", "na_values"),
        ):
            if raw[key]:
                why = "--strict" if raw["strict"] else "--data xor"
                raise InputError(f"{flag} does not apply with {why}")
    if raw["checkpoint_every"] is not None and raw["checkpoint"] is None:
        raise InputError("--checkpoint-every needs --checkpoint PATH")
    if raw["stream"] and raw["data"] in ("xor", "-"):
        raise InputError(f"--stream needs a file to read again, not {raw['data']!r}")
    outputs = [
        (flag, raw[key])
        for flag, key in (
            ("--save", "save"),
            ("--checkpoint", "checkpoint"),
            ("--plot", "plot"),
        )
        if raw[key] is not None
    ]
    for i, (flag, path) in enumerate(outputs):
        for other, other_path in outputs[:i]:
            if same_file(path, other_path):
                raise InputError(
                    f"{other} and {flag} name the same file {path!r}; give each its own"
                )
        if raw["data"] not in ("xor", "-") and same_file(path, raw["data"]):
            raise InputError(f"{flag} would overwrite the data file {path!r}")
    if raw["resume"] is not None and raw["save"] is not None:
        if same_file(raw["resume"], raw["save"]):
            raise InputError(
                f"--save would overwrite the checkpoint being resumed {raw['save']!r}"
            )
    for flag, key, kind in (
        ("--save", "save", "fastbp-model"),
        ("--checkpoint", "checkpoint", "fastbp-checkpoint"),
    ):
        refuse_other_kind(flag, raw[key], (kind, "npz"))


def refuse_other_kind(flag: str, path: str | None, replaceable: tuple) -> None:
    """InputError when the output path of flag holds a file whose
    :func:`fastbp._files.file_kind` is not among ``replaceable``: a model is
    never replaced by a checkpoint, nor a data file by a model."""
    if path is None:
        return
    found = file_kind(path)
    if found is None or found in replaceable:
        return
    raise InputError(
        f"{flag} would replace {path!r}, {KIND_WORDS[found]}; give another path "
        "or remove that file first"
    )


def same_file(a: str, b: str) -> bool:
    """Whether two paths name one file (existing or not)."""
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.abspath(a) == os.path.abspath(b)


def _check_plotting(path: str) -> None:
    """--plot: matplotlib installed and the extension one it writes, checked
    before training so a long run does not end in an error."""
    from ..plot import check_image_path

    try:
        check_image_path(path)
    except ImportError:
        raise InputError(
            "--plot needs matplotlib: pip install 'fastbp[plot]'"
        ) from None
    except ValueError as exc:
        raise InputError(f"--plot: {exc}") from None
