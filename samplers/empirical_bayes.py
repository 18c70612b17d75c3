"""Empirical Bayes: the hyperparameters by maximum marginal likelihood, then theta given them.

Every formula below is derived in docs/derivation.md, section 4, in its notation.
With theta integrated out, the log-likelihood of (mu, lam, omega) is
`hiercheck.samplers.marginal.log_marginal_likelihood`. Two estimators maximize it:

- ML, the maximum of log p(y | mu, lam, omega);
- REML (`reml=True`), the maximum of the restricted likelihood
  log p_R(y | lam, omega) = log integral p(y | mu, lam, omega) dmu (mu under a flat prior of
  density 1), whose maximizer corrects ML's downward bias in the variances.

Two methods find the maximum. `"profile"` (the default) writes everything in the between-to-
within variance ratio

    r = tau^2 = 1/omega >= 0,

profiles mu and lam out in closed form, and solves a one-dimensional problem in r on [0, inf),
so the boundary tau = 0 (r = 0, omega = inf) is reached and reported exactly. `"nelder-mead"`
is the original write-up's method: scipy's Nelder-Mead over (mu, log lam, log omega) (over
(log lam, log omega) for REML), started from moment estimates; it can only approach tau = 0.

Functions named `profile_*` take r; the others take omega like `hiercheck.samplers.marginal`. A statistic
of the profile costs O(m) and broadcasts over a batch of r of any shape.
"""

from __future__ import annotations

__all__ = [
    "METHODS", "EBFit", "estimate_covariance", "fit", "gls_mean", "moment_estimates",
    "observed_information", "plot_shrinkage", "profile_lam", "profile_loglik", "profile_score",
    "relative_change", "restricted_loglik", "sample",
]

import html
import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import optimize

from hiercheck._typing import SeedLike
from hiercheck.errors import ConvergenceWarning, SettingsError
from hiercheck.models import GroupedData, Priors, SchoolStats
from hiercheck.models.engine import az, check_run_size, to_inference_data

from .marginal import (LOG_2PI, log_marginal_likelihood, marginal_spread, school_weights,
                       theta_conditional)
from .user_functions import checked_log_likelihood

if TYPE_CHECKING:
    from matplotlib.axes import Axes

METHODS = ("profile", "nelder-mead")
PARAMETERS = ("mu", "lam", "r")  # the axes of `EBFit.covariance`

# The profile is scanned on a geometric grid of r, in units of mean_i(1/n_i) (the ratio at which a
# typical school mean is shrunk halfway), from 1e-10 to 1e10 units at 4 points per decade; every
# rise-then-fall of the score between neighbours brackets a local maximum, solved by brentq.
SCAN_DECADES = 10
SCAN_POINTS_PER_DECADE = 4
SCAN_EXTENSIONS = 5  # how often the top of the scan may grow by 1e10 while the score still rises

# Nelder-Mead: start tau^2 no lower than this fraction of mean_i(1/n_i); stop when the simplex
# spans less than XATOL on the (mu, log lam, log omega) scale and FATOL in the log-likelihood.
TAU2_START_FLOOR = 0.1
NELDER_MEAD_XATOL = 1e-10
NELDER_MEAD_FATOL = 1e-10
NELDER_MEAD_MAXFEV = 20_000


# -- the likelihoods ------------------------------------------------------------------------------

def _omega(r) -> np.ndarray:
    """omega = 1/r, which is inf at r = 0 (tau = 0)."""
    with np.errstate(divide="ignore"):
        return 1.0 / np.asarray(r, dtype=float)


def _integrated_means(reml: bool) -> int:
    """p: the number of mean parameters integrated out, 1 for REML (mu), 0 for ML."""
    return 1 if reml else 0


def gls_mean(stats: SchoolStats, omega: ArrayLike) -> np.ndarray:
    """mu_hat = sum_i w_i ybar_i / sum_i w_i, w_i = n_i omega / (n_i + omega): the maximizer of
    log p(y | mu, lam, omega) over mu (generalized least squares); free of lam.

    Parameters
    ----------
    stats : SchoolStats
        n_i, ybar_i, ss_i; `ybar` and `ss` may carry batch axes (..., m).
    omega : ArrayLike
        omega = 1/tau^2, a scalar or the batch shape (...); inf allowed.

    Returns
    -------
    np.ndarray
        mu_hat, of the batch shape.
    """
    w = school_weights(stats.n, omega)
    return (w * stats.ybar).sum(-1) / w.sum(-1)


