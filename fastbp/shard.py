"""Deprecated path: this module moved to :mod:`fastbp.data.shard`.

Every name still imports from ``fastbp.shard``, with a DeprecationWarning.
"""

from ._compat import moved

__getattr__, __dir__ = moved(__name__, "fastbp.data.shard")
