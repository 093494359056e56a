"""python -m fastbp: the ``fastbp`` command line."""

from .cli import run

run()
