"""Checks of one command-line value each (click callbacks), shared by the
commands; imports nothing beyond click, so that a command's usage errors
load neither Numba nor pyarrow."""

from __future__ import annotations

import math

import click

from .._files import unwritable_reason

__all__ = ["names", "na_values", "finite", "output_file", "parse_hidden"]


def names(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]):
    """COLS options: names, comma-separated and/or repeated, in order."""
    names = [n.strip() for value in values for n in value.split(",")]
    if any(not n for n in names):
        raise click.BadParameter("an empty column name", ctx=ctx, param=param)
    return tuple(dict.fromkeys(names))


def na_values(ctx: click.Context, param: click.Parameter, value: str | None):
    """--na-values: the comma-separated spellings ("" for an empty cell is
    always among them)."""
    if value is None:
        return None
    return tuple(dict.fromkeys(["", *(v.strip() for v in value.split(","))]))


def finite(ctx: click.Context, param: click.Parameter, value: float | None):
    """A FloatRange lets NaN through (every comparison with it is False)."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a finite number", ctx, param)
    return value


def output_file(ctx: click.Context, param: click.Parameter, value: str | None):
    """--save/--out: a file in an existing folder that takes new files."""
    if value is not None:
        reason = unwritable_reason(value)
        if reason:
            raise click.BadParameter(reason, ctx=ctx, param=param)
    return value


def parse_hidden(text: str) -> list[int] | None:
    """ "8" or "64,64" as a list of positive widths; None when it is not."""
    parts = [p.strip() for p in text.split(",")] if text.strip() else []
    if not parts or not all(p.isdigit() and int(p) > 0 for p in parts):
        return None
    return [int(p) for p in parts]
