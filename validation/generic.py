"""`check_gibbs`: the checks of a hand-derived Gibbs sampler, for any PyMC model.

The user hands in the model (priors, likelihood, observed data) and a mapping from free
variables to draw functions, `draw(rng, state, data)`, in the order of the sweep:

    check_gibbs(model, {"theta": draw_theta, "beta": draw_beta, ("lam", "omega"): draw_both})

A key names one free variable, or a tuple of names drawn jointly (the function then returns a
tuple in the key's order, or a dict by name). Code not split into conditionals goes in whole,
`check_gibbs(model, sweep=f)` with f(rng, state, data) -> the next state; consistency, which
tests conditionals, then says it cannot run. `state` holds every free variable's current value
on its natural scale, `data` every observed variable and every pm.Data by name. A function may
draw directly from its conditional, or be a Markov kernel (Metropolis, slice) that leaves it
invariant.

Functions written for a batch of B states at once (numpy with a leading axis, as
`hiercheck.samplers.bloodpressure`'s) are declared with `check_gibbs(..., batched=True)`: each
free variable in `state` then has shape (B, *shape), each observed variable in `data` (and the
pm.Data holding it) (B, *shape), the rest of `data` is as in the model, and the function returns
(B, *shape) per variable. The checks then make one call where they would make B (24 times
fewer calls on the blood-pressure model).

Four checks, each with its own random stream spawned from one seed:

    consistency         each function, started from a draw of its block's exact conditional
                        (exact draws where `conjugate` recognizes it, else normalized from the
                        model's joint density), must return a draw of that conditional: an
                        invariance test, at posterior and prior states
    agreement vs nuts   the sweep's posterior quantiles against PyMC's NUTS on the data, once the
                        sweep mixes (bulk and tail ESS >= 400, R-hat <= 1.01; else "cannot verify")
    geweke              marginal-conditional against successive-conditional simulation of the joint
    sbc                 simulation-based calibration of the sweep on data simulated from the prior

Each statistical check holds its family-wise false-alarm rate at alpha (`result.ALPHA`) with
Holm's correction over its tests. A check that needs prior simulation does not apply to a model
with an improper prior (pm.Flat, pm.HalfFlat) or a pm.Potential, which prior simulation ignores:
its row says "not applicable: ..." (value NaN). A check that cannot verify what it meant to (a
sweep or a NUTS reference that does not mix, a block it cannot test, a state too flat to
tabulate) says "cannot verify: ...". Either makes the verdict "incomplete", neither passed nor
failed, unless another check failed. docs/validation.md, section "Any model", has the statistics
and their measured false-alarm rates.
"""

from __future__ import annotations

__all__ = [
    "FAIL_FAST_ORDER", "GENERIC_CHECKS", "GENERIC_FULL", "GENERIC_QUICK", "Batch", "Block", "GenericSettings",
    "ModelReferences", "call_batch", "check_gibbs", "parse_conditionals", "sweep",
]

import json
import hashlib
import math
import time
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd
from scipy import integrate, optimize, special
from scipy import stats as st
from scipy.sparse.csgraph import connected_components
from tqdm.auto import tqdm

from hiercheck.cache import PICKLE, DiskCache, source_digest
from hiercheck.errors import (DivergenceError, NutsWarning, PriorError, SettingsError,
                              UserFunctionError, require_integer)

from . import agreement, consistency, diagnostics, sbc
from .pymc_model import CompiledModel, Variable
from .forked import forked_map, in_order
from .result import (ALPHA, MIN_HOLM_P, CheckOutcome, CheckTable, Verdict, cannot_verify,
                     in_stages, integer_seeds, not_applicable, p_value_summary, run_tasks,
                     seed_streams, timed)
from .statistics import holm_adjust, holm_adjust_per_group, two_sample_tests, welch_z, whiten
from .store import UnitStore

if TYPE_CHECKING:
    import pymc as pm

    from hiercheck._typing import SeedLike

    from .conjugate import ConjugateConditional

GENERIC_CHECKS = ("consistency", "agreement vs nuts", "geweke", "sbc")
WHOLE_SWEEP = ("a whole sweep (sweep=f) has no conditional to test; hand in one function per "
               "block to check each")
# fail_fast's order: the most telling first (consistency found every slip of the students'
# samplers alone, docs/validation.md), SBC, the longest, last
FAIL_FAST_ORDER = ("consistency", "geweke", "agreement vs nuts", "sbc")
CHAINS = 4                 # of the sweep and of NUTS, for the agreement check
# Geweke's test functions are I(q <= its prior quantile at these levels): bounded. Levels 0.01
# and 0.99 would see a slip in a far tail that these miss, but the indicators' ESS is overstated
# where the chains barely visit a tail (docs/validation.md, "Geweke's tails")
GEWEKE_LEVELS = (0.1, 0.5, 0.9)
# Replications per random stream and saved unit of SBC, and Geweke's chains per stream and task;
# fixed (the draws depend on them). A batched function's unit is swept as one batch: larger units
# make fewer calls, and the tasks are still enough to share out among processes.
SBC_UNIT, SBC_BATCH_UNIT = 10, 50
GEWEKE_GROUP, GEWEKE_BATCH_GROUP = 25, 100
MAX_SBC_THIN = 50
CHAIN_ROUNDS = (25, 75, 300)  # steps of each kind of a coupled reference's chains, per round
OVERDISPERSION = 3.0       # half the reference chains start this much wider than the others
CERTIFY_ALPHA = 0.001      # their two halves differ below this (Holm within the component)
UNREPRESENTABLE = 1e-9     # a conditional's mass beyond floating point: no reference above it
MIN_MOVES = 5              # accepted independence proposals per reference chain in its last round
TERMS_PER_CALL = 2_000_000  # rows x terms of one batched evaluation (memory, not speed)
SUPPORT_HINTS = {"log-cholesky": " (a covariance matrix must be symmetric positive definite)",
                 "simplex": " (the values must be positive and sum to one)"}


@dataclass(frozen=True)
class GenericSettings:
    """How hard each check looks. `GENERIC_QUICK` is sized for a model of the blood-pressure
    size (20 groups, 400 observations) to finish in about a minute on 2 cores.

    Attributes
    ----------
    posterior_points : int
        Consistency: states drawn from the NUTS posterior.
    prior_points : int
        Consistency: states drawn from the prior (with the real data); none for a model whose
        prior cannot be simulated.
    consistency_draws : int
        Consistency: calls of each function per state, for a block whose elements are all
        separable (one-dimensional conditionals).
    joint_draws : int
        Consistency: calls per state for a block with coupled elements (multivariate tests).
    nuts_draws : int
        Agreement: NUTS draws per chain, CHAINS chains (four times as many if they miss the
        mixing gate).
    nuts_tune : int
        Agreement: NUTS tuning steps per chain.
    sweep_draws : int
        Agreement: the user's sweeps kept per chain, CHAINS chains.
    sweep_tune : int
        Agreement: sweeps discarded at the start of each chain.
    geweke_chains : int
        Geweke: chains of the successive-conditional simulator.
    geweke_steps : int
        Geweke: steps of each chain.
    geweke_independent : int
        Geweke: marginal-conditional draws from the prior predictive.
    sbc_replications : int
        SBC: replications.
    sbc_draws : int
        SBC: kept draws per replication (the ranks run 0..sbc_draws).
    sbc_thin : int
        SBC: the least thinning; the sweep's autocorrelation time if that is longer, at most
        MAX_SBC_THIN.
    sbc_tune : int
        SBC: sweeps dropped at the start of each replication's chain.
    """

    posterior_points: int    # consistency: states drawn from the NUTS posterior
    prior_points: int        # ... and from the prior (with the real data)
    consistency_draws: int   # calls of each function per state (one-dimensional conditionals)
    joint_draws: int         # ... for a block whose elements are coupled (multivariate tests)
    nuts_draws: int          # per chain, CHAINS chains
    nuts_tune: int
    sweep_draws: int         # the user's sweep, per chain, CHAINS chains
    sweep_tune: int
    geweke_chains: int
    geweke_steps: int
    geweke_independent: int
    sbc_replications: int
    sbc_draws: int
    sbc_thin: int            # at least; the sweep's autocorrelation time if that is longer
    sbc_tune: int


GENERIC_QUICK = GenericSettings(
    posterior_points=3, prior_points=2, consistency_draws=2000, joint_draws=1000,
    nuts_draws=1000, nuts_tune=1000, sweep_draws=2500, sweep_tune=500, geweke_chains=100,
    geweke_steps=200, geweke_independent=20000, sbc_replications=200, sbc_draws=50, sbc_thin=5,
    sbc_tune=100)
GENERIC_FULL = GenericSettings(
    posterior_points=6, prior_points=4, consistency_draws=8000, joint_draws=4000,
    nuts_draws=2500, nuts_tune=1000, sweep_draws=10000, sweep_tune=1000, geweke_chains=400,
    geweke_steps=500, geweke_independent=100000, sbc_replications=1000, sbc_draws=100,
    sbc_thin=10, sbc_tune=200)


def _streams(seed) -> dict[str, int]:
    """An independent integer seed for each check, the sweep's chains, NUTS and the states:
    `result.seed_streams`.
    """
    return seed_streams(seed, (*GENERIC_CHECKS, "sweep", "nuts", "states"))


# -- the user's functions -------------------------------------------------------------------------

@dataclass(frozen=True)
class Block:
    """One entry of the sweep: the variables a function draws, and the function.

    Attributes
    ----------
    names : tuple of str
        The free variables the function draws, in the key's order.
    function : callable
        The draw function, `function(rng, state, data)`.
    joint : bool
        Whether the key was a tuple: the function then returns one value per name.
    batched : bool
        Whether the function takes a batch of states at once (`check_gibbs(batched=True)`).
    """

    names: tuple[str, ...]
    function: Callable
    joint: bool  # the key was a tuple: the function returns one value per name
    batched: bool = False

    @property
    def label(self) -> str:
        """The function's name, as messages call it (its repr if it has none)."""
        return getattr(self.function, "__name__", repr(self.function))

    @property
    def key(self) -> str:
        """The key as messages and tables show it: "name", or "(a, b)" for a joint block."""
        return f"({', '.join(self.names)})" if self.joint else self.names[0]


def parse_conditionals(conditionals: Mapping, variables: Mapping[str, Variable],
                       observed: Iterable[str] = (), batched: bool = False) -> tuple[Block, ...]:
    """The sweep as blocks, in the mapping's order, after checking it against the model.

    Parameters
    ----------
    conditionals : Mapping
        {name or tuple of names: draw function}.
    variables : Mapping
        The model's free variables by name (`CompiledModel.variables`).
    observed : iterable of str
        The model's observed variables, named in the message when a key is one of them.
    batched : bool, default False
        Whether the functions take a batch of states at once.

    Returns
    -------
    tuple of Block

    Raises
    ------
    SettingsError
        If a key is no free variable, a function is not callable, or a free variable is drawn
        by no function.
    """
    if not isinstance(conditionals, Mapping) or not conditionals:
        raise SettingsError("conditionals must be a non-empty mapping {variable name or tuple of "
                            f"names: draw function}}, got {type(conditionals).__name__}")
    observed = set(observed)
    blocks = []
    for key, function in conditionals.items():
        names = (key,) if isinstance(key, str) else key
        if not isinstance(names, tuple) or not names or not all(isinstance(n, str) for n in names):
            raise SettingsError(f"conditionals key {key!r} must be a variable name or a tuple of "
                                "names")
        for name in names:
            if name not in variables:
                kind = "an observed variable" if name in observed else "no free variable"
                raise SettingsError(f"conditionals key {key!r}: {name!r} is {kind} of the model; "
                                    f"its free variables are {', '.join(variables)}")
        if len(set(names)) != len(names):
            raise SettingsError(f"conditionals key {key!r} names a variable twice")
        if not callable(function):
            raise SettingsError(f"conditionals[{key!r}] is {type(function).__name__}, not a "
                                "function draw(rng, state, data)")
        blocks.append(Block(names, function, joint=isinstance(key, tuple), batched=batched))
    drawn = {name for block in blocks for name in block.names}
    missing = [name for name in variables if name not in drawn]
    if missing:
        raise SettingsError(f"no function draws the free variable{'s' * (len(missing) > 1)} "
                            f"{', '.join(map(repr, missing))}; every free variable needs one")
    return tuple(blocks)


def call_block(block: Block, rng: np.random.Generator, state: dict, data: dict,
               variables: Mapping[str, Variable], size: int | None = None
               ) -> dict[str, np.ndarray]:
    """The block's new values, {name: array}, after checking what its function returned: of
    the variable's shape, or (size, *shape) when `size` states are given at once (a batched
    function's call).

    Raises
    ------
    UserFunctionError
        If the function raised an exception, or returned the wrong number of values, shape or
        type, a non-integer for a discrete variable, or a value that is not finite; the message
        names the function (and the variable).
    """
    try:
        returned = block.function(rng, dict(state), data)
    except Exception as error:  # the user's code: never reported as an internal error
        raise UserFunctionError(f"{block.label} raised {type(error).__name__}: {error}") from error
    if not block.joint:
        return {block.names[0]: _checked(block, block.names[0], returned, variables, size)}
    if isinstance(returned, Mapping):
        if set(returned) != set(block.names):
            raise UserFunctionError(f"{block.label} returned a dict with keys "
                                    f"{sorted(map(str, returned))}; the block {block.key} needs "
                                    f"exactly {sorted(block.names)}")
        values = [returned[name] for name in block.names]
    elif isinstance(returned, (tuple, list)) and len(returned) == len(block.names):
        values = returned
    else:
        raise UserFunctionError(f"{block.label} must return a tuple of {len(block.names)} values "
                                f"(or a dict) for the block {block.key}; it returned "
                                f"{type(returned).__name__}"
                                + (f" of length {len(returned)}"
                                   if isinstance(returned, (tuple, list)) else ""))
    return {name: _checked(block, name, value, variables, size)
            for name, value in zip(block.names, values)}


