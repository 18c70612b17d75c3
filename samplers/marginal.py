"""Closed forms shared by the engines: theta (and mu) integrated out of the hierarchy.

Notation of docs/derivation.md. Per school, with theta_i integrated out,

    ybar_i | mu, lam, omega ~ N(mu, 1/(lam w_i)),   w_i = n_i omega / (n_i + omega),

and ss_i carries lam alone. Every function broadcasts: `stats.ybar`, `stats.ss` are (..., m) and
mu, lam, omega are scalars or arrays of the batch shape (...). omega = inf (tau = 0: no
between-school variation, every theta_i = mu) is allowed and gives the limits exactly.
"""

from __future__ import annotations

__all__ = [
    "LOG_2PI", "lam_given_mu_omega", "log_evidence_given_variances", "log_marginal_likelihood",
    "marginal_spread", "mu_conditional", "school_weights", "theta_conditional",
]

import math

import numpy as np
from numpy.typing import ArrayLike

from hiercheck.models import Priors, SchoolStats
from hiercheck.models.data import as_column

LOG_2PI = math.log(2.0 * math.pi)


def school_weights(n: ArrayLike, omega: ArrayLike) -> np.ndarray:
    """w_i = n_i omega / (n_i + omega): the precision of ybar_i about mu, in units of lam.

    Written n_i / (1 + n_i/omega) so that omega = inf (tau = 0) gives w_i = n_i exactly.

    Parameters
    ----------
    n : ArrayLike
        n_i, the school sizes; shape (m,).
    omega : ArrayLike
        omega = 1/tau^2, a scalar or the batch shape (...); inf allowed.

    Returns
    -------
    np.ndarray
        w, of shape (..., m).
    """
    omega = as_column(omega)
    return n / (1.0 + n / omega)


