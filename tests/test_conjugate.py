"""Conjugate conditionals recognized from a PyMC model's density (hiercheck.validation.conjugate).

Every family is tested twice: against a closed form derived by hand here, and against the
conditional computed from the joint density without the family (normalized on a grid for a
scalar, CDFs compared; for a multivariate block, log-density differences between random points
compared with scipy's density of the claimed distribution). The built-in models' conditionals are
compared with the package's hand-derived ones at random states, a logistic regression's
coefficients are not claimed, and auto_gibbs passes check_gibbs.
"""

from dataclasses import replace

import numpy as np
import pymc as pm
import pytest
from pymc.model.transform.conditioning import remove_value_transforms
from scipy import integrate, stats

from hiercheck.errors import ConjugacyError
from hiercheck.models.inverse_wishart import inverse_wishart
from hiercheck.validation.builtin_models import get_builtin
from hiercheck.validation.conjugate import auto_gibbs, conjugate_conditionals, sample

pytestmark = [
    pytest.mark.slow,  # every test compiles a model's density
    # PyMC on pm.Wishart: no support point (its initial point is a prior draw), and NUTS cannot
    # move it; neither matters to an exact conditional
    pytest.mark.filterwarnings("ignore:Support point not defined:UserWarning"),
    pytest.mark.filterwarnings("ignore:The Wishart distribution:UserWarning"),
]
RNG = np.random.default_rng(20261130)
TIGHT = dict(rtol=1e-9, atol=1e-12)


# -- the models and their closed forms ---------------------------------------------------------

M, N_PER = 5, 4
SCHOOL = np.repeat(np.arange(M), N_PER)
SCORES = RNG.normal(SCHOOL, 1.0)


def lam_omega_hierarchy() -> pm.Model:
    """The exercise: y ~ N(theta_school, 1/lam), theta ~ N(mu, 1/(omega lam))."""
    with pm.Model() as model:
        lam = pm.Gamma("lam", 2.0, 1.0)
        omega = pm.Gamma("omega", 1.5, 0.5)
        mu = pm.Normal("mu", 0.0, 10.0)
        theta = pm.Normal("theta", mu, tau=lam * omega, shape=M)
        pm.Normal("y", theta[SCHOOL], tau=lam, observed=SCORES)
    return model


def variance_hierarchy() -> pm.Model:
    """The same in variances: sigma2, tau2 inverse gamma, theta ~ N(mu, tau2 sigma2)."""
    with pm.Model() as model:
        sigma2 = pm.InverseGamma("sigma2", 3.0, 2.0)
        tau2 = pm.InverseGamma("tau2", 2.5, 1.5)
        mu = pm.Normal("mu", 0.0, 10.0)
        theta = pm.Normal("theta", mu, sigma=pm.math.sqrt(tau2 * sigma2), shape=M)
        pm.Normal("y", theta[SCHOOL], sigma=pm.math.sqrt(sigma2), observed=SCORES)
    return model


def hierarchy_by_hand(state: dict, variances: bool) -> dict:
    """The four conditionals of the exercise, derived on paper, as scipy distributions."""
    theta, mu = state["theta"], state["mu"]
    within = ((SCORES - theta[SCHOOL]) ** 2).sum()
    between = ((theta - mu) ** 2).sum()
    totals = np.bincount(SCHOOL, SCORES)
    if variances:
        s2, t2 = state["sigma2"], state["tau2"]
        lam, omega = 1 / s2, 1 / t2
        found = {"sigma2": stats.invgamma(3.0 + (SCORES.size + M) / 2,
                                          scale=2.0 + (within + between / t2) / 2),
                 "tau2": stats.invgamma(2.5 + M / 2, scale=1.5 + between / (2 * s2))}
    else:
        lam, omega = state["lam"], state["omega"]
        found = {"lam": stats.gamma(2.0 + (SCORES.size + M) / 2,
                                    scale=1 / (1.0 + (within + omega * between) / 2)),
                 "omega": stats.gamma(1.5 + M / 2, scale=1 / (0.5 + lam * between / 2))}
    precision = lam * omega * M + 1 / 100
    found["mu"] = stats.norm(lam * omega * theta.sum() / precision, precision**-0.5)
    found["theta"] = stats.norm((totals + omega * mu) / (N_PER + omega),
                                (lam * (N_PER + omega)) ** -0.5)
    return found


