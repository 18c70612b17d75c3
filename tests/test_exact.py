"""The exact posterior by quadrature, checked against computations that share none of its code:
Gaussian conditioning of the whole (mu, theta, y) vector, brute-force adaptive integration,
a closed-form limit, grid refinement, and its own i.i.d. draws."""

import ast
import dataclasses
import math
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate, linalg, special
from scipy import stats as scipy_stats

from hiercheck.errors import QuadratureError, SettingsError
from hiercheck.models import GroupedData, Priors, load_dataset
from hiercheck.models.engine import POSTERIOR_VARIABLES, engine_settings
from hiercheck.samplers import exact
from hiercheck.samplers import marginal
from tests.test_docs import resolve

SCALARS = ("mu", "lam", "omega", "sigma", "tau")
LEVELS = np.array([0.025, 0.5, 0.975])
DATASETS = ("rail", "dyestuff", "dyestuff2", "radon", "mathtest")
DOCS = Path(__file__).resolve().parents[1] / "docs" / "derivation.md"


@pytest.fixture(scope="module")
def datasets():
    return {name: load_dataset(name) for name in DATASETS}


@pytest.fixture(scope="module")
def posteriors(datasets):
    """The default posterior of each data set under its default priors."""
    return {name: exact.posterior(data, Priors.weakly_informative(data))
            for name, data in datasets.items()}


# -- an independent model of the data: one Gaussian vector --------------------------------------

class JointGaussian:
    """Given (lam, omega), (mu, theta, y) is Gaussian: with independent mu ~ N(nu, 1/phi),
    eta ~ N(0, I/(lam omega)) and eps ~ N(0, I/lam), theta = mu 1 + eta and y = Z theta + eps.
    Its covariance is built from that linear map and conditioned on y by Cholesky factors,
    without any of the closed forms the package uses."""

    def __init__(self, data: GroupedData, priors: Priors):
        m, n = data.m, data.N
        z = np.zeros((n, m))
        z[np.arange(n), data.codes] = 1.0
        self.map = np.zeros((1 + m + n, 1 + m + n))  # (mu, theta, y) = map @ (mu, eta, eps)
        self.map[:1 + m, 0] = 1.0
        self.map[1:1 + m, 1:1 + m] = np.eye(m)
        self.map[1 + m:, 0] = 1.0
        self.map[1 + m:, 1:1 + m] = z
        self.map[1 + m:, 1 + m:] = np.eye(n)
        self.m, self.n, self.priors = m, n, priors
        self.residual = data.values - priors.nu

    def __call__(self, lam, omega):
        """For arrays lam, omega of shape (P,): log p(y | lam, omega), and the conditional mean
        and variance of (mu, theta) given y, each of shape (P, 1 + m)."""
        m, n = self.m, self.n
        variances = np.concatenate([np.full((lam.size, 1), 1.0 / self.priors.phi),
                                    np.repeat(1.0 / (lam * omega)[:, None], m, axis=1),
                                    np.repeat(1.0 / lam[:, None], n, axis=1)], axis=1)
        covariance = (self.map * variances[:, None, :]) @ self.map.T
        lower = np.linalg.cholesky(covariance[:, 1 + m:, 1 + m:])
        white = np.linalg.solve(lower, np.broadcast_to(self.residual[:, None],
                                                       (lam.size, n, 1)))[..., 0]
        log_density = (-0.5 * (n * math.log(2 * math.pi) + (white ** 2).sum(-1))
                       - np.log(np.diagonal(lower, axis1=1, axis2=2)).sum(-1))
        gain = np.linalg.solve(lower, covariance[:, 1 + m:, :1 + m])
        mean = self.priors.nu + np.einsum("pki,pk->pi", gain, white)
        variance = np.diagonal(covariance[:, :1 + m, :1 + m], axis1=1, axis2=2) - (gain ** 2).sum(1)
        return log_density, mean, variance


