"""Tests for fastbp.train and fastbp.evaluate: the fused epoch path against the
layer path and against a plain-NumPy training loop, seeded shuffling, history,
timing, divergence and argument checks."""

import math

import numba
import numpy as np
import pytest
import scipy.special

import fastbp
from fastbp import (
    GELU,
    SGD,
    Adam,
    CrossEntropyLoss,
    DivergenceError,
    LeakyReLU,
    Linear,
    MSELoss,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
    evaluate,
    train,
)
from fastbp.training.runners import epoch_order, shuffle_key

#: fused vs layer path: same arithmetic, only summation order may differ.
PATH_TOL = dict(rtol=1e-12, atol=1e-14)
#: fastbp (fast-math kernels) vs the NumPy reference loop after a few epochs.
REF_TOL = dict(rtol=1e-9, atol=1e-12)

ACTIVATION_LAYERS = {
    "relu": ReLU,
    "tanh": Tanh,
    "sigmoid": Sigmoid,
    "leaky_relu": lambda: LeakyReLU(0.1),
    "gelu": GELU,
}


# --- naive reference ---------------------------------------------------------


def naive_train(weights, acts, loss, opt, X, T, *, epochs, batch_size, shuffle, seed):
    """The obvious NumPy training loop fastbp.train must reproduce.

    weights: list of (W, b) float64 pairs, W of shape (in, out), Y = X @ W + b;
    acts: activation name or None after each layer; loss: "mse", "mse_sum" or
    "ce"; opt: dict(kind="sgd"|"adam", hyperparameters). Returns the trained
    (W, b) list and the per-epoch mean losses.
    """
    params = [p.copy() for pair in weights for p in pair]
    state1 = [np.zeros_like(p) for p in params]
    state2 = [np.zeros_like(p) for p in params]
    key = shuffle_key(seed)  # fastbp.train's documented row order
    n = X.shape[0]
    bs = min(batch_size, n)
    t_step, history = 0, []
    for epoch in range(epochs):
        order = epoch_order(key, epoch, n) if shuffle else np.arange(n)
        total = 0.0
        for s in range(0, n, bs):
            idx = order[s : s + bs]
            xb, tb = X[idx], T[idx]
            value, grads = _naive_grads(params, acts, loss, xb, tb)
            total += value if loss == "mse_sum" else value * len(idx)
            t_step += 1
            for p, g, m, v in zip(params, grads, state1, state2, strict=True):
                g = g + opt.get("weight_decay", 0.0) * p
                if opt["kind"] == "sgd":
                    mom = opt.get("momentum", 0.0)
                    if mom:
                        m[...] = mom * m + g
                        g = g + mom * m if opt.get("nesterov") else m
                    p -= opt["lr"] * g
                else:
                    b1, b2 = opt.get("betas", (0.9, 0.999))
                    m[...] = b1 * m + (1 - b1) * g
                    v[...] = b2 * v + (1 - b2) * g * g
                    denom = np.sqrt(v / (1 - b2**t_step)) + opt.get("eps", 1e-8)
                    p -= opt["lr"] / (1 - b1**t_step) * m / denom
        history.append(total / n)
    return [(params[i], params[i + 1]) for i in range(0, len(params), 2)], history


def _act(name, z):
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0, z, 0.1 * z)
    if name == "gelu":
        return 0.5 * z * (1.0 + scipy.special.erf(z / np.sqrt(2.0)))
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    return z


def _act_grad(name, z, y, dy):
    """dy * act'(z), from the pre-activation z or the output y."""
    if name == "relu":
        return dy * (y > 0)
    if name == "leaky_relu":
        return np.where(z > 0, dy, 0.1 * dy)
    if name == "gelu":
        cdf = 0.5 * (1.0 + scipy.special.erf(z / np.sqrt(2.0)))
        return dy * (cdf + z * np.exp(-0.5 * z * z) / np.sqrt(2.0 * np.pi))
    if name == "tanh":
        return dy * (1.0 - y * y)
    if name == "sigmoid":
        return dy * y * (1.0 - y)
    return dy


