"""Deprecated path: this module moved to :mod:`fastbp.io.outputs`.

Every name still imports from ``fastbp.outputs``, with a DeprecationWarning.
"""

from ._compat import moved

__getattr__, __dir__ = moved(__name__, "fastbp.io.outputs")
