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

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hiercheck._typing import SeedLike
from hiercheck.models import GroupedData, Priors
from hiercheck.samplers import exact
from hiercheck.samplers.user_functions import checked_log_likelihood

from .eb_references import (TOLERANCE, dense_log_likelihood, dense_restricted_log_likelihood,
                            flat_prior_log_likelihood, integrated_log_likelihood)
from .result import CheckTable

__all__ = ["LikelihoodResult", "check_marginal_likelihood", "check_restricted_likelihood"]



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
