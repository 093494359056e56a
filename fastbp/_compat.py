"""Lazy package namespaces, and the module paths fastbp had before its
packages by concern, kept working.

:func:`lazy_exports` gives a package a PEP 562 ``__getattr__`` that imports a
public name's module the first time the name is read, so ``import fastbp``
(or ``import fastbp.data``) loads NumPy and nothing else: Numba, pyarrow and
SciPy arrive with the first call that needs them.

:class:`LazyModule` is a module imported when first used: the layer API
binds its kernels so, and imports without Numba.

:func:`moved` serves an old module path (``fastbp.layers``, ``fastbp.stream``,
...) from its new module, with a DeprecationWarning naming the new place.
:class:`CallableModule` is for the two old paths that were also functions
(``fastbp.train``, ``fastbp.gradcheck``): the module is the function too, so
``fastbp.train(...)``, ``fastbp.train.lbfgs`` and ``from fastbp.train import
TrainResult`` all work, whichever of them a program meets first.
"""

from __future__ import annotations

import importlib
import types
import warnings
from collections.abc import Callable


def lazy_exports(
    package: str, names: dict[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """(``__getattr__``, ``__dir__``) for ``package`` whose public names live
    in submodules: ``names`` maps each name to its module, relative to the
    package (``"nn.layers"``)."""

    def __getattr__(name: str) -> object:
        where = names.get(name)
        if where is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{where}"), name)

    def __dir__() -> list[str]:
        return sorted(names)

    return __getattr__, __dir__


def moved(
    old: str, new: str
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """(``__getattr__``, ``__dir__``) for a shim module at the old path
    ``old`` that forwards every name to the module ``new``, warning once per
    name read (DeprecationWarning: "fastbp.stream.scan moved to
    fastbp.data.stream.scan")."""

    def __getattr__(name: str) -> object:
        if name.startswith("__"):
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        module = importlib.import_module(new)
        try:
            value = getattr(module, name)
        except AttributeError:
            raise AttributeError(f"module {old!r} has no attribute {name!r}") from None
        warnings.warn(
            f"{old}.{name} moved to {new}.{name}; the old path is deprecated "
            "and will be removed",
            DeprecationWarning,
            stacklevel=2,
        )
        return value

    def __dir__() -> list[str]:
        return sorted(n for n in dir(importlib.import_module(new)) if n[0] != "_")

    return __getattr__, __dir__


class LazyModule:
    """A module imported at the first read of one of its attributes:
    ``dense = LazyModule("fastbp.kernels.dense")`` costs nothing, and
    ``dense.dense_forward(...)`` imports fastbp.kernels.dense (and with it
    Numba) the first time. Each attribute read is then kept on this object,
    so later reads are plain attribute reads."""

    def __init__(self, name: str) -> None:
        self.__name = name

    def __getattr__(self, attr: str) -> object:
        value = getattr(importlib.import_module(self.__name), attr)
        setattr(self, attr, value)
        return value

    def __repr__(self) -> str:
        return f"<lazy module {self.__name!r}>"


class CallableModule(types.ModuleType):
    """A shim module that is also the function of the same name: calling it
    calls ``__wrapped__`` (looked up in the module, lazily)."""

    def __call__(self, *args: object, **kwargs: object) -> object:
        return self.__wrapped__(*args, **kwargs)
