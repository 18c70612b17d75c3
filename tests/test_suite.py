"""The whole suite on hsb in quick settings: the correct derivation passes every check, every
mutant that is not documented as subtle is caught by at least two different checks, and a wrong
derivation from outside the catalogue goes through the same checks unchanged.

Each statistical check holds its family-wise false-alarm rate at 0.001, so the correct derivation
fails some check with probability at most 0.006 (six checks) at a given seed; seed 0 is fixed, and
`benchmarks/false_alarms.py` measures the rate over 20 seeds (docs/validation.md).
"""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hiercheck.errors import UserFunctionError
from hiercheck.models import Priors, load_dataset
from hiercheck.samplers import gibbs
from hiercheck.validation import diagnostics, suite
from hiercheck.validation.result import MATRIX_END, MATRIX_START
from hiercheck.validation.mutants import CATALOGUE


pytestmark = pytest.mark.slow  # every test checks against PyMC's joint density and NUTS

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def references():
    data = load_dataset("hsb")
    return suite.References(data, Priors.weakly_informative(data), suite.QUICK, seed=0)


AGREEMENT = ("agreement vs exact", "agreement vs nuts")
WITHOUT_AGREEMENT = tuple(check for check in suite.CHECKS if check not in AGREEMENT)


@pytest.fixture(scope="module")
def matrix(references):
    """The detection matrix without the agreement checks, the costliest (a Gibbs run of 4 x 2500
    sweeps on hsb per derivation): every other check of every derivation. The agreement checks
    are tested below on the correct derivation and on slow kernels."""
    return suite.detection_matrix(references=references, checks=WITHOUT_AGREEMENT
                                  ).set_index("derivation")


def test_the_correct_derivation_passes_every_check(matrix):
    assert matrix.loc["correct", "caught_by"] == 0
    assert matrix.loc["correct (blocked)", "caught_by"] == 0


@pytest.mark.parametrize("mutant", [m.name for m in CATALOGUE if not m.subtle])
def test_every_plain_mutant_is_caught_by_two_checks(matrix, mutant):
    """Two checks besides agreement: the published matrix has every plain Gibbs mutant caught by
    at least three of them."""
    assert matrix.loc[mutant, "caught_by"] >= 2


@pytest.mark.parametrize("mutant", [m.name for m in CATALOGUE if m.subtle])
def test_the_subtle_mutants_are_still_caught(matrix, mutant):
    assert matrix.loc[mutant, "caught_by"] >= 1


def test_the_matrix_marks_checks_that_do_not_apply(matrix):
    assert matrix.loc["eb-missing-log-ratio", "geweke"] == ""
    assert matrix.loc["theta-mean-for-total", "marginal likelihood"] == ""


def draw_omega_unhalved(rng, state, stats, priors):
    """A slip not in the catalogue: omega ~ Gamma(c + m/2, d + lam sum (theta_i - mu)^2)."""
    spread = ((np.asarray(state.theta) - np.asarray(state.mu)[..., None]) ** 2).sum(-1)
    rate = priors.d + np.asarray(state.lam) * spread
    return rng.standard_gamma(priors.c + stats.m / 2, np.shape(rate)) / rate


def test_a_users_wrong_conditional_goes_through_unchanged(references):
    """The checks of the matrix above, on a slip of the user's."""
    verdict = suite.check_sampler(gibbs.Conditionals(draw_omega=draw_omega_unhalved),
                                  references=references, checks=WITHOUT_AGREEMENT, seed=0)
    assert not verdict.passed
    assert sum(not outcome.passed for outcome in verdict.outcomes) >= 2
    assert "draw_omega=draw_omega_unhalved" in verdict.subject
    assert [o.check for o in verdict.outcomes] == [check for check in suite.SAMPLER_CHECKS
                                                   if check not in AGREEMENT]


def draw_theta_lazy(rng, state, stats, priors):
    """Keeps each theta_i 98% of the time, otherwise draws it from its full conditional: a
    correct kernel (both moves leave the conditional invariant) with ESS ~0.01 per draw."""
    fresh = gibbs.draw_theta(rng, state, stats, priors)
    return np.where(rng.uniform(size=np.shape(fresh)) < 0.98, state.theta, fresh)


