"""The thin layer API: Parameter, Linear, ReLU, Sigmoid, Tanh and Sequential.

A layer owns its parameters and preallocated buffers, checks what it is given
and calls kernels; no arithmetic on arrays happens here. Buffers are sized for
the current batch and reallocated only when the batch size changes, so a
training step allocates nothing.

``forward`` returns the layer's own output buffer, which the next ``forward``
overwrites: copy it to keep it (``Sequential.predict`` returns a copy).
``backward(dY)`` takes the gradient of the loss with respect to the layer's
output, stores parameter gradients in ``param.grad`` (overwriting them, as the
classic from-scratch Affine layer does) and returns the gradient with respect
to the layer's input.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numpy.typing import DTypeLike, NDArray

from . import kernels as K
from ._validate import as_dtype, check_array, check_features, positive_int
from .kernels.activations import ACT_IDENTITY, ACT_RELU, ACT_SIGMOID, ACT_TANH

__all__ = [
    "Parameter",
    "Layer",
    "Linear",
    "ReLU",
    "Sigmoid",
    "Tanh",
    "Sequential",
    "mlp",
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
    """A trainable array ``data`` and its gradient ``grad`` (same shape, dtype)."""

    __slots__ = ("data", "grad", "name")

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
    ``parameters()``."""

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
        check_array(dY, repr(self), "dY", dtype=out.dtype, ndim=out.ndim)
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


