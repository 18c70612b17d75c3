"""The posterior engines by name, imported only when asked for (PyMC takes seconds to import)."""

from __future__ import annotations

import importlib

from models.engine import Engine

# name -> (module, callable, one-line description)
ENGINES: dict[str, tuple[str, str, str]] = {
    "gibbs": ("samplers.gibbs", "sample", "textbook Gibbs sampler from the four full conditionals"),
    "blocked": ("samplers.gibbs", "sample_blocked",
                "blocked Gibbs sampler: (mu, theta) and lam drawn with theta integrated out"),
    "eb": ("samplers.empirical_bayes", "sample",
           "empirical Bayes: theta given the marginal-likelihood estimates"),
    "exact": ("samplers.exact", "sample", "exact i.i.d. draws from the quadrature posterior"),
    "nuts": ("models.reference", "sample_nuts", "PyMC's NUTS on the reference model"),
    "nutpie": ("models.reference", "sample_nutpie", "nutpie's NUTS on the reference model"),
}


class UnknownEngineError(ValueError):
    """An engine name that is not in `ENGINES`."""


def get_engine(name: str) -> Engine:
    """The engine called `name`: a callable following the one engine interface."""
    if name not in ENGINES:
        raise UnknownEngineError(f"unknown engine {name!r}; engines are {', '.join(ENGINES)}")
    module, attribute, _ = ENGINES[name]
    return getattr(importlib.import_module(module), attribute)