def _naive_grads(params, acts, loss, xb, tb):
    inputs, pre, outputs, h = [], [], [], xb
    for i, act in enumerate(acts):
        inputs.append(h)
        pre.append(h @ params[2 * i] + params[2 * i + 1])
        h = _act(act, pre[-1])
        outputs.append(h)
    m = xb.shape[0]
    if loss == "ce":
        z = h - h.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        value = -logp[np.arange(m), tb].mean()
        dy = np.exp(logp)
        dy[np.arange(m), tb] -= 1.0
        dy /= m
    elif loss == "mse":
        value = np.sum((h - tb) ** 2) / h.size
        dy = 2.0 * (h - tb) / h.size
    else:
        value = 0.5 * np.sum((h - tb) ** 2)
        dy = h - tb
    grads = [None] * len(params)
    for i in reversed(range(len(acts))):
        dy = _act_grad(acts[i], pre[i], outputs[i], dy)
        grads[2 * i] = inputs[i].T @ dy
        grads[2 * i + 1] = dy.sum(axis=0)
        dy = dy @ params[2 * i].T
    return float(value), grads


# --- helpers -----------------------------------------------------------------


def make_model(widths, acts, seed=0, dtype=np.float64):
    """Sequential of Linear layers with the named activation (or None) after
    each; weights drawn from default_rng(seed)."""
    rng = np.random.default_rng(seed)
    layers = []
    shapes = zip(widths[:-1], widths[1:], strict=True)
    for (n_in, n_out), act in zip(shapes, acts, strict=True):
        layers.append(Linear(n_in, n_out, init="xavier", rng=rng, dtype=dtype))
        if act is not None:
            layers.append(ACTIVATION_LAYERS[act]())
    return Sequential(*layers)


def make_optimizer(model, opt):
    kwargs = {k: v for k, v in opt.items() if k != "kind"}
    cls = SGD if opt["kind"] == "sgd" else Adam
    return cls(model.parameters(), **kwargs)


def make_loss(name):
    if name == "ce":
        return CrossEntropyLoss()
    return MSELoss(reduction="sum" if name == "mse_sum" else "mean")


def make_data(n, n_in, n_out, loss, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_in))
    if loss == "ce":
        T = rng.integers(0, n_out, size=n)
    else:
        T = rng.normal(size=(n, n_out)) * 0.5
    return X, T


def weights_of(model):
    return [(lay.weight.data.copy(), lay.bias.data.copy()) for lay in linears(model)]


def linears(model):
    return [lay for lay in model.layers if isinstance(lay, Linear)]


def run(case, fuse, seed=3, epochs=None):
    """Train case's model on case's data; returns (model, result)."""
    model = make_model(case["widths"], case["acts"])
    X, T = make_data(case["n"], case["widths"][0], case["widths"][-1], case["loss"])
    result = train(
        model,
        make_loss(case["loss"]),
        make_optimizer(model, case["opt"]),
        X,
        T,
        epochs=epochs or case["epochs"],
        batch_size=case["batch_size"],
        shuffle=case.get("shuffle", True),
        seed=seed,
        fuse=fuse,
    )
    return model, result


CASES = {
    "mse_sgd_momentum": dict(
        widths=[3, 6, 2],
        acts=["tanh", None],
        loss="mse",
        n=40,
        batch_size=8,
        epochs=6,
        opt=dict(kind="sgd", lr=0.05, momentum=0.9),
    ),
    "mse_sum_sgd_nesterov_weight_decay": dict(
        widths=[3, 5, 1],
        acts=["sigmoid", None],
        loss="mse_sum",
        n=32,
        batch_size=8,
        epochs=5,
        opt=dict(kind="sgd", lr=0.01, momentum=0.8, nesterov=True, weight_decay=0.01),
    ),
    "ce_adam": dict(
        widths=[4, 7, 3],
        acts=["relu", None],
        loss="ce",
        n=48,
        batch_size=16,
        epochs=6,
        opt=dict(kind="adam", lr=0.01),
    ),
    "three_layers_tanh_sigmoid_relu": dict(
        widths=[3, 6, 5, 4, 2],
        acts=["tanh", "sigmoid", "relu", None],
        loss="mse",
        n=30,
        batch_size=10,
        epochs=5,
        opt=dict(kind="adam", lr=0.005, weight_decay=0.001),
    ),
    "leaky_relu_gelu_sgd": dict(
        widths=[3, 6, 5, 2],
        acts=["leaky_relu", "gelu", None],
        loss="mse",
        n=30,
        batch_size=7,
        epochs=5,
        opt=dict(kind="sgd", lr=0.05, momentum=0.9),
    ),
    "gelu_ce_adam_deep": dict(
        widths=[4, 8, 8, 8, 3],
        acts=["gelu", "gelu", "leaky_relu", None],
        loss="ce",
        n=41,
        batch_size=8,
        epochs=4,
        opt=dict(kind="adam", lr=0.01),
    ),
    "last_short_batch": dict(
        widths=[2, 5, 3],
        acts=["relu", None],
        loss="ce",
        n=23,
        batch_size=5,
        epochs=4,
        opt=dict(kind="sgd", lr=0.1, momentum=0.5),
    ),
    "no_shuffle": dict(
        widths=[3, 4, 1],
        acts=["tanh", None],
        loss="mse",
        n=21,
        batch_size=4,
        epochs=5,
        shuffle=False,
        opt=dict(kind="sgd", lr=0.05),
    ),
    "batch_larger_than_n": dict(
        widths=[2, 4, 2],
        acts=["sigmoid", None],
        loss="ce",
        n=7,
        batch_size=100,
        epochs=5,
        opt=dict(kind="adam", lr=0.02),
    ),
}


