"""Deprecated path: this module moved to :mod:`fastbp.data.stream`.

Every name still imports from ``fastbp.stream``, with a DeprecationWarning.
"""

from ._compat import moved

__getattr__, __dir__ = moved(__name__, "fastbp.data.stream")
