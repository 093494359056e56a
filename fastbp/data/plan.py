"""The column plan: what each column of a raw table is and how it becomes the
network's inputs.

A raw table (text categories, missing cells, dates, an ID column, pandas'
index column, bools) is read column by column into a :class:`TableStats` of
its training rows, chunk by chunk (:mod:`fastbp.data.stats`: the same
statistics for a table in memory, a streamed table's first pass, and the
shards of MPI ranks merged). :func:`infer_plan` then gives each column a
role:

=============  ==============================================================
numeric        numbers (Arrow numbers, or text cells that are numbers); a
               few other tokens, such as "?", are read as missing
boolean        Arrow bools, or the text true/false: 1.0 / 0.0
categorical    text with few distinct values (or ``categorical=``): one-hot
               of the ``max_categories`` most frequent levels, then one
               "(other)" input for the rest and for levels never seen
datetime       Arrow dates and timestamps, or ISO-like date/time text
               (2012-01-31, 2012/01/31, 2012-01-31 10:30:00): year, month,
               day of year, day of week (Monday 0), and hour where times vary
identifier     a pandas index column (unnamed first column), an integer
               column that is a unique row counter (a permutation of a range;
               in a table of 50 rows or more, or named like an ID), an
               ID-named column whose values are all distinct: left out
text           text with nearly all values distinct (names, free text): left
               out
dropped        asked for (``drop=``, or not among ``features=``), or empty
=============  ==============================================================

Missing cells are one thing whatever the format: an empty cell, one of
``na_values`` ("NA", "N/A", "NaN", "null", "None" ...), an Arrow null or a
float NaN. A numeric, boolean or datetime input is filled with the training
rows' median and gains a 0/1 "missing" input when the training rows had any
missing; a categorical column's missing cells are the level "(missing)".

Each numeric input (numbers, booleans, date parts) is then standardized with
the mean and standard deviation of its training rows' values (missing ones
left out); one-hot and missing-indicator inputs stay 0/1. The plan is JSON
data (:meth:`TablePlan.to_json`), stored in the model file, and
:meth:`TablePlan.encode` applies it to any rows: new missing cells are
filled, unseen levels go to "(other)", and nothing fails.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from .stats import BottomK, Levels, Moments

__all__ = [
    "NA_VALUES",
    "MAX_CATEGORIES",
    "ROLES",
    "PlanOptions",
    "ColumnStats",
    "TableStats",
    "ColumnPlan",
    "TablePlan",
    "infer_plan",
    "PlanError",
]

#: The spellings of a missing cell (besides Arrow nulls and float NaN).
NA_VALUES = ("", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "n/a", "#N/A")

#: Levels a categorical column one-hot codes by default; the rest share one
#: "(other)" input (scikit-learn's OneHotEncoder has max_categories too).
MAX_CATEGORIES = 20

ROLES = (
    "numeric",
    "boolean",
    "categorical",
    "datetime",
    "identifier",
    "text",
    "dropped",
)
USED_ROLES = ("numeric", "boolean", "categorical", "datetime")

#: A text column is numeric when at least this share of its cells are numbers
#: (the others, such as "?", read as missing).
NUMERIC_SHARE = 0.9

#: A text column with more distinct values than this share of its cells (and
#: more than max_categories) is free text or an identifier.
TEXT_DISTINCT_SHARE = 0.5

MISSING_LEVEL = "(missing)"
OTHER_LEVEL = "(other)"
DATE_PARTS = ("year", "month", "day_of_year", "day_of_week", "hour")
#: Text formats of dates and times, tried in order on a column's first cells.
DATE_FORMATS = (
    "%Y-%m-%d",
    "%Y/%m/%d",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%Y/%m/%d %H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M",
)
_NUMBER = r"^[+-]?((\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|(?i:inf|infinity))$"
_INDEX_NAMES = ("", "Unnamed: 0", "__index_level_0__", "rownames")
_ID_NAME = re.compile(r"(^|[_\s.-])id$|^id([_\s.-]|$)|[a-z]Id$", re.IGNORECASE)


class PlanError(ValueError):
    """A column that cannot be given a role, or options that do not fit the
    table; one line naming the column."""


@dataclass(frozen=True)
class PlanOptions:
    """What the user says about the columns (all by name).

    categorical, numeric : columns forced to that role
    drop : columns left out
    features : when given, the only columns used (besides the target)
    na_values : spellings of a missing cell
    max_categories : levels one-hot coded per categorical column (>= 1)
    strict : clean numbers only: a missing or non-numeric cell is an error
        naming its line (CSV) or data row, and column (streamed and sharded
        reading; a table read into memory with ``--strict`` takes the
        clean-number reader)
    """

    categorical: tuple[str, ...] = ()
    numeric: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()
    features: tuple[str, ...] | None = None
    na_values: tuple[str, ...] = NA_VALUES
    max_categories: int = MAX_CATEGORIES
    strict: bool = False

    def __post_init__(self) -> None:
        both = set(self.categorical) & set(self.numeric)
        if both:
            raise PlanError(
                f"column {sorted(both)[0]!r} is given as both categorical and numeric"
            )
        if not (isinstance(self.max_categories, int) and self.max_categories >= 1):
            raise PlanError(
                f"max_categories must be an integer >= 1, got {self.max_categories!r}"
            )

    def check_names(self, names: list[str], target: str, where: str) -> None:
        """PlanError for an option naming a column the table does not have
        (or the target)."""
        for option in ("categorical", "numeric", "drop", "features"):
            for name in getattr(self, option) or ():
                if name == target:
                    raise PlanError(
                        f"{where}: {option} names the target column {name!r}"
                    )
                if name not in names:
                    raise PlanError(
                        f"{where}: {option} names {name!r}, which is not a column; "
                        f"columns: {', '.join(map(repr, names))}"
                    )


# --- reading a column's cells ---------------------------------------------------


def _types():
    import pyarrow as pa
    import pyarrow.compute as pc

    return pa, pc


def kind_of(arrow_type) -> str:
    """How an Arrow type is read: "number", "bool", "datetime", "text" or
    "other"."""
    pa, _ = _types()
    if pa.types.is_dictionary(arrow_type):
        return kind_of(arrow_type.value_type)
    if (
        pa.types.is_integer(arrow_type)
        or pa.types.is_floating(arrow_type)
        or pa.types.is_decimal(arrow_type)
    ):
        return "number"
    if pa.types.is_boolean(arrow_type):
        return "bool"
    if pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type):
        return "datetime"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "text"
    if pa.types.is_null(arrow_type):
        return "text"
    return "other"


def _plain(column):
    """A chunked or dictionary column as one plain Arrow array."""
    pa, pc = _types()
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if pa.types.is_null(column.type):
        column = pa.nulls(len(column), pa.string())
    return column


def text_cells(column, na_values: tuple[str, ...]):
    """A text column's cells, surrounding spaces stripped, with each
    spelling of a missing cell as null."""
    pa, pc = _types()
    column = pc.utf8_trim_whitespace(_plain(column))
    missing = pc.is_in(column, value_set=pa.array(list(na_values), pa.string()))
    return pc.if_else(missing, pa.scalar(None, pa.string()), column)


def numbers_of(column, na_values: tuple[str, ...]) -> tuple[NDArray, NDArray]:
    """(values float64, usable bool) of any column read as numbers: nulls,
    NaN and text that is not a number are NaN, infinities stay; only finite
    values are usable."""
    pa, pc = _types()
    column = _plain(column)
    kind = kind_of(column.type)
    if kind == "number":
        values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
    elif kind == "bool":
        values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
    elif kind == "text":
        cells = text_cells(column, na_values)
        ok = pc.fill_null(pc.match_substring_regex(cells, _NUMBER), False)
        parsed = pc.cast(pc.if_else(ok, cells, pa.scalar("nan")), pa.float64())
        values = parsed.to_numpy(zero_copy_only=False)
    else:
        values = np.full(len(column), np.nan)
    values = np.asarray(values, dtype=np.float64)
    return values, np.isfinite(values)


def bools_of(column, na_values: tuple[str, ...]) -> tuple[NDArray, NDArray]:
    """(values 1.0/0.0, usable) of an Arrow bool or a true/false text column
    (or of numbers: 1 and 0; the other values missing)."""
    pa, pc = _types()
    column = _plain(column)
    kind = kind_of(column.type)
    if kind == "bool":
        usable = ~column.is_null().to_numpy(zero_copy_only=False)
        values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
        return np.where(usable, values, np.nan), usable
    if kind in ("number", "datetime", "other"):
        values, _ = numbers_of(column, na_values)
        usable = (values == 0) | (values == 1)
        return np.where(usable, values, np.nan), usable
    cells = pc.utf8_lower(text_cells(column, na_values))
    true = pc.fill_null(pc.equal(cells, "true"), False).to_numpy(zero_copy_only=False)
    false = pc.fill_null(pc.equal(cells, "false"), False).to_numpy(zero_copy_only=False)
    usable = true | false
    return np.where(usable, true.astype(np.float64), np.nan), usable


def date_format(column, na_values: tuple[str, ...]) -> str | None:
    """The first of DATE_FORMATS that reads every one of the column's first
    1000 cells that are present, or None ("" for an Arrow date/timestamp)."""
    pa, pc = _types()
    column = _plain(column)
    kind = kind_of(column.type)
    if kind == "datetime":
        return ""
    if kind != "text":
        return None
    cells = pc.drop_null(text_cells(column, na_values))[:1000]
    if len(cells) == 0:
        return None
    for fmt in DATE_FORMATS:
        parsed = pc.strptime(cells, format=fmt, unit="s", error_is_null=True)
        if parsed.null_count == 0:
            return fmt
    return None


def dates_of(column, fmt: str, na_values) -> tuple[NDArray, NDArray]:
    """(parts (n, 5) float64: year, month, day of year, day of week with
    Monday 0, hour; usable bool (n,)) of a date/time column: Arrow dates and
    timestamps as they are, text read with fmt (the format the training
    rows' text had; "" when they were Arrow dates: then each cell in the
    first of DATE_FORMATS that reads it)."""
    pa, pc = _types()
    column = _plain(column)
    kind = kind_of(column.type)
    if kind == "datetime":
        # Dates as midnight stamps (Arrow has no hour of a date).
        is_date = pa.types.is_date(column.type)
        stamps = pc.cast(column, pa.timestamp("s")) if is_date else column
    elif kind == "text":
        cells = text_cells(column, na_values)
        stamps = None
        for f in (fmt,) if fmt else DATE_FORMATS:
            parsed = pc.strptime(cells, format=f, unit="s", error_is_null=True)
            stamps = parsed if stamps is None else pc.coalesce(stamps, parsed)
    else:  # numbers or bools are no dates
        stamps = pa.nulls(len(column), pa.timestamp("s"))
    usable = ~stamps.is_null().to_numpy(zero_copy_only=False)
    parts = np.empty((len(column), len(DATE_PARTS)))
    for j, part in enumerate(
        (pc.year, pc.month, pc.day_of_year, pc.day_of_week, pc.hour)
    ):
        values = pc.fill_null(pc.cast(part(stamps), pa.float64()), np.nan)
        parts[:, j] = values.to_numpy(zero_copy_only=False)
    parts[~usable] = np.nan
    return parts, usable


def labels_of(column, na_values) -> list:
    """A column's cells as level strings: text stripped, numbers and bools as
    their text, a missing cell as MISSING_LEVEL."""
    pa, pc = _types()
    column = _plain(column)
    kind = kind_of(column.type)
    if kind == "text":
        cells = text_cells(column, na_values)
    elif kind == "number":
        cells = _number_text(column)
    else:
        cells = pc.cast(column, pa.string())
    return pc.fill_null(cells, MISSING_LEVEL)


def _number_text(column):
    """Numbers as text, integral floats without ".0" (so 3 and 3.0 are one
    level)."""
    pa, pc = _types()
    if pa.types.is_floating(column.type):
        values = column.to_numpy(zero_copy_only=False)
        with np.errstate(invalid="ignore"):
            integral = np.isfinite(values) & (values == np.round(values))
        if (
            np.all(integral | np.isnan(values))
            and np.nanmax(np.abs(values), initial=0) < 2**53
        ):
            column = pc.cast(column, pa.int64(), safe=False)
    text = pc.cast(column, pa.string())
    return pc.if_else(
        pc.is_nan(pc.cast(column, pa.float64())), pa.scalar(None, pa.string()), text
    )


# --- statistics of the training rows -----------------------------------------


class ColumnStats:
    """What the training rows say about one raw column, chunk by chunk.

    Counts cells, missing cells, and cells that read as numbers, booleans or
    dates; keeps the statistics each role needs (moments and a median
    sample of the numbers, of the booleans and of each date part; the text
    levels and their counts; whether the numbers are a permutation of a
    range, i.e. a row counter). ``levels`` are counted for text columns, and
    for number columns only when ``want_levels`` (forced categorical, or an
    ID-like name).
    """

    def __init__(
        self, name: str, kind: str, dtype, na_values, seed: int = 0,
        want_levels: bool = False,
    ) -> None:  # fmt: skip
        self.name, self.kind, self.dtype = name, kind, np.dtype(dtype)
        self.na_values, self.seed = tuple(na_values), seed
        self.want_levels = want_levels or kind == "text"
        self.rows = self.missing = 0
        self.n_number = self.n_numberlike = self.n_bool = self.n_date = 0
        self.integers = True
        self.low, self.high = math.inf, -math.inf
        self.hash_sum = np.uint64(0)
        self.tokens = Levels(cap=8)  # text cells that are not numbers
        self.levels = Levels()
        self.number = (Moments(1), BottomK(seed=seed))
        self.boolean = (Moments(1), BottomK(seed=seed))
        self.date_fmt: str | None = "" if kind == "datetime" else None
        self.dates = (
            Moments(len(DATE_PARTS)),
            [BottomK(seed=seed) for _ in DATE_PARTS],
        )
        self.times = False

    def add(self, column, rows: NDArray) -> None:
        """Take the cells of the training rows ``rows`` (their 0-based
        numbers in the table) of this column."""
        n = len(column)
        if n == 0:
            return
        self.rows += n
        kind, na = self.kind, self.na_values
        if kind == "text":
            self.missing += self._levels(column)
            values, usable = numbers_of(column, na)
            self._numbers(values, usable, rows)
            self._booleans(column, rows)
            self._dates(column, rows)
        elif kind == "number":
            values, usable = numbers_of(column, na)
            self.missing += int(n - usable.sum())
            self._numbers(values, usable, rows)
            if self.want_levels:
                self._levels(column)
        elif kind == "bool":
            self.missing += self._booleans(column, rows)
        elif kind == "datetime":
            self.missing += self._dates(column, rows)
        else:
            self.missing += column.null_count

    def _levels(self, column) -> int:
        """Count the column's levels (a missing cell is MISSING_LEVEL);
        returns the missing cells."""
        pa, pc = _types()
        counts = pc.value_counts(labels_of(column, self.na_values))
        values = counts.field("values").to_pylist()
        numbers = counts.field("counts").to_pylist()
        self.levels.add(values, numbers)
        return dict(zip(values, numbers, strict=True)).get(MISSING_LEVEL, 0)

    def _numbers(self, values: NDArray, usable: NDArray, rows: NDArray) -> None:
        k = int(usable.sum())
        self.n_number += k
        self.n_numberlike += int(np.count_nonzero(~np.isnan(values)))
        if k == 0:
            return
        good = values[usable]
        too_large = np.abs(good) > np.finfo(self.dtype).max
        if too_large.any():
            i = int(np.argmax(too_large))
            raise PlanError(
                f"column {self.name!r}, data row {int(rows[usable][i]) + 1}: "
                f"{good[i]:g} is too large for {self.dtype} (use float64)"
            )
        self.integers &= bool(np.all(good == np.floor(good)))
        self.low = min(self.low, float(good.min()))
        self.high = max(self.high, float(good.max()))
        if self.integers and self.low >= 0 and self.high < 2**62:
            with np.errstate(over="ignore"):  # a sum modulo 2**64
                self.hash_sum += _hash_values(good.astype(np.uint64))
        self._stat(self.number, good, rows[usable])

    def _booleans(self, column, rows: NDArray) -> int:
        """Count and take the cells that are booleans; returns the others."""
        truth, ok = bools_of(column, self.na_values)
        k = int(ok.sum())
        self.n_bool += k
        if k:
            self._stat(self.boolean, truth[ok], rows[ok])
        return len(column) - k

    def _dates(self, column, rows: NDArray) -> int:
        """Count and take the cells that are dates (the text format chosen
        from the first cells seen); returns the others."""
        if self.date_fmt is None:
            self.date_fmt = date_format(column, self.na_values)
            if self.date_fmt is None:
                return len(column)
        parts, ok = dates_of(column, self.date_fmt, self.na_values)
        k = int(ok.sum())
        self.n_date += k
        if k:
            self.dates[0].add(parts[ok].astype(self.dtype))
            for j, sample in enumerate(self.dates[1]):
                sample.add(parts[ok, j], rows[ok])
            self.times |= bool(np.any(parts[ok, 4] != 0))
        return len(column) - k

    def _stat(self, pair, values: NDArray, rows: NDArray) -> None:
        moments, sample = pair
        moments.add(values.astype(self.dtype))
        sample.add(values, rows)

    def merge(self, other: ColumnStats) -> None:
        """Add another chunk's (or rank's) statistics of this column."""
        self.rows += other.rows
        self.missing += other.missing
        self.n_number += other.n_number
        self.n_numberlike += other.n_numberlike
        self.n_bool += other.n_bool
        self.n_date += other.n_date
        self.integers &= other.integers
        self.low, self.high = min(self.low, other.low), max(self.high, other.high)
        with np.errstate(over="ignore"):  # a sum modulo 2**64
            self.hash_sum += other.hash_sum
        self.tokens.merge(other.tokens)
        self.levels.merge(other.levels)
        for mine, theirs in (
            (self.number, other.number),
            (self.boolean, other.boolean),
        ):
            mine[0].merge(theirs[0])
            mine[1].merge(theirs[1])
        if self.date_fmt is None:
            self.date_fmt = other.date_fmt
        self.dates[0].merge(other.dates[0])
        for mine, theirs in zip(self.dates[1], other.dates[1], strict=True):
            mine.merge(theirs)
        self.times |= other.times

    @property
    def present(self) -> int:
        """Cells that are not missing."""
        return self.rows - self.missing

    def row_counter(self) -> bool:
        """True when the numbers are integers forming a permutation of a
        range (min..max, each once), with no cell missing: a row counter.
        Tested by count, range and a sum of hashes of the values (equal
        for a permutation; different otherwise but with probability 2**-64)."""
        if not (self.integers and self.missing == 0 and self.n_number == self.rows):
            return False
        if self.rows < 3 or self.low < 0 or self.high - self.low + 1 != self.rows:
            return False
        expected = _hash_values(
            np.arange(int(self.low), int(self.high) + 1, dtype=np.uint64)
        )
        return expected == self.hash_sum


def _hash_values(values: NDArray) -> np.uint64:
    """The sum (mod 2**64) of splitmix64 of each value: equal for two
    multisets of values with overwhelming probability only if equal."""
    from .stats import row_hash

    with np.errstate(over="ignore"):
        return np.sum(row_hash(values, seed=0x5EED), dtype=np.uint64)


class TableStats:
    """A :class:`ColumnStats` per feature column of a table, built from
    record batches (or a whole ``pyarrow.Table``) and their training rows.

    ``schema`` gives the columns (the target left out) and their Arrow
    types; ``seed`` the row hash of the median samples.
    """

    def __init__(
        self, schema, dtype, options: PlanOptions = None, seed: int = 0
    ) -> None:
        options = options or PlanOptions()
        self.names = list(schema.names)
        self.na_values = tuple(options.na_values)
        self.columns = {}
        for name in self.names:
            kind = kind_of(schema.field(name).type)
            want = name in options.categorical or bool(_ID_NAME.search(name))
            self.columns[name] = ColumnStats(
                name, kind, dtype, self.na_values, seed, want_levels=want
            )

    def add(self, batch, train: NDArray, first_row: int) -> None:
        """Take the training rows (bool mask ``train``) of a record batch
        whose first row is the table's row ``first_row`` (0-based)."""
        import pyarrow as pa

        rows = np.flatnonzero(train) + first_row
        mask = None if train.all() else pa.array(train)
        for name in self.names:
            column = batch.column(name)
            if mask is not None:
                column = column.filter(mask)
            stats = self.columns[name]
            stats.add(column, rows)
            if stats.kind == "text":
                _collect_tokens(stats, column)

    def merge(self, other: TableStats) -> None:
        """Add another table part's statistics (a chunk's, a rank's)."""
        for name in self.names:
            self.columns[name].merge(other.columns[name])


