"""Every check on one derivation, and the verdict: `check_sampler` and `detection_matrix`.

A derivation is a `hiercheck.samplers.gibbs.Conditionals` (draw functions) run in one of the two
sweeps (`scheme`: "textbook", the four complete conditionals, or "blocked", draw_omega, the two
collapsed conditionals and draw_theta), a marginal likelihood `f(stats, mu, lam, omega)` (the
empirical-Bayes objective), a restricted likelihood `f_R(stats, lam, omega)` (the REML
objective), or any of them together. Each check that applies runs with its own random stream,
spawned from one seed, and reports one row: the statistic it summarizes, its value, the
threshold, and whether it passed. Every Gibbs-based check uses the chosen sweep, through
`gibbs.run`: the compiled kernel when the conditionals it draws from are the package's own.

    consistency           each conditional applied to states drawn from the full conditional
                          that the PyMC joint density implies (with theta integrated out for the
                          collapsed ones), its output against that conditional (an invariance
                          test: kernels pass too), on the data
    consistency (small)   the same on eight small schools of unequal sizes under informative
                          priors, where the prior's constants and the school sizes matter
    agreement vs exact    the sampler's posterior quantiles against exact i.i.d. draws
    agreement vs nuts     ... against PyMC's NUTS on the reference model
    geweke                marginal-conditional against successive-conditional simulation
    sbc                   simulation-based calibration of the sampler, replications batched in blocks
    marginal likelihood   the function against the dense normal density and quadrature over theta
    restricted likelihood the REML function against Harville's dense form and quadrature over mu
    eb vs statsmodels     each function at statsmodels' MixedLM optimum against its log-likelihood,
                          and its maximum, found as a black box, against MixedLM's (ML, REML)

Every statistical check holds its false-alarm rate at ALPHA by a Holm correction inside it;
the suite's overall false-alarm rate is then at most ALPHA times the number of checks.
"""

from __future__ import annotations

__all__ = [
    "CHECKS", "FULL", "QUICK", "check_sampler", "detection_matrix", "References", "Settings",
]

import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from hiercheck._typing import SeedLike
from hiercheck.cache import PICKLE, DiskCache, data_parts, source_digest
from hiercheck.errors import SettingsError
from hiercheck.models import GroupedData, Priors, load_dataset
from hiercheck.models.engine import az
from hiercheck.samplers import exact, gibbs
from hiercheck.samplers.empirical_bayes import restricted_loglik as correct_restricted_likelihood
from hiercheck.samplers.marginal import log_marginal_likelihood as correct_log_marginal_likelihood

from . import agreement, consistency, diagnostics, geweke, likelihood, sbc, statsmodels_check
from .engines import NUTS_SBC_THIN
from .mutants import CATALOGUE, Mutant
from .result import (ALPHA, MIN_HOLM_P, CheckOutcome, Verdict, p_value_summary, run_tasks,
                     seed_streams, timed)

# Geweke, SBC and the second consistency check work on eight schools of 1 to 12 students under
# informative priors: small enough that the prior's constants move every conditional, so slips
# in them show, and unbalanced, so that a slip confusing one school's size with another's shows.
SMALL_DESIGN = sbc.QUICK_DESIGN
SMALL_PRIORS = sbc.QUICK_PRIORS