def theta_conditional(stats: SchoolStats, mu: ArrayLike, lam: ArrayLike,
                      omega: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """theta_i | mu, lam, omega, y ~ N(m_i, 1/p_i) with

        m_i = (n_i ybar_i + omega mu) / (n_i + omega),   p_i = lam (n_i + omega).

    Parameters
    ----------
    stats : SchoolStats
        n_i, ybar_i, ss_i; `ybar` and `ss` of shape (..., m).
    mu : ArrayLike
        The grand mean, a scalar or the batch shape (...).
    lam : ArrayLike
        lam = 1/sigma^2, a scalar or the batch shape.
    omega : ArrayLike
        omega = 1/tau^2, a scalar or the batch shape; inf gives m_i = mu.

    Returns
    -------
    mean : np.ndarray
        m_i, of shape (..., m).
    precision : np.ndarray
        p_i, of shape (..., m).
    """
    omega = as_column(omega)
    total = stats.n + omega
    # mu + (n_i / (n_i + omega)) (ybar_i - mu): at omega = inf (tau = 0) the mean is mu exactly
    mu = as_column(mu)
    mean = mu + stats.n / total * (stats.ybar - mu)
    return mean, as_column(lam) * total


def marginal_spread(stats: SchoolStats, mu: ArrayLike, omega: ArrayLike) -> np.ndarray:
    """Q = sum_i ss_i + sum_i w_i (ybar_i - mu)^2: the scores' quadratic form, in units of 1/lam,
    once theta is integrated out.

    Parameters
    ----------
    stats : SchoolStats
        n_i, ybar_i, ss_i; `ybar` and `ss` of shape (..., m).
    mu : ArrayLike
        The grand mean, a scalar or the batch shape (...).
    omega : ArrayLike
        omega = 1/tau^2, a scalar or the batch shape; inf allowed.

    Returns
    -------
    np.ndarray
        Q, of the batch shape.
    """
    deviation = stats.ybar - as_column(mu)
    return stats.ss.sum(-1) + (school_weights(stats.n, omega) * deviation * deviation).sum(-1)


def log_marginal_likelihood(stats: SchoolStats, mu: ArrayLike, lam: ArrayLike,
                            omega: ArrayLike) -> np.ndarray:
    """log p(y | mu, lam, omega), theta integrated out, with every constant:

        -N/2 log 2pi + N/2 log lam + 1/2 sum_i log(omega / (n_i + omega))
        - lam/2 [ sum_i ss_i + sum_i w_i (ybar_i - mu)^2 ]

    Parameters
    ----------
    stats : SchoolStats
        n_i, ybar_i, ss_i; `ybar` and `ss` of shape (..., m).
    mu : ArrayLike
        The grand mean, a scalar or the batch shape (...).
    lam : ArrayLike
        lam = 1/sigma^2, a scalar or the batch shape.
    omega : ArrayLike
        omega = 1/tau^2, a scalar or the batch shape; inf allowed.

    Returns
    -------
    np.ndarray
        The log-likelihood, of the batch shape.
    """
    lam = np.asarray(lam, dtype=float)
    log_ratio = -np.log1p(stats.n / as_column(omega))  # log(omega / (n_i + omega)); 0 at omega = inf
    return 0.5 * (stats.N * (np.log(lam) - LOG_2PI) + log_ratio.sum(-1)
                  - lam * marginal_spread(stats, mu, omega))


def mu_conditional(stats: SchoolStats, priors: Priors, lam: ArrayLike,
                   omega: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """mu | lam, omega, y ~ N(B/A, 1/A), theta integrated out, where

        A = lam sum_i w_i + phi,   B = lam sum_i w_i ybar_i + phi nu.

    Parameters
    ----------
    stats : SchoolStats
        n_i, ybar_i, ss_i; `ybar` and `ss` of shape (..., m).
    priors : Priors
        Supplies nu and phi.
    lam : ArrayLike
        lam = 1/sigma^2, a scalar or the batch shape (...).
    omega : ArrayLike
        omega = 1/tau^2, a scalar or the batch shape; inf allowed.

    Returns
    -------
    mean : np.ndarray
        B/A, of the batch shape.
    precision : np.ndarray
        A, of the batch shape.
    """
    lam = np.asarray(lam, dtype=float)
    w = school_weights(stats.n, omega)
    precision = lam * w.sum(-1) + priors.phi
    mean = (lam * (w * stats.ybar).sum(-1) + priors.phi * priors.nu) / precision
    return mean, precision


def log_evidence_given_variances(stats: SchoolStats, priors: Priors, lam: ArrayLike,
                                 omega: ArrayLike) -> np.ndarray:
    """log p(y | lam, omega), theta and mu integrated out (mu ~ N(nu, 1/phi)):

        log p(y | mu*, lam, omega) + log N(mu*; nu, 1/phi) - log N(mu*; B/A, 1/A)

    for any mu*; at mu* = B/A the last term is (log A - log 2pi)/2. This is Bayes' rule for mu,
    so no separate completing-the-square algebra is needed.

    Parameters
    ----------
    stats : SchoolStats
        n_i, ybar_i, ss_i; `ybar` and `ss` of shape (..., m).
    priors : Priors
        Supplies mu's prior N(nu, 1/phi).
    lam : ArrayLike
        lam = 1/sigma^2, a scalar or the batch shape (...).
    omega : ArrayLike
        omega = 1/tau^2, a scalar or the batch shape; inf allowed.

    Returns
    -------
    np.ndarray
        The log evidence, of the batch shape.
    """
    mean, precision = mu_conditional(stats, priors, lam, omega)
    return (log_marginal_likelihood(stats, mean, lam, omega) + priors.logpdf_mu(mean)
            - 0.5 * (np.log(precision) - LOG_2PI))


def lam_given_mu_omega(stats: SchoolStats, priors: Priors, mu: ArrayLike,
                       omega: ArrayLike) -> tuple[float, np.ndarray]:
    """lam | mu, omega, y ~ Gamma(a + N/2, b + [sum_i ss_i + sum_i w_i (ybar_i - mu)^2] / 2),
    theta integrated out.

    Parameters
    ----------
    stats : SchoolStats
        n_i, ybar_i, ss_i; `ybar` and `ss` of shape (..., m).
    priors : Priors
        Supplies a and b.
    mu : ArrayLike
        The grand mean, a scalar or the batch shape (...).
    omega : ArrayLike
        omega = 1/tau^2, a scalar or the batch shape; inf allowed.

    Returns
    -------
    shape : float
        a + N/2.
    rate : np.ndarray
        b + Q/2 (Q from `marginal_spread`), of the batch shape.
    """
    return priors.a + stats.N / 2.0, priors.b + marginal_spread(stats, mu, omega) / 2.0
