"""The exercise sheet's priors, part (C): flat mu, Jeffreys' sigma^2, tau^2 ~ inverse-Gamma(1/2, 1/2).
Improper limits are allowed where the posterior stays proper, refused where it does not, and the
engines agree under them with the exact posterior (itself checked against its proper limit)."""

import math

import numpy as np
import pytest

from hiercheck import HiercheckError, Priors
from hiercheck.errors import PriorError
from hiercheck.models.engine import az
from hiercheck.samplers import exact, gibbs

SHEET = "a=0,b=0,phi=0,c=0.5,d=0.5"


def test_the_sheets_line_is_the_course_priors():
    assert Priors.from_string(SHEET) == Priors.course()
    assert not Priors.course().is_proper and Priors().is_proper


@pytest.mark.parametrize("setting, message", [
    ("d=0", "with d = 0, omega's prior .* needs c < 0"),
    ("c=0,d=0", "with d = 0, omega's prior .* needs c < 0"),
    ("a=-1", "must be >= 0"), ("d=-1", "must be >= 0"), ("phi=-0.5", "must be >= 0")])
def test_priors_that_leave_the_posterior_improper_are_refused(setting, message):
    with pytest.raises(PriorError, match=message):
        Priors.from_string(setting, base=Priors.course())


def test_the_improper_densities_are_jeffreys_and_flat():
    priors = Priors.course()
    lam = np.array([0.01, 1.0, 30.0])
    np.testing.assert_allclose(priors.logpdf_lam(lam), -np.log(lam))
    np.testing.assert_array_equal(priors.logpdf_mu([-1e3, 0.0, 7.0]), 0.0)
    # omega's prior stays proper: Gamma(1/2, 1/2), the chi-square with one degree of freedom
    from scipy import stats
    np.testing.assert_allclose(priors.logpdf_omega(lam), stats.chi2.logpdf(lam, 1))


def test_an_improper_prior_cannot_be_simulated():
    with pytest.raises(HiercheckError, match="needs proper priors.*a = 0, b = 0, phi = 0"):
        Priors.course().sample(np.random.default_rng(0), 3)


def test_the_flat_exact_posterior_is_the_limit_of_proper_ones(mathtest):
    """phi -> 0 and a, b -> 0: the posterior of every quantity converges to the flat one's."""
    flat = exact.posterior(mathtest, Priors.course())
    near = exact.posterior(mathtest, Priors(a=1e-10, b=1e-10, c=0.5, d=0.5, nu=0.0, phi=1e-14))
    for name in ("mu", "sigma", "tau", "theta", "kappa"):
        np.testing.assert_allclose(flat.mean(name), near.mean(name), rtol=1e-7)
        np.testing.assert_allclose(flat.sd(name), near.sd(name), rtol=1e-6)


def test_gibbs_agrees_with_the_exact_posterior_under_the_sheets_priors(mathtest):
    """Posterior means of mu, sigma, tau and every kappa_i within 4 Monte Carlo standard errors
    (ArviZ's MCSE of the Gibbs draws; the exact values have none); seeded."""
    priors = Priors.course()
    truth = exact.posterior(mathtest, priors)
    draws = gibbs.sample(mathtest, priors, draws=20_000, chains=4, seed=5)
    mcse = az.mcse(draws, var_names=["mu", "sigma", "tau", "kappa"])
    for name in ("mu", "sigma", "tau", "kappa"):
        estimate = draws.posterior[name].mean(("chain", "draw")).values
        z = (estimate - truth.mean(name)) / mcse[name].values
        assert np.all(np.abs(z) < 4), (name, z)


def test_kappa_is_the_weight_of_mu_in_the_conditional_mean_of_theta(mathtest):
    """E(theta_i | y) = E[kappa_i mu + (1 - kappa_i) ybar_i | y], by the exact posterior's own
    quadrature for theta and an average over its exact draws for the right side."""
    truth = exact.posterior(mathtest, Priors.course())
    draws = truth.draw(np.random.default_rng(1), 200_000)
    kappa = 1.0 / (1.0 + mathtest.n / draws["omega"][:, None])
    right = (kappa * draws["mu"][:, None] + (1 - kappa) * mathtest.ybar).mean(0)
    spread = (kappa * draws["mu"][:, None] + (1 - kappa) * mathtest.ybar).std(0)
    assert np.all(np.abs(right - truth.mean("theta")) < 4 * spread / math.sqrt(200_000))


def test_fit_runs_under_the_sheets_priors(packaged_csv, tmp_path, capsys):
    from hiercheck.validation.cli import main

    for engine in ("gibbs", "exact"):
        assert main(["fit", "--engine", engine, "--data", str(packaged_csv("mathtest.csv")),
                     "--group", "school", "--value", "mathscore", "--prior", SHEET,
                     "--draws", "500", "--out", str(tmp_path)]) == 0
    assert "phi=0.0" in capsys.readouterr().out


@pytest.mark.slow
def test_the_reference_model_writes_jeffreys_and_a_flat_mu(mathtest):
    """The PyMC joint density under the sheet's priors differs from its value under a proper
    lam ~ Gamma(1, 1), mu ~ N(0, 1) by exactly those priors' log densities, up to a constant."""
    from hiercheck.models.reference import joint_logp_function

    proper = Priors(a=1.0, b=1.0, c=0.5, d=0.5, nu=0.0, phi=1.0)
    course, reference = (joint_logp_function(mathtest, p) for p in (Priors.course(), proper))
    rng = np.random.default_rng(2)
    differences = []
    for _ in range(4):
        theta, mu = rng.normal(48, 3, mathtest.m), rng.normal(48, 1)
        lam, omega = rng.gamma(5, 0.01), rng.gamma(5, 0.5)
        extra = (-math.log(lam)) - (-lam - 0.5 * math.log(2 * math.pi) - 0.5 * mu * mu)
        differences.append(course(theta, mu, lam, omega) - reference(theta, mu, lam, omega) - extra)
    np.testing.assert_allclose(differences, differences[0], atol=1e-8)


@pytest.mark.slow
def test_nuts_agrees_with_the_exact_posterior_under_the_sheets_priors(mathtest):
    from hiercheck.models.reference import sample_nuts

    truth = exact.posterior(mathtest, Priors.course())
    draws = sample_nuts(mathtest, Priors.course(), draws=1000, chains=4, seed=3)
    mcse = az.mcse(draws, var_names=["mu", "sigma", "tau"])
    for name in ("mu", "sigma", "tau"):
        z = (float(draws.posterior[name].mean()) - truth.mean(name)) / float(mcse[name])
        assert abs(z) < 4, (name, z)
