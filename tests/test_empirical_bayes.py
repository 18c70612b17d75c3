"""Empirical Bayes against independent computations: statsmodels' MixedLM on every data set, the
scores' dense multivariate normal density, quadrature over mu, numerical Hessians, and the
one-way ANOVA F statistic."""

import functools
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate, optimize, stats

from hiercheck.errors import ConvergenceWarning, HiercheckWarning, SettingsError
from hiercheck.models import GroupedData, Priors, load_dataset
from hiercheck.models.engine import POSTERIOR_VARIABLES, engine_settings
from hiercheck.samplers import empirical_bayes as eb
from tests.test_docs import DOTTED_NAME, resolve
from hiercheck.validation import statsmodels_check

BUILT_IN = ("hsb", "dyestuff", "dyestuff2", "rail", "radon", "nlschools", "exam")
ALL_DATA = BUILT_IN + ("mathtest",)
CRITERIA = {"ML": False, "REML": True}
DOCS_PAGE = Path(__file__).resolve().parents[1] / "docs" / "derivation.md"


@pytest.fixture(scope="module")
def datasets(mathtest):
    return {**{name: load_dataset(name) for name in BUILT_IN}, "mathtest": mathtest}


@functools.cache
def eb_fit(data: GroupedData, method: str, reml: bool) -> eb.EBFit:
    return eb.fit(data, method=method, reml=reml)


# statsmodels at its best (Powell, L-BFGS, polished by BFGS), once per data set and criterion
statsmodels_fit = functools.cache(statsmodels_check.statsmodels_fit)


# -- independent likelihoods: dense normal densities of the raw scores, no closed forms ------------

def _schools_by_size(data: GroupedData):
    """{n: (k, n) array of the scores of the k schools of size n}, to batch the dense algebra."""
    order = np.argsort(data.codes, kind="stable")
    scores = np.split(data.values[order], np.cumsum(data.n)[:-1])
    sizes = {}
    for school in scores:
        sizes.setdefault(school.size, []).append(school)
    return {n: np.array(group) for n, group in sizes.items()}


def dense_covariance(n: int, lam: float, r: float) -> np.ndarray:
    """Var(y_i | mu, lam, omega = 1/r): 1/lam + r/lam on the diagonal, r/lam off it."""
    return (np.eye(n) + r * np.ones((n, n))) / lam


def dense_loglik(data: GroupedData, mu: float, lam: float, r: float) -> float:
    """log p(y | mu, lam, omega = 1/r) as the sum of each school's n_i-dimensional normal log
    density, with a dense covariance, its log-determinant and a linear solve."""
    total = 0.0
    for n, scores in _schools_by_size(data).items():
        covariance = dense_covariance(n, lam, r)
        residual = scores - mu
        _, log_det = np.linalg.slogdet(covariance)
        quadratic = np.einsum("kj,kj->k", residual, np.linalg.solve(covariance, residual.T).T)
        total += (-0.5 * (n * math.log(2 * math.pi) + log_det) * len(scores)
                  - 0.5 * quadratic.sum())
    return total


def dense_restricted_loglik(data: GroupedData, lam: float, r: float) -> float:
    """Harville's restricted log-likelihood with a dense V = blockdiag(Sigma_i):
    -(N-1)/2 log 2pi - 1/2 log|V| - 1/2 log(1'V^-1 1) - 1/2 e'V^-1 e, e = y - 1 mu_gls."""
    information, weighted_sum = 0.0, 0.0
    for n, scores in _schools_by_size(data).items():
        inverse = np.linalg.inv(dense_covariance(n, lam, r))
        information += inverse.sum() * len(scores)
        weighted_sum += (scores @ inverse.sum(axis=1)).sum()
    mu = weighted_sum / information
    return (dense_loglik(data, mu, lam, r) + 0.5 * math.log(2 * math.pi)
            - 0.5 * math.log(information))