# --- fused path vs layer path vs reference -----------------------------------


@pytest.mark.parametrize("name", sorted(CASES))
def test_train_fused_matches_layer_path(name):
    case = CASES[name]
    fused_model, fused = run(case, fuse=True)
    layer_model, layer = run(case, fuse=False)
    assert fused.fused is True and layer.fused is False
    for (w1, b1), (w2, b2) in zip(
        weights_of(fused_model), weights_of(layer_model), strict=True
    ):
        np.testing.assert_allclose(w1, w2, **PATH_TOL)
        np.testing.assert_allclose(b1, b2, **PATH_TOL)
    np.testing.assert_allclose(fused.loss, layer.loss, **PATH_TOL)
    assert fused.steps == layer.steps and fused.samples == layer.samples


@pytest.mark.parametrize("name", sorted(CASES))
def test_train_matches_naive_reference(name):
    case = CASES[name]
    start = weights_of(make_model(case["widths"], case["acts"]))
    X, T = make_data(case["n"], case["widths"][0], case["widths"][-1], case["loss"])
    expected, history = naive_train(
        start,
        case["acts"],
        case["loss"],
        case["opt"],
        X,
        T,
        epochs=case["epochs"],
        batch_size=case["batch_size"],
        shuffle=case.get("shuffle", True),
        seed=3,
    )
    for fuse in (True, False):
        model, result = run(case, fuse=fuse)
        for (w, b), (w_ref, b_ref) in zip(weights_of(model), expected, strict=True):
            np.testing.assert_allclose(w, w_ref, **REF_TOL)
            np.testing.assert_allclose(b, b_ref, **REF_TOL)
        np.testing.assert_allclose(result.loss, history, **REF_TOL)


def test_train_fused_chunks_match_epoch_by_epoch():
    # Without validation the fused path runs many epochs per call; with a
    # callback it reports in chunks. Neither may change the arithmetic.
    case = CASES["mse_sgd_momentum"]
    model_a, result_a = run(case, fuse=True, epochs=40)
    model_b = make_model(case["widths"], case["acts"])
    X, T = make_data(case["n"], 3, 2, "mse")
    seen = []
    result_b = train(
        model_b,
        MSELoss(),
        make_optimizer(model_b, case["opt"]),
        X,
        T,
        epochs=40,
        batch_size=case["batch_size"],
        seed=3,
        fuse=True,
        callback=lambda epoch, res: seen.append((epoch, len(res.loss))),
    )
    np.testing.assert_array_equal(model_a.flat_data, model_b.flat_data)
    assert result_a.loss == result_b.loss
    assert seen and seen[-1] == (40, 40)
    assert all(epoch == count for epoch, count in seen)
    assert [e for e, _ in seen] == sorted({e for e, _ in seen})


def test_train_float32_paths_agree():
    case = CASES["ce_adam"]
    results = []
    for fuse in (True, False):
        model = make_model(case["widths"], case["acts"], dtype=np.float32)
        X, T = make_data(case["n"], 4, 3, "ce")
        result = train(
            model,
            CrossEntropyLoss(),
            make_optimizer(model, case["opt"]),
            X,
            T,
            epochs=5,
            batch_size=16,
            seed=3,
            fuse=fuse,
        )
        assert model.flat_data.dtype == np.float32
        results.append((model.flat_data.copy(), result.loss))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-4, atol=1e-6)


# --- seeding -----------------------------------------------------------------


