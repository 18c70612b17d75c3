"""What the notebooks share: where the data and their outputs go, and how a figure is shown.

Two environment variables:

- `HIERCHECK_DATA`: the folder holding the course's CSV files; default `../shared/data` beside
  the repository's root (where the project keeps its data sets).
- `HIERCHECK_FIGURES`: if set, every figure is also written there as a PNG, and every table a
  notebook saves as a CSV (the test suite uses this to check what a notebook drew and computed).
"""

import os
import sys
from pathlib import Path

__all__ = ["DATA", "FIGURES", "repository_root", "save_table", "show"]


def repository_root() -> Path:
    """The folder with pyproject.toml at or above this file's."""
    start = Path(__file__).resolve().parent
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "samplers").is_dir():
            return folder
    raise FileNotFoundError(f"no hiercheck repository at or above {start}")


DATA = Path(os.environ.get("HIERCHECK_DATA", repository_root().parent / "shared" / "data"))
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
