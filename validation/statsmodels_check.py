"""Empirical Bayes against statsmodels' MixedLM, an independent implementation of the same
maximum (restricted) likelihood fit.

A marginal likelihood under test is maximized as a black box (`empirical_bayes.fit` with
Nelder-Mead); the argmax it finds is scored with the dense normal log-likelihood of the raw scores
(`consistency.dense_log_likelihood`), which shares no algebra with it, and must reach statsmodels'
maximum. A wrong likelihood has its maximum elsewhere, and scores lower. The package's own profile
fits (ML and REML) must reach statsmodels' maxima too.
"""

from __future__ import annotations

__all__ = ["compare_with_statsmodels", "statsmodels_fit", "StatsmodelsComparison"]

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hiercheck.models import GroupedData
from hiercheck.samplers import empirical_bayes

from .consistency import dense_log_likelihood
from .result import CheckTable

# A search that ends at the true maximum scores within a tiny fraction of a log-likelihood unit
# of statsmodels (which itself stops short by up to ~1e-6); a wrong likelihood's argmax costs
# whole units on any real data set.
PROFILE_TOLERANCE = 1e-6
SEARCH_TOLERANCE = 1e-3


@dataclass(frozen=True)
class StatsmodelsComparison(CheckTable):
    @property
    def max_shortfall(self) -> float:
        return float(self.table.shortfall.max())


def statsmodels_fit(data: GroupedData, reml: bool):
    """(model, result) of MixedLM 'y ~ 1' with school random intercepts, at its best: Powell then
    L-BFGS, polished by BFGS from there, keeping the higher maximum (statsmodels stops early on
    its per-observation objective)."""
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


def _dense_score(data: GroupedData, found) -> float:
    """The dense log-likelihood at a search's end; -inf where a wrong likelihood drove the
    search to a degenerate point (omega so small that the covariance is numerically singular)."""
    try:
        return dense_log_likelihood(data, found.mu, found.lam, found.omega)
    except (np.linalg.LinAlgError, ValueError):
        return -np.inf


def compare_with_statsmodels(data: GroupedData, log_marginal_likelihood=None) -> StatsmodelsComparison:
    """A row per fit: the (restricted) log-likelihood it reaches, statsmodels' maximum, and the
    shortfall (statsmodels' minus ours; negative when ours is higher). With no function given,
    the package's own likelihood is checked, with its profile ML and REML fits as well."""
    ml_reference = statsmodels_fit(data, reml=False)[1].llf
    found = empirical_bayes.fit(data, method="nelder-mead", objective=log_marginal_likelihood)
    rows = [{"fit": "Nelder-Mead on the likelihood under test, scored by the dense density",
             "loglik": _dense_score(data, found),
             "statsmodels": ml_reference, "tolerance": SEARCH_TOLERANCE}]
    if log_marginal_likelihood is None:
        for reml, reference in ((False, ml_reference),
                                (True, statsmodels_fit(data, reml=True)[1].llf)):
            profile = empirical_bayes.fit(data, reml=reml)
            rows.append({"fit": f"profile {profile.criterion}", "loglik": profile.loglik,
                         "statsmodels": reference, "tolerance": PROFILE_TOLERANCE})
    table = pd.DataFrame(rows)
    table["shortfall"] = table.statsmodels - table.loglik
    table["agree"] = table.shortfall <= table.tolerance
    return StatsmodelsComparison(table)