def independent_log_prior(priors: Priors, log_lam, log_omega):
    """log p(u, v) from scipy's gamma densities and the Jacobian lam omega."""
    return (scipy_stats.gamma.logpdf(np.exp(log_lam), priors.a, scale=1 / priors.b)
            + scipy_stats.gamma.logpdf(np.exp(log_omega), priors.c, scale=1 / priors.d)
            + log_lam + log_omega)


def independent_log_posterior(joint: JointGaussian, priors: Priors, log_lam, log_omega):
    """log p(u, v, y) from scipy's gamma densities and the Gaussian vector."""
    return (independent_log_prior(priors, log_lam, log_omega)
            + joint(np.exp(log_lam), np.exp(log_omega))[0])


@pytest.mark.parametrize("name", ["rail", "radon"])
def test_conditionals_given_variances_match_gaussian_conditioning(datasets, name):
    """radon has schools of one student, where theta_i leans on mu the most."""
    data = datasets[name]
    priors = Priors.weakly_informative(data)
    joint = JointGaussian(data, priors)
    lam = np.array([0.5, 1.0, 3.0]) / data.ss.sum() * data.N
    omega = np.array([0.1, 2.0, 30.0])
    _, mean, variance = joint(lam, omega)
    theta_mean, theta_variance = exact.theta_given_variances(data.stats, priors, lam, omega)
    mu_mean, mu_variance = exact.mu_given_variances(data.stats, priors, lam, omega)
    np.testing.assert_allclose(theta_mean, mean[:, 1:], rtol=1e-11)
    # the Gaussian vector's variances are differences of terms of order 1/phi: fewer digits
    np.testing.assert_allclose(theta_variance, variance[:, 1:], rtol=1e-9)
    np.testing.assert_allclose(mu_mean, mean[:, 0], rtol=1e-11)
    np.testing.assert_allclose(mu_variance, variance[:, 0], rtol=1e-9)
    np.testing.assert_allclose(
        exact.log_posterior_variances(data.stats, priors, np.log(lam), np.log(omega)),
        independent_log_posterior(joint, priors, np.log(lam), np.log(omega)),
        rtol=1e-10)  # the Gaussian vector's covariance holds 1/phi, so it rounds more


# -- its own derivation: independent of the closed forms it is the reference for -----------------

CHECKED_FORMULAS = {"marginal", "gibbs", "empirical_bayes"}


