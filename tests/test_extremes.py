"""Numerical extremes against high-precision references.

Scores offset by 1e6 with a spread of 1e-3, spreads of 1e-8 and 1e8, one school of 100,000
students beside schools of one, between-school variance exactly zero and very large. The
references are exact: rational arithmetic (`fractions`) for the sufficient statistics and the
balanced-design ML estimates, 60-digit `decimal` arithmetic for the log marginal likelihood
(mpmath is not installed), and, for the engines whose answer has no closed form (Gibbs, the exact
posterior), the same engine on the well-scaled data mapped back by the model's equivariance
(the well-scaled answers are checked against cubature in tests/test_exact.py).

Equivariance. If y' = o + s y and the priors are the data-scaled `Priors.weakly_informative`
(b ~ s^2, nu = grand mean, phi ~ 1/s^2; c and d are free of scale because tau is a ratio), then
the posterior of (mu', lam', omega', theta') is that of (o + s mu, lam / s^2, omega, o + s theta),
and so are the ML estimates. The Gibbs sampler's dispersed start and every conditional draw scale
the same way, so with one seed its draws map draw for draw, up to rounding.
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np
import pytest

from hiercheck.errors import QuadratureError
from hiercheck.models import GroupedData, Priors
from hiercheck.samplers import empirical_bayes, exact, gibbs
from hiercheck.samplers.marginal import log_marginal_likelihood

DIGITS = 60
PI = Decimal("3.14159265358979323846264338327950288419716939937510582097494459")


# -- the references -------------------------------------------------------------------------------

def exact_stats(groups, values):
    """Per-school (n, ybar, ss) in rational arithmetic, schools in sorted label order."""
    out = []
    for label in np.unique(groups):
        scores = [Fraction(float(v)) for v in values[groups == label]]
        mean = sum(scores, Fraction(0)) / len(scores)
        out.append((len(scores), mean, sum(((v - mean) ** 2 for v in scores), Fraction(0))))
    return out


def to_decimal(x: Fraction) -> Decimal:
    return Decimal(x.numerator) / Decimal(x.denominator)


def decimal_log_marginal(stats, mu, lam, omega) -> Decimal:
    """log p(y | mu, lam, omega) with theta integrated out, to 60 digits:

        -N/2 log 2pi + N/2 log lam + 1/2 sum_i log(omega/(n_i+omega))
        - lam/2 [sum_i ss_i + sum_i w_i (ybar_i - mu)^2],  w_i = n_i omega/(n_i+omega)

    (omega = inf: the log-ratio terms vanish and w_i = n_i.) Parameters are taken as the exact
    binary values of the floats given.
    """
    with localcontext() as context:
        context.prec = DIGITS
        N = sum(n for n, _, _ in stats)
        mu, lam = Decimal(float(mu)), Decimal(float(lam))
        total = Decimal(-N) / 2 * (2 * PI).ln() + Decimal(N) / 2 * lam.ln()
        spread = Decimal(0)
        for n, ybar, ss in stats:
            if math.isinf(omega):
                w = Decimal(n)
            else:
                om = Decimal(float(omega))
                total += (om / (n + om)).ln() / 2
                w = n * om / (n + om)
            spread += to_decimal(ss) + w * (to_decimal(ybar) - mu) ** 2
        return total - lam / 2 * spread


def balanced_ml(stats):
    """ML estimates of a balanced design (every n_i = n), exactly (the one-way ANOVA rule):

        mu = mean_i ybar_i,  sigma^2 = SSW / (N - m),  sigma^2 + n tau^2 sigma^2 = SSB / m,
        SSW = sum_i ss_i,    SSB = n sum_i (ybar_i - mu)^2;

    when SSB / m <= SSW / (N - m) the maximum is on the boundary tau = 0, sigma^2 = (SSW+SSB)/N.
    Returns (mu, lam, omega) as Fractions (omega None at the boundary: infinite).
    """
    n = stats[0][0]
    assert all(size == n for size, _, _ in stats)
    m = len(stats)
    mu = sum((ybar for _, ybar, _ in stats), Fraction(0)) / m
    ssw = sum((ss for _, _, ss in stats), Fraction(0))
    ssb = n * sum(((ybar - mu) ** 2 for _, ybar, _ in stats), Fraction(0))
    within = ssw / (n * m - m)
    if ssb / m <= within:
        return mu, n * m / (ssw + ssb), None
    between = (ssb / m - within) / n
    return mu, 1 / within, within / between


# -- the data ---------------------------------------------------------------------------------------

BALANCED_GROUPS = np.repeat(np.arange(8), 6)
_rng = np.random.default_rng(20261125)
SCHOOL_EFFECTS = _rng.standard_normal(8)
NOISE = _rng.standard_normal(BALANCED_GROUPS.size)
BASE = SCHOOL_EFFECTS[BALANCED_GROUPS] + NOISE  # tau about 1: the well-scaled data

# (offset o, scale s): the scores o + s * BASE
TRANSFORMS = {"offset 1e6, spread 1e-3": (1e6, 1e-3), "spread 1e-8": (0.0, 1e-8),
              "spread 1e8": (0.0, 1e8)}


def zero_between_scores():
    """Every school mean exactly 5: each school is 5 + a permutation of six exact binary values,
    so the between-school sum of squares is exactly zero."""
    pattern = np.array([-1.5, -0.25, 0.0, 0.25, 0.5, 1.0])
    rng = np.random.default_rng(3)
    return 5.0 + np.concatenate([rng.permutation(pattern) for _ in range(8)])


BALANCED = {
    **{name: o + s * BASE for name, (o, s) in TRANSFORMS.items()},
    "between-school variance 1e16 times within": 1e8 * SCHOOL_EFFECTS[BALANCED_GROUPS] + NOISE,
    "between-school variance exactly zero": zero_between_scores(),
}


def well_scaled(name):
    """The stored scores of case `name` mapped back exactly, (y' - o) / s in rationals, and
    rounded once at scale one: the reference data set. (Mapping BASE forward rounds at the
    extreme scale, which at offset 1e6 alone moves a school mean by ~1e-7 of its SD.)"""
    offset, scale = TRANSFORMS[name]
    back = [float((Fraction(float(y)) - Fraction(offset)) / Fraction(scale)) for y in BALANCED[name]]
    data = GroupedData.from_arrays(BALANCED_GROUPS, np.array(back))
    return data, Priors.weakly_informative(data)


# -- sufficient statistics ------------------------------------------------------------------------

def test_one_school_of_100000_beside_schools_of_one_has_exact_statistics():
    rng = np.random.default_rng(5)
    groups = np.r_[np.zeros(100_000, dtype=int), np.arange(1, 6)]
    values = 1e6 + 1e-3 * rng.standard_normal(groups.size)
    data = GroupedData.from_arrays(groups, values)
    reference = exact_stats(groups, values)
    np.testing.assert_array_equal(data.n, [n for n, _, _ in reference])
    for i, (_, ybar, ss) in enumerate(reference):
        # the mean is rounded once to the nearest double (0.5 ulp) at best; allow 2 ulp
        assert abs(Fraction(data.ybar[i]) - ybar) <= 2 * Fraction(np.spacing(1e6))
        assert data.ss[i] == pytest.approx(float(ss), rel=1e-12, abs=0.0)


# -- the log marginal likelihood ------------------------------------------------------------------

def stored_stats(data: GroupedData):
    """The package's own (double) sufficient statistics as exact rationals. At offset 1e6 the
    exact school means are not doubles: rounding one (1.2e-10) moves the loglik by ~1e-7 and the
    ML estimates by ~1e-8 relatively. That is the problem's conditioning, not an error of the
    code, so the loglik and the fit are held to the statistics they were given; the statistics
    themselves are held to the exact ones (below and in tests/test_data.py)."""
    return [(int(n), Fraction(float(ybar)), Fraction(float(ss)))
            for n, ybar, ss in zip(data.n, data.ybar, data.ss)]


@pytest.mark.parametrize("name", sorted(BALANCED))
def test_stored_statistics_are_the_exact_ones_to_an_ulp(name):
    values = BALANCED[name]
    data = GroupedData.from_arrays(BALANCED_GROUPS, values)
    for i, (n, ybar, ss) in enumerate(exact_stats(BALANCED_GROUPS, values)):
        assert data.n[i] == n
        assert abs(Fraction(data.ybar[i]) - ybar) <= 2 * Fraction(np.spacing(np.abs(values).max()))
        assert data.ss[i] == pytest.approx(float(ss), rel=1e-12, abs=0.0)


@pytest.mark.parametrize("name", sorted(BALANCED))
def test_log_marginal_likelihood_matches_60_digits(name):
    """At the exact ML point and at points a factor 3 away in lam and omega, 1e-9 absolute:
    the loglik is a sum of O(N log lam) terms, so that is ~1e-12 of its size."""
    data = GroupedData.from_arrays(BALANCED_GROUPS, BALANCED[name])
    stats = stored_stats(data)
    mu, lam, omega = balanced_ml(stats)
    omega = math.inf if omega is None else float(omega)
    for lam_factor, omega_factor in [(1, 1), (3, 1 / 3), (1 / 3, 3)]:
        point = (float(mu), float(lam) * lam_factor, omega * omega_factor)
        got = float(log_marginal_likelihood(data.stats, *point))
        want = float(decimal_log_marginal(stats, *point))
        assert got == pytest.approx(want, rel=1e-13, abs=1e-9), point


# -- empirical Bayes ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(BALANCED))
def test_eb_profile_fit_matches_the_exact_anova_ml_estimates(name):
    """The profile search solves the score equation with brentq to full precision: 1e-9."""
    data = GroupedData.from_arrays(BALANCED_GROUPS, BALANCED[name])
    stats = stored_stats(data)
    mu, lam, omega = balanced_ml(stats)
    fit = empirical_bayes.fit(data)
    assert fit.converged, fit.message
    assert abs(Fraction(fit.mu) - mu) <= 1e-9 * Fraction(fit.standard_errors["mu"]) + \
        4 * Fraction(np.spacing(abs(fit.mu)))
    assert fit.lam == pytest.approx(float(lam), rel=1e-9)
    if omega is None:
        assert fit.at_boundary and fit.omega == math.inf
    else:
        assert fit.omega == pytest.approx(float(omega), rel=1e-9)
    want = decimal_log_marginal(stats, fit.mu, fit.lam, fit.omega)
    assert fit.loglik == pytest.approx(float(want), rel=1e-13, abs=1e-9)


@pytest.mark.parametrize("name", [
    "offset 1e6, spread 1e-3", "spread 1e-8", "between-school variance exactly zero",
    "spread 1e8", "between-school variance 1e16 times within",
])
def test_eb_nelder_mead_fit_matches_the_exact_anova_ml_estimates(name):
    """Nelder-Mead on (mu in SE units, log lam, log omega) stops at xatol = fatol = 1e-10: estimates to 1e-6
    relatively, mu to 1e-3 of its SE. At the boundary it can only approach omega = inf."""
    data = GroupedData.from_arrays(BALANCED_GROUPS, BALANCED[name])
    stats = stored_stats(data)
    mu, lam, omega = balanced_ml(stats)
    fit = empirical_bayes.fit(data, method="nelder-mead")
    assert fit.converged, fit.message
    # the yardstick is the exact fit's SE (Nelder-Mead's own is NaN next to the boundary)
    assert abs(fit.mu - float(mu)) <= 1e-3 * empirical_bayes.fit(data).standard_errors["mu"]
    assert fit.lam == pytest.approx(float(lam), rel=1e-6)
    best = decimal_log_marginal(stats, float(mu), float(lam), math.inf if omega is None else float(omega))
    if omega is None:
        assert fit.omega > 1e12
    else:
        assert fit.omega == pytest.approx(float(omega), rel=1e-6)
    assert fit.loglik == pytest.approx(float(best), rel=1e-12, abs=1e-9)


def test_eb_fit_of_one_huge_school_beside_schools_of_one_is_the_maximum():
    """Unbalanced, so no closed form: the estimates must be finite and no 60-digit loglik a
    relative 1e-4 away in any parameter may be higher."""
    rng = np.random.default_rng(8)
    groups = np.r_[np.zeros(100_000, dtype=int), np.arange(1, 8)]
    values = 50 + 10 * rng.standard_normal(groups.size) + 30 * (groups > 3)
    data = GroupedData.from_arrays(groups, values)
    stats = exact_stats(groups, values)
    fit = empirical_bayes.fit(data)
    assert fit.converged and np.isfinite([fit.mu, fit.lam, fit.omega]).all()
    best = decimal_log_marginal(stats, fit.mu, fit.lam, fit.omega)
    assert fit.loglik == pytest.approx(float(best), rel=1e-13)
    for axis in range(3):
        for step in (1 + 1e-4, 1 - 1e-4):
            point = [fit.mu, fit.lam, fit.omega]
            point[axis] *= step
            assert decimal_log_marginal(stats, *point) < best, (axis, step)
    assert np.isfinite(fit.theta_mean).all() and np.isfinite(fit.theta_sd).all()


def test_one_huge_school_beside_schools_of_one_gibbs_agrees_with_the_exact_posterior():
    """No closed form, so the two independent engines are each other's reference: every
    posterior mean of Gibbs (2 chains x 2000) within 5 MCSE of the exact one (false-alarm rate
    about 6e-7 per quantity, 1e-5 over the 11 compared), and the big school's theta pinned to
    its own mean to within its posterior SD (1e-2 of the within-school SD)."""
    import arviz as az

    rng = np.random.default_rng(8)
    groups = np.r_[np.zeros(100_000, dtype=int), np.arange(1, 8)]
    values = 50 + 10 * rng.standard_normal(groups.size) + 30 * (groups > 3)
    data = GroupedData.from_arrays(groups, values)
    priors = Priors.weakly_informative(data)
    post = exact.posterior(data, priors)
    run = gibbs.sample(data, priors, draws=2000, chains=2, seed=3)
    mcse = az.mcse(run, method="mean")
    for variable in ("mu", "lam", "tau", "theta"):
        z = (run.posterior[variable].mean(("chain", "draw")).to_numpy() - post.mean(variable)) \
            / mcse[variable].to_numpy()
        assert np.all(np.abs(z) < 5), (variable, z)
    assert abs(post.mean("theta")[0] - data.ybar[0]) < post.sd("theta")[0]
    assert np.isfinite(post.sd("theta")).all() and post.sd("theta")[0] < 0.05


# -- the exact posterior and the Gibbs sampler, by equivariance -----------------------------------

@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_exact_posterior_at_extreme_scales_is_the_mapped_well_scaled_one(name):
    offset, scale = TRANSFORMS[name]
    data0, priors0 = well_scaled(name)
    data = GroupedData.from_arrays(BALANCED_GROUPS, BALANCED[name])
    post0, post = exact.posterior(data0, priors0), exact.posterior(data, Priors.weakly_informative(data))
    # the mapped well-scaled moments, in posterior SDs (location) or relatively (scale); the
    # quadrature itself is resolved to 1e-7 (exact.NOISE_TOL), so 1e-6 leaves a factor of ten
    for variable in ("mu", "theta"):
        sd0 = post0.sd(variable)
        np.testing.assert_allclose((post.mean(variable) - offset - scale * post0.mean(variable))
                                   / (scale * sd0), 0, atol=1e-6)
        np.testing.assert_allclose(post.sd(variable), scale * sd0, rtol=1e-6)
    np.testing.assert_allclose(post.mean("lam") * scale ** 2, post0.mean("lam"), rtol=1e-6)
    np.testing.assert_allclose(post.mean("tau"), post0.mean("tau"), rtol=1e-6)
    np.testing.assert_allclose(post.sd("tau"), post0.sd("tau"), rtol=1e-6)


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_gibbs_at_extreme_scales_maps_draw_for_draw(name):
    offset, scale = TRANSFORMS[name]
    data0, priors0 = well_scaled(name)
    data = GroupedData.from_arrays(BALANCED_GROUPS, BALANCED[name])
    draws = dict(draws=500, chains=2, seed=4, tune=100)
    run0 = gibbs.sample(data0, priors0, **draws).posterior
    run = gibbs.sample(data, Priors.weakly_informative(data), **draws).posterior
    sd_mu = float(run0.mu.std())
    np.testing.assert_allclose((run.mu - offset - scale * run0.mu) / (scale * sd_mu), 0, atol=1e-5)
    np.testing.assert_allclose((run.theta - offset - scale * run0.theta) / (scale * sd_mu), 0,
                               atol=1e-5)
    np.testing.assert_allclose(run.lam * scale ** 2, run0.lam, rtol=1e-5)
    np.testing.assert_allclose(run.omega, run0.omega, rtol=1e-5)


# -- between-school variance exactly zero, or very large ------------------------------------------

def test_zero_between_variance_keeps_every_engine_finite_and_symmetric():
    """All school means equal 5 and every school has six students: by symmetry every theta_i has
    posterior mean exactly mu's, which is 5 (prior centred on the grand mean, 5)."""
    data = GroupedData.from_arrays(BALANCED_GROUPS, zero_between_scores())
    priors = Priors.weakly_informative(data)
    assert priors.nu == 5.0
    post = exact.posterior(data, priors)
    np.testing.assert_allclose(post.mean("theta"), 5.0, rtol=1e-13)
    assert post.mean("mu") == pytest.approx(5.0, rel=1e-13)
    assert np.isfinite([post.mean("tau"), post.sd("tau"), post.mean("lam")]).all()
    run = gibbs.sample(data, priors, draws=300, chains=2, seed=1).posterior
    assert all(np.isfinite(run[v]).all() for v in ("theta", "mu", "lam", "omega"))
    fit = empirical_bayes.fit(data)
    assert fit.at_boundary and fit.mu == 5.0
    np.testing.assert_array_equal(fit.theta_mean, 5.0)  # theta_i = mu exactly at tau = 0


@pytest.mark.parametrize("c, d, message", [
    (1.0, 1e-150, "no interior mode within"),
    (1.0, 1e-90, "still holds mass"),
])
def test_zero_between_variance_under_a_far_reaching_omega_prior_refuses(c, d, message):
    """With no between-school variation the data put no upper bound on omega: its posterior
    follows the prior's tail exp(-d omega) out to omega ~ 1/d. At d = 1e-150 that is beyond the
    grid's reach (log omega <= 230); at d = 1e-90 within it, but wider than MAX_NODES nodes can
    resolve. The exact posterior must say so rather than return numbers."""
    data = GroupedData.from_arrays(BALANCED_GROUPS, zero_between_scores())
    priors = Priors(**{**Priors.weakly_informative(data).as_dict(), "c": c, "d": d})
    with pytest.raises(QuadratureError, match=f"{message}.*improper or piles up"):
        exact.posterior(data, priors)


@pytest.mark.parametrize("between_sd", [1e6, 1e8, 1e10])
def test_very_large_between_variance_leaves_each_school_its_own_mean(between_sd):
    """tau^2 ~ between_sd^2: shrinkage omega/(n_i + omega) ~ 1/tau^2, so E[theta_i] = ybar_i to
    well within 1e-6 of theta_i's posterior SD, for EB, Gibbs and the exact posterior."""
    data = GroupedData.from_arrays(BALANCED_GROUPS, between_sd * SCHOOL_EFFECTS[BALANCED_GROUPS] + NOISE)
    priors = Priors.weakly_informative(data)
    fit = empirical_bayes.fit(data)
    np.testing.assert_allclose((fit.theta_mean - data.ybar) / fit.theta_sd, 0, atol=1e-6)
    run = gibbs.sample(data, priors, draws=300, chains=2, seed=1).posterior
    assert all(np.isfinite(run[v]).all() for v in ("theta", "mu", "lam", "omega"))
    post = exact.posterior(data, priors)
    np.testing.assert_allclose((post.mean("theta") - data.ybar) / post.sd("theta"), 0, atol=1e-6)
    assert np.isfinite([post.mean("mu"), post.sd("mu"), post.mean("tau")]).all()