def _collect_tokens(stats: ColumnStats, column) -> None:
    """The first few text cells of a column that are not numbers (for the
    note saying they were read as missing)."""
    if stats.tokens.overflow or len(stats.tokens.counts) >= 5:
        return
    pa, pc = _types()
    cells = text_cells(column, stats.na_values)
    ok = pc.fill_null(pc.match_substring_regex(cells, _NUMBER), True)
    bad = pc.drop_null(pc.filter(cells, pc.invert(ok)))
    if len(bad):
        stats.tokens.add(pc.unique(bad[:1000]).to_pylist()[:5])


# --- the plan -------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnPlan:
    """One raw column's role and how it becomes inputs (see the module notes).

    ``inputs`` names the model inputs it gives (none when left out);
    ``fill`` the values missing cells take (one per numeric input: a float,
    or a list for a date's parts); ``indicator`` whether a 0/1 missing input
    follows; ``levels`` the one-hot levels of a categorical column;
    ``parts`` the date parts; ``format`` the text format of dates ("" for
    Arrow dates); ``mean``/``std`` the standardization of each of
    ``inputs`` (0/1 for one-hot and indicator inputs); ``reason`` why a
    column is left out or read as it is; ``missing`` the training rows'
    missing cells.
    """

    name: str
    role: str
    inputs: tuple[str, ...] = ()
    fill: object = None
    indicator: bool = False
    levels: tuple[str, ...] = ()
    parts: tuple[str, ...] = ()
    format: str = ""
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    reason: str = ""
    missing: int = 0

    @property
    def used(self) -> bool:
        return bool(self.inputs)

    def describe(self) -> str:
        """A few words: "numeric", "categorical (3 levels)", "datetime
        (year, month, ...)", "left out: unique row counter"."""
        if not self.used:
            return f"left out ({self.role}: {self.reason})"
        extra = []
        if self.role == "categorical":
            extra.append(f"{len(self.levels)} levels + other")
        if self.role == "datetime":
            extra.append(", ".join(self.parts))
        if self.missing:
            extra.append(f"{self.missing} missing")
        if self.reason:
            extra.append(self.reason)
        return self.role + (f" ({'; '.join(extra)})" if extra else "")

    def to_json(self) -> dict:
        data = {"name": self.name, "role": self.role, "inputs": list(self.inputs)}
        if self.role in ("numeric", "boolean", "datetime"):
            data.update(fill=self.fill, indicator=self.indicator)
        if self.role == "categorical":
            data["levels"] = list(self.levels)
        if self.role == "datetime":
            data.update(parts=list(self.parts), format=self.format)
        if self.used:
            data.update(mean=list(self.mean), std=list(self.std))
        if self.reason:
            data["reason"] = self.reason
        if self.missing:
            data["missing"] = self.missing
        return data

    @classmethod
    def from_json(cls, data: dict) -> ColumnPlan:
        fill = data.get("fill")
        return cls(
            name=data["name"],
            role=data["role"],
            inputs=tuple(data.get("inputs", ())),
            fill=tuple(fill) if isinstance(fill, list) else fill,
            indicator=bool(data.get("indicator", False)),
            levels=tuple(data.get("levels", ())),
            parts=tuple(data.get("parts", ())),
            format=data.get("format", ""),
            mean=tuple(data.get("mean", ())),
            std=tuple(data.get("std", ())),
            reason=data.get("reason", ""),
            missing=int(data.get("missing", 0)),
        )

    def encode(self, column, out: NDArray, na_values) -> None:
        """Write this column's inputs for the cells of ``column`` into out,
        (n, len(inputs)), unstandardized."""
        if self.role == "categorical":
            self._one_hot(column, out, na_values)
            return
        if self.role == "datetime":
            values, usable = dates_of(column, self.format, na_values)
            keep = [DATE_PARTS.index(p) for p in self.parts]
            values = values[:, keep]
        elif self.role == "boolean":
            values, usable = bools_of(column, na_values)
            values = values.reshape(-1, 1)
        else:
            values, usable = numbers_of(column, na_values)
            values = values.reshape(-1, 1)
        fill = np.atleast_1d(np.asarray(self.fill, dtype=np.float64))
        width = values.shape[1]
        out[:, :width] = np.where(usable[:, None], values, fill)
        if self.indicator:
            out[:, width] = ~usable

    def _one_hot(self, column, out: NDArray, na_values) -> None:
        pa, pc = _types()
        cells = labels_of(column, na_values)
        index = pc.index_in(cells, value_set=pa.array(list(self.levels), pa.string()))
        index = pc.fill_null(index, len(self.levels)).to_numpy(zero_copy_only=False)
        out[...] = 0
        out[np.arange(len(index)), index] = 1


