"""Figures for people: each titled and labelled for a reader who has not read the code."""

from __future__ import annotations

__all__ = ["figure_of", "new_axes", "plot_school_means", "save"]

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib import rcParams
from matplotlib.figure import Figure

from hiercheck.models import GroupedData

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def plot_school_means(data: GroupedData, ax: Axes | None = None,
                      label_extremes: int = 3) -> Axes:
    """School mean against school size, with the band +-2 s_w / sqrt(n) around the grand mean
    that school means would fill if every school had the same true mean: the funnel shows why
    the most extreme means come from the smallest schools.

    Parameters
    ----------
    data : GroupedData
        The scores.
    ax : matplotlib.axes.Axes, optional
        Where to draw (default: a new Figure's).
    label_extremes : int, default 3
        How many of the lowest and of the highest school means to label.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on.
    """
    if ax is None:
        ax = new_axes(figsize=(8, 5))
    grand = data.values.mean()
    within_sd = np.sqrt(data.stats.pooled_variance)
    sizes = np.linspace(max(data.n.min() - 0.5, 0.5), data.n.max() + 1, 200)
    ax.fill_between(sizes, grand - 2 * within_sd / np.sqrt(sizes), grand + 2 * within_sd / np.sqrt(sizes),
                    color="0.88", label="grand mean +- 2 within-school SD / sqrt(n)")
    ax.axhline(grand, color="0.4", lw=1, label=f"grand mean {grand:.4g}")
    ax.scatter(data.n, data.ybar, s=18, color="C0", alpha=0.8, label="one school")
    order = np.argsort(data.ybar)
    for i in np.r_[order[:label_extremes], order[-label_extremes:]]:
        ax.annotate(f"{data.labels[i]} (n={data.n[i]})", (data.n[i], data.ybar[i]),
                    textcoords="offset points", xytext=(5, 3), fontsize=8)
    ax.set_xlabel("students in the school (n_i)")
    ax.set_ylabel("school mean score (ybar_i)")
    ax.set_title(f"{Path(data.name).name}: school means against school size\n"
                 "the most extreme means come from the smallest schools", fontsize=11)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, frameon=False)
    return ax


def new_axes(rows: int = 1, columns: int = 1, *, figsize: tuple[float, float],
             squeeze: bool = True) -> Axes | np.ndarray:
    """Axes on a new Figure made without pyplot, so that library code never touches pyplot's
    global state (its current figure, its backend) and works under any backend, Agg included.

    Parameters
    ----------
    rows : int, default 1
        Rows of axes.
    columns : int, default 1
        Columns of axes.
    figsize : tuple of float
        The figure's (width, height) in inches.
    squeeze : bool, default True
        As in `Figure.subplots`: one Axes alone, a grid of one row or column as a 1-d array.

    Returns
    -------
    matplotlib.axes.Axes or np.ndarray
        The Axes, or an array of them.
    """
    return Figure(figsize=figsize).subplots(rows, columns, squeeze=squeeze)


def figure_of(drawn: Axes | np.ndarray | Figure) -> Figure:
    """The Figure behind what a plot function returns: an Axes, an array of them, or a Figure.

    Parameters
    ----------
    drawn : matplotlib.axes.Axes, np.ndarray of Axes, or matplotlib.figure.Figure
        What a plot function returned.

    Returns
    -------
    matplotlib.figure.Figure
        The figure it is drawn on.
    """
    if isinstance(drawn, Figure):
        return drawn
    return np.ravel(drawn)[0].figure


def save(drawn: Axes | np.ndarray | Figure, path: str | Path, *, layout: bool = True) -> None:
    """Write what a plot function drew (Axes, array of Axes, or Figure) to `path` as an image.

    Parameters
    ----------
    drawn : matplotlib.axes.Axes, np.ndarray of Axes, or matplotlib.figure.Figure
        What a plot function returned.
    path : str or pathlib.Path
        The image file; its suffix (.png, .pdf, .svg) sets the format.
    layout : bool, default True
        Tighten the layout first, unless the figure has a layout engine or its plot function
        set its margins (`Figure.subplots_adjust`).
    """
    figure = figure_of(drawn)
    if layout and figure.get_layout_engine() is None and not _margins_set(figure):
        figure.tight_layout()
    figure.savefig(path, dpi=120)


MARGINS = ("left", "right", "bottom", "top")


def _margins_set(figure: Figure) -> bool:
    """Whether the figure's margins differ from the defaults it was made with: its plot function
    placed the panels itself (the SBC rank plot does, to spare matplotlib's layout engine, which
    measures every label and draws the figure twice). A plot that only widens the gaps between
    panels (hspace) is still tightened.
    """
    return any(getattr(figure.subplotpars, name) != rcParams[f"figure.subplot.{name}"]
               for name in MARGINS)
