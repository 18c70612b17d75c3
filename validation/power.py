"""Power, as a number: how small an error in a full conditional the suite sees.

The detection matrix says which check catches which named slip; this module measures how large a
slip must be. Each of the package's own conditionals is perturbed by eps in units that do not
depend on the design, its conditional's own spread:

    shift     x' = x + eps sd(x | rest)                 the draw moved by eps conditional SDs
    spread    x' = x + eps (x - E(x | rest))            deviation from the conditional mean
                                                        scaled by 1 + eps, the mean unchanged

where x is the package's draw and E(x | rest), sd(x | rest) the closed forms of its conditional
(theta_i and mu normal, lam and omega Gamma(shape, rate) with mean shape/rate and SD
sqrt(shape)/rate; `hiercheck.samplers.marginal.theta_conditional`, `gibbs.mu_full_conditional`,
`gibbs.lam_full_conditional`, `gibbs.omega_full_conditional`, and for the blocked sweep's
collapsed ones `marginal.mu_conditional` and `marginal.lam_given_mu_omega`). So a shift of eps
moves the conditional's mean by eps SD and leaves its SD, a spread of eps leaves the mean and
multiplies the SD by 1 + eps, and eps = 0 returns the package's draw itself. A spread draw of lam
or omega that would fall at or below 0 (at eps = 0.1, 5e-6 of the draws of the small design's
omega, Gamma(7, R); 7e-8 at eps = 0.05; far fewer elsewhere) is set to POSITIVE_FLOOR times the
conditional mean, as a user's function must return a positive precision. A third kind, "kernel" (omega only), is
the example Metropolis kernel on log omega with eps added to its log acceptance ratio
(`hiercheck.validation.kernels.draw_omega_metropolis_off_by`).

`power_study` runs the suite (`check_sampler`, quick or full settings) on every (conditional,
kind, eps) at several seeds, sharing one set of references (exact posterior, compiled densities,
the small simulated data; seed 0, as the detection matrix does): the seeds vary every check's
random streams, not the data. `detection_rates` gives, per conditional, kind, eps and check (and
"suite": any check), how many seeds caught it, the rate and its one-sided 95% Clopper-Pearson
lower bound; `smallest_detected` the smallest eps of the grid caught with rate >= 0.95 (at it and
at every larger eps), by the observed rate and by the lower bound. `power_markdown` writes both
as tables for the docs.

Any built-in model's power is measured the same way (`model_power_study`, `hiercheck power
--model NAME`): each block of its own sweep whose full conditional `hiercheck.conjugate_conditionals`
recognizes in a family with a mean and an SD (`PERTURBED_FAMILIES`) is shifted or spread by eps
of that exact conditional's SD (`perturbed_block`; for a multivariate normal block a spread of
eps multiplies the covariance by (1 + eps)^2), and `check_gibbs` runs on the sweep with that
block replaced, at several seeds, sharing one set of references (NUTS's draws and the
consistency states of seed 0).
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_CHECKS", "DEFAULT_EPSILONS", "DEFAULT_SEEDS", "KERNEL", "KINDS",
    "PERTURBED_FAMILIES", "POSITIVE_FLOOR", "clopper_pearson_lower", "conditional_moments",
    "detection_rates", "model_power_study", "perturbed_block", "perturbed_conditional",
    "perturbed_conditionals", "power_markdown", "power_study", "smallest_detected",
]

import dataclasses
import itertools
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats
from tqdm.auto import tqdm

from hiercheck.cache import data_parts, fingerprint
from hiercheck.errors import SettingsError, require_integer
from hiercheck.models import GroupedData, Priors, SchoolStats, load_dataset
from hiercheck.samplers import gibbs
from hiercheck.samplers.marginal import lam_given_mu_omega, mu_conditional, theta_conditional

from . import suite
from .kernels import draw_omega_metropolis_off_by
from .forked import forked_map
from .store import UnitStore

if TYPE_CHECKING:
    from .conjugate import ConjugateConditional

KINDS = ("shift", "spread")
KERNEL = "kernel"  # omega only: the example Metropolis kernel, its log acceptance ratio off by eps
# Agreement vs NUTS is left out: it needs PyMC's NUTS posterior, and every perturbation it could
# see, agreement vs exact (the same z-tests against exact i.i.d. draws) sees as well.
DEFAULT_CHECKS = tuple(check for check in suite.SAMPLER_CHECKS if check != "agreement vs nuts")
DEFAULT_EPSILONS = (0.01, 0.03, 0.05)
DEFAULT_SEEDS = 4
POSITIVE_FLOOR = 1e-3  # a spread draw of lam or omega at or below 0 becomes this times its mean
LEVEL = 0.95           # "caught with probability >= LEVEL"
SUITE = "suite"        # the row of a rates table for the suite as a whole: any check caught it


def _normal_moments(mean, precision):
    return mean, 1.0 / np.sqrt(precision)


def _gamma_moments(shape, rate):
    return shape / rate, np.sqrt(shape) / rate


# field of gibbs.Conditionals -> (mean, sd) of its conditional at (state, stats, priors)
_MOMENTS: dict[str, Callable] = {
    "draw_theta": lambda state, stats, priors: _normal_moments(
        *theta_conditional(stats, state.mu, state.lam, state.omega)),
    "draw_mu": lambda state, stats, priors: _normal_moments(
        *gibbs.mu_full_conditional(state, stats, priors)),
    "draw_lam": lambda state, stats, priors: _gamma_moments(
        *gibbs.lam_full_conditional(state, stats, priors)),
    "draw_omega": lambda state, stats, priors: _gamma_moments(
        *gibbs.omega_full_conditional(state, stats, priors)),
    "draw_mu_collapsed": lambda state, stats, priors: _normal_moments(
        *mu_conditional(stats, priors, state.lam, state.omega)),
    "draw_lam_collapsed": lambda state, stats, priors: _gamma_moments(
        *lam_given_mu_omega(stats, priors, state.mu, state.omega)),
}
_POSITIVE = ("draw_lam", "draw_omega", "draw_lam_collapsed")


def _field(conditional: str) -> str:
    """'theta' -> 'draw_theta', refusing a name that is no conditional."""
    field = f"draw_{conditional}"
    if field not in _MOMENTS:
        names = ", ".join(name.removeprefix("draw_") for name in _MOMENTS)
        raise SettingsError(f"unknown conditional {conditional!r}; conditionals are {names}")
    return field


def conditional_moments(conditional: str, state: gibbs.GibbsState, stats: SchoolStats,
                        priors: Priors) -> tuple[np.ndarray, np.ndarray]:
    """The mean and SD of a full conditional at a state, from its closed form.

    Parameters
    ----------
    conditional : str
        'theta', 'mu', 'lam', 'omega', 'mu_collapsed' or 'lam_collapsed'.
    state : GibbsState
        The state, of any batch shape.
    stats : SchoolStats
        The data's sufficient statistics.
    priors : Priors
        The priors' constants.

    Returns
    -------
    tuple of numpy.ndarray
        (mean, sd), of the draw's shape (theta: (..., m)).

    Raises
    ------
    SettingsError
        For an unknown conditional.
    """
    return _MOMENTS[_field(conditional)](state, stats, priors)


def _check_perturbation(kind: str, eps: float) -> float:
    if kind not in (*KINDS, KERNEL):
        raise SettingsError(f"unknown perturbation kind {kind!r}; kinds are "
                            f"{', '.join((*KINDS, KERNEL))}")
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating, np.integer)):
        raise SettingsError(f"eps must be a number, got {eps!r}")
    eps = float(eps)
    if not math.isfinite(eps) or eps < 0:
        raise SettingsError(f"eps must be a finite number >= 0, got {eps!r}")
    return eps


def perturbed_conditional(conditional: str, kind: str, eps: float) -> gibbs.Draw:
    """The package's draw of a conditional, perturbed by eps of its own SD.

    "shift" returns x + eps sd(x | rest); "spread" returns x + eps (x - E(x | rest)), x the
    package's draw; with eps = 0 either returns x itself. "kernel" (omega only) is instead
    `hiercheck.validation.kernels.draw_omega_metropolis_off_by(eps)`: the example Metropolis
    kernel on log omega with eps added to its log acceptance ratio (eps = 0: the correct kernel).

    Parameters
    ----------
    conditional : str
        'theta', 'mu', 'lam', 'omega', 'mu_collapsed' or 'lam_collapsed'.
    kind : str
        'shift', 'spread' or 'kernel' (omega only).
    eps : float
        The size of the error, >= 0.

    Returns
    -------
    callable
        A draw function `draw(rng, state, stats, priors)`, named after the perturbation.

    Raises
    ------
    SettingsError
        For an unknown conditional or kind, "kernel" for another conditional than omega, or an
        eps that is negative or not finite.
    """
    field = _field(conditional)
    eps = _check_perturbation(kind, eps)
    if kind == KERNEL:
        if field != "draw_omega":
            raise SettingsError(f"the {KERNEL!r} perturbation is of the Metropolis kernel for "
                                f"omega, not of {conditional!r}")
        return draw_omega_metropolis_off_by(eps)
    correct, moments = getattr(gibbs.CORRECT, field), _MOMENTS[field]

    def draw(rng, state, stats, priors):
        x = correct(rng, state, stats, priors)
        mean, sd = moments(state, stats, priors)
        moved = x + eps * sd if kind == "shift" else x + eps * (x - mean)
        if field in _POSITIVE:
            moved = np.where(moved > 0, moved, POSITIVE_FLOOR * mean)
        return moved

    draw.__name__ = draw.__qualname__ = f"{field}_{kind}_{eps:g}"
    return draw


def perturbed_conditionals(conditional: str, kind: str, eps: float) -> gibbs.Conditionals:
    """The package's conditionals with one of them perturbed (`perturbed_conditional`).

    Parameters
    ----------
    conditional : str
        'theta', 'mu', 'lam', 'omega', 'mu_collapsed' or 'lam_collapsed'.
    kind : str
        'shift', 'spread' or 'kernel' (omega only).
    eps : float
        The size of the error, >= 0.

    Returns
    -------
    gibbs.Conditionals
        The package's conditionals, one replaced.
    """
    return gibbs.Conditionals(
        **{_field(conditional): perturbed_conditional(conditional, kind, eps)})


# -- the study ------------------------------------------------------------------------------------

class _Study:
    """The grid of a power study and the references its runs share."""

    def __init__(self, references: suite.References, conditionals, kinds, epsilons, seeds,
                 checks, scheme):
        self.references, self.checks, self.scheme = references, tuple(checks), scheme
        self.grid = [(conditional, kind, eps, seed) for conditional, kind, eps, seed
                     in itertools.product(conditionals, kinds, epsilons, seeds)
                     if kind != KERNEL or conditional == "omega"]

    def run(self, unit: int) -> dict[str, np.ndarray]:
        """The suite on one grid point: each check's value and whether it passed."""
        conditional, kind, eps, seed = self.grid[unit]
        verdict = suite.check_sampler(perturbed_conditionals(conditional, kind, eps),
                                      references=self.references, seed=seed, checks=self.checks,
                                      scheme=self.scheme)
        table = verdict.table.set_index("check").loc[list(self.checks)]
        return {"value": table["value"].to_numpy(float), "passed": table["passed"].to_numpy(bool)}

    def prepare_for_fork(self, units: list[int]) -> None:
        """Every reference the runs of `units` compare with (`References.prepare`: the
        posteriors, each seed's consistency tables), so that no forked worker computes one.
        """
        for seed in sorted({self.grid[unit][3] for unit in units}):
            self.references.prepare(self.checks, self.scheme, suite._streams(seed))


def _finished_units(study, todo: list[int], jobs: int):
    """(unit, result) for each unit of `todo` as it finishes: here, or in `jobs` forked
    processes (`forked.forked_map`: they inherit the study and its compiled references).
    """
    if min(jobs, len(todo)) > 1:
        study.prepare_for_fork(todo)
    for index, result in forked_map(lambda i: study.run(todo[i]), len(todo), jobs):
        yield todo[index], result


def _run_study(study, store: UnitStore | None, jobs: int, progress: bool) -> pd.DataFrame:
    """Every unit of the study's grid (conditional, kind, eps, seed), those in `store` read
    back, the rest run and saved as each finishes: a row per run and check.
    """
    results = {unit: store.load(unit) for unit in store.done()} if store else {}
    todo = [unit for unit in range(len(study.grid)) if unit not in results]
    with tqdm(total=len(study.grid), initial=len(results), desc="power runs",
              disable=not progress) as bar:
        for unit, result in _finished_units(study, todo, jobs):
            results[unit] = result
            if store:
                store.save(unit, result)
            bar.update()
    rows = []
    for unit, (conditional, kind, eps, seed) in enumerate(study.grid):
        for check, value, passed in zip(study.checks, results[unit]["value"],
                                        results[unit]["passed"]):
            rows.append({"conditional": conditional, "kind": kind, "eps": eps, "seed": seed,
                         "check": check, "value": float(value), "caught": not bool(passed)})
    return pd.DataFrame(rows)


def _grid_arguments(kinds, epsilons, seeds: int, jobs: int) -> tuple[float, ...]:
    """The sorted sizes of a study, after refusing a bad kind, eps, number of seeds or jobs."""
    epsilons = tuple(sorted({_check_perturbation(kind, eps) for kind in kinds for eps in epsilons}))
    for name, value in (("seeds", seeds), ("jobs", jobs)):
        require_integer(name, value)
        if value < 1:
            raise SettingsError(f"{name} must be at least 1, got {value}")
    return epsilons


def power_study(conditionals: Sequence[str] | None = None, kinds: Sequence[str] = KINDS,
                epsilons: Sequence[float] = DEFAULT_EPSILONS, seeds: int = DEFAULT_SEEDS, *,
                data: GroupedData | None = None, priors: Priors | None = None, quick: bool = True,
                settings: suite.Settings | None = None, checks: Sequence[str] = DEFAULT_CHECKS,
                scheme: str = "textbook",
                out: Path | str | None = None, jobs: int = 1,
                progress: bool = False) -> pd.DataFrame:
    """Run the suite on every perturbed conditional at several seeds: a row per run and check.

    Parameters
    ----------
    conditionals : sequence of str, optional
        The conditionals perturbed, by name ('theta', 'mu', 'lam', 'omega' in the textbook
        sweep; 'theta', 'omega', 'lam_collapsed', 'mu_collapsed' in the blocked one); every
        conditional the scheme draws from by default.
    kinds : sequence of str, default ('shift', 'spread')
        The kinds of perturbation (`perturbed_conditional`); 'kernel' applies to omega only
        and is left out for the other conditionals.
    epsilons : sequence of float, default (0.01, 0.03, 0.05)
        The sizes, each >= 0.
    seeds : int, default 4
        The suite runs at seeds 0 .. seeds - 1 for every perturbation (the same seeds for every
        one, so the rates of two perturbations differ by their errors, not by the streams).
    data : GroupedData, optional
        The data; hsb by default.
    priors : Priors, optional
        The priors; `Priors.weakly_informative(data)` by default.
    quick : bool, default True
        The suite's `QUICK` settings, or else `FULL`.
    settings : suite.Settings, optional
        Other settings of the suite in place of `QUICK` or `FULL`: what more draws would buy.
    checks : sequence of str, default DEFAULT_CHECKS
        The checks run (a subset of `suite.SAMPLER_CHECKS`).
    scheme : str, default 'textbook'
        The Gibbs sweep the checks run.
    out : path, optional
        A folder where each run is saved as it finishes; a re-run with the same settings loads
        them and runs the rest (other settings in the folder are refused).
    jobs : int, default 1
        Runs in this many forked processes (the results do not depend on it).
    progress : bool, default False
        A progress bar over the runs.

    Returns
    -------
    pandas.DataFrame
        Columns conditional, kind, eps, seed, check, value (the check's statistic, for the
        statistical checks its smallest Holm-adjusted p-value), caught (the check failed).

    Raises
    ------
    SettingsError
        For an unknown conditional, kind, check or scheme, a conditional the scheme does not
        draw from, a negative eps, or a number of seeds or jobs below 1.
    StoreMismatchError
        If `out` holds a study with other settings.
    """
    if scheme not in gibbs.SCHEME_FIELDS:
        raise SettingsError(f"unknown scheme {scheme!r}; schemes are "
                            f"{', '.join(gibbs.SCHEME_FIELDS)}")
    drawn = [field.removeprefix("draw_") for field in gibbs.SCHEME_FIELDS[scheme]]
    conditionals = tuple(conditionals) if conditionals is not None else tuple(drawn)
    for conditional in conditionals:
        if _field(conditional).removeprefix("draw_") not in drawn:
            raise SettingsError(f"the {scheme} sweep does not draw from {conditional!r}; it "
                                f"draws {', '.join(drawn)}")
    if KERNEL in kinds and "omega" not in conditionals:
        raise SettingsError(f"the {KERNEL!r} perturbation needs omega among the conditionals")
    epsilons = _grid_arguments(kinds, epsilons, seeds, jobs)
    checks = tuple(checks)
    unknown = sorted(set(checks) - set(suite.SAMPLER_CHECKS))
    if unknown or not checks:
        raise SettingsError(f"unknown check {unknown[0] if unknown else ''!r}; checks are "
                            f"{', '.join(suite.SAMPLER_CHECKS)}")
    data = data if data is not None else load_dataset()
    priors = priors or Priors.weakly_informative(data)
    settings = settings or (suite.QUICK if quick else suite.FULL)
    references = suite.References(data, priors, settings, seed=0)
    study = _Study(references, conditionals, tuple(kinds), epsilons, range(seeds), checks, scheme)
    store = None
    if out is not None:
        store = UnitStore(out, {"study": "power", "data": data.name, "data_key": fingerprint(data_parts(data))[0],
                                "priors": priors.as_dict(), "settings": dataclasses.asdict(settings),
                                "scheme": scheme,
                                "checks": list(checks), "grid": [list(g) for g in study.grid]})
    return _run_study(study, store, jobs, progress)


# -- any model: its conjugate blocks, perturbed ----------------------------------------------------

def _flat_moments(conditional: ConjugateConditional, parameters: dict) -> tuple[np.ndarray, ...]:
    """The mean and SD of each element of the block, (B, elements) each, in the order of
    `conditional.names` flattened: normal mu, sigma; multivariate normal mu and the square
    root of cov's diagonal; gamma a/b, sqrt(a)/b; inverse gamma b/(a - 1), that over
    sqrt(a - 2) (its mean where a <= 2: no SD); beta a/(a + b), sqrt(ab/(a + b + 1))/(a + b).
    """
    family = conditional.family
    if family == "normal":
        mean, sd = parameters["mu"], parameters["sigma"]
    elif family == "mvnormal":
        mean = parameters["mu"]
        sd = np.sqrt(np.diagonal(parameters["cov"], axis1=-2, axis2=-1))
    elif family == "gamma":
        a, b = parameters["alpha"], parameters["beta"]
        mean, sd = a / b, np.sqrt(a) / b
    elif family == "inversegamma":
        a, b = parameters["alpha"], parameters["beta"]
        mean = b / np.maximum(a - 1, 1e-300)
        sd = np.where(a > 2, mean / np.sqrt(np.maximum(a - 2, 1e-300)), mean)
    else:  # beta
        a, b = parameters["alpha"], parameters["beta"]
        mean, sd = a / (a + b), np.sqrt(a * b / (a + b + 1)) / (a + b)
    return mean.reshape(len(mean), -1), sd.reshape(len(sd), -1)


