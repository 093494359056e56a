"""One-line errors: every input error ends in ``Error: ...`` and exit status 2."""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator

import click

__all__ = ["InputError", "OneLineErrors", "data_error", "warnings_to_stderr"]


class InputError(click.ClickException):
    """A one-line error about the user's input; exit status 2."""

    exit_code = 2


def data_error(exc: Exception) -> InputError:
    """The library's message about the data, with the option that helps."""
    text = str(exc)
    if "use float64" in text:
        return InputError(text.replace("use float64", "use --dtype float64"))
    return InputError(text)


class OneLineErrors(click.Group):
    """A click group whose usage errors are one ``Error:`` line, like the rest.

    click prints a usage line and a hint before a bad option's message; a
    user fixing a value needs only the message, which names the option.
    Under MPI (several processes) only rank 0 prints it; every rank exits
    with its status.
    """

    def main(self, args=None, prog_name=None, complete_var=None, **extra):
        try:
            code = super().main(
                args, prog_name, complete_var, standalone_mode=False, **extra
            )
        except click.ClickException as exc:
            if _rank() == 0:
                click.echo(f"Error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def _rank() -> int:
    """This process's MPI rank, from the launcher's environment (0 alone)."""
    import os

    for name in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK"):
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 0


@contextlib.contextmanager
def warnings_to_stderr() -> Iterator[None]:
    """The library's UserWarnings raised in the block (a column of names read
    as labels), printed as ``Warning: ...`` lines on stderr once it ends."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        yield
    for warning in caught:
        click.echo(f"Warning: {warning.message}", err=True)
