"""Deprecated path: this module moved to :mod:`fastbp.nn.optim`.

Every name still imports from ``fastbp.optim``, with a DeprecationWarning.
"""

from ._compat import moved

__getattr__, __dir__ = moved(__name__, "fastbp.nn.optim")