@pytest.mark.parametrize("fuse", [True, False])
def test_train_same_seed_reproducible(fuse):
    case = CASES["last_short_batch"]
    model_a, result_a = run(case, fuse=fuse, seed=11)
    model_b, result_b = run(case, fuse=fuse, seed=11)
    np.testing.assert_array_equal(model_a.flat_data, model_b.flat_data)
    assert result_a.loss == result_b.loss


@pytest.mark.parametrize("fuse", [True, False])
def test_train_different_seed_differs(fuse):
    case = CASES["last_short_batch"]
    model_a, _ = run(case, fuse=fuse, seed=11)
    model_b, _ = run(case, fuse=fuse, seed=12)
    assert not np.allclose(model_a.flat_data, model_b.flat_data)


def test_train_no_shuffle_ignores_seed():
    case = CASES["no_shuffle"]
    model_a, _ = run(case, fuse=True, seed=1)
    model_b, _ = run(case, fuse=True, seed=2)
    np.testing.assert_array_equal(model_a.flat_data, model_b.flat_data)


# --- history and timing ------------------------------------------------------


@pytest.mark.parametrize("fuse", [True, False])
def test_train_history_with_validation(fuse):
    model = make_model([3, 6, 3], ["relu", None])
    X, T = make_data(50, 3, 3, "ce")
    Xv, Tv = make_data(13, 3, 3, "ce", seed=7)
    result = train(
        model,
        CrossEntropyLoss(),
        Adam(model.parameters(), lr=0.01),
        X,
        T,
        epochs=7,
        batch_size=8,
        val=(Xv, Tv),
        fuse=fuse,
    )
    assert result.fused is fuse
    assert len(result.loss) == len(result.val_loss) == len(result.val_metric) == 7
    assert result.metric_name == "accuracy"
    assert result.epochs == 7
    assert result.steps == 7 * math.ceil(50 / 8)
    assert result.samples == 7 * 50
    assert all(0.0 <= a <= 1.0 for a in result.val_metric)
    # The last entry is the trained model evaluated on the validation set.
    v_loss, v_acc = evaluate(model, CrossEntropyLoss(), Xv, Tv, "accuracy")
    assert result.val_loss[-1] == pytest.approx(v_loss, rel=1e-12)
    assert result.val_metric[-1] == v_acc


@pytest.mark.parametrize("fuse", [True, False])
def test_train_history_without_validation(fuse):
    model = make_model([2, 4, 1], ["tanh", None])
    X, T = make_data(10, 2, 1, "mse")
    result = train(
        model,
        MSELoss(),
        SGD(model.parameters(), lr=0.1),
        X,
        T,
        epochs=9,
        batch_size=3,
        fuse=fuse,
    )
    assert len(result.loss) == 9
    assert result.val_loss == [] and result.val_metric == []
    assert result.metric_name == "r2"
    assert result.steps == 9 * 4 and result.samples == 90


@pytest.mark.parametrize("fuse", [True, False])
def test_train_timing_fields(fuse):
    model = make_model([3, 8, 2], ["relu", None])
    X, T = make_data(64, 3, 2, "mse")
    result = train(
        model,
        MSELoss(),
        Adam(model.parameters()),
        X,
        T,
        epochs=5,
        batch_size=16,
        fuse=fuse,
    )
    assert result.train_seconds > 0 and result.compile_seconds > 0
    assert result.samples_per_s > 0 and result.steps_per_s > 0
    assert result.us_per_step == pytest.approx(
        1e6 * result.train_seconds / result.steps, rel=1e-12
    )
    assert result.samples_per_s == pytest.approx(
        result.samples / result.train_seconds, rel=1e-12
    )
    assert result.steps_per_s == pytest.approx(
        result.steps / result.train_seconds, rel=1e-12
    )


def test_train_result_empty_has_nan_rates():
    result = fastbp.TrainResult()
    assert math.isnan(result.samples_per_s)
    assert math.isnan(result.steps_per_s)
    assert math.isnan(result.us_per_step)


