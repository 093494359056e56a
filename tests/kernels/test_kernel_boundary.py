"""Argument checks of the public kernels (``fastbp.kernels``, see kernels/api.py).

Every public kernel gets one valid call in ``CASES`` (its arguments and the
plain-NumPy reference result); each test derives bad calls from it: a wrong
dtype, a non-array, a wrong shape, a Fortran-ordered, strided or read-only
output, an output sharing memory with another argument, a bad scalar. Each bad
call must raise a plain TypeError or ValueError whose one-line message names the
kernel and the argument: never a Numba error, a crash or a silently wrong
result. Non-contiguous inputs are accepted and give the reference result, as do
the documented in-place calls (``relu_forward(X, X)``).
"""

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import reference as ref
from conftest import TOL

from fastbp import kernels
from fastbp.kernels import activations, dense, losses, optim, util

F64 = np.dtype(np.float64)


@dataclass(frozen=True)
class Case:
    """A valid call: make(rng, dtype) -> {argument: value} in signature order;
    expect(args) -> {output argument or "return": reference value}."""

    make: Callable[[np.random.Generator, np.dtype], dict]
    expect: Callable[[dict], dict]


def _randn(rng, shape, dtype, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(dtype)


def _nans(shape, dtype):
    return np.full(shape, np.nan, dtype)


def _dense_fwd(rng, dt):
    n, k, m = 3, 5, 4
    return dict(
        X=_randn(rng, (n, k), dt),
        W=_randn(rng, (k, m), dt),
        b=_randn(rng, m, dt),
        Y=_nans((n, m), dt),
    )


def _dense_bwd(rng, dt, with_dx=True):
    n, k, m = 3, 5, 4
    args = dict(X=_randn(rng, (n, k), dt))
    if with_dx:
        args["W"] = _randn(rng, (k, m), dt)
    args.update(dY=_randn(rng, (n, m), dt), dW=_nans((k, m), dt), db=_nans(m, dt))
    if with_dx:
        args["dX"] = _nans((n, k), dt)
    return args


def _unary(first="X", out="Y"):
    return lambda rng, dt: {first: _randn(rng, (3, 4), dt, 3.0), out: _nans((3, 4), dt)}


def _binary(first):
    return lambda rng, dt: {
        first: _randn(rng, (3, 4), dt, 3.0),
        "dY": _randn(rng, (3, 4), dt),
        "dX": _nans((3, 4), dt),
    }


def _with(make, **scalars):
    return lambda rng, dt: {**make(rng, dt), **scalars}


def _mse(rng, dt, backward=False, mean=True):
    args = dict(Y=_randn(rng, (3, 4), dt), T=_randn(rng, (3, 4), dt))
    if mean is not None:
        args["mean"] = mean
    if backward:
        args["dY"] = _nans((3, 4), dt)
    return args


def _bce(rng, dt):
    T = (rng.random((3, 4)) > 0.5).astype(dt)
    return dict(Z=_randn(rng, (3, 4), dt, 3.0), T=T, dZ=_nans((3, 4), dt))


def _logits(rng, dt, out=None):
    args = dict(Z=_randn(rng, (3, 5), dt, 3.0), labels=np.array([0, 4, 2]))
    if out:
        args[out] = _nans((3, 5), dt)
    return args


def _sgd(rng, dt):
    p, g, b = (_randn(rng, (3, 4), dt) for _ in range(3))
    return dict(
        param=p, grad=g, buf=b, lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=True
    )


def _adam(rng, dt):
    p, g = _randn(rng, (3, 4), dt), _randn(rng, (3, 4), dt)
    m, v = _randn(rng, (3, 4), dt, 0.1), np.abs(_randn(rng, (3, 4), dt, 0.1))
    hyper = dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01, step=3)
    return dict(param=p, grad=g, m=m, v=v, **hyper)


def _sgd_expect(a):
    p, b = ref.sgd_update(**a)
    return {"param": p, "buf": b}


def _adam_expect(a):
    p, m, v = ref.adam_update(**a)
    return {"param": p, "m": m, "v": v}


