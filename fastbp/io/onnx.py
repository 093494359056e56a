"""ONNX export: a fastbp model and its preprocessing as one ONNX graph.

:func:`export_onnx` writes a model (a :class:`fastbp.Sequential` with its
model-file ``meta``, or a model file) as an ONNX file that onnxruntime, or any
ONNX runtime, serves without fastbp. The graph does what ``fastbp predict``
does, in the same order:

1. **Raw columns in.** With a column plan (``meta["plan"]``), one graph input
   per raw column the model uses, shape (N, 1): numeric columns as float64
   (NaN marks a missing cell), boolean, categorical and date columns as
   strings. Without a plan, one float64 input per name of
   ``meta["feature_names"]``. ``inputs="matrix"`` takes every numeric column
   as one float64 input ``X`` of shape (N, n_columns) instead.
2. **Encoding** (plan only), column by column, into the model inputs
   ``meta["feature_names"]``:

   - numeric: x, with a missing cell (NaN) replaced by ``fill``; plus, where
     ``indicator``, 1.0 for a missing cell else 0.0;
   - boolean: the text "true" / "false" in any case as 1.0 / 0.0; any other
     text counts as missing (``fill``, and the indicator);
   - categorical: one input per level, 1.0 where the text equals the level;
     a text among the plan's ``na_values`` is the level "(missing)"; the last
     input, "other", is 1.0 where the text is none of the levels (a rare
     level, an unseen one, or a missing cell when "(missing)" is no level);
   - datetime: the parts ``year``, ``month``, ``day_of_year`` (1 = 1
     January), ``day_of_week`` (Monday = 0) and ``hour`` of a date text
     ``YYYY-MM-DD``, optionally followed by ``T`` or a space and the hour
     (``2013-06-29``, ``2013-06-29 14:05:00``, ``2013-06-29T14:05:00Z``: the
     clock time as written, an offset after it ignored); any other text
     counts as missing (each part's ``fill``). Reading text needs opset 20
     (StringSplit, RegexFullMatch); below that such a column is refused;
   - identifier and text columns feed nothing and are no graph inputs.

3. **Standardization** x' = (x - mean) / std, in float64, then one rounding
   into the model's dtype (as ``fastbp predict``).
4. **The network**, in the model's dtype: Linear layers as MatMul and Add,
   and every registered activation (ReLU, LeakyReLU, GELU, sigmoid, tanh).
5. **Outputs**, in float64, named as skl2onnx names them:

   - classification: ``label`` (N,), the class label (int64 when every label
     is an integer, else the label text), and ``probabilities`` (N,
     n_classes): the softmax of the outputs; for one output p (two classes,
     thresholded at 0.5) the pair (1 - p, p), p clipped to [0, 1]; for a
     model trained with the squared error (``meta["loss"] == "mse"``) on
     several outputs, the outputs clipped to [0, 1] and scaled to sum to 1
     (uniform where every output is <= 0). The label is the class of the
     largest output, or of p > 0.5, exactly as ``fastbp predict`` decides.
   - regression: ``variable`` (N, n_outputs), the output in the target's
     units: ``output * std + mean`` with ``meta["target_scale"]``.

Needs the ``onnx`` package (``pip install 'fastbp[onnx]'``), imported only when
a graph is built: ``import fastbp.io`` does not import it. The graph builder
(:class:`Graph`, :func:`emit_network`, :func:`emit_classifier`,
:func:`onnx_labels`) is public so that :mod:`fastbp.sklearn`'s skl2onnx
converters build the same network.
"""

from __future__ import annotations

import itertools
import math
import os
import re
from collections.abc import Sequence
from numbers import Integral, Real

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .._files import atomic_file
from .._version import __version__
from ..nn.layers import (
    GELU,
    Layer,
    LeakyReLU,
    Linear,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
    uses_builtin_kernels,
)
from ..nn.parts import part_of

__all__ = [
    "export_onnx",
    "build_onnx",
    "Graph",
    "emit_network",
    "emit_classifier",
    "emit_plan",
    "plan_columns",
    "onnx_labels",
    "flat_layers",
    "DEFAULT_OPSET",
    "MIN_OPSET",
]

#: The ONNX opset written when none is asked for: the first with a Gelu
#: operator and the string operators that read date text.
DEFAULT_OPSET = 20
#: The oldest opset the export writes (Softmax on the last axis; Split and
#: ReduceSum taking their sizes and axes as inputs).
MIN_OPSET = 13
#: The ai.onnx.ml opset of LabelEncoder with string keys and float values.
ML_OPSET = 2
#: Opset from which ONNX has Gelu, StringSplit, StringConcat, RegexFullMatch.
STRING_OPSET = 20
#: The output names, as skl2onnx names a classifier's and a regressor's.
OUTPUTS = ("label", "probabilities", "variable")
#: The registered activations the export writes, by their registry name.
ACTIVATION_NAMES = ("relu", "leaky_relu", "gelu", "sigmoid", "tanh")
#: Datetime parts the export computes from date text.
DATE_PARTS = ("year", "month", "day_of_year", "day_of_week", "hour")
#: What a date text must look like (RE2, whole string): YYYY-MM-DD (month
#: 1-12 and day 1-31, one or two digits), then optionally "T" or " ", an hour
#: 0-23 of one or two digits, and anything that starts with a non-digit.
DATE_PATTERN = (
    r"\d{4}-(0?[1-9]|1[0-2])-(0?[1-9]|[12]\d|3[01])"
    r"([T ]([01]?\d|2[0-3])(\D.*)?)?"
)
_INPUT_KINDS = ("columns", "matrix")


