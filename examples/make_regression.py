"""Write examples/regression.csv: 200 rows, features x1, x2, x3, target y.

    y = sin(pi * x1) + 0.5 * x2**2 - x1 * x3 + noise,   noise ~ N(0, 0.05**2)

with x1, x2, x3 uniform on [-1, 1]. The seed is fixed and values are rounded
to 6 decimals, so running the script again reproduces the file byte for byte:

    python examples/make_regression.py [OUTPUT]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

SEED = 20240611
N_ROWS = 200
NOISE = 0.05


def make(n_rows: int = N_ROWS, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Features X of shape (n_rows, 3) and target y of shape (n_rows,)."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1.0, 1.0, size=(n_rows, 3))
    x1, x2, x3 = X.T
    y = np.sin(np.pi * x1) + 0.5 * x2**2 - x1 * x3 + rng.normal(0.0, NOISE, n_rows)
    return X, y


def main(argv: list[str]) -> None:
    out = Path(argv[1]) if len(argv) > 1 else Path(__file__).with_name("regression.csv")
    X, y = make()
    lines = ["x1,x2,x3,y"]
    lines += [
        ",".join(f"{v:.6f}" for v in (*row, t)) for row, t in zip(X, y, strict=True)
    ]
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out} ({len(y)} rows)")


if __name__ == "__main__":
    main(sys.argv)