def restricted_loglik(stats: SchoolStats, lam: ArrayLike, omega: ArrayLike) -> np.ndarray:
    """log p_R(y | lam, omega) = log integral p(y | mu, lam, omega) dmu, mu under a flat prior of
    density 1 (the convention of statsmodels' MixedLM REML):

        log p(y | mu_hat, lam, omega) + 1/2 log 2pi - 1/2 log(lam sum_i w_i)

    Parameters
    ----------
    stats : SchoolStats
        n_i, ybar_i, ss_i; `ybar` and `ss` may carry batch axes (..., m).
    lam : ArrayLike
        lam = 1/sigma^2, a scalar or the batch shape (...).
    omega : ArrayLike
        omega = 1/tau^2, a scalar or the batch shape; inf allowed.

    Returns
    -------
    np.ndarray
        The restricted log-likelihood, of the batch shape.
    """
    lam = np.asarray(lam, dtype=float)
    total_weight = school_weights(stats.n, omega).sum(-1)
    return (log_marginal_likelihood(stats, gls_mean(stats, omega), lam, omega)
            + 0.5 * (LOG_2PI - np.log(lam * total_weight)))


def profile_lam(stats: SchoolStats, r: ArrayLike, *, reml: bool = False) -> np.ndarray:
    """lam_hat(r) = (N - p) / Q(r), Q(r) = sum_i ss_i + sum_i w_i (ybar_i - mu_hat(r))^2, where
    p = 0 (ML) or 1 (REML): the maximizer over lam of the (restricted) likelihood at r.

    Parameters
    ----------
    stats : SchoolStats
        n_i, ybar_i, ss_i of the data.
    r : ArrayLike
        The variance ratio r = tau^2 = 1/omega >= 0, any shape.
    reml : bool, default False
        p = 1, the restricted likelihood (REML), instead of p = 0 (ML).

    Returns
    -------
    np.ndarray
        lam_hat(r), of r's shape.
    """
    omega = _omega(r)
    spread = marginal_spread(stats, gls_mean(stats, omega), omega)
    return (stats.N - _integrated_means(reml)) / spread


def profile_loglik(stats: SchoolStats, r: ArrayLike, *, reml: bool = False) -> np.ndarray:
    """The log-likelihood maximized over mu and lam at the variance ratio r = tau^2 = 1/omega:

        ML:   log p(y | mu_hat(r), lam_hat(r), 1/r)
            = -N/2 [log 2pi + log(Q(r)/N) + 1] - 1/2 sum_i log(1 + n_i r)
        REML: log p_R(y | lam_hat(r), 1/r)
            = -(N-1)/2 [log 2pi + log(Q(r)/(N-1)) + 1] - 1/2 sum_i log(1 + n_i r)
              - 1/2 log sum_i w_i

    Parameters
    ----------
    stats : SchoolStats
        n_i, ybar_i, ss_i of the data.
    r : ArrayLike
        The variance ratio r = tau^2 = 1/omega >= 0, any shape.
    reml : bool, default False
        The restricted likelihood (REML) instead of the likelihood (ML).

    Returns
    -------
    np.ndarray
        The profile log-likelihood, of r's shape.
    """
    omega = _omega(r)
    lam = profile_lam(stats, r, reml=reml)
    if reml:
        return restricted_loglik(stats, lam, omega)
    return log_marginal_likelihood(stats, gls_mean(stats, omega), lam, omega)


def profile_score(stats: SchoolStats, r: ArrayLike, *, reml: bool = False) -> np.ndarray:
    """d/dr of `profile_loglik`, with w_i = n_i / (1 + n_i r), e_i = ybar_i - mu_hat(r):

        (N - p) / (2 Q(r)) sum_i w_i^2 e_i^2 - 1/2 sum_i w_i + p/2 sum_i w_i^2 / sum_i w_i

    Parameters
    ----------
    stats : SchoolStats
        n_i, ybar_i, ss_i of the data.
    r : ArrayLike
        The variance ratio r = tau^2 = 1/omega >= 0, any shape.
    reml : bool, default False
        p = 1, the restricted likelihood (REML), instead of p = 0 (ML).

    Returns
    -------
    np.ndarray
        The score, of r's shape.
    """
    omega = _omega(r)
    w = school_weights(stats.n, omega)
    mu = gls_mean(stats, omega)
    residual = stats.ybar - mu[..., None]
    p = _integrated_means(reml)
    spread = marginal_spread(stats, mu, omega)
    w2 = w * w
    return (0.5 * (stats.N - p) / spread * (w2 * residual * residual).sum(-1)
            - 0.5 * w.sum(-1) + 0.5 * p * w2.sum(-1) / w.sum(-1))


# -- standard errors ------------------------------------------------------------------------------