def _onnx():
    """The onnx module, or ImportError saying which extra installs it."""
    try:
        import onnx
    except ImportError:
        raise ImportError(
            "ONNX export needs the onnx package: pip install 'fastbp[onnx]'"
        ) from None
    return onnx


# --- the graph builder -------------------------------------------------------


class Graph:
    """Nodes and constants of an ONNX graph being built, each value uniquely
    named.

    The emit functions below write through three methods only,
    :meth:`fresh`, :meth:`const` and :meth:`op` (and read ``opset``), so the
    skl2onnx converters in :mod:`fastbp.sklearn` pass an object with the same
    methods that writes into skl2onnx's container instead.

    Parameters
    ----------
    opset : int
        The ai.onnx opset the graph is for.
    """

    def __init__(self, opset: int) -> None:
        self.opset = opset
        self.nodes: list = []  # (op_type, inputs, outputs, domain, attrs)
        self.constants: list[tuple[str, NDArray]] = []
        self._taken: set[str] = set()
        self._count = itertools.count()

    def reserve(self, name: str) -> str:
        """Claim a name given from outside (a graph input or output)."""
        if name in self._taken:
            raise ValueError(f"export_onnx: the name {name!r} is used twice")
        self._taken.add(name)
        return name

    def fresh(self, hint: str) -> str:
        """A new value name, "fastbp/<hint>_<n>"."""
        while True:
            name = f"fastbp/{hint}_{next(self._count)}"
            if name not in self._taken:
                self._taken.add(name)
                return name

    def const(self, value: object, hint: str = "const") -> str:
        """The name of a new constant tensor holding value (a NumPy array or
        scalar; text as an object array of str)."""
        name = self.fresh(hint)
        self.constants.append((name, np.asarray(value)))
        return name

    def op(
        self,
        op_type: str,
        inputs: Sequence[str],
        *,
        outputs: int | Sequence[str] = 1,
        domain: str = "",
        **attrs: object,
    ) -> str | list[str]:
        """Add a node; returns its output name (a list for several outputs).

        outputs: how many (named afresh), or their names.
        """
        if isinstance(outputs, int):
            names = [self.fresh(op_type.lower()) for _ in range(outputs)]
        else:
            names = list(outputs)
        self.nodes.append((op_type, list(inputs), names, domain, attrs))
        return names[0] if len(names) == 1 else names


# --- the network -------------------------------------------------------------


def flat_layers(model: Sequential, where: str = "") -> list[Layer]:
    """The layers of model in order, nested Sequentials flattened; ValueError
    naming the first layer ONNX export cannot express (anything but a
    built-in Linear or a registered activation of :data:`ACTIVATION_NAMES`
    whose class keeps the built-in forward). A layer is named by its index,
    "1", or its path through nested models, "0.1"."""
    layers: list[Layer] = []
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Sequential):
            layers.extend(flat_layers(layer, f"{where}{i}."))
            continue
        part = part_of(layer)
        known = isinstance(layer, Linear) or (
            part is not None
            and part.kind == "activation"
            and part.name in ACTIVATION_NAMES
        )
        if not (known and uses_builtin_kernels(layer)):
            cls = type(layer)
            raise ValueError(
                f"export_onnx: cannot express layer {where}{i}, {cls.__name__} "
                f"({cls.__module__}.{cls.__qualname__}), in ONNX; the export "
                f"knows Linear and the activations {', '.join(ACTIVATION_NAMES)}"
            )
        layers.append(layer)
    return layers


def _tensor_type(dtype: DTypeLike) -> int:
    """The onnx TensorProto element type of a NumPy dtype (str and object:
    STRING, which onnx < 1.16 does not map)."""
    onnx = _onnx()
    dtype = np.dtype(dtype)
    if dtype.kind in "OU":
        return onnx.TensorProto.STRING
    return onnx.helper.np_dtype_to_tensor_dtype(dtype)