def imported_modules(path: Path) -> set[str]:
    """Every module a source file imports, and every name it imports from a package (so that
    `from . import marginal` counts), relative imports resolved within hiercheck.samplers."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(["hiercheck.samplers"] + ([base] if base else []))
            modules.add(base)
            modules.update(f"{base}.{alias.name}" for alias in node.names)
    return modules


def test_exact_imports_none_of_the_formulas_it_checks():
    """DESIGN.md: the exact engine is an independent derivation, so that agreement with it can
    catch a slip in the Gibbs sampler's or empirical Bayes' closed forms."""
    source = Path(exact.__file__)
    modules = imported_modules(source)
    assert "hiercheck.models" in modules  # the parser sees the imports at all
    shared = {module for module in modules
              if CHECKED_FORMULAS & set(module.split("."))}
    assert not shared, f"{source.name} imports {sorted(shared)}"


@pytest.mark.parametrize("name", ["rail", "radon", "dyestuff2"])
@pytest.mark.parametrize("priors_kind", ["weakly informative", "informative, nu off the data"])
def test_its_closed_forms_agree_with_the_shared_ones(datasets, name, priors_kind):
    """The two derivations of p(y | lam, omega), mu | lam, omega, y and theta | mu, lam, omega, y
    (exact's from the school means' density, `hiercheck.samplers.marginal`'s by Bayes' rule and
    the w_i weights) agree to rounding over 16 decades of omega and 6 of lam."""
    data = datasets[name]
    priors = (Priors.weakly_informative(data) if priors_kind == "weakly informative"
              else Priors(a=3.0, b=6.0, c=3.0, d=2.0, nu=data.values.mean() + 5 * data.values.std(),
                          phi=1.0 / data.values.var()))
    lam = np.geomspace(1e-3, 1e3, 7)[:, None] / data.stats.pooled_variance
    omega = np.geomspace(1e-8, 1e8, 9)[None, :]
    np.testing.assert_allclose(
        exact.log_likelihood_of_variances(data.stats, priors, lam, omega),
        marginal.log_evidence_given_variances(data.stats, priors, lam, omega), rtol=1e-13)
    mu_mean, mu_variance = exact.mu_given_variances(data.stats, priors, lam, omega)
    mean, precision = marginal.mu_conditional(data.stats, priors, lam, omega)
    np.testing.assert_allclose((mu_mean - mean) * np.sqrt(precision), 0, atol=1e-11)
    np.testing.assert_allclose(mu_variance * precision, 1, rtol=1e-14)
    theta_mean, theta_variance = exact.theta_given_mu(data.stats, mu_mean, lam, omega)
    mean, precision = marginal.theta_conditional(data.stats, mu_mean, lam, omega)
    np.testing.assert_allclose((theta_mean - mean) * np.sqrt(precision), 0, atol=1e-11)
    np.testing.assert_allclose(theta_variance * precision, 1, rtol=1e-14)


# -- brute-force integration --------------------------------------------------------------------

def brute_force_moments(post: exact.ExactPosterior, cdf_points: dict):
    """Means, SDs and (for mu, theta) CDFs of every quantity by adaptive Gauss-Kronrod cubature
    of the independent density over (log lam, log omega) (scipy.integrate.cubature: a product
    of 21-point rules, subdivided where the error estimate asks), 14 posterior SDs each way.

    Each quantity is integrated standardized, z = (x - c) / s with c, s the quadrature's mean
    and SD, so that every component of the integrand is of order one (any constants would do;
    these make one tolerance mean the same for all). Returns {name: (mean, sd, cdf)} and
    the log evidence.
    """
    data, priors = post.data, post.priors
    joint = JointGaussian(data, priors)
    centre = {name: post.mean(name) for name in exact.VARIABLES}
    scale = {name: post.sd(name) for name in exact.VARIABLES}
    (mean_u, mean_v), (sd_u, sd_v) = post.grid.moments()
    offset = independent_log_posterior(joint, priors, np.array([mean_u]), np.array([mean_v]))[0]

    def integrand(x):
        """p(u, v, y) / p(mean) times 1 and, per quantity, E[z | lam, omega, y],
        E[z^2 | lam, omega, y] and P(x <= point | lam, omega, y) (zero for the variances)."""
        lam, omega = np.exp(x[:, 0]), np.exp(x[:, 1])
        log_likelihood, mean, variance = joint(lam, omega)
        density = np.exp(independent_log_prior(priors, x[:, 0], x[:, 1]) + log_likelihood
                         - offset)
        parts = {}
        for name, value in (("lam", lam), ("omega", omega), ("sigma", lam ** -0.5),
                            ("tau", omega ** -0.5)):
            z = (value - centre[name]) / scale[name]
            parts[name] = (z, z * z, np.zeros_like(z))
        for name, index in (("mu", 0), ("theta", slice(1, None))):
            z = (mean[:, index] - centre[name]) / scale[name]
            parts[name] = (z, z * z + variance[:, index] / scale[name] ** 2,
                           special.ndtr((cdf_points[name] - mean[:, index])
                                        / np.sqrt(variance[:, index])))
        columns = [column.reshape(x.shape[0], -1)
                   for name in exact.VARIABLES for column in parts[name]]
        return density[:, None] * np.column_stack([np.ones(x.shape[0])] + columns)

    lower = [mean_u - 14 * sd_u, mean_v - 14 * sd_v]
    upper = [mean_u + 14 * sd_u, mean_v + 14 * sd_v]
    # the standardized components integrate to about zero, so the absolute tolerance is the
    # relative one times the mass, about 2 pi sd_u sd_v for a density that is 1 at the mean
    result = integrate.cubature(integrand, lower, upper, rtol=1e-10,
                                atol=1e-10 * 2 * math.pi * sd_u * sd_v)
    assert result.status == "converged"
    total, expectations = result.estimate[0], result.estimate[1:] / result.estimate[0]
    answers, start = {"log_evidence": offset + math.log(total)}, 0
    for name in exact.VARIABLES:
        width = data.m if name == "theta" else 1
        z, z2, cdf = (expectations[start + k * width:start + (k + 1) * width] for k in range(3))
        start += 3 * width
        answers[name] = (centre[name] + scale[name] * z, scale[name] * np.sqrt(z2 - z * z), cdf)
    return answers


@pytest.mark.parametrize("name", ["rail", "dyestuff", "dyestuff2"])
def test_moments_match_brute_force_cubature(posteriors, name):
    post = posteriors[name]
    points = {"mu": post.quantile("mu", 0.1), "theta": post.quantile("theta", 0.9)}
    brute = brute_force_moments(post, points)
    for variable in exact.VARIABLES:
        mean, sd, _ = brute[variable]
        # means in posterior SDs, SDs relative: the claimed accuracy is 1e-6
        np.testing.assert_allclose((post.mean(variable) - mean) / sd, 0, atol=1e-8)
        np.testing.assert_allclose(post.sd(variable), sd, rtol=1e-8)
    np.testing.assert_allclose(brute["mu"][2], 0.1, atol=1e-9)
    np.testing.assert_allclose(brute["theta"][2], 0.9, atol=1e-9)
    assert post.log_evidence == pytest.approx(brute["log_evidence"], abs=1e-9)


def test_marginal_cdfs_and_evidence_match_nested_quad(posteriors):
    """Nested scipy.integrate.quad on rail: over log omega outside, log lam inside, split at the
    quadrature's 0.3-quantile of lam and 0.8-quantile of tau."""
    post = posteriors["rail"]
    data, priors = post.data, post.priors
    design = np.zeros((data.N, data.m))
    design[np.arange(data.N), data.codes] = 1.0
    same_school = design @ design.T
    residual = data.values - priors.nu

    def log_gamma_density(x, shape, rate):  # textbook formula: scipy.stats is slow per point
        return (shape * math.log(rate) - special.gammaln(shape) + (shape - 1) * math.log(x)
                - rate * x)

    def log_joint(log_lam, log_omega):
        """log p(u, v, y) with y ~ N(nu 1, I/lam + Z Z'/(lam omega) + 1 1'/phi)."""
        lam, omega = math.exp(log_lam), math.exp(log_omega)
        covariance = np.eye(data.N) / lam + same_school / (lam * omega) + 1.0 / priors.phi
        lower = linalg.cholesky(covariance, lower=True, check_finite=False)
        white = linalg.solve_triangular(lower, residual, lower=True, check_finite=False)
        log_likelihood = (-0.5 * (data.N * math.log(2 * math.pi) + white @ white)
                          - np.log(np.diag(lower)).sum())
        return (log_gamma_density(lam, priors.a, priors.b)
                + log_gamma_density(omega, priors.c, priors.d)
                + log_lam + log_omega + log_likelihood)

    (mean_u, mean_v), (sd_u, sd_v) = post.grid.moments()
    offset = log_joint(mean_u, mean_v)
    lam_cut = math.log(post.quantile("lam", 0.3))
    tau_cut = -2 * math.log(post.quantile("tau", 0.8))  # tau <= t  <=>  log omega >= -2 log t

    def split_inner(log_omega):
        """(mass with log lam below lam_cut, mass above) at one log omega."""
        def density(log_lam):
            return math.exp(log_joint(log_lam, log_omega) - offset)
        return np.array([integrate.quad(density, low, high, epsabs=0, epsrel=1e-10)[0]
                         for low, high in ((mean_u - 14 * sd_u, lam_cut),
                                           (lam_cut, mean_u + 14 * sd_u))])

    below_tau_cut, above_tau_cut = (
        integrate.quad_vec(split_inner, low, high, epsabs=0, epsrel=1e-10)[0]
        for low, high in ((mean_v - 14 * sd_v, tau_cut), (tau_cut, mean_v + 14 * sd_v)))
    total = below_tau_cut.sum() + above_tau_cut.sum()
    assert (below_tau_cut[0] + above_tau_cut[0]) / total == pytest.approx(0.3, abs=1e-10)
    assert above_tau_cut.sum() / total == pytest.approx(0.8, abs=1e-10)
    assert post.log_evidence == pytest.approx(offset + math.log(total), abs=1e-10)


