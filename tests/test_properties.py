"""Property-based tests (hypothesis) of the data layer and the closed-form pieces.

Random valid designs (2 to 6 schools of 1 to 8 students, at least one with two), scores on random
scales and offsets, and random parameter points (mu, log lam, log omega):

- the sufficient statistics do not depend on the order of the rows or on how labels are spelt
  (their equality with a direct computation is tests/test_data.py's property, not repeated);
- `log_marginal_likelihood` equals the dense multivariate-normal density of the scores
  (`hiercheck.validation.eb_references.dense_log_likelihood`), and `log_evidence_given_variances` equals
  it integrated against mu's prior by quadrature;
- every closed-form conditional is the joint density's slice: log p(joint) minus the log of the
  claimed conditional is constant in the variable (exact up to rounding, no sampling);
- each Gibbs draw (`draw_theta`, `draw_mu`, `draw_lam`, `draw_omega`) has the mean and variance of
  that slice, the slice's coefficients read off the joint density itself, not off the code under
  test. z-scores of 4000 draws, |z| < 5: false-alarm rate 6e-7 per statistic (normal
  approximation), under 1e-3 over every statistic of every example; hypothesis runs
  derandomized, so the examples and seeds are fixed and the test cannot flake.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, special

from hiercheck.models import GroupedData, Priors
from hiercheck.samplers import gibbs
from hiercheck.samplers.marginal import (LOG_2PI, lam_given_mu_omega, log_evidence_given_variances,
                               log_marginal_likelihood, mu_conditional, theta_conditional)
from hiercheck.validation.eb_references import dense_log_likelihood

EXAMPLES = 25
PROPERTY = settings(deadline=None, max_examples=EXAMPLES, derandomize=True)


@st.composite
def designs(draw):
    """A valid data set: scores offset + scale * (school effect + noise)."""
    sizes = draw(st.lists(st.integers(1, 8), min_size=2, max_size=6))
    if max(sizes) < 2:
        sizes[0] = 2
    scale = draw(st.floats(1e-2, 1e2))
    offset = draw(st.floats(-1e3, 1e3))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(len(sizes)), sizes)
    values = offset + scale * (rng.standard_normal(len(sizes))[groups] + rng.standard_normal(groups.size))
    return GroupedData.from_arrays(groups, values), scale, offset, seed


@st.composite
def points(draw, data_and_scale):
    """(mu, lam, omega) around the data's scale: lam within e^3 of 1/scale^2, omega within e^3."""
    data, scale, offset, _ = data_and_scale
    mu = offset + scale * draw(st.floats(-3, 3))
    lam = math.exp(draw(st.floats(-3, 3))) / scale**2
    omega = math.exp(draw(st.floats(-3, 3)))
    return mu, lam, omega


def design_and_point():
    return designs().flatmap(lambda d: st.tuples(st.just(d), points(d)))


def priors_for(data: GroupedData) -> Priors:
    return Priors.weakly_informative(data)


# -- the data layer -------------------------------------------------------------------------------

@PROPERTY
@given(designs(), st.integers(0, 2**32 - 1))
def test_statistics_do_not_depend_on_row_order_or_label_spelling(case, seed):
    data, *_ = case
    order = np.random.default_rng(seed).permutation(data.N)
    groups = data.labels[data.codes]
    shuffled = GroupedData.from_arrays(groups[order], data.values[order])
    spelled = GroupedData.from_arrays(np.array([f"{g}" for g in groups[order]], dtype=object),
                                      data.values[order])  # "10" sorts after "9", as a number
    for other in (shuffled, spelled):
        np.testing.assert_array_equal(other.labels, data.labels)
        np.testing.assert_array_equal(other.n, data.n)
        np.testing.assert_allclose(other.ybar, data.ybar, rtol=1e-13,
                                   atol=1e-13 * np.abs(data.values).max())
        np.testing.assert_allclose(other.ss, data.ss, rtol=1e-9, atol=1e-12 * data.ss.max())


# -- the marginal likelihood ----------------------------------------------------------------------

