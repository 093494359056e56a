"""Sample weights, the L2 penalty, gradient norms, full-batch loss and
gradient, L-BFGS, schedules and early stopping: in the kernel, in
``fastbp.train`` (both paths), in streamed training and on the command line.

References are independent: repeated rows for weights, finite differences for
gradients, plain NumPy for penalties and norms, closed forms for schedules.
"""

import math
import warnings

import numpy as np
import pytest
from cli_helpers import IRIS, invoke, train_json

import fastbp
from fastbp.nn.losses import BinaryCrossEntropyLoss, SquaredErrorLoss
from fastbp.nn.numerical import numerical_gradient
from fastbp.training.fullbatch import lbfgs, loss_and_gradient
from fastbp.training.schedules import (
    Adaptive,
    Constant,
    Cosine,
    EarlyStopping,
    InvScaling,
    StepDecay,
    schedule,
)

LOSSES = {
    "mse": (fastbp.MSELoss, "values"),
    "mse_sum": (lambda: fastbp.MSELoss("sum"), "values"),
    "ce": (fastbp.CrossEntropyLoss, "labels"),
    "squared_error": (SquaredErrorLoss, "values"),
    "binary_ce": (BinaryCrossEntropyLoss, "binary"),
}


def data(kind, n=40, n_out=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    if kind == "labels":
        return X, rng.integers(0, n_out, n)
    if kind == "binary":
        return X, (rng.random((n, n_out)) > 0.5).astype(np.float64)
    return X, rng.normal(size=(n, n_out))


def model(seed=0, widths=(4, 6, 3), act="tanh"):
    return fastbp.mlp(list(widths), act, rng=seed, dtype="float64")


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_integer_weights_equal_repeated_rows(name):
    make, kind = LOSSES[name]
    X, T = data(kind)
    counts = np.random.default_rng(1).integers(0, 4, len(X))
    counts[0] = 1
    reps = np.repeat(np.arange(len(X)), counts)
    results = []
    for Xs, Ts, w in ((X, T, counts.astype(float)), (X[reps], T[reps], None)):
        m = model()
        opt = fastbp.SGD(m.parameters(), lr=0.1)
        bs = len(Xs)  # one full batch: the weighted mean is the repeated mean
        r = fastbp.train(
            m, make(), opt, Xs, Ts, epochs=3, batch_size=bs, shuffle=False,
            sample_weight=w, l2=0.0 if name == "mse_sum" else 0.05,
        )  # fmt: skip
        results.append((m.flat_data.copy(), r.loss))
    (a, la), (b, lb) = results
    if name == "mse_sum":  # a summed loss weighs rows, not their mean
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    else:
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)
        np.testing.assert_allclose(la, lb, rtol=1e-12)


def test_l2_penalty_is_scikit_learns_on_weights_only():
    X, T = data("values")
    m = model()
    penalty = sum(float(np.sum(lin.weight.data**2)) for lin in linears(m))
    L0, g0 = loss_and_gradient(m, SquaredErrorLoss(), X, T)
    L, g = loss_and_gradient(m, SquaredErrorLoss(), X, T, l2=0.3)
    assert L == pytest.approx(L0 + 0.5 * 0.3 * penalty / len(X), rel=1e-13)
    expected = g0.copy()
    for lin in linears(m):
        o = m.offset(lin.weight)
        expected[o : o + lin.weight.data.size] += 0.3 * lin.weight.data.ravel() / 40
    np.testing.assert_allclose(g, expected, rtol=1e-13, atol=1e-15)


def linears(m):
    return [layer for layer in m.layers if isinstance(layer, fastbp.Linear)]


@pytest.mark.parametrize("name", ["ce", "squared_error", "binary_ce", "mse"])
def test_loss_and_gradient_matches_finite_differences_over_chunks(name):
    make, kind = LOSSES[name]
    X, T = data(kind, n=5000, n_out=2)  # more rows than one 4096-row chunk
    m = model(widths=(4, 3, 2), act="gelu")
    w = np.random.default_rng(3).uniform(0, 2, len(X))
    loss = make()
    _, g = loss_and_gradient(m, loss, X, T, sample_weight=w, l2=0.2)

    def f(theta):
        m.flat_data[...] = theta
        return loss_and_gradient(m, loss, X, T, sample_weight=w, l2=0.2)[0]

    theta = m.flat_data.copy()
    num = numerical_gradient(f, theta)
    m.flat_data[...] = theta
    # Central differences of a 5000-row mean: truncation error ~1e-9.
    np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "layer"])
