"""Hand-derived inference: the Gibbs sampler, empirical Bayes, and the exact posterior.

Imports `hiercheck.models`; never imports PyMC. Each engine is a module (`gibbs`,
`empirical_bayes`, `exact`) with `sample(data, priors, *, draws, chains, seed)`; `marginal` holds
the closed forms that Gibbs and empirical Bayes share.
"""

from . import empirical_bayes, exact, gibbs, marginal

__all__ = ["empirical_bayes", "exact", "gibbs", "marginal"]
