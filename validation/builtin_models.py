"""Built-in models of the "any model" harness: `hiercheck validate --model NAME`.

Each entry of `BUILTIN_MODELS` is a `BuiltinModel(load, build_model, conditionals, mutants,
sample, batched, flagship)`:

    load()               the model's data
    build_model(data)    the PyMC model (priors, likelihood, observed data)
    conditionals()       the hand-derived sweep, {name or tuple of names: draw(rng, state, data)}
    mutants()            {mutant name: such a mapping with one slip in it}
    sample(data, ...)    the model's Gibbs engine (InferenceData), for `hiercheck fit --model` and
                         `hiercheck report --model`: the course models'
                         `hiercheck.samplers.NAME.sample`, the flagship's `gibbs.sample` under the
                         entry's priors
    batched              whether the sweep's functions take a batch of states at once
                         (`check_gibbs(batched=True)`)
    flagship             whether it is the flagship hierarchy, whose report is
                         `hiercheck report --dataset NAME` (`models_with_engine` leaves it out)

so adding a model is one line; `BuiltinModel.sample_nuts` samples any of them with PyMC's NUTS
(`hiercheck fit --model NAME --engine nuts`). The course's next problems, `bloodpressure` and
`cheese`, keep their PyMC models in `hiercheck.models` and their hand-derived sweeps in
`hiercheck.samplers` (docs/derivation.md, sections 7 and 8). The flagship hierarchy comes twice:
`mathtest` on the math-test data under the weakly informative priors, and `hierarchy-small` on
eight simulated schools of 1 to 12 students, the flagship's small design, under its informative
priors (where slips in the prior's constants show). Both run the package's own conditionals
(`hiercheck.samplers.gibbs`) and the mutants of `hiercheck.validation.mutants.CATALOGUE`, each
wrapped into the generic signature, and the flagship's Gibbs sampler as their engine. `student`
is the math-test hierarchy as students write it (`hiercheck.samplers.student`: sigma^2 and
tau^2, the course's improper priors, one-state functions over the raw scores), with the slips
of their ports as mutants and its own sweep as its engine.
"""

from __future__ import annotations

__all__ = ["BUILTIN_MODELS", "BuiltinModel", "course_model", "detection_matrix", "flagship_model",
           "get_builtin", "models_with_engine", "student_entry", "sweep_to_check",
           "wrap_flagship"]

import importlib
import time
import warnings
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd

from hiercheck.errors import NutsWarning, SettingsError, UserFunctionError
from hiercheck.models import GroupedData, Priors, school_stats
from hiercheck.models.data import group_moments
from hiercheck.models.engine import check_run_size

if TYPE_CHECKING:
    import arviz as az

    from hiercheck.samplers.gibbs import Conditionals


class BuiltinModel(NamedTuple):
    """A model of `hiercheck validate --model NAME` (and `fit`, `mutants`, `report --model`):
    five functions, each importing what it needs when called, and two flags.

    Attributes
    ----------
    load : callable
        load() -> the model's data.
    build_model : callable
        build_model(data) -> the PyMC model (priors, likelihood, observed data).
    conditionals : callable
        conditionals() -> the hand-derived sweep, {name or tuple of names: draw(rng, state,
        data)}, in sweep order.
    mutants : callable
        mutants() -> {mutant name: such a mapping with one slip in it}.
    sample : callable or None
        sample(data, *, draws, chains, seed) -> arviz.InferenceData of the model's Gibbs
        engine under the priors of `build_model(data)`, its free variables named as in the
        PyMC model (`hiercheck fit --model NAME`); None when the model has no such engine.
        Every entry of `BUILTIN_MODELS` has one.
    batched : bool
        Whether the functions of the sweep and of the mutants take a batch of states at once.
    flagship : bool
        Whether the model is the flagship hierarchy (`flagship_model`): its engine is the
        flagship's `hiercheck.samplers.gibbs.sample`, and its report is
        `hiercheck report --dataset`, which shows every engine of the flagship.
    """

    load: Callable[[], object]
    build_model: Callable[[object], object]
    conditionals: Callable[[], Mapping]
    mutants: Callable[[], Mapping[str, Mapping]]
    sample: Callable[..., object] | None = None
    batched: bool = False
    flagship: bool = False

    def sample_nuts(self, data: object, *, draws: int, chains: int, seed: int,
                    tune: int = 1000) -> az.InferenceData:
        """PyMC's NUTS on `build_model(data)` as an engine, as check_gibbs runs it
        (`CompiledModel.sample_nuts`): every free variable, with the PyMC model's dims.

        Parameters
        ----------
        data : object
            The model's data (`load()`).
        draws : int
            Draws kept per chain.
        chains : int
            Chains, on at most two cores.
        seed : int
            `pymc.sample`'s random_seed.
        tune : int, default 1000
            Tuning steps per chain, discarded.

        Returns
        -------
        arviz.InferenceData
            posterior: the free variables, dims (chain, draw, *the model's own); attrs: engine
            "nuts-pymc", settings (tune, seed, the divergent transitions), sampling_time, data
            (the priors are the PyMC model's, none recorded).

        Raises
        ------
        SettingsError
            If `draws` or `chains` is not an integer >= 1.

        Warns
        -----
        NutsWarning
            If any transition diverged.
        """
        from hiercheck.samplers.sweeps import to_inference_data

        from .pymc_model import CompiledModel

        check_run_size(draws, chains)
        model = self.build_model(data)
        started = time.perf_counter()
        draws_by_name, divergences = CompiledModel(model).sample_nuts(
            draws=draws, tune=tune, chains=chains, seed=seed)
        elapsed = time.perf_counter() - started
        if divergences:
            warnings.warn(f"NUTS on {data.name}: {divergences} divergent transitions",
                          NutsWarning, stacklevel=2)
        dims = {name: list(model.named_vars_to_dims.get(name, ())) for name in draws_by_name}
        coords = {dim: model.coords[dim] for names in dims.values() for dim in names}
        return to_inference_data(draws_by_name, coords=coords, dims=dims, constant_data={},
                                 engine="nuts-pymc", settings={"tune": tune, "seed": seed,
                                                               "divergences": divergences},
                                 priors={}, data_name=data.name, sampling_time=elapsed)


