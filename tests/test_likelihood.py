"""The exact checks of the empirical-Bayes objectives (hiercheck.validation.likelihood) and the
two-sided comparison with statsmodels (hiercheck.validation.statsmodels_check).

The references are checked against computations that share none of their code: the restricted
likelihood against the density of N - 1 orthonormal error contrasts (an explicit contrast matrix,
scipy's multivariate normal), and against statsmodels' REML log-likelihood at its own optimum.
Everything here is deterministic."""

import math
import types

import numpy as np
import pytest
from scipy import integrate, linalg
from scipy import stats as st

from hiercheck.errors import UserFunctionError
from hiercheck.models import Priors, load_dataset
from hiercheck.samplers import empirical_bayes as eb
from hiercheck.samplers.marginal import log_marginal_likelihood
from hiercheck.validation import eb_references, likelihood, statsmodels_check, suite
from hiercheck.validation.mutants import get_mutant

LOG_2PI = math.log(2 * math.pi)


@pytest.fixture(scope="module")
def datasets():
    return {name: load_dataset(name) for name in ("rail", "dyestuff2", "radon")}


def error_contrast_log_density(data, lam, omega):
    """log density of K'y, K (N x N-1) an orthonormal basis of the complement of 1 (from a full
    QR factorization), under y ~ N(mu 1, V): N(0, K'VK), free of mu. V is formed whole."""
    n = data.N
    basis, _ = linalg.qr(np.ones((n, 1)))
    contrasts = basis[:, 1:]
    same_school = data.codes[:, None] == data.codes[None, :]
    covariance = (np.eye(n) + same_school / omega) / lam
    return st.multivariate_normal.logpdf(contrasts.T @ data.values, np.zeros(n - 1),
                                         contrasts.T @ covariance @ contrasts)


@pytest.mark.parametrize("name", ["rail", "dyestuff2"])
@pytest.mark.parametrize("omega", [1e-3, 0.7, 50.0])
def test_the_restricted_reference_is_the_error_contrast_density_less_half_log_n(datasets, name,
                                                                                 omega):
    """The flat-prior convention (statsmodels') sits 1/2 log N below the density of N - 1
    orthonormal error contrasts, at every (lam, omega): docs/derivation.md, section 4.7."""
    data = datasets[name]
    lam = 1.0 / data.stats.pooled_variance
    want = error_contrast_log_density(data, lam, omega) - 0.5 * math.log(data.N)
    assert eb_references.dense_restricted_log_likelihood(data, lam, omega) == pytest.approx(
        want, rel=1e-12)
    assert eb_references.flat_prior_log_likelihood(data, lam, omega) == pytest.approx(
        want, rel=1e-12)


def adaptive_integrated_log_likelihood(data, mu, lam, omega):
    """log p(y | mu, lam, omega) as scipy's adaptive quadrature of each school's joint density
    over theta_i, from the scores (no Gauss-Legendre rule, no sufficient statistics)."""
    total = 0.0
    for i in range(data.m):
        scores = data.values[data.codes == i]
        sd = 1 / math.sqrt(lam * (scores.size + omega))
        peak = (scores.sum() + omega * mu) / (scores.size + omega)

        def log_joint(theta, scores=scores):
            return (st.norm.logpdf(scores, theta, 1 / math.sqrt(lam)).sum()
                    + st.norm.logpdf(theta, mu, 1 / math.sqrt(lam * omega)))
        top = log_joint(peak)
        area, _ = integrate.quad(lambda t: math.exp(log_joint(t) - top), peak - 15 * sd,
                                 peak + 15 * sd, points=[peak], epsabs=0, epsrel=1e-13, limit=200)
        total += top + math.log(area)
    return total


@pytest.mark.parametrize("name", ["rail", "dyestuff2"])
@pytest.mark.parametrize("omega", [1e-3, 0.7, 50.0, 1e4])
def test_the_integrated_reference_matches_adaptive_quadrature_and_the_dense_density(
        datasets, name, omega):
    data = datasets[name]
    lam = 1.0 / data.stats.pooled_variance
    mu = float(data.values.mean()) + 2 / math.sqrt(lam * omega)  # off the scores' mean
    value = eb_references.integrated_log_likelihood(data, mu, lam, omega)
    assert value == pytest.approx(adaptive_integrated_log_likelihood(data, mu, lam, omega),
                                  rel=1e-12)
    assert value == pytest.approx(eb_references.dense_log_likelihood(data, mu, lam, omega), rel=1e-12)


@pytest.mark.parametrize("reml", [False, True])
def test_the_dense_references_give_statsmodels_llf_at_its_optimum(datasets, reml):
    data = datasets["radon"]
    result = statsmodels_check.statsmodels_fit(data, reml)[1]
    mu, lam, omega = statsmodels_check.statsmodels_optimum(result)
    dense = (eb_references.dense_restricted_log_likelihood(data, lam, omega) if reml
             else eb_references.dense_log_likelihood(data, mu, lam, omega))
    assert dense == pytest.approx(result.llf, rel=1e-12)


