"""python -m fastbp: the ``fastbp`` command line."""

from .cli.commands import main

main(prog_name="fastbp")