# -- a closed-form limit ------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["rail", "mathtest"])
def test_known_omega_and_flat_mu_limit_is_student_t(datasets, name):
    """omega ~ Gamma(c, c/omega0) with c = 1e9 pins omega at omega0 and phi = 1e-12 makes mu's
    prior flat. Then, with V = I + Z Z'/omega0 and generalized least squares
    W = 1'V^-1 1, mu_hat = 1'V^-1 y / W, Q = (y - mu_hat)'V^-1 (y - mu_hat):

        lam | y ~ Gamma(a + (N-1)/2, b + Q/2),   mu | y ~ t_2alpha(mu_hat, beta / (alpha W)),
        theta | y ~ t_2alpha(E, (beta/alpha) C),

    E and C the mean and lam-scaled covariance of theta given y (mu integrated), by linear
    algebra on V. The limit itself is off by O(1/c), 2e-8 of an SD here (it falls tenfold per
    tenfold c); the tolerance is 1e-7."""
    data = datasets[name]
    omega0, c = 2.0, 1e9
    priors = dataclasses.replace(Priors.weakly_informative(data), c=c, d=c / omega0, phi=1e-12)
    post = exact.posterior(data, priors)

    design = np.zeros((data.N, data.m))
    design[np.arange(data.N), data.codes] = 1.0
    spread = np.eye(data.N) + design @ design.T / omega0
    ones = np.ones(data.N)
    spread_ones = np.linalg.solve(spread, ones)
    precision = ones @ spread_ones
    mu_hat = spread_ones @ data.values / precision
    residual = data.values - mu_hat
    spread_residual = np.linalg.solve(spread, residual)
    alpha = priors.a + (data.N - 1) / 2
    beta = priors.b + residual @ spread_residual / 2
    theta_mean = mu_hat + design.T @ spread_residual / omega0
    slope = 1 - design.T @ spread_ones / omega0  # d E[theta | mu, y] / d mu
    theta_cov = (np.eye(data.m) / omega0
                 - design.T @ np.linalg.solve(spread, design) / omega0 ** 2
                 + np.outer(slope, slope) / precision)

    lam = scipy_stats.gamma(alpha, scale=1 / beta)
    sigma_mean = math.sqrt(beta) * math.exp(special.gammaln(alpha - 0.5) - special.gammaln(alpha))
    expected = {
        "lam": (lam.mean(), lam.std(), lam.ppf(LEVELS)),
        "sigma": (sigma_mean, math.sqrt(beta / (alpha - 1) - sigma_mean ** 2),
                  lam.ppf(1 - LEVELS) ** -0.5),
        "mu": scipy_stats.t(2 * alpha, mu_hat, math.sqrt(beta / (alpha * precision))),
        "theta": scipy_stats.t(2 * alpha, theta_mean,
                               np.sqrt(beta / alpha * np.diag(theta_cov))),
    }
    for variable in ("mu", "theta"):
        law = expected[variable]
        expected[variable] = (law.mean(), law.std(), law.ppf(LEVELS[:, None]).squeeze())
    for variable, (mean, sd, quantiles) in expected.items():
        np.testing.assert_allclose((post.mean(variable) - mean) / sd, 0, atol=1e-7)
        np.testing.assert_allclose(post.sd(variable), sd, rtol=1e-7)
        np.testing.assert_allclose((post.quantile(variable, LEVELS) - quantiles) / sd, 0,
                                   atol=1e-7)
    assert post.mean("omega") == pytest.approx(omega0, rel=1e-6)