def observed_information(stats: SchoolStats, lam: float, r: float, *,
                         reml: bool = False) -> np.ndarray:
    """Minus the Hessian in (lam, r) of the criterion with mu profiled out,

        l(lam, r) = (N - p)/2 log lam - lam Q(r)/2 - 1/2 sum_i log(1 + n_i r) - p/2 log W + const,

    W = sum_i w_i, so p = 0 is the ML profile over mu and p = 1 the restricted likelihood:

        J_lam,lam = (N - p) / (2 lam^2)
        J_lam,r   = -1/2 sum_i w_i^2 e_i^2
        J_r,r     = lam [sum_i w_i^3 e_i^2 - (sum_i w_i^2 e_i)^2 / W] - 1/2 sum_i w_i^2
                    + p [sum_i w_i^3 / W - 1/2 (sum_i w_i^2 / W)^2]

    Parameters
    ----------
    stats : SchoolStats
        n_i, ybar_i, ss_i of the data.
    lam : float
        lam = 1/sigma^2.
    r : float
        The variance ratio r = tau^2 = 1/omega >= 0.
    reml : bool, default False
        p = 1, the restricted likelihood (REML), instead of p = 0 (ML).

    Returns
    -------
    np.ndarray
        J, 2 x 2, rows and columns (lam, r).
    """
    omega = _omega(r)
    w = school_weights(stats.n, omega)
    total = w.sum()
    residual = stats.ybar - gls_mean(stats, omega)
    p = _integrated_means(reml)
    w2, w3 = w * w, w * w * w
    lam_lam = (stats.N - p) / (2.0 * lam * lam)
    lam_r = -0.5 * (w2 * residual * residual).sum()
    r_r = (lam * ((w3 * residual * residual).sum() - (w2 * residual).sum() ** 2 / total)
           - 0.5 * w2.sum() + p * (w3.sum() / total - 0.5 * (w2.sum() / total) ** 2))
    return np.array([[lam_lam, lam_r], [lam_r, r_r]])


def estimate_covariance(stats: SchoolStats, lam: float, r: float, *,
                        reml: bool = False) -> np.ndarray:
    """Covariance of the estimates of (mu, lam, r) from the observed information:

        C = J^{-1} for (lam, r) (`observed_information`),
        Var(mu) = 1/(lam W) + mu_hat'(r)^2 Var(r),  Cov(mu, .) = mu_hat'(r) Cov(r, .),
        mu_hat'(r) = -sum_i w_i^2 e_i / W,

    the GLS variance of mu plus what the uncertainty in r carries through mu_hat(r). For ML this
    equals the inverse of the full observed information in (mu, lam, r). At r = 0 (the boundary,
    where the normal approximation for r does not apply) r is held fixed: Var(lam) = 1/J_lam,lam,
    Var(mu) = 1/(lam W), and every entry involving r is nan, as everything is when J is not
    positive definite (not a maximum).

    Parameters
    ----------
    stats : SchoolStats
        n_i, ybar_i, ss_i of the data.
    lam : float
        lam = 1/sigma^2, at the estimate.
    r : float
        The variance ratio r = tau^2 = 1/omega >= 0, at the estimate.
    reml : bool, default False
        p = 1, the restricted likelihood (REML), instead of p = 0 (ML).

    Returns
    -------
    np.ndarray
        C, 3 x 3, rows and columns (mu, lam, r) (`PARAMETERS`).
    """
    omega = _omega(r)
    w = school_weights(stats.n, omega)
    total = w.sum()
    covariance = np.full((3, 3), np.nan)
    information = observed_information(stats, lam, r, reml=reml)
    if r == 0.0:
        covariance[:2, :2] = np.diag([1.0 / (lam * total), 1.0 / information[0, 0]])
        return covariance
    if not np.all(np.linalg.eigvalsh(information) > 0):
        return covariance
    residual = stats.ybar - gls_mean(stats, omega)
    slope = -(w * w * residual).sum() / total
    jacobian = np.array([[0.0, slope], [1.0, 0.0], [0.0, 1.0]])  # (mu_hat(r), lam, r) by (lam, r)
    covariance = jacobian @ np.linalg.inv(information) @ jacobian.T
    covariance[0, 0] += 1.0 / (lam * total)
    return covariance


def _delta_method_se(covariance: np.ndarray, gradient: np.ndarray) -> float:
    """sqrt(g' C g) over the parameters the quantity depends on (g_k != 0), so that an unknown
    Var(r) at the boundary leaves the standard errors of mu and lam defined.
    """
    used = np.flatnonzero(gradient)
    block = covariance[np.ix_(used, used)]
    return float(np.sqrt(gradient[used] @ block @ gradient[used]))


SUMMARY_ROWS = (("mu", "mean of the school means"), ("sigma", "within-school SD"),
                ("between_sd", "between-school SD, tau sigma"),
                ("tau", "ratio between / within SD"), ("lam", "1 / sigma^2"), ("omega", "1 / tau^2"))


