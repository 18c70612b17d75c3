"""MCMC convergence diagnostics vectorized over quantities: ESS and rank-normalized split R-hat.

Each function takes draws of shape (M, N, K), M chains of N draws of K scalar quantities, and
returns one number per quantity, shape (K,). The definitions are those of Vehtari, Gelman,
Simpson, Carpenter and Buerkner (2021), "Rank-normalization, folding, and localization: an
improved R-hat for assessing convergence of MCMC", Bayesian Analysis 16(2), as ArviZ 0.23
computes them by default (`az.ess(method="bulk" | "tail" | "quantile")`, `az.rhat()`, absolute
rather than relative ESS), so that the mixing gate of `agreement` keeps its meaning; ArviZ
computes them one quantity at a time, these compute all K at once.

The mixing gate (`mixing_table`) is built on them: a quantity is mixed when its bulk and tail ESS
are at least ESS_FLOOR and its R-hat at most RHAT_CEILING. The agreement checks and SBC of NUTS
refuse to trust draws that miss it.

Notation. Splitting each chain into halves (the first floor(N/2) draws and the last floor(N/2),
so an odd N drops its middle draw) gives M' = 2M chains of n = floor(N/2) draws x_mt. Rank
normalization replaces x by

    z = Phi^-1((r - 3/8) / (S + 1/4)),

r the average rank of x among all S = M' n split draws of its quantity (Blom's offset 3/8).
Folding replaces x by |x - median(x)|.

A quantity with a NaN draw, or with fewer than 4 draws per chain (R-hat: or fewer than 2
chains), gets NaN, as in ArviZ; the other quantities are unaffected.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import fft, special

from hiercheck.errors import DataError, SettingsError
from hiercheck.models.engine import az

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["ESS_FLOOR", "RHAT_CEILING", "as_dataset", "ess_bulk", "ess_quantile", "ess_tail",
           "mixing_table", "mixing_table_of_draws", "quantity_draws", "rhat"]

# Below this many draws per chain ArviZ declares every diagnostic undefined.
MIN_DRAWS = 4
# Blom's (1958) offset in the rank-to-normal-score back-transformation.
BLOM_OFFSET = 3 / 8
# The tail ESS's two quantiles.
TAIL_PROBS = (0.05, 0.95)


# The mixing gate. Below 400 effective draws the ESS and MCSE estimates themselves are unreliable
# (Vehtari et al. 2021 recommend 100 per chain for 4 chains), and a split R-hat above 1.01 says
# the chains (or their halves) have not sampled one distribution.
ESS_FLOOR = 400
RHAT_CEILING = 1.01


def mixing_table(posterior: az.InferenceData | xr.Dataset | dict,
                 var_names: Sequence[str]) -> pd.DataFrame:
    """Bulk and tail ESS and R-hat of every quantity: a row per scalar and per theta_i.

    ESS are ArviZ's rank-normalized bulk ESS and tail ESS (the smaller of the ESS of the
    indicators of the 5% and 95% quantiles); R-hat is ArviZ's rank-normalized split R-hat (the
    larger of the bulk and the folded one), computed here as ArviZ computes them. A quantity
    is `mixed` when both ESS are at least ESS_FLOOR and R-hat is at most RHAT_CEILING.

    Parameters
    ----------
    posterior : arviz.InferenceData, xarray.Dataset or dict of arrays
        Draws with dims (chain, draw[, school]); a dict maps names to arrays of that shape.
    var_names : sequence of str
        The variables to diagnose.

    Returns
    -------
    pandas.DataFrame
        Columns variable, school ("" for a scalar), ess_bulk, ess_tail, r_hat, mixed. With one
        chain, or draws all equal, R-hat is undefined (NaN) and the quantity is not `mixed`.
    """
    return mixing_table_of_draws(*quantity_draws(as_dataset(posterior), var_names))


def mixing_table_of_draws(draws: np.ndarray, labels: list[tuple[str, object]]) -> pd.DataFrame:
    """`mixing_table` of draws laid side by side (`quantity_draws`).

    Parameters
    ----------
    draws : numpy.ndarray
        Draws (chain, draw, K) of K scalar quantities.
    labels : list of (str, object)
        The (variable, school) of each quantity.

    Returns
    -------
    pandas.DataFrame
        As `mixing_table`.
    """
    diagnosed = zip(labels, ess_bulk(draws), ess_tail(draws), rhat(draws))
    table = pd.DataFrame([{"variable": name, "school": school, "ess_bulk": b, "ess_tail": t,
                           "r_hat": r} for (name, school), b, t, r in diagnosed])
    table["mixed"] = ((table.ess_bulk >= ESS_FLOOR) & (table.ess_tail >= ESS_FLOOR)
                      & (table.r_hat <= RHAT_CEILING))
    return table


def as_dataset(posterior: az.InferenceData | xr.Dataset | dict) -> xr.Dataset:
    """The draws of a posterior as one xarray Dataset.

    Parameters
    ----------
    posterior : arviz.InferenceData, xarray.Dataset or dict of arrays
        Draws with dims (chain, draw, ...); a dict maps names to arrays of that shape.

    Returns
    -------
    xarray.Dataset
        The posterior group of an InferenceData, a dict converted, a Dataset as it is.
    """
    if isinstance(posterior, az.InferenceData):
        return posterior.posterior
    if isinstance(posterior, dict):
        return az.convert_to_dataset(posterior)
    return posterior


def quantity_draws(dataset: xr.Dataset, var_names: Sequence[str]
                   ) -> tuple[np.ndarray, list[tuple[str, object]]]:
    """The draws of every scalar and of every element along `school` side by side.

    Parameters
    ----------
    dataset : xarray.Dataset
        Draws with dims (chain, draw[, school]).
    var_names : sequence of str
        The variables.

    Returns
    -------
    draws : numpy.ndarray
        Shape (chain, draw, K).
    labels : list of (str, object)
        The (variable, school) of each of the K ("" for a scalar's school).
    """
    blocks, labels = [], []
    for name in var_names:
        values = dataset[name].transpose("chain", "draw", ...)
        schools = values.coords["school"].to_numpy() if "school" in values.dims else [""]
        blocks.append(values.to_numpy().reshape(values.sizes["chain"], values.sizes["draw"], -1))
        labels += [(name, school) for school in schools]
    return np.concatenate(blocks, axis=2), labels


def ess_bulk(draws: np.ndarray) -> np.ndarray:
    """Bulk effective sample size: the ESS of the rank-normalized split chains,
    ESS_bulk = ESS(z), with z the normal scores of the split draws' pooled ranks (module notes).

    Parameters
    ----------
    draws : numpy.ndarray
        Shape (chains, draws, K).

    Returns
    -------
    numpy.ndarray
        Shape (K,): the bulk ESS of each quantity (NaN where undefined, see the module notes).

    Raises
    ------
    DataError
        If `draws` is not three-dimensional.
    """
    draws, usable = _checked(draws, min_chains=1)
    return _where_usable(usable, lambda x: _ess(_rank_normalized(_split_chains(x))), draws)


def ess_quantile(draws: np.ndarray, prob: float) -> np.ndarray:
    """Effective sample size of the q-quantile: the ESS of the split chains of the indicator
    I(x_mt <= Q(q)), Q(q) the sample quantile of all M N draws of the quantity, interpolated
    between order statistics as Hyndman and Fan's type 7 (R's default):
    Q(q) = (1 - g) x_(j) + g x_(j+1), j + g = (M N - 1) q + 1.

    Parameters
    ----------
    draws : numpy.ndarray
        Shape (chains, draws, K).
    prob : float
        The probability q, in [0, 1].

    Returns
    -------
    numpy.ndarray
        Shape (K,): the quantile ESS of each quantity (NaN where undefined).

    Raises
    ------
    DataError
        If `draws` is not three-dimensional.
    SettingsError
        If `prob` is not in [0, 1].
    """
    if not 0 <= prob <= 1:
        raise SettingsError(f"ess_quantile: prob must be in [0, 1], got {prob}")
    draws, usable = _checked(draws, min_chains=1)
    return _where_usable(usable, lambda x: _ess_of_indicator(x, prob), draws)


def ess_tail(draws: np.ndarray) -> np.ndarray:
    """Tail effective sample size: the smaller of the quantile ESS at q = 0.05 and q = 0.95,
    ESS_tail = min(ESS(I(x <= Q(0.05))), ESS(I(x <= Q(0.95)))).

    Parameters
    ----------
    draws : numpy.ndarray
        Shape (chains, draws, K).

    Returns
    -------
    numpy.ndarray
        Shape (K,): the tail ESS of each quantity (NaN where undefined).

    Raises
    ------
    DataError
        If `draws` is not three-dimensional.
    """
    draws, usable = _checked(draws, min_chains=1)
    low, high = (_where_usable(usable, lambda x, q=q: _ess_of_indicator(x, q), draws)
                 for q in TAIL_PROBS)
    return np.where(high < low, high, low)  # ArviZ's min(low, high): NaN only if low is


def rhat(draws: np.ndarray) -> np.ndarray:
    """Rank-normalized split R-hat: max(R(z), R(z_fold)), R the split R-hat of the rank-normalized
    split draws and z_fold the rank-normalized folded ones, where for split chains y_mt
    (m = 1..M', t = 1..n)

        B = n / (M' - 1) sum_m (ybar_m - ybar)^2,   W = 1/M' sum_m s_m^2,
        R = sqrt(((n - 1)/n W + B/n) / W),

    s_m^2 the variance (divisor n - 1) of split chain m.

    Parameters
    ----------
    draws : numpy.ndarray
        Shape (chains, draws, K).

    Returns
    -------
    numpy.ndarray
        Shape (K,): R-hat of each quantity; NaN with one chain, and for a quantity whose draws
        are all equal (W = 0), as in ArviZ.

    Raises
    ------
    DataError
        If `draws` is not three-dimensional.
    """
    draws, usable = _checked(draws, min_chains=2)
    return _where_usable(usable, _rhat_rank, draws)


def _checked(draws, min_chains: int):
    """The draws as floats laid out (K, chains, draws), so that each quantity's draws are
    contiguous for the sorts and FFTs along them, and which quantities have a defined diagnostic:
    enough chains and draws, and no NaN.
    """
    draws = np.asarray(draws, dtype=float)
    if draws.ndim != 3:
        raise DataError(f"diagnostics: draws must have shape (chains, draws, K), got {draws.shape}")
    chains, length, _ = draws.shape
    usable = ~np.isnan(draws).any(axis=(0, 1))
    if chains < min_chains or length < MIN_DRAWS:
        usable[:] = False
    return np.ascontiguousarray(np.moveaxis(draws, 2, 0)), usable


def _where_usable(usable, diagnostic, draws):
    """`diagnostic` of the usable quantities of draws (K, chains, draws), NaN for the others."""
    out = np.full(len(draws), np.nan)
    if usable.any():
        out[usable] = diagnostic(draws[usable])
    return out


def _split_chains(x):
    """(K, M, N) -> (K, 2M, floor(N/2)): every chain's first half, then every chain's last half
    (an odd N drops the middle draw).
    """
    half = x.shape[2] // 2
    return np.concatenate((x[:, :, :half], x[:, :, x.shape[2] - half:]), axis=1)


def _rank_normalized(x):
    """Phi^-1((r - 3/8) / (S - 2 3/8 + 1)), r the average rank of each draw among all S draws of
    its quantity (ties share the mean of the ranks they span, as scipy.stats.rankdata's
    "average", which is several times slower along an axis).
    """
    k, chains, length = x.shape
    size = chains * length
    values = x.reshape(k, size)
    order = np.argsort(values, axis=1)
    ordered = np.take_along_axis(values, order, axis=1)
    positions = np.broadcast_to(np.arange(size), values.shape)
    differs = ordered[:, 1:] != ordered[:, :-1]
    edge = np.ones((k, 1), bool)
    opens, closes = np.hstack((edge, differs)), np.hstack((differs, edge))  # a tie group's ends
    first = np.maximum.accumulate(np.where(opens, positions, 0), axis=1)
    last = np.minimum.accumulate(np.where(closes, positions, size)[:, ::-1], axis=1)[:, ::-1]
    # r = (first + last)/2 + 1 takes one of 2S - 1 values: transform each once, then look up
    ranks = np.arange(2 * size - 1) / 2 + 1
    scores = special.ndtri((ranks - BLOM_OFFSET) / (size - 2 * BLOM_OFFSET + 1))
    normalized = np.empty(values.shape)
    np.put_along_axis(normalized, order, scores[first + last], axis=1)
    return normalized.reshape(x.shape)


def _rhat_rank(x):
    split = _split_chains(x)
    bulk = _split_rhat(_rank_normalized(split))
    medians = np.median(split.reshape(len(split), -1), axis=1)
    tail = _split_rhat(_rank_normalized(np.abs(split - medians[:, None, None])))
    return np.where(tail > bulk, tail, bulk)  # ArviZ's max(bulk, tail): NaN if bulk is


def _split_rhat(y):
    """sqrt((B/W + n - 1)/n) for chains y of shape (K, M', n) (see `rhat`)."""
    n = y.shape[2]
    between = n * y.mean(axis=2).var(axis=1, ddof=1)
    within = y.var(axis=2, ddof=1).mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):  # W = 0: all draws equal, R-hat NaN
        return np.sqrt((between / within + n - 1) / n)


def _type7_quantile(x, prob: float):
    """The q-quantile of all M N draws of each quantity, as scipy's mquantiles(alphap=1,
    betap=1), which ArviZ uses: (1 - g) x_(j) + g x_(j+1) with j + g = S q + 1 - q, j clipped to
    [1, S - 1].
    """
    pooled = x.reshape(len(x), -1)
    size = pooled.shape[1]
    position = size * prob + (1 - prob)
    j = int(np.floor(np.clip(position, 1, size - 1)))
    g = np.clip(position - j, 0, 1)
    ordered = np.partition(pooled, (j - 1, j), axis=1)  # the two order statistics needed
    return (1 - g) * ordered[:, j - 1] + g * ordered[:, j]


def _ess_of_indicator(x, prob: float):
    below = (x <= _type7_quantile(x, prob)[:, None, None]).astype(float)
    return _ess(_split_chains(below))


def _mean_autocovariance(y):
    """mean_m gamma_m(t), gamma_m(t) = 1/n sum_{s=1}^{n-t} (y_ms - ybar_m)(y_m,s+t - ybar_m),
    for every lag t and quantity, shape (K, n): by FFT along the draw axis, zero-padded against
    wrap-around, the chains' power spectra averaged before the one inverse transform (it is
    linear).
    """
    n = y.shape[2]
    centred = y - y.mean(axis=2, keepdims=True)
    padded = fft.next_fast_len(2 * n)
    spectrum = fft.rfft(centred, n=padded, axis=2)
    power = (spectrum.real ** 2 + spectrum.imag ** 2).mean(axis=1)
    return fft.irfft(power, n=padded, axis=1)[:, :n] / n


def _ess(y):
    """ESS = M' n / tau, tau = -1 + 2 sum_{t=0}^{2k-1} rho_t + rho_2k, for split chains y of
    shape (K, M', n) (Vehtari et al. 2021, eq. 10-11), where

        rho_t = 1 - (W - mean_m gamma_m(t)) / var_plus,
        W = n/(n - 1) mean_m gamma_m(0),  var_plus = (n - 1)/n W + B/n (B/n = 0 if M' = 1),

    and Geyer's initial monotone sequence truncates and smooths the sum: of the pair sums
    P_j = rho_2j + rho_2j+1, j = 0, 1, ..., those before the first that is not positive, P_k
    (k at most floor((n - 3)/2)), enter, each replaced by the running minimum of P_0..P_j; the
    next even term rho_2k enters if it is positive or P_k >= 0. tau is floored at
    1/log10(M' n). A quantity whose values y are all equal (range below float
    resolution) has ESS M' n, as in ArviZ.
    """
    k, chains, n = y.shape
    acov_mean = _mean_autocovariance(y)
    mean_var = acov_mean[:, 0] * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n
    if chains > 1:
        var_plus = var_plus + y.mean(axis=2).var(axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):  # constant y: handled below
        rho = 1.0 - (mean_var[:, None] - acov_mean) / var_plus[:, None]
    rho[:, 0] = 1.0

    last_pair = max(0, (n - 3) // 2)  # ArviZ computes pair j only while 2j - 1 < n - 3
    pair_sums = rho[:, 0:2 * last_pair + 2:2] + rho[:, 1:2 * last_pair + 2:2]
    stops = ~(pair_sums > 0)
    used = np.minimum(np.where(stops.any(axis=1), stops.argmax(axis=1), last_pair), last_pair)
    monotone = np.minimum.accumulate(pair_sums, axis=1)
    sums_before = np.hstack((np.zeros((k, 1)), np.cumsum(monotone, axis=1)))
    rows = np.arange(k)
    last_even = rho[rows, 2 * used]
    last_even = np.where((last_even > 0) | (pair_sums[rows, used] >= 0), last_even, 0.0)
    tau = -1.0 + 2.0 * sums_before[rows, used] + last_even

    size = chains * n
    ess = size / np.maximum(tau, 1 / np.log10(size))
    ess[np.isnan(rho[:, 1])] = np.nan
    constant = (y.max(axis=(1, 2)) - y.min(axis=(1, 2))) < np.finfo(float).resolution
    ess[constant] = size
    return ess