def test_gradient_norms_are_the_mean_norm_of_each_steps_weight_gradient(fuse):
    X, T = data("values", n=30)
    m = model()
    ref = model()  # the same weights, stepped by hand through the layer API
    loss = fastbp.MSELoss()
    opt = fastbp.SGD(m.parameters(), lr=0.05)
    ref_opt = fastbp.SGD(ref.parameters(), lr=0.05)
    r = fastbp.train(
        m, loss, opt, X, T, epochs=2, batch_size=10, shuffle=False, fuse=fuse,
        grad_norms=True, l2=0.1,
    )  # fmt: skip
    expected = []
    for _ in range(2):
        sums = np.zeros(2)
        for s in range(0, 30, 10):
            ref_loss = fastbp.MSELoss()
            ref_loss.forward(ref.forward(X[s : s + 10]), T[s : s + 10])
            ref.backward(ref_loss.backward())
            for i, lin in enumerate(linears(ref)):
                lin.weight.grad += 0.1 * lin.weight.data / 10
                sums[i] += np.linalg.norm(lin.weight.grad)
            ref_opt.step()
        expected.append(sums / 3)
    np.testing.assert_allclose(r.grad_norms, expected, rtol=1e-12)
    assert [h["grad_norms"] for h in r.history] == r.grad_norms


def test_both_paths_agree_with_weights_penalty_schedule_and_stopping():
    X, T = data("labels", n=64)
    out = []
    for fuse in (True, False):
        m = model(act="relu")
        opt = fastbp.Adam(m.parameters(), lr=0.02)
        r = fastbp.train(
            m, fastbp.CrossEntropyLoss(), opt, X, T, epochs=30, batch_size=16,
            fuse=fuse, l2=0.01, lr_schedule="cosine", grad_norms=True,
            early_stopping=EarlyStopping(2, 1e-3, "train_loss", restore_best=True),
        )  # fmt: skip
        out.append((m.flat_data.copy(), r))
    (a, ra), (b, rb) = out
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ra.loss, rb.loss, rtol=1e-10)
    np.testing.assert_allclose(ra.grad_norms, rb.grad_norms, rtol=1e-9)
    assert ra.lr == rb.lr and ra.stop_reason == rb.stop_reason
    assert ra.best_epoch == rb.best_epoch


def test_sample_weight_needs_the_fused_path():
    X, T = data("values")
    m = model()
    with pytest.raises(ValueError, match="sample_weight needs the fused path"):
        fastbp.train(
            m, fastbp.MSELoss(), fastbp.SGD(m.parameters(), lr=0.1), X, T,
            epochs=1, fuse=False, sample_weight=np.ones(len(X)),
        )  # fmt: skip


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.ones(3), "shape"),
        (-np.ones(40), ">= 0"),
        (np.zeros(40), "not all 0"),
        (np.full(40, np.nan), "finite"),
    ],
)
def test_bad_sample_weights_are_named(bad, message):
    X, T = data("values")
    m = model()
    with pytest.raises(ValueError, match=message):
        fastbp.train(
            m, fastbp.MSELoss(), fastbp.SGD(m.parameters(), lr=0.1), X, T,
            epochs=1, sample_weight=bad,
        )  # fmt: skip


# --- schedules and early stopping ---------------------------------------------


def test_schedule_rates_follow_their_formulas():
    assert Constant().rate(7, 0.1, 500) == 0.1
    assert InvScaling(0.5).rate(3, 0.1, 99) == pytest.approx(0.1 / 10)
    assert StepDecay(5, 0.5).rate(11, 0.1, 0) == pytest.approx(0.025)
    cos = Cosine(10)
    assert cos.rate(1, 0.1, 0) == 0.1
    assert cos.rate(6, 0.1, 0) == pytest.approx(0.05)
    assert cos.rate(11, 0.1, 0) == pytest.approx(0.0) and cos.rate(20, 0.1, 0) == 0
    ada = Adaptive()
    assert ada.rate(1, 0.1, 0) == 0.1 and ada.plateau(0.1) == pytest.approx(0.02)
    assert ada.plateau(1e-6) is None
    assert isinstance(schedule("step", epochs=9), StepDecay)
    with pytest.raises(ValueError, match="schedule"):
        schedule("linear", epochs=9)


def test_train_sets_the_scheduled_rate_before_each_epoch():
    X, T = data("values")
    m = model()
    opt = fastbp.SGD(m.parameters(), lr=0.04)
    r = fastbp.train(
        m, fastbp.MSELoss(), opt, X, T, epochs=8, batch_size=8,
        lr_schedule=StepDecay(3, 0.5),
    )  # fmt: skip
    assert r.lr == pytest.approx([0.04] * 3 + [0.02] * 3 + [0.01] * 2)
    assert [h["lr"] for h in r.history] == r.lr