class Linear(Layer):
    """Fully connected layer: Y = X @ W + b.

    Parameters
    ----------
    in_features, out_features : int
    init : {"he", "xavier"}
        "he": W ~ N(0, 2 / in_features), for ReLU networks.
        "xavier": W ~ U(-a, a), a = sqrt(6 / (in_features + out_features)), for
        tanh and sigmoid networks. The bias starts at zero.
    rng : numpy Generator, int seed or None
    dtype : float32 (default) or float64

    Shape
    -----
    input (n_samples, in_features) -> output (n_samples, out_features).
    ``weight`` is (in_features, out_features), the transpose of PyTorch's
    layout, so the forward pass is a plain X @ W.

    Notes
    -----
    backward: dW = X^T dY, db = sum of dY over rows, dX = dY W^T. The input
    gradient is skipped when ``needs_input_grad`` is False (Sequential sets it
    for its first layer, whose input is the data).

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
        if init not in ("he", "xavier"):
            raise ValueError(f"{who}: init must be 'he' or 'xavier', got {init!r}")
        self.init = init
        shape = (self.in_features, self.out_features)
        gen = _rng(rng)
        if init == "he":
            w = gen.normal(0.0, np.sqrt(2.0 / self.in_features), shape)
        else:
            limit = np.sqrt(6.0 / (self.in_features + self.out_features))
            w = gen.uniform(-limit, limit, shape)
        self.weight = Parameter(w.astype(self.dtype), "weight")
        self.bias = Parameter(np.zeros(self.out_features, self.dtype), "bias")
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

    def _forward(self, x: NDArray, act: int = ACT_IDENTITY) -> NDArray:
        Y = self._buffer("_Y", (x.shape[0], self.out_features), self.dtype)
        if act == ACT_RELU:
            K.dense_relu_forward(x, self.weight.data, self.bias.data, Y)
        else:
            K.dense_forward(x, self.weight.data, self.bias.data, Y)
        self._X = x
        return Y

    def backward(self, dY: NDArray) -> NDArray | None:
        return self._backward(self._check_backward(dY, self.__dict__.get("_Y")))

    def _backward(self, dY: NDArray) -> NDArray | None:
        X, W = self._X, self.weight
        if not self.needs_input_grad:
            K.dense_backward_params(X, dY, W.grad, self.bias.grad)
            return None
        dX = self._buffer("_dX", X.shape, self.dtype)
        K.dense_backward(X, W.data, dY, W.grad, self.bias.grad, dX)
        return dX


class _Activation(Layer):
    """An element-wise activation: keeps its output Y for the backward pass."""

    code = ACT_IDENTITY

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def forward(self, x: NDArray) -> NDArray:
        dtype = self.dtype or (x.dtype if isinstance(x, np.ndarray) else None)
        check_array(x, repr(self), "input", dtype=as_dtype(dtype, repr(self)), ndim=2)
        return self._forward(x)

    def _forward(self, x: NDArray) -> NDArray:
        Y = self._buffer("_Y", x.shape, x.dtype)
        self._forward_kernel(x, Y)
        return Y

    def backward(self, dY: NDArray) -> NDArray:
        return self._backward(self._check_backward(dY, self.__dict__.get("_Y")))

    def _backward(self, dY: NDArray) -> NDArray:
        dX = self._buffer("_dX", dY.shape, dY.dtype)
        self._backward_kernel(self._Y, dY, dX)
        return dX


class ReLU(_Activation):
    """Y = max(0, X); backward passes dY only where X > 0 (the mask is Y > 0)."""

    code = ACT_RELU
    _forward_kernel = staticmethod(K.relu_forward)
    _backward_kernel = staticmethod(K.relu_backward)


class Sigmoid(_Activation):
    """Y = 1 / (1 + exp(-X)); backward dX = dY * Y * (1 - Y)."""

    code = ACT_SIGMOID
    _forward_kernel = staticmethod(K.sigmoid_forward)
    _backward_kernel = staticmethod(K.sigmoid_backward)


class Tanh(_Activation):
    """Y = tanh(X); backward dX = dY * (1 - Y**2)."""

    code = ACT_TANH
    _forward_kernel = staticmethod(K.tanh_forward)
    _backward_kernel = staticmethod(K.tanh_backward)


ACTIVATIONS = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid}
_ACTIVATION_NAMES = {cls: name for name, cls in ACTIVATIONS.items()}


class Sequential(Layer):
    """Layers run in order: forward first to last, backward last to first.

    All parameters are gathered into one contiguous vector per model
    (``flat_data`` and ``flat_grad``); each ``Parameter.data``/``.grad`` becomes
    a view into it, so an optimizer updates the whole model with one kernel call.
    Create optimizers after the model, as in PyTorch.

    A Linear followed by a ReLU runs as one fused kernel (bias add and ReLU in
    one pass over the output); the ReLU then only computes the backward mask.

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
        self.layers = list(layers)
        linears = [lay for lay in self.layers if isinstance(lay, Linear)]
        dtypes = {lay.dtype for lay in linears}
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
        if isinstance(self.layers[0], Linear):
            self.layers[0].needs_input_grad = False
        for layer in self.layers:
            if isinstance(layer, _Activation):
                layer.dtype = self.dtype
        self._fuse = [
            isinstance(layer, Linear)
            and i + 1 < len(self.layers)
            and type(self.layers[i + 1]) is ReLU
            for i, layer in enumerate(self.layers)
        ]
        self._pack()

    def _pack(self) -> None:
        params = self.parameters()
        dtype = self.dtype or np.dtype(np.float32)
        total = sum(p.data.size for p in params)
        self.flat_data = np.empty(total, dtype)
        self.flat_grad = np.zeros(total, dtype)
        offset = 0
        for p in params:
            end = offset + p.data.size
            data = self.flat_data[offset:end].reshape(p.data.shape)
            data[...] = p.data
            p.data = data
            p.grad = self.flat_grad[offset:end].reshape(p.data.shape)
            offset = end

    def __repr__(self) -> str:
        inner = "".join(f"\n  ({i}): {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential({inner}\n)"

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, index: int) -> Layer:
        return self.layers[index]

    @property
    def in_features(self) -> int | None:
        first = next((lay for lay in self.layers if isinstance(lay, Linear)), None)
        return first.in_features if first else None

    @property
    def out_features(self) -> int | None:
        last = next(
            (lay for lay in reversed(self.layers) if isinstance(lay, Linear)), None
        )
        return last.out_features if last else None

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """("index.name", Parameter) pairs, as PyTorch names them ("0.weight")."""
        for i, layer in enumerate(self.layers):
            for p in layer.parameters():
                yield f"{i}.{p.name}", p

    def parameters(self) -> list[Parameter]:
        return [p for layer in self.layers for p in layer.parameters()]

    def forward(self, x: NDArray) -> NDArray:
        check_array(x, "Sequential", "input", dtype=self.dtype, ndim=2)
        if self.in_features is not None:
            check_features(
                x,
                f"Sequential (first layer {self.layers[0]!r})",
                "input",
                self.in_features,
            )
        return self._forward(x)

    def _forward(self, x: NDArray) -> NDArray:
        fuse = self._fuse
        for i, layer in enumerate(self.layers):
            if fuse[i]:
                x = layer._forward(x, ACT_RELU)
            elif i and fuse[i - 1]:
                layer._Y = x  # the fused Linear already applied this ReLU
            else:
                x = layer._forward(x)
        return x

    def backward(self, dY: NDArray) -> NDArray | None:
        """Backpropagate dY (gradient at the output) through every layer.

        Returns the gradient with respect to the model input, or None when the
        first layer is a Linear (it skips that product).
        """
        last = self.layers[-1]
        return self._backward(last._check_backward(dY, last.__dict__.get("_Y")))

    def _backward(self, dY: NDArray) -> NDArray | None:
        for layer in reversed(self.layers):
            dY = layer._backward(dY)
        return dY

    def predict(self, x: object) -> NDArray:
        """The model output for x (array-like, (n_samples, in_features)), a copy."""
        x = np.ascontiguousarray(x, dtype=self.dtype)
        if x.ndim == 1 and self.in_features is not None:
            x = x.reshape(-1, self.in_features)
        return self.forward(x).copy()

    def architecture(self) -> list[dict]:
        """The layer list as plain data, e.g. ``[{"type": "linear",
        "in_features": 2, "out_features": 8}, {"type": "tanh"}, ...]``."""
        arch = []
        for layer in self.layers:
            if isinstance(layer, Linear):
                arch.append(
                    {
                        "type": "linear",
                        "in_features": layer.in_features,
                        "out_features": layer.out_features,
                    }
                )
            elif isinstance(layer, _Activation):
                arch.append({"type": _ACTIVATION_NAMES[type(layer)]})
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
                layers.append(ACTIVATIONS[kind]())
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
    activation : {"relu", "tanh", "sigmoid"}
    init : {"he", "xavier"} or None: He for ReLU, Xavier otherwise
    rng : numpy Generator, int seed or None; the layers draw from it in turn
    dtype : float32 (default) or float64
    """
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"mlp: activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}"
        )
    if len(widths) < 2:
        raise ValueError(f"mlp: needs at least two widths, got {list(widths)}")
    init = init or ("he" if activation == "relu" else "xavier")
    gen = _rng(rng)
    layers: list[Layer] = []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        if i:
            layers.append(ACTIVATIONS[activation]())
        layers.append(Linear(n_in, n_out, init=init, rng=gen, dtype=dtype))
    return Sequential(*layers)