# -- the fitted model -----------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class EBFit:
    """Empirical Bayes estimates, their standard errors, and theta given them.

    Made by `fit`; `summary()` and `str()` show the estimates with their standard errors.

    Attributes
    ----------
    data : GroupedData
        The data fitted.
    method : str
        How the maximum was found, one of `METHODS`.
    reml : bool
        Whether the criterion is the restricted likelihood (REML) rather than the likelihood.
    mu : float
        The estimate of mu.
    lam : float
        The estimate of lam = 1/sigma^2.
    variance_ratio : float
        The estimate of r = tau^2 = 1/omega, exactly 0 when the maximum is on the boundary.
    loglik : float
        The maximized log p(y | mu, lam, omega) (ML) or log p_R(y | lam, omega) (REML).
    covariance : np.ndarray
        3 x 3 covariance of the estimates of (mu, lam, r) (`PARAMETERS`), from
        `estimate_covariance`; nan where the observed information gives none.
    converged : bool
        Whether the optimizer met its convergence criterion.
    evaluations : int
        Evaluations of the criterion (or its score) the optimizer made.
    message : str
        What the optimizer found, in words.
    theta_mean : np.ndarray
        E[theta_i | y, estimates], shape (m,).
    theta_sd : np.ndarray
        SD[theta_i | y, estimates], shape (m,): theta_i | y, estimates ~
        N(theta_mean_i, theta_sd_i^2).
    relative_change : np.ndarray
        (ybar_i - theta_mean_i) / ybar_i, the share of its own mean school i gives up
        (`relative_change`), shape (m,); it depends on where 0 sits on the score scale,
        `kappa` does not.
    fit_time : float
        Seconds the fit took.
    """

    data: GroupedData
    method: str
    reml: bool
    mu: float
    lam: float
    variance_ratio: float
    loglik: float
    covariance: np.ndarray
    converged: bool
    evaluations: int
    message: str
    theta_mean: np.ndarray
    theta_sd: np.ndarray
    relative_change: np.ndarray
    fit_time: float

    @property
    def kappa(self) -> np.ndarray:
        """kappa_i = omega_hat/(n_i + omega_hat) = 1/(1 + n_i r_hat), shape (m,): the shrinkage
        coefficient of E(theta_i | y, estimates) = kappa_i mu + (1 - kappa_i) ybar_i.
        """
        return 1.0 / (1.0 + self.data.n * self.variance_ratio)

    @property
    def omega(self) -> float:
        """omega = 1/r = 1/tau^2; inf on the boundary r = 0."""
        return float(_omega(self.variance_ratio))

    @property
    def sigma(self) -> float:
        """sigma = lam^(-1/2), the within-school SD."""
        return 1.0 / math.sqrt(self.lam)

    @property
    def tau(self) -> float:
        """tau = sqrt(r), the ratio of between- to within-school SD."""
        return math.sqrt(self.variance_ratio)

    @property
    def between_sd(self) -> float:
        """tau sigma, the SD of the school means theta_i about mu."""
        return self.tau * self.sigma

    @property
    def at_boundary(self) -> bool:
        """Whether the estimate is tau = 0 (r = 0): no between-school variation."""
        return self.variance_ratio == 0.0

    @property
    def criterion(self) -> str:
        """The criterion maximized: "REML" or "ML"."""
        return "REML" if self.reml else "ML"

    @property
    def standard_errors(self) -> dict[str, float]:
        """Delta-method standard errors from `covariance`: gradients in (mu, lam, r) of each
        reported quantity. Those that involve r are nan at the boundary.
        """
        lam, r = self.lam, self.variance_ratio
        with np.errstate(divide="ignore", invalid="ignore"):
            gradients = {
                "mu": [1.0, 0.0, 0.0],
                "lam": [0.0, 1.0, 0.0],
                "sigma": [0.0, -0.5 * self.sigma / lam, 0.0],
                "tau": [0.0, 0.0, 0.5 / self.tau if r > 0 else np.nan],
                "between_sd": [0.0, -0.5 * self.between_sd / lam,
                               0.5 * self.between_sd / r if r > 0 else np.nan],
                "omega": [0.0, 0.0, -1.0 / (r * r) if r > 0 else np.nan],
            }
        return {name: _delta_method_se(self.covariance, np.array(gradient))
                for name, gradient in gradients.items()}

    def school_table(self) -> pd.DataFrame:
        """One row per school: label, n_i, ybar_i, E[theta_i], SD[theta_i], kappa_i and the
        relative change.

        Returns
        -------
        pandas.DataFrame
            Columns `school`, `n`, `ybar`, `theta_mean`, `theta_sd`, `kappa`,
            `relative_change`.
        """
        return pd.DataFrame({"school": self.data.labels, "n": self.data.n, "ybar": self.data.ybar,
                             "theta_mean": self.theta_mean, "theta_sd": self.theta_sd,
                             "kappa": self.kappa, "relative_change": self.relative_change})

    def summary(self) -> pd.DataFrame:
        """The estimates and their standard errors, a row per quantity.

        Returns
        -------
        pandas.DataFrame
            Index mu, sigma, between_sd, tau, lam, omega; columns `meaning`, `estimate`,
            `std_err` (nan where the observed information gives none).
        """
        errors = self.standard_errors
        rows = [(name, meaning, getattr(self, name), errors[name])
                for name, meaning in SUMMARY_ROWS]
        return pd.DataFrame(rows, columns=["quantity", "meaning", "estimate", "std_err"]
                            ).set_index("quantity")

    def _repr_html_(self) -> str:
        caption = (f"Empirical Bayes ({self.criterion}, {self.method}) on "
                   f"{html.escape(Path(self.data.name).name)}: log-likelihood {self.loglik:.6f}")
        return f"<p><b>{caption}</b></p>" + self.summary().to_html(
            float_format=lambda x: f"{x:.6g}")

    def __str__(self) -> str:
        """A text table of the estimates, statsmodels style."""
        errors = self.standard_errors
        width = 78
        left = [("Data:", Path(self.data.name).name), ("Students (N):", str(self.data.N)),
                ("Schools (m):", str(self.data.m)),
                ("School sizes:", f"{self.data.n.min()} to {self.data.n.max()}")]
        right = [("Criterion:", "REML (restricted)" if self.reml else "ML"),
                 ("Method:", self.method),
                 ("Log-likelihood:", f"{self.loglik:.6f}"),
                 ("Converged:", f"{'yes' if self.converged else 'NO'} "
                                f"({self.evaluations} evaluations)")]
        lines = ["Empirical Bayes fit of the normal hierarchical model".center(width), "=" * width]
        lines += [f"{a:<15}{b:<24}{c:<17}{d}" for (a, b), (c, d) in zip(left, right)]
        lines += ["-" * width, f"{'':<41}{'estimate':>14}{'std.err':>14}", "-" * width]
        lines += [f"{name:<11}{meaning:<30}{getattr(self, name):>14.6g}{errors[name]:>14.6g}"
                  for name, meaning in SUMMARY_ROWS]
        lines.append("-" * width)
        lines += self._notes()
        return "\n".join(lines)

    def _notes(self) -> list[str]:
        pull = self.kappa
        notes = ["theta_i | y, estimates ~ N(kappa_i mu + (1 - kappa_i) ybar_i, "
                 "1 / (lam (n_i + omega)))",
                 f"shrinkage kappa_i = omega / (n_i + omega) from {pull.min():.3g} to "
                 f"{pull.max():.3g}",
                 self.message]
        if self.at_boundary:
            notes += ["tau = 0 is on the boundary: every theta_i = mu, and the standard errors",
                      "of tau, between_sd and omega are not defined there."]
        elif np.isnan(self.covariance[0, 0]):
            notes.append("no standard errors: the observed information is not positive definite "
                         "here.")
        return notes

    def profile_ci(self, level: float = 0.95) -> pd.DataFrame:
        """Profile-likelihood intervals of mu, sigma and between_sd = tau sigma, as lme4 reports
        them (`hiercheck.samplers.intervals.profile_intervals`).

        Parameters
        ----------
        level : float, default 0.95
            The confidence level.

        Returns
        -------
        pandas.DataFrame
            Index mu, sigma, between_sd; columns estimate, lower, upper (between_sd's lower
            end exactly 0 when tau = 0 is inside the interval). REML has no likelihood for mu:
            its row is the ML profile's.
        """
        from .intervals import profile_intervals

        return profile_intervals(self, level)

    def to_inference_data(self, draws: int, chains: int, seed: SeedLike = None, *,
                          priors: Priors | None = None) -> az.InferenceData:
        """An engine-style result: theta_i drawn from its conditional posterior given the
        estimates, mu, lam and omega held at the estimates. `priors` (default: the data's
        `Priors.weakly_informative`) are recorded for the interface; empirical Bayes uses none.

        Parameters
        ----------
        draws : int
            Draws per chain.
        chains : int
            Chains (independent: the draws are i.i.d.).
        seed : SeedLike, default None
            The seed the draws of theta depend on.
        priors : Priors, optional
            Recorded in the result's attrs.

        Returns
        -------
        arviz.InferenceData
            The engine interface's result; its settings record the method, the criterion,
            the log-likelihood and the standard errors.

        Raises
        ------
        SettingsError
            If `draws` or `chains` is not an integer >= 1.
        """
        check_run_size(draws, chains)
        start = time.perf_counter()
        rng = np.random.default_rng(seed)
        theta = self.theta_mean + self.theta_sd * rng.standard_normal((chains, draws, self.data.m))
        scalars = {name: np.full((chains, draws), value)
                   for name, value in (("mu", self.mu), ("lam", self.lam), ("omega", self.omega))}
        settings = {"method": self.method, "reml": self.reml, "seed": seed,
                    "uses_priors": False, "loglik": self.loglik, "converged": self.converged,
                    "standard_errors": self.standard_errors}
        return to_inference_data({**scalars, "theta": theta}, self.data,
                                 priors or Priors.weakly_informative(self.data),
                                 engine="eb", settings=settings,
                                 sampling_time=self.fit_time + time.perf_counter() - start)


