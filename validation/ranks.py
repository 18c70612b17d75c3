"""Is a set of SBC ranks uniform? Two tests and the plots that show the answer.

Under a calibrated engine the rank of the true value among L posterior draws is uniform on
{0, ..., L}. Two tests of that:

- chi-square on binned ranks, with the exact cell probabilities of the discrete ranks;
- the ECDF test with simultaneous bands: R F(z_k) ~ Binomial(R, z_k) at z_k = k/(L+1) for each
  k, and the band's pointwise level gamma is set by simulating uniform ranks so that the whole
  ECDF stays inside it with probability 1 - alpha (the simulation-based adjustment of
  Saeilynoja, Buerkner and Vehtari, 2022).
"""

from __future__ import annotations

__all__ = [
    "chi_square", "ecdf_test", "plot_ranks", "rank_bins", "simultaneous_band", "Uniformity",
    "uniformity",
]

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from hiercheck.errors import SettingsError

if TYPE_CHECKING:
    from matplotlib.axes import Axes

ECDF_SIMULATIONS = 4000


class Uniformity(NamedTuple):
    """Both tests of uniformity of one quantity's ranks.

    Attributes
    ----------
    chi2 : float
        Pearson's chi-square of the binned ranks (`chi_square`).
    chi2_p : float
        Its p-value.
    ecdf_p : float
        The simultaneous ECDF test's p-value (`ecdf_test`): the probability that a uniform
        sample's ECDF strays as far as this one's.
    """

    chi2: float
    chi2_p: float
    ecdf_p: float


def rank_bins(draws: int, replications: int, max_bins: int = 20) -> np.ndarray:
    """Bin edges over the ranks {0..L}: nearly equal integer bins, as many (up to `max_bins`) as
    keep the expected count of the narrowest bin >= 5, so that Pearson's chi-square is accurate.

    Parameters
    ----------
    draws : int
        L, the posterior draws each rank is taken among; ranks lie in {0..L}.
    replications : int
        R, the number of ranks.
    max_bins : int, default 20
        The most bins to use.

    Returns
    -------
    np.ndarray
        Integer bin edges from 0 to L + 1; bin k holds the ranks in [edges[k], edges[k+1]).
    """
    values = draws + 1
    for bins in range(int(min(max_bins, values)), 1, -1):
        if values // bins / values * replications >= 5:
            break
    return np.unique(np.linspace(0, values, bins + 1).round().astype(int))


def chi_square(ranks: np.ndarray, draws: int) -> tuple[float, float]:
    """Pearson's chi-square of binned ranks against the exact bin probabilities.

    Parameters
    ----------
    ranks : np.ndarray
        The ranks, integers in {0..L}; one-dimensional.
    draws : int
        L, the posterior draws each rank is taken among.

    Returns
    -------
    statistic : float
        The chi-square statistic over the bins of `rank_bins`.
    p : float
        Its p-value.
    """
    edges = rank_bins(draws, ranks.size)
    observed = np.histogram(ranks, bins=edges)[0]
    expected = np.diff(edges) / (draws + 1) * ranks.size
    statistic, p = stats.chisquare(observed, expected)
    return float(statistic), float(p)


def ecdf_evaluation_points(draws: int, replications: int) -> np.ndarray:
    """z_k = k/(L+1) for the interior rank values, thinned to at most R points."""
    k = np.arange(1, draws + 1)
    if k.size > replications:
        k = np.unique(np.linspace(1, draws, replications).round().astype(int))
    return k / (draws + 1)


def ecdf_counts(ranks: np.ndarray, draws: int, k: np.ndarray) -> np.ndarray:
    """#{r : rank_r < k} for each k, over the last axis of `ranks` (shape (..., R) -> (..., K)),
    from one histogram of the ranks over {0..L} and its running sum: O(R + L), not O(R K).
    """
    ranks = np.asarray(ranks, dtype=np.int64)
    batch = ranks.shape[:-1]
    rows = int(np.prod(batch, dtype=np.int64))
    offsets = (draws + 1) * np.arange(rows).reshape(batch + (1,))
    histogram = np.bincount((ranks + offsets).ravel(), minlength=rows * (draws + 1))
    below = np.cumsum(histogram.reshape(batch + (draws + 1,)), axis=-1)  # below[..., j] = #{rank <= j}
    return below[..., np.asarray(k) - 1]


