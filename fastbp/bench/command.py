"""``fastbp bench``: the benchmark suite's command (also ``python -m fastbp.bench``).

Lives beside the suite, not in :mod:`fastbp.cli`, so that running the suite
as a module imports nothing from the command line above it.
"""

from __future__ import annotations

import click

from .._files import unwritable_reason


def _out_folder(ctx: click.Context, param: click.Parameter, value: str | None):
    """--out: a folder that exists and takes new files, or can be created."""
    if value is not None:
        reason = unwritable_reason(value, folder=True)
        if reason:
            raise click.BadParameter(reason, ctx=ctx, param=param)
    return value


def _finite(ctx: click.Context, param: click.Parameter, value: float):
    """A FloatRange lets NaN through (every comparison with it is False)."""
    import math

    if not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a finite number", ctx, param)
    return value


@click.command()
@click.option(
    "--quick",
    is_flag=True,
    help="Smoke run: two tiny cases, one round, no thread scaling.",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="Threads for every library (BLAS, Numba, torch, XLA). "
    "Default: each library's own default.",
)
@click.option(
    "--case",
    "case_names",
    multiple=True,
    help="Run only these cases (repeatable): xor-2-8-1, 32-64-1, "
    "deep-32-64x10-1, tabular-20-256-256-1, 784-256-10, 1024-1024-1024-10, "
    "and the reference cases simplechains-24-8-2-f64, simplechains-4-32-16-4.",
)
@click.option(
    "--budget",
    type=click.FloatRange(min=0, min_open=True, max=3600),
    callback=_finite,
    default=0.25,
    show_default=True,
    help="Seconds per timing; each engine is timed once per round.",
)
@click.option("--rounds", type=click.IntRange(min=1), default=5, show_default=True)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    callback=_out_folder,
    help="Write results.json and results.md into this folder.",
)
def bench(quick, threads, case_names, budget, rounds, out_dir):
    """Speed benchmarks: fastbp against NumPy, PyTorch and JAX (when installed)."""
    from . import suite

    cases = suite.ALL_CASES
    if quick:
        cases, budget, rounds = suite.quick_cases(), min(budget, 0.02), 1
    if case_names:
        unknown = [c for c in case_names if c not in suite.ALL_CASES]
        if unknown:
            raise click.BadParameter(
                f"unknown case {unknown[0]!r}; choose from "
                f"{', '.join(suite.ALL_CASES)}",
                param_hint="'--case'",
            )
        cases = {c: suite.ALL_CASES[c] for c in case_names}
    result = suite.run(
        cases=cases,
        budget=budget,
        rounds=rounds,
        threads=threads,
        peak_size=256 if quick else 2048,
        scaling=not quick,
        micro_shapes=((4, 2, 8),)
        if quick
        else ((4, 2, 8), (64, 32, 64), (128, 784, 256)),
        echo=click.echo,
    )
    click.echo("")
    click.echo(suite.markdown(result))
    if out_dir is not None:
        json_path, md_path = suite.write(result, out_dir)
        click.echo(f"wrote {json_path} and {md_path}")
