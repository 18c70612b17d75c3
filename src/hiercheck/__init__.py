"""hiercheck: is your hand-derived Gibbs sampler or empirical-Bayes estimator right?

The normal hierarchical model, fitted three independent ways that must agree, and the checks that
tell a right derivation from a wrong one:

    hiercheck.models      data, priors, simulation, the PyMC reference model
    hiercheck.samplers    hand-derived inference: Gibbs, empirical Bayes, the exact posterior
    hiercheck.validation  the checks, the catalogue of wrong derivations, the `hiercheck` command

Everyday names are exported here. `check_sampler`, `check_gibbs` (the checks for any PyMC model),
`conjugate_conditionals` and `auto_gibbs` (a model's exact conjugate conditionals, and a sampler
made of them), `power_study` (how small an error the checks catch) and `Verdict` load on first
use, so that `import hiercheck` does not import the validation stack (ArviZ, statsmodels, PyMC).
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import version

from hiercheck._typing import SeedLike
from hiercheck.errors import HiercheckError
from hiercheck.models import GroupedData, Priors, load_dataset

__version__ = version("hiercheck")

__all__ = [
    "GroupedData", "HiercheckError", "Priors", "SeedLike", "Verdict", "__version__",
    "auto_gibbs", "check_gibbs", "check_sampler", "conjugate_conditionals", "load_dataset",
    "power_study",
]

_LAZY = {"check_sampler": "hiercheck.validation.suite", "Verdict": "hiercheck.validation.result",
         "check_gibbs": "hiercheck.validation.generic",
         "power_study": "hiercheck.validation.power",
         "conjugate_conditionals": "hiercheck.validation.conjugate",
         "auto_gibbs": "hiercheck.validation.conjugate"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hiercheck' has no attribute {name!r}")
