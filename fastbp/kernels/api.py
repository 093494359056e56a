"""The public kernels: each njit kernel behind a wrapper that checks its arguments.

The njit kernels in the sibling modules trust their caller; the layer API calls
them directly, having validated its own inputs once. A user calling
``fastbp.kernels.relu_forward`` gets the wrapper defined here instead: same
name, signature and docstring, but every argument is checked first, so a bad
call raises a one-line ``TypeError`` or ``ValueError`` naming the kernel and
the argument, never a Numba error, a wrong result or a crash.

How a kernel's checks are declared
----------------------------------
Each wrapper is one statement, ``name = _public(raw_kernel, *args)``, with one
:class:`Arg` per parameter in signature order (import fails if they disagree).
An Arg has a role:

``IN``
    A float array the kernel reads; copied to C order when it is not.
``OUT``
    A float array the kernel writes or updates in place. It must be
    C-contiguous and writeable (no copy could be written back), and must not
    share memory with any other array argument, except that it may be exactly
    the array named by ``may_be`` (same memory, shape and strides): the
    documented in-place case, e.g. ``relu_forward(X, X)``.
``LABELS``
    An integer array of class indices, converted to C-contiguous int64.
``SCALAR``
    A number or flag, checked and converted by the Arg's ``check`` function.

and a shape rule: a tuple of dimension names, each bound by the first array
that has it and checked against every later one (``("n_samples",
"in_features")``); the name of an earlier argument (the same shape as that
array, any number of dimensions); or None (any shape). Dimensions named in
``_AT_LEAST_ONE`` must be >= 1. All float arrays of one call share one dtype,
float32 or float64.
"""

from __future__ import annotations

import inspect
import math
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np

from . import activations as _act
from . import dense as _dense
from . import losses as _losses
from . import optim as _optim
from . import util as _util

__all__ = [
    "dense_forward",
    "dense_relu_forward",
    "dense_backward",
    "dense_backward_params",
    "relu_forward",
    "relu_backward",
    "leaky_relu_forward",
    "leaky_relu_backward",
    "gelu_forward",
    "gelu_backward",
    "sigmoid_forward",
    "sigmoid_backward",
    "tanh_forward",
    "tanh_backward",
    "mse_forward",
    "mse_backward",
    "softmax_forward",
    "softmax_cross_entropy_forward",
    "softmax_cross_entropy_backward",
    "squared_error_backward",
    "binary_cross_entropy_backward",
    "sgd_update",
    "adam_update",
    "all_finite",
]

IN, OUT, LABELS, SCALAR = "input", "output", "labels", "scalar"

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

#: Dimensions a kernel indexes unconditionally (softmax reads z[0] of each row).
_AT_LEAST_ONE = frozenset({"n_classes"})


@dataclass(frozen=True)
class Arg:
    """One parameter of a public kernel: its name, role and shape rule."""

    name: str
    role: str
    shape: tuple[str, ...] | str | None = None
    may_be: str | None = None
    check: Callable[[str, str, object], object] | None = None


def _in(name: str, shape: tuple[str, ...] | str | None = None) -> Arg:
    return Arg(name, IN, shape)


def _out(
    name: str, shape: tuple[str, ...] | str | None = None, may_be: str | None = None
) -> Arg:
    return Arg(name, OUT, shape, may_be)


def _labels(name: str, shape: tuple[str, ...]) -> Arg:
    return Arg(name, LABELS, shape)


def _scalar(name: str, check: Callable[[str, str, object], object]) -> Arg:
    return Arg(name, SCALAR, check=check)


# Scalar checks: (kernel, name, value) -> the value as the kernel should get it.


def _flag(kernel: str, name: str, value: object) -> bool:
    if value is True or value is False:
        return value
    if not isinstance(value, np.bool_):
        raise TypeError(f"{kernel}(): {name} must be a bool, got {value!r}")
    return bool(value)


def _real(low: float = 0.0, high: float = math.inf, high_open: bool = False):
    """A check for a finite real number in [low, high] (or [low, high))."""
    interval = f"[{low:g}, {high:g}{')' if high_open else ']'}"

    def check(kernel: str, name: str, value: object) -> float:
        if type(value) is float:  # the common case, without the slower ABC check
            v = value
        elif isinstance(value, Real) and not isinstance(value, bool | np.bool_):
            v = float(value)
        else:
            raise TypeError(f"{kernel}(): {name} must be a real number, got {value!r}")
        if not (
            math.isfinite(v) and low <= v and (v < high if high_open else v <= high)
        ):
            raise ValueError(
                f"{kernel}(): {name} must lie in {interval}, got {value!r}"
            )
        return v

    return check