@pytest.mark.parametrize("name", ["rail", "dyestuff2", "radon"])
def test_the_packages_restricted_likelihood_passes(datasets, name):
    data = datasets[name]
    result = likelihood.check_restricted_likelihood(eb.restricted_loglik, data,
                                                    Priors.weakly_informative(data))
    assert result.passed
    assert result.max_relative_error < 1e-13  # rounding: 4e-16 measured


@pytest.mark.parametrize("name", ["rail", "radon"])
def test_a_restricted_likelihood_off_by_log_2pi_fails(datasets, name):
    data = datasets[name]
    wrong = get_mutant("reml-2pi-sign").restricted_log_likelihood
    result = likelihood.check_restricted_likelihood(wrong, data, Priors.weakly_informative(data))
    assert not result.passed
    np.testing.assert_allclose(result.table.difference, -LOG_2PI, rtol=1e-9)


def test_the_error_contrast_convention_fails_by_half_log_n(datasets):
    data = datasets["rail"]

    def contrast_convention(stats, lam, omega):
        return eb.restricted_loglik(stats, lam, omega) + 0.5 * math.log(stats.N)

    result = likelihood.check_restricted_likelihood(contrast_convention, data,
                                                    Priors.weakly_informative(data))
    assert not result.passed
    np.testing.assert_allclose(result.table.difference, 0.5 * math.log(data.N), rtol=1e-9)


@pytest.mark.parametrize("returned, message", [
    (np.zeros(3), r"returned shape \(3,\), expected a single number"),
    (np.nan, "returned NaN at lam=")])
def test_a_function_that_returns_no_number_is_named(datasets, returned, message):
    def broken(stats, lam, omega):
        return returned

    data = datasets["rail"]
    with pytest.raises(UserFunctionError,
                       match=rf"restricted_log_likelihood \(broken\) {message}") as raised:
        likelihood.check_restricted_likelihood(broken, data, Priors.weakly_informative(data))
    assert "\n" not in str(raised.value)


# -- statsmodels, both ways ------------------------------------------------------------------------

def test_the_packages_functions_match_statsmodels_both_ways(datasets):
    comparison = statsmodels_check.compare_with_statsmodels(datasets["radon"])
    table = comparison.table
    assert comparison.passed
    assert list(table.criterion) == ["ML"] * 3 + ["REML"] * 3
    assert np.abs(table.difference).max() < 1e-9
    assert comparison.worst_ratio < 1e-3


def test_a_constant_slip_is_caught_at_statsmodels_optimum_though_the_maximum_is_right(datasets):
    """Neither mutant moves its maximum: only the comparison at statsmodels' optimum sees it."""
    data = datasets["rail"]
    for mutant, criterion, offset in (("eb-ml-missing-2pi", "ML", 0.5 * data.N * LOG_2PI),
                                      ("reml-2pi-sign", "REML", -LOG_2PI)):
        found = get_mutant(mutant)
        comparison = statsmodels_check.compare_with_statsmodels(
            data, found.log_marginal_likelihood, found.restricted_log_likelihood)
        at_optimum, maximum = comparison.table.itertuples()
        assert (at_optimum.criterion, maximum.criterion) == (criterion, criterion)
        assert not at_optimum.agree and at_optimum.difference == pytest.approx(offset, rel=1e-9)
        assert "at statsmodels' optimum" in at_optimum.note
        assert maximum.agree
        assert not comparison.passed


def test_a_score_above_statsmodels_maximum_fails(datasets, monkeypatch, tmp_path):
    """A statsmodels that stopped 1e-3 short: the package's maxima now exceed it, which must
    fail (one of the references is wrong), not pass as 'at least as good'."""
    monkeypatch.setenv("HIERCHECK_CACHE", str(tmp_path))  # no cached fit of the real one
    data = datasets["rail"]
    real = statsmodels_check.statsmodels_fit(data, False)

    def short_fit(data, reml):
        model, result = real
        return model, types.SimpleNamespace(fe_params=result.fe_params, scale=result.scale,
                                            cov_re=result.cov_re, llf=result.llf - 1e-3)

    monkeypatch.setattr(statsmodels_check, "statsmodels_fit", short_fit)
    comparison = statsmodels_check.compare_with_statsmodels(data, log_marginal_likelihood)
    maximum = comparison.table.iloc[1]
    assert not maximum.agree and maximum.difference == pytest.approx(1e-3, rel=1e-6)
    assert "exceeds statsmodels' maximum" in maximum.note
    assert comparison.worst_ratio == pytest.approx(1e3, rel=1e-3)


# -- the suite -------------------------------------------------------------------------------------

def test_check_sampler_takes_a_restricted_likelihood(datasets):
    """The package's own passes both rows it gets; the one off by log 2pi fails both."""
    data = datasets["rail"]
    right = suite.check_sampler(restricted_log_likelihood=eb.restricted_loglik, data=data)
    wrong = suite.check_sampler(
        restricted_log_likelihood=get_mutant("reml-2pi-sign").restricted_log_likelihood,
        data=data)
    for verdict in (right, wrong):
        assert [o.check for o in verdict.outcomes] == ["restricted likelihood",
                                                       "eb vs statsmodels"]
        assert "restricted likelihood" in verdict.subject
    assert right.passed
    assert not any(o.passed for o in wrong.outcomes)
    assert set(wrong["eb vs statsmodels"].table.criterion) == {"REML"}
