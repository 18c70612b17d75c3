"""Every check on one derivation, and the verdict: `check_sampler` and `detection_matrix`.

A derivation is a `hiercheck.samplers.gibbs.Conditionals` (four draw functions), a marginal likelihood
`f(stats, mu, lam, omega)` (the empirical-Bayes objective), or both. Each check that applies runs
with its own random stream, spawned from one seed, and reports one row: the statistic it
summarizes, its value, the threshold, and whether it passed.

    consistency           each conditional's draws against the PyMC joint density, on the data
    consistency (small)   the same on a few small schools under informative priors, where the
                          prior's constants matter
    agreement vs exact    the sampler's posterior quantiles against exact i.i.d. draws
    agreement vs nuts     ... against PyMC's NUTS on the reference model
    geweke                marginal-conditional against successive-conditional simulation
    sbc                   simulation-based calibration of the sampler, replications batched in blocks
    marginal likelihood   the function against the dense normal density and quadrature over theta
    eb vs statsmodels     its maximum, found as a black box, against statsmodels' MixedLM

Every statistical check holds its false-alarm rate at ALPHA by a Holm correction inside it;
the suite's overall false-alarm rate is then at most ALPHA times the number of checks.
"""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from hiercheck.errors import DataError, SettingsError
from hiercheck.models import GroupedData, Priors, load_dataset
from hiercheck.models.engine import az
from hiercheck.samplers import exact, gibbs
from hiercheck.samplers.marginal import log_marginal_likelihood as correct_log_marginal_likelihood

from . import agreement, consistency, geweke, sbc, statsmodels_check
from .engines import NUTS_SBC_THIN
from .mutants import CATALOGUE, Mutant

# Per statistical check. Six of them at 0.001 make a correct derivation fail `hiercheck validate`
# less than 0.6% of the time, and keep a check's expected false alarms over 20 seeds at 0.02.
# The mutants are caught at p-values far below it (docs/validation.md).
ALPHA = 0.001
# Geweke, SBC and the second consistency check work on six schools of five students (Dyestuff's
# design) under informative priors: small enough that the prior's constants move every
# conditional, so slips in them show.
SMALL_DESIGN = sbc.QUICK_DESIGN
SMALL_PRIORS = sbc.QUICK_PRIORS


@dataclass(frozen=True)
class Settings:
    """How hard each check looks. `QUICK` fits in the CLI's two-minute budget; `FULL` has
    several times the power."""

    consistency_points: int
    consistency_draws: int
    gibbs_draws: int         # per chain, 4 chains, for the agreement checks
    nuts_draws: int          # per chain, 4 chains
    geweke_chains: int
    geweke_steps: int
    sbc_replications: int
    sbc_draws: int
    sbc_thin: int
    sbc_tune: int
    marginal_points: int


QUICK = Settings(consistency_points=3, consistency_draws=4000, gibbs_draws=2500, nuts_draws=1000,
                 geweke_chains=400, geweke_steps=250, marginal_points=2,
                 **{f"sbc_{key}": value for key, value in sbc.QUICK_SBC.items()})
FULL = Settings(consistency_points=8, consistency_draws=20000, gibbs_draws=10000,
                nuts_draws=2500, geweke_chains=2000, geweke_steps=500, sbc_replications=4000,
                sbc_draws=200, sbc_thin=10, sbc_tune=500, marginal_points=5)


@dataclass(frozen=True)
class CheckOutcome:
    """One row of a verdict; `table` is the check's own table, `result` its own result."""

    check: str
    statistic: str
    value: float
    threshold: float
    passed: bool
    seconds: float
    table: pd.DataFrame = field(repr=False)
    result: object = field(repr=False, default=None)  # the check's own result, for its plots


def slug(check: str) -> str:
    """A check's name as a file name: 'consistency (small)' -> 'consistency_small'."""
    return re.sub(r"[^a-z0-9]+", "_", check).strip("_")