@dataclass(frozen=True)
class Settings:
    """How hard each check looks. `QUICK` fits in the CLI's two-minute budget; `FULL` has
    several times the power.

    Attributes
    ----------
    consistency_points : int
        Exact posterior states at which each conditional is tested.
    consistency_draws : int
        Draws compared with each scalar's conditional (mu, lam, omega) at each state.
    consistency_theta_draws : int
        Draws of the theta block at each state: each is a value for every school, so it costs
        m times a scalar's draw.
    gibbs_draws : int
        Draws per chain, 4 chains, for the agreement checks (and the exact posterior's).
    nuts_draws : int
        NUTS draws per chain, 4 chains.
    geweke_chains : int
        Geweke's successive-conditional chains.
    geweke_steps : int
        Steps each Geweke chain averages over.
    sbc_replications : int
        SBC replications.
    sbc_draws : int
        Ranked draws per SBC replication.
    sbc_thin : int
        Sweeps per ranked SBC draw.
    sbc_tune : int
        Sweeps discarded first in each SBC replication.
    marginal_points : int
        Exact posterior points at which the likelihoods are compared.
    """

    consistency_points: int
    consistency_draws: int
    consistency_theta_draws: int
    gibbs_draws: int         # per chain, 4 chains, for the agreement checks
    nuts_draws: int          # per chain, 4 chains
    geweke_chains: int
    geweke_steps: int
    sbc_replications: int
    sbc_draws: int
    sbc_thin: int
    sbc_tune: int
    marginal_points: int


# A scalar's conditional gets ten times theta's draws: its slips are seen by the consistency
# check or by none (docs/validation.md, "Power"), and its draws are cheap; theta's slips are
# seen by the agreement checks and Geweke's test too.
QUICK = Settings(consistency_points=3, consistency_draws=40000, consistency_theta_draws=4000,
                 gibbs_draws=2500, nuts_draws=1000, geweke_chains=400, geweke_steps=250,
                 marginal_points=2, **{f"sbc_{key}": value for key, value in sbc.QUICK_SBC.items()})
FULL = Settings(consistency_points=8, consistency_draws=400000, consistency_theta_draws=20000,
                gibbs_draws=10000, nuts_draws=2500, geweke_chains=2000, geweke_steps=500,
                sbc_replications=4000, sbc_draws=200, sbc_thin=10, sbc_tune=500,
                marginal_points=5)