PERTURBED_FAMILIES = ("normal", "mvnormal", "gamma", "inversegamma", "beta")
_POSITIVE_FAMILIES = ("gamma", "inversegamma")


def perturbed_block(draw: Callable, conditional: ConjugateConditional, kind: str, eps: float, *,
                    key: str | tuple[str, ...] | None = None, batched: bool = False) -> Callable:
    """A model's draw of a conjugate block, perturbed by eps in units of its exact conditional
    (`hiercheck.conjugate_conditionals`), element by element on the natural scale:

        shift     x' = x + eps sd(x | rest)
        spread    x' = x + eps (x - E(x | rest))      (a covariance times (1 + eps)^2)

    A spread draw of a positive variable at or below 0 becomes POSITIVE_FLOOR times its mean,
    one of a beta variable outside (0, 1) is clipped just inside.

    Parameters
    ----------
    draw : callable
        draw(rng, state, data), as `check_gibbs` calls it: a tuple block's returns a tuple in
        the order of `key` (or a dict by name).
    conditional : ConjugateConditional
        The block's exact conditional, in one of `PERTURBED_FAMILIES`.
    kind : str
        'shift' or 'spread'.
    eps : float
        The size of the error, >= 0 (0 returns the draw itself).
    key : str or tuple of str, optional
        The block's key in the mapping `draw` belongs to; `conditional.key` by default.
    batched : bool, default False
        Whether `draw` takes a batch of states (`check_gibbs(batched=True)`).

    Returns
    -------
    callable
        The perturbed draw, with `draw`'s signature, named after the perturbation.

    Raises
    ------
    SettingsError
        For a kind other than shift or spread, a bad eps, or a family outside
        `PERTURBED_FAMILIES`.
    """
    eps = _check_perturbation(kind, eps)
    _require_model_kind(kind)
    if conditional.family not in PERTURBED_FAMILIES:
        raise SettingsError(f"the block {_label(conditional.key)} is {conditional.family}; "
                            f"perturbed blocks are {', '.join(PERTURBED_FAMILIES)}")
    key = conditional.key if key is None else key
    order = (key,) if isinstance(key, str) else tuple(key)

    def perturbed(rng, state, data):
        returned = draw(rng, state, data)
        values = returned if isinstance(returned, dict) else dict(
            zip(order, (returned,) if len(order) == 1 else returned))
        parameters = conditional.parameters(state, data)
        if not batched:
            parameters = {name: np.asarray(value)[None] for name, value in parameters.items()}
        mean, sd = _flat_moments(conditional, parameters)
        arrays = [np.asarray(values[name], dtype=float) for name in conditional.names]
        shapes = [array.shape[1:] if batched else array.shape for array in arrays]
        x = np.concatenate([array.reshape(len(mean), -1) for array in arrays], axis=1)
        moved = x + eps * sd if kind == "shift" else x + eps * (x - mean)
        if conditional.family in _POSITIVE_FAMILIES:
            moved = np.where(moved > 0, moved, POSITIVE_FLOOR * mean)
        elif conditional.family == "beta":
            moved = np.clip(moved, 1e-12, 1 - 1e-12)
        parts = np.split(moved, np.cumsum([math.prod(shape) for shape in shapes])[:-1], axis=1)
        out = {name: part.reshape((len(mean), *shape) if batched else shape)
               for name, part, shape in zip(conditional.names, parts, shapes)}
        if isinstance(returned, dict):
            return out
        return out[order[0]] if len(order) == 1 else tuple(out[name] for name in order)

    perturbed.__name__ = perturbed.__qualname__ = f"{_label(key)}_{kind}_{eps:g}"
    return perturbed


