"""Deprecated path: this module moved to :mod:`fastbp.nn.parts`.

Every name still imports from ``fastbp.parts``, with a DeprecationWarning.
"""

from ._compat import moved

__getattr__, __dir__ = moved(__name__, "fastbp.nn.parts")
