"""The data files shipped inside the package (models/builtin/), read without any path outside it.

They are the course's CSV files (MIT, Copyright (c) 2017 James Scott, repository jgscott/SDS383D);
models/builtin/README.md holds the attribution, the licence and their checksums.
"""

from __future__ import annotations

__all__ = ["PACKAGED_FILES", "read_packaged_csv"]

from importlib import resources

import pandas as pd

from hiercheck.errors import DataError

PACKAGED_FILES = ("bloodpressure.csv", "cheese.csv", "mathtest.csv")


def read_packaged_csv(filename: str) -> pd.DataFrame:
    """One of the packaged CSV files as a data frame.

    Parameters
    ----------
    filename : str
        One of `PACKAGED_FILES`.

    Returns
    -------
    pandas.DataFrame
        The file's rows, with its header as column names.

    Raises
    ------
    DataError
        If `filename` is not a packaged file.
    """
    if filename not in PACKAGED_FILES:
        raise DataError(f"no packaged data file {filename!r}; there are "
                        f"{', '.join(PACKAGED_FILES)}")
    source = resources.files("hiercheck.models").joinpath("builtin", filename)
    with source.open("r", encoding="utf-8") as handle:
        return pd.read_csv(handle)