@dataclass(frozen=True)
class TablePlan:
    """Every column's plan, in table order; the model's inputs are the
    concatenation of their ``inputs``. ``target`` names the column the plan
    leaves out as the target."""

    columns: tuple[ColumnPlan, ...]
    na_values: tuple[str, ...] = NA_VALUES
    target: str | None = None
    notes: tuple[str, ...] = field(default=(), compare=False)

    VERSION = 1

    @property
    def used(self) -> tuple[ColumnPlan, ...]:
        return tuple(c for c in self.columns if c.used)

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(name for c in self.columns for name in c.inputs)

    @property
    def raw_columns(self) -> tuple[str, ...]:
        """The columns a table must have to be encoded."""
        return tuple(c.name for c in self.used)

    def standardizer(self) -> tuple[NDArray, NDArray]:
        """(mean, std) of every input, float64."""
        mean = np.array([m for c in self.used for m in c.mean], dtype=np.float64)
        std = np.array([s for c in self.used for s in c.std], dtype=np.float64)
        return mean, std

    def only_numbers(self) -> bool:
        """True when every used column is numeric with nothing to fill: the
        plan of a clean numeric table, encoded by a plain cast."""
        return all(c.role == "numeric" and not c.indicator for c in self.used) and all(
            c.role in USED_ROLES for c in self.columns
        )

    def encode(self, table, dtype, out: NDArray | None = None) -> NDArray:
        """The inputs of every row of ``table`` (a ``pyarrow.Table`` or
        ``RecordBatch`` holding at least :attr:`raw_columns`), unstandardized,
        as a C-contiguous (n_rows, n_inputs) array of dtype (into ``out``
        when given). Missing cells take their fill, unseen levels go to
        "(other)": nothing fails."""
        n = table.num_rows
        if out is None:
            out = np.empty((n, len(self.inputs)), np.dtype(dtype))
        j = 0
        for column in self.used:
            width = len(column.inputs)
            block = np.empty((n, width))
            column.encode(table.column(column.name), block, self.na_values)
            with np.errstate(over="ignore"):
                out[:, j : j + width] = block
            j += width
        return out

    def summary(self) -> str:
        """One line of every column and its role, for the training header."""
        return "; ".join(f"{c.name!r}: {c.describe()}" for c in self.columns)

    def to_json(self) -> dict:
        return {
            "version": self.VERSION,
            "na_values": list(self.na_values),
            "columns": [c.to_json() for c in self.columns],
        }

    @classmethod
    def from_json(cls, data: dict) -> TablePlan:
        """The plan a model file stores (ValueError for one this version does
        not read)."""
        if not isinstance(data, dict) or data.get("version") != cls.VERSION:
            raise ValueError(
                f"'plan' must be a column plan of version {cls.VERSION}, got "
                f"{data.get('version') if isinstance(data, dict) else data!r}"
            )
        try:
            columns = tuple(ColumnPlan.from_json(c) for c in data["columns"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"'plan' holds a malformed column ({exc!r})") from None
        for c in columns:
            if c.role not in ROLES:
                raise ValueError(f"'plan': column {c.name!r} has role {c.role!r}")
        return cls(columns, tuple(data.get("na_values", NA_VALUES)))


def numeric_plan(names: list[str], mean, std) -> TablePlan:
    """The plan of a clean numeric table: every column a numeric input,
    standardized with ``mean`` and ``std``."""
    return TablePlan(
        tuple(
            ColumnPlan(name, "numeric", (name,), 0.0, mean=(float(m),), std=(float(s),))
            for name, m, s in zip(names, mean, std, strict=True)
        )
    )


def infer_plan(
    stats: TableStats, options: PlanOptions | None = None, *, where: str = "data"
) -> TablePlan:
    """Each column's role and encoding from the training rows' statistics
    (see the module notes); ``where`` names the data in errors and notes."""
    options = options or PlanOptions()
    plans, notes, taken = [], [], set()
    for position, name in enumerate(stats.names):
        column = stats.columns[name]
        role, reason = _role(column, position, options)
        plan = _column_plan(column, role, reason, options, taken)
        if column.kind == "text" and plan.role == "numeric" and column.tokens.counts:
            tokens = ", ".join(repr(t) for t in list(column.tokens.counts)[:3])
            notes.append(
                f"column {name!r}: text cells such as {tokens} read as missing"
            )
        plans.append(plan)
    plan = TablePlan(tuple(plans), stats.na_values, notes=tuple(notes))
    if not plan.inputs:
        raise PlanError(
            f"{where}: no column can be an input ("
            + "; ".join(f"{c.name}: {c.describe()}" for c in plans)
            + "); name the features with --features or a role with --numeric "
            "or --categorical"
        )
    return plan


def _role(column: ColumnStats, position: int, options: PlanOptions) -> tuple[str, str]:
    """(role, reason) of one column (see the module notes)."""
    name = column.name
    if name in options.drop:
        return "dropped", "--drop"
    if options.features is not None and name not in options.features:
        return "dropped", "not among --features"
    if column.kind == "other":
        return "dropped", "its type is not numbers, text, bools or dates"
    if name in options.categorical:
        return "categorical", ""
    if name in options.numeric:
        return "numeric", ""
    if position == 0 and name in _INDEX_NAMES:
        return "identifier", "a pandas index column"
    if name in _INDEX_NAMES[1:]:
        return "identifier", "a pandas index column"
    present = column.present
    if present == 0:
        return "dropped", "every cell is missing"
    if column.kind == "datetime" or (
        column.date_fmt is not None and column.n_date == present
    ):
        return "datetime", ""
    if column.kind == "bool" or (column.kind == "text" and column.n_bool == present):
        return "boolean", ""
    distinct = column.levels.distinct - (1 if column.missing else 0)
    all_distinct = not column.levels.overflow and distinct == present and present > 2
    numeric = column.kind == "number" or column.n_numberlike >= NUMERIC_SHARE * present
    if numeric:
        if column.row_counter() and (_ID_NAME.search(name) or column.rows >= 50):
            return "identifier", "unique row counter"
        if _ID_NAME.search(name) and all_distinct:
            return "identifier", "an ID: every value distinct"
        return "numeric", ""
    if _ID_NAME.search(name) and all_distinct:
        return "identifier", "an ID: every value distinct"
    many = column.levels.overflow or (
        distinct > options.max_categories and distinct > TEXT_DISTINCT_SHARE * present
    )
    if many:
        shown = "over 65536" if column.levels.overflow else str(distinct)
        return "text", f"free text: {shown} distinct values in {present} rows"
    return "categorical", ""


def _column_plan(
    column: ColumnStats, role: str, reason: str, options: PlanOptions, taken: set
) -> ColumnPlan:
    """The ColumnPlan of a column given its role: fills, levels, parts and
    standardization from its statistics."""
    name, missing = column.name, column.missing
    if role not in USED_ROLES:
        return ColumnPlan(name, role, reason=reason, missing=missing)
    if role == "categorical":
        levels = column.levels.most_common(options.max_categories)
        inputs = unique_names(
            [f"{name}={level}" for level in levels] + [f"{name}={OTHER_LEVEL}"], taken
        )
        return ColumnPlan(
            name, role, inputs, levels=tuple(levels), mean=(0.0,) * len(inputs),
            std=(1.0,) * len(inputs), missing=missing, reason=reason,
        )  # fmt: skip
    if role == "datetime":
        moments, samples = column.dates
        parts = DATE_PARTS if column.times else DATE_PARTS[:4]
        keep = [DATE_PARTS.index(p) for p in parts]
        mean, std = moments.mean_std() if moments.n else (np.zeros(5), np.ones(5))
        fill = tuple(_or_zero(samples[j].median()) for j in keep)
        indicator = column.n_date < column.rows
        names = [f"{name}:{p}" for p in parts] + (
            [f"{name}_missing"] if indicator else []
        )
        return ColumnPlan(
            name, role, unique_names(names, taken), fill=fill, indicator=indicator,
            parts=tuple(parts), format=column.date_fmt or "",
            mean=tuple(float(mean[j]) for j in keep) + ((0.0,) if indicator else ()),
            std=tuple(float(std[j]) for j in keep) + ((1.0,) if indicator else ()),
            missing=column.rows - column.n_date, reason=reason,
        )  # fmt: skip
    moments, sample = column.boolean if role == "boolean" else column.number
    usable = column.n_bool if role == "boolean" else column.n_number
    mean, std = moments.mean_std() if moments.n else (np.zeros(1), np.ones(1))
    indicator = usable < column.rows
    names = [name] + ([f"{name}_missing"] if indicator else [])
    return ColumnPlan(
        name, role, unique_names(names, taken), fill=_or_zero(sample.median()),
        indicator=indicator,
        mean=(float(mean[0]),) + ((0.0,) if indicator else ()),
        std=(float(std[0]),) + ((1.0,) if indicator else ()),
        missing=column.rows - usable, reason=reason,
    )  # fmt: skip


def _or_zero(value: float) -> float:
    return 0.0 if math.isnan(value) else float(value)


def unique_names(names: list[str], taken: set) -> tuple[str, ...]:
    """names, each made distinct from those taken before (a suffix #2...)."""
    out = []
    for name in names:
        candidate, k = name, 2
        while candidate in taken:
            candidate, k = f"{name}#{k}", k + 1
        taken.add(candidate)
        out.append(candidate)
    return tuple(out)


def restrict(plan: TablePlan, target: str) -> TablePlan:
    """The plan with ``target`` recorded as the column it leaves out."""
    return replace(plan, target=target)