# -- the grid -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", DATASETS)
def test_halving_the_spacing_and_widening_changes_nothing(datasets, posteriors, name):
    """The default grid against one of half the spacing whose edges hold 1000 times less."""
    post = posteriors[name]
    finer = exact.posterior(datasets[name], post.priors, spacing=exact.DEFAULT_SPACING / 2,
                            edge_tol=exact.DEFAULT_EDGE_TOL / 1000)
    assert finer.grid.log_density.size > 3 * post.grid.log_density.size
    for variable in exact.VARIABLES:
        sd = finer.sd(variable)
        np.testing.assert_allclose((post.mean(variable) - finer.mean(variable)) / sd, 0,
                                   atol=1e-9)
        np.testing.assert_allclose(post.sd(variable), sd, rtol=1e-9)
        np.testing.assert_allclose(
            (post.quantile(variable, LEVELS) - finer.quantile(variable, LEVELS)) / sd, 0,
            atol=1e-9)
    assert post.log_evidence == pytest.approx(finer.log_evidence, abs=1e-9)


@pytest.mark.parametrize("name", DATASETS)
def test_grid_holds_the_mass_and_resolves_it(posteriors, name):
    grid = posteriors[name].grid
    assert np.all(grid.share_beyond_edges() <= exact.DEFAULT_EDGE_TOL)
    assert np.all(grid.resolution_errors() <= exact.RESOLUTION_TOL)