class References:
    """What every check of a derivation on `data` compares against, computed once and shared
    (the detection matrix checks nine derivations against the same exact and NUTS posteriors).
    The exact and NUTS posteriors are kept in `cache` (`hiercheck.cache.DiskCache`), keyed by
    everything they depend on, so a second run on the same data and priors reads them back.

    Parameters
    ----------
    data : GroupedData
        The scores every check of the derivation uses.
    priors : Priors
        The priors.
    settings : Settings
        How hard each check looks (`QUICK` or `FULL`).
    seed : SeedLike
        Fixes the exact and NUTS posteriors and the small simulated data.
    cache : hiercheck.cache.DiskCache, optional
        Where the posteriors are kept; the default cache when None.
    """

    def __init__(self, data: GroupedData, priors: Priors, settings: Settings, seed: SeedLike,
                 cache: DiskCache | None = None):
        self.data, self.priors, self.settings = data, priors, settings
        streams = _streams(seed)
        self.exact_seed, self.nuts_seed, self.small_seed = (streams[name] for name in REFERENCES)
        self.cache = cache if cache is not None else DiskCache()
        self._tabulated, self._summaries = {}, {}

    def _cached_posterior(self, engine: str, compute, **settings):
        parts = {"engine": engine, **data_parts(self.data), "priors": self.priors.as_dict(),
                 **settings}
        return self.cache.get(f"posterior-{engine}", parts, compute, PICKLE)

    @cached_property
    def exact(self):
        """The exact posterior of (data, priors): 4 chains of `gibbs_draws`."""
        draws = self.settings.gibbs_draws
        return self._cached_posterior(
            "exact", lambda: exact.sample(self.data, self.priors, draws=draws, chains=4,
                                          seed=self.exact_seed),
            draws=draws, chains=4, seed=self.exact_seed)

    @cached_property
    def nuts(self):
        """PyMC's NUTS posterior of (data, priors): 4 chains of `nuts_draws`."""
        draws = self.settings.nuts_draws

        def compute():  # PyMC is imported only when the cache does not have the posterior
            from hiercheck.models.reference import sample_nuts

            return sample_nuts(self.data, self.priors, draws=draws, chains=4, seed=self.nuts_seed)
        return self._cached_posterior("nuts", compute, draws=draws, chains=4, seed=self.nuts_seed)

    def summary(self, engine: str) -> agreement.Summary:
        """The agreement checks' `agreement.Summary` of the "exact" or "nuts" posterior: kept in
        `cache` under the posterior's draws and the source of the code that computes it, so a
        later run reads back the reference's side of every comparison.

        Parameters
        ----------
        engine : {"exact", "nuts"}
            The reference posterior.

        Returns
        -------
        agreement.Summary
            Its quantiles, their indicators' ESS and its mixing table.
        """
        if engine not in self._summaries:
            posterior = getattr(self, engine)
            parts = {"draws": {name: posterior.posterior[name].to_numpy()
                               for name in agreement.VARIABLES},
                     "quantiles": list(agreement.QUANTILES), "source": source_digest(*SUMMARY_CODE)}
            self._summaries[engine] = self.cache.get(
                "agreement-summary", parts, lambda: agreement.summarize(posterior), PICKLE)
        return self._summaries[engine]

    @cached_property
    def logp(self):
        """The reference model's log-density terms of (data, priors), compiled."""
        from hiercheck.models.reference import log_density_terms_function

        return log_density_terms_function(self.data, self.priors)

    @cached_property
    def small(self) -> tuple[GroupedData, Priors]:
        """The small simulated data set (SMALL_DESIGN) and its priors."""
        return consistency.simulated_data(SMALL_DESIGN, SMALL_PRIORS, self.small_seed), SMALL_PRIORS

    @cached_property
    def small_logp(self):
        """The reference model's log-density terms of the small data, compiled."""
        from hiercheck.models.reference import log_density_terms_function

        return log_density_terms_function(*self.small)

    @cached_property
    def collapsed_logp(self):
        """The reference model's collapsed log density of (data, priors), compiled."""
        from hiercheck.models.reference import collapsed_logp_function

        return collapsed_logp_function(self.data, self.priors)

    @cached_property
    def small_collapsed_logp(self):
        """The collapsed log density of the small data, compiled."""
        from hiercheck.models.reference import collapsed_logp_function

        return collapsed_logp_function(*self.small)

    def prepare(self, checks: Sequence[str], scheme: str, streams: dict[str, int]) -> None:
        """Compute (or read from the cache) every reference that `checks` compare with, so that
        processes forked afterwards inherit them instead of each computing its own.

        Parameters
        ----------
        checks : sequence of str
            Names of `CHECKS` about to run.
        scheme : {"textbook", "blocked"}
            The sweep whose conditionals the consistency checks test.
        streams : dict of str to int
            `_streams(seed)`: the consistency checks' seeds fix their states.
        """
        for small, check in ((False, "consistency"), (True, "consistency (small)")):
            if check in checks:
                self.tabulated(small, scheme, streams[check])
        for engine in ("exact", "nuts"):
            if f"agreement vs {engine}" in checks:
                self.summary(engine)
        # xarray imports dask.array (about 0.6 s), where installed, the first time it builds an
        # array (to test for dask arrays): imported here once, not in each forked check
        with contextlib.suppress(ImportError):
            import dask.array  # noqa: F401

    def tabulated(self, small: bool, scheme: str, seed: int) -> list[consistency.TabulatedState]:
        """The consistency check's states and full conditionals
        (`consistency.tabulate_states`) on the data or (`small`) the small data, for the
        conditionals `scheme` draws from and the check's `seed`: kept in `cache` under the
        data, the priors, the fields, the points, the seed and the source of the code that
        computes them, so a later run neither compiles nor imports the PyMC model.

        Parameters
        ----------
        small : bool
            The small simulated data rather than the data.
        scheme : {"textbook", "blocked"}
            The sweep whose conditionals are tabulated.
        seed : int
            The consistency check's seed, which fixes its states.

        Returns
        -------
        list of consistency.TabulatedState
            One per state.
        """
        key = (small, scheme, seed)
        if key not in self._tabulated:
            data, priors = self.small if small else (self.data, self.priors)
            fields, points = gibbs.SCHEME_FIELDS[scheme], self.settings.consistency_points

            def compute():
                collapsed = None
                if scheme == "blocked":  # compiled only when a collapsed conditional is checked
                    collapsed = self.small_collapsed_logp if small else self.collapsed_logp
                return consistency.tabulate_states(
                    data, priors, fields, points=points, seed=seed,
                    log_density_terms=self.small_logp if small else self.logp,
                    collapsed_logp=collapsed)

            parts = {**data_parts(data), "priors": priors.as_dict(), "fields": list(fields),
                     "points": points, "seed": seed, "source": source_digest(*TABULATION_CODE)}
            self._tabulated[key] = self.cache.get("consistency-grids", parts, compute, PICKLE)
        return self._tabulated[key]


