"""What the notebooks share: where their outputs go, and how a figure is shown.

The environment variable `HIERCHECK_FIGURES`, if set, names a folder where every figure is also
written as a PNG, and every table a notebook saves as a CSV (the test suite uses this to check
what a notebook drew and computed). The notebooks read the data sets built into the package.
"""

import os
import sys
from pathlib import Path

__all__ = ["FIGURES", "save_table", "show"]

FIGURES = Path(os.environ["HIERCHECK_FIGURES"]) if os.environ.get("HIERCHECK_FIGURES") else None


def show(drawn, name: str) -> None:
    """Display what a plot function drew (in Jupyter), and write FIGURES/name.png when asked to."""
    from hiercheck.validation.plots import figure_of

    figure = figure_of(drawn)
    if FIGURES is not None:
        FIGURES.mkdir(parents=True, exist_ok=True)
        figure.savefig(FIGURES / f"{name}.png", dpi=100, bbox_inches="tight")
    if "ipykernel" in sys.modules:
        from IPython.display import display

        display(figure)


def save_table(frame, name: str) -> None:
    """Write FIGURES/name.csv when asked to (full precision, for the tests to check)."""
    if FIGURES is not None:
        FIGURES.mkdir(parents=True, exist_ok=True)
        frame.to_csv(FIGURES / f"{name}.csv", index=False)
