"""Simulation-based calibration (SBC).

For a design (the school sizes n) and proper priors, each replication r

    draws (theta, mu, lam, omega) from the prior and scores y given them,
    fits y with an engine, keeping L (thinned) posterior draws,
    records rank_r(q) = #{draws with q < q_true} for every test quantity q.

If the engine samples the posterior, each rank is uniform on {0..L}. The test quantities are mu,
lam, omega, sigma, tau, theta_i of every school (of up to TRACKED_SCHOOLS spread over the sizes on
a larger design), and two that depend on the data too: the log-likelihood log p(y | theta, lam)
and the log joint density log p(y, theta, mu, lam, omega).

The Gibbs engine, either sweep, runs its replications in vectorized batches (`run_gibbs_sbc`: the
chains of a block of GIBBS_BLOCK replications are one state, run by `gibbs.run`, so the compiled
kernel is what is calibrated when the conditionals are the package's own). Any engine runs
through a `concurrent.futures.Executor` (`run_engine_sbc`), such as a process pool or dask's
`Client.get_executor()`. Random streams are spawned per block of replications (Gibbs; the block
size is a constant, so it is not a setting the ranks could depend on) or per replication
(executor), so the ranks depend on the seed alone, not on how many workers ran them or in which
order they finished; a run of R replications begins with the ranks of any shorter run that ends on
a block boundary. Finished units are saved as they come (`hiercheck.validation.store`), and a re-run resumes.

Each uniformity test holds its false-alarm rate; `SBCResult.table` Holm-adjusts the two tests of
every quantity together at the result's `alpha`, so a calibrated engine fails `passed` with
probability at most alpha (measured in benchmarks/false_alarms.py).
"""

from __future__ import annotations

__all__ = [
    "GIBBS_BLOCK", "QUICK_DESIGN", "QUICK_PRIORS", "QUICK_SBC", "run_engine_sbc",
    "run_gibbs_sbc", "sbc_quantities", "SBCResult",
]

import functools
from functools import cached_property
import math
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from tqdm.auto import tqdm

from hiercheck._typing import SeedLike
from hiercheck.errors import require_integer
from hiercheck.models import GroupedData, Priors, SchoolStats
from hiercheck.models.data import schools_across_sizes
from hiercheck.models.simulate import Parameters, draw_parameters, draw_school_stats, draw_scores
from hiercheck.samplers import gibbs

from .diagnostics import mixing_table
from .statistics import holm_adjust
from .quantities import log_joint_density, log_likelihood
from .ranks import plot_ranks, uniformity
from .store import UnitStore

# The quick settings the suite uses: eight schools of unequal sizes, 1 to 12 students (43 in all),
# so that a slip which confuses one school's n_i with another's shows, and proper priors under
# which the data inform every parameter without swamping the prior (sigma about 1.6, tau about
# 0.8, mu about 0 +- 1; docs/validation.md measures how far each posterior contracts). 1000
# replications take about half a second (the compiled kernel) and catch every mutant of
# hiercheck.validation.mutants but the subtle ones, which Geweke's test catches
# (docs/validation.md).
GIBBS_BLOCK = 50  # replications per random stream and per saved unit, fixed so ranks never depend on it
QUICK_DESIGN = np.array([1, 2, 3, 4, 5, 7, 9, 12])
QUICK_PRIORS = Priors(a=3, b=6, c=3, d=2, nu=0, phi=1)
QUICK_SBC = {"replications": 1000, "draws": 100, "thin": 10, "tune": 200}
# The rows of the summary figure: a row per quantity of a run would make a figure of dozens of rows
# that takes seconds to draw and that nobody reads; the check's CSV holds every quantity's tests.
SUMMARY_ROWS = 6
TRACKED_SCHOOLS = 8  # every school's theta_i ranked up to this many schools, else this many spread



def tracked_schools(n: np.ndarray) -> np.ndarray:
    """The schools whose theta_i is ranked: every school of a small design, and
    TRACKED_SCHOOLS spread over the sizes (smallest and largest included) of a larger one.
    """
    return schools_across_sizes(np.asarray(n), TRACKED_SCHOOLS)


