"""The thin layer API: Parameter, Layer, Linear, the activations and Sequential.

A layer owns its parameters and preallocated buffers, checks what it is given
and calls kernels; no arithmetic on arrays happens here. Buffers are sized for
the current batch and reallocated only when the batch size changes, so a
training step allocates nothing.

The layer protocol is three methods: ``forward(x)``, ``backward(dY)`` and
``parameters()``. ``forward`` returns the layer's own output buffer, which the
next ``forward`` overwrites: copy it to keep it (``Sequential.predict`` returns
a copy). ``backward(dY)`` takes the gradient of the loss with respect to the
layer's output, stores parameter gradients in ``param.grad`` (overwriting
them, as the classic from-scratch Affine layer does) and returns the gradient
with respect to the layer's input. A user's own Layer subclass that
implements these works inside a Sequential (on the layer path).

Activations are declared once: a subclass of :class:`Activation` registered
with :func:`fastbp.parts.register` under a name, the kernel code of its
formula (``fastbp.kernels.activations``) and its named hyperparameters. The
fused path, ``mlp``, the model file and the CLI read that declaration.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterator

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .._compat import LazyModule
from .._validate import as_dtype, check_array, check_features, positive_int, real_in
from ..kernels.codes import (
    ACT_GELU,
    ACT_IDENTITY,
    ACT_LEAKY_RELU,
    ACT_RELU,
    ACT_SIGMOID,
    ACT_TANH,
    NO_HYPER,
    keeps_input,
)
from .parts import ACTIVATIONS, part_of, register

#: The kernels, imported (with Numba) by the first forward or backward pass:
#: building a model, reading a model file and NumPy inference need none.
_act = LazyModule("fastbp.kernels.activations")
_dense = LazyModule("fastbp.kernels.dense")

__all__ = [
    "Parameter",
    "Layer",
    "Linear",
    "Activation",
    "ReLU",
    "LeakyReLU",
    "GELU",
    "Sigmoid",
    "Tanh",
    "Sequential",
    "mlp",
    "uses_builtin_kernels",
]


def buffer(
    owner: object, attr: str, shape: tuple[int, ...], dtype: np.dtype
) -> NDArray:
    """The array ``owner.<attr>``, reallocated only when its shape or dtype must
    change (a new batch size): training steps allocate nothing."""
    buf = owner.__dict__.get(attr)
    if buf is None or buf.shape != shape or buf.dtype != dtype:
        buf = np.empty(shape, dtype)
        setattr(owner, attr, buf)
    return buf


class Parameter:
    """A trainable array ``data`` and its gradient ``grad`` (same shape, dtype).

    A Sequential moves ``data`` and ``grad`` into its flat buffers (copying the
    values), so hold on to the Parameter, not to its arrays; optimizers do.
    """

    __slots__ = ("data", "grad", "name", "__weakref__")

    def __init__(self, data: NDArray, name: str = "") -> None:
        self.data = data
        self.grad = np.zeros_like(data)
        self.name = name

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    def __repr__(self) -> str:
        data = self.data
        return f"Parameter({self.name!r}, shape={data.shape}, dtype={data.dtype})"


class Layer:
    """Base class: ``forward(x)`` (also ``layer(x)``), ``backward(dY)``,
    ``parameters()``: the whole contract a Sequential relies on.

    Subclasses of the built-in layers that keep their ``forward`` and
    ``backward`` run the built-in kernels directly inside a Sequential; any
    other layer is called through its public methods, and its outputs are
    checked (dtype, shape, contiguity) before the next layer sees them.
    """

    #: Float dtype of the layer's arrays. A standalone activation has None and
    #: works in the dtype of its input; Sequential gives it the model's dtype.
    dtype: np.dtype | None = None

    def forward(self, x: NDArray) -> NDArray:
        raise NotImplementedError

    def backward(self, dY: NDArray) -> NDArray | None:
        raise NotImplementedError

    def parameters(self) -> list[Parameter]:
        return []

    def __call__(self, x: NDArray) -> NDArray:
        return self.forward(x)

    def _buffer(self, attr: str, shape: tuple[int, ...], dtype: np.dtype) -> NDArray:
        return buffer(self, attr, shape, dtype)

    def _check_backward(self, dY: NDArray, out: NDArray | None) -> NDArray:
        if out is None:
            raise RuntimeError(f"{self!r}: backward() called before forward()")
        # Not checked for NaN: a diverging model's gradients are data, and
        # training reports divergence from the loss.
        check_array(dY, repr(self), "dY", dtype=out.dtype, ndim=out.ndim, finite=False)
        if dY.shape != out.shape:
            raise ValueError(
                f"{self!r}: dY has shape {dY.shape}, expected the output shape "
                f"{out.shape}"
            )
        return dY


def _rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


#: Linear's weight initializations (see its docstring).
INITS = ("he", "xavier", "pytorch")


class Linear(Layer):
    """Fully connected layer: Y = X @ W + b.

    Parameters
    ----------
    in_features, out_features : int
    init : {"he", "xavier", "pytorch"}
        "he": W ~ N(0, 2 / in_features), for ReLU networks.
        "xavier": W ~ U(-a, a), a = sqrt(6 / (in_features + out_features)), for
        tanh and sigmoid networks. With both the bias starts at zero.
        "pytorch": W and b ~ U(-a, a), a = 1 / sqrt(in_features), the default
        of ``torch.nn.Linear`` (weights drawn first, then the bias).
    rng : numpy Generator, int seed or None
    dtype : float32 (default) or float64

    Shape
    -----
    input (n_samples, in_features) -> output (n_samples, out_features).
    ``weight`` is (in_features, out_features), the transpose of PyTorch's
    layout, so the forward pass is a plain X @ W.

    Notes
    -----
    backward: dW = X^T dY, db = sum of dY over rows, dX = dY W^T. Inside a
    Sequential, the first layer skips dX (its input is the data) and returns
    None.

    Examples
    --------
    >>> layer = Linear(3, 2, rng=0)
    >>> layer(np.ones((4, 3), np.float32)).shape
    (4, 2)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        init: str = "he",
        rng: np.random.Generator | int | None = None,
        dtype: DTypeLike | None = None,
    ) -> None:
        who = "Linear"
        self.in_features = positive_int(in_features, who, "in_features")
        self.out_features = positive_int(out_features, who, "out_features")
        self.dtype = as_dtype(dtype, who)
        if init not in INITS:
            raise ValueError(
                f"{who}: init must be one of {', '.join(map(repr, INITS))}, "
                f"got {init!r}"
            )
        self.init = init
        shape = (self.in_features, self.out_features)
        gen = _rng(rng)
        b = np.zeros(self.out_features)
        if init == "he":
            w = gen.normal(0.0, np.sqrt(2.0 / self.in_features), shape)
        elif init == "xavier":
            limit = np.sqrt(6.0 / (self.in_features + self.out_features))
            w = gen.uniform(-limit, limit, shape)
        else:
            limit = 1.0 / np.sqrt(self.in_features)
            w = gen.uniform(-limit, limit, shape)
            b = gen.uniform(-limit, limit, self.out_features)
        self.weight = Parameter(w.astype(self.dtype), "weight")
        self.bias = Parameter(b.astype(self.dtype), "bias")
        self.needs_input_grad = True
        self._X: NDArray | None = None

    def __repr__(self) -> str:
        return (
            f"Linear(in_features={self.in_features}, out_features={self.out_features})"
        )

    def parameters(self) -> list[Parameter]:
        return [self.weight, self.bias]

    def forward(self, x: NDArray) -> NDArray:
        check_array(x, repr(self), "input", dtype=self.dtype, ndim=2)
        check_features(x, repr(self), "input", self.in_features)
        return self._forward(x)

    def _forward(
        self, x: NDArray, act: int = ACT_IDENTITY, p: tuple | None = None
    ) -> NDArray:
        """Y = act(X @ W + b) into the training buffer; keeps X for backward."""
        Y = self._buffer("_Y", (x.shape[0], self.out_features), self.dtype)
        self._affine(x, Y, act, p)
        self._X = x
        return Y

    def _infer(
        self, x: NDArray, act: int = ACT_IDENTITY, p: tuple | None = None
    ) -> NDArray:
        """As _forward, into a separate buffer: a pending backward is untouched."""
        Y = self._buffer("_Y_infer", (x.shape[0], self.out_features), self.dtype)
        self._affine(x, Y, act, p)
        return Y

    def numpy_forward(self, x: NDArray) -> NDArray:
        """Y = x @ W + b in NumPy (no compiled kernel), a new array."""
        return x @ self.weight.data + self.bias.data

    def _affine(self, x: NDArray, Y: NDArray, act: int, p: tuple | None) -> None:
        p = NO_HYPER if p is None else p
        _dense.dense_act_forward(x, self.weight.data, self.bias.data, Y, act, p)

    def backward(self, dY: NDArray) -> NDArray | None:
        return self._backward(self._check_backward(dY, self.__dict__.get("_Y")))

    def _backward(self, dY: NDArray) -> NDArray | None:
        X, W = self._X, self.weight
        if not self.needs_input_grad:
            _dense.dense_backward_params(X, dY, W.grad, self.bias.grad)
            return None
        dX = self._buffer("_dX", X.shape, self.dtype)
        _dense.dense_backward(X, W.data, dY, W.grad, self.bias.grad, dX)
        return dX


