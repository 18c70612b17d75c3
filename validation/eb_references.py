"""The empirical-Bayes objectives written out independently, the references of the likelihood
checks and of the comparison with statsmodels: the marginal likelihood log p(y | mu, lam, omega)
and the restricted likelihood log p_R(y | lam, omega), each two ways that share no algebra with
`hiercheck.samplers.marginal` or `hiercheck.samplers.empirical_bayes`.

    dense_log_likelihood              each school's scores as one multivariate normal with the
                                      compound-symmetric covariance sigma^2 (I + tau^2 J) written
                                      out
    integrated_log_likelihood         quadrature over each theta_i
    dense_restricted_log_likelihood   Harville's closed form with dense covariances
    flat_prior_log_likelihood         quadrature over mu of the dense likelihood (a flat prior
                                      of density 1, statsmodels' REML convention)

An objective agrees with them when its relative error is at most TOLERANCE.
"""

from __future__ import annotations

__all__ = ["TOLERANCE", "dense_log_likelihood", "dense_restricted_log_likelihood",
           "flat_prior_log_likelihood", "integrated_log_likelihood"]

import math
from dataclasses import dataclass

import numpy as np
from scipy import integrate
from scipy import stats as st

from hiercheck.models import GroupedData

TOLERANCE = 1e-7  # relative: far above rounding (1e-15 measured), far below any missing term
LOG_2PI = math.log(2.0 * math.pi)
QUADRATURE_HALF_WIDTH = 12.0  # integrand SDs either side of its peak: exp(-72) of it beyond
# Enough for the integrand over each theta_i, a normal bump, to 1e-15 relative (measured against
# adaptive quadrature in tests/test_likelihood.py).
GAUSS_LEGENDRE_NODES = 64


def _school_scores(data: GroupedData):
    return (data.values[data.codes == i] for i in range(data.m))


def dense_log_likelihood(data: GroupedData, mu: float, lam: float, omega: float) -> float:
    """sum_i log N(y_i; mu 1, (I + 11'/omega) / lam), each school's covariance written out.

    Parameters
    ----------
    data : GroupedData
        The scores.
    mu : float
        The grand mean.
    lam : float
        The within-school precision.
    omega : float
        The ratio of the between-school to the within-school precision.

    Returns
    -------
    float
        log p(y | mu, lam, omega).
    """
    total = 0.0
    for scores in _school_scores(data):
        covariance = (np.eye(scores.size) + 1.0 / omega) / lam
        total += st.multivariate_normal.logpdf(scores, np.full(scores.size, mu), covariance)
    return float(total)


@dataclass(frozen=True)
class _Whitened:
    """The scores and the design vector 1 whitened school by school by the Cholesky factor L_i of
    Sigma_i = (I + 11'/omega)/lam, so that -1/2 (y - mu 1)'V^{-1}(y - mu 1) = -1/2 |a - mu b|^2;
    and log |V| = sum_i log |Sigma_i|. V = blockdiag(Sigma_i) is never formed whole.
    """

    a: np.ndarray
    b: np.ndarray
    log_det: float

    @classmethod
    def of(cls, data: GroupedData, lam: float, omega: float) -> _Whitened:
        parts, log_det = [], 0.0
        for scores in _school_scores(data):
            lower = np.linalg.cholesky((np.eye(scores.size) + 1.0 / omega) / lam)
            parts.append(np.linalg.solve(lower, np.column_stack([scores, np.ones(scores.size)])))
            log_det += 2.0 * np.log(np.diag(lower)).sum()
        stacked = np.vstack(parts)
        return cls(stacked[:, 0], stacked[:, 1], log_det)

    def log_density(self, mu: float) -> float:
        """log N(y; mu 1, V)."""
        residual = self.a - mu * self.b
        return -0.5 * (self.a.size * LOG_2PI + self.log_det + residual @ residual)