EXPOSURE, COUNTS = RNG.uniform(0.5, 2.0, 12), RNG.poisson(3.0, 12)
RATES, TIMES = RNG.uniform(1.0, 3.0, 9), RNG.exponential(0.5, 9)
TRIALS, SUCCESSES, COINS = np.full(7, 10), RNG.binomial(10, 0.3, 7), RNG.integers(0, 2, 15)
LABELS, TABLE = RNG.integers(0, 3, 25), RNG.multinomial(30, [0.2, 0.5, 0.3], size=4)


def scalar_families() -> pm.Model:
    """Poisson with exposures and exponential with rates (gamma priors), binomial and
    Bernoulli (beta priors), categorical and multinomial (Dirichlet priors).
    """
    with pm.Model() as model:
        rate = pm.Gamma("rate", 2.0, 1.5)
        pm.Poisson("counts", rate * EXPOSURE, observed=COUNTS)
        hazard = pm.Gamma("hazard", 3.0, 2.0)
        pm.Exponential("times", hazard * RATES, observed=TIMES)
        p = pm.Beta("p", 2.0, 3.0)
        pm.Binomial("successes", n=TRIALS, p=p, observed=SUCCESSES)
        q = pm.Beta("q", 1.5, 1.5)
        pm.Bernoulli("coins", q, observed=COINS)
        w = pm.Dirichlet("w", a=np.array([1.0, 2.0, 3.0]))
        pm.Categorical("labels", p=w, observed=LABELS)
        v = pm.Dirichlet("v", a=np.array([0.5, 1.0, 1.5]))
        pm.Multinomial("table", n=30, p=v, observed=TABLE)
    return model


def scalar_families_by_hand() -> dict:
    """Each conjugate update, derived on paper: the prior's parameters plus the data's sums."""
    return {"rate": {"alpha": 2.0 + COUNTS.sum(), "beta": 1.5 + EXPOSURE.sum()},
            "hazard": {"alpha": 3.0 + TIMES.size, "beta": 2.0 + RATES @ TIMES},
            "p": {"alpha": 2.0 + SUCCESSES.sum(), "beta": 3.0 + (TRIALS - SUCCESSES).sum()},
            "q": {"alpha": 1.5 + COINS.sum(), "beta": 1.5 + (1 - COINS).sum()},
            "w": {"a": np.array([1.0, 2.0, 3.0]) + np.bincount(LABELS, minlength=3)},
            "v": {"a": np.array([0.5, 1.0, 1.5]) + TABLE.sum(axis=0)}}


VECTORS = RNG.normal(size=(30, 3)) @ np.array([[1, 0, 0], [0.5, 1, 0], [0.2, 0.3, 1.0]]) + 1
CENTERED = RNG.normal(size=(25, 2))
X = np.column_stack([np.ones(40), RNG.normal(size=(40, 2))])
RESPONSE = X @ np.array([1.0, 2.0, -1.0]) + RNG.normal(size=40)
OUTCOMES = RNG.integers(0, 2, 40)


def matrix_families() -> pm.Model:
    """A multivariate normal's mean (normal prior) and covariance (inverse Wishart prior), and
    another's precision matrix (Wishart prior).
    """
    with pm.Model() as model:
        m = pm.MvNormal("m", mu=np.zeros(3), cov=4 * np.eye(3))
        Sigma = inverse_wishart("Sigma", 6.0, np.eye(3), p=3)
        pm.MvNormal("vectors", mu=m, cov=Sigma, observed=VECTORS)
        Lam = pm.Wishart("Lam", nu=4.0, V=0.5 * np.eye(2))
        pm.MvNormal("centered", mu=np.zeros(2), tau=Lam, observed=CENTERED)
    return model