class Activation(Layer):
    """Base of the element-wise activations: Y = f(X), dX = dY * f'(X).

    A subclass is declared with ``@register("activation", name, code=...,
    hyper=(...))``: ``code`` selects its formula in
    :mod:`fastbp.kernels.activations` and ``hyper`` names the attributes that
    hold its hyperparameters. The layer keeps Y (or X, where f' needs the
    input) for the backward pass.
    """

    #: Weight initialization ``mlp`` uses before this activation.
    init = "xavier"

    def __repr__(self) -> str:
        part = type(self).part
        args = ", ".join(f"{k}={v!r}" for k, v in part.hyperparameters(self).items())
        return f"{type(self).__name__}({args})"

    def hyper_vector(self) -> tuple[float, ...]:
        """The hyperparameters as the kernels take them: a tuple of
        ``ACT_MAX_HYPER`` floats in declared order, zero-padded."""
        names = type(self).part.hyper
        if not names:
            return NO_HYPER
        values = tuple(float(getattr(self, name)) for name in names)
        return values + NO_HYPER[len(values) :]

    @property
    def code(self) -> int:
        return type(self).part.code

    @property
    def grad_from_input(self) -> bool:
        """True when the backward pass needs the input X rather than Y."""
        return keeps_input(type(self).part.code)

    def forward(self, x: NDArray) -> NDArray:
        dtype = self.dtype or (x.dtype if isinstance(x, np.ndarray) else None)
        check_array(x, repr(self), "input", dtype=as_dtype(dtype, repr(self)), ndim=2)
        return self._forward(x)

    def _forward(self, x: NDArray) -> NDArray:
        Y = self._buffer("_Y", x.shape, x.dtype)
        _act.activation_forward(x, Y, self.code, self.hyper_vector())
        # What backward differentiates from: the output, or the input.
        self._A = x if self.grad_from_input else Y
        return Y

    def _adopt(self, Y: NDArray) -> None:
        """Y = f(X) was computed by the Linear before (fused); keep it."""
        self._Y = self._A = Y

    def _infer(self, x: NDArray) -> NDArray:
        Y = self._buffer("_Y_infer", x.shape, x.dtype)
        _act.activation_forward(x, Y, self.code, self.hyper_vector())
        return Y

    def backward(self, dY: NDArray) -> NDArray:
        return self._backward(self._check_backward(dY, self.__dict__.get("_Y")))

    def _backward(self, dY: NDArray) -> NDArray:
        dX = self._buffer("_dX", dY.shape, dY.dtype)
        _act.activation_backward(self._A, dY, dX, self.code, self.hyper_vector())
        return dX

    def numpy_forward(self, x: NDArray) -> NDArray:
        """Y = f(x) in NumPy (no compiled kernel), written over x (a new
        array the caller owns). The built-in activations define it; one
        without it is served by its kernel."""
        raise NotImplementedError(f"{type(self).__name__} has no NumPy form")