def emit_network(g: Graph, x: str, layers: Sequence[Layer], dtype: DTypeLike) -> str:
    """Write the layers (from :func:`flat_layers`) applied to x, a (N,
    in_features) tensor of dtype; returns the (N, out_features) output, of
    dtype.

    Linear: MatMul and Add, x @ W + b. ReLU, sigmoid, tanh: their operators.
    LeakyReLU: LeakyRelu (float32), or Where(x > 0, x, slope * x) (float64:
    onnxruntime has no float64 LeakyRelu). GELU: x Phi(x), the Gelu operator
    (opset >= 20, float32), else its erf form 0.5 x (1 + erf(x / sqrt 2)) with
    erf evaluated in float32 (onnxruntime has no float64 Erf).
    """
    dtype = np.dtype(dtype)
    for layer in layers:
        if isinstance(layer, Linear):
            w = g.const(layer.weight.data.astype(dtype), "weight")
            b = g.const(layer.bias.data.astype(dtype), "bias")
            # MatMul + Add, not Gemm: onnxruntime 1.17 fuses a float64 Gemm
            # and its activation into a FusedGemm it has no float64 kernel for.
            x = g.op("Add", [g.op("MatMul", [x, w]), b])
        elif isinstance(layer, ReLU):
            x = g.op("Relu", [x])
        elif isinstance(layer, Sigmoid):
            x = g.op("Sigmoid", [x])
        elif isinstance(layer, Tanh):
            x = g.op("Tanh", [x])
        elif isinstance(layer, LeakyReLU):
            slope = float(layer.negative_slope)
            if dtype == np.float32:
                x = g.op("LeakyRelu", [x], alpha=slope)
            else:
                positive = g.op("Greater", [x, g.const(dtype.type(0))])
                scaled = g.op("Mul", [x, g.const(dtype.type(slope))])
                x = g.op("Where", [positive, x, scaled])
        elif isinstance(layer, GELU):
            x = _gelu(g, x, dtype)
        else:  # flat_layers lets nothing else through
            raise AssertionError(f"emit_network: unexpected layer {layer!r}")
    return x


def _gelu(g: Graph, x: str, dtype: np.dtype) -> str:
    """GELU(x) = x Phi(x) = 0.5 x (1 + erf(x / sqrt(2)))."""
    if g.opset >= STRING_OPSET and dtype == np.float32:
        return g.op("Gelu", [x], approximate="none")
    u = g.op("Mul", [x, g.const(dtype.type(1 / math.sqrt(2)))])
    if dtype != np.float32:
        u = g.op("Cast", [u], to=_tensor_type(np.float32))
    erf = g.op("Erf", [u])
    if dtype != np.float32:
        erf = g.op("Cast", [erf], to=_tensor_type(dtype))
    phi = g.op("Add", [erf, g.const(dtype.type(1))])
    half = g.op("Mul", [x, g.const(dtype.type(0.5))])
    return g.op("Mul", [half, phi])


# --- outputs -----------------------------------------------------------------


def onnx_labels(values: Sequence[object]) -> NDArray:
    """Class labels as an ONNX label tensor holds them: int64 when every label
    is an integer (bool as 0/1, or a float of integral value, as skl2onnx
    does), else their text (an object array of str)."""
    values = list(values)

    def integral(v: object) -> bool:
        if isinstance(v, Integral):
            return True
        if isinstance(v, str):
            return False
        return isinstance(v, Real) and math.isfinite(v) and float(v).is_integer()

    if values and all(integral(v) for v in values):
        return np.array([int(v) for v in values], dtype=np.int64)
    return np.array([str(v) for v in values], dtype=object)


def emit_classifier(
    g: Graph,
    out: str,
    n_outputs: int,
    labels: NDArray,
    *,
    loss: str | None,
    dtype: DTypeLike,
    label_name: str,
    proba_name: str,
) -> None:
    """Write the label and probability outputs of a classifier's network
    output out, (N, n_outputs).

    Probabilities, of dtype, (N, len(labels)): one output p gives (1 - q, q),
    q = clip(p, 0, 1); several outputs give their softmax, or for loss "mse"
    the outputs clipped to [0, 1] divided by their sum (1 / n_classes each
    where the sum is 0). Labels, (N,): labels[i] for i the index of the
    largest output, or i = (p > 0.5) for one output.
    """
    z = g.op("Cast", [out], to=_tensor_type(dtype))
    dtype = np.dtype(dtype)
    if n_outputs == 1:
        zero, one = g.const(dtype.type(0)), g.const(dtype.type(1))
        above = g.op("Greater", [z, g.const(dtype.type(0.5))])
        index = g.op("Cast", [above], to=_tensor_type(np.int64))
        index = g.op("Reshape", [index, g.const(np.array([-1], np.int64))])
        q = g.op("Clip", [z, zero, one])
        g.op("Concat", [g.op("Sub", [one, q]), q], axis=1, outputs=[proba_name])
    else:
        index = g.op("ArgMax", [z], axis=1, keepdims=0)
        if loss == "mse":
            zero, one = g.const(dtype.type(0)), g.const(dtype.type(1))
            q = g.op("Clip", [z, zero, one])
            axes = g.const(np.array([1], np.int64))
            total = g.op("ReduceSum", [q, axes], keepdims=1)
            spread = g.op("Div", [q, total])
            uniform = g.const(dtype.type(1 / n_outputs))
            some = g.op("Greater", [total, zero])
            g.op("Where", [some, spread, uniform], outputs=[proba_name])
        else:
            g.op("Softmax", [z], axis=1, outputs=[proba_name])
    g.op("Gather", [g.const(labels, "classes"), index], axis=0, outputs=[label_name])


