"""Write examples/houses.csv: a raw table as tables come, 600 houses.

Columns: an unnamed first column (pandas' index, as ``DataFrame.to_csv``
writes it), ``id`` (a listing number), ``district`` (text: 5 levels),
``built`` (a date, 2000/01/01 to 2023/12/31, as text), ``rooms`` (1-7, "NA"
where unknown), ``area`` (m^2, empty where unknown), ``garage`` (true/false),
``agent`` (free text: a name per row) and the target ``price`` (thousands):

    price = 2.1 * area + 18 * rooms + district premium + 25 * garage
            + 1.5 * (year - 2000) + noise

The seed is fixed, so running the script again reproduces the file byte for
byte:

    python examples/make_houses.py [OUTPUT]
"""

from __future__ import annotations

import csv
import datetime as dt
import sys
from pathlib import Path

import numpy as np

SEED = 20261207
N_ROWS = 600
DISTRICTS = {"north": 40.0, "south": 0.0, "east": 15.0, "west": 25.0, "center": 80.0}


def rows(n_rows: int = N_ROWS, seed: int = SEED) -> list[list[str]]:
    """The table's rows as text, header first."""
    rng = np.random.default_rng(seed)
    names = list(DISTRICTS)
    out = [["", "id", "district", "built", "rooms", "area", "garage", "agent", "price"]]
    for i in range(n_rows):
        district = names[rng.integers(len(names))]
        built = dt.date(2000, 1, 1) + dt.timedelta(days=int(rng.integers(0, 8766)))
        rooms = int(rng.integers(1, 8))
        area = round(float(rng.normal(30 + 20 * rooms, 12)), 1)
        garage = bool(rng.random() < 0.4)
        price = (
            2.1 * area + 18 * rooms + DISTRICTS[district] + 25 * garage
            + 1.5 * (built.year - 2000) + rng.normal(0, 12)
        )  # fmt: skip
        out.append([
            str(i),
            str(100_000 + 7 * i),
            district,
            built.strftime("%Y/%m/%d"),
            "NA" if rng.random() < 0.05 else str(rooms),
            "" if rng.random() < 0.08 else f"{area}",
            "true" if garage else "false",
            f"agent {rng.integers(10**6):06d}",
            f"{price:.1f}",
        ])  # fmt: skip
    return out


def main(argv: list[str]) -> None:
    path = Path(argv[0]) if argv else Path(__file__).with_name("houses.csv")
    with open(path, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows())


if __name__ == "__main__":
    main(sys.argv[1:])