CASES = {
    "dense_forward": Case(
        _dense_fwd, lambda a: {"Y": ref.dense_forward(a["X"], a["W"], a["b"])}
    ),
    "dense_relu_forward": Case(
        _dense_fwd, lambda a: {"Y": ref.dense_relu_forward(a["X"], a["W"], a["b"])}
    ),
    "dense_backward": Case(
        _dense_bwd,
        lambda a: dict(
            zip(
                ("dW", "db", "dX"),
                ref.dense_backward(a["X"], a["W"], a["dY"]),
                strict=True,
            )
        ),
    ),
    "dense_backward_params": Case(
        lambda rng, dt: _dense_bwd(rng, dt, with_dx=False),
        lambda a: dict(
            zip(("dW", "db"), ref.dense_backward_params(a["X"], a["dY"]), strict=True)
        ),
    ),
    "relu_forward": Case(_unary(), lambda a: {"Y": ref.relu_forward(a["X"])}),
    "relu_backward": Case(
        _binary("A"), lambda a: {"dX": ref.relu_backward(a["A"], a["dY"])}
    ),
    "leaky_relu_forward": Case(
        _with(_unary(), negative_slope=0.2),
        lambda a: {"Y": ref.leaky_relu_forward(a["X"], 0.2)},
    ),
    "leaky_relu_backward": Case(
        _with(_binary("A"), negative_slope=0.2),
        lambda a: {"dX": ref.leaky_relu_backward(a["A"], a["dY"], 0.2)},
    ),
    "gelu_forward": Case(_unary(), lambda a: {"Y": ref.gelu_forward(a["X"])}),
    "gelu_backward": Case(
        _binary("X"), lambda a: {"dX": ref.gelu_backward(a["X"], a["dY"])}
    ),
    "sigmoid_forward": Case(_unary(), lambda a: {"Y": ref.sigmoid_forward(a["X"])}),
    "sigmoid_backward": Case(
        _binary("Y"), lambda a: {"dX": ref.sigmoid_backward(a["Y"], a["dY"])}
    ),
    "tanh_forward": Case(_unary(), lambda a: {"Y": ref.tanh_forward(a["X"])}),
    "tanh_backward": Case(
        _binary("Y"), lambda a: {"dX": ref.tanh_backward(a["Y"], a["dY"])}
    ),
    "mse_forward": Case(
        _mse, lambda a: {"return": ref.mse_forward(a["Y"], a["T"], a["mean"])}
    ),
    "mse_backward": Case(
        lambda rng, dt: _mse(rng, dt, backward=True),
        lambda a: {
            "return": ref.mse_forward(a["Y"], a["T"], a["mean"]),
            "dY": ref.mse_backward(a["Y"], a["T"], a["mean"]),
        },
    ),
    "softmax_forward": Case(
        lambda rng, dt: {"Z": _randn(rng, (3, 5), dt, 3.0), "P": _nans((3, 5), dt)},
        lambda a: {"P": ref.softmax(a["Z"])},
    ),
    "softmax_cross_entropy_forward": Case(
        _logits,
        lambda a: {"return": ref.softmax_cross_entropy_forward(a["Z"], a["labels"])},
    ),
    "softmax_cross_entropy_backward": Case(
        lambda rng, dt: _logits(rng, dt, out="dZ"),
        lambda a: {
            "return": ref.softmax_cross_entropy_forward(a["Z"], a["labels"]),
            "dZ": ref.softmax_cross_entropy_backward(a["Z"], a["labels"]),
        },
    ),
    "squared_error_backward": Case(
        lambda rng, dt: _mse(rng, dt, backward=True, mean=None),
        lambda a: dict(
            zip(("return", "dY"), ref.squared_error(a["Y"], a["T"]), strict=True)
        ),
    ),
    "binary_cross_entropy_backward": Case(
        _bce,
        lambda a: dict(
            zip(("return", "dZ"), ref.binary_cross_entropy(a["Z"], a["T"]), strict=True)
        ),
    ),
    "sgd_update": Case(_sgd, _sgd_expect),
    "adam_update": Case(_adam, _adam_expect),
    "all_finite": Case(
        lambda rng, dt: {"X": _randn(rng, (3, 4), dt)}, lambda a: {"return": True}
    ),
}

