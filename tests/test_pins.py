"""Models trained before and after a change are the same: every scenario of
tests/pin_scenarios.py against the results fastbp 0.1 (commit a7cbb13, before
the one training loop) gave, stored in tests/fixtures/pins.npz.

On the machine that wrote the file the runs agree bit for bit (OpenBLAS's
threaded products can move the last bit of one scenario between runs); across
machines the vector width changes the order of fast-math sums, so the check is
float64 rounding over the run: 1e-12 relative.
"""

from pathlib import Path

import numpy as np
import pytest
from pin_scenarios import pins

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "pins.npz"


@pytest.fixture(scope="module")
def now():
    return pins()


def test_pins_cover_every_scenario(now):
    with np.load(FIXTURE) as stored:
        assert sorted(stored.files) == sorted(now)


@pytest.mark.parametrize("key", sorted(np.load(FIXTURE).files))
def test_pinned_result_unchanged(key, now):
    with np.load(FIXTURE) as stored:
        expected = stored[key]
    assert now[key].shape == expected.shape
    np.testing.assert_allclose(now[key], expected, rtol=1e-12, atol=1e-14)
