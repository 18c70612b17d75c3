"""The one engine interface, and the InferenceData every engine returns.

An engine is any callable

    sample(data: GroupedData, priors: Priors, *, draws: int, chains: int, seed) -> InferenceData

whose `posterior` holds mu, lam, omega, sigma, tau (dims chain, draw) and theta (dims chain,
draw, school), whose `constant_data` holds the school summaries n, ybar, ss, and whose attrs name
the engine, its settings, the priors and the sampling time.
"""

from __future__ import annotations

__all__ = [
    "POSTERIOR_VARIABLES", "SCALARS", "check_run_size", "Engine", "engine_settings",
    "to_inference_data",
]

import json
import warnings
from collections.abc import Mapping
from typing import Protocol

import numpy as np

from hiercheck.errors import UserFunctionError, require_integer

from .data import GroupedData
from .priors import Priors

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)  # ArviZ announces its 1.x refactor on import
    import arviz as az

SCALARS = ("mu", "lam", "omega", "sigma", "tau")
POSTERIOR_VARIABLES = SCALARS + ("theta",)


class Engine(Protocol):
    def __call__(self, data: GroupedData, priors: Priors, *, draws: int, chains: int,
                 seed) -> az.InferenceData: ...


def check_run_size(draws: int, chains: int) -> None:
    """Reject sample sizes that cannot produce a posterior."""
    require_integer("draws", draws)
    require_integer("chains", chains)


def to_inference_data(posterior: Mapping[str, np.ndarray], data: GroupedData, priors: Priors, *,
                      engine: str, settings: Mapping, sampling_time: float,
                      sample_stats: Mapping[str, np.ndarray] | None = None) -> az.InferenceData:
    """Package draws of (mu, lam, omega, theta) of shape (chain, draw[, school]) as an engine's
    result; sigma = lam^(-1/2) and tau = omega^(-1/2) are added when absent."""
    variables = dict(posterior)
    variables.setdefault("sigma", 1.0 / np.sqrt(variables["lam"]))
    variables.setdefault("tau", 1.0 / np.sqrt(variables["omega"]))
    missing = [name for name in POSTERIOR_VARIABLES if name not in variables]
    if missing:
        raise UserFunctionError(f"engine {engine!r} returned no {', '.join(missing)}")
    coords = {"school": data.labels}
    dims = {"theta": ["school"], "n": ["school"], "ybar": ["school"], "ss": ["school"]}
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
    """The settings an engine recorded in its result."""
    return json.loads(idata.posterior.attrs["settings"])