# The modules whose code computes `References.summary`.
SUMMARY_CODE = ("hiercheck.validation.agreement", "hiercheck.validation.diagnostics")
# The modules whose code computes `References.tabulated`: the grids, the states, the density.
TABULATION_CODE = ("hiercheck.validation.consistency", "hiercheck.samplers.exact",
                   "hiercheck.models.reference", "hiercheck.models.joint")


REFERENCES = ("exact", "nuts", "small")


def _streams(seed) -> dict[str, int]:
    """An independent integer seed for each check and each of the `References` (the exact and
    NUTS posteriors, the small simulated data): `result.seed_streams`.
    """
    return seed_streams(seed, (*CHECKS, *REFERENCES))


# -- the checks, each returning a CheckOutcome ----------------------------------------------------

def consistency_check(conditionals, references: References, scheme: str, seed,
                      small: bool) -> CheckOutcome:
    """Each conditional `scheme` draws from, on the data or (`small`) on the small design, in
    stages (`consistency.check_in_stages`).
    """
    data, priors = references.small if small else (references.data, references.priors)
    settings = references.settings
    return timed("consistency (small)" if small else "consistency", MIN_HOLM_P,
                  lambda: consistency.check_in_stages(
                      conditionals, data, priors, points=settings.consistency_points,
                      draws=settings.consistency_draws,
                      theta_draws=settings.consistency_theta_draws, seed=seed, alpha=ALPHA,
                      scheme=scheme,
                      tabulated=references.tabulated(small, scheme, seed)), p_value_summary)


@dataclass(frozen=True)
class SampledAgreement:
    """The sampler's posterior and its agreement with a reference engine."""

    posterior: object  # arviz.InferenceData
    agreement: agreement.Agreement

    @property
    def table(self) -> pd.DataFrame:
        return self.agreement.table

    @property
    def passed(self) -> bool:
        return self.agreement.passed

    @property
    def alpha(self) -> float:
        return self.agreement.alpha


# The agreement checks continue the sampler's chains, doubling its draws, while some compared
# quantity misses the mixing gate (diagnostics.ESS_FLOOR, diagnostics.RHAT_CEILING), up to this
# many times the setting's draws; past it the check says "cannot verify". At the quick settings
# (4 x 2500 draws) a sampler needs an ESS of about 0.01 per draw to be verified: one that keeps
# each theta_i 98% of the time has about that, and its lowest ESS over hsb's 160 schools at
# 4 x 10000 draws is about 200, so it is not (docs/validation.md).
MIXING_BUDGET = 4


def sample_until_mixed(conditionals, references: References, seed, scheme: str = "textbook"
                       ) -> tuple[az.InferenceData, pd.DataFrame | None]:
    """The sampler's posterior for the agreement checks: 4 chains of `gibbs_draws` draws,
    continued from their last states for as many draws again while some compared quantity
    misses the mixing gate, until the draws reach MIXING_BUDGET times the setting; and the
    `diagnostics.mixing_table` of the draws returned, or None when the budget ran out before it
    was computed.
    """
    data, priors, draws = references.data, references.priors, references.settings.gibbs_draws
    posterior = gibbs.sample(data, priors, draws=draws, chains=4, seed=seed,
                             conditionals=conditionals, scheme=scheme)
    extension_seeds = np.random.SeedSequence(seed).spawn(int(np.log2(MIXING_BUDGET)))
    for extension_seed in extension_seeds:
        mixing = diagnostics.mixing_table(posterior, agreement.VARIABLES)
        if mixing.mixed.all():
            return posterior, mixing
        last = posterior.posterior.isel(draw=-1)
        state = gibbs.GibbsState(*(last[name].to_numpy() for name in gibbs.GibbsState._fields))
        more = gibbs.sample(data, priors, draws=posterior.posterior.sizes["draw"], chains=4,
                            seed=extension_seed, conditionals=conditionals, tune=0, init=state,
                            scheme=scheme)
        posterior = az.concat(posterior, more, dim="draw", reset_dim=True)
    return posterior, None


def agreement_checks(conditionals, references: References, engines: Sequence[str], seed,
                     scheme: str) -> list[CheckOutcome]:
    """The sampler's posterior quantiles against those of each reference engine in `engines`,
    from one run of the sampler (`sample_until_mixed`) summarized once: an outcome per engine,
    the first timed with the run. Where either side misses the mixing gate the row says "cannot
    verify" and gives the lowest ESS or highest R-hat.
    """
    start = time.perf_counter()
    posterior, mixing = sample_until_mixed(conditionals, references, seed, scheme)
    summary = agreement.summarize(posterior, mixing=mixing)
    outcomes = []
    for engine in engines:
        def run(engine=engine):
            return SampledAgreement(posterior, agreement.compare(
                posterior, getattr(references, engine), alpha=ALPHA, summary_a=summary,
                summary_b=references.summary(engine)))
        outcome = timed(f"agreement vs {engine}", MIN_HOLM_P, run, p_value_summary)
        if not outcomes:
            outcome = replace(outcome, seconds=time.perf_counter() - start)
        outcomes.append(_gated(outcome))
    return outcomes


def _gated(outcome: CheckOutcome) -> CheckOutcome:
    """An agreement outcome, its statistic the mixing gate's where a side missed it: failed if a
    quantity that both sides mix well disagrees, else incomplete.
    """
    comparison = outcome.result.agreement
    gate = comparison.gate()
    if gate is None:
        return outcome
    statistic, value, limit = gate
    disagrees = bool((comparison.table.verdict == "disagree").any())
    return replace(outcome, statistic=statistic, value=value, threshold=limit,
                   unverified="" if disagrees else f"{statistic} {value:.3g} (limit {limit:g}); "
                                                   "more draws (--full) may let it be verified")


def geweke_check(conditionals, settings: Settings, seed, scheme: str) -> CheckOutcome:
    return timed("geweke", MIN_HOLM_P, lambda: geweke.geweke_test(
        SMALL_PRIORS, SMALL_DESIGN, conditionals=conditionals, scheme=scheme,
        chains=settings.geweke_chains, steps=settings.geweke_steps, seed=seed, alpha=ALPHA),
        p_value_summary)


def sbc_check(conditionals, settings: Settings, seed, scheme: str) -> CheckOutcome:
    return timed("sbc", MIN_HOLM_P, lambda: sbc.run_gibbs_sbc(
        SMALL_DESIGN, SMALL_PRIORS, replications=settings.sbc_replications,
        draws=settings.sbc_draws, thin=settings.sbc_thin, tune=settings.sbc_tune, seed=seed,
        conditionals=conditionals, scheme=scheme, alpha=ALPHA), p_value_summary)


NUTS_SBC_DRAWS = 100  # ranked per replication by nuts_sbc_check