@register("activation", "relu", code=ACT_RELU)
class ReLU(Activation):
    """Y = max(0, X); backward passes dY only where X > 0 (the mask is Y > 0)."""

    init = "he"

    def numpy_forward(self, x: NDArray) -> NDArray:
        return np.maximum(x, 0, out=x)


@register("activation", "leaky_relu", code=ACT_LEAKY_RELU, hyper=("negative_slope",))
class LeakyReLU(Activation):
    """Y = X where X > 0, else negative_slope * X; dX = dY or negative_slope * dY.

    Parameters
    ----------
    negative_slope : float >= 0, default 0.01 (PyTorch's default)
    """

    init = "he"

    def __init__(self, negative_slope: float = 0.01) -> None:
        self.negative_slope = real_in(negative_slope, "LeakyReLU", "negative_slope")

    def numpy_forward(self, x: NDArray) -> NDArray:
        slope = x.dtype.type(self.negative_slope)
        return np.where(x > 0, x, slope * x)


@register("activation", "gelu", code=ACT_GELU)
class GELU(Activation):
    """Y = X * Phi(X), Phi the standard normal CDF (exact erf form, PyTorch's
    default); dX = dY * (Phi(X) + X phi(X)), from the input X."""

    init = "he"

    def numpy_forward(self, x: NDArray) -> NDArray:
        # math.erf per element: exact, and fast enough for the small
        # batches this serves (~0.1 us an element).
        erf = np.frompyfunc(math.erf, 1, 1)
        phi = 0.5 * (
            1.0 + erf(x.astype(np.float64) / math.sqrt(2.0)).astype(np.float64)
        )
        return (x * phi).astype(x.dtype)