def sbc_quantities(params: Parameters, stats: SchoolStats, schools: np.ndarray,
                   priors: Priors) -> dict[str, np.ndarray]:
    """Every SBC test quantity of a draw (or a batch of draws) of the parameters: mu, lam, omega,
    sigma, tau, theta_i of `schools`, and two that depend on the data too, the log-likelihood
    and the log joint density.

    Parameters
    ----------
    params : Parameters
        (theta, mu, lam, omega), with any leading batch shape (theta's last axis the schools).
    stats : SchoolStats
        The data's sufficient statistics, batched like `params`.
    schools : numpy.ndarray
        The indices of the schools whose theta_i are test quantities.
    priors : Priors
        The priors, for the log joint density.

    Returns
    -------
    dict of str to numpy.ndarray
        Each quantity's values, by name ("mu", ..., "theta[i]", "loglik", "log joint").
    """
    theta, mu, lam, omega = (np.asarray(x, dtype=float) for x in
                             (params.theta, params.mu, params.lam, params.omega))
    quantities = {"mu": mu, "lam": lam, "omega": omega, "sigma": lam ** -0.5, "tau": omega ** -0.5}
    for i in schools:
        quantities[f"theta[{i}]"] = theta[..., i]
    quantities["loglik"] = log_likelihood(stats, theta, lam)
    quantities["log joint"] = log_joint_density(params, stats, priors)
    return quantities


DEFAULT_ALPHA = 0.01  # family-wise, of one SBC run on its own (the suite passes its own)


@dataclass(frozen=True, eq=False)
class SBCResult:
    """Ranks of every test quantity over the replications, and their uniformity tests at the
    family-wise false-alarm rate `alpha`.

    Attributes
    ----------
    ranks : dict of str to numpy.ndarray
        Each test quantity's rank of the truth, one per replication, in {0..draws}.
    draws : int
        The number of ranked draws per replication, L.
    engine : str
        The engine's name.
    settings : dict
        The run's settings, as saved with it.
    alpha : float
        The family-wise false-alarm rate of the uniformity tests.
    lowest_ess : numpy.ndarray or None
        Per replication of a thinned engine run (`run_engine_sbc`), the lowest bulk or tail
        ESS of its run; None otherwise.
    """

    ranks: dict[str, np.ndarray]
    draws: int
    engine: str
    settings: dict = field(default_factory=dict)
    alpha: float = DEFAULT_ALPHA
    lowest_ess: np.ndarray | None = None  # per replication of a thinned engine run (run_engine_sbc)

    @property
    def under_thinned(self) -> int | None:
        """How many replications' runs had a lowest ESS below the number of ranked draws: their
        kept draws are not nearly independent (None when the run was not thinned).
        """
        return None if self.lowest_ess is None else int(np.sum(~(self.lowest_ess >= self.draws)))

    @property
    def replications(self) -> int:
        """The number of replications."""
        return next(iter(self.ranks.values())).size

    @cached_property
    def table(self) -> pd.DataFrame:
        """A row per quantity: chi-square and ECDF p-values, Holm-adjusted over all the tests
        of this run so that the family-wise false-alarm rate is `alpha`.
        """
        alpha = self.alpha
        rows = []
        for name, ranks in self.ranks.items():
            result = uniformity(ranks, self.draws)
            rows.append({"quantity": name, "chi2": result.chi2, "chi2_p": result.chi2_p,
                         "ecdf_p": result.ecdf_p})
        table = pd.DataFrame(rows)
        adjusted = holm_adjust(np.r_[table.chi2_p, table.ecdf_p])
        table["chi2_p_holm"], table["ecdf_p_holm"] = np.split(adjusted, 2)
        table["uniform"] = (table.chi2_p_holm > alpha) & (table.ecdf_p_holm > alpha)
        return table

    def most_suspect(self, count: int) -> list[str]:
        """The `count` quantities whose ranks look least uniform: the smallest p-value of
        either test first (before Holm's adjustment, which ties every clear pass at 1).

        Parameters
        ----------
        count : int
            How many quantities at most.

        Returns
        -------
        list of str
            Their names, the most suspect first.
        """
        smallest = self.table[["chi2_p", "ecdf_p"]].min(axis=1)
        return list(self.table.quantity[smallest.sort_values(kind="stable").index][:count])

    def summary_figure(self, table_name: str) -> np.ndarray:
        """`plot` of the SUMMARY_ROWS most suspect quantities, titled to say so.

        Parameters
        ----------
        table_name : str
            The file holding every quantity's tests, named in the title.

        Returns
        -------
        numpy.ndarray
            The axes drawn on, as `plot` returns them.
        """
        shown = self.most_suspect(SUMMARY_ROWS)
        return self.plot(names=shown, title=(
            f"SBC of {self.engine} ({self.replications} replications, {self.draws} draws "
            f"each)\nthe {len(shown)} of {len(self.ranks)} quantities with the smallest "
            f"p-values (all in {table_name})"))

    @property
    def passed(self) -> bool:
        """Whether every quantity's ranks pass both uniformity tests."""
        return bool(self.table.uniform.all())

    def plot(self, axes: ArrayLike | None = None, names: Sequence[str] | None = None,
             title: str | None = None) -> np.ndarray:
        """Rank histograms and ECDF differences with simultaneous 95% bands, a row per quantity
        (`names`, default all). `axes`, an array of shape (len(names), 2), is drawn on; without
        it a new Figure is made (no pyplot, so any backend works), its margins set in inches
        (`plots.save` keeps them). Returns the axes.

        Parameters
        ----------
        axes : array_like of matplotlib.axes.Axes, optional
            Shape (len(names), 2): where to draw; a new Figure's when None.
        names : sequence of str, optional
            The quantities to plot; all by default.
        title : str, optional
            The figure's title; by default the engine, replications and draws.

        Returns
        -------
        numpy.ndarray of matplotlib.axes.Axes
            The axes drawn on, shape (len(names), 2).
        """
        names = list(names or self.ranks)
        if axes is None:
            from matplotlib.figure import Figure

            figure = Figure(figsize=(9, 2.6 * len(names) + 0.4))
            axes = figure.subplots(len(names), 2, squeeze=False)
        axes = np.asarray(axes).reshape(len(names), 2)
        for k, (row, name) in enumerate(zip(axes, names)):
            plot_ranks(self.ranks[name], self.draws, name, axes=row, legend=k == 0)
        figure = axes[0, 0].figure
        title = title or f"SBC of {self.engine}: {self.replications} replications, {self.draws} draws each"
        figure.suptitle(title)
        _place_rows(figure, len(names), heading=0.2 + 0.25 * (title.count("\n") + 1))
        return axes


