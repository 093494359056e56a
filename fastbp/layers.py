"""Deprecated path: this module moved to :mod:`fastbp.nn.layers`.

Every name still imports from ``fastbp.layers``, with a DeprecationWarning.
"""

from ._compat import moved

__getattr__, __dir__ = moved(__name__, "fastbp.nn.layers")