# -- the optimizers -------------------------------------------------------------------------------

class _Maximum(NamedTuple):
    """What an optimizer found."""

    mu: float
    lam: float
    r: float
    loglik: float
    converged: bool
    evaluations: int
    message: str


def _typical_inverse_size(stats: SchoolStats) -> float:
    """mean_i(1/n_i): the ratio r at which a typical school mean is shrunk halfway."""
    return float(np.mean(1.0 / stats.n))


def _maximize_profile(stats: SchoolStats, reml: bool) -> _Maximum:
    """Every local maximum of the profile in r on [0, inf), then the highest.

    r = 0 is a local maximum when the score there is <= 0 (the loglik falls as r leaves the
    boundary). Inside, a maximum is a root of the score where it turns from + to -: the scan
    brackets each one and brentq solves it to full precision.
    """
    unit = _typical_inverse_size(stats)
    exponents = np.arange(-SCAN_DECADES * SCAN_POINTS_PER_DECADE,
                          SCAN_DECADES * SCAN_POINTS_PER_DECADE + 1) / SCAN_POINTS_PER_DECADE
    grid = np.concatenate([[0.0], unit * 10.0 ** exponents])
    score = profile_score(stats, grid, reml=reml)
    evaluations = grid.size
    for _ in range(SCAN_EXTENSIONS):
        if score[-1] <= 0:
            break
        grid = np.append(grid, grid[-1] * 10.0 ** SCAN_DECADES)
        score = np.append(score, profile_score(stats, grid[-1], reml=reml))
        evaluations += 1
    candidates = [0.0] if score[0] <= 0 else []
    for k in np.flatnonzero((score[:-1] > 0) & (score[1:] <= 0)):
        root, result = optimize.brentq(lambda r: profile_score(stats, r, reml=reml),
                                       grid[k], grid[k + 1], xtol=1e-300, rtol=4 * np.finfo(float).eps,
                                       full_output=True)
        candidates.append(root)
        evaluations += result.function_calls
    if not candidates:
        return _Maximum(mu=np.nan, lam=np.nan, r=np.nan, loglik=np.nan, converged=False,
                        evaluations=evaluations,
                        message=f"the profile still rises at r = {grid[-1]:.3g}: no maximum found")
    logliks = profile_loglik(stats, np.array(candidates), reml=reml)
    best = float(candidates[int(np.argmax(logliks))])
    if best == 0.0:
        message = f"maximum on the boundary r = tau^2 = 0, where the score is {score[0]:.4g} <= 0"
    else:
        message = f"interior maximum: the score is 0 at r = tau^2 = {best:.10g}"
    if len(candidates) > 1:
        message += f" (the highest of {len(candidates)} local maxima)"
    return _Maximum(mu=float(gls_mean(stats, _omega(best))),
                    lam=float(profile_lam(stats, best, reml=reml)), r=best,
                    loglik=float(np.max(logliks)), converged=True, evaluations=evaluations,
                    message=message)


