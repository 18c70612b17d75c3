"""Scores grouped by school, checked on entry, and their per-school sufficient statistics.

Every engine needs only

    n_i    = number of students in school i
    ybar_i = (1/n_i) sum_j y_ij
    ss_i   = sum_j (y_ij - ybar_i)^2

so they are computed once, here, and nothing downstream touches individual scores except the
PyMC reference model (whose likelihood is written on the scores, as the math reads).
"""

from __future__ import annotations

__all__ = ["as_column", "group_moments", "GroupedData", "school_stats", "SchoolStats",
           "schools_across_sizes"]

import csv
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from hiercheck.errors import DataError


class SchoolStats(NamedTuple):
    """Sufficient statistics of a design; `ybar` and `ss` may carry leading batch axes.

    Build one with `school_stats`, which derives `N` and `m` from `n`.

    Attributes
    ----------
    n : np.ndarray
        n_i, the number of students in school i; shape (m,).
    ybar : np.ndarray
        ybar_i = (1/n_i) sum_j y_ij, the school means; shape (..., m).
    ss : np.ndarray
        ss_i = sum_j (y_ij - ybar_i)^2, the within-school sums of squares; shape (..., m).
    N : int
        sum_i n_i, the number of students.
    m : int
        The number of schools.
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


def as_column(x: ArrayLike) -> np.ndarray:
    """A batch of scalars (shape (...)) as a column (..., 1) against the school axis.

    Parameters
    ----------
    x : ArrayLike
        A scalar or an array of the batch shape (...).

    Returns
    -------
    np.ndarray
        `x` as floats of shape (..., 1), which broadcasts against per-school arrays (..., m).
    """
    return np.asarray(x, dtype=float)[..., None]


def school_stats(n: ArrayLike, ybar: ArrayLike, ss: ArrayLike) -> SchoolStats:
    """Bundle per-school statistics, deriving N = sum_i n_i and m from the school sizes.

    Parameters
    ----------
    n : ArrayLike
        n_i, the school sizes; shape (m,).
    ybar : ArrayLike
        ybar_i, the school means; shape (..., m).
    ss : ArrayLike
        ss_i, the within-school sums of squared deviations; shape (..., m).

    Returns
    -------
    SchoolStats
        The statistics, `ybar` and `ss` as floats.
    """
    n = np.asarray(n)
    return SchoolStats(n=n, ybar=np.asarray(ybar, dtype=float), ss=np.asarray(ss, dtype=float),
                       N=int(n.sum()), m=int(n.shape[-1]))


def schools_across_sizes(n: ArrayLike, count: int) -> np.ndarray:
    """At most `count` schools spread over the range of sizes, the smallest and the largest
    included: where a check looks at some schools, the ones whose size matters most.

    Parameters
    ----------
    n : array_like
        The schools' sizes.
    count : int
        How many schools at most.

    Returns
    -------
    numpy.ndarray
        Their indices, ascending.
    """
    n = np.asarray(n)
    order = np.argsort(n, kind="stable")
    return np.unique(order[np.linspace(0, n.size - 1, min(count, n.size)).round().astype(int)])


def group_moments(codes: np.ndarray, values: np.ndarray,
                  m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-group (n, ybar, ss) by two passes around a per-group shift.

    Each value is first shifted by some member of its own group, so that scores near 1e6 with a
    spread of 1e-3 lose no digits: y - shift is exact when both are within a factor of two
    (Sterbenz), and the second pass sums squared deviations from the shifted mean.

    Parameters
    ----------
    codes : np.ndarray
        The group index (0..m-1) of each value; every group has at least one member.
    values : np.ndarray
        The values, floats, one per code.
    m : int
        The number of groups.

    Returns
    -------
    n : np.ndarray
        The group sizes, shape (m,).
    ybar : np.ndarray
        The group means, shape (m,).
    ss : np.ndarray
        The sums of squared deviations from the group means, shape (m,).
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
    The per-school sufficient statistics are computed once, on construction.

    Parameters
    ----------
    labels : np.ndarray
        The school labels, sorted; shape (m,).
    codes : np.ndarray
        The school index (into `labels`) of each score; shape (N,).
    values : np.ndarray
        The scores y, floats; shape (N,).
    name : str, default "data"
        What the data are called in messages and results (a file name, a data set's name).

    Attributes
    ----------
    n : np.ndarray
        n_i, the number of students in school i; shape (m,).
    ybar : np.ndarray
        ybar_i, the school means; shape (m,).
    ss : np.ndarray
        ss_i = sum_j (y_ij - ybar_i)^2; shape (m,).

    Raises
    ------
    DataError
        If the design cannot identify the model: fewer than two schools, every school of one
        student, or no within-school variation at all.

    Examples
    --------
    >>> from hiercheck import GroupedData
    >>> data = GroupedData.from_arrays(["a", "a", "b", "b", "b"], [1.0, 3.0, 2.0, 4.0, 6.0])
    >>> data
    GroupedData('arrays': 5 students in 2 schools)
    >>> data.ybar
    array([2., 4.])
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
        """N = sum_i n_i, the number of students (scores)."""
        return int(self.values.size)

    @property
    def m(self) -> int:
        """The number of schools."""
        return int(self.labels.size)

    @property
    def stats(self) -> SchoolStats:
        """(n, ybar, ss, N, m): all that the samplers need from the data."""
        return SchoolStats(self.n, self.ybar, self.ss, self.N, self.m)

    def __repr__(self):
        return f"GroupedData({self.name!r}: {self.N} students in {self.m} schools)"

    # -- constructors -------------------------------------------------------------------------

    @classmethod
    def from_arrays(cls, groups: ArrayLike, values: ArrayLike, *,
                    name: str = "arrays") -> GroupedData:
        """From a group label and a score per student.

        Parameters
        ----------
        groups : ArrayLike
            The school label of each student, one-dimensional.
        values : ArrayLike
            The score of each student, one-dimensional, as long as `groups`.
        name : str, default "arrays"
            What the data are called in messages and results.

        Returns
        -------
        GroupedData
            The checked data.

        Raises
        ------
        DataError
            If the arrays are not one-dimensional or differ in length, or as `from_frame`.
        """
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
        """From two columns of a data frame. Errors name rows counting from `first_row`.

        Parameters
        ----------
        frame : pandas.DataFrame
            One row per student.
        group : str
            The column of school labels.
        value : str
            The column of scores.
        name : str, default "data frame"
            What the data are called in messages and results.
        first_row : int, default 0
            The number a message gives the frame's first row (2 for a CSV file's first data
            line, after its header).
        row_word : str, default "row"
            What a message calls a row ("line" for a CSV file).

        Returns
        -------
        GroupedData
            The checked data.

        Raises
        ------
        DataError
            If a column is missing or duplicated, the frame is empty, a label is missing or
            labels mix types, a score is missing or not a finite number, or the design cannot
            identify the model (see the class).
        """
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
    def from_csv(cls, path: str | Path, group: str, value: str) -> GroupedData:
        """From a CSV file with a header row; errors name the file, the column and the line.

        Parameters
        ----------
        path : str or pathlib.Path
            The CSV file (UTF-8, a header row of column names, one row per student).
        group : str
            The column of school labels.
        value : str
            The column of scores.

        Returns
        -------
        GroupedData
            The checked data, named after the file.

        Raises
        ------
        DataError
            If the file is missing, empty or not a readable CSV, a column name is duplicated,
            or as `from_frame`.

        Examples
        --------
        >>> from hiercheck import GroupedData
        >>> data = GroupedData.from_csv(  # doctest: +SKIP
        ...     "scores.csv", group="school", value="score")
        >>> data.school_table().head()  # n, ybar and sd of the first schools  # doctest: +SKIP
        """
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
        """One row per school: its label, size, mean score and within-school SD.

        Returns
        -------
        pandas.DataFrame
            Columns `school`, `n`, `ybar` and `sd` (sqrt(ss_i / (n_i - 1)), nan for a school
            of one student).
        """
        with np.errstate(invalid="ignore", divide="ignore"):
            sd = np.where(self.n > 1, np.sqrt(self.ss / np.maximum(self.n - 1, 1)), np.nan)
        return pd.DataFrame({"school": self.labels, "n": self.n, "ybar": self.ybar, "sd": sd})

    def with_values(self, values: ArrayLike) -> GroupedData:
        """The same design (schools and sizes) with new scores, for simulation.

        Parameters
        ----------
        values : ArrayLike
            The new scores, in the order of the current ones; shape (N,).

        Returns
        -------
        GroupedData
            Same labels, codes and name, the new scores.

        Raises
        ------
        DataError
            If `values` has another shape or a score is not a finite number.
        """
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
