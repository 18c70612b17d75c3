"""The posterior engines by name, imported only when asked for (PyMC takes seconds to import),
and the table that sets their estimates side by side.
"""

from __future__ import annotations

__all__ = ["ENGINES", "estimates_table", "get_engine", "posterior_mean_kappa", "sbc_engine"]

import functools
import importlib
from collections.abc import Mapping

import numpy as np
import pandas as pd

from hiercheck.errors import SettingsError
from hiercheck.models.engine import Engine, az

# name -> (module, callable, one-line description)
ENGINES: dict[str, tuple[str, str, str]] = {
    "gibbs": ("hiercheck.samplers.gibbs", "sample", "textbook Gibbs sampler from the four full conditionals"),
    "blocked": ("hiercheck.samplers.gibbs", "sample_blocked",
                "blocked Gibbs sampler: (mu, theta) and lam drawn with theta integrated out"),
    "eb": ("hiercheck.samplers.empirical_bayes", "sample",
           "empirical Bayes: theta given the marginal-likelihood estimates"),
    "exact": ("hiercheck.samplers.exact", "sample", "exact i.i.d. draws from the quadrature posterior"),
    "nuts": ("hiercheck.models.reference", "sample_nuts", "PyMC's NUTS on the reference model"),
    "nutpie": ("hiercheck.models.reference", "sample_nutpie", "nutpie's NUTS on the reference model"),
}


def get_engine(name: str) -> Engine:
    """The engine called `name`: a callable following the one engine interface.

    Parameters
    ----------
    name : str
        A key of `ENGINES`: gibbs, blocked, eb, exact, nuts or nutpie.

    Returns
    -------
    Engine
        `sample(data, priors, *, draws, chains, seed) -> InferenceData`; its module is imported
        now.

    Raises
    ------
    SettingsError
        If no engine is called `name`.
    """
    if name not in ENGINES:
        raise SettingsError(f"unknown engine {name!r}; engines are {', '.join(ENGINES)}")
    module, attribute, _ = ENGINES[name]
    return getattr(importlib.import_module(module), attribute)


def sbc_engine(name: str) -> Engine:
    """The engine SBC runs for `name`; NUTS through nutpie, which compiles once per process.

    Parameters
    ----------
    name : str
        A key of `ENGINES`.

    Returns
    -------
    Engine
        For "nuts", NUTS with the nutpie backend and 500 tuning steps; otherwise `get_engine`'s.

    Raises
    ------
    SettingsError
        If no engine is called `name`.
    """
    if name == "nuts":
        from hiercheck.models.reference import sample_nuts

        return functools.partial(sample_nuts, backend="nutpie", tune=500)
    return get_engine(name)


# SBC ranks every NUTS_SBC_THIN-th draw of NUTS: on the small design the lowest bulk or tail ESS of
# a replication's 1000 draws was 180 at the least over 3800 replications (an autocorrelation time
# of at most 5.6, typically 1.4 to 2.7), so every 10th is nearly independent (docs/validation.md).
NUTS_SBC_THIN = 10


def sbc_thin(name: str) -> int:
    """The thinning SBC uses for the engine called `name` (`run_engine_sbc(thin=...)`).

    1 for the engines that draw i.i.d. (exact, eb), NUTS_SBC_THIN for NUTS.
    """
    return NUTS_SBC_THIN if name == "nuts" else 1


def estimates_table(results: Mapping[str, az.InferenceData]) -> pd.DataFrame:
    """mu, sigma, tau and the between-school SD tau*sigma, an engine a row: the posterior mean
    (SD), or for empirical Bayes the estimate (standard error from the observed information).

    Parameters
    ----------
    results : Mapping[str, arviz.InferenceData]
        Engines' results by name.

    Returns
    -------
    pandas.DataFrame
        A row per engine, columns mu, sigma, tau, between_sd; each cell "mean (SD)" as text.
    """
    from hiercheck.models.engine import engine_settings

    rows = {}
    for name, idata in results.items():
        post = idata.posterior
        quantities = {"mu": post.mu, "sigma": post.sigma, "tau": post.tau,
                      "between_sd": post.tau * post.sigma}
        errors = engine_settings(idata).get("standard_errors")
        rows[name] = {q: f"{float(x.mean()):.5g} "
                         f"({float(errors[q] if errors else x.std()):.2g})"
                      for q, x in quantities.items()}
    return pd.DataFrame.from_dict(rows, orient="index")


def posterior_mean_kappa(
        posteriors: Mapping[str, az.InferenceData]) -> dict[str, np.ndarray]:
    """Each sampled engine's posterior means of kappa_i = omega/(n_i + omega), by name (EB left
    out: it fixes omega, and its plug-in kappa is what the others are set beside).

    Parameters
    ----------
    posteriors : Mapping[str, arviz.InferenceData]
        Engines' results by name.

    Returns
    -------
    dict[str, np.ndarray]
        E[kappa | y], shape (m,), by engine name, "eb" left out.
    """
    return {name: idata.posterior.kappa.mean(("chain", "draw")).values
            for name, idata in posteriors.items() if name != "eb"}
