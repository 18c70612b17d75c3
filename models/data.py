"""Scores grouped by school, checked on entry, and their per-school sufficient statistics.

Every engine needs only

    n_i    = number of students in school i
    ybar_i = (1/n_i) sum_j y_ij
    ss_i   = sum_j (y_ij - ybar_i)^2

so they are computed once, here, and nothing downstream touches individual scores except the
PyMC reference model (whose likelihood is written on the scores, as the math reads).
"""

from __future__ import annotations

__all__ = ["as_column", "group_moments", "GroupedData", "school_stats", "SchoolStats"]

import csv
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from hiercheck.errors import DataError


class SchoolStats(NamedTuple):
    """Sufficient statistics of a design; `ybar` and `ss` may carry leading batch axes.

    `n` has shape (m,), `ybar` and `ss` shape (..., m); `N = sum n_i` and `m` are ints.
    """

    n: np.ndarray
    ybar: np.ndarray
    ss: np.ndarray
    N: int
    m: int

    @property
    def pooled_variance(self) -> np.ndarray:
        """s_w^2 = sum_i ss_i / (N - m): the pooled within-school variance, of the batch shape."""
        return self.ss.sum(-1) / (self.N - self.m)


def as_column(x) -> np.ndarray:
    """A batch of scalars (shape (...)) as a column (..., 1) against the school axis."""
    return np.asarray(x, dtype=float)[..., None]


def school_stats(n, ybar, ss) -> SchoolStats:
    """Bundle per-school statistics, deriving N and m from the school sizes."""
    n = np.asarray(n)
    return SchoolStats(n=n, ybar=np.asarray(ybar, dtype=float), ss=np.asarray(ss, dtype=float),
                       N=int(n.sum()), m=int(n.shape[-1]))


def group_moments(codes: np.ndarray, values: np.ndarray, m: int):
    """Per-group (n, ybar, ss) by two passes around a per-group shift.

    Each value is first shifted by some member of its own group, so that scores near 1e6 with a
    spread of 1e-3 lose no digits: y - shift is exact when both are within a factor of two
    (Sterbenz), and the second pass sums squared deviations from the shifted mean.
    """
    n = np.bincount(codes, minlength=m)
    shift = np.empty(m)
    shift[codes] = values  # any member of the group is a good shift; the last one written wins
    deviation = values - shift[codes]
    mean_deviation = np.bincount(codes, weights=deviation, minlength=m) / n
    deviation -= mean_deviation[codes]
    ss = np.bincount(codes, weights=deviation * deviation, minlength=m)
    return n, shift + mean_deviation, ss


