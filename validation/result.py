"""What every check returns: a table with a row per test, and whether all of them passed."""

from __future__ import annotations

__all__ = ["CheckTable"]

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class CheckTable:
    """`table` has a boolean column `agree`, true in each row whose test passed."""

    table: pd.DataFrame

    @property
    def passed(self) -> bool:
        return bool(self.table.agree.all())
