"""Deprecated path: this module moved to :mod:`fastbp.training.checkpoint`.

Every name still imports from ``fastbp.checkpoint``, with a DeprecationWarning.
"""

from ._compat import moved

__getattr__, __dir__ = moved(__name__, "fastbp.training.checkpoint")