# --- meta --------------------------------------------------------------------


def _fail(message: str) -> ValueError:
    return ValueError(f"export_onnx: {message}")


def _numbers(values: object, n: int, what: str) -> NDArray:
    """values as a float64 array of n finite numbers, else ValueError."""
    ok = (
        isinstance(values, list | tuple | np.ndarray)
        and len(values) == n
        and all(isinstance(v, Real) and not isinstance(v, bool) for v in values)
    )
    array = np.asarray(values, dtype=np.float64) if ok else None
    if array is None or not np.all(np.isfinite(array)):
        raise _fail(f"{what} must be a list of {n} finite numbers, got {values!r}")
    return array


def _checked_meta(meta: dict | None, model: Sequential) -> dict:
    """meta with defaults filled in (a bare model: regression on x1, x2, ...)
    and what the export reads checked against model; ValueError otherwise."""
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise TypeError(f"export_onnx: meta must be a dict, got {type(meta).__name__}")
    n_in, n_out = model.in_features, model.out_features
    if n_in is None or n_out is None:
        raise _fail("the model has no Linear layer, so no known input width")
    full = {
        "feature_names": [f"x{j + 1}" for j in range(n_in)],
        "task": "regression",
        "classes": None,
        "standardizer": None,
        **meta,
    }
    names = full["feature_names"]
    if not isinstance(names, list | tuple) or not all(
        isinstance(s, str) for s in names
    ):
        raise _fail("meta 'feature_names' must be a list of strings")
    if len(names) != n_in:
        raise _fail(
            f"meta 'feature_names' has {len(names)} names, the model has {n_in} inputs"
        )
    task, classes = full["task"], full["classes"]
    if task == "classification":
        if (
            not isinstance(classes, list | tuple)
            or len(classes) < 2
            or len(set(map(str, classes))) != len(classes)
        ):
            raise _fail("meta 'classes' must list at least 2 distinct labels")
        if len(classes) != n_out and (n_out, len(classes)) != (1, 2):
            raise _fail(
                f"meta 'classes' has {len(classes)} labels, the model has "
                f"{n_out} outputs"
            )
    elif task != "regression":
        raise _fail(
            f"meta 'task' must be 'regression' or 'classification', got {task!r}"
        )
    scaler = full["standardizer"]
    if scaler is not None:
        if not isinstance(scaler, dict) or set(scaler) != {"mean", "std"}:
            raise _fail(
                "meta 'standardizer' must be null or {'mean': [...], 'std': [...]}"
            )
        mean = _numbers(scaler["mean"], n_in, "meta 'standardizer' 'mean'")
        std = _numbers(scaler["std"], n_in, "meta 'standardizer' 'std'")
        if not np.all(std > 0):
            raise _fail("meta 'standardizer' 'std' must be positive")
        full["standardizer"] = {"mean": mean, "std": std}
    target_scale = full.get("target_scale")
    if target_scale is not None:
        if task != "regression":
            raise _fail("meta 'target_scale' is for regression only")
        if not isinstance(target_scale, dict) or set(target_scale) != {"mean", "std"}:
            raise _fail("meta 'target_scale' must be null or {'mean': m, 'std': s}")
        pair = [target_scale["mean"], target_scale["std"]]
        m, s = _numbers(pair, 2, "meta 'target_scale' mean and std")
        if not s > 0:
            raise _fail("meta 'target_scale' 'std' must be positive")
        full["target_scale"] = (m, s)
    return full


#: An integer as str() writes one: "7" and "-7", not "07", "+7" or "7.0".
_INTEGER_TEXT = re.compile(r"-?(0|[1-9][0-9]{0,17})")


def _class_values(meta: dict) -> list:
    """The original label values: meta "class_values" (as the scikit-learn
    estimators store them) when it matches "classes"; else "classes", as
    integers when every one is an integer written as str() writes it (a
    column of integer labels read by fastbp train), else as text."""
    classes = list(meta["classes"])
    values = meta.get("class_values")
    if isinstance(values, list) and len(values) == len(classes):
        if [str(v) for v in values] == [str(c) for c in classes]:
            return values
    if all(isinstance(c, str) and _INTEGER_TEXT.fullmatch(c) for c in classes):
        return [int(c) for c in classes]
    return classes


# --- the column plan ---------------------------------------------------------