def moment_estimates(stats: SchoolStats) -> tuple[float, float, float]:
    """(mu, lam, r) by moments: the grand mean, 1 / the pooled within-school variance
    s_w^2 = sum_i ss_i / (N - m), and r = [var_i(ybar_i) - s_w^2 mean_i(1/n_i)] / s_w^2, raised
    to at least TAU2_START_FLOOR mean_i(1/n_i) so that log omega is finite.

    Parameters
    ----------
    stats : SchoolStats
        n_i, ybar_i, ss_i of the data.

    Returns
    -------
    mu : float
        The grand mean of the scores.
    lam : float
        1 / s_w^2.
    r : float
        The moment estimate of tau^2, floored as above.
    """
    within = stats.pooled_variance
    between = np.var(stats.ybar, ddof=1) - within * _typical_inverse_size(stats)
    r = max(between / within, TAU2_START_FLOOR * _typical_inverse_size(stats))
    return float((stats.n * stats.ybar).sum() / stats.N), float(1.0 / within), float(r)


def _maximize_nelder_mead(stats: SchoolStats, reml: bool, objective=None) -> _Maximum:
    """Nelder-Mead on x = ((mu - mu_0)/s, log lam, log omega) for ML, x = (log lam, log omega)
    for REML (mu is integrated out, then reported as mu_hat), from the moment estimates (mu_0,
    ...); s = 1/sqrt(lam_0 mean(n_i)) is a typical school mean's standard error, so every
    coordinate, and the search's tolerance on it, is free of the scores' units. The first simplex
    steps by 1 in the first coordinate and by 1/2 in the logs.
    `objective` replaces the package's criterion (a user's derivation, say): for ML a function
    (stats, mu, lam, omega), for REML a function (stats, lam, omega).
    """
    mu_start, lam, r = moment_estimates(stats)
    mu_scale = 1.0 / math.sqrt(lam * np.mean(stats.n))
    if reml:
        criterion = objective or restricted_loglik
        start = np.array([math.log(lam), -math.log(r)])
        steps = np.array([0.5, 0.5])

        def loglik(x):
            return criterion(stats, math.exp(x[0]), math.exp(x[1]))
    else:
        criterion = objective or log_marginal_likelihood
        start = np.array([0.0, math.log(lam), -math.log(r)])
        steps = np.array([1.0, 0.5, 0.5])

        def loglik(x):
            return criterion(stats, mu_start + mu_scale * x[0], math.exp(x[1]), math.exp(x[2]))

    simplex = np.vstack([start, start + np.diag(steps)])
    result = optimize.minimize(lambda x: -loglik(x), start, method="Nelder-Mead",
                               options={"initial_simplex": simplex, "xatol": NELDER_MEAD_XATOL,
                                        "fatol": NELDER_MEAD_FATOL,
                                        "maxiter": NELDER_MEAD_MAXFEV,
                                        "maxfev": NELDER_MEAD_MAXFEV})
    lam, omega = math.exp(result.x[-2]), math.exp(result.x[-1])
    mu = float(gls_mean(stats, omega)) if reml else float(mu_start + mu_scale * result.x[0])
    return _Maximum(mu=mu, lam=lam, r=1.0 / omega, loglik=float(-result.fun),
                    converged=bool(result.success), evaluations=int(result.nfev),
                    message=f"Nelder-Mead: {result.message.rstrip('.')}")