def matrix_families_by_hand(state: dict) -> dict:
    Sigma_inverse = np.linalg.inv(state["Sigma"])
    precision = np.eye(3) / 4 + len(VECTORS) * Sigma_inverse
    deviation = VECTORS - state["m"]
    return {"m": {"mu": np.linalg.solve(precision, Sigma_inverse @ VECTORS.sum(0)),
                  "cov": np.linalg.inv(precision)},
            "Sigma": {"df": 6.0 + len(VECTORS), "scale": np.eye(3) + deviation.T @ deviation},
            "Lam": {"nu": 4.0 + len(CENTERED),
                    "V": np.linalg.inv(np.linalg.inv(0.5 * np.eye(2)) + CENTERED.T @ CENTERED)}}


def regressions() -> pm.Model:
    """A linear regression (normal coefficients, gamma precision) and a logistic one."""
    with pm.Model() as model:
        beta = pm.Normal("beta", 0.0, 10.0, shape=3)
        lam = pm.Gamma("lam", 1.0, 1.0)
        pm.Normal("response", X @ beta, tau=lam, observed=RESPONSE)
        gamma = pm.Normal("gamma", 0.0, 10.0, shape=3)
        pm.Bernoulli("outcomes", logit_p=X @ gamma, observed=OUTCOMES)
    return model


@pytest.fixture(scope="module")
def found():
    """Each test model, its conjugate conditionals (recognized once) and its log density on the
    natural scale, compiled by PyMC apart from the module under test.
    """
    found = {}
    for build in (lam_omega_hierarchy, variance_hierarchy, scalar_families, matrix_families,
                  regressions):
        model = build()
        compiled = remove_value_transforms(model).compile_logp(jacobian=False)

        def log_density(point, compiled=compiled):
            return float(compiled({k: np.asarray(v, dtype=float) for k, v in point.items()}))
        found[build.__name__] = (model, conjugate_conditionals(model), log_density)
    return found


def prior_state(model: pm.Model) -> dict:
    """A draw of every free variable from the prior: a state in every support."""
    draws = pm.draw(model.free_RVs, random_seed=RNG)
    return {rv.name: np.asarray(value) for rv, value in zip(model.free_RVs, draws)}


def conditionals_of(found, build):
    return found[build.__name__][1]


# -- the families against their hand derivations ------------------------------------------------

@pytest.mark.parametrize("variances", [False, True], ids=["lam-omega", "sigma2-tau2"])
def test_the_exercise_hierarchy_is_recognized_in_both_forms(found, variances):
    conditionals = conditionals_of(found, variance_hierarchy if variances else lam_omega_hierarchy)
    scale = "sigma2" if variances else "lam"
    ratio = "tau2" if variances else "omega"
    family = "inversegamma" if variances else "gamma"
    assert {name: c.family for name, c in conditionals.items()} == {
        scale: family, ratio: family, "mu": "normal", "theta": "normal",
        ("mu", "theta"): "mvnormal"}
    assert conditionals["theta"].structure == "elementwise"
    assert conditionals[scale].formula.startswith(f"{scale} | {ratio}, mu, theta, y ~ {family}")
    for _ in range(3):
        state = {scale: RNG.gamma(2.0), ratio: RNG.gamma(2.0), "mu": RNG.normal(),
                 "theta": RNG.normal(size=M) * 2}
        hand = hierarchy_by_hand(state, variances)
        for name in (scale, ratio):
            got = conditionals[name].parameters(state)
            scale_parameter = hand[name].kwds["scale"]  # scipy's: 1/rate for a gamma
            rate = scale_parameter if variances else 1 / scale_parameter
            np.testing.assert_allclose([got["alpha"], got["beta"]], [hand[name].args[0], rate],
                                       **TIGHT)
        for name in ("mu", "theta"):
            got = conditionals[name].parameters(state)
            np.testing.assert_allclose(got["mu"], hand[name].mean(), **TIGHT)
            np.testing.assert_allclose(got["sigma"], hand[name].std(), **TIGHT)


def test_the_poisson_exponential_binomial_bernoulli_categorical_multinomial_updates(found):
    conditionals = conditionals_of(found, scalar_families)
    expected = scalar_families_by_hand()
    assert {name: c.family for name, c in conditionals.items()} == {
        "rate": "gamma", "hazard": "gamma", "p": "beta", "q": "beta", "w": "dirichlet",
        "v": "dirichlet"}
    for _ in range(3):
        state = {"rate": RNG.gamma(2.0), "hazard": RNG.gamma(2.0), "p": RNG.uniform(),
                 "q": RNG.uniform(), "w": RNG.dirichlet(np.ones(3)), "v": RNG.dirichlet(np.ones(3))}
        for name, parameters in expected.items():
            got = conditionals[name].parameters(state)
            for key, value in parameters.items():
                np.testing.assert_allclose(got[key], value, rtol=1e-8, err_msg=f"{name} {key}")


