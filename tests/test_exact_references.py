"""Consistency's exact references: a block whose full conditional is a recognized conjugate one
(`hiercheck.validation.conjugate`) is tested against exact draws of it, by the same tests, and
the consistency table says which reference each block used.

False alarms: the KS test below runs once on a fixed seed at level 1e-3, the moment comparisons
at 5 standard errors.
"""

import numpy as np
import pytest
from scipy import special
from scipy import stats as st

from hiercheck.validation import generic

# family, its parameters (PyMC's names, in `_SCALAR_FAMILIES`' order), draws of x, and PyMC's
# transform of its support to u: what the table's formulas for u's law must match
SCALARS = {
    "normal": ((1.5, 0.7), lambda rng, n: rng.normal(1.5, 0.7, n), lambda x: x),
    "gamma": ((2.5, 3.0), lambda rng, n: rng.gamma(2.5, 1 / 3.0, n), np.log),
    "inversegamma": ((2.5, 3.0), lambda rng, n: 1 / rng.gamma(2.5, 1 / 3.0, n), np.log),
    "beta": ((0.8, 2.5), lambda rng, n: rng.beta(0.8, 2.5, n), special.logit),
}


@pytest.mark.parametrize("family", list(SCALARS))
def test_an_exact_scalar_is_its_familys_law_on_the_unconstrained_scale(family):
    """The CDF of u and its mean, variance and fourth central moment (from the cumulants of
    log-gamma variables) against 400,000 draws of x mapped to u."""
    parameters, draw, to_u = SCALARS[family]
    u = to_u(draw(np.random.default_rng(1), 400_000))
    exact = generic._ExactScalar(family, parameters)
    assert st.kstest(u, exact.cdf_at).pvalue > 1e-3
    mean, variance, fourth = exact.moments()
    centered = u - u.mean()
    assert abs(u.mean() - mean) < 5 * np.sqrt(variance / u.size)
    assert abs(u.var() - variance) < 5 * np.sqrt((fourth - variance**2) / u.size)
    assert np.mean(centered**4) == pytest.approx(fourth, rel=0.05)


@pytest.fixture(scope="module")
def bloodpressure():
    """The built-in blood-pressure model's references, its consistency states drawn from the
    package's Gibbs engine (4 chains of 200 draws) in place of NUTS, which takes a minute."""
    from hiercheck.validation.builtin_models import BUILTIN_MODELS

    builtin = BUILTIN_MODELS["bloodpressure"]
    data = builtin.load()
    references = generic.ModelReferences(builtin.build_model(data), generic.GENERIC_QUICK, 0,
                                         "bloodpressure")
    posterior = builtin.sample(data, draws=200, chains=4, seed=1).posterior
    references.__dict__["nuts"] = {name: posterior[name].to_numpy()
                                   for name in references.variables}
    return builtin, references


def _consistency(references, conditionals):
    [outcome] = generic.check_gibbs(references.model, conditionals, references=references,
                                    checks=("consistency",), batched=True).outcomes
    return outcome


@pytest.mark.slow
def test_the_blood_pressure_sweep_passes_against_exact_draws_of_every_block(bloodpressure):
    """Every block's conditional is recognized (theta, (mu, beta), lam, omega), so every row is
    tested against exact draws; the exact joint reference accepts every draw."""
    builtin, references = bloodpressure
    outcome = _consistency(references, builtin.conditionals())
    assert outcome.passed, outcome.table.sort_values("p").head()
    per_state = outcome.table[(outcome.table.origin != "pooled")
                              & (outcome.table.test != "repeatable")]
    used = per_state.groupby("block").reference.agg(set).to_dict()
    assert used == {"theta": {"exact normal"}, "(mu, beta)": {"exact mvnormal"},
                    "lam": {"exact gamma"}, "omega": {"exact gamma"}}
    pooled = outcome.table[outcome.table.origin == "pooled"]
    assert set(pooled.block) == set(used) and set(pooled.reference) == {"exact (pooled)"}
    assert (outcome.table.reference_acceptance.dropna() == 1.0).all()


@pytest.mark.slow
@pytest.mark.parametrize("mutant", ["mu-beta-independent", "theta-ignores-treatment",
                                    "lam-misses-theta-prior", "omega-misses-lam"])
def test_every_blood_pressure_mutant_is_still_caught_by_consistency(bloodpressure, mutant):
    """docs/derivation.md 7.4: consistency caught each mutant against the numerical references;
    the joint mu-beta-independent has the right marginals, and only the two-sample tests of
    (mu, beta) against exact joint draws see it."""
    builtin, references = bloodpressure
    outcome = _consistency(references, builtin.mutants()[mutant])
    assert not outcome.passed