def _place_rows(figure, rows: int, heading: float) -> None:
    """Margins and gaps, in inches, for rows of (histogram, ECDF difference) panels under a
    `heading` inches tall. Set here rather than left to a layout engine (`plots.save` keeps
    margins a plot set): the panels are alike, and tightening measured every label and drew the
    figure twice, most of the time it took to save.
    """
    width, height = figure.get_size_inches()
    row_gap, title, bottom = 0.75, 0.35, 0.55  # a row's x labels, panel titles, the last row's
    panel = (height - heading - title - bottom - (rows - 1) * row_gap) / rows
    figure.subplots_adjust(left=0.75 / width, right=1 - 0.15 / width, bottom=bottom / height,
                           top=1 - (heading + title) / height, wspace=0.28, hspace=row_gap / panel)


# -- Gibbs: replications in vectorized blocks ------------------------------------------------------

def simulate_block(rng: np.random.Generator, priors: Priors, n: np.ndarray, size: int):
    """Truth drawn from the prior and the sufficient statistics of scores drawn given it."""
    truth = draw_parameters(rng, priors, n.size, size=size)
    return truth, draw_school_stats(rng, truth, n)


def gibbs_block_ranks(rng: np.random.Generator, priors: Priors, n: np.ndarray, size: int, *,
                      draws: int, thin: int, tune: int, conditionals, schools,
                      scheme: str = "textbook") -> dict[str, np.ndarray]:
    """Ranks for one block of replications: a chain per replication, all run as one batch by
    `gibbs.run` (the compiled kernel when the scheme's conditionals are the package's own), and
    the truth ranked among each chain's kept draws (draws x size x m values: small).
    """
    truth, stats = simulate_block(rng, priors, n, size)
    true_values = sbc_quantities(truth, stats, schools, priors)
    state = gibbs.initial_state(rng, stats, priors)
    kept = gibbs.run(rng, stats, priors, state, tune=tune, draws=draws, thin=thin,
                     conditionals=conditionals, sweep=gibbs.sweep_for(scheme, conditionals))
    posterior = sbc_quantities(Parameters(**kept), stats, schools, priors)
    return {name: np.sum(posterior[name] < true_values[name], axis=0, dtype=np.int64)
            for name in true_values}