@register("activation", "sigmoid", code=ACT_SIGMOID)
class Sigmoid(Activation):
    """Y = 1 / (1 + exp(-X)); backward dX = dY * Y * (1 - Y)."""

    def numpy_forward(self, x: NDArray) -> NDArray:
        with np.errstate(over="ignore"):  # exp(-x) = inf gives 0, as it should
            return 1 / (1 + np.exp(-x))


@register("activation", "tanh", code=ACT_TANH)
class Tanh(Activation):
    """Y = tanh(X); backward dX = dY * (1 - Y**2)."""

    def numpy_forward(self, x: NDArray) -> NDArray:
        return np.tanh(x, out=x)


#: Rows up to which :meth:`Sequential.serve` computes in NumPy: there a
#: matrix product costs about what the kernel's does, and no kernel has to be
#: loaded (about 1 s the first time in a process).
NUMPY_ROWS = 4096


def _has_numpy_form(layer: Layer) -> bool:
    """Whether layer's own class defines numpy_forward (a subclass that
    changes forward must define it too)."""
    if isinstance(layer, Sequential):
        return layer.numpy_ready
    cls = type(layer)
    return "numpy_forward" in vars(cls) or (
        uses_builtin_kernels(layer) and isinstance(layer, Linear)
    )


def uses_builtin_kernels(layer: Layer) -> bool:
    """True when layer runs the built-in kernels: a Linear or registered
    activation whose class keeps the built-in forward and backward."""
    cls = type(layer)
    if isinstance(layer, Linear):
        base = Linear
    elif isinstance(layer, Activation) and part_of(layer) is not None:
        base = Activation
    else:
        return False
    return cls.forward is base.forward and cls.backward is base.backward


def _fusable(layer: Layer, after: Layer) -> bool:
    """A Linear and the activation after it run as one kernel: the activation
    is applied to each output row of the product while it is in cache."""
    return (
        isinstance(layer, Linear)
        and uses_builtin_kernels(layer)
        and isinstance(after, Activation)
        and uses_builtin_kernels(after)
        and not after.grad_from_input
    )