def _checked(block: Block, name: str, value, variables, size: int | None) -> np.ndarray:
    variable = variables[name]
    try:
        array = np.array(value, dtype=float)
    except (TypeError, ValueError):
        raise UserFunctionError(f"{block.label} returned {type(value).__name__} for {name!r}, "
                                "not numbers") from None
    expected = variable.shape if size is None else (size, *variable.shape)
    if array.shape != expected:
        batch = "" if size is None else f"; a batched call on {size} states needs {expected}"
        raise UserFunctionError(f"{block.label} returned shape {array.shape} for {name!r}; the "
                                f"model's {name!r} has shape {variable.shape}{batch}")
    if not np.isfinite(array).all():
        bad = array[~np.isfinite(array)].flat[0]
        raise DivergenceError(f"{block.label} returned {bad} for {name!r}: every value must be "
                              "finite")
    if variable.discrete:
        if not np.array_equal(array, np.round(array)):
            raise UserFunctionError(f"{block.label} returned a non-integer for the discrete "
                                    f"variable {name!r}")
        return array.astype(np.int64)
    return array


class Batch:
    """The data that B states of a batch are swept on: `values`, the data dict a batched
    function is given, every observed variable (and the pm.Data holding it) with a leading axis
    of B; and `cells`, the data dict of each state, as a function of one state is given them.
    `Batch.of` makes one from the model.

    Parameters
    ----------
    size : int
        B, the number of states.
    values : dict
        The data dict of a batched call.
    cell : callable
        cell(k) -> the data dict of state k; each is made once, when `cells` is first read.
    """

    def __init__(self, size: int, values: dict, cell: Callable[[int], dict]):
        self.size, self.values, self._cell = size, values, cell

    @classmethod
    def of(cls, compiled: CompiledModel, size: int, observed: dict | None = None) -> Batch:
        """The batch of `size` states of the model, with the observations `observed`.

        Parameters
        ----------
        compiled : CompiledModel
            The model.
        size : int
            B, the number of states.
        observed : dict, optional
            Each observed variable's values for the B states, (B, *shape). Omitted, every state
            has the model's own observations: broadcast (read-only) in `values`, and the
            model's own data dict, the same object, in every cell.

        Returns
        -------
        Batch
        """
        if observed is None:
            data = compiled.data
            broadcast = {name: np.broadcast_to(data[name], (size, *np.shape(data[name])))
                         for name in compiled.observed}
            return cls(size, compiled.data_with(broadcast), lambda k: data)
        return cls(size, compiled.data_with(observed), lambda k: compiled.data_with(
            {name: values[k] for name, values in observed.items()}))

    @cached_property
    def cells(self) -> list[dict]:
        """Each state's data dict."""
        return [self._cell(k) for k in range(self.size)]


def call_batch(block: Block, rng: np.random.Generator, states: dict, batch: Batch,
               variables: Mapping[str, Variable]) -> dict[str, np.ndarray]:
    """The block's new values for every state of the batch: one call of a batched function,
    or one call per state, in order, of a function of one state.

    Parameters
    ----------
    block : Block
        The function and the variables it draws.
    rng : numpy.random.Generator
        The random stream, handed to every call.
    states : dict
        Every free variable's values in the B states, (B, *shape).
    batch : Batch
        The data of the B states.
    variables : Mapping
        The model's free variables by name, against which the returns are checked.

    Returns
    -------
    dict
        {name: (B, *shape)} for each variable of the block.

    Raises
    ------
    UserFunctionError
        As `call_block`, for the first call whose return cannot be draws.
    """
    if block.batched:
        return call_block(block, rng, states, batch.values, variables, batch.size)
    news = [call_block(block, rng, {name: values[k] for name, values in states.items()},
                       batch.cells[k], variables) for k in range(batch.size)]
    return {name: np.stack([new[name] for new in news]) for name in block.names}


def sweep(rng: np.random.Generator, states: dict, batch: Batch, blocks: tuple[Block, ...],
          variables: Mapping[str, Variable],
          after: Callable[[Block, dict[str, np.ndarray]], None] | None = None) -> dict:
    """One sweep of a batch of states: every block in turn, each given the states as updated
    so far.

    Parameters
    ----------
    rng : numpy.random.Generator
        The random stream, handed to every function.
    states : dict
        The current value of every free variable in each of the B states, natural scale,
        (B, *shape).
    batch : Batch
        The data of the B states.
    blocks : tuple of Block
        The sweep (`parse_conditionals`).
    variables : Mapping
        The model's free variables by name (`CompiledModel.variables`), against which each
        function's return is checked.
    after : callable, optional
        after(block, new values) once each block has drawn.

    Returns
    -------
    dict
        The new states (`states` itself is not changed).

    Raises
    ------
    UserFunctionError
        If a function returns the wrong number of values, shape or type, a non-integer for a
        discrete variable, or a value that is not finite (from `call_block`).
    """
    states = dict(states)
    for block in blocks:
        new = call_batch(block, rng, states, batch, variables)
        if after is not None:
            after(block, new)
        states.update(new)
    return states


# -- what every check of one model shares ---------------------------------------------------------

def _refuse_untransformed_matrices(model: pm.Model) -> None:
    """A free `pm.Wishart` has no transform in PyMC 5.28: NUTS cannot move it (PyMC says so),
    and a step of its entries leaves the symmetric positive definite matrices, where its density
    raises. The checks need both, so such a model is refused, with what to write instead.
    """
    for rv in model.free_RVs:
        if "Wishart" in type(rv.owner.op).__name__ and model.rvs_to_transforms.get(rv) is None:
            raise SettingsError(
                f"the free variable {rv.name!r} is a pm.Wishart, which PyMC gives no transform: "
                "NUTS cannot sample it and the checks cannot move it; write its inverse with "
                "hiercheck.models.inverse_wishart.inverse_wishart (a covariance), or a "
                "covariance with pm.LKJCholeskyCov")


class ModelReferences:
    """The compiled model, NUTS on its data and the consistency states, computed once and shared
    by every `check_gibbs` call on the same model (a set of mutants, say).

    Parameters
    ----------
    model : pymc.Model
        The reference: priors, likelihood and observed data.
    settings : GenericSettings, default GENERIC_QUICK
        How hard the checks look; NUTS's draws and the number of consistency states.
    seed : int, default 0
        Seeds NUTS and the choice of the consistency states (a SeedSequence or Generator is
        not accepted: it goes to `numpy.random.SeedSequence` as entropy).
    name : str, optional
        How the verdict names the model; the model's name, else "the PyMC model".
    cache : hiercheck.cache.DiskCache, optional
        Where NUTS's draws are kept between runs, keyed by the model (its variables, data and
        log density at fixed points), NUTS's settings and seed; default `DiskCache()`.

    Raises
    ------
    SettingsError
        If the model has no observed variable or no free variable (`CompiledModel`), or a free
        `pm.Wishart` (`_refuse_untransformed_matrices`).

    Attributes
    ----------
    model : pymc.Model
        The model.
    compiled : CompiledModel
        Its variables, data and batched functions.
    settings : GenericSettings
        The settings.
    name : str
        How the verdict names the model.
    nuts_seed, state_seed : int
        The seeds of NUTS and of the consistency states, spawned from `seed`.
    cache : hiercheck.cache.DiskCache
        The cache of NUTS's draws.
    nuts_divergences : int
        NUTS's divergent transitions, once it has run (0 before).
    """

    nuts_divergences: int = 0

    def __init__(self, model: pm.Model, settings: GenericSettings = GENERIC_QUICK,
                 seed: SeedLike = 0, name: str | None = None, cache: DiskCache | None = None):
        self.model = model
        self.compiled = CompiledModel(model)
        _refuse_untransformed_matrices(model)
        self.cache = cache if cache is not None else DiskCache()
        self.settings = settings
        self.name = name or model.name or "the PyMC model"
        streams = _streams(seed)
        self.nuts_seed, self.state_seed = streams["nuts"], streams["states"]

    @property
    def variables(self) -> dict[str, Variable]:
        """The model's free variables by name (`CompiledModel.variables`)."""
        return self.compiled.variables

    @cached_property
    def fingerprint(self) -> str:
        """What the model is, as a hash (`_model_fingerprint`): the key of NUTS's cached draws
        and of SBC's saved units; computed once.
        """
        return _model_fingerprint(self.compiled)

    @cached_property
    def nuts(self) -> dict[str, np.ndarray]:
        """PyMC's draws of every free variable, (CHAINS, draws, *shape), natural scale. If they
        miss the mixing gate (compound steps for discrete variables mix slowly), the sampler runs
        again with four times the draws; the agreement check says whether that sufficed.
        """
        settings = self.settings

        def sample():
            for draws in (settings.nuts_draws, 4 * settings.nuts_draws):
                samples, divergences = self.compiled.sample_nuts(
                    draws=draws, tune=settings.nuts_tune, chains=CHAINS, seed=self.nuts_seed)
                if _mixing_gate(samples, self.variables)[0]:
                    break
            return samples, divergences

        parts = {"model": self.fingerprint, "draws": settings.nuts_draws,
                 "tune": settings.nuts_tune, "chains": CHAINS, "seed": self.nuts_seed}
        samples, divergences = self.cache.get("generic-nuts", parts, sample, PICKLE)
        self.nuts_divergences = int(divergences)
        if divergences:
            warnings.warn(f"NUTS on {self.name}: {divergences} divergent transitions; the "
                          "agreement check's reference may be biased", NutsWarning, stacklevel=2)
        return samples

    @cached_property
    def prior_problem(self) -> str | None:
        """Why the model's prior cannot be simulated, or None."""
        if self.compiled.improper:
            return (f"improper prior on {', '.join(self.compiled.improper)}; a proper prior "
                    "lets it run")
        if self.compiled.potentials:
            return ("the model has a pm.Potential, which prior simulation ignores; a prior "
                    "written as distributions lets it run")
        return None

    @cached_property
    def conjugate(self) -> dict[frozenset, ConjugateConditional]:
        """The model's recognized conjugate full conditionals (`conjugate_conditionals`), keyed
        by their set of names: consistency's exact references. Empty if recognition raises.
        """
        from .conjugate import conjugate_conditionals

        try:
            recognized = conjugate_conditionals(self.model)
        except Exception:  # noqa: BLE001  (exact references only replace numerical ones, which
            return {}      # serve every block, so a model recognition cannot read keeps them)
        return {frozenset(conditional.names): conditional for conditional in recognized.values()}

    @cached_property
    def states(self) -> list[tuple[str, dict[str, np.ndarray]]]:
        """(origin, natural values) of the consistency states: NUTS draws far apart in its
        chains, and (for a proper prior) prior draws; the data stay the model's.
        """
        settings, rng = self.settings, np.random.default_rng(self.state_seed)
        chains, draws = next(iter(self.nuts.values())).shape[:2]
        picks = rng.choice(chains * draws, settings.posterior_points, replace=False)
        states = [("posterior", {name: values.reshape(chains * draws, *values.shape[2:])[k]
                                 for name, values in self.nuts.items()}) for k in picks]
        if self.prior_problem is None and settings.prior_points:
            prior, _ = self.compiled.simulate_prior(settings.prior_points, rng.integers(2**63))
            states += [("prior", {name: values[k] for name, values in prior.items()})
                       for k in range(settings.prior_points)]
        return states