def test_dyestuff2_grid_reaches_where_the_prior_cuts_omega_off(posteriors):
    """Dyestuff2's scores show no between-batch variation, so the likelihood stays flat as omega
    grows and only the prior Gamma(c, d) ends omega's posterior: the grid must reach that far."""
    post = posteriors["dyestuff2"]
    prior = scipy_stats.gamma(post.priors.c, scale=1 / post.priors.d)
    assert math.exp(post.grid.log_omega[-1]) > prior.ppf(1 - 1e-9)
    assert post.cdf("omega", prior.ppf(0.5)) < 0.5  # pushed toward large omega, beyond the prior


@pytest.mark.parametrize("c, d, message", [
    (1e-6, 1e-100, "no interior mode"),  # all but flat in log omega up to 230: no curvature
    (1e-3, 1e-99, "still holds mass"),    # a mode near log omega = 221, mass beyond the 230 limit
])
def test_posterior_beyond_the_grids_reach_raises(datasets, c, d, message):
    data = datasets["dyestuff2"]
    priors = dataclasses.replace(Priors.weakly_informative(data), c=c, d=d)
    with pytest.raises(QuadratureError, match=f"{message}.*improper or piles up"):
        exact.posterior(data, priors)


@pytest.mark.parametrize("setting", [{"spacing": 0.0}, {"spacing": 2.0}, {"edge_tol": 0.0},
                                     {"edge_tol": 0.1}])
def test_bad_grid_settings_raise(datasets, setting):
    data = datasets["rail"]
    with pytest.raises(QuadratureError, match=next(iter(setting))):
        exact.posterior(data, Priors.weakly_informative(data), **setting)


@pytest.mark.parametrize("name, q, message", [
    ("beta", 0.5, "unknown variable 'beta'"),
    ("mu", 0.0, "strictly between 0 and 1"),
    ("tau", [0.5, 1.0], "strictly between 0 and 1"),
    ("theta", float("nan"), "strictly between 0 and 1"),
])
def test_bad_queries_raise(posteriors, name, q, message):
    with pytest.raises(SettingsError, match=message):
        posteriors["rail"].quantile(name, q)