def plan_columns(meta: dict, opset: int) -> list[dict] | None:
    """The plan's columns, checked (version, roles, each column's inputs, and
    that they concatenate to feature_names), or None without a plan."""
    plan = meta.get("plan")
    if plan is None:
        return None
    if not isinstance(plan, dict) or plan.get("version") != 1:
        raise _fail("meta 'plan' must be null or an object with 'version': 1")
    na = plan.get("na_values", [])
    if not isinstance(na, list) or not all(isinstance(s, str) for s in na):
        raise _fail("meta 'plan' 'na_values' must be a list of strings")
    columns = plan.get("columns")
    if not isinstance(columns, list) or not all(isinstance(c, dict) for c in columns):
        raise _fail("meta 'plan' 'columns' must be a list of objects")
    encoded: list[str] = []
    for column in columns:
        name, role = column.get("name"), column.get("role")
        if not isinstance(name, str):
            raise _fail(f"a plan column has no name: {column!r}")
        inputs = column.get("inputs")
        if not isinstance(inputs, list) or not all(isinstance(s, str) for s in inputs):
            raise _fail(f"column {name!r}: 'inputs' must be a list of strings")
        expected = _expected_width(column, name, role, opset)
        if len(inputs) != expected:
            raise _fail(
                f"column {name!r} ({role}) lists {len(inputs)} inputs, its "
                f"settings make {expected}"
            )
        encoded.extend(inputs)
    if encoded != list(meta["feature_names"]):
        raise _fail("the plan's column inputs, in order, are not meta 'feature_names'")
    return columns


def _expected_width(column: dict, name: str, role: object, opset: int) -> int:
    """How many model inputs a plan column makes; ValueError naming the column
    for a role or setting the export cannot write."""
    indicator = column.get("indicator", False)
    if role in ("numeric", "boolean"):
        fill = column.get("fill")
        if isinstance(fill, bool) or not isinstance(fill, Real):
            raise _fail(f"column {name!r}: 'fill' must be a number, got {fill!r}")
        if not math.isfinite(fill):
            raise _fail(f"column {name!r}: 'fill' must be finite, got {fill!r}")
        return 1 + bool(indicator)
    if role == "categorical":
        levels = column.get("levels")
        if (
            not isinstance(levels, list)
            or not all(isinstance(s, str) for s in levels)
            or len(set(levels)) != len(levels)
        ):
            raise _fail(f"column {name!r}: 'levels' must be distinct strings")
        return len(levels) + 1
    if role == "datetime":
        parts = column.get("parts")
        if not isinstance(parts, list) or not parts:
            raise _fail(f"column {name!r}: 'parts' must be a list of date parts")
        unknown = [p for p in parts if p not in DATE_PARTS]
        if unknown:
            raise _fail(
                f"column {name!r}: cannot compute the date part {unknown[0]!r} in "
                f"ONNX (known: {', '.join(DATE_PARTS)})"
            )
        _numbers(column.get("fill"), len(parts), f"column {name!r}: 'fill'")
        if opset < STRING_OPSET:
            raise _fail(
                f"column {name!r}: reading date text needs ONNX opset "
                f"{STRING_OPSET} or later (StringSplit), the export asked for "
                f"opset {opset}"
            )
        return len(parts) + bool(indicator)
    if role in ("identifier", "text"):
        return 0
    raise _fail(f"column {name!r}: unknown role {role!r}")


def _case_variants(word: str) -> list[str]:
    """Every spelling of word in upper and lower case letters."""
    pairs = [(c.lower(), c.upper()) for c in word]
    return ["".join(p) for p in itertools.product(*pairs)]


def _missing_to_fill(g: Graph, x: str, fill: float, indicator: bool) -> list[str]:
    """float64 x (N, 1), NaN where missing: [where(missing, fill, x)], plus
    the indicator 1.0/0.0 of missing where asked."""
    missing = g.op("IsNaN", [x])
    value = g.op("Where", [missing, g.const(np.float64(fill), "fill"), x])
    if not indicator:
        return [value]
    return [value, g.op("Cast", [missing], to=_tensor_type(np.float64))]


def _encode_categorical(g: Graph, x: str, column: dict, na_values: list[str]) -> str:
    """One-hot (N, n_levels + 1) float64 of the text x: levels then other."""
    levels = column["levels"]
    k = len(levels)
    index = {level: i for i, level in enumerate(levels)}
    missing = index.get("(missing)", k)
    for value in na_values:
        index.setdefault(value, missing)
    code = g.op(
        "LabelEncoder",
        [x],
        domain="ai.onnx.ml",
        keys_strings=list(index),
        values_int64s=list(index.values()),
        default_int64=k,
    )
    hot = g.op("Equal", [code, g.const(np.arange(k + 1, dtype=np.int64), "levels")])
    return g.op("Cast", [hot], to=_tensor_type(np.float64))


def _encode_boolean(g: Graph, x: str, column: dict) -> list[str]:
    """ "true"/"false" text (any case) as 1.0/0.0, anything else missing."""
    true, false = _case_variants("true"), _case_variants("false")
    value = g.op(
        "LabelEncoder",
        [x],
        domain="ai.onnx.ml",
        keys_strings=true + false,
        values_floats=[1.0] * len(true) + [0.0] * len(false),
        default_float=float("nan"),
    )
    value = g.op("Cast", [value], to=_tensor_type(np.float64))
    return _missing_to_fill(g, value, column["fill"], column.get("indicator", False))