def draw_theta_lazy_high(rng, state, stats, priors):
    """Keeps each theta_i 98% of the time, otherwise draws it one conditional SD too high."""
    _, precision = gibbs.theta_conditional(stats, state.mu, state.lam, state.omega)
    fresh = gibbs.draw_theta(rng, state, stats, priors) + 1 / np.sqrt(precision)
    return np.where(rng.uniform(size=np.shape(fresh)) < 0.98, state.theta, fresh)


def test_a_lazy_biased_kernel_fails_both_agreement_checks(references):
    """Even at 4 x 10000 draws (the mixing budget) some theta_i has an ESS near 200 < 400, so
    both checks say "cannot verify"; the quantities that do mix disagree (125 of 825 rows at
    seed 0), so the checks fail rather than stay incomplete."""
    verdict = suite.check_sampler(gibbs.Conditionals(draw_theta=draw_theta_lazy_high),
                                  references=references, seed=0, checks=AGREEMENT)
    assert verdict.status == "failed"
    for check in AGREEMENT:
        outcome = verdict[check]
        assert outcome.statistic == "cannot verify: lowest ESS", outcome
        assert outcome.value < outcome.threshold == diagnostics.ESS_FLOOR
        assert outcome.result.posterior.posterior.sizes["draw"] == \
            suite.MIXING_BUDGET * suite.QUICK.gibbs_draws
        assert {"cannot verify", "disagree"} <= set(outcome.table.verdict)
        assert outcome.status == "failed"


def test_a_lazy_but_correct_kernel_cannot_be_verified_at_quick_settings(references):
    """Right stationary distribution, too few effective draws: "cannot verify", and the verdict
    is incomplete, neither passed nor failed; it says what more draws might do."""
    verdict = suite.check_sampler(gibbs.Conditionals(draw_theta=draw_theta_lazy),
                                  references=references, seed=0, checks=("agreement vs exact",))
    outcome = verdict["agreement vs exact"]
    assert outcome.statistic == "cannot verify: lowest ESS"
    assert verdict.status == "incomplete" and not verdict.passed
    assert "INCOMPLETE (agreement vs exact: cannot verify: lowest ESS" in str(verdict)
    assert "more draws (--full)" in str(verdict)


def test_the_package_sampler_clears_the_mixing_gate_tenfold_and_agrees(references):
    """Its lowest bulk or tail ESS over the 165 compared quantities at 4 x 2500 draws was 6332 at
    seed 0 (docs/validation.md): the chains are not extended, and the gate has room to spare."""
    verdict = suite.check_sampler(references=references, seed=0, checks=AGREEMENT)
    assert verdict.passed, str(verdict)
    assert verdict["agreement vs nuts"].statistic == "min Holm-adjusted p"
    outcome = verdict["agreement vs exact"]
    assert outcome.statistic == "min Holm-adjusted p"
    mixing = outcome.result.agreement.mixing
    sampler = mixing[mixing.engine == "sampler"]
    assert sampler[["ess_bulk", "ess_tail"]].to_numpy().min() > 10 * diagnostics.ESS_FLOOR
    assert sampler.r_hat.max() <= diagnostics.RHAT_CEILING
    assert outcome.result.posterior.posterior.sizes["draw"] == suite.QUICK.gibbs_draws
    # one run of the sampler for both checks, the same whichever of them is asked for
    assert verdict["agreement vs nuts"].result.posterior is outcome.result.posterior
    alone = suite.check_sampler(references=references, seed=0, checks=("agreement vs nuts",))
    pd.testing.assert_frame_equal(alone["agreement vs nuts"].table,
                                  verdict["agreement vs nuts"].table)


def test_the_verdict_is_a_table_and_files(references, tmp_path):
    verdict = suite.check_sampler(references=references,
                                  checks=("consistency (small)", "marginal likelihood"))
    assert verdict.passed
    assert list(verdict.table.columns) == ["check", "statistic", "value", "threshold", "passed",
                                           "status", "seconds"]
    assert verdict["marginal likelihood"].value < 1e-12
    assert "PASSED" in str(verdict)
    written = verdict.save(tmp_path)
    assert all(path.is_file() for path in written)
    saved = json.loads((tmp_path / "verdict.json").read_text())
    assert saved["passed"] is True and saved["status"] == "passed"
    with pytest.raises(KeyError, match="no check 'sbc'"):
        verdict["sbc"]