def test_the_mean_and_covariance_of_a_multivariate_normal(found):
    conditionals = conditionals_of(found, matrix_families)
    assert {name: (c.family, c.structure) for name, c in conditionals.items()} == {
        "m": ("mvnormal", "joint"), "Sigma": ("inversewishart", "whole"),
        "Lam": ("wishart", "whole")}
    for _ in range(3):
        state = {"m": RNG.normal(size=3), "Sigma": stats.wishart.rvs(8, np.eye(3) / 8,
                                                                     random_state=RNG),
                 "Lam": stats.wishart.rvs(5, np.eye(2) / 5, random_state=RNG)}
        for name, parameters in matrix_families_by_hand(state).items():
            got = conditionals[name].parameters(state)
            for key, value in parameters.items():
                np.testing.assert_allclose(got[key], value, rtol=1e-7, atol=1e-12,
                                           err_msg=f"{name} {key}")


def test_a_regressions_coefficients_and_precision_but_never_a_logistic_regression(found):
    conditionals = conditionals_of(found, regressions)
    assert set(conditionals) == {"beta", "lam"}  # gamma, the logistic one's, is not claimed
    state = {"beta": RNG.normal(size=3), "lam": 2.0, "gamma": RNG.normal(size=3)}
    precision = 2.0 * X.T @ X + np.eye(3) / 100
    got = conditionals["beta"].parameters(state)
    np.testing.assert_allclose(got["mu"], np.linalg.solve(precision, 2.0 * X.T @ RESPONSE),
                               **TIGHT)
    np.testing.assert_allclose(got["cov"], np.linalg.inv(precision), rtol=1e-9, atol=1e-15)
    residual = RESPONSE - X @ state["beta"]
    got = conditionals["lam"].parameters(state)
    np.testing.assert_allclose([got["alpha"], got["beta"]],
                               [1.0 + RESPONSE.size / 2, 1.0 + residual @ residual / 2], **TIGHT)
    with pytest.raises(ConjugacyError, match="no exact conditional for 'gamma'"):
        auto_gibbs(found["regressions"][0])


# -- the families against the density itself ---------------------------------------------------

def frozen(family: str, parameters: dict):
    """The claimed scalar conditional as a scipy distribution."""
    if family == "normal":
        return stats.norm(parameters["mu"], parameters["sigma"])
    if family == "gamma":
        return stats.gamma(parameters["alpha"], scale=1 / parameters["beta"])
    if family == "inversegamma":
        return stats.invgamma(parameters["alpha"], scale=parameters["beta"])
    return stats.beta(parameters["alpha"], parameters["beta"])


@pytest.mark.parametrize("build, names", [
    (lam_omega_hierarchy, ("lam", "omega", "mu", "theta")),
    (variance_hierarchy, ("sigma2", "tau2")),
    (scalar_families, ("rate", "hazard", "p", "q")),
])
def test_a_scalar_conditional_is_the_joint_density_normalized_on_a_grid(found, build, names):
    model, conditionals, log_density = found[build.__name__]
    state = prior_state(model)
    for name in names:
        conditional = conditionals[name]
        claimed = frozen(conditional.family, {k: np.ravel(v)[0] for k, v in
                                              conditional.parameters(state).items()})
        ends = claimed.ppf([1e-10, 1 - 1e-10])
        # a positive variable's tail is long (an inverse gamma's): even steps in log x
        grid = (np.geomspace if conditional.family in ("gamma", "inversegamma") else
                np.linspace)(*ends, 8001)
        values = []
        for x in grid:
            point = dict(state)
            point[name] = np.concatenate([[x], np.ravel(state[name])[1:]]).reshape(
                np.shape(state[name]))
            values.append(log_density(point))
        density = np.exp(np.array(values) - max(values))
        cdf = integrate.cumulative_trapezoid(density, grid, initial=0)
        np.testing.assert_allclose(cdf / cdf[-1], claimed.cdf(grid) - claimed.cdf(grid[0]),
                                   atol=2e-6, err_msg=name)