def _text_part(g: Graph, text: str, delimiter: str, count: int) -> list[str]:
    """text (N, 1) split at the first count - 1 delimiters into count pieces,
    each (N, 1). A text with fewer delimiters gets empty pieces: count - 1
    delimiters are appended first, so StringSplit always makes count."""
    padding = g.const(np.array(delimiter * (count - 1), dtype=object), "padding")
    padded = g.op("StringConcat", [text, padding])
    pieces, _ = g.op(
        "StringSplit", [padded], outputs=2, delimiter=delimiter, maxsplit=count - 1
    )
    return [
        g.op("Gather", [pieces, g.const(np.int64(i))], axis=2) for i in range(count)
    ]


def _to_int(g: Graph, text: str) -> str:
    """The integer a text of digits starts with (0 for an empty text): Cast
    from "0" + text, which reads the leading digits (and stops at the first
    other character)."""
    text = g.op("StringConcat", [g.const(np.array("0", dtype=object)), text])
    return g.op("Cast", [text], to=_tensor_type(np.int64))


class _Int:
    """An int64 tensor of a graph with Python's arithmetic operators, so that
    one formula (:func:`_days`) is written for tensors and for ints alike.
    ``//`` and ``%`` are ONNX Div and Mod: floor division and remainder for
    the non-negative numbers they are used on here."""

    def __init__(self, g: Graph, name: str) -> None:
        self.g, self.name = g, name

    def _op(self, op_type: str, a: object, b: object) -> _Int:
        names = [
            v.name if isinstance(v, _Int) else self.g.const(np.int64(v)) for v in (a, b)
        ]
        return _Int(self.g, self.g.op(op_type, names))

    def __add__(self, other: object) -> _Int:
        return self._op("Add", self, other)

    def __radd__(self, other: object) -> _Int:
        return self._op("Add", other, self)

    def __sub__(self, other: object) -> _Int:
        return self._op("Sub", self, other)

    def __rsub__(self, other: object) -> _Int:
        return self._op("Sub", other, self)

    def __mul__(self, other: object) -> _Int:
        return self._op("Mul", self, other)

    def __rmul__(self, other: object) -> _Int:
        return self._op("Mul", other, self)

    def __floordiv__(self, other: object) -> _Int:
        return self._op("Div", self, other)

    def __mod__(self, other: object) -> _Int:
        return self._op("Mod", self, other)


def _days(y, m, d, early):
    """Days from a fixed origin to the date (y, m, d) of the proleptic
    Gregorian calendar: H. Hinnant's days_from_civil, on ints or
    :class:`_Int` tensors. early is 1 for January and February (counted at
    the end of the year before), else 0. Years are shifted by 400 (which
    keeps weekdays) so that every division is of non-negative numbers."""
    y = y + 400 - early
    era = y // 400
    yoe = y - era * 400  # year of the era, 0..399
    mp = m - 3 + early * 12  # months since March, 0..11
    doy = (mp * 153 + 2) // 5 + d - 1  # day of the year from 1 March
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy


def _encode_datetime(g: Graph, x: str, column: dict) -> list[str]:
    """The date parts (each (N, 1) float64) of date text x; text that is no
    date (:data:`DATE_PATTERN`) is missing: each part's fill."""
    valid = g.op("RegexFullMatch", [x], pattern=DATE_PATTERN)
    missing = g.op("Not", [valid])
    year, month, rest = _text_part(g, x, "-", 3)
    day, after_t = _text_part(g, rest, "T", 2)
    day, after_space = _text_part(g, day, " ", 2)
    clock = g.op("StringConcat", [after_t, after_space])  # one of them is empty
    hour = _text_part(g, clock, ":", 2)[0]
    y, m, d, h = (_Int(g, _to_int(g, t)) for t in (year, month, day, hour))
    before_march = g.op("Less", [m.name, g.const(np.int64(3))])
    early = _Int(g, g.op("Cast", [before_march], to=_tensor_type(np.int64)))
    days = _days(y, m, d, early)
    # 1970-01-01 was a Thursday: 3, counting Monday as 0.
    to_weekday = (3 - _days(1970, 1, 1, 1)) % 7
    values = {
        "year": y,
        "month": m,
        "day_of_year": days - _days(y, 1, 1, 1) + 1,
        "day_of_week": (days + to_weekday) % 7,
        "hour": h,
    }
    out = []
    for part, fill in zip(column["parts"], column["fill"], strict=True):
        value = g.op("Cast", [values[part].name], to=_tensor_type(np.float64))
        out.append(g.op("Where", [missing, g.const(np.float64(fill), "fill"), value]))
    if column.get("indicator", False):
        out.append(g.op("Cast", [missing], to=_tensor_type(np.float64)))
    return out


# --- building and writing ----------------------------------------------------


