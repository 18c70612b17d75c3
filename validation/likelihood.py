"""The empirical-Bayes objectives, checked exactly: the marginal likelihood
log p(y | mu, lam, omega) and the restricted likelihood log p_R(y | lam, omega).

A likelihood is a function, not a sampler, so it is checked deterministically: its values at a
few points (exact posterior draws, so the points do not depend on the function under test) must
equal two references that share no algebra with it, to a relative tolerance far above rounding
and far below any missing term.

    marginal likelihood     `dense_log_likelihood`, the multivariate normal density of each
                            school's scores under their compound-symmetric covariance written
                            out, and `integrated_log_likelihood`, quadrature over each theta_i
    restricted likelihood   `dense_restricted_log_likelihood`, Harville's closed form with dense
                            covariances, and `flat_prior_log_likelihood`, quadrature over mu of
                            the dense likelihood

The restricted likelihood is mu integrated out under a flat prior of density 1,

    log p_R(y | lam, omega) = log integral p(y | mu, lam, omega) dmu,

the convention of `hiercheck.samplers.empirical_bayes.restricted_loglik` and of statsmodels'
MixedLM with reml=True (docs/derivation.md, section 4.7). The density of N - 1 orthonormal error
contrasts, another common definition, is higher by 1/2 log N at every point; a function written
that way fails here with that constant difference in the table.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import integrate
from scipy import stats as st

from hiercheck._typing import SeedLike
from hiercheck.models import GroupedData, Priors
from hiercheck.samplers import exact
from hiercheck.samplers.user_functions import checked_log_likelihood

from .result import CheckTable

__all__ = [
    "TOLERANCE", "LikelihoodResult", "check_marginal_likelihood",
    "check_restricted_likelihood", "dense_log_likelihood", "dense_restricted_log_likelihood",
    "flat_prior_log_likelihood", "integrated_log_likelihood",
]

TOLERANCE = 1e-7  # relative: far above rounding (1e-15 measured), far below any missing term
LOG_2PI = math.log(2.0 * math.pi)
QUADRATURE_HALF_WIDTH = 12.0  # integrand SDs either side of its peak: exp(-72) of it beyond
# Enough for the integrand over each theta_i, a normal bump, to 1e-15 relative (measured against
# adaptive quadrature in tests/test_likelihood.py).
GAUSS_LEGENDRE_NODES = 64


@dataclass(frozen=True)
class LikelihoodResult(CheckTable):
    """A likelihood against its dense and quadrature references: a row per point.

    Attributes
    ----------
    table : pandas.DataFrame
        A row per point: the point, the `value`, the references `dense` and `quadrature`, the
        `difference` from the dense one, the relative errors `dense_error` and
        `quadrature_error`, and `agree`.
    tolerance : float
        The largest relative error that passes.
    """

    tolerance: float

    @property
    def max_relative_error(self) -> float:
        """The largest relative error from either reference, over the points."""
        return float(self.table[["dense_error", "quadrature_error"]].max().max())


# -- dense references ----------------------------------------------------------------------------

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


# -- the checks ----------------------------------------------------------------------------------

def posterior_points(data: GroupedData, priors: Priors, points: int, seed) -> list[dict]:
    """`points` exact posterior draws of (mu, lam, omega), as floats."""
    draws = exact.posterior(data, priors).draw(np.random.default_rng(seed), points)
    return [{name: float(draws[name][k]) for name in ("mu", "lam", "omega")}
            for k in range(points)]


def _compare(value: float, dense: float, quadrature: float) -> dict[str, float]:
    scale = max(1.0, abs(dense))
    return {"value": value, "dense": dense, "quadrature": quadrature,
            "difference": value - dense, "dense_error": abs(value - dense) / scale,
            "quadrature_error": abs(value - quadrature) / scale}


def _result(rows: list[dict], tolerance: float) -> LikelihoodResult:
    table = pd.DataFrame(rows)
    table["agree"] = table[["dense_error", "quadrature_error"]].max(axis=1) <= tolerance
    return LikelihoodResult(table=table, tolerance=tolerance)


def check_marginal_likelihood(log_marginal_likelihood: Callable, data: GroupedData,
                              priors: Priors, *, points: int = 3, seed: SeedLike = 0,
                              tolerance: float = TOLERANCE) -> LikelihoodResult:
    """Compare `log_marginal_likelihood(stats, mu, lam, omega)` with `dense_log_likelihood` and
    `integrated_log_likelihood` at `points` exact posterior draws of (mu, lam, omega).

    Parameters
    ----------
    log_marginal_likelihood : callable
        (stats, mu, lam, omega) -> log p(y | mu, lam, omega), theta integrated out.
    data, priors : GroupedData, Priors
        The scores, and the priors whose posterior supplies the points.
    points : int, default 3
        How many points.
    seed : SeedLike, default 0
        Picks the points.
    tolerance : float, default TOLERANCE
        Largest relative error, |value - reference| / max(1, |reference|), that passes.

    Returns
    -------
    LikelihoodResult
        A row per point with the value, both references, the difference from the dense one and
        the relative errors. The check is deterministic: it has no false alarms.

    Raises
    ------
    UserFunctionError
        If the function does not return one finite number.
    """
    rows = []
    for k, point in enumerate(posterior_points(data, priors, points, seed)):
        value = checked_log_likelihood(log_marginal_likelihood)(data.stats, *point.values())
        rows.append({"point": k, **point, **_compare(
            value, dense_log_likelihood(data, *point.values()),
            integrated_log_likelihood(data, *point.values()))})
    return _result(rows, tolerance)


def check_restricted_likelihood(restricted_log_likelihood: Callable, data: GroupedData,
                                priors: Priors, *, points: int = 3, seed: SeedLike = 0,
                                tolerance: float = TOLERANCE) -> LikelihoodResult:
    """Compare `restricted_log_likelihood(stats, lam, omega)` with
    `dense_restricted_log_likelihood` and `flat_prior_log_likelihood` at `points` exact
    posterior draws of (lam, omega).

    Parameters
    ----------
    restricted_log_likelihood : callable
        (stats, lam, omega) -> log p_R(y | lam, omega), mu integrated out under a flat prior of
        density 1 (statsmodels' REML convention; see the module docstring).
    data, priors : GroupedData, Priors
        The scores, and the priors whose posterior supplies the points.
    points : int, default 3
        How many points.
    seed : SeedLike, default 0
        Picks the points.
    tolerance : float, default TOLERANCE
        Largest relative error, |value - reference| / max(1, |reference|), that passes.

    Returns
    -------
    LikelihoodResult
        A row per point, as `check_marginal_likelihood`'s. A constant `difference` at every
        point is a slip in a constant (1/2 log N: the error-contrast convention).

    Raises
    ------
    UserFunctionError
        If the function does not return one finite number.
    """
    rows = []
    for k, point in enumerate(posterior_points(data, priors, points, seed)):
        lam, omega = point["lam"], point["omega"]
        value = checked_log_likelihood(restricted_log_likelihood, "restricted_log_likelihood",
                                      ("lam", "omega"))(data.stats, lam, omega)
        rows.append({"point": k, "lam": lam, "omega": omega, **_compare(
            value, dense_restricted_log_likelihood(data, lam, omega),
            flat_prior_log_likelihood(data, lam, omega))})
    return _result(rows, tolerance)
