"""Write a small raw table, the kind ``fastbp train`` reads as it is.

300 made-up customers, one row each, with the columns a real export has:

    customer_id  C1000, C1001, ...: every value distinct (an identifier)
    name         "customer 0", ...: free text
    plan         basic, plus, pro, or an empty cell
    region       R0 ... R29: 30 levels
    age          a whole number, "?" or an empty cell
    signup       a date in 2024, written 2024-04-02
    autopay      true or false
    churned      yes or no: the target, more often yes on the pro plan
                 and without autopay

The seed is fixed, so the file is the same on every run:

    python examples/make_customers.py [OUTPUT]     (default: customers.csv)
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

SEED = 0
N_ROWS = 300
COLUMNS = ["customer_id", "name", "plan", "region", "age", "signup", "autopay"]


def main(argv: list[str]) -> None:
    out = Path(argv[1]) if len(argv) > 1 else Path("customers.csv")
    rng = np.random.default_rng(SEED)
    with out.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*COLUMNS, "churned"])
        for i in range(N_ROWS):
            plan = rng.choice(["basic", "plus", "pro", ""])
            age = rng.choice([str(rng.integers(18, 80)), "?", ""], p=[0.9, 0.05, 0.05])
            signup = f"2024-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d}"
            autopay = rng.choice(["true", "false"])
            risk = (plan == "pro") + (autopay == "false") + rng.normal(0.0, 0.5)
            region = f"R{rng.integers(30)}"
            churned = "yes" if risk > 1 else "no"
            row = [f"C{1000 + i}", f"customer {i}", plan, region, age, signup]
            writer.writerow([*row, autopay, churned])
    print(f"wrote {out} ({N_ROWS} rows)")


if __name__ == "__main__":
    main(sys.argv)
