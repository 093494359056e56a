"""A raw table as users have them, for the tests of TableEncoder and of the
estimators' model files, and running the installed ``fastbp`` command."""

import subprocess
import sys

import numpy as np

CITIES = ["Oslo", "Rome", "Lima", "Pune", "Kyiv", "Suva"]


def raw_frame(n=200, seed=0):
    """A raw table as users have them: a row id, numbers with missing cells,
    text categories (with "NA" and None), bools with missing, dates with
    missing, free text, and two targets: "label" (high/mid/low) and "spend"
    (a number)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    age = rng.normal(40, 12, n).round(1)
    age[rng.random(n) < 0.1] = np.nan
    # Distinct frequencies, so the most frequent levels are unambiguous.
    city = rng.choice(CITIES, n, p=[0.35, 0.25, 0.17, 0.12, 0.07, 0.04]).astype(object)
    city[rng.random(n) < 0.05] = None
    city[rng.random(n) < 0.03] = "NA"
    member = rng.random(n) < 0.4
    member = np.where(rng.random(n) < 0.08, None, member).astype(object)
    joined = pd.Series(pd.to_datetime("2015-01-01") + pd.to_timedelta(
        rng.integers(0, 3000, n), unit="D"))  # fmt: skip
    joined[rng.random(n) < 0.07] = pd.NaT
    note = [f"note {i} {rng.integers(1 << 30)}" for i in range(n)]
    score = (
        np.nan_to_num(age - 40) / 12
        + (city == "Rome")
        - (city == "Lima")
        + 0.8 * (member == True)  # noqa: E712
        + rng.normal(0, 0.3, n)
    )
    label = np.where(score > 0.5, "high", np.where(score < -0.3, "low", "mid"))
    return pd.DataFrame(
        {
            "id": rng.permutation(n),
            "age": age,
            "city": city,
            "member": member,
            "joined": joined,
            "note": note,
            "label": label,
            "spend": (500 + 120 * score).round(2),
        }
    )


def write_csv(df, path):
    """The table as a user's CSV (``DataFrame.to_csv``): missing cells empty
    (and "NA" where the frame says so), dates as ISO text, bools as
    True/False."""
    df.to_csv(path, index=False)
    return path


def run_fastbp(*args) -> str:
    """Run ``python -m fastbp ARGS`` as a user does; its standard output
    (AssertionError with its standard error if it fails)."""
    proc = subprocess.run(
        [sys.executable, "-m", "fastbp", *map(str, args)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout
