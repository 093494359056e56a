"""fastbp.data.plan and the predictor's table reading: a column reaches the
plan in another Arrow type than the training rows had (a CSV's text where a
DataFrame had dates or bools, and back), and pandas columns Arrow cannot type.

References are plain Python (datetime's own calendar) and NumPy."""

import datetime as dt

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")

from fastbp.data.plan import (  # noqa: E402
    DATE_FORMATS,
    PlanOptions,
    TableStats,
    bools_of,
    dates_of,
    infer_plan,
)
from fastbp.data.predictor import arrow_column, as_table  # noqa: E402

DAYS = [
    dt.datetime(2012, 1, 31),
    dt.datetime(2013, 5, 2),
    None,
    dt.datetime(2016, 2, 29),
    dt.datetime(2014, 12, 25),
]


def parts_of(days):
    """year, month, day of year, day of week (Monday 0), hour; NaN rows for
    None: the reference for dates_of."""
    return np.array(
        [
            [np.nan] * 5
            if d is None
            else [d.year, d.month, d.timetuple().tm_yday, d.weekday(), d.hour]
            for d in days
        ]
    )


def test_dates_of_reads_arrow_stamps_under_a_text_format():
    # A model trained on a CSV ("%Y-%m-%d" text) served a DataFrame's
    # datetime64 column: the stamps are read as they are.
    stamps = pa.array(DAYS, pa.timestamp("s"))
    parts, usable = dates_of(stamps, "%Y-%m-%d", ("",))
    np.testing.assert_array_equal(parts, parts_of(DAYS))
    np.testing.assert_array_equal(usable, [d is not None for d in DAYS])
    dates = pa.array([d.date() if d else None for d in DAYS], pa.date32())
    np.testing.assert_array_equal(dates_of(dates, "%Y/%m/%d", ("",))[0], parts_of(DAYS))


def test_dates_of_reads_text_under_an_arrow_plan_in_every_date_format():
    # A model trained on Arrow dates (format "") served a CSV's text: each
    # cell in whichever of DATE_FORMATS reads it; a cell no format reads is
    # missing.
    days = [dt.datetime(2012, 1, 31, 10, 30), dt.datetime(2013, 5, 2), None]
    assert "%Y/%m/%d %H:%M" in DATE_FORMATS
    text = pa.array(["2012/01/31 10:30", " 2013-05-02", "NA"])
    parts, usable = dates_of(text, "", ("", "NA"))
    np.testing.assert_array_equal(parts, parts_of(days))
    np.testing.assert_array_equal(usable, [True, True, False])
    bad = dates_of(pa.array(["31.01.2012", "soon"]), "", ("",))
    assert not bad[1].any() and np.isnan(bad[0]).all()


@pytest.mark.parametrize("kind", ["timestamp", "date32"])
def test_a_datetime_plan_encodes_text_and_stamps_alike(kind):
    # date32: a Parquet date column, or a pandas column of datetime.date.
    if kind == "date32":
        column = pa.array([d.date() if d else None for d in DAYS], pa.date32())
    else:
        column = pa.array(DAYS, pa.timestamp("s"))
    train = pa.table({"d": column})
    stats = TableStats(train.schema, np.float64, PlanOptions())
    stats.add(train, np.ones(len(DAYS), bool), 0)
    plan = infer_plan(stats)
    assert plan.columns[0].role == "datetime" and plan.columns[0].format == ""
    text = [d.strftime("%Y-%m-%d") if d else "" for d in DAYS]
    from_text = plan.encode(pa.table({"d": text}), np.float64)
    np.testing.assert_array_equal(from_text, plan.encode(train, np.float64))
    # The missing row took the training rows' medians, and is flagged.
    medians = np.nanmedian(parts_of(DAYS)[:, :4], axis=0)
    np.testing.assert_array_equal(from_text[2], [*medians, 1.0])


def test_bools_of_numbers_reads_one_and_zero():
    values, usable = bools_of(pa.array([1, 0, 2, None, 1]), ("",))
    np.testing.assert_array_equal(values, [1, 0, np.nan, np.nan, 1])
    np.testing.assert_array_equal(usable, [True, True, False, False, True])
    values, usable = bools_of(pa.array([1.0, np.nan, 0.0]), ("",))
    np.testing.assert_array_equal(values, [1, np.nan, 0])


def test_a_pandas_column_of_mixed_objects_becomes_its_text():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(
        {
            "mixed": [1, "two", 3.5, None, np.nan],
            "x": [1.0, 2.0, 3.0, 4.0, 5.0],
            "when": pd.to_datetime(["2012-01-31", None, "2013-05-02", None, None]),
        }
    )
    with pytest.raises((pa.ArrowException, TypeError, ValueError)):
        pa.Table.from_pandas(df)  # why the fallback exists
    table = as_table(df)
    assert table.column_names == ["mixed", "x", "when"]
    assert table.column("mixed").to_pylist() == ["1", "two", "3.5", None, None]
    assert table.column("x").type == pa.float64()
    assert pa.types.is_timestamp(table.column("when").type)
    assert table.column("when").null_count == 3
    # A dict is a table of columns; a scipy dok_matrix (a dict) is not.
    assert as_table({"a": [1, 2]}).column("a").to_pylist() == [1, 2]
    sparse = pytest.importorskip("scipy.sparse")
    assert as_table(sparse.dok_matrix(np.eye(2))) is None


def test_arrow_column_keeps_types_and_missing_cells():
    assert arrow_column(np.array([1.0, np.nan])).null_count == 1
    assert arrow_column(np.array([True, False])).type == pa.bool_()
    assert arrow_column(np.array(["a", None], dtype=object)).to_pylist() == ["a", None]
    mixed = arrow_column(np.array([{"k": 1}, 0.5, np.nan], dtype=object))
    assert mixed.to_pylist() == ["{'k': 1}", "0.5", None]