def run_gibbs_sbc(n: ArrayLike, priors: Priors, *, replications: int, draws: int = 100,
                  thin: int = 10, tune: int = 200, seed: SeedLike = 0,
                  conditionals: gibbs.Conditionals | None = None, scheme: str = "textbook",
                  out: Path | str | None = None, progress: bool = False,
                  alpha: float = DEFAULT_ALPHA) -> SBCResult:
    """SBC of a Gibbs sampler with the given conditionals and sweep (`scheme`, "textbook" or
    "blocked"), for school sizes `n`.

    Each replication runs one chain of `tune + draws * thin` sweeps and ranks its `draws` kept
    (thinned) draws. The chains of each block of GIBBS_BLOCK replications are one batch with its
    own random stream, and one unit of saving in `out`.

    Parameters
    ----------
    n : array_like of int
        Each school's number of students.
    priors : Priors
        The priors the truth is drawn from and the sampler assumes.
    replications : int
        The number of replications.
    draws : int, default 100
        The kept draws ranked per replication, L.
    thin : int, default 10
        Sweeps per kept draw.
    tune : int, default 200
        Sweeps discarded first.
    seed : SeedLike, default 0
        Fixes every replication.
    conditionals : gibbs.Conditionals, optional
        The draw functions; the package's own by default.
    scheme : str, default "textbook"
        The Gibbs sweep ("textbook" or "blocked").
    out : path or str, optional
        A folder that saves each block as it finishes, so that a re-run resumes.
    progress : bool, default False
        Whether to show a progress bar.
    alpha : float, default DEFAULT_ALPHA
        The family-wise false-alarm rate of the uniformity tests.

    Returns
    -------
    SBCResult
        The ranks of every test quantity and their uniformity tests.
    """
    n = np.asarray(n)
    conditionals = conditionals or gibbs.Conditionals()
    gibbs.sweep_for(scheme, conditionals)  # an unknown scheme fails before any work
    require_integer("replications", replications)
    schools = tracked_schools(n)
    engine = gibbs.ENGINE_NAMES[scheme]
    settings = {"engine": engine, "design": n.tolist(), "priors": priors.as_dict(),
                "replications": replications, "draws": draws, "thin": thin, "tune": tune,
                "seed": seed, "block": GIBBS_BLOCK,
                "conditionals": conditionals.names()}
    blocks = math.ceil(replications / GIBBS_BLOCK)
    streams = np.random.SeedSequence(seed).spawn(blocks)
    store = UnitStore(out, settings) if out is not None else None
    done = store.done() if store is not None else set()
    results = {}
    for unit in tqdm(range(blocks), desc=f"SBC ({engine})", disable=not progress):
        if unit in done:
            results[unit] = store.load(unit)
            continue
        size = min(GIBBS_BLOCK, replications - unit * GIBBS_BLOCK)
        results[unit] = gibbs_block_ranks(np.random.default_rng(streams[unit]), priors, n, size,
                                          draws=draws, thin=thin, tune=tune,
                                          conditionals=conditionals, schools=schools,
                                          scheme=scheme)
        if store is not None:
            store.save(unit, results[unit])
    ranks = {name: np.concatenate([results[b][name] for b in range(blocks)]) for name in results[0]}
    return SBCResult(ranks=ranks, draws=draws, engine=engine, settings=settings, alpha=alpha)


# -- any engine, one replication a task, through an executor --------------------------------------

# Saved with a replication's ranks: the lowest bulk or tail ESS over the ranked quantities of the
# engine's whole run (not a rank; `run_engine_sbc` sets it apart).
LOWEST_ESS = "_lowest_ess"


@dataclass(frozen=True)
class ReplicationTask:
    """Everything one replication needs; picklable, so it runs in another process or machine.

    The engine runs `draws * thin` draws per chain, and every `thin`-th is ranked: `draws *
    chains` in all, whatever the engine's autocorrelation, so the ranks stay on {0..L}.
    """

    engine: Callable
    data: GroupedData
    priors: Priors
    draws: int
    chains: int
    schools: tuple
    thin: int = 1

    def __call__(self, stream: np.random.SeedSequence) -> dict[str, np.ndarray]:
        simulate_stream, engine_stream = stream.spawn(2)
        rng = np.random.default_rng(simulate_stream)
        truth = draw_parameters(rng, self.priors, self.data.m)
        data = self.data.with_values(draw_scores(rng, truth, self.data.codes))
        idata = self.engine(data, self.priors, draws=self.draws * self.thin, chains=self.chains,
                            seed=engine_stream)
        post = idata.posterior
        run = Parameters(*(post[name].to_numpy() for name in ("theta", "mu", "lam", "omega")))
        schools = np.asarray(self.schools)
        true_values = sbc_quantities(truth, data.stats, schools, self.priors)
        run_values = sbc_quantities(run, data.stats, schools, self.priors)  # (chain, draw)
        ranks = {name: np.array([(values[:, self.thin - 1::self.thin] < true_values[name]).sum()])
                 for name, values in run_values.items()}
        if self.thin > 1:
            ranks[LOWEST_ESS] = np.array([lowest_ess(run_values)])
        return ranks