@pytest.mark.parametrize("fuse", [True, False])
@pytest.mark.parametrize("loss_name", ["mse", "mse_sum", "ce"])
def test_train_epoch_loss_is_initial_model_loss_at_tiny_lr(fuse, loss_name):
    # n = 23 with batch 5: a short last batch must count by its rows.
    n_out = 3 if loss_name == "ce" else 2
    model = make_model([4, 6, n_out], ["tanh", None])
    X, T = make_data(23, 4, n_out, loss_name)
    loss = make_loss(loss_name)
    initial, _ = evaluate(model, loss, X, T)
    result = train(
        model,
        loss,
        SGD(model.parameters(), lr=1e-12),
        X,
        T,
        epochs=2,
        batch_size=5,
        fuse=fuse,
    )
    np.testing.assert_allclose(result.loss, [initial, initial], rtol=1e-9)


def test_evaluate_per_sample_mean_loss_and_metrics():
    model = make_model([3, 4, 2], ["relu", None])
    X, T = make_data(11, 3, 2, "mse")
    Y = model.predict(X)
    value, r2 = evaluate(model, MSELoss(), X, T, "r2", batch_size=4)
    assert value == pytest.approx(np.mean((Y - T) ** 2), rel=1e-12)
    ss_res = np.sum((T - Y) ** 2, axis=0)
    ss_tot = np.sum((T - T.mean(axis=0)) ** 2, axis=0)
    assert r2 == pytest.approx(np.mean(1 - ss_res / ss_tot), rel=1e-12)
    value_sum, metric = evaluate(model, MSELoss(reduction="sum"), X, T)
    assert value_sum == pytest.approx(0.5 * np.sum((Y - T) ** 2) / 11, rel=1e-12)
    assert math.isnan(metric)


def test_evaluate_accuracy_and_binary_accuracy():
    model = make_model([3, 4, 3], ["relu", None])
    X, T = make_data(17, 3, 3, "ce")
    Y = model.predict(X)
    value, acc = evaluate(model, CrossEntropyLoss(), X, T, "accuracy", batch_size=5)
    z = Y - Y.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    assert value == pytest.approx(-logp[np.arange(17), T].mean(), rel=1e-12)
    assert acc == pytest.approx(np.mean(Y.argmax(axis=1) == T))
    one = make_model([3, 4, 1], ["tanh", "sigmoid"])
    T01 = (X[:, :1] > 0).astype(np.float64)
    _, bacc = evaluate(one, MSELoss(), X, T01, "binary_accuracy")
    assert bacc == pytest.approx(np.mean((one.predict(X) > 0.5) == (T01 > 0.5)))


# --- divergence and path choice ----------------------------------------------


@pytest.mark.parametrize("fuse", [True, False])
def test_train_divergence_error_on_huge_lr(fuse):
    model = make_model([3, 8, 1], ["relu", None])
    X, T = make_data(64, 3, 1, "mse")
    with pytest.raises(DivergenceError, match="smaller learning rate") as info:
        train(
            model,
            MSELoss(),
            SGD(model.parameters(), lr=1e6),
            X,
            T * 100,
            epochs=20,
            batch_size=8,
            fuse=fuse,
        )
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("fuse", [True, False])
def test_train_divergence_in_last_step_with_validation(fuse):
    # One full-batch step with a huge lr: the step's own loss is finite, the
    # updated weights are not. Validation then meets NaN/inf outputs, which must
    # be reported as divergence, not as a loss-input ValueError.
    model = make_model([3, 8, 1], ["relu", None])
    X, T = make_data(32, 3, 1, "mse")
    Xv, Tv = make_data(8, 3, 1, "mse", seed=5)
    with pytest.raises(DivergenceError, match="smaller learning rate"):
        train(
            model,
            MSELoss(),
            SGD(model.parameters(), lr=1e300),
            X,
            T,
            epochs=1,
            batch_size=32,
            val=(Xv, Tv),
            fuse=fuse,
        )


def test_train_fuse_true_rejects_activation_first():
    model = Sequential(Tanh(), Linear(3, 2, rng=0, dtype=np.float64))
    X, T = make_data(10, 3, 2, "mse")
    with pytest.raises(ValueError, match="fuse=True"):
        train(
            model, MSELoss(), SGD(model.parameters(), lr=0.1), X, T, epochs=2, fuse=True
        )


def test_train_fuse_true_rejects_optimizer_over_subset():
    model = make_model([3, 4, 2], ["tanh", None])
    X, T = make_data(10, 3, 2, "mse")
    opt = SGD(linears(model)[1].parameters(), lr=0.1)
    with pytest.raises(ValueError, match="optimizer"):
        train(model, MSELoss(), opt, X, T, epochs=2, fuse=True)