@PROPERTY
@given(design_and_point())
def test_marginal_likelihood_is_the_dense_normal_density(case):
    (data, *_), (mu, lam, omega) = case
    got = float(log_marginal_likelihood(data.stats, mu, lam, omega))
    assert got == pytest.approx(dense_log_likelihood(data, mu, lam, omega), rel=1e-10, abs=1e-8)


@PROPERTY
@given(design_and_point())
def test_evidence_given_variances_integrates_mu_out(case):
    """log p(y | lam, omega) = log of the integral over mu of p(y | mu, lam, omega) N(mu; nu, 1/phi),
    by adaptive quadrature around mu's conditional mean (the integrand is a normal bump)."""
    (data, *_), (_, lam, omega) = case
    priors = priors_for(data)
    mean, precision = (float(x) for x in mu_conditional(data.stats, priors, lam, omega))
    want = float(log_evidence_given_variances(data.stats, priors, lam, omega))
    sd = precision ** -0.5

    def integrand(z):  # scaled by exp(-want) so that it is of order one
        mu = mean + sd * z
        return math.exp(float(log_marginal_likelihood(data.stats, mu, lam, omega))
                        + float(priors.logpdf_mu(mu)) - want) * sd

    area, _ = integrate.quad(integrand, -40, 40, points=[0.0], epsabs=1e-13, epsrel=1e-11)
    assert area == pytest.approx(1.0, rel=1e-8)


# -- conditionals as slices of the joint density --------------------------------------------------

def log_joint(data: GroupedData, priors: Priors, theta, mu, lam, omega) -> float:
    """log p(y, theta, mu, lam, omega), written from the model, term by term:
    sum_ij log N(y_ij; theta_i, 1/lam) + sum_i log N(theta_i; mu, 1/(omega lam)) + log priors."""
    y, school = data.values, data.codes
    likelihood = np.sum(0.5 * (math.log(lam) - LOG_2PI) - 0.5 * lam * (y - theta[school]) ** 2)
    theta_precision = omega * lam
    hierarchy = np.sum(0.5 * (math.log(theta_precision) - LOG_2PI)
                       - 0.5 * theta_precision * (theta - mu) ** 2)
    return float(likelihood + hierarchy + priors.logpdf(mu, lam, omega))


def normal_log(x, mean, precision):
    return 0.5 * (math.log(precision) - LOG_2PI) - 0.5 * precision * (x - mean) ** 2


def gamma_log(x, shape, rate):
    return shape * math.log(rate) - special.gammaln(shape) + (shape - 1) * math.log(x) - rate * x


def assert_constant(differences):
    differences = np.asarray(differences)
    assert np.ptp(differences) <= 1e-9 * max(1.0, np.abs(differences).max()), differences


@PROPERTY
@given(design_and_point(), st.integers(0, 2**32 - 1))
def test_closed_form_conditionals_are_slices_of_the_joint(case, seed):
    (data, scale, *_), (mu, lam, omega) = case
    priors = priors_for(data)
    rng = np.random.default_rng(seed)
    theta = mu + scale * rng.standard_normal(data.m)
    # theta_i | mu, lam, omega, y: vary one school's theta, the others fixed
    means, precisions = theta_conditional(data.stats, mu, lam, omega)
    for i in range(data.m):
        values = means[i] + rng.standard_normal(4) / math.sqrt(precisions[i])
        slices = []
        for value in values:
            moved = theta.copy()
            moved[i] = value
            slices.append(log_joint(data, priors, moved, mu, lam, omega)
                          - normal_log(value, means[i], precisions[i]))
        assert_constant(slices)
    # theta integrated out: mu | lam, omega, y and lam | mu, omega, y against the marginal joint
    mean, precision = (float(x) for x in mu_conditional(data.stats, priors, lam, omega))
    assert_constant([float(log_marginal_likelihood(data.stats, x, lam, omega) + priors.logpdf_mu(x))
                     - normal_log(x, mean, precision)
                     for x in mean + rng.standard_normal(4) / math.sqrt(precision)])
    shape, rate = (float(x) for x in lam_given_mu_omega(data.stats, priors, mu, omega))
    assert_constant([float(log_marginal_likelihood(data.stats, mu, x, omega) + priors.logpdf_lam(x))
                     - gamma_log(x, shape, rate)
                     for x in rng.gamma(shape, 1 / rate, 4)])