def lowest_ess(values: dict[str, np.ndarray]) -> float:
    """The lowest bulk or tail ESS (ArviZ) over quantities given as arrays (chain, draw)."""
    table = mixing_table(values, var_names=list(values))
    return float(table[["ess_bulk", "ess_tail"]].to_numpy().min())


def describe_engine(engine: Callable) -> str:
    """The engine by its dotted name (with a partial's arguments), the same in every process, so
    that two engines both called `sample` never share a store and a re-run recognizes its own.
    """
    if isinstance(engine, functools.partial):
        arguments = [repr(a) for a in engine.args] + [f"{k}={v!r}" for k, v in engine.keywords.items()]
        return f"{describe_engine(engine.func)}({', '.join(arguments)})"
    named = engine if hasattr(engine, "__qualname__") else type(engine)
    return f"{named.__module__}.{named.__qualname__}"


def run_engine_sbc(engine: Callable, design: GroupedData, priors: Priors, *, replications: int,
                   draws: int = 100, chains: int = 1, thin: int = 1, seed: SeedLike = 0,
                   executor: Executor | None = None, out: Path | str | None = None,
                   progress: bool = False,
                   engine_name: str | None = None, alpha: float = DEFAULT_ALPHA) -> SBCResult:
    """SBC of any engine on the design (school sizes and labels) of `design`.

    Each replication is one task: the engine runs `draws * thin` draws per chain and every
    `thin`-th is ranked against the truth, `draws * chains` in all. An autocorrelated sampler
    (NUTS) needs `thin` above its autocorrelation time, or its ranks clump even when it is
    calibrated; with `thin` > 1 each replication also records the lowest bulk or tail ESS of its
    run over the ranked quantities (`SBCResult.lowest_ess`), which says whether it was. Without
    an executor the tasks run here.

    Parameters
    ----------
    engine : callable
        `engine(data, priors, draws=, chains=, seed=) -> arviz.InferenceData`.
    design : GroupedData
        Its school sizes and labels are the design; its scores are not used.
    priors : Priors
        The priors the truth is drawn from and the engine assumes.
    replications : int
        The number of replications.
    draws : int, default 100
        Ranked draws per chain.
    chains : int, default 1
        Chains per replication.
    thin : int, default 1
        The engine runs `draws * thin` draws per chain and every `thin`-th is ranked.
    seed : SeedLike, default 0
        Fixes every replication.
    executor : concurrent.futures.Executor, optional
        Runs the tasks; here, one after another, when None.
    out : path or str, optional
        A folder that saves each replication as it finishes, so that a re-run resumes.
    progress : bool, default False
        Whether to show a progress bar.
    engine_name : str, optional
        The engine's name in the result; its dotted name by default.
    alpha : float, default DEFAULT_ALPHA
        The family-wise false-alarm rate of the uniformity tests.

    Returns
    -------
    SBCResult
        The ranks of every test quantity and their uniformity tests (and, thinned, each
        replication's lowest ESS).
    """
    require_integer("thin", thin)
    engine_name = engine_name or describe_engine(engine)
    schools = tuple(int(i) for i in tracked_schools(design.n))
    settings = {"engine": engine_name, "callable": describe_engine(engine), "design": design.n.tolist(),
                "priors": priors.as_dict(), "replications": replications, "draws": draws,
                "chains": chains, "thin": thin, "seed": seed}
    store = UnitStore(out, settings) if out is not None else None
    task = ReplicationTask(engine, design, priors, draws, chains, schools, thin)
    streams = np.random.SeedSequence(seed).spawn(replications)
    done = store.done() if store is not None else set()
    results = {r: store.load(r) for r in done}
    todo = [r for r in range(replications) if r not in done]
    bar = tqdm(total=replications, initial=len(done), desc=f"SBC ({engine_name})",
               disable=not progress)
    if executor is None:
        outcomes = ((r, task(streams[r])) for r in todo)
    else:
        futures = {executor.submit(task, streams[r]): r for r in todo}
        outcomes = ((futures[f], f.result()) for f in as_completed(futures))
    for r, ranks in outcomes:
        results[r] = ranks
        if store is not None:
            store.save(r, ranks)
        bar.update()
    bar.close()
    ranks = {name: np.concatenate([results[r][name] for r in range(replications)])
             for name in results[0] if name != LOWEST_ESS}
    ess = (np.concatenate([results[r][LOWEST_ESS] for r in range(replications)])
           if LOWEST_ESS in results[0] else None)
    return SBCResult(ranks=ranks, draws=draws * chains, engine=engine_name, settings=settings,
                     alpha=alpha, lowest_ess=ess)
