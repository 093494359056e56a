"""Deprecated path: this module moved to :mod:`fastbp.data.problem`.

Every name still imports from ``fastbp.problem``, with a DeprecationWarning.
"""

from ._compat import moved

__getattr__, __dir__ = moved(__name__, "fastbp.data.problem")