@dataclass(frozen=True, eq=False)
class GroupedData:
    """Scores `values` of students in schools; `codes[k]` is the school index of score k.

    Schools are ordered by sorted label; `labels[i]` names school i. Build one with
    `from_csv`, `from_frame` or `from_arrays`, which check the input and say what is wrong.
    """

    labels: np.ndarray
    codes: np.ndarray
    values: np.ndarray
    name: str = "data"
    n: np.ndarray = field(init=False, repr=False)
    ybar: np.ndarray = field(init=False, repr=False)
    ss: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        n, ybar, ss = group_moments(self.codes, self.values, len(self.labels))
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "ybar", ybar)
        object.__setattr__(self, "ss", ss)
        _check_design(self)

    @property
    def N(self) -> int:
        return int(self.values.size)

    @property
    def m(self) -> int:
        return int(self.labels.size)

    @property
    def stats(self) -> SchoolStats:
        return SchoolStats(self.n, self.ybar, self.ss, self.N, self.m)

    def __repr__(self):
        return f"GroupedData({self.name!r}: {self.N} students in {self.m} schools)"

    # -- constructors -------------------------------------------------------------------------

    @classmethod
    def from_arrays(cls, groups, values, *, name: str = "arrays") -> GroupedData:
        """From a group label and a score per student."""
        groups = np.asarray(groups)
        values = np.asarray(values)
        if groups.ndim != 1 or values.ndim != 1:
            raise DataError(f"{name}: groups and values must be one-dimensional")
        if groups.size != values.size:
            raise DataError(f"{name}: {groups.size} group labels but {values.size} values")
        frame = pd.DataFrame({"group": groups, "value": values})
        return cls.from_frame(frame, group="group", value="value", name=name)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, group: str, value: str, *, name: str = "data frame",
                   first_row: int = 0, row_word: str = "row") -> GroupedData:
        """From two columns of a data frame. Errors name rows counting from `first_row`."""
        where = _Where(name, first_row, row_word)
        duplicated = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1}, key=str)
        if duplicated:
            raise DataError(f"{name}: duplicate column name {duplicated[0]!r}")
        for column in (group, value):
            if column not in frame.columns:
                raise DataError(where.missing_column(column, frame.columns))
        if len(frame) == 0:
            raise DataError(f"{name}: no rows of data")
        values = _numeric_column(frame[value], value, where)
        codes, labels = _factorize_labels(frame[group], group, where)
        return cls(labels=labels, codes=codes, values=values, name=name)

    @classmethod
    def from_csv(cls, path, group: str, value: str) -> GroupedData:
        """From a CSV file with a header row; errors name the file, the column and the line."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: no such file")
        header = _read_header(path)
        duplicated = sorted({c for c in header if header.count(c) > 1})
        if duplicated:
            raise DataError(f"{path}: duplicate column name {duplicated[0]!r} in the header")
        try:
            frame = pd.read_csv(path, dtype={group: str} if group in header else None,
                                keep_default_na=True)
        except pd.errors.ParserError as error:
            raise DataError(f"{path}: not a readable CSV ({str(error).splitlines()[0]})") from None
        # line 1 is the header, so data row k (0-based) is on line k + 2
        return cls.from_frame(frame, group, value, name=str(path), first_row=2, row_word="line")

    # -- summaries ----------------------------------------------------------------------------

    def school_table(self) -> pd.DataFrame:
        """One row per school: its label, size, mean score and within-school SD."""
        with np.errstate(invalid="ignore", divide="ignore"):
            sd = np.where(self.n > 1, np.sqrt(self.ss / np.maximum(self.n - 1, 1)), np.nan)
        return pd.DataFrame({"school": self.labels, "n": self.n, "ybar": self.ybar, "sd": sd})

    def with_values(self, values) -> GroupedData:
        """The same design (schools and sizes) with new scores, for simulation."""
        values = np.asarray(values, dtype=float)
        if values.shape != self.values.shape:
            raise DataError(f"{self.name}: expected {self.values.shape} scores, got {values.shape}")
        finite = np.isfinite(values)
        # unchecked, one NaN passes silently into its school's ybar and ss (and all-NaN scores
        # were misreported as "no within-school variation")
        if not finite.all():
            first = int(np.argmin(finite))
            raise DataError(f"{self.name}: new score {first} is {values[first]}, not a finite number")
        return GroupedData(labels=self.labels, codes=self.codes, values=values, name=self.name)


@dataclass(frozen=True)
class _Where:
    """Names places in the input: the source, and rows counted as the user sees them."""

    name: str
    first_row: int
    row_word: str

    def row(self, index: int) -> str:
        return f"{self.row_word} {index + self.first_row}"

    def missing_column(self, column, columns) -> str:
        names = [str(c) for c in columns]
        by_lower = {name.lower(): name for name in names}
        close = difflib.get_close_matches(str(column).lower(), list(by_lower), n=1)
        hint = f" (did you mean {by_lower[close[0]]!r}?)" if close else ""
        return f"{self.name}: no column {column!r}{hint}; columns are {', '.join(names)}"


def _read_header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        try:
            header = next(csv.reader(handle))
        except StopIteration:
            raise DataError(f"{path}: file is empty") from None
        except (csv.Error, UnicodeDecodeError) as error:
            raise DataError(f"{path}: not a readable CSV ({error})") from None
    header = [name.strip() for name in header]
    if not any(header):  # pandas would stop with a message that does not name the file
        raise DataError(f"{path}: line 1 is blank; expected a header row of column names")
    return header


def _numeric_column(column: pd.Series, name: str, where: _Where) -> np.ndarray:
    present = column.notna().to_numpy()
    if not present.all():
        first = int(np.argmin(present))
        raise DataError(f"{where.name}: column {name!r}, {where.row(first)}: missing value")
    # bools are numbers to pandas but not scores
    as_given = column
    if column.dtype == bool or column.dtype == object:
        as_given = column.mask(column.map(_is_bool))
    numbers = pd.to_numeric(as_given, errors="coerce")
    if numbers.isna().any():
        first = int(np.argmax(numbers.isna().to_numpy()))
        raise DataError(f"{where.name}: column {name!r}, {where.row(first)}: "
                        f"{column.iloc[first]!r} is not a number")
    values = numbers.to_numpy(dtype=float)
    finite = np.isfinite(values)
    if not finite.all():
        first = int(np.argmin(finite))
        raise DataError(f"{where.name}: column {name!r}, {where.row(first)}: "
                        f"{values[first]} is not a finite number")
    return values


def _is_bool(value) -> bool:
    return isinstance(value, (bool, np.bool_))


def _factorize_labels(column: pd.Series, name: str, where: _Where):
    present = column.notna().to_numpy()
    if not present.all():
        first = int(np.argmin(present))
        raise DataError(f"{where.name}: column {name!r}, {where.row(first)}: missing group label")
    if column.dtype == object:
        kinds = column.map(_label_kind)
        if kinds.nunique() > 1:
            first = int(np.argmax((kinds != kinds.iloc[0]).to_numpy()))
            raise DataError(f"{where.name}: column {name!r} mixes label types "
                            f"({kinds.iloc[0]} and {kinds.iloc[first]} at {where.row(first)})")
    column = _labels_as_numbers_if_all_numeric(column)
    codes, labels = pd.factorize(column, sort=True)
    return codes.astype(np.intp), np.asarray(labels)


def _label_kind(label) -> str:
    if _is_bool(label):
        return "bool"
    if isinstance(label, (int, np.integer, float, np.floating)):
        return "number"
    return type(label).__name__


def _labels_as_numbers_if_all_numeric(column: pd.Series) -> pd.Series:
    """Integer-looking text labels ('1', '2', '10') become ints, so they sort as numbers."""
    if not isinstance(column.iloc[0], str):
        return column
    as_numbers = pd.to_numeric(column, errors="coerce")
    if as_numbers.isna().any():
        return column
    if as_numbers.nunique() != column.nunique():  # "01" and "1" are two schools in the file
        return column
    if (as_numbers == np.round(as_numbers)).all():
        return as_numbers.astype(np.int64)
    return column


def _check_design(data: GroupedData) -> None:
    if data.m < 2:
        label = data.labels[0].item() if isinstance(data.labels[0], np.generic) else data.labels[0]
        raise DataError(f"{data.name}: only one school ({label!r}); "
                        "the hierarchical model needs at least two")
    if (data.n == 1).all():
        raise DataError(f"{data.name}: every school has one student, "
                        "so within-school variation cannot be told from between-school variation")
    if not (data.ss > 0).any():
        raise DataError(f"{data.name}: no within-school variation "
                        "(every school's scores are identical)")
