"""Deprecated path: this module moved to :mod:`fastbp.nn.losses`.

Every name still imports from ``fastbp.losses``, with a DeprecationWarning.
"""

from ._compat import moved

__getattr__, __dir__ = moved(__name__, "fastbp.nn.losses")
