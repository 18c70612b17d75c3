"""Posterior predictive checks of the model's assumptions.

For a discrepancy T(y, params) and posterior draws params^(s), replicate data y_rep^(s) from the
model given params^(s) and compare:

    p = P(T(y_rep, params) >= T(y, params) | y) ~ (1/S) sum_s 1[T(y_rep^(s), params^(s)) >= T(y, params^(s))]

A small p says the data are more extreme in T than data the fitted model makes: the assumption
T looks at does not hold. Two discrepancies, one per assumption the exercise sheet asks about:

- **common within-group variance** (every school has the same sigma): Bartlett's statistic of the
  within-school variances s_i^2 = ss_i / (n_i - 1), over the schools with n_i >= 2,

      B = [nu log s_p^2 - sum_i nu_i log s_i^2] / C,   nu_i = n_i - 1,  nu = sum_i nu_i,
      s_p^2 = sum_i ss_i / nu,   C = 1 + (sum_i 1/nu_i - 1/nu) / (3 (k - 1)),

  large when the variances differ. Given (theta, lam), ss_i^rep = chi^2_{n_i - 1} / lam
  independently, and B is scale-free, so the replicated B does not depend on the draw: the check
  is then the exact (simulated) null distribution of Bartlett's test.
- **independence within a group** (measurements of one subject in time order): the pooled lag-one
  autocorrelation of the residuals e_ij = y_ij - theta_i, j in date order within group i (the
  data's order when no dates are given),

      r = sum_i sum_j e_ij e_i(j+1) / sum_i sum_j e_ij^2,

  a realized discrepancy (it depends on theta); its replicate uses e_rep = sigma z, z ~ N(0, 1).
  Only theta_i and sigma enter, so the check serves any model whose groups have means theta_i and
  a common within-group sigma: the schools' and the blood-pressure model (theta_i's prior mean
  mu + beta x_i changes the posterior of theta, not the check).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from hiercheck._typing import SeedLike
from hiercheck.errors import DataError
from hiercheck.models import GroupedData

if TYPE_CHECKING:
    import arviz as az
    from matplotlib.axes import Axes

__all__ = ["PPCResult", "bartlett_statistic", "check_common_variance", "check_independence",
           "lag_one_autocorrelation", "time_order"]

DEFAULT_ALPHA = 0.01


@dataclass(frozen=True, eq=False)
class PPCResult:
    """A posterior predictive check: the observed and replicated discrepancies and the p-value.

    Attributes
    ----------
    check : str
        The assumption checked.
    statistic : str
        The discrepancy's name.
    observed : numpy.ndarray
        T(y, params^(s)) per posterior draw (one value repeated when T does not depend on them).
    replicated : numpy.ndarray
        T(y_rep^(s), params^(s)) per posterior draw.
    alpha : float
        The p-value below which the assumption is called into doubt.
    """

    check: str
    statistic: str
    observed: np.ndarray
    replicated: np.ndarray
    alpha: float = DEFAULT_ALPHA

    @property
    def p_value(self) -> float:
        """P(T(y_rep) >= T(y) | y), estimated over the posterior draws."""
        return float(np.mean(self.replicated >= self.observed))

    @property
    def passed(self) -> bool:
        """True unless p < alpha: the data do not contradict the assumption."""
        return self.p_value >= self.alpha

    @cached_property
    def table(self) -> pd.DataFrame:
        """One row: the check, the statistic, observed and replicated means, p, alpha, passed."""
        return pd.DataFrame([{
            "check": self.check, "statistic": self.statistic,
            "observed": float(np.mean(self.observed)),
            "replicated mean": float(np.mean(self.replicated)),
            "replicated 95%": float(np.quantile(self.replicated, 0.95)),
            "p": self.p_value, "alpha": self.alpha, "passed": self.passed}])

    def plot(self, ax: Axes | None = None) -> Axes:
        """Histogram of the replicated discrepancy with the observed one marked (a line, or for
        a realized discrepancy, the scatter of observed against replicated per draw).

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Drawn on when given; else a new Figure is made (no pyplot).

        Returns
        -------
        matplotlib.axes.Axes
            The axes drawn on.
        """
        if ax is None:
            from matplotlib.figure import Figure

            ax = Figure(figsize=(6.5, 4)).subplots()
        if np.ptp(self.observed) == 0:
            ax.hist(self.replicated, bins=40, color="C0", alpha=0.75,
                    label="replicated data (posterior predictive)")
            ax.axvline(self.observed[0], color="C3", lw=2, label=f"observed {self.observed[0]:.3g}")
            ax.set_xlabel(self.statistic)
            ax.set_ylabel("posterior draws")
        else:
            ax.scatter(self.observed, self.replicated, s=6, alpha=0.4, color="C0")
            limits = [min(self.observed.min(), self.replicated.min()),
                      max(self.observed.max(), self.replicated.max())]
            ax.plot(limits, limits, color="0.3", lw=1, label="replicated = observed")
            ax.set_xlabel(f"{self.statistic}, observed data")
            ax.set_ylabel(f"{self.statistic}, replicated data")
        ax.set_title(f"{self.check}: posterior predictive p = {self.p_value:.3g}"
                     + (" (assumption in doubt)" if not self.passed else ""), fontsize=10)
        ax.legend(fontsize=8)
        return ax


def bartlett_statistic(ss: np.ndarray, n: np.ndarray) -> np.ndarray:
    """B = [nu log s_p^2 - sum_i nu_i log s_i^2] / C over the groups with n_i >= 2 (module
    docstring), for `ss` of shape (..., m).

    Parameters
    ----------
    ss : numpy.ndarray
        Within-group sums of squares, shape (..., m).
    n : numpy.ndarray
        Group sizes, shape (m,).

    Returns
    -------
    numpy.ndarray
        B, of the batch shape.

    Raises
    ------
    DataError
        If fewer than two groups have two or more members.
    """
    n = np.asarray(n)
    used = n >= 2
    if used.sum() < 2:
        raise DataError("the common-variance check needs two groups with two or more members")
    nu_i = (n[used] - 1).astype(float)
    ss_used = np.asarray(ss, dtype=float)[..., used]
    nu = nu_i.sum()
    pooled = ss_used.sum(-1) / nu
    correction = 1.0 + ((1.0 / nu_i).sum() - 1.0 / nu) / (3.0 * (used.sum() - 1))
    return (nu * np.log(pooled) - (nu_i * np.log(ss_used / nu_i)).sum(-1)) / correction


def lag_one_autocorrelation(residuals: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """r = sum_i sum_j e_ij e_i(j+1) / sum_i sum_j e_ij^2: residuals in the given order, products
    of neighbours within the same group only; over the last axis of `residuals`.

    Parameters
    ----------
    residuals : numpy.ndarray
        e, shape (..., N), in time order within each group.
    codes : numpy.ndarray
        The group of each residual, shape (N,).

    Returns
    -------
    numpy.ndarray
        r, of the batch shape.
    """
    residuals = np.asarray(residuals, dtype=float)
    same_group = codes[1:] == codes[:-1]
    products = (residuals[..., 1:] * residuals[..., :-1])[..., same_group]
    return products.sum(-1) / (residuals ** 2).sum(-1)


def _posterior_draws(idata, name: str) -> np.ndarray:
    values = idata.posterior[name].values
    return values.reshape((-1,) + values.shape[2:])


def check_common_variance(idata: az.InferenceData, data: GroupedData, *, seed: SeedLike = 0,
                          alpha: float = DEFAULT_ALPHA) -> PPCResult:
    """Is sigma^2 common to all groups? Bartlett's statistic, observed against replicated.

    Parameters
    ----------
    idata : arviz.InferenceData
        A posterior with `lam` (any engine's).
    data : GroupedData
        The data it was fitted to.
    seed : SeedLike, default 0
        Seeds the replicated data.
    alpha : float, default 0.01
        p below which the check fails.

    Returns
    -------
    PPCResult
        The check.
    """
    rng = np.random.default_rng(seed)
    lam = _posterior_draws(idata, "lam")
    n = data.n
    ss_rep = rng.chisquare(np.maximum(n - 1, 1), size=(lam.size, n.size)) / lam[:, None]
    ss_rep[:, n < 2] = 0.0  # one-member groups have no within variation, replicated or not
    observed = np.full(lam.size, float(bartlett_statistic(data.ss, n)))
    return PPCResult("common within-group variance", "Bartlett's statistic", observed,
                     bartlett_statistic(ss_rep, n), alpha)


def time_order(codes: np.ndarray, dates: np.ndarray) -> np.ndarray:
    """The permutation that puts measurements in date order within each group: groups in the
    order of their codes, equal dates in the data's order.

    Parameters
    ----------
    codes : numpy.ndarray
        The group of each measurement, shape (N,).
    dates : numpy.ndarray
        The date (or time) of each measurement, shape (N,), any sortable type.

    Returns
    -------
    numpy.ndarray
        Indices into the measurements, shape (N,).

    Raises
    ------
    DataError
        If `dates` and `codes` differ in length.
    """
    codes, dates = np.asarray(codes), np.asarray(dates)
    if dates.shape != codes.shape:
        raise DataError(f"the independence check has {dates.size} dates for {codes.size} "
                        "measurements")
    return np.lexsort((dates, codes))  # stable: ties keep the data's order


def check_independence(idata: az.InferenceData, data: GroupedData, *,
                       dates: np.ndarray | None = None, seed: SeedLike = 0,
                       alpha: float = DEFAULT_ALPHA) -> PPCResult:
    """Are measurements independent within a group? The lag-one autocorrelation of the residuals
    y_ij - theta_i in date order within each group, observed against replicated, per posterior
    draw.

    Parameters
    ----------
    idata : arviz.InferenceData
        A posterior with `theta` (one per group of `data`, in its order; any dim name, `school`
        or `subject`) and `lam`: the flagship's engines or the blood-pressure sampler.
    data : GroupedData
        The data it was fitted to.
    dates : numpy.ndarray, optional
        The date of each measurement (shape (N,), in the order of `data.values`): neighbours
        are paired in date order within a group, whatever the gap between them. Without it,
        in the data's order.
    seed : SeedLike, default 0
        Seeds the replicated data.
    alpha : float, default 0.01
        p below which the check fails.

    Returns
    -------
    PPCResult
        The check.

    Raises
    ------
    DataError
        If the posterior's theta has another number of groups than `data`, or `dates` another
        length.
    """
    rng = np.random.default_rng(seed)
    theta = _posterior_draws(idata, "theta")
    if theta.shape[1:] != (data.m,):
        raise DataError(f"the posterior has theta of shape {theta.shape[1:]}, the data "
                        f"{data.m} groups: was it fitted to these data?")
    sigma = 1.0 / np.sqrt(_posterior_draws(idata, "lam"))
    order = np.arange(data.N) if dates is None else time_order(data.codes, dates)
    codes = data.codes[order]
    values = data.values[order]
    observed = lag_one_autocorrelation(values[None, :] - theta[:, codes], codes)
    noise = rng.standard_normal((sigma.size, data.N)) * sigma[:, None]
    return PPCResult("independence within a group", "lag-one autocorrelation of residuals",
                     observed, lag_one_autocorrelation(noise, codes), alpha)