def nuts_sbc_check(seed, folder: Path | None = None, replications: int = 200,
                   thin: int = NUTS_SBC_THIN) -> CheckOutcome:
    """SBC of NUTS (nutpie, compiled once) on the small design, saved in `folder` as it goes;
    the reference model's own calibration, which `hiercheck validate --full` adds. Each
    replication ranks NUTS_SBC_DRAWS draws, every `thin`-th of a run `thin` times as long.
    """
    from .engines import sbc_engine

    design = consistency.simulated_data(SMALL_DESIGN, SMALL_PRIORS, seed)  # SBC replaces its scores
    return timed("sbc (nuts)", MIN_HOLM_P, lambda: sbc.run_engine_sbc(
        sbc_engine("nuts"), design, SMALL_PRIORS, replications=replications,
        draws=NUTS_SBC_DRAWS, thin=thin, seed=seed, out=folder, progress=True,
        engine_name="nuts", alpha=ALPHA), p_value_summary)


def statsmodels_comparison_check(marginal, restricted, data) -> CheckOutcome:
    def summarize(result):
        return result.worst_ratio, 1.0, result.passed, result.table
    return timed("eb vs statsmodels", "max |loglik - statsmodels| / tolerance", lambda:
                  statsmodels_check.compare_with_statsmodels(data, marginal, restricted),
                  summarize)


def likelihood_check(name: str, check: Callable, function, data, priors, settings: Settings,
                     seed) -> CheckOutcome:
    """`check` is `likelihood.check_marginal_likelihood` or `check_restricted_likelihood`."""
    def summarize(result):
        return result.max_relative_error, result.tolerance, result.passed, result.table
    return timed(name, "max relative error", lambda: check(
        function, data, priors, points=settings.marginal_points, seed=seed), summarize)


SAMPLER_CHECKS = ("consistency", "consistency (small)", "agreement vs exact", "agreement vs nuts",
                  "geweke", "sbc")
LIKELIHOOD_CHECKS = ("marginal likelihood", "restricted likelihood", "eb vs statsmodels")
CHECKS = SAMPLER_CHECKS + LIKELIHOOD_CHECKS


# fail-fast order: simulation checks on the small design first (no PyMC, no reference posterior,
# a second or two), the exact likelihood checks, then what compiles the PyMC joint density, and
# last what needs a reference posterior (NUTS: tens of seconds unless cached)
FAIL_FAST_ORDER = ("geweke", "sbc", "marginal likelihood", "restricted likelihood",
                   "eb vs statsmodels", "consistency (small)", "consistency", "agreement vs exact",
                   "agreement vs nuts")