def _step(kernel: str, name: str, value: object) -> int:
    if type(value) is int and value >= 1:
        return value
    if not isinstance(value, Integral) or isinstance(value, bool | np.bool_):
        raise TypeError(f"{kernel}(): {name} must be an integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{kernel}(): {name} counts from 1, got {value!r}")
    return int(value)


# The one checker ---------------------------------------------------------------


def _check_array(kernel: str, arg: Arg, x: object, float_dtype: list) -> None:
    """Type, dtype and (for outputs) layout of one array argument."""
    if not isinstance(x, np.ndarray):
        raise TypeError(
            f"{kernel}(): {arg.name} must be a numpy ndarray, got {type(x).__name__}"
        )
    if arg.role == LABELS:
        if x.dtype.kind not in "iu":
            raise TypeError(
                f"{kernel}(): {arg.name} has dtype {x.dtype}, expected integer "
                "class indices"
            )
        return
    if x.dtype not in _FLOAT_DTYPES:
        raise TypeError(
            f"{kernel}(): {arg.name} has dtype {x.dtype}, expected float32 or "
            f"float64 (convert with .astype(np.float32))"
        )
    if not float_dtype:
        float_dtype += [x.dtype, arg.name]
    elif x.dtype != float_dtype[0]:
        raise TypeError(
            f"{kernel}(): {arg.name} has dtype {x.dtype} but {float_dtype[1]} has "
            f"{float_dtype[0]}; all float arrays must share one dtype"
        )
    if arg.role == OUT:
        if not x.flags.c_contiguous:
            raise ValueError(
                f"{kernel}(): output {arg.name} of shape {x.shape} is not "
                "C-contiguous (pass a buffer from np.empty(shape, dtype))"
            )
        if not x.flags.writeable:
            raise ValueError(f"{kernel}(): output {arg.name} is read-only")


def _check_shape(kernel: str, arg: Arg, x: np.ndarray, dims: dict, named: dict):
    """x.shape against arg.shape; binds dimension names in dims (name -> (size,
    source argument)) and reads earlier arrays from named."""
    rule = arg.shape
    if rule is None:
        return
    if isinstance(rule, str):
        other = named[rule]
        if x.shape != other.shape:
            raise ValueError(
                f"{kernel}(): {arg.name} has shape {x.shape}, expected the same "
                f"shape as {rule} {other.shape}"
            )
        return
    if x.ndim != len(rule):
        raise ValueError(
            f"{kernel}(): {arg.name} must be {len(rule)}-D of shape "
            f"({', '.join(rule)}), got shape {x.shape}"
        )
    for dim, size in zip(rule, x.shape):  # noqa: B905 - ndim checked above
        bound = dims.get(dim)
        if bound is None:
            if dim in _AT_LEAST_ONE and size < 1:
                raise ValueError(
                    f"{kernel}(): {arg.name} has shape {x.shape}; {dim} must be >= 1"
                )
            dims[dim] = (size, arg.name)
        elif bound[0] != size:
            raise ValueError(
                f"{kernel}(): {arg.name} has shape {x.shape}, expected "
                f"({', '.join(rule)}) with {dim}={bound[0]} as in {bound[1]}"
            )


def _same_view(a: np.ndarray, b: np.ndarray) -> bool:
    """a and b are the same memory seen the same way (a is b, or a view of it)."""
    return a is b or (
        a.shape == b.shape
        and a.strides == b.strides
        and a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
    )