def emit_plan(
    g: Graph, columns: Sequence[dict], values: Sequence[str], na_values: Sequence[str]
) -> str:
    """The model inputs, float64 (N, n_inputs) before standardizing, of the
    used plan columns (JSON form, as :func:`plan_columns` checks them),
    each read from its graph value in ``values``: (N, 1) float64 for a
    numeric column, text for the others."""
    parts = []
    for c, x in zip(columns, values, strict=True):
        role = c["role"]
        if c.get("bare"):
            parts.append(x)
        elif role == "numeric":
            parts.extend(_missing_to_fill(g, x, c["fill"], c.get("indicator", False)))
        elif role == "boolean":
            parts.extend(_encode_boolean(g, x, c))
        elif role == "categorical":
            parts.append(_encode_categorical(g, x, c, list(na_values)))
        else:
            parts.extend(_encode_datetime(g, x, c))
    return parts[0] if len(parts) == 1 else g.op("Concat", parts, axis=1)


def build_onnx(
    model: Sequential,
    meta: dict | None = None,
    *,
    opset: int = DEFAULT_OPSET,
    inputs: str = "columns",
):
    """The ONNX graph of model with meta, as an ``onnx.ModelProto``, checked
    with ``onnx.checker.check_model(full_check=True)``.

    Parameters
    ----------
    model : Sequential
        Linear layers and registered activations (nested Sequentials too).
    meta : dict or None
        The model file's ``meta`` (:mod:`fastbp.data.problem`'s schema, with
        the optional ``plan`` and ``target_scale``); None: a regression on
        inputs x1, x2, ...
    opset : int
        The ai.onnx opset, :data:`MIN_OPSET` or later. Below 20 GELU is
        written in its erf form and date columns are refused.
    inputs : {"columns", "matrix"}
        "columns": one graph input per raw column, (N, 1). "matrix": one
        float64 input "X", (N, n_columns), the numeric columns in the plan's
        (or feature_names') order; ValueError if a used column is not numeric.

    Raises
    ------
    TypeError
        model is not a Sequential, or meta not a dict.
    ValueError
        A layer ONNX export cannot express (naming it), meta that does not fit
        the model, a plan column the export cannot write (naming it), a column
        named like an output, or a bad opset or inputs.
    ImportError
        The onnx package is not installed.
    """
    onnx = _onnx()
    _check_export_args(onnx, model, opset, inputs)
    layers = flat_layers(model)
    meta = _checked_meta(meta, model)
    columns = plan_columns(meta, int(opset))
    if columns is None:
        columns = [
            {"name": n, "role": "numeric", "inputs": [n], "bare": True}
            for n in meta["feature_names"]
        ]
    used = [c for c in columns if c["inputs"]]
    g = Graph(int(opset))
    outputs = OUTPUTS[:2] if meta["task"] == "classification" else OUTPUTS[2:]
    for name in outputs:
        g.reserve(name)
    graph_inputs, values = _graph_inputs(onnx, g, used, inputs, outputs)
    na_values = (meta.get("plan") or {}).get("na_values", [])
    x = emit_plan(g, used, values, na_values)
    scaler = meta["standardizer"]
    if scaler is not None:
        x = g.op("Sub", [x, g.const(scaler["mean"], "mean")])
        x = g.op("Div", [x, g.const(scaler["std"], "std")])
    dtype = model.dtype or np.dtype(np.float32)
    x = g.op("Cast", [x], to=_tensor_type(dtype))
    out = emit_network(g, x, layers, dtype)
    graph_outputs = _graph_outputs(onnx, g, out, model.out_features, meta)
    return _model_proto(onnx, g, graph_inputs, graph_outputs, int(opset), meta)


def _check_export_args(onnx, model, opset, inputs) -> None:
    """TypeError or ValueError for build_onnx's model, opset and inputs."""
    if not isinstance(model, Sequential):
        raise TypeError(
            "export_onnx: model must be a fastbp Sequential, got "
            f"{type(model).__name__}"
        )
    if isinstance(opset, bool) or not isinstance(opset, Integral) or opset < MIN_OPSET:
        raise _fail(f"opset must be an integer >= {MIN_OPSET}, got {opset!r}")
    newest = onnx.defs.onnx_opset_version()
    if opset > newest:
        raise _fail(f"opset {opset} is newer than this onnx package's {newest}")
    if inputs not in _INPUT_KINDS:
        raise _fail(f"inputs must be one of {_INPUT_KINDS}, got {inputs!r}")


def _graph_inputs(onnx, g: Graph, used: list[dict], inputs: str, outputs) -> tuple:
    """(graph inputs, the value name of each used column): one float64 matrix
    "X" split into columns, or one (N, 1) input per column."""
    helper, f64 = onnx.helper, _tensor_type(np.float64)
    if inputs == "matrix":
        text = [c for c in used if c["role"] != "numeric"]
        if text:
            raise _fail(
                f"inputs='matrix' takes numeric columns only; column "
                f"{text[0]['name']!r} is {text[0]['role']}"
            )
        g.reserve("X")
        graph_inputs = [helper.make_tensor_value_info("X", f64, ["N", len(used)])]
        if len(used) == 1:
            return graph_inputs, ["X"]
        sizes = g.const(np.ones(len(used), np.int64), "split")
        return graph_inputs, g.op("Split", ["X", sizes], axis=1, outputs=len(used))
    graph_inputs, values = [], []
    for c in used:
        if c["name"] in outputs:
            raise _fail(
                f"column {c['name']!r} has the name of an ONNX output "
                f"({', '.join(outputs)}); rename the column"
            )
        g.reserve(c["name"])
        kind = f64 if c["role"] == "numeric" else _tensor_type(object)
        graph_inputs.append(helper.make_tensor_value_info(c["name"], kind, ["N", 1]))
        values.append(c["name"])
    return graph_inputs, values


