"""``fastbp.gradcheck`` is the gradient check :func:`fastbp.nn.gradcheck`; the
module of that name moved to :mod:`fastbp.nn.numerical`.

The old module path keeps working: ``fastbp.gradcheck(...)`` calls the
function, and ``fastbp.gradcheck.NAME`` or ``from fastbp.gradcheck import
NAME`` reach the names of :mod:`fastbp.nn.numerical` with a
DeprecationWarning. This module is itself callable, so that whichever a
program meets first, the function or the module path, ``fastbp.gradcheck``
stays the function it calls.
"""

import sys

from ._compat import CallableModule, moved

_forward, __dir__ = moved(__name__, "fastbp.nn.numerical")


def __getattr__(name: str) -> object:
    if name == "__wrapped__":  # what calling this module calls
        from .nn.numerical import gradcheck

        return gradcheck
    return _forward(name)


sys.modules[__name__].__class__ = CallableModule