def check_sampler(conditionals: gibbs.Conditionals | None = None, *,
                  log_marginal_likelihood: Callable | None = None,
                  restricted_log_likelihood: Callable | None = None,
                  data: GroupedData | None = None, priors: Priors | None = None,
                  quick: bool = True, seed: SeedLike = 0, checks: Iterable[str] = CHECKS,
                  references: References | None = None, progress: bool = False,
                  fail_fast: bool = False, scheme: str = "textbook", jobs: int = 1,
                  out: Path | None = None) -> Verdict:
    """Run every check that applies to a derivation and return the verdict.

    Parameters
    ----------
    conditionals : hiercheck.samplers.gibbs.Conditionals, optional
        The draw functions (direct draws or Markov kernels).
    log_marginal_likelihood : callable, optional
        `f(stats, mu, lam, omega)` = log p(y | mu, lam, omega), theta integrated out.
    restricted_log_likelihood : callable, optional
        `f(stats, lam, omega)` = log p_R(y | lam, omega), mu integrated out as well under a flat
        prior of density 1 (statsmodels' REML convention). With none of the three, the package's
        own derivation is checked.
    data, priors
        `data` defaults to hsb and `priors` to `Priors.weakly_informative(data)`.
    quick
        The `QUICK` settings, or else `FULL`.
    seed
        The same seed gives the same verdict.
    checks
        A subset of `CHECKS`.
    references
        Shares the exact and NUTS posteriors and the compiled densities between calls (its data,
        priors and settings replace `data`, `priors` and `quick`).
    progress
        A progress bar over the checks.
    fail_fast
        Run the checks cheapest and most telling first (`FAIL_FAST_ORDER`: no PyMC compilation,
        no reference posterior, before those that need them) and stop at the first failure; the
        verdict then holds the checks that ran.
    scheme
        The Gibbs sweep every Gibbs-based check runs: "textbook" (draw_theta, draw_mu, draw_lam,
        draw_omega) or "blocked" (draw_omega, draw_lam_collapsed, draw_mu_collapsed,
        draw_theta); consistency checks the conditionals the scheme draws from.
    jobs
        The checks run in this many processes (`forked.forked_map`): the agreement checks in
        this one, which computes or reads the reference posteriors they compare with, the
        others meanwhile in `jobs` - 1 forked workers. Each check has its own random stream, so
        the verdict does not depend on `jobs`. With `fail_fast` they run one at a time.
    out
        Each check's files (`CheckOutcome.save`) are written in this folder as the check
        finishes, by the process that ran it; `Verdict.save` in the same folder then only adds
        the verdict's own.

    Returns
    -------
    Verdict
        A row per check.

    Raises
    ------
    SettingsError
        For an unknown check or scheme, or a replaced conditional that the scheme does not
        draw from (it would go unchecked).
    UserFunctionError
        If a function of the derivation returns something that cannot be right.
    """
    if conditionals is None and log_marginal_likelihood is None and restricted_log_likelihood is None:
        conditionals = gibbs.Conditionals()
        log_marginal_likelihood = correct_log_marginal_likelihood
        restricted_log_likelihood = correct_restricted_likelihood
    if conditionals is not None:
        gibbs.sweep_for(scheme, conditionals)
    checks = tuple(checks)
    unknown = sorted(set(checks) - set(CHECKS))
    if unknown:
        raise SettingsError(f"unknown check {unknown[0]!r}; checks are {', '.join(CHECKS)}")
    if references is None:
        data = data if data is not None else load_dataset()
        priors = priors or Priors.weakly_informative(data)
        references = References(data, priors, QUICK if quick else FULL, seed)
    settings, data, priors = references.settings, references.data, references.priors
    streams = _streams(seed)
    tasks = []  # (the checks a task runs, the task: () -> their outcomes)
    if conditionals is not None:
        compared = tuple(engine for engine in ("exact", "nuts")
                         if f"agreement vs {engine}" in checks)
        tasks += [
            (("consistency",), lambda: [consistency_check(
                conditionals, references, scheme, streams["consistency"], small=False)]),
            (("consistency (small)",), lambda: [consistency_check(
                conditionals, references, scheme, streams["consistency (small)"], small=True)]),
            # one run of the sampler for both agreement checks, on the first's stream
            (tuple(f"agreement vs {engine}" for engine in compared), lambda: agreement_checks(
                conditionals, references, compared, streams["agreement vs exact"], scheme)),
            (("geweke",), lambda: [geweke_check(conditionals, settings, streams["geweke"],
                                                scheme)]),
            (("sbc",), lambda: [sbc_check(conditionals, settings, streams["sbc"], scheme)]),
        ]
    if log_marginal_likelihood is not None:
        tasks.append((("marginal likelihood",), lambda: [likelihood_check(
            "marginal likelihood", likelihood.check_marginal_likelihood, log_marginal_likelihood,
            data, priors, settings, streams["marginal likelihood"])]))
    if restricted_log_likelihood is not None:
        tasks.append((("restricted likelihood",), lambda: [likelihood_check(
            "restricted likelihood", likelihood.check_restricted_likelihood,
            restricted_log_likelihood, data, priors, settings, streams["restricted likelihood"])]))
    if log_marginal_likelihood is not None or restricted_log_likelihood is not None:
        tasks.append((("eb vs statsmodels",), lambda: [statsmodels_comparison_check(
            log_marginal_likelihood, restricted_log_likelihood, data)]))
    tasks = [(names, task) for names, task in tasks if names and names[0] in checks]
    if fail_fast:
        tasks.sort(key=lambda pair: FAIL_FAST_ORDER.index(pair[0][0]))
    # the agreement checks run here: they alone need the reference posteriors (and ArviZ,
    # seconds to import), which this process keeps for the plots, and the workers forked
    # before them run every other check meanwhile
    here = [i for i, (names, _) in enumerate(tasks) if names[0].startswith("agreement")]
    outcomes = run_tasks([task for _, task in tasks], jobs=jobs, fail_fast=fail_fast, out=out,
                         progress=progress, here=here)
    subject = _describe(conditionals, log_marginal_likelihood, restricted_log_likelihood, scheme)
    return Verdict(tuple(outcomes), subject=f"{subject} on {data.name}", references=references)


