"""Empirical Bayes against statsmodels' MixedLM, an independent implementation of the same
maximum (restricted) likelihood fit, two ways and in both directions.

For a marginal likelihood f(stats, mu, lam, omega) (ML) or a restricted likelihood
f_R(stats, lam, omega) (REML, mu integrated out under a flat prior of density 1, statsmodels'
convention):

    at statsmodels' optimum   the function at statsmodels' fitted (mu, lam = 1/scale,
                              omega = scale/cov_re) must equal statsmodels' log-likelihood there:
                              a wrong constant shows here, where it cannot move a maximum;
    its own maximum           the function is maximized as a black box (Nelder-Mead,
                              `empirical_bayes.fit(objective=...)`), the argmax is scored with the
                              dense density (`eb_references.dense_log_likelihood` or
                              `dense_restricted_log_likelihood`, which share no algebra with it)
                              and must reach statsmodels' maximum: a wrong likelihood has its
                              maximum elsewhere, which scores lower.

Both comparisons are two-sided. A dense score above statsmodels' maximum by more than statsmodels'
own stopping short means one of the references is wrong, and fails like a shortfall. For the
package's own functions the profile fits (ML and REML) are compared as well.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from hiercheck.cache import PICKLE, DiskCache, data_parts
from hiercheck.models import GroupedData
from hiercheck.samplers import empirical_bayes
from hiercheck.samplers.marginal import log_marginal_likelihood as own_marginal_likelihood

from hiercheck.samplers.user_functions import checked_log_likelihood

from .eb_references import TOLERANCE, dense_log_likelihood, dense_restricted_log_likelihood
from .result import CheckTable

__all__ = [
    "ABOVE_TOLERANCE", "PROFILE_TOLERANCE", "SEARCH_TOLERANCE", "StatsmodelsComparison",
    "StatsmodelsOptimum", "compare_with_statsmodels", "statsmodels_fit", "statsmodels_reference",
]

# statsmodels, polished by BFGS, ends within 1e-9 of the maximum on every built-in data set
# (7e-10 on dyestuff2, where it approaches the boundary tau = 0; unpolished it stops up to ~1e-6
# short). So a score may exceed its maximum by at most ABOVE_TOLERANCE.
ABOVE_TOLERANCE = 1e-6
# The profile fits solve the score equation to full precision: within 1e-6 below as well.
PROFILE_TOLERANCE = 1e-6
# Nelder-Mead on a black box stops within a tiny fraction of a log-likelihood unit of the
# maximum (1e-11 measured); a wrong likelihood's argmax costs whole units on any real data set.
SEARCH_TOLERANCE = 1e-3

_NOTES = {
    "point": "differs from statsmodels' log-likelihood at statsmodels' optimum: a term is "
             "missing or wrong (a constant difference is a constant's slip)",
    "below": "falls short of statsmodels' maximum: the function's maximum is elsewhere",
    "above": "exceeds statsmodels' maximum: statsmodels or the dense density is wrong",
}


@dataclass(frozen=True)
class StatsmodelsComparison(CheckTable):
    """A row per comparison: `loglik` against `statsmodels`, `difference` = loglik - statsmodels,
    which must lie in [-below, above]; `note` says what a failing row means.

    Attributes
    ----------
    table : pandas.DataFrame
        A row per comparison: `loglik`, `statsmodels`, `difference`, the tolerances `below` and
        `above`, a boolean `agree` and a `note` saying what a failing row means.
    """

    @property
    def worst_ratio(self) -> float:
        """Max over rows of |difference| / its tolerance on that side: above 1 fails."""
        difference = self.table.difference.to_numpy()
        tolerance = np.where(difference < 0, self.table.below, self.table.above)
        ratio = np.abs(difference) / tolerance
        return float(np.max(np.where(np.isnan(ratio), np.inf, ratio)))


@functools.lru_cache(maxsize=4)
def statsmodels_fit(data: GroupedData, reml: bool):
    """(model, result) of MixedLM 'y ~ 1' with school random intercepts, at its best: Powell then
    L-BFGS, polished by BFGS from there, keeping the higher maximum (statsmodels stops early on
    its per-observation objective). Kept for the last few (data, reml): the detection matrix
    compares many functions with the same fits.
    """
    import statsmodels.formula.api as smf
    from statsmodels.tools.sm_exceptions import ConvergenceWarning, SingularMatrixWarning

    frame = pd.DataFrame({"y": data.values, "school": data.codes})
    model = smf.mixedlm("y ~ 1", frame, groups="school")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", SingularMatrixWarning)  # its steps toward tau = 0
        first = model.fit(reml=reml, method=["powell", "lbfgs"])
        polished = model.fit(reml=reml, method="bfgs", start_params=first.params, gtol=1e-12,
                             maxiter=1000)
    return model, max((first, polished), key=lambda result: result.llf)


def statsmodels_optimum(result) -> tuple[float, float, float]:
    """(mu, lam, omega) of a MixedLM fit: lam = 1/scale, omega = 1/tau^2 = scale / cov_re
    (statsmodels' cov_re is the between-school variance tau^2 sigma^2).
    """
    scale, between = float(result.scale), float(result.cov_re.iloc[0, 0])
    with np.errstate(divide="ignore"):
        omega = float(np.divide(scale, between))
    return float(result.fe_params.iloc[0]), 1.0 / scale, omega


class StatsmodelsOptimum(NamedTuple):
    """What the comparison needs of a MixedLM fit: its log-likelihood and (mu, lam, omega).

    Attributes
    ----------
    llf : float
        statsmodels' (restricted) log-likelihood at its optimum.
    mu, lam, omega : float
        The optimum: mu, lam = 1/scale, omega = scale / cov_re.
    """

    llf: float
    mu: float
    lam: float
    omega: float


def statsmodels_reference(data: GroupedData, reml: bool) -> StatsmodelsOptimum:
    """statsmodels' (restricted) maximum likelihood fit of `data`, computed once and kept in the
    reference cache (`hiercheck.cache.DiskCache`, keyed by the data, the criterion and the
    versions of the packages), as the exact and NUTS posteriors are.

    Parameters
    ----------
    data : GroupedData
        The scores.
    reml : bool
        REML, else ML.

    Returns
    -------
    StatsmodelsOptimum
        The fit's log-likelihood and its (mu, lam, omega).
    """
    def fit():
        result = statsmodels_fit(data, reml)[1]
        return StatsmodelsOptimum(float(result.llf), *statsmodels_optimum(result))

    parts = {**data_parts(data), "reml": reml}
    return DiskCache().get("statsmodels", parts, fit, PICKLE)


def _dense_score(score: Callable, *point) -> float:
    """The dense (restricted) log-likelihood at a search's end; -inf where a wrong likelihood
    drove the search to a degenerate point (omega so small that the covariance is numerically
    singular).
    """
    try:
        return score(*point)
    except (np.linalg.LinAlgError, ValueError):
        return -np.inf


def _rows(data: GroupedData, function: Callable, reml: bool) -> list[dict]:
    """The comparisons of one criterion's function: at statsmodels' optimum, its own maximum,
    and (for the package's own function) the profile fit.
    """
    criterion = "REML" if reml else "ML"
    reference = statsmodels_reference(data, reml)
    mu, lam, omega = reference.mu, reference.lam, reference.omega
    at_optimum = (checked_log_likelihood(function, "restricted_log_likelihood",
                                         ("lam", "omega"))(data.stats, lam, omega) if reml
                  else checked_log_likelihood(function)(data.stats, mu, lam, omega))
    point_tolerance = TOLERANCE * max(1.0, abs(reference.llf))
    found = empirical_bayes.fit(data, method="nelder-mead", reml=reml, objective=function)
    searched = (_dense_score(dense_restricted_log_likelihood, data, found.lam, found.omega) if reml
                else _dense_score(dense_log_likelihood, data, found.mu, found.lam, found.omega))
    rows = [
        {"criterion": criterion, "fit": "the function at statsmodels' optimum",
         "loglik": at_optimum, "below": point_tolerance, "above": point_tolerance,
         "kind": "point"},
        {"criterion": criterion,
         "fit": "the function's maximum (Nelder-Mead), scored by the dense density",
         "loglik": searched, "below": SEARCH_TOLERANCE, "above": ABOVE_TOLERANCE,
         "kind": "maximum"},
    ]
    own = empirical_bayes.restricted_loglik if reml else own_marginal_likelihood
    if function is own:
        rows.append({"criterion": criterion, "fit": "the package's profile fit",
                     "loglik": empirical_bayes.fit(data, reml=reml).loglik,
                     "below": PROFILE_TOLERANCE, "above": ABOVE_TOLERANCE, "kind": "maximum"})
    for row in rows:
        row["statsmodels"] = reference.llf
    return rows


def compare_with_statsmodels(data: GroupedData, log_marginal_likelihood: Callable | None = None,
                             restricted_log_likelihood: Callable | None = None
                             ) -> StatsmodelsComparison:
    """Compare each function given with statsmodels' ML or REML fit (see the module docstring).

    Parameters
    ----------
    data : GroupedData
        The scores.
    log_marginal_likelihood : callable, optional
        (stats, mu, lam, omega) -> log p(y | mu, lam, omega), compared with statsmodels' ML fit.
    restricted_log_likelihood : callable, optional
        (stats, lam, omega) -> log p_R(y | lam, omega), compared with its REML fit.
        With neither function given, the package's own two are compared, with its profile fits.

    Returns
    -------
    StatsmodelsComparison
        A row per comparison: criterion, fit, loglik, statsmodels, difference, the tolerances
        below and above, agree, and a note on what a failing row means.

    Raises
    ------
    UserFunctionError
        If a function does not return one finite number at statsmodels' optimum.
    """
    if log_marginal_likelihood is None and restricted_log_likelihood is None:
        log_marginal_likelihood = own_marginal_likelihood
        restricted_log_likelihood = empirical_bayes.restricted_loglik
    rows = []
    for function, reml in ((log_marginal_likelihood, False), (restricted_log_likelihood, True)):
        if function is not None:
            rows += _rows(data, function, reml)
    table = pd.DataFrame(rows)
    table["difference"] = table.loglik - table.statsmodels
    table["agree"] = (table.difference >= -table.below) & (table.difference <= table.above)
    table["note"] = [
        "" if agree else _NOTES["point" if kind == "point" else
                                ("below" if difference < 0 else "above")]
        for agree, kind, difference in zip(table.agree, table.kind, table.difference)]
    return StatsmodelsComparison(table.drop(columns="kind"))
