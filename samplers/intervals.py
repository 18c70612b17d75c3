"""Profile-likelihood intervals of the empirical-Bayes estimates of mu, sigma and tau sigma.

For a quantity x with the others maximized out, the profile log-likelihood is

    l_P(x) = max over the other parameters of l(mu, lam, r),   r = tau^2 = 1/omega >= 0,

and the level-(1 - a) interval is {x : 2 [l_max - l_P(x)] <= chi^2_1(1 - a)} (Wilks). The
profiles here, with l the ML log-likelihood or the REML criterion:

    sigma = lam^(-1/2):       lam fixed, mu = mu_hat(r) (GLS, free of lam), maximize over r >= 0
    between_sd = tau sigma:   r = between_sd^2 lam, mu = mu_hat(r), maximize over lam > 0
    mu:                       lam = lam_hat(mu, r) = N / Q(mu, r) in closed form, maximize over r

REML integrates mu out, so it has no profile in mu: mu's interval is always the ML profile's.
Unlike a Wald interval (estimate +- z SE), a profile interval follows the likelihood's shape, which
for a variance component near 0 is far from quadratic; when tau = 0 is inside the interval its
lower end is exactly 0 (r = 0 is a point of the parameter space, and it is evaluated there).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import optimize, stats as st

from hiercheck.models import SchoolStats

from .empirical_bayes import EBFit, fit, gls_mean, restricted_loglik
from .marginal import log_marginal_likelihood, marginal_spread

__all__ = ["profile_intervals"]

# the ratio r (and lam, for between_sd) is scanned over 16 decades around its natural unit, 8 points
# a decade, then the best point is refined by Brent's method between its neighbours
SCAN_DECADES = 8
SCAN_POINTS_PER_DECADE = 8
# an interval's end is bracketed by steps of a factor e (positive quantities) or of the estimate's
# own scale (mu) away from the estimate, at most this many
MAX_BRACKET_STEPS = 60
BOUNDARY_START = 1e-6  # between_sd / sigma where a boundary fit's upper end is first sought


def _loglik(stats: SchoolStats, mu, lam, r, reml: bool) -> np.ndarray:
    """ML: log p(y | mu, lam, 1/r); REML: log p_R(y | lam, 1/r) (mu plays no part)."""
    with np.errstate(divide="ignore"):
        omega = 1.0 / np.asarray(r, dtype=float)
    if reml:
        return restricted_loglik(stats, lam, omega)
    return log_marginal_likelihood(stats, mu, lam, omega)


def _maximize_on_scan(function, grid: np.ndarray) -> float:
    """max over x of function(x) (vectorized over x), from a scan of `grid` (increasing, >= 0)
    refined by bounded Brent between the best point's neighbours.
    """
    values = function(grid)
    best = int(np.nanargmax(values))
    low, high = grid[max(best - 1, 0)], grid[min(best + 1, grid.size - 1)]
    if high > low:
        refined = optimize.minimize_scalar(lambda x: -float(function(np.array([x]))[0]),
                                           bounds=(low, high), method="bounded",
                                           options={"xatol": 1e-12 * max(high, 1e-300)})
        if np.isfinite(refined.fun) and -refined.fun > values[best]:
            return float(-refined.fun)
    return float(values[best])


def _ratio_grid(stats: SchoolStats) -> np.ndarray:
    unit = float(np.mean(1.0 / stats.n))
    exponents = np.arange(-SCAN_DECADES * SCAN_POINTS_PER_DECADE,
                          SCAN_DECADES * SCAN_POINTS_PER_DECADE + 1) / SCAN_POINTS_PER_DECADE
    return np.concatenate([[0.0], unit * 10.0 ** exponents])


def _profile_sigma(stats: SchoolStats, sigma: float, reml: bool) -> float:
    lam = sigma ** -2.0

    def at_ratio(r):
        with np.errstate(divide="ignore"):
            return _loglik(stats, gls_mean(stats, 1.0 / r), lam, r, reml)

    return _maximize_on_scan(at_ratio, _ratio_grid(stats))


def _profile_between_sd(stats: SchoolStats, between_sd: float, lam_hat: float, reml: bool) -> float:
    def at_lam(lam):
        r = between_sd ** 2 * lam
        with np.errstate(divide="ignore"):
            return _loglik(stats, gls_mean(stats, 1.0 / r), lam, r, reml)

    exponents = np.arange(-SCAN_DECADES * SCAN_POINTS_PER_DECADE,
                          SCAN_DECADES * SCAN_POINTS_PER_DECADE + 1) / SCAN_POINTS_PER_DECADE
    return _maximize_on_scan(at_lam, lam_hat * 10.0 ** (exponents / 2))


def _profile_mu(stats: SchoolStats, mu: float) -> float:
    def at_ratio(r):
        with np.errstate(divide="ignore"):
            omega = 1.0 / r
        lam = stats.N / marginal_spread(stats, mu, omega)
        return log_marginal_likelihood(stats, mu, lam, omega)

    return _maximize_on_scan(at_ratio, _ratio_grid(stats))


def _end(profile, start: float, target: float, direction: int, *, scale: float | None = None,
         may_be_zero: bool = False) -> float:
    """The x beyond `start` in `direction` (-1 or +1) where profile(x) falls to `target`,
    bracketed by steps away from `start` and solved by brentq: steps of a factor e for a positive
    quantity (`scale` None), of `scale` for one on the whole line. For a quantity that may be 0,
    the lower end is 0 when the profile at 0 is still above the target.
    """
    if may_be_zero and direction < 0 and profile(0.0) >= target:
        return 0.0
    if scale is None:  # on the log scale
        def at(u):
            return profile(np.exp(u)) - target
        origin, step = np.log(start), 1.0
    else:
        def at(x):
            return profile(x) - target
        origin, step = start, scale
    inside = origin
    for k in range(1, MAX_BRACKET_STEPS + 1):
        outside = origin + direction * k * step
        if at(outside) < 0:
            root = optimize.brentq(at, min(inside, outside), max(inside, outside),
                                   xtol=1e-12 * step)
            return float(np.exp(root)) if scale is None else float(root)
        inside = outside
    return float(np.inf * direction)


def profile_intervals(eb_fit: EBFit, level: float = 0.95) -> pd.DataFrame:
    """Profile-likelihood intervals of mu, sigma and between_sd = tau sigma (module docstring).

    Parameters
    ----------
    eb_fit : EBFit
        An ML or REML fit (`empirical_bayes.fit`, profile method).
    level : float, default 0.95
        The intervals' confidence level.

    Returns
    -------
    pandas.DataFrame
        Index mu, sigma, between_sd; columns estimate, lower, upper. The lower end of
        between_sd is exactly 0 when tau = 0 lies inside the interval.
    """
    stats = eb_fit.data.stats
    drop = st.chi2.ppf(level, 1) / 2.0
    target = eb_fit.loglik - drop
    rows = {"sigma": (eb_fit.sigma,
                      *(_end(lambda s: _profile_sigma(stats, s, eb_fit.reml), eb_fit.sigma,
                             target, direction) for direction in (-1, 1)))}
    between = eb_fit.between_sd
    # at the boundary (between_sd = 0) the upper end is searched from far below the within SD
    start = between if between > 0 else BOUNDARY_START * eb_fit.sigma
    rows["between_sd"] = (between, *(
        _end(lambda b: _profile_between_sd(stats, b, eb_fit.lam, eb_fit.reml), start, target,
             direction, may_be_zero=True) for direction in (-1, 1)))
    ml = eb_fit if not eb_fit.reml else fit(eb_fit.data, reml=False)
    mu_scale = ml.standard_errors["mu"] if np.isfinite(ml.standard_errors["mu"]) else \
        float(np.std(stats.ybar)) / np.sqrt(stats.m)
    mu_profile = (lambda mu: _profile_mu(stats, mu))
    target = ml.loglik - drop
    rows["mu"] = (eb_fit.mu, *(_end(mu_profile, ml.mu, target, direction, scale=mu_scale)
                               for direction in (-1, 1)))
    return pd.DataFrame.from_dict(rows, orient="index", columns=["estimate", "lower", "upper"]
                                  ).loc[["mu", "sigma", "between_sd"]]
