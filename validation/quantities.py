"""The flagship's densities as test quantities: the log-likelihood and the log joint density of a
draw of the parameters and the data, from the schools' sufficient statistics. SBC ranks them and
Geweke's test compares their means; they see slips that a parameter's own rank misses (Modrak et
al. 2023). tests/test_sbc.py checks them against scipy's densities of the individual scores.
"""

from __future__ import annotations

__all__ = ["log_joint_density", "log_likelihood"]

import numpy as np
from numpy.typing import ArrayLike

from hiercheck.models import Priors, SchoolStats
from hiercheck.models.simulate import Parameters
from hiercheck.samplers.marginal import LOG_2PI


def log_likelihood(stats: SchoolStats, theta: ArrayLike, lam: ArrayLike) -> np.ndarray:
    """log p(y | theta, lam) = N/2 (log lam - log 2pi)
    - lam/2 [sum ss_i + sum n_i (ybar_i - theta_i)^2]

    Parameters
    ----------
    stats : SchoolStats
        The data's sufficient statistics.
    theta : array_like
        The school means, schools on the last axis, with any leading batch shape.
    lam : array_like
        The within-school precision, of the batch shape.

    Returns
    -------
    numpy.ndarray
        The log-likelihood, of the batch shape.
    """
    lam = np.asarray(lam, dtype=float)
    spread = stats.ss.sum(-1) + (stats.n * (stats.ybar - theta) ** 2).sum(-1)
    return 0.5 * stats.N * (np.log(lam) - LOG_2PI) - 0.5 * lam * spread


def log_joint_density(params: Parameters, stats: SchoolStats, priors: Priors) -> np.ndarray:
    """log p(y, theta, mu, lam, omega) = log p(y | theta, lam)
    + sum_i log N(theta_i; mu, 1/(omega lam)) + log p(mu) + log p(lam) + log p(omega)

    Parameters
    ----------
    params : Parameters
        (theta, mu, lam, omega), with any leading batch shape (theta's last axis the schools).
    stats : SchoolStats
        The data's sufficient statistics.
    priors : Priors
        The priors.

    Returns
    -------
    numpy.ndarray
        The log joint density, of the batch shape.
    """
    theta, mu, lam, omega = (np.asarray(x, dtype=float) for x in
                             (params.theta, params.mu, params.lam, params.omega))
    precision = omega * lam
    spread = ((theta - mu[..., None]) ** 2).sum(-1)
    # omega = inf (empirical Bayes at tau = 0) puts every theta_i at mu: the density's limit, +inf
    with np.errstate(invalid="ignore"):
        quadratic = np.where(spread > 0, precision * spread, 0.0)
    log_theta = 0.5 * stats.m * (np.log(precision) - LOG_2PI) - 0.5 * quadratic
    return log_likelihood(stats, theta, lam) + log_theta + priors.logpdf(mu, lam, omega)