def slice_moments(log_density, at: float, kind: str, scale: float):
    """Mean and variance of the conditional whose log density (up to a constant) is `log_density`,
    read off the density itself: a normal's log density is quadratic (two differences give
    precision and mean); a gamma's is (k - 1) log x - r x (two differences of the derivative)."""
    h = 1e-3 * scale
    if kind == "normal":
        f0, fp, fm = log_density(at), log_density(at + h), log_density(at - h)
        precision = -(fp - 2 * f0 + fm) / h**2
        return at + (fp - fm) / (2 * h) / precision, 1 / precision
    # g(x) = f'(x) = (k - 1)/x - r, by central differences at two points
    def slope(x):
        return (log_density(x + h) - log_density(x - h)) / (2 * h)
    x1, x2 = at, 2 * at
    k_minus_1 = (slope(x1) - slope(x2)) / (1 / x1 - 1 / x2)
    rate = k_minus_1 / x1 - slope(x1)
    shape = k_minus_1 + 1
    return shape / rate, shape / rate**2


def z_scores(draws, mean, variance):
    k = draws.size
    z_mean = (draws.mean() - mean) / math.sqrt(variance / k)
    centred = draws - draws.mean()
    m4 = np.mean(centred**4)
    s2 = np.var(draws, ddof=1)
    z_var = (s2 - variance) / math.sqrt(max(m4 - s2**2, 1e-300) / k)
    return z_mean, z_var


DRAWS = 4000


@settings(deadline=None, max_examples=12, derandomize=True)
@given(design_and_point(), st.integers(0, 2**32 - 1))
def test_gibbs_draws_have_the_moments_of_the_joint_density_slices(case, seed):
    (data, scale, *_), (mu, lam, omega) = case
    priors = priors_for(data)
    rng = np.random.default_rng(seed)
    theta = mu + scale * rng.standard_normal(data.m) / math.sqrt(1 + omega)
    state = gibbs.GibbsState(theta=np.broadcast_to(theta, (DRAWS, data.m)),
                             mu=np.full(DRAWS, mu), lam=np.full(DRAWS, lam),
                             omega=np.full(DRAWS, omega))
    fixed = dict(theta=theta, mu=mu, lam=lam, omega=omega)

    def along(name, school=None):
        def log_density(x):
            values = dict(fixed)
            if school is None:
                values[name] = x
            else:
                values["theta"] = theta.copy()
                values["theta"][school] = x
            return log_joint(data, priors, **values)
        return log_density

    checks = []
    draws = gibbs.draw_theta(rng, state, data.stats, priors)
    for i in range(data.m):
        sd_i = 1 / math.sqrt(lam * (data.n[i] + omega))
        checks.append((f"theta[{i}]", draws[:, i],
                       slice_moments(along("theta", i), theta[i], "normal", sd_i)))
    sd_mu = 1 / math.sqrt(omega * lam * data.m + priors.phi)
    checks.append(("mu", gibbs.draw_mu(rng, state, data.stats, priors),
                   slice_moments(along("mu"), mu, "normal", sd_mu)))
    checks.append(("lam", gibbs.draw_lam(rng, state, data.stats, priors),
                   slice_moments(along("lam"), lam, "gamma", 1e-2 * lam)))
    checks.append(("omega", gibbs.draw_omega(rng, state, data.stats, priors),
                   slice_moments(along("omega"), omega, "gamma", 1e-2 * omega)))
    for name, values, (mean, variance) in checks:
        z_mean, z_var = z_scores(np.asarray(values, dtype=float), mean, variance)
        assert abs(z_mean) < 5 and abs(z_var) < 5, (name, z_mean, z_var)
