"""The generative model: parameters from the prior, scores (or their statistics) given them.

    (mu, lam, omega) ~ prior
    theta_i | mu, lam, omega ~ N(mu, 1/(omega lam))        (variance tau^2 sigma^2)
    y_ij | theta_i, lam      ~ N(theta_i, 1/lam)

Everything is vectorized over a leading batch shape `size`, so SBC and Geweke draw many data
sets at once.
"""

from __future__ import annotations

__all__ = [
    "draw_parameters", "draw_school_stats", "draw_scores", "draw_theta_given_hyper", "Parameters",
]

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from .data import SchoolStats, school_stats
from .priors import Priors


class Parameters(NamedTuple):
    """A draw of every unknown: scalars of the batch shape, theta of shape batch + (m,).

    Attributes
    ----------
    theta : np.ndarray
        theta_i, the school means; shape batch + (m,).
    mu : np.ndarray
        The grand mean; the batch shape.
    lam : np.ndarray
        lam = 1/sigma^2; the batch shape.
    omega : np.ndarray
        omega = 1/tau^2; the batch shape.
    """

    theta: np.ndarray
    mu: np.ndarray
    lam: np.ndarray
    omega: np.ndarray


def draw_theta_given_hyper(rng: np.random.Generator, mu: ArrayLike, lam: ArrayLike,
                           omega: ArrayLike, m: int) -> np.ndarray:
    """theta_i ~ N(mu, 1/(omega lam)) independently for i = 1..m, batched over mu's shape.

    Parameters
    ----------
    rng : numpy.random.Generator
        The source of randomness.
    mu : ArrayLike
        The grand mean, a scalar or the batch shape.
    lam : ArrayLike
        lam = 1/sigma^2, broadcasting with `mu`.
    omega : ArrayLike
        omega = 1/tau^2, broadcasting with `mu`.
    m : int
        The number of schools.

    Returns
    -------
    np.ndarray
        theta, of shape batch + (m,).
    """
    mu, lam, omega = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (mu, lam, omega)))
    scale = 1.0 / np.sqrt(omega * lam)
    return mu[..., None] + scale[..., None] * rng.standard_normal(mu.shape + (m,))


def draw_parameters(rng: np.random.Generator, priors: Priors, m: int,
                    size: int | tuple[int, ...] = ()) -> Parameters:
    """Every parameter from its prior, for `m` schools and a batch of shape `size`.

    Parameters
    ----------
    rng : numpy.random.Generator
        The source of randomness.
    priors : Priors
        The prior of (mu, lam, omega).
    m : int
        The number of schools.
    size : int or tuple of int, default ()
        The batch shape.

    Returns
    -------
    params : Parameters
        (mu, lam, omega) from the prior, then theta_i | mu, lam, omega ~ N(mu, 1/(omega lam)).
    """
    hyper = priors.sample(rng, size)
    theta = draw_theta_given_hyper(rng, hyper.mu, hyper.lam, hyper.omega, m)
    return Parameters(theta=theta, mu=hyper.mu, lam=hyper.lam, omega=hyper.omega)


def draw_scores(rng: np.random.Generator, params: Parameters, codes: np.ndarray) -> np.ndarray:
    """y_k ~ N(theta_{codes[k]}, 1/lam) for every student k; shape batch + (N,).

    Parameters
    ----------
    rng : numpy.random.Generator
        The source of randomness.
    params : Parameters
        theta (batch + (m,)) and lam (the batch shape) to draw the scores from.
    codes : np.ndarray
        The school index of each student; shape (N,).

    Returns
    -------
    np.ndarray
        The scores, of shape batch + (N,).
    """
    theta = np.asarray(params.theta)
    sigma = 1.0 / np.sqrt(np.asarray(params.lam, dtype=float))
    noise = rng.standard_normal(theta.shape[:-1] + (codes.size,))
    return theta[..., codes] + sigma[..., None] * noise


def draw_school_stats(rng: np.random.Generator, params: Parameters, n: np.ndarray) -> SchoolStats:
    """The sufficient statistics of simulated scores, drawn directly in O(m):

        ybar_i ~ N(theta_i, 1/(lam n_i)),   lam ss_i ~ chi^2_{n_i - 1},   independent.

    Same distribution as computing them from `draw_scores`, without making N scores.

    Parameters
    ----------
    rng : numpy.random.Generator
        The source of randomness.
    params : Parameters
        theta (batch + (m,)) and lam (the batch shape) to draw the statistics from.
    n : np.ndarray
        n_i, the school sizes; shape (m,).

    Returns
    -------
    SchoolStats
        n, and ybar and ss of shape batch + (m,); ss_i = 0 for a school of one student.
    """
    n = np.asarray(n)
    theta = np.asarray(params.theta, dtype=float)
    lam = np.asarray(params.lam, dtype=float)[..., None]
    ybar = theta + rng.standard_normal(theta.shape) / np.sqrt(lam * n)
    # Gamma((n-1)/2, rate lam/2) is chi^2_{n-1}/lam; shape 0 (a one-student school) gives 0
    ss = rng.gamma(np.broadcast_to((n - 1) / 2.0, theta.shape)) * (2.0 / lam)
    return school_stats(n, ybar, ss)
