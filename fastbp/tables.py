"""Deprecated path: this module moved to :mod:`fastbp.data.tables`.

Every name still imports from ``fastbp.tables``, with a DeprecationWarning.
"""

from ._compat import moved

__getattr__, __dir__ = moved(__name__, "fastbp.data.tables")