@pytest.mark.parametrize("build, name", [
    (matrix_families, "m"), (matrix_families, "Sigma"), (matrix_families, "Lam"),
    (scalar_families, "w"), (scalar_families, "v"), (lam_omega_hierarchy, ("mu", "theta")),
    (regressions, "beta"),
])
def test_a_multivariate_conditional_has_the_joint_densitys_log_ratios(found, build, name):
    model, conditionals, log_density = found[build.__name__]
    conditional = conditionals[name]
    state = prior_state(model)
    parameters = conditional.parameters(state)
    draws = [conditional.draw(RNG, state) for _ in range(8)]
    joint, claimed = [], []
    for value in draws:
        point = dict(state) | (dict(zip(name, value)) if isinstance(name, tuple)
                               else {name: value})
        joint.append(log_density(point))
        flat = np.concatenate([np.ravel(v) for v in value]) if isinstance(name, tuple) else value
        claimed.append(scipy_log_density(conditional.family, parameters, flat))
    differences = np.diff(joint), np.diff(claimed)
    np.testing.assert_allclose(*differences, rtol=1e-8, atol=1e-8 * np.abs(joint).max())


def scipy_log_density(family: str, parameters: dict, value: np.ndarray) -> float:
    if family == "mvnormal":
        return stats.multivariate_normal(parameters["mu"], parameters["cov"]).logpdf(value)
    if family == "dirichlet":
        return stats.dirichlet(parameters["a"]).logpdf(value)
    if family == "wishart":
        return stats.wishart(parameters["nu"], parameters["V"]).logpdf(value)
    return stats.invwishart(parameters["df"], parameters["scale"]).logpdf(value)


def test_a_draw_follows_its_conditional_one_state_or_a_batch(found):
    conditionals = conditionals_of(found, lam_omega_hierarchy)
    state = {"lam": 0.8, "omega": 2.0, "mu": 0.5, "theta": np.arange(M) * 0.7}
    hand = hierarchy_by_hand(state, variances=False)
    rng = np.random.default_rng(0)
    one = np.array([conditionals["lam"].draw(rng, state) for _ in range(300)])
    batch = {name: np.repeat(np.asarray(value, dtype=float)[None], 3000, axis=0)
             for name, value in state.items()}
    many = conditionals["lam"].draw(rng, batch, None)
    assert np.shape(one[0]) == () and many.shape == (3000,)
    assert stats.kstest(one, hand["lam"].cdf).pvalue > 1e-3
    assert stats.kstest(many, hand["lam"].cdf).pvalue > 1e-3
    theta = conditionals["theta"].draw(rng, batch, {"y": np.broadcast_to(SCORES, (3000, 20))})
    assert theta.shape == (3000, M)
    third = stats.norm(hand["theta"].mean()[2], hand["theta"].std()[2])
    assert stats.kstest(theta[:, 2], third.cdf).pvalue > 1e-3
    mu, theta_joint = conditionals[("mu", "theta")].draw(rng, state)
    assert np.shape(mu) == () and theta_joint.shape == (M,)
    reference = conditionals["lam"].draws(rng, state, size=3000)  # fitted once
    assert reference.shape == (3000,) and stats.kstest(reference, hand["lam"].cdf).pvalue > 1e-3
    mu, theta_joint = conditionals[("mu", "theta")].draws(rng, state, size=10)
    assert mu.shape == (10,) and theta_joint.shape == (10, M)


def test_a_state_where_the_family_fails_raises_rather_than_answers():
    """lam's conditional is gamma while u <= 5, and has a -lam^2 term beyond: recognized at the
    states near u = 0, refused at u = 6.
    """
    with pm.Model() as model:
        lam = pm.Gamma("lam", 2.0, 1.0)
        u = pm.Normal("u", 0.0, 1.0)
        pm.Potential("switch", pm.math.switch(u > 5, -lam**2, 0.0))
        pm.Poisson("counts", lam, observed=COUNTS)
    conditional = conjugate_conditionals(model)["lam"]
    assert conditional.parameters({"lam": 1.0, "u": 0.0})["alpha"] == pytest.approx(
        2.0 + COUNTS.sum())
    with pytest.raises(ConjugacyError, match="not gamma at state 1 of 2"):
        conditional.parameters({"lam": np.array([1.0, 1.0]), "u": np.array([0.0, 6.0])})


