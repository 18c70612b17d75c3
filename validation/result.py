"""What every check returns: a table with a row per test, and whether all of them passed."""

from __future__ import annotations

__all__ = ["CheckTable"]

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class CheckTable:
    """The result of a check: a row per test, each passed or not.

    Attributes
    ----------
    table : pandas.DataFrame
        A row per test, with a boolean column `agree`, true in each row whose test passed.
    """

    table: pd.DataFrame

    @property
    def passed(self) -> bool:
        """Whether every test passed."""
        return bool(self.table.agree.all())