def test_quantiles_invert_the_cdf_and_the_summary_collects_them(posteriors):
    post = posteriors["radon"]
    for variable in exact.VARIABLES:
        quantiles = post.quantile(variable, [1e-6, 0.3, 0.999])
        expected = np.array([1e-6, 0.3, 0.999])
        if variable == "theta":
            expected = np.broadcast_to(expected[:, None], quantiles.shape)
        np.testing.assert_allclose(post.cdf(variable, quantiles), expected, rtol=1e-9)
    table = post.summary(quantiles=(0.1, 0.9))
    assert list(table.columns) == ["mean", "sd", "10%", "90%"]
    assert table.index[:5].tolist() == list(SCALARS)
    assert table.index[5] == f"theta[{post.data.labels[0]}]"
    m = post.data.m
    np.testing.assert_array_equal(table.loc[table.index[5:5 + m], "90%"],
                                  post.quantile("theta", 0.9))
    assert table.index[5 + m] == f"kappa[{post.data.labels[0]}]"
    np.testing.assert_array_equal(table.loc[table.index[5 + m:], "90%"],
                                  post.quantile("kappa", 0.9))
    assert table.loc["tau", "mean"] == post.mean("tau")


# -- the draws ----------------------------------------------------------------------------------

def test_engine_result_follows_the_interface(datasets):
    data = datasets["rail"]
    priors = Priors.weakly_informative(data)
    idata = exact.sample(data, priors, draws=50, chains=3, seed=4)
    posterior = idata.posterior
    assert set(posterior.data_vars) == set(POSTERIOR_VARIABLES)
    assert posterior["tau"].dims == ("chain", "draw")
    assert posterior["theta"].dims == ("chain", "draw", "school")
    assert posterior["theta"].shape == (3, 50, data.m)
    np.testing.assert_array_equal(posterior["school"].values, data.labels)
    np.testing.assert_array_equal(idata.constant_data["ss"].values, data.ss)
    np.testing.assert_allclose(posterior["sigma"], posterior["lam"] ** -0.5)
    assert posterior.attrs["engine"] == "exact"
    assert engine_settings(idata)["spacing"] == exact.DEFAULT_SPACING
    with pytest.raises(ValueError, match="draws must be an integer >= 1"):
        exact.sample(data, priors, draws=0, chains=1, seed=1)


def test_same_seed_same_draws(datasets):
    data = datasets["dyestuff"]
    priors = Priors.weakly_informative(data)

    def draws(seed):
        return exact.sample(data, priors, draws=20, chains=2, seed=seed).posterior

    for seed in (11, np.random.SeedSequence(11)):
        first, second = draws(seed), draws(seed)
        for name in POSTERIOR_VARIABLES:
            np.testing.assert_array_equal(first[name], second[name])
    assert not np.array_equal(draws(11)["theta"], draws(12)["theta"])


@pytest.mark.parametrize("name", ["dyestuff2", "radon", "mathtest"])
def test_draw_means_lie_within_z_of_the_quadrature_means(posteriors, name):
    post = posteriors[name]
    draws = post.draw(np.random.default_rng(2024), (2, 10_000))
    draws["sigma"], draws["tau"] = draws["lam"] ** -0.5, draws["omega"] ** -0.5
    for variable in exact.VARIABLES:
        sample = draws[variable].reshape(20_000, -1)
        z = (sample.mean(axis=0) - post.mean(variable)) / (post.sd(variable) / math.sqrt(20_000))
        # i.i.d. draws: |z| < 5 has false-alarm rate 5.7e-7 per assertion, 2e-4 over the
        # 5 + m assertions of the three data sets
        assert np.all(np.abs(z) < 5), (variable, np.abs(z).max())


@pytest.mark.parametrize("name", ["rail", "dyestuff2", "radon"])
def test_tau_draws_pass_ks_against_the_quadrature_cdf(posteriors, name):
    post = posteriors[name]
    tau = post.draw(np.random.default_rng(7), 50_000)["omega"] ** -0.5
    # false alarm 1e-5 per data set; with 50 000 draws the test sees a CDF error of 0.01
    assert scipy_stats.kstest(tau, lambda t: post.cdf("tau", t)).pvalue > 1e-5