# -- the built-in models against the package's hand-derived conditionals -------------------------

@pytest.fixture(scope="module")
def bloodpressure():
    builtin = get_builtin("bloodpressure")
    model = builtin.build_model(builtin.load())
    return model, conjugate_conditionals(model)


def test_the_blood_pressure_conditionals_are_the_hand_derived_ones(bloodpressure):
    from hiercheck.samplers import bloodpressure as derived

    model, conditionals = bloodpressure
    assert {name: c.family for name, c in conditionals.items()} == {
        "lam": "gamma", "omega": "gamma", "mu": "normal", "beta": "normal", "theta": "normal",
        ("mu", "beta"): "mvnormal", ("mu", "theta"): "mvnormal", ("beta", "theta"): "mvnormal",
        ("mu", "beta", "theta"): "mvnormal"}
    data = get_builtin("bloodpressure").load()
    values = derived.model_data(data)
    n, totals = derived.subject_totals(values)
    for _ in range(3):
        state = {"theta": totals / n + RNG.normal(size=n.size) * 3, "mu": 130 + RNG.normal() * 5,
                 "beta": RNG.normal() * 5, "lam": RNG.gamma(2.0) / 50, "omega": RNG.gamma(2.0)}
        for name, hand in (("lam", derived.lam_conditional), ("omega", derived.omega_conditional)):
            got = conditionals[name].parameters(state, values)
            np.testing.assert_allclose([got["alpha"], got["beta"]], hand(state, values), **TIGHT)
        mean, precision = derived.theta_conditional(state, values)
        got = conditionals["theta"].parameters(state, values)
        np.testing.assert_allclose(got["mu"], mean, **TIGHT)
        np.testing.assert_allclose(got["sigma"], precision**-0.5, **TIGHT)
        mean, covariance = derived.mu_beta_conditional(state, values)
        got = conditionals[("mu", "beta")].parameters(state, values)
        np.testing.assert_allclose(got["mu"], mean, **TIGHT)
        np.testing.assert_allclose(got["cov"], covariance, rtol=1e-8)


def test_a_batch_gets_each_states_own_parameters(bloodpressure):
    _, conditionals = bloodpressure
    states = [{"theta": RNG.normal(130, 10, 20), "mu": RNG.normal(130, 5), "beta": RNG.normal(),
               "lam": RNG.gamma(2.0) / 50, "omega": RNG.gamma(2.0)} for _ in range(4)]
    batch = {name: np.stack([s[name] for s in states]) for name in states[0]}
    for key in ("lam", ("mu", "beta"), "theta"):
        together = conditionals[key].parameters(batch)
        for k, state in enumerate(states):
            alone = conditionals[key].parameters(state)
            for name, value in alone.items():
                np.testing.assert_allclose(together[name][k], value, rtol=1e-10)


def test_the_flagship_conditionals_are_the_hand_derived_ones():
    from hiercheck.models import Priors
    from hiercheck.samplers import gibbs
    from hiercheck.samplers.marginal import theta_conditional
    from hiercheck.validation.builtin_models import _school_stats_of_rows

    builtin = get_builtin("mathtest")
    data = builtin.load()
    conditionals = conjugate_conditionals(builtin.build_model(data))
    stats_ = _school_stats_of_rows(np.asarray(data.codes), np.asarray(data.values, dtype=float))
    priors = Priors.weakly_informative(data)
    for _ in range(3):
        state = {"theta": stats_.ybar + RNG.normal(size=stats_.m) * 3,
                 "mu": stats_.ybar.mean() + RNG.normal(), "lam": RNG.gamma(2.0) / 100,
                 "omega": RNG.gamma(2.0)}
        flagship = gibbs.GibbsState(**state)
        for name, hand in (("lam", gibbs.lam_full_conditional),
                           ("omega", gibbs.omega_full_conditional)):
            got = conditionals[name].parameters(state)
            np.testing.assert_allclose([got["alpha"], got["beta"]], hand(flagship, stats_, priors),
                                       **TIGHT)
        mean, precision = gibbs.mu_full_conditional(flagship, stats_, priors)
        got = conditionals["mu"].parameters(state)
        np.testing.assert_allclose([got["mu"], got["sigma"]], [mean, precision**-0.5], **TIGHT)
        mean, precision = theta_conditional(stats_, flagship.mu, flagship.lam, flagship.omega)
        got = conditionals["theta"].parameters(state)
        np.testing.assert_allclose(got["mu"], mean, **TIGHT)
        np.testing.assert_allclose(got["sigma"], precision**-0.5, **TIGHT)