def test_early_stopping_keeps_the_best_validation_epoch():
    X, T = data("values", n=200)
    Xv, Tv = data("values", n=100, seed=9)
    m = model(widths=(4, 64, 3), act="relu")
    opt = fastbp.Adam(m.parameters(), lr=0.05)  # overfits noise quickly
    r = fastbp.train(
        m, fastbp.MSELoss(), opt, X, T, epochs=300, batch_size=20, val=(Xv, Tv),
        early_stopping=EarlyStopping(patience=5, tol=0.0, monitor="val_loss"),
    )  # fmt: skip
    assert r.stop_reason is not None and r.epochs < 300
    best = int(np.argmin(r.val_loss))
    assert r.best_epoch == best + 1
    assert r.epochs - r.best_epoch == 6  # patience 5: stops on the 6th miss
    val_loss, _ = fastbp.evaluate(m, fastbp.MSELoss(), Xv, Tv)
    assert val_loss == pytest.approx(r.val_loss[best], rel=1e-6)


def test_early_stopping_on_validation_needs_validation_data():
    X, T = data("values")
    m = model()
    with pytest.raises(ValueError, match="needs validation data"):
        fastbp.train(
            m, fastbp.MSELoss(), fastbp.SGD(m.parameters(), lr=0.1), X, T,
            epochs=2, early_stopping=EarlyStopping(monitor="val_metric"),
        )  # fmt: skip
    with pytest.raises(ValueError, match="monitor"):
        EarlyStopping(monitor="accuracy")


# --- L-BFGS --------------------------------------------------------------------


def test_lbfgs_fits_a_small_regression_to_its_tolerance():
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, size=(200, 1))
    T = np.sin(2 * X)
    m = model(widths=(1, 16, 1), act="tanh")
    r = lbfgs(m, fastbp.MSELoss(), X, T, max_iter=500, tol=1e-7)
    assert r.stop_reason is None and r.epochs < 500  # converged (gtol or ftol)
    assert r.loss[-1] < 1e-4
    assert all(b <= a + 1e-15 for a, b in zip(r.loss, r.loss[1:], strict=False))
    L, g = loss_and_gradient(m, fastbp.MSELoss(), X, T)
    assert L == pytest.approx(r.loss[-1], rel=1e-12)  # the model holds the end
    assert np.abs(g).max() < 1e-4
    short = lbfgs(model(widths=(1, 16, 1)), fastbp.MSELoss(), X, T, max_iter=3)
    assert short.epochs == 3 and "did not converge" in short.stop_reason


def test_lbfgs_refuses_a_model_without_fused_code():
    class Mine(fastbp.Tanh):
        pass

    m = fastbp.Sequential(fastbp.Linear(4, 3, dtype="float64"), Mine())
    X, T = data("values")
    with pytest.raises(ValueError, match="no fused kernel"):
        lbfgs(m, fastbp.MSELoss(), X, T)


# --- vanishing gradients, as the README shows them -----------------------------


def deep_norms(activation):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(512, 32))
    y = (X[:, :4].sum(axis=1) > 0).astype(np.int64)
    m = fastbp.mlp([32] + [64] * 10 + [2], activation, rng=0, dtype="float64")
    opt = fastbp.SGD(m.parameters(), lr=0.01)
    r = fastbp.train(
        m, fastbp.CrossEntropyLoss(), opt, X, y, epochs=1, batch_size=64,
        grad_norms=True,
    )  # fmt: skip
    return np.array(r.grad_norms[0])


def test_deep_sigmoid_gradients_vanish_and_relu_ones_do_not():
    sig, relu = deep_norms("sigmoid"), deep_norms("relu")
    assert sig[0] / sig[-1] < 1e-4  # the first layer barely learns
    assert relu[0] / relu[-1] > 0.05


# --- the command line -----------------------------------------------------------


def iris():
    return IRIS


def test_cli_history_lists_every_epoch():
    rec = train_json("--data", iris(), "--epochs", "12", "--lr-schedule", "cosine")
    hist = rec["history"]
    assert [h["epoch"] for h in hist] == list(range(1, 13))
    assert hist[0]["lr"] == 0.01
    assert hist[6]["lr"] == pytest.approx(0.01 * (1 + math.cos(math.pi * 6 / 12)) / 2)
    assert all(0 <= h["val_metric"] <= 1 and h["val_loss"] > 0 for h in hist)
    assert hist[-1]["train_loss"] == pytest.approx(rec["history"][-1]["train_loss"])


def test_cli_grad_norms_table_and_json():
    result = invoke("train", "--data", iris(), "--epochs", "5", "--grad-norms")
    assert result.exit_code == 0, result.output
    assert "mean weight-gradient norm per layer" in result.stdout
    assert "W1" in result.stdout and "W2" in result.stdout
    rec = train_json("--data", iris(), "--epochs", "5", "--grad-norms")
    assert len(rec["grad_norms"]) == 5 and len(rec["grad_norms"][0]) == 2
    assert rec["history"][2]["grad_norms"] == rec["grad_norms"][2]
    assert "grad_norms" not in train_json("--data", iris(), "--epochs", "2")


