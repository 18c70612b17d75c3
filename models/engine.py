"""The one engine interface, and the InferenceData every engine returns.

An engine is any callable

    sample(data: GroupedData, priors: Priors, *, draws: int, chains: int, seed) -> InferenceData

whose `posterior` holds mu, lam, omega, sigma, tau (dims chain, draw), theta and
kappa_i = omega/(n_i + omega), the shrinkage coefficient of E(theta_i | y, mu, lam, omega) =
kappa_i mu + (1 - kappa_i) ybar_i (dims chain, draw, school), whose `constant_data` holds the school summaries n, ybar, ss, and whose attrs name
the engine, its settings, the priors and the sampling time.
"""

from __future__ import annotations

__all__ = [
    "POSTERIOR_VARIABLES", "SAMPLED", "SCALARS", "check_run_size", "Engine", "engine_settings",
    "to_inference_data",
]

import importlib.util
import json
import sys
import warnings
from collections.abc import Mapping
from typing import Protocol

import numpy as np

from hiercheck._typing import SeedLike
from hiercheck.errors import UserFunctionError, require_integer

from .data import GroupedData
from .priors import Priors


def _lazy_arviz():
    """ArviZ, executed on its first attribute access: its import takes seconds (most of a
    verdict that fails fast), and a verdict that fails fast never touches it.
    """
    if "arviz" in sys.modules:
        return sys.modules["arviz"]
    spec = importlib.util.find_spec("arviz")
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules["arviz"] = module
    spec.loader.exec_module(module)
    return module


# ArviZ 0.23 announces its 1.x refactor when imported, which now happens at first use.
warnings.filterwarnings("ignore", message=".*ArviZ is undergoing a major refactor.*",
                        category=FutureWarning)
az = _lazy_arviz()

SCALARS = ("mu", "lam", "omega", "sigma", "tau")
SAMPLED = ("mu", "lam", "omega", "theta")  # what an engine draws; the rest follow from them
POSTERIOR_VARIABLES = SCALARS + ("theta", "kappa")


class Engine(Protocol):
    """A posterior engine: any callable with the signature of `__call__` (Gibbs, empirical
    Bayes, the exact posterior, NUTS, a user's own sampler).

    Validation takes engines as values and never special-cases one.
    """

    def __call__(self, data: GroupedData, priors: Priors, *, draws: int, chains: int,
                 seed: SeedLike) -> az.InferenceData:
        """Draws from the posterior of (mu, lam, omega, theta) given `data` under `priors`.

        Parameters
        ----------
        data : GroupedData
            The scores.
        priors : Priors
            The prior parameters (an engine that uses none, like empirical Bayes, records them).
        draws : int
            Draws kept per chain.
        chains : int
            Independent chains.
        seed : SeedLike
            The seed; the same seed (and input) gives the same draws.

        Returns
        -------
        arviz.InferenceData
            As `to_inference_data` builds it: `posterior` with `POSTERIOR_VARIABLES`,
            `constant_data` with n, ybar, ss, and attrs naming the engine and its settings.
        """


def check_run_size(draws: int, chains: int) -> None:
    """Reject sample sizes that cannot produce a posterior.

    Parameters
    ----------
    draws : int
        Draws per chain; must be an integer >= 1.
    chains : int
        Chains; must be an integer >= 1.

    Raises
    ------
    SettingsError
        If either is not an integer >= 1.
    """
    require_integer("draws", draws)
    require_integer("chains", chains)


def to_inference_data(posterior: Mapping[str, np.ndarray], data: GroupedData, priors: Priors, *,
                      engine: str, settings: Mapping, sampling_time: float,
                      sample_stats: Mapping[str, np.ndarray] | None = None) -> az.InferenceData:
    """Package draws of (mu, lam, omega, theta) of shape (chain, draw[, school]) as an engine's
    result; sigma = lam^(-1/2), tau = omega^(-1/2) and kappa_i = omega/(n_i + omega) are added
    when absent.

    Parameters
    ----------
    posterior : Mapping[str, np.ndarray]
        Draws by name: mu, lam, omega of shape (chain, draw), theta of shape (chain, draw, m);
        sigma, tau and kappa optional.
    data : GroupedData
        The data the draws condition on; its school summaries go into `constant_data`.
    priors : Priors
        The priors used (or, for an engine that uses none, recorded for the interface).
    engine : str
        The engine's name, recorded in the attrs.
    settings : Mapping
        The engine's settings, recorded in the attrs as JSON.
    sampling_time : float
        Seconds the engine took.
    sample_stats : Mapping[str, np.ndarray], optional
        Per-draw statistics of the sampler (NUTS' `diverging`, say).

    Returns
    -------
    arviz.InferenceData
        Groups `posterior` (dims chain, draw and, for theta, school), `constant_data` and, if
        given, `sample_stats`; every group's attrs hold `engine`, `settings`, `priors`,
        `sampling_time` and `data`.

    Raises
    ------
    UserFunctionError
        If one of mu, lam, omega, theta (`SAMPLED`) is missing.
    """
    variables = dict(posterior)
    missing = [name for name in SAMPLED if name not in variables]
    if missing:
        raise UserFunctionError(f"engine {engine!r} returned no {', '.join(missing)}")
    omega = np.asarray(variables["omega"], dtype=float)
    variables.setdefault("sigma", 1.0 / np.sqrt(variables["lam"]))
    variables.setdefault("tau", 1.0 / np.sqrt(omega))
    # omega/(n_i + omega) written 1/(1 + n_i/omega), exactly 1 at omega = inf (tau = 0)
    variables.setdefault("kappa", 1.0 / (1.0 + data.n / omega[..., None]))
    coords = {"school": data.labels}
    dims = {"theta": ["school"], "kappa": ["school"], "n": ["school"], "ybar": ["school"],
            "ss": ["school"]}
    idata = az.from_dict(
        posterior={name: np.asarray(variables[name]) for name in POSTERIOR_VARIABLES},
        sample_stats=dict(sample_stats) if sample_stats else None,
        constant_data={"n": data.n, "ybar": data.ybar, "ss": data.ss},
        coords=coords, dims=dims,
    )
    attrs = {
        "engine": engine,
        "settings": json.dumps(dict(settings), default=str),
        "priors": json.dumps(priors.as_dict()),
        "sampling_time": float(sampling_time),
        "data": data.name,
    }
    for group in idata.groups():
        idata[group].attrs.update(attrs)
    return idata


def engine_settings(idata: az.InferenceData) -> dict:
    """The settings an engine recorded in its result.

    Parameters
    ----------
    idata : arviz.InferenceData
        An engine's result (made by `to_inference_data`).

    Returns
    -------
    dict
        The `settings` attribute of its posterior, decoded from JSON.
    """
    return json.loads(idata.posterior.attrs["settings"])