def wrap_flagship(conditionals: Conditionals, priors: Priors) -> dict[str, Callable]:
    """The flagship's four conditionals, `draw_x(rng, state, stats, priors)`, as generic draw
    functions of the reference model (`hiercheck.models.reference.build_model`), in the order of
    the textbook sweep. Each computes the school statistics n_i, ybar_i, ss_i from the data dict
    ('scores', 'school_of_student'), once per data set.

    The functions take one state or a batch (`check_gibbs(batched=True)`), as the flagship's
    conditionals do: with scores (B, N), the statistics ybar_i and ss_i are (B, m), one row per
    state (a single row when the scores are one row broadcast over the batch). A data set is
    told from the last one by the identity of its 'scores' array, which the four functions
    share; the schools are 0..max(school_of_student).

    Parameters
    ----------
    conditionals : hiercheck.samplers.gibbs.Conditionals
        The flagship's conditionals (the package's own or a mutant's); draw_theta, draw_mu,
        draw_lam and draw_omega are wrapped.
    priors : Priors
        The priors every wrapped draw is given (not read from the data dict).

    Returns
    -------
    dict[str, callable]
        {"theta": ..., "mu": ..., "lam": ..., "omega": ...}, each draw(rng, state, data).
    """
    from hiercheck.samplers import gibbs

    cache = {}

    def stats_of(data):
        scores = data["scores"]
        if cache.get("scores") is not scores:  # a new data set (SBC, Geweke): recompute
            cache.update(scores=scores, stats=_school_stats_of_rows(
                np.asarray(data["school_of_student"]), np.asarray(scores, dtype=float)))
        return cache["stats"]

    def generic(draw):
        def draw_generic(rng, state, data):
            flagship_state = gibbs.GibbsState(theta=state["theta"], mu=state["mu"],
                                              lam=state["lam"], omega=state["omega"])
            return draw(rng, flagship_state, stats_of(data), priors)
        draw_generic.__name__ = draw.__name__
        draw_generic.__qualname__ = f"wrap_flagship({draw.__qualname__})"
        return draw_generic

    return {"theta": generic(conditionals.draw_theta), "mu": generic(conditionals.draw_mu),
            "lam": generic(conditionals.draw_lam), "omega": generic(conditionals.draw_omega)}


def _school_stats_of_rows(codes: np.ndarray, scores: np.ndarray):
    """The school statistics of scores (N,), or of each row of scores (B, N): ybar and ss
    (B, m). Rows that are one row broadcast (stride 0) are that row's statistics, computed once.
    """
    m = int(codes.max()) + 1
    if scores.ndim == 1 or scores.strides[0] == 0:
        return school_stats(*group_moments(codes, scores if scores.ndim == 1 else scores[0], m))
    rows = [group_moments(codes, row, m) for row in scores]
    return school_stats(rows[0][0], np.stack([row[1] for row in rows]),
                        np.stack([row[2] for row in rows]))


def flagship_model(load_data: Callable[[], GroupedData],
                   priors_of: Callable[[GroupedData], Priors]) -> BuiltinModel:
    """The flagship hierarchy as a built-in model on the data `load_data()` returns, under the
    priors `priors_of(data)`: the reference PyMC model, the package's conditionals and the Gibbs
    mutants of the catalogue, wrapped (`wrap_flagship`), and the flagship's Gibbs sampler.

    The data are loaded once (cached). `build_model(data)` and `sample(data, ...)` use the
    priors `priors_of(data)` of the data they are given; the conditionals and mutants use
    `priors_of(load())`, those of the loaded data.

    Parameters
    ----------
    load_data : callable
        load_data() -> the data.
    priors_of : callable
        priors_of(data) -> the priors.

    Returns
    -------
    BuiltinModel
        Its conditionals the textbook sweep; its mutants those of
        `hiercheck.validation.mutants.CATALOGUE` with conditionals and the "textbook" scheme;
        its sample `hiercheck.samplers.gibbs.sample` (textbook sweep); flagship True.
    """
    @lru_cache(maxsize=1)
    def load():
        return load_data()

    def build_model(data):
        from hiercheck.models.reference import build_model as reference_model

        return reference_model(data, priors_of(data))

    def conditionals():
        from hiercheck.samplers import gibbs

        return wrap_flagship(gibbs.Conditionals(), priors_of(load()))

    def mutants():
        from .mutants import CATALOGUE

        priors = priors_of(load())
        return {m.name: wrap_flagship(m.conditionals, priors)
                for m in CATALOGUE if m.conditionals is not None and m.scheme == "textbook"}

    def sample(data, **settings):
        from hiercheck.samplers import gibbs

        return gibbs.sample(data, priors_of(data), **settings)

    return BuiltinModel(load, build_model, conditionals, mutants, sample, batched=True,
                        flagship=True)


def _mathtest() -> GroupedData:
    """The math-test scores shipped in the package (hiercheck.models.packaged)."""
    from hiercheck.models import load_dataset

    return load_dataset("mathtest")


def _small_hierarchy() -> GroupedData:
    from .consistency import simulated_data
    from .suite import SMALL_DESIGN, SMALL_PRIORS

    return simulated_data(SMALL_DESIGN, SMALL_PRIORS, seed=0)


def _small_priors(data: GroupedData) -> Priors:
    from .suite import SMALL_PRIORS

    return SMALL_PRIORS


def course_model(module: str, batched: bool = False) -> BuiltinModel:
    """A model of the course's next problems: its data and PyMC model in `hiercheck.models.NAME`,
    its sweep and mutants (`MUTANTS`: name -> (description, sweep)) in `hiercheck.samplers.NAME`.
    Nothing is imported before it is used.

    Parameters
    ----------
    module : str
        NAME, the module's name in both packages ("bloodpressure", "cheese").
    batched : bool, default False
        Whether the module's functions take a batch of states at once.

    Returns
    -------
    BuiltinModel
        load and build_model from `hiercheck.models.NAME` (the data's default priors), and
        conditionals, mutants (the sweeps of `MUTANTS`) and sample from
        `hiercheck.samplers.NAME`.
    """
    def models():
        return importlib.import_module(f"hiercheck.models.{module}")

    def samplers():
        return importlib.import_module(f"hiercheck.samplers.{module}")

    return BuiltinModel(load=lambda: models().load(),
                        build_model=lambda data: models().build_model(data),
                        conditionals=lambda: samplers().conditionals(),
                        mutants=lambda: {name: sweep for name, (_, sweep)
                                         in samplers().MUTANTS.items()},
                        sample=lambda data, **settings: samplers().sample(data, **settings),
                        batched=batched)


def student_entry() -> BuiltinModel:
    """The math-test hierarchy written the student's way (`hiercheck.samplers.student`): in
    sigma^2 and tau^2 under the course's improper priors, one-state functions over the raw
    scores, and the slips found in students' ports as its mutants.

    Returns
    -------
    BuiltinModel
        On the math-test data; its engine runs the student's own sweep, so its report is
        `hiercheck report --model student` (with `--mutant`, a slip's and where it is).
    """
    def student():
        return importlib.import_module("hiercheck.samplers.student")

    return BuiltinModel(load=_mathtest, build_model=lambda data: student().student_model(data),
                        conditionals=lambda: student().student_conditionals(_mathtest()),
                        mutants=lambda: student().mutants(_mathtest()),
                        sample=lambda data, **settings: student().sample(data, **settings))


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "mathtest": flagship_model(_mathtest, Priors.weakly_informative),
    "hierarchy-small": flagship_model(_small_hierarchy, _small_priors),
    "bloodpressure": course_model("bloodpressure", batched=True),
    "cheese": course_model("cheese", batched=True),
    "student": student_entry(),
}


def get_builtin(name: str) -> BuiltinModel:
    """The built-in model called `name`, or a SettingsError listing them.

    Parameters
    ----------
    name : str
        A key of `BUILTIN_MODELS`.

    Returns
    -------
    BuiltinModel
        The model.

    Raises
    ------
    SettingsError
        If no built-in model has that name.
    """
    try:
        return BUILTIN_MODELS[name]
    except KeyError:
        raise SettingsError(f"unknown model {name!r}; built-in models are "
                            f"{', '.join(BUILTIN_MODELS)}") from None


def sweep_to_check(name: str, mutant: str | None = None) -> Mapping:
    """A built-in model's hand-derived sweep, or one of its mutants (a slip put in on purpose).

    Parameters
    ----------
    name : str
        A key of `BUILTIN_MODELS`.
    mutant : str, optional
        The name of one of the model's `mutants()`.

    Returns
    -------
    Mapping
        {name or tuple of names: draw(rng, state, data)}, in sweep order.

    Raises
    ------
    SettingsError
        If no built-in model has the name, or the model no mutant of that name.
    """
    builtin = get_builtin(name)
    if mutant is None:
        return builtin.conditionals()
    mutants = builtin.mutants()
    if mutant not in mutants:
        raise SettingsError(f"the model {name} has no mutant {mutant!r}; its mutants are "
                            f"{', '.join(mutants)}")
    return mutants[mutant]


def models_with_engine() -> tuple[str, ...]:
    """The built-in models with a Gibbs engine of their own (`hiercheck report --model NAME`).
    The flagship's entries are left out: their engine is the flagship's, and their report is
    `hiercheck report --dataset NAME`, every engine of the flagship side by side.

    Returns
    -------
    tuple of str
        Keys of `BUILTIN_MODELS` whose `sample` is not None and that are not `flagship`.
    """
    return tuple(name for name, builtin in BUILTIN_MODELS.items()
                 if builtin.sample is not None and not builtin.flagship)


def detection_matrix(name: str, *, quick: bool = True, seed: int = 0,
                     progress: bool = False) -> pd.DataFrame:
    """`check_gibbs` on a built-in model's own sweep and on each of its mutants: which check
    catches which slip. One `ModelReferences` (NUTS on the data, the consistency states) serves
    every row.

    Parameters
    ----------
    name : str
        A key of `BUILTIN_MODELS`.
    quick : bool, default True
        `GENERIC_QUICK` settings, or else `GENERIC_FULL`.
    seed : int, default 0
        The seed of the references and of every check.
    progress : bool, default False
        Whether to show a progress bar over the derivations.

    Returns
    -------
    pandas.DataFrame
        A row per derivation ("correct", then the mutants), a column per check of
        `GENERIC_CHECKS` (True where it failed the derivation, "raised" where a function of
        the derivation raised an exception during it) and `caught_by`. Each check runs on its
        own, so an exception ends only its own.

    Raises
    ------
    SettingsError
        If `name` is not a built-in model.
    """
    from tqdm.auto import tqdm

    from .generic import GENERIC_CHECKS, GENERIC_FULL, GENERIC_QUICK, ModelReferences

    builtin = get_builtin(name)
    model = builtin.build_model(builtin.load())
    references = ModelReferences(model, GENERIC_QUICK if quick else GENERIC_FULL, seed, name)
    rows = []
    subjects = {"correct": builtin.conditionals(), **builtin.mutants()}
    for subject, conditionals in tqdm(subjects.items(), desc="derivations", disable=not progress):
        caught = {check: _caught(model, conditionals, references, seed, check, builtin.batched)
                  for check in GENERIC_CHECKS}
        rows.append({"derivation": subject, **caught, "caught_by": sum(
            cell is True or cell == "raised" for cell in caught.values())})
    return pd.DataFrame(rows)


def _caught(model, conditionals, references, seed: int, check: str, batched: bool
            ) -> bool | str:
    """Whether `check` fails the derivation, "raised" when one of its functions raised an
    exception (a wrong precision that is not positive definite, say) during the check, or
    "n/a" when the check does not apply to the model (an improper prior: no derivation of it
    can be judged).
    """
    from .generic import check_gibbs

    try:
        [outcome] = check_gibbs(model, conditionals, references=references, seed=seed,
                                checks=(check,), batched=batched).outcomes
    except UserFunctionError:
        return "raised"
    if outcome.statistic.startswith("not applicable"):
        return "n/a"
    return not outcome.passed