def _require_model_kind(kind: str) -> None:
    if kind not in KINDS:
        raise SettingsError(f"a model's block is perturbed by {' or '.join(KINDS)}, not {kind!r}")


def _label(key: str | tuple[str, ...]) -> str:
    """A block's key as the study names it: 'theta', '(mu, beta)'."""
    return key if isinstance(key, str) else f"({', '.join(key)})"


class _ModelStudy:
    """The grid of a built-in model's power study and the references its runs share."""

    def __init__(self, name: str, settings, blocks, kinds, epsilons, seeds, checks):
        from .builtin_models import get_builtin
        from .conjugate import conjugate_conditionals
        from .generic import ModelReferences

        self.builtin = get_builtin(name)
        model = self.builtin.build_model(self.builtin.load())
        self.references = ModelReferences(model, settings, 0, name)
        self.own = self.builtin.conditionals()
        exact = conjugate_conditionals(model)
        keys = {_label(key): key for key in self.own}
        perturbable = {label: key for label, key in keys.items()
                       if frozenset(_names(key)) in {frozenset(c.names) for c in exact.values()}
                       and _exact_of(exact, key).family in PERTURBED_FAMILIES}
        blocks = tuple(blocks) if blocks is not None else tuple(perturbable)
        for block in blocks:
            if block not in perturbable:
                raise SettingsError(
                    f"the model {name} has no block {block!r} that can be perturbed; its "
                    f"conjugate blocks in {', '.join(PERTURBED_FAMILIES)} are "
                    f"{', '.join(perturbable) or 'none'}")
        self.blocks = {block: (perturbable[block], _exact_of(exact, perturbable[block]))
                       for block in blocks}
        self.checks = tuple(checks)
        self.grid = list(itertools.product(blocks, kinds, epsilons, seeds))

    def run(self, unit: int) -> dict[str, np.ndarray]:
        """check_gibbs on one grid point: each check's value and whether it passed."""
        from .generic import check_gibbs

        block, kind, eps, seed = self.grid[unit]
        key, conditional = self.blocks[block]
        draws = self.own | {key: perturbed_block(self.own[key], conditional, kind, eps, key=key,
                                                 batched=self.builtin.batched)}
        verdict = check_gibbs(self.references.model, draws, references=self.references,
                              seed=seed, checks=self.checks, batched=self.builtin.batched)
        table = verdict.table.set_index("check").loc[list(self.checks)]
        return {"value": table["value"].to_numpy(float),
                "passed": (table["status"] != "failed").to_numpy(bool)}

    def prepare_for_fork(self, units: list[int]) -> None:
        """What every run reads (NUTS's draws, the states, the recognized conditionals, the
        compiled functions), computed here so that no forked worker computes it.
        """
        self.references.nuts, self.references.states, self.references.conjugate  # noqa: B018
        self.references.fingerprint  # noqa: B018


def _names(key: str | tuple[str, ...]) -> tuple[str, ...]:
    return (key,) if isinstance(key, str) else tuple(key)