def ecdf_tail_probability(ranks: np.ndarray, draws: int) -> np.ndarray:
    """min_k 2 min(P(B <= c_k), P(B >= c_k)), B ~ Binomial(R, z_k), c_k = #{rank < k}: the
    smallest pointwise two-sided tail probability of the ranks' ECDF at z_k = k/(L+1).
    """
    n = ranks.shape[-1]
    z = ecdf_evaluation_points(draws, n)
    k = np.rint(z * (draws + 1)).astype(np.int64)  # rank < k  <=>  scaled rank < z
    counts = ecdf_counts(ranks, draws, k)
    lower = stats.binom.cdf(counts, n, z)
    upper = stats.binom.sf(counts - 1, n, z)
    return np.minimum(1.0, 2 * np.minimum(lower, upper)).min(-1)


@functools.lru_cache(maxsize=64)
def _null_tail_probabilities(draws: int, replications: int) -> np.ndarray:
    # a fixed seed: the null distribution is a property of (L, R), not of the run
    rng = np.random.default_rng(20221)
    ranks = rng.integers(0, draws + 1, size=(ECDF_SIMULATIONS, replications))
    return np.sort(ecdf_tail_probability(ranks, draws))


def ecdf_test(ranks: np.ndarray, draws: int) -> float:
    """p-value of the simultaneous ECDF test: the share of uniform rank samples whose smallest
    pointwise tail probability is at most the observed one.

    Parameters
    ----------
    ranks : np.ndarray
        The ranks, integers in {0..L}; one-dimensional.
    draws : int
        L, the posterior draws each rank is taken among.

    Returns
    -------
    float
        The p-value, in (0, 1], from 4000 simulated uniform samples (`ECDF_SIMULATIONS`).
    """
    null = _null_tail_probabilities(draws, ranks.size)
    observed = ecdf_tail_probability(ranks, draws)
    return float((np.searchsorted(null, observed, side="right") + 1) / (null.size + 1))