def _graph_outputs(onnx, g: Graph, out: str, n_out: int, meta: dict) -> list:
    """The outputs from the network's output ``out``: "label" and
    "probabilities" (classification) or "variable" in the target's units."""
    helper, f64 = onnx.helper, _tensor_type(np.float64)
    if meta["task"] == "classification":
        labels = onnx_labels(_class_values(meta))
        emit_classifier(
            g,
            out,
            n_out,
            labels,
            loss=meta.get("loss"),
            dtype=np.float64,
            label_name="label",
            proba_name="probabilities",
        )
        return [
            helper.make_tensor_value_info("label", _tensor_type(labels.dtype), ["N"]),
            helper.make_tensor_value_info("probabilities", f64, ["N", len(labels)]),
        ]
    y = g.op("Cast", [out], to=f64)
    if meta.get("target_scale") is not None:
        m, s = meta["target_scale"]
        y = g.op("Mul", [y, g.const(np.float64(s), "target_std")])
        y = g.op("Add", [y, g.const(np.float64(m), "target_mean")])
    g.op("Identity", [y], outputs=["variable"])
    return [helper.make_tensor_value_info("variable", f64, ["N", n_out])]


def _model_proto(onnx, g: Graph, graph_inputs, graph_outputs, opset: int, meta):
    """The checked ModelProto of graph g."""
    helper = onnx.helper
    nodes = [
        helper.make_node(op, ins, outs, name=outs[0], domain=domain or None, **attrs)
        for op, ins, outs, domain, attrs in g.nodes
    ]
    initializers = [onnx.numpy_helper.from_array(v, name) for name, v in g.constants]
    graph = helper.make_graph(
        nodes, "fastbp", graph_inputs, graph_outputs, initializer=initializers
    )
    opsets = [helper.make_opsetid("", opset)]
    if any(domain == "ai.onnx.ml" for _, _, _, domain, _ in g.nodes):
        opsets.append(helper.make_opsetid("ai.onnx.ml", ML_OPSET))
    task, target = meta["task"], str(meta.get("target_name", "target"))
    proto = helper.make_model(
        graph,
        opset_imports=opsets,
        producer_name="fastbp",
        producer_version=__version__,
        doc_string=f"fastbp {task} model, target {target!r}",
    )
    # The IR version of this opset, not the onnx package's newest: runtimes
    # that read the opset then read the file.
    proto.ir_version = _ir_version(onnx, opset)
    helper.set_model_props(proto, {"fastbp_task": task, "fastbp_target_name": target})
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _ir_version(onnx, opset: int) -> int:
    """The IR version onnx released together with opset (at least 7)."""
    for _release, ir, ai, *_ in onnx.helper.VERSION_TABLE:
        if ai >= opset:
            return max(ir, 7)
    return onnx.IR_VERSION


def export_onnx(
    model_or_path: Sequential | str | os.PathLike,
    path: str | os.PathLike,
    *,
    meta: dict | None = None,
    opset: int = DEFAULT_OPSET,
    inputs: str = "columns",
):
    """Write a model with its preprocessing to path as an ONNX file,
    atomically; returns the ``onnx.ModelProto`` written.

    Parameters
    ----------
    model_or_path : Sequential, or str or path-like
        A model (with ``meta``), or a fastbp model file (its own meta; pass
        no ``meta``).
    path : str or path-like
        The ONNX file to write; replaced only once the new one is complete.
    meta, opset, inputs
        As :func:`build_onnx`.

    Raises
    ------
    ModelFileError
        model_or_path is a file that cannot be loaded.
    TypeError, ValueError, ImportError
        As :func:`build_onnx`; nothing is written.
    OSError
        path cannot be written; an existing file is left as it was.

    Examples
    --------
    >>> import fastbp                                  # doctest: +SKIP
    >>> fastbp.export_onnx("model.npz", "model.onnx")  # doctest: +SKIP
    """
    if isinstance(model_or_path, str | os.PathLike):
        if meta is not None:
            raise TypeError(
                "export_onnx: a model file holds its own meta; pass meta only "
                "with a Sequential"
            )
        from .model import load_model

        model, meta = load_model(model_or_path)
    else:
        model = model_or_path
    proto = build_onnx(model, meta, opset=opset, inputs=inputs)
    data = proto.SerializeToString()
    with atomic_file(path) as f:
        f.write(data)
    return proto