#: layer -> weak reference to the Sequential that owns it.
_OWNERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class Sequential(Layer):
    """Layers run in order: forward first to last, backward last to first.

    A Sequential owns its layers and the one flat layout of their parameters:
    all parameters live in one contiguous vector per model (``flat_data`` and
    ``flat_grad``), each ``Parameter.data``/``.grad`` a view into it, so an
    optimizer updates the whole model with one kernel call and the fused
    kernel addresses every weight by its offset (:meth:`offset`). Optimizers
    may be built on the parameters before or after the layers join the model.
    A layer belongs to one Sequential at a time: putting it in a second one is
    a ValueError.

    A Linear followed by an activation whose derivative needs only its output
    runs as one kernel (bias add and activation in one pass over the output).

    Parameters
    ----------
    *layers : Layer
        At least one layer; every Linear must have the same dtype.

    Examples
    --------
    >>> model = Sequential(Linear(2, 8, rng=0), ReLU(), Linear(8, 1, rng=1))
    >>> model.predict([[0, 1]]).shape
    (1, 1)
    """

    def __init__(self, *layers: Layer) -> None:
        if not layers:
            raise ValueError("Sequential: needs at least one layer")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(
                    f"Sequential: layer {i} is a {type(layer).__name__}, not a "
                    "fastbp Layer"
                )
            if any(layer is other for other in layers[:i]):
                raise ValueError(
                    f"Sequential: layer {i} ({layer!r}) appears twice; use two layers"
                )
            owner = _OWNERS.get(layer)
            if owner is not None and owner() is not None:
                raise ValueError(
                    f"Sequential: layer {i} ({layer!r}) already belongs to another "
                    "Sequential; a layer can be in one model at a time (build a "
                    "new layer, or copy.deepcopy the other model)"
                )
        self.layers = list(layers)
        linears = [lay for lay in self.layers if isinstance(lay, Linear)]
        dtypes = {lay.dtype for lay in self.layers if lay.dtype is not None}
        if len(dtypes) > 1:
            names = ", ".join(f"{lay!r}: {lay.dtype}" for lay in linears)
            raise TypeError(f"Sequential: layers mix dtypes ({names}); use one dtype")
        self.dtype = dtypes.pop() if dtypes else None
        for prev, layer in zip(linears[:-1], linears[1:], strict=True):
            if prev.out_features != layer.in_features:
                raise ValueError(
                    f"Sequential: {prev!r} feeds {layer!r}: out_features "
                    f"{prev.out_features} != in_features {layer.in_features}"
                )
        me = weakref.ref(self)
        for layer in self.layers:
            _OWNERS[layer] = me
            if isinstance(layer, Activation):
                layer.dtype = self.dtype
        first = self.layers[0]
        if isinstance(first, Linear):
            first.needs_input_grad = False
        self._builtin = [uses_builtin_kernels(layer) for layer in self.layers]
        self._fuse = [
            i + 1 < len(self.layers) and _fusable(layer, self.layers[i + 1])
            for i, layer in enumerate(self.layers)
        ]
        self._pack()

    def _pack(self) -> None:
        """Move every parameter into flat_data/flat_grad (values copied) and
        record each one's offset: the only place offsets are computed."""
        params = self.parameters()
        dtype = self.dtype or np.dtype(np.float32)
        total = sum(p.data.size for p in params)
        flat_data = np.empty(total, dtype)
        flat_grad = np.zeros(total, dtype)
        offsets, offset = {}, 0
        for p in params:
            end = offset + p.data.size
            data = flat_data[offset:end].reshape(p.data.shape)
            data[...] = p.data
            p.data = data
            p.grad = flat_grad[offset:end].reshape(p.data.shape)
            offsets[id(p)] = offset
            offset = end
        self._adopt_flat(flat_data, flat_grad, offsets)

    def _adopt_flat(self, flat_data, flat_grad, offsets: dict[int, int]) -> None:
        """Take flat_data/flat_grad with offsets (id(param) -> offset); a
        Sequential nested in this one keeps views of its share."""
        self.flat_data, self.flat_grad = flat_data, flat_grad
        self._offsets = offsets
        for layer in self.layers:
            own = layer.parameters()
            if isinstance(layer, Sequential) and own:
                base = offsets[id(own[0])]
                stop = base + sum(p.data.size for p in own)
                layer._adopt_flat(
                    flat_data[base:stop],
                    flat_grad[base:stop],
                    {id(p): offsets[id(p)] - base for p in own},
                )

    def offset(self, param: Parameter) -> int:
        """Where param's values start in ``flat_data`` (and its gradient in
        ``flat_grad``); KeyError if param is not this model's."""
        try:
            return self._offsets[id(param)]
        except KeyError:
            raise KeyError(f"{param!r} is not a parameter of this model") from None

    def __repr__(self) -> str:
        inner = "".join(f"\n  ({i}): {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential({inner}\n)"

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, index: int) -> Layer:
        return self.layers[index]

    @property
    def in_features(self) -> int | None:
        """Input width of the first Linear (nested models included), or None."""
        for layer in self.layers:
            if isinstance(layer, Linear | Sequential) and layer.in_features:
                return layer.in_features
        return None

    @property
    def out_features(self) -> int | None:
        """Output width of the last Linear (nested models included), or None."""
        for layer in reversed(self.layers):
            if isinstance(layer, Linear | Sequential) and layer.out_features:
                return layer.out_features
        return None

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """("index.name", Parameter) pairs, as PyTorch names them ("0.weight")."""
        for i, layer in enumerate(self.layers):
            for p in layer.parameters():
                yield f"{i}.{p.name}", p

    def parameters(self) -> list[Parameter]:
        return [p for layer in self.layers for p in layer.parameters()]

    def forward(self, x: NDArray) -> NDArray:
        self._check_input(x)
        return self._forward(x)

    def _check_input(self, x: NDArray) -> None:
        check_array(x, "Sequential", "input", dtype=self.dtype, ndim=2)
        if self.in_features is not None:
            check_features(
                x,
                f"Sequential (first layer {self.layers[0]!r})",
                "input",
                self.in_features,
            )

    def _forward(self, x: NDArray) -> NDArray:
        layers, fuse, builtin = self.layers, self._fuse, self._builtin
        for i, layer in enumerate(layers):
            if fuse[i]:
                after = layers[i + 1]
                x = layer._forward(x, after.code, after.hyper_vector())
            elif i and fuse[i - 1]:
                layer._adopt(x)  # the Linear before already applied it
            elif builtin[i]:
                x = layer._forward(x)
            else:
                x = self._checked(layer.forward(x), layer, "forward", x.shape[0])
        return x

    def _checked(self, out: object, layer: Layer, method: str, rows: int) -> NDArray:
        """The array a user's layer returned, checked before the next layer."""
        who = f"Sequential: {layer!r}.{method}()"
        out = check_array(out, who, "result", dtype=self.dtype, ndim=2, finite=False)
        if out.shape[0] != rows:
            raise ValueError(f"{who} returned {out.shape[0]} rows for {rows}")
        return out

    def backward(self, dY: NDArray) -> NDArray | None:
        """Backpropagate dY (gradient at the output) through every layer.

        Returns the gradient with respect to the model input, or None when the
        first layer is a Linear (it skips that product).
        """
        last = self.layers[-1]
        out = last.__dict__.get("_Y") if self._builtin[-1] else None
        if out is None and self._builtin[-1]:
            raise RuntimeError("Sequential: backward() called before forward()")
        if out is not None:
            dY = last._check_backward(dY, out)
        return self._backward(dY)

    def _backward(self, dY: NDArray) -> NDArray | None:
        rows = dY.shape[0]
        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i]
            if self._builtin[i]:
                dY = layer._backward(dY)
            else:
                dY = layer.backward(dY)
                if i > 0:
                    dY = self._checked(dY, layer, "backward", rows)
        return dY

    def predict(self, x: object) -> NDArray:
        """The model output for x (array-like, (n_samples, in_features)), a copy.

        Built-in layers compute it in buffers of their own, so calling predict
        between a forward and its backward pass changes nothing; a user's own
        layer is run through its public ``forward``.
        """
        x = np.ascontiguousarray(x, dtype=self.dtype)
        if x.ndim == 1 and self.in_features is not None:
            x = x.reshape(-1, self.in_features)
        self._check_input(x)
        return self._infer(x).copy()

    def _infer(self, x: NDArray) -> NDArray:
        layers, fuse, builtin = self.layers, self._fuse, self._builtin
        for i, layer in enumerate(layers):
            if fuse[i]:
                after = layers[i + 1]
                x = layer._infer(x, after.code, after.hyper_vector())
            elif i and fuse[i - 1]:
                continue
            elif builtin[i] or isinstance(layer, Sequential):
                x = layer._infer(x)
            else:
                x = self._checked(layer.forward(x), layer, "forward", x.shape[0])
        return x

    def predict_numpy(self, x: object) -> NDArray:
        """The model output for x as :meth:`predict` gives it, computed with
        NumPy alone: no compiled kernel is loaded, which suits serving a few
        rows (NumPy's matrix product is as fast there). Equal to
        :meth:`predict` to float rounding (the kernels sum in another order).
        TypeError for a layer without a NumPy form (``numpy_forward``)."""
        x = np.array(x, dtype=self.dtype)
        if x.ndim == 1 and self.in_features is not None:
            x = x.reshape(-1, self.in_features)
        for layer in self.layers:
            forward = getattr(layer, "numpy_forward", None)
            try:
                x = forward(x) if forward is not None else None
            except NotImplementedError:
                x = None
            if x is None:
                raise TypeError(f"predict_numpy: {layer!r} has no NumPy form")
            x = np.asarray(x, dtype=self.dtype)
        return x

    def numpy_forward(self, x: NDArray) -> NDArray:
        """:meth:`predict_numpy`, for a Sequential nested in another."""
        return self.predict_numpy(x)

    def serve(self, x: object) -> NDArray:
        """The model output for x, as serving computes it: in NumPy
        (:meth:`predict_numpy`, no compiled kernel loaded) for up to
        ``NUMPY_ROWS`` rows when every layer has a NumPy form, else by the
        kernels (:meth:`predict`). The two agree to float rounding."""
        rows = np.shape(x)[0] if np.ndim(x) == 2 else 1
        if rows <= NUMPY_ROWS and self.numpy_ready:
            return self.predict_numpy(x)
        return self.predict(x)

    @property
    def numpy_ready(self) -> bool:
        """True when every layer has a NumPy form (:meth:`predict_numpy`)."""
        return all(_has_numpy_form(layer) for layer in self.layers)

    def architecture(self) -> list[dict]:
        """The layer list as plain data, e.g. ``[{"type": "linear",
        "in_features": 2, "out_features": 8}, {"type": "leaky_relu",
        "negative_slope": 0.01}, ...]``: an activation by its registered name
        and hyperparameters."""
        arch = []
        for layer in self.layers:
            part = part_of(layer)
            if isinstance(layer, Linear) and uses_builtin_kernels(layer):
                arch.append(
                    {
                        "type": "linear",
                        "in_features": layer.in_features,
                        "out_features": layer.out_features,
                    }
                )
            elif part is not None and part.kind == "activation":
                arch.append({"type": part.name, **part.hyperparameters(layer)})
            else:
                raise TypeError(f"Sequential.architecture: cannot describe {layer!r}")
        return arch

    @classmethod
    def from_architecture(
        cls, arch: list[dict], dtype: DTypeLike | None = None, rng: object = None
    ) -> Sequential:
        """Build a freshly initialized model from :meth:`architecture` data."""
        gen = _rng(rng)
        layers: list[Layer] = []
        for i, spec in enumerate(arch):
            kind = spec.get("type") if isinstance(spec, dict) else None
            if kind == "linear":
                layers.append(
                    Linear(
                        spec.get("in_features"),
                        spec.get("out_features"),
                        rng=gen,
                        dtype=dtype,
                    )
                )
            elif kind in ACTIVATIONS:
                part = ACTIVATIONS[kind]
                extra = sorted(set(spec) - {"type", *part.hyper})
                if extra:
                    raise ValueError(
                        f"Sequential.from_architecture: layer {i} ({kind}) has "
                        f"unknown settings {extra}"
                    )
                layers.append(part.cls(**{k: spec[k] for k in part.hyper if k in spec}))
            else:
                raise ValueError(
                    f"Sequential.from_architecture: layer {i} is not a "
                    f"known layer: {spec!r}"
                )
        return cls(*layers)

    def astype(self, dtype: DTypeLike) -> Sequential:
        """A copy of the model with parameters cast to dtype."""
        copy = Sequential.from_architecture(self.architecture(), dtype=dtype, rng=0)
        copy.flat_data[...] = self.flat_data
        return copy