class _Checker:
    """check(args) for one kernel: the spec turned into index lists once, so a
    call only walks what it must check."""

    def __init__(self, kernel: str, spec: tuple[Arg, ...]) -> None:
        self.kernel, self.spec = kernel, spec
        self.arrays = [(i, a) for i, a in enumerate(spec) if a.role != SCALAR]
        self.scalars = [(i, a) for i, a in enumerate(spec) if a.role == SCALAR]
        self.inputs = [i for i, a in enumerate(spec) if a.role == IN]
        self.labels = [i for i, a in enumerate(spec) if a.role == LABELS]
        # Every (output, other array) pair once: output i against each later
        # array and each earlier non-output.
        self.pairs = [
            (i, j, out, other)
            for i, out in self.arrays
            if out.role == OUT
            for j, other in self.arrays
            if j != i and (j > i or other.role != OUT)
        ]

    def __call__(self, args: tuple) -> list:
        """The arguments as the kernel can take them, or a TypeError/ValueError.

        Checks every array's type, dtype and shape, the outputs' layout and
        writeability and the overlaps, then converts: scalars by their checks,
        inputs to C order, labels to int64.
        """
        kernel, values = self.kernel, list(args)
        dims: dict = {}
        named: dict = {}
        float_dtype: list = []
        for i, arg in self.arrays:
            x = values[i]
            _check_array(kernel, arg, x, float_dtype)
            _check_shape(kernel, arg, x, dims, named)
            named[arg.name] = x
        for i, j, out, other in self.pairs:
            if np.may_share_memory(values[i], values[j]):
                _overlap_allowed_or_raise(kernel, out, values[i], other, values[j])
        for i, arg in self.scalars:
            values[i] = arg.check(kernel, arg.name, values[i])
        for i in self.inputs:
            if not values[i].flags.c_contiguous:
                values[i] = np.ascontiguousarray(values[i])
        for i in self.labels:
            values[i] = np.ascontiguousarray(values[i], dtype=np.int64)
        return values


def _overlap_allowed_or_raise(kernel: str, out: Arg, x, other: Arg, y) -> None:
    """Output out (array x) shares memory with other (array y): fine only when y
    is out's documented in-place partner seen the same way."""
    if other.name == out.may_be:
        if _same_view(x, y):
            return
        hint = f"; only {out.name} is {other.name} (the whole array) is allowed"
    else:
        hint = "; pass separate buffers"
    raise ValueError(
        f"{kernel}(): output {out.name} overlaps {other.name} in memory{hint}"
    )


def _describe_checks(spec: tuple[Arg, ...]) -> str:
    """The paragraph a wrapper adds to its kernel's docstring."""

    def shape(arg: Arg) -> str:
        if arg.shape is None:
            return "any shape"
        if isinstance(arg.shape, str):
            return f"shape of {arg.shape}"
        return (
            f"({', '.join(arg.shape)})" if len(arg.shape) > 1 else f"({arg.shape[0]},)"
        )

    arrays = [a for a in spec if a.role != SCALAR]
    outputs = [a.name for a in arrays if a.role == OUT]
    text = (
        "Checked before the kernel runs (fastbp.kernels.api): "
        + ", ".join(f"{a.name} {shape(a)}" for a in arrays)
        + "; float arrays all float32 or all float64"
        + ("; labels integer" if any(a.role == LABELS for a in spec) else "")
        + "; inputs not C-contiguous are copied"
    )
    if outputs:
        text += (
            f"; {', '.join(outputs)} must be C-contiguous, writeable and share "
            "no memory with the other arrays"
        )
        in_place = [f"{a.name} may be {a.may_be}" for a in spec if a.may_be]
        if in_place:
            text += f" (but {', '.join(in_place)})"
    text += ". Raises TypeError or ValueError naming the argument."
    return textwrap.fill(text, 79)


def _public(raw: Callable, *spec: Arg) -> Callable:
    """The checking wrapper of the njit kernel raw, declared by spec."""
    py_func = getattr(raw, "py_func", raw)  # raw is plain under NUMBA_DISABLE_JIT
    name = py_func.__name__
    signature = inspect.signature(py_func)
    if [a.name for a in spec] != list(signature.parameters):
        raise AssertionError(f"{name}: spec {spec} does not match {signature}")
    n_args = len(spec)
    check = _Checker(name, spec)

    def wrapper(*args, **kwargs):
        if kwargs or len(args) != n_args:
            try:
                args = signature.bind(*args, **kwargs).args
            except TypeError as exc:
                raise TypeError(f"{name}(): {exc}") from None
        return raw(*check(args))

    wrapper.__name__ = wrapper.__qualname__ = name
    wrapper.__module__ = __name__
    doc = inspect.cleandoc(py_func.__doc__ or "")
    wrapper.__doc__ = f"{doc}\n\n{_describe_checks(spec)}"
    wrapper.__signature__ = signature
    wrapper.__wrapped__ = raw
    wrapper.spec = spec
    return wrapper


# The public kernels --------------------------------------------------------------

_N, _K, _M, _C = "n_samples", "in_features", "out_features", "n_classes"