def _describe(conditionals, log_marginal_likelihood, restricted_log_likelihood,
              scheme: str) -> str:
    parts = []
    if conditionals is not None:
        replaced = [f"{field}={getattr(conditionals, field).__name__}"
                    for field in conditionals._fields
                    if getattr(conditionals, field) is not getattr(gibbs.Conditionals(), field)]
        parts.append(f"Conditionals({', '.join(replaced)}) in the {scheme} sweep")
    if log_marginal_likelihood is not None:
        parts.append(f"marginal likelihood {log_marginal_likelihood.__name__}")
    if restricted_log_likelihood is not None:
        parts.append(f"restricted likelihood {restricted_log_likelihood.__name__}")
    return " and ".join(parts)


def detection_matrix(mutants: Iterable[Mutant] = CATALOGUE, *, data: GroupedData | None = None,
                     quick: bool = True, seed: SeedLike = 0, references: References | None = None,
                     checks: Sequence[str] = CHECKS, progress: bool = False) -> pd.DataFrame:
    """Every check on the correct derivation and on every mutant: a row each, a column per check,
    True where the check failed the derivation (caught it), '' where the check does not apply,
    and `caught_by`, the number of checks that caught it. Each Gibbs derivation runs in its
    mutant's sweep (`Mutant.scheme`); the package's own runs in both, and neither of its rows
    may catch anything. `references` (data, priors and settings included) replaces `data` and
    `quick`.

    Parameters
    ----------
    mutants : iterable of Mutant, default CATALOGUE
        The mutants checked besides the correct derivation.
    data : GroupedData, optional
        The data; hsb by default.
    quick : bool, default True
        The `QUICK` settings, or else `FULL`.
    seed : SeedLike, default 0
        The seed of every check.
    references : References, optional
        Shared references, which replace `data` and `quick`.
    checks : sequence of str, default CHECKS
        The checks run, each a column (the others are left out of the matrix).
    progress : bool, default False
        Whether to show a progress bar over the derivations.

    Returns
    -------
    pandas.DataFrame
        A row per derivation, a column per check, and `caught_by`.
    """
    if references is None:
        data = data if data is not None else load_dataset()
        references = References(data, Priors.weakly_informative(data), QUICK if quick else FULL,
                                seed)
    subjects = [Mutant("correct", "the derivation in docs/derivation.md", gibbs.Conditionals(),
                       correct_log_marginal_likelihood, correct_restricted_likelihood),
                Mutant("correct (blocked)", "the same in the blocked sweep", gibbs.Conditionals(),
                       scheme="blocked"),
                *mutants]
    rows = []
    for subject in tqdm(subjects, desc="derivations", disable=not progress):
        verdict = check_sampler(subject.conditionals,
                                log_marginal_likelihood=subject.log_marginal_likelihood,
                                restricted_log_likelihood=subject.restricted_log_likelihood,
                                seed=seed, references=references, scheme=subject.scheme,
                                checks=checks)
        caught = {o.check: not o.passed for o in verdict.outcomes}
        rows.append({"derivation": subject.name, "scheme": subject.scheme,
                     "subtle": subject.subtle, **{check: caught.get(check, "") for check in checks},
                     "caught_by": sum(caught.values()), "description": subject.description})
    return pd.DataFrame(rows)
