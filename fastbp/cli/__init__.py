"""The ``fastbp`` command line (click): train, predict, bench.

:mod:`fastbp.cli.main` is the command group (each command imported when it
runs), :mod:`~fastbp.cli.options` declares ``fastbp train``'s options once,
:mod:`~fastbp.cli.config` resolves them into one settings object,
:mod:`~fastbp.cli.jobs` loads the data, :mod:`~fastbp.cli.train` trains and
:mod:`~fastbp.cli.report` prints.
"""

from .main import main, run

__all__ = ["main", "run"]