def _exact_of(exact: dict, key) -> ConjugateConditional:
    """The recognized conditional of the block `key`, whatever the order of its names."""
    return next(c for c in exact.values() if frozenset(c.names) == frozenset(_names(key)))


def model_power_study(name: str, blocks: Sequence[str] | None = None,
                      kinds: Sequence[str] = KINDS, epsilons: Sequence[float] = DEFAULT_EPSILONS,
                      seeds: int = DEFAULT_SEEDS, *, quick: bool = True,
                      checks: Sequence[str] = ("consistency",), out: Path | str | None = None,
                      jobs: int = 1, progress: bool = False) -> pd.DataFrame:
    """`power_study` for a built-in model: `check_gibbs` on the model's own sweep with one block
    perturbed (`perturbed_block`), for every block, kind, eps and seed.

    Parameters
    ----------
    name : str
        A built-in model (`hiercheck.validation.builtin_models.BUILTIN_MODELS`).
    blocks : sequence of str, optional
        The blocks perturbed, by label ('theta', '(mu, beta)'); by default every block of the
        model's sweep whose conditional is recognized in one of `PERTURBED_FAMILIES`.
    kinds : sequence of str, default ('shift', 'spread')
        The kinds of perturbation.
    epsilons : sequence of float, default (0.01, 0.03, 0.05)
        The sizes, each >= 0.
    seeds : int, default 4
        check_gibbs runs at seeds 0 .. seeds - 1 for every perturbation, with the references
        (NUTS's draws, the consistency states) of seed 0.
    quick : bool, default True
        `GENERIC_QUICK` settings, or else `GENERIC_FULL`.
    checks : sequence of str, default ('consistency',)
        The checks run (a subset of `GENERIC_CHECKS`); a run counts as caught by a check whose
        status is "failed".
    out : path, optional
        A folder where each run is saved as it finishes; a re-run resumes.
    jobs : int, default 1
        Runs in this many forked processes (the results do not depend on it).
    progress : bool, default False
        A progress bar over the runs.

    Returns
    -------
    pandas.DataFrame
        As `power_study`'s; the column conditional holds the block's label.

    Raises
    ------
    SettingsError
        For an unknown model, block, kind or check, a negative eps, or a number of seeds or jobs
        below 1.
    StoreMismatchError
        If `out` holds a study with other settings.
    """
    from .generic import GENERIC_CHECKS, GENERIC_FULL, GENERIC_QUICK

    epsilons = _grid_arguments(kinds, epsilons, seeds, jobs)
    for kind in kinds:
        _require_model_kind(kind)
    checks = tuple(checks)
    unknown = sorted(set(checks) - set(GENERIC_CHECKS))
    if unknown or not checks:
        raise SettingsError(f"unknown check {unknown[0] if unknown else ''!r}; checks are "
                            f"{', '.join(GENERIC_CHECKS)}")
    settings = GENERIC_QUICK if quick else GENERIC_FULL
    study = _ModelStudy(name, settings, blocks, tuple(kinds), epsilons, range(seeds), checks)
    store = None if out is None else UnitStore(out, {
        "study": "model power", "model": name, "settings": dataclasses.asdict(settings),
        "checks": list(checks), "grid": [list(g) for g in study.grid]})
    return _run_study(study, store, jobs, progress)


# -- what the runs say ----------------------------------------------------------------------------

def clopper_pearson_lower(caught: int, runs: int, confidence: float = 0.95) -> float:
    """The one-sided Clopper-Pearson lower confidence bound of a binomial rate.

    The largest p with P(Binomial(runs, p) >= caught) <= 1 - confidence, i.e. the
    (1 - confidence) quantile of Beta(caught, runs - caught + 1); 0 when nothing was caught.

    Parameters
    ----------
    caught : int
        Runs that caught the error.
    runs : int
        Runs, at least 1.
    confidence : float, default 0.95
        The bound's confidence.

    Returns
    -------
    float
        The lower bound.
    """
    if caught == 0:
        return 0.0
    return float(scipy_stats.beta.ppf(1 - confidence, caught, runs - caught + 1))