#: The documented in-place calls: (kernel, output, the input it may be).
IN_PLACE = {
    *(
        (f"{act}_forward", "Y", "X")
        for act in ("relu", "leaky_relu", "gelu", "sigmoid", "tanh")
    ),
    *(
        (f"{act}_backward", "dX", "dY")
        for act in ("relu", "leaky_relu", "gelu", "sigmoid", "tanh")
    ),
    ("mse_backward", "dY", "Y"),
    ("softmax_forward", "P", "Z"),
    ("softmax_cross_entropy_backward", "dZ", "Z"),
    ("squared_error_backward", "dY", "Y"),
    ("binary_cross_entropy_backward", "dZ", "Z"),
}

# Helpers ---------------------------------------------------------------------


def make_args(name, dtype=F64, seed=7):
    return CASES[name].make(np.random.default_rng(seed), np.dtype(dtype))


def outputs(name):
    """Arguments the kernel writes: the keys of its expected result."""
    return [k for k in CASES[name].expect(make_args(name)) if k != "return"]


def arrays(name):
    return [k for k, v in make_args(name).items() if isinstance(v, np.ndarray)]


def float_arrays(name):
    return [
        k
        for k, v in make_args(name).items()
        if isinstance(v, np.ndarray) and v.dtype.kind == "f"
    ]


def inputs(name):
    return [k for k in arrays(name) if k not in outputs(name)]


def scalars(name):
    return [k for k in make_args(name) if k not in arrays(name)]


def call(name, args):
    return getattr(kernels, name)(*args.values())


def assert_reference(name, args, expected, dtype):
    """Call name with args and compare what it returns and writes with expected."""
    result = call(name, args)
    tol = TOL[np.dtype(dtype)]
    for key, value in expected.items():
        actual = result if key == "return" else args[key]
        np.testing.assert_allclose(actual, value, **tol, err_msg=f"{name}: {key}")


def boundary_error(name, args):
    """The exception the call raises: a plain TypeError or ValueError (not a
    subclass such as Numba's errors) with a one-line message naming the kernel."""
    try:
        call(name, args)
    except Exception as exc:  # noqa: BLE001 - any other type is the failure
        assert type(exc) in (TypeError, ValueError), repr(exc)
        message = str(exc)
        assert "\n" not in message, message
        assert message.startswith(f"{name}(): "), message
        return exc
    pytest.fail(f"{name} accepted a bad call")


def names(message, arg):
    return re.search(rf"\b{re.escape(arg)}\b", message) is not None


def _pairs(select):
    return [(name, arg) for name in CASES for arg in select(name)]


def _fortran(x):
    """x with the same values, not C-contiguous: Fortran order (2-D) or a
    stride-2 view (1-D)."""
    if x.ndim >= 2:
        out = np.asfortranarray(x)
    else:
        out = np.empty(2 * x.size, x.dtype)[::2]
        out[...] = x
    assert not out.flags.c_contiguous
    return out


# Coverage --------------------------------------------------------------------


def test_boundary_cases_cover_every_public_kernel():
    assert set(CASES) == set(kernels.__all__)


@pytest.mark.parametrize(
    "name, module",
    [(n, m) for m in (activations, dense, losses, optim, util) for n in m.__all__],
)
def test_boundary_wrapper_keeps_kernel_name_signature_and_docstring(name, module):
    wrapper, raw = getattr(kernels, name), getattr(module, name)
    assert wrapper is not raw and wrapper.__wrapped__ is raw
    assert wrapper.__name__ == name
    assert inspect.signature(wrapper) == inspect.signature(raw.py_func)
    assert wrapper.__doc__.startswith(inspect.cleandoc(raw.__doc__))
    assert "Checked before the kernel runs" in wrapper.__doc__


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(CASES))
def test_boundary_valid_call_matches_reference(name, dtype):
    args = make_args(name, dtype)
    assert_reference(name, args, CASES[name].expect(args), dtype)


