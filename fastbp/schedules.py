"""Deprecated path: this module moved to :mod:`fastbp.training.schedules`.

Every name still imports from ``fastbp.schedules``, with a DeprecationWarning.
"""

from ._compat import moved

__getattr__, __dir__ = moved(__name__, "fastbp.training.schedules")
