"""The math-test hierarchy written the student's way (`hiercheck.models.student`,
`hiercheck.samplers.student`): the correct sweep passes the checks that apply under the course's
improper priors, each slip of a port fails consistency at its own block, the model is the
flagship's under `Priors.course()`, and docs/five-minutes.md prints what it shows."""

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hiercheck import check_gibbs
from hiercheck.errors import SettingsError
from hiercheck.models import Priors
from hiercheck.models.student import student_model
from hiercheck.samplers.student import SLIPS, student_conditionals
from tests.test_readme import python_blocks, text_blocks, without_seconds

PAGE = Path(__file__).resolve().parents[1] / "docs" / "five-minutes.md"
APPLICABLE = ("consistency", "agreement vs nuts")  # Geweke and SBC need a proper prior


@pytest.fixture(scope="module")
def references(mathtest):
    """The compiled model and NUTS on the math-test data, shared by every check below."""
    from hiercheck.validation.generic import ModelReferences

    return ModelReferences(student_model(mathtest), seed=0)


@pytest.mark.slow
def test_the_students_sweep_passes_the_checks_that_apply(mathtest, references):
    """Consistency and agreement with NUTS pass (p 0.30 and 0.86 at seed 0); Geweke's test and
    SBC are left out: under the flat mu and Jeffreys' sigma^2 they say "not applicable", which
    makes a verdict of all four "incomplete" (docs/five-minutes.md shows that verdict)."""
    verdict = check_gibbs(references.model, student_conditionals(mathtest), checks=APPLICABLE,
                          references=references)
    assert [(o.check, o.status) for o in verdict.outcomes] == [(c, "passed") for c in APPLICABLE]


@pytest.mark.slow
@pytest.mark.parametrize("slip", sorted(SLIPS))
def test_each_slip_fails_consistency_at_its_own_block(mathtest, references, slip):
    """Every slip's p-value underflows to 0, and only at the block of the variable it draws: the
    other three functions, each started from its own exact conditional, pass."""
    verdict = check_gibbs(references.model, student_conditionals(mathtest, slip),
                          checks=("consistency",), references=references)
    outcome = verdict["consistency"]
    assert outcome.status == "failed" and outcome.value < 1e-15
    smallest = outcome.table.groupby("block")["p_holm"].min()
    assert list(smallest[smallest < outcome.threshold].index) == [SLIPS[slip][0]]


@pytest.mark.slow
def test_scipys_inverse_gamma_with_the_rate_as_scale_passes(mathtest, references):
    """The slip draw_tau2_scipy_scale_as_inverse_rate is the scale's only wrong reading: scipy's
    invgamma.rvs(shape, scale=rate) is tau^2's conditional, and consistency passes it."""
    from scipy import stats

    P = mathtest.m

    def draw_tau2(rng, state, data):
        rate = (1 + np.sum((state["theta"] - state["mu"]) ** 2) / state["sigma2"]) / 2
        return stats.invgamma.rvs((P + 1) / 2, scale=rate, random_state=rng)

    sweep = {**student_conditionals(mathtest), "tau2": draw_tau2}
    verdict = check_gibbs(references.model, sweep, checks=("consistency",),
                          references=references)
    assert verdict["consistency"].status == "passed", verdict


def test_an_unknown_slip_is_refused(mathtest):
    with pytest.raises(SettingsError, match="unknown slip 'draw_mu_wrong'; slips are"):
        student_conditionals(mathtest, "draw_mu_wrong")


def test_the_functions_draw_one_state_from_raw_scores(mathtest):
    """A state of the model's shapes in, draws of the same shapes out, from the scores alone."""
    state = {"theta": np.full(mathtest.m, 48.0), "mu": np.array(48.0),
             "sigma2": np.array(85.0), "tau2": np.array(0.3)}
    rng = np.random.default_rng(0)
    for name, draw in student_conditionals(mathtest).items():
        assert np.shape(draw(rng, state, {"y": mathtest.values})) == np.shape(state[name])


def test_the_sampler_needs_no_pymc():
    code = "import sys, hiercheck.samplers.student; print('pymc' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.stdout.strip() == "False", done.stderr


