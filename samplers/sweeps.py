"""Running a sampler written in the generic interface: a mapping of conditionals, in sweep order.

A conditional is `draw(rng, state, data) -> value` for one state (no batch axes): `state` maps
every free variable's name to its current value on its natural scale, `data` maps the observed
values and the model's `pm.Data` to theirs. A mapping {name or tuple of names: draw}, in sweep
order, is a sampler; a tuple key draws its block jointly and returns a tuple (in the key's order)
or a dict. `sweep` applies each draw once, updating the state as it goes; `run_chains` runs
independent chains and keeps their draws; `to_inference_data` packages them as an engine's result.
"""

from __future__ import annotations

__all__ = ["Conditional", "Sampler", "run_chains", "sweep", "to_inference_data"]

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from hiercheck.errors import UserFunctionError, require_integer
from hiercheck.models.engine import az

if TYPE_CHECKING:
    from hiercheck._typing import SeedLike

Conditional = Callable[[np.random.Generator, dict, Mapping], Any]
Sampler = Mapping[str | tuple[str, ...], Conditional]


def sweep(rng: np.random.Generator, sampler: Sampler, state: Mapping, data: Mapping) -> dict:
    """One sweep: every conditional of `sampler` once, in order, each given the state as updated
    so far.

    Parameters
    ----------
    rng : numpy.random.Generator
        The random stream.
    sampler : Mapping
        {name or tuple of names: draw}, in sweep order.
    state : Mapping
        The current value of every free variable.
    data : Mapping
        The observed values and the model's data by name.

    Returns
    -------
    dict
        The new state (`state` itself is not changed).

    Raises
    ------
    UserFunctionError
        If a block's draw returns neither a dict with its names nor a sequence of its length.
    """
    state = dict(state)
    for names, draw in sampler.items():
        value = draw(rng, state, data)
        if isinstance(names, tuple):
            state.update(_block_values(names, value))
        else:
            state[names] = value
    return state


def _block_values(names: tuple[str, ...], value) -> dict:
    if isinstance(value, Mapping):
        if set(value) != set(names):
            raise UserFunctionError(f"the draw of block {names} returned the names {sorted(value)}")
        return {name: value[name] for name in names}
    if not isinstance(value, (tuple, list)) or len(value) != len(names):
        raise UserFunctionError(f"the draw of block {names} must return a tuple of {len(names)} "
                                f"values or a dict, got {type(value).__name__}")
    return dict(zip(names, value))


def run_chains(seed: SeedLike, sampler: Sampler,
               initial_state: Callable[[np.random.Generator], dict], data: Mapping, *,
               draws: int, chains: int, tune: int) -> dict[str, np.ndarray]:
    """Independent chains of `tune + draws` sweeps each, keeping the last `draws`.

    Chain k runs on the k-th stream of `SeedSequence(seed).spawn(chains)`, starting from
    `initial_state(its generator)`, so the draws depend on the seed alone.

    Parameters
    ----------
    seed : int, SeedSequence or None
        The seed of the whole run (a `numpy.random.Generator` is not accepted: it is not a
        `SeedSequence`'s entropy).
    sampler : Mapping
        {name or tuple of names: draw}, in sweep order.
    initial_state : callable
        rng -> a starting state (every free variable).
    data : Mapping
        The observed values and the model's data by name.
    draws, chains, tune : int
        Kept sweeps per chain, chains, discarded sweeps per chain.

    Returns
    -------
    dict
        Each free variable's draws, shape (chains, draws, *its shape).
    """
    require_integer("draws", draws)
    require_integer("chains", chains)
    require_integer("tune", tune, least=0)
    sequence = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    kept: dict[str, np.ndarray] = {}
    for chain, stream in enumerate(sequence.spawn(chains)):
        rng = np.random.default_rng(stream)
        state = initial_state(rng)
        for _ in range(tune):
            state = sweep(rng, sampler, state, data)
        for k in range(draws):
            state = sweep(rng, sampler, state, data)
            for name, value in state.items():
                if name not in kept:
                    kept[name] = np.empty((chains, draws) + np.shape(value))
                kept[name][chain, k] = value
    return kept


def to_inference_data(posterior: Mapping[str, np.ndarray], *, coords: Mapping, dims: Mapping,
                      constant_data: Mapping[str, np.ndarray], engine: str, settings: Mapping,
                      priors: Mapping[str, Any], data_name: str,
                      sampling_time: float) -> az.InferenceData:
    """Draws of shape (chain, draw, ...) as an engine's result, with its attrs: the engine, its
    settings, the priors (JSON) and the sampling time.

    Parameters
    ----------
    posterior : Mapping
        Draws by variable name.
    coords, dims : Mapping
        ArviZ coordinates, and the dims of each variable beyond (chain, draw).
    constant_data : Mapping
        Data the result should carry (the design).
    engine : str
        The engine's name.
    settings : Mapping
        Its settings, recorded as JSON.
    priors : Mapping
        The priors' parameters, recorded as JSON (arrays as nested lists).
    data_name : str
        The data set's name.
    sampling_time : float
        Seconds.

    Returns
    -------
    arviz.InferenceData
        Groups posterior and constant_data.
    """
    idata = az.from_dict(posterior={name: np.asarray(value) for name, value in posterior.items()},
                         constant_data=dict(constant_data), coords=dict(coords), dims=dict(dims))
    attrs = {"engine": engine, "settings": json.dumps(dict(settings), default=str),
             "priors": json.dumps({name: np.asarray(value).tolist()
                                   for name, value in priors.items()}),
             "sampling_time": float(sampling_time), "data": data_name}
    for group in idata.groups():
        idata[group].attrs.update(attrs)
    return idata
