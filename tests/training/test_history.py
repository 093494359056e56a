"""The per-epoch history: Series against a plain Python list, whatever the
mix of small copied blocks, large handed-over blocks and repeated values."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastbp.training.result import Series, TrainResult

BIG = Series.ADOPT


@st.composite
def operations(draw):
    """A list of ("extend", values) / ("fill", value, count) / ("read",) /
    ("truncate", n) steps, blocks either side of Series.ADOPT."""
    steps = []
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["extend", "fill", "read", "truncate"]))
        count = draw(st.sampled_from([0, 1, 3, BIG - 1, BIG, BIG + 5]))
        if kind == "extend":
            steps.append((kind, np.arange(count, dtype=np.float64) + len(steps)))
        elif kind == "fill":
            steps.append((kind, float(draw(st.integers(-3, 3))), count))
        elif kind == "truncate":
            steps.append((kind, draw(st.integers(0, 3 * BIG))))
        else:
            steps.append((kind,))
    return steps


@settings(max_examples=60, deadline=None)
@given(operations())
def test_series_matches_a_list(steps):
    series, reference = Series(), []
    for step in steps:
        if step[0] == "extend":
            series.extend(step[1].copy(), own=True)
            reference.extend(step[1].tolist())
        elif step[0] == "fill":
            series.fill(step[1], step[2])
            reference.extend([step[1]] * step[2])
        elif step[0] == "truncate":
            series.truncate(step[1])
            del reference[step[1] :]
        else:
            assert series.tolist() == reference
        assert len(series) == len(reference)
        assert series.last() == (reference[-1] if reference else None)
    assert series.tolist() == reference
    np.testing.assert_array_equal(series.array, np.array(reference))


def test_a_large_handed_over_block_is_kept_without_a_copy():
    series = Series()
    losses = np.linspace(0.0, 1.0, 2 * BIG)
    series.extend(losses, own=True)
    assert np.shares_memory(series.array, losses)
    np.testing.assert_array_equal(series.array, losses)
    rates = Series()
    rates.fill(0.5, 2 * BIG)
    rates.fill(0.25, 2 * BIG)
    assert rates.tolist() == [0.5] * (2 * BIG) + [0.25] * (2 * BIG)


def test_a_block_not_handed_over_is_copied():
    series, values = Series(), np.ones(2 * BIG)
    series.extend(values)
    values[:] = 7.0
    assert series.tolist() == [1.0] * (2 * BIG)


def test_tolist_grows_the_same_list():
    series = Series()
    series.fill(2.0, 3)
    first = series.tolist()
    series.extend(np.full(BIG, 3.0), own=True)
    assert series.tolist() is first and first == [2.0] * 3 + [3.0] * BIG


def test_two_dimensional_series():
    series = Series()
    block = np.arange(2 * BIG * 3, dtype=np.float64).reshape(-1, 3)
    series.extend(block[:2])
    series.extend(block[2:], own=True)
    np.testing.assert_array_equal(series.last(), block[-1])
    np.testing.assert_array_equal(series.array, block)


def test_final_loss_is_the_last_loss():
    result = TrainResult()
    assert result.final_loss is None
    result.record_epochs(np.array([3.0, 2.0]), lr=0.1)
    result.record_epochs(np.linspace(1.0, 0.5, BIG), lr=0.05)
    assert result.final_loss == result.loss[-1] == 0.5
    assert result.lr == [0.1, 0.1] + [0.05] * BIG


@pytest.mark.parametrize("epochs", [1, 5000])
def test_train_history_lengths(epochs):
    import fastbp

    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    T = np.array([[0], [1], [1], [0]], np.float32)
    model = fastbp.mlp([2, 4, 1], "tanh", rng=0)
    result = fastbp.train(
        model, fastbp.MSELoss(), fastbp.SGD(model.parameters(), lr=0.1), X, T,
        epochs=epochs, batch_size=4, shuffle=False,
    )  # fmt: skip
    assert len(result.loss) == len(result.lr) == epochs
    assert result.lr == [0.1] * epochs
    assert result.final_loss == result.loss[-1]
