"""``fastbp.train`` is the training function :func:`fastbp.training.train`; the
module of that name moved to :mod:`fastbp.training`.

The old module path keeps working: ``fastbp.train(...)`` calls the function,
and ``fastbp.train.NAME`` or ``from fastbp.train import NAME`` reach the
names of :mod:`fastbp.training` with a DeprecationWarning. This module
is itself callable, so that whichever a program meets first, the function or
the module path, ``fastbp.train`` stays the function it calls.
"""

import sys

from ._compat import CallableModule, moved

_forward, __dir__ = moved(__name__, "fastbp.training")


def __getattr__(name: str) -> object:
    if name == "__wrapped__":  # what calling this module calls
        from .training.api import train

        return train
    return _forward(name)


sys.modules[__name__].__class__ = CallableModule
