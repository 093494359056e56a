"""The ``fastbp`` command line (click): train, predict, bench."""

from .commands import main

__all__ = ["main"]