def test_each_checks_files_are_written_as_it_finishes_and_not_again(references, tmp_path):
    """check_sampler(out=) saves each check's table (and SBC's figure) in the process that ran
    it; Verdict.save in the same folder adds the verdict's own files and rewrites none."""
    checks = ("consistency (small)", "sbc", "marginal likelihood")
    verdict = suite.check_sampler(references=references, checks=checks, jobs=2, out=tmp_path)
    expected = {tmp_path / "check_consistency_small.csv", tmp_path / "check_sbc.csv",
                tmp_path / "sbc.png", tmp_path / "check_marginal_likelihood.csv"}
    assert {path for outcome in verdict.outcomes for path in outcome.files} == expected
    written_at = {path: path.stat().st_mtime_ns for path in expected}
    saved = verdict.save(tmp_path)
    assert set(saved) == expected | {tmp_path / "verdict.csv", tmp_path / "verdict.json"}
    assert {path: path.stat().st_mtime_ns for path in expected} == written_at
    elsewhere = verdict.save(tmp_path / "copy")  # another folder: written there
    assert {path.name for path in elsewhere} == {path.name for path in saved}


def test_a_check_that_finished_is_saved_when_a_later_one_raises(references, tmp_path):
    """One process runs the checks in order; the marginal likelihood, after consistency (small),
    raises in the user's function, and the consistency table is on disk already."""
    def log_marginal_likelihood(stats, mu, lam, omega):
        raise ValueError("a slip in the user's code")

    with pytest.raises(UserFunctionError, match="raised ValueError: a slip in the user.s code"):
        suite.check_sampler(gibbs.Conditionals(), references=references, jobs=1, out=tmp_path,
                            log_marginal_likelihood=log_marginal_likelihood,
                            checks=("consistency (small)", "marginal likelihood"))
    assert [path.name for path in tmp_path.iterdir()] == ["check_consistency_small.csv"]
    alone = suite.check_sampler(gibbs.Conditionals(), references=references,
                                checks=("consistency (small)",))
    saved = pd.read_csv(tmp_path / "check_consistency_small.csv")
    np.testing.assert_allclose(saved.ks_p, alone["consistency (small)"].table.ks_p, rtol=1e-12)


def test_the_same_seed_gives_the_same_verdict(references):
    checks = ("consistency (small)", "geweke", "sbc")
    first, second = (suite.check_sampler(references=references, seed=3, checks=checks)
                     for _ in range(2))
    assert [o.value for o in first.outcomes] == [o.value for o in second.outcomes]


def test_no_reference_shares_a_random_stream_with_a_check():
    # Before, the exact posterior's seed was the consistency check's and NUTS's the small
    # consistency check's: a reference and what is compared with it drew the same numbers.
    data = load_dataset()
    for seed in (0, 1, 12345):
        references = suite.References(data, Priors.weakly_informative(data), suite.QUICK, seed)
        reference_seeds = {references.exact_seed, references.nuts_seed, references.small_seed}
        check_seeds = {suite._streams(seed)[check] for check in suite.CHECKS}
        assert len(reference_seeds) == 3 and len(check_seeds) == len(suite.CHECKS)
        assert not reference_seeds & check_seeds


def test_an_unknown_check_is_named(references):
    with pytest.raises(ValueError, match="unknown check 'vibes'"):
        suite.check_sampler(references=references, checks=("vibes",))


def published_cells(page: str) -> dict[str, dict[str, str]]:
    """The detection matrix in `page` (written by `hiercheck mutants --write`): derivation ->
    {column: cell}, the derivation's name without its "(subtle)" mark."""
    text = (README.parent / page).read_text()
    block = text[text.index(MATRIX_START):text.index(MATRIX_END)]
    lines = [line for line in block.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = [dict(zip(header, (cell.strip() for cell in line.strip("|").split("|"))))
            for line in lines[2:]]
    return {re.sub(r" \(subtle\)$", "", row["derivation"]): row for row in rows}


@pytest.mark.parametrize("page", ["README.md", "docs/derivation.md"])
def test_the_published_matrix_is_the_one_computed(matrix, page):
    """The tables in the README and the derivation (`hiercheck mutants --write`, the same data,
    settings and seed) must give, cell for cell, what this recomputation gives in every column
    it computes (all but the agreement checks)."""
    published = published_cells(page)
    assert set(published) == set(matrix.index)
    for derivation, row in matrix.iterrows():
        computed = {check: "" if row[check] == "" else ("caught" if row[check] else "-")
                    for check in WITHOUT_AGREEMENT}
        assert {check: published[derivation][check] for check in WITHOUT_AGREEMENT} == computed, \
            f"{page}, {derivation}: rerun `hiercheck mutants --write {page}`"