_OPTIMIZERS = {"profile": _maximize_profile, "nelder-mead": _maximize_nelder_mead}


def fit(data: GroupedData, *, method: str = "profile", reml: bool = False,
        objective: Callable[[SchoolStats, float, float, float], float] | None = None) -> EBFit:
    """Maximize the marginal (ML) or restricted (REML) likelihood with theta integrated out, then
    give each theta_i its conditional posterior at the estimates (`theta_conditional`):

        theta_i | y ~ N((n_i ybar_i + omega mu) / (n_i + omega), 1 / (lam (n_i + omega))),

    at tau = 0 (omega = inf) exactly theta_i = mu.

    `objective` replaces the package's criterion (a user's own derivation, say): for ML a function
    (stats, mu, lam, omega) -> log p(y | mu, lam, omega), for REML a function
    (stats, lam, omega) -> log p_R(y | lam, omega). Only the Nelder-Mead search, which treats it
    as a black box, can take one; mu is then reported as the GLS mean for REML. It must
    return one finite real number (`UserFunctionError` otherwise).

    Parameters
    ----------
    data : GroupedData
        The scores.
    method : {"profile", "nelder-mead"}, default "profile"
        The one-dimensional search over r = tau^2, which reaches tau = 0 exactly, or scipy's
        Nelder-Mead over (mu, log lam, log omega), which can only approach it.
    reml : bool, default False
        Maximize the restricted likelihood (REML) instead of the likelihood (ML).
    objective : Callable, optional
        In place of the package's criterion: (stats, mu, lam, omega) -> log p(y | mu, lam,
        omega) for ML, (stats, lam, omega) -> log p_R(y | lam, omega) for REML.

    Returns
    -------
    EBFit
        The estimates, their standard errors, and theta given them.

    Raises
    ------
    SettingsError
        If `method` is unknown, `reml` is not a bool, or `objective` is given with another
        method than "nelder-mead".

    Warns
    -----
    ConvergenceWarning
        If the optimizer stopped before converging (the fit is returned, `converged` False).

    Examples
    --------
    >>> from hiercheck import load_dataset
    >>> from hiercheck.samplers import empirical_bayes
    >>> result = empirical_bayes.fit(load_dataset("rail"), reml=True)
    >>> result.criterion, result.at_boundary
    ('REML', False)
    >>> table = result.summary()  # estimate and std_err of mu, sigma, between_sd, tau, ...
    >>> print(result)  # the same as a text table, with the fit's details  # doctest: +SKIP
    >>> result.school_table()  # E[theta_i | y, estimates] and kappa_i per school  # doctest: +SKIP
    """
    if method not in METHODS:
        raise SettingsError(f"unknown method {method!r}; methods are {', '.join(METHODS)}")
    if not isinstance(reml, (bool, np.bool_)):
        raise SettingsError(f"reml must be True or False, got {reml!r}")
    if objective is not None and method != "nelder-mead":
        raise SettingsError("a user's objective needs method='nelder-mead'")
    start = time.perf_counter()
    stats = data.stats
    if objective is None:
        found = _OPTIMIZERS[method](stats, bool(reml))
    else:  # a user's function: a NaN or an array would derail the search, so refuse them
        checked = (checked_log_likelihood(objective, "restricted_log_likelihood", ("lam", "omega"))
                   if reml else checked_log_likelihood(objective))
        found = _maximize_nelder_mead(stats, bool(reml), checked)
    if not found.converged:
        warnings.warn(f"empirical Bayes ({method}, {'REML' if reml else 'ML'}) on {data.name} "
                      f"did not converge: {found.message}", ConvergenceWarning, stacklevel=2)
    mean, precision = theta_conditional(stats, found.mu, found.lam, _omega(found.r))
    return EBFit(data=data, method=method, reml=bool(reml), mu=found.mu, lam=found.lam,
                 variance_ratio=found.r, loglik=found.loglik,
                 covariance=estimate_covariance(stats, found.lam, found.r, reml=bool(reml)),
                 converged=found.converged, evaluations=found.evaluations,
                 message=found.message, theta_mean=mean, theta_sd=1.0 / np.sqrt(precision),
                 relative_change=relative_change(stats.ybar, mean),
                 fit_time=time.perf_counter() - start)