@pytest.mark.parametrize("name, bound", [("rail", 2e-5), ("dyestuff", 2e-5), ("dyestuff2", 2e-5),
                                         ("radon", 1e-6), ("mathtest", 1e-6)])
def test_the_law_of_the_draws_has_the_posterior_moments(posteriors, name, bound):
    """The draws of (log lam, log omega) follow a known law: cell j with the sampler's
    probability, the offset e in it with density proportional to exp(s_j . e). Integrating
    that law by 12 x 12 Gauss-Legendre points per cell measures the sub-cell approximation,
    which Monte Carlo could not: means of lam, sigma, omega and tau within `bound` SDs, SDs
    within `bound` relative."""
    post = posteriors[name]
    sampler, grid = post._sampler, post.grid
    probabilities = sampler.probabilities.reshape(grid.log_density.shape)
    nodes, weights = np.polynomial.legendre.leggauss(12)
    offsets = [np.multiply.outer(nodes / 2, step) for step in grid.step]  # (12,) per axis

    def tilted_density(slope, offset, step):
        k = slope * step
        normalizer = np.where(np.abs(k) > 1e-12, np.expm1(k) / np.where(k == 0, 1, k), 1.0)
        return np.exp(slope * (offset + step / 2)) / normalizer  # per unit of e / step

    def expectation(function):
        total = 0.0
        for e_lam, w_lam in zip(offsets[0], weights / 2):
            for e_omega, w_omega in zip(offsets[1], weights / 2):
                density = (tilted_density(sampler.slopes[0], e_lam, grid.step[0])
                           * tilted_density(sampler.slopes[1], e_omega, grid.step[1]))
                values = function(grid.log_lam[:, None] + e_lam, grid.log_omega[None, :] + e_omega)
                total += (probabilities * w_lam * w_omega * density * values).sum()
        return total

    for variable, function in (("lam", lambda u, v: np.exp(u)), ("omega", lambda u, v: np.exp(v)),
                               ("sigma", lambda u, v: np.exp(-u / 2)),
                               ("tau", lambda u, v: np.exp(-v / 2))):
        mean = expectation(function)
        sd = math.sqrt(expectation(lambda u, v: (function(u, v) - mean) ** 2))
        assert abs(mean - post.mean(variable)) < bound * post.sd(variable), variable
        assert abs(sd / post.sd(variable) - 1) < bound, variable


@pytest.mark.parametrize("slope", [-40.0, -2.0, 0.0, 1e-9, 3.0])
def test_offsets_follow_the_tilted_density(slope):
    step = 0.5
    offsets = exact._draw_offsets(np.random.default_rng(3), np.full(20_000, slope), step)
    assert np.all(np.abs(offsets) <= step / 2)

    def cdf(e):
        if slope == 0.0:
            return (e + step / 2) / step
        return np.expm1(slope * (e + step / 2)) / np.expm1(slope * step)

    # false alarm 1e-5 per slope
    assert scipy_stats.kstest(offsets, cdf).pvalue > 1e-5


@pytest.mark.parametrize("slope", [-40.0, -2.0, 0.0, 1e-9, 3.0])
def test_cell_mass_of_a_tilt_is_its_integral(slope):
    step = 0.2
    direct, _ = integrate.quad(lambda e: math.exp(slope * e), -step / 2, step / 2,
                               epsabs=0, epsrel=1e-13)
    computed = math.exp(exact._cell_log_mass(slope, 0.0, step)) * step
    assert computed == pytest.approx(direct, rel=1e-13)


# -- the documentation --------------------------------------------------------------------------

def test_docs_name_functions_that_exist():
    names = set(re.findall(r"`(hiercheck\.(?:models|samplers)\.[\w.]+)`", DOCS.read_text()))
    assert len(names) >= 8
    for name in sorted(names):
        assert resolve(name) is not None, name