def numerical_hessian(function, x: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Central second differences: error O(step^2) plus rounding eps |f| / step^2."""
    dimension = x.size
    hessian = np.empty((dimension, dimension))
    for j in range(dimension):
        for k in range(dimension):
            ej, ek = np.eye(dimension)[j] * steps[j], np.eye(dimension)[k] * steps[k]
            hessian[j, k] = (function(x + ej + ek) - function(x + ej - ek) - function(x - ej + ek)
                             + function(x - ej - ek)) / (4 * steps[j] * steps[k])
    return hessian


def simulated_data(rng, sizes, between_sd, within_sd=1.0, name="simulated") -> GroupedData:
    sizes = np.asarray(sizes)
    theta = 10.0 + between_sd * rng.standard_normal(sizes.size)
    codes = np.repeat(np.arange(sizes.size), sizes)
    values = theta[codes] + within_sd * rng.standard_normal(codes.size)
    return GroupedData.from_arrays(codes, values, name=name)


@pytest.fixture(scope="module")
def unbalanced():
    """Eight schools of 1 to 12 students (one with a single student), real between variation."""
    return simulated_data(np.random.default_rng(20240611), [1, 2, 3, 5, 7, 8, 10, 12],
                          between_sd=0.8, name="unbalanced")


# -- the bar: statsmodels' MixedLM on every data set -----------------------------------------------

@pytest.mark.parametrize("criterion", CRITERIA)
@pytest.mark.parametrize("name", ALL_DATA)
def test_loglik_is_statsmodels_maximum_both_ways(datasets, name, criterion):
    """No lower (the profile finds the maximum) and no higher than statsmodels' polished maximum
    (7e-10 higher on dyestuff2, where statsmodels approaches tau = 0 without reaching it)."""
    data, reml = datasets[name], CRITERIA[criterion]
    _, reference = statsmodels_fit(data, reml)
    fit = eb_fit(data, "profile", reml)
    assert fit.converged
    assert abs(fit.loglik - reference.llf) <= statsmodels_check.PROFILE_TOLERANCE


@pytest.mark.parametrize("criterion", CRITERIA)
@pytest.mark.parametrize("name", ALL_DATA)
def test_estimates_match_statsmodels(datasets, name, criterion):
    data, reml = datasets[name], CRITERIA[criterion]
    _, reference = statsmodels_fit(data, reml)
    fit = eb_fit(data, "profile", reml)
    assert fit.at_boundary == (name == "dyestuff2")  # the one data set whose maximum is at tau = 0
    np.testing.assert_approx_equal(fit.mu, reference.fe_params.iloc[0], significant=5)
    np.testing.assert_approx_equal(fit.sigma, math.sqrt(reference.scale), significant=5)
    np.testing.assert_approx_equal(fit.standard_errors["mu"], reference.bse_fe.iloc[0],
                                   significant=5)
    if not fit.at_boundary:
        np.testing.assert_approx_equal(fit.between_sd, math.sqrt(reference.cov_re.iloc[0, 0]),
                                       significant=5)


@pytest.mark.parametrize("criterion", CRITERIA)
def test_boundary_is_exact_where_statsmodels_only_approaches_it(datasets, criterion):
    data, reml = datasets["dyestuff2"], CRITERIA[criterion]
    _, reference = statsmodels_fit(data, reml)
    fit = eb_fit(data, "profile", reml)
    assert reference.cov_re.iloc[0, 0] > 0  # statsmodels stops short of the boundary
    assert fit.variance_ratio == 0.0 and fit.tau == 0.0 and fit.between_sd == 0.0
    assert fit.omega == math.inf
    assert np.array_equal(fit.theta_mean, np.full(data.m, fit.mu))
    assert np.array_equal(fit.theta_sd, np.zeros(data.m))
    # at tau = 0 the scores are i.i.d. N(mu, 1/lam): the (restricted) likelihood of scipy's normal
    if reml:
        assert fit.loglik == pytest.approx(dense_restricted_loglik(data, fit.lam, 0.0), abs=1e-9)
    else:
        iid = stats.norm.logpdf(data.values, fit.mu, fit.sigma).sum()
        assert fit.loglik == pytest.approx(iid, abs=1e-9)


@pytest.mark.parametrize("criterion", CRITERIA)
@pytest.mark.parametrize("name", [n for n in ALL_DATA if n != "dyestuff2"])
def test_loglik_convention_is_statsmodels(datasets, name, criterion):
    """statsmodels' own (restricted) log-likelihood function, evaluated at our estimates, gives our
    value: the same constants, REML included."""
    from statsmodels.regression.mixed_linear_model import MixedLMParams

    data, reml = datasets[name], CRITERIA[criterion]
    model, _ = statsmodels_fit(data, reml)
    fit = eb_fit(data, "profile", reml)
    params = MixedLMParams.from_components(fe_params=np.array([fit.mu]),
                                           cov_re=np.array([[fit.variance_ratio]]))
    model.reml = reml
    assert fit.loglik == pytest.approx(model.loglike(params, profile_fe=False), abs=1e-8)


# -- Nelder-Mead, the original write-up's method, agrees with the profile ------------------------------

@pytest.mark.parametrize("criterion", CRITERIA)
@pytest.mark.parametrize("name", ALL_DATA)
def test_nelder_mead_agrees_with_profile(datasets, name, criterion):
    data, reml = datasets[name], CRITERIA[criterion]
    profile, simplex = eb_fit(data, "profile", reml), eb_fit(data, "nelder-mead", reml)
    assert simplex.converged
    assert simplex.loglik <= profile.loglik + 1e-9  # the profile's is the maximum
    for estimate in ("mu", "sigma"):
        np.testing.assert_approx_equal(getattr(simplex, estimate), getattr(profile, estimate),
                                       significant=4)
    if profile.at_boundary:
        assert simplex.between_sd < 0.01 * profile.sigma
    else:
        np.testing.assert_approx_equal(simplex.between_sd, profile.between_sd, significant=4)


# -- the profile likelihood against brute force ------------------------------------------------------

@pytest.mark.parametrize("ratio", [0.0, 0.05, 0.4, 3.0])
def test_profile_loglik_is_the_maximum_over_mu_and_lam(unbalanced, ratio):
    grand_mean, log_lam = unbalanced.values.mean(), -math.log(unbalanced.values.var())
    result = optimize.minimize(lambda x: -dense_loglik(unbalanced, x[0], math.exp(x[1]), ratio),
                               [grand_mean, log_lam], method="Nelder-Mead",
                               options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 5000})
    assert result.success
    assert eb.profile_loglik(unbalanced.stats, ratio) == pytest.approx(-result.fun, abs=1e-9)
    assert eb.gls_mean(unbalanced.stats, 1 / ratio if ratio else math.inf) == pytest.approx(
        result.x[0], abs=1e-6)
    assert eb.profile_lam(unbalanced.stats, ratio) == pytest.approx(math.exp(result.x[1]),
                                                                    rel=1e-6)


@pytest.mark.parametrize("ratio", [0.0, 0.05, 0.4, 3.0])
def test_restricted_profile_is_the_maximum_over_lam(unbalanced, ratio):
    result = optimize.minimize_scalar(
        lambda log_lam: -dense_restricted_loglik(unbalanced, math.exp(log_lam), ratio),
        bracket=(-3.0, 0.0), tol=1e-12)
    assert result.success
    assert eb.profile_loglik(unbalanced.stats, ratio, reml=True) == pytest.approx(-result.fun,
                                                                                  abs=1e-9)
    assert eb.profile_lam(unbalanced.stats, ratio, reml=True) == pytest.approx(
        math.exp(result.x), rel=1e-6)


@pytest.mark.parametrize("lam, ratio", [(0.5, 0.0), (1.3, 0.2), (0.8, 5.0)])
def test_restricted_loglik_integrates_mu_out(unbalanced, lam, ratio):
    """log integral p(y | mu, lam, omega) dmu by adaptive quadrature over the whole line."""
    peak = dense_loglik(unbalanced, unbalanced.values.mean(), lam, ratio)
    integral, error = integrate.quad(
        lambda mu: math.exp(dense_loglik(unbalanced, mu, lam, ratio) - peak), -np.inf, np.inf,
        epsabs=0, epsrel=1e-12)
    omega = 1 / ratio if ratio else math.inf
    assert error < 1e-10 * integral
    assert eb.restricted_loglik(unbalanced.stats, lam, omega) == pytest.approx(
        peak + math.log(integral), abs=1e-9)


@pytest.mark.parametrize("criterion", CRITERIA)
def test_score_is_the_derivative_of_the_profile(unbalanced, criterion):
    reml = CRITERIA[criterion]
    ratios = np.array([1e-3, 0.05, 0.4, 3.0])
    step = 1e-6 * ratios  # central difference: error ~ step^2 l''' + eps |l| / step, far below 1e-6
    difference = (eb.profile_loglik(unbalanced.stats, ratios + step, reml=reml)
                  - eb.profile_loglik(unbalanced.stats, ratios - step, reml=reml)) / (2 * step)
    np.testing.assert_allclose(eb.profile_score(unbalanced.stats, ratios, reml=reml), difference,
                               rtol=1e-6, atol=1e-6)


def test_loglik_at_the_estimates_is_the_dense_normal_density(datasets):
    data = datasets["mathtest"]
    fit = eb_fit(data, "profile", False)
    assert fit.loglik == pytest.approx(dense_loglik(data, fit.mu, fit.lam, fit.variance_ratio),
                                       abs=1e-8)


@pytest.mark.parametrize("criterion", CRITERIA)
def test_balanced_boundary_is_the_anova_rule(criterion):
    """With equal school sizes the maximum sits at tau = 0 exactly when the one-way ANOVA
    F = MSB/MSW is at most m/(m-1) (ML) or 1 (REML); scipy's f_oneway computes F."""
    reml = CRITERIA[criterion]
    rng = np.random.default_rng(7)
    m, n = 6, 5
    threshold = 1.0 if reml else m / (m - 1)
    outcomes = []
    for between_sd in np.linspace(0.0, 0.6, 40):
        data = simulated_data(rng, [n] * m, between_sd)
        groups = [data.values[data.codes == i] for i in range(m)]
        on_boundary = stats.f_oneway(*groups).statistic <= threshold
        assert eb.fit(data, reml=reml).at_boundary == on_boundary
        outcomes.append(on_boundary)
    assert 5 <= sum(outcomes) <= 35  # both sides of the rule were exercised


# -- standard errors: the inverse of a numerical Hessian, in each reported parameterization --------

# (names, map from those parameters to (mu, lam, r))
PARAMETERIZATIONS = {
    "mu-lam-r": (("mu", "lam", "r"), lambda mu, lam, r: (mu, lam, r)),
    "mu-sigma-between": (("mu", "sigma", "between_sd"),
                         lambda mu, sigma, between: (mu, sigma ** -2, (between / sigma) ** 2)),
    "mu-sigma-tau": (("mu", "sigma", "tau"), lambda mu, sigma, tau: (mu, sigma ** -2, tau ** 2)),
    "mu-lam-omega": (("mu", "lam", "omega"), lambda mu, lam, omega: (mu, lam, 1 / omega)),
}


# relative steps: truncation ~ step^2 ~ 1e-7 against rounding eps |l| / step^2 ~ 1e-8 of the
# curvature, so the inverse Hessian is good to ~1e-6, well inside the 1e-4 the tests ask
HESSIAN_STEP = 3e-4


def _correlation(covariance: np.ndarray) -> np.ndarray:
    sd = np.sqrt(np.diag(covariance))
    return covariance / np.outer(sd, sd)


def _estimate(fit: eb.EBFit, name: str) -> float:
    return fit.variance_ratio if name == "r" else getattr(fit, name)


@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
def test_ml_standard_errors_are_the_inverse_observed_information(datasets, parameterization):
    data = datasets["mathtest"]
    fit = eb_fit(data, "profile", False)
    names, to_model = PARAMETERIZATIONS[parameterization]
    x = np.array([_estimate(fit, name) for name in names])
    hessian = numerical_hessian(lambda v: dense_loglik(data, *to_model(*v)), x,
                                HESSIAN_STEP * np.abs(x))
    covariance = np.linalg.inv(-hessian)
    expected = dict(zip(names, np.sqrt(np.diag(covariance))))
    errors = fit.standard_errors
    for name in names:
        if name == "r":
            assert math.sqrt(fit.covariance[2, 2]) == pytest.approx(expected[name], rel=1e-4)
        else:
            assert errors[name] == pytest.approx(expected[name], rel=1e-4)
    if parameterization == "mu-lam-r":  # the correlations too, small as they are (~1e-3 for mu)
        np.testing.assert_allclose(_correlation(fit.covariance), _correlation(covariance),
                                   atol=1e-5)


def test_reml_standard_errors_are_the_inverse_restricted_information(datasets):
    data = datasets["mathtest"]
    fit = eb_fit(data, "profile", True)
    x = np.array([fit.lam, fit.variance_ratio])
    hessian = numerical_hessian(lambda v: dense_restricted_loglik(data, *v), x, HESSIAN_STEP * x)
    np.testing.assert_allclose(fit.covariance[1:, 1:], np.linalg.inv(-hessian), rtol=1e-4)


@pytest.mark.parametrize("criterion", CRITERIA)
def test_boundary_standard_errors_are_those_of_iid_normal_scores(datasets, criterion):
    """At tau = 0, r is held fixed: the scores are i.i.d. N(mu, 1/lam), whose mean has standard
    error sigma/sqrt(N) and whose lam has observed information (N - p)/(2 lam^2)."""
    data, reml = datasets["dyestuff2"], CRITERIA[criterion]
    fit = eb_fit(data, "profile", reml)
    errors = fit.standard_errors
    assert errors["mu"] == pytest.approx(fit.sigma / math.sqrt(data.N), rel=1e-12)
    assert errors["lam"] == pytest.approx(fit.lam * math.sqrt(2 / (data.N - reml)), rel=1e-12)
    assert all(math.isnan(errors[name]) for name in ("tau", "between_sd", "omega"))


# -- theta given the estimates ----------------------------------------------------------------------

def test_theta_is_conditioned_on_the_scores(datasets):
    """E and SD of theta_i given y_i from the joint normal of (theta_i, y_i), by dense algebra:
    E = mu + c' Sigma^-1 (y_i - mu), Var = r/lam - c' Sigma^-1 c, c = Cov(theta_i, y_i) = r/lam."""
    data = datasets["mathtest"]
    fit = eb_fit(data, "profile", False)
    lam, r = fit.lam, fit.variance_ratio
    for i in range(data.m):
        scores = data.values[data.codes == i]
        covariance = dense_covariance(scores.size, lam, r)
        cross = np.full(scores.size, r / lam)
        gain = np.linalg.solve(covariance, cross)
        mean = fit.mu + gain @ (scores - fit.mu)
        assert fit.theta_mean[i] == pytest.approx(mean, rel=1e-12)
        assert fit.theta_sd[i] == pytest.approx(math.sqrt(r / lam - gain @ cross), rel=1e-9)
        # the sheet's definition: E(theta_i | y, estimates) = kappa_i mu + (1 - kappa_i) ybar_i
        ybar = scores.mean()
        assert fit.kappa[i] == pytest.approx((ybar - mean) / (ybar - fit.mu), rel=1e-7)
        assert fit.relative_change[i] == pytest.approx((ybar - mean) / ybar, rel=1e-9)


# -- the engine and its InferenceData --------------------------------------------------------------

@pytest.fixture(scope="module")
def mathtest_idata(datasets):
    data = datasets["mathtest"]
    return eb.sample(data, Priors.weakly_informative(data), draws=1000, chains=4, seed=11)


def test_engine_result_has_the_interface(datasets, mathtest_idata):
    data = datasets["mathtest"]
    fit = eb_fit(data, "profile", False)
    posterior = mathtest_idata.posterior
    assert set(POSTERIOR_VARIABLES) <= set(posterior.data_vars)
    assert posterior["theta"].dims == ("chain", "draw", "school")
    assert posterior["mu"].shape == (4, 1000)
    assert list(posterior["school"].values) == list(data.labels)
    for name in ("mu", "lam", "omega", "sigma", "tau"):
        assert np.all(posterior[name].values == getattr(fit, name))
    assert posterior.attrs["engine"] == "eb"
    assert engine_settings(mathtest_idata)["method"] == "profile"
    assert np.array_equal(mathtest_idata.constant_data["ybar"].values, data.ybar)


def test_engine_draws_theta_from_its_conditional(datasets, mathtest_idata):
    fit = eb_fit(datasets["mathtest"], "profile", False)
    draws = mathtest_idata.posterior["theta"].values.reshape(-1, fit.data.m)
    count = draws.shape[0]
    # z-tests at |z| < 4.5 per school (false alarm 7e-6 each, 1.4e-3 over 200 assertions); the
    # SD's z uses its large-sample standard error sd / sqrt(2 count)
    z_mean = (draws.mean(0) - fit.theta_mean) / (fit.theta_sd / math.sqrt(count))
    z_sd = (draws.std(0, ddof=1) - fit.theta_sd) / (fit.theta_sd / math.sqrt(2 * count))
    assert np.abs(z_mean).max() < 4.5
    assert np.abs(z_sd).max() < 4.5


def test_engine_is_reproducible(datasets):
    data = datasets["rail"]
    priors = Priors.weakly_informative(data)
    first = eb.sample(data, priors, draws=20, chains=2, seed=np.random.SeedSequence(5))
    again = eb.sample(data, priors, draws=20, chains=2, seed=np.random.SeedSequence(5))
    other = eb.sample(data, priors, draws=20, chains=2, seed=6)
    assert np.array_equal(first.posterior["theta"].values, again.posterior["theta"].values)
    assert not np.array_equal(first.posterior["theta"].values, other.posterior["theta"].values)


def test_engine_at_the_boundary_draws_theta_equal_to_mu(datasets):
    data = datasets["dyestuff2"]
    idata = eb.sample(data, Priors.weakly_informative(data), draws=10, chains=2, seed=1)
    posterior = idata.posterior
    assert np.all(posterior["theta"].values == posterior["mu"].values[..., None])
    assert np.all(posterior["tau"].values == 0.0) and np.all(np.isinf(posterior["omega"].values))


# -- settings, summary, plot, docs ---------------------------------------------------------------------

@pytest.mark.parametrize("criterion", CRITERIA)
def test_nelder_mead_takes_a_users_objective_for_either_criterion(datasets, criterion):
    """A user's function goes through the same search as the package's: given the package's
    own criterion as the user's, the search is the same, step for step."""
    data, reml = datasets["rail"], CRITERIA[criterion]
    own = eb.restricted_loglik if reml else eb.log_marginal_likelihood
    users = eb.fit(data, method="nelder-mead", reml=reml, objective=lambda *args: own(*args))
    assert users.loglik == eb_fit(data, "nelder-mead", reml).loglik
    with pytest.raises(SettingsError, match="needs method='nelder-mead'"):
        eb.fit(data, reml=reml, objective=own)


@pytest.mark.parametrize("settings", [{"method": "newton"}, {"reml": "yes"}])
def test_bad_settings_are_named(datasets, settings):
    with pytest.raises(SettingsError, match=next(iter(settings))) as raised:
        eb.fit(datasets["rail"], **settings)
    assert "\n" not in str(raised.value)


def test_bad_run_size_is_refused(datasets):
    data = datasets["rail"]
    with pytest.raises(ValueError, match="draws"):
        eb.sample(data, Priors.weakly_informative(data), draws=0, chains=1, seed=1)


@pytest.mark.parametrize("criterion", CRITERIA)
def test_summary_reports_the_fit(datasets, criterion):
    fit = eb_fit(datasets["hsb"], "profile", CRITERIA[criterion])
    text = str(fit)
    errors = fit.standard_errors
    summary = fit.summary()
    for name in ("mu", "sigma", "between_sd", "tau", "lam", "omega"):
        row = next(line for line in text.splitlines() if line.startswith(name + " "))
        assert f"{getattr(fit, name):.6g}" in row and f"{errors[name]:.6g}" in row
        assert summary.loc[name, "estimate"] == getattr(fit, name)
        assert summary.loc[name, "std_err"] == errors[name]
    assert f"{fit.loglik:.6f}" in text and criterion in text
    assert criterion in fit._repr_html_() and "<table" in fit._repr_html_()


def test_summary_explains_the_boundary(datasets):
    text = str(eb_fit(datasets["dyestuff2"], "profile", False))
    assert "boundary" in text and "inf" in text


def test_plot_shrinkage_draws_one_point_per_school(datasets):
    fit = eb_fit(datasets["mathtest"], "profile", False)
    ax = eb.plot_shrinkage(fit)
    points = ax.collections[0].get_offsets()
    assert points.shape == (fit.data.m, 2)
    np.testing.assert_array_equal(points[:, 0], fit.data.n)
    np.testing.assert_allclose(points[:, 1], fit.kappa)
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()


def test_plot_shrinkage_uses_the_given_axes(datasets):
    from matplotlib.figure import Figure

    ax = Figure().subplots()
    assert eb.plot_shrinkage(eb_fit(datasets["dyestuff"], "profile", False), ax=ax) is ax


def test_the_derivation_names_existing_code():
    names = DOTTED_NAME.findall(DOCS_PAGE.read_text())
    assert len(names) >= 12
    for name in names:
        assert resolve(name) is not None, name


def test_a_search_that_stops_short_warns_with_the_package_warning(datasets, monkeypatch):
    """Non-convergence is a ConvergenceWarning (a HiercheckWarning), not a silent flag."""
    monkeypatch.setattr(eb, "NELDER_MEAD_MAXFEV", 5)
    with pytest.warns(ConvergenceWarning, match="did not converge") as caught:
        fit = eb.fit(datasets["rail"], method="nelder-mead")
    assert not fit.converged and issubclass(caught[0].category, HiercheckWarning)
