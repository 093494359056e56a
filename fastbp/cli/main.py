"""The ``fastbp`` command group: each command's module is imported only when
that command runs, so ``fastbp --version``, ``fastbp --help`` and the group's
usage errors import neither Numba nor pyarrow."""

from __future__ import annotations

import importlib
import importlib.util
import sys

import click

from .._version import __version__
from .errors import OneLineErrors

__all__ = ["main", "run"]

#: name -> (module, function, one-line help for ``fastbp --help``)
COMMANDS = {
    "train": ("fastbp.cli.train", "train", "Train an MLP on XOR or a table."),
    "predict": ("fastbp.cli.predict", "predict", "Predict with a saved model."),
    "evaluate": (
        "fastbp.cli.predict",
        "evaluate",
        "Score a saved model on a table that holds its target.",
    ),
    "inspect": (
        "fastbp.cli.predict",
        "inspect",
        "Show what a model file expects and holds.",
    ),
    "export": ("fastbp.cli.export", "export", "Export a model file to ONNX."),
    "bench": ("fastbp.bench.command", "bench", "Speed benchmarks."),
}


class LazyGroup(OneLineErrors):
    """A group that imports a command's module when the command is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if self._available(name)]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS or not self._available(name):
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter) -> None:
        """The command list from COMMANDS' one-line helps, importing nothing."""
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    @staticmethod
    def _available(name: str) -> bool:
        module = COMMANDS[name][0]
        return importlib.util.find_spec(module) is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fastbp")
def main() -> None:
    """fastbp: a JIT-compiled backpropagation engine for MLPs on the CPU.

    \b
    fastbp train --data xor                 train the XOR network
    fastbp train --data examples/iris.csv   train on a CSV file
    fastbp predict --model m.npz --data f.csv
    fastbp bench                            speed benchmarks
    """


#: The commands that read and write tables and model files. They never hand
#: pyarrow a pandas object.
TABLE_COMMANDS = frozenset({"train", "predict", "evaluate", "inspect", "export"})


def run(argv: list[str] | None = None) -> None:
    """The ``fastbp`` console script: :func:`main`, in a process of its own.

    pyarrow imports pandas, when it is installed, the first time it converts
    Python values or calls ``to_numpy`` (its pandas shim; apache/arrow#34994):
    0.2 s of a small ``fastbp train``'s one second. The table commands never
    give pyarrow a pandas object, so in this process, which the command owns,
    importing pandas fails before they run (unless something imported it
    already): pyarrow then skips its pandas checks. The command group
    itself (``main``, as tests and other programs call it) changes nothing.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    if args and args[0] in TABLE_COMMANDS and "pandas" not in sys.modules:
        sys.meta_path.insert(0, _Unimportable("pandas"))
    main(args=args, prog_name="fastbp")


class _Unimportable:
    """A meta path finder under which importing ``name`` (or a submodule)
    fails as if it were not installed."""

    def __init__(self, name: str) -> None:
        self.name = name

    def find_spec(self, fullname, path=None, target=None):
        if fullname == self.name or fullname.startswith(self.name + "."):
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None