@functools.lru_cache(maxsize=8)  # a figure draws the same band in each of its rows
def simultaneous_band(draws: int, replications: int,
                      alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z, lower, upper): at each z_k, the ECDF values whose pointwise tail probability is at least
    gamma, with gamma the largest level at which uniform ranks stray below it somewhere with
    probability at most alpha. So the whole ECDF of uniform ranks leaves the band with probability
    at most alpha (a little less, the counts being discrete).

    Parameters
    ----------
    draws : int
        L, the posterior draws each rank is taken among.
    replications : int
        R, the number of ranks.
    alpha : float, default 0.05
        The probability that the ECDF of uniform ranks leaves the band somewhere.

    Returns
    -------
    z : np.ndarray
        The evaluation points z_k = k/(L+1).
    lower : np.ndarray
        The band's lower edge for the ECDF at each z_k.
    upper : np.ndarray
        The band's upper edge.

    The three arrays are read-only: they are kept for later calls with the same arguments.
    """
    null = _null_tail_probabilities(draws, replications)
    gamma = float(null[int(np.floor(alpha * null.size))])  # #{null < gamma} <= alpha * size
    z = ecdf_evaluation_points(draws, replications)
    counts = np.arange(replications + 1)
    tails = np.minimum(1.0, 2 * np.minimum(stats.binom.cdf(counts, replications, z[:, None]),
                                           stats.binom.sf(counts - 1, replications, z[:, None])))
    inside = tails >= gamma
    lower = np.argmax(inside, axis=1)
    upper = replications - np.argmax(inside[:, ::-1], axis=1)
    band = (np.array(z), lower / replications, upper / replications)
    for edge in band:  # kept for later calls: read-only
        edge.flags.writeable = False
    return band


def uniformity(ranks: ArrayLike, draws: int) -> Uniformity:
    """Both tests of one quantity's ranks (integers in {0..L}, L = `draws`).

    Parameters
    ----------
    ranks : ArrayLike
        The ranks of the true value among L posterior draws, one per replication.
    draws : int
        L.

    Returns
    -------
    Uniformity
        The chi-square statistic and p-value, and the ECDF test's p-value.

    Raises
    ------
    SettingsError
        If `ranks` is not one-dimensional with at least 2 entries, or a rank is outside 0..L.
    """
    ranks = np.asarray(ranks)
    if ranks.ndim != 1 or ranks.size < 2:
        raise SettingsError(f"ranks must be a 1-d array of at least 2 replications, got shape {ranks.shape}")
    if ranks.min() < 0 or ranks.max() > draws:
        raise SettingsError(f"ranks must lie in 0..{draws}, got {ranks.min()}..{ranks.max()}")
    statistic, p = chi_square(ranks, draws)
    return Uniformity(chi2=statistic, chi2_p=p, ecdf_p=ecdf_test(ranks, draws))


def plot_ranks(ranks: np.ndarray, draws: int, name: str, axes: Sequence[Axes] | None = None,
               alpha: float = 0.05, legend: bool = True) -> Sequence[Axes]:
    """Rank histogram and ECDF difference (ECDF(z) - z) with its simultaneous 1-alpha band.

    Parameters
    ----------
    ranks : np.ndarray
        The ranks, integers in {0..L}; one-dimensional.
    draws : int
        L, the posterior draws each rank is taken among.
    name : str
        The quantity ranked, for the titles and labels.
    axes : sequence of two matplotlib.axes.Axes, optional
        Where to draw the histogram and the ECDF difference (default: a new Figure's).
    alpha : float, default 0.05
        The band's simultaneous level is 1 - alpha.
    legend : bool, default True
        Whether each panel has its legend (a figure of many rows needs it once).

    Returns
    -------
    sequence of matplotlib.axes.Axes
        The two axes drawn on.
    """
    if axes is None:
        from matplotlib.figure import Figure  # no pyplot: works under any backend, Agg included

        axes = Figure(figsize=(9, 3.2)).subplots(1, 2)
    hist_ax, ecdf_ax = axes
    edges = rank_bins(draws, ranks.size)
    # one filled step patch rather than a bar per bin: a figure of many rows draws faster
    hist_ax.stairs(np.histogram(ranks, bins=edges)[0], edges, fill=True, color="C0", alpha=0.8)
    expected = np.diff(edges) / (draws + 1) * ranks.size
    hist_ax.stairs(stats.binom.ppf(0.995, ranks.size, expected / ranks.size), edges, color="0.5",
                   ls=":", label="99% per bin")
    hist_ax.stairs(expected, edges, color="k", label="expected if uniform")
    hist_ax.set_xlabel(f"rank of the true {name} among {draws} posterior draws")
    hist_ax.set_ylabel("replications")
    hist_ax.set_title(f"{name}: rank histogram")
    if legend:
        hist_ax.legend(fontsize=7)
    z, lower, upper = simultaneous_band(draws, ranks.size, alpha)
    ecdf = ecdf_counts(ranks, draws, np.rint(z * (draws + 1)).astype(np.int64)) / ranks.size
    ecdf_ax.fill_between(z, lower - z, upper - z, color="0.85", step="mid",
                         label=f"simultaneous {1 - alpha:.0%} band")
    ecdf_ax.step(z, ecdf - z, where="mid", color="C0", label="ECDF of ranks - uniform CDF")
    ecdf_ax.axhline(0, color="k", lw=0.8)
    ecdf_ax.set_xlabel("scaled rank z")
    ecdf_ax.set_ylabel("ECDF difference")
    ecdf_ax.set_title(f"{name}: ECDF difference")
    if legend:
        ecdf_ax.legend(fontsize=7)
    return axes