class _SweepRun:
    """One set of draw functions on one model: its blocks, the number of processes its chains
    run in, and the posterior its sweep draws on the data (shared by the agreement check and
    SBC's thinning).
    """

    def __init__(self, blocks: tuple[Block, ...], references: ModelReferences, seed,
                 jobs: int = 1):
        self.blocks, self.references, self.seed, self.jobs = blocks, references, seed, jobs
        self.batched = all(block.batched for block in blocks)
        self.sbc_unit = SBC_BATCH_UNIT if self.batched else SBC_UNIT
        self.geweke_group = GEWEKE_BATCH_GROUP if self.batched else GEWEKE_GROUP

    def sweep(self, rng, states, batch: Batch, excursion: list | None = None) -> dict:
        """One sweep of the batch (`sweep`). With `excursion`, a chain's record (empty at its
        start): the first function whose output left the plausible range (`plausible`) is
        appended to it, and a failure in the sweep after that, or a value that is not finite,
        is a `DivergenceError` naming it.
        """
        def record(block: Block, new: dict[str, np.ndarray]) -> None:
            if not excursion:
                excursion.extend(self._left_plausible(block, new))

        try:
            return sweep(rng, states, batch, self.blocks, self.references.variables,
                         None if excursion is None else record)
        except UserFunctionError as error:
            if excursion is None or not (excursion or isinstance(error, DivergenceError)):
                raise
            raise DivergenceError(self.divergence(str(error), excursion)) from error

    @cached_property
    def plausible(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """What the model makes plausible, per element of each real or positive variable: the
        range of 2000 prior draws (else NUTS's, for an improper prior, if it ran; else nothing),
        widened by its own width on each side (for a positive variable, on the log scale).
        Only names the culprit of a divergence, never a verdict.
        """
        references = self.references
        if references.prior_problem is None:
            draws, _ = references.compiled.simulate_prior(2000, 0)
        elif "nuts" in vars(references):
            draws = {name: values.reshape(-1, *values.shape[2:])
                     for name, values in references.nuts.items()}
        else:
            return {}
        ranges = {}
        for name, variable in references.variables.items():
            if variable.discrete or variable.transform not in (None, "log"):
                continue
            values = np.asarray(draws[name], dtype=float).reshape(len(draws[name]), -1)
            scale = np.log if variable.transform == "log" else (lambda v: v)
            with np.errstate(all="ignore"):
                low, high = np.quantile(scale(values), [0.001, 0.999], axis=0)
            low, high = 2 * low - high, 2 * high - low
            ranges[name] = (np.exp(low), np.exp(high)) if variable.transform == "log" else (
                low, high)
        return ranges

    def _left_plausible(self, block: Block, new: dict[str, np.ndarray]) -> list[str]:
        """["<function>'s <variable> (<value>)"] if the block's output left `plausible` in any
        state of the batch, else [].
        """
        for name, values in new.items():
            if name not in self.plausible:
                continue
            low, high = self.plausible[name]
            values = np.asarray(values).reshape(len(values), -1)
            outside = ~((values >= low) & (values <= high))
            if outside.any():
                return [f"{block.label}'s {name} ({values[outside].flat[0]:.3g})"]
        return []

    def divergence(self, what: str, excursion: list) -> str:
        """The message of a `DivergenceError`: what failed, and the first function whose output
        left the plausible range before it (if one did).
        """
        first = (f"; the first value past what the model makes plausible was {excursion[0]}"
                 if excursion else "")
        return f"the sweep diverged: {what}{first}"

    @cached_property
    def posterior(self) -> dict[str, np.ndarray]:
        """CHAINS chains of the sweep on the data, started at the last NUTS draw of each NUTS
        chain: every free variable, (CHAINS, draws, *shape). Batched functions sweep the chains
        together, as one task; functions of one state one chain per task, in `jobs` processes.
        """
        nuts = self.references.nuts
        per_task = CHAINS if self.batched else 1
        tasks = [(stream, {name: values[k * per_task:(k + 1) * per_task, -1]
                           for name, values in nuts.items()})
                 for k, stream in enumerate(np.random.SeedSequence(self.seed).spawn(
                     CHAINS // per_task))]
        chains = in_order(_map_forked(self, _sweep_chains, tasks))
        return {name: np.concatenate([chain[name] for chain in chains]) for name in nuts}

    @cached_property
    def autocorrelation_time(self) -> float:
        """draws / ESS of the sweep on the data, the worst scalar (bulk or tail)."""
        table = _mixing(self.posterior, self.references.variables)
        total = CHAINS * self.references.settings.sweep_draws
        return float(total / table[["ess_bulk", "ess_tail"]].min().min())


def _sweep_chains(run: _SweepRun, stream: np.random.SeedSequence, starts: dict
                  ) -> dict[str, np.ndarray]:
    """C chains of the sweep on the model's data from `starts` (C, *shape), swept as one
    batch: `sweep_tune` sweeps dropped, the next `sweep_draws` kept, {name: (C, sweep_draws,
    *shape)}.
    """
    references, settings = run.references, run.references.settings
    chains = len(next(iter(starts.values())))
    batch, states = Batch.of(references.compiled, chains), starts
    rng = np.random.default_rng(stream)
    kept = {name: np.empty((chains, settings.sweep_draws, *v.shape))
            for name, v in references.variables.items()}
    excursion = []
    for step in range(settings.sweep_tune + settings.sweep_draws):
        states = run.sweep(rng, states, batch, excursion)
        if step >= settings.sweep_tune:
            for name, values in states.items():
                kept[name][:, step - settings.sweep_tune] = values
    return kept


# -- tasks in forked processes --------------------------------------------------------------------

def _map_forked(run: _SweepRun, function: Callable, arguments: list[tuple]
                ) -> Iterator[tuple[int, object]]:
    """(i, function(run, *arguments[i])) as each finishes, in `run.jobs` forked processes
    (`forked.forked_map`: they inherit `run` with the user's functions, which need not be
    picklable) once every function a worker needs is compiled.
    """
    if min(run.jobs, len(arguments)) > 1:
        _warm_up(run.references.compiled)
    return forked_map(lambda i: function(run, *arguments[i]), len(arguments), run.jobs)


def _warm_up(compiled: CompiledModel) -> None:
    """Compile every function a worker needs before forking, so no worker compiles."""
    compiled.term_owners, compiled._to_unconstrained, compiled._to_natural  # noqa: B018
    compiled._simulate_prior  # noqa: B018
    compiled._simulate_observed  # noqa: B018


# -- consistency: each function against its block's exact conditional -----------------------------

@dataclass(frozen=True)
class GenericConsistency(CheckTable):
    """A row per test (block, state, coordinate, test), p-values Holm-adjusted within each block
    at an equal share of alpha (`statistics.holm_adjust_per_group`).

    Attributes
    ----------
    table : pandas.DataFrame
        The tests, with `reference` (what the block was compared with at the state: "exact
        <family>", "grid", "enumeration" or "chains"; for chains, their acceptance rate and
        their certification's p-value, `_halves_agree`), `p_holm` and `agree`.
    alpha : float
        The family-wise false-alarm rate.
    unsupported : tuple of str
        Why each block the check cannot test cannot be tested (one that couples discrete
        elements with others).
    skipped : tuple of str
        "block at <origin> state k (why)" for each state at which the block's conditional
        could not be tabulated, or its reference chains were not certified: no reference, so
        the block is not judged there and the check is at best incomplete.
    """

    alpha: float
    unsupported: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()


class _Layout:
    """A block's values on PyMC's unconstrained scale, flattened in order: element j is
    `labels[j]`. A variable whose transform keeps its number of values contributes its elements
    ('beta[2]'); one whose transform changes it contributes its unconstrained values
    ('Sigma:u[3]', `Variable.unconstrained_names`), which form one component as a whole
    (`wholes`): no single one of them is an element of the natural value.
    """

    def __init__(self, names: tuple[str, ...], variables: Mapping[str, Variable]):
        self.names, self.variables = names, variables
        self.slices, start = {}, 0
        for name in names:
            self.slices[name] = slice(start, start + variables[name].unconstrained_size)
            start += variables[name].unconstrained_size
        self.size = start
        self.labels = [label for name in names for label in variables[name].unconstrained_names()]
        self.discrete = np.concatenate([np.full(variables[n].unconstrained_size,
                                                variables[n].discrete) for n in names])
        self.wholes = [np.arange(self.size)[self.slices[name]] for name in names
                       if variables[name].resized]

    def flat(self, values: dict[str, np.ndarray]) -> np.ndarray:
        """(K, size) from {name: (K, *unconstrained_shape)}."""
        return np.concatenate([np.reshape(values[name], (len(values[name]), -1))
                               for name in self.names], axis=1)

    def points(self, base: dict[str, np.ndarray], values: np.ndarray) -> dict[str, np.ndarray]:
        """Every variable at K points on the unconstrained scale (base: one point,
        (1, *unconstrained_shape)) with the block's values set from `values` (K, size).
        """
        size = len(values)
        points = {name: np.repeat(value, size, axis=0) for name, value in base.items()}
        for name in self.names:
            variable = self.variables[name]
            block = values[:, self.slices[name]].reshape(size, *variable.unconstrained_shape)
            points[name] = np.rint(block).astype(np.int64) if variable.discrete else block
        return points


def _natural(compiled: CompiledModel, layout: _Layout, base: dict, values: np.ndarray) -> dict:
    """The block's natural values at K points given on the unconstrained scale."""
    natural = compiled.to_natural(layout.points(base, values))
    return {name: natural[name] for name in layout.names}


def _log_terms(compiled: CompiledModel, layout: _Layout, base: dict, values: np.ndarray):
    """Terms of the joint log density (K, T) with the block at `values`, evaluated in chunks; a
    point at which the model cannot be evaluated (a discrete index out of range) gets -inf.
    """
    terms_count = compiled.term_owners.size
    rows = max(1, TERMS_PER_CALL // terms_count)
    out = np.empty((len(values), terms_count))
    for start in range(0, len(values), rows):
        chunk = values[start:start + rows]
        try:
            out[start:start + rows] = compiled.evaluate(layout.points(base, chunk))[0]
        except (IndexError, ValueError):
            for k in range(len(chunk)):
                try:
                    out[start + k] = compiled.evaluate(layout.points(base, chunk[k:k + 1]))[0]
                except (IndexError, ValueError):
                    out[start + k] = -np.inf
    return out


def _dependencies(compiled, layout: _Layout, base: dict) -> np.ndarray:
    """(size, T) booleans: the terms of the joint log density that change when one element of
    the block moves (by 1% of its magnitude on the unconstrained scale, or by one for a discrete
    element, towards the inside of its support), and for a scalar variable every term that has
    it among its inputs in the graph (`CompiledModel.term_inputs`: a change point or an
    indicator moves a term only when the variable crosses a step, which a small move need not).
    A vector's elements keep the move's answer alone: the graph says which terms read the
    vector, not which of its elements.
    """
    center = layout.flat(base)[0]
    step = np.where(layout.discrete, 1.0, 0.01 * np.maximum(1.0, np.abs(center)))
    values = np.vstack([center, center + np.diag(step), center - np.diag(step)])
    terms = _log_terms(compiled, layout, base, values)
    up, down = terms[1:layout.size + 1], terms[layout.size + 1:]
    use_down = ~np.isfinite(up.sum(1)) & np.isfinite(down.sum(1))  # stepped out of the support
    moved = np.where(use_down[:, None], down, up) != terms[0]
    owners = compiled.term_owners
    for name in layout.names:
        if layout.variables[name].shape == ():
            reads = [name in compiled.term_inputs[owner] for owner in owners]
            moved[layout.slices[name]] |= np.array(reads)
    return moved


def _components(dependencies: np.ndarray, wholes: Iterable[np.ndarray] = ()) -> list[np.ndarray]:
    """Groups of elements coupled through a shared term, as index arrays; the elements of each
    of `wholes` (a resized variable's unconstrained values, `_Layout.wholes`) in one group.
    """
    shared = dependencies.astype(np.int64) @ dependencies.T.astype(np.int64) > 0
    for whole in wholes:
        shared[np.ix_(whole, whole)] = True
    count, label = connected_components(shared, directed=False)
    return [np.flatnonzero(label == c) for c in range(count)]


def _summed(terms: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """terms @ columns with -inf kept as a very negative number, so 0 * -inf cannot make NaN."""
    return np.maximum(terms, -1e300) @ columns.astype(float)


def _element_log_densities(compiled, layout, base, elements, dependencies):
    """f(values (K, E)) -> (K, E): the log conditional density of each of E separable elements
    (up to a constant), all evaluated in one pass (each sees only its own terms).
    """
    columns = dependencies[elements].T  # (T, E)
    center = layout.flat(base)[0]

    def log_densities(values):
        full = np.repeat(center[None], len(values), axis=0)
        full[:, elements] = values
        return _summed(_log_terms(compiled, layout, base, full), columns)
    return log_densities


def _modes_and_scales(log_densities, start: np.ndarray, iterations: int = 200):
    """Per-element mode and Laplace scale 1/sqrt(-f'') of separable log densities, by Newton's
    method with finite differences and a step search (each element takes the best of a few
    fractions of its step, never a worse point), all elements at once. Where f is not concave
    an element steps uphill by its current scale, doubled each time.
    """
    u = start.astype(float).copy()
    scale = np.ones_like(u)
    fractions = np.array([1.0, 0.5, 0.25, 0.125, 1 / 16, 0.0])
    for _ in range(iterations):
        h = 1e-3 * scale
        below, here, above = log_densities(np.stack([u - h, u, u + h]))
        slope, curvature = (above - below) / (2 * h), (above - 2 * here + below) / h**2
        concave = np.isfinite(curvature) & (curvature < 0)
        scale = np.where(concave, 1 / np.sqrt(np.where(concave, -curvature, 1.0)), 2 * scale)
        step = np.where(concave, -slope / np.where(concave, curvature, -1.0),
                        np.sign(slope) * scale)
        step = np.nan_to_num(step)
        tried = log_densities(u + fractions[:, None] * step)
        best = fractions[np.argmax(np.nan_to_num(tried, nan=-np.inf), axis=0)]
        u = u + best * step
        if np.all(np.abs(best * step) <= 1e-6 * scale) and np.all(concave):
            break
    return u, scale


def _normal_scores(grid: consistency.GridConditional, draws: np.ndarray) -> np.ndarray:
    """Phi^-1(F(draw)) under the tabulated conditional: standard normal for draws of it."""
    return st.norm.ppf(np.clip(grid.cdf_at(draws), 1e-12, 1 - 1e-12))


def _grid_conditionals(log_densities, start: np.ndarray) -> list[consistency.GridConditional]:
    """Each separable element's conditional on the unconstrained scale, normalized on a grid of
    consistency.GRID_POINTS points, GRID_HALF_WIDTH Laplace scales either side of the mode; while
    a grid's ends still carry density (more than e^-30 of its peak) it is centred on its peak and
    widened.

    Raises
    ------
    PriorError
        If some conditional does not fall off within 16 times that width: it may be improper.
    """
    mode, scale = _modes_and_scales(log_densities, start)
    half_width = np.full(mode.size, consistency.GRID_HALF_WIDTH)
    z = np.linspace(-1.0, 1.0, consistency.GRID_POINTS)
    for _ in range(5):
        u = mode[None] + z[:, None] * (half_width * scale)[None]
        log_density = np.nan_to_num(log_densities(u), nan=-np.inf)
        peak = np.argmax(log_density, axis=0)
        log_density = log_density - log_density[peak, np.arange(mode.size)]
        spills = np.maximum(log_density[0], log_density[-1]) > -30
        if not spills.any():
            break
        mode = np.where(spills, u[peak, np.arange(mode.size)], mode)
        half_width = np.where(spills, 2 * half_width, half_width)
    else:
        raise PriorError("a conditional density does not fall off within "
                         f"{16 * consistency.GRID_HALF_WIDTH:g} Laplace scales of its mode: "
                         "is the posterior proper?")
    _require_resolved(log_density)
    conditionals = []
    for j in range(mode.size):
        density = np.exp(log_density[:, j])
        density /= integrate.trapezoid(density, u[:, j])
        cdf = integrate.cumulative_trapezoid(density, u[:, j], initial=0.0)
        conditionals.append(consistency.GridConditional(u[:, j], density, cdf / cdf[-1],
                                                        positive=False))
    return conditionals


# the most a tabulated log density may change between neighbouring grid points where it holds
# its mass: a smooth one changes by at most about 0.2 (28 Laplace scales over 2000 steps), a
# step of the density (a change point) by its jump, which the trapezoidal CDF smears
MAX_GRID_JUMP = 1.0


def _require_resolved(log_density: np.ndarray) -> None:
    """Refuse grids (points, elements) on which a log density, above e^-20 of its peak, jumps
    by more than MAX_GRID_JUMP from one point to the next: no certified reference there.

    Raises
    ------
    PriorError
        Naming the jump.
    """
    with np.errstate(invalid="ignore"):
        steps = np.abs(np.diff(log_density, axis=0))
    held = (log_density[1:] > -20) | (log_density[:-1] > -20)
    jump = float(np.max(np.where(held, np.nan_to_num(steps, nan=np.inf, posinf=np.inf), 0.0)))
    if jump > MAX_GRID_JUMP:
        raise PriorError(f"its log density jumps by {jump:.3g} between neighbouring points of "
                         "the grid (a step, as at a change point): the grid cannot resolve it")


@dataclass(frozen=True)
class _DiscreteConditional:
    support: np.ndarray
    pmf: np.ndarray

    def sample(self, uniforms: np.ndarray) -> np.ndarray:
        index = np.searchsorted(np.cumsum(self.pmf), uniforms * np.sum(self.pmf), side="right")
        return self.support[np.minimum(index, self.support.size - 1)]


def _discrete_conditional(log_density, start: int) -> _DiscreteConditional:
    """A discrete element's conditional by enumeration of `log_density(values)` (the whole joint
    log density with only this element moved: a discrete variable can change a term at some
    steps and not at others, as a change point does, so no term may be left out), over a
    window about its current value that widens until the probability at both ends is negligible
    or zero.
    """
    width = 16
    while True:
        support = start + np.arange(-width, width + 1)
        log_pmf = log_density(support.astype(float))
        log_pmf = log_pmf - np.max(log_pmf)
        if not np.maximum(log_pmf[0], log_pmf[-1]) > -35 or width > 2**16:
            break
        width *= 4
    inside = np.isfinite(log_pmf)
    pmf = np.exp(log_pmf[inside])
    return _DiscreteConditional(support[inside], pmf / pmf.sum())


def _discrete_tests(draws: np.ndarray, conditional: _DiscreteConditional) -> list[tuple]:
    """Pearson's chi-square over the support (neighbouring values pooled until each cell
    expects at least 5) and z-scores of the mean and variance.
    """
    support, pmf, n = conditional.support, conditional.pmf, draws.size
    edges, expected, running = [], [], 0.0
    for k, p in enumerate(pmf):  # pool left to right; the last cell takes the remainder
        running += p * n
        if running >= 5:
            edges.append(k)
            expected.append(running)
            running = 0.0
    if running and expected:
        expected[-1] += running
        edges[-1] = support.size - 1
    index = np.searchsorted(support, draws)
    cell = np.searchsorted(np.asarray(edges), index)
    observed = np.bincount(np.minimum(cell, len(edges) - 1), minlength=len(edges))
    if len(edges) >= 2:
        chi2, chi2_p = st.chisquare(observed, np.asarray(expected) * n / np.sum(expected))
    else:
        chi2, chi2_p = 0.0, 1.0
    mean = np.sum(support * pmf)
    variance = np.sum((support - mean) ** 2 * pmf)
    fourth = np.sum((support - mean) ** 4 * pmf)
    rows = [("chi-square", float(chi2), float(chi2_p))]
    if variance > 0:
        mean_z = (draws.mean() - mean) / np.sqrt(variance / n)
        var_z = (draws.var() - variance) / np.sqrt(max(fourth - variance**2, 1e-300) / n)
        rows += [("mean", mean_z, 2 * st.norm.sf(abs(mean_z))),
                 ("variance", var_z, 2 * st.norm.sf(abs(var_z)))]
    return rows


@dataclass(frozen=True)
class _JointReference:
    """Draws of a coupled component's conditional, the affine map that whitens it, the chains'
    acceptance rate, and the Holm-adjusted p-value of their certification (`_halves_agree`).
    """

    draws: np.ndarray
    center: np.ndarray
    cholesky: np.ndarray
    acceptance: float
    certification: float
    moves: float

    @property
    def certified(self) -> bool:
        """Whether its chains accepted at least `MIN_MOVES` independence proposals each (on
        average) in their last round, and their two halves agree there.
        """
        return self.moves >= MIN_MOVES and self.certification > CERTIFY_ALPHA


class UncertifiedReference(Exception):
    """Reference chains that did not pass their certification: the block is not judged there."""


def _joint_reference(log_density, start: np.ndarray, size: int, rng) -> _JointReference:
    """`_joint_references` of one component: `log_density` maps (K, d) to (K,)."""
    [reference] = _joint_references(lambda values: log_density(values[:, 0])[:, None],
                                    start[None], size, rng)
    return reference


def _joint_references(log_density, starts: np.ndarray, size: int, rng) -> list[_JointReference]:
    """`size` draws of the conditional of each of C coupled components of d elements
    (unconstrained scale), all C moved together: `log_density` maps (K, C, d) to (K, C), each
    component's log conditional density, which must not depend on the other components (they
    share no term of the joint density), so one evaluation of the model serves all C.

    Each draw comes from its own Markov chain, moved by alternating independence
    Metropolis-Hastings steps (a multivariate t, 5 degrees of freedom, about the component's
    Laplace approximation, as proposal) and random-walk steps. Every other chain starts from that
    t, the rest from it spread `OVERDISPERSION` times wider about the mode. The chains run in
    `CHAIN_ROUNDS` of steps of each kind, until every component's proposals are accepted at
    least 25% of the time and it is `certified`: each chain took `MIN_MOVES` independence
    proposals on average in the round (random-walk steps may all be accepted where they are
    too small to leave a neck; a chain that never jumps stays where it started), and its two
    sets of chains agree (`_halves_agree`; had they not forgotten their starts, the two would
    differ). The chains' law approaches the conditional geometrically in
    the number of steps; the acceptance rate, the moves and the certification's p-value are
    reported, and the caller refuses a component that was never certified.
    """
    count, d = starts.shape
    modes, negative_hessians = _joint_modes(log_density, starts)  # the Laplace approximations
    choleskys = np.empty((count, d, d))
    for c in range(count):
        values, vectors = np.linalg.eigh(negative_hessians[c])
        values = np.maximum(values, values.max() * 1e-10)  # a flat direction stays finite
        choleskys[c] = np.linalg.cholesky((vectors / values) @ vectors.T)
    inverses = np.linalg.inv(choleskys)
    nu = 5.0

    def proposal():
        z = rng.standard_normal((size, count, d))
        scale = np.sqrt(rng.chisquare(nu, (size, count, 1)) / nu)
        return modes + np.einsum("cij,scj->sci", choleskys, z) / scale

    def log_q(u):
        z = np.einsum("cij,scj->sci", inverses, u - modes)
        return -0.5 * (nu + d) * np.log1p((z**2).sum(-1) / nu)

    u = proposal()
    wide = np.arange(size) % 2 == 1
    u[wide] = modes + OVERDISPERSION * (u[wide] - modes)
    current, current_q = log_density(u), log_q(u)
    current[np.isnan(current)] = -np.inf  # a start without a density: its first move is taken
    for steps in CHAIN_ROUNDS:
        moves = np.zeros(count)  # accepted independence proposals per chain, in this round
        for _ in range(steps):
            candidate = proposal()
            candidate_lp, candidate_q = log_density(candidate), log_q(candidate)
            accept = np.log(rng.uniform(size=(size, count))) < (candidate_lp - current
                                                                 - candidate_q + current_q)
            u[accept], current[accept] = candidate[accept], candidate_lp[accept]
            current_q[accept] = candidate_q[accept]
            moves += accept.mean(axis=0)
            walk = u + 2.38 / np.sqrt(d) * np.einsum(
                "cij,scj->sci", choleskys, rng.standard_normal((size, count, d)))
            walk_lp, walk_q = log_density(walk), log_q(walk)
            accept = np.log(rng.uniform(size=(size, count))) < walk_lp - current
            u[accept], current[accept] = walk[accept], walk_lp[accept]
            current_q[accept] = walk_q[accept]
        accepted = moves / steps
        certification = _halves_agree(np.einsum("cij,scj->sci", inverses, u - modes), wide)
        references = [_JointReference(u[:, c].copy(), modes[c], choleskys[c], float(accepted[c]),
                                      float(certification[c]), float(moves[c]))
                      for c in range(count)]
        if accepted.min() >= 0.25 and all(reference.certified for reference in references):
            break
    return references


def _halves_agree(z: np.ndarray, wide: np.ndarray) -> np.ndarray:
    """For each of C components, the smallest Holm-adjusted p-value of two-sample
    Kolmogorov-Smirnov tests between the chains started wide and the others: of each whitened
    coordinate, and of |z|^2 (z (size, C, d)). Chains that have forgotten their starts are two
    samples of one law.
    """
    with np.errstate(invalid="ignore"):
        features = np.concatenate([z, (z**2).sum(-1, keepdims=True)], axis=-1)  # (size, C, d+1)
    finite = np.isfinite(features).all(axis=(1, 2))
    if finite.sum() < 0.9 * len(z) or (finite & wide).sum() < 2 or (finite & ~wide).sum() < 2:
        return np.zeros(z.shape[1])  # chains with no density are not a reference
    p = st.ks_2samp(features[finite & wide], features[finite & ~wide], axis=0).pvalue  # (C, d+1)
    return np.array([holm_adjust(row).min() for row in np.atleast_2d(p)])


def _by_size(components: list[np.ndarray]) -> list[list[np.ndarray]]:
    """The components grouped by their number of elements, in order of first appearance."""
    groups: dict[int, list[np.ndarray]] = {}
    for component in components:
        groups.setdefault(component.size, []).append(component)
    return list(groups.values())


def _joint_mode(log_density, start: np.ndarray):
    """`_joint_modes` of one component: `log_density` maps (K, d) to (K,)."""
    modes, negative_hessians = _joint_modes(lambda values: log_density(values[:, 0])[:, None],
                                            start[None])
    return modes[0], negative_hessians[0]


def _joint_modes(log_density, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mode of each of C independent components and the negative finite-difference Hessian
    there: (C, d) and (C, d, d). BFGS maximizes the sum of the components' log densities; as the
    components share no term, a central difference along coordinate k of every component at
    once gives the whole gradient in one evaluation of 2d points.
    """
    count, d = starts.shape
    steps = 1e-4 * np.maximum(1.0, np.abs(starts))

    def negative_total(v):
        return -log_density(v.reshape(1, count, d))[0].sum()

    def negative_gradient(v):
        shifts = steps[None] * np.eye(d)[:, None, :]  # (d, C, d): coordinate k of each component
        u = v.reshape(count, d)
        values = log_density(np.concatenate([u[None] + shifts, u[None] - shifts]))  # (2d, C)
        return -((values[:d] - values[d:]).T / (2 * steps)).reshape(-1)

    result = optimize.minimize(negative_total, starts.reshape(-1), jac=negative_gradient,
                               method="BFGS", options={"gtol": 1e-8, "maxiter": 2000})
    modes = result.x.reshape(count, d)
    scales = np.sqrt(np.clip(np.diag(result.hess_inv), 1e-300, None)).reshape(count, d)
    return modes, -_hessians(log_density, modes, 1e-2 * scales)


def _hessians(log_density, u: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Central-difference Hessians (C, d, d) of C independent components at u (C, d), steps
    h (C, d); every stencil point moves all components alike, so one batched evaluation serves.
    """
    count, d = u.shape
    shift = [np.zeros((count, d)) for _ in range(d)]
    for k in range(d):
        shift[k][:, k] = h[:, k]
    pairs = [(i, j) for i in range(d) for j in range(i + 1, d)]
    points = [u, *(u + shift[k] for k in range(d)), *(u - shift[k] for k in range(d))]
    for si, sj in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
        points += [u + si * shift[i] + sj * shift[j] for i, j in pairs]
    values = log_density(np.stack(points))  # (points, C)
    center, up, down = values[0], values[1:d + 1], values[d + 1:2 * d + 1]
    corners = values[2 * d + 1:].reshape(4, len(pairs), count)
    hessian = np.zeros((count, d, d))
    for k in range(d):
        hessian[:, k, k] = (up[k] - 2 * center + down[k]) / h[:, k] ** 2
    for p, (i, j) in enumerate(pairs):
        hessian[:, i, j] = hessian[:, j, i] = (corners[0, p] - corners[1, p] - corners[2, p]
                                               + corners[3, p]) / (4 * h[:, i] * h[:, j])
    return hessian


def consistency_check(run: _SweepRun, seed, alpha: float = ALPHA) -> GenericConsistency:
    """Every block at every consistency state, in two stages (`result.in_stages`: a doubtful
    first stage is decided by a second with four times the draws at the same states); the
    module docstring and docs/validation.md say how a block's structure is found and which test
    each part gets.
    """
    from threadpoolctl import threadpool_limits

    second_seed = integer_seeds(seed, 1)[0]

    def run_stage(stage: int, factor: int) -> GenericConsistency:
        result = _consistency_tests(run, second_seed if stage else seed, alpha / 2, factor)
        return replace(result, table=result.table.assign(stage=stage))

    # one BLAS thread: a batched evaluation makes one small solve per point (a 3 x 3 factor
    # against 40 columns), microseconds on one thread, 10 ms when BLAS threads contend for cores
    with threadpool_limits(1):
        stages = in_stages(run_stage, alpha)
    return replace(stages[-1], table=pd.concat([stage.table for stage in stages],
                                               ignore_index=True))


def _consistency_tests(run: _SweepRun, seed, alpha: float, factor: int = 1) -> GenericConsistency:
    """One stage of the consistency check: every block at every state, `factor` times the
    settings' draws, each block's exact parts also pooled over the states (`_pooled_rows`).
    """
    references = run.references
    compiled = references.compiled
    rng = np.random.default_rng(seed)
    states = [(origin, x, compiled.to_unconstrained({n: np.asarray(v)[None] for n, v in x.items()}))
              for origin, x in references.states]
    rows, skipped, unsupported = [], [], ()
    for block in run.blocks:
        layout = _Layout(block.names, references.variables)
        dependencies = np.logical_or.reduce([_dependencies(compiled, layout, u)
                                             for _, _, u in states])
        components = _components(dependencies, layout.wholes)
        singles = np.array([c[0] for c in components if c.size == 1], dtype=int)
        coupled = [c for c in components if c.size > 1]
        if any(layout.discrete[c].any() for c in coupled):
            unsupported += (f"{block.key} couples discrete elements with others; draw them in "
                            "blocks of their own",)
            continue
        exact_parts = []
        for point, (origin, x, u) in enumerate(states):
            try:
                tested = _block_at_state(run, block, layout, dependencies, singles, coupled,
                                         x, u, rng, point, origin, seed, factor)
            except (PriorError, UncertifiedReference) as error:
                # a conditional the grid cannot resolve (a prior draw far in a tail, a density
                # with steps: a change point), or chains that did not converge (a funnel), is no
                # reference: the block is not judged there
                skipped.append(f"{block.key} at {origin} state {point} ({error})")
                continue
            rows += tested.rows
            if tested.exact is not None:
                exact_parts.append(tested.exact)
        if len(exact_parts) > 1:
            rows += _pooled_rows(block.key, exact_parts)
        rows.append(_repeatability_row(run, block, states, seed))
    table = pd.DataFrame(rows) if rows else _empty_table()
    # each block its share of alpha: a small joint block's few tests beside a latent vector's
    # thousands keep their power
    table["p_holm"] = holm_adjust_per_group(table.p.to_numpy(dtype=float), table.block.to_numpy())
    table["agree"] = table.p_holm > alpha
    return GenericConsistency(table=table, alpha=alpha, unsupported=unsupported,
                              skipped=tuple(skipped))


def _repeatability_row(run: _SweepRun, block: Block, states: list, seed) -> dict:
    """Whether the block's function depends on (rng, state, data) alone: called at the first
    state with a generator, then again with a generator in the same state after three sweeps
    of the whole sweep from the last state (where a value kept between calls, or a global
    random generator, would change), it must return the same. A row of the consistency table,
    p = 0 if it does not (failing the check, the function named), else 1.
    """
    compiled, variables = run.references.compiled, run.references.variables
    batch = Batch.of(compiled, 1)
    (origin, x, _), (_, elsewhere, _) = states[0], states[-1]
    at = {name: np.asarray(value)[None] for name, value in x.items()}

    def call() -> np.ndarray:
        returned = call_batch(block, np.random.default_rng([int(seed), 1]), at, batch, variables)
        return np.concatenate([np.ravel(returned[name]) for name in block.names]).astype(float)
    first = call()
    # the block's own stream: sweeps that repeated another block's would leave a kept value
    # as that block's check left it
    other = {name: np.asarray(value)[None] for name, value in elsewhere.items()}
    rng = np.random.default_rng([int(seed), 2, zlib.crc32(" ".join(block.names).encode())])
    try:
        for _ in range(3):
            other = run.sweep(rng, other, batch)
    except UserFunctionError:
        pass  # a sweep that fails there is the other checks' evidence; the calls ran
    difference = float(np.max(np.abs(call() - first)))
    # rounding may differ between two runs of one BLAS call; a kept value or another generator
    # changes the draw itself
    alike = difference <= 1e-9 * (1.0 + float(np.max(np.abs(first))))
    return {"block": block.key, "point": 0, "origin": origin, "moved": np.nan,
            "coordinate": f"{block.label} called twice alike", "test": "repeatable",
            "statistic": difference, "p": 1.0 if alike else 0.0, "reference": "itself",
            "draws": 2}


class _ExactParts(NamedTuple):
    """What a block's test at one state adds to the tests pooled over states, where its
    reference was exact: the separable elements' normal scores Phi^-1(F(x)) of the user's draws
    (draws, elements), and each coupled component's whitened user draws and exact reference
    draws (one (draws, d) array per component, each side).
    """

    scores: np.ndarray
    mine: list[np.ndarray]
    theirs: list[np.ndarray]


class _TestedBlock(NamedTuple):
    """A block's rows at one state, and its `_ExactParts` if its reference there was exact."""

    rows: list[dict]
    exact: _ExactParts | None


def _pooled_rows(block_key: str, parts: list[_ExactParts]) -> list[dict]:
    """Tests of a block over every state at which its reference was exact, where an error the
    states share adds up (a covariance 10% too large moves every |z|^2 up by 10% of its mean):

        pooled mean      the n normal scores s of the separable elements: sqrt(n) mean(s) ~ N(0, 1)
        pooled spread    ... (mean(s^2) - 1) / sqrt(2/n) ~ N(0, 1)
        pooled |z|^2     the coupled components' |z|^2, the user's against the exact draws' (Welch)
        pooled z[j]      their whitened coordinate j, of every component that has one (Welch)

    Scores of a correct function are exactly standard normal and independent (the elements are
    conditionally independent, the calls are), so the first two are exact one-sample tests; the
    others compare samples that mix the states and components in the same proportions.
    """
    common = {"block": block_key, "point": -1, "origin": "pooled", "moved": np.nan,
              "reference": "exact (pooled)"}

    def row(coordinate, test, z, draws):
        return common | {"coordinate": coordinate, "test": test, "statistic": float(z),
                         "p": float(2 * st.norm.sf(abs(z))), "draws": int(draws)}
    rows = []
    scores = np.concatenate([part.scores.ravel() for part in parts])
    if scores.size:
        elements = f"{parts[0].scores.shape[1]} separable elements"
        n = scores.size
        rows += [row(elements, "pooled mean", scores.mean() * np.sqrt(n), n),
                 row(elements, "pooled spread", (np.mean(scores**2) - 1) / np.sqrt(2 / n), n)]
    mine = [z for part in parts for z in part.mine]
    theirs = [z for part in parts for z in part.theirs]
    if mine:
        components = f"{len(parts[0].mine)} coupled components"
        draws = sum(len(z) for z in mine)
        rows.append(row(components, "pooled |z|^2", welch_z(
            np.concatenate([(z**2).sum(1) for z in mine]),
            np.concatenate([(z**2).sum(1) for z in theirs])), draws))
        for j in range(max(z.shape[1] for z in mine)):
            mine_j = np.concatenate([z[:, j] for z in mine if z.shape[1] > j])
            theirs_j = np.concatenate([z[:, j] for z in theirs if z.shape[1] > j])
            rows.append(row(components, f"pooled z[{j}]", welch_z(mine_j, theirs_j),
                            mine_j.size))
    return rows


def _empty_table() -> pd.DataFrame:
    return pd.DataFrame(columns=["block", "point", "origin", "coordinate", "test", "statistic",
                                 "p", "moved", "reference", "draws", "p_holm", "agree"])


@dataclass(frozen=True)
class _BlockReference:
    """A block's exact conditional at one state, and the starts drawn from it: `starts`
    (size, elements) on the flat unconstrained scale; a tabulated (or exact, `_ExactScalar`)
    conditional per continuous separable element (`grids`, for the elements `continuous`), an
    enumerated one per discrete element (`pmfs`, for `discrete`), and the reference draws of each
    coupled component (`joints`: (elements, `_JointReference`)). `family` names the recognized
    conjugate family when every part is exact (`_exact_reference`), else None.
    """

    starts: np.ndarray
    continuous: np.ndarray
    grids: list
    discrete: np.ndarray
    pmfs: list
    joints: list
    family: str | None = None

    def kind(self, numerical: str) -> str:
        """The table's name of a part's reference: "exact <family>", else `numerical`."""
        return numerical if self.family is None else f"exact {self.family}"


class _ScalarFamily(NamedTuple):
    """A scalar conjugate family on PyMC's unconstrained scale u: the transform that maps its
    support to R, its parameters' names, the CDF of u, and u's cumulants k1, k2 and k4 (for
    log x and logit x those of log-gamma variables: polygamma functions).
    """

    transform: str | None
    parameters: tuple[str, ...]
    cdf: Callable
    cumulants: Callable


_SCALAR_FAMILIES = {
    "normal": _ScalarFamily(None, ("mu", "sigma"), lambda u, m, s: st.norm.cdf(u, m, s),
                            lambda m, s: (m, s**2, 0.0)),
    "gamma": _ScalarFamily("log", ("alpha", "beta"),
                           lambda u, a, b: st.gamma.cdf(np.exp(u), a, scale=1 / b),
                           lambda a, b: (special.digamma(a) - np.log(b), special.polygamma(1, a),
                                         special.polygamma(3, a))),
    "inversegamma": _ScalarFamily("log", ("alpha", "beta"),
                                  lambda u, a, b: st.invgamma.cdf(np.exp(u), a, scale=b),
                                  lambda a, b: (np.log(b) - special.digamma(a),
                                                special.polygamma(1, a), special.polygamma(3, a))),
    "beta": _ScalarFamily("logodds", ("alpha", "beta"),
                          lambda u, a, b: st.beta.cdf(special.expit(u), a, b),
                          lambda a, b: (special.digamma(a) - special.digamma(b),
                                        special.polygamma(1, a) + special.polygamma(1, b),
                                        special.polygamma(3, a) + special.polygamma(3, b))),
}


@dataclass(frozen=True)
class _ExactScalar:
    """A separable element's exact conditional on the unconstrained scale, read by
    `consistency.compare_draws` and `_normal_scores` as they read a `GridConditional`.
    """

    family: str
    parameters: tuple[float, ...]

    def cdf_at(self, u: np.ndarray) -> np.ndarray:
        """F(u), the exact CDF."""
        return _SCALAR_FAMILIES[self.family].cdf(u, *self.parameters)

    def moments(self) -> tuple[float, float, float]:
        """Mean, variance and fourth central moment (k4 + 3 k2^2) of u."""
        k1, k2, k4 = _SCALAR_FAMILIES[self.family].cumulants(*self.parameters)
        return float(k1), float(k2), float(k4 + 3 * k2**2)


def _exact_reference(conditional: ConjugateConditional, compiled, layout, singles, coupled, x,
                     size, rng) -> _BlockReference | None:
    """The block's `_BlockReference` at the natural state x from its conjugate conditional:
    3 x size exact draws on the flat unconstrained scale, the first size the starts; each
    separable element gets its family's exact CDF and moments, each coupled component the next
    size draws as its reference sample (after the starts, as `_joint_references` lays them out)
    and, for the fixed whitening, the mean and Cholesky factor of the covariance of the last
    size, drawn apart so that the map does not depend on the sample it whitens. None where the
    conditional fails its verification at x (`ConjugacyError`) or a separable element's family
    has no CDF here: the numerical references then serve.
    """
    from hiercheck.errors import ConjugacyError

    family = _SCALAR_FAMILIES.get(conditional.family)
    if singles.size and (family is None or any(
            compiled.variables[name].transform != family.transform for name in layout.names)):
        return None
    try:
        parameters = conditional.parameters(x) if singles.size else {}
        draws = conditional.draws(rng, x, size=3 * size)
    except ConjugacyError:
        return None
    draws = dict(zip(conditional.names, draws if isinstance(draws, tuple) else (draws,)))
    flat = layout.flat(compiled.to_unconstrained(
        {name: np.repeat(np.asarray(value)[None], 3 * size, axis=0)
         for name, value in x.items()} | draws))
    # a scalar family's block is one variable, so flat element j is the variable's element j
    scalars = [_ExactScalar(conditional.family, tuple(
        float(np.reshape(parameters[p], -1)[j]) for p in family.parameters)) for j in singles]
    for j, scalar in zip(singles, scalars):
        beyond = _mass_beyond_floats(family, scalar.parameters)
        if beyond > UNREPRESENTABLE:
            shown = ", ".join(f"{p}={v:.3g}" for p, v in zip(family.parameters, scalar.parameters))
            raise UncertifiedReference(
                f"{layout.labels[j]}'s conditional, {conditional.family}({shown}), puts "
                f"{beyond:.2g} of its mass where floating point has no number but the end of "
                "its support (any draw of it, the user's too, rounds to 0 or 1 there)")
    joints = []
    for component in coupled:
        whitening = flat[2 * size:, component]
        joints.append((component, _JointReference(
            flat[:2 * size, component], whitening.mean(axis=0),
            np.linalg.cholesky(np.cov(whitening, rowvar=False)), 1.0, 1.0, np.inf)))
    return _BlockReference(flat[:size], singles, scalars, np.array([], dtype=int), [], joints,
                           conditional.family)


def _mass_beyond_floats(family: _ScalarFamily, parameters: tuple[float, ...]) -> float:
    """The probability the family gives to values that round to an end of its support: below
    the smallest normal float (and, for a beta, above 1 - 2^-53, where x rounds to 1).
    """
    if family.transform is None:
        return 0.0
    low = np.log(np.finfo(float).tiny)
    high = (np.log(np.finfo(float).max) if family.transform == "log"
            else np.log1p(-2.0**-53) - np.log(2.0**-53))  # logit(1 - 2^-53)
    return float(family.cdf(low, *parameters) + 1 - family.cdf(high, *parameters))


def _block_reference(compiled, layout, dependencies, singles, coupled, u, size, rng
                     ) -> _BlockReference:
    """The block's `_BlockReference` at the state u, from the model's joint log density."""
    center = layout.flat(u)[0]
    starts = np.repeat(center[None], size, axis=0)
    continuous = singles[~layout.discrete[singles]]
    discrete = singles[layout.discrete[singles]]
    grids, pmfs, joints = [], [], []
    if continuous.size:
        f = _element_log_densities(compiled, layout, u, continuous, dependencies)
        grids = _grid_conditionals(f, center[continuous])
        starts[:, continuous] = np.column_stack([g.sample(rng, size) for g in grids])
    for j in discrete:
        def log_density(values, j=j):
            full = np.repeat(center[None], len(values), axis=0)
            full[:, j] = values
            return _log_terms(compiled, layout, u, full).sum(axis=1)
        pmfs.append(_discrete_conditional(log_density, int(round(center[j]))))
        starts[:, j] = pmfs[-1].sample(rng.uniform(size=size))
    for group in _by_size(coupled):  # components of one size move together, one evaluation
        indices = np.stack(group)      # (C, d): each component's elements
        columns = np.stack([dependencies[component].any(0) for component in group], axis=1)

        def log_density(values, indices=indices, columns=columns):
            full = np.repeat(center[None], len(values), axis=0)
            full[:, indices] = values
            return _summed(_log_terms(compiled, layout, u, full), columns)
        references_of_group = _joint_references(log_density, center[indices], 2 * size, rng)
        for component, reference in zip(group, references_of_group):
            if not reference.certified:
                raise UncertifiedReference(
                    f"the reference chains of {_component_name(layout, component)} were not "
                    f"certified in {sum(CHAIN_ROUNDS)} steps of each kind: in the last "
                    f"{CHAIN_ROUNDS[-1]}, each took {reference.moves:.3g} independence "
                    f"proposals on average (at least {MIN_MOVES} needed), and those started "
                    f"{OVERDISPERSION:g} times wider differ from the others with p "
                    f"{reference.certification:.2g}")
            starts[:, component] = reference.draws[:size]
            joints.append((component, reference))
    return _BlockReference(starts, continuous, grids, discrete, pmfs, joints)


# What the block references are computed by: a change of these modules is a new cache key.
_REFERENCE_SOURCE = source_digest(__name__, "hiercheck.validation.consistency",
                                  "hiercheck.validation.conjugate")


def _cached_block_reference(references: ModelReferences, block: Block, point: int, x: dict,
                            compute: Callable[[np.random.Generator], _BlockReference], size: int,
                            seed, exact: bool) -> _BlockReference:
    """compute(rng) kept in the references' cache, keyed by the model, the block's variables,
    the state, the number of draws, the check's seed, whether an exact reference is tried
    (`exact`) and this code: a warm run spends its time on the user's functions alone. The
    stream rng is the block's and the state's own, so that the user's functions see the same
    random numbers whether the reference was read or computed.
    """
    key = zlib.crc32(" ".join(block.names).encode())
    rng = np.random.default_rng([int(seed), point, key])
    parts = {"model": references.fingerprint, "block": list(block.names), "point": point,
             "state": {name: np.asarray(value) for name, value in x.items()}, "size": size,
             "seed": int(seed), "exact": exact, "source": _REFERENCE_SOURCE}
    return references.cache.get("generic-consistency", parts, lambda: compute(rng), PICKLE)


def _block_at_state(run, block, layout, dependencies, singles, coupled, x, u, rng, point,
                    origin, seed, factor: int = 1) -> _TestedBlock:
    """Start each call from a draw of the block's conditional at this state (cached,
    `_cached_block_reference`: exact draws where the block's conditional is a recognized
    conjugate one, `_exact_reference`, else the numerical references), call the user's function
    on every start (`call_batch`: once for a batched function) with the stream rng, `factor`
    times the settings' draws, and test the returns against that conditional.
    """
    references = run.references
    compiled, settings = references.compiled, references.settings
    size = factor * (settings.joint_draws if coupled else settings.consistency_draws)
    conjugate = references.conjugate.get(frozenset(block.names))

    def compute(stream):
        exact = None if conjugate is None else _exact_reference(
            conjugate, compiled, layout, singles, coupled, x, size, stream)
        return exact if exact is not None else _block_reference(
            compiled, layout, dependencies, singles, coupled, u, size, stream)
    reference = _cached_block_reference(references, block, point, x, compute, size, seed,
                                        conjugate is not None)
    natural_starts = _natural(compiled, layout, u, reference.starts)
    states = {name: np.repeat(np.asarray(value)[None], size, axis=0) for name, value in x.items()}
    states |= {name: natural_starts[name] for name in block.names}
    returned = call_batch(block, rng, states, Batch.of(compiled, size), references.variables)
    outputs = layout.flat(_to_unconstrained_checked(compiled, block, returned, x))
    moved = float(np.mean(np.any(layout.flat(returned) != layout.flat(
        {n: natural_starts[n] for n in block.names}), axis=1)))

    rows = []
    common = {"block": block.key, "point": point, "origin": origin, "moved": moved, "draws": size}
    for j, grid in zip(reference.continuous, reference.grids):
        result = consistency.compare_draws(outputs[:, j], grid)
        rows += [common | {"coordinate": layout.labels[j], "test": test, "statistic": s, "p": p,
                           "reference": reference.kind("grid")}
                 for test, s, p in (
                     ("ks", np.nan, result["ks_p"]),
                     ("mean", result["mean_z"], 2 * st.norm.sf(abs(result["mean_z"]))),
                     ("variance", result["var_z"], 2 * st.norm.sf(abs(result["var_z"]))))]
    if len(reference.grids) >= 2:  # the separable elements must also be drawn independently
        scores = np.column_stack([_normal_scores(g, outputs[:, j])
                                  for j, g in zip(reference.continuous, reference.grids)])
        ks = st.kstest(scores.sum(1) / np.sqrt(len(reference.grids)), "norm")
        rows.append(common | {"coordinate": f"{len(reference.grids)} separable elements",
                              "test": "independence", "statistic": ks.statistic, "p": ks.pvalue,
                              "reference": reference.kind("grid")})
    for j, pmf in zip(reference.discrete, reference.pmfs):
        rows += [common | {"coordinate": layout.labels[j], "test": test, "statistic": s, "p": p,
                           "reference": "enumeration"}
                 for test, s, p in _discrete_tests(outputs[:, j], pmf)]
    whitened = ([], [])
    for component, joint in reference.joints:
        mine = whiten(outputs[:, component], joint.center, joint.cholesky)
        theirs = whiten(joint.draws[size:], joint.center, joint.cholesky)
        name = _component_name(layout, component)
        rows += [common | {"coordinate": name, "test": test, "statistic": s, "p": p,
                           "reference": reference.kind("chains"),
                           "reference_acceptance": joint.acceptance,
                           "reference_certification": joint.certification}
                 for test, s, p in two_sample_tests(mine, theirs)]
        whitened[0].append(mine)
        whitened[1].append(theirs)
    if reference.family is None:
        return _TestedBlock(rows, None)
    scores = np.column_stack([_normal_scores(g, outputs[:, j])
                              for j, g in zip(reference.continuous, reference.grids)]
                             ) if reference.grids else np.empty((size, 0))
    return _TestedBlock(rows, _ExactParts(scores, *whitened))


def _to_unconstrained_checked(compiled: CompiledModel, block: Block, returned: dict,
                              x: dict) -> dict[str, np.ndarray]:
    """The user's K returns of the block on the unconstrained scale (the other variables at the
    state x), after checking that each resized variable's return is in its support: PyMC's
    forward transform must give finite values that its backward transform maps back to the
    return (to 1e-6 of its largest entry). A covariance matrix that is not positive definite has
    no Cholesky factor (NaN); one that is not symmetric comes back as the symmetric matrix of its
    lower triangle.

    Raises
    ------
    UserFunctionError
        At the first return outside its variable's support, naming the function and the variable.
    """
    size = len(next(iter(returned.values())))
    u = compiled.to_unconstrained({name: returned.get(name, np.repeat(np.asarray(value)[None],
                                                                      size, axis=0))
                                   for name, value in x.items()})
    resized = [name for name in block.names if compiled.variables[name].resized]
    if resized:
        back = compiled.to_natural(u)
        for name in resized:
            value = returned[name].reshape(size, -1)
            error = np.abs(back[name].reshape(size, -1) - value).max(axis=1)
            bad = ~(error <= 1e-6 * np.abs(value).max(axis=1))  # NaN is bad too
            if bad.any():
                k = int(np.argmax(bad))
                transform = compiled.variables[name].transform
                shown = " ".join(np.array2string(returned[name][k], precision=4).split())
                raise UserFunctionError(
                    f"{block.label} returned a value of {name!r} outside its support at call "
                    f"{k + 1} of {size}: PyMC's {transform!r} transform does not map it back to "
                    f"itself{SUPPORT_HINTS.get(transform, '')}: {shown}")
    return u


def _component_name(layout: _Layout, component: np.ndarray) -> str:
    labels = [layout.labels[j] for j in component]
    return f"({', '.join(labels)})" if len(labels) <= 4 else \
        f"({labels[0]}, ..., {labels[-1]}: {len(labels)} coupled)"


# -- agreement with NUTS ----------------------------------------------------------------------------

def _scalar_inference_data(draws: dict[str, np.ndarray], variables: Mapping[str, Variable],
                           engine: str):
    """InferenceData with one scalar variable per element ('beta[2]'), dims (chain, draw)."""
    from hiercheck.models.engine import az

    posterior = {}
    for name, variable in variables.items():
        values = draws[name].reshape(*draws[name].shape[:2], -1)
        for j, label in enumerate(variable.element_names()):
            posterior[label] = values[:, :, j].astype(float)
    idata = az.from_dict(posterior=posterior)
    idata.posterior.attrs["engine"] = engine
    return idata


def _mixing(draws: dict[str, np.ndarray], variables: Mapping[str, Variable]) -> pd.DataFrame:
    """`diagnostics.mixing_table` of every scalar element of the draws (a row each)."""
    idata = _scalar_inference_data(draws, variables, "sweep")
    return diagnostics.mixing_table(idata, list(idata.posterior.data_vars))


def _mixing_gate(draws, variables) -> tuple[bool, str, pd.DataFrame]:
    """Whether every scalar clears the agreement check's mixing gate (bulk and tail ESS at least
    diagnostics.ESS_FLOOR, R-hat at most diagnostics.RHAT_CEILING); the reason if not.
    """
    table = _mixing(draws, variables)
    ess = table[["ess_bulk", "ess_tail"]].min(axis=1)
    worst_ess, worst_r_hat = table.loc[ess.idxmin()], table.loc[table.r_hat.idxmax()]
    problems = []
    if not ess.min() >= diagnostics.ESS_FLOOR:
        problems.append(f"ESS of {worst_ess.variable} is {ess.min():.0f} < {diagnostics.ESS_FLOOR}")
    if not worst_r_hat.r_hat <= diagnostics.RHAT_CEILING:
        problems.append(f"R-hat of {worst_r_hat.variable} is {worst_r_hat.r_hat:.3f} > "
                        f"{diagnostics.RHAT_CEILING}")
    return not problems, "; ".join(problems), table


def _compare_probabilities(draws_a: np.ndarray, draws_b: np.ndarray, name: str) -> list[dict]:
    """A discrete scalar's CDF at the reference's quantiles, k_q = Q_b(q):

        z = (F_a(k_q) - F_b(k_q)) / sqrt(F_a (1 - F_a)/ESS_a + F_b (1 - F_b)/ESS_b),

    ESS that of the indicator I(x <= k_q). (A quantile of a discrete variable jumps by a whole
    unit when the CDF crosses q at an atom, so quantile z-scores do not apply to it.)
    """
    from hiercheck.models.engine import az

    rows = []
    for k in np.unique(np.quantile(draws_b, agreement.QUANTILES, method="inverted_cdf")):
        row = {"variable": name, "school": "", "quantile": np.nan, "at": k}
        for side, draws in (("a", draws_a), ("b", draws_b)):
            below = (draws <= k).astype(float)
            row[side] = below.mean()
            ess = float(az.ess(below)) if 0 < below.mean() < 1 else np.inf
            row[f"mcse_{side}"] = np.sqrt(row[side] * (1 - row[side]) / ess)
        se = np.hypot(row["mcse_a"], row["mcse_b"])
        row["z"] = (row["a"] - row["b"]) / se if se > 0 else (0.0 if row["a"] == row["b"] else np.inf)
        rows.append(row)
    return rows


def agreement_check(run: _SweepRun, alpha: float = ALPHA) -> CheckOutcome:
    """Posterior quantiles of every continuous scalar (and the CDF of every discrete one at
    NUTS' quantiles) of the sweep against NUTS, once both pass the mixing gate.
    """
    start = time.perf_counter()
    references = run.references
    variables = references.variables
    nuts_mixes, nuts_reason, nuts_mixing = _mixing_gate(references.nuts, variables)
    nuts = _scalar_inference_data(references.nuts, variables, "nuts")
    seconds = lambda: time.perf_counter() - start  # noqa: E731
    # NUTS first: the sweep's chains start at its last draws, so where NUTS's chains sit in
    # different modes the sweep's do too, and its R-hat would blame the user for NUTS's trouble
    if not nuts_mixes:
        return cannot_verify("agreement vs nuts", "the reference, NUTS, does not mix ("
                             f"{nuts_reason}{_apart(nuts, nuts_mixing)}"
                             f"{_divergent(references)}), so the sweep cannot be compared with it",
                             np.nan, diagnostics.ESS_FLOOR, seconds(), nuts_mixing)
    mixes, reason, mixing = _mixing_gate(run.posterior, variables)
    if not mixes:
        return cannot_verify("agreement vs nuts", f"the sweep does not mix ({reason}); more "
                             "draws (quick=False) may let it be verified",
                             mixing[["ess_bulk", "ess_tail"]].min().min(),
                             diagnostics.ESS_FLOOR, seconds(), mixing)
    mine = _scalar_inference_data(run.posterior, variables, "your sweep")
    discrete = [label for name, v in variables.items() if v.discrete for label in v.element_names()]
    continuous = [name for name in mixing.variable if name not in discrete]
    tables = ([agreement.compare(mine, nuts, var_names=continuous, alpha=alpha).table]
              if continuous else [])
    rows = [row for name in discrete for row in _compare_probabilities(
        mine.posterior[name].to_numpy(), nuts.posterior[name].to_numpy(), name)]
    if rows:
        tables.append(pd.DataFrame(rows))
    table = pd.concat(tables, ignore_index=True)
    table["p"] = 2 * st.norm.sf(np.abs(table.z.to_numpy(dtype=float)))
    table["p_holm"] = holm_adjust(table.p.to_numpy())
    table["agree"] = table.p_holm > alpha
    both = pd.concat([mixing.assign(engine="sampler"), nuts_mixing.assign(engine="reference")],
                     ignore_index=True)
    result = agreement.Agreement(table=table, alpha=alpha, engines=("your sweep", "nuts"),
                                 mixing=both)
    if not result.passed and references.nuts_divergences:
        # a reference with divergent transitions may be biased where they happened: its
        # disagreement with the sweep is not evidence against the sweep
        return cannot_verify("agreement vs nuts", "the sweep disagrees with the reference, "
                             f"NUTS, which had {references.nuts_divergences} divergent "
                             "transitions and may be biased there", float(table.p_holm.min()),
                             alpha, seconds(), table)
    return CheckOutcome("agreement vs nuts", MIN_HOLM_P, float(table.p_holm.min()),
                        alpha, result.passed, seconds(), table, result)


def _apart(draws, mixing: pd.DataFrame) -> str:
    """"; its chains sit apart in <scalar> (chain means ..., within-chain SD ...)" when the
    scalar of the largest R-hat has chains whose means differ by more than 3 of their own SDs
    (modes: label switching, a multimodal posterior), else "".
    """
    label = mixing.loc[mixing.r_hat.idxmax(), "variable"]
    values = draws.posterior[label].to_numpy()
    means, within = values.mean(axis=1), values.std(axis=1).mean()
    if not np.ptp(means) > 3 * within:
        return ""
    shown = ", ".join(f"{m:.3g}" for m in means)
    return (f"; its chains sit apart in {label} (chain means {shown}, within-chain SD "
            f"{within:.3g}): modes it does not cross")


def _divergent(references: ModelReferences) -> str:
    divergences = references.nuts_divergences
    return f"; {divergences} divergent transitions" if divergences else ""


# -- Geweke -------------------------------------------------------------------------------------

def tracked_quantities(variables: Mapping[str, Variable]) -> dict[str, tuple[str, int]]:
    """The scalars Geweke and SBC follow: every scalar variable, and the first, middle and last
    element of every vector (flat index), by label.
    """
    tracked = {}
    for name, variable in variables.items():
        labels = variable.element_names()
        for j in sorted({0, variable.size // 2, variable.size - 1}):
            tracked[labels[j]] = (name, j)
    return tracked


def _quantities(compiled: CompiledModel, x: dict, observed: dict) -> dict[str, np.ndarray]:
    """Every tracked scalar of K points (natural scale), and log p(y | params) of each."""
    values = {label: np.reshape(x[name], (len(x[name]), -1))[:, j].astype(float)
              for label, (name, j) in tracked_quantities(compiled.variables).items()}
    values["loglik"] = compiled.log_likelihood(compiled.to_unconstrained(x), observed)
    return values


@dataclass(frozen=True)
class GenericGeweke(CheckTable):
    alpha: float


def _indicators(quantities: dict[str, np.ndarray], thresholds: dict[tuple[str, float], float]
                ) -> dict:
    """{(name, level): I(q <= its threshold at level)} for every threshold, as floats."""
    return {(name, level): (quantities[name] <= threshold).astype(float)
            for (name, level), threshold in thresholds.items()}


def _geweke_group(run: _SweepRun, stream: np.random.SeedSequence, chains: int,
                  thresholds: dict[tuple[str, float], float]) -> dict:
    """`chains` chains of the successive-conditional simulator (the sweep, then new
    observations given its draw), started from the prior predictive: every indicator at every
    step, {(name, level): (chains, geweke_steps)}.
    """
    compiled, settings = run.references.compiled, run.references.settings
    start_seed, observe_seed, chain_seed = stream.spawn(3)
    states, observed = compiled.simulate_prior(chains, start_seed)
    rng = np.random.default_rng(chain_seed)
    steps, excursion = [], []
    for step in range(settings.geweke_steps):
        states = run.sweep(rng, states, Batch.of(compiled, chains, observed), excursion)
        observed = _observations(run, states, observe_seed if step == 0 else None, excursion)
        steps.append(_indicators(_quantities(compiled, states, observed), thresholds))
    return {k: np.stack([values[k] for values in steps], axis=1) for k in steps[0]}


def _observations(run: _SweepRun, states: dict, seed, excursion: list) -> dict:
    """New observations given the sweep's states (`CompiledModel.simulate_observed`); PyMC's
    simulator failing there (a Poisson rate too large to draw) is a `DivergenceError`.
    """
    try:
        return run.references.compiled.simulate_observed(states, seed)
    except Exception as error:  # the states the user's functions produced broke the simulator
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DivergenceError(run.divergence(
            f"the model's simulation of the observations failed ({reason})", excursion)) from error


def _indicator_ess(series: np.ndarray) -> np.ndarray:
    """The effective sample size of each indicator series (chains, steps, K): its multi-chain
    ESS (`diagnostics.ess_bulk`), but the number of chains for a series that never changes. No
    chain moved across its threshold, so the series tells nothing of how fast they mix; the
    chains' starts are independent draws of the joint law, so they are that many draws at least.
    (The ESS of a constant series came out as every step counted, 20,000 where no chain of the
    blood-pressure model visited a tail: a standard error a hundred times too small.)
    """
    constant = (series == series[:1, :1]).all(axis=(0, 1))
    return np.where(constant, series.shape[0], diagnostics.ess_bulk(series))


def geweke_check(run: _SweepRun, seed, alpha: float = ALPHA,
                 levels: tuple[float, ...] = GEWEKE_LEVELS) -> GenericGeweke:
    """Geweke's test with bounded test functions: for every tracked scalar q and the
    log-likelihood, the indicators I(q <= Q(p)) at p in `levels`, Q the prior quantiles
    (from half of the marginal-conditional draws; their means under it from the other half).
    The successive-conditional simulator's chains run in groups (`run.geweke_group`), each with
    its own stream, in `run.jobs` processes. Under the hypothesis that the sweep is right every step
    is a draw of the joint law, so an indicator is Bernoulli(P) at every step, P estimated by the
    marginal draws; the z-test's variance of the successive mean is P(1 - P) / ESS, ESS the
    multi-chain effective sample size of the indicator series (`diagnostics.ess_bulk`, which
    for two values is their plain ESS). A variance read off the chains' own averages would
    shrink exactly when few chains visit a tail, which chains that barely move make likely: it
    raised false alarms (docs/validation.md).
    """
    compiled, settings = run.references.compiled, run.references.settings
    mc_seed, chains_seed = np.random.SeedSequence(seed).spawn(2)
    x, y = compiled.simulate_prior(settings.geweke_independent, mc_seed)
    marginal = _quantities(compiled, x, y)
    half = settings.geweke_independent // 2
    thresholds = {(name, level): threshold for name, values in marginal.items()
                  for level, threshold in zip(levels, np.quantile(values[:half], levels))}
    chains = settings.geweke_chains
    group = run.geweke_group
    groups = math.ceil(chains / group)
    tasks = [(stream, min(group, chains - g * group), thresholds)
             for g, stream in enumerate(chains_seed.spawn(groups))]
    parts = in_order(_map_forked(run, _geweke_group, tasks))
    successive = {k: np.concatenate([part[k] for part in parts]) for k in parts[0]}
    ess = dict(zip(successive, _indicator_ess(np.stack(list(successive.values()), axis=-1))))
    reference = _indicators({name: values[half:] for name, values in marginal.items()},
                            thresholds)
    rows = []
    for (name, level), series in successive.items():
        mc = reference[(name, level)]
        p = mc.mean()
        se = np.sqrt(p * (1 - p) / ess[(name, level)] + mc.var(ddof=1) / mc.size)
        difference = series.mean() - p
        z = difference / se if se > 0 else (0.0 if difference == 0 else np.inf)
        rows.append({"function": f"I({name} <= prior q{level:g})", "successive": series.mean(),
                     "marginal": p, "ess": ess[(name, level)], "se": se, "z": z})
    table = pd.DataFrame(rows)
    table["p"] = 2 * st.norm.sf(np.abs(table.z.to_numpy(dtype=float)))
    table["p_holm"] = holm_adjust(table.p.to_numpy())
    table["agree"] = table.p_holm > alpha
    return GenericGeweke(table=table, alpha=alpha)


# -- SBC ----------------------------------------------------------------------------------------

def _sbc_unit(run: _SweepRun, stream: np.random.SeedSequence, size: int, thin: int
              ) -> dict[str, np.ndarray]:
    """Ranks of every tracked scalar and the log-likelihood for `size` replications: truth and
    data from the prior predictive, then the sweep on those data. Each chain starts at the true
    parameters, which are a draw of the posterior given the simulated data, so it starts in its
    stationary law (if the sweep is right); its first `sbc_tune` sweeps are dropped so that the
    kept draws forget the truth, then every `thin`-th of `sbc_draws * thin` sweeps is kept.
    """
    compiled, settings = run.references.compiled, run.references.settings
    truth_seed, chain_seed = stream.spawn(2)
    truth, observed = compiled.simulate_prior(size, truth_seed)
    rng = np.random.default_rng(chain_seed)
    true_values = _quantities(compiled, truth, observed)
    draws = settings.sbc_draws
    kept = {name: np.empty((size, draws, *v.shape))
            for name, v in run.references.variables.items()}
    # functions of one state sweep one replication's chain after another, so that what a
    # function computes once per data set (and keeps) serves a whole chain
    for cells in [slice(0, size)] if run.batched else [slice(r, r + 1) for r in range(size)]:
        states = {name: values[cells] for name, values in truth.items()}
        batch = Batch.of(compiled, cells.stop - cells.start,
                         {name: values[cells] for name, values in observed.items()})
        excursion = []
        for _ in range(settings.sbc_tune):
            states = run.sweep(rng, states, batch, excursion)
        for k in range(draws * thin):
            states = run.sweep(rng, states, batch, excursion)
            if (k + 1) % thin == 0:
                for name, values in states.items():
                    kept[name][cells, k // thin] = values
    posterior = _quantities(  # every replication's draws as one batch of size * draws points
        compiled, {name: values.reshape(size * draws, *values.shape[2:])
                   for name, values in kept.items()},
        {name: np.repeat(values, draws, axis=0) for name, values in observed.items()})
    ranks = {}
    for name, values in posterior.items():
        values, truth_of = values.reshape(size, draws), true_values[name][:, None]
        below, ties = np.sum(values < truth_of, axis=1), np.sum(values == truth_of, axis=1)
        ranks[name] = below + rng.integers(ties + 1)  # ties (discrete) broken at random
    return ranks


def sbc_check(run: _SweepRun, seed, alpha: float = ALPHA, *, out=None,
              progress: bool = False) -> sbc.SBCResult:
    """SBC of the sweep; replications in units (`run.sbc_unit`), each with its own stream (so the
    ranks depend on the seed alone), run in `run.jobs` forked processes, saved in `out` as they
    finish (a re-run with the same settings resumes).
    """
    references = run.references
    settings = references.settings
    # thinning by the sweep's autocorrelation time leaves the kept draws nearly independent
    thin = int(min(MAX_SBC_THIN, max(settings.sbc_thin, math.ceil(run.autocorrelation_time))))
    replications = settings.sbc_replications
    unit_size = run.sbc_unit
    units = math.ceil(replications / unit_size)
    streams = np.random.SeedSequence(seed).spawn(units)
    config = {"engine": "generic gibbs", "model": references.fingerprint,
              "functions": [f"{b.key}={_qualified_name(b.function)}" for b in run.blocks],
              "batched": run.batched, "replications": replications,
              "draws": settings.sbc_draws, "thin": thin, "tune": settings.sbc_tune, "seed": seed,
              "unit": unit_size}
    store = UnitStore(out, config) if out is not None else None
    results = {unit: store.load(unit) for unit in (store.done() if store else ())}
    todo = [(unit, (streams[unit], min(unit_size, replications - unit * unit_size), thin))
            for unit in range(units) if unit not in results]
    bar = tqdm(total=units, initial=len(results), desc="SBC (your sweep)", disable=not progress)

    def finished(unit, ranks):
        results[unit] = ranks
        if store is not None:
            store.save(unit, ranks)
        bar.update()

    for index, ranks in _map_forked(run, _sbc_unit, [a for _, a in todo]):
        finished(todo[index][0], ranks)
    bar.close()
    ranks = {name: np.concatenate([results[u][name] for u in range(units)]) for name in results[0]}
    return sbc.SBCResult(ranks=ranks, draws=settings.sbc_draws, engine="your sweep",
                         settings=config, alpha=alpha)


def _qualified_name(function) -> str:
    return f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', repr(function))}"


def _model_fingerprint(compiled: CompiledModel) -> str:
    """A hash of what the model is: its variables, shapes and data, and its joint log density
    term by term at a few fixed points (so a change of a prior or of the likelihood shows).
    """
    digest = hashlib.sha256()
    digest.update(json.dumps({name: asdict(v) for name, v in compiled.variables.items()},
                             sort_keys=True).encode())
    for name in sorted(compiled.data):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(compiled.data[name]).tobytes())
    model, probe = compiled.model, np.random.default_rng(20261128)
    start = model.initial_point()  # unconstrained values, by the name of each value variable
    points = {}
    for name, variable in compiled.variables.items():
        base = np.asarray(start[model.rvs_to_values[model[name]].name])
        # a discrete variable stays at its starting value: one more could leave its support
        # (a categorical index into a vector of means)
        step = (np.zeros((3, *base.shape), dtype=base.dtype) if variable.discrete
                else probe.normal(0.0, 0.1, (3, *base.shape)))
        points[name] = (base + step).astype(base.dtype)
    terms, _ = compiled.evaluate(points)
    digest.update(np.round(terms, 8).tobytes())
    return digest.hexdigest()[:16]


# -- the verdict ----------------------------------------------------------------------------------

def check_gibbs(model: pm.Model, conditionals: Mapping | None = None, *,
                sweep: Callable | None = None, simulate_with: pm.Model | None = None,
                seed: SeedLike = 0, quick: bool = True,
                checks: Iterable[str] = GENERIC_CHECKS, references: ModelReferences | None = None,
                jobs: int = 1, out: Path | str | None = None, progress: bool = False,
                name: str | None = None, batched: bool = False, fail_fast: bool = False
                ) -> Verdict:
    """Check a hand-derived Gibbs sampler of any PyMC model (module docstring).

    Parameters
    ----------
    model : pymc.Model
        The reference: priors, likelihood and observed data.
    conditionals : Mapping, optional
        {free variable name, or tuple of names drawn jointly: draw(rng, state, data)}, in the
        order of the sweep.
    sweep : callable, optional
        In place of `conditionals`, for code not split into conditionals: sweep(rng, state,
        data) -> the next state, {every free variable: its new value}. Consistency, which tests
        each conditional, then cannot run: its row says so and the verdict is at best
        incomplete; agreement, Geweke and SBC check the sweep as a whole.
    simulate_with : pymc.Model, optional
        For a model whose prior cannot be simulated (an improper prior, a pm.Potential): a
        proper neighbour with the same free and observed variables, on which Geweke's test and
        SBC run the same functions. Its prior's constants must reach the functions through
        `data` (pm.Data, present in both models), which the functions read instead of typing
        them in: the functions are then right for both models or for neither.
    seed : int, default 0
        The same seed gives the same verdict (a SeedSequence or Generator is not accepted: it
        goes to `numpy.random.SeedSequence` as entropy).
    quick : bool, default True
        `GENERIC_QUICK` settings, else `GENERIC_FULL`; no effect when `references` are given
        (theirs apply).
    checks : iterable of str
        A subset of `GENERIC_CHECKS`.
    references : ModelReferences, optional
        Compiled functions and NUTS draws of this model, shared between calls; built from
        `model`, the settings, `seed` and `name` when omitted.
    jobs : int, default 1
        Processes (forked): with more than one, the checks run side by side (the sweep's chains
        on the data first, which two of them read); one at a time, a check spreads its own
        chains and replications over them. The verdict does not depend on it.
    out : path, optional
        Each check's files (`CheckOutcome.save`) are written in this folder as the check
        finishes, by the process that ran it (`Verdict.save` in the same folder then adds only
        the verdict's own); SBC saves its replications in out/sbc as they finish (a re-run
        resumes).
    progress : bool, default False
        Progress bars.
    name : str, optional
        How the verdict names the model; no effect when `references` are given.
    batched : bool, default False
        Whether every function takes a batch of B states at once (module docstring): the
        checks then call it once per sweep of a batch of chains (SBC's replications, Geweke's
        chains, the agreement check's chains, a consistency state's starts), not once per
        state; the verdict's draws differ, not its meaning.
    fail_fast : bool, default False
        Run the checks one at a time in `FAIL_FAST_ORDER` and stop at the first that fails: the
        verdict then has a row for each check run (the same rows as without it, for those).

    Returns
    -------
    Verdict
        A row per check.

    Raises
    ------
    SettingsError
        For an unknown check, `jobs` not a positive integer, references computed for another
        model, a model without observed data, a mapping that does not match the model's free
        variables, or neither or both of `conditionals` and `sweep`.
    UserFunctionError
        When a draw function raises an exception, or returns the wrong shape or type (a value
        that is not finite, in a chain, fails the check instead: `DivergenceError`).
    """
    if (conditionals is None) == (sweep is None):
        raise SettingsError("check_gibbs needs the conditionals (a mapping) or a whole sweep "
                            "(sweep=f), one of the two")
    checks = tuple(checks)
    require_integer("jobs", jobs)
    unknown = sorted(set(checks) - set(GENERIC_CHECKS))
    if unknown:
        raise SettingsError(f"unknown check {unknown[0]!r}; checks are {', '.join(GENERIC_CHECKS)}")
    if references is None:
        references = ModelReferences(model, GENERIC_QUICK if quick else GENERIC_FULL, seed, name)
    elif references.model is not model:
        raise SettingsError("references were computed for another model")
    if sweep is not None:
        conditionals = {tuple(references.variables): sweep}
    blocks = parse_conditionals(conditionals, references.variables, references.compiled.observed,
                                batched)
    streams = _streams(seed)
    run = _SweepRun(blocks, references, streams["sweep"], jobs)
    simulated, prior_problem = run, references.prior_problem
    if simulate_with is not None and prior_problem:
        simulated = _SweepRun(blocks, _neighbour(references, simulate_with, seed),
                              streams["sweep"], jobs)
        prior_problem = simulated.references.prior_problem
    order = FAIL_FAST_ORDER if fail_fast else GENERIC_CHECKS
    selected = [check for check in order if check in checks]
    side_by_side = jobs > 1 and len(selected) > 1 and not fail_fast
    runs = {
        "consistency": lambda: not_applicable("consistency", WHOLE_SWEEP) if sweep else
        _consistency_outcome(run, streams["consistency"]),
        "agreement vs nuts": lambda: agreement_check(run),
        "geweke": lambda: not_applicable("geweke", prior_problem) if prior_problem else
        timed("geweke", MIN_HOLM_P, lambda: geweke_check(simulated, streams["geweke"]),
              p_value_summary),
        "sbc": lambda: not_applicable("sbc", prior_problem) if prior_problem else
        timed("sbc", MIN_HOLM_P, lambda: sbc_check(simulated, streams["sbc"],
                                                   out=out and Path(out) / "sbc",
                                                   progress=progress and not side_by_side),
              p_value_summary),
    }
    runs = {check: _divergence_fails(check, runner) for check, runner in runs.items()}
    outcomes = _run_checks(run, selected, runs, side_by_side, out, progress, fail_fast)
    subject = f"check_gibbs({', '.join(f'{b.key}={b.label}' for b in blocks)}) on {references.name}"
    if simulated is not run:
        subject += f"; geweke and sbc on {simulated.references.name}"
    return Verdict(tuple(outcomes), subject=subject, references=references, blocks=blocks)


def _neighbour(references: ModelReferences, model: pm.Model, seed) -> ModelReferences:
    """The references of `simulate_with`, after checking that it has the same free variables
    (names and shapes) and observed variables as the checked model.

    Raises
    ------
    SettingsError
        Naming the first difference.
    """
    neighbour = ModelReferences(model, references.settings, seed, f"{references.name}, proper",
                                references.cache)
    mine, theirs = references.variables, neighbour.variables
    for name in sorted(set(mine) | set(theirs)):
        if name not in mine or name not in theirs or mine[name].shape != theirs[name].shape:
            raise SettingsError(f"simulate_with must have the checked model's free variables; "
                                f"{name!r} differs")
    if set(references.compiled.observed) != set(neighbour.compiled.observed):
        raise SettingsError("simulate_with must observe the variables the checked model "
                            f"observes: {', '.join(references.compiled.observed)}")
    return neighbour


def _divergence_fails(check: str, runner: Callable[[], CheckOutcome]
                      ) -> Callable[[], CheckOutcome]:
    """runner, with a `DivergenceError` in it made the check's failure: a row whose statistic
    is the error's message (value NaN), so that a sweep that diverges gets a verdict, FAILED.
    """
    def outcome() -> CheckOutcome:
        start = time.perf_counter()
        try:
            return runner()
        except DivergenceError as error:
            return CheckOutcome(check, str(error), math.nan, ALPHA, False,
                                time.perf_counter() - start, pd.DataFrame({"divergence": [str(error)]}))
    return outcome


def _run_checks(run: _SweepRun, checks: list[str], runs: dict[str, Callable[[], CheckOutcome]],
                side_by_side: bool, out, progress: bool, fail_fast: bool = False
                ) -> list[CheckOutcome]:
    """runs[check]() for each check (`result.run_tasks`): one at a time, or side by side in
    `run.jobs` forked processes, or with `fail_fast` one at a time until one fails. Before
    forking, this process computes what more than one check reads: the compiled functions, the
    model's fingerprint, and the sweep's chains on the data (the agreement check compares them
    with NUTS, SBC thins by their autocorrelation). A check's own tasks (chains, replications)
    then run one after another in its worker.
    """
    def before_forking() -> None:
        _warm_up(run.references.compiled)
        run.references.fingerprint  # noqa: B018  (keys the consistency references and SBC)
        if "consistency" in checks:
            run.references.conjugate  # noqa: B018  (recognized once, not in the worker)
        if {"agreement vs nuts", "sbc"} & set(checks):
            run.posterior  # noqa: B018

    return run_tasks([lambda check=check: [runs[check]()] for check in checks],
                     jobs=run.jobs if side_by_side else 1, fail_fast=fail_fast,
                     out=out and Path(out), progress=progress, before_forking=before_forking)


def _skipped_summary(skipped: tuple[str, ...]) -> str:
    """The states the consistency check could not judge, for the verdict's line: the first in
    full, the rest counted (`GenericConsistency.skipped` lists every one).
    """
    more = (f"; and {len(skipped) - 1} more (the consistency result's `skipped` lists them)"
            if len(skipped) > 1 else "")
    return f"no reference could be made for {skipped[0]}{more}"


def _consistency_outcome(run: _SweepRun, seed) -> CheckOutcome:
    """The consistency check's row: failed where a tested block differs, else incomplete where
    a block could not be tested or a state was skipped, else passed.
    """
    outcome = timed("consistency", MIN_HOLM_P, lambda: consistency_check(run, seed),
                    p_value_summary)
    result = outcome.result
    unchecked = [*result.unsupported, *([_skipped_summary(result.skipped)] if result.skipped
                                        else [])]
    if outcome.passed and unchecked:
        return cannot_verify("consistency", "; ".join(unchecked), outcome.value, ALPHA,
                             outcome.seconds, outcome.table, result)
    return outcome