def _dense_forward_spec():
    return (
        _in("X", (_N, _K)),
        _in("W", (_K, _M)),
        _in("b", (_M,)),
        _out("Y", (_N, _M)),
    )


def _elementwise_forward(raw: Callable, *scalars: Arg) -> Callable:
    """Y = f(X), any shape; Y may be X."""
    return _public(raw, _in("X"), _out("Y", "X", may_be="X"), *scalars)


def _elementwise_backward(raw: Callable, first: str, *scalars: Arg) -> Callable:
    """dX = dY * f'(first), any shape; dX may be dY."""
    return _public(
        raw,
        _in(first),
        _in("dY", first),
        _out("dX", first, may_be="dY"),
        *scalars,
    )


dense_forward = _public(_dense.dense_forward, *_dense_forward_spec())
dense_relu_forward = _public(_dense.dense_relu_forward, *_dense_forward_spec())
dense_backward = _public(
    _dense.dense_backward,
    _in("X", (_N, _K)),
    _in("W", (_K, _M)),
    _in("dY", (_N, _M)),
    _out("dW", (_K, _M)),
    _out("db", (_M,)),
    _out("dX", (_N, _K)),
)
dense_backward_params = _public(
    _dense.dense_backward_params,
    _in("X", (_N, _K)),
    _in("dY", (_N, _M)),
    _out("dW", (_K, _M)),
    _out("db", (_M,)),
)

_slope = _scalar("negative_slope", _real())
relu_forward = _elementwise_forward(_act.relu_forward)
relu_backward = _elementwise_backward(_act.relu_backward, "A")
leaky_relu_forward = _elementwise_forward(_act.leaky_relu_forward, _slope)
leaky_relu_backward = _elementwise_backward(_act.leaky_relu_backward, "A", _slope)
gelu_forward = _elementwise_forward(_act.gelu_forward)
gelu_backward = _elementwise_backward(_act.gelu_backward, "X")
sigmoid_forward = _elementwise_forward(_act.sigmoid_forward)
sigmoid_backward = _elementwise_backward(_act.sigmoid_backward, "Y")
tanh_forward = _elementwise_forward(_act.tanh_forward)
tanh_backward = _elementwise_backward(_act.tanh_backward, "Y")

mse_forward = _public(
    _losses.mse_forward,
    _in("Y", (_N, "n_outputs")),
    _in("T", "Y"),
    _scalar("mean", _flag),
)
mse_backward = _public(
    _losses.mse_backward,
    _in("Y", (_N, "n_outputs")),
    _in("T", "Y"),
    _scalar("mean", _flag),
    _out("dY", "Y", may_be="Y"),
)
softmax_forward = _public(
    _losses.softmax_forward, _in("Z", (_N, _C)), _out("P", "Z", may_be="Z")
)
softmax_cross_entropy_forward = _public(
    _losses.softmax_cross_entropy_forward, _in("Z", (_N, _C)), _labels("labels", (_N,))
)
softmax_cross_entropy_backward = _public(
    _losses.softmax_cross_entropy_backward,
    _in("Z", (_N, _C)),
    _labels("labels", (_N,)),
    _out("dZ", "Z", may_be="Z"),
)
squared_error_backward = _public(
    _losses.squared_error_backward,
    _in("Y", (_N, "n_outputs")),
    _in("T", "Y"),
    _out("dY", "Y", may_be="Y"),
)
binary_cross_entropy_backward = _public(
    _losses.binary_cross_entropy_backward,
    _in("Z", (_N, "n_outputs")),
    _in("T", "Z"),
    _out("dZ", "Z", may_be="Z"),
)

_non_negative = _real()
sgd_update = _public(
    _optim.sgd_update,
    _out("param"),
    _in("grad", "param"),
    _out("buf", "param"),
    _scalar("lr", _non_negative),
    _scalar("momentum", _non_negative),
    _scalar("weight_decay", _non_negative),
    _scalar("nesterov", _flag),
)
adam_update = _public(
    _optim.adam_update,
    _out("param"),
    _in("grad", "param"),
    _out("m", "param"),
    _out("v", "param"),
    _scalar("lr", _non_negative),
    _scalar("beta1", _real(0.0, 1.0, high_open=True)),
    _scalar("beta2", _real(0.0, 1.0, high_open=True)),
    _scalar("eps", _non_negative),
    _scalar("weight_decay", _non_negative),
    _scalar("step", _step),
)

all_finite = _public(_util.all_finite, _in("X"))
