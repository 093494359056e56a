"""The registry: one declaration per activation, loss and optimizer.

Each part is a class decorated with :func:`register`, which records, in one
place, everything the rest of fastbp derives from it:

- ``name``: the word users type (``fastbp train --activation gelu``) and the
  ``type`` written in model files;
- ``code``: the part's code in the fused whole-epoch kernel
  (``fastbp.kernels.epoch``), or None when the part runs on the layer path
  only;
- ``hyper``: its hyperparameters by name, in the order the fused kernel reads
  them; each is an attribute of the same name on the instance;
- ``target`` (losses only): ``"values"`` (float targets of the output's shape)
  or ``"labels"`` (integer class indices, one per row);
- ``state`` (optimizers only): the names of its flat state vectors (momentum
  buffer, Adam's moments), in the order the fused kernel reads them.

The fused path (:mod:`fastbp.train`), the layer path, the model file
(:meth:`fastbp.Sequential.architecture`) and the command line's choices all
read these records; none keeps a list of its own.

>>> from fastbp.nn.parts import ACTIVATIONS, builtin_parts
>>> builtin_parts()
>>> sorted(ACTIVATIONS)[:3]
['gelu', 'leaky_relu', 'relu']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "Part",
    "register",
    "part_of",
    "ACTIVATIONS",
    "LOSSES",
    "OPTIMIZERS",
    "builtin_parts",
]

KINDS = ("activation", "loss", "optimizer")
TARGETS = ("values", "labels")


@dataclass(frozen=True)
class Part:
    """The declaration of one activation, loss or optimizer class."""

    kind: str
    name: str
    cls: type
    code: int | None
    hyper: tuple[str, ...]
    target: str | None = None
    state: tuple[str, ...] = ()

    @property
    def fused(self) -> bool:
        """True when the fused kernel has code for this part."""
        return self.code is not None

    def hyperparameters(self, obj: object) -> dict[str, float]:
        """``{name: value}`` of the declared hyperparameters of instance obj."""
        return {name: getattr(obj, name) for name in self.hyper}


#: name -> Part, one table per kind, filled by :func:`register`.
ACTIVATIONS: dict[str, Part] = {}
LOSSES: dict[str, Part] = {}
OPTIMIZERS: dict[str, Part] = {}
_TABLES = {"activation": ACTIVATIONS, "loss": LOSSES, "optimizer": OPTIMIZERS}


def register(
    kind: str,
    name: str,
    *,
    code: int | None = None,
    hyper: tuple[str, ...] = (),
    target: str | None = None,
    state: tuple[str, ...] = (),
) -> Callable[[type], type]:
    """Class decorator: declare the class as the ``kind`` part called ``name``.

    Raises ValueError for an unknown kind or target, or a name already taken
    by another class of that kind.
    """
    if kind not in KINDS:
        raise ValueError(f"register: kind must be one of {KINDS}, got {kind!r}")
    if kind == "loss" and target not in TARGETS:
        raise ValueError(f"register: a loss needs target in {TARGETS}, got {target!r}")
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"register: name must be an identifier, got {name!r}")

    def decorate(cls: type) -> type:
        table = _TABLES[kind]
        old = table.get(name)
        if old is not None and old.cls is not cls:
            raise ValueError(
                f"register: {kind} name {name!r} is taken by {old.cls.__name__}"
            )
        part = Part(kind, name, cls, code, tuple(hyper), target, tuple(state))
        table[name] = part
        cls.part = part
        return cls

    return decorate


def part_of(obj: object) -> Part | None:
    """The Part declared by obj's own class, or None.

    Only the exact class counts: a subclass of ``ReLU`` that overrides
    ``forward`` is not ReLU to the fused kernel unless it registers itself.
    """
    return type(obj).__dict__.get("part")


def builtin_parts() -> None:
    """Register fastbp's own parts, by importing the modules that declare
    them (:mod:`fastbp.nn.layers`, ``.losses``, ``.optim``): what a reader of
    the tables calls first, since ``import fastbp`` imports no module until a
    name is used."""
    from . import layers, losses, optim  # noqa: F401  (their classes register)
