"""A draw function must depend on (rng, state, data) alone: consistency calls each function
twice at one state with generators in the same state, the whole sweep run in between, and fails
a function whose two returns differ (the "repeatable" row of its block). Two ways students'
samplers break it: a value kept from the previous sweep, and numpy's global generator."""

import numpy as np
import pytest

from hiercheck import check_gibbs
from hiercheck.samplers.student import student_conditionals


@pytest.fixture(scope="module")
def references(mathtest):
    from hiercheck.models.student import student_model
    from hiercheck.validation.generic import ModelReferences

    return ModelReferences(student_model(mathtest), seed=0)


def previous_mu_sweep(data):
    """The student's sweep, but sigma^2 and tau^2 drawn given the mu of the previous sweep,
    which draw_mu keeps before it draws the new one (every marginal stays nearly right)."""
    sweep, kept = student_conditionals(data), {}

    def draw_mu(rng, state, data_):
        kept["mu"] = state["mu"]
        return sweep["mu"](rng, state, data_)

    def given_kept_mu(name):
        def draw(rng, state, data_):
            return sweep[name](rng, {**state, "mu": kept.get("mu", state["mu"])}, data_)
        draw.__name__ = f"draw_{name}"
        return draw
    return {**sweep, "mu": draw_mu, "sigma2": given_kept_mu("sigma2"),
            "tau2": given_kept_mu("tau2")}


def _repeatable(outcome):
    rows = outcome.table[outcome.table.test == "repeatable"]
    return dict(zip(rows.block, rows.p))


@pytest.mark.slow
def test_the_students_own_functions_are_repeatable(mathtest, references):
    [outcome] = check_gibbs(references.model, student_conditionals(mathtest),
                            checks=("consistency",), references=references).outcomes
    assert outcome.status == "passed"
    assert set(_repeatable(outcome).values()) == {1.0}


@pytest.mark.slow
def test_a_mu_kept_from_the_previous_sweep_is_failed_by_name(mathtest, references):
    """sigma^2's and tau^2's functions read the kept mu: their repeated calls differ (p = 0)
    and the verdict fails, the table naming draw_sigma2 and draw_tau2; mu's own function reads
    the state and returns the same both times."""
    verdict = check_gibbs(references.model, previous_mu_sweep(mathtest),
                          checks=("consistency",), references=references)
    [outcome] = verdict.outcomes
    assert verdict.status == "failed"
    assert _repeatable(outcome) == {"theta": 1.0, "mu": 1.0, "sigma2": 0.0, "tau2": 0.0}
    failed = outcome.table[(outcome.table.test == "repeatable") & (outcome.table.p == 0)]
    assert list(failed.coordinate) == ["draw_sigma2 called twice alike",
                                       "draw_tau2 called twice alike"]


@pytest.mark.slow
def test_numpys_global_generator_is_failed(mathtest, references):
    """theta drawn with np.random.normal, not the rng handed in: right in law, not repeatable."""
    sweep = student_conditionals(mathtest)

    def draw_theta(rng, state, data):
        return sweep["theta"](np.random.default_rng(np.random.randint(2**31)), state, data)

    [outcome] = check_gibbs(references.model, {**sweep, "theta": draw_theta},
                            checks=("consistency",), references=references).outcomes
    assert outcome.status == "failed"
    assert _repeatable(outcome)["theta"] == 0.0