@dataclass(frozen=True)
class Verdict:
    outcomes: tuple[CheckOutcome, ...]
    subject: str
    references: References | None = field(default=None, repr=False)

    def with_outcome(self, outcome: CheckOutcome) -> Verdict:
        return Verdict(self.outcomes + (outcome,), self.subject, self.references)

    @property
    def passed(self) -> bool:
        return all(outcome.passed for outcome in self.outcomes)

    @property
    def table(self) -> pd.DataFrame:
        return pd.DataFrame([{"check": o.check, "statistic": o.statistic, "value": o.value,
                              "threshold": o.threshold, "passed": o.passed,
                              "seconds": round(o.seconds, 1)} for o in self.outcomes])

    def summary(self) -> pd.DataFrame:
        """The verdict as a table, a row per check (the same as `table`).

        Returns
        -------
        pandas.DataFrame
            Columns check, statistic, value, threshold, passed, seconds.
        """
        return self.table

    def _repr_html_(self) -> str:
        status = "PASSED" if self.passed else "FAILED"
        color = "#1a6b1a" if self.passed else "#a11"
        return (f'<p>{html.escape(self.subject)}: <b style="color:{color}">{status}</b></p>'
                + self.table.to_html(index=False, float_format=lambda x: f"{x:.3g}"))

    def __getitem__(self, check: str) -> CheckOutcome:
        for outcome in self.outcomes:
            if outcome.check == check:
                return outcome
        raise KeyError(f"no check {check!r} in this verdict; checks are "
                       f"{', '.join(o.check for o in self.outcomes)}")

    def __str__(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        failed = [o.check for o in self.outcomes if not o.passed]
        lines = [f"{self.subject}: {verdict}" + (f" ({', '.join(failed)})" if failed else ""),
                 self.table.to_string(index=False, float_format=lambda x: f"{x:.3g}")]
        return "\n".join(lines)

    def save(self, folder: Path) -> list[Path]:
        """verdict.csv, verdict.json and a CSV per check's detail table."""
        folder.mkdir(parents=True, exist_ok=True)
        written = [folder / "verdict.csv", folder / "verdict.json"]
        self.table.to_csv(written[0], index=False)
        written[1].write_text(json.dumps({"subject": self.subject, "passed": self.passed,
                                          "checks": self.table.to_dict(orient="records")},
                                         indent=2, default=float))
        for outcome in self.outcomes:
            written.append(folder / f"check_{slug(outcome.check)}.csv")
            outcome.table.to_csv(written[-1], index=False)
        return written


class References:
    """What every check of a derivation on `data` compares against, computed once and shared
    (the detection matrix checks nine derivations against the same exact and NUTS posteriors)."""

    def __init__(self, data: GroupedData, priors: Priors, settings: Settings, seed):
        self.data, self.priors, self.settings = data, priors, settings
        self.exact_seed, self.nuts_seed, self.small_seed = _integer_seeds(seed, 3)

    @cached_property
    def exact(self):
        return exact.sample(self.data, self.priors, draws=self.settings.gibbs_draws, chains=4,
                            seed=self.exact_seed)

    @cached_property
    def nuts(self):
        from hiercheck.models.reference import sample_nuts

        return sample_nuts(self.data, self.priors, draws=self.settings.nuts_draws, chains=4,
                           seed=self.nuts_seed)

    @cached_property
    def logp(self):
        from hiercheck.models.reference import joint_logp_function

        return joint_logp_function(self.data, self.priors)

    @cached_property
    def small(self) -> tuple[GroupedData, Priors]:
        return consistency.simulated_data(SMALL_DESIGN, SMALL_PRIORS, self.small_seed), SMALL_PRIORS

    @cached_property
    def small_logp(self):
        from hiercheck.models.reference import joint_logp_function

        return joint_logp_function(*self.small)


def _integer_seeds(seed, count: int) -> list[int]:
    """`count` independent seeds from one, as integers that every check accepts."""
    return [int(child.generate_state(1)[0]) for child in np.random.SeedSequence(seed).spawn(count)]


# -- the checks, each returning a CheckOutcome ----------------------------------------------------

def _timed(check: str, statistic: str, run: Callable, summarize: Callable) -> CheckOutcome:
    start = time.perf_counter()
    result = run()
    value, threshold, passed, detail = summarize(result)
    return CheckOutcome(check, statistic, float(value), float(threshold), bool(passed),
                        time.perf_counter() - start, detail, result)


def _min_holm_p(table: pd.DataFrame) -> float:
    columns = [c for c in table.columns if "holm" in c]
    return float(table[columns].min().min())


def _p_value_summary(result):
    """(min Holm-adjusted p, ALPHA, passed, table) of a result with `.table` and `.passed`."""
    return _min_holm_p(result.table), ALPHA, result.passed, result.table


def consistency_check(conditionals, data, priors, logp, settings: Settings, seed,
                      name: str) -> CheckOutcome:
    return _timed(name, "min Holm-adjusted p", lambda: consistency.check_conditionals(
        conditionals, data, priors, points=settings.consistency_points,
        draws=settings.consistency_draws, seed=seed, alpha=ALPHA, logp=logp), _p_value_summary)


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


# The agreement checks continue the sampler's chains, doubling its draws, while some compared
# quantity misses the mixing gate (agreement.ESS_FLOOR, agreement.RHAT_CEILING), up to this many
# times the setting's draws; past it the check says "cannot verify". At the quick settings (4 x
# 2500 draws) a sampler needs an ESS of about 0.01 per draw to be verified: one that keeps each
# theta_i 98% of the time has about that, and its lowest ESS over hsb's 160 schools at 4 x 10000
# draws is about 200, so it is not (docs/validation.md).
MIXING_BUDGET = 4


def sample_until_mixed(conditionals, references: References, seed) -> az.InferenceData:
    """The sampler's posterior for the agreement checks: 4 chains of `gibbs_draws` draws,
    continued from their last states for as many draws again while some compared quantity
    misses the mixing gate, until the draws reach MIXING_BUDGET times the setting."""
    data, priors, draws = references.data, references.priors, references.settings.gibbs_draws
    posterior = gibbs.sample(data, priors, draws=draws, chains=4, seed=seed,
                             conditionals=conditionals)
    extension_seeds = np.random.SeedSequence(seed).spawn(int(np.log2(MIXING_BUDGET)))
    for extension_seed in extension_seeds:
        if agreement.mixing_table(posterior).mixed.all():
            break
        last = posterior.posterior.isel(draw=-1)
        state = gibbs.GibbsState(*(last[name].to_numpy() for name in gibbs.GibbsState._fields))
        more = gibbs.sample(data, priors, draws=posterior.posterior.sizes["draw"], chains=4,
                            seed=extension_seed, conditionals=conditionals, tune=0, init=state)
        posterior = az.concat(posterior, more, dim="draw", reset_dim=True)
    return posterior


def agreement_check(conditionals, references: References, reference: str, seed) -> CheckOutcome:
    """The sampler's posterior quantiles against a reference's; when either engine misses the
    mixing gate the row says "cannot verify" and gives the lowest ESS or highest R-hat."""
    def run():
        draws = sample_until_mixed(conditionals, references, seed)
        return SampledAgreement(draws, agreement.compare(draws, getattr(references, reference),
                                                         alpha=ALPHA))
    outcome = _timed(f"agreement vs {reference}", "min Holm-adjusted p", run, _p_value_summary)
    unverified = outcome.result.agreement.gate()
    if unverified is None:
        return outcome
    statistic, value, limit = unverified
    return replace(outcome, statistic=statistic, value=value, threshold=limit)


def geweke_check(conditionals, settings: Settings, seed) -> CheckOutcome:
    return _timed("geweke", "min Holm-adjusted p", lambda: geweke.geweke_test(
        SMALL_PRIORS, SMALL_DESIGN, conditionals=conditionals,
        chains=settings.geweke_chains, steps=settings.geweke_steps, seed=seed, alpha=ALPHA),
        _p_value_summary)


def sbc_check(conditionals, settings: Settings, seed) -> CheckOutcome:
    return _timed("sbc", "min Holm-adjusted p", lambda: sbc.run_gibbs_sbc(
        SMALL_DESIGN, SMALL_PRIORS, replications=settings.sbc_replications,
        draws=settings.sbc_draws, thin=settings.sbc_thin, tune=settings.sbc_tune, seed=seed,
        conditionals=conditionals, alpha=ALPHA), _p_value_summary)


NUTS_SBC_DRAWS = 100  # ranked per replication by nuts_sbc_check


def nuts_sbc_check(seed, folder: Path | None = None, replications: int = 200,
                   thin: int = NUTS_SBC_THIN) -> CheckOutcome:
    """SBC of NUTS (nutpie, compiled once) on the small design, saved in `folder` as it goes;
    the reference model's own calibration, which `hiercheck validate --full` adds. Each
    replication ranks NUTS_SBC_DRAWS draws, every `thin`-th of a run `thin` times as long."""
    from .engines import sbc_engine

    design = consistency.simulated_data(SMALL_DESIGN, SMALL_PRIORS, seed)  # SBC replaces its scores
    return _timed("sbc (nuts)", "min Holm-adjusted p", lambda: sbc.run_engine_sbc(
        sbc_engine("nuts"), design, SMALL_PRIORS, replications=replications,
        draws=NUTS_SBC_DRAWS, thin=thin, seed=seed, out=folder, progress=True,
        engine_name="nuts", alpha=ALPHA), _p_value_summary)


def statsmodels_comparison_check(function, data) -> CheckOutcome:
    def summarize(result):
        return (result.max_shortfall, result.table.tolerance.max(), result.passed,
                result.table)
    return _timed("eb vs statsmodels", "max log-likelihood shortfall", lambda:
                  statsmodels_check.compare_with_statsmodels(data, function), summarize)


def marginal_likelihood_check(function, data, priors, settings: Settings, seed) -> CheckOutcome:
    def summarize(result):
        return result.max_relative_error, result.tolerance, result.passed, result.table
    return _timed("marginal likelihood", "max relative error", lambda:
                  consistency.check_marginal_likelihood(function, data, priors,
                                                        points=settings.marginal_points,
                                                        seed=seed), summarize)


SAMPLER_CHECKS = ("consistency", "consistency (small)", "agreement vs exact", "agreement vs nuts",
                  "geweke", "sbc")
LIKELIHOOD_CHECKS = ("marginal likelihood", "eb vs statsmodels")
CHECKS = SAMPLER_CHECKS + LIKELIHOOD_CHECKS


def check_sampler(conditionals: gibbs.Conditionals | None = None, *,
                  log_marginal_likelihood: Callable | None = None,
                  data: GroupedData | None = None, priors: Priors | None = None,
                  quick: bool = True, seed=0, checks: Iterable[str] = CHECKS,
                  references: References | None = None, progress: bool = False) -> Verdict:
    """Run every check that applies to a derivation and return the verdict.

    With neither `conditionals` nor `log_marginal_likelihood`, the package's own derivation is
    checked. `data` defaults to hsb and `priors` to `Priors.weakly_informative(data)`; `checks`
    picks a subset of `CHECKS`; `references` shares the exact and NUTS posteriors between calls.
    The same seed gives the same verdict.
    """
    if conditionals is None and log_marginal_likelihood is None:
        conditionals, log_marginal_likelihood = gibbs.Conditionals(), correct_log_marginal_likelihood
    checks = tuple(checks)
    unknown = sorted(set(checks) - set(CHECKS))
    if unknown:
        raise SettingsError(f"unknown check {unknown[0]!r}; checks are {', '.join(CHECKS)}")
    if references is None:
        data = data if data is not None else load_dataset()
        priors = priors or Priors.weakly_informative(data)
        references = References(data, priors, QUICK if quick else FULL, seed)
    settings, data, priors = references.settings, references.data, references.priors
    streams = dict(zip(CHECKS, _integer_seeds(seed, len(CHECKS))))
    runs = []
    if conditionals is not None:
        runs += [
            ("consistency", lambda: consistency_check(
                conditionals, data, priors, references.logp, settings, streams["consistency"],
                "consistency")),
            ("consistency (small)", lambda: consistency_check(
                conditionals, *references.small, references.small_logp, settings,
                streams["consistency (small)"], "consistency (small)")),
            ("agreement vs exact", lambda: agreement_check(
                conditionals, references, "exact", streams["agreement vs exact"])),
            ("agreement vs nuts", lambda: agreement_check(
                conditionals, references, "nuts", streams["agreement vs nuts"])),
            ("geweke", lambda: geweke_check(conditionals, settings, streams["geweke"])),
            ("sbc", lambda: sbc_check(conditionals, settings, streams["sbc"])),
        ]
    if log_marginal_likelihood is not None:
        # the package's own likelihood is checked through its own fits too (None selects them)
        own = None if log_marginal_likelihood is correct_log_marginal_likelihood else \
            log_marginal_likelihood
        runs += [
            ("marginal likelihood", lambda: marginal_likelihood_check(
                log_marginal_likelihood, data, priors, settings, streams["marginal likelihood"])),
            ("eb vs statsmodels", lambda: statsmodels_comparison_check(own, data)),
        ]
    runs = [(name, run) for name, run in runs if name in checks]
    outcomes = []
    for name, run in tqdm(runs, desc="checks", disable=not progress):
        outcomes.append(run())
    subject = _describe(conditionals, log_marginal_likelihood)
    return Verdict(tuple(outcomes), subject=f"{subject} on {data.name}", references=references)


def _describe(conditionals, log_marginal_likelihood) -> str:
    parts = []
    if conditionals is not None:
        replaced = [f"{field}={getattr(conditionals, field).__name__}"
                    for field in conditionals._fields
                    if getattr(conditionals, field) is not getattr(gibbs.Conditionals(), field)]
        parts.append("Conditionals(" + ", ".join(replaced) + ")")
    if log_marginal_likelihood is not None:
        parts.append(f"marginal likelihood {log_marginal_likelihood.__name__}")
    return " and ".join(parts)


def detection_matrix(mutants: Iterable[Mutant] = CATALOGUE, *, data: GroupedData | None = None,
                     quick: bool = True, seed=0, references: References | None = None,
                     progress: bool = False) -> pd.DataFrame:
    """Every check on the correct derivation and on every mutant: a row each, a column per check,
    True where the check failed the derivation (caught it), '' where the check does not apply,
    and `caught_by`, the number of checks that caught it. The correct row must catch nothing.
    `references` (data, priors and settings included) replaces `data` and `quick`."""
    if references is None:
        data = data if data is not None else load_dataset()
        references = References(data, Priors.weakly_informative(data), QUICK if quick else FULL,
                                seed)
    subjects = [("correct", "the derivation in docs/derivation.md", False,
                 gibbs.Conditionals(), correct_log_marginal_likelihood)]
    subjects += [(m.name, m.description, m.subtle, m.conditionals, m.log_marginal_likelihood)
                 for m in mutants]
    rows = []
    for name, description, subtle, conditionals, likelihood in tqdm(
            subjects, desc="derivations", disable=not progress):
        verdict = check_sampler(conditionals, log_marginal_likelihood=likelihood, seed=seed,
                                references=references)
        caught = {o.check: not o.passed for o in verdict.outcomes}
        rows.append({"derivation": name, "subtle": subtle,
                     **{check: caught.get(check, "") for check in CHECKS},
                     "caught_by": sum(caught.values()), "description": description})
    return pd.DataFrame(rows)


def matrix_markdown(matrix: pd.DataFrame) -> str:
    """The detection matrix as a GitHub table: 'caught', '-' (not caught) or blank (the check
    does not apply), a row per derivation."""
    def cell(value):
        if value == "":
            return ""
        return "caught" if value else "-"
    columns = ["derivation", *CHECKS, "caught_by"]
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for row in matrix.to_dict(orient="records"):
        name = f"{row['derivation']} (subtle)" if row["subtle"] else row["derivation"]
        cells = [name, *(cell(row[check]) for check in CHECKS), str(row["caught_by"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


MATRIX_START, MATRIX_END = "<!-- detection matrix -->", "<!-- /detection matrix -->"


def replace_matrix_block(text: str, table: str) -> str:
    """`text` with the lines between the detection-matrix markers replaced by `table`."""
    start, end = text.find(MATRIX_START), text.find(MATRIX_END)
    if start < 0 or end < start:
        raise DataError(f"no {MATRIX_START} ... {MATRIX_END} block to replace")
    return text[:start + len(MATRIX_START)] + "\n" + table + "\n" + text[end:]