def test_the_cheese_conditionals_are_the_hand_derived_ones():
    """beta comes out as 88 independent 4-variate normals, Sigma as an inverse Wishart."""
    from hiercheck.samplers import cheese as derived

    builtin = get_builtin("cheese")
    data = builtin.load()
    conditionals = conjugate_conditionals(builtin.build_model(data))
    assert {name: (c.family, c.structure) for name, c in conditionals.items()} == {
        "lam": ("gamma", "elementwise"), "m": ("mvnormal", "joint"),
        "Sigma": ("inversewishart", "whole"), "beta": ("mvnormal", "rows"),
        ("m", "beta"): ("mvnormal", "joint")}
    values = derived.model_data(data)
    for _ in range(2):
        m = values["nu"] + RNG.normal(size=4) * 0.3
        state = {"beta": m + RNG.normal(size=(data.S, 4)) * 0.5, "m": m, "lam": RNG.gamma(5.0),
                 "Sigma": stats.wishart.rvs(10, np.eye(4) / 20, random_state=RNG)}
        mean, covariance = derived.beta_conditional(state, values)
        got = conditionals["beta"].parameters(state, values)
        assert got["mu"].shape == (88, 4) and got["cov"].shape == (88, 4, 4)
        np.testing.assert_allclose(got["mu"], mean, rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(got["cov"], covariance, rtol=1e-8, atol=1e-14)
        mean, covariance = derived.m_conditional(state, values)
        got = conditionals["m"].parameters(state, values)
        np.testing.assert_allclose(got["mu"], mean, rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(got["cov"], covariance, rtol=1e-8, atol=1e-14)
        df, scale = derived.Sigma_conditional(state, values)
        got = conditionals["Sigma"].parameters(state, values)
        np.testing.assert_allclose(got["df"], df, rtol=1e-9)
        np.testing.assert_allclose(got["scale"], scale, rtol=1e-9)
        got = conditionals["lam"].parameters(state, values)
        np.testing.assert_allclose([got["alpha"], got["beta"]],
                                   derived.lam_conditional(state, values), **TIGHT)


# -- a complete sampler --------------------------------------------------------------------------

SMALL = dict(posterior_points=2, prior_points=1, consistency_draws=1000, joint_draws=500,
             nuts_draws=500, nuts_tune=500, sweep_draws=1500, sweep_tune=200, geweke_chains=50,
             geweke_steps=100, geweke_independent=5000, sbc_replications=50)


def test_auto_gibbs_passes_check_gibbs_on_the_flagship():
    from hiercheck import check_gibbs
    from hiercheck.validation.generic import GENERIC_QUICK, ModelReferences

    builtin = get_builtin("hierarchy-small")
    model = builtin.build_model(builtin.load())
    references = ModelReferences(model, replace(GENERIC_QUICK, **SMALL), 0, "hierarchy-small")
    verdict = check_gibbs(model, auto_gibbs(model), references=references, batched=True)
    assert verdict.passed, verdict


def test_auto_gibbs_passes_consistency_and_geweke_on_blood_pressure(bloodpressure):
    """The consistency states are draws of the package's hand-derived sampler, in place of NUTS
    (any states serve an invariance test); every check, NUTS included, passed by hand
    (docs/conjugacy.md).
    """
    from hiercheck import check_gibbs
    from hiercheck.samplers import bloodpressure as derived
    from hiercheck.validation.generic import GENERIC_QUICK, ModelReferences

    model, _ = bloodpressure
    references = ModelReferences(model, replace(GENERIC_QUICK, **SMALL), 0, "bloodpressure")
    posterior = derived.sample(get_builtin("bloodpressure").load(), draws=100, chains=4,
                               seed=1).posterior
    references.__dict__["nuts"] = {name: posterior[name].to_numpy()
                                   for name in references.variables}
    verdict = check_gibbs(model, auto_gibbs(model), references=references, batched=True,
                          checks=("consistency", "geweke"))
    assert verdict.passed, verdict


def test_the_engine_samples_every_chain_as_one_batch(bloodpressure):
    model, _ = bloodpressure
    posterior = sample(model, draws=50, chains=3, seed=1, tune=20).posterior
    assert dict(posterior.sizes) == {"chain": 3, "draw": 50, "subject": 20}
    assert set(posterior.data_vars) == {"lam", "omega", "mu", "beta", "theta"}
    again = sample(model, draws=50, chains=3, seed=1, tune=20).posterior
    np.testing.assert_array_equal(posterior.mu, again.mu)
    assert all(np.isfinite(posterior[name]).all() for name in posterior.data_vars)


def inverse_wishart_families() -> pm.Model:
    """`matrix_families` without the pm.Wishart, which check_gibbs refuses (below)."""
    with pm.Model() as model:
        m = pm.MvNormal("m", mu=np.zeros(3), cov=4 * np.eye(3))
        Sigma = inverse_wishart("Sigma", 6.0, np.eye(3), p=3)
        pm.MvNormal("vectors", mu=m, cov=Sigma, observed=VECTORS)
    return model


@pytest.mark.parametrize("build", [scalar_families, inverse_wishart_families,
                                   variance_hierarchy])
def test_auto_gibbs_passes_consistency_and_geweke_on_the_test_models(build):
    """Every family of the test models in one sweep: the Poisson, exponential, binomial,
    Bernoulli, categorical and multinomial updates; a multivariate normal's mean and inverse-
    Wishart covariance; the exercise in variances. The consistency states are prior draws alone
    (no NUTS), which serve an invariance test as well as posterior ones."""
    from hiercheck import check_gibbs
    from hiercheck.validation.generic import GENERIC_QUICK, ModelReferences

    model = build()
    settings = SMALL | {"posterior_points": 0, "prior_points": 2}
    references = ModelReferences(model, replace(GENERIC_QUICK, **settings), 0, build.__name__)
    verdict = check_gibbs(model, auto_gibbs(model), references=references, batched=True,
                          checks=("consistency", "geweke"))
    assert verdict.passed, verdict


def test_check_gibbs_refuses_a_free_wishart_with_what_to_write_instead():
    """PyMC gives pm.Wishart no transform: its entries cannot be stepped, nor NUTS run. Refused
    in one line (before: PyMC's ParameterValueError from inside the model's fingerprint)."""
    from hiercheck import check_gibbs
    from hiercheck.errors import SettingsError

    model = matrix_families()
    with pytest.raises(SettingsError, match="'Lam' is a pm.Wishart, which PyMC gives no "
                                            "transform.*inverse_wishart"):
        check_gibbs(model, auto_gibbs(model), batched=True)


def test_a_rate_far_in_a_tail_is_fitted_about_the_mode():
    """theta_i | a, y ~ Gamma(a + y_i, 2) asked at tiny theta, where (alpha - 1)/x drowns the
    rate in rounding: the parameters are those of the closed form at any state, from 1e-200 to
    1e30 (before, the fit failed at 1e-30 and the rate was 6e-7 off at 1e-9)."""
    counts = np.array([0, 2, 1, 5])
    with pm.Model() as model:
        a = pm.Exponential("a", 20.0)
        theta = pm.Gamma("theta", a, 1.0, shape=counts.size)
        pm.Poisson("y", theta, observed=counts)
    conditional = conjugate_conditionals(model)["theta"]
    for x in (1e-200, 1e-30, 1e-9, 1.0, 1e30):
        found = conditional.parameters({"a": 0.0529, "theta": np.full(counts.size, x)})
        np.testing.assert_allclose(found["alpha"], 0.0529 + counts, rtol=1e-9)
        np.testing.assert_allclose(found["beta"], 2.0, rtol=1e-9)