def test_train_fuse_none_falls_back_for_activation_first():
    model = Sequential(Tanh(), Linear(3, 2, rng=0, dtype=np.float64))
    X, T = make_data(10, 3, 2, "mse")
    result = train(
        model, MSELoss(), SGD(model.parameters(), lr=0.1), X, T, epochs=3, batch_size=4
    )
    assert result.fused is False and len(result.loss) == 3


def test_train_fuse_none_falls_back_for_optimizer_over_subset():
    model = make_model([3, 4, 2], ["tanh", None])
    first = linears(model)[0].weight.data.copy()
    X, T = make_data(10, 3, 2, "mse")
    opt = SGD(linears(model)[1].parameters(), lr=0.1)
    result = train(model, MSELoss(), opt, X, T, epochs=3, batch_size=4)
    assert result.fused is False
    # Only the optimizer's parameters move.
    np.testing.assert_array_equal(linears(model)[0].weight.data, first)


def test_train_fuse_none_uses_fused_when_qualified():
    model = make_model([3, 4, 2], ["tanh", None])
    X, T = make_data(10, 3, 2, "mse")
    result = train(model, MSELoss(), SGD(model.parameters(), lr=0.1), X, T, epochs=2)
    assert result.fused is True


def test_train_threads_one_matches_default_and_restores():
    before = numba.get_num_threads()
    case = CASES["ce_adam"]
    results = []
    for threads in (1, None):
        model = make_model(case["widths"], case["acts"])
        X, T = make_data(case["n"], 4, 3, "ce")
        train(
            model,
            CrossEntropyLoss(),
            make_optimizer(model, case["opt"]),
            X,
            T,
            epochs=3,
            batch_size=16,
            threads=threads,
        )
        results.append(model.flat_data.copy())
    assert numba.get_num_threads() == before
    np.testing.assert_allclose(results[0], results[1], **PATH_TOL)


def test_train_threads_restored_after_error():
    before = numba.get_num_threads()
    model = make_model([3, 8, 1], ["relu", None])
    X, T = make_data(64, 3, 1, "mse")
    with pytest.raises(DivergenceError):
        train(
            model,
            MSELoss(),
            SGD(model.parameters(), lr=1e6),
            X,
            T * 100,
            epochs=20,
            batch_size=8,
            threads=1,
        )
    assert numba.get_num_threads() == before


# --- bad arguments -----------------------------------------------------------


def _simple():
    model = make_model([3, 4, 2], ["tanh", None])
    X, T = make_data(10, 3, 2, "mse")
    return model, MSELoss(), SGD(model.parameters(), lr=0.1), X, T


@pytest.mark.parametrize("epochs", [0, -1, 2.0, True])
def test_train_bad_epochs(epochs):
    model, loss, opt, X, T = _simple()
    with pytest.raises(ValueError, match="epochs"):
        train(model, loss, opt, X, T, epochs=epochs)


@pytest.mark.parametrize("batch_size", [0, -4, 1.5])
def test_train_bad_batch_size(batch_size):
    model, loss, opt, X, T = _simple()
    with pytest.raises(ValueError, match="batch_size"):
        train(model, loss, opt, X, T, epochs=1, batch_size=batch_size)


def test_train_wrong_feature_count():
    model, loss, opt, X, T = _simple()
    with pytest.raises(ValueError, match=r"3 features"):
        train(model, loss, opt, X[:, :2], T, epochs=1)


def test_train_validation_wrong_feature_count():
    model, loss, opt, X, T = _simple()
    with pytest.raises(ValueError, match="validation X"):
        train(model, loss, opt, X, T, epochs=1, val=(X[:, :2], T))


def test_train_mismatched_rows():
    model, loss, opt, X, T = _simple()
    with pytest.raises(ValueError, match=r"10 rows but targets have 9"):
        train(model, loss, opt, X, T[:9], epochs=1)


def test_train_float_labels_for_cross_entropy():
    model = make_model([3, 4, 2], ["tanh", None])
    X, _ = make_data(10, 3, 2, "mse")
    with pytest.raises(TypeError, match="labels must be integers"):
        train(
            model,
            CrossEntropyLoss(),
            SGD(model.parameters(), lr=0.1),
            X,
            np.zeros(10),
            epochs=1,
        )


def test_train_unknown_metric():
    model, loss, opt, X, T = _simple()
    with pytest.raises(ValueError, match="metric"):
        train(model, loss, opt, X, T, epochs=1, metric="f1")