def test_boundary_keyword_arguments_work():
    args = make_args("adam_update")
    expected = CASES["adam_update"].expect(args)
    kernels.adam_update(**args)
    for key, value in expected.items():
        np.testing.assert_allclose(args[key], value, **TOL[F64])


def test_boundary_missing_argument_is_a_type_error():
    args = make_args("relu_forward")
    del args["Y"]
    assert type(boundary_error("relu_forward", args)) is TypeError


# Types and dtypes ------------------------------------------------------------

BAD_DTYPES = [np.float16, np.complex64, np.int32, object]


@pytest.mark.parametrize("bad", BAD_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name, arg", _pairs(float_arrays))
def test_boundary_rejects_unsupported_dtype(name, arg, bad):
    args = make_args(name)
    args[arg] = np.nan_to_num(args[arg]).astype(bad)
    exc = boundary_error(name, args)
    assert type(exc) is TypeError
    assert names(str(exc), arg) and np.dtype(bad).name in str(exc)


@pytest.mark.parametrize("name, arg", _pairs(float_arrays))
def test_boundary_rejects_mixed_float_dtypes(name, arg):
    args = make_args(name, np.float32)
    args[arg] = args[arg].astype(np.float64)
    if len(float_arrays(name)) == 1:
        assert_reference(name, args, CASES[name].expect(args), F64)
        return
    exc = boundary_error(name, args)
    assert type(exc) is TypeError
    assert names(str(exc), arg) and "float32" in str(exc) and "float64" in str(exc)


@pytest.mark.parametrize("bad", [np.float64, np.bool_, object])
def test_boundary_rejects_non_integer_labels(bad):
    for name in ("softmax_cross_entropy_forward", "softmax_cross_entropy_backward"):
        args = make_args(name)
        args["labels"] = args["labels"].astype(bad)
        exc = boundary_error(name, args)
        assert type(exc) is TypeError and names(str(exc), "labels")


@pytest.mark.parametrize("label_dtype", [np.int8, np.int32, np.uint16])
def test_boundary_converts_integer_labels(label_dtype):
    name = "softmax_cross_entropy_backward"
    args = make_args(name)
    args["labels"] = args["labels"].astype(label_dtype)
    assert_reference(name, args, CASES[name].expect(args), F64)


@pytest.mark.parametrize("name, arg", _pairs(arrays))
def test_boundary_rejects_non_array(name, arg):
    args = make_args(name)
    args[arg] = args[arg].tolist()
    exc = boundary_error(name, args)
    assert type(exc) is TypeError and names(str(exc), arg)


def test_boundary_integer_arrays_to_sigmoid_raise_not_zeros():
    # Found on main: int arrays gave silently zeros.
    X = np.array([[-2, 0, 3]], np.int32)
    Y = np.zeros_like(X)
    with pytest.raises(TypeError, match=r"sigmoid_forward\(\): X has dtype int32"):
        kernels.sigmoid_forward(X, Y)


# Shapes ----------------------------------------------------------------------


@pytest.mark.parametrize("name, arg", _pairs(arrays))
def test_boundary_rejects_wrong_size(name, arg):
    args = make_args(name)
    x = args[arg]
    args[arg] = np.resize(x, (x.shape[0] + 1, *x.shape[1:]))
    if len(arrays(name)) == 1:
        assert_reference(name, args, CASES[name].expect(args), F64)
        return  # any shape is valid
    exc = boundary_error(name, args)
    # The message names the changed argument, as the culprit or as the array
    # the shape was taken from ("... as in X").
    assert type(exc) is ValueError and names(str(exc), arg), str(exc)


FREE_SHAPE = {
    ("all_finite", "X"),
    ("sgd_update", "param"),
    ("adam_update", "param"),
    *((f"{a}_forward", "X") for a in ("relu", "leaky_relu", "gelu", "sigmoid", "tanh")),
    *((f"{a}_backward", f) for a, f in [("relu", "A"), ("leaky_relu", "A")]),
    ("gelu_backward", "X"),
    ("sigmoid_backward", "Y"),
    ("tanh_backward", "Y"),
}


@pytest.mark.parametrize(
    "name, arg", [p for p in _pairs(arrays) if p not in FREE_SHAPE]
)
def test_boundary_rejects_extra_dimension_naming_the_argument(name, arg):
    args = make_args(name)
    args[arg] = args[arg][..., None]
    exc = boundary_error(name, args)
    assert type(exc) is ValueError
    assert str(exc).startswith(f"{name}(): {arg} "), str(exc)


def test_boundary_softmax_rejects_zero_classes():
    exc = boundary_error(
        "softmax_forward", dict(Z=np.zeros((3, 0)), P=np.zeros((3, 0)))
    )
    assert type(exc) is ValueError and "n_classes" in str(exc)


# Layout ----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, arg", _pairs(inputs))
def test_boundary_copies_non_contiguous_input(name, arg, dtype):
    args = make_args(name, dtype)
    expected = CASES[name].expect(args)
    original = args[arg].copy()
    args[arg] = _fortran(args[arg])
    assert_reference(name, args, expected, dtype)
    np.testing.assert_array_equal(args[arg], original)  # inputs are left alone


@pytest.mark.parametrize("name, arg", _pairs(outputs))
def test_boundary_rejects_non_contiguous_output(name, arg):
    args = make_args(name)
    args[arg] = _fortran(args[arg])
    exc = boundary_error(name, args)
    assert type(exc) is ValueError and "C-contiguous" in str(exc)
    assert names(str(exc), arg)


@pytest.mark.parametrize("name, arg", _pairs(outputs))
def test_boundary_rejects_read_only_output(name, arg):
    args = make_args(name)
    before = {k: v.copy() for k, v in args.items() if isinstance(v, np.ndarray)}
    args[arg].flags.writeable = False
    exc = boundary_error(name, args)
    assert type(exc) is ValueError and "read-only" in str(exc) and names(str(exc), arg)
    for key, value in before.items():  # nothing was written
        np.testing.assert_array_equal(args[key], value)


def test_boundary_fortran_dense_forward_matches_c_order():
    # Found on main: Fortran-ordered arrays raised Numba's AssertionError.
    rng = np.random.default_rng(3)
    X, W, b = rng.standard_normal((6, 5)), rng.standard_normal((5, 4)), np.ones(4)
    Y_c, Y_f = np.empty((6, 4)), np.empty((6, 4))
    kernels.dense_forward(X, W, b, Y_c)
    kernels.dense_forward(np.asfortranarray(X), np.asfortranarray(W), b, Y_f)
    np.testing.assert_array_equal(Y_f, Y_c)
    np.testing.assert_allclose(Y_c, X @ W + b, **TOL[F64])


# Aliasing --------------------------------------------------------------------


def _alias_pairs():
    """(kernel, output, other array of the same shape) for every such pair."""
    pairs = []
    for name in CASES:
        args = make_args(name)
        for out in outputs(name):
            for other in arrays(name):
                if other != out and args[other].shape == args[out].shape:
                    if args[other].dtype == args[out].dtype:
                        pairs.append((name, out, other))
    return pairs


@pytest.mark.parametrize("name, out, other", _alias_pairs())
def test_boundary_output_that_is_an_input(name, out, other):
    args = make_args(name)
    expected = CASES[name].expect(args)
    args[out] = args[other]
    if (name, out, other) in IN_PLACE:
        expected[other] = expected.pop(out)  # written over the input
        assert_reference(name, args, expected, F64)
        return
    exc = boundary_error(name, args)
    assert type(exc) is ValueError and "overlaps" in str(exc)
    assert names(str(exc), out) and names(str(exc), other)


@pytest.mark.parametrize("name, out, other", sorted(IN_PLACE))
def test_boundary_in_place_through_a_view_is_allowed(name, out, other):
    # The same memory, shape and strides, as a different array object.
    args = make_args(name)
    expected = CASES[name].expect(args)
    expected[other] = expected.pop(out)
    args[out] = args[other][...]
    assert args[out] is not args[other]
    assert_reference(name, args, expected, F64)


def _overlapping(a, b):
    """Copies of a and b as views into one buffer, sharing a few trailing bytes
    of a (aligned to 8): a partial overlap."""
    offset = (a.nbytes - 1) // 8 * 8
    buf = np.zeros(offset + b.nbytes, np.uint8)
    va = buf[: a.nbytes].view(a.dtype).reshape(a.shape)
    vb = buf[offset:].view(b.dtype).reshape(b.shape)
    va[...] = a
    vb[...] = b
    assert np.shares_memory(va, vb)
    return va, vb


@pytest.mark.parametrize(
    "name, out, other",
    [(n, o, a) for n in CASES for o in outputs(n) for a in arrays(n) if a != o],
)
def test_boundary_rejects_partial_overlap(name, out, other):
    args = make_args(name)
    args[other], args[out] = _overlapping(args[other], args[out])
    exc = boundary_error(name, args)
    assert type(exc) is ValueError and "overlaps" in str(exc)
    assert names(str(exc), out) and names(str(exc), other)


def test_boundary_dense_forward_y_is_x_raises():
    # Found on main: Y is X gave a silently wrong result.
    X = np.arange(16.0).reshape(4, 4)
    with pytest.raises(ValueError, match=r"output Y overlaps X"):
        kernels.dense_forward(X, np.eye(4), np.zeros(4), X)
    np.testing.assert_array_equal(X, np.arange(16.0).reshape(4, 4))


def test_boundary_relu_output_on_shifted_rows_raises():
    A = np.arange(-8.0, 8.0).reshape(4, 4)
    with pytest.raises(ValueError, match="only Y is X"):
        kernels.relu_forward(A[:3], A[1:])


# Scalars ---------------------------------------------------------------------

BAD_SCALARS = [
    ("mse_forward", "mean", 1, TypeError),
    ("mse_backward", "mean", None, TypeError),
    ("leaky_relu_forward", "negative_slope", np.inf, ValueError),
    ("leaky_relu_backward", "negative_slope", -0.1, ValueError),
    ("leaky_relu_forward", "negative_slope", "0.1", TypeError),
    ("sgd_update", "lr", np.nan, ValueError),
    ("sgd_update", "lr", -0.1, ValueError),
    ("sgd_update", "momentum", None, TypeError),
    ("sgd_update", "weight_decay", -1.0, ValueError),
    ("sgd_update", "nesterov", 1, TypeError),
    ("adam_update", "lr", "0.1", TypeError),
    ("adam_update", "beta1", 1.0, ValueError),
    ("adam_update", "beta2", -0.5, ValueError),
    ("adam_update", "eps", np.inf, ValueError),
    ("adam_update", "weight_decay", True, TypeError),
    ("adam_update", "step", 0, ValueError),
    ("adam_update", "step", 1.0, TypeError),
    ("adam_update", "step", True, TypeError),
]


@pytest.mark.parametrize("name, arg, value, error", BAD_SCALARS)
def test_boundary_rejects_bad_scalar(name, arg, value, error):
    args = make_args(name)
    before = {k: v.copy() for k, v in args.items() if isinstance(v, np.ndarray)}
    args[arg] = value
    exc = boundary_error(name, args)
    assert type(exc) is error and names(str(exc), arg)
    for key, value in before.items():
        np.testing.assert_array_equal(args[key], value)


def test_boundary_scalar_table_covers_every_scalar():
    assert {(n, a) for n, a, _, _ in BAD_SCALARS} >= {
        (n, a) for n in CASES for a in scalars(n)
    }


@pytest.mark.parametrize("name", ["sgd_update", "adam_update", "mse_backward"])
def test_boundary_accepts_numpy_scalars(name):
    args = make_args(name)
    expected = CASES[name].expect(args)
    for arg in scalars(name):
        value = args[arg]
        args[arg] = (
            np.bool_(value)
            if isinstance(value, bool)
            else np.int64(value)
            if isinstance(value, int)
            else np.float64(value)
        )
    assert_reference(name, args, expected, F64)