def detection_rates(runs: pd.DataFrame) -> pd.DataFrame:
    """Per conditional, kind, eps and check, how often the check caught the perturbation; the
    check SUITE ('suite') counts a run caught when any of its checks caught it.

    Parameters
    ----------
    runs : pandas.DataFrame
        The result of `power_study`.

    Returns
    -------
    pandas.DataFrame
        Columns conditional, kind, eps, check, seeds, caught, rate, lower (the one-sided 95%
        Clopper-Pearson lower bound of the rate).
    """
    keys = ["conditional", "kind", "eps", "seed"]
    overall = runs.groupby(keys, sort=False, as_index=False)["caught"].any().assign(check=SUITE)
    both = pd.concat([runs[keys + ["check", "caught"]], overall], ignore_index=True)
    rates = (both.groupby(["conditional", "kind", "eps", "check"], sort=False)["caught"]
             .agg(seeds="size", caught="sum").reset_index())
    rates["caught"] = rates["caught"].astype(int)
    rates["rate"] = rates["caught"] / rates["seeds"]
    rates["lower"] = [clopper_pearson_lower(c, n) for c, n in zip(rates["caught"], rates["seeds"])]
    return rates


def _smallest(eps: pd.Series, met: pd.Series) -> float:
    """The smallest eps from which on every larger eps of the grid meets the level; NaN if the
    largest does not.
    """
    order = np.argsort(eps.to_numpy())
    values, ok = eps.to_numpy()[order], met.to_numpy()[order]
    if not ok[-1]:
        return float("nan")
    failing = np.flatnonzero(~ok)
    return float(values[failing[-1] + 1] if failing.size else values[0])


def smallest_detected(rates: pd.DataFrame, level: float = LEVEL) -> pd.DataFrame:
    """Per conditional, kind and check, the smallest eps of the grid caught with probability at
    least `level`: at that eps and at every larger one of the grid, the observed rate (column
    `eps_rate`) or the Clopper-Pearson lower bound (`eps_bound`, the claim at 95% confidence)
    is at least `level`. NaN where even the largest eps does not reach it.

    Parameters
    ----------
    rates : pandas.DataFrame
        The result of `detection_rates`.
    level : float, default 0.95
        The detection probability asked for.

    Returns
    -------
    pandas.DataFrame
        Columns conditional, kind, check, seeds (the fewest at any eps), eps_rate, eps_bound.
    """
    rows = []
    for (conditional, kind, check), group in rates.groupby(["conditional", "kind", "check"],
                                                           sort=False):
        rows.append({"conditional": conditional, "kind": kind, "check": check,
                     "seeds": int(group["seeds"].min()),
                     "eps_rate": _smallest(group["eps"], group["rate"] >= level),
                     "eps_bound": _smallest(group["eps"], group["lower"] >= level)})
    return pd.DataFrame(rows)


def power_markdown(rates: pd.DataFrame, level: float = LEVEL) -> str:
    """The study as two GitHub tables: each check's catches at each eps (caught of seeds), and
    per conditional and kind the smallest eps the suite catches with rate >= `level`.

    Parameters
    ----------
    rates : pandas.DataFrame
        The result of `detection_rates`.
    level : float, default 0.95
        The detection probability of the second table.

    Returns
    -------
    str
        The Markdown tables.
    """
    checks = [c for c in rates["check"].drop_duplicates() if c != SUITE] + [SUITE]
    cells = rates.assign(cell=[f"{c}/{n}" for c, n in zip(rates["caught"], rates["seeds"])])
    wide = cells.pivot_table(index=["conditional", "kind", "eps"], columns="check",
                             values="cell", aggfunc="first", sort=False)
    suite_rows = rates[rates["check"] == SUITE].set_index(["conditional", "kind", "eps"])
    columns = ["conditional", "kind", "eps", *checks, "suite's lower 95% bound"]
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for (conditional, kind, eps), row in wide.iterrows():
        lower = suite_rows.loc[(conditional, kind, eps), "lower"]
        lines.append("| " + " | ".join([conditional, kind, f"{eps:g}",
                                        *(row[c] for c in checks), f"{lower:.2f}"]) + " |")
    smallest = smallest_detected(rates, level)
    smallest = smallest[smallest["check"] == SUITE]
    lines += ["", f"| conditional | kind | seeds | smallest eps, suite's rate >= {level:g} "
                  f"| smallest eps, its lower 95% bound >= {level:g} |", "| --- | --- | --- | --- | --- |"]
    for row in smallest.to_dict(orient="records"):
        shown = [("not reached" if math.isnan(row[k]) else f"{row[k]:g}")
                 for k in ("eps_rate", "eps_bound")]
        lines.append(f"| {row['conditional']} | {row['kind']} | {row['seeds']} | "
                     + " | ".join(shown) + " |")
    return "\n".join(lines)
