"""python -m fastbp: the ``fastbp`` command line."""

from .cli import main

main(prog_name="fastbp")