def test_train_model_not_sequential():
    layer = Linear(3, 2, rng=0, dtype=np.float64)
    X, T = make_data(10, 3, 2, "mse")
    with pytest.raises(TypeError, match="Sequential"):
        train(layer, MSELoss(), SGD(layer.parameters(), lr=0.1), X, T, epochs=1)


def test_train_nan_input_rejected():
    model, loss, opt, X, T = _simple()
    X[4, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        train(model, loss, opt, X, T, epochs=1)


def test_train_bad_arguments_leave_model_unchanged():
    model, loss, opt, X, T = _simple()
    before = model.flat_data.copy()
    with pytest.raises(ValueError):
        train(model, loss, opt, X, T[:9], epochs=3)
    np.testing.assert_array_equal(model.flat_data, before)


@pytest.mark.parametrize("fuse", [None, False])
def test_train_labels_out_of_range(fuse):
    model = make_model([3, 4, 3], ["tanh", None])
    X, _ = make_data(10, 3, 3, "ce")
    T = np.array([0, 1, 2, 5, 0, 1, 2, 0, 1, -1])
    with pytest.raises(ValueError, match="labels must lie in"):
        train(
            model,
            CrossEntropyLoss(),
            SGD(model.parameters(), lr=0.1),
            X,
            T,
            epochs=2,
            fuse=fuse,
        )


@pytest.mark.parametrize("fuse", [None, False])
@pytest.mark.parametrize("shape", [(10, 2), (10,)])
def test_train_target_width_mismatch(fuse, shape):
    model = make_model([3, 4, 3], ["tanh", None])
    X, _ = make_data(10, 3, 3, "mse")
    with pytest.raises(ValueError, match="shape"):
        train(
            model,
            MSELoss(),
            SGD(model.parameters(), lr=0.1),
            X,
            np.zeros(shape),
            epochs=2,
            fuse=fuse,
        )


# --- the row order -------------------------------------------------------------


def test_epoch_order_is_a_seeded_permutation_fresh_each_epoch():
    key = shuffle_key(7)
    assert key == shuffle_key(7) and 0 <= key < 2**63 and key != shuffle_key(8)
    orders = [epoch_order(key, e, 1000) for e in range(4)]
    for order in orders:
        assert order.dtype == np.int64
        np.testing.assert_array_equal(np.sort(order), np.arange(1000))
    assert all(
        not np.array_equal(a, b) for a, b in zip(orders[:-1], orders[1:], strict=True)
    )
    np.testing.assert_array_equal(epoch_order(key, 2, 1000), orders[2])
    assert not np.array_equal(epoch_order(shuffle_key(8), 0, 1000), orders[0])
    assert epoch_order(key, 0, 1).tolist() == [0] and epoch_order(key, 0, 0).size == 0


def test_epoch_order_is_uniform():
    # Where row 0 lands over 6000 epochs of 6 rows: each place ~1000 times.
    key = shuffle_key(1)
    places = np.bincount(
        [int(np.flatnonzero(epoch_order(key, e, 6) == 0)[0]) for e in range(6000)],
        minlength=6,
    )
    chi2 = float(np.sum((places - 1000.0) ** 2 / 1000.0))
    assert chi2 < 20.5  # 5 degrees of freedom: p < 0.001 to fail by chance


def test_fused_training_visits_rows_in_epoch_order():
    # One-row batches of SGD without momentum: the weights after an epoch
    # depend on the order, so drawing it in the kernel must match epoch_order.
    rng = np.random.default_rng(0)
    X, T = rng.normal(size=(9, 2)), rng.normal(size=(9, 1))
    fused = fastbp.mlp([2, 3, 1], "tanh", rng=0, dtype=np.float64)
    train(fused, MSELoss(), SGD(fused.parameters(), lr=0.1), X, T, epochs=3,
          batch_size=1, seed=5)  # fmt: skip
    by_hand = fastbp.mlp([2, 3, 1], "tanh", rng=0, dtype=np.float64)
    opt, loss = SGD(by_hand.parameters(), lr=0.1), MSELoss()
    for e in range(3):
        for i in epoch_order(shuffle_key(5), e, 9):
            loss.forward(by_hand.forward(X[i : i + 1]), T[i : i + 1])
            by_hand.backward(loss.backward())
            opt.step()
    np.testing.assert_allclose(fused.flat_data, by_hand.flat_data, rtol=1e-13)
