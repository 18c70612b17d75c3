"""Data, priors, the generative model, and the PyMC reference model of the hierarchy.

    y_ij | theta_i ~ N(theta_i, sigma^2),  theta_i | mu ~ N(mu, tau^2 sigma^2),
    lam = 1/sigma^2 ~ Gamma(a, b),  omega = 1/tau^2 ~ Gamma(c, d),  mu ~ N(nu, 1/phi).

`hiercheck.models.reference` (PyMC) is not imported here, so the hand-derived samplers load
without it.
"""

from hiercheck.errors import DataError, PriorError

from .data import GroupedData, SchoolStats, school_stats
from .datasets import DATASETS, DEFAULT_DATASET, load_dataset
from .priors import Hyperparameters, Priors

__all__ = [
    "DATASETS", "DEFAULT_DATASET", "DataError", "GroupedData", "Hyperparameters", "PriorError",
    "Priors", "SchoolStats", "load_dataset", "school_stats",
]
