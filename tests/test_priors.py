"""Priors: validation, closed-form log densities, and the sampler's moments."""

import math
import re

import numpy as np
import pytest
from scipy import stats

from hiercheck.models import PriorError, Priors, load_dataset

PRIORS = Priors(a=3.0, b=2.0, c=1.5, d=0.5, nu=10.0, phi=0.25)


def test_log_densities_match_scipy():
    lam, omega, mu = np.array([0.1, 1.0, 7.0]), np.array([0.3, 2.0, 9.0]), np.array([-4.0, 10.0, 13.0])
    np.testing.assert_allclose(PRIORS.logpdf_lam(lam), stats.gamma(3.0, scale=1 / 2.0).logpdf(lam), rtol=1e-13)
    np.testing.assert_allclose(PRIORS.logpdf_omega(omega), stats.gamma(1.5, scale=2.0).logpdf(omega), rtol=1e-13)
    np.testing.assert_allclose(PRIORS.logpdf_mu(mu), stats.norm(10.0, 2.0).logpdf(mu), rtol=1e-13)
    np.testing.assert_allclose(
        PRIORS.logpdf(mu, lam, omega),
        PRIORS.logpdf_mu(mu) + PRIORS.logpdf_lam(lam) + PRIORS.logpdf_omega(omega))
    assert PRIORS.logpdf_lam(-1.0) == -np.inf


def test_prior_sampler_moments_match_the_closed_forms():
    draws = PRIORS.sample(np.random.default_rng(7), size=200_000)
    closed_form = {  # (mean, variance) of each prior
        "mu": (10.0, 1 / 0.25),
        "lam": (3.0 / 2.0, 3.0 / 2.0**2),
        "omega": (1.5 / 0.5, 1.5 / 0.5**2),
    }
    for name, (mean, variance) in closed_form.items():
        x = getattr(draws, name)
        # z-scores of the sample mean and variance; |z| < 4.5 has false-alarm rate 7e-6 each
        z_mean = (x.mean() - mean) / math.sqrt(variance / x.size)
        fourth = np.mean((x - mean) ** 4)
        z_var = (x.var() - variance) / math.sqrt((fourth - variance**2) / x.size)
        assert abs(z_mean) < 4.5, name
        assert abs(z_var) < 4.5, name


def test_same_seed_same_draws():
    one = PRIORS.sample(np.random.default_rng(3), size=5)
    two = PRIORS.sample(np.random.default_rng(3), size=5)
    for x, y in zip(one, two):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("field, value, message", [
    ("a", -0.5, "a (the shape of lam) must be >= 0"),
    ("b", -1.0, "b (the rate of lam) must be >= 0"),
    ("d", -0.5, "d (the rate of omega) must be >= 0"),
    ("d", 0.0, "with d = 0, omega's prior omega^(c-1) needs c < 0 (the likelihood tends to a "
               "positive constant as omega = 1/tau^2 -> inf); got c = 1"),
    ("phi", -1e-3, "phi (the precision of mu) must be >= 0"),
    ("nu", float("nan"), "nu must be finite"),
    ("b", float("inf"), "b must be finite"),
    ("a", "1", "a must be a number"),
])
def test_improper_or_malformed_priors_are_rejected(field, value, message):
    with pytest.raises(PriorError, match=re.escape(message)):
        Priors(**{field: value})


def test_priors_parse_from_text():
    assert Priors.from_string("a=2, d=0.5") == Priors(a=2.0, d=0.5)
    with pytest.raises(PriorError, match="expected NAME=NUMBER"):
        Priors.from_string("alpha=2")
    with pytest.raises(PriorError, match="'x' is not a number"):
        Priors.from_string("a=x")
    with pytest.raises(PriorError, match="must be >= 0"):
        Priors.from_string("phi=-1")


def test_weakly_informative_priors_follow_the_data_scale():
    data = load_dataset("rail")
    shift, scale = 1000.0, 7.0
    moved = data.with_values(shift + scale * data.values)
    base, other = Priors.weakly_informative(data), Priors.weakly_informative(moved)
    assert other.nu == pytest.approx(shift + scale * base.nu, rel=1e-12)
    assert other.b == pytest.approx(scale**2 * base.b, rel=1e-12)
    assert other.phi == pytest.approx(base.phi / scale**2, rel=1e-12)
    # tau is a ratio of SDs, so its prior does not depend on the scale
    assert (other.c, other.d, other.a) == (base.c, base.d, base.a)
    # E[lam] = a/b is the inverse pooled within-school variance
    pooled = data.ss.sum() / (data.N - data.m)
    assert base.a / base.b == pytest.approx(1 / pooled)