def mlp(
    widths: list[int],
    activation: str = "relu",
    *,
    init: str | None = None,
    rng: np.random.Generator | int | None = None,
    dtype: DTypeLike | None = None,
) -> Sequential:
    """A multilayer perceptron: Linear layers of the given widths with
    ``activation`` between them and none after the last.

    Parameters
    ----------
    widths : list of int, at least two: in_features, hidden widths...,
        out_features. ``mlp([2, 8, 1], "tanh")`` is Linear(2, 8), Tanh,
        Linear(8, 1).
    activation : a registered activation name (``fastbp.parts.ACTIVATIONS``):
        "relu", "leaky_relu", "gelu", "tanh" or "sigmoid", with its default
        hyperparameters
    init : {"he", "xavier", "pytorch"} or None: the activation's preference
        (He for the ReLU family and GELU, Xavier for tanh and sigmoid); see
        :class:`Linear`
    rng : numpy Generator, int seed or None; the layers draw from it in turn
    dtype : float32 (default) or float64
    """
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"mlp: activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}"
        )
    if len(widths) < 2:
        raise ValueError(f"mlp: needs at least two widths, got {list(widths)}")
    act_cls = ACTIVATIONS[activation].cls
    init = init or getattr(act_cls, "init", "he")
    gen = _rng(rng)
    layers: list[Layer] = []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        if i:
            layers.append(act_cls())
        layers.append(Linear(n_in, n_out, init=init, rng=gen, dtype=dtype))
    return Sequential(*layers)