@pytest.mark.slow
def test_the_students_model_is_the_flagship_under_the_course_priors(mathtest):
    """The student's log density in (theta, mu, sigma2, tau2) against the flagship's reference
    model under `Priors.course()` at lam = 1/sigma2, omega = 1/tau2: densities of variables
    related by lam = 1/sigma2, omega = 1/tau2 differ by the log Jacobian
    log |d(lam, omega)/d(sigma2, tau2)| = -2 log sigma2 - 2 log tau2, and by a constant (the
    flagship writes omega's Gamma(1/2, 1/2) with its normalizing constant, and so does PyMC's
    inverse gamma, but either may add others); four random points."""
    from pymc.model.transform.conditioning import remove_value_transforms

    from hiercheck.models.reference import joint_logp_function

    model = remove_value_transforms(student_model(mathtest))
    student = model.compile_logp()
    flagship = joint_logp_function(mathtest, Priors.course())
    rng = np.random.default_rng(7)
    differences = []
    for _ in range(4):
        theta, mu = rng.normal(48, 3, mathtest.m), rng.normal(48, 1)
        sigma2, tau2 = rng.gamma(50, 85 / 50), rng.gamma(20, 0.3 / 20)
        mine = float(student({"mu": mu, "sigma2": sigma2, "tau2": tau2, "theta": theta}))
        theirs = flagship(theta, mu, 1 / sigma2, 1 / tau2)
        differences.append(mine - theirs - (-2 * math.log(sigma2) - 2 * math.log(tau2)))
    np.testing.assert_allclose(differences, differences[0], atol=1e-8)


@pytest.mark.slow
def test_the_five_minute_page_prints_what_it_shows(capsys):
    """Every code block of docs/five-minutes.md runs, in order, in one namespace; what the
    blocks that print print is the page's text block after them, cell for cell but for a
    verdict's seconds. The correct sweep is incomplete (Geweke and SBC not applicable), the
    slip fails, at sigma2 alone, and its diagnosis has the one row of sigma2."""
    text = PAGE.read_text()
    blocks, shown = python_blocks(text), text_blocks(text)
    printing = [block for block in blocks if "print(" in block]
    assert len(printing) == len(shown) == 4
    namespace: dict = {}
    for block in blocks:
        exec(block, namespace)
        if block in printing:
            printed, expected = capsys.readouterr().out, shown[printing.index(block)]
            if "check_gibbs(" in block:
                assert without_seconds(printed) == without_seconds(expected)
            else:
                assert printed.split() == expected.split()
    verdict, slip = namespace["verdict"], namespace["slip"]
    assert verdict.status == "incomplete"
    assert [o.status for o in verdict.outcomes] == ["passed", "passed", "incomplete", "incomplete"]
    assert slip.status == "failed" and slip["consistency"].value < 1e-15
    assert list(namespace["diagnosis"].block) == ["sigma2"]


@pytest.mark.slow
def test_the_built_in_student_model_prints_where_its_slip_is(capsys, tmp_path):
    """`validate --model student --mutant draw_sigma2_rate_as_scale --fail-fast`: consistency
    fails (exit 1), and the command prints diagnose()'s worst rows (sigma2's SD ratio near 0:
    numpy's scale given the rate) and writes diagnosis.csv and diagnosis.png."""
    from hiercheck.validation.cli import main

    code = main(["validate", "--model", "student", "--mutant", "draw_sigma2_rate_as_scale",
                 "--fail-fast", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "where the slip is (Verdict.diagnose(); every row in diagnosis.csv):" in out
    import pandas as pd

    frame = pd.read_csv(tmp_path / "diagnosis.csv")
    assert frame.block.iloc[0] == "sigma2" and frame.sd_ratio.iloc[0] < 1e-6
    assert (tmp_path / "diagnosis.png").stat().st_size > 0


@pytest.mark.slow
def test_the_students_sweep_as_an_engine_agrees_with_the_exact_posterior(mathtest):
    """`samplers.student.sample` (the built-in student model's engine, for `fit --model
    student`) against the flagship's exact posterior by quadrature under Priors.course(), the
    same model in lam = 1/sigma^2 and omega = 1/tau^2: E sigma^2 and E tau^2 within 5 combined
    Monte Carlo SEs (the Gibbs draws' SE from their ESS)."""
    import arviz as az

    from hiercheck.samplers import exact
    from hiercheck.samplers.student import sample

    gibbs = sample(mathtest, draws=2000, chains=4, seed=3)
    reference = exact.sample(mathtest, Priors.course(), draws=8000, chains=1, seed=4).posterior
    for name, exact_draws in (("sigma2", 1 / reference.lam.values.ravel()),
                              ("tau2", 1 / reference.omega.values.ravel())):
        draws = gibbs.posterior[name]
        se = float(az.mcse(draws.to_dataset())[name])
        combined = math.sqrt(se**2 + exact_draws.var() / exact_draws.size)
        assert abs(float(draws.mean()) - exact_draws.mean()) < 5 * combined, name