def sample(data: GroupedData, priors: Priors, *, draws: int, chains: int,
           seed: SeedLike = None, method: str = "profile",
           reml: bool = False) -> az.InferenceData:
    """The engine interface: fit, then draw theta given the estimates (`EBFit.to_inference_data`).
    `priors` are recorded, not used: empirical Bayes estimates the hyperparameters instead.

    Parameters
    ----------
    data : GroupedData
        The scores.
    priors : Priors
        Recorded in the result, not used.
    draws : int
        Draws per chain.
    chains : int
        Chains.
    seed : SeedLike, default None
        The seed the draws of theta depend on.
    method : {"profile", "nelder-mead"}, default "profile"
        As in `fit`.
    reml : bool, default False
        As in `fit`.

    Returns
    -------
    arviz.InferenceData
        theta_i drawn given the estimates; mu, lam, omega constant at the estimates.

    Raises
    ------
    SettingsError
        If `draws` or `chains` is not an integer >= 1, or as `fit`.
    """
    check_run_size(draws, chains)
    return fit(data, method=method, reml=reml).to_inference_data(draws, chains, seed,
                                                                 priors=priors)


def relative_change(ybar: ArrayLike, theta_mean: ArrayLike) -> np.ndarray:
    """(ybar_i - E[theta_i]) / ybar_i, the share of its own mean a school gives up (the
    write-up's measure; unlike kappa_i it depends on where 0 sits on the score scale).

    Parameters
    ----------
    ybar : ArrayLike
        ybar_i, the school means.
    theta_mean : ArrayLike
        E[theta_i], an estimate or posterior mean of each school's true mean.

    Returns
    -------
    np.ndarray
        The relative change, of the broadcast shape; inf or nan where ybar_i = 0.
    """
    ybar = np.asarray(ybar, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):  # a school mean of 0 has none
        return (ybar - np.asarray(theta_mean, dtype=float)) / ybar


def plot_shrinkage(fit_result: EBFit, ax: Axes | None = None,
                   posterior_kappa: Mapping[str, ArrayLike] | None = None) -> Axes:
    """kappa_i = omega/(n_i + omega) against n_i: the weight of mu in each school's estimate
    E(theta_i | ...) = kappa_i mu + (1 - kappa_i) ybar_i. Small schools are pulled hardest
    toward mu. `posterior_kappa` maps an engine's name to its posterior means of kappa_i, drawn
    beside EB's plug-in omega_hat/(n_i + omega_hat) (a fully Bayesian posterior averages kappa_i
    over omega instead of fixing it).
    Draws on a new Figure (no pyplot, so it works under any backend, Agg included) when `ax` is
    None; returns the axes.

    Parameters
    ----------
    fit_result : EBFit
        The empirical Bayes fit.
    ax : matplotlib.axes.Axes, optional
        Where to draw.
    posterior_kappa : Mapping[str, ArrayLike], optional
        Posterior means of kappa (shape (m,)) by engine name.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on.
    """
    if ax is None:
        from matplotlib.figure import Figure

        ax = Figure(figsize=(7, 4.5)).subplots()
    data = fit_result.data
    ax.scatter(data.n, fit_result.kappa, s=18, alpha=0.8, color="C0",
               label=f"empirical Bayes ({fit_result.criterion}): omega_hat/(n_i + omega_hat)")
    for k, (name, kappa) in enumerate((posterior_kappa or {}).items(), start=1):
        ax.scatter(data.n, kappa, s=18, marker="x", alpha=0.8, color=f"C{k}",
                   label=f"{name}: posterior mean of kappa_i")
    ax.set_xlabel("students in the school, n_i")
    ax.set_ylabel("kappa_i = omega / (n_i + omega)")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{Path(data.name).name}: shrinkage of each school mean toward "
                 f"mu = {fit_result.mu:.4g}\n(empirical Bayes between-school SD "
                 f"{fit_result.between_sd:.3g}); small schools shrink most", fontsize=10)
    ax.legend(fontsize=8)
    return ax