def dense_restricted_log_likelihood(data: GroupedData, lam: float, omega: float) -> float:
    """Harville's restricted log-likelihood with the dense covariance V = blockdiag(Sigma_i):

    log N(y; 1 mu_hat, V) + 1/2 log 2pi - 1/2 log(1'V^{-1}1),
    mu_hat = 1'V^{-1}y / 1'V^{-1}1 (generalized least squares, by dense solves).

    Parameters
    ----------
    data : GroupedData
        The scores.
    lam : float
        The within-school precision.
    omega : float
        The ratio of the between-school to the within-school precision.

    Returns
    -------
    float
        The restricted log-likelihood at (lam, omega).
    """
    whitened = _Whitened.of(data, lam, omega)
    information = whitened.b @ whitened.b
    mu_hat = (whitened.b @ whitened.a) / information
    return float(whitened.log_density(mu_hat) + 0.5 * (LOG_2PI - math.log(information)))


def _log_integral_of_bump(log_integrand, peak: float, sd: float) -> float:
    """log of the integral of exp(log_integrand) over the line, for a single smooth bump at
    `peak` of width about `sd`: adaptive quadrature over peak +- 12 sd, scaled by its peak.
    """
    top = log_integrand(peak)
    area, _ = integrate.quad(lambda x: math.exp(log_integrand(x) - top),
                             peak - QUADRATURE_HALF_WIDTH * sd, peak + QUADRATURE_HALF_WIDTH * sd,
                             points=[peak], epsabs=0.0, epsrel=1e-12, limit=200)
    return top + math.log(area)


def integrated_log_likelihood(data: GroupedData, mu: float, lam: float, omega: float) -> float:
    """sum_i log of the integral over theta_i of prod_j N(y_ij; theta_i, 1/lam) N(theta_i; mu,
    1/(lam omega)), by Gauss-Legendre quadrature (GAUSS_LEGENDRE_NODES nodes) over the
    integrand's peak +- QUADRATURE_HALF_WIDTH of its SDs, each school's nodes at once.

    Parameters
    ----------
    data : GroupedData
        The scores.
    mu : float
        The grand mean.
    lam : float
        The within-school precision.
    omega : float
        The ratio of the between-school to the within-school precision.

    Returns
    -------
    float
        log p(y | mu, lam, omega), theta integrated out numerically.
    """
    nodes, weights = np.polynomial.legendre.leggauss(GAUSS_LEGENDRE_NODES)
    total = 0.0
    for scores in _school_scores(data):
        peak = (scores.sum() + omega * mu) / (scores.size + omega)
        half_width = QUADRATURE_HALF_WIDTH / math.sqrt(lam * (scores.size + omega))
        theta = peak + half_width * nodes
        # the two normal log densities, written out, at every node
        log_integrand = (0.5 * scores.size * math.log(lam / (2 * math.pi))
                         - 0.5 * lam * np.sum((scores[:, None] - theta) ** 2, axis=0)
                         + 0.5 * math.log(lam * omega / (2 * math.pi))
                         - 0.5 * lam * omega * (theta - mu) ** 2)
        top = log_integrand.max()
        total += top + math.log(half_width * (weights @ np.exp(log_integrand - top)))
    return float(total)


def flat_prior_log_likelihood(data: GroupedData, lam: float, omega: float) -> float:
    """log of the integral over mu of the dense likelihood N(y; mu 1, V), by adaptive quadrature
    (a flat prior of density 1). The least-squares point of the whitened scores and 1/|b|, the
    integrand's width, only place the quadrature's window.

    Parameters
    ----------
    data : GroupedData
        The scores.
    lam : float
        The within-school precision.
    omega : float
        The ratio of the between-school to the within-school precision.

    Returns
    -------
    float
        The log-likelihood at (lam, omega), mu integrated out numerically.
    """
    whitened = _Whitened.of(data, lam, omega)
    scale = math.sqrt(whitened.b @ whitened.b)
    return _log_integral_of_bump(whitened.log_density, (whitened.b @ whitened.a) / scale**2,
                                 1.0 / scale)