def test_cli_early_stopping_reports_and_keeps_the_best_epoch():
    rec = train_json(
        "--data", iris(), "--epochs", "500", "--early-stopping", "--patience", "3",
        "--tol", "0.5",
    )  # fmt: skip
    # Nothing improves by 0.5: the count passes --patience 3 at epoch 5.
    assert rec["epochs"] == 5
    scores = [h["val_metric"] for h in rec["history"]]
    assert rec["best_epoch"] == 1 + scores.index(max(scores))
    assert "did not improve" in rec["stop_reason"]
    assert rec["val_accuracy"] == max(scores)  # the kept epoch's


@pytest.mark.parametrize("stream", [False, True], ids=["memory", "stream"])
def test_cli_lbfgs_and_streamed_controls(tmp_path, stream):
    if stream:
        rec = train_json(
            "--data", iris(), "--stream", "--epochs", "40", "--early-stopping",
            "--patience", "2", "--grad-norms", "--lr-schedule", "step",
        )  # fmt: skip
        assert rec["epochs"] < 40 and rec["best_epoch"] is not None
        assert len(rec["grad_norms"]) == rec["epochs"]
    else:
        rec = train_json("--data", "xor", "--optimizer", "lbfgs", "--epochs", "200")
        assert rec["train_accuracy"] == 1.0 and rec["epochs"] <= 200


def test_cli_refuses_options_lbfgs_does_not_take():
    result = invoke("train", "--data", "xor", "--optimizer", "lbfgs", "--no-fuse")
    assert result.exit_code == 2
    assert "--no-fuse does not apply to --optimizer lbfgs" in result.output


def test_cli_plot_writes_an_image(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "curves.png"
    result = invoke("train", "--data", iris(), "--epochs", "5", "--plot", out, "-q")
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:4] == b"\x89PNG"
    bad = invoke("train", "--data", "xor", "--plot", tmp_path / "c.xyz")
    assert bad.exit_code == 2 and "unknown image type 'xyz'" in bad.output


def test_cli_plot_without_matplotlib_is_one_line(monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backend_bases", None)
    result = invoke("train", "--data", "xor", "--plot", tmp_path / "c.png")
    assert result.exit_code == 2
    assert "--plot needs matplotlib: pip install 'fastbp[plot]'" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "c.png").exists()


@pytest.mark.parametrize("name, calls", [("constant", 1), ("cosine", 40)])
def test_only_a_changing_schedule_runs_one_epoch_per_call(monkeypatch, name, calls):
    # The command line always passes a schedule name; "constant" must keep
    # the fused path's many epochs per call (one call here, 40 epochs).
    from fastbp.training.runners import FusedRunner

    seen = []
    original = FusedRunner.__call__

    def counting(self, perms, *args):
        seen.append(perms.shape[0])
        return original(self, perms, *args)

    monkeypatch.setattr(FusedRunner, "__call__", counting)
    X, T = data("values")
    m = model()
    opt = fastbp.SGD(m.parameters(), lr=0.01)
    fastbp.train(m, fastbp.MSELoss(), opt, X, T, epochs=40, lr_schedule=name)
    assert seen[1:] == [40 // calls] * calls  # seen[0]: the zero-epoch warm-up


@pytest.mark.parametrize("where", ["training", "validation"])
def test_a_value_whose_square_overflows_is_named_before_training(where):
    # Row 300 is far past the first batch, which is all the untrained loss
    # used to be checked on; training then blamed the learning rate.
    X, T = data("values", n=400)
    X = X.astype(np.float32)
    T = T.astype(np.float32)
    bad = X.copy()
    bad[300, 2] = 3e19  # its square overflows float32
    m = fastbp.mlp([4, 6, 3], "tanh", rng=0)
    opt = fastbp.SGD(m.parameters(), lr=0.01)
    args = (bad, T) if where == "training" else (X, T)
    val = (bad, T) if where == "validation" else None
    with pytest.raises(fastbp.DivergenceError) as e:
        fastbp.train(m, fastbp.MSELoss(), opt, *args, epochs=1, val=val)
    assert e.value.before_training and e.value.epoch == 0
    assert f"{where} X, row 300, column 2: 3e+19" in str(e.value)
    assert "use float64" in str(e.value) and "\n" not in str(e.value)


def test_r2_of_overflowing_outputs_is_nan_without_warnings():
    from fastbp.training.metrics import r2

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = r2(np.array([[1e308], [-1e308]]), np.array([[0.0], [1.0]]))
    assert not math.isfinite(value)
